/* Rosters, offline terminals and drills in the engine, on a manual clock.
 * The rule set is tests/data/rules/roster: police day shift 08:00-20:00 at
 * police-day, night shift at police-night, a swap on 24 November, nobody on
 * the morning of 25 November, police-standby as stand-in, drill terminals
 * police-drill and command-drill. Times are local (UTC+08:00). */
#include <criterion/criterion.h>
#include <string.h>
#include <time.h>

#include "core/diag.h"
#include "core/err.h"
#include "engine/engine.h"
#include "rules/rules.h"
#include "harness.h"

#define SEC 1000ull
#define MIN (60 * SEC)

static ld_rules *rules;
static ld_clock clk;
static ld_engine eng;
static int nreassigned;

static void on_feed(void *ctx, const Linkd__V1__FeedEvent *fe)
{
    (void)ctx;
    nreassigned += fe->kind == LINKD__V1__FEED_KIND__FEED_KIND_TASK_REASSIGNED;
}

static uint64_t local(int y, int mo, int d, int h, int mi)
{
    struct tm tm = {.tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d, .tm_hour = h,
                    .tm_min = mi};
    return (uint64_t)(timegm(&tm) - 8 * 3600) * 1000;
}

static void setup(void)
{
    ld_diag d;
    ld_diag_init(&d);
    int rv = ld_rules_load(&rules, LD_SOURCE_DIR "/tests/data/rules/roster", &d);
    if (rv != 0) ld_diag_print(&d, stderr);
    ld_diag_fini(&d);
    cr_assert_eq(rv, 0);
    nreassigned = 0;
    ld_clock_init_manual(&clk, local(2026, 11, 23, 10, 0)); /* Monday, day shift */
    ld_engine_hooks h = {.feed = on_feed};
    cr_assert_eq(ld_engine_init(&eng, rules, &clk, &h), 0);
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
    cr_assert_geq(t, 0, "terminal %s", id);
    return t;
}

static const char *holder(const ld_task *t) { return rules->terminals[t->terminal].id; }

static ld_task *open_call(const char *stream_id, int category, int status)
{
    Linkd__V1__Envelope ev;
    Linkd__V1__Call110 call;
    ld_incident *inc = NULL;
    linkd__v1__envelope__init(&ev);
    linkd__v1__call110__init(&call);
    ev.event_id = (char *)stream_id;
    ev.source_id = "cc";
    ev.has_status = 1;
    ev.status = (Linkd__V1__Status)status;
    ev.body_case = LINKD__V1__ENVELOPE__BODY_CALL;
    ev.call = &call;
    call.has_category = 1;
    call.category = (Linkd__V1__CallCategory)category;
    cr_assert_eq(ld_engine_open(&eng, &ev, stream_id, &inc), 0);
    return inc->tasks[0];
}

#define CRIME LINKD__V1__CALL_CATEGORY__CALL_CATEGORY_CRIME
#define FIRE LINKD__V1__CALL_CATEGORY__CALL_CATEGORY_FIRE
#define ACTUAL LINKD__V1__STATUS__STATUS_ACTUAL
#define EXERCISE LINKD__V1__STATUS__STATUS_EXERCISE
#define TEST LINKD__V1__STATUS__STATUS_TEST

static void set_time(uint64_t at)
{
    ld_clock_advance(&clk, at - ld_clock_now(&clk));
    ld_engine_run_due(&eng);
}

TestSuite(roster, .init = setup, .fini = teardown);

Test(roster, tasks_go_to_whoever_is_on_duty_across_a_shift_change)
{
    cr_expect_str_eq(holder(open_call("1-0", CRIME, ACTUAL)), "police-day");
    set_time(local(2026, 11, 23, 19, 59));
    cr_expect_str_eq(holder(open_call("2-0", CRIME, ACTUAL)), "police-day");
    set_time(local(2026, 11, 23, 20, 0));
    cr_expect_str_eq(holder(open_call("3-0", CRIME, ACTUAL)), "police-night");
    set_time(local(2026, 11, 24, 7, 59));
    cr_expect_str_eq(holder(open_call("4-0", CRIME, ACTUAL)), "police-night");
    cr_expect_eq(ld_rules_on_duty(rules, ld_rules_department(rules, "police"),
                                  local(2026, 11, 26, 8, 0)),
                 term("police-day"));
}

Test(roster, an_override_swaps_the_shift)
{
    set_time(local(2026, 11, 24, 9, 0));
    ld_task *t = open_call("1-0", CRIME, ACTUAL);
    cr_expect_str_eq(holder(t), "police-night", "the swap holds on the 24th");
    cr_expect_eq(t->level, 0);
    set_time(local(2026, 11, 24, 20, 30));
    cr_expect_str_eq(holder(open_call("2-0", CRIME, ACTUAL)), "police-night");
}

Test(roster, nobody_on_duty_escalates_at_once)
{
    set_time(local(2026, 11, 25, 9, 0));
    ld_task *t = open_call("1-0", CRIME, ACTUAL);
    cr_expect_eq(t->level, 1, "straight to the deputy");
    cr_expect_str_eq(holder(t), "police-deputy");
    cr_expect(strstr(ld_task_reason(t), "nobody on duty for police") != NULL, "reason: %s", ld_task_reason(t));
    set_time(local(2026, 11, 25, 12, 0));
    cr_expect_str_eq(holder(open_call("2-0", CRIME, ACTUAL)), "police-day", "override over");
}

Test(roster, an_offline_terminal_gets_nothing_new)
{
    ld_engine_terminal_presence(&eng, term("police-day"), 0);
    ld_task *t = open_call("1-0", CRIME, ACTUAL);
    cr_expect_str_eq(holder(t), "police-standby", "the stand-in takes it");
    cr_expect_eq(t->level, 0);
    ld_engine_terminal_presence(&eng, term("police-standby"), 0);
    t = open_call("2-0", CRIME, ACTUAL);
    cr_expect_eq(t->level, 1, "no stand-in online: up at once");
    cr_expect_str_eq(holder(t), "police-deputy");
    cr_expect(strstr(ld_task_reason(t), "police-day is offline") != NULL, "reason: %s", ld_task_reason(t));
    ld_engine_terminal_presence(&eng, term("police-day"), 1);
    cr_expect_str_eq(holder(open_call("3-0", CRIME, ACTUAL)), "police-day", "back online");
}

Test(roster, tasks_move_off_a_terminal_that_goes_offline)
{
    ld_task *a = open_call("1-0", CRIME, ACTUAL);
    ld_task *b = open_call("2-0", CRIME, ACTUAL);
    char id[LD_TASK_ID_LEN], why[128];
    snprintf(id, sizeof id, "%s/police", b->inc->id);
    Linkd__V1__TaskUpdate u;
    linkd__v1__task_update__init(&u);
    u.task_id = id;
    u.has_kind = 1;
    u.kind = LINKD__V1__UPDATE_KIND__UPDATE_KIND_ACKNOWLEDGED;
    cr_assert_eq(ld_engine_update(&eng, term("police-day"), &u, why, sizeof why),
                 LINKD__V1__RESULT__RESULT_ACCEPTED);
    ld_engine_terminal_presence(&eng, term("police-day"), 0);
    cr_expect_str_eq(holder(a), "police-standby", "unacknowledged: to the stand-in");
    cr_expect_eq(a->level, 0);
    cr_expect_str_eq(holder(b), "police-day", "acknowledged: stays with its holder");
    cr_expect_eq(nreassigned, 1);
    cr_expect_eq(eng.stats.offline_moves, 1);
    /* The stand-in goes too: now up the chain. */
    ld_engine_terminal_presence(&eng, term("police-standby"), 0);
    cr_expect_eq(a->level, 1);
    cr_expect_str_eq(holder(a), "police-deputy");
}

Test(roster, drills_reach_only_drill_terminals_and_are_counted_apart)
{
    ld_task *t = open_call("1-0", CRIME, EXERCISE);
    cr_expect_str_eq(holder(t), "police-drill");
    ld_task *f = open_call("2-0", FIRE, TEST);
    cr_expect_str_eq(holder(f), "command-drill", "no drill terminal of its own: command's");
    cr_expect_eq(eng.stats.drill_incidents, 2);
    cr_expect_eq(eng.stats.drill_tasks, 2);
    /* Deadlines pass: a drill stays at its drill terminal, overdue. */
    set_time(ld_clock_now(&clk) + 10 * MIN);
    cr_expect_eq(t->level, 0);
    cr_expect_str_eq(holder(t), "police-drill");
    cr_expect(t->overdue_top & (1u << LD_LEG_ACK));
    cr_expect_eq(eng.stats.escalations, 0);
    /* Offline drill terminals do not pull drills onto duty terminals. */
    ld_engine_terminal_presence(&eng, term("police-drill"), 0);
    cr_expect_str_eq(holder(t), "police-drill");
    cr_expect_str_eq(holder(open_call("3-0", CRIME, ACTUAL)), "police-day");
}

Test(roster_errors, every_roster_mistake_with_its_position)
{
    ld_diag d;
    ld_rules *r = NULL;
    char line[1024];
    static const char *const want[] = {
        "rules.yaml:5:21: error: drill terminal 'police-deputy' is also level 'deputy' of the "
        "chain; drills must not reach the people on duty",
        "rules.yaml:16:11: error: roster gap: nobody is on duty for police on mon from 00:00 "
        "to 08:00; add a shift (tasks in a gap escalate at once)",
        "rules.yaml:17:72: error: shift terminal 'police-nite' is not one of police's terminals",
        "rules.yaml:19:42: error: the override ends (2026-11-24 07:00) before it starts "
        "(2026-11-24 08:00)",
        "rules.yaml:20:18: error: bad time 'tomorrow': use a local time such as "
        "\"2026-11-24 08:00\"",
        "rules.yaml:21:15: error: stand-in 'fire-duty' is not one of police's terminals",
        "rules.yaml:22:3: error: roster for department 'polise', which is not defined; did you "
        "mean 'police'?",
    };
    const char *dir = LD_SOURCE_DIR "/tests/data/rules/roster_errors";
    ld_diag_init(&d);
    cr_expect_eq(ld_rules_load(&r, dir, &d), LD_ERULES);
    cr_expect_null(r);
    cr_expect_eq(d.n, sizeof want / sizeof want[0]);
    for (size_t i = 0; i < d.n && i < sizeof want / sizeof want[0]; i++) {
        ld_diag_format(&d, i, line, sizeof line);
        cr_expect_str_eq(line + strlen(dir) + 1, want[i]);
    }
    ld_diag_fini(&d);
}
