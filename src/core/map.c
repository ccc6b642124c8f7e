#include "core/map.h"

#include <stdlib.h>
#include <string.h>

#include "core/err.h"

#define MOVE_STEP 16   /* old slots moved per put or delete while growing */

uint32_t ld_hash(const void *data, size_t len)
{
    /* FNV-1a: short keys, good enough spread, no allocation. */
    const unsigned char *p = data;
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 16777619u;
    }
    return h ? h : 1;
}

/* ---- the table ------------------------------------------------------------------
 *
 * While growing, the old table's slots are moved in order from <start>, a
 * slot that was empty when the growth began, so no probe run crosses it. A
 * key still in the old table sits at or after the cursor (start + moved),
 * and its run, from its home on, is whole from the cursor: the slots before
 * the cursor are moved (and never read again), and old slots are never
 * emptied, only turned into tombstones. So a lookup whose home is already
 * behind the cursor starts probing at the cursor. */

static char tomb;
#define TOMB ((void *)&tomb)

/* Pointers per slot: an index's object, or a map's key and value. A map
 * zeroed without ld_map_init is a valid empty map, as it always was. */
#define WORDS(t) ((t)->key_of ? 1u : 2u)

static void **slot_at(const ld_table *t, void **base, size_t i)
{
    return base + i * WORDS(t);
}

static void table_init(ld_table *t, const char *(*key_of)(const void *))
{
    memset(t, 0, sizeof *t);
    t->key_of = key_of;
}

static void table_fini(ld_table *t)
{
    free(t->slots);
    free(t->old);
    table_init(t, t->key_of);
}

static uint8_t tag_of(uint32_t h)
{
    return (uint8_t)(h >> 24);
}

static const char *slot_key(const ld_table *t, void *const *s)
{
    return t->key_of ? t->key_of(s[0]) : s[0];
}

static uint32_t key_hash(const char *key)
{
    return ld_hash(key, strlen(key));
}

/* probe returns the slot of <key> from slot <i> on, or the hole that ends
 * its run (*found 0). */
static size_t probe(const ld_table *t, void **slots, const uint8_t *tags, size_t mask, size_t i,
                    uint8_t tag, const char *key, size_t keylen, int *found)
{
    for (;; i = (i + 1) & mask) {
        void **s = slot_at(t, slots, i);
        if (!s[0]) break;
        if (s[0] == TOMB || tags[i] != tag) continue;
        const char *k = slot_key(t, s);
        if (strncmp(k, key, keylen) == 0 && k[keylen] == '\0') {
            *found = 1;
            return i;
        }
    }
    *found = 0;
    return i;
}

/* old_find returns the old table's slot of <key>, or NULL. */
static void **old_find(const ld_table *t, uint32_t h, const char *key, size_t keylen)
{
    if (!t->old) return NULL;
    size_t mask = t->old_cap - 1, i = h & mask;
    if (((i - t->start) & mask) < t->moved) i = (t->start + t->moved) & mask;
    int found;
    i = probe(t, t->old, t->old_tags, mask, i, tag_of(h), key, keylen, &found);
    return found ? slot_at(t, t->old, i) : NULL;
}

static void **table_find(const ld_table *t, const char *key, size_t keylen)
{
    if (t->len == 0) return NULL;
    uint32_t h = ld_hash(key, keylen);
    size_t mask = t->cap - 1;
    int found;
    size_t i = probe(t, t->slots, t->tags, mask, h & mask, tag_of(h), key, keylen, &found);
    return found ? slot_at(t, t->slots, i) : old_find(t, h, key, keylen);
}

/* place puts an entry whose key is not in the new table into its first hole. */
static void place(ld_table *t, void *const *entry, uint32_t h)
{
    size_t mask = t->cap - 1, i = h & mask;
    while (*slot_at(t, t->slots, i)) i = (i + 1) & mask;
    memcpy(slot_at(t, t->slots, i), entry, WORDS(t) * sizeof *entry);
    t->tags[i] = tag_of(h);
}

/* move_some moves up to <n> old slots into the new table; the old one is
 * freed once all are. */
static void move_some(ld_table *t, size_t n)
{
    size_t mask = t->old_cap - 1;
    for (; n && t->moved < t->old_cap; n--, t->moved++) {
        void **s = slot_at(t, t->old, (t->start + t->moved) & mask);
        if (s[0] && s[0] != TOMB) place(t, s, key_hash(slot_key(t, s)));
    }
    if (t->moved == t->old_cap) {
        free(t->old);
        t->old = NULL;
        t->old_tags = NULL;
        t->old_cap = t->start = t->moved = 0;
    }
}

static int grow(ld_table *t)
{
    if (t->old) move_some(t, t->old_cap); /* not reached: a growth ends long before the next */
    size_t ncap = t->cap ? t->cap * 2 : 16;
    void **n = calloc(ncap, WORDS(t) * sizeof *n + 1);
    if (!n) return LD_ENOMEM;
    t->old = t->slots;
    t->old_tags = t->tags;
    t->old_cap = t->cap;
    t->slots = n;
    t->tags = (uint8_t *)(n + ncap * WORDS(t));
    t->cap = ncap;
    if (!t->old) return 0;
    /* Under 3/4 full, so there is a hole to start from. */
    for (t->start = 0; *slot_at(t, t->old, t->start); t->start++) {}
    t->moved = 0;
    move_some(t, MOVE_STEP);
    return 0;
}

static void table_tidy(ld_table *t, size_t slots)
{
    if (t->old) move_some(t, slots);
}

/* table_put inserts <entry>, or replaces the entry with its key; 0 or LD_ENOMEM. */
static int table_put(ld_table *t, void *const *entry)
{
    if (t->old) move_some(t, MOVE_STEP);
    if ((t->len + 1) * 4 > t->cap * 3) { /* keep load under 3/4 */
        int rv = grow(t);
        if (rv) return rv;
    }
    const char *key = slot_key(t, entry);
    size_t keylen = strlen(key), mask = t->cap - 1;
    uint32_t h = ld_hash(key, keylen);
    int found;
    size_t i = probe(t, t->slots, t->tags, mask, h & mask, tag_of(h), key, keylen, &found);
    if (!found) {
        void **s = old_find(t, h, key, keylen);
        if (s) s[0] = TOMB; /* replaced: the entry goes to the new table */
        else t->len++;
    }
    memcpy(slot_at(t, t->slots, i), entry, WORDS(t) * sizeof *entry);
    t->tags[i] = tag_of(h);
    return 0;
}

/* table_del removes the entry with <key> into <out>; 1, or 0 if absent. */
static int table_del(ld_table *t, const char *key, void **out)
{
    if (t->len == 0) return 0;
    if (t->old) move_some(t, MOVE_STEP);
    size_t keylen = strlen(key), mask = t->cap - 1;
    uint32_t h = ld_hash(key, keylen);
    int found;
    size_t i = probe(t, t->slots, t->tags, mask, h & mask, tag_of(h), key, keylen, &found);
    if (!found) {
        void **s = old_find(t, h, key, keylen);
        if (!s) return 0;
        memcpy(out, s, WORDS(t) * sizeof *s);
        s[0] = TOMB;
        t->len--;
        return 1;
    }
    memcpy(out, slot_at(t, t->slots, i), WORDS(t) * sizeof *out);
    /* Backward-shift the run that follows so probes never cross a hole. */
    for (size_t j = i;;) {
        j = (j + 1) & mask;
        void **s = slot_at(t, t->slots, j);
        if (!s[0]) break;
        size_t home = key_hash(slot_key(t, s)) & mask;
        int movable = (j > i) ? (home <= i || home > j) : (home <= i && home > j);
        if (movable) {
            memcpy(slot_at(t, t->slots, i), s, WORDS(t) * sizeof *s);
            t->tags[i] = t->tags[j];
            i = j;
        }
    }
    memset(slot_at(t, t->slots, i), 0, WORDS(t) * sizeof *out);
    t->len--;
    return 1;
}

/* table_next: the old table's slots not yet moved, then the new table's. */
static void **table_next(const ld_table *t, size_t *it)
{
    size_t left = t->old ? t->old_cap - t->moved : 0;
    while (*it < left + t->cap) {
        size_t k = (*it)++;
        void **s = k < left ? slot_at(t, t->old, (t->start + t->moved + k) & (t->old_cap - 1))
                            : slot_at(t, t->slots, k - left);
        if (s[0] && s[0] != TOMB) return s;
    }
    return NULL;
}

/* ---- ld_map: key and value --------------------------------------------------------- */

void ld_map_init(ld_map *m)
{
    table_init(&m->t, NULL);
}

void ld_map_fini(ld_map *m)
{
    table_fini(&m->t);
}

void *ld_map_getn(const ld_map *m, const char *key, size_t keylen)
{
    void **s = table_find(&m->t, key, keylen);
    return s ? s[1] : NULL;
}

void *ld_map_get(const ld_map *m, const char *key)
{
    return ld_map_getn(m, key, strlen(key));
}

int ld_map_put(ld_map *m, const char *key, void *value)
{
    void *entry[2] = {(void *)key, value};
    return table_put(&m->t, entry);
}

void *ld_map_del(ld_map *m, const char *key)
{
    void *entry[2];
    return table_del(&m->t, key, entry) ? entry[1] : NULL;
}

void ld_map_tidy(ld_map *m, size_t slots)
{
    table_tidy(&m->t, slots);
}

int ld_map_next(const ld_map *m, size_t *it, const char **key, void **value)
{
    void **s = table_next(&m->t, it);
    if (!s) return 0;
    *key = s[0];
    *value = s[1];
    return 1;
}

/* ---- ld_index: the objects hold their keys ------------------------------------------ */

void ld_index_init(ld_index *x, const char *(*key_of)(const void *obj))
{
    table_init(&x->t, key_of);
}

void ld_index_fini(ld_index *x)
{
    table_fini(&x->t);
}

void *ld_index_getn(const ld_index *x, const char *key, size_t keylen)
{
    void **s = table_find(&x->t, key, keylen);
    return s ? s[0] : NULL;
}

void *ld_index_get(const ld_index *x, const char *key)
{
    return ld_index_getn(x, key, strlen(key));
}

int ld_index_put(ld_index *x, void *obj)
{
    return table_put(&x->t, &obj);
}

void *ld_index_del(ld_index *x, const char *key)
{
    void *obj;
    return table_del(&x->t, key, &obj) ? obj : NULL;
}

void ld_index_tidy(ld_index *x, size_t slots)
{
    table_tidy(&x->t, slots);
}

void *ld_index_next(const ld_index *x, size_t *it)
{
    void **s = table_next(&x->t, it);
    return s ? s[0] : NULL;
}
