/* fuzz_ingest.c: arbitrary bytes through what intake does with a request:
 * decode as IngestRequest into a bounded arena, validate every event, read
 * its kind and category names. Nothing may crash, leak or read out of bounds;
 * every event must get either "valid" or a reason. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wire/wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
    static ld_arena arena;
    static int ready;
    if (!ready) {
        ld_arena_init(&arena, 64 * 1024, 8u << 20);
        ready = 1;
    }
    Linkd__V1__IngestRequest *req = linkd__v1__ingest_request__unpack(&arena.pb, len, data);
    if (req) {
        for (size_t i = 0; i < req->n_events; i++) {
            const Linkd__V1__Envelope *ev = req->events[i];
            char why[640];
            why[0] = '\0';
            int bad = ld_envelope_validate(ev, 1795000000000ull, why, sizeof why);
            if (bad >= 0 && (bad >= LD_REJECT_COUNT || why[0] == '\0')) abort();
            if (bad < 0) {
                /* A valid event has a kind, a named category and packs again. */
                if (ld_envelope_kind(ev) == 0) abort();
                if (strcmp(ld_envelope_category_name(ev), "unknown") == 0) abort();
                size_t n = linkd__v1__envelope__get_packed_size(ev);
                uint8_t *buf = ld_arena_alloc(&arena, n ? n : 1);
                if (buf && linkd__v1__envelope__pack(ev, buf) != n) abort();
            }
        }
    }
    ld_arena_reset(&arena);
    return 0;
}
