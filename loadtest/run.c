/* run.c: `linkload run`: open-loop intake load with simulated terminals.
 *
 * Open loop. The whole send schedule is computed before the run starts, from
 * the scenario's phases (steps and linear ramps of the offered rate) with
 * evenly spaced or Poisson arrivals: request i (of <batch> events) is due at
 * start + sched[i]. One sender thread keeps to it, taking a free REQ context
 * for each request; latency is measured from the request's intended send
 * time, never from when it actually left, so a linkd that falls behind shows
 * its queueing in the percentiles instead of slowing the generator down (no
 * coordinated omission). If every context is busy the sender waits, and that
 * wait counts against linkd too.
 *
 * Every run is bounded: it ends at the end of the schedule plus --drain
 * (and --linger) at the latest, or at --max-duration, or after --connect-timeout when linkd
 * cannot be reached; it never waits on linkd beyond those. */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>
#include <nng/supplemental/util/platform.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/diag.h"
#include "core/err.h"
#include "core/rep.h"
#include "run.h"

#define MAX_REQUESTS (64u << 20)   /* schedule entries: 9 bytes each */
#define TERM_QUIET_NS (500 * NS_PER_MS)

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

/* ---- accounting ------------------------------------------------------------ */

void lg_account_latency(run *r, uint64_t req, uint64_t ns, int terminal)
{
    int ph = r->sched_phase[req];
    uint64_t off = r->sched[req] - r->sched[r->warm_reqs < r->nreq ? r->warm_reqs : 0];
    unsigned sl = (unsigned)(off / r->slice_ns);
    if (sl >= r->nslices) sl = r->nslices - 1;
    if (terminal) {
        if (ph >= 0) ld_hist_record(&r->phases[ph].term, ns);
        ld_hist_record(&r->slices[sl].term, ns);
    } else {
        if (ph >= 0) r->phases[ph].accepted++, ld_hist_record(&r->phases[ph].acc, ns);
        r->slices[sl].accepted++;
        ld_hist_record(&r->slices[sl].acc, ns);
    }
}

static void account_failed(run *r, uint64_t req, unsigned n)
{
    int ph = r->sched_phase[req];
    if (ph >= 0) r->phases[ph].failed += n;
    uint64_t off = r->sched[req] - r->sched[r->warm_reqs < r->nreq ? r->warm_reqs : 0];
    unsigned sl = (unsigned)(off / r->slice_ns);
    r->slices[sl < r->nslices ? sl : r->nslices - 1].failed += n;
}

/* count_reason adds one REJECTED or RETRY_LATER answer to the table by
 * reason. Digits are folded ("retry in 120 ms" and "in 80 ms" are one
 * reason) and the event's own id is not part of a reason. Caller holds mu. */
static void count_reason(ingest_stats *st, int result, const char *reason)
{
    char key[96];
    size_t k = 0;
    int in_digits = 0;
    for (const char *p = reason ? reason : "(no reason)"; *p && k + 1 < sizeof key; p++) {
        if (*p >= '0' && *p <= '9') {
            if (!in_digits) key[k++] = 'N';
            in_digits = 1;
            continue;
        }
        in_digits = 0;
        key[k++] = *p;
    }
    key[k] = '\0';
    for (int i = 0; i < st->nreasons; i++)
        if (st->reasons[i].result == result && strcmp(st->reasons[i].reason, key) == 0) {
            st->reasons[i].n++;
            return;
        }
    if (st->nreasons == LG_MAX_REASONS) {
        st->reasons_other++;
        return;
    }
    reason_count *rc = &st->reasons[st->nreasons++];
    rc->result = result;
    snprintf(rc->reason, sizeof rc->reason, "%s", key);
    rc->n = 1;
}

/* ---- producers -------------------------------------------------------------- */

static void ctx_release(run *r, prod_ctx *c)
{
    pthread_mutex_lock(&r->mu);
    c->next_free = r->free_list;
    r->free_list = c;
    r->busy--;
    pthread_cond_signal(&r->cv);
    pthread_mutex_unlock(&r->mu);
}

/* tally_reply counts the results of one answered request. Caller holds mu. */
static void tally_reply(run *r, prod_ctx *c, const Linkd__V1__IngestReply *rep, uint64_t now)
{
    ingest_stats *st = &r->ist;
    if (rep->n_results != c->n) {
        st->bad_replies += c->n;
        account_failed(r, c->req, c->n);
        return;
    }
    for (size_t i = 0; i < rep->n_results; i++) {
        const Linkd__V1__IngestResult *res = rep->results[i];
        unsigned v = res->has_result && res->result <= LG_RESULT_MAX ? (unsigned)res->result : 0;
        st->results[v]++;
        if (v == LINKD__V1__RESULT__RESULT_ACCEPTED) {
            ld_hist_record(&st->accepted, now - c->intended_ns);
            lg_account_latency(r, c->req, now - c->intended_ns, 0);
            continue;
        }
        if (v == LINKD__V1__RESULT__RESULT_REJECTED || v == LINKD__V1__RESULT__RESULT_RETRY_LATER)
            count_reason(st, (int)v, res->reason);
        if (v != LINKD__V1__RESULT__RESULT_DUPLICATE) account_failed(r, c->req, 1);
    }
}

/* on_request_done handles the end of one request: answered (rv 0, <msg>), or
 * failed. Requests of the warm-up are not counted. */
static void on_request_done(prod_ctx *c, int rv, nng_msg *msg)
{
    run *r = c->r;
    uint64_t now = ld_mono_ns();
    Linkd__V1__IngestReply *rep = NULL;
    if (msg) {
        rep = linkd__v1__ingest_reply__unpack(&c->arena.pb, nng_msg_len(msg), nng_msg_body(msg));
        nng_msg_free(msg);
        pthread_mutex_lock(&r->mu);
        r->ist.replies_all++;
        pthread_mutex_unlock(&r->mu);
    }
    if (c->req >= r->warm_reqs) {
        pthread_mutex_lock(&r->mu);
        ingest_stats *st = &r->ist;
        int failed = 1;
        if (rv == NNG_ETIMEDOUT) st->timeouts += c->n;
        else if (rv == NNG_ECLOSED || rv == NNG_ECANCELED) st->unanswered += c->n;
        else if (rv != 0) st->errors += c->n;
        else if (!rep) st->bad_replies += c->n;
        else {
            tally_reply(r, c, rep, now);
            st->last_reply_ns = now;
            failed = 0;
        }
        if (failed) account_failed(r, c->req, c->n);
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
    int ph = r->sched_phase[i];
    const lg_gen_spec *spec = &r->specs[ph >= 0 ? ph : r->nphases];
    nng_msg *msg;
    c->req = i;
    c->n = r->o.batch;
    c->intended_ns = lg_intended_ns(r, i);
    c->receiving = 0;
    /* The source (gateway) by the request's number, not by the connection
     * it leaves on: a free context is whichever answered last, so by
     * connection one source could take most of the load and run into
     * linkd's per-source limit (--source-rate) while the others idled. */
    lg_gen *gen = r->gens[i % r->o.connections];
    int rv = lg_gen_request(gen, spec, i * r->o.batch, c->n, ld_wall_ms(), &msg);
    if (i >= r->warm_reqs) {
        pthread_mutex_lock(&r->mu);
        ingest_stats *st = &r->ist;
        if (st->req_sent == 0) st->first_send_ns = now;
        st->req_sent++;
        st->ev_sent += c->n;
        st->last_send_ns = now;
        if (now - c->intended_ns > st->max_lag_ns) st->max_lag_ns = now - c->intended_ns;
        if (ph >= 0) r->phases[ph].sent += c->n;
        uint64_t off = r->sched[i] - r->sched[r->warm_reqs];
        unsigned sl = (unsigned)(off / r->slice_ns);
        r->slices[sl < r->nslices ? sl : r->nslices - 1].sent += c->n;
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
        uint64_t due = lg_intended_ns(r, i), now = ld_mono_ns();
        if (now < due) lg_sleep_until(due);
        prod_ctx *c = take_ctx(r, r->hard_end_ns);
        if (!c) break;
        send_request(r, c, i, ld_mono_ns());
    }
    if (i < r->nreq) {
        uint64_t first = i > r->warm_reqs ? i : r->warm_reqs;
        pthread_mutex_lock(&r->mu);
        r->ist.ev_unsent = (r->nreq - first) * r->o.batch;
        pthread_mutex_unlock(&r->mu);
    }
    atomic_store(&r->sender_done, 1);
    return NULL;
}

/* probe_reachable opens one TCP (or IPC) connection to <url> within
 * <timeout_ms>: a linkd that is down or a host that drops packets is
 * reported at once, with the reason, instead of after the whole run.
 * Returns 0 or an NNG error; NNG_ENOTSUP for transports it cannot probe. */
static int probe_reachable(const char *url, unsigned timeout_ms)
{
    nng_stream_dialer *d;
    nng_aio *aio;
    int rv = nng_stream_dialer_alloc(&d, url);
    if (rv != 0) return rv == NNG_EADDRINVAL ? rv : NNG_ENOTSUP;
    if ((rv = nng_aio_alloc(&aio, NULL, NULL)) != 0) {
        nng_stream_dialer_free(d);
        return rv;
    }
    nng_aio_set_timeout(aio, (nng_duration)timeout_ms);
    nng_stream_dialer_dial(d, aio);
    nng_aio_wait(aio);
    rv = nng_aio_result(aio);
    if (rv == 0) nng_stream_free(nng_aio_get_output(aio, 0));
    nng_aio_free(aio);
    nng_stream_dialer_free(d);
    return rv;
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
        r->gens[k] = lg_gen_new(r->run_id, src, ld_mono_ns() ^ (k * 7919u));
        if (!r->gens[k]) return NNG_ENOMEM;
        if ((rv = nng_req0_open(&r->socks[k])) != 0) return rv;
        nng_socket_set_ms(r->socks[k], NNG_OPT_REQ_RESENDTIME, 3600 * 1000);   /* never resend */
        nng_socket_set_size(r->socks[k], NNG_OPT_RECVMAXSZ, 16u << 20);
        /* Dials retry in the background, as any producer's would; the probe
         * before this has already said whether linkd is there at all. */
        if ((rv = nng_dial(r->socks[k], o->ingest_url, NULL, NNG_FLAG_NONBLOCK)) != 0) return rv;
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
 * frees everything; safe on a half-opened set. If a close gets stuck in NNG,
 * the contexts, their aios and generators are left to NNG: linkload is ending. */
static void producers_close(run *r)
{
    int stuck = 0;
    for (unsigned k = 0; r->socks && k < r->o.connections; k++)
        if (ld_nng_close(r->socks[k], "producer socket", LD_NNG_CLOSE_MS) != 0) stuck = 1;
    if (stuck) {
        free(r->socks);
        r->socks = NULL;
        r->gens = NULL;
        r->ctxs = NULL;
        return;
    }
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

/* ---- the schedule ------------------------------------------------------------- */

static int sched_push(run *r, uint64_t *cap, uint64_t t_ns, int phase)
{
    if (r->nreq == *cap) {
        uint64_t ncap = *cap ? *cap * 2 : 4096;
        if (ncap > MAX_REQUESTS) ncap = MAX_REQUESTS;
        if (r->nreq == ncap) return LD_EFULL;
        uint64_t *s = realloc(r->sched, ncap * sizeof *s);
        if (!s) return LD_ENOMEM;
        r->sched = s;
        int8_t *p = realloc(r->sched_phase, ncap * sizeof *p);
        if (!p) return LD_ENOMEM;
        r->sched_phase = p;
        *cap = ncap;
    }
    r->sched[r->nreq] = t_ns;
    r->sched_phase[r->nreq] = (int8_t)phase;
    r->nreq++;
    return 0;
}

/* schedule_phase appends the requests of one phase that starts <t0> real
 * seconds into the run and lasts <len> real seconds. Evenly spaced arrivals
 * step by batch/rate(t); Poisson ones by an exponential draw of that mean
 * (the rate is re-read at every arrival, so ramps are followed closely). */
static int schedule_phase(run *r, uint64_t *cap, const lg_phase *p, int idx, double t0, double len,
                          uint64_t *rng)
{
    double ts = r->sc.time_scale, t = 0;
    while (t < len) {
        double rate = lg_phase_rate(p, t * ts) * r->o.rate_scale;
        if (rate <= 1e-9) {   /* a ramp from 0: look again a little later */
            t += 0.001;
            continue;
        }
        double dt = (double)r->o.batch / rate;
        if (r->sc.poisson) {
            dt *= -log(1.0 - lg_rnd_unit(rng));
            t += dt;   /* Poisson: the first arrival is a draw away too */
            if (t >= len) break;
            int rv = sched_push(r, cap, (uint64_t)((t0 + t) * 1e9), idx);
            if (rv != 0) return rv;
            continue;
        }
        int rv = sched_push(r, cap, (uint64_t)((t0 + t) * 1e9), idx);
        if (rv != 0) return rv;
        t += dt;
    }
    return 0;
}

static int build_schedule(run *r)
{
    uint64_t cap = 0, rng = ld_mono_ns() ^ 0x5eed;
    double t = 0, ts = r->sc.time_scale;
    int rv;
    if (r->o.warmup > 0) {   /* the first phase's starting rate, not measured */
        lg_phase w = r->sc.phases[0];
        w.rate_to = w.rate_from;
        w.duration_s = r->o.warmup * ts;
        if ((rv = schedule_phase(r, &cap, &w, -1, 0, r->o.warmup, &rng)) != 0) return rv;
        t = r->o.warmup;
    }
    r->warm_reqs = r->nreq;
    double measured = 0;
    for (int i = 0; i < r->nphases; i++) {
        double len = r->sc.phases[i].duration_s / ts;
        if (r->o.max_duration > 0 && measured + len > r->o.max_duration) len = r->o.max_duration - measured;
        if (len <= 0) break;
        if ((rv = schedule_phase(r, &cap, &r->sc.phases[i], i, t, len, &rng)) != 0) return rv;
        t += len;
        measured += len;
    }
    r->measured_s = measured;
    r->sched_end_ns = (uint64_t)(t * 1e9);
    if (r->nreq == r->warm_reqs) return LD_EINVAL;   /* nothing to measure */
    r->nevents = r->nreq * r->o.batch;
    r->nslices = (unsigned)ceil(measured);
    if (r->nslices < 1) r->nslices = 1;
    r->slice_ns = NS_PER_S;
    if (r->nslices > LG_MAX_SLICES) {
        r->slice_ns = (uint64_t)ceil(measured * 1e9 / LG_MAX_SLICES);
        r->nslices = LG_MAX_SLICES;
    }
    r->slices = calloc(r->nslices, sizeof *r->slices);
    r->phases = calloc((size_t)r->nphases, sizeof *r->phases);
    if (!r->slices || !r->phases) return LD_ENOMEM;
    for (unsigned i = 0; i < r->nslices; i++) {
        ld_hist_init(&r->slices[i].acc);
        ld_hist_init(&r->slices[i].term);
    }
    for (int i = 0; i < r->nphases; i++) {
        ld_hist_init(&r->phases[i].acc);
        ld_hist_init(&r->phases[i].term);
    }
    return 0;
}

static int build_specs(run *r)
{
    r->specs = calloc((size_t)r->nphases + 1, sizeof *r->specs);
    if (!r->specs) return LD_ENOMEM;
    for (int i = 0; i <= r->nphases; i++) {
        const lg_phase *p = &r->sc.phases[i < r->nphases ? i : 0];
        lg_gen_spec *s = &r->specs[i];
        s->mix = p->has_mix ? &p->mix : &r->sc.mix;
        s->place = p->has_place ? &p->place : NULL;
        s->petitioners_min = p->petitioners_min;
        s->petitioners_max = p->petitioners_max;
        s->status = p->status ? p->status : r->sc.status;
    }
    return 0;
}

/* ---- options ------------------------------------------------------------------ */

static void usage(FILE *f)
{
    fprintf(f,
            "usage: linkload run --rate R --duration S [options]\n"
            "       linkload run --scenario FILE [options]\n"
            "What is offered\n"
            "  --scenario FILE          a scenario (loadtest/scenarios/*.yaml): mix, places, phases,\n"
            "                           terminal behaviour\n"
            "  --rate R --duration S    one phase of R events/s for S seconds (without a scenario)\n"
            "  --phases SPEC            steps and ramps, e.g. 30s@1000,1m@1000..20000,30s@20000\n"
            "  --arrivals constant|poisson   evenly spaced (default) or Poisson request arrivals\n"
            "  --rate-scale X           multiply every rate by X (default 1)\n"
            "  --time-scale N           run the scenario N times faster than written: durations and\n"
            "                           terminal delays / N (start linkd with the same --time-scale)\n"
            "  --max-duration S         stop the schedule after S seconds of measured load\n"
            "  --warmup S               seconds at the first rate before measuring (default 0)\n"
            "  --mix SPEC               e.g. call=80,sensor=15,petition=5 or fire=5,crime=20,smoke=3\n"
            "  --status actual|exercise|test   Envelope status (default test, or the scenario's)\n"
            "How it is sent\n"
            "  --batch B                events per IngestRequest (default 10, at most 1024)\n"
            "  --connections C          REQ sockets to the ingest URL (default 4)\n"
            "  --inflight K             requests in flight per socket (default 64)\n"
            "  --timeout MS             per-request reply timeout (default 5000)\n"
            "  --drain S                seconds to wait for answers after the schedule (default 5)\n"
            "  --linger S               keep terminals and feed running S seconds after the last\n"
            "                           answer, to see acknowledgements and escalations (default 0)\n"
            "  --connect-timeout S      give up if linkd cannot be reached within S (default 5)\n"
            "Where linkd is (any host)\n"
            "  --ingest URL             default tcp://127.0.0.1:7450\n"
            "  --terminals URL          default tcp://127.0.0.1:7451\n"
            "  --feed URL               subscribe to linkd's feed: escalations, per-department\n"
            "                           acknowledge times and compliance (default: not subscribed)\n"
            "Terminals\n"
            "  --rules DIR              rule set whose terminals are simulated (default ./rules)\n"
            "  --no-terminals           do not simulate terminals\n"
            "  --terminal-ack-delay MS  acknowledge each task MS after receiving it (default 0)\n"
            "  --resolve                also report ON_SCENE and RESOLVED at once, closing incidents\n"
            "Output\n"
            "  --json FILE              write the report as JSON\n"
            "  --plot PREFIX            PREFIX-latency.svg and PREFIX-percentiles.svg (gnuplot) and\n"
            "                           their data files\n"
            "  --quiet                  no progress line\n"
            "Exit: 0 done, 64 usage, 65 bad scenario or rules, 69 linkd unreachable.\n");
}

static int parse_status(const char *v)
{
    int s;
    return ld_enum_parse(&linkd__v1__status__descriptor, v, &s) == 0 ? s : -1;
}

static int parse_opts(int argc, char **argv, run_opts *o)
{
    *o = (run_opts){.batch = 10, .connections = 4, .inflight = 64, .timeout_ms = 5000, .drain = 5,
                    .rate_scale = 1, .connect_timeout = 5, .arrivals = -1,
                    .ingest_url = "tcp://127.0.0.1:7450", .terminals_url = "tcp://127.0.0.1:7451",
                    .rules_dir = "rules", .terminals = 1};
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
            if (strcmp(a, "--rate") == 0) o->rate = atof(v);
            else if (strcmp(a, "--duration") == 0) o->duration = atof(v);
            else if (strcmp(a, "--warmup") == 0) o->warmup = atof(v);
            else if (strcmp(a, "--drain") == 0) o->drain = atof(v);
            else if (strcmp(a, "--linger") == 0) o->linger = atof(v);
            else if (strcmp(a, "--rate-scale") == 0) o->rate_scale = atof(v);
            else if (strcmp(a, "--time-scale") == 0) o->time_scale = atof(v);
            else if (strcmp(a, "--max-duration") == 0) o->max_duration = atof(v);
            else if (strcmp(a, "--connect-timeout") == 0) o->connect_timeout = atof(v);
            else if (strcmp(a, "--batch") == 0) o->batch = (unsigned)atoi(v);
            else if (strcmp(a, "--connections") == 0) o->connections = (unsigned)atoi(v);
            else if (strcmp(a, "--inflight") == 0) o->inflight = (unsigned)atoi(v);
            else if (strcmp(a, "--timeout") == 0) o->timeout_ms = (unsigned)atoi(v);
            else if (strcmp(a, "--terminal-ack-delay") == 0) o->ack_delay_ms = atof(v), o->ack_delay_set = 1;
            else if (strcmp(a, "--ingest") == 0) o->ingest_url = v;
            else if (strcmp(a, "--terminals") == 0) o->terminals_url = v;
            else if (strcmp(a, "--feed") == 0) o->feed_url = v;
            else if (strcmp(a, "--rules") == 0) o->rules_dir = v;
            else if (strcmp(a, "--json") == 0) o->json = v;
            else if (strcmp(a, "--plot") == 0) o->plot = v;
            else if (strcmp(a, "--scenario") == 0) o->scenario_file = v;
            else if (strcmp(a, "--phases") == 0) o->phases = v;
            else if (strcmp(a, "--mix") == 0) snprintf(o->mix_spec, sizeof o->mix_spec, "%s", v);
            else if (strcmp(a, "--arrivals") == 0) {
                if (strcmp(v, "poisson") == 0) o->arrivals = 1;
                else if (strcmp(v, "constant") == 0) o->arrivals = 0;
                else {
                    fprintf(stderr, "linkload run: --arrivals: constant or poisson\n");
                    return -1;
                }
            } else if (strcmp(a, "--status") == 0) {
                if ((o->status = parse_status(v)) < 0) {
                    fprintf(stderr, "linkload run: --status: actual, exercise or test\n");
                    return -1;
                }
            } else {
                fprintf(stderr, "linkload run: unknown option %s\n", a);
                return -1;
            }
        }
    }
    if (!o->scenario_file && !o->phases && !(o->rate > 0 && o->duration > 0)) {
        fprintf(stderr, "linkload run: give --scenario FILE, --phases SPEC, or --rate and --duration\n");
        return -1;
    }
    if ((o->rate && !(o->rate > 0 && o->rate <= 10e6)) || (o->duration && !(o->duration > 0 && o->duration <= 86400)) ||
        !(o->warmup >= 0 && o->warmup <= 3600) || !(o->drain >= 0 && o->drain <= 600) ||
        !(o->linger >= 0 && o->linger <= 86400) ||
        !(o->rate_scale > 0 && o->rate_scale <= 1e6) || !(o->time_scale >= 0 && o->time_scale <= 1e6) ||
        !(o->max_duration >= 0 && o->max_duration <= 86400) ||
        !(o->connect_timeout > 0 && o->connect_timeout <= 600) || o->batch < 1 ||
        o->batch > LG_MAX_BATCH || o->connections < 1 || o->connections > 256 || o->inflight < 1 ||
        o->inflight > 4096 || o->timeout_ms < 1 || !(o->ack_delay_ms >= 0 && o->ack_delay_ms <= 3600000)) {
        fprintf(stderr, "linkload run: a value is out of range\n");
        return -1;
    }
    return 0;
}

/* load_scenario builds r->sc from the file and the flags: flags given
 * override the file. Returns 0, or an exit code. */
static int load_scenario(run *r)
{
    run_opts *o = &r->o;
    lg_scenario *s = &r->sc;
    char err[512];
    if (o->scenario_file) {
        ld_diag d;
        ld_diag_init(&d);
        int rv = lg_scenario_load(s, o->scenario_file, &d);
        ld_diag_print(&d, stderr);
        ld_diag_fini(&d);
        if (rv != 0) {
            fprintf(stderr, "linkload run: scenario %s not loaded: %s\n", o->scenario_file,
                    rv == LD_EPARSE ? "errors above" : ld_strerror(rv));
            return LG_EXIT_DATAERR;
        }
    } else {
        lg_scenario_defaults(s);
    }
    /* Flags speak in seconds of the run; scenario files in domain time,
     * which --time-scale compresses. */
    double scale = o->time_scale > 0 ? o->time_scale : s->time_scale;
    if (o->phases) {
        if (lg_phases_parse(s, o->phases, err, sizeof err) != 0) {
            fprintf(stderr, "linkload run: %s\n", err);
            return LG_EXIT_USAGE;
        }
        for (int i = 0; i < s->nphases; i++) s->phases[i].duration_s *= scale;
    } else if (o->rate > 0 && o->duration > 0) {
        s->nphases = 1;
        lg_phase *p = &s->phases[0];
        memset(p, 0, sizeof *p);
        snprintf(p->name, sizeof p->name, "constant");
        p->rate_from = p->rate_to = o->rate;
        p->duration_s = o->duration * scale;
    } else if (o->scenario_file && o->duration > 0) {
        o->max_duration = o->duration;   /* --duration with a scenario: cut it short */
    }
    if (o->mix_spec[0] && lg_mix_parse(&s->mix, o->mix_spec, err, sizeof err) != 0) {
        fprintf(stderr, "linkload run: %s\n", err);
        return LG_EXIT_USAGE;
    }
    if (o->status) s->status = o->status;
    if (o->arrivals >= 0) s->poisson = o->arrivals;
    if (o->time_scale > 0) s->time_scale = o->time_scale;
    if (o->ack_delay_set) {
        s->terminals.ack = (lg_dist){LG_DIST_FIXED, o->ack_delay_ms, 0};
        s->ndepts = 0;
    }
    if (o->resolve) s->terminals.arrive = s->terminals.resolve = (lg_dist){LG_DIST_FIXED, 0, 0};
    r->nphases = s->nphases;
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
    if (rv != 0) return rv;
    int bad = 0;
    for (int i = 0; i < r->sc.ndepts; i++) {   /* a scenario may only name real departments */
        const lg_dept_profile *dp = &r->sc.depts[i];
        if (ld_rules_department(r->rules, dp->dept) >= 0) continue;
        fprintf(stderr, "%s:%d:%d: error: department '%s' is not in the rules of %s\n",
                r->sc.file, dp->line, dp->col, dp->dept, r->o.rules_dir);
        bad = 1;
    }
    return bad ? LD_ERULES : 0;
}

/* ---- the run -------------------------------------------------------------------- */

/* wait_for_end prints progress every second until the intake is done and
 * the terminals have been quiet for TERM_QUIET_NS, or the hard end. With
 * nothing answered after --connect-timeout, linkd is unreachable: stop. */
static void wait_for_end(run *r)
{
    snapshot prev, cur;
    lg_take_snapshot(r, &prev);
    uint64_t last_print = ld_mono_ns(), intake_done = 0;
    uint64_t give_up = r->start_ns + (uint64_t)(r->o.connect_timeout * 1e9) + r->o.timeout_ms * NS_PER_MS;
    for (;;) {
        uint64_t next = ld_mono_ns() + 100 * NS_PER_MS;
        lg_sleep_until(next < r->hard_end_ns ? next : r->hard_end_ns);
        uint64_t now = ld_mono_ns();
        if (now >= r->hard_end_ns) break;
        lg_take_snapshot(r, &cur);
        if (now - last_print >= NS_PER_S) {
            if (!r->o.quiet) lg_progress(r, &cur, &prev, (double)(now - last_print) / 1e9);
            prev = cur;
            last_print = now;
        }
        if (now >= give_up && cur.ist.replies_all == 0) {
            if (!r->o.quiet) fprintf(stderr, "\nlinkload run: no answer from linkd at %s: stopping\n", r->o.ingest_url);
            break;
        }
        if (!intake_done && atomic_load(&r->sender_done) && cur.busy == 0) intake_done = now;
        if (!intake_done) continue;
        if (r->o.linger > 0) {   /* watch what happens next: acks, escalations */
            if (now - intake_done >= (uint64_t)(r->o.linger * 1e9)) break;
            continue;
        }
        if (!r->o.terminals) break;
        uint64_t quiet_since = cur.tst.last_task_ns > intake_done ? cur.tst.last_task_ns : intake_done;
        if (now - quiet_since >= TERM_QUIET_NS) break;
    }
    if (!r->o.quiet) fputc('\n', stderr);
}

static void plan_id(run *r)
{
    snprintf(r->run_id, sizeof r->run_id, "L%08x", (unsigned)(ld_wall_ms() ^ ((uint64_t)getpid() << 16)));
}

static void free_run(run *r)
{
    if (r->rules) ld_rules_free(r->rules);
    free(r->fst.dept);
    free(r->sched);
    free(r->sched_phase);
    free(r->slices);
    free(r->phases);
    free(r->specs);
    pthread_cond_destroy(&r->cv);
    pthread_mutex_destroy(&r->mu);
    pthread_mutex_destroy(&r->tmu);
    pthread_mutex_destroy(&r->fmu);
    free(r);
}

static void report_unreachable(run *r, int rv)
{
    fprintf(stderr, "linkload run: linkd unreachable at %s: %s\n", r->o.ingest_url, nng_strerror(rv));
    printf("linkload run %s: linkd unreachable at %s: %s\n", r->run_id, r->o.ingest_url, nng_strerror(rv));
    if (!r->o.json) return;
    FILE *f = fopen(r->o.json, "w");
    if (!f) return;
    fprintf(f,
            "{\"mode\":\"run\",\"run_id\":\"%s\",\"unreachable\":true,\"connect_error\":\"%s\","
            "\"connect_errors\":1,\"sent\":0,\"accepted\":0}\n",
            r->run_id, nng_strerror(rv));
    fclose(f);
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
    pthread_mutex_init(&r->fmu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&r->cv, &ca);
    pthread_condattr_destroy(&ca);
    ld_hist_init(&r->ist.accepted);
    ld_hist_init(&r->tst.latency);
    plan_id(r);
    if (parse_opts(argc, argv, &r->o) != 0) {
        usage(stderr);
        code = LG_EXIT_USAGE;
        goto done;
    }
    if ((code = load_scenario(r)) != 0) goto done;
    code = LG_EXIT_SOFTWARE;
    if ((r->o.terminals || r->o.feed_url) && load_rules(r) != 0) {
        code = LG_EXIT_DATAERR;
        goto done;
    }
    if ((rv = build_schedule(r)) != 0) {
        fprintf(stderr, "linkload run: %s\n",
                rv == LD_EFULL ? "the schedule is too long (more than 67 million requests): raise --batch"
                : rv == LD_EINVAL ? "the schedule is empty: every rate is 0"
                                  : ld_strerror(rv));
        code = LG_EXIT_USAGE;
        goto done;
    }
    if (build_specs(r) != 0) goto done;
    rv = probe_reachable(r->o.ingest_url, (unsigned)(r->o.connect_timeout * 1000));
    if (rv != 0 && rv != NNG_ENOTSUP) {
        report_unreachable(r, rv);
        code = LG_EXIT_UNAVAILABLE;
        goto done;
    }
    if ((rv = producers_open(r)) != 0) {
        report_unreachable(r, rv);
        code = LG_EXIT_UNAVAILABLE;
        goto done;
    }
    if (r->o.feed_url && (rv = lg_feed_open(r)) != 0) {
        fprintf(stderr, "linkload run: feed at %s: %s; running without it\n", r->o.feed_url, nng_strerror(rv));
        lg_feed_close(r);
        r->o.feed_url = NULL;
    }
    if (r->o.terminals && (rv = lg_terminals_open(r)) != 0) {
        fprintf(stderr, "linkload run: terminals at %s: %s; running without terminals\n",
                r->o.terminals_url, nng_strerror(rv));
        lg_terminals_close(r);
        r->o.terminals = 0;
    }
    /* Let the dials settle; a feed subscriber that is not connected yet
     * would miss the first tasks. */
    r->start_ns = ld_mono_ns() + (r->o.feed_url ? 500 : 100) * NS_PER_MS;
    r->hard_end_ns = r->start_ns + r->sched_end_ns + (uint64_t)((r->o.drain + r->o.linger) * 1e9);
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
    lg_terminals_close(r);
    lg_feed_close(r);
    producers_close(r);
    if (code == LG_EXIT_OK) {
        snapshot s;
        figures f;
        lg_take_snapshot(r, &s);
        lg_figures(r, &s, &f);
        lg_print_report(r, &s, &f);
        if (r->o.json && lg_write_json(r, &s, &f) != 0) code = LG_EXIT_SOFTWARE;
        if (r->o.plot) lg_write_plots(r, &s);
        if (f.unreachable) code = LG_EXIT_UNAVAILABLE;
    }
    free_run(r);
    return code;
}
