/* test_reload_cmd.c: reloading the rules on a control command (POST
 * /api/rules/reload with the admin token) as well as SIGHUP. A good set is
 * swapped in and new tasks use it; a broken set is refused with its first
 * error at file:line:col and the old set keeps running; each attempt is
 * logged with who asked and its outcome, and counted in /metrics. */
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "http_client.h"

#define WAIT_MS 20000
#define TOKEN "reload-token-0123456789abcdef"

static ldh_env env;
static char dir[128], token_path[192];

static void put(const char *name, const char *text)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    cr_assert_eq(ldh_write_file(path, text, strlen(text)), 0);
}

static char *rules_with_ack(const char *ack)
{
    static char text[1024];
    snprintf(text, sizeof text,
             "departments:\n"
             "  police:\n    terminals: [police-duty]\n    escalation:\n"
             "      - { level: duty_officer, terminal: police-duty, wait: 1h }\n"
             "  command:\n    terminals: [command-supervisor]\n    escalation:\n"
             "      - { level: supervisor, terminal: command-supervisor, wait: 1h }\n"
             "routes:\n"
             "  - name: crime\n    match: { kind: call, category: crime }\n    dispatch:\n"
             "      - { department: police, acknowledge: %s, resolve: 3h }\n"
             "  - name: others\n    dispatch:\n"
             "      - { department: command, acknowledge: 1h, resolve: 3h }\n",
             ack);
    return text;
}

static void setup(void)
{
    cr_assert_eq(ldh_mkdtemp(dir, sizeof dir, "reloadcmd"), 0);
    put("rules.yaml", rules_with_ack("30s"));
    snprintf(token_path, sizeof token_path, "%s/admin.token", dir);
    cr_assert_eq(ldh_write_file(token_path, TOKEN "\n", strlen(TOKEN) + 1), 0);
    /* The token file sits in the rules directory: not a *.yaml, so not read as rules. */
    ldh_linkd_opts o = {.rules = dir,
                        .http = true, .extra = {"--admin-token-file", token_path, NULL}};
    ldh_env_start_or_fail(&env, &o);
}

static void teardown(void)
{
    int code = ldh_env_stop(&env);
    ldh_rmtree(dir);
    cr_expect_eq(code, 0, "linkd must exit 0 on SIGTERM, exited %d", code);
}

static int64_t police_ack_budget(void)
{
    ldh_event ev;
    char inc[64];
    ldh_accept_call(&env, &ev, LINKD__V1__CALL_CATEGORY__CALL_CATEGORY_CRIME, inc);
    Linkd__V1__Task *t = ldh_term_await(&env.linkd, "police-duty",
                                        &(ldh_task_match){.incident_id = inc}, true, WAIT_MS);
    ldh_check(&env, t, "police-duty never got %s", inc);
    int64_t b = t->acknowledge_by_ms - t->dispatched_at_ms;
    linkd__v1__task__free_unpacked(t, NULL);
    return b;
}

static ldh_http_reply reload(const char *token)
{
    ldh_http_reply r;
    ldh_check(&env, ldh_http(env.linkd.http, "POST", "/api/rules/reload", "", token, &r) == 0,
              "no HTTP answer");
    return r;
}

TestSuite(reload_cmd, .init = setup, .fini = teardown, .timeout = 180);

Test(reload_cmd, a_control_command_reloads_and_a_broken_set_is_refused)
{
    ldh_check(&env, police_ack_budget() == 30000, "the starting rules give 30 s");

    ldh_http_reply r = reload(NULL);
    ldh_check(&env, r.status == 401, "without the token: 401, got %d", r.status);
    ldh_http_reply_free(&r);

    put("rules.yaml", rules_with_ack("45s"));
    r = reload(TOKEN);
    ldh_check(&env, r.status == 200 && strstr(r.body, "\"reloaded\":true"),
              "a good set: 200 reloaded, got %d %s", r.status, r.body);
    ldh_http_reply_free(&r);
    ldh_check(&env, ldh_linkd_log_wait(&env.linkd, "(http) rules ", WAIT_MS),
              "the reload is logged with who asked");
    ldh_check(&env, police_ack_budget() == 45000, "new tasks use the reloaded 45 s");

    put("rules.yaml", rules_with_ack("45x"));
    r = reload(TOKEN);
    ldh_check(&env, r.status == 409 && strstr(r.body, "\"reloaded\":false") &&
                        strstr(r.body, "rules.yaml:14:44: error: bad duration '45x'"),
              "a broken set: 409 with its first error at file:line:col, got %d %s", r.status,
              r.body);
    ldh_http_reply_free(&r);
    ldh_check(&env, ldh_linkd_log_wait(&env.linkd, "(http) 1 error in", WAIT_MS),
              "the refusal is logged");
    ldh_check(&env, police_ack_budget() == 45000, "the running set stays");

    ldh_check(&env, ldh_http(env.linkd.http, "GET", "/metrics", NULL, NULL, &r) == 0 && r.status == 200,
              "metrics");
    ldh_check(&env, ldh_metric(r.body, "linkd_rules_reloads_total") == 2 &&
                        ldh_metric(r.body, "linkd_rules_reload_failures_total") == 1 &&
                        ldh_metric(r.body, "linkd_rules_last_reload_successful") == 0,
              "reloads counted: %s", r.body);
    ldh_http_reply_free(&r);
}
