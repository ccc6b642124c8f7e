/* run.h: what the parts of `linkload run` share.
 *
 *   run.c     options, the schedule, producers (the sender thread and its REQ
 *             contexts), the run from start to end
 *   term.c    simulated on-duty terminals (long-poll clients on NNG aios)
 *   feed.c    the feed subscriber: escalations and per-department figures
 *   report.c  the live progress line, the text and JSON reports, the plots
 *
 * Threads: main (progress, end of run, report), the sender, and NNG's
 * callback threads. Every counter sits behind one of three mutexes: mu
 * (intake), tmu (terminals), fmu (feed). */
#ifndef LINKLOAD_RUN_H
#define LINKLOAD_RUN_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <uv.h>

#include "core/hist.h"
#include "core/map.h"
#include "linkload.h"
#include "rules/rules.h"

#define NS_PER_S 1000000000ull
#define NS_PER_MS 1000000ull
#define LG_MAX_REASONS 24       /* distinct rejection reasons kept; the rest are "other" */
#define LG_MAX_SLICES 300       /* points of the latency-over-time plot */
#define LG_RESULT_MAX 4         /* highest Result value */

typedef struct run_opts {
    double rate, duration;      /* one phase from flags, when no scenario or --phases */
    double warmup, drain, linger, rate_scale, time_scale, connect_timeout, max_duration;
    unsigned connections, batch, inflight, timeout_ms;
    const char *ingest_url, *terminals_url, *feed_url, *rules_dir, *json, *plot;
    const char *scenario_file, *phases;
    int terminals, quiet, arrivals;   /* arrivals: -1 the scenario's, 0 constant, 1 poisson */
    int ack_delay_set, resolve, status;
    double ack_delay_ms;
    char mix_spec[1024];
} run_opts;

typedef struct reason_count {
    int result;
    char reason[96];
    uint64_t n;
} reason_count;

typedef struct ingest_stats {
    uint64_t req_sent, ev_sent, ev_unsent;
    uint64_t results[LG_RESULT_MAX + 1];   /* by Result value; [0] = unknown value */
    uint64_t timeouts, errors, bad_replies, unanswered;
    uint64_t replies_all;       /* replies of any kind, warm-up included: linkd is there */
    uint64_t first_send_ns, last_send_ns, last_reply_ns, max_lag_ns;
    ld_hist accepted;           /* intended send -> ACCEPTED, ns, per event */
    reason_count reasons[LG_MAX_REASONS];
    int nreasons;
    uint64_t reasons_other;
} ingest_stats;

typedef struct term_stats {
    uint64_t tasks, first, redelivered, escalated, added_later, warm, foreign;
    uint64_t polls, poll_errors, refused, no_shows, offline_periods;
    uint64_t updates_sent[8];   /* by UpdateKind */
    uint64_t updates[LG_RESULT_MAX + 1];   /* update results by Result value */
    uint64_t last_task_ns;
    ld_hist latency;            /* intended send -> terminal has the task, ns */
    char sample_refused[256], sample_update[256];
} term_stats;

/* Per department, from the feed. Times are linkd's domain clock. */
typedef struct dept_stats {
    uint64_t dispatched, acknowledged, ack_level0, on_scene, resolved, rejected, missed;
    uint64_t escalated[LD_LEG_COUNT];
    ld_hist ack_ns;             /* dispatched -> acknowledged */
} dept_stats;

typedef struct feed_stats {
    uint64_t messages, gaps, bad, foreign;
    uint64_t by_kind[16];
    uint64_t last_seq;
    dept_stats *dept;           /* rules->ndepartments of them */
} feed_stats;

/* One slice of the run by intended send time, for the latency-over-time plot. */
typedef struct slice_stats {
    uint64_t sent, accepted, failed;
    ld_hist acc, term;
} slice_stats;

typedef struct phase_stats {
    uint64_t sent, accepted, failed;
    ld_hist acc, term;
} phase_stats;

typedef struct run run;
typedef struct term term;

struct run {
    run_opts o;
    lg_scenario sc;
    char run_id[24];
    int nphases;                /* sc.nphases */

    /* The schedule: request i is due at start_ns + sched[i] and belongs to
     * phase sched_phase[i] (-1: warm-up). Fixed before the run starts. */
    uint64_t *sched;
    int8_t *sched_phase;
    uint64_t nreq, nevents, warm_reqs, sched_end_ns;
    double measured_s;          /* schedule length after warm-up, real seconds */
    uint64_t start_ns, hard_end_ns;
    _Atomic int stopping;
    _Atomic int sender_done;

    /* producers */
    nng_socket *socks;
    lg_gen **gens;              /* one per connection: its own source id */
    lg_gen_spec *specs;         /* one per phase, and [nphases] for the warm-up */
    struct prod_ctx *ctxs;
    size_t nctx;
    pthread_mutex_t mu;         /* free list, busy, ist, slices, phases */
    pthread_cond_t cv;
    struct prod_ctx *free_list;
    size_t busy;
    ingest_stats ist;
    slice_stats *slices;
    unsigned nslices;
    uint64_t slice_ns;
    phase_stats *phases;
    int connect_error;          /* NNG error of the reachability probe */

    /* terminals */
    ld_rules *rules;
    term *terms;
    size_t nterms, nstaffed;
    int tnative;                /* on tloop over spc.h, not NNG */
    uv_loop_t tloop;
    uv_thread_t tthread;
    int tthread_started;
    uv_async_t tstop;
    pthread_mutex_t tmu;
    term_stats tst;
    ld_map in_hand;             /* task ids a simulated terminal acts on (keys owned); tmu */

    /* feed */
    nng_socket feed_sock;
    nng_aio *feed_aio;
    ld_arena feed_arena;
    int feed_open;
    pthread_mutex_t fmu;
    feed_stats fst;
};

/* The intended send time of request <req>. */
static inline uint64_t lg_intended_ns(const run *r, uint64_t req)
{
    return r->start_ns + r->sched[req];
}

/* lg_account_latency records one accepted event (or, with <terminal>, a
 * task reaching its terminal) of request <req> in the per-phase and
 * per-slice figures. Caller holds mu. */
void lg_account_latency(run *r, uint64_t req, uint64_t ns, int terminal);

/* ---- term.c --------------------------------------------------------------- */

/* lg_terminals_open starts one simulated terminal per staffed chain level of
 * the rule set; lg_terminals_close stops them (safe when half open). */
int lg_terminals_open(run *r);
void lg_terminals_close(run *r);

/* ---- feed.c --------------------------------------------------------------- */

int lg_feed_open(run *r);
void lg_feed_close(run *r);

/* ---- report.c ------------------------------------------------------------- */

typedef struct snapshot {
    ingest_stats ist;
    term_stats tst;
    feed_stats fst;             /* fst.dept points into the run: read under nothing after the end */
    size_t busy;
} snapshot;

typedef struct figures {
    double measured_s, sent_rate, achieved_rate;
    int unreachable;
} figures;

void lg_take_snapshot(run *r, snapshot *s);
void lg_progress(run *r, const snapshot *now, const snapshot *prev, double secs);
void lg_figures(const run *r, const snapshot *s, figures *f);
void lg_print_report(const run *r, const snapshot *s, const figures *f);
int lg_write_json(const run *r, const snapshot *s, const figures *f);
int lg_write_plots(const run *r, const snapshot *s);

#endif
