/* test_sha256.c: SHA-256 matches the FIPS 180-4 test vectors (so anyone can
 * check an audit trail with standard tools), and an audit line verifies
 * only with its own content and its predecessor's hash. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "audit/audit.h"
#include "core/err.h"
#include "core/sha256.h"

static void hex_of(const char *s, size_t n, char hex[65])
{
    ld_sha256 c;
    uint8_t d[32];
    ld_sha256_init(&c);
    /* In uneven pieces, as the chain feeds it. */
    for (size_t i = 0; i < n; i += 7) ld_sha256_update(&c, s + i, n - i < 7 ? n - i : 7);
    ld_sha256_final(&c, d);
    ld_sha256_hex(d, hex);
}

Test(sha256, fips_vectors)
{
    char hex[65];
    hex_of("", 0, hex);
    cr_expect_str_eq(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    hex_of("abc", 3, hex);
    cr_expect_str_eq(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    const char *two = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    hex_of(two, strlen(two), hex);
    cr_expect_str_eq(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    static char million[1000000];
    memset(million, 'a', sizeof million);
    hex_of(million, sizeof million, hex);
    cr_expect_str_eq(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
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
