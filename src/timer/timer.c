#include "timer/timer.h"

#include <stdlib.h>

#include "core/err.h"

void ld_timers_init(ld_timers *t)
{
    t->heap = NULL;
    t->len = 0;
    t->cap = 0;
}

void ld_timers_fini(ld_timers *t)
{
    for (size_t i = 1; i <= t->len; i++) t->heap[i]->slot = 0;
    free(t->heap);
    ld_timers_init(t);
}

static void place(ld_timers *t, size_t i, ld_timer *tm)
{
    t->heap[i] = tm;
    tm->slot = i;
}

static void sift_up(ld_timers *t, size_t i)
{
    ld_timer *tm = t->heap[i];
    while (i > 1 && t->heap[i / 2]->due > tm->due) {
        place(t, i, t->heap[i / 2]);
        i /= 2;
    }
    place(t, i, tm);
}

static void sift_down(ld_timers *t, size_t i)
{
    ld_timer *tm = t->heap[i];
    for (;;) {
        size_t c = i * 2;
        if (c > t->len) break;
        if (c + 1 <= t->len && t->heap[c + 1]->due < t->heap[c]->due) c++;
        if (t->heap[c]->due >= tm->due) break;
        place(t, i, t->heap[c]);
        i = c;
    }
    place(t, i, tm);
}

int ld_timers_arm(ld_timers *t, ld_timer *tm, uint64_t due)
{
    if (tm->slot) {
        uint64_t old = tm->due;
        tm->due = due;
        if (due < old) sift_up(t, tm->slot);
        else sift_down(t, tm->slot);
        return 0;
    }
    if (t->len + 1 >= t->cap) {
        size_t ncap = t->cap ? t->cap * 2 : 64;
        ld_timer **nh = realloc(t->heap, ncap * sizeof *nh);
        if (!nh) return LD_ENOMEM;
        t->heap = nh;
        t->cap = ncap;
    }
    tm->due = due;
    t->len++;
    place(t, t->len, tm);
    sift_up(t, t->len);
    return 0;
}

void ld_timers_cancel(ld_timers *t, ld_timer *tm)
{
    size_t i = tm->slot;
    if (!i) return;
    ld_timer *last = t->heap[t->len--];
    tm->slot = 0;
    if (last == tm) return;
    place(t, i, last);
    if (i > 1 && t->heap[i / 2]->due > last->due) sift_up(t, i);
    else sift_down(t, i);
}

ld_timer *ld_timers_next(const ld_timers *t)
{
    return t->len ? t->heap[1] : NULL;
}

ld_timer *ld_timers_pop(ld_timers *t, uint64_t now)
{
    ld_timer *tm = ld_timers_next(t);
    if (!tm || tm->due > now) return NULL;
    ld_timers_cancel(t, tm);
    return tm;
}
