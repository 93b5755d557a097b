/*
 * The floor: a bare HTTP/1.1 responder that does only the system calls a
 * keep-alive server cannot avoid, so its CPU per request is the kernel's
 * share of any epoll server on this machine (issue 19). perf/bench.py runs it
 * beside swiftlet and axum and states their CPU figures as fractions of it.
 *
 * Per worker thread: its own SO_REUSEPORT listener and epoll instance (the
 * shape of swiftlet's workers), edge-triggered. Per readable connection: recv
 * until the socket is empty, count the request heads ("\r\n\r\n", also when
 * split across reads), and answer all of them with one send. No parsing,
 * routing, timeouts, bodies or date: every request gets the same fixed
 * response, the size of swiftlet's /plaintext answer. Not a server for anyone
 * to use: it trusts its clients (a request with a body would be miscounted).
 *
 * Bounds: one 64 KiB receive buffer per thread and one static block of
 * MAX_BATCH answers (a send takes a prefix); more requests than that in one
 * read are answered in several sends. Connections: as many as the descriptor limit allows.
 *
 *   cc -O2 -pthread -o floor floor.c
 *   floor 127.0.0.1:18080 [workers]      (workers: default the online CPUs)
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_EVENTS 256
#define RECV_BYTES 65536
#define MAX_BATCH 256
#define MAX_FDS 65536

/* Byte for byte swiftlet's /plaintext response, the date fixed. */
static const char RESPONSE[] =
    "HTTP/1.1 200 OK\r\n"
    "Server: swiftlet\r\n"
    "Date: Thu, 01 Jan 2026 00:00:00 GMT\r\n"
    "Content-Type: text/plain\r\n"
    "Content-Length: 13\r\n"
    "\r\n"
    "Hello, World!";
#define RESPONSE_LEN (sizeof(RESPONSE) - 1)

/* MAX_BATCH copies of RESPONSE, filled once: a send takes a prefix. */
static char responses[MAX_BATCH * RESPONSE_LEN];
static struct sockaddr_in addr;

/* How far into "\r\n\r\n" each connection's last read ended: a head cut
 * between two reads still counts once. Indexed by descriptor. */
static uint8_t matched[MAX_FDS];

static int listener(void) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    int one = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) ||
        bind(fd, (struct sockaddr *)&addr, sizeof addr) || listen(fd, 4096)) {
        perror("listener");
        exit(1);
    }
    return fd;
}

/* Counts the heads ending in buf[0..n), carrying the partial match in *m. */
static size_t count_heads(const char *buf, size_t n, uint8_t *m) {
    static const char end[] = "\r\n\r\n";
    size_t heads = 0;
    uint8_t k = *m;
    for (size_t i = 0; i < n; i++) {
        if (buf[i] == end[k]) {
            if (++k == 4) {
                heads++;
                k = 0;
            }
        } else {
            k = buf[i] == '\r' ? 1 : 0;
        }
    }
    *m = k;
    return heads;
}

static void answer(int fd, size_t heads) {
    while (heads > 0) {
        size_t batch = heads < MAX_BATCH ? heads : MAX_BATCH;
        size_t len = batch * RESPONSE_LEN, sent = 0;
        while (sent < len) {
            ssize_t w = send(fd, responses + sent, len - sent, MSG_NOSIGNAL);
            if (w < 0) return; /* a full send buffer or a gone peer: a benchmark client never lets it fill */
            sent += (size_t)w;
        }
        heads -= batch;
    }
}

static void *worker(void *arg) {
    (void)arg;
    int lfd = listener(), ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = lfd}, events[MAX_EVENTS];
    char *in = malloc(RECV_BYTES);
    if (ep < 0 || !in || epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev)) {
        perror("worker");
        exit(1);
    }
    for (;;) {
        int n = epoll_wait(ep, events, MAX_EVENTS, -1);
        for (int i = 0; i < n; i++) {
            int fd = events[i].data.fd;
            if (fd == lfd) {
                int c;
                while ((c = accept4(lfd, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
                    int one = 1;
                    if (c >= MAX_FDS) {
                        close(c);
                        continue;
                    }
                    setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    matched[c] = 0;
                    struct epoll_event cev = {.events = EPOLLIN | EPOLLET | EPOLLRDHUP, .data.fd = c};
                    epoll_ctl(ep, EPOLL_CTL_ADD, c, &cev);
                }
                continue;
            }
            size_t heads = 0;
            int closed = 0;
            for (;;) {
                ssize_t r = recv(fd, in, RECV_BYTES, 0);
                if (r > 0) {
                    heads += count_heads(in, (size_t)r, &matched[fd]);
                    if (r < RECV_BYTES) break; /* a short read emptied the socket */
                } else if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
                    break;
                } else {
                    closed = 1;
                    break;
                }
            }
            if (heads) answer(fd, heads);
            if (closed) close(fd); /* closing removes it from the epoll set */
        }
    }
    return NULL;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s ADDR:PORT [workers]\n", argv[0]);
        return 2;
    }
    char host[64];
    const char *colon = strrchr(argv[1], ':');
    if (!colon || (size_t)(colon - argv[1]) >= sizeof host) return 2;
    memcpy(host, argv[1], (size_t)(colon - argv[1]));
    host[colon - argv[1]] = 0;
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)atoi(colon + 1));
    if (inet_pton(AF_INET, host, &addr.sin_addr) != 1) return 2;
    for (size_t i = 0; i < MAX_BATCH; i++) memcpy(responses + i * RESPONSE_LEN, RESPONSE, RESPONSE_LEN);
    long workers = argc > 2 ? atol(argv[2]) : sysconf(_SC_NPROCESSORS_ONLN);
    if (workers < 1) workers = 1;
    pthread_t threads[64];
    if (workers > 64) workers = 64;
    for (long i = 0; i < workers; i++) pthread_create(&threads[i], NULL, worker, NULL);
    for (long i = 0; i < workers; i++) pthread_join(threads[i], NULL);
    return 0;
}
