/* test_spool.c: life-safety dispatch while Redis is away (linkd --spool).
 *
 * The default rules call priority critical life safety (rules/life_safety.yaml)
 * and give fire calls that priority. With Redis stopped, a fire call is still
 * ACCEPTED (once it is fsync'd to the spool file), routed and dispatched to
 * fire-duty from memory, and a resend is a DUPLICATE; a noise complaint is
 * told RETRY_LATER. When Redis returns the spooled call is in ld:events
 * exactly once, with its seen key, and the spool file is gone. The same holds
 * when linkd is killed while it holds the spool: the next start copies it. */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "harness.h"

#define WAIT_MS 30000

static ldh_env env;
static char spool_dir[96], spool_file[160];

static void setup(void)
{
    cr_assert_eq(ldh_mkdtemp(spool_dir, sizeof spool_dir, "spool"), 0);
    snprintf(spool_file, sizeof spool_file, "%s/linkd.spool", spool_dir);
    ldh_linkd_opts o = {.extra = {"--spool", spool_dir, "--redis-timeout", "1000", NULL}};
    ldh_env_start_or_fail(&env, &o);
}

static void teardown(void)
{
    int code = ldh_env_stop(&env);
    if (spool_dir[0]) ldh_rmtree(spool_dir);
    spool_dir[0] = '\0';
    cr_expect_eq(code, 0, "linkd must exit 0 on SIGTERM, exited %d", code);
}

static bool file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* Sends <ev> once; returns the result (or -1) and copies the incident id. */
static int send1(ldh_event *ev, char *inc, size_t len, char *reason, size_t rlen)
{
    Linkd__V1__IngestReply *rep = ldh_ingest1(&env.linkd, ev);
    if (!rep || rep->n_results != 1) {
        if (rep) linkd__v1__ingest_reply__free_unpacked(rep, NULL);
        return -1;
    }
    int r = (int)rep->results[0]->result;
    if (inc) snprintf(inc, len, "%s", rep->results[0]->incident_id ? rep->results[0]->incident_id : "");
    if (reason) snprintf(reason, rlen, "%s", rep->results[0]->reason ? rep->results[0]->reason : "");
    linkd__v1__ingest_reply__free_unpacked(rep, NULL);
    return r;
}

/* How many entries of ld:events carry event id <eid>. */
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

static void redis_away(void)
{
    ldh_check(&env, ldh_redis_halt(&env.redis) == 0, "redis did not stop");
    ldh_check(&env, ldh_linkd_log_wait(&env.linkd, "DEGRADED", WAIT_MS),
              "linkd did not notice redis leaving");
}

Test(spool, life_safety_is_dispatched_while_redis_is_away_and_reconciled_after, .init = setup,
     .fini = teardown, .timeout = 180)
{
    redis_away();

    ldh_event fire, noise;
    char inc[64], again[64], why[256];
    ldh_event_call(&fire, LINKD__V1__CALL_CATEGORY__CALL_CATEGORY_FIRE);
    int r = send1(&fire, inc, sizeof inc, why, sizeof why);
    ldh_check(&env, r == LINKD__V1__RESULT__RESULT_ACCEPTED,
              "a fire call with redis away was answered %d (%s), not ACCEPTED", r, why);
    ldh_check(&env, strncmp(inc, "IS", 2) == 0, "spooled incident id '%s'", inc);
    ldh_check(&env, file_exists(spool_file), "no spool file %s", spool_file);

    /* Dispatched from memory: fire-duty gets the task now. */
    ldh_task_match m = {.incident_id = inc, .department = "fire"};
    Linkd__V1__Task *t = ldh_term_await(&env.linkd, "fire-duty", &m, true, WAIT_MS);
    ldh_check(&env, t, "fire-duty never got the task of %s while redis was away", inc);
    linkd__v1__task__free_unpacked(t, NULL);

    r = send1(&fire, again, sizeof again, NULL, 0);
    ldh_check(&env, r == LINKD__V1__RESULT__RESULT_DUPLICATE && strcmp(again, inc) == 0,
              "the resent fire call was answered %d (%s)", r, again);

    ldh_event_call(&noise, LINKD__V1__CALL_CATEGORY__CALL_CATEGORY_NOISE);
    r = send1(&noise, NULL, 0, why, sizeof why);
    ldh_check(&env, r == LINKD__V1__RESULT__RESULT_RETRY_LATER,
              "a noise complaint with redis away was answered %d, not RETRY_LATER", r);

    /* Redis returns: the call goes into the stream once and the spool goes. */
    ldh_check(&env, ldh_redis_respawn(&env.redis) == 0, "redis did not start again");
    ldh_check(&env, ldh_linkd_log_wait(&env.linkd, "SPOOL-RECONCILED", WAIT_MS),
              "the spool was not reconciled");
    ldh_check(&env, copies_in_stream(fire.event_id) == 1, "the fire call is in ld:events %d times",
              copies_in_stream(fire.event_id));
    redisReply *seen = ldh_redis_seen(&env.redis, fire.source_id, fire.event_id);
    ldh_check(&env, seen && seen->type == REDIS_REPLY_STRING && strcmp(seen->str, inc + 1) == 0,
              "ld:seen of the fire call holds '%s', expected '%s'",
              seen && seen->type == REDIS_REPLY_STRING ? seen->str : "(none)", inc + 1);
    freeReplyObject(seen);
    for (int i = 0; i < 100 && file_exists(spool_file); i++) ldh_sleep_ms(50);
    ldh_check(&env, !file_exists(spool_file), "the spool file is still there");

    /* Resent now, through Redis: still the same incident, still one copy. */
    r = send1(&fire, again, sizeof again, NULL, 0);
    ldh_check(&env, r == LINKD__V1__RESULT__RESULT_DUPLICATE && strcmp(again, inc) == 0,
              "after reconciliation the fire call was answered %d (%s)", r, again);
    ldh_check(&env, send1(&noise, NULL, 0, NULL, 0) == LINKD__V1__RESULT__RESULT_ACCEPTED,
              "the noise complaint is accepted once redis is back");
    ldh_check(&env, copies_in_stream(fire.event_id) == 1, "one copy of the fire call");

    /* Its incident record reaches Redis like any other. */
    int code = ldh_linkd_stop(&env.linkd);
    ldh_check(&env, code == 0, "linkd exited %d", code);
    ldh_check(&env, ldh_redis_int(&env.redis, "EXISTS ld:inc:%s", inc) == 1,
              "no record ld:inc:%s", inc);
    ldh_check(&env, ldh_linkd_log_has(&env.linkd, "spooled 1"), "SUMMARY does not count it");
}

Test(spool, a_spool_left_by_a_crash_is_copied_by_the_next_start, .init = setup,
     .fini = teardown, .timeout = 180)
{
    redis_away();
    ldh_event fire;
    char inc[64], why[256];
    ldh_event_call(&fire, LINKD__V1__CALL_CATEGORY__CALL_CATEGORY_FIRE);
    int r = send1(&fire, inc, sizeof inc, why, sizeof why);
    ldh_check(&env, r == LINKD__V1__RESULT__RESULT_ACCEPTED, "answered %d (%s)", r, why);

    ldh_linkd_kill(&env.linkd);
    ldh_check(&env, file_exists(spool_file), "the spool file did not survive the crash");
    ldh_check(&env, ldh_redis_respawn(&env.redis) == 0, "redis did not start again");
    ldh_check(&env, ldh_linkd_respawn(&env.linkd, &env.redis, &env.opts) == 0,
              "linkd did not start again");
    ldh_check(&env, ldh_linkd_log_wait(&env.linkd, "SPOOL-RECONCILED", WAIT_MS),
              "the spool left by the crash was not reconciled");
    ldh_check(&env, copies_in_stream(fire.event_id) == 1, "the fire call is in ld:events %d times",
              copies_in_stream(fire.event_id));
    ldh_task_match m = {.incident_id = inc, .department = "fire"};
    Linkd__V1__Task *t = ldh_term_await(&env.linkd, "fire-duty", &m, true, WAIT_MS);
    ldh_check(&env, t, "after the restart fire-duty never got the task of %s", inc);
    linkd__v1__task__free_unpacked(t, NULL);
    for (int i = 0; i < 100 && file_exists(spool_file); i++) ldh_sleep_ms(50);
    ldh_check(&env, !file_exists(spool_file), "the spool file is still there");
}
