/* A supervisor merging one incident into another and splitting an event
 * back off, in the engine, on a manual clock. Rule set tests/data/rules/merge:
 * fire calls go to fire, crime calls to police; fire calls within 300 m and
 * 10 minutes merge by themselves (the calls here are placed to avoid that
 * unless a test wants it). */
#include <criterion/criterion.h>
#include <string.h>

#include "core/diag.h"
#include "core/err.h"
#include "engine/actions.h"
#include "engine/correlate.h"
#include "engine/engine.h"
#include "rules/rules.h"
#include "harness.h"

#define SEC 1000ull
#define MIN (60 * SEC)
#define T0 1795000000000ull
#define LAT 23.1375
#define LON 113.3631
#define METRE_LAT (1.0 / 111195.0)
#define FIRE LINKD__V1__CALL_CATEGORY__CALL_CATEGORY_FIRE
#define CRIME LINKD__V1__CALL_CATEGORY__CALL_CATEGORY_CRIME
#define FK(k) LINKD__V1__FEED_KIND__FEED_KIND_##k

static ld_rules *rules;
static ld_clock clk;
static ld_engine eng;

/* What the feed and the observers saw. */
static struct {
    int kind;
    char incident[LD_INCIDENT_ID_LEN];
    char actor[64], peer[LD_INCIDENT_ID_LEN], text[320];
} seen[256];
static int nseen;

static void on_feed(void *ctx, const Linkd__V1__FeedEvent *fe)
{
    (void)ctx;
    if (nseen == 256) return;
    seen[nseen].kind = fe->kind;
    snprintf(seen[nseen].incident, sizeof seen[nseen].incident, "%s",
             fe->incident_id ? fe->incident_id : "");
    snprintf(seen[nseen].actor, sizeof seen[nseen].actor, "%s", fe->actor ? fe->actor : "");
    snprintf(seen[nseen].text, sizeof seen[nseen].text, "%s", fe->text ? fe->text : "");
    nseen++;
}

static void on_observe(void *ctx, const ld_observation *o)
{
    (void)ctx;
    /* The feed comes after the observation: the entry it fills is nseen. */
    if (nseen < 256)
        snprintf(seen[nseen].peer, sizeof seen[nseen].peer, "%s", o->peer ? o->peer : "");
}

/* find_seen returns the index of the first feed event of <kind> on <inc>, or -1. */
static int find_seen(int kind, const char *inc)
{
    for (int i = 0; i < nseen; i++)
        if (seen[i].kind == kind && strcmp(seen[i].incident, inc) == 0) return i;
    return -1;
}

static void setup(void)
{
    ld_diag d;
    ld_diag_init(&d);
    int rv = ld_rules_load(&rules, LD_SOURCE_DIR "/tests/data/rules/merge", &d);
    if (rv != 0) ld_diag_print(&d, stderr);
    ld_diag_fini(&d);
    cr_assert_eq(rv, 0);
    memset(seen, 0, sizeof seen);
    nseen = 0;
    ld_clock_init_manual(&clk, T0);
    ld_engine_hooks h = {.feed = on_feed, .observe = on_observe};
    cr_assert_eq(ld_engine_init(&eng, rules, &clk, &h), 0);
}

static void teardown(void)
{
    ldh_expect_task_counts(&eng);
    ld_engine_fini(&eng);
    ld_rules_free(rules);
}

/* envelope builds a call <metres> north of the first; <buf> keeps it packed. */
static size_t envelope(const char *id, int category, double metres, uint8_t *buf, size_t len,
                       Linkd__V1__Envelope *ev, Linkd__V1__Call110 *c, Linkd__V1__Location *loc)
{
    linkd__v1__envelope__init(ev);
    linkd__v1__call110__init(c);
    linkd__v1__location__init(loc);
    ev->event_id = (char *)id;
    ev->source_id = "cc";
    ev->has_status = 1;
    ev->status = LINKD__V1__STATUS__STATUS_ACTUAL;
    ev->body_case = LINKD__V1__ENVELOPE__BODY_CALL;
    ev->call = c;
    c->has_category = 1;
    c->category = (Linkd__V1__CallCategory)category;
    c->description = category == FIRE ? "smoke from the 5th floor" : "a fight outside the shop";
    c->location = loc;
    loc->has_lat = loc->has_lon = 1;
    loc->lat = LAT + metres * METRE_LAT;
    loc->lon = LON;
    size_t n = linkd__v1__envelope__get_packed_size(ev);
    cr_assert_leq(n, len);
    return linkd__v1__envelope__pack(ev, buf);
}

static ld_incident *call_as(const char *stream_id, int category, double metres, int status)
{
    Linkd__V1__Envelope ev;
    Linkd__V1__Call110 c;
    Linkd__V1__Location loc;
    uint8_t buf[512];
    ld_incident *inc = NULL;
    envelope(stream_id, category, metres, buf, sizeof buf, &ev, &c, &loc);
    ev.status = (Linkd__V1__Status)status;
    cr_assert_eq(ld_engine_open(&eng, &ev, stream_id, &inc), 0);
    return inc;
}

static ld_incident *call(const char *stream_id, int category, double metres)
{
    return call_as(stream_id, category, metres, LINKD__V1__STATUS__STATUS_ACTUAL);
}

static const ld_actor sup = {"Supervisor Wang", "the same fight, reported by the shop owner"};

static int delivered_to(const char *terminal, const char *task_id)
{
    ld_delivery_item items[16];
    int term = ld_rules_terminal(rules, terminal);
    size_t n = ld_engine_collect(&eng, term, 0, items, 16);
    char id[LD_TASK_ID_LEN];
    Linkd__V1__Task pb;
    for (size_t i = 0; i < n; i++) {
        ld_engine_task_pb(&eng, items[i].task, &pb, NULL, id);
        if (strcmp(id, task_id) == 0) return 1;
    }
    return 0;
}

TestSuite(supervisor_merge, .init = setup, .fini = teardown);

Test(supervisor_merge, a_task_the_incident_lacks_moves_and_the_other_closes)
{
    ld_incident *a = call("1-0", FIRE, 0);
    ld_clock_advance(&clk, MIN);
    ld_incident *b = call("2-0", CRIME, 40);
    cr_assert_neq(a, b);
    char err[320] = "";
    ld_clock_advance(&clk, MIN);
    cr_assert_eq(ld_action_merge(&eng, a, b, &sup, err, sizeof err), 0, "%s", err);

    cr_expect_eq(eng.open_incidents, 1, "one emergency, one incident");
    cr_expect_null(ld_engine_find(&eng, "I2-0"), "the merged incident is closed");
    int police = ld_rules_department(rules, "police");
    ld_task *moved = ld_engine_task_of(a, police);
    cr_assert_not_null(moved, "the police task moved to the incident it joined");
    cr_expect_eq(moved->inc, a);
    cr_expect_eq(moved->dispatched_at, T0 + MIN, "its clock did not restart");
    cr_expect_eq(ld_task_due(moved, LD_LEG_ACK), T0 + MIN + 30 * SEC, "its deadlines stand");
    cr_expect(delivered_to("police-duty", "I1-0/police"),
              "the police terminal gets the task under its new id");
    cr_expect_str_eq(ld_task_disposition(b->tasks[0]), "merged: moved to I1-0/police");

    cr_assert_eq(a->nmerged, 1);
    cr_expect_str_eq(a->merged->incident_id, "I2-0");
    cr_expect_str_eq(a->merged->stream_id, "2-0");
    cr_expect_str_eq(a->merged->event_id, "2-0");
    cr_expect_eq(a->merged->distance_m, 40);

    int m = find_seen(FK(INCIDENT_MERGED), "I1-0"), c = find_seen(FK(INCIDENT_CLOSED), "I2-0");
    cr_assert_geq(m, 0, "INCIDENT_MERGED on the incident that stays");
    cr_expect_str_eq(seen[m].actor, "Supervisor Wang");
    cr_expect_str_eq(seen[m].peer, "I2-0");
    cr_expect(strstr(seen[m].text, "1 tasks moved, 0 closed as duplicates") != NULL, "%s",
              seen[m].text);
    cr_assert_geq(c, 0, "INCIDENT_CLOSED on the merged one");
    cr_expect_str_eq(seen[c].actor, "Supervisor Wang");
    cr_expect_str_eq(seen[c].peer, "I1-0");
    cr_expect(strstr(seen[c].text, "I2-0 merged into I1-0") != NULL, "%s", seen[c].text);

    /* Both incidents carry the note: who, what and why. */
    const char *want = "Supervisor Wang: merged I2-0 into I1-0: the same fight, reported by "
                       "the shop owner";
    cr_expect_str_eq(ld_notes_text(a, a->history[a->nhistory - 1].note), want);
    cr_expect_str_eq(ld_notes_text(b, b->history[b->nhistory - 1].note), want);
}

Test(supervisor_merge, a_task_for_a_department_it_has_closes_as_a_duplicate)
{
    ld_incident *a = call("1-0", FIRE, 0);
    ld_incident *b = call("2-0", FIRE, 2000); /* too far for the merge rule */
    cr_assert_neq(a, b);
    char err[320] = "";
    cr_assert_eq(ld_action_merge(&eng, a, b, &sup, err, sizeof err), 0, "%s", err);
    cr_expect_eq(a->ntasks, 1, "still one fire task");
    cr_expect_str_eq(ld_task_disposition(b->tasks[0]), "duplicate: merged into I1-0");
    cr_expect_eq(b->tasks[0]->state, LINKD__V1__TASK_STATE__TASK_STATE_RESOLVED);
    cr_expect(!delivered_to("fire-duty", "I2-0/fire"), "the duplicate task is withdrawn");
    int m = find_seen(FK(INCIDENT_MERGED), "I1-0");
    cr_assert_geq(m, 0);
    cr_expect(strstr(seen[m].text, "0 tasks moved, 1 closed as duplicates") != NULL, "%s",
              seen[m].text);
}

Test(supervisor_merge, the_merged_incidents_duplicates_come_along)
{
    ld_incident *a = call("1-0", CRIME, 0);
    ld_incident *b = call("2-0", FIRE, 0);
    cr_assert_eq(call("3-0", FIRE, 50), b, "a duplicate call joins b by the rule");
    cr_assert_eq(b->nmerged, 1);
    char err[320] = "";
    cr_assert_eq(ld_action_merge(&eng, a, b, &sup, err, sizeof err), 0, "%s", err);
    cr_assert_eq(a->nmerged, 2, "b's duplicate and b's own event");
    cr_expect_str_eq(a->merged->stream_id, "3-0");
    cr_expect_str_eq(a->merged->next->incident_id, "I2-0");
    cr_expect_eq(b->nmerged, 0);
}

Test(supervisor_merge, what_no_longer_applies_is_refused_and_changes_nothing)
{
    ld_incident *a = call("1-0", FIRE, 0);
    ld_incident *b = call("2-0", CRIME, 0);
    ld_incident *c = call("3-0", CRIME, 5000);
    char err[320] = "";
    cr_expect_eq(ld_action_merge(&eng, a, a, &sup, err, sizeof err), LD_ESTATE);
    cr_expect_str_eq(err, "incident I1-0 cannot be merged into itself");
    ld_actor nobody = {"", "why"};
    cr_expect_eq(ld_action_merge(&eng, a, b, &nobody, err, sizeof err), LD_EINVAL);
    cr_expect(strncmp(err, "by:", 3) == 0, "%s", err);
    ld_actor noreason = {"Wang", NULL};
    cr_expect_eq(ld_action_merge(&eng, a, b, &noreason, err, sizeof err), LD_EINVAL);
    cr_expect(strncmp(err, "reason:", 7) == 0, "%s", err);
    ld_incident *drill = call_as("4-0", CRIME, 9000, LINKD__V1__STATUS__STATUS_EXERCISE);
    cr_expect_eq(ld_action_merge(&eng, a, drill, &sup, err, sizeof err), LD_ESTATE);
    cr_expect_str_eq(err, "incident I4-0 is exercise and I1-0 is actual: only incidents of one "
                          "status merge");
    cr_expect_eq(a->ntasks, 1);
    cr_expect_eq(a->notes, NULL, "no note for an action that did not happen");
    cr_expect_eq(eng.open_incidents, 4);

    cr_assert_eq(ld_action_merge(&eng, a, b, &sup, err, sizeof err), 0, "%s", err);
    /* b is closed now (still in memory until its record is written). */
    cr_expect_eq(ld_action_merge(&eng, a, b, &sup, err, sizeof err), LD_ESTATE);
    cr_expect_str_eq(err, "incident I2-0 is already closed");
    cr_expect_eq(ld_action_merge(&eng, b, c, &sup, err, sizeof err), LD_ESTATE);
    cr_expect_eq(a->ntasks, 2);
    cr_expect_eq(a->nmerged, 1);
}

Test(supervisor_merge, split_reopens_a_merged_incident_with_its_own_plan)
{
    ld_incident *a = call("1-0", FIRE, 0);
    call("2-0", CRIME, 40);
    char err[320] = "";
    cr_assert_eq(ld_action_merge(&eng, a, ld_engine_find(&eng, "I2-0"), &sup, err, sizeof err), 0);
    ld_clock_advance(&clk, 5 * MIN);
    nseen = 0;

    /* The merged incident's event is in ld:events, not in memory. */
    cr_expect_str_eq(ld_action_split_source(a, "2-0"), "2-0");
    cr_expect_null(ld_action_split_source(a, "9-0"));
    ld_incident *own = NULL;
    ld_actor li = {"Supervisor Li", "two fights after all"};
    cr_expect_eq(ld_action_split(&eng, a, "2-0", NULL, 0, &li, &own, err, sizeof err),
                 LD_EUNAVAIL);
    cr_expect_eq(a->nmerged, 1, "nothing changed");

    Linkd__V1__Envelope ev;
    Linkd__V1__Call110 c;
    Linkd__V1__Location loc;
    uint8_t buf[512];
    size_t n = envelope("2-0", CRIME, 40, buf, sizeof buf, &ev, &c, &loc);
    cr_assert_eq(ld_action_split(&eng, a, "2-0", buf, n, &li, &own, err, sizeof err), 0, "%s",
                 err);
    cr_assert_not_null(own);
    cr_expect_str_eq(own->id, "I2-0.2", "a new id: I2-0 is the closed incident's");
    cr_expect_eq(own->opened_at, T0 + 5 * MIN, "opened now");
    cr_assert_eq(own->ntasks, 1);
    cr_expect_eq(own->tasks[0]->dept, ld_rules_department(rules, "police"), "the rules' plan");
    cr_expect_eq(ld_task_due(own->tasks[0], LD_LEG_ACK), T0 + 5 * MIN + 30 * SEC);
    cr_expect_eq(a->nmerged, 0);
    cr_expect_eq(eng.open_incidents, 2);
    /* The police task that came over with the merge goes back: the new
     * incident has its own, so the old incident's copy is withdrawn. */
    ld_task *back = ld_engine_task_of(a, ld_rules_department(rules, "police"));
    cr_assert_not_null(back);
    cr_expect_eq(back->state, LINKD__V1__TASK_STATE__TASK_STATE_RESOLVED);
    cr_expect_str_eq(ld_task_disposition(back), "split off: I2-0.2/police holds it");
    cr_expect_eq(a->open_tasks, 1, "the fire task stays");
    cr_expect(!delivered_to("police-duty", "I1-0/police"), "the withdrawn task is not sent");
    cr_expect(delivered_to("police-duty", "I2-0.2/police"), "the new incident's task is");

    int u = find_seen(FK(INCIDENT_UNMERGED), "I1-0"), o = find_seen(FK(INCIDENT_OPENED), "I2-0.2");
    cr_assert_geq(u, 0);
    cr_expect_str_eq(seen[u].actor, "Supervisor Li");
    cr_expect_str_eq(seen[u].peer, "I2-0.2");
    cr_assert_geq(o, 0);
    cr_expect_str_eq(seen[o].peer, "I1-0");
    const char *want = "Supervisor Li: split event 2-0 off I1-0: two fights after all";
    cr_expect_str_eq(ld_notes_text(a, a->history[a->nhistory - 1].note), want);
    cr_expect_str_eq(ld_notes_text(own, own->history[0].note), want, "the new one has it too");

    /* It can be merged and split again: the next generation. Its open police
     * task takes the place of the withdrawn one: open work is not closed
     * because finished work exists. */
    cr_assert_eq(ld_action_merge(&eng, a, own, &sup, err, sizeof err), 0, "%s", err);
    cr_expect_str_eq(a->merged->incident_id, "I2-0.2");
    cr_expect_eq(a->ntasks, 2);
    cr_expect_eq(a->open_tasks, 2);
    back = ld_engine_task_of(a, ld_rules_department(rules, "police"));
    cr_expect_neq(back->state, LINKD__V1__TASK_STATE__TASK_STATE_RESOLVED);
    cr_expect_eq(back->dispatched_at, T0 + 5 * MIN, "the split-off incident's task, moved");
    cr_assert_eq(ld_action_split(&eng, a, "2-0", buf, n, &li, &own, err, sizeof err), 0, "%s",
                 err);
    cr_expect_str_eq(own->id, "I2-0.3");
    cr_expect_eq(a->open_tasks, 1);
}

Test(supervisor_merge, splitting_an_event_that_is_not_there_is_refused)
{
    ld_incident *a = call("1-0", FIRE, 0);
    ld_incident *own = NULL;
    char err[320] = "";
    ld_actor li = {"Supervisor Li", "wrong merge"};
    cr_expect_eq(ld_action_split(&eng, a, "7-0", NULL, 0, &li, &own, err, sizeof err), LD_ESTATE);
    cr_expect_str_eq(err, "incident I1-0 has no merged event '7-0' (now)");
    cr_expect_eq(ld_action_split(&eng, a, "", NULL, 0, &li, &own, err, sizeof err), LD_EINVAL);
    cr_expect(strncmp(err, "event_id:", 9) == 0, "%s", err);
    cr_expect_eq(a->notes, NULL);
    /* A duplicate the rule merged is kept whole: split at once. */
    cr_assert_eq(call("2-0", FIRE, 30), a);
    cr_expect_null(ld_action_split_source(a, "2-0"));
    cr_assert_eq(ld_action_split(&eng, a, "2-0", NULL, 0, &li, &own, err, sizeof err), 0, "%s",
                 err);
    cr_expect_str_eq(own->id, "I2-0");
}

Test(supervisor_merge, the_merge_survives_a_restart_and_can_be_split_after_it)
{
    ld_incident *a = call("1-0", FIRE, 0);
    ld_incident *b = call("2-0", CRIME, 40);
    char err[320] = "";
    cr_assert_eq(ld_action_merge(&eng, a, b, &sup, err, sizeof err), 0, "%s", err);
    uint8_t rec_a[16384], rec_b[16384];
    size_t na = ld_engine_record_pack(&eng, a, rec_a, sizeof rec_a);
    size_t nb = ld_engine_record_pack(&eng, b, rec_b, sizeof rec_b);
    cr_assert_leq(na, sizeof rec_a);
    cr_assert_leq(nb, sizeof rec_b);

    ld_engine e2;
    ld_engine_hooks h = {0};
    cr_assert_eq(ld_engine_init(&e2, rules, &clk, &h), 0);
    Linkd__V1__IncidentRecord *ra = linkd__v1__incident_record__unpack(NULL, na, rec_a);
    Linkd__V1__IncidentRecord *rb = linkd__v1__incident_record__unpack(NULL, nb, rec_b);
    cr_assert(ra && rb);
    cr_expect_eq(ld_engine_restore(&e2, rb), LD_ESTATE, "the merged incident stays closed");
    cr_assert_eq(ld_engine_restore(&e2, ra), 0);
    linkd__v1__incident_record__free_unpacked(ra, NULL);
    linkd__v1__incident_record__free_unpacked(rb, NULL);
    ld_incident *r = ld_engine_find(&e2, "I1-0");
    cr_assert_not_null(r);
    cr_expect_eq(r->ntasks, 2);
    cr_expect_not_null(ld_engine_task_of(r, ld_rules_department(rules, "police")));
    cr_assert_eq(r->nmerged, 1);
    cr_expect_str_eq(r->merged->incident_id, "I2-0");
    cr_expect_str_eq(ld_notes_text(r, r->history[r->nhistory - 1].note),
                     "Supervisor Wang: merged I2-0 into I1-0: the same fight, reported by the "
                     "shop owner");

    Linkd__V1__Envelope ev;
    Linkd__V1__Call110 c;
    Linkd__V1__Location loc;
    uint8_t buf[512];
    size_t n = envelope("2-0", CRIME, 40, buf, sizeof buf, &ev, &c, &loc);
    ld_incident *own = NULL;
    ld_actor li = {"Supervisor Li", "two fights after all"};
    cr_expect_eq(ld_action_split(&e2, r, "2-0", buf, n, &li, &own, err, sizeof err), 0, "%s", err);
    cr_expect_str_eq(own->id, "I2-0.2");
    ld_task *back = ld_engine_task_of(r, ld_rules_department(rules, "police"));
    cr_expect_eq(back->state, LINKD__V1__TASK_STATE__TASK_STATE_RESOLVED,
                 "the record remembers which task came with the merge");
    ldh_expect_task_counts(&e2);
    ld_engine_fini(&e2);
}

/* An incident keeps every supervisor's note, in order, up to LD_NOTES_MAX
 * (the notes grow as they come: most incidents have none); the action after
 * that is refused, changes nothing, and says why. */
Test(supervisor_merge, notes_are_kept_in_order_up_to_their_limit)
{
    ld_incident *inc = call("1-0", CRIME, 0);
    ld_task *t = inc->tasks[0];
    char err[160], why[LD_NOTES_MAX + 1][48];
    for (int i = 0; i <= LD_NOTES_MAX; i++) {
        snprintf(why[i], sizeof why[i], "more time, request %d", i + 1);
        ld_actor a = {"Supervisor Wang", why[i]};
        uint64_t due = ld_task_due(t, LD_LEG_RESOLVE);
        int rv = ld_action_extend(&eng, t, LD_LEG_RESOLVE, MIN, &a, err, sizeof err);
        if (i < LD_NOTES_MAX) {
            cr_assert_eq(rv, 0, "action %d: %s", i + 1, err);
            cr_assert_eq(ld_task_due(t, LD_LEG_RESOLVE), due + MIN);
        } else {
            cr_assert_eq(rv, LD_ESTATE, "one action too many");
            cr_assert(strstr(err, "already has 32 supervisor actions"), "%s", err);
            cr_assert_eq(ld_task_due(t, LD_LEG_RESOLVE), due, "the refused one changed nothing");
        }
    }
    for (int i = 0; i < LD_NOTES_MAX; i++) {
        const char *note = ld_notes_text(inc, (unsigned)i + 1);
        cr_assert_not_null(note, "note %d", i + 1);
        cr_assert(strstr(note, why[i]), "note %d reads %s", i + 1, note);
    }
    cr_assert_null(ld_notes_text(inc, LD_NOTES_MAX + 1));
    cr_assert_eq(inc->history[inc->nhistory - 1].note, LD_NOTES_MAX,
                 "the latest history entry cites the latest note");
}
