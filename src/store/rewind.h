/* rewind.h: correlation windows rebuilt from ld:events at start-up.
 *
 * Between restoring the open incidents and replaying the events after the
 * write-behind mark, recovery reads the stream back over the longest
 * correlation window (XRANGE from now minus that window, in batches, to the
 * end) and feeds each event to the windows only (ld_engine_rewind): counts
 * and sequences under way before the restart continue, and a pattern that
 * fired before it rests as it did, without a second upgrade. Events it
 * read are not counted again when step 3 of recovery replays them. At most
 * LD_REWIND_MAX events are read, oldest first; past that the newer part of
 * the range is not counted and the log says so (REWIND-CAP). Loop thread
 * only. */
#ifndef LD_STORE_REWIND_H
#define LD_STORE_REWIND_H

#include <stdint.h>

#include "engine/engine.h"
#include "store/store.h"

#define LD_REWIND_MAX 1000000   /* events read back at most */

typedef struct ld_rewind {
    ld_store *store;
    ld_engine *engine;
    void (*done)(void *arg, int status);
    void *arg;
    char from[48];              /* the next XRANGE starts after this id ("(" + id) */
    uint64_t read, counted, bad;
    uint64_t started_ms;
} ld_rewind;

/* ld_rewind_start reads the stream back and calls done(arg, 0) when the
 * windows hold it, or done(arg, LD_EUNAVAIL) if Redis went away. Without
 * correlation rules it calls done(arg, 0) at once. */
void ld_rewind_start(ld_rewind *rw, ld_store *s, ld_engine *e,
                     void (*done)(void *arg, int status), void *arg);

#endif
