/* ladder.h: escalation ladders (ladder.c): the chain each task climbs, kept
 * across reloads; reminders before a deadline; multi-acknowledgement
 * (sign-off). Engine-internal: called by engine.c on the loop thread. */
#ifndef LD_ENGINE_LADDER_H
#define LD_ENGINE_LADDER_H

#include "engine/engine.h"

/* The current rules' chains: built at init, rebuilt on a reload (a chain
 * that did not change keeps its ladder). Returns 0 or LD_ENOMEM. */
int ld__ladder_init(ld_engine *e);
int ld__ladder_set_rules(ld_engine *e);
void ld__ladder_fini(ld_engine *e);

/* ld__ladder_take puts <t> on its department's current chain (dispatch,
 * restore, a supervisor's reassignment); ld__ladder_drop takes it off,
 * freeing a retired ladder nobody climbs any more. */
void ld__ladder_take(ld_engine *e, ld_task *t);
void ld__ladder_drop(ld_engine *e, ld_task *t);

/* ld__remind_plan gives <t> its reminders: dispatch entry <dd>'s for the
 * legs it names, else its department's; every wait starts at <now>. */
void ld__remind_plan(ld_engine *e, ld_task *t, const ld_dispatch_def *dd, uint64_t now);

/* ld__remind_window restarts the reminders of <leg>: its wait now runs
 * from <from> to the leg's (new) deadline. */
void ld__remind_window(ld_task *t, int leg, uint64_t from);

/* ld__remind_next is when <t>'s next reminder falls due; UINT64_MAX if none. */
uint64_t ld__remind_next(const ld_task *t);

/* ld__remind_due sends <t>'s holder the reminders due at <now> (of a leg
 * not yet late: the latest share only, if several passed): a feed event, a
 * history entry, and the task queued for the holder marked as a reminder. */
void ld__remind_due(ld_engine *e, ld_task *t, uint64_t now);

/* ld__sign_off_plan marks the tasks of <inc> whose departments route <rt>
 * lists under sign_off, and caps their acknowledge deadlines at <now> plus
 * its `within`. First route with a sign_off wins. Before dispatch. */
void ld__sign_off_plan(ld_engine *e, ld_incident *inc, const ld_route *rt, uint64_t now);

/* ld__sign_off_check records the sign-off once every listed department has
 * acknowledged (INCIDENT_SIGNED_OFF), and forgets it if one withdraws (a
 * rejection). Call after any change to an acknowledgement. */
void ld__sign_off_check(ld_engine *e, ld_incident *inc);

/* Records (linkd.v1.IncidentRecord): a task's reminders into <rem> (one per
 * leg that has any; <pct> and <ptr> as many), and back; the sign-off's
 * departments into <names> (LD_MAX_TASKS), and back. Restoring a task
 * without reminders in its record gives it its department's. */
size_t ld__remind_pack(const ld_task *t, Linkd__V1__Reminder *rem,
                       uint32_t pct[][LD_MAX_REMINDERS], Linkd__V1__Reminder **ptr);
void ld__remind_restore(ld_engine *e, ld_task *t, const Linkd__V1__TaskRecord *tr);
size_t ld__sign_off_pack(const ld_engine *e, const ld_incident *inc, char **names);
void ld__sign_off_restore(const ld_engine *e, ld_incident *inc,
                          const Linkd__V1__IncidentRecord *rec);

#endif
