/* scenario.c: read a scenario file (YAML, libfyaml) into an lg_scenario.
 *
 * Like the rule loader, parsing never stops at the first problem: each one
 * is added to the ld_diag with the file:line:col where it was written, and
 * the caller prints them all. The format is documented in
 * loadtest/scenarios/README.md. */
#include <errno.h>
#include <libfyaml.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "linkload.h"
#include "rules/rules.h"
#include "wire/wire.h"

#define MAX_FILE (1u << 20)

typedef struct sctx {
    const char *file;
    ld_diag *d;
    lg_scenario *s;
} sctx;

typedef struct pos {
    int line, col;
} pos;

/* A collection has no mark of its own in libfyaml 0.7; it is placed at its
 * first scalar, as the rule loader does. */
static pos pos_of(struct fy_node *n, pos fallback)
{
    while (n) {
        if (fy_node_is_scalar(n)) {
            struct fy_token *t = fy_node_get_scalar_token(n);
            const struct fy_mark *m = t ? fy_token_start_mark(t) : NULL;
            if (!m) break;
            return (pos){m->line + 1, m->column + 1};
        }
        void *it = NULL;
        if (fy_node_is_mapping(n)) {
            struct fy_node_pair *p = fy_node_mapping_iterate(n, &it);
            n = p ? fy_node_pair_key(p) : NULL;
        } else {
            n = fy_node_sequence_iterate(n, &it);
        }
    }
    return fallback;
}

__attribute__((format(printf, 3, 4))) static void err_at(sctx *c, pos at, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    ld_diag_add(c->d, LD_DIAG_ERROR, c->file, at.line, at.col, "%s", msg);
}

/* scalar returns the text of <v>, or NULL after reporting that it is not one. */
static const char *scalar(sctx *c, struct fy_node *v, pos at, const char *key)
{
    const char *t = v && fy_node_is_scalar(v) ? fy_node_get_scalar0(v) : NULL;
    if (!t) err_at(c, at, "'%s' must be a single value", key);
    return t;
}

static int get_number(sctx *c, struct fy_node *v, pos at, const char *key, double lo, double hi,
                      double *out)
{
    const char *t = scalar(c, v, at, key);
    if (!t) return -1;
    char *end;
    errno = 0;
    double x = strtod(t, &end);
    if (errno || end == t || *end || !isfinite(x)) {
        err_at(c, at, "'%s': '%s' is not a number", key, t);
        return -1;
    }
    if (x < lo || x > hi) {
        err_at(c, at, "'%s': %g is out of range (%g to %g)", key, x, lo, hi);
        return -1;
    }
    *out = x;
    return 0;
}

static int get_duration(sctx *c, struct fy_node *v, pos at, const char *key, double *seconds)
{
    const char *t = scalar(c, v, at, key);
    uint64_t ms;
    if (!t) return -1;
    if (ld_parse_duration(t, &ms) != 0) {
        err_at(c, at, "'%s': '%s' is not a duration (e.g. 90s, 10m, 1h30m)", key, t);
        return -1;
    }
    *seconds = (double)ms / 1000.0;
    return 0;
}

static int get_dist(sctx *c, struct fy_node *v, pos at, const char *key, lg_dist *out)
{
    const char *t = scalar(c, v, at, key);
    char why[256];
    if (!t) return -1;
    if (lg_dist_parse(out, t, why, sizeof why) != 0) {
        err_at(c, at, "'%s': %s", key, why);
        return -1;
    }
    return 0;
}

static int get_status(sctx *c, struct fy_node *v, pos at, const char *key, int *out)
{
    const char *t = scalar(c, v, at, key);
    if (!t) return -1;
    if (ld_enum_parse(&linkd__v1__status__descriptor, t, out) != 0) {
        err_at(c, at, "'%s': unknown status '%s' (known: actual, exercise, test)", key, t);
        return -1;
    }
    return 0;
}

static void get_text(sctx *c, struct fy_node *v, pos at, const char *key, char *buf, size_t len)
{
    const char *t = scalar(c, v, at, key);
    if (!t) return;
    if (strlen(t) >= len) err_at(c, at, "'%s' is longer than %zu bytes", key, len - 1);
    snprintf(buf, len, "%s", t);
}

/* parse_rate reads "1000" or "100..1000" (a linear ramp). */
static int parse_one_rate(const char *t, size_t len, double *out)
{
    char buf[32], *end;
    if (len == 0 || len >= sizeof buf) return -1;
    memcpy(buf, t, len);
    buf[len] = '\0';
    errno = 0;
    double x = strtod(buf, &end);
    if (errno || end == buf || *end || !isfinite(x) || x < 0 || x > 10e6) return -1;
    *out = x;
    return 0;
}

static int parse_rate(const char *t, double *from, double *to)
{
    const char *dots = strstr(t, "..");
    if (!dots) {
        if (parse_one_rate(t, strlen(t), from) != 0) return -1;
        *to = *from;
        return 0;
    }
    if (parse_one_rate(t, (size_t)(dots - t), from) != 0) return -1;
    return parse_one_rate(dots + 2, strlen(dots + 2), to);
}

/* ---- mappings ----------------------------------------------------------------- */

/* for_each_key calls <fn> for every key of mapping <map>; keys must be plain. */
typedef void (*key_fn)(sctx *c, const char *key, pos key_at, struct fy_node *v, pos v_at, void *obj);

static int for_each_key(sctx *c, struct fy_node *map, pos map_at, const char *what, key_fn fn,
                        void *obj)
{
    if (!map || !fy_node_is_mapping(map)) {
        err_at(c, map_at, "%s must be a mapping", what);
        return -1;
    }
    void *it = NULL;
    struct fy_node_pair *p;
    while ((p = fy_node_mapping_iterate(map, &it)) != NULL) {
        struct fy_node *k = fy_node_pair_key(p), *v = fy_node_pair_value(p);
        pos kat = pos_of(k, map_at);
        const char *name = k && fy_node_is_scalar(k) ? fy_node_get_scalar0(k) : NULL;
        if (!name) {
            err_at(c, kat, "keys of %s must be plain names", what);
            continue;
        }
        if (!v || (fy_node_is_scalar(v) && fy_node_get_style(v) == FYNS_PLAIN &&
                   !*fy_node_get_scalar0(v))) {
            err_at(c, kat, "'%s' has no value", name);
            continue;
        }
        fn(c, name, kat, v, pos_of(v, kat), obj);
    }
    return 0;
}

static void unknown(sctx *c, pos at, const char *key, const char *in, const char *known)
{
    err_at(c, at, "unknown key '%s' in %s (known: %s)", key, in, known);
}

static void mix_key(sctx *c, const char *key, pos kat, struct fy_node *v, pos vat, void *obj)
{
    lg_mix *m = obj;
    double w;
    if (get_number(c, v, vat, key, 0, 1e9, &w) != 0) return;
    int rv = lg_mix_add_key(m, key, w);
    if (rv == LD_ENOENT)
        err_at(c, kat,
               "unknown event kind or category '%s' in mix (a kind: call, sensor, petition; a "
               "category such as fire, smoke, wage_arrears; or kind.category)",
               key);
    else if (rv != 0)
        err_at(c, kat, "too many entries in mix (at most %d)", LG_MAX_MIX);
}

static void read_mix(sctx *c, struct fy_node *v, pos at, lg_mix *m)
{
    memset(m, 0, sizeof *m);
    for_each_key(c, v, at, "mix", mix_key, m);
    if (fy_node_is_mapping(v) && !(m->total > 0)) err_at(c, at, "the weights of mix add up to 0");
}

static void place_key(sctx *c, const char *key, pos kat, struct fy_node *v, pos vat, void *obj)
{
    lg_place *p = obj;
    double x;
    if (strcmp(key, "district") == 0) get_text(c, v, vat, key, p->district, sizeof p->district);
    else if (strcmp(key, "grid") == 0) get_text(c, v, vat, key, p->grid, sizeof p->grid);
    else if (strcmp(key, "address") == 0) get_text(c, v, vat, key, p->address, sizeof p->address);
    else if (strcmp(key, "lat") == 0) {
        if (get_number(c, v, vat, key, -90, 90, &p->lat) == 0) p->has_coords |= 1;
    } else if (strcmp(key, "lon") == 0) {
        if (get_number(c, v, vat, key, -180, 180, &p->lon) == 0) p->has_coords |= 2;
    } else if (strcmp(key, "devices") == 0) {
        if (get_number(c, v, vat, key, 1, 1e7, &x) == 0) p->devices = (unsigned)x;
    } else
        unknown(c, kat, key, "place", "district, grid, address, lat, lon, devices");
}

static void term_key(sctx *c, const char *key, pos kat, struct fy_node *v, pos vat, void *obj)
{
    lg_term_profile *t = obj;
    double x;
    if (strcmp(key, "staffed") == 0) {
        const char *s = fy_node_is_scalar(v) ? fy_node_get_scalar0(v) : NULL;
        if (s && strcmp(s, "all") == 0) t->staffed = -1, t->set |= LG_TP_STAFFED;
        else if (get_number(c, v, vat, key, 0, LD_MAX_LEVELS, &x) == 0)
            t->staffed = (int)x, t->set |= LG_TP_STAFFED;
    } else if (strcmp(key, "acknowledge") == 0) {
        if (get_dist(c, v, vat, key, &t->ack) == 0) t->set |= LG_TP_ACK;
    } else if (strcmp(key, "arrive") == 0) {
        if (get_dist(c, v, vat, key, &t->arrive) == 0) t->set |= LG_TP_ARRIVE;
    } else if (strcmp(key, "resolve") == 0) {
        if (get_dist(c, v, vat, key, &t->resolve) == 0) t->set |= LG_TP_RESOLVE;
    } else if (strcmp(key, "feedback") == 0) {
        if (get_dist(c, v, vat, key, &t->feedback) == 0) t->set |= LG_TP_FEEDBACK;
    } else if (strcmp(key, "no_show") == 0) {
        if (get_number(c, v, vat, key, 0, 1, &t->no_show) == 0) t->set |= LG_TP_NOSHOW;
    } else if (strcmp(key, "offline_every") == 0) {
        if (get_dist(c, v, vat, key, &t->offline_every) == 0) t->set |= LG_TP_OFF_EVERY;
    } else if (strcmp(key, "offline_for") == 0) {
        if (get_dist(c, v, vat, key, &t->offline_for) == 0) t->set |= LG_TP_OFF_FOR;
    } else if (strcmp(key, "departments") != 0) {
        unknown(c, kat, key, "terminals",
                "staffed, acknowledge, arrive, resolve, feedback, no_show, offline_every, "
                "offline_for, departments");
    }
}

static void dept_key(sctx *c, const char *key, pos kat, struct fy_node *v, pos vat, void *obj)
{
    lg_scenario *s = obj;
    if (s->ndepts == LG_MAX_DEPT_PROFILES) {
        err_at(c, kat, "too many departments under terminals (at most %d)", LG_MAX_DEPT_PROFILES);
        return;
    }
    lg_dept_profile *dp = &s->depts[s->ndepts++];
    memset(dp, 0, sizeof *dp);
    snprintf(dp->dept, sizeof dp->dept, "%s", key);
    dp->line = kat.line;
    dp->col = kat.col;
    for_each_key(c, v, vat, "a department's terminals", term_key, &dp->p);
}

static void read_terminals(sctx *c, struct fy_node *v, pos at)
{
    lg_term_profile *t = &c->s->terminals;
    if (for_each_key(c, v, at, "terminals", term_key, t) != 0) return;
    struct fy_node *depts = fy_node_mapping_lookup_by_string(v, "departments", FY_NT);
    if (depts) for_each_key(c, depts, pos_of(depts, at), "departments", dept_key, c->s);
}

typedef struct phase_b {
    lg_phase *p;
    int has_duration, has_rate;
} phase_b;

static void phase_key(sctx *c, const char *key, pos kat, struct fy_node *v, pos vat, void *obj)
{
    phase_b *b = obj;
    lg_phase *p = b->p;
    if (strcmp(key, "name") == 0) get_text(c, v, vat, key, p->name, sizeof p->name);
    else if (strcmp(key, "duration") == 0) {
        if (get_duration(c, v, vat, key, &p->duration_s) == 0) b->has_duration = 1;
    } else if (strcmp(key, "rate") == 0) {
        const char *t = scalar(c, v, vat, key);
        if (t && parse_rate(t, &p->rate_from, &p->rate_to) != 0)
            err_at(c, vat, "'rate': '%s' is not a rate: events per second, e.g. 500, or a ramp "
                           "100..1000 (0 to 10000000)", t);
        else if (t) b->has_rate = 1;
    } else if (strcmp(key, "mix") == 0) {
        read_mix(c, v, vat, &p->mix);
        p->has_mix = 1;
    } else if (strcmp(key, "place") == 0) {
        for_each_key(c, v, vat, "place", place_key, &p->place);
        p->has_place = 1;
    } else if (strcmp(key, "petitioners") == 0) {
        const char *t = scalar(c, v, vat, key);
        unsigned lo, hi;
        char tail;
        int n = t ? sscanf(t, "%u..%u%c", &lo, &hi, &tail) : 0;
        if (n == 1) hi = lo;
        if (t && ((n != 1 && n != 2) || lo == 0 || hi < lo || hi > 100000))
            err_at(c, vat, "'petitioners': '%s' is not a count or a range such as 20..300", t);
        else if (t) p->petitioners_min = lo, p->petitioners_max = hi;
    } else if (strcmp(key, "status") == 0) {
        get_status(c, v, vat, key, &p->status);
    } else {
        unknown(c, kat, key, "phase", "name, duration, rate, mix, place, petitioners, status");
    }
}

static void read_phases(sctx *c, struct fy_node *v, pos at)
{
    lg_scenario *s = c->s;
    if (!fy_node_is_sequence(v)) {
        err_at(c, at, "'phases' must be a list of phases");
        return;
    }
    void *it = NULL;
    struct fy_node *item;
    while ((item = fy_node_sequence_iterate(v, &it)) != NULL) {
        pos iat = pos_of(item, at);
        if (s->nphases == LG_MAX_PHASES) {
            err_at(c, iat, "too many phases (at most %d)", LG_MAX_PHASES);
            return;
        }
        phase_b b = {&s->phases[s->nphases], 0, 0};
        memset(b.p, 0, sizeof *b.p);
        snprintf(b.p->name, sizeof b.p->name, "phase %d", s->nphases + 1);
        if (for_each_key(c, item, iat, "a phase", phase_key, &b) != 0) continue;
        if (!b.has_duration) err_at(c, iat, "phase '%s' is missing 'duration'", b.p->name);
        if (!b.has_rate) err_at(c, iat, "phase '%s' is missing 'rate'", b.p->name);
        s->nphases++;
    }
    if (s->nphases == 0) err_at(c, at, "'phases' is empty: a scenario needs at least one phase");
}

static void top_key(sctx *c, const char *key, pos kat, struct fy_node *v, pos vat, void *obj)
{
    lg_scenario *s = c->s;
    double x;
    if (strcmp(key, "scenario") == 0) get_text(c, v, vat, key, s->name, sizeof s->name);
    else if (strcmp(key, "description") == 0)
        get_text(c, v, vat, key, s->description, sizeof s->description);
    else if (strcmp(key, "status") == 0) get_status(c, v, vat, key, &s->status);
    else if (strcmp(key, "arrivals") == 0) {
        const char *t = scalar(c, v, vat, key);
        if (t && strcmp(t, "poisson") == 0) s->poisson = 1;
        else if (t && strcmp(t, "constant") == 0) s->poisson = 0;
        else if (t) err_at(c, vat, "'arrivals': '%s' is neither poisson nor constant", t);
    } else if (strcmp(key, "time_scale") == 0) {
        if (get_number(c, v, vat, key, 0.001, 1e6, &x) == 0) s->time_scale = x;
    } else if (strcmp(key, "mix") == 0) read_mix(c, v, vat, &s->mix);
    else if (strcmp(key, "terminals") == 0) read_terminals(c, v, vat);
    else if (strcmp(key, "phases") == 0) read_phases(c, v, vat);
    else
        unknown(c, kat, key, "a scenario",
                "scenario, description, status, arrivals, time_scale, mix, terminals, phases");
}

/* ---- whole file --------------------------------------------------------------- */

void lg_scenario_defaults(lg_scenario *s)
{
    memset(s, 0, sizeof *s);
    snprintf(s->name, sizeof s->name, "flags");
    s->status = LINKD__V1__STATUS__STATUS_TEST;
    s->time_scale = 1;
    lg_mix_default(&s->mix);
    s->terminals.staffed = -1;
    s->terminals.ack.kind = LG_DIST_FIXED;   /* at once */
}

static char *read_all(const char *path, size_t *len, int *rv)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        *rv = errno == ENOENT ? LD_ENOENT : LD_EIO;
        return NULL;
    }
    char *buf = malloc(MAX_FILE + 1);
    size_t n = buf ? fread(buf, 1, MAX_FILE + 1, f) : 0;
    int bad = !buf || ferror(f) || n > MAX_FILE;
    fclose(f);
    if (bad) {
        free(buf);
        *rv = buf ? LD_EIO : LD_ENOMEM;
        return NULL;
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}

/* utf8_len returns the length of the UTF-8 sequence at <p>, or 0 if it is
 * not valid (overlong forms and surrogates included). */
static size_t utf8_len(const unsigned char *p, const unsigned char *end)
{
    unsigned char c = *p, lo = 0x80, hi = 0xBF;
    size_t n;
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF) n = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        if (c == 0xE0) lo = 0xA0;
        if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F;
    } else
        return 0;
    if ((size_t)(end - p) < n || p[1] < lo || p[1] > hi) return 0;
    for (size_t i = 2; i < n; i++)
        if (p[i] < 0x80 || p[i] > 0xBF) return 0;
    return n;
}

/* check_text refuses what libfyaml must not see: invalid UTF-8 loops it for
 * ever (found by fuzzing the rule loader), and control characters. */
static int check_text(sctx *c, const char *buf, size_t len)
{
    const unsigned char *p = (const unsigned char *)buf, *end = p + len;
    int line = 1, col = 1;
    while (p < end) {
        size_t n = utf8_len(p, end);
        if (n == 0) {
            err_at(c, (pos){line, col}, "not UTF-8 text: byte 0x%02x; scenario files are UTF-8", *p);
            return -1;
        }
        if (n == 1 && (*p < 0x20 || *p == 0x7f) && *p != '\n' && *p != '\t' && *p != '\r') {
            err_at(c, (pos){line, col}, "control character 0x%02x in a scenario file", *p);
            return -1;
        }
        if (*p == '\n') line++, col = 1;
        else col++;
        p += n;
    }
    return 0;
}

int lg_scenario_load(lg_scenario *s, const char *path, ld_diag *d)
{
    size_t len = 0, errors0 = d->nerrors;
    int rv = 0;
    lg_scenario_defaults(s);
    snprintf(s->file, sizeof s->file, "%s", path);
    const char *base = strrchr(path, '/');
    snprintf(s->name, sizeof s->name, "%s", base ? base + 1 : path);
    char *buf = read_all(path, &len, &rv);
    if (!buf) {
        ld_diag_add(d, LD_DIAG_ERROR, path, 0, 0, "cannot read the scenario: %s", ld_strerror(rv));
        return rv;
    }
    sctx c = {path, d, s};
    struct fy_diag_cfg dcfg;
    fy_diag_cfg_default(&dcfg);
    dcfg.fp = NULL;
    dcfg.level = FYET_WARNING;
    dcfg.colorize = false;
    struct fy_diag *fd = NULL;
    struct fy_parser *fyp = NULL;
    struct fy_document *doc = NULL;
    if (check_text(&c, buf, len) != 0) goto out;
    rv = LD_ENOMEM;
    if (!(fd = fy_diag_create(&dcfg))) goto fail;
    fy_diag_set_collect_errors(fd, true);
    struct fy_parse_cfg pcfg = {.flags = FYPCF_QUIET | FYPCF_RESOLVE_DOCUMENT, .diag = fd};
    if (!(fyp = fy_parser_create(&pcfg)) || fy_parser_set_string(fyp, buf, len) != 0) goto fail;
    doc = fy_parse_load_document(fyp);
    void *it = NULL;
    struct fy_diag_error *e;
    int yaml_errors = 0;
    while ((e = fy_diag_errors_iterate(fd, &it)) != NULL)
        if (e->type >= FYET_ERROR) {
            err_at(&c, (pos){e->line > 0 ? e->line : 1, e->column > 0 ? e->column : 1},
                   "YAML syntax: %s", e->msg);
            yaml_errors++;
        }
    if (!yaml_errors) {
        struct fy_node *root = doc ? fy_document_root(doc) : NULL;
        if (!root) err_at(&c, (pos){1, 1}, "the scenario is empty");
        else for_each_key(&c, root, pos_of(root, (pos){1, 1}), "a scenario", top_key, NULL);
        if (root && s->nphases == 0 && !fy_node_mapping_lookup_by_string(root, "phases", FY_NT))
            err_at(&c, pos_of(root, (pos){1, 1}), "the scenario is missing 'phases'");
    }
out:
    rv = d->nerrors > errors0 ? LD_EPARSE : 0;
fail:
    if (rv == LD_ENOMEM) ld_diag_add(d, LD_DIAG_ERROR, path, 0, 0, "out of memory");
    if (doc) fy_parse_document_destroy(fyp, doc);
    if (fyp) fy_parser_destroy(fyp);
    if (fd) fy_diag_destroy(fd);
    free(buf);
    return rv;
}

int lg_phases_parse(lg_scenario *s, const char *spec, char *err, size_t errlen)
{
    char buf[1024];
    if (strlen(spec) >= sizeof buf) {
        snprintf(err, errlen, "--phases: too long");
        return LD_EINVAL;
    }
    strcpy(buf, spec);
    s->nphases = 0;
    char *save = NULL;
    for (char *item = strtok_r(buf, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
        char *at = strchr(item, '@');
        uint64_t ms;
        if (s->nphases == LG_MAX_PHASES) {
            snprintf(err, errlen, "--phases: at most %d", LG_MAX_PHASES);
            return LD_EINVAL;
        }
        lg_phase *p = &s->phases[s->nphases];
        memset(p, 0, sizeof *p);
        if (at) *at = '\0';
        if (!at || ld_parse_duration(item, &ms) != 0 || ms == 0 ||
            parse_rate(at + 1, &p->rate_from, &p->rate_to) != 0) {
            snprintf(err, errlen, "--phases: '%s%s%s' is not DURATION@RATE or DURATION@FROM..TO",
                     item, at ? "@" : "", at ? at + 1 : "");
            return LD_EINVAL;
        }
        p->duration_s = (double)ms / 1000.0;
        snprintf(p->name, sizeof p->name, "%s@%s", item, at + 1);
        s->nphases++;
    }
    if (s->nphases == 0) {
        snprintf(err, errlen, "--phases: empty");
        return LD_EINVAL;
    }
    return 0;
}

lg_term_profile lg_scenario_profile(const lg_scenario *s, const char *dept)
{
    lg_term_profile p = s->terminals;
    for (int i = 0; i < s->ndepts; i++) {
        const lg_dept_profile *d = &s->depts[i];
        if (strcmp(d->dept, dept) != 0) continue;
        if (d->p.set & LG_TP_STAFFED) p.staffed = d->p.staffed;
        if (d->p.set & LG_TP_ACK) p.ack = d->p.ack;
        if (d->p.set & LG_TP_ARRIVE) p.arrive = d->p.arrive;
        if (d->p.set & LG_TP_RESOLVE) p.resolve = d->p.resolve;
        if (d->p.set & LG_TP_FEEDBACK) p.feedback = d->p.feedback;
        if (d->p.set & LG_TP_NOSHOW) p.no_show = d->p.no_show;
        if (d->p.set & LG_TP_OFF_EVERY) p.offline_every = d->p.offline_every;
        if (d->p.set & LG_TP_OFF_FOR) p.offline_for = d->p.offline_for;
    }
    return p;
}

double lg_phase_rate(const lg_phase *p, double t)
{
    if (p->duration_s <= 0) return p->rate_to;
    double f = t / p->duration_s;
    if (f < 0) f = 0;
    if (f > 1) f = 1;
    return p->rate_from + (p->rate_to - p->rate_from) * f;
}
