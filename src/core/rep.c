#include "core/rep.h"

#include <stdlib.h>
#include <string.h>

#include <nng/protocol/reqrep0/rep.h>

#include "core/err.h"
#include "core/log.h"
#include "core/tls.h"

enum { BATCH = 256 }; /* requests per wakeup, so timers and Redis replies get their turn */

/* Send aios at most: one per context, plus those whose replies wait behind a
 * connection that does not read. Beyond it a reply is dropped and counted;
 * its peer resends or times out. */
#define LD_REP_SENDS_MAX 65536

/* Runs on an NNG thread: a receive completed. */
static void on_aio(void *arg)
{
    ld_rep_ctx *c = arg;
    ld_rep *r = c->rep;
    int rv = nng_aio_result(c->aio);

    if (rv == NNG_ECLOSED || rv == NNG_ECANCELED) return;
    if (rv != 0) {
        nng_ctx_recv(c->ctx, c->aio);
        return;
    }
    c->msg = nng_aio_get_msg(c->aio);
    nng_aio_set_msg(c->aio, NULL);
    c->next = NULL;
    pthread_mutex_lock(&r->mu);
    if (r->tail) r->tail->next = c;
    else r->head = c;
    r->tail = c;
    pthread_mutex_unlock(&r->mu);
    uv_async_send(&r->async);
}

/* ---- replies: send aios without a callback ---------------------------------- */

/* send_done tells whether <s>'s last send has finished, and takes care of a
 * message it could not send. A send that went out leaves no message in its
 * aio; one still queued keeps its message and a zero result; one that
 * failed keeps its message and says why. nng_aio_wait then covers the few
 * instructions between NNG clearing the message and finishing the aio. */
static int send_done(ld_rep *r, ld_rep_send *s)
{
    nng_msg *m = nng_aio_get_msg(s->aio);
    if (m && nng_aio_result(s->aio) == 0) return 0;
    nng_aio_wait(s->aio);
    if ((m = nng_aio_get_msg(s->aio)) != NULL) {
        nng_aio_set_msg(s->aio, NULL);
        nng_msg_free(m);
        r->send_errors++;
    }
    return 1;
}

/* reclaim moves the sends that have finished from the in-flight list to the spares. */
static void reclaim(ld_rep *r)
{
    for (ld_rep_send **pp = &r->inflight; *pp;) {
        ld_rep_send *s = *pp;
        if (!send_done(r, s)) {
            pp = &s->next;
            continue;
        }
        *pp = s->next;
        s->next = r->spare;
        r->spare = s;
    }
}

/* send_get returns a send aio for context <c>: its own if its last reply has
 * gone, else a spare (the busy one waits in the in-flight list). */
static ld_rep_send *send_get(ld_rep *r, ld_rep_ctx *c)
{
    ld_rep_send *s = c->send;
    if (s && send_done(r, s)) return s;
    if (s) {
        s->next = r->inflight;
        r->inflight = s;
        c->send = NULL;
    }
    if (!r->spare) reclaim(r);
    if ((s = r->spare) != NULL) {
        r->spare = s->next;
    } else {
        if (r->nsend >= LD_REP_SENDS_MAX || !(s = calloc(1, sizeof *s))) return NULL;
        if (nng_aio_alloc(&s->aio, NULL, NULL) != 0) {
            free(s);
            return NULL;
        }
        r->nsend++;
    }
    s->next = NULL;
    c->send = s;
    return s;
}

static void send_free(ld_rep_send *s)
{
    nng_aio_stop(s->aio);
    nng_msg_free(nng_aio_get_msg(s->aio));
    nng_aio_free(s->aio);
    free(s);
}

static void send_free_list(ld_rep_send *s)
{
    while (s) {
        ld_rep_send *next = s->next;
        send_free(s);
        s = next;
    }
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

int ld_rep_open(ld_rep *r, uv_loop_t *loop, const char *url, size_t nctx, size_t max_msg,
                ld_rep_cb on_request, void *user)
{
    int rv;
    memset(r, 0, sizeof *r);
    r->on_request = on_request;
    r->user = user;
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
    ld_rep_send *s = NULL;
    if (r->closing || !reply || !(s = send_get(r, c))) {
        if (reply && !r->closing) r->send_errors++;
        nng_msg_free(reply);
        if (!r->closing) nng_ctx_recv(c->ctx, c->aio);
        return;
    }
    nng_aio_set_msg(s->aio, reply);
    nng_ctx_send(c->ctx, s->aio);
    /* The reply is on its way (or queued in NNG): this context may take the
     * next request at once. */
    nng_ctx_recv(c->ctx, c->aio);
}

void ld_rep_close(ld_rep *r)
{
    if (!r->open) return;
    __atomic_store_n(&r->closing, 1, __ATOMIC_RELEASE);
    nng_close(r->sock);
    for (size_t i = 0; i < r->nctx; i++) {
        ld_rep_ctx *c = &r->ctxs[i];
        if (c->aio) {
            nng_aio_stop(c->aio);
            nng_msg_free(nng_aio_get_msg(c->aio));
            nng_aio_free(c->aio);
            c->aio = NULL;
        }
        if (c->send) send_free(c->send);
        c->send = NULL;
    }
    send_free_list(r->spare);
    send_free_list(r->inflight);
    r->spare = r->inflight = NULL;
    r->nsend = 0;
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

nng_msg *ld_msg_from_pb(const ProtobufCMessage *m)
{
    size_t n = protobuf_c_message_get_packed_size(m);
    nng_msg *msg;
    if (nng_msg_alloc(&msg, n) != 0) return NULL;
    protobuf_c_message_pack(m, nng_msg_body(msg));
    return msg;
}
