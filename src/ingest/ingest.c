#include "ingest/ingest.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/err.h"
#include "core/log.h"

#define R_ACCEPTED LINKD__V1__RESULT__RESULT_ACCEPTED
#define R_DUPLICATE LINKD__V1__RESULT__RESULT_DUPLICATE
#define R_REJECTED LINKD__V1__RESULT__RESULT_REJECTED
#define R_RETRY LINKD__V1__RESULT__RESULT_RETRY_LATER

enum { RETRY_AFTER_MS = 1000 };

/* One per REP context: everything a request needs lives in its arena. */
typedef struct ingest_req {
    ld_ingest *in;
    ld_rep_ctx *c;
    ld_arena arena;
    Linkd__V1__IngestRequest *req;
    Linkd__V1__IngestResult *res;
    Linkd__V1__IngestResult **resp;
    size_t n;
    size_t *valid;          /* indexes of events sent to Redis */
    size_t nvalid;
    int need_hello;         /* some events were refused for want of a valid hello */
} ingest_req;

static char *arena_strdup(ld_arena *a, const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = ld_arena_alloc(a, n);
    if (d) memcpy(d, s, n);
    return d;
}

static void set_result(ingest_req *q, size_t i, int result, const char *reason)
{
    Linkd__V1__IngestResult *r = &q->res[i];
    ld_ingest_stats *st = &q->in->stats;
    r->has_result = 1;
    r->result = (Linkd__V1__Result)result;
    if (reason) r->reason = arena_strdup(&q->arena, reason);
    /* By kind for metrics; a request that did not decode has no kind (0). */
    int kind = q->req && i < q->req->n_events ? ld_envelope_kind(q->req->events[i]) : 0;
    if (kind >= 0 && kind < LD_KIND_COUNT && result > 0 && result < 5) st->by_kind[kind][result]++;
    switch (result) {
    case R_ACCEPTED: st->accepted++; break;
    case R_DUPLICATE: st->duplicate++; break;
    case R_REJECTED: st->rejected++; break;
    case R_RETRY:
        st->retry_later++;
        r->has_retry_after_ms = 1;
        r->retry_after_ms = RETRY_AFTER_MS;
        break;
    default: break;
    }
}

static void answer(ingest_req *q)
{
    Linkd__V1__IngestReply reply;
    linkd__v1__ingest_reply__init(&reply);
    reply.n_results = q->n;
    reply.results = q->resp;
    if (q->need_hello) reply.has_hello_required = reply.hello_required = 1;
    q->need_hello = 0;
    nng_msg *m = ld_msg_from_pb(&reply.base);
    if (!m) ld_log_rl(LD_ERR, "INGEST-NOMEM", "cannot allocate a reply of %zu results", q->n);
    ld_rep_reply(q->c, m);
    ld_arena_reset(&q->arena);
    q->req = NULL; /* it lived in the arena */
}

/* A request refused whole gets one REJECTED result saying why. */
static void answer_refused(ingest_req *q, int reason, const char *why)
{
    q->in->stats.rejected_by[reason]++;
    ld_log_rl(LD_WARN, "INGEST-REFUSED", "%s", why);
    q->n = 1;
    q->res = ld_arena_alloc(&q->arena, sizeof *q->res);
    q->resp = ld_arena_alloc(&q->arena, sizeof *q->resp);
    if (!q->res || !q->resp) {
        answer(q); /* empty reply: still an answer */
        return;
    }
    linkd__v1__ingest_result__init(q->res);
    q->resp[0] = q->res;
    set_result(q, 0, R_REJECTED, why);
    answer(q);
}

/* A request we cannot read. */
static void answer_malformed(ingest_req *q, size_t len, const char *what)
{
    char why[160];
    q->in->stats.malformed++;
    snprintf(why, sizeof why, "malformed IngestRequest: %s (%zu bytes)", what, len);
    answer_refused(q, LD_REJECT_MALFORMED, why);
}

/* take answers event <i>, stored under <sid> (a stream or a spool id): a
 * duplicate with the incident its first copy opened; a new one ACCEPTED and
 * opened, answered with its incident, or with the open one a duplicate
 * report merged into. <where> says where it is kept, for the log. Returns
 * whether it was new. */
static int take(ingest_req *q, size_t i, const char *sid, int duplicate, const char *where)
{
    char iid[LD_INCIDENT_ID_LEN];
    ld_str_join(iid, sizeof iid, "I", sid);
    set_result(q, i, duplicate ? R_DUPLICATE : R_ACCEPTED, NULL);
    const char *answer_id = iid;
    if (duplicate) {
        /* The first copy's incident: the one its event was merged into, if so. */
        const char *holder = ld_engine_holder_of(q->in->engine, sid);
        if (holder) answer_id = holder;
    } else {
        ld_incident *inc = NULL;
        if (ld_engine_open(q->in->engine, q->req->events[i], sid, &inc) != 0)
            ld_log_rl(LD_ERR, "ENGINE-OPEN", "event %s is %s but its incident could not be "
                      "opened: out of memory", q->req->events[i]->event_id, where);
        else if (inc)
            answer_id = inc->id;
    }
    q->res[i].incident_id = arena_strdup(&q->arena, answer_id);
    return !duplicate;
}

static void on_appended(void *arg, int status, const ld_append_result *res, size_t n)
{
    ingest_req *q = arg;
    q->in->inflight--;
    for (size_t k = 0; k < n; k++) {
        if (status != 0)
            set_result(q, q->valid[k], R_RETRY, "storage unavailable: not accepted, send again");
        else
            take(q, q->valid[k], res[k].stream_id, res[k].duplicate, "durable");
    }
    if (status != 0)
        ld_log_rl(LD_WARN, "INGEST-RETRY", "%zu events answered RETRY_LATER: %s", n,
                  ld_strerror(status));
    answer(q);
}

/* spooled_before answers an event the spool holds already (accepted while
 * Redis was away, not yet copied into it): DUPLICATE, with the incident it
 * opened. Returns whether it did. */
static int spooled_before(ingest_req *q, size_t i, const Linkd__V1__Envelope *ev)
{
    ld_spool *sp = q->in->spool;
    ld_spool_entry *e = sp ? ld_spool_find(sp, ev->source_id, ev->event_id) : NULL;
    if (!e) return 0;
    if (!e->durable) {
        set_result(q, i, R_RETRY, "being written to the local spool: send again");
        return 1;
    }
    take(q, i, e->sid, 1, "spooled");
    return 1;
}

/* Redis is away: life-safety events are in the spool, fsync'd, so they are
 * ACCEPTED and dispatched from memory now; Redis gets them when it returns. */
static void on_spooled(void *arg, int status, const ld_spool_result *res, size_t n)
{
    ingest_req *q = arg;
    ld_ingest *in = q->in;
    in->inflight--;
    for (size_t k = 0; k < n; k++) {
        if (status != 0)
            set_result(q, q->valid[k], R_RETRY,
                       "storage unavailable and the local spool failed: send again");
        else if (take(q, q->valid[k], res[k].sid, res[k].duplicate, "spooled"))
            in->stats.spooled++;
    }
    if (status != 0)
        ld_log_rl(LD_ERR, "INGEST-SPOOL", "%zu life-safety events answered RETRY_LATER: the "
                  "spool failed", n);
    answer(q);
}

static void on_request(ld_rep *rep, ld_rep_ctx *c, nng_msg *msg)
{
    ld_ingest *in = rep->user;
    ingest_req *q = c->user;
    size_t len = nng_msg_len(msg);
    int pipe_id = (int)ld_rep_pipe(c);
    uint32_t pipe = pipe_id > 0 ? (uint32_t)pipe_id : 0;
    in->stats.requests++;
    q->req = NULL;
    if (len > in->max_msg) {
        /* NNG let it in (up to twice the limit) so that it gets an answer. */
        char why[160];
        nng_msg_free(msg);
        snprintf(why, sizeof why, "oversize IngestRequest: %zu bytes, at most %zu "
                 "(--max-message)", len, in->max_msg);
        answer_refused(q, LD_REJECT_OVERSIZE, why);
        return;
    }
    q->req = linkd__v1__ingest_request__unpack(&q->arena.pb, len, nng_msg_body(msg));
    nng_msg_free(msg); /* protobuf-c copied what it kept into the arena */
    if (!q->req) {
        answer_malformed(q, len, "not a valid protobuf message");
        return;
    }
    q->n = q->req->n_events;
    if (q->n == 0) {
        answer_refused(q, LD_REJECT_EMPTY, "empty IngestRequest: no events");
        return;
    }
    q->res = ld_arena_alloc(&q->arena, q->n * sizeof *q->res);
    q->resp = ld_arena_alloc(&q->arena, q->n * sizeof *q->resp);
    q->valid = ld_arena_alloc(&q->arena, q->n * sizeof *q->valid);
    ld_append_item *items = ld_arena_alloc(&q->arena, q->n * sizeof *items);
    if (!q->res || !q->resp || !q->valid || !items) {
        answer_malformed(q, len, "too large to process");
        return;
    }
    in->stats.events += q->n;
    uint64_t now = ld_wall_ms();
    q->nvalid = 0;
    const ld_rules *rules = in->engine->rules;
    /* The spool takes life-safety events while Redis is away, and while a
     * start without Redis recovers (spool_only): then the rest is held. */
    int spool_now = in->spool && (!ld_store_up(in->store) ? !in->hold || in->spool_only
                                                          : in->hold && in->spool_only);
    char hello_why[256] = "";
    if (q->req->hello &&
        ld_source_auth_hello(&in->sources, rules, q->req->hello, pipe, (int64_t)now, hello_why,
                             sizeof hello_why) != 0)
        ld_log_rl(LD_WARN, "SOURCE-AUTH", "hello refused: %s", hello_why);
    for (size_t i = 0; i < q->n; i++) {
        const Linkd__V1__Envelope *ev = q->req->events[i];
        linkd__v1__ingest_result__init(&q->res[i]);
        q->resp[i] = &q->res[i];
        if (ev->event_id) q->res[i].event_id = ev->event_id;
        char why[640];
        int bad;
        if (q->n > LD_MAX_EVENTS_PER_REQUEST) {
            bad = LD_REJECT_TOO_MANY;
            snprintf(why, sizeof why, "events: too many events: %zu in one request, at most %d",
                     q->n, LD_MAX_EVENTS_PER_REQUEST);
        } else {
            bad = ld_envelope_validate(ev, now, why, sizeof why);
        }
        if (bad >= 0) {
            in->stats.rejected_by[bad]++;
            set_result(q, i, R_REJECTED, why);
            ld_log_rl(LD_WARN, "INGEST-REJECT", "event %.64s from %.64s rejected: %s",
                      ev->event_id ? ev->event_id : "(none)",
                      ev->source_id ? ev->source_id : "(none)", why);
            continue;
        }
        if (!ld_source_auth_allows(&in->sources, rules, ev->source_id, pipe)) {
            if (!hello_why[0])
                snprintf(hello_why, sizeof hello_why, "source_id: '%.64s' must send a signed "
                         "hello on this connection (its key is in the rules)", ev->source_id);
            in->stats.rejected_by[LD_REJECT_UNAUTHENTICATED]++;
            set_result(q, i, R_REJECTED, hello_why);
            q->need_hello = 1;
            continue;
        }
        uint32_t wait_ms = 0;
        if (!ld_limiter_take(&in->limiter, ev->source_id, now, &wait_ms)) {
            snprintf(why, sizeof why,
                     "source_id: '%.64s' is over its limit of %g events/s: send again in %u ms",
                     ev->source_id, in->limiter.rate, wait_ms);
            set_result(q, i, R_RETRY, why);
            q->res[i].retry_after_ms = wait_ms;
            in->stats.rate_limited++;
            ld_log_rl(LD_WARN, "INGEST-FLOOD", "%s", why);
            continue;
        }
        if (in->hold && !spool_now) {
            set_result(q, i, R_RETRY, in->hold);
            continue;
        }
        if (spool_now ? !ld_engine_life_safety(in->engine, ev, ld_clock_now(in->engine->clock))
                      : !ld_store_up(in->store)) {
            set_result(q, i, R_RETRY, in->hold ? in->hold : "storage unavailable: send again");
            continue;
        }
        if (spooled_before(q, i, ev)) continue;
        size_t pblen = linkd__v1__envelope__get_packed_size(ev);
        uint8_t *pb = ld_arena_alloc(&q->arena, pblen ? pblen : 1);
        if (!pb) {
            set_result(q, i, R_RETRY, "out of memory: send again");
            continue;
        }
        linkd__v1__envelope__pack(ev, pb);
        items[q->nvalid] = (ld_append_item){ev->source_id, ev->event_id, pb, pblen};
        q->valid[q->nvalid++] = i;
    }
    if (q->nvalid == 0) {
        answer(q);
        return;
    }
    /* Redis's state cannot change within this call: all go one way. */
    int rv = spool_now ? ld_spool_append(in->spool, items, q->nvalid, on_spooled, q)
                       : ld_store_append(in->store, items, q->nvalid, on_appended, q);
    if (rv != 0) {
        const char *why = rv == LD_EBUSY ? "storage unavailable and the local spool is full: "
                                           "send again"
                                         : "storage unavailable: send again";
        for (size_t k = 0; k < q->nvalid; k++) set_result(q, q->valid[k], R_RETRY, why);
        answer(q);
        return;
    }
    in->inflight++;
}

int ld_ingest_open(ld_ingest *in, uv_loop_t *loop, const char *url, size_t nctx, size_t max_msg,
                   double source_rate, ld_store *store, ld_engine *engine)
{
    memset(in, 0, sizeof *in);
    ld_limiter_init(&in->limiter, source_rate, source_rate, 100000);
    if (ld_source_auth_init(&in->sources) != 0) return LD_EIO;
    in->store = store;
    in->engine = engine;
    in->reqs = calloc(nctx, sizeof *in->reqs);
    if (!in->reqs) return LD_ENOMEM;
    in->nreqs = nctx;
    /* A decoded request can take a few times its wire size; cap it well above the limit. */
    for (size_t i = 0; i < nctx; i++) ld_arena_init(&in->reqs[i].arena, 64 * 1024, 8 * max_msg + (1 << 20));
    /* NNG drops (and closes the pipe of) messages over twice the limit; those
     * in between are answered REJECTED oversize and counted. */
    in->max_msg = max_msg;
    int rv = ld_rep_open(&in->rep, loop, url, nctx, 2 * max_msg, on_request, in);
    if (rv != 0) {
        ld_ingest_close(in);
        return rv;
    }
    for (size_t i = 0; i < nctx; i++) {
        in->reqs[i].in = in;
        in->reqs[i].c = &in->rep.ctxs[i];
        in->rep.ctxs[i].user = &in->reqs[i];
    }
    return 0;
}

void ld_ingest_close(ld_ingest *in)
{
    ld_rep_close(&in->rep);
    ld_limiter_fini(&in->limiter);
    ld_source_auth_fini(&in->sources);
    for (size_t i = 0; i < in->nreqs; i++) ld_arena_fini(&in->reqs[i].arena);
    free(in->reqs);
    in->reqs = NULL;
    in->nreqs = 0;
}
