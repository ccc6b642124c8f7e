/* test_duplicates.c: duplicate-call merging over real NNG with real Redis: two
 * callers report one fire from nearly the same place; the second event is
 * ACCEPTED into the first incident (no second fire task), the merge is on the
 * feed and in the incident's Redis record, and the second call sent again is
 * DUPLICATE of the first incident; a supervisor undoes it over HTTP and the
 * event gets an incident and a fire task of its own. */
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "http_client.h"

#define WAIT_MS 20000
#define TOKEN "merge-token-0123456789abcdef"

static ldh_env env;
static ldh_feed feed;
static char dir[128], token_path[192];

static const char *const rules =
    "departments:\n"
    "  fire:\n    terminals: [fire-duty]\n    escalation:\n"
    "      - { level: duty_officer, terminal: fire-duty, wait: 1h }\n"
    "  command:\n    terminals: [command-supervisor]\n    escalation:\n"
    "      - { level: supervisor, terminal: command-supervisor, wait: 1h }\n"
    "merge:\n"
    "  - { name: duplicate-fire-calls, match: { kind: call, category: fire }, distance: 300, "
    "window: 10m }\n"
    "routes:\n"
    "  - name: fire\n    match: { kind: call, category: fire }\n    dispatch:\n"
    "      - { department: fire, acknowledge: 1h, arrive: 2h, resolve: 3h }\n"
    "  - name: others\n    dispatch:\n"
    "      - { department: command, acknowledge: 1h, resolve: 3h }\n";

static void setup(void)
{
    char path[192];
    cr_assert_eq(ldh_mkdtemp(dir, sizeof dir, "merge"), 0);
    snprintf(path, sizeof path, "%s/rules.yaml", dir);
    cr_assert_eq(ldh_write_file(path, rules, strlen(rules)), 0);
    snprintf(token_path, sizeof token_path, "%s/admin.token", dir);
    cr_assert_eq(ldh_write_file(token_path, TOKEN "\n", strlen(TOKEN) + 1), 0);
    ldh_linkd_opts o = {.rules = dir,
                        .http = true, .extra = {"--admin-token-file", token_path, NULL}};
    ldh_env_start_or_fail(&env, &o);
    ldh_check(&env, ldh_feed_open(&feed, &env.linkd) == 0, "feed");
}

static void teardown(void)
{
    ldh_feed_close(&feed);
    int code = ldh_env_stop(&env);
    ldh_rmtree(dir);
    cr_expect_eq(code, 0, "linkd must exit 0 on SIGTERM, exited %d", code);
}

static void fire_at(ldh_event *ev, double lat, double lon, char *inc, size_t len)
{
    ldh_event_call(ev, LINKD__V1__CALL_CATEGORY__CALL_CATEGORY_FIRE);
    ev->loc.lat = lat;
    ev->loc.lon = lon;
    ldh_check(&env, ldh_ingest_accept(&env.linkd, ev, inc, len) ==
                        LINKD__V1__RESULT__RESULT_ACCEPTED, "not accepted");
}

static size_t merged_in_record(const char *inc)
{
    size_t n = 0;
    redisReply *r = ldh_redis_cmd(&env.redis, "GET ld:inc:%s", inc);
    if (r && r->type == REDIS_REPLY_STRING) {
        Linkd__V1__IncidentRecord *rec =
            linkd__v1__incident_record__unpack(NULL, r->len, (const uint8_t *)r->str);
        if (rec) n = rec->n_merged;
        if (rec) linkd__v1__incident_record__free_unpacked(rec, NULL);
    }
    if (r) freeReplyObject(r);
    return n;
}

TestSuite(duplicates, .init = setup, .fini = teardown, .timeout = 180);

Test(duplicates, a_duplicate_call_joins_and_a_supervisor_splits_it_off)
{
    ldh_event a, b, far;
    char inc_a[64], inc_b[64], inc_far[64];
    fire_at(&a, 23.1375, 113.3631, inc_a, sizeof inc_a);
    fire_at(&b, 23.1380, 113.3633, inc_b, sizeof inc_b); /* about 60 m away */
    ldh_check(&env, strcmp(inc_a, inc_b) == 0, "the duplicate joins %s, got %s", inc_a, inc_b);
    fire_at(&far, 23.2000, 113.3631, inc_far, sizeof inc_far); /* 7 km away */
    ldh_check(&env, strcmp(inc_a, inc_far) != 0, "a fire 7 km away is another incident");

    ldh_feed_match m = {.kind = LINKD__V1__FEED_KIND__FEED_KIND_INCIDENT_MERGED,
                        .incident_id = inc_a};
    const Linkd__V1__FeedEvent *fe = ldh_feed_wait_for(&feed, WAIT_MS, &m);
    ldh_check(&env, fe && strstr(fe->text, b.event_id), "no INCIDENT_MERGED naming the event");
    ldh_feed_collect(&feed, 300);
    ldh_feed_match fires = {.kind = LINKD__V1__FEED_KIND__FEED_KIND_TASK_DISPATCHED,
                            .incident_id = inc_a};
    ldh_check(&env, ldh_feed_count(&feed, &fires) == 1, "one fire task for the merged incident");
    size_t kept = 0;
    for (int i = 0; i < 100 && (kept = merged_in_record(inc_a)) != 1; i++) ldh_sleep_ms(100);
    ldh_check(&env, kept == 1, "the record keeps the merged event");
    /* The caller's system sends the second call again: it is told the incident
     * that holds it, not one under the event's own id, which never opened. */
    char again[64];
    ldh_check(&env, ldh_ingest_accept(&env.linkd, &b, again, sizeof again) ==
                        LINKD__V1__RESULT__RESULT_DUPLICATE, "the resent call is not DUPLICATE");
    ldh_check(&env, strcmp(again, inc_a) == 0,
              "the resent merged call names incident %s, not %s which holds it", again, inc_a);

    char path[160], body[256];
    snprintf(path, sizeof path, "/api/incidents/%s/unmerge", inc_a);
    snprintf(body, sizeof body, "{\"event_id\":\"%s\",\"by\":\"supervisor Li\","
             "\"reason\":\"two fires, not one\"}", b.event_id);
    ldh_http_reply r;
    ldh_check(&env, ldh_http(env.linkd.http, "POST", path, body, TOKEN, &r) == 0, "no HTTP answer");
    ldh_check(&env, r.status == 200 && strstr(r.body, "\"new_incident\":\"I"),
              "unmerge: %d %s", r.status, r.body);
    char *p = strstr(r.body, "\"new_incident\":\"") + strlen("\"new_incident\":\"");
    char own[64];
    snprintf(own, sizeof own, "%.*s", (int)(strchr(p, '"') - p), p);
    ldh_http_reply_free(&r);
    ldh_check(&env, strcmp(own, inc_a) != 0, "a new incident");
    Linkd__V1__Task *t = ldh_term_await(&env.linkd, "fire-duty",
                                        &(ldh_task_match){.incident_id = own}, true, WAIT_MS);
    ldh_check(&env, t, "fire-duty never got the split-off incident's task");
    linkd__v1__task__free_unpacked(t, NULL);
    ldh_feed_match un = {.kind = LINKD__V1__FEED_KIND__FEED_KIND_INCIDENT_UNMERGED,
                         .incident_id = inc_a};
    ldh_check(&env, ldh_feed_wait_for(&feed, WAIT_MS, &un), "no INCIDENT_UNMERGED");
    for (int i = 0; i < 100 && (kept = merged_in_record(inc_a)) != 0; i++) ldh_sleep_ms(100);
    ldh_check(&env, kept == 0, "the record no longer holds the event");
    ldh_check(&env, ldh_ingest_accept(&env.linkd, &b, again, sizeof again) ==
                        LINKD__V1__RESULT__RESULT_DUPLICATE && strcmp(again, own) == 0,
              "the resent call after the split names %s, not its own incident %s", again, own);
}

/* A second caller gives the same fire as critical (the call-taker's own
 * priority): merged in, the incident becomes critical, the feed says so and
 * fire-duty, which acknowledged it at normal priority, gets the task again,
 * flagged priority_raised. */
Test(duplicates, a_graver_duplicate_raises_the_incident_and_tells_the_holder)
{
    ldh_event a, b;
    char inc_a[64], inc_b[64], task[96];
    fire_at(&a, 23.1375, 113.3631, inc_a, sizeof inc_a);
    snprintf(task, sizeof task, "%s/fire", inc_a);
    ldh_acknowledge_at(&env, "fire-duty", task, LINKD__V1__PRIORITY__PRIORITY_NORMAL);

    ldh_event_call(&b, LINKD__V1__CALL_CATEGORY__CALL_CATEGORY_FIRE);
    b.loc.lat = 23.1380;
    b.loc.lon = 113.3633; /* about 60 m away */
    b.call.has_priority = 1;
    b.call.priority = LINKD__V1__PRIORITY__PRIORITY_CRITICAL;
    ldh_check(&env, ldh_ingest_accept(&env.linkd, &b, inc_b, sizeof inc_b) ==
                        LINKD__V1__RESULT__RESULT_ACCEPTED, "the second call was not accepted");
    ldh_check(&env, strcmp(inc_a, inc_b) == 0, "the duplicate joins %s, got %s", inc_a, inc_b);
    ldh_feed_match m = {.kind = LINKD__V1__FEED_KIND__FEED_KIND_INCIDENT_MERGED,
                        .incident_id = inc_a};
    const Linkd__V1__FeedEvent *fe = ldh_feed_wait_for(&feed, WAIT_MS, &m);
    ldh_check(&env, fe && fe->text && strstr(fe->text, "priority normal -> critical"),
              "the merge does not say the priority rose: %s", fe && fe->text ? fe->text : "-");
    ldh_expect_priority_raised(&env, "fire-duty", task, LINKD__V1__PRIORITY__PRIORITY_CRITICAL);
}
