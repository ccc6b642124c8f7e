#include "spc.h"

#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PROTO_REQ 0x30
#define PROTO_REP 0x31

enum { IDLE, CONNECTING, GREETING, READY, CLOSING, CLOSED };

static const uint8_t greeting[8] = {0, 'S', 'P', 0, 0, PROTO_REQ, 0, 0};

int lg_spc_url_ok(const char *url) { return strncmp(url, "tcp://", 6) == 0; }

int lg_spc_init(lg_spc *c, uv_loop_t *loop, const char *url, size_t max_reply, lg_spc_done done,
                void *arg)
{
    memset(c, 0, sizeof *c);
    if (!lg_spc_url_ok(url)) return NNG_EADDRINVAL;
    char host[256];
    const char *hp = url + 6, *colon = strrchr(hp, ':');
    if (!colon || colon - hp >= (long)sizeof host || colon == hp) return NNG_EADDRINVAL;
    memcpy(host, hp, (size_t)(colon - hp));
    host[colon - hp] = '\0';
    char *h = host;
    size_t hl = strlen(h);
    if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']') h[hl - 1] = '\0', h++;
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_NUMERICSERV};
    struct addrinfo *ai = NULL;
    if (getaddrinfo(h, colon + 1, &hints, &ai) != 0 || !ai) return NNG_EADDRINVAL;
    memcpy(&c->addr, ai->ai_addr, ai->ai_addrlen);
    freeaddrinfo(ai);
    c->loop = loop;
    c->max_reply = max_reply;
    c->done = done;
    c->arg = arg;
    c->state = IDLE;
    uv_timer_init(loop, &c->timer);
    c->timer.data = c;
    c->handles = 1;
    return 0;
}

static void start_connect(lg_spc *c);
static void write_request(lg_spc *c);

/* complete ends the request in hand with <status>. */
static void complete(lg_spc *c, int status, const uint8_t *body, size_t len)
{
    if (!c->busy) return;
    c->busy = 0;
    uv_timer_stop(&c->timer);
    if (c->req) { /* never written */
        nng_msg_free(c->req);
        c->req = NULL;
    }
    c->done(c, status, body, len);
}

static void on_tcp_closed(uv_handle_t *h)
{
    lg_spc *c = h->data;
    c->handles--;
    if (c->state == CLOSED) return;
    c->state = IDLE;
    if (c->busy) start_connect(c); /* a request came while the old connection closed */
}

/* fail closes the connection and ends the request in hand with <err>. */
static void fail(lg_spc *c, int err)
{
    if (c->state == CONNECTING || c->state == GREETING || c->state == READY) {
        c->state = CLOSING;
        uv_close((uv_handle_t *)&c->tcp, on_tcp_closed);
    }
    complete(c, err, NULL, 0);
}

static void on_timeout(uv_timer_t *t) { fail(t->data, NNG_ETIMEDOUT); }

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    lg_spc *c = h->data;
    (void)hint;
    static _Thread_local char scratch[16384];
    if (c->state == READY && c->head_got == 12 && c->need - c->got >= sizeof scratch) {
        buf->base = (char *)c->body + c->got; /* a large reply: straight into place */
        buf->len = c->need - c->got;
        return;
    }
    buf->base = scratch;
    buf->len = sizeof scratch;
}

/* reply_head takes a frame's length and request id; 0, or -1 after failing. */
static int reply_head(lg_spc *c)
{
    uint64_t len = 0;
    for (int i = 0; i < 8; i++) len = len << 8 | c->head[i];
    if (len < 4 || len - 4 > c->max_reply) {
        fail(c, NNG_EPROTO);
        return -1;
    }
    c->need = (size_t)(len - 4);
    c->got = 0;
    if (c->need > c->cap) {
        uint8_t *b = realloc(c->body, c->need);
        if (!b) {
            fail(c, NNG_ENOMEM);
            return -1;
        }
        c->body = b;
        c->cap = c->need;
    }
    return 0;
}

/* frame_done hands a whole reply over, if it answers the request in hand. */
static void frame_done(lg_spc *c)
{
    uint32_t id = (uint32_t)c->head[8] << 24 | (uint32_t)c->head[9] << 16 |
                  (uint32_t)c->head[10] << 8 | c->head[11];
    c->head_got = 0;
    if (id == c->want_id && c->busy) complete(c, 0, c->body, c->need);
}

static void consume(lg_spc *c, const uint8_t *p, size_t n)
{
    while (n && c->state != CLOSING && c->state != CLOSED) {
        size_t k;
        if (c->state == GREETING) {
            k = 8 - c->greet_got < n ? 8 - c->greet_got : n;
            memcpy(c->greet + c->greet_got, p, k);
            if ((c->greet_got += k) == 8) {
                const uint8_t *g = c->greet;
                if (g[0] || g[1] != 'S' || g[2] != 'P' || g[3] || g[4] || g[5] != PROTO_REP) {
                    fail(c, NNG_EPROTO);
                    return;
                }
                c->state = READY;
            }
        } else if (c->head_got < 12) {
            k = 12 - c->head_got < n ? 12 - c->head_got : n;
            memcpy(c->head + c->head_got, p, k);
            if ((c->head_got += k) == 12) {
                if (reply_head(c) != 0) return;
                if (c->need == 0) frame_done(c);
            }
        } else {
            k = c->need - c->got < n ? c->need - c->got : n;
            memcpy(c->body + c->got, p, k);
            if ((c->got += k) == c->need) frame_done(c);
        }
        p += k;
        n -= k;
    }
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    lg_spc *c = s->data;
    if (nread < 0) {
        fail(c, NNG_ECLOSED);
        return;
    }
    if (nread == 0 || c->state == CLOSING || c->state == CLOSED) return;
    if (buf->base == (char *)c->body + c->got && c->head_got == 12) { /* read into place */
        if ((c->got += (size_t)nread) == c->need) frame_done(c);
        return;
    }
    consume(c, (const uint8_t *)buf->base, (size_t)nread);
}

/* A write the socket could not take at once: the rest of a request, copied. */
typedef struct qwrite {
    uv_write_t w;
    lg_spc *c;
    uint8_t data[];
} qwrite;

static void on_written(uv_write_t *w, int status)
{
    qwrite *q = (qwrite *)w;
    lg_spc *c = q->c;
    free(q);
    if (status < 0 && status != UV_ECANCELED && c->state != CLOSED && c->state != CLOSING)
        fail(c, NNG_ECLOSED);
}

static void write_request(lg_spc *c)
{
    nng_msg *m = c->req;
    c->req = NULL;
    uint64_t len = 4 + (uint64_t)nng_msg_len(m);
    for (int i = 7; i >= 0; i--, len >>= 8) c->whead[i] = (uint8_t)len;
    uint32_t id = ++c->next_id | 0x80000000u;
    if (id == 0x80000000u) id = ++c->next_id | 0x80000000u;
    c->want_id = id;
    c->whead[8] = (uint8_t)(id >> 24), c->whead[9] = (uint8_t)(id >> 16);
    c->whead[10] = (uint8_t)(id >> 8), c->whead[11] = (uint8_t)id;
    /* uv_try_write first: a poll is small, and the socket has room */
    uv_buf_t b[2] = {uv_buf_init((char *)c->whead, 12),
                     uv_buf_init(nng_msg_body(m), (unsigned)nng_msg_len(m))};
    size_t total = 12 + nng_msg_len(m);
    int n = uv_try_write((uv_stream_t *)&c->tcp, b, 2);
    if (n == (int)total) {
        nng_msg_free(m);
        return;
    }
    if (n < 0 && n != UV_EAGAIN) {
        nng_msg_free(m);
        fail(c, NNG_ECLOSED);
        return;
    }
    /* The rest goes through a queued write, from a copy of its own. */
    size_t done = n > 0 ? (size_t)n : 0;
    qwrite *q = malloc(sizeof *q + (total - done));
    if (!q) {
        nng_msg_free(m);
        fail(c, NNG_ENOMEM);
        return;
    }
    q->c = c;
    size_t at = 0;
    for (size_t i = 0, off = 0; i < 2; off += b[i].len, i++) {
        size_t from = done > off ? done - off : 0;
        if (from >= b[i].len) continue;
        memcpy(q->data + at, b[i].base + from, b[i].len - from);
        at += b[i].len - from;
    }
    nng_msg_free(m);
    uv_buf_t rb = uv_buf_init((char *)q->data, (unsigned)at);
    if (uv_write(&q->w, (uv_stream_t *)&c->tcp, &rb, 1, on_written) != 0) {
        free(q);
        fail(c, NNG_ECLOSED);
    }
}

static void on_connect(uv_connect_t *r, int status)
{
    lg_spc *c = r->data;
    if (c->state != CONNECTING) return; /* closed meanwhile */
    if (status < 0) {
        fail(c, status == UV_ECONNREFUSED ? NNG_ECONNREFUSED : NNG_ECLOSED);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    c->state = GREETING;
    c->greet_got = c->head_got = 0;
    uv_buf_t g = uv_buf_init((char *)greeting, sizeof greeting);
    if (uv_try_write((uv_stream_t *)&c->tcp, &g, 1) != (int)sizeof greeting ||
        uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) != 0) {
        fail(c, NNG_ECLOSED);
        return;
    }
    if (c->busy && c->req) write_request(c);
}

static void start_connect(lg_spc *c)
{
    uv_tcp_init(c->loop, &c->tcp);
    c->tcp.data = c;
    c->handles++;
    c->state = CONNECTING;
    c->creq.data = c;
    if (uv_tcp_connect(&c->creq, &c->tcp, (const struct sockaddr *)&c->addr, on_connect) != 0) {
        c->state = CLOSING;
        uv_close((uv_handle_t *)&c->tcp, on_tcp_closed);
        complete(c, NNG_ECONNREFUSED, NULL, 0);
    }
}

void lg_spc_request(lg_spc *c, nng_msg *req, unsigned timeout_ms)
{
    if (c->state == CLOSED || c->busy) {
        nng_msg_free(req);
        return;
    }
    c->req = req;
    c->busy = 1;
    uv_timer_start(&c->timer, on_timeout, timeout_ms, 0);
    if (c->state == READY || c->state == GREETING) write_request(c);
    else if (c->state == IDLE) start_connect(c);
    /* CONNECTING: on_connect writes it; CLOSING: on_tcp_closed reconnects */
}

static void on_timer_closed(uv_handle_t *h)
{
    lg_spc *c = h->data;
    c->handles--;
}

void lg_spc_close(lg_spc *c)
{
    if (c->state == CLOSED || !c->done) return;
    int open = c->state == CONNECTING || c->state == GREETING || c->state == READY;
    c->state = CLOSED;
    c->busy = 0;
    nng_msg_free(c->req);
    c->req = NULL;
    uv_timer_stop(&c->timer);
    uv_close((uv_handle_t *)&c->timer, on_timer_closed);
    if (open) uv_close((uv_handle_t *)&c->tcp, on_tcp_closed);
    free(c->body);
    c->body = NULL;
    c->cap = 0;
}
