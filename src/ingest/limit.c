#include "ingest/limit.h"

#include <string.h>

void ld_limiter_init(ld_limiter *l, double rate, double burst, size_t max_sources)
{
    memset(l, 0, sizeof *l);
    l->rate = rate;
    l->burst = burst < 1 ? 1 : burst;
    l->max_sources = max_sources;
    ld_map_init(&l->by_source);
    ld_pool_init(&l->buckets, sizeof(ld_bucket), 256);
}

void ld_limiter_fini(ld_limiter *l)
{
    const char *key;
    void *value;
    for (size_t it = 0; ld_map_next(&l->by_source, &it, &key, &value);)
        ld_pool_put(&l->buckets, value);
    ld_map_fini(&l->by_source);
    ld_pool_fini(&l->buckets);
}

int ld_limiter_take(ld_limiter *l, const char *source, uint64_t now_ms, uint32_t *retry_after_ms)
{
    if (l->rate <= 0) return 1;
    ld_bucket *b = ld_map_get(&l->by_source, source);
    if (!b) {
        if (ld_map_len(&l->by_source) >= l->max_sources || !(b = ld_pool_get(&l->buckets))) {
            l->untracked++;
            return 1;
        }
        size_t n = strlen(source);
        if (n > LD_MAX_ID_LEN) n = LD_MAX_ID_LEN;
        memcpy(b->source, source, n);
        b->source[n] = '\0';
        b->tokens = l->burst;
        b->last_ms = now_ms;
        if (ld_map_put(&l->by_source, b->source, b) != 0) {
            ld_pool_put(&l->buckets, b);
            l->untracked++;
            return 1;
        }
    }
    if (now_ms > b->last_ms) {
        b->tokens += (double)(now_ms - b->last_ms) * l->rate / 1000.0;
        if (b->tokens > l->burst) b->tokens = l->burst;
        b->last_ms = now_ms;
    }
    if (b->tokens >= 1.0) {
        b->tokens -= 1.0;
        return 1;
    }
    l->limited++;
    *retry_after_ms = (uint32_t)((1.0 - b->tokens) * 1000.0 / l->rate) + 1;
    return 0;
}
