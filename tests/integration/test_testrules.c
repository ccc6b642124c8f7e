/* test_testrules.c: `linkctl test-rules`, the rule tests ops run before a
 * deploy. The default rules pass their own tests (rules/tests/default.yaml);
 * a file of wrong expectations fails with each mismatch at its file:line:col;
 * a file with mistakes of its own exits 65 and says where. The real linkctl
 * binary runs the real engine in-process: no Redis. */
#include <stdlib.h>
#include <string.h>

#include "harness.h"

#define LINKCTL LD_BINARY_DIR "/linkctl"
#define DATA LD_SOURCE_DIR "/tests/data/rule-tests/"
#define RUN_MS 60000

static char dir[128], out[192], err[192];

static void setup(void)
{
    cr_assert_eq(ldh_mkdtemp(dir, sizeof dir, "testrules"), 0);
    snprintf(out, sizeof out, "%s/out", dir);
    snprintf(err, sizeof err, "%s/err", dir);
}

static void teardown(void) { ldh_rmtree(dir); }

static int run(const char *file)
{
    char *argv[] = {LINKCTL, "test-rules", (char *)file, NULL};
    return ldh_run(argv, NULL, out, err, RUN_MS);
}

/* The output lines, with the path of the test file cut from the front. */
static char *output(void)
{
    char *s = ldh_read_file(out, NULL);
    cr_assert_not_null(s);
    return s;
}

TestSuite(testrules, .init = setup, .fini = teardown, .timeout = 120);

Test(testrules, default_rules_pass_their_tests)
{
    int code = run(LD_SOURCE_DIR "/rules/tests/default.yaml");
    char *s = output();
    cr_expect_eq(code, 0, "exit %d:\n%s", code, s);
    cr_expect(strstr(s, "0 failed checks in 0 tests") != NULL, "%s", s);
    free(s);
}

Test(testrules, every_mismatch_is_reported_at_its_position)
{
    static const char *const want[] = {
        "mismatch.yaml:8:16: test 'wrong plan for a fire': expected routes [fire], got "
        "[structure-fire]\n",
        "mismatch.yaml:9:17: test 'wrong plan for a fire': expected priority urgent, got "
        "critical\n",
        "mismatch.yaml:10:21: test 'wrong plan for a fire': expected departments [fire, "
        "police], got [fire, medical, police]\n",
        "mismatch.yaml:12:41: test 'wrong plan for a fire': police: expected arrive within "
        "10m, got 5m\n",
        "mismatch.yaml:22:54: test 'wrong escalation': fire: expected level 2, got 1\n",
        "mismatch.yaml:22:67: test 'wrong escalation': fire: expected terminal fire-head, got "
        "fire-deputy\n",
        "mismatch.yaml: 3 tests, 7 checks, 6 failed checks in 2 tests\n",
    };
    int code = run(DATA "mismatch.yaml");
    char *s = output(), *p = s;
    cr_expect_eq(code, 1, "a failed test exits 1, got %d", code);
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        cr_assert(strncmp(p, DATA, strlen(DATA)) == 0, "line %zu: %s", i, p);
        p += strlen(DATA);
        cr_assert(strncmp(p, want[i], strlen(want[i])) == 0, "line %zu:\n got: %.200s\nwant: %s",
                  i, p, want[i]);
        p += strlen(want[i]);
    }
    cr_expect_str_eq(p, "", "nothing else is printed");
    free(s);
}

Test(testrules, a_broken_test_file_exits_65_and_says_where)
{
    int code = run(DATA "invalid.yaml");
    char *s = output();
    cr_expect_eq(code, 65, "exit %d", code);
    cr_expect(strstr(s, "invalid.yaml:5:43: test 'unknown key and category': unknown key "
                        "'distrct' in event") != NULL, "%s", s);
    cr_expect(strstr(s, "invalid.yaml:5:36: test 'unknown key and category': unknown call "
                        "category 'fires'") != NULL, "%s", s);
    cr_expect(strstr(s, "invalid.yaml:9:16: test 'bad step': 'after' must be a duration") !=
              NULL, "%s", s);
    free(s);
}
