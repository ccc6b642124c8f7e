/* impair.c: a userspace network impairment proxy for the terminal-fault test.
 *
 *   ld_impair --listen ADDR:PORT --to ADDR:PORT [--delay MS] [--jitter MS]
 *             [--loss PERCENT] [--stall MS] [--seed N]
 *
 * This kernel has no netem queueing discipline, so delay and loss are made
 * here: every chunk read from one side is held for delay + a uniform
 * 0..jitter ms before it is written to the other side, and with probability
 * PERCENT a chunk is "lost": it (and, since TCP delivers in order, all that
 * follows it in that direction) is held for a further --stall ms, which is
 * what a lost segment costs a TCP stream until it is retransmitted. Order
 * within each direction is always kept; nothing is corrupted. A partition is
 * not made here: the test takes the veth link down. SIGUSR1 drops every
 * connection and what it holds (a middlebox that lost its state during a
 * long partition): the far ends see a reset and reconnect.
 *
 * One thread, poll(2), at most 64 connections; runs until SIGTERM or SIGINT.
 * Prints "LISTENING" on stdout once it accepts. Counters on exit (stderr). */
#define _POSIX_C_SOURCE 200809L
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum { MAX_CONNS = 64, CHUNK = 16384 };

typedef struct chunk {
    struct chunk *next;
    uint64_t due;
    size_t len, off;
    char data[];
} chunk;

/* One direction of one connection: read from <from>, queue, write to <to>. */
typedef struct pipe_dir {
    int from, to;
    chunk *head, *tail;
    uint64_t last_due;   /* chunks never overtake: each is due no earlier than the last */
    int eof;             /* <from> closed: shut <to> down once the queue is empty */
} pipe_dir;

typedef struct conn {
    int used;
    pipe_dir dir[2];     /* 0: client -> server, 1: server -> client */
} conn;

static volatile sig_atomic_t stopping, dropping;
static conn conns[MAX_CONNS];
static unsigned delay_ms, jitter_ms, stall_ms = 600;
static double loss;
static unsigned long long chunks_fwd, chunks_lost, bytes_fwd, accepted, dropped;

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void on_signal(int sig)
{
    if (sig == SIGUSR1) dropping = 1;
    else stopping = 1;
}

static int parse_addr(const char *s, struct sockaddr_in *a)
{
    char host[64];
    const char *colon = strrchr(s, ':');
    if (!colon || (size_t)(colon - s) >= sizeof host) return -1;
    memcpy(host, s, (size_t)(colon - s));
    host[colon - s] = '\0';
    memset(a, 0, sizeof *a);
    a->sin_family = AF_INET;
    a->sin_port = htons((uint16_t)atoi(colon + 1));
    return inet_pton(AF_INET, host, &a->sin_addr) == 1 ? 0 : -1;
}

static void set_nonblock(int fd)
{
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

static void conn_close(conn *c)
{
    for (int d = 0; d < 2; d++) {
        while (c->dir[d].head) {
            chunk *k = c->dir[d].head;
            c->dir[d].head = k->next;
            free(k);
        }
    }
    close(c->dir[0].from);
    close(c->dir[0].to);
    memset(c, 0, sizeof *c);
}

static void take(pipe_dir *p)
{
    chunk *k = malloc(sizeof *k + CHUNK);
    if (!k) return;
    ssize_t n = read(p->from, k->data, CHUNK);
    if (n <= 0) {
        free(k);
        if (n == 0 || (errno != EAGAIN && errno != EINTR)) p->eof = 1;
        return;
    }
    uint64_t due = now_ms() + delay_ms + (jitter_ms ? (uint64_t)(rand() % (int)(jitter_ms + 1)) : 0);
    if (loss > 0 && (double)rand() / RAND_MAX * 100.0 < loss) {
        due += stall_ms;
        chunks_lost++;
    }
    if (due < p->last_due) due = p->last_due;
    p->last_due = due;
    k->due = due, k->len = (size_t)n, k->off = 0, k->next = NULL;
    if (p->tail) p->tail->next = k;
    else p->head = k;
    p->tail = k;
}

/* give writes what is due; returns -1 if the far side failed. */
static int give(pipe_dir *p, uint64_t now)
{
    while (p->head && p->head->due <= now) {
        chunk *k = p->head;
        ssize_t n = write(p->to, k->data + k->off, k->len - k->off);
        if (n < 0) return errno == EAGAIN || errno == EINTR ? 0 : -1;
        k->off += (size_t)n;
        bytes_fwd += (unsigned long long)n;
        if (k->off < k->len) return 0;
        p->head = k->next;
        if (!p->head) p->tail = NULL;
        free(k);
        chunks_fwd++;
    }
    if (!p->head && p->eof) shutdown(p->to, SHUT_WR);
    return 0;
}

static void accept_one(int lfd, const struct sockaddr_in *to)
{
    int c = accept(lfd, NULL, NULL);
    if (c < 0) return;
    int slot = -1;
    for (int i = 0; i < MAX_CONNS && slot < 0; i++)
        if (!conns[i].used) slot = i;
    int s = slot < 0 ? -1 : socket(AF_INET, SOCK_STREAM, 0);
    if (s < 0 || connect(s, (const struct sockaddr *)to, sizeof *to) != 0) {
        if (s >= 0) close(s);
        close(c);
        return;
    }
    set_nonblock(c);
    set_nonblock(s);
    conn *k = &conns[slot];
    memset(k, 0, sizeof *k);
    k->used = 1;
    k->dir[0].from = c, k->dir[0].to = s;
    k->dir[1].from = s, k->dir[1].to = c;
    accepted++;
}

int main(int argc, char **argv)
{
    struct sockaddr_in listen_at, to;
    const char *l = NULL, *t = NULL;
    unsigned seed = 1;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--listen")) l = argv[i + 1];
        else if (!strcmp(argv[i], "--to")) t = argv[i + 1];
        else if (!strcmp(argv[i], "--delay")) delay_ms = (unsigned)atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--jitter")) jitter_ms = (unsigned)atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--loss")) loss = atof(argv[i + 1]);
        else if (!strcmp(argv[i], "--stall")) stall_ms = (unsigned)atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--seed")) seed = (unsigned)atoi(argv[i + 1]);
        else {
            fprintf(stderr, "ld_impair: unknown option %s\n", argv[i]);
            return 64;
        }
    }
    if (!l || !t || parse_addr(l, &listen_at) != 0 || parse_addr(t, &to) != 0) {
        fprintf(stderr, "usage: ld_impair --listen ADDR:PORT --to ADDR:PORT [--delay MS] "
                "[--jitter MS] [--loss PERCENT] [--stall MS] [--seed N]\n");
        return 64;
    }
    srand(seed);
    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL);
    int lfd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (lfd < 0 || bind(lfd, (struct sockaddr *)&listen_at, sizeof listen_at) != 0 ||
        listen(lfd, 64) != 0) {
        fprintf(stderr, "ld_impair: cannot listen on %s: %s\n", l, strerror(errno));
        return 69;
    }
    printf("LISTENING %s -> %s delay %u jitter %u loss %g%% stall %u\n", l, t, delay_ms,
           jitter_ms, loss, stall_ms);
    fflush(stdout);
    while (!stopping) {
        if (dropping) {
            dropping = 0;
            for (int i = 0; i < MAX_CONNS; i++) {
                if (!conns[i].used) continue;
                /* A reset, not a close: what is in flight is gone. */
                struct linger lg = {1, 0};
                setsockopt(conns[i].dir[0].from, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
                setsockopt(conns[i].dir[0].to, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
                conn_close(&conns[i]);
                dropped++;
            }
        }
        struct pollfd p[1 + 2 * MAX_CONNS];
        int map[1 + 2 * MAX_CONNS], n = 0;
        p[n].fd = lfd, p[n].events = POLLIN, map[n++] = -1;
        uint64_t now = now_ms(), wake = now + 200;
        for (int i = 0; i < MAX_CONNS; i++) {
            if (!conns[i].used) continue;
            for (int d = 0; d < 2; d++) {
                pipe_dir *pd = &conns[i].dir[d];
                /* Due data waits for room on the far side (POLLOUT, on the
                 * other direction's entry: the same descriptor); the rest
                 * for its time. */
                short ev = pd->eof ? 0 : POLLIN;
                if (conns[i].dir[1 - d].head && conns[i].dir[1 - d].head->due <= now)
                    ev |= POLLOUT;
                if (pd->head && pd->head->due > now && pd->head->due < wake) wake = pd->head->due;
                p[n].fd = pd->from, p[n].events = ev, map[n++] = i * 2 + d;
            }
        }
        int timeout = wake > now ? (int)(wake - now) : 0;
        if (poll(p, (nfds_t)n, timeout) < 0 && errno != EINTR) break;
        if (p[0].revents & POLLIN) accept_one(lfd, &to);
        for (int k = 1; k < n; k++) {
            conn *c = &conns[map[k] / 2];
            if (!c->used) continue;
            pipe_dir *pd = &c->dir[map[k] % 2];
            if (p[k].revents & (POLLIN | POLLHUP | POLLERR)) take(pd);
        }
        now = now_ms();
        for (int i = 0; i < MAX_CONNS; i++) {
            if (!conns[i].used) continue;
            conn *c = &conns[i];
            int bad = give(&c->dir[0], now) != 0 || give(&c->dir[1], now) != 0;
            int done = c->dir[0].eof && c->dir[1].eof && !c->dir[0].head && !c->dir[1].head;
            if (bad || done) conn_close(c);
        }
    }
    for (int i = 0; i < MAX_CONNS; i++)
        if (conns[i].used) conn_close(&conns[i]);
    close(lfd);
    fprintf(stderr, "ld_impair: %llu connections, %llu chunks forwarded (%llu bytes), %llu lost "
            "and stalled, %llu dropped\n", accepted, chunks_fwd, bytes_fwd, chunks_lost, dropped);
    return 0;
}
