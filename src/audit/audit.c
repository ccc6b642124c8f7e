#include "audit/audit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "core/buf.h"
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

typedef struct audit_tail {
    char id[LD_INCIDENT_ID_LEN];
    int state;
    int closed;                   /* the incident closed: free once nothing waits on it */
    uint64_t n;                   /* entries so far */
    char hash[65];
    size_t waiting;               /* entries waiting for this tail */
    ld_audit *a;
} audit_tail;

typedef struct audit_entry {
    ld_list link;
    ld_audit *a;
    audit_tail *tail;             /* while waiting for the tail to be read */
    int state;
    uint16_t len;
    char key[sizeof KEY_PREFIX + LD_INCIDENT_ID_LEN];
    char line[LD_AUDIT_LINE_MAX];
} audit_entry;

void ld_audit_init(ld_audit *a, struct ld_store *store, const ld_engine *e)
{
    memset(a, 0, sizeof *a);
    a->store = store;
    a->engine = e;
    ld_map_init(&a->tails);
    ld_pool_init(&a->entries, sizeof(audit_entry), 256);
    ld_pool_init(&a->tail_pool, sizeof(audit_tail), 256);
    ld_list_init(&a->queue);
}

void ld_audit_fini(ld_audit *a)
{
    if (a->queued)
        ld_log(LD_WARN, "AUDIT-UNWRITTEN", "%zu audit lines not written to redis at exit",
               a->queued);
    for (ld_list *l = a->queue.next; l != &a->queue;) {
        ld_list *next = l->next;
        ld_list_remove(l);
        ld_pool_put(&a->entries, ld_container_of(l, audit_entry, link));
        l = next;
    }
    for (size_t i = 0; i < a->tails.cap; i++)
        if (a->tails.slots[i].key) ld_pool_put(&a->tail_pool, a->tails.slots[i].value);
    ld_map_fini(&a->tails);
    ld_pool_fini(&a->entries);
    ld_pool_fini(&a->tail_pool);
}

/* ---- hashing -------------------------------------------------------------------- */

static void chain_hash(const char *prev, const char *body, size_t len, char hex[65])
{
    ld_sha256 c;
    uint8_t d[32];
    ld_sha256_init(&c);
    ld_sha256_update(&c, prev, 64);
    ld_sha256_update(&c, "\n", 1);
    ld_sha256_update(&c, body, len);
    ld_sha256_final(&c, d);
    ld_sha256_hex(d, hex);
}

/* seal gives entry <e> (a body without its end) its number, prev and hash. */
static void seal(audit_tail *t, audit_entry *e)
{
    char n[32], hash[65];
    int w = snprintf(n, sizeof n, "{\"n\":%llu,", (unsigned long long)(t->n + 1));
    /* The body was built after a 1-byte "{" placeholder; put the number in front. */
    size_t body = e->len - 1;
    if ((size_t)w + body + 80 > sizeof e->line) body = sizeof e->line - 80 - (size_t)w;
    memmove(e->line + w, e->line + 1, body);
    memcpy(e->line, n, (size_t)w);
    size_t len = (size_t)w + body;
    chain_hash(t->hash, e->line, len, hash);
    len += (size_t)snprintf(e->line + len, sizeof e->line - len, ",\"hash\":\"%s\"}", hash);
    e->len = (uint16_t)len;
    memcpy(t->hash, hash, sizeof hash);
    t->n++;
    e->state = E_QUEUED;
    e->tail = NULL;
}

static void tail_release(ld_audit *a, audit_tail *t)
{
    if (!t->closed || t->waiting || t->state == TAIL_READING) return;
    ld_map_del(&a->tails, t->id);
    ld_pool_put(&a->tail_pool, t);
}

/* ---- reading a tail back after a restart ---------------------------------------- */

static void tail_known(ld_audit *a, audit_tail *t)
{
    t->state = TAIL_KNOWN;
    for (ld_list *l = a->queue.next; l != &a->queue && t->waiting; l = l->next) {
        audit_entry *e = ld_container_of(l, audit_entry, link);
        if (e->state == E_WAITING && e->tail == t) {
            seal(t, e);
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
        if (h && strlen(h + 8) >= 64) memcpy(t->hash, h + 8, 64), t->hash[64] = '\0';
        if (n) t->n = strtoull(n + 5, NULL, 10);
    }
    a->stats.tail_reads++;
    tail_known(a, t);
}

static void read_tail(ld_audit *a, audit_tail *t)
{
    char key[sizeof KEY_PREFIX + LD_INCIDENT_ID_LEN];
    snprintf(key, sizeof key, KEY_PREFIX "%s", t->id);
    const char *argv[] = {"LINDEX", key, "-1"};
    size_t lens[] = {6, strlen(key), 2};
    if (ld_store_commandv(a->store, on_tail, t, 3, argv, lens) == 0) t->state = TAIL_READING;
}

/* ---- lines ------------------------------------------------------------------------- */

static audit_tail *tail_for(ld_audit *a, const ld_incident *inc, int opened)
{
    audit_tail *t = ld_map_get(&a->tails, inc->id);
    if (t) return t;
    if (!(t = ld_pool_get(&a->tail_pool))) return NULL;
    snprintf(t->id, sizeof t->id, "%s", inc->id);
    t->a = a;
    memcpy(t->hash, ZERO_HASH, 65);
    /* A new incident starts a chain; any other was open before a restart. */
    t->state = opened ? TAIL_KNOWN : TAIL_UNKNOWN;
    if (ld_map_put(&a->tails, t->id, t) != 0) {
        ld_pool_put(&a->tail_pool, t);
        return NULL;
    }
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
        ld_buf_printf(b, ",\"level\":%d,\"terminal\":", t->level);
        ld_buf_json_str(b, r->terminals[t->terminal].id);
        ld_buf_puts(b, ",\"state\":");
        ld_buf_json_str(b, ld_enum_name(&linkd__v1__task_state__descriptor, t->state));
        if (o->kind == FK(TASK_RESOLVED) && t->disposition[0]) {
            ld_buf_puts(b, ",\"disposition\":");
            ld_buf_json_str(b, t->disposition);
        }
        if ((o->kind == FK(TASK_REJECTED) || o->kind == FK(TASK_ESCALATED)) && t->reason[0]) {
            ld_buf_puts(b, ",\"why\":");
            ld_buf_json_str(b, t->reason);
        }
    }
    if (o->leg >= 0 && o->leg < LD_LEG_COUNT) {
        ld_buf_printf(b, ",\"leg\":\"%s\"", leg_names[o->leg]);
        if (t) {
            ld_buf_puts(b, ",\"due\":");
            ld_buf_u64(b, t->deadline[o->leg]);
        }
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
    audit_tail *t = tail_for(a, o->inc, o->kind == FK(INCIDENT_OPENED));
    audit_entry *e = t ? ld_pool_get(&a->entries) : NULL;
    if (!e) {
        a->stats.dropped++;
        ld_log_rl(LD_ERR, "AUDIT-NOMEM", "out of memory: audit line for %s dropped", o->inc->id);
        return;
    }
    e->a = a;
    snprintf(e->key, sizeof e->key, KEY_PREFIX "%s", o->inc->id);
    ld_buf b;
    ld_buf_init(&b, 0);
    body(&b, a->engine, o);
    /* Stored as "{" + the body's members; seal() puts "n" first and closes it. */
    size_t n = b.len < sizeof e->line - 200 ? b.len : sizeof e->line - 200;
    memcpy(e->line, b.p ? b.p : "{", n);
    e->len = (uint16_t)n;
    ld_buf_fini(&b);
    e->line[0] = '{';
    ld_list_append(&a->queue, &e->link);
    a->queued++;
    a->stats.appended++;
    if (t->state == TAIL_KNOWN) {
        seal(t, e);
    } else {
        e->state = E_WAITING;
        e->tail = t;
        t->waiting++;
        if (t->state == TAIL_UNKNOWN) read_tail(a, t);
    }
    if (o->kind == FK(INCIDENT_CLOSED)) {
        t->closed = 1;
        tail_release(a, t);
    }
}

/* ---- writing ------------------------------------------------------------------------ */

/* Consecutive lines of one incident go in one RPUSH (an incident's opening
 * and its dispatches come together), pipelined with the rest; a command the
 * connection lost is sent again whole, in its place. */
#define GROUP_MAX 64

typedef struct audit_group {
    ld_audit *a;
    size_t n;
    audit_entry *v[GROUP_MAX];
} audit_group;

static void on_written(void *arg, redisReply *r)
{
    audit_group *g = arg;
    ld_audit *a = g->a;
    int ok = r && r->type == REDIS_REPLY_INTEGER;
    if (!ok && r && r->type == REDIS_REPLY_ERROR)
        ld_log_rl(LD_ERR, "AUDIT-WRITE", "redis refused %zu audit lines: %s", g->n, r->str);
    for (size_t i = 0; i < g->n; i++) {
        audit_entry *e = g->v[i];
        if (!ok) {
            e->state = E_QUEUED;
            continue;
        }
        ld_list_remove(&e->link);
        a->queued--;
        ld_pool_put(&a->entries, e);
    }
    if (ok) a->stats.written += g->n;
    else a->stats.resent += g->n;
    free(g);
}

static void on_expire(void *arg, redisReply *r)
{
    (void)arg;
    (void)r; /* a lost EXPIRE only keeps a closed trail longer */
}

static int send_group(ld_audit *a, audit_group *g)
{
    const char *argv[2 + GROUP_MAX];
    size_t lens[2 + GROUP_MAX];
    int closes = 0;
    argv[0] = "RPUSH", lens[0] = 5;
    argv[1] = g->v[0]->key, lens[1] = strlen(g->v[0]->key);
    for (size_t i = 0; i < g->n; i++) {
        argv[2 + i] = g->v[i]->line, lens[2 + i] = g->v[i]->len;
        closes |= strstr(g->v[i]->line, "\"kind\":\"incident_closed\"") != NULL;
    }
    if (ld_store_commandv(a->store, on_written, g, (int)(2 + g->n), argv, lens) != 0) return -1;
    for (size_t i = 0; i < g->n; i++) g->v[i]->state = E_SENT;
    if (closes) {
        char ttl[24];
        snprintf(ttl, sizeof ttl, "%d", LD_AUDIT_KEEP_S);
        const char *ex[] = {"EXPIRE", argv[1], ttl};
        size_t exl[] = {6, lens[1], strlen(ttl)};
        ld_store_commandv(a->store, on_expire, NULL, 3, ex, exl);
    }
    return 0;
}

void ld_audit_flush(ld_audit *a)
{
    if (!ld_store_up(a->store) || !a->queued) return;
    audit_group *g = NULL;
    for (ld_list *l = a->queue.next; l != &a->queue; l = l->next) {
        audit_entry *e = ld_container_of(l, audit_entry, link);
        if (e->state == E_WAITING && e->tail->state == TAIL_UNKNOWN) read_tail(a, e->tail);
        if (e->state != E_QUEUED) continue;
        if (g && (g->n == GROUP_MAX || strcmp(g->v[0]->key, e->key) != 0)) {
            if (send_group(a, g) != 0) break;
            g = NULL;
        }
        if (!g) {
            if (!(g = malloc(sizeof *g))) return;
            g->a = a;
            g->n = 0;
        }
        g->v[g->n++] = e;
    }
    if (g && (!g->n || send_group(a, g) != 0)) free(g);
}

/* ---- checking ----------------------------------------------------------------------- */

int ld_audit_line_check(const char *line, size_t len, const char *prev, char hash[65],
                        char *why, size_t why_len)
{
    static const char tag[] = ",\"hash\":\"";
    const size_t tl = sizeof tag - 1;
    if (len < tl + 64 + 2 || memcmp(line + len - 2 - 64 - tl, tag, tl) != 0 ||
        memcmp(line + len - 2, "\"}", 2) != 0) {
        snprintf(why, why_len, "not an audit line (no hash at its end)");
        return LD_EPARSE;
    }
    const char *lhash = line + len - 2 - 64;
    memcpy(hash, lhash, 64);
    hash[64] = '\0';
    char want[65];
    chain_hash(prev, line, (size_t)(lhash - tl - line), want);
    if (strncmp(want, lhash, 64) != 0) {
        snprintf(why, why_len, "hash %.12s... does not match: this entry was changed, or one "
                 "before it removed or moved", lhash);
        return LD_ESTATE;
    }
    return 0;
}
