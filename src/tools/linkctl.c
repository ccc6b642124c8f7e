/* linkctl.c: entry point; picks the subcommand. */
#include <stdio.h>
#include <string.h>
#include <sysexits.h>

#include "tools/linkctl.h"

static const struct command {
    const char *name;
    int (*main)(int argc, char **argv);
    const char *summary;
} commands[] = {
    {"send", ctl_send_main, "send a 110 call, sensor alarm or petition to linkd's intake"},
    {"terminal", ctl_terminal_main, "act as a department's on-duty terminal (receive, acknowledge, resolve)"},
    {"tail", ctl_tail_main, "print linkd's live feed of incidents, tasks and escalations"},
    {"check", ctl_check_main, "validate a rules directory, like linkd --check"},
    {"test-rules", ctl_test_rules_main, "run rule tests: sample events and expected outcomes"},
    {"keygen", ctl_keygen_main, "create a terminal's key pair for signed hellos"},
    {"audit", ctl_audit_main, "print an incident's audit trail from Redis and verify its hash chain"},
    {"replay", ctl_replay_main, "send events from linkd's event log (ld:events) to an intake again"},
    {"incidents", ctl_incidents_main, "list open incidents, or show one, from Redis"},
};

static void usage(FILE *out)
{
    fputs("Usage: linkctl <command> [options]\n"
          "\n"
          "The command-line tool for 110 linkage command centres and ops teams.\n"
          "\n"
          "Commands:\n",
          out);
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].summary);
    fputs("\n"
          "Run 'linkctl <command> --help' for the options of one command.\n"
          "Exit codes follow sysexits.h: 0 ok, 64 usage, 65 data rejected or rules invalid,\n"
          "69 linkd unreachable, 75 linkd asked to retry later.\n"
          "\n"
          "tls+tcp:// URLs take the client side from the environment: LINKCTL_TLS_CA (the CA\n"
          "that signed linkd's certificate), LINKCTL_TLS_CERT and LINKCTL_TLS_KEY (this\n"
          "client's certificate, when linkd requires one), LINKCTL_TLS_SERVER_NAME (the name\n"
          "in linkd's certificate, if not the URL's host).\n",
          out);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return EX_USAGE;
    }
    const char *name = argv[1];
    if (strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0 || strcmp(name, "help") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(name, "--version") == 0) {
        printf("linkctl %s\n", LINKD_VERSION);
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        if (strcmp(name, commands[i].name) == 0) {
            ctl_cmd = commands[i].name;
            return commands[i].main(argc - 1, argv + 1);
        }
    }
    fprintf(stderr, "linkctl: unknown command '%s'\n", name);
    usage(stderr);
    return EX_USAGE;
}
