/* test_degraded.c: linkd started while Redis is down, and the escalation
 * fence across a Redis outage (linkd --spool).
 *
 * A linkd that starts without Redis is READY, degraded: life-safety events
 * (fire calls: priority critical) are spooled, accepted and dispatched, the
 * rest answered RETRY_LATER, /readyz says so. When Redis comes, recovery
 * restores what an earlier run left in it before intake opens to everything.
 *
 * An escalation made while Redis is away is claimed in the spool before it
 * goes out. If linkd is then killed and started again, during the outage or
 * after it, the restarted linkd finds the claim (in the spool, or in
 * ld:esc:* where it was written first thing when Redis returned) and moves
 * the task where the first run sent it without escalating it again.
 *
 * Rules: tests/data/rules-it/small (fire: acknowledge within 30 s, then the
 * deputy has 2 min; medical: one level). Time runs 10 times faster in the
 * fence tests, so the acknowledge deadline passes 3 s after the call. */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "harness.h"
#include "http_client.h"

#define WAIT_MS 30000
#define RULES LD_SOURCE_DIR "/tests/data/rules-it/small"

static ldh_env env;
static char spool_dir[96], spool_file[160];
static int http_port;
static char http_arg[32];

static void setup(void)
{
    memset(&env, 0, sizeof env);
    cr_assert_eq(ldh_mkdtemp(spool_dir, sizeof spool_dir, "degraded"), 0);
    snprintf(spool_file, sizeof spool_file, "%s/linkd.spool", spool_dir);
    cr_assert_eq(ldh_free_ports(&http_port, 1), 0);
    snprintf(http_arg, sizeof http_arg, "127.0.0.1:%d", http_port);
    cr_assert_eq(ldh_redis_start(&env.redis), 0, "redis did not start");
}

static void teardown(void)
{
    int code = ldh_env_stop(&env);
    if (spool_dir[0]) ldh_rmtree(spool_dir);
    spool_dir[0] = '\0';
    cr_expect(code == 0, "linkd must exit 0 on SIGTERM, exited %d", code);
}

static void start_linkd(double scale)
{
    ldh_linkd_opts o = {.rules = RULES, .time_scale = scale,
                        .extra = {"--spool", spool_dir, "--redis-timeout", "1000", "--http",
                                  http_arg, NULL}};
    env.opts = o;
    int rv = ldh_linkd_start(&env.linkd, &env.redis, &env.opts);
    ldh_check(&env, rv == 0, "linkd did not start: %d", rv);
}

static bool file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* Sends <ev> once; returns the result (or -1) and copies the incident id. */
static int send1(ldh_event *ev, char *inc, size_t len)
{
    Linkd__V1__IngestReply *rep = ldh_ingest1(&env.linkd, ev);
    if (!rep || rep->n_results != 1) {
        if (rep) linkd__v1__ingest_reply__free_unpacked(rep, NULL);
        return -1;
    }
    int r = (int)rep->results[0]->result;
    if (inc)
        snprintf(inc, len, "%s", rep->results[0]->incident_id ? rep->results[0]->incident_id : "");
    linkd__v1__ingest_reply__free_unpacked(rep, NULL);
    return r;
}

/* readyz returns /readyz's status code and copies its body. */
static int readyz(char *body, size_t len)
{
    ldh_http_reply r;
    memset(&r, 0, sizeof r);
    if (ldh_http(http_port, "GET", "/readyz", NULL, NULL, &r) != 0) return -1;
    snprintf(body, len, "%s", r.body ? r.body : "");
    int status = r.status;
    ldh_http_reply_free(&r);
    return status;
}

static void await_record(const char *inc)
{
    bool written = false;
    for (int i = 0; i < 400 && !written; i++) {
        written = ldh_redis_int(&env.redis, "EXISTS ld:inc:%s", inc) == 1;
        if (!written) ldh_sleep_ms(50);
    }
    ldh_check(&env, written, "the record of %s was never written", inc);
}

static int copies_in_stream(const char *eid)
{
    redisReply *rep = ldh_redis_cmd(&env.redis, "XRANGE ld:events - +");
    ldh_check(&env, rep && rep->type == REDIS_REPLY_ARRAY, "XRANGE failed");
    int n = 0;
    for (size_t i = 0; i < rep->elements; i++) {
        const redisReply *f = rep->element[i]->element[1];
        for (size_t j = 0; j + 1 < f->elements; j += 2)
            if (strcmp(f->element[j]->str, "eid") == 0 && strcmp(f->element[j + 1]->str, eid) == 0)
                n++;
    }
    freeReplyObject(rep);
    return n;
}

Test(degraded, a_start_without_redis_takes_life_safety_and_recovers_when_redis_comes,
     .init = setup, .fini = teardown, .timeout = 240)
{
    /* An earlier run left an open incident in Redis. */
    start_linkd(0);
    ldh_event noise, fire, later;
    char before[64], inc[64], again[64], body[1024];
    ldh_accept_call(&env, &noise, LINKD__V1__CALL_CATEGORY__CALL_CATEGORY_NOISE, before);
    await_record(before);
    ldh_check(&env, ldh_linkd_stop(&env.linkd) == 0, "linkd did not stop cleanly");

    /* Redis is down when linkd starts: READY, degraded. */
    ldh_check(&env, ldh_redis_halt(&env.redis) == 0, "redis did not stop");
    ldh_check(&env, ldh_linkd_respawn(&env.linkd, &env.redis, &env.opts) == 0,
              "linkd did not get READY without redis");
    ldh_check(&env, ldh_linkd_log_has(&env.linkd, "ready, degraded"), "READY does not say degraded");
    int st = readyz(body, sizeof body);
    ldh_check(&env, st == 503 && strstr(body, "\"status\":\"degraded\"") &&
                        strstr(body, "life-safety only"),
              "/readyz answered %d: %s", st, body);

    /* A fire call is spooled, accepted and dispatched; a noise complaint waits. */
    ldh_event_call(&fire, LINKD__V1__CALL_CATEGORY__CALL_CATEGORY_FIRE);
    int r = send1(&fire, inc, sizeof inc);
    ldh_check(&env, r == LINKD__V1__RESULT__RESULT_ACCEPTED && strncmp(inc, "IS", 2) == 0,
              "a fire call to a linkd started without redis was answered %d (%s)", r, inc);
    ldh_task_match m = {.incident_id = inc, .department = "fire"};
    Linkd__V1__Task *t = ldh_term_await(&env.linkd, "fire-duty", &m, true, WAIT_MS);
    ldh_check(&env, t, "fire-duty never got the task of %s", inc);
    linkd__v1__task__free_unpacked(t, NULL);
    ldh_event_call(&later, LINKD__V1__CALL_CATEGORY__CALL_CATEGORY_NOISE);
    r = send1(&later, NULL, 0);
    ldh_check(&env, r == LINKD__V1__RESULT__RESULT_RETRY_LATER,
              "a noise complaint without redis was answered %d, not RETRY_LATER", r);

    /* Redis comes: recovery first, then intake takes everything. */
    ldh_check(&env, ldh_redis_respawn(&env.redis) == 0, "redis did not start again");
    ldh_check(&env, ldh_linkd_log_wait(&env.linkd, "INTAKE-OPEN", WAIT_MS),
              "intake never opened after redis came");
    char *log = ldh_linkd_log(&env.linkd);
    const char *deg = log ? strstr(log, "ready, degraded") : NULL;
    const char *rec = deg ? strstr(deg, "RECOVERED") : NULL;
    const char *open = deg ? strstr(deg, "INTAKE-OPEN") : NULL;
    bool ordered = rec && open && rec < open && strstr(rec, "restored 1 open incidents");
    free(log);
    ldh_check(&env, ordered, "recovery (restoring 1 incident) must come before intake opens");
    ldh_task_match mb = {.incident_id = before};
    t = ldh_term_await(&env.linkd, "command-supervisor", &mb, true, WAIT_MS);
    ldh_check(&env, t, "the incident %s left in redis was not recovered", before);
    linkd__v1__task__free_unpacked(t, NULL);
    r = send1(&later, NULL, 0);
    ldh_check(&env, r == LINKD__V1__RESULT__RESULT_ACCEPTED,
              "the noise complaint resent after recovery was answered %d", r);
    ldh_check(&env, ldh_linkd_log_wait(&env.linkd, "SPOOL-RECONCILED", WAIT_MS),
              "the spool was not reconciled");
    ldh_check(&env, copies_in_stream(fire.event_id) == 1, "the fire call is in ld:events %d times",
              copies_in_stream(fire.event_id));
    r = send1(&fire, again, sizeof again);
    ldh_check(&env, r == LINKD__V1__RESULT__RESULT_DUPLICATE && strcmp(again, inc) == 0,
              "the fire call resent after the outage was answered %d (%s)", r, again);
    st = readyz(body, sizeof body);
    ldh_check(&env, st == 200 && strstr(body, "\"status\":\"ready\""), "/readyz answered %d: %s",
              st, body);
}

/* ---- the fence across an outage ----------------------------------------------------- */

static Linkd__V1__IncidentRecord *get_record(const char *inc)
{
    redisReply *rep = ldh_redis_cmd(&env.redis, "GET ld:inc:%s", inc);
    ldh_check(&env, rep, "redis did not answer");
    Linkd__V1__IncidentRecord *r = NULL;
    if (rep->type == REDIS_REPLY_STRING)
        r = linkd__v1__incident_record__unpack(NULL, rep->len, (const uint8_t *)rep->str);
    freeReplyObject(rep);
    return r;
}

/* Escalations of the fire task of <rec> to level 1 on the acknowledge leg. */
static int fire_escalations(const Linkd__V1__IncidentRecord *rec)
{
    int idx = -1, n = 0;
    for (size_t i = 0; i < rec->n_tasks; i++)
        if (rec->tasks[i]->task && strcmp(rec->tasks[i]->task->department, "fire") == 0)
            idx = (int)i;
    for (size_t i = 0; i < rec->n_history; i++) {
        const Linkd__V1__HistoryEntry *h = rec->history[i];
        n += h->kind == LINKD__V1__FEED_KIND__FEED_KIND_TASK_ESCALATED &&
             (int)h->task_index == idx && h->leg == LINKD__V1__LEG__LEG_ACKNOWLEDGE &&
             h->level == 1;
    }
    return n;
}

static bool escalated_from(const Linkd__V1__FeedEvent *ev, void *arg)
{
    const char *task_id = arg;
    return ev->kind == LINKD__V1__FEED_KIND__FEED_KIND_TASK_ESCALATED && ev->task &&
           ev->task->task_id && strcmp(ev->task->task_id, task_id) == 0 && ev->from_level == 0;
}

/* The number after "escalations " in the last SUMMARY line. */
static long summary_escalations(void)
{
    char *log = ldh_linkd_log(&env.linkd);
    const char *s = NULL;
    for (const char *p = log; p && (p = strstr(p, "SUMMARY")); p++) s = p;
    s = s ? strstr(s, "escalations ") : NULL;
    long n = s ? strtol(s + 12, NULL, 10) : -1;
    free(log);
    return n;
}

/* The escalation: Redis goes away, the fire call's acknowledge deadline
 * passes and its tasks go up (fire-duty's to the deputy, medical-duty's to
 * the command centre); then linkd is killed. The
 * fire call is sent before Redis goes (in Redis, in a record at level 0) or
 * after (spooled). Returns the fire task's id in <task>. */
static void escalate_during_outage(bool spooled, char *inc, size_t ilen, char *task, size_t tlen)
{
    start_linkd(10);
    ldh_feed feed;
    ldh_check(&env, ldh_feed_open(&feed, &env.linkd) == 0, "feed subscription failed");
    ldh_event fire;
    if (!spooled) {
        char id[64];
        ldh_accept_call(&env, &fire, LINKD__V1__CALL_CATEGORY__CALL_CATEGORY_FIRE, id);
        snprintf(inc, ilen, "%s", id);
        await_record(inc);
    }
    ldh_check(&env, ldh_redis_halt(&env.redis) == 0, "redis did not stop");
    ldh_check(&env, ldh_linkd_log_wait(&env.linkd, "DEGRADED", WAIT_MS),
              "linkd did not notice redis leaving");
    if (spooled) {
        ldh_event_call(&fire, LINKD__V1__CALL_CATEGORY__CALL_CATEGORY_FIRE);
        int r = send1(&fire, inc, ilen);
        ldh_check(&env, r == LINKD__V1__RESULT__RESULT_ACCEPTED, "the fire call was answered %d", r);
    }
    char med[96];
    snprintf(task, tlen, "%s/fire", inc);
    snprintf(med, sizeof med, "%s/medical", inc);
    ldh_check(&env, ldh_feed_wait(&feed, WAIT_MS, escalated_from, task),
              "the unacknowledged fire task never escalated during the outage");
    ldh_check(&env, ldh_feed_wait(&feed, WAIT_MS, escalated_from, med),
              "the unacknowledged medical task never escalated during the outage");
    ldh_feed_close(&feed);
    ldh_check(&env, ldh_linkd_log_has(&env.linkd, "ESCALATION-UNFENCED") == false,
              "the escalation went out unfenced");
    ldh_linkd_kill(&env.linkd);
    ldh_check(&env, file_exists(spool_file), "the spool file did not survive the crash");
}

/* After the restart: the deputy gets the task once more, as a redelivery, at
 * level 1; both tasks are resolved so no later deadline escalates; the
 * stopped linkd's SUMMARY counts no escalation (neither task went up again);
 * and the record holds one. */
static void check_not_sent_again(const char *inc, const char *task)
{
    ldh_task_match m = {.task_id = task};
    Linkd__V1__Task *t = ldh_term_await(&env.linkd, "fire-deputy", &m, true, WAIT_MS);
    ldh_check(&env, t, "after the restart fire-deputy never got %s", task);
    ldh_check(&env, t->level == 1, "the task is at level %u, not 1", t->level);
    ldh_check(&env, t->redelivery, "the escalated task must come as a redelivery");
    linkd__v1__task__free_unpacked(t, NULL);
    ldh_check(&env, ldh_linkd_log_wait(&env.linkd, "ESCALATION-FENCED", WAIT_MS),
              "the restarted linkd did not recognise the escalation as made");
    int r = ldh_term_update(&env.linkd, "fire-deputy", task,
                            LINKD__V1__UPDATE_KIND__UPDATE_KIND_RESOLVED, "out", NULL, 0);
    ldh_check(&env, r == LINKD__V1__RESULT__RESULT_ACCEPTED, "resolving %s: %d", task, r);
    char med[96];
    snprintf(med, sizeof med, "%s/medical", inc);
    r = ldh_term_update(&env.linkd, "medical-duty", med,
                        LINKD__V1__UPDATE_KIND__UPDATE_KIND_RESOLVED, "treated", NULL, 0);
    ldh_check(&env, r == LINKD__V1__RESULT__RESULT_ACCEPTED, "resolving %s: %d", med, r);
}

static void check_after_stop(const char *inc, const char *task)
{
    ldh_check(&env, ldh_linkd_stop(&env.linkd) == 0, "linkd did not stop cleanly");
    long n = summary_escalations();
    ldh_check(&env, n == 0, "the restarted linkd escalated %ld times, not 0", n);
    redisReply *fence = ldh_redis_cmd(&env.redis, "GET ld:esc:%s:0:acknowledge", task);
    bool held = fence && fence->type == REDIS_REPLY_STRING;
    freeReplyObject(fence);
    ldh_check(&env, held, "the claim made during the outage is not in ld:esc");
    Linkd__V1__IncidentRecord *rec = get_record(inc);
    ldh_check(&env, rec, "no record of %s", inc);
    int k = fire_escalations(rec);
    linkd__v1__incident_record__free_unpacked(rec, NULL);
    ldh_check(&env, k == 1, "the history records %d escalations of %s to level 1, not 1", k, task);
    ldh_check(&env, !file_exists(spool_file), "the spool file is still there");
}

Test(degraded, an_escalation_during_an_outage_is_not_sent_again_by_a_restart_during_it,
     .init = setup, .fini = teardown, .timeout = 240)
{
    char inc[64], task[96];
    escalate_during_outage(true, inc, sizeof inc, task, sizeof task);
    /* Restarted while Redis is still away: the spool holds the call and the claim. */
    ldh_check(&env, ldh_linkd_respawn(&env.linkd, &env.redis, &env.opts) == 0,
              "linkd did not get READY again without redis");
    check_not_sent_again(inc, task);
    ldh_check(&env, ldh_redis_respawn(&env.redis) == 0, "redis did not start again");
    ldh_check(&env, ldh_linkd_log_wait(&env.linkd, "SPOOL-RECONCILED", WAIT_MS),
              "the spool was not reconciled");
    for (int i = 0; i < 200 && file_exists(spool_file); i++) ldh_sleep_ms(50);
    check_after_stop(inc, task);
}

Test(degraded, an_escalation_during_an_outage_is_not_sent_again_by_a_restart_after_it,
     .init = setup, .fini = teardown, .timeout = 240)
{
    char inc[64], task[96];
    escalate_during_outage(false, inc, sizeof inc, task, sizeof task);
    /* Redis returns first: its record of the incident still says level 0. */
    ldh_check(&env, ldh_redis_respawn(&env.redis) == 0, "redis did not start again");
    Linkd__V1__IncidentRecord *rec = get_record(inc);
    ldh_check(&env, rec && fire_escalations(rec) == 0, "the record already holds the escalation");
    linkd__v1__incident_record__free_unpacked(rec, NULL);
    ldh_check(&env, ldh_linkd_respawn(&env.linkd, &env.redis, &env.opts) == 0,
              "linkd did not start again");
    check_not_sent_again(inc, task);
    for (int i = 0; i < 200 && file_exists(spool_file); i++) ldh_sleep_ms(50);
    check_after_stop(inc, task);
}
