#include "core/sp.h"

#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nng/nng.h>

#include "core/err.h"
#include "core/log.h"
#include "core/rep.h"

#define PROTO_REQ 0x30
#define PROTO_REP 0x31
#define MAX_HOPS 8
#define GREET_MS 10000      /* a connection must greet within this */
#define RBUF 4096

enum { GREETING, HEADER, PAYLOAD };

typedef struct queued {            /* a whole request waiting for a context */
    nng_msg *msg;                  /* backtrace still at the front */
    struct queued *next;
} queued;

typedef struct conn {
    uv_tcp_t tcp;                  /* first: the handle is the connection */
    ld_sp *sp;
    uint32_t id;
    int state;
    int reading, closing, closed;
    uint64_t opened_ms;
    uint8_t greet[8], head[8];
    size_t greet_got, head_got;
    nng_msg *msg;                  /* the payload being read */
    size_t need, got;
    queued *q_head, *q_tail;       /* requests waiting for a context */
    size_t inflight;               /* requests handed out, not yet answered */
    struct conn *prev, *next;      /* every open connection */
    struct conn *wnext;            /* in sp->waiting */
    int waiting;
    uv_write_t greet_w;
    char rbuf[RBUF];
} conn;

typedef struct reply {             /* one reply being written */
    uv_write_t w;
    conn *c;
    nng_msg *body;
    uint8_t head[8 + LD_SP_BT_MAX];
} reply;

struct ld_sp {
    uv_tcp_t listener;
    uv_timer_t sweep;
    uv_idle_t kick;                /* serves waiting requests on the next loop turn */
    uv_loop_t *loop;
    ld_rep *rep;
    size_t max_msg;
    uint32_t next_id;
    conn *conns;
    conn *w_head, *w_tail;         /* connections with queued requests, oldest first */
    int handles;                   /* listener, sweep and kick not yet closed */
    int closing;
};

static const uint8_t greeting[8] = {0, 'S', 'P', 0, 0, PROTO_REP, 0, 0};

static void serve_waiting(ld_sp *sp);

/* ---- URLs -------------------------------------------------------------------------- */

int ld_sp_url_ok(const char *url) { return strncmp(url, "tcp://", 6) == 0; }

/* resolve turns "tcp://host:port" into an address ("*" or "" is every
 * interface). Names are resolved once here, at start-up. */
static int resolve(const char *url, struct sockaddr_storage *out)
{
    char host[256];
    const char *hp = url + 6, *colon = strrchr(hp, ':');
    if (!colon || colon - hp >= (long)sizeof host || !colon[1]) return LD_EINVAL;
    memcpy(host, hp, (size_t)(colon - hp));
    host[colon - hp] = '\0';
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (*end || port < 0 || port > 65535) return LD_EINVAL;
    char *h = host;
    size_t hl = strlen(h);
    if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']') h[hl - 1] = '\0', h++;
    if (!*h || strcmp(h, "*") == 0) h = "0.0.0.0";
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *ai = NULL;
    char ps[8];
    snprintf(ps, sizeof ps, "%ld", port);
    if (getaddrinfo(h, ps, &hints, &ai) != 0 || !ai) return LD_EINVAL;
    memcpy(out, ai->ai_addr, ai->ai_addrlen);
    freeaddrinfo(ai);
    return 0;
}

/* ---- connections ------------------------------------------------------------------- */

static void conn_free(conn *c)
{
    for (queued *q = c->q_head, *n; q; q = n) {
        n = q->next;
        nng_msg_free(q->msg);
        free(q);
    }
    nng_msg_free(c->msg);
    free(c);
}

static void on_closed(uv_handle_t *h)
{
    conn *c = (conn *)h;
    c->closed = 1;
    if (!c->inflight) conn_free(c);
}

static void unwait(ld_sp *sp, conn *c)
{
    if (!c->waiting) return;
    conn **pp = &sp->w_head, *prev = NULL;
    while (*pp && *pp != c) prev = *pp, pp = &(*pp)->wnext;
    if (*pp) *pp = c->wnext;
    if (sp->w_tail == c) sp->w_tail = prev;
    c->waiting = 0;
    c->wnext = NULL;
}

/* drop closes <c>; its requests in hand are answered into the void. */
static void drop(conn *c)
{
    if (c->closing) return;
    ld_sp *sp = c->sp;
    c->closing = 1;
    unwait(sp, c);
    if (c->prev) c->prev->next = c->next;
    else sp->conns = c->next;
    if (c->next) c->next->prev = c->prev;
    uv_close((uv_handle_t *)&c->tcp, on_closed);
}

static void pause_reading(conn *c)
{
    if (c->reading) uv_read_stop((uv_stream_t *)&c->tcp);
    c->reading = 0;
}

/* ---- requests ---------------------------------------------------------------------- */

/* backtrace_len: the bytes of <m>'s backtrace (whole 4-byte words up to the
 * one with its top bit set); 0 if it has more than MAX_HOPS words, -1 if the
 * payload ends before it does. */
static long backtrace_len(nng_msg *m)
{
    const uint8_t *p = nng_msg_body(m);
    size_t len = nng_msg_len(m);
    for (size_t hops = 1, off = 0;; hops++, off += 4) {
        if (hops > MAX_HOPS) return 0;
        if (len < off + 4) return -1;
        if (p[off] & 0x80u) return (long)(off + 4);
    }
}

/* hand gives request <m> of <c> to a free context; 0, or -1 if none is free. */
static int hand(ld_sp *sp, conn *c, nng_msg *m)
{
    ld_rep *r = sp->rep;
    ld_rep_ctx *x = r->idle;
    if (!x) return -1;
    long bt = backtrace_len(m);
    if (bt < 0) { /* the peer speaks garbage: NNG kicks it too */
        nng_msg_free(m);
        drop(c);
        return 0;
    }
    if (bt == 0) { /* too many hops: dropped, as NNG does */
        nng_msg_free(m);
        return 0;
    }
    r->idle = x->idle_next;
    x->idle_next = NULL;
    memcpy(x->bt, nng_msg_body(m), (size_t)bt);
    x->bt_len = (uint8_t)bt;
    nng_msg_trim(m, (size_t)bt);
    x->conn = c;
    x->pipe = c->id;
    c->inflight++;
    r->requests++;
    r->on_request(r, x, m);
    return 0;
}

static void enqueue(ld_sp *sp, conn *c, nng_msg *m)
{
    queued *q = malloc(sizeof *q);
    if (!q) {
        ld_log_rl(LD_ERR, "SP-NOMEM", "out of memory queueing a request; connection closed");
        nng_msg_free(m);
        drop(c);
        return;
    }
    q->msg = m;
    q->next = NULL;
    if (c->q_tail) c->q_tail->next = q;
    else c->q_head = q;
    c->q_tail = q;
    pause_reading(c);
    if (!c->waiting) {
        c->waiting = 1;
        if (sp->w_tail) sp->w_tail->wnext = c;
        else sp->w_head = c;
        sp->w_tail = c;
    }
}

/* frame_done takes a whole payload: to a context, or to the queue. */
static void frame_done(conn *c)
{
    nng_msg *m = c->msg;
    c->msg = NULL;
    c->state = HEADER;
    c->head_got = 0;
    if (c->q_head || hand(c->sp, c, m) != 0) enqueue(c->sp, c, m);
}

/* ---- reading ----------------------------------------------------------------------- */

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    conn *c = (conn *)h;
    (void)hint;
    if (c->state == PAYLOAD && c->need - c->got >= RBUF) { /* straight into the message */
        buf->base = (char *)nng_msg_body(c->msg) + c->got;
        buf->len = c->need - c->got;
        return;
    }
    buf->base = c->rbuf;
    buf->len = sizeof c->rbuf;
}

/* greeted checks the peer's greeting: SP, version 0, a REQ. */
static int greeted(const conn *c)
{
    const uint8_t *g = c->greet;
    return g[0] == 0 && g[1] == 'S' && g[2] == 'P' && g[3] == 0 && g[4] == 0 &&
           g[5] == PROTO_REQ && g[6] == 0 && g[7] == 0;
}

/* start_payload reads a frame's length; 0, or -1 if <c> was dropped. */
static int start_payload(conn *c)
{
    uint64_t len = 0;
    for (int i = 0; i < 8; i++) len = len << 8 | c->head[i];
    ld_sp *sp = c->sp;
    if ((sp->max_msg && len > sp->max_msg) || len > SIZE_MAX / 2) {
        drop(c); /* NNG closes the pipe of a message over its limit */
        return -1;
    }
    if (nng_msg_alloc(&c->msg, (size_t)len) != 0) {
        ld_log_rl(LD_ERR, "SP-NOMEM", "out of memory for a %llu-byte request; connection closed",
                  (unsigned long long)len);
        drop(c);
        return -1;
    }
    c->need = (size_t)len;
    c->got = 0;
    c->state = PAYLOAD;
    if (len == 0) { /* no backtrace: garbage */
        drop(c);
        return -1;
    }
    return 0;
}

/* consume parses <n> bytes of c->rbuf; stops early if <c> is dropped. */
static void consume(conn *c, const uint8_t *p, size_t n)
{
    while (n && !c->closing) {
        size_t k;
        switch (c->state) {
        case GREETING:
            k = 8 - c->greet_got < n ? 8 - c->greet_got : n;
            memcpy(c->greet + c->greet_got, p, k);
            c->greet_got += k;
            if (c->greet_got == 8) {
                if (!greeted(c)) {
                    ld_log_rl(LD_WARN, "SP-PEER", "a connection that is not an SP REQ peer was closed");
                    drop(c);
                    return;
                }
                c->state = HEADER;
            }
            break;
        case HEADER:
            k = 8 - c->head_got < n ? 8 - c->head_got : n;
            memcpy(c->head + c->head_got, p, k);
            c->head_got += k;
            if (c->head_got == 8 && start_payload(c) != 0) return;
            break;
        default:
            k = c->need - c->got < n ? c->need - c->got : n;
            memcpy((uint8_t *)nng_msg_body(c->msg) + c->got, p, k);
            c->got += k;
            if (c->got == c->need) frame_done(c);
            break;
        }
        p += k;
        n -= k;
    }
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    conn *c = (conn *)s;
    if (nread < 0) {
        drop(c); /* the peer closed, or the connection failed */
        return;
    }
    if (nread == 0 || c->closing) return;
    if (buf->base != c->rbuf) { /* read straight into the payload */
        c->got += (size_t)nread;
        if (c->got == c->need) frame_done(c);
        return;
    }
    consume(c, (const uint8_t *)buf->base, (size_t)nread);
}

static void on_greeted(uv_write_t *w, int status)
{
    if (status < 0 && status != UV_ECANCELED) drop((conn *)w->data);
}

static void on_unaccepted(uv_handle_t *h) { free(h); } /* the handle is the conn's start */

static void on_connection(uv_stream_t *server, int status)
{
    ld_sp *sp = server->data;
    if (status < 0) {
        ld_log_rl(LD_WARN, "SP-ACCEPT", "accept failed: %s", uv_strerror(status));
        return;
    }
    conn *c = calloc(1, sizeof *c);
    if (!c) {
        ld_log_rl(LD_ERR, "SP-NOMEM", "out of memory for a new connection");
        return; /* it waits in the backlog; the next accept may succeed */
    }
    c->sp = sp;
    uv_tcp_init(sp->loop, &c->tcp);
    if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
        uv_close((uv_handle_t *)&c->tcp, on_unaccepted);
        return;
    }
    if (++sp->next_id == 0) sp->next_id = 1;
    c->id = sp->next_id;
    c->opened_ms = uv_now(sp->loop);
    if ((c->next = sp->conns)) c->next->prev = c;
    sp->conns = c;
    uv_tcp_nodelay(&c->tcp, 1);
    uv_buf_t b = uv_buf_init((char *)greeting, sizeof greeting);
    c->greet_w.data = c;
    if (uv_write(&c->greet_w, (uv_stream_t *)&c->tcp, &b, 1, on_greeted) != 0 ||
        uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) != 0) {
        drop(c);
        return;
    }
    c->reading = 1;
}

/* on_sweep closes connections that have not greeted within GREET_MS. */
static void on_sweep(uv_timer_t *t)
{
    ld_sp *sp = t->data;
    uint64_t now = uv_now(sp->loop);
    for (conn *c = sp->conns, *n; c; c = n) {
        n = c->next;
        if (c->state == GREETING && now - c->opened_ms > GREET_MS) drop(c);
    }
}

/* ---- replies ----------------------------------------------------------------------- */

static void on_written(uv_write_t *w, int status)
{
    reply *rp = (reply *)w;
    nng_msg_free(rp->body);
    if (status < 0 && status != UV_ECANCELED) drop(rp->c);
    free(rp);
}

static void on_kick(uv_idle_t *h)
{
    uv_idle_stop(h);
    serve_waiting(h->data);
}

/* release ends <x>'s request: the context is free again. A request waiting
 * for one gets it on the next loop turn, not now: the owner is still inside
 * its ld_rep_reply and may tidy the context's state after it. */
static void release(ld_sp *sp, ld_rep_ctx *x)
{
    conn *c = x->conn;
    x->conn = NULL;
    x->bt_len = 0;
    x->idle_next = sp->rep->idle;
    sp->rep->idle = x;
    if (c && --c->inflight == 0 && c->closed) conn_free(c);
    if (sp->w_head && !sp->closing) uv_idle_start(&sp->kick, on_kick);
}

void ld_sp_reply(ld_sp *sp, ld_rep_ctx *x, void *body_)
{
    nng_msg *body = body_;
    conn *c = x->conn;
    if (!c || c->closing || sp->closing || !body) {
        nng_msg_free(body);
        release(sp, x);
        return;
    }
    if (c->tcp.write_queue_size > LD_SP_WRITE_MAX) {
        ld_log_rl(LD_WARN, "SP-SLOW-PEER", "a peer that does not read its replies (%zu bytes "
                  "queued) was disconnected", c->tcp.write_queue_size);
        nng_msg_free(body);
        drop(c);
        release(sp, x);
        return;
    }
    reply *rp = malloc(sizeof *rp);
    if (!rp) {
        ld_log_rl(LD_ERR, "SP-NOMEM", "out of memory for a reply; connection closed");
        nng_msg_free(body);
        drop(c);
        release(sp, x);
        return;
    }
    uint64_t len = (uint64_t)x->bt_len + nng_msg_len(body);
    for (int i = 7; i >= 0; i--, len >>= 8) rp->head[i] = (uint8_t)len;
    memcpy(rp->head + 8, x->bt, x->bt_len);
    rp->c = c;
    rp->body = body;
    uv_buf_t b[2] = {uv_buf_init((char *)rp->head, 8u + x->bt_len),
                     uv_buf_init(nng_msg_body(body), (unsigned)nng_msg_len(body))};
    if (uv_write(&rp->w, (uv_stream_t *)&c->tcp, b, 2, on_written) != 0) {
        nng_msg_free(body);
        free(rp);
        drop(c);
    }
    release(sp, x);
}

/* serve_waiting gives free contexts to queued requests, oldest connection
 * first, and reads again from a connection whose queue is empty. */
static void serve_waiting(ld_sp *sp)
{
    while (sp->w_head && sp->rep->idle && !sp->closing) {
        conn *c = sp->w_head;
        queued *q = c->q_head;
        c->q_head = q->next;
        if (!c->q_head) c->q_tail = NULL;
        nng_msg *m = q->msg;
        free(q);
        if (!c->q_head) {
            unwait(sp, c);
            if (!c->closing && uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) == 0)
                c->reading = 1;
        }
        hand(sp, c, m);
    }
}

/* ---- the listener ------------------------------------------------------------------ */

static void on_handle_closed(uv_handle_t *h)
{
    ld_sp *sp = h->data;
    if (--sp->handles == 0) free(sp);
}

int ld_sp_open(ld_sp **out, ld_rep *rep, uv_loop_t *loop, const char *url, size_t max_msg)
{
    struct sockaddr_storage addr;
    if (!ld_sp_url_ok(url) || resolve(url, &addr) != 0) return LD_EINVAL;
    ld_sp *sp = calloc(1, sizeof *sp);
    if (!sp) return LD_ENOMEM;
    sp->loop = loop;
    sp->rep = rep;
    sp->max_msg = max_msg;
    uv_tcp_init(loop, &sp->listener);
    uv_timer_init(loop, &sp->sweep);
    uv_idle_init(loop, &sp->kick);
    sp->listener.data = sp->sweep.data = sp->kick.data = sp;
    sp->handles = 3;
    int rv = uv_tcp_bind(&sp->listener, (const struct sockaddr *)&addr, 0);
    if (rv == 0) rv = uv_listen((uv_stream_t *)&sp->listener, 511, on_connection);
    if (rv != 0) {
        ld_log(LD_ERR, "NNG-LISTEN", "cannot listen on %s: %s", url, uv_strerror(rv));
        sp->closing = 1;
        uv_close((uv_handle_t *)&sp->listener, on_handle_closed);
        uv_close((uv_handle_t *)&sp->sweep, on_handle_closed);
        uv_close((uv_handle_t *)&sp->kick, on_handle_closed);
        return LD_EIO;
    }
    uv_timer_start(&sp->sweep, on_sweep, 1000, 1000);
    *out = sp;
    return 0;
}

void ld_sp_close(ld_sp *sp)
{
    if (!sp || sp->closing) return;
    sp->closing = 1;
    for (size_t i = 0; i < sp->rep->nctx; i++) { /* requests in hand answer no one now */
        ld_rep_ctx *x = &sp->rep->ctxs[i];
        conn *c = x->conn;
        x->conn = NULL;
        if (c && --c->inflight == 0 && c->closed) conn_free(c); /* its peer left earlier */
    }
    while (sp->conns) drop(sp->conns);
    uv_close((uv_handle_t *)&sp->listener, on_handle_closed);
    uv_close((uv_handle_t *)&sp->sweep, on_handle_closed);
    uv_close((uv_handle_t *)&sp->kick, on_handle_closed);
}
