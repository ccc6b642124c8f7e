/* correlate.c: correlation rules (`correlate:`), read and checked.
 *
 *   correlate:
 *     - name: smoke-alarms-one-building       counting with distinct-by
 *       match: { kind: sensor, category: smoke }
 *       count: 3
 *       distinct: sensor
 *       by: [district, address]
 *       window: 5m
 *       upgrade: { priority: critical, dispatch: [ ... ] }
 *     - name: crowd-then-dispute              a sequence
 *       sequence:
 *         first: { kind: sensor, category: crowd_density }
 *         then: { kind: call, category: dispute }
 *       by: [grid]
 *       window: 10m
 *       upgrade: { priority: critical, leader: "...", dispatch: [ ... ] }
 *
 * Matches and dispatch lists are read by syntax.c's own tables (the same
 * conditions and budgets as a route); this file reads the rest through a
 * small table of its own, reports every mistake at its position, and checks
 * what needs two keys (a distinct field the matched kind never carries).
 * The engine side is src/engine/window.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libfyaml.h>

#include "core/err.h"
#include "rules/rules_int.h"
#include "wire/wire.h"

static const char *const key_names[LD_CK_COUNT] = {"district", "grid", "address", "office",
                                                   "category"};
static const char *const distinct_names[LD_DISTINCT_COUNT] = {"event", "caller", "sensor",
                                                              "petitioner", "source"};
/* The kind that carries each distinct field; 0: every kind. */
static const int distinct_kind[LD_DISTINCT_COUNT] = {0, LD_KIND_CALL, LD_KIND_SENSOR,
                                                     LD_KIND_PETITION, 0};
static const char *const kind_words[LD_KIND_COUNT] = {"any", "call", "sensor", "petition"};

/* ---- a small key walker ------------------------------------------------------ */

typedef struct kv {
    struct fy_node *v;
    rules_pos at, key_at;   /* at.src NULL: absent */
} kv;

/* keys_of reads mapping <map> (at <map_at>) into out[i] for each name of
 * <names> (n of them); unknown keys are reported with the nearest name,
 * missing required ones (bit per index in <required>) at the mapping. */
static int keys_of(rules_loader *L, const rules_src *src, struct fy_node *map,
                   const rules_pos *map_at, const char *what, const char *const *names, int n,
                   unsigned required, kv *out)
{
    char known[300] = "";
    for (int i = 0; i < n; i++) {
        out[i] = (kv){0};
        rules__join(known, sizeof known, names[i]);
    }
    if (!fy_node_is_mapping(map)) {
        rules__error(L, map_at, "%s must be a mapping with keys %s", what, known);
        return -1;
    }
    void *it = NULL;
    struct fy_node_pair *p;
    while ((p = fy_node_mapping_iterate(map, &it)) != NULL) {
        struct fy_node *key = fy_node_pair_key(p), *val = fy_node_pair_value(p);
        rules_pos kat = rules__pos_of(src, key, map_at);
        const char *name = key && fy_node_is_scalar(key) ? fy_node_get_scalar0(key) : NULL;
        int i = 0;
        while (name && i < n && strcmp(names[i], name) != 0) i++;
        if (!name || i == n) {
            const char *near = name ? rules__suggest(name, names, (size_t)n) : NULL;
            if (near)
                rules__error(L, &kat, "unknown key '%s' in %s; did you mean '%s'?", name, what,
                             near);
            else
                rules__error(L, &kat, "unknown key '%s' in %s (known: %s)", name ? name : "?",
                             what, known);
            continue;
        }
        const char *text = val && fy_node_is_scalar(val) ? fy_node_get_scalar0(val) : "";
        if (!val || !text || (fy_node_get_style(val) == FYNS_PLAIN && !*text)) {
            rules__error(L, &kat, "'%s' has no value", name);
            continue;
        }
        out[i] = (kv){val, rules__pos_of(src, val, &kat), kat};
    }
    for (int i = 0; i < n; i++)
        if ((required >> i) & 1 && !out[i].at.src)
            rules__error(L, map_at, "%s is missing '%s'", what, names[i]);
    return 0;
}

static const char *scalar_of(rules_loader *L, const kv *k, const char *name)
{
    const char *v = fy_node_is_scalar(k->v) ? fy_node_get_scalar0(k->v) : NULL;
    if (!v) rules__error(L, &k->at, "'%s' must be a single value, not a %s", name,
                         fy_node_is_sequence(k->v) ? "list" : "mapping");
    return v;
}

/* name_of finds <v> among <names>; -1 after reporting it with the nearest one. */
static int name_of(rules_loader *L, const rules_pos *at, const char *what, const char *v,
                   const char *const *names, int n)
{
    char known[200] = "";
    for (int i = 0; i < n; i++) {
        if (strcmp(names[i], v) == 0) return i;
        rules__join(known, sizeof known, names[i]);
    }
    const char *near = rules__suggest(v, names, (size_t)n);
    if (near)
        rules__error(L, at, "unknown %s '%s'; did you mean '%s'? (known: %s)", what, v, near,
                     known);
    else
        rules__error(L, at, "unknown %s '%s' (known: %s)", what, v, known);
    return -1;
}

/* ---- the parts ----------------------------------------------------------------- */

static uint64_t hash64(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (; *s; s++) h = (h ^ (uint8_t)*s) * 0x100000001b3ull;
    return h;
}

/* read_by reads `by: [district, address]` into bits of enum ld_corr_key. */
static void read_by(rules_loader *L, const rules_src *src, const kv *k, ld_correlation *o)
{
    struct fy_node *item;
    void *it = NULL;
    if (fy_node_is_scalar(k->v)) {
        int i = name_of(L, &k->at, "window key", fy_node_get_scalar0(k->v), key_names,
                        LD_CK_COUNT);
        if (i >= 0) o->by = (uint8_t)(1u << i);
        return;
    }
    if (!fy_node_is_sequence(k->v)) {
        rules__error(L, &k->at, "'by' must be a list of fields (district, grid, address, "
                     "office, category)");
        return;
    }
    int items = 0;
    while ((item = fy_node_sequence_iterate(k->v, &it)) != NULL) {
        rules_pos at = rules__pos_of(src, item, &k->at);
        items++;
        const char *v = fy_node_is_scalar(item) ? fy_node_get_scalar0(item) : NULL;
        if (v && strcmp(v, "building") == 0) {
            rules__error(L, &at, "unknown window key 'building': a building is its district "
                         "and address together, write by: [district, address]");
            continue;
        }
        int i = v ? name_of(L, &at, "window key", v, key_names, LD_CK_COUNT) : -1;
        if (!v) rules__error(L, &at, "each item of 'by' is a field name");
        if (i < 0) continue;
        if (o->by & (1u << i)) rules__warn(L, &at, "'%s' is listed twice", v);
        o->by |= (uint8_t)(1u << i);
    }
    if (!items) rules__error(L, &k->at, "'by' names no field: give at least one of district, "
                             "grid, address, office, category");
}

/* check_by refuses keys the matched kinds cannot carry: an office is a
 * petition's, and a sequence's steps have different categories. */
static void check_by(rules_loader *L, const kv *k, const ld_correlation *o)
{
    if (!k->at.src) return;
    int k1 = o->match.kind, k2 = o->type == LD_CORR_SEQUENCE ? o->then.kind : k1;
    if ((o->by & (1u << LD_CK_OFFICE)) &&
        (k1 != LD_KIND_PETITION || k2 != LD_KIND_PETITION))
        rules__error(L, &k->at, "'office' is a field of petitions only; key by it only when "
                     "every event the rule takes is a petition (kind: petition)");
    if (o->by & (1u << LD_CK_CATEGORY)) {
        if (o->type == LD_CORR_SEQUENCE)
            rules__error(L, &k->at, "'category' cannot key a sequence: its steps are "
                         "different events; key by place (district, grid, address)");
        else if (k1 == LD_KIND_ANY)
            rules__error(L, &k->at, "'category' as a key needs 'kind' in 'match': a "
                         "category is a call category, sensor kind or petition issue");
    }
}

static void read_count(rules_loader *L, const kv *k, ld_correlation *o)
{
    const char *v = scalar_of(L, k, "count");
    if (!v) return;
    size_t len = strlen(v);
    unsigned long n = len && len <= 3 && strspn(v, "0123456789") == len ? strtoul(v, NULL, 10)
                                                                           : 0;
    if (n < 2 || n > LD_CORR_MAX_COUNT) {
        rules__error(L, &k->at, "'count' must be a whole number from 2 to %d, not '%s'",
                     LD_CORR_MAX_COUNT, v);
        return;
    }
    o->count = (uint32_t)n;
}

static void read_distinct(rules_loader *L, const kv *k, ld_correlation *o)
{
    const char *v = scalar_of(L, k, "distinct");
    int i = v ? name_of(L, &k->at, "distinct field", v, distinct_names, LD_DISTINCT_COUNT) : -1;
    if (i < 0) return;
    o->distinct = (uint8_t)i;
    int need = distinct_kind[i];
    if (need && o->match.kind != need)
        rules__error(L, &k->at, "'distinct: %s' counts a field of %s events only; give "
                     "'kind: %s' in 'match'", v, kind_words[need], kind_words[need]);
}

static void read_window(rules_loader *L, const kv *k, ld_correlation *o)
{
    const char *v = scalar_of(L, k, "window"), *why;
    if (!v) return;
    if (rules__duration(v, &o->window_ms, &why) != 0) {
        rules__error(L, &k->at, "bad duration '%s' for 'window': %s", v, why);
        return;
    }
    if (o->window_ms > LD_CORR_MAX_WINDOW_MS)
        rules__error(L, &k->at, "'window' must be at most 30d: windows are kept in memory");
}

enum { SQ_FIRST, SQ_THEN, SQ_N };
static const char *const seq_keys[SQ_N] = {"first", "then"};

static void read_sequence(rules_loader *L, const rules_src *src, const kv *k, ld_correlation *o)
{
    kv v[SQ_N];
    if (keys_of(L, src, k->v, &k->at, "sequence", seq_keys, SQ_N, 3u, v) != 0) return;
    if (v[SQ_FIRST].at.src) rules__read_match(L, src, v[SQ_FIRST].v, &v[SQ_FIRST].at, &o->match);
    if (v[SQ_THEN].at.src) rules__read_match(L, src, v[SQ_THEN].v, &v[SQ_THEN].at, &o->then);
    o->type = LD_CORR_SEQUENCE;
}

enum { UP_PRIORITY, UP_DISPATCH, UP_LEADER, UP_N };
static const char *const up_keys[UP_N] = {"priority", "dispatch", "leader"};

static void read_upgrade(rules_loader *L, const rules_src *src, const kv *k, ld_correlation *o,
                         rules_route_aux *aux)
{
    kv v[UP_N];
    if (keys_of(L, src, k->v, &k->at, "upgrade", up_keys, UP_N, 0, v) != 0) return;
    if (v[UP_PRIORITY].at.src) {
        const char *p = scalar_of(L, &v[UP_PRIORITY], "priority");
        int pr = 0;
        if (p && ld_enum_parse(&linkd__v1__priority__descriptor, p, &pr) != 0) {
            char known[200];
            ld_enum_list(&linkd__v1__priority__descriptor, known, sizeof known);
            rules__error(L, &v[UP_PRIORITY].at, "unknown priority '%s' (known: %s)", p, known);
        }
        o->upgrade.priority = pr;
    }
    if (v[UP_DISPATCH].at.src)
        rules__read_dispatch(L, src, v[UP_DISPATCH].v, &v[UP_DISPATCH].at,
                             &v[UP_DISPATCH].key_at, &o->upgrade, aux);
    if (v[UP_LEADER].at.src) {
        const char *l = scalar_of(L, &v[UP_LEADER], "leader");
        if (l && (!*l || strlen(l) >= sizeof o->leader))
            rules__error(L, &v[UP_LEADER].at, "'leader' must be 1 to %zu bytes",
                         sizeof o->leader - 1);
        else if (l)
            memcpy(o->leader, l, strlen(l) + 1);
        if (!v[UP_DISPATCH].at.src)
            rules__error(L, &v[UP_LEADER].at, "'leader' is named on the tasks the upgrade "
                         "adds: give them under 'dispatch'");
    }
    if (!v[UP_PRIORITY].at.src && !v[UP_DISPATCH].at.src)
        rules__error(L, &k->at, "'upgrade' changes nothing: give 'priority', 'dispatch' or "
                     "both");
}

/* ---- one rule ------------------------------------------------------------------- */

enum { CR_NAME, CR_MATCH, CR_COUNT, CR_DISTINCT, CR_SEQUENCE, CR_BY, CR_WINDOW, CR_UPGRADE,
       CR_N };
static const char *const rule_keys[CR_N] = {"name", "match", "count", "distinct",
                                            "sequence", "by", "window", "upgrade"};
#define CR_REQUIRED ((1u << CR_NAME) | (1u << CR_BY) | (1u << CR_WINDOW) | (1u << CR_UPGRADE))

static void read_rule(rules_loader *L, const rules_src *src, struct fy_node *item,
                      const rules_pos *at, ld_correlation *o, rules_route_aux *aux)
{
    kv v[CR_N];
    if (keys_of(L, src, item, at, "correlation rule", rule_keys, CR_N, CR_REQUIRED, v) != 0)
        return;
    if (v[CR_NAME].at.src) {
        const char *n = scalar_of(L, &v[CR_NAME], "name");
        size_t len = n ? strlen(n) : 0;
        if (n && (len == 0 || len >= sizeof o->upgrade.name ||
                  strspn(n, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.") !=
                      len))
            rules__error(L, &v[CR_NAME].at, "name '%s' must be 1 to %zu letters, digits, '_', "
                         "'-' or '.'", n, sizeof o->upgrade.name - 1);
        else if (n)
            memcpy(o->upgrade.name, n, len + 1);
    }
    rules__where(at, o->upgrade.where, sizeof o->upgrade.where);
    o->id_hash = hash64(o->upgrade.name);
    int is_count = v[CR_COUNT].at.src != NULL, is_seq = v[CR_SEQUENCE].at.src != NULL;
    if (is_count == is_seq) {
        rules__error(L, is_seq ? &v[CR_SEQUENCE].key_at : at, "a correlation rule %s: "
                     "'count' (with 'match': N events within 'window') or 'sequence' "
                     "('first', then 'then' within 'window')",
                     is_seq ? "has one of 'count' and 'sequence', not both" : "needs one of");
        return;
    }
    if (is_count) {
        o->type = LD_CORR_COUNT;
        if (v[CR_MATCH].at.src)
            rules__read_match(L, src, v[CR_MATCH].v, &v[CR_MATCH].at, &o->match);
        else
            rules__error(L, &v[CR_COUNT].key_at, "'count' needs 'match': which events count");
        read_count(L, &v[CR_COUNT], o);
        if (v[CR_DISTINCT].at.src) read_distinct(L, &v[CR_DISTINCT], o);
    } else {
        read_sequence(L, src, &v[CR_SEQUENCE], o);
        if (v[CR_MATCH].at.src)
            rules__error(L, &v[CR_MATCH].key_at, "'match' belongs to a count; a sequence "
                         "gives its steps as 'first' and 'then'");
        if (v[CR_DISTINCT].at.src)
            rules__error(L, &v[CR_DISTINCT].key_at, "'distinct' belongs to a count; a "
                         "sequence takes one event per step");
    }
    if (v[CR_BY].at.src) {
        read_by(L, src, &v[CR_BY], o);
        check_by(L, &v[CR_BY], o);
    }
    if (v[CR_WINDOW].at.src) read_window(L, &v[CR_WINDOW], o);
    if (v[CR_UPGRADE].at.src) read_upgrade(L, src, &v[CR_UPGRADE], o, aux);
}

void rules__read_correlations(rules_loader *L, const rules_src *src, struct fy_node *v,
                              const rules_pos *at)
{
    if (!fy_node_is_sequence(v)) {
        rules__error(L, at, "'correlate' must be a list of correlation rules (each item "
                     "starts with '- name: ...')");
        return;
    }
    void *it = NULL;
    struct fy_node *item;
    while ((item = fy_node_sequence_iterate(v, &it)) != NULL) {
        if (rules__grow_pair(L, (void **)&L->corrs, sizeof *L->corrs, (void **)&L->corr_aux,
                             sizeof *L->corr_aux, L->ncorrs, &L->cap_corrs) != 0)
            return;
        ld_correlation *o = &L->corrs[L->ncorrs];
        rules_route_aux *aux = &L->corr_aux[L->ncorrs];
        memset(o, 0, sizeof *o);
        memset(aux, 0, sizeof *aux);
        rules_pos item_at = rules__pos_of(src, item, at);
        aux->at = item_at;
        L->ncorrs++;
        read_rule(L, src, item, &item_at, o, aux);
    }
}

/* ---- across files ------------------------------------------------------------------ */

int rules__check_correlations(rules_loader *L, ld_rules *r)
{
    for (int i = 0; i < L->ncorrs; i++) {
        ld_correlation *o = &L->corrs[i];
        if (rules__resolve_dispatch(L, r, &o->upgrade, &L->corr_aux[i]) != 0) return LD_ENOMEM;
        for (int j = 0; j < i; j++)
            if (o->upgrade.name[0] && strcmp(L->corrs[j].upgrade.name, o->upgrade.name) == 0) {
                rules__error(L, &L->corr_aux[i].at, "correlation rule name '%s' is already "
                             "used at %s", o->upgrade.name, L->corrs[j].upgrade.where);
                break;
            }
    }
    return 0;
}

void rules__move_correlations(rules_loader *L, ld_rules *r)
{
    /* Budgets in the default area, as move_tables does for routes. */
    for (int i = 0; i < L->ncorrs; i++)
        for (int j = 0; j < L->corrs[i].upgrade.ndispatch; j++) {
            ld_dispatch_def *d = &L->corrs[i].upgrade.dispatch[j];
            memcpy(d->leg_ms, d->area_ms[L->default_area], sizeof d->leg_ms);
        }
    r->correlations = L->corrs;
    r->ncorrelations = L->ncorrs;
    L->corrs = NULL;
    L->ncorrs = 0;
}
