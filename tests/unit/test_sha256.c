/* test_sha256.c: SHA-256 matches the FIPS 180-4 test vectors (so anyone can
 * check an audit trail with standard tools), in portable C and with the
 * CPU's SHA instructions alike, however the input is cut; and an audit trail
 * verifies only as written: each line chained to the one before it, each
 * write ending in its hash. */
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

/* A trail as linkd writes it: bodies[k] is entry k + 1's members after its
 * number; ends[k] says whether entry k + 1 ends a write (shows its hash). */
typedef struct trail {
    char line[8][320];
    const char *lines[8];
    size_t lens[8], n;
} trail;

static void build(trail *t, const char *const *bodies, const int *ends, size_t n)
{
    char prev[65] = ZERO, in[512];
    for (size_t k = 0; k < n; k++) {
        char chained[256];
        snprintf(chained, sizeof chained, "{\"n\":%zu,%s", k + 1, bodies[k]);
        snprintf(in, sizeof in, "%s\n%s", prev, chained);
        hex_of(in, strlen(in), prev);
        if (ends[k])
            snprintf(t->line[k], sizeof t->line[k], "%s,\"hash\":\"%s\"}", chained, prev);
        else
            snprintf(t->line[k], sizeof t->line[k], "%s}", chained);
    }
    t->n = n;
    for (size_t k = 0; k < 8; k++) t->lines[k] = t->line[k], t->lens[k] = strlen(t->line[k]);
}

/* check verifies the first <n> lines of <t>. */
static int check(const trail *t, size_t n, ld_audit_verdict *v)
{
    return ld_audit_trail_check(t->lines, t->lens, n, NULL, NULL, v);
}

static const char *const bodies[] = {
    "\"at\":5,\"kind\":\"incident_opened\"",
    "\"at\":5,\"kind\":\"task_dispatched\",\"task\":\"fire\"",
    "\"at\":5,\"kind\":\"task_dispatched\",\"task\":\"medical\"",
    "\"at\":9,\"kind\":\"task_acknowledged\",\"task\":\"fire\"",
};
static const int ends[] = {0, 0, 1, 1}; /* two writes: entries 1-3, then 4 */

Test(audit_trail, verifies_writes_whose_last_line_shows_the_hash)
{
    trail t;
    ld_audit_verdict v;
    build(&t, bodies, ends, 4);
    cr_expect(!strstr(t.line[0], "hash") && strstr(t.line[2], "hash"), "%s", t.line[0]);
    cr_expect_eq(check(&t, 4, &v), 0, "%s", v.why);
    cr_expect_eq(v.entries, 4);
    cr_expect_eq(v.bad, 0);
    cr_expect_eq(strncmp(v.last_hash, t.line[3] + t.lens[3] - 66, 64), 0, "%s", v.last_hash);
    /* A trail whose every line shows its hash (as before) verifies as well. */
    static const int all[] = {1, 1, 1, 1};
    build(&t, bodies, all, 4);
    cr_expect_eq(check(&t, 4, &v), 0, "%s", v.why);
}

Test(audit_trail, a_changed_line_without_a_hash_fails_its_write)
{
    trail t;
    ld_audit_verdict v;
    build(&t, bodies, ends, 4);
    char *k = strstr(t.line[1], "fire");
    memcpy(k, "fira", 4);
    cr_expect_eq(check(&t, 4, &v), LD_ESTATE);
    cr_expect_eq(v.first_bad, 1, "the write of entries 1-3 fails from its first line");
    cr_expect_eq(v.bad, 3, "only that write: %zu", v.bad);
    cr_expect(strstr(v.why, "changed"), "%s", v.why);
}

Test(audit_trail, a_removed_or_moved_line_fails)
{
    trail t, u;
    ld_audit_verdict v;
    build(&t, bodies, ends, 4);
    u = t;
    u.lines[1] = t.lines[2], u.lens[1] = t.lens[2]; /* entry 2 removed */
    u.lines[2] = t.lines[3], u.lens[2] = t.lens[3];
    cr_expect_eq(check(&u, 3, &v), LD_ESTATE);
    cr_expect(strstr(v.why, "removed"), "%s", v.why);
    u = t;
    u.lines[0] = t.lines[1], u.lens[0] = t.lens[1]; /* entries 1 and 2 swapped */
    u.lines[1] = t.lines[0], u.lens[1] = t.lens[0];
    cr_expect_eq(check(&u, 4, &v), LD_ESTATE);
    cr_expect_eq(v.first_bad, 1);
}

Test(audit_trail, a_trail_that_ends_without_a_hash_was_cut)
{
    trail t;
    ld_audit_verdict v;
    build(&t, bodies, ends, 4);
    cr_expect_eq(check(&t, 2, &v), LD_ESTATE, "entries 1-2 of a three-line write");
    cr_expect_eq(v.first_bad, 1);
    cr_expect(strstr(v.why, "cut short"), "%s", v.why);
}

Test(audit_trail, a_write_sent_again_is_a_repeat_unless_it_differs)
{
    /* Entries 2-3 went twice (the answer to the first write was lost); the
     * second time they were sent with entry 4, which then ended the write. */
    trail t;
    ld_audit_verdict v;
    build(&t, bodies, ends, 4);
    char again[320];
    snprintf(again, sizeof again, "%.*s}", (int)(strstr(t.line[2], ",\"hash\"") - t.line[2]),
             t.line[2]);
    const char *lines[] = {t.line[0], t.line[1], t.line[2], t.line[1], again, t.line[3]};
    size_t lens[6];
    for (size_t k = 0; k < 6; k++) lens[k] = strlen(lines[k]);
    cr_expect_eq(ld_audit_trail_check(lines, lens, 6, NULL, NULL, &v), 0, "%s", v.why);
    cr_expect_eq(v.entries, 4);
    cr_expect_eq(v.repeats, 2);
    /* A "repeat" that says something else is a change. */
    char *k = strstr(again, "medical");
    memcpy(k, "police_", 7);
    cr_expect_eq(ld_audit_trail_check(lines, lens, 6, NULL, NULL, &v), LD_ESTATE);
    cr_expect_eq(v.first_bad, 5);
}

Test(audit_trail, a_line_that_is_not_an_audit_line_fails)
{
    const char *lines[] = {"{\"n\":1}", "hello", "{\"n\":x}"};
    size_t lens[] = {7, 5, 7};
    ld_audit_verdict v;
    cr_expect_eq(ld_audit_trail_check(lines, lens, 3, NULL, NULL, &v), LD_ESTATE);
    cr_expect_eq(v.bad, 3, "one cut short, two not audit lines: %zu", v.bad);
}
