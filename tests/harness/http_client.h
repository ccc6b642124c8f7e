/* http_client.h: a minimal blocking HTTP/1.1 client (Connection: close) for tests of linkd's
 * HTTP side: one request per connection, bounded by a timeout. */
#ifndef LD_TESTS_HTTP_CLIENT_H
#define LD_TESTS_HTTP_CLIENT_H

#include <stddef.h>

typedef struct ldh_http_reply {
    int status;            /* 0 if no answer */
    char *head;            /* status line and headers (malloc'd) */
    char *body;            /* NUL-terminated (malloc'd) */
    size_t body_len;
} ldh_http_reply;

/* ldh_http sends <method> <path> to 127.0.0.1:<port> with <body> (NULL: none)
 * and, if <token> is not NULL, "Authorization: Bearer <token>". Returns 0
 * with *r filled, or a negative LD_E* code (nothing to free). */
int ldh_http(int port, const char *method, const char *path, const char *body,
             const char *token, ldh_http_reply *r);
void ldh_http_reply_free(ldh_http_reply *r);

/* ldh_ws_first opens a WebSocket to <port> "/" with <protocol> and returns
 * the first message the server sends (a text message put together from its
 * frames, NUL-terminated, malloc'd) in *msg, or NULL if none came whole
 * within the timeout. */
int ldh_ws_first(int port, const char *protocol, char **msg);

/* ldh_metric returns the value of the sample <series> (name with labels,
 * exactly as linkd writes it) in Prometheus text <text>, or -1 if absent. */
double ldh_metric(const char *text, const char *series);

#endif
