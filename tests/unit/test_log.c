/* test_log.c: linkd's JSON log lines stay valid JSON whatever a message
 * carries: quotes and backslashes from rule paths, control characters and
 * broken UTF-8 from a hostile producer's ids, Chinese addresses intact. */
#include <criterion/criterion.h>
#include <string.h>

#include "core/log.h"

static const char *esc(const char *s)
{
    static char out[256];
    ld_json_escape(out, sizeof out, s);
    return out;
}

Test(log, quotes_and_backslashes_are_escaped)
{
    cr_expect_str_eq(esc("rules/\"a\\b\".yaml"), "rules/\\\"a\\\\b\\\".yaml");
}

Test(log, control_characters_become_unicode_escapes)
{
    cr_expect_str_eq(esc("line\nbreak\ttab\x01\x7f"), "line\\u000abreak\\u0009tab\\u0001\\u007f");
}

Test(log, valid_utf8_passes_through)
{
    const char *s = "海珠区 华景新城 12栋 \xf0\x9f\x94\xa5";
    cr_expect_str_eq(esc(s), s);
}

Test(log, invalid_utf8_becomes_replacement_characters)
{
    /* a lone continuation byte, a truncated sequence, an overlong '/', a surrogate */
    cr_expect_str_eq(esc("a\x80" "b"), "a\\ufffdb");
    cr_expect_str_eq(esc("c\xe6\xb5"), "c\\ufffd\\ufffd");
    cr_expect_str_eq(esc("\xc0\xaf"), "\\ufffd\\ufffd");
    cr_expect_str_eq(esc("\xed\xa0\x80"), "\\ufffd\\ufffd\\ufffd");
    cr_expect_str_eq(esc("\xf5\x80\x80\x80"), "\\ufffd\\ufffd\\ufffd\\ufffd");
}

Test(log, output_is_cut_on_a_whole_escape_and_terminated)
{
    char out[8];
    size_t n = ld_json_escape(out, sizeof out, "abc\"def");
    cr_expect_str_eq(out, "abc\\\"de");
    cr_expect_eq(n, 7);
    n = ld_json_escape(out, sizeof out, "ab\ncd");
    cr_expect_str_eq(out, "ab", "a \\u escape that does not fit is left out whole");
    cr_expect_eq(n, 2);
}

Test(log, formats_parse_by_name)
{
    cr_expect_eq(ld_log_parse_format("json"), LD_LOG_JSON);
    cr_expect_eq(ld_log_parse_format("text"), LD_LOG_TEXT);
    cr_expect_eq(ld_log_parse_format("journal"), LD_LOG_JOURNAL);
    cr_expect_eq(ld_log_parse_format("xml"), -1);
}
