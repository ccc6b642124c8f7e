/* wire.h: protobuf-c glue: enum names, decoding into an arena, validation.
 *
 * Generated types come from linkd/v1/linkd.pb-c.h (package linkd.v1, C prefix
 * Linkd__V1__). Rule files, the CLI and the feed use short lowercase enum
 * names: CALL_CATEGORY_TRAFFIC_ACCIDENT is "traffic_accident". */
#ifndef LD_WIRE_WIRE_H
#define LD_WIRE_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include "linkd/v1/linkd.pb-c.h"

/* ld_enum_name returns the short name of <value>, or NULL if <d> does not
 * define it. The string is static. */
const char *ld_enum_name(const ProtobufCEnumDescriptor *d, int value);
/* ld_enum_parse finds a short name; 0 with *value set, or LD_ENOENT.
 * UNSPECIFIED is never found. */
int ld_enum_parse(const ProtobufCEnumDescriptor *d, const char *name, int *value);
/* ld_enum_list writes "fire, crime, ..." (every value but UNSPECIFIED). */
void ld_enum_list(const ProtobufCEnumDescriptor *d, char *buf, size_t len);

/* An arena for decoding: protobuf-c allocates from it and nothing is freed
 * one by one; ld_arena_reset() drops everything at once. Under LD_NO_POOL
 * each allocation is a separate malloc, so ASan sees overruns. */
typedef struct ld_arena {
    ProtobufCAllocator pb;   /* hand &arena->pb to protobuf-c */
    struct ld_arena_block *head;
    size_t used, block_size;
    size_t limit, total;     /* total bytes handed out; fail past limit */
} ld_arena;

void ld_arena_init(ld_arena *a, size_t block_size, size_t limit);
void ld_arena_reset(ld_arena *a);
void ld_arena_fini(ld_arena *a);
void *ld_arena_alloc(ld_arena *a, size_t size);

/* Why an event was rejected: each has a counter and a metric label. */
#define LD_REJECT_MAP(X)                                        \
    X(MALFORMED, "malformed")                                   \
    X(OVERSIZE, "oversize")                                     \
    X(TOO_MANY, "too_many_events")                              \
    X(MISSING_FIELD, "missing_field")                           \
    X(BAD_FIELD, "bad_field")                                   \
    X(UNKNOWN_ENUM, "unknown_enum")                             \
    X(BAD_TIME, "absurd_timestamp")                             \
    X(EMPTY, "empty")                                           \
    X(UNAUTHENTICATED, "unauthenticated")

enum ld_reject {
#define LD__REJ_ENUM(name, label) LD_REJECT_##name,
    LD_REJECT_MAP(LD__REJ_ENUM)
#undef LD__REJ_ENUM
    LD_REJECT_COUNT
};

const char *ld_reject_label(int reason);

/* Limits on one event; the message size limit is NNG_OPT_RECVMAXSZ. */
#define LD_MAX_ID_LEN 128
#define LD_MAX_TEXT_LEN 2048
#define LD_MAX_REFS 256
#define LD_MAX_FUTURE_MS (5 * 60 * 1000ull)            /* clock skew we accept */
#define LD_MAX_PAST_MS (7 * 24 * 3600 * 1000ull)       /* older is replay, not intake */

/* ld_envelope_validate checks one decoded event. Returns -1 if it is valid,
 * else an enum ld_reject, with a reason naming the field written to <why>.
 * <now_ms> is the wall clock (timestamps are checked against real time). */
int ld_envelope_validate(const Linkd__V1__Envelope *e, uint64_t now_ms, char *why,
                         size_t len);

/* Kind and category of a valid event, as rules see them. */
int ld_envelope_kind(const Linkd__V1__Envelope *e);      /* enum ld_kind */
int ld_envelope_category(const Linkd__V1__Envelope *e);  /* wire enum value */
const char *ld_envelope_category_name(const Linkd__V1__Envelope *e);
const char *ld_kind_name(int kind);                       /* "call" ... */
const Linkd__V1__Location *ld_envelope_location(const Linkd__V1__Envelope *e);

#endif
