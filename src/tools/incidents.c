/* incidents.c: `linkctl incidents`: the open incidents, most urgent first, or
 * one incident in detail, read straight from Redis (ld:open and ld:inc:<id>,
 * docs/PROTOCOL.md "Redis keys"), so it works while linkd is down.
 *
 * Text from Redis is sanitized before it reaches the terminal and escaped in
 * JSON. A record that is missing or does not decode is named and counted,
 * and the exit code says so (65); the others are still shown. */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <time.h>

#include <hiredis/hiredis.h>

#include "core/buf.h"
#include "core/clock.h"
#include "core/diag.h"
#include "rules/rules.h"
#include "tools/linkctl.h"

enum { PAGE = 256, LIMIT_DEFAULT = 50, LIMIT_MAX = 10000 };

typedef struct inc_opts {
    const char *url, *dept, *rules_dir, *id;
    uint32_t limit;
    bool json, help;
} inc_opts;

/* One run: the connection, how it prints, what it counted. */
typedef struct inc_run {
    redisContext *c;
    const inc_opts *o;
    ld_rules *rules;  /* with --rules, for level names; else NULL */
    ld_buf json;      /* one incident's JSON at a time */
    int64_t now;      /* wall clock (ms): deadlines are shown from here */
    bool colour;
    size_t shown, bad;
} inc_run;

static const char *const leg_names[] = {"acknowledge", "arrive", "feedback", "resolve"};

static void usage(void)
{
    puts("Usage: linkctl incidents [--redis URL] [--dept D] [--limit N] [--json]\n"
         "       linkctl incidents [--redis URL] [--rules DIR] [--json] INCIDENT\n"
         "\n"
         "Without INCIDENT: the open incidents (Redis: ld:open), the nearest deadline\n"
         "first and those with no deadline pending last, one line each: id, opened\n"
         "(time of day), kind/category, priority, district/grid, the next deadline from\n"
         "now (negative: overdue) and the tasks as department@Llevel:state.\n"
         "With INCIDENT: that incident in detail, open or closed (closed records are kept\n"
         "90 days): its tasks with each deadline and when it was met, merged events and\n"
         "its history. Reads Redis only, so it works while linkd is down; spans are from\n"
         "this machine's clock (not linkd's under --time-scale).\n"
         "\n"
         "  --redis URL   redis://[user[:password]@]host:port[/db] or unix:///path\n"
         "                (default " CTL_REDIS_URL "); a user without a password reads it\n"
         "                from the file LINKCTL_REDIS_PASSWORD_FILE names\n"
         "  --dept D      only incidents with a task for department D\n"
         "  --limit N     show at most N incidents (default 50, at most 10000)\n"
         "  --rules DIR   name each task's level from these rules (records keep its number)\n"
         "  --json        one JSON object: {\"open\":N,\"incidents\":[...],\"shown\":M,\n"
         "                \"unreadable\":K}, or the incident\n"
         "\n"
         "Exit: 0 ok, 64 usage, 65 a record missing or not decodable (named, counted;\n"
         "the others are still listed), 66 no record for INCIDENT, 69 Redis unreachable\n"
         "or refusing the read.");
}

/* ---- small formatters ------------------------------------------------------- */

/* enum_label returns the short name of <v>, "-" if unset, or its number if
 * this linkctl does not know it (a newer linkd wrote it). */
static const char *enum_label(const ProtobufCEnumDescriptor *d, bool has, int v, char *buf,
                              size_t len)
{
    if (!has) return "-";
    const char *n = ld_enum_name(d, v);
    if (n) return n;
    snprintf(buf, len, "%d", v);
    return buf;
}

/* fmt_date writes <ms> as a local date and time, "2026-11-22 14:03:27". */
static const char *fmt_date(int64_t ms, char *buf, size_t len)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    if (ms <= 0 || !localtime_r(&t, &tm) || strftime(buf, len, "%Y-%m-%d %H:%M:%S", &tm) == 0)
        snprintf(buf, len, "-");
    return buf;
}

/* fmt_rel writes <ms> relative to <now>: "in 25s" or "2m10s ago". */
static const char *fmt_rel(int64_t ms, int64_t now, char *buf, size_t len)
{
    char span[32];
    ctl_fmt_span(ms >= now ? ms - now : now - ms, span, sizeof span);
    snprintf(buf, len, ms >= now ? "in %s" : "%s ago", span);
    return buf;
}

/* level_name is the task's level as its rules call it: from the record if it
 * has one, else from --rules (the department's chain, then command's, as
 * escalation climbs it); NULL if neither says. */
static const char *level_name(const inc_run *r, const Linkd__V1__Task *t)
{
    if (t->level_name && *t->level_name) return t->level_name;
    int d = r->rules && t->department ? ld_rules_department(r->rules, t->department) : -1;
    if (d < 0 || !t->has_level) return NULL;
    const ld_department *dep = &r->rules->departments[d];
    const ld_department *cmd = &r->rules->departments[r->rules->command];
    uint32_t lv = t->level;
    if (lv < (uint32_t)dep->nlevels) return dep->levels[lv].name;
    if (dep == cmd) return NULL;
    lv -= (uint32_t)dep->nlevels;
    return lv < (uint32_t)cmd->nlevels ? cmd->levels[lv].name : NULL;
}

static bool has_dept(const Linkd__V1__IncidentRecord *rec, const char *dept)
{
    for (size_t i = 0; i < rec->n_tasks; i++) {
        const Linkd__V1__Task *t = rec->tasks[i]->task;
        if (t && t->department && strcmp(t->department, dept) == 0) return true;
    }
    return false;
}

/* leg_times gives a task's deadline and completion of leg <l> (0 if none). */
static void leg_times(const Linkd__V1__TaskRecord *tr, int l, int64_t *due, int64_t *done)
{
    const Linkd__V1__Task *t = tr->task;
    switch (l) {
    case 0: *due = t->has_acknowledge_by_ms ? t->acknowledge_by_ms : 0;
            *done = tr->has_acknowledged_at_ms ? tr->acknowledged_at_ms : 0; break;
    case 1: *due = t->has_arrive_by_ms ? t->arrive_by_ms : 0;
            *done = tr->has_arrived_at_ms ? tr->arrived_at_ms : 0; break;
    case 2: *due = t->has_feedback_by_ms ? t->feedback_by_ms : 0;
            *done = tr->has_feedback_at_ms ? tr->feedback_at_ms : 0; break;
    default: *due = t->has_resolve_by_ms ? t->resolve_by_ms : 0;
             *done = tr->has_resolved_at_ms ? tr->resolved_at_ms : 0; break;
    }
}

/* history_task is the task a history entry is about; NULL for an entry about
 * the incident as a whole (opened, closed, merged, unmerged). */
static const Linkd__V1__Task *history_task(const Linkd__V1__IncidentRecord *rec,
                                           const Linkd__V1__HistoryEntry *h)
{
    switch (h->has_kind ? (int)h->kind : 0) {
    case LINKD__V1__FEED_KIND__FEED_KIND_INCIDENT_OPENED:
    case LINKD__V1__FEED_KIND__FEED_KIND_INCIDENT_CLOSED:
    case LINKD__V1__FEED_KIND__FEED_KIND_INCIDENT_MERGED:
    case LINKD__V1__FEED_KIND__FEED_KIND_INCIDENT_UNMERGED: return NULL;
    default:
        return h->has_task_index && h->task_index < rec->n_tasks ? rec->tasks[h->task_index]->task
                                                                  : NULL;
    }
}

/* ---- JSON ------------------------------------------------------------------- */

static void key(ld_buf *b, const char *k)
{
    ld_buf_json_str(b, k);
    ld_buf_put(b, ":", 1);
}

/* kv_str writes "k":"v", (nothing when <v> is NULL). */
static void kv_str(ld_buf *b, const char *k, const char *v)
{
    if (!v) return;
    key(b, k);
    ld_buf_json_str(b, v);
    ld_buf_put(b, ",", 1);
}

static void kv_i64(ld_buf *b, const char *k, int64_t v)
{
    key(b, k);
    ld_buf_printf(b, "%lld,", (long long)v);
}

/* close_with drops a trailing comma, then closes the object or array. */
static void close_with(ld_buf *b, const char *c)
{
    if (b->len && b->p[b->len - 1] == ',') b->len--;
    ld_buf_puts(b, c);
}

static void json_task(const inc_run *r, ld_buf *b, const Linkd__V1__TaskRecord *tr)
{
    const Linkd__V1__Task *t = tr->task;
    ld_buf_puts(b, "{");
    kv_str(b, "task_id", t->task_id);
    kv_str(b, "department", t->department);
    kv_str(b, "terminal", t->terminal);
    kv_i64(b, "level", t->has_level ? t->level : 0);
    kv_str(b, "level_name", level_name(r, t));
    kv_str(b, "state", t->has_state ? ld_enum_name(&linkd__v1__task_state__descriptor, t->state) : NULL);
    if (t->has_dispatched_at_ms) kv_i64(b, "dispatched_at_ms", t->dispatched_at_ms);
    kv_str(b, "rule", t->rule);
    kv_str(b, "reason", t->reason);
    kv_str(b, "leader", t->leader);
    kv_str(b, "disposition", tr->disposition);
    kv_str(b, "feedback", tr->feedback);
    key(b, "legs");
    ld_buf_puts(b, "[");
    for (int l = 0; l < 4; l++) {
        int64_t due, done;
        leg_times(tr, l, &due, &done);
        if (!due && !done) continue;
        ld_buf_puts(b, "{");
        kv_str(b, "leg", leg_names[l]);
        if (due) kv_i64(b, "due_ms", due);
        if (done) kv_i64(b, "done_ms", done);
        close_with(b, "},");
    }
    close_with(b, "]}");
}

static void json_merged(ld_buf *b, const Linkd__V1__IncidentRecord *rec)
{
    key(b, "merged");
    ld_buf_puts(b, "[");
    for (size_t i = 0; i < rec->n_merged; i++) {
        const Linkd__V1__MergedEvent *m = rec->merged[i];
        ld_buf_puts(b, "{");
        kv_str(b, "event_id", m->event_id);
        kv_str(b, "stream_id", m->stream_id);
        kv_str(b, "source_id", m->source_id);
        kv_str(b, "incident", m->incident_id);
        kv_str(b, "rule", m->rule);
        if (m->has_distance_m) kv_i64(b, "distance_m", m->distance_m);
        if (m->has_at_ms) kv_i64(b, "at_ms", m->at_ms);
        close_with(b, "},");
    }
    close_with(b, "],");
}

static void json_history(ld_buf *b, const Linkd__V1__IncidentRecord *rec)
{
    key(b, "history");
    ld_buf_puts(b, "[");
    for (size_t i = 0; i < rec->n_history; i++) {
        const Linkd__V1__HistoryEntry *h = rec->history[i];
        const Linkd__V1__Task *t = history_task(rec, h);
        ld_buf_puts(b, "{");
        if (h->has_at_ms) kv_i64(b, "at_ms", h->at_ms);
        kv_str(b, "kind", h->has_kind ? ld_enum_name(&linkd__v1__feed_kind__descriptor, h->kind) : NULL);
        kv_str(b, "department", t ? t->department : NULL);
        if (h->has_level) kv_i64(b, "level", h->level);
        kv_str(b, "terminal", h->terminal);
        kv_str(b, "leg", h->has_leg ? ld_enum_name(&linkd__v1__leg__descriptor, h->leg) : NULL);
        kv_str(b, "note", h->note);
        close_with(b, "},");
    }
    close_with(b, "],");
}

static void json_place(ld_buf *b, const Linkd__V1__Location *loc)
{
    if (!loc) return;
    kv_str(b, "district", loc->district);
    kv_str(b, "grid", loc->grid);
    kv_str(b, "address", loc->address);
    if (loc->has_lat && loc->has_lon && isfinite(loc->lat) && isfinite(loc->lon))
        ld_buf_printf(b, "\"lat\":%.6f,\"lon\":%.6f,", loc->lat, loc->lon);
}

/* json_incident writes one incident into r->json; <due> is its ld:open score
 * (0: none pending, -1: not in ld:open). <detail> adds merged events and history. */
static void json_incident(inc_run *r, const char *id, const Linkd__V1__IncidentRecord *rec,
                          int64_t due, bool detail)
{
    ld_buf *b = &r->json;
    ld_buf_puts(b, "{");
    kv_str(b, "id", id);
    kv_str(b, "event_id", rec->event_id);
    kv_str(b, "source_id", rec->source_id);
    kv_str(b, "kind", rec->kind);
    kv_str(b, "category", rec->category);
    kv_str(b, "priority", rec->has_priority ? ld_enum_name(&linkd__v1__priority__descriptor, rec->priority) : NULL);
    kv_str(b, "status", rec->has_status ? ld_enum_name(&linkd__v1__status__descriptor, rec->status) : NULL);
    kv_str(b, "summary", rec->summary);
    json_place(b, rec->location);
    if (rec->has_people) kv_i64(b, "people", rec->people);
    if (rec->has_opened_at_ms) kv_i64(b, "opened_at_ms", rec->opened_at_ms);
    if (rec->has_closed_at_ms) kv_i64(b, "closed_at_ms", rec->closed_at_ms);
    key(b, "open");
    ld_buf_puts(b, due >= 0 ? "true," : "false,");
    if (due > 0) kv_i64(b, "next_due_ms", due);
    if (rec->has_signed_off_at_ms) kv_i64(b, "signed_off_at_ms", rec->signed_off_at_ms);
    key(b, "tasks");
    ld_buf_puts(b, "[");
    for (size_t i = 0; i < rec->n_tasks; i++) {
        if (!rec->tasks[i]->task) continue;
        json_task(r, b, rec->tasks[i]);
        ld_buf_puts(b, ",");
    }
    close_with(b, "],");
    if (detail) {
        json_merged(b, rec);
        json_history(b, rec);
    }
    close_with(b, "}");
}

/* json_flush writes what r->json holds to stdout and empties it. */
static void json_flush(inc_run *r)
{
    if (r->json.oom) ctl_warn("out of memory writing JSON");
    else fwrite(r->json.p, 1, r->json.len, stdout);
    ld_buf_reset(&r->json);
}

/* ---- the list ----------------------------------------------------------------- */

static void print_tasks(const Linkd__V1__IncidentRecord *rec)
{
    char dept[40], sbuf[16];
    for (size_t i = 0; i < rec->n_tasks; i++) {
        const Linkd__V1__Task *t = rec->tasks[i]->task;
        if (!t) continue;
        printf(" %s@L%u:%s", ctl_sanitize(t->department, dept, sizeof dept),
               t->has_level ? t->level : 0,
               enum_label(&linkd__v1__task_state__descriptor, t->has_state, t->state, sbuf, sizeof sbuf));
    }
}

static void print_line(const inc_run *r, const char *id, const Linkd__V1__IncidentRecord *rec,
                       int64_t due)
{
    char sid[LD_MAX_ID_LEN + 1], opened[16], kind[24], cat[40], what[72], dist[32], grid[40],
        where[80], next[32] = "-", pbuf[16];
    const Linkd__V1__Location *loc = rec->location;
    ctl_fmt_clock(rec->has_opened_at_ms ? rec->opened_at_ms : 0, opened, sizeof opened);
    snprintf(what, sizeof what, "%s/%s", ctl_sanitize(rec->kind ? rec->kind : "?", kind, sizeof kind),
             ctl_sanitize(rec->category ? rec->category : "?", cat, sizeof cat));
    snprintf(where, sizeof where, "%s/%s",
             ctl_sanitize(loc && loc->district ? loc->district : "-", dist, sizeof dist),
             ctl_sanitize(loc && loc->grid ? loc->grid : "-", grid, sizeof grid));
    if (due > 0) ctl_fmt_span(due - r->now, next, sizeof next);
    const char *on = r->colour && due > 0 && due < r->now ? CTL_RED : "", *off = *on ? CTL_RESET : "";
    printf("%-22s %s  %-26s %-8s %-22s %s%-9s%s", ctl_sanitize(id, sid, sizeof sid), opened, what,
           enum_label(&linkd__v1__priority__descriptor, rec->has_priority, rec->priority, pbuf,
                      sizeof pbuf),
           where, on, next, off);
    print_tasks(rec);
    if (rec->has_closed_at_ms) printf(" (closed)");
    putchar('\n');
}

static void print_unreadable(const inc_run *r, const char *id, const char *why)
{
    char sid[LD_MAX_ID_LEN + 1];
    ctl_sanitize(id, sid, sizeof sid);
    printf("%s%-22s UNREADABLE: %s (ld:inc:%s)%s\n", r->colour ? CTL_RED : "", sid, why, sid,
           r->colour ? CTL_RESET : "");
}

/* emit shows one entry of the list: an incident, or (<rec> NULL) a member of
 * ld:open whose record is missing or does not decode, and why. */
static void emit(inc_run *r, const char *id, const Linkd__V1__IncidentRecord *rec, int64_t due,
                 const char *why)
{
    if (!r->o->json) {
        if (rec) print_line(r, id, rec, due);
        else print_unreadable(r, id, why);
    } else {
        if (r->shown) ld_buf_puts(&r->json, ",");
        if (rec) {
            json_incident(r, id, rec, due, false);
        } else {
            ld_buf_puts(&r->json, "{");
            kv_str(&r->json, "id", id);
            kv_str(&r->json, "error", why);
            close_with(&r->json, "}");
        }
        json_flush(r);
    }
    r->shown++;
}

/* show_record shows one member of ld:open from its MGET answer <v>. An
 * unreadable record is shown even with --dept: nobody can tell its tasks. */
static void show_record(inc_run *r, const char *id, int64_t due, const redisReply *v)
{
    Linkd__V1__IncidentRecord *rec = NULL;
    if (v->type == REDIS_REPLY_STRING)
        rec = linkd__v1__incident_record__unpack(NULL, v->len, (const uint8_t *)v->str);
    if (!rec) {
        r->bad++;
        emit(r, id, NULL, due,
             v->type == REDIS_REPLY_STRING ? "the record does not decode" : "no record");
        return;
    }
    if (!r->o->dept || has_dept(rec, r->o->dept)) emit(r, id, rec, due, NULL);
    linkd__v1__incident_record__free_unpacked(rec, NULL);
}

/* show_page fetches the records of one page of ld:open (<ids>: member, score,
 * member, score ...) with one MGET and shows them. Returns 0 or EX_UNAVAILABLE. */
static int show_page(inc_run *r, const redisReply *ids)
{
    /* A member longer than any incident id is looked up cut short: no record. */
    char keys[PAGE][LD_MAX_ID_LEN + 8];
    const char *argv[PAGE + 1] = {"MGET"};
    size_t lens[PAGE + 1] = {4}, n = ids->elements / 2;
    for (size_t i = 0; i < n; i++) {
        const char *id = ids->element[2 * i]->str ? ids->element[2 * i]->str : "";
        int kl = snprintf(keys[i], sizeof keys[i], "ld:inc:%s", id);
        argv[i + 1] = keys[i];
        lens[i + 1] = kl < (int)sizeof keys[i] ? (size_t)kl : sizeof keys[i] - 1;
    }
    redisReply *recs = redisCommandArgv(r->c, (int)n + 1, argv, lens);
    if (!recs || recs->type != REDIS_REPLY_ARRAY || recs->elements != n) {
        ctl_warn("MGET of %zu records failed: %s", n,
                 recs && recs->type == REDIS_REPLY_ERROR ? recs->str : r->c->errstr);
        if (recs) freeReplyObject(recs);
        return EX_UNAVAILABLE;
    }
    for (size_t i = 0; i < n && r->shown < r->o->limit; i++) {
        const redisReply *score = ids->element[2 * i + 1];
        int64_t due = score->str ? (int64_t)strtod(score->str, NULL) : 0;
        show_record(r, ids->element[2 * i]->str ? ids->element[2 * i]->str : "", due,
                    recs->element[i]);
    }
    freeReplyObject(recs);
    return 0;
}

/* list_range shows the members of ld:open scored in [min, max], lowest
 * first, a page at a time, until the limit is reached. Returns 0 or
 * EX_UNAVAILABLE. Pages are separate reads, not one snapshot: while linkd
 * runs, an incident whose deadline moves meanwhile can be missed or shown
 * twice. Without --dept only as many as still fit are read. */
static int list_range(inc_run *r, const char *min, const char *max)
{
    for (size_t off = 0; r->shown < r->o->limit;) {
        size_t want = r->o->dept ? PAGE : r->o->limit - r->shown;
        if (want > PAGE) want = PAGE;
        redisReply *ids = redisCommand(r->c, "ZRANGEBYSCORE ld:open %s %s WITHSCORES LIMIT %llu %llu",
                                       min, max, (unsigned long long)off, (unsigned long long)want);
        if (!ids || ids->type != REDIS_REPLY_ARRAY) {
            ctl_warn("ZRANGEBYSCORE ld:open failed: %s",
                     ids && ids->type == REDIS_REPLY_ERROR ? ids->str : r->c->errstr);
            if (ids) freeReplyObject(ids);
            return EX_UNAVAILABLE;
        }
        size_t n = ids->elements / 2;
        int rv = n ? show_page(r, ids) : 0;
        freeReplyObject(ids);
        if (rv || n < want) return rv;
        off += n;
    }
    return 0;
}

static void print_totals(const inc_run *r, long long open)
{
    char dept[40];
    if (r->o->json) {
        printf("],\"shown\":%zu,\"unreadable\":%zu}\n", r->shown, r->bad);
        return;
    }
    printf("%lld open incident%s, %zu shown", open, open == 1 ? "" : "s", r->shown);
    if (r->o->dept) printf(" (with a task for %s)", ctl_sanitize(r->o->dept, dept, sizeof dept));
    if (r->bad)
        printf(", %s%zu unreadable%s", r->colour ? CTL_RED : "", r->bad, r->colour ? CTL_RESET : "");
    putchar('\n');
}

static int list_open(inc_run *r)
{
    redisReply *z = redisCommand(r->c, "ZCARD ld:open");
    if (!z || z->type != REDIS_REPLY_INTEGER) {
        ctl_warn("ZCARD ld:open failed: %s", z && z->type == REDIS_REPLY_ERROR ? z->str : r->c->errstr);
        if (z) freeReplyObject(z);
        return EX_UNAVAILABLE;
    }
    long long open = z->integer;
    freeReplyObject(z);
    if (r->o->json)
        printf("{\"open\":%lld,\"incidents\":[", open);
    else
        printf("%s%-22s %-8s  %-26s %-8s %-22s %-9s %s%s\n", r->colour ? CTL_DIM : "", "INCIDENT",
               "OPENED", "KIND", "PRIORITY", "DISTRICT/GRID", "NEXT", "TASKS",
               r->colour ? CTL_RESET : "");
    /* Pending deadlines first, nearest first; then score 0, nothing pending. */
    int rv = list_range(r, "(0", "+inf");
    if (rv == 0) rv = list_range(r, "0", "0");
    if (rv) {
        fflush(stdout);
        return rv;
    }
    print_totals(r, open);
    return r->bad ? EX_DATAERR : EX_OK;
}

/* ---- one incident --------------------------------------------------------------- */

static void print_header(const inc_run *r, const char *id, const Linkd__V1__IncidentRecord *rec,
                         int64_t due)
{
    char sid[LD_MAX_ID_LEN + 1], a[160], b[160], c[64], d[64], when[40], rel[48], e1[16], e2[16];
    const Linkd__V1__Location *loc = rec->location;
    printf("%sincident %s%s  ", r->colour ? CTL_BOLD : "", ctl_sanitize(id, sid, sizeof sid),
           r->colour ? CTL_RESET : "");
    if (due > 0)
        printf("open, next deadline %s\n", fmt_rel(due, r->now, rel, sizeof rel));
    else if (due == 0)
        puts("open, no deadline pending");
    else
        puts(rec->has_closed_at_ms ? "closed" : "not in ld:open");
    printf("  event     %s from %s, status %s\n", ctl_sanitize(rec->event_id, a, sizeof a),
           ctl_sanitize(rec->source_id, b, sizeof b),
           enum_label(&linkd__v1__status__descriptor, rec->has_status, rec->status, e1, sizeof e1));
    printf("  kind      %s/%s, priority %s\n", ctl_sanitize(rec->kind, c, sizeof c),
           ctl_sanitize(rec->category, d, sizeof d),
           enum_label(&linkd__v1__priority__descriptor, rec->has_priority, rec->priority, e2, sizeof e2));
    if (rec->has_opened_at_ms)
        printf("  opened    %s (%s)\n", fmt_date(rec->opened_at_ms, when, sizeof when),
               fmt_rel(rec->opened_at_ms, r->now, rel, sizeof rel));
    if (rec->has_closed_at_ms)
        printf("  closed    %s (%s)\n", fmt_date(rec->closed_at_ms, when, sizeof when),
               fmt_rel(rec->closed_at_ms, r->now, rel, sizeof rel));
    if (loc) {
        printf("  location  district %s, grid %s", ctl_sanitize(loc->district ? loc->district : "-", c, sizeof c),
               ctl_sanitize(loc->grid ? loc->grid : "-", d, sizeof d));
        if (loc->has_lat && loc->has_lon) printf(", %.6f %.6f", loc->lat, loc->lon);
        if (loc->address) printf(", %s", ctl_sanitize(loc->address, a, sizeof a));
        putchar('\n');
    }
    char sum[LD_MAX_TEXT_LEN];
    printf("  summary   %s\n", ctl_sanitize(rec->summary ? rec->summary : "-", sum, sizeof sum));
    if (rec->has_people) printf("  people    %u\n", rec->people);
}

static void print_sign_off(const Linkd__V1__IncidentRecord *rec)
{
    char dept[40], when[40];
    if (!rec->n_sign_off) return;
    printf("  sign-off ");
    for (size_t i = 0; i < rec->n_sign_off; i++)
        printf("%s%s", i ? ", " : " ", ctl_sanitize(rec->sign_off[i], dept, sizeof dept));
    if (rec->has_signed_off_at_ms)
        printf("; all signed %s\n", fmt_date(rec->signed_off_at_ms, when, sizeof when));
    else
        puts("; not all acknowledged yet");
}

static void print_legs(const inc_run *r, const Linkd__V1__TaskRecord *tr)
{
    char when[40], rel[48], met[40];
    for (int l = 0; l < 4; l++) {
        int64_t due, done;
        leg_times(tr, l, &due, &done);
        /* Arrival or feedback due with resolution (a petition has no arrive
         * budget): no deadline of its own, not shown. */
        if (!due || ((l == 1 || l == 2) && !done && due == tr->task->resolve_by_ms)) continue;
        printf("      %-12s due %s", leg_names[l], fmt_date(due, when, sizeof when));
        if (done)
            printf(", met %s%s\n", fmt_date(done, met, sizeof met), done > due ? " (late)" : "");
        else
            printf(" (%s)\n", fmt_rel(due, r->now, rel, sizeof rel));
    }
}

/* print_text writes " <label> <s>" on a line of its own if <s> is set. */
static void print_text(const char *label, const char *s)
{
    char buf[LD_MAX_TEXT_LEN];
    if (s && *s) printf("      %-12s %s\n", label, ctl_sanitize(s, buf, sizeof buf));
}

static void print_task(const inc_run *r, const Linkd__V1__TaskRecord *tr)
{
    const Linkd__V1__Task *t = tr->task;
    char dept[40], term[56], lname[40], st[16], tid[LD_MAX_ID_LEN + 48], when[40];
    const char *ln = level_name(r, t);
    printf("  task %s  L%u%s%s  terminal %s  %s\n", ctl_sanitize(t->department, dept, sizeof dept),
           t->has_level ? t->level : 0, ln ? " " : "", ln ? ctl_sanitize(ln, lname, sizeof lname) : "",
           ctl_sanitize(t->terminal ? t->terminal : "-", term, sizeof term),
           enum_label(&linkd__v1__task_state__descriptor, t->has_state, t->state, st, sizeof st));
    if (t->task_id) printf("      %-12s %s\n", "id", ctl_sanitize(t->task_id, tid, sizeof tid));
    if (t->has_dispatched_at_ms)
        printf("      %-12s %s%s\n", "dispatched", fmt_date(t->dispatched_at_ms, when, sizeof when),
               tr->has_received && !tr->received ? " (not yet receipted)" : "");
    print_text("rule", t->rule);
    print_legs(r, tr);
    print_text("reason", t->reason);
    print_text("leader", t->leader);
    print_text("feedback", tr->feedback);
    print_text("disposition", tr->disposition);
}

static void print_merged(const Linkd__V1__IncidentRecord *rec)
{
    char when[40], a[LD_MAX_ID_LEN + 1], b[LD_MAX_ID_LEN + 1], c[200];
    if (!rec->n_merged) return;
    printf("merged (%zu):\n", rec->n_merged);
    for (size_t i = 0; i < rec->n_merged; i++) {
        const Linkd__V1__MergedEvent *m = rec->merged[i];
        printf("  %s  ", fmt_date(m->has_at_ms ? m->at_ms : 0, when, sizeof when));
        if (m->incident_id)
            printf("incident %s (merged by a supervisor)", ctl_sanitize(m->incident_id, a, sizeof a));
        else
            printf("event %s from %s", ctl_sanitize(m->event_id, a, sizeof a),
                   ctl_sanitize(m->source_id, b, sizeof b));
        if (m->rule) printf(", rule %s", ctl_sanitize(m->rule, c, sizeof c));
        if (m->has_distance_m) printf(", %u m away", m->distance_m);
        putchar('\n');
    }
}

static void print_history(const Linkd__V1__IncidentRecord *rec)
{
    char when[40], kb[16], dept[40], term[56], note[LD_MAX_TEXT_LEN];
    printf("history (%zu):\n", rec->n_history);
    for (size_t i = 0; i < rec->n_history; i++) {
        const Linkd__V1__HistoryEntry *h = rec->history[i];
        const Linkd__V1__Task *t = history_task(rec, h);
        const char *leg = h->has_leg ? ld_enum_name(&linkd__v1__leg__descriptor, h->leg) : NULL;
        printf("  %s  %-*s", fmt_date(h->has_at_ms ? h->at_ms : 0, when, sizeof when),
               t || leg || h->note ? 20 : 0,
               enum_label(&linkd__v1__feed_kind__descriptor, h->has_kind, (int)h->kind, kb, sizeof kb));
        if (t)
            printf(" %s L%u %s", ctl_sanitize(t->department, dept, sizeof dept), h->level,
                   ctl_sanitize(h->terminal ? h->terminal : "-", term, sizeof term));
        if (leg) printf(" leg %s", leg);
        if (h->note) printf(": %s", ctl_sanitize(h->note, note, sizeof note));
        putchar('\n');
    }
}

static void print_detail(inc_run *r, const char *id, const Linkd__V1__IncidentRecord *rec,
                         int64_t due)
{
    if (r->o->json) {
        json_incident(r, id, rec, due, true);
        ld_buf_puts(&r->json, "\n");
        json_flush(r);
        return;
    }
    print_header(r, id, rec, due);
    print_sign_off(rec);
    printf("tasks (%zu):\n", rec->n_tasks);
    for (size_t i = 0; i < rec->n_tasks; i++)
        if (rec->tasks[i]->task) print_task(r, rec->tasks[i]);
    print_merged(rec);
    print_history(rec);
}

/* open_score returns the incident's ld:open score (0: nothing pending), -1
 * if it is not in ld:open, or -2 after saying why Redis failed. */
static int64_t open_score(inc_run *r, const char *id)
{
    redisReply *z = redisCommand(r->c, "ZSCORE ld:open %s", id);
    int64_t due = -2;
    if (z && z->type == REDIS_REPLY_NIL) due = -1;
    else if (z && z->type == REDIS_REPLY_STRING) due = (int64_t)strtod(z->str, NULL);
    else ctl_warn("ZSCORE ld:open failed: %s", z && z->type == REDIS_REPLY_ERROR ? z->str : r->c->errstr);
    if (z) freeReplyObject(z);
    return due;
}

static int show_one(inc_run *r, const char *id)
{
    char sid[LD_MAX_ID_LEN + 1];
    ctl_sanitize(id, sid, sizeof sid);
    int64_t due = open_score(r, id);
    if (due == -2) return EX_UNAVAILABLE;
    redisReply *v = redisCommand(r->c, "GET ld:inc:%s", id);
    if (!v || (v->type != REDIS_REPLY_STRING && v->type != REDIS_REPLY_NIL)) {
        ctl_warn("GET ld:inc:%s failed: %s", sid,
                 v && v->type == REDIS_REPLY_ERROR ? v->str : r->c->errstr);
        if (v) freeReplyObject(v);
        return EX_UNAVAILABLE;
    }
    int code = EX_OK;
    Linkd__V1__IncidentRecord *rec = v->type == REDIS_REPLY_STRING
        ? linkd__v1__incident_record__unpack(NULL, v->len, (const uint8_t *)v->str) : NULL;
    if (v->type == REDIS_REPLY_NIL) {
        ctl_warn("no record for %s (ld:inc:%s)%s", sid, sid, due >= 0 ? ", though it is in ld:open" : "");
        code = due >= 0 ? EX_DATAERR : EX_NOINPUT;
    } else if (!rec) {
        ctl_warn("ld:inc:%s (%zu bytes) does not decode as an IncidentRecord", sid, v->len);
        code = EX_DATAERR;
    } else {
        print_detail(r, id, rec, due);
        linkd__v1__incident_record__free_unpacked(rec, NULL);
    }
    freeReplyObject(v);
    return code;
}

/* ---- main ------------------------------------------------------------------------- */

static int parse_args(inc_opts *o, int argc, char **argv)
{
    static const struct option opts[] = {
        {"redis", required_argument, NULL, 'r'}, {"dept", required_argument, NULL, 'd'},
        {"limit", required_argument, NULL, 'n'}, {"rules", required_argument, NULL, 'R'},
        {"json", no_argument, NULL, 'j'},        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    bool list_only = false;
    int opt;
    optind = 0;
    while ((opt = getopt_long(argc, argv, "hjr:d:n:R:", opts, NULL)) != -1) {
        switch (opt) {
        case 'r': o->url = optarg; break;
        case 'd': o->dept = optarg, list_only = true; break;
        case 'n':
            if (ctl_parse_u32(optarg, &o->limit) || o->limit == 0 || o->limit > LIMIT_MAX)
                return ctl_usage_error("--limit: '%s' is not a number from 1 to %d", optarg, LIMIT_MAX);
            list_only = true;
            break;
        case 'R': o->rules_dir = optarg; break;
        case 'j': o->json = true; break;
        case 'h': o->help = true; return 0;
        default: return ctl_usage_error("bad option");
        }
    }
    if (optind + 1 < argc) return ctl_usage_error("give at most one incident id");
    if (optind < argc) o->id = argv[optind];
    if (o->id && list_only) return ctl_usage_error("--dept and --limit are for the list, not one incident");
    if (o->id && (!*o->id || strlen(o->id) > LD_MAX_ID_LEN))
        return ctl_usage_error("'%.40s' is not an incident id", o->id);
    if (strncmp(o->url, "redis://", 8) != 0 && strncmp(o->url, "unix://", 7) != 0)
        return ctl_usage_error("--redis: '%s' is neither redis://host:port[/db] nor unix:///path", o->url);
    return 0;
}

/* load_rules loads --rules for level names; a failure is said and costs only the names. */
static ld_rules *load_rules(const char *dir)
{
    ld_diag diag;
    ld_rules *rules = NULL;
    ld_diag_init(&diag);
    if (ld_rules_load(&rules, dir, &diag) != 0)
        ctl_warn("%s: rules do not load (`linkctl check --rules %s` says why); levels are "
                 "shown by number", dir, dir);
    ld_diag_fini(&diag);
    return rules;
}

int ctl_incidents_main(int argc, char **argv)
{
    inc_opts o = {.url = CTL_REDIS_URL, .limit = LIMIT_DEFAULT};
    int rv = parse_args(&o, argc, argv);
    if (rv || o.help) {
        if (o.help) usage();
        return rv;
    }
    inc_run r = {.o = &o, .now = (int64_t)ld_wall_ms(), .colour = !o.json && ctl_colour()};
    if (!(r.c = ctl_redis_connect(o.url))) {
        return EX_UNAVAILABLE;
    }
    if (o.rules_dir) r.rules = load_rules(o.rules_dir);
    ld_buf_init(&r.json, 0);
    rv = o.id ? show_one(&r, o.id) : list_open(&r);
    fflush(stdout);
    ld_buf_fini(&r.json);
    if (r.rules) ld_rules_free(r.rules);
    redisFree(r.c);
    return rv;
}
