/* run.c: `linkload run`: open-loop intake load with simulated terminals.
 *
 * Open loop. The send schedule is fixed before the run starts: request i (of
 * <batch> events) is due at start + i * batch / rate. One sender thread keeps
 * to it, taking a free REQ context for each request; latency is measured from
 * the request's intended send time, never from when it actually left, so a
 * linkd that falls behind shows its queueing in the percentiles instead of
 * slowing the generator down (no coordinated omission). If every context is
 * busy the sender waits, and that wait counts against linkd too.
 *
 * Terminals. Every terminal of the rule set long-polls the terminal socket
 * from its own REQ socket, driven by aio callbacks (no thread per terminal).
 * Each task it receives is receipted in the next poll and acknowledged
 * (UPDATE_KIND_ACKNOWLEDGED) after --terminal-ack-delay, so nothing escalates.
 * Intake-to-terminal latency is the time a terminal receives a task minus the
 * intended send time of the event that opened the incident: Task.event_id is
 * "<run id>-<seq>", and the seq gives the request and its intended time.
 *
 * Threads: main (progress, end of run, report), the sender, and NNG's callback
 * threads. Counters and histograms sit behind two mutexes, one for intake and
 * one for terminals; nothing else is shared. */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/diag.h"
#include "core/err.h"
#include "core/hist.h"
#include "linkload.h"
#include "rules/rules.h"

#define NS_PER_S 1000000000ull
#define NS_PER_MS 1000000ull
#define MAX_UPDATES_PER_POLL 256    /* bounds one poll; the rest go in the next */
#define POLL_WAIT_MS 1000u          /* long-poll wait with nothing to acknowledge */
#define TERM_QUIET_NS (500 * NS_PER_MS)

typedef struct run_opts {
    double rate, duration, warmup, drain;
    unsigned connections, batch, inflight, timeout_ms, ack_delay_ms;
    const char *ingest_url, *terminals_url, *rules_dir, *json;
    lg_mix mix;
    int terminals, resolve, status, quiet;
} run_opts;

/* ---- shared state ------------------------------------------------------- */

typedef struct ingest_stats {
    uint64_t req_sent, ev_sent, ev_unsent;
    uint64_t results[5];            /* by Result value; [0] = unknown value */
    uint64_t timeouts, errors, bad_replies, unanswered;
    uint64_t first_send_ns, last_send_ns, last_reply_ns, max_lag_ns;
    ld_hist accepted;               /* intended send -> ACCEPTED, ns, per event */
    char sample_reject[256], sample_retry[256];
} ingest_stats;

typedef struct term_stats {
    uint64_t tasks, first, redelivered, escalated, warm, foreign;
    uint64_t polls, poll_errors, refused;
    uint64_t updates[5];            /* update results by Result value */
    uint64_t last_task_ns;
    ld_hist latency;                /* intended send -> terminal has the task, ns */
    char sample_refused[256], sample_update[256];
} term_stats;

typedef struct run run;

typedef struct prod_ctx {
    run *r;
    unsigned conn;
    nng_ctx ctx;
    nng_aio *aio;
    ld_arena arena;
    int receiving;
    uint64_t req, intended_ns;      /* request index and its intended send time */
    unsigned n;
    struct prod_ctx *next_free;
} prod_ctx;

typedef struct pending_ack {
    char *task_id;
    uint64_t due_ns;
} pending_ack;

typedef struct term {
    run *r;
    const char *id, *dept;
    nng_socket sock;
    nng_aio *aio;
    ld_arena arena;
    int receiving, open, errors_in_row;
    char **receipts;                /* task ids of the last reply */
    size_t nreceipts, capreceipts;
    pending_ack *q;                 /* FIFO: acks are due in arrival order */
    size_t qhead, qlen, qcap;
} term;

struct run {
    run_opts o;
    char run_id[24];
    uint64_t start_ns, nreq, nevents, warm_reqs;
    double interval_ns;             /* between requests */
    uint64_t hard_end_ns;           /* schedule end + drain: nothing runs past it */
    _Atomic int stopping;
    _Atomic int sender_done;

    nng_socket *socks;
    lg_gen **gens;                  /* one per connection: its own source id */
    prod_ctx *ctxs;
    size_t nctx;
    pthread_mutex_t mu;             /* free list, busy, ist */
    pthread_cond_t cv;
    prod_ctx *free_list;
    size_t busy;
    ingest_stats ist;

    ld_rules *rules;
    term *terms;
    size_t nterms;
    pthread_mutex_t tmu;            /* tst */
    term_stats tst;
};

static uint64_t intended_ns(const run *r, uint64_t req)
{
    return r->start_ns + (uint64_t)((double)req * r->interval_ns);
}

/* ---- producers ---------------------------------------------------------- */

static void ctx_release(run *r, prod_ctx *c)
{
    pthread_mutex_lock(&r->mu);
    c->next_free = r->free_list;
    r->free_list = c;
    r->busy--;
    pthread_cond_signal(&r->cv);
    pthread_mutex_unlock(&r->mu);
}

static void save_sample(char *dst, size_t len, const char *event_id, const char *reason)
{
    if (dst[0]) return;
    snprintf(dst, len, "%s: %s", event_id ? event_id : "?", reason ? reason : "(no reason)");
}

/* tally_reply counts the results of one answered request. Caller holds mu. */
static void tally_reply(run *r, prod_ctx *c, const Linkd__V1__IngestReply *rep, uint64_t now)
{
    ingest_stats *st = &r->ist;
    if (rep->n_results != c->n) {
        st->bad_replies += c->n;
        return;
    }
    for (size_t i = 0; i < rep->n_results; i++) {
        const Linkd__V1__IngestResult *res = rep->results[i];
        unsigned v = res->has_result && res->result <= 4 ? (unsigned)res->result : 0;
        st->results[v]++;
        if (v == LINKD__V1__RESULT__RESULT_ACCEPTED) ld_hist_record(&st->accepted, now - c->intended_ns);
        else if (v == LINKD__V1__RESULT__RESULT_REJECTED)
            save_sample(st->sample_reject, sizeof st->sample_reject, res->event_id, res->reason);
        else if (v == LINKD__V1__RESULT__RESULT_RETRY_LATER)
            save_sample(st->sample_retry, sizeof st->sample_retry, res->event_id, res->reason);
    }
}

/* on_reply_done handles the end of one request: answered (rv 0, <msg>), or
 * failed. Requests of the warm-up are not counted. */
static void on_request_done(prod_ctx *c, int rv, nng_msg *msg)
{
    run *r = c->r;
    uint64_t now = ld_mono_ns();
    Linkd__V1__IngestReply *rep = NULL;
    if (msg) {
        rep = linkd__v1__ingest_reply__unpack(&c->arena.pb, nng_msg_len(msg), nng_msg_body(msg));
        nng_msg_free(msg);
    }
    if (c->req >= r->warm_reqs) {
        pthread_mutex_lock(&r->mu);
        ingest_stats *st = &r->ist;
        if (rv == NNG_ETIMEDOUT) st->timeouts += c->n;
        else if (rv == NNG_ECLOSED || rv == NNG_ECANCELED) st->unanswered += c->n;
        else if (rv != 0) st->errors += c->n;
        else if (!rep) st->bad_replies += c->n;
        else {
            tally_reply(r, c, rep, now);
            st->last_reply_ns = now;
        }
        pthread_mutex_unlock(&r->mu);
    }
    ld_arena_reset(&c->arena);
    ctx_release(r, c);
}

static void prod_cb(void *arg)
{
    prod_ctx *c = arg;
    int rv = nng_aio_result(c->aio);
    if (!c->receiving) {
        if (rv != 0) {
            nng_msg_free(nng_aio_get_msg(c->aio));
            on_request_done(c, rv, NULL);
            return;
        }
        c->receiving = 1;
        nng_aio_set_timeout(c->aio, (nng_duration)c->r->o.timeout_ms);
        nng_ctx_recv(c->ctx, c->aio);
        return;
    }
    on_request_done(c, rv, rv == 0 ? nng_aio_get_msg(c->aio) : NULL);
}

/* take_ctx returns a free context, waiting for one until <deadline_ns>;
 * NULL at the deadline or when the run stops. */
static prod_ctx *take_ctx(run *r, uint64_t deadline_ns)
{
    struct timespec ts = {(time_t)(deadline_ns / NS_PER_S), (long)(deadline_ns % NS_PER_S)};
    prod_ctx *c = NULL;
    pthread_mutex_lock(&r->mu);
    while (!r->free_list && !atomic_load(&r->stopping))
        if (pthread_cond_timedwait(&r->cv, &r->mu, &ts) == ETIMEDOUT) break;
    if (r->free_list && !atomic_load(&r->stopping)) {
        c = r->free_list;
        r->free_list = c->next_free;
        r->busy++;
    }
    pthread_mutex_unlock(&r->mu);
    return c;
}

/* send_request builds request <i> and sends it on <c>. */
static void send_request(run *r, prod_ctx *c, uint64_t i, uint64_t now)
{
    uint64_t first = i * r->o.batch;
    unsigned n = (unsigned)(r->nevents - first < r->o.batch ? r->nevents - first : r->o.batch);
    nng_msg *msg;
    c->req = i;
    c->n = n;
    c->intended_ns = intended_ns(r, i);
    c->receiving = 0;
    int rv = lg_gen_request(r->gens[c->conn], first, n, ld_wall_ms(), &msg);
    if (i >= r->warm_reqs) {
        pthread_mutex_lock(&r->mu);
        ingest_stats *st = &r->ist;
        if (st->req_sent == 0) st->first_send_ns = now;
        st->req_sent++;
        st->ev_sent += n;
        st->last_send_ns = now;
        if (now - c->intended_ns > st->max_lag_ns) st->max_lag_ns = now - c->intended_ns;
        pthread_mutex_unlock(&r->mu);
    }
    if (rv != 0) {
        on_request_done(c, rv, NULL);
        return;
    }
    nng_aio_set_msg(c->aio, msg);
    nng_aio_set_timeout(c->aio, (nng_duration)r->o.timeout_ms);
    nng_ctx_send(c->ctx, c->aio);
}

/* sender_main keeps to the schedule until every request is sent or the hard
 * end passes (what is left then counts as not sent). */
static void *sender_main(void *arg)
{
    run *r = arg;
    uint64_t i = 0;
    for (; i < r->nreq && !atomic_load(&r->stopping); i++) {
        uint64_t due = intended_ns(r, i), now = ld_mono_ns();
        if (now < due) lg_sleep_until(due);
        prod_ctx *c = take_ctx(r, r->hard_end_ns);
        if (!c) break;
        send_request(r, c, i, ld_mono_ns());
    }
    if (i < r->nreq) {
        uint64_t first = i > r->warm_reqs ? i : r->warm_reqs;
        pthread_mutex_lock(&r->mu);
        r->ist.ev_unsent = r->nevents - (first * r->o.batch < r->nevents ? first * r->o.batch : r->nevents);
        pthread_mutex_unlock(&r->mu);
    }
    atomic_store(&r->sender_done, 1);
    return NULL;
}

static int producers_open(run *r)
{
    const run_opts *o = &r->o;
    int rv;
    r->socks = calloc(o->connections, sizeof *r->socks);
    r->gens = calloc(o->connections, sizeof *r->gens);
    r->nctx = (size_t)o->connections * o->inflight;
    r->ctxs = calloc(r->nctx, sizeof *r->ctxs);
    if (!r->socks || !r->gens || !r->ctxs) return NNG_ENOMEM;
    for (unsigned k = 0; k < o->connections; k++) {
        char src[64];
        snprintf(src, sizeof src, "linkload-%s-gw%u", r->run_id, k);
        r->gens[k] = lg_gen_new(&o->mix, r->run_id, src, o->status, ld_mono_ns() ^ (k * 7919u));
        if (!r->gens[k]) return NNG_ENOMEM;
        if ((rv = nng_req0_open(&r->socks[k])) != 0) return rv;
        nng_socket_set_ms(r->socks[k], NNG_OPT_REQ_RESENDTIME, 3600 * 1000);   /* never resend */
        nng_socket_set_size(r->socks[k], NNG_OPT_RECVMAXSZ, 16u << 20);
        /* The first dial is synchronous so an absent linkd is reported at once;
         * the others retry in the background like any producer would. */
        if ((rv = nng_dial(r->socks[k], o->ingest_url, NULL, k ? NNG_FLAG_NONBLOCK : 0)) != 0) return rv;
    }
    for (size_t i = 0; i < r->nctx; i++) {
        prod_ctx *c = &r->ctxs[i];
        c->r = r;
        c->conn = (unsigned)(i % o->connections);
        ld_arena_init(&c->arena, 16384, 0);
        if ((rv = nng_ctx_open(&c->ctx, r->socks[c->conn])) != 0) return rv;
        if ((rv = nng_aio_alloc(&c->aio, prod_cb, c)) != 0) return rv;
        c->next_free = r->free_list;
        r->free_list = c;
    }
    return 0;
}

/* producers_close aborts what is still in flight (counted as unanswered) and
 * frees everything; safe on a half-opened set. */
static void producers_close(run *r)
{
    for (unsigned k = 0; r->socks && k < r->o.connections; k++) nng_close(r->socks[k]);
    for (size_t i = 0; r->ctxs && i < r->nctx; i++) {
        nng_aio_free(r->ctxs[i].aio);   /* waits for a callback under way */
        ld_arena_fini(&r->ctxs[i].arena);
    }
    for (unsigned k = 0; r->gens && k < r->o.connections; k++) lg_gen_free(r->gens[k]);
    free(r->socks);
    free(r->gens);
    free(r->ctxs);
    r->socks = NULL;
    r->gens = NULL;
    r->ctxs = NULL;
}

/* ---- terminals ---------------------------------------------------------- */

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

static int push_ack(term *t, const char *id, uint64_t due)
{
    if (t->qlen == t->qcap) {   /* grow, unrolling the ring */
        size_t ncap = t->qcap ? t->qcap * 2 : 64;
        pending_ack *n = malloc(ncap * sizeof *n);
        if (!n) return LD_ENOMEM;
        for (size_t i = 0; i < t->qlen; i++) n[i] = t->q[(t->qhead + i) % t->qcap];
        free(t->q);
        t->q = n;
        t->qcap = ncap;
        t->qhead = 0;
    }
    char *dup = strdup(id);
    if (!dup) return LD_ENOMEM;
    t->q[(t->qhead + t->qlen) % t->qcap] = (pending_ack){dup, due};
    t->qlen++;
    return 0;
}

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
    uint64_t t0 = intended_ns(r, req);
    ld_hist_record(&st->latency, now > t0 ? now - t0 : 0);
}

/* take_reply handles one PollReply: counts and queues receipts and acks. */
static void take_reply(term *t, const Linkd__V1__PollReply *rep, uint64_t now)
{
    run *r = t->r;
    int oom = 0;
    pthread_mutex_lock(&r->tmu);
    term_stats *st = &r->tst;
    st->polls++;
    if (rep->error) {
        st->refused++;
        save_sample(st->sample_refused, sizeof st->sample_refused, t->id, rep->error);
    }
    for (size_t i = 0; i < rep->n_update_results; i++) {
        const Linkd__V1__UpdateResult *u = rep->update_results[i];
        unsigned v = u->has_result && u->result <= 4 ? (unsigned)u->result : 0;
        st->updates[v]++;
        if (v == LINKD__V1__RESULT__RESULT_REJECTED)
            save_sample(st->sample_update, sizeof st->sample_update, u->task_id, u->reason);
    }
    for (size_t i = 0; i < rep->n_tasks; i++) tally_task(r, rep->tasks[i], now);
    pthread_mutex_unlock(&r->tmu);

    uint64_t due = now + (uint64_t)r->o.ack_delay_ms * NS_PER_MS;
    for (size_t i = 0; i < rep->n_tasks; i++) {
        const char *id = rep->tasks[i]->task_id;
        if (!id) continue;
        oom |= push_receipt(t, id) != 0;
        if (!rep->tasks[i]->redelivery) oom |= push_ack(t, id, due) != 0;
    }
    if (oom) fprintf(stderr, "linkload: out of memory in terminal %s\n", t->id);
}

/* build_poll packs the next PollRequest: all receipts, the acks that are due
 * (at most MAX_UPDATES_PER_POLL), and a wait that ends when the next ack is
 * due. Frees what it packed. Returns 0 or an NNG error. */
static int build_poll(term *t, nng_msg **out)
{
    run *r = t->r;
    uint64_t now = ld_mono_ns();
    unsigned per = r->o.resolve ? 3 : 1;
    Linkd__V1__TaskUpdate upd[MAX_UPDATES_PER_POLL];
    Linkd__V1__TaskUpdate *updp[MAX_UPDATES_PER_POLL];
    char *taken[MAX_UPDATES_PER_POLL];
    size_t nu = 0, nt = 0;
    while (t->qlen && t->q[t->qhead].due_ns <= now && nu + per <= MAX_UPDATES_PER_POLL) {
        pending_ack *a = &t->q[t->qhead];
        static const Linkd__V1__UpdateKind lifecycle[] = {
            LINKD__V1__UPDATE_KIND__UPDATE_KIND_ACKNOWLEDGED,
            LINKD__V1__UPDATE_KIND__UPDATE_KIND_ON_SCENE,
            LINKD__V1__UPDATE_KIND__UPDATE_KIND_RESOLVED,
        };
        for (unsigned k = 0; k < per; k++) {
            linkd__v1__task_update__init(&upd[nu]);
            upd[nu].task_id = a->task_id;
            upd[nu].has_kind = 1;
            upd[nu].kind = lifecycle[k];
            if (lifecycle[k] == LINKD__V1__UPDATE_KIND__UPDATE_KIND_RESOLVED)
                upd[nu].disposition = "handled on scene (linkload)";
            updp[nu] = &upd[nu];
            nu++;
        }
        taken[nt++] = a->task_id;
        t->qhead = (t->qhead + 1) % t->qcap;
        t->qlen--;
    }
    uint32_t wait = POLL_WAIT_MS;
    if (t->qlen) {
        uint64_t due = t->q[t->qhead].due_ns;
        wait = due <= now ? 0 : (uint32_t)((due - now + NS_PER_MS - 1) / NS_PER_MS);
        if (wait > POLL_WAIT_MS) wait = POLL_WAIT_MS;
    }
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
    /* Receipts and acks are dropped even if the message could not be built:
     * linkd redelivers what was never receipted. */
    for (size_t i = 0; i < t->nreceipts; i++) free(t->receipts[i]);
    t->nreceipts = 0;
    for (size_t i = 0; i < nt; i++) free(taken[i]);
    return rv;
}

static void term_poll(term *t)
{
    nng_msg *msg;
    if (atomic_load(&t->r->stopping) || build_poll(t, &msg) != 0) {
        t->open = 0;
        return;
    }
    t->receiving = 0;
    nng_aio_set_msg(t->aio, msg);
    nng_aio_set_timeout(t->aio, 5000);
    nng_send_aio(t->sock, t->aio);
}

/* term_retry counts a failed poll and polls again, unless this terminal has
 * failed too often in a row (each failure takes a timeout, so this is slow). */
static void term_retry(term *t)
{
    pthread_mutex_lock(&t->r->tmu);
    t->r->tst.poll_errors++;
    pthread_mutex_unlock(&t->r->tmu);
    if (++t->errors_in_row > 20) {
        t->open = 0;
        return;
    }
    term_poll(t);
}

static void term_cb(void *arg)
{
    term *t = arg;
    int rv = nng_aio_result(t->aio);
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
    t->errors_in_row = 0;
    uint64_t now = ld_mono_ns();
    nng_msg *msg = nng_aio_get_msg(t->aio);
    Linkd__V1__PollReply *rep =
        linkd__v1__poll_reply__unpack(&t->arena.pb, nng_msg_len(msg), nng_msg_body(msg));
    nng_msg_free(msg);
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

static int terminals_open(run *r)
{
    r->nterms = (size_t)r->rules->nterminals;
    r->terms = calloc(r->nterms ? r->nterms : 1, sizeof *r->terms);
    if (!r->terms) return NNG_ENOMEM;
    for (size_t i = 0; i < r->nterms; i++) {
        term *t = &r->terms[i];
        const ld_terminal_def *d = &r->rules->terminals[i];
        t->r = r;
        t->id = d->id;
        t->dept = r->rules->departments[d->dept].id;
        ld_arena_init(&t->arena, 65536, 0);
        int rv;
        if ((rv = nng_req0_open(&t->sock)) != 0) return rv;
        t->open = 1;
        nng_socket_set_ms(t->sock, NNG_OPT_REQ_RESENDTIME, 3600 * 1000);
        nng_socket_set_size(t->sock, NNG_OPT_RECVMAXSZ, 64u << 20);
        if ((rv = nng_dial(t->sock, r->o.terminals_url, NULL, i ? NNG_FLAG_NONBLOCK : 0)) != 0) return rv;
        if ((rv = nng_aio_alloc(&t->aio, term_cb, t)) != 0) return rv;
    }
    for (size_t i = 0; i < r->nterms; i++) term_poll(&r->terms[i]);
    return 0;
}

static void terminals_close(run *r)
{
    for (size_t i = 0; r->terms && i < r->nterms; i++) nng_close(r->terms[i].sock);
    for (size_t i = 0; r->terms && i < r->nterms; i++) {
        term *t = &r->terms[i];
        nng_aio_free(t->aio);
        ld_arena_fini(&t->arena);
        for (size_t k = 0; k < t->nreceipts; k++) free(t->receipts[k]);
        for (size_t k = 0; k < t->qlen; k++) free(t->q[(t->qhead + k) % t->qcap].task_id);
        free(t->receipts);
        free(t->q);
    }
    free(r->terms);
    r->terms = NULL;
}

/* ---- progress and report ------------------------------------------------ */

typedef struct snapshot {
    ingest_stats ist;
    term_stats tst;
    size_t busy;
} snapshot;

static void take_snapshot(run *r, snapshot *s)
{
    pthread_mutex_lock(&r->mu);
    s->ist = r->ist;
    s->busy = r->busy;
    pthread_mutex_unlock(&r->mu);
    pthread_mutex_lock(&r->tmu);
    s->tst = r->tst;
    pthread_mutex_unlock(&r->tmu);
}

static uint64_t answered(const ingest_stats *s)
{
    return s->results[0] + s->results[1] + s->results[2] + s->results[3] + s->results[4];
}

static uint64_t failed(const ingest_stats *s)
{
    return s->results[0] + s->results[3] + s->results[4] + s->timeouts + s->errors + s->bad_replies;
}

static void progress_line(run *r, const snapshot *now, const snapshot *prev, double secs)
{
    char a[32], b[32];
    double elapsed = (double)(ld_mono_ns() - r->start_ns) / 1e9;
    fprintf(stderr,
            "[%5.1fs] sent %6.0f/s  accepted %6.0f/s  errors %" PRIu64 "  in flight %zu  "
            "p99 accept %s  terminal %s  tasks %" PRIu64 "\n",
            elapsed, (double)(now->ist.ev_sent - prev->ist.ev_sent) / secs,
            (double)(now->ist.results[1] - prev->ist.results[1]) / secs, failed(&now->ist),
            now->busy, lg_fmt_ns(ld_hist_quantile(&now->ist.accepted, 0.99), a, sizeof a),
            lg_fmt_ns(ld_hist_quantile(&now->tst.latency, 0.99), b, sizeof b), now->tst.tasks);
}

static void print_hist(FILE *f, const char *label, const ld_hist *h)
{
    char q[5][32], mx[32];
    static const double qs[] = {0.5, 0.9, 0.99, 0.999};
    if (h->n == 0) {
        fprintf(f, "  %-20s (none)\n", label);
        return;
    }
    for (int i = 0; i < 4; i++) lg_fmt_ns(ld_hist_quantile(h, qs[i]), q[i], sizeof q[i]);
    fprintf(f, "  %-20s p50 %s  p90 %s  p99 %s  p99.9 %s  max %s  (n=%" PRIu64 ")\n", label, q[0],
            q[1], q[2], q[3], lg_fmt_ns(h->max, mx, sizeof mx), h->n);
}

typedef struct figures {
    double measured_s, sent_rate, achieved_rate;
    int unreachable;
} figures;

static void compute_figures(const run *r, const snapshot *s, figures *f)
{
    uint64_t t0 = intended_ns(r, r->warm_reqs);
    uint64_t sched_end = intended_ns(r, r->nreq);
    uint64_t end = s->ist.last_reply_ns > sched_end ? s->ist.last_reply_ns : sched_end;
    f->measured_s = (double)(end - t0) / 1e9;
    double sched_s = (double)(sched_end - t0) / 1e9;
    f->sent_rate = sched_s > 0 ? (double)s->ist.ev_sent / sched_s : 0;
    f->achieved_rate = f->measured_s > 0 ? (double)s->ist.results[1] / f->measured_s : 0;
    f->unreachable = answered(&s->ist) == 0;
}

static void print_report(const run *r, const snapshot *s, const figures *f)
{
    const ingest_stats *i = &s->ist;
    const term_stats *t = &s->tst;
    char lag[32];
    printf("linkload run %s: %.0f events/s offered for %.0f s (batch %u, %u connections x %u in "
           "flight, warm-up %.0f s) to %s\n",
           r->run_id, r->o.rate, r->o.duration, r->o.batch, r->o.connections, r->o.inflight,
           r->o.warmup, r->o.ingest_url);
    if (f->unreachable) printf("  linkd unreachable: no request was answered\n");
    printf("  sent      %" PRIu64 " events = %.0f events/s (max send lag %s; %" PRIu64 " not sent)\n",
           i->ev_sent, f->sent_rate, lg_fmt_ns(i->max_lag_ns, lag, sizeof lag), i->ev_unsent);
    printf("  results   ACCEPTED %" PRIu64 "  DUPLICATE %" PRIu64 "  REJECTED %" PRIu64
           "  RETRY_LATER %" PRIu64 "  timeout %" PRIu64 "  unanswered %" PRIu64 "  error %" PRIu64
           "  bad reply %" PRIu64 "\n",
           i->results[1], i->results[2], i->results[3], i->results[4], i->timeouts, i->unanswered,
           i->errors + i->results[0], i->bad_replies);
    printf("  achieved  %.0f events/s accepted (%.1f%% of offered) over %.2f s\n", f->achieved_rate,
           r->o.rate > 0 ? 100.0 * f->achieved_rate / r->o.rate : 0, f->measured_s);
    print_hist(stdout, "intake->ACCEPTED", &i->accepted);
    if (r->o.terminals) {
        print_hist(stdout, "intake->terminal", &t->latency);
        printf("  terminals %zu polling: %" PRIu64 " tasks (%" PRIu64 " first deliveries, %" PRIu64
               " redelivered, %" PRIu64 " escalated, %" PRIu64 " other runs); updates ACCEPTED %" PRIu64
               " DUPLICATE %" PRIu64 " REJECTED %" PRIu64 "; poll errors %" PRIu64 ", refused %" PRIu64 "\n",
               r->nterms, t->tasks, t->first, t->redelivered, t->escalated, t->foreign,
               t->updates[1], t->updates[2], t->updates[3], t->poll_errors, t->refused);
    }
    if (i->sample_reject[0]) printf("  first rejection: %s\n", i->sample_reject);
    if (i->sample_retry[0]) printf("  first retry-later: %s\n", i->sample_retry);
    if (t->sample_refused[0]) printf("  first refused poll: %s\n", t->sample_refused);
    if (t->sample_update[0]) printf("  first rejected update: %s\n", t->sample_update);
}

static void json_hist(FILE *f, const char *name, const ld_hist *h)
{
    fprintf(f,
            "\"%s\":{\"n\":%" PRIu64 ",\"p50_us\":%.1f,\"p90_us\":%.1f,\"p99_us\":%.1f,"
            "\"p999_us\":%.1f,\"max_us\":%.1f,\"mean_us\":%.1f}",
            name, h->n, (double)ld_hist_quantile(h, 0.5) / 1e3, (double)ld_hist_quantile(h, 0.9) / 1e3,
            (double)ld_hist_quantile(h, 0.99) / 1e3, (double)ld_hist_quantile(h, 0.999) / 1e3,
            (double)h->max / 1e3, ld_hist_mean(h) / 1e3);
}

static void write_json(const run *r, const snapshot *s, const figures *f)
{
    FILE *out = fopen(r->o.json, "w");
    if (!out) {
        perror(r->o.json);
        return;
    }
    const ingest_stats *i = &s->ist;
    const term_stats *t = &s->tst;
    fprintf(out,
            "{\"mode\":\"run\",\"run_id\":\"%s\",\"unreachable\":%s,\"offered_rate\":%.0f,"
            "\"duration_s\":%g,\"batch\":%u,\"connections\":%u,\"inflight\":%u,\"sent\":%" PRIu64
            ",\"sent_rate\":%.0f,\"not_sent\":%" PRIu64 ",\"max_send_lag_us\":%.1f,"
            "\"achieved_rate\":%.0f,\"accepted\":%" PRIu64 ",\"duplicate\":%" PRIu64
            ",\"rejected\":%" PRIu64 ",\"retry_later\":%" PRIu64 ",\"timeouts\":%" PRIu64
            ",\"unanswered\":%" PRIu64 ",\"errors\":%" PRIu64 ",\"bad_replies\":%" PRIu64 ",",
            r->run_id, f->unreachable ? "true" : "false", r->o.rate, r->o.duration, r->o.batch,
            r->o.connections, r->o.inflight, i->ev_sent, f->sent_rate, i->ev_unsent,
            (double)i->max_lag_ns / 1e3, f->achieved_rate, i->results[1], i->results[2],
            i->results[3], i->results[4], i->timeouts, i->unanswered, i->errors + i->results[0],
            i->bad_replies);
    json_hist(out, "accept_latency", &i->accepted);
    fputc(',', out);
    json_hist(out, "terminal_latency", &t->latency);
    fprintf(out,
            ",\"terminals\":%zu,\"tasks\":%" PRIu64 ",\"tasks_first\":%" PRIu64
            ",\"tasks_redelivered\":%" PRIu64 ",\"tasks_escalated\":%" PRIu64
            ",\"updates_accepted\":%" PRIu64 ",\"updates_rejected\":%" PRIu64 ",\"poll_errors\":%" PRIu64
            "}\n",
            r->o.terminals ? r->nterms : 0, t->tasks, t->first, t->redelivered, t->escalated,
            t->updates[1], t->updates[3], t->poll_errors);
    fclose(out);
}

/* ---- the run -------------------------------------------------------------- */

/* wait_for_end prints progress every second until the intake is done and
 * the terminals have been quiet for TERM_QUIET_NS, or the hard end. */
static void wait_for_end(run *r)
{
    snapshot prev, cur;
    take_snapshot(r, &prev);
    uint64_t last_print = ld_mono_ns(), intake_done = 0;
    for (;;) {
        uint64_t next = ld_mono_ns() + 100 * NS_PER_MS;
        lg_sleep_until(next < r->hard_end_ns ? next : r->hard_end_ns);
        uint64_t now = ld_mono_ns();
        if (now >= r->hard_end_ns) break;
        take_snapshot(r, &cur);
        if (now - last_print >= NS_PER_S) {
            if (!r->o.quiet) progress_line(r, &cur, &prev, (double)(now - last_print) / 1e9);
            prev = cur;
            last_print = now;
        }
        if (!intake_done && atomic_load(&r->sender_done) && cur.busy == 0) intake_done = now;
        if (!intake_done) continue;
        if (!r->o.terminals) break;
        uint64_t quiet_since = cur.tst.last_task_ns > intake_done ? cur.tst.last_task_ns : intake_done;
        if (now - quiet_since >= TERM_QUIET_NS) break;
    }
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: linkload run --rate R --duration S [options]\n"
            "  --rate R                 events per second offered (open loop)\n"
            "  --duration S             seconds of measured load\n"
            "  --batch B                events per IngestRequest (default 10, at most 1024)\n"
            "  --connections C          REQ sockets to the ingest URL (default 4)\n"
            "  --inflight K             requests in flight per socket (default 64)\n"
            "  --ingest URL             default tcp://127.0.0.1:7450\n"
            "  --terminals URL          default tcp://127.0.0.1:7451\n"
            "  --rules DIR              rule set whose terminals are simulated (default ./rules)\n"
            "  --no-terminals           do not simulate terminals\n"
            "  --terminal-ack-delay MS  acknowledge each task MS after receiving it (default 0)\n"
            "  --resolve                also report ON_SCENE and RESOLVED, closing every incident\n"
            "  --warmup S               seconds of load before measuring (default 0)\n"
            "  --drain S                seconds to wait for answers after the schedule (default 5)\n"
            "  --timeout MS             per-request reply timeout (default 5000)\n"
            "  --mix SPEC               e.g. call=80,sensor=15,petition=5 or fire=5,crime=20,smoke=3\n"
            "  --status actual|exercise|test   Envelope status (default test)\n"
            "  --json FILE              write the figures as JSON\n"
            "  --quiet                  no progress line\n");
}

static int parse_status(const char *v)
{
    int s;
    return ld_enum_parse(&linkd__v1__status__descriptor, v, &s) == 0 ? s : -1;
}

static int parse_opts(int argc, char **argv, run_opts *o)
{
    *o = (run_opts){.batch = 10, .connections = 4, .inflight = 64, .timeout_ms = 5000, .drain = 5,
                    .ingest_url = "tcp://127.0.0.1:7450", .terminals_url = "tcp://127.0.0.1:7451",
                    .rules_dir = "rules", .terminals = 1,
                    .status = LINKD__V1__STATUS__STATUS_TEST};
    lg_mix_default(&o->mix);
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--help") == 0) {
            usage(stdout);
            exit(LG_EXIT_OK);
        }
        if (strcmp(a, "--no-terminals") == 0) o->terminals = 0;
        else if (strcmp(a, "--resolve") == 0) o->resolve = 1;
        else if (strcmp(a, "--quiet") == 0) o->quiet = 1;
        else if (!v) {
            fprintf(stderr, "linkload run: %s needs a value\n", a);
            return -1;
        } else {
            i++;
            char err[256];
            if (strcmp(a, "--rate") == 0) o->rate = atof(v);
            else if (strcmp(a, "--duration") == 0) o->duration = atof(v);
            else if (strcmp(a, "--warmup") == 0) o->warmup = atof(v);
            else if (strcmp(a, "--drain") == 0) o->drain = atof(v);
            else if (strcmp(a, "--batch") == 0) o->batch = (unsigned)atoi(v);
            else if (strcmp(a, "--connections") == 0) o->connections = (unsigned)atoi(v);
            else if (strcmp(a, "--inflight") == 0) o->inflight = (unsigned)atoi(v);
            else if (strcmp(a, "--timeout") == 0) o->timeout_ms = (unsigned)atoi(v);
            else if (strcmp(a, "--terminal-ack-delay") == 0) o->ack_delay_ms = (unsigned)atoi(v);
            else if (strcmp(a, "--ingest") == 0) o->ingest_url = v;
            else if (strcmp(a, "--terminals") == 0) o->terminals_url = v;
            else if (strcmp(a, "--rules") == 0) o->rules_dir = v;
            else if (strcmp(a, "--json") == 0) o->json = v;
            else if (strcmp(a, "--status") == 0) {
                if ((o->status = parse_status(v)) < 0) {
                    fprintf(stderr, "linkload run: --status: actual, exercise or test\n");
                    return -1;
                }
            } else if (strcmp(a, "--mix") == 0) {
                if (lg_mix_parse(&o->mix, v, err, sizeof err) != 0) {
                    fprintf(stderr, "linkload run: %s\n", err);
                    return -1;
                }
            } else {
                fprintf(stderr, "linkload run: unknown option %s\n", a);
                return -1;
            }
        }
    }
    if (!(o->rate > 0 && o->rate <= 10e6) || !(o->duration > 0 && o->duration <= 86400) ||
        !(o->warmup >= 0 && o->warmup <= 3600) || !(o->drain >= 0 && o->drain <= 600) ||
        o->batch < 1 || o->batch > LG_MAX_BATCH || o->connections < 1 || o->connections > 256 ||
        o->inflight < 1 || o->inflight > 4096 || o->timeout_ms < 1 || o->ack_delay_ms > 3600000) {
        fprintf(stderr, "linkload run: --rate and --duration are required; a value is out of range\n");
        return -1;
    }
    return 0;
}

static int load_rules(run *r)
{
    ld_diag d;
    ld_diag_init(&d);
    int rv = ld_rules_load(&r->rules, r->o.rules_dir, &d);
    if (rv != 0) {
        ld_diag_print(&d, stderr);
        fprintf(stderr, "linkload run: cannot load rules from %s: %s\n", r->o.rules_dir, ld_strerror(rv));
    }
    ld_diag_fini(&d);
    return rv;
}

static void plan(run *r)
{
    const run_opts *o = &r->o;
    r->interval_ns = (double)o->batch * 1e9 / o->rate;
    r->warm_reqs = (uint64_t)ceil(o->warmup * o->rate / o->batch);
    uint64_t measured = (uint64_t)llround(o->duration * o->rate);
    r->nevents = r->warm_reqs * o->batch + (measured ? measured : 1);
    r->nreq = (r->nevents + o->batch - 1) / o->batch;
    snprintf(r->run_id, sizeof r->run_id, "L%08x", (unsigned)(ld_wall_ms() ^ ((uint64_t)getpid() << 16)));
}

int lg_cmd_run(int argc, char **argv)
{
    run *r = calloc(1, sizeof *r);
    int code = LG_EXIT_SOFTWARE, rv;
    pthread_t sender;
    int sender_started = 0;
    if (!r) return code;
    pthread_mutex_init(&r->mu, NULL);
    pthread_mutex_init(&r->tmu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&r->cv, &ca);
    pthread_condattr_destroy(&ca);
    ld_hist_init(&r->ist.accepted);
    ld_hist_init(&r->tst.latency);
    if (parse_opts(argc, argv, &r->o) != 0) {
        usage(stderr);
        code = LG_EXIT_USAGE;
        goto done;
    }
    plan(r);
    if (r->o.terminals && load_rules(r) != 0) {
        code = LG_EXIT_DATAERR;
        goto done;
    }
    if ((rv = producers_open(r)) != 0) {
        fprintf(stderr, "linkload run: linkd unreachable at %s: %s\n", r->o.ingest_url, nng_strerror(rv));
        if (r->o.json) {
            FILE *f = fopen(r->o.json, "w");
            if (f) fprintf(f, "{\"mode\":\"run\",\"unreachable\":true,\"offered_rate\":%.0f}\n", r->o.rate),
                fclose(f);
        }
        code = LG_EXIT_UNAVAILABLE;
        goto done;
    }
    if (r->o.terminals && (rv = terminals_open(r)) != 0) {
        fprintf(stderr, "linkload run: terminals unreachable at %s: %s; running without terminals\n",
                r->o.terminals_url, nng_strerror(rv));
        terminals_close(r);
        r->o.terminals = 0;
    }
    r->start_ns = ld_mono_ns() + 100 * NS_PER_MS;   /* let the dials settle */
    r->hard_end_ns = intended_ns(r, r->nreq) + (uint64_t)(r->o.drain * 1e9);
    if (pthread_create(&sender, NULL, sender_main, r) != 0) goto done;
    sender_started = 1;
    wait_for_end(r);
    code = LG_EXIT_OK;
done:
    atomic_store(&r->stopping, 1);
    pthread_mutex_lock(&r->mu);
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
    if (sender_started) pthread_join(sender, NULL);
    terminals_close(r);
    producers_close(r);
    if (code == LG_EXIT_OK) {
        snapshot s;
        figures f;
        take_snapshot(r, &s);
        compute_figures(r, &s, &f);
        print_report(r, &s, &f);
        if (r->o.json) write_json(r, &s, &f);
        if (f.unreachable) code = LG_EXIT_UNAVAILABLE;
    }
    if (r->rules) ld_rules_free(r->rules);
    pthread_cond_destroy(&r->cv);
    pthread_mutex_destroy(&r->mu);
    pthread_mutex_destroy(&r->tmu);
    free(r);
    return code;
}
