/* syntax.c: one rule file's YAML tree -> departments and routes.
 *
 * Every mapping is read through a table of its keys (nginx's ngx_command_t
 * idea): name, setter, where the value goes, whether it is required. The
 * walker finds unknown keys (with a "did you mean"), missing ones, and hands
 * each value with its position to a setter that checks type and bounds.
 * What needs more than one key (categories need the kind) or more than one
 * file (a route's departments) is checked once the mapping, or everything,
 * has been read. */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libfyaml.h>

#include "core/err.h"
#include "rules/rules_int.h"
#include "wire/wire.h"

#define MAX_KEYS 8        /* per table */
#define MAX_TERMINALS 64  /* per department */
#define MAX_NAMES 64      /* categories in one match: they become bits of a uint64 */

typedef struct rctx {
    rules_loader *L;
    const rules_src *src;
} rctx;

/* ---- positions -------------------------------------------------------------- */

/* libfyaml 0.7 keeps marks on tokens, and only scalars expose theirs, so a
 * collection is placed at its first scalar: for a block mapping that is its
 * first key, which is where a reader's eye goes too. Empty collections have
 * no token; the caller's fallback (usually the key) is used. */
static rules_pos pos_of(const rctx *c, struct fy_node *n, const rules_pos *fallback)
{
    while (n) {
        if (fy_node_is_scalar(n)) {
            struct fy_token *t = fy_node_get_scalar_token(n);
            const struct fy_mark *m = t ? fy_token_start_mark(t) : NULL;
            if (!m) break;
            return (rules_pos){c->src, m->line + 1, m->column + 1};
        }
        void *it = NULL;
        if (fy_node_is_mapping(n)) {
            struct fy_node_pair *p = fy_node_mapping_iterate(n, &it);
            n = p ? fy_node_pair_key(p) : NULL;
        } else {
            n = fy_node_sequence_iterate(n, &it);
        }
    }
    return *fallback;
}

/* ---- key tables ------------------------------------------------------------- */

typedef struct key_def key_def;

/* What a setter gets: the value node (never NULL), where it and its key
 * were written, and the field it fills. */
typedef struct slot {
    struct fy_node *v;
    rules_pos at, key_at;
    const key_def *k;
    void *field;
} slot;

struct key_def {
    const char *name;
    void (*set)(rctx *c, const slot *s);
    size_t off, size; /* the field inside the object, and its size */
    int required;
};

typedef struct key_table {
    const char *what;     /* "route": for "route is missing 'dispatch'" */
    const char *in;       /* "in route": for "unknown key 'x' in route" */
    const key_def *keys;
    int n;
    int x_keys;           /* ignore keys "x-...": they hold YAML anchors for the rest */
} key_table;

#define FIELD(type, member) offsetof(type, member), sizeof(((type *)0)->member)

static void unknown_key(rctx *c, const rules_pos *at, const key_table *t, const char *name)
{
    const char *cands[MAX_KEYS];
    char known[256] = "";
    for (int i = 0; i < t->n; i++) {
        cands[i] = t->keys[i].name;
        rules__join(known, sizeof known, cands[i]);
    }
    const char *near = rules__suggest(name, cands, (size_t)t->n);
    if (near)
        rules__error(c->L, at, "unknown key '%s' %s; did you mean '%s'?", name, t->in, near);
    else
        rules__error(c->L, at, "unknown key '%s' %s (known: %s)", name, t->in, known);
}

/* walk reads mapping <map> (written at <map_at>) into <obj> through <t>.
 * at[i] receives where key i's value was written; at[i].src is NULL when
 * the key is absent. <label> names the object in messages ("department
 * 'fire'"); NULL uses the table's word. */
static void walk(rctx *c, struct fy_node *map, const rules_pos *map_at, const key_table *t,
                 void *obj, rules_pos at[], const char *label)
{
    for (int i = 0; i < t->n; i++) at[i] = (rules_pos){0};
    if (!fy_node_is_mapping(map)) {
        char known[256] = "";
        for (int i = 0; i < t->n; i++) rules__join(known, sizeof known, t->keys[i].name);
        rules__error(c->L, map_at, "%s must be a mapping with keys %s", label ? label : t->what,
                     known);
        return;
    }
    void *it = NULL;
    struct fy_node_pair *p;
    while ((p = fy_node_mapping_iterate(map, &it)) != NULL) {
        struct fy_node *key = fy_node_pair_key(p), *val = fy_node_pair_value(p);
        rules_pos key_at = pos_of(c, key, map_at);
        const char *name = key && fy_node_is_scalar(key) ? fy_node_get_scalar0(key) : NULL;
        if (!name) {
            rules__error(c->L, &key_at, "keys %s must be plain names", t->in);
            continue;
        }
        int i = 0;
        while (i < t->n && strcmp(t->keys[i].name, name) != 0) i++;
        if (i == t->n) {
            if (!(t->x_keys && strncmp(name, "x-", 2) == 0)) unknown_key(c, &key_at, t, name);
            continue;
        }
        at[i] = pos_of(c, val, &key_at);
        const char *text = val && fy_node_is_scalar(val) ? fy_node_get_scalar0(val) : "";
        if (!val || !text || (fy_node_get_style(val) == FYNS_PLAIN && !*text)) {
            rules__error(c->L, &key_at, "'%s' has no value", name);
            continue;
        }
        slot s = {val, at[i], key_at, &t->keys[i], (char *)obj + t->keys[i].off};
        t->keys[i].set(c, &s);
    }
    for (int i = 0; i < t->n; i++)
        if (t->keys[i].required && !at[i].src)
            rules__error(c->L, map_at, "%s is missing '%s'", label ? label : t->what,
                         t->keys[i].name);
}

/* ---- scalar setters --------------------------------------------------------- */

/* Returns the text of a scalar value, or NULL after an error. */
static const char *scalar(rctx *c, const slot *s)
{
    const char *v = fy_node_is_scalar(s->v) ? fy_node_get_scalar0(s->v) : NULL;
    if (!v) {
        rules__error(c->L, &s->at, "'%s' must be a single value, not a %s", s->k->name,
                     fy_node_is_sequence(s->v) ? "list" : "mapping");
        return NULL;
    }
    return v;
}

/* copy_name checks an id (department, terminal, level, route) and copies it
 * into buf. Ids appear in task ids ("I17.../fire") and on the command line,
 * so they are kept to letters, digits, '_', '-' and '.'. */
static int copy_name(rctx *c, const rules_pos *at, const char *what, const char *v, char *buf,
                     size_t size)
{
    size_t n = strlen(v);
    buf[0] = '\0';
    if (n == 0 || n >= size) {
        rules__error(c->L, at, "%s '%s' must be 1 to %zu characters", what, v, size - 1);
        return -1;
    }
    if (strspn(v, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.") != n) {
        rules__error(c->L, at, "%s '%s' may only contain letters, digits, '_', '-' and '.'",
                     what, v);
        return -1;
    }
    memcpy(buf, v, n + 1);
    return 0;
}

static void set_name(rctx *c, const slot *s)
{
    const char *v = scalar(c, s);
    if (v) copy_name(c, &s->at, s->k->name, v, s->field, s->k->size);
}

/* Free text, such as a department's readable name. */
static void set_text(rctx *c, const slot *s)
{
    const char *v = scalar(c, s);
    if (!v) return;
    if (!*v || strlen(v) >= s->k->size)
        rules__error(c->L, &s->at, "'%s' must be 1 to %zu bytes", s->k->name, s->k->size - 1);
    else
        memcpy(s->field, v, strlen(v) + 1);
}

static void set_duration(rctx *c, const slot *s)
{
    const char *v = scalar(c, s), *why;
    if (v && rules__duration(v, s->field, &why) != 0)
        rules__error(c->L, &s->at, "bad duration '%s' for '%s': %s", v, s->k->name, why);
}

static void set_bool(rctx *c, const slot *s)
{
    const char *v = scalar(c, s);
    int *b = s->field;
    if (!v) return;
    if (strcmp(v, "true") == 0) *b = 1;
    else if (strcmp(v, "false") == 0) *b = 0;
    else rules__error(c->L, &s->at, "'%s' must be true or false, not '%s'", s->k->name, v);
}

/* A count of people: 1 to 1000000, digits only. */
static void set_count(rctx *c, const slot *s)
{
    const char *v = scalar(c, s);
    uint32_t n = 0;
    if (!v) return;
    size_t len = strlen(v);
    if (len == 0 || len > 7 || strspn(v, "0123456789") != len ||
        (n = (uint32_t)strtoul(v, NULL, 10)) == 0 || n > 1000000) {
        rules__error(c->L, &s->at, "'%s' must be a whole number from 1 to 1000000, not '%s'",
                     s->k->name, v);
        return;
    }
    *(uint32_t *)s->field = n;
}

/* ---- enum names ------------------------------------------------------------- */

static const char *const kind_names[LD_KIND_COUNT] = {NULL, "call", "sensor", "petition"};

/* The enum a kind's categories come from, and what its values are called. */
static const ProtobufCEnumDescriptor *category_enum(int kind, const char **what)
{
    switch (kind) {
    case LD_KIND_CALL: *what = "call category"; return &linkd__v1__call_category__descriptor;
    case LD_KIND_SENSOR: *what = "sensor kind"; return &linkd__v1__sensor_kind__descriptor;
    case LD_KIND_PETITION:
        *what = "petition issue";
        return &linkd__v1__petition_issue__descriptor;
    default: *what = "category"; return NULL;
    }
}

/* unknown_enum reports <name> as not one of <d>'s short names, with the
 * closest name if there is one and the whole list. */
static void unknown_enum(rctx *c, const rules_pos *at, const ProtobufCEnumDescriptor *d,
                         const char *what, const char *name)
{
    const char *cands[64];
    size_t n = 0;
    char known[400];
    for (unsigned i = 0; i < d->n_values && n < 64; i++)
        if (d->values[i].value > 0) cands[n++] = ld_enum_name(d, d->values[i].value);
    ld_enum_list(d, known, sizeof known);
    const char *near = rules__suggest(name, cands, n);
    if (near)
        rules__error(c->L, at, "unknown %s '%s'; did you mean '%s'? (known: %s)", what, name,
                     near, known);
    else
        rules__error(c->L, at, "unknown %s '%s' (known: %s)", what, name, known);
}

static void set_priority(rctx *c, const slot *s)
{
    const char *v = scalar(c, s);
    if (v && ld_enum_parse(&linkd__v1__priority__descriptor, v, s->field) != 0)
        unknown_enum(c, &s->at, &linkd__v1__priority__descriptor, "priority", v);
}

static void set_kind(rctx *c, const slot *s)
{
    const char *v = scalar(c, s);
    int *kind = s->field;
    if (!v) return;
    for (int k = 1; k < LD_KIND_COUNT; k++)
        if (strcmp(v, kind_names[k]) == 0) {
            *kind = k;
            return;
        }
    const char *near = rules__suggest(v, kind_names + 1, LD_KIND_COUNT - 1);
    if (near)
        rules__error(c->L, &s->at, "unknown kind '%s'; did you mean '%s'? (known: call, "
                     "sensor, petition)", v, near);
    else
        rules__error(c->L, &s->at, "unknown kind '%s' (known: call, sensor, petition)", v);
}

/* ---- lists ------------------------------------------------------------------ */

/* Names with positions, resolved once the rest of the mapping is known. */
typedef struct name_list {
    int n;
    char v[MAX_NAMES][40];
    rules_pos at[MAX_NAMES];
} name_list;

/* each_item calls fn for every item of a list, or once for a lone scalar
 * where <scalar_ok> (so "category: fire" and "category: [fire, gas_leak]"
 * both read naturally). Stops after <max> items with an error. */
static void each_item(rctx *c, const slot *s, int scalar_ok, int max, const char *max_what,
                      void (*fn)(rctx *c, const slot *item, int i))
{
    if (scalar_ok && fy_node_is_scalar(s->v)) {
        fn(c, s, 0);
        return;
    }
    if (!fy_node_is_sequence(s->v)) {
        rules__error(c->L, &s->at, "'%s' must be a list%s", s->k->name,
                     scalar_ok ? " or a single name" : "");
        return;
    }
    void *it = NULL;
    struct fy_node *item;
    int i = 0;
    while ((item = fy_node_sequence_iterate(s->v, &it)) != NULL) {
        slot is = *s;
        is.v = item;
        is.at = pos_of(c, item, &s->at);
        if (i == max) {
            rules__error(c->L, &is.at, "too many %s: at most %d", max_what, max);
            return;
        }
        fn(c, &is, i++);
    }
}

static void add_name(rctx *c, const slot *s, int i)
{
    name_list *l = s->field;
    const char *v = scalar(c, s);
    (void)i; /* items with errors are left out, so l->n may lag behind */
    if (!v) return;
    if (strlen(v) >= sizeof l->v[0]) {
        rules__error(c->L, &s->at, "'%s' is not a known name (too long)", v);
        return;
    }
    memcpy(l->v[l->n], v, strlen(v) + 1);
    l->at[l->n++] = s->at;
}

static void set_names(rctx *c, const slot *s)
{
    each_item(c, s, 1, MAX_NAMES, "names", add_name);
}

static void add_priority(rctx *c, const slot *s, int i)
{
    const char *v = scalar(c, s);
    int p;
    if (!v) return;
    if (ld_enum_parse(&linkd__v1__priority__descriptor, v, &p) != 0)
        unknown_enum(c, &s->at, &linkd__v1__priority__descriptor, "priority", v);
    else
        *(uint32_t *)s->field |= 1u << p;
}

static void set_priorities(rctx *c, const slot *s)
{
    each_item(c, s, 1, 32, "priorities", add_priority);
}

/* ---- departments ------------------------------------------------------------ */

typedef struct level_b {
    char name[32];
    char terminal[48];
    uint64_t wait_ms;
} level_b;

enum { LV_LEVEL, LV_TERMINAL, LV_WAIT, LV_NKEYS };
static const key_def level_keys[LV_NKEYS] = {
    [LV_LEVEL] = {"level", set_name, FIELD(level_b, name), 1},
    [LV_TERMINAL] = {"terminal", set_name, FIELD(level_b, terminal), 1},
    [LV_WAIT] = {"wait", set_duration, FIELD(level_b, wait_ms), 1},
};
static const key_table level_table = {
    .what = "escalation level", .in = "in escalation level", .keys = level_keys, .n = LV_NKEYS,
};

typedef struct dept_b {
    char name[96];
    struct terminals_b {
        int n;
        char id[MAX_TERMINALS][48];
        rules_pos at[MAX_TERMINALS];
    } terms;
    struct levels_b {
        int n;
        level_b v[LD_MAX_LEVELS];
        rules_pos at[LD_MAX_LEVELS][LV_NKEYS];
        rules_pos item_at[LD_MAX_LEVELS];
    } levels;
} dept_b;

static void add_terminal(rctx *c, const slot *s, int i)
{
    struct terminals_b *t = s->field;
    const char *v = scalar(c, s);
    (void)i; /* items with errors are left out, so t->n may lag behind */
    if (v && copy_name(c, &s->at, "terminal id", v, t->id[t->n], sizeof t->id[t->n]) == 0)
        t->at[t->n++] = s->at;
}

/* An empty list is reported here, where it is known to be a list. */
static void need_items(rctx *c, const slot *s, const char *what)
{
    if (fy_node_is_sequence(s->v) && fy_node_sequence_item_count(s->v) == 0)
        rules__error(c->L, &s->at, "'%s' must list at least one %s", s->k->name, what);
}

static void set_terminals(rctx *c, const slot *s)
{
    need_items(c, s, "terminal");
    each_item(c, s, 0, MAX_TERMINALS, "terminals in one department", add_terminal);
}

static void add_level(rctx *c, const slot *s, int i)
{
    struct levels_b *l = s->field;
    l->item_at[i] = s->at;
    walk(c, s->v, &s->at, &level_table, &l->v[i], l->at[i], NULL);
    l->n = i + 1;
}

static void set_levels(rctx *c, const slot *s)
{
    need_items(c, s, "level");
    each_item(c, s, 0, LD_MAX_LEVELS, "escalation levels", add_level);
}

enum { DP_NAME, DP_TERMINALS, DP_ESCALATION, DP_NKEYS };
static const key_def dept_keys[DP_NKEYS] = {
    [DP_NAME] = {"name", set_text, FIELD(dept_b, name), 0},
    [DP_TERMINALS] = {"terminals", set_terminals, FIELD(dept_b, terms), 1},
    [DP_ESCALATION] = {"escalation", set_levels, FIELD(dept_b, levels), 1},
};
static const key_table dept_table = {
    .what = "department", .in = "in department", .keys = dept_keys, .n = DP_NKEYS,
};

/* Appends to the loader's arrays; 0, or -1 with L->nomem set. */
static int grow(rules_loader *L, void **a, size_t asz, void **b, size_t bsz, int n, int *cap)
{
    if (n < *cap) return 0;
    int ncap = *cap ? *cap * 2 : 16;
    void *na = realloc(*a, (size_t)ncap * asz);
    if (na) *a = na;
    void *nb = na ? realloc(*b, (size_t)ncap * bsz) : NULL;
    if (nb) *b = nb;
    if (!na || !nb) {
        L->nomem = 1;
        return -1;
    }
    *cap = ncap;
    return 0;
}

/* finish_dept checks what spans the department's keys (each level's terminal
 * is one of its terminals), then adds it and its terminals to the loader. */
static void finish_dept(rctx *c, const char *id, const rules_pos *id_at, dept_b *b,
                        const rules_pos at[DP_NKEYS])
{
    rules_loader *L = c->L;
    int first = L->nterms;

    for (int i = 0; i < b->terms.n; i++) {
        if (grow(L, (void **)&L->terms, sizeof *L->terms, (void **)&L->term_at,
                 sizeof *L->term_at, L->nterms, &L->cap_terms))
            return;
        ld_terminal_def *t = &L->terms[L->nterms];
        memcpy(t->id, b->terms.id[i], sizeof t->id);
        t->dept = L->ndepts;
        L->term_at[L->nterms++] = b->terms.at[i];
    }
    if (grow(L, (void **)&L->depts, sizeof *L->depts, (void **)&L->dept_at, sizeof *L->dept_at,
             L->ndepts, &L->cap_depts))
        return;
    ld_department *d = &L->depts[L->ndepts];
    memset(d, 0, sizeof *d);
    snprintf(d->id, sizeof d->id, "%s", id);
    snprintf(d->name, sizeof d->name, "%s", b->name[0] ? b->name : id);
    rules__where(id_at, d->where, sizeof d->where);

    for (int i = 0; i < b->levels.n; i++) {
        const level_b *lv = &b->levels.v[i];
        const rules_pos *lat = b->levels.at[i];
        ld_level *out = &d->levels[i];
        memcpy(out->name, lv->name, sizeof out->name);
        out->wait_ms = lv->wait_ms;
        out->terminal = -1;
        for (int j = 0; j < i; j++)
            if (lv->name[0] && strcmp(d->levels[j].name, lv->name) == 0)
                rules__error(L, &lat[LV_LEVEL], "level '%s' appears twice in %s's chain",
                             lv->name, id);
        /* Missing or bad, or no terminals to look in: reported already. */
        if (!lv->terminal[0] || !at[DP_TERMINALS].src) continue;
        for (int j = 0; j < b->terms.n; j++)
            if (strcmp(b->terms.id[j], lv->terminal) == 0) out->terminal = first + j;
        if (out->terminal < 0) {
            char known[256] = "";
            for (int j = 0; j < b->terms.n; j++) rules__join(known, sizeof known, b->terms.id[j]);
            rules__error(L, &lat[LV_TERMINAL], "terminal '%s' of level '%s' is not one of "
                         "%s's terminals (%s)", lv->terminal, lv->name, id,
                         known[0] ? known : "none");
        }
    }
    d->nlevels = b->levels.n;
    L->dept_at[L->ndepts++] = *id_at;
}

static void set_departments(rctx *c, const slot *s)
{
    if (!c->L->departments_at.src) c->L->departments_at = s->key_at;
    if (!fy_node_is_mapping(s->v)) {
        rules__error(c->L, &s->at, "'departments' must be a mapping from department id to "
                     "its definition");
        return;
    }
    void *it = NULL;
    struct fy_node_pair *p;
    while ((p = fy_node_mapping_iterate(s->v, &it)) != NULL) {
        struct fy_node *key = fy_node_pair_key(p), *val = fy_node_pair_value(p);
        rules_pos id_at = pos_of(c, key, &s->at);
        const char *v = key && fy_node_is_scalar(key) ? fy_node_get_scalar0(key) : NULL;
        char id[32];
        if (!v) {
            rules__error(c->L, &id_at, "a department id must be a plain name");
            continue;
        }
        if (copy_name(c, &id_at, "department id", v, id, sizeof id) != 0) continue;
        if (!val) {
            rules__error(c->L, &id_at, "department '%s' has no definition", id);
            continue;
        }
        dept_b b;
        rules_pos at[DP_NKEYS];
        char label[64];
        memset(&b, 0, sizeof b);
        snprintf(label, sizeof label, "department '%s'", id);
        rules_pos def_at = pos_of(c, val, &id_at);
        walk(c, val, &def_at, &dept_table, &b, at, label);
        finish_dept(c, id, &id_at, &b, at);
    }
}

/* ---- routes ----------------------------------------------------------------- */

enum { MT_KIND, MT_CATEGORY, MT_PRIORITY, MT_MIN_PEOPLE, MT_NKEYS };
typedef struct match_b {
    int kind;
    name_list categories;
    uint32_t priorities;
    uint32_t min_people;
    rules_pos at[MT_NKEYS];
} match_b;

static const key_def match_keys[MT_NKEYS] = {
    [MT_KIND] = {"kind", set_kind, FIELD(match_b, kind), 0},
    [MT_CATEGORY] = {"category", set_names, FIELD(match_b, categories), 0},
    [MT_PRIORITY] = {"priority", set_priorities, FIELD(match_b, priorities), 0},
    [MT_MIN_PEOPLE] = {"min_people", set_count, FIELD(match_b, min_people), 0},
};
static const key_table match_table = {
    .what = "match", .in = "in match", .keys = match_keys, .n = MT_NKEYS,
};

typedef struct dispatch_b {
    char dept[32];
    uint64_t leg_ms[LD_LEG_COUNT];
} dispatch_b;

enum { DS_DEPARTMENT, DS_ACK, DS_ARRIVE, DS_RESOLVE, DS_NKEYS };
static const key_def dispatch_keys[DS_NKEYS] = {
    [DS_DEPARTMENT] = {"department", set_name, FIELD(dispatch_b, dept), 1},
    [DS_ACK] = {"acknowledge", set_duration, FIELD(dispatch_b, leg_ms[LD_LEG_ACK]), 1},
    /* Optional: petitions and paperwork have no arrival. Left out, it takes
     * the resolve budget, so the engine sees three legs and the arrival
     * never fires before resolution would. */
    [DS_ARRIVE] = {"arrive", set_duration, FIELD(dispatch_b, leg_ms[LD_LEG_ARRIVE]), 0},
    [DS_RESOLVE] = {"resolve", set_duration, FIELD(dispatch_b, leg_ms[LD_LEG_RESOLVE]), 1},
};
static const key_table dispatch_table = {
    .what = "dispatch entry", .in = "in dispatch entry", .keys = dispatch_keys, .n = DS_NKEYS,
};

typedef struct route_b {
    char name[64];
    match_b match;
    int priority;
    int cont;
    struct dispatch_list {
        int n;
        dispatch_b v[LD_MAX_DISPATCH];
        rules_pos at[LD_MAX_DISPATCH][DS_NKEYS];
    } dispatch;
} route_b;

static void set_match(rctx *c, const slot *s)
{
    match_b *m = s->field;
    walk(c, s->v, &s->at, &match_table, m, m->at, NULL);
}

static void add_dispatch(rctx *c, const slot *s, int i)
{
    struct dispatch_list *l = s->field;
    walk(c, s->v, &s->at, &dispatch_table, &l->v[i], l->at[i], NULL);
    l->n = i + 1;
}

static void set_dispatch(rctx *c, const slot *s)
{
    need_items(c, s, "department");
    each_item(c, s, 0, LD_MAX_DISPATCH, "departments in one route's dispatch", add_dispatch);
}

enum { RT_NAME, RT_MATCH, RT_PRIORITY, RT_CONTINUE, RT_DISPATCH, RT_NKEYS };
static const key_def route_keys[RT_NKEYS] = {
    [RT_NAME] = {"name", set_name, FIELD(route_b, name), 1},
    [RT_MATCH] = {"match", set_match, FIELD(route_b, match), 0},
    [RT_PRIORITY] = {"priority", set_priority, FIELD(route_b, priority), 0},
    [RT_CONTINUE] = {"continue", set_bool, FIELD(route_b, cont), 0},
    [RT_DISPATCH] = {"dispatch", set_dispatch, FIELD(route_b, dispatch), 1},
};
static const key_table route_table = {
    .what = "route", .in = "in route", .keys = route_keys, .n = RT_NKEYS,
};

/* Turns the category names into bits of the route's kind's enum. */
static uint64_t compile_categories(rctx *c, const route_b *b)
{
    const name_list *l = &b->match.categories;
    const char *what;
    const ProtobufCEnumDescriptor *d = category_enum(b->match.kind, &what);
    uint64_t bits = 0;

    if (l->n && !d) {
        rules__error(c->L, &b->match.at[MT_CATEGORY], "'category' needs 'kind' in the same "
                     "match: categories are names of call categories, sensor kinds or "
                     "petition issues");
        return 0;
    }
    for (int i = 0; i < l->n; i++) {
        int v;
        if (ld_enum_parse(d, l->v[i], &v) == 0 && v < 64) {
            if (bits & (1ull << v))
                rules__warn(c->L, &l->at[i], "%s '%s' is listed twice", what, l->v[i]);
            bits |= 1ull << v;
            continue;
        }
        /* A name of another kind is a likelier slip than a typo: say so. */
        const char *other = NULL;
        for (int k = 1; k < LD_KIND_COUNT && !other; k++) {
            const ProtobufCEnumDescriptor *od = category_enum(k, &other);
            if (k == b->match.kind || ld_enum_parse(od, l->v[i], &v) != 0) other = NULL;
        }
        if (other) {
            char known[400];
            ld_enum_list(d, known, sizeof known);
            rules__error(c->L, &l->at[i], "'%s' is a %s, not a %s (known: %s)", l->v[i], other,
                         what, known);
        } else {
            unknown_enum(c, &l->at[i], d, what, l->v[i]);
        }
    }
    return bits;
}

/* check_legs: every budget counts from dispatch, so a later leg cannot have
 * less time than an earlier one. */
static void check_legs(rctx *c, const dispatch_b *d, const rules_pos at[DS_NKEYS])
{
    static const char *const names[LD_LEG_COUNT] = {"acknowledge", "arrive", "resolve"};
    uint64_t prev = 0;
    int prev_leg = -1;
    for (int leg = 0; leg < LD_LEG_COUNT; leg++) {
        uint64_t ms = d->leg_ms[leg];
        if (!ms || !at[DS_ACK + leg].src) continue; /* absent, bad or defaulted */
        if (ms < prev) {
            char a[32], b[32];
            ld_format_duration(ms, a, sizeof a);
            ld_format_duration(prev, b, sizeof b);
            rules__error(c->L, &at[DS_ACK + leg], "%s (%s) is shorter than %s (%s); every "
                         "budget counts from dispatch", names[leg], a, names[prev_leg], b);
        }
        prev = ms;
        prev_leg = leg;
    }
}

static void finish_route(rctx *c, const rules_pos *route_at, route_b *b,
                         const rules_pos at[RT_NKEYS])
{
    rules_loader *L = c->L;
    if (grow(L, (void **)&L->routes, sizeof *L->routes, (void **)&L->route_aux,
             sizeof *L->route_aux, L->nroutes, &L->cap_routes))
        return;
    ld_route *r = &L->routes[L->nroutes];
    rules_route_aux *x = &L->route_aux[L->nroutes];
    memset(r, 0, sizeof *r);
    memset(x, 0, sizeof *x);

    memcpy(r->name, b->name, sizeof r->name);
    rules__where(route_at, r->where, sizeof r->where);
    r->kind = b->match.kind;
    r->categories = compile_categories(c, b);
    r->priorities = b->match.priorities;
    r->min_people = b->match.min_people;
    r->priority = b->priority;
    r->cont = b->cont;
    for (int i = 0; i < b->dispatch.n; i++) {
        dispatch_b *d = &b->dispatch.v[i];
        const rules_pos *dat = b->dispatch.at[i];
        if (!dat[DS_ARRIVE].src) d->leg_ms[LD_LEG_ARRIVE] = d->leg_ms[LD_LEG_RESOLVE];
        check_legs(c, d, dat);
        /* A task is named by incident and department: one per department. */
        for (int j = 0; j < i; j++)
            if (d->dept[0] && strcmp(x->dept[j], d->dept) == 0) {
                rules__error(L, &dat[DS_DEPARTMENT], "department '%s' appears twice in this "
                             "route's dispatch", d->dept);
                break;
            }
        memcpy(x->dept[i], d->dept, sizeof x->dept[i]);
        x->dept_at[i] = dat[DS_DEPARTMENT];
        r->dispatch[i].dept = -1;
        memcpy(r->dispatch[i].leg_ms, d->leg_ms, sizeof d->leg_ms);
    }
    r->ndispatch = b->dispatch.n;
    x->at = *route_at;
    L->nroutes++;
}

static void set_routes(rctx *c, const slot *s)
{
    if (!fy_node_is_sequence(s->v)) {
        rules__error(c->L, &s->at, "'routes' must be a list of routes (each item starts "
                     "with '- name: ...')");
        return;
    }
    void *it = NULL;
    struct fy_node *item;
    while ((item = fy_node_sequence_iterate(s->v, &it)) != NULL) {
        route_b *b = calloc(1, sizeof *b); /* ~3 KB: keep it off the stack */
        rules_pos at[RT_NKEYS];
        if (!b) {
            c->L->nomem = 1;
            return;
        }
        rules_pos route_at = pos_of(c, item, &s->at);
        walk(c, item, &route_at, &route_table, b, at, NULL);
        finish_route(c, &route_at, b, at);
        free(b);
    }
}

/* ---- the file --------------------------------------------------------------- */

enum { TOP_DEPARTMENTS, TOP_ROUTES, TOP_NKEYS };
static const key_def top_keys[TOP_NKEYS] = {
    [TOP_DEPARTMENTS] = {"departments", set_departments, 0, 0, 0},
    [TOP_ROUTES] = {"routes", set_routes, 0, 0, 0},
};
static const key_table top_table = {
    .what = "a rule file", .in = "at the top level", .keys = top_keys, .n = TOP_NKEYS,
    .x_keys = 1,
};

void rules__read_tree(rules_loader *L, const rules_src *src, struct fy_node *root)
{
    rctx c = {L, src};
    rules_pos file_at = {src, 1, 1};
    rules_pos at[TOP_NKEYS];
    char unused;
    if (!root) return; /* an empty file, or only comments */
    /* Not a mapping: the file says nothing we can use, like an unparsable one. */
    if (!fy_node_is_mapping(root)) L->unread++;
    walk(&c, root, &file_at, &top_table, &unused, at, NULL);
}

/* ---- shared helpers --------------------------------------------------------- */

/* Optimal string alignment distance, capped: words longer than 63 bytes are
 * never typos we can help with. */
static int distance(const char *a, const char *b)
{
    size_t n = strlen(a), m = strlen(b);
    int d[64][64];
    if (n > 63 || m > 63) return 99;
    for (size_t i = 0; i <= n; i++) d[i][0] = (int)i;
    for (size_t j = 0; j <= m; j++) d[0][j] = (int)j;
    for (size_t i = 1; i <= n; i++)
        for (size_t j = 1; j <= m; j++) {
            int cost = a[i - 1] != b[j - 1];
            int v = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < v) v = d[i][j - 1] + 1;
            if (d[i - 1][j - 1] + cost < v) v = d[i - 1][j - 1] + cost;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
                d[i - 2][j - 2] + 1 < v)
                v = d[i - 2][j - 2] + 1;
            d[i][j] = v;
        }
    return d[n][m];
}

const char *rules__suggest(const char *word, const char *const *cands, size_t n)
{
    const char *best = NULL;
    int best_d = 99;
    /* Two edits, and fewer than half the word: "prioirty" -> "priority",
     * but "x" suggests nothing. */
    int limit = (int)strlen(word) / 2;
    if (limit > 2) limit = 2;
    for (size_t i = 0; i < n; i++) {
        if (!cands[i]) continue;
        int d = distance(word, cands[i]);
        if (d < best_d) best_d = d, best = cands[i];
    }
    return best_d <= limit ? best : NULL;
}

void rules__join(char *buf, size_t len, const char *name)
{
    size_t off = strlen(buf), n = strlen(name);
    const char *sep = off ? ", " : "";
    if (off >= 5 && strcmp(buf + off - 5, ", ...") == 0) return; /* already full */
    /* Keep room for ", ..." after this name in case the next does not fit. */
    if (off + strlen(sep) + n + 5 < len)
        snprintf(buf + off, len - off, "%s%s", sep, name);
    else if (off + 5 < len)
        snprintf(buf + off, len - off, ", ...");
}
