/* test_dispatch.c: an accepted event becomes tasks for exactly the departments
 * its rules name, with the rules' deadlines, on each department's duty
 * terminal; the feed tells the story; terminals update their tasks.
 *
 * Expectations come from the rule set itself (ld_rules_load + ld_rules_match),
 * never from copies of it, so these tests follow the rules as they change. */
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "wire/wire.h"

#define WAIT_MS 20000   /* for anything that should happen promptly */

static ldh_env env;
static ld_rules *rules;

static void setup(void)
{
    rules = ldh_rules_load(LDH_DEFAULT_RULES);
    cr_assert_not_null(rules, "the default rules must load");
    ldh_env_start_or_fail(&env, NULL);
}

static void teardown(void)
{
    int code = ldh_env_stop(&env);
    if (rules) ld_rules_free(rules);
    rules = NULL;
    cr_expect_eq(code, 0, "linkd must exit 0 on SIGTERM, exited %d", code);
}

static size_t plan_for(const ldh_event *ev, ldh_dispatch *plan, size_t max)
{
    ld_match_input in = {
        .kind = ld_envelope_kind(&ev->env),
        .category = ld_envelope_category(&ev->env),
        .priority = ev->env.body_case == LINKD__V1__ENVELOPE__BODY_CALL && ev->call.has_priority
                        ? (int)ev->call.priority
                        : 0,
    };
    return ldh_rules_plan(rules, &in, plan, max);
}

/* Checks one delivered task against the plan entry for its department. */
static void check_task(const Linkd__V1__Task *t, const ldh_dispatch *p, const char *inc,
                       const ldh_event *ev)
{
    const char *duty = ldh_rules_terminal_id(rules, p->dept, 0);
    ldh_check(&env, t->task_id && *t->task_id, "task without id");
    ldh_check(&env, t->incident_id && strcmp(t->incident_id, inc) == 0,
              "task %s: incident '%s', expected '%s'", t->task_id, t->incident_id, inc);
    ldh_check(&env, t->department && strcmp(t->department, p->dept->id) == 0,
              "task %s: department '%s', expected '%s'", t->task_id, t->department, p->dept->id);
    ldh_check(&env, t->terminal && strcmp(t->terminal, duty) == 0,
              "task %s: terminal '%s', expected duty terminal '%s'", t->task_id, t->terminal,
              duty);
    ldh_check(&env, t->level == 0, "task %s: level %u, expected 0", t->task_id, t->level);
    ldh_check(&env, t->has_state && t->state == LINKD__V1__TASK_STATE__TASK_STATE_DISPATCHED,
              "task %s: state %d, expected DISPATCHED", t->task_id, (int)t->state);
    ldh_check(&env, t->event_id && strcmp(t->event_id, ev->event_id) == 0,
              "task %s: event_id '%s', expected '%s'", t->task_id, t->event_id, ev->event_id);
    ldh_check(&env, t->has_dispatched_at_ms && t->dispatched_at_ms > 0,
              "task %s: no dispatched_at_ms", t->task_id);
    /* The deadlines are the route's budgets for this department, from dispatch. */
    const int64_t at = t->dispatched_at_ms;
    ldh_check(&env, t->acknowledge_by_ms == at + (int64_t)p->leg_ms[LD_LEG_ACK],
              "task %s: acknowledge_by %lld, expected dispatched %lld + %llu", t->task_id,
              (long long)t->acknowledge_by_ms, (long long)at,
              (unsigned long long)p->leg_ms[LD_LEG_ACK]);
    ldh_check(&env, t->arrive_by_ms == at + (int64_t)p->leg_ms[LD_LEG_ARRIVE],
              "task %s: arrive_by %lld, expected dispatched %lld + %llu", t->task_id,
              (long long)t->arrive_by_ms, (long long)at,
              (unsigned long long)p->leg_ms[LD_LEG_ARRIVE]);
    ldh_check(&env, t->resolve_by_ms == at + (int64_t)p->leg_ms[LD_LEG_RESOLVE],
              "task %s: resolve_by %lld, expected dispatched %lld + %llu", t->task_id,
              (long long)t->resolve_by_ms, (long long)at,
              (unsigned long long)p->leg_ms[LD_LEG_RESOLVE]);
    /* Every task cites the rule that made it. */
    ldh_check(&env, t->rule && strstr(t->rule, p->route->name),
              "task %s: rule '%s' does not cite route '%s'", t->task_id, t->rule, p->route->name);
}

/* Sends <ev>, then checks that each planned department's duty terminal gets
 * its task, that the feed dispatched to no other department, and that no
 * other department's duty terminal holds a task of the incident. */
static void dispatch_and_check(ldh_event *ev)
{
    ldh_dispatch plan[LD_MAX_DISPATCH * 4];
    size_t n = plan_for(ev, plan, sizeof plan / sizeof plan[0]);
    cr_assert_gt(n, 0, "the default rules route %s/%s nowhere", ld_kind_name(ld_envelope_kind(&ev->env)),
                 ld_envelope_category_name(&ev->env));

    ldh_feed feed;
    ldh_check(&env, ldh_feed_open(&feed, &env.linkd) == 0, "feed subscription failed");

    char inc[64];
    int res = ldh_ingest_accept(&env.linkd, ev, inc, sizeof inc);
    ldh_check(&env, res == LINKD__V1__RESULT__RESULT_ACCEPTED, "event not accepted: %d", res);
    ldh_check(&env, inc[0] == 'I', "incident id '%s' should start with I", inc);

    for (size_t i = 0; i < n; i++) {
        const char *duty = ldh_rules_terminal_id(rules, plan[i].dept, 0);
        ldh_task_match m = {.incident_id = inc, .department = plan[i].dept->id};
        Linkd__V1__Task *t = ldh_term_await(&env.linkd, duty, &m, true, WAIT_MS);
        ldh_check(&env, t != NULL, "duty terminal %s never got its %s task of %s", duty,
                  plan[i].dept->id, inc);
        check_task(t, &plan[i], inc, ev);
        linkd__v1__task__free_unpacked(t, NULL);
    }

    /* Exactly those departments: one TASK_DISPATCHED each, none for others. */
    ldh_feed_match opened = {.kind = LINKD__V1__FEED_KIND__FEED_KIND_INCIDENT_OPENED,
                             .incident_id = inc};
    ldh_check(&env, ldh_feed_wait_for(&feed, WAIT_MS, &opened), "no INCIDENT_OPENED for %s", inc);
    ldh_feed_collect(&feed, 300);
    ldh_feed_match disp = {.kind = LINKD__V1__FEED_KIND__FEED_KIND_TASK_DISPATCHED,
                           .incident_id = inc};
    size_t ndisp = ldh_feed_count(&feed, &disp);
    if (ndisp != n) ldh_feed_print(&feed);
    ldh_check(&env, ndisp == n, "%zu TASK_DISPATCHED for %s, the rules name %zu departments",
              ndisp, inc, n);
    for (size_t i = 0; i < n; i++) {
        disp.department = plan[i].dept->id;
        ldh_check(&env, ldh_feed_count(&feed, &disp) == 1, "no TASK_DISPATCHED to %s",
                  plan[i].dept->id);
    }
    ldh_feed_close(&feed);

    for (int d = 0; d < rules->ndepartments; d++) {
        const ld_department *dept = &rules->departments[d];
        bool planned = false;
        for (size_t i = 0; i < n; i++) planned |= plan[i].dept == dept;
        if (planned || d == rules->command) continue;
        ldh_poll p = {.terminal = ldh_rules_terminal_id(rules, dept, 0), .wait_ms = 0};
        Linkd__V1__PollReply *rep = NULL;
        ldh_check(&env, ldh_term_poll(&env.linkd, &p, &rep) == 0, "poll as %s failed", p.terminal);
        for (size_t i = 0; i < rep->n_tasks; i++)
            ldh_check(&env, !rep->tasks[i]->incident_id || strcmp(rep->tasks[i]->incident_id, inc),
                      "%s got a task of %s, which its rules do not route to %s", p.terminal, inc,
                      dept->id);
        linkd__v1__poll_reply__free_unpacked(rep, NULL);
    }
}

Test(dispatch, fire_call_reaches_the_routed_duty_terminals, .init = setup, .fini = teardown,
     .timeout = 240)
{
    ldh_event ev;
    ldh_event_call(&ev, LINKD__V1__CALL_CATEGORY__CALL_CATEGORY_FIRE);
    dispatch_and_check(&ev);
}

Test(dispatch, sensor_alarm_and_petition_follow_their_routes, .init = setup, .fini = teardown,
     .timeout = 240)
{
    ldh_event s, p, c;
    ldh_event_sensor(&s, LINKD__V1__SENSOR_KIND__SENSOR_KIND_GAS);
    dispatch_and_check(&s);
    ldh_event_petition(&p, LINKD__V1__PETITION_ISSUE__PETITION_ISSUE_WAGE_ARREARS, 2);
    dispatch_and_check(&p);
    ldh_event_call(&c, LINKD__V1__CALL_CATEGORY__CALL_CATEGORY_WATER_SUPPLY);
    dispatch_and_check(&c);
}

/* The feed tells a command centre what happened, in order: the incident
 * opened, its tasks were dispatched, delivered (on a receipt), acknowledged,
 * resolved, and the incident closed when the last task was resolved. */
Test(dispatch, feed_shows_each_step_in_order, .init = setup, .fini = teardown, .timeout = 240)
{
    ldh_event ev;
    ldh_event_call(&ev, LINKD__V1__CALL_CATEGORY__CALL_CATEGORY_FIRE);
    ldh_dispatch plan[LD_MAX_DISPATCH * 4];
    size_t n = plan_for(&ev, plan, sizeof plan / sizeof plan[0]);
    cr_assert_gt(n, 0);

    ldh_feed feed;
    ldh_check(&env, ldh_feed_open(&feed, &env.linkd) == 0, "feed subscription failed");
    char inc[64];
    ldh_check(&env, ldh_ingest_accept(&env.linkd, &ev, inc, sizeof inc) ==
                        LINKD__V1__RESULT__RESULT_ACCEPTED,
              "not accepted");

    ldh_feed_match m = {.kind = LINKD__V1__FEED_KIND__FEED_KIND_INCIDENT_OPENED,
                        .incident_id = inc};
    const Linkd__V1__FeedEvent *fe = ldh_feed_wait_for(&feed, WAIT_MS, &m);
    ldh_check(&env, fe, "no INCIDENT_OPENED");
    long i_open = ldh_feed_index(&feed, fe);

    for (size_t i = 0; i < n; i++) {
        const char *dept = plan[i].dept->id;
        const char *duty = ldh_rules_terminal_id(rules, plan[i].dept, 0);

        m = (ldh_feed_match){.kind = LINKD__V1__FEED_KIND__FEED_KIND_TASK_DISPATCHED,
                             .incident_id = inc, .department = dept};
        fe = ldh_feed_wait_for(&feed, WAIT_MS, &m);
        ldh_check(&env, fe && fe->task && fe->task->task_id, "no TASK_DISPATCHED to %s", dept);
        long i_disp = ldh_feed_index(&feed, fe);
        ldh_check(&env, i_disp > i_open, "TASK_DISPATCHED before INCIDENT_OPENED");
        char task_id[128];
        snprintf(task_id, sizeof task_id, "%s", fe->task->task_id);

        /* Delivered only once the terminal confirms receipt. */
        ldh_task_match tm = {.task_id = task_id};
        Linkd__V1__Task *t = ldh_term_await(&env.linkd, duty, &tm, true, WAIT_MS);
        ldh_check(&env, t, "%s never got %s", duty, task_id);
        linkd__v1__task__free_unpacked(t, NULL);
        m = (ldh_feed_match){.kind = LINKD__V1__FEED_KIND__FEED_KIND_TASK_DELIVERED,
                             .task_id = task_id};
        fe = ldh_feed_wait_for(&feed, WAIT_MS, &m);
        ldh_check(&env, fe, "no TASK_DELIVERED for %s after its receipt", task_id);
        long i_deliv = ldh_feed_index(&feed, fe);
        ldh_check(&env, i_deliv > i_disp, "TASK_DELIVERED before TASK_DISPATCHED");

        char why[256];
        int r = ldh_term_update(&env.linkd, duty, task_id,
                                LINKD__V1__UPDATE_KIND__UPDATE_KIND_ACKNOWLEDGED, NULL, why,
                                sizeof why);
        ldh_check(&env, r == LINKD__V1__RESULT__RESULT_ACCEPTED, "ack of %s: %d %s", task_id, r,
                  why);
        m = (ldh_feed_match){.kind = LINKD__V1__FEED_KIND__FEED_KIND_TASK_ACKNOWLEDGED,
                             .task_id = task_id};
        fe = ldh_feed_wait_for(&feed, WAIT_MS, &m);
        ldh_check(&env, fe, "no TASK_ACKNOWLEDGED for %s", task_id);
        ldh_check(&env, ldh_feed_index(&feed, fe) > i_deliv, "ACKNOWLEDGED before DELIVERED");
        ldh_check(&env, fe->task && fe->task->state ==
                                        LINKD__V1__TASK_STATE__TASK_STATE_ACKNOWLEDGED,
                  "the feed's task after the ack is not ACKNOWLEDGED");

        /* Saying it again changes nothing. */
        r = ldh_term_update(&env.linkd, duty, task_id,
                            LINKD__V1__UPDATE_KIND__UPDATE_KIND_ACKNOWLEDGED, NULL, why,
                            sizeof why);
        ldh_check(&env, r == LINKD__V1__RESULT__RESULT_DUPLICATE, "second ack of %s: %d %s",
                  task_id, r, why);

        r = ldh_term_update(&env.linkd, duty, task_id, LINKD__V1__UPDATE_KIND__UPDATE_KIND_ON_SCENE,
                            NULL, why, sizeof why);
        ldh_check(&env, r == LINKD__V1__RESULT__RESULT_ACCEPTED, "on_scene of %s: %d %s", task_id,
                  r, why);
        m = (ldh_feed_match){.kind = LINKD__V1__FEED_KIND__FEED_KIND_TASK_ON_SCENE,
                             .task_id = task_id};
        ldh_check(&env, ldh_feed_wait_for(&feed, WAIT_MS, &m), "no TASK_ON_SCENE for %s",
                  task_id);

        /* The incident stays open until its last task is resolved. */
        m = (ldh_feed_match){.kind = LINKD__V1__FEED_KIND__FEED_KIND_INCIDENT_CLOSED,
                             .incident_id = inc};
        ldh_check(&env, ldh_feed_count(&feed, &m) == 0, "incident closed with tasks open");

        r = ldh_term_update(&env.linkd, duty, task_id, LINKD__V1__UPDATE_KIND__UPDATE_KIND_RESOLVED,
                            "extinguished", why, sizeof why);
        ldh_check(&env, r == LINKD__V1__RESULT__RESULT_ACCEPTED, "resolve of %s: %d %s", task_id,
                  r, why);
        m = (ldh_feed_match){.kind = LINKD__V1__FEED_KIND__FEED_KIND_TASK_RESOLVED,
                             .task_id = task_id};
        ldh_check(&env, ldh_feed_wait_for(&feed, WAIT_MS, &m), "no TASK_RESOLVED for %s",
                  task_id);
    }

    m = (ldh_feed_match){.kind = LINKD__V1__FEED_KIND__FEED_KIND_INCIDENT_CLOSED,
                         .incident_id = inc};
    ldh_check(&env, ldh_feed_wait_for(&feed, WAIT_MS, &m), "no INCIDENT_CLOSED after all %zu "
              "tasks were resolved", n);

    /* seq is gapless and in order over everything we saw. */
    for (size_t i = 1; i < feed.n; i++)
        ldh_check(&env, feed.ev[i]->seq == feed.ev[i - 1]->seq + 1,
                  "feed seq jumps from %llu to %llu", (unsigned long long)feed.ev[i - 1]->seq,
                  (unsigned long long)feed.ev[i]->seq);
    ldh_feed_close(&feed);

    /* Once written behind (linkd flushes on SIGTERM), the incident is closed
     * in Redis too: out of ld:open, its record stamped closed. */
    int code = ldh_linkd_stop(&env.linkd);
    ldh_check(&env, code == 0, "linkd exited %d on SIGTERM", code);
    redisReply *rep = ldh_redis_cmd(&env.redis, "ZSCORE ld:open %s", inc);
    ldh_check(&env, rep && rep->type == REDIS_REPLY_NIL, "closed incident %s still in ld:open",
              inc);
    freeReplyObject(rep);
    rep = ldh_redis_cmd(&env.redis, "GET ld:inc:%s", inc);
    ldh_check(&env, rep && rep->type == REDIS_REPLY_STRING, "no ld:inc:%s", inc);
    Linkd__V1__IncidentRecord *rec =
        linkd__v1__incident_record__unpack(NULL, rep->len, (const uint8_t *)rep->str);
    freeReplyObject(rep);
    ldh_check(&env, rec, "ld:inc:%s does not decode", inc);
    ldh_check(&env, rec->has_closed_at_ms && rec->closed_at_ms >= rec->opened_at_ms,
              "record of closed incident %s has no closed_at_ms", inc);
    for (size_t i = 0; i < rec->n_tasks; i++)
        ldh_check(&env, rec->tasks[i]->has_resolved_at_ms && rec->tasks[i]->resolved_at_ms > 0 &&
                            rec->tasks[i]->disposition &&
                            strcmp(rec->tasks[i]->disposition, "extinguished") == 0,
                  "task %zu of %s not recorded as resolved with its disposition", i, inc);
    linkd__v1__incident_record__free_unpacked(rec, NULL);
}

/* Updates come from the task's own department or from the command centre;
 * anyone else is refused, and the task is unchanged. */
Test(dispatch, updates_only_from_the_department_or_command, .init = setup, .fini = teardown,
     .timeout = 240)
{
    ldh_event ev;
    ldh_event_call(&ev, LINKD__V1__CALL_CATEGORY__CALL_CATEGORY_FIRE);
    ldh_dispatch plan[LD_MAX_DISPATCH * 4];
    size_t n = plan_for(&ev, plan, sizeof plan / sizeof plan[0]);
    cr_assert_gt(n, 0);
    const ld_department *dept = plan[0].dept;
    /* An outsider: the first department that is neither this one nor command. */
    const ld_department *other = NULL;
    for (int d = 0; d < rules->ndepartments && !other; d++)
        if (&rules->departments[d] != dept && d != rules->command) other = &rules->departments[d];
    cr_assert_not_null(other);

    char inc[64];
    ldh_check(&env, ldh_ingest_accept(&env.linkd, &ev, inc, sizeof inc) ==
                        LINKD__V1__RESULT__RESULT_ACCEPTED,
              "not accepted");
    const char *duty = ldh_rules_terminal_id(rules, dept, 0);
    ldh_task_match tm = {.incident_id = inc, .department = dept->id};
    Linkd__V1__Task *t = ldh_term_await(&env.linkd, duty, &tm, true, WAIT_MS);
    ldh_check(&env, t, "%s never got its task", duty);

    char why[256];
    int r = ldh_term_update(&env.linkd, ldh_rules_terminal_id(rules, other, 0), t->task_id,
                            LINKD__V1__UPDATE_KIND__UPDATE_KIND_RESOLVED, "not mine", why,
                            sizeof why);
    ldh_check(&env, r == LINKD__V1__RESULT__RESULT_REJECTED,
              "a %s terminal resolved a %s task: result %d", other->id, dept->id, r);
    ldh_check(&env, why[0], "a refused update needs a reason");

    r = ldh_term_update(&env.linkd, duty, "I0-0/nosuchdept", LINKD__V1__UPDATE_KIND__UPDATE_KIND_ACKNOWLEDGED,
                        NULL, why, sizeof why);
    ldh_check(&env, r == LINKD__V1__RESULT__RESULT_REJECTED, "update of an unknown task: %d", r);

    const ld_department *cmd = &rules->departments[rules->command];
    r = ldh_term_update(&env.linkd, ldh_rules_terminal_id(rules, cmd, 0), t->task_id,
                        LINKD__V1__UPDATE_KIND__UPDATE_KIND_ACKNOWLEDGED, NULL, why, sizeof why);
    ldh_check(&env, r == LINKD__V1__RESULT__RESULT_ACCEPTED, "command could not acknowledge: %d %s",
              r, why);
    linkd__v1__task__free_unpacked(t, NULL);
}

Test(dispatch, polls_from_unknown_terminals_are_refused, .init = setup, .fini = teardown,
     .timeout = 120)
{
    ldh_poll p = {.terminal = "no-such-terminal", .wait_ms = 0};
    Linkd__V1__PollReply *rep = NULL;
    ldh_check(&env, ldh_term_poll(&env.linkd, &p, &rep) == 0, "no reply to a poll");
    ldh_check(&env, rep->error && *rep->error, "a poll from an unknown terminal must be refused");
    ldh_check(&env, rep->n_tasks == 0, "an unknown terminal got tasks");
    linkd__v1__poll_reply__free_unpacked(rep, NULL);

    /* A real terminal claiming another department. */
    const ld_department *a = &rules->departments[0], *b = &rules->departments[1];
    p = (ldh_poll){.terminal = ldh_rules_terminal_id(rules, a, 0), .department = b->id};
    ldh_check(&env, ldh_term_poll(&env.linkd, &p, &rep) == 0, "no reply to a poll");
    ldh_check(&env, rep->error && *rep->error, "%s claiming department %s must be refused",
              p.terminal, b->id);
    linkd__v1__poll_reply__free_unpacked(rep, NULL);

    /* No terminal id at all. */
    p = (ldh_poll){.terminal = NULL};
    ldh_check(&env, ldh_term_poll(&env.linkd, &p, &rep) == 0, "no reply to a poll");
    ldh_check(&env, rep->error && *rep->error, "a poll without terminal_id must be refused");
    linkd__v1__poll_reply__free_unpacked(rep, NULL);

    /* And the daemon still serves the right ones. */
    p = (ldh_poll){.terminal = ldh_rules_terminal_id(rules, a, 0), .department = a->id};
    ldh_check(&env, ldh_term_poll(&env.linkd, &p, &rep) == 0, "no reply to a poll");
    ldh_check(&env, !rep->error, "a valid poll was refused: %s", rep->error);
    linkd__v1__poll_reply__free_unpacked(rep, NULL);
}
