/* harness.c: processes, Redis, NNG clients and rule expectations for tests.
 * See harness.h for the contract every helper keeps. */
#define _XOPEN_SOURCE 700 /* nftw() */
#include "harness.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>

#include <nng/protocol/pubsub0/sub.h>
#include <nng/protocol/reqrep0/req.h>

#include "core/clock.h"
#include "core/diag.h"
#include "core/err.h"
#include "core/rep.h"
#include "engine/actions.h"
#include "engine/engine.h"
#include "wire/wire.h"

/* ---- time, files, processes ------------------------------------------------ */

uint64_t ldh_mono_ms(void) { return ld_mono_ms(); }

uint64_t ldh_wall_ms(void) { return ld_wall_ms(); }

void ldh_sleep_ms(unsigned ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* The kernel gives outgoing connections their local port from
 * ip_local_port_range (32768-60999 by default), and a port picked there can be
 * taken by any client on the machine, for as long as its connection lives,
 * between the pick and the server's bind. Ports below that range are handed
 * out only to whoever binds them by number: we pick there. */
static int ephemeral_low(void)
{
    static int lo;
    int hi;
    if (lo) return lo;
    FILE *f = fopen("/proc/sys/net/ipv4/ip_local_port_range", "r");
    if (!f || fscanf(f, "%d %d", &lo, &hi) != 2) lo = 32768;
    if (f) fclose(f);
    return lo;
}

/* bind_loopback binds a new socket to 127.0.0.1:<port> (0: any) and returns it
 * with the port it got, or -1. */
static int bind_loopback(int port, int *got)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    socklen_t sl = sizeof sa;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 ||
        getsockname(fd, (struct sockaddr *)&sa, &sl) != 0) {
        close(fd);
        return -1;
    }
    *got = ntohs(sa.sin_port);
    return fd;
}

/* pick_port binds a random port from [10000, the ephemeral range) and
 * falls back to one the kernel chooses. */
static int pick_port(int *got)
{
    static uint64_t x;
    int lo = ephemeral_low();
    if (x == 0) x = ldh_wall_ms() * 0x9e3779b97f4a7c15ULL ^ (uint64_t)getpid() << 32 ^ 1;
    for (int i = 0; lo > 10000 && i < 64; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;   /* xorshift64 */
        int fd = bind_loopback(10000 + (int)(x % (uint64_t)(lo - 10000)), got);
        if (fd >= 0) return fd;
    }
    return bind_loopback(0, got);
}

int ldh_free_ports(int *ports, int n)
{
    int fds[8], rv = 0, i;
    if (n < 1 || n > 8) return LD_EINVAL;
    for (i = 0; i < n; i++) fds[i] = -1;
    /* Keep every socket bound until all are picked, so the ports are distinct. */
    for (i = 0; i < n; i++) {
        if ((fds[i] = pick_port(&ports[i])) < 0) {
            rv = LD_EIO;
            break;
        }
    }
    for (i = 0; i < n; i++)
        if (fds[i] >= 0) close(fds[i]);
    return rv;
}

int ldh_mkdtemp(char *out, size_t len, const char *tag)
{
    int w = snprintf(out, len, "/tmp/linkd-%s-XXXXXX", tag);
    if (w < 0 || (size_t)w >= len) return LD_EINVAL;
    return mkdtemp(out) ? 0 : LD_EIO;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    remove(path);
    return 0;
}

void ldh_rmtree(const char *dir)
{
    /* Only ever our own mkdtemp directories. */
    if (!dir || strncmp(dir, "/tmp/linkd-", 11) != 0) return;
    nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

char *ldh_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        size_t got = fread(buf + n, 1, cap - n - 1, f);
        n += got;
        if (got == 0) break;
        if (n + 1 == cap) {
            char *nb = realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
            cap *= 2;
        }
    }
    fclose(f);
    if (!buf) return NULL;
    buf[n] = '\0';
    if (len) *len = n;
    return buf;
}

int ldh_write_file(const char *path, const void *buf, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (!f) return LD_EIO;
    size_t w = fwrite(buf, 1, len, f);
    int rv = (fclose(f) == 0 && w == len) ? 0 : LD_EIO;
    return rv;
}

static int redirect(int fd, const char *path, int flags)
{
    int f = open(path ? path : "/dev/null", flags, 0644);
    if (f < 0) return -1;
    if (f != fd) {
        if (dup2(f, fd) < 0) return -1;
        close(f);
    }
    return 0;
}

pid_t ldh_spawn(char *const argv[], const char *in_path, const char *out_path,
                const char *err_path)
{
    pid_t parent = getpid();
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) return LD_EIO;
    if (pid > 0) return pid;

    /* Child. Die with the test process even if it is killed outright. */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(127);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    signal(SIGPIPE, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    signal(SIGINT, SIG_DFL);
    if (redirect(0, in_path, O_RDONLY) != 0) _exit(127);
    if (redirect(1, out_path, O_WRONLY | O_CREAT | O_APPEND) != 0) _exit(127);
    if (err_path && out_path && strcmp(err_path, out_path) == 0) {
        if (dup2(1, 2) < 0) _exit(127);
    } else if (redirect(2, err_path, O_WRONLY | O_CREAT | O_APPEND) != 0) {
        _exit(127);
    }
    /* The runner's own descriptors are none of the child's business. */
#ifdef SYS_close_range
    if (syscall(SYS_close_range, 3u, ~0u, 0) != 0)
#endif
        for (int fd = 3; fd < 1024; fd++) close(fd);
    execvp(argv[0], argv);
    _exit(127);
}

static int code_of(int st)
{
    if (WIFEXITED(st)) return WEXITSTATUS(st);
    if (WIFSIGNALED(st)) return 128 + WTERMSIG(st);
    return -1;
}

int ldh_wait_pid(pid_t pid, int timeout_ms, int *code)
{
    uint64_t end = ldh_mono_ms() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0);
    unsigned nap = 2;
    for (;;) {
        int st;
        pid_t w = waitpid(pid, &st, WNOHANG);
        if (w == pid) {
            if (code) *code = code_of(st);
            return 0;
        }
        if (w < 0 && errno != EINTR) return LD_ENOENT;
        if (ldh_mono_ms() >= end) return LD_ETIMEDOUT;
        ldh_sleep_ms(nap);
        if (nap < 50) nap *= 2;
    }
}

int ldh_stop_pid(pid_t pid, int timeout_ms)
{
    int code = -1;
    if (pid <= 0) return -1;
    kill(pid, SIGTERM);
    if (ldh_wait_pid(pid, timeout_ms, &code) == 0) return code;
    fprintf(stderr, "harness: pid %d ignored SIGTERM for %d ms: SIGKILL\n", (int)pid,
            timeout_ms);
    kill(pid, SIGKILL);
    ldh_wait_pid(pid, LDH_STOP_MS, NULL);
    return -1;
}

int ldh_run(char *const argv[], const char *in_path, const char *out_path,
            const char *err_path, int timeout_ms)
{
    pid_t pid = ldh_spawn(argv, in_path, out_path, err_path);
    if (pid < 0) return (int)pid;
    int code;
    if (ldh_wait_pid(pid, timeout_ms, &code) == 0) return code;
    fprintf(stderr, "harness: %s did not finish in %d ms: killed\n", argv[0], timeout_ms);
    kill(pid, SIGKILL);
    ldh_wait_pid(pid, LDH_STOP_MS, NULL);
    return LD_ETIMEDOUT;
}

void ldh_tail(const char *title, const char *path, int lines)
{
    size_t len;
    char *s = ldh_read_file(path, &len);
    fprintf(stderr, "----- %s (%s), last %d lines -----\n", title, path, lines);
    if (!s) {
        fprintf(stderr, "(cannot read: %s)\n", strerror(errno));
        return;
    }
    size_t i = len;
    int seen = 0;
    if (i > 0 && s[i - 1] == '\n') i--;
    while (i > 0) {
        if (s[i - 1] == '\n' && ++seen == lines) break;
        i--;
    }
    fputs(s + i, stderr);
    if (len && s[len - 1] != '\n') fputc('\n', stderr);
    fprintf(stderr, "----- end of %s -----\n", title);
    free(s);
}

/* ---- redis-server --------------------------------------------------------------- */

static void redis_close(ldh_redis *r)
{
    if (r->ctx) redisFree(r->ctx);
    r->ctx = NULL;
}

static redisContext *redis_connect(int port, int timeout_ms)
{
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
    if (!c) return NULL;
    if (c->err) {
        redisFree(c);
        return NULL;
    }
    struct timeval ctv = {LDH_REPLY_MS / 1000, 0};
    redisSetTimeout(c, ctv);
    return c;
}

/* One attempt on one port: 0 once it answers PING, LD_EIO if it exited
 * (most likely: someone took the port), LD_ETIMEDOUT. */
static int redis_try(ldh_redis *r, const char *aclfile)
{
    char port[16], logf[160], datadir[128];
    snprintf(port, sizeof port, "%d", r->port);
    snprintf(logf, sizeof logf, "%s/redis.log", r->dir);
    snprintf(datadir, sizeof datadir, "%s", r->dir);
    char *argv[] = {"redis-server", "--port", port, "--bind", "127.0.0.1",
                    "--dir", datadir, "--appendonly", "yes", "--save", "",
                    "--daemonize", "no", "--logfile", logf, NULL, NULL, NULL};
    if (aclfile) argv[15] = "--aclfile", argv[16] = (char *)aclfile;
    pid_t pid = ldh_spawn(argv, NULL, logf, logf);
    if (pid < 0) return (int)pid;
    r->pid = pid;

    uint64_t end = ldh_mono_ms() + LDH_START_MS;
    while (ldh_mono_ms() < end) {
        int code;
        if (ldh_wait_pid(pid, 0, &code) == 0) {
            r->pid = 0;
            return LD_EIO;
        }
        redisContext *c = redis_connect(r->port, 500);
        if (c) {
            redisReply *rep = redisCommand(c, "PING");
            bool ok = rep && rep->type == REDIS_REPLY_STATUS && strcmp(rep->str, "PONG") == 0;
            if (rep) freeReplyObject(rep);
            if (ok) {
                r->ctx = c;
                return 0;
            }
            redisFree(c);
        }
        ldh_sleep_ms(20);
    }
    ldh_stop_pid(pid, LDH_STOP_MS);
    r->pid = 0;
    return LD_ETIMEDOUT;
}

int ldh_redis_start(ldh_redis *r)
{
    return ldh_redis_start_acl(r, NULL);
}

int ldh_redis_start_acl(ldh_redis *r, const char *aclfile)
{
    memset(r, 0, sizeof *r);
    int rv = ldh_mkdtemp(r->dir, sizeof r->dir, "redis");
    if (rv != 0) return rv;
    for (int attempt = 0; attempt < LDH_RETRIES; attempt++) {
        if ((rv = ldh_free_ports(&r->port, 1)) != 0) break;
        rv = redis_try(r, aclfile);
        if (rv == 0) {
            snprintf(r->url, sizeof r->url, "redis://127.0.0.1:%d/0", r->port);
            return 0;
        }
        if (rv != LD_EIO) break;
    }
    char logf[160];
    snprintf(logf, sizeof logf, "%s/redis.log", r->dir);
    ldh_tail("redis-server log", logf, 30);
    fprintf(stderr, "harness: redis-server did not start: %s\n", ld_strerror(rv));
    return rv;
}

int ldh_redis_respawn(ldh_redis *r)
{
    if (r->pid > 0) return LD_ESTATE;
    redis_close(r);
    int rv = LD_EIO;
    for (int attempt = 0; attempt < LDH_RETRIES && rv == LD_EIO; attempt++) {
        if (attempt) ldh_sleep_ms(200);
        rv = redis_try(r, NULL);
    }
    return rv;
}

void ldh_redis_kill(ldh_redis *r)
{
    redis_close(r);
    if (r->pid <= 0) return;
    kill(r->pid, SIGKILL);
    int code;
    ldh_wait_pid(r->pid, LDH_STOP_MS, &code);
    r->pid = 0;
}

int ldh_redis_halt(ldh_redis *r)
{
    redis_close(r);
    int code = -2;
    if (r->pid > 0) code = ldh_stop_pid(r->pid, LDH_STOP_MS);
    r->pid = 0;
    return code;
}

int ldh_redis_stop(ldh_redis *r)
{
    int code = -2;
    redis_close(r);
    if (r->pid > 0) code = ldh_stop_pid(r->pid, LDH_STOP_MS);
    r->pid = 0;
    if (r->dir[0]) ldh_rmtree(r->dir);
    r->dir[0] = '\0';
    return code;
}

static redisReply *redis_vcmd(ldh_redis *r, const char *fmt, va_list ap)
{
    if (!r->ctx && r->port > 0) r->ctx = redis_connect(r->port, 2000);
    if (!r->ctx) return NULL;
    redisReply *rep = redisvCommand(r->ctx, fmt, ap);
    if (!rep) redis_close(r);   /* the context is unusable after an I/O error */
    return rep;
}

redisReply *ldh_redis_cmd(ldh_redis *r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *rep = redis_vcmd(r, fmt, ap);
    va_end(ap);
    return rep;
}

redisReply *ldh_redis_seen(ldh_redis *r, const char *src, const char *eid)
{
    long long w = (long long)time(NULL) / 604800;
    redisReply *rep = ldh_redis_cmd(r, "HGET ld:seen:%lld %s:%s", w, src, eid);
    if (rep && rep->type == REDIS_REPLY_NIL) {
        freeReplyObject(rep);
        rep = ldh_redis_cmd(r, "HGET ld:seen:%lld %s:%s", w - 1, src, eid);
    }
    return rep;
}

long long ldh_redis_int(ldh_redis *r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *rep = redis_vcmd(r, fmt, ap);
    va_end(ap);
    long long v = LLONG_MIN;
    if (rep && rep->type == REDIS_REPLY_INTEGER) v = rep->integer;
    if (rep) freeReplyObject(rep);
    return v;
}

/* ---- linkd ------------------------------------------------------------------------- */

char *ldh_linkd_log(const ldh_linkd *d)
{
    return ldh_read_file(d->log, NULL);
}

bool ldh_linkd_log_has(const ldh_linkd *d, const char *needle)
{
    char *s = ldh_linkd_log(d);
    bool has = s && strstr(s, needle);
    free(s);
    return has;
}

bool ldh_linkd_log_wait(const ldh_linkd *d, const char *needle, int timeout_ms)
{
    uint64_t end = ldh_mono_ms() + (uint64_t)timeout_ms;
    for (;;) {
        if (ldh_linkd_log_has(d, needle)) return true;
        if (ldh_mono_ms() >= end) return false;
        ldh_sleep_ms(20);
    }
}

void ldh_linkd_log_tail(const ldh_linkd *d, int lines)
{
    if (d->log[0]) ldh_tail("linkd log", d->log, lines);
}

/* count_ready counts READY lines in linkd's log so far. */
static int count_ready(const ldh_linkd *d)
{
    char *s = ldh_linkd_log(d);
    int n = 0;
    for (const char *p = s; p && (p = strstr(p, "READY")); p += 5) n++;
    free(s);
    return n;
}

/* linkd_spawn runs linkd on d's URLs and waits for one more READY line in
 * its log than there was. 0 when READY, LD_EIO if linkd exited 69 (cannot
 * listen: a port was taken meanwhile), LD_ESTATE for any other exit,
 * LD_ETIMEDOUT. */
static int linkd_spawn(ldh_linkd *d, const ldh_redis *r, const ldh_linkd_opts *o)
{
    char scale[32], maxmsg[32], redis_url[64], rules[PATH_MAX], http[32];
    char *argv[40];
    int n = 0;
    snprintf(redis_url, sizeof redis_url, "%s", r->url);
    snprintf(rules, sizeof rules, "%s", o && o->rules ? o->rules : LDH_DEFAULT_RULES);
    argv[n++] = LDH_LINKD_BIN;
    argv[n++] = "--rules";
    argv[n++] = rules;
    argv[n++] = "--redis";
    argv[n++] = redis_url;
    argv[n++] = "--ingest";
    argv[n++] = d->ingest;
    argv[n++] = "--terminals";
    argv[n++] = d->terminals;
    argv[n++] = "--feed";
    argv[n++] = d->feed;
    if (o && o->time_scale > 0) {
        snprintf(scale, sizeof scale, "%g", o->time_scale);
        argv[n++] = "--time-scale";
        argv[n++] = scale;
    }
    if (o && o->max_message > 0) {
        snprintf(maxmsg, sizeof maxmsg, "%ld", o->max_message);
        argv[n++] = "--max-message";
        argv[n++] = maxmsg;
    }
    if (o && o->log_level) {
        argv[n++] = "--log-level";
        argv[n++] = (char *)o->log_level;
    }
    if (d->http > 0) {
        snprintf(http, sizeof http, "127.0.0.1:%d", d->http);
        argv[n++] = "--http";
        argv[n++] = http;
    }
    for (int i = 0; o && i < 16 && o->extra[i]; i++) argv[n++] = (char *)o->extra[i];
    argv[n] = NULL;

    {
        /* Say what we ran, so a log read alone tells the whole story. */
        FILE *f = fopen(d->log, "a");
        if (f) {
            fputs("harness: exec", f);
            for (int i = 0; i < n; i++) fprintf(f, " %s", argv[i]);
            fputc('\n', f);
            fclose(f);
        }
    }
    int readies = count_ready(d);
    pid_t pid = ldh_spawn(argv, NULL, d->log, d->log);
    if (pid < 0) return (int)pid;
    d->pid = pid;
    d->exit_code = -1;

    uint64_t end = ldh_mono_ms() + LDH_START_MS;
    for (;;) {
        int code;
        if (ldh_wait_pid(pid, 0, &code) == 0) {
            d->pid = 0;
            d->exit_code = code;
            return code == 69 ? LD_EIO : LD_ESTATE;
        }
        if (count_ready(d) > readies) return 0;
        if (ldh_mono_ms() >= end) break;
        ldh_sleep_ms(5);
    }
    d->exit_code = ldh_stop_pid(pid, LDH_STOP_MS);
    d->pid = 0;
    return LD_ETIMEDOUT;
}

/* One attempt on fresh ports. */
static int linkd_try(ldh_linkd *d, const ldh_redis *r, const ldh_linkd_opts *o)
{
    int ports[4];
    bool http = o && o->http;
    int rv = ldh_free_ports(ports, http ? 4 : 3);
    if (rv != 0) return rv;
    snprintf(d->ingest, sizeof d->ingest, "%s://127.0.0.1:%d",
             o && o->ingest_scheme ? o->ingest_scheme : "tcp", ports[0]);
    snprintf(d->terminals, sizeof d->terminals, "tcp://127.0.0.1:%d", ports[1]);
    snprintf(d->feed, sizeof d->feed, "tcp://127.0.0.1:%d", ports[2]);
    d->http = http ? ports[3] : 0;
    return linkd_spawn(d, r, o);
}

int ldh_linkd_respawn(ldh_linkd *d, const ldh_redis *r, const ldh_linkd_opts *o)
{
    if (d->pid > 0) return LD_ESTATE;
    int rv = LD_EIO;
    for (int attempt = 0; attempt < LDH_RETRIES && rv == LD_EIO; attempt++) {
        if (attempt) ldh_sleep_ms(200); /* the old sockets may linger a moment */
        rv = linkd_spawn(d, r, o);
    }
    if (rv != 0) {
        ldh_linkd_log_tail(d, 40);
        fprintf(stderr, "harness: linkd did not get READY again: %s (exit code %d)\n",
                ld_strerror(rv), d->exit_code);
    }
    return rv;
}

int ldh_linkd_start(ldh_linkd *d, const ldh_redis *r, const ldh_linkd_opts *o)
{
    memset(d, 0, sizeof *d);
    d->exit_code = -1;
    int rv = ldh_mkdtemp(d->dir, sizeof d->dir, "linkd");
    if (rv != 0) return rv;
    snprintf(d->log, sizeof d->log, "%s/linkd.log", d->dir);
    for (int attempt = 0; attempt < LDH_RETRIES; attempt++) {
        rv = linkd_try(d, r, o);
        if (rv != LD_EIO) break;
    }
    if (rv != 0) {
        ldh_linkd_log_tail(d, 40);
        fprintf(stderr, "harness: linkd did not get READY: %s (exit code %d)\n",
                ld_strerror(rv), d->exit_code);
    }
    return rv;
}

int ldh_linkd_stop(ldh_linkd *d)
{
    if (d->pid > 0) {
        d->exit_code = ldh_stop_pid(d->pid, LDH_STOP_MS);
        d->pid = 0;
    }
    return d->exit_code;
}

void ldh_linkd_kill(ldh_linkd *d)
{
    if (d->pid <= 0) return;
    kill(d->pid, SIGKILL);
    int code = -1;
    ldh_wait_pid(d->pid, LDH_STOP_MS, &code);
    d->exit_code = code;
    d->pid = 0;
}

void ldh_linkd_free(ldh_linkd *d)
{
    ldh_linkd_stop(d);
    /* A sanitizer report from linkd must reach the test output, where
     * ops/test.sh looks for it, before the directory goes. */
    if (d->log[0] && (ldh_linkd_log_has(d, "ERROR: AddressSanitizer") ||
                      ldh_linkd_log_has(d, "ERROR: LeakSanitizer") ||
                      ldh_linkd_log_has(d, "runtime error:")))
        ldh_tail("SANITIZER REPORT from linkd", d->log, 200);
    if (d->dir[0]) ldh_rmtree(d->dir);
    d->dir[0] = '\0';
    d->log[0] = '\0';
}

/* ---- environment -------------------------------------------------------------------- */

int ldh_env_start(ldh_env *e, const ldh_linkd_opts *o)
{
    memset(e, 0, sizeof *e);
    e->linkd.exit_code = -1;
    if (o) e->opts = *o;
    int rv = ldh_redis_start(&e->redis);
    if (rv != 0) return rv;
    return ldh_linkd_start(&e->linkd, &e->redis, &e->opts);
}

int ldh_env_restart(ldh_env *e, bool crash, int *old_exit)
{
    if (crash) ldh_linkd_kill(&e->linkd);
    else ldh_linkd_stop(&e->linkd);
    if (old_exit) *old_exit = e->linkd.exit_code;
    ldh_linkd_free(&e->linkd);
    return ldh_linkd_start(&e->linkd, &e->redis, &e->opts);
}

int ldh_env_stop(ldh_env *e)
{
    int code = e->linkd.exit_code;   /* if a test already stopped it */
    if (e->linkd.pid > 0) {
        code = ldh_linkd_stop(&e->linkd);
        if (code != 0) {
            fprintf(stderr, "harness: linkd exited with code %d on SIGTERM\n", code);
            ldh_linkd_log_tail(&e->linkd, 60);
        }
    }
    ldh_linkd_free(&e->linkd);
    ldh_redis_stop(&e->redis);
    return code;
}

void ldh_env_dump(const ldh_env *e, const char *file, int line, const char *what)
{
    fprintf(stderr, "\n===== %s:%d: check failed: %s =====\n", file, line, what);
    ldh_linkd_log_tail(&e->linkd, 60);
    if (e->redis.dir[0]) {
        char logf[160];
        snprintf(logf, sizeof logf, "%s/redis.log", e->redis.dir);
        ldh_tail("redis-server log", logf, 10);
    }
}

/* ---- events --------------------------------------------------------------------------- */

static unsigned long id_counter;

void ldh_unique_id(char *buf, size_t len, const char *prefix)
{
    snprintf(buf, len, "%s-%d-%lu-%llu", prefix, (int)getpid(), ++id_counter,
             (unsigned long long)(ldh_mono_ms() % 100000000u));
}

static void event_base(ldh_event *e)
{
    static unsigned place;
    memset(e, 0, sizeof *e);
    linkd__v1__envelope__init(&e->env);
    linkd__v1__location__init(&e->loc);
    ldh_unique_id(e->event_id, sizeof e->event_id, "ev");
    snprintf(e->source_id, sizeof e->source_id, "it-source");
    e->env.event_id = e->event_id;
    e->env.source_id = e->source_id;
    e->env.has_occurred_at_ms = 1;
    e->env.occurred_at_ms = (int64_t)ldh_wall_ms();
    e->env.has_status = 1;
    e->env.status = LINKD__V1__STATUS__STATUS_ACTUAL;

    /* A place of its own: ~11 km apart, a different district and grid, with
     * a per-process offset so parallel tests differ too. District codes start
     * "99", which no rule file lists: the default area type's budgets apply. */
    unsigned k = ++place + (unsigned)(getpid() % 97) * 50u;
    e->loc.has_lat = e->loc.has_lon = 1;
    e->loc.lat = 20.0 + (double)(k % 200) * 0.1;
    e->loc.lon = 100.0 + (double)(k / 200 % 200) * 0.1;
    snprintf(e->district, sizeof e->district, "99%04u", k % 10000);
    snprintf(e->grid, sizeof e->grid, "g-%u", k);
    snprintf(e->address, sizeof e->address, "No. %u Test Road", k);
    e->loc.district = e->district;
    e->loc.grid = e->grid;
    e->loc.address = e->address;
}

void ldh_event_call(ldh_event *e, Linkd__V1__CallCategory category)
{
    event_base(e);
    linkd__v1__call110__init(&e->call);
    e->call.has_category = 1;
    e->call.category = category;
    e->call.location = &e->loc;
    snprintf(e->body_id, sizeof e->body_id, "caller-%lu", id_counter);
    snprintf(e->text, sizeof e->text, "integration test call %s", e->event_id);
    e->call.caller = e->body_id;
    e->call.description = e->text;
    e->env.body_case = LINKD__V1__ENVELOPE__BODY_CALL;
    e->env.call = &e->call;
}

void ldh_event_sensor(ldh_event *e, Linkd__V1__SensorKind kind)
{
    event_base(e);
    linkd__v1__sensor_alarm__init(&e->sensor);
    ldh_unique_id(e->body_id, sizeof e->body_id, "sensor");
    e->sensor.sensor_id = e->body_id;
    e->sensor.has_kind = 1;
    e->sensor.kind = kind;
    e->sensor.has_value = e->sensor.has_threshold = 1;
    e->sensor.value = 42.0;
    e->sensor.threshold = 10.0;
    e->sensor.location = &e->loc;
    e->env.body_case = LINKD__V1__ENVELOPE__BODY_SENSOR;
    e->env.sensor = &e->sensor;
}

void ldh_event_petition(ldh_event *e, Linkd__V1__PetitionIssue issue, unsigned petitioners)
{
    event_base(e);
    linkd__v1__petition__init(&e->petition);
    ldh_unique_id(e->body_id, sizeof e->body_id, "pet");
    snprintf(e->text, sizeof e->text, "integration test petition %s", e->event_id);
    e->petition.petition_id = e->body_id;
    e->petition.has_issue = 1;
    e->petition.issue = issue;
    e->petition.has_petitioners = 1;
    e->petition.petitioners = petitioners;
    e->petition.summary = e->text;
    e->petition.location = &e->loc;
    e->env.body_case = LINKD__V1__ENVELOPE__BODY_PETITION;
    e->env.petition = &e->petition;
}

/* ---- NNG clients -------------------------------------------------------------------------- */

/* Debian's NNG 1.5.2 can wait for ever in nng_close (src/core/rep.h says
 * when), seen about once in 400 runs of a test that kills linkd on a loaded
 * machine. A test must not hang on its client library, so every socket the
 * harness opens is closed with ld_nng_close, which gives up after
 * LDH_CLOSE_MS and, after one stuck close, waits only briefly for the next
 * (NNG's reaper is stuck from then on, so they would all wait). */
void ldh_nng_close(nng_socket sock, const char *what)
{
    ld_nng_close(sock, what, LDH_CLOSE_MS);
}

int ldh_reqrep(const char *url, const void *msg, size_t len, void **rep, size_t *rep_len,
               int timeout_ms)
{
    nng_socket s;
    int rv = nng_req0_open(&s);
    if (rv != 0) return ld_err_from_nng(rv);
    /* Never resend: a resent request would be a second delivery. */
    nng_socket_set_ms(s, NNG_OPT_REQ_RESENDTIME, 3600 * 1000);
    nng_socket_set_ms(s, NNG_OPT_RECVTIMEO, timeout_ms);
    nng_socket_set_ms(s, NNG_OPT_SENDTIMEO, timeout_ms);
    nng_socket_set_ms(s, NNG_OPT_RECONNMINT, 20);
    nng_socket_set_ms(s, NNG_OPT_RECONNMAXT, 200);
    /* Non-blocking dial: the request waits for the connection. */
    if ((rv = nng_dial(s, url, NULL, NNG_FLAG_NONBLOCK)) != 0) goto out;
    if ((rv = nng_send(s, (void *)msg, len, 0)) != 0) goto out;
    rv = nng_recv(s, rep, rep_len, NNG_FLAG_ALLOC);
out:
    ldh_nng_close(s, "REQ socket");
    if (rv == NNG_ETIMEDOUT) return LD_ETIMEDOUT;
    return rv ? ld_err_from_nng(rv) : 0;
}

int ldh_ingest_raw(const ldh_linkd *d, const void *buf, size_t len,
                   Linkd__V1__IngestReply **out)
{
    void *rep;
    size_t rep_len;
    *out = NULL;
    int rv = ldh_reqrep(d->ingest, buf, len, &rep, &rep_len, LDH_REPLY_MS);
    if (rv != 0) return rv;
    *out = linkd__v1__ingest_reply__unpack(NULL, rep_len, rep);
    nng_free(rep, rep_len);
    return *out ? 0 : LD_EDECODE;
}

int ldh_ingest(const ldh_linkd *d, ldh_event *const *ev, size_t n,
               Linkd__V1__IngestReply **out)
{
    Linkd__V1__IngestRequest req = LINKD__V1__INGEST_REQUEST__INIT;
    Linkd__V1__Envelope **envs = calloc(n ? n : 1, sizeof *envs);
    if (!envs) return LD_ENOMEM;
    for (size_t i = 0; i < n; i++) envs[i] = &ev[i]->env;
    req.n_events = n;
    req.events = envs;
    size_t len = linkd__v1__ingest_request__get_packed_size(&req);
    uint8_t *buf = malloc(len ? len : 1);
    int rv = LD_ENOMEM;
    if (buf) {
        linkd__v1__ingest_request__pack(&req, buf);
        rv = ldh_ingest_raw(d, buf, len, out);
    }
    free(buf);
    free(envs);
    return rv;
}

Linkd__V1__IngestReply *ldh_ingest1(const ldh_linkd *d, ldh_event *ev)
{
    Linkd__V1__IngestReply *rep = NULL;
    if (ldh_ingest(d, &ev, 1, &rep) != 0) return NULL;
    return rep;
}

int ldh_ingest_accept(const ldh_linkd *d, ldh_event *ev, char *inc, size_t len)
{
    Linkd__V1__IngestReply *rep = NULL;
    int rv = ldh_ingest(d, &ev, 1, &rep);
    if (rv != 0) return rv;
    if (rep->n_results != 1) {
        linkd__v1__ingest_reply__free_unpacked(rep, NULL);
        return LD_EDECODE;
    }
    const Linkd__V1__IngestResult *r = rep->results[0];
    rv = r->has_result ? (int)r->result : 0;
    if (inc && len) {
        inc[0] = '\0';
        if ((rv == LINKD__V1__RESULT__RESULT_ACCEPTED ||
             rv == LINKD__V1__RESULT__RESULT_DUPLICATE) && r->incident_id)
            snprintf(inc, len, "%s", r->incident_id);
    }
    if (rv != LINKD__V1__RESULT__RESULT_ACCEPTED)
        fprintf(stderr, "harness: event %s: result %d reason '%s'\n", ev->event_id, rv,
                r->reason ? r->reason : "");
    linkd__v1__ingest_reply__free_unpacked(rep, NULL);
    return rv;
}

int ldh_term_poll(const ldh_linkd *d, const ldh_poll *p, Linkd__V1__PollReply **out)
{
    Linkd__V1__PollRequest req = LINKD__V1__POLL_REQUEST__INIT;
    req.terminal_id = (char *)p->terminal;
    req.department = (char *)p->department;
    req.updates = p->updates;
    req.n_updates = p->n_updates;
    req.received = p->received;
    req.n_received = p->n_received;
    req.has_wait_ms = 1;
    req.wait_ms = p->wait_ms;
    if (p->max_tasks) {
        req.has_max_tasks = 1;
        req.max_tasks = p->max_tasks;
    }
    *out = NULL;
    size_t len = linkd__v1__poll_request__get_packed_size(&req);
    uint8_t *buf = malloc(len ? len : 1);
    if (!buf) return LD_ENOMEM;
    linkd__v1__poll_request__pack(&req, buf);
    void *rep;
    size_t rep_len;
    int rv = ldh_reqrep(d->terminals, buf, len, &rep, &rep_len, (int)p->wait_ms + LDH_REPLY_MS);
    free(buf);
    if (rv != 0) return rv;
    *out = linkd__v1__poll_reply__unpack(NULL, rep_len, rep);
    nng_free(rep, rep_len);
    return *out ? 0 : LD_EDECODE;
}

Linkd__V1__Task *ldh_task_dup(const Linkd__V1__Task *t)
{
    size_t len = linkd__v1__task__get_packed_size(t);
    uint8_t *buf = malloc(len ? len : 1);
    if (!buf) return NULL;
    linkd__v1__task__pack(t, buf);
    Linkd__V1__Task *c = linkd__v1__task__unpack(NULL, len, buf);
    free(buf);
    return c;
}

static bool str_eq(const char *a, const char *b)
{
    return a && b && strcmp(a, b) == 0;
}

bool ldh_task_matches(const Linkd__V1__Task *t, const ldh_task_match *m)
{
    if (m->task_id && !str_eq(t->task_id, m->task_id)) return false;
    if (m->incident_id && !str_eq(t->incident_id, m->incident_id)) return false;
    if (m->department && !str_eq(t->department, m->department)) return false;
    return true;
}

/* Receipts for every task of <rep>: pointers into <rep>, in a calloc'd array. */
static char **receipts_of(const Linkd__V1__PollReply *rep, size_t *n)
{
    *n = 0;
    if (!rep || rep->n_tasks == 0) return NULL;
    char **ids = calloc(rep->n_tasks, sizeof *ids);
    for (size_t i = 0; ids && i < rep->n_tasks; i++)
        if (rep->tasks[i]->task_id) ids[(*n)++] = rep->tasks[i]->task_id;
    return ids;
}

Linkd__V1__Task *ldh_term_await(const ldh_linkd *d, const char *terminal,
                                const ldh_task_match *m, bool receipt, int timeout_ms)
{
    uint64_t end = ldh_mono_ms() + (uint64_t)timeout_ms;
    Linkd__V1__Task *found = NULL;
    Linkd__V1__PollReply *prev = NULL;   /* its tasks are receipted by the next poll */
    for (int polls = 0; polls < 100000 && !found; polls++) {
        uint64_t now = ldh_mono_ms();
        if (now >= end) break;
        uint64_t left = end - now;
        ldh_poll p = {.terminal = terminal, .wait_ms = (unsigned)(left < 2000 ? left : 2000)};
        char **ids = receipt ? receipts_of(prev, &p.n_received) : NULL;
        p.received = ids;
        Linkd__V1__PollReply *rep = NULL;
        int rv = ldh_term_poll(d, &p, &rep);
        free(ids);
        if (prev) linkd__v1__poll_reply__free_unpacked(prev, NULL);
        prev = NULL;
        if (rv != 0) {
            ldh_sleep_ms(50);
            continue;
        }
        if (rep->error) {
            fprintf(stderr, "harness: poll as %s refused: %s\n", terminal, rep->error);
            linkd__v1__poll_reply__free_unpacked(rep, NULL);
            ldh_sleep_ms(100);
            continue;
        }
        for (size_t i = 0; i < rep->n_tasks && !found; i++)
            if (ldh_task_matches(rep->tasks[i], m)) found = ldh_task_dup(rep->tasks[i]);
        /* Without receipts, tasks we do not want come back at once: do not spin. */
        if (!found && !receipt && rep->n_tasks > 0) ldh_sleep_ms(50);
        prev = rep;
    }
    if (found && receipt && prev) {
        ldh_poll r = {.terminal = terminal};
        char **ids = receipts_of(prev, &r.n_received);
        r.received = ids;
        Linkd__V1__PollReply *rr = NULL;
        if (ldh_term_poll(d, &r, &rr) == 0) linkd__v1__poll_reply__free_unpacked(rr, NULL);
        free(ids);
    }
    if (prev) linkd__v1__poll_reply__free_unpacked(prev, NULL);
    return found;
}

int ldh_term_update(const ldh_linkd *d, const char *terminal, const char *task_id,
                    Linkd__V1__UpdateKind kind, const char *text, char *reason,
                    size_t reason_len)
{
    Linkd__V1__TaskUpdate u = LINKD__V1__TASK_UPDATE__INIT;
    Linkd__V1__TaskUpdate *up = &u;
    u.task_id = (char *)task_id;
    u.has_kind = 1;
    u.kind = kind;
    if (kind == LINKD__V1__UPDATE_KIND__UPDATE_KIND_RESOLVED ||
        kind == LINKD__V1__UPDATE_KIND__UPDATE_KIND_FEEDBACK)
        u.disposition = (char *)text;
    if (kind == LINKD__V1__UPDATE_KIND__UPDATE_KIND_REJECTED) u.reason = (char *)text;
    ldh_poll p = {.terminal = terminal, .updates = &up, .n_updates = 1};
    Linkd__V1__PollReply *rep = NULL;
    if (reason && reason_len) reason[0] = '\0';
    int rv = ldh_term_poll(d, &p, &rep);
    if (rv != 0) return rv;
    if (rep->error) {
        if (reason && reason_len) snprintf(reason, reason_len, "%s", rep->error);
        rv = LD_EPERM;
    } else if (rep->n_update_results != 1) {
        rv = LD_EDECODE;
    } else {
        const Linkd__V1__UpdateResult *r = rep->update_results[0];
        rv = r->has_result ? (int)r->result : 0;
        if (reason && reason_len && r->reason) snprintf(reason, reason_len, "%s", r->reason);
    }
    linkd__v1__poll_reply__free_unpacked(rep, NULL);
    return rv;
}

/* ---- feed ------------------------------------------------------------------------------------- */

static void on_feed_pipe(nng_pipe p, nng_pipe_ev ev, void *arg)
{
    (void)p, (void)ev;
    __atomic_store_n((int *)arg, 1, __ATOMIC_RELEASE);
}

int ldh_feed_open(ldh_feed *f, const ldh_linkd *d)
{
    memset(f, 0, sizeof *f);
    int rv = nng_sub0_open(&f->sock);
    if (rv != 0) return ld_err_from_nng(rv);
    f->open = true;
    nng_socket_set(f->sock, NNG_OPT_SUB_SUBSCRIBE, "", 0);
    nng_socket_set_int(f->sock, NNG_OPT_RECVBUF, 8192);
    nng_pipe_notify(f->sock, NNG_PIPE_EV_ADD_POST, on_feed_pipe, &f->connected);
    /* Blocking dial: returns once the connection is up (or failed). */
    if ((rv = nng_dial(f->sock, d->feed, NULL, 0)) != 0) {
        ldh_feed_close(f);
        return ld_err_from_nng(rv);
    }
    uint64_t end = ldh_mono_ms() + LDH_REPLY_MS;
    while (!__atomic_load_n(&f->connected, __ATOMIC_ACQUIRE) && ldh_mono_ms() < end)
        ldh_sleep_ms(5);
    /* Our side of the pipe is up; the publisher attaches its side as it
     * finishes the same handshake (and linkd publishes nothing while it has
     * no subscriber). A settle keeps the first event of the test from racing
     * that on a loaded machine; nothing is asserted about time. */
    ldh_sleep_ms(500);
    return 0;
}

void ldh_feed_close(ldh_feed *f)
{
    if (f->open) ldh_nng_close(f->sock, "feed socket");
    f->open = false;
    for (size_t i = 0; i < f->n; i++) linkd__v1__feed_event__free_unpacked(f->ev[i], NULL);
    free(f->ev);
    f->ev = NULL;
    f->n = f->cap = 0;
}

/* Receives one message within <timeout_ms>; true if one was kept. */
static bool feed_recv(ldh_feed *f, int timeout_ms)
{
    if (!f->open) return false;
    nng_socket_set_ms(f->sock, NNG_OPT_RECVTIMEO, timeout_ms > 0 ? timeout_ms : 1);
    void *buf;
    size_t len;
    if (nng_recv(f->sock, &buf, &len, NNG_FLAG_ALLOC) != 0) return false;
    Linkd__V1__FeedEvent *ev = linkd__v1__feed_event__unpack(NULL, len, buf);
    nng_free(buf, len);
    if (!ev) {
        f->undecodable++;
        return true;
    }
    if (f->n == f->cap) {
        size_t cap = f->cap ? f->cap * 2 : 256;
        if (cap > LDH_FEED_MAX) cap = LDH_FEED_MAX;
        Linkd__V1__FeedEvent **nv = f->n < cap ? realloc(f->ev, cap * sizeof *nv) : NULL;
        if (!nv) {
            linkd__v1__feed_event__free_unpacked(ev, NULL);
            return true;
        }
        f->ev = nv;
        f->cap = cap;
    }
    f->ev[f->n++] = ev;
    return true;
}

const Linkd__V1__FeedEvent *ldh_feed_wait(ldh_feed *f, int timeout_ms, ldh_feed_pred pred,
                                          void *arg)
{
    uint64_t end = ldh_mono_ms() + (uint64_t)timeout_ms;
    size_t i = 0;
    for (;;) {
        for (; i < f->n; i++)
            if (pred(f->ev[i], arg)) return f->ev[i];
        uint64_t now = ldh_mono_ms();
        if (now >= end) return NULL;
        feed_recv(f, (int)(end - now));
    }
}

bool ldh_feed_matches(const Linkd__V1__FeedEvent *ev, const ldh_feed_match *m)
{
    if (m->kind && (!ev->has_kind || (int)ev->kind != m->kind)) return false;
    if (m->incident_id && !str_eq(ev->incident_id, m->incident_id)) return false;
    if (m->task_id && !(ev->task && str_eq(ev->task->task_id, m->task_id))) return false;
    if (m->department && !(ev->task && str_eq(ev->task->department, m->department)))
        return false;
    if (m->leg && (!ev->has_leg || (int)ev->leg != m->leg)) return false;
    /* An unset from_level reads as 0, as protobuf defaults go. */
    if (m->check_from_level && ev->from_level != m->from_level) return false;
    return true;
}

static bool match_pred(const Linkd__V1__FeedEvent *ev, void *arg)
{
    return ldh_feed_matches(ev, arg);
}

const Linkd__V1__FeedEvent *ldh_feed_wait_for(ldh_feed *f, int timeout_ms,
                                              const ldh_feed_match *m)
{
    return ldh_feed_wait(f, timeout_ms, match_pred, (void *)m);
}

void ldh_feed_collect(ldh_feed *f, int ms)
{
    uint64_t end = ldh_mono_ms() + (uint64_t)ms;
    for (int i = 0; i < 1000000; i++) {
        uint64_t now = ldh_mono_ms();
        if (now >= end) break;
        feed_recv(f, (int)(end - now));
    }
}

size_t ldh_feed_count(const ldh_feed *f, const ldh_feed_match *m)
{
    size_t n = 0;
    for (size_t i = 0; i < f->n; i++) n += ldh_feed_matches(f->ev[i], m);
    return n;
}

long ldh_feed_index(const ldh_feed *f, const Linkd__V1__FeedEvent *ev)
{
    for (size_t i = 0; i < f->n; i++)
        if (f->ev[i] == ev) return (long)i;
    return -1;
}

void ldh_feed_print(const ldh_feed *f)
{
    fprintf(stderr, "----- feed: %zu events (%zu undecodable) -----\n", f->n, f->undecodable);
    for (size_t i = 0; i < f->n; i++) {
        const Linkd__V1__FeedEvent *e = f->ev[i];
        const char *kind = ld_enum_name(&linkd__v1__feed_kind__descriptor, (int)e->kind);
        if (!kind) kind = "?";
        fprintf(stderr, "#%llu %s inc=%s task=%s level=%d term=%s leg=%d from=%d | %s\n",
                (unsigned long long)e->seq, kind, e->incident_id ? e->incident_id : "-",
                e->task && e->task->task_id ? e->task->task_id : "-",
                e->task && e->task->has_level ? (int)e->task->level : -1,
                e->task && e->task->terminal ? e->task->terminal : "-",
                e->has_leg ? (int)e->leg : 0, e->has_from_level ? (int)e->from_level : -1,
                e->text ? e->text : "");
    }
}

/* ---- rules ------------------------------------------------------------------------------------- */

ld_rules *ldh_rules_load(const char *dir)
{
    ld_rules *r = NULL;
    ld_diag diag;
    ld_diag_init(&diag);
    int rv = ld_rules_load(&r, dir, &diag);
    if (rv != 0) {
        fprintf(stderr, "harness: rules %s do not load: %s\n", dir, ld_strerror(rv));
        ld_diag_print(&diag, stderr);
        r = NULL;
    }
    ld_diag_fini(&diag);
    return r;
}

size_t ldh_rules_plan(const ld_rules *r, const ld_match_input *in, ldh_dispatch *out,
                      size_t max)
{
    const ld_route *routes[64];
    size_t nr = ld_rules_match(r, in, routes, 64), n = 0;
    for (size_t i = 0; i < nr; i++) {
        for (int j = 0; j < routes[i]->ndispatch; j++) {
            const ld_dispatch_def *dd = &routes[i]->dispatch[j];
            bool seen = false;
            for (size_t k = 0; k < n && !seen; k++)
                seen = out[k].dept == &r->departments[dd->dept];
            if (seen || n == max) continue;
            out[n].dept = &r->departments[dd->dept];
            memcpy(out[n].leg_ms, dd->leg_ms, sizeof out[n].leg_ms);
            out[n].route = routes[i];
            n++;
        }
    }
    return n;
}

const ld_level *ldh_rules_level(const ld_rules *r, const ld_department *dept, int level)
{
    if (level < 0) return NULL;
    if (level < dept->nlevels) return &dept->levels[level];
    const ld_department *cmd = &r->departments[r->command];
    if (dept == cmd) return NULL;
    level -= dept->nlevels;
    return level < cmd->nlevels ? &cmd->levels[level] : NULL;
}

const char *ldh_rules_terminal_id(const ld_rules *r, const ld_department *dept, int level)
{
    const ld_level *l = ldh_rules_level(r, dept, level);
    return l ? r->terminals[l->terminal].id : NULL;
}

int ldh_rules_chain_len(const ld_rules *r, const ld_department *dept)
{
    const ld_department *cmd = &r->departments[r->command];
    return dept == cmd ? dept->nlevels : dept->nlevels + cmd->nlevels;
}

/* ---- the engine's running task counts ---------------------------------------- */

typedef struct open_counts {
    uint32_t by[LD_COUNTED_DEPTS][LD_TASK_STATES];
    uint32_t escalated[LD_COUNTED_DEPTS], overdue[LD_COUNTED_DEPTS];
} open_counts;

static void count_open_tasks(void *arg, const ld_incident *inc)
{
    open_counts *c = arg;
    for (int i = 0; i < inc->ntasks; i++) {
        const ld_task *t = inc->tasks[i];
        if (t->dept >= LD_COUNTED_DEPTS || t->state >= LD_TASK_STATES) continue;
        c->by[t->dept][t->state]++;
        if (t->state == LINKD__V1__TASK_STATE__TASK_STATE_RESOLVED) continue;
        c->escalated[t->dept] += t->level > 0;
        c->overdue[t->dept] += t->overdue_top != 0;
    }
}

void ldh_expect_task_counts(const ld_engine *e)
{
    static open_counts c;
    memset(&c, 0, sizeof c);
    ld_engine_foreach_open(e, count_open_tasks, &c);
    int wrong = 0;
    for (int d = 0; d < LD_COUNTED_DEPTS; d++) {
        for (int s = 0; s < LD_TASK_STATES; s++)
            if (e->tasks_by[d][s] != c.by[d][s]) {
                fprintf(stderr, "tasks of department %d in state %d: counted %u as they changed, "
                        "%u open\n", d, s, e->tasks_by[d][s], c.by[d][s]);
                wrong = 1;
            }
        if (e->escalated_by[d] != c.escalated[d] || e->overdue_by[d] != c.overdue[d]) {
            fprintf(stderr, "tasks of department %d escalated / overdue at the top: counted "
                    "%u / %u as they changed, %u / %u open\n", d, e->escalated_by[d],
                    e->overdue_by[d], c.escalated[d], c.overdue[d]);
            wrong = 1;
        }
    }
    /* Criterion does not count an assertion in a test's .fini; a crash it does. */
    if (wrong) abort();
}
