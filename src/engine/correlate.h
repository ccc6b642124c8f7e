/* correlate.h: duplicate-call merging (correlate.c). Engine-internal. */
#ifndef LD_ENGINE_CORRELATE_H
#define LD_ENGINE_CORRELATE_H

#include "engine/engine.h"

#define LD_MERGED_MAX 32        /* merged events kept per incident; more open their own */
#define LD_MERGED_EVENT_MAX 2048 /* a larger event opens its own incident */

/* One event that joined an incident, kept whole so the merge can be undone. */
typedef struct ld_merged {
    struct ld_merged *next;
    char stream_id[48];
    char event_id[LD_MAX_ID_LEN + 1];
    char source_id[LD_MAX_ID_LEN + 1];
    char rule[96];
    uint64_t at;
    uint32_t distance_m;
    uint16_t len;
    uint8_t event[LD_MERGED_EVENT_MAX];  /* serialized Envelope */
} ld_merged;

int ld__correlate_init(ld_engine *e);
void ld__correlate_fini(ld_engine *e);

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

/* ld__correlate_free frees <inc>'s merged events. */
void ld__correlate_free(ld_engine *e, ld_incident *inc);

#endif
