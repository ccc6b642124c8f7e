/* test_reload.c: an ops team changes a budget and sends SIGHUP. New tasks use
 * the new figure; a broken file or a change of departments leaves the running
 * rules in place, and the log says why. The rule set is a copy of
 * tests/data/engine (structure fire: fire must acknowledge within 30 s). */
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

#define WAIT_MS 20000
#define SRC LD_SOURCE_DIR "/tests/data/engine"

static ldh_env env;
static char dir[128];

static void put(const char *name, const char *text)
{
    char path[192];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    cr_assert_eq(ldh_write_file(path, text, strlen(text)), 0);
}

static char *original(const char *name)
{
    char path[192];
    snprintf(path, sizeof path, "%s/%s", SRC, name);
    char *s = ldh_read_file(path, NULL);
    cr_assert_not_null(s, "cannot read %s", path);
    return s;
}

/* replaced returns <s> with the first <from> replaced by <to> (malloc'd). */
static char *replaced(const char *s, const char *from, const char *to)
{
    const char *at = strstr(s, from);
    cr_assert_not_null(at, "'%s' not in the rule file", from);
    size_t n = strlen(s) - strlen(from) + strlen(to) + 1;
    char *out = malloc(n);
    snprintf(out, n, "%.*s%s%s", (int)(at - s), s, to, at + strlen(from));
    return out;
}

static void setup(void)
{
    cr_assert_eq(ldh_mkdtemp(dir, sizeof dir, "reload"), 0);
    char *d = original("departments.yaml"), *r = original("routes.yaml");
    put("departments.yaml", d);
    put("routes.yaml", r);
    free(d);
    free(r);
    ldh_linkd_opts o = {.rules = dir};
    ldh_env_start_or_fail(&env, &o);
}

static void teardown(void)
{
    int code = ldh_env_stop(&env);
    ldh_rmtree(dir);
    cr_expect_eq(code, 0, "linkd must exit 0 on SIGTERM, exited %d", code);
}

/* The fire task's acknowledge budget, in ms, for a new fire call. */
static int64_t fire_ack_budget(void)
{
    ldh_event ev;
    char inc[64];
    ldh_accept_call(&env, &ev, LINKD__V1__CALL_CATEGORY__CALL_CATEGORY_FIRE, inc);
    ldh_task_match m = {.incident_id = inc, .department = "fire"};
    Linkd__V1__Task *t = ldh_term_await(&env.linkd, "fire-duty", &m, true, WAIT_MS);
    ldh_check(&env, t, "fire-duty never got the task of %s", inc);
    int64_t budget = t->acknowledge_by_ms - t->dispatched_at_ms;
    linkd__v1__task__free_unpacked(t, NULL);
    return budget;
}

static int log_count(const char *needle)
{
    char *log = ldh_linkd_log(&env.linkd);
    int n = 0;
    for (const char *p = log; p && (p = strstr(p, needle)) != NULL; p += strlen(needle)) n++;
    free(log);
    return n;
}

static void hup_and_wait(const char *needle, int before)
{
    ldh_check(&env, kill(env.linkd.pid, SIGHUP) == 0, "cannot signal linkd");
    uint64_t end = ldh_mono_ms() + WAIT_MS;
    while (log_count(needle) <= before && ldh_mono_ms() < end) ldh_sleep_ms(50);
    ldh_check(&env, log_count(needle) > before, "no '%s' in the log after SIGHUP", needle);
}

Test(reload, a_changed_budget_applies_to_new_tasks_and_bad_rules_change_nothing,
     .init = setup, .fini = teardown, .timeout = 180)
{
    ldh_check(&env, fire_ack_budget() == 30000, "the starting rules give 30 s");

    char *r = original("routes.yaml");
    char *r45 = replaced(r, "acknowledge: 30s", "acknowledge: 45s");
    put("routes.yaml", r45);
    hup_and_wait("RELOADED", 0);
    ldh_check(&env, fire_ack_budget() == 45000, "after the reload a new fire task gets 45 s");

    /* A broken file: every error is logged with its position; nothing changes. */
    char *bad = replaced(r45, "department: medical", "department: medic");
    put("routes.yaml", bad);
    hup_and_wait("RELOAD-FAILED", 0);
    ldh_check(&env, ldh_linkd_log_has(&env.linkd, "routes.yaml:"), "no file:line:col logged");
    ldh_check(&env, ldh_linkd_log_has(&env.linkd, "'medic' is not defined"),
              "the error does not name the unknown department");
    ldh_check(&env, fire_ack_budget() == 45000, "a failed reload must keep the running rules");

    /* A new department needs a restart: refused, running rules kept. */
    put("routes.yaml", r45);
    char *d = original("departments.yaml");
    char *more = replaced(d, "departments:\n", "departments:\n  grid:\n    terminals: [grid-duty]\n"
                          "    escalation:\n      - { level: duty_officer, terminal: grid-duty, "
                          "wait: 1m }\n");
    put("departments.yaml", more);
    hup_and_wait("RELOAD-FAILED", 1);
    ldh_check(&env, ldh_linkd_log_has(&env.linkd, "restart linkd to change departments"),
              "the refusal does not say a restart is needed");
    ldh_check(&env, fire_ack_budget() == 45000, "a refused reload must keep the running rules");
    free(r);
    free(r45);
    free(bad);
    free(d);
    free(more);
}
