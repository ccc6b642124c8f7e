/* test_ladder_live.c: escalation ladders against the real linkd, Redis and NNG
 * (rules: tests/data/ladder, at --time-scale 6 so a minute is 10 s).
 *
 * A fire task nobody acknowledges: its holder's next poll brings the same
 * task marked as a reminder (leg and share of the wait), the feed says so,
 * and the task has not moved. An explosion that fire, police and emergency
 * management must all acknowledge: until the last signs, the incident in
 * the JSON API names who is missing; then the feed reports the sign-off. */
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "http_client.h"

#define RULES LD_SOURCE_DIR "/tests/data/ladder"
#define WAIT_MS 30000

static ldh_env env;
static ldh_feed feed;

static void setup(void)
{
    ldh_linkd_opts o = {.rules = RULES, .time_scale = 6, .http = true};
    ldh_env_start_or_fail(&env, &o);
    ldh_check(&env, ldh_feed_open(&feed, &env.linkd) == 0, "cannot subscribe to the feed");
}

static void teardown(void)
{
    ldh_feed_close(&feed);
    int code = ldh_env_stop(&env);
    cr_expect_eq(code, 0, "linkd must exit 0 on SIGTERM, exited %d", code);
}

TestSuite(ladder_live, .init = setup, .fini = teardown, .timeout = 240);

Test(ladder_live, the_holder_is_reminded_on_its_terminal_and_the_feed)
{
    ldh_event ev;
    char inc[64], tid[96];
    ldh_accept_call(&env, &ev, LINKD__V1__CALL_CATEGORY__CALL_CATEGORY_FIRE, inc);
    snprintf(tid, sizeof tid, "%s/fire", inc);
    ldh_task_match m = {.task_id = tid};
    /* Polls until the task comes marked as a reminder (the first delivery is
     * the task itself, unless the poll came after the first reminder). */
    Linkd__V1__Task *t = NULL;
    uint64_t end = ldh_mono_ms() + WAIT_MS;
    while (ldh_mono_ms() < end) {
        t = ldh_term_await(&env.linkd, "fire-duty", &m, true, WAIT_MS);
        ldh_check(&env, t, "fire-duty got nothing more for %s", tid);
        if (t->has_reminder && t->reminder) break;
        linkd__v1__task__free_unpacked(t, NULL);
        t = NULL;
    }
    ldh_check(&env, t, "fire-duty was never reminded of %s", tid);
    ldh_check(&env, t->has_reminder_leg && t->reminder_leg == LINKD__V1__LEG__LEG_ACKNOWLEDGE,
              "the reminder names the acknowledge leg");
    ldh_check(&env, t->reminder_percent == 50 || t->reminder_percent == 80,
              "a share the rules give (50%% or 80%%), got %u", t->reminder_percent);
    ldh_check(&env, t->redelivery, "marked as a task the terminal already has");
    ldh_check(&env, strcmp(t->terminal, "fire-duty") == 0 && t->level == 0,
              "a reminder does not move the task");
    linkd__v1__task__free_unpacked(t, NULL);

    ldh_feed_match fm = {.kind = LINKD__V1__FEED_KIND__FEED_KIND_TASK_REMINDED, .task_id = tid};
    const Linkd__V1__FeedEvent *fe = ldh_feed_wait_for(&feed, WAIT_MS, &fm);
    ldh_check(&env, fe, "no TASK_REMINDED on the feed");
    ldh_check(&env, fe->has_leg && fe->leg == LINKD__V1__LEG__LEG_ACKNOWLEDGE, "its leg");
    ldh_check(&env, strstr(fe->text, "reminder to fire-duty: acknowledge due in"),
              "the feed line says whom and what: %s", fe->text);

    /* Acknowledged: no more reminders of that leg. */
    ldh_check(&env, ldh_term_update(&env.linkd, "fire-duty", tid,
                                    LINKD__V1__UPDATE_KIND__UPDATE_KIND_ACKNOWLEDGED, NULL, NULL,
                                    0) == LINKD__V1__RESULT__RESULT_ACCEPTED,
              "acknowledge");
}

/* incident_json fetches GET /api/incidents/<id>. */
static char *incident_json(const char *inc)
{
    char path[128];
    snprintf(path, sizeof path, "/api/incidents/%s", inc);
    ldh_http_reply r;
    ldh_check(&env, ldh_http(env.linkd.http, "GET", path, NULL, NULL, &r) == 0 && r.status == 200,
              "GET %s", path);
    char *body = strdup(r.body);
    ldh_http_reply_free(&r);
    return body;
}

static void ack(const char *terminal, const char *inc, const char *dept)
{
    char tid[96];
    snprintf(tid, sizeof tid, "%s/%s", inc, dept);
    ldh_check(&env, ldh_term_update(&env.linkd, terminal, tid,
                                    LINKD__V1__UPDATE_KIND__UPDATE_KIND_ACKNOWLEDGED, NULL, NULL,
                                    0) == LINKD__V1__RESULT__RESULT_ACCEPTED,
              "%s acknowledges %s", terminal, tid);
}

Test(ladder_live, an_incident_shows_who_has_not_signed_until_all_have)
{
    ldh_event ev;
    char inc[64];
    ldh_accept_call(&env, &ev, LINKD__V1__CALL_CATEGORY__CALL_CATEGORY_EXPLOSION, inc);
    ack("fire-duty", inc, "fire");
    ack("police-duty", inc, "police");
    char *j = incident_json(inc);
    ldh_check(&env, strstr(j, "\"sign_off\":{\"departments\":[\"fire\",\"police\","
                              "\"emergency_mgmt\"],\"missing\":[\"emergency_mgmt\"],"
                              "\"complete\":false}"),
              "the incident names who is missing: %s", j);
    free(j);
    ldh_feed_match fm = {.kind = LINKD__V1__FEED_KIND__FEED_KIND_INCIDENT_SIGNED_OFF,
                         .incident_id = inc};
    ldh_feed_collect(&feed, 200);
    ldh_check(&env, ldh_feed_count(&feed, &fm) == 0, "not signed off while one is missing");

    /* emergency_mgmt signs (the duty officer, or the deputy if it climbed). */
    char tid[96];
    snprintf(tid, sizeof tid, "%s/emergency_mgmt", inc);
    ldh_check(&env, ldh_term_update(&env.linkd, "em-duty", tid,
                                    LINKD__V1__UPDATE_KIND__UPDATE_KIND_ACKNOWLEDGED, NULL, NULL,
                                    0) == LINKD__V1__RESULT__RESULT_ACCEPTED,
              "emergency_mgmt acknowledges");
    const Linkd__V1__FeedEvent *fe = ldh_feed_wait_for(&feed, WAIT_MS, &fm);
    ldh_check(&env, fe, "no INCIDENT_SIGNED_OFF on the feed");
    ldh_check(&env, strstr(fe->text, "fire, police, emergency_mgmt"), "%s", fe->text);
    j = incident_json(inc);
    ldh_check(&env, strstr(j, "\"missing\":[]") && strstr(j, "\"complete\":true") &&
                        strstr(j, "\"signed_off_at_ms\":"),
              "signed off: %s", j);
    free(j);
}

/* metric reads one sample of GET /metrics. */
static double metric(const char *series)
{
    ldh_http_reply r;
    ldh_check(&env, ldh_http(env.linkd.http, "GET", "/metrics", NULL, NULL, &r) == 0 && r.status == 200,
              "GET /metrics");
    double v = ldh_metric(r.body, series);
    ldh_http_reply_free(&r);
    return v;
}

Test(ladder_live, drills_are_counted_apart_in_metrics)
{
    ldh_event real, drill;
    char inc[64];
    ldh_accept_call(&env, &real, LINKD__V1__CALL_CATEGORY__CALL_CATEGORY_FIRE, inc);
    ldh_event_call(&drill, LINKD__V1__CALL_CATEGORY__CALL_CATEGORY_EXPLOSION);
    drill.env.status = LINKD__V1__STATUS__STATUS_EXERCISE;
    ldh_check(&env, ldh_ingest_accept(&env.linkd, &drill, inc, sizeof inc) ==
                        LINKD__V1__RESULT__RESULT_ACCEPTED,
              "the exercise is accepted");
    ldh_check(&env, metric("linkd_incidents_opened_total") == 2, "both incidents opened");
    ldh_check(&env, metric("linkd_drill_incidents_total") == 1, "one of them a drill");
    ldh_check(&env, metric("linkd_drill_tasks_total") == 3,
              "the exercise's three tasks (fire, police, emergency_mgmt) counted apart");
}
