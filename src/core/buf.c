#include "core/buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void ld_buf_init(ld_buf *b, size_t head)
{
    memset(b, 0, sizeof *b);
    b->head = head;
}

void ld_buf_fini(ld_buf *b)
{
    if (b->p) free(b->p - b->head);
    b->p = NULL;
    b->len = b->cap = 0;
}

void ld_buf_reset(ld_buf *b)
{
    b->len = 0;
    b->oom = 0;
}

static int reserve(ld_buf *b, size_t n)
{
    if (b->oom) return -1;
    if (b->len + n + 1 <= b->cap) return 0;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + n + 1) cap *= 2;
    char *base = realloc(b->p ? b->p - b->head : NULL, b->head + cap);
    if (!base) {
        b->oom = 1;
        return -1;
    }
    b->p = base + b->head;
    b->cap = cap;
    return 0;
}

void ld_buf_put(ld_buf *b, const void *data, size_t n)
{
    if (n == 0) return; /* an empty POST body comes as (NULL, 0) */
    if (reserve(b, n)) return;
    memcpy(b->p + b->len, data, n);
    b->len += n;
    b->p[b->len] = '\0';
}

void ld_buf_puts(ld_buf *b, const char *s)
{
    ld_buf_put(b, s, strlen(s));
}

void ld_buf_printf(ld_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char tmp[512];
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if ((size_t)n < sizeof tmp) {
        ld_buf_put(b, tmp, (size_t)n);
        return;
    }
    if (reserve(b, (size_t)n)) return;
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

size_t ld_fmt_u64(char *out, uint64_t v)
{
    char tmp[20];
    size_t i = sizeof tmp;
    do {
        tmp[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    memcpy(out, tmp + i, sizeof tmp - i);
    return sizeof tmp - i;
}

size_t ld_str_join(char *out, size_t size, const char *a, const char *b)
{
    const char *part[2] = {a, b};
    size_t n = 0;
    for (int i = 0; i < 2; i++) {
        size_t k = strlen(part[i]);
        if (k > size - 1 - n) k = size - 1 - n;
        memcpy(out + n, part[i], k);
        n += k;
    }
    out[n] = '\0';
    return n;
}

void ld_buf_u64(ld_buf *b, uint64_t v)
{
    char tmp[20];
    ld_buf_put(b, tmp, ld_fmt_u64(tmp, v));
}

/* utf8_len returns the length of the valid UTF-8 sequence at <s>, or 0. */
static size_t utf8_len(const unsigned char *s)
{
    size_t n;
    uint32_t min, c = s[0];
    if (c < 0x80) return 1;
    if ((c & 0xe0) == 0xc0) n = 2, min = 0x80, c &= 0x1f;
    else if ((c & 0xf0) == 0xe0) n = 3, min = 0x800, c &= 0x0f;
    else if ((c & 0xf8) == 0xf0) n = 4, min = 0x10000, c &= 0x07;
    else return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80) return 0;
        c = (c << 6) | (s[i] & 0x3f);
    }
    if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff)) return 0;
    return n;
}

void ld_buf_json_str(ld_buf *b, const char *str)
{
    static const char hex[] = "0123456789abcdef";
    if (!str) {
        ld_buf_put(b, "null", 4);
        return;
    }
    const unsigned char *s = (const unsigned char *)str, *run = s;
    ld_buf_put(b, "\"", 1);
    while (*s) {
        unsigned char c = *s;
        size_t n = c >= 0x80 ? utf8_len(s) : 1;
        if (n > 1 || (n == 1 && c >= 0x20 && c != '"' && c != '\\' && c != 0x7f)) {
            s += n;
            continue;
        }
        ld_buf_put(b, run, (size_t)(s - run));
        if (n == 0) {
            ld_buf_put(b, "\\ufffd", 6); /* not UTF-8: replaced, so the JSON stays valid */
        } else if (c == '"' || c == '\\') {
            char esc[2] = {'\\', (char)c};
            ld_buf_put(b, esc, 2);
        } else {
            char esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
            ld_buf_put(b, esc, 6);
        }
        run = ++s;
    }
    ld_buf_put(b, run, (size_t)(s - run));
    ld_buf_put(b, "\"", 1);
}

void ld_buf_prom_label(ld_buf *b, const char *s)
{
    for (; s && *s; s++) {
        if (*s == '\\' || *s == '"') ld_buf_put(b, "\\", 1);
        if (*s == '\n') {
            ld_buf_put(b, "\\n", 2);
            continue;
        }
        ld_buf_put(b, s, 1);
    }
}
