/* daemon.h: linkd's process: one libuv loop that owns every piece.
 *
 * Start-up: load the rules (refuse to start on any error), open Redis, the
 * terminal and feed sockets, then intake. READY is logged once Redis answers
 * and every socket listens. SIGTERM/SIGINT drain: intake answers RETRY_LATER,
 * requests waiting for Redis finish, dirty incidents are written, Redis
 * commands in flight complete, and the process exits 0. */
#ifndef LD_DAEMON_DAEMON_H
#define LD_DAEMON_DAEMON_H

#include <stddef.h>
#include <stdint.h>

typedef struct ld_options {
    const char *rules_dir;
    const char *redis_url;
    const char *redis_password_file;  /* NULL: password (if any) from the URL */
    const char *tls_cert, *tls_key;   /* server certificate and key for tls+tcp:// */
    const char *tls_ca;               /* clients must present a certificate from this CA */
    int insecure_listen;              /* allow plain tcp beyond loopback */
    const char *ingest_url;
    const char *terminals_url;
    const char *feed_url;
    double time_scale;
    size_t max_message;
    uint64_t offline_after_ms;
    uint64_t redis_timeout_ms;
    uint64_t dedup_window_s;       /* --dedup-window (ld_store.dedup_window_s) */
    size_t ingest_contexts;
    uint64_t flush_ms;          /* write-behind period of incident records */
    double source_rate;         /* events/s per source; 0: no limit */
    const char *http_listen;    /* --http ADDR:PORT; NULL: no HTTP */
    size_t board_max;           /* --board-max: open incidents a board snapshot carries */
    const char *admin_token_file; /* --admin-token-file; NULL: supervisor actions refused */
    const char *spool_dir;      /* --spool DIR: life-safety spool; NULL: none */
    size_t spool_max_events;    /* bound of the spool in memory */
    size_t spool_max_bytes;
} ld_options;

void ld_options_defaults(ld_options *o);

/* ld_daemon_run runs until stopped; returns a sysexits.h code. */
int ld_daemon_run(const ld_options *o);

#endif
