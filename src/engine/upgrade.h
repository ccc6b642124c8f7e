/* upgrade.h: correlation rules in the engine (upgrade.c). Engine-internal,
 * but for ld_incident_upgraded_by. */
#ifndef LD_ENGINE_UPGRADE_H
#define LD_ENGINE_UPGRADE_H

#include "engine/engine.h"

int ld__upgrade_init(ld_engine *e);
void ld__upgrade_fini(ld_engine *e);

/* ld__window_observe feeds event <ev> (read as <in>), which opened or joined
 * <inc> at domain time <now>, to every correlation rule it matches, and
 * upgrades the incident a rule picks when it fires. An event the windows
 * were rebuilt from (ld_engine_rewind, stream id up to rewound_*) is not
 * counted twice. */
void ld__window_observe(ld_engine *e, const Linkd__V1__Envelope *ev, const ld_match_input *in,
                        const char *stream_id, ld_incident *inc, uint64_t now);

/* ld__engine_leader returns the engine's copy of leader name <name> (NULL
 * for none, or when too many distinct names were seen). */
const char *ld__engine_leader(ld_engine *e, const char *name);

/* ld_incident_upgraded_by says whether correlation rule <rule> (its name)
 * upgraded <inc>, as its history records. */
int ld_incident_upgraded_by(const ld_incident *inc, const char *rule);

#endif
