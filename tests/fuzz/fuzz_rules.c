/* fuzz_rules.c: arbitrary bytes as a routes file beside a fixed departments
 * file, through the whole loader. It must never crash or leak, and a set it
 * refuses must come with at least one error that has a file name. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/diag.h"
#include "rules/rules.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len);

static const char departments[] =
    "departments:\n"
    "  fire:\n"
    "    terminals: [fire-duty, fire-deputy]\n"
    "    escalation:\n"
    "      - { level: duty_officer, terminal: fire-duty, wait: 1m }\n"
    "      - { level: deputy, terminal: fire-deputy, wait: 2m }\n"
    "  medical:\n"
    "    terminals: [medical-duty]\n"
    "    escalation:\n"
    "      - { level: duty_officer, terminal: medical-duty, wait: 1m }\n"
    "  command:\n"
    "    terminals: [command-supervisor]\n"
    "    escalation:\n"
    "      - { level: supervisor, terminal: command-supervisor, wait: 5m }\n";

static char dir[256];

static void write_file(const char *name, const void *buf, size_t len)
{
    char path[320];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f) abort();
    if (len && fwrite(buf, 1, len, f) != len) abort();
    fclose(f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
    if (!dir[0]) {
        /* Under run.sh's own work directory, so that concurrent runs on one
         * machine never remove each other's files. */
        const char *base = getenv("LINKD_FUZZ_DIR");
        snprintf(dir, sizeof dir, "%s/linkd-fuzz-rules-XXXXXX", base && *base ? base : "/tmp");
        if (!mkdtemp(dir)) abort();
        write_file("departments.yaml", departments, sizeof departments - 1);
    }
    write_file("routes.yaml", data, len);
    ld_rules *r = NULL;
    ld_diag d;
    ld_diag_init(&d);
    int rv = ld_rules_load(&r, dir, &d);
    if (rv == 0) {
        /* A loaded set answers every kind of question without crashing. */
        const ld_route *out[16];
        for (int kind = 0; kind < LD_KIND_COUNT; kind++)
            for (int cat = 0; cat < 24; cat++) {
                ld_match_input in = {.kind = kind, .category = cat, .priority = cat % 5};
                ld_rules_match(r, &in, out, 16);
            }
        ld_rules_free(r);
    } else {
        if (d.nerrors == 0 || d.n == 0 || d.v[0].file[0] == '\0') abort();
    }
    ld_diag_fini(&d);
    return 0;
}
