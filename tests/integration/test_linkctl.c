/* test_linkctl.c: the operators' tool against a real linkd, as an operator
 * runs it: its exit codes and what it prints are the interface. */
#include <stdlib.h>
#include <string.h>

#include "harness.h"

#define LINKCTL LD_BINARY_DIR "/linkctl"
#define RUN_MS 30000

static ldh_env env;
static char tmp[128], out[192], err[192];

static void setup(void)
{
    ldh_env_start_or_fail(&env, NULL);
    cr_assert_eq(ldh_mkdtemp(tmp, sizeof tmp, "linkctl"), 0);
    snprintf(out, sizeof out, "%s/out.txt", tmp);
    snprintf(err, sizeof err, "%s/err.txt", tmp);
}

static void teardown(void)
{
    int code = ldh_env_stop(&env);
    ldh_rmtree(tmp);
    cr_expect_eq(code, 0, "linkd must exit 0 on SIGTERM, exited %d", code);
}

/* run starts linkctl with <argv> (after the program name), output to out/err
 * (truncated first), and returns its exit code. */
static int run(char **args)
{
    char *argv[32] = {LINKCTL};
    int n = 1;
    for (; args[n - 1] && n < 31; n++) argv[n] = args[n - 1];
    argv[n] = NULL;
    ldh_write_file(out, "", 0);
    ldh_write_file(err, "", 0);
    return ldh_run(argv, NULL, out, err, RUN_MS);
}

static int printed(const char *path, const char *needle)
{
    char *s = ldh_read_file(path, NULL);
    int found = s && strstr(s, needle) != NULL;
    if (!found) ldh_tail("linkctl said", path, 20);
    free(s);
    return found;
}

Test(linkctl, send_prints_the_incident_and_a_resend_is_a_duplicate, .init = setup,
     .fini = teardown, .timeout = 120)
{
    char eid[64];
    ldh_unique_id(eid, sizeof eid, "op");
    char *args[] = {"send", "--ingest", env.linkd.ingest, "--kind", "call", "--category", "fire",
                    "--priority", "critical", "--district", "440106", "--grid", "TH-0412",
                    "--description", "kitchen fire, smoke in the stairwell", "--people", "4",
                    "--event-id", eid, "--source", "cc-test", NULL};
    ldh_check(&env, run(args) == 0, "linkctl send of a valid call did not exit 0");
    ldh_check(&env, printed(out, "ACCEPTED"), "no ACCEPTED line");
    ldh_check(&env, printed(out, eid), "the event id is not shown");
    ldh_check(&env, ldh_redis_int(&env.redis, "XLEN ld:events") == 1, "not in ld:events");

    ldh_check(&env, run(args) == 0, "a duplicate is not a failure for the operator");
    ldh_check(&env, printed(out, "DUPLICATE"), "the resend was not reported DUPLICATE");
    ldh_check(&env, ldh_redis_int(&env.redis, "XLEN ld:events") == 1, "the resend was appended");
}

Test(linkctl, a_rejected_event_exits_65_and_names_the_field, .init = setup, .fini = teardown,
     .timeout = 120)
{
    char *args[] = {"send", "--ingest", env.linkd.ingest, "--kind", "call", "--district",
                    "440106", NULL};
    ldh_check(&env, run(args) == 65, "a call without a category must exit 65 (EX_DATAERR)");
    ldh_check(&env, printed(out, "REJECTED") || printed(err, "REJECTED"), "no REJECTED line");
    ldh_check(&env, printed(out, "call.category") || printed(err, "call.category"),
              "the reason does not name call.category");
}

Test(linkctl, an_unreachable_linkd_exits_69, .init = setup, .fini = teardown, .timeout = 120)
{
    int port;
    cr_assert_eq(ldh_free_ports(&port, 1), 0);
    char url[48];
    snprintf(url, sizeof url, "tcp://127.0.0.1:%d", port);
    char *args[] = {"send", "--ingest", url, "--kind", "call", "--category", "crime",
                    "--timeout", "500", NULL};
    ldh_check(&env, run(args) == 69, "nobody listening must exit 69 (EX_UNAVAILABLE)");
}

Test(linkctl, terminal_acknowledges_and_resolves_what_it_receives, .init = setup,
     .fini = teardown, .timeout = 120)
{
    char *send[] = {"send", "--ingest", env.linkd.ingest, "--kind", "call", "--category",
                    "noise", "--district", "440106", "--description", "karaoke at 2 a.m.", NULL};
    ldh_check(&env, run(send) == 0, "send failed");
    char *id = ldh_read_file(out, NULL);
    char *p = id ? strstr(id, "incident I") : NULL;
    ldh_check(&env, p, "no incident id printed");
    char inc[64];
    ldh_check(&env, sscanf(p, "incident %63s", inc) == 1, "cannot read the incident id");
    free(id);

    /* Which terminal gets a noise call is the rules' business: ask them. */
    ld_rules *rules = ldh_rules_load(LDH_DEFAULT_RULES);
    ldh_check(&env, rules, "default rules");
    ldh_dispatch plan[LD_MAX_DISPATCH * 4];
    ld_match_input in = {.kind = LD_KIND_CALL,
                         .category = LINKD__V1__CALL_CATEGORY__CALL_CATEGORY_NOISE};
    size_t n = ldh_rules_plan(rules, &in, plan, sizeof plan / sizeof plan[0]);
    ldh_check(&env, n >= 1, "no route for noise");
    /* Whoever is on duty now: the grid centre works by shift (rules/rosters.yaml). */
    char term[64];
    int on_duty = ld_rules_on_duty(rules, (int)(plan[0].dept - rules->departments), ldh_wall_ms());
    snprintf(term, sizeof term, "%s", on_duty >= 0 ? rules->terminals[on_duty].id
                                                   : ldh_rules_terminal_id(rules, plan[0].dept, 0));
    ld_rules_free(rules);

    char *args[] = {"terminal", "--terminals", env.linkd.terminals, "--id", term,
                    "--auto-ack", "0", "--auto-resolve", "200ms", "--wait", "500",
                    "--duration", "8", NULL};
    ldh_check(&env, run(args) == 0, "linkctl terminal did not exit 0 after --duration");
    ldh_check(&env, printed(out, inc), "the terminal did not print the task of %s", inc);

    /* The incident's record in Redis says the task was acknowledged and resolved. */
    int resolved = 0;
    for (int i = 0; i < 100 && !resolved; i++) {
        redisReply *r = ldh_redis_cmd(&env.redis, "GET ld:inc:%s", inc);
        if (r && r->type == REDIS_REPLY_STRING) {
            Linkd__V1__IncidentRecord *rec =
                linkd__v1__incident_record__unpack(NULL, r->len, (const uint8_t *)r->str);
            for (size_t k = 0; rec && k < rec->n_tasks; k++)
                if (rec->tasks[k]->task && rec->tasks[k]->task->terminal &&
                    strcmp(rec->tasks[k]->task->terminal, term) == 0)
                    resolved = rec->tasks[k]->has_acknowledged_at_ms &&
                               rec->tasks[k]->has_resolved_at_ms;
            if (rec) linkd__v1__incident_record__free_unpacked(rec, NULL);
        }
        if (r) freeReplyObject(r);
        if (!resolved) ldh_sleep_ms(100);
    }
    ldh_check(&env, resolved, "the record of %s does not show %s's task acknowledged and "
              "resolved", inc, term);
}

Test(linkctl, check_reports_file_line_col_and_exits_65, .init = setup, .fini = teardown,
     .timeout = 120)
{
    char *bad[] = {"check", "--rules", LD_SOURCE_DIR "/tests/data/rules/unknown_dept", NULL};
    ldh_check(&env, run(bad) == 65, "broken rules must exit 65");
    ldh_check(&env, printed(err, "routes.yaml:5:23: error: department 'fier' is not defined") ||
                        printed(out, "routes.yaml:5:23: error: department 'fier' is not defined"),
              "no file:line:col diagnostic");
    char *good[] = {"check", "--rules", LDH_DEFAULT_RULES, NULL};
    ldh_check(&env, run(good) == 0, "the default rules must check OK");
}
