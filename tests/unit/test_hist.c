/* test_hist.c: the log-linear histogram reports quantiles within its stated
 * relative error (1/2^LD_HIST_SUB), never below the true value, and keeps the
 * exact max. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "core/hist.h"

#define REL_ERR (1.0 / (1u << LD_HIST_SUB))

static ld_hist h;

static void setup(void)
{
    ld_hist_init(&h);
}

TestSuite(hist, .init = setup);

/* exact_quantile returns the value of rank ceil(q * n) in a sorted array. */
static uint64_t exact_quantile(const uint64_t *sorted, size_t n, double q)
{
    size_t rank = (size_t)ceil(q * (double)n);
    if (rank < 1) rank = 1;
    if (rank > n) rank = n;
    return sorted[rank - 1];
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

/* xorshift64*: a small deterministic generator so failures reproduce. */
static uint64_t rng_next(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 2685821657736338717ull;
}

/* check_against compares every interesting quantile with the exact one. */
static void check_against(uint64_t *vals, size_t n)
{
    qsort(vals, n, sizeof *vals, cmp_u64);
    static const double qs[] = {0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99, 0.999, 0.9999};
    for (size_t i = 0; i < sizeof qs / sizeof qs[0]; i++) {
        uint64_t want = exact_quantile(vals, n, qs[i]);
        uint64_t got = ld_hist_quantile(&h, qs[i]);
        cr_assert_geq(got, want, "q=%g: %lu understates %lu", qs[i], (unsigned long)got,
                      (unsigned long)want);
        cr_assert_leq((double)got, (double)want * (1 + REL_ERR) + 1, "q=%g: %lu vs exact %lu",
                      qs[i], (unsigned long)got, (unsigned long)want);
    }
    cr_assert_eq(ld_hist_quantile(&h, 1.0), vals[n - 1]);
    cr_assert_eq(ld_hist_quantile(&h, 0.0), vals[0]);
    cr_assert_eq(h.max, vals[n - 1]);
    cr_assert_eq(h.min, vals[0]);
}

Test(hist, empty_reports_zero)
{
    cr_assert_eq(h.n, 0);
    cr_assert_eq(ld_hist_quantile(&h, 0.5), 0);
    cr_assert_eq(ld_hist_quantile(&h, 0.99), 0);
    cr_assert_eq(ld_hist_quantile(&h, 1.0), 0);
    cr_assert_float_eq(ld_hist_mean(&h), 0.0, 1e-12);
}

Test(hist, small_values_are_exact)
{
    for (uint64_t v = 0; v < 64; v++) ld_hist_record(&h, v);
    /* 0..63 fall in exact buckets: the median of 64 values is the 32nd, 31. */
    cr_assert_eq(ld_hist_quantile(&h, 0.5), 31);
    cr_assert_eq(ld_hist_quantile(&h, 1.0 / 64), 0);
    cr_assert_eq(ld_hist_quantile(&h, 1.0), 63);
    cr_assert_float_eq(ld_hist_mean(&h), 31.5, 1e-9);
}

Test(hist, single_value_is_reported_exactly)
{
    ld_hist_record(&h, 123456789);
    /* The bucket's upper bound is above the value, but max caps it. */
    cr_assert_eq(ld_hist_quantile(&h, 0.5), 123456789);
    cr_assert_eq(ld_hist_quantile(&h, 0.999), 123456789);
    cr_assert_eq(h.min, 123456789);
}

Test(hist, uniform_distribution_within_relative_error)
{
    enum { N = 200000 };
    uint64_t *vals = malloc(N * sizeof *vals);
    uint64_t s = 42;
    for (size_t i = 0; i < N; i++) {
        vals[i] = 1000 + rng_next(&s) % 10000000;   /* 1 us .. 10 ms */
        ld_hist_record(&h, vals[i]);
    }
    check_against(vals, N);
    free(vals);
}

Test(hist, long_tailed_distribution_within_relative_error)
{
    /* Exponential-ish latencies with a rare multi-second tail, like a queue. */
    enum { N = 200000 };
    uint64_t *vals = malloc(N * sizeof *vals);
    uint64_t s = 7;
    for (size_t i = 0; i < N; i++) {
        double u = (double)(rng_next(&s) >> 11) / 9007199254740992.0;   /* [0,1) */
        double v = -log(1 - u) * 200000.0;                              /* mean 200 us */
        if (i % 5000 == 0) v *= 10000;
        vals[i] = (uint64_t)v + 1;
        ld_hist_record(&h, vals[i]);
    }
    check_against(vals, N);
    free(vals);
}

Test(hist, every_magnitude_within_relative_error)
{
    /* One value just above and just below every power of two up to 2^44. */
    for (unsigned m = 1; m < 45; m++) {
        uint64_t lo = (1ull << m) + 1, hi = (1ull << m) - 1;
        ld_hist_init(&h);
        ld_hist_record(&h, lo);
        ld_hist_record(&h, hi);
        ld_hist_record(&h, 1ull << 50);   /* keeps max out of the way */
        uint64_t q = ld_hist_quantile(&h, 1.0 / 3);
        cr_assert_geq(q, hi);
        cr_assert_leq((double)q, (double)hi * (1 + REL_ERR) + 1, "m=%u", m);
        q = ld_hist_quantile(&h, 2.0 / 3);
        cr_assert_geq(q, lo);
        cr_assert_leq((double)q, (double)lo * (1 + REL_ERR) + 1, "m=%u", m);
    }
}

Test(hist, huge_values_keep_exact_max)
{
    ld_hist_record(&h, 1000);
    ld_hist_record(&h, UINT64_MAX);
    ld_hist_record(&h, UINT64_MAX / 3);
    cr_assert_eq(h.n, 3);
    cr_assert_eq(h.max, UINT64_MAX);
    cr_assert_eq(ld_hist_quantile(&h, 1.0), UINT64_MAX);
    /* Both huge values share the overflow bucket: its quantile is the max,
     * which never understates. */
    cr_assert_eq(ld_hist_quantile(&h, 0.5), UINT64_MAX);
    uint64_t low = ld_hist_quantile(&h, 0.2);
    cr_assert_geq(low, 1000);
    cr_assert_leq(low, 1000 * (1 + REL_ERR) + 1);
}

Test(hist, merge_equals_recording_into_one)
{
    ld_hist a, b, all;
    ld_hist_init(&a);
    ld_hist_init(&b);
    ld_hist_init(&all);
    uint64_t s = 99;
    for (int i = 0; i < 50000; i++) {
        uint64_t v = rng_next(&s) % 100000000;
        ld_hist_record(i % 3 ? &a : &b, v);
        ld_hist_record(&all, v);
    }
    ld_hist_merge(&h, &a);
    ld_hist_merge(&h, &b);
    cr_assert_eq(h.n, all.n);
    cr_assert_eq(h.min, all.min);
    cr_assert_eq(h.max, all.max);
    cr_assert_float_eq(ld_hist_mean(&h), ld_hist_mean(&all), 1e-6);
    for (double q = 0.05; q < 1; q += 0.05)
        cr_assert_eq(ld_hist_quantile(&h, q), ld_hist_quantile(&all, q), "q=%g", q);
}

Test(hist, merge_with_empty_keeps_min)
{
    ld_hist empty;
    ld_hist_init(&empty);
    ld_hist_record(&h, 500);
    ld_hist_merge(&h, &empty);
    cr_assert_eq(h.min, 500);
    cr_assert_eq(h.n, 1);
    ld_hist_merge(&empty, &h);   /* into an empty one: min comes from src */
    cr_assert_eq(empty.min, 500);
    cr_assert_eq(empty.max, 500);
}
