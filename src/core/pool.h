/* pool.h: a free list of fixed-size objects.
 *
 * Objects are carved from chunks and never returned to the system until
 * ld_pool_fini(). Under LD_NO_POOL (sanitizer builds) every get is a calloc
 * and every put a free, so use-after-free and leaks still show. Objects come
 * back zeroed. Not thread-safe. */
#ifndef LD_CORE_POOL_H
#define LD_CORE_POOL_H

#include <stddef.h>

typedef struct ld_pool {
    size_t size;        /* object size, rounded up */
    size_t per_chunk;
    void *free;         /* singly linked through the first word */
    void *chunks;       /* singly linked through the first word */
    size_t in_use;
} ld_pool;

void ld_pool_init(ld_pool *p, size_t size, size_t per_chunk);
void ld_pool_fini(ld_pool *p);
void *ld_pool_get(ld_pool *p);     /* NULL when out of memory */
void ld_pool_put(ld_pool *p, void *obj);

#endif
