#include "store/spool.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/err.h"
#include "core/log.h"

enum { HEADER = 8, MAX_RECORD = 64 << 20 };

/* Who waits for a write: one append call. */
typedef struct waiter {
    struct waiter *next;
    ld_spool_cb cb;
    void *arg;
    ld_spool_entry **entries;   /* the new entries (NULL where a duplicate) */
    ld_spool_result *res;
    size_t n;
} waiter;

/* Records waiting for, or in, one write and one sync. */
typedef struct ld_spool_batch {
    uint8_t *data;
    size_t len, cap;
    waiter *waiters, *last;
} ld_spool_batch;

static uint32_t fnv1a(const uint8_t *p, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 16777619u;
    return h;
}

static void put_u32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

uint64_t ld_spool_time(const char *sid)
{
    return sid && sid[0] == 'S' ? strtoull(sid + 1, NULL, 10) : 0;
}

/* ---- entries -------------------------------------------------------------------- */

static ld_spool_entry *entry_new(const char *sid, const char *src, const char *eid,
                                 const uint8_t *pb, size_t pblen)
{
    size_t sl = strlen(src), el = strlen(eid);
    if (sl > 128 || el > 128 || strlen(sid) >= LD_SPOOL_ID_LEN) return NULL;
    ld_spool_entry *e = calloc(1, sizeof *e);
    if (!e || !(e->pb = malloc(pblen ? pblen : 1))) {
        free(e);
        return NULL;
    }
    memcpy(e->sid, sid, strlen(sid) + 1);
    memcpy(e->src, src, sl + 1);
    memcpy(e->eid, eid, el + 1);
    snprintf(e->key, sizeof e->key, "%s\x1f%s", src, eid);
    memcpy(e->pb, pb, pblen);
    e->pblen = pblen;
    return e;
}

static void entry_free(ld_spool_entry *e)
{
    if (!e) return;
    free(e->pb);
    free(e);
}

/* entry_add links <e> at the tail and indexes it by its own key. */
static int entry_add(ld_spool *s, ld_spool_entry *e)
{
    if (ld_map_put(&s->by_key, e->key, e) != 0) return LD_ENOMEM;
    if (s->tail) s->tail->next = e;
    else s->head = e;
    s->tail = e;
    s->count++;
    s->bytes += e->pblen + sizeof *e;
    return 0;
}

ld_spool_entry *ld_spool_find(const ld_spool *s, const char *src, const char *eid)
{
    char k[2 * 129 + 2];
    if (s->count == 0) return NULL;
    snprintf(k, sizeof k, "%s\x1f%s", src, eid);
    return ld_map_get(&s->by_key, k);
}

/* forget unlinks and frees <e>. Entries leave from the head (reconciled in
 * order) or the tail (a failed write), so the walk is short. */
static void forget(ld_spool *s, ld_spool_entry *e)
{
    ld_spool_entry **pp = &s->head, *prev = NULL;
    while (*pp && *pp != e) prev = *pp, pp = &(*pp)->next;
    if (!*pp) return;
    *pp = e->next;
    if (s->tail == e) s->tail = prev;
    ld_map_del(&s->by_key, e->key);
    s->count--;
    s->bytes -= e->pblen + sizeof *e;
    entry_free(e);
}

void ld_spool_done(ld_spool *s, ld_spool_entry *e)
{
    forget(s, e);
    s->stats.reconciled++;
}

/* ---- escalation claims ------------------------------------------------------------ */

static int claim_add(ld_spool *s, ld_spool_entry *c)
{
    c->claim = 1;
    if (ld_map_put(&s->claim_by_key, c->src, c) != 0) return LD_ENOMEM;
    if (s->claims_tail) s->claims_tail->next = c;
    else s->claims = c;
    s->claims_tail = c;
    s->nclaims++;
    return 0;
}

static void claim_forget(ld_spool *s, ld_spool_entry *c)
{
    ld_spool_entry **pp = &s->claims, *prev = NULL;
    while (*pp && *pp != c) prev = *pp, pp = &(*pp)->next;
    if (!*pp) return;
    *pp = c->next;
    if (s->claims_tail == c) s->claims_tail = prev;
    ld_map_del(&s->claim_by_key, c->src);
    s->nclaims--;
    entry_free(c);
}

const char *ld_spool_claimed(const ld_spool *s, const char *key)
{
    const ld_spool_entry *c = s->nclaims ? ld_map_get(&s->claim_by_key, key) : NULL;
    return c ? c->eid : NULL;
}

void ld_spool_claim_done(ld_spool *s, ld_spool_entry *c)
{
    claim_forget(s, c);
    s->stats.claims_written++;
}

/* ---- the file -------------------------------------------------------------------- */

/* load reads the records a previous run left; stops at the first torn one. */
static int load(ld_spool *s)
{
    FILE *f = fopen(s->path, "rb");
    if (!f) return errno == ENOENT ? 0 : LD_EIO;
    uint8_t hdr[HEADER];
    size_t good = 0;
    while (fread(hdr, 1, HEADER, f) == HEADER) {
        uint32_t len = get_u32(hdr), sum = get_u32(hdr + 4);
        if (len < 6 || len > MAX_RECORD) break;
        uint8_t *p = malloc(len);
        if (!p) break;
        if (fread(p, 1, len, f) != len || fnv1a(p, len) != sum) {
            free(p);
            break;
        }
        const char *sid = (const char *)p;
        size_t a = strnlen(sid, len);
        const char *src = a < len ? sid + a + 1 : NULL;
        size_t b = src ? strnlen(src, len - a - 1) : len;
        const char *eid = src && a + 1 + b < len ? src + b + 1 : NULL;
        size_t c = eid ? strnlen(eid, len - a - b - 2) : len;
        if (!eid || a + b + c + 3 > len) {
            free(p);
            break;
        }
        size_t off = a + b + c + 3;
        ld_spool_entry *e = entry_new(sid, src, eid, p + off, len - off);
        if (e && strcmp(sid, "F") == 0) {
            if (!ld_spool_claimed(s, e->src) && claim_add(s, e) == 0) {
                e->durable = 1;
                s->stats.claims_loaded++;
            } else {
                entry_free(e);
            }
        } else if (e && !ld_spool_find(s, e->src, e->eid) && entry_add(s, e) == 0) {
            e->durable = 1;
            s->stats.loaded++;
        } else {
            entry_free(e);
        }
        free(p);
        good = (size_t)ftell(f);
    }
    long end = (fseek(f, 0, SEEK_END) == 0) ? ftell(f) : -1;
    fclose(f);
    s->exists = 1;
    if (end >= 0 && (size_t)end > good) {
        /* A torn tail: cut it, so new records follow the last good one. */
        if (truncate(s->path, (off_t)good) != 0) return LD_EIO;
        ld_log(LD_WARN, "SPOOL-TORN", "%s: ignored %ld bytes of a torn last record",
               s->path, end - (long)good);
    }
    if (s->count || s->nclaims)
        ld_log(LD_NOTICE, "SPOOL-LOADED", "%s: %zu events accepted and %zu escalations claimed "
               "while redis was away wait to be copied into redis", s->path, s->count,
               s->nclaims);
    return 0;
}

int ld_spool_open(ld_spool *s, uv_loop_t *loop, const char *dir, size_t max_events,
                  size_t max_bytes)
{
    memset(s, 0, sizeof *s);
    s->loop = loop;
    s->fd = -1;
    s->max_events = max_events;
    s->max_bytes = max_bytes;
    ld_map_init(&s->by_key);
    ld_map_init(&s->claim_by_key);
    if (mkdir(dir, 0750) != 0 && errno != EEXIST) return LD_EIO;
    if (snprintf(s->path, sizeof s->path, "%s/linkd.spool", dir) >= (int)sizeof s->path)
        return LD_EINVAL;
    return load(s);
}

void ld_spool_fini(ld_spool *s)
{
    while (s->head) {
        ld_spool_entry *e = s->head;
        s->head = e->next;
        entry_free(e);
    }
    ld_map_fini(&s->by_key);
    while (s->claims) {
        ld_spool_entry *c = s->claims;
        s->claims = c->next;
        entry_free(c);
    }
    ld_map_fini(&s->claim_by_key);
    ld_spool_batch *bs[] = {s->writing, s->next};
    for (int i = 0; i < 2; i++) {
        if (!bs[i]) continue;
        for (waiter *w = bs[i]->waiters; w;) {
            waiter *n = w->next;
            free(w);
            w = n;
        }
        free(bs[i]->data);
        free(bs[i]);
    }
    s->writing = s->next = NULL;
    if (s->fd >= 0) close(s->fd);
    s->fd = -1;
}

/* ---- writing: one write and one sync per batch ------------------------------------------ */

static void start_write(ld_spool *s);

/* finish_batch answers every waiter of the batch just synced (or failed). */
static void finish_batch(ld_spool *s, int status)
{
    ld_spool_batch *b = s->writing;
    s->writing = NULL;
    if (status == 0) s->stats.syncs++;
    for (waiter *w = b->waiters; w;) {
        waiter *n = w->next;
        for (size_t i = 0; i < w->n; i++) {
            ld_spool_entry *e = w->entries[i];
            if (!e) continue;
            if (status == 0) e->durable = 1;
            else if (e->claim) claim_forget(s, e); /* never durable: never escalated on it */
            else forget(s, e); /* never durable: never answered ACCEPTED */
        }
        if (w->cb) w->cb(w->arg, status, w->res, w->n);
        free(w);
        w = n;
    }
    free(b->data);
    free(b);
    if (!s->next) return;
    if (status == 0) {
        start_write(s);
    } else {
        s->writing = s->next; /* the file is broken: fail what waits, too */
        s->next = NULL;
        finish_batch(s, status);
    }
}

static void on_synced(uv_fs_t *req)
{
    ld_spool *s = req->data;
    int rv = (int)req->result;
    uv_fs_req_cleanup(req);
    if (rv < 0) {
        s->broken = 1;
        ld_log(LD_ERR, "SPOOL-SYNC", "%s: fdatasync failed: %s; the spool takes nothing more",
               s->path, uv_strerror(rv));
    }
    finish_batch(s, rv < 0 ? LD_EIO : 0);
}

static void on_written(uv_fs_t *req)
{
    ld_spool *s = req->data;
    ssize_t rv = req->result;
    uv_fs_req_cleanup(req);
    if (rv < 0 || (size_t)rv != s->writing->len) {
        /* A partial record would hide every later one from the next start. */
        s->broken = 1;
        ld_log(LD_ERR, "SPOOL-WRITE", "%s: write failed: %s; the spool takes nothing more",
               s->path, rv < 0 ? uv_strerror((int)rv) : "short write");
        finish_batch(s, LD_EIO);
        return;
    }
    s->req.data = s;
    if (uv_fs_fdatasync(s->loop, &s->req, s->fd, on_synced) != 0) {
        s->broken = 1;
        finish_batch(s, LD_EIO);
    }
}

static void start_write(ld_spool *s)
{
    if (s->writing || !s->next) return;
    s->writing = s->next;
    s->next = NULL;
    s->buf = uv_buf_init((char *)s->writing->data, (unsigned)s->writing->len);
    s->req.data = s;
    if (uv_fs_write(s->loop, &s->req, s->fd, &s->buf, 1, -1, on_written) != 0) {
        s->broken = 1;
        finish_batch(s, LD_EIO);
    }
}

static int batch_put(ld_spool_batch *b, const ld_spool_entry *e)
{
    size_t sl = strlen(e->sid) + 1, al = strlen(e->src) + 1, el = strlen(e->eid) + 1;
    size_t len = sl + al + el + e->pblen, need = b->len + HEADER + len;
    if (need > b->cap) {
        size_t cap = need * 2;
        uint8_t *d = realloc(b->data, cap);
        if (!d) return LD_ENOMEM;
        b->data = d, b->cap = cap;
    }
    uint8_t *p = b->data + b->len + HEADER;
    memcpy(p, e->sid, sl);
    memcpy(p + sl, e->src, al);
    memcpy(p + sl + al, e->eid, el);
    memcpy(p + sl + al + el, e->pb, e->pblen);
    put_u32(b->data + b->len, (uint32_t)len);
    put_u32(b->data + b->len + 4, fnv1a(p, len));
    b->len = need;
    return 0;
}

/* open_file opens the spool file for appending, once. */
static int open_file(ld_spool *s)
{
    if (s->fd >= 0) return 0;
    s->fd = open(s->path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (s->fd < 0) {
        ld_log_rl(LD_ERR, "SPOOL-OPEN", "%s: %s", s->path, strerror(errno));
        return LD_EIO;
    }
    s->exists = 1;
    return 0;
}

int ld_spool_append(ld_spool *s, const ld_append_item *items, size_t n, ld_spool_cb cb,
                    void *arg)
{
    if (s->broken) return LD_EIO;
    size_t bytes = 0;
    for (size_t i = 0; i < n; i++) bytes += items[i].pblen + sizeof(ld_spool_entry);
    if (s->count + n > s->max_events || s->bytes + bytes > s->max_bytes) {
        s->stats.refused += n;
        return LD_EBUSY;
    }
    int rv = open_file(s);
    if (rv != 0) return rv;
    if (!s->next && !(s->next = calloc(1, sizeof *s->next))) return LD_ENOMEM;
    waiter *w = calloc(1, sizeof *w + n * (sizeof(ld_spool_entry *) + sizeof(ld_spool_result)));
    if (!w) return LD_ENOMEM;
    w->cb = cb, w->arg = arg, w->n = n;
    w->entries = (ld_spool_entry **)(w + 1);
    w->res = (ld_spool_result *)(w->entries + n);
    uint64_t now = ld_wall_ms();
    size_t mark = s->next->len;
    for (size_t i = 0; i < n; i++) {
        ld_spool_entry *old = ld_spool_find(s, items[i].src, items[i].eid);
        if (old) { /* twice in one request, or resent while the first is being written */
            memcpy(w->res[i].sid, old->sid, sizeof old->sid);
            w->res[i].duplicate = 1;
            continue;
        }
        char sid[LD_SPOOL_ID_LEN];
        snprintf(sid, sizeof sid, "S%llu-%llu", (unsigned long long)now,
                 (unsigned long long)s->seq++);
        ld_spool_entry *e = entry_new(sid, items[i].src, items[i].eid, items[i].pb,
                                      items[i].pblen);
        int added = e && entry_add(s, e) == 0;
        if (!added || batch_put(s->next, e) != 0) {
            /* Undo this call's entries: nothing of it was written. The batch
             * may hold their records already; drop the whole pending batch's
             * tail by resetting it to before this call. */
            if (added) forget(s, e);
            else entry_free(e);
            for (size_t j = 0; j < i; j++)
                if (w->entries[j]) forget(s, w->entries[j]);
            s->next->len = mark;
            free(w);
            return LD_ENOMEM;
        }
        w->entries[i] = e;
        e->opened = 1; /* the caller opens it once it is synced */
        memcpy(w->res[i].sid, sid, sizeof sid);
        s->stats.spooled++;
    }
    if (s->next->last) s->next->last->next = w;
    else s->next->waiters = w;
    s->next->last = w;
    start_write(s);
    return 0;
}

int ld_spool_claim(ld_spool *s, const char *key, const char *value, ld_spool_cb cb, void *arg)
{
    if (s->broken) return LD_EIO;
    if (s->nclaims >= s->max_events) {
        s->stats.refused++;
        return LD_EBUSY;
    }
    int rv = open_file(s);
    if (rv != 0) return rv;
    if (!s->next && !(s->next = calloc(1, sizeof *s->next))) return LD_ENOMEM;
    waiter *w = calloc(1, sizeof *w + sizeof(ld_spool_entry *));
    ld_spool_entry *c = entry_new("F", key, value, (const uint8_t *)"", 0);
    if (!w || !c || claim_add(s, c) != 0) {
        free(w);
        if (c && c->claim) claim_forget(s, c);
        else entry_free(c);
        return LD_ENOMEM;
    }
    if (batch_put(s->next, c) != 0) {
        claim_forget(s, c);
        free(w);
        return LD_ENOMEM;
    }
    w->cb = cb, w->arg = arg, w->n = 1;
    w->entries = (ld_spool_entry **)(w + 1);
    w->entries[0] = c;
    if (s->next->last) s->next->last->next = w;
    else s->next->waiters = w;
    s->next->last = w;
    s->stats.claims++;
    start_write(s);
    return 0;
}

static void on_unlinked(uv_fs_t *req)
{
    uv_fs_req_cleanup(req);
    free(req);
}

void ld_spool_remove_file(ld_spool *s)
{
    if (s->count || s->nclaims || s->writing || s->next || !s->exists) return;
    if (s->fd >= 0) close(s->fd);
    s->fd = -1;
    s->exists = 0;
    uv_fs_t *req = malloc(sizeof *req);
    if (!req || uv_fs_unlink(s->loop, req, s->path, on_unlinked) != 0) free(req);
}
