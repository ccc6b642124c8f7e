/* test_board.c: the live board in headless Chromium, driven over WebDriver
 * (chromedriver, from Debian's chromium-driver), against the real daemon:
 * an incident sent through intake appears, its countdown moves with linkd's
 * clock, an escalation is highlighted, and supervisor actions taken on the
 * page (extend a deadline, merge a second report of the same emergency into
 * the first) change the task and the incidents in linkd. A screenshot is left in the build
 * directory (board.png).
 *
 * The test is skipped, saying why, only if Chromium cannot start at all
 * (no chromedriver or chromium binary, or no session). Every wait is
 * bounded; the page is read as a user would read it (text, classes). */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "http_client.h"

#define WAIT_MS 30000
#define TOKEN "board-token-0123456789abcdef"
#define CHROMIUM "/usr/bin/chromium"
#define CHROMEDRIVER "/usr/bin/chromedriver"
#define ELEMENT_KEY "element-6066-11e4-a52e-4f735466cecf"

static ldh_env env;
static int wd_port;
static pid_t wd_pid;
static char session[80], dir[96], token_path[160], wd_log[160];

static void teardown(void)
{
    if (session[0]) {
        char path[128];
        ldh_http_reply r;
        snprintf(path, sizeof path, "/session/%s", session);
        if (ldh_http(wd_port, "DELETE", path, NULL, NULL, &r) == 0) ldh_http_reply_free(&r);
        session[0] = '\0';
    }
    if (wd_pid > 0) ldh_stop_pid(wd_pid, 10000);
    wd_pid = 0;
    int code = ldh_env_stop(&env);
    if (dir[0]) ldh_rmtree(dir);
    cr_expect_eq(code, 0, "linkd must exit 0 on SIGTERM, exited %d", code);
}

/* ---- a little JSON for WebDriver ------------------------------------------------- */

static void json_escape(char *out, size_t len, const char *s)
{
    size_t o = 0;
    for (; *s && o + 7 < len; s++) {
        if (*s == '"' || *s == '\\') out[o++] = '\\', out[o++] = *s;
        else if (*s == '\n') out[o++] = '\\', out[o++] = 'n';
        else out[o++] = *s;
    }
    out[o] = '\0';
}

/* json_string copies the string value after "<key>": in <json>. */
static bool json_string(const char *json, const char *key, char *out, size_t len)
{
    char k[96];
    snprintf(k, sizeof k, "\"%s\":\"", key);
    const char *p = strstr(json, k);
    if (!p) return false;
    p += strlen(k);
    size_t n = 0;
    while (*p && *p != '"' && n + 1 < len) {
        if (*p == '\\' && p[1]) p++;
        out[n++] = *p++;
    }
    out[n] = '\0';
    return *p == '"';
}

/* wd sends one WebDriver command; returns the body if the status is 200,
 * else NULL (the body is printed). */
static char *wd(const char *method, const char *path, const char *body)
{
    ldh_http_reply r;
    uint64_t t0 = ldh_mono_ms();
    int rv = ldh_http(wd_port, method, path, body, NULL, &r);
    if (ldh_mono_ms() - t0 > 5000)
        fprintf(stderr, "webdriver %s %s took %llu ms\n", method, path,
                (unsigned long long)(ldh_mono_ms() - t0));
    if (rv != 0) return NULL;
    if (r.status != 200) {
        fprintf(stderr, "webdriver %s %s: %d %.400s\n", method, path, r.status, r.body);
        ldh_http_reply_free(&r);
        return NULL;
    }
    char *b = r.body;
    r.body = NULL;
    ldh_http_reply_free(&r);
    return b;
}

static char *wd_session(const char *method, const char *rest, const char *body)
{
    char path[512];
    snprintf(path, sizeof path, "/session/%s%s", session, rest);
    return wd(method, path, body);
}

/* exec runs <script> in the page; its return value (made a string by the
 * script) is copied to <out>. */
static bool exec(const char *script, char *out, size_t len)
{
    char esc[4096], body[4200];
    json_escape(esc, sizeof esc, script);
    snprintf(body, sizeof body, "{\"script\":\"%s\",\"args\":[]}", esc);
    char *b = wd_session("POST", "/execute/sync", body);
    bool ok = b && json_string(b, "value", out, len);
    free(b);
    return ok;
}

/* wait_true runs <script> (which returns "yes" or something else) until it
 * says yes or <timeout_ms> passes. */
static bool wait_true(const char *script, int timeout_ms)
{
    char v[256];
    uint64_t end = ldh_mono_ms() + (uint64_t)timeout_ms;
    for (int i = 0; i < 1000 && ldh_mono_ms() < end; i++) {
        if (exec(script, v, sizeof v) && strcmp(v, "yes") == 0) return true;
        ldh_sleep_ms(100);
    }
    return false;
}

static bool find(const char *css, char *id, size_t len)
{
    char esc[512], body[600];
    json_escape(esc, sizeof esc, css);
    snprintf(body, sizeof body, "{\"using\":\"css selector\",\"value\":\"%s\"}", esc);
    char *b = wd_session("POST", "/element", body);
    bool ok = b && json_string(b, ELEMENT_KEY, id, len);
    free(b);
    return ok;
}

/* click finds <css> and clicks it; the board re-renders its rows, so a
 * found element may be replaced before the click lands: retried, bounded. */
static bool click(const char *css)
{
    for (int i = 0; i < 20; i++) {
        char id[128], rest[200];
        if (find(css, id, sizeof id)) {
            snprintf(rest, sizeof rest, "/element/%s/click", id);
            char *b = wd_session("POST", rest, "{}");
            free(b);
            if (b) return true;
        }
        ldh_sleep_ms(100);
    }
    return false;
}

static bool type(const char *css, const char *text)
{
    char id[128], rest[200], esc[256], body[300];
    if (!find(css, id, sizeof id)) return false;
    snprintf(rest, sizeof rest, "/element/%s/clear", id);
    free(wd_session("POST", rest, "{}"));
    json_escape(esc, sizeof esc, text);
    snprintf(body, sizeof body, "{\"text\":\"%s\"}", esc);
    snprintf(rest, sizeof rest, "/element/%s/value", id);
    char *b = wd_session("POST", rest, body);
    free(b);
    return b != NULL;
}

static void save_screenshot(const char *path)
{
    char *b = wd_session("GET", "/screenshot", NULL);
    const char *p = b ? strstr(b, "\"value\":\"") : NULL;
    if (!p) {
        free(b);
        return;
    }
    p += 9;
    size_t n = strcspn(p, "\"");
    unsigned char *png = malloc(n);
    size_t o = 0;
    unsigned acc = 0;
    int bits = 0;
    for (size_t i = 0; png && i < n; i++) {
        const char *tab = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        const char *c = strchr(tab, p[i]);
        if (!c || p[i] == '\0') continue;
        acc = (acc << 6) | (unsigned)(c - tab);
        if ((bits += 6) >= 8) {
            bits -= 8;
            png[o++] = (unsigned char)(acc >> bits);
        }
    }
    if (png) ldh_write_file(path, png, o);
    free(png);
    free(b);
}

/* ---- starting Chromium -------------------------------------------------------------- */

static bool start_browser(char *why, size_t len)
{
    if (access(CHROMEDRIVER, X_OK) != 0 || access(CHROMIUM, X_OK) != 0) {
        snprintf(why, len, "%s or %s is missing (Debian packages chromium, chromium-driver; "
                 "ops/setup.sh installs them)", CHROMIUM, CHROMEDRIVER);
        return false;
    }
    char port[32];
    if (ldh_free_ports(&wd_port, 1) != 0) return snprintf(why, len, "no free port"), false;
    snprintf(port, sizeof port, "--port=%d", wd_port);
    snprintf(wd_log, sizeof wd_log, "%s/chromedriver.log", dir);
    char *argv[] = {CHROMEDRIVER, port, NULL};
    wd_pid = ldh_spawn(argv, NULL, wd_log, wd_log);
    if (wd_pid <= 0) return snprintf(why, len, "chromedriver did not start"), false;
    bool up = false;
    for (int i = 0; i < 150 && !up; i++) {
        char *b = wd("GET", "/status", NULL);
        up = b && strstr(b, "\"ready\":true");
        free(b);
        if (!up) ldh_sleep_ms(100);
    }
    if (!up) return snprintf(why, len, "chromedriver never became ready"), false;
    char *b = wd("POST", "/session",
                 "{\"capabilities\":{\"alwaysMatch\":{\"browserName\":\"chrome\","
                 "\"goog:chromeOptions\":{\"binary\":\"" CHROMIUM "\",\"args\":["
                 "\"--headless=new\",\"--no-sandbox\",\"--disable-gpu\","
                 "\"--disable-dev-shm-usage\",\"--window-size=1600,1000\"]}}}}");
    bool ok = b && json_string(b, "sessionId", session, sizeof session);
    free(b);
    if (!ok) {
        ldh_tail("chromedriver", wd_log, 20);
        snprintf(why, len, "Chromium did not start a session (see the chromedriver log above)");
    }
    return ok;
}

/* start_linkd runs linkd with HTTP and the admin token; <board_max>, if not
 * NULL, is its --board-max. */
static void start_linkd(const char *board_max)
{
    cr_assert_eq(ldh_mkdtemp(dir, sizeof dir, "board"), 0);
    snprintf(token_path, sizeof token_path, "%s/admin.token", dir);
    cr_assert_eq(ldh_write_file(token_path, TOKEN, strlen(TOKEN)), 0);
    /* 30x: a 30 s acknowledge budget passes in a second, a 2 h resolve in four minutes. */
    ldh_linkd_opts o = {.time_scale = 30, .http = true,
                        .extra = {"--admin-token-file", token_path, board_max ? "--board-max" : NULL,
                                  board_max, NULL}};
    ldh_env_start_or_fail(&env, &o);
}

/* open_board starts the browser on the board and waits for its WebSocket;
 * false (the test is skipped) if headless Chromium cannot start. */
static bool open_board(void)
{
    char why[256], url[96], body[160];
    if (!start_browser(why, sizeof why)) {
        cr_skip_test("headless Chromium cannot start, board test skipped: %s", why);
        return false;
    }
    snprintf(url, sizeof url, "http://127.0.0.1:%d/", env.linkd.http);
    snprintf(body, sizeof body, "{\"url\":\"%s\"}", url);
    free(wd_session("POST", "/url", body));
    ldh_check(&env, wait_true("return document.querySelector('#conn').textContent === 'live' "
                              "? 'yes' : 'no';", WAIT_MS),
              "the board never connected its WebSocket");
    return true;
}

static long long resolve_due(const char *inc, const char *dept)
{
    char path[160], key[160];
    ldh_http_reply r;
    snprintf(path, sizeof path, "/api/incidents/%s", inc);
    if (ldh_http(env.linkd.http, "GET", path, NULL, NULL, &r) != 0) return -1;
    snprintf(key, sizeof key, "\"task_id\":\"%s/%s\"", inc, dept);
    const char *t = strstr(r.body, key);
    const char *f = t ? strstr(t, "\"leg\":\"resolve\",\"due_ms\":") : NULL;
    long long v = f ? strtoll(f + strlen("\"leg\":\"resolve\",\"due_ms\":"), NULL, 10) : -1;
    ldh_http_reply_free(&r);
    return v;
}

Test(board, incident_appears_counts_down_escalates_and_takes_an_action, .fini = teardown,
     .timeout = 300)
{
    start_linkd(NULL);
    if (!open_board()) return;
    char v[256], script[1024], inc[64];

    /* An incident through intake shows up, live. */
    ldh_event ev;
    ldh_accept_call(&env, &ev, LINKD__V1__CALL_CATEGORY__CALL_CATEGORY_FIRE, inc);
    snprintf(script, sizeof script,
             "return document.querySelector('tr.incident[data-id=\"%s\"]') ? 'yes' : 'no';", inc);
    ldh_check(&env, wait_true(script, WAIT_MS), "incident %s never appeared on the board", inc);

    /* Its countdown moves with linkd's clock. */
    snprintf(script, sizeof script,
             "const c = document.querySelector('.countdown[data-task=\"%s/fire\"]"
             "[data-leg=\"resolve\"]'); return c ? c.textContent : '';", inc);
    char first[64] = "", later[64] = "";
    ldh_check(&env, exec(script, first, sizeof first) && first[0], "no resolve countdown");
    uint64_t end = ldh_mono_ms() + WAIT_MS;
    for (int i = 0; i < 300 && ldh_mono_ms() < end; i++) {
        ldh_sleep_ms(100);
        if (exec(script, later, sizeof later) && strcmp(later, first) != 0) break;
    }
    cr_expect(strcmp(first, later) != 0 && later[0], "the countdown stood still at '%s'", first);
    cr_expect(strncmp(first, "resolve ", 8) == 0, "countdown reads '%s'", first);

    /* Nobody acknowledges medical's task: it escalates, and the board shows it. */
    snprintf(script, sizeof script,
             "const t = document.querySelector('.task.escalated[data-task=\"%s/medical\"]');"
             "return t && getComputedStyle(t).backgroundColor !== 'rgb(255, 255, 255)' "
             "&& t.querySelector('.level') ? 'yes' : 'no';", inc);
    ldh_check(&env, wait_true(script, WAIT_MS), "medical's escalation is not highlighted");

    /* A supervisor extends fire's resolve deadline from the page. */
    long long before = resolve_due(inc, "fire");
    ldh_check(&env, before > 0, "no resolve deadline for fire in the API");
    char css[160];
    ldh_check(&env, type("#token", TOKEN), "no token field");
    snprintf(css, sizeof css, "button.act[data-task=\"%s/fire\"]", inc);
    ldh_check(&env, click(css), "no action button on fire's task");
    ldh_check(&env, click("#act-kind option[value=\"extend\"]"), "no extend action");
    ldh_check(&env, click("#act-leg option:nth-child(3)"), "no resolve leg");
    ldh_check(&env, type("#act-extend", "1h"), "no duration field");
    ldh_check(&env, type("#act-by", "Supervisor Zhao"), "no name field");
    ldh_check(&env, type("#act-reason", "bridge closed, crews detour"), "no reason field");
    ldh_check(&env, click("#act-submit"), "no apply button");
    ldh_check(&env, wait_true("return document.querySelector('#act-result').textContent"
                              ".startsWith('done') ? 'yes' : 'no';", WAIT_MS),
              "the page never confirmed the action");
    cr_expect_eq(resolve_due(inc, "fire"), before + 3600000,
                 "fire's resolve deadline did not move by 1h in linkd");
    exec("return document.querySelector('#act-result').textContent;", v, sizeof v);
    cr_expect_str_eq(v, "done: extend");

    /* A gas leak reported at the same address is the same emergency: the
     * supervisor merges it into the fire from the page. */
    char inc2[64], path[160];
    ldh_event ev2;
    ldh_accept_call(&env, &ev2, LINKD__V1__CALL_CATEGORY__CALL_CATEGORY_GAS_LEAK, inc2);
    snprintf(script, sizeof script,
             "return document.querySelector('tr.incident[data-id=\"%s\"]') ? 'yes' : 'no';", inc2);
    ldh_check(&env, wait_true(script, WAIT_MS), "incident %s never appeared on the board", inc2);
    ldh_check(&env, click("#act-cancel"), "no cancel button");
    snprintf(css, sizeof css, "button.act[data-kind=\"merge\"][data-incident=\"%s\"]", inc);
    ldh_check(&env, click(css), "no merge button on the fire");
    snprintf(css, sizeof css, "#act-merge option[value=\"%s\"]", inc2);
    ldh_check(&env, click(css), "the gas leak is not offered for the merge");
    ldh_check(&env, type("#act-reason", "same building, one emergency"), "no reason field");
    ldh_check(&env, click("#act-submit"), "no apply button");
    ldh_check(&env, wait_true("return document.querySelector('#act-result').textContent"
                              ".startsWith('done: merge') ? 'yes' : 'no';", WAIT_MS),
              "the page never confirmed the merge");
    snprintf(path, sizeof path, "/api/incidents/%s", inc2);
    ldh_http_reply g;
    ldh_check(&env, ldh_http(env.linkd.http, "GET", path, NULL, NULL, &g) == 0, "no answer");
    cr_expect_eq(g.status, 404, "the merged gas leak is still open in linkd: %s", g.body);
    ldh_http_reply_free(&g);
    snprintf(path, sizeof path, "/api/incidents/%s", inc);
    ldh_check(&env, ldh_http(env.linkd.http, "GET", path, NULL, NULL, &g) == 0, "no answer");
    char want[96];
    snprintf(want, sizeof want, "\"incident\":\"%s\"", inc2);
    cr_expect(g.status == 200 && strstr(g.body, want), "the fire does not hold the gas leak: %s",
              g.body);
    ldh_http_reply_free(&g);
    /* And the board shows it: the gas leak's row goes, the fire's says what joined it. */
    snprintf(script, sizeof script,
             "const m = document.querySelector('tr.incident[data-id=\"%s\"] .merged');"
             "return !document.querySelector('tr.incident[data-id=\"%s\"]') && m && "
             "m.textContent.includes('%s') ? 'yes' : 'no';", inc, inc2, inc2);
    ldh_check(&env, wait_true(script, WAIT_MS), "the board does not show the merge");

    save_screenshot(LD_BINARY_DIR "/board.png");

    /* A board client that sends an oversized message is closed and counted.
     * linkd sends close code 1009, but when it comes while a snapshot is being
     * written the browser may only see the connection drop (1006). */
    char *r = wd_session("POST", "/execute/async",
                         "{\"script\":\"const cb = arguments[arguments.length - 1];"
                         "const ws = new WebSocket('ws://' + location.host + '/', 'linkd-board');"
                         "ws.onopen = () => ws.send('x'.repeat(10000));"
                         "ws.onclose = (e) => cb(String(e.code));\",\"args\":[]}");
    ldh_check(&env, r && json_string(r, "value", v, sizeof v), "no answer from the page");
    cr_expect(strcmp(v, "1009") == 0 || strcmp(v, "1006") == 0,
              "an oversized message must close the client, not end with %s", v);
    free(r);
    ldh_http_reply m;
    ldh_check(&env, ldh_http(env.linkd.http, "GET", "/metrics", NULL, NULL, &m) == 0, "no metrics");
    cr_expect_eq(ldh_metric(m.body, "linkd_websocket_frames_too_large_total"), 1);
    ldh_http_reply_free(&m);
}

/* A page that started from a partial snapshot stays bounded: deltas add every
 * incident that changes, and past twice --board-max the least urgent go; the
 * most urgent stays, and the count still says how many are open. */
Test(board, the_page_keeps_the_most_urgent_and_stays_bounded, .fini = teardown, .timeout = 300)
{
    start_linkd("2");
    if (!open_board()) return;
    char fire[64], noise[5][64], script[256], rows[32] = "";
    ldh_event ev;
    for (int i = 0; i < 5; i++)
        ldh_accept_call(&env, &ev, LINKD__V1__CALL_CATEGORY__CALL_CATEGORY_NOISE, noise[i]);
    ldh_accept_call(&env, &ev, LINKD__V1__CALL_CATEGORY__CALL_CATEGORY_FIRE, fire);
    snprintf(script, sizeof script,
             "return document.querySelector('tr.incident[data-id=\"%s\"]') ? 'yes' : 'no';", fire);
    ldh_check(&env, wait_true(script, WAIT_MS), "the critical fire call never appeared");
    ldh_check(&env, wait_true("return document.querySelector('#open-count').textContent"
                              ".startsWith('6 ') ? 'yes' : 'no';", WAIT_MS),
              "the page does not count all six open incidents");
    ldh_check(&env, exec("return String(document.querySelectorAll('tr.incident').length);", rows,
                         sizeof rows), "no answer from the page");
    cr_expect(atoi(rows) >= 1 && atoi(rows) <= 4, "rows kept: %s, at most twice --board-max", rows);
}
