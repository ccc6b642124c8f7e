/* test_degraded.c: linkd started while Redis is down, and the escalation
 * fence across a Redis outage (linkd --spool).
 *
 * A linkd that starts without Redis is READY, degraded: life-safety events
 * (fire calls: priority critical) are spooled, accepted and dispatched, the
 * rest answered RETRY_LATER, /readyz says so. When Redis comes, recovery
 * restores what an earlier run left in it before intake opens to everything.
 * An event Redis took from a run that died before answering, resent to a
 * degraded start and spooled, stays one incident: the spooled one.
 *
 * An escalation made while Redis is away is claimed in the spool before it
 * goes out. If linkd is then killed and started again, during the outage or
 * after it, the restarted linkd finds the claim (in the spool, or in
 * ld:esc:* where it was written first thing when Redis returned) and moves
 * the task where the first run sent it without escalating it again. A claim
 * sent to Redis whose answer the connection lost (Redis stalled or killed
 * with the claim in flight) is made in the spool instead: one escalation,
 * and Redis holds the claim once it is back. Two linkd with their own spools
 * that both escalate during an outage cannot see each other's claims: both
 * escalate, and when Redis returns the one whose claim comes second reports
 * and counts the double.
 *
 * Rules: tests/data/rules-it/outage (fire and medical: acknowledge within
 * 20 s; the waits after the first escalation are an hour, so on a loaded
 * machine nothing escalates twice by itself). Each fence test picks a time
 * scale so that the first deadline passes a few seconds after the call. */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "harness.h"
#include "http_client.h"

#include <nng/protocol/reqrep0/req.h>

#define WAIT_MS 30000
#define RULES LD_SOURCE_DIR "/tests/data/rules-it/outage"

static ldh_env env;
static char spool_dir[96], spool_file[160];
static ldh_linkd other;            /* a second linkd, with a spool of its own */
static char other_spool[96];

static void setup(void)
{
    memset(&env, 0, sizeof env);
    memset(&other, 0, sizeof other);
    other_spool[0] = '\0';
    cr_assert_eq(ldh_mkdtemp(spool_dir, sizeof spool_dir, "degraded"), 0);
    snprintf(spool_file, sizeof spool_file, "%s/linkd.spool", spool_dir);
    cr_assert_eq(ldh_redis_start(&env.redis), 0, "redis did not start");
}

static void teardown(void)
{
    if (env.redis.pid > 0) kill(env.redis.pid, SIGCONT); /* a test that stalled it failed */
    int other_code = other.pid > 0 ? ldh_linkd_stop(&other) : 0;
    ldh_linkd_free(&other);
    int code = ldh_env_stop(&env);
    if (spool_dir[0]) ldh_rmtree(spool_dir);
    if (other_spool[0]) ldh_rmtree(other_spool);
    spool_dir[0] = other_spool[0] = '\0';
    cr_expect(code == 0, "linkd must exit 0 on SIGTERM, exited %d", code);
    cr_expect(other_code == 0, "the second linkd must exit 0 on SIGTERM, exited %d", other_code);
}

/* start_linkd starts env's linkd with the spool, HTTP, the time <scale> and
 * <redis_timeout> (ms, a string). */
static void set_opts(double scale, const char *redis_timeout)
{
    ldh_linkd_opts o = {.rules = RULES, .time_scale = scale, .http = true,
                        .extra = {"--spool", spool_dir, "--redis-timeout", redis_timeout, NULL}};
    env.opts = o;
}

static void start_linkd_with(double scale, const char *redis_timeout)
{
    set_opts(scale, redis_timeout);
    int rv = ldh_linkd_start(&env.linkd, &env.redis, &env.opts);
    ldh_check(&env, rv == 0, "linkd did not start: %d", rv);
}

static void start_linkd(double scale)
{
    start_linkd_with(scale, "1000");
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
    if (ldh_http(env.linkd.http, "GET", "/readyz", NULL, NULL, &r) != 0) return -1;
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

/* stream_id_of waits (bounded) until ld:events holds an event <eid> and
 * copies its stream id; false if it never does. */
static bool stream_id_of(const char *eid, char *out, size_t len)
{
    for (int k = 0; k < 200; k++) {
        redisReply *rep = ldh_redis_cmd(&env.redis, "XRANGE ld:events - +");
        bool found = false;
        for (size_t i = 0; rep && rep->type == REDIS_REPLY_ARRAY && i < rep->elements && !found;
             i++) {
            const redisReply *f = rep->element[i]->element[1];
            for (size_t j = 0; j + 1 < f->elements && !found; j += 2)
                if (strcmp(f->element[j]->str, "eid") == 0 &&
                    strcmp(f->element[j + 1]->str, eid) == 0) {
                    snprintf(out, len, "%s", rep->element[i]->element[0]->str);
                    found = true;
                }
        }
        if (rep) freeReplyObject(rep);
        if (found) return true;
        ldh_sleep_ms(50);
    }
    return false;
}

/* metric returns <series> from linkd's /metrics, or -1. */
static double metric(const char *series)
{
    ldh_http_reply r;
    memset(&r, 0, sizeof r);
    if (ldh_http(env.linkd.http, "GET", "/metrics", NULL, NULL, &r) != 0) return -1;
    double v = r.status == 200 && r.body ? ldh_metric(r.body, series) : -1;
    ldh_http_reply_free(&r);
    return v;
}

/* await_metric waits (bounded) until <series> is within [min, max]. */
static bool await_metric(const char *series, double min, double max)
{
    for (int i = 0; i < 400; i++) {
        double v = metric(series);
        if (v >= min && v <= max) return true;
        ldh_sleep_ms(50);
    }
    return false;
}

/* api_status returns the HTTP status of GET /api/incidents/<inc>. */
static int api_status(const char *inc)
{
    char path[128];
    snprintf(path, sizeof path, "/api/incidents/%s", inc);
    ldh_http_reply r;
    memset(&r, 0, sizeof r);
    if (ldh_http(env.linkd.http, "GET", path, NULL, NULL, &r) != 0) return -1;
    int st = r.status;
    ldh_http_reply_free(&r);
    return st;
}

/* tasks_held counts the tasks of <inc> that <terminal> is given by a poll
 * answered at once (every task it holds and has not receipted). */
static size_t tasks_held(const char *terminal, const char *inc)
{
    ldh_poll p = {.terminal = terminal};
    Linkd__V1__PollReply *rep = NULL;
    ldh_check(&env, ldh_term_poll(&env.linkd, &p, &rep) == 0 && rep && !rep->error,
              "a poll as %s failed", terminal);
    size_t n = 0;
    for (size_t i = 0; i < rep->n_tasks; i++)
        n += rep->tasks[i]->incident_id && strcmp(rep->tasks[i]->incident_id, inc) == 0;
    linkd__v1__poll_reply__free_unpacked(rep, NULL);
    return n;
}

/* send_unanswered sends <ev> on a REQ socket of its own and does not wait
 * for the answer: a producer whose linkd dies before answering. The caller
 * closes *s before another linkd listens on the same port, or the REQ would
 * send the request again there. */
static int send_unanswered(ldh_event *ev, nng_socket *s)
{
    Linkd__V1__IngestRequest req = LINKD__V1__INGEST_REQUEST__INIT;
    Linkd__V1__Envelope *one[] = {&ev->env};
    req.n_events = 1;
    req.events = one;
    uint8_t buf[4096];
    size_t len = linkd__v1__ingest_request__get_packed_size(&req);
    if (len > sizeof buf) return -1;
    linkd__v1__ingest_request__pack(&req, buf);
    int rv = nng_req0_open(s);
    if (rv != 0) return rv;
    nng_socket_set_ms(*s, NNG_OPT_REQ_RESENDTIME, 3600 * 1000);
    nng_socket_set_ms(*s, NNG_OPT_SENDTIMEO, LDH_REPLY_MS);
    if ((rv = nng_dial(*s, env.linkd.ingest, NULL, NNG_FLAG_NONBLOCK)) != 0 ||
        (rv = nng_send(*s, buf, len, 0)) != 0)
        ldh_nng_close(*s, "test socket");
    return rv;
}

/* acknowledge takes the task of <inc> in <dept> as <terminal> and acknowledges it. */
static void acknowledge(const char *terminal, const char *inc, const char *dept)
{
    ldh_task_match m = {.incident_id = inc, .department = dept};
    Linkd__V1__Task *t = ldh_term_await(&env.linkd, terminal, &m, true, WAIT_MS);
    ldh_check(&env, t, "%s never got the %s task of %s", terminal, dept, inc);
    int r = ldh_term_update(&env.linkd, terminal, t->task_id,
                            LINKD__V1__UPDATE_KIND__UPDATE_KIND_ACKNOWLEDGED, NULL, NULL, 0);
    ldh_check(&env, r == LINKD__V1__RESULT__RESULT_ACCEPTED, "acknowledging %s: %d", t->task_id, r);
    linkd__v1__task__free_unpacked(t, NULL);
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

/* An event Redis took from a run that died before answering, resent to a
 * degraded start and spooled: one incident, the spooled one. */
Test(degraded, an_event_redis_took_from_a_run_that_died_unanswered_stays_one_incident_when_resent,
     .init = setup, .fini = teardown, .timeout = 240)
{
    /* Redis stalls with the fire call's intake script in flight (no
     * watchdog for ten minutes), linkd dies without answering, then Redis
     * runs the script: the call is in ld:events, and no incident of it is
     * open anywhere. */
    start_linkd_with(0, "600000");
    ldh_event fire;
    ldh_event_call(&fire, LINKD__V1__CALL_CATEGORY__CALL_CATEGORY_FIRE);
    ldh_check(&env, kill(env.redis.pid, SIGSTOP) == 0, "cannot stall redis");
    nng_socket producer;
    ldh_check(&env, send_unanswered(&fire, &producer) == 0, "cannot send the fire call");
    ldh_check(&env, await_metric("linkd_intake_waiting_requests", 1, 1),
              "the fire call never went to the stalled redis");
    ldh_linkd_kill(&env.linkd);
    ldh_nng_close(producer, "test socket");
    ldh_check(&env, kill(env.redis.pid, SIGCONT) == 0, "cannot resume redis");
    char sid[48], redis_copy[64];
    ldh_check(&env, stream_id_of(fire.event_id, sid, sizeof sid),
              "redis did not run the intake script it was sent");
    snprintf(redis_copy, sizeof redis_copy, "I%s", sid);

    /* Redis goes; linkd starts degraded; the producer, never answered,
     * sends the call again: spooled, accepted, dispatched. */
    ldh_check(&env, ldh_redis_halt(&env.redis) == 0, "redis did not stop");
    set_opts(0, "1000");
    ldh_check(&env, ldh_linkd_respawn(&env.linkd, &env.redis, &env.opts) == 0,
              "linkd did not get READY without redis");
    char inc[64];
    int r = send1(&fire, inc, sizeof inc);
    ldh_check(&env, r == LINKD__V1__RESULT__RESULT_ACCEPTED && strncmp(inc, "IS", 2) == 0,
              "the fire call resent to a degraded start was answered %d (%s)", r, inc);
    acknowledge("fire-duty", inc, "fire");
    acknowledge("medical-duty", inc, "medical");

    /* Redis returns: recovery meets the call in ld:events after the mark,
     * with no record, and keeps the spooled incident instead of opening a
     * second one; the spooled copy is not appended again. */
    ldh_check(&env, ldh_redis_respawn(&env.redis) == 0, "redis did not start again");
    ldh_check(&env, ldh_linkd_log_wait(&env.linkd, "INTAKE-OPEN", WAIT_MS),
              "intake never opened after redis came");
    ldh_check(&env, ldh_linkd_log_wait(&env.linkd, "SPOOL-RECONCILED", WAIT_MS),
              "the spool was not reconciled");
    await_record(inc);
    ldh_check(&env, copies_in_stream(fire.event_id) == 1, "the fire call is in ld:events %d times",
              copies_in_stream(fire.event_id));
    ldh_check(&env, api_status(inc) == 200, "the spooled incident %s is not open", inc);
    ldh_check(&env, api_status(redis_copy) == 404, "the redis copy's incident %s was opened",
              redis_copy);
    double open = metric("linkd_incidents_open");
    ldh_check(&env, open == 1, "%g incidents open, not 1", open);
    ldh_check(&env, ldh_redis_int(&env.redis, "EXISTS ld:inc:%s", redis_copy) == 0,
              "the redis copy's incident %s has a record", redis_copy);
    ldh_check(&env, tasks_held("fire-duty", redis_copy) == 0 &&
                        tasks_held("medical-duty", redis_copy) == 0,
              "the call was dispatched a second time, as %s", redis_copy);
    ldh_check(&env, ldh_linkd_log_has(&env.linkd, "RECOVER-SPOOLED"),
              "recovery did not recognise the call as spooled");

    /* A resend after the outage is a DUPLICATE, naming the incident of the
     * copy Redis took first. */
    char again[64];
    r = send1(&fire, again, sizeof again);
    ldh_check(&env, r == LINKD__V1__RESULT__RESULT_DUPLICATE && strcmp(again, redis_copy) == 0,
              "the fire call resent after the outage was answered %d (%s), not DUPLICATE (%s)",
              r, again, redis_copy);
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

/* summary_count returns the number after <label> in <d>'s last SUMMARY
 * line, or -1. */
static long summary_count(const ldh_linkd *d, const char *label)
{
    char *log = ldh_linkd_log(d);
    const char *s = NULL;
    for (const char *p = log; p && (p = strstr(p, "SUMMARY")); p++) s = p;
    s = s ? strstr(s, label) : NULL;
    long n = s ? strtol(s + strlen(label), NULL, 10) : -1;
    free(log);
    return n;
}

static long summary_escalations(void)
{
    return summary_count(&env.linkd, "escalations ");
}

/* The escalation: Redis goes away, the fire call's acknowledge deadline
 * passes and its tasks go up (fire-duty's to the deputy, medical-duty's to
 * the command centre); then linkd is killed. The
 * fire call is sent before Redis goes (in Redis, in a record at level 0) or
 * after (spooled). Returns the fire task's id in <task>. */
static void escalate_during_outage(bool spooled, char *inc, size_t ilen, char *task, size_t tlen)
{
    start_linkd(3);
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

/* restart_finds_it_made: Redis is back with <inc>'s record still at level 0
 * and linkd is not running; a restarted linkd finds the escalation of <task>
 * made (the spool's claim), does not send it again and empties its spool. */
static void restart_finds_it_made(const char *inc, const char *task)
{
    Linkd__V1__IncidentRecord *rec = get_record(inc);
    ldh_check(&env, rec, "redis lost the record of %s", inc);
    ldh_check(&env, fire_escalations(rec) == 0, "the record already holds the escalation");
    linkd__v1__incident_record__free_unpacked(rec, NULL);
    ldh_check(&env, ldh_linkd_respawn(&env.linkd, &env.redis, &env.opts) == 0,
              "linkd did not start again");
    check_not_sent_again(inc, task);
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
    restart_finds_it_made(inc, task);
}

/* ---- a claim cut off, and two instances ------------------------------------------- */

/* stall_with_claims_in_flight stalls Redis (SIGSTOP) before the call's
 * acknowledge deadline, once linkd has nothing in flight to it, and waits
 * until the deadline's escalation claims have been sent to it: an idle
 * linkd sends a stalled Redis nothing else. No task may have escalated yet. */
static void stall_with_claims_in_flight(ldh_feed *feed, const char *task)
{
    ldh_check(&env, await_metric("linkd_redis_inflight_commands", 0, 0),
              "linkd never stopped waiting for redis");
    ldh_check(&env, kill(env.redis.pid, SIGSTOP) == 0, "cannot stall redis");
    ldh_check(&env, await_metric("linkd_redis_inflight_commands", 1, 1e9),
              "no escalation claim went to the stalled redis");
    ldh_feed_collect(feed, 100);
    ldh_feed_match m = {.kind = LINKD__V1__FEED_KIND__FEED_KIND_TASK_ESCALATED, .task_id = task};
    ldh_check(&env, ldh_feed_count(feed, &m) == 0,
              "%s escalated before redis stalled: the machine took longer than the 10 s "
              "before the deadline", task);
}

/* claims_cut_off starts linkd (the deadline 10 s after the call), opens
 * the feed, accepts a fire call (incident <inc>, its fire and medical tasks
 * <task> and <med>), waits for its record and stalls Redis while both
 * tasks' escalation claims wait for their answer. */
static void claims_cut_off(ldh_feed *feed, char inc[64], char task[96], char med[96])
{
    start_linkd_with(2, "2000");
    ldh_check(&env, ldh_feed_open(feed, &env.linkd) == 0, "feed subscription failed");
    ldh_event fire;
    char id[64];
    ldh_accept_call(&env, &fire, LINKD__V1__CALL_CATEGORY__CALL_CATEGORY_FIRE, id);
    memcpy(inc, id, sizeof id);
    snprintf(task, 96, "%s/fire", inc);
    snprintf(med, 96, "%s/medical", inc);
    await_record(inc);
    stall_with_claims_in_flight(feed, task);
}

/* escalations_from_0 counts the feed's escalations of <task> from level 0. */
static size_t escalations_from_0(const ldh_feed *feed, const char *task)
{
    ldh_feed_match m = {.kind = LINKD__V1__FEED_KIND__FEED_KIND_TASK_ESCALATED, .task_id = task,
                        .leg = LINKD__V1__LEG__LEG_ACKNOWLEDGE, .check_from_level = true,
                        .from_level = 0};
    return ldh_feed_count(feed, &m);
}

/* Redis stalls while the claim waits for its answer; the watchdog drops the
 * connection; the claim is made in the spool and the escalation goes out,
 * once. When Redis resumes it runs the claim it was sent, and the one the
 * spool writes when linkd reconnects finds the same value: no double. */
Test(degraded, a_claim_cut_off_by_a_stalled_redis_escalates_once,
     .init = setup, .fini = teardown, .timeout = 240)
{
    ldh_feed feed;
    char inc[64], task[96], med[96];
    claims_cut_off(&feed, inc, task, med);

    ldh_check(&env, ldh_feed_wait(&feed, WAIT_MS, escalated_from, task),
              "the fire task never escalated after its claim was cut off");
    ldh_check(&env, ldh_feed_wait(&feed, WAIT_MS, escalated_from, med),
              "the medical task never escalated after its claim was cut off");
    ldh_check(&env, ldh_linkd_log_has(&env.linkd, "STORE-TIMEOUT") &&
                        ldh_linkd_log_has(&env.linkd, "ESCALATION-CLAIM-SPOOLED"),
              "the claims were not cut off by the watchdog and made in the spool");
    ldh_task_match m = {.task_id = task};
    Linkd__V1__Task *t = ldh_term_await(&env.linkd, "fire-deputy", &m, true, WAIT_MS);
    ldh_check(&env, t && t->level == 1, "fire-deputy did not get %s at level 1", task);
    linkd__v1__task__free_unpacked(t, NULL);

    /* Redis resumes: the claims reach ld:esc, the record says level 1 once. */
    ldh_check(&env, kill(env.redis.pid, SIGCONT) == 0, "cannot resume redis");
    for (int i = 0; i < 600 && file_exists(spool_file); i++) ldh_sleep_ms(50);
    ldh_check(&env, !file_exists(spool_file), "the claims never left the spool");
    int k = -1;
    for (int i = 0; i < 400 && k != 1; i++) {
        Linkd__V1__IncidentRecord *rec = get_record(inc);
        k = rec ? fire_escalations(rec) : -1;
        if (rec) linkd__v1__incident_record__free_unpacked(rec, NULL);
        if (k != 1) ldh_sleep_ms(50);
    }
    ldh_check(&env, k == 1, "the record holds %d escalations of %s to level 1, not 1", k, task);
    redisReply *fence = ldh_redis_cmd(&env.redis, "GET ld:esc:%s:0:acknowledge", task);
    bool held = fence && fence->type == REDIS_REPLY_STRING;
    freeReplyObject(fence);
    ldh_check(&env, held, "the claim is not in ld:esc");
    ldh_feed_collect(&feed, 200);
    ldh_check(&env, escalations_from_0(&feed, task) == 1 && escalations_from_0(&feed, med) == 1,
              "the feed shows %zu and %zu escalations of the two tasks, not one each",
              escalations_from_0(&feed, task), escalations_from_0(&feed, med));
    ldh_feed_close(&feed);

    ldh_check(&env, ldh_linkd_stop(&env.linkd) == 0, "linkd did not stop cleanly");
    ldh_check(&env, !ldh_linkd_log_has(&env.linkd, "ESCALATION-DOUBLED"),
              "linkd took its own claim for another instance's");
    long esc = summary_count(&env.linkd, "escalations "),
         spooled = summary_count(&env.linkd, "claimed in the spool "),
         doubled = summary_count(&env.linkd, "also made elsewhere "),
         unfenced = summary_count(&env.linkd, "unfenced ");
    ldh_check(&env, esc == 2 && spooled == 2 && doubled == 0 && unfenced == 0,
              "SUMMARY: escalations %ld, claimed in the spool %ld, also made elsewhere %ld, "
              "unfenced %ld; expected 2, 2, 0, 0", esc, spooled, doubled, unfenced);
}

/* Redis is killed while the claims wait for their answer: it never runs
 * them. They are made in the spool, the tasks escalate once, and linkd is
 * killed too. Redis comes back without the claims; a restarted linkd writes
 * them from its spool before recovery, so the deadline that passes again on
 * its first turn meets them: the task goes to the deputy silently. */
Test(degraded, a_claim_cut_off_by_a_killed_redis_escalates_once_across_a_restart,
     .init = setup, .fini = teardown, .timeout = 240)
{
    /* Redis is killed: with everysec it may lose the writes of its last
     * second or two (docs/RELIABILITY.md), the incident's record with them. */
    redisReply *cfg = ldh_redis_cmd(&env.redis, "CONFIG SET appendfsync always");
    ldh_check(&env, cfg && cfg->type == REDIS_REPLY_STATUS, "CONFIG SET appendfsync always failed");
    freeReplyObject(cfg);
    ldh_feed feed;
    char inc[64], task[96], med[96];
    claims_cut_off(&feed, inc, task, med);
    ldh_redis_kill(&env.redis);

    ldh_check(&env, ldh_feed_wait(&feed, WAIT_MS, escalated_from, task),
              "the fire task never escalated after its claim was cut off");
    ldh_check(&env, ldh_feed_wait(&feed, WAIT_MS, escalated_from, med),
              "the medical task never escalated after its claim was cut off");
    ldh_feed_close(&feed);
    ldh_check(&env, ldh_linkd_log_has(&env.linkd, "ESCALATION-CLAIM-SPOOLED") &&
                        !ldh_linkd_log_has(&env.linkd, "ESCALATION-UNFENCED"),
              "the cut-off claims were not made in the spool");
    ldh_linkd_kill(&env.linkd);
    ldh_check(&env, file_exists(spool_file), "the spool file did not survive the crash");

    /* Redis back from its append-only file: the record at level 0, no claim. */
    ldh_check(&env, ldh_redis_respawn(&env.redis) == 0, "redis did not start again");
    ldh_check(&env, ldh_redis_int(&env.redis, "EXISTS ld:esc:%s:0:acknowledge", task) == 0,
              "redis holds a claim it was killed before running");
    restart_finds_it_made(inc, task);
}

/* A terminal rejects its task while Redis hangs: the task goes up at once,
 * and the claim that records the move (sent without waiting for an answer)
 * is on its way when Redis is killed, before running it. The claim is kept
 * in the spool and reaches ld:esc when Redis is back, so a second linkd or a
 * restart finds the move made. */
Test(degraded, a_rejection_claim_cut_off_by_a_killed_redis_reaches_redis_from_the_spool,
     .init = setup, .fini = teardown, .timeout = 240)
{
    start_linkd_with(1, "2000"); /* the acknowledge deadline 20 s after the call */
    ldh_feed feed;
    ldh_check(&env, ldh_feed_open(&feed, &env.linkd) == 0, "feed subscription failed");
    ldh_event fire;
    char inc[64], task[96];
    ldh_accept_call(&env, &fire, LINKD__V1__CALL_CATEGORY__CALL_CATEGORY_FIRE, inc);
    snprintf(task, sizeof task, "%s/fire", inc);
    await_record(inc);
    ldh_check(&env, await_metric("linkd_redis_inflight_commands", 0, 0),
              "linkd never stopped waiting for redis");
    ldh_check(&env, kill(env.redis.pid, SIGSTOP) == 0, "cannot stall redis");
    ldh_check(&env, ldh_term_update(&env.linkd, "fire-duty", task,
                                    LINKD__V1__UPDATE_KIND__UPDATE_KIND_REJECTED,
                                    "engine 3 is at another fire", NULL, 0) ==
                        LINKD__V1__RESULT__RESULT_ACCEPTED, "the rejection was not accepted");
    ldh_check(&env, ldh_feed_wait(&feed, WAIT_MS, escalated_from, task),
              "the rejected task did not go up at once");
    ldh_feed_close(&feed);
    ldh_check(&env, await_metric("linkd_redis_inflight_commands", 1, 1e9),
              "the claim never went to the stalled redis");
    ldh_redis_kill(&env.redis);
    ldh_check(&env, ldh_linkd_log_wait(&env.linkd, "ESCALATION-CLAIM-SPOOLED", WAIT_MS),
              "the cut-off claim was not kept in the spool");

    ldh_check(&env, ldh_redis_respawn(&env.redis) == 0, "redis did not start again");
    for (int i = 0; i < 600 && file_exists(spool_file); i++) ldh_sleep_ms(50);
    ldh_check(&env, !file_exists(spool_file), "the claim never left the spool");
    redisReply *keys = ldh_redis_cmd(&env.redis, "KEYS ld:esc:%s:*", task);
    size_t held = keys && keys->type == REDIS_REPLY_ARRAY ? keys->elements : 0;
    freeReplyObject(keys);
    ldh_check(&env, held == 1, "redis holds %zu claims of %s, not 1", held, task);
    ldh_check(&env, ldh_linkd_stop(&env.linkd) == 0, "linkd did not stop cleanly");
}

/* Two linkd with their own spools hold the same task when Redis goes away;
 * the deadline passes on both and both escalate (neither sees the other's
 * claim). When Redis returns each writes its claims with SET NX GET; the
 * one that comes second finds the other's there, logs ESCALATION-DOUBLED
 * and counts it. Real time on both: they miss the deadline in the same
 * millisecond, so their claims differ only in who made them. */
Test(degraded, two_instances_that_both_escalate_during_an_outage_report_the_double,
     .init = setup, .fini = teardown, .timeout = 240)
{
    start_linkd_with(1, "1000"); /* the deadline 20 s after the call */
    ldh_feed fa, fb;
    ldh_check(&env, ldh_feed_open(&fa, &env.linkd) == 0, "feed A subscription failed");
    ldh_event fire;
    char inc[64], task[96], med[96];
    ldh_accept_call(&env, &fire, LINKD__V1__CALL_CATEGORY__CALL_CATEGORY_FIRE, inc);
    snprintf(task, sizeof task, "%s/fire", inc);
    snprintf(med, sizeof med, "%s/medical", inc);
    await_record(inc);

    /* B restores the incident from Redis, with a spool of its own. */
    ldh_check(&env, ldh_mkdtemp(other_spool, sizeof other_spool, "degraded-b") == 0, "mkdtemp");
    char other_file[160];
    snprintf(other_file, sizeof other_file, "%s/linkd.spool", other_spool);
    ldh_linkd_opts ob = {.rules = RULES, .time_scale = 1,
                         .extra = {"--spool", other_spool, "--redis-timeout", "1000", NULL}};
    int rv = ldh_linkd_start(&other, &env.redis, &ob);
    ldh_check(&env, rv == 0, "the second linkd did not start: %d", rv);
    ldh_check(&env, ldh_feed_open(&fb, &other) == 0, "feed B subscription failed");
    ldh_check(&env, ldh_linkd_log_has(&other, "restored 1 open incidents"),
              "the second linkd did not restore the incident");

    ldh_check(&env, ldh_redis_halt(&env.redis) == 0, "redis did not stop");
    ldh_check(&env, ldh_linkd_log_wait(&env.linkd, "DEGRADED", WAIT_MS) &&
                        ldh_linkd_log_wait(&other, "DEGRADED", WAIT_MS),
              "a linkd did not notice redis leaving");
    ldh_check(&env, escalations_from_0(&fa, task) + escalations_from_0(&fb, task) == 0,
              "%s escalated before redis stopped: the machine took longer than the 20 s "
              "before the deadline", task);

    /* Both escalate both tasks, each claim in its own spool. */
    const char *tasks[] = {task, med};
    for (int i = 0; i < 2; i++) {
        ldh_check(&env, ldh_feed_wait(&fa, 2 * WAIT_MS, escalated_from, (void *)tasks[i]),
                  "A never escalated %s", tasks[i]);
        ldh_check(&env, ldh_feed_wait(&fb, 2 * WAIT_MS, escalated_from, (void *)tasks[i]),
                  "B never escalated %s", tasks[i]);
    }
    ldh_feed_close(&fa);
    ldh_feed_close(&fb);

    /* Redis returns: both write their claims; two of the four come second. */
    ldh_check(&env, ldh_redis_respawn(&env.redis) == 0, "redis did not start again");
    for (int i = 0; i < 600 && (file_exists(spool_file) || file_exists(other_file)); i++)
        ldh_sleep_ms(50);
    ldh_check(&env, !file_exists(spool_file) && !file_exists(other_file),
              "the claims never left the spools");
    for (int i = 0; i < 2; i++) {
        redisReply *fence = ldh_redis_cmd(&env.redis, "GET ld:esc:%s:0:acknowledge", tasks[i]);
        bool held = fence && fence->type == REDIS_REPLY_STRING;
        freeReplyObject(fence);
        ldh_check(&env, held, "no claim of %s in ld:esc", tasks[i]);
    }
    int oc = ldh_linkd_stop(&other);
    if (oc != 0) ldh_linkd_log_tail(&other, 60);
    ldh_check(&env, oc == 0, "the second linkd did not stop cleanly: exit code %d", oc);
    ldh_check(&env, ldh_linkd_stop(&env.linkd) == 0, "linkd did not stop cleanly");
    long da = summary_count(&env.linkd, "also made elsewhere "),
         db = summary_count(&other, "also made elsewhere "),
         ea = summary_count(&env.linkd, "escalations "), eb = summary_count(&other, "escalations ");
    ldh_check(&env, ea == 2 && eb == 2, "A escalated %ld times and B %ld, not 2 each", ea, eb);
    ldh_check(&env, da + db == 2, "doubles counted: %ld by A and %ld by B, not 2 in all", da, db);
    ldh_check(&env, (da == 0 || ldh_linkd_log_has(&env.linkd, "ESCALATION-DOUBLED")) &&
                        (db == 0 || ldh_linkd_log_has(&other, "ESCALATION-DOUBLED")),
              "a double was counted but not logged");
}
