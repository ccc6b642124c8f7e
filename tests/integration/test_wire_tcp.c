/* test_wire_tcp.c: linkd serves tcp:// intake and terminals on its own loop
 * (core/sp.h), speaking NNG's wire protocol; these tests talk to it with a
 * plain socket, byte by byte where it matters, as any SP/TCP client may: a
 * request split into single bytes is answered, pipelined requests are
 * answered under their own request ids, and a peer that is not a REQ, an
 * oversize frame or a frame without a backtrace closes only that
 * connection; NNG clients are served throughout. Real daemon, Redis; every
 * wait bounded (socket timeouts). */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "harness.h"

#define IO_MS 10000

static ldh_env env;

static void setup(void)
{
    ldh_linkd_opts o = {.max_message = 65536};
    ldh_env_start_or_fail(&env, &o);
}

static void teardown(void)
{
    int code = ldh_env_stop(&env);
    cr_expect_eq(code, 0, "linkd must exit 0 on SIGTERM, exited %d", code);
}

/* dial connects a plain TCP socket to <url> (tcp://127.0.0.1:port). */
static int dial(const char *url)
{
    const char *colon = strrchr(url, ':');
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(colon + 1))};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert(fd >= 0);
    struct timeval tv = {IO_MS / 1000, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    cr_assert_eq(connect(fd, (struct sockaddr *)&a, sizeof a), 0, "cannot connect to %s", url);
    return fd;
}

static void send_all(int fd, const void *p, size_t n)
{
    for (size_t off = 0; off < n;) {
        ssize_t k = send(fd, (const char *)p + off, n - off, MSG_NOSIGNAL);
        if (k <= 0) return; /* the peer closed: the caller checks what it reads */
        off += (size_t)k;
    }
}

/* recv_all reads exactly <n> bytes; 0, or -1 on close, error or timeout. */
static int recv_all(int fd, void *p, size_t n)
{
    for (size_t off = 0; off < n;) {
        ssize_t k = recv(fd, (char *)p + off, n - off, 0);
        if (k <= 0) return -1;
        off += (size_t)k;
    }
    return 0;
}

/* closed_by_peer: linkd closed the connection (EOF) within IO_MS, after any
 * bytes it sent first. */
static bool closed_by_peer(int fd)
{
    char b[256];
    for (int i = 0; i < 1000; i++) {
        ssize_t k = recv(fd, b, sizeof b, 0);
        if (k == 0) return true;
        if (k < 0) return errno == ECONNRESET;
    }
    return false;
}

static const uint8_t req_greeting[8] = {0, 'S', 'P', 0, 0, 0x30, 0, 0};

/* greet sends a REQ's greeting and checks linkd's: SP, version 0, a REP. */
static void greet(int fd)
{
    uint8_t g[8];
    send_all(fd, req_greeting, sizeof req_greeting);
    cr_assert_eq(recv_all(fd, g, sizeof g), 0, "no greeting from linkd");
    cr_assert(g[0] == 0 && g[1] == 'S' && g[2] == 'P' && g[3] == 0 && g[4] == 0 && g[5] == 0x31 &&
                  g[6] == 0 && g[7] == 0,
              "linkd's greeting is not an SP REP's");
}

static void put64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8) p[i] = (uint8_t)v;
}

/* frame builds a request frame: length, request id (top bit set), an
 * IngestRequest holding one fresh valid call. Returns its size. */
static size_t frame(uint8_t *out, size_t cap, uint32_t id, ldh_event *ev)
{
    ldh_event_call(ev, LINKD__V1__CALL_CATEGORY__CALL_CATEGORY_FIRE);
    Linkd__V1__Envelope *envs[] = {&ev->env};
    Linkd__V1__IngestRequest req = LINKD__V1__INGEST_REQUEST__INIT;
    req.n_events = 1;
    req.events = envs;
    size_t n = linkd__v1__ingest_request__get_packed_size(&req);
    cr_assert(12 + n <= cap);
    put64(out, 4 + n);
    id |= 0x80000000u;
    out[8] = (uint8_t)(id >> 24), out[9] = (uint8_t)(id >> 16), out[10] = (uint8_t)(id >> 8),
    out[11] = (uint8_t)id;
    linkd__v1__ingest_request__pack(&req, out + 12);
    return 12 + n;
}

/* read_reply reads one reply frame: its request id and the decoded reply. */
static Linkd__V1__IngestReply *read_reply(int fd, uint32_t *id)
{
    uint8_t head[12];
    if (recv_all(fd, head, sizeof head) != 0) return NULL;
    uint64_t len = 0;
    for (int i = 0; i < 8; i++) len = len << 8 | head[i];
    cr_assert(len >= 4 && len < (1u << 20), "reply length %llu", (unsigned long long)len);
    *id = (uint32_t)head[8] << 24 | (uint32_t)head[9] << 16 | (uint32_t)head[10] << 8 | head[11];
    uint8_t *body = malloc(len - 4 + 1);
    cr_assert(body);
    Linkd__V1__IngestReply *r = NULL;
    if (recv_all(fd, body, len - 4) == 0)
        r = linkd__v1__ingest_reply__unpack(NULL, len - 4, body);
    free(body);
    return r;
}

static bool accepted(const Linkd__V1__IngestReply *r, const char *event_id)
{
    return r && r->n_results == 1 && r->results[0]->result == LINKD__V1__RESULT__RESULT_ACCEPTED &&
           strcmp(r->results[0]->event_id, event_id) == 0;
}

/* nng_client_served: an NNG REQ client still gets an event accepted. */
static bool nng_client_served(void)
{
    ldh_event ev;
    char inc[64];
    ldh_event_call(&ev, LINKD__V1__CALL_CATEGORY__CALL_CATEGORY_MEDICAL);
    return ldh_ingest_accept(&env.linkd, &ev, inc, sizeof inc) == LINKD__V1__RESULT__RESULT_ACCEPTED;
}

/* pipeline sends <n> requests (ids first_id...) in one write on <fd> and
 * checks that each is answered, once, under its own id. */
static void pipeline(int fd, ldh_event *ev, uint32_t n, uint32_t first_id)
{
    size_t cap = (size_t)n * 1024, len = 0;
    uint8_t *buf = malloc(cap);
    bool *seen = calloc(n, sizeof *seen);
    cr_assert(buf && seen);
    for (uint32_t i = 0; i < n; i++) len += frame(buf + len, cap - len, first_id + i, &ev[i]);
    send_all(fd, buf, len); /* all in one write */
    for (uint32_t k = 0; k < n; k++) {
        uint32_t id = 0;
        Linkd__V1__IngestReply *r = read_reply(fd, &id);
        ldh_check(&env, r, "reply %u of %u missing", k + 1, n);
        uint32_t i = (id & 0x7fffffffu) - first_id;
        ldh_check(&env, i < n && !seen[i] && accepted(r, ev[i].event_id),
                  "reply under id %#x does not answer its request", id);
        seen[i] = true;
        linkd__v1__ingest_reply__free_unpacked(r, NULL);
    }
    free(seen);
    free(buf);
}

Test(wire_tcp, a_request_sent_a_byte_at_a_time_is_answered_under_its_id, .init = setup,
     .fini = teardown, .timeout = 120)
{
    int fd = dial(env.linkd.ingest);
    for (size_t i = 0; i < sizeof req_greeting; i++) send_all(fd, &req_greeting[i], 1);
    uint8_t g[8];
    cr_assert_eq(recv_all(fd, g, sizeof g), 0, "no greeting from linkd");
    static uint8_t buf[8192];
    ldh_event ev;
    size_t n = frame(buf, sizeof buf, 0x1234567, &ev);
    for (size_t i = 0; i < n; i++) {
        send_all(fd, &buf[i], 1);
        if (i % 7 == 0) ldh_sleep_ms(1); /* let linkd read the pieces one by one */
    }
    uint32_t id = 0;
    Linkd__V1__IngestReply *r = read_reply(fd, &id);
    ldh_check(&env, accepted(r, ev.event_id), "the byte-by-byte request was not accepted");
    ldh_check(&env, id == (0x1234567u | 0x80000000u), "reply under request id %#x", id);
    linkd__v1__ingest_reply__free_unpacked(r, NULL);
    close(fd);
}

Test(wire_tcp, pipelined_requests_are_each_answered_under_their_own_id, .init = setup,
     .fini = teardown, .timeout = 120)
{
    static ldh_event ev[8];
    int fd = dial(env.linkd.ingest);
    greet(fd);
    pipeline(fd, ev, 8, 100);
    close(fd);
}

Test(wire_tcp, a_bad_peer_loses_only_its_own_connection, .init = setup, .fini = teardown,
     .timeout = 120)
{
    /* Not SP at all. */
    int fd = dial(env.linkd.ingest);
    send_all(fd, "GET / HTTP/1.1\r\nHost: x\r\n\r\n", 27);
    ldh_check(&env, closed_by_peer(fd), "an HTTP request should close the connection");
    close(fd);

    /* An SP peer of the wrong kind: a REP greeting a REP. */
    static const uint8_t rep_greeting[8] = {0, 'S', 'P', 0, 0, 0x31, 0, 0};
    fd = dial(env.linkd.ingest);
    send_all(fd, rep_greeting, sizeof rep_greeting);
    ldh_check(&env, closed_by_peer(fd), "a REP peer should be closed");
    close(fd);

    /* A frame over the size limit: closed before its payload is read. */
    fd = dial(env.linkd.ingest);
    greet(fd);
    uint8_t head[8];
    put64(head, 2 * 65536 + 1);
    send_all(fd, head, sizeof head);
    ldh_check(&env, closed_by_peer(fd), "an oversize frame should close the connection");
    close(fd);

    /* A payload without a whole backtrace. */
    fd = dial(env.linkd.ingest);
    greet(fd);
    uint8_t runt[10] = {0};
    put64(runt, 2);
    runt[8] = 0x01, runt[9] = 0x02;
    send_all(fd, runt, sizeof runt);
    ldh_check(&env, closed_by_peer(fd), "a frame without a backtrace should close the connection");
    close(fd);

    /* A peer that connects and vanishes mid-frame. */
    fd = dial(env.linkd.ingest);
    greet(fd);
    static uint8_t buf[8192];
    ldh_event ev;
    size_t n = frame(buf, sizeof buf, 7, &ev);
    send_all(fd, buf, n / 2);
    close(fd);

    ldh_check(&env, nng_client_served(), "an NNG client was not served after the bad peers");
    /* And a good raw client on a fresh connection, too. */
    fd = dial(env.linkd.ingest);
    greet(fd);
    n = frame(buf, sizeof buf, 9, &ev);
    send_all(fd, buf, n);
    uint32_t id = 0;
    Linkd__V1__IngestReply *r = read_reply(fd, &id);
    ldh_check(&env, accepted(r, ev.event_id), "a good client after the bad ones was not served");
    linkd__v1__ingest_reply__free_unpacked(r, NULL);
    close(fd);
}

Test(wire_tcp, more_requests_than_contexts_wait_their_turn_and_are_each_answered,
     .init = setup, .fini = teardown, .timeout = 180)
{
    /* linkd keeps 64 intake contexts: 300 requests in one write leave most
     * waiting for one, and each context is answered from a Redis reply, so
     * a context is handed on while its owner finishes the last answer. */
    enum { N = 300 };
    static ldh_event ev[N];
    int fd = dial(env.linkd.ingest);
    greet(fd);
    pipeline(fd, ev, N, 1000);
    close(fd);
    ldh_check(&env, ldh_redis_int(&env.redis, "XLEN ld:events") == N, "every event is logged");
}
