/* index.c: which routes can match an event, found without trying them all.
 *
 * Matching is "first route in file order that matches" (unless it says
 * continue), so the index must hand out candidates in route order. Built
 * once per rule set:
 *
 *   per (kind, category): the routes that accept that kind and category and
 *       have no district condition, in route order;
 *   per (kind, category, district): the routes that name that district, in
 *       route order (an open-addressing table keyed by the three as one
 *       64-bit integer).
 *
 * ld_rules_match merges the two lists of the event's kind, category and
 * district and tests the rest of each candidate's conditions (priority,
 * status, people, time of day...) in order. A city's rules with thousands of
 * routes per district thus cost per event what its few candidates cost. */
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "rules/rules_int.h"
#include "wire/wire.h"

#define NSLOTS 64 /* category values 1..63 have a slot; 0 holds every other value */

typedef struct slot_list {
    uint32_t off, n;
} slot_list;

typedef struct dist_entry {
    uint64_t key;           /* 0 = empty */
    slot_list l;
} dist_entry;

struct ld_route_index {
    uint32_t *ids;          /* every list, back to back */
    slot_list by_cat[LD_KIND_COUNT][NSLOTS];
    int nslots[LD_KIND_COUNT];
    dist_entry *dist;       /* power-of-two table; NULL if no route names a district */
    size_t dist_cap;
};

static int slots_of(int kind)
{
    const ProtobufCEnumDescriptor *d =
        kind == LD_KIND_CALL     ? &linkd__v1__call_category__descriptor
        : kind == LD_KIND_SENSOR ? &linkd__v1__sensor_kind__descriptor
                                 : &linkd__v1__petition_issue__descriptor;
    int max = 0;
    for (unsigned i = 0; i < d->n_values; i++)
        if (d->values[i].value > max) max = d->values[i].value;
    return max + 1 < NSLOTS ? max + 1 : NSLOTS;
}

static int accepts(const ld_route *rt, int kind, int slot)
{
    if (rt->kind != LD_KIND_ANY && rt->kind != kind) return 0;
    if (!rt->categories) return 1;
    return slot > 0 && (rt->categories >> slot & 1);
}

static uint64_t dist_key(int kind, int slot, uint32_t district)
{
    return ((uint64_t)kind << 56) | ((uint64_t)slot << 48) | district; /* never 0: kind > 0 */
}

static size_t dist_pos(uint64_t key, size_t cap)
{
    uint64_t h = key * 0x9e3779b97f4a7c15ull;
    return (size_t)(h >> 32) & (cap - 1);
}

static const slot_list *dist_get(const struct ld_route_index *x, uint64_t key)
{
    if (!x->dist) return NULL;
    for (size_t i = dist_pos(key, x->dist_cap);; i = (i + 1) & (x->dist_cap - 1)) {
        if (x->dist[i].key == key) return &x->dist[i].l;
        if (x->dist[i].key == 0) return NULL;
    }
}

typedef struct pair {
    uint64_t key;
    uint32_t route;
} pair;

static int by_key_route(const void *a, const void *b)
{
    const pair *p = a, *q = b;
    if (p->key != q->key) return p->key < q->key ? -1 : 1;
    return p->route < q->route ? -1 : p->route > q->route;
}

int rules__build_index(ld_rules *r)
{
    struct ld_route_index *x = calloc(1, sizeof *x);
    pair *pairs = NULL;
    size_t npairs = 0, cap_pairs = 0, nids = 0, cap_ids = 0;
    if (!x) return LD_ENOMEM;
    r->index = x;

    /* The plain lists, kind by kind and slot by slot. */
    for (int k = 1; k < LD_KIND_COUNT; k++) {
        x->nslots[k] = slots_of(k);
        for (int c = 0; c < x->nslots[k]; c++) {
            x->by_cat[k][c].off = (uint32_t)nids;
            for (int i = 0; i < r->nroutes; i++) {
                const ld_route *rt = &r->routes[i];
                if (!accepts(rt, k, c)) continue;
                if (rt->sets[LD_STR_DISTRICT].n) {
                    const uint32_t *d = r->set_ids + rt->sets[LD_STR_DISTRICT].off;
                    for (uint32_t j = 0; j < rt->sets[LD_STR_DISTRICT].n; j++) {
                        if (npairs == cap_pairs) {
                            cap_pairs = cap_pairs ? cap_pairs * 2 : 256;
                            pair *np = realloc(pairs, cap_pairs * sizeof *np);
                            if (!np) goto nomem;
                            pairs = np;
                        }
                        pairs[npairs++] = (pair){dist_key(k, c, d[j]), (uint32_t)i};
                    }
                    continue;
                }
                if (nids == cap_ids) {
                    cap_ids = cap_ids ? cap_ids * 2 : 1024;
                    uint32_t *ni = realloc(x->ids, cap_ids * sizeof *ni);
                    if (!ni) goto nomem;
                    x->ids = ni;
                }
                x->ids[nids++] = (uint32_t)i;
            }
            x->by_cat[k][c].n = (uint32_t)nids - x->by_cat[k][c].off;
        }
    }
    /* The district lists: sorted pairs, then one table entry per key. */
    if (npairs) {
        qsort(pairs, npairs, sizeof *pairs, by_key_route);
        size_t keys = 0;
        for (size_t i = 0; i < npairs; i++) keys += i == 0 || pairs[i].key != pairs[i - 1].key;
        x->dist_cap = 16;
        while (x->dist_cap < keys * 2) x->dist_cap *= 2;
        if (!(x->dist = calloc(x->dist_cap, sizeof *x->dist))) goto nomem;
        if (nids + npairs > cap_ids) {
            cap_ids = nids + npairs;
            uint32_t *ni = realloc(x->ids, cap_ids * sizeof *ni);
            if (!ni) goto nomem;
            x->ids = ni;
        }
        for (size_t i = 0; i < npairs; i++) {
            if (i == 0 || pairs[i].key != pairs[i - 1].key) {
                size_t p = dist_pos(pairs[i].key, x->dist_cap);
                while (x->dist[p].key) p = (p + 1) & (x->dist_cap - 1);
                x->dist[p].key = pairs[i].key;
                x->dist[p].l.off = (uint32_t)nids;
            }
            x->ids[nids++] = pairs[i].route;
            dist_entry *e = NULL;
            for (size_t p = dist_pos(pairs[i].key, x->dist_cap);; p = (p + 1) & (x->dist_cap - 1))
                if (x->dist[p].key == pairs[i].key) {
                    e = &x->dist[p];
                    break;
                }
            e->l.n++;
        }
    }
    free(pairs);
    return 0;
nomem:
    free(pairs);
    return LD_ENOMEM;
}

void rules__free_index(ld_rules *r)
{
    if (!r->index) return;
    free(r->index->ids);
    free(r->index->dist);
    free(r->index);
    r->index = NULL;
}

/* ---- matching ----------------------------------------------------------------- */

static int in_set(const ld_rules *r, ld_idset s, int id)
{
    if (id <= 0 || !s.n) return 0; /* and no pointer into an array that may not exist */
    const uint32_t *v = r->set_ids + s.off;
    uint32_t lo = 0, hi = s.n;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (v[mid] < (uint32_t)id) lo = mid + 1;
        else hi = mid;
    }
    return lo < s.n && v[lo] == (uint32_t)id;
}

static int num_ok(const ld_num_cond *c, const ld_match_input *in)
{
    if (c->field >= LD_NUM_VALUE && c->field <= LD_NUM_OVER && !in->has_value) return 0;
    double x = in->num[c->field];
    switch (c->op) {
    case LD_OP_EQ: return x == c->a;
    case LD_OP_NE: return x != c->a;
    case LD_OP_LT: return x < c->a;
    case LD_OP_LE: return x <= c->a;
    case LD_OP_GT: return x > c->a;
    case LD_OP_GE: return x >= c->a;
    default: return x >= c->a && x <= c->b;
    }
}

/* route_ok tests every condition of <rt> but kind and category, which the
 * index has settled. Cheapest first. */
static int route_ok(const ld_rules *r, const ld_route *rt, const ld_match_input *in)
{
    if (rt->priorities && !(in->priority > 0 && in->priority < 32 &&
                            (rt->priorities >> in->priority & 1)))
        return 0;
    if (rt->statuses && !(in->status > 0 && in->status < 8 && (rt->statuses >> in->status & 1)))
        return 0;
    if (in->people < rt->min_people) return 0;
    if (rt->areas && !(rt->areas >> in->area & 1)) return 0;
    if (rt->days && !(rt->days >> in->weekday & 1)) return 0;
    if (rt->workday >= 0 && rt->workday != in->workday) return 0;
    if (rt->bypass >= 0 && rt->bypass != in->bypass) return 0;
    if (rt->from_min != rt->to_min) {
        int m = in->minute, from = rt->from_min, to = rt->to_min;
        int inside = from < to ? (m >= from && m < to) : (m >= from || m < to);
        if (to > 24 * 60) inside = 1; /* all day */
        if (!inside) return 0;
    }
    for (int i = 0; i < rt->nnum; i++)
        if (!num_ok(&rt->num[i], in)) return 0;
    for (int f = 0; f < LD_STR_COUNT; f++)
        if (rt->sets[f].n && !in_set(r, rt->sets[f], in->str[f])) return 0;
    return 1;
}

int ld_rules_route_matches(const ld_rules *r, const ld_route *rt, const ld_match_input *in)
{
    if (rt->kind != LD_KIND_ANY && rt->kind != in->kind) return 0;
    if (rt->categories &&
        !(in->category > 0 && in->category < 64 && (rt->categories >> in->category & 1)))
        return 0;
    return route_ok(r, rt, in);
}

size_t ld_rules_match(const ld_rules *r, const ld_match_input *in, const ld_route **out,
                      size_t max)
{
    const struct ld_route_index *x = r->index;
    size_t n = 0;
    if (!x || in->kind <= LD_KIND_ANY || in->kind >= LD_KIND_COUNT) {
        /* No index (a set being built) or no kind: try every route. */
        for (int i = 0; i < r->nroutes && n < max; i++) {
            const ld_route *rt = &r->routes[i];
            if (rt->kind != LD_KIND_ANY && rt->kind != in->kind) continue;
            if (rt->categories && !(in->category > 0 && in->category < 64 &&
                                    (rt->categories >> in->category & 1)))
                continue;
            if (!route_ok(r, rt, in)) continue;
            out[n++] = rt;
            if (!rt->cont) break;
        }
        return n;
    }
    int slot = in->category > 0 && in->category < x->nslots[in->kind] ? in->category : 0;
    const slot_list *a = &x->by_cat[in->kind][slot];
    const slot_list *b = in->str[LD_STR_DISTRICT] > 0
                             ? dist_get(x, dist_key(in->kind, slot,
                                                    (uint32_t)in->str[LD_STR_DISTRICT]))
                             : NULL;
    static const uint32_t none[1];
    const uint32_t *pa = a->n ? x->ids + a->off : none, *ea = pa + a->n;
    const uint32_t *pb = b && b->n ? x->ids + b->off : none, *eb = pb + (b ? b->n : 0);
    while (n < max && (pa < ea || pb < eb)) {
        uint32_t i;
        if (pb == eb || (pa < ea && *pa < *pb)) i = *pa++;
        else i = *pb++;
        const ld_route *rt = &r->routes[i];
        if (!route_ok(r, rt, in)) continue;
        out[n++] = rt;
        if (!rt->cont) break;
    }
    return n;
}
