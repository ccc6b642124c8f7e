/* terminal.c: `linkctl terminal`: a department's on-duty terminal (值班终端).
 *
 * It long-polls linkd's terminal socket (PollRequest with wait_ms), receipts
 * every task it was given in its next poll (received[]), prints each task as
 * it arrives, and sends status updates: automatically after fixed delays
 * (--auto-ack/--auto-arrive/--auto-resolve), never (--ignore: the task
 * escalates), or as typed on stdin (interactive, without either).
 *
 * Structure: one REQ context and one aio. The aio callback (an NNG thread)
 * only moves from "sent" to "receiving" and then hands the outcome to the
 * main thread through a pipe; everything else runs on the main thread,
 * which poll()s that pipe, stdin and the signal pipe. Updates and receipts
 * stay queued until a reply to a request that carried them arrives, so a
 * lost request or a restart of linkd loses nothing: at worst an update is
 * answered DUPLICATE and a task comes again marked as a redelivery. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>

#include "core/clock.h"
#include "rules/rules.h"
#include "tools/linkctl.h"

#define MAX_TASKS 1024          /* tasks remembered; the oldest finished one is forgotten first */
#define MAX_UPDATES 256         /* queued updates */
#define MAX_UPDATES_PER_POLL 64
#define MAX_RECEIPTS 1024
#define MAX_WAIT_MS 30000       /* linkd caps wait_ms here */
#define SEND_TIMEOUT_MS 3000    /* no connection to linkd within this: count as unreachable */
#define REPLY_GRACE_MS 5000     /* a reply may come this long after wait_ms */
#define BACKOFF_MIN_MS 250
#define BACKOFF_MAX_MS 5000
#define STOP_TIMEOUT_MS 3000    /* the last flush of updates at exit */
#define LINE_MAX_LEN 1024

enum { ACT_ACK, ACT_ARRIVE, ACT_RESOLVE, ACT_COUNT }; /* automatic actions */

typedef struct term_task {
    bool used;
    unsigned num;               /* [n]: what the user types instead of the id */
    char id[LD_MAX_ID_LEN + 1];
    char summary[128];
    unsigned level;
    int state;                  /* TaskState as last known */
    uint64_t seen_mono;
    uint64_t due[ACT_COUNT];    /* monotonic ms of each automatic update; 0 = none */
} term_task;

typedef struct pending_update {
    char task_id[LD_MAX_ID_LEN + 1];
    int kind;                   /* UpdateKind */
    char text[256];             /* disposition (RESOLVED) or reason (REJECTED) */
    bool inflight;
} pending_update;

enum stage { ST_IDLE, ST_SENDING, ST_RECEIVING, ST_DONE };

typedef struct terminal {
    /* options */
    const char *url, *id, *department;
    uint64_t auto_ms[ACT_COUNT];
    bool auto_on[ACT_COUNT], ignore, interactive, colour;
    uint64_t duration_ms;
    uint32_t wait_ms;
    const char *key_path;       /* --key: prove the terminal's identity */
    uint8_t sk[64];
    bool hello_due;             /* send a signed hello with the next poll */

    /* socket and the hand-over from the aio callback */
    nng_socket sock;
    nng_ctx ctx;
    nng_aio *aio;
    int wake[2];
    pthread_mutex_t mu;         /* guards stage, result, reply, recv_timeout, delivered_once */
    enum stage stage;
    bool delivered_once;        /* a poll reached linkd (a long-poll may still be parked) */
    int result;
    nng_msg *reply;
    nng_duration recv_timeout;

    /* state of the main thread */
    term_task tasks[MAX_TASKS];
    unsigned next_num;
    pending_update updates[MAX_UPDATES];
    size_t nupdates;
    char receipts[MAX_RECEIPTS][LD_MAX_ID_LEN + 1];
    size_t nreceipts, receipts_inflight;
    int64_t server_now;         /* linkd's clock at the last reply */
    unsigned failures;
    uint64_t retry_at;
    bool ever_answered, refused, eof;
    bool refused_hello;         /* a hello_required came since the last good reply */
    bool long_poll;             /* the request in flight may be parked by linkd */
    char line[LINE_MAX_LEN];
    size_t line_len;
    bool line_too_long;
} terminal;

static void usage(void)
{
    puts("Usage: linkctl terminal --id TERMINAL [options]\n"
         "\n"
         "Act as a department's on-duty terminal: receive tasks from linkd (long-poll),\n"
         "confirm receipt, and acknowledge (签收), report arrival (到场) and resolution\n"
         "(办结), or reject with a reason. Each task prints as one line: time on linkd's\n"
         "clock, [n] and task id, level, priority, summary, time left on each leg, rule.\n"
         "\n"
         "  --id TERMINAL       terminal id from the rules, e.g. fire-duty (required)\n"
         "  --department D      assert the terminal's department\n"
         "  --terminals URL     linkd's terminal socket (default " CTL_TERMINALS_URL ")\n"
         "  --auto-ack DELAY    acknowledge each task DELAY after it arrives\n"
         "  --auto-arrive DELAY report on scene DELAY after it arrives\n"
         "  --auto-resolve DELAY report resolved DELAY after it arrives\n"
         "                      (DELAY: milliseconds, or a duration such as 2s, 1m30s)\n"
         "  --ignore            receive tasks but never answer, so they escalate\n"
         "  --duration S        stop after S seconds (or a duration); default: until\n"
         "                      SIGINT/SIGTERM, or end of input when interactive\n"
         "  --wait MS           long-poll wait, at most 30000 (default 10000)\n"
         "  --key FILE          prove this terminal's identity with its secret key (linkctl keygen),\n"
         "                      required when the rules list a key for it (terminal_keys)\n"
         "\n"
         "Without --auto-* or --ignore, commands are read from stdin:\n"
         "  ack TASK | enroute TASK | onscene TASK | resolve TASK [disposition]\n"
         "  reject TASK reason... | list | help | quit\n"
         "TASK is the [n] shown for the task, or its id (I1732290000000-0/fire).\n"
         "\n"
         "Exit: 0, 64 usage, 67 linkd refused the terminal (unknown id or department),\n"
         "69 linkd could not be reached at all.");
}

/* ---- the aio callback (NNG thread) --------------------------------------- */

static void wake_main(terminal *t)
{
    if (write(t->wake[1], "", 1) < 0) {
        /* The pipe is full: the main thread is already due to wake. */
    }
}

static void on_aio(void *arg)
{
    terminal *t = arg;
    int rv = nng_aio_result(t->aio);
    pthread_mutex_lock(&t->mu);
    if (t->stage == ST_SENDING && rv == 0) {
        t->stage = ST_RECEIVING;
        t->delivered_once = true;
        nng_aio_set_timeout(t->aio, t->recv_timeout);
        nng_ctx_recv(t->ctx, t->aio);
        pthread_mutex_unlock(&t->mu);
        /* Wake the main thread too: an update typed while the request was
         * being sent can now interrupt the long-poll (cancel_receive). */
        wake_main(t);
        return;
    }
    if (t->stage == ST_SENDING) { /* a failed send leaves the message with us */
        nng_msg_free(nng_aio_get_msg(t->aio));
        nng_aio_set_msg(t->aio, NULL);
    } else if (rv == 0) {
        t->reply = nng_aio_get_msg(t->aio);
        nng_aio_set_msg(t->aio, NULL);
    }
    t->result = rv;
    t->stage = ST_DONE;
    pthread_mutex_unlock(&t->mu);
    wake_main(t);
}

static enum stage get_stage(terminal *t)
{
    pthread_mutex_lock(&t->mu);
    enum stage s = t->stage;
    pthread_mutex_unlock(&t->mu);
    return s;
}

/* ---- tasks --------------------------------------------------------------- */

static term_task *task_find(terminal *t, const char *id)
{
    for (int i = 0; i < MAX_TASKS; i++)
        if (t->tasks[i].used && strcmp(t->tasks[i].id, id) == 0) return &t->tasks[i];
    return NULL;
}

static term_task *task_by_num(terminal *t, unsigned num)
{
    for (int i = 0; i < MAX_TASKS; i++)
        if (t->tasks[i].used && t->tasks[i].num == num) return &t->tasks[i];
    return NULL;
}

static bool task_finished(const term_task *k)
{
    return k->state == LINKD__V1__TASK_STATE__TASK_STATE_RESOLVED ||
           k->state == LINKD__V1__TASK_STATE__TASK_STATE_REJECTED;
}

/* task_slot returns a free slot, forgetting the oldest finished task (or,
 * if none is finished, the oldest) when all are in use. */
static term_task *task_slot(terminal *t)
{
    term_task *victim = NULL;
    for (int i = 0; i < MAX_TASKS; i++) {
        term_task *k = &t->tasks[i];
        if (!k->used) return k;
        if (!victim || (task_finished(k) && !task_finished(victim)) ||
            (task_finished(k) == task_finished(victim) && k->seen_mono < victim->seen_mono))
            victim = k;
    }
    return victim;
}

/* ---- updates and receipts ------------------------------------------------ */

static const char *update_name(int kind)
{
    const char *n = ld_enum_name(&linkd__v1__update_kind__descriptor, kind);
    return n ? n : "?";
}

/* queue_update adds an update for linkd; returns 0 or -1 if the queue is full. */
static int queue_update(terminal *t, const char *task_id, int kind, const char *text)
{
    if (t->nupdates == MAX_UPDATES) {
        ctl_warn("%s %s: %d updates already waiting for linkd; not queued", update_name(kind),
                 task_id, MAX_UPDATES);
        return -1;
    }
    pending_update *u = &t->updates[t->nupdates++];
    snprintf(u->task_id, sizeof u->task_id, "%s", task_id);
    snprintf(u->text, sizeof u->text, "%s", text ? text : "");
    u->kind = kind;
    u->inflight = false;
    return 0;
}

static void add_receipt(terminal *t, const char *task_id)
{
    for (size_t i = 0; i < t->nreceipts; i++)
        if (strcmp(t->receipts[i], task_id) == 0) return;
    if (t->nreceipts == MAX_RECEIPTS) return; /* the task is redelivered and receipted later */
    snprintf(t->receipts[t->nreceipts++], sizeof t->receipts[0], "%s", task_id);
}

/* due_actions queues every automatic update whose time has come, and
 * returns the monotonic time of the next one (0 if none). */
static uint64_t due_actions(terminal *t, uint64_t now)
{
    static const int kinds[ACT_COUNT] = {
        LINKD__V1__UPDATE_KIND__UPDATE_KIND_ACKNOWLEDGED,
        LINKD__V1__UPDATE_KIND__UPDATE_KIND_ON_SCENE,
        LINKD__V1__UPDATE_KIND__UPDATE_KIND_RESOLVED,
    };
    uint64_t next = 0;
    for (int i = 0; i < MAX_TASKS; i++) {
        term_task *k = &t->tasks[i];
        if (!k->used) continue;
        for (int a = 0; a < ACT_COUNT; a++) {
            if (!k->due[a]) continue;
            if (k->due[a] <= now) {
                if (queue_update(t, k->id, kinds[a], a == ACT_RESOLVE ? "handled on scene" : NULL) == 0)
                    k->due[a] = 0;
                continue;
            }
            if (!next || k->due[a] < next) next = k->due[a];
        }
    }
    return next;
}

/* ---- one poll ------------------------------------------------------------ */

static void settle_updates(terminal *t, const Linkd__V1__PollReply *rep);

static bool has_unsent(const terminal *t)
{
    for (size_t i = 0; i < t->nupdates; i++)
        if (!t->updates[i].inflight) return true;
    return false;
}

/* cancel_receive ends a long-poll that is waiting for its reply, so that a
 * typed update goes out at once. The callback sets ST_RECEIVING under the
 * lock before it starts the receive, and a cancelled aio completes on an NNG
 * thread, never inside nng_aio_cancel, so cancelling under the lock is safe. */
static void cancel_receive(terminal *t)
{
    pthread_mutex_lock(&t->mu);
    if (t->stage == ST_RECEIVING) nng_aio_cancel(t->aio);
    pthread_mutex_unlock(&t->mu);
}

/* start_poll packs a PollRequest with every receipt and up to
 * MAX_UPDATES_PER_POLL queued updates and sends it. */
static int start_poll(terminal *t, uint32_t wait_ms)
{
    Linkd__V1__TaskUpdate upd[MAX_UPDATES_PER_POLL], *updp[MAX_UPDATES_PER_POLL];
    char *recv[MAX_RECEIPTS];
    Linkd__V1__PollRequest req = LINKD__V1__POLL_REQUEST__INIT;
    req.terminal_id = (char *)t->id;
    req.department = (char *)t->department;
    req.has_wait_ms = true;
    req.wait_ms = wait_ms;
    ctl_hello hello;
    if (t->key_path && t->hello_due) {
        ctl_sign_hello(&hello, t->id, t->sk);
        req.hello = &hello.pb;
        t->hello_due = false;
    }

    size_t n = 0;
    for (size_t i = 0; i < t->nupdates && n < MAX_UPDATES_PER_POLL; i++, n++) {
        pending_update *u = &t->updates[i];
        Linkd__V1__TaskUpdate x = LINKD__V1__TASK_UPDATE__INIT;
        x.task_id = u->task_id;
        x.has_kind = true;
        x.kind = (Linkd__V1__UpdateKind)u->kind;
        if ((u->kind == LINKD__V1__UPDATE_KIND__UPDATE_KIND_RESOLVED ||
             u->kind == LINKD__V1__UPDATE_KIND__UPDATE_KIND_FEEDBACK) && u->text[0])
            x.disposition = u->text;
        if (u->kind == LINKD__V1__UPDATE_KIND__UPDATE_KIND_REJECTED) x.reason = u->text;
        upd[n] = x;
        updp[n] = &upd[n];
        u->inflight = true;
    }
    req.n_updates = n;
    req.updates = updp;
    for (size_t i = 0; i < t->nreceipts; i++) recv[i] = t->receipts[i];
    req.n_received = t->nreceipts;
    req.received = recv;
    t->receipts_inflight = t->nreceipts;

    nng_msg *msg;
    size_t len = linkd__v1__poll_request__get_packed_size(&req);
    int rv = nng_msg_alloc(&msg, len);
    if (rv != 0) {
        settle_updates(t, NULL);
        t->receipts_inflight = 0;
        return rv;
    }
    linkd__v1__poll_request__pack(&req, nng_msg_body(msg));

    t->long_poll = wait_ms > 0;
    pthread_mutex_lock(&t->mu);
    t->stage = ST_SENDING;
    t->recv_timeout = (nng_duration)(wait_ms + REPLY_GRACE_MS);
    nng_aio_set_msg(t->aio, msg);
    nng_aio_set_timeout(t->aio, SEND_TIMEOUT_MS);
    nng_ctx_send(t->ctx, t->aio);
    pthread_mutex_unlock(&t->mu);
    return 0;
}

static void print_task(terminal *t, const Linkd__V1__Task *x, unsigned num, bool again)
{
    char when[16], id[LD_MAX_ID_LEN + 1], sum[256], rule[200], lname[32], legs[128] = "";
    static const char *const leg[] = {"ack", "arrive", "feedback", "resolve"};
    int64_t by[4] = {x->has_acknowledge_by_ms ? x->acknowledge_by_ms : 0,
                     x->has_arrive_by_ms ? x->arrive_by_ms : 0,
                     x->has_feedback_by_ms ? x->feedback_by_ms : 0,
                     x->has_resolve_by_ms ? x->resolve_by_ms : 0};
    size_t off = 0;
    for (int i = 0; i < 4; i++) {
        /* Feedback due with resolution has no budget of its own: not shown. */
        if (by[i] <= 0 || (i == 2 && by[2] == by[3])) continue;
        char span[32];
        ctl_fmt_span(by[i] - t->server_now, span, sizeof span);
        int w = snprintf(legs + off, sizeof legs - off, "%s%s %s", off ? ", " : "", leg[i], span);
        if (w < 0 || (size_t)w >= sizeof legs - off) break;
        off += (size_t)w;
    }
    const char *prio = x->has_priority ? ld_enum_name(&linkd__v1__priority__descriptor, (int)x->priority) : NULL;
    ctl_fmt_clock(t->server_now, when, sizeof when);
    const char *on = t->colour ? (again ? CTL_DIM : CTL_BOLD CTL_YELLOW) : "", *off_c = t->colour ? CTL_RESET : "";
    char lead[LD_MAX_ID_LEN + 16] = "";
    if (x->leader) {
        char name[LD_MAX_ID_LEN];
        snprintf(lead, sizeof lead, " leader: %s", ctl_sanitize(x->leader, name, sizeof name));
    }
    printf("%s %sTASK [%u] %s%s L%u %s %s \"%s\" (%s) %s%s%s\n", when, on, num,
           ctl_sanitize(x->task_id, id, sizeof id), off_c, x->has_level ? x->level : 0,
           ctl_sanitize(x->level_name, lname, sizeof lname), prio ? prio : "-",
           ctl_sanitize(x->summary, sum, sizeof sum), legs[0] ? legs : "no deadlines",
           ctl_sanitize(x->rule, rule, sizeof rule), lead,
           again || (x->has_redelivery && x->redelivery) ? " (redelivery)" : "");
}

/* print_reminder shows a reminder of a task this terminal holds (rules:
 * reminders): which deadline is near, and how much of its wait is gone. */
static void print_reminder(terminal *t, const Linkd__V1__Task *x, unsigned num)
{
    char when[16], id[LD_MAX_ID_LEN + 1], left[32] = "";
    int leg = x->has_reminder_leg ? (int)x->reminder_leg : 0;
    int64_t by = leg == LINKD__V1__LEG__LEG_ACKNOWLEDGE ? x->acknowledge_by_ms
                 : leg == LINKD__V1__LEG__LEG_ARRIVE   ? x->arrive_by_ms
                 : leg == LINKD__V1__LEG__LEG_FEEDBACK ? x->feedback_by_ms
                                                        : x->resolve_by_ms;
    const char *name = leg == LINKD__V1__LEG__LEG_ACKNOWLEDGE ? "acknowledge"
                       : leg == LINKD__V1__LEG__LEG_ARRIVE    ? "arrive"
                       : leg == LINKD__V1__LEG__LEG_FEEDBACK  ? "feedback"
                                                               : "resolve";
    ctl_fmt_span(by - t->server_now, left, sizeof left);
    ctl_fmt_clock(t->server_now, when, sizeof when);
    printf("%s %sREMINDER [%u] %s%s: %s due in %s (%u%% of the wait gone)\n", when,
           t->colour ? CTL_BOLD CTL_YELLOW : "", num, ctl_sanitize(x->task_id, id, sizeof id),
           t->colour ? CTL_RESET : "", name, left, x->reminder_percent);
}

/* print_raised shows that a task this terminal holds became more urgent:
 * a group petition formed, or a supervisor merged a graver incident in. */
static void print_raised(terminal *t, const Linkd__V1__Task *x, unsigned num)
{
    char when[16], id[LD_MAX_ID_LEN + 1];
    const char *prio = x->has_priority ? ld_enum_name(&linkd__v1__priority__descriptor, (int)x->priority) : NULL;
    ctl_fmt_clock(t->server_now, when, sizeof when);
    printf("%s %sPRIORITY RAISED [%u] %s%s: now %s\n", when,
           t->colour ? CTL_BOLD CTL_YELLOW : "", num, ctl_sanitize(x->task_id, id, sizeof id),
           t->colour ? CTL_RESET : "", prio ? prio : "-");
}

static void take_task(terminal *t, const Linkd__V1__Task *x, uint64_t now)
{
    if (!x->task_id || !*x->task_id || strlen(x->task_id) > LD_MAX_ID_LEN) {
        ctl_warn("linkd sent a task without a usable id; ignored");
        return;
    }
    add_receipt(t, x->task_id);
    term_task *k = task_find(t, x->task_id);
    if (k && x->has_reminder && x->reminder) {
        /* Not a new task: one this terminal holds, with a deadline near. */
        print_reminder(t, x, k->num);
        return;
    }
    if (k && x->has_priority_raised && x->priority_raised) {
        print_raised(t, x, k->num);
        return;
    }
    bool again = k && k->level == (x->has_level ? x->level : 0);
    if (!k) {
        k = task_slot(t);
        memset(k, 0, sizeof *k);
        k->used = true;
        k->num = ++t->next_num;
        snprintf(k->id, sizeof k->id, "%s", x->task_id);
    }
    print_task(t, x, k->num, again);
    char sum[sizeof k->summary];
    snprintf(k->summary, sizeof k->summary, "%s", ctl_sanitize(x->summary, sum, sizeof sum));
    if (x->has_state && (int)x->state > k->state) k->state = (int)x->state;
    if (again) return;
    /* New here (first delivery, or escalated to this terminal): plan the
     * automatic updates that the task's state does not already cover. */
    k->level = x->has_level ? x->level : 0;
    k->seen_mono = now;
    static const int covered_by[ACT_COUNT] = {
        LINKD__V1__TASK_STATE__TASK_STATE_ACKNOWLEDGED,
        LINKD__V1__TASK_STATE__TASK_STATE_ON_SCENE,
        LINKD__V1__TASK_STATE__TASK_STATE_RESOLVED,
    };
    for (int a = 0; a < ACT_COUNT; a++)
        k->due[a] = t->auto_on[a] && k->state < covered_by[a] ? now + t->auto_ms[a] : 0;
}

/* state_after maps an accepted update to the task state it leads to. */
static int state_after(int kind)
{
    switch (kind) {
    case LINKD__V1__UPDATE_KIND__UPDATE_KIND_ACKNOWLEDGED: return LINKD__V1__TASK_STATE__TASK_STATE_ACKNOWLEDGED;
    case LINKD__V1__UPDATE_KIND__UPDATE_KIND_EN_ROUTE: return LINKD__V1__TASK_STATE__TASK_STATE_EN_ROUTE;
    case LINKD__V1__UPDATE_KIND__UPDATE_KIND_ON_SCENE: return LINKD__V1__TASK_STATE__TASK_STATE_ON_SCENE;
    case LINKD__V1__UPDATE_KIND__UPDATE_KIND_RESOLVED: return LINKD__V1__TASK_STATE__TASK_STATE_RESOLVED;
    /* Feedback is a report, not a state: it implies acknowledgement only. */
    case LINKD__V1__UPDATE_KIND__UPDATE_KIND_FEEDBACK: return LINKD__V1__TASK_STATE__TASK_STATE_ACKNOWLEDGED;
    default: return LINKD__V1__TASK_STATE__TASK_STATE_REJECTED;
    }
}

static void print_update_result(terminal *t, const pending_update *u, const Linkd__V1__UpdateResult *r)
{
    char when[16], why[LD_MAX_TEXT_LEN];
    ctl_fmt_clock(t->server_now, when, sizeof when);
    term_task *k = task_find(t, u->task_id);
    char num[16] = "";
    if (k) snprintf(num, sizeof num, "[%u] ", k->num);
    const char *c = "", *off = t->colour ? CTL_RESET : "";
    const char *verdict;
    switch (r ? r->result : 0) {
    case LINKD__V1__RESULT__RESULT_ACCEPTED: verdict = "accepted"; c = CTL_GREEN; break;
    case LINKD__V1__RESULT__RESULT_DUPLICATE: verdict = "already so (duplicate)"; c = CTL_DIM; break;
    case LINKD__V1__RESULT__RESULT_REJECTED: verdict = "REJECTED"; c = CTL_RED; break;
    default: verdict = "no result"; c = CTL_RED; break;
    }
    if (!t->colour) c = "";
    printf("%s %s%-12s%s %s%s: %s%s%s\n", when, c, update_name(u->kind), off, num, u->task_id, verdict,
           r && r->reason ? ": " : "", r && r->reason ? ctl_sanitize(r->reason, why, sizeof why) : "");
    if (k && r && (r->result == LINKD__V1__RESULT__RESULT_ACCEPTED ||
                   r->result == LINKD__V1__RESULT__RESULT_DUPLICATE)) {
        int s = state_after(u->kind);
        if (s > k->state) k->state = s;
    }
}

/* settle_updates drops the in-flight updates after a reply, printing the
 * result of each, or marks them for sending again after a failure. */
static void settle_updates(terminal *t, const Linkd__V1__PollReply *rep)
{
    size_t keep = 0, ri = 0;
    for (size_t i = 0; i < t->nupdates; i++) {
        pending_update *u = &t->updates[i];
        if (u->inflight && rep) {
            print_update_result(t, u, ri < rep->n_update_results ? rep->update_results[ri] : NULL);
            ri++;
            continue;
        }
        u->inflight = false;
        if (keep != i) t->updates[keep] = *u;
        keep++;
    }
    t->nupdates = keep;
}

/* handle_reply consumes the outcome of a finished poll. */
static void handle_reply(terminal *t, uint64_t now)
{
    pthread_mutex_lock(&t->mu);
    int rv = t->result;
    nng_msg *msg = t->reply;
    t->reply = NULL;
    t->stage = ST_IDLE;
    pthread_mutex_unlock(&t->mu);

    Linkd__V1__PollReply *rep = NULL;
    if (rv == 0) {
        rep = linkd__v1__poll_reply__unpack(NULL, nng_msg_len(msg), nng_msg_body(msg));
        nng_msg_free(msg);
        if (!rep) rv = NNG_EPROTO;
    }
    if (rv != 0) {
        settle_updates(t, NULL);
        if (rv == NNG_ECANCELED) return; /* we cancelled to send an update sooner */
        uint64_t backoff = (uint64_t)BACKOFF_MIN_MS << (t->failures < 5 ? t->failures : 5);
        if (backoff > BACKOFF_MAX_MS) backoff = BACKOFF_MAX_MS;
        if (t->failures++ == 0)
            ctl_warn("no answer from linkd at %s (%s); retrying with backoff", t->url,
                     rv == NNG_EPROTO ? "undecodable reply" : nng_strerror(rv));
        t->retry_at = now + backoff;
        return;
    }
    if (t->failures) ctl_warn("linkd answers again");
    t->failures = 0;
    t->ever_answered = true;
    if (!rep->hello_required) t->refused_hello = false;
    if (rep->has_server_time_ms) t->server_now = rep->server_time_ms;
    if (rep->has_hello_required && rep->hello_required && t->key_path && !t->refused_hello) {
        /* A new connection (linkd restarted, or the network did): prove it again, once. */
        t->hello_due = true;
        t->refused_hello = true;
        linkd__v1__poll_reply__free_unpacked(rep, NULL);
        return;
    }
    if (rep->error && *rep->error) {
        char why[LD_MAX_TEXT_LEN];
        ctl_warn("linkd refused terminal '%s': %s", t->id, ctl_sanitize(rep->error, why, sizeof why));
        t->refused = true;
        linkd__v1__poll_reply__free_unpacked(rep, NULL);
        return;
    }
    /* The receipts we sent are delivered; the tasks below need new ones. */
    memmove(t->receipts, t->receipts + t->receipts_inflight,
            (t->nreceipts - t->receipts_inflight) * sizeof t->receipts[0]);
    t->nreceipts -= t->receipts_inflight;
    t->receipts_inflight = 0;
    settle_updates(t, rep);
    for (size_t i = 0; i < rep->n_tasks; i++) take_task(t, rep->tasks[i], now);
    fflush(stdout);
    linkd__v1__poll_reply__free_unpacked(rep, NULL);
}

/* ---- interactive commands ------------------------------------------------ */

static const char *resolve_ref(terminal *t, const char *ref)
{
    char *end;
    unsigned long n = strtoul(ref, &end, 10);
    if (*ref && !*end) {
        term_task *k = task_by_num(t, (unsigned)n);
        return k ? k->id : NULL;
    }
    if (ref[0] == '[') { /* "[3]" as printed */
        n = strtoul(ref + 1, &end, 10);
        term_task *k = *end == ']' ? task_by_num(t, (unsigned)n) : NULL;
        return k ? k->id : NULL;
    }
    return strlen(ref) <= LD_MAX_ID_LEN ? ref : NULL;
}

static void list_tasks(terminal *t)
{
    unsigned shown = 0;
    for (unsigned num = 1; num <= t->next_num; num++) {
        term_task *k = task_by_num(t, num);
        if (!k) continue;
        const char *st = ld_enum_name(&linkd__v1__task_state__descriptor, k->state);
        printf("  [%u] %-28s L%u %-12s %s\n", k->num, k->id, k->level, st ? st : "dispatched", k->summary);
        shown++;
    }
    if (!shown) puts("  no tasks yet");
}

static void command_help(void)
{
    puts("  ack TASK            acknowledge (签收)\n"
         "  enroute TASK        on the way\n"
         "  onscene TASK        arrived on scene (到场)\n"
         "  feedback TASK text  report back from the scene (反馈)\n"
         "  resolve TASK [text] resolved (办结), with an optional disposition\n"
         "  reject TASK reason  refuse with a reason; linkd escalates at once\n"
         "  list                tasks received so far\n"
         "  quit                stop");
}

/* run_command executes one line typed by the user. */
static void run_command(terminal *t, char *line)
{
    static const struct {
        const char *word;
        int kind;
    } verbs[] = {
        {"ack", LINKD__V1__UPDATE_KIND__UPDATE_KIND_ACKNOWLEDGED},
        {"enroute", LINKD__V1__UPDATE_KIND__UPDATE_KIND_EN_ROUTE},
        {"onscene", LINKD__V1__UPDATE_KIND__UPDATE_KIND_ON_SCENE},
        {"arrive", LINKD__V1__UPDATE_KIND__UPDATE_KIND_ON_SCENE},
        {"feedback", LINKD__V1__UPDATE_KIND__UPDATE_KIND_FEEDBACK},
        {"resolve", LINKD__V1__UPDATE_KIND__UPDATE_KIND_RESOLVED},
        {"reject", LINKD__V1__UPDATE_KIND__UPDATE_KIND_REJECTED},
    };
    char *save = NULL;
    char *word = strtok_r(line, " \t\r", &save);
    if (!word || word[0] == '#') return;
    if (strcmp(word, "quit") == 0 || strcmp(word, "exit") == 0) {
        ctl_stop = 1;
        return;
    }
    if (strcmp(word, "list") == 0) return list_tasks(t);
    if (strcmp(word, "help") == 0) return command_help();
    for (size_t i = 0; i < sizeof verbs / sizeof verbs[0]; i++) {
        if (strcmp(word, verbs[i].word) != 0) continue;
        char *ref = strtok_r(NULL, " \t\r", &save);
        char *rest = strtok_r(NULL, "", &save);
        while (rest && (*rest == ' ' || *rest == '\t')) rest++;
        const char *id = ref ? resolve_ref(t, ref) : NULL;
        if (!id) {
            printf("  %s: which task? give its [n] or id (see 'list')\n", word);
            return;
        }
        if (verbs[i].kind == LINKD__V1__UPDATE_KIND__UPDATE_KIND_REJECTED && (!rest || !*rest)) {
            puts("  reject: a reason is required, e.g. 'reject 3 not our jurisdiction'");
            return;
        }
        if (verbs[i].kind == LINKD__V1__UPDATE_KIND__UPDATE_KIND_FEEDBACK && (!rest || !*rest)) {
            puts("  feedback: say what to report, e.g. 'feedback 3 fire out, two injured to hospital'");
            return;
        }
        queue_update(t, id, verbs[i].kind, rest);
        return;
    }
    printf("  unknown command '%s'; type 'help'\n", word);
}

/* read_input reads what stdin has and runs each complete line. */
static void read_input(terminal *t)
{
    char buf[512];
    ssize_t n = read(STDIN_FILENO, buf, sizeof buf);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) return;
    if (n <= 0) {
        t->eof = true;
        return;
    }
    for (ssize_t i = 0; i < n; i++) {
        if (buf[i] != '\n') {
            if (t->line_len + 1 < sizeof t->line)
                t->line[t->line_len++] = buf[i];
            else
                t->line_too_long = true;
            continue;
        }
        t->line[t->line_len] = '\0';
        if (t->line_too_long)
            printf("  line too long (over %d bytes); ignored\n", LINE_MAX_LEN - 1);
        else
            run_command(t, t->line);
        t->line_len = 0;
        t->line_too_long = false;
    }
    fflush(stdout);
}

/* ---- set-up and main loop ------------------------------------------------ */

static int parse_args(terminal *t, int argc, char **argv)
{
    enum { O_ID = 256, O_DEPT, O_URL, O_ACK, O_ARRIVE, O_RESOLVE, O_IGNORE, O_DURATION, O_WAIT,
           O_KEY };
    static const struct option opts[] = {
        {"id", required_argument, NULL, O_ID},
        {"department", required_argument, NULL, O_DEPT},
        {"terminals", required_argument, NULL, O_URL},
        {"auto-ack", required_argument, NULL, O_ACK},
        {"auto-arrive", required_argument, NULL, O_ARRIVE},
        {"auto-resolve", required_argument, NULL, O_RESOLVE},
        {"ignore", no_argument, NULL, O_IGNORE},
        {"duration", required_argument, NULL, O_DURATION},
        {"wait", required_argument, NULL, O_WAIT},
        {"key", required_argument, NULL, O_KEY},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int opt;
    optind = 0;
    while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (opt) {
        case O_ID: t->id = optarg; break;
        case O_DEPT: t->department = optarg; break;
        case O_URL: t->url = optarg; break;
        case O_ACK:
        case O_ARRIVE:
        case O_RESOLVE: {
            int a = opt == O_ACK ? ACT_ACK : opt == O_ARRIVE ? ACT_ARRIVE : ACT_RESOLVE;
            if (ctl_parse_delay(optarg, &t->auto_ms[a]))
                return ctl_usage_error("--%s: '%s' is not a delay (milliseconds, or e.g. 2s)",
                                       opts[opt - O_ID].name, optarg);
            t->auto_on[a] = true;
            break;
        }
        case O_IGNORE: t->ignore = true; break;
        case O_KEY:
            t->key_path = optarg;
            if (ctl_load_secret(optarg, t->sk) != 0) return EX_NOINPUT;
            t->hello_due = true;
            break;
        case O_DURATION:
            if (ctl_parse_span(optarg, &t->duration_ms) || t->duration_ms == 0)
                return ctl_usage_error("--duration: '%s' is not a positive number of seconds or a duration", optarg);
            break;
        case O_WAIT:
            if (ctl_parse_u32(optarg, &t->wait_ms) || t->wait_ms > MAX_WAIT_MS)
                return ctl_usage_error("--wait: must be 0 to %d ms", MAX_WAIT_MS);
            break;
        case 'h': usage(); exit(0);
        default: return ctl_usage_error("bad option");
        }
    }
    if (optind < argc) return ctl_usage_error("unexpected argument '%s'", argv[optind]);
    if (!t->id || !*t->id) return ctl_usage_error("--id TERMINAL is required (e.g. fire-duty)");
    bool any_auto = t->auto_on[ACT_ACK] || t->auto_on[ACT_ARRIVE] || t->auto_on[ACT_RESOLVE];
    if (t->ignore && any_auto) return ctl_usage_error("--ignore and --auto-* contradict each other");
    t->interactive = !t->ignore && !any_auto;
    return 0;
}

static int open_terminal(terminal *t)
{
    int rv;
    if (pipe(t->wake) != 0) return NNG_ENOMEM;
    for (int i = 0; i < 2; i++) {
        fcntl(t->wake[i], F_SETFL, fcntl(t->wake[i], F_GETFL) | O_NONBLOCK);
        fcntl(t->wake[i], F_SETFD, FD_CLOEXEC);
    }
    pthread_mutex_init(&t->mu, NULL);
    if ((rv = ctl_req_open(&t->sock, t->url, true)) != 0) return rv;
    if ((rv = nng_ctx_open(&t->ctx, t->sock)) != 0 ||
        (rv = nng_ctx_set_ms(t->ctx, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE)) != 0 ||
        (rv = nng_aio_alloc(&t->aio, on_aio, t)) != 0) {
        nng_close(t->sock);
        return rv;
    }
    return 0;
}

static void close_terminal(terminal *t)
{
    nng_aio_stop(t->aio); /* waits for a running callback */
    if (t->reply) nng_msg_free(t->reply);
    nng_aio_free(t->aio);
    nng_ctx_close(t->ctx);
    ctl_nng_close(t->sock);
    close(t->wake[0]);
    close(t->wake[1]);
    pthread_mutex_destroy(&t->mu);
}

/* wait_done blocks until the poll in flight finishes or <ms> pass. */
static void wait_done(terminal *t, int ms)
{
    uint64_t end = ld_mono_ms() + (uint64_t)ms;
    while (get_stage(t) != ST_DONE) {
        uint64_t now = ld_mono_ms();
        if (now >= end) {
            nng_aio_cancel(t->aio);
            nng_aio_wait(t->aio);
            break;
        }
        struct pollfd p = {.fd = t->wake[0], .events = POLLIN};
        poll(&p, 1, (int)(end - now));
        char drain[64];
        while (read(t->wake[0], drain, sizeof drain) > 0) {}
    }
}

/* stop_flush delivers what is still queued (receipts, updates) with one
 * short poll, so work done just before the stop reaches linkd. */
static void stop_flush(terminal *t)
{
    enum stage s = get_stage(t);
    if (s == ST_SENDING || s == ST_RECEIVING) {
        nng_aio_cancel(t->aio); /* a send still waiting for a connection, or the long-poll */
        cancel_receive(t);
        wait_done(t, STOP_TIMEOUT_MS);
    }
    if (get_stage(t) == ST_DONE) handle_reply(t, ld_mono_ms());
    if (t->refused || (!t->nupdates && !t->nreceipts) || t->failures) return;
    if (start_poll(t, 0) != 0) return;
    wait_done(t, STOP_TIMEOUT_MS);
    if (get_stage(t) == ST_DONE) handle_reply(t, ld_mono_ms());
}

/* next_wait is the long-poll wait: short enough to send the next automatic
 * update on time and to stop on time. */
static uint32_t next_wait(const terminal *t, uint64_t now, uint64_t next_due, uint64_t end)
{
    uint64_t w = t->nupdates ? 0 : t->wait_ms;
    if (next_due && next_due - now < w) w = next_due - now;
    if (end && end - now < w) w = end - now;
    return (uint32_t)w;
}

static void run(terminal *t)
{
    uint64_t end = t->duration_ms ? ld_mono_ms() + t->duration_ms : 0;
    while (!ctl_stop && !t->refused && !(t->interactive && t->eof)) {
        uint64_t now = ld_mono_ms();
        if (end && now >= end) break;
        uint64_t next_due = due_actions(t, now);
        enum stage stage = get_stage(t);
        if (stage == ST_IDLE && now >= t->retry_at) {
            if (start_poll(t, next_wait(t, now, next_due, end)) != 0) {
                ctl_warn("out of memory");
                break;
            }
            stage = ST_SENDING;
        }
        if (t->interactive && t->long_poll && has_unsent(t)) cancel_receive(t);

        uint64_t wake_at = end;
        if (next_due && (!wake_at || next_due < wake_at)) wake_at = next_due;
        if (stage == ST_IDLE && (!wake_at || t->retry_at < wake_at)) wake_at = t->retry_at;
        int timeout = wake_at ? (wake_at > now ? (int)(wake_at - now < 60000 ? wake_at - now : 60000) : 0) : 60000;

        struct pollfd p[3] = {
            {.fd = t->wake[0], .events = POLLIN},
            {.fd = ctl_signal_fd(), .events = POLLIN},
            {.fd = t->interactive && !t->eof ? STDIN_FILENO : -1, .events = POLLIN},
        };
        if (poll(p, 3, timeout) < 0 && errno != EINTR) {
            ctl_warn("poll: %s", strerror(errno));
            break;
        }
        if (p[0].revents & POLLIN) {
            char drain[64];
            while (read(t->wake[0], drain, sizeof drain) > 0) {}
        }
        if (get_stage(t) == ST_DONE) handle_reply(t, ld_mono_ms());
        if (p[2].revents & (POLLIN | POLLHUP)) read_input(t);
    }
}

int ctl_terminal_main(int argc, char **argv)
{
    terminal *t = calloc(1, sizeof *t);
    if (!t) return EX_OSERR;
    t->url = CTL_TERMINALS_URL;
    t->wait_ms = 10000;
    int code = 0;
    if (parse_args(t, argc, argv)) {
        free(t);
        return EX_USAGE;
    }
    t->colour = ctl_colour();
    if (ctl_signals_install() != 0) {
        ctl_warn("cannot install signal handlers");
        free(t);
        return EX_OSERR;
    }
    int rv = open_terminal(t);
    if (rv != 0) {
        ctl_warn("cannot open a connection to %s: %s", t->url, nng_strerror(rv));
        free(t);
        return rv == NNG_EADDRINVAL || rv == NNG_ENOTSUP ? EX_USAGE : EX_UNAVAILABLE;
    }
    if (t->interactive) printf("terminal %s: type 'help' for commands\n", t->id);
    else printf("terminal %s on duty%s\n", t->id, t->ignore ? " (ignoring every task)" : "");
    fflush(stdout);

    run(t);
    stop_flush(t);
    pthread_mutex_lock(&t->mu);
    bool reached = t->ever_answered || t->delivered_once;
    pthread_mutex_unlock(&t->mu);
    if (t->refused) code = EX_NOUSER;
    else if (!reached) {
        ctl_warn("could not reach linkd at %s", t->url);
        code = EX_UNAVAILABLE;
    }
    close_terminal(t);
    free(t);
    return code;
}
