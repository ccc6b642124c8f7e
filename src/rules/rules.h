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
#define LD_MAX_NUM 4        /* numeric conditions per route */
#define LD_MAX_SHIFTS 16    /* shifts per roster */
#define LD_MAX_OVERRIDES 64 /* overrides per roster */
#define LD_MAX_REMINDERS 4 /* reminders per leg */
#define LD_SOURCE_KEY_ID 129 /* a source id (at most 128 bytes) and its NUL */

enum ld_kind { LD_KIND_ANY = 0, LD_KIND_CALL, LD_KIND_SENSOR, LD_KIND_PETITION, LD_KIND_COUNT };
/* The legs of a task, in the order of the wire's Leg values (minus one).
 * In time they run acknowledge, arrive, feedback, resolve. */
enum ld_leg { LD_LEG_ACK = 0, LD_LEG_ARRIVE, LD_LEG_RESOLVE, LD_LEG_FEEDBACK, LD_LEG_COUNT };

/* Area types: where a district is, which sets how long crews take to arrive
 * (police on scene in 5 minutes in the city, 10 in the suburbs). */
enum ld_area { LD_AREA_URBAN = 0, LD_AREA_SUBURBAN, LD_AREA_RURAL, LD_AREA_COUNT };

/* Event fields matched by name: their values are interned at load time. */
enum ld_strfield { LD_STR_DISTRICT = 0, LD_STR_GRID, LD_STR_OFFICE, LD_STR_COUNT };

/* Event fields matched by number. */
enum ld_numfield {
    LD_NUM_PEOPLE = 0,  /* Call110.people or Petition.petitioners */
    LD_NUM_VALUE,       /* SensorAlarm.value */
    LD_NUM_THRESHOLD,   /* SensorAlarm.threshold */
    LD_NUM_RATIO,       /* value / threshold (0 when the threshold is 0) */
    LD_NUM_OVER,        /* value - threshold */
    LD_NUM_REPEAT,      /* Petition.repeat_count */
    LD_NUM_COUNT
};
enum ld_numop { LD_OP_EQ = 0, LD_OP_NE, LD_OP_LT, LD_OP_LE, LD_OP_GT, LD_OP_GE, LD_OP_RANGE };

typedef struct ld_num_cond {
    uint8_t field;          /* enum ld_numfield */
    uint8_t op;             /* enum ld_numop */
    double a, b;            /* operand; RANGE: a <= x <= b */
} ld_num_cond;

/* A set of interned ids: ids[off .. off+n) of ld_rules.set_ids, sorted. */
typedef struct ld_idset {
    uint32_t off, n;
} ld_idset;

/* Reminders (escalation ladder): per leg, when to remind the holder, in
 * percent of the wait before the leg's deadline, ascending, each 1..99. */
typedef struct ld_reminders {
    uint8_t pct[LD_LEG_COUNT][LD_MAX_REMINDERS];
    uint8_t n[LD_LEG_COUNT];
} ld_reminders;

typedef struct ld_level {
    char name[32];          /* duty_officer, deputy, head, supervisor ... */
    int terminal;           /* index into ld_rules.terminals */
    uint64_t wait_ms;       /* time this level has on a missed leg before it moves up */
} ld_level;

/* A shift: who holds level 0 on some days, between two local times. */
typedef struct ld_shift {
    char name[32];
    uint8_t days;           /* bit per weekday, Monday 0; all set if not given */
    uint16_t from, to;      /* local minutes [from, to); to < from wraps midnight */
    int terminal;
} ld_shift;

/* An override: for a span of time, someone else (a swap, a stand-in), or
 * nobody (terminal -1: tasks escalate at once). */
typedef struct ld_override {
    uint64_t from_ms, to_ms;  /* [from, to), epoch ms */
    int terminal;
} ld_override;

/* A department's duty roster: level 0 is whoever is on duty now. */
typedef struct ld_roster {
    ld_shift shifts[LD_MAX_SHIFTS];
    int nshifts;
    ld_override overrides[LD_MAX_OVERRIDES];
    int noverrides;
    int stand_in;           /* takes level 0 when the one on duty is offline; -1 none */
    char where[160];
} ld_roster;

typedef struct ld_department {
    char id[32];            /* "fire": the users' word, used on the wire */
    char name[96];          /* readable name */
    ld_level levels[LD_MAX_LEVELS];
    int nlevels;            /* >= 1 */
    char where[160];        /* "departments.yaml:12:3" */
    int roster;             /* index into ld_rules.rosters, or -1 */
    int drill_terminal;     /* where exercise and test events go; -1: command's */
    ld_reminders reminders; /* for its tasks, unless the dispatch entry gives its own */
} ld_department;

typedef struct ld_terminal_def {
    char id[48];
    int dept;               /* index into ld_rules.departments */
    int drill;              /* marked for drills: gets exercise and test events only */
    int has_key;            /* terminal_keys lists it: it must send a signed hello */
    uint8_t pubkey[32];     /* its Ed25519 public key */
} ld_terminal_def;

/* A producer that must prove it is <id> (source_keys): its events are
 * accepted only on a connection that sent a valid signed hello. */
typedef struct ld_source_key {
    char id[LD_SOURCE_KEY_ID];
    uint8_t pubkey[32];
} ld_source_key;

typedef struct ld_dispatch_def {
    int dept;
    uint64_t leg_ms[LD_LEG_COUNT];  /* budget of each leg in the default area, from
                                     * dispatch; all > 0 (a rule without `arrive` gets
                                     * the resolve budget) */
    uint64_t area_ms[LD_AREA_COUNT][LD_LEG_COUNT];  /* the same, per area type */
    uint8_t workdays;       /* bit per leg: the budget is whole working days
                             * (area_ms / 1 day of them), counted on the calendar */
    uint8_t has_feedback;   /* the entry gives a feedback budget; without one the
                             * task has no feedback leg (its budget is resolve's) */
    uint8_t reminders_given; /* bit per leg: <reminders> replaces the department's */
    ld_reminders reminders;
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
    uint8_t statuses;       /* bit (1 << Status value); 0 = any */
    uint8_t areas;          /* bit (1 << ld_area); 0 = any */
    uint8_t days;           /* bit (1 << weekday, Monday 0); 0 = any */
    int8_t workday;         /* -1 any; 1 working days only; 0 rest days only */
    int8_t bypass;          /* -1 any; 1 bypass-level petitions only; 0 others */
    uint16_t from_min, to_min;  /* time of day [from, to) in local minutes; equal = any */
    ld_num_cond num[LD_MAX_NUM];
    int nnum;
    ld_idset sets[LD_STR_COUNT];  /* n == 0: any */
    ld_dispatch_def dispatch[LD_MAX_DISPATCH];
    int ndispatch;
    uint8_t sign_off;       /* bit per dispatch entry: all must acknowledge (multi-ack) */
    uint64_t sign_off_ms;   /* acknowledge within this, if less than the budget; 0 none */
} ld_route;

/* A merge rule: an event it matches joins an open incident of the same kind,
 * category and status opened within <window_ms>, within <distance_m> metres,
 * instead of opening its own (duplicate calls about one fire). */
typedef struct ld_merge_rule {
    char name[64];
    char where[160];        /* "rules.yaml:3:5" */
    ld_route match;         /* the conditions; its dispatch is unused */
    double distance_m;
    uint64_t window_ms;
} ld_merge_rule;

/* Correlation rules (rules: correlate:; docs/RULES.md, "Correlation"):
 * counting with distinct-by ("three smoke alarms from different sensors in
 * one building within 5 minutes") and sequences ("a crowd-density alarm,
 * then a dispute call in the same grid within 10 minutes") that upgrade an
 * incident. Read by correlate.c; run by src/engine/window.c. */
enum ld_corr_type { LD_CORR_COUNT = 1, LD_CORR_SEQUENCE };

/* Fields a window is keyed by (bit per field in ld_correlation.by). A
 * building is the location's district and address together: the sensors and
 * callers of one building are registered with its address. */
enum ld_corr_key {
    LD_CK_DISTRICT = 0, LD_CK_GRID, LD_CK_ADDRESS, LD_CK_OFFICE, LD_CK_CATEGORY, LD_CK_COUNT
};

/* What makes two events count twice: a different caller, sensor, petitioner
 * (each of Petition.petitioner_refs) or producer; EVENT: any two events. */
enum ld_corr_distinct {
    LD_DISTINCT_EVENT = 0, LD_DISTINCT_CALLER, LD_DISTINCT_SENSOR, LD_DISTINCT_PETITIONER,
    LD_DISTINCT_SOURCE, LD_DISTINCT_COUNT
};

#define LD_CORR_MAX_COUNT 32    /* `count` at most: a window holds this many values */
#define LD_CORR_MAX_WINDOW_MS (30ull * 24 * 3600 * 1000)
#define LD_CORR_LEADER_LEN 96

/* One correlation rule. <match> is what counts (count) or the first step
 * (sequence), <then> the second step. <upgrade> holds the priority the
 * incident is raised to (0: unchanged) and the departments added, as a
 * route's dispatch; its name and where are the rule's. */
typedef struct ld_correlation {
    int type;               /* enum ld_corr_type */
    uint8_t by;             /* bit per enum ld_corr_key */
    uint8_t distinct;       /* enum ld_corr_distinct */
    uint32_t count;         /* count: fires at this many distinct values */
    uint64_t window_ms;
    uint64_t id_hash;       /* of the name: windows are keyed by it, so they outlive a reload */
    char leader[LD_CORR_LEADER_LEN]; /* the leader named on the tasks it adds; "" none */
    ld_route match, then, upgrade;
} ld_correlation;

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
    ld_source_key *sources; /* source_keys, with their index in source_by_id */
    int nsources;
    ld_map source_by_id;    /* id -> ld_source_key* */

    /* Interned values of district, grid and office names: one table for all. */
    ld_map str_ids;         /* value -> (void *)(id + 1); keys are strs[] */
    char **strs;            /* strs[id]; strs[0] is unused */
    int nstrs;
    uint32_t *set_ids;      /* the routes' id sets (ld_idset) */
    uint8_t *area_of;       /* per interned id: its ld_area */
    int default_area;       /* for districts the areas table does not list */
    unsigned str_used;      /* bit per ld_strfield some route or table tests */

    /* Priorities whose events are dispatched from memory and spooled to a local
     * file while Redis is away (life_safety: priorities): bit (1 << Priority). */
    uint32_t life_safety;

    /* The calendar: time zone, holidays and make-up working days. */
    int32_t utc_offset_s;   /* local time = UTC + this; default +08:00 */
    int32_t *holidays, *makeup;  /* local day numbers (days since 1970-01-01), sorted */
    int nholidays, nmakeup;

    struct ld_route_index *index;  /* candidates per kind, category and district */

    ld_roster *rosters;
    int nrosters;

    ld_merge_rule *merges;
    int nmerges;

    ld_correlation *correlations;
    int ncorrelations;
} ld_rules;

/* What matching looks at, read from an event once (ld_rules_input). Enum
 * fields are wire values; names are ids interned by the rule set (0 for a
 * value no rule names), so a zeroed input is an event with no fields. */
typedef struct ld_match_input {
    int kind;
    int category;           /* CallCategory, SensorKind or PetitionIssue value */
    int priority;           /* the event's Priority; 0 if none */
    int status;             /* Status; 0 if none */
    uint32_t people;        /* Call110.people or Petition.petitioners; 0 if unknown */
    int str[LD_STR_COUNT];  /* interned district, grid, target office; 0 unknown */
    int area;               /* ld_area of the district */
    int has_value;          /* a sensor alarm: value and threshold are set */
    double num[LD_NUM_COUNT];
    int bypass;             /* a bypass-level petition */
    int minute;             /* local minute of the day, 0..1439 */
    int weekday;            /* local day of the week, Monday 0 .. Sunday 6 */
    int workday;            /* the local day is a working day (calendar) */
} ld_match_input;

struct Linkd__V1__Envelope;

/* ld_rules_input fills <in> from event <ev> (validated) at domain time
 * <now_ms>. Names are looked up once each in the rule set's table; nothing is
 * allocated. Loop thread. */
void ld_rules_input(const ld_rules *r, const struct Linkd__V1__Envelope *ev, uint64_t now_ms,
                    ld_match_input *in);

/* ld_rules_input_init sets <in> to an event with no fields at
 * <now_ms>: for tests and tools that fill the fields themselves. */
void ld_rules_input_init(const ld_rules *r, uint64_t now_ms, ld_match_input *in);

/* ld_rules_intern returns the id (> 0) of a district, grid or office name, or
 * 0 if no rule names it. */
int ld_rules_intern(const ld_rules *r, const char *value);

/* ld_rules_deadline returns when leg <leg> of dispatch entry <d> falls due for
 * an incident opened at <now_ms> in area <area>: now plus the budget, or, for
 * a budget in working days, the same time of day that many working days later
 * (weekends and holidays skipped, make-up days counted). */
uint64_t ld_rules_deadline(const ld_rules *r, const ld_dispatch_def *d, int leg, int area,
                           uint64_t now_ms);

/* ld_rules_parse_time reads a local date and time on the rule set's calendar,
 * "2026-11-23 20:15", "2026-11-23T20:15:30" or a date alone (midnight),
 * into epoch ms. Returns 0, or LD_EINVAL. */
int ld_rules_parse_time(const ld_rules *r, const char *s, uint64_t *ms);

/* ld_rules_route_matches says whether the conditions of <rt> (kind and
 * category included) hold for <in>. No allocation. */
int ld_rules_route_matches(const ld_rules *r, const ld_route *rt, const ld_match_input *in);

/* ld_rules_on_duty returns the terminal that holds level 0 of <dept> at
 * <now_ms>: the override in force, else the shift, else (no roster) level
 * 0's terminal. -1 if nobody is on duty (a gap, or an override to nobody). */
int ld_rules_on_duty(const ld_rules *r, int dept, uint64_t now_ms);

/* ld_rules_is_workday says whether local day <day> (days since 1970-01-01)
 * is a working day on the rule set's calendar. */
int ld_rules_is_workday(const ld_rules *r, int64_t day);

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
 * no allocation, no string compare: only the routes that can match the
 * event's kind, category and district are tested (the index). */
size_t ld_rules_match(const ld_rules *r, const ld_match_input *in,
                      const ld_route **out, size_t max);

/* ld_parse_duration parses "45s", "5m", "2h", "15d", "1h30m" or "250ms" into
 * milliseconds. Returns 0, or LD_EINVAL. */
int ld_parse_duration(const char *s, uint64_t *ms);

/* ld_format_duration writes a short readable form ("5m", "1h30m", "15d"). */
void ld_format_duration(uint64_t ms, char *buf, size_t len);

#endif
