/* dispatch.h: on-duty terminals (NNG REP, long poll) and the event feed (PUB).
 *
 * A terminal's poll carries its receipts and updates; the reply carries what
 * the engine has for it. With nothing to send, the poll is parked (its REP
 * context kept) until the engine wakes the terminal or the poll's wait ends.
 * A poll that carried updates waits at most 20 ms, so its results and the
 * next tasks share one reply under load.
 * A terminal that has not polled for offline_after is reported offline on the
 * feed. The feed publishes every FeedEvent; PUB drops for slow subscribers,
 * which is why the incident record in Redis, not the feed, is the record.
 * Loop thread only. */
#ifndef LD_DISPATCH_DISPATCH_H
#define LD_DISPATCH_DISPATCH_H

#include <pthread.h>
#include <stdint.h>

#include <uv.h>

#include "core/rep.h"
#include "dispatch/auth.h"
#include "engine/engine.h"

typedef struct ld_dispatch_stats {
    uint64_t polls, bad_polls, parked, updates, updates_rejected;
    uint64_t tasks_sent, feed_sent, feed_dropped, feed_unheard;
    uint64_t hellos_refused;  /* polls refused for want of a valid signed hello */
} ld_dispatch_stats;

/* The feed's send queue: the loop packs and queues; one long-lived aio sends
 * them in turn on NNG's threads (nng_sendmsg would allocate an aio per
 * message, with a getrandom call and a thread wake each). */
typedef struct ld_feedq {
    nng_socket sock;
    pthread_mutex_t mu;
    nng_msg **ring;
    size_t cap, head, len;
    int sending;
    nng_aio *aio;
    int subscribers;        /* pipes attached, counted by NNG's pipe callbacks */
    uint64_t dropped;       /* queue full: a subscriber that slow loses events */
} ld_feedq;

struct term_slot;
struct poll_state;

typedef struct ld_dispatch {
    ld_rep rep;
    uv_loop_t *loop;
    ld_engine *engine;
    struct term_slot *slots;
    int nslots;
    struct poll_state *polls;
    size_t npolls;
    nng_socket feed;
    int feed_open;
    ld_feedq fq;
    uv_prepare_t flush;     /* answers the terminals woken during this turn */
    int flush_open;
    int *woken;             /* terminals to answer, each once */
    int nwoken;
    uv_timer_t sweep;
    int sweep_open;
    uint64_t offline_after_ms;
    ld_dispatch_stats stats;
    ld_auth auth;           /* terminals' signed hellos (auth.h) */
    const void *auth_rules; /* the rule set the slots' bindings were made under */
} ld_dispatch;

/* ld_dispatch_open listens for terminals on <terminals_url> and publishes the
 * feed on <feed_url>. Returns 0 or a negative LD_E* code. */
int ld_dispatch_open(ld_dispatch *d, uv_loop_t *loop, ld_engine *engine,
                     const char *terminals_url, const char *feed_url, size_t max_msg,
                     uint64_t offline_after_ms);
/* ld_dispatch_close stops both sockets and closes the handles;
 * ld_dispatch_fini frees the rest once the loop has run their close callbacks. */
void ld_dispatch_close(ld_dispatch *d);
void ld_dispatch_fini(ld_dispatch *d);

/* Engine hooks (ld_engine_hooks.wake and .feed, with ctx = the dispatcher). */
void ld_dispatch_wake(void *d, int terminal);
void ld_dispatch_feed(void *d, const Linkd__V1__FeedEvent *fe);
int ld_dispatch_listening(void *d);

/* How many terminals are online now. */
int ld_dispatch_online(const ld_dispatch *d);

#endif
