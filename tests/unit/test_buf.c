/* test_buf.c: JSON strings from the buffer are always valid JSON: quotes,
 * backslashes and control characters escaped, UTF-8 kept, bytes that are
 * not UTF-8 replaced (the board's WebSocket text frames must be UTF-8). */
#include <criterion/criterion.h>
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
