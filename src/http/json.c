/* json.c: incidents, terminals, departments, rules and compliance as JSON,
 * in the one shape the API and the board share (docs/API.md). */
#include "http/http_int.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "dispatch/dispatch.h"
#include "engine/actions.h"
#include "engine/correlate.h"
#include "wire/wire.h"

static const char *const delivery_names[] = {"none", "new", "sent", "received"};

static void key(ld_buf *b, const char *k)
{
    ld_buf_json_str(b, k);
    ld_buf_put(b, ":", 1);
}

static void kv_str(ld_buf *b, const char *k, const char *v)
{
    key(b, k);
    ld_buf_json_str(b, v);
    ld_buf_put(b, ",", 1);
}

static void kv_u64(ld_buf *b, const char *k, uint64_t v)
{
    key(b, k);
    ld_buf_u64(b, v);
    ld_buf_put(b, ",", 1);
}

/* The last member of an object is written without the comma. */
static void close_obj(ld_buf *b)
{
    if (b->len && b->p[b->len - 1] == ',') b->len--;
    ld_buf_put(b, "}", 1);
}

static void close_arr(ld_buf *b)
{
    if (b->len && b->p[b->len - 1] == ',') b->len--;
    ld_buf_put(b, "]", 1);
}

static const char *category_name(const ld_incident *inc)
{
    const ProtobufCEnumDescriptor *d = inc->kind == 1   ? &linkd__v1__call_category__descriptor
                                       : inc->kind == 2 ? &linkd__v1__sensor_kind__descriptor
                                                        : &linkd__v1__petition_issue__descriptor;
    return ld_enum_name(d, inc->category);
}

static void task_json(ld_http *h, ld_buf *b, const ld_task *t)
{
    const ld_rules *r = h->src.engine->rules;
    char tid[LD_TASK_ID_LEN];
    snprintf(tid, sizeof tid, "%s/%s", t->inc->id, r->departments[t->dept].id);
    ld_buf_put(b, "{", 1);
    kv_str(b, "task_id", tid);
    kv_str(b, "department", r->departments[t->dept].id);
    kv_str(b, "terminal", r->terminals[t->terminal].id);
    kv_u64(b, "level", (uint64_t)t->level);
    kv_str(b, "level_name", ld_task_level(t, t->level)->name);
    kv_u64(b, "chain_length", (uint64_t)ld_task_chain_len(t));
    kv_str(b, "state", ld_enum_name(&linkd__v1__task_state__descriptor, t->state));
    kv_u64(b, "dispatched_at_ms", t->dispatched_at);
    kv_str(b, "delivery", delivery_names[t->delivery & 3]);
    kv_str(b, "rule", t->rule);
    if (ld_task_reason(t)[0]) kv_str(b, "reason", ld_task_reason(t));
    if (ld_task_disposition(t)[0]) kv_str(b, "disposition", ld_task_disposition(t));
    if (ld_task_leader(t)) kv_str(b, "leader", ld_task_leader(t)); /* named by a correlation rule */
    key(b, "legs");
    ld_buf_put(b, "[", 1);
    for (int l = 0; l < LD_LEG_COUNT; l++) {
        if (t->legs_off & (1u << l)) continue; /* no such leg: no feedback budget */
        ld_buf_put(b, "{", 1);
        kv_str(b, "leg", ld_leg_label[l]);
        kv_u64(b, "due_ms", ld_task_due(t, l));
        if (ld_task_done(t, l)) kv_u64(b, "done_ms", ld_task_done(t, l));
        if (ld_task_reminders(t, l))
            kv_u64(b, "reminders_sent", (uint64_t)ld_task_reminders_sent(t, l));
        key(b, "overdue_at_top");
        ld_buf_puts(b, t->overdue_top & (1u << l) ? "true," : "false,");
        close_obj(b);
        ld_buf_put(b, ",", 1);
    }
    close_arr(b);
    close_obj(b);
}

/* sign_off_json: the departments that must all acknowledge (rules:
 * sign_off), who is still missing, and when the last one signed. */
static void sign_off_json(const ld_rules *r, ld_buf *b, const ld_incident *inc)
{
    unsigned missing = ld_incident_sign_missing(inc);
    key(b, "sign_off");
    ld_buf_puts(b, "{");
    for (int pass = 0; pass < 2; pass++) {
        key(b, pass ? "missing" : "departments");
        ld_buf_put(b, "[", 1);
        int n = 0;
        for (int i = 0; i < inc->ntasks; i++) {
            unsigned bit = 1u << i;
            if (!(inc->sign_need & bit) || (pass && !(missing & bit))) continue;
            ld_buf_printf(b, "%s\"%s\"", n++ ? "," : "", r->departments[inc->tasks[i]->dept].id);
        }
        ld_buf_puts(b, "],");
    }
    if (inc->signed_at) kv_u64(b, "signed_off_at_ms", inc->signed_at);
    key(b, "complete");
    ld_buf_puts(b, missing ? "false" : "true");
    ld_buf_puts(b, "},");
}

void ld_json_incident(ld_http *h, ld_buf *b, const ld_incident *inc, int with_history)
{
    const ld_rules *r = h->src.engine->rules;
    int escalated = 0, overdue = 0;
    for (int i = 0; i < inc->ntasks; i++) {
        if (inc->tasks[i]->level > 0) escalated = 1;
        if (inc->tasks[i]->overdue_top) overdue = 1;
    }
    ld_buf_put(b, "{", 1);
    kv_str(b, "id", inc->id);
    kv_str(b, "event_id", inc->event_id);
    kv_str(b, "source_id", inc->source_id);
    kv_str(b, "kind", ld_kind_name(inc->kind));
    kv_str(b, "category", category_name(inc));
    kv_str(b, "priority", ld_enum_name(&linkd__v1__priority__descriptor, inc->priority));
    kv_u64(b, "priority_rank", (uint64_t)inc->priority);
    kv_str(b, "status", ld_enum_name(&linkd__v1__status__descriptor, inc->status));
    kv_str(b, "summary", inc->summary);
    if (inc->district[0]) kv_str(b, "district", inc->district);
    if (inc->grid[0]) kv_str(b, "grid", inc->grid);
    if (inc->has_ll && isfinite(inc->lat) && isfinite(inc->lon))
        ld_buf_printf(b, "\"lat\":%.6f,\"lon\":%.6f,", inc->lat, inc->lon);
    kv_u64(b, "people", inc->people);
    kv_u64(b, "opened_at_ms", inc->opened_at);
    uint64_t due = ld_incident_next_due(inc);
    if (due != UINT64_MAX) kv_u64(b, "next_due_ms", due);
    key(b, "escalated");
    ld_buf_puts(b, escalated ? "true," : "false,");
    key(b, "overdue_at_top");
    ld_buf_puts(b, overdue ? "true," : "false,");
    if (inc->sign_need) sign_off_json(r, b, inc);
    key(b, "tasks");
    ld_buf_put(b, "[", 1);
    for (int i = 0; i < inc->ntasks; i++) {
        task_json(h, b, inc->tasks[i]);
        ld_buf_put(b, ",", 1);
    }
    close_arr(b);
    if (inc->merged) {
        /* Events that joined it: duplicates (rule) and incidents a supervisor merged. */
        ld_buf_puts(b, ",");
        key(b, "merged");
        ld_buf_put(b, "[", 1);
        for (const ld_merged *m = inc->merged; m; m = m->next) {
            ld_buf_put(b, "{", 1);
            kv_str(b, "event_id", m->event_id);
            kv_str(b, "stream_id", m->stream_id);
            kv_str(b, "source_id", m->source_id);
            if (m->incident_id[0]) kv_str(b, "incident", m->incident_id);
            kv_str(b, "rule", m->rule);
            kv_u64(b, "distance_m", m->distance_m);
            kv_u64(b, "at_ms", m->at);
            close_obj(b);
            ld_buf_put(b, ",", 1);
        }
        close_arr(b);
    }
    if (with_history) {
        ld_buf_put(b, ",", 1);
        if (inc->history_dropped) kv_u64(b, "history_dropped", inc->history_dropped);
        key(b, "history");
        ld_buf_put(b, "[", 1);
        for (int i = 0; i < inc->nhistory; i++) {
            const ld_history *e = &inc->history[i];
            ld_buf_put(b, "{", 1);
            kv_u64(b, "at_ms", ld_history_at(e));
            kv_str(b, "kind", ld_enum_name(&linkd__v1__feed_kind__descriptor, e->kind));
            if (e->kind != LINKD__V1__FEED_KIND__FEED_KIND_INCIDENT_OPENED &&
                e->kind != LINKD__V1__FEED_KIND__FEED_KIND_INCIDENT_CLOSED &&
                e->kind != LINKD__V1__FEED_KIND__FEED_KIND_INCIDENT_MERGED &&
                e->kind != LINKD__V1__FEED_KIND__FEED_KIND_INCIDENT_UNMERGED &&
                e->task < inc->ntasks)
                kv_str(b, "department", r->departments[inc->tasks[e->task]->dept].id);
            kv_u64(b, "level", e->level);
            if (e->terminal >= 0 && e->terminal < r->nterminals)
                kv_str(b, "terminal", r->terminals[e->terminal].id);
            if (e->leg) kv_str(b, "leg", ld_leg_label[(e->leg - 1) % LD_LEG_COUNT]);
            const char *note = ld_notes_text(inc, e->note);
            if (note) kv_str(b, "note", note);
            close_obj(b);
            ld_buf_put(b, ",", 1);
        }
        close_arr(b);
    }
    ld_buf_put(b, "}", 1);
}

void ld_json_terminals(ld_http *h, ld_buf *b)
{
    const ld_rules *r = h->src.engine->rules;
    ld_buf_put(b, "[", 1);
    for (int i = 0; i < r->nterminals; i++) {
        ld_buf_put(b, "{", 1);
        kv_str(b, "id", r->terminals[i].id);
        kv_str(b, "department", r->departments[r->terminals[i].dept].id);
        kv_u64(b, "holding", h->src.engine->terms[i].held);
        key(b, "online");
        ld_buf_puts(b, h->metrics.online[i] ? "true" : "false");
        ld_buf_puts(b, "},");
    }
    close_arr(b);
}

/* ld_json_departments reads the engine's running counts: the board asks every
 * second, and a walk of every open incident held the loop 12 ms at 100,000. */
void ld_json_departments(ld_http *h, ld_buf *b)
{
    const ld_engine *e = h->src.engine;
    const ld_rules *r = e->rules;
    ld_buf_put(b, "[", 1);
    for (int d = 0; d < r->ndepartments && d < LD_COUNTED_DEPTS; d++) {
        int online = 0, terms = 0;
        for (int i = 0; i < r->nterminals; i++)
            if (r->terminals[i].dept == d) terms++, online += h->metrics.online[i];
        uint64_t open = 0;
        for (int s = 0; s < LD_TASK_STATES; s++)
            if (s != LINKD__V1__TASK_STATE__TASK_STATE_RESOLVED) open += e->tasks_by[d][s];
        ld_buf_put(b, "{", 1);
        kv_str(b, "id", r->departments[d].id);
        kv_str(b, "name", r->departments[d].name);
        kv_u64(b, "open_tasks", open);
        kv_u64(b, "unacknowledged",
               e->tasks_by[d][LINKD__V1__TASK_STATE__TASK_STATE_DISPATCHED]);
        kv_u64(b, "escalated", e->escalated_by[d]);
        kv_u64(b, "overdue_at_top", e->overdue_by[d]);
        kv_u64(b, "terminals", (uint64_t)terms);
        kv_u64(b, "terminals_online", (uint64_t)online);
        key(b, "chain");
        ld_buf_put(b, "[", 1);
        for (int l = 0; l < ld_chain_len(r, d); l++) {
            const ld_level *lv = ld_chain_level(r, d, l);
            ld_buf_put(b, "{", 1);
            kv_str(b, "level", lv->name);
            kv_str(b, "terminal", r->terminals[lv->terminal].id);
            kv_u64(b, "wait_ms", lv->wait_ms);
            close_obj(b);
            ld_buf_put(b, ",", 1);
        }
        close_arr(b);
        ld_buf_puts(b, "},");
    }
    close_arr(b);
}

void ld_json_rules(ld_http *h, ld_buf *b)
{
    ld_http_status st;
    memset(&st, 0, sizeof st);
    h->src.status(h->src.ctx, &st);
    const ld_rules *r = h->src.engine->rules;
    ld_buf_put(b, "{", 1);
    kv_str(b, "version", st.rules_version);
    kv_str(b, "dir", st.rules_dir);
    kv_u64(b, "loaded_at_ms", st.rules_loaded_at_ms);
    if (st.reload_attempt_at_ms) kv_u64(b, "last_reload_attempt_ms", st.reload_attempt_at_ms);
    key(b, "last_reload_ok");
    ld_buf_puts(b, st.last_reload_ok ? "true," : "false,");
    kv_u64(b, "reloads", st.reloads);
    kv_u64(b, "reload_failures", st.reload_failures);
    kv_u64(b, "departments", (uint64_t)r->ndepartments);
    kv_u64(b, "terminals", (uint64_t)r->nterminals);
    kv_u64(b, "routes", (uint64_t)r->nroutes);
    close_obj(b);
}

static double quantile_s(const ld_hist *hs, double q)
{
    return hs->n ? (double)ld_hist_quantile(hs, q) / 1000.0 : 0;
}

void ld_json_compliance(ld_http *h, ld_buf *b)
{
    const ld_rules *r = h->src.engine->rules;
    const ld_metrics *m = &h->metrics;
    int slowest = -1;
    double slowest_p90 = -1;
    ld_buf_put(b, "{", 1);
    ld_buf_printf(b, "\"day\":%lld,", (long long)m->day_index);
    key(b, "bands");
    ld_buf_puts(b, "{\"acknowledge\":[\"<=30s\",\"30-60s\",\"60-120s\",\"120-180s\",\">180s\"],"
                   "\"arrive\":[\"<=5m\",\"5-10m\",\"10-15m\",\"15-30m\",\">30m\"],"
                   "\"resolve\":[\"<=30m\",\"30m-1h\",\"1-2h\",\"2-4h\",\">4h\"]},");
    key(b, "departments");
    ld_buf_put(b, "[", 1);
    for (int d = 0; d < m->ndept; d++) {
        ld_buf_put(b, "{", 1);
        kv_str(b, "department", r->departments[d].id);
        for (int l = 0; l < LD_LEG_COUNT; l++) {
            const ld_leg_day *ld = &m->day[d * LD_LEG_COUNT + l];
            key(b, ld_leg_label[l]);
            ld_buf_printf(b, "{\"n\":%llu,\"p90_s\":%.1f,\"p95_s\":%.1f,\"met\":%llu,"
                             "\"missed\":%llu,\"bands\":[%llu,%llu,%llu,%llu,%llu]},",
                          (unsigned long long)ld->ms.n, quantile_s(&ld->ms, 0.90),
                          quantile_s(&ld->ms, 0.95), (unsigned long long)ld->met,
                          (unsigned long long)ld->missed, (unsigned long long)ld->band[0],
                          (unsigned long long)ld->band[1], (unsigned long long)ld->band[2],
                          (unsigned long long)ld->band[3], (unsigned long long)ld->band[4]);
            if (l == LD_LEG_ACK && ld->ms.n && quantile_s(&ld->ms, 0.90) > slowest_p90) {
                slowest_p90 = quantile_s(&ld->ms, 0.90);
                slowest = d;
            }
        }
        close_obj(b);
        ld_buf_put(b, ",", 1);
    }
    close_arr(b);
    ld_buf_put(b, ",", 1);
    key(b, "slowest");
    if (slowest >= 0)
        ld_buf_printf(b, "{\"department\":\"%s\",\"leg\":\"acknowledge\",\"p90_s\":%.1f}",
                      r->departments[slowest].id, slowest_p90);
    else
        ld_buf_puts(b, "null");
    ld_buf_put(b, "}", 1);
}
