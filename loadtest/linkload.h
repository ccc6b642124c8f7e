/* linkload.h: internal interfaces of the linkload load generator.
 *
 * linkload run      open-loop intake load with simulated on-duty terminals
 *                   (run.c, term.c, feed.c, report.c; shared state in run.h)
 * linkload ceiling  the machine's bare NNG and Redis ceilings (ceiling.c)
 * linkload micro    CPU cost of the timer heap and the histogram (micro.c)
 * linkload am       the same load through Prometheus Alertmanager, the peer
 *                   (am.c; its webhook receiver is hook.c)
 * Scenarios are read by scenario.c, delays drawn by dist.c, events built by
 * gen.c; redis_srv.c starts a private redis-server.
 * None of this is part of the daemon: it links linkd_core only for the wire
 * schema, the histogram, the clocks and the rule loader. */
#ifndef LINKLOAD_H
#define LINKLOAD_H

#include <nng/nng.h>
#include <stddef.h>
#include <stdint.h>

#include "scenario.h"
#include "wire/wire.h"

#define LG_MAX_BATCH 1024   /* linkd's limit of events per IngestRequest */

/* ---- event generator (gen.c) ------------------------------------------- */

typedef struct lg_gen lg_gen;

/* What the events of one request look like: the mix, and optionally a place
 * and a petitioner count range (a phase of a scenario). */
typedef struct lg_gen_spec {
    const lg_mix *mix;
    const lg_place *place;          /* NULL: anywhere in the city */
    unsigned petitioners_min, petitioners_max;   /* 0: the usual spread */
    int status;                     /* Status value */
} lg_gen_spec;

/* lg_gen_new makes a generator for run <run_id> whose events come from
 * <source_id>. The caller frees it with lg_gen_free. One thread at a time. */
lg_gen *lg_gen_new(const char *run_id, const char *source_id, uint64_t seed);
void lg_gen_free(lg_gen *g);

/* lg_gen_request packs <n> (<= LG_MAX_BATCH) events with sequence numbers
 * first_seq .. first_seq+n-1 (event ids "<run_id>-<seq>") into a new NNG
 * message owned by the caller. occurred_at_ms is <wall_ms>. Returns 0 or an
 * NNG error code. */
int lg_gen_request(lg_gen *g, const lg_gen_spec *spec, uint64_t first_seq, unsigned n,
                   uint64_t wall_ms, nng_msg **out);

/* lg_gen_reply packs an IngestReply that accepts <n> events, the size linkd
 * would answer with; for the ceiling's echo server. */
int lg_gen_reply(unsigned n, nng_msg **out);

/* ---- private redis-server (redis_srv.c) -------------------------------- */

typedef struct lg_redis_srv {
    int pid;            /* 0 when not running */
    int port;
    char dir[256];      /* temp dir, removed on stop */
} lg_redis_srv;

/* lg_redis_start starts redis-server on 127.0.0.1:<port> (0 = a free port)
 * in a new temp dir with appendonly <aof> (appendfsync everysec), and waits
 * until it answers PING (at most 10 s). Returns 0 or LD_EIO. */
int lg_redis_start(lg_redis_srv *s, int port, int aof);
/* lg_redis_stop stops it by PID (SIGTERM, then SIGKILL after 5 s) and
 * removes its directory. Safe on a server that never started. */
void lg_redis_stop(lg_redis_srv *s);

/* ---- helpers (util.c) ---------------------------------------------- */

/* lg_free_port returns a TCP port on 127.0.0.1 that was free a moment ago. */
int lg_free_port(void);
/* lg_sleep_until sleeps until the monotonic time <ns> (ld_mono_ns scale). */
void lg_sleep_until(uint64_t ns);
/* lg_fmt_ns writes a latency as "850us" / "1.25ms" / "3.2s". */
const char *lg_fmt_ns(uint64_t ns, char *buf, size_t len);

/* ---- subcommands -------------------------------------------------------- */

int lg_cmd_run(int argc, char **argv);
int lg_cmd_ceiling(int argc, char **argv);
int lg_cmd_echo(int argc, char **argv);      /* ceiling.c */
int lg_cmd_micro(int argc, char **argv);
int lg_cmd_rules(int argc, char **argv);  /* rules_bench.c */
int lg_cmd_am(int argc, char **argv);
int lg_cmd_am_config(int argc, char **argv);
int lg_cmd_hostile(int argc, char **argv);   /* hostile.c */

/* Exit codes (sysexits.h values, as linkd uses). */
enum { LG_EXIT_OK = 0, LG_EXIT_USAGE = 64, LG_EXIT_DATAERR = 65, LG_EXIT_UNAVAILABLE = 69,
       LG_EXIT_SOFTWARE = 70 };

#endif
