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
 * index's effect shows beside it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/diag.h"
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
    return fclose(f) == 0 ? 0 : -1;
}

typedef struct sample {
    Linkd__V1__Envelope env;
    Linkd__V1__Call110 call;
    Linkd__V1__Location loc;
    char district[16];
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
    rv = 0;
out:
    free(ev);
    ld_rules_free(r);
    ld_diag_fini(&d);
    snprintf(path, sizeof path, "%s/rules.yaml", dir);
    unlink(path);
    rmdir(dir);
    return rv;
}

int lg_cmd_rules(int argc, char **argv)
{
    size_t nevents = 1000000;
    if (argc > 2 && strcmp(argv[2], "--help") == 0) {
        puts("usage: linkload rules [--events N]\n"
             "Rule engine throughput on one core, no I/O: ld_rules_input + ld_rules_match per\n"
             "event, for generated rule sets of 10, 100, 1,000 and 10,000 routes, indexed and\n"
             "with every route tried in order.");
        return LG_EXIT_OK;
    }
    if (argc > 3 && strcmp(argv[2], "--events") == 0) nevents = strtoull(argv[3], NULL, 10);
    if (nevents < 1000) nevents = 1000;
    static const int sizes[] = {10, 100, 1000, 10000};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
        if (bench(sizes[i], nevents) != 0) return LG_EXIT_SOFTWARE;
    return LG_EXIT_OK;
}
