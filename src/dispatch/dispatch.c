#include "dispatch/dispatch.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nng/protocol/pubsub0/pub.h>

#include "core/err.h"
#include "core/clock.h"
#include "core/log.h"
#include "core/tls.h"

enum {
    MAX_WAIT_MS = 30000,
    DEFAULT_MAX_TASKS = 64,
    MAX_TASKS = 256,
    /* A poll that carried updates waits at most this long for tasks to take back
     * with their results: one round trip per delivery instead of two. */
    LINGER_MS = 20,
};

typedef struct term_slot {
    ld_dispatch *d;
    int idx;
    int woken;              /* in d->woken for this turn */
    ld_rep_ctx *parked;
    uv_timer_t timer;
    uint64_t last_seen;     /* loop ms */
    int online;
    uint32_t auth_pipe;     /* the connection its last valid hello came on (0: none) */
} term_slot;

typedef struct poll_state {
    ld_arena arena;
    Linkd__V1__UpdateResult **results;  /* of a parked poll that carried updates */
    size_t nresults;
    size_t max_tasks;
} poll_state;

/* ---- feed ------------------------------------------------------------------ */

enum { FEED_QUEUE = 16384 };

/* Runs on an NNG thread: the previous message went; send the next. A sent
 * message is NNG's, which frees it, but the aio keeps pointing at it: clear
 * that, or feed_close frees it a second time (NNG 1.5.2's pub0 leaves it;
 * the double free decremented a freed message's reference count, a -1 in
 * whatever had taken its place, and killed linkd at a later free). */
static void on_feed_sent(void *arg)
{
    ld_feedq *q = arg;
    int rv = nng_aio_result(q->aio);
    if (rv != 0) nng_msg_free(nng_aio_get_msg(q->aio));
    nng_aio_set_msg(q->aio, NULL);
    if (rv == NNG_ECLOSED) return;
    pthread_mutex_lock(&q->mu);
    if (q->len == 0) {
        q->sending = 0;
        pthread_mutex_unlock(&q->mu);
        return;
    }
    nng_msg *m = q->ring[q->head];
    q->head = (q->head + 1) % q->cap;
    q->len--;
    pthread_mutex_unlock(&q->mu);
    nng_aio_set_msg(q->aio, m);
    nng_send_aio(q->sock, q->aio);
}

static void on_feed_pipe(nng_pipe p, nng_pipe_ev ev, void *arg)
{
    ld_feedq *q = arg;
    (void)p;
    __atomic_add_fetch(&q->subscribers, ev == NNG_PIPE_EV_ADD_POST ? 1 : -1, __ATOMIC_RELAXED);
}

int ld_dispatch_listening(void *arg)
{
    ld_dispatch *d = arg;
    int n = d->feed_open && __atomic_load_n(&d->fq.subscribers, __ATOMIC_RELAXED) > 0;
    if (!n) d->stats.feed_unheard++;
    return n || ld_log_level <= LD_DEBUG;
}

void ld_dispatch_feed(void *arg, const Linkd__V1__FeedEvent *fe)
{
    ld_dispatch *d = arg;
    ld_feedq *q = &d->fq;
    ld_log(LD_DEBUG, "FEED", "%s", fe->text ? fe->text : "");
    if (!d->feed_open) return;
    if (__atomic_load_n(&q->subscribers, __ATOMIC_RELAXED) <= 0) return; /* Redis has the record */
    nng_msg *m = ld_msg_from_pb(&fe->base);
    if (!m) {
        d->stats.feed_dropped++;
        return;
    }
    pthread_mutex_lock(&q->mu);
    if (q->len == q->cap) {
        pthread_mutex_unlock(&q->mu);
        nng_msg_free(m);
        d->stats.feed_dropped++;
        ld_log_rl(LD_WARN, "FEED-DROP", "feed queue full (%zu): a subscriber is too slow", q->cap);
        return;
    }
    d->stats.feed_sent++;
    if (q->sending) {
        q->ring[(q->head + q->len) % q->cap] = m;
        q->len++;
        pthread_mutex_unlock(&q->mu);
        return;
    }
    q->sending = 1;
    pthread_mutex_unlock(&q->mu);
    nng_aio_set_msg(q->aio, m);
    nng_send_aio(d->feed, q->aio);
}

static int feed_open(ld_dispatch *d, const char *url)
{
    ld_feedq *q = &d->fq;
    int rv;
    pthread_mutex_init(&q->mu, NULL);
    q->cap = FEED_QUEUE;
    if (!(q->ring = calloc(q->cap, sizeof *q->ring))) return LD_ENOMEM;
    if ((rv = nng_pub0_open(&d->feed)) != 0) return ld_err_from_nng(rv);
    d->feed_open = 1;
    q->sock = d->feed;
    /* Per-subscriber buffer: a burst of a few thousand events must not drop. */
    nng_socket_set_int(d->feed, NNG_OPT_SENDBUF, 8192);
    nng_pipe_notify(d->feed, NNG_PIPE_EV_ADD_POST, on_feed_pipe, q);
    nng_pipe_notify(d->feed, NNG_PIPE_EV_REM_POST, on_feed_pipe, q);
    if ((rv = nng_aio_alloc(&q->aio, on_feed_sent, q)) != 0) return ld_err_from_nng(rv);
    if ((rv = ld_listen(d->feed, url)) != 0) {
        ld_log(LD_ERR, "NNG-LISTEN", "cannot listen on %s: %s", url, nng_strerror(rv));
        return ld_err_from_nng(rv);
    }
    return 0;
}

static void feed_close(ld_dispatch *d)
{
    ld_feedq *q = &d->fq;
    if (d->feed_open) {
        d->feed_open = 0;
        /* Stuck in NNG: leave the queue and its aio, which NNG may still use. */
        if (ld_nng_close(d->feed, "feed socket", LD_NNG_CLOSE_MS) != 0) return;
    }
    if (q->aio) {
        nng_aio_stop(q->aio);
        nng_msg_free(nng_aio_get_msg(q->aio));
        nng_aio_free(q->aio);
        q->aio = NULL;
    }
    if (q->ring) {
        for (size_t i = 0; i < q->len; i++) nng_msg_free(q->ring[(q->head + i) % q->cap]);
        free(q->ring);
        q->ring = NULL;
        pthread_mutex_destroy(&q->mu);
    }
}

/* ---- replies ----------------------------------------------------------------- */

static void reply_error(ld_dispatch *d, ld_rep_ctx *c, const char *why)
{
    Linkd__V1__PollReply r;
    linkd__v1__poll_reply__init(&r);
    r.error = (char *)why;
    r.has_server_time_ms = 1;
    r.server_time_ms = (int64_t)ld_clock_now(d->engine->clock);
    d->stats.bad_polls++;
    ld_log_rl(LD_WARN, "POLL-REFUSED", "%s", why);
    ld_rep_reply(c, ld_msg_from_pb(&r.base));
}

/* reply sends <terminal> what the engine has for it, with <results>. */
static void reply_tasks(ld_dispatch *d, ld_rep_ctx *c, int terminal, size_t max,
                        Linkd__V1__UpdateResult **results, size_t nresults)
{
    poll_state *ps = c->user;
    ld_delivery_item items[MAX_TASKS];
    size_t n = ld_engine_collect(d->engine, terminal, uv_now(d->loop), items, max);
    Linkd__V1__PollReply r;
    linkd__v1__poll_reply__init(&r);
    Linkd__V1__Task *tasks = n ? ld_arena_alloc(&ps->arena, n * sizeof *tasks) : NULL;
    Linkd__V1__Task **tp = n ? ld_arena_alloc(&ps->arena, n * sizeof *tp) : NULL;
    Linkd__V1__Location *locs = n ? ld_arena_alloc(&ps->arena, n * sizeof *locs) : NULL;
    char *ids = n ? ld_arena_alloc(&ps->arena, n * LD_TASK_ID_LEN) : NULL;
    if (n && (!tasks || !tp || !locs || !ids)) n = 0; /* sent again on the next poll */
    for (size_t i = 0; i < n; i++) {
        ld_engine_task_pb(d->engine, items[i].task, &tasks[i], &locs[i], ids + i * LD_TASK_ID_LEN);
        if (items[i].priority_raised) {
            tasks[i].has_priority_raised = 1;
            tasks[i].priority_raised = 1;
        }
        if (items[i].redelivery) {
            tasks[i].has_redelivery = 1;
            tasks[i].redelivery = 1;
        }
        if (items[i].reminder_leg >= 0) {
            /* Not a new task: the holder has it, and a deadline is near. */
            tasks[i].has_reminder = tasks[i].has_reminder_leg = 1;
            tasks[i].has_reminder_percent = 1;
            tasks[i].reminder = 1;
            tasks[i].reminder_leg = (Linkd__V1__Leg)(items[i].reminder_leg + 1);
            tasks[i].reminder_percent = (uint32_t)items[i].reminder_pct;
        }
        tp[i] = &tasks[i];
    }
    r.n_tasks = n;
    r.tasks = tp;
    r.n_update_results = nresults;
    r.update_results = results;
    r.has_server_time_ms = 1;
    r.server_time_ms = (int64_t)ld_clock_now(d->engine->clock);
    d->stats.tasks_sent += n;
    ld_rep_reply(c, ld_msg_from_pb(&r.base));
    ld_arena_reset(&ps->arena);
}

/* reply_parked answers a parked poll with its pending update results. */
static void reply_parked(ld_dispatch *d, ld_rep_ctx *c, int terminal)
{
    poll_state *ps = c->user;
    Linkd__V1__UpdateResult **results = ps->results;
    size_t n = ps->nresults;
    ps->results = NULL;
    ps->nresults = 0;
    reply_tasks(d, c, terminal, ps->max_tasks, results, n);
}

/* ---- presence ------------------------------------------------------------------ */

static void seen(ld_dispatch *d, term_slot *s)
{
    s->last_seen = uv_now(d->loop);
    if (!s->online) {
        s->online = 1;
        ld_engine_terminal_presence(d->engine, s->idx, 1);
    }
}

static void on_sweep(uv_timer_t *t)
{
    ld_dispatch *d = t->data;
    uint64_t now = uv_now(d->loop);
    for (int i = 0; i < d->nslots; i++) {
        term_slot *s = &d->slots[i];
        if (s->online && !s->parked && now - s->last_seen > d->offline_after_ms) {
            s->online = 0;
            ld_engine_terminal_presence(d->engine, i, 0);
        }
    }
}

int ld_dispatch_online(const ld_dispatch *d)
{
    int n = 0;
    for (int i = 0; i < d->nslots; i++) n += d->slots[i].online;
    return n;
}

/* ---- long poll ---------------------------------------------------------------- */

static void on_poll_timeout(uv_timer_t *t)
{
    term_slot *s = t->data;
    ld_rep_ctx *c = s->parked;
    if (!c) return;
    s->parked = NULL;
    s->last_seen = uv_now(s->d->loop);
    reply_parked(s->d, c, s->idx);
}

/* The engine has work for <terminal>. Its parked poll is answered at the end
 * of this loop turn, so all the tasks it gets in one turn go in one reply. */
void ld_dispatch_wake(void *arg, int terminal)
{
    ld_dispatch *d = arg;
    if (terminal < 0 || terminal >= d->nslots) return;
    term_slot *s = &d->slots[terminal];
    if (!s->parked || s->woken) return;
    s->woken = 1;
    d->woken[d->nwoken++] = terminal;
}

static void on_flush(uv_prepare_t *h)
{
    ld_dispatch *d = h->data;
    for (int i = 0; i < d->nwoken; i++) {
        term_slot *s = &d->slots[d->woken[i]];
        ld_rep_ctx *c = s->parked;
        s->woken = 0;
        if (!c) continue;
        s->parked = NULL;
        uv_timer_stop(&s->timer);
        s->last_seen = uv_now(d->loop);
        reply_parked(d, c, s->idx);
    }
    d->nwoken = 0;
}

/* authorized says whether this poll may act as terminal <term>: always for a
 * terminal without a key; for one with a key, if the poll's connection is
 * the one its last valid hello came on, or the poll carries a valid hello. */
static int authorized(ld_dispatch *d, ld_rep_ctx *c, int term, const Linkd__V1__PollRequest *p,
                      uint32_t pipe)
{
    const ld_terminal_def *t = &d->engine->rules->terminals[term];
    term_slot *s = &d->slots[term];
    char why[256];
    if (d->auth_rules != d->engine->rules) {
        /* A reload may have changed keys: every terminal proves itself again. */
        for (int i = 0; i < d->nslots; i++) d->slots[i].auth_pipe = 0;
        d->auth_rules = d->engine->rules;
    }
    if (!t->has_key) return 1;
    if (!p->hello) {
        if (pipe && s->auth_pipe == pipe) return 1;
        snprintf(why, sizeof why, "terminal %s must send a signed hello on this connection",
                 t->id);
    } else if (ld_auth_check(&d->auth, t, p->hello, (int64_t)ld_wall_ms(), why, sizeof why) == 0) {
        s->auth_pipe = pipe;
        ld_log(LD_INFO, "TERMINAL-HELLO", "terminal %s proved its key (connection %u)", t->id,
               pipe);
        return 1;
    }
    d->stats.hellos_refused++;
    ld_log_rl(LD_WARN, "TERMINAL-AUTH", "poll refused: %s", why);
    Linkd__V1__PollReply r;
    linkd__v1__poll_reply__init(&r);
    r.error = why;
    r.has_hello_required = 1;
    r.hello_required = 1;
    r.has_server_time_ms = 1;
    r.server_time_ms = (int64_t)ld_clock_now(d->engine->clock);
    ld_rep_reply(c, ld_msg_from_pb(&r.base));
    return 0;
}

static void on_poll(ld_rep *rep, ld_rep_ctx *c, nng_msg *msg)
{
    ld_dispatch *d = rep->user;
    poll_state *ps = c->user;
    const ld_rules *r = d->engine->rules;
    char why[256];
    d->stats.polls++;
    int pipe_id = (int)ld_rep_pipe(c);
    uint32_t pipe = pipe_id > 0 ? (uint32_t)pipe_id : 0;
    Linkd__V1__PollRequest *p =
        linkd__v1__poll_request__unpack(&ps->arena.pb, nng_msg_len(msg), nng_msg_body(msg));
    nng_msg_free(msg);
    if (!p) {
        reply_error(d, c, "malformed PollRequest: not a valid protobuf message");
        goto done;
    }
    int term = p->terminal_id ? ld_rules_terminal(r, p->terminal_id) : -1;
    if (term < 0) {
        snprintf(why, sizeof why, "terminal_id: %s'%.64s' is not a terminal in the rules",
                 p->terminal_id ? "" : "missing ", p->terminal_id ? p->terminal_id : "");
        reply_error(d, c, why);
        goto done;
    }
    if (p->department && *p->department &&
        strcmp(p->department, r->departments[r->terminals[term].dept].id) != 0) {
        snprintf(why, sizeof why, "department: terminal %s belongs to %s, not %.64s",
                 r->terminals[term].id, r->departments[r->terminals[term].dept].id, p->department);
        reply_error(d, c, why);
        goto done;
    }
    if (!authorized(d, c, term, p, pipe)) goto done;
    term_slot *s = &d->slots[term];
    seen(d, s);
    if (s->parked) {
        /* A newer poll from the same terminal supersedes the parked one. */
        ld_rep_ctx *old = s->parked;
        s->parked = NULL;
        uv_timer_stop(&s->timer);
        ((poll_state *)old->user)->max_tasks = 0;
        reply_parked(d, old, term);
    }
    uint64_t now = uv_now(d->loop);
    for (size_t i = 0; i < p->n_received; i++)
        ld_engine_receipt(d->engine, term, p->received[i], now);

    Linkd__V1__UpdateResult *res = NULL, **resp = NULL;
    if (p->n_updates) {
        res = ld_arena_alloc(&ps->arena, p->n_updates * sizeof *res);
        resp = ld_arena_alloc(&ps->arena, p->n_updates * sizeof *resp);
        if (!res || !resp) {
            reply_error(d, c, "updates: too many in one poll");
            goto done;
        }
    }
    for (size_t i = 0; i < p->n_updates; i++) {
        const Linkd__V1__TaskUpdate *u = p->updates[i];
        linkd__v1__update_result__init(&res[i]);
        resp[i] = &res[i];
        res[i].task_id = u->task_id;
        why[0] = '\0';
        int result = ld_engine_update(d->engine, term, u, why, sizeof why);
        res[i].has_result = 1;
        res[i].result = (Linkd__V1__Result)result;
        d->stats.updates++;
        if (result == LINKD__V1__RESULT__RESULT_REJECTED) {
            size_t wl = strlen(why) + 1;
            char *w = ld_arena_alloc(&ps->arena, wl);
            if (w) memcpy(w, why, wl);
            res[i].reason = w;
            d->stats.updates_rejected++;
            ld_log_rl(LD_WARN, "POLL-UPDATE", "update from %s refused: %s", r->terminals[term].id,
                      why);
        }
    }
    size_t max = p->has_max_tasks && p->max_tasks ? p->max_tasks : DEFAULT_MAX_TASKS;
    if (max > MAX_TASKS) max = MAX_TASKS;
    uint32_t wait = p->has_wait_ms ? p->wait_ms : 0;
    if (wait > MAX_WAIT_MS) wait = MAX_WAIT_MS;
    if (wait == 0 || ld_engine_pending(d->engine, term, uv_now(d->loop))) {
        reply_tasks(d, c, term, max, resp, p->n_updates);
        return; /* reply_tasks reset the arena */
    }
    /* Park. The results (in this context's arena) go with the reply. */
    ps->results = resp;
    ps->nresults = p->n_updates;
    ps->max_tasks = max;
    if (p->n_updates && wait > LINGER_MS) wait = LINGER_MS;
    s->parked = c;
    d->stats.parked++;
    uv_timer_start(&s->timer, on_poll_timeout, wait, 0);
    return;
done:
    ld_arena_reset(&ps->arena);
}

/* ---- open/close ------------------------------------------------------------------ */

int ld_dispatch_open(ld_dispatch *d, uv_loop_t *loop, ld_engine *engine,
                     const char *terminals_url, const char *feed_url, size_t max_msg,
                     uint64_t offline_after_ms)
{
    int rv;
    memset(d, 0, sizeof *d);
    if (ld_auth_init(&d->auth) != 0) return LD_EIO;
    d->loop = loop;
    d->engine = engine;
    d->offline_after_ms = offline_after_ms;
    d->nslots = engine->rules->nterminals;
    d->slots = calloc((size_t)d->nslots + 1, sizeof *d->slots);
    d->woken = calloc((size_t)d->nslots + 1, sizeof *d->woken);
    /* Every terminal may hold a parked poll; keep as many contexts again for the rest. */
    d->npolls = (size_t)d->nslots * 2 + 64;
    d->polls = calloc(d->npolls, sizeof *d->polls);
    if (!d->slots || !d->woken || !d->polls) {
        rv = LD_ENOMEM;
        goto fail;
    }
    for (int i = 0; i < d->nslots; i++) {
        d->slots[i].d = d;
        d->slots[i].idx = i;
        uv_timer_init(loop, &d->slots[i].timer);
        d->slots[i].timer.data = &d->slots[i];
    }
    for (size_t i = 0; i < d->npolls; i++) ld_arena_init(&d->polls[i].arena, 16 * 1024, 8 * max_msg);

    if ((rv = feed_open(d, feed_url)) != 0) goto fail;
    if ((rv = ld_rep_open(&d->rep, loop, terminals_url, d->npolls, max_msg, on_poll, d)) != 0)
        goto fail;
    for (size_t i = 0; i < d->npolls; i++) d->rep.ctxs[i].user = &d->polls[i];
    uv_timer_init(loop, &d->sweep);
    d->sweep.data = d;
    d->sweep_open = 1;
    uv_timer_start(&d->sweep, on_sweep, 1000, 1000);
    uv_prepare_init(loop, &d->flush);
    d->flush.data = d;
    d->flush_open = 1;
    uv_prepare_start(&d->flush, on_flush);
    return 0;
fail:
    ld_dispatch_close(d);
    return rv;
}

void ld_dispatch_close(ld_dispatch *d)
{
    ld_rep_close(&d->rep);
    feed_close(d);
    if (d->flush_open) {
        uv_close((uv_handle_t *)&d->flush, NULL);
        d->flush_open = 0;
    }
    if (d->sweep_open) {
        uv_close((uv_handle_t *)&d->sweep, NULL);
        d->sweep_open = 0;
    }
    if (d->slots) {
        for (int i = 0; i < d->nslots; i++)
            if (d->slots[i].timer.loop && !uv_is_closing((uv_handle_t *)&d->slots[i].timer))
                uv_close((uv_handle_t *)&d->slots[i].timer, NULL);
    }
    for (size_t i = 0; d->polls && i < d->npolls; i++) ld_arena_fini(&d->polls[i].arena);
    free(d->polls);
    d->polls = NULL;
}

void ld_dispatch_fini(ld_dispatch *d)
{
    free(d->woken);
    d->woken = NULL;
    free(d->slots);
    d->slots = NULL;
    d->nslots = 0;
}
