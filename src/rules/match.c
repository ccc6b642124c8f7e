/* match.c: the loop thread's side of the rules: look-ups and matching.
 *
 * Nothing here allocates or compares strings per event: a route is a kind,
 * two bitmasks, a count and a flag, tested in file order. With the few dozen
 * routes a city writes, a linear pass over one array beats an index. */
#include "rules/rules.h"

int ld_rules_department(const ld_rules *r, const char *id)
{
    const ld_department *d = ld_map_get(&r->dept_by_id, id);
    return d ? (int)(d - r->departments) : -1;
}

int ld_rules_terminal(const ld_rules *r, const char *id)
{
    const ld_terminal_def *t = ld_map_get(&r->term_by_id, id);
    return t ? (int)(t - r->terminals) : -1;
}

/* Bit <v> of <mask>, for enum values that may be out of range (0 or from a
 * newer producer): those match only routes that do not test the field. */
static int has_bit64(uint64_t mask, int v) { return v > 0 && v < 64 && (mask >> v & 1); }
static int has_bit32(uint32_t mask, int v) { return v > 0 && v < 32 && (mask >> v & 1); }

size_t ld_rules_match(const ld_rules *r, const ld_match_input *in, const ld_route **out,
                      size_t max)
{
    size_t n = 0;
    for (int i = 0; i < r->nroutes && n < max; i++) {
        const ld_route *rt = &r->routes[i];
        if (rt->kind != LD_KIND_ANY && rt->kind != in->kind) continue;
        if (rt->categories && !has_bit64(rt->categories, in->category)) continue;
        if (rt->priorities && !has_bit32(rt->priorities, in->priority)) continue;
        if (in->people < rt->min_people) continue;
        out[n++] = rt;
        if (!rt->cont) break;
    }
    return n;
}
