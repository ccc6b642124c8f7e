/* The routing tree: every matcher, the index, area budgets and the calendar.
 *
 * Events are built as protobuf Envelopes and read with ld_rules_input, as
 * the engine reads them, at local times chosen for their weekday and hour
 * (the fixture's calendar is UTC+08:00 with the 2026 National Day holiday
 * and its make-up working days). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "core/diag.h"
#include "core/err.h"
#include "rules/rules.h"
#include "wire/wire.h"

#define DATA LD_SOURCE_DIR "/tests/data/rules/"

#define SEC 1000ull
#define MIN (60 * SEC)
#define HOUR (60 * MIN)
#define DAY (24 * HOUR)

#define CALL(x) LINKD__V1__CALL_CATEGORY__CALL_CATEGORY_##x
#define SENSOR(x) LINKD__V1__SENSOR_KIND__SENSOR_KIND_##x
#define ISSUE(x) LINKD__V1__PETITION_ISSUE__PETITION_ISSUE_##x

static ld_rules *rules;
static ld_diag diag;

static void load(const char *name)
{
    char dir[512];
    snprintf(dir, sizeof dir, "%s%s", DATA, name);
    ld_diag_init(&diag);
    int rv = ld_rules_load(&rules, dir, &diag);
    if (rv != 0) ld_diag_print(&diag, stderr);
    cr_assert_eq(rv, 0, "%s must load", name);
}

static void load_routing(void) { load("routing"); }

static void unload(void)
{
    ld_rules_free(rules);
    ld_diag_fini(&diag);
}

/* Epoch ms of a local time in UTC+08:00. */
static uint64_t local(int y, int mo, int d, int h, int mi)
{
    struct tm tm = {.tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d, .tm_hour = h,
                    .tm_min = mi};
    return (uint64_t)(timegm(&tm) - 8 * 3600) * 1000;
}

/* An event under construction: one of each body, and a location. */
typedef struct ev {
    Linkd__V1__Envelope e;
    Linkd__V1__Call110 call;
    Linkd__V1__SensorAlarm sensor;
    Linkd__V1__Petition petition;
    Linkd__V1__Location loc;
} ev;

static void ev_init(ev *x, int kind, int category)
{
    linkd__v1__envelope__init(&x->e);
    linkd__v1__call110__init(&x->call);
    linkd__v1__sensor_alarm__init(&x->sensor);
    linkd__v1__petition__init(&x->petition);
    linkd__v1__location__init(&x->loc);
    x->e.event_id = "e1";
    x->e.source_id = "test";
    x->e.has_status = 1;
    x->e.status = LINKD__V1__STATUS__STATUS_ACTUAL;
    switch (kind) {
    case LD_KIND_CALL:
        x->e.body_case = LINKD__V1__ENVELOPE__BODY_CALL;
        x->e.call = &x->call;
        x->call.has_category = 1;
        x->call.category = (Linkd__V1__CallCategory)category;
        x->call.location = &x->loc;
        break;
    case LD_KIND_SENSOR:
        x->e.body_case = LINKD__V1__ENVELOPE__BODY_SENSOR;
        x->e.sensor = &x->sensor;
        x->sensor.sensor_id = "S1";
        x->sensor.has_kind = 1;
        x->sensor.kind = (Linkd__V1__SensorKind)category;
        x->sensor.location = &x->loc;
        break;
    default:
        x->e.body_case = LINKD__V1__ENVELOPE__BODY_PETITION;
        x->e.petition = &x->petition;
        x->petition.petition_id = "P1";
        x->petition.has_issue = 1;
        x->petition.issue = (Linkd__V1__PetitionIssue)category;
        x->petition.has_petitioners = 1;
        x->petition.petitioners = 1;
        x->petition.location = &x->loc;
        break;
    }
}

/* The names of the routes <x> takes at <now>, joined by ','. */
static const char *routes_for(const ev *x, uint64_t now)
{
    static char buf[256];
    const ld_route *out[8];
    ld_match_input in;
    ld_rules_input(rules, &x->e, now, &in);
    size_t n = ld_rules_match(rules, &in, out, 8), off = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < n; i++)
        off += (size_t)snprintf(buf + off, sizeof buf - off, "%s%s", i ? "," : "", out[i]->name);
    return buf;
}

/* Monday 2026-11-23 at noon and at 23:30, local time. */
#define NOON local(2026, 11, 23, 12, 0)
#define LATE local(2026, 11, 23, 23, 30)

TestSuite(routing, .init = load_routing, .fini = unload);

Test(routing, district_and_time_of_day_with_continue)
{
    ev x;
    ev_init(&x, LD_KIND_CALL, CALL(DISPUTE));
    x.loc.district = "440106";
    cr_expect_str_eq(routes_for(&x, LATE), "night-dispute-tianhe,police-call");
    cr_expect_str_eq(routes_for(&x, NOON), "police-call");
    /* 05:59 is still night (the window wraps midnight); 06:00 is not. */
    cr_expect_str_eq(routes_for(&x, local(2026, 11, 24, 5, 59)),
                     "night-dispute-tianhe,police-call");
    cr_expect_str_eq(routes_for(&x, local(2026, 11, 24, 6, 0)), "police-call");
    x.loc.district = "440112";
    cr_expect_str_eq(routes_for(&x, LATE), "police-call");
    x.loc.district = NULL;
    cr_expect_str_eq(routes_for(&x, LATE), "police-call");
}

Test(routing, day_of_week_and_working_days_follow_the_calendar)
{
    ev x;
    ev_init(&x, LD_KIND_CALL, CALL(NOISE));
    cr_expect_str_eq(routes_for(&x, local(2026, 11, 28, 10, 0)), "weekend-noise"); /* Sat */
    cr_expect_str_eq(routes_for(&x, local(2026, 11, 25, 10, 0)), "other-calls");   /* Wed */
    /* Thursday 1 October is a holiday: a rest day on a weekday. */
    cr_expect_str_eq(routes_for(&x, local(2026, 10, 1, 10, 0)), "holiday-noise");
    /* Saturday 10 October is a make-up working day, but still a Saturday. */
    cr_expect_str_eq(routes_for(&x, local(2026, 10, 10, 10, 0)), "weekend-noise");
    /* Local midnight, not UTC midnight, starts the day: 00:30 Saturday local
     * is still Friday in UTC. */
    cr_expect_str_eq(routes_for(&x, local(2026, 11, 28, 0, 30)), "weekend-noise");
    cr_expect_str_eq(routes_for(&x, local(2026, 11, 27, 23, 59)), "other-calls");
}

Test(routing, working_day_table)
{
    int64_t oct1 = (int64_t)(local(2026, 10, 1, 12, 0) / DAY);
    cr_expect_not(ld_rules_is_workday(rules, oct1), "1 Oct: holiday");
    cr_expect_not(ld_rules_is_workday(rules, oct1 + 6), "7 Oct: holiday");
    cr_expect(ld_rules_is_workday(rules, oct1 + 7), "8 Oct: Thursday");
    cr_expect(ld_rules_is_workday(rules, oct1 + 9), "10 Oct: make-up Saturday");
    cr_expect_not(ld_rules_is_workday(rules, oct1 + 10), "11 Oct: Sunday");
    cr_expect(ld_rules_is_workday(rules, oct1 - 4), "27 Sep: make-up Sunday");
    cr_expect_not(ld_rules_is_workday(rules, oct1 - 5), "26 Sep: Saturday");
}

Test(routing, numeric_comparison_on_people)
{
    ev x;
    ev_init(&x, LD_KIND_CALL, CALL(CRIME));
    x.call.has_people = 1;
    x.call.people = 10;
    cr_expect_str_eq(routes_for(&x, NOON), "crowd,police-call");
    x.call.people = 9;
    cr_expect_str_eq(routes_for(&x, NOON), "police-call");
    x.call.has_people = 0;
    cr_expect_str_eq(routes_for(&x, NOON), "police-call");
}

Test(routing, grid_set_and_area_type)
{
    ev x;
    ev_init(&x, LD_KIND_CALL, CALL(OTHER));
    x.loc.grid = "TH-0412";
    x.loc.district = "440106";   /* urban */
    cr_expect_str_eq(routes_for(&x, NOON), "grid-call");
    x.loc.grid = "TH-0413";
    cr_expect_str_eq(routes_for(&x, NOON), "grid-call");
    x.loc.district = "440112";   /* suburban */
    cr_expect_str_eq(routes_for(&x, NOON), "other-calls");
    x.loc.district = "440106";
    x.loc.grid = "TH-9999";
    cr_expect_str_eq(routes_for(&x, NOON), "other-calls");
}

Test(routing, measured_value_against_threshold)
{
    ev x;
    ev_init(&x, LD_KIND_SENSOR, SENSOR(GAS));
    x.sensor.has_value = x.sensor.has_threshold = 1;
    x.sensor.value = 25, x.sensor.threshold = 10; /* 2.5 times */
    cr_expect_str_eq(routes_for(&x, NOON), "gas-far-over");
    x.sensor.value = 20;                          /* exactly 2 times */
    cr_expect_str_eq(routes_for(&x, NOON), "gas-far-over");
    x.sensor.value = 12;                          /* over, less than twice */
    cr_expect_str_eq(routes_for(&x, NOON), "gas-over");
    x.sensor.value = 3;                           /* under, but in 2.5..4 */
    cr_expect_str_eq(routes_for(&x, NOON), "level-band");
    x.sensor.value = 4.5;
    cr_expect_str_eq(routes_for(&x, NOON), "other-sensors");
    x.sensor.has_value = 0;                       /* no reading: no value condition holds */
    x.sensor.value = 0;
    cr_expect_str_eq(routes_for(&x, NOON), "other-sensors");
    ev_init(&x, LD_KIND_SENSOR, SENSOR(SMOKE));
    x.sensor.has_value = 1;
    x.sensor.value = 2.5;
    cr_expect_str_eq(routes_for(&x, NOON), "level-band");
}

Test(routing, bypass_repeat_and_target_office)
{
    ev x;
    ev_init(&x, LD_KIND_PETITION, ISSUE(HOUSING));
    x.petition.has_bypass_level = x.petition.bypass_level = 1;
    x.petition.has_repeat_count = 1;
    x.petition.repeat_count = 2;
    x.petition.target_office = "city-hall";
    cr_expect_str_eq(routes_for(&x, NOON), "bypass-repeat");
    x.petition.repeat_count = 1;
    cr_expect_str_eq(routes_for(&x, NOON), "petition");
    x.petition.repeat_count = 3;
    x.petition.target_office = "district-office";
    cr_expect_str_eq(routes_for(&x, NOON), "petition");
    x.petition.target_office = "city-hall";
    x.petition.bypass_level = 0;
    cr_expect_str_eq(routes_for(&x, NOON), "petition");
}

Test(routing, exercise_and_test_status)
{
    ev x;
    ev_init(&x, LD_KIND_CALL, CALL(CRIME));
    x.e.status = LINKD__V1__STATUS__STATUS_EXERCISE;
    cr_expect_str_eq(routes_for(&x, NOON), "drill");
    x.e.status = LINKD__V1__STATUS__STATUS_TEST;
    cr_expect_str_eq(routes_for(&x, NOON), "drill");
    x.e.status = LINKD__V1__STATUS__STATUS_ACTUAL;
    cr_expect_str_eq(routes_for(&x, NOON), "police-call");
}

static const ld_route *route_named(const char *name)
{
    for (int i = 0; i < rules->nroutes; i++)
        if (strcmp(rules->routes[i].name, name) == 0) return &rules->routes[i];
    cr_assert_fail("no route %s", name);
    return NULL;
}

Test(routing, arrival_budget_by_area_type)
{
    const ld_dispatch_def *d = &route_named("police-call")->dispatch[0];
    uint64_t t0 = NOON;
    cr_expect_eq(ld_rules_deadline(rules, d, LD_LEG_ARRIVE, LD_AREA_URBAN, t0), t0 + 5 * MIN);
    cr_expect_eq(ld_rules_deadline(rules, d, LD_LEG_ARRIVE, LD_AREA_SUBURBAN, t0), t0 + 10 * MIN);
    cr_expect_eq(ld_rules_deadline(rules, d, LD_LEG_ARRIVE, LD_AREA_RURAL, t0), t0 + 20 * MIN);
    cr_expect_eq(ld_rules_deadline(rules, d, LD_LEG_ACK, LD_AREA_RURAL, t0), t0 + 30 * SEC);
    /* The default area (suburban here) is what the budgets without a district use. */
    cr_expect_eq(d->leg_ms[LD_LEG_ARRIVE], 10 * MIN);

    /* The district table decides the area of an event. */
    ev x;
    ld_match_input in;
    ev_init(&x, LD_KIND_CALL, CALL(CRIME));
    static const struct { const char *district; int area; } cases[] = {
        {"440103", LD_AREA_URBAN}, {"440106", LD_AREA_URBAN}, {"440112", LD_AREA_SUBURBAN},
        {"440117", LD_AREA_RURAL}, {"999999", LD_AREA_SUBURBAN}, {NULL, LD_AREA_SUBURBAN},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        x.loc.district = (char *)cases[i].district;
        ld_rules_input(rules, &x.e, t0, &in);
        cr_expect_eq(in.area, cases[i].area, "district %s", cases[i].district);
    }
}

Test(routing, working_day_budgets_skip_holidays_and_count_make_up_days)
{
    const ld_dispatch_def *d = &route_named("bypass-repeat")->dispatch[0];
    /* Wednesday 30 Sep 10:00: 1-7 Oct are holidays; Thu 8, Fri 9, Sat 10
     * (make-up), Mon 12, Tue 13 are the five working days. */
    uint64_t t0 = local(2026, 9, 30, 10, 0);
    cr_expect_eq(ld_rules_deadline(rules, d, LD_LEG_ACK, LD_AREA_URBAN, t0),
                 local(2026, 10, 13, 10, 0));
    /* An ordinary week: Monday + 5 working days is next Monday. */
    t0 = local(2026, 11, 23, 9, 0);
    cr_expect_eq(ld_rules_deadline(rules, d, LD_LEG_ACK, LD_AREA_URBAN, t0),
                 local(2026, 11, 30, 9, 0));
    /* Calendar days ignore the calendar. */
    const ld_dispatch_def *p = &route_named("petition")->dispatch[0];
    t0 = local(2026, 9, 30, 10, 0);
    cr_expect_eq(ld_rules_deadline(rules, p, LD_LEG_ACK, LD_AREA_URBAN, t0), t0 + 15 * DAY);
}

/* The index must give exactly what trying every route in order gives. */
static void compare_with_linear(const ld_rules *r, const ld_match_input *in)
{
    const ld_route *a[8], *b[8];
    size_t na = ld_rules_match(r, in, a, 8);
    struct ld_route_index *saved = ((ld_rules *)r)->index;
    ((ld_rules *)r)->index = NULL; /* the unindexed pass */
    size_t nb = ld_rules_match(r, in, b, 8);
    ((ld_rules *)r)->index = saved;
    cr_assert_eq(na, nb, "kind %d category %d district %d: %zu vs %zu routes", in->kind,
                 in->category, in->str[LD_STR_DISTRICT], na, nb);
    for (size_t i = 0; i < na; i++) cr_assert_eq(a[i], b[i]);
}

Test(routing, index_agrees_with_trying_every_route)
{
    static const char *const districts[] = {NULL, "440103", "440106", "440112", "440117", "1"};
    static const char *const grids[] = {NULL, "TH-0412", "TH-0413", "X"};
    uint32_t seed = 12345;
    for (int n = 0; n < 20000; n++) {
        ev x;
        ld_match_input in;
        seed = seed * 1103515245u + 12345u;
        int kind = 1 + (int)(seed >> 8) % 3;
        int cat = (int)(seed >> 12) % 22;
        ev_init(&x, kind, cat);
        x.e.status = (Linkd__V1__Status)((seed >> 4) % 4);
        x.loc.district = (char *)districts[(seed >> 16) % 6];
        x.loc.grid = (char *)grids[(seed >> 20) % 4];
        x.call.has_people = 1;
        x.call.people = (seed >> 3) % 15;
        x.sensor.has_value = (seed >> 24) & 1;
        x.sensor.value = (double)((seed >> 5) % 40);
        x.sensor.threshold = 10;
        x.petition.bypass_level = (seed >> 25) & 1;
        x.petition.repeat_count = (seed >> 26) % 4;
        x.petition.target_office = (seed >> 28) & 1 ? "city-hall" : NULL;
        uint64_t now = local(2026, 9, 25, 0, 0) + (uint64_t)((seed >> 7) % (20 * 24)) * HOUR;
        ld_rules_input(rules, &x.e, now, &in);
        compare_with_linear(rules, &in);
    }
}

Test(routing_errors, every_matcher_mistake_with_its_position)
{
    ld_diag d;
    ld_rules *r = NULL;
    char line[1024];
    static const char *const want[] = {
        "rules.yaml:3:16: error: bad utc_offset '+8': use +HH:MM or -HH:MM, e.g. \"+08:00\" "
        "for China Standard Time (Asia/Shanghai, no daylight saving)",
        "rules.yaml:4:14: error: bad date '2026-02-30': use YYYY-MM-DD or a span "
        "YYYY-MM-DD..YYYY-MM-DD of at most a year",
        "rules.yaml:4:26: error: bad date '2026-10-07..2026-10-01': use YYYY-MM-DD or a span "
        "YYYY-MM-DD..YYYY-MM-DD of at most a year",
        "rules.yaml:7:11: error: district '440106' is already listed as urban at rules.yaml:6:19",
        "rules.yaml:8:3: error: unknown key 'sububran' in areas; did you mean 'suburban'? "
        "(known: urban, suburban, rural, default)",
        "rules.yaml:9:12: error: unknown area type 'city' (known: urban, suburban, rural)",
        "rules.yaml:21:35: error: bad condition 'at least 5' for 'people': use a number, a "
        "comparison (= != < <= > >= and a number, e.g. \">= 5\") or a range (e.g. 5..20)",
        "rules.yaml:21:56: error: 'value' is a field of sensor alarms only; this route matches "
        "kind 'call', so it could never match",
        "rules.yaml:25:36: error: 'bypass' is a field of petitions only; this route matches "
        "kind 'sensor', so it could never match",
        "rules.yaml:25:49: error: bad time of day '25:00-06:00': use HH:MM-HH:MM, local time, "
        "from (included) to (excluded), e.g. 08:00-18:00 or 22:00-06:00",
        "rules.yaml:25:75: error: unknown day 'fry'; did you mean 'fri'? (use mon, tue, wed, "
        "thu, fri, sat, sun, or a span such as mon-fri)",
        "rules.yaml:29:32: error: unknown area type 'downtown' (known: urban, suburban, rural)",
        "rules.yaml:29:50: error: unknown status 'drill' (known: actual, exercise, test)",
        "rules.yaml:29:57: error: unknown key 'distrct' in match; did you mean 'district'?",
        "rules.yaml:31:69: error: unknown area type 'remote' (known: urban, suburban, rural)",
        "rules.yaml:31:92: error: bad duration '3wdx' for 'resolve': unknown unit (use ms, s, "
        "m, h or d)",
        "z-calendar.yaml:2:1: error: 'calendar' is already given at rules.yaml:2:1; one per "
        "rule set",
    };
    const char *dir = DATA "routing_errors";
    ld_diag_init(&d);
    cr_expect_eq(ld_rules_load(&r, dir, &d), LD_ERULES);
    cr_expect_null(r);
    cr_expect_eq(d.n, sizeof want / sizeof want[0]);
    for (size_t i = 0; i < d.n && i < sizeof want / sizeof want[0]; i++) {
        ld_diag_format(&d, i, line, sizeof line);
        cr_expect(strncmp(line, dir, strlen(dir)) == 0 && line[strlen(dir)] == '/', "%s", line);
        cr_expect_str_eq(line + strlen(dir) + 1, want[i]);
    }
    ld_diag_fini(&d);
}

Test(routing_errors, shadowed_routes_are_warned_with_their_position)
{
    load("routing_shadow");
    char line[1024];
    const char *dir = DATA "routing_shadow/";
    cr_assert_eq(diag.n, 2);
    ld_diag_format(&diag, 0, line, sizeof line);
    cr_expect_str_eq(line + strlen(dir), "rules.yaml:17:5: warning: route 'one-district' never "
                     "matches: route 'two-districts' (rules.yaml:13:5) comes first and takes "
                     "every event it would");
    ld_diag_format(&diag, 1, line, sizeof line);
    cr_expect_str_eq(line + strlen(dir), "rules.yaml:33:5: warning: route 'sunday' never "
                     "matches: route 'weekend' (rules.yaml:29:5) comes first and takes every "
                     "event it would");
    unload();
}
