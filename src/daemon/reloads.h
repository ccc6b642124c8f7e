/* reloads.h: the record of rule reloads (reloads.c).
 *
 * Every reload attempt, SIGHUP or HTTP, accepted or refused, becomes one
 * JSON line: when, who asked, the outcome, the versions, the number of
 * errors and the first of them. Lines are pushed onto the Redis list
 * ld:reloads (newest first, capped at LD_RELOADS_KEPT) in order; while Redis
 * is away they wait in memory (the last LD_RELOADS_RING) and are written
 * when it returns. The latest lines, read back from Redis at start, are
 * what GET /api/rules/reloads shows. Loop thread only. */
#ifndef LD_DAEMON_RELOADS_H
#define LD_DAEMON_RELOADS_H

#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "store/store.h"

#define LD_RELOADS_RING 32     /* lines kept in memory */
#define LD_RELOADS_KEPT 1000   /* lines kept in Redis */
#define LD_RELOADS_KEY "ld:reloads"

typedef struct ld_reload_line {
    char json[768];
    int written;                /* in Redis */
} ld_reload_line;

typedef struct ld_reload_log {
    ld_store *store;
    ld_reload_line ring[LD_RELOADS_RING];
    uint64_t total;             /* lines ever added (ring slot = index % RING) */
    uint64_t next_write;        /* index of the oldest line not yet written */
    int writing, loading, loaded;
    uint64_t lost;              /* lines overwritten in memory before Redis had them */
} ld_reload_log;

/* One reload attempt, as the daemon saw it. */
typedef struct ld_reload_outcome {
    uint64_t at_ms;             /* wall clock */
    const char *who;            /* "SIGHUP", "http" */
    int ok;                     /* the new set runs */
    const char *from, *to;      /* versions: running before; the new set's (NULL if unread) */
    int routes;                 /* routes of the set running afterwards */
    size_t errors, warnings;
    const char *message;        /* the outcome in one line (first error on refusal) */
} ld_reload_outcome;

void ld_reload_log_init(ld_reload_log *l, ld_store *s);

/* ld_reload_log_add records <o> and starts writing it. */
void ld_reload_log_add(ld_reload_log *l, const ld_reload_outcome *o);

/* ld_reload_log_flush writes lines still waiting, and reads the latest
 * lines of earlier runs once Redis is up. Call once per write-behind tick. */
void ld_reload_log_flush(ld_reload_log *l);

/* ld_reload_log_json appends a JSON array of the lines in memory, newest first. */
void ld_reload_log_json(const ld_reload_log *l, ld_buf *b);

/* ld_reload_log_unwritten: lines not yet in Redis. */
uint64_t ld_reload_log_unwritten(const ld_reload_log *l);

#endif
