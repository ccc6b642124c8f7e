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
