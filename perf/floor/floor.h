/*
 * What the two floors share (floor.c on epoll, floor-uring.c on io_uring):
 * the fixed response, the listener, counting request heads, and main(), so
 * the two differ only in the loop under measurement.
 *
 * Bounds: MAX_BATCH answers per send (a static block, filled once, that a
 * send takes a prefix of); descriptors at or above MAX_FDS are closed at
 * accept.
 */
#ifndef FLOOR_H
#define FLOOR_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

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

/* MAX_BATCH copies of RESPONSE, filled once by floor_main. */
static char responses[MAX_BATCH * RESPONSE_LEN];
static struct sockaddr_in addr;

/* How far into "\r\n\r\n" each connection's last read ended: a head cut
 * between two reads still counts once. Indexed by descriptor. */
static uint8_t matched[MAX_FDS];

/* This worker's own listener on addr (SO_REUSEPORT); socket type flags as given. */
static int listener(int type_flags) {
    int fd = socket(AF_INET, SOCK_STREAM | type_flags, 0);
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

/* Parses ADDR:PORT [workers], fills the response block and runs `worker` on
 * that many threads (default: the online CPUs, at most 64). */
static int floor_main(int argc, char **argv, void *(*worker)(void *)) {
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
    if (workers > 64) workers = 64;
    pthread_t threads[64];
    for (long i = 0; i < workers; i++) pthread_create(&threads[i], NULL, worker, NULL);
    for (long i = 0; i < workers; i++) pthread_join(threads[i], NULL);
    return 0;
}

#endif
