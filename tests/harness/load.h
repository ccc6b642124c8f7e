/* load.h: steady load with bookkeeping, for the reliability tests.
 *
 * Producers send 110 calls in small requests at a steady pace and behave as
 * real producers must: an event answered RETRY_LATER, or a request with no
 * answer (linkd killed, Redis away), is sent again with the same id until it
 * is answered ACCEPTED or DUPLICATE. Every event a producer was told
 * ACCEPTED (or DUPLICATE after a resend: the first copy was accepted) is
 * recorded with its incident id. Terminal threads long-poll their terminals,
 * receipt every task, resolve it, and record which incidents reached them and
 * how many deliveries were marked redelivery.
 *
 * Afterwards ldh_load_check reads Redis: an event recorded as accepted that
 * is not in ld:events is lost. ldh_load_await_delivery waits until every
 * accepted incident has reached every polled terminal.
 *
 * All waits are bounded; the threads stop by ldh_load_stop. The linkd's URLs
 * must not change while the load runs (ldh_linkd_respawn keeps them). */
#ifndef LD_TESTS_LOAD_H
#define LD_TESTS_LOAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "harness.h"

#define LDH_LOAD_MAX_THREADS 8
#define LDH_LOAD_MAX_CATEGORIES 8

typedef struct ldh_load_opts {
    const ldh_linkd *linkd;
    int producers;                  /* threads (default 2) */
    int batch;                      /* events per request (default 5) */
    int period_ms;                  /* pause between one producer's requests (default 20) */
    int reply_ms;                   /* a request with no answer by then is sent again (default 3000) */
    /* Producer k sends calls of categories[k % ncategories] only, so one
     * category held back (RETRY_LATER) does not hold back another. Default: fire. */
    Linkd__V1__CallCategory categories[LDH_LOAD_MAX_CATEGORIES];
    int ncategories;
    const char *terminals[LDH_LOAD_MAX_THREADS];  /* polled, receipted, resolved */
    int nterminals;
    uint32_t expect[LDH_LOAD_MAX_CATEGORIES]; /* per category: bit t = terminals[t] must get
                                               * its incidents (0: every terminal) */
} ldh_load_opts;

typedef struct ldh_load_stats {
    uint64_t requests, no_answer;           /* requests sent; of those, unanswered */
    uint64_t accepted, duplicate_on_resend; /* events durable by the answers */
    uint64_t accepted_by_category[LDH_LOAD_MAX_CATEGORIES];
    uint64_t retry_later, rejected;         /* answers (an event may get several) */
    uint64_t tasks, redelivered;            /* deliveries seen by the terminals */
    uint64_t resolved;                      /* RESOLVED updates answered ACCEPTED */
} ldh_load_stats;

typedef struct ldh_load ldh_load;

/* ldh_load_start starts the threads. Returns NULL if it cannot. */
ldh_load *ldh_load_start(const ldh_load_opts *o);
/* ldh_load_pause stops (true) or resumes producing new events; events
 * already in hand are still sent until answered. */
void ldh_load_pause(ldh_load *l, bool pause);
/* ldh_load_settle waits until no producer holds an unanswered event, up to
 * <timeout_ms>. Returns true if none does. */
bool ldh_load_settle(ldh_load *l, int timeout_ms);
/* ldh_load_stats copies the counters so far. */
void ldh_load_get_stats(ldh_load *l, ldh_load_stats *out);
/* ldh_load_await_delivery waits until every accepted event's incident has
 * been handed to every polled terminal, up to <timeout_ms>. Returns how many
 * (incident, terminal) pairs are still missing. */
size_t ldh_load_await_delivery(ldh_load *l, int timeout_ms);
/* ldh_load_check returns how many accepted events are not in ld:events
 * (lost), or -1 if Redis could not be read. Call once producers are paused
 * and settled. */
long ldh_load_check(ldh_load *l, ldh_redis *r);
/* ldh_load_stop stops and joins every thread and frees everything. */
void ldh_load_stop(ldh_load *l);

/* Restart-to-ready times, for reports. */
typedef struct ldh_durations {
    uint64_t ms[256];
    int n;
} ldh_durations;
void ldh_durations_add(ldh_durations *d, uint64_t ms);
/* ldh_durations_format writes "n=5 min 210 ms, median 250 ms, max 400 ms". */
void ldh_durations_format(const ldh_durations *d, char *buf, size_t len);

/* ldh_long_run says whether the long versions were asked for
 * (LINKD_RELIABILITY=long); ldh_report appends a line to the file named by
 * LINKD_RELIABILITY_REPORT (if set) and prints it to stderr. */
bool ldh_long_run(void);
void ldh_report(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
