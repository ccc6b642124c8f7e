/* The rule language of escalation ladders: reminders (departments and
 * dispatch entries) and sign_off (routes), as compiled, and every mistake
 * the checker reports, at its file:line:col (tests/data/rules: reminder_errors, sign_off_errors). */
#include <criterion/criterion.h>
#include <string.h>

#include "core/diag.h"
#include "core/err.h"
#include "rules/rules.h"

#define DATA LD_SOURCE_DIR "/tests/data/"

static void expect_diags(const char *name, const char *const *want, size_t n)
{
    char dir[512], line[1024];
    ld_diag d;
    ld_rules *r = NULL;
    snprintf(dir, sizeof dir, DATA "rules/%s", name);
    ld_diag_init(&d);
    cr_expect_eq(ld_rules_load(&r, dir, &d), LD_ERULES, "%s must be refused", name);
    cr_expect_null(r);
    for (size_t i = 0; i < d.n; i++) {
        ld_diag_format(&d, i, line, sizeof line);
        if (d.n != n) fprintf(stderr, "  %s: got: %s\n", name, line);
    }
    cr_expect_eq(d.n, n, "%s: %zu diagnostics, expected %zu", name, d.n, n);
    for (size_t i = 0; i < d.n && i < n; i++) {
        ld_diag_format(&d, i, line, sizeof line);
        cr_expect_str_eq(line + strlen(dir) + 1, want[i], "%s: diagnostic %zu", name, i);
    }
    ld_rules_free(r);
    ld_diag_fini(&d);
}

Test(ladder_rules, reminder_mistakes_each_at_its_position)
{
    static const char *const want[] = {
        "rules.yaml:5:18: error: unknown leg 'acknowlege' in reminders; did you mean "
        "'acknowledge'?",
        "rules.yaml:10:37: error: reminder 50% for 'acknowledge' must come after 80%: list "
        "them from the earliest",
        "rules.yaml:10:52: error: bad reminder '100%' for 'resolve': write a share of the wait "
        "from 1% to 99%, like 50%",
        "rules.yaml:15:17: error: 'reminders' must be a mapping from leg (acknowledge, arrive, "
        "feedback, resolve) to percentages of its wait, like { acknowledge: [50%, 80%] }",
        "rules.yaml:22:82: error: bad reminder '0.5' for 'arrive': write a share of the wait "
        "from 1% to 99%, like 50%",
        "rules.yaml:24:54: error: too many reminders for 'resolve': at most 4",
    };
    expect_diags("reminder_errors", want, sizeof want / sizeof want[0]);
}

Test(ladder_rules, sign_off_mistakes_each_at_its_position)
{
    static const char *const want[] = {
        "rules.yaml:18:37: error: department 'polise' must sign off but this route does not "
        "dispatch it; did you mean 'police'? (dispatched: fire, police)",
        "rules.yaml:18:54: error: bad duration '2 minutes' for 'within': unknown unit (use ms, "
        "s, m, h or d)",
        "rules.yaml:24:31: error: sign_off needs at least two departments: one department's "
        "acknowledgement is its own task's",
        "rules.yaml:29:37: error: department 'fire' is listed twice in sign_off",
        "rules.yaml:29:44: error: unknown key 'deadline' in sign_off (known: departments, "
        "within)",
        "rules.yaml:34:17: error: sign_off is missing 'departments'",
    };
    expect_diags("sign_off_errors", want, sizeof want / sizeof want[0]);
}

static const ld_route *route(const ld_rules *r, const char *name)
{
    for (int i = 0; i < r->nroutes; i++)
        if (strcmp(r->routes[i].name, name) == 0) return &r->routes[i];
    cr_assert_fail("no route %s", name);
    return NULL;
}

Test(ladder_rules, reminders_and_sign_off_compile_as_written)
{
    ld_rules *r = NULL;
    ld_diag d;
    ld_diag_init(&d);
    cr_assert_eq(ld_rules_load(&r, DATA "ladder", &d), 0);
    ld_diag_fini(&d);
    const ld_department *fire = &r->departments[ld_rules_department(r, "fire")];
    cr_assert_eq(fire->reminders.n[LD_LEG_ACK], 2);
    cr_assert_eq(fire->reminders.pct[LD_LEG_ACK][0], 50);
    cr_assert_eq(fire->reminders.pct[LD_LEG_ACK][1], 80);
    cr_assert_eq(fire->reminders.n[LD_LEG_RESOLVE], 0);

    const ld_route *ex = route(r, "explosion");
    cr_assert_eq(ex->sign_off, 0x7, "all three dispatch entries sign");
    cr_assert_eq(ex->sign_off_ms, 2 * 60 * 1000);
    cr_assert_eq(ex->dispatch[2].reminders_given, 1u << LD_LEG_ACK,
                 "emergency_mgmt's entry names acknowledge only");
    cr_assert_eq(ex->dispatch[2].reminders.pct[LD_LEG_ACK][0], 50);
    cr_assert_eq(ex->dispatch[0].reminders_given, 0, "fire's entry takes its department's");
    cr_assert_eq(route(r, "structure-fire")->sign_off, 0);
    ld_rules_free(r);
}
