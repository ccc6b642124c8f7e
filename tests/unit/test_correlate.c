/* Correlation rules: the windows alone (window.c), the engine's upgrades on
 * a manual clock (upgrade.c, rule set tests/data/rules/correlate), and the
 * checker's errors (tests/data/rules/correlate_errors). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "core/diag.h"
#include "core/err.h"
#include "engine/actions.h"
#include "engine/engine.h"
#include "engine/upgrade.h"
#include "engine/window.h"
#include "rules/rules.h"
#include "harness.h"

#define SEC 1000ull
#define MIN (60 * SEC)
#define HOUR (60 * MIN)
#define T0 1795000000000ull

/* ---- the windows alone ------------------------------------------------------ */

static ld_correlation count_rule(uint32_t count, uint64_t window_ms)
{
    ld_correlation c;
    memset(&c, 0, sizeof c);
    c.type = LD_CORR_COUNT;
    c.count = count;
    c.window_ms = window_ms;
    c.id_hash = 42;
    snprintf(c.upgrade.name, sizeof c.upgrade.name, "test-count");
    return c;
}

static int fired;
static ld_window_hit last_hit;
static char last_refs[LD_CORR_MAX_COUNT][LD_WINDOW_REF_LEN];

static void on_hit(void *ctx, const ld_window_hit *hit)
{
    (void)ctx;
    fired++;
    last_hit = *hit;
    for (uint32_t i = 0; i < hit->n; i++) {
        snprintf(last_refs[i], sizeof last_refs[i], "%s", hit->refs[i]);
        last_hit.refs[i] = last_refs[i];
    }
}

/* One event of key <key> with distinct value <value>, from incident <ref>. */
static int put(ld_windows *w, const ld_correlation *c, int step, uint64_t key, uint64_t value,
               const char *ref, uint64_t at)
{
    uint64_t v = value;
    ld_window_event ev = {key, &v, 1, ref};
    return ld_windows_observe(w, c, step, &ev, at, on_hit, NULL);
}

static void reset_hits(void)
{
    fired = 0;
    memset(&last_hit, 0, sizeof last_hit);
}

Test(windows, count_fires_at_n_distinct_values_with_the_oldest_first)
{
    ld_windows *w = ld_windows_new(0);
    ld_correlation c = count_rule(3, 5 * MIN);
    reset_hits();
    cr_assert_not_null(w);
    cr_expect_eq(put(w, &c, 0, 7, 100, "I1", T0), 0);
    cr_expect_eq(put(w, &c, 0, 7, 101, "I2", T0 + MIN), 0);
    cr_expect_eq(put(w, &c, 0, 7, 102, "I3", T0 + 2 * MIN), 1);
    cr_expect_eq(fired, 1);
    cr_expect_eq(last_hit.n, 3);
    cr_expect_str_eq(last_hit.refs[0], "I1");
    cr_expect_str_eq(last_hit.refs[2], "I3");
    cr_expect_eq(last_hit.at[1], T0 + MIN);
    ld_windows_free(w);
}

Test(windows, the_same_value_again_counts_once)
{
    ld_windows *w = ld_windows_new(0);
    ld_correlation c = count_rule(3, 5 * MIN);
    reset_hits();
    for (int i = 0; i < 10; i++) put(w, &c, 0, 7, 100, "I1", T0 + (uint64_t)i * SEC);
    put(w, &c, 0, 7, 101, "I2", T0 + 20 * SEC);
    cr_expect_eq(fired, 0, "two distinct values are not three");
    put(w, &c, 0, 7, 102, "I3", T0 + 30 * SEC);
    cr_expect_eq(fired, 1);
    ld_windows_free(w);
}

Test(windows, different_keys_count_apart)
{
    ld_windows *w = ld_windows_new(0);
    ld_correlation c = count_rule(2, 5 * MIN);
    reset_hits();
    put(w, &c, 0, 7, 100, "I1", T0);
    put(w, &c, 0, 8, 101, "I2", T0);
    cr_expect_eq(fired, 0);
    ld_window_stats st;
    ld_windows_stats(w, &st);
    cr_expect_eq(st.keys, 2);
    ld_windows_free(w);
}

Test(windows, values_older_than_the_window_no_longer_count)
{
    ld_windows *w = ld_windows_new(0);
    ld_correlation c = count_rule(3, 5 * MIN);
    reset_hits();
    put(w, &c, 0, 7, 100, "I1", T0);
    put(w, &c, 0, 7, 101, "I2", T0 + 3 * MIN);
    put(w, &c, 0, 7, 102, "I3", T0 + 5 * MIN + 1); /* I1 left the window 1 ms ago */
    cr_expect_eq(fired, 0);
    put(w, &c, 0, 7, 103, "I4", T0 + 6 * MIN);
    cr_expect_eq(fired, 1, "I2, I3 and I4 are within 5 minutes");
    cr_expect_str_eq(last_hit.refs[0], "I2");
    ld_windows_free(w);
}

Test(windows, a_key_that_fired_rests_for_a_window)
{
    ld_windows *w = ld_windows_new(0);
    ld_correlation c = count_rule(2, 10 * MIN);
    reset_hits();
    put(w, &c, 0, 7, 1, "I1", T0);
    put(w, &c, 0, 7, 2, "I2", T0 + MIN);
    cr_expect_eq(fired, 1);
    put(w, &c, 0, 7, 3, "I3", T0 + 2 * MIN);
    put(w, &c, 0, 7, 4, "I4", T0 + 3 * MIN);
    cr_expect_eq(fired, 1, "one upgrade per key and window");
    ld_window_stats st;
    ld_windows_stats(w, &st);
    cr_expect_eq(st.suppressed, 2);
    put(w, &c, 0, 7, 5, "I5", T0 + 12 * MIN);
    put(w, &c, 0, 7, 6, "I6", T0 + 13 * MIN);
    cr_expect_eq(fired, 2, "counting starts again after the window");
    ld_windows_free(w);
}

Test(windows, dead_windows_are_swept_and_their_memory_returned)
{
    ld_windows *w = ld_windows_new(0);
    ld_correlation c = count_rule(3, 5 * MIN);
    ld_window_stats st;
    for (uint64_t k = 1; k <= 1000; k++) put(w, &c, 0, k, 1, "I", T0);
    ld_windows_stats(w, &st);
    cr_expect_eq(st.keys, 1000, "%zu keys, %llu full", st.keys, (unsigned long long)st.keys_full);
    size_t full = st.bytes;
    ld_windows_sweep(w, T0 + 5 * MIN, 1u << 20); /* not yet: the window includes its end */
    ld_windows_stats(w, &st);
    cr_expect_eq(st.keys, 1000);
    ld_windows_sweep(w, T0 + 5 * MIN + 1, 1u << 20);
    ld_windows_stats(w, &st);
    cr_expect_eq(st.keys, 0);
    cr_expect_eq(st.expired, 1000);
    cr_expect_lt(st.bytes, full);
    /* The table still finds keys after the backward shifts. */
    put(w, &c, 0, 5, 1, "I", T0 + 6 * MIN);
    put(w, &c, 0, 5, 2, "I", T0 + 6 * MIN);
    put(w, &c, 0, 5, 3, "I", T0 + 6 * MIN);
    ld_windows_stats(w, &st);
    cr_expect_eq(st.fired, 1);
    ld_windows_free(w);
}

Test(windows, observing_sweeps_by_itself)
{
    ld_windows *w = ld_windows_new(0);
    ld_correlation c = count_rule(3, MIN);
    ld_window_stats st;
    for (uint64_t k = 1; k <= 300; k++) put(w, &c, 0, k, 1, "I", T0);
    /* Later events on one key: each sweeps a few slots, so the dead ones go. */
    for (uint64_t i = 0; i < 2000; i++) put(w, &c, 0, 100000, i % 2, "I", T0 + 2 * MIN);
    ld_windows_stats(w, &st);
    cr_expect_eq(st.keys, 1, "only the live key is left, %zu open", st.keys);
    ld_windows_free(w);
}

Test(windows, keys_beyond_the_cap_are_not_counted_and_are_counted_as_such)
{
    ld_windows *w = ld_windows_new(100);
    ld_correlation c = count_rule(2, 5 * MIN);
    ld_window_stats st;
    reset_hits();
    for (uint64_t k = 1; k <= 150; k++) put(w, &c, 0, k, 1, "I", T0);
    ld_windows_stats(w, &st);
    cr_expect_eq(st.keys, 100);
    cr_expect_eq(st.keys_full, 50);
    /* An open key still counts. */
    put(w, &c, 0, 1, 2, "I", T0 + SEC);
    cr_expect_eq(fired, 1);
    ld_windows_free(w);
}

Test(windows, an_event_without_its_key_or_value_is_not_counted)
{
    ld_windows *w = ld_windows_new(0);
    ld_correlation c = count_rule(2, 5 * MIN);
    ld_window_event none = {0, NULL, 0, "I"};
    uint64_t v = 1;
    ld_window_event novalue = {7, &v, 0, "I"};
    ld_windows_observe(w, &c, 0, &none, T0, on_hit, NULL);
    ld_windows_observe(w, &c, 0, &novalue, T0, on_hit, NULL);
    ld_window_stats st;
    ld_windows_stats(w, &st);
    cr_expect_eq(st.unkeyed, 2);
    cr_expect_eq(st.keys, 0);
    ld_windows_free(w);
}

Test(windows, a_sequence_fires_when_the_second_step_follows_within_the_window)
{
    ld_windows *w = ld_windows_new(0);
    ld_correlation c = count_rule(0, 10 * MIN);
    c.type = LD_CORR_SEQUENCE;
    reset_hits();
    cr_expect_eq(put(w, &c, 1, 9, 0, "B0", T0), 0, "a second step alone is nothing");
    put(w, &c, 0, 9, 0, "A1", T0 + MIN);
    cr_expect_eq(put(w, &c, 1, 8, 0, "B1", T0 + 2 * MIN), 0, "another key");
    cr_expect_eq(put(w, &c, 1, 9, 0, "B2", T0 + 11 * MIN), 1, "10 minutes after A1");
    cr_expect_eq(last_hit.n, 2);
    cr_expect_str_eq(last_hit.refs[0], "A1");
    cr_expect_str_eq(last_hit.refs[1], "B2");
    cr_expect_eq(put(w, &c, 1, 9, 0, "B3", T0 + 12 * MIN), 0, "A1 was used up");
    put(w, &c, 0, 9, 0, "A2", T0 + 20 * MIN);
    cr_expect_eq(put(w, &c, 1, 9, 0, "B4", T0 + 30 * MIN + 1), 0, "too late");
    cr_expect_eq(fired, 1);
    ld_windows_free(w);
}

/* ---- in the engine --------------------------------------------------------------- */

static ld_rules *rules;
static ld_clock clk;
static ld_engine eng;
static int upgraded_feed;
static char upgraded_actor[80], upgraded_text[400], leader_seen[96];

static void on_feed(void *ctx, const Linkd__V1__FeedEvent *fe)
{
    (void)ctx;
    if (fe->kind == LINKD__V1__FEED_KIND__FEED_KIND_INCIDENT_UPGRADED) {
        upgraded_feed++;
        snprintf(upgraded_actor, sizeof upgraded_actor, "%s", fe->actor ? fe->actor : "");
        snprintf(upgraded_text, sizeof upgraded_text, "%s", fe->text ? fe->text : "");
    }
    if (fe->kind == LINKD__V1__FEED_KIND__FEED_KIND_TASK_DISPATCHED && fe->task &&
        fe->task->leader)
        snprintf(leader_seen, sizeof leader_seen, "%s", fe->task->leader);
}

static void setup(void)
{
    ld_diag d;
    ld_diag_init(&d);
    int rv = ld_rules_load(&rules, LD_SOURCE_DIR "/tests/data/rules/correlate", &d);
    if (rv != 0) ld_diag_print(&d, stderr);
    ld_diag_fini(&d);
    cr_assert_eq(rv, 0);
    cr_assert_eq(rules->ncorrelations, 3);
    upgraded_feed = 0;
    upgraded_actor[0] = upgraded_text[0] = leader_seen[0] = '\0';
    ld_clock_init_manual(&clk, T0);
    ld_engine_hooks h = {.feed = on_feed};
    cr_assert_eq(ld_engine_init(&eng, rules, &clk, &h), 0);
}

static void teardown(void)
{
    ldh_expect_task_counts(&eng);
    ld_engine_fini(&eng);
    ld_rules_free(rules);
}

typedef struct ev_buf {
    Linkd__V1__Envelope env;
    Linkd__V1__SensorAlarm sensor;
    Linkd__V1__Call110 call;
    Linkd__V1__Petition petition;
    Linkd__V1__Location loc;
    char *refs[4];
} ev_buf;

static void base(ev_buf *b, const char *id)
{
    memset(b, 0, sizeof *b);
    linkd__v1__envelope__init(&b->env);
    linkd__v1__location__init(&b->loc);
    b->env.event_id = (char *)id;
    b->env.source_id = "unit";
    b->env.has_status = 1;
    b->env.status = LINKD__V1__STATUS__STATUS_ACTUAL;
}

static ld_incident *smoke(const char *stream, const char *sensor, const char *address)
{
    ev_buf b;
    ld_incident *inc = NULL;
    base(&b, stream);
    linkd__v1__sensor_alarm__init(&b.sensor);
    b.sensor.sensor_id = (char *)sensor;
    b.sensor.has_kind = 1;
    b.sensor.kind = LINKD__V1__SENSOR_KIND__SENSOR_KIND_SMOKE;
    b.sensor.location = &b.loc;
    b.loc.district = "440106";
    b.loc.address = (char *)address;
    b.env.body_case = LINKD__V1__ENVELOPE__BODY_SENSOR;
    b.env.sensor = &b.sensor;
    cr_assert_eq(ld_engine_open(&eng, &b.env, stream, &inc), 0);
    return inc;
}

static ld_incident *petition(const char *stream, const char *ref, const char *office)
{
    ev_buf b;
    ld_incident *inc = NULL;
    base(&b, stream);
    linkd__v1__petition__init(&b.petition);
    b.petition.petition_id = (char *)stream;
    b.petition.has_issue = 1;
    b.petition.issue = LINKD__V1__PETITION_ISSUE__PETITION_ISSUE_WAGE_ARREARS;
    b.petition.has_petitioners = 1;
    b.petition.petitioners = 1;
    b.refs[0] = (char *)ref;
    b.petition.petitioner_refs = b.refs;
    b.petition.n_petitioner_refs = ref ? 1 : 0;
    b.petition.target_office = (char *)office;
    b.petition.location = &b.loc;
    b.env.body_case = LINKD__V1__ENVELOPE__BODY_PETITION;
    b.env.petition = &b.petition;
    cr_assert_eq(ld_engine_open(&eng, &b.env, stream, &inc), 0);
    return inc;
}

static ld_incident *in_grid(const char *stream, int sensor, const char *grid)
{
    ev_buf b;
    ld_incident *inc = NULL;
    base(&b, stream);
    b.loc.grid = (char *)grid;
    if (sensor) {
        linkd__v1__sensor_alarm__init(&b.sensor);
        b.sensor.sensor_id = "CROWD-1";
        b.sensor.has_kind = 1;
        b.sensor.kind = LINKD__V1__SENSOR_KIND__SENSOR_KIND_CROWD_DENSITY;
        b.sensor.location = &b.loc;
        b.env.body_case = LINKD__V1__ENVELOPE__BODY_SENSOR;
        b.env.sensor = &b.sensor;
    } else {
        linkd__v1__call110__init(&b.call);
        b.call.has_category = 1;
        b.call.category = LINKD__V1__CALL_CATEGORY__CALL_CATEGORY_DISPUTE;
        b.call.location = &b.loc;
        b.env.body_case = LINKD__V1__ENVELOPE__BODY_CALL;
        b.env.call = &b.call;
    }
    cr_assert_eq(ld_engine_open(&eng, &b.env, stream, &inc), 0);
    return inc;
}

static const ld_task *task_for(const ld_incident *inc, const char *dept)
{
    return ld_engine_task_of(inc, ld_rules_department(rules, dept));
}

TestSuite(upgrade, .init = setup, .fini = teardown);

Test(upgrade, three_sensors_in_one_building_upgrade_the_first_incident)
{
    ld_incident *a = smoke("1-0", "S1", "Bldg 12");
    ld_clock_advance(&clk, MIN);
    ld_incident *b = smoke("2-0", "S2", "Bldg 12");
    ld_clock_advance(&clk, MIN);
    cr_expect_eq(a->priority, LINKD__V1__PRIORITY__PRIORITY_URGENT);
    cr_expect_eq(upgraded_feed, 0);
    ld_incident *c = smoke("3-0", "S3", "Bldg 12");
    cr_expect_neq(b, a);
    cr_expect_neq(c, a);
    cr_expect_eq(upgraded_feed, 1);
    cr_expect_eq(eng.stats.upgrades, 1);
    cr_expect_eq(a->priority, LINKD__V1__PRIORITY__PRIORITY_CRITICAL, "the first is upgraded");
    cr_expect_eq(c->priority, LINKD__V1__PRIORITY__PRIORITY_URGENT, "the others are not");
    cr_expect_eq(a->ntasks, 2, "fire was there; medical is added");
    const ld_task *m = task_for(a, "medical");
    cr_assert_not_null(m);
    cr_expect_eq(m->dispatched_at, T0 + 2 * MIN, "dispatched at the upgrade");
    cr_expect_eq(ld_task_due(m, LD_LEG_ACK), T0 + 2 * MIN + 30 * SEC);
    cr_expect_str_eq(m->rule, "rules.yaml:48:5 smoke-one-building");
    cr_expect(ld_incident_upgraded_by(a, "smoke-one-building"));
    cr_expect_not(ld_incident_upgraded_by(c, "smoke-one-building"));
    cr_expect_str_eq(upgraded_actor, "rule smoke-one-building");
    cr_expect(strstr(upgraded_text, "priority urgent -> critical; adds medical") != NULL, "%s",
              upgraded_text);
    cr_expect(strstr(upgraded_text, "3 distinct sensors within 5m, same district, address: "
                                    "I1-0, I2-0, I3-0") != NULL, "%s", upgraded_text);
    /* The history entry carries the note: which rule, which events. */
    const ld_history *h = NULL;
    for (int i = 0; i < a->nhistory; i++)
        if (a->history[i].kind == LINKD__V1__FEED_KIND__FEED_KIND_INCIDENT_UPGRADED)
            h = &a->history[i];
    cr_assert_not_null(h);
    cr_expect(strstr(ld_notes_text(a, h->note), "rule smoke-one-building [rules.yaml:48:5]") !=
              NULL);
}

Test(upgrade, one_sensor_three_times_or_three_buildings_do_not)
{
    smoke("1-0", "S1", "Bldg 12");
    smoke("2-0", "S1", "Bldg 12");
    smoke("3-0", "S1", "Bldg 12");
    smoke("4-0", "S2", "Bldg 13");
    smoke("5-0", "S3", "Bldg 14");
    smoke("6-0", "S4", NULL); /* no address: no building to count in */
    cr_expect_eq(upgraded_feed, 0);
    cr_expect_eq(eng.stats.upgrades, 0);
}

Test(upgrade, alarms_spread_over_more_than_the_window_do_not)
{
    smoke("1-0", "S1", "Bldg 12");
    ld_clock_advance(&clk, 3 * MIN);
    smoke("2-0", "S2", "Bldg 12");
    ld_clock_advance(&clk, 2 * MIN + 1);
    smoke("3-0", "S3", "Bldg 12");
    cr_expect_eq(upgraded_feed, 0);
}

Test(upgrade, if_the_first_incident_closed_the_next_open_one_is_upgraded)
{
    ld_incident *a = smoke("1-0", "S1", "Bldg 12");
    ld_incident *b = smoke("2-0", "S2", "Bldg 12");
    char err[128];
    ld_actor who = {"supervisor", "false alarm"};
    cr_assert_eq(ld_action_close(&eng, a, "false alarm", &who, err, sizeof err), 0);
    smoke("3-0", "S3", "Bldg 12");
    cr_expect_eq(b->priority, LINKD__V1__PRIORITY__PRIORITY_CRITICAL);
    cr_expect(ld_incident_upgraded_by(b, "smoke-one-building"));
}

Test(upgrade, five_distinct_petitioners_are_a_group_petition_with_its_leader)
{
    static const char *const refs[] = {"R1", "R2", "R3", "R4", "R5"};
    ld_incident *first = NULL;
    for (int i = 0; i < 5; i++) {
        char stream[16];
        snprintf(stream, sizeof stream, "%d-0", i + 1);
        ld_incident *inc = petition(stream, refs[i], "city-hall");
        if (!first) first = inc;
        cr_expect_eq(upgraded_feed, i == 4);
        ld_clock_advance(&clk, 5 * HOUR);
    }
    const ld_task *t = task_for(first, "political_legal");
    cr_assert_not_null(t);
    cr_expect_str_eq(ld_task_leader(t), "Deputy Secretary Li Wei");
    cr_expect_str_eq(leader_seen, "Deputy Secretary Li Wei", "the dispatched task names him");
    cr_expect_eq(first->priority, LINKD__V1__PRIORITY__PRIORITY_URGENT);

    /* The leader is in the record and comes back after a restart. */
    uint8_t buf[16384];
    size_t n = ld_engine_record_pack(&eng, first, buf, sizeof buf);
    cr_assert_leq(n, sizeof buf);
    Linkd__V1__IncidentRecord *rec = linkd__v1__incident_record__unpack(NULL, n, buf);
    cr_assert_not_null(rec);
    ld_engine e2;
    ld_engine_hooks h = {0};
    cr_assert_eq(ld_engine_init(&e2, rules, &clk, &h), 0);
    cr_assert_eq(ld_engine_restore(&e2, rec), 0);
    linkd__v1__incident_record__free_unpacked(rec, NULL);
    const ld_incident *back = ld_engine_find(&e2, first->id);
    cr_assert_not_null(back);
    const ld_task *t2 = task_for(back, "political_legal");
    cr_assert_not_null(t2);
    cr_expect_str_eq(ld_task_leader(t2), "Deputy Secretary Li Wei");
    cr_expect(ld_incident_upgraded_by(back, "group-petition"), "the history says so after a restart");
    ldh_expect_task_counts(&e2);
    ld_engine_fini(&e2);
}

Test(upgrade, four_petitioners_or_one_five_times_are_not_a_group)
{
    for (int i = 0; i < 5; i++) {
        char stream[16];
        snprintf(stream, sizeof stream, "%d-0", i + 1);
        petition(stream, "R1", "city-hall");
    }
    petition("6-0", "R2", "city-hall");
    petition("7-0", "R3", "city-hall");
    petition("8-0", "R4", "city-hall");
    petition("9-0", "R5", "district-office"); /* another office */
    petition("10-0", NULL, "city-hall");      /* nobody named */
    cr_expect_eq(upgraded_feed, 0);
    ld_window_stats st;
    ld_windows_stats(eng.windows, &st);
    cr_expect_eq(st.unkeyed, 1);
    cr_expect_eq(st.keys, 2);
}

Test(upgrade, crowd_alarm_then_dispute_call_in_its_grid)
{
    ld_incident *alarm = in_grid("1-0", 1, "YX-0203");
    ld_clock_advance(&clk, 2 * MIN);
    ld_incident *other = in_grid("2-0", 0, "YX-0204");
    cr_expect_eq(upgraded_feed, 0);
    ld_clock_advance(&clk, 7 * MIN);
    ld_incident *call = in_grid("3-0", 0, "YX-0203");
    cr_expect_eq(upgraded_feed, 1);
    cr_expect_eq(alarm->priority, LINKD__V1__PRIORITY__PRIORITY_CRITICAL);
    cr_expect_not_null(task_for(alarm, "command"));
    cr_expect_not(ld_incident_upgraded_by(call, "crowd-then-dispute"));
    cr_expect_not(ld_incident_upgraded_by(other, "crowd-then-dispute"));
}

Test(upgrade, a_reload_keeps_the_windows_of_rules_it_keeps)
{
    smoke("1-0", "S1", "Bldg 12");
    smoke("2-0", "S2", "Bldg 12");
    ld_rules *again = NULL;
    ld_diag d;
    ld_diag_init(&d);
    cr_assert_eq(ld_rules_load(&again, LD_SOURCE_DIR "/tests/data/rules/correlate", &d), 0);
    ld_diag_fini(&d);
    ld_engine_set_rules(&eng, again);
    ld_rules_free(rules);
    rules = again;
    smoke("3-0", "S3", "Bldg 12");
    cr_expect_eq(upgraded_feed, 1);
}

/* ---- the checker --------------------------------------------------------------------- */

Test(correlate_check, every_correlation_mistake_with_its_position)
{
    ld_diag d;
    ld_rules *r = NULL;
    char line[1024];
    static const char *const want[] = {
        "rules.yaml:16:5: error: a correlation rule needs one of: 'count' (with 'match': N "
        "events within 'window') or 'sequence' ('first', then 'then' within 'window')",
        "rules.yaml:22:12: error: 'count' must be a whole number from 2 to 32, not '1'",
        "rules.yaml:29:15: error: 'distinct: sensor' counts a field of sensor events only; "
        "give 'kind: sensor' in 'match'",
        "rules.yaml:36:15: error: unknown distinct field 'petitoner'; did you mean "
        "'petitioner'? (known: event, caller, sensor, petitioner, source)",
        "rules.yaml:43:10: error: unknown window key 'building': a building is its district "
        "and address together, write by: [district, address]",
        "rules.yaml:49:10: error: 'office' is a field of petitions only; key by it only when "
        "every event the rule takes is a petition (kind: petition)",
        "rules.yaml:56:13: error: 'window' must be at most 30d: windows are kept in memory",
        "rules.yaml:62:10: error: 'category' cannot key a sequence: its steps are different "
        "events; key by place (district, grid, address)",
        "rules.yaml:67:7: error: sequence is missing 'then'",
        "rules.yaml:76:16: error: 'upgrade' changes nothing: give 'priority', 'dispatch' or "
        "both",
        "rules.yaml:76:25: error: 'leader' is named on the tasks the upgrade adds: give them "
        "under 'dispatch'",
        "rules.yaml:84:25: error: department 'politcal_legal' is not defined; did you mean "
        "'political_legal'? (known: political_legal, command)",
        "rules.yaml:85:5: error: correlation rule is missing 'window'",
        "rules.yaml:85:5: error: correlation rule name 'unknown-department' is already used at "
        "rules.yaml:77:5",
        "rules.yaml:89:5: error: unknown key 'windw' in correlation rule; did you mean "
        "'window'?",
    };
    const char *dir = LD_SOURCE_DIR "/tests/data/rules/correlate_errors";
    ld_diag_init(&d);
    cr_expect_eq(ld_rules_load(&r, dir, &d), LD_ERULES);
    cr_expect_eq(d.n, sizeof want / sizeof want[0]);
    for (size_t i = 0; i < d.n && i < sizeof want / sizeof want[0]; i++) {
        ld_diag_format(&d, i, line, sizeof line);
        cr_expect_str_eq(line + strlen(dir) + 1, want[i]);
    }
    ld_diag_fini(&d);
}

Test(correlate_check, the_default_rules_have_the_three_constructs)
{
    ld_diag d;
    ld_rules *r = NULL;
    ld_diag_init(&d);
    cr_assert_eq(ld_rules_load(&r, LD_SOURCE_DIR "/rules", &d), 0);
    ld_diag_fini(&d);
    cr_assert_eq(r->ncorrelations, 3);
    const ld_correlation *smoke_rule = &r->correlations[0], *group = &r->correlations[1];
    cr_expect_eq(smoke_rule->type, LD_CORR_COUNT);
    cr_expect_eq(smoke_rule->count, 3);
    cr_expect_eq(smoke_rule->distinct, LD_DISTINCT_SENSOR);
    cr_expect_eq(smoke_rule->by, (1u << LD_CK_DISTRICT) | (1u << LD_CK_ADDRESS));
    cr_expect_eq(smoke_rule->window_ms, 5 * MIN);
    cr_expect_eq(group->count, 5);
    cr_expect_eq(group->distinct, LD_DISTINCT_PETITIONER);
    cr_expect_eq(group->window_ms, 24 * HOUR);
    cr_expect_eq(group->upgrade.dispatch[0].dept, ld_rules_department(r, "political_legal"));
    cr_expect(group->leader[0] != '\0', "a named leader");
    cr_expect_eq(r->correlations[2].type, LD_CORR_SEQUENCE);
    ld_rules_free(r);
}

/* ---- rebuilt after a restart (ld_engine_rewind) ------------------------------------ */

static Linkd__V1__Envelope *smoke_env(ev_buf *b, const char *id, const char *sensor)
{
    base(b, id);
    linkd__v1__sensor_alarm__init(&b->sensor);
    b->sensor.sensor_id = (char *)sensor;
    b->sensor.has_kind = 1;
    b->sensor.kind = LINKD__V1__SENSOR_KIND__SENSOR_KIND_SMOKE;
    b->sensor.location = &b->loc;
    b->loc.district = "440106";
    b->loc.address = "Bldg 12";
    b->env.body_case = LINKD__V1__ENVELOPE__BODY_SENSOR;
    b->env.sensor = &b->sensor;
    return &b->env;
}

Test(upgrade, windows_rebuilt_from_the_stream_continue_a_count)
{
    ev_buf b;
    cr_expect_eq(ld_engine_rewind(&eng, smoke_env(&b, "e1", "S1"), "1795000000000-0", T0), 1);
    cr_expect_eq(ld_engine_rewind(&eng, smoke_env(&b, "e2", "S2"), "1795000060000-0", T0 + MIN),
                 1);
    cr_expect_eq(ld_engine_rewind(&eng, smoke_env(&b, "e2", "S2"), "1795000060000-0", T0 + MIN),
                 0, "read twice (a recovery that runs again): counted once");
    cr_expect_eq(upgraded_feed, 0, "rebuilding upgrades nothing");
    ld_clock_advance(&clk, 2 * MIN);
    ld_incident *inc = NULL;
    /* Recovery's replay of an event the windows were rebuilt from: not counted again. */
    ld_incident *replayed = NULL;
    cr_assert_eq(ld_engine_open(&eng, smoke_env(&b, "e2", "S3"), "1795000060000-0", &replayed),
                 0);
    cr_expect_eq(upgraded_feed, 0);
    inc = smoke("1795000120000-0", "S3", "Bldg 12");
    cr_expect_eq(upgraded_feed, 1, "the third sensor after the restart completes the count");
    cr_expect(ld_incident_upgraded_by(replayed, "smoke-one-building"),
              "the oldest open incident of the counted events is upgraded");
    cr_expect_not(ld_incident_upgraded_by(inc, "smoke-one-building"));
}

Test(upgrade, a_pattern_that_fired_before_the_restart_does_not_fire_again)
{
    ev_buf b;
    ld_engine_rewind(&eng, smoke_env(&b, "e1", "S1"), "1795000000000-0", T0);
    ld_engine_rewind(&eng, smoke_env(&b, "e2", "S2"), "1795000000000-1", T0);
    ld_engine_rewind(&eng, smoke_env(&b, "e3", "S3"), "1795000000000-2", T0);
    cr_expect_eq(upgraded_feed, 0);
    ld_clock_advance(&clk, MIN);
    smoke("1795000060000-0", "S4", "Bldg 12");
    smoke("1795000060000-1", "S5", "Bldg 12");
    smoke("1795000060000-2", "S6", "Bldg 12");
    cr_expect_eq(upgraded_feed, 0, "the key rests for a window after it fired");
}
