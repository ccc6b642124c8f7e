/* http.h: the command centre's view and the ops endpoints, served over HTTP
 * and WebSocket from the daemon's own libuv loop (libwebsockets on a foreign
 * loop, through its libuv event library).
 *
 *   GET  /metrics                      Prometheus text format
 *   GET  /healthz, /readyz             liveness; readiness (rules, Redis, intake)
 *   GET  /api/...                      JSON: incidents, terminals, departments, rules
 *   POST /api/incidents/<id>/...       supervisor actions (need the admin token)
 *   GET  /                             the live board; WebSocket "linkd-board" feeds it
 *
 * docs/API.md is the reference. Everything runs on the loop thread: requests
 * read the engine directly and render into a buffer, which lws sends in
 * pieces as the socket takes them. The engine reports every state change to
 * ld_http_observe (metrics, the board's pending changes, the audit trail). */
#ifndef LD_HTTP_HTTP_H
#define LD_HTTP_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "engine/engine.h"

struct ld_store;
struct ld_ingest;
struct ld_dispatch;

/* What the daemon tells the HTTP side about itself, on demand. */
typedef struct ld_http_status {
    const char *rules_version, *rules_dir;
    uint64_t rules_loaded_at_ms;   /* wall clock of the last successful load */
    uint64_t reload_attempt_at_ms; /* wall clock of the last reload attempt; 0 if none */
    int last_reload_ok;            /* 1 unless the last reload failed */
    uint64_t reloads, reload_failures;
    uint64_t reload_records_unwritten; /* reload records not yet in Redis (ld:reloads) */
    uint64_t audit_appended, audit_written, audit_resent, audit_dropped, audit_unexpired;
    uint64_t audit_waiting;        /* audit lines not yet in Redis */
    int intake_open;               /* recovery done, sockets listening: READY */
    int life_safety_only;          /* Redis away: only life-safety events, into the spool */
    int stopping;
} ld_http_status;

typedef struct ld_http_sources {
    uv_loop_t *loop;
    ld_engine *engine;
    struct ld_store *store;
    struct ld_ingest *ingest;
    struct ld_dispatch *dispatch;
    ld_clock *clock;
    void (*status)(void *ctx, ld_http_status *st);
    void *ctx;
    /* Reload the rules as SIGHUP does; 1 if the new set runs, 0 if refused.
     * <msg> gets one line: the versions, or the first error. NULL: no reload. */
    int (*reload)(void *ctx, const char *who, char *msg, size_t len);
    /* The record of reloads, newest first, as a JSON array (GET
     * /api/rules/reloads). NULL: none kept. */
    void (*reloads)(void *ctx, struct ld_buf *b);
} ld_http_sources;

typedef struct ld_http_config {
    const char *listen;            /* "ADDR:PORT" or "PORT" (127.0.0.1) */
    const char *token_file;        /* admin token for actions; NULL: actions refused */
    size_t max_body;               /* request body limit, bytes */
    size_t max_ws_frame;           /* incoming WebSocket message limit, bytes */
    size_t board_max;              /* open incidents a board snapshot carries: the most urgent */
} ld_http_config;

#define LD_HTTP_BOARD_MAX 2000     /* board_max's default */

void ld_http_config_defaults(ld_http_config *c);

typedef struct ld_http ld_http;

/* ld_http_open starts listening. Returns 0 with *out set, LD_EINVAL for a bad
 * listen address or token file (logged), LD_EIO if it cannot bind (logged). */
int ld_http_open(ld_http **out, const ld_http_config *cfg, const ld_http_sources *src);
/* ld_http_close stops serving and closes lws's handles; call while the loop
 * still runs. ld_http_free releases the rest after uv_run has returned. Both
 * are safe on NULL. */
void ld_http_close(ld_http *h);
void ld_http_free(ld_http *h);

/* The engine's observe hook (ctx = the ld_http). */
void ld_http_observe(void *h, const ld_observation *o);

#endif
