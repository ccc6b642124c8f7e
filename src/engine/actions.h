/* actions.h: what a supervisor can do to an open incident, and read access
 * for the HTTP API and the board.
 *
 * Each action is a state change like a terminal's update: it goes into the
 * incident's history with a note saying who acted and why (kept in the
 * incident record in Redis), and onto the feed with FeedEvent.actor and
 * .reason set. The checks come first: an action that fails changes nothing.
 * Errors: LD_EINVAL (a bad argument; <err> names the field), LD_ENOENT (no
 * such department, terminal or task), LD_ESTATE (the action no longer
 * applies: the leg is done, the task is at the top of its chain, ...), with
 * a readable reason in <err>. Loop thread only. */
#ifndef LD_ENGINE_ACTIONS_H
#define LD_ENGINE_ACTIONS_H

#include <stddef.h>
#include <stdint.h>

#include "engine/engine.h"

#define LD_NOTES_MAX 32          /* supervisors' notes kept per incident */
#define LD_NOTE_LEN 240

/* Who acted, and why. Both required; cut to fit the note. */
typedef struct ld_actor {
    const char *who;
    const char *why;
} ld_actor;

/* ld_action_reassign hands task <t> to department <dept> (its duty terminal,
 * or <terminal> if that is one of the department's terminals), or, with
 * <dept> < 0, to <terminal> of the task's own chain or any terminal of its
 * department. A move to another department starts the task again there
 * (dispatched, level 0, legs not yet done); the deadlines stand, and a leg
 * already late gets the new holder's wait. */
int ld_action_reassign(ld_engine *e, ld_task *t, int dept, int terminal, const ld_actor *a,
                       char *err, size_t len);
/* ld_action_escalate moves <t> one level up now, on its earliest pending leg. */
int ld_action_escalate(ld_engine *e, ld_task *t, const ld_actor *a, char *err, size_t len);
/* ld_action_extend moves the deadline of <leg> (enum ld_leg) to <by_ms> later
 * than it is, or than now if it has passed. At most 30 days. */
int ld_action_extend(ld_engine *e, ld_task *t, int leg, uint64_t by_ms, const ld_actor *a,
                     char *err, size_t len);
/* ld_action_close closes <inc> and every open task with <disposition>.
 * The incident is freed after its record is written: do not use it after. */
int ld_action_close(ld_engine *e, ld_incident *inc, const char *disposition, const ld_actor *a,
                    char *err, size_t len);

/* ld_action_merge merges incident <from> into <into>: the same emergency
 * reported twice. <from>'s open tasks for a department <into> has an open
 * task for close as duplicates ("duplicate: merged into <into>"); the
 * others move to <into> as they are (state, level, holder, deadlines; their
 * task id becomes <into>/<department>, delivered to the holder again), in
 * place of a resolved task of <into> for the department if there is one. Its
 * events count as <into>'s: its merged duplicates move over, and its own
 * event is kept as a merged event naming <from> (the event itself stays in
 * ld:events, see ld_action_split). <into> takes the higher priority of the
 * two. <from> then closes, "merged into <into>"; both incidents get the
 * note, the history entry and the feed event (INCIDENT_MERGED on <into>,
 * INCIDENT_CLOSED on <from>). LD_ESTATE if <from> is <into>, either is
 * closed, their statuses differ (an exercise never joins a real incident),
 * or the result would not fit (tasks, merged events, notes). */
int ld_action_merge(ld_engine *e, ld_incident *into, ld_incident *from, const ld_actor *a,
                    char *err, size_t len);
/* ld_action_split takes event <event_id> (an event id or stream id) out of
 * <inc> into an incident of its own, planned by the rules as if it had just
 * arrived (*out). It is the undo of a merge, by the rules (a duplicate
 * call) or by a supervisor (ld_action_merge). A supervisor-merged incident's
 * event is not kept in memory: ld_action_split_source gives its stream id,
 * and the caller passes the Envelope read from ld:events as <event>; without
 * it, LD_EUNAVAIL. The new incident's id is "I<stream id>", or the next
 * generation of the merged incident's id ("I<sid>.2"). LD_ENOENT if <inc>
 * has no such merged event. */
int ld_action_split(ld_engine *e, ld_incident *inc, const char *event_id, const uint8_t *event,
                    size_t event_len, const ld_actor *a, ld_incident **out, char *err,
                    size_t len);
/* ld_action_split_source returns the stream id whose Envelope must be read
 * from ld:events to split <event_id> off <inc>, or NULL if <inc> keeps the
 * event itself or has no such event. */
const char *ld_action_split_source(const ld_incident *inc, const char *event_id);

/* ld_engine_task_find returns the open task of <inc> for <dept>, or NULL. */
ld_task *ld_engine_task_of(const ld_incident *inc, int dept);
/* ld_engine_foreach_open calls fn for every open incident, in no order. */
void ld_engine_foreach_open(const ld_engine *e, void (*fn)(void *arg, const ld_incident *inc),
                            void *arg);

/* Notes, used by the engine: the text of note <idx> (1-based; NULL for 0 or
 * unknown), a note restored from a record (returns its index or 0), and
 * freeing them with their incident. */
const char *ld_notes_text(const ld_incident *inc, unsigned idx);
uint16_t ld_notes_restore(ld_incident *inc, uint64_t at, const char *text);
void ld_notes_free(ld_incident *inc);

/* The engine's moves that actions.c builds on (engine.c). */
void ld__engine_history(ld_engine *e, ld_incident *inc, int kind, const ld_task *t, int leg);
void ld__engine_feed(ld_engine *e, int kind, ld_incident *inc, const ld_task *t, int leg,
                     const char *text);
void ld__engine_escalate(ld_engine *e, ld_task *t, int leg, const char *why);
void ld__engine_hand_to(ld_engine *e, ld_task *t, int terminal);
/* ld__engine_task_room makes room for <more> tasks in <inc> (0, LD_EFULL or
 * LD_ENOMEM); ld__engine_append_task then appends <t>, which cannot fail. */
int ld__engine_task_room(ld_engine *e, ld_incident *inc, int more);
void ld__engine_append_task(ld_engine *e, ld_incident *inc, ld_task *t);
/* ld__engine_replace_task puts <n> in the place of <inc>'s task <old>, which
 * is freed. */
void ld__engine_replace_task(ld_engine *e, ld_incident *inc, ld_task *old, ld_task *n);
/* ld__engine_set_task gives <t> department <dept> and state <state>, keeping
 * ld_engine.tasks_by; every change of either after dispatch goes through it. */
void ld__engine_set_task(ld_engine *e, ld_task *t, int dept, int state);
/* ld__engine_set_level gives <t> chain level <level> and the legs overdue at
 * the top <overdue_top> (a bit per leg), keeping ld_engine.escalated_by and
 * overdue_by; every change of either after dispatch goes through it. */
void ld__engine_set_level(ld_engine *e, ld_task *t, int level, unsigned overdue_top);
void ld__engine_arm(ld_engine *e, ld_task *t);
int ld__engine_leg_pending(const ld_task *t, int leg);
void ld__engine_close_incident(ld_engine *e, ld_incident *inc, const char *text);
/* ld__engine_raise_priority makes <inc> <priority> if that is graver than
 * what it has (a smaller Priority value, or it has none) and sends every
 * unresolved task its holder was given before once more, flagged
 * priority_raised: an acknowledged one as a notice its receipt ends.
 * Returns whether it raised. */
int ld__engine_raise_priority(ld_engine *e, ld_incident *inc, int priority);

/* ld__engine_add_task adds a task of dispatch entry <d> of <rt> to open
 * incident <inc>, legs due from <now>; ld__engine_dispatch hands it to its
 * holder and publishes it (upgrade.c sets the leader in between). */
ld_task *ld__engine_add_task(ld_engine *e, ld_incident *inc, const ld_dispatch_def *d,
                             const ld_route *rt, uint64_t now);
void ld__engine_dispatch(ld_engine *e, ld_task *t);
/* ld__engine_withdraw closes open task <t> with <disposition> as moved
 * elsewhere (TASK_REASSIGNED with <text>); its incident closes if it was the
 * last open task. */
void ld__engine_withdraw(ld_engine *e, ld_task *t, const char *disposition, const char *text);
/* ld__task_set_text sets text <which> (enum ld_task_text) of <t> to <s>, cut
 * to its length; NULL or "" clears it. ld__task_printf formats it. 0, or
 * LD_ENOMEM with the texts as they were. */
int ld__task_set_text(ld_engine *e, ld_task *t, int which, const char *s);
__attribute__((format(printf, 4, 5))) int ld__task_printf(ld_engine *e, ld_task *t, int which,
                                                          const char *fmt, ...);
/* ld__task_copied gives <n>, a byte copy of another task, references of its
 * own to the strings it shares with that task (its texts, if out of memory,
 * are left empty). */
void ld__task_copied(ld_engine *e, ld_task *n);

#endif
