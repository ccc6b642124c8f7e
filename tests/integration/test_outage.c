/* test_outage.c: Redis goes away and comes back.
 *
 * While Redis cannot confirm a write, intake answers RETRY_LATER, never
 * ACCEPTED; linkd keeps serving, reconnects by itself when Redis returns, and
 * then accepts again. Two ways Redis goes away: it stalls (SIGSTOP: a Redis
 * too slow to answer; hiredis 0.14 has no timeout, linkd's watchdog must
 * notice) and it is restarted on the same port (connections refused a while). */
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

#define WAIT_MS 30000

static ldh_env env;

static void setup(void)
{
    ldh_linkd_opts o = {.extra = {"--redis-timeout", "1000", NULL}};
    ldh_env_start_or_fail(&env, &o);
}

static void teardown(void)
{
    if (env.redis.pid) kill(env.redis.pid, SIGCONT);
    int code = ldh_env_stop(&env);
    cr_expect_eq(code, 0, "linkd must exit 0 on SIGTERM, exited %d", code);
}

/* Sends <ev> until the answer is <want>, up to WAIT_MS. Every ACCEPTED answer
 * seen is checked against the stream: it must be durable. */
static int send_until(ldh_event *ev, int want)
{
    uint64_t end = ldh_mono_ms() + WAIT_MS;
    int last = -1;
    while (ldh_mono_ms() < end) {
        Linkd__V1__IngestReply *rep = NULL;
        ldh_event *one[] = {ev};
        if (ldh_ingest(&env.linkd, one, 1, &rep) == 0 && rep && rep->n_results == 1) {
            last = (int)rep->results[0]->result;
            if (last == LINKD__V1__RESULT__RESULT_RETRY_LATER)
                ldh_check(&env, rep->results[0]->reason && *rep->results[0]->reason,
                          "RETRY_LATER comes with a reason");
        }
        if (rep) linkd__v1__ingest_reply__free_unpacked(rep, NULL);
        if (last == want) return last;
        ldh_sleep_ms(200);
    }
    return last;
}

/* Stops redis (it writes its append-only file first) but keeps its directory. */
static void shutdown_redis(void)
{
    redisReply *rep = ldh_redis_cmd(&env.redis, "SHUTDOWN");
    if (rep) freeReplyObject(rep);
    int code = 0;
    ldh_check(&env, ldh_wait_pid(env.redis.pid, LDH_STOP_MS, &code) == 0, "redis did not stop");
    env.redis.pid = 0;
    if (env.redis.ctx) {
        redisFree(env.redis.ctx);
        env.redis.ctx = NULL;
    }
}

static long long stream_len(void)
{
    return ldh_redis_int(&env.redis, "XLEN ld:events");
}

Test(outage, a_stalled_redis_gets_retry_later_then_linkd_recovers, .init = setup,
     .fini = teardown, .timeout = 180)
{
    ldh_event before, during;
    ldh_event_call(&before, LINKD__V1__CALL_CATEGORY__CALL_CATEGORY_MEDICAL);
    ldh_check(&env, send_until(&before, LINKD__V1__RESULT__RESULT_ACCEPTED) ==
                        LINKD__V1__RESULT__RESULT_ACCEPTED, "not accepted while redis is up");

    ldh_check(&env, kill(env.redis.pid, SIGSTOP) == 0, "cannot stop redis");
    ldh_event_call(&during, LINKD__V1__CALL_CATEGORY__CALL_CATEGORY_FIRE);
    int r = send_until(&during, LINKD__V1__RESULT__RESULT_RETRY_LATER);
    ldh_check(&env, r == LINKD__V1__RESULT__RESULT_RETRY_LATER,
              "with redis stalled the answer was %d, not RETRY_LATER", r);
    ldh_check(&env, ldh_linkd_log_wait(&env.linkd, "STORE-TIMEOUT", WAIT_MS),
              "the stall was not detected");

    ldh_check(&env, kill(env.redis.pid, SIGCONT) == 0, "cannot resume redis");
    r = send_until(&during, LINKD__V1__RESULT__RESULT_ACCEPTED);
    /* The first attempt may have reached Redis before the stall was seen: then
     * the event is durable already and the resend is a DUPLICATE. Both are fine;
     * what must not happen is losing it. */
    ldh_check(&env, r == LINKD__V1__RESULT__RESULT_ACCEPTED ||
                        r == LINKD__V1__RESULT__RESULT_DUPLICATE,
              "after redis resumed the answer was %d", r);
    ldh_check(&env, stream_len() == 2, "ld:events holds %lld events, not 2", stream_len());
}

Test(outage, a_restarted_redis_is_reconnected, .init = setup, .fini = teardown, .timeout = 180)
{
    ldh_event first, second;
    ldh_event_call(&first, LINKD__V1__CALL_CATEGORY__CALL_CATEGORY_CRIME);
    ldh_check(&env, send_until(&first, LINKD__V1__RESULT__RESULT_ACCEPTED) ==
                        LINKD__V1__RESULT__RESULT_ACCEPTED, "not accepted while redis is up");

    /* Stop redis (it writes its append-only file), keep its directory, start it again. */
    shutdown_redis();
    ldh_check(&env, ldh_linkd_log_wait(&env.linkd, "STORE-DOWN", WAIT_MS),
              "linkd did not notice redis leaving");
    ldh_event_call(&second, LINKD__V1__CALL_CATEGORY__CALL_CATEGORY_TRAFFIC_ACCIDENT);
    int r = send_until(&second, LINKD__V1__RESULT__RESULT_RETRY_LATER);
    ldh_check(&env, r == LINKD__V1__RESULT__RESULT_RETRY_LATER,
              "with redis down the answer was %d, not RETRY_LATER", r);

    char port[16], log[160];
    snprintf(port, sizeof port, "%d", env.redis.port);
    snprintf(log, sizeof log, "%s/redis-again.log", env.redis.dir);
    char *argv[] = {"redis-server", "--port", port, "--bind", "127.0.0.1", "--dir", env.redis.dir,
                    "--appendonly", "yes", "--save", "", "--daemonize", "no", NULL};
    pid_t pid = ldh_spawn(argv, NULL, log, log);
    ldh_check(&env, pid > 0, "cannot start redis again");
    env.redis.pid = pid;

    r = send_until(&second, LINKD__V1__RESULT__RESULT_ACCEPTED);
    ldh_check(&env, r == LINKD__V1__RESULT__RESULT_ACCEPTED,
              "after redis came back the answer was %d, not ACCEPTED", r);
    ldh_check(&env, stream_len() == 2, "ld:events holds %lld events, not 2 (the first one "
              "must have survived the restart)", stream_len());
    Linkd__V1__IngestReply *again = NULL;
    ldh_event *one[] = {&first};
    ldh_check(&env, ldh_ingest(&env.linkd, one, 1, &again) == 0 && again, "no reply");
    ldh_check(&env, again->results[0]->result == LINKD__V1__RESULT__RESULT_DUPLICATE,
              "the first event, resent, must still be a DUPLICATE");
    linkd__v1__ingest_reply__free_unpacked(again, NULL);
}

Test(outage, linkd_stops_cleanly_while_redis_is_down, .init = setup, .fini = teardown,
     .timeout = 120)
{
    shutdown_redis();
    ldh_check(&env, ldh_linkd_log_wait(&env.linkd, "STORE-CONNECT", WAIT_MS),
              "linkd is not trying to reconnect");
    /* Stopping while it reconnects must neither hang nor crash: SIGTERM, exit 0. */
    int exit_code = ldh_linkd_stop(&env.linkd);
    ldh_check(&env, exit_code == 0, "linkd exited %d on SIGTERM with redis down", exit_code);
    ldh_check(&env, ldh_linkd_log_has(&env.linkd, "SUMMARY"), "no SUMMARY line");
}

/* An intake call cut off by the stall: Redis had the script in its socket
 * buffer when it stopped, and runs it when it resumes, after linkd gave up
 * on the connection and told the producer RETRY_LATER. The event is durable
 * all the same, so linkd must find it when Redis is back and dispatch it,
 * even if the producer never sends it again; a resend is a DUPLICATE of it. */
Test(outage, an_event_redis_took_during_a_stall_is_dispatched_once_it_answers, .init = setup,
     .fini = teardown, .timeout = 180)
{
    ldh_check(&env, kill(env.redis.pid, SIGSTOP) == 0, "cannot stop redis");
    ldh_event ev;
    ldh_event_call(&ev, LINKD__V1__CALL_CATEGORY__CALL_CATEGORY_FIRE);
    Linkd__V1__IngestReply *rep = ldh_ingest1(&env.linkd, &ev);
    ldh_check(&env, rep && rep->n_results == 1, "no reply during the stall");
    int r = (int)rep->results[0]->result;
    linkd__v1__ingest_reply__free_unpacked(rep, NULL);
    ldh_check(&env, r == LINKD__V1__RESULT__RESULT_RETRY_LATER,
              "during the stall the answer was %d, not RETRY_LATER", r);
    ldh_check(&env, kill(env.redis.pid, SIGCONT) == 0, "cannot resume redis");

    /* Redis ran the script it had buffered: the event is in the stream. */
    char sid[64] = "";
    for (int i = 0; i < 200 && !sid[0]; i++) {
        redisReply *x = ldh_redis_seen(&env.redis, ev.source_id, ev.event_id);
        if (x && x->type == REDIS_REPLY_STRING) snprintf(sid, sizeof sid, "%s", x->str);
        if (x) freeReplyObject(x);
        if (!sid[0]) ldh_sleep_ms(50);
    }
    if (!sid[0]) cr_skip_test("redis did not run the buffered script; nothing to find");

    char inc[80];
    snprintf(inc, sizeof inc, "I%s", sid);
    ldh_task_match m = {.incident_id = inc, .department = "fire"};
    Linkd__V1__Task *t = ldh_term_await(&env.linkd, "fire-duty", &m, true, WAIT_MS);
    ldh_check(&env, t, "the event Redis took during the stall (%s) was never dispatched", inc);
    linkd__v1__task__free_unpacked(t, NULL);
    ldh_check(&env, ldh_linkd_log_has(&env.linkd, "CATCHUP"), "no CATCHUP log line");

    rep = ldh_ingest1(&env.linkd, &ev);
    ldh_check(&env, rep && rep->n_results == 1 &&
                        rep->results[0]->result == LINKD__V1__RESULT__RESULT_DUPLICATE &&
                        strcmp(rep->results[0]->incident_id, inc) == 0,
              "the resend must be a DUPLICATE of %s", inc);
    linkd__v1__ingest_reply__free_unpacked(rep, NULL);
    ldh_check(&env, stream_len() == 1, "ld:events holds %lld events, not 1", stream_len());
}
