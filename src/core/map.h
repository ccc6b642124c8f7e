/* map.h: an open-addressing hash map from a string key to a pointer.
 *
 * The map does not copy keys: each key must live as long as its entry (the
 * usual case is a key embedded in the object the value points to). Deletion
 * uses backward-shift, so there are no tombstones and lookups stay short.
 *
 * A slot is 17 bytes: the key and value pointers, and beside them one byte
 * of the key's hash, which settles almost every probe without reading the
 * key. The full hash is not kept: growing and deleting hash the keys they
 * move again. Maps keyed by incident id hold one slot per open incident at
 * a load of 3/8 to 3/4, so each byte of a slot is 1.3 to 2.7 bytes per
 * open incident (docs/BENCHMARKS.md). Not thread-safe. */
#ifndef LD_CORE_MAP_H
#define LD_CORE_MAP_H

#include <stddef.h>
#include <stdint.h>

typedef struct ld_map_slot {
    const char *key;            /* NULL: empty */
    void *value;
} ld_map_slot;

typedef struct ld_map {
    ld_map_slot *slots;         /* cap slots, then cap tag bytes, in one block */
    uint8_t *tags;              /* per slot: the top byte of its key's hash */
    size_t cap; /* power of two */
    size_t len;
} ld_map;

void ld_map_init(ld_map *m);
void ld_map_fini(ld_map *m);
void *ld_map_get(const ld_map *m, const char *key);
void *ld_map_getn(const ld_map *m, const char *key, size_t keylen);
/* ld_map_put inserts or replaces; returns 0 or LD_ENOMEM. */
int ld_map_put(ld_map *m, const char *key, void *value);
/* ld_map_del removes <key>; returns the old value or NULL. */
void *ld_map_del(ld_map *m, const char *key);

uint32_t ld_hash(const void *data, size_t len);

/* ld_index: the same for objects that carry their own key (an incident and
 * its id): a slot is the object pointer and a byte of its key's hash, 9
 * bytes where ld_map takes 17, for the table of every open incident. The
 * key is read through <key_of>; it must not change while the object is in. */
typedef struct ld_index {
    void **slots;               /* cap objects (NULL: empty), then cap tag bytes */
    uint8_t *tags;
    size_t cap; /* power of two */
    size_t len;
    const char *(*key_of)(const void *obj);
} ld_index;

void ld_index_init(ld_index *x, const char *(*key_of)(const void *obj));
void ld_index_fini(ld_index *x);
void *ld_index_getn(const ld_index *x, const char *key, size_t keylen);
void *ld_index_get(const ld_index *x, const char *key);
/* ld_index_put inserts <obj>, or replaces the object with its key; 0 or LD_ENOMEM. */
int ld_index_put(ld_index *x, void *obj);
/* ld_index_del removes the object with <key>; returns it, or NULL. */
void *ld_index_del(ld_index *x, const char *key);

#endif
