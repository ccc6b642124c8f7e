/* map.h: open-addressing hash tables keyed by strings.
 *
 * ld_map maps a key to a pointer; ld_index holds objects that carry their
 * own keys (an incident and its id). Neither copies keys: a key must live as
 * long as its entry (the usual case is a key embedded in the object).
 *
 * A slot is its pointers (ld_map: key and value, 16 bytes; ld_index: the
 * object, 8) and beside them one byte of the key's hash, which settles
 * almost every probe without reading the key. The full hash is not kept:
 * growing and deleting hash the keys they move again. Tables keyed by
 * incident id hold one slot per open incident at a load of 3/8 to 3/4, so
 * each byte of a slot is 1.3 to 2.7 bytes per open incident
 * (docs/BENCHMARKS.md). Deletion shifts the run that follows back, so there
 * are no tombstones and lookups stay short.
 *
 * Growing is spread out, as in Redis's dict: a table past 3/4 full gets one
 * twice the size, and each later put or delete moves 16 slots of the old
 * one into it, so no single call rehashes every key (at 65,536 open
 * incidents that took the loop 10-25 ms at once). A periodic caller also
 * moves a bounded number with ld_map_tidy / ld_index_tidy, so the old table
 * does not outlive the traffic that filled it. While the move lasts, a
 * lookup that misses the new table looks in the old one, and a key deleted
 * or replaced there leaves a tombstone, which the move skips. Not
 * thread-safe. */
#ifndef LD_CORE_MAP_H
#define LD_CORE_MAP_H

#include <stddef.h>
#include <stdint.h>

/* The table both share; its fields are the implementation's (map.c). */
typedef struct ld_table {
    void **slots;               /* cap slots of 1 or 2 pointers, then cap tag bytes, one block */
    uint8_t *tags;              /* per slot: the top byte of its key's hash */
    size_t cap; /* power of two */
    size_t len;                 /* entries, in both tables while growing */
    void **old;                 /* while growing: the table before, moved slot by slot */
    uint8_t *old_tags;
    size_t old_cap, start, moved; /* old slots start, start + 1, ... are moved; moved so far */
    const char *(*key_of)(const void *obj); /* ld_index: 1 pointer a slot; NULL (ld_map): 2,
                                               the key and the value */
} ld_table;

typedef struct ld_map {
    ld_table t;
} ld_map;

void ld_map_init(ld_map *m);
void ld_map_fini(ld_map *m);
void *ld_map_get(const ld_map *m, const char *key);
void *ld_map_getn(const ld_map *m, const char *key, size_t keylen);
/* ld_map_put inserts or replaces; returns 0 or LD_ENOMEM. */
int ld_map_put(ld_map *m, const char *key, void *value);
/* ld_map_del removes <key>; returns the old value or NULL. */
void *ld_map_del(ld_map *m, const char *key);
/* ld_map_next visits every entry once, in no order: set *it to 0, then call
 * until it returns 0. The map must not change meanwhile. */
int ld_map_next(const ld_map *m, size_t *it, const char **key, void **value);
static inline size_t ld_map_len(const ld_map *m) { return m->t.len; }
/* ld_map_tidy moves up to <slots> slots of a growth under way; the periodic
 * callers move LD_TIDY_SLOTS, about 0.3 ms at most. */
#define LD_TIDY_SLOTS 2048
void ld_map_tidy(ld_map *m, size_t slots);

uint32_t ld_hash(const void *data, size_t len);

/* ld_index: a slot is the object pointer, 8 bytes where ld_map takes 16,
 * for the table of every open incident. The key is read through <key_of>;
 * it must not change while the object is in. */
typedef struct ld_index {
    ld_table t;
} ld_index;

void ld_index_init(ld_index *x, const char *(*key_of)(const void *obj));
void ld_index_fini(ld_index *x);
void *ld_index_getn(const ld_index *x, const char *key, size_t keylen);
void *ld_index_get(const ld_index *x, const char *key);
/* ld_index_put inserts <obj>, or replaces the object with its key; 0 or LD_ENOMEM. */
int ld_index_put(ld_index *x, void *obj);
/* ld_index_del removes the object with <key>; returns it, or NULL. */
void *ld_index_del(ld_index *x, const char *key);
/* ld_index_next returns each object once, then NULL; as ld_map_next. */
void *ld_index_next(const ld_index *x, size_t *it);
static inline size_t ld_index_len(const ld_index *x) { return x->t.len; }
void ld_index_tidy(ld_index *x, size_t slots);

#endif
