/* audit.h: the tamper-evident trail of every incident's state changes.
 *
 * Each change the engine reports (ld_observation) becomes one JSON line
 * appended to the Redis list ld:audit:<incident id>:
 *
 *   {"n":3,"at":...,"kind":"task_escalated","task":"fire","level":1,...}
 *   {"n":4,"at":...,"kind":"task_delivered",...,"hash":"<64 hex>"}
 *
 * Every line is chained: h(n) = SHA-256(hex h(n-1) + "\n" + the line up to
 * its closing } or its ,"hash":), h(0) = 64 zeros. The last line of each
 * write (one RPUSH) shows its h; the lines before it in that write do not,
 * and the hash after them vouches for them (a third of a line's bytes saved
 * on most lines: BENCHMARKS, "The audit trail's hashes"). Every list thus
 * ends in a hash. Changing, removing or reordering an entry breaks the chain
 * from its write on (`linkctl audit` checks it). It does not stop someone
 * who can rewrite the whole list; anchor the last hash elsewhere for that.
 *
 * The loop keeps each open incident's last hash; after a restart it reads
 * the tail back from Redis before appending. Lines wait in an ordered queue
 * and are written when Redis is up; one the connection lost is sent again
 * in its place, so a write's lines may reach Redis twice (the checker
 * takes a line that repeats an earlier n with the same content as such). A closed incident's trail expires
 * with its record (90 days). Loop thread only. */
#ifndef LD_AUDIT_AUDIT_H
#define LD_AUDIT_AUDIT_H

#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/list.h"
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
    ld_list tails;               /* every chain tail (an open incident holds its own) */
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
/* ld_audit_flush sends what waits, if Redis is up; once per write-behind tick. */
void ld_audit_flush(ld_audit *a);

#define LD_AUDIT_WHY 160

typedef struct ld_audit_verdict {
    size_t entries;      /* lines, repeats not counted */
    size_t repeats;      /* lines of a write sent twice (after a lost answer) */
    size_t bad;          /* entries that fail */
    size_t first_bad;    /* the first one's position, from 1; 0 if none */
    char why[LD_AUDIT_WHY]; /* what is wrong with it */
    char last_hash[65];
} ld_audit_verdict;

/* ld_audit_each hears of each line in order: <verdict> is "ok", "repeat",
 * or what is wrong with it. */
typedef void (*ld_audit_each)(void *arg, const char *line, size_t len, const char *verdict);

/* ld_audit_trail_check verifies a whole trail, <count> lines in list order,
 * and tells <each> (if not NULL) about every line. 0 if the chain is intact,
 * LD_ESTATE if not (<v> says where), LD_ENOMEM. */
int ld_audit_trail_check(const char *const *lines, const size_t *lens, size_t count,
                         ld_audit_each each, void *arg, ld_audit_verdict *v);

#endif
