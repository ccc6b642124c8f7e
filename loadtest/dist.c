/* dist.c: delay distributions of simulated terminals, and the random numbers
 * linkload draws from. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "rules/rules.h"
#include "scenario.h"

/* splitmix64: small, fast and good enough for load generation. */
uint64_t lg_rnd(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

double lg_rnd_unit(uint64_t *s)
{
    return (double)(lg_rnd(s) >> 11) * (1.0 / 9007199254740992.0);
}

/* A standard normal draw (Box-Muller; one of the pair is thrown away). */
static double rnd_normal(uint64_t *s)
{
    double u = lg_rnd_unit(s), v = lg_rnd_unit(s);
    return sqrt(-2.0 * log(1.0 - u)) * cos(2.0 * M_PI * v);
}

#define Z90 1.2815515655446004   /* the standard normal's 90th percentile */

double lg_dist_sample(const lg_dist *d, uint64_t *rng)
{
    switch (d->kind) {
    case LG_DIST_FIXED: return d->a;
    case LG_DIST_EXP: return -d->a * log(1.0 - lg_rnd_unit(rng));
    case LG_DIST_UNIFORM: return d->a + (d->b - d->a) * lg_rnd_unit(rng);
    case LG_DIST_LOGNORMAL: {
        double sigma = d->b > d->a && d->a > 0 ? log(d->b / d->a) / Z90 : 0;
        return d->a * exp(sigma * rnd_normal(rng));
    }
    default: return -1;
    }
}

static int duration_ms(const char *s, size_t len, double *out)
{
    char buf[32];
    while (len && (*s == ' ' || *s == '\t')) s++, len--;
    while (len && (s[len - 1] == ' ' || s[len - 1] == '\t')) len--;
    if (len == 0 || len >= sizeof buf) return LD_EINVAL;
    memcpy(buf, s, len);
    buf[len] = '\0';
    uint64_t ms;
    if (strcmp(buf, "0") == 0) ms = 0;
    else if (ld_parse_duration(buf, &ms) != 0) return LD_EINVAL;
    *out = (double)ms;
    return 0;
}

int lg_dist_parse(lg_dist *d, const char *s, char *err, size_t errlen)
{
    static const struct {
        const char *name;
        int kind, nargs;
    } FORMS[] = {{"exp", LG_DIST_EXP, 1}, {"uniform", LG_DIST_UNIFORM, 2},
                 {"lognormal", LG_DIST_LOGNORMAL, 2}, {"fixed", LG_DIST_FIXED, 1}};
    *d = (lg_dist){0};
    if (strcmp(s, "never") == 0) return 0;
    const char *open = strchr(s, '(');
    if (!open) {
        if (duration_ms(s, strlen(s), &d->a) != 0) goto bad;
        d->kind = LG_DIST_FIXED;
        return 0;
    }
    size_t nlen = (size_t)(open - s);
    const char *close = strchr(open, ')');
    if (!close || close[1] != '\0') goto bad;
    for (size_t i = 0; i < sizeof FORMS / sizeof FORMS[0]; i++) {
        if (strlen(FORMS[i].name) != nlen || strncmp(s, FORMS[i].name, nlen) != 0) continue;
        const char *comma = memchr(open + 1, ',', (size_t)(close - open - 1));
        if ((FORMS[i].nargs == 2) != (comma != NULL)) goto bad;
        const char *end1 = comma ? comma : close;
        if (duration_ms(open + 1, (size_t)(end1 - open - 1), &d->a) != 0) goto bad;
        if (comma && duration_ms(comma + 1, (size_t)(close - comma - 1), &d->b) != 0) goto bad;
        d->kind = FORMS[i].kind;
        if (d->kind == LG_DIST_UNIFORM && d->b < d->a) {
            snprintf(err, errlen, "'%s': the upper bound is below the lower", s);
            return LD_EINVAL;
        }
        if (d->kind == LG_DIST_LOGNORMAL && !(d->a > 0 && d->b >= d->a)) {
            snprintf(err, errlen, "'%s': lognormal(median, p90) needs 0 < median <= p90", s);
            return LD_EINVAL;
        }
        return 0;
    }
bad:
    snprintf(err, errlen,
             "'%s' is not a delay: 20s, exp(20s), uniform(5s, 30s), lognormal(20s, 1m) "
             "(median, p90) or never",
             s);
    return LD_EINVAL;
}

void lg_dist_format(const lg_dist *d, char *buf, size_t len)
{
    char a[24], b[24];
    ld_format_duration((uint64_t)d->a, a, sizeof a);
    ld_format_duration((uint64_t)d->b, b, sizeof b);
    switch (d->kind) {
    case LG_DIST_FIXED: snprintf(buf, len, "%s", d->a > 0 ? a : "0"); break;
    case LG_DIST_EXP: snprintf(buf, len, "exp(%s)", a); break;
    case LG_DIST_UNIFORM: snprintf(buf, len, "uniform(%s, %s)", a, b); break;
    case LG_DIST_LOGNORMAL: snprintf(buf, len, "lognormal(%s, %s)", a, b); break;
    default: snprintf(buf, len, "never"); break;
    }
}
