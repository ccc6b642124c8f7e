#include "core/map.h"

#include <stdlib.h>
#include <string.h>

#include "core/err.h"

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

void ld_map_init(ld_map *m)
{
    m->slots = NULL;
    m->cap = 0;
    m->len = 0;
}

void ld_map_fini(ld_map *m)
{
    free(m->slots);
    ld_map_init(m);
}

static int keyeq(const ld_map_slot *s, uint32_t h, const char *key, size_t keylen)
{
    return s->hash == h && strncmp(s->key, key, keylen) == 0 && s->key[keylen] == '\0';
}

void *ld_map_getn(const ld_map *m, const char *key, size_t keylen)
{
    if (m->len == 0) return NULL;
    uint32_t h = ld_hash(key, keylen);
    size_t mask = m->cap - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
        const ld_map_slot *s = &m->slots[i];
        if (!s->key) return NULL;
        if (keyeq(s, h, key, keylen)) return s->value;
    }
}

void *ld_map_get(const ld_map *m, const char *key)
{
    return ld_map_getn(m, key, strlen(key));
}

static void insert_slot(ld_map_slot *slots, size_t cap, ld_map_slot s)
{
    size_t mask = cap - 1;
    for (size_t i = s.hash & mask;; i = (i + 1) & mask) {
        if (!slots[i].key) {
            slots[i] = s;
            return;
        }
    }
}

static int grow(ld_map *m)
{
    size_t ncap = m->cap ? m->cap * 2 : 16;
    ld_map_slot *ns = calloc(ncap, sizeof *ns);
    if (!ns) return LD_ENOMEM;
    for (size_t i = 0; i < m->cap; i++)
        if (m->slots[i].key) insert_slot(ns, ncap, m->slots[i]);
    free(m->slots);
    m->slots = ns;
    m->cap = ncap;
    return 0;
}

int ld_map_put(ld_map *m, const char *key, void *value)
{
    if ((m->len + 1) * 4 > m->cap * 3) { /* keep load under 3/4 */
        int rv = grow(m);
        if (rv) return rv;
    }
    size_t keylen = strlen(key);
    uint32_t h = ld_hash(key, keylen);
    size_t mask = m->cap - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
        ld_map_slot *s = &m->slots[i];
        if (!s->key) {
            s->key = key;
            s->hash = h;
            s->value = value;
            m->len++;
            return 0;
        }
        if (keyeq(s, h, key, keylen)) {
            s->key = key;
            s->value = value;
            return 0;
        }
    }
}

void *ld_map_del(ld_map *m, const char *key)
{
    if (m->len == 0) return NULL;
    size_t keylen = strlen(key);
    uint32_t h = ld_hash(key, keylen);
    size_t mask = m->cap - 1;
    size_t i = h & mask;
    for (;; i = (i + 1) & mask) {
        if (!m->slots[i].key) return NULL;
        if (keyeq(&m->slots[i], h, key, keylen)) break;
    }
    void *old = m->slots[i].value;
    /* Backward-shift the run that follows so probes never cross a hole. */
    size_t j = i;
    for (;;) {
        j = (j + 1) & mask;
        if (!m->slots[j].key) break;
        size_t home = m->slots[j].hash & mask;
        int movable = (j > i) ? (home <= i || home > j) : (home <= i && home > j);
        if (movable) {
            m->slots[i] = m->slots[j];
            i = j;
        }
    }
    m->slots[i].key = NULL;
    m->len--;
    return old;
}
