/* ladder.c: escalation ladders.
 *
 * Chains. A task climbs the chain of the rules it was dispatched under: its
 * ld_ladder is a copy of the department's levels and command's, shared by
 * every task of that department and counted. A reload builds ladders only
 * for chains that changed; a retired ladder lives until its last task
 * closes. Nothing is allocated per event: dispatch takes a reference.
 *
 * Reminders. Before a leg's deadline the holder is reminded at shares of
 * the wait (rules: reminders), each wait running from dispatch, or from the
 * escalation that gave the leg its deadline, to the deadline. The task's
 * one timer is armed for the earlier of its next deadline and next reminder.
 *
 * Sign-off. A route may list departments that must all acknowledge before
 * the incident counts as acknowledged; until then the incident shows who
 * is missing, and each missing task climbs its own chain as usual. */
#include "engine/ladder.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "engine/actions.h"

/* ---- chains ------------------------------------------------------------------ */

static ld_ladder *ladder_build(const ld_rules *r, int dept)
{
    ld_ladder *l = calloc(1, sizeof *l);
    if (!l) return NULL;
    l->refs = 1;
    l->dept_levels = r->departments[dept].nlevels;
    l->n = ld_chain_len(r, dept);
    for (int i = 0; i < l->n; i++) l->levels[i] = *ld_chain_level(r, dept, i);
    return l;
}

static int ladder_same(const ld_ladder *a, const ld_ladder *b)
{
    if (a->n != b->n || a->dept_levels != b->dept_levels) return 0;
    for (int i = 0; i < a->n; i++)
        if (a->levels[i].terminal != b->levels[i].terminal ||
            a->levels[i].wait_ms != b->levels[i].wait_ms ||
            strcmp(a->levels[i].name, b->levels[i].name) != 0)
            return 0;
    return 1;
}

static void ladder_put(ld_ladder *l)
{
    if (l && --l->refs == 0) free(l);
}

int ld__ladder_init(ld_engine *e)
{
    const ld_rules *r = e->rules;
    e->ladders = calloc((size_t)r->ndepartments + 1, sizeof *e->ladders);
    if (!e->ladders) return LD_ENOMEM;
    for (int d = 0; d < r->ndepartments; d++)
        if (!(e->ladders[d] = ladder_build(r, d))) return LD_ENOMEM;
    return 0;
}

int ld__ladder_set_rules(ld_engine *e)
{
    const ld_rules *r = e->rules;
    for (int d = 0; d < r->ndepartments; d++) {
        ld_ladder *next = ladder_build(r, d);
        if (!next) return LD_ENOMEM; /* the old chain stays current: safe, only stale */
        if (ladder_same(next, e->ladders[d])) {
            free(next);
            continue;
        }
        ladder_put(e->ladders[d]);
        e->ladders[d] = next;
    }
    return 0;
}

void ld__ladder_fini(ld_engine *e)
{
    if (!e->ladders) return;
    for (int d = 0; d < e->rules->ndepartments; d++) ladder_put(e->ladders[d]);
    free(e->ladders);
    e->ladders = NULL;
}

void ld__ladder_take(ld_engine *e, ld_task *t)
{
    ld_ladder *l = e->ladders[t->dept];
    if (t->ladder == l) return;
    ld__ladder_drop(e, t);
    l->refs++;
    t->ladder = l;
}

void ld__ladder_drop(ld_engine *e, ld_task *t)
{
    (void)e;
    ladder_put(t->ladder);
    t->ladder = NULL;
}

int ld_task_chain_len(const ld_task *t)
{
    return t->ladder->n;
}

const ld_level *ld_task_level(const ld_task *t, int level)
{
    const ld_ladder *l = t->ladder;
    return &l->levels[level < 0 ? 0 : level >= l->n ? l->n - 1 : level];
}

/* ---- reminders ----------------------------------------------------------------- */

void ld__remind_plan(ld_engine *e, ld_task *t, const ld_dispatch_def *dd, uint64_t now)
{
    const ld_reminders *dr = &e->rules->departments[t->dept].reminders;
    const ld_reminders *src[LD_LEG_COUNT];
    int any = 0;
    for (int l = 0; l < LD_LEG_COUNT; l++) {
        src[l] = dd && (dd->reminders_given & (1u << l)) ? &dd->reminders : dr;
        any |= src[l]->n[l] != 0;
    }
    /* Most tasks have none: they get no block for them. */
    ld_task_more *m = any ? ld__task_more(e, t) : t->more;
    if (!m) return;
    for (int l = 0; l < LD_LEG_COUNT; l++) {
        m->rem.n[l] = src[l]->n[l];
        memcpy(m->rem.pct[l], src[l]->pct[l], sizeof m->rem.pct[l]);
        m->rem_from[l] = now;
        m->rem_sent[l] = 0;
    }
}

void ld__remind_window(ld_task *t, int leg, uint64_t from)
{
    if (!t->more) return;
    t->more->rem_from[leg] = from;
    t->more->rem_sent[leg] = 0;
}

/* remind_at is when reminder <i> of <leg> falls due in the current wait. */
static uint64_t remind_at(const ld_task *t, int leg, int i)
{
    uint64_t from = t->more->rem_from[leg], to = ld_task_due(t, leg);
    if (to <= from) return UINT64_MAX;
    return from + (to - from) * t->more->rem.pct[leg][i] / 100;
}

uint64_t ld__remind_next(const ld_task *t)
{
    uint64_t due = UINT64_MAX;
    const ld_task_more *m = t->more;
    for (int l = 0; m && l < LD_LEG_COUNT; l++) {
        if (m->rem_sent[l] >= m->rem.n[l] || !ld__engine_leg_pending(t, l)) continue;
        uint64_t at = remind_at(t, l, m->rem_sent[l]);
        if (at < due) due = at;
    }
    return due;
}

/* queue_reminder puts <t> in its holder's delivery list again, marked as a
 * reminder: the holder's next poll carries it. */
static void queue_reminder(ld_engine *e, ld_task *t, int leg, int pct)
{
    t->remind_leg = (uint8_t)(leg + 1);
    t->remind_pct = (uint8_t)pct;
    if (!ld_list_linked(&t->term_link)) {
        ld_list_append(&e->terms[t->terminal].tasks, &t->term_link);
        e->terms[t->terminal].held++;
    }
    t->delivery = LD_DELIVERY_NEW;
    if (e->hooks.wake) e->hooks.wake(e->hooks.ctx, t->terminal);
}

void ld__remind_due(ld_engine *e, ld_task *t, uint64_t now)
{
    const ld_rules *r = e->rules;
    ld_task_more *m = t->more;
    for (int l = 0; m && l < LD_LEG_COUNT; l++) {
        if (m->rem_sent[l] >= m->rem.n[l] || !ld__engine_leg_pending(t, l) ||
            ld_task_due(t, l) <= now)
            continue;
        int i = -1;
        while (m->rem_sent[l] < m->rem.n[l] && remind_at(t, l, m->rem_sent[l]) <= now)
            i = m->rem_sent[l]++;
        if (i < 0) continue;
        int pct = m->rem.pct[l][i];
        char left[24], text[256];
        ld_format_duration(ld_task_due(t, l) - now, left, sizeof left);
        snprintf(text, sizeof text, "%s/%s reminder to %s: %s due in %s (%d%% of the wait gone)",
                 t->inc->id, r->departments[t->dept].id, r->terminals[t->terminal].id,
                 ld_engine_leg_name(l), left, pct);
        e->stats.reminders++;
        queue_reminder(e, t, l, pct);
        ld__engine_history(e, t->inc, LINKD__V1__FEED_KIND__FEED_KIND_TASK_REMINDED, t, l);
        ld__engine_feed(e, LINKD__V1__FEED_KIND__FEED_KIND_TASK_REMINDED, t->inc, t, l, text);
    }
}

/* ---- sign-off ------------------------------------------------------------------- */

unsigned ld_incident_sign_missing(const ld_incident *inc)
{
    unsigned missing = 0;
    for (int i = 0; i < inc->ntasks; i++)
        if ((inc->sign_need & (1u << i)) && !ld_task_done(inc->tasks[i], LD_LEG_ACK))
            missing |= 1u << i;
    return missing;
}

void ld__sign_off_plan(ld_engine *e, ld_incident *inc, const ld_route *rt, uint64_t now)
{
    if (inc->sign_need || !rt->sign_off) return;
    for (int d = 0; d < rt->ndispatch; d++) {
        if (!(rt->sign_off & (1u << d))) continue;
        for (int i = 0; i < inc->ntasks; i++) {
            ld_task *t = inc->tasks[i];
            if (t->dept != rt->dispatch[d].dept) continue;
            inc->sign_need |= (uint16_t)(1u << i);
            if (rt->sign_off_ms && now + rt->sign_off_ms < ld_task_due(t, LD_LEG_ACK)) {
                ld__task_set_time(e, t, LD_TIME_DUE, LD_LEG_ACK, now + rt->sign_off_ms);
                ld__task_set_time(e, t, LD_TIME_BUDGET, LD_LEG_ACK, rt->sign_off_ms);
            }
        }
    }
}

void ld__sign_off_check(ld_engine *e, ld_incident *inc)
{
    if (!inc->sign_need) return;
    unsigned missing = ld_incident_sign_missing(inc);
    if (missing && inc->signed_at) {
        inc->signed_at = 0; /* a department withdrew (rejected): waiting again */
        return;
    }
    if (missing || inc->signed_at) return;
    const ld_rules *r = e->rules;
    char who[200] = "", text[300];
    size_t off = 0;
    for (int i = 0; i < inc->ntasks && off < sizeof who; i++)
        if (inc->sign_need & (1u << i)) {
            int w = snprintf(who + off, sizeof who - off, "%s%s", off ? ", " : "",
                             r->departments[inc->tasks[i]->dept].id);
            if (w > 0) off += (size_t)w;
        }
    inc->signed_at = ld_clock_now(e->clock);
    e->stats.signed_off++;
    snprintf(text, sizeof text, "%s acknowledged by every department that must sign: %s",
             inc->id, who);
    ld__engine_history(e, inc, LINKD__V1__FEED_KIND__FEED_KIND_INCIDENT_SIGNED_OFF, NULL, -1);
    ld__engine_feed(e, LINKD__V1__FEED_KIND__FEED_KIND_INCIDENT_SIGNED_OFF, inc, NULL, -1, text);
}

/* ---- records ---------------------------------------------------------------------- */

size_t ld__remind_pack(const ld_task *t, Linkd__V1__Reminder *rem,
                       uint32_t pct[][LD_MAX_REMINDERS], Linkd__V1__Reminder **ptr)
{
    size_t n = 0;
    const ld_task_more *tm = t->more;
    for (int l = 0; tm && l < LD_LEG_COUNT; l++) {
        if (!tm->rem.n[l]) continue;
        Linkd__V1__Reminder *m = &rem[n];
        linkd__v1__reminder__init(m);
        m->has_leg = m->has_sent = m->has_from_ms = 1;
        m->leg = (Linkd__V1__Leg)(l + 1);
        m->sent = tm->rem_sent[l];
        m->from_ms = (int64_t)tm->rem_from[l];
        for (int i = 0; i < tm->rem.n[l]; i++) pct[n][i] = tm->rem.pct[l][i];
        m->n_percent = tm->rem.n[l];
        m->percent = pct[n];
        ptr[n++] = m;
    }
    return n;
}

void ld__remind_restore(ld_engine *e, ld_task *t, const Linkd__V1__TaskRecord *tr)
{
    if (tr->n_reminders == 0) {
        /* A record from before reminders: the department's, from dispatch. */
        ld__remind_plan(e, t, NULL, t->dispatched_at);
        return;
    }
    ld_task_more *tm = ld__task_more(e, t);
    if (!tm) return;
    memset(&tm->rem, 0, sizeof tm->rem);
    for (size_t k = 0; k < tr->n_reminders; k++) {
        const Linkd__V1__Reminder *m = tr->reminders[k];
        int l = m->has_leg ? (int)m->leg - 1 : -1;
        if (l < 0 || l >= LD_LEG_COUNT) continue;
        int n = 0;
        for (size_t i = 0; i < m->n_percent && n < LD_MAX_REMINDERS; i++)
            if (m->percent[i] >= 1 && m->percent[i] <= 99 &&
                (n == 0 || m->percent[i] > tm->rem.pct[l][n - 1]))
                tm->rem.pct[l][n++] = (uint8_t)m->percent[i];
        tm->rem.n[l] = (uint8_t)n;
        tm->rem_sent[l] = (uint8_t)(m->sent < (uint32_t)n ? m->sent : (uint32_t)n);
        tm->rem_from[l] = m->has_from_ms ? (uint64_t)m->from_ms : t->dispatched_at;
    }
}

size_t ld__sign_off_pack(const ld_engine *e, const ld_incident *inc, char **names)
{
    size_t n = 0;
    for (int i = 0; i < inc->ntasks; i++)
        if (inc->sign_need & (1u << i))
            names[n++] = (char *)e->rules->departments[inc->tasks[i]->dept].id;
    return n;
}

void ld__sign_off_restore(const ld_engine *e, ld_incident *inc,
                          const Linkd__V1__IncidentRecord *rec)
{
    for (size_t k = 0; k < rec->n_sign_off; k++) {
        int dept = rec->sign_off[k] ? ld_rules_department(e->rules, rec->sign_off[k]) : -1;
        for (int i = 0; i < inc->ntasks; i++)
            if (inc->tasks[i]->dept == dept) inc->sign_need |= (uint16_t)(1u << i);
    }
    inc->signed_at = rec->has_signed_off_at_ms ? (uint64_t)rec->signed_off_at_ms : 0;
}
