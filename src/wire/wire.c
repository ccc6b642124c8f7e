#include "wire/wire.h"

#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "rules/rules.h"

/* ---- enum names ----------------------------------------------------------
 * Short names are computed once per descriptor: the prefix is what precedes
 * "UNSPECIFIED" in the zero value's name. Descriptors are few and static. */

#define MAX_ENUMS 16
#define MAX_VALUES 64

static struct enum_names {
    const ProtobufCEnumDescriptor *d;
    char names[MAX_VALUES][40];
} enum_cache[MAX_ENUMS];
static int enum_cache_len;

static struct enum_names *names_for(const ProtobufCEnumDescriptor *d)
{
    for (int i = 0; i < enum_cache_len; i++)
        if (enum_cache[i].d == d) return &enum_cache[i];
    if (enum_cache_len == MAX_ENUMS) return NULL;
    struct enum_names *en = &enum_cache[enum_cache_len];
    memset(en, 0, sizeof *en);
    size_t plen = 0;
    for (unsigned i = 0; i < d->n_values; i++) {
        const char *n = d->values[i].name;
        const char *u = strstr(n, "UNSPECIFIED");
        if (d->values[i].value == 0 && u) plen = (size_t)(u - n);
    }
    for (unsigned i = 0; i < d->n_values; i++) {
        int v = d->values[i].value;
        if (v < 0 || v >= MAX_VALUES) continue;
        const char *n = d->values[i].name + plen;
        size_t k = 0;
        for (; n[k] && k + 1 < sizeof en->names[v]; k++)
            en->names[v][k] = (char)tolower((unsigned char)n[k]);
        en->names[v][k] = '\0';
    }
    en->d = d;
    enum_cache_len++;
    return en;
}

const char *ld_enum_name(const ProtobufCEnumDescriptor *d, int value)
{
    if (value < 0 || value >= MAX_VALUES) return NULL;
    if (!protobuf_c_enum_descriptor_get_value(d, value)) return NULL;
    struct enum_names *en = names_for(d);
    return en ? en->names[value] : NULL;
}

int ld_enum_parse(const ProtobufCEnumDescriptor *d, const char *name, int *value)
{
    struct enum_names *en = names_for(d);
    if (!en) return LD_ENOENT;
    for (unsigned i = 0; i < d->n_values; i++) {
        int v = d->values[i].value;
        if (v <= 0 || v >= MAX_VALUES) continue;
        if (strcmp(en->names[v], name) == 0) {
            *value = v;
            return 0;
        }
    }
    return LD_ENOENT;
}

void ld_enum_list(const ProtobufCEnumDescriptor *d, char *buf, size_t len)
{
    size_t off = 0;
    buf[0] = '\0';
    for (unsigned i = 0; i < d->n_values && off < len; i++) {
        int v = d->values[i].value;
        if (v <= 0) continue;
        const char *n = ld_enum_name(d, v);
        if (!n) continue;
        int w = snprintf(buf + off, len - off, "%s%s", off ? ", " : "", n);
        if (w < 0) break;
        off += (size_t)w;
    }
}

/* ---- arena --------------------------------------------------------------- */

struct ld_arena_block {
    struct ld_arena_block *next;
    size_t size;
    max_align_t data[];
};

static void *arena_pb_alloc(void *ctx, size_t size) { return ld_arena_alloc(ctx, size); }
static void arena_pb_free(void *ctx, void *p) { (void)ctx, (void)p; }

void ld_arena_init(ld_arena *a, size_t block_size, size_t limit)
{
    a->pb.alloc = arena_pb_alloc;
    a->pb.free = arena_pb_free;
    a->pb.allocator_data = a;
    a->head = NULL;
    a->used = 0;
    a->block_size = block_size;
    a->limit = limit;
    a->total = 0;
}

void *ld_arena_alloc(ld_arena *a, size_t size)
{
    size = (size + sizeof(max_align_t) - 1) & ~(sizeof(max_align_t) - 1);
    if (a->limit && a->total + size > a->limit) return NULL;
#ifdef LD_NO_POOL
    struct ld_arena_block *b = malloc(sizeof *b + size);
    if (!b) return NULL;
    b->next = a->head;
    b->size = size;
    a->head = b;
    a->total += size;
    return b->data;
#else
    if (!a->head || a->used + size > a->head->size) {
        size_t bs = size > a->block_size ? size : a->block_size;
        /* Keep one reusable first block; big one-offs go in their own. */
        struct ld_arena_block *b = malloc(sizeof *b + bs);
        if (!b) return NULL;
        b->size = bs;
        b->next = a->head;
        a->head = b;
        a->used = 0;
    }
    void *p = (char *)a->head->data + a->used;
    a->used += size;
    a->total += size;
    return p;
#endif
}

void ld_arena_reset(ld_arena *a)
{
    /* Keep the oldest block (the usual size) and free the rest. */
    struct ld_arena_block *b = a->head, *keep = NULL;
    while (b) {
        struct ld_arena_block *next = b->next;
#ifdef LD_NO_POOL
        free(b);
#else
        if (!next && b->size == a->block_size) keep = b;
        else free(b);
#endif
        b = next;
    }
    if (keep) keep->next = NULL;
    a->head = keep;
    a->used = 0;
    a->total = 0;
}

void ld_arena_fini(ld_arena *a)
{
    ld_arena_reset(a);
    free(a->head);
    a->head = NULL;
}

/* ---- validation ---------------------------------------------------------- */

const char *ld_reject_label(int reason)
{
    static const char *const labels[] = {
#define LD__REJ_LABEL(name, label) label,
        LD_REJECT_MAP(LD__REJ_LABEL)
#undef LD__REJ_LABEL
    };
    return (reason >= 0 && reason < LD_REJECT_COUNT) ? labels[reason] : "unknown";
}

__attribute__((format(printf, 4, 5))) static int bad(char *why, size_t len, int reason,
                                                      const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, len, fmt, ap);
    va_end(ap);
    return reason;
}

/* utf8_len returns the length of the well-formed UTF-8 sequence at <p>
 * (RFC 3629: no overlong forms, no surrogates, nothing above U+10FFFF), or 0. */
static size_t utf8_len(const unsigned char *p)
{
    unsigned char c = p[0];
    if (c < 0x80) return 1;
    if (c >= 0xc2 && c <= 0xdf) return (p[1] & 0xc0) == 0x80 ? 2 : 0;
    if (c >= 0xe0 && c <= 0xef) {
        unsigned char lo = c == 0xe0 ? 0xa0 : 0x80, hi = c == 0xed ? 0x9f : 0xbf;
        return p[1] >= lo && p[1] <= hi && (p[2] & 0xc0) == 0x80 ? 3 : 0;
    }
    if (c >= 0xf0 && c <= 0xf4) {
        unsigned char lo = c == 0xf0 ? 0x90 : 0x80, hi = c == 0xf4 ? 0x8f : 0xbf;
        return p[1] >= lo && p[1] <= hi && (p[2] & 0xc0) == 0x80 && (p[3] & 0xc0) == 0x80
                   ? 4
                   : 0;
    }
    return 0;
}

/* A string field: present strings must be within <max> bytes, well-formed
 * UTF-8 (protobuf's string type requires it; protobuf-c does not check) and
 * free of control characters. */
static int check_str(const char *s, size_t max, const char *field, int required, char *why,
                     size_t len)
{
    if (!s || !*s) {
        if (!required) return -1;
        return bad(why, len, LD_REJECT_MISSING_FIELD, "%s: missing", field);
    }
    const unsigned char *p = (const unsigned char *)s;
    for (size_t n = 0; p[n];) {
        if (n >= max) {
            snprintf(why, len, "%s: longer than %zu bytes", field, max);
            return LD_REJECT_BAD_FIELD;
        }
        if (p[n] < 0x20 || p[n] == 0x7f)
            return bad(why, len, LD_REJECT_BAD_FIELD, "%s: contains a control character",
                       field);
        size_t k = utf8_len(p + n); /* stops at the NUL: a cut sequence is invalid */
        if (k == 0)
            return bad(why, len, LD_REJECT_BAD_FIELD, "%s: invalid UTF-8 at byte %zu", field, n);
        n += k;
    }
    return -1;
}

static int check_enum(const ProtobufCEnumDescriptor *d, int value, int required,
                      const char *field, char *why, size_t len)
{
    if (value == 0) {
        if (!required) return -1;
        return bad(why, len, LD_REJECT_MISSING_FIELD, "%s: missing", field);
    }
    if (!ld_enum_name(d, value)) {
        char known[512];
        ld_enum_list(d, known, sizeof known);
        snprintf(why, len, "%s: unknown value %d (known: %s)", field, value, known);
        return LD_REJECT_UNKNOWN_ENUM;
    }
    return -1;
}

/* check_sub checks <field>.<sub>, a string, and names it in full only if
 * it fails: every event has a location, and most are fine. */
static int check_sub(const char *s, size_t max, const char *field, const char *sub, char *why,
                     size_t len)
{
    int r = check_str(s, max, sub, 0, why, len);
    if (r >= 0) {
        char tail[256];
        snprintf(tail, sizeof tail, "%s", why);
        snprintf(why, len, "%s.%s", field, tail);
    }
    return r;
}

static int check_location(const Linkd__V1__Location *l, const char *field, char *why,
                          size_t len)
{
    if (!l) return -1;
    int r;
    if (l->has_lat != l->has_lon) {
        snprintf(why, len, "%s.%s: latitude and longitude come together", field,
                 l->has_lat ? "lon" : "lat");
        return LD_REJECT_MISSING_FIELD;
    }
    if (l->has_lat && (!isfinite(l->lat) || l->lat < -90 || l->lat > 90)) {
        snprintf(why, len, "%s.lat: %g is not a latitude", field, l->lat);
        return LD_REJECT_BAD_FIELD;
    }
    if (l->has_lon && (!isfinite(l->lon) || l->lon < -180 || l->lon > 180)) {
        snprintf(why, len, "%s.lon: %g is not a longitude", field, l->lon);
        return LD_REJECT_BAD_FIELD;
    }
    if ((r = check_sub(l->address, LD_MAX_TEXT_LEN, field, "address", why, len)) >= 0) return r;
    if ((r = check_sub(l->district, 32, field, "district", why, len)) >= 0) return r;
    if ((r = check_sub(l->grid, 64, field, "grid", why, len)) >= 0) return r;
    return -1;
}

int ld_envelope_validate(const Linkd__V1__Envelope *e, uint64_t now_ms, char *why, size_t len)
{
    int r;
    if ((r = check_str(e->event_id, LD_MAX_ID_LEN, "event_id", 1, why, len)) >= 0) return r;
    if ((r = check_str(e->source_id, LD_MAX_ID_LEN, "source_id", 1, why, len)) >= 0) return r;
    if (!e->has_occurred_at_ms)
        return bad(why, len, LD_REJECT_MISSING_FIELD, "%s: missing", "occurred_at_ms");
    if (e->occurred_at_ms <= 0 || (uint64_t)e->occurred_at_ms > now_ms + LD_MAX_FUTURE_MS ||
        (uint64_t)e->occurred_at_ms + LD_MAX_PAST_MS < now_ms) {
        snprintf(why, len,
                 "occurred_at_ms: %lld is not within 7 days before and 5 minutes after "
                 "now (%llu)",
                 (long long)e->occurred_at_ms, (unsigned long long)now_ms);
        return LD_REJECT_BAD_TIME;
    }
    if ((r = check_enum(&linkd__v1__status__descriptor, e->has_status ? (int)e->status : 0, 1,
                        "status", why, len)) >= 0)
        return r;

    switch (e->body_case) {
    case LINKD__V1__ENVELOPE__BODY_CALL: {
        const Linkd__V1__Call110 *c = e->call;
        if ((r = check_enum(&linkd__v1__call_category__descriptor,
                            c->has_category ? (int)c->category : 0, 1, "call.category", why,
                            len)) >= 0)
            return r;
        if ((r = check_enum(&linkd__v1__priority__descriptor,
                            c->has_priority ? (int)c->priority : 0, 0, "call.priority", why,
                            len)) >= 0)
            return r;
        if ((r = check_str(c->caller, LD_MAX_ID_LEN, "call.caller", 0, why, len)) >= 0) return r;
        if ((r = check_str(c->description, LD_MAX_TEXT_LEN, "call.description", 0, why, len)) >=
            0)
            return r;
        if (c->has_people && c->people > 100000)
            return bad(why, len, LD_REJECT_BAD_FIELD, "%s: more than 100000", "call.people");
        return check_location(c->location, "call.location", why, len);
    }
    case LINKD__V1__ENVELOPE__BODY_SENSOR: {
        const Linkd__V1__SensorAlarm *s = e->sensor;
        if ((r = check_str(s->sensor_id, LD_MAX_ID_LEN, "sensor.sensor_id", 1, why, len)) >= 0)
            return r;
        if ((r = check_enum(&linkd__v1__sensor_kind__descriptor, s->has_kind ? (int)s->kind : 0,
                            1, "sensor.kind", why, len)) >= 0)
            return r;
        if ((s->has_value && !isfinite(s->value)) ||
            (s->has_threshold && !isfinite(s->threshold)))
            return bad(why, len, LD_REJECT_BAD_FIELD, "%s: not a finite number",
                       s->has_value && !isfinite(s->value) ? "sensor.value"
                                                           : "sensor.threshold");
        if ((r = check_str(s->unit, 32, "sensor.unit", 0, why, len)) >= 0) return r;
        return check_location(s->location, "sensor.location", why, len);
    }
    case LINKD__V1__ENVELOPE__BODY_PETITION: {
        const Linkd__V1__Petition *p = e->petition;
        if ((r = check_str(p->petition_id, LD_MAX_ID_LEN, "petition.petition_id", 1, why, len)) >=
            0)
            return r;
        if ((r = check_enum(&linkd__v1__petition_issue__descriptor,
                            p->has_issue ? (int)p->issue : 0, 1, "petition.issue", why, len)) >=
            0)
            return r;
        if (!p->has_petitioners || p->petitioners == 0)
            return bad(why, len, LD_REJECT_MISSING_FIELD, "%s: missing or zero",
                       "petition.petitioners");
        if (p->n_petitioner_refs > LD_MAX_REFS)
            return bad(why, len, LD_REJECT_BAD_FIELD, "%s: more than 256 entries",
                       "petition.petitioner_refs");
        for (size_t i = 0; i < p->n_petitioner_refs; i++)
            if ((r = check_str(p->petitioner_refs[i], LD_MAX_ID_LEN, "petition.petitioner_refs",
                               1, why, len)) >= 0)
                return r;
        if ((r = check_str(p->target_office, LD_MAX_ID_LEN, "petition.target_office", 0, why,
                           len)) >= 0)
            return r;
        if ((r = check_str(p->summary, LD_MAX_TEXT_LEN, "petition.summary", 0, why, len)) >= 0)
            return r;
        return check_location(p->location, "petition.location", why, len);
    }
    default:
        return bad(why, len, LD_REJECT_MISSING_FIELD, "%s: missing (call, sensor or petition)",
                   "body");
    }
}

int ld_envelope_kind(const Linkd__V1__Envelope *e)
{
    switch (e->body_case) {
    case LINKD__V1__ENVELOPE__BODY_CALL: return LD_KIND_CALL;
    case LINKD__V1__ENVELOPE__BODY_SENSOR: return LD_KIND_SENSOR;
    case LINKD__V1__ENVELOPE__BODY_PETITION: return LD_KIND_PETITION;
    default: return LD_KIND_ANY;
    }
}

int ld_envelope_category(const Linkd__V1__Envelope *e)
{
    switch (e->body_case) {
    case LINKD__V1__ENVELOPE__BODY_CALL: return (int)e->call->category;
    case LINKD__V1__ENVELOPE__BODY_SENSOR: return (int)e->sensor->kind;
    case LINKD__V1__ENVELOPE__BODY_PETITION: return (int)e->petition->issue;
    default: return 0;
    }
}

const char *ld_envelope_category_name(const Linkd__V1__Envelope *e)
{
    const char *n = NULL;
    switch (e->body_case) {
    case LINKD__V1__ENVELOPE__BODY_CALL:
        n = ld_enum_name(&linkd__v1__call_category__descriptor, (int)e->call->category);
        break;
    case LINKD__V1__ENVELOPE__BODY_SENSOR:
        n = ld_enum_name(&linkd__v1__sensor_kind__descriptor, (int)e->sensor->kind);
        break;
    case LINKD__V1__ENVELOPE__BODY_PETITION:
        n = ld_enum_name(&linkd__v1__petition_issue__descriptor, (int)e->petition->issue);
        break;
    default: break;
    }
    return n ? n : "unknown";
}

const char *ld_kind_name(int kind)
{
    switch (kind) {
    case LD_KIND_CALL: return "call";
    case LD_KIND_SENSOR: return "sensor";
    case LD_KIND_PETITION: return "petition";
    default: return "any";
    }
}

const Linkd__V1__Location *ld_envelope_location(const Linkd__V1__Envelope *e)
{
    switch (e->body_case) {
    case LINKD__V1__ENVELOPE__BODY_CALL: return e->call->location;
    case LINKD__V1__ENVELOPE__BODY_SENSOR: return e->sensor->location;
    case LINKD__V1__ENVELOPE__BODY_PETITION: return e->petition->location;
    default: return NULL;
    }
}
