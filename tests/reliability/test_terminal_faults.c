/* test_terminal_faults.c: on-duty terminals behind a bad network, then cut off.
 *
 * The terminals (linkctl terminal, acknowledging what they get) run in two
 * network namespaces this test creates, each joined to the host by a veth
 * pair; they reach linkd through ld_impair, a proxy on the host end of each
 * veth that delays every chunk (30 ms + 0-30 ms) and "loses" 2% of them (held
 * 500 ms more, as TCP's retransmission would), since this kernel has no
 * netem. fire-duty and water-duty sit behind link A; fire-deputy and
 * command-supervisor behind link B.
 *
 *  1. Impaired: fire calls and water calls; every task is acknowledged by
 *     its duty officer and none escalates.
 *  2. Partition: link A goes down (ip link set ... down) for 20 s (CI) or
 *     60 s (LINKD_RELIABILITY=long). Fire and water calls come in meanwhile.
 *     Fire's acknowledge budget (10 s) runs out behind the partition: each
 *     fire task must escalate to fire-deputy, at or after its deadline and
 *     before the heal, and be acknowledged there. Water's (30 min) does not.
 *  3. Heal: the proxy drops its connections (a middlebox that lost its state)
 *     and link A comes up. water-duty reconnects and must get every water
 *     task again; the one linkd answered its parked poll with during the
 *     partition comes marked as a redelivery. Every task ends acknowledged.
 *
 * Skipped, saying why, if network namespaces cannot be made (not root, no
 * ip). Every process is stopped by PID; the namespaces and veth pairs are
 * deleted. Prints a REPORT line (also appended to $LINKD_RELIABILITY_REPORT). */
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

#define RULES LD_SOURCE_DIR "/tests/data/rules-it/faults"
#define LINKCTL LD_BINARY_DIR "/linkctl"
#define IMPAIR LD_BINARY_DIR "/ld_impair"
#define WAIT_MS 90000
#define CALLS 5                    /* of each kind, per phase */

typedef struct netns {
    char name[24], host_if[16], addr[20];  /* addr: the host end, where the proxy listens */
    bool made;
    pid_t proxy;
    int port;
    char proxy_out[160];
} netns;

static ldh_env env;
static netns ns[2];
static pid_t terms[4];
static char term_out[4][160];
static char workdir[96];
static const char *term_ids[4] = {"fire-duty", "water-duty", "fire-deputy", "command-supervisor"};

static bool long_run(void)
{
    const char *v = getenv("LINKD_RELIABILITY");
    return v && strcmp(v, "long") == 0;
}

/* ip runs `ip <args>` (bounded), its output to the work directory's ip.log. */
__attribute__((format(printf, 1, 2))) static int ip(const char *fmt, ...)
{
    char line[256], log[160];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    char *argv[24] = {"ip"};
    int n = 1;
    for (char *tok = strtok(line, " "); tok && n < 23; tok = strtok(NULL, " ")) argv[n++] = tok;
    argv[n] = NULL;
    snprintf(log, sizeof log, "%s/ip.log", workdir);
    return ldh_run(argv, NULL, log, log, 10000);
}

/* make_ns creates namespace <i> with a veth pair to the host, 10.(200+i).x.0/30. */
static int make_ns(int i)
{
    netns *n = &ns[i];
    int id = (int)(getpid() % 100000), sub = (int)(getpid() % 250) + 1;
    snprintf(n->name, sizeof n->name, "ldtf%d%c", id, 'a' + i);
    snprintf(n->host_if, sizeof n->host_if, "ldtf%d%c0", id, 'a' + i);
    snprintf(n->addr, sizeof n->addr, "10.%d.%d.1", 200 + i, sub);
    if (ip("netns add %s", n->name) != 0) return -1;
    n->made = true;
    char peer[16];
    snprintf(peer, sizeof peer, "ldtf%d%c1", id, 'a' + i);
    if (ip("link add %s type veth peer name %s", n->host_if, peer) != 0 ||
        ip("link set %s netns %s", peer, n->name) != 0 ||
        ip("addr add %s/30 dev %s", n->addr, n->host_if) != 0 ||
        ip("link set %s up", n->host_if) != 0 ||
        ip("-n %s addr add 10.%d.%d.2/30 dev %s", n->name, 200 + i, sub, peer) != 0 ||
        ip("-n %s link set %s up", n->name, peer) != 0 ||
        ip("-n %s link set lo up", n->name) != 0)
        return -2;
    return 0;
}

static void drop_ns(int i)
{
    netns *n = &ns[i];
    if (n->proxy > 0) ldh_stop_pid(n->proxy, 5000);
    n->proxy = 0;
    if (!n->made) return;
    ip("link del %s", n->host_if); /* takes its peer with it */
    ip("netns del %s", n->name);
    n->made = false;
}

static void teardown(void)
{
    for (int i = 0; i < 4; i++)
        if (terms[i] > 0) ldh_stop_pid(terms[i], 5000);
    memset(terms, 0, sizeof terms);
    for (int i = 0; i < 2; i++) drop_ns(i);
    ldh_env_stop(&env);
    if (workdir[0]) ldh_rmtree(workdir);
    workdir[0] = '\0';
}

static void start_proxy(int i, const char *linkd_terminals)
{
    netns *n = &ns[i];
    ldh_check(&env, ldh_free_ports(&n->port, 1) == 0, "no free port");
    char listen[48], seed[16];
    snprintf(listen, sizeof listen, "%s:%d", n->addr, n->port);
    snprintf(seed, sizeof seed, "%d", (int)getpid() + i);
    snprintf(n->proxy_out, sizeof n->proxy_out, "%s/impair-%c.log", workdir, 'a' + i);
    const char *to = strstr(linkd_terminals, "127.0.0.1:");
    char *argv[] = {IMPAIR, "--listen", listen, "--to", (char *)to, "--delay", "30",
                    "--jitter", "30", "--loss", "2", "--stall", "500", "--seed", seed, NULL};
    n->proxy = ldh_spawn(argv, NULL, n->proxy_out, n->proxy_out);
    ldh_check(&env, n->proxy > 0, "ld_impair did not start");
    bool up = false;
    for (int k = 0; k < 200 && !up; k++) {
        char *out = ldh_read_file(n->proxy_out, NULL);
        up = out && strstr(out, "LISTENING");
        free(out);
        if (!up) ldh_sleep_ms(50);
    }
    ldh_check(&env, up, "ld_impair never listened on %s", listen);
}

/* start_terminal runs linkctl terminal <id> in namespace <i>, through its proxy. */
static void start_terminal(int k, int i, const char *wait)
{
    char url[64];
    snprintf(url, sizeof url, "tcp://%s:%d", ns[i].addr, ns[i].port);
    snprintf(term_out[k], sizeof term_out[k], "%s/%s.log", workdir, term_ids[k]);
    char *argv[] = {"ip", "netns", "exec", ns[i].name, LINKCTL, "terminal", "--id",
                    (char *)term_ids[k], "--terminals", url, "--auto-ack", "300", "--wait",
                    (char *)wait, NULL};
    terms[k] = ldh_spawn(argv, NULL, term_out[k], term_out[k]);
    ldh_check(&env, terms[k] > 0, "%s did not start", term_ids[k]);
}

/* ---- what the feed says -------------------------------------------------------------- */

static const Linkd__V1__FeedEvent *find(const ldh_feed *f, int kind, const char *task)
{
    for (size_t i = 0; i < f->n; i++) {
        const Linkd__V1__FeedEvent *e = f->ev[i];
        if ((int)e->kind == kind && e->task && e->task->task_id &&
            strcmp(e->task->task_id, task) == 0)
            return e;
    }
    return NULL;
}

static size_t count_acked(const ldh_feed *f, char tasks[][96], size_t n)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        k += find(f, LINKD__V1__FEED_KIND__FEED_KIND_TASK_ACKNOWLEDGED, tasks[i]) != NULL;
    return k;
}

/* await_acked collects the feed until every task in <tasks> is acknowledged. */
static bool await_acked(ldh_feed *f, char tasks[][96], size_t n, int timeout_ms)
{
    uint64_t end = ldh_mono_ms() + (uint64_t)timeout_ms;
    while (count_acked(f, tasks, n) < n && ldh_mono_ms() < end) ldh_feed_collect(f, 250);
    return count_acked(f, tasks, n) == n;
}

static void send_calls(Linkd__V1__CallCategory cat, int n, char tasks[][96], const char *dept)
{
    for (int i = 0; i < n; i++) {
        ldh_event ev;
        char inc[64];
        ldh_accept_call(&env, &ev, cat, inc);
        snprintf(tasks[i], 96, "%s/%s", inc, dept);
        ldh_sleep_ms(150);
    }
}

static bool escalated(const ldh_feed *f, const char *task)
{
    for (size_t i = 0; i < f->n; i++) {
        const Linkd__V1__FeedEvent *e = f->ev[i];
        if (e->kind == LINKD__V1__FEED_KIND__FEED_KIND_TASK_ESCALATED && e->task &&
            e->task->task_id && strcmp(e->task->task_id, task) == 0)
            return true;
    }
    return false;
}

/* first_line_marked says whether the first line the terminal printed for
 * <task> carries "(redelivery)"; -1 if it never printed it. */
static int first_line_marked(const char *out, const char *task)
{
    const char *p = out ? strstr(out, task) : NULL;
    if (!p) return -1;
    const char *eol = strchr(p, '\n');
    const char *mark = strstr(p, "(redelivery)");
    return mark && (!eol || mark < eol);
}

Test(terminal_faults, partitioned_terminals_get_every_task_and_missed_deadlines_escalate,
     .fini = teardown, .timeout = 600)
{
    cr_assert_eq(ldh_mkdtemp(workdir, sizeof workdir, "tfaults"), 0);
    if (geteuid() != 0) cr_skip_test("terminal faults need network namespaces: run as root");
    int rv = make_ns(0);
    if (rv == -1) {
        drop_ns(0);
        cr_skip_test("network namespaces cannot be created here (ip netns add failed; see ip.log)");
    }
    cr_assert_eq(rv, 0, "namespace a: veth setup failed");
    cr_assert_eq(make_ns(1), 0, "namespace b: veth setup failed");

    ldh_linkd_opts o = {.rules = RULES};
    ldh_env_start_or_fail(&env, &o);
    ldh_feed feed;
    ldh_check(&env, ldh_feed_open(&feed, &env.linkd) == 0, "feed subscription failed");
    start_proxy(0, env.linkd.terminals);
    start_proxy(1, env.linkd.terminals);
    /* water-duty long-polls 30 s at a time: its poll is parked in linkd when
     * the partition comes, so linkd answers it into the partition. */
    start_terminal(0, 0, "2000");
    start_terminal(1, 0, "30000");
    start_terminal(2, 1, "2000");
    start_terminal(3, 1, "2000");

    /* 1. Impaired network: everything acknowledged by the duty officers. */
    char a[2 * CALLS][96], b[2 * CALLS][96];
    send_calls(LINKD__V1__CALL_CATEGORY__CALL_CATEGORY_FIRE, CALLS, a, "fire");
    send_calls(LINKD__V1__CALL_CATEGORY__CALL_CATEGORY_NOISE, CALLS, a + CALLS, "water");
    ldh_check(&env, await_acked(&feed, a, 2 * CALLS, WAIT_MS),
              "over the impaired link only %zu of %d tasks were acknowledged",
              count_acked(&feed, a, 2 * CALLS), 2 * CALLS);
    for (int i = 0; i < 2 * CALLS; i++)
        ldh_check(&env, !escalated(&feed, a[i]), "%s escalated over a merely slow link", a[i]);

    /* 2. Partition link A, once the terminals are back in their long polls
     * (the replies to their acknowledgements cross the proxy first). */
    ldh_feed_collect(&feed, 1500);
    int part_s = long_run() ? 60 : 20;
    ldh_check(&env, ip("link set %s down", ns[0].host_if) == 0, "cannot take link A down");
    uint64_t t_part = ldh_wall_ms(), m_part = ldh_mono_ms();
    send_calls(LINKD__V1__CALL_CATEGORY__CALL_CATEGORY_FIRE, CALLS, b, "fire");
    send_calls(LINKD__V1__CALL_CATEGORY__CALL_CATEGORY_NOISE, CALLS, b + CALLS, "water");
    while (ldh_mono_ms() - m_part < (uint64_t)part_s * 1000) ldh_feed_collect(&feed, 250);

    /* 3. Heal. */
    ldh_check(&env, kill(ns[0].proxy, SIGUSR1) == 0, "cannot signal the proxy");
    ldh_sleep_ms(200);
    ldh_check(&env, ip("link set %s up", ns[0].host_if) == 0, "cannot bring link A up");
    uint64_t t_heal = ldh_wall_ms();
    bool all = await_acked(&feed, b, 2 * CALLS, WAIT_MS);
    if (!all) ldh_feed_print(&feed);
    ldh_check(&env, all, "after the heal only %zu of %d tasks were acknowledged",
              count_acked(&feed, b, 2 * CALLS), 2 * CALLS);

    /* Fire: every one escalated on its own, during the partition, not before
     * its deadline; and was acknowledged at level 1. */
    int64_t late_max = 0, late_sum = 0;
    for (int i = 0; i < CALLS; i++) {
        const Linkd__V1__FeedEvent *d = find(&feed, LINKD__V1__FEED_KIND__FEED_KIND_TASK_DISPATCHED, b[i]);
        const Linkd__V1__FeedEvent *e = find(&feed, LINKD__V1__FEED_KIND__FEED_KIND_TASK_ESCALATED, b[i]);
        const Linkd__V1__FeedEvent *k = find(&feed, LINKD__V1__FEED_KIND__FEED_KIND_TASK_ACKNOWLEDGED, b[i]);
        ldh_check(&env, d && d->task->has_acknowledge_by_ms, "no dispatch of %s on the feed", b[i]);
        ldh_check(&env, e && e->from_level == 0, "%s never escalated behind the partition", b[i]);
        int64_t due = d->task->acknowledge_by_ms, at = e->at_ms;
        ldh_check(&env, at >= due, "%s escalated %lld ms before its deadline", b[i],
                  (long long)(due - at));
        ldh_check(&env, (uint64_t)at < t_heal && (uint64_t)at > t_part,
                  "%s escalated at %lld, not during the partition (%llu..%llu)", b[i],
                  (long long)at, (unsigned long long)t_part, (unsigned long long)t_heal);
        ldh_check(&env, k->task->level == 1, "%s was acknowledged at level %u, not by the deputy",
                  b[i], k->task->level);
        late_max = at - due > late_max ? at - due : late_max;
        late_sum += at - due;
    }
    /* Water: nothing escalated; every task reached water-duty after the heal,
     * and what linkd had sent into the partition came marked. */
    ldh_feed_collect(&feed, 1000);
    char *out = ldh_read_file(term_out[1], NULL);
    int marked = 0, seen = 0;
    for (int i = CALLS; i < 2 * CALLS; i++) {
        ldh_check(&env, !escalated(&feed, b[i]), "%s escalated with 30 min to go", b[i]);
        int m = first_line_marked(out, b[i]);
        seen += m >= 0;
        marked += m > 0;
    }
    ldh_check(&env, seen == CALLS, "water-duty printed %d of %d water tasks", seen, CALLS);
    ldh_check(&env, marked >= 1, "no water task linkd had sent into the partition came back "
              "marked as a redelivery:\n%s", out ? out : "");
    free(out);

    char report[512];
    snprintf(report, sizeof report,
             "REPORT terminal_faults: partition %d s; impaired phase %d tasks acknowledged by "
             "their duty officers, 0 escalated; partition %d fire tasks escalated to the deputy "
             "%lld ms after their deadline at most (mean %lld), %d water tasks acknowledged "
             "after the heal, %d of them first seen marked redelivery",
             part_s, 2 * CALLS, CALLS, (long long)late_max, (long long)(late_sum / CALLS), CALLS,
             marked);
    fprintf(stderr, "%s\n", report);
    const char *rp = getenv("LINKD_RELIABILITY_REPORT");
    FILE *f = rp ? fopen(rp, "a") : NULL;
    if (f) {
        fprintf(f, "%s\n", report);
        fclose(f);
    }
    ldh_feed_close(&feed);
}
