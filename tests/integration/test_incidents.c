/* test_incidents.c: `linkctl incidents` reads the open incidents and one
 * incident's record straight from Redis, as an operator runs it during an
 * incident or a post-mortem: the order (nearest deadline first, none pending
 * last), the filters, the JSON, one incident in detail (open or closed),
 * broken records named and counted, and the exit codes. Against the real
 * daemon, Redis and NNG; every wait is bounded. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libfyaml.h>

#include "harness.h"
#include "http_client.h"

#define LINKCTL LD_BINARY_DIR "/linkctl"
#define RUN_MS 30000
#define WAIT_MS 20000
#define TOKEN "incidents-token-0123456789abcdef"

static ldh_env env;
static char dir[96], token_path[160], out_path[160], err_path[160];

static void setup(void)
{
    cr_assert_eq(ldh_mkdtemp(dir, sizeof dir, "incidents"), 0);
    snprintf(token_path, sizeof token_path, "%s/admin.token", dir);
    snprintf(out_path, sizeof out_path, "%s/out.txt", dir);
    snprintf(err_path, sizeof err_path, "%s/err.txt", dir);
    cr_assert_eq(ldh_write_file(token_path, TOKEN, strlen(TOKEN)), 0);
    ldh_linkd_opts o = {.http = true, .extra = {"--admin-token-file", token_path, NULL}};
    ldh_env_start_or_fail(&env, &o);
}

static void teardown(void)
{
    int code = ldh_env_stop(&env);
    ldh_rmtree(dir);
    cr_expect_eq(code, 0, "linkd must exit 0 on SIGTERM, exited %d", code);
}

/* incidents runs `linkctl incidents --redis <url> <args...>` (NULL-terminated)
 * and returns its exit code; what it printed is in *out and *err (malloc'd). */
static int incidents(const char *url, char **out, char **err, ...)
{
    char *argv[16] = {LINKCTL, "incidents", "--redis", (char *)url};
    int n = 4;
    va_list ap;
    va_start(ap, err);
    for (char *a; n < 15 && (a = va_arg(ap, char *));) argv[n++] = a;
    va_end(ap);
    argv[n] = NULL;
    ldh_write_file(out_path, "", 0);
    ldh_write_file(err_path, "", 0);
    int code = ldh_run(argv, NULL, out_path, err_path, RUN_MS);
    *out = ldh_read_file(out_path, NULL);
    *err = ldh_read_file(err_path, NULL);
    if (!*out) *out = strdup("");
    if (!*err) *err = strdup("");
    return code;
}

/* line_of returns a copy of the first line of <text> that starts with
 * <prefix> (free it), or NULL. */
static char *line_of(const char *text, const char *prefix)
{
    size_t pl = strlen(prefix);
    for (const char *p = text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
        if (strncmp(p, prefix, pl) == 0) return strndup(p, strcspn(p, "\n"));
    return NULL;
}

static bool line_has(const char *text, const char *prefix, const char *needle)
{
    char *line = line_of(text, prefix);
    bool yes = line && strstr(line, needle);
    free(line);
    return yes;
}

/* recorded says whether <inc> has its record and its place in ld:open. */
static bool recorded(const char *inc)
{
    redisReply *r = ldh_redis_cmd(&env.redis, "ZSCORE ld:open %s", inc);
    bool in_open = r && r->type == REDIS_REPLY_STRING;
    if (r) freeReplyObject(r);
    return in_open && ldh_redis_int(&env.redis, "EXISTS ld:inc:%s", inc) == 1;
}

static void wait_recorded(const char *inc)
{
    uint64_t end = ldh_mono_ms() + WAIT_MS;
    while (!recorded(inc) && ldh_mono_ms() < end) ldh_sleep_ms(50);
    ldh_check(&env, recorded(inc), "%s never reached ld:open and ld:inc:%s", inc, inc);
}

/* task_state reads the state of <inc>'s task for <dept> from its record; -1 if none. */
static int task_state(const char *inc, const char *dept)
{
    int state = -1;
    redisReply *r = ldh_redis_cmd(&env.redis, "GET ld:inc:%s", inc);
    Linkd__V1__IncidentRecord *rec = r && r->type == REDIS_REPLY_STRING
        ? linkd__v1__incident_record__unpack(NULL, r->len, (const uint8_t *)r->str) : NULL;
    for (size_t i = 0; rec && i < rec->n_tasks; i++) {
        const Linkd__V1__Task *t = rec->tasks[i]->task;
        if (t && t->department && strcmp(t->department, dept) == 0) state = (int)t->state;
    }
    if (rec) linkd__v1__incident_record__free_unpacked(rec, NULL);
    if (r) freeReplyObject(r);
    return state;
}

static void accept_event(ldh_event *ev, char inc[64])
{
    ldh_check(&env, ldh_ingest_accept(&env.linkd, ev, inc, 64) ==
                        LINKD__V1__RESULT__RESULT_ACCEPTED, "not accepted");
    wait_recorded(inc);
}

/* One fire call and one wage-arrears petition, both recorded. The fire
 * call's departments, as the default rules plan them, go to depts[]. */
typedef struct pair {
    char fire[64], petition[64];
    char depts[LD_MAX_DISPATCH * 4][32];
    size_t ndepts;
} pair;

static void accept_pair(pair *p)
{
    ldh_event fire, pet;
    ldh_event_call(&fire, LINKD__V1__CALL_CATEGORY__CALL_CATEGORY_FIRE);
    ldh_event_petition(&pet, LINKD__V1__PETITION_ISSUE__PETITION_ISSUE_WAGE_ARREARS, 2);
    ld_rules *rules = ldh_rules_load(LDH_DEFAULT_RULES);
    ldh_check(&env, rules, "the default rules do not load");
    ld_match_input in;
    ld_rules_input(rules, &fire.env, ldh_wall_ms(), &in);
    ldh_dispatch plan[LD_MAX_DISPATCH * 4];
    p->ndepts = ldh_rules_plan(rules, &in, plan, sizeof plan / sizeof plan[0]);
    for (size_t i = 0; i < p->ndepts; i++)
        snprintf(p->depts[i], sizeof p->depts[i], "%s", plan[i].dept->id);
    ld_rules_free(rules);
    ldh_check(&env, p->ndepts >= 1, "the default rules send a fire call nowhere");
    accept_event(&fire, p->fire);
    accept_event(&pet, p->petition);
}

/* position of <needle> in <text>, or -1. */
static long at(const char *text, const char *needle)
{
    const char *p = strstr(text, needle);
    return p ? p - text : -1;
}

/* ---- JSON through libfyaml (JSON mode), so "it parses" means a real parser said so. */

static struct fy_document *json_parse(const char *text)
{
    struct fy_parse_cfg cfg = {.flags = FYPCF_QUIET | FYPCF_JSON_FORCE};
    return fy_document_build_from_string(&cfg, text, FY_NT);
}

static const char *json_at(struct fy_document *d, const char *path)
{
    struct fy_node *n = d ? fy_node_by_path(fy_document_root(d), path, FY_NT, FYNWF_DONT_FOLLOW) : NULL;
    return n ? fy_node_get_scalar0(n) : NULL;
}

static bool json_is(struct fy_document *d, const char *path, const char *want)
{
    const char *v = json_at(d, path);
    return v && strcmp(v, want) == 0;
}

Test(incidents, lists_the_most_urgent_first_filters_and_counts, .init = setup, .fini = teardown,
     .timeout = 180)
{
    pair p;
    accept_pair(&p);
    char *out, *err, line[80];

    int code = incidents(env.redis.url, &out, &err, NULL);
    ldh_check(&env, code == 0, "exit %d\n%s%s", code, out, err);
    long fire = at(out, p.fire), pet = at(out, p.petition);
    cr_expect(fire >= 0 && pet >= 0, "both incidents must be listed:\n%s", out);
    cr_expect(fire < pet, "the fire call (critical, due in seconds) must come before the "
                          "petition (due in 15 days):\n%s", out);
    char *fire_line = line_of(out, p.fire);
    cr_assert(fire_line, "%s", out);
    cr_expect(strstr(fire_line, "call/fire") && strstr(fire_line, "critical"), "%s", fire_line);
    for (size_t i = 0; i < p.ndepts; i++) {
        snprintf(line, sizeof line, " %s@L", p.depts[i]);
        cr_expect(strstr(fire_line, line), "the fire call's task for %s is not shown: %s",
                  p.depts[i], fire_line);
    }
    free(fire_line);
    cr_expect(line_has(out, p.petition, "justice@L0:dispatched") &&
                  line_has(out, p.petition, "petition/wage_arrears"), "%s", out);
    cr_expect(strstr(out, "2 open incidents, 2 shown\n"), "%s", out);
    free(out), free(err);

    code = incidents(env.redis.url, &out, &err, "--limit", "1", NULL);
    cr_expect_eq(code, 0, "%s", err);
    cr_expect(strstr(out, p.fire) && !strstr(out, p.petition),
              "--limit 1 must show only the most urgent:\n%s", out);
    cr_expect(strstr(out, "2 open incidents, 1 shown\n"), "%s", out);
    free(out), free(err);

    code = incidents(env.redis.url, &out, &err, "--dept", "justice", NULL);
    cr_expect_eq(code, 0, "%s", err);
    cr_expect(strstr(out, p.petition) && !strstr(out, p.fire),
              "--dept justice must show the petition alone:\n%s", out);
    cr_expect(strstr(out, "2 open incidents, 1 shown"), "%s", out);
    free(out), free(err);

    code = incidents(env.redis.url, &out, &err, "--json", NULL);
    cr_expect_eq(code, 0, "%s", err);
    struct fy_document *d = json_parse(out);
    cr_expect(d, "--json is not JSON:\n%s", out);
    cr_expect(json_is(d, "/open", "2") && json_is(d, "/shown", "2") &&
                  json_is(d, "/unreadable", "0"), "%s", out);
    cr_expect(json_is(d, "/incidents/0/id", p.fire) && json_is(d, "/incidents/1/id", p.petition),
              "the JSON order differs from the text:\n%s", out);
    cr_expect(json_is(d, "/incidents/0/priority", "critical") &&
                  json_is(d, "/incidents/1/category", "wage_arrears"), "%s", out);
    snprintf(line, sizeof line, "/incidents/0/tasks/%zu", p.ndepts);
    cr_expect(json_at(d, "/incidents/0/tasks/0/department") && !json_at(d, line),
              "the fire call must have %zu tasks:\n%s", p.ndepts, out);
    fy_document_destroy(d);
    free(out), free(err);
}

static void close_incident(const char *inc)
{
    char path[160];
    snprintf(path, sizeof path, "/api/incidents/%s/close", inc);
    ldh_http_reply h;
    ldh_check(&env, ldh_http(env.linkd.http, "POST", path,
                             "{\"by\":\"Supervisor Wang\",\"reason\":\"wages paid\","
                             "\"disposition\":\"paid in full\"}", TOKEN, &h) == 0 &&
                        h.status == 200, "close failed: %d %s", h.status, h.body);
    ldh_http_reply_free(&h);
    uint64_t end = ldh_mono_ms() + WAIT_MS;
    while (recorded(inc) && ldh_mono_ms() < end) ldh_sleep_ms(50);
    ldh_check(&env, !recorded(inc), "%s is still in ld:open after its close", inc);
}

Test(incidents, one_incident_in_detail_open_and_closed, .init = setup, .fini = teardown,
     .timeout = 180)
{
    char inc[64], tid[128], prefix[80];
    ldh_event ev;
    ldh_event_petition(&ev, LINKD__V1__PETITION_ISSUE__PETITION_ISSUE_WAGE_ARREARS, 2);
    accept_event(&ev, inc);

    /* Justice's on-duty terminal acknowledges; the petition desk does nothing. */
    ld_rules *rules = ldh_rules_load(LDH_DEFAULT_RULES);
    ldh_check(&env, rules, "the default rules do not load");
    int dept = ld_rules_department(rules, "justice");
    ldh_check(&env, dept >= 0, "no justice department in the default rules");
    int on_duty = ld_rules_on_duty(rules, dept, ldh_wall_ms());
    char term[64], level0[40];
    snprintf(term, sizeof term, "%s", on_duty >= 0 ? rules->terminals[on_duty].id
                                                   : ldh_rules_terminal_id(rules, &rules->departments[dept], 0));
    snprintf(level0, sizeof level0, " %s ", ldh_rules_level(rules, &rules->departments[dept], 0)->name);
    ld_rules_free(rules);
    snprintf(tid, sizeof tid, "%s/justice", inc);
    ldh_acknowledge_at(&env, term, tid, LINKD__V1__PRIORITY__PRIORITY_NORMAL);
    uint64_t end = ldh_mono_ms() + WAIT_MS;
    while (task_state(inc, "justice") != LINKD__V1__TASK_STATE__TASK_STATE_ACKNOWLEDGED &&
           ldh_mono_ms() < end)
        ldh_sleep_ms(50);

    char *out, *err;
    int code = incidents(env.redis.url, &out, &err, "--rules", LDH_DEFAULT_RULES, inc, NULL);
    ldh_check(&env, code == 0, "exit %d\n%s%s", code, out, err);
    snprintf(prefix, sizeof prefix, "incident %s  open", inc);
    cr_expect(strstr(out, prefix), "the header must name the incident as open:\n%s", out);
    cr_expect(line_has(out, "  task justice ", "acknowledged"), "%s", out);
    cr_expect(line_has(out, "  task justice ", level0), "the level's name from --rules:\n%s", out);
    cr_expect(line_has(out, "  task petition ", "dispatched"), "%s", out);
    cr_expect(strstr(out, "  kind      petition/wage_arrears, priority normal"), "%s", out);
    long opened = at(out, "incident_opened"), acked = at(out, "task_acknowledged");
    cr_expect(at(out, "history (") >= 0 && opened >= 0 && acked > opened,
              "the history must list the opening, then the acknowledgement:\n%s", out);
    free(out), free(err);

    code = incidents(env.redis.url, &out, &err, "--json", inc, NULL);
    cr_expect_eq(code, 0, "%s", err);
    struct fy_document *d = json_parse(out);
    cr_expect(d, "--json is not JSON:\n%s", out);
    cr_expect(json_is(d, "/id", inc) && json_is(d, "/open", "true") &&
                  json_is(d, "/history/0/kind", "incident_opened"), "%s", out);
    fy_document_destroy(d);
    free(out), free(err);

    /* Closed: gone from ld:open, its record still read. */
    close_incident(inc);
    code = incidents(env.redis.url, &out, &err, inc, NULL);
    cr_expect_eq(code, 0, "a closed incident: exit %d\n%s%s", code, out, err);
    snprintf(prefix, sizeof prefix, "incident %s  closed", inc);
    cr_expect(strstr(out, prefix) && strstr(out, "  closed    "), "%s", out);
    cr_expect(strstr(out, "incident_closed"), "%s", out);
    free(out), free(err);

    code = incidents(env.redis.url, &out, &err, "I0-0", NULL);
    cr_expect_eq(code, 66, "an unknown incident must exit 66 (EX_NOINPUT), exited %d", code);
    cr_expect(strstr(err, "no record for I0-0"), "%s", err);
    free(out), free(err);

    int port;
    cr_assert_eq(ldh_free_ports(&port, 1), 0);
    char url[64];
    snprintf(url, sizeof url, "redis://127.0.0.1:%d/0", port);
    code = incidents(url, &out, &err, NULL);
    cr_expect_eq(code, 69, "nobody on the port must exit 69 (EX_UNAVAILABLE), exited %d", code);
    cr_expect(strstr(err, "cannot reach Redis"), "%s", err);
    free(out), free(err);
}

Test(incidents, a_broken_record_is_named_and_counted, .init = setup, .fini = teardown,
     .timeout = 180)
{
    pair p;
    accept_pair(&p);
    char corrupt[64], missing[64], score[32];
    snprintf(corrupt, sizeof corrupt, "Icorrupt-%d", (int)getpid());
    snprintf(missing, sizeof missing, "Imissing-%d", (int)getpid());
    redisReply *r = ldh_redis_cmd(&env.redis, "SET ld:inc:%s %b", corrupt, "\xff\xff\x01garbage", (size_t)10);
    ldh_check(&env, r && r->type == REDIS_REPLY_STATUS, "SET failed");
    freeReplyObject(r);
    /* Nothing pending (score 0): listed last. The missing one is due in 100 days. */
    snprintf(score, sizeof score, "%llu", (unsigned long long)(ldh_wall_ms() + 100ull * 86400000));
    ldh_check(&env, ldh_redis_int(&env.redis, "ZADD ld:open 0 %s %s %s", corrupt, score, missing) == 2,
              "ZADD failed");

    char *out, *err;
    int code = incidents(env.redis.url, &out, &err, NULL);
    cr_expect_eq(code, 65, "broken records must exit 65 (EX_DATAERR), exited %d\n%s", code, out);
    cr_expect(line_has(out, corrupt, "UNREADABLE: the record does not decode") &&
                  line_has(out, missing, "UNREADABLE: no record"), "%s", out);
    long fire = at(out, p.fire), pet = at(out, p.petition), mis = at(out, missing),
         cor = at(out, corrupt);
    cr_expect(fire >= 0 && fire < pet && pet < mis && mis < cor,
              "the other incidents must still be listed, in deadline order, nothing pending "
              "last:\n%s", out);
    cr_expect(strstr(out, "4 open incidents, 4 shown, 2 unreadable\n"), "%s", out);
    free(out), free(err);

    code = incidents(env.redis.url, &out, &err, "--json", NULL);
    cr_expect_eq(code, 65);
    struct fy_document *d = json_parse(out);
    cr_expect(d, "--json is not JSON:\n%s", out);
    cr_expect(json_is(d, "/unreadable", "2") && json_is(d, "/shown", "4") &&
                  json_is(d, "/incidents/3/id", corrupt) &&
                  json_is(d, "/incidents/3/error", "the record does not decode"), "%s", out);
    fy_document_destroy(d);
    free(out), free(err);

    code = incidents(env.redis.url, &out, &err, corrupt, NULL);
    cr_expect_eq(code, 65, "one broken record: exit %d", code);
    cr_expect(strstr(err, corrupt) && strstr(err, "does not decode"), "%s", err);
    free(out), free(err);
}
