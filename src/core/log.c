#include "core/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

int ld_log_level = LD_INFO;

static const char *const level_names[] = {"debug", "info", "notice", "warning", "error"};

enum { RL_BURST = 5 }; /* lines per id per second before suppression */

static uint64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void ld__log(int level, const char *id, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);

    uint64_t now = wall_ms();
    time_t secs = (time_t)(now / 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    char ts[32];
    strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
    if (level < LD_DEBUG || level > LD_ERR) level = LD_ERR;
    fprintf(stderr, "%s.%03uZ linkd %s %s: %s\n", ts, (unsigned)(now % 1000),
            level_names[level], id, msg);
}

int ld__ratelimit_pass(ld_ratelimit *rl, const char *id)
{
    uint64_t now = wall_ms();
    if (now - rl->window_ms >= 1000) {
        if (rl->suppressed)
            ld__log(LD_NOTICE, id, "%u similar lines suppressed in the last second",
                    rl->suppressed);
        rl->window_ms = now;
        rl->printed = 0;
        rl->suppressed = 0;
    }
    if (rl->printed < RL_BURST) {
        rl->printed++;
        return 1;
    }
    rl->suppressed++;
    return 0;
}

int ld_log_parse_level(const char *name)
{
    for (int i = 0; i <= LD_ERR; i++)
        if (strcmp(name, level_names[i]) == 0) return i;
    if (strcmp(name, "warn") == 0) return LD_WARN;
    if (strcmp(name, "err") == 0) return LD_ERR;
    return -1;
}
