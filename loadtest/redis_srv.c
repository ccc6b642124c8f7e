/* redis_srv.c: a private redis-server for linkload ceiling, started in a
 * temp dir on a free port and stopped by its PID (never by name). */
#define _XOPEN_SOURCE 700 /* nftw */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <hiredis/hiredis.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/err.h"
#include "linkload.h"

/* ping returns 1 if a redis-server answers PING on 127.0.0.1:<port>. */
static int ping(int port)
{
    struct timeval tv = {0, 200000};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
    int ok = 0;
    if (c && !c->err) {
        redisReply *r = redisCommand(c, "PING");
        ok = r && r->type == REDIS_REPLY_STATUS && strcmp(r->str, "PONG") == 0;
        if (r) freeReplyObject(r);
    }
    if (c) redisFree(c);
    return ok;
}

static void exec_server(const lg_redis_srv *s, int aof)
{
    char port[16];
    snprintf(port, sizeof port, "%d", s->port);
    int null = open("/dev/null", O_WRONLY);
    if (null >= 0) {
        dup2(null, STDOUT_FILENO);
        close(null);
    }
    execlp("redis-server", "redis-server", "--port", port, "--bind", "127.0.0.1", "--dir", s->dir,
           "--appendonly", aof ? "yes" : "no", "--appendfsync", "everysec", "--save", "",
           "--daemonize", "no", "--loglevel", "warning", (char *)NULL);
    fprintf(stderr, "linkload: cannot run redis-server: %s\n", strerror(errno));
    _exit(127);
}

int lg_redis_start(lg_redis_srv *s, int port, int aof)
{
    memset(s, 0, sizeof *s);
    const char *tmp = getenv("TMPDIR");
    snprintf(s->dir, sizeof s->dir, "%s/linkload-redis-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(s->dir)) {
        fprintf(stderr, "linkload: mkdtemp %s: %s\n", s->dir, strerror(errno));
        s->dir[0] = '\0';
        return LD_EIO;
    }
    s->port = port ? port : lg_free_port();
    pid_t pid = fork();
    if (pid < 0) {
        lg_redis_stop(s);
        return LD_EIO;
    }
    if (pid == 0) exec_server(s, aof);
    s->pid = (int)pid;
    uint64_t deadline = ld_mono_ms() + 10000;
    while (ld_mono_ms() < deadline) {
        if (ping(s->port)) return 0;
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid) {   /* it died: port taken, or no binary */
            s->pid = 0;
            break;
        }
        usleep(50000);
    }
    fprintf(stderr, "linkload: redis-server on port %d did not answer PING\n", s->port);
    lg_redis_stop(s);
    return LD_EIO;
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    remove(path);
    return 0;
}

void lg_redis_stop(lg_redis_srv *s)
{
    if (s->pid > 0) {
        pid_t pid = (pid_t)s->pid;
        kill(pid, SIGTERM);
        uint64_t deadline = ld_mono_ms() + 5000;
        int st;
        while (waitpid(pid, &st, WNOHANG) == 0) {
            if (ld_mono_ms() > deadline) {
                kill(pid, SIGKILL);
                waitpid(pid, &st, 0);
                break;
            }
            usleep(20000);
        }
        s->pid = 0;
    }
    if (s->dir[0]) {
        nftw(s->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
        s->dir[0] = '\0';
    }
}
