/* test-ring.c: the ring protocol end to end in one process: daemon/stream.c as the daemon,
 * client_lib/src/ring-client.c as the client, on a real sealed memfd and real eventfds.
 * Wraparound, full ring and back-pressure, the input direction, corrupt and scribbled indices,
 * malformed rings offered to the client, and the sleep/wake-up protocol under two threads. */
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include "client_lib/src/ring-client.h"
#include "daemon/stream.h"
#include "tests/lib/check.h"

static uint64_t rng_state = 0x9e3779b97f4a7c15u;
static uint32_t rnd(void) {
        rng_state ^= rng_state << 13;
        rng_state ^= rng_state >> 7;
        rng_state ^= rng_state << 17;
        return (uint32_t)(rng_state >> 11);
}

static void attach(Stream *s, RingClient *rc) {
        int ring, cw, dw;
        stream_get_client_fds(s, &ring, &cw, &dw);
        CHECK_OK(ring_client_attach(rc, fcntl(ring, F_DUPFD_CLOEXEC, 3), fcntl(cw, F_DUPFD_CLOEXEC, 3),
                                    fcntl(dw, F_DUPFD_CLOEXEC, 3)));
}

static bool fd_readable(int fd) {
        struct pollfd p = { .fd = fd, .events = POLLIN };
        return poll(&p, 1, 0) == 1;
}

/* Fills piece i with a pattern that depends on i, so misplaced bytes show. */
static size_t make_piece(uint32_t i, char *buf, size_t max) {
        size_t len = (i * 7919u) % max;
        for (size_t k = 0; k < len; k++)
                buf[k] = (char)('a' + (i + k) % 26);
        return len;
}

static void test_basic(void) {
        _cleanup_(stream_freep) Stream *s = NULL;
        RingClient rc;
        RingRecord rec;
        uint8_t payload[RING_RECORD_PAYLOAD_MAX];
        int derr = -1;

        CHECK_OK(stream_new(0, &s));
        attach(s, &rc);
        CHECK(rc.out.size == RING_SIZE_DEFAULT);
        CHECK(fcntl(rc.client_wakeup_fd, F_GETFD) & FD_CLOEXEC);

        CHECK_ERR(ring_client_next(&rc, &rec, payload, &derr), EAGAIN);
        CHECK_OK(stream_push_text(s, 42, "hello", 5));
        CHECK(ring_client_next(&rc, &rec, payload, &derr) == 1);
        CHECK(rec.type == RING_RECORD_TEXT && rec.size == sizeof(RingText) + 5);
        RingText t;
        memcpy(&t, payload, sizeof(t));
        CHECK(t.token == 42 && t.time_ns > 0);
        CHECK(memcmp(payload + sizeof(t), "hello", 5) == 0);

        /* Text longer than one record is split, the later pieces carry RING_TOKEN_NONE. */
        static char big[RING_TEXT_MAX + 100];
        memset(big, 'x', sizeof(big));
        CHECK_OK(stream_push_text(s, 7, big, sizeof(big)));
        CHECK(ring_client_next(&rc, &rec, payload, &derr) == 1);
        memcpy(&t, payload, sizeof(t));
        CHECK(t.token == 7 && rec.size == RING_RECORD_PAYLOAD_MAX);
        CHECK(ring_client_next(&rc, &rec, payload, &derr) == 1);
        memcpy(&t, payload, sizeof(t));
        CHECK(t.token == RING_TOKEN_NONE && rec.size == sizeof(RingText) + 100);
        CHECK_ERR(stream_push_text(s, 1, big, RING_SIZE_DEFAULT), EMSGSIZE);

        /* ... and only between characters: a 3-byte character across the limit goes whole into the
         * second record (each record is valid UTF-8 on its own: rwkvctl --json prints each) */
        memcpy(big + RING_TEXT_MAX - 1, "\xe2\x82\xac", 3);
        CHECK_OK(stream_push_text(s, 8, big, sizeof(big)));
        CHECK(ring_client_next(&rc, &rec, payload, &derr) == 1);
        CHECK(rec.size == RING_RECORD_PAYLOAD_MAX - 1);
        CHECK(ring_client_next(&rc, &rec, payload, &derr) == 1);
        CHECK(rec.size == sizeof(RingText) + 101 && memcmp(payload + sizeof(t), "\xe2\x82\xac", 3) == 0);

        StreamEnd e = { .tokens_generated = 2, .prompt_tokens = 3, .stop_reason = RING_STOP_MAX_TOKENS };
        CHECK_OK(stream_push_end(s, &e));
        CHECK(fd_readable(rc.client_wakeup_fd)); /* the last record always wakes the client */
        CHECK_ERR(stream_push_text(s, 1, "x", 1), ESHUTDOWN);
        CHECK_ERR(stream_push_end(s, &e), ESHUTDOWN);
        CHECK(ring_client_next(&rc, &rec, payload, &derr) == 1);
        CHECK(rec.type == RING_RECORD_END);
        RingEnd got;
        memcpy(&got, payload, sizeof(got));
        CHECK(got.tokens_generated == 2 && got.prompt_tokens == 3 && got.stop_reason == RING_STOP_MAX_TOKENS);
        CHECK(ring_client_next(&rc, &rec, payload, &derr) == 0);
        CHECK(derr == 0);
        ring_client_done(&rc);
        ring_client_done(&rc); /* idempotent */
}

static void test_error_record(void) {
        _cleanup_(stream_freep) Stream *s = NULL;
        RingClient rc;
        RingRecord rec;
        uint8_t payload[RING_RECORD_PAYLOAD_MAX];
        static char longmsg[4000];

        CHECK_OK(stream_new(1, &s)); /* rounded up to the minimum */
        attach(s, &rc);
        CHECK(rc.out.size == RING_SIZE_MIN);
        memset(longmsg, 'm', sizeof(longmsg) - 1);
        CHECK_OK(stream_push_error(s, -E2BIG, longmsg));
        CHECK(ring_client_next(&rc, &rec, payload, NULL) == 1);
        CHECK(rec.type == RING_RECORD_ERROR && rec.size == sizeof(RingError) + RING_ERROR_MESSAGE_MAX);
        RingError e;
        memcpy(&e, payload, sizeof(e));
        CHECK(e.errnum == E2BIG);
        ring_client_done(&rc);
}

/* Many records of varied sizes through a 16 KiB ring: every index wraps many times. */
static void test_wraparound(void) {
        _cleanup_(stream_freep) Stream *s = NULL;
        RingClient rc;
        RingRecord rec;
        uint8_t payload[RING_RECORD_PAYLOAD_MAX];
        char piece[600], want[600];
        uint32_t pushed = 0, read = 0;

        CHECK_OK(stream_new(RING_SIZE_MIN, &s));
        attach(s, &rc);
        while (read < 20000) {
                int r;
                while (pushed < 20000) {
                        size_t len = make_piece(pushed, piece, sizeof(piece));
                        r = stream_push_text(s, pushed, piece, len);
                        if (r == -EAGAIN)
                                break;
                        CHECK_OK(r);
                        pushed++;
                }
                unsigned batch = rnd() % 50 + 1;
                for (unsigned b = 0; b < batch && read < pushed; b++) {
                        CHECK(ring_client_next(&rc, &rec, payload, NULL) == 1);
                        RingText t;
                        memcpy(&t, payload, sizeof(t));
                        CHECK(t.token == read);
                        size_t len = make_piece(read, want, sizeof(want));
                        CHECK(rec.size == sizeof(t) + len);
                        CHECK(memcmp(payload + sizeof(t), want, len) == 0);
                        read++;
                }
        }
        CHECK((uint64_t)rc.out.pos > 10u * RING_SIZE_MIN);
        ring_client_done(&rc);
}

/* The free-running uint32 indices overflow: fill stays tail - head across 2^32. */
static void test_index_overflow(void) {
        uint8_t data[RING_SIZE_MIN], out[300];
        uint32_t head = UINT32_MAX - 1000, tail = head;
        RingBuf prod = { .data = data, .size = sizeof(data), .head = &head, .tail = &tail, .pos = tail };
        RingBuf cons = prod;
        cons.pos = head;

        for (uint32_t i = 0; i < 2000; i++) {
                uint8_t in[300];
                memset(in, (int)(i & 0xff), sizeof(in));
                CHECK(ring_buf_free(&prod) >= (int64_t)sizeof(in));
                ring_buf_write_at(&prod, 0, in, sizeof(in));
                ring_buf_produce(&prod, sizeof(in));
                CHECK(ring_buf_fill(&cons) == (int64_t)sizeof(in));
                ring_buf_read_at(&cons, 0, out, sizeof(out));
                CHECK(memcmp(in, out, sizeof(in)) == 0);
                ring_buf_consume(&cons, sizeof(out));
        }
        CHECK(tail < 1000000); /* it did wrap */
        head = tail + 1;       /* consumer ahead of producer */
        CHECK(ring_buf_free(&prod) == -EBADMSG);
        head = tail - sizeof(data) - 1;
        CHECK(ring_buf_free(&prod) == -EBADMSG);
        head = tail - sizeof(data);
        CHECK(ring_buf_free(&prod) == 0);
}

/* A full ring parks the producer; consuming wakes it through the daemon eventfd. */
static void test_full_ring(void) {
        _cleanup_(stream_freep) Stream *s = NULL;
        RingClient rc;
        RingRecord rec;
        uint8_t payload[RING_RECORD_PAYLOAD_MAX];
        char piece[100];
        unsigned n = 0;
        int r;

        memset(piece, 'p', sizeof(piece));
        CHECK_OK(stream_new(RING_SIZE_MIN, &s));
        attach(s, &rc);
        while ((r = stream_push_text(s, n, piece, sizeof(piece))) == 0)
                n++;
        CHECK_ERR(r, EAGAIN);
        CHECK(n == RING_SIZE_MIN / ring_record_span(sizeof(RingText) + sizeof(piece)));
        CHECK(rc.shared->daemon.flags & RING_FLAG_NEED_WAKEUP);
        CHECK(!fd_readable(stream_get_daemon_wakeup_fd(s)));
        CHECK(stream_process_wakeup(s) == 0);

        CHECK(ring_client_next(&rc, &rec, payload, NULL) == 1);
        CHECK(fd_readable(stream_get_daemon_wakeup_fd(s)));
        CHECK(stream_process_wakeup(s) == 1);
        CHECK(!fd_readable(stream_get_daemon_wakeup_fd(s)));
        CHECK_OK(stream_push_text(s, n, piece, sizeof(piece)));
        CHECK(!(rc.shared->daemon.flags & RING_FLAG_NEED_WAKEUP)); /* disarmed once it could push */

        /* The reader that keeps up: no wake-ups at all while nobody sleeps. */
        for (unsigned i = 0; i < n; i++)
                CHECK(ring_client_next(&rc, &rec, payload, NULL) == 1);
        CHECK(!fd_readable(stream_get_daemon_wakeup_fd(s)));
        uint64_t v;
        (void)!read(rc.client_wakeup_fd, &v, sizeof(v));
        for (unsigned i = 0; i < 50; i++) {
                CHECK_OK(stream_push_text(s, i, "t", 1));
                CHECK(ring_client_next(&rc, &rec, payload, NULL) == 1);
        }
        CHECK(!fd_readable(rc.client_wakeup_fd));

        /* A client that closes while the daemon is parked: -EPIPE, and the wake-up says so. */
        while ((r = stream_push_text(s, 0, piece, sizeof(piece))) == 0)
                ;
        CHECK_ERR(r, EAGAIN);
        ring_client_done(&rc);
        CHECK(stream_is_closed(s));
        CHECK(stream_process_wakeup(s) == 1);
        CHECK_ERR(stream_push_text(s, 0, piece, sizeof(piece)), EPIPE);
        CHECK_ERR(stream_push_end(s, NULL), EPIPE);
        CHECK_ERR(stream_read_input(s, piece, sizeof(piece)), EPIPE);
        CHECK(stream_get_error(s) == -EPIPE);
}

static void test_corrupt_indices(void) {
        for (int which = 0; which < 2; which++) {
                _cleanup_(stream_freep) Stream *s = NULL;
                RingClient rc;
                RingRecord rec;
                uint8_t payload[RING_RECORD_PAYLOAD_MAX];
                char buf[64];
                int derr = 0;

                CHECK_OK(stream_new(RING_SIZE_MIN, &s));
                attach(s, &rc);
                CHECK_OK(stream_push_text(s, 1, "ok", 2));
                if (which == 0) {
                        /* The consumer index ahead of the producer: fill wraps to ~4G. */
                        RWKV_WRITE_ONCE(rc.shared->client.out_head, rc.shared->daemon.out_tail + 100);
                        CHECK_ERR(stream_push_text(s, 2, "x", 1), EBADMSG);
                } else {
                        /* The input producer claims more bytes than the ring holds. */
                        RWKV_WRITE_ONCE(rc.shared->client.in_tail, RING_SIZE_MIN + 1);
                        CHECK_ERR(stream_read_input(s, buf, sizeof(buf)), EBADMSG);
                }
                /* Sticky, and visible to the client after what was already published. */
                CHECK_ERR(stream_push_text(s, 3, "y", 1), EBADMSG);
                CHECK_ERR(stream_push_error(s, EIO, "late"), EBADMSG);
                CHECK(stream_get_error(s) == -EBADMSG);
                CHECK(fd_readable(rc.client_wakeup_fd));
                if (which == 1) {
                        CHECK(ring_client_next(&rc, &rec, payload, &derr) == 1);
                        CHECK(ring_client_next(&rc, &rec, payload, &derr) == 0);
                        CHECK(derr == EBADMSG);
                }
                ring_client_done(&rc);
        }
}

/* The client writes random garbage over the whole shared block, repeatedly, while the daemon keeps
 * pushing and reading: every call returns a valid code and nothing outside the ring is touched. */
static void test_scribble(void) {
        for (int round = 0; round < 200; round++) {
                _cleanup_(stream_freep) Stream *s = NULL;
                RingClient rc;
                char buf[256];

                CHECK_OK(stream_new(RING_SIZE_MIN, &s));
                attach(s, &rc);
                for (int step = 0; step < 50; step++) {
                        uint32_t *words = (uint32_t *)(void *)rc.map;
                        unsigned n = rnd() % 4;
                        for (unsigned k = 0; k < n; k++)
                                words[rnd() % (RING_HEADER_SIZE / 4)] = rnd() % 3 == 0 ? rnd() : rnd() % 64;
                        int r = stream_push_text(s, step, "abc", 3);
                        CHECK(r == 0 || r == -EAGAIN || r == -EBADMSG || r == -EPIPE);
                        ssize_t n2 = stream_read_input(s, buf, sizeof(buf));
                        CHECK(n2 >= -EBADMSG && (n2 >= 0 || n2 == -EAGAIN || n2 == -EBADMSG || n2 == -EPIPE));
                        (void)stream_process_wakeup(s);
                        if (r == -EBADMSG || r == -EPIPE)
                                break;
                }
                ring_client_done(&rc);
        }
}

/* The client refuses rings that are unsealed, truncated or of another version. */
static void test_client_validation(void) {
        int fd, cw, dw;
        RingClient rc;

        /* Unsealed memfd with a valid header. */
        uint64_t total = ring_total_size(RING_SIZE_MIN, RING_SIZE_MIN);
        fd = memfd_create("t", MFD_CLOEXEC | MFD_ALLOW_SEALING);
        CHECK(fd >= 0 && ftruncate(fd, (off_t)total) == 0);
        void *m = mmap(NULL, total, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        CHECK(m != MAP_FAILED);
        ring_header_init(m, RING_SIZE_MIN, RING_SIZE_MIN);
        cw = eventfd(0, EFD_CLOEXEC);
        dw = eventfd(0, EFD_CLOEXEC);
        CHECK_ERR(ring_client_attach(&rc, fcntl(fd, F_DUPFD_CLOEXEC, 3), fcntl(cw, F_DUPFD_CLOEXEC, 3),
                                     fcntl(dw, F_DUPFD_CLOEXEC, 3)),
                  EBADMSG);

        CHECK(fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW) == 0);
        CHECK_OK(ring_client_attach(&rc, fcntl(fd, F_DUPFD_CLOEXEC, 3), fcntl(cw, F_DUPFD_CLOEXEC, 3),
                                    fcntl(dw, F_DUPFD_CLOEXEC, 3)));
        ring_client_done(&rc);

        RingShared *sh = m;
        sh->header.version = 2;
        CHECK_ERR(ring_client_attach(&rc, fcntl(fd, F_DUPFD_CLOEXEC, 3), fcntl(cw, F_DUPFD_CLOEXEC, 3),
                                     fcntl(dw, F_DUPFD_CLOEXEC, 3)),
                  EPROTO);
        ring_header_init(m, RING_SIZE_MIN, RING_SIZE_MIN);
        sh->header.out_size = RING_SIZE_MIN * 2; /* disagrees with the file size */
        CHECK_ERR(ring_client_attach(&rc, fcntl(fd, F_DUPFD_CLOEXEC, 3), fcntl(cw, F_DUPFD_CLOEXEC, 3),
                                     fcntl(dw, F_DUPFD_CLOEXEC, 3)),
                  EBADMSG);
        ring_header_init(m, RING_SIZE_MIN, RING_SIZE_MIN);
        sh->header.magic ^= 1;
        CHECK_ERR(ring_client_attach(&rc, fcntl(fd, F_DUPFD_CLOEXEC, 3), fcntl(cw, F_DUPFD_CLOEXEC, 3),
                                     fcntl(dw, F_DUPFD_CLOEXEC, 3)),
                  EBADMSG);
        CHECK_ERR(ring_client_attach(&rc, -1, fcntl(cw, F_DUPFD_CLOEXEC, 3), fcntl(dw, F_DUPFD_CLOEXEC, 3)), EBADF);

        /* A daemon record that lies about its size. */
        ring_header_init(m, RING_SIZE_MIN, RING_SIZE_MIN);
        CHECK_OK(ring_client_attach(&rc, fcntl(fd, F_DUPFD_CLOEXEC, 3), fcntl(cw, F_DUPFD_CLOEXEC, 3),
                                    fcntl(dw, F_DUPFD_CLOEXEC, 3)));
        RingRecord bogus = { .type = RING_RECORD_TEXT, .size = RING_RECORD_PAYLOAD_MAX + 1 };
        memcpy((uint8_t *)m + RING_HEADER_SIZE, &bogus, sizeof(bogus));
        sh->daemon.out_tail = 64;
        uint8_t payload[RING_RECORD_PAYLOAD_MAX];
        RingRecord rec;
        CHECK_ERR(ring_client_next(&rc, &rec, payload, NULL), EBADMSG);
        bogus.size = 100; /* more than the 64 bytes published */
        memcpy((uint8_t *)m + RING_HEADER_SIZE, &bogus, sizeof(bogus));
        CHECK_ERR(ring_client_next(&rc, &rec, payload, NULL), EBADMSG);
        ring_client_done(&rc);

        munmap(m, total);
        close(fd);
        close(cw);
        close(dw);
}

/* ---- Two threads: the sleep/wake-up protocol under contention ---- */

#define THREAD_TOKENS 200000u
#define THREAD_INPUT (3u * 1024 * 1024)

typedef struct {
        Stream *s;
        RingClient *rc;
        unsigned producer_parks;
        unsigned consumer_sleeps;
} Pair;

/* The daemon side: parks in poll() on its wake-up fd, like the daemon's main loop does. */
static void daemon_park(Stream *s) {
        struct pollfd p = { .fd = stream_get_daemon_wakeup_fd(s), .events = POLLIN };
        for (;;) {
                CHECK(poll(&p, 1, 10000) == 1);
                if (stream_process_wakeup(s) > 0)
                        return;
        }
}

static void *producer(void *arg) {
        Pair *p = arg;
        char piece[32];
        for (uint32_t i = 0; i < THREAD_TOKENS; i++) {
                size_t len = make_piece(i, piece, sizeof(piece));
                int r;
                while ((r = stream_push_text(p->s, i, piece, len)) == -EAGAIN) {
                        p->producer_parks++;
                        daemon_park(p->s);
                }
                CHECK_OK(r);
        }
        StreamEnd e = { .tokens_generated = THREAD_TOKENS };
        int r;
        while ((r = stream_push_end(p->s, &e)) == -EAGAIN)
                daemon_park(p->s);
        CHECK_OK(r);
        return NULL;
}

static void *consumer(void *arg) {
        Pair *p = arg;
        RingRecord rec;
        static uint8_t payload[RING_RECORD_PAYLOAD_MAX];
        char want[32];
        uint32_t next = 0;
        for (;;) {
                int derr, r = ring_client_next(p->rc, &rec, payload, &derr);
                if (r == -EAGAIN) {
                        p->consumer_sleeps++;
                        CHECK_OK(ring_client_wait(p->rc, RING_WAIT_READ, 10000));
                        continue;
                }
                CHECK(r == 1);
                if (rec.type == RING_RECORD_END)
                        break;
                CHECK(rec.type == RING_RECORD_TEXT);
                RingText t;
                memcpy(&t, payload, sizeof(t));
                CHECK(t.token == next);
                size_t len = make_piece(next, want, sizeof(want));
                CHECK(rec.size == sizeof(t) + len && memcmp(payload + sizeof(t), want, len) == 0);
                next++;
                /* Now and then a slow reader, so the producer fills the ring and parks. */
                if (next % 20000 == 0)
                        usleep(2000);
        }
        CHECK(next == THREAD_TOKENS);
        return NULL;
}

static void test_threads_out(void) {
        _cleanup_(stream_freep) Stream *s = NULL;
        RingClient rc;
        pthread_t a, b;

        CHECK_OK(stream_new(RING_SIZE_MIN, &s));
        attach(s, &rc);
        Pair p = { .s = s, .rc = &rc };
        CHECK(pthread_create(&a, NULL, producer, &p) == 0);
        CHECK(pthread_create(&b, NULL, consumer, &p) == 0);
        CHECK(pthread_join(a, NULL) == 0);
        CHECK(pthread_join(b, NULL) == 0);
        fprintf(stderr, "threads: %u tokens, producer parked %u times, consumer slept %u times\n", THREAD_TOKENS,
                p.producer_parks, p.consumer_sleeps);
        ring_client_done(&rc);
}

static void *input_writer(void *arg) {
        Pair *p = arg;
        static uint8_t chunk[70000];
        uint32_t sent = 0;
        while (sent < THREAD_INPUT) {
                size_t len = MIN(sizeof(chunk), (size_t)(THREAD_INPUT - sent));
                for (size_t k = 0; k < len; k++)
                        chunk[k] = (uint8_t)((sent + k) * 31u >> 3);
                size_t off = 0;
                while (off < len) {
                        ssize_t n = ring_client_write(p->rc, chunk + off, len - off);
                        if (n == -EAGAIN) {
                                p->consumer_sleeps++;
                                CHECK_OK(ring_client_wait(p->rc, RING_WAIT_WRITE, 10000));
                                continue;
                        }
                        CHECK(n > 0);
                        off += (size_t)n;
                }
                sent += (uint32_t)len;
        }
        CHECK_OK(ring_client_close_input(p->rc));
        CHECK_ERR(ring_client_write(p->rc, "x", 1), ESHUTDOWN);
        return NULL;
}

static void test_threads_in(void) {
        _cleanup_(stream_freep) Stream *s = NULL;
        RingClient rc;
        pthread_t w;
        uint8_t buf[5000];
        uint32_t got = 0;

        CHECK_OK(stream_new(RING_SIZE_MIN, &s));
        attach(s, &rc);
        Pair p = { .s = s, .rc = &rc };
        CHECK(pthread_create(&w, NULL, input_writer, &p) == 0);
        for (;;) {
                ssize_t n = stream_read_input(s, buf, (rnd() % sizeof(buf)) + 1);
                if (n == -EAGAIN) {
                        p.producer_parks++;
                        daemon_park(s);
                        continue;
                }
                CHECK(n >= 0);
                if (n == 0)
                        break;
                for (ssize_t k = 0; k < n; k++)
                        CHECK(buf[k] == (uint8_t)((got + (uint32_t)k) * 31u >> 3));
                got += (uint32_t)n;
        }
        CHECK(pthread_join(w, NULL) == 0);
        CHECK(got == THREAD_INPUT);
        CHECK(stream_read_input(s, buf, sizeof(buf)) == 0); /* EOF stays EOF */
        fprintf(stderr, "input: %u bytes, daemon parked %u times, client slept %u times\n", got, p.producer_parks,
                p.consumer_sleeps);
        ring_client_done(&rc);
}

int main(void) {
        test_basic();
        test_error_record();
        test_wraparound();
        test_index_overflow();
        test_full_ring();
        test_corrupt_indices();
        test_scribble();
        test_client_validation();
        test_threads_out();
        test_threads_in();
        fprintf(stderr, "ring: all tests passed\n");
        return 0;
}
