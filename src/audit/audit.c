#include "audit/audit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "core/buf.h"
#include "core/clock.h"
#include "core/err.h"
#include "core/log.h"
#include "core/sha256.h"
#include "engine/actions.h"
#include "store/store.h"
#include "wire/wire.h"

#define FK(x) LINKD__V1__FEED_KIND__FEED_KIND_##x
#define ZERO_HASH "0000000000000000000000000000000000000000000000000000000000000000"
#define KEY_PREFIX "ld:audit:"

static const char *const leg_names[LD_LEG_COUNT] = {"acknowledge", "arrive", "resolve"};

enum { TAIL_UNKNOWN, TAIL_READING, TAIL_KNOWN };
enum { E_WAITING, E_QUEUED, E_SENT };

/* One per open incident (and per closed one with lines still waiting), so
 * kept small: the last hash as its 32 bytes, not its 64 hex digits. An open
 * incident holds its own (ld_incident.audit_tail); closed, it is let go. */
typedef struct audit_tail {
    ld_list link;                 /* in ld_audit.tails, to free them at the end */
    char id[LD_INCIDENT_ID_LEN];
    uint8_t hash[32];
    uint64_t n;                   /* entries so far */
    uint64_t serial;              /* this tail's, never reused: its lines' batch order */
    ld_audit *a;
    uint32_t waiting;             /* entries waiting for this tail */
    uint8_t state;
    uint8_t closed;               /* the incident closed: free once nothing waits on it */
} audit_tail;

/* A line waiting for Redis, in a block of ld_pools just big enough for it:
 * a million may wait through an outage (LD_AUDIT_QUEUE_MAX). */
typedef struct audit_entry {
    ld_list link;
    audit_tail *tail;             /* while waiting for the tail to be read */
    uint32_t seq;                 /* its place in a batch, while it is sorted */
    uint64_t serial;              /* its tail's: the lines of one incident share it */
    uint16_t len, cap;            /* the line's bytes; line[]'s room */
    uint16_t body;                /* sealed: where ,"hash": starts (the chained part ends) */
    uint8_t state;
    uint8_t closes;               /* the incident closed with this line */
    char key[sizeof KEY_PREFIX + LD_INCIDENT_ID_LEN];
    char line[];                  /* "{" + body; sealed: "{\"n\":N," + body + ",\"hash\":...}" */
} audit_entry;

/* SEAL_ROOM is what sealing adds to a body: {"n":<20 digits>, and ,"hash":"<64>"} */
#define SEAL_ROOM 112

static size_t entry_size(size_t cap) { return offsetof(audit_entry, line) + cap; }

static void entry_put(ld_audit *a, audit_entry *e)
{
    ld_pools_put(&a->lines, e, entry_size(e->cap));
}

void ld_audit_init(ld_audit *a, struct ld_store *store, const ld_engine *e)
{
    memset(a, 0, sizeof *a);
    a->store = store;
    a->engine = e;
    ld_pools_init(&a->lines);
    ld_pool_init(&a->tail_pool, sizeof(audit_tail), 256);
    ld_list_init(&a->queue);
    ld_list_init(&a->tails);
    ld_list_init(&a->sent);
    ld_buf_init(&a->scratch, 0);
}

void ld_audit_fini(ld_audit *a)
{
    if (a->queued)
        ld_log(LD_WARN, "AUDIT-UNWRITTEN", "%zu audit lines not written to redis at exit",
               a->queued);
    ld_list *lists[] = {&a->queue, &a->sent, &a->tails};
    for (size_t k = 0; k < 3; k++)
        for (ld_list *l = lists[k]->next; l != lists[k];) {
            ld_list *next = l->next;
            ld_list_remove(l);
            if (k < 2) entry_put(a, ld_container_of(l, audit_entry, link));
            else ld_pool_put(&a->tail_pool, ld_container_of(l, audit_tail, link));
            l = next;
        }
    ld_pools_fini(&a->lines);
    ld_pool_fini(&a->tail_pool);
    ld_buf_fini(&a->scratch);
}

/* ---- hashing -------------------------------------------------------------------- */

static void chain_hash_raw(const char *prev, const char *body, size_t len, uint8_t d[32])
{
    ld_sha256 c;
    ld_sha256_init(&c);
    ld_sha256_update(&c, prev, 64);
    ld_sha256_update(&c, "\n", 1);
    ld_sha256_update(&c, body, len);
    ld_sha256_final(&c, d);
}

static void chain_hash(const char *prev, const char *body, size_t len, char hex[65])
{
    uint8_t d[32];
    chain_hash_raw(prev, body, len, d);
    ld_sha256_hex(d, hex);
}

/* hash_parse reads 64 hex digits into <d>; 0, or -1 if they are not hex. */
static int hash_parse(const char *hex, uint8_t d[32])
{
    for (int i = 0; i < 64; i++) {
        char c = hex[i];
        int v = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
                : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (v < 0) return -1;
        d[i / 2] = (uint8_t)(i % 2 ? (d[i / 2] << 4) | v : v);
    }
    return 0;
}

/* seal makes <e>'s line of <body> (len bytes, "{" + members, which may be
 * <e>'s own line): its number in front, the chain's hash at its end. */
static void seal(audit_tail *t, audit_entry *e, const char *body, size_t len)
{
    char n[32], prev[65], hash[65];
    memcpy(n, "{\"n\":", 5);
    size_t w = 5 + ld_fmt_u64(n + 5, t->n + 1);
    n[w++] = ',';
    size_t members = len - 1; /* the body's "{" becomes the number's */
    memmove(e->line + w, body + 1, members);
    memcpy(e->line, n, w);
    size_t at = w + members;
    ld_sha256_hex(t->hash, prev);
    chain_hash_raw(prev, e->line, at, t->hash);
    ld_sha256_hex(t->hash, hash);
    memcpy(e->line + at, ",\"hash\":\"", 9);
    memcpy(e->line + at + 9, hash, 64);
    memcpy(e->line + at + 73, "\"}", 2);
    e->len = (uint16_t)(at + 75);
    e->body = (uint16_t)at;
    t->n++;
    e->state = E_QUEUED;
    e->tail = NULL;
}

static void tail_release(ld_audit *a, audit_tail *t)
{
    if (!t->closed || t->waiting || t->state == TAIL_READING) return;
    ld_list_remove(&t->link);
    ld_pool_put(&a->tail_pool, t);
}

/* ---- reading a tail back after a restart ---------------------------------------- */

static void tail_known(ld_audit *a, audit_tail *t)
{
    t->state = TAIL_KNOWN;
    for (ld_list *l = a->queue.next; l != &a->queue && t->waiting; l = l->next) {
        audit_entry *e = ld_container_of(l, audit_entry, link);
        if (e->state == E_WAITING && e->tail == t) {
            seal(t, e, e->line, e->len);
            t->waiting--;
        }
    }
    tail_release(a, t);
}

static void on_tail(void *arg, redisReply *r)
{
    audit_tail *t = arg;
    ld_audit *a = t->a;
    if (!r || r->type == REDIS_REPLY_ERROR) {
        t->state = TAIL_UNKNOWN; /* read again at the next flush */
        return;
    }
    if (r->type == REDIS_REPLY_STRING) {
        const char *h = strstr(r->str, "\"hash\":\"");
        const char *n = strstr(r->str, "{\"n\":");
        uint8_t d[32];
        /* A write's last line shows its hash, so a list ends in one. */
        if (h && strlen(h + 8) >= 64 && hash_parse(h + 8, d) == 0)
            memcpy(t->hash, d, sizeof d);
        else
            ld_log_rl(LD_WARN, "AUDIT-TAIL", "%s: the last audit line has no hash, or not in "
                      "hex; the chain goes on from zeros", t->id);
        if (n) t->n = strtoull(n + 5, NULL, 10);
    }
    a->stats.tail_reads++;
    tail_known(a, t);
}

static void read_tail(ld_audit *a, audit_tail *t)
{
    char key[sizeof KEY_PREFIX + LD_INCIDENT_ID_LEN];
    ld_str_join(key, sizeof key, KEY_PREFIX, t->id);
    const char *argv[] = {"LINDEX", key, "-1"};
    size_t lens[] = {6, strlen(key), 2};
    if (ld_store_commandv(a->store, on_tail, t, 3, argv, lens) == 0) t->state = TAIL_READING;
}

/* ---- lines ------------------------------------------------------------------------- */

static audit_tail *tail_for(ld_audit *a, const ld_observation *o)
{
    audit_tail *t = *o->audit_tail;
    if (t) return t;
    if (!(t = ld_pool_get(&a->tail_pool))) return NULL;
    ld_list_append(&a->tails, &t->link);
    ld_str_join(t->id, sizeof t->id, o->inc->id, "");
    t->a = a;
    t->serial = ++a->serials;
    memset(t->hash, 0, sizeof t->hash); /* the hex of 32 zero bytes is ZERO_HASH */
    /* A new incident starts a chain; any other was open before a restart. */
    t->state = o->kind == FK(INCIDENT_OPENED) ? TAIL_KNOWN : TAIL_UNKNOWN;
    *o->audit_tail = t;
    return t;
}

static void body(ld_buf *b, const ld_engine *e, const ld_observation *o)
{
    const ld_rules *r = e->rules;
    const ld_incident *inc = o->inc;
    const ld_task *t = o->task;
    ld_buf_puts(b, "{\"at\":");
    ld_buf_u64(b, ld_clock_now(e->clock));
    ld_buf_puts(b, ",\"kind\":");
    ld_buf_json_str(b, ld_enum_name(&linkd__v1__feed_kind__descriptor, o->kind));
    if (o->kind == FK(INCIDENT_OPENED)) {
        ld_buf_puts(b, ",\"event\":");
        ld_buf_json_str(b, inc->event_id);
        ld_buf_puts(b, ",\"source\":");
        ld_buf_json_str(b, inc->source_id);
        ld_buf_puts(b, ",\"priority\":");
        ld_buf_json_str(b, ld_enum_name(&linkd__v1__priority__descriptor, inc->priority));
        ld_buf_puts(b, ",\"summary\":");
        ld_buf_json_str(b, inc->summary);
    }
    if (t) {
        ld_buf_puts(b, ",\"task\":");
        ld_buf_json_str(b, r->departments[t->dept].id);
        ld_buf_puts(b, ",\"level\":");
        if (t->level < 0) ld_buf_puts(b, "-");
        ld_buf_u64(b, (uint64_t)(t->level < 0 ? -t->level : t->level));
        ld_buf_puts(b, ",\"terminal\":");
        ld_buf_json_str(b, r->terminals[t->terminal].id);
        ld_buf_puts(b, ",\"state\":");
        ld_buf_json_str(b, ld_enum_name(&linkd__v1__task_state__descriptor, t->state));
        if (o->kind == FK(TASK_RESOLVED) && ld_task_disposition(t)[0]) {
            ld_buf_puts(b, ",\"disposition\":");
            ld_buf_json_str(b, ld_task_disposition(t));
        }
        if ((o->kind == FK(TASK_REJECTED) || o->kind == FK(TASK_ESCALATED)) &&
            ld_task_reason(t)[0]) {
            ld_buf_puts(b, ",\"why\":");
            ld_buf_json_str(b, ld_task_reason(t));
        }
    }
    if (o->leg >= 0 && o->leg < LD_LEG_COUNT) {
        ld_buf_puts(b, ",\"leg\":\"");
        ld_buf_puts(b, leg_names[o->leg]);
        ld_buf_puts(b, "\"");
        if (t) {
            ld_buf_puts(b, ",\"due\":");
            ld_buf_u64(b, ld_task_due(t, o->leg));
        }
    }
    if (o->peer) {
        /* A merge or split: the incident on the other side of it. */
        ld_buf_puts(b, ",\"peer\":");
        ld_buf_json_str(b, o->peer);
    }
    if (o->actor) {
        char cut[161];
        snprintf(cut, sizeof cut, "%s", o->actor);
        ld_buf_puts(b, ",\"actor\":");
        ld_buf_json_str(b, cut);
        snprintf(cut, sizeof cut, "%s", o->reason ? o->reason : "");
        ld_buf_puts(b, ",\"reason\":");
        ld_buf_json_str(b, cut);
    }
}

void ld_audit_observe(ld_audit *a, const ld_observation *o)
{
    if (!o->inc) return;
    if (a->queued >= LD_AUDIT_QUEUE_MAX) {
        a->stats.dropped++;
        ld_log_rl(LD_ERR, "AUDIT-FULL", "%zu audit lines wait for redis: line for %s dropped",
                  a->queued, o->inc->id);
        return;
    }
    audit_tail *t = tail_for(a, o);
    ld_buf *b = &a->scratch;
    ld_buf_reset(b);
    body(b, a->engine, o);
    /* The body starts with a "{" placeholder that sealing replaces. */
    const char *src = b->len && !b->oom ? b->p : "{";
    size_t len = b->len && !b->oom ? b->len : 1;
    if (len > LD_AUDIT_LINE_MAX - SEAL_ROOM) len = LD_AUDIT_LINE_MAX - SEAL_ROOM;
    size_t cap = len + SEAL_ROOM;
    audit_entry *e = t ? ld_pools_get(&a->lines, entry_size(cap)) : NULL;
    if (!e) {
        a->stats.dropped++;
        ld_log_rl(LD_ERR, "AUDIT-NOMEM", "out of memory: audit line for %s dropped", o->inc->id);
        return;
    }
    e->cap = (uint16_t)cap;
    e->serial = t->serial;
    size_t il = strlen(o->inc->id);
    memcpy(e->key, KEY_PREFIX, sizeof KEY_PREFIX - 1);
    memcpy(e->key + sizeof KEY_PREFIX - 1, o->inc->id, il + 1);
    e->closes = o->kind == FK(INCIDENT_CLOSED);
    ld_list_append(&a->queue, &e->link);
    a->queued++;
    a->stats.appended++;
    if (t->state == TAIL_KNOWN) {
        seal(t, e, src, len);
    } else {
        memcpy(e->line, src, len);
        e->len = (uint16_t)len;
        e->state = E_WAITING;
        e->tail = t;
        t->waiting++;
        if (t->state == TAIL_UNKNOWN) read_tail(a, t);
    }
    if (o->kind == FK(INCIDENT_CLOSED)) {
        *o->audit_tail = NULL;
        t->closed = 1;
        tail_release(a, t);
    }
}

/* ---- writing ------------------------------------------------------------------------ */

/* What waits goes to Redis as plain commands, pipelined, once per
 * write-behind tick: per incident one RPUSH of its lines in order (and an
 * EXPIRE once it closed). No script: Redis runs each RPUSH natively and can
 * serve the intake between them, where a script over a whole tick's lines
 * held it for a millisecond or two and cost twice the CPU per line. Each
 * RPUSH answers for its own lines: one Redis refused, or the connection
 * lost, is sent again in its place on a later tick; a line sent twice that
 * way reaches Redis as an identical repeat, which the checker accepts. */

/* Lines per batch. A batch is sorted by incident and sent as one RPUSH per
 * incident, so the more of a tick's lines one batch holds, the fewer RPUSHes
 * Redis runs: a tick at 20,000 events/s has about 3,000 lines, and batches of
 * 1,024 split an incident's lines of one tick over two or three of them
 * (BENCHMARKS, "The write-behind made cheaper"). About 1.6 MB at most,
 * handed to the socket at once. */
#define BATCH_MAX 8192

typedef struct audit_batch audit_batch;

typedef struct audit_run {    /* one incident's lines in a batch: one RPUSH */
    audit_batch *batch;
    uint32_t first, n;        /* into the batch's lines, sorted */
} audit_run;

struct audit_batch {          /* one block: this, then the arrays, sized to cap lines */
    ld_audit *a;
    size_t n, cap, pending;   /* lines, room; commands not yet answered */
    audit_entry **v;          /* in queue order; sorted by incident when sent */
    const char **argv;        /* one RPUSH: 2 + its lines */
    size_t *lens;
    audit_run *runs;
};

static audit_batch *batch_new(ld_audit *a, size_t cap)
{
    size_t ptrs = cap * sizeof(audit_entry *) + (2 + cap) * (sizeof(char *) + sizeof(size_t));
    audit_batch *b = malloc(sizeof *b + ptrs + cap * sizeof(audit_run));
    if (!b) return NULL;
    char *p = (char *)(b + 1);
    b->v = (audit_entry **)(void *)p, p += cap * sizeof *b->v;
    b->argv = (const char **)(void *)p, p += (2 + cap) * sizeof *b->argv;
    b->lens = (size_t *)(void *)p, p += (2 + cap) * sizeof *b->lens;
    b->runs = (audit_run *)(void *)p;
    b->a = a, b->n = 0, b->cap = cap, b->pending = 0;
    return b;
}

static void batch_answered(audit_batch *b)
{
    if (--b->pending == 0) free(b);
}

static void on_written(void *arg, redisReply *r)
{
    audit_run *run = arg;
    audit_batch *b = run->batch;
    ld_audit *a = b->a;
    int ok = r && r->type == REDIS_REPLY_INTEGER;
    if (!ok && r && r->type == REDIS_REPLY_ERROR)
        ld_log_rl(LD_ERR, "AUDIT-WRITE", "redis refused %u audit lines: %s", run->n, r->str);
    for (uint32_t i = run->first; i < run->first + run->n; i++) {
        audit_entry *e = b->v[i];
        if (!ok) {
            e->state = E_QUEUED; /* stays in <sent>; the next flush puts it back in place */
            a->requeued++;
            continue;
        }
        ld_list_remove(&e->link);
        a->queued--;
        entry_put(a, e);
    }
    if (ok) {
        a->stats.written += run->n;
        a->backoff_ms = 0;
    } else {
        /* Sent again, but not at once: a write Redis refuses must not
         * become a storm that starves the intake on the same connection. */
        a->stats.resent += run->n;
        a->backoff_ms = a->backoff_ms ? (a->backoff_ms * 2 > 5000 ? 5000 : a->backoff_ms * 2) : 100;
        a->retry_at = ld_mono_ms() + a->backoff_ms;
    }
    batch_answered(b);
}

/* on_expired: a closed trail's time to live; if Redis refused it the trail
 * stays until removed by hand, which is said once in a while. */
static void on_expired(void *arg, redisReply *r)
{
    audit_batch *b = arg;
    if (!r || r->type != REDIS_REPLY_INTEGER) {
        b->a->stats.unexpired++;
        ld_log_rl(LD_WARN, "AUDIT-EXPIRE", "a closed audit trail got no expiry: %s",
                  r && r->type == REDIS_REPLY_ERROR ? r->str : "connection lost");
    }
    batch_answered(b);
}

/* by_incident orders a batch by incident, keeping each incident's lines in
 * order: by its tail's serial, where comparing keys would compare their long
 * common prefix ("ld:audit:I1795...") for every pair. */
static int by_incident(const void *x, const void *y)
{
    const audit_entry *p = *(const audit_entry *const *)x, *q = *(const audit_entry *const *)y;
    if (p->serial != q->serial) return p->serial < q->serial ? -1 : 1;
    return (p->seq > q->seq) - (p->seq < q->seq);
}

/* send_batch sends <b>'s lines, one RPUSH per incident; 0, or -1 if none
 * could be queued (the lines stay queued). Once a command is queued, the
 * batch lives until every queued command is answered. */
static int send_batch(ld_audit *a, audit_batch *b)
{
    for (size_t i = 0; i < b->n; i++) b->v[i]->seq = (uint32_t)i;
    qsort(b->v, b->n, sizeof *b->v, by_incident);
    char ttl[24];
    snprintf(ttl, sizeof ttl, "%d", LD_AUDIT_KEEP_S);
    b->pending = 1; /* held by this function until the loop below ends */
    size_t runs = 0;
    for (size_t i = 0; i < b->n;) {
        size_t j = i;
        int closes = 0;
        while (j < b->n && b->v[j]->serial == b->v[i]->serial)
            closes |= b->v[j++]->closes;
        const char *key = b->v[i]->key;
        size_t kl = strlen(key), c = 0;
        b->argv[c] = "RPUSH", b->lens[c++] = 5;
        b->argv[c] = key, b->lens[c++] = kl;
        /* Only the last line of a write shows its hash; the others end
         * where their chained part does (audit.h). A line sent again may
         * end a write the second time where it did not the first. */
        for (size_t m = i; m < j; m++) {
            audit_entry *e = b->v[m];
            int last = m + 1 == j;
            e->line[e->body] = last ? ',' : '}';
            b->argv[c] = e->line, b->lens[c++] = last ? e->len : e->body + 1u;
        }
        audit_run *run = &b->runs[runs];
        *run = (audit_run){b, (uint32_t)i, (uint32_t)(j - i)};
        /* hiredis copies the command into its buffer before this returns. */
        if (ld_store_commandv(a->store, on_written, run, (int)c, b->argv, b->lens) != 0) break;
        runs++, b->pending++;
        for (size_t m = i; m < j; m++) {
            audit_entry *e = b->v[m];
            e->state = E_SENT;
            ld_list_remove(&e->link);
            ld_list_append(&a->sent, &e->link);
        }
        if (closes) {
            const char *ev[] = {"EXPIRE", key, ttl};
            size_t el[] = {6, kl, strlen(ttl)};
            if (ld_store_commandv(a->store, on_expired, b, 3, ev, el) == 0) b->pending++;
        }
        i = j;
    }
    batch_answered(b);
    return runs ? 0 : -1;
}

/* requeue puts the lines Redis refused (or the connection lost) back at the
 * front of the queue, in the order they were sent: they are older than
 * anything still queued, so each incident's lines keep their order. */
static void requeue(ld_audit *a)
{
    ld_list *front = a->queue.next;
    for (ld_list *l = a->sent.next; l != &a->sent && a->requeued;) {
        ld_list *next = l->next;
        audit_entry *e = ld_container_of(l, audit_entry, link);
        if (e->state == E_QUEUED) {
            ld_list_remove(l);
            ld_list_append(front, l); /* before the first line that was queued */
            a->requeued--;
        }
        l = next;
    }
    a->requeued = 0;
}

void ld_audit_flush(ld_audit *a)
{
    if (!ld_store_up(a->store) || !a->queued) return;
    if (a->backoff_ms && ld_mono_ms() < a->retry_at) return;
    if (a->requeued) requeue(a);
    audit_batch *b = NULL;
    for (ld_list *l = a->queue.next, *next; l != &a->queue; l = next) {
        next = l->next; /* sending moves lines to <sent> */
        audit_entry *e = ld_container_of(l, audit_entry, link);
        if (e->state == E_WAITING && e->tail->state == TAIL_UNKNOWN) read_tail(a, e->tail);
        if (e->state != E_QUEUED) continue;
        if (b && b->n == b->cap) {
            int rv = send_batch(a, b); /* consumes b */
            b = NULL;
            if (rv != 0) return;
            ld_store_write_now(a->store);
            if (!ld_store_up(a->store) || ld_store_unsent(a->store) > LD_STORE_UNSENT_MAX)
                return; /* the rest next tick */
        }
        if (!b && !(b = batch_new(a, a->queued < BATCH_MAX ? a->queued : BATCH_MAX))) return;
        b->v[b->n++] = e;
    }
    if (b && b->n) send_batch(a, b);
    else free(b);
}

/* ---- checking ----------------------------------------------------------------------- */

/* line_parts finds <line>'s number and chained part: the line up to
 * ,"hash": when it ends in its hash (*hash set), else up to its closing }
 * (*hash NULL). 0, or -1 if it is not an audit line. */
static int line_parts(const char *line, size_t len, uint64_t *n, size_t *chained,
                      const char **hash)
{
    static const char tag[] = ",\"hash\":\"";
    const size_t tl = sizeof tag - 1;
    if (len < 7 || memcmp(line, "{\"n\":", 5) != 0 || line[len - 1] != '}') return -1;
    uint64_t v = 0;
    size_t i = 5;
    for (; i < len && i < 25 && line[i] >= '0' && line[i] <= '9'; i++)
        v = v * 10 + (uint64_t)(line[i] - '0');
    if (i == 5 || (line[i] != ',' && line[i] != '}')) return -1;
    *n = v;
    *hash = NULL;
    *chained = len - 1;
    if (len >= i + tl + 64 + 2 && memcmp(line + len - 2 - 64 - tl, tag, tl) == 0 &&
        line[len - 2] == '"') {
        *hash = line + len - 2 - 64;
        *chained = (size_t)(*hash - tl - line);
    }
    return 0;
}

/* What a check says of a line, by what became of the write it is in. */
enum { V_PENDING, V_OK, V_REPEAT, V_BAD };

int ld_audit_trail_check(const char *const *lines, const size_t *lens, size_t count,
                         ld_audit_each each, void *arg, ld_audit_verdict *v)
{
    memset(v, 0, sizeof *v);
    memcpy(v->last_hash, ZERO_HASH, sizeof v->last_hash);
    /* hx[k]: the chain's hash after line n = k + 1, to check a repeat. */
    char (*hx)[65] = calloc(count ? count : 1, sizeof *hx);
    uint8_t *verdict = calloc(count ? count : 1, 1);
    char (*why)[LD_AUDIT_WHY] = calloc(count ? count : 1, sizeof *why);
    if (!hx || !verdict || !why) {
        free(hx), free(verdict), free(why);
        return LD_ENOMEM;
    }
    char prev[65] = ZERO_HASH, h[65], gwhy[LD_AUDIT_WHY] = "";
    uint64_t last_n = 0;
    size_t group = 0; /* the first line of the write not yet vouched for */
    int group_bad = 0;
    for (size_t i = 0; i < count; i++) {
        uint64_t n;
        size_t chained;
        const char *hash;
        if (line_parts(lines[i], lens[i], &n, &chained, &hash) != 0) {
            verdict[i] = V_BAD;
            snprintf(why[i], sizeof why[i], "not an audit line");
            continue;
        }
        if (n >= 1 && n <= last_n && n <= count) {
            /* A write sent again after its answer was lost: the same lines,
             * the hash perhaps shown on another one. */
            chain_hash(n == 1 ? ZERO_HASH : hx[n - 2], lines[i], chained, h);
            if (strcmp(h, hx[n - 1]) == 0 && (!hash || strncmp(hash, h, 64) == 0)) {
                verdict[i] = V_REPEAT;
            } else {
                verdict[i] = V_BAD;
                snprintf(why[i], sizeof why[i], "entry n=%llu again, but not as it was: changed",
                         (unsigned long long)n);
            }
            continue;
        }
        if (n != last_n + 1 && !group_bad) {
            group_bad = 1;
            snprintf(gwhy, sizeof gwhy, "entry n=%llu where n=%llu was due: entries removed, "
                     "moved or added", (unsigned long long)n, (unsigned long long)last_n + 1);
        }
        chain_hash(prev, lines[i], chained, h);
        if (n >= 1 && n <= count) memcpy(hx[n - 1], h, sizeof h);
        last_n = n;
        memcpy(prev, h, sizeof h);
        if (!hash) continue; /* the write's last line vouches for it */
        if (strncmp(hash, h, 64) != 0) {
            if (!group_bad)
                snprintf(gwhy, sizeof gwhy, "hash %.12s... does not match: an entry of this "
                         "write was changed, or one before it removed or moved", hash);
            group_bad = 1;
            memcpy(prev, hash, 64); /* go on from what the line says, to find the next */
        }
        for (size_t k = group; k <= i; k++) {
            if (verdict[k] != V_PENDING) continue;
            verdict[k] = group_bad ? V_BAD : V_OK;
            if (group_bad) memcpy(why[k], gwhy, sizeof gwhy);
        }
        group = i + 1, group_bad = 0;
    }
    for (size_t k = group; k < count; k++) {
        if (verdict[k] != V_PENDING) continue;
        verdict[k] = V_BAD;
        snprintf(why[k], sizeof why[k], "no hash after this entry: the trail was cut short, or "
                 "entries were added");
    }
    for (size_t i = 0; i < count; i++) {
        if (verdict[i] == V_REPEAT) {
            v->repeats++;
        } else {
            v->entries++;
            if (verdict[i] == V_BAD && !v->bad++) {
                v->first_bad = i + 1;
                memcpy(v->why, why[i], sizeof v->why);
            }
        }
        if (each)
            each(arg, lines[i], lens[i],
                 verdict[i] == V_OK ? "ok" : verdict[i] == V_REPEAT ? "repeat" : why[i]);
    }
    memcpy(v->last_hash, prev, sizeof prev);
    free(hx), free(verdict), free(why);
    return v->bad ? LD_ESTATE : 0;
}
