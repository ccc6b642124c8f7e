/* test_service.c: linkd as an ops team runs it. Under systemd (Type=notify)
 * it says READY only once it takes intake, pings the watchdog from its loop,
 * says RELOADING/READY around a reload and STOPPING when it drains; the unit
 * file passes `systemd-analyze verify`; and with the shipped Redis ACL it
 * logs in as its own user, which cannot touch other keys or wipe the server,
 * while a wrong password keeps it out of READY and says why. */
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "harness.h"

#define WAIT_MS 20000

/* ---- sd_notify ---------------------------------------------------------------- */

static char dir[128];
static int notify_fd = -1;

static void notify_setup(void)
{
    cr_assert_eq(ldh_mkdtemp(dir, sizeof dir, "notify"), 0);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    snprintf(a.sun_path, sizeof a.sun_path, "%s/notify", dir);
    notify_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    cr_assert_geq(notify_fd, 0);
    cr_assert_eq(bind(notify_fd, (struct sockaddr *)&a, sizeof a), 0);
    /* Criterion runs each test in its own process: this environment is linkd's alone. */
    setenv("NOTIFY_SOCKET", a.sun_path, 1);
    setenv("WATCHDOG_USEC", "400000", 1); /* a ping every 200 ms */
}

static void notify_teardown(void)
{
    if (notify_fd >= 0) close(notify_fd);
    ldh_rmtree(dir);
}

/* await_state reads datagrams until one contains <what>; returns 1 if seen. */
static int await_state(const char *what, int timeout_ms)
{
    uint64_t end = ldh_mono_ms() + (uint64_t)timeout_ms;
    char buf[1024];
    while (ldh_mono_ms() < end) {
        struct pollfd p = {.fd = notify_fd, .events = POLLIN};
        if (poll(&p, 1, (int)(end - ldh_mono_ms())) <= 0) continue;
        ssize_t n = recv(notify_fd, buf, sizeof buf - 1, 0);
        if (n <= 0) continue;
        buf[n] = '\0';
        if (strstr(buf, what)) return 1;
    }
    return 0;
}

Test(service, notifies_systemd_of_ready_watchdog_reload_and_stopping,
     .init = notify_setup, .fini = notify_teardown, .timeout = 90)
{
    ldh_env env;
    ldh_env_start_or_fail(&env, NULL);
    /* ldh_env_start returned after READY in the log: the datagram is already queued. */
    ldh_check(&env, await_state("READY=1", WAIT_MS), "no READY=1 from linkd");
    ldh_check(&env, await_state("WATCHDOG=1", WAIT_MS), "no watchdog ping from the loop");
    kill(env.linkd.pid, SIGHUP);
    ldh_check(&env, await_state("RELOADING=1", WAIT_MS), "no RELOADING=1 on SIGHUP");
    ldh_check(&env, await_state("READY=1", WAIT_MS), "no READY=1 after the reload");
    kill(env.linkd.pid, SIGTERM);
    ldh_check(&env, await_state("STOPPING=1", WAIT_MS), "no STOPPING=1 on SIGTERM");
    cr_expect_eq(ldh_env_stop(&env), 0, "linkd must exit 0 after the drain");
}

Test(service, says_degraded_to_systemd_while_redis_is_away, .init = notify_setup,
     .fini = notify_teardown, .timeout = 90)
{
    ldh_env env;
    ldh_env_start_or_fail(&env, NULL);
    ldh_check(&env, await_state("READY=1", WAIT_MS), "no READY=1 from linkd");
    ldh_redis_stop(&env.redis);
    ldh_check(&env, await_state("STATUS=degraded", WAIT_MS),
              "systemctl status would not show that Redis is away");
    ldh_env_stop(&env);
}

/* ---- the unit file ---------------------------------------------------------------- */

Test(service, unit_file_passes_systemd_analyze_verify, .timeout = 60)
{
    cr_assert_eq(ldh_mkdtemp(dir, sizeof dir, "unit"), 0);
    char src[256], unit[192], out[192];
    snprintf(src, sizeof src, "%s/ops/linkd.service", LD_SOURCE_DIR);
    snprintf(unit, sizeof unit, "%s/linkd.service", dir);
    snprintf(out, sizeof out, "%s/verify.out", dir);
    char *text = ldh_read_file(src, NULL);
    cr_assert_not_null(text, "cannot read %s", src);
    /* verify checks that ExecStart= exists: point it at the binary under test. */
    const char *from = "/usr/bin/linkd";
    char *at = strstr(text, from);
    cr_assert_not_null(at, "ExecStart= does not run /usr/bin/linkd");
    size_t n = strlen(text) + strlen(LDH_LINKD_BIN) + 1;
    char *fixed = malloc(n);
    snprintf(fixed, n, "%.*s%s%s", (int)(at - text), text, LDH_LINKD_BIN, at + strlen(from));
    cr_assert_eq(ldh_write_file(unit, fixed, strlen(fixed)), 0);
    cr_assert(strstr(text, "Type=notify") && strstr(text, "RestartPreventExitStatus=") &&
                  strstr(text, "ExecReload=") && strstr(text, "ProtectSystem=strict"),
              "the unit lost part of its contract");
    free(text);
    free(fixed);
    char *argv[] = {"systemd-analyze", "verify", unit, NULL};
    int code = ldh_run(argv, NULL, out, out, 30000);
    char *said = ldh_read_file(out, NULL);
    cr_expect_eq(code, 0, "systemd-analyze verify failed (%d):\n%s", code, said ? said : "");
    cr_expect(!said || !strstr(said, "linkd.service:"), "systemd-analyze complains:\n%s", said);
    free(said);
    ldh_rmtree(dir);
}

/* ---- Redis ACL ---------------------------------------------------------------------- */

static ldh_redis redis;
static ldh_linkd linkd;

/* acl_start starts Redis with ops/redis-linkd.acl (password "pw-test"), the
 * default user left on for the harness's own client. */
static void acl_setup(void)
{
    cr_assert_eq(ldh_mkdtemp(dir, sizeof dir, "acl"), 0);
    char src[256], acl[192], pw[192];
    snprintf(src, sizeof src, "%s/ops/redis-linkd.acl", LD_SOURCE_DIR);
    char *text = ldh_read_file(src, NULL);
    cr_assert_not_null(text);
    char *line = strstr(text, "user linkd ");
    cr_assert_not_null(line, "no linkd user in %s", src);
    char *eol = strchr(line, '\n');
    cr_assert_not_null(eol);
    *eol = '\0';
    char *pass = strstr(line, ">CHANGE-ME-linkd ");
    cr_assert_not_null(pass, "the linkd user's password placeholder moved");
    char out[1024];
    snprintf(out, sizeof out, "%.*s>pw-test %s\nuser default on nopass ~* &* +@all\n",
             (int)(pass - line), line, pass + strlen(">CHANGE-ME-linkd "));
    free(text);
    snprintf(acl, sizeof acl, "%s/linkd.acl", dir);
    cr_assert_eq(ldh_write_file(acl, out, strlen(out)), 0);
    snprintf(pw, sizeof pw, "%s/redis.pass", dir);
    cr_assert_eq(ldh_write_file(pw, "pw-test\n", 8), 0);
    cr_assert_eq(ldh_redis_start_acl(&redis, acl), 0);
}

static void acl_teardown(void)
{
    ldh_linkd_free(&linkd);
    ldh_redis_stop(&redis);
    ldh_rmtree(dir);
}

static const char *pass_file(void)
{
    static char pw[192];
    snprintf(pw, sizeof pw, "%s/redis.pass", dir);
    return pw;
}

Test(service, linkd_works_as_its_acl_user_which_cannot_touch_the_rest,
     .init = acl_setup, .fini = acl_teardown, .timeout = 90)
{
    snprintf(redis.url, sizeof redis.url, "redis://linkd@127.0.0.1:%d/0", redis.port);
    ldh_linkd_opts o = {.extra = {"--redis-password-file", pass_file(), NULL}};
    cr_assert_eq(ldh_linkd_start(&linkd, &redis, &o), 0, "linkd did not start as user linkd");
    ldh_event ev;
    ldh_event_call(&ev, LINKD__V1__CALL_CATEGORY__CALL_CATEGORY_FIRE);
    char inc[64];
    cr_assert_eq(ldh_ingest_accept(&linkd, &ev, inc, sizeof inc),
                 LINKD__V1__RESULT__RESULT_ACCEPTED,
                 "an event was not ACCEPTED through the ACL user");
    cr_expect_eq(ldh_redis_int(&redis, "XLEN ld:events"), 1);

    /* The same user, by hand: its own keys yes, anything else no. */
    redisReply *r = ldh_redis_cmd(&redis, "AUTH linkd pw-test");
    cr_assert(r && r->type == REDIS_REPLY_STATUS, "AUTH as linkd failed");
    freeReplyObject(r);
    static const char *refused[] = {"FLUSHALL", "CONFIG GET maxmemory", "SET other 1",
                                    "SHUTDOWN NOSAVE", "SCRIPT FLUSH", "KEYS *"};
    for (size_t i = 0; i < sizeof refused / sizeof *refused; i++) {
        r = ldh_redis_cmd(&redis, refused[i]);
        cr_expect(r && r->type == REDIS_REPLY_ERROR && strncmp(r->str, "NOPERM", 6) == 0,
                  "user linkd may run '%s'", refused[i]);
        if (r) freeReplyObject(r);
    }
    cr_expect_eq(ldh_redis_int(&redis, "XLEN ld:events"), 1, "linkd's stream is readable");
}

/* linkctl_as reads Redis with linkctl <cmd> [arg] as <url>; exit code, output in <out>. */
static int linkctl_as(const char *url, const char *cmd, const char *arg, char *out, size_t len)
{
    char path[192];
    snprintf(path, sizeof path, "%s/linkctl.out", dir);
    char *argv[] = {LD_BINARY_DIR "/linkctl", (char *)cmd, "--redis", (char *)url,
                    arg ? (char *)arg : NULL, NULL};
    int code = ldh_run(argv, NULL, path, path, 30000);
    char *text = ldh_read_file(path, NULL);
    snprintf(out, len, "%s", text ? text : "");
    free(text);
    return code;
}

Test(service, linkctl_reads_redis_as_the_acl_user, .init = acl_setup, .fini = acl_teardown,
     .timeout = 90)
{
    snprintf(redis.url, sizeof redis.url, "redis://linkd@127.0.0.1:%d/0", redis.port);
    ldh_linkd_opts o = {.extra = {"--redis-password-file", pass_file(), NULL}};
    cr_assert_eq(ldh_linkd_start(&linkd, &redis, &o), 0, "linkd did not start as user linkd");
    ldh_event ev;
    ldh_event_call(&ev, LINKD__V1__CALL_CATEGORY__CALL_CATEGORY_FIRE);
    char inc[64], url[128], out[8192];
    cr_assert_eq(ldh_ingest_accept(&linkd, &ev, inc, sizeof inc), LINKD__V1__RESULT__RESULT_ACCEPTED);

    /* The password from the URL, or from the file LINKCTL_REDIS_PASSWORD_FILE names. */
    snprintf(url, sizeof url, "redis://linkd:pw-test@127.0.0.1:%d/0", redis.port);
    int code = linkctl_as(url, "replay", "--dry-run", out, sizeof out);
    cr_expect(code == 0 && strstr(out, ev.event_id), "replay as linkd:pw-test: exit %d\n%s", code, out);
    setenv("LINKCTL_REDIS_PASSWORD_FILE", pass_file(), 1);
    for (int i = 0; i < 200 && ldh_redis_int(&redis, "EXISTS ld:inc:%s", inc) != 1; i++) ldh_sleep_ms(50);
    code = linkctl_as(redis.url, "incidents", NULL, out, sizeof out);
    cr_expect(code == 0 && strstr(out, inc), "incidents as linkd (password file): exit %d\n%s", code, out);

    /* A wrong password: 69, and the password is not printed. */
    snprintf(url, sizeof url, "redis://linkd:not-the-password@127.0.0.1:%d/0", redis.port);
    code = linkctl_as(url, "replay", "--dry-run", out, sizeof out);
    cr_expect(code == 69 && strstr(out, "AUTH refused") && !strstr(out, "not-the-password"),
              "a wrong password: exit %d\n%s", code, out);
    unsetenv("LINKCTL_REDIS_PASSWORD_FILE");
    snprintf(url, sizeof url, "redis://linkd@127.0.0.1:%d/0", redis.port);
    code = linkctl_as(url, "replay", "--dry-run", out, sizeof out);
    cr_expect(code == 69 && strstr(out, "LINKCTL_REDIS_PASSWORD_FILE"),
              "a user without a password: exit %d\n%s", code, out);
}

Test(service, wrong_redis_password_keeps_linkd_out_of_ready_and_says_why,
     .init = acl_setup, .fini = acl_teardown, .timeout = 90)
{
    snprintf(redis.url, sizeof redis.url, "redis://linkd:not-the-password@127.0.0.1:%d/0",
             redis.port);
    ldh_linkd_opts o = {0};
    cr_assert_neq(ldh_linkd_start(&linkd, &redis, &o), 0,
                  "linkd said READY with a wrong Redis password");
    cr_expect(ldh_linkd_log_has(&linkd, "STORE-AUTH"), "the log does not say AUTH failed");
    /* linkd's own lines, not the harness's record of its command line */
    char *log = ldh_linkd_log(&linkd), *save = NULL;
    for (char *l = log ? strtok_r(log, "\n", &save) : NULL; l; l = strtok_r(NULL, "\n", &save))
        cr_expect(strncmp(l, "harness:", 8) == 0 || !strstr(l, "not-the-password"),
                  "the log shows the password: %s", l);
    free(log);
}

/* ---- logs ------------------------------------------------------------------------------ */

Test(service, logs_are_json_lines_with_a_stable_id, .timeout = 90)
{
    ldh_env env;
    ldh_env_start_or_fail(&env, NULL);
    /* a rejected event: its reason, with quotes, goes into a log line */
    ldh_event ev;
    ldh_event_call(&ev, LINKD__V1__CALL_CATEGORY__CALL_CATEGORY_FIRE);
    ev.env.source_id = "bad \"source\"\n\x80";
    Linkd__V1__IngestReply *r = ldh_ingest1(&env.linkd, &ev);
    if (r) linkd__v1__ingest_reply__free_unpacked(r, NULL);
    ldh_linkd_stop(&env.linkd); /* SUMMARY written; the log stays until ldh_env_stop */
    char *log = ldh_linkd_log(&env.linkd), *save = NULL;
    ldh_env_stop(&env);
    cr_assert_not_null(log, "no log");
    int lines = 0, ready = 0;
    for (char *l = strtok_r(log, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
        if (strncmp(l, "harness:", 8) == 0) continue;
        lines++;
        size_t n = strlen(l);
        cr_expect(strncmp(l, "{\"ts\":\"", 7) == 0 && n > 2 && strcmp(l + n - 2, "\"}") == 0,
                  "not a JSON object line: %s", l);
        cr_expect(strstr(l, "\",\"level\":\"") && strstr(l, "\",\"id\":\"") &&
                      strstr(l, "\",\"msg\":\""), "missing a field: %s", l);
        for (const char *p = l; *p; p++)
            cr_expect((unsigned char)*p >= 0x20, "raw control byte in: %s", l);
        ready += strstr(l, "\"id\":\"READY\"") != NULL;
    }
    cr_expect_gt(lines, 2);
    cr_expect_eq(ready, 1, "one READY line, by id");
    free(log);
}
