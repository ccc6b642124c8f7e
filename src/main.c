/* linkd: the emergency linkage dispatch daemon. argv, then the loop. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include "core/diag.h"
#include "core/log.h"
#include "core/tls.h"
#include "daemon/daemon.h"
#include "rules/rules.h"

static void usage(FILE *out)
{
    fprintf(out,
        "usage: linkd [options]\n"
        "       linkd --check [--rules DIR]\n"
        "\n"
        "Takes 110 calls, sensor alarms and petitions over NNG, routes each to the\n"
        "departments that must act, dispatches tasks to their on-duty terminals and\n"
        "escalates when a deadline passes. State lives in Redis.\n"
        "\n"
        "  --rules DIR          rule files (default: rules)\n"
        "  --redis URL          redis://[user[:password]@]host:port[/db] or\n"
        "                       unix://[user[:password]@]/path[?db=N] (default: redis://127.0.0.1:6379/0)\n"
        "  --redis-password-file FILE  the Redis password (ACL user from the URL), kept off the command line\n"
        "  --ingest URL         producers' REP socket (default: tcp://127.0.0.1:7450)\n"
        "  --terminals URL      terminals' REP socket (default: tcp://127.0.0.1:7451)\n"
        "  --feed URL           event feed PUB socket (default: tcp://127.0.0.1:7452)\n"
        "  --check              validate the rules, print every error, exit (0 ok, 65 invalid)\n"
        "  --time-scale N       run the domain clock N times faster than real time (demos, tests)\n"
        "  --max-message BYTES  largest message accepted (default: 1048576)\n"
        "  --offline-after SEC  a terminal silent this long is offline (default: 60)\n"
        "  --redis-timeout MS   drop a Redis connection that answers nothing this long (default: 5000)\n"
        "  --dedup-window SEC   a resent event id is a DUPLICATE for at least SEC seconds and at\n"
        "                       most twice that (default: 604800, 7 days)\n"
        "  --flush-ms MS        write incident records behind every MS (default: 20)\n"
        "  --source-rate N      events/s one source may send, burst of one second's worth;\n"
        "                       beyond it that source gets RETRY_LATER (default: 10000; 0: off)\n"
        "  --http [ADDR:]PORT   serve /metrics, /healthz, /readyz, the JSON API and the live\n"
        "                       board on ADDR (default address 127.0.0.1; default: no HTTP)\n"
        "  --board-max N        open incidents a board snapshot carries, the most urgent\n"
        "                       first (default: 2000)\n"
        "  --spool DIR          while Redis is away, accept life-safety events (rules:\n"
        "                       life_safety) into DIR/linkd.spool (fsync'd) and dispatch them;\n"
        "                       copied into Redis when it returns; escalations are fenced\n"
        "                       there meanwhile; started without Redis: READY, degraded,\n"
        "                       taking only those events (default: no spool)\n"
        "  --admin-token-file F the token supervisor actions must send (Authorization: Bearer);\n"
        "                       without it the API is read-only\n"
        "  --tls-cert FILE, --tls-key FILE\n"
        "                       server certificate and key (PEM) for tls+tcp:// endpoints\n"
        "  --tls-ca FILE        require client certificates signed by this CA (mutual TLS)\n"
        "  --insecure-listen    allow plain tcp:// beyond loopback (logged as a warning)\n"
        "  --log-level LEVEL    debug, info, notice, warning or error (default: info)\n"
        "  --log-format FORMAT  json (one object per line), text, or journal\n"
        "                       (default: journal under systemd, else json)\n"
        "  --help, --version\n"
        "\n"
        "Exit codes (sysexits.h): 0 ok, 64 usage, 65 invalid rules, 69 cannot listen,\n"
        "70 internal, 78 configuration (TLS files, password file, an insecure listen).\n"
        "SIGHUP reloads the rules (same departments and terminals; otherwise restart).\n"
        "SIGTERM or SIGINT drains intake, writes what is pending to Redis and exits 0.\n");
}

static int check(const ld_options *o)
{
    const char *dir = o->rules_dir;
    if (o->tls_cert || o->tls_key || o->tls_ca) {
        ld_tls_files f = {.cert = o->tls_cert, .key = o->tls_key, .ca = o->tls_ca};
        char why[512];
        if (ld_tls_check_files(&f, why, sizeof why) != 0) {
            fprintf(stderr, "linkd: %s\n", why);
            return EX_CONFIG;
        }
        printf("TLS OK: %s matches %s%s%s\n", o->tls_cert, o->tls_key,
               o->tls_ca ? ", client CA " : "", o->tls_ca ? o->tls_ca : "");
    }
    ld_rules *r = NULL;
    ld_diag diag;
    ld_diag_init(&diag);
    int rv = ld_rules_load(&r, dir, &diag);
    ld_diag_print(&diag, stderr);
    if (rv != 0) {
        fprintf(stderr, "linkd: %zu error%s, %zu warning%s; rules NOT loaded\n", diag.nerrors,
                diag.nerrors == 1 ? "" : "s", diag.nwarnings, diag.nwarnings == 1 ? "" : "s");
        ld_diag_fini(&diag);
        return EX_DATAERR;
    }
    printf("rules OK: %s: %d departments, %d terminals, %d routes, %d correlation rules "
           "(version %s), %zu warning%s\n",
           dir, r->ndepartments, r->nterminals, r->nroutes, r->ncorrelations, r->version,
           diag.nwarnings,
           diag.nwarnings == 1 ? "" : "s");
    ld_rules_free(r);
    ld_diag_fini(&diag);
    return EX_OK;
}

static int parse_number(const char *opt, const char *s, double min, double max, double *out)
{
    char *end;
    double v = strtod(s, &end);
    if (end == s || *end || v < min || v > max) {
        fprintf(stderr, "linkd: %s: '%s' is not a number in [%g, %g]\n", opt, s, min, max);
        return -1;
    }
    *out = v;
    return 0;
}

int main(int argc, char **argv)
{
    enum { O_RULES = 256, O_REDIS, O_INGEST, O_TERMINALS, O_FEED, O_CHECK, O_SCALE, O_MAXMSG,
           O_OFFLINE, O_RTIMEOUT, O_DEDUP, O_FLUSH, O_SRATE, O_HTTP, O_TOKEN, O_SPOOL, O_LOGLEVEL, O_HELP,
           O_VERSION, O_RPASSFILE, O_LOGFORMAT, O_TLSCERT, O_TLSKEY, O_TLSCA, O_INSECURE,
           O_BOARDMAX };
    static const struct option opts[] = {
        {"rules", required_argument, NULL, O_RULES},
        {"redis", required_argument, NULL, O_REDIS},
        {"ingest", required_argument, NULL, O_INGEST},
        {"terminals", required_argument, NULL, O_TERMINALS},
        {"feed", required_argument, NULL, O_FEED},
        {"check", no_argument, NULL, O_CHECK},
        {"time-scale", required_argument, NULL, O_SCALE},
        {"max-message", required_argument, NULL, O_MAXMSG},
        {"offline-after", required_argument, NULL, O_OFFLINE},
        {"redis-timeout", required_argument, NULL, O_RTIMEOUT},
        {"dedup-window", required_argument, NULL, O_DEDUP},
        {"redis-password-file", required_argument, NULL, O_RPASSFILE},
        {"flush-ms", required_argument, NULL, O_FLUSH},
        {"source-rate", required_argument, NULL, O_SRATE},
        {"http", required_argument, NULL, O_HTTP},
        {"board-max", required_argument, NULL, O_BOARDMAX},
        {"admin-token-file", required_argument, NULL, O_TOKEN},
        {"spool", required_argument, NULL, O_SPOOL},
        {"log-level", required_argument, NULL, O_LOGLEVEL},
        {"log-format", required_argument, NULL, O_LOGFORMAT},
        {"tls-cert", required_argument, NULL, O_TLSCERT},
        {"tls-key", required_argument, NULL, O_TLSKEY},
        {"tls-ca", required_argument, NULL, O_TLSCA},
        {"insecure-listen", no_argument, NULL, O_INSECURE},
        {"help", no_argument, NULL, O_HELP},
        {"version", no_argument, NULL, O_VERSION},
        {NULL, 0, NULL, 0},
    };
    ld_options o;
    ld_options_defaults(&o);
    int do_check = 0, log_format_set = 0, c;
    double v;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case O_RULES: o.rules_dir = optarg; break;
        case O_REDIS: o.redis_url = optarg; break;
        case O_RPASSFILE: o.redis_password_file = optarg; break;
        case O_TLSCERT: o.tls_cert = optarg; break;
        case O_TLSKEY: o.tls_key = optarg; break;
        case O_TLSCA: o.tls_ca = optarg; break;
        case O_INSECURE: o.insecure_listen = 1; break;
        case O_INGEST: o.ingest_url = optarg; break;
        case O_TERMINALS: o.terminals_url = optarg; break;
        case O_FEED: o.feed_url = optarg; break;
        case O_CHECK: do_check = 1; break;
        case O_SCALE:
            if (parse_number("--time-scale", optarg, 1, 1e6, &v)) return EX_USAGE;
            o.time_scale = v;
            break;
        case O_MAXMSG:
            if (parse_number("--max-message", optarg, 1024, 64 << 20, &v)) return EX_USAGE;
            o.max_message = (size_t)v;
            break;
        case O_OFFLINE:
            if (parse_number("--offline-after", optarg, 1, 86400, &v)) return EX_USAGE;
            o.offline_after_ms = (uint64_t)(v * 1000);
            break;
        case O_RTIMEOUT:
            if (parse_number("--redis-timeout", optarg, 100, 600000, &v)) return EX_USAGE;
            o.redis_timeout_ms = (uint64_t)v;
            break;
        case O_DEDUP:
            if (parse_number("--dedup-window", optarg, 1, 31536000, &v)) return EX_USAGE;
            o.dedup_window_s = (uint64_t)v;
            break;
        case O_FLUSH:
            if (parse_number("--flush-ms", optarg, 1, 10000, &v)) return EX_USAGE;
            o.flush_ms = (uint64_t)v;
            break;
        case O_SRATE:
            if (parse_number("--source-rate", optarg, 0, 1e7, &v)) return EX_USAGE;
            o.source_rate = v;
            break;
        case O_HTTP: o.http_listen = optarg; break;
        case O_BOARDMAX:
            if (parse_number("--board-max", optarg, 1, 100000, &v)) return EX_USAGE;
            o.board_max = (size_t)v;
            break;
        case O_SPOOL: o.spool_dir = optarg; break;
        case O_TOKEN: o.admin_token_file = optarg; break;
        case O_LOGFORMAT:
            if ((ld_log_format = ld_log_parse_format(optarg)) < 0) {
                fprintf(stderr, "linkd: --log-format: expected json, text or journal, not '%s'\n",
                        optarg);
                return EX_USAGE;
            }
            log_format_set = 1;
            break;
        case O_LOGLEVEL:
            if ((ld_log_level = ld_log_parse_level(optarg)) < 0) {
                fprintf(stderr, "linkd: --log-level: unknown level '%s'\n", optarg);
                return EX_USAGE;
            }
            break;
        case O_HELP: usage(stdout); return EX_OK;
        case O_VERSION: printf("linkd %s\n", LINKD_VERSION); return EX_OK;
        default: usage(stderr); return EX_USAGE;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "linkd: unexpected argument '%s'\n", argv[optind]);
        usage(stderr);
        return EX_USAGE;
    }
    if (!log_format_set) {
        ld_log_format = LD_LOG_JSON;
        ld_log_auto(); /* the journal when stderr is systemd's journal stream */
    }
    if (do_check) return check(&o);
    return ld_daemon_run(&o);
}
