#include "load.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/err.h"
#include "core/map.h"

enum { MAX_BATCH = 64 };

typedef struct accepted_ev {
    char key[96];            /* "<source>|<event id>" */
    char incident[64];
    int category;            /* index into opts.categories */
} accepted_ev;

typedef struct producer {
    ldh_load *l;
    pthread_t thread;
    int index;
    char source[48];
    uint64_t seq;
    ldh_event ev[MAX_BATCH];
    int cat[MAX_BATCH];
    bool done[MAX_BATCH];         /* answered ACCEPTED, DUPLICATE or REJECTED */
    int npending;
} producer;

typedef struct terminal {
    ldh_load *l;
    pthread_t thread;
    int index;
} terminal;

struct ldh_load {
    ldh_load_opts o;
    pthread_mutex_t mu;
    atomic_bool stop, paused;
    atomic_int pending;           /* events held by producers, unanswered */
    producer prod[LDH_LOAD_MAX_THREADS];
    terminal term[LDH_LOAD_MAX_THREADS];
    int nprod, nterm;
    accepted_ev *acc;             /* under mu */
    size_t nacc, capacc;
    ld_map reached;               /* incident id -> reach; under mu */
    ldh_load_stats st;            /* under mu */
    char first_reject[256];
};

/* ---- producers -------------------------------------------------------------- */

static void record_accepted(ldh_load *l, const producer *p, int i, const char *incident, bool dup)
{
    pthread_mutex_lock(&l->mu);
    if (l->nacc == l->capacc) {
        size_t cap = l->capacc ? 2 * l->capacc : 4096;
        accepted_ev *a = realloc(l->acc, cap * sizeof *a);
        if (!a) {
            pthread_mutex_unlock(&l->mu);
            return;
        }
        l->acc = a, l->capacc = cap;
    }
    accepted_ev *a = &l->acc[l->nacc++];
    snprintf(a->key, sizeof a->key, "%s|%s", p->source, p->ev[i].event_id);
    snprintf(a->incident, sizeof a->incident, "%s", incident ? incident : "");
    a->category = p->cat[i];
    if (dup) l->st.duplicate_on_resend++;
    else l->st.accepted++;
    l->st.accepted_by_category[p->cat[i]]++;
    pthread_mutex_unlock(&l->mu);
}

static void refill(producer *p)
{
    ldh_load *l = p->l;
    for (int i = 0; i < l->o.batch; i++) {
        int c = p->index % l->o.ncategories;
        ldh_event_call(&p->ev[i], l->o.categories[c]);
        snprintf(p->ev[i].source_id, sizeof p->ev[i].source_id, "%s", p->source);
        snprintf(p->ev[i].event_id, sizeof p->ev[i].event_id, "%s-%llu", p->source,
                 (unsigned long long)p->seq++);
        p->cat[i] = c;
        p->done[i] = false;
    }
    p->npending = l->o.batch;
    atomic_fetch_add(&l->pending, p->npending);
}

/* send_pending sends the events in hand once; answered ones leave the hand. */
static void send_pending(producer *p)
{
    ldh_load *l = p->l;
    Linkd__V1__Envelope *envs[MAX_BATCH];
    int idx[MAX_BATCH], n = 0;
    for (int i = 0; i < l->o.batch; i++)
        if (!p->done[i]) idx[n] = i, envs[n++] = &p->ev[i].env;
    Linkd__V1__IngestRequest req = LINKD__V1__INGEST_REQUEST__INIT;
    req.events = envs;
    req.n_events = (size_t)n;
    size_t len = linkd__v1__ingest_request__get_packed_size(&req);
    uint8_t *buf = malloc(len + 1);
    if (!buf) return;
    linkd__v1__ingest_request__pack(&req, buf);
    void *rep = NULL;
    size_t rep_len = 0;
    int rv = ldh_reqrep(l->o.linkd->ingest, buf, len, &rep, &rep_len, l->o.reply_ms);
    free(buf);
    pthread_mutex_lock(&l->mu);
    l->st.requests++;
    if (rv != 0) l->st.no_answer++;
    pthread_mutex_unlock(&l->mu);
    if (rv != 0) {
        ldh_sleep_ms(100);
        return;
    }
    Linkd__V1__IngestReply *r = linkd__v1__ingest_reply__unpack(NULL, rep_len, rep);
    nng_free(rep, rep_len);
    if (!r || r->n_results != (size_t)n) {
        if (r) linkd__v1__ingest_reply__free_unpacked(r, NULL);
        ldh_sleep_ms(100);
        return;
    }
    int answered = 0, retry = 0;
    for (int k = 0; k < n; k++) {
        const Linkd__V1__IngestResult *res = r->results[k];
        int i = idx[k];
        switch (res->result) {
        case LINKD__V1__RESULT__RESULT_ACCEPTED:
        case LINKD__V1__RESULT__RESULT_DUPLICATE:
            record_accepted(l, p, i, res->incident_id,
                            res->result == LINKD__V1__RESULT__RESULT_DUPLICATE);
            p->done[i] = true, answered++;
            break;
        case LINKD__V1__RESULT__RESULT_REJECTED:
            pthread_mutex_lock(&l->mu);
            l->st.rejected++;
            if (!l->first_reject[0])
                snprintf(l->first_reject, sizeof l->first_reject, "%s",
                         res->reason ? res->reason : "(no reason)");
            pthread_mutex_unlock(&l->mu);
            p->done[i] = true, answered++;
            break;
        default:
            retry++; /* kept in hand, sent again */
            break;
        }
    }
    linkd__v1__ingest_reply__free_unpacked(r, NULL);
    atomic_fetch_sub(&l->pending, answered);
    p->npending -= answered;
    if (retry) {
        pthread_mutex_lock(&l->mu);
        l->st.retry_later += (uint64_t)retry;
        pthread_mutex_unlock(&l->mu);
        ldh_sleep_ms(200);
    }
}

static void *produce(void *arg)
{
    producer *p = arg;
    ldh_load *l = p->l;
    while (!atomic_load(&l->stop)) {
        if (p->npending == 0) {
            if (atomic_load(&l->paused)) {
                ldh_sleep_ms(20);
                continue;
            }
            refill(p);
        }
        send_pending(p);
        ldh_sleep_ms((unsigned)l->o.period_ms);
    }
    return NULL;
}

/* ---- terminals --------------------------------------------------------------- */

/* One incident seen by the terminals: the map's key lives here. */
typedef struct reach {
    uint32_t mask;           /* bit t + 1: terminals[t] was handed one of its tasks */
    char incident[];
} reach;

static void note_reached(ldh_load *l, int term, const char *incident)
{
    pthread_mutex_lock(&l->mu);
    reach *r = ld_map_get(&l->reached, incident);
    if (!r) {
        size_t n = strlen(incident) + 1;
        r = malloc(sizeof *r + n);
        if (r) {
            r->mask = 0;
            memcpy(r->incident, incident, n);
            if (ld_map_put(&l->reached, r->incident, r) != 0) free(r), r = NULL;
        }
    }
    if (r) r->mask |= 2u << term;
    pthread_mutex_unlock(&l->mu);
}

static void *poll_terminal(void *arg)
{
    terminal *t = arg;
    ldh_load *l = t->l;
    const char *id = l->o.terminals[t->index];
    char *got[64];
    size_t ngot = 0;
    while (!atomic_load(&l->stop)) {
        Linkd__V1__PollRequest req = LINKD__V1__POLL_REQUEST__INIT;
        Linkd__V1__TaskUpdate upd[64], *updp[64];
        req.terminal_id = (char *)id;
        req.has_wait_ms = 1;
        req.wait_ms = 500;
        req.received = got;
        req.n_received = ngot;
        for (size_t i = 0; i < ngot; i++) {
            linkd__v1__task_update__init(&upd[i]);
            upd[i].task_id = got[i];
            upd[i].has_kind = 1;
            upd[i].kind = LINKD__V1__UPDATE_KIND__UPDATE_KIND_RESOLVED;
            upd[i].disposition = "handled";
            updp[i] = &upd[i];
        }
        req.updates = updp;
        req.n_updates = ngot;
        size_t len = linkd__v1__poll_request__get_packed_size(&req);
        uint8_t *buf = malloc(len + 1);
        if (!buf) break;
        linkd__v1__poll_request__pack(&req, buf);
        void *rep = NULL;
        size_t rep_len = 0;
        int rv = ldh_reqrep(l->o.linkd->terminals, buf, len, &rep, &rep_len, 3000);
        free(buf);
        Linkd__V1__PollReply *r =
            rv == 0 ? linkd__v1__poll_reply__unpack(NULL, rep_len, rep) : NULL;
        if (rv == 0) nng_free(rep, rep_len);
        if (!r) {
            /* No answer: the receipts and updates go again with the next poll. */
            ldh_sleep_ms(100);
            continue;
        }
        for (size_t i = 0; i < ngot; i++) free(got[i]);
        ngot = 0;
        uint64_t resolved = 0;
        for (size_t i = 0; i < r->n_update_results; i++)
            resolved += r->update_results[i]->result == LINKD__V1__RESULT__RESULT_ACCEPTED;
        for (size_t i = 0; i < r->n_tasks && ngot < 64; i++) {
            const Linkd__V1__Task *task = r->tasks[i];
            if (!task->task_id || !task->incident_id) continue;
            note_reached(l, t->index, task->incident_id);
            pthread_mutex_lock(&l->mu);
            l->st.tasks++;
            l->st.redelivered += task->redelivery;
            pthread_mutex_unlock(&l->mu);
            got[ngot++] = strdup(task->task_id);
            if (!got[ngot - 1]) ngot--;
        }
        pthread_mutex_lock(&l->mu);
        l->st.resolved += resolved;
        pthread_mutex_unlock(&l->mu);
        linkd__v1__poll_reply__free_unpacked(r, NULL);
    }
    for (size_t i = 0; i < ngot; i++) free(got[i]);
    return NULL;
}

/* ---- the whole ------------------------------------------------------------------ */

ldh_load *ldh_load_start(const ldh_load_opts *o)
{
    ldh_load *l = calloc(1, sizeof *l);
    if (!l) return NULL;
    l->o = *o;
    if (l->o.producers <= 0) l->o.producers = 2;
    if (l->o.producers > LDH_LOAD_MAX_THREADS) l->o.producers = LDH_LOAD_MAX_THREADS;
    if (l->o.batch <= 0) l->o.batch = 5;
    if (l->o.batch > MAX_BATCH) l->o.batch = MAX_BATCH;
    if (l->o.period_ms <= 0) l->o.period_ms = 20;
    if (l->o.reply_ms <= 0) l->o.reply_ms = 3000;
    if (l->o.ncategories <= 0) {
        l->o.categories[0] = LINKD__V1__CALL_CATEGORY__CALL_CATEGORY_FIRE;
        l->o.ncategories = 1;
    }
    if (l->o.nterminals > LDH_LOAD_MAX_THREADS) l->o.nterminals = LDH_LOAD_MAX_THREADS;
    pthread_mutex_init(&l->mu, NULL);
    ld_map_init(&l->reached);
    atomic_init(&l->stop, false);
    atomic_init(&l->paused, false);
    atomic_init(&l->pending, 0);
    for (int i = 0; i < l->o.nterminals; i++) {
        l->term[i] = (terminal){.l = l, .index = i};
        if (pthread_create(&l->term[i].thread, NULL, poll_terminal, &l->term[i]) != 0) break;
        l->nterm++;
    }
    for (int i = 0; i < l->o.producers; i++) {
        producer *p = &l->prod[i];
        p->l = l;
        p->index = i;
        snprintf(p->source, sizeof p->source, "rel-%d-p%d", (int)getpid(), i);
        if (pthread_create(&p->thread, NULL, produce, p) != 0) break;
        l->nprod++;
    }
    if (l->nprod != l->o.producers || l->nterm != l->o.nterminals) {
        ldh_load_stop(l);
        return NULL;
    }
    return l;
}

void ldh_load_pause(ldh_load *l, bool pause)
{
    atomic_store(&l->paused, pause);
}

bool ldh_load_settle(ldh_load *l, int timeout_ms)
{
    uint64_t end = ldh_mono_ms() + (uint64_t)timeout_ms;
    while (atomic_load(&l->pending) > 0) {
        if (ldh_mono_ms() >= end) return false;
        ldh_sleep_ms(20);
    }
    return true;
}

void ldh_load_get_stats(ldh_load *l, ldh_load_stats *out)
{
    pthread_mutex_lock(&l->mu);
    *out = l->st;
    pthread_mutex_unlock(&l->mu);
}

static size_t missing_deliveries(ldh_load *l)
{
    uintptr_t all = 0;
    for (int t = 0; t < l->nterm; t++) all |= 2u << t;
    size_t missing = 0;
    pthread_mutex_lock(&l->mu);
    for (size_t i = 0; i < l->nacc; i++) {
        uint32_t e = l->o.expect[l->acc[i].category];
        uintptr_t want = e ? (uintptr_t)e << 1 : all;
        const reach *r = ld_map_get(&l->reached, l->acc[i].incident);
        uintptr_t got = r ? r->mask : 0;
        for (int t = 0; t < l->nterm; t++) missing += (want & ~got & (2u << t)) != 0;
    }
    pthread_mutex_unlock(&l->mu);
    return missing;
}

size_t ldh_load_await_delivery(ldh_load *l, int timeout_ms)
{
    uint64_t end = ldh_mono_ms() + (uint64_t)timeout_ms;
    size_t missing;
    while ((missing = missing_deliveries(l)) > 0 && ldh_mono_ms() < end) ldh_sleep_ms(100);
    return missing;
}

long ldh_load_check(ldh_load *l, ldh_redis *r)
{
    ld_map in_stream;
    ld_map_init(&in_stream);
    char **keys = NULL;
    size_t nkeys = 0, capkeys = 0;
    long lost = -1;
    char from[64] = "-";
    for (int guard = 0; guard < 10000; guard++) {
        redisReply *rep = ldh_redis_cmd(r, "XRANGE ld:events %s + COUNT 2000", from);
        if (!rep || rep->type != REDIS_REPLY_ARRAY) {
            if (rep) freeReplyObject(rep);
            goto out;
        }
        for (size_t i = 0; i < rep->elements; i++) {
            const redisReply *e = rep->element[i], *f = e->element[1];
            const char *src = "", *eid = "";
            for (size_t j = 0; j + 1 < f->elements; j += 2) {
                if (strcmp(f->element[j]->str, "src") == 0) src = f->element[j + 1]->str;
                else if (strcmp(f->element[j]->str, "eid") == 0) eid = f->element[j + 1]->str;
            }
            if (nkeys == capkeys) {
                capkeys = capkeys ? 2 * capkeys : 4096;
                char **k = realloc(keys, capkeys * sizeof *k);
                if (!k) {
                    freeReplyObject(rep);
                    goto out;
                }
                keys = k;
            }
            size_t kl = strlen(src) + strlen(eid) + 2;
            char *k = malloc(kl);
            if (!k) {
                freeReplyObject(rep);
                goto out;
            }
            snprintf(k, kl, "%s|%s", src, eid);
            keys[nkeys++] = k;
            ld_map_put(&in_stream, k, k);
        }
        size_t n = rep->elements;
        if (n) snprintf(from, sizeof from, "(%s", rep->element[n - 1]->element[0]->str);
        freeReplyObject(rep);
        if (n < 2000) break;
    }
    lost = 0;
    pthread_mutex_lock(&l->mu);
    for (size_t i = 0; i < l->nacc; i++) {
        if (ld_map_get(&in_stream, l->acc[i].key)) continue;
        if (lost < 5) fprintf(stderr, "load: LOST %s (incident %s)\n", l->acc[i].key, l->acc[i].incident);
        lost++;
    }
    pthread_mutex_unlock(&l->mu);
out:
    for (size_t i = 0; i < nkeys; i++) free(keys[i]);
    free(keys);
    ld_map_fini(&in_stream);
    return lost;
}

void ldh_load_stop(ldh_load *l)
{
    if (!l) return;
    atomic_store(&l->stop, true);
    for (int i = 0; i < l->nprod; i++) pthread_join(l->prod[i].thread, NULL);
    for (int i = 0; i < l->nterm; i++) pthread_join(l->term[i].thread, NULL);
    if (l->first_reject[0]) fprintf(stderr, "load: first rejection: %s\n", l->first_reject);
    const char *key;
    void *value;
    for (size_t it = 0; ld_map_next(&l->reached, &it, &key, &value);) free(value);
    ld_map_fini(&l->reached);
    free(l->acc);
    pthread_mutex_destroy(&l->mu);
    free(l);
}

/* ---- reports ------------------------------------------------------------------------ */

void ldh_durations_add(ldh_durations *d, uint64_t ms)
{
    if (d->n < (int)(sizeof d->ms / sizeof d->ms[0])) d->ms[d->n++] = ms;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

void ldh_durations_format(const ldh_durations *d, char *buf, size_t len)
{
    if (d->n == 0) {
        snprintf(buf, len, "n=0");
        return;
    }
    uint64_t s[256];
    memcpy(s, d->ms, (size_t)d->n * sizeof s[0]);
    qsort(s, (size_t)d->n, sizeof s[0], cmp_u64);
    snprintf(buf, len, "n=%d min %llu ms, median %llu ms, max %llu ms", d->n,
             (unsigned long long)s[0], (unsigned long long)s[d->n / 2],
             (unsigned long long)s[d->n - 1]);
}

bool ldh_long_run(void)
{
    const char *v = getenv("LINKD_RELIABILITY");
    return v && strcmp(v, "long") == 0;
}

void ldh_report(const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    fprintf(stderr, "REPORT %s\n", line);
    const char *path = getenv("LINKD_RELIABILITY_REPORT");
    if (!path || !*path) return;
    FILE *f = fopen(path, "a");
    if (!f) return;
    fprintf(f, "%s\n", line);
    fclose(f);
}
