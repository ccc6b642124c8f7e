/* upgrade.c: correlation rules in the engine.
 *
 * Every event the engine opens (or merges) goes past the rule set's
 * correlation rules: each rule that matches it reads the event's key (its
 * `by` fields) and distinct values and hands them to the windows
 * (window.c). When a rule fires, the incident it upgrades is the oldest
 * still open among the events that made it (the one already on the board;
 * the current event's own if none is): its priority is raised, the
 * departments the rule adds get tasks with deadlines from now (naming the
 * rule's leader), and its history, the feed and the audit trail say which
 * rule fired and which events counted (a note stamped on every entry the
 * upgrade makes, with the rule as the actor). */
#include "engine/upgrade.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/log.h"
#include "engine/actions.h"
#include "engine/window.h"

#define LEADERS_MAX 1024

/* Leader names, owned by the engine: tasks point at them, so a reload that
 * frees the rules, or a record read back, leaves them valid. */
struct ld_leaders {
    ld_map by_name;
    char *names[LEADERS_MAX];
    int n;
};

int ld__upgrade_init(ld_engine *e)
{
    if (!(e->leaders = calloc(1, sizeof *e->leaders))) return LD_ENOMEM;
    ld_map_init(&e->leaders->by_name);
    if (!(e->windows = ld_windows_new(0))) return LD_ENOMEM;
    return 0;
}

void ld__upgrade_fini(ld_engine *e)
{
    ld_windows_free(e->windows);
    e->windows = NULL;
    if (!e->leaders) return;
    ld_map_fini(&e->leaders->by_name);
    for (int i = 0; i < e->leaders->n; i++) free(e->leaders->names[i]);
    free(e->leaders);
    e->leaders = NULL;
}

const char *ld__engine_leader(ld_engine *e, const char *name)
{
    if (!name || !*name || !e->leaders) return NULL;
    char *known = ld_map_get(&e->leaders->by_name, name);
    if (known) return known;
    if (e->leaders->n == LEADERS_MAX) {
        ld_log_rl(LD_WARN, "UPGRADE-LEADERS", "more than %d leader names; '%.40s' not kept",
                  LEADERS_MAX, name);
        return NULL;
    }
    char *copy = strdup(name);
    if (!copy || ld_map_put(&e->leaders->by_name, copy, copy) != 0) {
        free(copy);
        return NULL;
    }
    e->leaders->names[e->leaders->n++] = copy;
    return copy;
}

/* ---- firing -------------------------------------------------------------------- */

typedef struct fire_ctx {
    ld_engine *e;
    ld_incident *current;
    uint64_t now;
} fire_ctx;

static const char *const distinct_words[LD_DISTINCT_COUNT] = {
    "events", "distinct callers", "distinct sensors", "distinct petitioners",
    "distinct sources"};
static const char *const key_words[LD_CK_COUNT] = {"district", "grid", "address", "office",
                                                   "category"};

/* describe writes what made <hit>: "3 distinct sensors within 5m by district,
 * address: I1-0, I2-0, I3-0". */
static void describe(const ld_window_hit *hit, char *buf, size_t len)
{
    const ld_correlation *c = hit->rule;
    char win[24], by[64] = "";
    ld_format_duration(c->window_ms, win, sizeof win);
    for (int f = 0; f < LD_CK_COUNT; f++)
        if (c->by & (1u << f))
            snprintf(by + strlen(by), sizeof by - strlen(by), "%s%s", by[0] ? ", " : "",
                     key_words[f]);
    int n;
    if (c->type == LD_CORR_SEQUENCE)
        n = snprintf(buf, len, "first step, then second within %s, same %s:", win, by);
    else
        n = snprintf(buf, len, "%u %s within %s, same %s:", c->count,
                     distinct_words[c->distinct], win, by);
    size_t off = n > 0 && (size_t)n < len ? (size_t)n : len - 1;
    for (uint32_t i = 0; i < hit->n && off + 1 < len; i++) {
        if (i && strcmp(hit->refs[i], hit->refs[i - 1]) == 0) continue; /* one event, two values */
        n = snprintf(buf + off, len - off, "%s %s", i ? "," : "", hit->refs[i]);
        off = n > 0 && (size_t)n < len - off ? off + (size_t)n : len - 1;
    }
}

/* target_of: the oldest incident of the hit still open, else the current one. */
static ld_incident *target_of(const fire_ctx *x, const ld_window_hit *hit)
{
    for (uint32_t i = 0; i < hit->n; i++) {
        ld_incident *inc = ld_engine_find(x->e, hit->refs[i]);
        if (inc) return inc;
    }
    return x->current && !x->current->closed_at ? x->current : NULL;
}

static void on_fire(void *ctx, const ld_window_hit *hit)
{
    fire_ctx *x = ctx;
    ld_engine *e = x->e;
    const ld_correlation *c = hit->rule;
    const ld_route *up = &c->upgrade;
    ld_incident *inc = target_of(x, hit);
    if (!inc) return;
    char what[200], note[LD_NOTE_LEN], actor[80];
    describe(hit, what, sizeof what);
    snprintf(note, sizeof note, "rule %s [%s]: %s", up->name, up->where, what);
    snprintf(actor, sizeof actor, "rule %s", up->name);
    uint16_t idx = ld_notes_restore(inc, x->now, note);
    e->actor = actor;
    e->actor_reason = what;
    e->actor_note = idx;
    e->stats.upgrades++;

    char change[200] = "";
    int from = inc->priority;
    if (ld__engine_raise_priority(e, inc, up->priority))
        snprintf(change, sizeof change, "priority %s -> %s",
                 ld_enum_name(&linkd__v1__priority__descriptor, from),
                 ld_enum_name(&linkd__v1__priority__descriptor, inc->priority));
    ld_task *added[LD_MAX_DISPATCH];
    int nadded = 0;
    for (int d = 0; d < up->ndispatch; d++) {
        if (ld_engine_task_of(inc, up->dispatch[d].dept) || inc->ntasks == LD_MAX_TASKS) continue;
        ld_task *t = ld__engine_add_task(e, inc, &up->dispatch[d], up, x->now);
        if (!t) break;
        ld__task_set_leader(e, t, ld__engine_leader(e, c->leader));
        added[nadded++] = t;
        const char *sep = nadded > 1 ? ", " : change[0] ? "; adds " : "adds ";
        snprintf(change + strlen(change), sizeof change - strlen(change), "%s%s", sep,
                 e->rules->departments[t->dept].id);
    }
    char text[400];
    snprintf(text, sizeof text, "%s upgraded by rule %s [%s]: %s; %s", inc->id, up->name,
             up->where, change[0] ? change : "no change (already so)", what);
    ld__engine_history(e, inc, LINKD__V1__FEED_KIND__FEED_KIND_INCIDENT_UPGRADED, NULL, -1);
    ld__engine_feed(e, LINKD__V1__FEED_KIND__FEED_KIND_INCIDENT_UPGRADED, inc, NULL, -1, text);
    ld_log_rl(LD_NOTICE, "UPGRADE", "%s", text);
    for (int i = 0; i < nadded; i++) ld__engine_dispatch(e, added[i]);
    e->actor = e->actor_reason = NULL;
    e->actor_note = 0;
}

/* stream_pos reads "<ms>-<seq>"; 0 for anything else (a spool id). */
static int stream_pos(const char *id, uint64_t *ms, uint64_t *seq)
{
    char *end;
    if (!id || *id < '0' || *id > '9') return 0;
    *ms = strtoull(id, &end, 10);
    if (*end != '-') return 0;
    *seq = strtoull(end + 1, &end, 10);
    return *end == '\0';
}

void ld__window_observe(ld_engine *e, const Linkd__V1__Envelope *ev, const ld_match_input *in,
                        const char *stream_id, ld_incident *inc, uint64_t now)
{
    if (!e->rules->ncorrelations || !e->windows) return;
    uint64_t ms, seq;
    if (e->rewound_ms && stream_pos(stream_id, &ms, &seq) &&
        (ms < e->rewound_ms || (ms == e->rewound_ms && seq <= e->rewound_seq)))
        return; /* counted when the windows were rebuilt */
    fire_ctx x = {e, inc, now};
    ld_windows_event(e->windows, e->rules, ev, in, inc->id, now, &e->window_seq, on_fire, &x);
}

int ld_engine_rewind(ld_engine *e, const Linkd__V1__Envelope *ev, const char *stream_id,
                     uint64_t at)
{
    uint64_t ms, seq;
    if (!e->rules->ncorrelations || !e->windows) return 0;
    if (e->rewound_ms && stream_pos(stream_id, &ms, &seq) &&
        (ms < e->rewound_ms || (ms == e->rewound_ms && seq <= e->rewound_seq)))
        return 0; /* a recovery that runs again reads it again: once is enough */
    ld_match_input in;
    char ref[LD_INCIDENT_ID_LEN];
    ld_rules_input(e->rules, ev, at, &in);
    snprintf(ref, sizeof ref, "I%s", stream_id);
    ld_window_stats before, after;
    ld_windows_stats(e->windows, &before);
    ld_windows_event(e->windows, e->rules, ev, &in, ref, at, &e->window_seq, NULL, NULL);
    ld_windows_stats(e->windows, &after);
    if (stream_pos(stream_id, &ms, &seq) &&
        (ms > e->rewound_ms || (ms == e->rewound_ms && seq > e->rewound_seq))) {
        e->rewound_ms = ms;
        e->rewound_seq = seq;
    }
    return (int)(after.counted - before.counted);
}

int ld_incident_upgraded_by(const ld_incident *inc, const char *rule)
{
    size_t n = strlen(rule);
    for (int i = 0; i < inc->nhistory; i++) {
        const ld_history *h = &inc->history[i];
        const char *note = ld_notes_text(inc, h->note);
        if (h->kind == LINKD__V1__FEED_KIND__FEED_KIND_INCIDENT_UPGRADED && note &&
            strncmp(note, "rule ", 5) == 0 && strncmp(note + 5, rule, n) == 0 &&
            note[5 + n] == ' ')
            return 1;
    }
    return 0;
}
