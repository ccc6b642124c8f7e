/* sp.h: the REP side of NNG's wire protocol over plain TCP, served on the
 * libuv loop itself.
 *
 * Why: NNG 1.5.2 completes every receive and send on its own task threads,
 * so one request/reply costs linkd about six thread wake-ups (the poller,
 * two task threads for the frame's header and body, the loop, two more for
 * the send's completions). On this 2-vCPU VM a wake-up costs tens of
 * microseconds in the hypervisor; a lone request cost linkd 190-350 us of
 * CPU, nearly all of it there (docs/RELIABILITY.md, "Hostile intake"). The
 * protocol on the wire is small and fixed (SP over TCP, RFC sp-tcp-mapping-01
 * and sp-request-reply-01): an 8-byte greeting each way, then frames of a
 * 64-bit big-endian length and a payload whose first 4-byte words (the last
 * with its top bit set) are the request's backtrace, sent back unchanged
 * before the reply. Reading and writing that on the loop costs a read and a
 * write per request and no wake-up at all.
 *
 * Producers and terminals still use NNG REQ sockets (or any SP/TCP REQ); tls+tcp://
 * and every other transport stay with NNG (core/rep.c picks). What NNG's
 * REP did, this does: a frame over the size limit or a peer that is not a
 * REQ closes the connection; a payload without a whole backtrace closes it;
 * more than 8 hops drops the frame; a peer that stops reading its replies
 * (more than LD_SP_WRITE_MAX bytes queued) is disconnected; a connection
 * that has not greeted within 10 s is closed. Each connection gets an id
 * that is never reused (the "pipe" auth binds to).
 *
 * Requests are handed to the owner through ld_rep's contexts: when every
 * context is busy, a connection stops being read until one is free.
 * Loop thread only. */
#ifndef LD_CORE_SP_H
#define LD_CORE_SP_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#define LD_SP_BT_MAX 32                 /* 8 hops of 4 bytes */
#define LD_SP_WRITE_MAX (16u << 20)     /* replies queued to one peer */

struct ld_rep;
struct ld_rep_ctx;
typedef struct ld_sp ld_sp;

/* ld_sp_url_ok: <url> is one ld_sp serves (tcp://host:port). */
int ld_sp_url_ok(const char *url);

/* ld_sp_open listens on <url> for <rep> (its contexts must exist); frames
 * over <max_msg> bytes (0: no limit) close their connection. Returns 0,
 * LD_EINVAL for a URL it cannot parse, or LD_EIO if it cannot listen. */
int ld_sp_open(ld_sp **out, struct ld_rep *rep, uv_loop_t *loop, const char *url, size_t max_msg);

/* ld_sp_reply sends <body> (ownership taken) as the reply to context <c>'s
 * request, or drops it if that connection is gone; frees the context. */
void ld_sp_reply(ld_sp *sp, struct ld_rep_ctx *c, void *body);

/* ld_sp_close stops listening and closes every connection; the memory goes
 * once the loop has run their close callbacks. Requests in hand are
 * dropped: their contexts no longer answer anyone. */
void ld_sp_close(ld_sp *sp);

#endif
