/* http_int.h: the HTTP module's inside, shared by its files. */
#ifndef LD_HTTP_HTTP_INT_H
#define LD_HTTP_HTTP_INT_H

#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "http/http.h"
#include "http/metrics.h"

struct lws;
struct lws_context;
struct http_conn;
struct ws_client;
struct ws_msg;

#define LD_CLOSED_RING 4096      /* recently closed incident ids, for 409 instead of 404 */
#define LD_BOARD_PENDING_MAX 8192 /* changed incidents per board tick; more: full snapshot */

typedef struct ld_http_stats {
    uint64_t requests, responses[6];  /* [status / 100] */
    uint64_t errors_by_status[600];   /* 4xx and 5xx answers, by code */
    uint64_t bodies_too_large, ws_frames_too_large, ws_clients_dropped, ws_messages;
    uint64_t unauthorized, forbidden;
} ld_http_stats;

struct ld_http {
    ld_http_config cfg;
    ld_http_sources src;
    char addr[64];
    int port;
    char token[128];
    struct lws_context *lws;
    int closing;
    ld_metrics metrics;
    ld_http_stats stats;
    uv_timer_t tick;                  /* board pushes, loop lag, day roll */
    int tick_open;
    uint64_t tick_expected;           /* loop ms the tick was due */
    /* board */
    struct ws_client *clients;
    int nclients;
    struct ws_msg *snapshot;       /* this tick's, shared by the clients that need one */
    char (*pending)[LD_INCIDENT_ID_LEN];  /* incidents changed since the last push */
    size_t npending;
    int pending_overflow;
    ld_map pending_set;
    int terminals_changed;
    uint64_t last_stats_push;
    struct ld_http_wait *waits;       /* answers waiting for Redis */
    /* closed incidents, newest last */
    char (*closed)[LD_INCIDENT_ID_LEN];
    size_t closed_next;
    ld_map closed_set;
};

/* An answer that waits for something (a Redis read) before it is made: the
 * handler embeds one in its own state, starts it with ld_http_wait_start and
 * ends it with ld_http_wait_finish, exactly once, from the loop. */
typedef struct ld_http_wait {
    ld_http *h;               /* NULL once HTTP has closed */
    struct http_conn *conn;   /* NULL once the client is gone */
    struct lws *wsi;
    struct ld_http_wait *next, *prev;
} ld_http_wait;

/* An HTTP answer under construction: status, content type, body. */
typedef struct ld_http_answer {
    int status;
    const char *ctype;
    ld_buf body;
    const char *allow;        /* with 405 */
    int www_auth;             /* with 401 */
    ld_http_wait *wait;       /* set by a handler that answers later */
} ld_http_answer;

/* A parsed request, as the handlers see it. */
typedef struct ld_http_request {
    const char *method;       /* "GET", "POST", ... */
    const char *path;         /* without the query */
    const char *query;        /* after '?', or "" */
    const char *body;         /* NUL-terminated */
    size_t body_len;
    int loopback;             /* the peer is on 127.0.0.0/8 or ::1 */
    int authorized;           /* a valid admin token came with it */
    int token_given;          /* some Authorization header came */
} ld_http_request;

/* Routing: fills <a> for <q>. api.c */
void ld_http_route(ld_http *h, const ld_http_request *q, ld_http_answer *a);
/* An error answer: {"error": <msg>, "status": n, "field": <field>}; counted. */
void ld_http_error(ld_http *h, ld_http_answer *a, int status, const char *field,
                   const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* prom.c */
void ld_http_render_metrics(ld_http *h, ld_buf *b);

/* json.c: one incident, in the API's and the board's shape. */
void ld_json_incident(ld_http *h, ld_buf *b, const ld_incident *inc, int with_history);
void ld_json_terminals(ld_http *h, ld_buf *b);
void ld_json_departments(ld_http *h, ld_buf *b);
void ld_json_rules(ld_http *h, ld_buf *b);
void ld_json_compliance(ld_http *h, ld_buf *b);
int ld_http_recently_closed(const ld_http *h, const char *id);

/* board.c */
void ld_board_observe(ld_http *h, const ld_observation *o);
void ld_board_tick(ld_http *h, uint64_t now_real);
int ld_board_snapshot(ld_http *h, ld_buf *b);

/* ld_http_most_urgent gives the <max> most urgent open incidents (with a task
 * of department <dept>, or all if it is negative) in *out (malloc'd; the
 * caller frees it) and their number in *n, most urgent first: overdue at the
 * top of a chain, then past due, then by priority, then by the earliest leg
 * still watched. One pass over the open incidents. 0 or LD_ENOMEM. */
int ld_http_most_urgent(ld_http *h, int dept, size_t max, const ld_incident ***out, size_t *n);

/* server.c: answers made later. ld_http_wait_start makes the request
 * behind <a> wait on <w> (the handler returns without an answer);
 * ld_http_wait_answer gives the answer to fill, or NULL if the client or
 * HTTP has gone; ld_http_wait_finish sends it (if anyone waits) and forgets
 * <w>, which the caller may then free. */
void ld_http_wait_start(ld_http *h, ld_http_answer *a, ld_http_wait *w);
ld_http_answer *ld_http_wait_answer(ld_http_wait *w);
void ld_http_wait_finish(ld_http_wait *w);

/* server.c: WebSocket clients */
void ld_ws_broadcast(ld_http *h, ld_buf *msg);

#endif
