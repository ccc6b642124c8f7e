/* test_hostile.c: hostile intake, while valid traffic goes on.
 *
 * A producer thread sends valid calls, one request at a time, for as long as
 * the test sends malformed and abusive messages from another socket. Every
 * hostile message must get its answer (REJECTED with a reason naming the
 * problem), every valid one ACCEPTED; nothing hostile reaches ld:events; and
 * at the stop linkd's SUMMARY counts each rejection under its reason.
 *
 * The kinds here extend test_intake.c (garbage bytes, a truncated length, a
 * start-group at the top, text, a message over four times the limit, missing
 * fields, unknown category/status/sensor kind, timestamps a week old or an
 * hour ahead or in seconds, more than 1024 events, duplicates) and
 * test_flood.c (one source flooding): none of those is repeated here. */
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "wire/wire.h"

#define MAX_MESSAGE 65536

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

/* ---- building hostile bytes ------------------------------------------------ */

typedef struct buf {
    uint8_t *p;
    size_t n, cap;
} buf;

static void put(buf *b, const void *src, size_t n)
{
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 64;
        b->p = realloc(b->p, b->cap);
        cr_assert_not_null(b->p);
    }
    memcpy(b->p + b->n, src, n);
    b->n += n;
}

static void put_varint(buf *b, uint64_t v)
{
    uint8_t tmp[10];
    size_t n = 0;
    do {
        tmp[n++] = (uint8_t)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
        v >>= 7;
    } while (v);
    put(b, tmp, n);
}

/* An IngestRequest holding one envelope whose bytes are <env> + <extra>. */
static buf request_of(const uint8_t *env_bytes, size_t n, const buf *extra)
{
    buf b = {0};
    put_varint(&b, (1 << 3) | 2);
    put_varint(&b, n + (extra ? extra->n : 0));
    put(&b, env_bytes, n);
    if (extra) put(&b, extra->p, extra->n);
    return b;
}

static buf pack_event(ldh_event *ev)
{
    Linkd__V1__IngestRequest req = LINKD__V1__INGEST_REQUEST__INIT;
    Linkd__V1__Envelope *one[] = {&ev->env};
    req.events = one;
    req.n_events = 1;
    buf b = {0};
    b.cap = linkd__v1__ingest_request__get_packed_size(&req) + 1;
    b.p = malloc(b.cap);
    cr_assert_not_null(b.p);
    b.n = linkd__v1__ingest_request__pack(&req, b.p);
    return b;
}

static buf pack_envelope(ldh_event *ev)
{
    buf b = {0};
    b.cap = linkd__v1__envelope__get_packed_size(&ev->env) + 1;
    b.p = malloc(b.cap);
    cr_assert_not_null(b.p);
    b.n = linkd__v1__envelope__pack(&ev->env, b.p);
    return b;
}

/* ---- the cases ----------------------------------------------------------------- */

typedef struct hostile {
    const char *what;
    buf msg;
    const char *reason;     /* the answer's reason contains this */
    int label;              /* enum ld_reject it is counted under */
} hostile;

enum { MAX_CASES = 32 };
static hostile cases[MAX_CASES];
static int ncases;
static char refs[3000][8];
static char *ref_ptrs[3000];

static void add(const char *what, buf msg, const char *reason, int label)
{
    cr_assert_lt(ncases, MAX_CASES);
    cases[ncases++] = (hostile){what, msg, reason, label};
}

static void add_event(const char *what, ldh_event *ev, const char *reason, int label)
{
    add(what, pack_event(ev), reason, label);
}

static void build_cases(void)
{
    ldh_event ev;
    buf b = {0}, extra = {0};

    add("an empty message", b, "empty IngestRequest", LD_REJECT_EMPTY);

    /* Wrong wire types for known fields. */
    ldh_event_call(&ev, LINKD__V1__CALL_CATEGORY__CALL_CATEGORY_FIRE);
    buf env_bytes = pack_envelope(&ev);
    put_varint(&extra, (3 << 3) | 2); /* occurred_at_ms, an int64, as bytes */
    put_varint(&extra, 2);
    put(&extra, "ab", 2);
    add("occurred_at_ms sent as a length-delimited field", request_of(env_bytes.p, env_bytes.n, &extra),
        "malformed", LD_REJECT_MALFORMED);
    extra.n = 0;
    put_varint(&extra, (1 << 3) | 0); /* event_id, a string, as a varint */
    put_varint(&extra, 12345);
    add("event_id sent as a varint", request_of(env_bytes.p, env_bytes.n, &extra), "malformed",
        LD_REJECT_MALFORMED);
    extra.n = 0;
    put_varint(&extra, (10 << 3) | 5); /* call, a message, as a fixed32 */
    put(&extra, "\x01\x02\x03\x04", 4);
    add("call sent as a fixed32", request_of(env_bytes.p, env_bytes.n, &extra), "malformed",
        LD_REJECT_MALFORMED);
    free(extra.p);
    free(env_bytes.p);

    /* Deep nesting: 50,000 nested groups inside an envelope. */
    b = (buf){0};
    buf deep = {0};
    for (int i = 0; i < 50000; i++) put_varint(&deep, (15 << 3) | 3);
    put_varint(&b, (1 << 3) | 2);
    put_varint(&b, deep.n);
    put(&b, deep.p, deep.n);
    free(deep.p);
    add("50,000 nested groups", b, "malformed", LD_REJECT_MALFORMED);

    /* Huge repeated field: 3000 petitioner references. */
    ldh_event_petition(&ev, LINKD__V1__PETITION_ISSUE__PETITION_ISSUE_WAGE_ARREARS, 3000);
    for (int i = 0; i < 3000; i++) {
        snprintf(refs[i], sizeof refs[i], "p%04d", i);
        ref_ptrs[i] = refs[i];
    }
    ev.petition.petitioner_refs = ref_ptrs;
    ev.petition.n_petitioner_refs = 3000;
    add_event("3000 petitioner references", &ev, "petition.petitioner_refs: more than 256",
              LD_REJECT_BAD_FIELD);

    /* Invalid UTF-8, four ways. */
    ldh_event_call(&ev, LINKD__V1__CALL_CATEGORY__CALL_CATEGORY_FIRE);
    ev.call.description = "smoke \xff\xfe on the stairs";
    add_event("bytes that are never UTF-8", &ev, "call.description: invalid UTF-8",
              LD_REJECT_BAD_FIELD);
    ldh_event_call(&ev, LINKD__V1__CALL_CATEGORY__CALL_CATEGORY_FIRE);
    ev.loc.address = "12 \xc0\xaf Road";
    add_event("an overlong UTF-8 form", &ev, "call.location.address: invalid UTF-8",
              LD_REJECT_BAD_FIELD);
    ldh_event_call(&ev, LINKD__V1__CALL_CATEGORY__CALL_CATEGORY_FIRE);
    snprintf(ev.event_id, sizeof ev.event_id, "ev-\xed\xa0\x80-1");
    add_event("a UTF-16 surrogate in UTF-8", &ev, "event_id: invalid UTF-8", LD_REJECT_BAD_FIELD);
    ldh_event_call(&ev, LINKD__V1__CALL_CATEGORY__CALL_CATEGORY_FIRE);
    ev.call.caller = "caller-\xe4\xb8";
    add_event("a UTF-8 sequence cut short", &ev, "call.caller: invalid UTF-8",
              LD_REJECT_BAD_FIELD);

    ldh_event_call(&ev, LINKD__V1__CALL_CATEGORY__CALL_CATEGORY_FIRE);
    ev.call.has_priority = 1;
    ev.call.priority = (Linkd__V1__Priority)42;
    add_event("an unknown priority", &ev, "call.priority: unknown value 42",
              LD_REJECT_UNKNOWN_ENUM);

    /* Between --max-message and twice it: answered, not just dropped. */
    b = (buf){0};
    uint8_t *pad = calloc(1, 2 * MAX_MESSAGE - 1024);
    cr_assert_not_null(pad);
    put(&b, pad, 2 * MAX_MESSAGE - 1024);
    free(pad);
    add("a message near twice --max-message", b, "oversize IngestRequest", LD_REJECT_OVERSIZE);

    ldh_event_call(&ev, LINKD__V1__CALL_CATEGORY__CALL_CATEGORY_FIRE);
    static char long_id[300];
    memset(long_id, 'x', sizeof long_id - 1);
    ev.env.source_id = long_id;
    add_event("a 299-byte source id", &ev, "source_id: longer than 128 bytes",
              LD_REJECT_BAD_FIELD);

    ldh_event_call(&ev, LINKD__V1__CALL_CATEGORY__CALL_CATEGORY_FIRE);
    ev.loc.address = "\x1b[2J\x1b[H cleared your screen";
    add_event("terminal escape codes", &ev, "call.location.address: contains a control character",
              LD_REJECT_BAD_FIELD);

    ldh_event_sensor(&ev, LINKD__V1__SENSOR_KIND__SENSOR_KIND_GAS);
    ev.sensor.has_value = 1;
    ev.sensor.value = NAN;
    add_event("a NaN reading", &ev, "sensor.value: not a finite number", LD_REJECT_BAD_FIELD);

    ldh_event_call(&ev, LINKD__V1__CALL_CATEGORY__CALL_CATEGORY_FIRE);
    ev.loc.has_lat = ev.loc.has_lon = 1;
    ev.loc.lat = 91;
    ev.loc.lon = 113.2;
    add_event("latitude 91", &ev, "call.location.lat: 91 is not a latitude", LD_REJECT_BAD_FIELD);

    ldh_event_call(&ev, LINKD__V1__CALL_CATEGORY__CALL_CATEGORY_FIRE);
    ev.loc.has_lat = 1;
    ev.loc.has_lon = 0;
    ev.loc.lat = 23.1;
    add_event("a latitude without a longitude", &ev, "call.location.lon: latitude and longitude",
              LD_REJECT_MISSING_FIELD);

    ldh_event_call(&ev, LINKD__V1__CALL_CATEGORY__CALL_CATEGORY_FIRE);
    ev.call.has_people = 1;
    ev.call.people = 4000000000u;
    add_event("four billion people", &ev, "call.people: more than 100000", LD_REJECT_BAD_FIELD);

    ldh_event_call(&ev, LINKD__V1__CALL_CATEGORY__CALL_CATEGORY_FIRE);
    ev.env.occurred_at_ms = -1;
    add_event("a negative timestamp", &ev, "occurred_at_ms", LD_REJECT_BAD_TIME);
    ldh_event_call(&ev, LINKD__V1__CALL_CATEGORY__CALL_CATEGORY_FIRE);
    ev.env.occurred_at_ms = INT64_MAX;
    add_event("the largest timestamp", &ev, "occurred_at_ms", LD_REJECT_BAD_TIME);
}

/* ---- valid traffic alongside ------------------------------------------------------ */

typedef struct producer {
    pthread_t thread;
    atomic_bool stop;
    int sent, accepted, other;
    int last_result;
} producer;

static void *produce(void *arg)
{
    producer *p = arg;
    for (int i = 0; i < 100000 && !atomic_load(&p->stop); i++) {
        ldh_event ev;
        ldh_event_call(&ev, LINKD__V1__CALL_CATEGORY__CALL_CATEGORY_MEDICAL);
        snprintf(ev.source_id, sizeof ev.source_id, "cc-valid");
        ev.call.description = "老人在家中摔倒，意识清醒"; /* valid UTF-8, not ASCII */
        char inc[64];
        int r = ldh_ingest_accept(&env.linkd, &ev, inc, sizeof inc);
        p->sent++;
        if (r == LINKD__V1__RESULT__RESULT_ACCEPTED) p->accepted++;
        else p->other++, p->last_result = r;
        ldh_sleep_ms(10);
    }
    return NULL;
}

/* Parses "<label> <n>" out of the SUMMARY line's rejection list. */
static long long summary_count(const char *log, const char *label)
{
    const char *s = strstr(log, "SUMMARY");
    if (!s) return -1;
    const char *end = strchr(s, '\n');
    char pat[48];
    snprintf(pat, sizeof pat, "%s ", label);
    for (const char *p = strstr(s, pat); p && (!end || p < end); p = strstr(p + 1, pat))
        if (p[-1] == '(' || p[-1] == ' ') return atoll(p + strlen(pat));
    return 0;
}

Test(hostile, every_kind_is_answered_and_counted_while_valid_traffic_is_served, .init = setup,
     .fini = teardown, .timeout = 240)
{
    build_cases();
    cr_assert_geq(ncases, 15, "at least 15 kinds");
    producer p = {0};
    atomic_init(&p.stop, false);
    cr_assert_eq(pthread_create(&p.thread, NULL, produce, &p), 0);

    long long want[LD_REJECT_COUNT] = {0};
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < ncases; i++) {
            hostile *h = &cases[i];
            Linkd__V1__IngestReply *rep = NULL;
            int rv = ldh_ingest_raw(&env.linkd, h->msg.p, h->msg.n, &rep);
            if (rv != 0 || !rep || rep->n_results != 1) {
                atomic_store(&p.stop, true);
                pthread_join(p.thread, NULL);
                ldh_check(&env, false, "%s: no single answer (%d)", h->what, rv);
            }
            const Linkd__V1__IngestResult *r = rep->results[0];
            bool ok = r->result == LINKD__V1__RESULT__RESULT_REJECTED && r->reason &&
                      strstr(r->reason, h->reason);
            if (!ok) {
                atomic_store(&p.stop, true);
                pthread_join(p.thread, NULL);
                ldh_check(&env, false, "%s: answered %d '%s', expected REJECTED '%s'", h->what,
                          (int)r->result, r->reason ? r->reason : "", h->reason);
            }
            want[h->label]++;
            linkd__v1__ingest_reply__free_unpacked(rep, NULL);
        }
    }
    /* Let the producer get a few more in after the barrage. */
    int before = p.sent;
    for (int i = 0; i < 200 && p.sent < before + 5; i++) ldh_sleep_ms(50);
    atomic_store(&p.stop, true);
    pthread_join(p.thread, NULL);

    ldh_check(&env, p.sent > 5 && p.other == 0,
              "valid traffic: %d sent, %d accepted, %d not (last answer %d)", p.sent, p.accepted,
              p.other, p.last_result);
    ldh_check(&env, ldh_redis_int(&env.redis, "XLEN ld:events") == p.accepted,
              "ld:events must hold exactly the %d valid events", p.accepted);

    int code = ldh_linkd_stop(&env.linkd);
    ldh_check(&env, code == 0, "linkd exited %d", code);
    char *log = ldh_linkd_log(&env.linkd);
    ldh_check(&env, log && strstr(log, "SUMMARY"), "no SUMMARY");
    for (int k = 0; k < LD_REJECT_COUNT; k++) {
        long long got = summary_count(log, ld_reject_label(k));
        ldh_check(&env, got == want[k], "SUMMARY counts %lld '%s' rejections, sent %lld", got,
                  ld_reject_label(k), want[k]);
    }
    free(log);
    for (int i = 0; i < ncases; i++) free(cases[i].msg.p);
    ncases = 0;
}
