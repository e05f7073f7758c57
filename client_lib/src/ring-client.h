/* ring-client.h: the client's end of a generation's ring (protocol/ring.md): maps the sealed memfd
 * the daemon handed over, reads records from the out ring, writes prompt bytes to the in ring, and
 * runs the sleep/wake-up flag protocol on the eventfds. Internal to librwkv-client (and its tests).
 * Not thread-safe: one thread at a time per RingClient. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "protocol/ring.h"

typedef struct RingClient {
        void *map;
        size_t map_size;
        RingShared *shared;
        RingBuf out;          /* our out_head */
        RingBuf in;           /* our in_tail */
        int client_wakeup_fd; /* the daemon signals it; we poll it */
        int daemon_wakeup_fd; /* we signal it */
        bool input_closed;
        bool closed;
} RingClient;

/* Takes ownership of the three fds (also on failure). Validates the seals, the size and the header:
 * -EBADMSG for a ring that does not follow protocol/ring.md, -EPROTO for another ring version. */
int ring_client_attach(RingClient *rc, int ring_fd, int client_wakeup_fd, int daemon_wakeup_fd);

/* Tells the daemon the stream is abandoned (CLOSED + signal), unmaps, closes. Idempotent; a zeroed
 * RingClient with fds -1 is fine. */
void ring_client_done(RingClient *rc);

/* The next record, header and payload copied into payload (RING_RECORD_PAYLOAD_MAX bytes). Returns
 * 1 with a record; 0 when the daemon closed the ring and it is empty (*ret_daemon_error: the
 * positive errno it aborted with, or 0 after a normal last record); -EAGAIN when nothing is there
 * yet; -EBADMSG for a malformed record. Consuming wakes a daemon parked on a full ring. */
int ring_client_next(RingClient *rc, RingRecord *ret, void *payload, int *ret_daemon_error);

/* Prompt bytes, non-blocking: the count written (> 0), -EAGAIN when the ring is full, -EPIPE when the
 * daemon closed the ring (read the records for why), -ESHUTDOWN after ring_client_close_input(). */
ssize_t ring_client_write(RingClient *rc, const void *buf, size_t len);
int ring_client_close_input(RingClient *rc);

enum {
        RING_WAIT_READ = 1,  /* a record or the daemon's CLOSED */
        RING_WAIT_WRITE = 2, /* space in the in ring or the daemon's CLOSED */
};

/* Arms the wake-up flag and re-checks. 1 when the condition already holds (flag cleared again), 0
 * when the caller may now sleep on client_wakeup_fd (the daemon will signal it). */
int ring_client_arm(RingClient *rc, int what);

/* Blocks until the condition holds: 0, -ETIMEDOUT (timeout_ms >= 0 elapsed), -EINTR (a signal).
 * timeout_ms -1 waits forever. */
int ring_client_wait(RingClient *rc, int what, int timeout_ms);
