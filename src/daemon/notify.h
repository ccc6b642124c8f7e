/* notify.h: telling systemd how linkd is doing (sd_notify, Type=notify).
 *
 * READY=1 once rules are loaded, Redis answers and intake is open;
 * RELOADING=1 then READY=1 around a rules reload; STOPPING=1 when the drain
 * starts; STATUS= lines an operator sees in `systemctl status`. When the unit
 * sets WatchdogSec=, a loop timer sends WATCHDOG=1 at half that period, so a
 * loop that stops turning is restarted by systemd. Outside systemd
 * (NOTIFY_SOCKET unset) every call does nothing. Loop thread only. */
#ifndef LD_DAEMON_NOTIFY_H
#define LD_DAEMON_NOTIFY_H

#include <uv.h>

typedef struct ld_notify {
    uv_timer_t watchdog;
    int enabled;            /* NOTIFY_SOCKET is set */
    int watching;           /* the watchdog timer runs */
} ld_notify;

/* ld_notify_start starts the watchdog timer on <loop> if systemd asked for one. */
void ld_notify_start(ld_notify *n, uv_loop_t *loop);
void ld_notify_ready(ld_notify *n, const char *status);
void ld_notify_reloading(ld_notify *n);
void ld_notify_stopping(ld_notify *n);
void ld_notify_status(ld_notify *n, const char *status);
/* ld_notify_close stops and closes the watchdog timer (the loop runs its close). */
void ld_notify_close(ld_notify *n);

#endif
