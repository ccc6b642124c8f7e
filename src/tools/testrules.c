/* testrules.c: `linkctl test-rules FILE...`: unit tests for a rule set, like
 * `promtool test rules`.
 *
 * A test file lists sample events and what the rules must make of them: the
 * routes taken, the incident's priority, the departments and each task's
 * budgets; then steps at later virtual times (updates from terminals,
 * deadlines passing) with the escalation level, terminal and state each task
 * must be at. Each test runs the real engine in this process on a manual
 * clock: no Redis, no daemon, and a 60-day petition takes microseconds.
 * Every mismatch is printed as "file:line:col: test 'name': ..." at the
 * expectation that failed. Format: docs/RULES.md, "Testing rules". */
#include <getopt.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include <libfyaml.h>

#include "core/diag.h"
#include "core/err.h"
#include "core/log.h"
#include "engine/engine.h"
#include "engine/upgrade.h"
#include "rules/rules.h"
#include "tools/linkctl.h"

#define MAX_TESTS 10000
#define DEFAULT_START "2026-11-23 12:00" /* a Monday noon, local time */

typedef struct run {
    const char *file;
    ld_rules *rules;
    const char *test;       /* name of the running test */
    unsigned checks, failed_checks;
    unsigned tests, failed_tests;
    int test_failed;
    int bad_file;           /* the test file itself is wrong: exit 65 */
    int verbose;
} run;

/* ---- positions and messages ------------------------------------------------ */

/* node_pos finds where <n> was written: its first scalar's start. */
static void node_pos(struct fy_node *n, int *line, int *col)
{
    *line = *col = 0;
    while (n) {
        if (fy_node_is_scalar(n)) {
            struct fy_token *t = fy_node_get_scalar_token(n);
            const struct fy_mark *m = t ? fy_token_start_mark(t) : NULL;
            if (m) *line = m->line + 1, *col = m->column + 1;
            return;
        }
        void *it = NULL;
        if (fy_node_is_mapping(n)) {
            struct fy_node_pair *p = fy_node_mapping_iterate(n, &it);
            n = p ? fy_node_pair_key(p) : NULL;
        } else {
            n = fy_node_sequence_iterate(n, &it);
        }
    }
}

__attribute__((format(printf, 3, 4))) static void fail(run *R, struct fy_node *at,
                                                       const char *fmt, ...)
{
    int line, col;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    node_pos(at, &line, &col);
    if (R->test)
        printf("%s:%d:%d: test '%s': %s\n", R->file, line, col, R->test, msg);
    else
        printf("%s:%d:%d: %s\n", R->file, line, col, msg);
    R->test_failed = 1;
}

/* bad reports a mistake in the test file (not a rule mismatch). */
#define bad(R, at, ...) (fail((R), (at), __VA_ARGS__), (R)->bad_file = 1)

static void check(run *R, struct fy_node *at, int ok, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void check(run *R, struct fy_node *at, int ok, const char *fmt, ...)
{
    R->checks++;
    if (ok) return;
    R->failed_checks++;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fail(R, at, "%s", msg);
}

/* ---- reading ----------------------------------------------------------------- */

static const char *text_of(struct fy_node *n)
{
    return n && fy_node_is_scalar(n) ? fy_node_get_scalar0(n) : NULL;
}

/* each_key walks mapping <map>, checking every key against <known> (NULL-
 * terminated), and returns the values by position in <out>. */
static int each_key(run *R, struct fy_node *map, const char *what, const char *const *known,
                    struct fy_node **out)
{
    int n = 0;
    while (known[n]) out[n] = NULL, n++;
    if (!map || !fy_node_is_mapping(map)) {
        bad(R, map, "%s must be a mapping", what);
        return -1;
    }
    void *it = NULL;
    struct fy_node_pair *p;
    int rv = 0;
    while ((p = fy_node_mapping_iterate(map, &it)) != NULL) {
        const char *k = text_of(fy_node_pair_key(p));
        int i = 0;
        while (known[i] && (!k || strcmp(known[i], k) != 0)) i++;
        if (!known[i]) {
            char list[256] = "";
            for (int j = 0; known[j]; j++)
                snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", j ? ", " : "",
                         known[j]);
            bad(R, fy_node_pair_key(p), "unknown key '%s' in %s (known: %s)", k ? k : "?", what,
                list);
            rv = -1;
            continue;
        }
        out[i] = fy_node_pair_value(p);
    }
    return rv;
}

static int get_duration(run *R, struct fy_node *n, const char *what, uint64_t *ms)
{
    const char *v = text_of(n);
    if (!v || ld_parse_duration(v, ms) != 0) {
        bad(R, n, "'%s' must be a duration such as 30s, 8m, 2h or 15d", what);
        return -1;
    }
    return 0;
}

static int get_u32(run *R, struct fy_node *n, const char *what, uint32_t *out)
{
    const char *v = text_of(n);
    if (!v || ctl_parse_u32(v, out) != 0) {
        bad(R, n, "'%s' must be a whole number", what);
        return -1;
    }
    return 0;
}

static int get_double(run *R, struct fy_node *n, const char *what, double *out)
{
    const char *v = text_of(n);
    if (!v || ctl_parse_double(v, out) != 0) {
        bad(R, n, "'%s' must be a number", what);
        return -1;
    }
    return 0;
}

static int get_enum(run *R, struct fy_node *n, const ProtobufCEnumDescriptor *d,
                    const char *what, int *out)
{
    const char *v = text_of(n);
    if (!v || ld_enum_parse(d, v, out) != 0) {
        char list[400];
        ld_enum_list(d, list, sizeof list);
        bad(R, n, "unknown %s '%s' (known: %s)", what, v ? v : "?", list);
        return -1;
    }
    return 0;
}

/* ---- the event ----------------------------------------------------------------- */

#define MAX_REFS 32

typedef struct sample {
    Linkd__V1__Envelope env;
    Linkd__V1__Call110 call;
    Linkd__V1__SensorAlarm sensor;
    Linkd__V1__Petition petition;
    Linkd__V1__Location loc;
    char *refs[MAX_REFS];
} sample;

enum { EV_KIND, EV_CATEGORY, EV_PRIORITY, EV_STATUS, EV_DISTRICT, EV_GRID, EV_PEOPLE,
       EV_VALUE, EV_THRESHOLD, EV_OFFICE, EV_BYPASS, EV_REPEAT, EV_ADDRESS, EV_CALLER,
       EV_SENSOR_ID, EV_PETITIONER_REFS, EV_SOURCE, EV_LAT, EV_LON, EV_N };
static const char *const event_keys[EV_N + 1] = {
    "kind", "category", "priority", "status", "district", "grid", "people",
    "value", "threshold", "office", "bypass", "repeat", "address", "caller",
    "sensor_id", "petitioner_refs", "source", "lat", "lon", NULL};

/* read_refs reads `petitioner_refs: [A, B]` (or one name) into the petition. */
static int read_refs(run *R, struct fy_node *n, sample *s)
{
    s->petition.petitioner_refs = s->refs;
    if (fy_node_is_scalar(n)) {
        s->refs[0] = (char *)text_of(n);
        s->petition.n_petitioner_refs = 1;
        return 0;
    }
    if (!fy_node_is_sequence(n)) {
        bad(R, n, "'petitioner_refs' must be a list of names");
        return -1;
    }
    void *it = NULL;
    struct fy_node *item;
    while ((item = fy_node_sequence_iterate(n, &it)) != NULL) {
        if (s->petition.n_petitioner_refs == MAX_REFS || !text_of(item)) {
            bad(R, item, "'petitioner_refs' takes at most %d names", MAX_REFS);
            return -1;
        }
        s->refs[s->petition.n_petitioner_refs++] = (char *)text_of(item);
    }
    return 0;
}

static int read_event(run *R, struct fy_node *map, sample *s)
{
    struct fy_node *v[EV_N];
    /* After an unknown key, go on: the known ones may hold mistakes too. */
    int rv = each_key(R, map, "event", event_keys, v);
    if (!map || !fy_node_is_mapping(map)) return -1;
    const char *kind = text_of(v[EV_KIND]);
    linkd__v1__envelope__init(&s->env);
    linkd__v1__call110__init(&s->call);
    linkd__v1__sensor_alarm__init(&s->sensor);
    linkd__v1__petition__init(&s->petition);
    linkd__v1__location__init(&s->loc);
    s->env.event_id = (char *)R->test;
    s->env.source_id = "test-rules";
    s->env.has_status = 1;
    s->env.status = LINKD__V1__STATUS__STATUS_ACTUAL;
    int cat = 0;
    if (!kind) {
        bad(R, map, "event needs 'kind' (call, sensor or petition)");
        return -1;
    }
    if (strcmp(kind, "call") == 0) {
        s->env.body_case = LINKD__V1__ENVELOPE__BODY_CALL;
        s->env.call = &s->call;
        s->call.location = &s->loc;
        if (v[EV_CATEGORY])
            rv |= get_enum(R, v[EV_CATEGORY], &linkd__v1__call_category__descriptor,
                           "call category", &cat);
        s->call.has_category = 1;
        s->call.category = (Linkd__V1__CallCategory)cat;
        s->call.caller = (char *)text_of(v[EV_CALLER]);
        if (v[EV_PEOPLE]) {
            s->call.has_people = 1;
            rv |= get_u32(R, v[EV_PEOPLE], "people", &s->call.people);
        }
        if (v[EV_PRIORITY]) {
            int p = 0;
            rv |= get_enum(R, v[EV_PRIORITY], &linkd__v1__priority__descriptor, "priority", &p);
            s->call.has_priority = 1;
            s->call.priority = (Linkd__V1__Priority)p;
        }
    } else if (strcmp(kind, "sensor") == 0) {
        s->env.body_case = LINKD__V1__ENVELOPE__BODY_SENSOR;
        s->env.sensor = &s->sensor;
        s->sensor.location = &s->loc;
        s->sensor.sensor_id = v[EV_SENSOR_ID] ? (char *)text_of(v[EV_SENSOR_ID]) : "test-sensor";
        if (v[EV_CATEGORY])
            rv |= get_enum(R, v[EV_CATEGORY], &linkd__v1__sensor_kind__descriptor,
                           "sensor kind", &cat);
        s->sensor.has_kind = 1;
        s->sensor.kind = (Linkd__V1__SensorKind)cat;
        if (v[EV_VALUE]) {
            s->sensor.has_value = 1;
            rv |= get_double(R, v[EV_VALUE], "value", &s->sensor.value);
        }
        if (v[EV_THRESHOLD]) {
            s->sensor.has_threshold = 1;
            rv |= get_double(R, v[EV_THRESHOLD], "threshold", &s->sensor.threshold);
        }
    } else if (strcmp(kind, "petition") == 0) {
        s->env.body_case = LINKD__V1__ENVELOPE__BODY_PETITION;
        s->env.petition = &s->petition;
        s->petition.location = &s->loc;
        s->petition.petition_id = "test-petition";
        if (v[EV_CATEGORY])
            rv |= get_enum(R, v[EV_CATEGORY], &linkd__v1__petition_issue__descriptor,
                           "petition issue", &cat);
        s->petition.has_issue = 1;
        s->petition.issue = (Linkd__V1__PetitionIssue)cat;
        s->petition.has_petitioners = 1;
        s->petition.petitioners = 1;
        if (v[EV_PEOPLE]) rv |= get_u32(R, v[EV_PEOPLE], "people", &s->petition.petitioners);
        if (v[EV_REPEAT]) {
            s->petition.has_repeat_count = 1;
            rv |= get_u32(R, v[EV_REPEAT], "repeat", &s->petition.repeat_count);
        }
        if (v[EV_BYPASS]) {
            const char *b = text_of(v[EV_BYPASS]);
            s->petition.has_bypass_level = 1;
            s->petition.bypass_level = b && strcmp(b, "true") == 0;
        }
        s->petition.target_office = (char *)text_of(v[EV_OFFICE]);
        if (v[EV_PETITIONER_REFS]) rv |= read_refs(R, v[EV_PETITIONER_REFS], s);
    } else {
        bad(R, v[EV_KIND], "unknown kind '%s' (known: call, sensor, petition)", kind);
        return -1;
    }
    if (v[EV_STATUS]) {
        int st = 0;
        rv |= get_enum(R, v[EV_STATUS], &linkd__v1__status__descriptor, "status", &st);
        s->env.status = (Linkd__V1__Status)st;
    }
    s->loc.district = (char *)text_of(v[EV_DISTRICT]);
    s->loc.grid = (char *)text_of(v[EV_GRID]);
    if (v[EV_LAT] || v[EV_LON]) {
        if (!v[EV_LAT] || !v[EV_LON]) {
            bad(R, map, "an event's place needs both 'lat' and 'lon'");
            return -1;
        }
        s->loc.has_lat = s->loc.has_lon = 1;
        rv |= get_double(R, v[EV_LAT], "lat", &s->loc.lat);
        rv |= get_double(R, v[EV_LON], "lon", &s->loc.lon);
    }
    s->loc.address = (char *)text_of(v[EV_ADDRESS]);
    if (v[EV_SOURCE]) s->env.source_id = (char *)text_of(v[EV_SOURCE]);
    if ((v[EV_CALLER] && strcmp(kind, "call") != 0) ||
        (v[EV_SENSOR_ID] && strcmp(kind, "sensor") != 0) ||
        (v[EV_PETITIONER_REFS] && strcmp(kind, "petition") != 0)) {
        bad(R, map, "caller is a call's, sensor_id a sensor alarm's, petitioner_refs a "
            "petition's");
        return -1;
    }
    return rv ? -1 : 0;
}

/* ---- expectations ---------------------------------------------------------------- */

static ld_task *task_of(run *R, const ld_incident *inc, struct fy_node *dept_node)
{
    const char *dept = text_of(dept_node);
    int d = dept ? ld_rules_department(R->rules, dept) : -1;
    if (d < 0) {
        bad(R, dept_node, "department '%s' is not in the rules", dept ? dept : "?");
        return NULL;
    }
    for (int i = 0; i < inc->ntasks; i++)
        if (inc->tasks[i]->dept == d) return inc->tasks[i];
    check(R, dept_node, 0, "no task for %s", dept);
    return NULL;
}

static const char *const leg_keys[LD_LEG_COUNT] = {"acknowledge", "arrive", "resolve",
                                                   "feedback"};

enum { TK_DEPARTMENT, TK_ACK, TK_ARRIVE, TK_RESOLVE, TK_FEEDBACK, TK_LEVEL, TK_TERMINAL,
       TK_STATE, TK_LEADER, TK_REMINDERS, TK_N };
static const char *const task_keys[TK_N + 1] = {
    "department", "acknowledge", "arrive", "resolve", "feedback", "level", "terminal",
    "state", "leader", "reminders", NULL};

/* reminders_sent counts the reminders the incident's history records for <t>. */
static uint32_t reminders_sent(const ld_incident *inc, const ld_task *t)
{
    uint32_t n = 0;
    for (int i = 0; i < inc->nhistory; i++)
        n += inc->history[i].kind == LINKD__V1__FEED_KIND__FEED_KIND_TASK_REMINDED &&
             inc->history[i].task == t->idx;
    return n;
}

/* check_task compares one task with its expectation. Budgets are deadlines
 * minus the dispatch time; "feedback: none" says the task has no such leg. */
static void check_task(run *R, const ld_incident *inc, struct fy_node *map)
{
    struct fy_node *v[TK_N];
    if (each_key(R, map, "task", task_keys, v) != 0) return;
    if (!v[TK_DEPARTMENT]) {
        bad(R, map, "a task expectation needs 'department'");
        return;
    }
    ld_task *t = task_of(R, inc, v[TK_DEPARTMENT]);
    if (!t) return;
    const char *dept = R->rules->departments[t->dept].id;
    for (int leg = 0; leg < LD_LEG_COUNT; leg++) {
        struct fy_node *n = v[TK_ACK + leg];
        if (!n) continue;
        int has = !(t->legs_off & (1u << leg));
        char got[32] = "none";
        if (has) ld_format_duration(ld_task_due(t, leg) - t->dispatched_at, got, sizeof got);
        const char *want = text_of(n);
        if (want && strcmp(want, "none") == 0) {
            check(R, n, !has, "%s: expected no %s leg, got %s", dept, leg_keys[leg], got);
            continue;
        }
        uint64_t ms;
        if (get_duration(R, n, leg_keys[leg], &ms) != 0) continue;
        check(R, n, has && ld_task_due(t, leg) - t->dispatched_at == ms,
              "%s: expected %s within %s, got %s", dept, leg_keys[leg], want, got);
    }
    if (v[TK_LEVEL]) {
        uint32_t lv;
        if (get_u32(R, v[TK_LEVEL], "level", &lv) == 0)
            check(R, v[TK_LEVEL], (int)lv == t->level, "%s: expected level %u, got %d", dept,
                  lv, t->level);
    }
    if (v[TK_TERMINAL]) {
        const char *want = text_of(v[TK_TERMINAL]), *got = R->rules->terminals[t->terminal].id;
        check(R, v[TK_TERMINAL], want && strcmp(want, got) == 0,
              "%s: expected terminal %s, got %s", dept, want ? want : "?", got);
    }
    if (v[TK_LEADER]) {
        const char *want = text_of(v[TK_LEADER]), *got = ld_task_leader(t) ? ld_task_leader(t) : "none";
        check(R, v[TK_LEADER], want && strcmp(want, got) == 0, "%s: expected leader %s, got %s",
              dept, want ? want : "?", got);
    }
    if (v[TK_REMINDERS]) {
        uint32_t want, got = reminders_sent(inc, t);
        if (get_u32(R, v[TK_REMINDERS], "reminders", &want) == 0)
            check(R, v[TK_REMINDERS], want == got, "%s: expected %u reminder%s so far, got %u",
                  dept, want, want == 1 ? "" : "s", got);
    }
    if (v[TK_STATE]) {
        int st;
        if (get_enum(R, v[TK_STATE], &linkd__v1__task_state__descriptor, "state", &st) == 0)
            check(R, v[TK_STATE], st == t->state, "%s: expected state %s, got %s", dept,
                  text_of(v[TK_STATE]),
                  ld_enum_name(&linkd__v1__task_state__descriptor, t->state));
    }
}

static void check_tasks(run *R, const ld_incident *inc, struct fy_node *list)
{
    if (!fy_node_is_sequence(list)) {
        bad(R, list, "'tasks' must be a list");
        return;
    }
    void *it = NULL;
    struct fy_node *item;
    while ((item = fy_node_sequence_iterate(list, &it)) != NULL) check_task(R, inc, item);
}

/* join_list writes the scalars of a list (or one scalar) joined by ", ". */
static int join_list(run *R, struct fy_node *n, const char *what, char *buf, size_t len)
{
    buf[0] = '\0';
    if (fy_node_is_scalar(n)) {
        snprintf(buf, len, "%s", text_of(n));
        return 0;
    }
    if (!fy_node_is_sequence(n)) {
        bad(R, n, "'%s' must be a list of names", what);
        return -1;
    }
    void *it = NULL;
    struct fy_node *item;
    while ((item = fy_node_sequence_iterate(n, &it)) != NULL) {
        const char *v = text_of(item);
        size_t off = strlen(buf);
        snprintf(buf + off, len - off, "%s%s", off ? ", " : "", v ? v : "?");
    }
    return 0;
}

static int by_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

enum { EX_ROUTES, EX_PRIORITY, EX_DEPARTMENTS, EX_TASKS, EX_CLOSED, EX_UPGRADED_BY,
       EX_SIGNED, EX_MISSING, EX_MERGED, EX_N };
static const char *const expect_keys[EX_N + 1] = {"routes", "priority", "departments",
                                                   "tasks", "closed", "upgraded_by",
                                                   "signed_off", "missing", "merged", NULL};

/* check_upgrades compares the correlation rules that upgraded <inc> with the
 * list expected ([] for none), in the order the rule set has them. */
static void check_upgrades(run *R, const ld_incident *inc, struct fy_node *n,
                           struct fy_node *map)
{
    /* An empty list has no position of its own: report at the expectation. */
    struct fy_node *at = fy_node_is_sequence(n) && fy_node_sequence_item_count(n) == 0 ? map : n;
    char want[512], got[512] = "";
    if (join_list(R, n, "upgraded_by", want, sizeof want) != 0) return;
    for (int i = 0; i < R->rules->ncorrelations; i++) {
        const char *name = R->rules->correlations[i].upgrade.name;
        if (ld_incident_upgraded_by(inc, name))
            snprintf(got + strlen(got), sizeof got - strlen(got), "%s%s", got[0] ? ", " : "",
                     name);
    }
    check(R, at, strcmp(want, got) == 0, "expected upgraded by [%s], got [%s]", want,
          got[0] ? got : "none");
}

/* check_sign_off compares the incident's sign-off (rules: sign_off) with
 * "signed_off: true/false" and "missing: [departments]" (in task order). */
static void check_sign_off(run *R, const ld_incident *inc, struct fy_node *signed_off,
                           struct fy_node *missing)
{
    unsigned miss = ld_incident_sign_missing(inc);
    if (signed_off) {
        const char *w = text_of(signed_off);
        int want = w && strcmp(w, "true") == 0;
        if (!w || (!want && strcmp(w, "false") != 0))
            bad(R, signed_off, "'signed_off' must be true or false");
        else
            check(R, signed_off, want == (inc->sign_need && !miss),
                  "expected the incident %ssigned off%s", want ? "" : "not ",
                  inc->sign_need ? "" : " (its routes have no sign_off)");
    }
    char want[512], got[512] = "";
    if (missing && join_list(R, missing, "missing", want, sizeof want) == 0) {
        for (int i = 0; i < inc->ntasks; i++)
            if (miss & (1u << i))
                snprintf(got + strlen(got), sizeof got - strlen(got), "%s%s", got[0] ? ", " : "",
                         R->rules->departments[inc->tasks[i]->dept].id);
        check(R, missing, strcmp(want, got) == 0, "expected [%s] missing from the sign-off, "
              "got [%s]", want, got);
    }
}

static void check_expect(run *R, const ld_incident *inc, const ld_match_input *in,
                         struct fy_node *map, int at_open)
{
    struct fy_node *v[EX_N];
    char want[512], got[512];
    if (each_key(R, map, "expect", expect_keys, v) != 0) return;
    if (v[EX_ROUTES]) {
        if (!at_open) {
            bad(R, v[EX_ROUTES], "'routes' is known only when the event opens its incident");
        } else if (join_list(R, v[EX_ROUTES], "routes", want, sizeof want) == 0) {
            const ld_route *out[16];
            size_t n = ld_rules_match(R->rules, in, out, 16);
            got[0] = '\0';
            for (size_t i = 0; i < n; i++)
                snprintf(got + strlen(got), sizeof got - strlen(got), "%s%s", i ? ", " : "",
                         out[i]->name);
            check(R, v[EX_ROUTES], strcmp(want, got) == 0, "expected routes [%s], got [%s]",
                  want, got[0] ? got : "none");
        }
    }
    if (v[EX_PRIORITY]) {
        const char *p = ld_enum_name(&linkd__v1__priority__descriptor, inc->priority);
        const char *w = text_of(v[EX_PRIORITY]);
        check(R, v[EX_PRIORITY], w && p && strcmp(w, p) == 0, "expected priority %s, got %s",
              w ? w : "?", p ? p : "?");
    }
    if (v[EX_DEPARTMENTS] &&
        join_list(R, v[EX_DEPARTMENTS], "departments", want, sizeof want) == 0) {
        /* Compared as sets: sort both. */
        const char *ids[LD_MAX_TASKS], *wids[64];
        int n = 0, wn = 0;
        for (int i = 0; i < inc->ntasks; i++) ids[n++] = R->rules->departments[inc->tasks[i]->dept].id;
        qsort(ids, (size_t)n, sizeof *ids, by_str);
        char copy[512];
        snprintf(copy, sizeof copy, "%s", want);
        for (char *s = NULL, *tok = strtok_r(copy, ", ", &s); tok && wn < 64;
             tok = strtok_r(NULL, ", ", &s))
            wids[wn++] = tok;
        qsort(wids, (size_t)wn, sizeof *wids, by_str);
        char a[512] = "", b[512] = "";
        for (int i = 0; i < n; i++) snprintf(a + strlen(a), sizeof a - strlen(a), "%s%s", i ? ", " : "", ids[i]);
        for (int i = 0; i < wn; i++) snprintf(b + strlen(b), sizeof b - strlen(b), "%s%s", i ? ", " : "", wids[i]);
        check(R, v[EX_DEPARTMENTS], strcmp(a, b) == 0, "expected departments [%s], got [%s]",
              b, a);
    }
    if (v[EX_TASKS]) check_tasks(R, inc, v[EX_TASKS]);
    if (v[EX_UPGRADED_BY]) check_upgrades(R, inc, v[EX_UPGRADED_BY], map);
    if (v[EX_SIGNED] || v[EX_MISSING]) check_sign_off(R, inc, v[EX_SIGNED], v[EX_MISSING]);
    if (v[EX_MERGED]) {
        uint32_t n;
        if (get_u32(R, v[EX_MERGED], "merged", &n) == 0)
            check(R, v[EX_MERGED], n == inc->nmerged, "expected %u event%s merged into the "
                  "incident, got %u", n, n == 1 ? "" : "s", (unsigned)inc->nmerged);
    }
    if (v[EX_CLOSED]) {
        const char *w = text_of(v[EX_CLOSED]);
        int want_closed = w && strcmp(w, "true") == 0;
        check(R, v[EX_CLOSED], want_closed == (inc->closed_at != 0), "expected the incident %s",
              want_closed ? "closed" : "open");
    }
}

/* ---- steps --------------------------------------------------------------------------- */

static const struct {
    const char *word;
    int kind;
} update_words[] = {
    {"acknowledge", LINKD__V1__UPDATE_KIND__UPDATE_KIND_ACKNOWLEDGED},
    {"en_route", LINKD__V1__UPDATE_KIND__UPDATE_KIND_EN_ROUTE},
    {"on_scene", LINKD__V1__UPDATE_KIND__UPDATE_KIND_ON_SCENE},
    {"feedback", LINKD__V1__UPDATE_KIND__UPDATE_KIND_FEEDBACK},
    {"resolve", LINKD__V1__UPDATE_KIND__UPDATE_KIND_RESOLVED},
    {"reject", LINKD__V1__UPDATE_KIND__UPDATE_KIND_REJECTED},
};

enum { UP_DEPARTMENT, UP_KIND, UP_TEXT, UP_N };
static const char *const update_keys[UP_N + 1] = {"department", "kind", "text", NULL};

/* apply_update sends an update as the terminal holding the task. */
static void apply_update(run *R, ld_engine *e, const ld_incident *inc, struct fy_node *map)
{
    struct fy_node *v[UP_N];
    if (each_key(R, map, "update", update_keys, v) != 0) return;
    if (!v[UP_DEPARTMENT] || !v[UP_KIND]) {
        bad(R, map, "an update needs 'department' and 'kind'");
        return;
    }
    ld_task *t = task_of(R, inc, v[UP_DEPARTMENT]);
    const char *k = text_of(v[UP_KIND]);
    int kind = 0;
    for (size_t i = 0; k && i < sizeof update_words / sizeof update_words[0]; i++)
        if (strcmp(k, update_words[i].word) == 0) kind = update_words[i].kind;
    if (!kind) {
        bad(R, v[UP_KIND], "unknown update kind '%s' (known: acknowledge, en_route, on_scene, "
            "feedback, resolve, reject)", k ? k : "?");
        return;
    }
    if (!t) return;
    char id[LD_TASK_ID_LEN], why[256] = "";
    snprintf(id, sizeof id, "%s/%s", inc->id, R->rules->departments[t->dept].id);
    Linkd__V1__TaskUpdate u;
    linkd__v1__task_update__init(&u);
    u.task_id = id;
    u.has_kind = 1;
    u.kind = (Linkd__V1__UpdateKind)kind;
    u.disposition = u.reason = (char *)(v[UP_TEXT] ? text_of(v[UP_TEXT]) : "test");
    int res = ld_engine_update(e, t->terminal, &u, why, sizeof why);
    check(R, map, res == LINKD__V1__RESULT__RESULT_ACCEPTED, "update %s of %s not accepted: %s",
          k, R->rules->departments[t->dept].id, why[0] ? why : "duplicate");
}

enum { ST_AFTER, ST_EVENT, ST_OFFLINE, ST_ONLINE, ST_UPDATE, ST_EXPECT, ST_N };
static const char *const step_keys[ST_N + 1] = {"after", "event", "offline", "online",
                                                "update", "expect", NULL};

/* step_presence says that a terminal stopped (or resumed) polling. */
static void step_presence(run *R, ld_engine *e, struct fy_node *n, int online)
{
    const char *id = text_of(n);
    int t = id ? ld_rules_terminal(R->rules, id) : -1;
    if (t < 0) {
        bad(R, n, "terminal '%s' is not in the rules", id ? id : "?");
        return;
    }
    ld_engine_terminal_presence(e, t, online);
}

/* send_event opens another event at the current virtual time (stream id
 * "<test>-<n>"): correlation rules see it beside the test's own. */
static void send_event(run *R, ld_engine *e, struct fy_node *map, unsigned num, unsigned n)
{
    sample s;
    if (read_event(R, map, &s) != 0) return;
    char stream[32];
    snprintf(stream, sizeof stream, "%u-%u", num, n);
    ld_incident *other = NULL;
    if (ld_engine_open(e, &s.env, stream, &other) != 0 || !other)
        fail(R, map, "the engine could not open the event");
}

static void run_steps(run *R, ld_engine *e, ld_clock *clk, const ld_incident *inc,
                      const ld_match_input *in, struct fy_node *list, unsigned num)
{
    unsigned events = 0;
    if (!fy_node_is_sequence(list)) {
        bad(R, list, "'then' must be a list of steps");
        return;
    }
    void *it = NULL;
    struct fy_node *step;
    while ((step = fy_node_sequence_iterate(list, &it)) != NULL) {
        struct fy_node *v[ST_N];
        if (each_key(R, step, "step", step_keys, v) != 0) continue;
        if (v[ST_AFTER]) {
            uint64_t ms;
            if (get_duration(R, v[ST_AFTER], "after", &ms) != 0) return;
            /* Deadlines fire in order, each at its own time, as in the daemon. */
            uint64_t end = ld_clock_now(clk) + ms;
            for (;;) {
                uint64_t due = ld_engine_next_due(e);
                if (due > end) break;
                uint64_t now = ld_clock_now(clk);
                if (due > now) ld_clock_advance(clk, due - now);
                ld_engine_run_due(e);
            }
            ld_clock_advance(clk, end - ld_clock_now(clk));
        }
        if (v[ST_EVENT]) send_event(R, e, v[ST_EVENT], num, ++events);
        if (v[ST_OFFLINE]) step_presence(R, e, v[ST_OFFLINE], 0);
        if (v[ST_ONLINE]) step_presence(R, e, v[ST_ONLINE], 1);
        if (v[ST_UPDATE]) apply_update(R, e, inc, v[ST_UPDATE]);
        if (v[ST_EXPECT]) check_expect(R, inc, in, v[ST_EXPECT], 0);
    }
}

/* ---- one test -------------------------------------------------------------------------- */

enum { T_NAME, T_AT, T_EVENT, T_EXPECT, T_THEN, T_N };
static const char *const test_keys[T_N + 1] = {"name", "at", "event", "expect", "then", NULL};

static void on_feed_none(void *ctx, const Linkd__V1__FeedEvent *fe) { (void)ctx, (void)fe; }

static void run_test(run *R, struct fy_node *map, uint64_t start, unsigned num)
{
    struct fy_node *v[T_N];
    char name[128];
    R->test = NULL;
    R->test_failed = 0;
    if (each_key(R, map, "test", test_keys, v) != 0) goto out;
    snprintf(name, sizeof name, "%s", v[T_NAME] && text_of(v[T_NAME]) ? text_of(v[T_NAME]) : "");
    if (!name[0]) snprintf(name, sizeof name, "#%u", num);
    R->test = name;
    if (!v[T_EVENT]) {
        bad(R, map, "a test needs 'event'");
        goto out;
    }
    uint64_t at = start;
    if (v[T_AT] && (!text_of(v[T_AT]) || ld_rules_parse_time(R->rules, text_of(v[T_AT]), &at))) {
        bad(R, v[T_AT], "'at' must be a local time such as 2026-11-23 20:15");
        goto out;
    }
    sample s;
    if (read_event(R, v[T_EVENT], &s) != 0) goto out;

    ld_clock clk;
    ld_engine e;
    ld_clock_init_manual(&clk, at);
    ld_engine_hooks h = {.feed = on_feed_none, .listening = NULL};
    if (ld_engine_init(&e, R->rules, &clk, &h) != 0) {
        fail(R, map, "out of memory");
        goto out;
    }
    ld_incident *inc = NULL;
    char stream[32];
    snprintf(stream, sizeof stream, "%u-0", num);
    ld_match_input in;
    ld_rules_input(R->rules, &s.env, at, &in);
    if (ld_engine_open(&e, &s.env, stream, &inc) != 0 || !inc) {
        fail(R, map, "the engine could not open the incident");
    } else {
        if (v[T_EXPECT]) check_expect(R, inc, &in, v[T_EXPECT], 1);
        if (v[T_THEN]) run_steps(R, &e, &clk, inc, &in, v[T_THEN], num);
    }
    ld_engine_fini(&e);
out:
    R->tests++;
    if (R->test_failed) R->failed_tests++;
    else if (R->verbose) printf("ok   %s\n", name);
    R->test = NULL;
}

/* ---- the file -------------------------------------------------------------------------- */

enum { F_RULES, F_START, F_TESTS, F_N };
static const char *const file_keys[F_N + 1] = {"rules", "start", "tests", NULL};

/* run_file runs every test of <path>. <rules_dir> overrides the file's
 * `rules:` (which is relative to the file). Returns a sysexits code. */
static int run_file(const char *path, const char *rules_dir, int verbose, unsigned *tests,
                    unsigned *failed)
{
    run R = {.file = path, .verbose = verbose};
    struct fy_document *doc = fy_document_build_from_file(NULL, path);
    int code = 0;
    if (!doc) {
        ctl_warn("%s: cannot read or parse it as YAML", path);
        return EX_DATAERR;
    }
    struct fy_node *v[F_N];
    if (each_key(&R, fy_document_root(doc), "a test file", file_keys, v) != 0 || !v[F_TESTS]) {
        if (!v[F_TESTS]) bad(&R, fy_document_root(doc), "a test file needs 'tests'");
        code = EX_DATAERR;
        goto out;
    }
    char dir[1024], copy[1024];
    snprintf(copy, sizeof copy, "%s", path);
    const char *rel = text_of(v[F_RULES]);
    if (rules_dir)
        snprintf(dir, sizeof dir, "%s", rules_dir);
    else if (rel && rel[0] == '/')
        snprintf(dir, sizeof dir, "%s", rel);
    else
        snprintf(dir, sizeof dir, "%s/%s", dirname(copy), rel ? rel : ".");

    ld_diag diag;
    ld_diag_init(&diag);
    int rv = ld_rules_load(&R.rules, dir, &diag);
    ld_diag_print(&diag, stderr);
    ld_diag_fini(&diag);
    if (rv != 0) {
        ctl_warn("%s: the rules in %s do not load", path, dir);
        code = EX_DATAERR;
        goto out;
    }
    uint64_t start;
    const char *st = v[F_START] ? text_of(v[F_START]) : DEFAULT_START;
    if (!st || ld_rules_parse_time(R.rules, st, &start) != 0) {
        bad(&R, v[F_START], "'start' must be a local time such as 2026-11-23 12:00");
        code = EX_DATAERR;
        goto out;
    }
    if (!fy_node_is_sequence(v[F_TESTS])) {
        bad(&R, v[F_TESTS], "'tests' must be a list");
        code = EX_DATAERR;
        goto out;
    }
    void *it = NULL;
    struct fy_node *t;
    unsigned num = 0;
    while ((t = fy_node_sequence_iterate(v[F_TESTS], &it)) != NULL && num < MAX_TESTS)
        run_test(&R, t, start, ++num);
    printf("%s: %u tests, %u checks, %u failed checks in %u tests\n", path, R.tests, R.checks,
           R.failed_checks, R.failed_tests);
    if (R.bad_file) code = EX_DATAERR;
    else if (R.failed_tests) code = 1;
    *tests += R.tests;
    *failed += R.failed_tests;
out:
    if (R.rules) ld_rules_free(R.rules);
    fy_document_destroy(doc);
    return code;
}

static void usage(void)
{
    puts("Usage: linkctl test-rules [--rules DIR] [--verbose] FILE...\n"
         "\n"
         "Run rule tests: each FILE lists sample events and what the rules must make of\n"
         "them (routes, priority, departments, budgets; escalations and states at later\n"
         "virtual times). The engine runs in this process on a virtual clock: no linkd,\n"
         "no Redis. The rules are FILE's 'rules:' directory (relative to FILE; default\n"
         "FILE's own directory) unless --rules is given.\n"
         "\n"
         "Every mismatch is printed as FILE:line:col: test 'name': expected ..., got ...\n"
         "Exit codes: 0 all passed, 1 a test failed, 65 a test file or the rules are\n"
         "invalid, 64 usage. Format: docs/RULES.md, \"Testing rules\".");
}

int ctl_test_rules_main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"rules", required_argument, NULL, 'r'},
        {"verbose", no_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *rules_dir = NULL;
    int opt, verbose = 0;
    /* The engine's own warnings (a deadline missed at the top of a chain) are
     * what tests check, not news: mismatches are reported, not log lines. */
    ld_log_level = LD_ERR;
    optind = 0;
    while ((opt = getopt_long(argc, argv, "hr:v", opts, NULL)) != -1) {
        switch (opt) {
        case 'r': rules_dir = optarg; break;
        case 'v': verbose = 1; break;
        case 'h': usage(); return 0;
        default: return ctl_usage_error("bad option");
        }
    }
    if (optind >= argc) return ctl_usage_error("no test file given");
    int code = 0;
    unsigned tests = 0, failed = 0;
    for (int i = optind; i < argc; i++) {
        int c = run_file(argv[i], rules_dir, verbose, &tests, &failed);
        if (c == EX_DATAERR || (c && !code)) code = c;
    }
    return code;
}
