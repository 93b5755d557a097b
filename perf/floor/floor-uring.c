/*
 * The floor on io_uring: the same bare responder as floor.c (count request
 * heads, one send of that many fixed responses; no parsing or timeouts), with
 * the kernel interface swapped, to measure what io_uring saves before anyone
 * builds a transport on it (issue 19, item 4). perf/uring.py runs the two
 * side by side.
 *
 * Per worker thread: its own SO_REUSEPORT listener and ring
 * (IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN, so completions
 * run in this thread at its io_uring_enter and nowhere else); one multishot
 * accept; per connection one multishot recv that takes its buffers from a
 * provided buffer ring; sends straight from a static block of responses (it
 * never changes, so a send in flight needs no buffer of its own). One
 * io_uring_enter per loop turn: it submits what the last turn queued and
 * waits for at least one completion.
 *
 * Bounds: BUFS receive buffers of BUF_BYTES per thread, a ring of RING_ENTRIES
 * submissions and CQ_ENTRIES completions; a connection that finds no buffer
 * free (-ENOBUFS) has its recv re-armed. Not a server to deploy: it trusts
 * its clients, like floor.c.
 *
 *   cc -O2 -pthread -o floor-uring floor-uring.c -luring
 *   floor-uring 127.0.0.1:18080 [workers]
 */
#define _GNU_SOURCE
#include <errno.h>
#include <liburing.h>
#include <netinet/tcp.h>

#include "floor.h"

#define RING_ENTRIES 4096
#define CQ_ENTRIES 16384
#define BUFS 1024 /* a power of two: the buffer ring's size */
#define BUF_BYTES 4096
#define BGID 0

/* user_data: the kind in the top byte, the descriptor below. */
enum { ACCEPT = 1, RECV = 2, SEND = 3 };
#define TAG(kind, fd) (((uint64_t)(kind) << 56) | (uint32_t)(fd))

/* A submission slot; when the queue is full, submit what is queued first. */
static struct io_uring_sqe *sqe_of(struct io_uring *ring) {
    struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
    while (!sqe) {
        io_uring_submit(ring);
        sqe = io_uring_get_sqe(ring);
    }
    return sqe;
}

static void arm_accept(struct io_uring *ring, int lfd) {
    struct io_uring_sqe *sqe = sqe_of(ring);
    io_uring_prep_multishot_accept(sqe, lfd, NULL, NULL, 0);
    io_uring_sqe_set_data64(sqe, TAG(ACCEPT, lfd));
}

static void arm_recv(struct io_uring *ring, int fd) {
    struct io_uring_sqe *sqe = sqe_of(ring);
    io_uring_prep_recv_multishot(sqe, fd, NULL, 0, 0);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = BGID;
    io_uring_sqe_set_data64(sqe, TAG(RECV, fd));
}

static void send_answers(struct io_uring *ring, int fd, size_t heads) {
    while (heads > 0) {
        size_t batch = heads < MAX_BATCH ? heads : MAX_BATCH;
        struct io_uring_sqe *sqe = sqe_of(ring);
        io_uring_prep_send(sqe, fd, responses, batch * RESPONSE_LEN, MSG_NOSIGNAL);
        io_uring_sqe_set_data64(sqe, TAG(SEND, fd));
        heads -= batch;
    }
}

static void *worker(void *arg) {
    (void)arg;
    struct io_uring ring;
    struct io_uring_params p = {0};
    p.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_CQSIZE;
    p.cq_entries = CQ_ENTRIES;
    int rc = io_uring_queue_init_params(RING_ENTRIES, &ring, &p);
    if (rc < 0) {
        fprintf(stderr, "io_uring_queue_init_params: %s\n", strerror(-rc));
        exit(1);
    }
    struct io_uring_buf_ring *br;
    char *bufs = malloc((size_t)BUFS * BUF_BYTES);
    if (posix_memalign((void **)&br, 4096, BUFS * sizeof(struct io_uring_buf)) || !bufs) {
        perror("buffers");
        exit(1);
    }
    io_uring_buf_ring_init(br);
    struct io_uring_buf_reg reg = {.ring_addr = (uintptr_t)br, .ring_entries = BUFS, .bgid = BGID};
    if ((rc = io_uring_register_buf_ring(&ring, &reg, 0)) < 0) {
        fprintf(stderr, "io_uring_register_buf_ring: %s\n", strerror(-rc));
        exit(1);
    }
    int mask = io_uring_buf_ring_mask(BUFS);
    for (int i = 0; i < BUFS; i++) io_uring_buf_ring_add(br, bufs + (size_t)i * BUF_BYTES, BUF_BYTES, i, mask, i);
    io_uring_buf_ring_advance(br, BUFS);

    int lfd = listener(0);
    arm_accept(&ring, lfd);
    for (;;) {
        rc = io_uring_submit_and_wait(&ring, 1);
        if (rc < 0 && rc != -EINTR) {
            fprintf(stderr, "io_uring_submit_and_wait: %s\n", strerror(-rc));
            exit(1);
        }
        struct io_uring_cqe *cqe;
        unsigned head, seen = 0, returned = 0;
        io_uring_for_each_cqe(&ring, head, cqe) {
            seen++;
            uint64_t data = io_uring_cqe_get_data64(cqe);
            int kind = (int)(data >> 56), fd = (int)(uint32_t)data, res = cqe->res;
            int more = cqe->flags & IORING_CQE_F_MORE;
            if (kind == ACCEPT) {
                if (res >= 0 && res < MAX_FDS) {
                    int one = 1;
                    setsockopt(res, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    matched[res] = 0;
                    arm_recv(&ring, res);
                } else if (res >= 0) {
                    close(res);
                }
                if (!more) arm_accept(&ring, lfd);
            } else if (kind == RECV) {
                if (res > 0) {
                    int bid = (int)(cqe->flags >> IORING_CQE_BUFFER_SHIFT);
                    size_t heads = count_heads(bufs + (size_t)bid * BUF_BYTES, (size_t)res, &matched[fd]);
                    io_uring_buf_ring_add(br, bufs + (size_t)bid * BUF_BYTES, BUF_BYTES, bid, mask, returned++);
                    if (heads) send_answers(&ring, fd, heads);
                    if (!more) arm_recv(&ring, fd);
                } else if (res == -ENOBUFS) {
                    if (!more) arm_recv(&ring, fd);
                } else if (!more) {
                    close(fd); /* end of stream or an error: the multishot recv has ended too */
                }
            }
            /* SEND: nothing to do; a failed send means the peer is gone, and its recv ends the connection. */
        }
        if (returned) io_uring_buf_ring_advance(br, (int)returned);
        io_uring_cq_advance(&ring, seen);
    }
    return NULL;
}

int main(int argc, char **argv) {
    return floor_main(argc, argv, worker);
}
