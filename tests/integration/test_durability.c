/* test_durability.c: ACCEPTED means durable. Once a producer is told
 * ACCEPTED, the event is in Redis's ld:events stream; once linkd stops, the
 * incident's record ld:inc:<id> is in Redis and holds its tasks; a linkd
 * killed outright and restarted still knows the event and the incident. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "load.h"
#include "wire/wire.h"

#define WAIT_MS 20000

static ldh_env env;
static ld_rules *rules;

static void setup(void)
{
    rules = ldh_rules_load(LDH_DEFAULT_RULES);
    cr_assert_not_null(rules);
    ldh_env_start_or_fail(&env, NULL);
}

static void teardown(void)
{
    int code = ldh_env_stop(&env);
    if (rules) ld_rules_free(rules);
    rules = NULL;
    cr_expect_eq(code, 0, "linkd must exit 0 on SIGTERM, exited %d", code);
}

static size_t fire_plan(ldh_dispatch *plan, size_t max)
{
    ld_match_input in = {.kind = LD_KIND_CALL,
                         .category = LINKD__V1__CALL_CATEGORY__CALL_CATEGORY_FIRE};
    return ldh_rules_plan(rules, &in, plan, max);
}

/* Finds the stream entry of <ev> and checks its fields; returns its id
 * (malloc'd) or NULL. Read with XRANGE right after ACCEPTED: no waiting. */
static char *find_in_stream(const ldh_event *ev)
{
    redisReply *rep = ldh_redis_cmd(&env.redis, "XRANGE ld:events - +");
    ldh_check(&env, rep && rep->type == REDIS_REPLY_ARRAY, "XRANGE ld:events failed");
    char *id = NULL;
    for (size_t i = 0; i < rep->elements && !id; i++) {
        const redisReply *entry = rep->element[i];
        const redisReply *fields = entry->element[1];
        const char *src = NULL, *eid = NULL;
        const redisReply *pb = NULL;
        for (size_t j = 0; j + 1 < fields->elements; j += 2) {
            const char *k = fields->element[j]->str;
            const redisReply *v = fields->element[j + 1];
            if (strcmp(k, "src") == 0) src = v->str;
            else if (strcmp(k, "eid") == 0) eid = v->str;
            else if (strcmp(k, "pb") == 0) pb = v;
        }
        if (!src || !eid || strcmp(src, ev->source_id) || strcmp(eid, ev->event_id)) continue;
        ldh_check(&env, pb, "stream entry without pb");
        Linkd__V1__Envelope *e =
            linkd__v1__envelope__unpack(NULL, pb->len, (const uint8_t *)pb->str);
        ldh_check(&env, e, "the stored pb does not decode as an Envelope");
        ldh_check(&env, e->event_id && strcmp(e->event_id, ev->event_id) == 0 &&
                            e->occurred_at_ms == ev->env.occurred_at_ms &&
                            e->body_case == ev->env.body_case,
                  "the stored envelope is not the one sent");
        if (e->body_case == LINKD__V1__ENVELOPE__BODY_CALL)
            ldh_check(&env, e->call->category == ev->call.category &&
                                e->call->description &&
                                strcmp(e->call->description, ev->call.description) == 0,
                      "the stored call differs from the one sent");
        linkd__v1__envelope__free_unpacked(e, NULL);
        id = strdup(entry->element[0]->str);
    }
    freeReplyObject(rep);
    return id;
}

static Linkd__V1__IncidentRecord *get_record(const char *inc)
{
    redisReply *rep = ldh_redis_cmd(&env.redis, "GET ld:inc:%s", inc);
    ldh_check(&env, rep, "redis did not answer");
    if (rep->type != REDIS_REPLY_STRING) {
        freeReplyObject(rep);
        return NULL;
    }
    Linkd__V1__IncidentRecord *r =
        linkd__v1__incident_record__unpack(NULL, rep->len, (const uint8_t *)rep->str);
    freeReplyObject(rep);
    ldh_check(&env, r, "ld:inc:%s does not decode as linkd.v1.IncidentRecord", inc);
    return r;
}

Test(durability, accepted_event_is_in_the_stream_and_its_incident_in_redis, .init = setup,
     .fini = teardown, .timeout = 180)
{
    ldh_dispatch plan[LD_MAX_DISPATCH * 4];
    size_t n = fire_plan(plan, sizeof plan / sizeof plan[0]);
    cr_assert_gt(n, 0);

    ldh_event ev[5];
    char inc[5][64];
    for (int i = 0; i < 5; i++) {
        ldh_event_call(&ev[i], LINKD__V1__CALL_CATEGORY__CALL_CATEGORY_FIRE);
        int r = ldh_ingest_accept(&env.linkd, &ev[i], inc[i], sizeof inc[i]);
        ldh_check(&env, r == LINKD__V1__RESULT__RESULT_ACCEPTED, "event %d: %d", i, r);
        /* Durable before the answer: the entry is there now. */
        char *sid = find_in_stream(&ev[i]);
        ldh_check(&env, sid, "ACCEPTED event %s is not in ld:events", ev[i].event_id);
        char want[80];
        snprintf(want, sizeof want, "I%s", sid);
        ldh_check(&env, strcmp(inc[i], want) == 0, "incident id '%s', expected '%s'", inc[i],
                  want);
        redisReply *seen = ldh_redis_seen(&env.redis, ev[i].source_id, ev[i].event_id);
        ldh_check(&env, seen && seen->type == REDIS_REPLY_STRING && strcmp(seen->str, sid) == 0,
                  "ld:seen for %s does not hold stream id %s", ev[i].event_id, sid);
        freeReplyObject(seen);
        free(sid);
    }

    /* Let the duty terminals see their tasks, so the records have state. */
    const char *duty = ldh_rules_terminal_id(rules, plan[0].dept, 0);
    ldh_task_match tm = {.incident_id = inc[0], .department = plan[0].dept->id};
    Linkd__V1__Task *t = ldh_term_await(&env.linkd, duty, &tm, true, WAIT_MS);
    ldh_check(&env, t, "%s never got its task", duty);
    linkd__v1__task__free_unpacked(t, NULL);

    int code = ldh_linkd_stop(&env.linkd);
    ldh_check(&env, code == 0, "linkd exited %d on SIGTERM", code);

    for (int i = 0; i < 5; i++) {
        Linkd__V1__IncidentRecord *rec = get_record(inc[i]);
        ldh_check(&env, rec, "no ld:inc:%s after linkd stopped", inc[i]);
        ldh_check(&env, rec->incident_id && strcmp(rec->incident_id, inc[i]) == 0,
                  "record of %s names '%s'", inc[i], rec->incident_id);
        ldh_check(&env, rec->event_id && strcmp(rec->event_id, ev[i].event_id) == 0 &&
                            rec->source_id && strcmp(rec->source_id, ev[i].source_id) == 0,
                  "record of %s has the wrong event", inc[i]);
        ldh_check(&env, rec->kind && strcmp(rec->kind, "call") == 0, "kind '%s'", rec->kind);
        ldh_check(&env, rec->category && strcmp(rec->category, "fire") == 0, "category '%s'",
                  rec->category);
        ldh_check(&env, rec->has_opened_at_ms && rec->opened_at_ms > 0, "no opened_at_ms");
        ldh_check(&env, rec->n_tasks == n, "record of %s has %zu tasks, the rules name %zu",
                  inc[i], rec->n_tasks, n);
        int64_t earliest = INT64_MAX;
        for (size_t k = 0; k < n; k++) {
            bool found = false;
            for (size_t j = 0; j < rec->n_tasks && !found; j++) {
                const Linkd__V1__Task *task = rec->tasks[j]->task;
                if (!task || !task->department || strcmp(task->department, plan[k].dept->id))
                    continue;
                found = true;
                ldh_check(&env, task->acknowledge_by_ms ==
                                    task->dispatched_at_ms + (int64_t)plan[k].leg_ms[LD_LEG_ACK],
                          "stored %s task has the wrong acknowledge deadline", task->department);
                int64_t d[] = {task->acknowledge_by_ms, task->arrive_by_ms, task->resolve_by_ms};
                for (int l = 0; l < 3; l++)
                    if (d[l] < earliest) earliest = d[l];
            }
            ldh_check(&env, found, "record of %s has no %s task", inc[i], plan[k].dept->id);
        }
        bool opened = false;
        for (size_t j = 0; j < rec->n_history; j++)
            opened |= rec->history[j]->kind == LINKD__V1__FEED_KIND__FEED_KIND_INCIDENT_OPENED;
        ldh_check(&env, opened, "history of %s does not record the opening", inc[i]);

        /* Open, keyed by its earliest pending deadline. */
        redisReply *score = ldh_redis_cmd(&env.redis, "ZSCORE ld:open %s", inc[i]);
        ldh_check(&env, score && score->type == REDIS_REPLY_STRING, "%s not in ld:open", inc[i]);
        long long s = atoll(score->str);
        freeReplyObject(score);
        ldh_check(&env, s == earliest, "ld:open score of %s is %lld, earliest deadline %lld",
                  inc[i], s, (long long)earliest);
        linkd__v1__incident_record__free_unpacked(rec, NULL);
    }
    ldh_check(&env, ldh_redis_int(&env.redis, "XLEN ld:events") == 5, "ld:events length");
}

/* kill -9 loses nothing that was ACCEPTED: after a restart the event is still
 * a duplicate, and its task is still waiting at its duty terminal. */
Test(durability, a_crash_loses_nothing_accepted, .init = setup, .fini = teardown, .timeout = 180)
{
    ldh_dispatch plan[LD_MAX_DISPATCH * 4];
    size_t n = fire_plan(plan, sizeof plan / sizeof plan[0]);
    cr_assert_gt(n, 0);

    ldh_event ev;
    char inc[64];
    ldh_accept_call(&env, &ev, LINKD__V1__CALL_CATEGORY__CALL_CATEGORY_FIRE, inc);

    int old = 0;
    ldh_check(&env, ldh_env_restart(&env, true, &old) == 0, "linkd did not restart");
    ldh_check(&env, old == 128 + 9, "the crash was not a SIGKILL: %d", old);

    Linkd__V1__IngestReply *rep = ldh_ingest1(&env.linkd, &ev);
    ldh_check(&env, rep && rep->n_results == 1, "no reply after restart");
    ldh_check(&env, rep->results[0]->result == LINKD__V1__RESULT__RESULT_DUPLICATE,
              "after a crash the same event was answered %d, not DUPLICATE",
              (int)rep->results[0]->result);
    linkd__v1__ingest_reply__free_unpacked(rep, NULL);

    for (size_t i = 0; i < n; i++) {
        const char *duty = ldh_rules_terminal_id(rules, plan[i].dept, 0);
        ldh_task_match tm = {.incident_id = inc, .department = plan[i].dept->id};
        Linkd__V1__Task *t = ldh_term_await(&env.linkd, duty, &tm, true, WAIT_MS);
        ldh_check(&env, t, "after a crash, %s never got the %s task of %s", duty,
                  plan[i].dept->id, inc);
        linkd__v1__task__free_unpacked(t, NULL);
    }
    ldh_check(&env, ldh_redis_int(&env.redis, "XLEN ld:events") == 1, "ld:events length");
    /* The record is written behind (every --flush-ms): give it a moment. */
    long long open = 0;
    for (int i = 0; i < 500 && (open = ldh_redis_int(&env.redis, "ZCARD ld:open")) != 1; i++)
        ldh_sleep_ms(20);
    ldh_check(&env, open == 1, "ld:open holds %lld incidents after the restart, expected 1", open);
}

/* count_keys counts the keys matching <pattern> (SCAN, bounded). */
static long long count_keys(const char *pattern)
{
    long long n = 0;
    char cursor[32] = "0";
    for (int i = 0; i < 100000; i++) {
        redisReply *r = ldh_redis_cmd(&env.redis, "SCAN %s MATCH %s COUNT 1000", cursor, pattern);
        if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 2) {
            if (r) freeReplyObject(r);
            return -1;
        }
        n += (long long)r->element[1]->elements;
        snprintf(cursor, sizeof cursor, "%s", r->element[0]->str);
        freeReplyObject(r);
        if (strcmp(cursor, "0") == 0) return n;
    }
    return -1;
}

/* summary_count reads the number after <what> in linkd's SUMMARY line. */
static long long summary_count(const char *what)
{
    char *log = ldh_linkd_log(&env.linkd);
    const char *s = log ? strstr(log, "\"SUMMARY\"") : NULL;
    const char *p = s ? strstr(s, what) : NULL;
    long long v = p ? strtoll(p + strlen(what), NULL, 10) : -1;
    free(log);
    return v;
}

/* SIGTERM while producers push harder than linkd can take: linkd exits 0
 * and every incident it opened has its record and its audit trail in Redis
 * (nothing is left only in memory, however much was waiting to be written). */
Test(durability, sigterm_under_overload_leaves_every_record_and_trail_in_redis, .init = setup,
     .fini = teardown, .timeout = 300)
{
    ldh_dispatch plan[LD_MAX_DISPATCH * 4];
    size_t n = fire_plan(plan, sizeof plan / sizeof plan[0]);
    cr_assert_gt(n, 0);
    ldh_load_opts o = {.linkd = &env.linkd, .producers = 4, .batch = 50, .period_ms = 1};
    for (size_t i = 0; i < n && o.nterminals < LDH_LOAD_MAX_THREADS; i++)
        o.terminals[o.nterminals++] = ldh_rules_terminal_id(rules, plan[i].dept, 0);
    ldh_load *l = ldh_load_start(&o);
    ldh_check(&env, l, "the load did not start");
    ldh_load_stats st = {0};
    uint64_t end = ldh_mono_ms() + 60000;
    for (int i = 0; i < 1200 && ldh_mono_ms() < end && st.accepted < 5000; i++) {
        ldh_sleep_ms(50);
        ldh_load_get_stats(l, &st);
    }
    int code = ldh_linkd_stop(&env.linkd);
    ldh_load_stop(l);
    ldh_check(&env, st.accepted >= 5000, "only %llu events accepted in a minute",
              (unsigned long long)st.accepted);
    cr_expect_eq(code, 0, "linkd exited %d on SIGTERM under load", code);
    ldh_check(&env, !ldh_linkd_log_has(&env.linkd, "UNWRITTEN"),
              "linkd stopped with writes not in Redis");
    long long opened = summary_count("incidents opened ");
    ldh_check(&env, opened >= 5000, "SUMMARY: %lld incidents opened", opened);
    long long records = count_keys("ld:inc:*"), trails = count_keys("ld:audit:*");
    cr_expect_eq(records, opened, "%lld incidents opened, %lld records in Redis", opened,
                 records);
    cr_expect_eq(trails, opened, "%lld incidents opened, %lld audit trails in Redis", opened,
                 trails);
}
