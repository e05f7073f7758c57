/* stream.c: RwkvStream, a generation as the client sees it: Generate() once on the bus, then
 * records from the shared ring, and the daemon's name on the bus watched so that a crashed daemon
 * ends the stream instead of leaving the reader asleep forever. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include "client_lib/src/client-internal.h"
#include "protocol/bus.h"

static void message_unrefp(sd_bus_message **m) {
        sd_bus_message_unref(*m);
}

static int name_owner_changed(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        RwkvStream *s = userdata;
        const char *name, *old_owner, *new_owner;

        if (sd_bus_message_read(m, "sss", &name, &old_owner, &new_owner) < 0)
                return 0;
        if (strcmp(name, RWKV_BUS_NAME) == 0 && *old_owner)
                s->daemon_gone = true; /* the owner we talked to is gone (a new one has no job) */
        return 0;
}

RWKV_EXPORT RwkvStream *rwkv_stream_free(RwkvStream *s) {
        if (!s)
                return NULL;
        ring_client_done(&s->ring); /* CLOSED + wake-up: the daemon drops an unfinished job */
        if (s->epoll_fd >= 0)
                close(s->epoll_fd);
        sd_bus_slot_unref(s->match);
        sd_bus_unref(s->bus); /* shared with the client: never closed here */
        free(s);
        return NULL;
}

static int dup_fd(int fd) {
        int r = fcntl(fd, F_DUPFD_CLOEXEC, 3);
        return r < 0 ? -errno : r;
}

RWKV_EXPORT int rwkv_generate_start(RwkvClient *c, const char *session_id, const char *prompt, size_t prompt_len,
                                    const RwkvGenerateOptions *options, RwkvStream **ret) {
        _cleanup_(message_unrefp) sd_bus_message *m = NULL, *reply = NULL;
        sd_bus_error error = SD_BUS_ERROR_NULL;
        RwkvStream *s = NULL;
        char *p = NULL;
        uint64_t job;
        int ring_fd, cw_fd, dw_fd, fds[3] = { -1, -1, -1 };
        bool have_job = false;
        int r;

        if (!c || !ret || (!prompt && prompt_len > 0))
                return -EINVAL;
        if (prompt_len > 0 && memchr(prompt, 0, prompt_len))
                return client_set_error(c, -EINVAL, NULL);
        p = strndup(prompt ? prompt : "", prompt_len);
        if (!p)
                return client_set_error(c, -ENOMEM, NULL);

        s = calloc(1, sizeof(*s));
        if (!s) {
                free(p);
                return client_set_error(c, -ENOMEM, NULL);
        }
        s->epoll_fd = -1;
        s->ring = (RingClient){ .client_wakeup_fd = -1, .daemon_wakeup_fd = -1 };
        s->bus = sd_bus_ref(c->bus);
        s->prompt_stream = options && options->prompt_stream;

        /* Before the call, so a daemon that dies right after replying is noticed. */
        r = sd_bus_add_match(c->bus, &s->match,
                             "type='signal',sender='org.freedesktop.DBus',path='/org/freedesktop/DBus',"
                             "interface='org.freedesktop.DBus',member='NameOwnerChanged',"
                             "arg0='" RWKV_BUS_NAME "'",
                             name_owner_changed, s);
        if (r < 0)
                goto fail;

        r = sd_bus_message_new_method_call(c->bus, &m, RWKV_BUS_NAME, RWKV_BUS_PATH, RWKV_BUS_INTERFACE, "Generate");
        if (r >= 0)
                r = sd_bus_message_append(m, "ss", session_id ? session_id : "", p);
        if (r >= 0)
                r = options_append(options, m);
        if (r < 0)
                goto fail;
        r = sd_bus_call(c->bus, m, 0, &error, &reply);
        if (r < 0)
                goto fail;
        r = sd_bus_message_read(reply, "thhh", &job, &ring_fd, &cw_fd, &dw_fd);
        if (r < 0)
                goto fail;
        s->job = job;
        have_job = true;
        /* The message owns those fds; keep copies. */
        fds[0] = dup_fd(ring_fd);
        fds[1] = dup_fd(cw_fd);
        fds[2] = dup_fd(dw_fd);
        if (fds[0] < 0 || fds[1] < 0 || fds[2] < 0) {
                r = fds[0] < 0 ? fds[0] : fds[1] < 0 ? fds[1] : fds[2];
                for (int i = 0; i < 3; i++)
                        if (fds[i] >= 0)
                                close(fds[i]);
                goto fail;
        }
        r = ring_client_attach(&s->ring, fds[0], fds[1], fds[2]);
        if (r < 0)
                goto fail;

        /* One pollable fd for event loops: the ring's eventfd plus the bus (daemon vanished). */
        s->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
        if (s->epoll_fd < 0) {
                r = -errno;
                goto fail;
        }
        struct epoll_event ev = { .events = EPOLLIN };
        if (epoll_ctl(s->epoll_fd, EPOLL_CTL_ADD, s->ring.client_wakeup_fd, &ev) < 0) {
                r = -errno;
                goto fail;
        }
        int bus_fd = sd_bus_get_fd(c->bus);
        if (bus_fd >= 0 && epoll_ctl(s->epoll_fd, EPOLL_CTL_ADD, bus_fd, &ev) < 0) {
                r = -errno;
                goto fail;
        }

        free(p);
        client_set_error(c, 0, NULL);
        *ret = s;
        return 0;

fail:
        client_set_error(c, r, &error);
        sd_bus_error_free(&error);
        /* The daemon started a job we cannot read (a bad ring, no fds left): stop it now rather
         * than leave it parked until we disconnect. */
        if (have_job)
                (void)sd_bus_call_method(c->bus, RWKV_BUS_NAME, RWKV_BUS_PATH, RWKV_BUS_INTERFACE, "Cancel", NULL, NULL,
                                         "t", s->job);
        free(p);
        rwkv_stream_free(s);
        return r;
}

RWKV_EXPORT int rwkv_stream_get_fd(const RwkvStream *s) {
        return s ? s->epoll_fd : -EINVAL;
}

RWKV_EXPORT uint64_t rwkv_stream_get_job(const RwkvStream *s) {
        return s ? s->job : 0;
}

RWKV_EXPORT const char *rwkv_stream_get_text(const RwkvStream *s, size_t *ret_len) {
        if (!s) {
                if (ret_len)
                        *ret_len = 0;
                return NULL;
        }
        if (ret_len)
                *ret_len = s->text_len;
        return (const char *)s->payload + sizeof(RingText);
}

RWKV_EXPORT uint32_t rwkv_stream_get_token(const RwkvStream *s) {
        return s ? s->token : RWKV_TOKEN_NONE;
}

RWKV_EXPORT uint64_t rwkv_stream_get_time_ns(const RwkvStream *s) {
        return s ? s->time_ns : 0;
}

RWKV_EXPORT int rwkv_stream_get_stat(const RwkvStream *s, int key, uint64_t *ret) {
        uint64_t v;
        if (!s || !ret)
                return -EINVAL;
        if (!s->have_end)
                return -ENODATA;
        switch (key) {
        case RWKV_STAT_TOKENS_GENERATED:
                v = s->end.tokens_generated;
                break;
        case RWKV_STAT_PROMPT_TOKENS:
                v = s->end.prompt_tokens;
                break;
        case RWKV_STAT_STOP_REASON:
                v = s->end.stop_reason;
                break;
        case RWKV_STAT_QUEUE_USEC:
                v = s->end.queue_usec;
                break;
        case RWKV_STAT_PROMPT_USEC:
                v = s->end.prompt_usec;
                break;
        case RWKV_STAT_GENERATE_USEC:
                v = s->end.generate_usec;
                break;
        case RWKV_STAT_SESSION_TOKENS:
                v = s->end.session_tokens;
                break;
        default:
                return -EINVAL;
        }
        *ret = v;
        return 0;
}

RWKV_EXPORT int rwkv_stream_get_error(const RwkvStream *s) {
        return s ? s->error : 0;
}

RWKV_EXPORT const char *rwkv_stream_get_error_message(const RwkvStream *s) {
        return s ? s->error_message : "";
}

static int stream_fail(RwkvStream *s, int errnum, const char *msg) {
        s->finished = true;
        s->error = errnum;
        snprintf(s->error_message, sizeof(s->error_message), "%s", msg);
        return RWKV_EVENT_ERROR;
}

/* Turns the record in s->payload into the current event. */
static int stream_event(RwkvStream *s, const RingRecord *rec) {
        switch (rec->type) {
        case RING_RECORD_TEXT: {
                RingText t;
                if (rec->size < sizeof(t))
                        return -EBADMSG;
                memcpy(&t, s->payload, sizeof(t));
                s->token = t.token;
                s->time_ns = t.time_ns;
                s->text_len = rec->size - sizeof(t);
                s->payload[rec->size] = 0;
                return RWKV_EVENT_TEXT;
        }
        case RING_RECORD_END:
                if (rec->size < sizeof(RingEnd))
                        return -EBADMSG;
                memcpy(&s->end, s->payload, sizeof(RingEnd));
                s->have_end = true;
                s->finished = true;
                return RWKV_EVENT_END;
        case RING_RECORD_ERROR: {
                RingError e;
                size_t l;
                if (rec->size < sizeof(e))
                        return -EBADMSG;
                memcpy(&e, s->payload, sizeof(e));
                l = rec->size - sizeof(e);
                if (l > RING_ERROR_MESSAGE_MAX)
                        l = RING_ERROR_MESSAGE_MAX;
                memcpy(s->error_message, s->payload + sizeof(e), l);
                s->error_message[l] = 0;
                s->error = e.errnum > 0 && e.errnum < 4096 ? e.errnum : EIO;
                s->finished = true;
                return RWKV_EVENT_ERROR;
        }
        default:
                return 0; /* a record type of a later minor revision: skip it */
        }
}

/* Dispatches queued bus messages (the NameOwnerChanged match). */
static int stream_process_bus(RwkvStream *s) {
        int r;
        do
                r = sd_bus_process(s->bus, NULL);
        while (r > 0);
        if (r < 0 && r != -ECONNRESET && r != -ENOTCONN)
                return r;
        if (r < 0 || sd_bus_is_open(s->bus) <= 0)
                s->daemon_gone = true;
        return 0;
}

static int64_t now_ms(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Sleeps until the ring is ready for what, the daemon is gone, the timeout passes or a signal. */
static int stream_wait(RwkvStream *s, int what, int timeout_ms) {
        int64_t deadline = timeout_ms > 0 ? now_ms() + timeout_ms : 0;
        int r;

        for (;;) {
                r = ring_client_arm(&s->ring, what);
                if (r != 0)
                        return r < 0 ? r : 0;
                r = stream_process_bus(s);
                if (r < 0)
                        return r;
                if (s->daemon_gone)
                        return 0;
                if (timeout_ms == 0)
                        return -EAGAIN;

                struct pollfd p[2] = {
                        { .fd = s->ring.client_wakeup_fd, .events = POLLIN },
                        { .fd = sd_bus_get_fd(s->bus), .events = POLLIN },
                };
                int wait = -1;
                if (timeout_ms > 0) {
                        int64_t left = deadline - now_ms();
                        if (left <= 0)
                                return -ETIMEDOUT;
                        wait = (int)left;
                }
                r = poll(p, p[1].fd >= 0 ? 2 : 1, wait);
                if (r < 0)
                        return -errno;
        }
}

RWKV_EXPORT int rwkv_stream_read(RwkvStream *s, int timeout_ms) {
        RingRecord rec;
        int r, daemon_error = 0;

        if (!s)
                return -EINVAL;
        for (;;) {
                if (s->finished)
                        return 0;
                r = ring_client_next(&s->ring, &rec, s->payload, &daemon_error);
                if (r == 1) {
                        r = stream_event(s, &rec);
                        if (r == 0)
                                continue;
                        if (r < 0)
                                s->finished = true;
                        return r;
                }
                if (r == 0)
                        /* Closed without a last record: the daemon aborted the ring. */
                        return stream_fail(s, daemon_error ? daemon_error : EPIPE,
                                           daemon_error == EBADMSG ? "the ring's shared indices were corrupted"
                                                                   : "the daemon ended the stream");
                if (r != -EAGAIN) {
                        s->finished = true;
                        return r;
                }
                if (s->daemon_gone)
                        return stream_fail(s, ECONNRESET, "the daemon went away");
                r = stream_wait(s, RING_WAIT_READ, timeout_ms);
                if (r < 0)
                        return r;
        }
}

RWKV_EXPORT ssize_t rwkv_stream_write(RwkvStream *s, const void *buf, size_t len, int timeout_ms) {
        ssize_t n;
        int r;

        if (!s || (!buf && len > 0))
                return -EINVAL;
        if (!s->prompt_stream)
                return -EINVAL;
        if (len == 0)
                return 0;
        for (;;) {
                n = ring_client_write(&s->ring, buf, len);
                if (n != -EAGAIN)
                        return n;
                if (s->daemon_gone)
                        return -EPIPE;
                r = stream_wait(s, RING_WAIT_WRITE, timeout_ms);
                if (r < 0)
                        return r;
        }
}

RWKV_EXPORT int rwkv_stream_close_input(RwkvStream *s) {
        if (!s)
                return -EINVAL;
        if (!s->prompt_stream)
                return 0;
        return ring_client_close_input(&s->ring);
}

RWKV_EXPORT int rwkv_stream_cancel(RwkvStream *s) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        int r;

        if (!s)
                return -EINVAL;
        if (s->finished)
                return 0;
        r = sd_bus_call_method(s->bus, RWKV_BUS_NAME, RWKV_BUS_PATH, RWKV_BUS_INTERFACE, "Cancel", &error, NULL, "t",
                               s->job);
        sd_bus_error_free(&error);
        /* The job may have finished between our last read and the call. */
        if (r == -ESRCH)
                return 0;
        return r < 0 ? r : 0;
}
