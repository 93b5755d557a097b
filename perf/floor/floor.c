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
 * MAX_BATCH answers (floor.h; a send takes a prefix); more requests than
 * that in one read are answered in several sends. Connections: as many as the descriptor limit allows.
 *
 *   cc -O2 -pthread -o floor floor.c
 *   floor 127.0.0.1:18080 [workers]      (workers: default the online CPUs)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>

#include "floor.h"

#define MAX_EVENTS 256
#define RECV_BYTES 65536

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
    int lfd = listener(SOCK_NONBLOCK), ep = epoll_create1(0);
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
    return floor_main(argc, argv, worker);
}
