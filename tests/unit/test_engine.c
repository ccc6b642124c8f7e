/* Engine tests on a manual clock: deadlines of minutes and days pass by
 * ld_clock_advance, so nothing sleeps and a 60-day petition takes microseconds.
 * The rule set is tests/data/engine; its figures are the expectations here. */
#include <criterion/criterion.h>
#include <string.h>

#include "core/diag.h"
#include "engine/actions.h"
#include "engine/engine.h"
#include "rules/rules.h"
#include "harness.h"

#define MIN (60 * 1000ull)
#define DAY (24 * 60 * MIN)
#define T0 1795000000000ull

typedef struct feed_log {
    int kinds[256];
    char text[256][160];
    uint32_t from_level[256];
    int n;
    int woken[64];
} feed_log;

static ld_rules *rules;
static ld_clock clk;
static ld_engine eng;
static feed_log fl;

static void on_feed(void *ctx, const Linkd__V1__FeedEvent *fe)
{
    feed_log *f = ctx;
    if (f->n == 256) return;
    f->kinds[f->n] = (int)fe->kind;
    f->from_level[f->n] = fe->from_level;
    snprintf(f->text[f->n], sizeof f->text[0], "%s", fe->text ? fe->text : "");
    f->n++;
}

static void on_wake(void *ctx, int terminal)
{
    feed_log *f = ctx;
    if (terminal >= 0 && terminal < 64) f->woken[terminal]++;
}

static void setup(void)
{
    ld_diag d;
    ld_diag_init(&d);
    int rv = ld_rules_load(&rules, LD_SOURCE_DIR "/tests/data/engine", &d);
    if (rv != 0) ld_diag_print(&d, stderr);
    ld_diag_fini(&d);
    cr_assert_eq(rv, 0, "test rules must load");
    memset(&fl, 0, sizeof fl);
    ld_clock_init_manual(&clk, T0);
    ld_engine_hooks h = {.ctx = &fl, .feed = on_feed, .wake = on_wake};
    cr_assert_eq(ld_engine_init(&eng, rules, &clk, &h), 0);
    eng.resend_after_ms = 0;
}

static void teardown(void)
{
    ldh_expect_task_counts(&eng);
    ld_engine_fini(&eng);
    ld_rules_free(rules);
}

static int term(const char *id)
{
    int t = ld_rules_terminal(rules, id);
    cr_assert_geq(t, 0, "terminal %s must exist", id);
    return t;
}

static Linkd__V1__Envelope *fire_call(Linkd__V1__Envelope *ev, Linkd__V1__Call110 *call,
                                      const char *id)
{
    linkd__v1__envelope__init(ev);
    linkd__v1__call110__init(call);
    ev->event_id = (char *)id;
    ev->source_id = "cc-1";
    ev->has_occurred_at_ms = 1;
    ev->occurred_at_ms = (int64_t)T0;
    ev->has_status = 1;
    ev->status = LINKD__V1__STATUS__STATUS_ACTUAL;
    ev->body_case = LINKD__V1__ENVELOPE__BODY_CALL;
    ev->call = call;
    call->has_category = 1;
    call->category = LINKD__V1__CALL_CATEGORY__CALL_CATEGORY_FIRE;
    call->description = "smoke from a kitchen on the 5th floor";
    return ev;
}

static ld_incident *open_fire(const char *stream_id)
{
    Linkd__V1__Envelope ev;
    Linkd__V1__Call110 call;
    ld_incident *inc = NULL;
    cr_assert_eq(ld_engine_open(&eng, fire_call(&ev, &call, stream_id), stream_id, &inc), 0);
    return inc;
}

static ld_task *task_of(ld_incident *inc, const char *dept)
{
    int d = ld_rules_department(rules, dept);
    for (int i = 0; i < inc->ntasks; i++)
        if (inc->tasks[i]->dept == d) return inc->tasks[i];
    cr_assert_fail("incident %s has no task for %s", inc->id, dept);
    return NULL;
}

static int update(const char *terminal, ld_task *t, int kind, const char *reason)
{
    char id[LD_TASK_ID_LEN], why[256] = "";
    snprintf(id, sizeof id, "%s/%s", t->inc->id, rules->departments[t->dept].id);
    Linkd__V1__TaskUpdate u;
    linkd__v1__task_update__init(&u);
    u.task_id = id;
    u.has_kind = 1;
    u.kind = (Linkd__V1__UpdateKind)kind;
    u.reason = (char *)reason;
    return ld_engine_update(&eng, term(terminal), &u, why, sizeof why);
}

static int count_feed(int kind)
{
    int n = 0;
    for (int i = 0; i < fl.n; i++) n += fl.kinds[i] == kind;
    return n;
}

static void advance(uint64_t ms)
{
    ld_clock_advance(&clk, ms);
    ld_engine_run_due(&eng);
}

TestSuite(engine, .init = setup, .fini = teardown);

Test(engine, fire_call_dispatches_to_each_department_with_rule_deadlines)
{
    ld_incident *inc = open_fire("100-0");
    cr_assert_str_eq(inc->id, "I100-0");
    cr_assert_eq(inc->ntasks, 2);
    cr_assert_eq(inc->priority, LINKD__V1__PRIORITY__PRIORITY_CRITICAL);
    ld_task *fire = task_of(inc, "fire"), *med = task_of(inc, "medical");
    cr_assert_eq(ld_task_due(fire, LD_LEG_ACK), T0 + 30000);
    cr_assert_eq(ld_task_due(fire, LD_LEG_ARRIVE), T0 + 8 * MIN);
    cr_assert_eq(ld_task_due(med, LD_LEG_ACK), T0 + 45000);
    cr_assert_eq(fire->terminal, term("fire-duty"));
    cr_assert_eq(med->terminal, term("medical-duty"));
    cr_assert_eq(fl.woken[term("fire-duty")], 1);
    cr_assert_eq(count_feed(LINKD__V1__FEED_KIND__FEED_KIND_INCIDENT_OPENED), 1);
    cr_assert_eq(count_feed(LINKD__V1__FEED_KIND__FEED_KIND_TASK_DISPATCHED), 2);
    cr_assert(strstr(fire->rule, "routes.yaml:") && strstr(fire->rule, "structure-fire"),
              "task cites its rule, got '%s'", fire->rule);

    ld_delivery_item items[8];
    cr_assert_eq(ld_engine_collect(&eng, term("fire-duty"), 0, items, 8), 1);
    cr_assert_eq(items[0].task, fire);
    cr_assert_not(items[0].redelivery);
    cr_assert_eq(ld_engine_collect(&eng, term("fire-head"), 0, items, 8), 0);
}

Test(engine, unacknowledged_task_climbs_the_chain_to_command_at_each_deadline)
{
    ld_incident *inc = open_fire("101-0");
    ld_task *t = task_of(inc, "fire");
    const char *chain[] = {"fire-duty", "fire-deputy", "fire-head", "command-supervisor"};
    uint64_t waits[] = {30000, 2 * MIN, 3 * MIN};
    /* Acknowledge the medical task so only fire escalates. */
    cr_assert_eq(update("medical-duty", task_of(inc, "medical"),
                        LINKD__V1__UPDATE_KIND__UPDATE_KIND_ACKNOWLEDGED, NULL),
                 LINKD__V1__RESULT__RESULT_ACCEPTED);
    for (int level = 0; level < 3; level++) {
        cr_assert_eq(t->level, level);
        cr_assert_eq(t->terminal, term(chain[level]), "level %d held by %s", level,
                     rules->terminals[t->terminal].id);
        advance(waits[level] - 1);
        cr_assert_eq(t->level, level, "not before the deadline (level %d)", level);
        advance(1);
    }
    /* 5m30s: the department's head missed it too; the command centre has it. */
    cr_assert_eq(t->terminal, term("command-supervisor"));
    cr_assert_eq(eng.stats.reached_command, 1);
    /* 8m: the arrive deadline passes as well, and the director is told. */
    advance(150000 - 1);
    cr_assert_eq(t->level, 3);
    advance(1);
    cr_assert_eq(t->terminal, term("command-director"));
    cr_assert(strstr(ld_task_reason(t), "arrive deadline missed"), "reason: %s", ld_task_reason(t));
    /* 9m30s: the supervisor's acknowledge wait ends at the top: overdue, no move. */
    advance(90000);
    cr_assert_eq(t->terminal, term("command-director"));
    cr_assert(t->overdue_top & 1u, "acknowledge overdue at the top");
    cr_assert_eq(eng.stats.escalations, 4);
    cr_assert_eq(count_feed(LINKD__V1__FEED_KIND__FEED_KIND_DEADLINE_MISSED), 1,
                 "the miss at the top is published once");
    cr_assert_eq(count_feed(LINKD__V1__FEED_KIND__FEED_KIND_TASK_ESCALATED), 4);
    advance(MIN);
    cr_assert_eq(eng.stats.escalations, 4, "no escalation above the top");
}

/* The board's load per department (open, escalated, overdue at the top) is
 * read from counts the engine keeps as tasks change, not from a walk of every
 * open incident each second: they follow a climb, a miss at the top, an
 * extension and a resolution. (The teardown checks them against a walk.) */
Test(engine, department_load_follows_a_climb_the_top_an_extension_and_the_resolution)
{
    ld_incident *inc = open_fire("120-0");
    ld_task *t = task_of(inc, "fire");
    int fire = t->dept;
    cr_assert_eq(eng.escalated_by[fire], 0);
    cr_assert_eq(eng.tasks_by[fire][LINKD__V1__TASK_STATE__TASK_STATE_DISPATCHED], 1);
    advance(30000);
    cr_assert_eq(t->level, 1);
    cr_assert_eq(eng.escalated_by[fire], 1, "climbed one level");
    for (int i = 0; i < 60 && !t->overdue_top; i++) advance(10000);
    cr_assert(t->overdue_top, "missed at the top of the chain");
    cr_assert_eq(eng.overdue_by[fire], 1);
    cr_assert_eq(eng.escalated_by[fire], 1, "one task, however high it climbed");

    ld_actor a = {"Supervisor Li", "the crew is on its way"};
    char err[160];
    for (int l = 0; l < LD_LEG_COUNT; l++)
        if (t->overdue_top & (1u << l))
            cr_assert_eq(ld_action_extend(&eng, t, l, 10 * MIN, &a, err, sizeof err), 0, "%s", err);
    cr_assert_not(t->overdue_top);
    cr_assert_eq(eng.overdue_by[fire], 0, "watched again after the extension");

    const char *holder = rules->terminals[t->terminal].id;
    cr_assert_eq(update(holder, t, LINKD__V1__UPDATE_KIND__UPDATE_KIND_ACKNOWLEDGED, NULL),
                 LINKD__V1__RESULT__RESULT_ACCEPTED);
    cr_assert_eq(update(holder, t, LINKD__V1__UPDATE_KIND__UPDATE_KIND_RESOLVED, NULL),
                 LINKD__V1__RESULT__RESULT_ACCEPTED);
    cr_assert_eq(eng.escalated_by[fire], 0, "a resolved task is no longer load");
    cr_assert_eq(eng.tasks_by[fire][LINKD__V1__TASK_STATE__TASK_STATE_DISPATCHED], 0);
}

Test(engine, acknowledgement_stops_the_acknowledge_leg_but_arrive_still_counts)
{
    ld_incident *inc = open_fire("102-0");
    ld_task *t = task_of(inc, "fire");
    advance(10000);
    cr_assert_eq(update("fire-duty", t, LINKD__V1__UPDATE_KIND__UPDATE_KIND_ACKNOWLEDGED, NULL),
                 LINKD__V1__RESULT__RESULT_ACCEPTED);
    cr_assert_eq(ld_task_done(t, LD_LEG_ACK), T0 + 10000);
    cr_assert_eq(update("fire-duty", t, LINKD__V1__UPDATE_KIND__UPDATE_KIND_ACKNOWLEDGED, NULL),
                 LINKD__V1__RESULT__RESULT_DUPLICATE);
    advance(7 * MIN);
    cr_assert_eq(t->level, 0, "acknowledged in time: no escalation");
    advance(MIN);
    cr_assert_eq(t->level, 1, "arrive deadline (8m) missed: deputy told");
    cr_assert_eq(t->terminal, term("fire-deputy"));
    cr_assert(strstr(ld_task_reason(t), "arrive deadline missed"), "reason: %s", ld_task_reason(t));
    cr_assert_eq(update("fire-duty", t, LINKD__V1__UPDATE_KIND__UPDATE_KIND_ON_SCENE, NULL),
                 LINKD__V1__RESULT__RESULT_ACCEPTED);
    advance(10 * MIN);
    cr_assert_eq(t->level, 1, "on scene: arrive leg done");
}

Test(engine, deliveries_repeat_until_receipted_and_are_marked)
{
    ld_incident *inc = open_fire("103-0");
    ld_task *t = task_of(inc, "fire");
    int duty = term("fire-duty");
    ld_delivery_item items[8];
    cr_assert_eq(ld_engine_collect(&eng, duty, 0, items, 8), 1);
    cr_assert_not(items[0].redelivery);
    /* The reply was lost: no receipt, so the next poll gets it again, marked. */
    cr_assert_eq(ld_engine_collect(&eng, duty, 0, items, 8), 1);
    cr_assert(items[0].redelivery);
    char id[LD_TASK_ID_LEN];
    snprintf(id, sizeof id, "%s/fire", inc->id);
    ld_engine_receipt(&eng, duty, id, 1000);
    cr_assert_eq(t->delivery, LD_DELIVERY_RECEIVED);
    cr_assert_eq(count_feed(LINKD__V1__FEED_KIND__FEED_KIND_TASK_DELIVERED), 1);
    /* Receipted but not acknowledged: sent again after resend_after_ms (0 here). */
    cr_assert_eq(ld_engine_collect(&eng, duty, 999, items, 8), 0, "not before the resend time");
    cr_assert_eq(ld_engine_collect(&eng, duty, 1000, items, 8), 1);
    cr_assert_eq(update("fire-duty", t, LINKD__V1__UPDATE_KIND__UPDATE_KIND_ACKNOWLEDGED, NULL),
                 LINKD__V1__RESULT__RESULT_ACCEPTED);
    cr_assert_eq(ld_engine_collect(&eng, duty, 5000, items, 8), 0,
                 "acknowledged: delivered no more");
}

Test(engine, updates_from_strangers_and_for_unknown_tasks_are_refused)
{
    ld_incident *inc = open_fire("104-0");
    ld_task *fire = task_of(inc, "fire");
    cr_assert_eq(update("medical-duty", fire, LINKD__V1__UPDATE_KIND__UPDATE_KIND_ACKNOWLEDGED, NULL),
                 LINKD__V1__RESULT__RESULT_REJECTED);
    cr_assert_eq(update("command-supervisor", fire,
                        LINKD__V1__UPDATE_KIND__UPDATE_KIND_ACKNOWLEDGED, NULL),
                 LINKD__V1__RESULT__RESULT_ACCEPTED, "the command centre may act on any task");
    Linkd__V1__TaskUpdate u;
    linkd__v1__task_update__init(&u);
    u.task_id = "I999-0/fire";
    u.has_kind = 1;
    u.kind = LINKD__V1__UPDATE_KIND__UPDATE_KIND_ACKNOWLEDGED;
    char why[256];
    cr_assert_eq(ld_engine_update(&eng, term("fire-duty"), &u, why, sizeof why),
                 LINKD__V1__RESULT__RESULT_REJECTED);
    cr_assert(strstr(why, "task_id"), "reason names the field: %s", why);
}

Test(engine, rejection_escalates_at_once_and_needs_a_reason)
{
    ld_incident *inc = open_fire("105-0");
    ld_task *t = task_of(inc, "fire");
    cr_assert_eq(update("fire-duty", t, LINKD__V1__UPDATE_KIND__UPDATE_KIND_REJECTED, NULL),
                 LINKD__V1__RESULT__RESULT_REJECTED);
    cr_assert_eq(update("fire-duty", t, LINKD__V1__UPDATE_KIND__UPDATE_KIND_REJECTED,
                        "crew already committed to another fire"),
                 LINKD__V1__RESULT__RESULT_ACCEPTED);
    cr_assert_eq(t->level, 1);
    cr_assert_eq(t->terminal, term("fire-deputy"));
    cr_assert(strstr(ld_task_reason(t), "crew already committed"), "reason: %s", ld_task_reason(t));
    cr_assert_eq(count_feed(LINKD__V1__FEED_KIND__FEED_KIND_TASK_REJECTED), 1);
}

static void count_written(void *arg, ld_incident *inc)
{
    int *n = arg;
    (*n)++;
    uint8_t buf[16384];
    size_t len = ld_engine_record_pack(&eng, inc, buf, sizeof buf);
    cr_assert_leq(len, sizeof buf);
    Linkd__V1__IncidentRecord *rec = linkd__v1__incident_record__unpack(NULL, len, buf);
    cr_assert_not_null(rec, "the record decodes as IncidentRecord");
    cr_assert_str_eq(rec->incident_id, inc->id);
    cr_assert_eq(rec->n_tasks, (size_t)inc->ntasks);
    cr_assert_eq(rec->n_history, (size_t)inc->nhistory);
    linkd__v1__incident_record__free_unpacked(rec, NULL);
}

Test(engine, resolving_every_task_closes_the_incident_and_its_record_is_written_once)
{
    ld_incident *inc = open_fire("106-0");
    char id[LD_INCIDENT_ID_LEN];
    snprintf(id, sizeof id, "%s", inc->id);
    int written = 0;
    ld_engine_take_dirty(&eng, count_written, &written);
    cr_assert_eq(written, 1);
    cr_assert_eq(update("fire-duty", task_of(inc, "fire"),
                        LINKD__V1__UPDATE_KIND__UPDATE_KIND_RESOLVED, NULL),
                 LINKD__V1__RESULT__RESULT_ACCEPTED);
    cr_assert_not_null(ld_engine_find(&eng, id), "one task still open");
    cr_assert_eq(update("medical-duty", task_of(inc, "medical"),
                        LINKD__V1__UPDATE_KIND__UPDATE_KIND_RESOLVED, NULL),
                 LINKD__V1__RESULT__RESULT_ACCEPTED);
    cr_assert_null(ld_engine_find(&eng, id), "closed incidents leave the open set");
    cr_assert_eq(eng.stats.incidents_closed, 1);
    cr_assert_eq(count_feed(LINKD__V1__FEED_KIND__FEED_KIND_INCIDENT_CLOSED), 1);
    written = 0;
    ld_engine_take_dirty(&eng, count_written, &written);
    cr_assert_eq(written, 1, "the closing record is written, then the incident is freed");
    cr_assert_eq(eng.open_incidents, 0);
    cr_assert_eq(ld_engine_next_due(&eng), UINT64_MAX, "no deadlines left");
}

Test(engine, petition_runs_its_sixty_days_in_microseconds)
{
    Linkd__V1__Envelope ev;
    Linkd__V1__Petition p;
    linkd__v1__envelope__init(&ev);
    linkd__v1__petition__init(&p);
    ev.event_id = "pet-1";
    ev.source_id = "petition-office";
    ev.has_status = 1;
    ev.status = LINKD__V1__STATUS__STATUS_ACTUAL;
    ev.body_case = LINKD__V1__ENVELOPE__BODY_PETITION;
    ev.petition = &p;
    p.petition_id = "XF-2026-0042";
    p.has_issue = 1;
    p.issue = LINKD__V1__PETITION_ISSUE__PETITION_ISSUE_WAGE_ARREARS;
    p.has_petitioners = 1;
    p.petitioners = 3;
    ld_incident *inc = NULL;
    cr_assert_eq(ld_engine_open(&eng, &ev, "200-0", &inc), 0);
    ld_task *t = task_of(inc, "petition");
    cr_assert_eq(ld_task_due(t, LD_LEG_ACK), T0 + 15 * DAY);
    advance(14 * DAY);
    cr_assert_eq(update("petition-duty", t, LINKD__V1__UPDATE_KIND__UPDATE_KIND_ACKNOWLEDGED,
                        NULL),
                 LINKD__V1__RESULT__RESULT_ACCEPTED, "receipt acknowledged on day 14");
    advance(45 * DAY);
    cr_assert_eq(t->level, 0, "day 59: still in time");
    advance(DAY);
    /* Day 60: arrive and resolve fall due together and share one move up. */
    cr_assert_eq(t->level, 1, "past day 60 the petition goes to the bureau head");
    cr_assert_eq(t->terminal, term("petition-head"));
    cr_assert_eq(eng.stats.escalations, 1);
    advance(5 * DAY);
    cr_assert_eq(t->terminal, term("command-supervisor"), "then to the command centre");
    cr_assert_eq(t->inc->priority, LINKD__V1__PRIORITY__PRIORITY_LOW);
}

/* A task keeps its times in 32 bits of milliseconds after its dispatch, and
 * a time past 49.7 days (2^32 ms) at full width beside it, so a petition's
 * 60-day deadlines and a report on day 50 stay exact to the millisecond: the
 * deadline fires at its millisecond, not one before, and a record carries
 * every time across a restart. A call's task has no block for such times. */
Test(engine, times_past_32_bits_of_milliseconds_stay_exact_and_fire_on_time)
{
    cr_assert_gt(60 * DAY, (uint64_t)UINT32_MAX, "the test needs a time past 32 bits");
    cr_assert_null(task_of(open_fire("110-0"), "fire")->more, "a call's task: 32 bits do");
    Linkd__V1__Envelope ev;
    Linkd__V1__Petition p;
    linkd__v1__envelope__init(&ev);
    linkd__v1__petition__init(&p);
    ev.event_id = "pet-2";
    ev.source_id = "petition-office";
    ev.has_status = 1;
    ev.status = LINKD__V1__STATUS__STATUS_ACTUAL;
    ev.body_case = LINKD__V1__ENVELOPE__BODY_PETITION;
    ev.petition = &p;
    p.petition_id = "XF-2026-0043";
    p.has_issue = 1;
    p.issue = LINKD__V1__PETITION_ISSUE__PETITION_ISSUE_WAGE_ARREARS;
    advance(123); /* off the whole second */
    uint64_t t0 = ld_clock_now(&clk);
    ld_incident *inc = NULL;
    cr_assert_eq(ld_engine_open(&eng, &ev, "201-0", &inc), 0);
    ld_task *t = task_of(inc, "petition");
    cr_assert_eq(t->dispatched_at, t0);
    cr_assert_eq(ld_task_due(t, LD_LEG_ACK), t0 + 15 * DAY);
    cr_assert_eq(ld_task_due(t, LD_LEG_RESOLVE), t0 + 60 * DAY);
    cr_assert_eq(ld_task_budget(t, LD_LEG_RESOLVE), 60 * DAY);
    cr_assert_eq(ld_task_done(t, LD_LEG_ARRIVE), 0);
    advance(14 * DAY);
    cr_assert_eq(update("petition-duty", t, LINKD__V1__UPDATE_KIND__UPDATE_KIND_ACKNOWLEDGED,
                        NULL),
                 LINKD__V1__RESULT__RESULT_ACCEPTED);
    cr_assert_eq(ld_task_done(t, LD_LEG_ACK), t0 + 14 * DAY);
    advance(36 * DAY + 7); /* day 50 and 7 ms: past 2^32 ms after dispatch */
    cr_assert_eq(update("petition-duty", t, LINKD__V1__UPDATE_KIND__UPDATE_KIND_ON_SCENE, NULL),
                 LINKD__V1__RESULT__RESULT_ACCEPTED);
    cr_assert_eq(ld_task_done(t, LD_LEG_ARRIVE), t0 + 50 * DAY + 7);
    cr_assert_not_null(t->more, "far times are kept beside the task");
    advance(10 * DAY - 7 - 1);
    cr_assert_eq(ld_clock_now(&clk), t0 + 60 * DAY - 1);
    cr_assert_eq(t->level, 0, "one millisecond before the 60-day deadline: in time");
    advance(1);
    cr_assert_eq(t->level, 1, "at the 60-day deadline the petition goes up");
    cr_assert(strstr(ld_task_reason(t), "resolve deadline missed"), "%s", ld_task_reason(t));
    cr_assert_eq(ld_task_due(t, LD_LEG_RESOLVE), t0 + 60 * DAY + 5 * DAY, "the head's 5 days");

    uint8_t buf[16384];
    size_t len = ld_engine_record_pack(&eng, inc, buf, sizeof buf);
    cr_assert_leq(len, sizeof buf);
    Linkd__V1__IncidentRecord *rec = linkd__v1__incident_record__unpack(NULL, len, buf);
    cr_assert_not_null(rec);
    ld_engine other;
    ld_engine_hooks h = {0};
    cr_assert_eq(ld_engine_init(&other, rules, &clk, &h), 0);
    cr_assert_eq(ld_engine_restore(&other, rec), 0);
    ld_incident *back = ld_engine_find(&other, inc->id);
    cr_assert_not_null(back);
    ld_task *b = back->tasks[t->idx];
    cr_assert_eq(b->dispatched_at, t0);
    for (int l = 0; l < LD_LEG_COUNT; l++) {
        if (!(t->legs_off & (1u << l)))
            cr_expect_eq(ld_task_due(b, l), ld_task_due(t, l), "leg %d deadline", l);
        cr_expect_eq(ld_task_done(b, l), ld_task_done(t, l), "leg %d done", l);
    }
    linkd__v1__incident_record__free_unpacked(rec, NULL);
    ldh_expect_task_counts(&other);
    ld_engine_fini(&other);
}

/* An incident's history starts small and grows with its changes; past
 * LD_HISTORY_MAX it keeps the opening entries and the latest ones and counts
 * what it dropped. The record carries what is kept, and a restart restores it
 * entry for entry. */
Test(engine, a_long_history_keeps_its_opening_and_latest_entries_across_a_restart)
{
    ld_incident *inc = open_fire("107-0");
    ld_task *t = task_of(inc, "fire");
    int fire = term("fire-duty");
    int opened = inc->nhistory;
    cr_assert_lt(opened, 8, "a new incident records a few entries");
    ld_delivery_item items[8];
    char tid[LD_TASK_ID_LEN];
    snprintf(tid, sizeof tid, "%s/fire", inc->id);
    for (int i = 0; i < 40; i++) {
        ld_clock_advance(&clk, 1000);
        size_t n = ld_engine_collect(&eng, fire, (uint64_t)i, items, 8);
        cr_assert_eq(n, 1, "round %d: the task goes again until acknowledged", i);
        ld_engine_receipt(&eng, fire, tid, (uint64_t)i);
    }
    cr_assert_eq(inc->nhistory, LD_HISTORY_MAX);
    cr_assert_eq(inc->history_dropped, (uint32_t)(opened + 40 - LD_HISTORY_MAX));
    cr_assert_eq(inc->history[0].kind, LINKD__V1__FEED_KIND__FEED_KIND_INCIDENT_OPENED);
    cr_assert_eq(inc->history[LD_HISTORY_MAX - 1].kind,
                 LINKD__V1__FEED_KIND__FEED_KIND_TASK_DELIVERED);
    cr_assert_eq(ld_history_at(&inc->history[LD_HISTORY_MAX - 1]), T0 + 40 * 1000, "the latest is kept");
    cr_assert_eq(t->state, LINKD__V1__TASK_STATE__TASK_STATE_DISPATCHED);

    uint8_t buf[16384];
    size_t len = ld_engine_record_pack(&eng, inc, buf, sizeof buf);
    cr_assert_leq(len, sizeof buf);
    Linkd__V1__IncidentRecord *rec = linkd__v1__incident_record__unpack(NULL, len, buf);
    cr_assert_not_null(rec);
    ld_engine other;
    ld_engine_hooks h = {0};
    cr_assert_eq(ld_engine_init(&other, rules, &clk, &h), 0);
    cr_assert_eq(ld_engine_restore(&other, rec), 0);
    ld_incident *back = ld_engine_find(&other, inc->id);
    cr_assert_not_null(back);
    cr_assert_eq(back->nhistory, inc->nhistory);
    for (int i = 0; i < inc->nhistory; i++) {
        cr_expect_eq(back->history[i].kind, inc->history[i].kind, "entry %d", i);
        cr_expect_eq(ld_history_at(&back->history[i]), ld_history_at(&inc->history[i]), "entry %d",
                     i);
        cr_expect_eq(back->history[i].terminal, inc->history[i].terminal, "entry %d", i);
    }
    linkd__v1__incident_record__free_unpacked(rec, NULL);
    ldh_expect_task_counts(&other);
    ld_engine_fini(&other);
}

/* The summary a person reads on the board and the terminal: kind and
 * category, how many people, where, what was said. */
Test(engine, summary_says_what_where_and_how_many)
{
    Linkd__V1__Envelope ev;
    Linkd__V1__Call110 call;
    Linkd__V1__Location loc;
    fire_call(&ev, &call, "201-0");
    linkd__v1__location__init(&loc);
    loc.address = "12 Tianhe Road";
    call.location = &loc;
    call.has_people = 1;
    call.people = 3;
    ld_incident *a = NULL, *b = NULL, *c = NULL;
    cr_assert_eq(ld_engine_open(&eng, &ev, "201-0", &a), 0);
    cr_expect_str_eq(a->summary,
                     "call fire, 3 people at 12 Tianhe Road: smoke from a kitchen on the 5th floor");
    ev.event_id = "202-0";
    call.people = 1;
    call.location = NULL;
    call.description = NULL;
    cr_assert_eq(ld_engine_open(&eng, &ev, "202-0", &b), 0);
    cr_expect_str_eq(b->summary, "call fire, 1 person");
    ev.event_id = "203-0";
    call.people = 0;
    cr_assert_eq(ld_engine_open(&eng, &ev, "203-0", &c), 0);
    cr_expect_str_eq(c->summary, "call fire");
}

/* An incident keeps its strings as the record and the API show them, cut
 * where they always were; the strings incidents share (source, district,
 * grid) are held once and go with the last incident holding them. */
Test(engine, incident_strings_are_cut_at_their_limits_and_shared_ones_kept_once)
{
    Linkd__V1__Envelope ev;
    Linkd__V1__Call110 call;
    Linkd__V1__Location loc;
    char long_id[LD_MAX_ID_LEN + 40], long_grid[100], long_text[400];
    memset(long_id, 'e', sizeof long_id - 1), long_id[sizeof long_id - 1] = '\0';
    memset(long_grid, 'g', sizeof long_grid - 1), long_grid[sizeof long_grid - 1] = '\0';
    memset(long_text, 'x', sizeof long_text - 1), long_text[sizeof long_text - 1] = '\0';
    fire_call(&ev, &call, long_id);
    linkd__v1__location__init(&loc);
    loc.district = "440106";
    loc.grid = long_grid;
    call.location = &loc;
    call.description = long_text;
    ld_incident *a = NULL, *b = NULL;
    cr_assert_eq(ld_engine_open(&eng, &ev, "108-0", &a), 0);
    cr_expect_eq(strlen(a->event_id), LD_MAX_ID_LEN);
    cr_expect_eq(strlen(a->grid), 64);
    cr_expect_eq(strlen(a->summary), LD_SUMMARY_LEN - 1);
    cr_expect_str_eq(a->district, "440106");
    cr_expect_str_eq(a->source_id, "cc-1");
    cr_expect(strncmp(a->summary, "call fire", 9) == 0, "summary: %s", a->summary);

    ev.event_id = "second-call";
    loc.grid = NULL;
    cr_assert_eq(ld_engine_open(&eng, &ev, "109-0", &b), 0);
    cr_expect_str_eq(b->event_id, "second-call");
    cr_expect_str_eq(b->grid, "", "no grid is an empty string");
    cr_expect_eq(a->district, b->district, "one copy of the district");
    cr_expect_eq(a->source_id, b->source_id, "one copy of the source");
    size_t held = ld_intern_count(&eng.strings);
    char err[128];
    ld_actor who = {"tester", "a duplicate"};
    cr_assert_eq(ld_action_close(&eng, a, "closed by the test", &who, err, sizeof err), 0, "%s", err);
    int written = 0;
    ld_engine_take_dirty(&eng, count_written, &written);
    cr_expect_eq(ld_intern_count(&eng.strings), held - 1, "the long grid went with its incident");
    cr_expect_str_eq(b->district, "440106", "the other incident still has the district");
}

/* A task's three texts share one block: each is kept apart from the others,
 * cut to its length, and the block goes when the last is cleared. */
Test(engine, task_texts_are_kept_apart_cut_and_cleared)
{
    ld_incident *inc = open_fire("110-0");
    ld_task *t = task_of(inc, "fire");
    cr_expect_null(t->texts, "a fresh task holds no texts");
    cr_expect_str_eq(ld_task_feedback(t), "");
    cr_assert_eq(ld__task_set_text(&eng, t, LD_TEXT_FEEDBACK, "crew on the way"), 0);
    cr_assert_eq(ld__task_set_text(&eng, t, LD_TEXT_REASON, "acknowledge deadline missed"), 0);
    cr_expect_str_eq(ld_task_feedback(t), "crew on the way");
    cr_expect_str_eq(ld_task_reason(t), "acknowledge deadline missed");
    cr_expect_str_eq(ld_task_disposition(t), "");
    char long_text[300];
    memset(long_text, 'd', sizeof long_text - 1), long_text[sizeof long_text - 1] = '\0';
    cr_assert_eq(ld__task_set_text(&eng, t, LD_TEXT_DISPOSITION, long_text), 0);
    cr_expect_eq(strlen(ld_task_disposition(t)), 63);
    cr_assert_eq(ld__task_printf(&eng, t, LD_TEXT_REASON, "%s", long_text), 0);
    cr_expect_eq(strlen(ld_task_reason(t)), 127);
    cr_assert_eq(ld__task_set_text(&eng, t, LD_TEXT_FEEDBACK, long_text), 0);
    cr_expect_eq(strlen(ld_task_feedback(t)), 95);
    /* A text set from the task's own block. */
    cr_assert_eq(ld__task_set_text(&eng, t, LD_TEXT_REASON, ld_task_feedback(t)), 0);
    cr_expect_eq(strlen(ld_task_reason(t)), 95);
    cr_expect_eq(strlen(ld_task_disposition(t)), 63, "the others are untouched");
    cr_assert_eq(ld__task_set_text(&eng, t, LD_TEXT_REASON, NULL), 0);
    cr_assert_eq(ld__task_set_text(&eng, t, LD_TEXT_DISPOSITION, ""), 0);
    cr_expect_eq(strlen(ld_task_feedback(t)), 95);
    cr_assert_eq(ld__task_set_text(&eng, t, LD_TEXT_FEEDBACK, NULL), 0);
    cr_expect_null(t->texts, "no text left, no block");
    cr_expect_str_eq(t->rule + strlen(t->rule) - strlen("fire"), "fire", "rule: %s", t->rule);
}
