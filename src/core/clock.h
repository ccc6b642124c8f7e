/* clock.h: the daemon's notion of time, real or virtual.
 *
 * Domain time (deadlines, history, feed) comes only from ld_clock_now().
 * Three modes:
 *   real      - wall-clock milliseconds;
 *   scaled    - starts at the wall clock and runs <scale> times faster, for
 *               demos and acceptance runs (--time-scale);
 *   manual    - stands still until ld_clock_advance(); unit tests use it to run
 *               a 60-day petition chain in microseconds.
 * ld_clock_real_delay() converts a domain delay into real milliseconds, for
 * arming a libuv timer. Not thread-safe: the loop thread owns it. */
#ifndef LD_CORE_CLOCK_H
#define LD_CORE_CLOCK_H

#include <stdint.h>

typedef struct ld_clock {
    int manual;
    double scale;           /* >= 1; 1 = real time */
    uint64_t base_domain;   /* domain ms at base_mono */
    uint64_t base_mono;     /* monotonic ms when the clock started */
    uint64_t manual_now;
} ld_clock;

void ld_clock_init_real(ld_clock *c, double scale);
void ld_clock_init_manual(ld_clock *c, uint64_t start_ms);
uint64_t ld_clock_now(const ld_clock *c);
void ld_clock_advance(ld_clock *c, uint64_t ms);     /* manual clocks only */
uint64_t ld_clock_real_delay(const ld_clock *c, uint64_t domain_ms);

/* Plain clocks, independent of the daemon's domain clock. */
uint64_t ld_wall_ms(void);
uint64_t ld_mono_ms(void);
uint64_t ld_mono_ns(void);

#endif
