/* test_escalation.c: a task nobody acknowledges climbs its department's chain
 * level by level, each level's terminal receives it, and it reaches the
 * command centre; a task that is acknowledged in time does not escalate on
 * the acknowledge leg.
 *
 * Deadlines and chains come from the default rules. --time-scale is chosen
 * from them so each level holds the task for a second or more of real time;
 * nothing here asserts how long anything took: only order and end state,
 * with generous bounds on every wait. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "wire/wire.h"

#define WAIT_MS 20000
#define CHAIN_WAIT_MS 180000   /* the whole climb, on a slow machine */

static ldh_env env;
static ld_rules *rules;

static void teardown(void)
{
    int code = ldh_env_stop(&env);
    if (rules) ld_rules_free(rules);
    rules = NULL;
    cr_expect_eq(code, 0, "linkd must exit 0 on SIGTERM, exited %d", code);
}

/* Domain ms a task of <p> spends at <level> before it moves up on a missed
 * acknowledgement: the ack budget at level 0, the level's wait above. */
static uint64_t dwell_ms(const ldh_dispatch *p, int level)
{
    if (level == 0) return p->leg_ms[LD_LEG_ACK];
    const ld_level *l = ldh_rules_level(rules, p->dept, level);
    return l ? l->wait_ms : 0;
}

/* A time scale that gives every level at least <min_real_ms> of real time,
 * unless the climb would then take longer than <max_total_ms>. */
static double pick_scale(const ldh_dispatch *p, int levels, double min_real_ms,
                         double max_total_ms)
{
    double min = 0, sum = 0;
    for (int k = 0; k < levels; k++) {
        double d = (double)dwell_ms(p, k);
        if (k == 0 || d < min) min = d;
        sum += d;
    }
    double scale = min / min_real_ms;
    if (sum / scale > max_total_ms) scale = sum / max_total_ms;
    return scale < 1 ? 1 : scale;
}

static size_t fire_plan(ldh_dispatch *plan, size_t max)
{
    ld_match_input in = {.kind = LD_KIND_CALL,
                         .category = LINKD__V1__CALL_CATEGORY__CALL_CATEGORY_FIRE};
    return ldh_rules_plan(rules, &in, plan, max);
}

/* One terminal of the chain, long-polling in its own thread until it is
 * handed the task: all levels poll at once, as real terminals do. */
typedef struct watcher {
    pthread_t thread;
    const char *terminal;
    const char *task_id;
    Linkd__V1__Task *got;
} watcher;

static void *watch(void *arg)
{
    watcher *w = arg;
    ldh_task_match m = {.task_id = w->task_id};
    w->got = ldh_term_await(&env.linkd, w->terminal, &m, true, CHAIN_WAIT_MS);
    return NULL;
}

Test(escalation, unacknowledged_task_climbs_every_level_to_command, .fini = teardown,
     .timeout = 420)
{
    rules = ldh_rules_load(LDH_DEFAULT_RULES);
    cr_assert_not_null(rules);
    ldh_dispatch plan[LD_MAX_DISPATCH * 4];
    size_t n = fire_plan(plan, sizeof plan / sizeof plan[0]);
    cr_assert_gt(n, 0, "the default rules route fire calls nowhere");
    const ldh_dispatch *p = &plan[0];
    const int levels = ldh_rules_chain_len(rules, p->dept);
    cr_assert_gt(levels, p->dept->nlevels, "%s's chain must end in command", p->dept->id);
    cr_assert_leq(levels, 16);

    ldh_linkd_opts o = {.time_scale = pick_scale(p, levels, 1500, 40000)};
    ldh_env_start_or_fail(&env, &o);
    cr_log_info("escalation: %s, %d levels, --time-scale %g", p->dept->id, levels, o.time_scale);

    ldh_feed feed;
    ldh_check(&env, ldh_feed_open(&feed, &env.linkd) == 0, "feed subscription failed");
    ldh_event ev;
    char inc[64];
    ldh_accept_call(&env, &ev, LINKD__V1__CALL_CATEGORY__CALL_CATEGORY_FIRE, inc);
    ldh_feed_match m = {.kind = LINKD__V1__FEED_KIND__FEED_KIND_TASK_DISPATCHED,
                        .incident_id = inc, .department = p->dept->id};
    const Linkd__V1__FeedEvent *fe = ldh_feed_wait_for(&feed, WAIT_MS, &m);
    ldh_check(&env, fe && fe->task && fe->task->task_id, "no TASK_DISPATCHED to %s", p->dept->id);
    char task_id[128];
    snprintf(task_id, sizeof task_id, "%s", fe->task->task_id);

    watcher w[16] = {0};
    for (int k = 0; k < levels; k++) {
        w[k].terminal = ldh_rules_terminal_id(rules, p->dept, k);
        w[k].task_id = task_id;
        cr_assert_eq(pthread_create(&w[k].thread, NULL, watch, &w[k]), 0);
    }

    /* Each move up is on the feed, in order, to the next level's terminal. */
    long prev = ldh_feed_index(&feed, fe);
    for (int k = 0; k + 1 < levels; k++) {
        m = (ldh_feed_match){.kind = LINKD__V1__FEED_KIND__FEED_KIND_TASK_ESCALATED,
                             .task_id = task_id, .check_from_level = true,
                             .from_level = (unsigned)k};
        fe = ldh_feed_wait_for(&feed, CHAIN_WAIT_MS, &m);
        if (!fe) ldh_feed_print(&feed);
        ldh_check(&env, fe, "%s never escalated from level %d", task_id, k);
        long at = ldh_feed_index(&feed, fe);
        ldh_check(&env, at > prev, "escalation from level %d came out of order", k);
        prev = at;
        const char *want = ldh_rules_terminal_id(rules, p->dept, k + 1);
        ldh_check(&env, fe->task && fe->task->level == (unsigned)(k + 1),
                  "escalation from level %d went to level %u", k, fe->task ? fe->task->level : 0);
        ldh_check(&env, fe->task->terminal && strcmp(fe->task->terminal, want) == 0,
                  "escalation from level %d went to terminal '%s', the chain says '%s'", k,
                  fe->task->terminal, want);
        ldh_check(&env, fe->has_leg && fe->leg != LINKD__V1__LEG__LEG_UNSPECIFIED,
                  "an escalation must say which leg was missed");
        if (k == 0 && p->leg_ms[LD_LEG_ACK] < p->leg_ms[LD_LEG_ARRIVE])
            ldh_check(&env, fe->leg == LINKD__V1__LEG__LEG_ACKNOWLEDGE,
                      "the first miss of an unacknowledged task is the acknowledge leg, got %d",
                      (int)fe->leg);
    }

    for (int k = 0; k < levels; k++) {
        pthread_join(w[k].thread, NULL);
        ldh_check(&env, w[k].got, "terminal %s (level %d) was never handed %s", w[k].terminal,
                  k, task_id);
        ldh_check(&env, w[k].got->level == (unsigned)k,
                  "terminal %s got %s at level %u, expected %d", w[k].terminal, task_id,
                  w[k].got->level, k);
        ldh_check(&env, w[k].got->terminal && strcmp(w[k].got->terminal, w[k].terminal) == 0,
                  "the task sent to %s names terminal '%s'", w[k].terminal, w[k].got->terminal);
    }
    /* It reached the command centre's terminals. */
    const ld_department *cmd = &rules->departments[rules->command];
    ldh_check(&env,
              strcmp(w[levels - 1].terminal,
                     rules->terminals[cmd->levels[cmd->nlevels - 1].terminal].id) == 0,
              "the top of %s's chain is not command's top", p->dept->id);
    for (int k = 0; k < levels; k++) linkd__v1__task__free_unpacked(w[k].got, NULL);

    /* Nothing goes above the top. */
    ldh_feed_collect(&feed, 500);
    for (size_t i = 0; i < feed.n; i++) {
        const Linkd__V1__FeedEvent *e = feed.ev[i];
        if (e->kind == LINKD__V1__FEED_KIND__FEED_KIND_TASK_ESCALATED && e->task &&
            e->task->task_id && strcmp(e->task->task_id, task_id) == 0)
            ldh_check(&env, e->task->level < (unsigned)levels, "escalated past the top: level %u",
                      e->task->level);
    }
    ldh_feed_close(&feed);

    /* The climb is on the record in Redis: the history of the incident has an
     * escalation to every level. */
    int code = ldh_linkd_stop(&env.linkd);
    ldh_check(&env, code == 0, "linkd exited %d on SIGTERM", code);
    redisReply *rep = ldh_redis_cmd(&env.redis, "GET ld:inc:%s", inc);
    ldh_check(&env, rep && rep->type == REDIS_REPLY_STRING, "no ld:inc:%s after stop", inc);
    Linkd__V1__IncidentRecord *rec =
        linkd__v1__incident_record__unpack(NULL, rep->len, (const uint8_t *)rep->str);
    freeReplyObject(rep);
    ldh_check(&env, rec, "ld:inc:%s does not decode as IncidentRecord", inc);
    int task_index = -1;
    for (size_t i = 0; i < rec->n_tasks; i++)
        if (rec->tasks[i]->task && rec->tasks[i]->task->task_id &&
            strcmp(rec->tasks[i]->task->task_id, task_id) == 0)
            task_index = (int)i;
    ldh_check(&env, task_index >= 0, "%s is not in its incident record", task_id);
    for (int k = 1; k < levels; k++) {
        bool found = false;
        for (size_t i = 0; i < rec->n_history && !found; i++) {
            const Linkd__V1__HistoryEntry *h = rec->history[i];
            found = h->kind == LINKD__V1__FEED_KIND__FEED_KIND_TASK_ESCALATED &&
                    (int)h->task_index == task_index && h->level == (unsigned)k;
        }
        ldh_check(&env, found, "history of %s has no escalation of %s to level %d", inc, task_id,
                  k);
    }
    const Linkd__V1__Task *last = rec->tasks[task_index]->task;
    ldh_check(&env, last->level == (unsigned)(levels - 1), "stored level %u, expected the top %d",
              last->level, levels - 1);
    linkd__v1__incident_record__free_unpacked(rec, NULL);
}

/* An acknowledged task does not escalate on the acknowledge leg. Whether
 * enough domain time has passed is decided by causality, not a stopwatch: a
 * control task, dispatched just before and never acknowledged, must first
 * climb two levels; the feed is ordered, so by then any acknowledge-leg
 * escalation of the acknowledged task would already be on it. */
Test(escalation, acknowledgement_stops_the_acknowledge_leg, .fini = teardown, .timeout = 420)
{
    rules = ldh_rules_load(LDH_DEFAULT_RULES);
    cr_assert_not_null(rules);
    ldh_dispatch plan[LD_MAX_DISPATCH * 4];
    size_t n = fire_plan(plan, sizeof plan / sizeof plan[0]);
    cr_assert_gt(n, 0);
    const ldh_dispatch *p = &plan[0];
    cr_assert_geq(ldh_rules_chain_len(rules, p->dept), 3);

    /* Level 0 holds the task for ~5 s of real time: ample to acknowledge. */
    double scale = (double)p->leg_ms[LD_LEG_ACK] / 5000.0;
    ldh_linkd_opts o = {.time_scale = scale < 1 ? 1 : scale};
    ldh_env_start_or_fail(&env, &o);

    ldh_feed feed;
    ldh_check(&env, ldh_feed_open(&feed, &env.linkd) == 0, "feed subscription failed");
    ldh_event control, acked;
    ldh_event_call(&control, LINKD__V1__CALL_CATEGORY__CALL_CATEGORY_FIRE);
    ldh_event_call(&acked, LINKD__V1__CALL_CATEGORY__CALL_CATEGORY_FIRE);
    char inc_c[64], inc_a[64];
    ldh_check(&env, ldh_ingest_accept(&env.linkd, &control, inc_c, sizeof inc_c) ==
                        LINKD__V1__RESULT__RESULT_ACCEPTED,
              "control not accepted");
    ldh_check(&env, ldh_ingest_accept(&env.linkd, &acked, inc_a, sizeof inc_a) ==
                        LINKD__V1__RESULT__RESULT_ACCEPTED,
              "event not accepted");
    ldh_check(&env, strcmp(inc_c, inc_a) != 0, "two fire calls 10 km apart became one incident");

    const char *duty = ldh_rules_terminal_id(rules, p->dept, 0);
    ldh_task_match tm = {.incident_id = inc_a, .department = p->dept->id};
    Linkd__V1__Task *t = ldh_term_await(&env.linkd, duty, &tm, true, WAIT_MS);
    ldh_check(&env, t, "%s never got its task", duty);
    char task_a[128];
    snprintf(task_a, sizeof task_a, "%s", t->task_id);
    linkd__v1__task__free_unpacked(t, NULL);
    char why[256];
    int r = ldh_term_update(&env.linkd, duty, task_a, LINKD__V1__UPDATE_KIND__UPDATE_KIND_ACKNOWLEDGED,
                            NULL, why, sizeof why);
    ldh_check(&env, r == LINKD__V1__RESULT__RESULT_ACCEPTED, "ack of %s: %d %s", task_a, r, why);

    ldh_feed_match m = {.kind = LINKD__V1__FEED_KIND__FEED_KIND_TASK_ACKNOWLEDGED,
                        .task_id = task_a};
    const Linkd__V1__FeedEvent *fe = ldh_feed_wait_for(&feed, WAIT_MS, &m);
    ldh_check(&env, fe, "no TASK_ACKNOWLEDGED for %s", task_a);
    long i_ack = ldh_feed_index(&feed, fe);
    /* The ack must have beaten the deadline, or this test proves nothing. */
    m = (ldh_feed_match){.kind = LINKD__V1__FEED_KIND__FEED_KIND_TASK_ESCALATED, .task_id = task_a,
                         .leg = LINKD__V1__LEG__LEG_ACKNOWLEDGE};
    ldh_check(&env, ldh_feed_count(&feed, &m) == 0, "%s escalated before it was acknowledged: "
              "the machine is too slow for --time-scale %g", task_a, o.time_scale);

    m = (ldh_feed_match){.kind = LINKD__V1__FEED_KIND__FEED_KIND_TASK_ESCALATED,
                         .incident_id = inc_c, .department = p->dept->id,
                         .check_from_level = true, .from_level = 1};
    fe = ldh_feed_wait_for(&feed, CHAIN_WAIT_MS, &m);
    ldh_check(&env, fe, "the control task never climbed past level 1");
    ldh_check(&env, ldh_feed_index(&feed, fe) > i_ack, "control escalated before the ack");
    ldh_feed_collect(&feed, 500);

    m = (ldh_feed_match){.kind = LINKD__V1__FEED_KIND__FEED_KIND_TASK_ESCALATED, .task_id = task_a,
                         .leg = LINKD__V1__LEG__LEG_ACKNOWLEDGE};
    if (ldh_feed_count(&feed, &m)) ldh_feed_print(&feed);
    ldh_check(&env, ldh_feed_count(&feed, &m) == 0,
              "%s escalated on the acknowledge leg after it was acknowledged", task_a);
    ldh_feed_close(&feed);

    /* And the record agrees: acknowledged, at level 0 unless another leg moved it. */
    int code = ldh_linkd_stop(&env.linkd);
    ldh_check(&env, code == 0, "linkd exited %d on SIGTERM", code);
    redisReply *rep = ldh_redis_cmd(&env.redis, "GET ld:inc:%s", inc_a);
    ldh_check(&env, rep && rep->type == REDIS_REPLY_STRING, "no ld:inc:%s", inc_a);
    Linkd__V1__IncidentRecord *rec =
        linkd__v1__incident_record__unpack(NULL, rep->len, (const uint8_t *)rep->str);
    freeReplyObject(rep);
    ldh_check(&env, rec, "ld:inc:%s does not decode", inc_a);
    bool seen = false;
    for (size_t i = 0; i < rec->n_tasks; i++) {
        const Linkd__V1__TaskRecord *tr = rec->tasks[i];
        if (!tr->task || !tr->task->task_id || strcmp(tr->task->task_id, task_a)) continue;
        seen = true;
        ldh_check(&env, tr->has_acknowledged_at_ms && tr->acknowledged_at_ms > 0,
                  "%s: no acknowledged_at_ms in the record", task_a);
    }
    ldh_check(&env, seen, "%s missing from its record", task_a);
    linkd__v1__incident_record__free_unpacked(rec, NULL);
}
