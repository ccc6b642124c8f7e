/* rules.h: the rule set: departments, terminals, escalation chains, routes.
 *
 * ld_rules_load() reads every rules/<name>.yaml file of a directory, checks it
 * whole, and compiles it into the read-only structure below: names are
 * interned into indexes, enum names into their wire values, categories into
 * bitmasks, so matching an event does no string compare and no allocation.
 * A loaded set is never modified; a reload builds a new one beside it and
 * the daemon swaps one pointer.
 *
 * File format and semantics: docs/RULES.md. */
#ifndef LD_RULES_RULES_H
#define LD_RULES_RULES_H

#include <stddef.h>
#include <stdint.h>

#include "core/diag.h"
#include "core/map.h"

#define LD_MAX_LEVELS 8     /* per department chain */
#define LD_MAX_DISPATCH 8   /* departments per route */

enum ld_kind { LD_KIND_ANY = 0, LD_KIND_CALL, LD_KIND_SENSOR, LD_KIND_PETITION, LD_KIND_COUNT };
enum ld_leg { LD_LEG_ACK = 0, LD_LEG_ARRIVE, LD_LEG_RESOLVE, LD_LEG_COUNT };

typedef struct ld_level {
    char name[32];          /* duty_officer, deputy, head, supervisor ... */
    int terminal;           /* index into ld_rules.terminals */
    uint64_t wait_ms;       /* time this level has on a missed leg before it moves up */
} ld_level;

typedef struct ld_department {
    char id[32];            /* "fire": the users' word, used on the wire */
    char name[96];          /* readable name */
    ld_level levels[LD_MAX_LEVELS];
    int nlevels;            /* >= 1 */
    char where[160];        /* "departments.yaml:12:3" */
} ld_department;

typedef struct ld_terminal_def {
    char id[48];
    int dept;               /* index into ld_rules.departments */
} ld_terminal_def;

typedef struct ld_dispatch_def {
    int dept;
    uint64_t leg_ms[LD_LEG_COUNT];  /* budget of each leg, from dispatch; all > 0
                                     * (a rule without `arrive` gets the resolve budget) */
} ld_dispatch_def;

typedef struct ld_route {
    char name[64];
    char where[160];        /* "routes.yaml:14:5"; cited by every task it makes */
    int kind;               /* enum ld_kind; LD_KIND_ANY matches all */
    uint64_t categories;    /* bit (1 << wire enum value); 0 = any */
    uint32_t priorities;    /* bit (1 << Priority value) of the event; 0 = any */
    int priority;           /* Priority given to the incident; 0 = keep the event's */
    int cont;               /* continue matching after this route */
    uint32_t min_people;    /* match only if the event's people >= this; 0 = any */
    ld_dispatch_def dispatch[LD_MAX_DISPATCH];
    int ndispatch;
} ld_route;

typedef struct ld_rules {
    ld_department *departments;
    int ndepartments;
    int command;            /* index of the 'command' department: top of every chain */
    ld_terminal_def *terminals;
    int nterminals;
    ld_route *routes;
    int nroutes;
    char version[17];       /* hex digest of the files' bytes */
    char dir[256];
    ld_map dept_by_id;      /* id -> ld_department*; keys are the ids above */
    ld_map term_by_id;      /* id -> ld_terminal_def* */
} ld_rules;

/* What matching looks at. Categories and priorities are wire enum values. */
typedef struct ld_match_input {
    int kind;
    int category;           /* CallCategory, SensorKind or PetitionIssue value */
    int priority;           /* the event's Priority; 0 if none */
    uint32_t people;        /* Call110.people or Petition.petitioners; 0 if unknown */
} ld_match_input;

/* ld_rules_load reads every <dir>/<name>.yaml, adds every problem to <diag> (with
 * file:line:col) and returns 0 with *out set, or LD_ERULES (or LD_ENOENT for
 * a missing directory) with *out NULL. The caller owns *out. */
int ld_rules_load(ld_rules **out, const char *dir, ld_diag *diag);
void ld_rules_free(ld_rules *r);

/* Returns the index, or -1. */
int ld_rules_department(const ld_rules *r, const char *id);
int ld_rules_terminal(const ld_rules *r, const char *id);

/* ld_rules_match stores in out[] the routes <in> takes, in order: the first
 * match wins unless it says continue. Returns how many (<= max). Loop thread;
 * no allocation. */
size_t ld_rules_match(const ld_rules *r, const ld_match_input *in,
                      const ld_route **out, size_t max);

/* ld_parse_duration parses "45s", "5m", "2h", "15d", "1h30m" or "250ms" into
 * milliseconds. Returns 0, or LD_EINVAL. */
int ld_parse_duration(const char *s, uint64_t *ms);

/* ld_format_duration writes a short readable form ("5m", "1h30m", "15d"). */
void ld_format_duration(uint64_t ms, char *buf, size_t len);

#endif
