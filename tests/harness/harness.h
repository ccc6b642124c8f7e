/* harness.h: run the real linkd against a private redis-server, over real NNG sockets.
 *
 * Integration tests start their own processes and talk to them as users do:
 *
 *     static ldh_env env;
 *     static void setup(void) { ldh_env_start_or_fail(&env, NULL); }
 *     static void teardown(void) { ldh_env_stop(&env); }
 *     Test(intake, fire_call, .init = setup, .fini = teardown) {
 *         ldh_event ev;
 *         ldh_event_call(&ev, LINKD__V1__CALL_CATEGORY__CALL_CATEGORY_FIRE);
 *         Linkd__V1__IngestReply *rep = ldh_ingest1(&env.linkd, &ev);
 *         ldh_check(&env, rep && rep->n_results == 1, "no reply");
 *         ...
 *     }
 *
 * Rules of the house, which every helper keeps:
 *   - everything is bounded: each wait has a timeout (LDH_*_MS below) and each
 *     loop a count; nothing asserts how long something took;
 *   - every process is started with fork/exec, recorded by PID and stopped by
 *     that PID (SIGTERM, then SIGKILL after a bound); children also get
 *     PR_SET_PDEATHSIG so a test killed by its runner cannot leave them behind;
 *   - every process runs in its own mkdtemp directory under /tmp, removed when
 *     it is stopped; only 127.0.0.1 is used, on ports the kernel picked.
 *
 * Helpers return 0 or a negative LD_E* code (core/err.h) unless they say
 * otherwise, and never assert: tests decide what is a failure. Not
 * thread-safe, except the NNG client calls, which open their own sockets. */
#ifndef LD_TESTS_HARNESS_H
#define LD_TESTS_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <criterion/criterion.h>
#include <hiredis/hiredis.h>
#include <nng/nng.h>

#include "linkd/v1/linkd.pb-c.h"
#include "rules/rules.h"

/* Bounds. Generous: CI is a loaded 2-core machine running ASan builds. */
#define LDH_START_MS 30000   /* until redis answers PING / linkd logs READY */
#define LDH_STOP_MS 15000    /* after SIGTERM, before SIGKILL */
#define LDH_CLOSE_MS 10000   /* for nng_close, which NNG 1.5.2 can hang in */
#define LDH_REPLY_MS 15000   /* receive timeout of a request/reply exchange */
#define LDH_RETRIES 5        /* starts retried when a port was taken meanwhile */

#define LDH_DEFAULT_RULES LD_SOURCE_DIR "/rules"
#define LDH_LINKD_BIN LD_BINARY_DIR "/linkd"

/* ---- time, files, processes --------------------------------------------- */

uint64_t ldh_mono_ms(void);
uint64_t ldh_wall_ms(void);
void ldh_sleep_ms(unsigned ms);

/* ldh_free_ports fills ports[0..n-1] with distinct loopback TCP ports that were
 * free a moment ago (bound, read, closed), picked at random below the kernel's
 * ephemeral range so that no outgoing connection takes one meanwhile. Another
 * test may still take one before we use it: callers retry the start, on fresh
 * ports, when the server cannot bind. */
int ldh_free_ports(int *ports, int n);

/* ldh_mkdtemp creates /tmp/linkd-<tag>-XXXXXX and writes its path to <out>. */
int ldh_mkdtemp(char *out, size_t len, const char *tag);
/* ldh_rmtree removes <dir> and everything under it (no symlinks followed). */
void ldh_rmtree(const char *dir);

/* ldh_read_file returns the whole file, NUL-terminated, in malloc'd memory
 * (the caller frees it), with its length in *len if <len> is not NULL. */
char *ldh_read_file(const char *path, size_t *len);
int ldh_write_file(const char *path, const void *buf, size_t len);

/* ldh_spawn forks and execs argv[0] (a path, or a name looked up in PATH)
 * with stdin from <in_path> (NULL: /dev/null) and stdout and stderr
 * appended to <out_path> and <err_path> (NULL: /dev/null; the same path for
 * both shares one file). Returns the PID, or a negative LD_E* code. */
pid_t ldh_spawn(char *const argv[], const char *in_path, const char *out_path,
                const char *err_path);

/* ldh_wait_pid waits up to <timeout_ms> for <pid> to exit. Returns 0 with its
 * exit code in *code (128 + signal number if a signal ended it), or
 * LD_ETIMEDOUT if it is still running. */
int ldh_wait_pid(pid_t pid, int timeout_ms, int *code);

/* ldh_stop_pid sends SIGTERM, waits up to <timeout_ms>, then SIGKILLs and
 * reaps. Returns the exit code as ldh_wait_pid does; -1 if it had to be
 * killed. */
int ldh_stop_pid(pid_t pid, int timeout_ms);

/* ldh_run runs a command to completion (bounded by <timeout_ms>, then
 * killed) and returns its exit code (128 + signal if signalled), or a
 * negative LD_E* code if it could not be started or did not finish. */
int ldh_run(char *const argv[], const char *in_path, const char *out_path,
            const char *err_path, int timeout_ms);

/* ldh_tail writes the last <lines> lines of a text file to stderr, headed by
 * <title>. For diagnosing failures in CI logs. */
void ldh_tail(const char *title, const char *path, int lines);

/* ---- redis-server --------------------------------------------------------- */

typedef struct ldh_redis {
    pid_t pid;             /* 0 when not running */
    int port;
    char dir[96];          /* its mkdtemp dir: AOF and redis.log */
    char url[64];          /* redis://127.0.0.1:<port>/0, for linkd --redis */
    redisContext *ctx;     /* blocking client of ldh_redis_cmd, opened lazily */
} ldh_redis;

/* ldh_redis_start starts a private `redis-server --appendonly yes --save ""`
 * on a free loopback port and returns once it answers PING. */
int ldh_redis_start(ldh_redis *r);
/* ldh_redis_start_acl is ldh_redis_start with --aclfile <aclfile>; the
 * harness's own client connects as "default", so the file must keep it on. */
int ldh_redis_start_acl(ldh_redis *r, const char *aclfile);
/* ldh_redis_stop stops it by PID, removes its directory and returns its exit
 * code (-1 if it had to be killed). Safe on a zeroed or half-started one. */
int ldh_redis_stop(ldh_redis *r);

/* ldh_redis_halt stops it by PID (SIGTERM: it writes its append-only file
 * and exits) and keeps its directory; ldh_redis_kill is a crash (SIGKILL);
 * ldh_redis_respawn starts it again on the same port and directory (it
 * loads its append-only file) and waits for PONG. */
int ldh_redis_halt(ldh_redis *r);
void ldh_redis_kill(ldh_redis *r);
int ldh_redis_respawn(ldh_redis *r);

/* ldh_redis_cmd runs one command (hiredis format: "%s", "%b") and returns
 * the reply, which the caller frees with freeReplyObject(), or NULL if the
 * server did not answer (the connection is then reopened by the next call). */
redisReply *ldh_redis_cmd(ldh_redis *r, const char *fmt, ...);
/* ldh_redis_seen reads what linkd keeps of event (<src>, <eid>) for dedup:
 * its field in this 7-day window's seen hash or the last's (the stream or
 * spool id it was accepted under). A reply to free, nil if it has none. */
redisReply *ldh_redis_seen(ldh_redis *r, const char *src, const char *eid);
/* ldh_redis_int returns an integer reply, or LLONG_MIN for anything else. */
long long ldh_redis_int(ldh_redis *r, const char *fmt, ...);

/* ---- linkd ------------------------------------------------------------------ */

typedef struct ldh_linkd_opts {
    const char *rules;        /* NULL: the default rules (LDH_DEFAULT_RULES) */
    double time_scale;        /* 0: no --time-scale */
    long max_message;         /* 0: no --max-message */
    const char *log_level;    /* NULL: no --log-level */
    const char *ingest_scheme; /* NULL: "tcp"; "tls+tcp" with --tls-cert/--tls-key in extra */
    bool http;                /* serve HTTP on a port the harness picks (ldh_linkd.http) */
    const char *extra[16];    /* more arguments, NULL-terminated */
} ldh_linkd_opts;

typedef struct ldh_linkd {
    pid_t pid;                /* 0 when not running */
    int exit_code;            /* after ldh_linkd_stop: as ldh_wait_pid; -1 if killed */
    char dir[96];             /* its mkdtemp dir */
    char log[128];            /* dir/linkd.log: its stderr */
    char ingest[48], terminals[48], feed[48];   /* tcp://127.0.0.1:<port> */
    int http;                 /* its --http port on 127.0.0.1; 0 without opts.http */
} ldh_linkd;

/* ldh_linkd_start runs LDH_LINKD_BIN against <r> with free ports and waits
 * until its log says READY. Every port, the HTTP one included, is picked
 * afresh for each attempt: a port found free can be taken (by any outgoing
 * connection on the machine) before linkd binds it, and linkd then exits 69. On failure the log tail is printed and linkd is
 * not running (its directory is kept for ldh_linkd_free). */
int ldh_linkd_start(ldh_linkd *d, const ldh_redis *r, const ldh_linkd_opts *o);
/* ldh_linkd_respawn starts linkd again after ldh_linkd_kill or _stop, on the
 * same ports, in the same directory, appending to the same log, and waits
 * for a new READY: clients keep their URLs across a crash. */
int ldh_linkd_respawn(ldh_linkd *d, const ldh_redis *r, const ldh_linkd_opts *o);
/* ldh_linkd_stop sends SIGTERM and waits (bounded; SIGKILL after that).
 * Returns the exit code (0 is a clean stop) and keeps the log readable. */
int ldh_linkd_stop(ldh_linkd *d);
/* ldh_linkd_kill is a crash: SIGKILL, reaped. */
void ldh_linkd_kill(ldh_linkd *d);
/* ldh_linkd_free stops it if running and removes its directory. */
void ldh_linkd_free(ldh_linkd *d);

/* ldh_linkd_log returns the log so far (malloc'd; caller frees). */
char *ldh_linkd_log(const ldh_linkd *d);
bool ldh_linkd_log_has(const ldh_linkd *d, const char *needle);
/* ldh_linkd_log_wait waits up to <timeout_ms> for <needle> in the log. */
bool ldh_linkd_log_wait(const ldh_linkd *d, const char *needle, int timeout_ms);
void ldh_linkd_log_tail(const ldh_linkd *d, int lines);

/* ---- a whole environment: redis + linkd -------------------------------------- */

typedef struct ldh_env {
    ldh_redis redis;
    ldh_linkd linkd;
    ldh_linkd_opts opts;
} ldh_env;

/* ldh_env_start starts redis then linkd with <o> (NULL: defaults). */
int ldh_env_start(ldh_env *e, const ldh_linkd_opts *o);
/* ldh_env_restart stops linkd (SIGTERM, or SIGKILL if <crash>) and starts a
 * new one with the same options against the same redis. Returns the start's
 * result; the old exit code is in *old_exit if not NULL. */
int ldh_env_restart(ldh_env *e, bool crash, int *old_exit);
/* ldh_env_stop stops linkd then redis and removes their directories. If
 * linkd did not exit 0 (a crash, a sanitizer report, a hang) its log tail is
 * printed. Returns linkd's exit code: of this stop, or of the test's own
 * ldh_linkd_stop if it already stopped it (-1 if it never ran or was killed). */
int ldh_env_stop(ldh_env *e);
/* ldh_env_dump prints the tails of both logs, for a failed assertion. */
void ldh_env_dump(const ldh_env *e, const char *file, int line, const char *what);

/* ldh_check(env, cond, fmt, ...) is cr_assert() that first prints where it
 * failed and the tails of linkd's and redis's logs, so a CI failure can be
 * diagnosed from the test output alone. <cond> is evaluated once. */
#define ldh_check(env, cond, ...)                                            \
    do {                                                                     \
        if (!(cond)) {                                                       \
            ldh_env_dump((env), __FILE__, __LINE__, #cond);                  \
            cr_assert_fail(__VA_ARGS__);                                     \
        }                                                                    \
    } while (0)

/* ldh_accept_call builds a 110 call of <category> into *ev, sends it, and
 * fails the test unless it is ACCEPTED; the incident id goes to <inc>, a
 * char array. */
#define ldh_accept_call(env, ev, category, inc)                              \
    do {                                                                     \
        ldh_event_call((ev), (category));                                    \
        ldh_check((env), ldh_ingest_accept(&(env)->linkd, (ev), (inc),       \
                                           sizeof(inc)) ==                   \
                             LINKD__V1__RESULT__RESULT_ACCEPTED,             \
                  "not accepted");                                           \
    } while (0)

/* ldh_env_start_or_fail is ldh_env_start for a fixture: a start failure
 * fails the test (with the logs printed). */
#define ldh_env_start_or_fail(env, opts)                                     \
    do {                                                                     \
        int ldh__rv = ldh_env_start((env), (opts));                          \
        ldh_check((env), ldh__rv == 0, "environment did not start: %d", ldh__rv); \
    } while (0)

/* ---- events ------------------------------------------------------------------- */

/* An event under construction. The envelope points into the struct itself:
 * do not copy one, build it where it stays. Each ldh_event_* fills a valid
 * event with a fresh event id, source "it-source", status ACTUAL,
 * occurred_at_ms = now and a location of its own (each event gets a distinct
 * district, grid and coordinates, so correlation never merges two events a
 * test meant as separate). Change any field afterwards. */
typedef struct ldh_event {
    Linkd__V1__Envelope env;
    Linkd__V1__Call110 call;
    Linkd__V1__SensorAlarm sensor;
    Linkd__V1__Petition petition;
    Linkd__V1__Location loc;
    char event_id[64], source_id[64], body_id[64];
    char address[96], district[16], grid[32], text[128];
} ldh_event;

void ldh_event_call(ldh_event *e, Linkd__V1__CallCategory category);
void ldh_event_sensor(ldh_event *e, Linkd__V1__SensorKind kind);
void ldh_event_petition(ldh_event *e, Linkd__V1__PetitionIssue issue, unsigned petitioners);
/* ldh_unique_id writes "<prefix>-<pid>-<n>-<time>" into <buf>. */
void ldh_unique_id(char *buf, size_t len, const char *prefix);

/* ---- NNG clients ---------------------------------------------------------------- */

/* ldh_nng_close closes <sock> with ld_nng_close, going on after
 * LDH_CLOSE_MS if NNG 1.5.2 hangs in it, saying so with <what> (harness.c).
 * Tests close every NNG socket they open with it. */
void ldh_nng_close(nng_socket sock, const char *what);

/* ldh_reqrep sends <msg> on a fresh REQ socket dialed to <url> and waits up
 * to <timeout_ms> for the reply, which the caller frees with nng_free(*rep,
 * *rep_len). The REQ never resends. LD_ETIMEDOUT if no reply came. */
int ldh_reqrep(const char *url, const void *msg, size_t len, void **rep, size_t *rep_len,
               int timeout_ms);

/* ldh_ingest sends one IngestRequest holding <ev>[0..n-1] and decodes the
 * IngestReply into *out (free: linkd__v1__ingest_reply__free_unpacked(*out,
 * NULL)). LD_EDECODE if the reply does not decode. */
int ldh_ingest(const ldh_linkd *d, ldh_event *const *ev, size_t n,
               Linkd__V1__IngestReply **out);
/* ldh_ingest_raw sends arbitrary bytes as the request. */
int ldh_ingest_raw(const ldh_linkd *d, const void *buf, size_t len,
                   Linkd__V1__IngestReply **out);
/* ldh_ingest1 sends one event; the reply or NULL. */
Linkd__V1__IngestReply *ldh_ingest1(const ldh_linkd *d, ldh_event *ev);
/* ldh_ingest_accept sends one event and copies the incident id into <inc>
 * if it was ACCEPTED or DUPLICATE. Returns the Result value, or a negative LD_E* code. */
int ldh_ingest_accept(const ldh_linkd *d, ldh_event *ev, char *inc, size_t len);

/* One terminal poll. */
typedef struct ldh_poll {
    const char *terminal;                 /* required */
    const char *department;               /* optional */
    Linkd__V1__TaskUpdate **updates;      /* optional */
    size_t n_updates;
    char **received;                      /* optional: receipts */
    size_t n_received;
    unsigned wait_ms;                     /* long-poll; 0 answers at once */
    unsigned max_tasks;                   /* 0: not sent */
} ldh_poll;

/* ldh_term_poll sends a PollRequest and decodes the PollReply (free:
 * linkd__v1__poll_reply__free_unpacked(*out, NULL)). */
int ldh_term_poll(const ldh_linkd *d, const ldh_poll *p, Linkd__V1__PollReply **out);

/* Which task a terminal waits for; NULL fields match anything. */
typedef struct ldh_task_match {
    const char *task_id;
    const char *incident_id;
    const char *department;
} ldh_task_match;

bool ldh_task_matches(const Linkd__V1__Task *t, const ldh_task_match *m);

/* ldh_term_await polls as <terminal>, as a terminal does (long polls of at
 * most 2 s each), until it is given a task that matches <m>, or <timeout_ms>
 * passes. With <receipt> it receipts every task it is given, as a real
 * terminal does (the receipt goes with the next poll; for the task found,
 * in a poll of its own before returning); without, it only looks. Returns a
 * copy of the task (free: linkd__v1__task__free_unpacked(t, NULL)) or NULL. */
Linkd__V1__Task *ldh_term_await(const ldh_linkd *d, const char *terminal,
                                const ldh_task_match *m, bool receipt, int timeout_ms);

/* ldh_term_update sends one TaskUpdate as <terminal> (wait_ms 0) and returns
 * its UpdateResult's Result, or a negative LD_E* code; with <reason> non-NULL
 * the result's reason is copied there. */
int ldh_term_update(const ldh_linkd *d, const char *terminal, const char *task_id,
                    Linkd__V1__UpdateKind kind, const char *text, char *reason,
                    size_t reason_len);

/* ldh_task_dup deep-copies a task (pack + unpack). */
Linkd__V1__Task *ldh_task_dup(const Linkd__V1__Task *t);

/* ldh_acknowledge_at waits (up to 30 s) as <terminal> for task <task_id>,
 * fails the test unless it comes at <priority>, and acknowledges it. */
static inline void ldh_acknowledge_at(ldh_env *env, const char *terminal, const char *task_id,
                                      Linkd__V1__Priority priority)
{
    ldh_task_match m = {.task_id = task_id};
    Linkd__V1__Task *t = ldh_term_await(&env->linkd, terminal, &m, true, 30000);
    ldh_check(env, t && t->priority == priority, "%s did not get %s at priority %d (got %d)",
              terminal, task_id, (int)priority, t ? (int)t->priority : -1);
    linkd__v1__task__free_unpacked(t, NULL);
    ldh_check(env, ldh_term_update(&env->linkd, terminal, task_id,
                                   LINKD__V1__UPDATE_KIND__UPDATE_KIND_ACKNOWLEDGED, NULL, NULL,
                                   0) == LINKD__V1__RESULT__RESULT_ACCEPTED,
              "the acknowledgement of %s was not accepted", task_id);
}

/* ldh_expect_priority_raised waits (up to 30 s) as <terminal> for task
 * <task_id>, acknowledged before, sent again because its incident became
 * <priority>, and fails the test unless it comes so: priority_raised, the
 * new priority, still acknowledged. */
static inline void ldh_expect_priority_raised(ldh_env *env, const char *terminal,
                                              const char *task_id, Linkd__V1__Priority priority)
{
    ldh_task_match m = {.task_id = task_id};
    Linkd__V1__Task *t = ldh_term_await(&env->linkd, terminal, &m, true, 30000);
    ldh_check(env, t, "%s was not told that %s became more urgent", terminal, task_id);
    ldh_check(env, t->priority_raised && t->redelivery && t->priority == priority &&
                       t->state == LINKD__V1__TASK_STATE__TASK_STATE_ACKNOWLEDGED,
              "%s sent again with priority %d, raised %d, redelivery %d, state %d", task_id,
              (int)t->priority, t->priority_raised, t->redelivery, (int)t->state);
    linkd__v1__task__free_unpacked(t, NULL);
}

/* A feed subscriber: collects every FeedEvent it receives, in order. */
typedef struct ldh_feed {
    nng_socket sock;
    bool open;
    Linkd__V1__FeedEvent **ev;   /* decoded events, owned */
    size_t n, cap;
    size_t undecodable;          /* messages that were not FeedEvents */
    int connected;               /* set by the pipe callback (another thread) */
} ldh_feed;

#define LDH_FEED_MAX 100000      /* events kept; more are dropped and counted */

/* ldh_feed_open subscribes to everything on linkd's feed and waits until the
 * connection is up. */
int ldh_feed_open(ldh_feed *f, const ldh_linkd *d);
void ldh_feed_close(ldh_feed *f);

typedef bool (*ldh_feed_pred)(const Linkd__V1__FeedEvent *ev, void *arg);

/* ldh_feed_wait returns the first event, among those collected so far and
 * those that arrive within <timeout_ms>, for which <pred> holds; NULL if
 * none did. The event belongs to the feed. */
const Linkd__V1__FeedEvent *ldh_feed_wait(ldh_feed *f, int timeout_ms, ldh_feed_pred pred,
                                          void *arg);

/* What ldh_feed_wait_for matches; zero/NULL fields match anything. */
typedef struct ldh_feed_match {
    int kind;                    /* Linkd__V1__FeedKind */
    const char *incident_id;
    const char *task_id;
    const char *department;      /* of the task */
    int leg;                     /* Linkd__V1__Leg, with TASK_ESCALATED */
    bool check_from_level;       /* then from_level must equal: */
    unsigned from_level;
} ldh_feed_match;

bool ldh_feed_matches(const Linkd__V1__FeedEvent *ev, const ldh_feed_match *m);
const Linkd__V1__FeedEvent *ldh_feed_wait_for(ldh_feed *f, int timeout_ms,
                                              const ldh_feed_match *m);
/* ldh_feed_collect receives for <ms> milliseconds (bounded), keeping all. */
void ldh_feed_collect(ldh_feed *f, int ms);
/* ldh_feed_count counts collected events that match. */
size_t ldh_feed_count(const ldh_feed *f, const ldh_feed_match *m);
/* ldh_feed_index returns the position of <ev> in f->ev, or -1. */
long ldh_feed_index(const ldh_feed *f, const Linkd__V1__FeedEvent *ev);
/* ldh_feed_print writes every collected event, one line each, to stderr. */
void ldh_feed_print(const ldh_feed *f);

/* ---- what the rules say ---------------------------------------------------------- */

/* ldh_rules_load loads a rule set with the real loader; NULL (diagnostics
 * printed) if it does not load. Free with ld_rules_free(). */
ld_rules *ldh_rules_load(const char *dir);

/* One department a matched event must be dispatched to, with its budgets. */
typedef struct ldh_dispatch {
    const ld_department *dept;
    uint64_t leg_ms[LD_LEG_COUNT];
    const ld_route *route;       /* the first route that named the department */
} ldh_dispatch;

/* ldh_rules_plan lists the distinct departments the routes matched by
 * <in> dispatch to, in route order (a department named by several matched
 * routes appears once, with the first route's budgets). Returns how many. */
size_t ldh_rules_plan(const ld_rules *r, const ld_match_input *in, ldh_dispatch *out,
                      size_t max);
/* ldh_rules_terminal_id returns the terminal id of <dept>'s level <level>,
 * continuing into command's levels past the department's last one, as
 * escalation does; NULL past the top. */
const char *ldh_rules_terminal_id(const ld_rules *r, const ld_department *dept, int level);
/* ldh_rules_chain_len is how many levels a task of <dept> can climb through:
 * the department's own plus command's (command's own tasks: just its own). */
int ldh_rules_chain_len(const ld_rules *r, const ld_department *dept);
/* ldh_rules_level returns that level (or NULL), as ldh_rules_terminal_id. */
const ld_level *ldh_rules_level(const ld_rules *r, const ld_department *dept, int level);

/* ldh_expect_task_counts checks the engine's running task counts
 * (ld_engine.tasks_by, the linkd_tasks gauge) against a count of every open
 * incident's tasks, and aborts (a crash Criterion reports, also from a
 * test's .fini) if they differ; the engine tests call it when each ends. */
struct ld_engine;
void ldh_expect_task_counts(const struct ld_engine *e);

#endif
