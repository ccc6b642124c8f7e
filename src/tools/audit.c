/* audit.c: `linkctl audit <incident>`: print an incident's audit trail from
 * Redis and verify its hash chain (src/audit/audit.h says how it is built). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include <hiredis/hiredis.h>

#include "audit/audit.h"
#include "tools/linkctl.h"

#define ZERO_HASH "0000000000000000000000000000000000000000000000000000000000000000"

static void usage(void)
{
    puts("Usage: linkctl audit [--redis URL] [--quiet] INCIDENT\n"
         "\n"
         "Print the audit trail of INCIDENT (every state change linkd recorded, in\n"
         "order, from the Redis list ld:audit:INCIDENT) and verify its hash chain:\n"
         "each entry carries the SHA-256 of the previous one, so an entry changed,\n"
         "removed or moved breaks the chain from there on.\n"
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
    bool colour = ctl_colour();
    char prev[65] = ZERO_HASH, hash[65], why[200];
    size_t bad = 0, first_bad = 0, repeats = 0;
    for (size_t i = 0; i < r->elements; i++) {
        const redisReply *e = r->element[i];
        if (e->type != REDIS_REPLY_STRING) continue;
        if (i > 0 && r->element[i - 1]->type == REDIS_REPLY_STRING &&
            r->element[i - 1]->len == e->len && memcmp(r->element[i - 1]->str, e->str, e->len) == 0) {
            repeats++; /* a write retried after a lost connection: the same entry again */
            continue;
        }
        int rv = ld_audit_line_check(e->str, e->len, prev, hash, why, sizeof why);
        if (rv != 0 && !bad++) first_bad = i + 1;
        if (!quiet) print_entry(e->str, rv == 0 ? "ok" : why, colour);
        memcpy(prev, hash, sizeof prev);
    }
    if (bad)
        printf("%s: audit trail BROKEN: %zu of %zu entries fail, the first at position %zu\n",
               inc, bad, r->elements - repeats, first_bad);
    else
        printf("%s: audit trail intact: %zu entries, chain verified (last hash %.16s...)%s\n",
               inc, r->elements - repeats, prev, repeats ? " (repeated writes skipped)" : "");
    freeReplyObject(r);
    redisFree(c);
    return bad ? EX_DATAERR : EX_OK;
}
