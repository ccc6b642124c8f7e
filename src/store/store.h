/* store.h: Redis, through hiredis's async API on the daemon's libuv loop.
 *
 * What lives in Redis (docs/PROTOCOL.md lists the keys):
 *   ld:events                    stream: every accepted event (src, eid, pb)
 *   ld:seen:<window>             hash: "<source>:<event id>" -> the event's stream id,
 *                                one per 7-day window (Unix seconds / 604,800)
 *   ld:inc:<incident id>         string: linkd.v1.IncidentRecord, written behind
 *   ld:open                      sorted set: open incidents by earliest deadline
 *   ld:esc:<task>:<level>:<leg>  string: escalation fence (when it was made)
 *
 * Intake is one script call per ingest request: for each event it looks in
 * the last two windows' seen hashes and, if new, appends to the stream and
 * records it in this window's, atomically,
 * so a replay is a DUPLICATE however it races. Writes are pipelined: hiredis
 * queues commands and the adapter writes them once per loop turn.
 *
 * hiredis 0.14 has no command timeout: the store checks every second that
 * commands in flight make progress and drops the connection if Redis has
 * answered nothing for --redis-timeout; pending callbacks then get an error.
 * It reconnects with exponential backoff (100 ms .. 5 s), never busily.
 * Loop thread only. */
#ifndef LD_STORE_STORE_H
#define LD_STORE_STORE_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "core/buf.h"
#include "core/pool.h"

struct redisAsyncContext;
struct redisReply;

typedef struct ld_append_item {
    const char *src, *eid;
    const uint8_t *pb;
    size_t pblen;
} ld_append_item;

typedef struct ld_append_result {
    int duplicate;
    char stream_id[48];  /* the event's id in ld:events (of the first copy, for a duplicate) */
} ld_append_result;

/* status 0: res[0..n) are valid. Otherwise (LD_EUNAVAIL, LD_ETIMEDOUT) nothing
 * is known to be durable; the events must be answered RETRY_LATER. */
typedef void (*ld_append_cb)(void *arg, int status, const ld_append_result *res, size_t n);

typedef struct ld_store_stats {
    uint64_t appends, appended_events, duplicates, commands, errors, timeouts, reconnects;
    uint64_t records_written;
    uint64_t write_behind_waits;   /* ticks skipped: Redis had not taken the last one's writes */
    uint64_t fences_won, fences_taken;
} ld_store_stats;

typedef struct ld_store {
    uv_loop_t *loop;
    struct redisAsyncContext *ac;
    char host[256];
    int port, db;
    char unix_path[256];
    char user[64], password[128]; /* AUTH on connect when password is set (Redis ACL) */
    int connected, ready;          /* ready: connected, db selected */
    int auth_failed;               /* this connection's AUTH was refused */
    int stopping, stopped;
    uint64_t backoff_ms;
    uint64_t timeout_ms;
    uint64_t inflight;
    uint64_t last_progress;
    uint64_t connect_started;      /* loop ms of the current connection attempt */        /* loop ms of the last reply, or of 0 -> 1 in flight */
    char sha[41];                  /* the intake script, once loaded */
    uv_timer_t reconnect_timer, watchdog;
    void (*on_state)(void *arg, int up);
    void *state_arg;
    void (*on_stopped)(void *arg);
    void *stopped_arg;
    ld_store_stats stats;
    char last_id[48];              /* newest stream id an intake reply gave */
    int doubt;                     /* an intake call was cut off: Redis may have run it */
    char doubt_after[48];          /* ... and then its events come after this id */
    uint64_t dedup_window_s;       /* the dedup window, seconds (7 days) */
    uint64_t seen_window;          /* the window seen_tidy last saw; 0 after a (re)connect */
    ld_pool ops;                   /* appends waiting for their reply */
    ld_pool cmd_ops;               /* other commands waiting for their reply */
    ld_buf resp;                   /* a command in RESP, built here; hiredis copies it */
    const char **argv;             /* scratch for building commands, free again */
    size_t *lens;                  /* once the command is sent */
    char *keys;
    size_t scratch_events;
    /* Records of one write-behind tick, sent together by ld_store_flush_records. */
    ld_buf rec_bytes;              /* keys, records, scores and ids back to back */
    size_t *rec_off;               /* per record: 4 pieces (key, record, score, id), */
    size_t *rec_len;               /* as offsets into rec_bytes and lengths */
    size_t rec_n, rec_cap;
    const char **rec_argv;         /* scratch for the batch's commands */
    size_t *rec_argl;
} ld_store;

/* ld_store_init parses <url>: redis://[user:password@]host:port[/db] or
 * unix://[user:password@]/path[?db=N]. With a password, every connection
 * starts with AUTH (user "default" when none is given).
 * on_state(arg, up) is called when Redis becomes usable or stops being so.
 * Returns 0 or LD_EINVAL. */
int ld_store_init(ld_store *s, uv_loop_t *loop, const char *url, uint64_t timeout_ms,
                  void (*on_state)(void *arg, int up), void *arg);
int ld_store_start(ld_store *s);
/* ld_store_stop lets commands in flight finish, disconnects, closes the
 * handles, then calls done(arg). */
void ld_store_stop(ld_store *s, void (*done)(void *arg), void *arg);
static inline int ld_store_up(const ld_store *s) { return s->ready; }

/* ld_store_append makes <items> durable and deduplicated. If the connection
 * goes while it waits, cb gets LD_EUNAVAIL although Redis may have run the
 * script: then <doubt> is set and <doubt_after> says after which stream id
 * such events are; the daemon replays them (ld_recover_replay) and clears it. */
int ld_stream_id_cmp(const char *a, const char *b);

/* ld_store_append makes <items> durable and deduplicated. Returns 0 and calls
 * cb later (exactly once), or LD_EUNAVAIL at once and never calls cb. The
 * items are copied before it returns. */
int ld_store_append(ld_store *s, const ld_append_item *items, size_t n, ld_append_cb cb,
                    void *arg);

/* ld_store_append_spooled copies events accepted into the spool while Redis
 * was away into ld:events (field sid = <sids>[i]) and sets their seen keys to
 * their spool ids, unless a seen key is there already: then that event is
 * answered as a duplicate, with the key's value. As ld_store_append. */
int ld_store_append_spooled(ld_store *s, const ld_append_item *items, const char *const *sids,
                            size_t n, ld_append_cb cb, void *arg);

/* ld_store_put_incident writes an incident record behind. <next_due> is its
 * earliest deadline; a closed incident leaves ld:open and expires in 90 days.
 * Records of open incidents gather until ld_store_flush_records (or until
 * a batch is full), then go as one MSET and one ZADD: two commands a tick
 * instead of two per incident. */
void ld_store_put_incident(ld_store *s, const char *id, const uint8_t *rec, size_t len,
                           uint64_t next_due, int closed);

/* ld_store_unsent is the number of bytes of commands hiredis holds that the
 * socket has not taken yet. Write-behind waits while it is over
 * LD_STORE_UNSENT_MAX: appending to a large output buffer copies it whole,
 * so an overloaded Redis would otherwise cost linkd more CPU per event the
 * further it falls behind. */
#define LD_STORE_UNSENT_MAX (1u << 20)
size_t ld_store_unsent(const ld_store *s);
/* ld_store_write_now hands the queued commands to the socket at once (see
 * uvredis.h); Redis may turn out to be gone: check ld_store_up after it. */
void ld_store_write_now(ld_store *s);

/* ld_store_flush_records sends the records gathered since the last call, in
 * the order they came, before any command issued after it. */
void ld_store_flush_records(ld_store *s);
/* ld_store_seen_tidy lets the dedup window before last go (UNLINK) when a
 * new one begins; once per write-behind tick. */
void ld_store_seen_tidy(ld_store *s);

/* The Lua script behind ld_store_append (KEYS[1] = ld:events, KEYS[2] and
 * [3] = this and the last window's seen hashes; ARGV[1] = ttl, then field
 * "<src>:<eid>", src, eid, pb per event). Exported so the load tester's
 * ceiling measures exactly this work. */
extern const char ld_store_intake_script[];

/* ld_store_put_mark records that every incident opened from events up to
 * <stream_id> has been written (queued after their records, so Redis has them
 * all if it has the mark). Recovery replays the events after it. */
void ld_store_put_mark(ld_store *s, const char *stream_id);

/* ld_store_fence claims <key> once, for <ttl_s> seconds, with <value>: SET
 * NX GET, so the answer says who had it. cb(arg, LD_FENCE_*-like status):
 * status 0 (the claim is ours), 1 (taken: <held> is the holder's value) or
 * LD_EUNAVAIL (no answer: unknown). cb may be NULL (record only). Returns 0,
 * or LD_EUNAVAIL/LD_ENOMEM at once without calling cb. */
typedef void (*ld_fence_cb)(void *arg, int status, const char *held);
int ld_store_fence(ld_store *s, const char *key, const char *value, uint64_t ttl_s,
                   ld_fence_cb cb, void *arg);

/* A command for recovery and tools, not the hot path. cb gets the reply (NULL
 * if the connection was lost), which hiredis frees when cb returns. Returns 0,
 * or LD_EUNAVAIL/LD_ENOMEM without calling cb. */
typedef void (*ld_reply_cb)(void *arg, struct redisReply *reply);
int ld_store_commandv(ld_store *s, ld_reply_cb cb, void *arg, int argc, const char **argv,
                      const size_t *lens);

#endif
