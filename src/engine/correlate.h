/* correlate.h: duplicate-call merging (correlate.c). Engine-internal. */
#ifndef LD_ENGINE_CORRELATE_H
#define LD_ENGINE_CORRELATE_H

#include "engine/engine.h"

#define LD_MERGED_MAX 32        /* merged events kept per incident; more open their own */
#define LD_MERGED_EVENT_MAX 2048 /* a larger event opens its own incident */

/* One event that joined an incident, kept whole so the merge can be undone. */
typedef struct ld_merged {
    struct ld_merged *next;
    ld_incident *holder;        /* the incident it is merged into */
    char stream_id[48];
    char event_id[LD_MAX_ID_LEN + 1];
    char source_id[LD_MAX_ID_LEN + 1];
    char rule[96];
    char incident_id[LD_INCIDENT_ID_LEN]; /* a whole incident a supervisor merged: its id;
                                           * its event is not kept (len 0) */
    uint64_t moved;             /* ... and the departments (bit per index) whose tasks moved */
    uint64_t at;
    uint32_t distance_m;
    uint16_t len;
    uint8_t event[LD_MERGED_EVENT_MAX];  /* serialized Envelope */
} ld_merged;

int ld__correlate_init(ld_engine *e);
void ld__correlate_fini(ld_engine *e);
/* ld__correlate_tidy moves on a growth of the merged events' index (ld_index_tidy). */
void ld__correlate_tidy(ld_engine *e, size_t slots);

/* ld__correlate_find returns the open incident <ev> (matched as <in>) should
 * join under the rule set's merge rules, or NULL; the rule and the distance
 * go to *rule and *metres. */
ld_incident *ld__correlate_find(ld_engine *e, const Linkd__V1__Envelope *ev,
                                const ld_match_input *in, uint64_t now,
                                const ld_merge_rule **rule, double *metres);

/* ld__correlate_join records <ev> (stream id <stream_id>) as merged into
 * <inc>. 0, or LD_ENOMEM, LD_EFULL or LD_ETOOBIG when it cannot be kept (the caller
 * opens a new incident instead). */
int ld__correlate_join(ld_engine *e, ld_incident *inc, const Linkd__V1__Envelope *ev,
                       const char *stream_id, const ld_merge_rule *rule, double metres,
                       uint64_t now);

/* ld__correlate_remember notes a new incident as a candidate for merging. */
void ld__correlate_remember(ld_engine *e, const ld_incident *inc);

/* ld__correlate_has says whether <inc> merged stream id <stream_id> already
 * (a replay after a restart). */
int ld__correlate_has(const ld_incident *inc, const char *stream_id);

/* ld__correlate_restore brings back the merged events of a record and
 * makes the incident a merge candidate again (after a restart). */
void ld__correlate_restore(ld_engine *e, ld_incident *inc,
                           const Linkd__V1__IncidentRecord *rec);

/* ld__engine_open_as is ld_engine_open_at under incident id <id> (engine.c):
 * an event split off again after a supervisor merged its incident opens
 * under a new id, as its first id is taken by the closed incident. */
int ld__engine_open_as(ld_engine *e, const Linkd__V1__Envelope *ev, const char *stream_id,
                       const char *id, uint64_t now, ld_incident **out);

/* ld__correlate_split takes merged event <event_id> (or stream id) out of
 * <inc> and opens it as an incident of its own (*out), merging off. An
 * entry that keeps no event (a whole incident a supervisor merged) needs
 * its Envelope in <event>/<event_len> (read back from ld:events): without
 * it, LD_EUNAVAIL. <who> and <why> may be NULL. LD_ENOENT if <inc> has no
 * such event; other errors with <err> set. */
int ld__correlate_split(ld_engine *e, ld_incident *inc, const char *event_id,
                        const uint8_t *event, size_t event_len, const char *who,
                        const char *why, ld_incident **out, char *err, size_t len);

/* ld__correlate_find_merged returns <inc>'s merged event <event_id> (or
 * stream id), or NULL. */
ld_merged *ld__correlate_find_merged(const ld_incident *inc, const char *event_id);

/* ld__correlate_absorb moves <from>'s merged events to the end of <into>'s
 * and appends <own>, the entry for <from>'s own event. The caller checked
 * that they fit. */
void ld__correlate_absorb(ld_engine *e, ld_incident *into, ld_incident *from, ld_merged *own);

/* ld__correlate_entry returns a zeroed merged-event entry from the pool, or
 * NULL; ld__correlate_drop gives one back. */
ld_merged *ld__correlate_entry(ld_engine *e);
void ld__correlate_drop(ld_engine *e, ld_merged *m);

/* ld__correlate_free frees <inc>'s merged events. */
void ld__correlate_free(ld_engine *e, ld_incident *inc);

#endif
