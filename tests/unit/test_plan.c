/* Linkage plans in the engine, on a manual clock: the four legs of a task
 * (acknowledge 签收, arrive 到场, feedback 反馈, resolve 办结), arrival budgets by
 * the district's area type, and petition budgets in working days.
 * The rule set is tests/data/rules/plan; its figures are the expectations. */
#include <criterion/criterion.h>
#include <string.h>
#include <time.h>

#include "core/diag.h"
#include "engine/engine.h"
#include "rules/rules.h"
#include "harness.h"

#define SEC 1000ull
#define MIN (60 * SEC)
#define HOUR (60 * MIN)
#define DAY (24 * HOUR)

static ld_rules *rules;
static ld_clock clk;
static ld_engine eng;
static int feed_kinds[256], feed_legs[256], nfeed;

static void on_feed(void *ctx, const Linkd__V1__FeedEvent *fe)
{
    (void)ctx;
    if (nfeed == 256) return;
    feed_legs[nfeed] = fe->has_leg ? (int)fe->leg : 0;
    feed_kinds[nfeed++] = (int)fe->kind;
}

/* Epoch ms of a local time in UTC+08:00. */
static uint64_t local(int y, int mo, int d, int h, int mi)
{
    struct tm tm = {.tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d, .tm_hour = h,
                    .tm_min = mi};
    return (uint64_t)(timegm(&tm) - 8 * 3600) * 1000;
}

static void start(uint64_t t0)
{
    ld_diag d;
    ld_diag_init(&d);
    int rv = ld_rules_load(&rules, LD_SOURCE_DIR "/tests/data/rules/plan", &d);
    if (rv != 0) ld_diag_print(&d, stderr);
    ld_diag_fini(&d);
    cr_assert_eq(rv, 0);
    nfeed = 0;
    ld_clock_init_manual(&clk, t0);
    ld_engine_hooks h = {.feed = on_feed};
    cr_assert_eq(ld_engine_init(&eng, rules, &clk, &h), 0);
}

static void setup(void) { start(local(2026, 11, 23, 12, 0)); }

static void teardown(void)
{
    ldh_expect_task_counts(&eng);
    ld_engine_fini(&eng);
    ld_rules_free(rules);
}

static ld_incident *open_call(const char *stream_id, int category, const char *district)
{
    Linkd__V1__Envelope ev;
    Linkd__V1__Call110 call;
    Linkd__V1__Location loc;
    ld_incident *inc = NULL;
    linkd__v1__envelope__init(&ev);
    linkd__v1__call110__init(&call);
    linkd__v1__location__init(&loc);
    ev.event_id = (char *)stream_id;
    ev.source_id = "cc-1";
    ev.has_status = 1;
    ev.status = LINKD__V1__STATUS__STATUS_ACTUAL;
    ev.body_case = LINKD__V1__ENVELOPE__BODY_CALL;
    ev.call = &call;
    call.has_category = 1;
    call.category = (Linkd__V1__CallCategory)category;
    loc.district = (char *)district;
    call.location = &loc;
    cr_assert_eq(ld_engine_open(&eng, &ev, stream_id, &inc), 0);
    return inc;
}

static int update(ld_task *t, const char *terminal, int kind, const char *text)
{
    char id[LD_TASK_ID_LEN], why[256] = "";
    snprintf(id, sizeof id, "%s/%s", t->inc->id, rules->departments[t->dept].id);
    Linkd__V1__TaskUpdate u;
    linkd__v1__task_update__init(&u);
    u.task_id = id;
    u.has_kind = 1;
    u.kind = (Linkd__V1__UpdateKind)kind;
    u.disposition = (char *)text;
    return ld_engine_update(&eng, ld_rules_terminal(rules, terminal), &u, why, sizeof why);
}

static void advance(uint64_t ms)
{
    ld_clock_advance(&clk, ms);
    ld_engine_run_due(&eng);
}

#define CRIME LINKD__V1__CALL_CATEGORY__CALL_CATEGORY_CRIME
#define WATER LINKD__V1__CALL_CATEGORY__CALL_CATEGORY_WATER_SUPPLY
#define FEEDBACK LINKD__V1__UPDATE_KIND__UPDATE_KIND_FEEDBACK
#define ACCEPTED LINKD__V1__RESULT__RESULT_ACCEPTED
#define DUPLICATE LINKD__V1__RESULT__RESULT_DUPLICATE
#define REJECTED LINKD__V1__RESULT__RESULT_REJECTED

TestSuite(plan, .init = setup, .fini = teardown);

Test(plan, a_task_has_four_legs_with_their_deadlines)
{
    uint64_t t0 = ld_clock_now(&clk);
    ld_task *t = open_call("1-0", CRIME, "440106")->tasks[0];
    cr_expect_eq(ld_task_due(t, LD_LEG_ACK), t0 + 30 * SEC);
    cr_expect_eq(ld_task_due(t, LD_LEG_ARRIVE), t0 + 5 * MIN);
    cr_expect_eq(ld_task_due(t, LD_LEG_FEEDBACK), t0 + HOUR);
    cr_expect_eq(ld_task_due(t, LD_LEG_RESOLVE), t0 + 2 * HOUR);
    Linkd__V1__Task pb;
    char id[LD_TASK_ID_LEN];
    ld_engine_task_pb(&eng, t, &pb, NULL, id);
    cr_expect(pb.has_feedback_by_ms);
    cr_expect_eq(pb.feedback_by_ms, (int64_t)(t0 + HOUR));
}

Test(plan, arrival_budget_follows_the_district_area_type)
{
    uint64_t t0 = ld_clock_now(&clk);
    cr_expect_eq(ld_task_due(open_call("1-0", CRIME, "440106")->tasks[0], LD_LEG_ARRIVE), t0 + 5 * MIN);
    cr_expect_eq(ld_task_due(open_call("2-0", CRIME, "440112")->tasks[0], LD_LEG_ARRIVE), t0 + 10 * MIN);
    cr_expect_eq(ld_task_due(open_call("3-0", CRIME, "440117")->tasks[0], LD_LEG_ARRIVE), t0 + 20 * MIN);
    /* Not in the table: the default area type, urban unless the rules say. */
    cr_expect_eq(ld_task_due(open_call("4-0", CRIME, "999999")->tasks[0], LD_LEG_ARRIVE), t0 + 5 * MIN);
    cr_expect_eq(ld_task_due(open_call("5-0", CRIME, NULL)->tasks[0], LD_LEG_ARRIVE), t0 + 5 * MIN);
}

Test(plan, feedback_completes_its_leg_and_implies_acknowledgement)
{
    ld_task *t = open_call("1-0", CRIME, "440106")->tasks[0];
    advance(10 * SEC);
    cr_expect_eq(update(t, "police-duty", FEEDBACK, NULL), REJECTED, "a report needs its text");
    cr_expect_eq(update(t, "police-duty", FEEDBACK, "suspect detained, one injured"), ACCEPTED);
    cr_expect_neq(ld_task_done(t, LD_LEG_FEEDBACK), 0);
    cr_expect_neq(ld_task_done(t, LD_LEG_ACK), 0, "feedback implies acknowledgement");
    cr_expect_eq(t->state, LINKD__V1__TASK_STATE__TASK_STATE_ACKNOWLEDGED);
    cr_expect_str_eq(ld_task_feedback(t), "suspect detained, one injured");
    cr_expect_eq(update(t, "police-duty", FEEDBACK, "suspect detained, one injured"), DUPLICATE);
    cr_expect_eq(update(t, "police-duty", FEEDBACK, "injured person to hospital"), ACCEPTED);
    cr_expect_str_eq(ld_task_feedback(t), "injured person to hospital");
    cr_expect_eq(eng.stats.feedbacks, 2);
    /* The acknowledge deadline has passed without escalation: it was met. */
    advance(1 * MIN);
    cr_expect_eq(t->level, 0);
    int n = 0;
    for (int i = 0; i < nfeed; i++) n += feed_kinds[i] == LINKD__V1__FEED_KIND__FEED_KIND_TASK_FEEDBACK;
    cr_expect_eq(n, 2);
}

Test(plan, a_missed_feedback_escalates_on_its_own_leg)
{
    ld_task *t = open_call("1-0", CRIME, "440106")->tasks[0];
    cr_assert_eq(update(t, "police-duty", LINKD__V1__UPDATE_KIND__UPDATE_KIND_ON_SCENE, NULL),
                 ACCEPTED);
    advance(HOUR - SEC);
    cr_expect_eq(t->level, 0, "feedback not yet due");
    advance(SEC);
    cr_expect_eq(t->level, 1, "feedback missed: deputy");
    cr_expect_eq(feed_kinds[nfeed - 1], LINKD__V1__FEED_KIND__FEED_KIND_TASK_ESCALATED);
    cr_expect_eq(feed_legs[nfeed - 1], LINKD__V1__LEG__LEG_FEEDBACK);
    cr_expect_eq(ld_task_due(t, LD_LEG_FEEDBACK), ld_clock_now(&clk) + 2 * MIN, "deputy's wait");
    cr_expect_eq(update(t, "police-deputy", FEEDBACK, "area secured"), ACCEPTED);
    advance(2 * MIN);
    cr_expect_eq(t->level, 1, "feedback given: no further escalation");
}

Test(plan, without_a_feedback_budget_there_is_no_feedback_leg)
{
    uint64_t t0 = ld_clock_now(&clk);
    ld_task *t = open_call("1-0", WATER, "440106")->tasks[0];
    Linkd__V1__Task pb;
    char id[LD_TASK_ID_LEN];
    ld_engine_task_pb(&eng, t, &pb, NULL, id);
    cr_expect_not(pb.has_feedback_by_ms);
    cr_assert_eq(update(t, "utilities-duty", LINKD__V1__UPDATE_KIND__UPDATE_KIND_ON_SCENE, NULL),
                 ACCEPTED);
    advance(12 * HOUR - SEC);
    cr_expect_eq(t->level, 0);
    advance(SEC);
    /* Resolve missed: one escalation for the resolve leg, none for feedback. */
    int esc = 0;
    for (int i = 0; i < nfeed; i++) {
        cr_expect_neq(feed_legs[i], LINKD__V1__LEG__LEG_FEEDBACK);
        esc += feed_kinds[i] == LINKD__V1__FEED_KIND__FEED_KIND_TASK_ESCALATED;
    }
    cr_expect_eq(esc, 1);
    cr_expect_eq(ld_task_due(t, LD_LEG_RESOLVE), t0 + 12 * HOUR + 2 * MIN);
}

Test(plan, the_record_keeps_the_feedback_leg_across_a_restart)
{
    ld_task *t = open_call("1-0", CRIME, "440106")->tasks[0];
    advance(MIN);
    cr_assert_eq(update(t, "police-duty", FEEDBACK, "on it"), ACCEPTED);
    uint8_t buf[8192];
    size_t n = ld_engine_record_pack(&eng, t->inc, buf, sizeof buf);
    cr_assert_leq(n, sizeof buf);
    uint64_t due = ld_task_due(t, LD_LEG_FEEDBACK), done = ld_task_done(t, LD_LEG_FEEDBACK);
    Linkd__V1__IncidentRecord *rec = linkd__v1__incident_record__unpack(NULL, n, buf);
    cr_assert_not_null(rec);
    cr_expect_eq(rec->tasks[0]->feedback_at_ms, (int64_t)done);
    cr_expect_str_eq(rec->tasks[0]->feedback, "on it");
    /* A second engine, as after a restart. */
    ld_engine e2;
    ld_engine_hooks h = {0};
    cr_assert_eq(ld_engine_init(&e2, rules, &clk, &h), 0);
    cr_assert_eq(ld_engine_restore(&e2, rec), 0);
    ld_task *r = ld_engine_find(&e2, "I1-0")->tasks[0];
    cr_expect_eq(ld_task_due(r, LD_LEG_FEEDBACK), due);
    cr_expect_eq(ld_task_done(r, LD_LEG_FEEDBACK), done);
    cr_expect_str_eq(ld_task_feedback(r), "on it");
    cr_expect_eq(r->legs_off, 0);
    /* A record written before the feedback leg existed has none. */
    char *own = rec->incident_id, other[] = "I2-0";
    rec->tasks[0]->task->has_feedback_by_ms = 0;
    rec->incident_id = other;
    cr_assert_eq(ld_engine_restore(&e2, rec), 0);
    cr_expect(ld_engine_find(&e2, "I2-0")->tasks[0]->legs_off & (1u << LD_LEG_FEEDBACK));
    rec->incident_id = own;
    linkd__v1__incident_record__free_unpacked(rec, NULL);
    ldh_expect_task_counts(&e2);
    ld_engine_fini(&e2);
}

static void setup_autumn(void) { start(local(2026, 9, 30, 10, 0)); }

Test(plan_petition, acceptance_in_working_days_skips_the_holiday_week, .init = setup_autumn,
     .fini = teardown)
{
    Linkd__V1__Envelope ev;
    Linkd__V1__Petition p;
    ld_incident *inc = NULL;
    linkd__v1__envelope__init(&ev);
    linkd__v1__petition__init(&p);
    ev.event_id = "p1";
    ev.source_id = "xf";
    ev.body_case = LINKD__V1__ENVELOPE__BODY_PETITION;
    ev.petition = &p;
    p.petition_id = "XF-1";
    p.has_issue = 1;
    p.issue = LINKD__V1__PETITION_ISSUE__PETITION_ISSUE_HOUSING;
    p.has_petitioners = 1;
    p.petitioners = 1;
    cr_assert_eq(ld_engine_open(&eng, &ev, "9-0", &inc), 0);
    uint64_t t0 = local(2026, 9, 30, 10, 0);
    /* 15 working days from Wed 30 Sep: 8, 9, 10 (make-up Saturday), 12-16,
     * 19-23, 26 and 27 October. */
    cr_expect_eq(ld_task_due(inc->tasks[0], LD_LEG_ACK), local(2026, 10, 27, 10, 0));
    cr_expect_eq(ld_task_due(inc->tasks[0], LD_LEG_FEEDBACK), t0 + 30 * DAY);
    cr_expect_eq(ld_task_due(inc->tasks[0], LD_LEG_RESOLVE), t0 + 60 * DAY);
}
