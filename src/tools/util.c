/* util.c: parsing, time formatting, signals and sockets shared by linkctl's
 * subcommands. */
#include "tools/linkctl.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>
#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>

#include "core/rep.h"
#include "rules/rules.h"

const char *ctl_cmd = "";
volatile sig_atomic_t ctl_stop;
static int signal_pipe[2] = {-1, -1};

/* ---- messages ------------------------------------------------------------ */

__attribute__((format(printf, 1, 0))) static void vwarn(const char *fmt, va_list ap)
{
    fflush(stdout); /* keep stdout and stderr in order on a shared terminal */
    if (ctl_cmd[0])
        fprintf(stderr, "linkctl %s: ", ctl_cmd);
    else
        fputs("linkctl: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
}

void ctl_warn(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vwarn(fmt, ap);
    va_end(ap);
}

int ctl_usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vwarn(fmt, ap);
    va_end(ap);
    fprintf(stderr, "Try 'linkctl %s --help'.\n", ctl_cmd[0] ? ctl_cmd : "");
    return EX_USAGE;
}

/* ---- parsing ------------------------------------------------------------- */

static bool all_digits(const char *s)
{
    if (!*s) return false;
    for (; *s; s++)
        if (*s < '0' || *s > '9') return false;
    return true;
}

int ctl_parse_u32(const char *s, uint32_t *out)
{
    if (!all_digits(s)) return -1;
    errno = 0;
    unsigned long long v = strtoull(s, NULL, 10);
    if (errno || v > UINT32_MAX) return -1;
    *out = (uint32_t)v;
    return 0;
}

int ctl_parse_double(const char *s, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(v)) return -1;
    *out = v;
    return 0;
}

/* parse_time_value reads bare digits as <unit_ms> units, else a duration. */
static int parse_time_value(const char *s, uint64_t unit_ms, uint64_t *ms)
{
    if (all_digits(s)) {
        errno = 0;
        unsigned long long v = strtoull(s, NULL, 10);
        if (errno || v > UINT64_MAX / unit_ms) return -1;
        *ms = v * unit_ms;
        return 0;
    }
    return ld_parse_duration(s, ms) == 0 ? 0 : -1;
}

int ctl_parse_delay(const char *s, uint64_t *ms) { return parse_time_value(s, 1, ms); }
int ctl_parse_span(const char *s, uint64_t *ms) { return parse_time_value(s, 1000, ms); }

int ctl_parse_enum(const ProtobufCEnumDescriptor *d, const char *opt, const char *name,
                   int *value)
{
    if (ld_enum_parse(d, name, value) == 0) return 0;
    char known[1024];
    ld_enum_list(d, known, sizeof known);
    ctl_usage_error("--%s: unknown value '%s' (known: %s)", opt, name, known);
    return -1;
}

/* ---- time ---------------------------------------------------------------- */

void ctl_fmt_clock(int64_t ms, char *buf, size_t len)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    if (ms <= 0 || !localtime_r(&t, &tm) || strftime(buf, len, "%H:%M:%S", &tm) == 0)
        snprintf(buf, len, "--:--:--");
}

void ctl_fmt_span(int64_t ms, char *buf, size_t len)
{
    const char *sign = ms < 0 ? "-" : "";
    uint64_t a = ms < 0 ? (uint64_t)(-(ms + 1)) + 1 : (uint64_t)ms;
    uint64_t s = a / 1000, d = s / 86400, h = s / 3600 % 24, m = s / 60 % 60;
    s %= 60;
    if (a < 1000)
        snprintf(buf, len, "%s%llums", sign, (unsigned long long)a);
    else if (d)
        snprintf(buf, len, "%s%llud%lluh", sign, (unsigned long long)d, (unsigned long long)h);
    else if (h)
        snprintf(buf, len, "%s%lluh%02llum", sign, (unsigned long long)h, (unsigned long long)m);
    else if (m)
        snprintf(buf, len, "%s%llum%02llus", sign, (unsigned long long)m, (unsigned long long)s);
    else
        snprintf(buf, len, "%s%llus", sign, (unsigned long long)s);
}

/* ---- signals ------------------------------------------------------------- */

static void on_signal(int sig)
{
    int saved = errno;
    ctl_stop = 1;
    char c = (char)sig;
    if (signal_pipe[1] >= 0 && write(signal_pipe[1], &c, 1) < 0) {
        /* The pipe is full: the reader is already being woken. */
    }
    errno = saved;
}

int ctl_signals_install(void)
{
    if (signal_pipe[0] < 0) {
        if (pipe(signal_pipe) != 0) return -1;
        for (int i = 0; i < 2; i++) {
            fcntl(signal_pipe[i], F_SETFL, fcntl(signal_pipe[i], F_GETFL) | O_NONBLOCK);
            fcntl(signal_pipe[i], F_SETFD, FD_CLOEXEC);
        }
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0; /* no SA_RESTART: blocking reads return EINTR */
    if (sigaction(SIGINT, &sa, NULL) != 0 || sigaction(SIGTERM, &sa, NULL) != 0) return -1;
    signal(SIGPIPE, SIG_IGN);
    return 0;
}

int ctl_signal_fd(void) { return signal_pipe[0]; }

/* ---- NNG ----------------------------------------------------------------- */

const ld_tls_files *ctl_tls(void)
{
    static ld_tls_files f;
    f.ca = getenv("LINKCTL_TLS_CA");
    f.cert = getenv("LINKCTL_TLS_CERT");
    f.key = getenv("LINKCTL_TLS_KEY");
    f.server_name = getenv("LINKCTL_TLS_SERVER_NAME");
    return &f;
}

int ctl_req_open(nng_socket *s, const char *url, bool wait_for_peer)
{
    int rv = nng_req0_open(s);
    if (rv != 0) return rv;
    if ((rv = nng_socket_set_ms(*s, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE)) != 0 ||
        (rv = nng_socket_set_ms(*s, NNG_OPT_RECONNMINT, 100)) != 0 ||
        (rv = nng_socket_set_ms(*s, NNG_OPT_RECONNMAXT, 2000)) != 0 ||
        (rv = ld_dial(*s, url, ctl_tls(), wait_for_peer ? NNG_FLAG_NONBLOCK : 0)) != 0) {
        nng_close(*s);
        return rv;
    }
    return 0;
}

/* ---- intake ---------------------------------------------------------------- */

void ctl_print_result(const Linkd__V1__IngestResult *r, const char *fallback_id, bool colour)
{
    char id[LD_MAX_ID_LEN + 1], inc[LD_MAX_ID_LEN + 1], why[LD_MAX_TEXT_LEN];
    ctl_sanitize(r->event_id && *r->event_id ? r->event_id : fallback_id, id, sizeof id);
    ctl_sanitize(r->incident_id, inc, sizeof inc);
    ctl_sanitize(r->reason, why, sizeof why);
    const char *on = "", *off = colour ? CTL_RESET : "";
    switch (r->result) {
    case LINKD__V1__RESULT__RESULT_ACCEPTED:
        on = colour ? CTL_GREEN : "";
        printf("%sACCEPTED%s %s -> incident %s\n", on, off, id, inc[0] ? inc : "(none given)");
        break;
    case LINKD__V1__RESULT__RESULT_DUPLICATE:
        on = colour ? CTL_YELLOW : "";
        printf("%sDUPLICATE%s %s (already accepted%s%s)\n", on, off, id, inc[0] ? "; incident " : "",
               inc);
        break;
    case LINKD__V1__RESULT__RESULT_REJECTED:
        on = colour ? CTL_RED : "";
        printf("%sREJECTED%s %s: %s\n", on, off, id, why[0] ? why : "(no reason given)");
        break;
    case LINKD__V1__RESULT__RESULT_RETRY_LATER:
        on = colour ? CTL_YELLOW : "";
        printf("%sRETRY_LATER%s %s", on, off, id);
        if (r->has_retry_after_ms) printf(" (retry after %u ms)", r->retry_after_ms);
        printf("%s%s\n", why[0] ? ": " : "", why);
        break;
    default:
        printf("UNKNOWN(%d) %s %s\n", (int)r->result, id, why);
        break;
    }
}

void ctl_ingest_count(ctl_ingest_totals *t, int result)
{
    switch (result) {
    case LINKD__V1__RESULT__RESULT_ACCEPTED: t->accepted++; break;
    case LINKD__V1__RESULT__RESULT_DUPLICATE: t->duplicate++; break;
    case LINKD__V1__RESULT__RESULT_RETRY_LATER: t->retry++; break;
    default: t->rejected++; break; /* REJECTED, or a result we do not know */
    }
}

int ctl_ingest_exchange(nng_socket s, const Linkd__V1__IngestRequest *req,
                        Linkd__V1__IngestReply **out)
{
    size_t len = linkd__v1__ingest_request__get_packed_size(req);
    nng_msg *msg;
    int rv = nng_msg_alloc(&msg, len);
    if (rv != 0) return rv;
    linkd__v1__ingest_request__pack(req, nng_msg_body(msg));
    if ((rv = nng_sendmsg(s, msg, 0)) != 0) {
        nng_msg_free(msg);
        return rv;
    }
    if ((rv = nng_recvmsg(s, &msg, 0)) != 0) return rv;
    *out = linkd__v1__ingest_reply__unpack(NULL, nng_msg_len(msg), nng_msg_body(msg));
    nng_msg_free(msg);
    return *out ? 0 : NNG_EPROTO;
}

int ctl_ingest_exit(const ctl_ingest_totals *t)
{
    if (t->unreachable) return EX_UNAVAILABLE;
    if (t->rejected || t->unanswered) return EX_DATAERR;
    if (t->retry) return EX_TEMPFAIL;
    return 0;
}

void ctl_nng_close(nng_socket s)
{
    ld_nng_close(s, "connection to linkd", CTL_CLOSE_MS);
}

/* ---- output -------------------------------------------------------------- */

bool ctl_colour(void)
{
    const char *no = getenv("NO_COLOR");
    return isatty(STDOUT_FILENO) && !(no && *no);
}

const char *ctl_sanitize(const char *s, char *buf, size_t len)
{
    size_t i = 0;
    if (!len) return "";
    for (; s && s[i] && i + 1 < len; i++) {
        unsigned char c = (unsigned char)s[i];
        buf[i] = (c < 0x20 || c == 0x7f) ? ' ' : (char)c;
    }
    if (s && s[i]) /* truncated: do not leave half a UTF-8 character */
        while (i > 0 && ((unsigned char)buf[i - 1] & 0xc0) == 0x80) i--;
    if (s && s[i] && i > 0 && ((unsigned char)buf[i - 1] & 0xc0) == 0xc0) i--;
    buf[i] = '\0';
    return buf;
}

/* ---- Redis ----------------------------------------------------------------- */

/* split_userinfo copies "[user[:password]@]" off the front of <rest> (after
 * the scheme) into <user> and <pass>, and returns what follows; NULL if a
 * part is too long. */
static const char *split_userinfo(const char *rest, char *user, char *pass, size_t len)
{
    user[0] = pass[0] = '\0';
    if (rest[0] == '/') return rest; /* unix:///path */
    const char *end = rest + strcspn(rest, "/?"), *at = NULL;
    for (const char *p = rest; p < end; p++)
        if (*p == '@') at = p;
    if (!at) return rest;
    const char *colon = memchr(rest, ':', (size_t)(at - rest));
    const char *ue = colon ? colon : at;
    if ((size_t)(ue - rest) >= len || (colon && (size_t)(at - colon - 1) >= len)) return NULL;
    memcpy(user, rest, (size_t)(ue - rest));
    user[ue - rest] = '\0';
    if (colon) {
        memcpy(pass, colon + 1, (size_t)(at - colon - 1));
        pass[at - colon - 1] = '\0';
    }
    return at + 1;
}

/* password_from_file reads LINKCTL_REDIS_PASSWORD_FILE's first line. */
static int password_from_file(char *pass, size_t len)
{
    const char *path = getenv("LINKCTL_REDIS_PASSWORD_FILE");
    if (!path || !*path) return -1;
    FILE *f = fopen(path, "r");
    if (!f) {
        ctl_warn("LINKCTL_REDIS_PASSWORD_FILE %s: %s", path, strerror(errno));
        return -1;
    }
    int ok = fgets(pass, (int)len, f) != NULL;
    fclose(f);
    pass[strcspn(pass, "\r\n")] = '\0';
    if (!ok || !pass[0]) ctl_warn("LINKCTL_REDIS_PASSWORD_FILE %s: empty", path);
    return ok && pass[0] ? 0 : -1;
}

static bool run_ok(redisContext *c, redisReply *r, const char *where, const char *what)
{
    bool ok = r && r->type != REDIS_REPLY_ERROR;
    if (!ok) ctl_warn("%s: %s refused: %s", where, what, r && r->str ? r->str : c->errstr);
    if (r) freeReplyObject(r);
    return ok;
}

redisContext *ctl_redis_connect(const char *url)
{
    struct timeval tv = {5, 0};
    int db = 0;
    bool is_unix = strncmp(url, "unix://", 7) == 0;
    if (!is_unix && strncmp(url, "redis://", 8) != 0) {
        ctl_warn("--redis: give redis://host:port[/db] or unix:///path");
        return NULL;
    }
    char user[128], pass[256], where[300];
    const char *rest = split_userinfo(url + (is_unix ? 7 : 8), user, pass, sizeof user);
    if (!rest) {
        ctl_warn("the user or password in the Redis URL is too long");
        return NULL;
    }
    if (user[0] && !pass[0] && password_from_file(pass, sizeof pass) != 0) {
        ctl_warn("no password for Redis user %s: give user:password@ in the URL or "
                 "LINKCTL_REDIS_PASSWORD_FILE", user);
        return NULL;
    }
    snprintf(where, sizeof where, "%s%s", is_unix ? "unix://" : "redis://", rest);
    redisContext *c = NULL;
    char addr[256];
    snprintf(addr, sizeof addr, "%s", rest);
    if (is_unix) {
        char *q = strchr(addr, '?');
        if (q) {
            if (strncmp(q, "?db=", 4) == 0) db = atoi(q + 4);
            *q = '\0';
        }
        c = redisConnectUnixWithTimeout(addr, tv);
    } else {
        int port = 6379;
        char *slash = strchr(addr, '/');
        if (slash) {
            db = atoi(slash + 1);
            *slash = '\0';
        }
        char *colon = strrchr(addr, ':');
        if (colon) {
            port = atoi(colon + 1);
            *colon = '\0';
        }
        c = redisConnectWithTimeout(addr, port, tv);
    }
    if (!c || c->err) {
        ctl_warn("cannot reach Redis at %s: %s", where, c ? c->errstr : "out of memory");
        redisFree(c);
        return NULL;
    }
    redisSetTimeout(c, tv);
    bool ok = true;
    if (pass[0]) /* "default" is Redis's user when none is named */
        ok = run_ok(c, redisCommand(c, "AUTH %s %s", user[0] ? user : "default", pass), where, "AUTH");
    if (ok && db) ok = run_ok(c, redisCommand(c, "SELECT %d", db), where, "SELECT");
    if (!ok) {
        redisFree(c);
        return NULL;
    }
    return c;
}
