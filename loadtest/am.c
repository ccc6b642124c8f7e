/* am.c: the peer side by side: Prometheus Alertmanager doing linkd's routing.
 *
 *   linkload am-config --rules DIR --hook URL     an Alertmanager configuration
 *                                                 equivalent to linkd's rules
 *   linkload am --alertmanager URL --rate R ...   open-loop load through API v2,
 *                                                 notifications timed on our
 *                                                 own webhook receiver
 *
 * The configuration: one aggregation group per incident (group_by: [incident],
 * group_wait: 0s, so every alert is notified at once and on its own), one
 * webhook receiver per department, and for every linkd route a route with the
 * same matchers (kind, category, priority, people, a petition's bypass and
 * repeat count) whose child routes send to each of its departments
 * (continue: true), so a multi-department incident reaches several receivers,
 * as linkd dispatches several tasks. Routes keep linkd's order and its
 * `continue`. A route with a condition the alerts' labels cannot carry
 * (status, area, day, time of day, district, grid, office) is refused rather
 * than left wider than linkd's.
 *
 * The load: alerts shaped like linkload's events (the default mix), each
 * request of --batch alerts due at start + i * batch / rate; latency from
 * that intended time to the POST's answer (intake) and to each webhook
 * delivery (the equivalent of intake-to-terminal). The expected deliveries
 * of each alert come from linkd's own matcher over the same rules; missing
 * and duplicate deliveries are counted. Client, receiver and Alertmanager
 * share the machine, as linkload, linkd and Redis do. */
#define _GNU_SOURCE   /* memmem */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/diag.h"
#include "core/err.h"
#include "core/hist.h"
#include "hook.h"
#include "linkload.h"
#include "rules/rules.h"

#define NS_PER_S 1000000000ull
#define MAX_ROUTES_PER_ALERT 16

static const ProtobufCEnumDescriptor *kind_desc(int kind)
{
    switch (kind) {
    case LD_KIND_CALL: return &linkd__v1__call_category__descriptor;
    case LD_KIND_SENSOR: return &linkd__v1__sensor_kind__descriptor;
    case LD_KIND_PETITION: return &linkd__v1__petition_issue__descriptor;
    default: return NULL;
    }
}

static const char *const KIND_NAME[] = {"any", "call", "sensor", "petition"};

static int load_rules(const char *dir, ld_rules **out)
{
    ld_diag d;
    ld_diag_init(&d);
    int rv = ld_rules_load(out, dir, &d);
    if (rv != 0) {
        ld_diag_print(&d, stderr);
        fprintf(stderr, "linkload: cannot load rules from %s: %s\n", dir, ld_strerror(rv));
    }
    ld_diag_fini(&d);
    return rv;
}

/* ---- am-config ------------------------------------------------------------ */

/* people_regex writes a regular expression for the decimal numbers >= n
 * (n <= 99), as Alertmanager matchers have no numeric comparison. */
static int people_regex(unsigned n, char *buf, size_t len)
{
    if (n <= 1) return snprintf(buf, len, "[1-9][0-9]*"), 0;
    if (n <= 9) return snprintf(buf, len, "[%u-9]|[1-9][0-9]+", n), 0;
    if (n > 99) return -1;
    unsigned t = n / 10, u = n % 10;
    char hi[16] = "";
    if (t < 9) snprintf(hi, sizeof hi, "[%u-9][0-9]|", t + 1);
    snprintf(buf, len, "%s%u[%u-9]|[1-9][0-9][0-9]+", hi, t, u);
    return 0;
}

/* num_label is the alert label that carries numeric field <field>, or NULL. */
static const char *num_label(int field)
{
    switch (field) {
    case LD_NUM_PEOPLE: return "people";
    case LD_NUM_REPEAT: return "repeat";
    default: return NULL;
    }
}

/* num_regex writes a regular expression for the whole numbers that meet <c>
 * (>=, > and = on whole numbers up to 99). */
static int num_regex(const ld_num_cond *c, char *buf, size_t len)
{
    double a = c->a;
    if (a < 0 || a > 99 || a != (double)(unsigned)a) return -1;
    switch (c->op) {
    case LD_OP_GE: return a == 0 ? (snprintf(buf, len, "[0-9]+"), 0) : people_regex((unsigned)a, buf, len);
    case LD_OP_GT: return a >= 99 ? -1 : people_regex((unsigned)a + 1, buf, len);
    case LD_OP_EQ: return snprintf(buf, len, "%u", (unsigned)a), 0;
    default: return -1;
    }
}

/* unexpressible names a condition of <rt> the configuration cannot say with
 * the labels linkload's alerts carry, or NULL. */
static const char *unexpressible(const ld_route *rt)
{
    if (rt->statuses) return "status";
    if (rt->areas) return "area";
    if (rt->days || rt->workday >= 0) return "day";
    if (rt->from_min != rt->to_min) return "time of day";
    for (int k = 0; k < LD_STR_COUNT; k++)
        if (rt->sets[k].n) return "district, grid or office";
    return NULL;
}

static int write_config(FILE *f, const ld_rules *r, const char *hook)
{
    fprintf(f,
            "# Alertmanager configuration equivalent to linkd's rules (%s), made by\n"
            "# `linkload am-config`: one aggregation group per incident, notified at once;\n"
            "# one webhook receiver per department; linkd's routes in order.\n"
            "global:\n  resolve_timeout: 1h\n"
            "route:\n  receiver: 'null'\n  group_by: ['incident']\n  group_wait: 0s\n"
            "  group_interval: 10m\n  repeat_interval: 24h\n  routes:\n",
            r->dir);
    for (int i = 0; i < r->nroutes; i++) {
        const ld_route *rt = &r->routes[i];
        fprintf(f, "    # %s (%s)\n    - matchers:\n", rt->name, rt->where);
        if (rt->kind != LD_KIND_ANY) fprintf(f, "        - 'kind=\"%s\"'\n", KIND_NAME[rt->kind]);
        const ProtobufCEnumDescriptor *d = kind_desc(rt->kind);
        if (rt->categories && d) {
            char alt[1024] = "";
            for (int v = 1; v < 64; v++)
                if (rt->categories & (1ull << v)) {
                    const char *name = ld_enum_name(d, v);
                    if (!name) continue;
                    if (alt[0]) strncat(alt, "|", sizeof alt - strlen(alt) - 1);
                    strncat(alt, name, sizeof alt - strlen(alt) - 1);
                }
            fprintf(f, "        - 'category=~\"%s\"'\n", alt);
        }
        if (rt->priorities) {
            char alt[256] = "";
            for (int v = 1; v < 32; v++)
                if (rt->priorities & (1u << v)) {
                    const char *name = ld_enum_name(&linkd__v1__priority__descriptor, v);
                    if (!name) continue;
                    if (alt[0]) strncat(alt, "|", sizeof alt - strlen(alt) - 1);
                    strncat(alt, name, sizeof alt - strlen(alt) - 1);
                }
            fprintf(f, "        - 'priority=~\"%s\"'\n", alt);
        }
        if (rt->min_people > 0) {
            char re[128];
            if (people_regex(rt->min_people, re, sizeof re) != 0) {
                fprintf(stderr, "linkload am-config: route %s: min_people %u > 99 not expressible\n",
                        rt->name, rt->min_people);
                return -1;
            }
            fprintf(f, "        - 'people=~\"%s\"'\n", re);
        }
        if (rt->bypass >= 0)
            fprintf(f, "        - 'bypass%s\"true\"'\n", rt->bypass ? "=" : "!=");
        for (int k = 0; k < rt->nnum; k++) {
            char re[128];
            const char *label = num_label(rt->num[k].field);
            if (!label || num_regex(&rt->num[k], re, sizeof re) != 0) {
                fprintf(stderr, "linkload am-config: route %s (%s): a numeric condition has no "
                        "Alertmanager matcher here\n", rt->name, rt->where);
                return -1;
            }
            fprintf(f, "        - '%s=~\"%s\"'\n", label, re);
        }
        const char *cannot = unexpressible(rt);
        if (cannot) {
            /* Leaving it out would route more alerts than linkd does. */
            fprintf(stderr, "linkload am-config: route %s (%s): its %s condition has no "
                    "Alertmanager matcher here\n", rt->name, rt->where, cannot);
            return -1;
        }
        if (rt->kind == LD_KIND_ANY && !rt->categories && !rt->priorities && !rt->min_people &&
            rt->bypass < 0 && rt->nnum == 0)
            fprintf(f, "        - 'alertname=\"linkload\"'\n");
        fprintf(f, "      continue: %s\n      routes:\n", rt->cont ? "true" : "false");
        for (int k = 0; k < rt->ndispatch; k++)
            fprintf(f, "        - { receiver: '%s', continue: true }\n", r->departments[rt->dispatch[k].dept].id);
    }
    fprintf(f, "receivers:\n  - name: 'null'\n");
    for (int i = 0; i < r->ndepartments; i++)
        fprintf(f,
                "  - name: '%s'\n    webhook_configs:\n      - url: '%s/%s'\n        send_resolved: false\n"
                "        max_alerts: 0\n",
                r->departments[i].id, hook, r->departments[i].id);
    return ferror(f) ? -1 : 0;
}

int lg_cmd_am_config(int argc, char **argv)
{
    const char *rules = "rules", *hook = NULL, *out = NULL;
    for (int i = 2; i < argc; i++) {
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(argv[i], "--help") == 0) {
            printf("usage: linkload am-config --hook http://127.0.0.1:PORT [--rules DIR] [--out FILE]\n"
                   "  writes an Alertmanager configuration equivalent to linkd's rules\n");
            return LG_EXIT_OK;
        }
        if (!v) break;
        if (strcmp(argv[i], "--rules") == 0) rules = v, i++;
        else if (strcmp(argv[i], "--hook") == 0) hook = v, i++;
        else if (strcmp(argv[i], "--out") == 0) out = v, i++;
        else break;
    }
    if (!hook) {
        fprintf(stderr, "usage: linkload am-config --hook http://127.0.0.1:PORT [--rules DIR] [--out FILE]\n");
        return LG_EXIT_USAGE;
    }
    ld_rules *r;
    if (load_rules(rules, &r) != 0) return LG_EXIT_DATAERR;
    FILE *f = out ? fopen(out, "w") : stdout;
    int rv = f ? write_config(f, r, hook) : -1;
    if (out && f && fclose(f) != 0) rv = -1;
    if (!f) perror(out);
    ld_rules_free(r);
    return rv == 0 ? LG_EXIT_OK : LG_EXIT_SOFTWARE;
}

/* ---- am: the load ------------------------------------------------------------- */

typedef struct am_opts {
    double rate, duration, drain;
    unsigned batch, connections, timeout_ms;
    const char *url, *rules, *json;
    int hook_port, quiet;
} am_opts;

typedef struct am_alert {   /* what the generator decided for one alert */
    uint8_t expected;
} am_alert;

typedef struct am_run {
    am_opts o;
    ld_rules *rules;
    lg_mix mix;
    char host[128], run_id[24];
    int port;
    uint64_t nreq, nalerts, start_ns, end_ns;
    _Atomic uint64_t next_req;
    uint8_t *expected, *received;   /* per alert */
    uint8_t *doubt;                 /* per alert: its POST timed out or broke off, so whether
                                     * Alertmanager took it is unknown */
    pthread_mutex_t mu;
    uint64_t doubt_alerts, doubt_expected, doubt_got; /* in doubt: counted apart */
    uint64_t got;                   /* deliveries of alerts not in doubt, within expected */
    uint64_t posted, post_ok, post_err, conn_err, timeouts, expected_total, received_total, dups,
        unexpected, last_delivery_ns, max_lag_ns;
    char sample_err[160];
    ld_hist post_lat, deliver_lat;
} am_run;

static uint64_t intended_ns(const am_run *a, uint64_t req)
{
    return a->start_ns + (uint64_t)((double)req * a->o.batch * 1e9 / a->o.rate);
}

/* alert_json appends alert <seq> to <buf> and returns its expected number of
 * deliveries, computed with linkd's matcher over the same rules. */
static size_t alert_json(am_run *a, uint64_t seq, uint64_t *rng, char *buf, size_t len, unsigned *expected)
{
    double x = lg_rnd_unit(rng) * a->mix.total;
    const lg_mix_entry *m = &a->mix.e[a->mix.n - 1];
    for (int i = 0; i < a->mix.n; i++) {
        if (x < a->mix.e[i].weight) {
            m = &a->mix.e[i];
            break;
        }
        x -= a->mix.e[i].weight;
    }
    ld_match_input in = {.kind = m->kind, .category = m->value};
    char prio[80] = "";   /* the priority, or a petition's bypass and repeat labels */
    if (m->kind == LD_KIND_CALL) {
        in.people = 1 + (uint32_t)(lg_rnd(rng) % 4);
        if (lg_rnd(rng) % 4 == 0) {
            in.priority = 1 + (int)(lg_rnd(rng) % 4);
            snprintf(prio, sizeof prio, ",\"priority\":\"%s\"",
                     ld_enum_name(&linkd__v1__priority__descriptor, in.priority));
        }
    } else if (m->kind == LD_KIND_PETITION) {
        uint32_t r = (uint32_t)(lg_rnd(rng) % 100);
        in.people = r < 70 ? 1 : r < 90 ? 2 + (uint32_t)(lg_rnd(rng) % 3) : 5 + (uint32_t)(lg_rnd(rng) % 26);
        /* As linkload's petitions (gen.c): one in ten bypassed a level, one
         * in seven is a repeat (1 to 3 earlier petitions). */
        in.bypass = lg_rnd(rng) % 10 == 0;
        in.num[LD_NUM_REPEAT] = lg_rnd(rng) % 7 == 0 ? 1 + (double)(lg_rnd(rng) % 3) : 0;
        snprintf(prio, sizeof prio, ",\"bypass\":\"%s\",\"repeat\":\"%u\"",
                 in.bypass ? "true" : "false", (unsigned)in.num[LD_NUM_REPEAT]);
    }
    in.num[LD_NUM_PEOPLE] = in.people;
    const ld_route *routes[MAX_ROUTES_PER_ALERT];
    size_t n = ld_rules_match(a->rules, &in, routes, MAX_ROUTES_PER_ALERT);
    unsigned exp = 0;
    for (size_t i = 0; i < n; i++) exp += (unsigned)routes[i]->ndispatch;
    *expected = exp;
    char people[32] = "";
    if (in.people) snprintf(people, sizeof people, ",\"people\":\"%u\"", in.people);
    int w = snprintf(buf, len,
                     "{\"labels\":{\"alertname\":\"linkload\",\"run\":\"%s\",\"incident\":\"%s-%" PRIu64
                     "\",\"kind\":\"%s\",\"category\":\"%s\"%s%s,\"district\":\"4401%02u\"},"
                     "\"annotations\":{\"lkseq\":\"%" PRIu64 "\",\"summary\":\"linkload alert\"}}",
                     a->run_id, a->run_id, seq, KIND_NAME[m->kind], ld_enum_name(kind_desc(m->kind), m->value),
                     prio, people, 3 + (unsigned)(lg_rnd(rng) % 15), seq);
    return w > 0 && (size_t)w < len ? (size_t)w : 0;
}

/* on_delivery counts the alerts of one webhook notification. With group_by
 * on a unique incident every notification holds one alert; the alerts array
 * is scanned anyway (commonAnnotations repeats lkseq, so only the part
 * before "groupLabels" is read). */
static void on_delivery(void *arg, const char *path, const char *body, size_t len, uint64_t now)
{
    am_run *a = arg;
    (void)path;
    const char *end = body + len;
    const char *alerts = memmem(body, len, "\"alerts\":[", 10);
    const char *stop = alerts ? memmem(alerts, (size_t)(end - alerts), "\"groupLabels\"", 13) : NULL;
    if (!stop) stop = end;
    pthread_mutex_lock(&a->mu);
    a->last_delivery_ns = now;
    for (const char *p = alerts; p && p < stop;) {
        p = memmem(p, (size_t)(stop - p), "\"lkseq\":\"", 9);
        if (!p) break;
        p += 9;
        uint64_t seq = strtoull(p, NULL, 10);
        if (seq >= a->nalerts) {
            a->unexpected++;
            continue;
        }
        a->received_total++;
        if (a->received[seq] >= a->expected[seq]) {
            a->dups++;
        } else {
            a->received[seq]++;
            if (a->doubt[seq]) a->doubt_got++;
            else a->got++;
        }
        uint64_t req = seq / a->o.batch, t0 = intended_ns(a, req);
        ld_hist_record(&a->deliver_lat, now > t0 ? now - t0 : 0);
    }
    pthread_mutex_unlock(&a->mu);
}

/* ---- HTTP client ---------------------------------------------------------------- */

static int http_connect(am_run *a)
{
    char port[16];
    snprintf(port, sizeof port, "%d", a->port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res;
    if (getaddrinfo(a->host, port, &hints, &res) != 0) return -1;
    int fd = socket(res->ai_family, res->ai_socktype, 0);
    struct timeval tv = {(time_t)(a->o.timeout_ms / 1000), (suseconds_t)(a->o.timeout_ms % 1000) * 1000};
    int one = 1;
    if (fd >= 0) {
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if (connect(fd, res->ai_addr, res->ai_addrlen) != 0) {
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(res);
    return fd;
}

/* http_post sends one request on <fd> and reads the answer. Returns the
 * HTTP status, or -1 (connection broken: reconnect), -2 (timed out). */
static int http_post(am_run *a, int fd, const char *body, size_t blen, char *rbuf, size_t rcap)
{
    char head[256];
    int hl = snprintf(head, sizeof head,
                      "POST /api/v2/alerts HTTP/1.1\r\nHost: %s:%d\r\nContent-Type: application/json\r\n"
                      "Content-Length: %zu\r\n\r\n",
                      a->host, a->port, blen);
    struct iovec iov[2] = {{head, (size_t)hl}, {(void *)body, blen}};
    struct msghdr mh = {.msg_iov = iov, .msg_iovlen = 2};
    size_t total = (size_t)hl + blen, sent = 0;
    while (sent < total) {
        ssize_t w = sendmsg(fd, &mh, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return errno == EAGAIN ? -2 : -1;
        sent += (size_t)w;
        while (mh.msg_iovlen && (size_t)w >= mh.msg_iov[0].iov_len) {
            w -= (ssize_t)mh.msg_iov[0].iov_len;
            mh.msg_iov++;
            mh.msg_iovlen--;
        }
        if (mh.msg_iovlen) {
            mh.msg_iov[0].iov_base = (char *)mh.msg_iov[0].iov_base + w;
            mh.msg_iov[0].iov_len -= (size_t)w;
        }
    }
    size_t have = 0;
    for (;;) {
        char *eoh = have >= 4 ? memmem(rbuf, have, "\r\n\r\n", 4) : NULL;
        if (eoh) {
            size_t hlen = (size_t)(eoh - rbuf) + 4, clen = 0;
            const char *cl = memmem(rbuf, hlen, "Content-Length:", 15);
            if (!cl) cl = memmem(rbuf, hlen, "content-length:", 15);
            if (cl) clen = strtoul(cl + 15, NULL, 10);
            if (have >= hlen + clen) {
                int status = 0;
                sscanf(rbuf, "HTTP/1.%*d %d", &status);
                return status;
            }
        }
        if (have == rcap) return -1;
        ssize_t r = recv(fd, rbuf + have, rcap - have, 0);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return -2;
        if (r <= 0) return -1;
        have += (size_t)r;
    }
}

static void *client_main(void *arg)
{
    am_run *a = arg;
    size_t cap = (size_t)a->o.batch * 512 + 64;
    char *body = malloc(cap), *rbuf = malloc(65536);
    uint64_t rng = ld_mono_ns() ^ (uint64_t)(uintptr_t)&rng;
    int fd = -1;
    for (;;) {
        uint64_t req = atomic_fetch_add(&a->next_req, 1);
        if (req >= a->nreq || !body || !rbuf) break;
        uint64_t due = intended_ns(a, req);
        if (due >= a->end_ns) break;
        if (ld_mono_ns() < due) lg_sleep_until(due);
        uint64_t now = ld_mono_ns();
        size_t len = 0;
        body[len++] = '[';
        unsigned exp[LG_MAX_BATCH];
        for (unsigned i = 0; i < a->o.batch; i++) {
            if (i) body[len++] = ',';
            len += alert_json(a, req * a->o.batch + i, &rng, body + len, cap - len - 2, &exp[i]);
        }
        body[len++] = ']';
        pthread_mutex_lock(&a->mu);
        for (unsigned i = 0; i < a->o.batch; i++) {
            a->expected[req * a->o.batch + i] = (uint8_t)exp[i];
            a->expected_total += exp[i];
        }
        a->posted += a->o.batch;
        if (now - due > a->max_lag_ns) a->max_lag_ns = now - due;
        pthread_mutex_unlock(&a->mu);
        int status = -1;
        if (fd < 0) fd = http_connect(a);
        if (fd >= 0) status = http_post(a, fd, body, len, rbuf, 65536);
        uint64_t done = ld_mono_ns();
        pthread_mutex_lock(&a->mu);
        if (status >= 200 && status < 300) {
            a->post_ok += a->o.batch;
            for (unsigned i = 0; i < a->o.batch; i++) ld_hist_record(&a->post_lat, done - due);
        } else {
            if (fd < 0) a->conn_err += a->o.batch;
            else if (status == -2) a->timeouts += a->o.batch;
            else a->post_err += a->o.batch;
            /* Refused or never sent: not expected. Timed out or cut off:
             * Alertmanager may have taken it, so its deliveries are counted
             * apart, neither missing nor duplicate. */
            int unknown = fd >= 0 && (status == -2 || status < 0);
            for (unsigned i = 0; i < a->o.batch; i++) {
                uint64_t k = req * a->o.batch + i;
                a->expected_total -= a->expected[k];
                a->got -= a->received[k];
                if (unknown) {
                    a->doubt[k] = 1;
                    a->doubt_alerts++;
                    a->doubt_expected += a->expected[k];
                    a->doubt_got += a->received[k];
                } else {
                    a->expected[k] = 0;
                }
            }
            if (!a->sample_err[0])
                snprintf(a->sample_err, sizeof a->sample_err, "%s",
                         fd < 0 ? "cannot connect" : status == -2 ? "timed out" : status < 0 ? "connection broken"
                                                                                               : "HTTP error");
        }
        pthread_mutex_unlock(&a->mu);
        if (status < 0 && fd >= 0) {
            close(fd);
            fd = -1;
        }
        if (fd < 0 && status < 0) lg_sleep_until(ld_mono_ns() + 100000000ull);   /* no busy retry */
    }
    if (fd >= 0) close(fd);
    free(body);
    free(rbuf);
    return NULL;
}

/* ---- report --------------------------------------------------------------------- */

static void json_hist(FILE *f, const char *name, const ld_hist *h)
{
    fprintf(f,
            "\"%s\":{\"n\":%" PRIu64 ",\"p50_us\":%.1f,\"p90_us\":%.1f,\"p99_us\":%.1f,"
            "\"p999_us\":%.1f,\"max_us\":%.1f}",
            name, h->n, (double)ld_hist_quantile(h, 0.5) / 1e3, (double)ld_hist_quantile(h, 0.9) / 1e3,
            (double)ld_hist_quantile(h, 0.99) / 1e3, (double)ld_hist_quantile(h, 0.999) / 1e3,
            (double)h->max / 1e3);
}

static void print_hist(const char *label, const ld_hist *h)
{
    char q[4][32], mx[32];
    static const double qs[] = {0.5, 0.9, 0.99, 0.999};
    if (!h->n) {
        printf("  %-18s (none)\n", label);
        return;
    }
    for (int i = 0; i < 4; i++) lg_fmt_ns(ld_hist_quantile(h, qs[i]), q[i], sizeof q[i]);
    printf("  %-18s p50 %s  p90 %s  p99 %s  p99.9 %s  max %s  (n=%" PRIu64 ")\n", label, q[0], q[1], q[2],
           q[3], lg_fmt_ns(h->max, mx, sizeof mx), h->n);
}

static void report(am_run *a)
{
    uint64_t missing = a->expected_total - a->got;
    double secs = a->o.duration;
    double achieved = (double)a->post_ok / secs;
    printf("linkload am %s: %.0f alerts/s offered for %.0f s (batch %u, %u connections) to %s:%d\n", a->run_id,
           a->o.rate, a->o.duration, a->o.batch, a->o.connections, a->host, a->port);
    printf("  posted    %" PRIu64 " alerts: accepted (2xx) %" PRIu64 ", HTTP errors %" PRIu64 ", timeouts %" PRIu64
           ", cannot connect %" PRIu64 "%s%s\n",
           a->posted, a->post_ok, a->post_err, a->timeouts, a->conn_err, a->sample_err[0] ? "; first: " : "",
           a->sample_err);
    printf("  achieved  %.0f alerts/s accepted (%.1f%% of offered)\n", achieved, 100.0 * achieved / a->o.rate);
    printf("  delivered %" PRIu64 " of %" PRIu64 " expected notifications (missing %" PRIu64 ", duplicate %" PRIu64
           ", unexpected %" PRIu64 ")\n",
           a->got, a->expected_total, missing, a->dups, a->unexpected);
    if (a->doubt_alerts)
        printf("  in doubt  %" PRIu64 " alerts whose POST timed out or broke off: %" PRIu64 " of their %" PRIu64
               " notifications arrived\n", a->doubt_alerts, a->doubt_got, a->doubt_expected);
    print_hist("intake->accepted", &a->post_lat);
    print_hist("intake->webhook", &a->deliver_lat);
    if (!a->o.json) return;
    FILE *f = fopen(a->o.json, "w");
    if (!f) {
        perror(a->o.json);
        return;
    }
    fprintf(f,
            "{\"mode\":\"am\",\"run_id\":\"%s\",\"unreachable\":%s,\"offered_rate\":%.0f,\"duration_s\":%g,"
            "\"batch\":%u,\"connections\":%u,\"posted\":%" PRIu64 ",\"accepted\":%" PRIu64 ",\"http_errors\":%" PRIu64
            ",\"timeouts\":%" PRIu64 ",\"connect_errors\":%" PRIu64 ",\"achieved_rate\":%.0f,\"max_send_lag_us\":%.1f,"
            "\"expected\":%" PRIu64 ",\"delivered\":%" PRIu64 ",\"missing\":%" PRIu64 ",\"duplicates\":%" PRIu64
            ",\"unexpected\":%" PRIu64 ",\"in_doubt\":%" PRIu64 ",\"in_doubt_delivered\":%" PRIu64 ",",
            a->run_id, a->post_ok ? "false" : "true", a->o.rate, a->o.duration, a->o.batch, a->o.connections,
            a->posted, a->post_ok, a->post_err, a->timeouts, a->conn_err, achieved, (double)a->max_lag_ns / 1e3,
            a->expected_total, a->got, missing, a->dups, a->unexpected, a->doubt_alerts, a->doubt_got);
    json_hist(f, "accept_latency", &a->post_lat);
    fputc(',', f);
    json_hist(f, "terminal_latency", &a->deliver_lat);
    fprintf(f, "}\n");
    fclose(f);
}

static int parse_url(am_run *a, const char *url)
{
    if (strncmp(url, "http://", 7) != 0) return -1;
    const char *h = url + 7, *colon = strrchr(h, ':');
    if (!colon || (size_t)(colon - h) >= sizeof a->host) return -1;
    memcpy(a->host, h, (size_t)(colon - h));
    a->host[colon - h] = '\0';
    a->port = atoi(colon + 1);
    return a->port > 0 && a->port < 65536 ? 0 : -1;
}

static void am_usage(FILE *f)
{
    fprintf(f,
            "usage: linkload am --alertmanager http://HOST:PORT --hook-port P --rate R --duration S [options]\n"
            "  open-loop alerts through Alertmanager's API v2, configured by `linkload am-config`\n"
            "  with --hook http://127.0.0.1:P; deliveries timed on a webhook receiver on port P\n"
            "  --batch B          alerts per POST (default 1)\n"
            "  --connections C    HTTP connections (default 8)\n"
            "  --rules DIR        linkd rules the configuration was made from (default ./rules)\n"
            "  --timeout MS       per-POST timeout (default 5000)\n"
            "  --drain S          wait at most S for deliveries after the schedule (default 10)\n"
            "  --json FILE        write the figures as JSON\n");
}

int lg_cmd_am(int argc, char **argv)
{
    am_run *a = calloc(1, sizeof *a);
    if (!a) return LG_EXIT_SOFTWARE;
    a->o = (am_opts){.batch = 1, .connections = 8, .timeout_ms = 5000, .drain = 10, .rules = "rules"};
    const char *url = NULL;
    int code = LG_EXIT_USAGE;
    for (int i = 2; i < argc; i++) {
        const char *k = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(k, "--help") == 0) {
            am_usage(stdout);
            free(a);
            return LG_EXIT_OK;
        }
        if (strcmp(k, "--quiet") == 0) {
            a->o.quiet = 1;
            continue;
        }
        if (!v) goto usage;
        i++;
        if (strcmp(k, "--alertmanager") == 0) url = v;
        else if (strcmp(k, "--hook-port") == 0) a->o.hook_port = atoi(v);
        else if (strcmp(k, "--rate") == 0) a->o.rate = atof(v);
        else if (strcmp(k, "--duration") == 0) a->o.duration = atof(v);
        else if (strcmp(k, "--drain") == 0) a->o.drain = atof(v);
        else if (strcmp(k, "--batch") == 0) a->o.batch = (unsigned)atoi(v);
        else if (strcmp(k, "--connections") == 0) a->o.connections = (unsigned)atoi(v);
        else if (strcmp(k, "--timeout") == 0) a->o.timeout_ms = (unsigned)atoi(v);
        else if (strcmp(k, "--rules") == 0) a->o.rules = v;
        else if (strcmp(k, "--json") == 0) a->o.json = v;
        else goto usage;
    }
    if (!url || parse_url(a, url) != 0 || a->o.hook_port <= 0 || !(a->o.rate > 0 && a->o.rate <= 1e6) ||
        !(a->o.duration > 0 && a->o.duration <= 3600) || a->o.batch < 1 || a->o.batch > LG_MAX_BATCH ||
        a->o.connections < 1 || a->o.connections > 256 || !(a->o.drain >= 0 && a->o.drain <= 600))
        goto usage;
    code = LG_EXIT_DATAERR;
    if (load_rules(a->o.rules, &a->rules) != 0) goto out;
    code = LG_EXIT_SOFTWARE;
    lg_mix_default(&a->mix);
    snprintf(a->run_id, sizeof a->run_id, "A%08x", (unsigned)(ld_wall_ms() ^ ((uint64_t)getpid() << 16)));
    a->nreq = (uint64_t)ceil(a->o.rate * a->o.duration / a->o.batch);
    a->nalerts = a->nreq * a->o.batch;
    a->expected = calloc(a->nalerts, 1);
    a->received = calloc(a->nalerts, 1);
    a->doubt = calloc(a->nalerts, 1);
    if (!a->expected || !a->received || !a->doubt) goto out;
    pthread_mutex_init(&a->mu, NULL);
    ld_hist_init(&a->post_lat);
    ld_hist_init(&a->deliver_lat);
    lg_hook *hook = NULL;
    if (lg_hook_start(&hook, a->o.hook_port, on_delivery, a) != 0) {
        fprintf(stderr, "linkload am: cannot listen on 127.0.0.1:%d for webhooks\n", a->o.hook_port);
        goto out_mu;
    }
    a->start_ns = ld_mono_ns() + 100000000ull;
    a->end_ns = a->start_ns + (uint64_t)(a->o.duration * 1e9) + 1;
    pthread_t *th = calloc(a->o.connections, sizeof *th);
    unsigned started = 0;
    for (; th && started < a->o.connections; started++)
        if (pthread_create(&th[started], NULL, client_main, a) != 0) break;
    for (unsigned i = 0; i < started; i++) pthread_join(th[i], NULL);
    free(th);
    /* Deliveries: wait until all expected arrived, at most --drain. */
    uint64_t until = ld_mono_ns() + (uint64_t)(a->o.drain * 1e9);
    for (;;) {
        pthread_mutex_lock(&a->mu);
        int done = a->got >= a->expected_total;
        pthread_mutex_unlock(&a->mu);
        if (done || ld_mono_ns() >= until) break;
        lg_sleep_until(ld_mono_ns() + 50000000ull);
    }
    lg_hook_stop(hook);
    report(a);
    code = a->post_ok ? LG_EXIT_OK : LG_EXIT_UNAVAILABLE;
out_mu:
    pthread_mutex_destroy(&a->mu);
out:
    if (a->rules) ld_rules_free(a->rules);
    free(a->expected);
    free(a->received);
    free(a->doubt);
    free(a);
    return code;
usage:
    am_usage(stderr);
    free(a);
    return LG_EXIT_USAGE;
}
