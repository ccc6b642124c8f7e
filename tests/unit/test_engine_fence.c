/* Escalation fencing in the engine, on a manual clock. The fence itself is
 * Redis's (tests/integration/test_fence.c); here a hook records each claim
 * and the test answers it as Redis would: ours, taken by another run at a
 * given time, or no answer. What the user sees: a deadline escalation is
 * announced (feed event, count) only when its claim is ours; a taken claim
 * moves the task where the other run sent it, silently, with the new holder
 * told it is a redelivery and the same deadlines the other run set. Only the
 * fire task's claims are logged and answered; the medical task's stay open. */
#include <criterion/criterion.h>
#include <string.h>

#include "core/diag.h"
#include "engine/engine.h"
#include "rules/rules.h"
#include "harness.h"

#define SEC 1000ull
#define MIN (60 * SEC)
#define T0 1795000000000ull

typedef struct claim_log {
    char task_id[LD_TASK_ID_LEN];
    int level, leg, wait;
    uint64_t at;
    int n;              /* claims made */
    int refuse;         /* answer the hook with an error: Redis away */
} claim_log;

static ld_rules *rules;
static ld_clock clk;
static ld_engine eng;
static claim_log cl;
static int escalated_feed, missed_feed;

static void on_feed(void *ctx, const Linkd__V1__FeedEvent *fe)
{
    (void)ctx;
    if (!fe->task || !fe->task->department || strcmp(fe->task->department, "fire") != 0) return;
    if (fe->kind == LINKD__V1__FEED_KIND__FEED_KIND_TASK_ESCALATED) escalated_feed++;
    if (fe->kind == LINKD__V1__FEED_KIND__FEED_KIND_DEADLINE_MISSED) missed_feed++;
}

static int on_claim(void *ctx, const char *task_id, int level, int leg, uint64_t at, int wait)
{
    claim_log *c = ctx;
    if (c->refuse) return -1;
    const char *slash = strrchr(task_id, '/');
    if (!slash || strcmp(slash, "/fire") != 0) return 0; /* others' claims stay unanswered */
    snprintf(c->task_id, sizeof c->task_id, "%s", task_id);
    c->level = level, c->leg = leg, c->at = at, c->wait = wait;
    c->n++;
    return 0;
}

static void setup(void)
{
    ld_diag d;
    ld_diag_init(&d);
    int rv = ld_rules_load(&rules, LD_SOURCE_DIR "/tests/data/engine", &d);
    if (rv != 0) ld_diag_print(&d, stderr);
    ld_diag_fini(&d);
    cr_assert_eq(rv, 0, "test rules must load");
    memset(&cl, 0, sizeof cl);
    escalated_feed = missed_feed = 0;
    ld_clock_init_manual(&clk, T0);
    ld_engine_hooks h = {.feed = on_feed, .fence = on_claim, .fence_ctx = &cl};
    cr_assert_eq(ld_engine_init(&eng, rules, &clk, &h), 0);
}

static void teardown(void)
{
    ldh_expect_task_counts(&eng);
    ld_engine_fini(&eng);
    ld_rules_free(rules);
}

TestSuite(engine_fence, .init = setup, .fini = teardown);

static ld_task *open_fire_task(const char *stream_id)
{
    Linkd__V1__Envelope ev;
    Linkd__V1__Call110 call;
    linkd__v1__envelope__init(&ev);
    linkd__v1__call110__init(&call);
    ev.event_id = (char *)stream_id;
    ev.source_id = "cc-1";
    ev.has_occurred_at_ms = 1;
    ev.occurred_at_ms = (int64_t)T0;
    ev.has_status = 1;
    ev.status = LINKD__V1__STATUS__STATUS_ACTUAL;
    ev.body_case = LINKD__V1__ENVELOPE__BODY_CALL;
    ev.call = &call;
    call.has_category = 1;
    call.category = LINKD__V1__CALL_CATEGORY__CALL_CATEGORY_FIRE;
    ld_incident *inc = NULL;
    cr_assert_eq(ld_engine_open(&eng, &ev, stream_id, &inc), 0);
    int fire = ld_rules_department(rules, "fire");
    for (int i = 0; i < inc->ntasks; i++)
        if (inc->tasks[i]->dept == fire) return inc->tasks[i];
    cr_assert_fail("no fire task");
    return NULL;
}

static void advance(uint64_t ms)
{
    ld_clock_advance(&clk, ms);
    ld_engine_run_due(&eng);
}

Test(engine_fence, a_missed_deadline_waits_for_its_claim_and_escalates_once_when_it_is_ours)
{
    ld_task *t = open_fire_task("100-0");
    advance(30 * SEC); /* the 30 s acknowledge budget */
    cr_assert_eq(cl.n, 1, "one claim for the missed acknowledgement");
    cr_assert_str_eq(cl.task_id, "I100-0/fire");
    cr_assert_eq(cl.level, 0);
    cr_assert_eq(cl.leg, LD_LEG_ACK);
    cr_assert(cl.wait, "a deadline escalation waits for the answer");
    cr_assert_eq(t->level, 0, "nothing moves before the answer");
    cr_assert_eq(escalated_feed, 0);

    /* The deadline passing again meanwhile makes no second claim. */
    advance(10 * SEC);
    cr_assert_eq(cl.n, 1);

    ld_engine_fenced(&eng, "I100-0/fire", 0, LD_LEG_ACK, LD_FENCE_WON, 0);
    cr_assert_eq(t->level, 1, "ours: escalated");
    cr_assert_eq(escalated_feed, 1);
    cr_assert_eq(eng.stats.escalations, 1);
    cr_assert_eq(t->terminal, ld_rules_terminal(rules, "fire-deputy"));

    /* A late second answer for the same claim changes nothing. */
    ld_engine_fenced(&eng, "I100-0/fire", 0, LD_LEG_ACK, LD_FENCE_WON, 0);
    cr_assert_eq(t->level, 1);
    cr_assert_eq(escalated_feed, 1);
}

Test(engine_fence, a_taken_claim_moves_the_task_silently_with_the_holders_deadlines)
{
    ld_task *t = open_fire_task("200-0");
    advance(35 * SEC);
    cr_assert_eq(cl.n, 1);
    uint64_t made_at = T0 + 30 * SEC + 5; /* when the other run escalated */
    ld_engine_fenced(&eng, "I200-0/fire", 0, LD_LEG_ACK, LD_FENCE_TAKEN, made_at);
    cr_assert_eq(t->level, 1, "the task goes where the other run sent it");
    cr_assert_eq(t->terminal, ld_rules_terminal(rules, "fire-deputy"));
    cr_assert_eq(ld_task_due(t, LD_LEG_ACK), made_at + ld_chain_level(rules, t->dept, 1)->wait_ms,
                 "the deputy's wait runs from the original escalation");
    cr_assert_eq(escalated_feed, 0, "not announced a second time");
    cr_assert_eq(eng.stats.escalations, 0);
    cr_assert_eq(eng.stats.escalations_fenced, 1);

    /* The deputy gets it, marked as a redelivery. */
    ld_delivery_item out[4];
    size_t n = ld_engine_collect(&eng, t->terminal, 0, out, 4);
    cr_assert_eq(n, 1);
    cr_assert(out[0].redelivery, "a fenced move reaches its holder as a redelivery");

    /* The history records the move once, at the time it was made. */
    int entries = 0;
    for (int i = 0; i < t->inc->nhistory; i++) {
        const ld_history *h = &t->inc->history[i];
        if (h->kind == LINKD__V1__FEED_KIND__FEED_KIND_TASK_ESCALATED) {
            entries++;
            cr_assert_eq(ld_history_at(h), made_at);
            cr_assert_eq(h->level, 1);
        }
    }
    cr_assert_eq(entries, 1);

    /* The next level is fenced in its turn, with the deadline the holder set. */
    advance(ld_task_due(t, LD_LEG_ACK) - ld_clock_now(&clk));
    cr_assert_eq(cl.n, 2);
    cr_assert_eq(cl.level, 1);
}

Test(engine_fence, a_claim_answered_after_the_task_was_acknowledged_escalates_nothing)
{
    ld_task *t = open_fire_task("300-0");
    advance(30 * SEC);
    cr_assert_eq(cl.n, 1);
    char id[LD_TASK_ID_LEN], why[128];
    snprintf(id, sizeof id, "I300-0/fire");
    Linkd__V1__TaskUpdate u;
    linkd__v1__task_update__init(&u);
    u.task_id = id;
    u.has_kind = 1;
    u.kind = LINKD__V1__UPDATE_KIND__UPDATE_KIND_ACKNOWLEDGED;
    cr_assert_eq(ld_engine_update(&eng, ld_rules_terminal(rules, "fire-duty"), &u, why, sizeof why),
                 LINKD__V1__RESULT__RESULT_ACCEPTED);
    ld_engine_fenced(&eng, id, 0, LD_LEG_ACK, LD_FENCE_WON, 0);
    cr_assert_eq(t->level, 0, "acknowledged in time after all: no escalation");
    cr_assert_eq(escalated_feed, 0);
    /* Its next leg still has its deadline armed. */
    cr_assert_eq(ld_engine_next_due(&eng) <= ld_task_due(t, LD_LEG_ARRIVE), 1);
}

Test(engine_fence, without_an_answer_or_without_redis_the_escalation_is_on_time_and_counted_unfenced)
{
    ld_task *t = open_fire_task("400-0");
    advance(30 * SEC);
    ld_engine_fenced(&eng, "I400-0/fire", 0, LD_LEG_ACK, LD_FENCE_UNKNOWN, 0);
    cr_assert_eq(t->level, 1);
    cr_assert_eq(escalated_feed, 1);
    cr_assert_eq(eng.stats.escalations_unfenced, 1);

    cl.refuse = 1; /* Redis away: the hook cannot send the claim */
    advance(ld_task_due(t, LD_LEG_ACK) - ld_clock_now(&clk));
    cr_assert_eq(t->level, 2, "escalated at once, unfenced");
    cr_assert_eq(escalated_feed, 2);
    /* The medical task's deadline passed too, also unfenced. */
    cr_assert_geq(eng.stats.escalations_unfenced, 2);
}

Test(engine_fence, a_rejection_escalates_at_once_and_records_its_fence)
{
    ld_task *t = open_fire_task("500-0");
    char id[LD_TASK_ID_LEN], why[128];
    snprintf(id, sizeof id, "I500-0/fire");
    Linkd__V1__TaskUpdate u;
    linkd__v1__task_update__init(&u);
    u.task_id = id;
    u.has_kind = 1;
    u.kind = LINKD__V1__UPDATE_KIND__UPDATE_KIND_REJECTED;
    u.reason = "no crew available";
    cr_assert_eq(ld_engine_update(&eng, ld_rules_terminal(rules, "fire-duty"), &u, why, sizeof why),
                 LINKD__V1__RESULT__RESULT_ACCEPTED);
    cr_assert_eq(t->level, 1);
    cr_assert_eq(escalated_feed, 1);
    cr_assert_eq(cl.n, 1, "the move is recorded in the fence");
    cr_assert_eq(cl.level, 0);
    cr_assert_eq(cl.leg, LD_LEG_ACK);
    cr_assert_not(cl.wait, "a rejection does not wait for the fence");
}

Test(engine_fence, a_taken_claim_at_the_top_of_the_chain_is_not_announced_again)
{
    ld_task *t = open_fire_task("600-0");
    /* Climb fire's three levels and command's two, each claim ours. */
    int top = ld_chain_len(rules, t->dept) - 1;
    cr_assert_eq(top, 4);
    for (int k = 0; k < 10 && t->level < top; k++) {
        int before = cl.n;
        advance(t->timer.due - ld_clock_now(&clk));
        cr_assert_eq(cl.n, before + 1, "each missed deadline makes one claim");
        ld_engine_fenced(&eng, "I600-0/fire", cl.level, cl.leg, LD_FENCE_WON, 0);
    }
    cr_assert_eq(t->level, top, "at the command director, the top");
    int before = escalated_feed;
    advance(t->timer.due - ld_clock_now(&clk));
    cr_assert_eq(cl.level, top);
    ld_engine_fenced(&eng, "I600-0/fire", top, cl.leg, LD_FENCE_TAKEN, ld_clock_now(&clk));
    cr_assert_eq(missed_feed, 0, "the other run announced the miss at the top");
    cr_assert_eq(escalated_feed, before);
    cr_assert_eq(t->level, top);
    cr_assert(t->overdue_top & (1u << cl.leg), "marked overdue all the same");
}
