/* roster.c: who gets a task first.
 *
 * Level 0 of a department is whoever its roster has on duty now (shifts by
 * local time, overrides for swaps and stand-ins), or its first level's
 * terminal when it has no roster. A terminal that stopped polling gets
 * nothing new: its tasks go to the roster's stand-in, or up the chain at
 * once, rather than wait out the acknowledge deadline. Exercise and test
 * events reach only drill terminals and never climb to real people. */
#include <stdio.h>

#include "engine/actions.h"
#include "engine/roster.h"

#define T_ACKNOWLEDGED LINKD__V1__TASK_STATE__TASK_STATE_ACKNOWLEDGED

int ld_incident_is_drill(const ld_incident *inc)
{
    return inc->status == LINKD__V1__STATUS__STATUS_EXERCISE ||
           inc->status == LINKD__V1__STATUS__STATUS_TEST;
}

/* The drill terminal for <dept>: its own, else command's; -1 if neither has
 * one (then drills go where real events go, marked as drills). */
static int drill_terminal(const ld_rules *r, int dept)
{
    int t = r->departments[dept].drill_terminal;
    return t >= 0 ? t : r->departments[r->command].drill_terminal;
}

static int offline(const ld_engine *e, int terminal)
{
    return e->offline && terminal >= 0 && terminal < e->nterms && e->offline[terminal];
}

int ld__roster_first_holder(ld_engine *e, const ld_task *t, char *why, size_t len)
{
    const ld_rules *r = e->rules;
    if (ld_incident_is_drill(t->inc)) {
        int d = drill_terminal(r, t->dept);
        if (d >= 0) return d;
    }
    int term = ld_rules_on_duty(r, t->dept, ld_clock_now(e->clock));
    const ld_department *dept = &r->departments[t->dept];
    if (term < 0) {
        snprintf(why, len, "nobody on duty for %s", dept->id);
        return -1;
    }
    /* Rerouting around offline terminals is part of a roster: a department
     * without one keeps its tasks at level 0 until the terminal is back. */
    if (!offline(e, term) || dept->roster < 0) return term;
    int stand_in = dept->roster >= 0 ? r->rosters[dept->roster].stand_in : -1;
    if (stand_in >= 0 && stand_in != term && !offline(e, stand_in)) return stand_in;
    snprintf(why, len, "%s is offline%s", r->terminals[term].id,
             stand_in >= 0 ? " and so is its stand-in" : "");
    return -1;
}

void ld__roster_terminal_offline(ld_engine *e, int terminal)
{
    const ld_rules *r = e->rules;
    ld_task *move[256];
    size_t n = 0;
    const ld_list *head = &e->terms[terminal].tasks;
    for (const ld_list *l = head->next; l != head && n < sizeof move / sizeof move[0]; l = l->next) {
        ld_task *t = ld_container_of(l, ld_task, term_link);
        if (t->state < T_ACKNOWLEDGED && t->terminal == terminal &&
            !ld_incident_is_drill(t->inc) && r->departments[t->dept].roster >= 0)
            move[n++] = t;
    }
    for (size_t i = 0; i < n; i++) {
        ld_task *t = move[i];
        const ld_department *dept = &r->departments[t->dept];
        int stand_in = dept->roster >= 0 ? r->rosters[dept->roster].stand_in : -1;
        char why[128];
        e->stats.offline_moves++;
        if (t->level == 0 && stand_in >= 0 && stand_in != terminal && !offline(e, stand_in)) {
            ld__task_printf(e, t, LD_TEXT_REASON, "%s offline: stand-in %s",
                            r->terminals[terminal].id, r->terminals[stand_in].id);
            ld__engine_hand_to(e, t, stand_in);
            ld__engine_history(e, t->inc, LINKD__V1__FEED_KIND__FEED_KIND_TASK_REASSIGNED, t, -1);
            snprintf(why, sizeof why, "%s/%s reassigned to stand-in %s: %s is offline",
                     t->inc->id, dept->id, r->terminals[stand_in].id, r->terminals[terminal].id);
            ld__engine_feed(e, LINKD__V1__FEED_KIND__FEED_KIND_TASK_REASSIGNED, t->inc, t, -1,
                            why);
            continue;
        }
        snprintf(why, sizeof why, "%s offline", r->terminals[terminal].id);
        ld__engine_escalate(e, t, LD_LEG_ACK, why);
    }
}
