/* roster.h: who gets a task first: the duty roster, drills and terminals
 * that stopped polling (roster.c). Engine-internal. */
#ifndef LD_ENGINE_ROSTER_H
#define LD_ENGINE_ROSTER_H

#include "engine/engine.h"

/* ld_incident_is_drill: the event was an exercise or a test. */
int ld_incident_is_drill(const ld_incident *inc);

/* ld__roster_first_holder returns the terminal that gets <t> at level 0 now:
 * a drill's drill terminal; else whoever the roster has on duty, or its
 * stand-in when that terminal is offline. -1 means nobody can take it (a
 * roster gap, an override to nobody, offline without a stand-in): the caller
 * escalates at once, with the reason written to <why>. */
int ld__roster_first_holder(ld_engine *e, const ld_task *t, char *why, size_t len);

/* ld__roster_terminal_offline moves every task <terminal> holds and has not
 * acknowledged, for departments with a roster: to the stand-in if it holds
 * level 0 and one is online, else one level up. Drills stay. */
void ld__roster_terminal_offline(ld_engine *e, int terminal);

#endif
