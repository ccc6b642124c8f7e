/* util.c: small helpers of linkload: ports, sleeping, formatting. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "linkload.h"

int lg_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return 0;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    int port = 0;
    if (bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    close(fd);
    return port;
}

void lg_sleep_until(uint64_t ns)
{
    struct timespec ts = {(time_t)(ns / 1000000000u), (long)(ns % 1000000000u)};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {
    }
}

const char *lg_fmt_ns(uint64_t ns, char *buf, size_t len)
{
    if (ns < 10000) snprintf(buf, len, "%.2fus", (double)ns / 1e3);
    else if (ns < 1000000) snprintf(buf, len, "%.0fus", (double)ns / 1e3);
    else if (ns < 1000000000) snprintf(buf, len, "%.2fms", (double)ns / 1e6);
    else snprintf(buf, len, "%.2fs", (double)ns / 1e9);
    return buf;
}
