/* engine.h: the domain: incidents, tasks, legs, deadlines and escalation.
 *
 * The engine is pure state and rules: it does no I/O. It tells the daemon
 * what happened through hooks (a feed event to publish, a terminal that has
 * new work) and keeps a list of incidents whose Redis record is stale; the
 * daemon writes those behind once per loop turn. Time comes from an ld_clock,
 * so tests drive a manual clock and run a 60-day petition in microseconds.
 *
 * Everything here runs on the loop thread. Incidents and tasks come from
 * pools; opening an incident allocates nothing else. */
#ifndef LD_ENGINE_ENGINE_H
#define LD_ENGINE_ENGINE_H

#include <stddef.h>
#include <stdint.h>

#include "core/clock.h"
#include "core/intern.h"
#include "core/list.h"
#include "core/map.h"
#include "core/pool.h"
#include "rules/rules.h"
#include "timer/timer.h"
#include "wire/wire.h"

#define LD_INCIDENT_ID_LEN 40
#define LD_MAX_TASKS 16
#define LD_HISTORY_MAX 32
#define LD_TASK_ID_LEN (LD_INCIDENT_ID_LEN + 40)
#define LD_SUMMARY_LEN 200      /* an incident's summary, with its NUL */

typedef struct ld_incident ld_incident;
struct ld_notes;

/* A department's escalation chain as it stood when a task was dispatched
 * (ladder.c): its levels, then command's. Tasks share it, counted; a
 * reload makes new ones only for chains that changed, so an open task keeps
 * climbing the chain it started on. */
typedef struct ld_ladder {
    uint32_t refs;              /* tasks on it, plus one while it is current */
    int dept_levels;            /* levels [0, dept_levels) are the department's */
    int n;
    ld_level levels[2 * LD_MAX_LEVELS];
} ld_ladder;

enum ld_delivery {
    LD_DELIVERY_NONE,      /* not waiting for any terminal */
    LD_DELIVERY_NEW,       /* assigned, not yet sent */
    LD_DELIVERY_SENT,      /* in a poll reply, no receipt yet */
    LD_DELIVERY_RECEIVED,  /* receipted; resent periodically until acknowledged */
};

/* A task's times per leg: its deadline, when it was done (0: not yet), and
 * its budget at dispatch (0 if unknown, as after a restart). */
enum ld_task_time { LD_TIME_DUE, LD_TIME_DONE, LD_TIME_BUDGET, LD_TIME_KINDS };

/* What few tasks need, in a block of its own (ld_engine.blocks) that only
 * they have: reminders (the default rules give them to petition work
 * only), a leader named by a correlation rule, and times that do not fit in
 * 32 bits of milliseconds from dispatch (past 49.7 days: petitions that
 * run 60 days, a clock stepped back). */
typedef struct ld_task_more {
    uint64_t wide[LD_TIME_KINDS][LD_LEG_COUNT]; /* where the task's wide bit is set */
    uint64_t rem_from[LD_LEG_COUNT]; /* start of each leg's current wait */
    const char *leader;         /* the leader responsible (a correlation rule's); engine-owned */
    ld_reminders rem;           /* its reminders, as dispatched */
    uint8_t rem_sent[LD_LEG_COUNT]; /* reminders sent in that wait */
} ld_task_more;

#define LD_COUNTED_DEPTS 64     /* departments ld_engine.tasks_by counts */
#define LD_TASK_STATES 8        /* Linkd__V1__TaskState values are below it */

/* 152 bytes: an open incident holds 1.6 of them with the default rules, so
 * every field counts (docs/BENCHMARKS.md, "Memory per open incident"). */
typedef struct ld_task {
    ld_incident *inc;
    ld_timer timer;             /* earliest pending leg deadline */
    ld_list term_link;          /* in its terminal's delivery list */
    const char *rule;           /* "routes.yaml:14:5 structure-fire", kept once in
                                 * ld_engine.strings; never NULL once dispatched */
    char *texts;                /* reason, disposition, feedback: see ld_task_text */
    ld_ladder *ladder;          /* the chain it climbs (ladder.c) */
    ld_task_more *more;         /* NULL unless it needs one (ld_task_more) */
    uint64_t dispatched_at;
    uint64_t resend_at_real;    /* when a receipted, unacknowledged task goes again */
    /* Per kind and leg: 0 for 0 (a zeroed task has none), else 1 + ms after
     * dispatched_at (the budget: its ms); or, with bit kind * LD_LEG_COUNT +
     * leg of <wide>, in more->wide. Read with ld_task_time, set with
     * ld__task_set_time. */
    uint32_t time[LD_TIME_KINDS][LD_LEG_COUNT];
    int16_t dept;               /* rules index (ld_engine_init checks the rules fit) */
    int16_t terminal;           /* rules index of the current holder */
    uint16_t sends;             /* replies that carried it to the current holder (stops
                                 * counting at 65535) */
    uint16_t wide;              /* times kept in more->wide, bit per kind and leg */
    uint8_t idx;                /* position in the incident (< LD_MAX_TASKS) */
    int8_t level;               /* position in the chain: department levels, then
                                 * command's (< 2 * LD_MAX_LEVELS) */
    uint8_t state;              /* Linkd__V1__TaskState */
    uint8_t delivery : 2;       /* enum ld_delivery */
    uint8_t fencing : 1;        /* a deadline escalation waits for its fence (timer unarmed) */
    uint8_t raised : 1;         /* to be sent again, priority raised, until receipted */
    uint8_t overdue_top;        /* bit per leg: missed at the top of the chain */
    uint8_t legs_off;           /* bit per leg the task does not have (no feedback budget) */
    uint8_t remind_leg;         /* a reminder waits to go to the holder: leg + 1; 0 none */
    uint8_t remind_pct;
} ld_task;

/* ld_task_time returns time <kind> (enum ld_task_time) of <leg> of <t>. */
static inline uint64_t ld_task_time(const ld_task *t, int kind, int leg)
{
    if (t->wide >> (kind * LD_LEG_COUNT + leg) & 1u) return t->more->wide[kind][leg];
    uint32_t v = t->time[kind][leg];
    if (kind == LD_TIME_BUDGET || v == 0) return v;
    return t->dispatched_at + v - 1;
}
static inline uint64_t ld_task_due(const ld_task *t, int leg)
{
    return ld_task_time(t, LD_TIME_DUE, leg);
}
static inline uint64_t ld_task_done(const ld_task *t, int leg)
{
    return ld_task_time(t, LD_TIME_DONE, leg);
}
static inline uint64_t ld_task_budget(const ld_task *t, int leg)
{
    return ld_task_time(t, LD_TIME_BUDGET, leg);
}
/* The leader a correlation rule named for <t>, or NULL; reminders of <leg>:
 * how many it has, how many went in the current wait. */
static inline const char *ld_task_leader(const ld_task *t)
{
    return t->more ? t->more->leader : NULL;
}
static inline int ld_task_reminders(const ld_task *t, int leg)
{
    return t->more ? t->more->rem.n[leg] : 0;
}
static inline int ld_task_reminders_sent(const ld_task *t, int leg)
{
    return t->more ? t->more->rem_sent[leg] : 0;
}

/* A task's texts, kept in one block only while one is set (most tasks have
 * none): why it is at its level, how it was resolved, the latest feedback
 * report (反馈). Each is cut to its length here, NUL included. */
enum ld_task_text {
    LD_TEXT_REASON,             /* 128 */
    LD_TEXT_DISPOSITION,        /* 64 */
    LD_TEXT_FEEDBACK,           /* 96 */
    LD_TEXT_COUNT
};

/* ld_task_text returns text <which> of <t>, "" if it has none; valid until
 * that task's texts change. */
const char *ld_task_text(const ld_task *t, int which);
static inline const char *ld_task_reason(const ld_task *t)
{
    return ld_task_text(t, LD_TEXT_REASON);
}
static inline const char *ld_task_disposition(const ld_task *t)
{
    return ld_task_text(t, LD_TEXT_DISPOSITION);
}
static inline const char *ld_task_feedback(const ld_task *t)
{
    return ld_task_text(t, LD_TEXT_FEEDBACK);
}

/* One change in an incident's history: 12 bytes, since an open incident
 * keeps four to eight of them (docs/BENCHMARKS.md). Its time is 48 bits of
 * ms (to the year 10889): read and set it with ld_history_at/_set_at. */
typedef struct ld_history {
    uint32_t at_lo;
    uint16_t at_hi;
    uint8_t kind;               /* Linkd__V1__FeedKind */
    uint8_t leg : 4;            /* Linkd__V1__Leg: leg + 1, 0 none */
    uint8_t task : 4;           /* the task's idx (< LD_MAX_TASKS) */
    uint8_t level;
    uint8_t note;               /* 1-based index into the incident's notes; 0 = none */
    int16_t terminal;
} ld_history;

static inline uint64_t ld_history_at(const ld_history *h)
{
    return (uint64_t)h->at_hi << 32 | h->at_lo;
}
static inline void ld_history_set_at(ld_history *h, uint64_t at)
{
    if (at >> 48) at = (1ull << 48) - 1;
    h->at_lo = (uint32_t)at;
    h->at_hi = (uint16_t)(at >> 32);
}

struct ld_incident {
    /* Strings, never NULL once the incident is open ("" when absent): id,
     * event_id and summary share one block of ld_engine.blocks; source_id,
     * district and grid are kept once in ld_engine.strings. Cut to
     * LD_INCIDENT_ID_LEN - 1, LD_MAX_ID_LEN, 32, 64 and 199 bytes. */
    const char *id;
    const char *event_id, *summary;
    const char *source_id;
    const char *district, *grid;
    ld_task *const *tasks;      /* ntasks, in dispatch order, in a block of tasks_cap
                                 * (ld_engine.blocks); only the engine adds to it */
    ld_history *history;        /* nhistory entries, oldest first, in a block of
                                 * history_cap (ld_engine.blocks); NULL until the first */
    struct ld_notes *notes;     /* supervisors' notes (who, why); NULL until one acts */
    struct ld_merged *merged;   /* duplicate events that joined it (correlate.c) */
    ld_incident *dirty_next;
    void *audit_tail;           /* the audit trail's (src/audit): its chain tail, through
                                 * ld_observation.audit_tail; NULL in a new incident */
    uint64_t signed_at;         /* when the last sign_off task acknowledged; 0 while one
                                 * is missing */
    uint64_t opened_at, closed_at;
    double lat, lon;
    uint32_t people;
    uint32_t history_dropped;
    uint16_t nmerged;
    uint16_t sign_need;         /* bit per task that must acknowledge (rules: sign_off) */
    uint8_t kind;               /* enum ld_kind */
    uint8_t category;           /* CallCategory, SensorKind or PetitionIssue value (< 64) */
    uint8_t priority;           /* Linkd__V1__Priority */
    uint8_t status;             /* Linkd__V1__Status */
    uint8_t has_ll;
    uint8_t ntasks, open_tasks, tasks_cap;
    uint8_t nhistory, history_cap;
    uint8_t dirty;
};

/* Per terminal: who holds what. Indexed like ld_rules.terminals. */
typedef struct ld_term {
    ld_list tasks;              /* ld_task.term_link: tasks to deliver or resend */
    uint32_t held;              /* tasks in the list */
} ld_term;

typedef struct ld_engine_stats {
    uint64_t incidents_opened, incidents_closed;
    uint64_t tasks_dispatched, tasks_delivered, tasks_redelivered;
    uint64_t acknowledged, feedbacks, resolved, rejected_updates, escalations, reached_command;
    uint64_t overdue_at_top, unrouted;
    uint64_t drill_incidents, drill_tasks;  /* exercises and tests, counted apart */
    uint64_t offline_moves;     /* tasks moved off an offline terminal (or past one) */
    uint64_t merged, unmerged;  /* duplicate events merged into open incidents; undone */
    uint64_t upgrades;          /* incidents upgraded by correlation rules (upgrade.c) */
    uint64_t escalations_fenced;    /* already made by an earlier run or another instance */
    uint64_t escalations_unfenced;  /* made without a fence: Redis did not answer */
    uint64_t escalations_by_dept[64];
    uint64_t reminders;         /* reminders sent to holders (rules: reminders) */
    uint64_t signed_off;        /* incidents every sign_off department acknowledged */
} ld_engine_stats;

/* One state change, as observers that need every change see it (metrics, the
 * board, the audit trail): reported whether or not anyone takes the feed, and
 * before any text is formatted. Pointers are valid during the call only. */
typedef struct ld_observation {
    int kind;                   /* Linkd__V1__FeedKind */
    const ld_incident *inc;     /* NULL for terminal presence */
    const struct ld_task *task; /* NULL for a change of the whole incident */
    int leg;                    /* enum ld_leg, or -1 */
    int from_level;
    int terminal;               /* with TERMINAL_*: rules index; otherwise -1 */
    const char *actor, *reason; /* a supervisor's action: who and why; else NULL */
    const char *peer;           /* a merge or split: the other incident's id; else NULL */
    void **audit_tail;          /* &inc->audit_tail whenever inc is set: for the audit trail
                                 * to keep its chain tail by the incident (no lookup by id) */
} ld_observation;

typedef struct ld_engine_hooks {
    void *ctx;
    /* A state change to publish; <fe> and what it points to die on return. */
    void (*feed)(void *ctx, const Linkd__V1__FeedEvent *fe);
    /* Whether anyone takes the feed now; NULL means always. */
    int (*listening)(void *ctx);
    /* <terminal> has a task to deliver: answer its parked poll, if any. */
    void (*wake)(void *ctx, int terminal);
    /* Every state change (NULL: none), with its own context. */
    void (*observe)(void *octx, const ld_observation *o);
    void *observe_ctx;
    /* Escalation fence (optional; NULL: escalations are not fenced). Claims
     * (task, level, leg) as escalated at <at> so that no other run makes the
     * same move. With <wait> the engine holds a deadline escalation until
     * ld_engine_fenced() answers; without, the claim only records a move
     * already made (a rejection). Returns 0 if the claim was sent, else the
     * escalation goes ahead unfenced (on time beats exactly once). */
    int (*fence)(void *fence_ctx, const char *task_id, int level, int leg, uint64_t at,
                 int wait);
    void *fence_ctx;
} ld_engine_hooks;

/* What became of a fence claim (ld_engine_fenced). */
enum ld_fence_outcome {
    LD_FENCE_WON,        /* ours: escalate now */
    LD_FENCE_TAKEN,      /* made already, at <at>: take the task where it went, silently */
    LD_FENCE_UNKNOWN,    /* no answer: escalate, unfenced */
};

typedef struct ld_engine {
    const ld_rules *rules;      /* borrowed; outlives the engine */
    ld_clock *clock;
    ld_engine_hooks hooks;
    ld_pool incident_pool, task_pool;
    ld_pools blocks;            /* what incidents and tasks hold beside themselves:
                                 * histories, task arrays, strings */
    ld_intern strings;          /* strings many incidents share (engine.c) */
    ld_index by_id;             /* every open ld_incident, by id */
    ld_timers timers;
    ld_term *terms;
    int nterms;
    uint8_t *offline;           /* per terminal: stopped polling (dispatch says) */
    struct ld_correlate *correlate; /* merge candidates and merged events (correlate.c) */
    ld_ladder **ladders;        /* per department: the current rules' chain (ladder.c) */
    int no_merge;               /* set while an undone merge reopens its event */
    struct ld_windows *windows; /* correlation windows (window.c, upgrade.c) */
    struct ld_leaders *leaders; /* leader names tasks point at (upgrade.c) */
    uint64_t window_seq;        /* distinct value of each event for `distinct: event` */
    uint64_t rewound_ms, rewound_seq; /* the windows were rebuilt up to this stream id */
    ld_incident *dirty_head;
    uint64_t feed_seq;
    uint64_t resend_after_ms;   /* real ms before a receipted, unacknowledged task goes again */
    size_t open_incidents;
    /* The tasks of open incidents by department (the first LD_COUNTED_DEPTS)
     * and state, kept as they change: /metrics reads them, where a scan of
     * every open incident held the loop 12 ms at 100,000. */
    uint32_t tasks_by[LD_COUNTED_DEPTS][LD_TASK_STATES];
    /* Of those not resolved, the ones above their chain's first level and the
     * ones overdue at its top, by department: the board's load each second. */
    uint32_t escalated_by[LD_COUNTED_DEPTS], overdue_by[LD_COUNTED_DEPTS];
    char last_opened[48];       /* stream id of the newest event opened: the write-behind mark */
    const char *actor, *actor_reason; /* set by actions.c while a supervisor acts */
    uint16_t actor_note;        /* the note history entries get meanwhile */
    const char *peer;           /* set by actions.c during a merge or split: the other incident */
    ld_engine_stats stats;
} ld_engine;

/* One task handed to a terminal by ld_engine_collect. */
typedef struct ld_delivery_item {
    ld_task *task;
    int redelivery;
    int reminder_leg;           /* a reminder of this leg (enum ld_leg); -1: none */
    int reminder_pct;
    int priority_raised;        /* sent again because the incident's priority rose */
} ld_delivery_item;

int ld_engine_init(ld_engine *e, const ld_rules *r, ld_clock *clock, const ld_engine_hooks *h);
void ld_engine_fini(ld_engine *e);

/* ld_engine_open routes an accepted event and opens its incident with one task
 * per department, delivered to each duty terminal. <stream_id> is the event's
 * id in the Redis log, or its spool id ("S...", store/spool.h) while Redis is
 * away; the incident id is "I" + stream_id. <ev> must be valid.
 * Returns 0 with *out set, or LD_ENOMEM. */
int ld_engine_open(ld_engine *e, const Linkd__V1__Envelope *ev, const char *stream_id,
                   ld_incident **out);
/* ld_engine_open_at is ld_engine_open with the opening time given: recovery
 * replays an event as of when it was accepted, so its deadlines stand.
 * LD_ESTATE if that incident is already open. */
int ld_engine_open_at(ld_engine *e, const Linkd__V1__Envelope *ev, const char *stream_id,
                      uint64_t opened_at, ld_incident **out);

/* ld_engine_priority is the Priority the incident of <ev> would get (the
 * call's own, else the first matching route's, else normal);
 * ld_engine_life_safety says whether the rules call that priority life
 * safety (rules: life_safety). <ev> must be valid; <now> is domain time. */
int ld_engine_priority(const ld_engine *e, const Linkd__V1__Envelope *ev, uint64_t now);
int ld_engine_life_safety(const ld_engine *e, const Linkd__V1__Envelope *ev, uint64_t now);

/* ld_engine_restore rebuilds an open incident from its Redis record, after a
 * restart. Departments or terminals the rules no longer know go to command.
 * Every task not yet acknowledged is delivered again, marked as redelivery:
 * whether its terminal saw it before the restart is unknown. Deadlines that
 * passed meanwhile fire at the next ld_engine_run_due. Returns 0, LD_ESTATE if
 * the incident is already open or the record is closed or unusable, or LD_ENOMEM. */
int ld_engine_restore(ld_engine *e, const Linkd__V1__IncidentRecord *rec);

/* ld_engine_update applies a terminal's update. Returns a Linkd__V1__Result
 * (ACCEPTED, DUPLICATE if the task is already there, REJECTED with <why>). */
int ld_engine_update(ld_engine *e, int terminal, const Linkd__V1__TaskUpdate *u, char *why,
                     size_t len);

/* ld_engine_receipt records that <terminal> received <task_id>; <real_now> is
 * the loop's monotonic ms, from which an unacknowledged task is resent. */
void ld_engine_receipt(ld_engine *e, int terminal, const char *task_id, uint64_t real_now);

/* ld_engine_collect fills out[] with tasks <terminal> should get now and marks
 * them sent. <real_now> is the loop's monotonic ms. Returns how many. */
size_t ld_engine_collect(ld_engine *e, int terminal, uint64_t real_now, ld_delivery_item *out,
                         size_t max);
/* ld_engine_pending says whether collect would return anything. */
int ld_engine_pending(const ld_engine *e, int terminal, uint64_t real_now);

/* ld_engine_fenced answers a claim made through hooks.fence with <wait>.
 * <task_id>, <level> and <leg> are the claim's; a task that has moved on,
 * closed or done that leg meanwhile is left as it is. With LD_FENCE_TAKEN the
 * task takes the move the fence holder made at <at> (level, holder, new
 * deadlines, one history entry) without a feed event or a count: the
 * escalation was announced once already; the new holder gets the task marked
 * redelivery. */
void ld_engine_fenced(ld_engine *e, const char *task_id, int level, int leg, int outcome,
                      uint64_t at);

/* ld_engine_leg_name: "acknowledge", "arrive", "resolve". */
const char *ld_engine_leg_name(int leg);

/* Deadlines: the earliest due time (UINT64_MAX if none), and firing what is due. */
uint64_t ld_engine_next_due(const ld_engine *e);
void ld_engine_run_due(ld_engine *e);

/* Engine-internal (engine.c, ladder.c, actions.c): ld__task_set_time sets
 * time <kind> of <leg> (dispatched_at must be set first); ld__task_more
 * gives <t> its ld_task_more block if it has none (NULL when out of memory);
 * ld__task_set_leader names its leader (NULL: none). */
void ld__task_set_time(ld_engine *e, ld_task *t, int kind, int leg, uint64_t v);
ld_task_more *ld__task_more(ld_engine *e, ld_task *t);
void ld__task_set_leader(ld_engine *e, ld_task *t, const char *leader);

/* ld_engine_task_pb fills <pb> (and <loc>, if not NULL) from <t>. The task id
 * is written to <id> (LD_TASK_ID_LEN bytes); other strings point into <t> and
 * the rules, valid until the next engine call. */
void ld_engine_task_pb(const ld_engine *e, const ld_task *t, Linkd__V1__Task *pb,
                       Linkd__V1__Location *loc, char *id);

/* ld_engine_take_dirty calls fn for each incident whose record changed, then
 * frees those that are closed. */
void ld_engine_take_dirty(ld_engine *e, void (*fn)(void *arg, ld_incident *inc), void *arg);

/* ld_engine_tidy moves on a growth of the incident tables, a bounded step
 * (about 0.3 ms at most); once per write-behind tick, so a table's old half
 * is freed soon after the traffic that grew it stops. */
void ld_engine_tidy(ld_engine *e);

/* ld_engine_record_size / _pack serialize an incident as linkd.v1.IncidentRecord. */
size_t ld_engine_record_pack(const ld_engine *e, const ld_incident *inc, uint8_t *buf,
                             size_t len);

/* The earliest pending deadline of an open incident (for the ld:open index). */
uint64_t ld_incident_next_due(const ld_incident *inc);

ld_incident *ld_engine_find(const ld_engine *e, const char *incident_id);

/* ld_engine_holder_of returns the id of the open incident that holds the
 * event stored under <stream_id>: the incident it opened, the one it was
 * merged into (by a correlation rule or a supervisor), or the one it opened
 * when split off again ("I<sid>.2", up to 16 merges and splits of one
 * incident). NULL when none is open. A resent copy of the event is answered
 * with it. */
const char *ld_engine_holder_of(const ld_engine *e, const char *stream_id);

/* ld_engine_set_rules switches to <r>, which must have the same departments
 * and terminals at the same indexes as the running set (the daemon checks).
 * A task above the top of its new chain is put at the new top. */
void ld_engine_set_rules(ld_engine *e, const ld_rules *r);

/* ld_engine_unmerge undoes the merge of event <event_id> (or its stream id)
 * into <inc>: the event opens an incident of its own now (*out), with its
 * own tasks; <inc> records the undo (<who> may be NULL). Returns 0, or
 * LD_ENOENT (no such merged event) or another LD_E* code with <err> set. */
int ld_engine_unmerge(ld_engine *e, ld_incident *inc, const char *event_id, const char *who,
                      ld_incident **out, char *err, size_t len);

/* ld_engine_rewind feeds event <ev> (stream id <stream_id>, accepted at
 * <at>) to the correlation windows only, as recovery rebuilds them from
 * ld:events: a rule that completes marks its key as fired, without an
 * upgrade (it was made before the restart). Returns how many rules counted
 * it. Events must come in stream order. */
int ld_engine_rewind(ld_engine *e, const Linkd__V1__Envelope *ev, const char *stream_id,
                     uint64_t at);

/* Terminal presence, decided by the dispatcher, published by the engine. */
void ld_engine_terminal_presence(ld_engine *e, int terminal, int online);

/* Chain helpers: how many levels a department's tasks can climb, and the
 * level at position <level>, in rule set <r>. */
int ld_chain_len(const ld_rules *r, int dept);
const ld_level *ld_chain_level(const ld_rules *r, int dept, int level);

/* The same for a task: the chain it was dispatched on (its ladder), which a
 * reload does not change. */
int ld_task_chain_len(const ld_task *t);
const ld_level *ld_task_level(const ld_task *t, int level);

/* ld_incident_sign_missing returns a bit per task (its idx) whose
 * department must sign off (rules: sign_off) and has not acknowledged;
 * 0 when none is missing or the incident has no sign-off. */
unsigned ld_incident_sign_missing(const ld_incident *inc);

#endif
