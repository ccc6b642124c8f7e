/* test_crashloop.c: kill -9 linkd again and again under steady load.
 *
 * Producers send fire calls (each goes to fire-duty and medical-duty in
 * tests/data/rules-it/small) and resend anything unanswered, as real ones
 * must; two terminals poll, receipt and resolve. linkd is killed with
 * SIGKILL at random intervals and started again on the same ports. At the
 * end every event a producer was told ACCEPTED must be in ld:events (lost:
 * must be 0) and its incident must have reached both terminals at least once.
 * Reported: kills, events accepted, tasks redelivered, restart-to-ready.
 *
 * Short (CI): 5 kills, 1-3 s apart. Long (LINKD_RELIABILITY=long,
 * tests/reliability/run.sh): 30 kills. Nothing asserts a duration. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "harness.h"
#include "load.h"

#define RULES LD_SOURCE_DIR "/tests/data/rules-it/small"

static ldh_env env;

static void teardown(void)
{
    int code = ldh_env_stop(&env);
    cr_expect_eq(code, 0, "linkd must exit 0 on SIGTERM at the end, exited %d", code);
}

Test(reliability, crash_loop_loses_nothing_accepted, .fini = teardown, .timeout = 1800)
{
    int kills = ldh_long_run() ? 30 : 5;
    unsigned seed = (unsigned)time(NULL);
    fprintf(stderr, "crash loop: %d kills, seed %u\n", kills, seed);
    ldh_linkd_opts o = {.rules = RULES};
    ldh_env_start_or_fail(&env, &o);
    ldh_load_opts lo = {.linkd = &env.linkd, .producers = 2, .batch = 5, .period_ms = 20,
                        .terminals = {"fire-duty", "medical-duty"}, .nterminals = 2};
    ldh_load *load = ldh_load_start(&lo);
    ldh_check(&env, load, "cannot start the load");

    ldh_durations ready = {0};
    for (int k = 0; k < kills; k++) {
        ldh_sleep_ms(1000 + (unsigned)(rand_r(&seed) % 2000));
        ldh_linkd_kill(&env.linkd);
        uint64_t t0 = ldh_mono_ms();
        int rv = ldh_linkd_respawn(&env.linkd, &env.redis, &env.opts);
        if (rv != 0) ldh_load_stop(load);
        ldh_check(&env, rv == 0, "linkd did not come back after kill %d: %d", k + 1, rv);
        ldh_durations_add(&ready, ldh_mono_ms() - t0);
    }
    ldh_sleep_ms(1000);
    ldh_load_pause(load, true);
    bool settled = ldh_load_settle(load, 60000);
    size_t undelivered = ldh_load_await_delivery(load, 60000);
    long lost = ldh_load_check(load, &env.redis);
    ldh_load_stats st;
    ldh_load_get_stats(load, &st);
    ldh_load_stop(load);

    char rd[160];
    ldh_durations_format(&ready, rd, sizeof rd);
    ldh_report("crash loop: %d x kill -9 of linkd under load: %llu events accepted (%llu more "
               "answered DUPLICATE on resend), lost %ld, not delivered %zu; %llu requests "
               "unanswered and resent; tasks delivered %llu, redelivered %llu; restart-to-ready %s",
               kills, (unsigned long long)st.accepted,
               (unsigned long long)st.duplicate_on_resend, lost, undelivered,
               (unsigned long long)st.no_answer, (unsigned long long)st.tasks,
               (unsigned long long)st.redelivered, rd);
    ldh_check(&env, settled, "producers still hold unanswered events after 60 s");
    ldh_check(&env, st.rejected == 0, "%llu valid events were rejected",
              (unsigned long long)st.rejected);
    ldh_check(&env, st.accepted > 0, "nothing was accepted");
    ldh_check(&env, lost == 0, "%ld events answered ACCEPTED are not in ld:events", lost);
    ldh_check(&env, undelivered == 0, "%zu (incident, terminal) deliveries never happened",
              undelivered);
}
