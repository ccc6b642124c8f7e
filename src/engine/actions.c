#include "engine/actions.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/log.h"
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

struct ld_notes {
    int n;
    ld_note v[LD_NOTES_MAX];
};

/* ---- notes ------------------------------------------------------------------ */

const char *ld_notes_text(const ld_incident *inc, unsigned idx)
{
    if (!idx || !inc->notes || idx > (unsigned)inc->notes->n) return NULL;
    return inc->notes->v[idx - 1].text;
}

static uint16_t note_add(ld_incident *inc, uint64_t at, const char *text)
{
    if (!inc->notes && !(inc->notes = calloc(1, sizeof *inc->notes))) return 0;
    if (inc->notes->n == LD_NOTES_MAX) return 0;
    ld_note *n = &inc->notes->v[inc->notes->n++];
    n->at = at;
    snprintf(n->text, sizeof n->text, "%s", text);
    return (uint16_t)inc->notes->n;
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
        t->level = level;
        snprintf(t->reason, sizeof t->reason, "reassigned by %.40s: %.70s", a->who, a->why);
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
            t->dept = dept;
            t->state = T_DISPATCHED;
            memset(t->done_at, 0, sizeof t->done_at);
            t->overdue_top = 0;
            t->disposition[0] = '\0';
        }
        t->level = level < 0 ? 0 : level;
        snprintf(t->reason, sizeof t->reason, "reassigned from %s by %.40s: %.60s", from_dept,
                 a->who, a->why);
        ld__engine_hand_to(e, t, terminal);
    }
    ld__ladder_take(e, t); /* a reassigned task climbs the chain of the rules running now */
    uint64_t now = ld_clock_now(e->clock);
    uint64_t wait = ld_task_level(t, t->level)->wait_ms;
    for (int l = 0; l < LD_LEG_COUNT; l++)
        if (ld__engine_leg_pending(t, l) && t->deadline[l] <= now) t->deadline[l] = now + wait;
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
        if (ld__engine_leg_pending(t, l) && (leg < 0 || t->deadline[l] < t->deadline[leg])) leg = l;
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
    if (t->done_at[leg]) {
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
    uint64_t base = t->deadline[leg] > now ? t->deadline[leg] : now;
    t->deadline[leg] = base + by_ms;
    t->overdue_top &= ~(1u << leg); /* at the top, the new time is watched again */
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
            snprintf(inc->tasks[i]->disposition, sizeof inc->tasks[i]->disposition,
                     "closed by supervisor: %s", disposition);
    char text[320];
    snprintf(text, sizeof text, "%s closed by %.48s: %.100s (%.100s)", inc->id, a->who,
             disposition, a->why);
    ld__engine_close_incident(e, inc, text);
    end(e);
    return 0;
}

void ld_engine_foreach_open(const ld_engine *e, void (*fn)(void *arg, const ld_incident *inc),
                            void *arg)
{
    for (size_t i = 0; i < e->by_id.cap; i++)
        if (e->by_id.slots[i].key) fn(arg, e->by_id.slots[i].value);
}
