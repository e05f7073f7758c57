/* rwkv/client.h: librwkv-client, the C client library of rwkvd (see librwkv-client(3)).
 *
 * Conventions: every handle is opaque; functions return 0 (or a count/event) on success and a
 * negative errno on failure; out parameters are written only on success; strings returned through
 * char ** are the caller's to free(); const char * results belong to the object they came from.
 * The library keeps no global state and never prints or exits.
 *
 * Threads: a RwkvClient and the RwkvStreams started from it belong to one thread at a time (they
 * share one D-Bus connection). Different clients may be used from different threads concurrently.
 * RwkvInfo, RwkvSessionList and RwkvGenerateOptions are plain data: read-only use from several
 * threads is fine. rwkv_client_version() may be called from any thread. */
#ifndef RWKV_CLIENT_H
#define RWKV_CLIENT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__) && defined(RWKV_CLIENT_BUILDING)
#define RWKV_EXPORT __attribute__((visibility("default")))
#else
#define RWKV_EXPORT
#endif

typedef struct RwkvClient RwkvClient;
typedef struct RwkvStream RwkvStream;
typedef struct RwkvGenerateOptions RwkvGenerateOptions;
typedef struct RwkvInfo RwkvInfo;
typedef struct RwkvSessionList RwkvSessionList;

/* The library's version, e.g. "0.1.0". */
RWKV_EXPORT const char *rwkv_client_version(void);

/* ---- Connection ---- */

enum {
        RWKV_BUS_SYSTEM = 0,  /* the system bus (the daemon's default) */
        RWKV_BUS_USER = 1,    /* the session bus (rwkvd --user) */
        RWKV_BUS_ADDRESS = 2, /* address, or $RWKVD_BUS_ADDRESS when address is NULL */
};

/* Connects to the bus (the daemon itself is reached on the first call). -EINVAL for an unknown bus
 * kind or a missing address. */
RWKV_EXPORT int rwkv_client_new(int bus, const char *address, RwkvClient **ret);
/* Frees the client (NULL is fine). Streams started from it keep working until freed. */
RWKV_EXPORT RwkvClient *rwkv_client_free(RwkvClient *c);
/* The daemon's message for the last call on c that failed (e.g. "Session 'x' does not exist"),
 * or a description of the local error; "" after a success. Valid until the next call on c. */
RWKV_EXPORT const char *rwkv_client_get_error_message(const RwkvClient *c);

/* ---- Key/value data: session details and daemon status ---- */

enum {
        RWKV_VALUE_STRING = 1,
        RWKV_VALUE_UNSIGNED = 2,
        RWKV_VALUE_SIGNED = 3,
        RWKV_VALUE_DOUBLE = 4,
        RWKV_VALUE_BOOL = 5,
};

RWKV_EXPORT size_t rwkv_info_get_count(const RwkvInfo *info);
/* The key and value type of entry i (NULL / -ERANGE past the end). */
RWKV_EXPORT const char *rwkv_info_get_key(const RwkvInfo *info, size_t i);
RWKV_EXPORT int rwkv_info_get_type(const RwkvInfo *info, size_t i);
/* Values by key: -ENOENT when absent, -EMEDIUMTYPE when the value has another type. Unsigned and
 * signed values convert to each other when in range, and to double; bools read as 0/1 unsigned. */
RWKV_EXPORT int rwkv_info_get_string(const RwkvInfo *info, const char *key, const char **ret);
RWKV_EXPORT int rwkv_info_get_uint(const RwkvInfo *info, const char *key, uint64_t *ret);
RWKV_EXPORT int rwkv_info_get_int(const RwkvInfo *info, const char *key, int64_t *ret);
RWKV_EXPORT int rwkv_info_get_double(const RwkvInfo *info, const char *key, double *ret);
RWKV_EXPORT int rwkv_info_get_bool(const RwkvInfo *info, const char *key, int *ret);
RWKV_EXPORT RwkvInfo *rwkv_info_free(RwkvInfo *info);

/* Daemon status: the Status() keys ("sessions_hot", "jobs_running", "tokens_per_second",
 * "rss_bytes", ...) plus the daemon's properties in snake_case ("version", "model_name",
 * "model_architecture", "model_hash", "model_type", "model_layers", "model_embedding",
 * "model_heads", "vocabulary_size", "tokenizer", "state_size", "threads"). */
RWKV_EXPORT int rwkv_status(RwkvClient *c, RwkvInfo **ret);

/* ---- Sessions ---- */

/* id NULL or "" lets the daemon choose; title may be NULL. ret_id (optional): the id used. */
RWKV_EXPORT int rwkv_session_create(RwkvClient *c, const char *id, const char *title, char **ret_id);
RWKV_EXPORT int rwkv_session_list(RwkvClient *c, RwkvSessionList **ret);
RWKV_EXPORT size_t rwkv_session_list_get_count(const RwkvSessionList *l);
/* Entry i (NULL / 0 past the end). Times are µs since the epoch. */
RWKV_EXPORT const char *rwkv_session_list_get_id(const RwkvSessionList *l, size_t i);
RWKV_EXPORT const char *rwkv_session_list_get_title(const RwkvSessionList *l, size_t i);
RWKV_EXPORT uint64_t rwkv_session_list_get_tokens(const RwkvSessionList *l, size_t i);
RWKV_EXPORT uint32_t rwkv_session_list_get_turns(const RwkvSessionList *l, size_t i);
RWKV_EXPORT uint64_t rwkv_session_list_get_created(const RwkvSessionList *l, size_t i);
RWKV_EXPORT uint64_t rwkv_session_list_get_updated(const RwkvSessionList *l, size_t i);
RWKV_EXPORT int rwkv_session_list_get_hot(const RwkvSessionList *l, size_t i);
RWKV_EXPORT RwkvSessionList *rwkv_session_list_free(RwkvSessionList *l);

/* Details ("id", "owner", "title", "tokens", "turns", "created", "updated", "hot", "busy",
 * "model_hash", "state_bytes", "disk_bytes", "checkpoints"). -ENOENT: no such session. */
RWKV_EXPORT int rwkv_session_get(RwkvClient *c, const char *id, RwkvInfo **ret);
/* Copy at the current point (turn 0) or at the start of a turn; new_id NULL/"" lets the daemon choose. */
RWKV_EXPORT int rwkv_session_fork(RwkvClient *c, const char *id, const char *new_id, uint32_t turn, char **ret_id);
RWKV_EXPORT int rwkv_session_rename(RwkvClient *c, const char *id, const char *new_id);
RWKV_EXPORT int rwkv_session_set_title(RwkvClient *c, const char *id, const char *title);
RWKV_EXPORT int rwkv_session_delete(RwkvClient *c, const char *id);
/* Back to the start of turn (1-based), dropping it and later turns. */
RWKV_EXPORT int rwkv_session_rewind(RwkvClient *c, const char *id, uint32_t turn);
/* The daemon writes the sealed export to fd (borrowed; a file or pipe open for writing). */
RWKV_EXPORT int rwkv_session_export(RwkvClient *c, const char *id, int fd);
/* The daemon reads an export from fd (borrowed); id NULL/"" keeps the exported id. */
RWKV_EXPORT int rwkv_session_import(RwkvClient *c, int fd, const char *id, char **ret_id);

/* ---- Generation options (defaults: the daemon's) ---- */

RWKV_EXPORT int rwkv_generate_options_new(RwkvGenerateOptions **ret);
RWKV_EXPORT RwkvGenerateOptions *rwkv_generate_options_free(RwkvGenerateOptions *o);
/* Setters return -EINVAL for values out of range (negative, NaN, top_p outside (0,1], ...). */
RWKV_EXPORT int rwkv_generate_options_set_max_tokens(RwkvGenerateOptions *o, uint32_t n);
RWKV_EXPORT int rwkv_generate_options_set_temperature(RwkvGenerateOptions *o, double t);
RWKV_EXPORT int rwkv_generate_options_set_top_p(RwkvGenerateOptions *o, double p);
RWKV_EXPORT int rwkv_generate_options_set_top_k(RwkvGenerateOptions *o, uint32_t k);
RWKV_EXPORT int rwkv_generate_options_set_min_p(RwkvGenerateOptions *o, double p);
RWKV_EXPORT int rwkv_generate_options_set_presence_penalty(RwkvGenerateOptions *o, double v);
RWKV_EXPORT int rwkv_generate_options_set_frequency_penalty(RwkvGenerateOptions *o, double v);
RWKV_EXPORT int rwkv_generate_options_set_penalty_decay(RwkvGenerateOptions *o, double v);
RWKV_EXPORT int rwkv_generate_options_set_seed(RwkvGenerateOptions *o, uint64_t seed);
/* A stop string (len bytes, no NUL inside; up to 64 strings). */
RWKV_EXPORT int rwkv_generate_options_add_stop(RwkvGenerateOptions *o, const char *s, size_t len);
/* Nonzero: more prompt follows the prompt argument through rwkv_stream_write() until
 * rwkv_stream_close_input(). */
RWKV_EXPORT int rwkv_generate_options_set_prompt_stream(RwkvGenerateOptions *o, int enable);
/* Nonzero: rewind to the start of the last turn and feed its prompt again. */
RWKV_EXPORT int rwkv_generate_options_set_regenerate(RwkvGenerateOptions *o, int enable);

/* ---- Streams ---- */

/* Starts a generation. session_id NULL/"" uses a throw-away session. prompt is prompt_len bytes of
 * UTF-8 without NUL (may be empty: continue the session's text). options may be NULL. */
RWKV_EXPORT int rwkv_generate_start(RwkvClient *c, const char *session_id, const char *prompt, size_t prompt_len,
                                    const RwkvGenerateOptions *options, RwkvStream **ret);

enum {
        RWKV_EVENT_TEXT = 1,  /* rwkv_stream_get_text(), rwkv_stream_get_token() */
        RWKV_EVENT_END = 2,   /* rwkv_stream_get_stat(); the last event */
        RWKV_EVENT_ERROR = 3, /* rwkv_stream_get_error(), rwkv_stream_get_error_message(); the last event */
};

#define RWKV_TOKEN_NONE UINT32_MAX /* text that continues the previous token's piece */

/* The next event. timeout_ms: -1 blocks, 0 never blocks, > 0 waits that long. Returns an
 * RWKV_EVENT_*, 0 once the last event was returned, -EAGAIN (timeout 0 and nothing yet: the fd of
 * rwkv_stream_get_fd() is armed and turns readable when there is), -ETIMEDOUT, -EINTR (a signal
 * arrived: call again or cancel), -EBADMSG (the ring is malformed; the stream is unusable). */
RWKV_EXPORT int rwkv_stream_read(RwkvStream *s, int timeout_ms);
/* A file descriptor for poll/epoll/GLib/sd-event (POLLIN), valid until rwkv_stream_free(). When it
 * is readable call rwkv_stream_read(s, 0) until it returns -EAGAIN; only then wait on it again. */
RWKV_EXPORT int rwkv_stream_get_fd(const RwkvStream *s);
RWKV_EXPORT uint64_t rwkv_stream_get_job(const RwkvStream *s);

/* The text of the last RWKV_EVENT_TEXT (len bytes, NUL-terminated for convenience; a piece may end
 * inside a UTF-8 sequence only if the model produced invalid UTF-8). Valid until the next read. */
RWKV_EXPORT const char *rwkv_stream_get_text(const RwkvStream *s, size_t *ret_len);
RWKV_EXPORT uint32_t rwkv_stream_get_token(const RwkvStream *s);
/* CLOCK_MONOTONIC nanoseconds at which the daemon wrote the last text event into the ring. */
RWKV_EXPORT uint64_t rwkv_stream_get_time_ns(const RwkvStream *s);

enum {
        RWKV_STAT_TOKENS_GENERATED = 1,
        RWKV_STAT_PROMPT_TOKENS = 2,
        RWKV_STAT_STOP_REASON = 3, /* RWKV_STOP_* */
        RWKV_STAT_QUEUE_USEC = 4,
        RWKV_STAT_PROMPT_USEC = 5,
        RWKV_STAT_GENERATE_USEC = 6,
        RWKV_STAT_SESSION_TOKENS = 7,
};

enum {
        RWKV_STOP_MAX_TOKENS = 1,
        RWKV_STOP_STOP_STRING = 2,
        RWKV_STOP_END_TOKEN = 3,
        RWKV_STOP_CANCELLED = 4,
        RWKV_STOP_PROMPT_ONLY = 5,
};

/* A statistic of the end event: -ENODATA before RWKV_EVENT_END, -EINVAL for an unknown key. */
RWKV_EXPORT int rwkv_stream_get_stat(const RwkvStream *s, int key, uint64_t *ret);
/* After RWKV_EVENT_ERROR: the positive errno and the daemon's message ("" if none). */
RWKV_EXPORT int rwkv_stream_get_error(const RwkvStream *s);
RWKV_EXPORT const char *rwkv_stream_get_error_message(const RwkvStream *s);

/* Streams prompt bytes (prompt_stream option): writes 1..len bytes, waiting per timeout_ms for room.
 * -EPIPE when the daemon ended the generation (read the events for why), -ESHUTDOWN after
 * rwkv_stream_close_input(), -EAGAIN/-ETIMEDOUT/-EINTR as for rwkv_stream_read(). */
RWKV_EXPORT ssize_t rwkv_stream_write(RwkvStream *s, const void *buf, size_t len, int timeout_ms);
/* The prompt is complete; the daemon starts sampling once it has read everything. */
RWKV_EXPORT int rwkv_stream_close_input(RwkvStream *s);
/* Asks the daemon to stop; the stream then ends with RWKV_EVENT_END, stop reason cancelled. Uses the
 * client's connection: same thread rules as the client. */
RWKV_EXPORT int rwkv_stream_cancel(RwkvStream *s);
/* Frees the stream (NULL is fine). An unfinished generation is abandoned: the daemon stops it. */
RWKV_EXPORT RwkvStream *rwkv_stream_free(RwkvStream *s);

#ifdef __cplusplus
}
#endif

#endif
