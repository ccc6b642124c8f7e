/* prom.c: /metrics in the Prometheus text exposition format (0.0.4).
 *
 * Rendered on each scrape from the counters the subsystems keep and the ones
 * kept here from the engine's observations; gauges of open tasks walk the
 * open incidents once. Label values are bounded: departments, terminals,
 * legs, levels, kinds, results and reasons, never incident ids. */
#include "http/http_int.h"

#include <dirent.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "dispatch/dispatch.h"
#include "engine/actions.h"
#include "engine/window.h"
#include "ingest/ingest.h"
#include "store/store.h"
#include "wire/wire.h"

static void head(ld_buf *b, const char *name, const char *type, const char *help)
{
    ld_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void one(ld_buf *b, const char *name, const char *type, const char *help, uint64_t v)
{
    head(b, name, type, help);
    ld_buf_printf(b, "%s %llu\n", name, (unsigned long long)v);
}

static void label(ld_buf *b, const char *k, const char *v, int first)
{
    ld_buf_printf(b, "%s%s=\"", first ? "" : ",", k);
    ld_buf_prom_label(b, v);
    ld_buf_put(b, "\"", 1);
}

static void intake(ld_http *h, ld_buf *b)
{
    const ld_ingest_stats *s = &h->src.ingest->stats;
    static const char *const results[5] = {NULL, "accepted", "duplicate", "rejected",
                                            "retry_later"};
    head(b, "linkd_intake_events_total", "counter",
         "Events answered on intake, by kind (unknown: the request did not decode) and result.");
    for (int k = 0; k < LD_KIND_COUNT; k++)
        for (int r = 1; r < 5; r++) {
            ld_buf_puts(b, "linkd_intake_events_total{");
            label(b, "kind", k ? ld_kind_name(k) : "unknown", 1);
            label(b, "result", results[r], 0);
            ld_buf_printf(b, "} %llu\n", (unsigned long long)s->by_kind[k][r]);
        }
    head(b, "linkd_intake_rejected_total", "counter", "Events rejected, by reason.");
    for (int r = 0; r < LD_REJECT_COUNT; r++) {
        ld_buf_puts(b, "linkd_intake_rejected_total{");
        label(b, "reason", ld_reject_label(r), 1);
        ld_buf_printf(b, "} %llu\n", (unsigned long long)s->rejected_by[r]);
    }
    one(b, "linkd_intake_requests_total", "counter", "Intake requests received.", s->requests);
    one(b, "linkd_intake_malformed_requests_total", "counter",
        "Intake requests that were not a valid IngestRequest.", s->malformed);
    one(b, "linkd_intake_rate_limited_total", "counter",
        "Events answered RETRY_LATER because their source was over --source-rate.",
        s->rate_limited);
    one(b, "linkd_intake_waiting_requests", "gauge", "Intake requests waiting for Redis.",
        h->src.ingest->inflight);
}

/* ladder_metrics: drills counted apart, reminders and sign-offs (escalation
 * ladders). Drill incidents and tasks are also in the totals above. */
static void ladder_metrics(ld_buf *b, const ld_engine *e)
{
    one(b, "linkd_drill_incidents_total", "counter",
        "Incidents opened by exercise or test events (status EXERCISE or TEST).",
        e->stats.drill_incidents);
    one(b, "linkd_drill_tasks_total", "counter", "Tasks dispatched for exercise or test events.",
        e->stats.drill_tasks);
    one(b, "linkd_reminders_total", "counter",
        "Reminders sent to the holders of tasks before a deadline (rules: reminders).",
        e->stats.reminders);
    one(b, "linkd_incidents_signed_off_total", "counter",
        "Incidents every department of their sign_off acknowledged.", e->stats.signed_off);
}

/* Correlation rules (rules: correlate): upgrades and the windows' state. */
static void correlation_metrics(const ld_engine *e, ld_buf *b)
{
    ld_window_stats st = {0};
    if (e->windows) ld_windows_stats(e->windows, &st);
    one(b, "linkd_correlation_upgrades_total", "counter",
        "Incidents upgraded by correlation rules.", e->stats.upgrades);
    one(b, "linkd_correlation_windows_open", "gauge", "Correlation window keys open now.",
        st.keys);
    one(b, "linkd_correlation_window_bytes", "gauge",
        "Memory of the correlation windows and their key table.", st.bytes);
    one(b, "linkd_correlation_keys_full_total", "counter",
        "Events not counted because the correlation key table was full.", st.keys_full);
    one(b, "linkd_correlation_unkeyed_total", "counter",
        "Events a correlation rule matched that lack its key or distinct field.", st.unkeyed);
    one(b, "linkd_correlation_suppressed_total", "counter",
        "Events on a key that fired less than a window ago (one upgrade per window).",
        st.suppressed);
}

static void engine_metrics(ld_http *h, ld_buf *b)
{
    const ld_engine *e = h->src.engine;
    const ld_rules *r = e->rules;
    const ld_metrics *m = &h->metrics;
    one(b, "linkd_incidents_opened_total", "counter", "Incidents opened.",
        e->stats.incidents_opened);
    one(b, "linkd_incidents_closed_total", "counter", "Incidents closed.",
        e->stats.incidents_closed);
    one(b, "linkd_incidents_open", "gauge", "Incidents open now.", e->open_incidents);
    one(b, "linkd_events_unrouted_total", "counter",
        "Accepted events no route matched (sent to command).", e->stats.unrouted);
    ladder_metrics(b, e);
    correlation_metrics(e, b);

    head(b, "linkd_tasks", "gauge", "Tasks of open incidents, by department and state.");
    for (int d = 0; d < m->ndept && d < LD_COUNTED_DEPTS; d++)
        for (int s = 1; s < LD_TASK_STATES; s++) {
            const char *sn = ld_enum_name(&linkd__v1__task_state__descriptor, s);
            if (!sn) continue;
            ld_buf_puts(b, "linkd_tasks{");
            label(b, "department", r->departments[d].id, 1);
            label(b, "state", sn, 0);
            ld_buf_printf(b, "} %llu\n", (unsigned long long)e->tasks_by[d][s]);
        }
    head(b, "linkd_tasks_dispatched_total", "counter", "Tasks dispatched, by department.");
    for (int d = 0; d < m->ndept; d++) {
        ld_buf_puts(b, "linkd_tasks_dispatched_total{");
        label(b, "department", r->departments[d].id, 1);
        ld_buf_printf(b, "} %llu\n", (unsigned long long)m->dispatched[d]);
    }
    head(b, "linkd_escalations_total", "counter",
         "Escalations, by department and the level of its chain reached (1 = first above duty).");
    for (int d = 0; d < m->ndept; d++) {
        int n = ld_chain_len(r, d);
        for (int l = 1; l < n && l < LD_CHAIN_MAX; l++) {
            ld_buf_puts(b, "linkd_escalations_total{");
            label(b, "department", r->departments[d].id, 1);
            ld_buf_printf(b, ",level=\"%d\"", l);
            label(b, "level_name", ld_chain_level(r, d, l)->name, 0);
            ld_buf_printf(b, "} %llu\n", (unsigned long long)m->escalations[d * LD_CHAIN_MAX + l]);
        }
    }
    head(b, "linkd_deadline_missed_at_top_total", "counter",
         "Leg deadlines missed at the top of the chain, by department and leg.");
    for (int d = 0; d < m->ndept; d++)
        for (int l = 0; l < LD_LEG_COUNT; l++) {
            ld_buf_puts(b, "linkd_deadline_missed_at_top_total{");
            label(b, "department", r->departments[d].id, 1);
            label(b, "leg", ld_leg_label[l], 0);
            ld_buf_printf(b, "} %llu\n", (unsigned long long)m->missed_top[d * LD_LEG_COUNT + l]);
        }
    head(b, "linkd_legs_total", "counter",
         "Legs counted for deadline compliance, by department, leg and outcome (met: done within "
         "the route's budget; missed: its deadline passed first).");
    for (int d = 0; d < m->ndept; d++)
        for (int l = 0; l < LD_LEG_COUNT; l++)
            for (int o = 0; o < 2; o++) {
                const ld_leg_metrics *lm = &m->legs[d * LD_LEG_COUNT + l];
                ld_buf_puts(b, "linkd_legs_total{");
                label(b, "department", r->departments[d].id, 1);
                label(b, "leg", ld_leg_label[l], 0);
                label(b, "outcome", o ? "missed" : "met", 0);
                ld_buf_printf(b, "} %llu\n", (unsigned long long)(o ? lm->missed : lm->met));
            }
    head(b, "linkd_leg_duration_seconds", "histogram",
         "Time from dispatch until a leg was done (domain clock), by department and leg.");
    for (int d = 0; d < m->ndept; d++)
        for (int l = 0; l < LD_LEG_COUNT; l++) {
            const ld_leg_metrics *lm = &m->legs[d * LD_LEG_COUNT + l];
            for (int i = 0; i <= LD_PROM_BUCKETS; i++) {
                ld_buf_puts(b, "linkd_leg_duration_seconds_bucket{");
                label(b, "department", r->departments[d].id, 1);
                label(b, "leg", ld_leg_label[l], 0);
                if (i < LD_PROM_BUCKETS)
                    ld_buf_printf(b, ",le=\"%.10g\"} %llu\n", ld_prom_bounds_s[i],
                                  (unsigned long long)lm->le[i]);
                else
                    ld_buf_printf(b, ",le=\"+Inf\"} %llu\n", (unsigned long long)lm->count);
            }
            ld_buf_puts(b, "linkd_leg_duration_seconds_sum{");
            label(b, "department", r->departments[d].id, 1);
            label(b, "leg", ld_leg_label[l], 0);
            ld_buf_printf(b, "} %.3f\n", lm->sum_s);
            ld_buf_puts(b, "linkd_leg_duration_seconds_count{");
            label(b, "department", r->departments[d].id, 1);
            label(b, "leg", ld_leg_label[l], 0);
            ld_buf_printf(b, "} %llu\n", (unsigned long long)lm->count);
        }
    static const char *const actions[LD_ACTION_KINDS] = {"reassign", "escalate", "extend",
                                                         "close",    "merge",    "split"};
    head(b, "linkd_supervisor_actions_total", "counter",
         "Supervisor actions taken through the API, by department of the task and action.");
    for (int d = 0; d < m->ndept; d++)
        for (int a = 0; a < LD_ACTION_KINDS; a++) {
            ld_buf_puts(b, "linkd_supervisor_actions_total{");
            label(b, "department", r->departments[d].id, 1);
            label(b, "action", actions[a], 0);
            ld_buf_printf(b, "} %llu\n", (unsigned long long)m->actions[d * LD_ACTION_KINDS + a]);
        }
}

static void terminals(ld_http *h, ld_buf *b)
{
    const ld_rules *r = h->src.engine->rules;
    const ld_dispatch_stats *s = &h->src.dispatch->stats;
    head(b, "linkd_terminal_online", "gauge",
         "1 if the terminal polled within --offline-after, else 0.");
    for (int i = 0; i < r->nterminals; i++) {
        ld_buf_puts(b, "linkd_terminal_online{");
        label(b, "terminal", r->terminals[i].id, 1);
        label(b, "department", r->departments[r->terminals[i].dept].id, 0);
        ld_buf_printf(b, "} %d\n", h->metrics.online[i]);
    }
    head(b, "linkd_terminal_tasks_held", "gauge",
         "Tasks a terminal holds to deliver or resend (not yet acknowledged).");
    for (int i = 0; i < r->nterminals; i++) {
        ld_buf_puts(b, "linkd_terminal_tasks_held{");
        label(b, "terminal", r->terminals[i].id, 1);
        label(b, "department", r->departments[r->terminals[i].dept].id, 0);
        ld_buf_printf(b, "} %u\n", h->src.engine->terms[i].held);
    }
    one(b, "linkd_terminal_polls_total", "counter", "Terminal polls received.", s->polls);
    one(b, "linkd_terminal_bad_polls_total", "counter", "Terminal polls refused.", s->bad_polls);
    one(b, "linkd_terminal_updates_total", "counter", "Task updates from terminals.", s->updates);
    one(b, "linkd_terminal_updates_rejected_total", "counter", "Task updates refused.",
        s->updates_rejected);
    one(b, "linkd_tasks_sent_total", "counter", "Tasks carried in poll replies.", s->tasks_sent);
    one(b, "linkd_feed_events_sent_total", "counter", "Feed events published.", s->feed_sent);
    one(b, "linkd_feed_events_dropped_total", "counter",
        "Feed events dropped because the send queue was full.", s->feed_dropped);
}

static void redis(ld_http *h, ld_buf *b)
{
    const ld_store *s = h->src.store;
    one(b, "linkd_redis_up", "gauge", "1 if Redis is connected and usable.", (uint64_t)ld_store_up(s));
    one(b, "linkd_redis_commands_total", "counter", "Redis commands sent.", s->stats.commands);
    one(b, "linkd_redis_errors_total", "counter", "Redis commands that failed.", s->stats.errors);
    one(b, "linkd_redis_timeouts_total", "counter",
        "Redis connections dropped for answering nothing within --redis-timeout.", s->stats.timeouts);
    one(b, "linkd_redis_reconnects_total", "counter", "Redis reconnections.", s->stats.reconnects);
    one(b, "linkd_redis_records_written_total", "counter", "Incident records written behind.",
        s->stats.records_written);
    one(b, "linkd_redis_write_behind_waits_total", "counter",
        "Write-behind ticks that waited because Redis had not taken the previous writes yet.",
        s->stats.write_behind_waits);
    one(b, "linkd_redis_inflight_commands", "gauge", "Redis commands waiting for a reply.",
        s->inflight);
}

static void process(ld_http *h, ld_buf *b)
{
    ld_http_status st;
    memset(&st, 0, sizeof st);
    h->src.status(h->src.ctx, &st);
    const ld_metrics *m = &h->metrics;
    static const double lag_bounds[8] = {0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1};
    head(b, "linkd_build_info", "gauge", "linkd's version.");
    ld_buf_puts(b, "linkd_build_info{");
    label(b, "version", LINKD_VERSION, 1);
    ld_buf_puts(b, "} 1\n");
    head(b, "linkd_rules_info", "gauge", "The running rule set's version (digest of its files).");
    ld_buf_puts(b, "linkd_rules_info{");
    label(b, "version", st.rules_version, 1);
    ld_buf_puts(b, "} 1\n");
    head(b, "linkd_rules_last_reload_successful", "gauge",
         "1 unless the last reload (SIGHUP) failed.");
    ld_buf_printf(b, "linkd_rules_last_reload_successful %d\n", st.last_reload_ok);
    head(b, "linkd_rules_loaded_timestamp_seconds", "gauge",
         "Unix time the running rules were loaded.");
    ld_buf_printf(b, "linkd_rules_loaded_timestamp_seconds %.3f\n",
                  (double)st.rules_loaded_at_ms / 1000.0);
    one(b, "linkd_rules_reloads_total", "counter", "Rule reloads attempted.", st.reloads);
    one(b, "linkd_rules_reload_failures_total", "counter", "Rule reloads that failed.",
        st.reload_failures);
    one(b, "linkd_rules_reload_records_unwritten", "gauge",
        "Reload records waiting for Redis (ld:reloads).", st.reload_records_unwritten);
    head(b, "linkd_audit_lines_total", "counter",
         "Audit trail lines: made, written to Redis, sent again after Redis refused them "
         "or the connection dropped, dropped because too many waited.");
    ld_buf_printf(b, "linkd_audit_lines_total{outcome=\"appended\"} %llu\n"
                  "linkd_audit_lines_total{outcome=\"written\"} %llu\n"
                  "linkd_audit_lines_total{outcome=\"resent\"} %llu\n"
                  "linkd_audit_lines_total{outcome=\"dropped\"} %llu\n",
                  (unsigned long long)st.audit_appended, (unsigned long long)st.audit_written,
                  (unsigned long long)st.audit_resent, (unsigned long long)st.audit_dropped);
    one(b, "linkd_audit_lines_waiting", "gauge", "Audit trail lines not yet in Redis.",
        st.audit_waiting);
    one(b, "linkd_audit_unexpired_total", "counter",
        "Closed incidents' audit trails Redis did not give their time to live.",
        st.audit_unexpired);
    one(b, "linkd_ready", "gauge", "1 when intake is open (recovered, Redis up, listening).",
        (uint64_t)(st.intake_open && ld_store_up(h->src.store) && !st.stopping &&
                   !st.life_safety_only));
    head(b, "linkd_loop_lag_seconds", "histogram",
         "How late the loop ran a 250 ms timer: time the loop was busy elsewhere.");
    for (int i = 0; i < 8; i++)
        ld_buf_printf(b, "linkd_loop_lag_seconds_bucket{le=\"%g\"} %llu\n", lag_bounds[i],
                      (unsigned long long)m->lag_le[i]);
    ld_buf_printf(b, "linkd_loop_lag_seconds_bucket{le=\"+Inf\"} %llu\n",
                  (unsigned long long)m->lag_count);
    ld_buf_printf(b, "linkd_loop_lag_seconds_sum %.6f\nlinkd_loop_lag_seconds_count %llu\n",
                  m->lag_sum_s, (unsigned long long)m->lag_count);
    head(b, "linkd_loop_lag_max_seconds", "gauge", "The largest loop lag seen.");
    ld_buf_printf(b, "linkd_loop_lag_max_seconds %.6f\n", m->lag_max_s);
}

/* count_fds counts this process's open file descriptors (/proc/self/fd,
 * less the one reading it); -1 if it cannot. /proc is in memory: cheap
 * enough for the loop, once per scrape. */
static long count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d) return -1;
    long n = 0;
    for (struct dirent *e; (e = readdir(d));)
        if (e->d_name[0] != '.') n++;
    closedir(d);
    return n - 1;
}

/* rss_bytes reads the resident set size from /proc/self/statm; 0 if it cannot. */
static unsigned long long rss_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long long size = 0, resident = 0;
    if (!f) return 0;
    if (fscanf(f, "%llu %llu", &size, &resident) != 2) resident = 0;
    fclose(f);
    return resident * (unsigned long long)sysconf(_SC_PAGESIZE);
}

/* The standard process metrics (Prometheus client conventions): open file
 * descriptors against the limit (a connection NNG never reaps, the 1.5.2
 * defect in docs/ARCHITECTURE.md, shows here first), memory and CPU. */
static void process_std(ld_buf *b)
{
    long fds = count_fds();
    if (fds >= 0) one(b, "process_open_fds", "gauge", "Number of open file descriptors.",
                      (uint64_t)fds);
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
        one(b, "process_max_fds", "gauge", "Maximum number of open file descriptors.",
            (uint64_t)rl.rlim_cur);
    unsigned long long rss = rss_bytes();
    if (rss) one(b, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.",
                 rss);
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) == 0) {
        head(b, "process_cpu_seconds_total", "counter", "Total user and system CPU time spent "
             "in seconds.");
        ld_buf_printf(b, "process_cpu_seconds_total %.3f\n",
                      (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
                          (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6);
    }
}

static void http(ld_http *h, ld_buf *b)
{
    const ld_http_stats *s = &h->stats;
    head(b, "linkd_http_responses_total", "counter", "HTTP answers, by status class.");
    for (int c = 1; c < 6; c++)
        ld_buf_printf(b, "linkd_http_responses_total{class=\"%dxx\"} %llu\n", c,
                      (unsigned long long)s->responses[c]);
    head(b, "linkd_http_errors_total", "counter", "HTTP error answers, by status code.");
    static const int codes[] = {400, 401, 403, 404, 405, 409, 413, 500, 503};
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++)
        ld_buf_printf(b, "linkd_http_errors_total{status=\"%d\"} %llu\n", codes[i],
                      (unsigned long long)s->errors_by_status[codes[i]]);
    one(b, "linkd_http_bodies_too_large_total", "counter",
        "Requests refused for a body over the limit.", s->bodies_too_large);
    one(b, "linkd_websocket_clients", "gauge", "Board clients connected.", (uint64_t)h->nclients);
    one(b, "linkd_websocket_messages_total", "counter", "Board messages broadcast.",
        s->ws_messages);
    one(b, "linkd_websocket_frames_too_large_total", "counter",
        "Board clients closed for sending a message over the limit.", s->ws_frames_too_large);
    one(b, "linkd_websocket_resyncs_total", "counter",
        "Board clients that fell behind and were sent a fresh snapshot.", s->ws_clients_dropped);
}

void ld_http_render_metrics(ld_http *h, ld_buf *b)
{
    process(h, b);
    process_std(b);
    intake(h, b);
    engine_metrics(h, b);
    terminals(h, b);
    redis(h, b);
    http(h, b);
}
