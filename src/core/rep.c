#include "core/rep.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <nng/protocol/reqrep0/rep.h>

#include "core/err.h"
#include "core/log.h"
#include "core/tls.h"

enum { BATCH = 256 }; /* requests per wakeup, so timers and Redis replies get their turn */

/* Runs on an NNG thread. */
static void on_aio(void *arg)
{
    ld_rep_ctx *c = arg;
    ld_rep *r = c->rep;
    int rv = nng_aio_result(c->aio);

    if (c->sending) {
        c->sending = 0;
        /* Sent, the message is NNG's: only a failed send leaves it to us, and
         * the aio must not point at it either way (ld_rep_close frees what
         * it points at). */
        if (rv != 0) {
            nng_msg_free(nng_aio_get_msg(c->aio));
            __atomic_add_fetch(&r->send_errors, 1, __ATOMIC_RELAXED);
        }
        nng_aio_set_msg(c->aio, NULL);
        if (rv == NNG_ECLOSED || __atomic_load_n(&r->closing, __ATOMIC_ACQUIRE)) return;
        nng_ctx_recv(c->ctx, c->aio);
        return;
    }
    if (rv == NNG_ECLOSED || rv == NNG_ECANCELED) return;
    if (rv != 0) {
        nng_ctx_recv(c->ctx, c->aio);
        return;
    }
    c->msg = nng_aio_get_msg(c->aio);
    nng_aio_set_msg(c->aio, NULL);
    c->pipe = (uint32_t)nng_pipe_id(nng_msg_get_pipe(c->msg));
    c->next = NULL;
    pthread_mutex_lock(&r->mu);
    if (r->tail) r->tail->next = c;
    else r->head = c;
    r->tail = c;
    pthread_mutex_unlock(&r->mu);
    uv_async_send(&r->async);
}

static void on_ready(uv_async_t *h)
{
    ld_rep *r = h->data;
    pthread_mutex_lock(&r->mu);
    ld_rep_ctx *c = r->head;
    size_t n = 0;
    ld_rep_ctx *last = NULL;
    for (ld_rep_ctx *p = c; p && n < BATCH; p = p->next, n++) last = p;
    if (last) {
        r->head = last->next;
        if (!r->head) r->tail = NULL;
        last->next = NULL;
    }
    int more = r->head != NULL;
    pthread_mutex_unlock(&r->mu);
    if (more) uv_async_send(&r->async);

    while (c) {
        ld_rep_ctx *next = c->next;
        nng_msg *m = c->msg;
        c->msg = NULL;
        c->next = NULL;
        r->requests++;
        if (r->closing) nng_msg_free(m);
        else r->on_request(r, c, m);
        c = next;
    }
}

/* open_on_loop serves tcp:// <url> with core/sp.h: every context starts idle. */
static int open_on_loop(ld_rep *r, uv_loop_t *loop, const char *url, size_t nctx, size_t max_msg)
{
    r->ctxs = calloc(nctx, sizeof *r->ctxs);
    if (!r->ctxs) return LD_ENOMEM;
    r->nctx = nctx;
    for (size_t i = nctx; i-- > 0;) {
        r->ctxs[i].rep = r;
        r->ctxs[i].idle_next = r->idle;
        r->idle = &r->ctxs[i];
    }
    int rv = ld_sp_open(&r->sp, r, loop, url, max_msg);
    if (rv != 0) {
        free(r->ctxs);
        r->ctxs = NULL;
        r->nctx = 0;
        r->idle = NULL;
        return rv;
    }
    r->open = 1;
    return 0;
}

static int on_loop_wanted(const char *url)
{
    const char *how = getenv("LINKD_REP");
    return ld_sp_url_ok(url) && !(how && strcmp(how, "nng") == 0);
}

int ld_rep_open(ld_rep *r, uv_loop_t *loop, const char *url, size_t nctx, size_t max_msg,
                ld_rep_cb on_request, void *user)
{
    int rv;
    memset(r, 0, sizeof *r);
    r->on_request = on_request;
    r->user = user;
    if (on_loop_wanted(url)) return open_on_loop(r, loop, url, nctx, max_msg);
    pthread_mutex_init(&r->mu, NULL);
    if ((rv = nng_rep0_open(&r->sock)) != 0) {
        pthread_mutex_destroy(&r->mu);
        return ld_err_from_nng(rv);
    }
    r->open = 1;
    nng_socket_set_size(r->sock, NNG_OPT_RECVMAXSZ, max_msg);
    if (uv_async_init(loop, &r->async, on_ready) != 0) {
        nng_close(r->sock);
        pthread_mutex_destroy(&r->mu);
        r->open = 0;
        return LD_EIO;
    }
    r->async.data = r;
    r->ctxs = calloc(nctx, sizeof *r->ctxs);
    if (!r->ctxs) {
        rv = LD_ENOMEM;
        goto fail;
    }
    for (size_t i = 0; i < nctx; i++) {
        ld_rep_ctx *c = &r->ctxs[i];
        c->rep = r;
        if ((rv = nng_ctx_open(&c->ctx, r->sock)) != 0 ||
            (rv = nng_aio_alloc(&c->aio, on_aio, c)) != 0) {
            rv = ld_err_from_nng(rv);
            goto fail;
        }
        r->nctx = i + 1;
    }
    if ((rv = ld_listen(r->sock, url)) != 0) {
        ld_log(LD_ERR, "NNG-LISTEN", "cannot listen on %s: %s", url, nng_strerror(rv));
        rv = ld_err_from_nng(rv);
        goto fail;
    }
    for (size_t i = 0; i < r->nctx; i++) nng_ctx_recv(r->ctxs[i].ctx, r->ctxs[i].aio);
    return 0;
fail:
    ld_rep_close(r);
    return rv;
}

void ld_rep_reply(ld_rep_ctx *c, nng_msg *reply)
{
    ld_rep *r = c->rep;
    if (r->sp) {
        if (r->closing) nng_msg_free(reply);
        else ld_sp_reply(r->sp, c, reply);
        return;
    }
    if (r->closing || !reply) {
        nng_msg_free(reply);
        if (!r->closing) nng_ctx_recv(c->ctx, c->aio);
        return;
    }
    c->sending = 1;
    nng_aio_set_msg(c->aio, reply);
    nng_ctx_send(c->ctx, c->aio);
}

void ld_rep_close(ld_rep *r)
{
    if (!r->open) return;
    __atomic_store_n(&r->closing, 1, __ATOMIC_RELEASE);
    if (r->sp) {
        ld_sp_close(r->sp); /* frees itself once the loop has closed its handles */
        r->sp = NULL;
        free(r->ctxs);
        r->ctxs = NULL;
        r->nctx = 0;
        r->idle = NULL;
        r->open = 0;
        return;
    }
    if (ld_nng_close(r->sock, "REP socket", LD_NNG_CLOSE_MS) != 0) {
        uv_unref((uv_handle_t *)&r->async); /* the loop may end without it */
        return;
    }
    for (size_t i = 0; i < r->nctx; i++) {
        ld_rep_ctx *c = &r->ctxs[i];
        if (c->aio) {
            nng_aio_stop(c->aio);
            nng_msg_free(nng_aio_get_msg(c->aio));
            nng_aio_free(c->aio);
            c->aio = NULL;
        }
    }
    pthread_mutex_lock(&r->mu);
    for (ld_rep_ctx *c = r->head; c; c = c->next) {
        nng_msg_free(c->msg);
        c->msg = NULL;
    }
    r->head = r->tail = NULL;
    pthread_mutex_unlock(&r->mu);
    free(r->ctxs);
    r->ctxs = NULL;
    r->nctx = 0;
    uv_close((uv_handle_t *)&r->async, NULL);
    r->open = 0;
}

/* ---- closing a socket with a time limit ------------------------------------------------ */

typedef struct closer {
    nng_socket s;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done, abandoned;
} closer;

static void closer_free(closer *c)
{
    pthread_cond_destroy(&c->cv);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

static void *close_main(void *arg)
{
    closer *c = arg;
    nng_close(c->s);
    pthread_mutex_lock(&c->mu);
    c->done = 1;
    int abandoned = c->abandoned;
    pthread_cond_signal(&c->cv);
    pthread_mutex_unlock(&c->mu);
    if (abandoned) closer_free(c);
    return NULL;
}

int ld_nng_close(nng_socket s, const char *what, unsigned timeout_ms)
{
    /* After one close got stuck, NNG's reaper is stuck with it, so any
     * socket with a connection left would wait as well: do not wait long. */
    static int stuck;
    if (__atomic_load_n(&stuck, __ATOMIC_ACQUIRE) && timeout_ms > 500) timeout_ms = 500;
    closer *c = calloc(1, sizeof *c);
    pthread_condattr_t ca;
    pthread_t t;
    pthread_attr_t ta;
    if (!c || pthread_condattr_init(&ca) != 0) {
        free(c);
        nng_close(s); /* no thread to spare: close in place */
        return 0;
    }
    c->s = s;
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&c->cv, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&c->mu, NULL);
    pthread_attr_init(&ta);
    pthread_attr_setdetachstate(&ta, PTHREAD_CREATE_DETACHED);
    int started = pthread_create(&t, &ta, close_main, c) == 0;
    pthread_attr_destroy(&ta);
    if (!started) {
        closer_free(c);
        nng_close(s);
        return 0;
    }
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += timeout_ms / 1000;
    until.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) until.tv_sec++, until.tv_nsec -= 1000000000L;
    pthread_mutex_lock(&c->mu);
    int rv = 0;
    while (!c->done && rv != ETIMEDOUT) rv = pthread_cond_timedwait(&c->cv, &c->mu, &until);
    int done = c->done;
    if (!done) c->abandoned = 1;
    pthread_mutex_unlock(&c->mu);
    if (done) {
        closer_free(c);
        return 0;
    }
    __atomic_store_n(&stuck, 1, __ATOMIC_RELEASE);
    ld_log(LD_WARN, "NNG-CLOSE-STUCK", "the %s did not close within %u ms (a known NNG 1.5.2 "
           "defect: a pipe closed while a reply was half written); left open, going on",
           what, timeout_ms);
    return LD_ETIMEDOUT;
}

nng_msg *ld_msg_from_pb(const ProtobufCMessage *m)
{
    size_t n = protobuf_c_message_get_packed_size(m);
    nng_msg *msg;
    if (nng_msg_alloc(&msg, n) != 0) return NULL;
    protobuf_c_message_pack(m, nng_msg_body(msg));
    return msg;
}
