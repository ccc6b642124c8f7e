/* recover.h: rebuilding the engine from Redis when linkd starts.
 *
 * 1. GET ld:applied: the stream id up to which every incident record was
 *    written (ld_store_put_mark).
 * 2. ZRANGE ld:open, then MGET their records in batches: ld_engine_restore.
 * 2b. The correlation windows are rebuilt from the stream (rewind.h).
 * 3. XRANGE ld:events after the mark, in batches: an event whose incident has
 *    no record (linkd died between ACCEPTED and the write-behind) is opened
 *    again as of its acceptance time, so nothing accepted is lost.
 * Both steps are idempotent, so a recovery cut short by a Redis outage simply
 * runs again. An event the spool holds as well (accepted into Redis by a run
 * that died before answering, then resent while Redis was away and spooled)
 * is not opened again: the engine holds its spooled incident. Intake answers RETRY_LATER until it is done. Loop thread only. */
#ifndef LD_STORE_RECOVER_H
#define LD_STORE_RECOVER_H

#include <stddef.h>
#include <stdint.h>

#include "engine/engine.h"
#include "store/rewind.h"
#include "store/spool.h"
#include "store/store.h"

typedef struct ld_recovery {
    ld_store *store;
    ld_engine *engine;
    void (*done)(void *arg, int status);
    void *arg;
    char mark[48];              /* replay events after this stream id */
    char **ids;                 /* open incident ids from ld:open */
    size_t nids, next;
    uint64_t started_ms;
    uint64_t restored, replayed, skipped, bad;
    struct redisReply *batch;   /* the XRANGE batch whose records are being checked */
    int running;
    int catchup;                /* ld_recover_replay: step 3 only */
    const ld_spool *spool;      /* set by the caller before a start, kept: NULL if none */
    ld_rewind rewind;           /* correlation windows rebuilt between steps 2 and 3 */
} ld_recovery;

/* ld_recover_start begins; done(arg, 0) when the engine holds every open
 * incident, or done(arg, LD_EUNAVAIL) if Redis went away meanwhile. */
int ld_recover_start(ld_recovery *rc, ld_store *s, ld_engine *e,
                     void (*done)(void *arg, int status), void *arg);

/* ld_recover_replay runs step 3 alone, after stream id <after>: events an
 * intake call cut off by a lost connection may have appended are opened if
 * the engine holds no incident for them and Redis no record. done() as
 * above (possibly before it returns, if Redis is gone again). Returns 0 or
 * LD_EUNAVAIL without calling done. */
int ld_recover_replay(ld_recovery *rc, ld_store *s, ld_engine *e, const char *after,
                      void (*done)(void *arg, int status), void *arg);

#endif
