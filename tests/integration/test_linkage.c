/* test_linkage.c: linkage plans as terminals see them, over real NNG with real
 * Redis and the default rules: arrival budgets by the district's area type,
 * the feedback leg (反馈) on the task, a FEEDBACK update accepted, published
 * on the feed and kept in the incident's Redis record. */
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "wire/wire.h"

#define WAIT_MS 20000
#define MIN 60000ll
#define HOUR (60 * MIN)

static ldh_env env;

static void setup(void) { ldh_env_start_or_fail(&env, NULL); }

static void teardown(void)
{
    int code = ldh_env_stop(&env);
    cr_expect_eq(code, 0, "linkd must exit 0 on SIGTERM, exited %d", code);
}

/* The task of <dept> for incident <inc>, as <terminal> gets it. */
static Linkd__V1__Task *await_task(const char *terminal, const char *inc, const char *dept)
{
    ldh_task_match m = {.incident_id = inc, .department = dept};
    Linkd__V1__Task *t = ldh_term_await(&env.linkd, terminal, &m, true, WAIT_MS);
    ldh_check(&env, t, "%s never got the %s task of %s", terminal, dept, inc);
    return t;
}

TestSuite(linkage, .init = setup, .fini = teardown, .timeout = 120);

Test(linkage, police_arrival_budget_follows_the_area_type)
{
    static const struct { const char *district; long long arrive; } cases[] = {
        {"440106", 5 * MIN},   /* Tianhe: urban */
        {"440112", 10 * MIN},  /* Huangpu: suburban */
        {"440117", 20 * MIN},  /* Conghua: rural */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ldh_event ev;
        char inc[64];
        ldh_event_call(&ev, LINKD__V1__CALL_CATEGORY__CALL_CATEGORY_CRIME);
        snprintf(ev.district, sizeof ev.district, "%s", cases[i].district);
        ldh_check(&env, ldh_ingest_accept(&env.linkd, &ev, inc, sizeof inc) ==
                            LINKD__V1__RESULT__RESULT_ACCEPTED, "not accepted");
        Linkd__V1__Task *t = await_task("police-duty", inc, "police");
        ldh_check(&env, t->arrive_by_ms - t->dispatched_at_ms == cases[i].arrive,
                  "district %s: arrive budget %lld ms, expected %lld", cases[i].district,
                  (long long)(t->arrive_by_ms - t->dispatched_at_ms), cases[i].arrive);
        ldh_check(&env, !t->has_feedback_by_ms, "a crime task has no feedback leg");
        linkd__v1__task__free_unpacked(t, NULL);
    }
}

static bool record_has_feedback(const char *inc, const char *text)
{
    bool found = false;
    redisReply *r = ldh_redis_cmd(&env.redis, "GET ld:inc:%s", inc);
    if (r && r->type == REDIS_REPLY_STRING) {
        Linkd__V1__IncidentRecord *rec =
            linkd__v1__incident_record__unpack(NULL, r->len, (const uint8_t *)r->str);
        for (size_t k = 0; rec && k < rec->n_tasks; k++)
            found |= rec->tasks[k]->has_feedback_at_ms && rec->tasks[k]->feedback &&
                     strcmp(rec->tasks[k]->feedback, text) == 0;
        if (rec) linkd__v1__incident_record__free_unpacked(rec, NULL);
    }
    if (r) freeReplyObject(r);
    return found;
}

Test(linkage, feedback_leg_is_reported_published_and_recorded)
{
    ldh_feed feed;
    ldh_check(&env, ldh_feed_open(&feed, &env.linkd) == 0, "feed");
    ldh_event ev;
    char inc[64], why[256];
    ldh_accept_call(&env, &ev, LINKD__V1__CALL_CATEGORY__CALL_CATEGORY_WATER_SUPPLY, inc);
    Linkd__V1__Task *t = await_task("utilities-duty", inc, "utilities");
    ldh_check(&env, t->has_feedback_by_ms, "a water task has a feedback leg");
    ldh_check(&env, t->feedback_by_ms - t->dispatched_at_ms == 2 * HOUR,
              "feedback within 2 h of dispatch, got %lld ms",
              (long long)(t->feedback_by_ms - t->dispatched_at_ms));

    int rv = ldh_term_update(&env.linkd, "utilities-duty", t->task_id,
                             LINKD__V1__UPDATE_KIND__UPDATE_KIND_FEEDBACK, NULL, why, sizeof why);
    ldh_check(&env, rv == LINKD__V1__RESULT__RESULT_REJECTED && strstr(why, "disposition"),
              "feedback without its report must be rejected naming the field, got %d %s", rv,
              why);
    const char *text = "main valve closed, tanker on the way";
    rv = ldh_term_update(&env.linkd, "utilities-duty", t->task_id,
                         LINKD__V1__UPDATE_KIND__UPDATE_KIND_FEEDBACK, text, why, sizeof why);
    ldh_check(&env, rv == LINKD__V1__RESULT__RESULT_ACCEPTED, "feedback: %d %s", rv, why);
    rv = ldh_term_update(&env.linkd, "utilities-duty", t->task_id,
                         LINKD__V1__UPDATE_KIND__UPDATE_KIND_FEEDBACK, text, why, sizeof why);
    ldh_check(&env, rv == LINKD__V1__RESULT__RESULT_DUPLICATE, "the same report again: %d", rv);

    ldh_feed_match m = {.kind = LINKD__V1__FEED_KIND__FEED_KIND_TASK_FEEDBACK,
                        .task_id = t->task_id};
    const Linkd__V1__FeedEvent *fe = ldh_feed_wait_for(&feed, WAIT_MS, &m);
    ldh_check(&env, fe && fe->text && strstr(fe->text, text), "no TASK_FEEDBACK with the report");
    ldh_check(&env, fe->task && fe->task->state == LINKD__V1__TASK_STATE__TASK_STATE_ACKNOWLEDGED,
              "feedback implies acknowledgement");

    bool recorded = false;
    for (int i = 0; i < 100 && !recorded; i++) {
        recorded = record_has_feedback(inc, text);
        if (!recorded) ldh_sleep_ms(100);
    }
    ldh_check(&env, recorded, "the record of %s does not keep the feedback", inc);
    linkd__v1__task__free_unpacked(t, NULL);
    ldh_feed_close(&feed);
}
