/* Escalation ladders on the manual clock: reminders before a deadline,
 * multi-acknowledgement (sign_off), and open tasks keeping their plan
 * across a reload. Rules: tests/data/ladder (and ladder-reload, the same
 * after an edit); their figures are the expectations here. */
#include <criterion/criterion.h>
#include <string.h>

#include "core/diag.h"
#include "engine/engine.h"
#include "rules/rules.h"
#include "harness.h"

#define SEC 1000ull
#define MIN (60 * SEC)
#define T0 1795000000000ull

typedef struct feed_log {
    int kinds[256];
    int legs[256];
    char text[256][200];
    int n;
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
    f->legs[f->n] = fe->has_leg ? (int)fe->leg : 0;
    snprintf(f->text[f->n], sizeof f->text[0], "%s", fe->text ? fe->text : "");
    f->n++;
}

static ld_rules *load(const char *dir)
{
    ld_rules *r = NULL;
    ld_diag d;
    ld_diag_init(&d);
    int rv = ld_rules_load(&r, dir, &d);
    if (rv != 0) ld_diag_print(&d, stderr);
    ld_diag_fini(&d);
    cr_assert_eq(rv, 0, "rules %s must load", dir);
    return r;
}

static void setup(void)
{
    rules = load(LD_SOURCE_DIR "/tests/data/ladder");
    memset(&fl, 0, sizeof fl);
    ld_clock_init_manual(&clk, T0);
    ld_engine_hooks h = {.ctx = &fl, .feed = on_feed};
    cr_assert_eq(ld_engine_init(&eng, rules, &clk, &h), 0);
    eng.resend_after_ms = 3600 * SEC; /* a receipted task is not resent during a test */
}

static void teardown(void)
{
    ldh_expect_task_counts(&eng);
    ld_engine_fini(&eng);
    ld_rules_free(rules);
}

TestSuite(ladder, .init = setup, .fini = teardown);

static int term(const char *id)
{
    int t = ld_rules_terminal(rules, id);
    cr_assert_geq(t, 0, "terminal %s must exist", id);
    return t;
}

static ld_incident *open_call(const char *stream_id, int category)
{
    Linkd__V1__Envelope ev;
    Linkd__V1__Call110 call;
    linkd__v1__envelope__init(&ev);
    linkd__v1__call110__init(&call);
    ev.event_id = (char *)stream_id;
    ev.source_id = "cc-1";
    ev.has_status = 1;
    ev.status = LINKD__V1__STATUS__STATUS_ACTUAL;
    ev.body_case = LINKD__V1__ENVELOPE__BODY_CALL;
    ev.call = &call;
    call.has_category = 1;
    call.category = (Linkd__V1__CallCategory)category;
    ld_incident *inc = NULL;
    cr_assert_eq(ld_engine_open(&eng, &ev, stream_id, &inc), 0);
    return inc;
}

static ld_incident *open_fire(const char *id)
{
    return open_call(id, LINKD__V1__CALL_CATEGORY__CALL_CATEGORY_FIRE);
}

static ld_incident *open_explosion(const char *id)
{
    return open_call(id, LINKD__V1__CALL_CATEGORY__CALL_CATEGORY_EXPLOSION);
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

static int ack(const char *terminal, ld_task *t)
{
    return update(terminal, t, LINKD__V1__UPDATE_KIND__UPDATE_KIND_ACKNOWLEDGED, NULL);
}

static int count_feed(int kind)
{
    int n = 0;
    for (int i = 0; i < fl.n; i++) n += fl.kinds[i] == kind;
    return n;
}

static const char *last_text(int kind)
{
    for (int i = fl.n - 1; i >= 0; i--)
        if (fl.kinds[i] == kind) return fl.text[i];
    return "";
}

static void advance(uint64_t ms)
{
    ld_clock_advance(&clk, ms);
    ld_engine_run_due(&eng);
}

/* collect_one takes what <terminal> gets on its next poll (exactly one task)
 * and receipts it, as a terminal does. */
static ld_delivery_item collect_one(const char *terminal)
{
    ld_delivery_item items[8];
    size_t n = ld_engine_collect(&eng, term(terminal), 0, items, 8);
    cr_assert_eq(n, 1, "%s gets one task, got %zu", terminal, n);
    char id[LD_TASK_ID_LEN];
    snprintf(id, sizeof id, "%s/%s", items[0].task->inc->id,
             rules->departments[items[0].task->dept].id);
    ld_engine_receipt(&eng, term(terminal), id, 0);
    return items[0];
}

static size_t pending(const char *terminal)
{
    ld_delivery_item items[8];
    return ld_engine_collect(&eng, term(terminal), 0, items, 8);
}

#define REMINDED LINKD__V1__FEED_KIND__FEED_KIND_TASK_REMINDED
#define SIGNED LINKD__V1__FEED_KIND__FEED_KIND_INCIDENT_SIGNED_OFF

Test(ladder, holder_is_reminded_at_half_and_four_fifths_of_the_acknowledge_wait)
{
    ld_incident *inc = open_fire("1-0");
    ld_task *t = task_of(inc, "fire");
    ld_delivery_item first = collect_one("fire-duty");
    cr_assert_eq(first.reminder_leg, -1, "the first delivery is the task, not a reminder");
    cr_assert_not(first.redelivery);

    advance(30 * SEC - 1);
    cr_assert_eq(count_feed(REMINDED), 0, "no reminder before 50%% of the minute");
    cr_assert_eq(pending("fire-duty"), 0);
    advance(1);
    cr_assert_eq(count_feed(REMINDED), 1);
    ld_delivery_item r1 = collect_one("fire-duty");
    cr_assert_eq(r1.task, t);
    cr_assert_eq(r1.reminder_leg, LD_LEG_ACK);
    cr_assert_eq(r1.reminder_pct, 50);
    cr_assert(r1.redelivery, "a reminder is marked as a task the terminal holds");
    cr_assert(strstr(last_text(REMINDED), "reminder to fire-duty: acknowledge due in 30s"),
              "feed says whom and what: %s", last_text(REMINDED));
    cr_assert_eq(t->level, 0, "a reminder does not move the task");

    advance(18 * SEC); /* 48 s: 80 % */
    cr_assert_eq(count_feed(REMINDED), 2);
    cr_assert_eq(collect_one("fire-duty").reminder_pct, 80);

    /* 60 s: missed; the deputy gets it with a 2-minute wait and is reminded
     * within it as the duty officer was: at 1 min and at 1 min 36 s. */
    advance(12 * SEC);
    cr_assert_eq(t->level, 1);
    cr_assert_eq(collect_one("fire-deputy").reminder_leg, -1, "the escalation itself");
    advance(60 * SEC - 1);
    cr_assert_eq(count_feed(REMINDED), 2);
    advance(1);
    cr_assert_eq(count_feed(REMINDED), 3);
    ld_delivery_item r3 = collect_one("fire-deputy");
    cr_assert_eq(r3.reminder_pct, 50);
    cr_assert_eq(pending("fire-duty"), 0, "the former holder is not reminded");
    cr_assert_eq(eng.stats.reminders, 3);
    int hist = 0;
    for (int i = 0; i < inc->nhistory; i++) hist += inc->history[i].kind == REMINDED;
    cr_assert_eq(hist, 3, "every reminder is in the incident's history");
}

Test(ladder, acknowledged_task_gets_no_acknowledge_reminder_but_its_resolve_one)
{
    ld_incident *inc = open_fire("2-0");
    ld_task *t = task_of(inc, "fire");
    collect_one("fire-duty");
    advance(10 * SEC);
    cr_assert_eq(ack("fire-duty", t), LINKD__V1__RESULT__RESULT_ACCEPTED);
    cr_assert_eq(update("fire-duty", t, LINKD__V1__UPDATE_KIND__UPDATE_KIND_ON_SCENE, NULL),
                 LINKD__V1__RESULT__RESULT_ACCEPTED);
    advance(50 * SEC);
    cr_assert_eq(count_feed(REMINDED), 0, "acknowledged: nothing to remind of");
    /* The resolve wait (2 h) is reminded at 90 %: 1 h 48 min. */
    advance(108 * MIN - 60 * SEC - 1);
    cr_assert_eq(count_feed(REMINDED), 0);
    advance(1);
    cr_assert_eq(count_feed(REMINDED), 1);
    ld_delivery_item r = collect_one("fire-duty");
    cr_assert_eq(r.reminder_leg, LD_LEG_RESOLVE);
    cr_assert_eq(r.reminder_pct, 90);
    /* Received: an acknowledged task leaves the delivery list again. */
    char id[LD_TASK_ID_LEN];
    snprintf(id, sizeof id, "%s/fire", inc->id);
    ld_engine_receipt(&eng, term("fire-duty"), id, 0);
    cr_assert_eq(pending("fire-duty"), 0);
}

Test(ladder, dispatch_entry_reminders_replace_the_departments)
{
    ld_incident *inc = open_explosion("3-0");
    /* emergency_mgmt: 50% of its acknowledge wait; its 5m budget is capped
     * at the sign-off's 2m, so the reminder comes at 1 min. */
    ld_task *em = task_of(inc, "emergency_mgmt"), *police = task_of(inc, "police");
    cr_assert_eq(ld_task_due(em, LD_LEG_ACK), T0 + 2 * MIN, "sign_off within 2m caps 5m");
    cr_assert_eq(ld_task_due(police, LD_LEG_ACK), T0 + MIN, "a shorter budget stays");
    cr_assert_eq(ld_task_reminders(em, LD_LEG_ACK), 1);
    cr_assert_eq(ld_task_reminders(police, LD_LEG_ACK), 0, "police has no reminders");
    cr_assert_eq(ld_task_reminders(task_of(inc, "fire"), LD_LEG_ACK), 2, "fire: its department's");
}

Test(ladder, sign_off_counts_only_when_every_listed_department_acknowledged)
{
    ld_incident *inc = open_explosion("4-0");
    ld_task *fire = task_of(inc, "fire"), *police = task_of(inc, "police"),
            *em = task_of(inc, "emergency_mgmt");
    unsigned all = (1u << fire->idx) | (1u << police->idx) | (1u << em->idx);
    cr_assert_eq(ld_incident_sign_missing(inc), all, "nobody has signed yet");
    cr_assert_eq(ack("fire-duty", fire), LINKD__V1__RESULT__RESULT_ACCEPTED);
    cr_assert_eq(ack("police-duty", police), LINKD__V1__RESULT__RESULT_ACCEPTED);
    cr_assert_eq(ld_incident_sign_missing(inc), 1u << em->idx, "emergency_mgmt is missing");
    cr_assert_eq(count_feed(SIGNED), 0);
    cr_assert_eq(inc->signed_at, 0);
    advance(20 * SEC);
    cr_assert_eq(ack("em-duty", em), LINKD__V1__RESULT__RESULT_ACCEPTED);
    cr_assert_eq(ld_incident_sign_missing(inc), 0);
    cr_assert_eq(count_feed(SIGNED), 1);
    cr_assert_eq(inc->signed_at, T0 + 20 * SEC);
    cr_assert(strstr(last_text(SIGNED), "fire, police, emergency_mgmt"), "%s",
              last_text(SIGNED));
    cr_assert_eq(eng.stats.signed_off, 1);
    /* Police withdraws: it is missing again, and the sign-off is undone. */
    cr_assert_eq(update("police-duty", police, LINKD__V1__UPDATE_KIND__UPDATE_KIND_REJECTED,
                        "wrong district"), LINKD__V1__RESULT__RESULT_ACCEPTED);
    cr_assert_eq(ld_incident_sign_missing(inc), 1u << police->idx);
    cr_assert_eq(inc->signed_at, 0);
    cr_assert_eq(ack("police-deputy", police), LINKD__V1__RESULT__RESULT_ACCEPTED);
    cr_assert_eq(count_feed(SIGNED), 2, "signed off again once police is back");
}

Test(ladder, missing_signatures_escalate_when_the_sign_off_wait_ends)
{
    ld_incident *inc = open_explosion("5-0");
    ld_task *fire = task_of(inc, "fire"), *police = task_of(inc, "police"),
            *em = task_of(inc, "emergency_mgmt");
    cr_assert_eq(ack("fire-duty", fire), LINKD__V1__RESULT__RESULT_ACCEPTED);
    cr_assert_eq(ack("police-duty", police), LINKD__V1__RESULT__RESULT_ACCEPTED);
    advance(MIN);
    cr_assert_eq(count_feed(REMINDED), 1, "emergency_mgmt reminded at half of 2 min");
    cr_assert_eq(collect_one("em-duty").reminder_leg, LD_LEG_ACK);
    advance(MIN - 1);
    cr_assert_eq(em->level, 0);
    advance(1);
    cr_assert_eq(em->level, 1, "the missing department climbs its chain at 2 min");
    cr_assert_eq(em->terminal, term("em-deputy"));
    cr_assert_eq(fire->level, 0, "those who signed stay where they are");
    cr_assert_eq(police->level, 0);
    cr_assert_eq(ld_incident_sign_missing(inc), 1u << em->idx);
}

Test(ladder, open_tasks_keep_chain_deadlines_and_reminders_across_a_reload)
{
    ld_incident *old = open_fire("6-0");
    ld_task *t = task_of(old, "fire");
    ld_rules *next = load(LD_SOURCE_DIR "/tests/data/ladder-reload");
    ld_engine_set_rules(&eng, next);
    ld_rules_free(rules); /* as the daemon does: nothing may point into it now */
    rules = next;

    ld_incident *fresh = open_fire("6-1");
    ld_task *n = task_of(fresh, "fire");
    cr_assert_eq(ld_task_due(t, LD_LEG_ACK), T0 + MIN, "the open task keeps its deadline");
    cr_assert_eq(ld_task_due(n, LD_LEG_ACK), T0 + 4 * MIN, "a new task takes the new budget");
    cr_assert_eq(ld_task_reminders(n, LD_LEG_ACK), 1);

    advance(30 * SEC); /* old plan: 50 % and 80 % of 1 min; new plan: 25 % of 4 min */
    cr_assert_eq(count_feed(REMINDED), 1);
    advance(18 * SEC);
    cr_assert_eq(count_feed(REMINDED), 2, "the old task's 80%% at 48 s");
    advance(12 * SEC); /* 60 s: the old task escalates; the new one's 25 % */
    cr_assert_eq(t->level, 1);
    cr_assert_eq(ld_task_due(t, LD_LEG_ACK), T0 + 3 * MIN, "the old chain's 2m deputy wait");
    cr_assert_eq(count_feed(REMINDED), 3, "the new task's 25%% at 60 s");
    cr_assert_eq(n->level, 0);
    advance(3 * MIN); /* 4 min: the new task escalates to a deputy with 10 min */
    cr_assert_eq(n->level, 1);
    cr_assert_eq(ld_task_due(n, LD_LEG_ACK), T0 + 14 * MIN, "the new chain's 10m deputy wait");
    cr_assert_eq(t->level, 2, "the old task went on up its own chain at 3 min");
}

Test(ladder, record_keeps_reminders_and_sign_off_through_a_restart)
{
    ld_incident *inc = open_explosion("7-0");
    cr_assert_eq(ack("fire-duty", task_of(inc, "fire")), LINKD__V1__RESULT__RESULT_ACCEPTED);
    advance(MIN); /* emergency_mgmt's reminder goes out */
    uint8_t buf[16384];
    size_t len = ld_engine_record_pack(&eng, inc, buf, sizeof buf);
    cr_assert_lt(len, sizeof buf);
    Linkd__V1__IncidentRecord *rec = linkd__v1__incident_record__unpack(NULL, len, buf);
    cr_assert_not_null(rec);
    cr_assert_eq(rec->n_sign_off, 3);

    ld_engine fresh;
    ld_engine_hooks h = {0};
    cr_assert_eq(ld_engine_init(&fresh, rules, &clk, &h), 0);
    cr_assert_eq(ld_engine_restore(&fresh, rec), 0);
    ld_incident *back = ld_engine_find(&fresh, "I7-0");
    cr_assert_not_null(back);
    unsigned missing = ld_incident_sign_missing(back);
    cr_assert_eq(__builtin_popcount(missing), 2, "police and emergency_mgmt still missing");
    ld_task *em = NULL;
    for (int i = 0; i < back->ntasks; i++)
        if (back->tasks[i]->dept == ld_rules_department(rules, "emergency_mgmt"))
            em = back->tasks[i];
    cr_assert_not_null(em);
    cr_assert_eq(ld_task_reminders(em, LD_LEG_ACK), 1);
    cr_assert_eq(ld_task_reminders_sent(em, LD_LEG_ACK), 1, "the reminder sent is not sent again");
    linkd__v1__incident_record__free_unpacked(rec, NULL);
    ldh_expect_task_counts(&fresh);
    ld_engine_fini(&fresh);
}
