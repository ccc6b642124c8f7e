/* test_pool.c: the size-classed pools and the intern table that keep an open
 * incident small: every block fits what was asked, blocks given back are
 * reused, strings are kept once and go with their last reference. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "core/intern.h"
#include "core/pool.h"

Test(pools, every_size_fits_its_block)
{
    ld_pools p;
    ld_pools_init(&p);
    for (size_t n = 1; n <= LD_POOLS_MAX; n++) {
        size_t b = ld_pools_block(n);
        cr_assert(b >= n && b % 8 == 0, "size %zu gets a block of %zu", n, b);
        cr_assert(n <= 256 ? b - n < 8 : (b - n) * 4 < b, "size %zu wastes %zu", n, b - n);
        unsigned char *o = ld_pools_get(&p, n);
        cr_assert_not_null(o);
        for (size_t i = 0; i < b; i++) cr_assert_eq(o[i], 0, "block of %zu not zeroed", n);
        memset(o, 0xab, b);
        ld_pools_put(&p, o, n);
    }
    cr_expect_eq(ld_pools_block(0), 0);
    cr_expect_eq(ld_pools_block(LD_POOLS_MAX + 1), 0);
    cr_expect_null(ld_pools_get(&p, LD_POOLS_MAX + 1));
    ld_pools_put(&p, NULL, 40);
    ld_pools_fini(&p);
}

Test(pools, blocks_do_not_overlap_and_are_reused)
{
    ld_pools p;
    ld_pools_init(&p);
    enum { N = 5000 };
    static char *blk[N];
    for (int i = 0; i < N; i++) {
        size_t n = 1 + (size_t)(i * 37) % 300;
        cr_assert_not_null(blk[i] = ld_pools_get(&p, n));
        memset(blk[i], i & 0xff, n);
    }
    for (int i = 0; i < N; i++) {
        size_t n = 1 + (size_t)(i * 37) % 300;
        for (size_t k = 0; k < n; k++) cr_assert_eq((unsigned char)blk[i][k], i & 0xff);
    }
    size_t held = ld_pools_bytes(&p);
    for (int i = 0; i < N; i++) ld_pools_put(&p, blk[i], 1 + (size_t)(i * 37) % 300);
    for (int i = 0; i < N; i++)
        cr_assert_not_null(blk[i] = ld_pools_get(&p, 1 + (size_t)(i * 37) % 300));
    cr_expect_eq(ld_pools_bytes(&p), held, "the same blocks again take nothing more");
    for (int i = 0; i < N; i++) ld_pools_put(&p, blk[i], 1 + (size_t)(i * 37) % 300);
    ld_pools_fini(&p);
}

Test(intern, kept_once_and_dropped_with_the_last_reference)
{
    ld_intern in;
    ld_intern_init(&in);
    const char *a = ld_intern_ref(&in, "440106", 32);
    const char *b = ld_intern_ref(&in, "440106", 32);
    const char *c = ld_intern_ref(&in, "440106-extra", 6); /* cut to its first 6 bytes */
    cr_assert_str_eq(a, "440106");
    cr_expect_eq(a, b, "one copy");
    cr_expect_eq(a, c, "a cut string is the same string");
    cr_expect_eq(ld_intern_count(&in), 1);
    cr_expect_str_eq(ld_intern_ref(&in, NULL, 32), "");
    cr_expect_str_eq(ld_intern_ref(&in, "", 32), "");
    cr_expect_eq(ld_intern_count(&in), 1, "empty strings take no entry");
    ld_intern_unref(&in, a);
    ld_intern_unref(&in, b);
    cr_expect_eq(ld_intern_count(&in), 1, "one reference left");
    cr_expect_str_eq(c, "440106");
    ld_intern_unref(&in, c);
    cr_expect_eq(ld_intern_count(&in), 0);
    cr_expect_eq(in.bytes, 0);
    ld_intern_unref(&in, "");
    const char *d = ld_intern_ref(&in, "TH-0412", 64);
    cr_expect_str_eq(d, "TH-0412");
    ld_intern_fini(&in); /* frees what is still referenced */
}

Test(intern, many_distinct_strings_come_and_go)
{
    ld_intern in;
    ld_intern_init(&in);
    enum { N = 20000 };
    static const char *s[N];
    char buf[32];
    for (int i = 0; i < N; i++) {
        snprintf(buf, sizeof buf, "grid-%d", i % 5000);
        cr_assert_not_null(s[i] = ld_intern_ref(&in, buf, 64));
    }
    cr_expect_eq(ld_intern_count(&in), 5000);
    for (int i = 0; i < N; i++) {
        snprintf(buf, sizeof buf, "grid-%d", i % 5000);
        cr_assert_str_eq(s[i], buf);
        ld_intern_unref(&in, s[i]);
    }
    cr_expect_eq(ld_intern_count(&in), 0);
    ld_intern_fini(&in);
}
