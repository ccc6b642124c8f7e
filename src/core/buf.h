/* buf.h: a growable byte buffer (HTTP answers, WebSocket messages, audit lines).
 *
 * Appends never fail visibly: on out-of-memory the buffer remembers it
 * (oom = 1) and ignores later appends, so a renderer writes straight through
 * and the caller checks once at the end. Loop thread only. */
#ifndef LD_CORE_BUF_H
#define LD_CORE_BUF_H

#include <stddef.h>
#include <stdint.h>

typedef struct ld_buf {
    char *p;
    size_t len, cap;
    size_t head;     /* bytes reserved before p[0] for the transport (LWS_PRE) */
    int oom;
} ld_buf;

/* ld_buf_init reserves <head> bytes in front of the data. */
void ld_buf_init(ld_buf *b, size_t head);
void ld_buf_fini(ld_buf *b);
void ld_buf_reset(ld_buf *b);
void ld_buf_put(ld_buf *b, const void *data, size_t n);
void ld_buf_puts(ld_buf *b, const char *s);
void ld_buf_printf(ld_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void ld_buf_u64(ld_buf *b, uint64_t v);
/* ld_fmt_u64 writes <v> in decimal at <out> (at most 20 bytes, no NUL) and
 * returns how many bytes: snprintf's "%llu" without the format parser, for
 * what is formatted per event. */
size_t ld_fmt_u64(char *out, uint64_t v);
/* ld_str_join writes <a> then <b> at <out> (<size> bytes, size > 0) with a
 * NUL, cut to fit as snprintf(out, size, "%s%s", a, b) would, and returns
 * the length written: for the keys and ids built per event. */
size_t ld_str_join(char *out, size_t size, const char *a, const char *b);
/* ld_buf_json_str appends <s> as a JSON string (quoted, escaped); NULL is null. */
void ld_buf_json_str(ld_buf *b, const char *s);
/* ld_buf_prom_label appends <s> escaped for a Prometheus label value. */
void ld_buf_prom_label(ld_buf *b, const char *s);

#endif
