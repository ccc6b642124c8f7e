/* server.c: libwebsockets on the daemon's libuv loop: HTTP requests in,
 * answers out in pieces, WebSocket clients of the board.
 *
 * lws runs on a foreign loop (LWS_SERVER_OPTION_LIBUV with foreign_loops):
 * its handles live on our loop and its callbacks run on the loop thread, so
 * handlers read the engine directly. Its libuv glue is a plugin that lws
 * loads at run time (Debian package libwebsockets-evlib-uv). Closing takes
 * two steps: lws_context_destroy while the loop runs (lws closes its
 * handles), then again after uv_run returns (frees the context). */
#include "http/http_int.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <libwebsockets.h>

#include "core/err.h"
#include "core/log.h"

#define WS_QUEUE 64               /* messages queued per board client before it resyncs */
#define WS_CHUNK (32 * 1024)      /* bytes written per writable callback */
#define HTTP_CHUNK (32 * 1024)
#define MAX_CLIENTS 64
#define TICK_MS 250
#define DISCARD_MAX (1 << 20)   /* bytes of an oversized body read and dropped */

typedef struct ws_msg {
    int refs;
    size_t len;
    unsigned char *data;          /* LWS_PRE bytes, then the payload */
} ws_msg;

typedef struct ws_client {
    struct ws_client *next, *prev;
    struct lws *wsi;
    ld_http *h;
    ws_msg *q[WS_QUEUE];
    int qlen;
    size_t off;                   /* bytes of q[0] sent */
    int need_snapshot;
    size_t rx_len;                /* bytes of the incoming message so far */
    int too_big;                  /* over max_ws_frame: dropped, then closed with 1009 */
    int linked;
} ws_client;

typedef struct http_conn {
    ld_http_answer ans;
    ld_buf body;
    int body_too_big, active, answered, close_after;
    ld_http_wait *wait;           /* the answer waits for Redis */
    int resumed;                  /* ... and is made: send it when writable */
    size_t sent;
    char method[8];
    char uri[512];
    char query[512];
    int loopback, authorized, token_given;
} http_conn;

void ld_http_config_defaults(ld_http_config *c)
{
    memset(c, 0, sizeof *c);
    c->max_body = 16 * 1024;
    c->max_ws_frame = 4096;
    c->board_max = LD_HTTP_BOARD_MAX;
}

/* ---- logging ------------------------------------------------------------------ */

static void lws_emit(int level, const char *line)
{
    char buf[256];
    size_t n = strnlen(line, sizeof buf - 1);
    memcpy(buf, line, n);
    while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r')) n--;
    buf[n] = '\0';
    ld_log_rl(level & LLL_ERR ? LD_ERR : LD_WARN, "HTTP-LWS", "%s", buf);
}

/* ---- messages to board clients ---------------------------------------------------- */

static ws_msg *msg_new(const ld_buf *b)
{
    ws_msg *m = malloc(sizeof *m);
    if (!m) return NULL;
    m->data = malloc(LWS_PRE + b->len + 1);
    if (!m->data) {
        free(m);
        return NULL;
    }
    memcpy(m->data + LWS_PRE, b->p, b->len);
    m->len = b->len;
    m->refs = 0;
    return m;
}

static void msg_unref(ws_msg *m)
{
    if (m && --m->refs <= 0) {
        free(m->data);
        free(m);
    }
}

/* client_drop_queue drops what a client has queued, except a message it is
 * half-way through (a WebSocket message cannot be cut). */
static void client_drop_queue(ws_client *c)
{
    int keep = c->qlen && c->off ? 1 : 0;
    for (int i = keep; i < c->qlen; i++) msg_unref(c->q[i]);
    c->qlen = keep;
}

static void client_push(ws_client *c, ws_msg *m)
{
    if (c->need_snapshot) return; /* the snapshot will carry it */
    if (c->qlen == WS_QUEUE) {
        /* Too slow for the stream: it gets a fresh snapshot when it can take it. */
        client_drop_queue(c);
        c->need_snapshot = 1;
        c->h->stats.ws_clients_dropped++;
        ld_log_rl(LD_WARN, "HTTP-WS-SLOW", "board client behind by %d messages: resyncing it",
                  WS_QUEUE);
        return;
    }
    m->refs++;
    c->q[c->qlen++] = m;
}

void ld_ws_broadcast(ld_http *h, ld_buf *b)
{
    if (!h->clients || b->oom) return;
    ws_msg *m = msg_new(b);
    if (!m) return;
    m->refs = 1; /* ours, until every client has it */
    for (ws_client *c = h->clients; c; c = c->next) {
        client_push(c, m);
        lws_callback_on_writable(c->wsi);
    }
    h->stats.ws_messages++;
    msg_unref(m);
}

static void client_unlink(ld_http *h, ws_client *c)
{
    if (!c->linked) return;
    if (c->prev) c->prev->next = c->next;
    else h->clients = c->next;
    if (c->next) c->next->prev = c->prev;
    c->linked = 0;
    h->nclients--;
    client_drop_queue(c);
    if (c->qlen) msg_unref(c->q[0]);
    c->qlen = 0;
}

/* snapshot_msg is this tick's snapshot, built once for every client that
 * needs one before the next push (a room of boards reconnecting at once
 * costs one build, not one each). It stays consistent with the stream: what
 * changes after it is built is still pending, and goes out at the next push. */
static ws_msg *snapshot_msg(ld_http *h)
{
    if (h->snapshot) return h->snapshot;
    ld_buf b;
    ld_buf_init(&b, 0);
    if (ld_board_snapshot(h, &b) == 0 && !b.oom && (h->snapshot = msg_new(&b)) != NULL)
        h->snapshot->refs = 1; /* the cache's */
    ld_buf_fini(&b);
    return h->snapshot;
}

static void snapshot_forget(ld_http *h)
{
    msg_unref(h->snapshot);
    h->snapshot = NULL;
}

static int client_write(ld_http *h, ws_client *c)
{
    if (c->need_snapshot && c->off == 0) {
        client_drop_queue(c);
        ws_msg *m = snapshot_msg(h);
        if (!m) return -1; /* out of memory: drop the client */
        m->refs++;
        memmove(&c->q[1], &c->q[0], (size_t)c->qlen * sizeof c->q[0]);
        c->q[0] = m;
        c->qlen++;
        c->need_snapshot = 0;
    }
    if (!c->qlen) return 0;
    ws_msg *m = c->q[0];
    size_t n = m->len - c->off;
    if (n > WS_CHUNK) n = WS_CHUNK;
    int start = c->off == 0, end = c->off + n == m->len;
    int flags = lws_write_ws_flags(LWS_WRITE_TEXT, start, end);
    /* lws writes the frame header into the LWS_PRE bytes before the piece; those
     * bytes were already sent (or are the reserved head), so they may go. */
    unsigned char *p = m->data + LWS_PRE + c->off;
    unsigned char save[LWS_PRE];
    memcpy(save, p - LWS_PRE, LWS_PRE);
    int w = lws_write(c->wsi, p, n, (enum lws_write_protocol)flags);
    memcpy(p - LWS_PRE, save, LWS_PRE);
    if (w < (int)n) return -1;
    c->off += n;
    if (end) {
        msg_unref(m);
        memmove(&c->q[0], &c->q[1], (size_t)(c->qlen - 1) * sizeof c->q[0]);
        c->qlen--;
        c->off = 0;
    }
    if (c->qlen || c->need_snapshot) lws_callback_on_writable(c->wsi);
    return 0;
}

/* ---- who is asking --------------------------------------------------------------- */

static int peer_is_loopback(struct lws *wsi)
{
    char ip[64] = "";
    lws_get_peer_simple(wsi, ip, sizeof ip);
    return strncmp(ip, "127.", 4) == 0 || strcmp(ip, "::1") == 0 ||
           strncmp(ip, "::ffff:127.", 11) == 0;
}

/* Constant time, so the token cannot be guessed byte by byte. */
static int token_equal(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    unsigned char d = (unsigned char)(la != lb);
    for (size_t i = 0; i < la && i < lb; i++) d |= (unsigned char)(a[i] ^ b[i]);
    return d == 0 && la > 0;
}

static void check_auth(ld_http *h, struct lws *wsi, http_conn *c)
{
    char hdr[256] = "";
    c->loopback = peer_is_loopback(wsi);
    c->token_given = c->authorized = 0;
    if (lws_hdr_copy(wsi, hdr, sizeof hdr, WSI_TOKEN_HTTP_AUTHORIZATION) > 0) {
        c->token_given = 1;
        const char *tok = strncasecmp(hdr, "Bearer ", 7) == 0 ? hdr + 7 : "";
        c->authorized = h->token[0] && token_equal(tok, h->token);
    }
}

static void copy_query(struct lws *wsi, char *out, size_t len)
{
    size_t off = 0;
    out[0] = '\0';
    for (int i = 0; i < 16; i++) {
        char frag[256];
        int n = lws_hdr_copy_fragment(wsi, frag, sizeof frag, WSI_TOKEN_HTTP_URI_ARGS, i);
        if (n <= 0) break;
        int w = snprintf(out + off, len - off, "%s%s", off ? "&" : "", frag);
        if (w < 0 || (size_t)w >= len - off) break;
        off += (size_t)w;
    }
}

static const char *method_of(struct lws *wsi)
{
    static const struct { enum lws_token_indexes t; const char *name; } m[] = {
        {WSI_TOKEN_GET_URI, "GET"},       {WSI_TOKEN_POST_URI, "POST"},
        {WSI_TOKEN_PUT_URI, "PUT"},       {WSI_TOKEN_DELETE_URI, "DELETE"},
        {WSI_TOKEN_PATCH_URI, "PATCH"},   {WSI_TOKEN_OPTIONS_URI, "OPTIONS"},
        {WSI_TOKEN_HEAD_URI, "HEAD"},
    };
    for (size_t i = 0; i < sizeof m / sizeof m[0]; i++)
        if (lws_hdr_total_length(wsi, m[i].t) > 0) return m[i].name;
    return "OTHER";
}

/* ---- HTTP ------------------------------------------------------------------------ */

static void conn_reset(http_conn *c)
{
    if (c->wait) c->wait->conn = NULL;
    ld_buf_fini(&c->ans.body);
    ld_buf_fini(&c->body);
    memset(c, 0, sizeof *c);
}

static int send_headers(struct lws *wsi, http_conn *c)
{
    unsigned char hb[LWS_PRE + 1024], *start = hb + LWS_PRE, *p = start, *end = hb + sizeof hb - 1;
    ld_http_answer *a = &c->ans;
    if (lws_add_http_common_headers(wsi, (unsigned int)a->status, a->ctype,
                                    (lws_filepos_t)a->body.len, &p, end) ||
        lws_add_http_header_by_name(wsi, (const unsigned char *)"cache-control:",
                                    (const unsigned char *)"no-store", 8, &p, end))
        return -1;
    if (a->allow && lws_add_http_header_by_name(wsi, (const unsigned char *)"allow:",
                                                (const unsigned char *)a->allow,
                                                (int)strlen(a->allow), &p, end))
        return -1;
    if (a->www_auth &&
        lws_add_http_header_by_name(wsi, (const unsigned char *)"www-authenticate:",
                                    (const unsigned char *)"Bearer realm=\"linkd\"", 20, &p, end))
        return -1;
    if (lws_finalize_write_http_header(wsi, start, &p, end)) return -1;
    c->answered = 1;
    lws_callback_on_writable(wsi);
    return 0;
}

static int finish_answer(ld_http *h, struct lws *wsi, http_conn *c);

static int answer(ld_http *h, struct lws *wsi, http_conn *c)
{
    ld_http_request q = {
        .method = c->method, .path = c->uri, .query = c->query,
        .body = c->body.p ? c->body.p : "", .body_len = c->body.len,
        .loopback = c->loopback, .authorized = c->authorized, .token_given = c->token_given,
    };
    ld_buf_init(&c->ans.body, LWS_PRE);
    c->ans.status = 200;
    c->ans.ctype = "application/json";
    if (c->body_too_big)
        ld_http_error(h, &c->ans, 413, "body", "request body over %zu bytes", h->cfg.max_body);
    else
        ld_http_route(h, &q, &c->ans);
    if (c->ans.wait) {
        c->wait = c->ans.wait;
        c->wait->conn = c;
        c->wait->wsi = wsi;
        return 0; /* ld_http_wait_finish asks for the writable callback */
    }
    return finish_answer(h, wsi, c);
}

static int finish_answer(ld_http *h, struct lws *wsi, http_conn *c)
{
    if (c->ans.body.oom) {
        ld_buf_reset(&c->ans.body);
        c->ans.body.oom = 0;
        ld_http_error(h, &c->ans, 503, NULL, "out of memory");
    }
    h->stats.requests++;
    if (c->ans.status >= 100 && c->ans.status < 600) h->stats.responses[c->ans.status / 100]++;
    return send_headers(wsi, c);
}

static int write_body(struct lws *wsi, http_conn *c)
{
    ld_buf *b = &c->ans.body;
    size_t n = b->len - c->sent;
    if (n > HTTP_CHUNK) n = HTTP_CHUNK;
    int final = c->sent + n == b->len;
    unsigned char *p = (unsigned char *)(b->p ? b->p : "") + c->sent;
    if (n && lws_write(wsi, p, n, final ? LWS_WRITE_HTTP_FINAL : LWS_WRITE_HTTP) < (int)n)
        return -1;
    c->sent += n;
    if (!final) {
        lws_callback_on_writable(wsi);
        return 0;
    }
    int close_after = c->close_after;
    conn_reset(c);
    if (close_after) return -1;
    return lws_http_transaction_completed(wsi) ? -1 : 0;
}

static int cb_http(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                   size_t len)
{
    ld_http *h = lws_context_user(lws_get_context(wsi));
    http_conn *c = user;
    switch (reason) {
    case LWS_CALLBACK_HTTP: {
        conn_reset(c);
        c->active = 1;
        snprintf(c->method, sizeof c->method, "%s", method_of(wsi));
        snprintf(c->uri, sizeof c->uri, "%s", in ? (const char *)in : "/");
        copy_query(wsi, c->query, sizeof c->query);
        check_auth(h, wsi, c);
        ld_buf_init(&c->body, 0);
        if (strcmp(c->method, "POST") && strcmp(c->method, "PUT") && strcmp(c->method, "PATCH"))
            return answer(h, wsi, c);
        char cl[32] = "";
        unsigned long long announced = 0;
        if (lws_hdr_copy(wsi, cl, sizeof cl, WSI_TOKEN_HTTP_CONTENT_LENGTH) > 0)
            announced = strtoull(cl, NULL, 10);
        if (announced > h->cfg.max_body) {
            h->stats.bodies_too_large++;
            c->body_too_big = 1;
            /* A body up to DISCARD_MAX is read and dropped, so the client reads
             * the answer; a larger one is not read at all. */
            if (announced > DISCARD_MAX) {
                c->close_after = 1;
                return answer(h, wsi, c);
            }
        }
        return 0; /* the body comes next */
    }
    case LWS_CALLBACK_HTTP_BODY:
        if (c->answered) return 0;
        if (c->body.len + len > h->cfg.max_body) {
            if (!c->body_too_big) h->stats.bodies_too_large++;
            c->body_too_big = 1;
            return 0;
        }
        ld_buf_put(&c->body, in, len);
        return 0;
    case LWS_CALLBACK_HTTP_BODY_COMPLETION:
        if (c->answered) return 0;
        return answer(h, wsi, c);
    case LWS_CALLBACK_HTTP_WRITEABLE:
        if (!c->answered && c->resumed) {
            c->resumed = 0;
            return finish_answer(h, wsi, c);
        }
        if (!c->answered) return 0;
        return write_body(wsi, c);
    case LWS_CALLBACK_HTTP_DROP_PROTOCOL:
    case LWS_CALLBACK_CLOSED_HTTP:
        if (c) conn_reset(c);
        return 0;
    case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
        return -1; /* WebSocket only with the board's subprotocol */
    default:
        return lws_callback_http_dummy(wsi, reason, user, in, len);
    }
}

/* ---- the board's WebSocket ------------------------------------------------------- */

static int ws_allowed(ld_http *h, struct lws *wsi)
{
    if (h->nclients >= MAX_CLIENTS) {
        ld_log_rl(LD_WARN, "HTTP-WS-FULL", "board connection refused: %d clients already",
                  MAX_CLIENTS);
        return 0;
    }
    if (peer_is_loopback(wsi)) return 1;
    char tok[160];
    if (lws_get_urlarg_by_name(wsi, "token=", tok, sizeof tok) && h->token[0] &&
        token_equal(tok, h->token))
        return 1;
    h->stats.unauthorized++;
    return 0;
}

static int cb_ws(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                 size_t len)
{
    ld_http *h = lws_context_user(lws_get_context(wsi));
    ws_client *c = user;
    switch (reason) {
    case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
        return ws_allowed(h, wsi) ? 0 : -1;
    case LWS_CALLBACK_ESTABLISHED:
        memset(c, 0, sizeof *c);
        c->wsi = wsi;
        c->h = h;
        c->need_snapshot = 1;
        c->next = h->clients;
        if (h->clients) h->clients->prev = c;
        h->clients = c;
        c->linked = 1;
        h->nclients++;
        lws_callback_on_writable(wsi);
        return 0;
    case LWS_CALLBACK_SERVER_WRITEABLE:
        return client_write(h, c);
    case LWS_CALLBACK_RECEIVE:
        /* The board only listens; a client message is bounded and ignored. */
        c->rx_len += len;
        if (c->rx_len > h->cfg.max_ws_frame && !c->too_big) {
            c->too_big = 1;
            h->stats.ws_frames_too_large++;
            ld_log_rl(LD_WARN, "HTTP-WS-TOOBIG", "board client sent a message over %zu bytes: "
                      "closing it", h->cfg.max_ws_frame);
        }
        /* The rest of an oversized message is read and dropped (up to a bound),
         * so the close frame reaches the client instead of a reset. */
        if (c->too_big && (lws_is_final_fragment(wsi) ||
                           c->rx_len > h->cfg.max_ws_frame + DISCARD_MAX)) {
            lws_close_reason(wsi, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE,
                             (unsigned char *)"message too large", 17);
            return -1;
        }
        if (lws_is_final_fragment(wsi)) c->rx_len = 0;
        return 0;
    case LWS_CALLBACK_CLOSED:
        client_unlink(h, c);
        return 0;
    default: return 0;
    }
}

static const struct lws_protocols protocols[] = {
    {"http", cb_http, sizeof(http_conn), 0, 0, NULL, 0},
    {"linkd-board", cb_ws, sizeof(ws_client), 4096, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

/* ---- the tick: board pushes, loop lag, the day's roll --------------------------- */

static void on_tick(uv_timer_t *t)
{
    ld_http *h = t->data;
    uint64_t now = uv_now(h->src.loop);
    if (h->tick_expected && now > h->tick_expected)
        ld_metrics_lag(&h->metrics, (double)(now - h->tick_expected) / 1000.0);
    else if (h->tick_expected)
        ld_metrics_lag(&h->metrics, 0);
    h->tick_expected = now + TICK_MS;
    ld_metrics_roll(&h->metrics, ld_clock_now(h->src.clock));
    snapshot_forget(h); /* what changed since it was built goes out now */
    ld_board_tick(h, now);
}

/* ---- open and close ----------------------------------------------------------------- */

static int parse_listen(ld_http *h, const char *s)
{
    const char *colon = strrchr(s, ':');
    const char *port = colon ? colon + 1 : s;
    char *end;
    long p = strtol(port, &end, 10);
    if (!*port || *end || p < 1 || p > 65535) return LD_EINVAL;
    h->port = (int)p;
    if (!colon) {
        snprintf(h->addr, sizeof h->addr, "127.0.0.1");
        return 0;
    }
    size_t n = (size_t)(colon - s);
    if (n && s[0] == '[' && s[n - 1] == ']') s++, n -= 2;
    if (n == 0 || n >= sizeof h->addr) return LD_EINVAL;
    memcpy(h->addr, s, n);
    h->addr[n] = '\0';
    return 0;
}

/* port_taken says whether <h>'s address and port cannot be bound now, as
 * libwebsockets would (SO_REUSEADDR). libwebsockets 4.1 on a foreign libuv
 * loop returns a context even when its vhost could not bind, and that
 * context can be neither used nor destroyed: ask first. An address that is
 * not a numeric IPv4 or IPv6 one is left to libwebsockets. */
static int port_taken(const ld_http *h)
{
    struct sockaddr_storage sa;
    memset(&sa, 0, sizeof sa);
    socklen_t len;
    if (uv_ip4_addr(h->addr, h->port, (struct sockaddr_in *)&sa) == 0)
        len = sizeof(struct sockaddr_in);
    else if (uv_ip6_addr(h->addr, h->port, (struct sockaddr_in6 *)&sa) == 0)
        len = sizeof(struct sockaddr_in6);
    else
        return 0;
    int fd = socket(sa.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return 0;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    int taken = bind(fd, (struct sockaddr *)&sa, len) != 0 && errno == EADDRINUSE;
    close(fd);
    return taken;
}

static int read_token(ld_http *h, const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        ld_log(LD_ERR, "HTTP-TOKEN", "--admin-token-file %s: %s", path, strerror(errno));
        return LD_EINVAL;
    }
    size_t n = fread(h->token, 1, sizeof h->token - 1, f);
    fclose(f);
    h->token[n] = '\0';
    while (n && isspace((unsigned char)h->token[n - 1])) h->token[--n] = '\0';
    if (n < 16) {
        ld_log(LD_ERR, "HTTP-TOKEN", "--admin-token-file %s: the token must be 16 to 127 "
               "characters (has %zu)", path, n);
        memset(h->token, 0, sizeof h->token);
        return LD_EINVAL;
    }
    for (size_t i = 0; i < n; i++)
        if (!isgraph((unsigned char)h->token[i])) {
            ld_log(LD_ERR, "HTTP-TOKEN", "--admin-token-file %s: the token must be printable "
                   "without spaces", path);
            memset(h->token, 0, sizeof h->token);
            return LD_EINVAL;
        }
    return 0;
}

int ld_http_open(ld_http **out, const ld_http_config *cfg, const ld_http_sources *src)
{
    int rv;
    *out = NULL;
    ld_http *h = calloc(1, sizeof *h);
    if (!h) return LD_ENOMEM;
    h->cfg = *cfg;
    h->src = *src;
    ld_map_init(&h->pending_set);
    ld_map_init(&h->closed_set);
    if ((rv = parse_listen(h, cfg->listen)) != 0) {
        ld_log(LD_ERR, "HTTP-LISTEN", "--http %s: expected PORT or ADDR:PORT", cfg->listen);
        goto fail;
    }
    if (cfg->token_file && (rv = read_token(h, cfg->token_file)) != 0) goto fail;
    h->pending = calloc(LD_BOARD_PENDING_MAX, sizeof *h->pending);
    h->closed = calloc(LD_CLOSED_RING, sizeof *h->closed);
    if (!h->pending || !h->closed ||
        (rv = ld_metrics_init(&h->metrics, src->engine->rules)) != 0) {
        rv = LD_ENOMEM;
        goto fail;
    }
    ld_metrics_roll(&h->metrics, ld_clock_now(src->clock));

    lws_set_log_level(LLL_ERR | LLL_WARN, lws_emit);
    struct lws_context_creation_info info;
    memset(&info, 0, sizeof info);
    void *loops[1] = {src->loop};
    info.port = h->port;
    info.iface = h->addr;
    info.protocols = protocols;
    info.foreign_loops = loops;
    info.user = h;
    info.vhost_name = "linkd";
    info.server_string = "linkd";
    info.timeout_secs = 20;
    info.max_http_header_data = 4096;
    info.options = LWS_SERVER_OPTION_LIBUV | LWS_SERVER_OPTION_VALIDATE_UTF8 |
                   LWS_SERVER_OPTION_HTTP_HEADERS_SECURITY_BEST_PRACTICES_ENFORCE;
    if (!strchr(h->addr, ':')) info.options |= LWS_SERVER_OPTION_DISABLE_IPV6;
    if (port_taken(h)) {
        ld_log(LD_ERR, "HTTP-LISTEN", "cannot serve HTTP on %s:%d: the address is in use",
               h->addr, h->port);
        rv = LD_EIO;
        goto fail;
    }
    h->lws = lws_create_context(&info);
    if (!h->lws) {
        ld_log(LD_ERR, "HTTP-LISTEN", "cannot serve HTTP on %s:%d (address in use, or the "
               "libwebsockets libuv plugin, package libwebsockets-evlib-uv, is missing)",
               h->addr, h->port);
        rv = LD_EIO;
        goto fail;
    }
    if (!lws_get_vhost_by_name(h->lws, "linkd")) {
        /* Taken between port_taken and here: the context is left as it is
         * (destroying it crashes libwebsockets 4.1); linkd exits. */
        ld_log(LD_ERR, "HTTP-LISTEN", "cannot serve HTTP on %s:%d: the address is in use",
               h->addr, h->port);
        h->lws = NULL;
        rv = LD_EIO;
        goto fail;
    }
    uv_timer_init(src->loop, &h->tick);
    h->tick.data = h;
    h->tick_open = 1;
    uv_timer_start(&h->tick, on_tick, TICK_MS, TICK_MS);
    ld_log(LD_NOTICE, "HTTP", "serving http://%s:%d/ (metrics, health, API, board); "
           "supervisor actions %s", h->addr, h->port,
           h->token[0] ? "need the admin token" : "disabled (no --admin-token-file)");
    *out = h;
    return 0;
fail:
    ld_http_free(h);
    return rv;
}

void ld_http_wait_start(ld_http *h, ld_http_answer *a, ld_http_wait *w)
{
    w->h = h;
    w->conn = NULL;
    w->wsi = NULL;
    w->prev = NULL;
    w->next = h->waits;
    if (h->waits) h->waits->prev = w;
    h->waits = w;
    a->wait = w;
}

ld_http_answer *ld_http_wait_answer(ld_http_wait *w)
{
    return w->h && w->conn ? &w->conn->ans : NULL;
}

void ld_http_wait_finish(ld_http_wait *w)
{
    if (!w->h) return;
    if (w->prev) w->prev->next = w->next;
    else w->h->waits = w->next;
    if (w->next) w->next->prev = w->prev;
    if (w->conn) {
        w->conn->wait = NULL;
        w->conn->ans.wait = NULL;
        w->conn->resumed = 1;
        lws_callback_on_writable(w->wsi);
    }
    w->h = NULL;
    w->conn = NULL;
}

void ld_http_close(ld_http *h)
{
    if (!h || h->closing) return;
    h->closing = 1;
    /* Answers still waiting are dropped with their connections. */
    for (ld_http_wait *w = h->waits; w; w = w->next) {
        if (w->conn) w->conn->wait = NULL;
        w->h = NULL;
        w->conn = NULL;
    }
    h->waits = NULL;
    if (h->tick_open) {
        uv_timer_stop(&h->tick);
        uv_close((uv_handle_t *)&h->tick, NULL);
        h->tick_open = 0;
    }
    if (h->lws) lws_context_destroy(h->lws); /* closes lws's handles on the running loop */
}

void ld_http_free(ld_http *h)
{
    if (!h) return;
    if (h->lws) lws_context_destroy(h->lws); /* the second step: frees the context */
    h->lws = NULL;
    snapshot_forget(h);
    ld_metrics_fini(&h->metrics);
    ld_map_fini(&h->pending_set);
    ld_map_fini(&h->closed_set);
    free(h->pending);
    free(h->closed);
    memset(h->token, 0, sizeof h->token);
    free(h);
}

/* ---- observations ---------------------------------------------------------------- */

static void remember_closed(ld_http *h, const char *id)
{
    char *slot = h->closed[h->closed_next % LD_CLOSED_RING];
    if (slot[0]) ld_map_del(&h->closed_set, slot);
    snprintf(slot, LD_INCIDENT_ID_LEN, "%s", id);
    ld_map_put(&h->closed_set, slot, slot);
    h->closed_next++;
}

int ld_http_recently_closed(const ld_http *h, const char *id)
{
    return ld_map_get(&h->closed_set, id) != NULL;
}

void ld_http_observe(void *arg, const ld_observation *o)
{
    ld_http *h = arg;
    ld_metrics_observe(&h->metrics, h->src.engine, o);
    if (o->kind == LINKD__V1__FEED_KIND__FEED_KIND_INCIDENT_CLOSED && o->inc)
        remember_closed(h, o->inc->id);
    ld_board_observe(h, o);
}
