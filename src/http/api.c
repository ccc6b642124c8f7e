/* api.c: routing, the JSON API and supervisor actions (docs/API.md).
 *
 * Reads are open to loopback peers; other peers need the admin token.
 * Actions always need it. Every error is a JSON object naming the problem
 * (and the field, for a bad body) with the matching status, and is counted. */
#include "http/http_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "core/err.h"
#include "core/log.h"
#include "engine/actions.h"
#include "store/store.h"

extern const unsigned char ld_asset_board_html[], ld_asset_board_js[], ld_asset_board_css[];
extern const size_t ld_asset_board_html_len, ld_asset_board_js_len, ld_asset_board_css_len;

void ld_http_error(ld_http *h, ld_http_answer *a, int status, const char *field, const char *fmt,
                   ...)
{
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    a->status = status;
    a->ctype = "application/json";
    a->www_auth = status == 401;
    ld_buf_reset(&a->body);
    ld_buf_puts(&a->body, "{\"error\":");
    ld_buf_json_str(&a->body, msg);
    ld_buf_printf(&a->body, ",\"status\":%d", status);
    if (field) {
        ld_buf_puts(&a->body, ",\"field\":");
        ld_buf_json_str(&a->body, field);
    }
    ld_buf_puts(&a->body, "}\n");
    if (status >= 400 && status < 600) h->stats.errors_by_status[status]++;
    if (status == 401) h->stats.unauthorized++;
    if (status == 403) h->stats.forbidden++;
}

/* ---- a small JSON object reader: flat objects of strings and numbers ------------- */

#define MAX_FIELDS 8

typedef struct jfield {
    char name[24];
    char value[512];
    int is_string;
} jfield;

typedef struct jobj {
    jfield f[MAX_FIELDS];
    int n;
} jobj;

static const char *skip_ws(const char *p)
{
    while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r') p++;
    return p;
}

static void put_utf8(char **o, char *end, unsigned c)
{
    char tmp[4];
    int n;
    if (c < 0x80) tmp[0] = (char)c, n = 1;
    else if (c < 0x800) tmp[0] = (char)(0xc0 | c >> 6), tmp[1] = (char)(0x80 | (c & 63)), n = 2;
    else tmp[0] = (char)(0xe0 | c >> 12), tmp[1] = (char)(0x80 | ((c >> 6) & 63)),
         tmp[2] = (char)(0x80 | (c & 63)), n = 3;
    for (int i = 0; i < n && *o < end; i++) *(*o)++ = tmp[i];
}

/* read_string reads a JSON string at <p> (at the quote) into out; NULL on error. */
static const char *read_string(const char *p, char *out, size_t len, int *toolong)
{
    char *o = out, *end = out + len - 1;
    if (*p++ != '"') return NULL;
    while (*p && *p != '"') {
        unsigned c = (unsigned char)*p++;
        if (c < 0x20) return NULL;
        if (c == '\\') {
            switch (*p++) {
            case '"': c = '"'; break;
            case '\\': c = '\\'; break;
            case '/': c = '/'; break;
            case 'b': c = '\b'; break;
            case 'f': c = '\f'; break;
            case 'n': c = '\n'; break;
            case 'r': c = '\r'; break;
            case 't': c = '\t'; break;
            case 'u': {
                char hex[5] = {0};
                for (int i = 0; i < 4; i++) {
                    if (!strchr("0123456789abcdefABCDEF", p[i]) || !p[i]) return NULL;
                    hex[i] = p[i];
                }
                p += 4;
                c = (unsigned)strtoul(hex, NULL, 16);
                if (c >= 0xd800 && c <= 0xdfff) c = 0xfffd; /* no surrogate pairs here */
                if (o + 3 > end) *toolong = 1;
                put_utf8(&o, end, c);
                continue;
            }
            default: return NULL;
            }
        }
        if (o < end) *o++ = (char)c;
        else *toolong = 1;
    }
    if (*p != '"') return NULL;
    *o = '\0';
    return p + 1;
}

/* parse_object reads a flat JSON object. Returns 0, or -1 with <err> set. */
static int parse_object(const char *p, jobj *obj, char *err, size_t len, char *field,
                        size_t flen)
{
    obj->n = 0;
    field[0] = '\0';
    p = skip_ws(p);
    if (*p++ != '{') {
        snprintf(err, len, "body: expected a JSON object");
        return -1;
    }
    p = skip_ws(p);
    if (*p == '}') return *skip_ws(p + 1) ? (snprintf(err, len, "body: data after the object"), -1) : 0;
    for (;;) {
        if (obj->n == MAX_FIELDS) {
            snprintf(err, len, "body: more than %d fields", MAX_FIELDS);
            return -1;
        }
        jfield *f = &obj->f[obj->n];
        int toolong = 0;
        field[0] = '\0';
        p = skip_ws(p);
        if (!(p = read_string(p, f->name, sizeof f->name, &toolong)) || toolong) {
            snprintf(err, len, "body: expected a field name (a string of at most %zu bytes)",
                     sizeof f->name - 1);
            return -1;
        }
        snprintf(field, flen, "%s", f->name);
        p = skip_ws(p);
        if (*p++ != ':') {
            snprintf(err, len, "%s: expected ':'", f->name);
            return -1;
        }
        p = skip_ws(p);
        if (*p == '"') {
            f->is_string = 1;
            if (!(p = read_string(p, f->value, sizeof f->value, &toolong))) {
                snprintf(err, len, "%s: not a valid JSON string", f->name);
                return -1;
            }
            if (toolong) {
                snprintf(err, len, "%s: longer than %zu bytes", f->name, sizeof f->value - 1);
                return -1;
            }
        } else {
            size_t n = 0;
            f->is_string = 0;
            while (*p && strchr("0123456789+-.eEtruefalsn", *p) && n < sizeof f->value - 1)
                f->value[n++] = *p++;
            f->value[n] = '\0';
            if (!n) {
                snprintf(err, len, "%s: expected a string or a number", f->name);
                return -1;
            }
        }
        for (int i = 0; i < obj->n; i++)
            if (strcmp(obj->f[i].name, f->name) == 0) {
                snprintf(err, len, "%s: given twice", f->name);
                return -1;
            }
        obj->n++;
        p = skip_ws(p);
        if (*p == ',') {
            p++;
            continue;
        }
        if (*p == '}') break;
        snprintf(err, len, "%s: expected ',' or '}' after the value", f->name);
        return -1;
    }
    field[0] = '\0';
    if (*skip_ws(p + 1)) {
        snprintf(err, len, "body: data after the object");
        return -1;
    }
    return 0;
}

static const char *jget(const jobj *o, const char *name)
{
    for (int i = 0; i < o->n; i++)
        if (strcmp(o->f[i].name, name) == 0) return o->f[i].is_string ? o->f[i].value : NULL;
    return NULL;
}

/* ---- reads ------------------------------------------------------------------------- */

/* query_arg copies the value of <name> in a query string "a=1&b=2". */
static int query_arg(const char *q, const char *name, char *out, size_t len)
{
    size_t n = strlen(name);
    while (q && *q) {
        if (strncmp(q, name, n) == 0 && q[n] == '=') {
            const char *v = q + n + 1, *e = strchr(v, '&');
            size_t m = e ? (size_t)(e - v) : strlen(v);
            if (m >= len) m = len - 1;
            memcpy(out, v, m);
            out[m] = '\0';
            return 1;
        }
        q = strchr(q, '&');
        if (q) q++;
    }
    return 0;
}

#define LIST_DEFAULT 500       /* incidents a list gives without ?limit */
#define LIST_MAX 10000         /* ... and at most */

static void list_incidents(ld_http *h, const ld_http_request *q, ld_http_answer *a)
{
    char dept[48], lim[24];
    int d = -1;
    size_t limit = LIST_DEFAULT;
    if (query_arg(q->query, "department", dept, sizeof dept)) {
        d = ld_rules_department(h->src.engine->rules, dept);
        if (d < 0) {
            ld_http_error(h, a, 400, "department", "department: unknown '%s'", dept);
            return;
        }
    }
    if (query_arg(q->query, "limit", lim, sizeof lim)) {
        char *end;
        unsigned long long v = strtoull(lim, &end, 10);
        if (*end || !*lim || v == 0 || v > LIST_MAX) {
            ld_http_error(h, a, 400, "limit", "limit: expected a whole number from 1 to %d",
                          LIST_MAX);
            return;
        }
        limit = (size_t)v;
    }
    const ld_incident **v;
    size_t n;
    if (ld_http_most_urgent(h, d, limit, &v, &n) != 0) {
        ld_http_error(h, a, 503, NULL, "out of memory");
        return;
    }
    ld_buf *b = &a->body;
    ld_buf_printf(b, "{\"now_ms\":%llu,\"open\":%zu,\"count\":%zu,\"incidents\":[",
                  (unsigned long long)ld_clock_now(h->src.clock), h->src.engine->open_incidents,
                  n);
    for (size_t i = 0; i < n; i++) {
        if (i) ld_buf_put(b, ",", 1);
        ld_json_incident(h, b, v[i], 1);
    }
    ld_buf_puts(b, "]}\n");
    free(v);
}

static void health(ld_http *h, ld_http_answer *a)
{
    ld_buf_printf(&a->body, "{\"status\":\"alive\",\"loop_lag_max_s\":%.3f}\n",
                  h->metrics.lag_max_s);
}

static void ready(ld_http *h, ld_http_answer *a)
{
    ld_http_status st;
    memset(&st, 0, sizeof st);
    h->src.status(h->src.ctx, &st);
    int redis = ld_store_up(h->src.store), rules = st.rules_version != NULL;
    int ok = redis && rules && st.intake_open && !st.stopping && !st.life_safety_only;
    a->status = ok ? 200 : 503;
    ld_buf *b = &a->body;
    ld_buf_printf(b, "{\"status\":\"%s\",\"checks\":{\"rules\":", ok ? "ready" : "degraded");
    ld_buf_puts(b, rules ? "\"loaded\"" : "\"not loaded\"");
    ld_buf_printf(b, ",\"redis\":\"%s\",\"intake\":\"%s\"}", redis ? "up" : "unreachable",
                  st.stopping            ? "stopping"
                  : st.life_safety_only  ? "life-safety only"
                  : st.intake_open       ? "open"
                                         : "recovering");
    ld_buf_puts(b, ",\"rules_version\":");
    ld_buf_json_str(b, st.rules_version);
    if (!ok) {
        ld_buf_puts(b, ",\"degraded\":");
        ld_buf_json_str(b, st.stopping ? "shutting down"
                           : st.life_safety_only
                               ? "redis unreachable: life-safety events are spooled and "
                                 "dispatched, others answered RETRY_LATER"
                           : !redis ? "redis unreachable: intake answers RETRY_LATER"
                                    : "recovering open incidents from redis");
    }
    ld_buf_puts(b, "}\n");
}

static void asset(ld_http_answer *a, const char *ctype, const unsigned char *p, size_t n)
{
    a->ctype = ctype;
    ld_buf_put(&a->body, p, n);
}

/* ---- actions ---------------------------------------------------------------------- */

static int status_of(int rv)
{
    switch (rv) {
    case LD_EINVAL: return 400;
    case LD_ENOENT: return 404;
    case LD_ESTATE: return 409;
    default: return 503;
    }
}

static const char *field_of(const char *err)
{
    static char f[24];
    size_t n = strcspn(err, ":");
    if (n == 0 || n >= sizeof f || strchr(err, ' ') < err + n) return NULL;
    memcpy(f, err, n);
    f[n] = '\0';
    return f;
}

/* check_fields refuses any field not in <known> (400 naming it). */
static int check_fields(ld_http *h, ld_http_answer *a, const jobj *o, const char *const *known)
{
    for (int i = 0; i < o->n; i++) {
        int ok = 0;
        for (const char *const *k = known; *k; k++) ok |= strcmp(*k, o->f[i].name) == 0;
        if (!ok) {
            ld_http_error(h, a, 400, o->f[i].name, "%s: unknown field", o->f[i].name);
            return -1;
        }
        if (!o->f[i].is_string) {
            ld_http_error(h, a, 400, o->f[i].name, "%s: expected a string", o->f[i].name);
            return -1;
        }
    }
    return 0;
}

/* count_action counts an incident-level action under its first task's department. */
static void count_action(ld_http *h, const ld_incident *inc, int kind)
{
    h->metrics.actions[(inc->ntasks ? inc->tasks[0]->dept : 0) * LD_ACTION_KINDS + kind]++;
}

static void split_done(ld_http *h, ld_http_answer *a, const char *inc_id, int rv,
                       const ld_incident *own, const char *err)
{
    if (rv != 0) {
        ld_http_error(h, a, status_of(rv), rv == LD_EINVAL ? field_of(err) : NULL, "%s", err);
        return;
    }
    ld_buf_printf(&a->body, "{\"ok\":true,\"incident\":\"%s\",\"new_incident\":\"%s\","
                  "\"opened\":", inc_id, own->id);
    ld_json_incident(h, &a->body, own, 1);
    ld_buf_puts(&a->body, "}\n");
}

/* A split that waits for its event to be read from ld:events: a whole
 * incident a supervisor merged keeps no copy of it. */
typedef struct split_wait {
    ld_http_wait w;
    char inc_id[LD_INCIDENT_ID_LEN];
    char event_id[512], who[512], why[512];
} split_wait;

/* entry_pb returns the pb field of the single XRANGE entry in <r>, or NULL. */
static const redisReply *entry_pb(const redisReply *r)
{
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 1) return NULL;
    const redisReply *en = r->element[0];
    if (en->type != REDIS_REPLY_ARRAY || en->elements != 2 ||
        en->element[1]->type != REDIS_REPLY_ARRAY)
        return NULL;
    const redisReply *f = en->element[1];
    for (size_t i = 0; i + 1 < f->elements; i += 2)
        if (f->element[i]->type == REDIS_REPLY_STRING && strcmp(f->element[i]->str, "pb") == 0 &&
            f->element[i + 1]->type == REDIS_REPLY_STRING)
            return f->element[i + 1];
    return NULL;
}

static void on_split_event(void *arg, redisReply *r)
{
    split_wait *sw = arg;
    ld_http *h = sw->w.h;
    ld_http_answer *a = ld_http_wait_answer(&sw->w);
    if (!a) { /* the client or HTTP went: the split is not made */
        ld_http_wait_finish(&sw->w);
        free(sw);
        return;
    }
    ld_engine *e = h->src.engine;
    ld_incident *inc = ld_engine_find(e, sw->inc_id), *own = NULL;
    const redisReply *pb = entry_pb(r);
    char err[320] = "";
    if (!r) {
        ld_http_error(h, a, 503, NULL, "redis did not answer while the event was read back");
    } else if (!inc) {
        ld_http_error(h, a, 409, NULL, "incident %s closed meanwhile", sw->inc_id);
    } else if (!pb) {
        ld_http_error(h, a, 409, NULL, "the event of '%.64s' is no longer in ld:events",
                      sw->event_id);
    } else {
        ld_actor who = {sw->who, sw->why};
        int rv = ld_action_split(e, inc, sw->event_id, (const uint8_t *)pb->str, pb->len, &who,
                                 &own, err, sizeof err);
        if (rv == 0) count_action(h, inc, LD_ACT_SPLIT);
        split_done(h, a, sw->inc_id, rv, own, err);
    }
    ld_http_wait_finish(&sw->w);
    free(sw);
}

/* split starts a split: at once if <inc> keeps the event, else after
 * reading it from ld:events. */
static void split(ld_http *h, ld_http_answer *a, ld_incident *inc, const char *ev,
                  const ld_actor *who)
{
    ld_engine *e = h->src.engine;
    char err[320] = "";
    ld_incident *own = NULL;
    const char *sid = ev ? ld_action_split_source(inc, ev) : NULL;
    if (!sid || !who->who || !*who->who || !who->why || !*who->why) {
        int rv = ld_action_split(e, inc, ev, NULL, 0, who, &own, err, sizeof err);
        if (rv == 0) count_action(h, inc, LD_ACT_SPLIT);
        split_done(h, a, inc->id, rv, own, err);
        return;
    }
    if (sid[0] == 'S') {
        ld_http_error(h, a, 409, NULL, "the event of '%.64s' was accepted into the spool as %s "
                      "and cannot be read back by that id", ev, sid);
        return;
    }
    split_wait *sw = calloc(1, sizeof *sw);
    if (!sw) {
        ld_http_error(h, a, 503, NULL, "out of memory");
        return;
    }
    snprintf(sw->inc_id, sizeof sw->inc_id, "%s", inc->id);
    snprintf(sw->event_id, sizeof sw->event_id, "%s", ev);
    snprintf(sw->who, sizeof sw->who, "%s", who->who);
    snprintf(sw->why, sizeof sw->why, "%s", who->why);
    const char *argv[] = {"XRANGE", "ld:events", sid, sid};
    size_t lens[] = {6, 9, strlen(sid), strlen(sid)};
    if (!ld_store_up(h->src.store) ||
        ld_store_commandv(h->src.store, on_split_event, sw, 4, argv, lens) != 0) {
        free(sw);
        ld_http_error(h, a, 503, NULL, "splitting off a merged incident reads its event from "
                      "redis, which is unreachable now");
        return;
    }
    ld_http_wait_start(h, a, &sw->w);
}

static void act(ld_http *h, const ld_http_request *q, ld_http_answer *a, const char *inc_id,
                const char *dept_id, const char *verb)
{
    static const char *const k_reassign[] = {"by", "reason", "department", "terminal", NULL};
    static const char *const k_escalate[] = {"by", "reason", NULL};
    static const char *const k_extend[] = {"by", "reason", "leg", "extend_by", NULL};
    static const char *const k_close[] = {"by", "reason", "disposition", NULL};
    static const char *const k_split[] = {"by", "reason", "event_id", NULL};
    static const char *const k_merge[] = {"by", "reason", "incident", NULL};
    ld_engine *e = h->src.engine;
    const ld_rules *r = e->rules;
    const char *const *known = strcmp(verb, "reassign") == 0   ? k_reassign
                               : strcmp(verb, "escalate") == 0 ? k_escalate
                               : strcmp(verb, "extend") == 0   ? k_extend
                               : strcmp(verb, "close") == 0    ? k_close
                               : strcmp(verb, "split") == 0    ? k_split
                               : strcmp(verb, "unmerge") == 0  ? k_split /* its old name */
                               : strcmp(verb, "merge") == 0    ? k_merge
                                                               : NULL;
    int whole = known == k_close || known == k_split || known == k_merge; /* incident-level */
    if (!known || (dept_id && whole) || (!dept_id && !whole)) {
        ld_http_error(h, a, 404, NULL, "no such action '%s'", verb);
        return;
    }
    if (!h->token[0]) {
        ld_http_error(h, a, 403, NULL, "supervisor actions are disabled: linkd runs without "
                      "--admin-token-file");
        return;
    }
    if (!q->token_given) {
        ld_http_error(h, a, 401, NULL, "supervisor actions need 'Authorization: Bearer <token>'");
        return;
    }
    if (!q->authorized) {
        ld_http_error(h, a, 403, NULL, "the token is not valid");
        return;
    }
    jobj o;
    char err[320], field[24];
    if (parse_object(q->body, &o, err, sizeof err, field, sizeof field) != 0) {
        ld_http_error(h, a, 400, field[0] ? field : "body", "%s", err);
        return;
    }
    if (check_fields(h, a, &o, known) != 0) return;
    ld_actor who = {jget(&o, "by"), jget(&o, "reason")};
    ld_incident *inc = ld_engine_find(e, inc_id);
    if (!inc) {
        if (ld_http_recently_closed(h, inc_id))
            ld_http_error(h, a, 409, NULL, "incident %.48s is already closed", inc_id);
        else
            ld_http_error(h, a, 404, NULL, "no open incident %.48s", inc_id);
        return;
    }
    ld_task *t = NULL;
    if (dept_id) {
        int d = ld_rules_department(r, dept_id);
        t = d >= 0 ? ld_engine_task_of(inc, d) : NULL;
        if (!t) {
            ld_http_error(h, a, 404, NULL, "incident %s has no task for '%.48s'", inc->id, dept_id);
            return;
        }
    }
    int rv;
    err[0] = '\0';
    if (strcmp(verb, "reassign") == 0) {
        const char *dn = jget(&o, "department"), *tn = jget(&o, "terminal");
        int d = -1, term = -1;
        if (dn && (d = ld_rules_department(r, dn)) < 0) {
            ld_http_error(h, a, 400, "department", "department: unknown '%.48s'", dn);
            return;
        }
        if (tn && (term = ld_rules_terminal(r, tn)) < 0) {
            ld_http_error(h, a, 400, "terminal", "terminal: unknown '%.48s'", tn);
            return;
        }
        rv = ld_action_reassign(e, t, d, term, &who, err, sizeof err);
    } else if (strcmp(verb, "escalate") == 0) {
        rv = ld_action_escalate(e, t, &who, err, sizeof err);
    } else if (strcmp(verb, "extend") == 0) {
        const char *leg = jget(&o, "leg"), *by = jget(&o, "extend_by");
        int l = -1;
        uint64_t ms = 0;
        for (int i = 0; leg && i < LD_LEG_COUNT; i++)
            if (strcmp(leg, ld_leg_label[i]) == 0) l = i;
        if (l < 0) {
            ld_http_error(h, a, 400, "leg", "leg: expected acknowledge, arrive, resolve or feedback");
            return;
        }
        if (!by || ld_parse_duration(by, &ms) != 0) {
            ld_http_error(h, a, 400, "extend_by", "extend_by: expected a duration such as "
                          "\"10m\" or \"1h30m\"");
            return;
        }
        rv = ld_action_extend(e, t, l, ms, &who, err, sizeof err);
    } else if (known == k_split) {
        split(h, a, inc, jget(&o, "event_id"), &who);
        return;
    } else if (known == k_merge) {
        const char *other = jget(&o, "incident");
        ld_incident *from = other ? ld_engine_find(e, other) : NULL;
        if (!other || !*other) {
            ld_http_error(h, a, 400, "incident", "incident: the incident to merge into %s is "
                          "required", inc->id);
            return;
        }
        if (!from && ld_http_recently_closed(h, other)) {
            ld_http_error(h, a, 409, "incident", "incident %.48s is already closed", other);
            return;
        }
        if (!from) {
            ld_http_error(h, a, 404, "incident", "no open incident %.48s", other);
            return;
        }
        rv = ld_action_merge(e, inc, from, &who, err, sizeof err);
        if (rv == 0) count_action(h, inc, LD_ACT_MERGE);
    } else {
        rv = ld_action_close(e, inc, jget(&o, "disposition"), &who, err, sizeof err);
        if (rv == 0) {
            count_action(h, inc, LD_ACT_CLOSE);
            ld_buf_printf(&a->body, "{\"ok\":true,\"incident\":\"%s\",\"closed\":true}\n", inc_id);
            return;
        }
    }
    if (rv != 0) {
        ld_http_error(h, a, status_of(rv), rv == LD_EINVAL ? field_of(err) : NULL, "%s", err);
        return;
    }
    ld_buf_puts(&a->body, "{\"ok\":true,\"incident\":");
    ld_json_incident(h, &a->body, inc, 1);
    ld_buf_puts(&a->body, "}\n");
}

/* ---- routing ---------------------------------------------------------------------- */

/* split_path splits "/api/incidents/<id>/tasks/<dept>/<verb>" into parts. */
static int split_path(const char *path, char parts[][LD_TASK_ID_LEN], int max)
{
    int n = 0;
    while (*path == '/') path++;
    while (*path && n < max) {
        size_t len = strcspn(path, "/");
        if (len >= LD_TASK_ID_LEN) return -1;
        memcpy(parts[n], path, len);
        parts[n][len] = '\0';
        n++;
        path += len;
        while (*path == '/') path++;
    }
    return *path ? -1 : n;
}

/* POST /api/rules/reload: the rules reloaded as on SIGHUP, by a supervisor
 * with the token; the answer says whether the new set runs. */
static void reload(ld_http *h, const ld_http_request *q, ld_http_answer *a, int post)
{
    if (!post) {
        a->allow = "POST";
        ld_http_error(h, a, 405, NULL, "/api/rules/reload: use POST");
        return;
    }
    if (!h->token[0] || !q->token_given || !q->authorized) {
        ld_http_error(h, a, !h->token[0] ? 403 : q->token_given ? 403 : 401, NULL,
                      !h->token[0] ? "reloading over HTTP is disabled: linkd runs without "
                                     "--admin-token-file"
                      : q->token_given ? "the token is not valid"
                                       : "a reload needs 'Authorization: Bearer <token>'");
        return;
    }
    if (!h->src.reload) {
        ld_http_error(h, a, 503, NULL, "this linkd cannot reload its rules");
        return;
    }
    char msg[512];
    int ok = h->src.reload(h->src.ctx, "http", msg, sizeof msg);
    a->status = ok ? 200 : 409;
    ld_buf_puts(&a->body, ok ? "{\"reloaded\":true,\"message\":" : "{\"reloaded\":false,\"message\":");
    ld_buf_json_str(&a->body, msg);
    ld_buf_puts(&a->body, "}\n");
}

void ld_http_route(ld_http *h, const ld_http_request *q, ld_http_answer *a)
{
    int get = strcmp(q->method, "GET") == 0 || strcmp(q->method, "HEAD") == 0;
    int post = strcmp(q->method, "POST") == 0;
    const char *p = q->path;
    char parts[8][LD_TASK_ID_LEN];
    int n = split_path(p, parts, 8);

    if (strcmp(p, "/healthz") == 0 || strcmp(p, "/readyz") == 0) {
        if (!get) goto not_allowed_get;
        if (p[1] == 'h') health(h, a);
        else ready(h, a);
        return;
    }
    /* Beyond health, peers other than loopback need the token. */
    if (!q->loopback && !q->authorized) {
        ld_http_error(h, a, q->token_given ? 403 : 401, NULL,
                      q->token_given ? "the token is not valid"
                                     : "from outside loopback, send 'Authorization: Bearer <token>'");
        return;
    }
    if (n >= 1 && strcmp(parts[0], "api") == 0 && n >= 4 && strcmp(parts[1], "incidents") == 0) {
        /* POST /api/incidents/<id>/close, /api/incidents/<id>/tasks/<dept>/<verb> */
        if (!post) {
            a->allow = "POST";
            ld_http_error(h, a, 405, NULL, "%s: use POST", p);
            return;
        }
        if (n == 4) act(h, q, a, parts[2], NULL, parts[3]);
        else if (n == 6 && strcmp(parts[3], "tasks") == 0) act(h, q, a, parts[2], parts[4], parts[5]);
        else ld_http_error(h, a, 404, NULL, "no such resource %s", p);
        return;
    }
    if (strcmp(p, "/api/rules/reload") == 0) {
        reload(h, q, a, post);
        return;
    }
    if (strcmp(p, "/api/rules/reloads") == 0 && get) {
        /* Every reload and its outcome, newest first (also in Redis: ld:reloads). */
        a->ctype = "application/json";
        if (h->src.reloads) h->src.reloads(h->src.ctx, &a->body);
        else ld_buf_puts(&a->body, "[]");
        return;
    }
    if (!get) goto not_allowed_get;
    if (strcmp(p, "/metrics") == 0) {
        a->ctype = "text/plain; version=0.0.4; charset=utf-8";
        ld_http_render_metrics(h, &a->body);
    } else if (strcmp(p, "/") == 0 || strcmp(p, "/board") == 0) {
        asset(a, "text/html; charset=utf-8", ld_asset_board_html, ld_asset_board_html_len);
    } else if (strcmp(p, "/board.js") == 0) {
        asset(a, "application/javascript", ld_asset_board_js, ld_asset_board_js_len);
    } else if (strcmp(p, "/board.css") == 0) {
        asset(a, "text/css", ld_asset_board_css, ld_asset_board_css_len);
    } else if (strcmp(p, "/api/incidents") == 0) {
        list_incidents(h, q, a);
    } else if (n == 3 && strcmp(parts[0], "api") == 0 && strcmp(parts[1], "incidents") == 0) {
        const ld_incident *inc = ld_engine_find(h->src.engine, parts[2]);
        if (!inc) {
            ld_http_error(h, a, 404, NULL, "no open incident %.48s%s", parts[2],
                          ld_http_recently_closed(h, parts[2]) ? " (it is closed)" : "");
            return;
        }
        ld_json_incident(h, &a->body, inc, 1);
        ld_buf_puts(&a->body, "\n");
    } else if (strcmp(p, "/api/terminals") == 0) {
        ld_buf_puts(&a->body, "{\"terminals\":");
        ld_json_terminals(h, &a->body);
        ld_buf_puts(&a->body, "}\n");
    } else if (strcmp(p, "/api/departments") == 0) {
        ld_buf_puts(&a->body, "{\"departments\":");
        ld_json_departments(h, &a->body);
        ld_buf_puts(&a->body, "}\n");
    } else if (strcmp(p, "/api/rules") == 0) {
        ld_json_rules(h, &a->body);
        ld_buf_puts(&a->body, "\n");
    } else if (strcmp(p, "/api/compliance") == 0) {
        ld_json_compliance(h, &a->body);
        ld_buf_puts(&a->body, "\n");
    } else if (strcmp(p, "/api") == 0) {
        ld_buf_puts(&a->body,
                    "{\"endpoints\":[\"GET /api/incidents[?department=D&limit=N]\","
                    "\"GET /api/incidents/<id>\",\"GET /api/terminals\",\"GET /api/departments\","
                    "\"GET /api/rules\",\"GET /api/compliance\","
                    "\"POST /api/incidents/<id>/tasks/<department>/reassign\","
                    "\"POST /api/incidents/<id>/tasks/<department>/escalate\","
                    "\"POST /api/incidents/<id>/tasks/<department>/extend\","
                    "\"POST /api/incidents/<id>/close\",\"POST /api/incidents/<id>/merge\","
                    "\"POST /api/incidents/<id>/split\",\"POST /api/rules/reload\",\"GET /metrics\",\"GET /healthz\","
                    "\"GET /readyz\",\"GET / (board)\"]}\n");
    } else {
        ld_http_error(h, a, 404, NULL, "no such resource %s", p);
    }
    return;
not_allowed_get:
    a->allow = "GET";
    ld_http_error(h, a, 405, NULL, "%s: use GET", p);
}
