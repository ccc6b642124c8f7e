#include "store/store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <hiredis/sds.h>

#include "core/clock.h"
#include "core/err.h"
#include "core/log.h"
#include "store/uvredis.h"

/* Seen events are fields of hashes, one hash per dedup window (ld:seen:<n>,
 * n = Unix seconds / window): the field "<src>:<eid>" holds the event's
 * stream id. An event is looked up in this window's hash and the one before,
 * so a resend is known for at least one window and at most two.
 *
 * KEYS[1] = ld:events, KEYS[2] = this window's hash, KEYS[3] = the one
 * before; ARGV[1] = seconds KEYS[2] has left to live, then per event its
 * field, src, eid, pb. Returns per event the new stream id, or "=" + the
 * first one. Two lookups per request (HMGET), one XADD per new event, one
 * HSET per request: a per-event key with its own expiry (SET NX GET EX)
 * cost Redis twice the script time (BENCHMARKS, "Seen events by window"). */
const char ld_store_intake_script[] =
    "local n = (#ARGV - 1) / 4\n"
    "local f = {}\n"
    "for i = 1, n do f[i] = ARGV[4 * i - 2] end\n"
    "local now = redis.call('HMGET', KEYS[2], unpack(f))\n"
    "local before = redis.call('HMGET', KEYS[3], unpack(f))\n"
    "local out, set, mine = {}, {}, {}\n"
    "for i = 1, n do\n"
    "  local prev = now[i] or before[i] or mine[f[i]]\n"
    "  if prev then\n"
    "    out[i] = '=' .. prev\n"
    "  else\n"
    "    local id = redis.call('XADD', KEYS[1], '*', 'src', ARGV[4 * i - 1], 'eid', ARGV[4 * i],\n"
    "                          'pb', ARGV[4 * i + 1])\n"
    "    out[i] = id\n"
    "    mine[f[i]] = id\n"
    "    set[#set + 1] = f[i]\n"
    "    set[#set + 1] = id\n"
    "  end\n"
    "end\n"
    "if #set > 0 then\n"
    "  redis.call('HSET', KEYS[2], unpack(set))\n"
    "  redis.call('EXPIRE', KEYS[2], ARGV[1])\n"
    "end\n"
    "return out\n";

/* The same for events accepted into the spool while Redis was away: per
 * event field, src, eid, pb and spool id. The seen field holds the spool id,
 * so a resend is answered with the incident it opened ("IS..."); the stream
 * entry carries it as field sid. */
static const char reconcile_script[] =
    "local n = (#ARGV - 1) / 5\n"
    "local f = {}\n"
    "for i = 1, n do f[i] = ARGV[5 * i - 3] end\n"
    "local now = redis.call('HMGET', KEYS[2], unpack(f))\n"
    "local before = redis.call('HMGET', KEYS[3], unpack(f))\n"
    "local out, set, mine = {}, {}, {}\n"
    "for i = 1, n do\n"
    "  local prev = now[i] or before[i] or mine[f[i]]\n"
    "  if prev then\n"
    "    out[i] = '=' .. prev\n"
    "  else\n"
    "    local sid = ARGV[5 * i + 1]\n"
    "    redis.call('XADD', KEYS[1], '*', 'src', ARGV[5 * i - 2], 'eid', ARGV[5 * i - 1],\n"
    "               'pb', ARGV[5 * i], 'sid', sid)\n"
    "    out[i] = sid\n"
    "    mine[f[i]] = sid\n"
    "    set[#set + 1] = f[i]\n"
    "    set[#set + 1] = sid\n"
    "  end\n"
    "end\n"
    "if #set > 0 then\n"
    "  redis.call('HSET', KEYS[2], unpack(set))\n"
    "  redis.call('EXPIRE', KEYS[2], ARGV[1])\n"
    "end\n"
    "return out\n";

#define MAX_BATCH 1024
#define FIELD_MAX 292 /* source (<= 128) + ":" + event id (<= 128) */

typedef struct append_op {
    ld_store *s;
    ld_append_cb cb;
    void *arg;
    size_t n;
} append_op;

typedef struct command_op {
    ld_store *s;
    ld_reply_cb cb;
    void *arg;
} command_op;

static void connect_now(ld_store *s);
static void finish_stop(ld_store *s);

/* ---- commands ---------------------------------------------------------------- */

static void resp_len(ld_buf *b, char kind, size_t n)
{
    char tmp[24];
    tmp[0] = kind;
    size_t l = 1 + ld_fmt_u64(tmp + 1, n);
    tmp[l++] = '\r', tmp[l++] = '\n';
    ld_buf_put(b, tmp, l);
}

/* send_argv queues a command with hiredis, formatted here: hiredis's own
 * formatting costs a malloc per command and a printf per argument, and the
 * write-behind sends thousands of commands a second. REDIS_OK or REDIS_ERR. */
static int send_argv(ld_store *s, redisCallbackFn *fn, void *priv, int argc, const char **argv,
                     const size_t *lens)
{
    ld_buf *b = &s->resp;
    ld_buf_reset(b);
    resp_len(b, '*', (size_t)argc);
    for (int i = 0; i < argc; i++) {
        resp_len(b, '$', lens[i]);
        ld_buf_put(b, argv[i], lens[i]);
        ld_buf_put(b, "\r\n", 2);
    }
    if (b->oom) {
        ld_buf_fini(b); /* the next command starts from nothing */
        return REDIS_ERR;
    }
    return redisAsyncFormattedCommand(s->ac, fn, priv, b->p, b->len);
}

/* ---- connection ------------------------------------------------------------ */

/* parse_userinfo takes "[user[:password]@]" off the front of *url. */
static int parse_userinfo(ld_store *s, const char **url)
{
    const char *u = *url;
    const char *end = u + strcspn(u, "/?");
    if (u[0] == '/') end = u; /* unix:///path: no userinfo */
    const char *at = NULL;
    for (const char *p = u; p < end; p++)
        if (*p == '@') at = p;
    if (!at) return 0;
    /* user:password, :password (user "default") or user (password from a file) */
    const char *colon = memchr(u, ':', (size_t)(at - u));
    const char *pw = colon ? colon + 1 : at;
    size_t ul = (size_t)((colon ? colon : at) - u), pl = (size_t)(at - pw);
    if (ul >= sizeof s->user || pl >= sizeof s->password) return LD_EINVAL;
    memcpy(s->user, u, ul);
    s->user[ul] = '\0';
    memcpy(s->password, pw, pl);
    s->password[pl] = '\0';
    *url = at + 1;
    return 0;
}

int ld_store_init(ld_store *s, uv_loop_t *loop, const char *url, uint64_t timeout_ms,
                  void (*on_state)(void *arg, int up), void *arg)
{
    memset(s, 0, sizeof *s);
    ld_buf_init(&s->rec_bytes, 0);
    s->loop = loop;
    s->timeout_ms = timeout_ms ? timeout_ms : 5000;
    s->on_state = on_state;
    s->state_arg = arg;
    s->dedup_window_s = 7 * 24 * 3600;
    s->backoff_ms = 100;
    ld_pool_init(&s->ops, sizeof(struct append_op), 64);
    ld_pool_init(&s->cmd_ops, sizeof(struct command_op), 256);
    ld_buf_init(&s->resp, 0);
    int is_unix = strncmp(url, "unix://", 7) == 0;
    if (!is_unix && strncmp(url, "redis://", 8) != 0) return LD_EINVAL;
    url += is_unix ? 7 : 8;
    if (parse_userinfo(s, &url) != 0) return LD_EINVAL;
    if (is_unix) {
        const char *p = url;
        const char *q = strchr(p, '?');
        size_t n = q ? (size_t)(q - p) : strlen(p);
        if (n == 0 || n >= sizeof s->unix_path) return LD_EINVAL;
        memcpy(s->unix_path, p, n);
        if (q && sscanf(q, "?db=%d", &s->db) != 1) return LD_EINVAL;
        return 0;
    }
    const char *h = url;
    const char *colon = strrchr(h, ':');
    const char *slash = strchr(h, '/');
    size_t hl = colon ? (size_t)(colon - h) : slash ? (size_t)(slash - h) : strlen(h);
    if (hl == 0 || hl >= sizeof s->host) return LD_EINVAL;
    memcpy(s->host, h, hl);
    s->port = 6379;
    if (colon) {
        char *end;
        long port = strtol(colon + 1, &end, 10);
        if (end == colon + 1 || port <= 0 || port > 65535 || (*end && *end != '/'))
            return LD_EINVAL;
        s->port = (int)port;
    }
    if (slash && slash[1]) {
        char *end;
        long db = strtol(slash + 1, &end, 10);
        if (*end || db < 0 || db > 15) return LD_EINVAL;
        s->db = (int)db;
    }
    return 0;
}

static void set_ready(ld_store *s, int up)
{
    if (s->ready == up) return;
    s->ready = up;
    s->seen_window = 0; /* tidy again once up: windows may have passed */
    if (s->on_state) s->on_state(s->state_arg, up);
}

static void on_reconnect_timer(uv_timer_t *t)
{
    ld_store *s = t->data;
    if (!s->stopping) connect_now(s);
}

static void schedule_reconnect(ld_store *s)
{
    if (s->stopping) return;
    uv_timer_start(&s->reconnect_timer, on_reconnect_timer, s->backoff_ms, 0);
    s->backoff_ms = s->backoff_ms * 2 > 5000 ? 5000 : s->backoff_ms * 2;
    s->stats.reconnects++;
}

static void on_script_loaded(redisAsyncContext *ac, void *r, void *priv)
{
    ld_store *s = priv;
    redisReply *reply = r;
    (void)ac;
    if (reply && reply->type == REDIS_REPLY_STRING && reply->len == 40) {
        memcpy(s->sha, reply->str, 40);
        s->sha[40] = '\0';
    }
}

static void on_select(redisAsyncContext *ac, void *r, void *priv)
{
    ld_store *s = priv;
    redisReply *reply = r;
    (void)ac;
    if (reply && reply->type == REDIS_REPLY_ERROR && strncmp(reply->str, "NOAUTH", 6) == 0)
        return; /* on_auth has said why and reconnects */
    if (s->auth_failed) return;
    if (!reply || reply->type == REDIS_REPLY_ERROR) {
        ld_log(LD_ERR, "STORE-SELECT", "cannot select db %d: %s", s->db,
               reply ? reply->str : "disconnected");
        return;
    }
    s->backoff_ms = 100;
    ld_log(LD_NOTICE, "STORE-UP", "redis ready (%s%s:%d db %d)", s->unix_path[0] ? "unix " : "",
           s->unix_path[0] ? s->unix_path : s->host, s->unix_path[0] ? 0 : s->port, s->db);
    set_ready(s, 1);
}

static void on_auth(redisAsyncContext *ac, void *r, void *priv)
{
    ld_store *s = priv;
    redisReply *reply = r;
    if (reply && reply->type != REDIS_REPLY_ERROR) return;
    s->auth_failed = 1;       /* not ready on this connection, whoever it may be as */
    s->stats.errors++;
    ld_log_rl(LD_ERR, "STORE-AUTH", "redis refused AUTH as user %s: %s; retrying in %llums",
              s->user[0] ? s->user : "default", reply ? reply->str : "disconnected",
              (unsigned long long)s->backoff_ms);
    if (reply) redisAsyncDisconnect(ac); /* on_disconnect reconnects with backoff */
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    ld_store *s = ac->data;
    if (status != REDIS_OK) {
        ld_log_rl(LD_WARN, "STORE-CONNECT", "cannot connect to redis: %s; retrying in %llums",
                  ac->errstr, (unsigned long long)s->backoff_ms);
        s->ac = NULL; /* hiredis frees it after this callback */
        if (s->stopping) finish_stop(s);
        else schedule_reconnect(s);
        return;
    }
    s->connected = 1;
    s->auth_failed = 0;
    s->sha[0] = '\0';
    redisAsyncContext *c = (redisAsyncContext *)ac;
    if (s->password[0]) {
        /* AUTH [user] password: without a user, Redis takes "default". */
        const char *argv[] = {"AUTH", s->user, s->password};
        size_t lens[] = {4, strlen(s->user), strlen(s->password)};
        int skip = !s->user[0];
        argv[skip] = "AUTH", lens[skip] = 4;
        redisAsyncCommandArgv(c, on_auth, s, 3 - skip, argv + skip, lens + skip);
    }
    redisAsyncCommand(c, on_script_loaded, s, "SCRIPT LOAD %s", ld_store_intake_script);
    redisAsyncCommand(c, on_select, s, "SELECT %d", s->db);
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    ld_store *s = ac->data;
    s->ac = NULL;
    s->connected = 0;
    s->inflight = 0;
    set_ready(s, 0);
    if (s->stopping) {
        finish_stop(s);
        return;
    }
    ld_log(LD_WARN, "STORE-DOWN", "redis connection lost%s%s; reconnecting",
           status == REDIS_OK ? "" : ": ", status == REDIS_OK ? "" : ac->errstr);
    schedule_reconnect(s);
}

static void connect_now(ld_store *s)
{
    redisAsyncContext *ac = s->unix_path[0] ? redisAsyncConnectUnix(s->unix_path)
                                            : redisAsyncConnect(s->host, s->port);
    if (!ac || ac->err) {
        ld_log_rl(LD_WARN, "STORE-CONNECT", "cannot connect to redis: %s",
                  ac ? ac->errstr : "out of memory");
        if (ac) redisAsyncFree(ac);
        schedule_reconnect(s);
        return;
    }
    ac->data = s;
    if (ld_uvredis_attach(ac, s->loop) != REDIS_OK) {
        redisAsyncFree(ac);
        schedule_reconnect(s);
        return;
    }
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    s->ac = ac;
    s->connect_started = uv_now(s->loop);
}

/* A stuck Redis answers nothing: drop the connection so callers hear of it. */
static void on_watchdog(uv_timer_t *t)
{
    ld_store *s = t->data;
    uint64_t now = uv_now(s->loop);
    if (s->ac && !s->connected && now - s->connect_started > s->timeout_ms) {
        /* Connecting to a host that never answers: give up on this try. */
        redisAsyncContext *ac = s->ac;
        s->ac = NULL;
        s->stats.timeouts++;
        ld_log_rl(LD_WARN, "STORE-CONNECT", "no answer from redis after %llums; retrying",
                  (unsigned long long)(now - s->connect_started));
        redisAsyncFree(ac); /* not connected: no callback runs */
        if (s->stopping) finish_stop(s);
        else schedule_reconnect(s);
        return;
    }
    if (!s->ac || s->inflight == 0) return;
    if (now - s->last_progress < s->timeout_ms) return;
    s->stats.timeouts++;
    ld_log(LD_ERR, "STORE-TIMEOUT", "redis answered nothing for %llums with %llu in flight; "
           "dropping the connection", (unsigned long long)(now - s->last_progress),
           (unsigned long long)s->inflight);
    redisAsyncContext *ac = s->ac;
    s->ac = NULL;
    redisAsyncFree(ac); /* pending callbacks get NULL replies; on_disconnect reconnects */
}

int ld_store_start(ld_store *s)
{
    uv_timer_init(s->loop, &s->reconnect_timer);
    s->reconnect_timer.data = s;
    uv_timer_init(s->loop, &s->watchdog);
    s->watchdog.data = s;
    uv_timer_start(&s->watchdog, on_watchdog, 1000, 1000);
    connect_now(s);
    return 0;
}

static void on_timer_closed(uv_handle_t *h)
{
    ld_store *s = h->data;
    if (h != (uv_handle_t *)&s->watchdog) return;
    free(s->argv);
    free(s->lens);
    free(s->keys);
    s->argv = NULL, s->lens = NULL, s->keys = NULL, s->scratch_events = 0;
    ld_buf_fini(&s->rec_bytes);
    free(s->rec_off);
    free(s->rec_len);
    free(s->rec_argv);
    free(s->rec_argl);
    s->rec_off = s->rec_len = s->rec_argl = NULL, s->rec_argv = NULL;
    s->rec_n = s->rec_cap = 0;
    ld_pool_fini(&s->ops);
    ld_pool_fini(&s->cmd_ops);
    ld_buf_fini(&s->resp);
    if (s->on_stopped) s->on_stopped(s->stopped_arg);
}

/* The connection is gone (every callback has run): close the timers, then report. */
static void finish_stop(ld_store *s)
{
    if (s->ac || s->stopped) return;
    s->stopped = 1;
    uv_close((uv_handle_t *)&s->reconnect_timer, on_timer_closed);
    uv_close((uv_handle_t *)&s->watchdog, on_timer_closed);
}

void ld_store_stop(ld_store *s, void (*done)(void *arg), void *arg)
{
    s->stopping = 1;
    s->on_stopped = done;
    s->stopped_arg = arg;
    set_ready(s, 0);
    uv_timer_stop(&s->reconnect_timer);
    if (s->ac && !s->connected) {
        /* Still connecting: nothing is in flight, and hiredis would never call
         * back for a context that did not connect. Drop it here. */
        redisAsyncContext *ac = s->ac;
        s->ac = NULL;
        redisAsyncFree(ac);
    }
    /* Replies in flight still arrive; the watchdog still guards a stuck Redis. */
    if (s->ac) redisAsyncDisconnect(s->ac);
    else finish_stop(s);
}

/* ---- commands ---------------------------------------------------------------- */

static void sent(ld_store *s)
{
    if (s->inflight++ == 0) s->last_progress = uv_now(s->loop);
    s->stats.commands++;
}

static void answered(ld_store *s)
{
    if (s->inflight) s->inflight--;
    s->last_progress = uv_now(s->loop);
}

int ld_stream_id_cmp(const char *a, const char *b)
{
    char *end;
    unsigned long long ams = strtoull(a, &end, 10);
    unsigned long long aseq = *end == '-' ? strtoull(end + 1, NULL, 10) : 0;
    unsigned long long bms = strtoull(b, &end, 10);
    unsigned long long bseq = *end == '-' ? strtoull(end + 1, NULL, 10) : 0;
    if (ams != bms) return ams < bms ? -1 : 1;
    return aseq < bseq ? -1 : aseq > bseq;
}

static void on_appended(redisAsyncContext *ac, void *r, void *priv)
{
    append_op *op = priv;
    ld_store *s = op->s;
    redisReply *reply = r;
    (void)ac;
    answered(s);
    ld_append_result res[64], *out = op->n <= 64 ? res : malloc(op->n * sizeof *out);
    int status = 0;
    if (!out) status = LD_ENOMEM;
    else if (!reply) {
        /* The connection went with the command: Redis may have run it. */
        status = LD_EUNAVAIL;
        if (!s->doubt) {
            s->doubt = 1;
            memcpy(s->doubt_after, s->last_id, sizeof s->doubt_after);
        }
    } else if (reply->type != REDIS_REPLY_ARRAY || reply->elements != op->n) {
        s->stats.errors++;
        ld_log_rl(LD_ERR, "STORE-APPEND", "intake script failed: %s",
                  reply->type == REDIS_REPLY_ERROR ? reply->str : "unexpected reply");
        if (reply->type == REDIS_REPLY_ERROR && strncmp(reply->str, "NOSCRIPT", 8) == 0)
            s->sha[0] = '\0';
        status = LD_EUNAVAIL;
    } else {
        for (size_t i = 0; i < op->n; i++) {
            const redisReply *e = reply->element[i];
            const char *id = e->type == REDIS_REPLY_STRING ? e->str : "";
            out[i].duplicate = id[0] == '=';
            snprintf(out[i].stream_id, sizeof out[i].stream_id, "%s", id + out[i].duplicate);
            s->stats.duplicates += (uint64_t)out[i].duplicate;
            if (!out[i].duplicate && ld_stream_id_cmp(out[i].stream_id, s->last_id) > 0)
                memcpy(s->last_id, out[i].stream_id, sizeof s->last_id);
        }
        s->stats.appended_events += op->n;
    }
    op->cb(op->arg, status, status ? NULL : out, op->n);
    if (out && out != res) free(out);
    ld_pool_put(&s->ops, op);
}

static int reserve_scratch(ld_store *s, size_t n)
{
    if (n <= s->scratch_events) return 0;
    size_t argc = 7 + 5 * n; /* EVAL(SHA), script, numkeys, 3 keys, ttl; 4-5 args per event */
    const char **argv = realloc(s->argv, argc * sizeof *argv);
    if (argv) s->argv = argv;
    size_t *lens = realloc(s->lens, argc * sizeof *lens);
    if (lens) s->lens = lens;
    char *keys = realloc(s->keys, n * FIELD_MAX);
    if (keys) s->keys = keys;
    if (!argv || !lens || !keys) return LD_ENOMEM;
    s->scratch_events = n;
    return 0;
}

/* seen_window is the dedup window <now> (Unix seconds) falls in. */
static uint64_t seen_window(const ld_store *s, uint64_t now)
{
    return now / s->dedup_window_s;
}

static void seen_key(char out[32], uint64_t w)
{
    memcpy(out, "ld:seen:", 8);
    out[8 + ld_fmt_u64(out + 8, w)] = '\0';
}

static void on_unlinked(void *arg, redisReply *r)
{
    ld_store *s = arg;
    if (r && r->type == REDIS_REPLY_ERROR) {
        s->stats.errors++;
        ld_log_rl(LD_ERR, "STORE-SEEN", "could not let an old dedup window go: %s", r->str);
    }
}

void ld_store_seen_tidy(ld_store *s)
{
    if (!s->ready) return;
    uint64_t w = seen_window(s, ld_wall_ms() / 1000);
    if (w == s->seen_window) return;
    /* The window before last has left the dedup period: UNLINK frees it
     * off Redis's main thread. After a (re)connect, the one before it too,
     * in case linkd was away when it left. */
    for (uint64_t k = 2; k <= (s->seen_window ? 2 : 3) && k <= w; k++) {
        char key[32];
        seen_key(key, w - k);
        const char *argv[] = {"UNLINK", key};
        size_t lens[] = {6, strlen(key)};
        if (ld_store_commandv(s, on_unlinked, s, 2, argv, lens) != 0) return;
    }
    s->seen_window = w;
}

/* submit runs the intake script, or with <sids> the reconcile script, over <items>. */
static int submit(ld_store *s, const ld_append_item *items, const char *const *sids, size_t n,
                  ld_append_cb cb, void *arg)
{
    if (!s->ready || !s->ac) return LD_EUNAVAIL;
    if (n == 0 || n > MAX_BATCH) return LD_EINVAL;
    if (reserve_scratch(s, n) != 0) return LD_ENOMEM;
    append_op *op = ld_pool_get(&s->ops);
    if (!op) return LD_ENOMEM;
    const char **argv = s->argv;
    size_t *lens = s->lens;
    size_t a = 0;
    if (sids)
        argv[a] = "EVAL", lens[a++] = 4, argv[a] = reconcile_script,
        lens[a++] = strlen(reconcile_script);
    else if (s->sha[0]) argv[a] = "EVALSHA", lens[a++] = 7, argv[a] = s->sha, lens[a++] = 40;
    else argv[a] = "EVAL", lens[a++] = 4, argv[a] = ld_store_intake_script, lens[a++] = strlen(ld_store_intake_script);
    uint64_t now = ld_wall_ms() / 1000, w = seen_window(s, now);
    char seen[2][32], ttl[24];
    seen_key(seen[0], w);
    seen_key(seen[1], w - 1);
    argv[a] = "3", lens[a++] = 1;
    argv[a] = "ld:events", lens[a++] = 9;
    argv[a] = seen[0], lens[a] = strlen(seen[0]), a++;
    argv[a] = seen[1], lens[a] = strlen(seen[1]), a++;
    /* Until two windows after this one ends: the tick lets it go a window
     * earlier (seen_tidy), so Redis never has to free a large hash itself. */
    size_t tl = ld_fmt_u64(ttl, (w + 3) * s->dedup_window_s - now);
    argv[a] = ttl, lens[a++] = tl;
    for (size_t i = 0; i < n; i++) {
        /* "<src>:<eid>", cut at FIELD_MAX - 1 bytes like snprintf would */
        char *k = s->keys + i * FIELD_MAX;
        size_t kl = ld_str_join(k, FIELD_MAX, items[i].src, ":");
        kl += ld_str_join(k + kl, FIELD_MAX - kl, items[i].eid, "");
        argv[a] = k, lens[a++] = kl;
        argv[a] = items[i].src, lens[a++] = strlen(items[i].src);
        argv[a] = items[i].eid, lens[a++] = strlen(items[i].eid);
        argv[a] = (const char *)items[i].pb, lens[a++] = items[i].pblen;
        if (sids) argv[a] = sids[i], lens[a++] = strlen(sids[i]);
    }
    *op = (append_op){s, cb, arg, n};
    /* hiredis formats the command into its output buffer now: the scratch is free again. */
    if (send_argv(s, on_appended, op, (int)a, argv, lens) != REDIS_OK) {
        ld_pool_put(&s->ops, op);
        return LD_EUNAVAIL;
    }
    sent(s);
    s->stats.appends++;
    return 0;
}

int ld_store_append(ld_store *s, const ld_append_item *items, size_t n, ld_append_cb cb,
                    void *arg)
{
    return submit(s, items, NULL, n, cb, arg);
}

int ld_store_append_spooled(ld_store *s, const ld_append_item *items, const char *const *sids,
                            size_t n, ld_append_cb cb, void *arg)
{
    return submit(s, items, sids, n, cb, arg);
}

static void on_written(redisAsyncContext *ac, void *r, void *priv)
{
    ld_store *s = priv;
    redisReply *reply = r;
    (void)ac;
    answered(s);
    if (reply && reply->type == REDIS_REPLY_ERROR) {
        s->stats.errors++;
        ld_log_rl(LD_ERR, "STORE-WRITE", "incident write failed: %s", reply->str);
    }
}

/* write_behind queues a record write; one that cannot be queued (the
 * connection is going, or no memory for the command) is counted and said,
 * and not counted as in flight, where the watchdog would wait for it. */
static void write_behind(ld_store *s, int argc, const char **argv, const size_t *lens)
{
    if (send_argv(s, on_written, s, argc, argv, lens) == REDIS_OK) {
        sent(s);
        return;
    }
    s->stats.errors++;
    ld_log_rl(LD_ERR, "STORE-WRITE", "a %.*s of the write-behind could not be queued",
              (int)lens[0], argv[0]);
}

enum { RECORD_BATCH = 512 };   /* records per MSET: Redis answers in well under a millisecond */

static int rec_reserve(ld_store *s)
{
    if (s->rec_n < s->rec_cap) return 0;
    size_t cap = s->rec_cap ? s->rec_cap * 2 : 64;
    size_t *off = realloc(s->rec_off, cap * 4 * sizeof *off);
    if (off) s->rec_off = off;
    size_t *len = realloc(s->rec_len, cap * 4 * sizeof *len);
    if (len) s->rec_len = len;
    const char **argv = realloc(s->rec_argv, (cap * 2 + 2) * sizeof *argv);
    if (argv) s->rec_argv = argv;
    size_t *argl = realloc(s->rec_argl, (cap * 2 + 2) * sizeof *argl);
    if (argl) s->rec_argl = argl;
    if (!off || !len || !argv || !argl) return LD_ENOMEM;
    s->rec_cap = cap;
    return 0;
}

size_t ld_store_unsent(const ld_store *s)
{
    return s->ac && s->ac->c.obuf ? sdslen(s->ac->c.obuf) : 0;
}

void ld_store_write_now(ld_store *s)
{
    if (s->ac) ld_uvredis_write_now(s->ac);
}

void ld_store_flush_records(ld_store *s)
{
    size_t n = s->rec_n;
    s->rec_n = 0;
    if (!n) return;
    if (!s->ac || s->rec_bytes.oom) {
        if (s->rec_bytes.oom) {
            s->stats.errors++;
            ld_log_rl(LD_ERR, "STORE-NOMEM", "out of memory: %zu incident records not written", n);
        }
        ld_buf_reset(&s->rec_bytes);
        return;
    }
    const char *base = s->rec_bytes.p;
    const char **argv = s->rec_argv;
    size_t *argl = s->rec_argl, k = 0;
    argv[k] = "MSET", argl[k++] = 4;
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < 2; j++)
            argv[k] = base + s->rec_off[4 * i + j], argl[k++] = s->rec_len[4 * i + j];
    write_behind(s, (int)k, argv, argl);
    k = 0;
    argv[k] = "ZADD", argl[k++] = 4;
    argv[k] = "ld:open", argl[k++] = 7;
    for (size_t i = 0; i < n; i++)
        for (size_t j = 2; j < 4; j++)
            argv[k] = base + s->rec_off[4 * i + j], argl[k++] = s->rec_len[4 * i + j];
    write_behind(s, (int)k, argv, argl);
    s->stats.records_written += n;
    ld_buf_reset(&s->rec_bytes);
}

void ld_store_put_incident(ld_store *s, const char *id, const uint8_t *rec, size_t len,
                           uint64_t next_due, int closed)
{
    if (!s->ac) return;
    /* Argv forms: no format string to parse per write, and the record is binary. */
    char key[96], score[24];
    size_t kl = ld_str_join(key, sizeof key, "ld:inc:", id);
    size_t idl = strlen(id);
    if (closed) {
        const char *set[] = {"SET", key, (const char *)rec, "EX", "7776000"}; /* 90 days */
        size_t setl[] = {3, kl, len, 2, 7};
        const char *zrem[] = {"ZREM", "ld:open", id};
        size_t zreml[] = {4, 7, idl};
        write_behind(s, 5, set, setl);
        write_behind(s, 3, zrem, zreml);
        s->stats.records_written++;
        return;
    }
    if (rec_reserve(s) != 0) {
        s->stats.errors++;
        ld_log_rl(LD_ERR, "STORE-NOMEM", "out of memory: record of %s not written", id);
        return;
    }
    size_t sl = ld_fmt_u64(score, next_due == UINT64_MAX ? 0 : next_due);
    const void *piece[4] = {key, rec, score, id};
    size_t plen[4] = {kl, len, sl, idl};
    for (int j = 0; j < 4; j++) {
        s->rec_off[4 * s->rec_n + (size_t)j] = s->rec_bytes.len;
        s->rec_len[4 * s->rec_n + (size_t)j] = plen[j];
        ld_buf_put(&s->rec_bytes, piece[j], plen[j]);
    }
    if (++s->rec_n == RECORD_BATCH) ld_store_flush_records(s);
}

void ld_store_put_mark(ld_store *s, const char *stream_id)
{
    if (!s->ac) return;
    const char *argv[] = {"SET", "ld:applied", stream_id};
    size_t lens[] = {3, 10, strlen(stream_id)};
    write_behind(s, 3, argv, lens);
}

static void on_command(redisAsyncContext *ac, void *r, void *priv)
{
    command_op *op = priv;
    (void)ac;
    ld_store *s = op->s;
    answered(s);
    op->cb(op->arg, r);
    ld_pool_put(&s->cmd_ops, op);
}

int ld_store_commandv(ld_store *s, ld_reply_cb cb, void *arg, int argc, const char **argv,
                      const size_t *lens)
{
    if (!s->connected || !s->ac) return LD_EUNAVAIL;
    command_op *op = ld_pool_get(&s->cmd_ops);
    if (!op) return LD_ENOMEM;
    *op = (command_op){s, cb, arg};
    if (send_argv(s, on_command, op, argc, argv, lens) != REDIS_OK) {
        ld_pool_put(&s->cmd_ops, op);
        return LD_EUNAVAIL;
    }
    sent(s);
    return 0;
}

typedef struct fence_op {
    ld_store *s;
    ld_fence_cb cb;
    void *arg;
} fence_op;

static void on_fence(redisAsyncContext *ac, void *r, void *priv)
{
    fence_op *op = priv;
    ld_store *s = op->s;
    redisReply *reply = r;
    (void)ac;
    answered(s);
    int status = LD_EUNAVAIL;
    const char *held = NULL;
    if (reply && reply->type == REDIS_REPLY_NIL) {
        status = 0;
        s->stats.fences_won++;
    } else if (reply && reply->type == REDIS_REPLY_STRING) {
        status = 1;
        held = reply->str;
        s->stats.fences_taken++;
    } else if (reply) {
        s->stats.errors++;
        ld_log_rl(LD_ERR, "STORE-FENCE", "escalation fence failed: %s",
                  reply->type == REDIS_REPLY_ERROR ? reply->str : "unexpected reply");
    }
    if (op->cb) op->cb(op->arg, status, held);
    free(op);
}

int ld_store_fence(ld_store *s, const char *key, const char *value, uint64_t ttl_s,
                   ld_fence_cb cb, void *arg)
{
    if (!s->ready || !s->ac) return LD_EUNAVAIL;
    fence_op *op = malloc(sizeof *op);
    if (!op) return LD_ENOMEM;
    *op = (fence_op){s, cb, arg};
    char ttl[24];
    int tl = snprintf(ttl, sizeof ttl, "%llu", (unsigned long long)ttl_s);
    const char *argv[] = {"SET", key, value, "NX", "GET", "EX", ttl};
    size_t lens[] = {3, strlen(key), strlen(value), 2, 3, 2, (size_t)tl};
    if (send_argv(s, on_fence, op, 7, argv, lens) != REDIS_OK) {
        free(op);
        return LD_EUNAVAIL;
    }
    sent(s);
    return 0;
}
