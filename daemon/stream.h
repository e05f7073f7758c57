/* stream.h: the daemon's end of one generation's shared-memory ring (protocol/ring.md).
 *
 * A Stream owns the sealed memfd, its mapping and two eventfds. The daemon hands the three fds to
 * the client in the reply to Generate() (stream_get_client_fds()), polls the daemon wake-up eventfd
 * in sd-event, and its compute thread pushes the generated text through the ring.
 *
 * Threads:
 *   - stream_new(), stream_free(), stream_get_client_fds(), stream_process_wakeup(): main thread.
 *     stream_free() only once the compute thread is done with the stream (job finished or removed).
 *   - Producer side: stream_push_text(), stream_push_end(), stream_push_error(), stream_read_input(),
 *     stream_abort(): the thread that runs the job (compute thread), one thread at a time per stream
 *     (the scheduler owns the job; it may call them from the main thread while the job is not
 *     running, e.g. to end a queued job). They never block and never make a syscall per token: they
 *     write the client's eventfd only when the client said it sleeps.
 *   - stream_get_daemon_wakeup_fd(), stream_is_closed(), stream_get_error(): any thread.
 *
 * Errors of the producer functions: -EAGAIN (ring full / no input yet: park the job; the daemon
 * wake-up fd becomes readable when the client made progress), -EPIPE (the client abandoned the
 * stream: cancel the job), -EBADMSG (the client corrupted the shared indices: the stream is already
 * aborted with an error visible to the client; end the job). After -EPIPE or -EBADMSG every later
 * producer call returns the same error, so a job needs no extra state. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "engine/common/macros.h"
#include "protocol/ring.h"

typedef struct Stream Stream;

/* Statistics of the end record; see RingEnd in protocol/ring.h (RING_STOP_* stop reasons). */
typedef RingEnd StreamEnd;

#define STREAM_RING_BYTES_DEFAULT RING_SIZE_DEFAULT

/* Creates the ring: ring_bytes per direction (rounded up to a power of two, clamped to
 * [RING_SIZE_MIN, RING_SIZE_MAX]; 0 for the default). memfd MFD_CLOEXEC|MFD_ALLOW_SEALING, sealed
 * against SHRINK|GROW|SEAL (so the client cannot make the daemon's mapping fault), eventfds
 * EFD_CLOEXEC|EFD_NONBLOCK. */
int stream_new(size_t ring_bytes, Stream **ret);
Stream *stream_free(Stream *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(Stream *, stream_free);

/* Borrowed fds for the Generate() reply ("h" arguments: sd-bus dups them): the ring memfd, the
 * eventfd the daemon signals (client_wakeup) and the one the client signals (daemon_wakeup). */
void stream_get_client_fds(Stream *s, int *ret_ring, int *ret_client_wakeup, int *ret_daemon_wakeup);

/* The eventfd to poll (EPOLLIN) in sd-event; readable when the client consumed output, wrote input
 * or closed, while the job was parked. Only a hint: always call stream_process_wakeup(). */
int stream_get_daemon_wakeup_fd(Stream *s);

/* Main thread, when the daemon wake-up fd is readable: drains it and says whether the parked job
 * should run again (1: the client made progress, closed input or went away; 0: nothing to do).
 * A 1 may be spurious (the retry returns -EAGAIN again and re-arms), and may arrive while the job
 * is not parked at all: resuming a job that is not parked must be a no-op for the caller. */
int stream_process_wakeup(Stream *s);

/* One text piece for one token (token RING_TOKEN_NONE for text that is not a token of its own).
 * len may exceed one record; the piece is then split, all-or-nothing. Returns 0, -EAGAIN, -EPIPE,
 * -EBADMSG, -EMSGSIZE (len larger than half the ring), -ESHUTDOWN (already ended). */
int stream_push_text(Stream *s, uint32_t token, const void *utf8, size_t len);
/* How many of the len bytes at utf8 to send as one piece of at most max (max >= 4): all of them when
 * they fit, else the most that end on a character boundary (every record holds whole characters:
 * a client may print or convert each on its own). Pure: any thread. */
size_t stream_text_piece(const void *utf8, size_t len, size_t max);

/* 0 when the out ring has room for any last record (end, or error with the longest message), so
 * that one pushed later cannot meet -EAGAIN: only the client frees room, never takes it. Else as
 * stream_push_text() (-EAGAIN arms the wake-up). Lets the job release its session before the end
 * record tells the client it may start the next turn. */
int stream_reserve_last(Stream *s);

/* The last record of a successful (or cancelled) generation; later pushes return -ESHUTDOWN. */
int stream_push_end(Stream *s, const StreamEnd *stats);

/* The last record of a failed generation: errnum positive or negative errno; msg is truncated to
 * RING_ERROR_MESSAGE_MAX bytes (NULL for none). Same returns as stream_push_end(). */
int stream_push_error(Stream *s, int errnum, const char *msg);

/* Ends the stream without a record (the ring is full of unread output or corrupt): the client sees
 * the error in the shared block. Idempotent. */
void stream_abort(Stream *s, int errnum);

/* The prompt direction (Generate option "prompt_stream"): copies up to size bytes. Returns the
 * count (> 0), 0 at the end of input (client closed it and everything was read), -EAGAIN (nothing
 * yet: park), -EPIPE, -EBADMSG. Bytes are arbitrary: validate UTF-8 above this layer. */
ssize_t stream_read_input(Stream *s, void *buf, size_t size);

/* The client abandoned the stream (flag in the ring, set by rwkv_stream_free()); lets a long
 * prefill notice between chunks. A vanished client is noticed through bus peer tracking instead. */
bool stream_is_closed(Stream *s);

/* 0 while healthy; else the negative errno that ended it (-EPIPE, -EBADMSG, ...). */
int stream_get_error(Stream *s);
