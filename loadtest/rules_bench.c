/* rules_bench.c: `linkload rules`: the rule engine's own throughput, one
 * core, no I/O: read an event (ld_rules_input) and find its routes
 * (ld_rules_match), for rule sets of 10 to 10,000 routes.
 *
 * Each rule set is generated into a temporary directory and loaded with the
 * real loader: N routes, each a call category in one district (the way a
 * city writes per-district routing), plus a priority route with continue
 * and a catch-all. Events are calls of random categories in random
 * districts of the set (and 10 % in districts no rule names). The same
 * events run through the index and through a pass over every route, so the
 * index's effect shows beside it.
 *
 * Each set also has three correlation rules (rules: correlate), the shapes of
 * the default ones on calls: fire calls from 3 distinct callers at one
 * address within 5 minutes, 5 disputes in one grid within 10 minutes, and a
 * public-order call followed by a dispute call in the same grid. A third
 * pass adds ld_windows_event (what the engine runs per event) to the match.
 * Last, the memory per open window key: 100,000 keys opened, measured by the
 * windows' own accounting and by malloc's (mallinfo2). */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/diag.h"
#include "engine/window.h"
#include "linkload.h"
#include "rules/rules.h"
#include "wire/wire.h"

#define NCAT 19 /* call categories 1..19 */

static uint64_t rnd(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* write_rules writes a rule set of about <n> routes into <dir>/rules.yaml. */
static int write_rules(const char *dir, int n)
{
    char path[256];
    snprintf(path, sizeof path, "%s/rules.yaml", dir);
    FILE *f = fopen(path, "w");
    if (!f) return -1;
    fputs("departments:\n"
          "  police:\n    terminals: [police-duty]\n    escalation:\n"
          "      - { level: duty_officer, terminal: police-duty, wait: 1m }\n"
          "  fire:\n    terminals: [fire-duty]\n    escalation:\n"
          "      - { level: duty_officer, terminal: fire-duty, wait: 1m }\n"
          "  command:\n    terminals: [command-supervisor]\n    escalation:\n"
          "      - { level: supervisor, terminal: command-supervisor, wait: 2m }\n"
          "routes:\n"
          "  - name: critical\n    match: { kind: call, priority: critical, people: \">= 10\" }\n"
          "    continue: true\n    dispatch:\n"
          "      - { department: command, acknowledge: 30s, resolve: 1h }\n",
          f);
    int districts = n / NCAT + 1;
    for (int i = 0; i < n - 2; i++) {
        int cat = 1 + i % NCAT, d = i / NCAT;
        const char *name = ld_enum_name(&linkd__v1__call_category__descriptor, cat);
        fprintf(f, "  - name: r%d\n    match: { kind: call, category: %s, district: \"D%05d\" }\n"
                   "    dispatch:\n      - { department: %s, acknowledge: 30s, "
                   "arrive: { urban: 5m, suburban: 10m }, resolve: 2h }\n",
                i, name, d % districts, i % 2 ? "police" : "fire");
    }
    fputs("  - name: calls\n    match: { kind: call }\n    dispatch:\n"
          "      - { department: command, acknowledge: 60s, resolve: 1h }\n"
          "  - name: sensors\n    match: { kind: sensor }\n    dispatch:\n"
          "      - { department: command, acknowledge: 60s, resolve: 1h }\n"
          "  - name: petitions\n    match: { kind: petition }\n    dispatch:\n"
          "      - { department: command, acknowledge: 60s, resolve: 1h }\n",
          f);
    if (fclose(f) != 0) return -1;
    snprintf(path, sizeof path, "%s/rules2.yaml", dir);
    if (!(f = fopen(path, "w"))) return -1;
    fputs("correlate:\n"
          "  - name: fire-callers-one-address\n    match: { kind: call, category: fire }\n"
          "    count: 3\n    distinct: caller\n    by: [district, address]\n    window: 5m\n"
          "    upgrade: { priority: critical }\n"
          "  - name: disputes-one-grid\n    match: { kind: call, category: dispute }\n"
          "    count: 5\n    by: [grid]\n    window: 10m\n    upgrade: { priority: urgent }\n"
          "  - name: order-then-dispute\n    sequence:\n"
          "      first: { kind: call, category: public_order }\n"
          "      then: { kind: call, category: dispute }\n"
          "    by: [grid]\n    window: 10m\n    upgrade: { priority: critical }\n",
          f);
    return fclose(f) == 0 ? 0 : -1;
}

typedef struct sample {
    Linkd__V1__Envelope env;
    Linkd__V1__Call110 call;
    Linkd__V1__Location loc;
    char district[16], address[16], grid[16], caller[16];
} sample;

/* One pass over <events>: returns ns per event; *found counts routes. */
static double pass(const ld_rules *r, sample *ev, size_t n, uint64_t now, size_t *found)
{
    const ld_route *out[8];
    ld_match_input in;
    uint64_t t0 = ld_mono_ns();
    for (size_t i = 0; i < n; i++) {
        ld_rules_input(r, &ev[i].env, now, &in);
        *found += ld_rules_match(r, &in, out, 8);
    }
    return (double)(ld_mono_ns() - t0) / (double)n;
}

static void count_fire(void *ctx, const ld_window_hit *hit)
{
    (void)hit;
    ++*(size_t *)ctx;
}

/* The same, plus the correlation rules: what the engine adds per event.
 * Events are 10 ms apart on the domain clock, so windows fill and expire. */
static double pass_corr(const ld_rules *r, sample *ev, size_t n, uint64_t now, size_t *fired,
                        ld_window_stats *st)
{
    const ld_route *out[8];
    ld_match_input in;
    ld_windows *w = ld_windows_new(0);
    uint64_t seq = 0;
    if (!w) return -1;
    uint64_t t0 = ld_mono_ns();
    for (size_t i = 0; i < n; i++) {
        uint64_t at = now + i * 10;
        ld_rules_input(r, &ev[i].env, at, &in);
        ld_rules_match(r, &in, out, 8);
        ld_windows_event(w, r, &ev[i].env, &in, "I0-0", at, &seq, count_fire, fired);
    }
    double ns = (double)(ld_mono_ns() - t0) / (double)n;
    ld_windows_stats(w, st);
    ld_windows_free(w);
    return ns;
}

static int bench(int nroutes, size_t nevents)
{
    char dir[] = "/tmp/linkload-rules-XXXXXX", path[256];
    if (!mkdtemp(dir)) return -1;
    int rv = -1;
    ld_rules *r = NULL;
    sample *ev = NULL;
    ld_diag d;
    ld_diag_init(&d);
    if (write_rules(dir, nroutes) != 0) goto out;
    uint64_t l0 = ld_mono_ns();
    if (ld_rules_load(&r, dir, &d) != 0) {
        ld_diag_print(&d, stderr);
        goto out;
    }
    double load_ms = (double)(ld_mono_ns() - l0) / 1e6;
    if (!(ev = calloc(nevents, sizeof *ev))) goto out;
    uint64_t s = 0x9e3779b97f4a7c15ull;
    int districts = nroutes / NCAT + 1;
    for (size_t i = 0; i < nevents; i++) {
        sample *x = &ev[i];
        linkd__v1__envelope__init(&x->env);
        linkd__v1__call110__init(&x->call);
        linkd__v1__location__init(&x->loc);
        x->env.has_status = 1;
        x->env.status = LINKD__V1__STATUS__STATUS_ACTUAL;
        x->env.body_case = LINKD__V1__ENVELOPE__BODY_CALL;
        x->env.call = &x->call;
        x->call.has_category = 1;
        x->call.category = (Linkd__V1__CallCategory)(1 + rnd(&s) % NCAT);
        x->call.has_priority = 1;
        x->call.priority = (Linkd__V1__Priority)(1 + rnd(&s) % 4);
        x->call.has_people = 1;
        x->call.people = (uint32_t)(rnd(&s) % 20);
        if (rnd(&s) % 10) snprintf(x->district, sizeof x->district, "D%05d",
                                   (int)(rnd(&s) % (uint64_t)districts));
        else snprintf(x->district, sizeof x->district, "X%05d", (int)(rnd(&s) % 1000));
        x->loc.district = x->district;
        snprintf(x->address, sizeof x->address, "A%05d", (int)(rnd(&s) % 20000));
        snprintf(x->grid, sizeof x->grid, "G%04d", (int)(rnd(&s) % 2000));
        snprintf(x->caller, sizeof x->caller, "C%08x", (unsigned)rnd(&s));
        x->loc.address = x->address;
        x->loc.grid = x->grid;
        x->call.caller = x->caller;
        x->call.location = &x->loc;
    }
    uint64_t now = ld_wall_ms();
    size_t found = 0, found_lin = 0;
    pass(r, ev, nevents < 10000 ? nevents : 10000, now, &found); /* warm the caches */
    found = 0;
    double idx = pass(r, ev, nevents, now, &found);
    struct ld_route_index *saved = r->index;
    r->index = NULL; /* every route in order */
    size_t nlin = nevents / (nroutes >= 1000 ? 20 : 1);
    double lin = pass(r, ev, nlin, now, &found_lin);
    r->index = saved;
    printf("rules %6d routes: %7.0f ns/event, %9.0f events/s indexed; every route tried: "
           "%9.0f ns/event, %9.0f events/s; %.2f routes/event; load %.0f ms\n",
           r->nroutes, idx, 1e9 / idx, lin, 1e9 / lin, (double)found / (double)nevents, load_ms);
    size_t fired = 0;
    ld_window_stats st;
    double corr = pass_corr(r, ev, nevents, now, &fired, &st);
    printf("rules %6d routes + %d correlation rules: %7.0f ns/event, %9.0f events/s "
           "(correlation %+.0f ns); %zu fired, %zu keys open at the end\n",
           r->nroutes, r->ncorrelations, corr, 1e9 / corr, corr - idx, fired, st.keys);
    rv = 0;
out:
    free(ev);
    ld_rules_free(r);
    ld_diag_fini(&d);
    snprintf(path, sizeof path, "%s/rules.yaml", dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/rules2.yaml", dir);
    unlink(path);
    rmdir(dir);
    return rv;
}

/* window_memory opens <nkeys> windows of rule <c> (one value each) and
 * prints the bytes per open key: the windows' own accounting (pool objects
 * and the key table) and malloc's bytes in use before and after. */
static void window_memory(const char *what, const ld_correlation *c, size_t nkeys)
{
    struct mallinfo2 m0 = mallinfo2();
    ld_windows *w = ld_windows_new(nkeys);
    if (!w) return;
    uint64_t v = 1;
    for (size_t k = 0; k < nkeys; k++) {
        ld_window_event ev = {ld_window_hash((const char *)&k, sizeof k), &v, 1,
                              "I1795000000000-0"};
        ld_windows_observe(w, c, 0, &ev, 1795000000000ull, NULL, NULL);
    }
    struct mallinfo2 m1 = mallinfo2();
    ld_window_stats st;
    ld_windows_stats(w, &st);
    printf("correlation memory, %s: %zu keys open: %.0f bytes/key (windows' accounting), "
           "%.0f bytes/key (malloc in use)\n", what, st.keys, (double)st.bytes / (double)st.keys,
           (double)(m1.uordblks + m1.hblkhd - m0.uordblks - m0.hblkhd) / (double)st.keys);
    ld_windows_free(w);
}

static void memory(void)
{
    ld_correlation c;
    memset(&c, 0, sizeof c);
    c.type = LD_CORR_COUNT;
    c.window_ms = 300000;
    c.id_hash = 1;
    static const uint32_t counts[] = {3, 5, 16, 32};
    for (size_t i = 0; i < sizeof counts / sizeof counts[0]; i++) {
        char what[64];
        c.count = counts[i];
        snprintf(what, sizeof what, "count %u", counts[i]);
        window_memory(what, &c, 100000);
    }
    c.type = LD_CORR_SEQUENCE;
    window_memory("sequence", &c, 100000);
}

int lg_cmd_rules(int argc, char **argv)
{
    size_t nevents = 1000000;
    if (argc > 2 && strcmp(argv[2], "--help") == 0) {
        puts("usage: linkload rules [--events N]\n"
             "Rule engine throughput on one core, no I/O: ld_rules_input + ld_rules_match per\n"
             "event, for generated rule sets of 10, 100, 1,000 and 10,000 routes, indexed and\n"
             "with every route tried in order; then with three correlation rules\n"
             "(ld_windows_event), and the memory per open correlation window key.");
        return LG_EXIT_OK;
    }
    if (argc > 3 && strcmp(argv[2], "--events") == 0) nevents = strtoull(argv[3], NULL, 10);
    if (nevents < 1000) nevents = 1000;
    static const int sizes[] = {10, 100, 1000, 10000};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
        if (bench(sizes[i], nevents) != 0) return LG_EXIT_SOFTWARE;
    memory();
    return LG_EXIT_OK;
}
