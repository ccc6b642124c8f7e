/* send.c: `linkctl send`: build events from the command line, send them to
 * linkd's intake (IngestRequest over REQ) and print one line per result.
 *
 * Enum values are given by their short names (ld_enum_parse), so they are
 * spelled exactly as in the rule files. linkctl checks only what it must to
 * build a message; validation is linkd's, so a bad event is sent as given
 * and the user sees linkd's reason. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

#include "core/clock.h"
#include "rules/rules.h"
#include "tools/linkctl.h"

#define BATCH_MAX 1024          /* linkd rejects larger requests: "too many events" */
#define COUNT_MAX 10000000u     /* a bound for --count, far above any sane use */

enum opt {
    O_INGEST = 256, O_KIND, O_STATUS, O_EVENT_ID, O_SOURCE, O_COUNT, O_TIMEOUT, O_QUIET, O_KEY,
    O_DISTRICT, O_GRID, O_LAT, O_LON, O_ADDRESS,
    /* call only */
    O_CATEGORY, O_PRIORITY, O_CALLER, O_PEOPLE,
    /* sensor only */
    O_SENSOR_ID, O_SENSOR_KIND, O_VALUE, O_THRESHOLD, O_UNIT,
    /* petition only */
    O_PETITION_ID, O_ISSUE, O_PETITIONERS, O_PETITIONER_REF, O_BYPASS, O_REPEAT, O_OFFICE,
    /* call and petition */
    O_DESCRIPTION,
};

static const struct option long_opts[] = {
    {"ingest", required_argument, NULL, O_INGEST},
    {"kind", required_argument, NULL, O_KIND},
    {"status", required_argument, NULL, O_STATUS},
    {"event-id", required_argument, NULL, O_EVENT_ID},
    {"source", required_argument, NULL, O_SOURCE},
    {"key", required_argument, NULL, O_KEY},
    {"count", required_argument, NULL, O_COUNT},
    {"timeout", required_argument, NULL, O_TIMEOUT},
    {"quiet", no_argument, NULL, O_QUIET},
    {"district", required_argument, NULL, O_DISTRICT},
    {"grid", required_argument, NULL, O_GRID},
    {"lat", required_argument, NULL, O_LAT},
    {"lon", required_argument, NULL, O_LON},
    {"address", required_argument, NULL, O_ADDRESS},
    {"category", required_argument, NULL, O_CATEGORY},
    {"priority", required_argument, NULL, O_PRIORITY},
    {"caller", required_argument, NULL, O_CALLER},
    {"people", required_argument, NULL, O_PEOPLE},
    {"description", required_argument, NULL, O_DESCRIPTION},
    {"sensor-id", required_argument, NULL, O_SENSOR_ID},
    {"sensor-kind", required_argument, NULL, O_SENSOR_KIND},
    {"value", required_argument, NULL, O_VALUE},
    {"threshold", required_argument, NULL, O_THRESHOLD},
    {"unit", required_argument, NULL, O_UNIT},
    {"petition-id", required_argument, NULL, O_PETITION_ID},
    {"issue", required_argument, NULL, O_ISSUE},
    {"petitioners", required_argument, NULL, O_PETITIONERS},
    {"petitioner-ref", required_argument, NULL, O_PETITIONER_REF},
    {"bypass", no_argument, NULL, O_BYPASS},
    {"repeat", required_argument, NULL, O_REPEAT},
    {"office", required_argument, NULL, O_OFFICE},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

static void usage(void)
{
    puts("Usage: linkctl send --kind call|sensor|petition [options]\n"
         "\n"
         "Send one event (or --count N) to linkd's intake and print each result:\n"
         "  ACCEPTED <event> -> incident <id>   durable in Redis; linkd will act on it\n"
         "  DUPLICATE <event>                   this source sent this event id before\n"
         "  REJECTED <event>: <reason>          bad input; the reason names the field\n"
         "  RETRY_LATER <event>                 linkd is back-pressuring; send again\n"
         "\n"
         "Envelope:\n"
         "  --ingest URL          linkd's intake (default " CTL_INGEST_URL ")\n"
         "  --kind K              call, sensor or petition (required)\n"
         "  --event-id ID         idempotency key (default: unique, from time, pid, counter);\n"
         "                        with --count N each event gets ID-1 ... ID-N\n"
         "  --source SRC          producer id (default linkctl)\n"
         "  --key FILE            prove the source's identity (linkctl keygen --source SRC),\n"
         "                        required when the rules list a key for it (source_keys)\n"
         "  --status S            actual (default), exercise or test\n"
         "Location (any kind):\n"
         "  --district D --grid G --address A --lat X --lon Y\n"
         "110 call (--kind call):\n"
         "  --category C          fire, crime, traffic_accident, medical, rescue, water_supply, ...\n"
         "  --priority P          critical, urgent, normal or low (as set by the call-taker)\n"
         "  --caller C --description T --people N\n"
         "Sensor alarm (--kind sensor):\n"
         "  --sensor-id S --sensor-kind smoke|gas|water_level|crowd_density|geofence|temperature\n"
         "  --value V --threshold T --unit U\n"
         "Petition (--kind petition):\n"
         "  --petition-id P --issue wage_arrears|land_acquisition|... --petitioners N\n"
         "  --petitioner-ref R (repeatable) --bypass (越级) --repeat N --office O --description T\n"
         "Sending:\n"
         "  --count N             send N events (in requests of up to 1024)\n"
         "  --timeout MS          wait at most MS for each reply (default 5000)\n"
         "  --quiet               print only the totals\n"
         "\n"
         "Exit: 0 all accepted or duplicate, 65 some rejected, 75 retry later,\n"
         "69 linkd unreachable, 64 usage.\n"
         "\n"
         "Example:\n"
         "  linkctl send --kind call --category fire --priority critical --district 440106 \\\n"
         "      --grid TH-0412 --address 'Tianhe Rd 385, Bldg 3' --people 4 \\\n"
         "      --description 'Smoke from 6th floor flat, residents trapped'");
}

/* The event, as given on the command line. Strings point into argv. */
typedef struct send_opts {
    const char *url, *event_id, *source;
    int kind, status;
    uint32_t count;
    int timeout_ms;
    bool quiet;
    bool key;                   /* --key: sign a SourceHello into each request */
    uint8_t sk[64];
    Linkd__V1__Location loc;
    bool has_loc;
    Linkd__V1__Call110 call;
    Linkd__V1__SensorAlarm sensor;
    Linkd__V1__Petition petition;
    char *refs[LD_MAX_REFS];
    const char *scoped_opt[LD_KIND_COUNT]; /* first kind-specific option seen, per kind */
} send_opts;

/* Which kind an option belongs to, or LD_KIND_ANY. */
static int opt_scope(int opt)
{
    if (opt >= O_CATEGORY && opt <= O_PEOPLE) return LD_KIND_CALL;
    if (opt >= O_SENSOR_ID && opt <= O_UNIT) return LD_KIND_SENSOR;
    if (opt >= O_PETITION_ID && opt <= O_OFFICE) return LD_KIND_PETITION;
    return LD_KIND_ANY;
}

static const char *opt_name(int opt)
{
    for (const struct option *o = long_opts; o->name; o++)
        if (o->val == opt) return o->name;
    return "?";
}

static int parse_u32_opt(int opt, const char *arg, uint32_t *out)
{
    if (ctl_parse_u32(arg, out) == 0) return 0;
    ctl_usage_error("--%s: '%s' is not a whole number", opt_name(opt), arg);
    return -1;
}

static int parse_double_opt(int opt, const char *arg, double *out)
{
    if (ctl_parse_double(arg, out) == 0) return 0;
    ctl_usage_error("--%s: '%s' is not a number", opt_name(opt), arg);
    return -1;
}

/* apply_opt stores one option into <o>. Returns 0, or -1 after printing why. */
static int apply_opt(send_opts *o, int opt, char *arg)
{
    int v;
    uint32_t u;
    switch (opt) {
    case O_INGEST: o->url = arg; return 0;
    case O_KIND:
        if (strcmp(arg, "call") == 0) o->kind = LD_KIND_CALL;
        else if (strcmp(arg, "sensor") == 0) o->kind = LD_KIND_SENSOR;
        else if (strcmp(arg, "petition") == 0) o->kind = LD_KIND_PETITION;
        else return ctl_usage_error("--kind: unknown value '%s' (known: call, sensor, petition)", arg), -1;
        return 0;
    case O_STATUS:
        if (ctl_parse_enum(&linkd__v1__status__descriptor, "status", arg, &o->status)) return -1;
        return 0;
    case O_EVENT_ID: o->event_id = arg; return 0;
    case O_SOURCE: o->source = arg; return 0;
    case O_KEY:
        if (ctl_load_secret(arg, o->sk) != 0) return -1;
        o->key = true;
        return 0;
    case O_COUNT:
        if (parse_u32_opt(opt, arg, &o->count)) return -1;
        if (o->count == 0 || o->count > COUNT_MAX)
            return ctl_usage_error("--count: must be 1 to %u", COUNT_MAX), -1;
        return 0;
    case O_TIMEOUT:
        if (parse_u32_opt(opt, arg, &u)) return -1;
        if (u == 0 || u > 600000) return ctl_usage_error("--timeout: must be 1 to 600000 ms"), -1;
        o->timeout_ms = (int)u;
        return 0;
    case O_QUIET: o->quiet = true; return 0;
    case O_DISTRICT: o->loc.district = arg; o->has_loc = true; return 0;
    case O_GRID: o->loc.grid = arg; o->has_loc = true; return 0;
    case O_ADDRESS: o->loc.address = arg; o->has_loc = true; return 0;
    case O_LAT:
        o->has_loc = true, o->loc.has_lat = true;
        return parse_double_opt(opt, arg, &o->loc.lat);
    case O_LON:
        o->has_loc = true, o->loc.has_lon = true;
        return parse_double_opt(opt, arg, &o->loc.lon);
    case O_CATEGORY:
        if (ctl_parse_enum(&linkd__v1__call_category__descriptor, "category", arg, &v)) return -1;
        o->call.has_category = true, o->call.category = (Linkd__V1__CallCategory)v;
        return 0;
    case O_PRIORITY:
        if (ctl_parse_enum(&linkd__v1__priority__descriptor, "priority", arg, &v)) return -1;
        o->call.has_priority = true, o->call.priority = (Linkd__V1__Priority)v;
        return 0;
    case O_CALLER: o->call.caller = arg; return 0;
    case O_PEOPLE:
        o->call.has_people = true;
        return parse_u32_opt(opt, arg, &o->call.people);
    case O_DESCRIPTION: o->call.description = arg, o->petition.summary = arg; return 0;
    case O_SENSOR_ID: o->sensor.sensor_id = arg; return 0;
    case O_SENSOR_KIND:
        if (ctl_parse_enum(&linkd__v1__sensor_kind__descriptor, "sensor-kind", arg, &v)) return -1;
        o->sensor.has_kind = true, o->sensor.kind = (Linkd__V1__SensorKind)v;
        return 0;
    case O_VALUE:
        o->sensor.has_value = true;
        return parse_double_opt(opt, arg, &o->sensor.value);
    case O_THRESHOLD:
        o->sensor.has_threshold = true;
        return parse_double_opt(opt, arg, &o->sensor.threshold);
    case O_UNIT: o->sensor.unit = arg; return 0;
    case O_PETITION_ID: o->petition.petition_id = arg; return 0;
    case O_ISSUE:
        if (ctl_parse_enum(&linkd__v1__petition_issue__descriptor, "issue", arg, &v)) return -1;
        o->petition.has_issue = true, o->petition.issue = (Linkd__V1__PetitionIssue)v;
        return 0;
    case O_PETITIONERS:
        o->petition.has_petitioners = true;
        return parse_u32_opt(opt, arg, &o->petition.petitioners);
    case O_PETITIONER_REF:
        if (o->petition.n_petitioner_refs == LD_MAX_REFS)
            return ctl_usage_error("--petitioner-ref: at most %d", LD_MAX_REFS), -1;
        o->refs[o->petition.n_petitioner_refs++] = arg;
        return 0;
    case O_BYPASS: o->petition.has_bypass_level = o->petition.bypass_level = true; return 0;
    case O_REPEAT:
        o->petition.has_repeat_count = true;
        return parse_u32_opt(opt, arg, &o->petition.repeat_count);
    case O_OFFICE: o->petition.target_office = arg; return 0;
    default: return ctl_usage_error("unexpected option"), -1;
    }
}

static int parse_args(send_opts *o, int argc, char **argv)
{
    int opt;
    optind = 0; /* glibc: full re-initialisation of getopt */
    while ((opt = getopt_long(argc, argv, "hq", long_opts, NULL)) != -1) {
        if (opt == 'h') {
            usage();
            exit(0);
        }
        if (opt == 'q') opt = O_QUIET;
        if (opt == '?') return ctl_usage_error("bad option"), -1;
        int scope = opt_scope(opt);
        if (scope != LD_KIND_ANY && !o->scoped_opt[scope]) o->scoped_opt[scope] = opt_name(opt);
        if (apply_opt(o, opt, optarg)) return -1;
    }
    if (optind < argc) return ctl_usage_error("unexpected argument '%s'", argv[optind]), -1;
    if (o->kind == LD_KIND_ANY) return ctl_usage_error("--kind is required (call, sensor or petition)"), -1;
    for (int k = LD_KIND_CALL; k < LD_KIND_COUNT; k++)
        if (k != o->kind && o->scoped_opt[k])
            return ctl_usage_error("--%s is for --kind %s, not %s", o->scoped_opt[k], ld_kind_name(k),
                                   ld_kind_name(o->kind)), -1;
    if (o->kind == LD_KIND_SENSOR && (o->call.description || o->petition.summary))
        return ctl_usage_error("--description is for calls and petitions; a sensor alarm has none"), -1;
    o->petition.petitioner_refs = o->refs;
    return 0;
}

/* fill_template points the envelope's body at the parsed call, sensor or petition. */
static void fill_template(send_opts *o, Linkd__V1__Envelope *e)
{
    Linkd__V1__Location *loc = o->has_loc ? &o->loc : NULL;
    e->source_id = (char *)o->source;
    e->has_status = true;
    e->status = (Linkd__V1__Status)o->status;
    switch (o->kind) {
    case LD_KIND_CALL:
        o->call.location = loc;
        e->body_case = LINKD__V1__ENVELOPE__BODY_CALL, e->call = &o->call;
        break;
    case LD_KIND_SENSOR:
        o->sensor.location = loc;
        e->body_case = LINKD__V1__ENVELOPE__BODY_SENSOR, e->sensor = &o->sensor;
        break;
    default:
        o->petition.location = loc;
        e->body_case = LINKD__V1__ENVELOPE__BODY_PETITION, e->petition = &o->petition;
        break;
    }
}

/* send_batch sends events [first, first+n) and prints their results. */
static int send_batch(nng_socket s, send_opts *o, const Linkd__V1__Envelope *tmpl, uint64_t first,
                      size_t n, ctl_ingest_totals *t, bool colour)
{
    static Linkd__V1__Envelope ev[BATCH_MAX];
    static Linkd__V1__Envelope *evp[BATCH_MAX];
    static char ids[BATCH_MAX][LD_MAX_ID_LEN + 1];
    static unsigned counter;
    uint64_t now = ld_wall_ms();

    for (size_t i = 0; i < n; i++) {
        ev[i] = *tmpl;
        if (o->event_id && o->count == 1)
            snprintf(ids[i], sizeof ids[i], "%s", o->event_id);
        else if (o->event_id)
            snprintf(ids[i], sizeof ids[i], "%s-%llu", o->event_id, (unsigned long long)(first + i + 1));
        else
            snprintf(ids[i], sizeof ids[i], "ev-%llu-%ld-%u", (unsigned long long)now, (long)getpid(),
                     counter++);
        ev[i].event_id = ids[i];
        ev[i].has_occurred_at_ms = true;
        ev[i].occurred_at_ms = (int64_t)now;
        evp[i] = &ev[i];
    }
    Linkd__V1__IngestRequest req = LINKD__V1__INGEST_REQUEST__INIT;
    req.n_events = n;
    req.events = evp;
    ctl_source_hello hello;
    if (o->key) {
        ctl_sign_source_hello(&hello, o->source, o->sk);
        req.hello = &hello.pb;
    }

    Linkd__V1__IngestReply *rep = NULL;
    int rv = ctl_ingest_exchange(s, &req, &rep);
    if (rv == NNG_EPROTO) {
        ctl_warn("linkd's reply could not be decoded (is %s linkd's intake?)", o->url);
        t->unanswered += n;
        return EX_PROTOCOL;
    }
    if (rv != 0) {
        ctl_warn("no answer from linkd at %s: %s", o->url, nng_strerror(rv));
        t->unreachable = true;
        t->unanswered += n;
        return EX_UNAVAILABLE;
    }
    /* One result per event, in order; a request linkd could not decode at all
     * gets a single REJECTED result, which stands for every event. */
    for (size_t i = 0; i < rep->n_results; i++) {
        if (!o->quiet) ctl_print_result(rep->results[i], i < n ? ids[i] : "?", colour);
        ctl_ingest_count(t, rep->results[i]->result);
    }
    if (rep->n_results != n) {
        if (rep->n_results != 1) ctl_warn("linkd sent %zu results for %zu events", rep->n_results, n);
        if (rep->n_results < n) t->unanswered += n - rep->n_results;
    }
    linkd__v1__ingest_reply__free_unpacked(rep, NULL);
    return 0;
}

int ctl_send_main(int argc, char **argv)
{
    send_opts o = {
        .url = CTL_INGEST_URL, .source = "linkctl", .status = LINKD__V1__STATUS__STATUS_ACTUAL,
        .count = 1, .timeout_ms = 5000,
        .loc = LINKD__V1__LOCATION__INIT, .call = LINKD__V1__CALL110__INIT,
        .sensor = LINKD__V1__SENSOR_ALARM__INIT, .petition = LINKD__V1__PETITION__INIT,
    };
    if (parse_args(&o, argc, argv)) return EX_USAGE;

    Linkd__V1__Envelope tmpl = LINKD__V1__ENVELOPE__INIT;
    fill_template(&o, &tmpl);

    nng_socket s;
    int rv = ctl_req_open(&s, o.url, false);
    if (rv != 0) {
        ctl_warn("cannot connect to linkd at %s: %s", o.url, nng_strerror(rv));
        return rv == NNG_EADDRINVAL || rv == NNG_ENOTSUP ? EX_USAGE : EX_UNAVAILABLE;
    }
    nng_socket_set_ms(s, NNG_OPT_SENDTIMEO, o.timeout_ms);
    nng_socket_set_ms(s, NNG_OPT_RECVTIMEO, o.timeout_ms);

    bool colour = ctl_colour();
    ctl_ingest_totals t = {0};
    for (uint64_t sent = 0; sent < o.count && !t.unreachable;) {
        size_t n = o.count - sent < BATCH_MAX ? (size_t)(o.count - sent) : BATCH_MAX;
        if (send_batch(s, &o, &tmpl, sent, n, &t, colour) == EX_PROTOCOL) break;
        sent += n;
    }
    ctl_nng_close(s);
    if (o.count > 1 || o.quiet)
        printf("sent %u: %llu accepted, %llu duplicate, %llu rejected, %llu retry later%s\n", o.count,
               (unsigned long long)t.accepted, (unsigned long long)t.duplicate,
               (unsigned long long)t.rejected, (unsigned long long)t.retry,
               t.unanswered ? ", some unanswered" : "");
    return ctl_ingest_exit(&t);
}
