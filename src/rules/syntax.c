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

#define MAX_KEYS 24       /* per table */
#define MAX_TERMINALS 64  /* per department */
#define MAX_NAMES 64      /* categories in one match: they become bits of a uint64 */
#define MAX_VALUES 256    /* districts, grids or offices in one match */
#define MAX_DISTRICTS 4096 /* districts in one area list */
#define MAX_DATES 1024    /* holidays or make-up days in one list */
#define DAY_MS (24ull * 3600 * 1000)

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
    char known[400] = "";
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
        char known[400] = "";
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
    char v[MAX_VALUES][68];
    rules_pos at[MAX_VALUES];
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

/* ---- escalation ladders: reminders and sign-off -----------------------------
 * reminders: { acknowledge: [50%, 80%], resolve: [80%] }   department or dispatch entry
 * sign_off: { departments: [emergency_mgmt, fire, police], within: 2m }   route */

typedef struct reminders_b {
    ld_reminders r;
    uint8_t given;          /* bit per leg written */
} reminders_b;

static const char *const reminder_legs[LD_LEG_COUNT] = {"acknowledge", "arrive", "resolve",
                                                        "feedback"};

/* One percentage, "50%": a whole number from 1 to 99 and a percent sign. */
static int read_percent(rctx *c, struct fy_node *n, const rules_pos *at, const char *leg)
{
    const char *v = n && fy_node_is_scalar(n) ? fy_node_get_scalar0(n) : NULL;
    size_t len = v ? strlen(v) : 0;
    unsigned long p = 0;
    if (len >= 2 && len <= 3 && v[len - 1] == '%' && strspn(v, "0123456789") == len - 1)
        p = strtoul(v, NULL, 10);
    if (p < 1 || p > 99) {
        rules__error(c->L, at, "bad reminder '%s' for '%s': write a share of the wait from "
                     "1%% to 99%%, like 50%%", v ? v : "(a list or mapping)", leg);
        return -1;
    }
    return (int)p;
}

/* read_leg_reminders reads one leg's list ("[50%, 80%]", a lone "80%", or
 * "[]" for none) into <b>. */
static void read_leg_reminders(rctx *c, struct fy_node *v, const rules_pos *at, int leg,
                               reminders_b *b)
{
    const char *name = reminder_legs[leg];
    b->given |= (uint8_t)(1u << leg);
    if (fy_node_is_scalar(v)) {
        int p = read_percent(c, v, at, name);
        if (p > 0) b->r.pct[leg][b->r.n[leg]++] = (uint8_t)p;
        return;
    }
    if (!fy_node_is_sequence(v)) {
        rules__error(c->L, at, "reminders for '%s' must be a list of percentages, like "
                     "[50%%, 80%%]", name);
        return;
    }
    void *it = NULL;
    struct fy_node *item;
    while ((item = fy_node_sequence_iterate(v, &it)) != NULL) {
        rules_pos iat = pos_of(c, item, at);
        int p = read_percent(c, item, &iat, name);
        if (p < 0) continue;
        int n = b->r.n[leg];
        if (n == LD_MAX_REMINDERS) {
            rules__error(c->L, &iat, "too many reminders for '%s': at most %d", name,
                         LD_MAX_REMINDERS);
            return;
        }
        if (n && p <= b->r.pct[leg][n - 1]) {
            rules__error(c->L, &iat, "reminder %d%% for '%s' must come after %d%%: list them "
                         "from the earliest", p, name, b->r.pct[leg][n - 1]);
            continue;
        }
        b->r.pct[leg][b->r.n[leg]++] = (uint8_t)p;
    }
}

static void set_reminders(rctx *c, const slot *s)
{
    reminders_b *b = s->field;
    if (!fy_node_is_mapping(s->v)) {
        rules__error(c->L, &s->at, "'reminders' must be a mapping from leg (acknowledge, "
                     "arrive, feedback, resolve) to percentages of its wait, like "
                     "{ acknowledge: [50%%, 80%%] }");
        return;
    }
    void *it = NULL;
    struct fy_node_pair *p;
    while ((p = fy_node_mapping_iterate(s->v, &it)) != NULL) {
        struct fy_node *key = fy_node_pair_key(p), *val = fy_node_pair_value(p);
        rules_pos kat = pos_of(c, key, &s->at), vat = pos_of(c, val, &kat);
        const char *k = key && fy_node_is_scalar(key) ? fy_node_get_scalar0(key) : "";
        int leg = 0;
        while (leg < LD_LEG_COUNT && strcmp(reminder_legs[leg], k) != 0) leg++;
        if (leg == LD_LEG_COUNT) {
            const char *near = rules__suggest(k, reminder_legs, LD_LEG_COUNT);
            rules__error(c->L, &kat, "unknown leg '%s' in reminders; %s%s%s", k,
                         near ? "did you mean '" : "", near ? near : "known: acknowledge, "
                         "arrive, feedback, resolve", near ? "'?" : "");
            continue;
        }
        if (b->given & (1u << leg)) {
            rules__error(c->L, &kat, "reminders for '%s' are given twice", k);
            continue;
        }
        if (!val) {
            rules__error(c->L, &kat, "'%s' has no value", k);
            continue;
        }
        read_leg_reminders(c, val, &vat, leg, b);
    }
}

typedef struct sign_off_b {
    name_list depts;
    uint64_t within_ms;
    rules_pos at[2];
} sign_off_b;

enum { SO_DEPARTMENTS, SO_WITHIN, SO_NKEYS };
static const key_def sign_off_keys[SO_NKEYS] = {
    [SO_DEPARTMENTS] = {"departments", set_names, FIELD(sign_off_b, depts), 1},
    [SO_WITHIN] = {"within", set_duration, FIELD(sign_off_b, within_ms), 0},
};
static const key_table sign_off_table = {
    .what = "sign_off", .in = "in sign_off", .keys = sign_off_keys, .n = SO_NKEYS,
};

static void set_sign_off(rctx *c, const slot *s)
{
    sign_off_b *b = s->field;
    walk(c, s->v, &s->at, &sign_off_table, b, b->at, NULL);
}

/* compile_sign_off turns the route's sign_off department names into bits of
 * its dispatch entries: a department must be dispatched by this route to
 * sign for it. <names> are the dispatch entries' departments. */
static void compile_sign_off(rctx *c, const sign_off_b *b, const rules_pos *key_at,
                             const char names[][32], int n, ld_route *r)
{
    const char *cands[LD_MAX_DISPATCH];
    char known[300] = "";
    for (int i = 0; i < n; i++) {
        cands[i] = names[i];
        rules__join(known, sizeof known, names[i]);
    }
    int count = 0;
    for (int i = 0; i < b->depts.n; i++) {
        const char *v = b->depts.v[i];
        int j = 0;
        while (j < n && strcmp(names[j], v) != 0) j++;
        if (j == n) {
            const char *near = rules__suggest(v, cands, (size_t)n);
            rules__error(c->L, &b->depts.at[i], "department '%s' must sign off but this "
                         "route does not dispatch it; %s%s%s (dispatched: %s)", v,
                         near ? "did you mean '" : "", near ? near : "add it to 'dispatch'",
                         near ? "'?" : "", known[0] ? known : "none");
            continue;
        }
        if (r->sign_off & (1u << j)) {
            rules__error(c->L, &b->depts.at[i], "department '%s' is listed twice in sign_off", v);
            continue;
        }
        r->sign_off |= (uint8_t)(1u << j);
        count++;
    }
    if (b->depts.n && count == b->depts.n && count < 2)
        rules__error(c->L, b->at[SO_DEPARTMENTS].src ? &b->at[SO_DEPARTMENTS] : key_at,
                     "sign_off needs at least two departments: one department's "
                     "acknowledgement is its own task's");
    r->sign_off_ms = b->within_ms;
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
    char drill[48];
    reminders_b reminders;
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

enum { DP_NAME, DP_TERMINALS, DP_ESCALATION, DP_DRILL, DP_REMINDERS, DP_NKEYS };
static const key_def dept_keys[DP_NKEYS] = {
    [DP_NAME] = {"name", set_text, FIELD(dept_b, name), 0},
    [DP_TERMINALS] = {"terminals", set_terminals, FIELD(dept_b, terms), 1},
    [DP_ESCALATION] = {"escalation", set_levels, FIELD(dept_b, levels), 1},
    /* The terminal exercise and test events go to; not in the chain. */
    [DP_DRILL] = {"drill_terminal", set_name, FIELD(dept_b, drill), 0},
    /* Reminders before a deadline, for every task of the department. */
    [DP_REMINDERS] = {"reminders", set_reminders, FIELD(dept_b, reminders), 0},
};
static const key_table dept_table = {
    .what = "department", .in = "in department", .keys = dept_keys, .n = DP_NKEYS,
};

int rules__grow(rules_loader *L, void **a, size_t size, int n, int *cap)
{
    if (n < *cap) return 0;
    int ncap = *cap ? *cap * 2 : 16;
    void *na = realloc(*a, (size_t)ncap * size);
    if (!na) {
        L->nomem = 1;
        return -1;
    }
    *a = na;
    *cap = ncap;
    return 0;
}

int rules__grow_pair(rules_loader *L, void **a, size_t asz, void **b, size_t bsz, int n, int *cap)
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
        if (rules__grow_pair(L, (void **)&L->terms, sizeof *L->terms, (void **)&L->term_at,
                 sizeof *L->term_at, L->nterms, &L->cap_terms))
            return;
        ld_terminal_def *t = &L->terms[L->nterms];
        memset(t, 0, sizeof *t); /* rules__grow_pair() does not zero: drill and has_key start off */
        memcpy(t->id, b->terms.id[i], sizeof t->id);
        t->dept = L->ndepts;
        L->term_at[L->nterms++] = b->terms.at[i];
    }
    if (rules__grow_pair(L, (void **)&L->depts, sizeof *L->depts, (void **)&L->dept_at, sizeof *L->dept_at,
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
    d->reminders = b->reminders.r;
    d->roster = -1;
    d->drill_terminal = -1;
    if (b->drill[0]) {
        int found = -1, in_chain = -1;
        for (int j = 0; j < b->terms.n; j++)
            if (strcmp(b->terms.id[j], b->drill) == 0) found = first + j;
        for (int i = 0; i < d->nlevels && found >= 0; i++)
            if (d->levels[i].terminal == found) in_chain = i;
        if (found < 0 && at[DP_TERMINALS].src)
            rules__error(L, &at[DP_DRILL], "drill terminal '%s' is not one of %s's terminals",
                         b->drill, id);
        else if (in_chain >= 0)
            rules__error(L, &at[DP_DRILL], "drill terminal '%s' is also level '%s' of the "
                         "chain; drills must not reach the people on duty", b->drill,
                         d->levels[in_chain].name);
        else if (found >= 0) {
            d->drill_terminal = found;
            L->terms[found].drill = 1;
        }
    }
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

/* ---- match conditions ------------------------------------------------------- */

static const char *const area_names[LD_AREA_COUNT] = {"urban", "suburban", "rural"};
static const char *const day_names[7] = {"mon", "tue", "wed", "thu", "fri", "sat", "sun"};

static int area_index(const char *v)
{
    for (int a = 0; a < LD_AREA_COUNT; a++)
        if (strcmp(v, area_names[a]) == 0) return a;
    return -1;
}

static void unknown_area(rctx *c, const rules_pos *at, const char *v)
{
    const char *near = rules__suggest(v, area_names, LD_AREA_COUNT);
    rules__error(c->L, at, "unknown area type '%s'%s%s%s (known: urban, suburban, rural)", v,
                 near ? "; did you mean '" : "", near ? near : "", near ? "'?" : "");
}

static void add_area(rctx *c, const slot *s, int i)
{
    const char *v = scalar(c, s);
    int a;
    (void)i;
    if (!v) return;
    if ((a = area_index(v)) < 0) unknown_area(c, &s->at, v);
    else *(uint8_t *)s->field |= (uint8_t)(1u << a);
}

static void set_areas(rctx *c, const slot *s)
{
    each_item(c, s, 1, LD_AREA_COUNT, "area types", add_area);
}

static void add_status(rctx *c, const slot *s, int i)
{
    const char *v = scalar(c, s);
    int st;
    (void)i;
    if (!v) return;
    if (ld_enum_parse(&linkd__v1__status__descriptor, v, &st) != 0 || st >= 8)
        unknown_enum(c, &s->at, &linkd__v1__status__descriptor, "status", v);
    else
        *(uint8_t *)s->field |= (uint8_t)(1u << st);
}

static void set_statuses(rctx *c, const slot *s)
{
    each_item(c, s, 1, 8, "statuses", add_status);
}

/* A day name, or a span of them ("mon-fri", "sat-sun"). */
static void add_day(rctx *c, const slot *s, int i)
{
    const char *v = scalar(c, s);
    uint8_t *days = s->field;
    (void)i;
    if (!v) return;
    int a = -1, b = -1;
    for (int d = 0; d < 7; d++) {
        if (strncmp(v, day_names[d], 3) == 0) a = d;
        if (strlen(v) == 7 && v[3] == '-' && strcmp(v + 4, day_names[d]) == 0) b = d;
    }
    if (a >= 0 && strlen(v) == 3) b = a;
    if (a < 0 || b < 0) {
        const char *near = rules__suggest(v, day_names, 7);
        rules__error(c->L, &s->at, "unknown day '%s'%s%s%s (use mon, tue, wed, thu, fri, sat, "
                     "sun, or a span such as mon-fri)", v, near ? "; did you mean '" : "",
                     near ? near : "", near ? "'?" : "");
        return;
    }
    for (int d = a;; d = (d + 1) % 7) {
        *days |= (uint8_t)(1u << d);
        if (d == b) break;
    }
}

static void set_days(rctx *c, const slot *s)
{
    each_item(c, s, 1, 7, "days", add_day);
}

/* "HH:MM" -> minutes; -1 if malformed. "24:00" is the end of the day. */
static int clock_minutes(const char *p, size_t n)
{
    if (n != 5 || p[2] != ':') return -1;
    for (int i = 0; i < 5; i++)
        if (i != 2 && (p[i] < '0' || p[i] > '9')) return -1;
    int h = (p[0] - '0') * 10 + (p[1] - '0'), m = (p[3] - '0') * 10 + (p[4] - '0');
    if (m > 59 || h > 24 || (h == 24 && m)) return -1;
    return h * 60 + m;
}

typedef struct time_b {
    uint16_t from, to;
} time_b;

/* "22:00-06:00": from (included) to (excluded), local time; may wrap midnight. */
static void set_time(rctx *c, const slot *s)
{
    const char *v = scalar(c, s);
    time_b *t = s->field;
    if (!v) return;
    const char *dash = strchr(v, '-');
    int a = dash ? clock_minutes(v, (size_t)(dash - v)) : -1;
    int b = dash ? clock_minutes(dash + 1, strlen(dash + 1)) : -1;
    if (a < 0 || b < 0 || a == 24 * 60 || a == b) {
        rules__error(c->L, &s->at, "bad time of day '%s': use HH:MM-HH:MM, local time, from "
                     "(included) to (excluded), e.g. 08:00-18:00 or 22:00-06:00", v);
        return;
    }
    t->from = (uint16_t)a;
    t->to = (uint16_t)(b % (24 * 60));
    if (t->from == t->to) t->to = (uint16_t)(t->to + 24 * 60); /* 00:00-24:00: all day */
}

typedef struct num_b {
    int set;
    uint8_t op;
    double a, b;
} num_b;

/* A number, or a comparison: "5", "= 5", "!= 0", "< 3", "<= 3", "> 2.5",
 * ">= 5", or an inclusive range "5..20". */
static int parse_number(const char *p, double *v, const char **end)
{
    char *e;
    while (*p == ' ') p++;
    if (!*p || (*p != '-' && *p != '+' && *p != '.' && (*p < '0' || *p > '9'))) return -1;
    *v = strtod(p, &e);
    if (e == p || *v != *v || *v > 1e15 || *v < -1e15) return -1;
    while (*e == ' ') e++;
    *end = e;
    return 0;
}

static void set_num(rctx *c, const slot *s)
{
    const char *v = scalar(c, s), *p, *end;
    num_b *n = s->field;
    static const struct { const char *tok; uint8_t op; } ops[] = {
        {"!=", LD_OP_NE}, {"<=", LD_OP_LE}, {">=", LD_OP_GE}, {"==", LD_OP_EQ},
        {"=", LD_OP_EQ},  {"<", LD_OP_LT},  {">", LD_OP_GT},
    };
    if (!v) return;
    p = v;
    while (*p == ' ') p++;
    n->op = LD_OP_EQ;
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++)
        if (strncmp(p, ops[i].tok, strlen(ops[i].tok)) == 0) {
            n->op = ops[i].op;
            p += strlen(ops[i].tok);
            break;
        }
    if (parse_number(p, &n->a, &end) != 0) goto bad;
    if (n->op == LD_OP_EQ && p == v && strncmp(end, "..", 2) == 0) {
        n->op = LD_OP_RANGE;
        if (parse_number(end + 2, &n->b, &end) != 0 || n->b < n->a) goto bad;
    }
    if (*end) goto bad;
    n->set = 1;
    return;
bad:
    rules__error(c->L, &s->at, "bad condition '%s' for '%s': use a number, a comparison "
                 "(= != < <= > >= and a number, e.g. \">= 5\") or a range (e.g. 5..20)", v,
                 s->k->name);
}

/* ---- routes ----------------------------------------------------------------- */

enum {
    MT_KIND, MT_CATEGORY, MT_PRIORITY, MT_MIN_PEOPLE, MT_STATUS, MT_DISTRICT, MT_GRID,
    MT_OFFICE, MT_AREA, MT_PEOPLE, MT_VALUE, MT_THRESHOLD, MT_RATIO, MT_OVER, MT_REPEAT,
    MT_BYPASS, MT_TIME, MT_DAYS, MT_WORKDAY, MT_NKEYS
};
typedef struct match_b {
    int kind;
    name_list categories;
    uint32_t priorities;
    uint32_t min_people;
    uint8_t statuses, areas, days;
    int bypass, workday;
    time_b time;
    name_list strs[LD_STR_COUNT];
    num_b num[LD_NUM_COUNT];
    rules_pos at[MT_NKEYS];
} match_b;

static void set_values(rctx *c, const slot *s)
{
    each_item(c, s, 1, MAX_VALUES, "values", add_name);
}

static const key_def match_keys[MT_NKEYS] = {
    [MT_KIND] = {"kind", set_kind, FIELD(match_b, kind), 0},
    [MT_CATEGORY] = {"category", set_names, FIELD(match_b, categories), 0},
    [MT_PRIORITY] = {"priority", set_priorities, FIELD(match_b, priorities), 0},
    [MT_MIN_PEOPLE] = {"min_people", set_count, FIELD(match_b, min_people), 0},
    [MT_STATUS] = {"status", set_statuses, FIELD(match_b, statuses), 0},
    [MT_DISTRICT] = {"district", set_values, FIELD(match_b, strs[LD_STR_DISTRICT]), 0},
    [MT_GRID] = {"grid", set_values, FIELD(match_b, strs[LD_STR_GRID]), 0},
    [MT_OFFICE] = {"office", set_values, FIELD(match_b, strs[LD_STR_OFFICE]), 0},
    [MT_AREA] = {"area", set_areas, FIELD(match_b, areas), 0},
    [MT_PEOPLE] = {"people", set_num, FIELD(match_b, num[LD_NUM_PEOPLE]), 0},
    [MT_VALUE] = {"value", set_num, FIELD(match_b, num[LD_NUM_VALUE]), 0},
    [MT_THRESHOLD] = {"threshold", set_num, FIELD(match_b, num[LD_NUM_THRESHOLD]), 0},
    [MT_RATIO] = {"ratio", set_num, FIELD(match_b, num[LD_NUM_RATIO]), 0},
    [MT_OVER] = {"over", set_num, FIELD(match_b, num[LD_NUM_OVER]), 0},
    [MT_REPEAT] = {"repeat", set_num, FIELD(match_b, num[LD_NUM_REPEAT]), 0},
    [MT_BYPASS] = {"bypass", set_bool, FIELD(match_b, bypass), 0},
    [MT_TIME] = {"time", set_time, FIELD(match_b, time), 0},
    [MT_DAYS] = {"days", set_days, FIELD(match_b, days), 0},
    [MT_WORKDAY] = {"workday", set_bool, FIELD(match_b, workday), 0},
};
static const key_table match_table = {
    .what = "match", .in = "in match", .keys = match_keys, .n = MT_NKEYS,
};

/* A leg's budget: one duration, or one per area type. */
typedef struct budget_b {
    uint64_t ms[LD_AREA_COUNT];
    uint8_t given;          /* bit per area */
    uint8_t workdays;       /* bit per area: counted in working days */
} budget_b;

typedef struct dispatch_b {
    char dept[32];
    budget_b leg[LD_LEG_COUNT];
    reminders_b reminders;
} dispatch_b;

/* One budget: a duration, or "<N>wd", N working days. */
static void budget_one(rctx *c, const rules_pos *at, const char *key, const char *v,
                       budget_b *b, int area)
{
    const char *why;
    size_t n = strlen(v);
    if (n > 2 && n <= 6 && strcmp(v + n - 2, "wd") == 0 && strspn(v, "0123456789") == n - 2) {
        unsigned long days = strtoul(v, NULL, 10);
        if (days == 0 || days > 3650) {
            rules__error(c->L, at, "bad duration '%s' for '%s': working days must be 1 to 3650",
                         v, key);
            return;
        }
        b->ms[area] = days * DAY_MS;
        b->workdays |= (uint8_t)(1u << area);
    } else if (rules__duration(v, &b->ms[area], &why) != 0) {
        rules__error(c->L, at, "bad duration '%s' for '%s': %s", v, key, why);
        return;
    }
    b->given |= (uint8_t)(1u << area);
}

static void set_budget(rctx *c, const slot *s)
{
    budget_b *b = s->field;
    if (fy_node_is_scalar(s->v)) {
        const char *v = fy_node_get_scalar0(s->v);
        if (!v) return;
        budget_one(c, &s->at, s->k->name, v, b, 0);
        for (int a = 1; a < LD_AREA_COUNT && (b->given & 1); a++) {
            b->ms[a] = b->ms[0];
            b->given |= (uint8_t)(1u << a);
            if (b->workdays & 1) b->workdays |= (uint8_t)(1u << a);
        }
        return;
    }
    if (!fy_node_is_mapping(s->v)) {
        rules__error(c->L, &s->at, "'%s' must be a duration or a mapping from area type "
                     "(urban, suburban, rural) to a duration", s->k->name);
        return;
    }
    void *it = NULL;
    struct fy_node_pair *p;
    uint8_t seen = 0;
    while ((p = fy_node_mapping_iterate(s->v, &it)) != NULL) {
        struct fy_node *key = fy_node_pair_key(p), *val = fy_node_pair_value(p);
        rules_pos kat = pos_of(c, key, &s->at), vat = pos_of(c, val, &kat);
        const char *k = key && fy_node_is_scalar(key) ? fy_node_get_scalar0(key) : NULL;
        const char *v = val && fy_node_is_scalar(val) ? fy_node_get_scalar0(val) : NULL;
        int a = k ? area_index(k) : -1;
        if (a < 0) {
            unknown_area(c, &kat, k ? k : "?");
            continue;
        }
        if (!v || !*v) {
            rules__error(c->L, &kat, "'%s' needs a duration", k);
            continue;
        }
        seen |= (uint8_t)(1u << a);
        budget_one(c, &vat, s->k->name, v, b, a);
    }
    if (!seen) {
        rules__error(c->L, &s->at, "'%s' names no area type (urban, suburban, rural)",
                     s->k->name);
        return;
    }
    /* An area not given takes the figure of the nearest denser one given (or
     * of the densest given): rural falls back to suburban, then urban. */
    for (int a = 0; a < LD_AREA_COUNT; a++) {
        if (b->given & (1u << a)) continue;
        int from = -1;
        for (int d = a - 1; d >= 0 && from < 0; d--)
            if (b->given & (1u << d)) from = d;
        for (int d = a + 1; d < LD_AREA_COUNT && from < 0; d++)
            if (b->given & (1u << d)) from = d;
        if (from < 0) return; /* every entry was bad: reported */
        b->ms[a] = b->ms[from];
        if (b->workdays & (1u << from)) b->workdays |= (uint8_t)(1u << a);
    }
    b->given = (uint8_t)((1u << LD_AREA_COUNT) - 1);
}

enum { DS_DEPARTMENT, DS_ACK, DS_ARRIVE, DS_RESOLVE, DS_FEEDBACK, DS_REMINDERS, DS_NKEYS };
static const key_def dispatch_keys[DS_NKEYS] = {
    [DS_DEPARTMENT] = {"department", set_name, FIELD(dispatch_b, dept), 1},
    [DS_ACK] = {"acknowledge", set_budget, FIELD(dispatch_b, leg[LD_LEG_ACK]), 1},
    /* Optional: petitions and paperwork have no arrival. Left out, it takes
     * the resolve budget, so the engine sees three legs and the arrival
     * never fires before resolution would. */
    [DS_ARRIVE] = {"arrive", set_budget, FIELD(dispatch_b, leg[LD_LEG_ARRIVE]), 0},
    [DS_RESOLVE] = {"resolve", set_budget, FIELD(dispatch_b, leg[LD_LEG_RESOLVE]), 1},
    /* Optional: a report back (反馈) between arrival and resolution. */
    [DS_FEEDBACK] = {"feedback", set_budget, FIELD(dispatch_b, leg[LD_LEG_FEEDBACK]), 0},
    /* Per leg, in place of the department's reminders. */
    [DS_REMINDERS] = {"reminders", set_reminders, FIELD(dispatch_b, reminders), 0},
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
    sign_off_b sign_off;
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

enum { RT_NAME, RT_MATCH, RT_PRIORITY, RT_CONTINUE, RT_DISPATCH, RT_SIGN_OFF, RT_NKEYS };
static const key_def route_keys[RT_NKEYS] = {
    [RT_NAME] = {"name", set_name, FIELD(route_b, name), 1},
    [RT_MATCH] = {"match", set_match, FIELD(route_b, match), 0},
    [RT_PRIORITY] = {"priority", set_priority, FIELD(route_b, priority), 0},
    [RT_CONTINUE] = {"continue", set_bool, FIELD(route_b, cont), 0},
    [RT_DISPATCH] = {"dispatch", set_dispatch, FIELD(route_b, dispatch), 1},
    /* Multi-acknowledgement: departments that must all sign for the incident. */
    [RT_SIGN_OFF] = {"sign_off", set_sign_off, FIELD(route_b, sign_off), 0},
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

/* Which kinds of event carry each field a match can test: a condition on a
 * field the route's kind never has could never hold. Bit per ld_kind. */
#define KB(k) (1u << (k))
static unsigned field_kinds(int key)
{
    switch (key) {
    case MT_PEOPLE:
    case MT_MIN_PEOPLE: return KB(LD_KIND_CALL) | KB(LD_KIND_PETITION);
    case MT_VALUE:
    case MT_THRESHOLD:
    case MT_RATIO:
    case MT_OVER: return KB(LD_KIND_SENSOR);
    case MT_REPEAT:
    case MT_BYPASS:
    case MT_OFFICE: return KB(LD_KIND_PETITION);
    default: return ~0u;
    }
}

static const char *const kind_plural[LD_KIND_COUNT] = {"events", "calls", "sensor alarms",
                                                       "petitions"};

/* compile_match turns what walk read into the route's conditions. */
static void compile_match(rctx *c, route_b *b, ld_route *r)
{
    rules_loader *L = c->L;
    match_b *m = &b->match;
    r->kind = m->kind;
    r->categories = compile_categories(c, b);
    r->priorities = m->priorities;
    r->min_people = m->min_people;
    r->statuses = m->statuses;
    r->areas = m->areas;
    r->days = m->days;
    r->workday = (int8_t)(m->at[MT_WORKDAY].src ? m->workday : -1);
    r->bypass = (int8_t)(m->at[MT_BYPASS].src ? m->bypass : -1);
    r->from_min = m->time.from;
    r->to_min = m->time.to;
    if (m->kind != LD_KIND_ANY)
        for (int k = 0; k < MT_NKEYS; k++)
            if (m->at[k].src && !(field_kinds(k) & KB(m->kind))) {
                char has[64] = "";
                for (int j = 1; j < LD_KIND_COUNT; j++)
                    if (field_kinds(k) & KB(j)) rules__join(has, sizeof has, kind_plural[j]);
                rules__error(L, &m->at[k], "'%s' is a field of %s only; this route matches "
                             "kind '%s', so it could never match", match_keys[k].name, has,
                             kind_names[m->kind]);
            }
    for (int f = 0; f < LD_NUM_COUNT; f++) {
        if (!m->num[f].set) continue;
        if (r->nnum == LD_MAX_NUM) {
            rules__error(L, &m->at[MT_PEOPLE + f], "at most %d numeric conditions in one "
                         "match", LD_MAX_NUM);
            break;
        }
        r->num[r->nnum++] = (ld_num_cond){(uint8_t)f, m->num[f].op, m->num[f].a, m->num[f].b};
    }
    for (int f = 0; f < LD_STR_COUNT; f++) {
        const name_list *l = &m->strs[f];
        if (!l->n) continue;
        L->str_used |= 1u << f;
        r->sets[f].off = (uint32_t)L->nset_ids;
        for (int i = 0; i < l->n; i++) {
            int id = rules__intern(L, l->v[i]);
            if (id < 0) return;
            /* Insert sorted, once. (No pointer into the array before it exists:
             * NULL + 0 is undefined, and clang's sanitizer says so.) */
            uint32_t *v = L->set_ids ? L->set_ids + r->sets[f].off : NULL;
            uint32_t n = r->sets[f].n, j = 0;
            while (j < n && v[j] < (uint32_t)id) j++;
            if (j < n && v[j] == (uint32_t)id) {
                rules__warn(L, &l->at[i], "'%s' is listed twice", l->v[i]);
                continue;
            }
            if (L->nset_ids == L->cap_set_ids) {
                size_t ncap = L->cap_set_ids ? L->cap_set_ids * 2 : 256;
                uint32_t *nv = realloc(L->set_ids, ncap * sizeof *nv);
                if (!nv) {
                    L->nomem = 1;
                    return;
                }
                L->set_ids = nv;
                L->cap_set_ids = ncap;
                v = L->set_ids + r->sets[f].off;
            }
            memmove(v + j + 1, v + j, (n - j) * sizeof *v);
            v[j] = (uint32_t)id;
            r->sets[f].n++;
            L->nset_ids++;
        }
    }
}

/* check_legs: every budget counts from dispatch, so a later leg cannot have
 * less time than an earlier one, in any area. */
static void check_legs(rctx *c, const dispatch_b *d, const rules_pos at[DS_NKEYS])
{
    static const char *const names[LD_LEG_COUNT] = {"acknowledge", "arrive", "resolve",
                                                    "feedback"};
    static const int order[LD_LEG_COUNT] = {LD_LEG_ACK, LD_LEG_ARRIVE, LD_LEG_FEEDBACK,
                                            LD_LEG_RESOLVE};
    static const int key_of[LD_LEG_COUNT] = {DS_ACK, DS_ARRIVE, DS_RESOLVE, DS_FEEDBACK};
    for (int a = 0; a < LD_AREA_COUNT; a++) {
        uint64_t prev = 0;
        int prev_leg = -1;
        for (int i = 0; i < LD_LEG_COUNT; i++) {
            int leg = order[i];
            uint64_t ms = d->leg[leg].ms[a];
            if (!ms || !at[key_of[leg]].src) continue; /* absent, bad or defaulted */
            if (ms < prev) {
                char x[32], y[32];
                ld_format_duration(ms, x, sizeof x);
                ld_format_duration(prev, y, sizeof y);
                rules__error(c->L, &at[key_of[leg]], "%s (%s%s%s) is shorter than %s (%s); "
                             "every budget counts from dispatch", names[leg], x,
                             a ? " in " : "", a ? area_names[a] : "", names[prev_leg], y);
                return;
            }
            prev = ms;
            prev_leg = leg;
        }
    }
}

static void compile_dispatch(rctx *c, route_b *b, ld_route *r, rules_route_aux *x);

static void finish_route(rctx *c, const rules_pos *route_at, route_b *b,
                         const rules_pos at[RT_NKEYS])
{
    rules_loader *L = c->L;
    if (rules__grow_pair(L, (void **)&L->routes, sizeof *L->routes, (void **)&L->route_aux,
             sizeof *L->route_aux, L->nroutes, &L->cap_routes))
        return;
    ld_route *r = &L->routes[L->nroutes];
    rules_route_aux *x = &L->route_aux[L->nroutes];
    memset(r, 0, sizeof *r);
    memset(x, 0, sizeof *x);

    memcpy(r->name, b->name, sizeof r->name);
    rules__where(route_at, r->where, sizeof r->where);
    compile_match(c, b, r);
    r->priority = b->priority;
    r->cont = b->cont;
    compile_dispatch(c, b, r, x);
    if (at[RT_SIGN_OFF].src)
        compile_sign_off(c, &b->sign_off, &at[RT_SIGN_OFF], x->dept, b->dispatch.n, r);
    x->at = *route_at;
    L->nroutes++;
}

/* compile_dispatch moves the dispatch entries read into <b> into <r>, with
 * their department names in <x> (resolved once every file is read). */
static void compile_dispatch(rctx *c, route_b *b, ld_route *r, rules_route_aux *x)
{
    rules_loader *L = c->L;
    for (int i = 0; i < b->dispatch.n; i++) {
        dispatch_b *d = &b->dispatch.v[i];
        const rules_pos *dat = b->dispatch.at[i];
        if (!dat[DS_ARRIVE].src) d->leg[LD_LEG_ARRIVE] = d->leg[LD_LEG_RESOLVE];
        if (!dat[DS_FEEDBACK].src) d->leg[LD_LEG_FEEDBACK] = d->leg[LD_LEG_RESOLVE];
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
        ld_dispatch_def *o = &r->dispatch[i];
        o->dept = -1;
        o->has_feedback = dat[DS_FEEDBACK].src != NULL;
        o->reminders = d->reminders.r;
        o->reminders_given = d->reminders.given;
        for (int leg = 0; leg < LD_LEG_COUNT; leg++)
            for (int a = 0; a < LD_AREA_COUNT; a++) {
                o->area_ms[a][leg] = d->leg[leg].ms[a];
                if (d->leg[leg].workdays & (1u << a)) o->workdays |= (uint8_t)(1u << leg);
            }
    }
    r->ndispatch = b->dispatch.n;
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
        route_b *b = calloc(1, sizeof *b); /* large: keep it off the stack */
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

/* ---- areas ------------------------------------------------------------------
 * areas:
 *   urban: [440103, 440104]     district codes of each area type
 *   suburban: [440112]
 *   rural: [440117]
 *   default: urban              for districts not listed (default urban) */

static void read_area_list(rctx *c, struct fy_node *v, const rules_pos *at, int area)
{
    rules_loader *L = c->L;
    if (!fy_node_is_sequence(v)) {
        rules__error(L, at, "'%s' must be a list of district codes", area_names[area]);
        return;
    }
    void *it = NULL;
    struct fy_node *item;
    int n = 0;
    while ((item = fy_node_sequence_iterate(v, &it)) != NULL) {
        rules_pos iat = pos_of(c, item, at);
        const char *d = fy_node_is_scalar(item) ? fy_node_get_scalar0(item) : NULL;
        if (++n > MAX_DISTRICTS) {
            rules__error(L, &iat, "too many districts: at most %d per area type", MAX_DISTRICTS);
            return;
        }
        if (!d || !*d || strlen(d) > 32) {
            rules__error(L, &iat, "a district code is 1 to 32 characters");
            continue;
        }
        int id = rules__intern(L, d);
        if (id < 0) return;
        int dup = 0;
        for (int i = 0; i < L->nareas && !dup; i++)
            if (L->area_defs[i].id == id) {
                char w[200];
                rules__where(&L->area_defs[i].at, w, sizeof w);
                rules__error(L, &iat, "district '%s' is already listed as %s at %s", d,
                             area_names[L->area_defs[i].area], w);
                dup = 1;
            }
        if (dup) continue;
        if (rules__grow(L, (void **)&L->area_defs, sizeof *L->area_defs, L->nareas,
                        &L->cap_areas) != 0)
            return;
        L->area_defs[L->nareas++] = (struct rules_area_def){id, area, iat};
    }
}

static void set_area_table(rctx *c, const slot *s)
{
    rules_loader *L = c->L;
    if (!fy_node_is_mapping(s->v)) {
        rules__error(L, &s->at, "'areas' must be a mapping with keys urban, suburban, rural, "
                     "default");
        return;
    }
    L->str_used |= 1u << LD_STR_DISTRICT;
    void *it = NULL;
    struct fy_node_pair *p;
    while ((p = fy_node_mapping_iterate(s->v, &it)) != NULL) {
        struct fy_node *key = fy_node_pair_key(p), *val = fy_node_pair_value(p);
        rules_pos kat = pos_of(c, key, &s->at), vat = pos_of(c, val, &kat);
        const char *k = key && fy_node_is_scalar(key) ? fy_node_get_scalar0(key) : "";
        if (!val) {
            rules__error(L, &kat, "'%s' has no value", k);
            continue;
        }
        if (strcmp(k, "default") == 0) {
            const char *v = fy_node_is_scalar(val) ? fy_node_get_scalar0(val) : "";
            int a = area_index(v ? v : "");
            if (a < 0) unknown_area(c, &vat, v ? v : "");
            else if (L->default_area_at.src) {
                char w[200];
                rules__where(&L->default_area_at, w, sizeof w);
                rules__error(L, &vat, "the default area type is already set at %s", w);
            } else {
                L->default_area = a;
                L->default_area_at = vat;
            }
            continue;
        }
        int a = area_index(k);
        if (a < 0) {
            static const char *const keys[] = {"urban", "suburban", "rural", "default"};
            const char *near = rules__suggest(k, keys, 4);
            rules__error(L, &kat, "unknown key '%s' in areas%s%s%s (known: urban, suburban, "
                         "rural, default)", k, near ? "; did you mean '" : "", near ? near : "",
                         near ? "'?" : "");
            continue;
        }
        read_area_list(c, val, &vat, a);
    }
}

/* ---- rosters ----------------------------------------------------------------
 * rosters:
 *   police:
 *     shifts:
 *       - { name: day, days: [mon-fri], time: "08:00-20:00", terminal: police-duty }
 *       - { name: night, time: "20:00-08:00", terminal: police-night }
 *     overrides:
 *       - { from: "2026-11-24 08:00", to: "2026-11-24 20:00", terminal: police-night }
 *     stand_in: police-standby */

typedef struct shift_b {
    char name[32];
    uint8_t days;
    time_b time;
    char terminal[48];
} shift_b;

enum { SH_NAME, SH_DAYS, SH_TIME, SH_TERMINAL, SH_NKEYS };
static const key_def shift_keys[SH_NKEYS] = {
    [SH_NAME] = {"name", set_name, FIELD(shift_b, name), 0},
    [SH_DAYS] = {"days", set_days, FIELD(shift_b, days), 0},
    [SH_TIME] = {"time", set_time, FIELD(shift_b, time), 1},
    [SH_TERMINAL] = {"terminal", set_name, FIELD(shift_b, terminal), 1},
};
static const key_table shift_table = {
    .what = "shift", .in = "in shift", .keys = shift_keys, .n = SH_NKEYS,
};

typedef struct override_b {
    char from[24], to[24];
    char terminal[48];
    char reason[96];
} override_b;

enum { OV_FROM, OV_TO, OV_TERMINAL, OV_REASON, OV_NKEYS };
static const key_def override_keys[OV_NKEYS] = {
    [OV_FROM] = {"from", set_text, FIELD(override_b, from), 1},
    [OV_TO] = {"to", set_text, FIELD(override_b, to), 1},
    [OV_TERMINAL] = {"terminal", set_name, FIELD(override_b, terminal), 1},
    [OV_REASON] = {"reason", set_text, FIELD(override_b, reason), 0},
};
static const key_table override_table = {
    .what = "override", .in = "in override", .keys = override_keys, .n = OV_NKEYS,
};

/* "2026-11-24 08:00" -> local ms since the epoch; -1 if malformed. */
static int64_t local_ms_of(const char *v)
{
    int32_t day;
    size_t n = strlen(v);
    if (n != 16 || (v[10] != ' ' && v[10] != 'T') || rules__day_of(v, 10, &day) != 0) return -1;
    int m = clock_minutes(v + 11, 5);
    if (m < 0 || m == 24 * 60) return -1;
    return (int64_t)day * (int64_t)DAY_MS + (int64_t)m * 60000;
}

static void add_shift(rctx *c, const slot *s, int i)
{
    rules_roster_aux *x = s->field;
    shift_b b;
    rules_pos at[SH_NKEYS];
    memset(&b, 0, sizeof b);
    walk(c, s->v, &s->at, &shift_table, &b, at, NULL);
    ld_shift *sh = &x->r.shifts[i];
    memcpy(sh->name, b.name, sizeof sh->name);
    sh->days = b.days ? b.days : 0x7f;
    sh->from = b.time.from;
    sh->to = b.time.to;
    sh->terminal = -1;
    memcpy(x->shift_term[i], b.terminal, sizeof x->shift_term[i]);
    x->shift_term_at[i] = at[SH_TERMINAL];
    x->r.nshifts = i + 1;
}

static void set_shifts(rctx *c, const slot *s)
{
    rules_roster_aux *x = s->field;
    x->shifts_at = s->at;
    need_items(c, s, "shift");
    each_item(c, s, 0, LD_MAX_SHIFTS, "shifts in one roster", add_shift);
}

static void add_override(rctx *c, const slot *s, int i)
{
    rules_roster_aux *x = s->field;
    override_b b;
    rules_pos at[OV_NKEYS];
    memset(&b, 0, sizeof b);
    walk(c, s->v, &s->at, &override_table, &b, at, NULL);
    int64_t from = b.from[0] ? local_ms_of(b.from) : 0, to = b.to[0] ? local_ms_of(b.to) : 0;
    if (b.from[0] && from < 0)
        rules__error(c->L, &at[OV_FROM], "bad time '%s': use a local time such as "
                     "\"2026-11-24 08:00\"", b.from);
    if (b.to[0] && to < 0)
        rules__error(c->L, &at[OV_TO], "bad time '%s': use a local time such as "
                     "\"2026-11-24 20:00\"", b.to);
    else if (from >= 0 && to > 0 && to <= from)
        rules__error(c->L, &at[OV_TO], "the override ends (%s) before it starts (%s)", b.to,
                     b.from);
    x->ovr_local[i][0] = from;
    x->ovr_local[i][1] = to;
    x->r.overrides[i].terminal = -1;
    memcpy(x->ovr_term[i], b.terminal, sizeof x->ovr_term[i]);
    x->ovr_term_at[i] = at[OV_TERMINAL];
    x->r.noverrides = i + 1;
}

static void set_overrides(rctx *c, const slot *s)
{
    each_item(c, s, 0, LD_MAX_OVERRIDES, "overrides in one roster", add_override);
}

static void set_stand_in(rctx *c, const slot *s)
{
    rules_roster_aux *x = s->field;
    const char *v = scalar(c, s);
    if (v && copy_name(c, &s->at, "terminal id", v, x->stand_in, sizeof x->stand_in) == 0)
        x->stand_in_at = s->at;
}

enum { RO_SHIFTS, RO_OVERRIDES, RO_STAND_IN, RO_NKEYS };
static const key_def roster_keys[RO_NKEYS] = {
    [RO_SHIFTS] = {"shifts", set_shifts, 0, 0, 1},
    [RO_OVERRIDES] = {"overrides", set_overrides, 0, 0, 0},
    [RO_STAND_IN] = {"stand_in", set_stand_in, 0, 0, 0},
};
static const key_table roster_table = {
    .what = "roster", .in = "in roster", .keys = roster_keys, .n = RO_NKEYS,
};

static void set_rosters(rctx *c, const slot *s)
{
    rules_loader *L = c->L;
    if (!fy_node_is_mapping(s->v)) {
        rules__error(L, &s->at, "'rosters' must be a mapping from department id to its roster");
        return;
    }
    void *it = NULL;
    struct fy_node_pair *p;
    while ((p = fy_node_mapping_iterate(s->v, &it)) != NULL) {
        struct fy_node *key = fy_node_pair_key(p), *val = fy_node_pair_value(p);
        rules_pos id_at = pos_of(c, key, &s->at);
        const char *v = key && fy_node_is_scalar(key) ? fy_node_get_scalar0(key) : NULL;
        char id[32];
        if (!v || copy_name(c, &id_at, "department id", v, id, sizeof id) != 0) continue;
        if (!val) {
            rules__error(L, &id_at, "roster of '%s' has no definition", id);
            continue;
        }
        if (rules__grow(L, (void **)&L->rosters, sizeof *L->rosters, L->nrosters,
                        &L->cap_rosters) != 0)
            return;
        rules_roster_aux *x = &L->rosters[L->nrosters++];
        memset(x, 0, sizeof *x);
        memcpy(x->dept, id, sizeof id);
        x->dept_at = id_at;
        x->r.stand_in = -1;
        rules__where(&id_at, x->r.where, sizeof x->r.where);
        rules_pos at[RO_NKEYS], def_at = pos_of(c, val, &id_at);
        char label[64];
        snprintf(label, sizeof label, "roster of '%s'", id);
        /* Every setter fills the roster itself: offsets 0 into <x>. */
        walk(c, val, &def_at, &roster_table, x, at, label);
    }
}

/* ---- merge rules ------------------------------------------------------------
 * merge:
 *   - name: duplicate-calls
 *     match: { kind: call }
 *     distance: 300          metres
 *     window: 10m */

typedef struct merge_b {
    char name[64];
    match_b match;
    uint32_t distance;
    uint64_t window_ms;
} merge_b;

/* A distance in whole metres: 1 to 100000. */
static void set_metres(rctx *c, const slot *s)
{
    const char *v = scalar(c, s);
    uint32_t n = 0;
    if (!v) return;
    size_t len = strlen(v);
    if (len && len > 1 && strcmp(v + len - 1, "m") == 0) len--;
    if (len == 0 || len > 6 || strspn(v, "0123456789") != len ||
        (n = (uint32_t)strtoul(v, NULL, 10)) == 0 || n > 100000) {
        rules__error(c->L, &s->at, "'%s' must be whole metres from 1 to 100000, not '%s'",
                     s->k->name, v);
        return;
    }
    *(uint32_t *)s->field = n;
}

enum { MG_NAME, MG_MATCH, MG_DISTANCE, MG_WINDOW, MG_NKEYS };
static const key_def merge_keys[MG_NKEYS] = {
    [MG_NAME] = {"name", set_name, FIELD(merge_b, name), 1},
    [MG_MATCH] = {"match", set_match, FIELD(merge_b, match), 0},
    [MG_DISTANCE] = {"distance", set_metres, FIELD(merge_b, distance), 1},
    [MG_WINDOW] = {"window", set_duration, FIELD(merge_b, window_ms), 1},
};
static const key_table merge_table = {
    .what = "merge rule", .in = "in merge rule", .keys = merge_keys, .n = MG_NKEYS,
};

static void set_merges(rctx *c, const slot *s)
{
    rules_loader *L = c->L;
    if (!fy_node_is_sequence(s->v)) {
        rules__error(L, &s->at, "'merge' must be a list of merge rules");
        return;
    }
    void *it = NULL;
    struct fy_node *item;
    while ((item = fy_node_sequence_iterate(s->v, &it)) != NULL) {
        if (rules__grow(L, (void **)&L->merges, sizeof *L->merges, L->nmerges,
                        &L->cap_merges) != 0)
            return;
        route_b *b = calloc(1, sizeof *b); /* large: off the stack */
        merge_b *m = calloc(1, sizeof *m);
        rules_pos at[MG_NKEYS], item_at = pos_of(c, item, &s->at);
        if (!b || !m) {
            free(b);
            free(m);
            L->nomem = 1;
            return;
        }
        walk(c, item, &item_at, &merge_table, m, at, NULL);
        ld_merge_rule *o = &L->merges[L->nmerges++];
        memset(o, 0, sizeof *o);
        memcpy(o->name, m->name, sizeof o->name);
        rules__where(&item_at, o->where, sizeof o->where);
        b->match = m->match;
        compile_match(c, b, &o->match);
        memcpy(o->match.name, m->name, sizeof o->match.name);
        o->distance_m = m->distance;
        o->window_ms = m->window_ms;
        if (m->window_ms > 24ull * 3600 * 1000)
            rules__error(L, &at[MG_WINDOW], "'window' must be at most 1d: merging is for "
                         "duplicate reports of one event");
        free(b);
        free(m);
    }
}

/* ---- calendar ---------------------------------------------------------------
 * calendar:
 *   utc_offset: "+08:00"                     local time for time-of-day, days, dates
 *   holidays: [2026-10-01..2026-10-07]       rest days on a weekday
 *   workdays: [2026-09-27, 2026-10-10]       make-up working days on a weekend */

typedef struct calendar_b {
    int32_t offset;
} calendar_b;

static void set_offset(rctx *c, const slot *s)
{
    const char *v = scalar(c, s);
    if (!v) return;
    const char *p = v;
    if (strncmp(p, "UTC", 3) == 0) p += 3;
    int sign = *p == '-' ? -1 : 1;
    if (*p == '+' || *p == '-') p++;
    else p = "";
    int m = clock_minutes(p, strlen(p));
    if (m < 0 || m > 14 * 60) {
        rules__error(c->L, &s->at, "bad utc_offset '%s': use +HH:MM or -HH:MM, e.g. \"+08:00\" "
                     "for China Standard Time (Asia/Shanghai, no daylight saving)", v);
        return;
    }
    *(int32_t *)s->field = sign * m * 60;
}

static int add_day_to(rules_loader *L, int32_t **v, int *n, int *cap, int32_t day)
{
    if (*n == *cap) {
        int ncap = *cap ? *cap * 2 : 64;
        int32_t *nv = realloc(*v, (size_t)ncap * sizeof *nv);
        if (!nv) {
            L->nomem = 1;
            return -1;
        }
        *v = nv;
        *cap = ncap;
    }
    (*v)[(*n)++] = day;
    return 0;
}

/* A date "2026-10-01" or an inclusive span "2026-10-01..2026-10-07". */
static void add_date(rctx *c, const slot *s, int i)
{
    rules_loader *L = c->L;
    const char *v = scalar(c, s);
    int32_t a, b;
    int make_up = strcmp(s->k->name, "workdays") == 0;
    (void)i;
    if (!v) return;
    const char *dots = strstr(v, "..");
    if (rules__day_of(v, dots ? (size_t)(dots - v) : strlen(v), &a) != 0 ||
        rules__day_of(dots ? dots + 2 : v, strlen(dots ? dots + 2 : v), &b) != 0 || b < a ||
        b - a > 366) {
        rules__error(L, &s->at, "bad date '%s': use YYYY-MM-DD or a span "
                     "YYYY-MM-DD..YYYY-MM-DD of at most a year", v);
        return;
    }
    for (int32_t d = a; d <= b; d++) {
        if (make_up ? add_day_to(L, &L->makeup, &L->nmakeup, &L->cap_makeup, d)
                    : add_day_to(L, &L->holidays, &L->nholidays, &L->cap_holidays, d))
            return;
    }
}

static void set_dates(rctx *c, const slot *s)
{
    each_item(c, s, 1, MAX_DATES, "dates", add_date);
}

enum { CA_OFFSET, CA_HOLIDAYS, CA_WORKDAYS, CA_NKEYS };
static const key_def calendar_keys[CA_NKEYS] = {
    [CA_OFFSET] = {"utc_offset", set_offset, FIELD(calendar_b, offset), 0},
    [CA_HOLIDAYS] = {"holidays", set_dates, 0, 0, 0},
    [CA_WORKDAYS] = {"workdays", set_dates, 0, 0, 0},
};
static const key_table calendar_table = {
    .what = "calendar", .in = "in calendar", .keys = calendar_keys, .n = CA_NKEYS,
};

static void set_calendar(rctx *c, const slot *s)
{
    rules_loader *L = c->L;
    calendar_b b = {L->utc_offset_s};
    rules_pos at[CA_NKEYS];
    if (L->calendar_at.src) {
        char w[200];
        rules__where(&L->calendar_at, w, sizeof w);
        rules__error(L, &s->key_at, "'calendar' is already given at %s; one per rule set", w);
        return;
    }
    L->calendar_at = s->key_at;
    walk(c, s->v, &s->at, &calendar_table, &b, at, NULL);
    L->utc_offset_s = b.offset;
}

/* ---- life safety ------------------------------------------------------------ */

typedef struct life_safety_b {
    uint32_t priorities;
} life_safety_b;

enum { LS_PRIORITIES, LS_NKEYS };
static const key_def life_safety_keys[LS_NKEYS] = {
    [LS_PRIORITIES] = {"priorities", set_priorities, FIELD(life_safety_b, priorities), 1},
};
static const key_table life_safety_table = {
    .what = "life_safety", .in = "in life_safety", .keys = life_safety_keys, .n = LS_NKEYS,
};

/* life_safety: { priorities: [critical] }: events of these priorities are
 * still dispatched, from memory and a local spool, while Redis is away. */
static void set_life_safety(rctx *c, const slot *s)
{
    rules_loader *L = c->L;
    life_safety_b b = {0};
    rules_pos at[LS_NKEYS];
    if (L->life_safety_at.src) {
        char w[200];
        rules__where(&L->life_safety_at, w, sizeof w);
        rules__error(L, &s->key_at, "'life_safety' is already given at %s; one per rule set", w);
        return;
    }
    L->life_safety_at = s->key_at;
    walk(c, s->v, &s->at, &life_safety_table, &b, at, NULL);
    L->life_safety = b.priorities;
}

/* ---- the file --------------------------------------------------------------- */

/* terminal_keys and source_keys: mappings of id -> "ed25519:<base64>" (keys.c). */
static void set_keys(rctx *c, const slot *s, int source)
{
    if (!fy_node_is_mapping(s->v)) {
        rules__error(c->L, &s->at, "'%s' must be a mapping from %s id to 'ed25519:<base64>'",
                     s->k->name, source ? "source" : "terminal");
        return;
    }
    void *it = NULL;
    struct fy_node_pair *p;
    while ((p = fy_node_mapping_iterate(s->v, &it)) != NULL) {
        struct fy_node *key = fy_node_pair_key(p), *val = fy_node_pair_value(p);
        rules_pos kat = pos_of(c, key, &s->at), vat = pos_of(c, val, &kat);
        const char *k = key && fy_node_is_scalar(key) ? fy_node_get_scalar0(key) : NULL;
        const char *v = val && fy_node_is_scalar(val) ? fy_node_get_scalar0(val) : NULL;
        if (!k || !v) {
            rules__error(c->L, &kat, "each %s entry is 'id: ed25519:<base64>'", s->k->name);
            continue;
        }
        rules__add_key(c->L, source, k, v, &kat, &vat);
    }
}

/* correlate: a list of correlation rules (correlate.c). */
static void set_correlate(rctx *c, const slot *s)
{
    rules__read_correlations(c->L, c->src, s->v, &s->at);
}

static void set_terminal_keys(rctx *c, const slot *s) { set_keys(c, s, 0); }
static void set_source_keys(rctx *c, const slot *s) { set_keys(c, s, 1); }

enum { TOP_DEPARTMENTS, TOP_ROUTES, TOP_AREAS, TOP_CALENDAR, TOP_ROSTERS, TOP_KEYS, TOP_MERGE,
       TOP_SKEYS, TOP_LIFE_SAFETY, TOP_CORRELATE,
       TOP_NKEYS };
static const key_def top_keys[TOP_NKEYS] = {
    [TOP_DEPARTMENTS] = {"departments", set_departments, 0, 0, 0},
    [TOP_ROUTES] = {"routes", set_routes, 0, 0, 0},
    [TOP_AREAS] = {"areas", set_area_table, 0, 0, 0},
    [TOP_CALENDAR] = {"calendar", set_calendar, 0, 0, 0},
    [TOP_ROSTERS] = {"rosters", set_rosters, 0, 0, 0},
    [TOP_KEYS] = {"terminal_keys", set_terminal_keys, 0, 0, 0},
    [TOP_MERGE] = {"merge", set_merges, 0, 0, 0},
    [TOP_SKEYS] = {"source_keys", set_source_keys, 0, 0, 0},
    [TOP_LIFE_SAFETY] = {"life_safety", set_life_safety, 0, 0, 0},
    [TOP_CORRELATE] = {"correlate", set_correlate, 0, 0, 0},
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

/* ---- for correlate.c: matches and dispatch lists outside a route ------------ */

rules_pos rules__pos_of(const rules_src *src, struct fy_node *n, const rules_pos *fallback)
{
    rctx c = {NULL, src};
    return pos_of(&c, n, fallback);
}

void rules__read_match(rules_loader *L, const rules_src *src, struct fy_node *v,
                       const rules_pos *at, ld_route *out)
{
    rctx c = {L, src};
    route_b *b = calloc(1, sizeof *b); /* large: off the stack */
    if (!b) {
        L->nomem = 1;
        return;
    }
    walk(&c, v, at, &match_table, &b->match, b->match.at, NULL);
    compile_match(&c, b, out);
    free(b);
}

void rules__read_dispatch(rules_loader *L, const rules_src *src, struct fy_node *v,
                          const rules_pos *at, const rules_pos *key_at, ld_route *out,
                          rules_route_aux *aux)
{
    rctx c = {L, src};
    route_b *b = calloc(1, sizeof *b);
    if (!b) {
        L->nomem = 1;
        return;
    }
    slot s = {v, *at, *key_at, &route_keys[RT_DISPATCH], &b->dispatch};
    set_dispatch(&c, &s);
    compile_dispatch(&c, b, out, aux);
    free(b);
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
