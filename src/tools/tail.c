/* tail.c: `linkctl tail`: subscribe to linkd's feed (NNG SUB) and print
 * every FeedEvent as one readable line; with --summary, print at the end
 * what a command-centre supervisor asks first: incidents opened and closed,
 * tasks per department, acknowledgements, escalations per department and
 * level, and tasks that went all the way up to the command centre.
 *
 * PUB/SUB drops messages when a subscriber falls behind; the feed's seq
 * numbers are gapless, so tail counts and reports what it missed. */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include <nng/nng.h>
#include <nng/protocol/pubsub0/sub.h>

#include "core/clock.h"
#include "core/map.h"
#include "rules/rules.h"
#include "tools/linkctl.h"

#define MAX_DEPTS 64        /* departments tracked in the summary; more go to "other" */
#define MAX_LEVELS 16       /* a department's chain plus command's */
#define MAX_COMMAND_TASKS 65536
#define DRAIN_MAX 256       /* messages per wakeup, so signals and the clock are seen */

typedef struct dept_stats {
    char id[32];
    unsigned dispatched, acknowledged, on_scene, resolved, rejected;
    unsigned escalated_to[MAX_LEVELS];
    char level_name[MAX_LEVELS][32];
} dept_stats;

typedef struct tail_stats {
    uint64_t events, missed, first_seq, last_seq;
    bool seen_any;
    unsigned opened, closed, escalations, terminals_offline;
    dept_stats depts[MAX_DEPTS + 1]; /* the last slot is "other" */
    int ndepts;
    ld_map command_tasks;            /* task id (owned copy) -> non-NULL */
    size_t ncommand_tasks;
} tail_stats;

typedef struct tail_opts {
    const char *url;
    uint64_t duration_ms;            /* 0 = until a signal */
    bool summary, colour;
} tail_opts;

static void usage(void)
{
    puts("Usage: linkctl tail [--feed URL] [--duration S] [--summary]\n"
         "\n"
         "Print linkd's live feed, one line per event: time on linkd's clock, kind,\n"
         "task (incident/department) or incident, terminal, escalation level, text.\n"
         "\n"
         "  --feed URL       linkd's feed (default " CTL_FEED_URL ")\n"
         "  --duration S     stop after S seconds (or a duration: 90s, 5m); default: until\n"
         "                   SIGINT/SIGTERM\n"
         "  --summary        at the end, print incidents opened/closed, tasks per\n"
         "                   department, acknowledgements, escalations by department and\n"
         "                   level, and tasks that reached the command centre\n"
         "\n"
         "Colour is used only when stdout is a terminal (and NO_COLOR is unset).");
}

/* ---- summary bookkeeping ------------------------------------------------- */

static dept_stats *dept_for(tail_stats *st, const char *id)
{
    if (!id || !*id) id = "?";
    for (int i = 0; i < st->ndepts; i++)
        if (strcmp(st->depts[i].id, id) == 0) return &st->depts[i];
    bool other = st->ndepts == MAX_DEPTS;
    dept_stats *d = other ? &st->depts[MAX_DEPTS] : &st->depts[st->ndepts++];
    if (!d->id[0]) snprintf(d->id, sizeof d->id, "%s", other ? "other" : id);
    return d;
}

/* on_command_terminal: the default rules name command's terminals
 * command-<role>; a task held by one of them has reached the command centre. */
static bool on_command_terminal(const Linkd__V1__Task *t)
{
    return t->terminal && strncmp(t->terminal, "command-", 8) == 0;
}

static void note_command_task(tail_stats *st, const char *task_id)
{
    if (!task_id || ld_map_get(&st->command_tasks, task_id) ||
        st->ncommand_tasks >= MAX_COMMAND_TASKS)
        return;
    char *key = strdup(task_id);
    if (!key) return;
    if (ld_map_put(&st->command_tasks, key, key) != 0) {
        free(key);
        return;
    }
    st->ncommand_tasks++;
}

static void account(tail_stats *st, const Linkd__V1__FeedEvent *ev)
{
    st->events++;
    if (ev->has_seq) {
        if (st->seen_any && ev->seq > st->last_seq + 1) st->missed += ev->seq - st->last_seq - 1;
        if (!st->seen_any) st->first_seq = ev->seq;
        if (!st->seen_any || ev->seq > st->last_seq) st->last_seq = ev->seq;
        st->seen_any = true;
    }
    const Linkd__V1__Task *t = ev->task;
    dept_stats *d = t ? dept_for(st, t->department) : NULL;
    switch (ev->kind) {
    case LINKD__V1__FEED_KIND__FEED_KIND_INCIDENT_OPENED: st->opened++; break;
    case LINKD__V1__FEED_KIND__FEED_KIND_INCIDENT_CLOSED: st->closed++; break;
    case LINKD__V1__FEED_KIND__FEED_KIND_TERMINAL_OFFLINE: st->terminals_offline++; break;
    case LINKD__V1__FEED_KIND__FEED_KIND_TASK_DISPATCHED: if (d) d->dispatched++; break;
    case LINKD__V1__FEED_KIND__FEED_KIND_TASK_ACKNOWLEDGED: if (d) d->acknowledged++; break;
    case LINKD__V1__FEED_KIND__FEED_KIND_TASK_ON_SCENE: if (d) d->on_scene++; break;
    case LINKD__V1__FEED_KIND__FEED_KIND_TASK_RESOLVED: if (d) d->resolved++; break;
    case LINKD__V1__FEED_KIND__FEED_KIND_TASK_REJECTED: if (d) d->rejected++; break;
    case LINKD__V1__FEED_KIND__FEED_KIND_TASK_ESCALATED:
        st->escalations++;
        if (!d) break;
        unsigned lv = t->has_level && t->level < MAX_LEVELS ? t->level : MAX_LEVELS - 1;
        d->escalated_to[lv]++;
        if (t->level_name && !d->level_name[lv][0])
            snprintf(d->level_name[lv], sizeof d->level_name[lv], "%s", t->level_name);
        if (on_command_terminal(t)) note_command_task(st, t->task_id);
        break;
    default: break;
    }
}

static void print_summary(const tail_stats *st, FILE *out)
{
    fprintf(out, "=== feed summary ===\n");
    fprintf(out, "feed events: %llu", (unsigned long long)st->events);
    if (st->seen_any)
        fprintf(out, " (seq %llu..%llu, %llu missed)", (unsigned long long)st->first_seq,
                (unsigned long long)st->last_seq, (unsigned long long)st->missed);
    if (st->missed)
        fprintf(out, "\nthe counts below are partial: linkd's feed dropped events this subscriber "
                     "could not take in time; the incident records in Redis are complete");
    fprintf(out, "\nincidents: %u opened, %u closed\n", st->opened, st->closed);
    unsigned tot[5] = {0};
    for (int i = 0; i <= MAX_DEPTS; i++) {
        const dept_stats *d = &st->depts[i];
        tot[0] += d->dispatched, tot[1] += d->acknowledged, tot[2] += d->on_scene;
        tot[3] += d->resolved, tot[4] += d->rejected;
    }
    fprintf(out, "tasks: %u dispatched, %u acknowledged, %u on scene, %u resolved, %u rejected\n",
            tot[0], tot[1], tot[2], tot[3], tot[4]);
    if (st->ndepts) {
        fprintf(out, "  %-16s %10s %6s %8s %8s  escalated to\n", "department", "dispatched", "acked",
                "on scene", "resolved");
        for (int i = 0; i <= MAX_DEPTS; i++) {
            const dept_stats *d = &st->depts[i];
            if (!d->id[0]) continue;
            fprintf(out, "  %-16s %10u %6u %8u %8u  ", d->id, d->dispatched, d->acknowledged,
                    d->on_scene, d->resolved);
            bool any = false;
            for (int lv = 0; lv < MAX_LEVELS; lv++) {
                if (!d->escalated_to[lv]) continue;
                fprintf(out, "%sL%d %s x%u", any ? ", " : "", lv,
                        d->level_name[lv][0] ? d->level_name[lv] : "", d->escalated_to[lv]);
                any = true;
            }
            fprintf(out, "%s\n", any ? "" : "-");
        }
    }
    fprintf(out, "escalations: %u; tasks that reached command: %zu\n", st->escalations,
            st->ncommand_tasks);
    if (st->terminals_offline) fprintf(out, "terminals gone offline: %u\n", st->terminals_offline);
}

static void stats_fini(tail_stats *st)
{
    const char *key;
    void *value;
    for (size_t it = 0; ld_map_next(&st->command_tasks, &it, &key, &value);) free((void *)key);
    ld_map_fini(&st->command_tasks);
}

/* ---- printing ------------------------------------------------------------ */

static const char *kind_colour(int kind)
{
    switch (kind) {
    case LINKD__V1__FEED_KIND__FEED_KIND_INCIDENT_OPENED: return CTL_BOLD CTL_CYAN;
    case LINKD__V1__FEED_KIND__FEED_KIND_TASK_DISPATCHED: return CTL_YELLOW;
    case LINKD__V1__FEED_KIND__FEED_KIND_TASK_DELIVERED: return CTL_DIM;
    case LINKD__V1__FEED_KIND__FEED_KIND_TASK_ACKNOWLEDGED:
    case LINKD__V1__FEED_KIND__FEED_KIND_TASK_EN_ROUTE:
    case LINKD__V1__FEED_KIND__FEED_KIND_TASK_ON_SCENE:
    case LINKD__V1__FEED_KIND__FEED_KIND_TASK_FEEDBACK: return CTL_GREEN;
    case LINKD__V1__FEED_KIND__FEED_KIND_TASK_RESOLVED: return CTL_BLUE;
    case LINKD__V1__FEED_KIND__FEED_KIND_INCIDENT_CLOSED: return CTL_BOLD CTL_BLUE;
    case LINKD__V1__FEED_KIND__FEED_KIND_TASK_REJECTED:
    case LINKD__V1__FEED_KIND__FEED_KIND_TASK_ESCALATED:
    case LINKD__V1__FEED_KIND__FEED_KIND_DEADLINE_MISSED: return CTL_BOLD CTL_RED;
    case LINKD__V1__FEED_KIND__FEED_KIND_TERMINAL_OFFLINE: return CTL_MAGENTA;
    case LINKD__V1__FEED_KIND__FEED_KIND_INCIDENT_UPGRADED: return CTL_BOLD CTL_MAGENTA;
    default: return "";
    }
}

/* deadline_note writes the time left on the task's open legs, seen from
 * <at>, e.g. "ack 1m00s, arrive 10m00s, resolve 2h00m". */
static void deadline_note(const Linkd__V1__Task *t, int64_t at, char *buf, size_t len)
{
    static const char *const names[] = {"ack", "arrive", "feedback", "resolve"};
    int64_t by[4] = {
        t->has_acknowledge_by_ms ? t->acknowledge_by_ms : 0,
        t->has_arrive_by_ms ? t->arrive_by_ms : 0,
        t->has_feedback_by_ms ? t->feedback_by_ms : 0,
        t->has_resolve_by_ms ? t->resolve_by_ms : 0,
    };
    size_t off = 0;
    buf[0] = '\0';
    for (int i = 0; i < 4 && off < len; i++) {
        /* Feedback due with resolution has no budget of its own: not shown. */
        if (by[i] <= 0 || (i == 2 && by[2] == by[3])) continue;
        char span[32];
        ctl_fmt_span(by[i] - at, span, sizeof span);
        int w = snprintf(buf + off, len - off, "%s%s %s", off ? ", " : "", names[i], span);
        if (w < 0) break;
        off += (size_t)w;
    }
}

static void print_event(const Linkd__V1__FeedEvent *ev, bool colour)
{
    char when[16], what[48], text[LD_MAX_TEXT_LEN], term[64], inc[LD_MAX_ID_LEN + 1];
    char subject[LD_MAX_ID_LEN + 1], level[48] = "", note[128] = "";
    const Linkd__V1__Task *t = ev->task;
    int64_t at = ev->has_at_ms ? ev->at_ms : 0;

    ctl_fmt_clock(at, when, sizeof when);
    const char *kind = ld_enum_name(&linkd__v1__feed_kind__descriptor, (int)ev->kind);
    snprintf(what, sizeof what, "%s", kind ? kind : "unknown");
    ctl_sanitize(ev->incident_id, inc, sizeof inc);
    ctl_sanitize(t && t->task_id ? t->task_id : inc, subject, sizeof subject);
    ctl_sanitize(ev->terminal ? ev->terminal : t && t->terminal ? t->terminal : "", term, sizeof term);
    ctl_sanitize(ev->text, text, sizeof text);
    if (t && t->has_level) {
        char lname[32];
        snprintf(level, sizeof level, "L%u %s", t->level, ctl_sanitize(t->level_name, lname, sizeof lname));
    }
    if (t && (ev->kind == LINKD__V1__FEED_KIND__FEED_KIND_TASK_DISPATCHED ||
              ev->kind == LINKD__V1__FEED_KIND__FEED_KIND_TASK_ESCALATED))
        deadline_note(t, at, note, sizeof note);

    const char *on = colour ? kind_colour((int)ev->kind) : "", *off = colour && *on ? CTL_RESET : "";
    printf("%s %s%-18s%s %-30s %-22s %-15s %s", when, on, what, off, subject, term, level, text);
    if (ev->kind == LINKD__V1__FEED_KIND__FEED_KIND_TASK_ESCALATED) {
        const char *leg = ev->has_leg ? ld_enum_name(&linkd__v1__leg__descriptor, (int)ev->leg) : NULL;
        printf(" [missed %s, from L%u]", leg ? leg : "?", ev->has_from_level ? ev->from_level : 0);
    }
    if (note[0]) printf(" %s(%s)%s", colour ? CTL_DIM : "", note, colour ? CTL_RESET : "");
    putchar('\n');
}

/* ---- loop ---------------------------------------------------------------- */

/* drain reads every queued feed message (at most DRAIN_MAX). Returns how
 * many it read, or -1 if the socket failed. */
static int drain(nng_socket s, tail_stats *st, bool colour)
{
    int n = 0;
    for (; n < DRAIN_MAX; n++) {
        nng_msg *msg;
        int rv = nng_recvmsg(s, &msg, NNG_FLAG_NONBLOCK);
        if (rv == NNG_EAGAIN) break;
        if (rv != 0) {
            ctl_warn("feed: %s", nng_strerror(rv));
            return -1;
        }
        Linkd__V1__FeedEvent *ev =
            linkd__v1__feed_event__unpack(NULL, nng_msg_len(msg), nng_msg_body(msg));
        nng_msg_free(msg);
        if (!ev) {
            ctl_warn("feed: a message could not be decoded as a FeedEvent; skipped");
            continue;
        }
        print_event(ev, colour);
        account(st, ev);
        linkd__v1__feed_event__free_unpacked(ev, NULL);
    }
    if (n) fflush(stdout);
    return n;
}

static int parse_args(tail_opts *o, int argc, char **argv)
{
    static const struct option opts[] = {
        {"feed", required_argument, NULL, 'f'},
        {"duration", required_argument, NULL, 'd'},
        {"summary", no_argument, NULL, 's'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int opt;
    optind = 0;
    while ((opt = getopt_long(argc, argv, "hf:d:s", opts, NULL)) != -1) {
        switch (opt) {
        case 'f': o->url = optarg; break;
        case 'd':
            if (ctl_parse_span(optarg, &o->duration_ms) || o->duration_ms == 0)
                return ctl_usage_error("--duration: '%s' is not a positive number of seconds or a duration", optarg);
            break;
        case 's': o->summary = true; break;
        case 'h': usage(); exit(0);
        default: return ctl_usage_error("bad option");
        }
    }
    if (optind < argc) return ctl_usage_error("unexpected argument '%s'", argv[optind]);
    return 0;
}

static int open_sub(nng_socket *s, const char *url, int *fd)
{
    int rv;
    if ((rv = nng_sub0_open(s)) != 0) return rv;
    if ((rv = nng_socket_set(*s, NNG_OPT_SUB_SUBSCRIBE, "", 0)) != 0 ||
        (rv = nng_socket_set_int(*s, NNG_OPT_RECVBUF, 8192)) != 0 ||
        (rv = nng_socket_set_ms(*s, NNG_OPT_RECONNMINT, 100)) != 0 ||
        (rv = nng_socket_set_ms(*s, NNG_OPT_RECONNMAXT, 2000)) != 0 ||
        (rv = nng_socket_get_int(*s, NNG_OPT_RECVFD, fd)) != 0 ||
        /* Background dial: tail may start before linkd and survives its restarts. */
        (rv = ld_dial(*s, url, ctl_tls(), NNG_FLAG_NONBLOCK)) != 0) {
        nng_close(*s);
        return rv;
    }
    return 0;
}

int ctl_tail_main(int argc, char **argv)
{
    tail_opts o = {.url = CTL_FEED_URL};
    if (parse_args(&o, argc, argv)) return EX_USAGE;
    o.colour = ctl_colour();
    if (ctl_signals_install() != 0) {
        ctl_warn("cannot install signal handlers");
        return EX_OSERR;
    }

    nng_socket s;
    int fd, rv;
    if ((rv = open_sub(&s, o.url, &fd)) != 0) {
        ctl_warn("cannot subscribe to %s: %s", o.url, nng_strerror(rv));
        return rv == NNG_EADDRINVAL || rv == NNG_ENOTSUP ? EX_USAGE : EX_UNAVAILABLE;
    }
    tail_stats *st = calloc(1, sizeof *st);
    if (!st) {
        ctl_nng_close(s);
        return EX_OSERR;
    }
    ld_map_init(&st->command_tasks);

    uint64_t end = o.duration_ms ? ld_mono_ms() + o.duration_ms : 0;
    int code = 0;
    while (!ctl_stop) {
        uint64_t now = ld_mono_ms();
        if (end && now >= end) break;
        int timeout = end ? (int)(end - now < 1000 ? end - now : 1000) : 1000;
        struct pollfd pfd[2] = {{.fd = fd, .events = POLLIN}, {.fd = ctl_signal_fd(), .events = POLLIN}};
        int n = poll(pfd, 2, timeout);
        if (n < 0 && errno != EINTR) {
            ctl_warn("poll: %s", strerror(errno));
            code = EX_OSERR;
            break;
        }
        if (n > 0 && (pfd[0].revents & POLLIN) && drain(s, st, o.colour) < 0) {
            code = EX_UNAVAILABLE;
            break;
        }
    }
    drain(s, st, o.colour); /* what arrived before the stop */
    ctl_nng_close(s);
    if (o.summary) print_summary(st, stdout);
    fflush(stdout);
    stats_fini(st);
    free(st);
    return code;
}
