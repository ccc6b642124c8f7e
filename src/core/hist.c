/* hist.c: the log-linear histogram of hist.h.
 *
 * Layout (S = 2^LD_HIST_SUB sub-buckets per group):
 *   group 0 holds the values 0 .. S-1 exactly, one bucket each;
 *   group g >= 1 holds [S * 2^(g-1), S * 2^g) in S buckets of width 2^(g-1).
 * The width of a bucket is at most 1/S of the smallest value in it, which is
 * where the 1/S relative error comes from. Group LD_HIST_MAGS is the last one;
 * anything above it is clamped into its last bucket, and quantiles that land
 * there report the exact max instead of a bound that would understate. */
#include "core/hist.h"

#include <math.h>
#include <string.h>

#define SUBS (1u << LD_HIST_SUB)

void ld_hist_init(ld_hist *h)
{
    memset(h, 0, sizeof *h);
}

/* bucket_of maps a value to its bucket index; values past the last group are
 * clamped into the last bucket. */
static unsigned bucket_of(uint64_t v)
{
    if (v < SUBS) return (unsigned)v;
    unsigned msb = 63u - (unsigned)__builtin_clzll(v);  /* >= LD_HIST_SUB */
    unsigned g = msb - LD_HIST_SUB + 1;
    if (g > LD_HIST_MAGS) return LD_HIST_BUCKETS - 1;
    return g * SUBS + (unsigned)(v >> (g - 1)) - SUBS;
}

/* bucket_top returns the largest value that bucket_of maps to bucket <i>. */
static uint64_t bucket_top(unsigned i)
{
    unsigned g = i / SUBS, s = i % SUBS;
    if (g == 0) return s;
    uint64_t width = 1ull << (g - 1);
    return ((uint64_t)(SUBS + s) << (g - 1)) + width - 1;
}

void ld_hist_record(ld_hist *h, uint64_t v)
{
    h->counts[bucket_of(v)]++;
    if (h->n == 0 || v < h->min) h->min = v;
    if (v > h->max) h->max = v;
    h->n++;
    h->sum += (double)v;
}

void ld_hist_merge(ld_hist *dst, const ld_hist *src)
{
    if (src->n == 0) return;
    for (unsigned i = 0; i < LD_HIST_BUCKETS; i++) dst->counts[i] += src->counts[i];
    if (dst->n == 0 || src->min < dst->min) dst->min = src->min;
    if (src->max > dst->max) dst->max = src->max;
    dst->n += src->n;
    dst->sum += src->sum;
}

/* ld_hist_quantile: the smallest bucket whose cumulative count reaches
 * ceil(q * n) gives the answer, reported as that bucket's upper bound but never
 * above the exact max (so q = 1 is the max and no answer understates). */
uint64_t ld_hist_quantile(const ld_hist *h, double q)
{
    if (h->n == 0) return 0;
    if (!(q > 0)) return h->min;   /* also catches NaN */
    if (q >= 1) return h->max;
    uint64_t rank = (uint64_t)ceil(q * (double)h->n);
    if (rank < 1) rank = 1;
    if (rank > h->n) rank = h->n;
    uint64_t seen = 0;
    for (unsigned i = 0; i < LD_HIST_BUCKETS; i++) {
        seen += h->counts[i];
        if (seen >= rank) {
            uint64_t top = bucket_top(i);
            if (i == LD_HIST_BUCKETS - 1 || top > h->max) return h->max;
            return top;
        }
    }
    return h->max;   /* unreachable while counts sum to n */
}

double ld_hist_mean(const ld_hist *h)
{
    return h->n ? h->sum / (double)h->n : 0.0;
}
