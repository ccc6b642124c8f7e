/* replay.c: `linkctl replay`: read events back from linkd's durable event
 * log (the Redis stream ld:events, one entry per accepted event with its
 * Envelope in field "pb") and send them to an intake again: to a staging
 * linkd after a rules change, to a fresh instance, or to the live one as a
 * drill (--exercise --tag).
 *
 * The log is read in pages with XRANGE, oldest first; every entry is decoded,
 * filtered, changed as asked (status, event id, occurred_at) and sent in
 * requests of --batch events, one request at a time. Events answered
 * RETRY_LATER are sent again after the delay linkd names, a bounded number of
 * times. The range ends at the log's newest entry when the replay starts, so
 * a replay into the linkd whose log it reads never reads its own events back.
 * Ctrl-C stops after the request in flight and prints the totals.
 *
 * A source with a key in the rules (source_keys) is served only on a
 * connection that proved it with a signed SourceHello. With --key (which
 * needs --source: a hello names one source) every request, resends too,
 * carries a hello signed just before it goes, as `linkctl send --key` does:
 * linkd refuses a nonce it has seen and a time more than 60 s off, and a
 * rules reload or a new connection needs a new hello, so one signed at the
 * start would not last a long replay. */
#include <getopt.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <time.h>

#include <hiredis/hiredis.h>
#include <sodium.h>

#include "core/clock.h"
#include "rules/rules.h"
#include "tools/linkctl.h"

#define BATCH_MAX 1024      /* linkd rejects larger requests */
#define PAGE 500            /* stream entries per XRANGE */
#define RETRY_ROUNDS 30     /* resends of one event answered RETRY_LATER */
#define RETRY_WAIT_MAX 5000 /* ms: the longest wait between them */
#define TAG_MAX 32

enum opt {
    O_REDIS = 256, O_INGEST, O_FROM, O_TO, O_SINCE, O_COUNT, O_SOURCE, O_KIND, O_EXERCISE,
    O_TAG, O_RETIME, O_SPEED, O_BATCH, O_TIMEOUT, O_DRY_RUN, O_VERBOSE, O_QUIET, O_KEY,
};

static const struct option long_opts[] = {
    {"redis", required_argument, NULL, O_REDIS},
    {"ingest", required_argument, NULL, O_INGEST},
    {"key", required_argument, NULL, O_KEY},
    {"from", required_argument, NULL, O_FROM},
    {"to", required_argument, NULL, O_TO},
    {"since", required_argument, NULL, O_SINCE},
    {"count", required_argument, NULL, O_COUNT},
    {"source", required_argument, NULL, O_SOURCE},
    {"kind", required_argument, NULL, O_KIND},
    {"exercise", no_argument, NULL, O_EXERCISE},
    {"tag", required_argument, NULL, O_TAG},
    {"retime", no_argument, NULL, O_RETIME},
    {"speed", required_argument, NULL, O_SPEED},
    {"batch", required_argument, NULL, O_BATCH},
    {"timeout", required_argument, NULL, O_TIMEOUT},
    {"dry-run", no_argument, NULL, O_DRY_RUN},
    {"verbose", no_argument, NULL, O_VERBOSE},
    {"quiet", no_argument, NULL, O_QUIET},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

static void usage(void)
{
    puts("Usage: linkctl replay [options]\n"
         "\n"
         "Send events from linkd's durable event log (the Redis stream ld:events) to a\n"
         "linkd intake again, oldest first: to a staging linkd after a rules change, to\n"
         "a fresh instance, or to the live one as a drill (--exercise --tag).\n"
         "\n"
         "Which events:\n"
         "  --redis URL      the log's Redis (default " CTL_REDIS_URL "), also\n"
         "                   redis://user:password@host:port/db, or a user alone and the\n"
         "                   password in the file LINKCTL_REDIS_PASSWORD_FILE names\n"
         "  --from WHEN      the first entry: a stream id (1763884800000-3), epoch ms, or\n"
         "                   a UTC time (2026-11-23T08:00:00Z); default the oldest\n"
         "  --to WHEN        the last entry, the same forms; default the newest, and\n"
         "                   never later than the newest when the replay starts\n"
         "  --since SPAN     the entries of the last SPAN (\"2h\", \"30m\"), instead of --from\n"
         "  --count N        at most N events (after the filters)\n"
         "  --source SRC     only events from this producer\n"
         "  --kind K         only call, sensor or petition\n"
         "How they are sent:\n"
         "  --ingest URL     the intake (default " CTL_INGEST_URL ")\n"
         "  --key FILE       prove the source's identity with its key (linkctl keygen\n"
         "                   --source SRC): a signed hello in every request. Needs\n"
         "                   --source SRC, as a hello names one source; linkd refuses\n"
         "                   the events of a source with a key in the rules\n"
         "                   (source_keys) without it\n"
         "  --exercise       with status EXERCISE: linkd sends their tasks to the drill\n"
         "                   terminals and keeps them out of the live incidents' merges\n"
         "  --tag T          append \"~T\" to every event id, so a linkd that has the\n"
         "                   originals takes them as new events, not duplicates\n"
         "  --retime         occurred_at = when sent (linkd rejects events older than\n"
         "                   7 days); default: as logged\n"
         "  --speed X        keep the log's gaps between events, X times faster (10 =\n"
         "                   an hour in 6 minutes); default: as fast as linkd answers\n"
         "  --batch N        events per request (default 100, at most 1024)\n"
         "  --timeout MS     wait at most MS for each reply (default 5000)\n"
         "  --dry-run        print what would be sent; send nothing\n"
         "  --verbose        print every result, not only the refused ones\n"
         "  --quiet          print only the totals\n"
         "\n"
         "Events answered RETRY_LATER are sent again after the delay linkd names, up to\n"
         "30 times. Ctrl-C stops after the request in flight.\n"
         "\n"
         "Exit: 0 every event accepted or duplicate, 65 some rejected (or an entry of\n"
         "the log unreadable), 75 some still RETRY_LATER, 69 linkd or Redis\n"
         "unreachable, 66 no event in the range, 64 usage.\n"
         "\n"
         "Example: yesterday morning's events as a drill, at ten times the pace:\n"
         "  linkctl replay --from 2026-11-22T06:00:00Z --to 2026-11-22T09:00:00Z \\\n"
         "      --exercise --tag drill-1123 --retime --speed 10\n"
         "A producer whose key is in the rules, as a drill:\n"
         "  linkctl replay --since 2h --source cad-haizhu --key cad-haizhu.key \\\n"
         "      --exercise --tag drill-1123 --retime");
}

typedef struct replay_opts {
    const char *redis, *ingest, *source, *tag;
    char from[48], to[48];
    int kind;                   /* LD_KIND_ANY, or one kind */
    uint64_t count;             /* 0: every event in range */
    double speed;               /* 0: no pacing */
    uint32_t batch;
    uint32_t timeout_ms;
    bool exercise, retime, dry_run, verbose, quiet;
    bool key;                   /* --key: sign a SourceHello for <source> into each request */
    uint8_t sk[64];
} replay_opts;

/* One event of the request being built. */
typedef struct pending {
    Linkd__V1__Envelope *ev;    /* decoded from the log; freed after its answer */
    char *logged_id;            /* ev's own event id, put back before it is freed */
    char id[LD_MAX_ID_LEN + TAG_MAX + 2]; /* the event id as sent (ev points here) */
    char stream_id[48];
    uint64_t logged_ms;         /* the stream id's time: when linkd accepted it */
} pending;

typedef struct replay {
    replay_opts o;
    redisContext *rc;
    redisReply *page;           /* the current XRANGE page */
    size_t next;                /* its next entry */
    char last[48];              /* the last stream id read */
    bool exhausted;
    nng_socket sock;
    ctl_ingest_totals t;
    uint64_t read, skipped, unreadable, taken, sent;
    uint64_t first_logged, started_ms; /* pacing: the first event's time, and ours */
    bool paced_started;
    bool colour;
    pending *batch;
    size_t n;
} replay;

/* ---- options ----------------------------------------------------------------------- */

/* parse_when turns a stream id, epoch ms or "YYYY-MM-DDTHH:MM:SSZ" into an
 * XRANGE bound in <out>; -1 if it is none of them. */
static int parse_when(const char *s, char *out, size_t len)
{
    unsigned long long ms, seq;
    char tail;
    if (sscanf(s, "%llu-%llu%c", &ms, &seq, &tail) == 2) {
        snprintf(out, len, "%llu-%llu", ms, seq);
        return 0;
    }
    if (sscanf(s, "%llu%c", &ms, &tail) == 1) {
        snprintf(out, len, "%llu", ms);
        return 0;
    }
    struct tm tm = {0};
    int n = 0;
    if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2dZ%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
               &tm.tm_min, &tm.tm_sec, &n) != 6 || s[n] != '\0' || tm.tm_mon < 1 || tm.tm_mon > 12 ||
        tm.tm_mday < 1 || tm.tm_mday > 31 || tm.tm_hour > 23 || tm.tm_min > 59 || tm.tm_sec > 60)
        return -1;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    time_t t = timegm(&tm);
    if (t < 0) return -1;
    snprintf(out, len, "%llu", (unsigned long long)t * 1000ull);
    return 0;
}

static int apply_opt(replay_opts *o, int opt, const char *arg)
{
    uint32_t u;
    uint64_t span;
    switch (opt) {
    case O_REDIS: o->redis = arg; return 0;
    case O_INGEST: o->ingest = arg; return 0;
    case O_FROM:
    case O_TO:
        if (parse_when(arg, opt == O_FROM ? o->from : o->to, sizeof o->from) != 0)
            return ctl_usage_error("--%s: '%s' is not a stream id, epoch ms or UTC time "
                                   "(2026-11-23T08:00:00Z)", opt == O_FROM ? "from" : "to", arg);
        return 0;
    case O_SINCE:
        if (ctl_parse_span(arg, &span) != 0 || span == 0)
            return ctl_usage_error("--since: '%s' is not a span (\"2h\", \"30m\", \"90s\")", arg);
        snprintf(o->from, sizeof o->from, "%llu", (unsigned long long)(ld_wall_ms() - span));
        return 0;
    case O_COUNT:
        if (ctl_parse_u32(arg, &u) != 0 || u == 0)
            return ctl_usage_error("--count: '%s' is not a positive number", arg);
        o->count = u;
        return 0;
    case O_SOURCE: o->source = arg; return 0;
    case O_KIND:
        if (strcmp(arg, "call") == 0) o->kind = LD_KIND_CALL;
        else if (strcmp(arg, "sensor") == 0) o->kind = LD_KIND_SENSOR;
        else if (strcmp(arg, "petition") == 0) o->kind = LD_KIND_PETITION;
        else return ctl_usage_error("--kind: '%s' is not call, sensor or petition", arg);
        return 0;
    case O_EXERCISE: o->exercise = true; return 0;
    case O_TAG:
        if (!*arg || strlen(arg) > TAG_MAX)
            return ctl_usage_error("--tag: give 1 to %d characters", TAG_MAX);
        o->tag = arg;
        return 0;
    case O_RETIME: o->retime = true; return 0;
    case O_SPEED:
        if (ctl_parse_double(arg, &o->speed) != 0 || !(o->speed > 0))
            return ctl_usage_error("--speed: '%s' is not a positive number", arg);
        return 0;
    case O_BATCH:
        if (ctl_parse_u32(arg, &u) != 0 || u == 0 || u > BATCH_MAX)
            return ctl_usage_error("--batch: '%s' is not 1 to %d", arg, BATCH_MAX);
        o->batch = u;
        return 0;
    case O_TIMEOUT:
        if (ctl_parse_u32(arg, &u) != 0 || u == 0)
            return ctl_usage_error("--timeout: '%s' is not a positive number of ms", arg);
        o->timeout_ms = u;
        return 0;
    case O_DRY_RUN: o->dry_run = true; return 0;
    case O_VERBOSE: o->verbose = true; return 0;
    case O_QUIET: o->quiet = true; return 0;
    case O_KEY:
        if (ctl_load_secret(arg, o->sk) != 0) return EX_USAGE;
        o->key = true;
        return 0;
    default: return ctl_usage_error("bad option");
    }
}

/* parse_args: 0, 1 after --help, or EX_USAGE. */
static int parse_args(replay_opts *o, int argc, char **argv)
{
    int opt;
    bool since = false, from = false;
    optind = 0;
    while ((opt = getopt_long(argc, argv, "h", long_opts, NULL)) != -1) {
        if (opt == 'h') {
            usage();
            return 1;
        }
        since |= opt == O_SINCE;
        from |= opt == O_FROM;
        if (apply_opt(o, opt, optarg) != 0) return EX_USAGE;
    }
    if (optind < argc) return ctl_usage_error("unexpected argument '%s'", argv[optind]);
    if (since && from) return ctl_usage_error("give --from or --since, not both");
    if (o->verbose && o->quiet) return ctl_usage_error("give --verbose or --quiet, not both");
    if (o->key && !o->source)
        return ctl_usage_error("--key needs --source SRC: a signed hello proves one source, so "
                               "replay only the events of the source the key belongs to");
    return 0;
}

/* ---- reading the log ----------------------------------------------------------------- */

static const redisReply *entry_field(const redisReply *fields, const char *name)
{
    if (fields->type != REDIS_REPLY_ARRAY) return NULL;
    for (size_t i = 0; i + 1 < fields->elements; i += 2)
        if (fields->element[i]->type == REDIS_REPLY_STRING && strcmp(fields->element[i]->str, name) == 0)
            return fields->element[i + 1];
    return NULL;
}

/* next_page reads the entries after the last one read; 0, or EX_UNAVAILABLE. */
static int next_page(replay *r)
{
    if (r->page) freeReplyObject(r->page);
    r->page = NULL;
    r->next = 0;
    char start[56];
    if (r->last[0]) snprintf(start, sizeof start, "(%s", r->last);
    else snprintf(start, sizeof start, "%s", r->o.from[0] ? r->o.from : "-");
    r->page = redisCommand(r->rc, "XRANGE ld:events %s %s COUNT %d", start,
                           r->o.to[0] ? r->o.to : "+", PAGE);
    if (!r->page || r->page->type != REDIS_REPLY_ARRAY) {
        ctl_warn("XRANGE ld:events failed: %s",
                 r->page && r->page->str ? r->page->str : r->rc->errstr);
        return EX_UNAVAILABLE;
    }
    if (r->page->elements == 0) r->exhausted = true;
    return 0;
}

static bool wanted(const replay_opts *o, const Linkd__V1__Envelope *ev)
{
    if (o->source && (!ev->source_id || strcmp(ev->source_id, o->source) != 0)) return false;
    return o->kind == LD_KIND_ANY || ld_envelope_kind(ev) == o->kind;
}

/* release frees <p>'s event, with the event id it was decoded with. */
static void release(pending *p)
{
    if (p->logged_id) p->ev->event_id = p->logged_id;
    linkd__v1__envelope__free_unpacked(p->ev, NULL);
    p->ev = NULL;
    p->logged_id = NULL;
}

/* stream_pos parses an XRANGE bound ("ms" or "ms-seq") into <ms, seq>; a
 * bare time as an end takes every entry of that ms. */
static void stream_pos(const char *s, unsigned long long *ms, unsigned long long *seq)
{
    *seq = ~0ull;
    if (sscanf(s, "%llu-%llu", ms, seq) < 1) *ms = ~0ull;
}

/* pin_end ends the range at the newest entry of the log now, if --to is
 * later or not given: a replay into the linkd whose log it reads (a drill
 * with --tag) adds to that log, and would otherwise read its own events
 * back and send them again, tagged again each time, until the ids grow past
 * linkd's limit and are rejected. 0, or EX_UNAVAILABLE. */
static int pin_end(replay *r)
{
    redisReply *rep = redisCommand(r->rc, "XREVRANGE ld:events + - COUNT 1");
    if (!rep || rep->type != REDIS_REPLY_ARRAY) {
        ctl_warn("XREVRANGE ld:events failed: %s", rep && rep->str ? rep->str : r->rc->errstr);
        if (rep) freeReplyObject(rep);
        return EX_UNAVAILABLE;
    }
    const redisReply *e = rep->elements ? rep->element[0] : NULL;
    if (!e) {
        r->exhausted = true; /* an empty log */
    } else if (e->type == REDIS_REPLY_ARRAY && e->elements == 2 &&
               e->element[0]->type == REDIS_REPLY_STRING) {
        unsigned long long to_ms = ~0ull, to_seq = ~0ull, last_ms, last_seq;
        if (r->o.to[0]) stream_pos(r->o.to, &to_ms, &to_seq);
        stream_pos(e->element[0]->str, &last_ms, &last_seq);
        if (last_ms < to_ms || (last_ms == to_ms && last_seq < to_seq))
            snprintf(r->o.to, sizeof r->o.to, "%s", e->element[0]->str);
    }
    freeReplyObject(rep);
    return 0;
}

/* next_event decodes the next wanted entry of the log into <p>; 1 if there
 * is one, 0 at the end of the range, or EX_UNAVAILABLE. */
static int next_event(replay *r, pending *p)
{
    while (!ctl_stop) {
        if (r->exhausted) return 0;
        if (!r->page || r->next == r->page->elements) {
            int rv = next_page(r);
            if (rv != 0) return rv;
            continue;
        }
        const redisReply *e = r->page->element[r->next++];
        if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 || e->element[0]->type != REDIS_REPLY_STRING)
            continue;
        snprintf(r->last, sizeof r->last, "%s", e->element[0]->str);
        r->read++;
        const redisReply *pb = entry_field(e->element[1], "pb");
        Linkd__V1__Envelope *ev = pb && pb->type == REDIS_REPLY_STRING
            ? linkd__v1__envelope__unpack(NULL, pb->len, (const uint8_t *)pb->str) : NULL;
        if (!ev) {
            r->unreadable++;
            ctl_warn("entry %s of ld:events has no Envelope that decodes; skipped", r->last);
            continue;
        }
        if (!wanted(&r->o, ev)) {
            r->skipped++;
            linkd__v1__envelope__free_unpacked(ev, NULL);
            continue;
        }
        p->ev = ev;
        p->logged_id = NULL;
        snprintf(p->stream_id, sizeof p->stream_id, "%s", r->last);
        p->logged_ms = strtoull(r->last, NULL, 10);
        return 1;
    }
    return 0;
}

/* ---- sending ----------------------------------------------------------------------- */

/* prepare changes <p>'s event as the options ask, just before it is sent.
 * The event id it sends is p->id: call again after moving <p>. */
static void prepare(const replay_opts *o, pending *p)
{
    Linkd__V1__Envelope *ev = p->ev;
    if (!p->logged_id) {
        p->logged_id = ev->event_id;
        const char *logged = p->logged_id ? p->logged_id : "";
        if (o->tag) snprintf(p->id, sizeof p->id, "%s~%s", logged, o->tag);
        else snprintf(p->id, sizeof p->id, "%s", logged);
    }
    ev->event_id = p->id;
    if (o->exercise) {
        ev->has_status = true;
        ev->status = LINKD__V1__STATUS__STATUS_EXERCISE;
    }
    if (o->retime) {
        ev->has_occurred_at_ms = true;
        ev->occurred_at_ms = (int64_t)ld_wall_ms();
    }
}

static void print_dry(const pending *p, bool colour)
{
    char id[sizeof p->id], src[LD_MAX_ID_LEN + 1], clock[16];
    const Linkd__V1__Envelope *ev = p->ev;
    ctl_fmt_clock(ev->occurred_at_ms, clock, sizeof clock);
    printf("%s%s%s %s from %s: %s %s, occurred %s\n", colour ? CTL_DIM : "", p->stream_id,
           colour ? CTL_RESET : "", ctl_sanitize(p->id, id, sizeof id),
           ctl_sanitize(ev->source_id, src, sizeof src), ld_kind_name(ld_envelope_kind(ev)),
           ld_envelope_category_name(ev) ? ld_envelope_category_name(ev) : "-", clock);
}

/* exchange_batch sends r->batch[0..n) once; the events answered RETRY_LATER
 * stay in the batch (in order), the rest are counted and freed. Returns the
 * longest retry delay asked for (ms), or -1 if linkd did not answer. */
static long exchange_batch(replay *r)
{
    Linkd__V1__Envelope *evp[BATCH_MAX];
    for (size_t i = 0; i < r->n; i++) evp[i] = r->batch[i].ev;
    Linkd__V1__IngestRequest req = LINKD__V1__INGEST_REQUEST__INIT;
    req.n_events = r->n;
    req.events = evp;
    ctl_source_hello hello; /* fresh for every request: linkd refuses a nonce twice */
    if (r->o.key) {
        ctl_sign_source_hello(&hello, r->o.source, r->o.sk);
        req.hello = &hello.pb;
    }
    Linkd__V1__IngestReply *rep = NULL;
    int rv = ctl_ingest_exchange(r->sock, &req, &rep);
    if (rv != 0) {
        if (rv == NNG_EPROTO) ctl_warn("linkd's reply could not be decoded (is %s linkd's intake?)", r->o.ingest);
        else ctl_warn("no answer from linkd at %s: %s", r->o.ingest, nng_strerror(rv));
        r->t.unreachable = rv != NNG_EPROTO;
        return -1;
    }
    r->sent += r->n;
    if (rep->n_results != r->n)
        ctl_warn("linkd sent %zu results for %zu events", rep->n_results, r->n);
    long wait = 0;
    size_t keep = 0;
    for (size_t i = 0; i < r->n; i++) {
        const Linkd__V1__IngestResult *res = i < rep->n_results ? rep->results[i] : NULL;
        if (res && res->result == LINKD__V1__RESULT__RESULT_RETRY_LATER) {
            long ms = res->has_retry_after_ms ? (long)res->retry_after_ms : 1000;
            if (ms > wait) wait = ms;
            if (keep != i) {
                r->batch[keep] = r->batch[i];
                r->batch[keep].ev->event_id = r->batch[keep].id;
            }
            keep++;
            continue;
        }
        if (!res) r->t.unanswered++;
        else {
            ctl_ingest_count(&r->t, res->result);
            bool refused = res->result != LINKD__V1__RESULT__RESULT_ACCEPTED &&
                           res->result != LINKD__V1__RESULT__RESULT_DUPLICATE;
            if (r->o.verbose || (refused && !r->o.quiet)) {
                if (refused) printf("%s: ", r->batch[i].stream_id);
                ctl_print_result(res, r->batch[i].id, r->colour);
            }
        }
        release(&r->batch[i]);
    }
    r->n = keep;
    linkd__v1__ingest_reply__free_unpacked(rep, NULL);
    return wait > RETRY_WAIT_MAX ? RETRY_WAIT_MAX : wait;
}

/* pause_ms sleeps up to <ms>, waking early on Ctrl-C. */
static void pause_ms(long ms)
{
    struct pollfd pfd = {.fd = ctl_signal_fd(), .events = POLLIN};
    if (ms > 0 && !ctl_stop) poll(&pfd, 1, (int)ms);
}

/* flush sends the batch, and again what is answered RETRY_LATER. 0, or
 * EX_UNAVAILABLE if linkd stopped answering. */
static int flush(replay *r)
{
    int rv = 0;
    for (int round = 0; r->n && round <= RETRY_ROUNDS && !ctl_stop; round++) {
        long wait = exchange_batch(r);
        if (wait < 0) {
            rv = EX_UNAVAILABLE;
            break;
        }
        if (r->n) pause_ms(wait);
    }
    for (size_t i = 0; i < r->n; i++) { /* unanswered, still RETRY_LATER, or stopped */
        if (rv) r->t.unanswered++;
        else {
            if (!r->o.quiet) printf("RETRY_LATER %s: still refused after %d resends\n", r->batch[i].id, RETRY_ROUNDS);
            r->t.retry++;
        }
        release(&r->batch[i]);
    }
    r->n = 0;
    return rv;
}

/* due_ms: when event <p> is due under --speed, on our monotonic clock. */
static uint64_t due_ms(replay *r, const pending *p)
{
    if (!r->paced_started) {
        r->paced_started = true;
        r->first_logged = p->logged_ms;
        r->started_ms = ld_mono_ms();
    }
    uint64_t gap = p->logged_ms > r->first_logged ? p->logged_ms - r->first_logged : 0;
    return r->started_ms + (uint64_t)((double)gap / r->o.speed);
}

/* run reads the range and sends it; returns 0 or an exit code. */
static int run(replay *r)
{
    uint64_t taken = 0;
    pending p = {0};
    bool held = false; /* <p> read but not yet due (--speed) */
    for (;;) {
        if (ctl_stop) break;
        if (!held) {
            if (r->o.count && taken == r->o.count) break;
            int rv = next_event(r, &p);
            if (rv < 0 || rv > 1) return rv;
            if (rv == 0) break;
            taken++;
            r->taken++;
        }
        held = false;
        if (r->o.speed > 0) {
            uint64_t due = due_ms(r, &p), now = ld_mono_ms();
            if (due > now) {
                if (r->n) { /* send what is due before waiting */
                    int rv = flush(r);
                    if (rv) return rv;
                }
                held = true;
                pause_ms((long)(due - now > 1000 ? 1000 : due - now));
                continue;
            }
        }
        prepare(&r->o, &p);
        if (r->o.dry_run) {
            if (!r->o.quiet) print_dry(&p, r->colour);
            release(&p);
            continue;
        }
        r->batch[r->n] = p;
        prepare(&r->o, &r->batch[r->n++]); /* point at the copy's own id */
        if (r->n == r->o.batch) {
            int rv = flush(r);
            if (rv) return rv;
        }
    }
    if (held) release(&p);
    return r->n ? flush(r) : 0;
}

static void print_totals(const replay *r)
{
    const ctl_ingest_totals *t = &r->t;
    printf("%s %llu events of %llu log entries read", r->o.dry_run ? "would send" : "replayed",
           (unsigned long long)r->taken, (unsigned long long)r->read);
    if (r->skipped) printf(" (%llu filtered out)", (unsigned long long)r->skipped);
    if (r->o.dry_run) printf(": dry run, nothing sent\n");
    else
        printf(": %llu accepted, %llu duplicate, %llu rejected, %llu retry later%s\n",
               (unsigned long long)t->accepted, (unsigned long long)t->duplicate,
               (unsigned long long)t->rejected, (unsigned long long)t->retry,
               t->unanswered ? ", some unanswered" : "");
    if (r->unreadable) printf("%llu entries of the log did not decode\n", (unsigned long long)r->unreadable);
    if (ctl_stop) printf("stopped by a signal before the end of the range\n");
}

static int open_ingest(replay *r)
{
    int rv = ctl_req_open(&r->sock, r->o.ingest, false);
    if (rv != 0) {
        ctl_warn("cannot connect to linkd at %s: %s", r->o.ingest, nng_strerror(rv));
        return rv == NNG_EADDRINVAL || rv == NNG_ENOTSUP ? EX_USAGE : EX_UNAVAILABLE;
    }
    nng_socket_set_ms(r->sock, NNG_OPT_SENDTIMEO, (nng_duration)r->o.timeout_ms);
    nng_socket_set_ms(r->sock, NNG_OPT_RECVTIMEO, (nng_duration)r->o.timeout_ms);
    return 0;
}

/* replay_main runs the replay described by <argc, argv> with <r>; returns an exit code. */
static int replay_main(replay *r, int argc, char **argv)
{
    r->o = (replay_opts){.redis = CTL_REDIS_URL, .ingest = CTL_INGEST_URL, .kind = LD_KIND_ANY,
                         .batch = 100, .timeout_ms = 5000};
    int rv = parse_args(&r->o, argc, argv);
    if (rv) return rv == 1 ? 0 : rv;
    if (ctl_signals_install() != 0) ctl_warn("Ctrl-C will not stop cleanly: no signal handler");
    r->colour = ctl_colour();
    if (!(r->rc = ctl_redis_connect(r->o.redis))) {
        return EX_UNAVAILABLE;
    }
    if ((rv = pin_end(r)) != 0) {
        redisFree(r->rc);
        return rv;
    }
    if (!r->o.dry_run && (rv = open_ingest(r)) != 0) {
        redisFree(r->rc);
        return rv;
    }
    if (!(r->batch = calloc(r->o.batch, sizeof *r->batch))) {
        ctl_warn("out of memory");
        rv = EX_OSERR;
    } else {
        rv = run(r);
    }
    if (r->page) freeReplyObject(r->page);
    redisFree(r->rc);
    if (!r->o.dry_run) ctl_nng_close(r->sock);
    free(r->batch);
    print_totals(r);
    if (rv) return rv;
    if (!r->t.unreachable && r->read == r->skipped + r->unreadable && !r->unreadable) {
        ctl_warn("no event in the range%s", r->read ? " passed the filters" : "");
        return EX_NOINPUT;
    }
    if (r->unreadable && !ctl_ingest_exit(&r->t)) return EX_DATAERR;
    return ctl_ingest_exit(&r->t);
}

int ctl_replay_main(int argc, char **argv)
{
    static replay r;
    memset(&r, 0, sizeof r);
    int rv = replay_main(&r, argc, argv);
    sodium_memzero(r.o.sk, sizeof r.o.sk); /* the source's secret key, from --key */
    return rv;
}
