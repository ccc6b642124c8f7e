#include "engine/engine.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/err.h"
#include "engine/correlate.h"
#include "engine/ladder.h"
#include "engine/roster.h"
#include "core/log.h"
#include "engine/actions.h"
#include "engine/upgrade.h"

#define T_DISPATCHED LINKD__V1__TASK_STATE__TASK_STATE_DISPATCHED
#define T_ACKNOWLEDGED LINKD__V1__TASK_STATE__TASK_STATE_ACKNOWLEDGED
#define T_EN_ROUTE LINKD__V1__TASK_STATE__TASK_STATE_EN_ROUTE
#define T_ON_SCENE LINKD__V1__TASK_STATE__TASK_STATE_ON_SCENE
#define T_RESOLVED LINKD__V1__TASK_STATE__TASK_STATE_RESOLVED

static const char *const leg_names[LD_LEG_COUNT] = {"acknowledge", "arrive", "resolve",
                                                    "feedback"};

/* ---- chains ---------------------------------------------------------------
 * A task climbs its department's levels, then command's; a command task
 * climbs command's levels only. */

int ld_chain_len(const ld_rules *r, int dept)
{
    int n = r->departments[dept].nlevels;
    if (dept != r->command) n += r->departments[r->command].nlevels;
    return n;
}

const ld_level *ld_chain_level(const ld_rules *r, int dept, int level)
{
    const ld_department *d = &r->departments[dept];
    if (level < d->nlevels) return &d->levels[level];
    return &r->departments[r->command].levels[level - d->nlevels];
}

/* chain_dept: whose level <level> of <t>'s chain is, its department's or command's. */
static int chain_dept(const ld_rules *r, const ld_task *t, int level)
{
    return level < t->ladder->dept_levels ? t->dept : r->command;
}

/* ---- init ----------------------------------------------------------------- */

static const char *incident_key(const void *inc)
{
    return ((const ld_incident *)inc)->id;
}

int ld_engine_init(ld_engine *e, const ld_rules *r, ld_clock *clock, const ld_engine_hooks *h)
{
    memset(e, 0, sizeof *e);
    if (r->ndepartments > INT16_MAX || r->nterminals > INT16_MAX) {
        /* Tasks and their history hold these indexes in 16 bits. */
        ld_log(LD_ERR, "ENGINE-RULES", "%d departments and %d terminals: at most %d each",
               r->ndepartments, r->nterminals, INT16_MAX);
        return LD_EINVAL;
    }
    e->rules = r;
    e->clock = clock;
    e->hooks = *h;
    e->resend_after_ms = 30000;
    ld_pool_init(&e->incident_pool, sizeof(ld_incident), 256);
    ld_pool_init(&e->task_pool, sizeof(ld_task), 512);
    ld_pools_init(&e->blocks);
    ld_intern_init(&e->strings);
    ld_index_init(&e->by_id, incident_key);
    ld_timers_init(&e->timers);
    e->nterms = r->nterminals;
    e->terms = calloc((size_t)r->nterminals + 1, sizeof *e->terms);
    e->offline = calloc((size_t)r->nterminals + 1, 1);
    if (!e->offline || ld__correlate_init(e) != 0 || ld__ladder_init(e) != 0 ||
        ld__upgrade_init(e) != 0) return LD_ENOMEM;
    if (!e->terms) return LD_ENOMEM;
    for (int i = 0; i < e->nterms; i++) ld_list_init(&e->terms[i].tasks);
    return 0;
}

/* copy_str copies <src> into <dst> of <len> bytes, cut and terminated. */
static void copy_str(char *dst, size_t len, const char *src)
{
    size_t n = src ? strnlen(src, len - 1) : 0;
    memcpy(dst, src ? src : "", n);
    dst[n] = '\0';
}

/* incident_strings sets <inc>'s strings (NULLs are ""), cut to their limits:
 * 0, or LD_ENOMEM with whatever was set left for incident_strings_free. The
 * id, event id and summary go in one block, "id\0event_id\0summary\0". */
static int incident_strings(ld_engine *e, ld_incident *inc, const char *id, const char *event_id,
                            const char *source_id, const char *district, const char *grid,
                            const char *summary)
{
    size_t ni = strnlen(id, LD_INCIDENT_ID_LEN - 1);
    size_t ne = event_id ? strnlen(event_id, LD_MAX_ID_LEN) : 0;
    size_t ns = summary ? strnlen(summary, LD_SUMMARY_LEN - 1) : 0;
    char *b = ld_pools_get(&e->blocks, ni + ne + ns + 3);
    if (!b) return LD_ENOMEM;
    memcpy(b, id, ni);
    memcpy(b + ni + 1, event_id ? event_id : "", ne);
    memcpy(b + ni + ne + 2, summary ? summary : "", ns); /* the block comes zeroed */
    inc->id = b;
    inc->event_id = b + ni + 1;
    inc->summary = b + ni + ne + 2;
    if (!(inc->source_id = ld_intern_ref(&e->strings, source_id, LD_MAX_ID_LEN)) ||
        !(inc->district = ld_intern_ref(&e->strings, district, 32)) ||
        !(inc->grid = ld_intern_ref(&e->strings, grid, 64)))
        return LD_ENOMEM;
    return 0;
}

static void incident_strings_free(ld_engine *e, ld_incident *inc)
{
    if (inc->id)
        ld_pools_put(&e->blocks, (void *)inc->id,
                     strlen(inc->id) + strlen(inc->event_id) + strlen(inc->summary) + 3);
    ld_intern_unref(&e->strings, inc->source_id);
    ld_intern_unref(&e->strings, inc->district);
    ld_intern_unref(&e->strings, inc->grid);
    inc->id = inc->event_id = inc->summary = inc->source_id = inc->district = inc->grid = NULL;
}

/* ---- a task's texts: "reason\0disposition\0feedback\0" in one block ---------- */

static const size_t text_len[LD_TEXT_COUNT] = {128, 64, 96};

const char *ld_task_text(const ld_task *t, int which)
{
    const char *p = t->texts;
    if (!p || which < 0 || which >= LD_TEXT_COUNT) return "";
    for (int i = 0; i < which; i++) p += strlen(p) + 1;
    return p;
}

static size_t texts_size(const char *b)
{
    size_t n = 0;
    for (int i = 0; b && i < LD_TEXT_COUNT; i++) n += strlen(b + n) + 1;
    return n;
}

int ld__task_set_text(ld_engine *e, ld_task *t, int which, const char *s)
{
    const char *v[LD_TEXT_COUNT];
    size_t n[LD_TEXT_COUNT], total = 0;
    for (int i = 0; i < LD_TEXT_COUNT; i++) {
        v[i] = i == which ? (s ? s : "") : ld_task_text(t, i);
        n[i] = strnlen(v[i], text_len[i] - 1);
        total += n[i] + 1;
    }
    char *b = NULL;
    if (total > LD_TEXT_COUNT) {
        /* Built before the old block goes: <s> may point into it. */
        if (!(b = ld_pools_get(&e->blocks, total))) {
            ld_log_rl(LD_ERR, "ENGINE-NOMEM", "cannot keep a text of a task of %s", t->inc->id);
            return LD_ENOMEM;
        }
        for (size_t i = 0, off = 0; i < LD_TEXT_COUNT; off += n[i] + 1, i++)
            memcpy(b + off, v[i], n[i]);
    }
    ld_pools_put(&e->blocks, t->texts, texts_size(t->texts));
    t->texts = b;
    return 0;
}

int ld__task_printf(ld_engine *e, ld_task *t, int which, const char *fmt, ...)
{
    char buf[128];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    return ld__task_set_text(e, t, which, buf);
}

ld_task_more *ld__task_more(ld_engine *e, ld_task *t)
{
    if (!t->more && !(t->more = ld_pools_get(&e->blocks, sizeof *t->more)))
        ld_log_rl(LD_ERR, "ENGINE-NOMEM", "cannot keep the reminders, leader or far times of "
                  "a task of %s", t->inc->id);
    return t->more;
}

void ld__task_set_time(ld_engine *e, ld_task *t, int kind, int leg, uint64_t v)
{
    uint16_t bit = (uint16_t)(1u << (kind * LD_LEG_COUNT + leg));
    /* A budget is kept as is, a time as 1 + ms after dispatch: 0 stays 0. */
    uint64_t base = kind == LD_TIME_BUDGET ? 0 : t->dispatched_at - 1;
    if (v != 0 && (v <= base || v - base > UINT32_MAX) && ld__task_more(e, t)) {
        t->more->wide[kind][leg] = v;
        t->wide |= bit;
        return;
    }
    t->wide &= (uint16_t)~bit;
    if (v == 0) t->time[kind][leg] = 0;
    else if (v <= base) t->time[kind][leg] = 1; /* out of memory: the nearest that fits, */
    else if (v - base > UINT32_MAX) t->time[kind][leg] = UINT32_MAX; /* so it fires early */
    else t->time[kind][leg] = (uint32_t)(v - base);
}

void ld__task_set_leader(ld_engine *e, ld_task *t, const char *leader)
{
    if (leader ? ld__task_more(e, t) != NULL : t->more != NULL) t->more->leader = leader;
}

void ld__task_copied(ld_engine *e, ld_task *n)
{
    const ld_task_more *more = n->more;
    if (more && (n->more = ld_pools_get(&e->blocks, sizeof *n->more))) *n->more = *more;
    else if (more) {
        /* Out of memory: the copy goes without reminders; its far times come near. */
        ld_log_rl(LD_ERR, "ENGINE-NOMEM", "cannot keep the reminders of a task of %s",
                  n->inc->id);
        uint16_t wide = n->wide;
        n->wide = 0;
        for (int k = 0; k < LD_TIME_KINDS; k++)
            for (int l = 0; l < LD_LEG_COUNT; l++)
                if (wide >> (k * LD_LEG_COUNT + l) & 1u)
                    ld__task_set_time(e, n, k, l, more->wide[k][l]);
    }
    const char *b = n->texts;
    size_t len = texts_size(b);
    n->rule = ld_intern_ref(&e->strings, n->rule, SIZE_MAX); /* held already: cannot fail */
    n->texts = b ? ld_pools_get(&e->blocks, len) : NULL;
    if (n->texts) memcpy(n->texts, b, len);
    else if (b) ld_log_rl(LD_ERR, "ENGINE-NOMEM", "cannot keep the texts of a task of %s",
                          n->inc->id);
}

/* task_set_rule keeps <t>'s rule citation "<where> <name>", cut to 95 bytes. */
static int task_set_rule(ld_engine *e, ld_task *t, const char *where, const char *name)
{
    char rule[96];
    if (name) {
        size_t w = strnlen(where, sizeof rule - 2);
        memcpy(rule, where, w);
        rule[w] = ' ';
        copy_str(rule + w + 1, sizeof rule - w - 1, name);
        where = rule;
    }
    const char *k = ld_intern_ref(&e->strings, where, sizeof rule - 1);
    if (!k) return LD_ENOMEM;
    ld_intern_unref(&e->strings, t->rule);
    t->rule = k;
    return 0;
}

/* ---- the task counts: tasks of incidents in by_id, by department and state ---- */

static void count_task(ld_engine *e, const ld_task *t, int sign)
{
    if (t->dept < 0 || t->dept >= LD_COUNTED_DEPTS || t->state >= LD_TASK_STATES) return;
    e->tasks_by[t->dept][t->state] += (uint32_t)sign;
    if (t->state == T_RESOLVED) return;
    if (t->level > 0) e->escalated_by[t->dept] += (uint32_t)sign;
    if (t->overdue_top) e->overdue_by[t->dept] += (uint32_t)sign;
}

/* leave_open marks <inc> closed and takes it out of by_id; its tasks no
 * longer count. */
static void leave_open(ld_engine *e, ld_incident *inc)
{
    for (int i = 0; i < inc->ntasks; i++) count_task(e, inc->tasks[i], -1);
    inc->closed_at = ld_clock_now(e->clock);
    ld_index_del(&e->by_id, inc->id);
    e->open_incidents--;
}

/* recount changes what the counts see of <t>: out of them before, back in after. */
static void recount(ld_engine *e, ld_task *t, int dept, int state, int level, unsigned overdue_top)
{
    int counted = !t->inc->closed_at;
    if (counted) count_task(e, t, -1);
    t->dept = (int16_t)dept;
    t->state = (uint8_t)state;
    t->level = (int8_t)level;
    t->overdue_top = (uint8_t)overdue_top;
    if (counted) count_task(e, t, +1);
}

void ld__engine_set_task(ld_engine *e, ld_task *t, int dept, int state)
{
    recount(e, t, dept, state, t->level, t->overdue_top);
}

void ld__engine_set_level(ld_engine *e, ld_task *t, int level, unsigned overdue_top)
{
    recount(e, t, t->dept, t->state, level, overdue_top);
}

static void set_state(ld_engine *e, ld_task *t, int state)
{
    ld__engine_set_task(e, t, t->dept, state);
}

static void task_free(ld_engine *e, ld_task *t)
{
    ld_timers_cancel(&e->timers, &t->timer);
    ld_list_remove(&t->term_link);
    ld__ladder_drop(e, t);
    ld_intern_unref(&e->strings, t->rule);
    ld_pools_put(&e->blocks, t->texts, texts_size(t->texts));
    ld_pools_put(&e->blocks, t->more, sizeof *t->more);
    ld_pool_put(&e->task_pool, t);
}

static void incident_free(ld_engine *e, ld_incident *inc)
{
    for (int i = 0; i < inc->ntasks; i++) task_free(e, inc->tasks[i]);
    ld_notes_free(inc);
    ld__correlate_free(e, inc);
    incident_strings_free(e, inc);
    ld_pools_put(&e->blocks, inc->history, inc->history_cap * sizeof *inc->history);
    ld_pools_put(&e->blocks, (void *)inc->tasks, inc->tasks_cap * sizeof *inc->tasks);
    ld_pool_put(&e->incident_pool, inc);
}

void ld_engine_fini(ld_engine *e)
{
    /* Closed incidents wait on the dirty list only; open ones are in the map
     * (and maybe on the list too). Free the closed ones first, while the list
     * links are still valid. */
    for (ld_incident *inc = e->dirty_head; inc;) {
        ld_incident *next = inc->dirty_next;
        if (inc->closed_at) incident_free(e, inc);
        inc = next;
    }
    e->dirty_head = NULL;
    ld_incident *inc;
    for (size_t it = 0; (inc = ld_index_next(&e->by_id, &it));) incident_free(e, inc);
    ld_index_fini(&e->by_id);
    ld_timers_fini(&e->timers);
    ld_pool_fini(&e->task_pool);
    ld_pool_fini(&e->incident_pool);
    ld_pools_fini(&e->blocks);
    ld_intern_fini(&e->strings);
    free(e->terms);
    free(e->offline);
    e->offline = NULL;
    ld__correlate_fini(e);
    ld__ladder_fini(e);
    ld__upgrade_fini(e);
    e->terms = NULL;
}

/* ---- bookkeeping ----------------------------------------------------------- */

static void mark_dirty(ld_engine *e, ld_incident *inc)
{
    if (inc->dirty) return;
    inc->dirty = 1;
    inc->dirty_next = e->dirty_head;
    e->dirty_head = inc;
}

/* history_room makes room for <want> entries in <inc>'s history, growing its
 * block from four entries two at a time up to LD_HISTORY_MAX; 0, or
 * LD_ENOMEM (the history keeps what it has). An incident records four to
 * twelve changes while it is open: growing by doubling left up to a third of
 * the block empty, and a move copies less than 400 bytes. */
static int history_room(ld_engine *e, ld_incident *inc, size_t want)
{
    if (want <= inc->history_cap) return 0;
    size_t cap = inc->history_cap ? inc->history_cap : 4;
    while (cap < want) cap += 2;
    if (cap > LD_HISTORY_MAX) cap = LD_HISTORY_MAX;
    ld_history *h = ld_pools_get(&e->blocks, cap * sizeof *h);
    if (!h) return LD_ENOMEM;
    if (inc->nhistory) memcpy(h, inc->history, inc->nhistory * sizeof *h);
    ld_pools_put(&e->blocks, inc->history, inc->history_cap * sizeof *h);
    inc->history = h;
    inc->history_cap = (uint8_t)cap;
    return 0;
}

static void history_at(ld_engine *e, ld_incident *inc, int kind, const ld_task *t, int leg,
                       uint64_t at)
{
    ld_history *h;
    if (inc->nhistory < LD_HISTORY_MAX && history_room(e, inc, inc->nhistory + 1u) != 0) {
        /* Out of memory: the entry is lost here, but not on the feed or in the audit trail. */
        inc->history_dropped++;
        mark_dirty(e, inc);
        return;
    }
    if (inc->nhistory == LD_HISTORY_MAX) {
        /* Keep the opening entries and the latest ones; the feed has it all. */
        memmove(&inc->history[8], &inc->history[9],
                (LD_HISTORY_MAX - 9) * sizeof inc->history[0]);
        inc->nhistory--;
        inc->history_dropped++;
    }
    h = &inc->history[inc->nhistory++];
    ld_history_set_at(h, at);
    h->kind = (uint8_t)kind;
    h->leg = (uint8_t)(leg >= 0 ? leg + 1 : 0) & 15u;
    h->task = (uint8_t)(t ? t->idx : 0) & 15u;
    h->level = (uint8_t)(t ? t->level : 0);
    h->terminal = (int16_t)(t ? t->terminal : -1);
    h->note = (uint8_t)e->actor_note;
    mark_dirty(e, inc);
}

static void history(ld_engine *e, ld_incident *inc, int kind, const ld_task *t, int leg)
{
    history_at(e, inc, kind, t, leg, ld_clock_now(e->clock));
}

/* has_history says whether <inc>'s history records <kind> for task <task> on
 * <leg> at <level> (the level after the move, as history() stores it). */
static int has_history(const ld_incident *inc, int kind, int task, int leg, int level)
{
    for (int i = 0; i < inc->nhistory; i++) {
        const ld_history *h = &inc->history[i];
        if (h->kind == kind && h->task == task && h->leg == leg + 1 && h->level == level)
            return 1;
    }
    return 0;
}

static void task_id(const ld_task *t, const ld_rules *r, char *buf, size_t len)
{
    size_t n = strnlen(t->inc->id, len - 2);
    memcpy(buf, t->inc->id, n);
    buf[n] = '/';
    size_t m = strnlen(r->departments[t->dept].id, len - n - 2);
    memcpy(buf + n + 1, r->departments[t->dept].id, m);
    buf[n + 1 + m] = '\0';
}

void ld_engine_task_pb(const ld_engine *e, const ld_task *t, Linkd__V1__Task *pb,
                       Linkd__V1__Location *loc, char *id)
{
    const ld_rules *r = e->rules;
    const ld_incident *inc = t->inc;
    linkd__v1__task__init(pb);
    task_id(t, r, id, LD_TASK_ID_LEN);
    pb->task_id = id;
    pb->incident_id = (char *)inc->id;
    pb->department = (char *)r->departments[t->dept].id;
    pb->terminal = (char *)r->terminals[t->terminal].id;
    pb->has_level = 1;
    pb->level = (uint32_t)t->level;
    pb->level_name = (char *)ld_task_level(t, t->level)->name;
    pb->has_priority = 1;
    pb->priority = (Linkd__V1__Priority)inc->priority;
    pb->has_acknowledge_by_ms = 1;
    pb->acknowledge_by_ms = (int64_t)ld_task_due(t, LD_LEG_ACK);
    pb->has_arrive_by_ms = 1;
    pb->arrive_by_ms = (int64_t)ld_task_due(t, LD_LEG_ARRIVE);
    pb->has_resolve_by_ms = 1;
    pb->resolve_by_ms = (int64_t)ld_task_due(t, LD_LEG_RESOLVE);
    if (!(t->legs_off & (1u << LD_LEG_FEEDBACK))) {
        pb->has_feedback_by_ms = 1;
        pb->feedback_by_ms = (int64_t)ld_task_due(t, LD_LEG_FEEDBACK);
    }
    pb->summary = (char *)inc->summary;
    pb->rule = (char *)t->rule;
    pb->event_id = (char *)inc->event_id;
    pb->has_dispatched_at_ms = 1;
    pb->dispatched_at_ms = (int64_t)t->dispatched_at;
    pb->has_incident_opened_at_ms = 1;
    pb->incident_opened_at_ms = (int64_t)inc->opened_at;
    pb->has_state = 1;
    pb->state = (Linkd__V1__TaskState)t->state;
    if (t->texts && ld_task_reason(t)[0]) pb->reason = (char *)ld_task_reason(t);
    if (ld_task_leader(t)) pb->leader = (char *)ld_task_leader(t);
    if (loc) {
        linkd__v1__location__init(loc);
        if (inc->has_ll) {
            loc->has_lat = loc->has_lon = 1;
            loc->lat = inc->lat;
            loc->lon = inc->lon;
        }
        if (inc->district[0]) loc->district = (char *)inc->district;
        if (inc->grid[0]) loc->grid = (char *)inc->grid;
        pb->location = loc;
    }
}

/* hooks.listening says whether anyone takes the feed; if nobody does, no text
 * is formatted and no message built (the sequence number still counts). */
static int feeding(const ld_engine *e)
{
    return e->hooks.feed && (!e->hooks.listening || e->hooks.listening(e->hooks.ctx));
}

__attribute__((format(printf, 7, 8))) static void feed(ld_engine *e, int kind, ld_incident *inc,
                                                       const ld_task *t, int leg, int from_level,
                                                       const char *fmt, ...)
{
    Linkd__V1__FeedEvent fe;
    Linkd__V1__Task tpb;
    Linkd__V1__Location loc;
    char tid[LD_TASK_ID_LEN], text[320];
    e->feed_seq++;
    if (e->hooks.observe) {
        ld_observation ob = {kind, inc, t, leg, from_level, -1, e->actor, e->actor_reason,
                             e->peer, inc ? &inc->audit_tail : NULL};
        e->hooks.observe(e->hooks.observe_ctx, &ob);
    }
    if (!feeding(e)) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    linkd__v1__feed_event__init(&fe);
    fe.has_kind = 1;
    fe.kind = (Linkd__V1__FeedKind)kind;
    fe.has_at_ms = 1;
    fe.at_ms = (int64_t)ld_clock_now(e->clock);
    fe.has_seq = 1;
    fe.seq = e->feed_seq;
    if (inc) fe.incident_id = (char *)inc->id;
    if (t) {
        ld_engine_task_pb(e, t, &tpb, &loc, tid);
        fe.task = &tpb;
    }
    if (leg >= 0) {
        fe.has_leg = 1;
        fe.leg = (Linkd__V1__Leg)(leg + 1);
        fe.has_from_level = 1;
        fe.from_level = (uint32_t)from_level;
    }
    fe.text = text;
    fe.actor = (char *)e->actor;
    fe.reason = (char *)e->actor_reason;
    e->hooks.feed(e->hooks.ctx, &fe);
}

/* ---- deadlines -------------------------------------------------------------- */

static int leg_pending(const ld_task *t, int leg)
{
    return ld_task_done(t, leg) == 0 && !((t->overdue_top | t->legs_off) & (1u << leg)) &&
           t->state != T_RESOLVED;
}

static void arm(ld_engine *e, ld_task *t)
{
    uint64_t due = UINT64_MAX;
    for (int l = 0; l < LD_LEG_COUNT; l++)
        if (leg_pending(t, l) && ld_task_due(t, l) < due) due = ld_task_due(t, l);
    uint64_t remind = ld__remind_next(t);
    if (remind < due) due = remind;
    if (due == UINT64_MAX) {
        ld_timers_cancel(&e->timers, &t->timer);
        return;
    }
    if (ld_timers_arm(&e->timers, &t->timer, due) != 0)
        ld_log_rl(LD_ERR, "ENGINE-NOMEM", "cannot arm the deadline of a task of %s",
                  t->inc->id);
}

uint64_t ld_incident_next_due(const ld_incident *inc)
{
    uint64_t due = UINT64_MAX;
    for (int i = 0; i < inc->ntasks; i++) {
        const ld_task *t = inc->tasks[i];
        for (int l = 0; l < LD_LEG_COUNT; l++)
            if (leg_pending(t, l) && ld_task_due(t, l) < due) due = ld_task_due(t, l);
    }
    return due;
}

uint64_t ld_engine_next_due(const ld_engine *e)
{
    ld_timer *tm = ld_timers_next(&e->timers);
    return tm ? tm->due : UINT64_MAX;
}

/* ---- delivery --------------------------------------------------------------- */

static void hand_to(ld_engine *e, ld_task *t, int terminal)
{
    if (ld_list_linked(&t->term_link)) {
        ld_list_remove(&t->term_link);
        e->terms[t->terminal].held--;
    }
    t->terminal = terminal;
    t->delivery = LD_DELIVERY_NEW;
    t->sends = 0;
    t->resend_at_real = 0;
    ld_list_append(&e->terms[terminal].tasks, &t->term_link);
    e->terms[terminal].held++;
    if (e->hooks.wake) e->hooks.wake(e->hooks.ctx, terminal);
}

static void release(ld_engine *e, ld_task *t)
{
    if (ld_list_linked(&t->term_link)) {
        ld_list_remove(&t->term_link);
        e->terms[t->terminal].held--;
    }
    t->delivery = LD_DELIVERY_NONE;
}

int ld__engine_raise_priority(ld_engine *e, ld_incident *inc, int priority)
{
    if (!priority || (inc->priority && priority >= inc->priority)) return 0;
    inc->priority = (uint8_t)priority;
    for (int i = 0; i < inc->ntasks; i++) {
        ld_task *t = inc->tasks[i];
        if (t->state == T_RESOLVED || t->terminal < 0) continue;
        if (t->sends == 0 && t->delivery == LD_DELIVERY_NEW) continue; /* goes out as it is */
        t->raised = 1;
        if (!ld_list_linked(&t->term_link)) {
            /* Acknowledged: a notice, which its receipt ends (ld_engine_receipt). */
            ld_list_append(&e->terms[t->terminal].tasks, &t->term_link);
            e->terms[t->terminal].held++;
        }
        t->delivery = LD_DELIVERY_NEW;
        t->resend_at_real = 0;
        if (t->sends == 0) t->sends = 1; /* so it goes as "redelivery" */
        if (e->hooks.wake) e->hooks.wake(e->hooks.ctx, t->terminal);
    }
    return 1;
}

static int deliverable(const ld_task *t, uint64_t real_now)
{
    switch (t->delivery) {
    case LD_DELIVERY_NEW:
    case LD_DELIVERY_SENT: return 1;
    case LD_DELIVERY_RECEIVED: return t->resend_at_real <= real_now;
    default: return 0;
    }
}

int ld_engine_pending(const ld_engine *e, int terminal, uint64_t real_now)
{
    const ld_list *head = &e->terms[terminal].tasks;
    for (const ld_list *n = head->next; n != head; n = n->next)
        if (deliverable(ld_container_of(n, ld_task, term_link), real_now)) return 1;
    return 0;
}

size_t ld_engine_collect(ld_engine *e, int terminal, uint64_t real_now, ld_delivery_item *out,
                         size_t max)
{
    size_t n = 0;
    ld_list *head = &e->terms[terminal].tasks;
    for (ld_list *l = head->next; l != head && n < max; l = l->next) {
        ld_task *t = ld_container_of(l, ld_task, term_link);
        if (!deliverable(t, real_now)) continue;
        out[n].task = t;
        out[n].redelivery = t->sends > 0 || t->remind_leg;
        out[n].reminder_leg = (int)t->remind_leg - 1;
        out[n].reminder_pct = t->remind_pct;
        out[n].priority_raised = t->raised;
        t->remind_leg = 0;
        n++;
        if (t->sends > 0) e->stats.tasks_redelivered++;
        if (t->sends < UINT16_MAX) t->sends++;
        t->delivery = LD_DELIVERY_SENT;
    }
    return n;
}

static ld_task *find_task(const ld_engine *e, const char *task_id)
{
    const char *slash = strrchr(task_id, '/');
    if (!slash) return NULL;
    ld_incident *inc = ld_index_getn(&e->by_id, task_id, (size_t)(slash - task_id));
    if (!inc) return NULL;
    int dept = ld_rules_department(e->rules, slash + 1);
    for (int i = 0; i < inc->ntasks; i++)
        if (inc->tasks[i]->dept == dept) return inc->tasks[i];
    return NULL;
}

void ld_engine_receipt(ld_engine *e, int terminal, const char *task_id, uint64_t real_now)
{
    ld_task *t = find_task(e, task_id);
    if (!t || t->terminal != terminal || t->delivery != LD_DELIVERY_SENT) return;
    t->raised = 0;
    if (t->state >= T_ACKNOWLEDGED) {
        /* An escalation notice for a task already acknowledged: receipt ends it. */
        release(e, t);
    } else {
        t->delivery = LD_DELIVERY_RECEIVED;
        t->resend_at_real = real_now + e->resend_after_ms;
    }
    e->stats.tasks_delivered++;
    history(e, t->inc, LINKD__V1__FEED_KIND__FEED_KIND_TASK_DELIVERED, t, -1);
    feed(e, LINKD__V1__FEED_KIND__FEED_KIND_TASK_DELIVERED, t->inc, t, -1, 0, "%s received by %s",
         t->inc->id, e->rules->terminals[terminal].id);
}

/* ---- opening ---------------------------------------------------------------- */


/* cat appends <s> to <out> (<len> bytes, len > 0), cut as snprintf would;
 * *n is what it holds. */
static void cat(char *out, size_t len, size_t *n, const char *s)
{
    *n += ld_str_join(out + *n, len - *n, s, "");
}

static void cat_u32(char *out, size_t len, size_t *n, uint32_t v)
{
    char d[24];
    d[ld_fmt_u64(d, v)] = '\0';
    cat(out, len, n, d);
}

/* summarize writes the line a person reads: "call fire, 3 people at <address>:
 * <description>". Built piece by piece: every incident gets one, and a
 * format string's scan and seven %s were 2% of the loop at 18,000/s. */
static void summarize(const ld_incident *inc, const Linkd__V1__Envelope *ev, char *out,
                      size_t len)
{
    const Linkd__V1__Location *loc = ld_envelope_location(ev);
    const char *what = NULL;
    size_t n = 0;
    out[0] = '\0';
    cat(out, len, &n, ld_kind_name(inc->kind));
    cat(out, len, &n, " ");
    cat(out, len, &n, ld_envelope_category_name(ev));
    switch (ev->body_case) {
    case LINKD__V1__ENVELOPE__BODY_CALL:
        what = ev->call->description;
        if (ev->call->has_people && ev->call->people) {
            cat(out, len, &n, ", ");
            cat_u32(out, len, &n, ev->call->people);
            cat(out, len, &n, ev->call->people == 1 ? " person" : " people");
        }
        break;
    case LINKD__V1__ENVELOPE__BODY_SENSOR: {
        char extra[64];
        snprintf(extra, sizeof extra, " %s %g/%g", ev->sensor->sensor_id, ev->sensor->value,
                 ev->sensor->threshold);
        cat(out, len, &n, extra);
        break;
    }
    case LINKD__V1__ENVELOPE__BODY_PETITION:
        what = ev->petition->summary;
        cat(out, len, &n, ", ");
        cat_u32(out, len, &n, ev->petition->petitioners);
        cat(out, len, &n, " petitioners");
        if (ev->petition->bypass_level) cat(out, len, &n, ", bypassed a level");
        if (ev->petition->repeat_count) cat(out, len, &n, ", repeat");
        break;
    default: break;
    }
    if (loc && loc->address) {
        cat(out, len, &n, " at ");
        cat(out, len, &n, loc->address);
    }
    if (what && *what) {
        cat(out, len, &n, ": ");
        cat(out, len, &n, what);
    }
}

static int pick_priority(const Linkd__V1__Envelope *ev, const ld_route *const *routes, size_t n)
{
    if (ev->body_case == LINKD__V1__ENVELOPE__BODY_CALL && ev->call->has_priority &&
        ev->call->priority)
        return (int)ev->call->priority;
    for (size_t i = 0; i < n; i++)
        if (routes[i]->priority) return routes[i]->priority;
    return LINKD__V1__PRIORITY__PRIORITY_NORMAL;
}

int ld_engine_priority(const ld_engine *e, const Linkd__V1__Envelope *ev, uint64_t now)
{
    ld_match_input in;
    ld_rules_input(e->rules, ev, now, &in);
    const ld_route *routes[16];
    size_t nroutes = ld_rules_match(e->rules, &in, routes, 16);
    return pick_priority(ev, routes, nroutes);
}

int ld_engine_life_safety(const ld_engine *e, const Linkd__V1__Envelope *ev, uint64_t now)
{
    return e->rules->life_safety && (e->rules->life_safety >> ld_engine_priority(e, ev, now)) & 1;
}

/* task_room makes room in <inc>'s task array for <more> tasks, growing it
 * by doubling from one (most incidents have one or two tasks). 0, or
 * LD_EFULL (past LD_MAX_TASKS) or LD_ENOMEM with the tasks unchanged. */
static int task_room(ld_engine *e, ld_incident *inc, int more)
{
    size_t want = (size_t)inc->ntasks + (size_t)more;
    if (want > LD_MAX_TASKS) return LD_EFULL;
    if (want <= inc->tasks_cap) return 0;
    size_t cap = inc->tasks_cap ? inc->tasks_cap : 1u;
    while (cap < want) cap *= 2;
    ld_task **v = ld_pools_get(&e->blocks, cap * sizeof *v);
    if (!v) return LD_ENOMEM;
    if (inc->ntasks) memcpy(v, inc->tasks, (size_t)inc->ntasks * sizeof *v);
    ld_pools_put(&e->blocks, (void *)inc->tasks, inc->tasks_cap * sizeof *v);
    inc->tasks = v;
    inc->tasks_cap = (uint8_t)cap;
    return 0;
}

/* add_task appends <t> to <inc>'s tasks: 0, or an error of task_room. */
static int add_task(ld_engine *e, ld_incident *inc, ld_task *t)
{
    int rv = task_room(e, inc, 1);
    if (rv != 0) return rv;
    ((ld_task **)inc->tasks)[inc->ntasks++] = t;
    if (!inc->closed_at) count_task(e, t, +1);
    return 0;
}

/* new_task adds a task of <dept> to <inc>, with its legs due at <due>. */
static ld_task *new_task(ld_engine *e, ld_incident *inc, int dept, const uint64_t *due,
                         const char *rule_where, const char *rule_name, uint64_t now)
{
    ld_task *t = ld_pool_get(&e->task_pool);
    if (!t) return NULL;
    t->inc = inc;
    t->idx = inc->ntasks;
    t->dept = dept;
    t->level = 0;
    t->state = T_DISPATCHED;
    t->dispatched_at = now;
    for (int l = 0; l < LD_LEG_COUNT; l++) {
        ld__task_set_time(e, t, LD_TIME_DUE, l, due[l]);
        ld__task_set_time(e, t, LD_TIME_BUDGET, l, due[l] - now);
    }
    ld__ladder_take(e, t);
    if (task_set_rule(e, t, rule_where, rule_name) != 0 || add_task(e, inc, t) != 0) {
        task_free(e, t);
        return NULL;
    }
    inc->open_tasks++;
    return t;
}

static void dispatch_task(ld_engine *e, ld_task *t)
{
    char why[128] = "";
    int holder = ld__roster_first_holder(e, t, why, sizeof why);
    hand_to(e, t, holder >= 0 ? holder : ld_task_level(t, 0)->terminal);
    if (ld_incident_is_drill(t->inc)) e->stats.drill_tasks++;
    arm(e, t);
    e->stats.tasks_dispatched++;
    history(e, t->inc, LINKD__V1__FEED_KIND__FEED_KIND_TASK_DISPATCHED, t, -1);
    char ab[16];
    ld_format_duration(ld_task_due(t, LD_LEG_ACK) - t->dispatched_at, ab, sizeof ab);
    feed(e, LINKD__V1__FEED_KIND__FEED_KIND_TASK_DISPATCHED, t->inc, t, -1, 0, "%s -> %s (%s), acknowledge within %s [%s]", t->inc->id,
             e->rules->departments[t->dept].id, e->rules->terminals[t->terminal].id, ab, t->rule);
    /* Nobody on duty, or the one on duty is offline with no stand-in: up at
     * once rather than wait out the acknowledge deadline. */
    if (holder < 0) {
        e->stats.offline_moves += strstr(why, "offline") != NULL;
        ld__engine_escalate(e, t, LD_LEG_ACK, why);
    }
}

int ld_engine_open(ld_engine *e, const Linkd__V1__Envelope *ev, const char *stream_id,
                   ld_incident **out)
{
    return ld_engine_open_at(e, ev, stream_id, ld_clock_now(e->clock), out);
}

/* note_opened moves the write-behind mark to <stream_id>. Spooled events
 * ("S...", see store/spool.h) are not in the stream yet: they leave it. */
static void note_opened(ld_engine *e, const char *stream_id)
{
    if (stream_id[0] >= '0' && stream_id[0] <= '9')
        ld_str_join(e->last_opened, sizeof e->last_opened, stream_id, "");
}

int ld_engine_open_at(ld_engine *e, const Linkd__V1__Envelope *ev, const char *stream_id,
                      uint64_t now, ld_incident **out)
{
    char id[LD_INCIDENT_ID_LEN];
    ld_str_join(id, sizeof id, "I", stream_id);
    return ld__engine_open_as(e, ev, stream_id, id, now, out);
}

int ld__engine_open_as(ld_engine *e, const Linkd__V1__Envelope *ev, const char *stream_id,
                       const char *id, uint64_t now, ld_incident **out)
{
    const ld_rules *r = e->rules;
    if (ld_engine_find(e, id)) return LD_ESTATE;
    ld_match_input in;
    ld_rules_input(r, ev, now, &in);
    if (!e->no_merge) {
        /* A duplicate of an open incident joins it (merge rules). */
        const ld_merge_rule *mr = NULL;
        double metres = 0;
        ld_incident *dup = ld__correlate_find(e, ev, &in, now, &mr, &metres);
        if (dup && ld__correlate_has(dup, stream_id)) {
            note_opened(e, stream_id);
            *out = dup;
            return 0;
        }
        if (dup && ld__correlate_join(e, dup, ev, stream_id, mr, metres, now) == 0) {
            note_opened(e, stream_id);
            *out = dup;
            ld__window_observe(e, ev, &in, stream_id, dup, now);
            return 0;
        }
    }
    const ld_route *routes[16];
    size_t nroutes = ld_rules_match(r, &in, routes, 16);

    ld_incident *inc = ld_pool_get(&e->incident_pool);
    if (!inc) return LD_ENOMEM;
    inc->kind = in.kind;
    inc->category = in.category;
    inc->status = ev->has_status ? (int)ev->status : 0;
    inc->priority = pick_priority(ev, routes, nroutes);
    inc->opened_at = now;
    inc->people = in.people;
    const Linkd__V1__Location *loc = ld_envelope_location(ev);
    if (loc) {
        inc->has_ll = loc->has_lat && loc->has_lon;
        inc->lat = loc->lat;
        inc->lon = loc->lon;
    }
    char summary[LD_SUMMARY_LEN];
    summarize(inc, ev, summary, sizeof summary);
    if (incident_strings(e, inc, id, ev->event_id, ev->source_id, loc ? loc->district : NULL,
                         loc ? loc->grid : NULL, summary) != 0 ||
        ld_index_put(&e->by_id, inc) != 0) {
        incident_free(e, inc);
        return LD_ENOMEM;
    }
    e->open_incidents++;
    e->stats.incidents_opened++;
    if (ld_incident_is_drill(inc)) e->stats.drill_incidents++;
    note_opened(e, stream_id);

    /* One task per department; the first route to name a department sets its budget. */
    for (size_t i = 0; i < nroutes; i++) {
        for (int d = 0; d < routes[i]->ndispatch; d++) {
            const ld_dispatch_def *dd = &routes[i]->dispatch[d];
            int seen = 0;
            for (int k = 0; k < inc->ntasks; k++) seen |= inc->tasks[k]->dept == dd->dept;
            if (seen || inc->ntasks == LD_MAX_TASKS) continue;
            uint64_t due[LD_LEG_COUNT];
            for (int l = 0; l < LD_LEG_COUNT; l++)
                due[l] = ld_rules_deadline(r, dd, l, in.area, now);
            ld_task *t = new_task(e, inc, dd->dept, due, routes[i]->where, routes[i]->name, now);
            if (!t) return LD_ENOMEM; /* the incident stays, with the tasks it has */
            if (!dd->has_feedback) t->legs_off = 1u << LD_LEG_FEEDBACK;
            ld__remind_plan(e, t, dd, now);
        }
        ld__sign_off_plan(e, inc, routes[i], now);
    }
    if (inc->ntasks == 0) {
        /* No route: the command centre decides. Counted, never dropped. */
        const uint64_t fallback[LD_LEG_COUNT] = {now + 60000, now + 30 * 60000,
                                                 now + 24 * 3600000, now + 24 * 3600000};
        e->stats.unrouted++;
        ld_log_rl(LD_WARN, "ENGINE-UNROUTED", "no route for %s %s (event %s); sent to command",
                  ld_kind_name(inc->kind), ld_envelope_category_name(ev), inc->event_id);
        ld_task *t = new_task(e, inc, r->command, fallback, "(none)", "unrouted", now);
        if (!t) return LD_ENOMEM;
        t->legs_off = 1u << LD_LEG_FEEDBACK;
        ld__remind_plan(e, t, NULL, now);
    }

    history(e, inc, LINKD__V1__FEED_KIND__FEED_KIND_INCIDENT_OPENED, NULL, -1);
    feed(e, LINKD__V1__FEED_KIND__FEED_KIND_INCIDENT_OPENED, inc, NULL, -1, 0, "%s opened (%s, %s): %s", inc->id,
             ld_enum_name(&linkd__v1__priority__descriptor, inc->priority), inc->event_id,
             inc->summary);
    ld__correlate_remember(e, inc);
    for (int i = 0; i < inc->ntasks; i++) dispatch_task(e, inc->tasks[i]);
    *out = inc;
    /* Correlation rules count it (an undone merge was counted when it came). */
    if (!e->no_merge) ld__window_observe(e, ev, &in, stream_id, inc, now);
    return 0;
}

/* ---- restore after a restart ------------------------------------------------- */

static int kind_from_name(const char *k)
{
    if (!k) return LD_KIND_ANY;
    if (strcmp(k, "call") == 0) return LD_KIND_CALL;
    if (strcmp(k, "sensor") == 0) return LD_KIND_SENSOR;
    if (strcmp(k, "petition") == 0) return LD_KIND_PETITION;
    return LD_KIND_ANY;
}

static const ProtobufCEnumDescriptor *category_enum(int kind)
{
    return kind == LD_KIND_CALL     ? &linkd__v1__call_category__descriptor
           : kind == LD_KIND_SENSOR ? &linkd__v1__sensor_kind__descriptor
                                    : &linkd__v1__petition_issue__descriptor;
}

static void restore_task(ld_engine *e, ld_incident *inc, const Linkd__V1__TaskRecord *tr)
{
    const ld_rules *r = e->rules;
    const Linkd__V1__Task *tk = tr->task;
    int dept = tk->department ? ld_rules_department(r, tk->department) : -1;
    if (dept < 0) {
        ld_log(LD_WARN, "RECOVER-DEPT", "%s: department '%s' is no longer in the rules; its task "
               "goes to command", inc->id, tk->department ? tk->department : "");
        dept = r->command;
    }
    for (int k = 0; k < inc->ntasks; k++)
        if (inc->tasks[k]->dept == dept) return; /* one task per department */
    ld_task *t = ld_pool_get(&e->task_pool);
    if (!t) return;
    t->inc = inc;
    t->idx = inc->ntasks;
    t->dept = dept;
    ld__ladder_take(e, t); /* the chain of the rules running now */
    int top = ld_chain_len(r, dept) - 1;
    t->level = tk->has_level && (int)tk->level <= top ? (int)tk->level : top;
    int term = tk->terminal ? ld_rules_terminal(r, tk->terminal) : -1;
    t->terminal = term >= 0 ? term : ld_chain_level(r, dept, t->level)->terminal;
    t->state = tk->has_state && tk->state ? (int)tk->state : T_DISPATCHED;
    t->dispatched_at = (uint64_t)tk->dispatched_at_ms;
    /* Records from before the feedback leg have none: the task has none. */
    t->legs_off = tk->has_feedback_by_ms ? 0 : 1u << LD_LEG_FEEDBACK;
    const int64_t due[LD_LEG_COUNT] = {
        tk->acknowledge_by_ms, tk->arrive_by_ms, tk->resolve_by_ms,
        tk->has_feedback_by_ms ? tk->feedback_by_ms : tk->resolve_by_ms};
    const int64_t done[LD_LEG_COUNT] = {
        tr->has_acknowledged_at_ms ? tr->acknowledged_at_ms : 0,
        tr->has_arrived_at_ms ? tr->arrived_at_ms : 0,
        tr->has_resolved_at_ms ? tr->resolved_at_ms : 0,
        tr->has_feedback_at_ms ? tr->feedback_at_ms : 0};
    for (int l = 0; l < LD_LEG_COUNT; l++) {
        ld__task_set_time(e, t, LD_TIME_DUE, l, (uint64_t)due[l]);
        ld__task_set_time(e, t, LD_TIME_DONE, l, (uint64_t)done[l]);
    }
    ld__remind_restore(e, t, tr);
    ld__task_set_leader(e, t, ld__engine_leader(e, tk->leader));
    if (task_set_rule(e, t, tk->rule ? tk->rule : "", NULL) != 0 ||
        ld__task_set_text(e, t, LD_TEXT_REASON, tk->reason) != 0 ||
        ld__task_set_text(e, t, LD_TEXT_DISPOSITION, tr->disposition) != 0 ||
        ld__task_set_text(e, t, LD_TEXT_FEEDBACK, tr->feedback) != 0 || add_task(e, inc, t) != 0) {
        task_free(e, t);
        return;
    }
    if (t->state == T_RESOLVED) return;
    inc->open_tasks++;
    if (t->state < T_ACKNOWLEDGED || !tr->received) {
        hand_to(e, t, t->terminal);
        t->sends = 1; /* so the next delivery says "redelivery" */
        t->delivery = LD_DELIVERY_SENT;
        t->raised = tk->has_priority_raised && tk->priority_raised;
    }
    arm(e, t);
}

int ld_engine_restore(ld_engine *e, const Linkd__V1__IncidentRecord *rec)
{
    if (!rec->incident_id || rec->has_closed_at_ms || rec->n_tasks == 0 ||
        strlen(rec->incident_id) >= LD_INCIDENT_ID_LEN || ld_engine_find(e, rec->incident_id))
        return LD_ESTATE;
    ld_incident *inc = ld_pool_get(&e->incident_pool);
    if (!inc) return LD_ENOMEM;
    inc->kind = kind_from_name(rec->kind);
    int cat = 0;
    if (inc->kind != LD_KIND_ANY && rec->category) ld_enum_parse(category_enum(inc->kind), rec->category, &cat);
    inc->category = cat;
    inc->priority = rec->has_priority ? (int)rec->priority : LINKD__V1__PRIORITY__PRIORITY_NORMAL;
    inc->status = rec->has_status ? (int)rec->status : 0;
    inc->people = rec->people;
    inc->opened_at = (uint64_t)rec->opened_at_ms;
    const Linkd__V1__Location *loc = rec->location;
    if (loc) {
        inc->has_ll = loc->has_lat && loc->has_lon;
        inc->lat = loc->lat;
        inc->lon = loc->lon;
    }
    size_t nh = rec->n_history < LD_HISTORY_MAX ? rec->n_history : LD_HISTORY_MAX;
    if (incident_strings(e, inc, rec->incident_id, rec->event_id, rec->source_id, loc ? loc->district : NULL,
                         loc ? loc->grid : NULL, rec->summary) != 0 ||
        (nh && history_room(e, inc, nh) != 0)) {
        incident_free(e, inc);
        return LD_ENOMEM;
    }
    for (size_t i = 0; i < nh; i++) {
        const Linkd__V1__HistoryEntry *h = rec->history[i];
        ld_history *o = &inc->history[inc->nhistory++];
        ld_history_set_at(o, (uint64_t)h->at_ms);
        o->kind = (uint8_t)h->kind;
        o->leg = (int)h->leg <= (int)LD_LEG_COUNT ? (uint8_t)h->leg : 0;
        o->task = h->task_index < LD_MAX_TASKS ? (uint8_t)h->task_index : 0;
        o->level = (uint8_t)h->level;
        o->terminal = (int16_t)(h->terminal ? ld_rules_terminal(e->rules, h->terminal) : -1);
        o->note = h->note && *h->note ? (uint8_t)ld_notes_restore(inc, ld_history_at(o), h->note)
                                      : 0;
    }
    if (ld_index_put(&e->by_id, inc) != 0) {
        incident_free(e, inc);
        return LD_ENOMEM;
    }
    for (size_t i = 0; i < rec->n_tasks && inc->ntasks < LD_MAX_TASKS; i++)
        if (rec->tasks[i]->task) restore_task(e, inc, rec->tasks[i]);
    ld__correlate_restore(e, inc, rec);
    ld__sign_off_restore(e, inc, rec);
    e->open_incidents++;
    if (inc->open_tasks == 0) {
        /* Every task resolved but the closing record was lost: close it now. */
        leave_open(e, inc);
    }
    mark_dirty(e, inc);
    return 0;
}

/* ---- escalation ------------------------------------------------------------- */

/* step_up makes the move a missed <leg> (or a rejection) calls for, as of
 * <at>: one level up the chain, with the legs already late given the new
 * level's wait, or, at the top, the leg marked overdue. With <announce> the
 * move is published, counted and recorded; without, it is one that another
 * run announced already (its fence was taken): the task only goes where that
 * run sent it, and the history gets the entry that run may not have written. */
static void step_up(ld_engine *e, ld_task *t, int leg, const char *why, uint64_t at,
                    int announce)
{
    const ld_rules *r = e->rules;
    int from = t->level;
    /* A drill never climbs to real people: its drill terminal is its top. */
    int drill = ld_incident_is_drill(t->inc) && t->terminal >= 0 && r->terminals[t->terminal].drill;
    if (drill || t->level + 1 >= ld_task_chain_len(t)) {
        /* Top of the chain: nobody above. Record it once per leg. */
        ld__engine_set_level(e, t, t->level, t->overdue_top | 1u << leg);
        ld__task_printf(e, t, LD_TEXT_REASON, "%s overdue at the top of the chain", leg_names[leg]);
        arm(e, t);
        if (!announce) {
            if (!has_history(t->inc, LINKD__V1__FEED_KIND__FEED_KIND_DEADLINE_MISSED, t->idx, leg,
                             t->level))
                history_at(e, t->inc, LINKD__V1__FEED_KIND__FEED_KIND_DEADLINE_MISSED, t, leg, at);
            return;
        }
        e->stats.overdue_at_top++;
        history_at(e, t->inc, LINKD__V1__FEED_KIND__FEED_KIND_DEADLINE_MISSED, t, leg, at);
        feed(e, LINKD__V1__FEED_KIND__FEED_KIND_DEADLINE_MISSED, t->inc, t, leg, t->level,
             "%s/%s %s deadline missed at %s, the top of its chain", t->inc->id,
             r->departments[t->dept].id, leg_names[leg], r->terminals[t->terminal].id);
        ld_log_rl(LD_WARN, "ENGINE-OVERDUE", "%s/%s: %s overdue at %s, top of its chain",
                  t->inc->id, r->departments[t->dept].id, leg_names[leg],
                  r->terminals[t->terminal].id);
        return;
    }
    ld__engine_set_level(e, t, t->level + 1, t->overdue_top);
    const ld_level *lv = ld_task_level(t, t->level);
    /* Every leg already late shares this move: the new holder gets one wait,
     * and is reminded within it as the first holder was. */
    for (int l = 0; l < LD_LEG_COUNT; l++)
        if (leg_pending(t, l) && (l == leg || ld_task_due(t, l) <= at)) {
            ld__task_set_time(e, t, LD_TIME_DUE, l, at + lv->wait_ms);
            ld__remind_window(t, l, at);
        }
    ld__task_printf(e, t, LD_TEXT_REASON, "%s at level %d (%s)", why, from,
                    ld_task_level(t, from)->name);
    hand_to(e, t, lv->terminal);
    arm(e, t);
    if (!announce) {
        t->sends = 1; /* the holder may have it from the run that made the move */
        if (!has_history(t->inc, LINKD__V1__FEED_KIND__FEED_KIND_TASK_ESCALATED, t->idx, leg,
                         t->level))
            history_at(e, t->inc, LINKD__V1__FEED_KIND__FEED_KIND_TASK_ESCALATED, t, leg, at);
        mark_dirty(e, t->inc);
        return;
    }
    e->stats.escalations++;
    if ((size_t)t->dept < sizeof e->stats.escalations_by_dept / sizeof(uint64_t))
        e->stats.escalations_by_dept[t->dept]++;
    int to_command = chain_dept(r, t, t->level) == r->command && t->dept != r->command &&
                     chain_dept(r, t, from) != r->command;
    if (to_command) e->stats.reached_command++;
    history_at(e, t->inc, LINKD__V1__FEED_KIND__FEED_KIND_TASK_ESCALATED, t, leg, at);
    feed(e, LINKD__V1__FEED_KIND__FEED_KIND_TASK_ESCALATED, t->inc, t, leg, from, "%s/%s escalated to level %d %s (%s%s): %s", t->inc->id,
             r->departments[t->dept].id, t->level, lv->name, r->terminals[lv->terminal].id,
             to_command ? ", command centre" : "", ld_task_reason(t));
}

/* escalate moves <t> one level up now because <leg> was missed (or rejected). */
static void escalate(ld_engine *e, ld_task *t, int leg, const char *why)
{
    step_up(e, t, leg, why, ld_clock_now(e->clock), 1);
}

const char *ld_engine_leg_name(int leg)
{
    return leg >= 0 && leg < LD_LEG_COUNT ? leg_names[leg] : "unknown";
}

static void escalate_missed(ld_engine *e, ld_task *t, int leg)
{
    char why[64];
    snprintf(why, sizeof why, "%s deadline missed", leg_names[leg]);
    escalate(e, t, leg, why);
    mark_dirty(e, t->inc);
}

/* claim asks the fence whether this miss is ours to escalate; returns 0 if
 * the answer will come through ld_engine_fenced. */
static int claim(ld_engine *e, ld_task *t, int leg, int wait)
{
    if (!e->hooks.fence) return -1;
    char id[LD_TASK_ID_LEN];
    task_id(t, e->rules, id, sizeof id);
    return e->hooks.fence(e->hooks.fence_ctx, id, t->level, leg, ld_clock_now(e->clock), wait);
}

void ld_engine_fenced(ld_engine *e, const char *task_id, int level, int leg, int outcome,
                      uint64_t at)
{
    ld_task *t = find_task(e, task_id);
    if (!t || !t->fencing || leg < 0 || leg >= LD_LEG_COUNT) return;
    t->fencing = 0;
    if (t->level != level || !leg_pending(t, leg)) {
        arm(e, t); /* moved or done meanwhile: nothing to escalate */
        return;
    }
    switch (outcome) {
    case LD_FENCE_TAKEN: {
        char why[64];
        snprintf(why, sizeof why, "%s deadline missed", leg_names[leg]);
        e->stats.escalations_fenced++;
        step_up(e, t, leg, why, at, 0);
        break;
    }
    case LD_FENCE_UNKNOWN:
        e->stats.escalations_unfenced++;
        escalate_missed(e, t, leg);
        break;
    default:
        escalate_missed(e, t, leg);
        break;
    }
}

void ld_engine_run_due(ld_engine *e)
{
    uint64_t now = ld_clock_now(e->clock);
    ld_timer *tm;
    /* Bounded so a burst of deadlines cannot starve intake; the rest go next turn. */
    for (int n = 0; n < 4096 && (tm = ld_timers_pop(&e->timers, now)); n++) {
        ld_task *t = ld_container_of(tm, ld_task, timer);
        if (t->fencing) continue; /* ld_engine_fenced re-arms it */
        int leg = -1;
        for (int l = 0; l < LD_LEG_COUNT; l++)
            if (leg_pending(t, l) && ld_task_due(t, l) <= now &&
                (leg < 0 || ld_task_due(t, l) < ld_task_due(t, leg)))
                leg = l;
        if (leg < 0) {
            ld__remind_due(e, t, now);
            arm(e, t);
            continue;
        }
        if (claim(e, t, leg, 1) == 0) {
            t->fencing = 1; /* the timer stays unarmed until the answer */
            continue;
        }
        if (e->hooks.fence) e->stats.escalations_unfenced++;
        escalate_missed(e, t, leg);
    }
}

/* ---- updates ---------------------------------------------------------------- */

static void close_task(ld_engine *e, ld_task *t)
{
    ld_incident *inc = t->inc;
    ld_timers_cancel(&e->timers, &t->timer);
    release(e, t);
    if (--inc->open_tasks > 0) return;
    leave_open(e, inc);
    e->stats.incidents_closed++;
    history(e, inc, LINKD__V1__FEED_KIND__FEED_KIND_INCIDENT_CLOSED, NULL, -1);
    feed(e, LINKD__V1__FEED_KIND__FEED_KIND_INCIDENT_CLOSED, inc, NULL, -1, 0, "%s closed: every task resolved", inc->id);
    /* Freed by ld_engine_take_dirty once its final record is written. */
}

static int may_update(const ld_engine *e, const ld_task *t, int terminal)
{
    int d = e->rules->terminals[terminal].dept;
    return terminal == t->terminal || d == t->dept || d == e->rules->command;
}

/* feedback_update records a report back (反馈). It completes the feedback
 * leg (and acknowledgement, which a report implies) without changing the
 * task's progress; later reports replace the text. The same text again is a
 * duplicate (a resent poll). */
static int feedback_update(ld_engine *e, ld_task *t, int terminal, const Linkd__V1__TaskUpdate *u,
                           char *why, size_t len)
{
    const ld_rules *r = e->rules;
    uint64_t now = ld_clock_now(e->clock);
    if (!u->disposition || !*u->disposition) {
        snprintf(why, len, "disposition: feedback needs the report");
        return LINKD__V1__RESULT__RESULT_REJECTED;
    }
    if (t->state == T_RESOLVED) return LINKD__V1__RESULT__RESULT_DUPLICATE;
    if (ld_task_done(t, LD_LEG_FEEDBACK) && strncmp(ld_task_feedback(t), u->disposition,
                                                    text_len[LD_TEXT_FEEDBACK] - 1) == 0)
        return LINKD__V1__RESULT__RESULT_DUPLICATE;
    if (ld__task_set_text(e, t, LD_TEXT_FEEDBACK, u->disposition) != 0) {
        snprintf(why, len, "out of memory");
        return LINKD__V1__RESULT__RESULT_RETRY_LATER;
    }
    if (!ld_task_done(t, LD_LEG_FEEDBACK))
        ld__task_set_time(e, t, LD_TIME_DONE, LD_LEG_FEEDBACK, now);
    if (!ld_task_done(t, LD_LEG_ACK)) {
        ld__task_set_time(e, t, LD_TIME_DONE, LD_LEG_ACK, now);
        e->stats.acknowledged++;
    }
    if (t->state < T_ACKNOWLEDGED) set_state(e, t, T_ACKNOWLEDGED);
    if (t->delivery != LD_DELIVERY_NONE) release(e, t);
    e->stats.feedbacks++;
    history(e, t->inc, LINKD__V1__FEED_KIND__FEED_KIND_TASK_FEEDBACK, t, -1);
    feed(e, LINKD__V1__FEED_KIND__FEED_KIND_TASK_FEEDBACK, t->inc, t, -1, 0,
         "%s/%s feedback by %s: %s", t->inc->id, r->departments[t->dept].id,
         r->terminals[terminal].id, ld_task_feedback(t));
    ld__sign_off_check(e, t->inc);
    arm(e, t);
    return LINKD__V1__RESULT__RESULT_ACCEPTED;
}

int ld_engine_update(ld_engine *e, int terminal, const Linkd__V1__TaskUpdate *u, char *why,
                     size_t len)
{
    const ld_rules *r = e->rules;
    ld_task *t = u->task_id ? find_task(e, u->task_id) : NULL;
    if (!u->task_id || !*u->task_id) {
        snprintf(why, len, "task_id: missing");
        return LINKD__V1__RESULT__RESULT_REJECTED;
    }
    if (!t) {
        snprintf(why, len, "task_id: no open task '%.64s'", u->task_id);
        return LINKD__V1__RESULT__RESULT_REJECTED;
    }
    if (!may_update(e, t, terminal)) {
        snprintf(why, len, "terminal %s may not update a task of %s", r->terminals[terminal].id,
                 r->departments[t->dept].id);
        return LINKD__V1__RESULT__RESULT_REJECTED;
    }
    uint64_t now = ld_clock_now(e->clock);
    int kind = u->has_kind ? (int)u->kind : 0;
    int target, fk, done_legs;
    switch (kind) {
    case LINKD__V1__UPDATE_KIND__UPDATE_KIND_ACKNOWLEDGED:
        target = T_ACKNOWLEDGED, fk = LINKD__V1__FEED_KIND__FEED_KIND_TASK_ACKNOWLEDGED;
        done_legs = 1;
        break;
    case LINKD__V1__UPDATE_KIND__UPDATE_KIND_EN_ROUTE:
        target = T_EN_ROUTE, fk = LINKD__V1__FEED_KIND__FEED_KIND_TASK_EN_ROUTE, done_legs = 1;
        break;
    case LINKD__V1__UPDATE_KIND__UPDATE_KIND_ON_SCENE:
        target = T_ON_SCENE, fk = LINKD__V1__FEED_KIND__FEED_KIND_TASK_ON_SCENE, done_legs = 2;
        break;
    case LINKD__V1__UPDATE_KIND__UPDATE_KIND_RESOLVED:
        target = T_RESOLVED, fk = LINKD__V1__FEED_KIND__FEED_KIND_TASK_RESOLVED;
        done_legs = LD_LEG_COUNT;
        break;
    case LINKD__V1__UPDATE_KIND__UPDATE_KIND_FEEDBACK:
        return feedback_update(e, t, terminal, u, why, len);
    case LINKD__V1__UPDATE_KIND__UPDATE_KIND_REJECTED: {
        if (!u->reason || !*u->reason) {
            snprintf(why, len, "reason: a rejection needs a reason");
            return LINKD__V1__RESULT__RESULT_REJECTED;
        }
        char because[128];
        snprintf(because, sizeof because, "rejected by %s: %.80s", r->terminals[terminal].id,
                 u->reason);
        set_state(e, t, T_DISPATCHED);
        ld__task_set_time(e, t, LD_TIME_DONE, LD_LEG_ACK, 0);
        /* Recorded in the fence, so a restart that finds the record stale
         * does not make the same move again when the deadline passes. */
        claim(e, t, LD_LEG_ACK, 0);
        history(e, t->inc, LINKD__V1__FEED_KIND__FEED_KIND_TASK_REJECTED, t, -1);
        feed(e, LINKD__V1__FEED_KIND__FEED_KIND_TASK_REJECTED, t->inc, t, -1, 0, "%s/%s %s", t->inc->id, r->departments[t->dept].id, because);
        ld__sign_off_check(e, t->inc);
        escalate(e, t, LD_LEG_ACK, because);
        return LINKD__V1__RESULT__RESULT_ACCEPTED;
    }
    default:
        snprintf(why, len, "kind: %s", kind ? "unknown value" : "missing");
        return LINKD__V1__RESULT__RESULT_REJECTED;
    }
    if (t->state >= target) return LINKD__V1__RESULT__RESULT_DUPLICATE;

    set_state(e, t, target);
    for (int l = 0; l < done_legs; l++)
        if (!ld_task_done(t, l)) ld__task_set_time(e, t, LD_TIME_DONE, l, now);
    if (target == T_RESOLVED && u->disposition)
        ld__task_set_text(e, t, LD_TEXT_DISPOSITION, u->disposition);
    if (kind == LINKD__V1__UPDATE_KIND__UPDATE_KIND_ACKNOWLEDGED) e->stats.acknowledged++;
    /* Acknowledged: no more resends; the holder has it. */
    if (t->delivery != LD_DELIVERY_NONE && target >= T_ACKNOWLEDGED) release(e, t);
    history(e, t->inc, fk, t, -1);
    feed(e, fk, t->inc, t, -1, 0, "%s/%s %s by %s%s%s", t->inc->id, r->departments[t->dept].id,
             ld_enum_name(&linkd__v1__task_state__descriptor, target), r->terminals[terminal].id,
             ld_task_disposition(t)[0] && target == T_RESOLVED ? ": " : "",
             target == T_RESOLVED ? ld_task_disposition(t) : "");
    ld__sign_off_check(e, t->inc);
    if (target == T_RESOLVED) {
        e->stats.resolved++;
        close_task(e, t);
    } else {
        arm(e, t);
    }
    return LINKD__V1__RESULT__RESULT_ACCEPTED;
}

void ld_engine_terminal_presence(ld_engine *e, int terminal, int online)
{
    char text[120];
    if (terminal >= 0 && terminal < e->nterms) e->offline[terminal] = (uint8_t)!online;
    snprintf(text, sizeof text, "terminal %s is %s", e->rules->terminals[terminal].id,
             online ? "online" : "offline");
    Linkd__V1__FeedEvent fe;
    linkd__v1__feed_event__init(&fe);
    fe.has_kind = 1;
    fe.kind = online ? LINKD__V1__FEED_KIND__FEED_KIND_TERMINAL_ONLINE
                     : LINKD__V1__FEED_KIND__FEED_KIND_TERMINAL_OFFLINE;
    fe.has_at_ms = 1;
    fe.at_ms = (int64_t)ld_clock_now(e->clock);
    fe.has_seq = 1;
    fe.seq = ++e->feed_seq;
    fe.terminal = (char *)e->rules->terminals[terminal].id;
    fe.text = text;
    if (e->hooks.observe) {
        ld_observation ob = {fe.kind, NULL, NULL, -1, 0, terminal, NULL, NULL, NULL, NULL};
        e->hooks.observe(e->hooks.observe_ctx, &ob);
    }
    if (e->hooks.feed) e->hooks.feed(e->hooks.ctx, &fe);
    /* Its unacknowledged tasks go to someone who is there. */
    if (!online && terminal >= 0 && terminal < e->nterms) ld__roster_terminal_offline(e, terminal);
}

void ld_engine_set_rules(ld_engine *e, const ld_rules *r)
{
    e->rules = r;
    /* Open tasks keep their ladders (chains), deadlines and reminders: only
     * tasks dispatched from now on take the new figures. */
    if (ld__ladder_set_rules(e) != 0)
        ld_log(LD_ERR, "ENGINE-NOMEM", "out of memory building the new chains; new tasks "
               "climb the previous ones");
}

ld_incident *ld_engine_find(const ld_engine *e, const char *incident_id)
{
    return ld_index_get(&e->by_id, incident_id);
}

/* ---- write-behind ------------------------------------------------------------ */

void ld_engine_tidy(ld_engine *e)
{
    ld_index_tidy(&e->by_id, LD_TIDY_SLOTS);
    ld__correlate_tidy(e, LD_TIDY_SLOTS);
}

void ld_engine_take_dirty(ld_engine *e, void (*fn)(void *arg, ld_incident *inc), void *arg)
{
    ld_incident *inc = e->dirty_head;
    e->dirty_head = NULL;
    while (inc) {
        ld_incident *next = inc->dirty_next;
        inc->dirty = 0;
        inc->dirty_next = NULL;
        fn(arg, inc);
        if (inc->closed_at) incident_free(e, inc);
        inc = next;
    }
}

size_t ld_engine_record_pack(const ld_engine *e, const ld_incident *inc, uint8_t *buf, size_t len)
{
    const ld_rules *r = e->rules;
    Linkd__V1__IncidentRecord rec;
    Linkd__V1__TaskRecord trec[LD_MAX_TASKS], *tptr[LD_MAX_TASKS];
    Linkd__V1__Task tpb[LD_MAX_TASKS];
    char tids[LD_MAX_TASKS][LD_TASK_ID_LEN];
    Linkd__V1__HistoryEntry hist[LD_HISTORY_MAX], *hptr[LD_HISTORY_MAX];
    Linkd__V1__Location loc;
    Linkd__V1__Reminder rem[LD_MAX_TASKS][LD_LEG_COUNT], *rptr[LD_MAX_TASKS][LD_LEG_COUNT];
    uint32_t rpct[LD_MAX_TASKS][LD_LEG_COUNT][LD_MAX_REMINDERS];
    char *sign_off[LD_MAX_TASKS];

    linkd__v1__incident_record__init(&rec);
    rec.incident_id = (char *)inc->id;
    rec.event_id = (char *)inc->event_id;
    rec.source_id = (char *)inc->source_id;
    rec.kind = (char *)ld_kind_name(inc->kind);
    const ProtobufCEnumDescriptor *cd = inc->kind == LD_KIND_CALL ? &linkd__v1__call_category__descriptor
                                        : inc->kind == LD_KIND_SENSOR
                                            ? &linkd__v1__sensor_kind__descriptor
                                            : &linkd__v1__petition_issue__descriptor;
    rec.category = (char *)ld_enum_name(cd, inc->category);
    rec.has_priority = 1;
    rec.priority = (Linkd__V1__Priority)inc->priority;
    rec.has_status = 1;
    rec.status = (Linkd__V1__Status)inc->status;
    rec.has_opened_at_ms = 1;
    rec.opened_at_ms = (int64_t)inc->opened_at;
    if (inc->closed_at) {
        rec.has_closed_at_ms = 1;
        rec.closed_at_ms = (int64_t)inc->closed_at;
    }
    rec.summary = (char *)inc->summary;
    rec.has_people = 1;
    rec.people = inc->people;
    for (int i = 0; i < inc->ntasks; i++) {
        const ld_task *t = inc->tasks[i];
        linkd__v1__task_record__init(&trec[i]);
        ld_engine_task_pb(e, t, &tpb[i], NULL, tids[i]);
        /* The incident holds these once; each task repeating them would only
         * lengthen every write (and the append-only file). */
        tpb[i].incident_id = NULL;
        tpb[i].summary = NULL;
        /* A notice of a raised priority not yet receipted: sent again after a restart. */
        tpb[i].has_priority_raised = t->raised;
        tpb[i].priority_raised = t->raised;
        tpb[i].event_id = NULL;
        tpb[i].level_name = NULL;
        tpb[i].has_priority = 0;
        trec[i].task = &tpb[i];
        uint64_t done[LD_LEG_COUNT];
        for (int l = 0; l < LD_LEG_COUNT; l++) done[l] = ld_task_done(t, l);
        if (done[LD_LEG_ACK]) trec[i].has_acknowledged_at_ms = 1,
                              trec[i].acknowledged_at_ms = (int64_t)done[LD_LEG_ACK];
        if (done[LD_LEG_ARRIVE]) trec[i].has_arrived_at_ms = 1,
                                 trec[i].arrived_at_ms = (int64_t)done[LD_LEG_ARRIVE];
        if (done[LD_LEG_RESOLVE]) trec[i].has_resolved_at_ms = 1,
                                  trec[i].resolved_at_ms = (int64_t)done[LD_LEG_RESOLVE];
        if (done[LD_LEG_FEEDBACK]) trec[i].has_feedback_at_ms = 1,
                                   trec[i].feedback_at_ms = (int64_t)done[LD_LEG_FEEDBACK];
        if (ld_task_feedback(t)[0]) trec[i].feedback = (char *)ld_task_feedback(t);
        if (ld_task_disposition(t)[0]) trec[i].disposition = (char *)ld_task_disposition(t);
        trec[i].has_received = 1;
        trec[i].received = t->delivery == LD_DELIVERY_RECEIVED || t->delivery == LD_DELIVERY_NONE;
        trec[i].n_reminders = ld__remind_pack(t, rem[i], rpct[i], rptr[i]);
        trec[i].reminders = rptr[i];
        tptr[i] = &trec[i];
    }
    linkd__v1__location__init(&loc);
    if (inc->has_ll) {
        loc.has_lat = loc.has_lon = 1;
        loc.lat = inc->lat;
        loc.lon = inc->lon;
    }
    if (inc->district[0]) loc.district = (char *)inc->district;
    if (inc->grid[0]) loc.grid = (char *)inc->grid;
    rec.location = &loc;
    rec.n_tasks = (size_t)inc->ntasks;
    rec.tasks = tptr;
    for (int i = 0; i < inc->nhistory; i++) {
        const ld_history *h = &inc->history[i];
        linkd__v1__history_entry__init(&hist[i]);
        hist[i].has_kind = 1;
        hist[i].kind = (Linkd__V1__FeedKind)h->kind;
        hist[i].has_at_ms = 1;
        hist[i].at_ms = (int64_t)ld_history_at(h);
        hist[i].has_task_index = 1;
        hist[i].task_index = h->task;
        hist[i].has_level = 1;
        hist[i].level = h->level;
        if (h->terminal >= 0) hist[i].terminal = (char *)r->terminals[h->terminal].id;
        if (h->leg) {
            hist[i].has_leg = 1;
            hist[i].leg = (Linkd__V1__Leg)h->leg;
        }
        hist[i].note = (char *)ld_notes_text(inc, h->note);
        hptr[i] = &hist[i];
    }
    rec.n_history = (size_t)inc->nhistory;
    rec.history = hptr;
    Linkd__V1__MergedEvent mev[LD_MERGED_MAX], *mptr[LD_MERGED_MAX];
    char *moved[LD_MERGED_MAX][LD_MAX_TASKS];
    size_t nm = 0;
    for (const ld_merged *m = inc->merged; m && nm < LD_MERGED_MAX; m = m->next, nm++) {
        linkd__v1__merged_event__init(&mev[nm]);
        mev[nm].stream_id = (char *)m->stream_id;
        mev[nm].event_id = (char *)m->event_id;
        mev[nm].source_id = (char *)m->source_id;
        mev[nm].rule = (char *)m->rule;
        if (m->incident_id[0]) mev[nm].incident_id = (char *)m->incident_id;
        for (int d = 0; d < r->ndepartments && d < 64; d++)
            if ((m->moved >> d & 1) && mev[nm].n_moved_departments < LD_MAX_TASKS)
                moved[nm][mev[nm].n_moved_departments++] = (char *)r->departments[d].id;
        mev[nm].moved_departments = moved[nm];
        mev[nm].has_at_ms = mev[nm].has_distance_m = 1;
        mev[nm].has_event = m->len > 0;
        mev[nm].at_ms = (int64_t)m->at;
        mev[nm].distance_m = m->distance_m;
        mev[nm].event.len = m->len;
        mev[nm].event.data = (uint8_t *)m->event;
        mptr[nm] = &mev[nm];
    }
    rec.n_merged = nm;
    rec.merged = mptr;
    rec.n_sign_off = ld__sign_off_pack(e, inc, sign_off);
    rec.sign_off = sign_off;
    if (inc->signed_at) {
        rec.has_signed_off_at_ms = 1;
        rec.signed_off_at_ms = (int64_t)inc->signed_at;
    }
    size_t need = linkd__v1__incident_record__get_packed_size(&rec);
    if (need > len) return need;
    return linkd__v1__incident_record__pack(&rec, buf);
}

/* ---- for actions.c (engine/actions.h): the moves a supervisor can make ---- */

void ld__engine_history(ld_engine *e, ld_incident *inc, int kind, const ld_task *t, int leg)
{
    history(e, inc, kind, t, leg);
}

void ld__engine_feed(ld_engine *e, int kind, ld_incident *inc, const ld_task *t, int leg,
                     const char *text)
{
    feed(e, kind, inc, t, leg, t ? t->level : 0, "%s", text);
}

void ld__engine_escalate(ld_engine *e, ld_task *t, int leg, const char *why)
{
    claim(e, t, leg, 0); /* recorded in the fence, as a rejection's move is */
    escalate(e, t, leg, why);
    mark_dirty(e, t->inc);
}

int ld__engine_task_room(ld_engine *e, ld_incident *inc, int more)
{
    return task_room(e, inc, more);
}

void ld__engine_append_task(ld_engine *e, ld_incident *inc, ld_task *t)
{
    add_task(e, inc, t);
}

void ld__engine_replace_task(ld_engine *e, ld_incident *inc, ld_task *old, ld_task *n)
{
    if (!inc->closed_at) count_task(e, old, -1);
    ((ld_task **)inc->tasks)[old->idx] = n;
    if (!inc->closed_at) count_task(e, n, +1);
    task_free(e, old);
}

void ld__engine_hand_to(ld_engine *e, ld_task *t, int terminal)
{
    hand_to(e, t, terminal);
}

void ld__engine_arm(ld_engine *e, ld_task *t)
{
    arm(e, t);
    mark_dirty(e, t->inc);
}

int ld__engine_leg_pending(const ld_task *t, int leg)
{
    return leg_pending(t, leg);
}

void ld__engine_withdraw(ld_engine *e, ld_task *t, const char *disposition, const char *text)
{
    set_state(e, t, T_RESOLVED);
    ld__task_set_text(e, t, LD_TEXT_DISPOSITION, disposition);
    history(e, t->inc, LINKD__V1__FEED_KIND__FEED_KIND_TASK_REASSIGNED, t, -1);
    feed(e, LINKD__V1__FEED_KIND__FEED_KIND_TASK_REASSIGNED, t->inc, t, -1, t->level, "%s", text);
    close_task(e, t);
}

void ld__engine_close_incident(ld_engine *e, ld_incident *inc, const char *text)
{
    for (int i = 0; i < inc->ntasks; i++) {
        ld_task *t = inc->tasks[i];
        if (t->state == T_RESOLVED) continue;
        ld_timers_cancel(&e->timers, &t->timer);
        release(e, t);
        set_state(e, t, T_RESOLVED);
    }
    inc->open_tasks = 0;
    leave_open(e, inc);
    e->stats.incidents_closed++;
    history(e, inc, LINKD__V1__FEED_KIND__FEED_KIND_INCIDENT_CLOSED, NULL, -1);
    feed(e, LINKD__V1__FEED_KIND__FEED_KIND_INCIDENT_CLOSED, inc, NULL, -1, 0, "%s", text);
}

ld_task *ld__engine_add_task(ld_engine *e, ld_incident *inc, const ld_dispatch_def *d,
                             const ld_route *rt, uint64_t now)
{
    uint64_t due[LD_LEG_COUNT];
    int area = e->rules->area_of ? e->rules->default_area : LD_AREA_URBAN;
    if (inc->district[0]) {
        int id = ld_rules_intern(e->rules, inc->district);
        if (id > 0) area = e->rules->area_of[id];
    }
    for (int l = 0; l < LD_LEG_COUNT; l++) due[l] = ld_rules_deadline(e->rules, d, l, area, now);
    ld_task *t = new_task(e, inc, d->dept, due, rt->where, rt->name, now);
    if (!t) return NULL;
    if (!d->has_feedback) t->legs_off = 1u << LD_LEG_FEEDBACK;
    ld__remind_plan(e, t, d, now);
    return t;
}

void ld__engine_dispatch(ld_engine *e, ld_task *t)
{
    dispatch_task(e, t);
}
