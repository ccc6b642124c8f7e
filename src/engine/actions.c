#include "engine/actions.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/log.h"
#include "engine/correlate.h"
#include "engine/ladder.h"

#define T_DISPATCHED LINKD__V1__TASK_STATE__TASK_STATE_DISPATCHED
#define T_RESOLVED LINKD__V1__TASK_STATE__TASK_STATE_RESOLVED
#define MAX_EXTEND_MS (30ull * 24 * 3600 * 1000)

static const char *const leg_names[LD_LEG_COUNT] = {"acknowledge", "arrive", "resolve",
                                                    "feedback"};

typedef struct ld_note {
    uint64_t at;
    char text[LD_NOTE_LEN];
} ld_note;

/* Grown by doubling from one: most incidents have no note, an upgraded one
 * has one, and only supervisors' work adds more (up to LD_NOTES_MAX). */
struct ld_notes {
    int n, cap;
    ld_note v[];
};

/* ---- notes ------------------------------------------------------------------ */

const char *ld_notes_text(const ld_incident *inc, unsigned idx)
{
    if (!idx || !inc->notes || idx > (unsigned)inc->notes->n) return NULL;
    return inc->notes->v[idx - 1].text;
}

static uint16_t note_add(ld_incident *inc, uint64_t at, const char *text)
{
    struct ld_notes *ns = inc->notes;
    if (ns && ns->n == LD_NOTES_MAX) return 0;
    if (!ns || ns->n == ns->cap) {
        int cap = ns ? 2 * ns->cap : 1;
        if (!(ns = realloc(ns, sizeof *ns + (size_t)cap * sizeof ns->v[0]))) return 0;
        if (!inc->notes) ns->n = 0;
        ns->cap = cap;
        inc->notes = ns;
    }
    ld_note *n = &ns->v[ns->n++];
    n->at = at;
    snprintf(n->text, sizeof n->text, "%s", text);
    return (uint16_t)ns->n;
}

uint16_t ld_notes_restore(ld_incident *inc, uint64_t at, const char *text)
{
    return note_add(inc, at, text);
}

void ld_notes_free(ld_incident *inc)
{
    free(inc->notes);
    inc->notes = NULL;
}

/* ---- acting ------------------------------------------------------------------- */

/* begin records the note "<who>: <what>: <why>" and makes the engine stamp
 * every history entry and feed event of the action with it, until end(). */
static int begin(ld_engine *e, ld_incident *inc, const ld_actor *a, const char *what, char *err,
                 size_t len)
{
    char text[LD_NOTE_LEN];
    if (inc->notes && inc->notes->n == LD_NOTES_MAX) {
        snprintf(err, len, "incident %s already has %d supervisor actions, the most kept", inc->id,
                 LD_NOTES_MAX);
        return LD_ESTATE;
    }
    snprintf(text, sizeof text, "%.48s: %s: %s", a->who, what, a->why);
    uint16_t idx = note_add(inc, ld_clock_now(e->clock), text);
    if (!idx) {
        snprintf(err, len, "out of memory");
        return LD_ENOMEM;
    }
    e->actor = a->who;
    e->actor_reason = a->why;
    e->actor_note = idx;
    ld_log(LD_NOTICE, "ACTION", "%s: %s", inc->id, text);
    return 0;
}

static void end(ld_engine *e)
{
    e->actor = e->actor_reason = NULL;
    e->actor_note = 0;
}

static int check_actor(const ld_actor *a, char *err, size_t len)
{
    if (!a->who || !*a->who) {
        snprintf(err, len, "by: who acts is required");
        return LD_EINVAL;
    }
    if (!a->why || !*a->why) {
        snprintf(err, len, "reason: why is required");
        return LD_EINVAL;
    }
    return 0;
}

static int check_open(const ld_engine *e, const ld_task *t, char *err, size_t len)
{
    if (t->state == T_RESOLVED || t->inc->closed_at) {
        snprintf(err, len, "task %s/%s is already resolved", t->inc->id,
                 e->rules->departments[t->dept].id);
        return LD_ESTATE;
    }
    return 0;
}

/* chain_position returns the level of <terminal> in <dept>'s chain, or -1. */
static int chain_position(const ld_rules *r, int dept, int terminal)
{
    int n = ld_chain_len(r, dept);
    for (int l = 0; l < n; l++)
        if (ld_chain_level(r, dept, l)->terminal == terminal) return l;
    return -1;
}

ld_task *ld_engine_task_of(const ld_incident *inc, int dept)
{
    for (int i = 0; i < inc->ntasks; i++)
        if (inc->tasks[i]->dept == dept) return inc->tasks[i];
    return NULL;
}

int ld_action_reassign(ld_engine *e, ld_task *t, int dept, int terminal, const ld_actor *a,
                       char *err, size_t len)
{
    const ld_rules *r = e->rules;
    int rv, level;
    if ((rv = check_actor(a, err, len)) || (rv = check_open(e, t, err, len))) return rv;
    const char *from_dept = r->departments[t->dept].id;
    const char *from_term = r->terminals[t->terminal].id;
    if (dept < 0 && terminal < 0) {
        snprintf(err, len, "department: give a department or a terminal");
        return LD_EINVAL;
    }
    if (dept < 0) {
        /* Another holder for the same task: a level of its chain, or any
         * terminal of its department at the task's level. */
        if (terminal == t->terminal) {
            snprintf(err, len, "task %s/%s is already with %s", t->inc->id, from_dept, from_term);
            return LD_ESTATE;
        }
        level = chain_position(r, t->dept, terminal);
        if (level < 0 && r->terminals[terminal].dept != t->dept) {
            snprintf(err, len, "terminal: %s is neither in %s's chain nor one of its terminals",
                     r->terminals[terminal].id, from_dept);
            return LD_EINVAL;
        }
        if (level < 0) level = t->level;
        char what[160];
        snprintf(what, sizeof what, "reassigned %s/%s from %s to %s", t->inc->id, from_dept,
                 from_term, r->terminals[terminal].id);
        if ((rv = begin(e, t->inc, a, what, err, len)) != 0) return rv;
        ld__engine_set_level(e, t, level, t->overdue_top);
        ld__task_printf(e, t, LD_TEXT_REASON, "reassigned by %.40s: %.70s", a->who, a->why);
        ld__engine_hand_to(e, t, terminal);
    } else {
        if (dept == t->dept && terminal < 0) {
            snprintf(err, len, "task %s/%s is already with %s", t->inc->id, from_dept, from_dept);
            return LD_ESTATE;
        }
        if (dept != t->dept && ld_engine_task_of(t->inc, dept)) {
            snprintf(err, len, "incident %s already has a task for %s", t->inc->id,
                     r->departments[dept].id);
            return LD_ESTATE;
        }
        if (terminal >= 0 && r->terminals[terminal].dept != dept &&
            chain_position(r, dept, terminal) < 0) {
            snprintf(err, len, "terminal: %s is not a terminal of %s", r->terminals[terminal].id,
                     r->departments[dept].id);
            return LD_EINVAL;
        }
        if (terminal < 0) terminal = ld_chain_level(r, dept, 0)->terminal;
        if (terminal == t->terminal) {
            snprintf(err, len, "task %s/%s is already with %s", t->inc->id, from_dept, from_term);
            return LD_ESTATE;
        }
        level = chain_position(r, dept, terminal);
        char what[160];
        snprintf(what, sizeof what, "reassigned %s/%s to %s (%s)", t->inc->id, from_dept,
                 r->departments[dept].id, r->terminals[terminal].id);
        if ((rv = begin(e, t->inc, a, what, err, len)) != 0) return rv;
        if (dept != t->dept) {
            /* A new department starts the task again; the clock does not. */
            ld__engine_set_task(e, t, dept, T_DISPATCHED);
            for (int l = 0; l < LD_LEG_COUNT; l++) ld__task_set_time(e, t, LD_TIME_DONE, l, 0);
            ld__engine_set_level(e, t, t->level, 0);
            ld__task_set_text(e, t, LD_TEXT_DISPOSITION, NULL);
        }
        ld__engine_set_level(e, t, level < 0 ? 0 : level, t->overdue_top);
        ld__task_printf(e, t, LD_TEXT_REASON, "reassigned from %s by %.40s: %.60s", from_dept,
                        a->who, a->why);
        ld__engine_hand_to(e, t, terminal);
    }
    ld__ladder_take(e, t); /* a reassigned task climbs the chain of the rules running now */
    uint64_t now = ld_clock_now(e->clock);
    uint64_t wait = ld_task_level(t, t->level)->wait_ms;
    for (int l = 0; l < LD_LEG_COUNT; l++)
        if (ld__engine_leg_pending(t, l) && ld_task_due(t, l) <= now)
            ld__task_set_time(e, t, LD_TIME_DUE, l, now + wait);
    ld__engine_arm(e, t);
    ld__engine_history(e, t->inc, LINKD__V1__FEED_KIND__FEED_KIND_TASK_REASSIGNED, t, -1);
    char text[320];
    snprintf(text, sizeof text, "%s -> %s (%s) by %.48s: %.120s", ld_notes_text(t->inc, e->actor_note),
             r->departments[t->dept].id, r->terminals[t->terminal].id, a->who, a->why);
    ld__engine_feed(e, LINKD__V1__FEED_KIND__FEED_KIND_TASK_REASSIGNED, t->inc, t, -1, text);
    end(e);
    return 0;
}

int ld_action_escalate(ld_engine *e, ld_task *t, const ld_actor *a, char *err, size_t len)
{
    const ld_rules *r = e->rules;
    int rv, leg = -1;
    if ((rv = check_actor(a, err, len)) || (rv = check_open(e, t, err, len))) return rv;
    for (int l = 0; l < LD_LEG_COUNT; l++)
        if (ld__engine_leg_pending(t, l) && (leg < 0 || ld_task_due(t, l) < ld_task_due(t, leg)))
            leg = l;
    if (leg < 0) {
        snprintf(err, len, "task %s/%s has no pending leg", t->inc->id, r->departments[t->dept].id);
        return LD_ESTATE;
    }
    if (t->level + 1 >= ld_task_chain_len(t)) {
        snprintf(err, len, "task %s/%s is already at the top of its chain (%s)", t->inc->id,
                 r->departments[t->dept].id, r->terminals[t->terminal].id);
        return LD_ESTATE;
    }
    char what[160], why[96];
    snprintf(what, sizeof what, "escalated %s/%s from level %d now", t->inc->id,
             r->departments[t->dept].id, t->level);
    if ((rv = begin(e, t->inc, a, what, err, len)) != 0) return rv;
    snprintf(why, sizeof why, "escalated by %.40s: %.40s", a->who, a->why);
    ld__engine_escalate(e, t, leg, why);
    end(e);
    return 0;
}

int ld_action_extend(ld_engine *e, ld_task *t, int leg, uint64_t by_ms, const ld_actor *a,
                     char *err, size_t len)
{
    const ld_rules *r = e->rules;
    int rv;
    if ((rv = check_actor(a, err, len)) || (rv = check_open(e, t, err, len))) return rv;
    if (leg < 0 || leg >= LD_LEG_COUNT) {
        snprintf(err, len, "leg: expected acknowledge, arrive, resolve or feedback");
        return LD_EINVAL;
    }
    if (t->legs_off & (1u << leg)) {
        snprintf(err, len, "leg: task %s/%s has no %s leg", t->inc->id,
                 r->departments[t->dept].id, leg_names[leg]);
        return LD_EINVAL;
    }
    if (by_ms < 1000 || by_ms > MAX_EXTEND_MS) {
        snprintf(err, len, "by: between 1s and 30d");
        return LD_EINVAL;
    }
    if (ld_task_done(t, leg)) {
        snprintf(err, len, "task %s/%s: %s is already done", t->inc->id,
                 r->departments[t->dept].id, leg_names[leg]);
        return LD_ESTATE;
    }
    char what[160], dur[16];
    ld_format_duration(by_ms, dur, sizeof dur);
    snprintf(what, sizeof what, "extended the %s deadline of %s/%s by %s", leg_names[leg],
             t->inc->id, r->departments[t->dept].id, dur);
    if ((rv = begin(e, t->inc, a, what, err, len)) != 0) return rv;
    uint64_t now = ld_clock_now(e->clock);
    uint64_t base = ld_task_due(t, leg) > now ? ld_task_due(t, leg) : now;
    ld__task_set_time(e, t, LD_TIME_DUE, leg, base + by_ms);
    /* At the top, the new time is watched again. */
    ld__engine_set_level(e, t, t->level, t->overdue_top & ~(1u << leg));
    ld__engine_arm(e, t);
    ld__engine_history(e, t->inc, LINKD__V1__FEED_KIND__FEED_KIND_DEADLINE_EXTENDED, t, leg);
    char text[320];
    snprintf(text, sizeof text, "%s", ld_notes_text(t->inc, e->actor_note));
    ld__engine_feed(e, LINKD__V1__FEED_KIND__FEED_KIND_DEADLINE_EXTENDED, t->inc, t, leg, text);
    end(e);
    return 0;
}

int ld_action_close(ld_engine *e, ld_incident *inc, const char *disposition, const ld_actor *a,
                    char *err, size_t len)
{
    int rv;
    if ((rv = check_actor(a, err, len)) != 0) return rv;
    if (!disposition || !*disposition) {
        snprintf(err, len, "disposition: how it ended is required");
        return LD_EINVAL;
    }
    if (inc->closed_at) {
        snprintf(err, len, "incident %s is already closed", inc->id);
        return LD_ESTATE;
    }
    char what[160];
    snprintf(what, sizeof what, "closed %s: %.100s", inc->id, disposition);
    if ((rv = begin(e, inc, a, what, err, len)) != 0) return rv;
    for (int i = 0; i < inc->ntasks; i++)
        if (inc->tasks[i]->state != T_RESOLVED)
            ld__task_printf(e, inc->tasks[i], LD_TEXT_DISPOSITION, "closed by supervisor: %s",
                            disposition);
    char text[320];
    snprintf(text, sizeof text, "%s closed by %.48s: %.100s (%.100s)", inc->id, a->who,
             disposition, a->why);
    ld__engine_close_incident(e, inc, text);
    end(e);
    return 0;
}

/* ---- merge and split ------------------------------------------------------------ */

static int notes_full(const ld_incident *inc, char *err, size_t len)
{
    if (!inc->notes || inc->notes->n < LD_NOTES_MAX) return 0;
    snprintf(err, len, "incident %s already has %d supervisor actions, the most kept", inc->id,
             LD_NOTES_MAX);
    return LD_ESTATE;
}

/* also_note records the note of the action under way on a second incident
 * and returns its index (0 if it could not be kept). */
static uint16_t also_note(ld_engine *e, ld_incident *inc, const ld_incident *first)
{
    const char *text = ld_notes_text(first, e->actor_note);
    return text ? note_add(inc, ld_clock_now(e->clock), text) : 0;
}

/* Distance between two incidents in metres, 0 if either has no coordinates
 * (equirectangular: two reports of one emergency are close together). */
static uint32_t metres_apart(const ld_incident *x, const ld_incident *y)
{
    if (!x->has_ll || !y->has_ll) return 0;
    const double rad = 3.14159265358979323846 / 180.0, earth = 6371008.8;
    double dx = (y->lon - x->lon) * rad * cos((x->lat + y->lat) / 2 * rad);
    double dy = (y->lat - x->lat) * rad;
    return (uint32_t)(earth * sqrt(dx * dx + dy * dy) + 0.5);
}

/* move_task puts a copy of <from>'s open task <t> into <into>, with the same
 * holder, level, state and deadlines, and hands it to the holder again under
 * its new task id; <t> stays in <from>'s record, closed when <from> closes.
 * A resolved task of <into> for the department (<old>, or NULL) gives up its
 * place: open work is never closed because finished work exists (the
 * resolved one stays in the history and the audit trail). */
static void move_task(ld_engine *e, ld_incident *into, ld_task *t, ld_task *n, ld_task *old,
                      const ld_actor *a)
{
    const char *dept = e->rules->departments[t->dept].id;
    *n = *t;
    ld__task_copied(e, n);
    n->inc = into;
    n->idx = old ? old->idx : into->ntasks;
    memset(&n->timer, 0, sizeof n->timer);
    memset(&n->term_link, 0, sizeof n->term_link);
    n->fencing = 0;
    n->ladder = NULL; /* its own reference: the chain its department has now */
    ld__ladder_take(e, n);
    if (n->level >= ld_task_chain_len(n)) n->level = ld_task_chain_len(n) - 1;
    if (old)
        ld__engine_replace_task(e, into, old, n);
    else
        ld__engine_append_task(e, into, n); /* room made by ld_action_merge */
    into->open_tasks++;
    ld__task_printf(e, t, LD_TEXT_DISPOSITION, "merged: moved to %s/%s", into->id, dept);
    ld__engine_hand_to(e, n, n->terminal);
    ld__engine_arm(e, n);
    ld__engine_history(e, into, LINKD__V1__FEED_KIND__FEED_KIND_TASK_REASSIGNED, n, -1);
    char text[320];
    snprintf(text, sizeof text, "%s/%s moved to %s/%s (%s) with the merge by %.48s: %.120s",
             t->inc->id, dept, into->id, dept, e->rules->terminals[n->terminal].id, a->who, a->why);
    ld__engine_feed(e, LINKD__V1__FEED_KIND__FEED_KIND_TASK_REASSIGNED, into, n, -1, text);
}

/* own_entry describes <from>'s own event as a merged event of <into>. */
static void own_entry(ld_engine *e, ld_merged *m, const ld_incident *into, const ld_incident *from,
                      const ld_actor *a)
{
    size_t n = strcspn(from->id + 1, ".");  /* "I<stream id>[.<generation>]" */
    snprintf(m->stream_id, sizeof m->stream_id, "%.*s", (int)n, from->id + 1);
    snprintf(m->event_id, sizeof m->event_id, "%s", from->event_id);
    snprintf(m->source_id, sizeof m->source_id, "%s", from->source_id);
    snprintf(m->rule, sizeof m->rule, "merged by supervisor %.60s", a->who);
    snprintf(m->incident_id, sizeof m->incident_id, "%s", from->id);
    m->at = ld_clock_now(e->clock);
    m->distance_m = metres_apart(into, from);
    m->len = 0;
}

int ld_action_merge(ld_engine *e, ld_incident *into, ld_incident *from, const ld_actor *a,
                    char *err, size_t len)
{
    int rv, moving = 0, adding = 0;
    if ((rv = check_actor(a, err, len)) != 0) return rv;
    if (into == from) {
        snprintf(err, len, "incident %s cannot be merged into itself", into->id);
        return LD_ESTATE;
    }
    if (into->closed_at || from->closed_at) {
        snprintf(err, len, "incident %s is already closed", into->closed_at ? into->id : from->id);
        return LD_ESTATE;
    }
    if (into->status != from->status) {
        /* A drill or a test never mixes with a real emergency. */
        snprintf(err, len, "incident %s is %s and %s is %s: only incidents of one status merge",
                 from->id, ld_enum_name(&linkd__v1__status__descriptor, from->status), into->id,
                 ld_enum_name(&linkd__v1__status__descriptor, into->status));
        return LD_ESTATE;
    }
    for (int i = 0; i < from->ntasks; i++) {
        const ld_task *have = ld_engine_task_of(into, from->tasks[i]->dept);
        if (from->tasks[i]->state == T_RESOLVED || (have && have->state != T_RESOLVED)) continue;
        moving++;
        adding += !have;
    }
    if (into->ntasks + adding > LD_MAX_TASKS) {
        snprintf(err, len, "incident %s would have %d tasks, more than %d", into->id,
                 into->ntasks + adding, LD_MAX_TASKS);
        return LD_ESTATE;
    }
    if (into->nmerged + from->nmerged + 1 > LD_MERGED_MAX) {
        snprintf(err, len, "incident %s would keep %d merged events, more than %d", into->id,
                 into->nmerged + from->nmerged + 1, LD_MERGED_MAX);
        return LD_ESTATE;
    }
    if ((rv = notes_full(from, err, len)) != 0) return rv;
    /* Everything that can fail is taken before anything changes. */
    ld_task *copies[LD_MAX_TASKS];
    ld_merged *own = ld__correlate_entry(e);
    int got = 0;
    while (own && got < moving && (copies[got] = ld_pool_get(&e->task_pool))) got++;
    char what[160];
    snprintf(what, sizeof what, "merged %s into %s", from->id, into->id);
    if (!own || got < moving || ld__engine_task_room(e, into, adding) != 0 ||
        (rv = begin(e, into, a, what, err, len)) != 0) {
        while (got) ld_pool_put(&e->task_pool, copies[--got]);
        if (own) ld__correlate_drop(e, own);
        if (rv) return rv;
        snprintf(err, len, "out of memory");
        return LD_ENOMEM;
    }
    uint16_t into_note = e->actor_note, from_note = also_note(e, from, into);
    e->peer = from->id;
    int moved = 0, closed = 0;
    uint64_t moved_depts = 0;
    for (int i = 0; i < from->ntasks; i++) {
        ld_task *t = from->tasks[i];
        if (t->state == T_RESOLVED) continue;
        ld_task *have = ld_engine_task_of(into, t->dept);
        if (have && have->state != T_RESOLVED) {
            /* The disposition has 63 bytes: the task it duplicates is <into>/<dept>. */
            ld__task_printf(e, t, LD_TEXT_DISPOSITION, "duplicate: merged into %s", into->id);
            closed++;
        } else {
            move_task(e, into, t, copies[moved++], have, a);
            if (t->dept < 64) moved_depts |= 1ull << t->dept;
        }
    }
    own_entry(e, own, into, from, a);
    own->moved = moved_depts;
    ld__correlate_absorb(e, into, from, own);
    ld__engine_raise_priority(e, into, from->priority);
    if (from->people > into->people) into->people = from->people;
    ld__engine_history(e, into, LINKD__V1__FEED_KIND__FEED_KIND_INCIDENT_MERGED, NULL, -1);
    char text[320];
    snprintf(text, sizeof text, "%s: incident %s merged in by %.48s: %.100s (%d tasks moved, %d "
             "closed as duplicates)", into->id, from->id, a->who, a->why, moved, closed);
    ld__engine_feed(e, LINKD__V1__FEED_KIND__FEED_KIND_INCIDENT_MERGED, into, NULL, -1, text);
    e->actor_note = from_note;
    e->peer = into->id;
    snprintf(text, sizeof text, "%s merged into %s by %.48s: %.100s", from->id, into->id, a->who,
             a->why);
    ld__engine_close_incident(e, from, text);
    e->actor_note = into_note;
    e->peer = NULL;
    end(e);
    return 0;
}

const char *ld_action_split_source(const ld_incident *inc, const char *event_id)
{
    const ld_merged *m = ld__correlate_find_merged(inc, event_id);
    return m && !m->len ? m->stream_id : NULL;
}

int ld_action_split(ld_engine *e, ld_incident *inc, const char *event_id, const uint8_t *event,
                    size_t event_len, const ld_actor *a, ld_incident **out, char *err,
                    size_t len)
{
    int rv;
    if ((rv = check_actor(a, err, len)) != 0) return rv;
    if (!event_id || !*event_id) {
        snprintf(err, len, "event_id: the merged event to split off is required");
        return LD_EINVAL;
    }
    if (inc->closed_at) {
        snprintf(err, len, "incident %s is already closed", inc->id);
        return LD_ESTATE;
    }
    const ld_merged *m = ld__correlate_find_merged(inc, event_id);
    if (!m) {
        snprintf(err, len, "incident %s has no merged event '%.64s' (now)", inc->id, event_id);
        return LD_ESTATE;
    }
    if (!m->len && !event) {
        snprintf(err, len, "the event of incident %s (%s) must be read back from redis first",
                 m->incident_id, m->stream_id);
        return LD_EUNAVAIL;
    }
    char what[160];
    snprintf(what, sizeof what, "split event %.64s off %s", m->event_id, inc->id);
    if ((rv = begin(e, inc, a, what, err, len)) != 0) return rv;
    uint16_t note = e->actor_note;
    e->peer = inc->id;
    rv = ld__correlate_split(e, inc, event_id, event, event_len, a->who, a->why, out, err, len);
    if (rv == 0) {
        /* Every entry of the new incident so far is this action's: its note. */
        uint16_t own = also_note(e, *out, inc);
        for (int i = 0; i < (*out)->nhistory; i++)
            if ((*out)->history[i].note == note) (*out)->history[i].note = own;
    } else {
        inc->notes->n--; /* nothing happened: no note */
    }
    e->peer = NULL;
    end(e);
    return rv;
}

void ld_engine_foreach_open(const ld_engine *e, void (*fn)(void *arg, const ld_incident *inc),
                            void *arg)
{
    const ld_incident *inc;
    for (size_t it = 0; (inc = ld_index_next(&e->by_id, &it));) fn(arg, inc);
}
