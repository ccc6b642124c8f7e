#include "core/pool.h"

#include <stdlib.h>
#include <string.h>

void ld_pool_init(ld_pool *p, size_t size, size_t per_chunk)
{
    /* Eight bytes is the most any pooled object needs (pointers, uint64_t,
     * double): rounding to malloc's sixteen would cost a 152-byte task 8. */
    size_t align = 8;
    p->size = (size < sizeof(void *) ? sizeof(void *) : size + align - 1) & ~(align - 1);
    p->per_chunk = per_chunk ? per_chunk : 256;
    p->free = NULL;
    p->chunks = NULL;
    p->in_use = 0;
}

void ld_pool_fini(ld_pool *p)
{
    void *c = p->chunks;
    while (c) {
        void *next = *(void **)c;
        free(c);
        c = next;
    }
    p->chunks = NULL;
    p->free = NULL;
}

#ifdef LD_NO_POOL
void *ld_pool_get(ld_pool *p)
{
    void *o = calloc(1, p->size);
    if (o) p->in_use++;
    return o;
}

void ld_pool_put(ld_pool *p, void *obj)
{
    if (!obj) return;
    p->in_use--;
    free(obj);
}
#else
void *ld_pool_get(ld_pool *p)
{
    if (!p->free) {
        /* The chunk's first slot holds the chunk list link. */
        size_t hdr = p->size;
        char *c = malloc(hdr + p->size * p->per_chunk);
        if (!c) return NULL;
        *(void **)c = p->chunks;
        p->chunks = c;
        for (size_t i = 0; i < p->per_chunk; i++) {
            void *o = c + hdr + i * p->size;
            *(void **)o = p->free;
            p->free = o;
        }
    }
    void *o = p->free;
    p->free = *(void **)o;
    /* The next get's link, read when it pops: a free block is cold by then
     * (a tick's worth of audit lines is megabytes), and this costs nothing. */
    if (p->free) __builtin_prefetch(p->free);
    memset(o, 0, p->size);
    p->in_use++;
    return o;
}

void ld_pool_put(ld_pool *p, void *obj)
{
    if (!obj) return;
    *(void **)obj = p->free;
    p->free = obj;
    p->in_use--;
}
#endif

/* ---- size classes ------------------------------------------------------------ */

#define SLAB_BYTES 65536

/* class_of maps a size to its class: 8, 16, ... 256 (32 classes), then
 * four classes per doubling (320, 384, 448, 512, 640, ... 2048). Most of
 * what an open incident holds here is 40 to 250 bytes, where a step of 8
 * wastes 4 bytes a block on average. */
static int class_of(size_t size)
{
    if (size == 0 || size > LD_POOLS_MAX) return -1;
    if (size <= 256) return (int)((size + 7) / 8) - 1;
    int c = 32;
    for (size_t base = 256; base < LD_POOLS_MAX; base *= 2) {
        size_t step = base / 4;
        for (int i = 1; i <= 4; i++, c++)
            if (size <= base + (size_t)i * step) return c;
    }
    return -1;
}

static size_t class_size(int c)
{
    if (c < 32) return (size_t)(c + 1) * 8;
    size_t base = (size_t)256 << ((c - 32) / 4);
    return base + (size_t)((c - 32) % 4 + 1) * (base / 4);
}

void ld_pools_init(ld_pools *p)
{
    for (int c = 0; c < LD_POOLS_NCLASS; c++) {
        size_t sz = class_size(c);
        ld_pool_init(&p->cls[c], sz, SLAB_BYTES / sz);
    }
}

void ld_pools_fini(ld_pools *p)
{
    for (int c = 0; c < LD_POOLS_NCLASS; c++) ld_pool_fini(&p->cls[c]);
}

void *ld_pools_get(ld_pools *p, size_t size)
{
    int c = class_of(size);
    return c < 0 ? NULL : ld_pool_get(&p->cls[c]);
}

void ld_pools_put(ld_pools *p, void *obj, size_t size)
{
    int c = class_of(size);
    if (obj && c >= 0) ld_pool_put(&p->cls[c], obj);
}

size_t ld_pools_block(size_t size)
{
    int c = class_of(size);
    return c < 0 ? 0 : class_size(c);
}

size_t ld_pools_bytes(const ld_pools *p)
{
    size_t n = 0;
    for (int c = 0; c < LD_POOLS_NCLASS; c++) {
        const ld_pool *q = &p->cls[c];
#ifdef LD_NO_POOL
        n += q->in_use * q->size;
#else
        for (void *k = q->chunks; k; k = *(void **)k) n += q->size * (q->per_chunk + 1);
#endif
    }
    return n;
}
