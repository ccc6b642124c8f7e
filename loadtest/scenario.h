/* scenario.h: linkload's scenarios: what traffic a run offers, and how the
 * simulated on-duty terminals behave.
 *
 * A scenario is a YAML file (loadtest/scenarios/, format in
 * loadtest/scenarios/README.md): the mix of event kinds and categories,
 * where events happen, a list of phases with their rates (steps and linear
 * ramps), and terminal behaviour (delay distributions, no-shows, offline
 * periods), per department where it differs. Without a file, `linkload run`
 * builds a one-phase scenario from its flags. Parsing reports every problem
 * as file:line:col, like the rules. */
#ifndef LINKLOAD_SCENARIO_H
#define LINKLOAD_SCENARIO_H

#include <stddef.h>
#include <stdint.h>

#include "core/diag.h"

#define LG_MAX_PHASES 32
#define LG_MAX_DEPT_PROFILES 32
#define LG_MAX_MIX 64

/* One line of the mix: an event kind (enum ld_kind) and its wire category. */
typedef struct lg_mix_entry {
    int kind;
    int value;
    double weight;
} lg_mix_entry;

typedef struct lg_mix {
    lg_mix_entry e[LG_MAX_MIX];
    int n;
    double total;
} lg_mix;

/* lg_mix_default fills the default 110-centre mix: about 80% calls, 15%
 * sensor alarms, 5% petitions, each spread over realistic categories. */
void lg_mix_default(lg_mix *m);
/* lg_mix_parse reads "fire=5,crime=20,sensor=10,petition.housing=1": keys are
 * a kind (call, sensor, petition: spread like the default mix), a category
 * name, or kind.category when a name is ambiguous. Returns 0, or LD_EINVAL
 * with a message in <err>. */
int lg_mix_parse(lg_mix *m, const char *spec, char *err, size_t errlen);
/* lg_mix_add_key adds <weight> for one key of the syntax above. Returns 0,
 * LD_ENOENT for an unknown key, LD_EINVAL when the mix is full. */
int lg_mix_add_key(lg_mix *m, const char *key, double weight);

/* ---- delay distributions (dist.c) ---------------------------------------- */

enum { LG_DIST_NEVER = 0, LG_DIST_FIXED, LG_DIST_EXP, LG_DIST_UNIFORM, LG_DIST_LOGNORMAL };

/* A delay, in milliseconds of linkd's domain time:
 *   "20s" fixed; "exp(20s)" exponential with mean 20 s; "uniform(5s, 30s)";
 *   "lognormal(20s, 1m)" with median 20 s and 90th percentile 1 m; "never". */
typedef struct lg_dist {
    int kind;
    double a, b;
} lg_dist;

/* lg_dist_parse returns 0, or LD_EINVAL with the reason in <err>. */
int lg_dist_parse(lg_dist *d, const char *s, char *err, size_t errlen);
/* lg_dist_sample returns a delay in ms (>= 0); never: a negative value. */
double lg_dist_sample(const lg_dist *d, uint64_t *rng);
void lg_dist_format(const lg_dist *d, char *buf, size_t len);

/* splitmix64 and helpers, shared by the generator and the terminals. */
uint64_t lg_rnd(uint64_t *s);
double lg_rnd_unit(uint64_t *s);   /* [0, 1) */

/* ---- scenario ------------------------------------------------------------ */

/* Where a phase's events happen; empty fields mean "anywhere in the city". */
typedef struct lg_place {
    char district[16];
    char grid[40];
    char address[96];
    int has_coords;
    double lat, lon;
    unsigned devices;           /* sensor ids drawn from this many; 0: 200,000 */
} lg_place;

typedef struct lg_phase {
    char name[48];
    double duration_s;          /* domain seconds, as written */
    double rate_from, rate_to;  /* events per second of the run; a ramp if they differ */
    int has_mix;
    lg_mix mix;
    int has_place;
    lg_place place;
    unsigned petitioners_min, petitioners_max;   /* 0: the usual spread */
    int status;                 /* Status value; 0: the scenario's */
} lg_phase;

/* What a simulated terminal does with a task. Delays are counted from when
 * the terminal receives the task (acknowledge) or completes the previous
 * step (arrive, resolve; feedback counts from arrival too). */
enum { LG_TP_STAFFED = 1, LG_TP_ACK = 2, LG_TP_ARRIVE = 4, LG_TP_RESOLVE = 8, LG_TP_NOSHOW = 16,
       LG_TP_OFF_EVERY = 32, LG_TP_OFF_FOR = 64, LG_TP_FEEDBACK = 128 };

typedef struct lg_term_profile {
    unsigned set;               /* LG_TP_* fields given (for department overrides) */
    int staffed;                /* chain levels with a simulated terminal; -1: all */
    lg_dist ack, arrive, resolve;   /* arrive/resolve never: the task stays open */
    lg_dist feedback;           /* from ON_SCENE to a FEEDBACK report (tasks with that leg) */
    double no_show;             /* probability that a terminal ignores a task */
    lg_dist offline_every, offline_for;   /* gaps between offline periods, and their length */
} lg_term_profile;

typedef struct lg_dept_profile {
    char dept[32];
    int line, col;              /* where it was written, for "no such department" */
    lg_term_profile p;
} lg_dept_profile;

typedef struct lg_scenario {
    char name[64];
    char file[256];             /* "" when built from flags */
    char description[512];
    int status;                 /* Status value */
    int poisson;                /* arrivals: 1 Poisson, 0 evenly spaced */
    double time_scale;          /* domain time runs this many times real time */
    lg_mix mix;
    lg_phase phases[LG_MAX_PHASES];
    int nphases;
    lg_term_profile terminals;  /* every department */
    lg_dept_profile depts[LG_MAX_DEPT_PROFILES];
    int ndepts;
} lg_scenario;

/* lg_scenario_defaults: test status, even arrivals, scale 1, the default
 * mix, no phases, terminals that acknowledge at once and do nothing else. */
void lg_scenario_defaults(lg_scenario *s);

/* lg_scenario_load reads <path> into <s> (over lg_scenario_defaults), adding
 * every problem to <d> as file:line:col. Returns 0, LD_EPARSE (errors in
 * <d>), LD_ENOENT or LD_EIO. */
int lg_scenario_load(lg_scenario *s, const char *path, ld_diag *d);

/* lg_phases_parse reads "30s@1000,1m@1000..20000,30s@20000" (duration@rate or
 * duration@from..to) into the scenario's phases. Returns 0 or LD_EINVAL. */
int lg_phases_parse(lg_scenario *s, const char *spec, char *err, size_t errlen);

/* lg_scenario_profile returns the terminal profile of department <dept>:
 * the scenario's, overlaid with the department's own fields. */
lg_term_profile lg_scenario_profile(const lg_scenario *s, const char *dept);

/* lg_phase_rate returns the offered rate <t> domain seconds into <p>. */
double lg_phase_rate(const lg_phase *p, double t);

#endif
