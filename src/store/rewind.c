/* rewind.c: correlation windows rebuilt from ld:events (rewind.h). */
#include "store/rewind.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "core/clock.h"
#include "core/err.h"
#include "core/log.h"

enum { BATCH = 512 };

static void next_batch(ld_rewind *rw);

static void finish(ld_rewind *rw, int status)
{
    if (status == 0 && rw->read)
        ld_log(LD_NOTICE, "REWOUND", "correlation windows rebuilt from %llu events of "
               "ld:events (%llu counted, %llu unreadable) in %llums",
               (unsigned long long)rw->read, (unsigned long long)rw->counted,
               (unsigned long long)rw->bad, (unsigned long long)(ld_mono_ms() - rw->started_ms));
    rw->done(rw->arg, status);
}

static const redisReply *field(const redisReply *fields, const char *name)
{
    for (size_t i = 0; i + 1 < fields->elements; i += 2)
        if (fields->element[i]->type == REDIS_REPLY_STRING &&
            strcmp(fields->element[i]->str, name) == 0)
            return fields->element[i + 1];
    return NULL;
}

static void rewind_entry(ld_rewind *rw, const redisReply *entry)
{
    if (entry->type != REDIS_REPLY_ARRAY || entry->elements != 2 ||
        entry->element[0]->type != REDIS_REPLY_STRING ||
        entry->element[1]->type != REDIS_REPLY_ARRAY) {
        rw->bad++;
        return;
    }
    const char *id = entry->element[0]->str;
    const redisReply *sid = field(entry->element[1], "sid");
    const char *key = sid && sid->type == REDIS_REPLY_STRING && sid->len > 0 && sid->len < 40
                          ? sid->str : id;
    const redisReply *pb = field(entry->element[1], "pb");
    Linkd__V1__Envelope *ev =
        pb && pb->type == REDIS_REPLY_STRING
            ? linkd__v1__envelope__unpack(NULL, pb->len, (const uint8_t *)pb->str)
            : NULL;
    if (!ev) {
        rw->bad++;
        return;
    }
    uint64_t at = strtoull(key == id ? id : key + 1, NULL, 10);
    rw->counted += ld_engine_rewind(rw->engine, ev, key, at) > 0;
    linkd__v1__envelope__free_unpacked(ev, NULL);
}

static void on_batch(void *arg, redisReply *reply)
{
    ld_rewind *rw = arg;
    if (!reply || reply->type != REDIS_REPLY_ARRAY) {
        finish(rw, LD_EUNAVAIL);
        return;
    }
    for (size_t i = 0; i < reply->elements; i++) rewind_entry(rw, reply->element[i]);
    rw->read += reply->elements;
    if (reply->elements == 0 || reply->element[reply->elements - 1]->type != REDIS_REPLY_ARRAY ||
        reply->element[reply->elements - 1]->elements != 2) {
        finish(rw, 0);
        return;
    }
    snprintf(rw->from, sizeof rw->from, "(%s",
             reply->element[reply->elements - 1]->element[0]->str);
    if (reply->elements < BATCH) {
        finish(rw, 0);
        return;
    }
    if (rw->read >= LD_REWIND_MAX) {
        ld_log(LD_WARN, "REWIND-CAP", "correlation windows rebuilt from the first %d events of "
               "the window only; the rest of ld:events up to %s is not counted", LD_REWIND_MAX,
               rw->from + 1);
        finish(rw, 0);
        return;
    }
    next_batch(rw);
}

static void next_batch(ld_rewind *rw)
{
    char count[16];
    snprintf(count, sizeof count, "%d", BATCH);
    const char *argv[] = {"XRANGE", "ld:events", rw->from, "+", "COUNT", count};
    size_t lens[] = {6, 9, strlen(rw->from), 1, 5, strlen(count)};
    int rv = ld_store_commandv(rw->store, on_batch, rw, 6, argv, lens);
    if (rv != 0) finish(rw, rv);
}

void ld_rewind_start(ld_rewind *rw, ld_store *s, ld_engine *e,
                     void (*done)(void *arg, int status), void *arg)
{
    memset(rw, 0, sizeof *rw);
    rw->store = s;
    rw->engine = e;
    rw->done = done;
    rw->arg = arg;
    rw->started_ms = ld_mono_ms();
    uint64_t longest = 0;
    for (int i = 0; i < e->rules->ncorrelations; i++)
        if (e->rules->correlations[i].window_ms > longest)
            longest = e->rules->correlations[i].window_ms;
    if (!longest) {
        done(arg, 0);
        return;
    }
    uint64_t now = ld_clock_now(e->clock);
    snprintf(rw->from, sizeof rw->from, "%llu-0",
             (unsigned long long)(now > longest ? now - longest : 0));
    next_batch(rw);
}
