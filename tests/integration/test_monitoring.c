/* test_monitoring.c: the monitoring kit an ops team loads next to linkd.
 * The alert rules pass `promtool check rules` and their own unit tests
 * (`promtool test rules`: Redis away for 30 s fires, a department with no
 * terminal fires, ...); the Grafana dashboard is valid JSON; and every
 * linkd_* metric the rules and the dashboard use is one a real linkd serves
 * on /metrics, so a renamed metric cannot silently blind an alert. */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "http_client.h"

#define KIT LD_SOURCE_DIR "/ops/monitoring"

static char dir[128];

static void run_ok(char *const argv[], const char *what)
{
    char out[192];
    snprintf(out, sizeof out, "%s/%s.out", dir, argv[0]);
    int code = ldh_run(argv, NULL, out, out, 60000);
    char *said = ldh_read_file(out, NULL);
    cr_expect_eq(code, 0, "%s failed (exit %d):\n%s", what, code, said ? said : "");
    free(said);
}

static void setup(void) { cr_assert_eq(ldh_mkdtemp(dir, sizeof dir, "monitoring"), 0); }
static void teardown(void) { ldh_rmtree(dir); }

Test(monitoring, alert_rules_pass_promtool_check_and_their_unit_tests, .init = setup,
     .fini = teardown, .timeout = 120)
{
    char *check[] = {"promtool", "check", "rules", KIT "/linkd-alerts.yml", NULL};
    run_ok(check, "promtool check rules");
    char *test[] = {"promtool", "test", "rules", KIT "/linkd-alerts.test.yml", NULL};
    run_ok(test, "promtool test rules");
}

Test(monitoring, dashboard_is_valid_json, .init = setup, .fini = teardown, .timeout = 60)
{
    char *jq[] = {"jq", "-e", ".panels | length > 0", KIT "/linkd-dashboard.json", NULL};
    run_ok(jq, "jq on the dashboard");
}

/* names_in collects every "linkd_<name>" in <text>, minus the _bucket, _sum
 * and _count of histograms, into <out> (space-separated, each once). */
static void names_in(const char *text, char *out, size_t len)
{
    out[0] = '\0';
    for (const char *p = text; (p = strstr(p, "linkd_")) != NULL;) {
        if (p > text && (isalnum((unsigned char)p[-1]) || p[-1] == '_')) {
            p += 6;
            continue;
        }
        char name[96] = " ";
        size_t n = 1;
        while (n < sizeof name - 2 && (isalnum((unsigned char)*p) || *p == '_')) name[n++] = *p++;
        name[n] = '\0';
        static const char *const suffix[] = {"_bucket", "_sum", "_count"};
        for (int i = 0; i < 3; i++) {
            size_t sl = strlen(suffix[i]);
            if (n > sl && strcmp(name + n - sl, suffix[i]) == 0) name[n - sl] = '\0';
        }
        strcat(name, " ");
        if (!strstr(out, name) && strlen(out) + strlen(name) < len) strcat(out, name + 1), strcat(out, " ");
    }
}

Test(monitoring, every_metric_the_kit_uses_is_served_by_linkd, .init = setup, .fini = teardown,
     .timeout = 120)
{
    ldh_env env;
    ldh_linkd_opts o = {.http = true};
    ldh_env_start_or_fail(&env, &o);
    ldh_http_reply r;
    ldh_check(&env, ldh_http(env.linkd.http, "GET", "/metrics", NULL, NULL, &r) == 0 && r.status == 200,
              "no /metrics");
    char *metrics = r.body;
    r.body = NULL;
    ldh_http_reply_free(&r);
    ldh_env_stop(&env);

    static const char *const files[] = {KIT "/linkd-alerts.yml", KIT "/linkd-dashboard.json"};
    for (int f = 0; f < 2; f++) {
        char *text = ldh_read_file(files[f], NULL);
        cr_assert_not_null(text, "cannot read %s", files[f]);
        static char used[8192];
        names_in(text, used, sizeof used);
        cr_expect_gt(strlen(used), 0, "%s uses no linkd metric", files[f]);
        char *save = NULL;
        int n = 0;
        for (char *m = strtok_r(used, " ", &save); m; m = strtok_r(NULL, " ", &save), n++) {
            char typeline[160];
            snprintf(typeline, sizeof typeline, "# TYPE %s ", m);
            cr_expect(strstr(metrics, typeline) != NULL, "%s uses %s, which /metrics does not have",
                      files[f], m);
        }
        cr_expect_gt(n, 5);
        free(text);
    }
    free(metrics);
}
