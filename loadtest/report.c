/* report.c: what `linkload run` shows: one live progress line while it runs,
 * then the report on stdout, optionally as JSON (--json) and as plots
 * (--plot: data files and a gnuplot script; SVGs if gnuplot is installed). */
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/clock.h"
#include "run.h"

static const char *const RESULT_NAME[] = {"unknown", "ACCEPTED", "DUPLICATE", "REJECTED", "RETRY_LATER"};
static const char *const LEG_NAME[LD_LEG_COUNT] = {"acknowledge", "arrive", "resolve",
                                                   "feedback"};

void lg_take_snapshot(run *r, snapshot *s)
{
    pthread_mutex_lock(&r->mu);
    s->ist = r->ist;
    s->busy = r->busy;
    pthread_mutex_unlock(&r->mu);
    pthread_mutex_lock(&r->tmu);
    s->tst = r->tst;
    pthread_mutex_unlock(&r->tmu);
    pthread_mutex_lock(&r->fmu);
    s->fst = r->fst;
    pthread_mutex_unlock(&r->fmu);
}

static uint64_t failed(const ingest_stats *s)
{
    return s->results[0] + s->results[3] + s->results[4] + s->timeouts + s->errors + s->bad_replies;
}

static uint64_t escalations(const run *r, const feed_stats *f)
{
    uint64_t n = 0;
    for (int i = 0; f->dept && r->rules && i < r->rules->ndepartments; i++)
        for (int l = 0; l < LD_LEG_COUNT; l++) n += f->dept[i].escalated[l];
    return n;
}

/* lg_progress writes one line, rewritten in place on a terminal. */
void lg_progress(run *r, const snapshot *now, const snapshot *prev, double secs)
{
    char a[32], b[32];
    double elapsed = (double)(ld_mono_ns() - r->start_ns) / 1e9;
    int tty = isatty(STDERR_FILENO);
    fprintf(stderr,
            "%s[%5.1fs] sent %6.0f/s  accepted %6.0f/s  errors %" PRIu64 "  in flight %zu  "
            "p99 accept %s  terminal %s  tasks %" PRIu64 "  escalated %" PRIu64 "%s",
            tty ? "\r" : "", elapsed, (double)(now->ist.ev_sent - prev->ist.ev_sent) / secs,
            (double)(now->ist.results[1] - prev->ist.results[1]) / secs, failed(&now->ist), now->busy,
            lg_fmt_ns(ld_hist_quantile(&now->ist.accepted, 0.99), a, sizeof a),
            lg_fmt_ns(ld_hist_quantile(&now->tst.latency, 0.99), b, sizeof b), now->tst.tasks,
            r->o.feed_url ? escalations(r, &now->fst) : now->tst.escalated, tty ? "\033[K" : "\n");
}

void lg_figures(const run *r, const snapshot *s, figures *f)
{
    uint64_t t0 = lg_intended_ns(r, r->warm_reqs);
    uint64_t sched_end = r->start_ns + r->sched_end_ns;
    uint64_t end = s->ist.last_reply_ns > sched_end ? s->ist.last_reply_ns : sched_end;
    f->measured_s = (double)(end - t0) / 1e9;
    double sched_s = (double)(sched_end - t0) / 1e9;
    f->sent_rate = sched_s > 0 ? (double)s->ist.ev_sent / sched_s : 0;
    f->achieved_rate = f->measured_s > 0 ? (double)s->ist.results[1] / f->measured_s : 0;
    f->unreachable = s->ist.replies_all == 0;   /* an overloaded linkd is not an absent one */
}

static double offered_rate(const run *r)
{
    uint64_t n = (r->nreq - r->warm_reqs) * r->o.batch;
    return r->measured_s > 0 ? (double)n / r->measured_s : 0;
}

/* ---- text ------------------------------------------------------------------ */

static void print_hist(FILE *f, const char *label, const ld_hist *h)
{
    char q[5][32], mx[32];
    static const double qs[] = {0.5, 0.9, 0.99, 0.999};
    if (h->n == 0) {
        fprintf(f, "  %-18s (none)\n", label);
        return;
    }
    for (int i = 0; i < 4; i++) lg_fmt_ns(ld_hist_quantile(h, qs[i]), q[i], sizeof q[i]);
    fprintf(f, "  %-18s p50 %s  p90 %s  p99 %s  p99.9 %s  max %s  (n=%" PRIu64 ")\n", label, q[0],
            q[1], q[2], q[3], lg_fmt_ns(h->max, mx, sizeof mx), h->n);
}

static void print_depts(const run *r, const feed_stats *f)
{
    printf("  per department (from the feed; times on linkd's clock):\n");
    printf("    %-16s %9s %9s %8s %10s %10s %10s %7s %6s %6s %6s %6s %8s\n", "department",
           "dispatched", "acked", "in time", "ack p50", "ack p90", "ack p99", "esc:ack", "arrive",
           "resolv", "feedbk", "missed", "resolved");
    for (int i = 0; i < r->rules->ndepartments; i++) {
        const dept_stats *d = &f->dept[i];
        if (!d->dispatched && !d->acknowledged) continue;
        char a[32] = "-", b[32] = "-", c[32] = "-", pct[16] = "-";
        if (d->ack_ns.n) {
            lg_fmt_ns(ld_hist_quantile(&d->ack_ns, 0.5), a, sizeof a);
            lg_fmt_ns(ld_hist_quantile(&d->ack_ns, 0.9), b, sizeof b);
            lg_fmt_ns(ld_hist_quantile(&d->ack_ns, 0.99), c, sizeof c);
        }
        if (d->dispatched) snprintf(pct, sizeof pct, "%.1f%%", 100.0 * (double)d->ack_level0 / (double)d->dispatched);
        printf("    %-16s %9" PRIu64 " %9" PRIu64 " %8s %10s %10s %10s %7" PRIu64 " %6" PRIu64 " %6" PRIu64
               " %6" PRIu64 " %6" PRIu64 " %8" PRIu64 "\n",
               r->rules->departments[i].id, d->dispatched, d->acknowledged, pct, a, b, c,
               d->escalated[LD_LEG_ACK], d->escalated[LD_LEG_ARRIVE], d->escalated[LD_LEG_RESOLVE],
               d->escalated[LD_LEG_FEEDBACK], d->missed, d->resolved);
    }
}

void lg_print_report(const run *r, const snapshot *s, const figures *f)
{
    const ingest_stats *i = &s->ist;
    const term_stats *t = &s->tst;
    char lag[32];
    printf("linkload run %s: scenario %s (status %s), %.0f events/s offered on average over %.1f s (%s "
           "arrivals, time scale %g, batch %u, %u connections x %u in flight, warm-up %.0f s) to %s\n",
           r->run_id, r->sc.name, ld_enum_name(&linkd__v1__status__descriptor, r->sc.status),
           offered_rate(r), r->measured_s, r->sc.poisson ? "Poisson" : "even", r->sc.time_scale, r->o.batch, r->o.connections, r->o.inflight, r->o.warmup, r->o.ingest_url);
    if (f->unreachable) printf("  linkd unreachable: no request was answered\n");
    printf("  sent      %" PRIu64 " events = %.0f events/s (max send lag %s; %" PRIu64 " not sent)\n",
           i->ev_sent, f->sent_rate, lg_fmt_ns(i->max_lag_ns, lag, sizeof lag), i->ev_unsent);
    printf("  results   ACCEPTED %" PRIu64 "  DUPLICATE %" PRIu64 "  REJECTED %" PRIu64
           "  RETRY_LATER %" PRIu64 "  timeout %" PRIu64 "  unanswered %" PRIu64 "  error %" PRIu64
           "  bad reply %" PRIu64 "\n",
           i->results[1], i->results[2], i->results[3], i->results[4], i->timeouts, i->unanswered,
           i->errors + i->results[0], i->bad_replies);
    printf("  achieved  %.0f events/s accepted (%.1f%% of offered) over %.2f s\n", f->achieved_rate,
           offered_rate(r) > 0 ? 100.0 * f->achieved_rate / offered_rate(r) : 0, f->measured_s);
    for (int k = 0; k < i->nreasons; k++)
        printf("  %-11s %8" PRIu64 "  %s\n", RESULT_NAME[i->reasons[k].result], i->reasons[k].n,
               i->reasons[k].reason);
    if (i->reasons_other) printf("  other reasons %" PRIu64 "\n", i->reasons_other);
    print_hist(stdout, "intake->ACCEPTED", &i->accepted);
    if (r->o.terminals) print_hist(stdout, "intake->terminal", &t->latency);
    if (r->nphases > 1) {
        printf("  by phase:\n");
        for (int k = 0; k < r->nphases; k++) {
            const phase_stats *p = &r->phases[k];
            char a[32], b[32];
            printf("    %-22s sent %8" PRIu64 "  accepted %8" PRIu64 "  failed %6" PRIu64
                   "  p99 accept %s  p99 terminal %s\n",
                   r->sc.phases[k].name, p->sent, p->accepted, p->failed,
                   p->acc.n ? lg_fmt_ns(ld_hist_quantile(&p->acc, 0.99), a, sizeof a) : "-",
                   p->term.n ? lg_fmt_ns(ld_hist_quantile(&p->term, 0.99), b, sizeof b) : "-");
        }
    }
    if (r->o.terminals)
        printf("  terminals %zu staffed of %zu: %" PRIu64 " tasks (%" PRIu64 " first deliveries, %" PRIu64
               " redelivered, %" PRIu64 " escalated to them, %" PRIu64 " added later by upgrades, %" PRIu64
               " other runs); %" PRIu64
               " no-shows, %" PRIu64 " offline periods; updates sent: ack %" PRIu64 " on-scene %" PRIu64
               " resolved %" PRIu64 " feedback %" PRIu64 "; results ACCEPTED %" PRIu64 " DUPLICATE %" PRIu64 " REJECTED %" PRIu64
               "; poll errors %" PRIu64 ", refused %" PRIu64 "\n",
               r->nstaffed, r->nterms, t->tasks, t->first, t->redelivered, t->escalated, t->added_later,
               t->foreign,
               t->no_shows, t->offline_periods, t->updates_sent[1], t->updates_sent[3], t->updates_sent[4],
               t->updates_sent[LINKD__V1__UPDATE_KIND__UPDATE_KIND_FEEDBACK],
               t->updates[1], t->updates[2], t->updates[3], t->poll_errors, t->refused);
    if (r->o.feed_url && s->fst.dept) {
        const feed_stats *fs = &s->fst;
        printf("  feed      %" PRIu64 " messages (%" PRIu64 " missed: seq gaps), escalations %" PRIu64
               ", deadline missed at the top %" PRIu64 ", incidents opened %" PRIu64 " closed %" PRIu64 "\n",
               fs->messages, fs->gaps, escalations(r, fs),
               fs->by_kind[LINKD__V1__FEED_KIND__FEED_KIND_DEADLINE_MISSED],
               fs->by_kind[LINKD__V1__FEED_KIND__FEED_KIND_INCIDENT_OPENED],
               fs->by_kind[LINKD__V1__FEED_KIND__FEED_KIND_INCIDENT_CLOSED]);
        print_depts(r, fs);
    }
    if (r->o.terminals) {
        char a[48], b[48], c[48], e[48], fo[48], fb[48];
        lg_dist_format(&r->sc.terminals.feedback, fb, sizeof fb);
        const lg_term_profile *p = &r->sc.terminals;
        lg_dist_format(&p->ack, a, sizeof a);
        lg_dist_format(&p->arrive, b, sizeof b);
        lg_dist_format(&p->resolve, c, sizeof c);
        lg_dist_format(&p->offline_every, e, sizeof e);
        lg_dist_format(&p->offline_for, fo, sizeof fo);
        printf("  terminal behaviour (domain time): acknowledge %s, arrive %s, resolve %s, no-show %.1f%%, "
               "feedback %s, offline every %s for %s%s\n",
               a, b, c, 100 * p->no_show, fb, e, fo, r->sc.ndepts ? "; some departments differ (scenario)" : "");
    }
    if (t->sample_refused[0]) printf("  first refused poll: %s\n", t->sample_refused);
    if (t->sample_update[0]) printf("  first rejected update: %s\n", t->sample_update);
    fflush(stdout);
}

/* ---- JSON ------------------------------------------------------------------- */

static void json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') fprintf(f, "\\%c", c);
        else if (c < 0x20) fprintf(f, "\\u%04x", c);
        else fputc(c, f);
    }
    fputc('"', f);
}

static void json_hist(FILE *f, const char *name, const ld_hist *h)
{
    fprintf(f,
            "\"%s\":{\"n\":%" PRIu64 ",\"p50_us\":%.1f,\"p90_us\":%.1f,\"p99_us\":%.1f,"
            "\"p999_us\":%.1f,\"max_us\":%.1f,\"mean_us\":%.1f}",
            name, h->n, (double)ld_hist_quantile(h, 0.5) / 1e3, (double)ld_hist_quantile(h, 0.9) / 1e3,
            (double)ld_hist_quantile(h, 0.99) / 1e3, (double)ld_hist_quantile(h, 0.999) / 1e3,
            (double)h->max / 1e3, ld_hist_mean(h) / 1e3);
}

static void json_depts(FILE *out, const run *r, const feed_stats *f)
{
    fprintf(out, ",\"departments\":{");
    int first = 1;
    for (int i = 0; i < r->rules->ndepartments; i++) {
        const dept_stats *d = &f->dept[i];
        if (!d->dispatched && !d->acknowledged) continue;
        fprintf(out, "%s\"%s\":{\"dispatched\":%" PRIu64 ",\"acknowledged\":%" PRIu64
                     ",\"acknowledged_in_time\":%" PRIu64 ",\"on_scene\":%" PRIu64 ",\"resolved\":%" PRIu64
                     ",\"rejected\":%" PRIu64 ",\"deadline_missed\":%" PRIu64 ",\"escalated\":{",
                first ? "" : ",", r->rules->departments[i].id, d->dispatched, d->acknowledged,
                d->ack_level0, d->on_scene, d->resolved, d->rejected, d->missed);
        for (int l = 0; l < LD_LEG_COUNT; l++)
            fprintf(out, "%s\"%s\":%" PRIu64, l ? "," : "", LEG_NAME[l], d->escalated[l]);
        fprintf(out, "},");
        json_hist(out, "acknowledge_time", &d->ack_ns);
        fputc('}', out);
        first = 0;
    }
    fputc('}', out);
}

int lg_write_json(const run *r, const snapshot *s, const figures *f)
{
    FILE *out = fopen(r->o.json, "w");
    if (!out) {
        perror(r->o.json);
        return -1;
    }
    const ingest_stats *i = &s->ist;
    const term_stats *t = &s->tst;
    fprintf(out, "{\"mode\":\"run\",\"run_id\":\"%s\",\"scenario\":", r->run_id);
    json_str(out, r->sc.name);
    fprintf(out, ",\"status\":\"%s\"", ld_enum_name(&linkd__v1__status__descriptor, r->sc.status));
    fprintf(out,
            ",\"unreachable\":%s,\"connect_errors\":0,\"offered_rate\":%.0f,\"duration_s\":%.3f,"
            "\"arrivals\":\"%s\",\"time_scale\":%g,\"batch\":%u,\"connections\":%u,\"inflight\":%u,"
            "\"sent\":%" PRIu64 ",\"sent_rate\":%.0f,\"not_sent\":%" PRIu64 ",\"max_send_lag_us\":%.1f,"
            "\"achieved_rate\":%.0f,\"accepted\":%" PRIu64 ",\"duplicate\":%" PRIu64
            ",\"rejected\":%" PRIu64 ",\"retry_later\":%" PRIu64 ",\"timeouts\":%" PRIu64
            ",\"unanswered\":%" PRIu64 ",\"errors\":%" PRIu64 ",\"bad_replies\":%" PRIu64 ",",
            f->unreachable ? "true" : "false", offered_rate(r), r->measured_s,
            r->sc.poisson ? "poisson" : "constant", r->sc.time_scale, r->o.batch, r->o.connections,
            r->o.inflight, i->ev_sent, f->sent_rate, i->ev_unsent, (double)i->max_lag_ns / 1e3,
            f->achieved_rate, i->results[1], i->results[2], i->results[3], i->results[4], i->timeouts,
            i->unanswered, i->errors + i->results[0], i->bad_replies);
    fprintf(out, "\"reasons\":[");
    for (int k = 0; k < i->nreasons; k++) {
        fprintf(out, "%s{\"result\":\"%s\",\"n\":%" PRIu64 ",\"reason\":", k ? "," : "",
                RESULT_NAME[i->reasons[k].result], i->reasons[k].n);
        json_str(out, i->reasons[k].reason);
        fputc('}', out);
    }
    fprintf(out, "],\"reasons_other\":%" PRIu64 ",", i->reasons_other);
    json_hist(out, "accept_latency", &i->accepted);
    fputc(',', out);
    json_hist(out, "terminal_latency", &t->latency);
    fprintf(out, ",\"phases\":[");
    for (int k = 0; k < r->nphases; k++) {
        const phase_stats *p = &r->phases[k];
        fprintf(out, "%s{\"name\":", k ? "," : "");
        json_str(out, r->sc.phases[k].name);
        fprintf(out, ",\"sent\":%" PRIu64 ",\"accepted\":%" PRIu64 ",\"failed\":%" PRIu64 ",", p->sent,
                p->accepted, p->failed);
        json_hist(out, "accept_latency", &p->acc);
        fputc(',', out);
        json_hist(out, "terminal_latency", &p->term);
        fputc('}', out);
    }
    fprintf(out,
            "],\"terminals\":%zu,\"tasks\":%" PRIu64 ",\"tasks_first\":%" PRIu64
            ",\"tasks_redelivered\":%" PRIu64 ",\"tasks_escalated\":%" PRIu64
            ",\"tasks_added_later\":%" PRIu64 ",\"no_shows\":%" PRIu64
            ",\"offline_periods\":%" PRIu64 ",\"updates_sent\":%" PRIu64 ",\"updates_accepted\":%" PRIu64
            ",\"updates_duplicate\":%" PRIu64 ",\"updates_rejected\":%" PRIu64 ",\"poll_errors\":%" PRIu64,
            r->o.terminals ? r->nstaffed : 0, t->tasks, t->first, t->redelivered, t->escalated,
            t->added_later, t->no_shows, t->offline_periods,
            t->updates_sent[1] + t->updates_sent[2] + t->updates_sent[3] + t->updates_sent[4] +
                t->updates_sent[LINKD__V1__UPDATE_KIND__UPDATE_KIND_FEEDBACK],
            t->updates[1], t->updates[2], t->updates[3], t->poll_errors);
    if (r->o.feed_url && s->fst.dept) {
        const feed_stats *fs = &s->fst;
        fprintf(out,
                ",\"feed\":{\"messages\":%" PRIu64 ",\"missed\":%" PRIu64 ",\"escalations\":%" PRIu64
                ",\"deadline_missed\":%" PRIu64 ",\"incidents_opened\":%" PRIu64 ",\"incidents_closed\":%" PRIu64
                ",\"tasks_dispatched\":%" PRIu64 "}",
                fs->messages, fs->gaps, escalations(r, fs),
                fs->by_kind[LINKD__V1__FEED_KIND__FEED_KIND_DEADLINE_MISSED],
                fs->by_kind[LINKD__V1__FEED_KIND__FEED_KIND_INCIDENT_OPENED],
                fs->by_kind[LINKD__V1__FEED_KIND__FEED_KIND_INCIDENT_CLOSED],
                fs->by_kind[LINKD__V1__FEED_KIND__FEED_KIND_TASK_DISPATCHED]);
        json_depts(out, r, fs);
    }
    fprintf(out, "}\n");
    int bad = ferror(out);
    if (fclose(out) != 0 || bad) {
        perror(r->o.json);
        return -1;
    }
    return 0;
}

/* ---- plots ------------------------------------------------------------------- */

static FILE *open_with(const char *prefix, const char *suffix, char *path, size_t len)
{
    snprintf(path, len, "%s%s", prefix, suffix);
    FILE *f = fopen(path, "w");
    if (!f) perror(path);
    return f;
}

/* lg_write_plots writes PREFIX-timeline.tsv (per slice of intended send
 * time: offered and accepted rates, accept and terminal p50/p99/max in ms),
 * PREFIX-percentiles.tsv (the whole distributions, HDR-style: percentile
 * against 1/(1-q)), PREFIX.gp, and runs gnuplot on it when installed. */
int lg_write_plots(const run *r, const snapshot *s)
{
    char tl[512], pc[512], gp[512];
    FILE *f = open_with(r->o.plot, "-timeline.tsv", tl, sizeof tl);
    if (!f) return -1;
    double w = (double)r->slice_ns / 1e9;
    fprintf(f, "# t_s\toffered_per_s\taccepted_per_s\tfailed\tacc_p50_ms\tacc_p99_ms\tacc_max_ms\t"
               "term_p50_ms\tterm_p99_ms\tterm_max_ms\n");
    for (unsigned i = 0; i < r->nslices; i++) {
        const slice_stats *sl = &r->slices[i];
        fprintf(f, "%.3f\t%.1f\t%.1f\t%" PRIu64 "\t%.3f\t%.3f\t%.3f\t%.3f\t%.3f\t%.3f\n", (i + 0.5) * w,
                (double)sl->sent / w, (double)sl->accepted / w, sl->failed,
                (double)ld_hist_quantile(&sl->acc, 0.5) / 1e6, (double)ld_hist_quantile(&sl->acc, 0.99) / 1e6,
                (double)sl->acc.max / 1e6, (double)ld_hist_quantile(&sl->term, 0.5) / 1e6,
                (double)ld_hist_quantile(&sl->term, 0.99) / 1e6, (double)sl->term.max / 1e6);
    }
    fclose(f);
    if (!(f = open_with(r->o.plot, "-percentiles.tsv", pc, sizeof pc))) return -1;
    fprintf(f, "# percentile\t1/(1-q)\taccept_ms\tterminal_ms\n");
    static const double qs[] = {0.0, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.995, 0.999, 0.9995, 0.9999, 0.99999};
    for (size_t i = 0; i < sizeof qs / sizeof qs[0]; i++)
        fprintf(f, "%.3f\t%.1f\t%.3f\t%.3f\n", qs[i] * 100, 1.0 / (1.0 - qs[i]),
                (double)ld_hist_quantile(&s->ist.accepted, qs[i]) / 1e6,
                (double)ld_hist_quantile(&s->tst.latency, qs[i]) / 1e6);
    fclose(f);
    if (!(f = open_with(r->o.plot, ".gp", gp, sizeof gp))) return -1;
    fprintf(f,
            "# gnuplot %s.gp: latency over time and the percentile distribution of run %s\n"
            "set terminal svg size 900,500 dynamic background rgb 'white'\n"
            "set datafile separator \"\\t\"\n"
            "set output '%s-latency.svg'\n"
            "set title 'linkload %s (%s): latency by intended send time'\n"
            "set xlabel 'seconds into the measured run'\n"
            "set ylabel 'latency (ms)'\nset logscale y\nset y2label 'events/s'\nset y2tics\nset y2range [0:*]\nset ytics nomirror\n"
            "set key top left\n"
            "plot '%s' using 1:6 with lines title 'intake->ACCEPTED p99', "
            "'' using 1:5 with lines title 'intake->ACCEPTED p50', "
            "'' using 1:9 with lines title 'intake->terminal p99', "
            "'' using 1:2 axes x1y2 with lines dt 2 title 'offered/s', "
            "'' using 1:3 axes x1y2 with lines dt 3 title 'accepted/s'\n"
            "set output '%s-percentiles.svg'\n"
            "set title 'linkload %s (%s): latency by percentile'\n"
            "unset y2label\nunset y2tics\nset ytics mirror\n"
            "set xlabel 'percentile'\nset logscale x\n"
            "set xtics ('50%%%%' 2, '90%%%%' 10, '99%%%%' 100, '99.9%%%%' 1000, '99.99%%%%' 10000, '99.999%%%%' 100000)\n"
            "plot '%s' using 2:3 with linespoints title 'intake->ACCEPTED', "
            "'' using 2:4 with linespoints title 'intake->terminal'\n",
            r->o.plot, r->run_id, r->o.plot, r->run_id, r->sc.name, tl, r->o.plot, r->run_id, r->sc.name, pc);
    fclose(f);
    pid_t pid = fork();
    if (pid == 0) {
        int devnull = open("/dev/null", O_WRONLY);
        if (devnull >= 0) dup2(devnull, STDOUT_FILENO);
        execlp("gnuplot", "gnuplot", gp, (char *)NULL);
        _exit(127);
    }
    int st = 0;
    if (pid < 0 || waitpid(pid, &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        fprintf(stderr, "linkload run: plots not drawn (%s): data in %s and %s; script %s\n",
                WIFEXITED(st) && WEXITSTATUS(st) == 127 ? "gnuplot is not installed" : "gnuplot failed",
                tl, pc, gp);
        return -1;
    }
    fprintf(stderr, "linkload run: plots %s-latency.svg and %s-percentiles.svg\n", r->o.plot, r->o.plot);
    return 0;
}
