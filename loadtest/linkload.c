/* linkload.c: entry point of the linkd load generator, and small helpers.
 *
 *   linkload run ...      open-loop load against a running linkd (run.c)
 *   linkload ceiling ...  this machine's NNG and Redis ceilings (ceiling.c)
 *   linkload am ...       the same load through Prometheus Alertmanager (am.c)
 *
 * docs/BENCHMARKS.md shows how the two are used together (loadtest/bench.sh). */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "linkload.h"

int lg_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return 0;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    int port = 0;
    if (bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    close(fd);
    return port;
}

void lg_sleep_until(uint64_t ns)
{
    struct timespec ts = {(time_t)(ns / 1000000000u), (long)(ns % 1000000000u)};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {
    }
}

const char *lg_fmt_ns(uint64_t ns, char *buf, size_t len)
{
    if (ns < 10000) snprintf(buf, len, "%.2fus", (double)ns / 1e3);
    else if (ns < 1000000) snprintf(buf, len, "%.0fus", (double)ns / 1e3);
    else if (ns < 1000000000) snprintf(buf, len, "%.2fms", (double)ns / 1e6);
    else snprintf(buf, len, "%.2fs", (double)ns / 1e9);
    return buf;
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: linkload run --rate R --duration S [options]   open-loop load against linkd\n"
            "       linkload run --scenario FILE [options]         a scenario (loadtest/scenarios/)\n"
            "       linkload ceiling [options]                     this machine's NNG and Redis ceilings\n"
            "       linkload micro                                 CPU cost of the timer heap and histogram\n"
            "       linkload am-config --hook URL [--rules DIR]    Alertmanager config equivalent to the rules\n"
            "       linkload am --alertmanager URL --hook-port P --rate R --duration S   the peer, same load\n"
            "       linkload hostile --rate R --duration S         malformed and abusive intake, paced\n"
            "       linkload free-port                             print a free TCP port on 127.0.0.1\n"
            "       linkload <command> --help                      options of a command\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return LG_EXIT_USAGE;
    }
    if (strcmp(argv[1], "run") == 0) return lg_cmd_run(argc, argv);
    if (strcmp(argv[1], "ceiling") == 0) return lg_cmd_ceiling(argc, argv);
    if (strcmp(argv[1], "micro") == 0) return lg_cmd_micro(argc, argv);
    if (strcmp(argv[1], "am") == 0) return lg_cmd_am(argc, argv);
    if (strcmp(argv[1], "am-config") == 0) return lg_cmd_am_config(argc, argv);
    if (strcmp(argv[1], "hostile") == 0) return lg_cmd_hostile(argc, argv);
    if (strcmp(argv[1], "free-port") == 0) {   /* for scripts: a port to give a server */
        int port = lg_free_port();
        if (!port) return LG_EXIT_UNAVAILABLE;
        printf("%d\n", port);
        return LG_EXIT_OK;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage(stdout);
        return LG_EXIT_OK;
    }
    fprintf(stderr, "linkload: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return LG_EXIT_USAGE;
}
