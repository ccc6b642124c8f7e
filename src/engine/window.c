/* window.c: keyed sliding windows for correlation rules (window.h). */
#include "engine/window.h"

#include <stdlib.h>
#include <string.h>

#include "core/pool.h"
#include "wire/wire.h"

/* One value in a window: when it was last seen and the incident its event
 * opened or joined. A count keeps one entry per distinct value, a sequence
 * one entry (the latest first step). */
typedef struct entry {
    uint64_t at;
    uint64_t value;
    char ref[LD_WINDOW_REF_LEN];
} entry;

typedef struct window {
    uint64_t key;
    uint64_t expires_at;    /* dead from then on: newest value or firing plus the window */
    uint64_t fired_at;      /* 0: never; no second firing within the window */
    uint8_t n, cap, cls;    /* entries used, room, size class */
    entry e[];
} window;

/* Size classes: a sequence needs 1 entry, a count its `count` (3 and 5 exact: the
 * default rules' counts). */
static const uint8_t class_cap[] = {1, 3, 5, 8, 16, LD_CORR_MAX_COUNT};
#define NCLASS (sizeof class_cap / sizeof class_cap[0])

typedef struct slot {
    uint64_t key;           /* 0: empty */
    window *w;
} slot;

struct ld_windows {
    slot *slots;
    size_t cap;             /* power of two */
    size_t max_keys;
    size_t sweep_at;
    ld_pool pools[NCLASS];
    size_t window_bytes;
    ld_window_stats stats;
};

#define FNV_OFFSET 0xcbf29ce484222325ull
#define FNV_PRIME 0x100000001b3ull

uint64_t ld_window_hash(const char *v, size_t len)
{
    uint64_t h = FNV_OFFSET;
    for (size_t i = 0; i < len; i++) h = (h ^ (uint8_t)v[i]) * FNV_PRIME;
    /* Finalizer (splitmix64): FNV's low bits alone index the table poorly. */
    h ^= h >> 30;
    h *= 0xbf58476d1ce4e5b9ull;
    h ^= h >> 27;
    h *= 0x94d049bb133111ebull;
    h ^= h >> 31;
    return h ? h : 1;
}

uint64_t ld_window_key_init(uint64_t rule_hash)
{
    return rule_hash ^ FNV_OFFSET;
}

uint64_t ld_window_key_add(uint64_t h, int field, const char *v, size_t len)
{
    h = (h ^ (uint64_t)(field + 1)) * FNV_PRIME;
    for (size_t i = 0; i < len; i++) h = (h ^ (uint8_t)v[i]) * FNV_PRIME;
    h = (h ^ 0xff) * FNV_PRIME; /* end of value: "ab"+"c" is not "a"+"bc" */
    return h;
}

static uint64_t mix(uint64_t h)
{
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    return h ? h : 1;
}

ld_windows *ld_windows_new(size_t max_keys)
{
    ld_windows *w = calloc(1, sizeof *w);
    if (!w) return NULL;
    w->max_keys = max_keys ? max_keys : LD_WINDOWS_MAX_KEYS_DEFAULT;
    w->cap = 256;
    if (!(w->slots = calloc(w->cap, sizeof *w->slots))) {
        free(w);
        return NULL;
    }
    for (size_t i = 0; i < NCLASS; i++)
        ld_pool_init(&w->pools[i], sizeof(window) + class_cap[i] * sizeof(entry), 64);
    return w;
}

void ld_windows_free(ld_windows *w)
{
    if (!w) return;
    for (size_t i = 0; i < w->cap; i++)
        if (w->slots[i].key) ld_pool_put(&w->pools[w->slots[i].w->cls], w->slots[i].w);
    for (size_t i = 0; i < NCLASS; i++) ld_pool_fini(&w->pools[i]);
    free(w->slots);
    free(w);
}

/* ---- the table: open addressing, linear probing, backward-shift deletion ---- */

static size_t find(const ld_windows *w, uint64_t key)
{
    size_t mask = w->cap - 1, i = mix(key) & mask;
    while (w->slots[i].key && w->slots[i].key != key) i = (i + 1) & mask;
    return i;
}

static int grow(ld_windows *w)
{
    size_t ncap = w->cap * 2;
    slot *ns = calloc(ncap, sizeof *ns);
    if (!ns) return -1;
    slot *old = w->slots;
    size_t ocap = w->cap;
    w->slots = ns;
    w->cap = ncap;
    for (size_t i = 0; i < ocap; i++)
        if (old[i].key) w->slots[find(w, old[i].key)] = old[i];
    free(old);
    return 0;
}

static void remove_at(ld_windows *w, size_t i)
{
    size_t mask = w->cap - 1, j = i;
    window *dead = w->slots[i].w;
    w->window_bytes -= w->pools[dead->cls].size;
    ld_pool_put(&w->pools[dead->cls], dead);
    w->slots[i] = (slot){0};
    w->stats.keys--;
    /* Shift back the entries of the run after i that may sit before their home. */
    for (;;) {
        j = (j + 1) & mask;
        if (!w->slots[j].key) return;
        size_t home = mix(w->slots[j].key) & mask;
        int between = i <= j ? (i < home && home <= j) : (i < home || home <= j);
        if (between) continue;
        w->slots[i] = w->slots[j];
        w->slots[j] = (slot){0};
        i = j;
    }
}

void ld_windows_sweep(ld_windows *w, uint64_t now, size_t slots)
{
    for (size_t k = 0; k < slots && w->stats.keys; k++) {
        size_t i = w->sweep_at++ & (w->cap - 1);
        if (w->slots[i].key && w->slots[i].w->expires_at < now) {
            remove_at(w, i);
            w->stats.expired++;
            w->sweep_at--; /* the shift may have moved a live window into slot i */
        }
    }
}

/* get finds or opens the window of <key> with room for <need> entries. */
static window *get(ld_windows *w, uint64_t key, uint32_t need)
{
    size_t i = find(w, key);
    if (w->slots[i].key) return w->slots[i].w;
    if (w->stats.keys >= w->max_keys) {
        w->stats.keys_full++;
        return NULL;
    }
    if ((w->stats.keys + 1) * 2 > w->cap) {
        if (grow(w) != 0) return NULL;
        i = find(w, key);
    }
    size_t cls = 0;
    while (cls + 1 < NCLASS && class_cap[cls] < need) cls++;
    window *x = ld_pool_get(&w->pools[cls]);
    if (!x) return NULL;
    x->key = key;
    x->cap = class_cap[cls];
    x->cls = (uint8_t)cls;
    w->window_bytes += w->pools[cls].size;
    w->slots[i] = (slot){key, x};
    w->stats.keys++;
    return x;
}

static void set_ref(entry *en, const char *ref)
{
    size_t n = ref ? strnlen(ref, sizeof en->ref - 1) : 0;
    memcpy(en->ref, ref ? ref : "", n);
    en->ref[n] = '\0';
}

/* fire reports the window's entries (oldest first, plus <extra> if given)
 * and empties it; the key rests until a window has passed. */
static void fire_window(ld_windows *w, window *x, const ld_correlation *c, const entry *extra,
                        uint64_t now, void (*fire)(void *, const ld_window_hit *), void *ctx)
{
    ld_window_hit hit = {.rule = c};
    for (uint32_t i = 0; i < x->n && hit.n < LD_CORR_MAX_COUNT; i++, hit.n++) {
        hit.refs[hit.n] = x->e[i].ref;
        hit.at[hit.n] = x->e[i].at;
    }
    if (extra && hit.n < LD_CORR_MAX_COUNT) {
        hit.refs[hit.n] = extra->ref;
        hit.at[hit.n++] = extra->at;
    }
    w->stats.fired++;
    if (fire) fire(ctx, &hit);
    x->n = 0;
    x->fired_at = now;
    x->expires_at = now + c->window_ms;
}

/* drop_old removes the entries older than the window, keeping the order. */
static void drop_old(window *x, uint64_t now, uint64_t window_ms)
{
    uint32_t k = 0;
    for (uint32_t i = 0; i < x->n; i++)
        if (x->e[i].at + window_ms >= now) x->e[k++] = x->e[i];
    x->n = (uint8_t)k;
}

static int observe_count(ld_windows *w, const ld_correlation *c, const ld_window_event *ev,
                         uint64_t now, void (*fire)(void *, const ld_window_hit *), void *ctx)
{
    window *x = get(w, ev->key, c->count);
    if (!x) return 0;
    if (x->fired_at && now < x->fired_at + c->window_ms) {
        w->stats.suppressed++;
        return 0;
    }
    drop_old(x, now, c->window_ms);
    uint32_t room = x->cap < c->count ? x->cap : c->count; /* a reload may raise count */
    for (size_t v = 0; v < ev->nvalues; v++) {
        uint32_t i = 0;
        while (i < x->n && x->e[i].value != ev->values[v]) i++;
        if (i < x->n) {
            /* Seen again: it counts once, as of now; keep the order by time. */
            entry en = x->e[i];
            memmove(&x->e[i], &x->e[i + 1], (x->n - i - 1) * sizeof *x->e);
            en.at = now;
            set_ref(&en, ev->ref);
            x->e[x->n - 1] = en;
        } else {
            if (x->n == room) { /* only when a reload lowered the room: drop the oldest */
                memmove(&x->e[0], &x->e[1], (x->n - 1) * sizeof *x->e);
                x->n--;
            }
            entry *en = &x->e[x->n++];
            en->at = now;
            en->value = ev->values[v];
            set_ref(en, ev->ref);
            w->stats.counted++;
        }
        if (x->n > 0 && now + c->window_ms > x->expires_at) x->expires_at = now + c->window_ms;
        if (x->n >= c->count || x->n >= room) {
            fire_window(w, x, c, NULL, now, fire, ctx);
            return 1;
        }
    }
    return 0;
}

static int observe_sequence(ld_windows *w, const ld_correlation *c, int step,
                            const ld_window_event *ev, uint64_t now,
                            void (*fire)(void *, const ld_window_hit *), void *ctx)
{
    if (step == 0) {
        window *x = get(w, ev->key, 1);
        if (!x) return 0;
        /* The latest first step is the one a second step follows. */
        x->n = 1;
        x->e[0].at = now;
        x->e[0].value = 0;
        set_ref(&x->e[0], ev->ref);
        w->stats.counted++;
        if (now + c->window_ms > x->expires_at) x->expires_at = now + c->window_ms;
        return 0;
    }
    size_t i = find(w, ev->key);
    if (!w->slots[i].key) return 0;
    window *x = w->slots[i].w;
    if (x->n == 0 || x->e[0].at > now || now - x->e[0].at > c->window_ms) return 0;
    entry second = {.at = now};
    set_ref(&second, ev->ref);
    w->stats.counted++;
    /* A sequence fires once per first step: the next one starts it again. */
    fire_window(w, x, c, &second, now, fire, ctx);
    x->fired_at = 0;
    return 1;
}

int ld_windows_observe(ld_windows *w, const ld_correlation *c, int step,
                       const ld_window_event *ev, uint64_t now,
                       void (*fire)(void *ctx, const ld_window_hit *hit), void *ctx)
{
    ld_windows_sweep(w, now, 4);
    if (!ev->key || (c->type == LD_CORR_COUNT && (!ev->values || !ev->nvalues))) {
        w->stats.unkeyed++;
        return 0;
    }
    if (c->type == LD_CORR_SEQUENCE) return observe_sequence(w, c, step, ev, now, fire, ctx);
    return observe_count(w, c, ev, now, fire, ctx);
}

void ld_windows_stats(const ld_windows *w, ld_window_stats *out)
{
    *out = w->stats;
    out->bytes = w->window_bytes + w->cap * sizeof(slot);
}

/* ---- reading an event for the rule set's correlation rules ---------------------- */

static uint64_t add_str(uint64_t h, int field, const char *v)
{
    if (!v || !*v) return 0;
    return ld_window_key_add(h, field, v, strlen(v));
}

/* key_of hashes the rule's `by` fields of <ev>; 0 if the event lacks one. */
static uint64_t key_of(const ld_correlation *c, const Linkd__V1__Envelope *ev,
                       const ld_match_input *in)
{
    const Linkd__V1__Location *loc = ld_envelope_location(ev);
    uint64_t h = ld_window_key_init(c->id_hash);
    for (int f = 0; f < LD_CK_COUNT && h; f++) {
        if (!(c->by & (1u << f))) continue;
        switch (f) {
        case LD_CK_DISTRICT: h = add_str(h, f, loc ? loc->district : NULL); break;
        case LD_CK_GRID: h = add_str(h, f, loc ? loc->grid : NULL); break;
        case LD_CK_ADDRESS: h = add_str(h, f, loc ? loc->address : NULL); break;
        case LD_CK_OFFICE:
            h = add_str(h, f, ev->body_case == LINKD__V1__ENVELOPE__BODY_PETITION
                                  ? ev->petition->target_office : NULL);
            break;
        case LD_CK_CATEGORY:
            h = in->category ? ld_window_key_add(h, f, (const char *)&in->category,
                                                 sizeof in->category)
                             : 0;
            break;
        }
    }
    return h;
}

static size_t one_value(const char *v, uint64_t *out)
{
    if (!v || !*v) return 0;
    out[0] = ld_window_hash(v, strlen(v));
    return 1;
}

/* values_of hashes what makes <ev> count as another one for <c>. */
static size_t values_of(const ld_correlation *c, const Linkd__V1__Envelope *ev, uint64_t *seq,
                        uint64_t *out)
{
    switch (c->distinct) {
    case LD_DISTINCT_CALLER:
        return ev->body_case == LINKD__V1__ENVELOPE__BODY_CALL ? one_value(ev->call->caller, out)
                                                                : 0;
    case LD_DISTINCT_SENSOR:
        return ev->body_case == LINKD__V1__ENVELOPE__BODY_SENSOR
                   ? one_value(ev->sensor->sensor_id, out) : 0;
    case LD_DISTINCT_PETITIONER: {
        if (ev->body_case != LINKD__V1__ENVELOPE__BODY_PETITION) return 0;
        size_t n = 0;
        for (size_t i = 0; i < ev->petition->n_petitioner_refs && n < LD_CORR_MAX_COUNT; i++)
            n += one_value(ev->petition->petitioner_refs[i], out + n);
        return n;
    }
    case LD_DISTINCT_SOURCE: return one_value(ev->source_id, out);
    default:
        out[0] = ++*seq; /* every event is another one */
        return 1;
    }
}

int ld_windows_event(ld_windows *w, const ld_rules *r, const Linkd__V1__Envelope *ev,
                     const ld_match_input *in, const char *ref, uint64_t now, uint64_t *seq,
                     void (*fire)(void *ctx, const ld_window_hit *hit), void *ctx)
{
    uint64_t values[LD_CORR_MAX_COUNT];
    int fired = 0;
    for (int i = 0; i < r->ncorrelations; i++) {
        const ld_correlation *c = &r->correlations[i];
        /* A sequence's second step first: one event never follows itself. */
        for (int step = c->type == LD_CORR_SEQUENCE ? 1 : 0; step >= 0; step--) {
            const ld_route *m = step ? &c->then : &c->match;
            if (!ld_rules_route_matches(r, m, in)) continue;
            ld_window_event we = {key_of(c, ev, in), values, 0, ref};
            if (c->type == LD_CORR_COUNT) we.nvalues = values_of(c, ev, seq, values);
            fired += ld_windows_observe(w, c, step, &we, now, fire, ctx);
        }
    }
    return fired;
}
