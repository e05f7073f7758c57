/* stream.c: the daemon's end of a generation's ring: a sealed memfd, two eventfds, and the producer
 * of the out ring / consumer of the in ring. Everything read from the shared page is hostile. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "daemon/stream.h"

struct Stream {
        int ring_fd;
        int client_wakeup_fd; /* the daemon signals it */
        int daemon_wakeup_fd; /* the client signals it; polled by the main thread */
        void *map;
        size_t map_size;
        RingShared *shared;
        RingBuf out; /* trusted geometry and our own out_tail */
        RingBuf in;  /* trusted geometry and our own in_head */
        int error;   /* producer side: sticky negative errno once the stream is over */
        bool ended;  /* an end or error record was pushed */
};

static uint64_t now_ns(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * UINT64_C(1000000000) + (uint64_t)ts.tv_nsec;
}

static void eventfd_signal(int fd) {
        uint64_t one = 1;
        /* EAGAIN means the counter is saturated: the peer has a wake-up pending anyway. */
        (void)!write(fd, &one, sizeof(one));
}

int stream_new(size_t ring_bytes, Stream **ret) {
        _cleanup_(stream_freep) Stream *s = NULL;
        uint32_t size = ring_size_round(ring_bytes ? ring_bytes : STREAM_RING_BYTES_DEFAULT);

        s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        s->ring_fd = s->client_wakeup_fd = s->daemon_wakeup_fd = -EBADF;
        s->map = MAP_FAILED;

        s->ring_fd = memfd_create("rwkvd-ring", MFD_CLOEXEC | MFD_ALLOW_SEALING);
        if (s->ring_fd < 0)
                return -errno;
        s->map_size = (size_t)ring_total_size(size, size);
        if (ftruncate(s->ring_fd, (off_t)s->map_size) < 0)
                return -errno;
        /* Sealed before anyone else sees the fd: a client that could shrink the file would make
         * the daemon's next access to the mapping raise SIGBUS. */
        if (fcntl(s->ring_fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0)
                return -errno;
        s->map = mmap(NULL, s->map_size, PROT_READ | PROT_WRITE, MAP_SHARED, s->ring_fd, 0);
        if (s->map == MAP_FAILED)
                return -errno;

        s->client_wakeup_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (s->client_wakeup_fd < 0)
                return -errno;
        s->daemon_wakeup_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (s->daemon_wakeup_fd < 0)
                return -errno;

        ring_header_init(s->map, size, size);
        s->shared = s->map;
        s->out = (RingBuf){
                .data = (uint8_t *)s->map + RING_HEADER_SIZE,
                .size = size,
                .head = &s->shared->client.out_head,
                .tail = &s->shared->daemon.out_tail,
        };
        s->in = (RingBuf){
                .data = (uint8_t *)s->map + RING_HEADER_SIZE + size,
                .size = size,
                .head = &s->shared->daemon.in_head,
                .tail = &s->shared->client.in_tail,
        };

        *ret = TAKE_PTR(s);
        return 0;
}

Stream *stream_free(Stream *s) {
        if (!s)
                return NULL;
        if (s->map != MAP_FAILED && s->map)
                munmap(s->map, s->map_size);
        safe_close(s->ring_fd);
        safe_close(s->client_wakeup_fd);
        safe_close(s->daemon_wakeup_fd);
        free(s);
        return NULL;
}

void stream_get_client_fds(Stream *s, int *ret_ring, int *ret_client_wakeup, int *ret_daemon_wakeup) {
        if (ret_ring)
                *ret_ring = s->ring_fd;
        if (ret_client_wakeup)
                *ret_client_wakeup = s->client_wakeup_fd;
        if (ret_daemon_wakeup)
                *ret_daemon_wakeup = s->daemon_wakeup_fd;
}

int stream_get_daemon_wakeup_fd(Stream *s) {
        return s->daemon_wakeup_fd;
}

bool stream_is_closed(Stream *s) {
        return RWKV_READ_ONCE(s->shared->client.flags) & RING_FLAG_CLOSED;
}

int stream_get_error(Stream *s) {
        return RWKV_READ_ONCE(s->error);
}

/* s->error is written by the producer thread only, and read by any (stream_get_error()). */
static int set_error(Stream *s, int r) {
        RWKV_WRITE_ONCE(s->error, r);
        return r;
}

void stream_abort(Stream *s, int errnum) {
        errnum = errnum < 0 ? -errnum : errnum;
        if (errnum == 0)
                errnum = EIO;
        if (s->error == 0)
                (void)set_error(s, -errnum);
        if (RWKV_READ_ONCE(s->shared->daemon.flags) & RING_FLAG_CLOSED)
                return;
        RWKV_WRITE_ONCE(s->shared->daemon.error, errnum);
        /* The error is in place before the client can see CLOSED (its acquire of the flags). */
        ring_flag_set(&s->shared->daemon.flags, RING_FLAG_CLOSED);
        rwkv_smp_mb();
        /* Unconditional: a client blocked on a full in ring or an empty out ring must learn now. */
        eventfd_signal(s->client_wakeup_fd);
}

/* The state checks every producer call starts with. */
static int stream_check(Stream *s) {
        if (s->error < 0)
                return s->error;
        if (stream_is_closed(s))
                return set_error(s, -EPIPE);
        return 0;
}

/* A corrupt index ends the stream at once, with the error visible to the client. */
static int stream_corrupt(Stream *s) {
        stream_abort(s, EBADMSG);
        return -EBADMSG;
}

/* Our own flag word: a plain read first keeps an atomic RMW off the per-token path. */
static void wakeup_disarm(Stream *s) {
        if (RWKV_READ_ONCE(s->shared->daemon.flags) & RING_FLAG_NEED_WAKEUP)
                ring_flag_clear(&s->shared->daemon.flags, RING_FLAG_NEED_WAKEUP);
}

/* Room for need bytes in the out ring, else arm our wake-up flag and re-check once. */
static int out_reserve(Stream *s, uint32_t need) {
        int64_t avail = ring_buf_free(&s->out);
        if (avail < 0)
                return stream_corrupt(s);
        if (avail >= need) {
                wakeup_disarm(s);
                return 0;
        }
        ring_sleep_prepare(&s->shared->daemon.flags);
        avail = ring_buf_free(&s->out);
        if (avail < 0)
                return stream_corrupt(s);
        if (avail >= need) {
                wakeup_disarm(s);
                return 0;
        }
        /* The client may have closed while we looked; prefer telling the job that. */
        if (stream_is_closed(s))
                return set_error(s, -EPIPE);
        return -EAGAIN;
}

static void out_publish(Stream *s, uint32_t bytes) {
        ring_buf_produce(&s->out, bytes);
        if (ring_peer_needs_wakeup(&s->shared->client.flags))
                eventfd_signal(s->client_wakeup_fd);
}

size_t stream_text_piece(const void *utf8, size_t len, size_t max) {
        const uint8_t *p = utf8;
        size_t n = MIN(len, max);
        /* a character is at most 4 bytes: at most 3 continuation bytes to step back over */
        for (int k = 0; k < 3 && n < len && (p[n] & 0xC0) == 0x80; k++)
                n--;
        return n;
}

int stream_push_text(Stream *s, uint32_t token, const void *utf8, size_t len) {
        uint32_t need = 0, off = 0;
        size_t done = 0;
        int r;

        r = stream_check(s);
        if (r < 0)
                return r;
        if (s->ended)
                return -ESHUTDOWN;
        if (len > s->out.size / 2)
                return -EMSGSIZE;
        if (len > 0 && !utf8)
                return -EINVAL;

        /* All pieces at once or nothing: a parked job retries the whole call. */
        do {
                uint32_t piece = (uint32_t)stream_text_piece((const uint8_t *)utf8 + done, len - done, RING_TEXT_MAX);
                need += ring_record_span((uint32_t)sizeof(RingText) + piece);
                done += piece;
        } while (done < len);

        r = out_reserve(s, need);
        if (r < 0)
                return r;

        RingText t = { .token = token, .time_ns = now_ns() };
        done = 0;
        do {
                uint32_t piece = (uint32_t)stream_text_piece((const uint8_t *)utf8 + done, len - done, RING_TEXT_MAX);
                off += ring_record_write(&s->out, off, RING_RECORD_TEXT, &t, sizeof(t),
                                         piece ? (const uint8_t *)utf8 + done : NULL, piece);
                done += piece;
                t.token = RING_TOKEN_NONE;
        } while (done < len);

        out_publish(s, off);
        return 0;
}

/* The last record: publish it, then CLOSED, then wake the client whatever its flag says. */
static int push_last(Stream *s, uint16_t type, const void *p1, uint32_t l1, const void *p2, uint32_t l2) {
        int r;

        r = stream_check(s);
        if (r < 0)
                return r;
        if (s->ended)
                return -ESHUTDOWN;
        r = out_reserve(s, ring_record_span(l1 + l2));
        if (r < 0)
                return r;
        ring_buf_produce(&s->out, ring_record_write(&s->out, 0, type, p1, l1, p2, l2));
        s->ended = true;
        /* Ordered after the record (release in ring_flag_set): CLOSED means "nothing follows". */
        ring_flag_set(&s->shared->daemon.flags, RING_FLAG_CLOSED);
        rwkv_smp_mb();
        eventfd_signal(s->client_wakeup_fd);
        return 0;
}

int stream_reserve_last(Stream *s) {
        int r = stream_check(s);
        if (r < 0)
                return r;
        if (s->ended)
                return -ESHUTDOWN;
        return out_reserve(s, ring_record_span((uint32_t) MAX(sizeof(RingEnd), sizeof(RingError) + RING_ERROR_MESSAGE_MAX)));
}

int stream_push_end(Stream *s, const StreamEnd *stats) {
        RingEnd e = {};
        if (stats)
                e = *stats;
        e.reserved0 = 0;
        memset(e.reserved, 0, sizeof(e.reserved));
        return push_last(s, RING_RECORD_END, &e, sizeof(e), NULL, 0);
}

int stream_push_error(Stream *s, int errnum, const char *msg) {
        RingError e = { .errnum = errnum < 0 ? -errnum : errnum };
        size_t l = msg ? strnlen(msg, RING_ERROR_MESSAGE_MAX) : 0;
        if (e.errnum == 0)
                e.errnum = EIO;
        return push_last(s, RING_RECORD_ERROR, &e, sizeof(e), msg, (uint32_t)l);
}

ssize_t stream_read_input(Stream *s, void *buf, size_t size) {
        int64_t fill;
        uint32_t flags;
        int r;

        r = stream_check(s);
        if (r < 0)
                return r;
        if (size == 0)
                return -EINVAL;

        for (int attempt = 0;; attempt++) {
                /* Flags before the index: INPUT_CLOSED is set after the client's last in_tail
                 * release, so seeing it here means the tail we load next is final. */
                flags = rwkv_smp_load_acquire(&s->shared->client.flags);
                fill = ring_buf_fill(&s->in);
                if (fill < 0)
                        return stream_corrupt(s);
                if (fill > 0)
                        break;
                if (flags & RING_FLAG_CLOSED)
                        return set_error(s, -EPIPE);
                if (flags & RING_FLAG_INPUT_CLOSED) {
                        wakeup_disarm(s);
                        return 0;
                }
                if (attempt > 0)
                        return -EAGAIN; /* flag stays armed: the client signals when it writes */
                ring_sleep_prepare(&s->shared->daemon.flags);
        }

        wakeup_disarm(s);
        size_t n = MIN(size, (size_t)fill);
        ring_buf_read_at(&s->in, 0, buf, n);
        ring_buf_consume(&s->in, (uint32_t)n);
        /* A client blocked on a full in ring waits for this. */
        if (ring_peer_needs_wakeup(&s->shared->client.flags))
                eventfd_signal(s->client_wakeup_fd);
        return (ssize_t)n;
}

int stream_process_wakeup(Stream *s) {
        uint64_t v = 0;

        /* The client signals only while our NEED_WAKEUP flag is armed, i.e. while the job is
         * parked, so any count means "retry". A retry that finds nothing returns -EAGAIN again and
         * re-arms the flag; a resume of a job that is not parked must be a no-op for the caller. */
        if (read(s->daemon_wakeup_fd, &v, sizeof(v)) == (ssize_t)sizeof(v) && v > 0)
                return 1;
        if (RWKV_READ_ONCE(s->error) < 0)
                return 1;
        return !!(rwkv_smp_load_acquire(&s->shared->client.flags) & (RING_FLAG_CLOSED | RING_FLAG_INPUT_CLOSED));
}
