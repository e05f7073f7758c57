/* ring-client.c: the client's end of a ring; see ring-client.h and protocol/ring.md. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "client_lib/src/ring-client.h"

static void close_fd(int *fd) {
        if (*fd >= 0)
                close(*fd);
        *fd = -1;
}

static void eventfd_signal(int fd) {
        uint64_t one = 1;
        /* EAGAIN: the counter is saturated, the daemon has a wake-up pending anyway. */
        (void)!write(fd, &one, sizeof(one));
}

static void eventfd_drain(int fd) {
        uint64_t v;
        (void)!read(fd, &v, sizeof(v));
}

int ring_client_attach(RingClient *rc, int ring_fd, int client_wakeup_fd, int daemon_wakeup_fd) {
        struct stat st;
        RingHeader h;
        int seals, r;

        *rc = (RingClient){
                .map = MAP_FAILED,
                .client_wakeup_fd = client_wakeup_fd,
                .daemon_wakeup_fd = daemon_wakeup_fd,
        };

        if (ring_fd < 0 || client_wakeup_fd < 0 || daemon_wakeup_fd < 0) {
                r = -EBADF;
                goto fail;
        }
        /* The eventfd we poll must not block a read when drained. */
        r = fcntl(client_wakeup_fd, F_GETFL);
        if (r < 0 || fcntl(client_wakeup_fd, F_SETFL, r | O_NONBLOCK) < 0) {
                r = -errno;
                goto fail;
        }
        r = fcntl(daemon_wakeup_fd, F_GETFL);
        if (r < 0 || fcntl(daemon_wakeup_fd, F_SETFL, r | O_NONBLOCK) < 0) {
                r = -errno;
                goto fail;
        }
        /* Without the seals the other side could shrink the file and our accesses would fault. */
        seals = fcntl(ring_fd, F_GET_SEALS);
        if (seals < 0 || (seals & (F_SEAL_SHRINK | F_SEAL_GROW)) != (F_SEAL_SHRINK | F_SEAL_GROW)) {
                r = -EBADMSG;
                goto fail;
        }
        if (fstat(ring_fd, &st) < 0) {
                r = -errno;
                goto fail;
        }
        if (st.st_size < RING_HEADER_SIZE || (uint64_t)st.st_size > ring_total_size(RING_SIZE_MAX, RING_SIZE_MAX)) {
                r = -EBADMSG;
                goto fail;
        }
        rc->map_size = (size_t)st.st_size;
        rc->map = mmap(NULL, rc->map_size, PROT_READ | PROT_WRITE, MAP_SHARED, ring_fd, 0);
        if (rc->map == MAP_FAILED) {
                r = -errno;
                goto fail;
        }
        close_fd(&ring_fd); /* the mapping keeps the memory */

        r = ring_header_validate(rc->map, rc->map_size, &h);
        if (r < 0)
                goto fail;
        rc->shared = rc->map;
        rc->out = (RingBuf){
                .data = (uint8_t *)rc->map + h.out_offset,
                .size = h.out_size,
                .head = &rc->shared->client.out_head,
                .tail = &rc->shared->daemon.out_tail,
                .pos = RWKV_READ_ONCE(rc->shared->client.out_head),
        };
        rc->in = (RingBuf){
                .data = (uint8_t *)rc->map + h.in_offset,
                .size = h.in_size,
                .head = &rc->shared->daemon.in_head,
                .tail = &rc->shared->client.in_tail,
                .pos = RWKV_READ_ONCE(rc->shared->client.in_tail),
        };
        return 0;

fail:
        close_fd(&ring_fd);
        if (rc->map != MAP_FAILED)
                munmap(rc->map, rc->map_size);
        rc->map = MAP_FAILED;
        rc->shared = NULL;
        close_fd(&rc->client_wakeup_fd);
        close_fd(&rc->daemon_wakeup_fd);
        return r;
}

void ring_client_done(RingClient *rc) {
        if (rc->shared && !rc->closed) {
                ring_flag_set(&rc->shared->client.flags, RING_FLAG_CLOSED);
                rwkv_smp_mb();
                /* Unconditional: a daemon parked on this ring must drop the job now. */
                if (rc->daemon_wakeup_fd >= 0)
                        eventfd_signal(rc->daemon_wakeup_fd);
                rc->closed = true;
        }
        if (rc->map && rc->map != MAP_FAILED)
                munmap(rc->map, rc->map_size);
        rc->map = MAP_FAILED;
        rc->shared = NULL;
        close_fd(&rc->client_wakeup_fd);
        close_fd(&rc->daemon_wakeup_fd);
}

/* Once there is something to do we are awake: leave the flag set and the daemon would make a
 * syscall per token. Our own word, so a plain read first avoids an atomic RMW per record. */
static void wakeup_disarm(RingClient *rc) {
        if (RWKV_READ_ONCE(rc->shared->client.flags) & RING_FLAG_NEED_WAKEUP)
                ring_flag_clear(&rc->shared->client.flags, RING_FLAG_NEED_WAKEUP);
}

static bool daemon_closed(RingClient *rc) {
        /* Pairs with the release in the daemon's ring_flag_set(CLOSED): records published before it
         * are visible to the index load that follows. */
        return rwkv_smp_load_acquire(&rc->shared->daemon.flags) & RING_FLAG_CLOSED;
}

int ring_client_next(RingClient *rc, RingRecord *ret, void *payload, int *ret_daemon_error) {
        RingRecord rec;
        int r;

        if (!rc->shared)
                return -EBADF;
        bool closed = daemon_closed(rc); /* before the index: see daemon_closed() */
        r = ring_record_peek(&rc->out, &rec);
        if (r < 0)
                return r;
        if (r == 0) {
                if (!closed)
                        return -EAGAIN;
                int e = RWKV_READ_ONCE(rc->shared->daemon.error);
                if (ret_daemon_error)
                        *ret_daemon_error = e > 0 && e < 4096 ? e : (e == 0 ? 0 : EIO);
                return 0;
        }
        wakeup_disarm(rc);
        ring_buf_read_at(&rc->out, sizeof(RingRecord), payload, rec.size);
        ring_buf_consume(&rc->out, ring_record_span(rec.size));
        /* A daemon parked on a full out ring waits for this. */
        if (ring_peer_needs_wakeup(&rc->shared->daemon.flags))
                eventfd_signal(rc->daemon_wakeup_fd);
        *ret = rec;
        return 1;
}

ssize_t ring_client_write(RingClient *rc, const void *buf, size_t len) {
        int64_t avail;

        if (!rc->shared)
                return -EBADF;
        if (rc->input_closed)
                return -ESHUTDOWN;
        if (daemon_closed(rc))
                return -EPIPE;
        if (len == 0)
                return 0;
        avail = ring_buf_free(&rc->in);
        if (avail < 0)
                return -EBADMSG;
        if (avail == 0)
                return -EAGAIN;
        size_t n = len < (size_t)avail ? len : (size_t)avail;
        ring_buf_write_at(&rc->in, 0, buf, n);
        ring_buf_produce(&rc->in, (uint32_t)n);
        if (ring_peer_needs_wakeup(&rc->shared->daemon.flags))
                eventfd_signal(rc->daemon_wakeup_fd);
        return (ssize_t)n;
}

int ring_client_close_input(RingClient *rc) {
        if (!rc->shared)
                return -EBADF;
        if (rc->input_closed)
                return 0;
        rc->input_closed = true;
        /* Release: our last in_tail store is visible before the flag (the daemon reads the flag
         * first, then the tail). */
        ring_flag_set(&rc->shared->client.flags, RING_FLAG_INPUT_CLOSED);
        if (ring_peer_needs_wakeup(&rc->shared->daemon.flags))
                eventfd_signal(rc->daemon_wakeup_fd);
        return 0;
}

static bool ready(RingClient *rc, int what) {
        if (daemon_closed(rc))
                return true;
        if (what & RING_WAIT_READ) {
                int64_t f = ring_buf_fill(&rc->out);
                if (f != 0) /* data, or corruption the caller will report */
                        return true;
        }
        if (what & RING_WAIT_WRITE) {
                int64_t f = ring_buf_free(&rc->in);
                if (f != 0)
                        return true;
        }
        return false;
}

int ring_client_arm(RingClient *rc, int what) {
        if (!rc->shared)
                return -EBADF;
        if (ready(rc, what)) {
                wakeup_disarm(rc);
                return 1;
        }
        /* Drain before arming: a signal after this point leaves the fd readable. */
        eventfd_drain(rc->client_wakeup_fd);
        ring_sleep_prepare(&rc->shared->client.flags);
        if (ready(rc, what)) {
                wakeup_disarm(rc);
                return 1;
        }
        return 0;
}

int ring_client_wait(RingClient *rc, int what, int timeout_ms) {
        for (;;) {
                int r = ring_client_arm(rc, what);
                if (r != 0)
                        return r < 0 ? r : 0;
                struct pollfd p = { .fd = rc->client_wakeup_fd, .events = POLLIN };
                r = poll(&p, 1, timeout_ms);
                if (r < 0)
                        return -errno;
                if (r == 0)
                        return ready(rc, what) ? 0 : -ETIMEDOUT;
                /* Woken (or spuriously): loop re-checks; the flag stays armed until ready. */
                if (ready(rc, what)) {
                        wakeup_disarm(rc);
                        return 0;
                }
        }
}
