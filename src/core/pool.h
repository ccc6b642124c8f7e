/* pool.h: free lists of fixed-size objects, and of small blocks by size class.
 *
 * Objects are carved from chunks and never returned to the system until
 * ld_pool_fini(); they are aligned to 8 bytes. Under LD_NO_POOL (sanitizer
 * builds) every get is a calloc and every put a free, so use-after-free and
 * leaks still show. Objects come back zeroed. Not thread-safe. */
#ifndef LD_CORE_POOL_H
#define LD_CORE_POOL_H

#include <stddef.h>

typedef struct ld_pool {
    size_t size;        /* object size, rounded up to 8 */
    size_t per_chunk;
    void *free;         /* singly linked through the first word */
    void *chunks;       /* singly linked through the first word */
    size_t in_use;
} ld_pool;

void ld_pool_init(ld_pool *p, size_t size, size_t per_chunk);
void ld_pool_fini(ld_pool *p);
void *ld_pool_get(ld_pool *p);     /* NULL when out of memory */
void ld_pool_put(ld_pool *p, void *obj);

/* ld_pools: blocks of up to LD_POOLS_MAX bytes from one pool per size class
 * (multiples of 8 up to 256, then steps of a quarter), each grown in slabs
 * of about 64 KiB. For what is small, varies in size and is kept for a long
 * time: strings kept once per incident, arrays that start small and grow. A
 * block is given back with the size it was asked for, which picks its class.
 * Blocks are aligned to 8 bytes; at most a quarter of a block above 256
 * bytes is waste. */
#define LD_POOLS_MAX 2048
#define LD_POOLS_NCLASS 44

typedef struct ld_pools {
    ld_pool cls[LD_POOLS_NCLASS];
} ld_pools;

void ld_pools_init(ld_pools *p);
void ld_pools_fini(ld_pools *p);
/* ld_pools_get returns a zeroed block of at least <size> (1..LD_POOLS_MAX)
 * bytes, or NULL when out of memory or <size> is out of range. */
void *ld_pools_get(ld_pools *p, size_t size);
/* ld_pools_put gives back <obj> (NULL is ignored), got with <size>. */
void ld_pools_put(ld_pools *p, void *obj, size_t size);
/* ld_pools_block is the size of the block ld_pools_get(<size>) returns
 * (0 if out of range): growing within it needs no new block. */
size_t ld_pools_block(size_t size);
/* ld_pools_bytes is the memory the pools hold from the system. */
size_t ld_pools_bytes(const ld_pools *p);

#endif
