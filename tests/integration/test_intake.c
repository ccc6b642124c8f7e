/* test_intake.c: what a producer sees at the ingest socket. Each event gets
 * one answer, in order; duplicates change nothing; bad input is rejected with
 * a reason naming the field and the daemon keeps serving; a message encoded
 * by Google's protoc, a client we did not write, is understood. */
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "wire/wire.h"

#define MAX_MESSAGE 16384   /* --max-message for these tests */
#define WEEK 604800         /* the default dedup window, seconds */

static ldh_env env;

static void setup(void)
{
    ldh_linkd_opts o = {.max_message = MAX_MESSAGE};
    ldh_env_start_or_fail(&env, &o);
}

static void teardown(void)
{
    int code = ldh_env_stop(&env);
    cr_expect_eq(code, 0, "linkd must exit 0 on SIGTERM, exited %d", code);
}

static long long stream_len(void)
{
    return ldh_redis_int(&env.redis, "XLEN ld:events");
}

static const Linkd__V1__IngestResult *only_result(const Linkd__V1__IngestReply *rep)
{
    ldh_check(&env, rep, "no reply");
    ldh_check(&env, rep->n_results == 1, "%zu results for one event", rep->n_results);
    return rep->results[0];
}

/* Sends a request that must be answered with one REJECTED whose reason
 * starts with <prefix>. */
static void expect_rejected(ldh_event *ev, const char *prefix)
{
    Linkd__V1__IngestReply *rep = ldh_ingest1(&env.linkd, ev);
    const Linkd__V1__IngestResult *r = only_result(rep);
    ldh_check(&env, r->result == LINKD__V1__RESULT__RESULT_REJECTED,
              "expected REJECTED (%s), got %d", prefix, (int)r->result);
    ldh_check(&env, r->reason && strncmp(r->reason, prefix, strlen(prefix)) == 0,
              "reason '%s' should start with '%s'", r->reason ? r->reason : "(none)", prefix);
    ldh_check(&env, !r->incident_id || !*r->incident_id, "a rejected event got an incident");
    linkd__v1__ingest_reply__free_unpacked(rep, NULL);
}

/* The daemon still serves: a fresh event is ACCEPTED. */
static void expect_still_serving(void)
{
    ldh_event ok;
    ldh_event_call(&ok, LINKD__V1__CALL_CATEGORY__CALL_CATEGORY_MEDICAL);
    char inc[64];
    int r = ldh_ingest_accept(&env.linkd, &ok, inc, sizeof inc);
    ldh_check(&env, r == LINKD__V1__RESULT__RESULT_ACCEPTED, "linkd stopped accepting: %d", r);
}

Test(intake, duplicate_event_is_answered_duplicate_and_creates_nothing, .init = setup,
     .fini = teardown, .timeout = 120)
{
    ldh_feed feed;
    ldh_check(&env, ldh_feed_open(&feed, &env.linkd) == 0, "feed subscription failed");
    ldh_event ev;
    ldh_event_call(&ev, LINKD__V1__CALL_CATEGORY__CALL_CATEGORY_FIRE);
    char inc[64];
    ldh_check(&env, ldh_ingest_accept(&env.linkd, &ev, inc, sizeof inc) ==
                        LINKD__V1__RESULT__RESULT_ACCEPTED,
              "first send not accepted");
    ldh_check(&env, stream_len() == 1, "ld:events has %lld entries", stream_len());

    /* The same event again, even with other content, and twice in one batch. */
    ev.call.category = LINKD__V1__CALL_CATEGORY__CALL_CATEGORY_CRIME;
    ev.env.occurred_at_ms += 1000;
    for (int i = 0; i < 3; i++) {
        Linkd__V1__IngestReply *rep = ldh_ingest1(&env.linkd, &ev);
        const Linkd__V1__IngestResult *r = only_result(rep);
        ldh_check(&env, r->result == LINKD__V1__RESULT__RESULT_DUPLICATE,
                  "resend %d: result %d, expected DUPLICATE", i, (int)r->result);
        ldh_check(&env, r->event_id && strcmp(r->event_id, ev.event_id) == 0,
                  "result names event '%s'", r->event_id);
        linkd__v1__ingest_reply__free_unpacked(rep, NULL);
    }
    ldh_event twin;
    ldh_event_call(&twin, LINKD__V1__CALL_CATEGORY__CALL_CATEGORY_RESCUE);
    ldh_event *batch[] = {&twin, &twin, &ev};
    Linkd__V1__IngestReply *rep = NULL;
    ldh_check(&env, ldh_ingest(&env.linkd, batch, 3, &rep) == 0, "no reply");
    ldh_check(&env, rep->n_results == 3, "%zu results for 3 events", rep->n_results);
    ldh_check(&env, rep->results[0]->result == LINKD__V1__RESULT__RESULT_ACCEPTED,
              "batch[0]: %d", (int)rep->results[0]->result);
    ldh_check(&env, rep->results[1]->result == LINKD__V1__RESULT__RESULT_DUPLICATE,
              "the same event twice in one batch: second is %d", (int)rep->results[1]->result);
    ldh_check(&env, rep->results[2]->result == LINKD__V1__RESULT__RESULT_DUPLICATE,
              "batch[2]: %d", (int)rep->results[2]->result);
    linkd__v1__ingest_reply__free_unpacked(rep, NULL);

    /* The same event id from another source is another event. */
    ldh_event other;
    ldh_event_call(&other, LINKD__V1__CALL_CATEGORY__CALL_CATEGORY_FIRE);
    snprintf(other.event_id, sizeof other.event_id, "%s", ev.event_id);
    snprintf(other.source_id, sizeof other.source_id, "it-other-source");
    char inc_other[64];
    ldh_check(&env, ldh_ingest_accept(&env.linkd, &other, inc_other, sizeof inc_other) ==
                        LINKD__V1__RESULT__RESULT_ACCEPTED,
              "same event id from another source was not accepted");

    /* Exactly three events in the log, three incidents, one opening each. */
    ldh_check(&env, stream_len() == 3, "ld:events has %lld entries, expected 3", stream_len());
    ldh_feed_match m = {.kind = LINKD__V1__FEED_KIND__FEED_KIND_INCIDENT_OPENED};
    ldh_feed_collect(&feed, 1000);
    ldh_check(&env, ldh_feed_wait_for(&feed, 20000, &m), "no INCIDENT_OPENED at all");
    ldh_feed_collect(&feed, 500);
    ldh_check(&env, ldh_feed_count(&feed, &m) == 3, "%zu INCIDENT_OPENED, expected 3",
              ldh_feed_count(&feed, &m));
    m.incident_id = inc;
    ldh_check(&env, ldh_feed_count(&feed, &m) == 1, "incident %s opened %zu times", inc,
              ldh_feed_count(&feed, &m));
    ldh_feed_close(&feed);

    int code = ldh_linkd_stop(&env.linkd);
    ldh_check(&env, code == 0, "linkd exited %d", code);
    long long open = ldh_redis_int(&env.redis, "ZCARD ld:open");
    ldh_check(&env, open == 3, "ld:open has %lld incidents, expected 3", open);
    redisReply *keys = ldh_redis_cmd(&env.redis, "KEYS ld:inc:*");
    ldh_check(&env, keys && keys->type == REDIS_REPLY_ARRAY && keys->elements == 3,
              "%zu ld:inc:* records, expected 3", keys ? keys->elements : 0);
    freeReplyObject(keys);
    /* This 7-day window's seen hash holds the stream id (the incident is
     * named by it), and lives until two windows after this one. */
    long long w = (long long)time(NULL) / WEEK;
    redisReply *id = ldh_redis_cmd(&env.redis, "HGET ld:seen:%lld %s:%s", w, ev.source_id,
                                   ev.event_id);
    if (id && id->type == REDIS_REPLY_NIL) { /* the window turned just now */
        freeReplyObject(id);
        id = ldh_redis_cmd(&env.redis, "HGET ld:seen:%lld %s:%s", --w, ev.source_id, ev.event_id);
    }
    ldh_check(&env, id && id->type == REDIS_REPLY_STRING && strcmp(id->str, inc + 1) == 0,
              "ld:seen:%lld %s:%s holds %s, expected %s", w, ev.source_id, ev.event_id,
              id && id->type == REDIS_REPLY_STRING ? id->str : "nothing", inc + 1);
    freeReplyObject(id);
    long long ttl = ldh_redis_int(&env.redis, "TTL ld:seen:%lld", w);
    ldh_check(&env, ttl > 2 * WEEK - 60 && ttl <= 3 * WEEK, "ld:seen:%lld TTL %lld, expected "
              "two to three weeks", w, ttl);
}

/* sleep_until waits for Unix time <t> (seconds, fractional). */
static void sleep_until(double t)
{
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    double left = t - (double)now.tv_sec - (double)now.tv_nsec / 1e9;
    if (left > 0) usleep((useconds_t)(left * 1e6));
}

static double wall(void)
{
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    return (double)now.tv_sec + (double)now.tv_nsec / 1e9;
}

#define WINDOW 3   /* --dedup-window for the next test, seconds */

static void setup_window(void)
{
    ldh_linkd_opts o = {.extra = {"--dedup-window", "3", NULL}};
    ldh_env_start_or_fail(&env, &o);
}

Test(intake, a_resend_is_a_duplicate_for_one_window_at_least_and_two_at_most,
     .init = setup_window, .fini = teardown, .timeout = 120)
{
    ldh_event ev;
    ldh_event_call(&ev, LINKD__V1__CALL_CATEGORY__CALL_CATEGORY_FIRE);
    char inc[64], again[64];
    /* Start early in a window, so that the machine's pace cannot carry a
     * step into the next one. */
    long long w0 = (long long)(wall() / WINDOW) + 1;
    sleep_until((double)(w0 * WINDOW) + 0.1);
    ldh_check(&env, ldh_ingest_accept(&env.linkd, &ev, inc, sizeof inc) ==
                        LINKD__V1__RESULT__RESULT_ACCEPTED, "the event was not accepted");
    ldh_check(&env, (long long)(wall() / WINDOW) == w0, "the machine is too slow for this test");
    ldh_check(&env, ldh_ingest_accept(&env.linkd, &ev, again, sizeof again) ==
                        LINKD__V1__RESULT__RESULT_DUPLICATE, "a resend at once was not a DUPLICATE");
    cr_expect_str_eq(again, inc, "a DUPLICATE names the incident the event opened");

    /* The next window: found in the window before. */
    sleep_until((double)((w0 + 1) * WINDOW) + 0.1);
    ldh_check(&env, ldh_ingest_accept(&env.linkd, &ev, again, sizeof again) ==
                        LINKD__V1__RESULT__RESULT_DUPLICATE,
              "a resend in the next window was not a DUPLICATE");
    cr_expect_str_eq(again, inc);
    ldh_check(&env, (long long)(wall() / WINDOW) == w0 + 1, "the machine is too slow for this test");

    /* Two windows on, the event id is free again; the window it was seen in
     * was let go when that window began (UNLINK, not its expiry, which is a
     * window later). */
    sleep_until((double)((w0 + 2) * WINDOW) + 0.5);
    ldh_check(&env, ldh_redis_int(&env.redis, "EXISTS ld:seen:%lld", w0) == 0,
              "the window before last is still there");
    ldh_check(&env, ldh_ingest_accept(&env.linkd, &ev, again, sizeof again) ==
                        LINKD__V1__RESULT__RESULT_ACCEPTED,
              "two windows on, the event id was not taken as new");
    /* A new event in the log (the engine may still join it to the incident
     * it matches, as any second report of the same emergency). */
    ldh_check(&env, stream_len() == 2, "ld:events has %lld entries, expected 2", stream_len());
}

Test(intake, garbage_is_rejected_as_malformed_and_linkd_keeps_serving, .init = setup,
     .fini = teardown, .timeout = 120)
{
    static const uint8_t garbage[][12] = {
        {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01},
        {0x0a, 0x7f, 0x01, 0x02},           /* an event claiming 127 bytes, with 2 */
        {0x0b, 0x00, 0x00, 0x00},           /* a start-group wire type */
        {'h', 'e', 'l', 'l', 'o', ' ', 'l', 'i', 'n', 'k', 'd', '\n'},
    };
    for (size_t i = 0; i < sizeof garbage / sizeof garbage[0]; i++) {
        Linkd__V1__IngestReply *rep = NULL;
        int rv = ldh_ingest_raw(&env.linkd, garbage[i], sizeof garbage[i], &rep);
        ldh_check(&env, rv == 0, "garbage %zu: no decodable reply (%d)", i, rv);
        const Linkd__V1__IngestResult *r = only_result(rep);
        ldh_check(&env, r->result == LINKD__V1__RESULT__RESULT_REJECTED, "garbage %zu: result %d",
                  i, (int)r->result);
        ldh_check(&env, r->reason && strncmp(r->reason, "malformed", 9) == 0,
                  "garbage %zu: reason '%s' should start with 'malformed'", i,
                  r->reason ? r->reason : "(none)");
        linkd__v1__ingest_reply__free_unpacked(rep, NULL);
        expect_still_serving();
    }
    ldh_check(&env, stream_len() == 4, "ld:events has %lld entries, expected the 4 good ones",
              stream_len());
}

Test(intake, oversize_message_gets_no_reply_and_others_are_served, .init = setup,
     .fini = teardown, .timeout = 120)
{
    /* A valid event just under the limit is fine. */
    ldh_event big;
    ldh_event_petition(&big, LINKD__V1__PETITION_ISSUE__PETITION_ISSUE_HOUSING, 40);
    char refs[40][24];
    char *ref_ptrs[40];
    for (int i = 0; i < 40; i++) {
        snprintf(refs[i], sizeof refs[i], "petitioner-%02d-%08d", i, i * 7919);
        ref_ptrs[i] = refs[i];
    }
    big.petition.petitioner_refs = ref_ptrs;
    big.petition.n_petitioner_refs = 40;
    char inc[64];
    ldh_check(&env, ldh_ingest_accept(&env.linkd, &big, inc, sizeof inc) ==
                        LINKD__V1__RESULT__RESULT_ACCEPTED,
              "a message under --max-message was not accepted");

    /* Four times the limit: dropped, no reply; the sender times out. */
    size_t len = 4 * MAX_MESSAGE;
    uint8_t *buf = malloc(len);
    cr_assert_not_null(buf);
    memset(buf, 0x0a, len);
    void *reply = NULL;
    size_t reply_len = 0;
    int rv = ldh_reqrep(env.linkd.ingest, buf, len, &reply, &reply_len, 3000);
    if (rv == 0) {
        Linkd__V1__IngestReply *rep = linkd__v1__ingest_reply__unpack(NULL, reply_len, reply);
        /* Refusing it explicitly is fine too, but never accepting it. */
        ldh_check(&env, rep && rep->n_results >= 1 &&
                            rep->results[0]->result == LINKD__V1__RESULT__RESULT_REJECTED,
                  "an oversize message got a reply that is not a rejection");
        linkd__v1__ingest_reply__free_unpacked(rep, NULL);
        nng_free(reply, reply_len);
    }
    free(buf);
    expect_still_serving();
    ldh_check(&env, stream_len() == 2, "ld:events has %lld entries, expected 2", stream_len());
}

Test(intake, missing_fields_and_unknown_enums_are_rejected_by_name, .init = setup,
     .fini = teardown, .timeout = 120)
{
    ldh_event ev;
    ldh_event_call(&ev, LINKD__V1__CALL_CATEGORY__CALL_CATEGORY_FIRE);
    ev.env.source_id = NULL;
    expect_rejected(&ev, "source_id");

    ldh_event_call(&ev, LINKD__V1__CALL_CATEGORY__CALL_CATEGORY_FIRE);
    ev.env.event_id = NULL;
    expect_rejected(&ev, "event_id");

    ldh_event_call(&ev, LINKD__V1__CALL_CATEGORY__CALL_CATEGORY_FIRE);
    ev.call.has_category = 0;
    expect_rejected(&ev, "call.category");

    ldh_event_call(&ev, LINKD__V1__CALL_CATEGORY__CALL_CATEGORY_FIRE);
    ev.call.category = (Linkd__V1__CallCategory)99;
    expect_rejected(&ev, "call.category: unknown value 99");

    ldh_event_call(&ev, LINKD__V1__CALL_CATEGORY__CALL_CATEGORY_FIRE);
    ev.env.status = (Linkd__V1__Status)77;
    expect_rejected(&ev, "status");

    ldh_event_sensor(&ev, LINKD__V1__SENSOR_KIND__SENSOR_KIND_SMOKE);
    ev.sensor.sensor_id = NULL;
    expect_rejected(&ev, "sensor.sensor_id");

    ldh_event_sensor(&ev, LINKD__V1__SENSOR_KIND__SENSOR_KIND_SMOKE);
    ev.sensor.kind = (Linkd__V1__SensorKind)12;
    expect_rejected(&ev, "sensor.kind");

    ldh_event_petition(&ev, LINKD__V1__PETITION_ISSUE__PETITION_ISSUE_DEMOLITION, 3);
    ev.petition.petitioners = 0;
    expect_rejected(&ev, "petition.petitioners");

    ldh_event_petition(&ev, LINKD__V1__PETITION_ISSUE__PETITION_ISSUE_DEMOLITION, 3);
    ev.petition.has_issue = 0;
    expect_rejected(&ev, "petition.issue");

    ldh_event_call(&ev, LINKD__V1__CALL_CATEGORY__CALL_CATEGORY_FIRE);
    ev.env.body_case = LINKD__V1__ENVELOPE__BODY__NOT_SET;
    ev.env.call = NULL;
    expect_rejected(&ev, "body");

    /* Absurd timestamps: a week and a day old, an hour ahead, seconds not ms. */
    ldh_event_call(&ev, LINKD__V1__CALL_CATEGORY__CALL_CATEGORY_FIRE);
    ev.env.occurred_at_ms = (int64_t)ldh_wall_ms() - 8LL * 24 * 3600 * 1000;
    expect_rejected(&ev, "occurred_at_ms");
    ev.env.occurred_at_ms = (int64_t)ldh_wall_ms() + 3600LL * 1000;
    expect_rejected(&ev, "occurred_at_ms");
    ev.env.occurred_at_ms = (int64_t)(ldh_wall_ms() / 1000);
    expect_rejected(&ev, "occurred_at_ms");

    ldh_check(&env, stream_len() == 0, "rejected events reached ld:events (%lld)", stream_len());
    expect_still_serving();
}

Test(intake, a_batch_is_answered_event_by_event_in_order, .init = setup, .fini = teardown,
     .timeout = 120)
{
    ldh_event a, b, c, d;
    ldh_event_call(&a, LINKD__V1__CALL_CATEGORY__CALL_CATEGORY_TRAFFIC_ACCIDENT);
    ldh_event_call(&b, LINKD__V1__CALL_CATEGORY__CALL_CATEGORY_FIRE);
    b.call.category = (Linkd__V1__CallCategory)4242;
    ldh_event_sensor(&c, LINKD__V1__SENSOR_KIND__SENSOR_KIND_WATER_LEVEL);
    ldh_event_petition(&d, LINKD__V1__PETITION_ISSUE__PETITION_ISSUE_LAND_ACQUISITION, 0);
    ldh_event *batch[] = {&a, &b, &c, &d};
    Linkd__V1__IngestReply *rep = NULL;
    ldh_check(&env, ldh_ingest(&env.linkd, batch, 4, &rep) == 0, "no reply");
    ldh_check(&env, rep->n_results == 4, "%zu results for 4 events", rep->n_results);
    static const int want[] = {LINKD__V1__RESULT__RESULT_ACCEPTED,
                               LINKD__V1__RESULT__RESULT_REJECTED,
                               LINKD__V1__RESULT__RESULT_ACCEPTED,
                               LINKD__V1__RESULT__RESULT_REJECTED};
    for (int i = 0; i < 4; i++) {
        const Linkd__V1__IngestResult *r = rep->results[i];
        ldh_check(&env, (int)r->result == want[i], "event %d: result %d, expected %d", i,
                  (int)r->result, want[i]);
        ldh_check(&env, r->event_id && strcmp(r->event_id, batch[i]->event_id) == 0,
                  "result %d is for '%s', expected '%s'", i, r->event_id, batch[i]->event_id);
        if (want[i] == LINKD__V1__RESULT__RESULT_ACCEPTED)
            ldh_check(&env, r->incident_id && r->incident_id[0] == 'I',
                      "accepted event %d without an incident id", i);
    }
    ldh_check(&env, strncmp(rep->results[1]->reason, "call.category", 13) == 0, "reason '%s'",
              rep->results[1]->reason);
    ldh_check(&env, strncmp(rep->results[3]->reason, "petition.petitioners", 20) == 0,
              "reason '%s'", rep->results[3]->reason);
    ldh_check(&env, strcmp(rep->results[0]->incident_id, rep->results[2]->incident_id) != 0,
              "a traffic accident and a flood alarm became one incident");
    linkd__v1__ingest_reply__free_unpacked(rep, NULL);
    ldh_check(&env, stream_len() == 2, "ld:events has %lld entries, expected 2", stream_len());
}

Test(intake, more_than_1024_events_are_all_rejected, .init = setup, .fini = teardown,
     .timeout = 120)
{
    /* Within --max-message: 1025 tiny events. */
    enum { N = 1025 };
    Linkd__V1__Envelope *envs = calloc(N, sizeof *envs);
    Linkd__V1__Envelope **ptrs = calloc(N, sizeof *ptrs);
    cr_assert(envs && ptrs);
    for (int i = 0; i < N; i++) {
        linkd__v1__envelope__init(&envs[i]);
        ptrs[i] = &envs[i];
    }
    Linkd__V1__IngestRequest req = LINKD__V1__INGEST_REQUEST__INIT;
    req.events = ptrs;
    req.n_events = N;
    size_t len = linkd__v1__ingest_request__get_packed_size(&req);
    uint8_t *buf = malloc(len + 1);
    cr_assert_not_null(buf);
    linkd__v1__ingest_request__pack(&req, buf);
    cr_assert_lt(len, (size_t)MAX_MESSAGE);
    Linkd__V1__IngestReply *rep = NULL;
    ldh_check(&env, ldh_ingest_raw(&env.linkd, buf, len, &rep) == 0, "no reply");
    ldh_check(&env, rep->n_results == N, "%zu results for %d events", rep->n_results, N);
    for (size_t i = 0; i < rep->n_results; i++)
        ldh_check(&env, rep->results[i]->result == LINKD__V1__RESULT__RESULT_REJECTED &&
                            rep->results[i]->reason &&
                            (strstr(rep->results[i]->reason, "too many events") ||
                             (strncmp(rep->results[i]->reason, "events", 6) == 0 &&
                              strstr(rep->results[i]->reason, "1024"))),
                  "event %zu: result %d reason '%s'", i, (int)rep->results[i]->result,
                  rep->results[i]->reason);
    linkd__v1__ingest_reply__free_unpacked(rep, NULL);
    free(buf);
    free(ptrs);
    free(envs);
    expect_still_serving();
}

static char dir[96];   /* protoc's files; removed even if the test stops early */

static void teardown_protoc(void)
{
    if (dir[0]) ldh_rmtree(dir);
    dir[0] = '\0';
    teardown();
}

/* A producer we did not write: Google's protoc encodes a text-format request. */
Test(intake, a_message_encoded_by_protoc_is_accepted, .init = setup, .fini = teardown_protoc,
     .timeout = 120)
{
    char txt[160], bin[160], err[160], rep_bin[160], rep_txt[160];
    cr_assert_eq(ldh_mkdtemp(dir, sizeof dir, "protoc"), 0);
    snprintf(txt, sizeof txt, "%s/request.txt", dir);
    snprintf(bin, sizeof bin, "%s/request.bin", dir);
    snprintf(err, sizeof err, "%s/protoc.err", dir);
    snprintf(rep_bin, sizeof rep_bin, "%s/reply.bin", dir);
    snprintf(rep_txt, sizeof rep_txt, "%s/reply.txt", dir);

    char event_id[64], text[1024];
    ldh_unique_id(event_id, sizeof event_id, "protoc");
    int n = snprintf(text, sizeof text,
                     "events {\n"
                     "  event_id: \"%s\"\n"
                     "  source_id: \"protoc-producer\"\n"
                     "  occurred_at_ms: %llu\n"
                     "  status: STATUS_ACTUAL\n"
                     "  call {\n"
                     "    category: CALL_CATEGORY_FIRE\n"
                     "    priority: PRIORITY_URGENT\n"
                     "    people: 3\n"
                     "    description: \"smoke from the third floor\"\n"
                     "    location { lat: 23.129 lon: 113.264 district: \"440104\" "
                     "grid: \"g-protoc\" address: \"1 Protoc Street\" }\n"
                     "  }\n"
                     "}\n",
                     event_id, (unsigned long long)ldh_wall_ms());
    cr_assert(n > 0 && (size_t)n < sizeof text);
    cr_assert_eq(ldh_write_file(txt, text, (size_t)n), 0);

    char *enc[] = {"protoc", "--encode=linkd.v1.IngestRequest", "-I", LD_SOURCE_DIR "/proto",
                   "linkd/v1/linkd.proto", NULL};
    int code = ldh_run(enc, txt, bin, err, 60000);
    if (code != 0) ldh_tail("protoc", err, 20);
    cr_assert_eq(code, 0, "protoc --encode failed (%d); is protobuf-compiler installed?", code);
    size_t len;
    char *msg = ldh_read_file(bin, &len);
    cr_assert(msg && len > 0);

    void *reply;
    size_t reply_len;
    int rv = ldh_reqrep(env.linkd.ingest, msg, len, &reply, &reply_len, LDH_REPLY_MS);
    ldh_check(&env, rv == 0, "no reply to protoc's message: %d", rv);
    Linkd__V1__IngestReply *rep = linkd__v1__ingest_reply__unpack(NULL, reply_len, reply);
    const Linkd__V1__IngestResult *r = only_result(rep);
    ldh_check(&env, r->result == LINKD__V1__RESULT__RESULT_ACCEPTED, "result %d reason '%s'",
              (int)r->result, r->reason ? r->reason : "");
    ldh_check(&env, r->event_id && strcmp(r->event_id, event_id) == 0, "result for '%s'",
              r->event_id);
    linkd__v1__ingest_reply__free_unpacked(rep, NULL);

    /* And protoc understands our answer. */
    cr_assert_eq(ldh_write_file(rep_bin, reply, reply_len), 0);
    nng_free(reply, reply_len);
    char *dec[] = {"protoc", "--decode=linkd.v1.IngestReply", "-I", LD_SOURCE_DIR "/proto",
                   "linkd/v1/linkd.proto", NULL};
    code = ldh_run(dec, rep_bin, rep_txt, err, 60000);
    cr_assert_eq(code, 0, "protoc --decode failed (%d)", code);
    char *decoded = ldh_read_file(rep_txt, NULL);
    cr_assert(decoded && strstr(decoded, "RESULT_ACCEPTED") && strstr(decoded, event_id),
              "protoc decoded our reply as: %s", decoded ? decoded : "(nothing)");
    free(decoded);
    free(msg);
}
