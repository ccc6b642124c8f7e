#include "core/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <systemd/sd-journal.h>

int ld_log_level = LD_INFO;
int ld_log_format = LD_LOG_TEXT;   /* linkd itself defaults to JSON (main.c) */

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
    switch (ld_log_format) {
    case LD_LOG_TEXT:
        fprintf(stderr, "%s.%03uZ linkd %s %s: %s\n", ts, (unsigned)(now % 1000),
                level_names[level], id, msg);
        break;
    case LD_LOG_JOURNAL: {
        static const int prio[] = {7, 6, 5, 4, 3}; /* syslog: debug .. err */
        sd_journal_send("MESSAGE=%s: %s", id, msg, "PRIORITY=%d", prio[level], "LINKD_ID=%s", id,
                        "SYSLOG_IDENTIFIER=linkd", NULL);
        break;
    }
    default: {
        char esc[sizeof msg * 6 + 1];
        ld_json_escape(esc, sizeof esc, msg);
        fprintf(stderr, "{\"ts\":\"%s.%03uZ\",\"level\":\"%s\",\"id\":\"%s\",\"msg\":\"%s\"}\n", ts,
                (unsigned)(now % 1000), level_names[level], id, esc);
    }
    }
}

/* utf8_len returns the length of the valid UTF-8 sequence at <p>, or 0. */
static size_t utf8_len(const unsigned char *p)
{
    size_t n = p[0] >= 0xf0 && p[0] <= 0xf4 ? 4 : p[0] >= 0xe0 ? 3 : p[0] >= 0xc2 ? 2 : 0;
    if (p[0] >= 0xf5) return 0;
    for (size_t i = 1; i < n; i++)
        if ((p[i] & 0xc0) != 0x80) return 0;
    if (n == 3 && ((p[0] == 0xe0 && p[1] < 0xa0) || (p[0] == 0xed && p[1] >= 0xa0))) return 0;
    if (n == 4 && ((p[0] == 0xf0 && p[1] < 0x90) || (p[0] == 0xf4 && p[1] >= 0x90))) return 0;
    return n;
}

size_t ld_json_escape(char *out, size_t len, const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t o = 0;
    if (len == 0) return 0;
    while (*p) {
        char tmp[8];
        const char *add = tmp;
        size_t n = 1, step = 1;
        if (*p == '"' || *p == '\\') {
            tmp[0] = '\\', tmp[1] = (char)*p, n = 2;
        } else if (*p < 0x20 || *p == 0x7f) {
            n = (size_t)snprintf(tmp, sizeof tmp, "\\u%04x", *p);
        } else if (*p < 0x80) {
            tmp[0] = (char)*p;
        } else if ((step = utf8_len(p)) != 0) {
            add = (const char *)p, n = step;
        } else {
            add = "\\ufffd", n = 6, step = 1;
        }
        if (o + n >= len) break;
        memcpy(out + o, add, n);
        o += n;
        p += step;
    }
    out[o] = '\0';
    return o;
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

int ld_log_parse_format(const char *name)
{
    if (strcmp(name, "json") == 0) return LD_LOG_JSON;
    if (strcmp(name, "text") == 0) return LD_LOG_TEXT;
    if (strcmp(name, "journal") == 0) return LD_LOG_JOURNAL;
    return -1;
}

void ld_log_auto(void)
{
    /* JOURNAL_STREAM is "<dev>:<inode>" of the stream systemd connected. */
    const char *js = getenv("JOURNAL_STREAM");
    struct stat st;
    unsigned long long dev, ino;
    if (js && sscanf(js, "%llu:%llu", &dev, &ino) == 2 && fstat(2, &st) == 0 &&
        (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino)
        ld_log_format = LD_LOG_JOURNAL;
}

int ld_log_parse_level(const char *name)
{
    for (int i = 0; i <= LD_ERR; i++)
        if (strcmp(name, level_names[i]) == 0) return i;
    if (strcmp(name, "warn") == 0) return LD_WARN;
    if (strcmp(name, "err") == 0) return LD_ERR;
    return -1;
}
