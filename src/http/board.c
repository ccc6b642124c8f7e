/* board.c: what the live board's WebSocket carries.
 *
 * A client first gets a snapshot: the open incidents with their tasks and
 * deadlines (the most urgent, --board-max of them, in the board's order:
 * a whole 100,000 was 137 MB and held the loop 1.5 s), the departments, the
 * terminals, the day's compliance. After
 * that, every 250 ms at most, a delta with the incidents that changed
 * (or their ids, if they closed) and the terminals whose presence changed;
 * every second a stats message (departments' load, compliance). The client
 * counts deadlines down itself from now_ms and the clock's scale, so nothing
 * is sent just because time passes. Changes are only tracked while a client
 * is connected; past LD_BOARD_PENDING_MAX changes in one tick, clients get a
 * fresh snapshot instead. */
#include "http/http_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/actions.h"

#define STATS_EVERY_MS 1000

static void mark(ld_http *h, const char *id)
{
    if (h->pending_overflow || ld_map_get(&h->pending_set, id)) return;
    if (h->npending == LD_BOARD_PENDING_MAX) {
        h->pending_overflow = 1;
        return;
    }
    char *slot = h->pending[h->npending++];
    snprintf(slot, LD_INCIDENT_ID_LEN, "%s", id);
    if (ld_map_put(&h->pending_set, slot, slot) != 0) h->pending_overflow = 1;
}

void ld_board_observe(ld_http *h, const ld_observation *o)
{
    if (!h->clients) return;
    if (o->inc) mark(h, o->inc->id);
    else if (o->terminal >= 0) h->terminals_changed = 1;
}

static void head(ld_http *h, ld_buf *b, const char *type)
{
    ld_buf_printf(b, "{\"t\":\"%s\",\"now_ms\":%llu,\"scale\":%g", type,
                  (unsigned long long)ld_clock_now(h->src.clock), h->src.clock->scale);
}

static void stats_body(ld_http *h, ld_buf *b)
{
    ld_buf_puts(b, ",\"open\":");
    ld_buf_u64(b, h->src.engine->open_incidents);
    ld_buf_puts(b, ",\"departments\":");
    ld_json_departments(h, b);
    ld_buf_puts(b, ",\"compliance\":");
    ld_json_compliance(h, b);
}

int ld_board_snapshot(ld_http *h, ld_buf *b)
{
    head(h, b, "snapshot");
    ld_buf_puts(b, ",\"rules\":");
    ld_json_rules(h, b);
    ld_buf_puts(b, ",\"actions\":");
    ld_buf_puts(b, h->token[0] ? "true" : "false");
    ld_buf_puts(b, ",\"terminals\":");
    ld_json_terminals(h, b);
    stats_body(h, b);
    const ld_incident **v;
    size_t n;
    if (ld_http_most_urgent(h, -1, h->cfg.board_max, &v, &n) != 0) return -1;
    ld_buf_printf(b, ",\"limit\":%zu,\"shown\":%zu,\"incidents\":[", h->cfg.board_max, n);
    for (size_t i = 0; i < n; i++) {
        if (i) ld_buf_put(b, ",", 1);
        ld_json_incident(h, b, v[i], 0);
    }
    free(v);
    ld_buf_puts(b, "]}");
    return b->oom ? -1 : 0;
}

static void push_delta(ld_http *h)
{
    ld_buf b;
    ld_buf_init(&b, 0);
    head(h, &b, "delta");
    ld_buf_puts(&b, ",\"upsert\":[");
    int first = 1;
    for (size_t i = 0; i < h->npending; i++) {
        const ld_incident *inc = ld_engine_find(h->src.engine, h->pending[i]);
        if (!inc) continue;
        if (!first) ld_buf_put(&b, ",", 1);
        first = 0;
        ld_json_incident(h, &b, inc, 0);
    }
    ld_buf_puts(&b, "],\"remove\":[");
    first = 1;
    for (size_t i = 0; i < h->npending; i++) {
        if (ld_engine_find(h->src.engine, h->pending[i])) continue;
        if (!first) ld_buf_put(&b, ",", 1);
        first = 0;
        ld_buf_json_str(&b, h->pending[i]);
    }
    ld_buf_put(&b, "]", 1);
    if (h->terminals_changed) {
        ld_buf_puts(&b, ",\"terminals\":");
        ld_json_terminals(h, &b);
    }
    ld_buf_put(&b, "}", 1);
    ld_ws_broadcast(h, &b);
    ld_buf_fini(&b);
}

static void clear_pending(ld_http *h)
{
    for (size_t i = 0; i < h->npending; i++) ld_map_del(&h->pending_set, h->pending[i]);
    h->npending = 0;
    h->pending_overflow = 0;
    h->terminals_changed = 0;
}

void ld_board_tick(ld_http *h, uint64_t now_real)
{
    if (!h->clients) {
        clear_pending(h);
        return;
    }
    if (h->pending_overflow) {
        /* Too much changed at once: a snapshot says it in fewer bytes. */
        ld_buf b;
        ld_buf_init(&b, 0);
        if (ld_board_snapshot(h, &b) == 0) ld_ws_broadcast(h, &b);
        ld_buf_fini(&b);
    } else if (h->npending || h->terminals_changed) {
        push_delta(h);
    }
    clear_pending(h);
    if (now_real - h->last_stats_push >= STATS_EVERY_MS) {
        h->last_stats_push = now_real;
        ld_buf b;
        ld_buf_init(&b, 0);
        head(h, &b, "stats");
        stats_body(h, &b);
        ld_buf_put(&b, "}", 1);
        ld_ws_broadcast(h, &b);
        ld_buf_fini(&b);
    }
}
