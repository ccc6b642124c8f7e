/* endpoint.h: may linkd listen on this URL?
 *
 * Plain tcp:// (or ws://) is allowed on loopback only (127.0.0.0/8, ::1,
 * localhost); anything else needs tls+tcp:// or the operator's explicit
 * --insecure-listen, and then is logged as a warning. ipc:// and inproc://
 * are local by nature. */
#ifndef LD_DAEMON_ENDPOINT_H
#define LD_DAEMON_ENDPOINT_H

#include <stddef.h>

enum {
    LD_ENDPOINT_OK,          /* loopback, local or TLS */
    LD_ENDPOINT_INSECURE,    /* plain and reachable from the network, but allowed */
    LD_ENDPOINT_REFUSED,     /* plain and reachable from the network: refuse to start */
};

/* ld_endpoint_check classifies <url> (given as <flag>) and, unless OK, writes
 * a sentence for the operator into <why>. */
int ld_endpoint_check(const char *flag, const char *url, int allow_insecure, char *why,
                      size_t len);

/* ld_endpoint_is_tls says whether <url> uses tls+tcp (tls+tcp4, tls+tcp6, wss). */
int ld_endpoint_is_tls(const char *url);

#endif
