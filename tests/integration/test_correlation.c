/* test_correlation.c: group petitions by distinct petitioners, over real NNG
 * with real Redis and the default rules (rules/correlate.yaml: five or more
 * distinct petitioners on one issue at one office within 24 hours become a
 * group petition for political_legal, with the leader the rule names).
 * Five petitioners: one political_legal task, on the first petition's
 * incident, naming the leader, on the feed, in the JSON API and in the Redis
 * record. Three petitioners, a restart, two more: the same (the windows are
 * rebuilt from ld:events). Four
 * petitioners, or one petitioner five times: none. "None" is settled by a
 * later event on the same feed: an upgrade happens inside the event that
 * completes the count, so it is published before anything that follows. */
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "http_client.h"
#include "wire/wire.h"

#define WAIT_MS 20000
#define RULE "group-petition-distinct-petitioners"
#define LEADER "Deputy Secretary Li Wei, political-legal commission (政法委副书记 李伟)"

static ldh_env env;
static ldh_feed feed;
static char office[64];

static void setup(void)
{
    ldh_linkd_opts o = {.http = true};
    ldh_env_start_or_fail(&env, &o);
    ldh_check(&env, ldh_feed_open(&feed, &env.linkd) == 0, "feed");
    ldh_unique_id(office, sizeof office, "office");
}

static void teardown(void)
{
    ldh_feed_close(&feed);
    int code = ldh_env_stop(&env);
    cr_expect_eq(code, 0, "linkd must exit 0 on SIGTERM, exited %d", code);
}

/* petition sends one petition of one petitioner, <ref>, at the test's office. */
static void petition(const char *ref, char *inc, size_t len)
{
    ldh_event ev;
    char *refs[1] = {(char *)ref};
    ldh_event_petition(&ev, LINKD__V1__PETITION_ISSUE__PETITION_ISSUE_HOUSING, 1);
    ev.petition.target_office = office;
    ev.petition.petitioner_refs = refs;
    ev.petition.n_petitioner_refs = 1;
    ldh_check(&env, ldh_ingest_accept(&env.linkd, &ev, inc, len) ==
                        LINKD__V1__RESULT__RESULT_ACCEPTED, "petition of %s not accepted", ref);
}

/* settle sends an unrelated call and waits until the feed has published it:
 * everything the earlier events caused is on the feed by then. */
static void settle(void)
{
    ldh_event ev;
    char inc[64];
    ldh_accept_call(&env, &ev, LINKD__V1__CALL_CATEGORY__CALL_CATEGORY_CRIME, inc);
    ldh_feed_match m = {.kind = LINKD__V1__FEED_KIND__FEED_KIND_INCIDENT_OPENED,
                        .incident_id = inc};
    ldh_check(&env, ldh_feed_wait_for(&feed, WAIT_MS, &m), "the settling call was not published");
}

static size_t count(int kind, const char *dept)
{
    ldh_feed_match m = {.kind = kind, .department = dept};
    return ldh_feed_count(&feed, &m);
}

/* record_task reads <inc>'s task for <dept> from its Redis record: its
 * leader into <leader> ("" if none yet) and whether a raised-priority notice
 * is still to be sent. False if the record or the task is not there yet. */
static bool record_task(const char *inc, const char *dept, char *leader, size_t len,
                        bool *raised)
{
    bool found = false;
    leader[0] = '\0';
    *raised = false;
    redisReply *r = ldh_redis_cmd(&env.redis, "GET ld:inc:%s", inc);
    if (r && r->type == REDIS_REPLY_STRING) {
        Linkd__V1__IncidentRecord *rec =
            linkd__v1__incident_record__unpack(NULL, r->len, (const uint8_t *)r->str);
        for (size_t k = 0; rec && k < rec->n_tasks; k++) {
            const Linkd__V1__Task *t = rec->tasks[k]->task;
            if (!t || !t->department || strcmp(t->department, dept) != 0) continue;
            found = true;
            if (t->leader) snprintf(leader, len, "%s", t->leader);
            *raised = t->priority_raised;
        }
        if (rec) linkd__v1__incident_record__free_unpacked(rec, NULL);
    }
    if (r) freeReplyObject(r);
    return found;
}

/* group_after_acknowledged: petition-duty acknowledges the first petition
 * (inc[0], task <task_id>) at normal priority, then four more petitioners
 * make it a group. */
static void group_after_acknowledged(char inc[5][64], char *task_id, size_t len)
{
    static const char *const refs[] = {"R-1", "R-2", "R-3", "R-4", "R-5"};
    petition(refs[0], inc[0], sizeof inc[0]);
    snprintf(task_id, len, "%s/petition", inc[0]);
    ldh_acknowledge_at(&env, "petition-duty", task_id, LINKD__V1__PRIORITY__PRIORITY_NORMAL);
    for (int i = 1; i < 5; i++) petition(refs[i], inc[i], sizeof inc[i]);
}

TestSuite(group_petition, .init = setup, .fini = teardown, .timeout = 120);

/* The petition office acknowledged the first petition at normal priority;
 * when four more petitioners make it a group, the office's terminal is told:
 * the task comes again, urgent, flagged priority_raised, until receipted. */
Test(group_petition, an_acknowledged_task_is_sent_again_when_the_group_raises_its_priority)
{
    char inc[5][64], task_id[96];
    group_after_acknowledged(inc, task_id, sizeof task_id);
    ldh_expect_priority_raised(&env, "petition-duty", task_id,
                               LINKD__V1__PRIORITY__PRIORITY_URGENT);

    /* Receipted: the notice is over. */
    ldh_task_match tm = {.task_id = task_id};
    Linkd__V1__Task *t = ldh_term_await(&env.linkd, "petition-duty", &tm, false, 3000);
    ldh_check(&env, !t, "the notice came again after its receipt (raised %d)",
              t ? t->priority_raised : -1);
}

/* linkd is killed after the group formed and before petition-duty polled
 * again: the restarted linkd still owes it the notice, and sends it. */
Test(group_petition, a_raised_priority_notice_survives_kill_9, .timeout = 180)
{
    char inc[5][64], task_id[96], leader[128];
    group_after_acknowledged(inc, task_id, sizeof task_id);
    bool kept = false;
    for (int i = 0; i < 400; i++) {
        if (record_task(inc[0], "petition", leader, sizeof leader, &kept) && kept) break;
        ldh_sleep_ms(50);
    }
    ldh_check(&env, kept, "the record of %s never held the notice", inc[0]);

    ldh_feed_close(&feed);
    ldh_check(&env, ldh_env_restart(&env, true, NULL) == 0, "linkd did not restart");
    ldh_check(&env, ldh_feed_open(&feed, &env.linkd) == 0, "feed");
    ldh_expect_priority_raised(&env, "petition-duty", task_id,
                               LINKD__V1__PRIORITY__PRIORITY_URGENT);
}

Test(group_petition, five_distinct_petitioners_are_one_task_for_political_legal_with_the_leader)
{
    static const char *const refs[] = {"R-1", "R-2", "R-3", "R-4", "R-5"};
    char inc[5][64];
    for (int i = 0; i < 5; i++) petition(refs[i], inc[i], sizeof inc[i]);

    ldh_task_match tm = {.incident_id = inc[0], .department = "political_legal"};
    Linkd__V1__Task *t = ldh_term_await(&env.linkd, "political_legal-duty", &tm, true, WAIT_MS);
    ldh_check(&env, t, "political_legal-duty never got the group petition of %s", inc[0]);
    ldh_check(&env, t->leader && strcmp(t->leader, LEADER) == 0, "leader: %s",
              t->leader ? t->leader : "(none)");
    ldh_check(&env, t->rule && strstr(t->rule, RULE), "the task cites its rule: %s",
              t->rule ? t->rule : "(none)");
    ldh_check(&env, t->priority == LINKD__V1__PRIORITY__PRIORITY_URGENT, "priority %d",
              t->priority);
    linkd__v1__task__free_unpacked(t, NULL);

    ldh_feed_match um = {.kind = LINKD__V1__FEED_KIND__FEED_KIND_INCIDENT_UPGRADED,
                         .incident_id = inc[0]};
    const Linkd__V1__FeedEvent *fe = ldh_feed_wait_for(&feed, WAIT_MS, &um);
    ldh_check(&env, fe, "no INCIDENT_UPGRADED for %s", inc[0]);
    ldh_check(&env, fe->actor && strcmp(fe->actor, "rule " RULE) == 0, "actor: %s",
              fe->actor ? fe->actor : "(none)");
    for (int i = 0; i < 5; i++)
        ldh_check(&env, fe->text && strstr(fe->text, inc[i]), "the upgrade names %s: %s", inc[i],
                  fe->text ? fe->text : "(none)");

    settle();
    ldh_check(&env, count(LINKD__V1__FEED_KIND__FEED_KIND_INCIDENT_UPGRADED, NULL) == 1,
              "one upgrade, got %zu", count(LINKD__V1__FEED_KIND__FEED_KIND_INCIDENT_UPGRADED, NULL));
    ldh_check(&env, count(LINKD__V1__FEED_KIND__FEED_KIND_TASK_DISPATCHED, "political_legal") == 1,
              "one political_legal task, got %zu",
              count(LINKD__V1__FEED_KIND__FEED_KIND_TASK_DISPATCHED, "political_legal"));

    /* The command centre's view (JSON API): the task names the leader, the
     * history the rule. */
    char path[128];
    ldh_http_reply hr;
    snprintf(path, sizeof path, "/api/incidents/%s", inc[0]);
    ldh_check(&env, ldh_http(env.linkd.http, "GET", path, NULL, NULL, &hr) == 0 && hr.status == 200,
              "GET %s", path);
    ldh_check(&env, strstr(hr.body, "\"leader\":\"Deputy Secretary Li Wei") != NULL,
              "no leader in %s", hr.body);
    ldh_check(&env, strstr(hr.body, "\"kind\":\"incident_upgraded\"") &&
                        strstr(hr.body, "rule " RULE " ["),
              "no upgrade in the history of %s", hr.body);
    ldh_http_reply_free(&hr);

    char leader[128] = "";
    for (int i = 0; i < 100 && strcmp(leader, LEADER) != 0; i++) {
        bool raised;
        record_task(inc[0], "political_legal", leader, sizeof leader, &raised);
        if (strcmp(leader, LEADER) != 0) ldh_sleep_ms(100);
    }
    ldh_check(&env, strcmp(leader, LEADER) == 0, "the Redis record of %s keeps the leader: '%s'",
              inc[0], leader);
}

static void expect_no_group(void)
{
    settle();
    ldh_check(&env, count(LINKD__V1__FEED_KIND__FEED_KIND_INCIDENT_UPGRADED, NULL) == 0,
              "no upgrade expected");
    ldh_check(&env, count(LINKD__V1__FEED_KIND__FEED_KIND_TASK_DISPATCHED, "political_legal") == 0,
              "no political_legal task expected");
    ldh_poll p = {.terminal = "political_legal-duty"};
    Linkd__V1__PollReply *rep = NULL;
    ldh_check(&env, ldh_term_poll(&env.linkd, &p, &rep) == 0 && rep, "poll");
    ldh_check(&env, rep->n_tasks == 0, "political_legal-duty holds %zu tasks", rep->n_tasks);
    linkd__v1__poll_reply__free_unpacked(rep, NULL);
    /* Each petition was dispatched as usual: to the petition bureau. */
    ldh_check(&env, count(LINKD__V1__FEED_KIND__FEED_KIND_TASK_DISPATCHED, "petition") == 5,
              "five petition tasks, got %zu",
              count(LINKD__V1__FEED_KIND__FEED_KIND_TASK_DISPATCHED, "petition"));
}

Test(group_petition, four_distinct_petitioners_are_not_a_group)
{
    char inc[64];
    static const char *const refs[] = {"R-1", "R-2", "R-3", "R-4", "R-2"};
    for (int i = 0; i < 5; i++) petition(refs[i], inc, sizeof inc);
    expect_no_group();
}

Test(group_petition, one_petitioner_five_times_is_not_a_group)
{
    char inc[64];
    for (int i = 0; i < 5; i++) petition("R-1", inc, sizeof inc);
    expect_no_group();
}

Test(group_petition, a_group_under_way_is_kept_across_a_restart)
{
    static const char *const refs[] = {"R-1", "R-2", "R-3", "R-4", "R-5"};
    char inc[5][64];
    for (int i = 0; i < 3; i++) petition(refs[i], inc[i], sizeof inc[i]);
    /* The three petitions are durable and recorded; linkd stops (graceful). */
    ldh_feed_close(&feed);
    int old_exit = -1;
    ldh_check(&env, ldh_env_restart(&env, false, &old_exit) == 0, "restart");
    ldh_check(&env, old_exit == 0, "linkd exited %d", old_exit);
    ldh_check(&env, ldh_feed_open(&feed, &env.linkd) == 0, "feed");
    ldh_check(&env, ldh_linkd_log_has(&env.linkd, "REWOUND"),
              "the windows were rebuilt from ld:events");
    for (int i = 3; i < 5; i++) petition(refs[i], inc[i], sizeof inc[i]);
    ldh_task_match tm = {.incident_id = inc[0], .department = "political_legal"};
    Linkd__V1__Task *t = ldh_term_await(&env.linkd, "political_legal-duty", &tm, true, WAIT_MS);
    ldh_check(&env, t, "no group petition on %s after the restart", inc[0]);
    ldh_check(&env, t->leader && strcmp(t->leader, LEADER) == 0, "leader: %s",
              t->leader ? t->leader : "(none)");
    linkd__v1__task__free_unpacked(t, NULL);
}
