/* rules_int.h: what the rule loader's files share; not for use outside src/rules.
 *
 * Loading runs in three steps, each in its own file:
 *   load.c    the directory: list, read and hash the files, run libfyaml on
 *             each, collect its syntax errors, and hand the tree to syntax.c;
 *   syntax.c  one file's tree, driven by tables of keys: every key, type and
 *             bound, with the position of every value kept for later checks;
 *   check.c   what needs every file: references between departments and
 *             routes, uniqueness, the command department; then the compiled
 *             set with its indexes.
 * Errors never stop a step: each adds to the ld_diag and the step goes on, so
 * one run reports every problem. */
#ifndef LD_RULES_RULES_INT_H
#define LD_RULES_RULES_INT_H

#include <stddef.h>
#include <stdint.h>

#include "core/diag.h"
#include "rules/rules.h"

struct fy_node;

/* One rule file. <path> is what diagnostics print (dir/name, as the user
 * gave the directory); <base> is what ld_route.where cites (name only). */
typedef struct rules_src {
    char path[512];
    const char *base;       /* points into path */
} rules_src;

/* Where something was written. line and col are 1-based; line 0 means the
 * place is the file (or directory) as a whole. */
typedef struct rules_pos {
    const rules_src *src;   /* NULL: the rules directory itself */
    int line, col;
} rules_pos;

/* What the loader remembers about a route beyond ld_route: department names
 * are resolved only once every file has been read. */
typedef struct rules_route_aux {
    rules_pos at;
    char dept[LD_MAX_DISPATCH][32];
    rules_pos dept_at[LD_MAX_DISPATCH];
} rules_route_aux;

/* A roster as read: names are resolved once every file is read (check.c). */
typedef struct rules_roster_aux {
    char dept[32];
    rules_pos dept_at, shifts_at;
    ld_roster r;                        /* times filled; terminals resolved later */
    int64_t ovr_local[LD_MAX_OVERRIDES][2];  /* overrides' [from, to) in local ms */
    char shift_term[LD_MAX_SHIFTS][48];
    rules_pos shift_term_at[LD_MAX_SHIFTS];
    char ovr_term[LD_MAX_OVERRIDES][48];     /* "none": nobody */
    rules_pos ovr_term_at[LD_MAX_OVERRIDES];
    char stand_in[48];
    rules_pos stand_in_at;
} rules_roster_aux;

/* A terminal_keys entry as read; the terminal is looked up once every file is read. */
typedef struct rules_key_def {
    int source;                 /* 0: terminal_keys, 1: source_keys */
    char id[LD_SOURCE_KEY_ID];  /* the terminal or source id */
    uint8_t key[32];
    rules_pos at;
} rules_key_def;

/* The loader's state across files. Arrays grow as files are read and move
 * into the ld_rules whole at the end. */
typedef struct rules_loader {
    ld_diag *diag;
    size_t errors0;             /* diag->nerrors before this load */
    const char *dir;            /* as given, without trailing slashes */

    ld_department *depts;
    rules_pos *dept_at;         /* where each department's id was written */
    int ndepts, cap_depts;

    ld_terminal_def *terms;
    rules_pos *term_at;
    int nterms, cap_terms;

    ld_route *routes;
    rules_route_aux *route_aux;
    int nroutes, cap_routes;

    /* Interned names (districts, grids, offices): strs[i] is id i; the map's
     * keys are the strs (heap copies, which move into the ld_rules). */
    char **strs;
    int nstrs, cap_strs;
    ld_map str_ids;
    uint32_t *set_ids;          /* the routes' id sets */
    size_t nset_ids, cap_set_ids;
    unsigned str_used;          /* bit per ld_strfield that some rule tests */

    /* areas: district id -> area type, with where it was listed */
    struct rules_area_def {
        int id, area;
        rules_pos at;
    } *area_defs;
    int nareas, cap_areas;
    int default_area;
    rules_pos default_area_at;

    /* calendar */
    rules_pos calendar_at;      /* the first `calendar:` key; a second is an error */
    int32_t utc_offset_s;
    int32_t *holidays, *makeup;
    int nholidays, cap_holidays, nmakeup, cap_makeup;

    rules_roster_aux *rosters;
    int nrosters, cap_rosters;

    rules_key_def *keys;        /* terminal_keys (keys.c) */
    int nkeys, cap_keys;

    ld_merge_rule *merges;
    int nmerges, cap_merges;

    ld_correlation *corrs;      /* correlation rules (correlate.c) */
    rules_route_aux *corr_aux;  /* their upgrades' department names, resolved later */
    int ncorrs, cap_corrs;

    /* life_safety */
    rules_pos life_safety_at;   /* the `life_safety:` key; a second is an error */
    uint32_t life_safety;       /* bit (1 << Priority) */

    rules_pos departments_at;   /* first top-level `departments:` key seen */
    int unread;                 /* files that could not be read, parsed or used */
    int nomem;                  /* an allocation failed; the load fails */
} rules_loader;

/* rules__error and rules__warn add a diagnostic at <at> (NULL: the directory). */
void rules__error(rules_loader *L, const rules_pos *at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void rules__warn(rules_loader *L, const rules_pos *at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* rules__grow makes room for element <n> of the loader array <a> (elements of
 * <size> bytes, <cap> of them), doubling it; rules__grow_pair grows two arrays
 * that share one count. New room is not zeroed. 0, or -1 with L->nomem set. */
int rules__grow(rules_loader *L, void **a, size_t size, int n, int *cap);
int rules__grow_pair(rules_loader *L, void **a, size_t asz, void **b, size_t bsz, int n, int *cap);

/* rules__where writes "base:line:col" for ld_route.where and friends. */
void rules__where(const rules_pos *at, char *buf, size_t len);

/* rules__read_tree adds the departments and routes of one parsed file
 * (<root> may be NULL for an empty file). syntax.c */
void rules__read_tree(rules_loader *L, const rules_src *src, struct fy_node *root);

/* rules__check resolves references across files and checks the set as a
 * whole, even when reading the files found errors already (it reports what
 * the per-file pass cannot see), unless a file could not be read at all:
 * then "not defined" would be noise about what that file holds. If no error was found at all, the arrays
 * move into <r> (the loader's pointers are cleared) and its maps are built.
 * Returns 0, LD_ERULES or LD_ENOMEM. check.c */
int rules__check(rules_loader *L, ld_rules *r);

/* rules__intern returns the id (> 0) of <value> (a district, grid or office
 * name), adding it if new; -1 when out of memory (L->nomem is set). */
int rules__intern(rules_loader *L, const char *value);

/* rules__build_index builds r->index from r's routes. 0 or LD_ENOMEM. index.c */
int rules__build_index(ld_rules *r);
void rules__free_index(ld_rules *r);

/* rules__day_of parses "2026-10-01" into days since 1970-01-01; 0 or -1. */
int rules__day_of(const char *s, size_t len, int32_t *day);

/* rules__suggest returns the candidate closest to <word> by edit distance
 * (adjacent swaps count as one edit), or NULL if none is close enough to be
 * a likely typo. */
const char *rules__suggest(const char *word, const char *const *cands, size_t n);

/* keys.c: rules__add_key reads one terminal_keys (source 0) or source_keys
 * (source 1) entry; rules__resolve_keys gives each listed terminal its key
 * and builds the table of keyed sources, once every file is read
 * (0 or LD_ENOMEM). */
void rules__add_key(rules_loader *L, int source, const char *id, const char *value,
                    const rules_pos *key_at, const rules_pos *value_at);
int rules__resolve_keys(rules_loader *L, ld_rules *r);

/* rules__join appends ", name" to the NUL-terminated list in <buf>; when the
 * list would not fit it ends with ", ..." and later names are dropped. */
void rules__join(char *buf, size_t len, const char *name);

/* rules__duration is ld_parse_duration with the reason for a refusal, as a
 * phrase that completes "bad duration '5x': ...". duration.c */
int rules__duration(const char *s, uint64_t *ms, const char **why);

/* For correlate.c, from syntax.c: where a node was written; a match
 * mapping read and compiled into <out> (its conditions only); a dispatch
 * list read into <out>'s dispatch, with the department names in <aux> for
 * rules__resolve_dispatch. */
rules_pos rules__pos_of(const rules_src *src, struct fy_node *n, const rules_pos *fallback);
void rules__read_match(rules_loader *L, const rules_src *src, struct fy_node *v,
                       const rules_pos *at, ld_route *out);
void rules__read_dispatch(rules_loader *L, const rules_src *src, struct fy_node *v,
                          const rules_pos *at, const rules_pos *key_at, ld_route *out,
                          rules_route_aux *aux);

/* From check.c: resolves the department names of one route-like <rt>
 * (aux as rules__read_dispatch filled it). 0 or LD_ENOMEM. */
int rules__resolve_dispatch(rules_loader *L, ld_rules *r, ld_route *rt,
                            const rules_route_aux *x);

/* correlate.c: rules__read_correlations reads a `correlate:` list;
 * rules__check_correlations resolves their departments and names once every
 * file is read; rules__move_correlations hands them to <r>. */
void rules__read_correlations(rules_loader *L, const rules_src *src, struct fy_node *v,
                              const rules_pos *at);
int rules__check_correlations(rules_loader *L, ld_rules *r);
void rules__move_correlations(rules_loader *L, ld_rules *r);

/* The longest budget or wait a rule may give: deadlines are epoch ms in an
 * int64, and ten years is far beyond any real one. */
#define RULES_MAX_DURATION_MS (3650ull * 24 * 3600 * 1000)

#endif
