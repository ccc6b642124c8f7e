/* test_audit.c: every state change of an incident lands in its audit trail
 * in Redis, chained by hashes; `linkctl audit` prints and verifies it,
 * catches an edited or removed entry, and the chain carries on across a
 * restart of linkd. Against the real daemon, Redis and NNG; bounded waits. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "http_client.h"

#define WAIT_MS 20000
#define TOKEN "audit-token-0123456789abcdef"
#define LINKCTL LD_BINARY_DIR "/linkctl"

static ldh_env env;
static char dir[96], token_path[160];

static void start(void)
{
    cr_assert_eq(ldh_mkdtemp(dir, sizeof dir, "audit"), 0);
    snprintf(token_path, sizeof token_path, "%s/admin.token", dir);
    cr_assert_eq(ldh_write_file(token_path, TOKEN, strlen(TOKEN)), 0);
    ldh_linkd_opts o = {.http = true, .extra = {"--admin-token-file", token_path, NULL}};
    ldh_env_start_or_fail(&env, &o);
}

static void teardown(void)
{
    int code = ldh_env_stop(&env);
    ldh_rmtree(dir);
    cr_expect_eq(code, 0, "linkd must exit 0 on SIGTERM, exited %d", code);
}

/* audit runs `linkctl audit <inc>`; returns its exit code, output in *out. */
static int audit(const char *inc, char **out)
{
    char path[160];
    snprintf(path, sizeof path, "%s/audit.out", dir);
    unlink(path);
    char *argv[] = {LINKCTL, "audit", "--redis", env.redis.url, (char *)inc, NULL};
    int code = ldh_run(argv, NULL, path, path, 30000);
    *out = ldh_read_file(path, NULL);
    if (!*out) *out = strdup("");
    return code;
}

static long long trail_len(const char *inc)
{
    return ldh_redis_int(&env.redis, "LLEN ld:audit:%s", inc);
}

/* poll_until reads <read>(<arg>) every 50 ms until it is at least <at_least>, for
 * at most WAIT_MS; returns the last value read. */
static double poll_until(double (*read)(const char *arg), const char *arg, double at_least)
{
    uint64_t end = ldh_mono_ms() + WAIT_MS;
    double v = read(arg);
    for (int i = 0; i < 400 && v < at_least && ldh_mono_ms() < end; i++) {
        ldh_sleep_ms(50);
        v = read(arg);
    }
    return v;
}

static double trail_len_of(const char *inc) { return (double)trail_len(inc); }

static bool wait_len(const char *inc, long long n)
{
    return poll_until(trail_len_of, inc, (double)n) >= (double)n;
}

/* accept_petition sends a wage-arrears petition (justice and petition
 * desks) and puts its incident id in <inc>. */
static void accept_petition(char inc[64])
{
    ldh_event ev;
    ldh_event_petition(&ev, LINKD__V1__PETITION_ISSUE__PETITION_ISSUE_WAGE_ARREARS, 2);
    ldh_check(&env, ldh_ingest_accept(&env.linkd, &ev, inc, 64) ==
                        LINKD__V1__RESULT__RESULT_ACCEPTED, "not accepted");
}

static void extend(const char *inc, const char *reason)
{
    char path[192], body[256];
    snprintf(path, sizeof path, "/api/incidents/%s/tasks/justice/extend", inc);
    snprintf(body, sizeof body, "{\"by\":\"Supervisor Wang\",\"reason\":\"%s\",\"leg\":\"resolve\","
                                "\"extend_by\":\"1d\"}", reason);
    ldh_http_reply r;
    ldh_check(&env, ldh_http(env.linkd.http, "POST", path, body, TOKEN, &r) == 0 && r.status == 200,
              "extend failed: %d %s", r.status, r.body);
    ldh_http_reply_free(&r);
}

Test(audit, trail_records_every_change_and_verifies, .fini = teardown, .timeout = 240)
{
    start();
    char inc[64], tid[128], why[256];
    accept_petition(inc);
    snprintf(tid, sizeof tid, "%s/justice", inc);
    int res = ldh_term_update(&env.linkd, "justice-duty", tid,
                              LINKD__V1__UPDATE_KIND__UPDATE_KIND_ACKNOWLEDGED, NULL, why,
                              sizeof why);
    ldh_check(&env, res == LINKD__V1__RESULT__RESULT_ACCEPTED, "ack refused: %s", why);
    extend(inc, "court holiday");
    /* opened, two dispatches, the acknowledgement, the extension */
    ldh_check(&env, wait_len(inc, 5), "the trail has %lld entries, expected 5", trail_len(inc));

    char *out;
    int code = audit(inc, &out);
    cr_expect_eq(code, 0, "linkctl audit: exit %d\n%s", code, out);
    cr_expect(strstr(out, "incident_opened") && strstr(out, "task_acknowledged") &&
                  strstr(out, "deadline_extended") && strstr(out, "by Supervisor Wang: court holiday"),
              "%s", out);
    cr_expect(strstr(out, "audit trail intact: 5 entries"), "%s", out);
    free(out);
    /* The incident opened with its two dispatches, in one write: only the
     * write's last line shows the hash, and the list ends in one. */
    redisReply *first = ldh_redis_cmd(&env.redis, "LINDEX ld:audit:%s 0", inc);
    redisReply *last = ldh_redis_cmd(&env.redis, "LINDEX ld:audit:%s -1", inc);
    ldh_check(&env, first && first->type == REDIS_REPLY_STRING && last &&
                  last->type == REDIS_REPLY_STRING, "no first or last entry");
    cr_expect(strstr(first->str, "incident_opened") && !strstr(first->str, "\"hash\""), "%s",
              first->str);
    cr_expect(strstr(last->str, "\"hash\":\""), "%s", last->str);
    freeReplyObject(first);
    freeReplyObject(last);

    /* The chain goes on across a restart: the tail is read back from Redis. */
    int old = -1;
    ldh_check(&env, ldh_env_restart(&env, false, &old) == 0, "restart failed");
    cr_expect_eq(old, 0);
    extend(inc, "still closed");
    ldh_check(&env, wait_len(inc, 6), "no entry after the restart");
    code = audit(inc, &out);
    cr_expect_eq(code, 0, "after a restart: exit %d\n%s", code, out);
    cr_expect(strstr(out, "audit trail intact: 6 entries"), "%s", out);
    free(out);

    /* An edited entry breaks the chain at its write. */
    redisReply *r = ldh_redis_cmd(&env.redis, "LINDEX ld:audit:%s 3", inc);
    ldh_check(&env, r && r->type == REDIS_REPLY_STRING, "no 4th entry");
    char *edited = strdup(r->str);
    freeReplyObject(r);
    char *k = strstr(edited, "task_acknowledged");
    cr_assert(k, "the 4th entry is not the acknowledgement: %s", edited);
    memcpy(k, "task_rejected_____", 17);
    r = ldh_redis_cmd(&env.redis, "LSET ld:audit:%s 3 %s", inc, edited);
    if (r) freeReplyObject(r);
    free(edited);
    code = audit(inc, &out);
    cr_expect_eq(code, 65, "an edited trail must fail: exit %d\n%s", code, out);
    /* Entries 1-5 may have gone in one write, which then fails as a whole
     * (only its last line shows a hash); entry 6, written after the
     * restart, still verifies. */
    cr_expect(strstr(out, "BROKEN") && strstr(out, "the first at position "), "%s", out);
    cr_expect(strstr(out, "still closed  [ok]"), "the later write is intact: %s", out);
    free(out);
}

Test(audit, removed_entry_is_caught, .fini = teardown, .timeout = 240)
{
    start();
    char inc[64];
    accept_petition(inc);
    extend(inc, "first");
    ldh_check(&env, wait_len(inc, 4), "the trail has %lld entries", trail_len(inc));
    char *out;
    cr_expect_eq(audit(inc, &out), 0, "%s", out);
    free(out);
    /* Remove the second entry (a dispatch), as someone hiding a late task would. */
    redisReply *r = ldh_redis_cmd(&env.redis, "LINDEX ld:audit:%s 1", inc);
    ldh_check(&env, r && r->type == REDIS_REPLY_STRING, "no second entry");
    redisReply *d = ldh_redis_cmd(&env.redis, "LREM ld:audit:%s 1 %b", inc, r->str, r->len);
    freeReplyObject(r);
    cr_assert(d && d->integer == 1);
    freeReplyObject(d);
    int code = audit(inc, &out);
    cr_expect_eq(code, 65, "a trail with a hole must fail: exit %d\n%s", code, out);
    free(out);
    cr_expect_eq(audit("I0-0", &out), 66, "an unknown incident has no trail: %s", out);
    free(out);
}

static double metric(const char *series)
{
    ldh_http_reply r;
    double v = -1;
    if (ldh_http(env.linkd.http, "GET", "/metrics", NULL, NULL, &r) == 0 && r.status == 200)
        v = ldh_metric(r.body, series);
    ldh_http_reply_free(&r);
    return v;
}

static double ttl_of(const char *inc)
{
    return (double)ldh_redis_int(&env.redis, "TTL ld:audit:%s", inc);
}

/* Redis refusing writes (out of memory here) must not cost a line: the line
 * waits, is counted as sent again, and lands once, in its place, when Redis
 * takes writes again. A closed incident's trail gets its time to live. */
Test(audit, refused_line_is_sent_again_and_closed_trail_expires, .fini = teardown,
     .timeout = 240)
{
    start();
    char inc[64];
    accept_petition(inc);
    ldh_check(&env, wait_len(inc, 3), "the trail has %lld entries, expected 3", trail_len(inc));
    cr_expect_eq(ldh_redis_int(&env.redis, "TTL ld:audit:%s", inc), -1,
                 "an open incident's trail must not expire");

    redisReply *r = ldh_redis_cmd(&env.redis, "CONFIG SET maxmemory 1");
    ldh_check(&env, r && r->type == REDIS_REPLY_STATUS, "CONFIG SET maxmemory refused");
    freeReplyObject(r);
    extend(inc, "while redis refuses writes");
    bool resent = poll_until(metric, "linkd_audit_lines_total{outcome=\"resent\"}", 1) >= 1;
    long long during = trail_len(inc);
    r = ldh_redis_cmd(&env.redis, "CONFIG SET maxmemory 0");
    ldh_check(&env, r && r->type == REDIS_REPLY_STATUS, "CONFIG SET maxmemory 0 refused");
    freeReplyObject(r);
    ldh_check(&env, resent, "no audit line was counted as sent again while Redis refused");
    cr_expect_eq(during, 3, "a line Redis refused is in the trail: %lld entries", during);

    ldh_check(&env, wait_len(inc, 4), "the refused line never landed: %lld entries",
              trail_len(inc));
    char *out;
    int code = audit(inc, &out);
    cr_expect_eq(code, 0, "linkctl audit: exit %d\n%s", code, out);
    cr_expect(strstr(out, "audit trail intact: 4 entries") &&
                  strstr(out, "while redis refuses writes"), "%s", out);
    free(out);
    cr_expect_eq(metric("linkd_audit_lines_total{outcome=\"dropped\"}"), 0);

    char path[160];
    snprintf(path, sizeof path, "/api/incidents/%s/close", inc);
    ldh_http_reply h;
    ldh_check(&env, ldh_http(env.linkd.http, "POST", path,
                             "{\"by\":\"Supervisor Wang\",\"reason\":\"paid\","
                             "\"disposition\":\"wages paid\"}", TOKEN, &h) == 0 &&
                        h.status == 200, "close failed: %d %s", h.status, h.body);
    ldh_http_reply_free(&h);
    ldh_check(&env, wait_len(inc, 5), "no closing entry: %lld entries", trail_len(inc));
    long long ttl = (long long)poll_until(ttl_of, inc, 0);
    cr_expect(ttl > 80LL * 86400 && ttl <= 90LL * 86400,
              "a closed trail must live about 90 days, TTL %lld", ttl);
}
