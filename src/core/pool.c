#include "core/pool.h"

#include <stdlib.h>
#include <string.h>

void ld_pool_init(ld_pool *p, size_t size, size_t per_chunk)
{
    size_t align = sizeof(void *) * 2;
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
