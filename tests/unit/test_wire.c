/* test_wire.c: the protobuf glue: enum short names, the decode arena, and the
 * validation that turns a bad event into a reason naming its field. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "core/err.h"
#include "rules/rules.h"
#include "wire/wire.h"

/* A fixed "now" keeps the timestamp cases exact. */
#define NOW_MS 1732290000000ull

/* ---- building events ---------------------------------------------------------- */

typedef struct ev {
    Linkd__V1__Envelope env;
    Linkd__V1__Call110 call;
    Linkd__V1__SensorAlarm sensor;
    Linkd__V1__Petition petition;
    Linkd__V1__Location loc;
    char *refs[2];
} ev;

static void base(ev *e)
{
    memset(e, 0, sizeof *e);
    linkd__v1__envelope__init(&e->env);
    linkd__v1__location__init(&e->loc);
    e->env.event_id = "ev-1";
    e->env.source_id = "src-1";
    e->env.has_occurred_at_ms = 1;
    e->env.occurred_at_ms = (int64_t)NOW_MS - 1000;
    e->env.has_status = 1;
    e->env.status = LINKD__V1__STATUS__STATUS_ACTUAL;
    e->loc.has_lat = e->loc.has_lon = 1;
    e->loc.lat = 23.13;
    e->loc.lon = 113.26;
    e->loc.district = "440106";
}

static void make_call(ev *e)
{
    base(e);
    linkd__v1__call110__init(&e->call);
    e->call.has_category = 1;
    e->call.category = LINKD__V1__CALL_CATEGORY__CALL_CATEGORY_FIRE;
    e->call.location = &e->loc;
    e->env.body_case = LINKD__V1__ENVELOPE__BODY_CALL;
    e->env.call = &e->call;
}

static void make_sensor(ev *e)
{
    base(e);
    linkd__v1__sensor_alarm__init(&e->sensor);
    e->sensor.sensor_id = "smoke-17";
    e->sensor.has_kind = 1;
    e->sensor.kind = LINKD__V1__SENSOR_KIND__SENSOR_KIND_SMOKE;
    e->sensor.has_value = e->sensor.has_threshold = 1;
    e->sensor.value = 0.4;
    e->sensor.threshold = 0.1;
    e->env.body_case = LINKD__V1__ENVELOPE__BODY_SENSOR;
    e->env.sensor = &e->sensor;
}

static void make_petition(ev *e)
{
    base(e);
    linkd__v1__petition__init(&e->petition);
    e->petition.petition_id = "P-2024-0001";
    e->petition.has_issue = 1;
    e->petition.issue = LINKD__V1__PETITION_ISSUE__PETITION_ISSUE_WAGE_ARREARS;
    e->petition.has_petitioners = 1;
    e->petition.petitioners = 6;
    e->refs[0] = "person-a";
    e->refs[1] = "person-b";
    e->petition.petitioner_refs = e->refs;
    e->petition.n_petitioner_refs = 2;
    e->env.body_case = LINKD__V1__ENVELOPE__BODY_PETITION;
    e->env.petition = &e->petition;
}

static int validate(const ev *e, char *why, size_t len)
{
    why[0] = '\0';
    return ld_envelope_validate(&e->env, NOW_MS, why, len);
}

/* Expects rejection <code> with a reason that starts with <prefix>. */
#define expect_reject(e, code, prefix)                                                  \
    do {                                                                                \
        char why_[1024];                                                                \
        int r_ = validate((e), why_, sizeof why_);                                      \
        cr_expect_eq(r_, (code), "expected %s, got %d (%s); reason '%s'",               \
                     ld_reject_label(code), r_, r_ >= 0 ? ld_reject_label(r_) : "valid", \
                     why_);                                                             \
        cr_expect(strncmp(why_, (prefix), strlen(prefix)) == 0,                         \
                  "reason '%s' should start with '%s'", why_, (prefix));                \
    } while (0)

#define expect_valid(e)                                                                 \
    do {                                                                                \
        char why_[1024];                                                                \
        int r_ = validate((e), why_, sizeof why_);                                      \
        cr_expect_eq(r_, -1, "expected valid, got %s: '%s'",                             \
                     r_ >= 0 ? ld_reject_label(r_) : "?", why_);                        \
    } while (0)

/* ---- enum names ------------------------------------------------------------------ */

static const ProtobufCEnumDescriptor *const all_enums[] = {
    &linkd__v1__status__descriptor,         &linkd__v1__priority__descriptor,
    &linkd__v1__call_category__descriptor,  &linkd__v1__sensor_kind__descriptor,
    &linkd__v1__petition_issue__descriptor, &linkd__v1__result__descriptor,
    &linkd__v1__leg__descriptor,            &linkd__v1__task_state__descriptor,
    &linkd__v1__update_kind__descriptor,    &linkd__v1__feed_kind__descriptor,
};

Test(enum_names, short_names_are_lowercase_without_prefix)
{
    cr_expect_str_eq(ld_enum_name(&linkd__v1__call_category__descriptor,
                                  LINKD__V1__CALL_CATEGORY__CALL_CATEGORY_TRAFFIC_ACCIDENT),
                     "traffic_accident");
    cr_expect_str_eq(ld_enum_name(&linkd__v1__call_category__descriptor,
                                  LINKD__V1__CALL_CATEGORY__CALL_CATEGORY_FIRE),
                     "fire");
    cr_expect_str_eq(ld_enum_name(&linkd__v1__sensor_kind__descriptor,
                                  LINKD__V1__SENSOR_KIND__SENSOR_KIND_WATER_LEVEL),
                     "water_level");
    cr_expect_str_eq(ld_enum_name(&linkd__v1__petition_issue__descriptor,
                                  LINKD__V1__PETITION_ISSUE__PETITION_ISSUE_LAND_ACQUISITION),
                     "land_acquisition");
    cr_expect_str_eq(ld_enum_name(&linkd__v1__priority__descriptor,
                                  LINKD__V1__PRIORITY__PRIORITY_CRITICAL),
                     "critical");
    cr_expect_str_eq(ld_enum_name(&linkd__v1__feed_kind__descriptor,
                                  LINKD__V1__FEED_KIND__FEED_KIND_TASK_ESCALATED),
                     "task_escalated");
    cr_expect_str_eq(ld_enum_name(&linkd__v1__update_kind__descriptor,
                                  LINKD__V1__UPDATE_KIND__UPDATE_KIND_EN_ROUTE),
                     "en_route");
}

Test(enum_names, every_value_round_trips)
{
    for (size_t i = 0; i < sizeof all_enums / sizeof all_enums[0]; i++) {
        const ProtobufCEnumDescriptor *d = all_enums[i];
        for (unsigned j = 0; j < d->n_values; j++) {
            int v = d->values[j].value;
            const char *n = ld_enum_name(d, v);
            cr_assert_not_null(n, "%s value %d has no short name", d->name, v);
            for (const char *p = n; *p; p++)
                cr_expect(!(*p >= 'A' && *p <= 'Z'), "%s: '%s' is not lowercase", d->name, n);
            if (v == 0) continue;
            int back = -1;
            cr_expect_eq(ld_enum_parse(d, n, &back), 0, "%s: '%s' does not parse", d->name, n);
            cr_expect_eq(back, v, "%s: '%s' parses to %d, not %d", d->name, n, back, v);
        }
    }
}

Test(enum_names, unspecified_unknown_and_wrong_enum_are_not_found)
{
    int v = -7;
    cr_expect_eq(ld_enum_parse(&linkd__v1__call_category__descriptor, "unspecified", &v),
                 LD_ENOENT);
    cr_expect_eq(ld_enum_parse(&linkd__v1__call_category__descriptor, "fier", &v), LD_ENOENT);
    cr_expect_eq(ld_enum_parse(&linkd__v1__call_category__descriptor, "FIRE", &v), LD_ENOENT);
    cr_expect_eq(ld_enum_parse(&linkd__v1__call_category__descriptor, "", &v), LD_ENOENT);
    /* "smoke" is a sensor kind, not a call category. */
    cr_expect_eq(ld_enum_parse(&linkd__v1__call_category__descriptor, "smoke", &v), LD_ENOENT);
    cr_expect_eq(v, -7, "a failed parse must not write the value");
    cr_expect_null(ld_enum_name(&linkd__v1__call_category__descriptor, 99));
    cr_expect_null(ld_enum_name(&linkd__v1__call_category__descriptor, -1));
    cr_expect_null(ld_enum_name(&linkd__v1__call_category__descriptor, 1 << 20));
}

Test(enum_names, list_names_every_value_but_unspecified)
{
    char buf[1024];
    ld_enum_list(&linkd__v1__priority__descriptor, buf, sizeof buf);
    cr_expect_str_eq(buf, "critical, urgent, normal, low");
    ld_enum_list(&linkd__v1__call_category__descriptor, buf, sizeof buf);
    cr_expect(strncmp(buf, "fire, crime, traffic_accident, ", 31) == 0, "list: '%s'", buf);
    cr_expect_null(strstr(buf, "unspecified"), "list: '%s'", buf);
    /* A short buffer is truncated, still terminated. */
    char small[8];
    memset(small, 'x', sizeof small);
    ld_enum_list(&linkd__v1__call_category__descriptor, small, sizeof small);
    cr_expect_lt(strlen(small), sizeof small);
}

/* ---- validation: valid events -------------------------------------------------------- */

Test(validate, accepts_each_kind_of_event)
{
    ev e;
    make_call(&e);
    expect_valid(&e);
    make_sensor(&e);
    expect_valid(&e);
    make_petition(&e);
    expect_valid(&e);
    make_call(&e);
    e.call.location = NULL;          /* location is optional */
    e.env.status = LINKD__V1__STATUS__STATUS_EXERCISE;
    expect_valid(&e);
}

/* ---- validation: envelope fields -------------------------------------------------------- */

Test(validate, missing_envelope_fields_are_named)
{
    ev e;
    make_call(&e);
    e.env.event_id = NULL;
    expect_reject(&e, LD_REJECT_MISSING_FIELD, "event_id");
    make_call(&e);
    e.env.event_id = "";
    expect_reject(&e, LD_REJECT_MISSING_FIELD, "event_id");
    make_call(&e);
    e.env.source_id = NULL;
    expect_reject(&e, LD_REJECT_MISSING_FIELD, "source_id");
    make_call(&e);
    e.env.has_occurred_at_ms = 0;
    expect_reject(&e, LD_REJECT_MISSING_FIELD, "occurred_at_ms");
    make_call(&e);
    e.env.has_status = 0;
    expect_reject(&e, LD_REJECT_MISSING_FIELD, "status");
    make_call(&e);
    e.env.status = LINKD__V1__STATUS__STATUS_UNSPECIFIED;
    expect_reject(&e, LD_REJECT_MISSING_FIELD, "status");
    make_call(&e);
    e.env.body_case = LINKD__V1__ENVELOPE__BODY__NOT_SET;
    e.env.call = NULL;
    expect_reject(&e, LD_REJECT_MISSING_FIELD, "body");
}

Test(validate, unknown_enum_values_name_the_field_and_the_known_values)
{
    ev e;
    char why[1024];
    make_call(&e);
    e.env.status = (Linkd__V1__Status)9;
    expect_reject(&e, LD_REJECT_UNKNOWN_ENUM, "status: unknown value 9");

    make_call(&e);
    e.call.category = (Linkd__V1__CallCategory)99;
    cr_expect_eq(validate(&e, why, sizeof why), LD_REJECT_UNKNOWN_ENUM);
    cr_expect(strncmp(why, "call.category: unknown value 99 (known: fire, crime", 51) == 0,
              "reason: '%s'", why);

    make_call(&e);
    e.call.has_priority = 1;
    e.call.priority = (Linkd__V1__Priority)17;
    expect_reject(&e, LD_REJECT_UNKNOWN_ENUM, "call.priority: unknown value 17");

    make_sensor(&e);
    e.sensor.kind = (Linkd__V1__SensorKind)42;
    expect_reject(&e, LD_REJECT_UNKNOWN_ENUM, "sensor.kind: unknown value 42");

    make_petition(&e);
    e.petition.issue = (Linkd__V1__PetitionIssue)-3;
    expect_reject(&e, LD_REJECT_UNKNOWN_ENUM, "petition.issue: unknown value -3");
}

Test(validate, bad_strings_are_rejected)
{
    ev e;
    char id[200];
    make_call(&e);
    e.env.event_id = "ev\n1";
    expect_reject(&e, LD_REJECT_BAD_FIELD, "event_id: contains a control character");
    make_call(&e);
    e.call.description = "fire\x7f";
    expect_reject(&e, LD_REJECT_BAD_FIELD, "call.description");

    /* Ids may be LD_MAX_ID_LEN bytes, not one more. */
    memset(id, 'a', sizeof id);
    id[LD_MAX_ID_LEN] = '\0';
    make_call(&e);
    e.env.source_id = id;
    expect_valid(&e);
    id[LD_MAX_ID_LEN] = 'a';
    id[LD_MAX_ID_LEN + 1] = '\0';
    expect_reject(&e, LD_REJECT_BAD_FIELD, "source_id: longer than 128 bytes");

    /* UTF-8 is text, not control characters. */
    make_call(&e);
    e.call.description = "\xe5\xa4\xa7\xe6\xa5\xbc\xe8\xb5\xb7\xe7\x81\xab";   /* 大楼起火 */
    expect_valid(&e);
}

/* ---- validation: timestamps -------------------------------------------------------------- */

Test(validate, absurd_timestamps_are_rejected)
{
    ev e;
    const int64_t now = (int64_t)NOW_MS;
    const int64_t past = (int64_t)LD_MAX_PAST_MS, future = (int64_t)LD_MAX_FUTURE_MS;
    static const struct {
        int64_t delta;
        int ok;
    } cases[] = {
        {0, 1}, {-1, 1}, {1, 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        make_call(&e);
        e.env.occurred_at_ms = now + cases[i].delta;
        expect_valid(&e);
    }

    make_call(&e);
    e.env.occurred_at_ms = now + future;          /* the edge of clock skew we accept */
    expect_valid(&e);
    e.env.occurred_at_ms = now + future + 1;
    expect_reject(&e, LD_REJECT_BAD_TIME, "occurred_at_ms");
    e.env.occurred_at_ms = now - past;            /* exactly 7 days old */
    expect_valid(&e);
    e.env.occurred_at_ms = now - past - 1;
    expect_reject(&e, LD_REJECT_BAD_TIME, "occurred_at_ms");
    e.env.occurred_at_ms = 0;
    expect_reject(&e, LD_REJECT_BAD_TIME, "occurred_at_ms");
    e.env.occurred_at_ms = -1;
    expect_reject(&e, LD_REJECT_BAD_TIME, "occurred_at_ms");
    e.env.occurred_at_ms = INT64_MIN;
    expect_reject(&e, LD_REJECT_BAD_TIME, "occurred_at_ms");
    e.env.occurred_at_ms = INT64_MAX;
    expect_reject(&e, LD_REJECT_BAD_TIME, "occurred_at_ms");
    /* Seconds instead of milliseconds: a classic producer bug. */
    e.env.occurred_at_ms = now / 1000;
    expect_reject(&e, LD_REJECT_BAD_TIME, "occurred_at_ms");
    /* Microseconds instead of milliseconds. */
    e.env.occurred_at_ms = now * 1000;
    expect_reject(&e, LD_REJECT_BAD_TIME, "occurred_at_ms");
}

/* ---- validation: bodies ------------------------------------------------------------------- */

Test(validate, call_fields)
{
    ev e;
    make_call(&e);
    e.call.has_category = 0;
    expect_reject(&e, LD_REJECT_MISSING_FIELD, "call.category: missing");
    make_call(&e);
    e.call.has_people = 1;
    e.call.people = 100001;
    expect_reject(&e, LD_REJECT_BAD_FIELD, "call.people");
    make_call(&e);
    e.call.has_people = 1;
    e.call.people = 12;
    e.call.has_priority = 1;
    e.call.priority = LINKD__V1__PRIORITY__PRIORITY_URGENT;
    expect_valid(&e);
}

Test(validate, sensor_fields)
{
    ev e;
    make_sensor(&e);
    e.sensor.sensor_id = NULL;
    expect_reject(&e, LD_REJECT_MISSING_FIELD, "sensor.sensor_id: missing");
    make_sensor(&e);
    e.sensor.has_kind = 0;
    expect_reject(&e, LD_REJECT_MISSING_FIELD, "sensor.kind: missing");
    make_sensor(&e);
    e.sensor.value = NAN;
    expect_reject(&e, LD_REJECT_BAD_FIELD, "sensor.value");
    make_sensor(&e);
    e.sensor.threshold = INFINITY;
    expect_reject(&e, LD_REJECT_BAD_FIELD, "sensor.threshold");
}

Test(validate, petition_fields)
{
    ev e;
    make_petition(&e);
    e.petition.petition_id = "";
    expect_reject(&e, LD_REJECT_MISSING_FIELD, "petition.petition_id: missing");
    make_petition(&e);
    e.petition.has_issue = 0;
    expect_reject(&e, LD_REJECT_MISSING_FIELD, "petition.issue: missing");
    make_petition(&e);
    e.petition.has_petitioners = 0;
    expect_reject(&e, LD_REJECT_MISSING_FIELD, "petition.petitioners");
    make_petition(&e);
    e.petition.petitioners = 0;
    expect_reject(&e, LD_REJECT_MISSING_FIELD, "petition.petitioners");
    make_petition(&e);
    e.refs[1] = "";
    expect_reject(&e, LD_REJECT_MISSING_FIELD, "petition.petitioner_refs");
    make_petition(&e);
    char **many = calloc(LD_MAX_REFS + 1, sizeof *many);
    cr_assert_not_null(many);
    for (size_t i = 0; i <= LD_MAX_REFS; i++) many[i] = "p";
    e.petition.petitioner_refs = many;
    e.petition.n_petitioner_refs = LD_MAX_REFS + 1;
    expect_reject(&e, LD_REJECT_BAD_FIELD, "petition.petitioner_refs");
    e.petition.n_petitioner_refs = LD_MAX_REFS;
    expect_valid(&e);
    free(many);
}

Test(validate, locations)
{
    ev e;
    make_call(&e);
    e.loc.has_lon = 0;
    expect_reject(&e, LD_REJECT_MISSING_FIELD, "call.location.lon");
    make_call(&e);
    e.loc.lat = 90.5;
    expect_reject(&e, LD_REJECT_BAD_FIELD, "call.location.lat");
    make_call(&e);
    e.loc.lon = -180.01;
    expect_reject(&e, LD_REJECT_BAD_FIELD, "call.location.lon");
    make_call(&e);
    e.loc.lat = NAN;
    expect_reject(&e, LD_REJECT_BAD_FIELD, "call.location.lat");
    make_call(&e);
    e.loc.district = "4401060000000000000000000000000000";   /* 34 bytes */
    expect_reject(&e, LD_REJECT_BAD_FIELD, "call.location.district");
    make_sensor(&e);
    e.sensor.location = &e.loc;
    e.loc.has_lat = 0;
    expect_reject(&e, LD_REJECT_MISSING_FIELD, "sensor.location.lat");
    make_petition(&e);
    e.petition.location = &e.loc;
    e.loc.grid = "g\t1";
    expect_reject(&e, LD_REJECT_BAD_FIELD, "petition.location.grid");
}

Test(validate, reject_labels)
{
    cr_expect_str_eq(ld_reject_label(LD_REJECT_MALFORMED), "malformed");
    cr_expect_str_eq(ld_reject_label(LD_REJECT_MISSING_FIELD), "missing_field");
    cr_expect_str_eq(ld_reject_label(LD_REJECT_UNKNOWN_ENUM), "unknown_enum");
    cr_expect_str_eq(ld_reject_label(LD_REJECT_BAD_TIME), "absurd_timestamp");
    cr_expect_str_eq(ld_reject_label(-1), "unknown");
    cr_expect_str_eq(ld_reject_label(LD_REJECT_COUNT), "unknown");
}

Test(validate, kind_and_category_helpers)
{
    ev e;
    make_call(&e);
    cr_expect_eq(ld_envelope_kind(&e.env), LD_KIND_CALL);
    cr_expect_eq(ld_envelope_category(&e.env), LINKD__V1__CALL_CATEGORY__CALL_CATEGORY_FIRE);
    cr_expect_str_eq(ld_envelope_category_name(&e.env), "fire");
    cr_expect_eq(ld_envelope_location(&e.env), &e.loc);
    make_sensor(&e);
    cr_expect_eq(ld_envelope_kind(&e.env), LD_KIND_SENSOR);
    cr_expect_str_eq(ld_envelope_category_name(&e.env), "smoke");
    cr_expect_null(ld_envelope_location(&e.env));
    make_petition(&e);
    cr_expect_eq(ld_envelope_kind(&e.env), LD_KIND_PETITION);
    cr_expect_str_eq(ld_envelope_category_name(&e.env), "wage_arrears");
    cr_expect_str_eq(ld_kind_name(LD_KIND_PETITION), "petition");
}

/* ---- the decode arena ------------------------------------------------------------------------ */

static uint8_t *pack_envelope(const Linkd__V1__Envelope *e, size_t *len)
{
    *len = linkd__v1__envelope__get_packed_size(e);
    uint8_t *buf = malloc(*len);
    cr_assert_not_null(buf);
    linkd__v1__envelope__pack(e, buf);
    return buf;
}

Test(arena, allocations_are_aligned_and_distinct)
{
    ld_arena a;
    ld_arena_init(&a, 256, 0);
    char *prev = NULL;
    for (int i = 1; i < 100; i++) {
        char *p = ld_arena_alloc(&a, (size_t)i);
        cr_assert_not_null(p);
        cr_expect_eq((uintptr_t)p % _Alignof(max_align_t), 0, "unaligned at size %d", i);
        memset(p, i, (size_t)i);   /* ASan catches a block too small */
        cr_expect_neq(p, prev);
        prev = p;
    }
    char *big = ld_arena_alloc(&a, 10000);   /* larger than a block */
    cr_assert_not_null(big);
    memset(big, 1, 10000);
    ld_arena_fini(&a);
}

Test(arena, limit_is_enforced_and_reset_restores_it)
{
    ld_arena a;
    ld_arena_init(&a, 1024, 4096);
    cr_expect_not_null(ld_arena_alloc(&a, 3000));
    cr_expect_null(ld_arena_alloc(&a, 2000), "past the limit must fail");
    cr_expect_not_null(ld_arena_alloc(&a, 512), "what still fits must succeed");
    ld_arena_reset(&a);
    cr_expect_eq(a.total, 0);
    cr_expect_not_null(ld_arena_alloc(&a, 4000), "reset must give the budget back");
    ld_arena_fini(&a);
}

Test(arena, decodes_into_the_arena_and_resets_many_times)
{
    ev e;
    make_petition(&e);
    e.petition.summary = "wage arrears at a building site, 6 workers";
    size_t len;
    uint8_t *buf = pack_envelope(&e.env, &len);

    ld_arena a;
    ld_arena_init(&a, 4096, 1 << 20);
    for (int round = 0; round < 200; round++) {
        Linkd__V1__Envelope *d = linkd__v1__envelope__unpack(&a.pb, len, buf);
        cr_assert_not_null(d, "round %d: decode failed", round);
        cr_expect_str_eq(d->event_id, "ev-1");
        cr_expect_eq(d->body_case, LINKD__V1__ENVELOPE__BODY_PETITION);
        cr_expect_str_eq(d->petition->petition_id, "P-2024-0001");
        cr_expect_eq(d->petition->n_petitioner_refs, 2);
        cr_expect_str_eq(d->petition->petitioner_refs[1], "person-b");
        char why[256];
        cr_expect_eq(ld_envelope_validate(d, NOW_MS, why, sizeof why), -1, "%s", why);
        cr_expect_gt(a.total, 0);
        ld_arena_reset(&a);
        cr_expect_eq(a.total, 0);
    }
    ld_arena_fini(&a);
    free(buf);
}

Test(arena, a_message_bigger_than_the_limit_fails_to_decode)
{
    ev e;
    make_call(&e);
    char text[LD_MAX_TEXT_LEN];
    memset(text, 'x', sizeof text - 1);
    text[sizeof text - 1] = '\0';
    e.call.description = text;
    size_t len;
    uint8_t *buf = pack_envelope(&e.env, &len);
    ld_arena a;
    ld_arena_init(&a, 512, 1024);
    cr_expect_null(linkd__v1__envelope__unpack(&a.pb, len, buf));
    ld_arena_fini(&a);
    ld_arena_init(&a, 512, 1 << 16);
    Linkd__V1__Envelope *d = linkd__v1__envelope__unpack(&a.pb, len, buf);
    cr_expect_not_null(d);
    if (d) cr_expect_eq(strlen(d->call->description), sizeof text - 1);
    ld_arena_fini(&a);
    free(buf);
}

Test(decode, garbage_and_truncation_do_not_decode)
{
    static const uint8_t garbage[] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                                      0xff, 0xff, 0xff, 0xff, 0x01};
    ld_arena a;
    ld_arena_init(&a, 4096, 1 << 20);
    cr_expect_null(linkd__v1__ingest_request__unpack(&a.pb, sizeof garbage, garbage));
    ld_arena_reset(&a);

    ev e;
    make_call(&e);
    Linkd__V1__Envelope *one = &e.env;
    Linkd__V1__IngestRequest req = LINKD__V1__INGEST_REQUEST__INIT;
    req.events = &one;
    req.n_events = 1;
    size_t len = linkd__v1__ingest_request__get_packed_size(&req);
    uint8_t *buf = malloc(len);
    cr_assert_not_null(buf);
    linkd__v1__ingest_request__pack(&req, buf);
    /* The event is length-delimited inside the request, so every truncation
     * is detected: none may decode into a shorter, plausible request. */
    for (size_t cut = 1; cut < len; cut++) {
        cr_expect_null(linkd__v1__ingest_request__unpack(&a.pb, cut, buf), "cut %zu of %zu decoded",
                       cut, len);
        ld_arena_reset(&a);
    }
    Linkd__V1__IngestRequest *d = linkd__v1__ingest_request__unpack(&a.pb, len, buf);
    cr_assert_not_null(d);
    cr_expect_eq(d->n_events, 1);
    ld_arena_fini(&a);
    free(buf);
}
