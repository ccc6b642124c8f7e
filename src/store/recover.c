#include "store/recover.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "core/clock.h"
#include "core/err.h"
#include "core/log.h"

enum { BATCH = 256 };

static void next_records(ld_recovery *rc);
static void next_events(ld_recovery *rc);

static void finish(ld_recovery *rc, int status)
{
    for (size_t i = 0; i < rc->nids; i++) free(rc->ids[i]);
    free(rc->ids);
    rc->ids = NULL;
    rc->nids = rc->next = 0;
    if (rc->batch) freeReplyObject(rc->batch);
    rc->batch = NULL;
    rc->running = 0;
    if (status == 0 && rc->catchup)
        ld_log(LD_NOTICE, "CATCHUP", "replayed %llu events accepted into redis while its "
               "connection failed, in %llums (%llu skipped)", (unsigned long long)rc->replayed,
               (unsigned long long)(ld_mono_ms() - rc->started_ms),
               (unsigned long long)rc->skipped);
    else if (status == 0)
        ld_log(LD_NOTICE, "RECOVERED", "restored %llu open incidents and replayed %llu events "
               "in %llums (%llu skipped, %llu unreadable)", (unsigned long long)rc->restored,
               (unsigned long long)rc->replayed,
               (unsigned long long)(ld_mono_ms() - rc->started_ms),
               (unsigned long long)rc->skipped, (unsigned long long)rc->bad);
    else
        ld_log(LD_WARN, "RECOVER-RETRY", "recovery interrupted: %s; it runs again when redis "
               "returns", ld_strerror(status));
    rc->done(rc->arg, status);
}

static int command(ld_recovery *rc, ld_reply_cb cb, int argc, const char **argv, const size_t *lens)
{
    int rv = ld_store_commandv(rc->store, cb, rc, argc, argv, lens);
    if (rv != 0) finish(rc, rv);
    return rv;
}

static int restore_bytes(ld_recovery *rc, const char *buf, size_t len)
{
    Linkd__V1__IncidentRecord *rec =
        linkd__v1__incident_record__unpack(NULL, len, (const uint8_t *)buf);
    if (!rec) {
        rc->bad++;
        return LD_EDECODE;
    }
    int rv = ld_engine_restore(rc->engine, rec);
    if (rv == 0) rc->restored++;
    else rc->skipped++;
    linkd__v1__incident_record__free_unpacked(rec, NULL);
    return rv;
}

/* ---- step 3: events after the mark ----------------------------------------- */

static uint64_t stream_ms(const char *id)
{
    return strtoull(id, NULL, 10);
}

static const redisReply *field(const redisReply *fields, const char *name)
{
    for (size_t i = 0; i + 1 < fields->elements; i += 2)
        if (fields->element[i]->type == REDIS_REPLY_STRING &&
            strcmp(fields->element[i]->str, name) == 0)
            return fields->element[i + 1];
    return NULL;
}

/* entry_incident_key returns the id an entry's incident is named by: its
 * stream id, or the spool id it was accepted under while Redis was away. */
static const char *entry_incident_key(const redisReply *entry)
{
    const redisReply *sid = field(entry->element[1], "sid");
    return sid && sid->type == REDIS_REPLY_STRING && sid->len > 0 && sid->len < 40
               ? sid->str
               : entry->element[0]->str;
}

/* spooled_too says whether the spool holds this event under its own spool
 * id while the entry is not that copy: one incident per event, the spooled
 * one, which the engine opened when the spool took it. The write-behind mark
 * may pass the entry. */
static int spooled_too(ld_recovery *rc, const redisReply *entry)
{
    const redisReply *src = field(entry->element[1], "src"), *eid = field(entry->element[1], "eid");
    if (!rc->spool || !src || !eid || src->type != REDIS_REPLY_STRING ||
        eid->type != REDIS_REPLY_STRING)
        return 0;
    const ld_spool_entry *e = ld_spool_find(rc->spool, src->str, eid->str);
    if (!e || strcmp(entry_incident_key(entry), e->sid) == 0) return 0;
    char iid[LD_INCIDENT_ID_LEN];
    snprintf(iid, sizeof iid, "I%s", e->sid);
    if (!ld_engine_find(rc->engine, iid)) return 0;
    const char *id = entry->element[0]->str;
    if (ld_stream_id_cmp(id, rc->engine->last_opened) > 0)
        snprintf(rc->engine->last_opened, sizeof rc->engine->last_opened, "%s", id);
    ld_log_rl(LD_WARN, "RECOVER-SPOOLED", "event %s from %s is in ld:events (%s) and in the "
              "spool (%s): kept as the spooled incident I%s", e->eid, e->src, id, e->sid, e->sid);
    return 1;
}

static void replay_entry(ld_recovery *rc, const redisReply *entry, const redisReply *record)
{
    const char *id = entry->element[0]->str, *key = entry_incident_key(entry);
    char iid[LD_INCIDENT_ID_LEN];
    snprintf(iid, sizeof iid, "I%s", key);
    if (ld_engine_find(rc->engine, iid) || spooled_too(rc, entry)) {
        rc->skipped++;
        return;
    }
    if (record && record->type == REDIS_REPLY_STRING) {
        /* Written but not marked: restore it if it is still open. */
        restore_bytes(rc, record->str, record->len);
        return;
    }
    const redisReply *pb = field(entry->element[1], "pb");
    Linkd__V1__Envelope *ev =
        pb && pb->type == REDIS_REPLY_STRING
            ? linkd__v1__envelope__unpack(NULL, pb->len, (const uint8_t *)pb->str)
            : NULL;
    if (!ev) {
        rc->bad++;
        ld_log_rl(LD_ERR, "RECOVER-EVENT", "event %s in ld:events cannot be decoded", id);
        return;
    }
    uint64_t now = ld_clock_now(rc->engine->clock), at = stream_ms(key == id ? id : key + 1);
    ld_incident *inc;
    if (ld_engine_open_at(rc->engine, ev, key, at < now ? at : now, &inc) == 0) rc->replayed++;
    else rc->skipped++;
    linkd__v1__envelope__free_unpacked(ev, NULL);
}

static void on_event_records(void *arg, redisReply *reply)
{
    ld_recovery *rc = arg;
    redisReply *batch = rc->batch;
    if (!reply || reply->type != REDIS_REPLY_ARRAY || reply->elements != batch->elements) {
        finish(rc, LD_EUNAVAIL);
        return;
    }
    for (size_t i = 0; i < batch->elements; i++) replay_entry(rc, batch->element[i], reply->element[i]);
    size_t n = batch->elements;
    snprintf(rc->mark, sizeof rc->mark, "%s", batch->element[n - 1]->element[0]->str);
    freeReplyObject(batch);
    rc->batch = NULL;
    if (n < BATCH) finish(rc, 0);
    else next_events(rc);
}

static int valid_entry(const redisReply *e)
{
    return e->type == REDIS_REPLY_ARRAY && e->elements == 2 &&
           e->element[0]->type == REDIS_REPLY_STRING && e->element[1]->type == REDIS_REPLY_ARRAY;
}

static void on_events(void *arg, redisReply *reply)
{
    ld_recovery *rc = arg;
    if (!reply || reply->type != REDIS_REPLY_ARRAY) {
        finish(rc, LD_EUNAVAIL);
        return;
    }
    if (reply->elements == 0) {
        finish(rc, 0);
        return;
    }
    for (size_t i = 0; i < reply->elements; i++)
        if (!valid_entry(reply->element[i])) {
            finish(rc, LD_EUNAVAIL);
            return;
        }
    /* Keep the batch (hiredis would free it) and ask which incidents have records. */
    rc->batch = malloc(sizeof *rc->batch);
    if (!rc->batch) {
        finish(rc, LD_ENOMEM);
        return;
    }
    *rc->batch = *reply;
    reply->element = NULL;
    reply->elements = 0;
    size_t n = rc->batch->elements;
    const char *argv[BATCH + 1];
    size_t lens[BATCH + 1];
    char keys[BATCH][80];
    argv[0] = "MGET", lens[0] = 4;
    for (size_t i = 0; i < n; i++) {
        int kl = snprintf(keys[i], sizeof keys[i], "ld:inc:I%s",
                          entry_incident_key(rc->batch->element[i]));
        argv[i + 1] = keys[i], lens[i + 1] = (size_t)kl;
    }
    command(rc, on_event_records, (int)n + 1, argv, lens);
}

static void next_events(ld_recovery *rc)
{
    char from[64], count[16];
    snprintf(from, sizeof from, "(%s", rc->mark);
    snprintf(count, sizeof count, "%d", BATCH);
    const char *argv[] = {"XRANGE", "ld:events", from, "+", "COUNT", count};
    size_t lens[] = {6, 9, strlen(from), 1, 5, strlen(count)};
    command(rc, on_events, 6, argv, lens);
}

/* ---- step 2: open incidents ---------------------------------------------------- */

static void on_records(void *arg, redisReply *reply)
{
    ld_recovery *rc = arg;
    if (!reply || reply->type != REDIS_REPLY_ARRAY) {
        finish(rc, LD_EUNAVAIL);
        return;
    }
    for (size_t i = 0; i < reply->elements; i++) {
        const redisReply *r = reply->element[i];
        if (r->type == REDIS_REPLY_STRING) restore_bytes(rc, r->str, r->len);
        else rc->bad++; /* in ld:open without a record: the stream replay covers it */
    }
    next_records(rc);
}

/* after_rewind: the correlation windows hold the stream's recent events
 * (rewind.h); on to step 3. */
static void after_rewind(void *arg, int status)
{
    ld_recovery *rc = arg;
    if (status != 0) finish(rc, status);
    else next_events(rc);
}

static void next_records(ld_recovery *rc)
{
    if (rc->next >= rc->nids) {
        ld_rewind_start(&rc->rewind, rc->store, rc->engine, after_rewind, rc);
        return;
    }
    size_t n = rc->nids - rc->next < BATCH ? rc->nids - rc->next : BATCH;
    const char *argv[BATCH + 1];
    size_t lens[BATCH + 1];
    char keys[BATCH][80];
    argv[0] = "MGET", lens[0] = 4;
    for (size_t i = 0; i < n; i++) {
        int kl = snprintf(keys[i], sizeof keys[i], "ld:inc:%s", rc->ids[rc->next + i]);
        argv[i + 1] = keys[i], lens[i + 1] = (size_t)kl;
    }
    rc->next += n;
    command(rc, on_records, (int)n + 1, argv, lens);
}

static void on_open_ids(void *arg, redisReply *reply)
{
    ld_recovery *rc = arg;
    if (!reply || reply->type != REDIS_REPLY_ARRAY) {
        finish(rc, LD_EUNAVAIL);
        return;
    }
    rc->ids = calloc(reply->elements + 1, sizeof *rc->ids);
    if (!rc->ids) {
        finish(rc, LD_ENOMEM);
        return;
    }
    for (size_t i = 0; i < reply->elements; i++) {
        const redisReply *r = reply->element[i];
        if (r->type != REDIS_REPLY_STRING || r->len >= LD_INCIDENT_ID_LEN) continue;
        if (!(rc->ids[rc->nids] = strdup(r->str))) {
            finish(rc, LD_ENOMEM);
            return;
        }
        rc->nids++;
    }
    next_records(rc);
}

/* ---- step 1: the mark ------------------------------------------------------------ */

static void on_mark(void *arg, redisReply *reply)
{
    ld_recovery *rc = arg;
    if (!reply || reply->type == REDIS_REPLY_ERROR) {
        finish(rc, LD_EUNAVAIL);
        return;
    }
    snprintf(rc->mark, sizeof rc->mark, "%s",
             reply->type == REDIS_REPLY_STRING ? reply->str : "0-0");
    const char *argv[] = {"ZRANGE", "ld:open", "0", "-1"};
    size_t lens[] = {6, 7, 1, 2};
    command(rc, on_open_ids, 4, argv, lens);
}

int ld_recover_start(ld_recovery *rc, ld_store *s, ld_engine *e,
                     void (*done)(void *arg, int status), void *arg)
{
    const ld_spool *spool = rc->spool;
    memset(rc, 0, sizeof *rc);
    rc->spool = spool;
    rc->store = s;
    rc->engine = e;
    rc->done = done;
    rc->arg = arg;
    rc->running = 1;
    rc->started_ms = ld_mono_ms();
    const char *argv[] = {"GET", "ld:applied"};
    size_t lens[] = {3, 10};
    int rv = ld_store_commandv(s, on_mark, rc, 2, argv, lens);
    if (rv != 0) rc->running = 0;
    return rv;
}

int ld_recover_replay(ld_recovery *rc, ld_store *s, ld_engine *e, const char *after,
                      void (*done)(void *arg, int status), void *arg)
{
    if (!ld_store_up(s)) return LD_EUNAVAIL;
    const ld_spool *spool = rc->spool;
    memset(rc, 0, sizeof *rc);
    rc->spool = spool;
    rc->store = s;
    rc->engine = e;
    rc->done = done;
    rc->arg = arg;
    rc->running = 1;
    rc->catchup = 1;
    rc->started_ms = ld_mono_ms();
    snprintf(rc->mark, sizeof rc->mark, "%s", after && *after ? after : "0-0");
    next_events(rc);
    return 0;
}
