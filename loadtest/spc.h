/* spc.h: a REQ connection speaking NNG's wire protocol (SP over TCP) on a
 * libuv loop, for linkload's simulated terminals.
 *
 * Forty terminals long-polling through NNG cost linkload about 40% of a core
 * at 5,000 events/s on this 2-vCPU VM, nearly all of it NNG's thread
 * hand-offs (two task threads per frame received, two per frame sent): a
 * load generator that loud takes the CPU the system under test needs. On one
 * loop thread a poll costs a write and a read. tcp:// only; linkload keeps
 * NNG for every other URL (and with LINKLOAD_TERMINALS=nng).
 *
 * One request at a time per connection, as a terminal polls. The connection
 * is made on the first request and again after a failure; done() gets 0 and
 * the reply's body, or an NNG error (NNG_ECONNREFUSED, NNG_ECLOSED,
 * NNG_ETIMEDOUT, NNG_EPROTO) after which the connection is closed. Loop
 * thread only. */
#ifndef LG_SPC_H
#define LG_SPC_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <nng/nng.h>
#include <uv.h>

typedef struct lg_spc lg_spc;
typedef void (*lg_spc_done)(lg_spc *c, int status, const uint8_t *body, size_t len);

struct lg_spc {
    uv_tcp_t tcp;
    uv_connect_t creq;
    uv_timer_t timer;
    uv_loop_t *loop;
    struct sockaddr_storage addr;
    int state;
    int busy;                      /* a request is out */
    uint8_t greet[8], head[12];
    size_t greet_got, head_got;
    uint8_t *body;                 /* the reply being read */
    size_t need, got, cap;
    uint32_t next_id, want_id;
    nng_msg *req;                  /* the request: until written */
    uint8_t whead[12];
    unsigned timeout_ms;
    size_t max_reply;
    lg_spc_done done;
    void *arg;
    int handles;                   /* open handles, while closing */
};

/* lg_spc_url_ok: <url> is one lg_spc can dial (tcp://host:port). */
int lg_spc_url_ok(const char *url);

/* lg_spc_init prepares a connection to <url>; 0, or NNG_EADDRINVAL. */
int lg_spc_init(lg_spc *c, uv_loop_t *loop, const char *url, size_t max_reply, lg_spc_done done,
                void *arg);

/* lg_spc_request sends <req> (ownership taken) and calls done() once with
 * its reply or an error, within <timeout_ms>. One at a time. */
void lg_spc_request(lg_spc *c, nng_msg *req, unsigned timeout_ms);

/* lg_spc_close closes the connection and the handles for good; done() is
 * not called again. */
void lg_spc_close(lg_spc *c);

#endif
