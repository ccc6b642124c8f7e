/* term.c: simulated on-duty terminals for `linkload run`.
 *
 * linkd gives each level of a department's escalation chain its own terminal
 * (fire-duty, fire-deputy, fire-head; then command-supervisor ...). The
 * scenario says how many levels of each department are staffed: those
 * terminals long-poll the terminal socket, each over its own connection:
 * for tcp:// all of them on one libuv loop thread (spc.h: NNG's wire
 * protocol without NNG's thread hand-offs, which cost the generator more
 * CPU than linkd), else each from an NNG REQ socket driven by aio
 * callbacks; the others stay silent, so tasks that reach them wait for the
 * next escalation.
 *
 * A staffed terminal receipts every task in its next poll. Unless it is a
 * no-show for that task (drawn with the scenario's no_show probability), it
 * acknowledges after a delay drawn from `acknowledge`, reports ON_SCENE
 * after `arrive` and RESOLVED after `resolve` (each "never" stops the chain
 * there), and, for tasks with a feedback leg, FEEDBACK `feedback` after
 * arriving. Delays are linkd domain time, so they are divided by the time
 * scale. Offline periods: after a gap drawn from `offline_every` a terminal
 * stops polling for `offline_for`, then comes back and catches up.
 *
 * Intake-to-terminal latency is the time a terminal receives a task minus
 * the intended send time of the event that opened the incident: Task.event_id
 * is "<run id>-<seq>", and the seq gives the request and its intended time.
 * Only first deliveries at level 0 of the plan the incident opened with
 * count; escalated and redelivered tasks, and tasks added to the incident
 * later (a correlation rule's upgrade), are counted apart.
 *
 * A task is acted on by one officer: when it escalates to a terminal while a
 * lower level is already handling it (acknowledged late), the new holder
 * only receipts it. What no-show officers ignore is picked up above. */
#include <errno.h>
#include <inttypes.h>
#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>
#include <nng/supplemental/util/platform.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/err.h"
#include "core/rep.h"
#include "run.h"
#include "spc.h"

#define MAX_UPDATES_PER_POLL 256    /* bounds one poll; the rest go in the next */
#define POLL_WAIT_MS 1000u          /* long-poll wait with nothing due */

typedef struct action {
    uint64_t due_ns;
    char *task_id;
    int kind;                       /* UpdateKind to send */
    int feedback_leg;               /* the task has a feedback leg: report one */
} action;

struct term {
    run *r;
    const char *id, *dept;
    lg_term_profile prof;
    nng_socket sock;
    nng_aio *aio;
    lg_spc spc;                     /* native: the connection */
    uv_timer_t wake;                /* native: offline periods, retries */
    ld_arena arena;
    int receiving, sleeping, open, has_sock, errors_in_row;
    uint64_t rng;
    uint64_t offline_at_ns;         /* next offline period; 0: never */
    char **receipts;                /* task ids of the last reply */
    size_t nreceipts, capreceipts;
    action *heap;                   /* min-heap by due_ns */
    size_t nheap, capheap;
};

/* ---- pending actions: a binary min-heap per terminal ------------------------ */

static void heap_swap(action *h, size_t a, size_t b)
{
    action t = h[a];
    h[a] = h[b];
    h[b] = t;
}

static int heap_push(term *t, action a)
{
    if (t->nheap == t->capheap) {
        size_t ncap = t->capheap ? t->capheap * 2 : 64;
        action *n = realloc(t->heap, ncap * sizeof *n);
        if (!n) return LD_ENOMEM;
        t->heap = n;
        t->capheap = ncap;
    }
    size_t i = t->nheap++;
    t->heap[i] = a;
    while (i > 0 && t->heap[(i - 1) / 2].due_ns > t->heap[i].due_ns) {
        heap_swap(t->heap, i, (i - 1) / 2);
        i = (i - 1) / 2;
    }
    return 0;
}

static action heap_pop(term *t)
{
    action top = t->heap[0];
    t->heap[0] = t->heap[--t->nheap];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, m = i;
        if (l < t->nheap && t->heap[l].due_ns < t->heap[m].due_ns) m = l;
        if (l + 1 < t->nheap && t->heap[l + 1].due_ns < t->heap[m].due_ns) m = l + 1;
        if (m == i) break;
        heap_swap(t->heap, i, m);
        i = m;
    }
    return top;
}

/* delay_ns draws a delay of <d> in real nanoseconds; -1 for never. */
static int64_t delay_ns(term *t, const lg_dist *d)
{
    double ms = lg_dist_sample(d, &t->rng);
    if (ms < 0) return -1;
    return (int64_t)(ms * 1e6 / t->r->sc.time_scale);
}

/* schedule_in queues update <kind> of <task_id> <dn> ns after <now>;
 * a negative delay ("never") queues nothing. Takes a copy of the id. */
static int schedule_in(term *t, const char *task_id, int kind, int feedback_leg, int64_t dn, uint64_t now)
{
    if (dn < 0) return 0;
    char *dup = strdup(task_id);
    if (!dup) return LD_ENOMEM;
    int rv = heap_push(t, (action){now + (uint64_t)dn, dup, kind, feedback_leg});
    if (rv != 0) free(dup);
    return rv;
}

static int schedule(term *t, const char *task_id, int kind, int feedback_leg, const lg_dist *d,
                    uint64_t now)
{
    return schedule_in(t, task_id, kind, feedback_leg, delay_ns(t, d), now);
}

static int push_receipt(term *t, const char *id)
{
    if (t->nreceipts == t->capreceipts) {
        size_t ncap = t->capreceipts ? t->capreceipts * 2 : 64;
        char **n = realloc(t->receipts, ncap * sizeof *n);
        if (!n) return LD_ENOMEM;
        t->receipts = n;
        t->capreceipts = ncap;
    }
    if (!(t->receipts[t->nreceipts] = strdup(id))) return LD_ENOMEM;
    t->nreceipts++;
    return 0;
}

/* ---- replies ----------------------------------------------------------------- */

/* event_seq parses "<run id>-<seq>"; returns 0 and sets *seq if the event is
 * one of this run's. */
static int event_seq(const run *r, const char *eid, uint64_t *seq)
{
    size_t n = strlen(r->run_id);
    if (!eid || strncmp(eid, r->run_id, n) != 0 || eid[n] != '-') return -1;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(eid + n + 1, &end, 10);
    if (errno || *end || end == eid + n + 1) return -1;
    *seq = v;
    return 0;
}

/* tally_task counts one task as the terminal receives it. Caller holds tmu. */
static void tally_task(run *r, const Linkd__V1__Task *task, uint64_t now)
{
    term_stats *st = &r->tst;
    uint64_t seq;
    st->tasks++;
    st->last_task_ns = now;
    if (task->redelivery) {
        st->redelivered++;
        return;
    }
    if (task->level > 0) {
        st->escalated++;
        return;
    }
    /* Added to the incident after it opened (a correlation rule's upgrade
     * adds departments minutes later): not a delivery of the opening event's plan. */
    if (task->has_incident_opened_at_ms && task->dispatched_at_ms > task->incident_opened_at_ms) {
        st->added_later++;
        return;
    }
    if (event_seq(r, task->event_id, &seq) != 0 || seq >= r->nevents) {
        st->foreign++;
        return;
    }
    uint64_t req = seq / r->o.batch;
    if (req < r->warm_reqs) {
        st->warm++;
        return;
    }
    st->first++;
    uint64_t t0 = lg_intended_ns(r, req), ns = now > t0 ? now - t0 : 0;
    ld_hist_record(&st->latency, ns);
    pthread_mutex_lock(&r->mu);
    lg_account_latency(r, req, ns, 1);
    pthread_mutex_unlock(&r->mu);
}

/* take_in_hand records that a terminal acts on <id>; 0 if another one
 * already does (or memory ran out). Caller holds tmu. */
static int take_in_hand(run *r, const char *id)
{
    if (ld_map_get(&r->in_hand, id)) return 0;
    char *key = strdup(id);
    if (!key) return 0;
    if (ld_map_put(&r->in_hand, key, key) != 0) {
        free(key);
        return 0;
    }
    return 1;
}

/* take_reply handles one PollReply: counts, queues receipts, and decides
 * what this terminal will do with each new task. */
static void take_reply(term *t, const Linkd__V1__PollReply *rep, uint64_t now)
{
    run *r = t->r;
    int oom = 0;
    uint64_t no_shows = 0;
    pthread_mutex_lock(&r->tmu);
    term_stats *st = &r->tst;
    st->polls++;
    if (rep->error) {
        st->refused++;
        if (!st->sample_refused[0])
            snprintf(st->sample_refused, sizeof st->sample_refused, "%s: %s", t->id, rep->error);
    }
    for (size_t i = 0; i < rep->n_update_results; i++) {
        const Linkd__V1__UpdateResult *u = rep->update_results[i];
        unsigned v = u->has_result && u->result <= LG_RESULT_MAX ? (unsigned)u->result : 0;
        st->updates[v]++;
        if (v == LINKD__V1__RESULT__RESULT_REJECTED && !st->sample_update[0])
            snprintf(st->sample_update, sizeof st->sample_update, "%s: %s",
                     u->task_id ? u->task_id : "?", u->reason ? u->reason : "(no reason)");
    }
    for (size_t i = 0; i < rep->n_tasks; i++) tally_task(r, rep->tasks[i], now);
    pthread_mutex_unlock(&r->tmu);

    for (size_t i = 0; i < rep->n_tasks; i++) {
        const Linkd__V1__Task *task = rep->tasks[i];
        if (!task->task_id) continue;
        oom |= push_receipt(t, task->task_id) != 0;
        if (task->redelivery) continue;   /* already planned when it first came */
        if (t->prof.no_show > 0 && lg_rnd_unit(&t->rng) < t->prof.no_show) {
            no_shows++;
            continue;
        }
        pthread_mutex_lock(&r->tmu);
        int mine = take_in_hand(r, task->task_id);
        pthread_mutex_unlock(&r->tmu);
        if (!mine) continue;
        oom |= schedule(t, task->task_id, LINKD__V1__UPDATE_KIND__UPDATE_KIND_ACKNOWLEDGED,
                        task->has_feedback_by_ms, &t->prof.ack, now) != 0;
    }
    if (no_shows) {
        pthread_mutex_lock(&r->tmu);
        st->no_shows += no_shows;
        pthread_mutex_unlock(&r->tmu);
    }
    if (oom) fprintf(stderr, "linkload: out of memory in terminal %s\n", t->id);
}

/* build_poll packs the next PollRequest: all receipts, the updates that are
 * due (at most MAX_UPDATES_PER_POLL), and a wait that ends when the next one
 * is due. Each update sent queues the task's next step. Frees what it
 * packed. Returns 0 or an NNG error. */
static int build_poll(term *t, nng_msg **out)
{
    run *r = t->r;
    uint64_t now = ld_mono_ns();
    Linkd__V1__TaskUpdate upd[MAX_UPDATES_PER_POLL];
    Linkd__V1__TaskUpdate *updp[MAX_UPDATES_PER_POLL];
    char *taken[MAX_UPDATES_PER_POLL];
    uint64_t sent[8] = {0};
    size_t nu = 0;
    while (t->nheap && t->heap[0].due_ns <= now && nu < MAX_UPDATES_PER_POLL) {
        action a = heap_pop(t);
        linkd__v1__task_update__init(&upd[nu]);
        upd[nu].task_id = a.task_id;
        upd[nu].has_kind = 1;
        upd[nu].kind = (Linkd__V1__UpdateKind)a.kind;
        if (a.kind == LINKD__V1__UPDATE_KIND__UPDATE_KIND_RESOLVED)
            upd[nu].disposition = "handled on scene (linkload)";
        else if (a.kind == LINKD__V1__UPDATE_KIND__UPDATE_KIND_FEEDBACK)
            upd[nu].disposition = "crew on scene, situation under control (linkload)";
        updp[nu] = &upd[nu];
        taken[nu++] = a.task_id;
        sent[a.kind & 7]++;
        if (a.kind == LINKD__V1__UPDATE_KIND__UPDATE_KIND_ACKNOWLEDGED)
            schedule(t, a.task_id, LINKD__V1__UPDATE_KIND__UPDATE_KIND_ON_SCENE, a.feedback_leg,
                     &t->prof.arrive, now);
        else if (a.kind == LINKD__V1__UPDATE_KIND__UPDATE_KIND_ON_SCENE) {
            /* A report from the scene comes before the resolution or not at all. */
            int64_t res = delay_ns(t, &t->prof.resolve);
            int64_t fb = a.feedback_leg ? delay_ns(t, &t->prof.feedback) : -1;
            schedule_in(t, a.task_id, LINKD__V1__UPDATE_KIND__UPDATE_KIND_RESOLVED, 0, res, now);
            if (fb >= 0 && (res < 0 || fb < res))
                schedule_in(t, a.task_id, LINKD__V1__UPDATE_KIND__UPDATE_KIND_FEEDBACK, 0, fb, now);
        }
    }
    uint32_t wait = POLL_WAIT_MS;
    if (t->nheap) {
        uint64_t due = t->heap[0].due_ns;
        wait = due <= now ? 0 : (uint32_t)((due - now + NS_PER_MS - 1) / NS_PER_MS);
        if (wait > POLL_WAIT_MS) wait = POLL_WAIT_MS;
    }
    if (t->offline_at_ns && t->offline_at_ns > now &&
        (t->offline_at_ns - now) / NS_PER_MS < wait)
        wait = (uint32_t)((t->offline_at_ns - now) / NS_PER_MS);
    Linkd__V1__PollRequest req = LINKD__V1__POLL_REQUEST__INIT;
    req.terminal_id = (char *)t->id;
    req.department = (char *)t->dept;
    req.n_updates = nu;
    req.updates = updp;
    req.n_received = t->nreceipts;
    req.received = t->receipts;
    req.has_wait_ms = 1;
    req.wait_ms = wait;
    req.has_max_tasks = 1;
    req.max_tasks = 256;
    nng_msg *msg;
    int rv = nng_msg_alloc(&msg, linkd__v1__poll_request__get_packed_size(&req));
    if (rv == 0) {
        linkd__v1__poll_request__pack(&req, nng_msg_body(msg));
        *out = msg;
    }
    if (nu) {
        pthread_mutex_lock(&r->tmu);
        for (int k = 0; k < 8; k++) r->tst.updates_sent[k] += sent[k];
        for (size_t i = 0; i < nu; i++)   /* resolved: out of hand */
            if (upd[i].kind == LINKD__V1__UPDATE_KIND__UPDATE_KIND_RESOLVED) free(ld_map_del(&r->in_hand, taken[i]));
        pthread_mutex_unlock(&r->tmu);
    }
    /* Receipts and updates are dropped even if the message could not be
     * built: linkd redelivers what was never receipted. */
    for (size_t i = 0; i < t->nreceipts; i++) free(t->receipts[i]);
    t->nreceipts = 0;
    for (size_t i = 0; i < nu; i++) free(taken[i]);
    return rv;
}

static void on_wake(uv_timer_t *h);

static void term_poll(term *t)
{
    nng_msg *msg;
    if (atomic_load(&t->r->stopping)) {
        t->open = 0;
        return;
    }
    uint64_t now = ld_mono_ns();
    if (t->offline_at_ns && now >= t->offline_at_ns) {   /* go offline for a while */
        int64_t len = delay_ns(t, &t->prof.offline_for);
        int64_t gap = delay_ns(t, &t->prof.offline_every);
        if (len > 0) {
            t->offline_at_ns = gap > 0 ? now + (uint64_t)len + (uint64_t)gap : 0;
            t->sleeping = 1;
            pthread_mutex_lock(&t->r->tmu);
            t->r->tst.offline_periods++;
            pthread_mutex_unlock(&t->r->tmu);
            uint64_t ms = (uint64_t)len / NS_PER_MS;
            if (t->r->tnative) uv_timer_start(&t->wake, on_wake, ms > 600000 ? 600000 : ms, 0);
            else nng_sleep_aio((nng_duration)(ms > 600000 ? 600000 : ms), t->aio);
            return;
        }
        t->offline_at_ns = gap > 0 ? now + (uint64_t)gap : 0;
    }
    if (build_poll(t, &msg) != 0) {
        t->open = 0;
        return;
    }
    if (t->r->tnative) {
        lg_spc_request(&t->spc, msg, 5000 + POLL_WAIT_MS + 10000);
        return;
    }
    t->receiving = 0;
    nng_aio_set_msg(t->aio, msg);
    nng_aio_set_timeout(t->aio, 5000);
    nng_send_aio(t->sock, t->aio);
}

/* poll_failed counts a failed poll; false once this terminal has failed
 * too often in a row, and it stops. */
static bool poll_failed(term *t)
{
    pthread_mutex_lock(&t->r->tmu);
    t->r->tst.poll_errors++;
    pthread_mutex_unlock(&t->r->tmu);
    if (++t->errors_in_row > 20) {
        t->open = 0;
        return false;
    }
    return true;
}

/* term_retry counts a failed poll and polls again, unless this terminal has
 * failed too often in a row (each failure takes a timeout, so this is slow). */
static void term_retry(term *t)
{
    if (poll_failed(t)) term_poll(t);
}

static void got_reply(term *t, const uint8_t *body, size_t len);

static void term_cb(void *arg)
{
    term *t = arg;
    int rv = nng_aio_result(t->aio);
    if (t->sleeping) {   /* back from an offline period (or the run stops) */
        t->sleeping = 0;
        if (rv != 0 && rv != NNG_ETIMEDOUT) {
            t->open = 0;
            return;
        }
        term_poll(t);
        return;
    }
    if (rv == NNG_ECLOSED || rv == NNG_ECANCELED || atomic_load(&t->r->stopping)) {
        /* A failed send leaves the request with us; a received reply is ours. */
        if (!t->receiving ? rv != 0 : rv == 0) nng_msg_free(nng_aio_get_msg(t->aio));
        t->open = 0;
        return;
    }
    if (!t->receiving) {
        if (rv != 0) {   /* could not send (no connection within 5 s): try again */
            nng_msg_free(nng_aio_get_msg(t->aio));
            term_retry(t);
            return;
        }
        t->receiving = 1;
        nng_aio_set_timeout(t->aio, POLL_WAIT_MS + 10000);
        nng_recv_aio(t->sock, t->aio);
        return;
    }
    if (rv != 0) {
        term_retry(t);
        return;
    }
    nng_msg *msg = nng_aio_get_msg(t->aio);
    got_reply(t, nng_msg_body(msg), nng_msg_len(msg));
    nng_msg_free(msg);
}

/* got_reply takes a poll's reply and polls again. */
static void got_reply(term *t, const uint8_t *body, size_t len)
{
    t->errors_in_row = 0;
    uint64_t now = ld_mono_ns();
    Linkd__V1__PollReply *rep = linkd__v1__poll_reply__unpack(&t->arena.pb, len, body);
    if (rep) take_reply(t, rep, now);
    else {
        pthread_mutex_lock(&t->r->tmu);
        t->r->tst.poll_errors++;
        pthread_mutex_unlock(&t->r->tmu);
    }
    int refused = rep && rep->error;
    ld_arena_reset(&t->arena);
    if (refused) {   /* e.g. a terminal linkd does not know: stop this one */
        t->open = 0;
        return;
    }
    term_poll(t);
}

/* ---- the native transport: every terminal on one loop thread ---------------------- */

static void on_wake(uv_timer_t *h)
{
    term *t = h->data;
    t->sleeping = 0;
    if (atomic_load(&t->r->stopping)) {
        t->open = 0;
        return;
    }
    term_poll(t);
}

static void on_spc(lg_spc *c, int status, const uint8_t *body, size_t len)
{
    term *t = c->arg;
    if (atomic_load(&t->r->stopping)) {
        t->open = 0;
        return;
    }
    if (status == 0) {
        got_reply(t, body, len);
        return;
    }
    /* As term_retry, but a refused connection waits a little before the next try. */
    if (poll_failed(t)) uv_timer_start(&t->wake, on_wake, 100, 0);
}

static void on_tstop(uv_async_t *h)
{
    run *r = h->data;
    for (size_t i = 0; i < r->nterms; i++) {
        term *t = &r->terms[i];
        if (!t->spc.done) continue;
        lg_spc_close(&t->spc);
        uv_close((uv_handle_t *)&t->wake, NULL);
    }
    uv_close((uv_handle_t *)h, NULL);
}

static void tloop_main(void *arg)
{
    run *r = arg;
    for (size_t i = 0; i < r->nterms; i++)
        if (r->terms[i].open) term_poll(&r->terms[i]);
    uv_run(&r->tloop, UV_RUN_DEFAULT);
}

/* staffed_level returns the chain level terminal <i> holds in its
 * department, or -1 if it is on no level (a spare terminal). */
static int staffed_level(const ld_rules *rules, int i)
{
    const ld_department *d = &rules->departments[rules->terminals[i].dept];
    for (int k = 0; k < d->nlevels; k++)
        if (d->levels[k].terminal == i) return k;
    return -1;
}

int lg_terminals_open(run *r)
{
    ld_map_init(&r->in_hand);
    const char *how = getenv("LINKLOAD_TERMINALS");
    r->tnative = lg_spc_url_ok(r->o.terminals_url) && !(how && strcmp(how, "nng") == 0);
    if (r->tnative) {
        if (uv_loop_init(&r->tloop) != 0) return NNG_ENOMEM;
        uv_async_init(&r->tloop, &r->tstop, on_tstop);
        r->tstop.data = r;
    }
    r->nterms = (size_t)r->rules->nterminals;
    r->terms = calloc(r->nterms ? r->nterms : 1, sizeof *r->terms);
    if (!r->terms) return NNG_ENOMEM;
    for (size_t i = 0; i < r->nterms; i++) {
        term *t = &r->terms[i];
        const ld_terminal_def *d = &r->rules->terminals[i];
        t->r = r;
        t->id = d->id;
        t->dept = r->rules->departments[d->dept].id;
        t->prof = lg_scenario_profile(&r->sc, t->dept);
        t->rng = ld_mono_ns() ^ ((uint64_t)i * 0x9e3779b97f4a7c15ull);
        int level = staffed_level(r->rules, (int)i);
        if (t->prof.staffed >= 0 && (level < 0 || level >= t->prof.staffed)) continue;
        ld_arena_init(&t->arena, 65536, 0);
        int rv;
        if (r->tnative) {
            if ((rv = lg_spc_init(&t->spc, &r->tloop, r->o.terminals_url, 64u << 20, on_spc, t)) != 0)
                return rv;
            uv_timer_init(&r->tloop, &t->wake);
            t->wake.data = t;
            t->open = 1;
            r->nstaffed++;
            int64_t gap = t->prof.offline_for.kind != LG_DIST_NEVER ? delay_ns(t, &t->prof.offline_every) : -1;
            t->offline_at_ns = gap > 0 ? ld_mono_ns() + (uint64_t)gap : 0;
            continue;
        }
        if ((rv = nng_req0_open(&t->sock)) != 0) return rv;
        t->has_sock = t->open = 1;
        r->nstaffed++;
        nng_socket_set_ms(t->sock, NNG_OPT_REQ_RESENDTIME, 3600 * 1000);
        nng_socket_set_size(t->sock, NNG_OPT_RECVMAXSZ, 64u << 20);
        if ((rv = nng_dial(t->sock, r->o.terminals_url, NULL, NNG_FLAG_NONBLOCK)) != 0) return rv;
        if ((rv = nng_aio_alloc(&t->aio, term_cb, t)) != 0) return rv;
        int64_t gap = t->prof.offline_for.kind != LG_DIST_NEVER ? delay_ns(t, &t->prof.offline_every) : -1;
        t->offline_at_ns = gap > 0 ? ld_mono_ns() + (uint64_t)gap : 0;
    }
    if (r->tnative) {
        if (uv_thread_create(&r->tthread, tloop_main, r) != 0) return NNG_ENOMEM;
        r->tthread_started = 1;
        return 0;
    }
    for (size_t i = 0; i < r->nterms; i++)
        if (r->terms[i].open) term_poll(&r->terms[i]);
    return 0;
}

void lg_terminals_close(run *r)
{
    if (r->tnative) {
        if (r->tthread_started) {
            uv_async_send(&r->tstop);
            uv_thread_join(&r->tthread);
            r->tthread_started = 0;
        } else if (r->terms) { /* failed half way: close what was made, on this thread */
            on_tstop(&r->tstop);
            uv_run(&r->tloop, UV_RUN_DEFAULT);
        }
        uv_loop_close(&r->tloop);
        r->tnative = 0;
    }
    for (size_t i = 0; r->terms && i < r->nterms; i++)
        if (r->terms[i].aio) nng_aio_stop(r->terms[i].aio);
    int stuck = 0;
    for (size_t i = 0; r->terms && i < r->nterms; i++)
        if (r->terms[i].has_sock &&
            ld_nng_close(r->terms[i].sock, "terminal socket", LD_NNG_CLOSE_MS) != 0)
            stuck = 1;
    /* Stuck in NNG: leave the terminals and their aios, which NNG may still use. */
    if (stuck) {
        r->terms = NULL;
        return;
    }
    for (size_t i = 0; r->terms && i < r->nterms; i++) {
        term *t = &r->terms[i];
        nng_aio_free(t->aio);
        ld_arena_fini(&t->arena);
        for (size_t k = 0; k < t->nreceipts; k++) free(t->receipts[k]);
        for (size_t k = 0; k < t->nheap; k++) free(t->heap[k].task_id);
        free(t->receipts);
        free(t->heap);
    }
    free(r->terms);
    r->terms = NULL;
    const char *key;
    void *value;
    for (size_t it = 0; ld_map_next(&r->in_hand, &it, &key, &value);) free((char *)key);
    ld_map_fini(&r->in_hand);
}
