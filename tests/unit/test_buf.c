/* test_buf.c: JSON strings from the buffer are always valid JSON: quotes,
 * backslashes and control characters escaped, UTF-8 kept, bytes that are
 * not UTF-8 replaced (the board's WebSocket text frames must be UTF-8). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "core/buf.h"

static const char *json(ld_buf *b, const char *s)
{
    ld_buf_reset(b);
    ld_buf_json_str(b, s);
    return b->p;
}

Test(buf, json_strings)
{
    ld_buf b;
    ld_buf_init(&b, 16);
    cr_expect_str_eq(json(&b, "plain"), "\"plain\"");
    cr_expect_str_eq(json(&b, "a\"b\\c"), "\"a\\\"b\\\\c\"");
    cr_expect_str_eq(json(&b, "line\nnext\t\x01"), "\"line\\u000anext\\u0009\\u0001\"");
    cr_expect_str_eq(json(&b, "火警 Huajing"), "\"火警 Huajing\"");
    cr_expect_str_eq(json(&b, "bad \xff\xfe end"), "\"bad \\ufffd\\ufffd end\"");
    cr_expect_str_eq(json(&b, "cut \xe7\x81"), "\"cut \\ufffd\\ufffd\"");
    cr_expect_str_eq(json(&b, "overlong \xc0\xaf"), "\"overlong \\ufffd\\ufffd\"");
    cr_expect_str_eq(json(&b, NULL), "null");
    ld_buf_fini(&b);
}

Test(buf, grows_and_formats)
{
    ld_buf b;
    ld_buf_init(&b, 8);
    for (int i = 0; i < 10000; i++) ld_buf_printf(&b, "%d,", i % 10);
    cr_expect_eq(b.len, 20000);
    cr_expect_eq(b.oom, 0);
    ld_buf_reset(&b);
    ld_buf_u64(&b, 18446744073709551615ull);
    cr_expect_str_eq(b.p, "18446744073709551615");
    ld_buf_fini(&b);
}

/* ld_fmt_u64 writes what "%llu" would, with no NUL: audit lines and Redis
 * keys are built from it. */
Test(buf, fmt_u64_matches_printf)
{
    static const uint64_t v[] = {0, 1, 9, 10, 99, 100, 1795456637152ull, 18446744073709551615ull};
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        char got[24], want[24];
        memset(got, '#', sizeof got);
        size_t n = ld_fmt_u64(got, v[i]);
        int w = snprintf(want, sizeof want, "%llu", (unsigned long long)v[i]);
        cr_expect_eq(n, (size_t)w, "%s: %zu bytes", want, n);
        cr_expect(memcmp(got, want, n) == 0, "%s: wrote %.*s", want, (int)n, got);
        cr_expect_eq(got[n], '#', "%s: wrote past its digits", want);
    }
}

Test(buf, str_join_cuts_as_snprintf_would)
{
    static const char *const a[] = {"", "I", "ld:inc:", "a-long-source-name"};
    static const char *const b[] = {"", "1795456637152-0", "x"};
    for (size_t size = 1; size <= 24; size++)
        for (size_t i = 0; i < sizeof a / sizeof a[0]; i++)
            for (size_t j = 0; j < sizeof b / sizeof b[0]; j++) {
                char got[32], want[32];
                memset(got, '#', sizeof got);
                size_t n = ld_str_join(got, size, a[i], b[j]);
                snprintf(want, size, "%s%s", a[i], b[j]);
                cr_expect_str_eq(got, want, "size %zu: '%s' + '%s'", size, a[i], b[j]);
                cr_expect_eq(n, strlen(want), "size %zu: '%s' + '%s': %zu", size, a[i], b[j], n);
                cr_expect_eq(got[size < sizeof got ? size : 0], size < sizeof got ? '#' : got[0],
                             "size %zu: wrote past its room", size);
            }
}
