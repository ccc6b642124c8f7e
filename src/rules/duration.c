/* duration.c: "1h30m", "250ms", "15d" <-> milliseconds.
 *
 * Grammar: one or more <digits><unit>, units d, h, m, s, ms, each at most once
 * and from the largest to the smallest, no spaces, no sign, no fractions.
 * The order rule turns "30m1h" and "5m5m" into errors rather than guesses:
 * in a rule file they are more likely typos than intent. */
#include <stdio.h>
#include <string.h>

#include "core/err.h"
#include "rules/rules_int.h"

static const struct unit {
    const char *name;
    uint64_t ms;
} units[] = {
    /* Largest first: format walks this order, parse requires it. "ms" sits
     * before "m" only in the lookup below, never here. */
    {"d", 24ull * 3600 * 1000}, {"h", 3600ull * 1000}, {"m", 60ull * 1000},
    {"s", 1000},                {"ms", 1},
};
#define NUNITS (sizeof units / sizeof units[0])

/* Returns the index of the unit at <p> and its length in *n, or -1. */
static int unit_at(const char *p, size_t *n)
{
    if (p[0] == 'm' && p[1] == 's') {
        *n = 2;
        return 4;
    }
    for (int i = 0; i < 4; i++)
        if (p[0] == units[i].name[0]) {
            *n = 1;
            return i;
        }
    return -1;
}

int rules__duration(const char *s, uint64_t *ms, const char **why)
{
    const char *p = s;
    uint64_t total = 0;
    int last = -1; /* index of the previous unit; each must be smaller */

    if (!s || !*s) {
        *why = "empty";
        return LD_EINVAL;
    }
    while (*p) {
        if (*p < '0' || *p > '9') {
            *why = "expected a number followed by a unit (ms, s, m, h, d), e.g. 1h30m";
            return LD_EINVAL;
        }
        uint64_t v = 0;
        for (; *p >= '0' && *p <= '9'; p++) {
            if (v > (UINT64_MAX - 9) / 10) {
                *why = "too long";
                return LD_EINVAL;
            }
            v = v * 10 + (uint64_t)(*p - '0');
        }
        size_t n = 0;
        int u = unit_at(p, &n);
        if (u < 0) {
            *why = *p ? "unknown unit (use ms, s, m, h or d)"
                      : "missing unit (use ms, s, m, h or d)";
            return LD_EINVAL;
        }
        if (u <= last) {
            *why = "units must go from largest to smallest, each once (e.g. 1h30m)";
            return LD_EINVAL;
        }
        last = u;
        p += n;
        /* Compare before multiplying so nothing can wrap. */
        if (v > RULES_MAX_DURATION_MS / units[u].ms ||
            total + v * units[u].ms > RULES_MAX_DURATION_MS) {
            *why = "too long (the limit is 3650d)";
            return LD_EINVAL;
        }
        total += v * units[u].ms;
    }
    if (total == 0) {
        *why = "must be greater than zero";
        return LD_EINVAL;
    }
    *ms = total;
    return 0;
}

int ld_parse_duration(const char *s, uint64_t *ms)
{
    const char *why;
    return rules__duration(s, ms, &why);
}

void ld_format_duration(uint64_t ms, char *buf, size_t len)
{
    size_t off = 0;
    if (len == 0) return;
    buf[0] = '\0';
    if (ms == 0) {
        snprintf(buf, len, "0s");
        return;
    }
    for (size_t i = 0; i < NUNITS && ms; i++) {
        uint64_t v = ms / units[i].ms;
        if (!v) continue;
        ms -= v * units[i].ms;
        int w = snprintf(buf + off, len - off, "%llu%s", (unsigned long long)v,
                         units[i].name);
        if (w < 0 || (size_t)w >= len - off) return; /* truncated, still terminated */
        off += (size_t)w;
    }
}
