#include "http_client.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/err.h"
#include "harness.h"

#define HTTP_TIMEOUT_MS 15000
#define HTTP_MAX (64 << 20)

static int send_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return LD_EIO;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* complete says whether <buf> holds a whole answer with a Content-Length. */
static int complete(char *buf, size_t len)
{
    buf[len] = '\0';
    char *sep = strstr(buf, "\r\n\r\n");
    if (!sep) return 0;
    for (char *p = buf; p && p < sep; p = strstr(p, "\r\n"), p = p ? p + 2 : NULL)
        if (strncasecmp(p, "content-length:", 15) == 0)
            return len - (size_t)(sep + 4 - buf) >= strtoull(p + 15, NULL, 10);
    return 0;
}

int ldh_http(int port, const char *method, const char *path, const char *body,
             const char *token, ldh_http_reply *r)
{
    memset(r, 0, sizeof *r);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return LD_EIO;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        close(fd);
        return LD_EIO;
    }
    char head[1024];
    size_t blen = body ? strlen(body) : 0;
    int n = snprintf(head, sizeof head,
                     "%s %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nConnection: close\r\n%s%s%s"
                     "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n",
                     method, path, port, token ? "Authorization: Bearer " : "",
                     token ? token : "", token ? "\r\n" : "", blen);
    if (send_all(fd, head, (size_t)n) || (blen && send_all(fd, body, blen))) {
        close(fd);
        return LD_EIO;
    }
    size_t cap = 65536, len = 0;
    char *buf = malloc(cap + 1);
    uint64_t deadline = ldh_mono_ms() + HTTP_TIMEOUT_MS;
    for (;;) {
        uint64_t now = ldh_mono_ms();
        if (!buf || now >= deadline) break;
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, (int)(deadline - now)) <= 0) continue;
        if (len == cap) {
            if (cap >= HTTP_MAX) break;
            char *b = realloc(buf, cap * 2 + 1);
            if (!b) break;
            buf = b;
            cap *= 2;
        }
        ssize_t got = recv(fd, buf + len, cap - len, 0);
        if (got < 0 && errno == EINTR) continue;
        if (got <= 0) break;
        len += (size_t)got;
        if (complete(buf, len)) break; /* some servers keep the connection open */
    }
    close(fd);
    if (!buf) return LD_ENOMEM;
    buf[len] = '\0';
    char *sep = strstr(buf, "\r\n\r\n");
    if (!sep || sscanf(buf, "HTTP/1.%*d %d", &r->status) != 1) {
        free(buf);
        return LD_EIO;
    }
    *sep = '\0';
    r->head = buf;
    r->body_len = len - (size_t)(sep + 4 - buf);
    r->body = malloc(r->body_len + 1);
    if (!r->body) {
        free(buf);
        return LD_ENOMEM;
    }
    memcpy(r->body, sep + 4, r->body_len);
    r->body[r->body_len] = '\0';
    return 0;
}

/* ws_take waits until <buf> holds <want> bytes; 0, or -1 at the deadline,
 * the connection's end or the limit. */
static int ws_take(int fd, char **buf, size_t *len, size_t *cap, size_t want, uint64_t deadline)
{
    while (*len < want) {
        uint64_t now = ldh_mono_ms();
        if (now >= deadline || want > HTTP_MAX) return -1;
        if (want > *cap) {
            size_t c = *cap;
            while (c < want) c *= 2;
            char *b = realloc(*buf, c + 1);
            if (!b) return -1;
            *buf = b;
            *cap = c;
        }
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, (int)(deadline - now)) <= 0) continue;
        ssize_t got = recv(fd, *buf + *len, *cap - *len, 0);
        if (got < 0 && errno == EINTR) continue;
        if (got <= 0) return -1;
        *len += (size_t)got;
    }
    return 0;
}

int ldh_ws_first(int port, const char *protocol, char **msg)
{
    *msg = NULL;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return LD_EIO;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    char head[512];
    int n = snprintf(head, sizeof head,
                     "GET / HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                     "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: %s\r\n\r\n",
                     port, protocol);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0 || send_all(fd, head, (size_t)n)) {
        close(fd);
        return LD_EIO;
    }
    size_t cap = 65536, len = 0, at;
    char *buf = malloc(cap + 1), *out = NULL;
    size_t out_len = 0;
    uint64_t deadline = ldh_mono_ms() + HTTP_TIMEOUT_MS;
    /* The 101 answer, then frames: FIN, opcode, length (7, 16 or 64 bits); a server's are unmasked. */
    for (at = 0;; at++) {
        if (!buf || ws_take(fd, &buf, &len, &cap, at + 4, deadline) != 0) goto fail;
        if (memcmp(buf + at, "\r\n\r\n", 4) == 0) break;
    }
    if (strncmp(buf, "HTTP/1.1 101", 12) != 0) goto fail;
    at += 4;
    for (;;) {
        if (ws_take(fd, &buf, &len, &cap, at + 2, deadline) != 0) goto fail;
        unsigned char b0 = (unsigned char)buf[at], b1 = (unsigned char)buf[at + 1];
        size_t hl = 2, plen = b1 & 127;
        if (plen >= 126) {
            hl += plen == 126 ? 2 : 8;
            if (ws_take(fd, &buf, &len, &cap, at + hl, deadline) != 0) goto fail;
            plen = 0;
            for (size_t i = 2; i < hl; i++) plen = plen << 8 | (unsigned char)buf[at + i];
        }
        if (b1 & 128 || plen > HTTP_MAX || ws_take(fd, &buf, &len, &cap, at + hl + plen, deadline) != 0)
            goto fail;
        char *o = realloc(out, out_len + plen + 1);
        if (!o) goto fail;
        out = o;
        memcpy(out + out_len, buf + at + hl, plen);
        out_len += plen;
        out[out_len] = '\0';
        at += hl + plen;
        if (b0 & 128) break;
    }
    free(buf);
    close(fd);
    *msg = out;
    return 0;
fail:
    free(buf);
    free(out);
    close(fd);
    return LD_EIO;
}

void ldh_http_reply_free(ldh_http_reply *r)
{
    free(r->head);
    free(r->body);
    memset(r, 0, sizeof *r);
}

double ldh_metric(const char *text, const char *series)
{
    size_t n = strlen(series);
    for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
        if (strncmp(p, series, n) == 0 && p[n] == ' ') return strtod(p + n + 1, NULL);
    }
    return -1;
}
