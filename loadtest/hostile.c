/* hostile.c: `linkload hostile`: a stream of malformed and abusive intake
 * messages at a steady rate, to run beside `linkload run` and see what it
 * costs valid traffic (loadtest/hostile_bench.sh, docs/RELIABILITY.md).
 *
 * Kinds, in turn: an empty message, bytes that are not protobuf, a wrong wire
 * type, 20,000 nested groups, 3,000 petitioner references, invalid UTF-8, an
 * unknown enum, a message just over --max-message, an absurd timestamp, a NaN
 * reading, a control character, a 300-byte id. Each should be answered
 * REJECTED; the tool counts what came back and exits non-zero if anything was
 * answered otherwise. One REQ socket, one request at a time, paced. */
#include <getopt.h>
#include <math.h>
#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "core/clock.h"
#include "core/rep.h"
#include "linkload.h"

typedef struct hmsg {
    const char *what;
    uint8_t *p;
    size_t n;
} hmsg;

enum { KINDS = 16 };

static void put_varint(uint8_t *out, size_t *n, uint64_t v)
{
    do {
        out[(*n)++] = (uint8_t)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
        v >>= 7;
    } while (v);
}

/* A request holding one envelope, after <mutate> spoiled a valid call. */
static hmsg pack_with(const char *what, uint64_t now_ms, int kind)
{
    Linkd__V1__Envelope e = LINKD__V1__ENVELOPE__INIT;
    Linkd__V1__Call110 c = LINKD__V1__CALL110__INIT;
    Linkd__V1__SensorAlarm s = LINKD__V1__SENSOR_ALARM__INIT;
    Linkd__V1__Petition p = LINKD__V1__PETITION__INIT;
    Linkd__V1__Location loc = LINKD__V1__LOCATION__INIT;
    static char *refs[3000];
    static char long_id[301];
    char id[48];
    snprintf(id, sizeof id, "hostile-%d", kind);
    e.event_id = id;
    e.source_id = "linkload-hostile";
    e.has_occurred_at_ms = 1;
    e.occurred_at_ms = (int64_t)now_ms;
    e.has_status = 1;
    e.status = LINKD__V1__STATUS__STATUS_TEST;
    e.body_case = LINKD__V1__ENVELOPE__BODY_CALL;
    e.call = &c;
    c.has_category = 1;
    c.category = LINKD__V1__CALL_CATEGORY__CALL_CATEGORY_FIRE;
    switch (kind) {
    case 0: /* 3,000 petitioner references */
        for (int i = 0; i < 3000; i++) refs[i] = "pr-0000";
        e.body_case = LINKD__V1__ENVELOPE__BODY_PETITION;
        e.petition = &p;
        p.petition_id = "xf-1";
        p.has_issue = 1;
        p.issue = LINKD__V1__PETITION_ISSUE__PETITION_ISSUE_HOUSING;
        p.has_petitioners = 1;
        p.petitioners = 3000;
        p.petitioner_refs = refs;
        p.n_petitioner_refs = 3000;
        break;
    case 1: c.description = "smoke \xff\xfe on the stairs"; break;
    case 2:
        c.has_priority = 1;
        c.priority = (Linkd__V1__Priority)42;
        break;
    case 3: e.occurred_at_ms = INT64_MAX; break;
    case 4:
        e.body_case = LINKD__V1__ENVELOPE__BODY_SENSOR;
        e.sensor = &s;
        s.sensor_id = "gas-1";
        s.has_kind = 1;
        s.kind = LINKD__V1__SENSOR_KIND__SENSOR_KIND_GAS;
        s.has_value = 1;
        s.value = NAN;
        break;
    case 5: c.caller = "\x1b[2J"; break;
    case 7: e.occurred_at_ms = 1000; break; /* 1970: far in the past */
    case 8:
        loc.has_lat = loc.has_lon = 1;
        loc.lat = 91;
        loc.lon = 113.3;
        c.location = &loc;
        break;
    case 9:
        c.has_people = 1;
        c.people = 4000000000u;
        break;
    case 6:
    default:
        memset(long_id, 'x', 300);
        e.source_id = long_id;
        break;
    }
    Linkd__V1__IngestRequest req = LINKD__V1__INGEST_REQUEST__INIT;
    Linkd__V1__Envelope *one[] = {&e};
    req.events = one;
    req.n_events = 1;
    hmsg m = {what, NULL, linkd__v1__ingest_request__get_packed_size(&req)};
    m.p = malloc(m.n + 1);
    if (m.p) m.n = linkd__v1__ingest_request__pack(&req, m.p);
    return m;
}

static int build(hmsg *k, size_t max_message)
{
    uint64_t now = ld_wall_ms();
    size_t n = 0;
    k[0] = (hmsg){"empty message", malloc(1), 0};
    static const uint8_t junk[] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1};
    k[1] = (hmsg){"not protobuf", malloc(sizeof junk), sizeof junk};
    if (k[1].p) memcpy(k[1].p, junk, sizeof junk);
    k[2] = (hmsg){"wrong wire type", malloc(16), 0};
    if (k[2].p) {
        n = 0;
        put_varint(k[2].p, &n, (1 << 3) | 2); /* events */
        put_varint(k[2].p, &n, 3);
        put_varint(k[2].p, &n, (1 << 3) | 0); /* event_id as a varint */
        put_varint(k[2].p, &n, 300);
        k[2].n = n;
    }
    k[3] = (hmsg){"20,000 nested groups", malloc(20016), 0};
    if (k[3].p) {
        n = 0;
        put_varint(k[3].p, &n, (1 << 3) | 2);
        put_varint(k[3].p, &n, 20000);
        for (int i = 0; i < 20000; i++) k[3].p[n++] = (15 << 3) | 3;
        k[3].n = n;
    }
    k[4] = (hmsg){"just over --max-message", calloc(1, max_message + 16), max_message + 16};
    static const char *const names[] = {"3,000 repeated refs", "invalid UTF-8", "unknown enum",
                                        "absurd timestamp", "NaN reading", "control character",
                                        "300-byte id", "timestamp in 1970", "latitude 91",
                                        "four billion people"};
    for (int i = 0; i < 10; i++) k[5 + i] = pack_with(names[i], now, i);
    /* A valid request cut off in the middle of its envelope. */
    hmsg whole = pack_with("whole", now, 7);
    k[15] = (hmsg){"truncated", whole.p, whole.n / 2};
    for (int i = 0; i < KINDS; i++)
        if (!k[i].p) return -1;
    return 0;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: linkload hostile --rate R --duration S [--ingest URL] [--max-message B]\n"
               "  Sends %d kinds of malformed or abusive message in turn, R per second for S\n"
               "  seconds, one at a time; counts the answers. Exit 0 if every one was answered\n"
               "  REJECTED, 65 if one was answered otherwise, 69 if linkd did not answer.\n"
               "  --max-message must match linkd's (default 1048576).\n",
            KINDS);
}

int lg_cmd_hostile(int argc, char **argv)
{
    static const struct option opts[] = {
        {"rate", required_argument, NULL, 'r'},     {"duration", required_argument, NULL, 'd'},
        {"ingest", required_argument, NULL, 'i'},   {"max-message", required_argument, NULL, 'm'},
        {"help", no_argument, NULL, 'h'},           {NULL, 0, NULL, 0},
    };
    double rate = 0, duration = 0;
    size_t max_message = 1 << 20;
    const char *url = "tcp://127.0.0.1:7450";
    int c;
    optind = 2;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'r': rate = atof(optarg); break;
        case 'd': duration = atof(optarg); break;
        case 'i': url = optarg; break;
        case 'm': max_message = (size_t)atol(optarg); break;
        case 'h': usage(stdout); return LG_EXIT_OK;
        default: usage(stderr); return LG_EXIT_USAGE;
        }
    }
    if (rate <= 0 || rate > 100000 || duration <= 0 || duration > 3600 || max_message < 1024) {
        usage(stderr);
        return LG_EXIT_USAGE;
    }
    hmsg k[KINDS];
    memset(k, 0, sizeof k);
    if (build(k, max_message) != 0) {
        fprintf(stderr, "linkload hostile: out of memory\n");
        return LG_EXIT_SOFTWARE;
    }
    nng_socket sock;
    int rv = nng_req0_open(&sock);
    if (rv == 0) {
        nng_socket_set_ms(sock, NNG_OPT_RECVTIMEO, 5000);
        nng_socket_set_ms(sock, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE);
        rv = nng_dial(sock, url, NULL, 0);
    }
    if (rv != 0) {
        fprintf(stderr, "linkload hostile: %s: %s\n", url, nng_strerror(rv));
        return LG_EXIT_UNAVAILABLE;
    }
    uint64_t sent = 0, rejected = 0, other = 0, unanswered = 0;
    uint64_t start = ld_mono_ns(), end = start + (uint64_t)(duration * 1e9);
    double gap = 1e9 / rate;
    for (uint64_t i = 0;; i++) {
        uint64_t due = start + (uint64_t)((double)i * gap);
        if (due >= end) break;
        lg_sleep_until(due);
        const hmsg *m = &k[i % KINDS];
        void *rep = NULL;
        size_t len = 0;
        sent++;
        if ((rv = nng_send(sock, m->p, m->n, 0)) != 0 ||
            (rv = nng_recv(sock, &rep, &len, NNG_FLAG_ALLOC)) != 0) {
            unanswered++;
            continue;
        }
        Linkd__V1__IngestReply *r = linkd__v1__ingest_reply__unpack(NULL, len, rep);
        if (r && r->n_results == 1 && r->results[0]->result == LINKD__V1__RESULT__RESULT_REJECTED)
            rejected++;
        else {
            other++;
            if (other == 1)
                fprintf(stderr, "linkload hostile: '%s' was not answered REJECTED\n", m->what);
        }
        if (r) linkd__v1__ingest_reply__free_unpacked(r, NULL);
        nng_free(rep, len);
    }
    ld_nng_close(sock, "REQ socket to linkd", LD_NNG_CLOSE_MS);
    for (int i = 0; i < KINDS; i++) free(k[i].p);
    double secs = (double)(ld_mono_ns() - start) / 1e9;
    /* Its own CPU, so a benchmark on one machine can tell the sender's cost from linkd's. */
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double cpu = (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
                 (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
    printf("linkload hostile: %llu messages of %d kinds in %.1f s (%.0f/s): %llu REJECTED, %llu "
           "otherwise, %llu unanswered; %.2f s of CPU\n",
           (unsigned long long)sent, KINDS, secs, (double)sent / secs,
           (unsigned long long)rejected, (unsigned long long)other,
           (unsigned long long)unanswered, cpu);
    if (unanswered) return LG_EXIT_UNAVAILABLE;
    return other ? LG_EXIT_DATAERR : LG_EXIT_OK;
}
