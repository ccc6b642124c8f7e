#include "http/metrics.h"

#include <stdlib.h>
#include <string.h>

#include "core/err.h"

#define FK(x) LINKD__V1__FEED_KIND__FEED_KIND_##x
#define DAY_MS 86400000ll
#define CST_OFFSET_MS (8ll * 3600 * 1000) /* China Standard Time, UTC+8, no DST */

const double ld_prom_bounds_s[LD_PROM_BUCKETS] = {
    10, 30, 60, 120, 180, 300, 600, 900, 1800, 3600, 7200, 14400, 86400, 604800, 1296000};
const char *const ld_leg_label[LD_LEG_COUNT] = {"acknowledge", "arrive", "resolve",
                                                "feedback"};
/* Acknowledged within 30 s, 30-60 s, 60-120 s, 120-180 s, over 180 s; on
 * scene within 5, 10, 15, 30 min, later; resolved, and feedback (反馈), within
 * 30 min, 1, 2, 4 h, later. */
const double ld_band_bounds_s[LD_LEG_COUNT][LD_BANDS - 1] = {
    {30, 60, 120, 180}, {300, 600, 900, 1800}, {1800, 3600, 7200, 14400},
    {1800, 3600, 7200, 14400}};

static const double lag_bounds_s[8] = {0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1};

static void index_routes(ld_metrics *m, const ld_rules *r)
{
    ld_map_fini(&m->route_by_where);
    ld_map_init(&m->route_by_where);
    for (int i = 0; i < r->nroutes; i++)
        ld_map_put(&m->route_by_where, r->routes[i].where, &r->routes[i]);
    m->indexed = r;
}

int ld_metrics_init(ld_metrics *m, const ld_rules *r)
{
    memset(m, 0, sizeof *m);
    size_t nd = (size_t)r->ndepartments;
    m->ndept = r->ndepartments;
    m->nterm = r->nterminals;
    m->day_index = -1;
    ld_map_init(&m->route_by_where);
    m->dispatched = calloc(nd, sizeof *m->dispatched);
    m->escalations = calloc(nd * LD_CHAIN_MAX, sizeof *m->escalations);
    m->missed_top = calloc(nd * LD_LEG_COUNT, sizeof *m->missed_top);
    m->actions = calloc(nd * LD_ACTION_KINDS, sizeof *m->actions);
    m->legs = calloc(nd * LD_LEG_COUNT, sizeof *m->legs);
    m->day = calloc(nd * LD_LEG_COUNT, sizeof *m->day);
    m->online = calloc((size_t)r->nterminals + 1, 1);
    if (!m->dispatched || !m->escalations || !m->missed_top || !m->actions || !m->legs ||
        !m->day || !m->online) {
        ld_metrics_fini(m);
        return LD_ENOMEM;
    }
    for (size_t i = 0; i < nd * LD_LEG_COUNT; i++) ld_hist_init(&m->day[i].ms);
    index_routes(m, r);
    return 0;
}

void ld_metrics_fini(ld_metrics *m)
{
    free(m->dispatched);
    free(m->escalations);
    free(m->missed_top);
    free(m->actions);
    free(m->legs);
    free(m->day);
    free(m->online);
    ld_map_fini(&m->route_by_where);
    memset(m, 0, sizeof *m);
}

void ld_metrics_roll(ld_metrics *m, uint64_t now_ms)
{
    int64_t day = ((int64_t)now_ms + CST_OFFSET_MS) / DAY_MS;
    if (day == m->day_index) return;
    m->day_index = day;
    for (int i = 0; i < m->ndept * LD_LEG_COUNT; i++) {
        memset(&m->day[i], 0, sizeof m->day[i]);
        ld_hist_init(&m->day[i].ms);
    }
}

void ld_metrics_lag(ld_metrics *m, double lag_s)
{
    for (int i = 0; i < 8; i++)
        if (lag_s <= lag_bounds_s[i]) m->lag_le[i]++;
    m->lag_count++;
    m->lag_sum_s += lag_s;
    if (lag_s > m->lag_max_s) m->lag_max_s = lag_s;
}

/* ---- legs ------------------------------------------------------------------- */

/* budget_ms returns the budget of <leg> the task's route gave its department,
 * or 0 if unknown (reassigned, or the rules changed since). */
static uint64_t budget_ms(ld_metrics *m, const ld_engine *e, const ld_task *t, int leg)
{
    /* The task's own budget: it depends on the area type and the calendar. */
    if (ld_task_budget(t, leg)) return ld_task_budget(t, leg);
    if (m->indexed != e->rules) index_routes(m, e->rules);
    const char *sp = strchr(t->rule, ' ');
    if (!sp) return 0;
    const ld_route *r = ld_map_getn(&m->route_by_where, t->rule, (size_t)(sp - t->rule));
    for (int i = 0; r && i < r->ndispatch; i++)
        if (r->dispatch[i].dept == t->dept) return r->dispatch[i].leg_ms[leg];
    return 0;
}

static int is_miss(int kind)
{
    return kind == FK(TASK_ESCALATED) || kind == FK(DEADLINE_MISSED);
}

/* misses counts the history entries that record <leg> of <t> missed (not a
 * supervisor's escalation, which carries a note). */
static int misses(const ld_task *t, int leg)
{
    const ld_incident *inc = t->inc;
    int n = 0;
    for (int i = 0; i < inc->nhistory; i++) {
        const ld_history *h = &inc->history[i];
        if (h->task == t->idx && h->leg == leg + 1 && !h->note && is_miss(h->kind)) n++;
    }
    return n;
}

/* earlier says whether the history of <t>, before its latest entry, has an
 * update of one of kinds <a>/<b>: then the leg was counted then. */
static int earlier(const ld_task *t, int a, int b)
{
    const ld_incident *inc = t->inc;
    for (int i = 0; i + 1 < inc->nhistory; i++) {
        const ld_history *h = &inc->history[i];
        if (h->task == t->idx && (h->kind == a || h->kind == b)) return 1;
    }
    return 0;
}

static void count_miss(ld_metrics *m, const ld_task *t, int leg)
{
    m->legs[t->dept * LD_LEG_COUNT + leg].missed++;
    m->day[t->dept * LD_LEG_COUNT + leg].missed++;
}

static void leg_done(ld_metrics *m, const ld_engine *e, const ld_task *t, int leg)
{
    if (!ld_task_done(t, leg) || ld_task_done(t, leg) < t->dispatched_at) return;
    uint64_t ms = ld_task_done(t, leg) - t->dispatched_at;
    double s = (double)ms / 1000.0;
    ld_leg_metrics *lm = &m->legs[t->dept * LD_LEG_COUNT + leg];
    ld_leg_day *ld = &m->day[t->dept * LD_LEG_COUNT + leg];
    for (int i = 0; i < LD_PROM_BUCKETS; i++)
        if (s <= ld_prom_bounds_s[i]) lm->le[i]++;
    lm->count++;
    lm->sum_s += s;
    ld_hist_record(&ld->ms, ms);
    int band = 0;
    while (band < LD_BANDS - 1 && s > ld_band_bounds_s[leg][band]) band++;
    ld->band[band]++;
    uint64_t budget = budget_ms(m, e, t, leg);
    int missed = misses(t, leg);
    if (!missed && (budget ? ms <= budget : ld_task_done(t, leg) <= ld_task_due(t, leg))) {
        lm->met++;
        ld->met++;
    } else if (!missed) {
        count_miss(m, t, leg); /* late, though no deadline fired before it was done */
    }
}

static void task_update(ld_metrics *m, const ld_engine *e, const ld_task *t, int kind)
{
    int ack_before = earlier(t, FK(TASK_ACKNOWLEDGED), FK(TASK_EN_ROUTE));
    switch (kind) {
    case FK(TASK_ACKNOWLEDGED):
        leg_done(m, e, t, LD_LEG_ACK);
        break;
    case FK(TASK_EN_ROUTE):
        if (!ack_before) leg_done(m, e, t, LD_LEG_ACK);
        break;
    case FK(TASK_ON_SCENE):
        if (!ack_before) leg_done(m, e, t, LD_LEG_ACK);
        leg_done(m, e, t, LD_LEG_ARRIVE);
        break;
    case FK(TASK_RESOLVED):
        if (!ack_before) leg_done(m, e, t, LD_LEG_ACK);
        if (!earlier(t, FK(TASK_ON_SCENE), FK(TASK_ON_SCENE))) leg_done(m, e, t, LD_LEG_ARRIVE);
        leg_done(m, e, t, LD_LEG_RESOLVE);
        break;
    case FK(TASK_FEEDBACK):
        if (!ack_before) leg_done(m, e, t, LD_LEG_ACK);
        if (!(t->legs_off & (1u << LD_LEG_FEEDBACK)) &&
            !earlier(t, FK(TASK_FEEDBACK), FK(TASK_FEEDBACK)))
            leg_done(m, e, t, LD_LEG_FEEDBACK);
        break;
    default: break;
    }
}

void ld_metrics_observe(ld_metrics *m, const ld_engine *e, const ld_observation *o)
{
    const ld_task *t = o->task;
    if (o->terminal >= 0 && o->terminal < m->nterm) {
        m->online[o->terminal] = o->kind == FK(TERMINAL_ONLINE);
        return;
    }
    if (!t || t->dept < 0 || t->dept >= m->ndept) return;
    if (o->actor && !o->peer) { /* a merge's or split's own moves are counted as that */
        int a = o->kind == FK(TASK_REASSIGNED)     ? LD_ACT_REASSIGN
                : o->kind == FK(TASK_ESCALATED)    ? LD_ACT_ESCALATE
                : o->kind == FK(DEADLINE_EXTENDED) ? LD_ACT_EXTEND
                                                   : -1;
        if (a >= 0) m->actions[t->dept * LD_ACTION_KINDS + a]++;
    }
    switch (o->kind) {
    case FK(TASK_DISPATCHED): m->dispatched[t->dept]++; break;
    case FK(TASK_ESCALATED):
        if (t->level < LD_CHAIN_MAX) m->escalations[t->dept * LD_CHAIN_MAX + t->level]++;
        if (!o->actor && o->leg >= 0 && misses(t, o->leg) == 1) count_miss(m, t, o->leg);
        break;
    case FK(DEADLINE_MISSED):
        if (o->leg >= 0) {
            m->missed_top[t->dept * LD_LEG_COUNT + o->leg]++;
            if (misses(t, o->leg) == 1) count_miss(m, t, o->leg);
        }
        break;
    default: task_update(m, e, t, o->kind); break;
    }
}
