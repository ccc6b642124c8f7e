/* audit.h: the tamper-evident trail of every incident's state changes.
 *
 * Each change the engine reports (ld_observation) becomes one JSON line
 * appended to the Redis list ld:audit:<incident id>:
 *
 *   {"n":3,"at":...,"kind":"task_escalated","task":"fire","level":1,...,
 *    "hash":"<64 hex>"}
 *
 * hash = SHA-256(prev + "\n" + the line up to ,"hash":), where prev is the
 * previous line's hash (64 zeros for n = 1): changing, removing or
 * reordering an entry breaks the chain from there on (`linkctl audit`
 * checks it). It does not stop someone who can rewrite the whole list;
 * anchor the last hash elsewhere for that.
 *
 * The loop keeps each open incident's last hash; after a restart it reads
 * the tail back from Redis before appending. Lines wait in an ordered queue
 * and are written when Redis is up; one the connection lost is sent again
 * in its place, so a line may reach Redis twice in a row (the checker
 * takes an identical repeat as such). A closed incident's trail expires
 * with its record (90 days). Loop thread only. */
#ifndef LD_AUDIT_AUDIT_H
#define LD_AUDIT_AUDIT_H

#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/list.h"
#include "core/map.h"
#include "core/pool.h"
#include "engine/engine.h"

struct ld_store;

#define LD_AUDIT_LINE_MAX 768
#define LD_AUDIT_QUEUE_MAX 1000000   /* lines waiting for Redis before new ones are dropped */
#define LD_AUDIT_KEEP_S 7776000        /* 90 days, seconds: a closed trail lives as its record */

typedef struct ld_audit_stats {
    uint64_t appended, written, resent, dropped, tail_reads, unexpired;
} ld_audit_stats;

typedef struct ld_audit {
    struct ld_store *store;
    const ld_engine *engine;
    ld_map tails;                /* incident id -> its chain's tail */
    struct audit_tail *last_tail; /* the one asked for last, NULL once released */
    uint64_t serials;            /* tails made so far */
    ld_pools lines;              /* audit_entry blocks, each sized to its line */
    ld_pool tail_pool;
    ld_list queue;               /* lines not sent yet, in order: waiting for a tail, or queued */
    ld_list sent;                /* lines sent and not yet confirmed, in the order sent */
    size_t queued;               /* lines not yet in Redis: both lists */
    size_t requeued;             /* lines in <sent> that must go again */
    uint64_t retry_at, backoff_ms; /* after a refused write: wait, doubling to 5 s */
    ld_audit_stats stats;
    ld_buf scratch;              /* where a line is built, reused */
} ld_audit;

void ld_audit_init(ld_audit *a, struct ld_store *store, const ld_engine *e);
void ld_audit_fini(ld_audit *a);
/* ld_audit_observe turns a change into a line (hashed now if the tail is known). */
void ld_audit_observe(ld_audit *a, const ld_observation *o);
/* ld_audit_flush sends what waits, if Redis is up, and moves on a growth of
 * the tails' map (ld_map_tidy); once per write-behind tick. */
void ld_audit_flush(ld_audit *a);

/* ld_audit_line_check verifies one line that follows a line hashed <prev>
 * (64 hex; zeros for the first): 0 if its hash is right. Its hash goes to
 * <hash> either way, so the check goes on from there. */
int ld_audit_line_check(const char *line, size_t len, const char *prev, char hash[65],
                        char *why, size_t why_len);

#endif
