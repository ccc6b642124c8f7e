/* test_redis_faults.c: Redis goes away under steady load.
 *
 * Outage: Redis is stopped (SIGTERM: it writes its append-only file) for a
 * while and started again on the same port and directory. Meanwhile linkd
 * must go on accepting and dispatching fire calls (life safety, through its
 * spool), answer RETRY_LATER rather than ACCEPTED for crimes, which it cannot
 * make durable, keep its memory flat, and drain the producers' backlog and
 * its spool when Redis returns. Crash: Redis is killed with SIGKILL
 * (append-only file on, appendfsync always) and restarted at once. In both, every event a
 * producer was told ACCEPTED must be in ld:events afterwards (lost: 0) and
 * its incident must reach its terminal.
 *
 * Short (CI): a 12 s outage, 2 Redis kills. Long (LINKD_RELIABILITY=long):
 * a 30 s outage, 10 kills. */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "load.h"

static ldh_env env;
static char spool_dir[96];

/* The default rules: fire calls are critical, which rules/life_safety.yaml
 * calls life safety; crimes are not. linkd runs with a spool. */
static void setup(void)
{
    cr_assert_eq(ldh_mkdtemp(spool_dir, sizeof spool_dir, "spool"), 0);
    ldh_linkd_opts o = {.extra = {"--redis-timeout", "1000", "--spool", spool_dir, NULL}};
    ldh_env_start_or_fail(&env, &o);
}

static void teardown(void)
{
    int code = ldh_env_stop(&env);
    if (spool_dir[0]) ldh_rmtree(spool_dir);
    spool_dir[0] = '\0';
    cr_expect_eq(code, 0, "linkd must exit 0 on SIGTERM at the end, exited %d", code);
}

/* VmRSS of <pid> in KiB, or 0. */
static long rss_kib(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    char *s = ldh_read_file(path, NULL);
    const char *p = s ? strstr(s, "VmRSS:") : NULL;
    long kib = p ? atol(p + 6) : 0;
    free(s);
    return kib;
}

enum { FIRE, CRIME };

/* Fire calls must reach fire-duty, crimes police-duty. */
static ldh_load *start_load(void)
{
    ldh_load_opts lo = {
        .linkd = &env.linkd, .producers = 2, .batch = 4, .period_ms = 25,
        .categories = {[FIRE] = LINKD__V1__CALL_CATEGORY__CALL_CATEGORY_FIRE,
                       [CRIME] = LINKD__V1__CALL_CATEGORY__CALL_CATEGORY_CRIME},
        .ncategories = 2,
        .terminals = {"fire-duty", "police-duty"}, .nterminals = 2,
        .expect = {[FIRE] = 0x1, [CRIME] = 0x2},
    };
    return ldh_load_start(&lo);
}

/* finish pauses the producers, waits for the backlog and the deliveries,
 * and counts what was lost. */
static void finish(ldh_load *load, long *lost, size_t *undelivered, bool *settled,
                   ldh_load_stats *st)
{
    ldh_load_pause(load, true);
    *settled = ldh_load_settle(load, 90000);
    /* Spooled events reach ld:events as linkd copies the spool, after it
     * reconnects; the file goes when the last one is in. */
    char spool_file[160];
    snprintf(spool_file, sizeof spool_file, "%s/linkd.spool", spool_dir);
    for (int i = 0; i < 1200 && access(spool_file, F_OK) == 0; i++) ldh_sleep_ms(50);
    *undelivered = ldh_load_await_delivery(load, 60000);
    *lost = ldh_load_check(load, &env.redis);
    ldh_load_get_stats(load, st);
    ldh_load_stop(load);
}

Test(reliability, redis_outage_under_load, .init = setup, .fini = teardown, .timeout = 600)
{
    int outage_s = ldh_long_run() ? 30 : 12;
    ldh_load *load = start_load();
    ldh_check(&env, load, "cannot start the load");
    ldh_sleep_ms(2000);
    long rss_before = rss_kib(env.linkd.pid), rss_max = rss_before;

    ldh_check(&env, ldh_redis_halt(&env.redis) == 0, "redis did not stop cleanly");
    ldh_check(&env, ldh_linkd_log_wait(&env.linkd, "DEGRADED", 20000),
              "linkd did not notice redis leaving");
    ldh_sleep_ms(500); /* answers to requests Redis took before it stopped arrive */
    ldh_load_stats before;
    ldh_load_get_stats(load, &before);
    for (int s = 0; s < outage_s; s++) {
        ldh_sleep_ms(1000);
        long r = rss_kib(env.linkd.pid);
        if (r > rss_max) rss_max = r;
    }
    ldh_load_stats during;
    ldh_load_get_stats(load, &during);
    ldh_check(&env, ldh_redis_respawn(&env.redis) == 0, "redis did not start again");
    uint64_t back = ldh_mono_ms();
    ldh_sleep_ms(2000);

    long lost;
    size_t undelivered;
    bool settled;
    ldh_load_stats st;
    finish(load, &lost, &undelivered, &settled, &st);
    uint64_t drained_ms = ldh_mono_ms() - back;
    uint64_t fire_during = during.accepted_by_category[FIRE] - before.accepted_by_category[FIRE];
    uint64_t crime_during = during.accepted_by_category[CRIME] - before.accepted_by_category[CRIME];
    ldh_report("redis outage: %d s under load: %llu events accepted in all; while redis was "
               "down %llu life-safety calls accepted (spooled) and %llu others; %llu RETRY_LATER "
               "answers; backlog %s %llu ms after redis returned; lost %ld, not delivered %zu; "
               "linkd RSS %ld KiB before, at most %ld KiB during",
               outage_s, (unsigned long long)(st.accepted + st.duplicate_on_resend),
               (unsigned long long)fire_during, (unsigned long long)crime_during,
               (unsigned long long)st.retry_later, settled ? "drained" : "NOT drained", (unsigned long long)drained_ms,
               lost, undelivered, rss_before, rss_max);
    ldh_check(&env, settled, "the producers' backlog was not drained");
    ldh_check(&env, st.retry_later > 0, "nobody was told RETRY_LATER during the outage");
    ldh_check(&env, fire_during > 0, "no life-safety call was accepted while redis was down");
    ldh_check(&env, crime_during == 0, "%llu crimes were ACCEPTED while redis was down",
              (unsigned long long)crime_during);
    ldh_check(&env, ldh_linkd_log_has(&env.linkd, "SPOOL-RECONCILED"),
              "the spool was not reconciled");
    ldh_check(&env, st.rejected == 0, "valid events were rejected");
    ldh_check(&env, lost == 0, "%ld events answered ACCEPTED are not in ld:events", lost);
    ldh_check(&env, undelivered == 0, "%zu deliveries never happened", undelivered);
    /* Nothing queues per event while Redis is away (intake answers at once;
     * the spool holds the life-safety events). Under AddressSanitizer freed
     * memory waits in its quarantine (256 MB by default) before reuse, so
     * only the release build measures linkd's own growth. */
#ifdef __SANITIZE_ADDRESS__
    long bound = 512 * 1024;
#else
    long bound = 64 * 1024;
#endif
    ldh_check(&env, rss_max < rss_before + bound,
              "linkd grew from %ld to %ld KiB during the outage", rss_before, rss_max);
}

/* Redis as ops/redis.conf runs it, but fsyncing before it answers. With
 * everysec, Redis postpones even the write of its append-only file (up to
 * 2 s) while a background fsync is still running, yet answers meanwhile: on
 * a busy disk a kill -9 can then lose acknowledged writes (the sanitizer run
 * of this test once lost 4 events that way). docs/RELIABILITY.md. */
static void fsync_always(void)
{
    redisReply *r = ldh_redis_cmd(&env.redis, "CONFIG SET appendfsync always");
    ldh_check(&env, r && r->type == REDIS_REPLY_STATUS, "CONFIG SET appendfsync always failed");
    freeReplyObject(r);
}

Test(reliability, redis_killed_with_append_only_file_loses_nothing, .init = setup,
     .fini = teardown, .timeout = 600)
{
    int kills = ldh_long_run() ? 10 : 2;
    fsync_always();
    ldh_load *load = start_load();
    ldh_check(&env, load, "cannot start the load");
    ldh_durations back = {0};
    for (int k = 0; k < kills; k++) {
        ldh_sleep_ms(2000);
        ldh_redis_kill(&env.redis);
        uint64_t t0 = ldh_mono_ms();
        int rv = ldh_redis_respawn(&env.redis);
        if (rv != 0) ldh_load_stop(load);
        ldh_check(&env, rv == 0, "redis did not start again after kill %d", k + 1);
        ldh_durations_add(&back, ldh_mono_ms() - t0);
        fsync_always();
    }
    ldh_sleep_ms(2000);
    long lost;
    size_t undelivered;
    bool settled;
    ldh_load_stats st;
    finish(load, &lost, &undelivered, &settled, &st);
    char bd[160];
    ldh_durations_format(&back, bd, sizeof bd);
    ldh_report("redis kill -9: %d x under load (appendonly yes, appendfsync always): %llu "
               "events accepted, lost %ld, not delivered %zu, %llu RETRY_LATER answers; redis "
               "restart (AOF load) %s",
               kills, (unsigned long long)(st.accepted + st.duplicate_on_resend), lost,
               undelivered, (unsigned long long)st.retry_later, bd);
    ldh_check(&env, settled, "the producers' backlog was not drained");
    ldh_check(&env, st.rejected == 0, "valid events were rejected");
    ldh_check(&env, lost == 0, "%ld events answered ACCEPTED are not in ld:events", lost);
    ldh_check(&env, undelivered == 0, "%zu deliveries never happened", undelivered);
}
