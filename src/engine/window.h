/* window.h: sliding windows for correlation rules (rules: correlate).
 *
 * ld_windows is the state alone: keyed windows, counting with distinct-by
 * and two-step sequences, on the times it is given (the engine's ld_clock).
 * It knows nothing of incidents beyond their ids, so unit tests and the rule
 * benchmark drive it directly. ld_windows_event reads an event's key and
 * distinct values for each rule; the engine's side (upgrade.c) upgrades the
 * incident a rule picks when it fires.
 *
 * Keys: a window is found by a 64-bit hash of the rule's name and the values
 * of its `by` fields (the raw strings of the event's location, its office,
 * its category number); distinct values are 64-bit hashes of the caller,
 * sensor, petitioner or source id. No key or value string is kept or
 * compared (only the incident id each value came from is copied, for the
 * upgrade); two different keys share a window only on a 64-bit hash
 * collision (any two of a million open keys: about 3 in 10^8). Windows come from pools by
 * size class; the table of keys is bounded (max_keys), and an event that
 * would open a key beyond it is not counted (stats.keys_full). A window
 * whose newest value and last firing are older than its rule's window is
 * dead: each observation sweeps a few table slots and frees the dead ones.
 * Loop thread only. */
#ifndef LD_ENGINE_WINDOW_H
#define LD_ENGINE_WINDOW_H

#include <stddef.h>
#include <stdint.h>

#include "rules/rules.h"

#define LD_WINDOW_REF_LEN 40    /* an incident id (LD_INCIDENT_ID_LEN) */
#define LD_WINDOWS_MAX_KEYS_DEFAULT 100000

typedef struct ld_windows ld_windows;

typedef struct ld_window_stats {
    uint64_t counted;       /* values added to a window */
    uint64_t fired;         /* rules that fired */
    uint64_t suppressed;    /* events for a key that fired less than a window ago */
    uint64_t unkeyed;       /* events a rule matched without a `by` or distinct field */
    uint64_t keys_full;     /* events not counted: max_keys windows were open */
    uint64_t expired;       /* windows freed after their rule's window passed */
    size_t keys;            /* open windows now */
    size_t bytes;           /* memory of the windows and the key table now */
} ld_window_stats;

/* One firing: the rule, and the incidents of the events that made it, oldest
 * first (for a sequence: the first step's, then the second's). Pointers are
 * valid during the callback only. */
typedef struct ld_window_hit {
    const ld_correlation *rule;
    uint32_t n;
    const char *refs[LD_CORR_MAX_COUNT];
    uint64_t at[LD_CORR_MAX_COUNT];
} ld_window_hit;

/* What the engine read from one event for one rule. */
typedef struct ld_window_event {
    uint64_t key;           /* hash of the rule's `by` values; 0: the event lacks one */
    const uint64_t *values; /* distinct values (hashes); NULL/0: the event lacks the field */
    size_t nvalues;
    const char *ref;        /* the incident the event opened or joined */
} ld_window_event;

/* ld_windows_new allocates the state, with room for at most <max_keys>
 * open windows (0: LD_WINDOWS_MAX_KEYS_DEFAULT). NULL when out of memory. */
ld_windows *ld_windows_new(size_t max_keys);
void ld_windows_free(ld_windows *w);

/* ld_windows_observe adds an event a correlation rule <c> matched (for a
 * sequence: <step> 0 for `first`, 1 for `then`) at domain time <now>, and
 * calls <fire> if the rule fires. Returns 1 if it fired, else 0. No
 * allocation unless a new key needs a window (a pool) or the table grows. */
int ld_windows_observe(ld_windows *w, const ld_correlation *c, int step,
                       const ld_window_event *ev, uint64_t now,
                       void (*fire)(void *ctx, const ld_window_hit *hit), void *ctx);

/* ld_windows_sweep frees up to <slots> table slots' worth of dead windows;
 * ld_windows_observe calls it with a few slots each time. */
void ld_windows_sweep(ld_windows *w, uint64_t now, size_t slots);

void ld_windows_stats(const ld_windows *w, ld_window_stats *out);

struct Linkd__V1__Envelope;

/* ld_windows_event runs event <ev> (read as <in>; it opened or joined
 * incident <ref>) past every correlation rule of <r>: each rule that matches
 * it (for a sequence, either step) gets the event's key and distinct values.
 * <seq> numbers events for `distinct: event`. Returns how many rules fired.
 * Nothing is allocated and no string compared; the key and values are hashed
 * from the event's strings. */
int ld_windows_event(ld_windows *w, const ld_rules *r, const struct Linkd__V1__Envelope *ev,
                     const ld_match_input *in, const char *ref, uint64_t now, uint64_t *seq,
                     void (*fire)(void *ctx, const ld_window_hit *hit), void *ctx);

/* ld_window_key hashes one `by` value into <h> (start with ld_window_key_init).
 * Fields are tagged so that (district "A", grid "") and (district "", grid
 * "A") differ. */
uint64_t ld_window_key_init(uint64_t rule_hash);
uint64_t ld_window_key_add(uint64_t h, int field, const char *v, size_t len);
uint64_t ld_window_hash(const char *v, size_t len);

#endif
