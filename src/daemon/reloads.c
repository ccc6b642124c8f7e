/* reloads.c: the durable record of rule reloads (see reloads.h). */
#include "daemon/reloads.h"

#include <hiredis/hiredis.h>
#include <stdio.h>
#include <string.h>

#include "core/log.h"

/* Push and cap in one atomic call, so the list never outgrows its cap. */
static const char push_script[] =
    "redis.call('LPUSH', KEYS[1], ARGV[1]) "
    "redis.call('LTRIM', KEYS[1], 0, tonumber(ARGV[2]) - 1) return 1";

void ld_reload_log_init(ld_reload_log *l, ld_store *s)
{
    memset(l, 0, sizeof *l);
    l->store = s;
}

static ld_reload_line *slot(ld_reload_log *l, uint64_t i)
{
    return &l->ring[i % LD_RELOADS_RING];
}

/* kv appends ,"<k>":<s> with <s> as a JSON string. */
static void kv(ld_buf *b, const char *k, const char *s)
{
    ld_buf_printf(b, ",\"%s\":", k);
    ld_buf_json_str(b, s);
}

void ld_reload_log_add(ld_reload_log *l, const ld_reload_outcome *o)
{
    ld_buf b;
    ld_buf_init(&b, 0);
    ld_buf_printf(&b, "{\"at_ms\":%llu", (unsigned long long)o->at_ms);
    kv(&b, "who", o->who);
    kv(&b, "outcome", o->ok ? "reloaded" : "refused");
    kv(&b, "from", o->from);
    if (o->to) kv(&b, "to", o->to);
    ld_buf_printf(&b, ",\"routes\":%d,\"errors\":%zu,\"warnings\":%zu", o->routes, o->errors,
                  o->warnings);
    char msg[512];
    snprintf(msg, sizeof msg, "%s", o->message ? o->message : "");
    kv(&b, "message", msg);
    ld_buf_puts(&b, "}");
    if (l->total - l->next_write >= LD_RELOADS_RING) {
        /* The oldest unwritten line is about to be overwritten: say so. */
        l->lost++;
        l->next_write++;
        ld_log_rl(LD_WARN, "RELOADS-LOST", "a reload record was dropped before Redis had it");
    }
    ld_reload_line *s = slot(l, l->total++);
    snprintf(s->json, sizeof s->json, "%.*s", (int)b.len, b.p ? b.p : "");
    s->written = 0;
    ld_buf_fini(&b);
    ld_reload_log_flush(l);
}

static void write_next(ld_reload_log *l);

static void on_pushed(void *arg, redisReply *r)
{
    ld_reload_log *l = arg;
    l->writing = 0;
    if (!r || r->type == REDIS_REPLY_ERROR) {
        ld_log_rl(LD_WARN, "RELOADS-WRITE", "reload record not written (%s); retried",
                  r ? r->str : "connection lost");
        return; /* the next flush sends it again */
    }
    if (l->next_write < l->total) slot(l, l->next_write++)->written = 1;
    write_next(l);
}

static void write_next(ld_reload_log *l)
{
    if (l->writing || !l->loaded || l->next_write >= l->total || !ld_store_up(l->store)) return;
    ld_reload_line *s = slot(l, l->next_write);
    char cap[16];
    int cl = snprintf(cap, sizeof cap, "%d", LD_RELOADS_KEPT);
    const char *argv[] = {"EVAL", push_script, "1", LD_RELOADS_KEY, s->json, cap};
    size_t lens[] = {4, sizeof push_script - 1, 1, sizeof LD_RELOADS_KEY - 1, strlen(s->json),
                     (size_t)cl};
    if (ld_store_commandv(l->store, on_pushed, l, 6, argv, lens) == 0) l->writing = 1;
}

/* on_loaded puts the latest lines of earlier runs before this run's, in
 * memory, so the API shows the history across restarts. Nothing of this
 * run is written before the load, so <r> holds earlier runs' lines only. */
static void on_loaded(void *arg, redisReply *r)
{
    ld_reload_log *l = arg;
    l->loading = 0;
    if (!r) return; /* connection lost: tried again at the next flush */
    l->loaded = 1;
    if (r->type != REDIS_REPLY_ARRAY) return;
    uint64_t mine = l->total - l->next_write;
    ld_reload_line keep[LD_RELOADS_RING];
    for (uint64_t i = 0; i < mine; i++) keep[i] = *slot(l, l->next_write + i);
    size_t old = r->elements < LD_RELOADS_RING - mine ? r->elements
                                                      : (size_t)(LD_RELOADS_RING - mine);
    l->total = 0;
    for (size_t i = old; i-- > 0;) {
        const redisReply *e = r->element[i];
        if (e->type != REDIS_REPLY_STRING) continue;
        ld_reload_line *s = slot(l, l->total++);
        snprintf(s->json, sizeof s->json, "%s", e->str);
        s->written = 1;
    }
    l->next_write = l->total;
    for (uint64_t i = 0; i < mine; i++) *slot(l, l->total++) = keep[i];
}

void ld_reload_log_flush(ld_reload_log *l)
{
    if (!ld_store_up(l->store)) return;
    if (!l->loaded && !l->loading && !l->writing) {
        char n[16];
        int nl = snprintf(n, sizeof n, "%d", LD_RELOADS_RING - 1);
        const char *argv[] = {"LRANGE", LD_RELOADS_KEY, "0", n};
        size_t lens[] = {6, sizeof LD_RELOADS_KEY - 1, 1, (size_t)nl};
        if (ld_store_commandv(l->store, on_loaded, l, 4, argv, lens) == 0) l->loading = 1;
        return;
    }
    write_next(l);
}

void ld_reload_log_json(const ld_reload_log *l, ld_buf *b)
{
    ld_buf_puts(b, "[");
    uint64_t first = l->total > LD_RELOADS_RING ? l->total - LD_RELOADS_RING : 0;
    for (uint64_t i = l->total; i-- > first;) {
        const ld_reload_line *s = &l->ring[i % LD_RELOADS_RING];
        ld_buf_puts(b, s->json);
        ld_buf_puts(b, i > first ? "," : "");
    }
    ld_buf_puts(b, "]");
}

uint64_t ld_reload_log_unwritten(const ld_reload_log *l)
{
    return l->total - l->next_write;
}
