/* test_loadgen.c: the parts of linkload an ops team trusts without seeing:
 * the delay distributions of simulated terminals give the median and 90th
 * percentile a scenario asks for, phases and ramps read as written, and a
 * scenario's department overrides apply to that department only. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "harness.h"
#include "scenario.h"

#define DRAWS 200000

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* quantiles draws DRAWS delays of <spec> and returns the sorted sample. */
static double *sample(const char *spec)
{
    lg_dist d;
    char err[256];
    cr_assert_eq(lg_dist_parse(&d, spec, err, sizeof err), 0, "%s: %s", spec, err);
    double *v = malloc(DRAWS * sizeof *v);
    cr_assert_not_null(v);
    uint64_t rng = 42;
    for (int i = 0; i < DRAWS; i++) v[i] = lg_dist_sample(&d, &rng);
    qsort(v, DRAWS, sizeof *v, cmp_double);
    return v;
}

static void assert_near(double got, double want, double rel, const char *what)
{
    cr_assert(got > want * (1 - rel) && got < want * (1 + rel), "%s: %.1f, want %.1f +- %.0f%%", what, got,
              want, rel * 100);
}

Test(dist, lognormal_has_the_median_and_p90_asked_for)
{
    double *v = sample("lognormal(20s, 1m)");
    assert_near(v[DRAWS / 2], 20000, 0.03, "median");
    assert_near(v[DRAWS * 9 / 10], 60000, 0.03, "p90");
    cr_assert_gt(v[0], 0);
    free(v);
}

Test(dist, exponential_has_the_mean_asked_for)
{
    double *v = sample("exp(30s)"), sum = 0;
    for (int i = 0; i < DRAWS; i++) sum += v[i];
    assert_near(sum / DRAWS, 30000, 0.02, "mean");
    free(v);
}

Test(dist, uniform_stays_within_its_bounds)
{
    double *v = sample("uniform(5s, 30s)");
    cr_assert_geq(v[0], 5000);
    cr_assert_leq(v[DRAWS - 1], 30000);
    assert_near(v[DRAWS / 2], 17500, 0.02, "median");
    free(v);
}

Test(dist, fixed_and_never)
{
    double *v = sample("90s");
    cr_assert_eq(v[0], 90000);
    cr_assert_eq(v[DRAWS - 1], 90000);
    free(v);
    lg_dist d;
    char err[256];
    uint64_t rng = 1;
    cr_assert_eq(lg_dist_parse(&d, "never", err, sizeof err), 0);
    cr_assert_lt(lg_dist_sample(&d, &rng), 0, "never must never fire");
}

Test(dist, bad_delays_are_refused_with_the_reason)
{
    static const char *const bad[] = {"soon", "lognormal(1m, 20s)", "uniform(30s, 5s)", "exp(20s, 1m)",
                                      "lognormal(20s)", "exp(20s) ", "20x", ""};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        lg_dist d;
        char err[256] = "";
        cr_assert_eq(lg_dist_parse(&d, bad[i], err, sizeof err), LD_EINVAL, "'%s' was accepted", bad[i]);
        cr_assert(err[0], "no reason for '%s'", bad[i]);
    }
}

Test(phases, steps_and_ramps_read_as_written)
{
    lg_scenario s;
    char err[256];
    lg_scenario_defaults(&s);
    cr_assert_eq(lg_phases_parse(&s, "30s@1000,1m@1000..20000,10s@0", err, sizeof err), 0, "%s", err);
    cr_assert_eq(s.nphases, 3);
    cr_assert_eq(s.phases[0].duration_s, 30);
    cr_assert_eq(s.phases[1].duration_s, 60);
    cr_assert_eq(lg_phase_rate(&s.phases[0], 10), 1000);
    cr_assert_eq(lg_phase_rate(&s.phases[1], 0), 1000);
    cr_assert_eq(lg_phase_rate(&s.phases[1], 30), 10500);
    cr_assert_eq(lg_phase_rate(&s.phases[1], 60), 20000);
    cr_assert_eq(lg_phase_rate(&s.phases[2], 5), 0);
    cr_assert_eq(lg_phases_parse(&s, "30s", err, sizeof err), LD_EINVAL);
    cr_assert_eq(lg_phases_parse(&s, "30s@fast", err, sizeof err), LD_EINVAL);
    cr_assert_eq(lg_phases_parse(&s, "0s@10", err, sizeof err), LD_EINVAL);
}

Test(scenario, department_overrides_apply_to_that_department_only)
{
    char dir[128], path[192];
    cr_assert_eq(ldh_mkdtemp(dir, sizeof dir, "loadgen"), 0);
    snprintf(path, sizeof path, "%s/s.yaml", dir);
    static const char text[] =
        "scenario: overrides\n"
        "status: exercise\n"
        "arrivals: poisson\n"
        "mix: { fire: 1, smoke: 1, petition.housing: 2 }\n"
        "terminals:\n"
        "  staffed: 2\n"
        "  acknowledge: lognormal(20s, 1m)\n"
        "  no_show: 0.1\n"
        "  departments:\n"
        "    utilities: { no_show: 0.5, staffed: all }\n"
        "phases:\n"
        "  - { name: surge, duration: 10m, rate: 100..1000, petitioners: 20..300 }\n";
    cr_assert_eq(ldh_write_file(path, text, sizeof text - 1), 0);
    lg_scenario s;
    ld_diag d;
    ld_diag_init(&d);
    int rv = lg_scenario_load(&s, path, &d);
    ld_diag_print(&d, stderr);
    ld_diag_fini(&d);
    ldh_rmtree(dir);
    cr_assert_eq(rv, 0);
    cr_assert_str_eq(s.name, "overrides");
    cr_assert_eq(s.status, LINKD__V1__STATUS__STATUS_EXERCISE);
    cr_assert_eq(s.poisson, 1);
    cr_assert_eq(s.mix.total, 4);
    cr_assert_eq(s.nphases, 1);
    cr_assert_eq(s.phases[0].duration_s, 600);
    cr_assert_eq(s.phases[0].rate_from, 100);
    cr_assert_eq(s.phases[0].rate_to, 1000);
    cr_assert_eq(s.phases[0].petitioners_min, 20);
    cr_assert_eq(s.phases[0].petitioners_max, 300);
    lg_term_profile util = lg_scenario_profile(&s, "utilities"), fire = lg_scenario_profile(&s, "fire");
    cr_assert_eq(util.no_show, 0.5);
    cr_assert_eq(util.staffed, -1);
    cr_assert_eq(util.ack.kind, LG_DIST_LOGNORMAL, "an override keeps what it does not say");
    cr_assert_eq(fire.no_show, 0.1);
    cr_assert_eq(fire.staffed, 2);
}
