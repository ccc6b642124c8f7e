/* ingest.h: producers' intake over NNG REP.
 *
 * Each request is decoded into its context's arena, every event validated,
 * the valid ones made durable and deduplicated by one Redis script call, and
 * only then answered ACCEPTED (and handed to the engine) or DUPLICATE. Bad
 * events are answered REJECTED with a reason naming the field and counted by
 * reason; the rest of the request is unaffected. While Redis is unavailable
 * or the daemon is draining, valid events are answered RETRY_LATER: nothing
 * is accepted that is not durable. The exception, with a spool: while Redis
 * is unavailable, life-safety events (rules: life_safety) are written to the
 * local spool and ACCEPTED once it is synced (store/spool.h). Loop thread only. */
#ifndef LD_INGEST_INGEST_H
#define LD_INGEST_INGEST_H

#include <stddef.h>
#include <stdint.h>

#include "core/rep.h"
#include "engine/engine.h"
#include "ingest/limit.h"
#include "ingest/sources.h"
#include "store/spool.h"
#include "store/store.h"
#include "wire/wire.h"

#define LD_MAX_EVENTS_PER_REQUEST 1024

typedef struct ld_ingest_stats {
    uint64_t requests, malformed, events;
    uint64_t accepted, duplicate, rejected, retry_later, rate_limited;
    uint64_t spooled;       /* accepted into the spool while Redis was away */
    uint64_t rejected_by[LD_REJECT_COUNT];
    uint64_t by_kind[LD_KIND_COUNT][5];  /* [enum ld_kind, 0 = unknown][Linkd__V1__Result] */
} ld_ingest_stats;

struct ingest_req;

typedef struct ld_ingest {
    ld_rep rep;
    ld_store *store;
    ld_spool *spool;        /* NULL: no spool (--spool not given) */
    ld_engine *engine;
    struct ingest_req *reqs;
    size_t nreqs;
    size_t inflight;        /* requests waiting for Redis */
    size_t max_msg;         /* --max-message: larger requests are answered oversize */
    const char *hold;       /* non-NULL: answer valid events RETRY_LATER with this reason */
    int spool_only;         /* with hold: life-safety events still go to the spool */
    ld_limiter limiter;     /* per source */
    ld_source_auth sources; /* producers' signed hellos (source_keys) */
    ld_ingest_stats stats;
} ld_ingest;

/* <source_rate> events/s per source (0: no limit), with a burst of one
 * second's worth. */
int ld_ingest_open(ld_ingest *in, uv_loop_t *loop, const char *url, size_t nctx,
                   size_t max_msg, double source_rate, ld_store *store, ld_engine *engine);
/* ld_ingest_hold makes intake answer RETRY_LATER with <reason> (NULL: resume);
 * requests already waiting for Redis finish. */
static inline void ld_ingest_hold(ld_ingest *in, const char *reason) { in->hold = reason; }
/* ld_ingest_spool_only makes a hold let life-safety events through into the
 * spool (a start without Redis, and the recovery after it); needs a spool. */
static inline void ld_ingest_spool_only(ld_ingest *in, int on) { in->spool_only = on; }
void ld_ingest_close(ld_ingest *in);

#endif
