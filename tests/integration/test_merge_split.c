/* test_merge_split.c: a supervisor merging two incidents and splitting an
 * event back off, through the HTTP API of the real daemon, with real Redis
 * and real NNG terminals and feed: the tasks move or close as the terminals
 * see them, both incidents' feeds, notes and audit trails say who did it and
 * why, the result survives kill -9, and a split gives the event its own
 * plan from the rules again.
 *
 * Petitions are used so that no deadline races the test (days): a wage
 * arrears petition goes to petition and justice, a law-enforcement one to
 * petition and political_legal. Every wait is bounded. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "http_client.h"

#define WAIT_MS 20000
#define TOKEN "test-token-0123456789abcdef"
#define LINKCTL LD_BINARY_DIR "/linkctl"

static ldh_env env;
static ldh_feed feed;
static char dir[96], token_path[160];

static void start(void)
{
    cr_assert_eq(ldh_mkdtemp(dir, sizeof dir, "merge"), 0);
    snprintf(token_path, sizeof token_path, "%s/admin.token", dir);
    cr_assert_eq(ldh_write_file(token_path, TOKEN "\n", strlen(TOKEN) + 1), 0);
    ldh_linkd_opts o = {.http = true, .extra = {"--admin-token-file", token_path, NULL}};
    ldh_env_start_or_fail(&env, &o);
    ldh_check(&env, ldh_feed_open(&feed, &env.linkd) == 0, "feed did not open");
}

static void teardown(void)
{
    ldh_feed_close(&feed);
    int code = ldh_env_stop(&env);
    ldh_rmtree(dir);
    cr_expect_eq(code, 0, "linkd must exit 0 on SIGTERM, exited %d", code);
}

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

static char *incident(const char *id, int status)
{
    char path[160];
    snprintf(path, sizeof path, "/api/incidents/%s", id);
    return request("GET", path, NULL, NULL, status);
}

static char *act(const char *inc, const char *verb, const char *body, int status)
{
    char path[256];
    snprintf(path, sizeof path, "/api/incidents/%s/%s", inc, verb);
    return request("POST", path, body, TOKEN, status);
}

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

static bool has_task(const char *json, const char *inc, const char *dept)
{
    char key[160];
    snprintf(key, sizeof key, "\"task_id\":\"%s/%s\"", inc, dept);
    return strstr(json, key) != NULL;
}

static void open_petition(ldh_event *ev, Linkd__V1__PetitionIssue issue, char *inc, size_t len)
{
    ldh_event_petition(ev, issue, 2);
    ldh_check(&env, ldh_ingest_accept(&env.linkd, ev, inc, len) ==
                        LINKD__V1__RESULT__RESULT_ACCEPTED, "petition not accepted");
}

/* resent_names sends <ev> again and checks it is DUPLICATE of incident <want>. */
static void resent_names(ldh_event *ev, const char *want)
{
    char got[64];
    ldh_check(&env, ldh_ingest_accept(&env.linkd, ev, got, sizeof got) ==
                        LINKD__V1__RESULT__RESULT_DUPLICATE, "the resent petition is not DUPLICATE");
    ldh_check(&env, strcmp(got, want) == 0, "the resent petition names incident %s, not %s",
              got, want);
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

static bool contains(const char *hay, size_t n, const char *needle)
{
    size_t m = strlen(needle);
    for (size_t i = 0; i + m <= n; i++)
        if (memcmp(hay + i, needle, m) == 0) return true;
    return false;
}

/* record_has waits until Redis's record of <inc> contains <text>. */
static bool record_has(const char *inc, const char *text)
{
    uint64_t end = ldh_mono_ms() + WAIT_MS;
    for (int i = 0; i < 400 && ldh_mono_ms() < end; i++) {
        redisReply *rr = ldh_redis_cmd(&env.redis, "GET ld:inc:%s", inc);
        bool found = rr && rr->type == REDIS_REPLY_STRING && contains(rr->str, rr->len, text);
        if (rr) freeReplyObject(rr);
        if (found) return true;
        ldh_sleep_ms(50);
    }
    return false;
}

/* audit_line waits for a line of ld:audit:<inc> holding both <a> and <b>. */
static bool audit_line(const char *inc, const char *a, const char *b)
{
    uint64_t end = ldh_mono_ms() + WAIT_MS;
    for (int i = 0; i < 400 && ldh_mono_ms() < end; i++) {
        redisReply *rr = ldh_redis_cmd(&env.redis, "LRANGE ld:audit:%s 0 -1", inc);
        bool found = false;
        for (size_t k = 0; rr && rr->type == REDIS_REPLY_ARRAY && k < rr->elements; k++)
            found |= strstr(rr->element[k]->str, a) && strstr(rr->element[k]->str, b);
        if (rr) freeReplyObject(rr);
        if (found) return true;
        ldh_sleep_ms(50);
    }
    return false;
}

/* audit_ok runs `linkctl audit <inc>`: the trail's hash chain verifies. */
static void audit_ok(const char *inc)
{
    char path[160];
    snprintf(path, sizeof path, "%s/audit.out", dir);
    char *argv[] = {LINKCTL, "audit", "--redis", env.redis.url, (char *)inc, NULL};
    int code = ldh_run(argv, NULL, path, path, 30000);
    char *out = ldh_read_file(path, NULL);
    cr_expect_eq(code, 0, "linkctl audit %s: exit %d\n%s", inc, code, out ? out : "");
    free(out);
}

/* new_incident copies the "new_incident" id out of a split's answer. */
static void new_incident(const char *body, char *out, size_t len)
{
    const char *p = strstr(body, "\"new_incident\":\"");
    ldh_check(&env, p != NULL, "no new incident in %s", body);
    p += strlen("\"new_incident\":\"");
    size_t n = strcspn(p, "\"");
    ldh_check(&env, n < len, "id too long");
    memcpy(out, p, n);
    out[n] = '\0';
}

#define WANG "{\"by\":\"Supervisor Wang\",\"reason\":\"the same workers at the gate\","

/* ---- merge ------------------------------------------------------------------------- */

Test(merge_split, merge_moves_what_is_missing_and_closes_the_duplicate, .fini = teardown,
     .timeout = 240)
{
    start();
    char a[64], b[64], body[256], tid[160];
    ldh_event ea, eb;
    open_petition(&ea, LINKD__V1__PETITION_ISSUE__PETITION_ISSUE_WAGE_ARREARS, a, sizeof a);
    open_petition(&eb, LINKD__V1__PETITION_ISSUE__PETITION_ISSUE_LAW_ENFORCEMENT, b, sizeof b);

    snprintf(body, sizeof body, WANG "\"incident\":\"%s\"}", b);
    char *r = act(a, "merge", body, 200);
    cr_expect(has_task(r, a, "political_legal"), "b's political_legal task moved: %s", r);
    cr_expect(has_task(r, a, "petition") && has_task(r, a, "justice"), "%s", r);
    cr_expect(strstr(r, "\"merged\":[{") && strstr(r, "\"incident\":\"") && strstr(r, b),
              "b is one of a's merged events: %s", r);
    cr_expect(strstr(r, "Supervisor Wang: merged"), "no note: %s", r);
    free(r);

    /* b is closed; its task for a department a had is withdrawn, the other
     * one reaches political_legal's terminal under a's id. */
    expect_error(incident(b, 404), 404, NULL);
    snprintf(tid, sizeof tid, "%s/political_legal", a);
    ldh_task_match m = {.task_id = tid};
    Linkd__V1__Task *t = ldh_term_await(&env.linkd, "political_legal-duty", &m, true, WAIT_MS);
    ldh_check(&env, t != NULL, "political_legal-duty never got %s", tid);
    linkd__v1__task__free_unpacked(t, NULL);

    actor_match am = {LINKD__V1__FEED_KIND__FEED_KIND_INCIDENT_MERGED, a, "Supervisor Wang"};
    const Linkd__V1__FeedEvent *fe = ldh_feed_wait(&feed, WAIT_MS, by_actor, &am);
    ldh_check(&env, fe != NULL, "no INCIDENT_MERGED on the feed");
    cr_expect_str_eq(fe->reason, "the same workers at the gate");
    cr_expect(strstr(fe->text, b), "%s", fe->text);
    actor_match cm = {LINKD__V1__FEED_KIND__FEED_KIND_INCIDENT_CLOSED, b, "Supervisor Wang"};
    fe = ldh_feed_wait(&feed, WAIT_MS, by_actor, &cm);
    ldh_check(&env, fe != NULL, "no INCIDENT_CLOSED of b on the feed");
    cr_expect(strstr(fe->text, "merged into") && strstr(fe->text, a), "%s", fe->text);

    /* Both records and both audit trails say it, naming each other. */
    char peer[96];
    cr_expect(record_has(b, "merged into"), "b's record lacks its disposition");
    snprintf(peer, sizeof peer, "\"peer\":\"%s\"", b);
    cr_expect(audit_line(a, peer, "\"actor\":\"Supervisor Wang\""), "a's trail lacks the merge");
    snprintf(peer, sizeof peer, "\"peer\":\"%s\"", a);
    cr_expect(audit_line(b, peer, "\"actor\":\"Supervisor Wang\""), "b's trail lacks the close");
    audit_ok(a);
    audit_ok(b);

    /* What no longer applies. */
    expect_error(act(a, "merge", body, 409), 409, NULL);             /* b is closed */
    snprintf(body, sizeof body, WANG "\"incident\":\"%s\"}", a);
    expect_error(act(a, "merge", body, 409), 409, NULL);             /* into itself */
    expect_error(act(a, "merge", WANG "\"incident\":\"I1-0\"}", 404), 404, "incident");
    expect_error(act(a, "merge", WANG "\"into\":\"I1-0\"}", 400), 400, "into");
    expect_error(act(a, "merge", "{\"by\":\"Wang\",\"reason\":\"r\"}", 400), 400, "incident");
    expect_error(act("I1-0", "merge", body, 404), 404, NULL);
    char path[160];
    snprintf(path, sizeof path, "/api/incidents/%s/merge", a);
    expect_error(request("POST", path, body, NULL, 401), 401, NULL);

    char *metrics = request("GET", "/metrics", NULL, NULL, 200);
    cr_expect_eq(ldh_metric(metrics, "linkd_supervisor_actions_total{department=\"petition\","
                                     "action=\"merge\"}"), 1, "%s", metrics);
    cr_expect_eq(ldh_metric(metrics, "linkd_supervisor_actions_total{department=\"petition\","
                                     "action=\"reassign\"}"), 0, "a merge is not a reassign");
    cr_expect_eq(ldh_metric(metrics, "linkd_incidents_open"), 1);
    free(metrics);
}

/* A second caller reports injuries at the same crash: merged in, the
 * incident becomes urgent, and the traffic terminal that acknowledged it at
 * normal priority is told (the task again, flagged priority_raised). */
Test(merge_split, a_merge_that_raises_the_priority_tells_the_holder, .fini = teardown,
     .timeout = 240)
{
    start();
    ldh_event ea, eb;
    char a[64], b[64], body[256], task[96];
    ldh_event_call(&ea, LINKD__V1__CALL_CATEGORY__CALL_CATEGORY_TRAFFIC_ACCIDENT);
    ldh_check(&env, ldh_ingest_accept(&env.linkd, &ea, a, sizeof a) ==
                        LINKD__V1__RESULT__RESULT_ACCEPTED, "the first call was not accepted");
    snprintf(task, sizeof task, "%s/traffic", a);
    ldh_acknowledge_at(&env, "traffic-duty", task, LINKD__V1__PRIORITY__PRIORITY_NORMAL);

    ldh_event_call(&eb, LINKD__V1__CALL_CATEGORY__CALL_CATEGORY_TRAFFIC_ACCIDENT);
    eb.call.has_priority = 1;
    eb.call.priority = LINKD__V1__PRIORITY__PRIORITY_URGENT; /* the call-taker heard of injuries */
    ldh_check(&env, ldh_ingest_accept(&env.linkd, &eb, b, sizeof b) ==
                        LINKD__V1__RESULT__RESULT_ACCEPTED, "the second call was not accepted");
    snprintf(body, sizeof body, "{\"by\":\"Supervisor Wang\",\"reason\":\"the same crash, "
             "injuries reported\",\"incident\":\"%s\"}", b);
    free(act(a, "merge", body, 200));
    ldh_expect_priority_raised(&env, "traffic-duty", task, LINKD__V1__PRIORITY__PRIORITY_URGENT);
}

/* ---- split, and both across kill -9 -------------------------------------------------- */

Test(merge_split, merge_and_split_survive_kill_9, .fini = teardown, .timeout = 300)
{
    start();
    char a[64], b[64], c[64], body[256], tid[160];
    ldh_event ea, eb;
    open_petition(&ea, LINKD__V1__PETITION_ISSUE__PETITION_ISSUE_WAGE_ARREARS, a, sizeof a);
    open_petition(&eb, LINKD__V1__PETITION_ISSUE__PETITION_ISSUE_LAW_ENFORCEMENT, b, sizeof b);
    snprintf(body, sizeof body, WANG "\"incident\":\"%s\"}", b);
    free(act(a, "merge", body, 200));
    ldh_check(&env, record_has(a, "merged by supervisor Supervisor Wang"),
              "a's record never showed the merge");

    resent_names(&eb, a); /* its work goes on in a */

    ldh_check(&env, ldh_env_restart(&env, true, NULL) == 0, "linkd did not restart");
    resent_names(&eb, a);
    resent_names(&ea, a);
    char *r = incident(a, 200);
    cr_expect(has_task(r, a, "political_legal"), "the moved task is lost: %s", r);
    cr_expect(strstr(r, "\"merged\":[{") && strstr(r, b), "the merged incident is lost: %s", r);
    cr_expect(strstr(r, "Supervisor Wang: merged"), "the note is lost: %s", r);
    free(r);
    expect_error(incident(b, 404), 404, NULL);

    /* Split b's event off again: it opens with its own plan, under a new id. */
    ldh_feed_close(&feed);
    ldh_check(&env, ldh_feed_open(&feed, &env.linkd) == 0, "feed did not reopen");
    snprintf(body, sizeof body, "{\"by\":\"Supervisor Li\",\"reason\":\"two groups after all\","
             "\"event_id\":\"%s\"}", b + 1);
    r = act(a, "split", body, 200);
    new_incident(r, c, sizeof c);
    cr_expect_neq(strcmp(c, b), 0, "b's id belongs to the closed incident");
    resent_names(&eb, c); /* not the closed b, nor a: c holds it now */
    cr_expect(has_task(r, c, "petition") && has_task(r, c, "political_legal"),
              "the rules' plan: %s", r);
    free(r);
    actor_match am = {LINKD__V1__FEED_KIND__FEED_KIND_INCIDENT_UNMERGED, a, "Supervisor Li"};
    ldh_check(&env, ldh_feed_wait(&feed, WAIT_MS, by_actor, &am) != NULL,
              "no INCIDENT_UNMERGED on the feed");
    snprintf(tid, sizeof tid, "%s/political_legal", c);
    ldh_task_match m = {.task_id = tid};
    Linkd__V1__Task *t = ldh_term_await(&env.linkd, "political_legal-duty", &m, true, WAIT_MS);
    ldh_check(&env, t != NULL, "political_legal-duty never got %s", tid);
    linkd__v1__task__free_unpacked(t, NULL);
    char want[160];
    r = incident(a, 200);
    snprintf(want, sizeof want, "\"disposition\":\"split off: %s/political_legal holds it\"", c);
    cr_expect(strstr(r, want), "the task that came with the merge is not withdrawn: %s", r);
    free(r);
    expect_error(act(a, "split", body, 409), 409, NULL); /* not there any more */
    expect_error(act(a, "split", "{\"by\":\"Li\",\"reason\":\"r\"}", 400), 400, "event_id");

    char peer[96];
    snprintf(peer, sizeof peer, "\"peer\":\"%s\"", c);
    cr_expect(audit_line(a, peer, "\"actor\":\"Supervisor Li\""), "a's trail lacks the split");
    ldh_check(&env, record_has(c, "Supervisor Li: split event"), "c's record never came");
    ldh_check(&env, ldh_env_restart(&env, true, NULL) == 0, "linkd did not restart");
    resent_names(&eb, c);
    r = incident(c, 200);
    cr_expect(has_task(r, c, "political_legal"), "%s", r);
    free(r);
    r = incident(a, 200);
    cr_expect(!strstr(r, "\"merged\":[{"), "the split event is still merged: %s", r);
    free(r);
    char *metrics = request("GET", "/metrics", NULL, NULL, 200);
    cr_expect_eq(ldh_metric(metrics, "linkd_incidents_open"), 2);
    free(metrics);
    audit_ok(a);
    audit_ok(c);
}
