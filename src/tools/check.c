/* check.c: `linkctl check`: load a rules directory the way linkd does and
 * report every problem, like `linkd --check` (and `nginx -t`). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <sysexits.h>

#include "core/diag.h"
#include "core/err.h"
#include "rules/rules.h"
#include "tools/linkctl.h"

static void usage(void)
{
    puts("Usage: linkctl check [--rules DIR]\n"
         "\n"
         "Validate the rule files of DIR (default ./rules): departments, terminals,\n"
         "escalation chains and routes. Prints every problem as file:line:col and\n"
         "exits 65 if the rules are invalid, or prints\n"
         "  rules OK: N departments, M terminals, K routes, C correlation rules (version V)\n"
         "and exits 0. Same checks as `linkd --check`.");
}

int ctl_check_main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"rules", required_argument, NULL, 'r'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *dir = "rules";
    int opt;
    optind = 0;
    while ((opt = getopt_long(argc, argv, "hr:", opts, NULL)) != -1) {
        switch (opt) {
        case 'r': dir = optarg; break;
        case 'h': usage(); return 0;
        default: return ctl_usage_error("bad option");
        }
    }
    if (optind < argc) return ctl_usage_error("unexpected argument '%s'", argv[optind]);

    ld_diag diag;
    ld_diag_init(&diag);
    ld_rules *rules = NULL;
    int rv = ld_rules_load(&rules, dir, &diag);
    fflush(stdout);
    ld_diag_print(&diag, stderr);
    int code = 0;
    if (rv == 0 && rules) {
        printf("rules OK: %d departments, %d terminals, %d routes, %d correlation rules "
               "(version %s)\n", rules->ndepartments, rules->nterminals, rules->nroutes,
               rules->ncorrelations, rules->version);
        if (diag.nwarnings) printf("%zu warning%s\n", diag.nwarnings, diag.nwarnings == 1 ? "" : "s");
    } else {
        if (rv == LD_ENOENT && diag.n == 0)
            ctl_warn("%s: no such rules directory", dir);
        else
            ctl_warn("%s: %zu error%s; rules NOT valid", dir, diag.nerrors, diag.nerrors == 1 ? "" : "s");
        code = EX_DATAERR;
    }
    if (rules) ld_rules_free(rules);
    ld_diag_fini(&diag);
    return code;
}
