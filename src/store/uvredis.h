/* uvredis.h: hiredis async events on a libuv loop.
 *
 * Our own adapter instead of <hiredis/adapters/libuv.h>: Debian's hiredis
 * 0.14 adapter returns early when libuv reports a poll error, so a refused
 * connection is never reported and the context hangs forever (fixed upstream
 * in hiredis 1.0). Here an error is handed to hiredis as readiness, which
 * then reads the socket error and calls the connect or disconnect callback. */
#ifndef LD_STORE_UVREDIS_H
#define LD_STORE_UVREDIS_H

#include <hiredis/async.h>
#include <uv.h>

/* ld_uvredis_attach binds <ac> to <loop>. Returns REDIS_OK or REDIS_ERR. */
int ld_uvredis_attach(redisAsyncContext *ac, uv_loop_t *loop);

/* ld_uvredis_write_now writes the queued commands now rather than at the end
 * of the loop turn (after a large batch: hiredis's buffer then starts small
 * again instead of growing by copying). It may end the connection, calling
 * the disconnect callback; check the context's owner afterwards. */
void ld_uvredis_write_now(redisAsyncContext *ac);

#endif
