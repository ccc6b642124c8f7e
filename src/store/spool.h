/* spool.h: the life-safety spool, a local append-only file for events
 * accepted while Redis is away.
 *
 * While Redis cannot make an event durable, events the rules call life
 * safety (life_safety: priorities) are written to <dir>/linkd.spool and
 * fdatasync'd; only then are they answered ACCEPTED and dispatched from
 * memory, under a spool id "S<wall ms>-<n>" (incident "IS..."). When Redis
 * returns, the daemon copies them into ld:events with their seen keys (one
 * script: a key already there is a duplicate, never a second copy) and the
 * spool forgets them; once it holds nothing the file is removed.
 *
 * The spool also keeps escalation claims made while Redis is away (the
 * fence, ld:esc:*): a claim is synced before the escalation it fences takes
 * effect, so a restart during the outage finds it and does not escalate
 * again; when Redis returns the daemon writes the claims into ld:esc:*
 * before any new claim, and the spool forgets them.
 *
 * File: records of [u32 payload length][u32 FNV-1a of the payload][payload],
 * little-endian; payload = spool id NUL source NUL event id NUL envelope,
 * or, for a claim, "F" NUL fence key NUL value NUL (no envelope). A torn
 * last record (a crash mid-write) is ignored when the file is read at
 * start. Writes and syncs run on libuv's thread pool, never on the loop;
 * the events of every request that arrives while one write is in flight
 * share the next write and sync (group commit). Memory is bounded by
 * <max_events> and <max_bytes>: beyond them appends are refused.
 * Loop thread only. */
#ifndef LD_STORE_SPOOL_H
#define LD_STORE_SPOOL_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "core/map.h"
#include "store/store.h"

#define LD_SPOOL_ID_LEN 32

typedef struct ld_spool_entry {
    struct ld_spool_entry *next;
    char sid[LD_SPOOL_ID_LEN];
    char key[2 * 129 + 2];     /* "<source>\x1f<event id>": the map's key */
    char src[129], eid[129];
    uint8_t *pb;               /* the Envelope, serialized */
    size_t pblen;
    int durable;               /* written and synced: ACCEPTED, may be reconciled */
    int claim;                 /* an escalation claim: src is the fence key, eid its value */
    int sending;               /* a claim on its way into Redis */
    int opened;                /* its incident was opened by this run: spooled by it, or
                                  read from the file and opened (the daemon sets it) */
} ld_spool_entry;

/* Per appended item: its spool id, and whether it was in the spool already. */
typedef struct ld_spool_result {
    char sid[LD_SPOOL_ID_LEN];
    int duplicate;
} ld_spool_result;

/* status 0: res[0..n) are durable. Otherwise (LD_EIO) nothing is. */
typedef void (*ld_spool_cb)(void *arg, int status, const ld_spool_result *res, size_t n);

typedef struct ld_spool_stats {
    uint64_t spooled, syncs, reconciled, refused, loaded;
    uint64_t claims, claims_loaded, claims_written;
} ld_spool_stats;

struct ld_spool_batch;

typedef struct ld_spool {
    uv_loop_t *loop;
    char path[512];
    uv_file fd;                /* -1: not open */
    int broken;                /* a write or sync failed: no more appends */
    int exists;                /* the file is there (loaded or written) */
    ld_map by_key;             /* key -> entry */
    ld_spool_entry *head, *tail;
    size_t count, bytes, max_events, max_bytes;
    ld_map claim_by_key;       /* fence key -> claim entry */
    ld_spool_entry *claims, *claims_tail;
    size_t nclaims;
    uint64_t seq;
    struct ld_spool_batch *writing, *next;
    uv_fs_t req;
    uv_buf_t buf;
    ld_spool_stats stats;
} ld_spool;

/* ld_spool_open uses <dir> (created if missing) and reads what an earlier
 * run left in its spool file: those entries are durable and wait to be
 * reconciled. Blocking: call before the loop runs. Returns 0, LD_EIO. */
int ld_spool_open(ld_spool *s, uv_loop_t *loop, const char *dir, size_t max_events,
                  size_t max_bytes);
/* ld_spool_fini frees memory; the file stays if anything is in it. */
void ld_spool_fini(ld_spool *s);

/* ld_spool_find returns the entry of (<src>, <eid>), or NULL. */
ld_spool_entry *ld_spool_find(const ld_spool *s, const char *src, const char *eid);

/* ld_spool_append writes <items> to the spool. Returns 0 and calls cb once
 * they are synced (or failed), or LD_EBUSY (over its bounds) / LD_EIO (the
 * file failed) at once without calling cb. Items are copied. */
int ld_spool_append(ld_spool *s, const ld_append_item *items, size_t n, ld_spool_cb cb,
                    void *arg);

/* ld_spool_first is the oldest entry (NULL if none); ld_spool_done forgets a
 * durable entry once Redis has it. ld_spool_remove_file removes the file
 * when the spool holds nothing and no write is in flight. */
static inline ld_spool_entry *ld_spool_first(const ld_spool *s) { return s->head; }
void ld_spool_done(ld_spool *s, ld_spool_entry *e);
void ld_spool_remove_file(ld_spool *s);

/* ld_spool_claim records that the fence <key> was claimed with <value>
 * while Redis is away: cb(arg, 0, NULL, 1) once it is synced, or with LD_EIO
 * if the write failed (cb may be NULL). Returns 0, LD_EBUSY (over its
 * bounds), LD_EIO or LD_ENOMEM at once without calling cb. The key must be
 * shorter than 129 bytes. */
int ld_spool_claim(ld_spool *s, const char *key, const char *value, ld_spool_cb cb, void *arg);
/* ld_spool_claimed returns the value <key> was claimed with, or NULL. */
const char *ld_spool_claimed(const ld_spool *s, const char *key);
/* ld_spool_first_claim is the oldest claim not yet in Redis (NULL if none);
 * ld_spool_claim_done forgets a durable one once Redis has it. */
static inline ld_spool_entry *ld_spool_first_claim(const ld_spool *s) { return s->claims; }
void ld_spool_claim_done(ld_spool *s, ld_spool_entry *c);

/* ld_spool_time returns the wall ms a spool id was made at. */
uint64_t ld_spool_time(const char *sid);

#endif
