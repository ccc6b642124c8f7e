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

/* ---- ld_index: the objects hold their keys ----------------------------------- */

void ld_index_init(ld_index *x, const char *(*key_of)(const void *obj))
{
    x->slots = NULL;
    x->tags = NULL;
    x->cap = 0;
    x->len = 0;
    x->key_of = key_of;
}

void ld_index_fini(ld_index *x)
{
    free(x->slots);
    ld_index_init(x, x->key_of);
}

static size_t index_find(const ld_index *x, uint32_t h, const char *key, size_t keylen)
{
    size_t mask = x->cap - 1;
    uint8_t tag = tag_of(h);
    size_t i = h & mask;
    for (; x->slots[i]; i = (i + 1) & mask) {
        if (x->tags[i] != tag) continue;
        const char *k = x->key_of(x->slots[i]);
        if (strncmp(k, key, keylen) == 0 && k[keylen] == '\0') break;
    }
    return i;
}

void *ld_index_getn(const ld_index *x, const char *key, size_t keylen)
{
    if (x->len == 0) return NULL;
    return x->slots[index_find(x, ld_hash(key, keylen), key, keylen)];
}

void *ld_index_get(const ld_index *x, const char *key)
{
    return ld_index_getn(x, key, strlen(key));
}

static int index_grow(ld_index *x)
{
    size_t ncap = x->cap ? x->cap * 2 : 16;
    void **ns = calloc(ncap, sizeof *ns + 1);
    if (!ns) return LD_ENOMEM;
    uint8_t *nt = (uint8_t *)(ns + ncap);
    for (size_t i = 0; i < x->cap; i++) {
        if (!x->slots[i]) continue;
        uint32_t h = key_hash(x->key_of(x->slots[i]));
        size_t j = h & (ncap - 1);
        while (ns[j]) j = (j + 1) & (ncap - 1);
        ns[j] = x->slots[i];
        nt[j] = tag_of(h);
    }
    free(x->slots);
    x->slots = ns;
    x->tags = nt;
    x->cap = ncap;
    return 0;
}

int ld_index_put(ld_index *x, void *obj)
{
    if ((x->len + 1) * 4 > x->cap * 3) { /* keep load under 3/4 */
        int rv = index_grow(x);
        if (rv) return rv;
    }
    const char *key = x->key_of(obj);
    size_t keylen = strlen(key);
    uint32_t h = ld_hash(key, keylen);
    size_t i = index_find(x, h, key, keylen);
    if (!x->slots[i]) x->len++;
    x->slots[i] = obj;
    x->tags[i] = tag_of(h);
    return 0;
}

void *ld_index_del(ld_index *x, const char *key)
{
    if (x->len == 0) return NULL;
    size_t keylen = strlen(key);
    size_t i = index_find(x, ld_hash(key, keylen), key, keylen);
    void *old = x->slots[i];
    if (!old) return NULL;
    size_t mask = x->cap - 1;
    size_t j = i;
    for (;;) {
        j = (j + 1) & mask;
        if (!x->slots[j]) break;
        size_t home = key_hash(x->key_of(x->slots[j])) & mask;
        int movable = (j > i) ? (home <= i || home > j) : (home <= i && home > j);
        if (movable) {
            x->slots[i] = x->slots[j];
            x->tags[i] = x->tags[j];
            i = j;
        }
    }
    x->slots[i] = NULL;
    x->len--;
    return old;
}
