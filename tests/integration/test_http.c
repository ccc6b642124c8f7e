/* test_http.c: linkd's HTTP side against the real daemon: /metrics is valid
 * Prometheus text (checked by promtool) whose counters move as real traffic
 * goes through intake and terminals; /healthz and /readyz follow Redis.
 *
 * Every wait is bounded; nothing asserts how long anything took. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"
#include "http_client.h"

#include <nng/protocol/reqrep0/req.h>

#define WAIT_MS 30000

static ldh_env env;

static void start(double time_scale)
{
    ldh_linkd_opts o = {.time_scale = time_scale, .http = true};
    ldh_env_start_or_fail(&env, &o);
}

static void teardown(void)
{
    int code = ldh_env_stop(&env);
    cr_expect_eq(code, 0, "linkd must exit 0 on SIGTERM, exited %d", code);
}

/* get fetches <path> and fails the test unless it answers <status>; the body
 * is returned (caller frees). */
static char *get(const char *path, int status)
{
    ldh_http_reply r;
    int rv = ldh_http(env.linkd.http, "GET", path, NULL, NULL, &r);
    ldh_check(&env, rv == 0, "GET %s: no answer (%d)", path, rv);
    ldh_check(&env, r.status == status, "GET %s: status %d, expected %d: %s", path, r.status,
              status, r.body);
    char *body = r.body;
    r.body = NULL;
    ldh_http_reply_free(&r);
    return body;
}

/* promtool_ok runs `promtool check metrics` on <text>. */
static void promtool_ok(const char *text)
{
    char dir[96], in[160], out[160];
    cr_assert_eq(ldh_mkdtemp(dir, sizeof dir, "promtool"), 0);
    snprintf(in, sizeof in, "%s/metrics.txt", dir);
    snprintf(out, sizeof out, "%s/promtool.out", dir);
    cr_assert_eq(ldh_write_file(in, text, strlen(text)), 0);
    char *argv[] = {"promtool", "check", "metrics", NULL};
    int code = ldh_run(argv, in, out, out, 60000);
    if (code != 0) ldh_tail("promtool check metrics", out, 40);
    ldh_rmtree(dir);
    cr_assert_eq(code, 0, "promtool check metrics failed (exit %d; promtool comes with the "
                 "Debian package prometheus, installed by ops/setup.sh)", code);
}

static double metric(const char *series)
{
    char *m = get("/metrics", 200);
    double v = ldh_metric(m, series);
    free(m);
    return v;
}

/* wait_metric polls /metrics until <series> is at least <min>; returns it. */
static double wait_metric(const char *series, double min)
{
    double v = -1;
    uint64_t end = ldh_mono_ms() + WAIT_MS;
    for (int i = 0; i < 600 && ldh_mono_ms() < end; i++) {
        if ((v = metric(series)) >= min) return v;
        ldh_sleep_ms(50);
    }
    return v;
}

#define ACCEPTED_CALLS "linkd_intake_events_total{kind=\"call\",result=\"accepted\"}"
#define REJECTED_CALLS "linkd_intake_events_total{kind=\"call\",result=\"rejected\"}"
#define UNKNOWN_ENUM "linkd_intake_rejected_total{reason=\"unknown_enum\"}"
#define FIRE_ACK_MET "linkd_legs_total{department=\"fire\",leg=\"acknowledge\",outcome=\"met\"}"
#define FIRE_ACK_MISSED \
    "linkd_legs_total{department=\"fire\",leg=\"acknowledge\",outcome=\"missed\"}"
#define FIRE_ACK_COUNT \
    "linkd_leg_duration_seconds_count{department=\"fire\",leg=\"acknowledge\"}"
#define MEDICAL_L1 \
    "linkd_escalations_total{department=\"medical\",level=\"1\",level_name=\"deputy\"}"
#define MEDICAL_ACK_MISSED \
    "linkd_legs_total{department=\"medical\",leg=\"acknowledge\",outcome=\"missed\"}"
#define FIRE_DUTY_ONLINE \
    "linkd_terminal_online{terminal=\"fire-duty\",department=\"fire\"}"

Test(http, metrics_are_valid_and_move_with_traffic, .fini = teardown, .timeout = 240)
{
    /* 60x: the 30 s acknowledge budget passes in half a second of real time. */
    start(60);
    char *before = get("/metrics", 200);
    promtool_ok(before);
    cr_assert_eq(ldh_metric(before, ACCEPTED_CALLS), 0);
    cr_assert_eq(ldh_metric(before, UNKNOWN_ENUM), 0);
    cr_assert_eq(ldh_metric(before, MEDICAL_L1), 0);
    cr_assert_eq(ldh_metric(before, FIRE_DUTY_ONLINE), 0);
    free(before);

    /* A fire call: fire, medical and police get a task each. */
    ldh_event ev;
    char inc[64], task_id[96];
    ldh_accept_call(&env, &ev, LINKD__V1__CALL_CATEGORY__CALL_CATEGORY_FIRE, inc);
    /* A bad one: an unknown category is rejected and counted by reason. */
    ldh_event bad;
    ldh_event_call(&bad, LINKD__V1__CALL_CATEGORY__CALL_CATEGORY_FIRE);
    bad.call.category = (Linkd__V1__CallCategory)99;
    Linkd__V1__IngestReply *rep = ldh_ingest1(&env.linkd, &bad);
    ldh_check(&env, rep && rep->n_results == 1 &&
                        rep->results[0]->result == LINKD__V1__RESULT__RESULT_REJECTED,
              "an unknown category must be rejected");
    linkd__v1__ingest_reply__free_unpacked(rep, NULL);

    /* fire-duty takes its task and acknowledges it; medical-duty never answers. */
    snprintf(task_id, sizeof task_id, "%s/fire", inc);
    ldh_task_match m = {.task_id = task_id};
    Linkd__V1__Task *t = ldh_term_await(&env.linkd, "fire-duty", &m, true, WAIT_MS);
    ldh_check(&env, t != NULL, "fire-duty never got %s", task_id);
    linkd__v1__task__free_unpacked(t, NULL);
    char why[256];
    int res = ldh_term_update(&env.linkd, "fire-duty", task_id,
                              LINKD__V1__UPDATE_KIND__UPDATE_KIND_ACKNOWLEDGED, NULL, why,
                              sizeof why);
    ldh_check(&env, res == LINKD__V1__RESULT__RESULT_ACCEPTED, "ack refused: %s", why);

    ldh_check(&env, wait_metric(MEDICAL_L1, 1) >= 1, "medical's escalation to its deputy "
              "never showed in linkd_escalations_total");
    ldh_check(&env, wait_metric(FIRE_ACK_COUNT, 1) == 1, "fire's acknowledgement never showed "
              "in linkd_leg_duration_seconds");
    char *after = get("/metrics", 200);
    promtool_ok(after);
    cr_expect_eq(ldh_metric(after, ACCEPTED_CALLS), 1);
    cr_expect_eq(ldh_metric(after, REJECTED_CALLS), 1);
    cr_expect_eq(ldh_metric(after, UNKNOWN_ENUM), 1);
    /* Met or missed depends on how fast this machine acknowledged; counted once either way. */
    cr_expect_eq(ldh_metric(after, FIRE_ACK_MET) + ldh_metric(after, FIRE_ACK_MISSED), 1);
    cr_expect_geq(ldh_metric(after, MEDICAL_ACK_MISSED), 1);
    cr_expect_eq(ldh_metric(after, FIRE_DUTY_ONLINE), 1);
    cr_expect_eq(ldh_metric(after, "linkd_incidents_open"), 1);
    cr_expect_eq(ldh_metric(after, "linkd_redis_up"), 1);
    cr_expect_geq(ldh_metric(after, "linkd_tasks{department=\"fire\",state=\"acknowledged\"}"), 1);
    cr_expect_eq(ldh_metric(after, "linkd_tasks{department=\"medical\",state=\"dispatched\"}"), 1);
    cr_expect_geq(ldh_metric(after, "linkd_loop_lag_seconds_count"), 1);
    free(after);
}

/* The process metrics ops alert on (LinkdFileDescriptorsNearLimit in
 * ops/monitoring): open file descriptors follow the connections linkd holds
 * and stay under the limit; memory and CPU are there. */
Test(http, open_file_descriptors_follow_the_connections, .fini = teardown, .timeout = 120)
{
    start(1);
    double before = metric("process_open_fds"), max = metric("process_max_fds");
    ldh_check(&env, before > 0 && max >= before, "process_open_fds %g, process_max_fds %g",
              before, max);
    cr_expect_gt(metric("process_resident_memory_bytes"), 1e6);
    cr_expect_gt(metric("process_cpu_seconds_total"), 0);
    enum { N = 20 };
    nng_socket s[N];
    for (int i = 0; i < N; i++) {
        ldh_check(&env, nng_req0_open(&s[i]) == 0, "nng_req0_open");
        ldh_check(&env, nng_dial(s[i], env.linkd.ingest, NULL, 0) == 0, "producer %d could not "
                  "connect", i);
    }
    double held = -1;
    for (int i = 0; i < 200 && (held = metric("process_open_fds")) < before + N; i++)
        ldh_sleep_ms(50);
    ldh_check(&env, held >= before + N, "with %d more producers connected, process_open_fds "
              "went from %g to %g", N, before, held);
    for (int i = 0; i < N; i++) ldh_nng_close(s[i], "producer socket");
    double after = held;
    for (int i = 0; i < 200 && (after = metric("process_open_fds")) > before; i++)
        ldh_sleep_ms(50);
    ldh_check(&env, after <= before, "after the producers left, process_open_fds is %g, not "
              "back to %g", after, before);
}

Test(http, readyz_says_degraded_when_redis_stops, .fini = teardown, .timeout = 240)
{
    start(0);
    char *b = get("/healthz", 200);
    free(b);
    b = get("/readyz", 200);
    cr_expect(strstr(b, "\"status\":\"ready\"") != NULL, "%s", b);
    free(b);

    ldh_redis_stop(&env.redis);
    ldh_http_reply r = {0};
    uint64_t end = ldh_mono_ms() + WAIT_MS;
    for (int i = 0; i < 600 && ldh_mono_ms() < end; i++) {
        ldh_http_reply_free(&r);
        if (ldh_http(env.linkd.http, "GET", "/readyz", NULL, NULL, &r) == 0 && r.status == 503) break;
        ldh_sleep_ms(50);
    }
    ldh_check(&env, r.status == 503, "/readyz stayed %d with redis stopped", r.status);
    cr_expect(strstr(r.body, "\"status\":\"degraded\"") != NULL, "%s", r.body);
    cr_expect(strstr(r.body, "\"redis\":\"unreachable\"") != NULL, "%s", r.body);
    ldh_http_reply_free(&r);
    /* Alive all the same: liveness does not depend on Redis. */
    b = get("/healthz", 200);
    free(b);
    cr_expect_eq(metric("linkd_redis_up"), 0);
    cr_expect_eq(metric("linkd_ready"), 0);
}

Test(http, unknown_paths_and_methods_get_json_errors, .fini = teardown, .timeout = 120)
{
    start(0);
    char *b = get("/no/such/thing", 404);
    cr_expect(strstr(b, "\"error\":") && strstr(b, "\"status\":404"), "%s", b);
    free(b);
    ldh_http_reply r;
    cr_assert_eq(ldh_http(env.linkd.http, "POST", "/metrics", "{}", NULL, &r), 0);
    cr_expect_eq(r.status, 405, "%s", r.body);
    ldh_http_reply_free(&r);
    cr_expect_eq(metric("linkd_http_errors_total{status=\"404\"}"), 1);
    cr_expect_eq(metric("linkd_http_errors_total{status=\"405\"}"), 1);
}

/* A board that connects gets the most urgent open incidents, --board-max of
 * them, first the most urgent, and how many are open in all: a snapshot of
 * every one was 137 MB at 105,000 open and held the loop 1.5 s. */
Test(http, a_board_snapshot_carries_the_most_urgent_open_incidents_up_to_its_limit,
     .fini = teardown, .timeout = 120)
{
    ldh_linkd_opts o = {.http = true, .extra = {"--board-max", "3"}};
    ldh_env_start_or_fail(&env, &o);
    char fire[64] = "", noise[4][64];
    for (int i = 0; i < 4; i++) {
        ldh_event ev;
        ldh_event_call(&ev, LINKD__V1__CALL_CATEGORY__CALL_CATEGORY_NOISE);
        ldh_check(&env, ldh_ingest_accept(&env.linkd, &ev, noise[i], sizeof noise[i]) ==
                      LINKD__V1__RESULT__RESULT_ACCEPTED,
                  "noise call %d not accepted", i);
    }
    ldh_event ev;
    ldh_event_call(&ev, LINKD__V1__CALL_CATEGORY__CALL_CATEGORY_FIRE);
    ldh_check(&env, ldh_ingest_accept(&env.linkd, &ev, fire, sizeof fire) ==
                      LINKD__V1__RESULT__RESULT_ACCEPTED,
              "fire call not accepted");

    char *snap = NULL;
    ldh_check(&env, ldh_ws_first(env.linkd.http, "linkd-board", &snap) == 0 && snap,
              "no snapshot from the board's WebSocket");
    cr_expect(strstr(snap, "\"t\":\"snapshot\""), "%.200s", snap);
    cr_expect(strstr(snap, "\"open\":5,"), "five open in all: %.300s", snap);
    cr_expect(strstr(snap, "\"shown\":3,"), "three of them carried: %.300s", snap);
    const char *list = strstr(snap, "\"incidents\":[");
    cr_assert(list, "%.300s", snap);
    char want[96];
    snprintf(want, sizeof want, "\"incidents\":[{\"id\":\"%s\"", fire);
    cr_expect(strncmp(list, want, strlen(want)) == 0, "the critical fire first: %.120s", list);
    int carried = 0;
    for (int i = 0; i < 4; i++) {
        snprintf(want, sizeof want, "{\"id\":\"%s\"", noise[i]);
        carried += strstr(list, want) != NULL;
    }
    cr_expect_eq(carried, 2, "two of the four low-priority calls: %d", carried);
    free(snap);

    /* The incidents list chooses the same way: the fire first, then as many as asked. */
    char *two = get("/api/incidents?limit=2", 200);
    cr_expect(strstr(two, "\"open\":5,\"count\":2,"), "%.200s", two);
    snprintf(want, sizeof want, "\"incidents\":[{\"id\":\"%s\"", fire);
    cr_expect(strstr(two, want), "the critical fire first: %.200s", two);
    free(two);
}

/* An HTTP port another process holds: linkd says so and exits 69 (it cannot
 * listen), as it does for its NNG ports, instead of running without the
 * HTTP it was asked for. */
Test(http, a_taken_port_makes_linkd_exit_69, .fini = teardown, .timeout = 120)
{
    memset(&env, 0, sizeof env);
    ldh_check(&env, ldh_redis_start(&env.redis) == 0, "redis did not start");
    int holder = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET};
    socklen_t sl = sizeof sa;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ldh_check(&env, holder >= 0 && bind(holder, (struct sockaddr *)&sa, sizeof sa) == 0 &&
                        listen(holder, 4) == 0 &&
                        getsockname(holder, (struct sockaddr *)&sa, &sl) == 0,
              "cannot hold a port");
    char port_arg[32];
    snprintf(port_arg, sizeof port_arg, "127.0.0.1:%d", ntohs(sa.sin_port));
    ldh_linkd_opts o = {.extra = {"--http", port_arg, NULL}};
    int rv = ldh_linkd_start(&env.linkd, &env.redis, &o);
    close(holder);
    ldh_check(&env, rv != 0 && env.linkd.exit_code == 69,
              "linkd with its HTTP port taken: start %d, exit code %d, not 69", rv,
              env.linkd.exit_code);
    ldh_check(&env, ldh_linkd_log_has(&env.linkd, "HTTP-LISTEN") &&
                        !ldh_linkd_log_has(&env.linkd, "serving http"),
              "the log does not say that HTTP could not listen");
    env.linkd.exit_code = 0; /* the exit the test wanted; teardown expects 0 */
}
