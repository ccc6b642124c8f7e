/* test_duty.c: who gets a task, over real NNG with real Redis: a duty roster
 * across a shift change (the roster reloaded with SIGHUP so that the change
 * falls a few domain minutes ahead), a terminal that stops polling (its task
 * goes to the stand-in at once, and so do new ones), and drills (exercise
 * events reach only the drill terminal). */
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "wire/wire.h"

#define WAIT_MS 20000

static ldh_env env;
static ldh_feed feed;
static char dir[128];

static const char *const departments =
    "departments:\n"
    "  police:\n"
    "    terminals: [police-a, police-b, police-standby, police-deputy, police-drill]\n"
    "    drill_terminal: police-drill\n"
    "    escalation:\n"
    "      - { level: duty_officer, terminal: police-a, wait: 1h }\n"
    "      - { level: deputy, terminal: police-deputy, wait: 1h }\n"
    "  command:\n"
    "    terminals: [command-supervisor]\n"
    "    escalation:\n"
    "      - { level: supervisor, terminal: command-supervisor, wait: 1h }\n"
    "routes:\n"
    "  - name: crime\n"
    "    match: { kind: call, category: crime }\n"
    "    dispatch:\n"
    "      - { department: police, acknowledge: 1h, arrive: 2h, resolve: 3h }\n"
    "  - name: others\n"
    "    dispatch:\n"
    "      - { department: command, acknowledge: 1h, resolve: 3h }\n";

static void put_roster(const char *shifts)
{
    char path[192], text[1024];
    snprintf(path, sizeof path, "%s/rosters.yaml", dir);
    snprintf(text, sizeof text, "rosters:\n  police:\n    shifts:\n%s"
             "    stand_in: police-standby\n", shifts);
    cr_assert_eq(ldh_write_file(path, text, strlen(text)), 0);
}

static void start(double scale, const char *offline_after)
{
    char path[192];
    cr_assert_eq(ldh_mkdtemp(dir, sizeof dir, "duty"), 0);
    snprintf(path, sizeof path, "%s/rules.yaml", dir);
    cr_assert_eq(ldh_write_file(path, departments, strlen(departments)), 0);
    put_roster("      - { time: \"00:00-24:00\", terminal: police-a }\n");
    ldh_linkd_opts o = {.rules = dir, .time_scale = scale};
    if (offline_after) o.extra[0] = "--offline-after", o.extra[1] = offline_after;
    ldh_env_start_or_fail(&env, &o);
    ldh_check(&env, ldh_feed_open(&feed, &env.linkd) == 0, "feed");
}

static void teardown(void)
{
    ldh_feed_close(&feed);
    int code = ldh_env_stop(&env);
    ldh_rmtree(dir);
    cr_expect_eq(code, 0, "linkd must exit 0 on SIGTERM, exited %d", code);
}

/* Sends a crime call with <status>; returns the terminal the police task
 * was dispatched to (malloc'd), from the feed. */
static char *dispatched_to(int status, char *inc, size_t len)
{
    ldh_event ev;
    ldh_event_call(&ev, LINKD__V1__CALL_CATEGORY__CALL_CATEGORY_CRIME);
    ev.env.status = (Linkd__V1__Status)status;
    ldh_check(&env, ldh_ingest_accept(&env.linkd, &ev, inc, len) ==
                        LINKD__V1__RESULT__RESULT_ACCEPTED, "not accepted");
    ldh_feed_match m = {.kind = LINKD__V1__FEED_KIND__FEED_KIND_TASK_DISPATCHED,
                        .incident_id = inc, .department = "police"};
    const Linkd__V1__FeedEvent *fe = ldh_feed_wait_for(&feed, WAIT_MS, &m);
    ldh_check(&env, fe && fe->task && fe->task->terminal, "no TASK_DISPATCHED for %s", inc);
    return strdup(fe->task->terminal);
}

/* linkd's domain clock, from a poll's server_time_ms. */
static int64_t server_now(void)
{
    ldh_poll p = {.terminal = "command-supervisor"};
    Linkd__V1__PollReply *rep = NULL;
    ldh_check(&env, ldh_term_poll(&env.linkd, &p, &rep) == 0 && rep, "no poll reply");
    int64_t now = rep->server_time_ms;
    linkd__v1__poll_reply__free_unpacked(rep, NULL);
    return now;
}

static int local_minute(int64_t ms) { return (int)((ms / 60000 + 8 * 60) % (24 * 60)); }

Test(duty, tasks_follow_the_roster_across_a_shift_change, .fini = teardown, .timeout = 180)
{
    start(20, NULL); /* a domain minute is 3 s */
    /* A shift change 5 domain minutes from now: police-a until then,
     * police-b after. */
    int m = local_minute(server_now());
    int change = (m + 5) % (24 * 60), from = (m + 24 * 60 - 60) % (24 * 60);
    char shifts[512];
    snprintf(shifts, sizeof shifts,
             "      - { name: early, time: \"%02d:%02d-%02d:%02d\", terminal: police-a }\n"
             "      - { name: late, time: \"%02d:%02d-%02d:%02d\", terminal: police-b }\n",
             from / 60, from % 60, change / 60, change % 60, change / 60, change % 60,
             from / 60, from % 60);
    put_roster(shifts);
    ldh_check(&env, kill(env.linkd.pid, SIGHUP) == 0, "SIGHUP");
    ldh_check(&env, ldh_linkd_log_wait(&env.linkd, "RELOADED", WAIT_MS), "no reload");

    char inc[64];
    char *t = dispatched_to(LINKD__V1__STATUS__STATUS_ACTUAL, inc, sizeof inc);
    ldh_check(&env, strcmp(t, "police-a") == 0, "before the change: police-a, got %s", t);
    free(t);

    /* Wait (bounded) until the domain clock is past the change. */
    uint64_t end = ldh_mono_ms() + 60000;
    while (local_minute(server_now()) != (change + 1) % (24 * 60) && ldh_mono_ms() < end)
        ldh_sleep_ms(200);
    ldh_check(&env, local_minute(server_now()) == (change + 1) % (24 * 60),
              "the domain clock never reached the shift change");
    t = dispatched_to(LINKD__V1__STATUS__STATUS_ACTUAL, inc, sizeof inc);
    ldh_check(&env, strcmp(t, "police-b") == 0, "after the change: police-b, got %s", t);
    free(t);
    Linkd__V1__Task *task = ldh_term_await(&env.linkd, "police-b",
                                           &(ldh_task_match){.incident_id = inc}, true, WAIT_MS);
    ldh_check(&env, task, "police-b never got its task");
    linkd__v1__task__free_unpacked(task, NULL);
}

Test(duty, a_terminal_that_stops_polling_loses_its_tasks_to_the_stand_in, .fini = teardown,
     .timeout = 180)
{
    start(0, "1");
    /* police-a polls once, so it is online, then falls silent. */
    ldh_poll p = {.terminal = "police-a"};
    Linkd__V1__PollReply *rep = NULL;
    ldh_check(&env, ldh_term_poll(&env.linkd, &p, &rep) == 0, "poll");
    linkd__v1__poll_reply__free_unpacked(rep, NULL);
    char inc[64];
    char *t = dispatched_to(LINKD__V1__STATUS__STATUS_ACTUAL, inc, sizeof inc);
    ldh_check(&env, strcmp(t, "police-a") == 0, "online: police-a, got %s", t);
    free(t);

    ldh_feed_match off = {.kind = LINKD__V1__FEED_KIND__FEED_KIND_TERMINAL_OFFLINE};
    ldh_check(&env, ldh_feed_wait_for(&feed, WAIT_MS, &off), "police-a never went offline");
    ldh_feed_match moved = {.kind = LINKD__V1__FEED_KIND__FEED_KIND_TASK_REASSIGNED,
                            .incident_id = inc};
    const Linkd__V1__FeedEvent *fe = ldh_feed_wait_for(&feed, WAIT_MS, &moved);
    ldh_check(&env, fe && fe->task && strcmp(fe->task->terminal, "police-standby") == 0,
              "the task did not move to the stand-in");
    Linkd__V1__Task *task = ldh_term_await(&env.linkd, "police-standby",
                                           &(ldh_task_match){.incident_id = inc}, true, WAIT_MS);
    ldh_check(&env, task && task->level == 0, "the stand-in never got it at level 0");
    linkd__v1__task__free_unpacked(task, NULL);

    /* New tasks skip the silent terminal. */
    t = dispatched_to(LINKD__V1__STATUS__STATUS_ACTUAL, inc, sizeof inc);
    ldh_check(&env, strcmp(t, "police-standby") == 0, "offline: the stand-in, got %s", t);
    free(t);
}

Test(duty, drills_reach_only_the_drill_terminal, .fini = teardown, .timeout = 180)
{
    start(0, NULL);
    char inc[64];
    char *t = dispatched_to(LINKD__V1__STATUS__STATUS_EXERCISE, inc, sizeof inc);
    ldh_check(&env, strcmp(t, "police-drill") == 0, "an exercise: police-drill, got %s", t);
    free(t);
    Linkd__V1__Task *task = ldh_term_await(&env.linkd, "police-drill",
                                           &(ldh_task_match){.incident_id = inc}, true, WAIT_MS);
    ldh_check(&env, task, "police-drill never got the exercise");
    linkd__v1__task__free_unpacked(task, NULL);
    t = dispatched_to(LINKD__V1__STATUS__STATUS_ACTUAL, inc, sizeof inc);
    ldh_check(&env, strcmp(t, "police-a") == 0, "a real call: police-a, got %s", t);
    free(t);
}
