/* test_sha256.c: SHA-256 matches the FIPS 180-4 test vectors (so anyone can
 * check an audit trail with standard tools), in portable C and with the
 * CPU's SHA instructions alike, however the input is cut; and an audit line
 * verifies only with its own content and its predecessor's hash. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "audit/audit.h"
#include "core/err.h"
#include "core/sha256.h"

/* digest hashes <s> fed in pieces of <piece> bytes (0: all at once). */
static void digest(const char *s, size_t n, size_t piece, char hex[65])
{
    ld_sha256 c;
    uint8_t d[32];
    ld_sha256_init(&c);
    if (!piece) piece = n ? n : 1;
    for (size_t i = 0; i < n; i += piece) ld_sha256_update(&c, s + i, n - i < piece ? n - i : piece);
    ld_sha256_final(&c, d);
    ld_sha256_hex(d, hex);
}

/* In uneven pieces, as the chain feeds it. */
static void hex_of(const char *s, size_t n, char hex[65])
{
    digest(s, n, 7, hex);
}

static void expect_vectors(void)
{
    static const struct {
        const char *in, *hex;
    } v[] = {
        {"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
        {"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
        {"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
         "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"},
        {"abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqr"
         "lmnopqrsmnopqrstnopqrstu",
         "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1"},
    };
    char hex[65];
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++)
        for (size_t piece = 0; piece < 80; piece += 7) {
            digest(v[i].in, strlen(v[i].in), piece, hex);
            cr_expect_str_eq(hex, v[i].hex, "vector %zu in pieces of %zu", i, piece);
        }
    static char million[1000000];
    memset(million, 'a', sizeof million);
    for (size_t piece = 0; piece <= 7; piece += 7) {
        digest(million, sizeof million, piece, hex);
        cr_expect_str_eq(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
    }
}

Test(sha256, fips_vectors_portable)
{
    ld_sha256_accel(0);
    expect_vectors();
    ld_sha256_accel(1);
}

Test(sha256, fips_vectors_cpu_instructions)
{
    if (!ld_sha256_accel(1)) cr_skip_test("this CPU has no SHA instructions");
    expect_vectors();
}

/* Every length around the block and padding edges, both ways, same digest. */
Test(sha256, both_implementations_agree)
{
    if (!ld_sha256_accel(1)) cr_skip_test("this CPU has no SHA instructions");
    static char in[300];
    for (size_t i = 0; i < sizeof in; i++) in[i] = (char)(i * 131 + 7);
    for (size_t n = 0; n <= sizeof in; n++) {
        char a[65], b[65];
        ld_sha256_accel(0);
        digest(in, n, 0, a);
        ld_sha256_accel(1);
        digest(in, n, n % 13 + 1, b);
        cr_assert_str_eq(a, b, "length %zu", n);
    }
}

#define ZERO "0000000000000000000000000000000000000000000000000000000000000000"

/* line builds an audit line for <body> chained to <prev>. */
static void line(char *out, size_t len, const char *prev, const char *body)
{
    char in[512], hex[65];
    snprintf(in, sizeof in, "%s\n%s", prev, body);
    hex_of(in, strlen(in), hex);
    snprintf(out, len, "%s,\"hash\":\"%s\"}", body, hex);
}

Test(audit_line, verifies_only_an_untouched_linked_line)
{
    char l1[512], l2[512], h1[65], h2[65], why[200];
    line(l1, sizeof l1, ZERO, "{\"n\":1,\"at\":5,\"kind\":\"incident_opened\"");
    cr_assert_eq(ld_audit_line_check(l1, strlen(l1), ZERO, h1, why, sizeof why), 0, "%s", why);
    line(l2, sizeof l2, h1, "{\"n\":2,\"at\":6,\"kind\":\"task_dispatched\",\"task\":\"fire\"");
    cr_expect_eq(ld_audit_line_check(l2, strlen(l2), h1, h2, why, sizeof why), 0, "%s", why);
    /* Linked to the wrong predecessor: as if an entry between was removed. */
    cr_expect_neq(ld_audit_line_check(l2, strlen(l2), ZERO, h2, why, sizeof why), 0);
    /* One byte of content changed. */
    l2[20] ^= 1;
    cr_expect_neq(ld_audit_line_check(l2, strlen(l2), h1, h2, why, sizeof why), 0);
    cr_expect(strstr(why, "changed"), "%s", why);
    cr_expect_eq(ld_audit_line_check("{\"n\":1}", 7, ZERO, h2, why, sizeof why), LD_EPARSE);
}
