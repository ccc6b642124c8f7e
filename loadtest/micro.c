/* micro.c: `linkload micro`: CPU cost of the timer heap, the histogram and
 * the incident index, the core structures the daemon leans on per task and
 * per event, and of SHA-256 over an audit line (about seven lines per
 * event). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/hist.h"
#include "core/map.h"
#include "core/sha256.h"
#include "linkload.h"
#include "timer/timer.h"

static uint64_t rnd(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* timers_bench arms <n> timers 1 s .. 1 h ahead, re-arms each, cancels half
 * and pops the rest; prints ns per operation. */
static int timers_bench(size_t n)
{
    ld_timers t;
    ld_timer *tms = calloc(n, sizeof *tms);
    if (!tms) return -1;
    ld_timers_init(&t);
    uint64_t s = 88172645463325252ull, now = 1000000;
    uint64_t t0 = ld_mono_ns();
    for (size_t i = 0; i < n; i++)
        if (ld_timers_arm(&t, &tms[i], now + 1000 + rnd(&s) % 3600000) != 0) goto fail;
    uint64_t t1 = ld_mono_ns();
    for (size_t i = 0; i < n; i++) ld_timers_arm(&t, &tms[i], now + 1000 + rnd(&s) % 3600000);
    uint64_t t2 = ld_mono_ns();
    for (size_t i = 0; i < n; i += 2) ld_timers_cancel(&t, &tms[i]);
    uint64_t t3 = ld_mono_ns();
    size_t popped = 0;
    while (ld_timers_pop(&t, UINT64_MAX)) popped++;
    uint64_t t4 = ld_mono_ns();
    printf("timers %8zu active: arm %5.0f ns, re-arm %5.0f ns, cancel %5.0f ns, pop %5.0f ns per op\n", n,
           (double)(t1 - t0) / (double)n, (double)(t2 - t1) / (double)n,
           (double)(t3 - t2) / (double)((n + 1) / 2), popped ? (double)(t4 - t3) / (double)popped : 0.0);
    ld_timers_fini(&t);
    free(tms);
    return 0;
fail:
    ld_timers_fini(&t);
    free(tms);
    return -1;
}

/* index_bench puts <n> objects keyed like incident ids, as the engine's
 * table of open incidents does, finds each, and deletes each; prints ns per
 * operation (a put with the two clock reads that time it) and the longest
 * single put, the one a growth lands on. */
typedef struct keyed {
    char id[24];
} keyed;

static const char *keyed_id(const void *o)
{
    return ((const keyed *)o)->id;
}

static int index_bench(size_t n)
{
    keyed *objs = malloc(n * sizeof *objs);
    if (!objs) return -1;
    for (size_t i = 0; i < n; i++) snprintf(objs[i].id, sizeof objs[i].id, "I1795409390%03zu-%zu", i % 1000, i);
    ld_index x;
    ld_index_init(&x, keyed_id);
    uint64_t worst = 0, t0 = ld_mono_ns();
    for (size_t i = 0; i < n; i++) {
        uint64_t a = ld_mono_ns();
        if (ld_index_put(&x, &objs[i]) != 0) {
            ld_index_fini(&x);
            free(objs);
            return -1;
        }
        uint64_t b = ld_mono_ns();
        if (b - a > worst) worst = b - a;
    }
    uint64_t t1 = ld_mono_ns();
    size_t found = 0;
    for (size_t i = 0; i < n; i++) found += ld_index_get(&x, objs[i].id) == &objs[i];
    uint64_t t2 = ld_mono_ns();
    for (size_t i = 0; i < n; i++) ld_index_del(&x, objs[i].id);
    uint64_t t3 = ld_mono_ns();
    printf("index  %8zu keys: put %5.0f ns (longest %7.1f us), get %5.0f ns, delete %5.0f ns per op%s\n",
           n, (double)(t1 - t0) / (double)n, (double)worst / 1000.0,
           (double)(t2 - t1) / (double)n, (double)(t3 - t2) / (double)n,
           found == n ? "" : " (KEYS LOST)");
    ld_index_fini(&x);
    free(objs);
    return found == n ? 0 : -1;
}

static void hist_bench(void)
{
    enum { N = 10000000 };
    ld_hist *h = malloc(sizeof *h);
    if (!h) return;
    ld_hist_init(h);
    uint64_t s = 42, t0 = ld_mono_ns();
    for (int i = 0; i < N; i++) ld_hist_record(h, rnd(&s) % 100000000);
    uint64_t t1 = ld_mono_ns();
    volatile uint64_t q = 0;
    for (int i = 0; i < 1000; i++) q += ld_hist_quantile(h, 0.999);
    (void)q;
    uint64_t t2 = ld_mono_ns();
    printf("hist   record %.1f ns, quantile %.0f ns\n", (double)(t1 - t0) / N, (double)(t2 - t1) / 1000);
    free(h);
}

/* sha_bench hashes a 300-byte line (an audit line's size) as the chain does,
 * in portable C and, where the CPU has them, with its SHA instructions. */
static void sha_bench(void)
{
    enum { N = 200000, LEN = 300 };
    static char line[LEN];
    for (size_t i = 0; i < LEN; i++) line[i] = (char)('a' + i % 26);
    for (int accel = 0; accel <= 1; accel++) {
        int on = ld_sha256_accel(accel);
        if (accel && !on) {
            printf("sha256 CPU instructions: not on this CPU\n");
            break;
        }
        volatile uint8_t sink = 0;
        uint64_t t0 = ld_mono_ns();
        for (int i = 0; i < N; i++) {
            ld_sha256 c;
            uint8_t d[32];
            line[0] = (char)i;
            ld_sha256_init(&c);
            ld_sha256_update(&c, line, LEN);
            ld_sha256_final(&c, d);
            sink ^= d[0];
        }
        (void)sink;
        uint64_t t1 = ld_mono_ns();
        printf("sha256 %s: %.0f ns per %d-byte line\n", on ? "CPU instructions" : "portable C",
               (double)(t1 - t0) / N, LEN);
    }
    ld_sha256_accel(1);
}

int lg_cmd_micro(int argc, char **argv)
{
    (void)argc, (void)argv;
    if (timers_bench(10000) != 0 || timers_bench(1000000) != 0 || index_bench(100000) != 0 ||
        index_bench(1000000) != 0) {
        fprintf(stderr, "linkload micro: out of memory, or the index lost keys\n");
        return LG_EXIT_SOFTWARE;
    }
    hist_bench();
    sha_bench();
    return LG_EXIT_OK;
}
