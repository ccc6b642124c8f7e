/* gen.c: realistic intake events for linkload.
 *
 * A run sends a mix of 110 calls, sensor alarms and petitions spread over
 * the eleven districts of a large city, so that linkd's correlation sees the
 * variety it would see in production rather than one hot spot. Everything is
 * built in scratch storage owned by the generator and packed straight into an
 * NNG message: no allocation per event. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "linkload.h"
#include "rules/rules.h"

/* ---- the mix ------------------------------------------------------------ */

typedef struct weighted {
    int value;
    double weight;
} weighted;

/* Shares (percent of all events) from the kind of traffic a city 110 centre
 * and its linkage partners see: mostly crime, traffic and disputes, a steady
 * flow of non-police public-service requests, a few life-safety emergencies. */
static const weighted CALL_MIX[] = {
    {LINKD__V1__CALL_CATEGORY__CALL_CATEGORY_CRIME, 14},
    {LINKD__V1__CALL_CATEGORY__CALL_CATEGORY_TRAFFIC_ACCIDENT, 14},
    {LINKD__V1__CALL_CATEGORY__CALL_CATEGORY_DISPUTE, 10},
    {LINKD__V1__CALL_CATEGORY__CALL_CATEGORY_PUBLIC_ORDER, 7},
    {LINKD__V1__CALL_CATEGORY__CALL_CATEGORY_MEDICAL, 7},
    {LINKD__V1__CALL_CATEGORY__CALL_CATEGORY_NOISE, 5},
    {LINKD__V1__CALL_CATEGORY__CALL_CATEGORY_RESCUE, 4},
    {LINKD__V1__CALL_CATEGORY__CALL_CATEGORY_FIRE, 3},
    {LINKD__V1__CALL_CATEGORY__CALL_CATEGORY_WATER_SUPPLY, 2.5},
    {LINKD__V1__CALL_CATEGORY__CALL_CATEGORY_POWER_OUTAGE, 2.5},
    {LINKD__V1__CALL_CATEGORY__CALL_CATEGORY_GAS_SUPPLY, 1},
    {LINKD__V1__CALL_CATEGORY__CALL_CATEGORY_HEATING, 1},
    {LINKD__V1__CALL_CATEGORY__CALL_CATEGORY_STRAY_ANIMAL, 2},
    {LINKD__V1__CALL_CATEGORY__CALL_CATEGORY_VULNERABLE_PERSON, 2},
    {LINKD__V1__CALL_CATEGORY__CALL_CATEGORY_ROAD_HAZARD, 2},
    {LINKD__V1__CALL_CATEGORY__CALL_CATEGORY_FLOODING, 1},
    {LINKD__V1__CALL_CATEGORY__CALL_CATEGORY_GAS_LEAK, 1},
    {LINKD__V1__CALL_CATEGORY__CALL_CATEGORY_EXPLOSION, 0.2},
    {LINKD__V1__CALL_CATEGORY__CALL_CATEGORY_OTHER, 0.8},
};
static const weighted SENSOR_MIX[] = {
    {LINKD__V1__SENSOR_KIND__SENSOR_KIND_SMOKE, 5},
    {LINKD__V1__SENSOR_KIND__SENSOR_KIND_GAS, 3},
    {LINKD__V1__SENSOR_KIND__SENSOR_KIND_WATER_LEVEL, 2},
    {LINKD__V1__SENSOR_KIND__SENSOR_KIND_CROWD_DENSITY, 2},
    {LINKD__V1__SENSOR_KIND__SENSOR_KIND_GEOFENCE, 2},
    {LINKD__V1__SENSOR_KIND__SENSOR_KIND_TEMPERATURE, 1},
};
static const weighted PETITION_MIX[] = {
    {LINKD__V1__PETITION_ISSUE__PETITION_ISSUE_LAND_ACQUISITION, 0.8},
    {LINKD__V1__PETITION_ISSUE__PETITION_ISSUE_DEMOLITION, 0.6},
    {LINKD__V1__PETITION_ISSUE__PETITION_ISSUE_WAGE_ARREARS, 1.2},
    {LINKD__V1__PETITION_ISSUE__PETITION_ISSUE_ENVIRONMENT, 0.6},
    {LINKD__V1__PETITION_ISSUE__PETITION_ISSUE_LAW_ENFORCEMENT, 0.5},
    {LINKD__V1__PETITION_ISSUE__PETITION_ISSUE_SOCIAL_SECURITY, 0.5},
    {LINKD__V1__PETITION_ISSUE__PETITION_ISSUE_HOUSING, 0.5},
    {LINKD__V1__PETITION_ISSUE__PETITION_ISSUE_OTHER, 0.3},
};

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

typedef struct kind_table {
    int kind;
    const char *name;
    const weighted *mix;
    size_t n;
    const ProtobufCEnumDescriptor *desc;
} kind_table;

static const kind_table KINDS[] = {
    {LD_KIND_CALL, "call", CALL_MIX, NELEM(CALL_MIX), &linkd__v1__call_category__descriptor},
    {LD_KIND_SENSOR, "sensor", SENSOR_MIX, NELEM(SENSOR_MIX), &linkd__v1__sensor_kind__descriptor},
    {LD_KIND_PETITION, "petition", PETITION_MIX, NELEM(PETITION_MIX),
     &linkd__v1__petition_issue__descriptor},
};

static int mix_add(lg_mix *m, int kind, int value, double weight)
{
    for (int i = 0; i < m->n; i++)
        if (m->e[i].kind == kind && m->e[i].value == value) {
            m->e[i].weight += weight;
            m->total += weight;
            return 0;
        }
    if (m->n == LG_MAX_MIX) return LD_EINVAL;
    m->e[m->n++] = (lg_mix_entry){kind, value, weight};
    m->total += weight;
    return 0;
}

/* mix_add_kind spreads <share> over the categories of <k> like the default mix. */
static void mix_add_kind(lg_mix *m, const kind_table *k, double share)
{
    double sum = 0;
    for (size_t i = 0; i < k->n; i++) sum += k->mix[i].weight;
    for (size_t i = 0; i < k->n; i++) (void)mix_add(m, k->kind, k->mix[i].value, share * k->mix[i].weight / sum);
}

void lg_mix_default(lg_mix *m)
{
    memset(m, 0, sizeof *m);
    for (size_t k = 0; k < NELEM(KINDS); k++)
        for (size_t i = 0; i < KINDS[k].n; i++)
            (void)mix_add(m, KINDS[k].kind, KINDS[k].mix[i].value, KINDS[k].mix[i].weight);
}

/* mix_lookup resolves a key of --mix: "sensor", "smoke", "sensor.smoke".
 * A bare category name is looked up in calls, then sensors, then petitions.
 * Returns the kind table and sets *value (0 for a whole kind), or NULL. */
static const kind_table *mix_lookup(const char *key, int *value)
{
    const char *dot = strchr(key, '.');
    for (size_t k = 0; k < NELEM(KINDS); k++) {
        const kind_table *t = &KINDS[k];
        if (!dot && strcmp(key, t->name) == 0) {
            *value = 0;
            return t;
        }
        if (dot && ((size_t)(dot - key) != strlen(t->name) || strncmp(key, t->name, (size_t)(dot - key)) != 0))
            continue;
        if (ld_enum_parse(t->desc, dot ? dot + 1 : key, value) == 0) return t;
    }
    return NULL;
}

int lg_mix_add_key(lg_mix *m, const char *key, double weight)
{
    int value = 0;
    const kind_table *t = mix_lookup(key, &value);
    if (!t) return LD_ENOENT;
    if (value == 0) {
        mix_add_kind(m, t, weight);
        return 0;
    }
    return mix_add(m, t->kind, value, weight);
}

int lg_mix_parse(lg_mix *m, const char *spec, char *err, size_t errlen)
{
    char buf[1024];
    if (strlen(spec) >= sizeof buf) {
        snprintf(err, errlen, "--mix: too long");
        return LD_EINVAL;
    }
    strcpy(buf, spec);
    memset(m, 0, sizeof *m);
    char *save = NULL;
    for (char *item = strtok_r(buf, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(item, '=');
        char *end = NULL;
        double w = eq ? strtod(eq + 1, &end) : -1;
        if (!eq || end == eq + 1 || *end || !(w >= 0) || !isfinite(w)) {
            snprintf(err, errlen, "--mix: '%s' is not name=weight", item);
            return LD_EINVAL;
        }
        *eq = '\0';
        int rv = lg_mix_add_key(m, item, w);
        if (rv == LD_ENOENT) {
            snprintf(err, errlen,
                     "--mix: unknown '%s' (a kind: call, sensor, petition; or a category "
                     "name, e.g. fire, smoke, housing; or kind.category)",
                     item);
            return LD_EINVAL;
        }
        if (rv != 0) {
            snprintf(err, errlen, "--mix: too many entries");
            return LD_EINVAL;
        }
    }
    if (!(m->total > 0)) {
        snprintf(err, errlen, "--mix: the weights add up to 0");
        return LD_EINVAL;
    }
    return 0;
}

/* ---- the generator ------------------------------------------------------ */

/* Scratch storage for one event: the message structs and their strings. */
typedef struct ev_slot {
    Linkd__V1__Envelope env;
    Linkd__V1__Location loc;
    union {
        Linkd__V1__Call110 call;
        Linkd__V1__SensorAlarm sensor;
        Linkd__V1__Petition petition;
    } body;
    char event_id[48];
    char ref[40];                 /* caller, sensor id or petition id */
    char grid[16];
    char address[48];
    char prefs[3][16];
    char *prefs_ptr[3];
} ev_slot;

struct lg_gen {
    char run_id[32];
    char source_id[64];
    uint64_t rng;
    ev_slot *slots;               /* LG_MAX_BATCH of them */
    Linkd__V1__Envelope **events; /* pointers into slots, for IngestRequest */
};

/* Districts of Guangzhou: code and name, so addresses read like real ones. */
static const struct {
    const char *code, *name;
} DISTRICTS[] = {
    {"440103", "Liwan"},   {"440104", "Yuexiu"}, {"440105", "Haizhu"},
    {"440106", "Tianhe"},  {"440111", "Baiyun"}, {"440112", "Huangpu"},
    {"440113", "Panyu"},   {"440114", "Huadu"},  {"440115", "Nansha"},
    {"440117", "Conghua"}, {"440118", "Zengcheng"},
};

static const char *CALL_TEXT[] = {
    [LINKD__V1__CALL_CATEGORY__CALL_CATEGORY_FIRE] = "smoke and flames from a flat window",
    [LINKD__V1__CALL_CATEGORY__CALL_CATEGORY_CRIME] = "phone snatched near the metro exit",
    [LINKD__V1__CALL_CATEGORY__CALL_CATEGORY_TRAFFIC_ACCIDENT] = "two cars collided at the crossing",
    [LINKD__V1__CALL_CATEGORY__CALL_CATEGORY_MEDICAL] = "elderly man collapsed on the pavement",
    [LINKD__V1__CALL_CATEGORY__CALL_CATEGORY_RESCUE] = "child locked inside a car",
    [LINKD__V1__CALL_CATEGORY__CALL_CATEGORY_DISPUTE] = "neighbours arguing over a parking space",
    [LINKD__V1__CALL_CATEGORY__CALL_CATEGORY_PUBLIC_ORDER] = "crowd gathering outside a restaurant",
    [LINKD__V1__CALL_CATEGORY__CALL_CATEGORY_GAS_LEAK] = "strong smell of gas in the stairwell",
    [LINKD__V1__CALL_CATEGORY__CALL_CATEGORY_EXPLOSION] = "loud explosion at a shop front",
    [LINKD__V1__CALL_CATEGORY__CALL_CATEGORY_WATER_SUPPLY] = "no running water since morning",
    [LINKD__V1__CALL_CATEGORY__CALL_CATEGORY_POWER_OUTAGE] = "power cut in the whole building",
    [LINKD__V1__CALL_CATEGORY__CALL_CATEGORY_GAS_SUPPLY] = "piped gas supply interrupted",
    [LINKD__V1__CALL_CATEGORY__CALL_CATEGORY_HEATING] = "heating broken in a care home",
    [LINKD__V1__CALL_CATEGORY__CALL_CATEGORY_NOISE] = "construction noise after midnight",
    [LINKD__V1__CALL_CATEGORY__CALL_CATEGORY_STRAY_ANIMAL] = "stray dog chasing children",
    [LINKD__V1__CALL_CATEGORY__CALL_CATEGORY_VULNERABLE_PERSON] = "confused elderly woman wandering",
    [LINKD__V1__CALL_CATEGORY__CALL_CATEGORY_ROAD_HAZARD] = "manhole cover missing on the road",
    [LINKD__V1__CALL_CATEGORY__CALL_CATEGORY_FLOODING] = "underpass flooded, car stuck",
    [LINKD__V1__CALL_CATEGORY__CALL_CATEGORY_OTHER] = "caller requests assistance",
};

/* Sensor readings: value range above the threshold, and the unit. */
static const struct {
    double threshold, span;
    const char *unit;
} SENSOR_READING[] = {
    [LINKD__V1__SENSOR_KIND__SENSOR_KIND_SMOKE] = {3.0, 7.0, "%obs/m"},
    [LINKD__V1__SENSOR_KIND__SENSOR_KIND_GAS] = {20.0, 40.0, "%LEL"},
    [LINKD__V1__SENSOR_KIND__SENSOR_KIND_WATER_LEVEL] = {2.5, 1.5, "m"},
    [LINKD__V1__SENSOR_KIND__SENSOR_KIND_CROWD_DENSITY] = {4.0, 3.0, "persons/m2"},
    [LINKD__V1__SENSOR_KIND__SENSOR_KIND_GEOFENCE] = {0.0, 1.0, "breach"},
    [LINKD__V1__SENSOR_KIND__SENSOR_KIND_TEMPERATURE] = {57.0, 40.0, "C"},
};

#define rnd lg_rnd
#define rnd_unit lg_rnd_unit

static uint32_t rnd_below(uint64_t *s, uint32_t n)
{
    return (uint32_t)(rnd(s) % n);
}

static const lg_mix_entry *mix_pick(const lg_mix *m, uint64_t *s)
{
    double x = rnd_unit(s) * m->total;
    for (int i = 0; i < m->n; i++) {
        if (x < m->e[i].weight) return &m->e[i];
        x -= m->e[i].weight;
    }
    return &m->e[m->n - 1];
}

lg_gen *lg_gen_new(const char *run_id, const char *source_id, uint64_t seed)
{
    lg_gen *g = calloc(1, sizeof *g);
    if (!g) return NULL;
    g->slots = calloc(LG_MAX_BATCH, sizeof *g->slots);
    g->events = calloc(LG_MAX_BATCH, sizeof *g->events);
    if (!g->slots || !g->events) {
        lg_gen_free(g);
        return NULL;
    }
    snprintf(g->run_id, sizeof g->run_id, "%s", run_id);
    snprintf(g->source_id, sizeof g->source_id, "%s", source_id);
    g->rng = seed;
    for (size_t i = 0; i < LG_MAX_BATCH; i++) g->events[i] = &g->slots[i].env;
    return g;
}

void lg_gen_free(lg_gen *g)
{
    if (!g) return;
    free(g->slots);
    free(g->events);
    free(g);
}

/* fill_location places the event somewhere in the city: a random district,
 * one of its 500 grids, and coordinates within about 25 km of the centre;
 * what <p> (a scenario's place) fixes overrides the draw. */
static void fill_location(ev_slot *sl, const lg_place *p, uint64_t *s)
{
    Linkd__V1__Location *l = &sl->loc;
    linkd__v1__location__init(l);
    uint32_t d = rnd_below(s, NELEM(DISTRICTS));
    uint32_t grid = rnd_below(s, 500);
    snprintf(sl->grid, sizeof sl->grid, "%s-%03u", DISTRICTS[d].code, grid);
    snprintf(sl->address, sizeof sl->address, "%u %s Road, %s", 1 + rnd_below(s, 999),
             DISTRICTS[d].name, DISTRICTS[d].name);
    l->has_lat = l->has_lon = 1;
    l->lat = 23.13 + (rnd_unit(s) - 0.5) * 0.45;
    l->lon = 113.26 + (rnd_unit(s) - 0.5) * 0.5;
    l->address = sl->address;
    l->district = (char *)DISTRICTS[d].code;
    l->grid = sl->grid;
    if (!p) return;
    if (p->district[0]) l->district = (char *)p->district;
    if (p->grid[0]) l->grid = (char *)p->grid;
    if (p->address[0]) l->address = (char *)p->address;
    if (p->has_coords & 1) l->lat = p->lat;
    if (p->has_coords & 2) l->lon = p->lon;
}

static void fill_call(ev_slot *sl, int category, uint64_t *s)
{
    Linkd__V1__Call110 *c = &sl->body.call;
    linkd__v1__call110__init(c);
    c->has_category = 1;
    c->category = (Linkd__V1__CallCategory)category;
    if (rnd_below(s, 4) == 0) {   /* the call-taker set a priority on one call in four */
        c->has_priority = 1;
        c->priority = (Linkd__V1__Priority)(1 + rnd_below(s, 4));
    }
    c->location = &sl->loc;
    snprintf(sl->ref, sizeof sl->ref, "caller-%08x", (unsigned)rnd(s));
    c->caller = sl->ref;
    c->description = (char *)CALL_TEXT[category];
    c->has_people = 1;
    c->people = 1 + rnd_below(s, 4);
    sl->env.call = c;
    sl->env.body_case = LINKD__V1__ENVELOPE__BODY_CALL;
}

static void fill_sensor(ev_slot *sl, int kind, const lg_place *p, uint64_t *s)
{
    Linkd__V1__SensorAlarm *a = &sl->body.sensor;
    linkd__v1__sensor_alarm__init(a);
    /* 200,000 installed sensors, so repeats from one device are rare but real;
     * a place with <devices> (one building) draws from its own few. */
    if (p && p->devices)
        snprintf(sl->ref, sizeof sl->ref, "%s-%s-%04u",
                 ld_enum_name(&linkd__v1__sensor_kind__descriptor, kind),
                 p->grid[0] ? p->grid : "site", rnd_below(s, p->devices));
    else
        snprintf(sl->ref, sizeof sl->ref, "%s-%06u",
                 ld_enum_name(&linkd__v1__sensor_kind__descriptor, kind), rnd_below(s, 200000));
    a->sensor_id = sl->ref;
    a->has_kind = 1;
    a->kind = (Linkd__V1__SensorKind)kind;
    a->has_value = a->has_threshold = 1;
    a->threshold = SENSOR_READING[kind].threshold;
    a->value = a->threshold + rnd_unit(s) * SENSOR_READING[kind].span;
    a->unit = (char *)SENSOR_READING[kind].unit;
    a->location = &sl->loc;
    sl->env.sensor = a;
    sl->env.body_case = LINKD__V1__ENVELOPE__BODY_SENSOR;
}

/* petitioners: most petitions come from one person, some from a family, and
 * about one in ten is a group petition of five or more. */
static uint32_t petitioners(uint64_t *s)
{
    uint32_t r = rnd_below(s, 100);
    if (r < 70) return 1;
    if (r < 90) return 2 + rnd_below(s, 3);
    return 5 + rnd_below(s, 26);
}

static void fill_petition(ev_slot *sl, int issue, uint64_t seq, const char *run_id,
                          const lg_gen_spec *spec, uint64_t *s)
{
    Linkd__V1__Petition *p = &sl->body.petition;
    linkd__v1__petition__init(p);
    snprintf(sl->ref, sizeof sl->ref, "P-%s-%llu", run_id, (unsigned long long)seq);
    p->petition_id = sl->ref;
    p->has_issue = 1;
    p->issue = (Linkd__V1__PetitionIssue)issue;
    p->has_petitioners = 1;
    if (spec->petitioners_min)
        p->petitioners = spec->petitioners_min +
                         rnd_below(s, spec->petitioners_max - spec->petitioners_min + 1);
    else
        p->petitioners = petitioners(s);
    size_t nrefs = p->petitioners < 3 ? p->petitioners : 3;
    for (size_t i = 0; i < nrefs; i++) {
        snprintf(sl->prefs[i], sizeof sl->prefs[i], "R%08x", (unsigned)rnd(s));
        sl->prefs_ptr[i] = sl->prefs[i];
    }
    p->n_petitioner_refs = nrefs;
    p->petitioner_refs = sl->prefs_ptr;
    p->has_bypass_level = 1;
    p->bypass_level = rnd_below(s, 10) == 0;
    if (rnd_below(s, 7) == 0) {
        p->has_repeat_count = 1;
        p->repeat_count = 1 + rnd_below(s, 3);
    }
    p->target_office = "district letters and visits bureau";
    p->location = &sl->loc;
    p->summary = "residents ask for a reply on an unresolved matter";
    sl->env.petition = p;
    sl->env.body_case = LINKD__V1__ENVELOPE__BODY_PETITION;
}

static void fill_event(lg_gen *g, const lg_gen_spec *spec, ev_slot *sl, uint64_t seq,
                       uint64_t wall_ms)
{
    Linkd__V1__Envelope *e = &sl->env;
    linkd__v1__envelope__init(e);
    snprintf(sl->event_id, sizeof sl->event_id, "%s-%llu", g->run_id, (unsigned long long)seq);
    e->event_id = sl->event_id;
    e->source_id = g->source_id;
    e->has_occurred_at_ms = 1;
    e->occurred_at_ms = (int64_t)wall_ms;
    e->has_status = 1;
    e->status = (Linkd__V1__Status)spec->status;
    fill_location(sl, spec->place, &g->rng);
    const lg_mix_entry *m = mix_pick(spec->mix, &g->rng);
    switch (m->kind) {
    case LD_KIND_SENSOR: fill_sensor(sl, m->value, spec->place, &g->rng); break;
    case LD_KIND_PETITION: fill_petition(sl, m->value, seq, g->run_id, spec, &g->rng); break;
    default: fill_call(sl, m->value, &g->rng); break;
    }
}

int lg_gen_request(lg_gen *g, const lg_gen_spec *spec, uint64_t first_seq, unsigned n,
                   uint64_t wall_ms, nng_msg **out)
{
    if (n == 0 || n > LG_MAX_BATCH) return NNG_EINVAL;
    for (unsigned i = 0; i < n; i++) fill_event(g, spec, &g->slots[i], first_seq + i, wall_ms);
    Linkd__V1__IngestRequest req = LINKD__V1__INGEST_REQUEST__INIT;
    req.n_events = n;
    req.events = g->events;
    size_t len = linkd__v1__ingest_request__get_packed_size(&req);
    nng_msg *msg;
    int rv = nng_msg_alloc(&msg, len);
    if (rv != 0) return rv;
    linkd__v1__ingest_request__pack(&req, nng_msg_body(msg));
    *out = msg;
    return 0;
}

int lg_gen_reply(unsigned n, nng_msg **out)
{
    if (n == 0 || n > LG_MAX_BATCH) return NNG_EINVAL;
    Linkd__V1__IngestResult *res = calloc(n, sizeof *res);
    Linkd__V1__IngestResult **ptrs = calloc(n, sizeof *ptrs);
    char(*ids)[2][48] = calloc(n, sizeof *ids);
    int rv = NNG_ENOMEM;
    if (!res || !ptrs || !ids) goto done;
    for (unsigned i = 0; i < n; i++) {
        linkd__v1__ingest_result__init(&res[i]);
        snprintf(ids[i][0], sizeof ids[i][0], "Lceiling0-%u", i);
        snprintf(ids[i][1], sizeof ids[i][1], "I1732290000000-%u", i);
        res[i].has_result = 1;
        res[i].result = LINKD__V1__RESULT__RESULT_ACCEPTED;
        res[i].event_id = ids[i][0];
        res[i].incident_id = ids[i][1];
        ptrs[i] = &res[i];
    }
    Linkd__V1__IngestReply rep = LINKD__V1__INGEST_REPLY__INIT;
    rep.n_results = n;
    rep.results = ptrs;
    nng_msg *msg;
    size_t len = linkd__v1__ingest_reply__get_packed_size(&rep);
    if ((rv = nng_msg_alloc(&msg, len)) != 0) goto done;
    linkd__v1__ingest_reply__pack(&rep, nng_msg_body(msg));
    *out = msg;
done:
    free(res);
    free(ptrs);
    free(ids);
    return rv;
}
