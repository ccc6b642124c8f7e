#include "store/uvredis.h"

#include <stdlib.h>

/* hiredis asks for write readiness whenever it has queued a command and
 * drops it once the buffer is written. Toggling epoll interest for that costs
 * an epoll_ctl per batch. Instead, queued commands are written once per loop
 * turn, just before the loop polls (the STYLE's "flush once per turn"), and
 * write readiness is armed only when the socket could not take everything. */
typedef struct uvredis {
    redisAsyncContext *ac;  /* NULL once hiredis has cleaned up */
    uv_poll_t poll;
    uv_prepare_t flush;
    int events;             /* armed on the poll */
    int want_write;         /* hiredis has output queued */
    int flushing;           /* inside on_flush: a new write request means "socket full" */
    int closing;
} uvredis;

static void on_poll(uv_poll_t *h, int status, int events);

static void arm(uvredis *p, int events)
{
    if (events == p->events || p->closing) return;
    p->events = events;
    if (events) uv_poll_start(&p->poll, events, on_poll);
    else uv_poll_stop(&p->poll);
}

static void on_poll(uv_poll_t *h, int status, int events)
{
    uvredis *p = h->data;
    if (status != 0) events = p->events | UV_READABLE; /* let hiredis find the error */
    if (p->ac && (events & UV_READABLE)) redisAsyncHandleRead(p->ac);
    if (p->ac && (events & UV_WRITABLE)) redisAsyncHandleWrite(p->ac);
}

static void on_flush(uv_prepare_t *h)
{
    uvredis *p = h->data;
    if (!p->ac || !p->want_write) return;
    p->want_write = 0;
    p->flushing = 1;
    redisAsyncHandleWrite(p->ac); /* may free the context on error: then p->ac is NULL */
    p->flushing = 0;
}

void ld_uvredis_write_now(redisAsyncContext *ac)
{
    uvredis *p = ac->ev.data;
    if (p) on_flush(&p->flush);
}

static void add_read(void *priv)
{
    uvredis *p = priv;
    arm(p, p->events | UV_READABLE);
}

static void del_read(void *priv)
{
    uvredis *p = priv;
    arm(p, p->events & ~UV_READABLE);
}

static void add_write(void *priv)
{
    uvredis *p = priv;
    /* Before the connection is up, or when the socket is full: wait for readiness. */
    if (p->flushing || !(p->ac->c.flags & REDIS_CONNECTED)) arm(p, p->events | UV_WRITABLE);
    else p->want_write = 1;
}

static void del_write(void *priv)
{
    uvredis *p = priv;
    p->want_write = 0;
    arm(p, p->events & ~UV_WRITABLE);
}

static void on_closed(uv_handle_t *h)
{
    uvredis *p = h->data;
    if (--p->closing == 0) free(p);
}

static void cleanup(void *priv)
{
    uvredis *p = priv;
    p->ac = NULL;
    p->closing = 2;
    uv_close((uv_handle_t *)&p->poll, on_closed);
    uv_close((uv_handle_t *)&p->flush, on_closed);
}

int ld_uvredis_attach(redisAsyncContext *ac, uv_loop_t *loop)
{
    if (ac->ev.data) return REDIS_ERR;
    uvredis *p = calloc(1, sizeof *p);
    if (!p) return REDIS_ERR;
    if (uv_poll_init(loop, &p->poll, ac->c.fd) != 0) {
        free(p);
        return REDIS_ERR;
    }
    uv_prepare_init(loop, &p->flush);
    uv_prepare_start(&p->flush, on_flush);
    uv_unref((uv_handle_t *)&p->flush); /* a flush alone does not keep the loop alive */
    p->ac = ac;
    p->poll.data = p;
    p->flush.data = p;
    ac->ev.addRead = add_read;
    ac->ev.delRead = del_read;
    ac->ev.addWrite = add_write;
    ac->ev.delWrite = del_write;
    ac->ev.cleanup = cleanup;
    ac->ev.data = p;
    return REDIS_OK;
}
