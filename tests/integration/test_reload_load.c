/* test_reload_load.c: rules reloaded again and again while producers send
 * a steady stream of fire calls (each goes to fire-duty and medical-duty,
 * tests/data/rules-it/small) and two terminals poll, receipt and resolve.
 * Reloads come by SIGHUP and by POST /api/rules/reload, alternating two
 * budgets, with one broken set among them. Nothing may be lost: every event
 * a producer was told ACCEPTED is in ld:events and its incident reached
 * both terminals, nothing is REJECTED, and every reload is recorded with its
 * outcome in Redis (ld:reloads), in the JSON API and in /metrics. */
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "http_client.h"
#include "load.h"

#define SRC LD_SOURCE_DIR "/tests/data/rules-it/small"
#define TOKEN "reload-load-token-0123456789abcdef"
#define RELOADS 8

static ldh_env env;
static char dir[128], token_path[192];
static char *routes30, *routes45;

static void put(const char *name, const char *text)
{
    char path[192];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    cr_assert_eq(ldh_write_file(path, text, strlen(text)), 0);
}

static char *source(const char *name)
{
    char path[192];
    snprintf(path, sizeof path, "%s/%s", SRC, name);
    char *s = ldh_read_file(path, NULL);
    cr_assert_not_null(s, "cannot read %s", path);
    return s;
}

/* with_budget returns the routes with the fire task's acknowledge budget <b>. */
static char *with_budget(const char *routes, const char *b)
{
    const char *from = "department: fire, acknowledge: 30s";
    const char *at = strstr(routes, from);
    cr_assert_not_null(at);
    size_t n = strlen(routes) + 16;
    char *out = malloc(n);
    snprintf(out, n, "%.*sdepartment: fire, acknowledge: %s%s", (int)(at - routes), routes, b,
             at + strlen(from));
    return out;
}

static void setup(void)
{
    cr_assert_eq(ldh_mkdtemp(dir, sizeof dir, "reloadload"), 0);
    char *d = source("departments.yaml"), *r = source("routes.yaml");
    put("departments.yaml", d);
    routes30 = with_budget(r, "30s");
    routes45 = with_budget(r, "45s");
    put("routes.yaml", routes30);
    free(d);
    free(r);
    snprintf(token_path, sizeof token_path, "%s/admin.token", dir);
    cr_assert_eq(ldh_write_file(token_path, TOKEN "\n", strlen(TOKEN) + 1), 0);
    ldh_linkd_opts o = {.rules = dir,
                        .http = true, .extra = {"--admin-token-file", token_path, NULL}};
    ldh_env_start_or_fail(&env, &o);
}

static void teardown(void)
{
    int code = ldh_env_stop(&env);
    ldh_rmtree(dir);
    free(routes30);
    free(routes45);
    cr_expect_eq(code, 0, "linkd must exit 0 on SIGTERM, exited %d", code);
}

static int log_count(const char *needle)
{
    char *log = ldh_linkd_log(&env.linkd);
    int n = 0;
    for (const char *p = log; p && (p = strstr(p, needle)) != NULL; p += strlen(needle)) n++;
    free(log);
    return n;
}

/* reload_once asks for a reload (SIGHUP or HTTP) and waits for its outcome
 * in the log: "RELOADED" or "RELOAD-FAILED". */
static void reload_once(bool http, const char *expect)
{
    int before = log_count(expect);
    if (http) {
        ldh_http_reply r;
        ldh_check(&env, ldh_http(env.linkd.http, "POST", "/api/rules/reload", "", TOKEN, &r) == 0,
                  "no answer to POST /api/rules/reload");
        ldh_http_reply_free(&r);
    } else {
        ldh_check(&env, kill(env.linkd.pid, SIGHUP) == 0, "cannot signal linkd");
    }
    uint64_t end = ldh_mono_ms() + 20000;
    while (log_count(expect) <= before && ldh_mono_ms() < end) ldh_sleep_ms(20);
    ldh_check(&env, log_count(expect) > before, "no '%s' after a %s reload", expect,
              http ? "HTTP" : "SIGHUP");
}

Test(reload_load, reloads_under_load_lose_nothing_and_each_is_recorded, .init = setup,
     .fini = teardown, .timeout = 600)
{
    ldh_load_opts lo = {.linkd = &env.linkd, .producers = 2, .batch = 5, .period_ms = 20,
                        .terminals = {"fire-duty", "medical-duty"}, .nterminals = 2};
    ldh_load *load = ldh_load_start(&lo);
    ldh_check(&env, load, "cannot start the load");
    ldh_sleep_ms(500);
    int reloaded = 0, refused = 0, asked_http = 0;
    for (int k = 0; k < RELOADS; k++) {
        bool broken = k == RELOADS / 2;
        put("routes.yaml", broken ? "routes:\n  - name: [\n" : k % 2 ? routes45 : routes30);
        reload_once(k % 3 == 1, broken ? "RELOAD-FAILED" : "RELOADED");
        asked_http += k % 3 == 1;
        if (broken) refused++;
        else reloaded++;
        ldh_sleep_ms(300);
    }
    ldh_sleep_ms(500);
    ldh_load_pause(load, true);
    bool settled = ldh_load_settle(load, 60000);
    size_t undelivered = ldh_load_await_delivery(load, 60000);
    long lost = ldh_load_check(load, &env.redis);
    ldh_load_stats st;
    ldh_load_get_stats(load, &st);
    ldh_load_stop(load);
    fprintf(stderr, "reload under load: %d reloads (%d refused), %llu events accepted, "
            "%llu RETRY_LATER answers, lost %ld, not delivered %zu\n", RELOADS, refused,
            (unsigned long long)st.accepted, (unsigned long long)st.retry_later, lost,
            undelivered);
    ldh_check(&env, settled, "producers still hold unanswered events after 60 s");
    ldh_check(&env, st.accepted > 0, "nothing was accepted");
    ldh_check(&env, st.rejected == 0, "%llu valid events were rejected",
              (unsigned long long)st.rejected);
    ldh_check(&env, st.no_answer == 0, "%llu requests went unanswered",
              (unsigned long long)st.no_answer);
    ldh_check(&env, lost == 0, "%ld events answered ACCEPTED are not in ld:events", lost);
    ldh_check(&env, undelivered == 0, "%zu (incident, terminal) deliveries never happened",
              undelivered);

    /* Every reload is recorded in Redis, newest first, with its outcome. */
    ldh_check(&env, ldh_redis_int(&env.redis, "LLEN ld:reloads") == RELOADS,
              "ld:reloads holds %lld records, expected %d",
              ldh_redis_int(&env.redis, "LLEN ld:reloads"), RELOADS);
    redisReply *rep = ldh_redis_cmd(&env.redis, "LRANGE ld:reloads 0 -1");
    ldh_check(&env, rep && rep->type == REDIS_REPLY_ARRAY && rep->elements == RELOADS,
              "cannot read ld:reloads");
    int ok = 0, bad = 0, by_http = 0;
    for (size_t i = 0; i < rep->elements; i++) {
        const char *s = rep->element[i]->str;
        ok += strstr(s, "\"outcome\":\"reloaded\"") != NULL;
        bad += strstr(s, "\"outcome\":\"refused\"") != NULL;
        by_http += strstr(s, "\"who\":\"http\"") != NULL;
        if (strstr(s, "refused"))
            ldh_check(&env, strstr(s, "routes.yaml:") != NULL,
                      "a refused reload's record names the error's place: %s", s);
    }
    freeReplyObject(rep);
    ldh_check(&env, ok == reloaded && bad == refused, "records: %d reloaded, %d refused", ok,
              bad);
    ldh_check(&env, by_http == asked_http, "records say who asked: %d by http, expected %d",
              by_http, asked_http);

    ldh_http_reply r;
    ldh_check(&env, ldh_http(env.linkd.http, "GET", "/api/rules/reloads", NULL, TOKEN, &r) == 0 &&
                        r.status == 200, "GET /api/rules/reloads");
    int shown = 0;
    for (const char *p = r.body; (p = strstr(p, "\"outcome\":")) != NULL; p++) shown++;
    ldh_check(&env, shown == RELOADS, "the API shows %d reloads, expected %d", shown, RELOADS);
    ldh_check(&env, strncmp(r.body, "[{", 2) == 0, "a JSON array: %.80s", r.body);
    ldh_http_reply_free(&r);
    ldh_check(&env, ldh_http(env.linkd.http, "GET", "/metrics", NULL, TOKEN, &r) == 0 && r.status == 200,
              "GET /metrics");
    ldh_check(&env, ldh_metric(r.body, "linkd_rules_reloads_total") == RELOADS,
              "linkd_rules_reloads_total");
    ldh_check(&env, ldh_metric(r.body, "linkd_rules_reload_failures_total") == refused,
              "linkd_rules_reload_failures_total");
    ldh_check(&env, ldh_metric(r.body, "linkd_rules_reload_records_unwritten") == 0,
              "every record is in Redis");
    ldh_http_reply_free(&r);
}
