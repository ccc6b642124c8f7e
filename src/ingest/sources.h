/* sources.h: producers proving who they are (source_keys in the rules).
 *
 * A source with a key has its events accepted only on a connection (NNG
 * pipe) that sent a valid SourceHello for it; other events of that source
 * are REJECTED "unauthenticated" and the reply says hello_required. Sources
 * without a key are served as before. A rules reload clears every binding
 * (keys may have changed): producers see hello_required once and sign again.
 * Loop thread only. */
#ifndef LD_INGEST_SOURCES_H
#define LD_INGEST_SOURCES_H

#include <stdint.h>

#include "dispatch/auth.h"
#include "rules/rules.h"

typedef struct ld_source_auth {
    ld_auth auth;             /* replay table of source hellos */
    uint32_t *pipe;           /* per keyed source: the connection bound to it (0: none) */
    const ld_rules *rules;    /* the rule set <pipe> was sized and bound for */
} ld_source_auth;

int ld_source_auth_init(ld_source_auth *sa);
void ld_source_auth_fini(ld_source_auth *sa);

/* ld_source_auth_hello checks a request's hello and binds <pipe> to its
 * source. Returns 0, or -1 with a sentence in <why>. */
int ld_source_auth_hello(ld_source_auth *sa, const ld_rules *r, const Linkd__V1__SourceHello *h,
                         uint32_t pipe, int64_t now_ms, char *why, size_t len);

/* ld_source_auth_allows says whether an event of <source_id> may come on <pipe>. */
int ld_source_auth_allows(ld_source_auth *sa, const ld_rules *r, const char *source_id,
                          uint32_t pipe);

#endif
