#include "daemon/daemon.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include <uv.h>

#include "core/clock.h"
#include "core/diag.h"
#include "core/err.h"
#include "core/log.h"
#include "core/tls.h"
#include "daemon/endpoint.h"
#include "daemon/notify.h"
#include "dispatch/dispatch.h"
#include "engine/engine.h"
#include "audit/audit.h"
#include "daemon/reloads.h"
#include "http/http.h"
#include "ingest/ingest.h"
#include "rules/rules.h"
#include "store/recover.h"
#include "store/spool.h"
#include "store/store.h"

typedef struct daemon {
    const ld_options *o;
    uv_loop_t loop;
    ld_clock clock;
    ld_rules *rules;
    ld_engine engine;
    ld_store store;
    ld_ingest ingest;
    ld_dispatch dispatch;
    ld_recovery recovery;
    ld_spool spool;
    int spooling;               /* --spool given: d->spool is open */
    int reconciling;            /* spooled events on their way into Redis */
    ld_http *http;
    ld_audit audit;
    ld_reload_log reload_log;   /* every reload and its outcome, into ld:reloads */
    uint64_t rules_loaded_at, reload_attempt_at, reloads, reload_failures;
    int last_reload_ok;
    ld_notify notify;
    int recovered;
    char mark[48];              /* the last ld:applied written */
    uv_timer_t deadline, drain_check, flush;
    uv_prepare_t before_poll;
    uv_signal_t sigterm, sigint, sighup;
    uint64_t armed_due;
    uint64_t drain_started;
    int listening, ready_logged, stopping;
    uint64_t recovery_retry_at; /* mono ms: the next try of a recovery or catch-up that failed */
    int degraded_start;         /* READY without Redis: life safety only until recovered */
    struct fence_claim *fence_answers; /* claims answered from the spool, given next turn */
    uint64_t claims_doubled;    /* claims made here while away that another instance made */
    char instance[20];          /* this process, in its fence claims: 16 hex digits */
    uint8_t *recbuf;
    size_t recbuf_len;
} daemon;

void ld_options_defaults(ld_options *o)
{
    memset(o, 0, sizeof *o);
    o->rules_dir = "rules";
    o->redis_url = "redis://127.0.0.1:6379/0";
    o->ingest_url = "tcp://127.0.0.1:7450";
    o->terminals_url = "tcp://127.0.0.1:7451";
    o->feed_url = "tcp://127.0.0.1:7452";
    o->time_scale = 1.0;
    o->max_message = 1 << 20;
    o->offline_after_ms = 60000;
    o->redis_timeout_ms = 5000;
    o->dedup_window_s = 7 * 24 * 3600;
    o->ingest_contexts = 64;
    o->flush_ms = 20;
    o->board_max = LD_HTTP_BOARD_MAX;
    o->source_rate = 10000;
    o->spool_max_events = 100000;
    o->spool_max_bytes = 64u << 20;
}

/* ---- write-behind and deadlines, once per loop turn --------------------------- */

static void write_incident(void *arg, ld_incident *inc)
{
    daemon *d = arg;
    size_t need = ld_engine_record_pack(&d->engine, inc, d->recbuf, d->recbuf_len);
    if (need > d->recbuf_len) {
        size_t n = need * 2;
        uint8_t *b = realloc(d->recbuf, n);
        if (!b) {
            ld_log_rl(LD_ERR, "STORE-NOMEM", "cannot serialize incident %s", inc->id);
            return;
        }
        d->recbuf = b;
        d->recbuf_len = n;
        need = ld_engine_record_pack(&d->engine, inc, d->recbuf, d->recbuf_len);
    }
    ld_store_put_incident(&d->store, inc->id, d->recbuf, need, ld_incident_next_due(inc),
                          inc->closed_at != 0);
}

static void flush_dirty(daemon *d)
{
    /* While Redis is away, records stay dirty and are written when it returns. */
    if (!ld_store_up(&d->store)) return;
    /* Nor while Redis has not taken the last tick's writes: they wait here,
     * where waiting costs nothing, rather than in hiredis's buffer. */
    if (ld_store_unsent(&d->store) > LD_STORE_UNSENT_MAX) {
        d->store.stats.write_behind_waits++;
        return;
    }
    ld_engine_take_dirty(&d->engine, write_incident, d);
    ld_store_flush_records(&d->store);
    ld_store_write_now(&d->store);
    ld_audit_flush(&d->audit);
    ld_store_seen_tidy(&d->store);
    ld_reload_log_flush(&d->reload_log);
    /* While some cut-off intake call may have appended events the engine has
     * not opened, the mark must not pass them: a restart replays from it. */
    if (!d->store.doubt && strcmp(d->mark, d->engine.last_opened) != 0) {
        ld_store_put_mark(&d->store, d->engine.last_opened);
        memcpy(d->mark, d->engine.last_opened, sizeof d->mark);
    }
}

static void on_deadline(uv_timer_t *t)
{
    daemon *d = t->data;
    d->armed_due = UINT64_MAX;
    ld_engine_run_due(&d->engine);
}

static void rearm_deadline(daemon *d)
{
    uint64_t due = ld_engine_next_due(&d->engine);
    if (due == d->armed_due) return;
    d->armed_due = due;
    if (due == UINT64_MAX) {
        uv_timer_stop(&d->deadline);
        return;
    }
    uint64_t now = ld_clock_now(&d->clock);
    uint64_t delay = due > now ? ld_clock_real_delay(&d->clock, due - now) : 0;
    uv_timer_start(&d->deadline, on_deadline, delay, 0);
}

/* Records are written every flush_ms rather than every loop turn, so an
 * incident opened and acknowledged a few milliseconds later is written once.
 * Events are durable in ld:events before they are ACCEPTED, whatever this
 * period; a crash loses at most flush_ms of updates to records, which the
 * replay of ld:events and the redelivery of unacknowledged tasks make good. */
static void reconcile_spool(daemon *d);
static void write_claims(daemon *d);

static void retry_recovery(daemon *d);

static void on_flush(uv_timer_t *t)
{
    daemon *d = t->data;
    retry_recovery(d);
    ld_engine_tidy(&d->engine);
    flush_dirty(d);
    if (d->spooling && ld_spool_first_claim(&d->spool)) write_claims(d);
    if (d->spooling && ld_spool_first(&d->spool)) reconcile_spool(d);
}

/* ---- the life-safety spool: back into Redis ------------------------------------------ */

enum { RECONCILE_BATCH = 256 };

typedef struct reconcile_op {
    daemon *d;
    size_t n;
    ld_spool_entry *e[RECONCILE_BATCH];
} reconcile_op;

/* reopen opens the incident of a spooled event the engine does not hold: it
 * was accepted by a run that died before Redis returned. Once per run: an
 * incident opened and closed meanwhile stays closed. */
static void reopen(daemon *d, ld_spool_entry *e)
{
    if (e->opened) return;
    e->opened = 1;
    char iid[LD_INCIDENT_ID_LEN];
    snprintf(iid, sizeof iid, "I%s", e->sid);
    if (ld_engine_find(&d->engine, iid)) return;
    Linkd__V1__Envelope *ev = linkd__v1__envelope__unpack(NULL, e->pblen, e->pb);
    if (!ev) {
        ld_log(LD_ERR, "SPOOL-EVENT", "spooled event %s cannot be decoded", e->sid);
        return;
    }
    uint64_t now = ld_clock_now(&d->clock), at = ld_spool_time(e->sid);
    ld_incident *inc;
    ld_engine_open_at(&d->engine, ev, e->sid, at && at < now ? at : now, &inc);
    linkd__v1__envelope__free_unpacked(ev, NULL);
}

static void on_reconciled(void *arg, int status, const ld_append_result *res, size_t n)
{
    reconcile_op *op = arg;
    daemon *d = op->d;
    d->reconciling = 0;
    if (status != 0 || d->stopping) {
        free(op);
        return; /* the next flush tick tries again once Redis is back */
    }
    for (size_t i = 0; i < n; i++) {
        ld_spool_entry *e = op->e[i];
        if (res[i].duplicate && strcmp(res[i].stream_id, e->sid) != 0)
            ld_log_rl(LD_WARN, "SPOOL-DUPLICATE", "spooled event %s from %s was also accepted "
                      "through redis (%s)", e->eid, e->src, res[i].stream_id);
        else
            reopen(d, e);
        ld_spool_done(&d->spool, e);
    }
    free(op);
    if (ld_spool_first(&d->spool)) {
        reconcile_spool(d);
        return;
    }
    ld_log(LD_NOTICE, "SPOOL-RECONCILED", "every spooled event is in redis (%llu in all); "
           "spool file removed", (unsigned long long)d->spool.stats.reconciled);
    ld_spool_remove_file(&d->spool);
}

/* reconcile_spool copies the oldest durable spooled events into ld:events
 * with their seen keys, in order, a batch at a time, once Redis is up and
 * recovery is done. Events still being synced wait for the next tick. */
static void reconcile_spool(daemon *d)
{
    if (d->reconciling || d->stopping || !d->recovered || !ld_store_up(&d->store)) return;
    reconcile_op *op = calloc(1, sizeof *op);
    if (!op) return;
    op->d = d;
    ld_append_item items[RECONCILE_BATCH];
    const char *sids[RECONCILE_BATCH];
    for (ld_spool_entry *e = ld_spool_first(&d->spool); e && e->durable && op->n < RECONCILE_BATCH;
         e = e->next) {
        items[op->n] = (ld_append_item){e->src, e->eid, e->pb, e->pblen};
        sids[op->n] = e->sid;
        op->e[op->n++] = e;
    }
    if (op->n == 0 ||
        ld_store_append_spooled(&d->store, items, sids, op->n, on_reconciled, op) != 0) {
        free(op);
        return;
    }
    d->reconciling = 1;
}

static void maybe_ready(daemon *d);
static void answer_known_claims(daemon *d);

static void on_before_poll(uv_prepare_t *h)
{
    daemon *d = h->data;
    if (!d->ready_logged) maybe_ready(d);
    answer_known_claims(d);
    if (!d->stopping) rearm_deadline(d);
}

/* ---- escalation fence ------------------------------------------------------------- */

enum { FENCE_TTL_S = 7 * 24 * 3600 };

typedef struct fence_claim {
    daemon *d;
    struct fence_claim *next;   /* on d->fence_answers */
    char task_id[LD_TASK_ID_LEN];
    char key[LD_TASK_ID_LEN + 48], value[48];
    int level, leg;
    int outcome;                /* an answer known at once, given on the next turn */
    uint64_t at;
} fence_claim;

static void answer_claim(fence_claim *c, int outcome, uint64_t at)
{
    if (outcome == LD_FENCE_TAKEN)
        ld_log_rl(LD_NOTICE, "ESCALATION-FENCED", "%s: level %d %s escalation was made at %llu "
                  "by an earlier run or another instance; not sent again", c->task_id, c->level,
                  ld_engine_leg_name(c->leg), (unsigned long long)at);
    else if (outcome == LD_FENCE_UNKNOWN)
        ld_log_rl(LD_WARN, "ESCALATION-UNFENCED", "%s: no answer from the fence; escalating "
                  "anyway", c->task_id);
    ld_engine_fenced(&c->d->engine, c->task_id, c->level, c->leg, outcome, at);
    free(c);
}

static void on_claim_spooled(void *arg, int status, const ld_spool_result *res, size_t n)
{
    (void)res, (void)n;
    answer_claim(arg, status == 0 ? LD_FENCE_WON : LD_FENCE_UNKNOWN, 0);
}

/* claim_locally fences an escalation while Redis is away: a claim the spool
 * holds already (made by an earlier run during this outage) is taken;
 * otherwise the claim is synced to the spool before the escalation goes
 * ahead, and written to ld:esc:* when Redis returns (write_claims). <c> is
 * answered later in every case but a returned error. */
static int claim_locally(daemon *d, fence_claim *c)
{
    const char *held = ld_spool_claimed(&d->spool, c->key);
    if (held) {
        c->outcome = LD_FENCE_TAKEN;
        c->at = strtoull(held, NULL, 10);
        c->next = d->fence_answers; /* answered before the loop sleeps: the engine */
        d->fence_answers = c;       /* marks the task as waiting only on return */
        return 0;
    }
    return ld_spool_claim(&d->spool, c->key, c->value, on_claim_spooled, c);
}

/* answer_known_claims gives the engine the answers claim_locally knew at once. */
static void answer_known_claims(daemon *d)
{
    while (d->fence_answers) {
        fence_claim *c = d->fence_answers;
        d->fence_answers = c->next;
        answer_claim(c, c->outcome, c->at);
    }
}

static void on_fence_answer(void *arg, int status, const char *held)
{
    fence_claim *c = arg;
    int outcome = status == 0 ? LD_FENCE_WON : status == 1 ? LD_FENCE_TAKEN : LD_FENCE_UNKNOWN;
    uint64_t at = held ? strtoull(held, NULL, 10) : 0;
    if (outcome == LD_FENCE_TAKEN && at == 0) outcome = LD_FENCE_UNKNOWN; /* not our value */
    /* The connection went while the claim waited: fence it in the spool.
     * Redis may have run the claim; it then holds this same value, which
     * write_claims meets when Redis returns, and nothing is doubled. */
    if (status != 0 && status != 1 && c->d->spooling && !c->d->stopping &&
        claim_locally(c->d, c) == 0) {
        ld_log_rl(LD_WARN, "ESCALATION-CLAIM-SPOOLED", "%s: redis did not answer the claim "
                  "%s; fenced in the spool instead", c->task_id, c->key);
        return;
    }
    answer_claim(c, outcome, at);
}

/* keep_claim_locally puts a move already made (no answer waited for) into
 * the spool, unless it holds that claim already; 0 or an LD_E* code. */
static int keep_claim_locally(daemon *d, const char *key, const char *value)
{
    return ld_spool_claimed(&d->spool, key) ? 0 : ld_spool_claim(&d->spool, key, value, NULL, NULL);
}

/* on_move_recorded: the claim of a move already made reached Redis, or was
 * cut off with the connection. Cut off, it goes to the spool as any claim
 * made while Redis is away: Redis may have run it, and then holds the same
 * value, which write_claims meets without a double. */
static void on_move_recorded(void *arg, int status, const char *held)
{
    fence_claim *c = arg;
    (void)held;
    if (status != 0 && status != 1 && c->d->spooling && !c->d->stopping) {
        if (keep_claim_locally(c->d, c->key, c->value) == 0)
            ld_log_rl(LD_WARN, "ESCALATION-CLAIM-SPOOLED", "%s: redis did not answer the claim "
                      "%s; kept in the spool instead", c->task_id, c->key);
        else
            ld_log_rl(LD_ERR, "ESCALATION-UNRECORDED", "%s: the claim %s reached neither redis "
                      "nor the spool", c->task_id, c->key);
    }
    free(c);
}

/* fence_escalation claims ld:esc:<task>:<level>:<leg> in Redis (SET NX, kept
 * 7 days) before a deadline escalation takes effect, so a restart that finds
 * a stale record, or a second linkd on the same Redis, recognises the move
 * as made. Redis away: with a spool, the claim is kept there (claim_locally);
 * without, the escalation goes ahead unfenced, on time. The value is
 * "<when> <instance>": two linkd that both escalated the same task during an
 * outage usually did so in the same millisecond, and only the instance tells
 * their claims apart when they meet in Redis (on_claim_written). Readers
 * take the number at its start. */
static int fence_escalation(void *ctx, const char *task_id, int level, int leg, uint64_t at,
                            int wait)
{
    daemon *d = ctx;
    fence_claim *c = calloc(1, sizeof *c);
    if (!c) return LD_ENOMEM;
    c->d = d;
    snprintf(c->task_id, sizeof c->task_id, "%s", task_id);
    snprintf(c->key, sizeof c->key, "ld:esc:%s:%d:%s", task_id, level, ld_engine_leg_name(leg));
    snprintf(c->value, sizeof c->value, "%llu %s", (unsigned long long)at, d->instance);
    c->level = level;
    c->leg = leg;
    int rv;
    if (!wait) {
        /* A move made already (a rejection, a supervisor's escalate-now): record it. */
        rv = ld_store_fence(&d->store, c->key, c->value, FENCE_TTL_S, on_move_recorded, c);
        if (rv == 0) return 0;
        if (d->spooling) rv = keep_claim_locally(d, c->key, c->value);
        free(c);
        return rv;
    }
    rv = ld_store_fence(&d->store, c->key, c->value, FENCE_TTL_S, on_fence_answer, c);
    if (rv != 0 && d->spooling && !d->stopping) rv = claim_locally(d, c);
    if (rv != 0) free(c);
    return rv;
}

typedef struct claim_write {
    daemon *d;
    ld_spool_entry *c;
} claim_write;

static void on_claim_written(void *arg, int status, const char *held)
{
    claim_write *w = arg;
    daemon *d = w->d;
    ld_spool_entry *c = w->c;
    free(w);
    c->sending = 0;
    if (status != 0 && status != 1) return; /* again when Redis is back */
    if (status == 1 && (!held || strcmp(held, c->eid) != 0)) {
        d->claims_doubled++;
        ld_log_rl(LD_WARN, "ESCALATION-DOUBLED", "%s was claimed by another instance (%s) "
                  "and here (%s) while redis was away: both escalated", c->src,
                  held ? held : "?", c->eid);
    }
    ld_spool_claim_done(&d->spool, c);
    if (!ld_spool_first_claim(&d->spool) && !ld_spool_first(&d->spool))
        ld_spool_remove_file(&d->spool);
}

/* write_claims writes the escalation claims made while Redis was away into
 * ld:esc:*, in order. Called first when Redis returns: commands run in
 * order on the one connection, so every later claim meets them. */
static void write_claims(daemon *d)
{
    if (!d->spooling || !ld_store_up(&d->store)) return;
    for (ld_spool_entry *c = ld_spool_first_claim(&d->spool); c; c = c->next) {
        if (!c->durable || c->sending) continue;
        claim_write *w = malloc(sizeof *w);
        if (!w) return;
        *w = (claim_write){d, c};
        if (ld_store_fence(&d->store, c->src, c->eid, FENCE_TTL_S, on_claim_written, w) != 0) {
            free(w);
            return;
        }
        c->sending = 1;
    }
}

/* ---- readiness ------------------------------------------------------------------ */

static void reopen(daemon *d, ld_spool_entry *e);

/* ready_degraded starts without Redis: with a spool, once a connection
 * attempt has failed, intake takes life-safety events into the spool and
 * holds the rest, and the incidents a previous run spooled are opened now so
 * their tasks reach the terminals during the outage. Recovery runs when
 * Redis comes (on_store_state) and opens intake to everything when done. */
static void ready_degraded(daemon *d)
{
    d->ready_logged = d->degraded_start = 1;
    ld_ingest_hold(&d->ingest, "redis unavailable since start: only life-safety events are "
                   "taken; send again");
    ld_ingest_spool_only(&d->ingest, 1);
    size_t n = 0;
    for (ld_spool_entry *e = ld_spool_first(&d->spool); e; e = e->next, n++) reopen(d, e);
    ld_log(LD_NOTICE, "READY", "linkd %s ready, degraded: redis unavailable, life-safety events "
           "are spooled and dispatched, others answered RETRY_LATER until redis returns and "
           "recovery is done; %zu spooled events of an earlier run opened; rules %s (version "
           "%s, %d routes), ingest %s, terminals %s, feed %s", LINKD_VERSION, n, d->rules->dir,
           d->rules->version, d->rules->nroutes, d->o->ingest_url, d->o->terminals_url,
           d->o->feed_url);
    ld_notify_ready(&d->notify, "degraded: redis unavailable since start; life-safety events "
                    "spooled, others answered RETRY_LATER");
}

static void maybe_ready(daemon *d)
{
    if (d->ready_logged || !d->listening || d->stopping) return;
    if (!d->recovered || !ld_store_up(&d->store)) {
        /* A failed connection attempt (or a recovery cut short) counts a reconnect. */
        if (d->spooling && !ld_store_up(&d->store) && d->store.stats.reconnects > 0)
            ready_degraded(d);
        return;
    }
    d->ready_logged = 1;
    ld_log(LD_NOTICE, "READY", "linkd %s ready: rules %s (version %s, %d departments, %d "
           "terminals, %d routes), ingest %s, terminals %s, feed %s, time scale %g",
           LINKD_VERSION, d->rules->dir, d->rules->version, d->rules->ndepartments,
           d->rules->nterminals, d->rules->nroutes, d->o->ingest_url, d->o->terminals_url,
           d->o->feed_url, d->clock.scale);
    char status[160];
    snprintf(status, sizeof status, "ready: rules version %s, %d routes", d->rules->version,
             d->rules->nroutes);
    ld_notify_ready(&d->notify, status);
}

static void catch_up(daemon *d);

static void on_caught_up(void *arg, int status)
{
    daemon *d = arg;
    if (status == 0) d->store.doubt = 0; /* else: again soon (retry_recovery) */
}

/* catch_up opens what intake calls cut off by a lost connection may have
 * appended (store.h: doubt), once Redis is back and recovery is done. */
static void catch_up(daemon *d)
{
    if (!d->store.doubt || !d->recovered || d->recovery.running || d->stopping) return;
    ld_recover_replay(&d->recovery, &d->store, &d->engine, d->store.doubt_after, on_caught_up, d);
}

static void on_recovered(void *arg, int status)
{
    daemon *d = arg;
    if (status != 0 || d->stopping) return; /* runs again when Redis is back */
    if (ld_stream_id_cmp(d->recovery.mark, d->store.last_id) > 0)
        memcpy(d->store.last_id, d->recovery.mark, sizeof d->store.last_id);
    d->recovered = 1;
    ld_ingest_hold(&d->ingest, NULL);
    ld_ingest_spool_only(&d->ingest, 0);
    if (d->degraded_start) {
        d->degraded_start = 0;
        ld_log(LD_NOTICE, "INTAKE-OPEN", "redis is back and recovery is done: intake takes "
               "every event");
        ld_notify_status(&d->notify, "ready: redis is back, recovery done");
    }
    maybe_ready(d);
    catch_up(d);
    if (d->spooling) reconcile_spool(d);
}

/* A recovery or catch-up that failed while Redis stayed connected (it
 * answers LOADING while it reads its append-only file back after a restart)
 * is tried again from the flush timer, every RECOVERY_RETRY_MS, instead of
 * waiting for a reconnection that will not come. */
enum { RECOVERY_RETRY_MS = 250 };

static void retry_recovery(daemon *d)
{
    if (!ld_store_up(&d->store) || d->recovery.running || d->stopping) return;
    if (d->recovered && !d->store.doubt) return;
    uint64_t now = ld_mono_ms();
    if (now < d->recovery_retry_at) return;
    d->recovery_retry_at = now + RECOVERY_RETRY_MS;
    if (d->recovered) {
        catch_up(d);
        return;
    }
    if (ld_recover_start(&d->recovery, &d->store, &d->engine, on_recovered, d) != 0)
        ld_log_rl(LD_WARN, "RECOVER-RETRY", "cannot start recovery; trying again");
}

static void on_store_state(void *arg, int up)
{
    daemon *d = arg;
    if (up) write_claims(d); /* before recovery or any new claim */
    if (d->degraded_start && !d->stopping)
        ld_ingest_hold(&d->ingest, up ? "recovering after a restart: send again"
                                      : "redis unavailable since start: only life-safety "
                                        "events are taken; send again");
    if (up && !d->recovered && !d->recovery.running && !d->stopping) {
        d->recovery_retry_at = ld_mono_ms() + RECOVERY_RETRY_MS;
        if (ld_recover_start(&d->recovery, &d->store, &d->engine, on_recovered, d) != 0)
            ld_log(LD_WARN, "RECOVER-RETRY", "cannot start recovery; retrying when redis returns");
    }
    if (up) {
        if (d->ready_logged && !d->degraded_start)
            ld_notify_status(&d->notify, "ready: redis is back");
        maybe_ready(d);
        catch_up(d);
        if (d->spooling) reconcile_spool(d);
    } else if (!d->stopping) {
        ld_log(LD_WARN, "DEGRADED", "redis unavailable: intake answers RETRY_LATER%s",
               d->spooling ? ", except life-safety events, which are spooled and dispatched"
                           : "");
        ld_notify_status(&d->notify, "degraded: redis unavailable, intake answers RETRY_LATER");
    }
}

/* ---- stopping ---------------------------------------------------------------------- */

static void summary(const daemon *d)
{
    const ld_ingest_stats *i = &d->ingest.stats;
    const ld_engine_stats *e = &d->engine.stats;
    char reasons[256] = "";
    size_t off = 0;
    for (int r = 0; r < LD_REJECT_COUNT; r++) {
        if (!i->rejected_by[r] || off >= sizeof reasons) continue;
        int w = snprintf(reasons + off, sizeof reasons - off, "%s%s %llu", off ? ", " : " (",
                         ld_reject_label(r), (unsigned long long)i->rejected_by[r]);
        if (w > 0) off += (size_t)w;
    }
    if (off && off + 1 < sizeof reasons) reasons[off] = ')', reasons[off + 1] = '\0';
    ld_log(LD_NOTICE, "SUMMARY",
           "events %llu: accepted %llu (spooled %llu), duplicate %llu, rejected %llu%s, "
           "retry_later %llu (rate limited %llu); "
           "incidents opened %llu, closed %llu, open %zu; tasks dispatched %llu, delivered "
           "%llu, acknowledged %llu, resolved %llu; escalations %llu (reached command %llu, "
           "overdue at top %llu, fenced %llu, unfenced %llu, claimed in the spool %llu, also "
           "made elsewhere %llu); terminal polls %llu; redis commands "
           "%llu, errors %llu, "
           "timeouts %llu",
           (unsigned long long)i->events, (unsigned long long)i->accepted,
           (unsigned long long)i->spooled, (unsigned long long)i->duplicate,
           (unsigned long long)i->rejected, reasons,
           (unsigned long long)i->retry_later, (unsigned long long)i->rate_limited,
           (unsigned long long)e->incidents_opened,
           (unsigned long long)e->incidents_closed, d->engine.open_incidents,
           (unsigned long long)e->tasks_dispatched, (unsigned long long)e->tasks_delivered,
           (unsigned long long)e->acknowledged, (unsigned long long)e->resolved,
           (unsigned long long)e->escalations, (unsigned long long)e->reached_command,
           (unsigned long long)e->overdue_at_top, (unsigned long long)e->escalations_fenced,
           (unsigned long long)e->escalations_unfenced,
           (unsigned long long)(d->spooling ? d->spool.stats.claims : 0),
           (unsigned long long)d->claims_doubled, (unsigned long long)d->dispatch.stats.polls,
           (unsigned long long)d->store.stats.commands,
           (unsigned long long)d->store.stats.errors, (unsigned long long)d->store.stats.timeouts);
}

static void on_store_stopped(void *arg)
{
    daemon *d = arg;
    uv_close((uv_handle_t *)&d->before_poll, NULL);
    uv_close((uv_handle_t *)&d->deadline, NULL);
    uv_close((uv_handle_t *)&d->drain_check, NULL);
    uv_close((uv_handle_t *)&d->flush, NULL);
    uv_close((uv_handle_t *)&d->sigterm, NULL);
    uv_close((uv_handle_t *)&d->sigint, NULL);
    uv_close((uv_handle_t *)&d->sighup, NULL);
    ld_notify_close(&d->notify);
}

/* writes_pending: state changes not yet handed to Redis and confirmed. */
static int writes_pending(const daemon *d)
{
    return d->engine.dirty_head || d->audit.queued || ld_reload_log_unwritten(&d->reload_log);
}

/* The last writes: nothing changes state any more (intake, terminals and
 * HTTP are closed, deadlines stopped), so write ticks run until every record
 * and audit line is in Redis, or Redis is gone, or the time is up. */
static void on_final_flush(uv_timer_t *t)
{
    daemon *d = t->data;
    flush_dirty(d);
    uint64_t waited = uv_now(&d->loop) - d->drain_started;
    int pending = writes_pending(d);
    if (pending && ld_store_up(&d->store) && waited < d->o->redis_timeout_ms + 2000ULL) return;
    if (pending)
        ld_log(LD_WARN, "STOP-UNWRITTEN", "stopping with writes not in redis (%s): %zu audit "
               "lines%s", ld_store_up(&d->store) ? "time is up" : "redis is away",
               d->audit.queued, d->engine.dirty_head ? ", incident records (recovery "
               "rebuilds them from ld:events)" : "");
    uv_timer_stop(t);
    ld_store_stop(&d->store, on_store_stopped, d);
}

static void finish_stop(daemon *d)
{
    uv_timer_stop(&d->drain_check);
    uv_timer_stop(&d->flush);
    /* Writes first: closing an NNG socket can take seconds (ld_nng_close). */
    flush_dirty(d);
    ld_ingest_close(&d->ingest);
    ld_dispatch_close(&d->dispatch);
    ld_http_close(d->http);
    d->drain_started = uv_now(&d->loop);
    uv_timer_start(&d->drain_check, on_final_flush, 0, 10);
}

/* Waits until no request waits for Redis: each one is answered before intake closes. */
static void on_drain_check(uv_timer_t *t)
{
    daemon *d = t->data;
    uint64_t waited = uv_now(&d->loop) - d->drain_started;
    if (d->ingest.inflight == 0 || waited > d->o->redis_timeout_ms + 2000) {
        if (d->ingest.inflight)
            ld_log(LD_WARN, "DRAIN", "%zu requests still wait for redis after %llums; their "
                   "producers will resend", d->ingest.inflight, (unsigned long long)waited);
        finish_stop(d);
    }
}

static void begin_stop(daemon *d, const char *why)
{
    if (d->stopping) return;
    d->stopping = 1;
    ld_log(LD_NOTICE, "STOPPING", "%s: draining intake", why);
    ld_notify_stopping(&d->notify);
    uv_timer_stop(&d->deadline);
    if (!d->listening) {
        finish_stop(d);
        return;
    }
    ld_ingest_hold(&d->ingest, "shutting down: send again");
    ld_ingest_spool_only(&d->ingest, 0);
    d->drain_started = uv_now(&d->loop);
    uv_timer_start(&d->drain_check, on_drain_check, 0, 10);
}

/* same_shape says whether <b> has the departments and terminals of <a>, at
 * the same indexes: open tasks and terminal slots hold those indexes. */
static int same_shape(const ld_rules *a, const ld_rules *b, char *why, size_t len)
{
    if (a->ndepartments != b->ndepartments || a->nterminals != b->nterminals ||
        a->command != b->command) {
        snprintf(why, len, "departments or terminals were added or removed");
        return 0;
    }
    for (int i = 0; i < a->ndepartments; i++)
        if (strcmp(a->departments[i].id, b->departments[i].id) != 0) {
            snprintf(why, len, "department '%s' became '%s'", a->departments[i].id,
                     b->departments[i].id);
            return 0;
        }
    for (int i = 0; i < a->nterminals; i++)
        if (strcmp(a->terminals[i].id, b->terminals[i].id) != 0 ||
            a->terminals[i].dept != b->terminals[i].dept) {
            snprintf(why, len, "terminal '%s' changed", a->terminals[i].id);
            return 0;
        }
    return 1;
}

/* record_reload writes the outcome of a reload attempt to ld:reloads
 * (reloads.c): who asked, the versions, the errors and the first of them. */
static void record_reload(daemon *d, const char *who, const char *from, const char *to,
                          const ld_diag *diag, const char *refusal)
{
    char msg[600];
    if (d->last_reload_ok)
        snprintf(msg, sizeof msg, "rules %s version %s -> %s (%d routes)", d->o->rules_dir, from,
                 to, d->rules->nroutes);
    else
        snprintf(msg, sizeof msg, "%s; running rules unchanged (version %s)", refusal,
                 d->rules->version);
    ld_reload_outcome o = {ld_wall_ms(), who, d->last_reload_ok, from, to, d->rules->nroutes,
                           diag->nerrors, diag->nwarnings, msg};
    ld_reload_log_add(&d->reload_log, &o);
}

/* reload_rules builds the new set beside the running one and swaps the
 * pointer only if it loads without error and keeps the same departments and
 * terminals; otherwise the running rules stay, and the log says why (every
 * error with file:line:col). Routes, budgets, levels and waits may change:
 * new tasks use them, open tasks keep their deadlines and climb the new
 * chains from where they are. <who> says what asked ("SIGHUP", "http");
 * <msg> (may be NULL) gets the outcome in one line. Returns 1 if the new set
 * runs. */
static int reload_rules(daemon *d, const char *who, char *msg, size_t len)
{
    ld_rules *next = NULL;
    ld_diag diag;
    ld_diag_init(&diag);
    ld_notify_reloading(&d->notify);
    int rv = ld_rules_load(&next, d->o->rules_dir, &diag);
    char line[1024];
    for (size_t i = 0; i < diag.n; i++) {
        ld_diag_format(&diag, i, line, sizeof line);
        ld_log(diag.v[i].severity == LD_DIAG_ERROR ? LD_ERR : LD_WARN, "RULES", "%s", line);
    }
    char why[160] = "", from[sizeof d->rules->version];
    memcpy(from, d->rules->version, sizeof from);
    d->reloads++;
    d->reload_attempt_at = ld_wall_ms();
    d->last_reload_ok = 0;
    char first[600] = "";
    for (size_t i = 0; i < diag.n && !first[0]; i++)
        if (diag.v[i].severity == LD_DIAG_ERROR) ld_diag_format(&diag, i, first, sizeof first);
    if (rv != 0) {
        ld_log(LD_ERR, "RELOAD-FAILED", "(%s) %zu error%s in %s; running rules unchanged "
               "(version %s)", who, diag.nerrors, diag.nerrors == 1 ? "" : "s",
               d->o->rules_dir, d->rules->version);
        if (msg)
            snprintf(msg, len, "%zu error%s, running rules unchanged (version %s); first: %s",
                     diag.nerrors, diag.nerrors == 1 ? "" : "s", d->rules->version,
                     first[0] ? first : "see the log");
    } else if (!same_shape(d->rules, next, why, sizeof why)) {
        ld_log(LD_ERR, "RELOAD-FAILED", "(%s) %s: restart linkd to change departments or "
               "terminals; running rules unchanged (version %s)", who, why, d->rules->version);
        if (msg)
            snprintf(msg, len, "%s: restart linkd to change departments or terminals; running "
                     "rules unchanged (version %s)", why, d->rules->version);
        ld_rules_free(next);
        next = NULL;
    } else {
        ld_rules *old = d->rules;
        d->rules = next;
        ld_engine_set_rules(&d->engine, next);
        d->last_reload_ok = 1;
        d->rules_loaded_at = d->reload_attempt_at;
        ld_log(LD_NOTICE, "RELOADED", "(%s) rules %s version %s -> %s (%d routes)", who,
               d->o->rules_dir, old->version, next->version, next->nroutes);
        if (msg)
            snprintf(msg, len, "rules %s version %s -> %s (%d routes)", d->o->rules_dir,
                     old->version, next->version, next->nroutes);
        ld_rules_free(old);
    }
    if (!d->last_reload_ok) d->reload_failures++;
    record_reload(d, who, from, next ? next->version : NULL, &diag,
                  first[0] ? first : why[0] ? why : "see the log");
    ld_diag_fini(&diag);
    char status[160];
    snprintf(status, sizeof status, "ready: rules version %s, %d routes%s", d->rules->version,
             d->rules->nroutes, next ? "" : " (last reload refused)");
    if (d->ready_logged) ld_notify_ready(&d->notify, status);
    return d->last_reload_ok;
}

static int http_reload(void *arg, const char *who, char *msg, size_t len)
{
    return reload_rules(arg, who, msg, len);
}

static void http_reloads(void *arg, ld_buf *b)
{
    const daemon *d = arg;
    ld_reload_log_json(&d->reload_log, b);
}

static void on_signal(uv_signal_t *h, int signum)
{
    daemon *d = h->data;
    if (signum == SIGHUP) {
        reload_rules(d, "SIGHUP", NULL, 0);
        return;
    }
    begin_stop(d, signum == SIGTERM ? "SIGTERM" : "SIGINT");
}

/* ---- run ------------------------------------------------------------------------------ */

static void http_status(void *arg, ld_http_status *st)
{
    const daemon *d = arg;
    st->rules_version = d->rules->version;
    st->rules_dir = d->rules->dir;
    st->rules_loaded_at_ms = d->rules_loaded_at;
    st->reload_attempt_at_ms = d->reload_attempt_at;
    st->last_reload_ok = d->last_reload_ok;
    st->reloads = d->reloads;
    st->reload_failures = d->reload_failures;
    st->reload_records_unwritten = ld_reload_log_unwritten(&d->reload_log);
    st->audit_appended = d->audit.stats.appended;
    st->audit_written = d->audit.stats.written;
    st->audit_resent = d->audit.stats.resent;
    st->audit_dropped = d->audit.stats.dropped;
    st->audit_unexpired = d->audit.stats.unexpired;
    st->audit_waiting = d->audit.queued;
    st->intake_open = d->ready_logged;
    st->life_safety_only = d->degraded_start || (d->spooling && !ld_store_up(&d->store));
    st->stopping = d->stopping;
}

/* open_http serves metrics, health, the API and the board on the loop, and
 * has the engine report every change to it. */
static int open_http(daemon *d)
{
    if (!d->o->http_listen) return 0;
    ld_http_config cfg;
    ld_http_config_defaults(&cfg);
    cfg.listen = d->o->http_listen;
    cfg.token_file = d->o->admin_token_file;
    cfg.board_max = d->o->board_max;
    ld_http_sources src = {&d->loop, &d->engine, &d->store, &d->ingest, &d->dispatch,
                           &d->clock, http_status, d, http_reload, http_reloads};
    int rv = ld_http_open(&d->http, &cfg, &src);
    if (rv != 0) return rv;
    return 0;
}

/* observe hands every state change of the engine to the audit trail and,
 * with --http, to the metrics and the board. */
static void observe(void *arg, const ld_observation *ob)
{
    daemon *d = arg;
    ld_audit_observe(&d->audit, ob);
    if (d->http) ld_http_observe(d->http, ob);
}

static int load_rules(daemon *d)
{
    ld_diag diag;
    ld_diag_init(&diag);
    int rv = ld_rules_load(&d->rules, d->o->rules_dir, &diag);
    ld_diag_print(&diag, stderr);
    if (rv != 0)
        fprintf(stderr, "linkd: %zu error%s; rules NOT loaded\n", diag.nerrors,
                diag.nerrors == 1 ? "" : "s");
    ld_diag_fini(&diag);
    return rv;
}

/* read_password reads the first line of <path>, before the loop runs. */
static int read_password(const char *path, char *buf, size_t len)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "linkd: --redis-password-file %s: %s\n", path, strerror(errno));
        return -1;
    }
    int ok = fgets(buf, (int)len, f) != NULL;
    fclose(f);
    buf[ok ? strcspn(buf, "\r\n") : 0] = '\0';
    if (!buf[0]) {
        fprintf(stderr, "linkd: --redis-password-file %s: empty or unreadable\n", path);
        return -1;
    }
    return 0;
}

/* check_endpoints refuses plain listeners beyond loopback and sets up TLS for
 * tls+ ones. Returns a sysexits code, EX_OK to go on. */
static int check_endpoints(const ld_options *o)
{
    const char *flags[] = {"--ingest", "--terminals", "--feed"};
    const char *urls[] = {o->ingest_url, o->terminals_url, o->feed_url};
    char why[512];
    int tls = 0;
    for (int i = 0; i < 3; i++) {
        switch (ld_endpoint_check(flags[i], urls[i], o->insecure_listen, why, sizeof why)) {
        case LD_ENDPOINT_REFUSED:
            fprintf(stderr, "linkd: %s\n", why);
            return EX_CONFIG;
        case LD_ENDPOINT_INSECURE: ld_log(LD_WARN, "INSECURE-LISTEN", "%s", why); break;
        default: break;
        }
        tls |= ld_endpoint_is_tls(urls[i]);
    }
    /* The HTTP side (metrics, API, board) is plain HTTP: loopback unless allowed. */
    if (o->http_listen && strchr(o->http_listen, ':')) {
        char url[300];
        snprintf(url, sizeof url, "tcp://%s", o->http_listen);
        switch (ld_endpoint_check("--http", url, o->insecure_listen, why, sizeof why)) {
        case LD_ENDPOINT_REFUSED:
            fprintf(stderr, "linkd: --http %s: refusing to serve HTTP beyond loopback (it has no "
                    "TLS); put a TLS proxy in front, or --insecure-listen to accept the risk\n",
                    o->http_listen);
            return EX_CONFIG;
        case LD_ENDPOINT_INSECURE: ld_log(LD_WARN, "INSECURE-LISTEN", "%s", why); break;
        default: break;
        }
    }
    if (!tls && !o->tls_cert && !o->tls_key) return EX_OK;
    ld_tls_files f = {.cert = o->tls_cert, .key = o->tls_key, .ca = o->tls_ca};
    if (ld_tls_server_setup(&f, why, sizeof why) != 0) {
        fprintf(stderr, "linkd: %s\n", why);
        return EX_CONFIG;
    }
    if (!o->tls_ca)
        for (int i = 0; i < 3; i++)
            if (ld_endpoint_is_tls(urls[i]))
                ld_log(LD_NOTICE, "TLS", "%s %s: TLS without client certificates (no --tls-ca)",
                       flags[i], urls[i]);
    return EX_OK;
}

/* make_instance names this process in its fence claims: random, so two
 * linkd on one host, or a restart, never share a name. */
static void make_instance(daemon *d)
{
    uint64_t r = 0;
    if (uv_random(NULL, NULL, &r, sizeof r, 0, NULL) != 0)
        r = ld_mono_ns() ^ ((uint64_t)uv_os_getpid() << 32) ^ ld_wall_ms();
    snprintf(d->instance, sizeof d->instance, "%016llx", (unsigned long long)r);
}

int ld_daemon_run(const ld_options *o)
{
    daemon *d = calloc(1, sizeof *d);
    int code = EX_OK, rv;
    if (!d) return EX_OSERR;
    d->o = o;
    d->armed_due = UINT64_MAX;
    d->last_reload_ok = 1;
    signal(SIGPIPE, SIG_IGN);
    if (load_rules(d) != 0) {
        free(d);
        return EX_DATAERR;
    }
    d->rules_loaded_at = ld_wall_ms();
    if ((code = check_endpoints(o)) != EX_OK) {
        ld_rules_free(d->rules);
        free(d);
        return code;
    }
    uv_loop_init(&d->loop);
    ld_clock_init_real(&d->clock, o->time_scale);
    make_instance(d);
    ld_engine_hooks hooks = {.ctx = &d->dispatch, .feed = ld_dispatch_feed,
                             .listening = ld_dispatch_listening, .wake = ld_dispatch_wake,
                             .fence = fence_escalation, .fence_ctx = d,
                             .observe = observe, .observe_ctx = d};
    ld_audit_init(&d->audit, &d->store, &d->engine);
    ld_reload_log_init(&d->reload_log, &d->store);
    if (ld_engine_init(&d->engine, d->rules, &d->clock, &hooks) != 0) {
        code = EX_OSERR;
        goto out;
    }
    if (ld_store_init(&d->store, &d->loop, o->redis_url, o->redis_timeout_ms, on_store_state, d) !=
        0) {
        /* Not echoed: the URL may carry a password. */
        fprintf(stderr, "linkd: --redis: expected redis://[user:password@]host:port[/db] or "
                "unix://[user:password@]/path[?db=N]\n");
        code = EX_USAGE;
        goto out;
    }
    if (o->dedup_window_s) d->store.dedup_window_s = o->dedup_window_s;
    if (o->redis_password_file && read_password(o->redis_password_file, d->store.password,
                                                sizeof d->store.password) != 0) {
        code = EX_CONFIG;
        goto out;
    }
    if (o->spool_dir) {
        if ((rv = ld_spool_open(&d->spool, &d->loop, o->spool_dir, o->spool_max_events,
                                o->spool_max_bytes)) != 0) {
            fprintf(stderr, "linkd: --spool %s: %s\n", o->spool_dir, ld_strerror(rv));
            ld_spool_fini(&d->spool);
            code = EX_CANTCREAT;
            goto out;
        }
        d->spooling = 1;
        d->recovery.spool = &d->spool;
    }
    uv_timer_init(&d->loop, &d->deadline);
    d->deadline.data = d;
    uv_timer_init(&d->loop, &d->drain_check);
    d->drain_check.data = d;
    uv_timer_init(&d->loop, &d->flush);
    d->flush.data = d;
    uv_timer_start(&d->flush, on_flush, o->flush_ms, o->flush_ms);
    uv_prepare_init(&d->loop, &d->before_poll);
    d->before_poll.data = d;
    uv_prepare_start(&d->before_poll, on_before_poll);
    uv_signal_init(&d->loop, &d->sigterm);
    uv_signal_init(&d->loop, &d->sigint);
    uv_signal_init(&d->loop, &d->sighup);
    d->sigterm.data = d->sigint.data = d->sighup.data = d;
    uv_signal_start(&d->sigterm, on_signal, SIGTERM);
    uv_signal_start(&d->sigint, on_signal, SIGINT);
    uv_signal_start(&d->sighup, on_signal, SIGHUP);
    ld_notify_start(&d->notify, &d->loop);
    ld_store_start(&d->store);

    if ((rv = ld_dispatch_open(&d->dispatch, &d->loop, &d->engine, o->terminals_url, o->feed_url,
                               o->max_message, o->offline_after_ms)) != 0 ||
        (rv = open_http(d)) != 0 ||
        (rv = ld_ingest_open(&d->ingest, &d->loop, o->ingest_url, o->ingest_contexts,
                             o->max_message, o->source_rate, &d->store, &d->engine)) != 0) {
        ld_log(LD_ERR, "START", "cannot open the sockets: %s", ld_strerror(rv));
        code = rv == LD_EINVAL ? EX_USAGE : EX_UNAVAILABLE;
        d->stopping = 1;
        ld_http_close(d->http);
        ld_dispatch_close(&d->dispatch);
        ld_store_stop(&d->store, on_store_stopped, d);
    } else {
        d->listening = 1;
        if (d->spooling) d->ingest.spool = &d->spool;
        if (!d->recovered) ld_ingest_hold(&d->ingest, "recovering after a restart: send again");
        maybe_ready(d);
    }
    uv_run(&d->loop, UV_RUN_DEFAULT);
    if (code == EX_OK) summary(d);
out:
    while (d->fence_answers) { /* the loop has stopped: nothing to escalate any more */
        struct fence_claim *c = d->fence_answers;
        d->fence_answers = c->next;
        free(c);
    }
    ld_http_free(d->http);
    ld_audit_fini(&d->audit);
    ld_dispatch_fini(&d->dispatch);
    ld_engine_fini(&d->engine);
    if (d->spooling) {
        if (d->spool.count)
            ld_log(LD_NOTICE, "SPOOL-KEPT", "%s keeps %zu events for redis; the next start "
                   "copies them", d->spool.path, d->spool.count);
        ld_spool_fini(&d->spool);
    }
    if (uv_loop_close(&d->loop) != 0) ld_log(LD_WARN, "LOOP", "handles left open at exit");
    ld_rules_free(d->rules);
    ld_tls_server_teardown();
    free(d->recbuf);
    free(d);
    return code;
}
