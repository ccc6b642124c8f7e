/* hook.c: the webhook receiver of `linkload am`: a small HTTP/1.1 server on
 * loopback that Alertmanager delivers its notifications to.
 *
 * One thread, poll(2), keep-alive connections. Each POST is timestamped on
 * arrival (before its body is looked at), answered 200 at once, and handed to
 * the caller's callback with the path (the receiver's name) and the body.
 * Only what Alertmanager sends is supported: requests with Content-Length
 * (no chunked bodies), at most LG_HOOK_MAX_BODY bytes. */
#define _GNU_SOURCE   /* memmem */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/err.h"
#include "hook.h"

#define MAX_CONNS 256
#define LG_HOOK_MAX_BODY (4u << 20)

typedef struct conn {
    int fd;
    char *buf;
    size_t len, cap;
} conn;

struct lg_hook {
    int lfd, port;
    pthread_t thread;
    int running;
    _Atomic int stop;
    lg_hook_fn fn;
    void *arg;
    conn c[MAX_CONNS];
    int nc;
    uint64_t requests, bad;
};

static const char OK[] = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
static const char BAD[] = "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";

static void conn_close(lg_hook *h, int i)
{
    close(h->c[i].fd);
    free(h->c[i].buf);
    h->c[i] = h->c[--h->nc];
}

static int write_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* take_requests handles every complete request in the connection's buffer.
 * Returns -1 when the connection must close. */
static int take_requests(lg_hook *h, conn *c, uint64_t now)
{
    size_t off = 0;
    int rv = 0;
    while (off < c->len) {
        char *start = c->buf + off;
        size_t avail = c->len - off;
        char *end = memmem(start, avail, "\r\n\r\n", 4);
        if (!end) break;
        size_t hlen = (size_t)(end - start) + 4;
        size_t clen = 0;
        for (char *p = start; p < end;) {
            char *nl = memmem(p, (size_t)(end - p), "\r\n", 2);
            char *le = nl ? nl : end;
            if ((size_t)(le - p) > 15 && strncasecmp(p, "Content-Length:", 15) == 0)
                clen = strtoul(p + 15, NULL, 10);
            p = le + 2;
        }
        if (clen > LG_HOOK_MAX_BODY || strncmp(start, "POST ", 5) != 0) {
            h->bad++;
            write_all(c->fd, BAD, sizeof BAD - 1);
            return -1;
        }
        if (avail < hlen + clen) break;
        char path[64] = "";
        sscanf(start + 5, "/%63[^ ?]", path);
        h->requests++;
        if (h->fn) h->fn(h->arg, path, start + hlen, clen, now);
        if (write_all(c->fd, OK, sizeof OK - 1) != 0) rv = -1;
        off += hlen + clen;
    }
    if (off) {
        memmove(c->buf, c->buf + off, c->len - off);
        c->len -= off;
    }
    return rv;
}

static int conn_read(lg_hook *h, conn *c)
{
    if (c->cap - c->len < 65536) {
        size_t ncap = c->cap ? c->cap * 2 : 131072;
        if (ncap > 2 * LG_HOOK_MAX_BODY) return -1;
        char *n = realloc(c->buf, ncap);
        if (!n) return -1;
        c->buf = n;
        c->cap = ncap;
    }
    ssize_t r = recv(c->fd, c->buf + c->len, c->cap - c->len, 0);
    if (r < 0 && (errno == EINTR || errno == EAGAIN)) return 0;
    if (r <= 0) return -1;
    uint64_t now = ld_mono_ns();   /* arrival, before the body is parsed */
    c->len += (size_t)r;
    return take_requests(h, c, now);
}

static void *hook_main(void *arg)
{
    lg_hook *h = arg;
    struct pollfd pf[MAX_CONNS + 1];
    while (!atomic_load(&h->stop)) {
        pf[0] = (struct pollfd){.fd = h->lfd, .events = POLLIN};
        for (int i = 0; i < h->nc; i++) pf[i + 1] = (struct pollfd){.fd = h->c[i].fd, .events = POLLIN};
        int n = poll(pf, (nfds_t)h->nc + 1, 100);
        if (n <= 0) continue;
        for (int i = h->nc - 1; i >= 0; i--)
            if (pf[i + 1].revents && conn_read(h, &h->c[i]) != 0) conn_close(h, i);
        if (pf[0].revents & POLLIN) {
            int fd = accept(h->lfd, NULL, NULL);
            if (fd < 0) continue;
            if (h->nc == MAX_CONNS) {
                close(fd);
                continue;
            }
            int one = 1;
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            h->c[h->nc++] = (conn){.fd = fd};
        }
    }
    return NULL;
}

int lg_hook_start(lg_hook **out, int port, lg_hook_fn fn, void *arg)
{
    lg_hook *h = calloc(1, sizeof *h);
    if (!h) return LD_ENOMEM;
    h->fn = fn;
    h->arg = arg;
    h->lfd = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t alen = sizeof a;
    if (h->lfd < 0 || setsockopt(h->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        bind(h->lfd, (struct sockaddr *)&a, sizeof a) != 0 || listen(h->lfd, 128) != 0 ||
        getsockname(h->lfd, (struct sockaddr *)&a, &alen) != 0) {
        if (h->lfd >= 0) close(h->lfd);
        free(h);
        return LD_EIO;
    }
    h->port = ntohs(a.sin_port);
    if (pthread_create(&h->thread, NULL, hook_main, h) != 0) {
        close(h->lfd);
        free(h);
        return LD_ENOMEM;
    }
    h->running = 1;
    *out = h;
    return 0;
}

int lg_hook_port(const lg_hook *h)
{
    return h->port;
}

void lg_hook_stop(lg_hook *h)
{
    if (!h) return;
    atomic_store(&h->stop, 1);
    if (h->running) pthread_join(h->thread, NULL);
    while (h->nc) conn_close(h, h->nc - 1);
    close(h->lfd);
    free(h);
}
