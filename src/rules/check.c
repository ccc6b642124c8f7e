/* check.c: what can only be checked once every file is read, then the
 * compiled set.
 *
 * A department or route may sit in any file, so references (a route's
 * departments), uniqueness (ids, terminals, route names) and the command
 * department are settled here. The maps that detect duplicates are the
 * ld_rules maps themselves: their keys point into the loader's arrays, which
 * stop growing before this step and move into the ld_rules whole. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "rules/rules_int.h"
#include "wire/wire.h"

static void where_of(const rules_pos *at, char *buf, size_t len)
{
    if (at->src) rules__where(at, buf, len);
    else snprintf(buf, len, "?");
}

/* Department ids are unique across all files. */
static int index_departments(rules_loader *L, ld_rules *r)
{
    for (int i = 0; i < L->ndepts; i++) {
        ld_department *d = &L->depts[i];
        ld_department *prev = ld_map_get(&r->dept_by_id, d->id);
        if (prev) {
            rules__error(L, &L->dept_at[i], "department '%s' is already defined at %s", d->id,
                         prev->where);
            continue;
        }
        if (ld_map_put(&r->dept_by_id, d->id, d) != 0) return LD_ENOMEM;
    }
    return 0;
}

/* Terminal ids are unique across all departments: a poll names a terminal
 * only, and the daemon must know whose it is. */
static int index_terminals(rules_loader *L, ld_rules *r)
{
    for (int i = 0; i < L->nterms; i++) {
        ld_terminal_def *t = &L->terms[i];
        ld_terminal_def *prev = ld_map_get(&r->term_by_id, t->id);
        if (prev) {
            char w[200];
            where_of(&L->term_at[prev - L->terms], w, sizeof w);
            if (prev->dept == t->dept)
                rules__error(L, &L->term_at[i], "terminal '%s' is listed twice (first at %s)",
                             t->id, w);
            else
                rules__error(L, &L->term_at[i], "terminal '%s' already belongs to department "
                             "'%s' (%s); terminal ids are unique across departments", t->id,
                             L->depts[prev->dept].id, w);
            continue;
        }
        if (ld_map_put(&r->term_by_id, t->id, t) != 0) return LD_ENOMEM;
    }
    return 0;
}

int rules__resolve_dispatch(rules_loader *L, ld_rules *r, ld_route *rt,
                            const rules_route_aux *x)
{
    for (int j = 0; j < rt->ndispatch; j++) {
        if (!x->dept[j][0]) continue; /* missing or bad: reported already */
        ld_department *d = ld_map_get(&r->dept_by_id, x->dept[j]);
        if (d) {
            rt->dispatch[j].dept = (int)(d - L->depts);
            continue;
        }
        /* Only a mistake pays for the list of names. */
        const char **ids = calloc((size_t)L->ndepts + 1, sizeof *ids);
        char known[400] = "";
        if (!ids) return LD_ENOMEM;
        for (int i = 0; i < L->ndepts; i++) {
            ids[i] = L->depts[i].id;
            rules__join(known, sizeof known, ids[i]);
        }
        const char *near = rules__suggest(x->dept[j], ids, (size_t)L->ndepts);
        if (near)
            rules__error(L, &x->dept_at[j], "department '%s' is not defined; did you mean "
                         "'%s'? (known: %s)", x->dept[j], near, known);
        else
            rules__error(L, &x->dept_at[j], "department '%s' is not defined (known: %s)",
                         x->dept[j], known[0] ? known : "none");
        free(ids);
    }
    return 0;
}

/* Resolves each route's department names to indexes. */
static int resolve_routes(rules_loader *L, ld_rules *r)
{
    for (int i = 0; i < L->nroutes; i++) {
        ld_route *rt = &L->routes[i];
        rules_route_aux *x = &L->route_aux[i];
        if (rules__resolve_dispatch(L, r, rt, x) != 0) return LD_ENOMEM;
        for (int j = 0; j < i; j++)
            if (rt->name[0] && strcmp(L->routes[j].name, rt->name) == 0) {
                rules__error(L, &x->at, "route name '%s' is already used at %s", rt->name,
                             L->routes[j].where);
                break;
            }
    }
    return 0;
}

int rules__intern(rules_loader *L, const char *value)
{
    void *v = ld_map_get(&L->str_ids, value);
    if (v) return (int)(intptr_t)v;
    /* Ids start at 1: 0 is "a value no rule names", so an input that is
     * zeroed names nothing. */
    if (L->nstrs == 0) L->nstrs = 1;
    while (L->nstrs >= L->cap_strs) {
        int ncap = L->cap_strs ? L->cap_strs * 2 : 64;
        char **ns = realloc(L->strs, (size_t)ncap * sizeof *ns);
        if (!ns) goto nomem;
        if (!L->strs) ns[0] = NULL;
        L->strs = ns;
        L->cap_strs = ncap;
    }
    char *copy = strdup(value);
    if (!copy) goto nomem;
    if (ld_map_put(&L->str_ids, copy, (void *)(intptr_t)L->nstrs) != 0) {
        free(copy);
        goto nomem;
    }
    L->strs[L->nstrs] = copy;
    return L->nstrs++;
nomem:
    L->nomem = 1;
    return -1;
}

/* subset: every bit of <b> is in <a>, where 0 means "any" for both. */
#define WIDER(a, b) (!(a) || ((b) && !((b) & ~(a))))

/* set_covers: set <a> accepts every value set <b> accepts (empty = any). */
static int set_covers(const uint32_t *ids, ld_idset a, ld_idset b)
{
    if (!a.n) return 1;
    if (!b.n) return 0;
    for (uint32_t i = 0; i < b.n; i++) {
        int found = 0;
        for (uint32_t j = 0; j < a.n && !found; j++) found = ids[a.off + j] == ids[b.off + i];
        if (!found) return 0;
    }
    return 1;
}

/* covers: route <a> (without continue) takes every event <b> could match.
 * Numeric and time-of-day conditions are compared only for being absent
 * from <a>: a warning must never be wrong. */
static int covers(const uint32_t *ids, const ld_route *a, const ld_route *b)
{
    if (a->cont) return 0;
    if (a->kind != LD_KIND_ANY && a->kind != b->kind) return 0;
    if (!WIDER(a->categories, b->categories) || !WIDER(a->priorities, b->priorities) ||
        !WIDER(a->statuses, b->statuses) || !WIDER(a->areas, b->areas) ||
        !WIDER(a->days, b->days))
        return 0;
    if ((a->workday >= 0 && a->workday != b->workday) ||
        (a->bypass >= 0 && a->bypass != b->bypass))
        return 0;
    if (a->nnum || a->from_min != a->to_min) return 0;
    for (int f = 0; f < LD_STR_COUNT; f++)
        if (!set_covers(ids, a->sets[f], b->sets[f])) return 0;
    return a->min_people <= b->min_people;
}

/* has_conditions: anything beyond kind in a route's match. */
static int has_conditions(const ld_route *rt)
{
    int sets = 0;
    for (int f = 0; f < LD_STR_COUNT; f++) sets |= rt->sets[f].n != 0;
    return rt->categories || rt->priorities || rt->min_people || rt->statuses || rt->areas ||
           rt->days || rt->workday >= 0 || rt->bypass >= 0 || rt->nnum ||
           rt->from_min != rt->to_min || sets;
}

/* Warnings: a kind that no route catches whole, and routes that cannot fire
 * because an earlier one takes all they match. Neither stops a load: both
 * can be intended while rules are being written. The routes' names and
 * kinds are valid here (see the caller). */
static void warn_coverage(rules_loader *L)
{
    for (int k = LD_KIND_CALL; k < LD_KIND_COUNT; k++) {
        int caught = 0;
        for (int i = 0; i < L->nroutes && !caught; i++) {
            const ld_route *rt = &L->routes[i];
            caught = (rt->kind == LD_KIND_ANY || rt->kind == k) && !has_conditions(rt) &&
                     !rt->cont;
        }
        if (!caught)
            rules__warn(L, NULL, "no catch-all route for kind '%s': add a last route with "
                        "'kind: %s' and no other condition, so that every %s event has "
                        "a rule", ld_kind_name(k), ld_kind_name(k), ld_kind_name(k));
    }
    for (int j = 0; j < L->nroutes; j++)
        for (int i = 0; i < j; i++)
            if (covers(L->set_ids, &L->routes[i], &L->routes[j])) {
                rules__warn(L, &L->route_aux[j].at, "route '%s' never matches: route '%s' "
                            "(%s) comes first and takes every event it would",
                            L->routes[j].name, L->routes[i].name, L->routes[i].where);
                break;
            }
}

/* dept_terminal finds terminal <name> among <dept>'s; -1 if it is not one. */
static int dept_terminal(const rules_loader *L, int dept, const char *name)
{
    for (int i = 0; i < L->nterms; i++)
        if (L->terms[i].dept == dept && strcmp(L->terms[i].id, name) == 0) return i;
    return -1;
}

static int resolve_term(rules_loader *L, int dept, const char *name, const rules_pos *at,
                        const char *what)
{
    int t = dept_terminal(L, dept, name);
    if (t < 0) {
        const char *cands[64];
        size_t n = 0;
        for (int i = 0; i < L->nterms && n < 64; i++)
            if (L->terms[i].dept == dept) cands[n++] = L->terms[i].id;
        const char *near = rules__suggest(name, cands, n);
        rules__error(L, at, "%s '%s' is not one of %s's terminals%s%s%s", what, name,
                     L->depts[dept].id, near ? "; did you mean '" : "", near ? near : "",
                     near ? "'?" : "");
    }
    else if (L->terms[t].drill)
        rules__error(L, at, "%s '%s' is %s's drill terminal; drills and duty do not mix",
                     what, name, L->depts[dept].id);
    return t;
}

static const char *const day_names[7] = {"mon", "tue", "wed", "thu", "fri", "sat", "sun"};

/* check_gaps reports the first time of the week nobody is on duty. */
static void check_gaps(rules_loader *L, const rules_roster_aux *x)
{
    static uint8_t cover[7][24 * 60];
    memset(cover, 0, sizeof cover);
    for (int i = 0; i < x->r.nshifts; i++) {
        const ld_shift *s = &x->r.shifts[i];
        for (int d = 0; d < 7; d++) {
            if (!(s->days >> d & 1)) continue;
            if (s->from < s->to) {
                for (int m = s->from; m < s->to && m < 24 * 60; m++) cover[d][m] = 1;
            } else {
                for (int m = s->from; m < 24 * 60; m++) cover[d][m] = 1;
                for (int m = 0; m < s->to; m++) cover[(d + 1) % 7][m] = 1;
            }
        }
    }
    for (int d = 0; d < 7; d++)
        for (int m = 0; m < 24 * 60; m++) {
            if (cover[d][m]) continue;
            int e = m;
            while (e < 24 * 60 && !cover[d][e]) e++;
            rules__error(L, &x->shifts_at, "roster gap: nobody is on duty for %s on %s from "
                         "%02d:%02d to %02d:%02d; add a shift (tasks in a gap escalate at once)",
                         x->dept, day_names[d], m / 60, m % 60, e / 60, e % 60);
            return;
        }
}

/* resolve_rosters turns the rosters' names into indexes and checks each
 * leaves nobody off duty. */
static int resolve_rosters(rules_loader *L, ld_rules *r)
{
    if (!L->nrosters) return 0;
    if (!(r->rosters = calloc((size_t)L->nrosters, sizeof *r->rosters))) return LD_ENOMEM;
    for (int i = 0; i < L->nrosters; i++) {
        rules_roster_aux *x = &L->rosters[i];
        ld_department *d = ld_map_get(&r->dept_by_id, x->dept);
        if (!d) {
            const char *ids[256];
            size_t n = 0;
            for (int k = 0; k < L->ndepts && n < 256; k++) ids[n++] = L->depts[k].id;
            const char *near = rules__suggest(x->dept, ids, n);
            rules__error(L, &x->dept_at, "roster for department '%s', which is not defined%s%s%s",
                         x->dept, near ? "; did you mean '" : "", near ? near : "",
                         near ? "'?" : "");
            continue;
        }
        int di = (int)(d - L->depts);
        if (d->roster >= 0) {
            rules__error(L, &x->dept_at, "department '%s' has a roster already (%s)", x->dept,
                         r->rosters[d->roster].where);
            continue;
        }
        ld_roster *o = &r->rosters[r->nrosters];
        *o = x->r;
        for (int s = 0; s < o->nshifts; s++)
            if (x->shift_term[s][0])
                o->shifts[s].terminal = resolve_term(L, di, x->shift_term[s],
                                                     &x->shift_term_at[s], "shift terminal");
        for (int v = 0; v < o->noverrides; v++) {
            o->overrides[v].from_ms = (uint64_t)(x->ovr_local[v][0] - L->utc_offset_s * 1000ll);
            o->overrides[v].to_ms = (uint64_t)(x->ovr_local[v][1] - L->utc_offset_s * 1000ll);
            if (x->ovr_term[v][0] && strcmp(x->ovr_term[v], "none") != 0)
                o->overrides[v].terminal = resolve_term(L, di, x->ovr_term[v],
                                                        &x->ovr_term_at[v], "override terminal");
        }
        if (x->stand_in[0])
            o->stand_in = resolve_term(L, di, x->stand_in, &x->stand_in_at, "stand-in");
        check_gaps(L, x);
        d->roster = r->nrosters++;
    }
    return 0;
}

static int by_day(const void *a, const void *b)
{
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

/* move_tables hands the interned names, the id sets, the areas and the
 * calendar to <r>. */
static int move_tables(rules_loader *L, ld_rules *r)
{
    r->str_ids = L->str_ids;
    memset(&L->str_ids, 0, sizeof L->str_ids);
    r->strs = L->strs;
    r->nstrs = L->nstrs;
    L->strs = NULL;
    L->nstrs = 0;
    r->set_ids = L->set_ids;
    L->set_ids = NULL;
    r->merges = L->merges;
    r->nmerges = L->nmerges;
    L->merges = NULL;
    r->str_used = L->str_used;
    r->default_area = L->default_area;
    if (!(r->area_of = malloc((size_t)r->nstrs + 1))) return LD_ENOMEM;
    memset(r->area_of, r->default_area, (size_t)r->nstrs + 1);
    for (int i = 0; i < L->nareas; i++)
        r->area_of[L->area_defs[i].id] = (uint8_t)L->area_defs[i].area;
    r->life_safety = L->life_safety;
    r->utc_offset_s = L->utc_offset_s;
    if (L->nholidays) qsort(L->holidays, (size_t)L->nholidays, sizeof *L->holidays, by_day);
    if (L->nmakeup) qsort(L->makeup, (size_t)L->nmakeup, sizeof *L->makeup, by_day);
    r->holidays = L->holidays;
    r->nholidays = L->nholidays;
    r->makeup = L->makeup;
    r->nmakeup = L->nmakeup;
    L->holidays = L->makeup = NULL;
    /* Budgets in the default area: what callers that know no district use. */
    for (int i = 0; i < L->nroutes; i++)
        for (int j = 0; j < L->routes[i].ndispatch; j++) {
            ld_dispatch_def *d = &L->routes[i].dispatch[j];
            memcpy(d->leg_ms, d->area_ms[r->default_area], sizeof d->leg_ms);
        }
    return 0;
}

int rules__check(rules_loader *L, ld_rules *r)
{
    int rv;
    ld_map_init(&r->dept_by_id);
    ld_map_init(&r->term_by_id);
    if ((rv = index_departments(L, r)) != 0 || (rv = index_terminals(L, r)) != 0)
        return rv;
    if (L->unread) return LD_ERULES;
    if ((rv = resolve_routes(L, r)) != 0) return rv;
    if ((rv = resolve_rosters(L, r)) != 0) return rv;
    if ((rv = rules__check_correlations(L, r)) != 0) return rv;
    if ((rv = rules__resolve_keys(L, r)) != 0) return rv;

    ld_department *cmd = ld_map_get(&r->dept_by_id, "command");
    if (!cmd)
        rules__error(L, L->departments_at.src ? &L->departments_at : NULL,
                     "department 'command' is not defined; every escalation chain ends "
                     "with its levels");
    if (L->diag->nerrors > L->errors0) return LD_ERULES;
    /* Only on a clean set: a route with a bad kind reads as a catch-all,
     * and the warnings would be about the mistake, not the rules. */
    warn_coverage(L);

    if ((rv = move_tables(L, r)) != 0) return rv;
    rules__move_correlations(L, r);
    /* Move, then clear the source, so exactly one owner frees each array. */
    r->departments = L->depts;
    r->ndepartments = L->ndepts;
    r->command = (int)(cmd - L->depts);
    r->terminals = L->terms;
    r->nterminals = L->nterms;
    r->routes = L->routes;
    r->nroutes = L->nroutes;
    L->depts = NULL;
    L->terms = NULL;
    L->routes = NULL;
    return rules__build_index(r);
}
