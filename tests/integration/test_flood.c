/* test_flood.c: one source floods intake. Beyond its rate it is answered
 * RETRY_LATER with a reason naming source_id and when to come back; other
 * sources are not held back; nothing it was told ACCEPTED is missing. */
#include <stdlib.h>
#include <string.h>

#include "harness.h"

#define RATE 5
#define N 20

static ldh_env env;

static void setup(void)
{
    ldh_linkd_opts o = {.extra = {"--source-rate", "5", NULL}};
    ldh_env_start_or_fail(&env, &o);
}

static void teardown(void)
{
    int code = ldh_env_stop(&env);
    cr_expect_eq(code, 0, "linkd must exit 0 on SIGTERM, exited %d", code);
}

static void from(ldh_event *ev, const char *source)
{
    ldh_event_sensor(ev, LINKD__V1__SENSOR_KIND__SENSOR_KIND_SMOKE);
    snprintf(ev->source_id, sizeof ev->source_id, "%s", source);
    ev->env.source_id = ev->source_id;
}

Test(flood, a_flooding_source_is_held_back_and_others_are_not, .init = setup, .fini = teardown,
     .timeout = 120)
{
    ldh_event evs[N], *ptr[N];
    for (int i = 0; i < N; i++) {
        from(&evs[i], "alarm-gateway-7");
        ptr[i] = &evs[i];
    }
    Linkd__V1__IngestReply *rep = NULL;
    ldh_check(&env, ldh_ingest(&env.linkd, ptr, N, &rep) == 0 && rep && rep->n_results == N,
              "no reply to the flood");
    int accepted = 0, held = 0;
    for (int i = 0; i < N; i++) {
        const Linkd__V1__IngestResult *r = rep->results[i];
        if (r->result == LINKD__V1__RESULT__RESULT_ACCEPTED) accepted++;
        if (r->result == LINKD__V1__RESULT__RESULT_RETRY_LATER) {
            held++;
            ldh_check(&env, r->reason && strstr(r->reason, "source_id") &&
                                strstr(r->reason, "alarm-gateway-7"),
                      "the reason must name the source: %s", r->reason ? r->reason : "(none)");
            ldh_check(&env, r->has_retry_after_ms && r->retry_after_ms > 0,
                      "RETRY_LATER must say when to come back");
        }
    }
    linkd__v1__ingest_reply__free_unpacked(rep, NULL);
    /* The burst is one second's worth; a slow machine may refill a token or two. */
    ldh_check(&env, accepted >= RATE && accepted < N, "accepted %d of a flood of %d", accepted, N);
    ldh_check(&env, accepted + held == N, "every event answered ACCEPTED or RETRY_LATER");
    ldh_check(&env, ldh_redis_int(&env.redis, "XLEN ld:events") == accepted,
              "ld:events must hold exactly the accepted events");

    /* Another source at the same moment goes through. */
    ldh_event other;
    from(&other, "cc-tianhe");
    char inc[64];
    ldh_check(&env, ldh_ingest_accept(&env.linkd, &other, inc, sizeof inc) ==
                        LINKD__V1__RESULT__RESULT_ACCEPTED, "another source was held back");

    /* The flooding source, after a pause, is accepted again: resent events are
     * accepted, not duplicates, since they were never taken. */
    ldh_sleep_ms(1500);
    Linkd__V1__IngestReply *again = NULL;
    ldh_event *last[] = {&evs[N - 1]};
    ldh_check(&env, ldh_ingest(&env.linkd, last, 1, &again) == 0 && again, "no reply");
    ldh_check(&env, again->results[0]->result == LINKD__V1__RESULT__RESULT_ACCEPTED,
              "after a pause the held event is accepted (got %d)", (int)again->results[0]->result);
    linkd__v1__ingest_reply__free_unpacked(again, NULL);
    ldh_check(&env, ldh_linkd_log_has(&env.linkd, "INGEST-FLOOD"), "no log line for the flood");
}
