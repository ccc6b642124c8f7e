/* linkload.c: entry point of the linkd load generator, and small helpers.
 *
 *   linkload run ...      open-loop load against a running linkd (run.c)
 *   linkload ceiling ...  this machine's NNG and Redis ceilings (ceiling.c)
 *   linkload am ...       the same load through Prometheus Alertmanager (am.c)
 *
 * docs/BENCHMARKS.md shows how the two are used together (loadtest/bench.sh). */
#include <stdio.h>
#include <string.h>

#include "linkload.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: linkload run --rate R --duration S [options]   open-loop load against linkd\n"
            "       linkload run --scenario FILE [options]         a scenario (loadtest/scenarios/)\n"
            "       linkload ceiling [options]                     this machine's NNG and Redis ceilings\n"
            "       linkload echo [options]                        a REP server with no logic: the transport's floor\n"
            "       linkload micro                                 CPU cost of the timer heap and histogram\n"
            "       linkload rules [--events N]                    rule engine throughput, 10 to 10,000 routes\n"
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
    if (strcmp(argv[1], "echo") == 0) return lg_cmd_echo(argc, argv);
    if (strcmp(argv[1], "micro") == 0) return lg_cmd_micro(argc, argv);
    if (strcmp(argv[1], "rules") == 0) return lg_cmd_rules(argc, argv);
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
