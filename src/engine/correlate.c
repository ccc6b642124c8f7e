/* correlate.c: duplicate-call merging.
 *
 * Five people call about one fire: that is one incident, not five. A merge
 * rule says which events may join an open incident of the same kind,
 * category and status, opened within its window and within its distance
 * (both events need coordinates). The joining event is recorded in the
 * incident whole (its serialized envelope), so the merge shows in the
 * history and on the feed and can be undone: the event then opens its own
 * incident (ld_engine_unmerge).
 *
 * Candidates: per kind and category, a ring of the latest incidents opened
 * with coordinates; ids are kept, not pointers, and looked up, so a closed
 * incident simply is not found. All on the domain clock. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "engine/actions.h"
#include "engine/correlate.h"
#include "wire/wire.h"

#define RING 16   /* recent incidents kept per kind and category */
#define NCAT 64

typedef struct recent {
    char id[LD_INCIDENT_ID_LEN];
    uint64_t at;
    double lat, lon;
    int status;
} recent;

struct ld_correlate {
    recent ring[LD_KIND_COUNT][NCAT][RING];
    uint8_t next[LD_KIND_COUNT][NCAT];
    ld_pool merged_pool;
    ld_index by_stream_id;      /* every merged event of an open incident, by stream id */
};

static const char *merged_key(const void *m) { return ((const ld_merged *)m)->stream_id; }

int ld__correlate_init(ld_engine *e)
{
    if (!(e->correlate = calloc(1, sizeof *e->correlate))) return LD_ENOMEM;
    ld_pool_init(&e->correlate->merged_pool, sizeof(ld_merged), 16);
    ld_index_init(&e->correlate->by_stream_id, merged_key);
    return 0;
}

void ld__correlate_tidy(ld_engine *e, size_t slots)
{
    ld_index_tidy(&e->correlate->by_stream_id, slots);
}

void ld__correlate_fini(ld_engine *e)
{
    if (!e->correlate) return;
    ld_index_fini(&e->correlate->by_stream_id);
    ld_pool_fini(&e->correlate->merged_pool);
    free(e->correlate);
    e->correlate = NULL;
}

/* Great-circle distance in metres (haversine; the earth as a sphere). */
static double metres_between(double lat1, double lon1, double lat2, double lon2)
{
    const double rad = 3.14159265358979323846 / 180.0, earth = 6371008.8;
    double dlat = (lat2 - lat1) * rad, dlon = (lon2 - lon1) * rad;
    double a = sin(dlat / 2) * sin(dlat / 2) +
               cos(lat1 * rad) * cos(lat2 * rad) * sin(dlon / 2) * sin(dlon / 2);
    return 2 * earth * asin(sqrt(a < 1 ? a : 1));
}

static int slot_of(int category) { return category > 0 && category < NCAT ? category : 0; }

void ld__correlate_remember(ld_engine *e, const ld_incident *inc)
{
    if (!e->correlate || !e->rules->nmerges || !inc->has_ll || inc->kind <= LD_KIND_ANY ||
        inc->kind >= LD_KIND_COUNT)
        return;
    struct ld_correlate *c = e->correlate;
    int k = inc->kind, s = slot_of(inc->category);
    recent *r = &c->ring[k][s][c->next[k][s]];
    c->next[k][s] = (uint8_t)((c->next[k][s] + 1) % RING);
    snprintf(r->id, sizeof r->id, "%s", inc->id);
    r->at = inc->opened_at;
    r->lat = inc->lat;
    r->lon = inc->lon;
    r->status = inc->status;
}

ld_incident *ld__correlate_find(ld_engine *e, const Linkd__V1__Envelope *ev,
                                const ld_match_input *in, uint64_t now,
                                const ld_merge_rule **rule, double *metres)
{
    const ld_rules *r = e->rules;
    const Linkd__V1__Location *loc = ld_envelope_location(ev);
    if (!e->correlate || !r->nmerges || !loc || !loc->has_lat || !loc->has_lon ||
        in->kind <= LD_KIND_ANY || in->kind >= LD_KIND_COUNT)
        return NULL;
    int status = ev->has_status ? (int)ev->status : 0;
    for (int m = 0; m < r->nmerges; m++) {
        const ld_merge_rule *mr = &r->merges[m];
        if (!ld_rules_route_matches(r, &mr->match, in)) continue;
        /* Newest first: a duplicate belongs with the latest report nearby. */
        const struct ld_correlate *c = e->correlate;
        int k = in->kind, s = slot_of(in->category);
        for (int i = 1; i <= RING; i++) {
            const recent *x = &c->ring[k][s][(c->next[k][s] + RING - i) % RING];
            if (!x->id[0] || x->status != status || x->at > now || now - x->at > mr->window_ms)
                continue;
            double d = metres_between(loc->lat, loc->lon, x->lat, x->lon);
            if (d > mr->distance_m) continue;
            ld_incident *inc = ld_engine_find(e, x->id);
            if (!inc || inc->category != in->category) continue;
            *rule = mr;
            *metres = d;
            return inc;
        }
    }
    return NULL;
}

int ld__correlate_has(const ld_incident *inc, const char *stream_id)
{
    for (const ld_merged *m = inc->merged; m; m = m->next)
        if (strcmp(m->stream_id, stream_id) == 0) return 1;
    return 0;
}

/* index files <m> as merged into <holder>. Without memory for the index the
 * merge still stands; only a resent copy of its event is answered with the
 * event's own incident id instead of <holder>'s. */
static void index_merged(ld_engine *e, ld_merged *m, ld_incident *holder)
{
    m->holder = holder;
    (void)ld_index_put(&e->correlate->by_stream_id, m);
}

static void unindex_merged(ld_engine *e, const ld_merged *m)
{
    if (ld_index_get(&e->correlate->by_stream_id, m->stream_id) == m)
        ld_index_del(&e->correlate->by_stream_id, m->stream_id);
}

enum { SPLIT_GENERATIONS_SEEN = 16 };   /* a rare path: a duplicate of nothing open */

/* generation_id writes "<base>.<gen>", the id of the <gen>th incident an event
 * opened (split_id): 0, or -1 if it does not fit. */
static int generation_id(char *id, size_t len, const char *base, int base_len, unsigned gen)
{
    return snprintf(id, len, "%.*s.%u", base_len, base, gen) < (int)len ? 0 : -1;
}

const char *ld_engine_holder_of(const ld_engine *e, const char *stream_id)
{
    char id[LD_INCIDENT_ID_LEN];
    if (snprintf(id, sizeof id, "I%s", stream_id) >= (int)sizeof id) return NULL;
    const ld_incident *inc = ld_engine_find(e, id);
    if (inc) return inc->id;
    const ld_merged *m = e->correlate ? ld_index_get(&e->correlate->by_stream_id, stream_id) : NULL;
    if (m) return m->holder->id;
    /* A whole incident merged and split off again opens under the next
     * generation of its id (split_id); the one open holds the event. */
    char next[LD_INCIDENT_ID_LEN];
    for (unsigned gen = 2; gen <= SPLIT_GENERATIONS_SEEN; gen++) {
        if (generation_id(next, sizeof next, id, (int)strlen(id), gen) != 0) break;
        if ((inc = ld_engine_find(e, next))) return inc->id;
    }
    return NULL;
}

int ld__correlate_join(ld_engine *e, ld_incident *inc, const Linkd__V1__Envelope *ev,
                       const char *stream_id, const ld_merge_rule *rule, double metres,
                       uint64_t now)
{
    if (inc->nmerged >= LD_MERGED_MAX) return LD_EFULL;
    size_t len = linkd__v1__envelope__get_packed_size(ev);
    if (len > LD_MERGED_EVENT_MAX) return LD_ETOOBIG;
    ld_merged *m = ld_pool_get(&e->correlate->merged_pool);
    if (!m) return LD_ENOMEM;
    memset(m, 0, offsetof(ld_merged, event));
    snprintf(m->stream_id, sizeof m->stream_id, "%s", stream_id);
    snprintf(m->event_id, sizeof m->event_id, "%s", ev->event_id ? ev->event_id : "");
    snprintf(m->source_id, sizeof m->source_id, "%s", ev->source_id ? ev->source_id : "");
    snprintf(m->rule, sizeof m->rule, "%s %s", rule->where, rule->name);
    m->at = now;
    m->distance_m = (uint32_t)(metres + 0.5);
    m->len = (uint16_t)linkd__v1__envelope__pack(ev, m->event);
    /* A graver report of the same emergency makes the incident graver. */
    const char *from = ld_enum_name(&linkd__v1__priority__descriptor, inc->priority);
    char raised[80] = "";
    if (ld__engine_raise_priority(e, inc, ld_engine_priority(e, ev, now))) {
        const char *to = ld_enum_name(&linkd__v1__priority__descriptor, inc->priority);
        snprintf(raised, sizeof raised, "; priority %s -> %s", from ? from : "none",
                 to ? to : "?");
    }
    /* Append: oldest first, as the record keeps them. */
    ld_merged **p = &inc->merged;
    while (*p) p = &(*p)->next;
    *p = m;
    inc->nmerged++;
    index_merged(e, m, inc);
    e->stats.merged++;
    char text[320];
    snprintf(text, sizeof text, "%s merged event %s from %s: %u m away, %llu s after it opened "
             "[%s]%s", inc->id, m->event_id, m->source_id, m->distance_m,
             (unsigned long long)((now - inc->opened_at) / 1000), m->rule, raised);
    ld__engine_history(e, inc, LINKD__V1__FEED_KIND__FEED_KIND_INCIDENT_MERGED, NULL, -1);
    ld__engine_feed(e, LINKD__V1__FEED_KIND__FEED_KIND_INCIDENT_MERGED, inc, NULL, -1, text);
    return 0;
}

void ld__correlate_restore(ld_engine *e, ld_incident *inc,
                           const Linkd__V1__IncidentRecord *rec)
{
    ld_merged **tail = &inc->merged;
    for (size_t i = 0; i < rec->n_merged && inc->nmerged < LD_MERGED_MAX; i++) {
        const Linkd__V1__MergedEvent *x = rec->merged[i];
        /* A merged incident keeps no event, only its id. */
        int whole = x->incident_id && *x->incident_id;
        if (!x->stream_id || (!x->has_event && !whole) || x->event.len > LD_MERGED_EVENT_MAX)
            continue;
        ld_merged *m = ld_pool_get(&e->correlate->merged_pool);
        if (!m) return;
        memset(m, 0, offsetof(ld_merged, event));
        snprintf(m->stream_id, sizeof m->stream_id, "%s", x->stream_id);
        snprintf(m->event_id, sizeof m->event_id, "%s", x->event_id ? x->event_id : "");
        snprintf(m->source_id, sizeof m->source_id, "%s", x->source_id ? x->source_id : "");
        snprintf(m->rule, sizeof m->rule, "%s", x->rule ? x->rule : "");
        m->at = (uint64_t)x->at_ms;
        m->distance_m = x->distance_m;
        snprintf(m->incident_id, sizeof m->incident_id, "%s", whole ? x->incident_id : "");
        for (size_t k = 0; k < x->n_moved_departments; k++) {
            int d = ld_rules_department(e->rules, x->moved_departments[k]);
            if (d >= 0 && d < 64) m->moved |= 1ull << d;
        }
        m->len = x->has_event ? (uint16_t)x->event.len : 0;
        if (m->len) memcpy(m->event, x->event.data, m->len);
        *tail = m;
        tail = &m->next;
        inc->nmerged++;
        index_merged(e, m, inc);
    }
    ld__correlate_remember(e, inc);
}

void ld__correlate_free(ld_engine *e, ld_incident *inc)
{
    ld_merged *m = inc->merged;
    while (m) {
        ld_merged *next = m->next;
        unindex_merged(e, m);
        ld_pool_put(&e->correlate->merged_pool, m);
        m = next;
    }
    inc->merged = NULL;
    inc->nmerged = 0;
}

ld_merged *ld__correlate_find_merged(const ld_incident *inc, const char *event_id)
{
    for (ld_merged *m = inc->merged; m; m = m->next)
        if (strcmp(m->event_id, event_id) == 0 || strcmp(m->stream_id, event_id) == 0) return m;
    return NULL;
}

ld_merged *ld__correlate_entry(ld_engine *e)
{
    ld_merged *m = ld_pool_get(&e->correlate->merged_pool);
    if (m) memset(m, 0, offsetof(ld_merged, event));
    return m;
}

void ld__correlate_drop(ld_engine *e, ld_merged *m)
{
    ld_pool_put(&e->correlate->merged_pool, m);
}

void ld__correlate_absorb(ld_engine *e, ld_incident *into, ld_incident *from, ld_merged *own)
{
    ld_merged **p = &into->merged;
    while (*p) p = &(*p)->next;
    *p = from->merged;
    into->nmerged = (uint16_t)(into->nmerged + from->nmerged);
    from->merged = NULL;
    from->nmerged = 0;
    for (; *p; p = &(*p)->next) (*p)->holder = into;
    own->next = NULL;
    *p = own;
    into->nmerged++;
    index_merged(e, own, into);
}

/* split_id names the incident an event opens when it leaves <m>'s incident:
 * "I<stream id>" for a duplicate that never had one; for a whole incident a
 * supervisor merged, the next generation of the id it had ("I<sid>" ->
 * "I<sid>.2" -> "I<sid>.3"), as the old id belongs to the closed incident
 * (its record and audit trail). */
static int split_id(const ld_merged *m, char *id, size_t len)
{
    if (!m->incident_id[0]) return snprintf(id, len, "I%s", m->stream_id) < (int)len ? 0 : -1;
    const char *dot = strchr(m->incident_id, '.');
    unsigned gen = dot ? (unsigned)strtoul(dot + 1, NULL, 10) : 1;
    int n = dot ? (int)(dot - m->incident_id) : (int)strlen(m->incident_id);
    return generation_id(id, len, m->incident_id, n, gen + 1);
}

int ld__correlate_split(ld_engine *e, ld_incident *inc, const char *event_id,
                        const uint8_t *event, size_t event_len, const char *who,
                        const char *why, ld_incident **out, char *err, size_t len)
{
    ld_merged **p = &inc->merged;
    while (*p && strcmp((*p)->event_id, event_id) != 0 && strcmp((*p)->stream_id, event_id) != 0)
        p = &(*p)->next;
    if (!*p) {
        snprintf(err, len, "event_id: incident %s has no merged event '%.64s'", inc->id, event_id);
        return LD_ENOENT;
    }
    ld_merged *m = *p;
    if (m->len) event = m->event, event_len = m->len;
    if (!event) {
        snprintf(err, len, "the event of incident %s (%s) must be read back from redis first",
                 m->incident_id, m->stream_id);
        return LD_EUNAVAIL;
    }
    char id[LD_INCIDENT_ID_LEN];
    if (split_id(m, id, sizeof id) != 0) {
        snprintf(err, len, "event_id: %s cannot be given an incident id of its own", m->event_id);
        return LD_EINVAL;
    }
    Linkd__V1__Envelope *ev = linkd__v1__envelope__unpack(NULL, event_len, event);
    if (!ev) {
        snprintf(err, len, "the merged event %s cannot be read back", m->event_id);
        return LD_EDECODE;
    }
    /* Opened now, on its own: merging is off for this one call. */
    e->no_merge = 1;
    int rv = ld__engine_open_as(e, ev, m->stream_id, id, ld_clock_now(e->clock), out);
    e->no_merge = 0;
    linkd__v1__envelope__free_unpacked(ev, NULL);
    if (rv != 0) {
        snprintf(err, len, "cannot open incident %s for %s: %s", id, m->event_id, ld_strerror(rv));
        return rv;
    }
    *p = m->next;
    inc->nmerged--;
    e->stats.unmerged++;
    const char *peer = e->peer;
    e->peer = (*out)->id;
    char text[320];
    snprintf(text, sizeof text, "%s: event %s split off%s%.48s%s%.100s; it is incident %s now",
             inc->id, m->event_id, who ? " by " : "", who ? who : "", why ? ": " : "",
             why ? why : "", (*out)->id);
    uint64_t moved = m->moved;
    unindex_merged(e, m);
    ld_pool_put(&e->correlate->merged_pool, m);
    ld__engine_history(e, inc, LINKD__V1__FEED_KIND__FEED_KIND_INCIDENT_UNMERGED, NULL, -1);
    ld__engine_feed(e, LINKD__V1__FEED_KIND__FEED_KIND_INCIDENT_UNMERGED, inc, NULL, -1, text);
    /* Tasks that came over with a supervisor's merge go back: where the new
     * incident's plan has the department again, <inc>'s copy is withdrawn. */
    for (int d = 0; moved && d < 64 && d < e->rules->ndepartments; d++) {
        ld_task *t = moved >> d & 1 ? ld_engine_task_of(inc, d) : NULL;
        if (!t || t->state == LINKD__V1__TASK_STATE__TASK_STATE_RESOLVED ||
            !ld_engine_task_of(*out, d) || inc->closed_at)
            continue;
        char disp[64];
        snprintf(disp, sizeof disp, "split off: %.40s/%.20s holds it", (*out)->id,
                 e->rules->departments[d].id);
        snprintf(text, sizeof text, "%s/%s withdrawn: the split-off incident %s has its own "
                 "task for it", inc->id, e->rules->departments[d].id, (*out)->id);
        ld__engine_withdraw(e, t, disp, text);
    }
    e->peer = peer;
    return 0;
}

int ld_engine_unmerge(ld_engine *e, ld_incident *inc, const char *event_id, const char *who,
                      ld_incident **out, char *err, size_t len)
{
    return ld__correlate_split(e, inc, event_id, NULL, 0, who, NULL, out, err, len);
}
