/* log.h: leveled, rate-limited logging to stderr.
 *
 * Formats (linkd --log-format): "json", linkd's default, one object per line:
 *   {"ts":"2026-11-22T18:00:00.123Z","level":"notice","id":"READY","msg":"..."}
 * "text", for people and the tools' default: "... linkd notice READY: ...";
 * "journal": straight to journald with the fields PRIORITY, MESSAGE,
 * LINKD_ID and SYSLOG_IDENTIFIER=linkd. ld_log_auto picks "journal" when
 * stderr is the journal stream systemd gave us (JOURNAL_STREAM).
 *
 * The level is checked before any formatting. Every line carries a stable id
 * ("STORE-TIMEOUT") that operators can grep and alert on. Per-event failures
 * use ld_log_rl(), which prints at most a few lines per id per second and
 * reports how many it suppressed. Loop thread only, except ld_log at startup. */
#ifndef LD_CORE_LOG_H
#define LD_CORE_LOG_H

#include <stddef.h>
#include <stdint.h>

enum { LD_DEBUG, LD_INFO, LD_NOTICE, LD_WARN, LD_ERR, LD_NONE };
enum { LD_LOG_JSON, LD_LOG_TEXT, LD_LOG_JOURNAL };

extern int ld_log_level;
extern int ld_log_format;

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
/* ld_log_parse_format maps "json", "text", "journal" to a format; -1 if unknown. */
int ld_log_parse_format(const char *name);
/* ld_log_auto switches to "journal" if stderr is systemd's journal stream. */
void ld_log_auto(void);

/* ld_json_escape writes <s> into <out> as the inside of a JSON string:
 * quotes, backslashes and control characters escaped, invalid UTF-8 as
 * U+FFFD. Always terminates <out>; returns the length written. */
size_t ld_json_escape(char *out, size_t len, const char *s);

#endif
