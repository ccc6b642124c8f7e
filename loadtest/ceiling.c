/* ceiling.c: `linkload ceiling`: what this machine can do without linkd.
 *
 * Measured in the same run as the linkd figures, because on a 2-vCPU VM the
 * numbers drift by tens of percent from one run to the next:
 *   1. NNG REQ/REP on tcp loopback: an in-process echo REP server on
 *      contexts, REQ clients with many requests in flight, messages of the
 *      size linkd traffic has (an IngestRequest of <batch> generated events,
 *      an IngestReply accepting them). No decoding, no logic.
 *   2. Redis, pipelined through hiredis async on libuv (linkd's client path):
 *      a. bare XADD of an event-sized entry;
 *      b. linkd's own Redis work per event: the intake script (GET seen key,
 *         XADD, SET seen key) per request of <batch> events, plus SET of the
 *         incident record and ZADD to the open set per event.
 *      Against a private redis-server (appendonly yes, everysec) in a temp
 *      dir, or an existing one with --redis. */
#include <hiredis/adapters/libuv.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <nng/nng.h>
#include <nng/supplemental/util/platform.h>
#include <nng/protocol/reqrep0/rep.h>
#include <nng/protocol/reqrep0/req.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "core/clock.h"
#include "core/err.h"
#include "core/rep.h"
#include "linkload.h"
#include "store/store.h"

typedef struct ceil_opts {
    double seconds;
    unsigned batch;
    unsigned connections, inflight;
    unsigned window;            /* Redis commands in flight */
    int redis_port;             /* private server's port; 0 = a free one */
    const char *redis_url;      /* existing server instead of a private one */
    int aof;
    const char *json;
    const char *only;           /* "nng", "redis" or NULL for both */
} ceil_opts;

/* ---- NNG echo ------------------------------------------------------------ */

enum { REP_WORKERS = 64 };

typedef struct echo_srv {
    nng_socket sock;
    nng_msg *reply;             /* template, duplicated for every answer */
    struct rep_worker {
        struct echo_srv *srv;
        nng_ctx ctx;
        nng_aio *aio;
        int sending;
    } w[REP_WORKERS];
} echo_srv;

static void rep_cb(void *arg)
{
    struct rep_worker *w = arg;
    int rv = nng_aio_result(w->aio);
    if (w->sending) {
        if (rv != 0) nng_msg_free(nng_aio_get_msg(w->aio));
        w->sending = 0;
        nng_ctx_recv(w->ctx, w->aio);
        return;
    }
    if (rv != 0) return;   /* closed or cancelled: stop */
    nng_msg_free(nng_aio_get_msg(w->aio));
    nng_msg *out;
    if (nng_msg_dup(&out, w->srv->reply) != 0) {
        nng_ctx_recv(w->ctx, w->aio);
        return;
    }
    nng_aio_set_msg(w->aio, out);
    w->sending = 1;
    nng_ctx_send(w->ctx, w->aio);
}

typedef struct echo_client {
    nng_socket sock;
    nng_msg *request;
    _Atomic int running;
    _Atomic uint64_t done;      /* round trips completed while counting */
    _Atomic int counting;
    _Atomic uint64_t errors;
    _Atomic int active;         /* workers with a round trip under way */
    unsigned nworkers;
    struct req_worker {
        struct echo_client *cl;
        nng_ctx ctx;
        nng_aio *aio;
        int receiving;
    } *w;
} echo_client;

/* req_send starts the next round trip of <w>, unless the client stopped.
 * <active> counts round trips under way so the stop can wait them out. */
static void req_send(struct req_worker *w)
{
    nng_msg *m;
    if (!atomic_load(&w->cl->running) || nng_msg_dup(&m, w->cl->request) != 0) {
        atomic_fetch_sub(&w->cl->active, 1);
        return;
    }
    w->receiving = 0;
    nng_aio_set_msg(w->aio, m);
    nng_ctx_send(w->ctx, w->aio);
}

static void req_fail(struct req_worker *w, int rv)
{
    if (rv != NNG_ECLOSED && rv != NNG_ECANCELED) atomic_fetch_add(&w->cl->errors, 1);
    atomic_fetch_sub(&w->cl->active, 1);
}

static void req_cb(void *arg)
{
    struct req_worker *w = arg;
    int rv = nng_aio_result(w->aio);
    if (!w->receiving) {
        if (rv != 0) {
            nng_msg_free(nng_aio_get_msg(w->aio));
            req_fail(w, rv);
            return;
        }
        w->receiving = 1;
        nng_ctx_recv(w->ctx, w->aio);
        return;
    }
    if (rv != 0) {
        req_fail(w, rv);
        return;
    }
    nng_msg_free(nng_aio_get_msg(w->aio));
    if (atomic_load(&w->cl->counting)) atomic_fetch_add(&w->cl->done, 1);
    req_send(w);
}

static int echo_srv_start(echo_srv *s, const char *url, unsigned batch)
{
    int rv;
    memset(s, 0, sizeof *s);
    if ((rv = lg_gen_reply(batch, &s->reply)) != 0) return rv;
    if ((rv = nng_rep0_open(&s->sock)) != 0) return rv;
    nng_socket_set_size(s->sock, NNG_OPT_RECVMAXSZ, 16u << 20);
    if ((rv = nng_listen(s->sock, url, NULL, 0)) != 0) return rv;
    for (unsigned i = 0; i < REP_WORKERS; i++) {
        struct rep_worker *w = &s->w[i];
        w->srv = s;
        if ((rv = nng_ctx_open(&w->ctx, s->sock)) != 0) return rv;
        if ((rv = nng_aio_alloc(&w->aio, rep_cb, w)) != 0) return rv;
        nng_ctx_recv(w->ctx, w->aio);
    }
    return 0;
}

/* echo_srv_stop closes the socket (aborting every context's operation), then
 * frees the aios, which waits for their callbacks. If the close gets stuck in
 * NNG, the aios are left to it. */
static void echo_srv_stop(echo_srv *s)
{
    if (ld_nng_close(s->sock, "echo REP socket", LD_NNG_CLOSE_MS) == 0)
        for (unsigned i = 0; i < REP_WORKERS; i++) nng_aio_free(s->w[i].aio);
    if (s->reply) nng_msg_free(s->reply);
}

/* echo_measure runs <conns> REQ sockets with <inflight> contexts each against
 * <url> for <seconds> (after 0.5 s of warm-up) and returns round trips/s. */
static double echo_measure(const char *url, const ceil_opts *o, nng_msg *request, uint64_t *errors)
{
    unsigned n = o->connections;
    echo_client *cl = calloc(n, sizeof *cl);
    double rate = -1;
    if (!cl) return rate;
    for (unsigned c = 0; c < n; c++) {
        cl[c].request = request;
        cl[c].nworkers = o->inflight;
        cl[c].w = calloc(o->inflight, sizeof *cl[c].w);
        atomic_store(&cl[c].running, 1);
        if (!cl[c].w || nng_req0_open(&cl[c].sock) != 0) goto done;
        nng_socket_set_ms(cl[c].sock, NNG_OPT_REQ_RESENDTIME, 3600 * 1000);
        if (nng_dial(cl[c].sock, url, NULL, 0) != 0) goto done;
        for (unsigned i = 0; i < o->inflight; i++) {
            struct req_worker *w = &cl[c].w[i];
            w->cl = &cl[c];
            if (nng_ctx_open(&w->ctx, cl[c].sock) != 0 || nng_aio_alloc(&w->aio, req_cb, w) != 0) goto done;
        }
    }
    for (unsigned c = 0; c < n; c++)
        for (unsigned i = 0; i < o->inflight; i++) {
            atomic_fetch_add(&cl[c].active, 1);
            req_send(&cl[c].w[i]);
        }
    lg_sleep_until(ld_mono_ns() + 500000000ull);
    uint64_t t0 = ld_mono_ns();
    for (unsigned c = 0; c < n; c++) atomic_store(&cl[c].counting, 1);
    lg_sleep_until(t0 + (uint64_t)(o->seconds * 1e9));
    for (unsigned c = 0; c < n; c++) atomic_store(&cl[c].counting, 0);
    uint64_t t1 = ld_mono_ns(), total = 0;
    for (unsigned c = 0; c < n; c++) {
        total += atomic_load(&cl[c].done);
        *errors += atomic_load(&cl[c].errors);
    }
    rate = (double)total / ((double)(t1 - t0) / 1e9);
done:
    /* Let the round trips under way finish (no new ones start), so closing
     * does not race with them; then close, which aborts any straggler. */
    for (unsigned c = 0; c < n; c++) atomic_store(&cl[c].running, 0);
    for (unsigned c = 0; c < n; c++) {
        uint64_t deadline = ld_mono_ns() + 2000000000ull;
        while (atomic_load(&cl[c].active) > 0 && ld_mono_ns() < deadline) lg_sleep_until(ld_mono_ns() + 1000000);
    }
    int stuck = 0;
    for (unsigned c = 0; c < n; c++) {
        /* Stuck in NNG: leave this client's workers and aios, which NNG may still use. */
        if (ld_nng_close(cl[c].sock, "echo REQ socket", LD_NNG_CLOSE_MS) != 0) {
            stuck = 1;
            continue;
        }
        for (unsigned i = 0; cl[c].w && i < o->inflight; i++) nng_aio_free(cl[c].w[i].aio);
        free(cl[c].w);
    }
    if (!stuck) free(cl);
    return rate;
}

typedef struct nng_result {
    double msgs, events;
    size_t req_bytes, rep_bytes;
    uint64_t errors;
} nng_result;

static int ceiling_nng(const ceil_opts *o, nng_result *r)
{
    char url[64];
    snprintf(url, sizeof url, "tcp://127.0.0.1:%d", lg_free_port());
    echo_srv srv;
    nng_msg *request = NULL;
    memset(r, 0, sizeof *r);
    lg_gen *g = NULL;
    lg_mix mix;
    lg_mix_default(&mix);
    lg_gen_spec spec = {.mix = &mix, .status = LINKD__V1__STATUS__STATUS_TEST};
    int rv = echo_srv_start(&srv, url, o->batch);
    if (rv != 0) {
        fprintf(stderr, "linkload: echo server on %s: %s\n", url, nng_strerror(rv));
        goto done;
    }
    if (!(g = lg_gen_new("Lceiling0", "linkload-ceiling", 1))) {
        rv = NNG_ENOMEM;
        goto done;
    }
    if ((rv = lg_gen_request(g, &spec, 0, o->batch, ld_wall_ms(), &request)) != 0) goto done;
    r->req_bytes = nng_msg_len(request);
    r->rep_bytes = nng_msg_len(srv.reply);
    r->msgs = echo_measure(url, o, request, &r->errors);
    r->events = r->msgs * o->batch;
    if (r->msgs < 0) rv = NNG_ECONNREFUSED;
done:
    if (rv != 0) fprintf(stderr, "linkload: nng ceiling failed: %s\n", nng_strerror(rv));
    echo_srv_stop(&srv);
    if (request) nng_msg_free(request);
    lg_gen_free(g);
    return rv;
}

/* ---- Redis --------------------------------------------------------------- */

enum { PB_BYTES = 200, REC_BYTES = 600 };   /* an Envelope; an IncidentRecord with one task */

/* An event's audit trail as linkd writes it at these rates: one RPUSH of six
 * lines (opened, then per task dispatched, delivered, acknowledged: 1.6 tasks
 * an event), the hash on the last (src/audit/audit.h). */
enum { AUDIT_LINES = 6, OPENED_BYTES = 300, LINE_BYTES = 140, HASH_BYTES = 74 };

enum redis_mode {
    MODE_XADD,          /* bare XADD, one per event */
    MODE_SCRIPT,        /* the intake script only, one call per <batch> events */
    MODE_LINKD,         /* the intake script, then per event SET record, ZADD open, RPUSH audit */
};

typedef struct redis_bench {
    uv_loop_t loop;
    uv_timer_t stop_timer;
    redisAsyncContext *ac;
    const ceil_opts *o;
    int mode;                   /* enum redis_mode */
    int running, failed;
    uint64_t inflight;          /* commands */
    uint64_t seq;               /* events issued */
    uint64_t done;              /* XADDs, or events whose last command answered */
    uint64_t t0, t1;
    char pb[PB_BYTES], rec[REC_BYTES];
    char opened[OPENED_BYTES], line[LINE_BYTES], last[LINE_BYTES + HASH_BYTES];
    char sha[41];
} redis_bench;

static void redis_fill(redis_bench *b);

static void on_reply(redisAsyncContext *ac, void *r, void *priv)
{
    redis_bench *b = ac->data;
    redisReply *reply = r;
    b->inflight--;
    if (!reply && b->t1) return;   /* dropped at the end of the run */
    if (!reply || reply->type == REDIS_REPLY_ERROR) {
        if (!b->failed)
            fprintf(stderr, "linkload: redis: %s\n", reply ? reply->str : ac->errstr);
        b->failed = 1;
        b->running = 0;
        return;
    }
    if (priv) b->done += (uintptr_t)priv;
    redis_fill(b);
}

/* issue_xadd sends one XADD; it counts one. */
static void issue_xadd(redis_bench *b)
{
    b->seq++;
    redisAsyncCommand(b->ac, on_reply, (void *)(uintptr_t)1,
                      "XADD linkload:ceil:events * src linkload eid %llu pb %b",
                      (unsigned long long)b->seq, b->pb, (size_t)PB_BYTES);
    b->inflight++;
}

/* issue_linkd_request sends what linkd sends for one ingest request of
 * <batch> events: one EVALSHA of the intake script, then per event a SET of
 * its incident record, a ZADD to the open set and an RPUSH of its audit
 * lines (the last one counts the batch). */
static void issue_linkd_request(redis_bench *b)
{
    unsigned n = b->o->batch;
    size_t argc = 4 + 2 + 1 + 4 * n;
    const char **argv = calloc(argc, sizeof *argv);
    size_t *lens = calloc(argc, sizeof *lens);
    char(*keys)[64] = calloc(n, sizeof *keys);
    char(*eids)[32] = calloc(n, sizeof *eids);
    if (!argv || !lens || !keys || !eids) {
        b->failed = 1;
        b->running = 0;
        goto done;
    }
    size_t a = 0;
    argv[a++] = "EVALSHA";
    argv[a++] = b->sha;
    argv[a++] = "3";
    argv[a++] = "linkload:ceil:events";
    argv[a++] = "linkload:ceil:seen:1";  /* this dedup window's seen hash, and the last */
    argv[a++] = "linkload:ceil:seen:0";
    argv[a++] = "1209600";
    for (unsigned i = 0; i < n; i++) {
        snprintf(eids[i], sizeof eids[i], "%llu", (unsigned long long)(b->seq + i));
        snprintf(keys[i], sizeof keys[i], "linkload:%s", eids[i]);
        argv[a++] = keys[i];
        argv[a++] = "linkload";
        argv[a++] = eids[i];
        argv[a++] = b->pb;
        lens[a - 1] = PB_BYTES;
    }
    for (size_t i = 0; i < a; i++)
        if (!lens[i]) lens[i] = strlen(argv[i]);
    int records = b->mode == MODE_LINKD;
    redisAsyncCommandArgv(b->ac, on_reply, records ? NULL : (void *)(uintptr_t)n, (int)a, argv, lens);
    b->inflight++;
    for (unsigned i = 0; records && i < n; i++) {
        redisAsyncCommand(b->ac, on_reply, NULL, "SET linkload:ceil:inc:I%s %b", eids[i], b->rec,
                          (size_t)REC_BYTES);
        redisAsyncCommand(b->ac, on_reply, NULL, "ZADD linkload:ceil:open %llu I%s",
                          (unsigned long long)(1732290000000ull + b->seq + i), eids[i]);
        char akey[64];
        snprintf(akey, sizeof akey, "linkload:ceil:audit:I%s", eids[i]);
        const char *av[2 + AUDIT_LINES] = {"RPUSH", akey, b->opened};
        size_t al[2 + AUDIT_LINES] = {5, strlen(akey), OPENED_BYTES};
        for (unsigned k = 3; k < 2 + AUDIT_LINES; k++) av[k] = b->line, al[k] = LINE_BYTES;
        av[1 + AUDIT_LINES] = b->last, al[1 + AUDIT_LINES] = sizeof b->last;
        redisAsyncCommandArgv(b->ac, on_reply, (void *)(uintptr_t)(i + 1 == n ? n : 0),
                              2 + AUDIT_LINES, av, al);
        b->inflight += 3;
    }
    b->seq += n;
done:
    free(argv);
    free(lens);
    free(keys);
    free(eids);
}

/* redis_fill tops the pipeline up to the window. Bounded by the window. */
static void redis_fill(redis_bench *b)
{
    while (b->running && b->inflight < b->o->window) {
        if (b->mode == MODE_XADD) issue_xadd(b);
        else issue_linkd_request(b);
    }
}

static void on_stop_timer(uv_timer_t *t)
{
    redis_bench *b = t->data;
    if (b->t0 == 0) {   /* warm-up over: start counting */
        b->t0 = ld_mono_ns();
        b->done = 0;
        uv_timer_start(t, on_stop_timer, (uint64_t)(b->o->seconds * 1000), 0);
        return;
    }
    b->t1 = ld_mono_ns();
    b->running = 0;
    redisAsyncDisconnect(b->ac);   /* lets replies in flight arrive, then closes */
    uv_close((uv_handle_t *)t, NULL);
}

static void on_script(redisAsyncContext *ac, void *r, void *priv)
{
    redis_bench *b = ac->data;
    redisReply *reply = r;
    (void)priv;
    if (!reply || reply->type != REDIS_REPLY_STRING || reply->len != 40) {
        fprintf(stderr, "linkload: redis SCRIPT LOAD failed\n");
        b->failed = 1;
        redisAsyncDisconnect(ac);
        uv_close((uv_handle_t *)&b->stop_timer, NULL);
        return;
    }
    memcpy(b->sha, reply->str, 40);
    b->running = 1;
    uv_timer_start(&b->stop_timer, on_stop_timer, 500, 0);
    redis_fill(b);
}

/* redis_measure runs one mode against host:port; returns counted units/s. */
static double redis_measure(const char *host, int port, const ceil_opts *o, int mode)
{
    redis_bench *b = calloc(1, sizeof *b);
    double rate = -1;
    if (!b) return rate;
    b->o = o;
    b->mode = mode;
    memset(b->pb, 'p', sizeof b->pb);
    memset(b->rec, 'r', sizeof b->rec);
    memset(b->opened, 'o', sizeof b->opened);
    memset(b->line, 'l', sizeof b->line);
    memset(b->last, 'h', sizeof b->last);
    uv_loop_init(&b->loop);
    uv_timer_init(&b->loop, &b->stop_timer);
    b->stop_timer.data = b;
    b->ac = redisAsyncConnect(host, port);
    if (!b->ac || b->ac->err) {
        fprintf(stderr, "linkload: redis %s:%d: %s\n", host, port, b->ac ? b->ac->errstr : "no memory");
        if (b->ac) redisAsyncFree(b->ac);
        uv_close((uv_handle_t *)&b->stop_timer, NULL);
        uv_run(&b->loop, UV_RUN_DEFAULT);
        goto done;
    }
    b->ac->data = b;
    redisLibuvAttach(b->ac, &b->loop);
    redisAsyncCommand(b->ac, on_script, NULL, "SCRIPT LOAD %s", ld_store_intake_script);
    uv_run(&b->loop, UV_RUN_DEFAULT);   /* ends when the connection and timer are closed */
    if (!b->failed && b->t1 > b->t0) rate = (double)b->done / ((double)(b->t1 - b->t0) / 1e9);
done:
    uv_loop_close(&b->loop);
    free(b);
    return rate;
}

/* redis_cleanup removes the keys the benchmark wrote to a server we did not
 * start (a private one is deleted with its directory). */
static void redis_cleanup(const char *host, int port)
{
    struct timeval tv = {5, 0};
    redisContext *c = redisConnectWithTimeout(host, port, tv);
    if (!c || c->err) goto done;
    unsigned long long cursor = 0;
    for (int rounds = 0; rounds < 100000; rounds++) {   /* bounded: SCAN terminates */
        redisReply *r = redisCommand(c, "SCAN %llu MATCH linkload:ceil:* COUNT 1000", cursor);
        if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 2) {
            if (r) freeReplyObject(r);
            break;
        }
        cursor = strtoull(r->element[0]->str, NULL, 10);
        for (size_t i = 0; i < r->element[1]->elements; i++) {
            redisReply *d = redisCommand(c, "UNLINK %s", r->element[1]->element[i]->str);
            if (d) freeReplyObject(d);
        }
        freeReplyObject(r);
        if (cursor == 0) break;
    }
done:
    if (c) redisFree(c);
}

/* parse_redis_url accepts redis://host:port[/db]. */
static int parse_redis_url(const char *url, char *host, size_t hlen, int *port)
{
    const char *p = strncmp(url, "redis://", 8) == 0 ? url + 8 : NULL;
    const char *colon = p ? strchr(p, ':') : NULL;
    if (!colon || (size_t)(colon - p) >= hlen) return LD_EINVAL;
    memcpy(host, p, (size_t)(colon - p));
    host[colon - p] = '\0';
    *port = atoi(colon + 1);
    return *port > 0 && *port < 65536 ? 0 : LD_EINVAL;
}

/* ---- command ------------------------------------------------------------- */

static void usage(FILE *f)
{
    fprintf(f,
            "usage: linkload ceiling [--seconds S] [--batch B] [--connections C] [--inflight K]\n"
            "                        [--window W] [--redis-port P | --redis redis://host:port]\n"
            "                        [--no-aof] [--json FILE]\n"
            "Measures this machine's ceilings with no linkd: NNG REQ/REP round trips on tcp\n"
            "loopback with linkd-sized messages, and pipelined Redis (bare XADD, and linkd's\n"
            "per-event commands). Starts a private redis-server (appendonly yes, everysec)\n"
            "on port P (default: a free port) unless --redis names an existing one.\n");
}

static int parse_opts(int argc, char **argv, ceil_opts *o)
{
    *o = (ceil_opts){.seconds = 5, .batch = 10, .connections = 2, .inflight = 16, .window = 256,
                     .aof = 1};
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int takes = 1;
        if (strcmp(a, "--help") == 0) {
            usage(stdout);
            exit(LG_EXIT_OK);
        } else if (strcmp(a, "--no-aof") == 0) {
            o->aof = 0;
            takes = 0;
        } else if (!v) {
            fprintf(stderr, "linkload ceiling: %s needs a value\n", a);
            return -1;
        } else if (strcmp(a, "--seconds") == 0) o->seconds = atof(v);
        else if (strcmp(a, "--batch") == 0) o->batch = (unsigned)atoi(v);
        else if (strcmp(a, "--connections") == 0) o->connections = (unsigned)atoi(v);
        else if (strcmp(a, "--inflight") == 0) o->inflight = (unsigned)atoi(v);
        else if (strcmp(a, "--window") == 0) o->window = (unsigned)atoi(v);
        else if (strcmp(a, "--redis-port") == 0) o->redis_port = atoi(v);
        else if (strcmp(a, "--redis") == 0) o->redis_url = v;
        else if (strcmp(a, "--json") == 0) o->json = v;
        else if (strcmp(a, "--only") == 0) o->only = v;
        else {
            fprintf(stderr, "linkload ceiling: unknown option %s\n", a);
            return -1;
        }
        i += takes;
    }
    if (!(o->seconds > 0 && o->seconds <= 600) || o->batch < 1 || o->batch > LG_MAX_BATCH ||
        o->connections < 1 || o->connections > 64 || o->inflight < 1 || o->inflight > 1024 ||
        o->window < 1 || o->window > 100000 || o->redis_port < 0 || o->redis_port > 65535) {
        fprintf(stderr, "linkload ceiling: a value is out of range (see --help)\n");
        return -1;
    }
    return 0;
}

static void write_json(const ceil_opts *o, const nng_result *n, double xadd, double script,
                       double evps)
{
    FILE *f = fopen(o->json, "w");
    if (!f) {
        perror(o->json);
        return;
    }
    fprintf(f,
            "{\"mode\":\"ceiling\",\"seconds\":%g,\"batch\":%u,\"connections\":%u,\"inflight\":%u,"
            "\"nng_msgs_per_s\":%.0f,\"nng_events_per_s\":%.0f,\"nng_request_bytes\":%zu,"
            "\"nng_reply_bytes\":%zu,\"nng_errors\":%llu,\"redis_aof\":%s,\"redis_window\":%u,"
            "\"redis_xadd_per_s\":%.0f,\"redis_script_events_per_s\":%.0f,"
            "\"redis_linkd_events_per_s\":%.0f}\n",
            o->seconds, o->batch, o->connections, o->inflight, n->msgs, n->events, n->req_bytes,
            n->rep_bytes, (unsigned long long)n->errors, o->aof || o->redis_url ? "true" : "false",
            o->window, xadd, script, evps);
    fclose(f);
}

int lg_cmd_ceiling(int argc, char **argv)
{
    ceil_opts o;
    if (parse_opts(argc, argv, &o) != 0) {
        usage(stderr);
        return LG_EXIT_USAGE;
    }
    nng_result n = {0};
    int rv = 0;
    if (!o.only || strcmp(o.only, "nng") == 0) {
        rv = ceiling_nng(&o, &n);
        printf("ceiling nng  req/rep tcp loopback, batch %u, %u sockets x %u in flight, "
           "request %zu B, reply %zu B:\n"
           "             %.0f msgs/s = %.0f events/s%s\n",
           o.batch, o.connections, o.inflight, n.req_bytes, n.rep_bytes, n.msgs, n.events,
           n.errors ? " (with errors)" : "");
        fflush(stdout);
    }
    if (o.only && strcmp(o.only, "redis") != 0) {
        if (o.json) write_json(&o, &n, 0, 0, 0);
        return rv == 0 ? LG_EXIT_OK : LG_EXIT_SOFTWARE;
    }

    lg_redis_srv srv = {0};
    char host[256] = "127.0.0.1";
    int port = 0;
    if (o.redis_url) {
        if (parse_redis_url(o.redis_url, host, sizeof host, &port) != 0) {
            fprintf(stderr, "linkload ceiling: --redis wants redis://host:port\n");
            return LG_EXIT_USAGE;
        }
    } else if (lg_redis_start(&srv, o.redis_port, o.aof) != 0) {
        return LG_EXIT_UNAVAILABLE;
    } else {
        port = srv.port;
    }
    /* A private server is deleted with its directory; an existing one is
     * cleaned of our keys after each part. */
    double xadd = redis_measure(host, port, &o, MODE_XADD);
    if (o.redis_url) redis_cleanup(host, port);
    double script = redis_measure(host, port, &o, MODE_SCRIPT);
    if (o.redis_url) redis_cleanup(host, port);
    double evps = redis_measure(host, port, &o, MODE_LINKD);
    if (o.redis_url) redis_cleanup(host, port);
    lg_redis_stop(&srv);
    const char *aof = o.redis_url ? "existing server" : o.aof ? "appendonly everysec" : "no persistence";
    printf("ceiling redis XADD pipelined, window %u, %s:\n"
           "             %.0f ops/s\n"
           "ceiling redis intake script alone (HMGET twice, XADD per event, HSET; one call per %u "
           "events):\n"
           "             %.0f events/s\n"
           "ceiling redis linkd's per-event work (intake script, then SET record, ZADD open, RPUSH "
           "audit):\n"
           "             %.0f events/s\n",
           o.window, aof, xadd, o.batch, script, evps);
    if (o.json) write_json(&o, &n, xadd, script, evps);
    return rv == 0 && xadd > 0 && evps > 0 ? LG_EXIT_OK : LG_EXIT_SOFTWARE;
}

/* ---- linkload echo: the transport's own latency ------------------------------- */

static void echo_usage(FILE *f)
{
    fprintf(f, "usage: linkload echo [--ingest URL] [--batch B] [--seconds S]\n"
               "An NNG REP server with no logic at all, where linkd would listen: it answers\n"
               "every request at once, from NNG's own thread, with B events ACCEPTED. Point\n"
               "`linkload run --no-terminals --batch B` at it to see what the transport alone\n"
               "costs at a given rate on this machine (the floor under linkd's intake->ACCEPTED).\n"
               "Stops after S seconds (default 30). Defaults: tcp://127.0.0.1:7450, batch 10.\n");
}

int lg_cmd_echo(int argc, char **argv)
{
    const char *url = "tcp://127.0.0.1:7450";
    unsigned batch = 10;
    double secs = 30;
    for (int i = 2; i < argc; i += 2) {   /* --flag value pairs */
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--help") == 0) {
            echo_usage(stdout);
            return LG_EXIT_OK;
        }
        if (!v) {
            echo_usage(stderr);
            return LG_EXIT_USAGE;
        }
        if (strcmp(a, "--ingest") == 0) url = v;
        else if (strcmp(a, "--batch") == 0) batch = (unsigned)atoi(v);
        else if (strcmp(a, "--seconds") == 0) secs = atof(v);
        else {
            echo_usage(stderr);
            return LG_EXIT_USAGE;
        }
    }
    if (batch < 1 || batch > LG_MAX_BATCH || !(secs > 0 && secs <= 3600)) {
        echo_usage(stderr);
        return LG_EXIT_USAGE;
    }
    echo_srv s;
    int rv = echo_srv_start(&s, url, batch);
    if (rv != 0) {
        fprintf(stderr, "linkload echo: %s: %s\n", url, nng_strerror(rv));
        echo_srv_stop(&s);
        return LG_EXIT_UNAVAILABLE;
    }
    printf("linkload echo: answering on %s for %g s\n", url, secs);
    fflush(stdout);
    nng_msleep((nng_duration)(secs * 1000));
    echo_srv_stop(&s);
    return LG_EXIT_OK;
}
