/* test_timer.c: the deadline heap pops timers in due order, re-arms and
 * cancels anywhere in the heap, and matches a sorted reference under random
 * operations. */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdlib.h>

#include "timer/timer.h"

static ld_timers T;

static void setup(void)
{
    ld_timers_init(&T);
}

static void teardown(void)
{
    ld_timers_fini(&T);
}

TestSuite(timer, .init = setup, .fini = teardown);

/* xorshift64*: deterministic, so a failing seed reproduces. */
static uint64_t rng_next(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 2685821657736338717ull;
}

/* drain pops everything due by <now> and checks the order is non-decreasing.
 * Returns how many it popped. */
static size_t drain(uint64_t now)
{
    size_t n = 0;
    uint64_t last = 0;
    ld_timer *tm;
    while ((tm = ld_timers_pop(&T, now)) != NULL) {
        cr_assert_geq(tm->due, last, "popped %lu after %lu", (unsigned long)tm->due,
                      (unsigned long)last);
        cr_assert_leq(tm->due, now);
        cr_assert_not(ld_timer_armed(tm));
        last = tm->due;
        n++;
    }
    return n;
}

Test(timer, empty_heap_has_nothing)
{
    cr_assert_null(ld_timers_next(&T));
    cr_assert_null(ld_timers_pop(&T, UINT64_MAX));
}

Test(timer, many_random_timers_pop_in_order)
{
    enum { N = 20000 };
    ld_timer *tms = calloc(N, sizeof *tms);
    uint64_t s = 1;
    for (size_t i = 0; i < N; i++) cr_assert_eq(ld_timers_arm(&T, &tms[i], rng_next(&s) % 1000000), 0);
    cr_assert_eq(T.len, N);
    cr_assert_eq(drain(UINT64_MAX), N);
    cr_assert_eq(T.len, 0);
    free(tms);
}

Test(timer, pop_returns_only_due_timers)
{
    ld_timer a = {0}, b = {0}, c = {0};
    ld_timers_arm(&T, &a, 100);
    ld_timers_arm(&T, &b, 200);
    ld_timers_arm(&T, &c, 300);
    cr_assert_null(ld_timers_pop(&T, 99));
    cr_assert_eq(ld_timers_pop(&T, 200), &a);
    cr_assert_eq(ld_timers_pop(&T, 200), &b);
    cr_assert_null(ld_timers_pop(&T, 200));
    cr_assert_eq(ld_timers_next(&T), &c);
    cr_assert(ld_timer_armed(&c));
    ld_timers_fini(&T); /* the timers live on this stack frame: disarm before it ends */
}

Test(timer, rearm_earlier_and_later_moves_the_timer)
{
    ld_timer a = {0}, b = {0}, c = {0};
    ld_timers_arm(&T, &a, 100);
    ld_timers_arm(&T, &b, 200);
    ld_timers_arm(&T, &c, 300);
    ld_timers_arm(&T, &c, 50);     /* earlier: now first */
    cr_assert_eq(ld_timers_next(&T), &c);
    ld_timers_arm(&T, &c, 1000);   /* later: now last */
    ld_timers_arm(&T, &a, 250);
    cr_assert_eq(T.len, 3, "re-arming must not add a second entry");
    cr_assert_eq(ld_timers_pop(&T, 10000), &b);
    cr_assert_eq(ld_timers_pop(&T, 10000), &a);
    cr_assert_eq(ld_timers_pop(&T, 10000), &c);
}

Test(timer, cancel_from_the_middle_keeps_order)
{
    enum { N = 1000 };
    ld_timer tms[N] = {{0}};
    for (size_t i = 0; i < N; i++) ld_timers_arm(&T, &tms[i], (i * 7919) % N);
    for (size_t i = 0; i < N; i += 3) ld_timers_cancel(&T, &tms[i]);
    for (size_t i = 0; i < N; i += 3) cr_assert_not(ld_timer_armed(&tms[i]));
    ld_timers_cancel(&T, &tms[0]);   /* cancelling twice is harmless */
    cr_assert_eq(drain(UINT64_MAX), N - (N + 2) / 3);
}

Test(timer, cancel_the_last_slot_and_the_root)
{
    ld_timer a = {0}, b = {0}, c = {0};
    ld_timers_arm(&T, &a, 1);
    ld_timers_arm(&T, &b, 2);
    ld_timers_arm(&T, &c, 3);
    ld_timers_cancel(&T, &c);   /* last slot: nothing moves */
    ld_timers_cancel(&T, &a);   /* root */
    cr_assert_eq(ld_timers_next(&T), &b);
    cr_assert_eq(T.len, 1);
    ld_timers_fini(&T);
}

Test(timer, arm_again_after_fire)
{
    ld_timer a = {0};
    ld_timers_arm(&T, &a, 10);
    cr_assert_eq(ld_timers_pop(&T, 10), &a);
    cr_assert_not(ld_timer_armed(&a));
    cr_assert_eq(ld_timers_arm(&T, &a, 20), 0);
    cr_assert(ld_timer_armed(&a));
    cr_assert_null(ld_timers_pop(&T, 19));
    cr_assert_eq(ld_timers_pop(&T, 20), &a);
}

Test(timer, fini_disarms_everything)
{
    ld_timer a = {0}, b = {0};
    ld_timers_arm(&T, &a, 1);
    ld_timers_arm(&T, &b, 2);
    ld_timers_fini(&T);
    cr_assert_not(ld_timer_armed(&a));
    cr_assert_not(ld_timer_armed(&b));
    cr_assert_eq(ld_timers_arm(&T, &a, 5), 0);   /* usable again after fini */
    ld_timers_fini(&T);
}

/* The reference model: each timer's due time, or UINT64_MAX when disarmed.
 * After every step the heap must agree with the model on the earliest due
 * time, and every pop must return a timer that the model says is the minimum. */
enum { REF_TIMERS = 300, REF_STEPS = 60000 };

static uint64_t ref_min(const uint64_t *due)
{
    uint64_t m = UINT64_MAX;
    for (size_t i = 0; i < REF_TIMERS; i++)
        if (due[i] < m) m = due[i];
    return m;
}

static void ref_step(ld_timer *tms, uint64_t *due, uint64_t *s, uint64_t *now)
{
    size_t i = rng_next(s) % REF_TIMERS;
    switch (rng_next(s) % 4) {
    case 0:   /* arm or re-arm, earlier or later */
    case 1:
        due[i] = *now + rng_next(s) % 5000;
        cr_assert_eq(ld_timers_arm(&T, &tms[i], due[i]), 0);
        break;
    case 2:
        ld_timers_cancel(&T, &tms[i]);
        due[i] = UINT64_MAX;
        break;
    default: {   /* advance time and pop what is due */
        *now += rng_next(s) % 500;
        ld_timer *tm;
        while ((tm = ld_timers_pop(&T, *now)) != NULL) {
            size_t k = (size_t)(tm - tms);
            cr_assert_lt(k, REF_TIMERS);
            cr_assert_eq(due[k], ref_min(due), "popped %lu, the minimum is %lu",
                         (unsigned long)due[k], (unsigned long)ref_min(due));
            due[k] = UINT64_MAX;
        }
        cr_assert_gt(ref_min(due), *now, "a due timer was left behind");
    }
    }
    ld_timer *next = ld_timers_next(&T);
    uint64_t m = ref_min(due);
    if (m == UINT64_MAX) cr_assert_null(next);
    else cr_assert_eq(next->due, m);
}

Test(timer, random_operations_match_sorted_reference)
{
    static ld_timer tms[REF_TIMERS];
    static uint64_t due[REF_TIMERS];
    for (size_t i = 0; i < REF_TIMERS; i++) {
        tms[i] = (ld_timer){0};
        due[i] = UINT64_MAX;
    }
    uint64_t s = 0x9e3779b97f4a7c15ull, now = 0;
    for (int step = 0; step < REF_STEPS; step++) ref_step(tms, due, &s, &now);
    size_t armed = 0;
    for (size_t i = 0; i < REF_TIMERS; i++) armed += due[i] != UINT64_MAX;
    cr_assert_eq(T.len, armed);
    /* Final drain: the heap's order must equal the sorted model. */
    uint64_t sorted[REF_TIMERS];
    size_t n = 0;
    for (size_t i = 0; i < REF_TIMERS; i++)
        if (due[i] != UINT64_MAX) sorted[n++] = due[i];
    for (size_t i = 1; i < n; i++)   /* insertion sort: n is small */
        for (size_t j = i; j > 0 && sorted[j - 1] > sorted[j]; j--) {
            uint64_t t = sorted[j];
            sorted[j] = sorted[j - 1];
            sorted[j - 1] = t;
        }
    for (size_t i = 0; i < n; i++) {
        ld_timer *tm = ld_timers_pop(&T, UINT64_MAX);
        cr_assert_not_null(tm);
        cr_assert_eq(tm->due, sorted[i]);
    }
    cr_assert_null(ld_timers_pop(&T, UINT64_MAX));
}
