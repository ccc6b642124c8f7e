/* linkctl.h: pieces shared by the subcommands of linkctl, the operators' and
 * ops teams' command-line tool (send events, act as an on-duty terminal, tail
 * the feed, check rules).
 *
 * Every subcommand is `int ctl_<cmd>_main(int argc, char **argv)` with
 * argv[0] the subcommand's name; it returns a sysexits.h code. Messages for
 * the user go to stdout, problems to stderr prefixed "linkctl <cmd>: ".
 * linkctl is single-threaded except for NNG's completion callbacks, which
 * only hand results back (terminal.c). */
#ifndef LD_TOOLS_LINKCTL_H
#define LD_TOOLS_LINKCTL_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <nng/nng.h>

#include "core/tls.h"
#include "wire/wire.h"

/* Default URLs: the daemon's defaults (see linkd --help). */
#define CTL_INGEST_URL "tcp://127.0.0.1:7450"
#define CTL_TERMINALS_URL "tcp://127.0.0.1:7451"
#define CTL_FEED_URL "tcp://127.0.0.1:7452"
#define CTL_REDIS_URL "redis://127.0.0.1:6379/0"

int ctl_send_main(int argc, char **argv);
int ctl_terminal_main(int argc, char **argv);
int ctl_tail_main(int argc, char **argv);
int ctl_check_main(int argc, char **argv);
int ctl_test_rules_main(int argc, char **argv);
int ctl_keygen_main(int argc, char **argv);

/* A signed hello (keys.c): ctl_sign_hello fills <h> for terminal <id> with a
 * fresh nonce and the current time, signed with the 64-byte secret key <sk>
 * that ctl_load_secret read from a `linkctl keygen` file (0, or -1 after
 * saying why). */
typedef struct ctl_hello {
    Linkd__V1__TerminalHello pb;
    uint8_t nonce[16], sig[64];
} ctl_hello;
typedef struct ctl_source_hello {
    Linkd__V1__SourceHello pb;
    uint8_t nonce[16], sig[64];
} ctl_source_hello;
int ctl_load_secret(const char *path, uint8_t sk[64]);
void ctl_sign_source_hello(ctl_source_hello *h, const char *id, const uint8_t sk[64]);
void ctl_sign_hello(ctl_hello *h, const char *id, const uint8_t sk[64]);
int ctl_audit_main(int argc, char **argv);
int ctl_replay_main(int argc, char **argv);
int ctl_incidents_main(int argc, char **argv);

/* ---- messages ------------------------------------------------------------ */

/* ctl_cmd is the running subcommand's name, for messages ("send"). */
extern const char *ctl_cmd;

/* ctl_warn prints "linkctl <cmd>: <msg>" to stderr. */
void ctl_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* ctl_usage_error prints the message and a pointer to --help; returns EX_USAGE. */
int ctl_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ---- parsing: 0 on success, -1 on bad input ------------------------------- */

int ctl_parse_u32(const char *s, uint32_t *out);
int ctl_parse_double(const char *s, double *out);
/* A delay: bare digits are milliseconds ("1500"), else a duration ("2s", "1m30s"). */
int ctl_parse_delay(const char *s, uint64_t *ms);
/* A span: bare digits are seconds ("30"), else a duration ("90s", "2m"). */
int ctl_parse_span(const char *s, uint64_t *ms);
/* ctl_parse_enum maps a short enum name ("traffic_accident") to its wire value;
 * on failure prints "--<opt>: unknown value 'x' (known: ...)" and returns -1. */
int ctl_parse_enum(const ProtobufCEnumDescriptor *d, const char *opt, const char *name,
                   int *value);

/* ---- time ---------------------------------------------------------------- */

/* ctl_fmt_clock writes the local time of day of <ms> (epoch ms), "14:03:27". */
void ctl_fmt_clock(int64_t ms, char *buf, size_t len);
/* ctl_fmt_span writes a signed span readably: "45s", "9m30s", "2h", "-12s". */
void ctl_fmt_span(int64_t ms, char *buf, size_t len);

/* ---- signals --------------------------------------------------------------- */

/* ctl_signals_install makes SIGINT and SIGTERM set ctl_stop and make
 * ctl_signal_fd() readable, so a poll() loop wakes at once. Returns 0 or -1. */
int ctl_signals_install(void);
int ctl_signal_fd(void);
extern volatile sig_atomic_t ctl_stop;

/* ---- NNG ------------------------------------------------------------------- */

/* ctl_req_open opens a REQ socket to <url>. With <wait_for_peer> the dial
 * happens in the background (and reconnects); otherwise a refused
 * connection fails at once. Resends are off: linkd answers every request,
 * and a resent poll or ingest would only be answered twice. Returns 0 or an
 * NNG error. */
int ctl_req_open(nng_socket *s, const char *url, bool wait_for_peer);
/* ctl_nng_close closes a socket of linkctl's, waiting at most CTL_CLOSE_MS:
 * NNG 1.5.2's nng_close can wait for ever when a connection goes while a
 * write is half done (docs/ARCHITECTURE.md); linkctl is about to exit and
 * leaves it be. */
#define CTL_CLOSE_MS 2000
void ctl_nng_close(nng_socket s);
/* ctl_tls is the client side of tls+tcp:// URLs, from the environment:
 * LINKCTL_TLS_CA (verify linkd), LINKCTL_TLS_CERT and LINKCTL_TLS_KEY (this
 * client's certificate, for mutual TLS), LINKCTL_TLS_SERVER_NAME. */
const ld_tls_files *ctl_tls(void);

/* ---- intake ---------------------------------------------------------------- */

/* Totals over every IngestResult, and whether linkd could be reached at all. */
typedef struct ctl_ingest_totals {
    uint64_t accepted, duplicate, rejected, retry, unanswered;
    bool unreachable;
} ctl_ingest_totals;

/* ctl_ingest_exchange sends one IngestRequest on REQ socket <s> and returns
 * the decoded reply in *out (free with linkd__v1__ingest_reply__free_unpacked),
 * or an NNG error (NNG_EPROTO for a reply that does not decode). */
int ctl_ingest_exchange(nng_socket s, const Linkd__V1__IngestRequest *req,
                        Linkd__V1__IngestReply **out);
/* ctl_print_result prints one result as a line ("ACCEPTED <event> -> incident
 * <id>", "REJECTED <event>: <reason>" ...); <fallback_id> names the event if
 * linkd did not. */
void ctl_print_result(const Linkd__V1__IngestResult *r, const char *fallback_id, bool colour);
void ctl_ingest_count(ctl_ingest_totals *t, int result);
/* ctl_ingest_exit: 69 unreachable, 65 some rejected or unanswered, 75 some
 * still to retry later, else 0. */
int ctl_ingest_exit(const ctl_ingest_totals *t);

/* ---- Redis ----------------------------------------------------------------- */

/* ctl_redis_connect opens a blocking connection (5 s timeouts) to
 * redis://[user[:password]@]host:port[/db] or unix:///path[?db=N], logs in
 * (a user without a password in the URL takes the first line of the file
 * LINKCTL_REDIS_PASSWORD_FILE names) and selects the db; NULL after saying
 * why. Messages never show the password. */
struct redisContext;
struct redisContext *ctl_redis_connect(const char *url);

/* ---- output -------------------------------------------------------------- */

/* ctl_colour is true when stdout is a terminal and NO_COLOR is not set. */
bool ctl_colour(void);
#define CTL_RESET "\033[0m"
#define CTL_BOLD "\033[1m"
#define CTL_DIM "\033[2m"
#define CTL_RED "\033[31m"
#define CTL_GREEN "\033[32m"
#define CTL_YELLOW "\033[33m"
#define CTL_BLUE "\033[34m"
#define CTL_MAGENTA "\033[35m"
#define CTL_CYAN "\033[36m"

/* ctl_sanitize copies <s> into <buf> with control characters replaced by
 * spaces, so text from the network cannot drive the user's terminal. */
const char *ctl_sanitize(const char *s, char *buf, size_t len);

#endif
