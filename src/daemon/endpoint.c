#include "daemon/endpoint.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

static int starts(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

int ld_endpoint_is_tls(const char *url)
{
    return starts(url, "tls+tcp://") || starts(url, "tls+tcp4://") ||
           starts(url, "tls+tcp6://") || starts(url, "wss://") || starts(url, "wss4://") ||
           starts(url, "wss6://");
}

/* loopback_host says whether the host of "scheme://host:port[/path]" is loopback. */
static int loopback_host(const char *url)
{
    const char *h = strstr(url, "://");
    if (!h) return 0;
    h += 3;
    char host[256];
    size_t n;
    if (*h == '[') { /* [v6]:port */
        const char *end = strchr(h, ']');
        if (!end) return 0;
        h++;
        n = (size_t)(end - h);
    } else {
        const char *end = strchr(h, ':');
        n = end ? (size_t)(end - h) : strcspn(h, "/");
    }
    if (n == 0 || n >= sizeof host) return 0; /* "tcp://:7450" is every interface */
    memcpy(host, h, n);
    host[n] = '\0';
    if (strcasecmp(host, "localhost") == 0) return 1;
    unsigned char a[16];
    if (inet_pton(AF_INET, host, a) == 1) return a[0] == 127;
    if (inet_pton(AF_INET6, host, a) == 1) {
        static const unsigned char lo[16] = {[15] = 1};
        return memcmp(a, lo, 16) == 0;
    }
    return 0; /* a name: it may resolve to anything */
}

int ld_endpoint_check(const char *flag, const char *url, int allow_insecure, char *why,
                      size_t len)
{
    if (ld_endpoint_is_tls(url) || starts(url, "ipc://") || starts(url, "inproc://") ||
        starts(url, "abstract://"))
        return LD_ENDPOINT_OK;
    if (loopback_host(url)) return LD_ENDPOINT_OK;
    if (allow_insecure) {
        snprintf(why, len, "%s %s: listening beyond loopback without TLS (--insecure-listen); "
                 "anyone who reaches it can send and read unauthenticated", flag, url);
        return LD_ENDPOINT_INSECURE;
    }
    snprintf(why, len, "%s %s: refusing to listen beyond loopback without TLS; use tls+tcp:// "
             "with --tls-cert/--tls-key, or --insecure-listen to accept the risk", flag, url);
    return LD_ENDPOINT_REFUSED;
}
