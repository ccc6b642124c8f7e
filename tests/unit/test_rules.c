/* Rule loading, checking and matching.
 *
 * The default rule set (rules/) must load clean and route what the brief
 * says it routes; the fixture sets under tests/data/rules/<case>/ each hold
 * one kind of mistake, and the loader must report exactly the expected lines,
 * positions included (columns were counted independently of the loader). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "core/diag.h"
#include "core/err.h"
#include "rules/rules.h"
#include "wire/wire.h"

#define DATA LD_SOURCE_DIR "/tests/data/rules/"
#define DEFAULT_RULES LD_SOURCE_DIR "/rules"

#define SEC 1000ull
#define MIN (60 * SEC)
#define HOUR (60 * MIN)
#define DAY (24 * HOUR)

#define CALL(x) LINKD__V1__CALL_CATEGORY__CALL_CATEGORY_##x
#define SENSOR(x) LINKD__V1__SENSOR_KIND__SENSOR_KIND_##x
#define ISSUE(x) LINKD__V1__PETITION_ISSUE__PETITION_ISSUE_##x
#define PRIO(x) LINKD__V1__PRIORITY__PRIORITY_##x

/* ---- helpers ---------------------------------------------------------------- */

static ld_rules *load_ok(const char *dir, ld_diag *d)
{
    ld_rules *r = NULL;
    ld_diag_init(d);
    int rv = ld_rules_load(&r, dir, d);
    if (rv != 0) ld_diag_print(d, stderr);
    cr_assert_eq(rv, 0, "%s must load, got %s", dir, ld_strerror(rv));
    cr_assert_not_null(r);
    return r;
}

/* expect_diags loads fixture <name> and checks that it fails with <want_rv>
 * and reports exactly the lines <want> (in order), where each line is the
 * formatted diagnostic with DATA cut off the front. */
static void expect_diags(const char *name, int want_rv, const char *const *want, size_t n)
{
    char dir[512], line[1024];
    ld_diag d;
    ld_rules *r = (ld_rules *)1;
    snprintf(dir, sizeof dir, "%s%s", DATA, name);
    ld_diag_init(&d);
    int rv = ld_rules_load(&r, dir, &d);
    int same = d.n == n;
    for (size_t i = 0; same && i < n; i++) {
        ld_diag_format(&d, i, line, sizeof line);
        same = strcmp(line, DATA) > 0 && strcmp(line + strlen(DATA), want[i]) == 0;
    }
    for (size_t i = 0; !same && i < d.n; i++) { /* the whole report helps fix a failure */
        ld_diag_format(&d, i, line, sizeof line);
        fprintf(stderr, "  %s: got: %s\n", name, line);
    }
    cr_expect_eq(rv, want_rv, "%s: load returned %s", name, ld_strerror(rv));
    cr_expect_null(r, "%s: no rules on failure", name);
    cr_expect_eq(d.n, n, "%s: %zu diagnostics, expected %zu", name, d.n, n);
    for (size_t i = 0; i < d.n && i < n; i++) {
        ld_diag_format(&d, i, line, sizeof line);
        cr_expect(strncmp(line, DATA, strlen(DATA)) == 0, "%s: path: %s", name, line);
        cr_expect_str_eq(line + strlen(DATA), want[i], "%s: diagnostic %zu", name, i);
    }
    ld_rules_free(r);
    ld_diag_fini(&d);
}

#define EXPECT_DIAGS(name, rv, ...)                                               \
    do {                                                                          \
        static const char *const want_[] = {__VA_ARGS__};                         \
        expect_diags(name, rv, want_, sizeof want_ / sizeof want_[0]);            \
    } while (0)

static const ld_route *match1(const ld_rules *r, int kind, int category, int priority)
{
    const ld_route *out[8];
    ld_match_input in = {.kind = kind, .category = category, .priority = priority};
    size_t n = ld_rules_match(r, &in, out, 8);
    cr_assert_eq(n, 1, "exactly one route for kind %d category %d priority %d, got %zu", kind,
                 category, priority, n);
    return out[0];
}

/* Writes the names of the routes <in> takes, joined by ',', into buf. */
static void matched(const ld_rules *r, const ld_match_input *in, size_t max, char *buf,
                    size_t len)
{
    const ld_route *out[8];
    size_t n = ld_rules_match(r, in, out, max), off = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < n; i++)
        off += (size_t)snprintf(buf + off, len - off, "%s%s", i ? "," : "", out[i]->name);
}

/* Every department of every route <in> takes, sorted by id and joined. */
static void departments_for(const ld_rules *r, const ld_match_input *in, char *buf, size_t len)
{
    const ld_route *out[8];
    const char *ids[32];
    size_t n = ld_rules_match(r, in, out, 8), k = 0, off = 0;
    for (size_t i = 0; i < n; i++)
        for (int j = 0; j < out[i]->ndispatch; j++) {
            const char *id = r->departments[out[i]->dispatch[j].dept].id;
            size_t p = 0;
            while (p < k && strcmp(ids[p], id) < 0) p++;
            if (p < k && strcmp(ids[p], id) == 0) continue;
            memmove(&ids[p + 1], &ids[p], (k - p) * sizeof *ids);
            ids[p] = id;
            k++;
        }
    buf[0] = '\0';
    for (size_t i = 0; i < k; i++)
        off += (size_t)snprintf(buf + off, len - off, "%s%s", i ? "," : "", ids[i]);
}

static const ld_dispatch_def *find_dispatch(const ld_rules *r, const ld_route *rt,
                                            const char *dept)
{
    for (int i = 0; i < rt->ndispatch; i++)
        if (strcmp(r->departments[rt->dispatch[i].dept].id, dept) == 0) return &rt->dispatch[i];
    cr_assert_fail("route %s does not dispatch %s", rt->name, dept);
    return NULL;
}

static void expect_legs(const ld_rules *r, const ld_route *rt, const char *dept, uint64_t ack,
                        uint64_t arrive, uint64_t resolve)
{
    const ld_dispatch_def *d = find_dispatch(r, rt, dept);
    cr_expect_eq(d->leg_ms[LD_LEG_ACK], ack, "%s/%s acknowledge", rt->name, dept);
    cr_expect_eq(d->leg_ms[LD_LEG_ARRIVE], arrive, "%s/%s arrive", rt->name, dept);
    cr_expect_eq(d->leg_ms[LD_LEG_RESOLVE], resolve, "%s/%s resolve", rt->name, dept);
}

/* ---- the default rule set ------------------------------------------------------ */

static ld_rules *defaults;
static ld_diag defaults_diag;

static void load_defaults(void) { defaults = load_ok(DEFAULT_RULES, &defaults_diag); }

static void free_defaults(void)
{
    ld_rules_free(defaults);
    ld_diag_fini(&defaults_diag);
}

TestSuite(rules_default, .init = load_defaults, .fini = free_defaults);

Test(rules_default, loads_without_errors_or_warnings)
{
    cr_expect_eq(defaults_diag.nerrors, 0);
    cr_expect_eq(defaults_diag.nwarnings, 0);
    cr_expect_eq(defaults->ndepartments, 13);
    cr_expect_str_eq(defaults->departments[defaults->command].id, "command");
    cr_expect_str_eq(defaults->dir, DEFAULT_RULES);
    cr_expect_eq(strlen(defaults->version), 16);
    cr_expect_eq(strspn(defaults->version, "0123456789abcdef"), 16, "version is hex");
}

Test(rules_default, every_department_has_its_chain)
{
    static const char *const ids[] = {
        "police", "traffic", "fire", "medical", "civil_affairs", "emergency_mgmt", "urban_mgmt",
        "utilities", "justice", "petition", "political_legal", "grid",
    };
    static const char *const levels[] = {"duty", "deputy", "head"};
    char want[64];
    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++) {
        int di = ld_rules_department(defaults, ids[i]);
        cr_assert_geq(di, 0, "department %s", ids[i]);
        const ld_department *d = &defaults->departments[di];
        cr_assert_eq(d->nlevels, 3, "%s has 3 levels", ids[i]);
        for (int l = 0; l < 3; l++) {
            snprintf(want, sizeof want, "%s-%s", ids[i], levels[l]);
            cr_expect_str_eq(defaults->terminals[d->levels[l].terminal].id, want);
            cr_expect_eq(ld_rules_terminal(defaults, want), d->levels[l].terminal);
            cr_expect_eq(defaults->terminals[d->levels[l].terminal].dept, di);
        }
        cr_expect_str_eq(d->levels[0].name, "duty_officer");
        cr_expect(strncmp(d->where, "departments.yaml:", 17) == 0, "%s where %s", ids[i],
                  d->where);
    }
    const ld_department *cmd = &defaults->departments[defaults->command];
    cr_assert_eq(cmd->nlevels, 2);
    cr_expect_str_eq(defaults->terminals[cmd->levels[0].terminal].id, "command-supervisor");
    cr_expect_str_eq(defaults->terminals[cmd->levels[1].terminal].id, "command-director");
    /* Three per chain, command's two, and the grid centre's night desk,
     * stand-in and training desk (rules/rosters.yaml, drills). */
    cr_expect_eq(defaults->nterminals, 12 * 3 + 2 + 3);
}

Test(rules_default, life_safety_chains_escalate_within_minutes)
{
    static const char *const ids[] = {"police", "traffic", "fire", "medical", "emergency_mgmt",
                                      "command"};
    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++) {
        const ld_department *d = &defaults->departments[ld_rules_department(defaults, ids[i])];
        for (int l = 0; l < d->nlevels; l++) {
            cr_expect_geq(d->levels[l].wait_ms, 1 * MIN, "%s level %d", ids[i], l);
            cr_expect_leq(d->levels[l].wait_ms, 3 * MIN, "%s level %d", ids[i], l);
        }
    }
}

Test(rules_default, fire_call_sends_fire_medical_police)
{
    const ld_route *rt = match1(defaults, LD_KIND_CALL, CALL(FIRE), 0);
    cr_expect_str_eq(rt->name, "structure-fire");
    cr_expect_eq(rt->priority, PRIO(CRITICAL));
    cr_expect(strncmp(rt->where, "routes.yaml:", 12) == 0 &&
                  strcmp(rt->where + strlen(rt->where) - 2, ":5") == 0,
              "where %s", rt->where);
    cr_expect_eq(rt->ndispatch, 3);
    cr_expect_str_eq(defaults->departments[rt->dispatch[0].dept].id, "fire");
    expect_legs(defaults, rt, "fire", 30 * SEC, 8 * MIN, 2 * HOUR);
    expect_legs(defaults, rt, "medical", 30 * SEC, 8 * MIN, 2 * HOUR);
    expect_legs(defaults, rt, "police", 30 * SEC, 5 * MIN, 2 * HOUR);
}

Test(rules_default, explosion_is_a_six_department_linkage)
{
    char got[256];
    ld_match_input in = {.kind = LD_KIND_CALL, .category = CALL(EXPLOSION)};
    departments_for(defaults, &in, got, sizeof got);
    cr_expect_str_eq(got, "emergency_mgmt,fire,medical,police,traffic,utilities");
}

Test(rules_default, departments_per_category)
{
    static const struct {
        int kind, category, priority;
        const char *depts;
    } cases[] = {
        {LD_KIND_CALL, CALL(TRAFFIC_ACCIDENT), PRIO(CRITICAL), "medical,traffic"},
        {LD_KIND_CALL, CALL(TRAFFIC_ACCIDENT), PRIO(URGENT), "medical,traffic"},
        {LD_KIND_CALL, CALL(TRAFFIC_ACCIDENT), PRIO(NORMAL), "traffic"},
        {LD_KIND_CALL, CALL(TRAFFIC_ACCIDENT), 0, "traffic"},
        {LD_KIND_CALL, CALL(GAS_LEAK), 0, "fire,police,utilities"},
        {LD_KIND_CALL, CALL(MEDICAL), 0, "medical"},
        {LD_KIND_CALL, CALL(CRIME), 0, "police"},
        {LD_KIND_CALL, CALL(DISPUTE), 0, "grid,justice,police"},
        {LD_KIND_CALL, CALL(VULNERABLE_PERSON), 0, "civil_affairs,grid,police"},
        {LD_KIND_CALL, CALL(WATER_SUPPLY), 0, "utilities"},
        {LD_KIND_CALL, CALL(POWER_OUTAGE), 0, "utilities"},
        {LD_KIND_CALL, CALL(GAS_SUPPLY), 0, "utilities"},
        {LD_KIND_CALL, CALL(HEATING), 0, "utilities"},
        {LD_KIND_CALL, CALL(NOISE), 0, "grid,urban_mgmt"},
        {LD_KIND_CALL, CALL(STRAY_ANIMAL), 0, "grid,urban_mgmt"},
        {LD_KIND_CALL, CALL(OTHER), 0, "command"},
        {LD_KIND_SENSOR, SENSOR(SMOKE), 0, "fire"},
        {LD_KIND_SENSOR, SENSOR(GAS), 0, "fire,utilities"},
        {LD_KIND_SENSOR, SENSOR(GEOFENCE), 0, "justice,police"},
        {LD_KIND_PETITION, ISSUE(LAW_ENFORCEMENT), 0, "petition,political_legal"},
        {LD_KIND_PETITION, ISSUE(HOUSING), 0, "petition"},
    };
    char got[256];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ld_match_input in = {.kind = cases[i].kind, .category = cases[i].category,
                             .priority = cases[i].priority};
        departments_for(defaults, &in, got, sizeof got);
        cr_expect_str_eq(got, cases[i].depts, "%s %s",
                         ld_kind_name(cases[i].kind),
                         cases[i].kind == LD_KIND_CALL
                             ? ld_enum_name(&linkd__v1__call_category__descriptor,
                                            cases[i].category)
                             : "");
    }
}

/* Every value of every enum has a route of its own (only call `other` is
 * left to the command centre), and life-safety budgets are 30-60 s. */
static void check_kind(int kind, const ProtobufCEnumDescriptor *d)
{
    for (unsigned i = 0; i < d->n_values; i++) {
        int v = d->values[i].value;
        if (v == 0) continue;
        const ld_route *out[8];
        ld_match_input in = {.kind = kind, .category = v};
        size_t n = ld_rules_match(defaults, &in, out, 8);
        const char *name = ld_enum_name(d, v);
        cr_assert_gt(n, 0, "%s %s has a route", ld_kind_name(kind), name);
        const ld_route *last = out[n - 1];
        int to_command = last->ndispatch == 1 && last->dispatch[0].dept == defaults->command;
        if (kind == LD_KIND_CALL && v == CALL(OTHER))
            cr_expect(to_command, "other goes to command");
        else
            cr_expect(!to_command, "%s %s is routed to its department, got %s",
                      ld_kind_name(kind), name, last->name);
        if (kind == LD_KIND_PETITION) continue;
        for (size_t k = 0; k < n; k++)
            for (int j = 0; j < out[k]->ndispatch; j++) {
                uint64_t ack = out[k]->dispatch[j].leg_ms[LD_LEG_ACK];
                cr_expect(ack >= 30 * SEC && ack <= 60 * SEC, "%s: acknowledge %llu ms",
                          out[k]->name, (unsigned long long)ack);
            }
    }
}

Test(rules_default, every_category_kind_and_issue_is_routed)
{
    check_kind(LD_KIND_CALL, &linkd__v1__call_category__descriptor);
    check_kind(LD_KIND_SENSOR, &linkd__v1__sensor_kind__descriptor);
    check_kind(LD_KIND_PETITION, &linkd__v1__petition_issue__descriptor);
}

Test(rules_default, public_service_requests_never_go_to_police)
{
    static const int cats[] = {CALL(WATER_SUPPLY), CALL(POWER_OUTAGE), CALL(GAS_SUPPLY),
                               CALL(HEATING), CALL(NOISE), CALL(STRAY_ANIMAL)};
    char got[256];
    for (size_t i = 0; i < sizeof cats / sizeof cats[0]; i++) {
        ld_match_input in = {.kind = LD_KIND_CALL, .category = cats[i], .priority = PRIO(URGENT)};
        departments_for(defaults, &in, got, sizeof got);
        cr_expect_null(strstr(got, "police"), "category %d: %s", cats[i], got);
    }
    const ld_route *rt = match1(defaults, LD_KIND_CALL, CALL(POWER_OUTAGE), 0);
    expect_legs(defaults, rt, "utilities", 60 * SEC, 30 * MIN, 3 * HOUR);
}

Test(rules_default, petitions_count_in_days_and_groups_reach_political_legal)
{
    const ld_route *rt = match1(defaults, LD_KIND_PETITION, ISSUE(LAND_ACQUISITION), 0);
    /* No arrival leg: it takes the resolve budget. */
    expect_legs(defaults, rt, "petition", 15 * DAY, 60 * DAY, 60 * DAY);

    char got[256];
    ld_match_input group = {.kind = LD_KIND_PETITION, .category = ISSUE(DEMOLITION), .people = 5};
    departments_for(defaults, &group, got, sizeof got);
    cr_expect_str_eq(got, "petition,political_legal");
    group.people = 4;
    departments_for(defaults, &group, got, sizeof got);
    cr_expect_str_eq(got, "petition");
}

/* ---- matching semantics (tests/data/rules/match) ----------------------------- */

static ld_rules *mr;
static ld_diag mr_diag;

static void load_match(void) { mr = load_ok(DATA "match", &mr_diag); }

static void free_match(void)
{
    ld_rules_free(mr);
    ld_diag_fini(&mr_diag);
}

TestSuite(rules_match, .init = load_match, .fini = free_match);

Test(rules_match, first_match_wins)
{
    char got[128];
    ld_match_input in = {.kind = LD_KIND_CALL, .category = CALL(FIRE)};
    matched(mr, &in, 8, got, sizeof got);
    cr_expect_str_eq(got, "fire-call"); /* not also any-call or everything */
    in.category = CALL(EXPLOSION);
    matched(mr, &in, 8, got, sizeof got);
    cr_expect_str_eq(got, "fire-call");
}

Test(rules_match, continue_goes_on_to_later_routes)
{
    char got[128];
    ld_match_input in = {.kind = LD_KIND_CALL, .category = CALL(FIRE), .priority = PRIO(CRITICAL)};
    matched(mr, &in, 8, got, sizeof got);
    cr_expect_str_eq(got, "critical-any,fire-call");
    in = (ld_match_input){.kind = LD_KIND_SENSOR, .category = SENSOR(GAS), .priority = PRIO(CRITICAL)};
    matched(mr, &in, 8, got, sizeof got);
    cr_expect_str_eq(got, "critical-any,everything");
    /* <max> bounds the answer even when routes continue. */
    in = (ld_match_input){.kind = LD_KIND_CALL, .category = CALL(FIRE), .priority = PRIO(CRITICAL)};
    matched(mr, &in, 1, got, sizeof got);
    cr_expect_str_eq(got, "critical-any");
}

Test(rules_match, priority_matcher)
{
    char got[128];
    ld_match_input in = {.kind = LD_KIND_CALL, .category = CALL(CRIME), .priority = PRIO(NORMAL)};
    matched(mr, &in, 8, got, sizeof got);
    cr_expect_str_eq(got, "low-calls");
    in.priority = PRIO(LOW);
    matched(mr, &in, 8, got, sizeof got);
    cr_expect_str_eq(got, "low-calls");
    in.priority = PRIO(URGENT);
    matched(mr, &in, 8, got, sizeof got);
    cr_expect_str_eq(got, "any-call");
    in.priority = 0; /* no priority given: routes that test it do not match */
    matched(mr, &in, 8, got, sizeof got);
    cr_expect_str_eq(got, "any-call");
}

Test(rules_match, kind_category_and_people)
{
    char got[128];
    ld_match_input in = {.kind = LD_KIND_SENSOR, .category = SENSOR(SMOKE)};
    matched(mr, &in, 8, got, sizeof got);
    cr_expect_str_eq(got, "smoke-sensor");
    /* Same wire value as call `fire`, other kind: the call route must not take it. */
    cr_expect_eq(SENSOR(SMOKE), CALL(FIRE));
    in = (ld_match_input){.kind = LD_KIND_SENSOR, .category = SENSOR(GAS)};
    matched(mr, &in, 8, got, sizeof got);
    cr_expect_str_eq(got, "everything");
    in = (ld_match_input){.kind = LD_KIND_PETITION, .category = ISSUE(HOUSING), .people = 5};
    matched(mr, &in, 8, got, sizeof got);
    cr_expect_str_eq(got, "group,everything");
    in.people = 4;
    matched(mr, &in, 8, got, sizeof got);
    cr_expect_str_eq(got, "everything");
    /* A category value the rules do not know only matches routes without one. */
    in = (ld_match_input){.kind = LD_KIND_CALL, .category = 99, .priority = PRIO(URGENT)};
    matched(mr, &in, 8, got, sizeof got);
    cr_expect_str_eq(got, "any-call");
}

Test(rules_match, compiled_fields_and_lookups)
{
    const ld_route *rt = match1(mr, LD_KIND_CALL, CALL(FIRE), 0);
    cr_expect_str_eq(rt->where, "rules.yaml:22:5");
    cr_expect_eq(rt->kind, LD_KIND_CALL);
    cr_expect_eq(rt->categories, (1ull << CALL(FIRE)) | (1ull << CALL(EXPLOSION)));
    cr_expect_eq(rt->priorities, 0);
    cr_expect_eq(rt->priority, PRIO(URGENT));
    cr_expect_eq(rt->cont, 0);
    expect_legs(mr, rt, "police", 45 * SEC, 5 * MIN, 90 * MIN);

    int fire = ld_rules_department(mr, "fire");
    cr_assert_eq(fire, 0);
    cr_expect_str_eq(mr->departments[fire].where, "rules.yaml:3:3");
    cr_expect_str_eq(mr->departments[fire].name, "fire", "name defaults to the id");
    cr_expect_eq(mr->departments[fire].levels[1].wait_ms, 2 * MIN);
    int t = ld_rules_terminal(mr, "fire-head");
    cr_assert_geq(t, 0);
    cr_expect_eq(mr->terminals[t].dept, fire);
    cr_expect_eq(mr->departments[fire].levels[1].terminal, t);
    cr_expect_eq(ld_rules_department(mr, "fier"), -1);
    cr_expect_eq(ld_rules_terminal(mr, "fire"), -1);
    cr_expect_str_eq(mr->departments[mr->command].id, "command");
}

Test(rules_match, version_is_a_digest_of_the_files)
{
    ld_diag d1, d2;
    ld_rules *again = load_ok(DATA "match/", &d1); /* trailing slash: same set */
    ld_rules *other = load_ok(DEFAULT_RULES, &d2);
    cr_expect_str_eq(again->version, mr->version);
    cr_expect_str_eq(again->dir, DATA "match");
    cr_expect_str_neq(other->version, mr->version);
    ld_rules_free(again);
    ld_rules_free(other);
    ld_diag_fini(&d1);
    ld_diag_fini(&d2);
}

Test(rules_match, anchors_and_merge_keys_share_budgets)
{
    ld_diag d;
    ld_rules *r = load_ok(DATA "anchors", &d);
    cr_expect_eq(d.n, 0, "x- keys are not unknown keys");
    const ld_route *rt = match1(r, LD_KIND_CALL, CALL(CRIME), 0);
    expect_legs(r, rt, "police", 30 * SEC, 5 * MIN, 2 * HOUR);
    rt = match1(r, LD_KIND_SENSOR, SENSOR(GAS), 0);
    cr_expect_str_eq(rt->name, "everything");
    expect_legs(r, rt, "command", 1 * MIN, 1 * HOUR, 2 * HOUR); /* own keys override */
    ld_rules_free(r);
    ld_diag_fini(&d);
}

/* ---- broken rule sets: the exact report ------------------------------------- */

Test(rules_errors, unknown_key_suggests_the_nearest)
{
    EXPECT_DIAGS("unknown_key", LD_ERULES,
                 "unknown_key/routes.yaml:4:5: error: unknown key 'prioirty' in route; did you "
                 "mean 'priority'?");
}

Test(rules_errors, unknown_department_lists_the_known)
{
    EXPECT_DIAGS("unknown_dept", LD_ERULES,
                 "unknown_dept/routes.yaml:5:23: error: department 'fier' is not defined; did "
                 "you mean 'fire'? (known: fire, command, police)",
                 "unknown_dept/routes.yaml:6:21: error: department 'medical' is not defined "
                 "(known: fire, command, police)");
}

Test(rules_errors, bad_duration)
{
    EXPECT_DIAGS("bad_duration", LD_ERULES,
                 "bad_duration/routes.yaml:5:55: error: bad duration '8x' for 'arrive': unknown "
                 "unit (use ms, s, m, h or d)");
}

#define CALL_NAMES                                                                     \
    "fire, crime, traffic_accident, medical, rescue, dispute, public_order, gas_leak, " \
    "explosion, water_supply, power_outage, gas_supply, heating, noise, stray_animal, "  \
    "vulnerable_person, road_hazard, flooding, other"

Test(rules_errors, category_must_belong_to_the_kind)
{
    EXPECT_DIAGS("unknown_category", LD_ERULES,
                 "unknown_category/routes.yaml:5:24: error: unknown call category 'fier'; did "
                 "you mean 'fire'? (known: " CALL_NAMES ")",
                 "unknown_category/routes.yaml:5:30: error: 'smoke' is a sensor kind, not a "
                 "call category (known: " CALL_NAMES ")",
                 "unknown_category/routes.yaml:9:38: error: unknown sensor kind 'smok'; did you "
                 "mean 'smoke'? (known: smoke, gas, water_level, crowd_density, geofence, "
                 "temperature)");
}

Test(rules_errors, duplicate_terminal_across_files)
{
    EXPECT_DIAGS("duplicate_terminal", LD_ERULES,
                 "duplicate_terminal/b-departments.yaml:3:37: error: terminal 'fire-head' "
                 "already belongs to department 'fire' (a-departments.yaml:3:28); terminal ids "
                 "are unique across departments");
}

Test(rules_errors, missing_command_department)
{
    EXPECT_DIAGS("no_command", LD_ERULES,
                 "no_command/departments.yaml:1:1: error: department 'command' is not defined; "
                 "every escalation chain ends with its levels");
}

/* Rule files are UTF-8 text. The routes file here once made libfyaml loop for
 * ever (invalid UTF-8 inside a '%' directive; found by tests/fuzz/fuzz_rules):
 * both files are refused before parsing, at the offending byte. */
Test(rules_errors, not_text_is_refused_at_the_byte)
{
    EXPECT_DIAGS("not_text", LD_ERULES,
                 "not_text/departments.yaml:11:1: error: control character 0x00 in a rule file",
                 "not_text/routes.yaml:4:7: error: not UTF-8 text: byte 0xf4; rule files are "
                 "UTF-8");
}

/* A syntax error in one file does not hide the errors of the others. The
 * column is libfyaml's: the first character of the unclosed string. */
Test(rules_errors, yaml_syntax_error)
{
    EXPECT_DIAGS("syntax_error", LD_ERULES,
                 "syntax_error/departments.yaml:9:66: error: bad duration '0s' for 'wait': must "
                 "be greater than zero",
                 "syntax_error/routes.yaml:7:19: error: YAML syntax: double-quoted scalar "
                 "without closing quote");
}

Test(rules_errors, level_terminal_not_in_department)
{
    EXPECT_DIAGS("level_terminal", LD_ERULES,
                 "level_terminal/departments.yaml:8:34: error: terminal 'fire-hed' of level "
                 "'head' is not one of fire's terminals (fire-duty, fire-deputy, fire-head)");
}

Test(rules_errors, every_error_of_a_file_in_one_run)
{
    EXPECT_DIAGS(
        "many_errors", LD_ERULES,
        "many_errors/rules.yaml:4:28: error: terminal 'fire-duty' is listed twice (first at "
        "rules.yaml:4:17)",
        "many_errors/rules.yaml:5:5: error: 'escalation' must list at least one level",
        "many_errors/rules.yaml:7:5: error: department 'police' is missing 'terminals'",
        "many_errors/rules.yaml:8:5: error: unknown key 'terminal' in department; did you mean "
        "'terminals'?",
        "many_errors/rules.yaml:14:66: error: bad duration '-5m' for 'wait': expected a number "
        "followed by a unit (ms, s, m, h, d), e.g. 1h30m",
        "many_errors/rules.yaml:17:20: error: unknown kind 'cal'; did you mean 'call'? (known: "
        "call, sensor, petition)",
        "many_errors/rules.yaml:18:15: error: 'continue' must be true or false, not 'maybe'",
        "many_errors/rules.yaml:20:54: error: arrive (1m) is shorter than acknowledge (5m); "
        "every budget counts from dispatch",
        "many_errors/rules.yaml:20:67: error: bad duration '0s' for 'resolve': must be greater "
        "than zero",
        "many_errors/rules.yaml:21:5: error: route name 'r1' is already used at "
        "rules.yaml:16:5",
        "many_errors/rules.yaml:22:24: error: 'category' needs 'kind' in the same match: "
        "categories are names of call categories, sensor kinds or petition issues",
        "many_errors/rules.yaml:23:5: error: 'dispatch' must list at least one department",
        "many_errors/rules.yaml:24:11: error: name 'bad/name' may only contain letters, "
        "digits, '_', '-' and '.'",
        "many_errors/rules.yaml:25:15: error: unknown priority 'highest' (known: critical, "
        "urgent, normal, low)",
        "many_errors/rules.yaml:27:59: error: unknown key 'escalate' in dispatch entry (known: "
        "department, acknowledge, arrive, resolve, feedback, reminders)",
        "many_errors/rules.yaml:28:23: error: department 'fire' appears twice in this route's "
        "dispatch",
        "many_errors/rules.yaml:29:1: error: unknown key 'route' at the top level; did you "
        "mean 'routes'?");
}

Test(rules_errors, at_most_max_levels_and_dispatch_entries)
{
    cr_assert_eq(LD_MAX_LEVELS, 8);
    cr_assert_eq(LD_MAX_DISPATCH, 8);
    EXPECT_DIAGS("limits", LD_ERULES,
                 "limits/rules.yaml:14:11: error: too many escalation levels: at most 8",
                 "limits/rules.yaml:38:11: error: too many departments in one route's dispatch: "
                 "at most 8");
}

Test(rules_errors, one_document_per_file)
{
    EXPECT_DIAGS("two_documents", LD_ERULES,
                 "two_documents/rules.yaml:6:1: error: a rule file holds one YAML document; "
                 "this is a second");
}

Test(rules_errors, directory_without_rule_files)
{
    EXPECT_DIAGS("empty", LD_ERULES, "empty: error: no rule files (*.yaml) in the directory");
}

Test(rules_errors, missing_directory)
{
    EXPECT_DIAGS("no_such_dir", LD_ENOENT,
                 "no_such_dir: error: cannot open the rules directory: No such file or "
                 "directory");
}

Test(rules_errors, warnings_do_not_stop_a_load)
{
    ld_diag d;
    ld_rules *r = load_ok(DATA "warnings", &d);
    char line[1024];
    static const char *const want[] = {
        "warnings/rules.yaml:13:5: warning: route 'explosions' never matches: route 'fires' "
        "(rules.yaml:9:5) comes first and takes every event it would",
        "warnings: warning: no catch-all route for kind 'sensor': add a last route with "
        "'kind: sensor' and no other condition, so that every sensor event has a rule",
        "warnings: warning: no catch-all route for kind 'petition': add a last route with "
        "'kind: petition' and no other condition, so that every petition event has a rule",
    };
    cr_expect_eq(d.nerrors, 0);
    cr_assert_eq(d.n, 3);
    for (size_t i = 0; i < 3; i++) {
        ld_diag_format(&d, i, line, sizeof line);
        cr_expect_str_eq(line + strlen(DATA), want[i]);
    }
    cr_expect_eq(r->nroutes, 3);
    ld_rules_free(r);
    ld_diag_fini(&d);
}

/* ---- durations ------------------------------------------------------------------ */

Test(durations, parse)
{
    static const struct {
        const char *s;
        uint64_t ms;
    } good[] = {
        {"45s", 45 * SEC},   {"5m", 5 * MIN},      {"2h", 2 * HOUR},
        {"15d", 15 * DAY},   {"1h30m", 90 * MIN},  {"250ms", 250},
        {"1ms", 1},          {"0h5m", 5 * MIN},    {"1d2h3m4s5ms", DAY + 2 * HOUR + 3 * MIN + 4 * SEC + 5},
        {"90s", 90 * SEC},   {"3650d", 3650 * DAY}, {"007s", 7 * SEC},
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        uint64_t ms = 0;
        cr_expect_eq(ld_parse_duration(good[i].s, &ms), 0, "'%s' parses", good[i].s);
        cr_expect_eq(ms, good[i].ms, "'%s' = %llu ms", good[i].s, (unsigned long long)ms);
    }
}

Test(durations, reject_garbage_zero_and_overflow)
{
    static const char *const bad[] = {
        "", "0s", "0ms", "0d0h", "5", "s", "ms", "5x", "1.5h", " 5m", "5m ", "-5m", "+5m",
        "30m1h", "5m5m", "1s1s", "1M", "5S", "1h 30m", "5sm", "3651d", "3650d1ms",
        "99999999999999999999s", "18446744073709551616ms", "18446744073709551615d", "1w",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        uint64_t ms = 12345;
        cr_expect_eq(ld_parse_duration(bad[i], &ms), LD_EINVAL, "'%s' is refused", bad[i]);
        cr_expect_eq(ms, 12345, "'%s' leaves the output alone", bad[i]);
    }
    uint64_t ms;
    cr_expect_eq(ld_parse_duration(NULL, &ms), LD_EINVAL);
}

Test(durations, format)
{
    static const struct {
        uint64_t ms;
        const char *s;
    } cases[] = {
        {0, "0s"},          {45 * SEC, "45s"},       {90 * MIN, "1h30m"},
        {250, "250ms"},     {15 * DAY, "15d"},       {1500, "1s500ms"},
        {90 * SEC, "1m30s"}, {DAY + HOUR + MIN + SEC + 1, "1d1h1m1s1ms"},
    };
    char buf[64];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ld_format_duration(cases[i].ms, buf, sizeof buf);
        cr_expect_str_eq(buf, cases[i].s);
    }
    ld_format_duration(90 * MIN, buf, 4); /* too small: cut, still a string */
    cr_expect_lt(strlen(buf), 4);
}

Test(durations, round_trip)
{
    /* Spread values over every magnitude up to the limit, plus the edges. */
    uint64_t x = 88172645463325252ull, limit = 3650 * DAY;
    char buf[64];
    for (int i = 0; i < 20000; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17; /* xorshift64 */
        uint64_t ms = i < 2 ? (i == 0 ? 1 : limit) : 1 + x % (limit >> (x >> 58) % 38);
        uint64_t back = 0;
        ld_format_duration(ms, buf, sizeof buf);
        cr_assert_eq(ld_parse_duration(buf, &back), 0, "'%s' (%llu ms) parses", buf,
                     (unsigned long long)ms);
        cr_assert_eq(back, ms, "'%s' round trip", buf);
    }
}
