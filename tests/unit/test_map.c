/* test_map.c: the string-keyed map behind the incident id tables: every key
 * put can be found until it is deleted, through growth and through the
 * backward shifts that deletions make, with keys that share long prefixes
 * (incident ids do). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "core/map.h"

enum { N = 20000 };
static char keys[N][32];
static int present[N];

static void make_keys(void)
{
    for (int i = 0; i < N; i++) snprintf(keys[i], sizeof keys[i], "I1732312312%03d-%d", i % 997, i);
}

/* check: the map holds exactly the keys marked present, each with its value. */
static void check(const ld_map *m)
{
    size_t n = 0;
    for (int i = 0; i < N; i++) {
        void *v = ld_map_get(m, keys[i]);
        if (present[i]) {
            cr_assert_eq(v, keys[i], "key %s lost", keys[i]);
            n++;
        } else {
            cr_assert_null(v, "key %s found after its deletion", keys[i]);
        }
    }
    cr_assert_eq(m->len, n);
}

Test(map, keys_survive_growth_and_deletions)
{
    ld_map m;
    ld_map_init(&m);
    make_keys();
    memset(present, 0, sizeof present);
    cr_assert_null(ld_map_get(&m, "I1-0"), "an empty map finds nothing");
    cr_assert_null(ld_map_del(&m, "I1-0"));
    for (int i = 0; i < N; i++) {
        cr_assert_eq(ld_map_put(&m, keys[i], keys[i]), 0);
        present[i] = 1;
    }
    check(&m);
    cr_assert(m.len * 4 <= m.cap * 3, "load above 3/4: %zu of %zu", m.len, m.cap);
    /* Delete in an order unrelated to insertion, so shifts cross runs and wrap. */
    for (int k = 0; k < N; k++) {
        int i = (int)(((unsigned)k * 7919u) % N);
        if (i % 3 == 0) continue;
        cr_assert_eq(ld_map_del(&m, keys[i]), keys[i]);
        present[i] = 0;
    }
    check(&m);
    /* Put some back, and replace the value of a present one. */
    for (int i = 1; i < N; i += 3) {
        cr_assert_eq(ld_map_put(&m, keys[i], keys[i]), 0);
        present[i] = 1;
    }
    check(&m);
    cr_assert_eq(ld_map_put(&m, keys[0], keys[1]), 0);
    cr_assert_eq(ld_map_get(&m, keys[0]), keys[1], "a second put replaces the value");
    cr_assert_eq(ld_map_put(&m, keys[0], keys[0]), 0);
    check(&m);
    ld_map_fini(&m);
}

Test(map, getn_matches_a_prefix_of_the_query_exactly)
{
    ld_map m;
    ld_map_init(&m);
    static char a[] = "I17-0", b[] = "I17-01";
    cr_assert_eq(ld_map_put(&m, a, a), 0);
    cr_assert_eq(ld_map_put(&m, b, b), 0);
    const char *task = "I17-0/fire";
    cr_assert_eq(ld_map_getn(&m, task, 5), a, "the incident of a task id");
    cr_assert_eq(ld_map_getn(&m, "I17-01/fire", 6), b);
    cr_assert_null(ld_map_getn(&m, task, 4), "I17- is not a key");
    cr_assert_eq(ld_map_del(&m, a), a);
    cr_assert_null(ld_map_getn(&m, task, 5));
    cr_assert_eq(ld_map_get(&m, b), b, "a key that extends a deleted one stays");
    ld_map_fini(&m);
}

/* The index of objects that hold their keys: the same behaviour through
 * growth and deletions, and a put of an object whose key is in replaces it. */
typedef struct obj {
    char id[32];
} obj;

static const char *obj_key(const void *o)
{
    return ((const obj *)o)->id;
}

static obj objs[N];

Test(index, objects_survive_growth_and_deletions)
{
    ld_index x;
    ld_index_init(&x, obj_key);
    make_keys();
    cr_assert_null(ld_index_get(&x, "I1-0"), "an empty index finds nothing");
    cr_assert_null(ld_index_del(&x, "I1-0"));
    for (int i = 0; i < N; i++) {
        memcpy(objs[i].id, keys[i], sizeof objs[i].id);
        cr_assert_eq(ld_index_put(&x, &objs[i]), 0);
        present[i] = 1;
    }
    cr_assert(x.len * 4 <= x.cap * 3, "load above 3/4: %zu of %zu", x.len, x.cap);
    for (int k = 0; k < N; k++) {
        int i = (int)(((unsigned)k * 7919u) % N);
        if (i % 3 == 0) continue;
        cr_assert_eq(ld_index_del(&x, keys[i]), &objs[i]);
        present[i] = 0;
    }
    size_t n = 0;
    for (int i = 0; i < N; i++) {
        obj *o = ld_index_get(&x, keys[i]);
        cr_assert_eq(o, present[i] ? &objs[i] : NULL, "key %s", keys[i]);
        n += present[i];
    }
    cr_assert_eq(x.len, n);
    size_t seen = 0;
    for (size_t i = 0; i < x.cap; i++) seen += x.slots[i] != NULL;
    cr_assert_eq(seen, n, "the slots hold the objects, once each");
    static obj twin = {"I1732312312000-0"};
    cr_assert_eq(ld_index_put(&x, &twin), 0);
    cr_assert_eq(ld_index_get(&x, twin.id), &twin, "a second object with a key replaces it");
    cr_assert_eq(x.len, n);
    cr_assert_eq(ld_index_getn(&x, "I1732312312000-0/fire", 16), &twin);
    ld_index_fini(&x);
}
