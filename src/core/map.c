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
    m->tags = NULL;
    m->cap = 0;
    m->len = 0;
}

void ld_map_fini(ld_map *m)
{
    free(m->slots);
    ld_map_init(m);
}

static uint8_t tag_of(uint32_t h)
{
    return (uint8_t)(h >> 24);
}

static int keyeq(const ld_map *m, size_t i, uint8_t tag, const char *key, size_t keylen)
{
    const char *k = m->slots[i].key;
    return m->tags[i] == tag && strncmp(k, key, keylen) == 0 && k[keylen] == '\0';
}

/* find returns the slot of <key> (hash <h>), or of the hole where it would go. */
static size_t find(const ld_map *m, uint32_t h, const char *key, size_t keylen)
{
    size_t mask = m->cap - 1;
    uint8_t tag = tag_of(h);
    size_t i = h & mask;
    while (m->slots[i].key && !keyeq(m, i, tag, key, keylen)) i = (i + 1) & mask;
    return i;
}

static uint32_t key_hash(const char *key)
{
    return ld_hash(key, strlen(key));
}

void *ld_map_getn(const ld_map *m, const char *key, size_t keylen)
{
    if (m->len == 0) return NULL;
    size_t i = find(m, ld_hash(key, keylen), key, keylen);
    return m->slots[i].key ? m->slots[i].value : NULL;
}

void *ld_map_get(const ld_map *m, const char *key)
{
    return ld_map_getn(m, key, strlen(key));
}

static int grow(ld_map *m)
{
    size_t ncap = m->cap ? m->cap * 2 : 16;
    ld_map n = {calloc(ncap, sizeof *n.slots + 1), NULL, ncap, m->len};
    if (!n.slots) return LD_ENOMEM;
    n.tags = (uint8_t *)(n.slots + ncap);
    for (size_t i = 0; i < m->cap; i++) {
        if (!m->slots[i].key) continue;
        uint32_t h = key_hash(m->slots[i].key);
        size_t j = h & (ncap - 1);
        while (n.slots[j].key) j = (j + 1) & (ncap - 1);
        n.slots[j] = m->slots[i];
        n.tags[j] = tag_of(h);
    }
    free(m->slots);
    *m = n;
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
    size_t i = find(m, h, key, keylen);
    if (!m->slots[i].key) m->len++;
    m->slots[i].key = key;
    m->slots[i].value = value;
    m->tags[i] = tag_of(h);
    return 0;
}

void *ld_map_del(ld_map *m, const char *key)
{
    if (m->len == 0) return NULL;
    size_t keylen = strlen(key);
    size_t i = find(m, ld_hash(key, keylen), key, keylen);
    if (!m->slots[i].key) return NULL;
    void *old = m->slots[i].value;
    /* Backward-shift the run that follows so probes never cross a hole. */
    size_t mask = m->cap - 1;
    size_t j = i;
    for (;;) {
        j = (j + 1) & mask;
        if (!m->slots[j].key) break;
        size_t home = key_hash(m->slots[j].key) & mask;
        int movable = (j > i) ? (home <= i || home > j) : (home <= i && home > j);
        if (movable) {
            m->slots[i] = m->slots[j];
            m->tags[i] = m->tags[j];
            i = j;
        }
    }
    m->slots[i].key = NULL;
    m->slots[i].value = NULL;
    m->len--;
    return old;
}
