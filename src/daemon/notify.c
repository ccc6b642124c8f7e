#include "daemon/notify.h"

#include <stdint.h>
#include <stdlib.h>

#include <systemd/sd-daemon.h>

#include "core/log.h"

static void send_state(ld_notify *n, const char *state)
{
    if (!n->enabled) return;
    int rv = sd_notify(0, state);
    if (rv < 0) ld_log_rl(LD_WARN, "NOTIFY", "sd_notify failed: error %d", -rv);
}

static void on_watchdog(uv_timer_t *t)
{
    send_state(t->data, "WATCHDOG=1");
}

void ld_notify_start(ld_notify *n, uv_loop_t *loop)
{
    uint64_t usec = 0;
    n->enabled = getenv("NOTIFY_SOCKET") != NULL;
    n->watching = 0;
    uv_timer_init(loop, &n->watchdog);
    n->watchdog.data = n;
    /* sd_watchdog_enabled checks WATCHDOG_PID too, so a child does not ping for us. */
    if (n->enabled && sd_watchdog_enabled(0, &usec) > 0 && usec >= 2000) {
        uint64_t every = usec / 2000; /* ms: twice per period */
        uv_timer_start(&n->watchdog, on_watchdog, every, every);
        uv_unref((uv_handle_t *)&n->watchdog); /* never keeps the loop alive alone */
        n->watching = 1;
        ld_log(LD_INFO, "WATCHDOG", "systemd watchdog: pinging every %llums",
               (unsigned long long)every);
    }
}

void ld_notify_ready(ld_notify *n, const char *status)
{
    if (!n->enabled) return;
    char buf[512];
    snprintf(buf, sizeof buf, "READY=1\nSTATUS=%s", status);
    send_state(n, buf);
}

void ld_notify_reloading(ld_notify *n)
{
    send_state(n, "RELOADING=1");
}

void ld_notify_stopping(ld_notify *n)
{
    send_state(n, "STOPPING=1\nSTATUS=draining");
}

void ld_notify_status(ld_notify *n, const char *status)
{
    if (!n->enabled) return;
    char buf[512];
    snprintf(buf, sizeof buf, "STATUS=%s", status);
    send_state(n, buf);
}

void ld_notify_close(ld_notify *n)
{
    uv_timer_stop(&n->watchdog);
    uv_close((uv_handle_t *)&n->watchdog, NULL);
}
