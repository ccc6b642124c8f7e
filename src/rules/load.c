/* load.c: the rules directory: list, read, hash and parse every *.yaml file.
 *
 * libfyaml's own diagnostics never reach stderr: each file gets a private
 * fy_diag in "collect" mode, and what it collected becomes ld_diag entries
 * with our file name, so `linkd --check` prints only our lines. */
#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <libfyaml.h>

#include "core/err.h"
#include "rules/rules_int.h"

#define MAX_FILES 256                 /* rule files per directory */
#define MAX_FILE_BYTES (16u << 20)    /* a rule file is text written by people */

/* ---- diagnostics ---------------------------------------------------------- */

__attribute__((format(printf, 4, 0))) static void vadd(rules_loader *L, int sev,
                                                     const rules_pos *at, const char *fmt,
                                                     va_list ap)
{
    char msg[sizeof L->diag->v[0].msg];
    vsnprintf(msg, sizeof msg, fmt, ap);
    if (at && at->src)
        ld_diag_add(L->diag, sev, at->src->path, at->line, at->col, "%s", msg);
    else
        ld_diag_add(L->diag, sev, L->dir, 0, 0, "%s", msg);
}

void rules__error(rules_loader *L, const rules_pos *at, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vadd(L, LD_DIAG_ERROR, at, fmt, ap);
    va_end(ap);
}

void rules__warn(rules_loader *L, const rules_pos *at, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vadd(L, LD_DIAG_WARNING, at, fmt, ap);
    va_end(ap);
}

void rules__where(const rules_pos *at, char *buf, size_t len)
{
    snprintf(buf, len, "%s:%d:%d", at->src ? at->src->base : "?", at->line, at->col);
}

/* ---- the directory -------------------------------------------------------- */

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int is_rule_file(const char *name)
{
    size_t n = strlen(name);
    /* Hidden files are editor and VCS litter (".#routes.yaml"). */
    return name[0] != '.' && n > 5 && strcmp(name + n - 5, ".yaml") == 0;
}

/* list_files stores the sorted names of the directory's rule files in
 * *names (the caller frees each and the array). Returns how many, or a
 * negative LD_E* code after adding a diagnostic. */
static int list_files(rules_loader *L, char ***names)
{
    DIR *d = opendir(L->dir);
    if (!d) {
        int e = errno;
        rules__error(L, NULL, "cannot open the rules directory: %s", strerror(e));
        return e == ENOENT || e == ENOTDIR ? LD_ENOENT : LD_ERULES;
    }
    char **v = calloc(MAX_FILES, sizeof *v);
    int n = 0, rv = 0;
    struct dirent *de;
    if (!v) rv = LD_ENOMEM;
    while (!rv && (de = readdir(d)) != NULL) {
        if (!is_rule_file(de->d_name)) continue;
        if (n == MAX_FILES) {
            rules__error(L, NULL, "more than %d rule files", MAX_FILES);
            rv = LD_ERULES;
        } else if (!(v[n++] = strdup(de->d_name))) {
            rv = LD_ENOMEM;
        }
    }
    closedir(d);
    if (rv) {
        for (int i = 0; i < n; i++) free(v[i]);
        free(v);
        return rv;
    }
    qsort(v, (size_t)n, sizeof *v, by_name);
    *names = v;
    return n;
}

/* read_file returns the bytes of <path> (NUL-terminated, *len without the
 * NUL), or NULL after adding a diagnostic (or setting L->nomem). */
static char *read_file(rules_loader *L, const rules_src *src, size_t *len)
{
    rules_pos whole = {src, 0, 0};
    FILE *f = fopen(src->path, "rb");
    struct stat st;
    char *buf = NULL;

    if (!f || fstat(fileno(f), &st) != 0) {
        rules__error(L, &whole, "cannot read: %s", strerror(errno));
        goto out;
    }
    if (!S_ISREG(st.st_mode) || st.st_size > (off_t)MAX_FILE_BYTES) {
        rules__error(L, &whole, "not a regular file of at most %u bytes", MAX_FILE_BYTES);
        goto out;
    }
    if (!(buf = malloc((size_t)st.st_size + 1))) {
        L->nomem = 1;
        goto out;
    }
    *len = fread(buf, 1, (size_t)st.st_size, f);
    if (ferror(f) || *len != (size_t)st.st_size) {
        rules__error(L, &whole, "cannot read: %s", ferror(f) ? strerror(errno) : "short read");
        free(buf);
        buf = NULL;
        goto out;
    }
    buf[*len] = '\0';
out:
    if (f) fclose(f);
    return buf;
}

/* ---- text check ----------------------------------------------------------------
 * Rule files are UTF-8 text written by people. Anything else is refused here,
 * with its position, before libfyaml sees it: libfyaml 0.7.12 loops for ever
 * on invalid UTF-8 inside a '%' directive (found by tests/fuzz/fuzz_rules). */

/* utf8_len returns the length of the valid UTF-8 sequence at p (p < end),
 * or 0 if it is not one (overlong forms and surrogates included). */
static size_t utf8_len(const unsigned char *p, const unsigned char *end)
{
    unsigned char c = p[0];
    size_t n;
    unsigned char lo = 0x80, hi = 0xBF;
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF) n = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        if (c == 0xE0) lo = 0xA0;
        if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F;
    } else
        return 0;
    if ((size_t)(end - p) < n || p[1] < lo || p[1] > hi) return 0;
    for (size_t i = 2; i < n; i++)
        if (p[i] < 0x80 || p[i] > 0xBF) return 0;
    return n;
}

static int check_text(rules_loader *L, const rules_src *src, const char *buf, size_t len)
{
    const unsigned char *p = (const unsigned char *)buf, *end = p + len;
    int line = 1, col = 1;
    while (p < end) {
        size_t n = utf8_len(p, end);
        rules_pos at = {src, line, col};
        if (n == 0) {
            rules__error(L, &at, "not UTF-8 text: byte 0x%02x; rule files are UTF-8", *p);
            return -1;
        }
        if (n == 1 && (*p < 0x20 || *p == 0x7f) && *p != '\n' && *p != '\t' && *p != '\r') {
            rules__error(L, &at, "control character 0x%02x in a rule file", *p);
            return -1;
        }
        if (*p == '\n') line++, col = 1;
        else col++;
        p += n;
    }
    return 0;
}

/* ---- one file --------------------------------------------------------------- */

static uint64_t fnv1a64(uint64_t h, const void *data, size_t len)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

/* Copies what libfyaml collected since the last call (*taken entries were
 * copied before) into our diagnostics. Its positions are already 1-based.
 * Returns how many errors there were. */
static int take_yaml_errors(rules_loader *L, const rules_src *src, struct fy_diag *fd,
                            int *taken)
{
    void *it = NULL;
    struct fy_diag_error *e;
    int nerr = 0, i = 0;
    while ((e = fy_diag_errors_iterate(fd, &it)) != NULL) {
        if (i++ < *taken) continue;
        (*taken)++;
        rules_pos at = {src, e->line > 0 ? e->line : 0, e->column > 0 ? e->column : 0};
        if (e->type >= FYET_ERROR) {
            rules__error(L, &at, "YAML syntax: %s", e->msg);
            nerr++;
        } else if (e->type == FYET_WARNING) {
            rules__warn(L, &at, "YAML: %s", e->msg);
        }
    }
    return nerr;
}

/* parse_file runs libfyaml over one file's bytes and hands the tree on.
 * A file holds one YAML document (or none: an empty file adds nothing). */
static void parse_file(rules_loader *L, const rules_src *src, const char *buf, size_t len)
{
    struct fy_diag_cfg dcfg;
    struct fy_diag *fd = NULL;
    struct fy_parser *fyp = NULL;
    struct fy_document *doc = NULL, *extra = NULL;
    int taken = 0;

    fy_diag_cfg_default(&dcfg);
    dcfg.fp = NULL; /* with collect mode on, nothing is printed */
    dcfg.level = FYET_WARNING;
    dcfg.colorize = false;
    if (!(fd = fy_diag_create(&dcfg))) goto nomem;
    fy_diag_set_collect_errors(fd, true);

    struct fy_parse_cfg pcfg = {
        /* RESOLVE_DOCUMENT expands aliases and "<<" merge keys, so ops can
         * share a block of budgets; merged nodes keep their own positions. */
        .flags = FYPCF_QUIET | FYPCF_RESOLVE_DOCUMENT
#ifdef LD_NO_POOL
                 | FYPCF_DISABLE_RECYCLING /* let ASan see every node */
#endif
        ,
        .diag = fd,
    };
    if (!(fyp = fy_parser_create(&pcfg))) goto nomem;
    if (fy_parser_set_string(fyp, buf, len) != 0) goto nomem;

    doc = fy_parse_load_document(fyp);
    if (take_yaml_errors(L, src, fd, &taken) != 0) {
        L->unread++;
    } else {
        if (doc) rules__read_tree(L, src, fy_document_root(doc));
        if (doc && (extra = fy_parse_load_document(fyp)) != NULL) {
            rules_pos at = {src, 0, 0};
            const struct fy_mark *m = fy_document_state_start_mark(
                fy_document_get_document_state(extra));
            if (m) at.line = m->line + 1, at.col = m->column + 1;
            rules__error(L, &at, "a rule file holds one YAML document; this is a second");
        }
        take_yaml_errors(L, src, fd, &taken); /* from reading past the first document */
    }
    goto out;
nomem:
    L->nomem = 1;
out:
    if (extra) fy_parse_document_destroy(fyp, extra);
    if (doc) fy_parse_document_destroy(fyp, doc);
    if (fyp) fy_parser_destroy(fyp);
    if (fd) fy_diag_destroy(fd);
}

/* sort_diags orders the entries this load added by file, line and column,
 * as a compiler would print them, keeping the order of entries at the same
 * place; those about the directory as a whole (no line) come last. The
 * checks across files find their problems late, but a reader wants them
 * where they are. Insertion sort: stable, and n is small. */
static int diag_before(const ld_diag_entry *a, const ld_diag_entry *b)
{
    if ((a->line == 0) != (b->line == 0)) return a->line != 0;
    if (a->line == 0) return 0;
    int c = strcmp(a->file, b->file);
    if (c) return c < 0;
    return a->line != b->line ? a->line < b->line : a->col < b->col;
}

static void sort_diags(ld_diag *d, size_t from)
{
    for (size_t i = from + 1; i < d->n; i++) {
        ld_diag_entry e = d->v[i];
        size_t j = i;
        while (j > from && diag_before(&e, &d->v[j - 1])) {
            d->v[j] = d->v[j - 1];
            j--;
        }
        d->v[j] = e;
    }
}

/* ---- the set ---------------------------------------------------------------- */

static void loader_fini(rules_loader *L)
{
    free(L->depts);
    free(L->dept_at);
    free(L->terms);
    free(L->term_at);
    free(L->routes);
    free(L->route_aux);
    for (int i = 1; i < L->nstrs; i++) free(L->strs[i]);
    free(L->strs);
    ld_map_fini(&L->str_ids);
    free(L->set_ids);
    free(L->area_defs);
    free(L->rosters);
    free(L->keys);
    free(L->merges);
    free(L->corrs);
    free(L->corr_aux);
    free(L->holidays);
    free(L->makeup);
}

void ld_rules_free(ld_rules *r)
{
    if (!r) return;
    ld_map_fini(&r->dept_by_id);
    ld_map_fini(&r->term_by_id);
    ld_map_fini(&r->source_by_id);
    free(r->sources);
    ld_map_fini(&r->str_ids);
    for (int i = 1; i < r->nstrs; i++) free(r->strs[i]);
    free(r->strs);
    free(r->set_ids);
    free(r->area_of);
    free(r->holidays);
    free(r->makeup);
    rules__free_index(r);
    free(r->rosters);
    free(r->merges);
    free(r->correlations);
    free(r->departments);
    free(r->terminals);
    free(r->routes);
    free(r);
}

int ld_rules_load(ld_rules **out, const char *dir, ld_diag *diag)
{
    rules_loader L = {.diag = diag, .errors0 = diag->nerrors, .utc_offset_s = 8 * 3600};
    size_t n0 = diag->n;
    char dirbuf[256];
    char **names = NULL;
    rules_src *srcs = NULL;
    ld_rules *r = NULL;
    uint64_t hash = 0xcbf29ce484222325ull; /* FNV-1a 64 offset basis */
    int n, rv;

    *out = NULL;
    /* "rules/" and "rules" name the same files; print "rules/x.yaml" either way. */
    size_t dlen = strlen(dir);
    while (dlen > 1 && dir[dlen - 1] == '/') dlen--;
    if (dlen >= sizeof dirbuf) {
        ld_diag_add(diag, LD_DIAG_ERROR, dir, 0, 0, "directory name too long");
        return LD_ERULES;
    }
    memcpy(dirbuf, dir, dlen);
    dirbuf[dlen] = '\0';
    L.dir = dirbuf;

    if ((n = list_files(&L, &names)) < 0) return n;
    if (n == 0) {
        rules__error(&L, NULL, "no rule files (*.yaml) in the directory");
        rv = LD_ERULES;
        goto out;
    }
    if (!(srcs = calloc((size_t)n, sizeof *srcs)) || !(r = calloc(1, sizeof *r))) {
        rv = LD_ENOMEM;
        goto out;
    }
    for (int i = 0; i < n && !L.nomem; i++) {
        rules_src *s = &srcs[i];
        const char *sep = strcmp(dirbuf, "/") == 0 ? "" : "/";
        int w = snprintf(s->path, sizeof s->path, "%s%s%s", dirbuf, sep, names[i]);
        if (w < 0 || (size_t)w >= sizeof s->path) {
            rules__error(&L, NULL, "file name too long: %s", names[i]);
            continue;
        }
        s->base = s->path + strlen(dirbuf) + strlen(sep);
        size_t len = 0;
        char *buf = read_file(&L, s, &len);
        if (!buf) {
            L.unread++;
            continue;
        }
        /* The name goes into the version too: renaming a file is a change. */
        hash = fnv1a64(hash, names[i], strlen(names[i]) + 1);
        hash = fnv1a64(hash, buf, len);
        if (check_text(&L, s, buf, len) == 0) parse_file(&L, s, buf, len);
        else L.unread++; /* like a file that cannot be read: skip what depends on it */
        free(buf);
    }
    if (L.nomem) {
        rv = LD_ENOMEM;
        goto out;
    }
    /* Even with errors already found, the checks across files still run:
     * they report problems the per-file pass cannot see. */
    rv = rules__check(&L, r);
    sort_diags(diag, n0);
    if (rv == 0) {
        snprintf(r->version, sizeof r->version, "%016llx", (unsigned long long)hash);
        snprintf(r->dir, sizeof r->dir, "%s", dirbuf);
        *out = r;
        r = NULL;
    }
out:
    if (names)
        for (int i = 0; i < n; i++) free(names[i]);
    free(names);
    /* On failure the arrays may have moved into r already; free both. */
    ld_rules_free(r);
    loader_fini(&L);
    free(srcs);
    return rv;
}
