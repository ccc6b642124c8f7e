/* metrics.h: counters kept from the engine's observations, and the
 * Prometheus text rendering of those and of every subsystem's own counters.
 *
 * A leg (acknowledge, arrive, resolve) of a task is counted once: "met" when
 * it is done within its budget from dispatch (the route's figure for the
 * department), "missed" when its deadline first passes (the first escalation
 * or top-of-chain miss on that leg) or when it is done late without one.
 * Durations from dispatch to done go into histograms: cumulative ones for
 * Prometheus and per-day ones (China Standard Time days on the domain clock)
 * for the board's p90/p95 and the weekly report bands. Loop thread only. */
#ifndef LD_HTTP_METRICS_H
#define LD_HTTP_METRICS_H

#include <stdint.h>

#include "core/hist.h"
#include "core/map.h"
#include "engine/engine.h"
#include "core/buf.h"

#define LD_CHAIN_MAX (2 * LD_MAX_LEVELS)
#define LD_PROM_BUCKETS 15
#define LD_BANDS 5

/* Supervisor actions counted per department (of the task, or of the
 * incident's first task for the incident-level ones). */
#define LD_ACTION_KINDS 6
enum { LD_ACT_REASSIGN, LD_ACT_ESCALATE, LD_ACT_EXTEND, LD_ACT_CLOSE, LD_ACT_MERGE, LD_ACT_SPLIT };

typedef struct ld_leg_metrics {
    uint64_t met, missed;
    uint64_t le[LD_PROM_BUCKETS];   /* cumulative-by-bound counts of durations */
    uint64_t count;
    double sum_s;
} ld_leg_metrics;

typedef struct ld_leg_day {
    ld_hist ms;                     /* durations, milliseconds */
    uint64_t met, missed;
    uint64_t band[LD_BANDS];        /* the weekly report's bands, per leg */
} ld_leg_day;

typedef struct ld_metrics {
    int ndept, nterm;
    const ld_rules *indexed;        /* the rules route_by_where was built from */
    ld_map route_by_where;          /* "routes.yaml:14:5" -> ld_route */
    uint64_t *dispatched;           /* [dept] */
    uint64_t *escalations;          /* [dept][LD_CHAIN_MAX]: by the level reached */
    uint64_t *missed_top;           /* [dept][leg] */
    uint64_t *actions;              /* [dept][LD_ACTION_KINDS], ld_action_names order */
    ld_leg_metrics *legs;           /* [dept][leg] */
    ld_leg_day *day;                /* [dept][leg] */
    int64_t day_index;              /* CST day of the domain clock the day stats hold */
    uint8_t *online;                /* [terminal] */
    uint64_t lag_le[8], lag_count;  /* loop lag histogram */
    double lag_sum_s, lag_max_s;
} ld_metrics;

extern const double ld_prom_bounds_s[LD_PROM_BUCKETS];
extern const char *const ld_leg_label[LD_LEG_COUNT];
/* The weekly report's band upper bounds per leg, seconds; the last is open. */
extern const double ld_band_bounds_s[LD_LEG_COUNT][LD_BANDS - 1];

int ld_metrics_init(ld_metrics *m, const ld_rules *r);
void ld_metrics_fini(ld_metrics *m);
void ld_metrics_observe(ld_metrics *m, const ld_engine *e, const ld_observation *o);
/* ld_metrics_roll starts a new day's stats if the domain clock's day changed. */
void ld_metrics_roll(ld_metrics *m, uint64_t now_ms);
void ld_metrics_lag(ld_metrics *m, double lag_s);

#endif
