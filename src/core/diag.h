/* diag.h: compiler-style diagnostics, "file:line:col: error: message".
 *
 * Loaders keep going after the first problem and add every one they find, so
 * one run reports them all. An ld_diag owns its entries; fini frees them. */
#ifndef LD_CORE_DIAG_H
#define LD_CORE_DIAG_H

#include <stddef.h>
#include <stdio.h>

enum { LD_DIAG_WARNING, LD_DIAG_ERROR };

typedef struct ld_diag_entry {
    int severity;
    char file[256];    /* as the user named it, e.g. "rules/routes.yaml" */
    int line, col;     /* 1-based; 0 when not known */
    char msg[512];
} ld_diag_entry;

typedef struct ld_diag {
    ld_diag_entry *v;
    size_t n, cap;
    size_t nerrors, nwarnings;
} ld_diag;

void ld_diag_init(ld_diag *d);
void ld_diag_fini(ld_diag *d);
void ld_diag_add(ld_diag *d, int severity, const char *file, int line, int col,
                 const char *fmt, ...) __attribute__((format(printf, 6, 7)));
/* ld_diag_print writes every entry, one per line, in the order added. */
void ld_diag_print(const ld_diag *d, FILE *out);
/* ld_diag_format writes entry <i> as "file:line:col: error: msg" into buf. */
void ld_diag_format(const ld_diag *d, size_t i, char *buf, size_t len);

#endif
