/* hook.h: a webhook receiver on loopback, for `linkload am` (hook.c). */
#ifndef LINKLOAD_HOOK_H
#define LINKLOAD_HOOK_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

typedef struct lg_hook lg_hook;

/* Called on the receiver's thread for every POST: <path> without its '/'
 * (the receiver name), the body (not NUL-terminated) and the arrival time
 * (ld_mono_ns). */
typedef void (*lg_hook_fn)(void *arg, const char *path, const char *body, size_t len,
                           uint64_t arrived_ns);

/* lg_hook_start listens on 127.0.0.1:<port> (0: a free port) and serves
 * until lg_hook_stop. Returns 0 or LD_EIO (cannot listen) / LD_ENOMEM. */
int lg_hook_start(lg_hook **out, int port, lg_hook_fn fn, void *arg);
int lg_hook_port(const lg_hook *h);
/* lg_hook_stop stops the thread, closes every connection and frees <h>. */
void lg_hook_stop(lg_hook *h);

#endif
