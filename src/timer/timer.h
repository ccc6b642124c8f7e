/* timer.h: deadlines in a binary min-heap with embedded nodes.
 *
 * An ld_timer lives inside its owner (a task); the heap holds pointers, and
 * each timer remembers its slot, so re-arming and cancelling are O(log n)
 * with no search and no allocation per timer. Times are domain ms from
 * ld_clock. Measured on this machine kind, a heap of 1M timers costs well
 * under 2 us per operation, so no wheel is needed (docs/BENCHMARKS.md).
 * Not thread-safe: the loop thread owns it. */
#ifndef LD_TIMER_TIMER_H
#define LD_TIMER_TIMER_H

#include <stddef.h>
#include <stdint.h>

typedef struct ld_timer {
    uint64_t due;
    size_t slot;            /* 1-based heap position; 0 = not armed */
} ld_timer;

typedef struct ld_timers {
    ld_timer **heap;        /* heap[0] unused; heap[1] is the earliest */
    size_t len, cap;
} ld_timers;

void ld_timers_init(ld_timers *t);
void ld_timers_fini(ld_timers *t);
/* ld_timers_arm sets <tm> to fire at <due>, moving it if it was armed.
 * Returns 0 or LD_ENOMEM (then <tm> is unchanged). */
int ld_timers_arm(ld_timers *t, ld_timer *tm, uint64_t due);
void ld_timers_cancel(ld_timers *t, ld_timer *tm);
/* ld_timers_next returns the earliest armed timer, or NULL. */
ld_timer *ld_timers_next(const ld_timers *t);
/* ld_timers_pop returns and disarms the earliest timer due at or before <now>. */
ld_timer *ld_timers_pop(ld_timers *t, uint64_t now);
static inline int ld_timer_armed(const ld_timer *tm) { return tm->slot != 0; }

#endif
