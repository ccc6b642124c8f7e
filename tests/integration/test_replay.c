/* test_replay.c: `linkctl replay` reads linkd's event log back from Redis
 * and sends it to an intake again: a second linkd opens the same incidents
 * and dispatches the same tasks, a resend is a duplicate, a drill into the
 * live linkd opens exercise incidents under new ids, the filters and ranges
 * pick what they say, RETRY_LATER answers are sent again, a broken log
 * entry is reported without stopping the rest, and a source with a key in
 * the rules is replayed with --source and --key (signed hellos), refused
 * without. Real daemons, Redis and NNG; every wait bounded. */
#include <stdlib.h>
#include <string.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>

#include "harness.h"

#define LINKCTL LD_BINARY_DIR "/linkctl"
#define RUN_MS 60000
#define WAIT_MS 20000

static ldh_env a, b; /* a: where the events were first sent; b: a fresh one */
static char tmp[128], out[192], err[192];

static void setup_a(void)
{
    ldh_env_start_or_fail(&a, NULL);
    cr_assert_eq(ldh_mkdtemp(tmp, sizeof tmp, "replay"), 0);
    snprintf(out, sizeof out, "%s/out.txt", tmp);
    snprintf(err, sizeof err, "%s/err.txt", tmp);
}

static void teardown(void)
{
    int code_b = b.linkd.pid ? ldh_env_stop(&b) : 0;
    int code_a = ldh_env_stop(&a);
    ldh_rmtree(tmp);
    cr_expect_eq(code_a, 0, "linkd a must exit 0 on SIGTERM, exited %d", code_a);
    cr_expect_eq(code_b, 0, "linkd b must exit 0 on SIGTERM, exited %d", code_b);
}

/* replay runs `linkctl replay --redis <from> <args...>` and returns its exit code. */
static int replay(const ldh_env *from, char **args)
{
    char *argv[32] = {LINKCTL, "replay", "--redis", (char *)from->redis.url};
    int n = 4;
    for (; args[n - 4] && n < 31; n++) argv[n] = args[n - 4];
    argv[n] = NULL;
    ldh_write_file(out, "", 0);
    ldh_write_file(err, "", 0);
    return ldh_run(argv, NULL, out, err, RUN_MS);
}

static bool printed(const char *path, const char *needle)
{
    char *s = ldh_read_file(path, NULL);
    bool found = s && strstr(s, needle) != NULL;
    if (!found) ldh_tail("linkctl said", path, 30);
    free(s);
    return found;
}

static bool not_printed(const char *path, const char *needle)
{
    char *s = ldh_read_file(path, NULL);
    bool absent = s && strstr(s, needle) == NULL;
    free(s);
    return absent;
}

static size_t occurrences(const char *path, const char *needle)
{
    char *s = ldh_read_file(path, NULL);
    size_t n = 0;
    for (const char *p = s; p && (p = strstr(p, needle)); p += strlen(needle)) n++;
    free(s);
    return n;
}

/* record reads incident <inc>'s record from <e>'s Redis, waiting for the
 * write-behind; NULL if it never came (free: ..._free_unpacked). */
static Linkd__V1__IncidentRecord *record(ldh_env *e, const char *inc)
{
    uint64_t end = ldh_mono_ms() + WAIT_MS;
    for (int i = 0; i < 400 && ldh_mono_ms() < end; i++) {
        redisReply *r = ldh_redis_cmd(&e->redis, "GET ld:inc:%s", inc);
        Linkd__V1__IncidentRecord *rec = NULL;
        if (r && r->type == REDIS_REPLY_STRING)
            rec = linkd__v1__incident_record__unpack(NULL, r->len, (const uint8_t *)r->str);
        if (r) freeReplyObject(r);
        if (rec) return rec;
        ldh_sleep_ms(50);
    }
    return NULL;
}

/* logged_status: the status and event id of entry <i> of <e>'s ld:events. */
static int logged(ldh_env *e, size_t i, char *eid, size_t len)
{
    redisReply *r = ldh_redis_cmd(&e->redis, "XRANGE ld:events - +");
    int status = -1;
    eid[0] = '\0';
    if (r && r->type == REDIS_REPLY_ARRAY && i < r->elements) {
        const redisReply *f = r->element[i]->element[1];
        for (size_t k = 0; k + 1 < f->elements; k += 2) {
            if (strcmp(f->element[k]->str, "pb") != 0) continue;
            Linkd__V1__Envelope *ev = linkd__v1__envelope__unpack(
                NULL, f->element[k + 1]->len, (const uint8_t *)f->element[k + 1]->str);
            if (ev) {
                status = ev->has_status ? (int)ev->status : 0;
                snprintf(eid, len, "%s", ev->event_id);
                linkd__v1__envelope__free_unpacked(ev, NULL);
            }
        }
    }
    if (r) freeReplyObject(r);
    return status;
}

/* stream_id: the id of entry <i> of <e>'s ld:events, into <out>. */
static void stream_id(ldh_env *e, size_t i, char *id, size_t len)
{
    redisReply *r = ldh_redis_cmd(&e->redis, "XRANGE ld:events - +");
    id[0] = '\0';
    if (r && r->type == REDIS_REPLY_ARRAY && i < r->elements)
        snprintf(id, len, "%s", r->element[i]->element[0]->str);
    if (r) freeReplyObject(r);
}

/* incident_of finds the open incident of event <eid> in <e>: the id into <inc>. */
static bool incident_of(ldh_env *e, const char *eid, char *inc, size_t len)
{
    uint64_t end = ldh_mono_ms() + WAIT_MS;
    for (int i = 0; i < 400 && ldh_mono_ms() < end; i++) {
        redisReply *r = ldh_redis_cmd(&e->redis, "ZRANGE ld:open 0 -1");
        bool found = false;
        for (size_t k = 0; r && r->type == REDIS_REPLY_ARRAY && k < r->elements && !found; k++) {
            Linkd__V1__IncidentRecord *rec = record(e, r->element[k]->str);
            found = rec && rec->event_id && strcmp(rec->event_id, eid) == 0;
            if (found) snprintf(inc, len, "%s", rec->incident_id);
            linkd__v1__incident_record__free_unpacked(rec, NULL);
        }
        if (r) freeReplyObject(r);
        if (found) return true;
        ldh_sleep_ms(50);
    }
    return false;
}

Test(replay, a_fresh_linkd_opens_the_same_incidents_and_a_second_replay_is_duplicate,
     .init = setup_a, .fini = teardown, .timeout = 240)
{
    ldh_event fire, petition, smoke;
    char inc[64];
    ldh_accept_call(&a, &fire, LINKD__V1__CALL_CATEGORY__CALL_CATEGORY_FIRE, inc);
    ldh_event_petition(&petition, LINKD__V1__PETITION_ISSUE__PETITION_ISSUE_WAGE_ARREARS, 3);
    ldh_check(&a, ldh_ingest_accept(&a.linkd, &petition, inc, sizeof inc) ==
                      LINKD__V1__RESULT__RESULT_ACCEPTED, "petition not accepted");
    ldh_event_sensor(&smoke, LINKD__V1__SENSOR_KIND__SENSOR_KIND_SMOKE);
    ldh_check(&a, ldh_ingest_accept(&a.linkd, &smoke, inc, sizeof inc) ==
                      LINKD__V1__RESULT__RESULT_ACCEPTED, "sensor alarm not accepted");
    ldh_env_start_or_fail(&b, NULL);

    char *args[] = {"--ingest", b.linkd.ingest, "--verbose", NULL};
    int code = replay(&a, args);
    ldh_check(&b, code == 0, "replay exited %d", code);
    ldh_check(&b, occurrences(out, "ACCEPTED ") == 3 && printed(out, "replayed 3 events of 3"),
              "three events should have been accepted by b");
    ldh_check(&b, ldh_redis_int(&b.redis, "XLEN ld:events") == 3, "b's log should hold 3 events");

    /* b dispatches the fire call as a did: its fire desk gets the task. */
    char b_inc[64];
    ldh_check(&b, incident_of(&b, fire.event_id, b_inc, sizeof b_inc),
              "b opened no incident for the fire call %s", fire.event_id);
    ldh_task_match m = {.incident_id = b_inc, .department = "fire"};
    Linkd__V1__Task *t = ldh_term_await(&b.linkd, "fire-duty", &m, true, WAIT_MS);
    ldh_check(&b, t && strcmp(t->event_id, fire.event_id) == 0,
              "b's fire-duty never got the replayed fire call's task");
    linkd__v1__task__free_unpacked(t, NULL);
    ldh_check(&b, incident_of(&b, petition.event_id, b_inc, sizeof b_inc) &&
                      incident_of(&b, smoke.event_id, b_inc, sizeof b_inc),
              "b should hold the petition's and the alarm's incidents too");

    /* The same ids again: b answers DUPLICATE and changes nothing. */
    code = replay(&a, args);
    ldh_check(&b, code == 0, "a second replay exited %d", code);
    ldh_check(&b, occurrences(out, "DUPLICATE ") == 3, "the second replay should be all duplicates");
    ldh_check(&b, ldh_redis_int(&b.redis, "XLEN ld:events") == 3, "b's log grew on duplicates");
}

Test(replay, a_drill_into_the_live_linkd_opens_exercise_incidents_under_new_ids,
     .init = setup_a, .fini = teardown, .timeout = 240)
{
    ldh_event fire;
    char inc[64], eid[200], want[200];
    ldh_accept_call(&a, &fire, LINKD__V1__CALL_CATEGORY__CALL_CATEGORY_FIRE, inc);

    /* Without a tag the live linkd has them already. */
    char *same[] = {"--ingest", a.linkd.ingest, "--verbose", NULL};
    ldh_check(&a, replay(&a, same) == 0 && printed(out, "DUPLICATE "), "expected a duplicate");
    ldh_check(&a, ldh_redis_int(&a.redis, "XLEN ld:events") == 1, "a duplicate was logged");

    char *drill[] = {"--ingest", a.linkd.ingest, "--exercise", "--tag", "drill1", "--retime",
                     "--verbose", NULL};
    int code = replay(&a, drill);
    ldh_check(&a, code == 0 && occurrences(out, "ACCEPTED ") == 1, "the drill replay exited %d", code);
    ldh_check(&a, ldh_redis_int(&a.redis, "XLEN ld:events") == 2, "the drill event was not logged");
    snprintf(want, sizeof want, "%s~drill1", fire.event_id);
    ldh_check(&a, logged(&a, 1, eid, sizeof eid) == LINKD__V1__STATUS__STATUS_EXERCISE &&
                      strcmp(eid, want) == 0,
              "the log's second entry should be %s as an exercise, is %s", want, eid);
    char drill_inc[64];
    ldh_check(&a, incident_of(&a, want, drill_inc, sizeof drill_inc), "no incident for the drill");
    ldh_check(&a, strcmp(drill_inc, inc) != 0, "the drill joined the live incident %s", inc);
    Linkd__V1__IncidentRecord *rec = record(&a, drill_inc);
    ldh_check(&a, rec && rec->status == LINKD__V1__STATUS__STATUS_EXERCISE,
              "the drill's incident is not an exercise");
    linkd__v1__incident_record__free_unpacked(rec, NULL);
    rec = record(&a, inc);
    ldh_check(&a, rec && rec->status == LINKD__V1__STATUS__STATUS_ACTUAL,
              "the live incident changed status");
    linkd__v1__incident_record__free_unpacked(rec, NULL);
}

Test(replay, filters_ranges_and_bad_input, .init = setup_a, .fini = teardown, .timeout = 240)
{
    ldh_event ev[4];
    char inc[64];
    ldh_event_call(&ev[0], LINKD__V1__CALL_CATEGORY__CALL_CATEGORY_FIRE);
    ldh_event_call(&ev[1], LINKD__V1__CALL_CATEGORY__CALL_CATEGORY_MEDICAL);
    ldh_event_petition(&ev[2], LINKD__V1__PETITION_ISSUE__PETITION_ISSUE_WAGE_ARREARS, 2);
    ldh_event_call(&ev[3], LINKD__V1__CALL_CATEGORY__CALL_CATEGORY_CRIME);
    snprintf(ev[3].source_id, sizeof ev[3].source_id, "other-centre");
    for (int i = 0; i < 4; i++)
        ldh_check(&a, ldh_ingest_accept(&a.linkd, &ev[i], inc, sizeof inc) ==
                          LINKD__V1__RESULT__RESULT_ACCEPTED, "event %d not accepted", i);

    /* --kind and --source pick; a dry run sends nothing. */
    char *calls[] = {"--kind", "call", "--source", "it-source", "--dry-run", NULL};
    ldh_check(&a, replay(&a, calls) == 0, "dry run failed");
    ldh_check(&a, printed(out, ev[0].event_id) && printed(out, ev[1].event_id) &&
                      not_printed(out, ev[2].event_id) && not_printed(out, ev[3].event_id) &&
                      printed(out, "would send 2 events of 4"),
              "--kind call --source it-source should pick the first two");
    ldh_check(&a, ldh_redis_int(&a.redis, "XLEN ld:events") == 4, "a dry run sent something");

    /* --from a stream id, --count. */
    char second[48];
    stream_id(&a, 1, second, sizeof second);
    char *from[] = {"--from", second, "--count", "2", "--dry-run", NULL};
    ldh_check(&a, replay(&a, from) == 0 && printed(out, ev[1].event_id) &&
                      printed(out, ev[2].event_id) && printed(out, "would send 2 events"),
              "--from the second entry with --count 2 should pick events 2 and 3");

    /* Nothing in range (up to 1970): 66. */
    char *none[] = {"--to", "1000", "--dry-run", NULL};
    ldh_check(&a, replay(&a, none) == 66, "an empty range should exit 66");

    /* Usage errors: 64, naming the option. */
    char *bad_from[] = {"--from", "yesterday", NULL};
    ldh_check(&a, replay(&a, bad_from) == 64 && printed(err, "--from"), "--from yesterday");
    char *bad_batch[] = {"--batch", "5000", NULL};
    ldh_check(&a, replay(&a, bad_batch) == 64 && printed(err, "--batch"), "--batch 5000");

    /* Unreachable: 69. Nobody listening; or a socket that takes requests and
     * never answers, and the events are counted unanswered. */
    char *no_linkd[] = {"--ingest", "tcp://127.0.0.1:1", NULL};
    ldh_check(&a, replay(&a, no_linkd) == 69, "an unreachable intake should exit 69");
    int port;
    char url[64];
    nng_socket mute;
    cr_assert_eq(ldh_free_ports(&port, 1), 0);
    snprintf(url, sizeof url, "tcp://127.0.0.1:%d", port);
    cr_assert_eq(nng_rep0_open(&mute), 0);
    cr_assert_eq(nng_listen(mute, url, NULL, 0), 0);
    char *silent[] = {"--ingest", url, "--timeout", "300", NULL};
    int code = replay(&a, silent);
    ldh_nng_close(mute, "mute REP");
    ldh_check(&a, code == 69 && printed(err, "no answer from linkd") &&
                      printed(out, "some unanswered"),
              "a linkd that never answers should exit 69, exited %d", code);
    char *argv[] = {LINKCTL, "replay", "--redis", "redis://127.0.0.1:1/0", "--dry-run", NULL};
    ldh_check(&a, ldh_run(argv, NULL, out, err, RUN_MS) == 69, "an unreachable Redis should exit 69");
}

Test(replay, retry_later_is_sent_again_and_a_broken_entry_is_reported, .init = setup_a,
     .fini = teardown, .timeout = 240)
{
    enum { N = 24 };
    static ldh_event ev[N];
    static ldh_event *evp[N];
    for (int i = 0; i < N; i++) {
        ldh_event_call(&ev[i], LINKD__V1__CALL_CATEGORY__CALL_CATEGORY_TRAFFIC_ACCIDENT);
        evp[i] = &ev[i];
    }
    Linkd__V1__IngestReply *rep = NULL;
    ldh_check(&a, ldh_ingest(&a.linkd, evp, N, &rep) == 0 && rep->n_results == N, "ingest failed");
    for (int i = 0; i < N; i++)
        ldh_check(&a, rep->results[i]->result == LINKD__V1__RESULT__RESULT_ACCEPTED, "event %d", i);
    linkd__v1__ingest_reply__free_unpacked(rep, NULL);
    /* An entry no linkd wrote: the replay says which and goes on. */
    redisReply *r = ldh_redis_cmd(&a.redis, "XADD ld:events * src it-source eid junk pb %b",
                                  "\xff\xff\xff", (size_t)3);
    ldh_check(&a, r && r->type == REDIS_REPLY_STRING, "XADD failed");
    char junk[48];
    snprintf(junk, sizeof junk, "%s", r->str);
    freeReplyObject(r);

    /* b lets one source send 8 events a second: most of the 24 in one
     * request come back RETRY_LATER, and are sent again until accepted. */
    ldh_linkd_opts slow = {.extra = {"--source-rate", "8", NULL}};
    ldh_env_start_or_fail(&b, &slow);
    char *args[] = {"--ingest", b.linkd.ingest, "--batch", "24", NULL};
    int code = replay(&a, args);
    ldh_check(&b, code == 65, "a broken entry should make the replay exit 65, not %d", code);
    ldh_check(&b, printed(err, junk) && printed(out, "1 entries of the log did not decode"),
              "the broken entry %s was not named", junk);
    ldh_check(&b, printed(out, "24 accepted, 0 duplicate, 0 rejected, 0 retry later"),
              "every event should be accepted in the end");
    ldh_check(&b, ldh_redis_int(&b.redis, "XLEN ld:events") == N, "b's log should hold %d", N);
}

/* ---- a source with a key in the rules ------------------------------------------- */

static char keyfile[192], keyed_rules[192];

/* setup_keyed starts a with the default rules plus a key for source
 * cad-haizhu, made by `linkctl keygen --source`; the secret is in keyfile. */
static void setup_keyed(void)
{
    cr_assert_eq(ldh_mkdtemp(tmp, sizeof tmp, "replay-key"), 0);
    snprintf(out, sizeof out, "%s/out.txt", tmp);
    snprintf(err, sizeof err, "%s/err.txt", tmp);
    snprintf(keyfile, sizeof keyfile, "%s/cad-haizhu.key", tmp);
    snprintf(keyed_rules, sizeof keyed_rules, "%s/rules", tmp);
    char *cp[] = {"cp", "-r", LDH_DEFAULT_RULES, keyed_rules, NULL};
    cr_assert_eq(ldh_run(cp, NULL, NULL, NULL, RUN_MS), 0);
    char *keygen[] = {LINKCTL, "keygen", "--source", "cad-haizhu", "--out", keyfile, NULL};
    cr_assert_eq(ldh_run(keygen, NULL, out, err, RUN_MS), 0, "linkctl keygen failed");
    char *line = ldh_read_file(out, NULL);
    cr_assert(line && strstr(line, "cad-haizhu: ed25519:"), "keygen printed no rules line");
    char keys[512], kf[224];
    snprintf(keys, sizeof keys, "source_keys:\n%s", line);
    free(line);
    snprintf(kf, sizeof kf, "%s/keys.yaml", keyed_rules);
    cr_assert_eq(ldh_write_file(kf, keys, strlen(keys)), 0);
    ldh_linkd_opts o = {.rules = keyed_rules};
    ldh_env_start_or_fail(&a, &o);
}

Test(replay, a_keyed_source_is_replayed_with_its_key_and_refused_without,
     .init = setup_keyed, .fini = teardown, .timeout = 240)
{
    /* Two calls of the keyed source, sent with its key, and one of a source
     * without a key. */
    char *send[] = {LINKCTL, "send", "--ingest", a.linkd.ingest, "--source", "cad-haizhu",
                    "--key", keyfile, "--count", "2", "--kind", "call", "--category", "fire",
                    NULL};
    int code = ldh_run(send, NULL, out, err, RUN_MS);
    ldh_check(&a, code == 0 && occurrences(out, "ACCEPTED ") == 2,
              "linkctl send --key exited %d", code);
    ldh_event other;
    char inc[64];
    ldh_accept_call(&a, &other, LINKD__V1__CALL_CATEGORY__CALL_CATEGORY_MEDICAL, inc);
    ldh_check(&a, ldh_redis_int(&a.redis, "XLEN ld:events") == 3, "the log should hold 3 events");

    /* Without the key linkd refuses them: 65, and the reason says why. */
    char *unsigned_[] = {"--ingest", a.linkd.ingest, "--source", "cad-haizhu", "--exercise",
                         "--tag", "nokey", NULL};
    code = replay(&a, unsigned_);
    ldh_check(&a, code == 65, "a replay without --key should exit 65, exited %d", code);
    ldh_check(&a, occurrences(out, "must send a signed hello") == 2 &&
                      printed(out, "replayed 2 events of 3 log entries read (1 filtered out): "
                                   "0 accepted, 0 duplicate, 2 rejected"),
              "both events should be rejected for want of a hello");
    ldh_check(&a, ldh_redis_int(&a.redis, "XLEN ld:events") == 3, "a refused event was logged");

    /* --key without --source: a usage error, saying why; nothing sent. */
    char *no_source[] = {"--ingest", a.linkd.ingest, "--key", keyfile, "--exercise", "--tag",
                         "nosource", NULL};
    code = replay(&a, no_source);
    ldh_check(&a, code == 64 && printed(err, "--key needs --source"),
              "--key without --source should exit 64, exited %d", code);
    ldh_check(&a, ldh_redis_int(&a.redis, "XLEN ld:events") == 3, "a usage error sent something");

    /* With both: accepted, one request per event, each with a hello of its
     * own (linkd would log a reused one as refused: replayed nonce). One
     * event per request also means the first is in a's log before the second
     * is read: the replay must stop at the newest entry when it started, not
     * read its own events back. */
    char *keyed[] = {"--ingest", a.linkd.ingest, "--source", "cad-haizhu", "--key", keyfile,
                     "--exercise", "--tag", "drill", "--batch", "1", "--verbose", NULL};
    code = replay(&a, keyed);
    ldh_check(&a, code == 0, "replay --source --key exited %d", code);
    ldh_check(&a, occurrences(out, "ACCEPTED ") == 2 &&
                      printed(out, "2 accepted, 0 duplicate, 0 rejected, 0 retry later"),
              "both events of the keyed source should be accepted");
    ldh_check(&a, ldh_redis_int(&a.redis, "XLEN ld:events") == 5, "the log should hold 5 events");
    char eid[200];
    for (size_t i = 3; i < 5; i++) {
        int status = logged(&a, i, eid, sizeof eid);
        size_t n = strlen(eid);
        ldh_check(&a, status == LINKD__V1__STATUS__STATUS_EXERCISE && n > 6 &&
                          strcmp(eid + n - 6, "~drill") == 0,
                  "entry %zu should be a tagged exercise, is %s (status %d)", i, eid, status);
    }
    ldh_check(&a, !ldh_linkd_log_has(&a.linkd, "hello refused"), "linkd refused a hello");
}
