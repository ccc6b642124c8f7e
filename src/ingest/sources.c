#include "ingest/sources.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/log.h"

int ld_source_auth_init(ld_source_auth *sa)
{
    memset(sa, 0, sizeof *sa);
    return ld_auth_init(&sa->auth);
}

void ld_source_auth_fini(ld_source_auth *sa)
{
    free(sa->pipe);
    sa->pipe = NULL;
}

/* sync drops every binding when the rule set changed. */
static int sync(ld_source_auth *sa, const ld_rules *r)
{
    if (sa->rules == r) return 0;
    free(sa->pipe);
    sa->pipe = r->nsources ? calloc((size_t)r->nsources, sizeof *sa->pipe) : NULL;
    sa->rules = r->nsources && !sa->pipe ? NULL : r;
    return r->nsources && !sa->pipe ? LD_ENOMEM : 0;
}

int ld_source_auth_hello(ld_source_auth *sa, const ld_rules *r, const Linkd__V1__SourceHello *h,
                         uint32_t pipe, int64_t now_ms, char *why, size_t len)
{
    if (sync(sa, r) != 0) {
        snprintf(why, len, "out of memory: send again");
        return -1;
    }
    const ld_source_key *k = h->source_id ? ld_map_get(&r->source_by_id, h->source_id) : NULL;
    if (!k) {
        snprintf(why, len, "hello.source_id: '%.64s' has no key in the rules (source_keys)",
                 h->source_id ? h->source_id : "");
        return -1;
    }
    if (ld_auth_check_source(&sa->auth, k, h, now_ms, why, len) != 0) return -1;
    sa->pipe[k - r->sources] = pipe;
    ld_log(LD_INFO, "SOURCE-HELLO", "source %s proved its key (connection %u)", k->id, pipe);
    return 0;
}

int ld_source_auth_allows(ld_source_auth *sa, const ld_rules *r, const char *source_id,
                          uint32_t pipe)
{
    if (!r->nsources || !source_id) return 1;
    const ld_source_key *k = ld_map_get(&r->source_by_id, source_id);
    if (!k) return 1;
    if (sync(sa, r) != 0) return 0;
    return pipe && sa->pipe[k - r->sources] == pipe;
}
