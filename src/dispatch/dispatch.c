#include "dispatch/dispatch.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nng/protocol/pubsub0/pub.h>

#include "core/err.h"
#include "core/log.h"

enum {
    MAX_WAIT_MS = 30000,
    DEFAULT_MAX_TASKS = 64,
    MAX_TASKS = 256,
};

typedef struct term_slot {
    ld_dispatch *d;
    int idx;
    ld_rep_ctx *parked;
    uv_timer_t timer;
    uint64_t last_seen;     /* loop ms */
    int online;
} term_slot;

typedef struct poll_state {
    ld_arena arena;
} poll_state;

/* ---- feed ------------------------------------------------------------------ */

void ld_dispatch_feed(void *arg, const Linkd__V1__FeedEvent *fe)
{
    ld_dispatch *d = arg;
    if (!d->feed_open) return;
    nng_msg *m = ld_msg_from_pb(&fe->base);
    if (!m || nng_sendmsg(d->feed, m, NNG_FLAG_NONBLOCK) != 0) {
        nng_msg_free(m);
        d->stats.feed_errors++;
        return;
    }
    d->stats.feed_sent++;
    ld_log(LD_DEBUG, "FEED", "%s", fe->text ? fe->text : "");
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
        if (items[i].redelivery) {
            tasks[i].has_redelivery = 1;
            tasks[i].redelivery = 1;
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
    reply_tasks(s->d, c, s->idx, DEFAULT_MAX_TASKS, NULL, 0);
}

void ld_dispatch_wake(void *arg, int terminal)
{
    ld_dispatch *d = arg;
    if (terminal < 0 || terminal >= d->nslots) return;
    term_slot *s = &d->slots[terminal];
    ld_rep_ctx *c = s->parked;
    if (!c) return;
    s->parked = NULL;
    uv_timer_stop(&s->timer);
    s->last_seen = uv_now(d->loop);
    reply_tasks(d, c, terminal, DEFAULT_MAX_TASKS, NULL, 0);
}

static void on_poll(ld_rep *rep, ld_rep_ctx *c, nng_msg *msg)
{
    ld_dispatch *d = rep->user;
    poll_state *ps = c->user;
    const ld_rules *r = d->engine->rules;
    char why[256];
    d->stats.polls++;
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
    term_slot *s = &d->slots[term];
    seen(d, s);
    if (s->parked) {
        /* A newer poll from the same terminal supersedes the parked one. */
        ld_rep_ctx *old = s->parked;
        s->parked = NULL;
        uv_timer_stop(&s->timer);
        reply_tasks(d, old, term, 0, NULL, 0);
    }
    for (size_t i = 0; i < p->n_received; i++) ld_engine_receipt(d->engine, term, p->received[i]);

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
    if (p->n_updates || wait == 0 || ld_engine_pending(d->engine, term, uv_now(d->loop))) {
        reply_tasks(d, c, term, max, resp, p->n_updates);
        return; /* reply_tasks reset the arena */
    }
    s->parked = c;
    d->stats.parked++;
    uv_timer_start(&s->timer, on_poll_timeout, wait, 0);
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
    d->loop = loop;
    d->engine = engine;
    d->offline_after_ms = offline_after_ms;
    d->nslots = engine->rules->nterminals;
    d->slots = calloc((size_t)d->nslots + 1, sizeof *d->slots);
    /* Every terminal may hold a parked poll; keep as many contexts again for the rest. */
    d->npolls = (size_t)d->nslots * 2 + 64;
    d->polls = calloc(d->npolls, sizeof *d->polls);
    if (!d->slots || !d->polls) {
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

    if ((rv = nng_pub0_open(&d->feed)) != 0) {
        rv = ld_err_from_nng(rv);
        goto fail;
    }
    d->feed_open = 1;
    if ((rv = nng_listen(d->feed, feed_url, NULL, 0)) != 0) {
        ld_log(LD_ERR, "NNG-LISTEN", "cannot listen on %s: %s", feed_url, nng_strerror(rv));
        rv = ld_err_from_nng(rv);
        goto fail;
    }
    if ((rv = ld_rep_open(&d->rep, loop, terminals_url, d->npolls, max_msg, on_poll, d)) != 0)
        goto fail;
    for (size_t i = 0; i < d->npolls; i++) d->rep.ctxs[i].user = &d->polls[i];
    uv_timer_init(loop, &d->sweep);
    d->sweep.data = d;
    d->sweep_open = 1;
    uv_timer_start(&d->sweep, on_sweep, 1000, 1000);
    return 0;
fail:
    ld_dispatch_close(d);
    return rv;
}

void ld_dispatch_close(ld_dispatch *d)
{
    ld_rep_close(&d->rep);
    if (d->feed_open) {
        nng_close(d->feed);
        d->feed_open = 0;
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
    free(d->slots);
    d->slots = NULL;
    d->nslots = 0;
}
