/* log.h: leveled, rate-limited logging to stderr.
 *
 * The level is checked before any formatting. Every line carries a stable id
 * ("STORE-TIMEOUT") that operators can grep and alert on. Per-event failures
 * use ld_log_rl(), which prints at most a few lines per id per second and
 * reports how many it suppressed. Loop thread only, except ld_log at startup. */
#ifndef LD_CORE_LOG_H
#define LD_CORE_LOG_H

#include <stdint.h>

enum { LD_DEBUG, LD_INFO, LD_NOTICE, LD_WARN, LD_ERR, LD_NONE };

extern int ld_log_level;

/* A rate-limit slot; declare one static per call site (ld_log_rl does). */
typedef struct ld_ratelimit {
    uint64_t window_ms;
    uint32_t printed;
    uint32_t suppressed;
} ld_ratelimit;

#define ld_log(lvl, id, ...)                                                 \
    do {                                                                     \
        if ((lvl) >= ld_log_level) ld__log((lvl), (id), __VA_ARGS__);        \
    } while (0)

#define ld_log_rl(lvl, id, ...)                                              \
    do {                                                                     \
        static ld_ratelimit ld__rl_;                                         \
        if ((lvl) >= ld_log_level && ld__ratelimit_pass(&ld__rl_, (id)))     \
            ld__log((lvl), (id), __VA_ARGS__);                               \
    } while (0)

void ld__log(int level, const char *id, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
int ld__ratelimit_pass(ld_ratelimit *rl, const char *id);

/* ld_log_parse_level maps "debug".."error" to a level; -1 if unknown. */
int ld_log_parse_level(const char *name);

#endif
