/* rep.h: a REP socket bridged into a libuv loop.
 *
 * tcp:// URLs are served by core/sp.h on the loop itself (NNG's wire
 * protocol, no NNG threads in between); every other URL (tls+tcp://, ipc://)
 * by an NNG REP socket as below. LINKD_REP=nng in the environment makes
 * tcp:// use NNG too, to compare the two.
 *
 * NNG 1.5.2 read synchronously tops out near 20k messages/s on this machine
 * kind; with several receive aios outstanding it reaches about 110k/s. So the
 * socket keeps <nctx> REP contexts, each with its own aio always receiving.
 * Completions run on NNG's threads: they only queue the context under a mutex
 * and wake the loop with uv_async_send. The loop drains the queue in bounded
 * batches and calls on_request; the owner answers with ld_rep_reply() at once
 * or later (a long poll keeps its context until it answers). A context does
 * not receive again until it has answered, so <nctx> bounds the requests in
 * hand; further requests wait in NNG.
 *
 * Thread rules: ld_rep_open/close/reply on the loop thread only. */
#ifndef LD_CORE_REP_H
#define LD_CORE_REP_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include <nng/nng.h>
#include <protobuf-c/protobuf-c.h>
#include <uv.h>

#include "core/sp.h"

typedef struct ld_rep ld_rep;

typedef struct ld_rep_ctx {
    ld_rep *rep;
    nng_ctx ctx;
    nng_aio *aio;
    nng_msg *msg;                  /* the request, between the NNG thread and the loop */
    struct ld_rep_ctx *next;       /* in the ready queue */
    int sending;                   /* the aio is a send, not a receive */
    void *user;                    /* the owner's per-context state */
    uint32_t pipe;                 /* the connection the request came on */
    /* core/sp.h only: */
    void *conn;                    /* that connection, while the request is in hand */
    struct ld_rep_ctx *idle_next;  /* in rep->idle */
    uint8_t bt[LD_SP_BT_MAX];      /* the request's backtrace, sent back first */
    uint8_t bt_len;
} ld_rep_ctx;

/* ld_rep_pipe: the id of the connection <c>'s request came on (never 0 for
 * a live one, not reused while linkd runs). */
static inline uint32_t ld_rep_pipe(const ld_rep_ctx *c) { return c->pipe; }

/* on_request owns <req> and must answer <c> exactly once with ld_rep_reply. */
typedef void (*ld_rep_cb)(ld_rep *rep, ld_rep_ctx *c, nng_msg *req);

struct ld_rep {
    nng_socket sock;
    uv_async_t async;
    pthread_mutex_t mu;
    ld_rep_ctx *head, *tail;       /* ready queue, guarded by mu */
    ld_rep_ctx *ctxs;
    size_t nctx;
    ld_rep_cb on_request;
    void *user;
    struct ld_sp *sp;              /* tcp:// on the loop (core/sp.h), or NULL: NNG */
    ld_rep_ctx *idle;              /* sp only: contexts free for a request */
    int open, closing;
    uint64_t requests, send_errors;
};

/* ld_rep_open listens on <url> with <nctx> contexts and a receive limit of
 * <max_msg> bytes (NNG drops larger messages and closes that pipe).
 * Returns 0, or a negative LD_E* code with nothing left open. */
int ld_rep_open(ld_rep *r, uv_loop_t *loop, const char *url, size_t nctx, size_t max_msg,
                ld_rep_cb on_request, void *user);

/* ld_rep_reply sends <reply> (ownership taken) on <c>; the context then
 * receives again. */
void ld_rep_reply(ld_rep_ctx *c, nng_msg *reply);

/* ld_rep_close stops receiving, closes the socket and the async handle.
 * Requests not yet answered are dropped; their peers resend or time out.
 * The socket is closed with ld_nng_close: if NNG does not return, the
 * contexts, their aios and the async handle are left as they are (and
 * r->open stays 1), since NNG may still call into them. */
void ld_rep_close(ld_rep *r);

#define LD_NNG_CLOSE_MS 3000

/* ld_nng_close closes <s> and waits at most <timeout_ms> for NNG to return.
 * NNG 1.5.2 can wait for ever in nng_close: its TCP transport drops a send
 * completion when a pipe closes while a reply is half written (the partial
 * send is re-issued on an aio the close has just stopped), and the reaper
 * then waits on that send for good. The close runs on a thread of its own;
 * 0 if it returned in time, else LD_ETIMEDOUT, logged once, with the thread
 * left blocked and the socket's resources not to be freed. Loop thread. */
int ld_nng_close(nng_socket s, const char *what, unsigned timeout_ms);

/* ld_msg_from_pb packs a protobuf message into a new NNG message. NULL on ENOMEM. */
nng_msg *ld_msg_from_pb(const ProtobufCMessage *m);

#endif
