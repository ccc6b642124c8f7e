/* The rules' life_safety setting: which priorities are spooled and dispatched
 * while Redis is away. Loaded by the real loader from the default rules and
 * from a fixture with mistakes, which must be reported with file:line:col. */
#include <criterion/criterion.h>
#include <string.h>

#include "core/diag.h"
#include "core/err.h"
#include "rules/rules.h"
#include "wire/wire.h"

Test(rules_life_safety, the_default_rules_call_critical_life_safety)
{
    ld_rules *r = NULL;
    ld_diag d;
    ld_diag_init(&d);
    int rv = ld_rules_load(&r, LD_SOURCE_DIR "/rules", &d);
    if (rv != 0) ld_diag_print(&d, stderr);
    cr_assert_eq(rv, 0);
    cr_expect_eq(r->life_safety, 1u << LINKD__V1__PRIORITY__PRIORITY_CRITICAL,
                 "life_safety bits %#x", r->life_safety);
    ld_rules_free(r);
    ld_diag_fini(&d);
}

Test(rules_life_safety, mistakes_are_reported_where_they_are)
{
    ld_rules *r = NULL;
    ld_diag d;
    ld_diag_init(&d);
    int rv = ld_rules_load(&r, LD_SOURCE_DIR "/tests/data/rules/life_safety_bad", &d);
    cr_assert_eq(rv, LD_ERULES);
    cr_assert_null(r);
    char line[512];
    int unknown = 0, twice = 0;
    for (size_t i = 0; i < d.n; i++) {
        ld_diag_format(&d, i, line, sizeof line);
        if (strstr(line, "routes.yaml:8:") && strstr(line, "urgnet")) unknown++;
        if (strstr(line, "x-more.yaml:1:1") && strstr(line, "'life_safety' is already given"))
            twice++;
    }
    if (!unknown || !twice) ld_diag_print(&d, stderr);
    cr_expect_eq(unknown, 1, "the unknown priority is reported at routes.yaml:8");
    cr_expect_eq(twice, 1, "a second life_safety is reported where it is");
    ld_diag_fini(&d);
}
