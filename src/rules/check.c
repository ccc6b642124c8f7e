/* check.c: what can only be checked once every file is read, then the
 * compiled set.
 *
 * A department or route may sit in any file, so references (a route's
 * departments), uniqueness (ids, terminals, route names) and the command
 * department are settled here. The maps that detect duplicates are the
 * ld_rules maps themselves: their keys point into the loader's arrays, which
 * stop growing before this step and move into the ld_rules whole. */
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

/* Resolves each route's department names to indexes. */
static int resolve_routes(rules_loader *L, ld_rules *r)
{
    const char **ids = calloc((size_t)L->ndepts + 1, sizeof *ids);
    char known[400] = "";
    if (!ids) return LD_ENOMEM;
    for (int i = 0; i < L->ndepts; i++) {
        ids[i] = L->depts[i].id;
        rules__join(known, sizeof known, ids[i]);
    }
    for (int i = 0; i < L->nroutes; i++) {
        ld_route *rt = &L->routes[i];
        rules_route_aux *x = &L->route_aux[i];
        for (int j = 0; j < rt->ndispatch; j++) {
            if (!x->dept[j][0]) continue; /* missing or bad: reported already */
            ld_department *d = ld_map_get(&r->dept_by_id, x->dept[j]);
            if (d) {
                rt->dispatch[j].dept = (int)(d - L->depts);
                continue;
            }
            const char *near = rules__suggest(x->dept[j], ids, (size_t)L->ndepts);
            if (near)
                rules__error(L, &x->dept_at[j], "department '%s' is not defined; did you mean "
                             "'%s'? (known: %s)", x->dept[j], near, known);
            else
                rules__error(L, &x->dept_at[j], "department '%s' is not defined (known: %s)",
                             x->dept[j], known[0] ? known : "none");
        }
        for (int j = 0; j < i; j++)
            if (rt->name[0] && strcmp(L->routes[j].name, rt->name) == 0) {
                rules__error(L, &x->at, "route name '%s' is already used at %s", rt->name,
                             L->routes[j].where);
                break;
            }
    }
    free(ids);
    return 0;
}

/* covers: route <a> (without continue) takes every event <b> could match. */
static int covers(const ld_route *a, const ld_route *b)
{
    if (a->cont) return 0;
    if (a->kind != LD_KIND_ANY && a->kind != b->kind) return 0;
    if (a->categories && (!b->categories || (b->categories & ~a->categories))) return 0;
    if (a->priorities && (!b->priorities || (b->priorities & ~a->priorities))) return 0;
    return a->min_people <= b->min_people;
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
            caught = (rt->kind == LD_KIND_ANY || rt->kind == k) && !rt->categories &&
                     !rt->priorities && !rt->min_people;
        }
        if (!caught)
            rules__warn(L, NULL, "no catch-all route for kind '%s': add a last route with "
                        "'kind: %s' and no other condition, so that every %s event has "
                        "a rule", ld_kind_name(k), ld_kind_name(k), ld_kind_name(k));
    }
    for (int j = 0; j < L->nroutes; j++)
        for (int i = 0; i < j; i++)
            if (covers(&L->routes[i], &L->routes[j])) {
                rules__warn(L, &L->route_aux[j].at, "route '%s' never matches: route '%s' "
                            "(%s) comes first and takes every event it would",
                            L->routes[j].name, L->routes[i].name, L->routes[i].where);
                break;
            }
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

    ld_department *cmd = ld_map_get(&r->dept_by_id, "command");
    if (!cmd)
        rules__error(L, L->departments_at.src ? &L->departments_at : NULL,
                     "department 'command' is not defined; every escalation chain ends "
                     "with its levels");
    if (L->diag->nerrors > L->errors0) return LD_ERULES;
    /* Only on a clean set: a route with a bad kind reads as a catch-all,
     * and the warnings would be about the mistake, not the rules. */
    warn_coverage(L);

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
    return 0;
}
