/* audit.c: `linkctl audit <incident>`: print an incident's audit trail from
 * Redis and verify its hash chain (src/audit/audit.h says how it is built). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include <hiredis/hiredis.h>

#include "audit/audit.h"
#include "core/err.h"
#include "tools/linkctl.h"

static void usage(void)
{
    puts("Usage: linkctl audit [--redis URL] [--quiet] INCIDENT\n"
         "\n"
         "Print the audit trail of INCIDENT (every state change linkd recorded, in\n"
         "order, from the Redis list ld:audit:INCIDENT) and verify its hash chain:\n"
         "each entry is hashed with the one before it (SHA-256), and the last entry\n"
         "of each write shows the hash, so an entry changed, removed or moved\n"
         "breaks the chain from its write on.\n"
         "\n"
         "  --redis URL   redis://[user[:password]@]host:port[/db] or unix:///path\n"
         "                (default " CTL_REDIS_URL "); a user without a password reads it\n"
         "                from the file LINKCTL_REDIS_PASSWORD_FILE names\n"
         "  --quiet       print only the verdict\n"
         "\n"
         "Exit: 0 the chain is intact, 65 it is broken (the first bad entry is named),\n"
         "66 no trail for INCIDENT, 69 Redis unreachable.");
}

/* field copies the value of "<key>": in a line (a string's content, or a
 * number) into <out>; "" if absent. */
static const char *field(const char *line, const char *key, char *out, size_t len)
{
    char k[40];
    snprintf(k, sizeof k, "\"%s\":", key);
    const char *p = strstr(line, k);
    out[0] = '\0';
    if (!p) return out;
    p += strlen(k);
    size_t n = 0;
    if (*p == '"') {
        for (p++; *p && *p != '"' && n + 1 < len; p++) {
            if (*p == '\\' && p[1]) p++;
            out[n++] = *p;
        }
    } else {
        while (*p && *p != ',' && *p != '}' && n + 1 < len) out[n++] = *p++;
    }
    out[n] = '\0';
    return out;
}

static void print_entry(const char *line, const char *verdict, bool colour)
{
    char n[24], at[24], kind[40], task[40], level[8], term[56], leg[16], state[24], actor[168],
        reason[168], clock[16], safe[200];
    field(line, "n", n, sizeof n);
    ctl_fmt_clock(strtoll(field(line, "at", at, sizeof at), NULL, 10), clock, sizeof clock);
    printf("%s#%-3s %s  %-20s", colour && strcmp(verdict, "ok") ? CTL_RED : "", n, clock,
           field(line, "kind", kind, sizeof kind));
    if (*field(line, "task", task, sizeof task))
        printf(" %s L%s %s %s", task, field(line, "level", level, sizeof level),
               field(line, "terminal", term, sizeof term), field(line, "state", state, sizeof state));
    if (*field(line, "leg", leg, sizeof leg)) printf(" leg %s", leg);
    if (*field(line, "actor", actor, sizeof actor))
        printf(" by %s: %s", ctl_sanitize(actor, safe, sizeof safe),
               field(line, "reason", reason, sizeof reason));
    printf("  [%s]%s\n", verdict, colour && strcmp(verdict, "ok") ? CTL_RESET : "");
}

struct printing {
    bool colour, quiet;
};

static void entry_heard(void *arg, const char *line, size_t len, const char *verdict)
{
    const struct printing *p = arg;
    (void)len; /* a Redis reply's string ends in a NUL */
    if (!p->quiet) print_entry(line, verdict, p->colour);
}

int ctl_audit_main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"redis", required_argument, NULL, 'r'},
        {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *url = CTL_REDIS_URL;
    bool quiet = false;
    int opt;
    optind = 0;
    while ((opt = getopt_long(argc, argv, "hqr:", opts, NULL)) != -1) {
        switch (opt) {
        case 'r': url = optarg; break;
        case 'q': quiet = true; break;
        case 'h': usage(); return 0;
        default: return ctl_usage_error("bad option");
        }
    }
    if (optind + 1 != argc) return ctl_usage_error("give one incident id");
    const char *inc = argv[optind];
    redisContext *c = ctl_redis_connect(url);
    if (!c) {
        return EX_UNAVAILABLE;
    }
    redisReply *r = redisCommand(c, "LRANGE ld:audit:%s 0 -1", inc);
    if (!r || r->type != REDIS_REPLY_ARRAY) {
        ctl_warn("LRANGE ld:audit:%s failed: %s", inc, r && r->str ? r->str : c->errstr);
        if (r) freeReplyObject(r);
        redisFree(c);
        return EX_UNAVAILABLE;
    }
    if (r->elements == 0) {
        ctl_warn("no audit trail for %s", inc);
        freeReplyObject(r);
        redisFree(c);
        return EX_NOINPUT;
    }
    const char **lines = calloc(r->elements, sizeof *lines);
    size_t *lens = calloc(r->elements, sizeof *lens);
    if (!lines || !lens) {
        ctl_warn("out of memory for %zu entries", r->elements);
        free(lines), free(lens);
        freeReplyObject(r);
        redisFree(c);
        return EX_OSERR;
    }
    for (size_t i = 0; i < r->elements; i++) {
        const redisReply *e = r->element[i];
        lines[i] = e->type == REDIS_REPLY_STRING ? e->str : "";
        lens[i] = e->type == REDIS_REPLY_STRING ? e->len : 0;
    }
    struct printing p = {ctl_colour(), quiet};
    ld_audit_verdict v;
    int rv = ld_audit_trail_check(lines, lens, r->elements, entry_heard, &p, &v);
    if (rv == LD_ENOMEM) {
        ctl_warn("out of memory checking %zu entries", r->elements);
    } else if (v.bad) {
        printf("%s: audit trail BROKEN: %zu of %zu entries fail, the first at position %zu: %s\n",
               inc, v.bad, v.entries, v.first_bad, v.why);
    } else {
        printf("%s: audit trail intact: %zu entries, chain verified (last hash %.16s...)%s\n",
               inc, v.entries, v.last_hash, v.repeats ? " (repeated writes skipped)" : "");
    }
    free(lines), free(lens);
    freeReplyObject(r);
    redisFree(c);
    return rv == LD_ENOMEM ? EX_OSERR : v.bad ? EX_DATAERR : EX_OK;
}
