/* feed.c: `linkload run --feed URL`: subscribe to linkd's feed and count
 * what the command centre would see: tasks dispatched, acknowledged,
 * escalated (by leg), missed at the top of the chain, resolved, per
 * department, with the dispatch-to-acknowledge time on linkd's clock.
 *
 * A task acknowledged while still at level 0 was acknowledged by the duty
 * officer within the acknowledge budget (missing it escalates the task), so
 * ack_level0 / dispatched is the department's acknowledge compliance.
 * Only tasks of this run's events count (Task.event_id "<run id>-<seq>").
 * NNG PUB drops messages for a subscriber that falls behind: gaps in the
 * feed's seq are counted and reported, so a reader knows the figures are
 * then lower bounds. */
#include <nng/nng.h>
#include <nng/protocol/pubsub0/sub.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/rep.h"
#include "run.h"

static void tally(run *r, const Linkd__V1__FeedEvent *ev)
{
    feed_stats *st = &r->fst;
    st->messages++;
    if (ev->has_seq) {
        if (st->last_seq && ev->seq > st->last_seq + 1) st->gaps += ev->seq - st->last_seq - 1;
        if (ev->seq > st->last_seq) st->last_seq = ev->seq;
    }
    unsigned k = ev->has_kind && ev->kind < 16 ? (unsigned)ev->kind : 0;
    const Linkd__V1__Task *t = ev->task;
    size_t n = strlen(r->run_id);
    if (!t || !t->event_id || strncmp(t->event_id, r->run_id, n) != 0 || t->event_id[n] != '-') {
        if (t) st->foreign++;
        else st->by_kind[k]++;   /* incident and terminal events carry no task */
        return;
    }
    st->by_kind[k]++;
    int di = t->department ? ld_rules_department(r->rules, t->department) : -1;
    if (di < 0) return;
    dept_stats *d = &st->dept[di];
    unsigned leg = ev->has_leg && ev->leg >= 1 && (unsigned)ev->leg <= (unsigned)LD_LEG_COUNT ? (unsigned)ev->leg - 1 : 0;
    switch (ev->kind) {
    case LINKD__V1__FEED_KIND__FEED_KIND_TASK_DISPATCHED: d->dispatched++; break;
    case LINKD__V1__FEED_KIND__FEED_KIND_TASK_ACKNOWLEDGED:
        d->acknowledged++;
        if (t->has_level && t->level == 0) d->ack_level0++;
        if (ev->has_at_ms && t->has_dispatched_at_ms && ev->at_ms >= t->dispatched_at_ms)
            ld_hist_record(&d->ack_ns, (uint64_t)(ev->at_ms - t->dispatched_at_ms) * NS_PER_MS);
        break;
    case LINKD__V1__FEED_KIND__FEED_KIND_TASK_ON_SCENE: d->on_scene++; break;
    case LINKD__V1__FEED_KIND__FEED_KIND_TASK_RESOLVED: d->resolved++; break;
    case LINKD__V1__FEED_KIND__FEED_KIND_TASK_REJECTED: d->rejected++; break;
    case LINKD__V1__FEED_KIND__FEED_KIND_TASK_ESCALATED: d->escalated[leg]++; break;
    case LINKD__V1__FEED_KIND__FEED_KIND_DEADLINE_MISSED: d->missed++; break;
    default: break;
    }
}

static void feed_cb(void *arg)
{
    run *r = arg;
    int rv = nng_aio_result(r->feed_aio);
    if (rv != 0) {
        if (rv == NNG_ECLOSED || rv == NNG_ECANCELED || atomic_load(&r->stopping)) return;
        nng_recv_aio(r->feed_sock, r->feed_aio);
        return;
    }
    nng_msg *msg = nng_aio_get_msg(r->feed_aio);
    Linkd__V1__FeedEvent *ev =
        linkd__v1__feed_event__unpack(&r->feed_arena.pb, nng_msg_len(msg), nng_msg_body(msg));
    nng_msg_free(msg);
    pthread_mutex_lock(&r->fmu);
    if (ev) tally(r, ev);
    else r->fst.bad++;
    pthread_mutex_unlock(&r->fmu);
    ld_arena_reset(&r->feed_arena);
    if (!atomic_load(&r->stopping)) nng_recv_aio(r->feed_sock, r->feed_aio);
}

int lg_feed_open(run *r)
{
    int rv;
    r->fst.dept = calloc((size_t)r->rules->ndepartments, sizeof *r->fst.dept);
    if (!r->fst.dept) return NNG_ENOMEM;
    for (int i = 0; i < r->rules->ndepartments; i++) ld_hist_init(&r->fst.dept[i].ack_ns);
    ld_arena_init(&r->feed_arena, 16384, 0);
    if ((rv = nng_sub0_open(&r->feed_sock)) != 0) return rv;
    r->feed_open = 1;
    nng_socket_set_size(r->feed_sock, NNG_OPT_RECVMAXSZ, 4u << 20);
    nng_socket_set_int(r->feed_sock, NNG_OPT_RECVBUF, 8192);   /* ride out bursts */
    if ((rv = nng_socket_set(r->feed_sock, NNG_OPT_SUB_SUBSCRIBE, "", 0)) != 0) return rv;
    if ((rv = nng_dial(r->feed_sock, r->o.feed_url, NULL, NNG_FLAG_NONBLOCK)) != 0) return rv;
    if ((rv = nng_aio_alloc(&r->feed_aio, feed_cb, r)) != 0) return rv;
    nng_recv_aio(r->feed_sock, r->feed_aio);
    return 0;
}

void lg_feed_close(run *r)
{
    /* Stuck in NNG: leave the aio and the arena, which feed_cb may still use. */
    int stuck = r->feed_open && ld_nng_close(r->feed_sock, "feed socket", LD_NNG_CLOSE_MS) != 0;
    r->feed_open = 0;
    if (!stuck) {
        nng_aio_free(r->feed_aio);   /* waits for a callback under way */
        ld_arena_fini(&r->feed_arena);
    }
    r->feed_aio = NULL;
}
