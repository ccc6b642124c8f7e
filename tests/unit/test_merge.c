/* Duplicate-call merging in the engine, on a manual clock. The rule set is
 * tests/data/rules/merge: fire calls within 300 m and 10 minutes of an open
 * fire incident join it. A merge is recorded, survives a restart (the
 * record keeps the merged event whole) and can be undone. */
#include <criterion/criterion.h>
#include <string.h>

#include "core/diag.h"
#include "core/err.h"
#include "engine/engine.h"
#include "rules/rules.h"
#include "harness.h"

#define SEC 1000ull
#define MIN (60 * SEC)
#define T0 1795000000000ull
#define LAT 23.1375
#define LON 113.3631
#define METRE_LAT (1.0 / 111195.0) /* degrees of latitude per metre */

static ld_rules *rules;
static ld_clock clk;
static ld_engine eng;
static int nmerged_feed, nunmerged_feed;

static void on_feed(void *ctx, const Linkd__V1__FeedEvent *fe)
{
    (void)ctx;
    nmerged_feed += fe->kind == LINKD__V1__FEED_KIND__FEED_KIND_INCIDENT_MERGED;
    nunmerged_feed += fe->kind == LINKD__V1__FEED_KIND__FEED_KIND_INCIDENT_UNMERGED;
}

static void setup(void)
{
    ld_diag d;
    ld_diag_init(&d);
    int rv = ld_rules_load(&rules, LD_SOURCE_DIR "/tests/data/rules/merge", &d);
    if (rv != 0) ld_diag_print(&d, stderr);
    ld_diag_fini(&d);
    cr_assert_eq(rv, 0);
    nmerged_feed = nunmerged_feed = 0;
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

#define FIRE LINKD__V1__CALL_CATEGORY__CALL_CATEGORY_FIRE
#define CRIME LINKD__V1__CALL_CATEGORY__CALL_CATEGORY_CRIME

/* Opens (or merges) a call <metres> north of the first one. */
static ld_incident *call(ld_engine *e, const char *stream_id, int category, double metres,
                         int status, int with_ll)
{
    Linkd__V1__Envelope ev;
    Linkd__V1__Call110 c;
    Linkd__V1__Location loc;
    ld_incident *inc = NULL;
    linkd__v1__envelope__init(&ev);
    linkd__v1__call110__init(&c);
    linkd__v1__location__init(&loc);
    ev.event_id = (char *)stream_id;
    ev.source_id = "cc";
    ev.has_status = 1;
    ev.status = (Linkd__V1__Status)status;
    ev.body_case = LINKD__V1__ENVELOPE__BODY_CALL;
    ev.call = &c;
    c.has_category = 1;
    c.category = (Linkd__V1__CallCategory)category;
    c.description = "smoke from the 5th floor";
    c.location = &loc;
    if (with_ll) {
        loc.has_lat = loc.has_lon = 1;
        loc.lat = LAT + metres * METRE_LAT;
        loc.lon = LON;
    }
    cr_assert_eq(ld_engine_open(e, &ev, stream_id, &inc), 0);
    return inc;
}

#define ACTUAL LINKD__V1__STATUS__STATUS_ACTUAL

TestSuite(merge, .init = setup, .fini = teardown);

Test(merge, a_duplicate_nearby_joins_the_open_incident)
{
    ld_incident *a = call(&eng, "1-0", FIRE, 0, ACTUAL, 1);
    ld_clock_advance(&clk, 2 * MIN);
    ld_incident *b = call(&eng, "2-0", FIRE, 120, ACTUAL, 1);
    cr_expect_eq(b, a, "joined the first incident");
    cr_expect_eq(a->nmerged, 1);
    cr_expect_eq(a->ntasks, 1, "no new task");
    cr_expect_eq(eng.open_incidents, 1);
    cr_expect_eq(eng.stats.merged, 1);
    cr_expect_eq(nmerged_feed, 1);
    cr_expect_eq(a->history[a->nhistory - 1].kind, LINKD__V1__FEED_KIND__FEED_KIND_INCIDENT_MERGED);
    cr_expect_str_eq(eng.last_opened, "2-0", "the write-behind mark covers the merged event");
}

Test(merge, far_late_other_category_or_status_open_their_own)
{
    ld_incident *a = call(&eng, "1-0", FIRE, 0, ACTUAL, 1);
    cr_expect_neq(call(&eng, "2-0", FIRE, 1000, ACTUAL, 1), a, "1 km away");
    cr_expect_neq(call(&eng, "3-0", CRIME, 50, ACTUAL, 1), a, "another category");
    cr_expect_neq(call(&eng, "4-0", FIRE, 50, LINKD__V1__STATUS__STATUS_EXERCISE, 1), a,
                  "an exercise never joins a real incident");
    cr_expect_neq(call(&eng, "5-0", FIRE, 0, ACTUAL, 0), a, "no coordinates");
    ld_clock_advance(&clk, 10 * MIN + SEC);
    ld_incident *late = call(&eng, "6-0", FIRE, 10, ACTUAL, 1);
    cr_expect_neq(late, a, "after the window");
    cr_expect_eq(a->nmerged, 0);
    cr_expect_eq(eng.stats.merged, 0);
}

Test(merge, undo_opens_the_event_on_its_own)
{
    ld_incident *a = call(&eng, "1-0", FIRE, 0, ACTUAL, 1);
    call(&eng, "2-0", FIRE, 80, ACTUAL, 1);
    ld_incident *own = NULL;
    char err[256] = "";
    cr_expect_eq(ld_engine_unmerge(&eng, a, "no-such-event", "sup", &own, err, sizeof err),
                 LD_ENOENT);
    cr_expect(strstr(err, "no merged event") != NULL, "%s", err);
    cr_assert_eq(ld_engine_unmerge(&eng, a, "2-0", "supervisor Li", &own, err, sizeof err), 0,
                 "%s", err);
    cr_assert_not_null(own);
    cr_expect_str_eq(own->id, "I2-0");
    cr_expect_neq(own, a);
    cr_expect_eq(own->ntasks, 1, "its own fire task");
    cr_expect_eq(a->nmerged, 0);
    cr_expect_eq(eng.open_incidents, 2);
    cr_expect_eq(nunmerged_feed, 1);
    cr_expect_eq(eng.stats.unmerged, 1);
}

Test(merge, merged_events_survive_a_restart_and_replay_adds_nothing)
{
    ld_incident *a = call(&eng, "1-0", FIRE, 0, ACTUAL, 1);
    call(&eng, "2-0", FIRE, 80, ACTUAL, 1);
    uint8_t buf[16384];
    size_t n = ld_engine_record_pack(&eng, a, buf, sizeof buf);
    cr_assert_leq(n, sizeof buf);
    Linkd__V1__IncidentRecord *rec = linkd__v1__incident_record__unpack(NULL, n, buf);
    cr_assert_not_null(rec);
    cr_assert_eq(rec->n_merged, 1);
    cr_expect_str_eq(rec->merged[0]->stream_id, "2-0");
    cr_expect_eq(rec->merged[0]->distance_m, 80);

    ld_engine e2;
    ld_engine_hooks h = {0};
    cr_assert_eq(ld_engine_init(&e2, rules, &clk, &h), 0);
    cr_assert_eq(ld_engine_restore(&e2, rec), 0);
    linkd__v1__incident_record__free_unpacked(rec, NULL);
    ld_incident *r = ld_engine_find(&e2, "I1-0");
    cr_assert_not_null(r);
    cr_expect_eq(r->nmerged, 1);
    /* Recovery replays the merged event: it finds it merged already. */
    cr_expect_eq(call(&e2, "2-0", FIRE, 80, ACTUAL, 1), r);
    cr_expect_eq(r->nmerged, 1);
    /* And a new duplicate still joins after the restart. */
    cr_expect_eq(call(&e2, "3-0", FIRE, 150, ACTUAL, 1), r);
    cr_expect_eq(r->nmerged, 2);
    ld_incident *own = NULL;
    char err[256];
    cr_expect_eq(ld_engine_unmerge(&e2, r, "2-0", NULL, &own, err, sizeof err), 0, "%s", err);
    ldh_expect_task_counts(&e2);
    ld_engine_fini(&e2);
}

Test(merge_errors, every_merge_rule_mistake_with_its_position)
{
    ld_diag d;
    ld_rules *r = NULL;
    char line[1024];
    static const char *const want[] = {
        "rules.yaml:9:26: error: unknown key 'categry' in match; did you mean 'category'?",
        "rules.yaml:10:15: error: 'distance' must be whole metres from 1 to 100000, not '1km'",
        ("rules.yaml:11:13: error: 'window' must be at most 1d: merging is for duplicate "
         "reports of one event"),
        "rules.yaml:12:5: error: merge rule is missing 'name'",
        "rules.yaml:12:5: error: merge rule is missing 'window'",
    };
    const char *dir = LD_SOURCE_DIR "/tests/data/rules/merge_errors";
    ld_diag_init(&d);
    cr_expect_eq(ld_rules_load(&r, dir, &d), LD_ERULES);
    cr_expect_eq(d.n, sizeof want / sizeof want[0]);
    for (size_t i = 0; i < d.n && i < sizeof want / sizeof want[0]; i++) {
        ld_diag_format(&d, i, line, sizeof line);
        cr_expect_str_eq(line + strlen(dir) + 1, want[i]);
    }
    ld_diag_fini(&d);
}
