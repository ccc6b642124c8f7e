/* test_api.c: the JSON API and supervisor actions against the real daemon,
 * real Redis and real NNG terminals and feed: what a supervisor reads is
 * what linkd holds, and what a supervisor does changes the task as its
 * terminals, the feed and the record in Redis see it; bad requests get the
 * right status and a JSON error naming the field.
 *
 * Petitions are used where the test must not race a deadline: their legs
 * are counted in days. Every wait is bounded. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "http_client.h"

#define WAIT_MS 20000
#define TOKEN "test-token-0123456789abcdef"

static ldh_env env;
static ldh_feed feed;
static char token_dir[96], token_path[160];

static void start(int with_token)
{
    cr_assert_eq(ldh_mkdtemp(token_dir, sizeof token_dir, "token"), 0);
    snprintf(token_path, sizeof token_path, "%s/admin.token", token_dir);
    cr_assert_eq(ldh_write_file(token_path, TOKEN "\n", strlen(TOKEN) + 1), 0);
    ldh_linkd_opts o = {.http = true};
    if (with_token) {
        o.extra[0] = "--admin-token-file";
        o.extra[1] = token_path;
    }
    ldh_env_start_or_fail(&env, &o);
    ldh_check(&env, ldh_feed_open(&feed, &env.linkd) == 0, "feed did not open");
}

static void teardown(void)
{
    ldh_feed_close(&feed);
    int code = ldh_env_stop(&env);
    ldh_rmtree(token_dir);
    cr_expect_eq(code, 0, "linkd must exit 0 on SIGTERM, exited %d", code);
}

/* request sends one request and fails the test unless it gets <status>;
 * returns the body (caller frees). */
static char *request(const char *method, const char *path, const char *body, const char *token,
                     int status)
{
    ldh_http_reply r;
    int rv = ldh_http(env.linkd.http, method, path, body, token, &r);
    ldh_check(&env, rv == 0, "%s %s: no answer (%d)", method, path, rv);
    ldh_check(&env, r.status == status, "%s %s: status %d, expected %d: %s", method, path,
              r.status, status, r.body);
    char *b = r.body;
    r.body = NULL;
    ldh_http_reply_free(&r);
    return b;
}

static char *get(const char *path, int status)
{
    return request("GET", path, NULL, NULL, status);
}

static char *act(const char *inc, const char *dept, const char *verb, const char *body,
                 int status)
{
    char path[256];
    if (dept) snprintf(path, sizeof path, "/api/incidents/%s/tasks/%s/%s", inc, dept, verb);
    else snprintf(path, sizeof path, "/api/incidents/%s/%s", inc, verb);
    return request("POST", path, body, TOKEN, status);
}

/* expect_error checks a JSON error body: status and, if given, field. */
static void expect_error(char *body, int status, const char *field)
{
    char want[64];
    snprintf(want, sizeof want, "\"status\":%d", status);
    cr_expect(strstr(body, "\"error\":") && strstr(body, want), "not a %d JSON error: %s",
              status, body);
    if (field) {
        snprintf(want, sizeof want, "\"field\":\"%s\"", field);
        cr_expect(strstr(body, want), "the error should name '%s': %s", field, body);
    }
    free(body);
}

/* task_at returns where task <task_id> starts in an incident's JSON. */
static const char *task_at(const char *json, const char *task_id)
{
    char key[160];
    snprintf(key, sizeof key, "\"task_id\":\"%s\"", task_id);
    return strstr(json, key);
}

static long long task_field(const char *json, const char *task_id, const char *field)
{
    const char *t = task_at(json, task_id);
    char key[96];
    snprintf(key, sizeof key, "\"%s\":", field);
    const char *f = t ? strstr(t, key) : NULL;
    return f ? strtoll(f + strlen(key), NULL, 10) : -1;
}

static long long leg_due(const char *json, const char *task_id, const char *leg)
{
    const char *t = task_at(json, task_id);
    char key[96];
    snprintf(key, sizeof key, "\"leg\":\"%s\",\"due_ms\":", leg);
    const char *f = t ? strstr(t, key) : NULL;
    return f ? strtoll(f + strlen(key), NULL, 10) : -1;
}

static bool contains(const char *hay, size_t n, const char *needle)
{
    size_t m = strlen(needle);
    for (size_t i = 0; i + m <= n; i++)
        if (memcmp(hay + i, needle, m) == 0) return true;
    return false;
}

static void open_petition(char *inc, size_t len)
{
    ldh_event ev;
    ldh_event_petition(&ev, LINKD__V1__PETITION_ISSUE__PETITION_ISSUE_WAGE_ARREARS, 2);
    ldh_check(&env, ldh_ingest_accept(&env.linkd, &ev, inc, len) ==
                        LINKD__V1__RESULT__RESULT_ACCEPTED, "petition not accepted");
}

typedef struct actor_match {
    int kind;
    const char *incident, *actor;
} actor_match;

static bool by_actor(const Linkd__V1__FeedEvent *ev, void *arg)
{
    const actor_match *m = arg;
    return ev->kind == (Linkd__V1__FeedKind)m->kind && ev->incident_id &&
           strcmp(ev->incident_id, m->incident) == 0 && ev->actor &&
           strcmp(ev->actor, m->actor) == 0;
}

/* ---- reads ---------------------------------------------------------------------- */

Test(api, reads_show_what_linkd_holds, .fini = teardown, .timeout = 240)
{
    start(1);
    char inc[64], path[160], tid[128];
    open_petition(inc, sizeof inc);

    char *list = get("/api/incidents", 200);
    cr_expect(strstr(list, inc), "the new incident is missing: %s", list);
    snprintf(tid, sizeof tid, "%s/petition", inc);
    cr_expect(task_at(list, tid), "no petition task: %s", list);
    snprintf(tid, sizeof tid, "%s/justice", inc);
    cr_expect(task_at(list, tid), "no justice task: %s", list);
    cr_expect_gt(leg_due(list, tid, "acknowledge"), 0);
    free(list);

    snprintf(path, sizeof path, "/api/incidents/%s", inc);
    char *one = get(path, 200);
    cr_expect(strstr(one, "\"history\":[") && strstr(one, "\"kind\":\"task_dispatched\""),
              "no history: %s", one);
    cr_expect(strstr(one, "\"state\":\"dispatched\""), "%s", one);
    free(one);
    expect_error(get("/api/incidents/I0-0", 404), 404, NULL);
    expect_error(get("/api/incidents?department=nosuch", 400), 400, "department");
    expect_error(get("/api/incidents?limit=10001", 400), 400, "limit");
    expect_error(get("/api/incidents?limit=0", 400), 400, "limit");

    /* A terminal that polls is online; one that never did is not. */
    Linkd__V1__PollReply *pr = NULL;
    ldh_poll p = {.terminal = "justice-duty"};
    ldh_check(&env, ldh_term_poll(&env.linkd, &p, &pr) == 0, "poll failed");
    linkd__v1__poll_reply__free_unpacked(pr, NULL);
    char *terms = NULL;
    uint64_t end = ldh_mono_ms() + WAIT_MS;
    for (int i = 0; i < 400 && ldh_mono_ms() < end; i++) {
        free(terms);
        terms = get("/api/terminals", 200);
        if (strstr(terms, "{\"id\":\"justice-duty\",\"department\":\"justice\",\"holding\":1,"
                          "\"online\":true}"))
            break;
        ldh_sleep_ms(50);
    }
    cr_expect(strstr(terms, "\"id\":\"justice-duty\",\"department\":\"justice\",\"holding\":1,"
                            "\"online\":true"), "%s", terms);
    cr_expect(strstr(terms, "\"id\":\"justice-head\",\"department\":\"justice\",\"holding\":0,"
                            "\"online\":false"), "%s", terms);
    free(terms);

    char *depts = get("/api/departments", 200);
    cr_expect(strstr(depts, "\"id\":\"petition\"") &&
                  strstr(strstr(depts, "\"id\":\"petition\""), "\"open_tasks\":1,"),
              "%s", depts);
    free(depts);

    ld_rules *r = ldh_rules_load(LDH_DEFAULT_RULES);
    cr_assert(r);
    char *rules = get("/api/rules", 200);
    char want[64];
    snprintf(want, sizeof want, "\"version\":\"%s\"", r->version);
    cr_expect(strstr(rules, want), "%s (expected %s)", rules, r->version);
    cr_expect(strstr(rules, "\"last_reload_ok\":true") && strstr(rules, "\"loaded_at_ms\":"),
              "%s", rules);
    free(rules);
    ld_rules_free(r);
}

/* ---- who may act ------------------------------------------------------------------ */

Test(api, actions_need_the_token, .fini = teardown, .timeout = 240)
{
    start(1);
    char inc[64], path[192], tid[128];
    open_petition(inc, sizeof inc);
    snprintf(path, sizeof path, "/api/incidents/%s/tasks/petition/escalate", inc);
    const char *body = "{\"by\":\"Supervisor Wang\",\"reason\":\"no answer\"}";
    expect_error(request("POST", path, body, NULL, 401), 401, NULL);
    expect_error(request("POST", path, body, "not-the-token-0123456789", 403), 403, NULL);
    snprintf(path, sizeof path, "/api/incidents/%s", inc);
    char *one = get(path, 200);
    snprintf(tid, sizeof tid, "%s/petition", inc);
    cr_expect_eq(task_field(one, tid, "level"), 0, "a refused action changed the task: %s", one);
    free(one);
}

Test(api, actions_are_refused_without_a_token_file, .fini = teardown, .timeout = 240)
{
    start(0);
    char inc[64], path[192];
    open_petition(inc, sizeof inc);
    snprintf(path, sizeof path, "/api/incidents/%s/tasks/petition/escalate", inc);
    char *b = request("POST", path, "{\"by\":\"a\",\"reason\":\"b\"}", TOKEN, 403);
    cr_expect(strstr(b, "disabled"), "%s", b);
    free(b);
}

/* ---- actions ------------------------------------------------------------------------ */

Test(api, reassign_hands_the_task_to_another_department, .fini = teardown, .timeout = 240)
{
    start(1);
    char inc[64], tid[128], key[96];
    open_petition(inc, sizeof inc);
    char *b = act(inc, "petition", "reassign",
                  "{\"by\":\"Supervisor Wang\",\"reason\":\"a housing matter, not wages\","
                  "\"department\":\"civil_affairs\"}", 200);
    snprintf(tid, sizeof tid, "%s/civil_affairs", inc);
    cr_expect(task_at(b, tid), "the answer should show the moved task: %s", b);
    cr_expect(strstr(b, "Supervisor Wang: reassigned"), "no note in the history: %s", b);
    free(b);

    /* civil_affairs' duty terminal is given it, under its new id. */
    ldh_task_match m = {.task_id = tid};
    Linkd__V1__Task *t = ldh_term_await(&env.linkd, "civil_affairs-duty", &m, true, WAIT_MS);
    ldh_check(&env, t != NULL, "civil_affairs-duty never got %s", tid);
    cr_expect_str_eq(t->department, "civil_affairs");
    linkd__v1__task__free_unpacked(t, NULL);

    actor_match am = {LINKD__V1__FEED_KIND__FEED_KIND_TASK_REASSIGNED, inc, "Supervisor Wang"};
    const Linkd__V1__FeedEvent *fe = ldh_feed_wait(&feed, WAIT_MS, by_actor, &am);
    ldh_check(&env, fe != NULL, "no TASK_REASSIGNED with its actor on the feed");
    cr_expect_str_eq(fe->reason, "a housing matter, not wages");

    /* The record in Redis keeps who and why. */
    snprintf(key, sizeof key, "ld:inc:%s", inc);
    bool found = false;
    uint64_t end = ldh_mono_ms() + WAIT_MS;
    for (int i = 0; i < 400 && !found && ldh_mono_ms() < end; i++) {
        redisReply *rr = ldh_redis_cmd(&env.redis, "GET %s", key);
        found = rr && rr->type == REDIS_REPLY_STRING &&
                contains(rr->str, rr->len, "a housing matter, not wages");
        if (rr) freeReplyObject(rr);
        if (!found) ldh_sleep_ms(50);
    }
    cr_expect(found, "the incident record in Redis lacks the action's note");

    /* justice already has a task on this incident. */
    expect_error(act(inc, "civil_affairs", "reassign",
                     "{\"by\":\"Supervisor Wang\",\"reason\":\"x\",\"department\":\"justice\"}",
                     409), 409, NULL);
    expect_error(act(inc, "civil_affairs", "reassign",
                     "{\"by\":\"Supervisor Wang\",\"reason\":\"x\",\"department\":\"nosuch\"}",
                     400), 400, "department");
}

Test(api, escalate_extend_and_close, .fini = teardown, .timeout = 240)
{
    start(1);
    char inc[64], tid[128], path[160];
    open_petition(inc, sizeof inc);
    snprintf(path, sizeof path, "/api/incidents/%s", inc);

    snprintf(tid, sizeof tid, "%s/petition", inc);
    char *b = act(inc, "petition", "escalate",
                  "{\"by\":\"Supervisor Li\",\"reason\":\"petitioners at the gate\"}", 200);
    cr_expect_eq(task_field(b, tid, "level"), 1, "%s", b);
    free(b);
    actor_match am = {LINKD__V1__FEED_KIND__FEED_KIND_TASK_ESCALATED, inc, "Supervisor Li"};
    ldh_check(&env, ldh_feed_wait(&feed, WAIT_MS, by_actor, &am) != NULL,
              "no TASK_ESCALATED with its actor on the feed");
    ldh_task_match m = {.task_id = tid};
    Linkd__V1__Task *t = ldh_term_await(&env.linkd, "petition-deputy", &m, true, WAIT_MS);
    ldh_check(&env, t != NULL, "petition-deputy never got the escalated task");
    linkd__v1__task__free_unpacked(t, NULL);

    snprintf(tid, sizeof tid, "%s/justice", inc);
    char *before = get(path, 200);
    long long due = leg_due(before, tid, "acknowledge");
    free(before);
    b = act(inc, "justice", "extend",
            "{\"by\":\"Supervisor Li\",\"reason\":\"office closed for the holiday\","
            "\"leg\":\"acknowledge\",\"extend_by\":\"1h\"}", 200);
    cr_expect_eq(leg_due(b, tid, "acknowledge"), due + 3600000, "%s", b);
    free(b);
    am.kind = LINKD__V1__FEED_KIND__FEED_KIND_DEADLINE_EXTENDED;
    ldh_check(&env, ldh_feed_wait(&feed, WAIT_MS, by_actor, &am) != NULL,
              "no DEADLINE_EXTENDED on the feed");

    /* Bad bodies: 400 naming the field; nothing changes. */
    expect_error(act(inc, "justice", "extend",
                     "{\"by\":\"Li\",\"reason\":\"r\",\"leg\":\"lunch\",\"extend_by\":\"1h\"}",
                     400), 400, "leg");
    expect_error(act(inc, "justice", "extend",
                     "{\"by\":\"Li\",\"reason\":\"r\",\"leg\":\"arrive\",\"extend_by\":\"soon\"}",
                     400), 400, "extend_by");
    expect_error(act(inc, "justice", "escalate", "{\"reason\":\"r\"}", 400), 400, "by");
    expect_error(act(inc, "justice", "escalate", "{\"by\":\"Li\",\"reason\":\"r\",\"urgent\":\"y\"}",
                     400), 400, "urgent");
    expect_error(act(inc, "justice", "escalate", "{\"by\":\"Li\",", 400), 400, NULL);
    expect_error(act(inc, "fire", "escalate", "{\"by\":\"Li\",\"reason\":\"r\"}", 404), 404, NULL);
    expect_error(act("I1-0", "justice", "escalate", "{\"by\":\"Li\",\"reason\":\"r\"}", 404), 404,
                 NULL);
    char *big = malloc(40000);
    memset(big, 'x', 39999);
    big[39999] = '\0';
    memcpy(big, "{\"by\":\"", 7);
    expect_error(act(inc, "justice", "escalate", big, 413), 413, NULL);
    free(big);

    b = act(inc, NULL, "close",
            "{\"by\":\"Supervisor Li\",\"reason\":\"settled by mediation\","
            "\"disposition\":\"wages paid\"}", 200);
    free(b);
    am.kind = LINKD__V1__FEED_KIND__FEED_KIND_INCIDENT_CLOSED;
    ldh_check(&env, ldh_feed_wait(&feed, WAIT_MS, by_actor, &am) != NULL,
              "no INCIDENT_CLOSED with its actor on the feed");
    expect_error(act(inc, NULL, "close",
                     "{\"by\":\"Supervisor Li\",\"reason\":\"again\",\"disposition\":\"x\"}", 409),
                 409, NULL);
    expect_error(act(inc, "justice", "escalate", "{\"by\":\"Li\",\"reason\":\"r\"}", 409), 409,
                 NULL);
    expect_error(get(path, 404), 404, NULL);

    char *metrics = get("/metrics", 200);
    cr_expect_eq(ldh_metric(metrics, "linkd_http_errors_total{status=\"409\"}"), 2, "%s",
                 metrics);
    cr_expect_eq(ldh_metric(metrics, "linkd_http_errors_total{status=\"413\"}"), 1);
    cr_expect_eq(ldh_metric(metrics, "linkd_http_errors_total{status=\"400\"}"), 5);
    cr_expect_eq(ldh_metric(metrics,
                            "linkd_supervisor_actions_total{department=\"petition\",action=\"escalate\"}"),
                 1);
    cr_expect_eq(ldh_metric(metrics,
                            "linkd_supervisor_actions_total{department=\"justice\",action=\"extend\"}"),
                 1);
    cr_expect_eq(ldh_metric(metrics, "linkd_incidents_open"), 0);
    free(metrics);
}
