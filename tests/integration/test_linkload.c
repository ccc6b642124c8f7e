/* test_linkload.c: linkload, the ops teams' load tester, against the real
 * linkd and Redis.
 *
 * What an ops team relies on: the report's counts are what linkd actually
 * stored; escalations caused by no-show terminals are seen on the feed; a
 * mistake in a scenario file is reported with file:line:col; and a linkd
 * that is down, silent or pushing back ends the run in bounded time with
 * the failure counted, never a hang. Rates are tiny: this is behaviour, not
 * speed (docs/BENCHMARKS.md has the speed). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"

#define LINKLOAD_BIN LD_BINARY_DIR "/linkload"
#define RUN_MS 90000   /* bound on one linkload run (it bounds itself far below this) */

static ldh_env env;
static char dir[128];

static void setup_dir(void)
{
    cr_assert_eq(ldh_mkdtemp(dir, sizeof dir, "linkload"), 0);
}

static void teardown(void)
{
    ldh_env_stop(&env);
    memset(&env, 0, sizeof env);
    if (dir[0]) ldh_rmtree(dir);
    dir[0] = '\0';
}

static void write_text(const char *name, const char *text, char *path, size_t len)
{
    snprintf(path, len, "%s/%s", dir, name);
    cr_assert_eq(ldh_write_file(path, text, strlen(text)), 0);
}

/* json_u64 returns the number after the first "<key>": at or after <from>,
 * or -1 if there is none. */
static long long json_num(const char *from, const char *key)
{
    char pat[96];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *p = from ? strstr(from, pat) : NULL;
    return p ? strtoll(p + strlen(pat), NULL, 10) : -1;
}

/* run_linkload runs linkload with <args> (NULL-terminated, after "run")
 * and returns its exit code; stdout and stderr go to dir/out.txt. */
static int run_linkload(const char *const *args)
{
    char *argv[48];
    int n = 0;
    argv[n++] = LINKLOAD_BIN;
    argv[n++] = "run";
    for (; *args && n < 46; args++) argv[n++] = (char *)*args;
    argv[n] = NULL;
    char out[192];
    snprintf(out, sizeof out, "%s/out.txt", dir);
    int code = ldh_run(argv, NULL, out, out, RUN_MS);
    if (code != 0) ldh_tail("linkload output", out, 30);
    return code;
}

static char *read_out(const char *name)
{
    char path[192];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    char *s = ldh_read_file(path, NULL);
    cr_assert_not_null(s, "%s was not written", path);
    return s;
}

/* A short scenario: two phases, a ramp, Poisson arrivals; terminals answer at
 * once except utilities, whose officers never answer, so every utilities
 * task must climb its chain. */
static const char SCENARIO[] =
    "scenario: it-short\n"
    "status: test\n"
    "arrivals: poisson\n"
    "mix: { call: 70, water_supply: 20, sensor: 5, petition: 5 }\n"
    "terminals:\n"
    "  acknowledge: 0\n"
    "  departments:\n"
    "    utilities: { no_show: 1 }\n"
    "phases:\n"
    "  - { name: steady, duration: 1s, rate: 60 }\n"
    "  - { name: ramp, duration: 1s, rate: 60..150 }\n";

Test(linkload, report_counts_match_what_linkd_stored_and_escalations_come_from_the_feed,
     .init = setup_dir, .fini = teardown)
{
    /* At 60 times real time the utilities' 60 s acknowledge budget is 1 s. */
    ldh_linkd_opts o = {.time_scale = 60};
    ldh_env_start_or_fail(&env, &o);
    char scen[192], json[192];
    write_text("it.yaml", SCENARIO, scen, sizeof scen);
    snprintf(json, sizeof json, "%s/report.json", dir);
    const char *args[] = {"--scenario", scen, "--ingest", env.linkd.ingest, "--terminals",
                          env.linkd.terminals, "--feed", env.linkd.feed, "--rules", LDH_DEFAULT_RULES,
                          "--batch", "5", "--linger", "4", "--json", json, "--quiet", NULL};
    ldh_check(&env, run_linkload(args) == 0, "linkload run failed");

    char *rep = read_out("report.json");
    long long sent = json_num(rep, "sent"), accepted = json_num(rep, "accepted");
    long long stored = ldh_redis_int(&env.redis, "XLEN ld:events");
    ldh_check(&env, accepted > 0, "nothing accepted: %s", rep);
    ldh_check(&env, accepted == stored, "report says %lld accepted, linkd stored %lld", accepted, stored);
    long long answered = accepted + json_num(rep, "duplicate") + json_num(rep, "rejected") +
                         json_num(rep, "retry_later") + json_num(rep, "timeouts") +
                         json_num(rep, "unanswered") + json_num(rep, "errors") +
                         json_num(rep, "bad_replies");
    ldh_check(&env, answered == sent, "%lld sent but %lld accounted for: %s", sent, answered, rep);

    /* The feed saw the tasks, and utilities' silence escalated. */
    const char *feed = strstr(rep, "\"feed\":");
    ldh_check(&env, feed != NULL, "no feed section: %s", rep);
    ldh_check(&env, json_num(feed, "tasks_dispatched") > 0, "no task dispatched on the feed");
    const char *util = strstr(rep, "\"utilities\":{");
    ldh_check(&env, util != NULL, "no utilities figures: %s", rep);
    ldh_check(&env, json_num(util, "dispatched") > 0, "utilities got no task");
    ldh_check(&env, json_num(util, "acknowledged") == 0, "a no-show terminal acknowledged");
    ldh_check(&env, json_num(util, "acknowledge") > 0, "utilities' missed acknowledgements did not escalate");
    ldh_check(&env, json_num(feed, "escalations") >= json_num(util, "acknowledge"),
              "total escalations below utilities' own");
    const char *police = strstr(rep, "\"police\":{");
    ldh_check(&env, police && json_num(police, "acknowledged_in_time") > 0,
              "police acknowledged nothing in time: %s", rep);
    ldh_check(&env, json_num(rep, "no_shows") > 0, "no no-show counted");
    free(rep);
}

Test(linkload, scenario_mistakes_are_reported_with_file_line_and_column, .init = setup_dir,
     .fini = teardown)
{
    char scen[192];
    write_text("bad.yaml",
               "scenario: bad\n"
               "phases:\n"
               "  - { duration: 1s, rate: 10 }\n"
               "  - { duration: 1s, rtae: 10 }\n"
               "terminals: { acknowledge: soon }\n",
               scen, sizeof scen);
    /* No linkd is needed: the scenario is checked before anything is sent. */
    const char *args[] = {"--scenario", scen, "--ingest", "tcp://127.0.0.1:1", "--quiet", NULL};
    cr_assert_eq(run_linkload(args), 65);
    char *out = read_out("out.txt");
    char want[256];
    snprintf(want, sizeof want, "%s:4:21: error: unknown key 'rtae' in phase", scen);
    cr_assert(strstr(out, want), "want '%s' in:\n%s", want, out);
    snprintf(want, sizeof want, "%s:4:7: error: phase 'phase 2' is missing 'rate'", scen);
    cr_assert(strstr(out, want), "want '%s' in:\n%s", want, out);
    snprintf(want, sizeof want, "%s:5:27: error: 'acknowledge': 'soon' is not a delay", scen);
    cr_assert(strstr(out, want), "want '%s' in:\n%s", want, out);
    free(out);
}

Test(linkload, an_unreachable_linkd_ends_the_run_at_once_and_is_counted, .init = setup_dir,
     .fini = teardown)
{
    int port;
    cr_assert_eq(ldh_free_ports(&port, 1), 0);
    char url[64], json[192];
    snprintf(url, sizeof url, "tcp://127.0.0.1:%d", port);
    snprintf(json, sizeof json, "%s/report.json", dir);
    const char *args[] = {"--rate", "100", "--duration", "600", "--ingest", url, "--no-terminals",
                          "--json", json, "--quiet", NULL};
    cr_assert_eq(run_linkload(args), 69);   /* a 600 s run, ended at once: EX_UNAVAILABLE */
    char *rep = read_out("report.json");
    cr_assert(strstr(rep, "\"unreachable\":true"), "%s", rep);
    cr_assert_eq(json_num(rep, "connect_errors"), 1, "%s", rep);
    cr_assert_eq(json_num(rep, "accepted"), 0, "%s", rep);
    free(rep);
}

Test(linkload, a_linkd_that_never_answers_ends_the_run_with_timeouts_counted, .init = setup_dir,
     .fini = teardown)
{
    /* A listener that accepts TCP connections and never says a word: the
     * connection succeeds, no reply ever comes. */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert_geq(fd, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    cr_assert_eq(listen(fd, 16), 0);
    cr_assert_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    char url[64], json[192];
    snprintf(url, sizeof url, "tcp://127.0.0.1:%d", ntohs(a.sin_port));
    snprintf(json, sizeof json, "%s/report.json", dir);
    const char *args[] = {"--rate", "50", "--duration", "600", "--ingest", url, "--no-terminals",
                          "--timeout", "500", "--connect-timeout", "1", "--json", json, "--quiet",
                          NULL};
    int code = run_linkload(args);
    close(fd);
    cr_assert_eq(code, 69);
    char *rep = read_out("report.json");
    cr_assert(strstr(rep, "\"unreachable\":true"), "%s", rep);
    cr_assert_gt(json_num(rep, "timeouts"), 0, "%s", rep);
    cr_assert_eq(json_num(rep, "accepted"), 0, "%s", rep);
    free(rep);
}

/* linkload echo, the transport's floor: a REP server with no logic that
 * answers every request with each of its events ACCEPTED, and stops by itself. */
Test(linkload, echo_answers_every_event_accepted_and_stops_by_itself, .init = setup_dir,
     .fini = teardown)
{
    int port;
    cr_assert_eq(ldh_free_ports(&port, 1), 0);
    char url[64], json[192], log[192];
    snprintf(url, sizeof url, "tcp://127.0.0.1:%d", port);
    snprintf(json, sizeof json, "%s/report.json", dir);
    snprintf(log, sizeof log, "%s/echo.txt", dir);
    char *echo[] = {LINKLOAD_BIN, "echo", "--ingest", url, "--batch", "5", "--seconds", "6", NULL};
    pid_t pid = ldh_spawn(echo, NULL, log, log);
    cr_assert_gt(pid, 0);
    /* Its socket first: under a sanitizer it can take a while to start. */
    bool listening = false;
    for (int i = 0; i < 200 && !listening; i++) {
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
        inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        listening = fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
        if (fd >= 0) close(fd);
        if (!listening) ldh_sleep_ms(50);
    }
    cr_assert(listening, "linkload echo never listened on %s", url);
    const char *args[] = {"--rate", "500", "--duration", "1", "--batch", "5", "--ingest", url,
                          "--no-terminals", "--json", json, "--quiet", NULL};
    int code = run_linkload(args);
    int echo_code = -1;
    int waited = ldh_wait_pid(pid, 30000, &echo_code);
    if (waited != 0) ldh_stop_pid(pid, 2000);
    cr_assert_eq(code, 0, "linkload run against echo failed");
    char *rep = read_out("report.json");
    cr_expect_eq(json_num(rep, "accepted"), 500, "every event of the run accepted: %s", rep);
    cr_expect_eq(json_num(rep, "rejected"), 0, "%s", rep);
    free(rep);
    cr_expect_eq(waited, 0, "linkload echo did not stop after its --seconds");
    cr_expect_eq(echo_code, 0);
}

/* limited_run starts linkd with --source-rate <limit>, runs linkload at
 * <rate> events/s for <secs> over <conns> connections (batch 1, no
 * terminals) and returns its JSON report, to free. */
static char *limited_run(const char *limit, const char *rate, const char *secs,
                         const char *conns)
{
    ldh_linkd_opts o = {.extra = {"--source-rate", limit, NULL}};
    ldh_env_start_or_fail(&env, &o);
    char json[192];
    snprintf(json, sizeof json, "%s/report.json", dir);
    const char *args[] = {"--rate", rate, "--duration", secs, "--connections", conns, "--batch", "1",
                          "--ingest", env.linkd.ingest, "--no-terminals", "--json", json, "--quiet",
                          NULL};
    ldh_check(&env, run_linkload(args) == 0, "linkload run failed");
    return read_out("report.json");
}

Test(linkload, retry_later_answers_are_counted_by_reason, .init = setup_dir, .fini = teardown)
{
    char *rep = limited_run("20", "200", "1", "1");
    long long retry = json_num(rep, "retry_later"), accepted = json_num(rep, "accepted");
    ldh_check(&env, retry > 0, "no RETRY_LATER from a source over its rate: %s", rep);
    ldh_check(&env, accepted > 0, "nothing accepted: %s", rep);
    ldh_check(&env, accepted == ldh_redis_int(&env.redis, "XLEN ld:events"),
              "accepted differs from what linkd stored: %s", rep);
    const char *reasons = strstr(rep, "\"reasons\":[{\"result\":\"RETRY_LATER\"");
    ldh_check(&env, reasons && json_num(reasons, "n") > 0, "RETRY_LATER not counted by reason: %s", rep);
    free(rep);
}

/* linkload's connections stand for gateways, each its own source: the load
 * is spread evenly over them, so four gateways at 60 events/s each stay
 * under a per-source limit of 100 however the replies come back. */
Test(linkload, the_load_is_spread_evenly_over_the_sources, .init = setup_dir, .fini = teardown)
{
    char *rep = limited_run("100", "240", "2", "4");
    ldh_check(&env, json_num(rep, "retry_later") == 0, "a source went over its limit: %s", rep);
    ldh_check(&env, json_num(rep, "accepted") >= 480, "not every event accepted: %s", rep);
    free(rep);
    /* Events per gateway, by the source id each stream entry carries. */
    static const char count[] = "local n = 0 "
                                "for _, e in ipairs(redis.call('XRANGE', 'ld:events', '-', '+')) do "
                                "if string.sub(e[2][2], -4) == ARGV[1] then n = n + 1 end end "
                                "return n";
    for (int k = 0; k < 4; k++) {
        long long n = ldh_redis_int(&env.redis, "EVAL %s 0 -gw%d", count, k);
        ldh_check(&env, n >= 100 && n <= 160, "gateway %d sent %lld of the events", k, n);
    }
}

Test(linkload, every_shipped_scenario_loads_against_the_default_rules, .init = setup_dir,
     .fini = teardown)
{
    static const char *const shipped[] = {"evening", "typhoon", "alarm-storm", "mass-petition", "drill"};
    int port;
    cr_assert_eq(ldh_free_ports(&port, 1), 0);
    char url[64];
    snprintf(url, sizeof url, "tcp://127.0.0.1:%d", port);
    for (size_t i = 0; i < sizeof shipped / sizeof shipped[0]; i++) {
        char path[256];
        snprintf(path, sizeof path, "%s/loadtest/scenarios/%s.yaml", LD_SOURCE_DIR, shipped[i]);
        /* Nothing listens there: a scenario that loads ends with "unreachable"
         * (69); one with a mistake, or naming a department the rules lack,
         * with 65 before anything is sent. */
        const char *args[] = {"--scenario", path, "--ingest", url, "--rules", LDH_DEFAULT_RULES,
                              "--quiet", NULL};
        cr_assert_eq(run_linkload(args), 69, "%s does not load", path);
    }
}

/* run_am_config runs `linkload am-config` on <rules> into dir/am.yml and
 * returns its exit code; its messages go to dir/am.txt. */
static int run_am_config(const char *rules)
{
    char out[192], yml[192];
    snprintf(out, sizeof out, "%s/am.txt", dir);
    snprintf(yml, sizeof yml, "%s/am.yml", dir);
    char *argv[] = {LINKLOAD_BIN, "am-config", "--rules", (char *)rules, "--hook",
                    "http://127.0.0.1:9", "--out", yml, NULL};
    return ldh_run(argv, NULL, out, out, RUN_MS);
}

/* The peer's routing tree must route what linkd routes: a condition left out
 * would send Alertmanager's alerts to more receivers than linkd's tasks (the
 * default rules' bypass and repeat petitions once did), so the comparison
 * counted phantom deliveries. */
Test(linkload, alertmanager_config_keeps_every_condition_or_refuses, .init = setup_dir,
     .fini = teardown)
{
    cr_assert_eq(run_am_config(LDH_DEFAULT_RULES), 0);
    char *yml = read_out("am.yml");
    const char *bypass = strstr(yml, "# petition-bypass-level ");
    const char *repeat = strstr(yml, "# petition-repeat ");
    cr_assert(bypass && repeat, "both petition routes are in the tree:\n%s", yml);
    cr_expect(strstr(bypass, "'bypass=\"true\"'") && strstr(bypass, "'bypass=\"true\"'") < repeat,
              "the bypass-level route matches on the bypass label");
    cr_expect(strstr(repeat, "'repeat=~\"[1-9][0-9]*\"'"),
              "the repeat route matches repeat counts of 1 and more");
    free(yml);

    /* A route on district and time of day has no equivalent: refused by name. */
    cr_assert_neq(run_am_config(LD_SOURCE_DIR "/tests/data/rules/routing"), 0);
    char *out = read_out("am.txt");
    cr_expect(strstr(out, "has no Alertmanager matcher here"), "got:\n%s", out);
    free(out);
}
