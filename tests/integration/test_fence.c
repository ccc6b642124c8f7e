/* test_fence.c: no escalation is sent twice for the same task, level and leg,
 * across a crash or with two linkd on one Redis.
 *
 * Each deadline escalation first claims ld:esc:<task>:<level>:<leg> in Redis.
 * The dangerous window is the write-behind one: linkd escalates, announces
 * it, and dies before the incident record says so; the restarted linkd finds
 * the old record, the deadline passes again on its first turn, and it must
 * recognise the move as made (the task goes to the level above, marked as a
 * redelivery, and the incident's history records the escalation once).
 *
 * Rules: tests/data/rules-it/small (fire: acknowledge within 30 s, then the
 * deputy has 2 min). Time runs 10 (crash) or 5 (two instances) times faster
 * than real time, so a deadline passes seconds after the event. */
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "wire/wire.h"

#define WAIT_MS 30000
#define RULES LD_SOURCE_DIR "/tests/data/rules-it/small"

static ldh_env env;

static void teardown(void)
{
    int code = ldh_env_stop(&env);
    cr_expect_eq(code, 0, "linkd must exit 0 on SIGTERM, exited %d", code);
}

static Linkd__V1__IncidentRecord *get_record(const char *inc)
{
    redisReply *rep = ldh_redis_cmd(&env.redis, "GET ld:inc:%s", inc);
    ldh_check(&env, rep, "redis did not answer");
    Linkd__V1__IncidentRecord *r = NULL;
    if (rep->type == REDIS_REPLY_STRING)
        r = linkd__v1__incident_record__unpack(NULL, rep->len, (const uint8_t *)rep->str);
    freeReplyObject(rep);
    return r;
}

/* The index of <dept>'s task in <rec>, or -1. */
static int task_index(const Linkd__V1__IncidentRecord *rec, const char *dept)
{
    for (size_t i = 0; i < rec->n_tasks; i++)
        if (rec->tasks[i]->task && rec->tasks[i]->task->department &&
            strcmp(rec->tasks[i]->task->department, dept) == 0)
            return (int)i;
    return -1;
}

/* History entries of <kind> for task <idx> on <leg> that put it at <level>. */
static int history_count(const Linkd__V1__IncidentRecord *rec, int kind, int idx, int leg,
                         unsigned level)
{
    int n = 0;
    for (size_t i = 0; i < rec->n_history; i++) {
        const Linkd__V1__HistoryEntry *h = rec->history[i];
        n += (int)h->kind == kind && (int)h->task_index == idx && (int)h->leg == leg &&
             h->level == level;
    }
    return n;
}

static bool escalated_from(const Linkd__V1__FeedEvent *ev, void *arg)
{
    const char *task_id = arg;
    return ev->kind == LINKD__V1__FEED_KIND__FEED_KIND_TASK_ESCALATED && ev->task &&
           ev->task->task_id && strcmp(ev->task->task_id, task_id) == 0 && ev->from_level == 0;
}

Test(fence, a_crash_after_an_escalation_before_its_record_does_not_send_it_again,
     .fini = teardown, .timeout = 180)
{
    /* Records written every 10 s: the escalation, 3 s after the event, is
     * in Redis's fence but not in the record when linkd is killed. */
    ldh_linkd_opts o = {.rules = RULES, .time_scale = 10,
                        .extra = {"--flush-ms", "10000", NULL}};
    ldh_env_start_or_fail(&env, &o);
    ldh_feed feed;
    ldh_check(&env, ldh_feed_open(&feed, &env.linkd) == 0, "feed subscription failed");

    ldh_event ev;
    char inc[64], task[96];
    ldh_accept_call(&env, &ev, LINKD__V1__CALL_CATEGORY__CALL_CATEGORY_FIRE, inc);
    snprintf(task, sizeof task, "%s/fire", inc);
    const Linkd__V1__FeedEvent *esc = ldh_feed_wait(&feed, WAIT_MS, escalated_from, task);
    ldh_check(&env, esc, "the unacknowledged fire task never escalated");

    int old = 0;
    ldh_linkd_kill(&env.linkd);
    ldh_feed_close(&feed);

    /* The window: the fence holds the move, the record does not (yet). */
    redisReply *fence = ldh_redis_cmd(&env.redis, "GET ld:esc:%s:0:acknowledge", task);
    ldh_check(&env, fence && fence->type == REDIS_REPLY_STRING,
              "no fence ld:esc:%s:0:acknowledge in redis", task);
    uint64_t made_at = strtoull(fence->str, NULL, 10);
    freeReplyObject(fence);
    Linkd__V1__IncidentRecord *rec = get_record(inc);
    if (rec) {
        int fi = task_index(rec, "fire");
        bool stale = fi >= 0 && rec->tasks[fi]->task->level == 0;
        linkd__v1__incident_record__free_unpacked(rec, NULL);
        if (!stale) cr_skip_test("the record was written before the kill: machine too slow");
    }

    ldh_check(&env, ldh_env_restart(&env, false, &old) == 0, "linkd did not restart");
    ldh_check(&env, old == 128 + SIGKILL, "the crash was not a SIGKILL: %d", old);

    /* The deputy gets the task, marked as a redelivery: the crashed run may
     * have delivered it already. */
    ldh_task_match m = {.task_id = task};
    Linkd__V1__Task *t = ldh_term_await(&env.linkd, "fire-deputy", &m, true, WAIT_MS);
    ldh_check(&env, t, "after the restart fire-deputy never got %s", task);
    ldh_check(&env, t->level == 1, "the task is at level %u, not 1", t->level);
    ldh_check(&env, t->redelivery, "the escalated task must come as a redelivery");
    ldh_check(&env, (uint64_t)t->acknowledge_by_ms > made_at &&
                        (uint64_t)t->acknowledge_by_ms <= made_at + 2 * 60 * 1000,
              "the deputy's deadline %lld must run from the first escalation at %llu",
              (long long)t->acknowledge_by_ms, (unsigned long long)made_at);
    linkd__v1__task__free_unpacked(t, NULL);
    ldh_check(&env, ldh_linkd_log_wait(&env.linkd, "ESCALATION-FENCED", WAIT_MS),
              "the restarted linkd did not recognise the escalation as made");

    int code = ldh_linkd_stop(&env.linkd);
    ldh_check(&env, code == 0, "linkd exited %d", code);
    char *log = ldh_linkd_log(&env.linkd);
    ldh_check(&env, log && strstr(log, "fenced "), "no fenced count in SUMMARY");
    free(log);

    /* The audit trail: exactly one escalation of the fire task from level 0. */
    rec = get_record(inc);
    ldh_check(&env, rec, "no record of %s after the stop", inc);
    int fi = task_index(rec, "fire");
    ldh_check(&env, fi >= 0, "no fire task in the record");
    int n = history_count(rec, LINKD__V1__FEED_KIND__FEED_KIND_TASK_ESCALATED, fi,
                          LINKD__V1__LEG__LEG_ACKNOWLEDGE, 1);
    linkd__v1__incident_record__free_unpacked(rec, NULL);
    ldh_check(&env, n == 1, "the history records %d escalations of %s to level 1, not 1", n, task);
}

Test(fence, two_instances_on_one_redis_escalate_each_task_once, .fini = teardown,
     .timeout = 180)
{
    ldh_linkd_opts o = {.rules = RULES, .time_scale = 5};
    ldh_env_start_or_fail(&env, &o);
    ldh_linkd b;
    memset(&b, 0, sizeof b);
    ldh_feed fa, fb;
    ldh_check(&env, ldh_feed_open(&fa, &env.linkd) == 0, "feed A subscription failed");

    ldh_event ev;
    char inc[64], fire[96], medical[96];
    ldh_accept_call(&env, &ev, LINKD__V1__CALL_CATEGORY__CALL_CATEGORY_FIRE, inc);
    snprintf(fire, sizeof fire, "%s/fire", inc);
    snprintf(medical, sizeof medical, "%s/medical", inc);
    /* B starts once A has written the incident, and restores it. */
    bool written = false;
    for (int i = 0; i < 200 && !written; i++) {
        written = ldh_redis_int(&env.redis, "EXISTS ld:inc:%s", inc) == 1;
        if (!written) ldh_sleep_ms(50);
    }
    ldh_check(&env, written, "A never wrote the incident record");
    int rv = ldh_linkd_start(&b, &env.redis, &o);
    ldh_check(&env, rv == 0, "the second linkd did not start: %d", rv);
    ldh_check(&env, ldh_feed_open(&fb, &b) == 0, "feed B subscription failed");
    ldh_check(&env, ldh_linkd_log_has(&b, "restored 1 open incidents"),
              "the second linkd did not restore the incident");

    /* Both hold the task with the same deadline; one escalates it. */
    const Linkd__V1__FeedEvent *ea = NULL, *eb = NULL;
    for (int i = 0; i < WAIT_MS / 400 && !ea && !eb; i++) {
        ea = ldh_feed_wait(&fa, 200, escalated_from, fire);
        if (!ea) eb = ldh_feed_wait(&fb, 200, escalated_from, fire);
    }
    ldh_check(&env, ea || eb, "nobody escalated %s", fire);
    /* The other one's deadline passed at the same moment; give it time to act. */
    ldh_feed_collect(&fa, 1500);
    ldh_feed_collect(&fb, 1500);
    const char *tasks[] = {fire, medical};
    for (int k = 0; k < 2; k++) {
        ldh_feed_match m = {.kind = LINKD__V1__FEED_KIND__FEED_KIND_TASK_ESCALATED,
                            .task_id = tasks[k], .leg = LINKD__V1__LEG__LEG_ACKNOWLEDGE,
                            .check_from_level = true, .from_level = 0};
        size_t na = ldh_feed_count(&fa, &m), nb = ldh_feed_count(&fb, &m);
        ldh_check(&env, na + nb == 1, "%s escalated from level 0 %zu times by A and %zu by B",
                  tasks[k], na, nb);
    }
    ldh_check(&env, ldh_linkd_log_wait(ea ? &b : &env.linkd, "ESCALATION-FENCED", WAIT_MS),
              "the other instance did not meet the fence");
    ldh_feed_close(&fa);
    ldh_feed_close(&fb);
    int code = ldh_linkd_stop(&b);
    ldh_linkd_free(&b);
    ldh_check(&env, code == 0, "the second linkd exited %d", code);
}
