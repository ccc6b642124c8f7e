/* urgent.c: the most urgent open incidents, for the board's snapshot and the
 * incidents list.
 *
 * One order everywhere (board.js sorted() draws the same): overdue at the
 * top of a chain first, then past due, then by priority, then by the
 * earliest leg still watched, then by id. The first <max> in that order are
 * kept in a heap whose root is the least urgent of them, in one pass over
 * the open incidents: at 100,000 open, sorting them all and writing every one
 * out held the loop more than a second. */
#include "http/http_int.h"

#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "engine/actions.h"

typedef struct urgency {
    const ld_incident *inc;
    uint64_t due;                 /* earliest leg still watched */
    int late;                     /* 2 overdue at the top of a chain, 1 past due, 0 */
} urgency;

/* before: <a> comes first. */
static int before(const urgency *a, const urgency *b)
{
    if (a->late != b->late) return a->late > b->late;
    if (a->inc->priority != b->inc->priority) return a->inc->priority < b->inc->priority;
    if (a->due != b->due) return a->due < b->due;
    return strcmp(a->inc->id, b->inc->id) < 0;
}

static int in_order(const void *x, const void *y)
{
    return before(x, y) ? -1 : before(y, x) ? 1 : 0;
}

typedef struct most_urgent {
    size_t n, max;
    int dept;                     /* only incidents with a task of it; -1 all */
    uint64_t now;
    urgency v[];
} most_urgent;

static void swap(urgency *a, urgency *b)
{
    urgency t = *a;
    *a = *b;
    *b = t;
}

static void sift_down(most_urgent *m, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, last = i;
        if (l < m->n && before(&m->v[last], &m->v[l])) last = l;
        if (r < m->n && before(&m->v[last], &m->v[r])) last = r;
        if (last == i) return;
        swap(&m->v[i], &m->v[last]);
        i = last;
    }
}

static void consider(void *arg, const ld_incident *inc)
{
    most_urgent *m = arg;
    if (m->dept >= 0 && !ld_engine_task_of(inc, m->dept)) return;
    urgency u = {inc, ld_incident_next_due(inc), 0};
    for (int i = 0; i < inc->ntasks && !u.late; i++)
        if (inc->tasks[i]->overdue_top) u.late = 2;
    if (!u.late && u.due < m->now) u.late = 1;
    if (m->n < m->max) {
        size_t i = m->n++;
        m->v[i] = u;
        for (; i && before(&m->v[(i - 1) / 2], &m->v[i]); i = (i - 1) / 2)
            swap(&m->v[(i - 1) / 2], &m->v[i]);
    } else if (before(&u, &m->v[0])) {
        m->v[0] = u;
        sift_down(m, 0);
    }
}

int ld_http_most_urgent(ld_http *h, int dept, size_t max, const ld_incident ***out, size_t *n)
{
    *out = NULL;
    *n = 0;
    if (max == 0) max = 1;
    most_urgent *m = malloc(sizeof *m + max * sizeof m->v[0]);
    const ld_incident **v = malloc(max * sizeof *v);
    if (!m || !v) {
        free(m);
        free(v);
        return LD_ENOMEM;
    }
    *m = (most_urgent){.max = max, .dept = dept, .now = ld_clock_now(h->src.clock)};
    ld_engine_foreach_open(h->src.engine, consider, m);
    qsort(m->v, m->n, sizeof m->v[0], in_order);
    for (size_t i = 0; i < m->n; i++) v[i] = m->v[i].inc;
    *out = v;
    *n = m->n;
    free(m);
    return 0;
}
