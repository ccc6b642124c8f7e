/* Strings in events must be well-formed UTF-8 (RFC 3629): protobuf's string
 * type requires it and protobuf-c does not check. Checked through
 * ld_envelope_validate on a call's description, at the edges of each form. */
#include <criterion/criterion.h>
#include <string.h>

#include "wire/wire.h"

#define NOW_MS 1795000000000ull

static int validate_description(const char *text, char *why, size_t len)
{
    Linkd__V1__Envelope e;
    Linkd__V1__Call110 c;
    linkd__v1__envelope__init(&e);
    linkd__v1__call110__init(&c);
    e.event_id = "ev-1";
    e.source_id = "cc-1";
    e.has_occurred_at_ms = 1;
    e.occurred_at_ms = (int64_t)NOW_MS;
    e.has_status = 1;
    e.status = LINKD__V1__STATUS__STATUS_ACTUAL;
    e.body_case = LINKD__V1__ENVELOPE__BODY_CALL;
    e.call = &c;
    c.has_category = 1;
    c.category = LINKD__V1__CALL_CATEGORY__CALL_CATEGORY_FIRE;
    c.description = (char *)text;
    return ld_envelope_validate(&e, NOW_MS, why, len);
}

Test(wire_utf8, well_formed_text_in_any_script_is_valid)
{
    static const char *const ok[] = {
        "plain ASCII",
        "\xc2\x80 first two-byte",            /* U+0080 */
        "\xdf\xbf last two-byte",             /* U+07FF */
        "\xe0\xa0\x80 first three-byte",      /* U+0800 */
        "\xed\x9f\xbf before the surrogates", /* U+D7FF */
        "\xee\x80\x80 after the surrogates",  /* U+E000 */
        "\xef\xbf\xbf last three-byte",       /* U+FFFF */
        "\xf0\x90\x80\x80 first four-byte",   /* U+10000 */
        "\xf4\x8f\xbf\xbf last code point",   /* U+10FFFF */
        "厨房起火，三楼有浓烟",
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        char why[256] = "";
        cr_expect_eq(validate_description(ok[i], why, sizeof why), -1, "case %zu rejected: %s", i,
                     why);
    }
}

Test(wire_utf8, malformed_sequences_are_rejected_naming_field_and_byte)
{
    static const struct {
        const char *text;
        const char *why;
    } bad[] = {
        {"\x80 lone continuation", "call.description: invalid UTF-8 at byte 0"},
        {"ab\xc0\xaf overlong slash", "call.description: invalid UTF-8 at byte 2"},
        {"\xc1\xbf overlong two-byte", "call.description: invalid UTF-8 at byte 0"},
        {"\xe0\x9f\xbf overlong three-byte", "call.description: invalid UTF-8 at byte 0"},
        {"\xed\xa0\x80 surrogate", "call.description: invalid UTF-8 at byte 0"},
        {"\xf0\x8f\xbf\xbf overlong four-byte", "call.description: invalid UTF-8 at byte 0"},
        {"\xf4\x90\x80\x80 above U+10FFFF", "call.description: invalid UTF-8 at byte 0"},
        {"\xf5\x80\x80\x80 lead byte F5", "call.description: invalid UTF-8 at byte 0"},
        {"\xff", "call.description: invalid UTF-8 at byte 0"},
        {"cut \xe4\xb8", "call.description: invalid UTF-8 at byte 4"},
        {"cut \xf0\x9f\x98", "call.description: invalid UTF-8 at byte 4"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char why[256] = "";
        cr_expect_eq(validate_description(bad[i].text, why, sizeof why), LD_REJECT_BAD_FIELD,
                     "case %zu accepted", i);
        cr_expect_str_eq(why, bad[i].why, "case %zu", i);
    }
}
