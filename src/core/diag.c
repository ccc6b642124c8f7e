#include "core/diag.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

void ld_diag_init(ld_diag *d) { memset(d, 0, sizeof *d); }

void ld_diag_fini(ld_diag *d)
{
    free(d->v);
    memset(d, 0, sizeof *d);
}

void ld_diag_add(ld_diag *d, int severity, const char *file, int line, int col,
                 const char *fmt, ...)
{
    if (severity == LD_DIAG_ERROR) d->nerrors++;
    else d->nwarnings++;
    if (d->n == d->cap) {
        size_t ncap = d->cap ? d->cap * 2 : 8;
        ld_diag_entry *nv = realloc(d->v, ncap * sizeof *nv);
        if (!nv) return; /* counted, but not kept: the summary still says so */
        d->v = nv;
        d->cap = ncap;
    }
    ld_diag_entry *e = &d->v[d->n++];
    e->severity = severity;
    snprintf(e->file, sizeof e->file, "%s", file ? file : "");
    e->line = line;
    e->col = col;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
}

void ld_diag_format(const ld_diag *d, size_t i, char *buf, size_t len)
{
    const ld_diag_entry *e = &d->v[i];
    const char *sev = e->severity == LD_DIAG_ERROR ? "error" : "warning";
    if (e->line > 0)
        snprintf(buf, len, "%s:%d:%d: %s: %s", e->file, e->line, e->col, sev, e->msg);
    else
        snprintf(buf, len, "%s: %s: %s", e->file, sev, e->msg);
}

void ld_diag_print(const ld_diag *d, FILE *out)
{
    char line[1024];
    for (size_t i = 0; i < d->n; i++) {
        ld_diag_format(d, i, line, sizeof line);
        fprintf(out, "%s\n", line);
    }
}
