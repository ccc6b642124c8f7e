/* test_map.c: the string-keyed map behind the incident id tables: every key
 * put can be found until it is deleted, through growth and through the
 * backward shifts that deletions make, with keys that share long prefixes
 * (incident ids do); and a growth is spread over the calls that follow it,
 * each key found, replaced, deleted and visited once while it lasts. */
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
    cr_assert_eq(ld_map_len(m), n);
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
    cr_assert(m.t.len * 4 <= m.t.cap * 3, "load above 3/4: %zu of %zu", m.t.len, m.t.cap);
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
    cr_assert(x.t.len * 4 <= x.t.cap * 3, "load above 3/4: %zu of %zu", x.t.len, x.t.cap);
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
    cr_assert_eq(ld_index_len(&x), n);
    size_t seen = 0;
    for (size_t it = 0; ld_index_next(&x, &it);) seen++;
    cr_assert_eq(seen, n, "the slots hold the objects, once each");
    static obj twin = {"I1732312312000-0"};
    cr_assert_eq(ld_index_put(&x, &twin), 0);
    cr_assert_eq(ld_index_get(&x, twin.id), &twin, "a second object with a key replaces it");
    cr_assert_eq(ld_index_len(&x), n);
    cr_assert_eq(ld_index_getn(&x, "I1732312312000-0/fire", 16), &twin);
    ld_index_fini(&x);
}

/* seen_once: iterating the map visits exactly the present keys, once each. */
static void seen_once(const ld_map *m)
{
    static unsigned char seen[N];
    memset(seen, 0, sizeof seen);
    const char *key;
    void *value;
    size_t n = 0;
    for (size_t it = 0; ld_map_next(m, &it, &key, &value); n++) {
        int i = (int)((const char (*)[32])(const void *)key - keys);
        cr_assert(i >= 0 && i < N && present[i], "visited a key not in the map: %s", key);
        cr_assert_eq(value, keys[i], "the value of %s", key);
        cr_assert_not(seen[i], "%s visited twice", key);
        seen[i] = 1;
    }
    cr_assert_eq(n, ld_map_len(m), "visited %zu of %zu", n, ld_map_len(m));
}

/* fill_until_growth puts keys into a new map <m> until a growth of a table
 * of thousands of slots begins; returns how many it put. */
static int fill_until_growth(ld_map *m)
{
    ld_map_init(m);
    make_keys();
    memset(present, 0, sizeof present);
    int i = 0;
    while (!(m->t.old && m->t.old_cap >= 4096)) {
        cr_assert_lt(i, N, "no growth began");
        cr_assert_eq(ld_map_put(m, keys[i], keys[i]), 0);
        present[i++] = 1;
    }
    return i;
}

Test(map, a_growth_is_spread_over_later_calls_and_loses_nothing)
{
    ld_map m;
    int i = fill_until_growth(&m);
    size_t old_cap = m.t.old_cap;
    cr_assert_leq(m.t.moved, 16, "the put that began the growth moved %zu slots", m.t.moved);
    check(&m);
    seen_once(&m);
    /* Go on until about half the old table is moved, then delete and
     * replace keys: about half of them are in the new table by now, half
     * still in the old one. A key moved and then deleted must stay gone. */
    while (m.t.moved < old_cap / 2) {
        cr_assert_eq(ld_map_put(&m, keys[i], keys[i]), 0);
        present[i++] = 1;
    }
    for (int k = 0; k < 300; k += 5) {
        cr_assert_eq(ld_map_del(&m, keys[k]), keys[k], "delete %s while growing", keys[k]);
        present[k] = 0;
    }
    for (int k = 1; k < 100; k += 5) {
        cr_assert_eq(ld_map_put(&m, keys[k], keys[k + 1]), 0);
        cr_assert_eq(ld_map_get(&m, keys[k]), keys[k + 1], "a replace while growing");
        cr_assert_eq(ld_map_put(&m, keys[k], keys[k]), 0);
    }
    cr_assert_not_null(m.t.old, "the growth is still going on");
    check(&m);
    seen_once(&m);
    /* Puts and deletes go on until the old table is all moved and freed. */
    int calls = 0;
    while (m.t.old) {
        cr_assert_lt(i, N);
        cr_assert_eq(ld_map_put(&m, keys[i], keys[i]), 0);
        present[i++] = 1;
        calls++;
    }
    cr_assert_leq(calls, (int)(old_cap / 16) + 1, "the growth took %d more puts", calls);
    cr_assert_eq(m.t.cap, old_cap * 2);
    check(&m);
    seen_once(&m);
    for (int k = 0; k < i; k++)
        if (present[k]) {
            cr_assert_eq(ld_map_del(&m, keys[k]), keys[k]);
            present[k] = 0;
        }
    check(&m);
    ld_map_fini(&m);
}

Test(map, tidy_ends_a_growth_without_puts)
{
    ld_map m;
    fill_until_growth(&m);
    ld_map_tidy(&m, 1000);
    cr_assert_not_null(m.t.old, "1,000 slots of %zu do not end it", m.t.old_cap);
    check(&m);
    ld_map_tidy(&m, m.t.old_cap);
    cr_assert_null(m.t.old, "the old table is freed once every slot is moved");
    check(&m);
    seen_once(&m);
    ld_map_fini(&m);
}
