/* limit.h: a token bucket per source, so one flooding producer cannot take
 * intake from the others.
 *
 * Each source may send <rate> events per second on average and <burst> at
 * once. Buckets live in a pool and a map keyed by source id; at most
 * <max_sources> are tracked, and events from sources beyond that pass
 * unlimited (and are counted), so memory stays bounded whatever the ids.
 * Loop thread only. */
#ifndef LD_INGEST_LIMIT_H
#define LD_INGEST_LIMIT_H

#include <stddef.h>
#include <stdint.h>

#include "core/map.h"
#include "core/pool.h"
#include "wire/wire.h"

typedef struct ld_bucket {
    char source[LD_MAX_ID_LEN + 1];
    double tokens;
    uint64_t last_ms;
} ld_bucket;

typedef struct ld_limiter {
    double rate, burst;      /* rate 0: no limit */
    size_t max_sources;
    ld_map by_source;
    ld_pool buckets;
    uint64_t limited, untracked;
} ld_limiter;

void ld_limiter_init(ld_limiter *l, double rate, double burst, size_t max_sources);
void ld_limiter_fini(ld_limiter *l);

/* ld_limiter_take spends one token of <source> at <now_ms>. Returns 1 if the
 * event may pass; 0 if not, with *retry_after_ms set to when one will be. */
int ld_limiter_take(ld_limiter *l, const char *source, uint64_t now_ms, uint32_t *retry_after_ms);

#endif
