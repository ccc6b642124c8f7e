/* hist.h: a log-linear latency histogram (HDR style), fixed size, no allocation.
 *
 * Values are nanoseconds. Buckets are powers of two split into 2^LD_HIST_SUB
 * linear sub-buckets, so any recorded value is reported within 1/2^LD_HIST_SUB
 * (3.1% at 5) of its true value, from 1 ns to about 2^40 ns (18 minutes);
 * larger values land in the last bucket and still count in max.
 * Recording is a few instructions. Quantiles report the bucket's upper bound,
 * so they never understate. Not thread-safe; merge per-thread copies. */
#ifndef LD_CORE_HIST_H
#define LD_CORE_HIST_H

#include <stdint.h>

#define LD_HIST_SUB 5
#define LD_HIST_MAGS 40
#define LD_HIST_BUCKETS ((LD_HIST_MAGS + 1) << LD_HIST_SUB)

typedef struct ld_hist {
    uint64_t counts[LD_HIST_BUCKETS];
    uint64_t n;
    uint64_t min, max;
    double sum;
} ld_hist;

void ld_hist_init(ld_hist *h);
void ld_hist_record(ld_hist *h, uint64_t v);
void ld_hist_merge(ld_hist *dst, const ld_hist *src);
/* ld_hist_quantile returns the value at quantile q in [0, 1]; 0 if empty. */
uint64_t ld_hist_quantile(const ld_hist *h, double q);
double ld_hist_mean(const ld_hist *h);

#endif
