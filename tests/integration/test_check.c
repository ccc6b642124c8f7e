/* test_check.c: `linkd --check` as an operator runs it before a deploy: every
 * error printed as file:line:col, exit 65 for a broken rule set, 0 for a good
 * one; and the daemon runs the rule set it is given. */
#include <dirent.h>
#include <regex.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "harness.h"

#define EX_DATAERR 65

static char tmp[96];

static void setup(void)
{
    cr_assert_eq(ldh_mkdtemp(tmp, sizeof tmp, "check"), 0);
}

static void teardown(void)
{
    ldh_rmtree(tmp);
}

/* Runs `linkd --check --rules <dir>`; returns the exit code and the output
 * (stdout and stderr together) in *out (malloc'd). */
static int run_check(const char *dir, char **out)
{
    char path[160], rules[PATH_MAX];
    snprintf(path, sizeof path, "%s/check.out", tmp);
    snprintf(rules, sizeof rules, "%s", dir);
    remove(path);
    char *argv[] = {LDH_LINKD_BIN, "--check", "--rules", rules, NULL};
    int code = ldh_run(argv, NULL, path, path, 60000);
    *out = ldh_read_file(path, NULL);
    if (!*out) *out = strdup("");
    return code;
}

/* How many lines of <s> look like "<something>.yaml:<line>:<col>: error: ...". */
static int count_errors(const char *s, const char *file, int *first_line, int *first_col)
{
    regex_t re;
    regmatch_t m[4];
    cr_assert_eq(regcomp(&re, "([^ :\n]+\\.yaml):([0-9]+):([0-9]+): error: [^\n]+", REG_EXTENDED),
                 0);
    int n = 0;
    for (const char *p = s; regexec(&re, p, 4, m, 0) == 0; p += m[0].rm_eo) {
        size_t flen = (size_t)(m[1].rm_eo - m[1].rm_so);
        const char *fname = p + m[1].rm_so;
        /* The file as a path ending in /<file>, or just <file>. */
        bool same = !file || (flen >= strlen(file) &&
                              strncmp(fname + flen - strlen(file), file, strlen(file)) == 0);
        if (!same) continue;
        if (n == 0 && first_line) *first_line = atoi(p + m[2].rm_so);
        if (n == 0 && first_col) *first_col = atoi(p + m[3].rm_so);
        n++;
    }
    regfree(&re);
    return n;
}

static void copy_file(const char *from, const char *to)
{
    size_t len;
    char *s = ldh_read_file(from, &len);
    cr_assert_not_null(s, "cannot read %s", from);
    cr_assert_eq(ldh_write_file(to, s, len), 0);
    free(s);
}

static void append(const char *path, const char *text)
{
    FILE *f = fopen(path, "a");
    cr_assert_not_null(f);
    fputs(text, f);
    fclose(f);
}

static int count_lines(const char *path)
{
    char *s = ldh_read_file(path, NULL);
    cr_assert_not_null(s);
    int n = 0;
    for (char *p = s; *p; p++) n += *p == '\n';
    free(s);
    return n;
}

/* A copy of the default rules in <tmp>/<name>, to break. */
static void copy_default_rules(const char *name, char *dir, size_t len)
{
    snprintf(dir, len, "%s/%s", tmp, name);
    cr_assert_eq(mkdir(dir, 0755), 0);
    DIR *d = opendir(LDH_DEFAULT_RULES);
    cr_assert_not_null(d);
    struct dirent *de;
    while ((de = readdir(d))) {
        size_t n = strlen(de->d_name);
        if (n < 6 || strcmp(de->d_name + n - 5, ".yaml") != 0) continue;
        char from[PATH_MAX], to[PATH_MAX];
        snprintf(from, sizeof from, "%s/%s", LDH_DEFAULT_RULES, de->d_name);
        snprintf(to, sizeof to, "%s/%s", dir, de->d_name);
        copy_file(from, to);
    }
    closedir(d);
}

Test(check, default_rules_are_valid, .init = setup, .fini = teardown, .timeout = 120)
{
    char *out;
    int code = run_check(LDH_DEFAULT_RULES, &out);
    cr_expect_eq(code, 0, "linkd --check on the default rules exited %d:\n%s", code, out);
    cr_expect_eq(count_errors(out, NULL, NULL, NULL), 0, "errors reported:\n%s", out);
    /* The summary counts what the files hold: the default rules ship three
     * correlation rules (correlate.yaml). */
    cr_expect(strstr(out, "13 departments, 41 terminals,") &&
                  strstr(out, " routes, 3 correlation rules (version "),
              "the summary does not count what the rules hold:\n%s", out);
    free(out);
}

Test(check, unknown_department_is_reported_at_its_position, .init = setup, .fini = teardown,
     .timeout = 120)
{
    char *out;
    int line = 0, col = 0;
    int code = run_check(LD_SOURCE_DIR "/tests/data/rules-it/unknown-department", &out);
    cr_expect_eq(code, EX_DATAERR, "exit %d, expected 65:\n%s", code, out);
    cr_expect_eq(count_errors(out, "routes.yaml", &line, &col), 1, "output:\n%s", out);
    cr_expect_eq(line, 8, "reported at line %d, the bad department is on line 8:\n%s", line, out);
    cr_expect_eq(col, 23, "reported at column %d, the bad department is at column 23:\n%s", col,
                 out);
    cr_expect(strstr(out, "fier"), "the message should name 'fier':\n%s", out);
    free(out);
}

/* Breaking both files of a valid set: both errors are reported in one run,
 * each in its own file, at or after the line that was broken. */
Test(check, every_error_of_a_run_is_reported, .init = setup, .fini = teardown, .timeout = 120)
{
    char dir[PATH_MAX], deps[PATH_MAX + 32], routes[PATH_MAX + 32];
    copy_default_rules("broken", dir, sizeof dir);
    snprintf(deps, sizeof deps, "%s/departments.yaml", dir);
    snprintf(routes, sizeof routes, "%s/routes.yaml", dir);
    int deps_line = count_lines(deps) + 1, routes_line = count_lines(routes) + 1;
    /* Unclosed flow collections: a YAML syntax error whatever the schema. */
    append(deps, "broken: [1, 2\n");
    append(routes, "broken: { a: 1\n");

    char *out;
    int code = run_check(dir, &out);
    cr_expect_eq(code, EX_DATAERR, "exit %d, expected 65:\n%s", code, out);
    int line = 0, col = 0;
    cr_expect_geq(count_errors(out, "departments.yaml", &line, &col), 1,
                  "no departments.yaml error:\n%s", out);
    cr_expect_geq(line, deps_line, "departments.yaml error at line %d, broken at %d:\n%s", line,
                  deps_line, out);
    cr_expect_geq(col, 1);
    cr_expect_geq(count_errors(out, "routes.yaml", &line, &col), 1, "no routes.yaml error:\n%s",
                  out);
    cr_expect_geq(line, routes_line, "routes.yaml error at line %d, broken at %d:\n%s", line,
                  routes_line, out);
    free(out);
}

/* Every fixture under tests/data/rules/<case>/ (the rules unit tests own
 * them; some are broken on purpose): `linkd --check` agrees with the loader.
 * A set the loader refuses exits 65 and prints each of its positioned errors
 * as file:line:col; a set it loads exits 0. */
Test(check, check_agrees_with_the_loader_on_every_fixture, .init = setup, .fini = teardown,
     .timeout = 300)
{
    const char *base = LD_SOURCE_DIR "/tests/data/rules";
    DIR *d = opendir(base);
    if (!d) cr_skip_test("no fixtures under %s", base);
    struct dirent *de;
    int broken = 0, valid = 0;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.') continue;
        char dir[PATH_MAX];
        struct stat st;
        snprintf(dir, sizeof dir, "%s/%s", base, de->d_name);
        if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) continue;

        ld_rules *r = NULL;
        ld_diag diag;
        ld_diag_init(&diag);
        int rv = ld_rules_load(&r, dir, &diag);
        char *out;
        int code = run_check(dir, &out);
        if (rv == 0) {
            valid++;
            cr_expect_eq(code, 0, "%s loads, but --check exited %d:\n%s", de->d_name, code, out);
            ld_rules_free(r);
        } else {
            broken++;
            cr_expect_eq(code, EX_DATAERR, "%s: exit %d, expected 65:\n%s", de->d_name, code,
                         out);
            for (size_t i = 0; i < diag.n; i++) {
                const ld_diag_entry *en = &diag.v[i];
                if (en->severity != LD_DIAG_ERROR || en->line <= 0) continue;
                const char *slash = strrchr(en->file, '/');
                char want[400];
                snprintf(want, sizeof want, "%s:%d:%d: error: ", slash ? slash + 1 : en->file,
                         en->line, en->col);
                cr_expect(strstr(out, want), "%s: --check does not print '%s':\n%s",
                          de->d_name, want, out);
            }
            cr_expect(diag.nerrors > 0, "%s: refused without an error", de->d_name);
        }
        ld_diag_fini(&diag);
        free(out);
    }
    closedir(d);
    cr_log_info("checked %d broken and %d valid fixtures", broken, valid);
}

Test(check, missing_rules_directory_is_an_error, .init = setup, .fini = teardown, .timeout = 60)
{
    char dir[PATH_MAX], *out;
    snprintf(dir, sizeof dir, "%s/no-such-dir", tmp);
    int code = run_check(dir, &out);
    cr_expect_neq(code, 0, "--check on a missing directory exited 0:\n%s", out);
    cr_expect(strstr(out, "no-such-dir"), "the message should name the directory:\n%s", out);
    free(out);
}

/* The daemon runs the rules it is given: with the small test set a fire call
 * goes to fire and medical only, unlike the default set. */
static ldh_env env;
static ld_rules *small;

static void stop_env(void)
{
    if (small) ld_rules_free(small);
    small = NULL;
    int code = ldh_env_stop(&env);
    cr_expect_eq(code, 0, "linkd must exit 0 on SIGTERM, exited %d", code);
}

Test(check, linkd_runs_the_rules_it_is_given, .fini = stop_env, .timeout = 120)
{
    const char *dir = LD_SOURCE_DIR "/tests/data/rules-it/small";
    ld_rules *r = small = ldh_rules_load(dir);
    cr_assert_not_null(r);
    ld_match_input in = {.kind = LD_KIND_CALL,
                         .category = LINKD__V1__CALL_CATEGORY__CALL_CATEGORY_FIRE};
    ldh_dispatch plan[8];
    size_t n = ldh_rules_plan(r, &in, plan, 8);
    cr_assert_eq(n, 2);

    ldh_linkd_opts o = {.rules = dir};
    int rv = ldh_env_start(&env, &o);
    ldh_check(&env, rv == 0, "linkd did not start with %s", dir);
    ldh_event ev;
    char inc[64];
    ldh_accept_call(&env, &ev, LINKD__V1__CALL_CATEGORY__CALL_CATEGORY_FIRE, inc);
    for (size_t i = 0; i < n; i++) {
        const char *duty = ldh_rules_terminal_id(r, plan[i].dept, 0);
        ldh_task_match tm = {.incident_id = inc, .department = plan[i].dept->id};
        Linkd__V1__Task *t = ldh_term_await(&env.linkd, duty, &tm, true, 20000);
        ldh_check(&env, t, "%s never got its task", duty);
        linkd__v1__task__free_unpacked(t, NULL);
    }
    /* police-duty is not a terminal of this rule set. */
    ldh_poll p = {.terminal = "police-duty"};
    Linkd__V1__PollReply *rep = NULL;
    ldh_check(&env, ldh_term_poll(&env.linkd, &p, &rep) == 0, "no reply");
    ldh_check(&env, rep->error, "police-duty was served although the rules do not define it");
    linkd__v1__poll_reply__free_unpacked(rep, NULL);
}
