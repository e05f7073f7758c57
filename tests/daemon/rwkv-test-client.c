/* rwkv-test-client.c: sd-bus load generators for the daemon tests (until the client library exists).
 *
 *   rwkv-test-client ADDRESS gen N MAX_TOKENS   N processes connect, then each starts one Generate()
 *                                               on a throw-away session at the same moment, reading
 *                                               its ring to the end record; prints the fastest and
 *                                               slowest call-to-end times: "min_usec max_usec ratio
 *                                               text_records"
 *   rwkv-test-client ADDRESS stream ID PROMPT MAX_TOKENS BYTES [PAUSE_MS]   run, with BYTES more
 *                                               prompt bytes streamed through the ring (prompt_stream),
 *                                               the input closed PAUSE_MS after the last of them
 *   rwkv-test-client ADDRESS hold ID MAX_TOKENS SECONDS   Generate() in session ID, then keep the
 *                                               ring unread for SECONDS (a job that stays busy)
 *   rwkv-test-client ADDRESS cancel-full ID MAX_TOKENS   Generate() in session ID without reading
 *                                               until the ring is full and the daemon waits for room,
 *                                               then Cancel() it, wait, and read the ring: the end
 *                                               record must come, marked cancelled ("end cancelled
 *                                               TEXT_RECORDS SESSION_TOKENS"); exit 1 when the daemon
 *                                               ended the ring without one
 *   rwkv-test-client ADDRESS export ID FILE      ExportSession into FILE
 *   rwkv-test-client ADDRESS import ID FILE      ImportSession from FILE as ID ("" keeps its id)
 *   rwkv-test-client ADDRESS run ID PROMPT MAX_TOKENS   one generation (greedy) in session ID,
 *                                               its text to stdout ("@N" as PROMPT: N bytes of text)
 *   rwkv-test-client ADDRESS stuck SECONDS       ImportSession from a pipe that is never closed
 *   rwkv-test-client ADDRESS fork-rename ID FORK NEW   ForkSession(ID, FORK, 0) and RenameSession(FORK,
 *                                               NEW) sent back to back, before either reply (the
 *                                               rename lands behind the fork's commit on the I/O
 *                                               queue); exit 0 when both succeed
 *   rwkv-test-client ADDRESS blast N            N malformed or hostile calls, then checks the daemon
 *                                               still answers Status()
 * Exit 0 on success. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <systemd/sd-bus.h>
#include <time.h>
#include <unistd.h>

#include "engine/common/macros.h"
#include "protocol/bus.h"
#include "protocol/ring.h"

static uint64_t now_usec(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000ULL + (uint64_t) ts.tv_nsec / 1000;
}

static int connect_bus(const char *address, sd_bus **ret) {
        sd_bus *bus = NULL;
        int r = sd_bus_new(&bus);
        if (r >= 0)
                r = sd_bus_set_address(bus, address);
        if (r >= 0)
                r = sd_bus_set_bus_client(bus, true);
        if (r >= 0)
                r = sd_bus_negotiate_fds(bus, true);
        if (r >= 0)
                r = sd_bus_start(bus);
        if (r < 0) {
                sd_bus_unref(bus);
                return r;
        }
        *ret = bus;
        return 0;
}

static unsigned arg_stream_pause_ms;

/* Feed n bytes of text into the ring's input direction, then close it. */
static int stream_prompt(RingShared *sh, RingBuf *in, int cw, int dw, size_t n) {
        static const char text[] = "the quick brown fox jumps over the lazy dog ";
        size_t done = 0;

        while (done < n) {
                int64_t room = ring_buf_free(in);
                if (room < 0)
                        return (int) room;
                if (room == 0) {
                        ring_sleep_prepare(&sh->client.flags);
                        if (ring_buf_free(in) == 0) {
                                struct pollfd p = { .fd = cw, .events = POLLIN };
                                if (poll(&p, 1, 30000) == 0)
                                        return -ETIMEDOUT;
                                uint64_t v;
                                (void) !read(cw, &v, sizeof(v));
                        }
                        ring_flag_clear(&sh->client.flags, RING_FLAG_NEED_WAKEUP);
                        continue;
                }
                size_t k = MIN((size_t) room, n - done);
                k = MIN(k, (size_t) 4096);
                char buf[4096];
                for (size_t i = 0; i < k; i++)
                        buf[i] = text[(done + i) % (sizeof(text) - 1)];
                ring_buf_write_at(in, 0, buf, k);
                ring_buf_produce(in, (uint32_t) k);
                done += k;
                if (ring_peer_needs_wakeup(&sh->daemon.flags)) {
                        uint64_t one = 1;
                        (void) !write(dw, &one, sizeof(one));
                }
        }
        if (arg_stream_pause_ms > 0) /* the daemon takes every byte before it sees the end */
                usleep(arg_stream_pause_ms * 1000);
        ring_flag_set(&sh->client.flags, RING_FLAG_INPUT_CLOSED);
        if (ring_peer_needs_wakeup(&sh->daemon.flags)) {
                uint64_t one = 1;
                (void) !write(dw, &one, sizeof(one));
        }
        return 0;
}

static size_t arg_stream_bytes;

/* One generation; returns tokens received or negative errno. */
static long generate_one(const char *address, const char *id, const char *prompt, uint32_t max_tokens, FILE *text,
                         int go_fd, uint64_t *ret_start) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        sd_bus *bus = NULL;
        int ring_fd, cw, dw, r;
        uint64_t job;
        long tokens = 0;
        int errnum = 0;

        r = connect_bus(address, &bus);
        if (r < 0)
                return r;
        if (go_fd >= 0) { /* every client connected first: they all start together */
                char c;
                if (read(go_fd, &c, 1) != 1)
                        return -EIO;
        }
        if (ret_start)
                *ret_start = now_usec();
        r = sd_bus_call_method(bus, RWKV_BUS_NAME, RWKV_BUS_PATH, RWKV_BUS_INTERFACE, "Generate", &error, &reply,
                               "ssa{sv}", id, prompt, 3, "max_tokens", "u", max_tokens, "temperature", "d", 0.0,
                               "prompt_stream", "b", arg_stream_bytes > 0);
        if (r < 0) {
                fprintf(stderr, "Generate: %s: %s\n", error.name, error.message);
                return r;
        }
        r = sd_bus_message_read(reply, "thhh", &job, &ring_fd, &cw, &dw);
        if (r < 0)
                return r;
        struct stat st;
        if (fstat(ring_fd, &st) < 0)
                return -errno;
        void *mem = mmap(NULL, (size_t) st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, ring_fd, 0);
        if (mem == MAP_FAILED)
                return -errno;
        RingHeader h;
        r = ring_header_validate(mem, (uint64_t) st.st_size, &h);
        if (r < 0)
                return r;
        RingShared *sh = mem;
        RingBuf out = { .data = (uint8_t *) mem + h.out_offset, .size = h.out_size, .head = &sh->client.out_head,
                        .tail = &sh->daemon.out_tail, .pos = 0 };
        RingBuf in = { .data = (uint8_t *) mem + h.in_offset, .size = h.in_size, .head = &sh->daemon.in_head,
                       .tail = &sh->client.in_tail, .pos = 0 };
        if (arg_stream_bytes > 0) {
                r = stream_prompt(sh, &in, cw, dw, arg_stream_bytes);
                if (r < 0)
                        return r;
        }
        for (;;) {
                RingRecord rec;
                r = ring_record_peek(&out, &rec);
                if (r < 0)
                        return r;
                if (r == 0) {
                        ring_sleep_prepare(&sh->client.flags);
                        if (ring_buf_fill(&out) != 0) {
                                ring_flag_clear(&sh->client.flags, RING_FLAG_NEED_WAKEUP);
                                continue;
                        }
                        struct pollfd p = { .fd = cw, .events = POLLIN };
                        if (poll(&p, 1, 30000) == 0)
                                return -ETIMEDOUT;
                        uint64_t v;
                        (void) !read(cw, &v, sizeof(v));
                        ring_flag_clear(&sh->client.flags, RING_FLAG_NEED_WAKEUP);
                        continue;
                }
                uint32_t type = rec.type;
                if (type == RING_RECORD_TEXT) {
                        tokens++;
                        if (text && rec.size > sizeof(RingText)) {
                                char buf[RING_RECORD_PAYLOAD_MAX];
                                ring_buf_read_at(&out, sizeof(RingRecord), buf, rec.size);
                                fwrite(buf + sizeof(RingText), 1, rec.size - sizeof(RingText), text);
                        }
                }
                if (type == RING_RECORD_ERROR && rec.size >= sizeof(RingError)) {
                        char buf[RING_RECORD_PAYLOAD_MAX + 1];
                        RingError e;
                        ring_buf_read_at(&out, sizeof(RingRecord), buf, rec.size);
                        memcpy(&e, buf, sizeof(e));
                        buf[rec.size] = 0;
                        errnum = e.errnum;
                        fprintf(stderr, "error record: %s (%s)\n", buf + sizeof(RingError), strerror(errnum));
                }
                ring_buf_consume(&out, ring_record_span(rec.size));
                if (ring_peer_needs_wakeup(&sh->daemon.flags)) {
                        uint64_t one = 1;
                        (void) !write(dw, &one, sizeof(one));
                }
                if (type == RING_RECORD_END)
                        break;
                if (type == RING_RECORD_ERROR)
                        return errnum > 0 ? -errnum : -EIO;
        }
        munmap(mem, (size_t) st.st_size);
        sd_bus_message_unref(reply);
        sd_bus_flush_close_unref(bus);
        return tokens;
}

static int cmd_gen(const char *address, int n, uint32_t max_tokens) {
        int fds[2], go[2];
        if (pipe(fds) < 0 || pipe(go) < 0)
                return 1;
        for (int i = 0; i < n; i++) {
                pid_t pid = fork();
                if (pid < 0)
                        return 1;
                if (pid == 0) {
                        uint64_t start = 0;
                        close(fds[0]);
                        close(go[1]);
                        long t = generate_one(address, "", "Once upon a time", max_tokens, NULL, go[0], &start);
                        /* each client's time from its own Generate() call to its end record */
                        uint64_t rec[2] = { now_usec() - start, (uint64_t) t };
                        (void) !write(fds[1], rec, sizeof(rec));
                        _exit(t < 0 ? 1 : 0);
                }
        }
        close(fds[1]);
        close(go[0]);
        usleep(500 * 1000); /* let the clients connect (test harness, not the daemon) */
        for (int i = 0; i < n; i++)
                (void) !write(go[1], "g", 1);
        close(go[1]);
        uint64_t mn = UINT64_MAX, mx = 0, tokens = 0;
        int failed = 0;
        for (int i = 0; i < n; i++) {
                uint64_t rec[2];
                if (read(fds[0], rec, sizeof(rec)) != sizeof(rec)) {
                        failed++;
                        continue;
                }
                if ((int64_t) rec[1] < 0) {
                        failed++;
                        continue;
                }
                mn = rec[0] < mn ? rec[0] : mn;
                mx = rec[0] > mx ? rec[0] : mx;
                tokens += rec[1];
        }
        for (int i = 0; i < n; i++) {
                int status;
                if (wait(&status) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
                        failed++;
        }
        if (failed) {
                fprintf(stderr, "%d of %d generations failed\n", failed, n);
                return 1;
        }
        printf("%llu %llu %.3f %llu\n", (unsigned long long) mn, (unsigned long long) mx, (double) mx / (double) mn,
               (unsigned long long) tokens);
        return 0;
}

static int cmd_blast(const char *address, int n) {
        sd_bus *bus = NULL;
        char *huge = malloc(1 << 20);
        int r;

        if (!huge || connect_bus(address, &bus) < 0)
                return 1;
        memset(huge, 'a', (1 << 20) - 1);
        huge[(1 << 20) - 1] = 0;
        for (int i = 0; i < n; i++) {
                sd_bus_error error = SD_BUS_ERROR_NULL;
                sd_bus_message *m = NULL;
                const char *method = NULL;
                switch (i % 10) {
                case 0: /* wrong signature */
                        r = sd_bus_message_new_method_call(bus, &m, RWKV_BUS_NAME, RWKV_BUS_PATH, RWKV_BUS_INTERFACE, "GetSession");
                        if (r >= 0)
                                r = sd_bus_message_append(m, "u", 42);
                        break;
                case 1: /* huge id: 1 MiB now and then, else 4 KiB (the bus copies each twice) */
                        method = "GetSession";
                        r = sd_bus_message_new_method_call(bus, &m, RWKV_BUS_NAME, RWKV_BUS_PATH, RWKV_BUS_INTERFACE, method);
                        if (r >= 0)
                                r = sd_bus_message_append(m, "s", i % 100 == 1 ? huge : huge + (1 << 20) - 4096);
                        break;
                case 2: /* unknown session */
                        r = sd_bus_message_new_method_call(bus, &m, RWKV_BUS_NAME, RWKV_BUS_PATH, RWKV_BUS_INTERFACE, "DeleteSession");
                        if (r >= 0)
                                r = sd_bus_message_append(m, "s", "no-such-session");
                        break;
                case 3: /* bad option types and unknown options */
                        r = sd_bus_message_new_method_call(bus, &m, RWKV_BUS_NAME, RWKV_BUS_PATH, RWKV_BUS_INTERFACE, "Generate");
                        if (r >= 0)
                                r = sd_bus_message_append(m, "ssa{sv}", "", "x", 2, "max_tokens", "s", "many", "bogus", "u", 1);
                        break;
                case 4: /* absurd sampling values */
                        r = sd_bus_message_new_method_call(bus, &m, RWKV_BUS_NAME, RWKV_BUS_PATH, RWKV_BUS_INTERFACE, "Generate");
                        if (r >= 0)
                                r = sd_bus_message_append(m, "ssa{sv}", "", "x", 2, "temperature", "d", -1e300, "top_k", "u", UINT32_MAX);
                        break;
                case 5: /* unknown job */
                        r = sd_bus_message_new_method_call(bus, &m, RWKV_BUS_NAME, RWKV_BUS_PATH, RWKV_BUS_INTERFACE, "Cancel");
                        if (r >= 0)
                                r = sd_bus_message_append(m, "t", (uint64_t) i * 7919);
                        break;
                case 6: /* a huge prompt for no session, huge title */
                        r = sd_bus_message_new_method_call(bus, &m, RWKV_BUS_NAME, RWKV_BUS_PATH, RWKV_BUS_INTERFACE, "CreateSession");
                        if (r >= 0)
                                r = sd_bus_message_append(m, "sa{sv}", "", 1, "title", "s", i % 100 == 6 ? huge : huge + (1 << 20) - 4096);
                        break;
                case 7: /* root-form names and hostile names */
                        r = sd_bus_message_new_method_call(bus, &m, RWKV_BUS_NAME, RWKV_BUS_PATH, RWKV_BUS_INTERFACE, "ForkSession");
                        if (r >= 0)
                                r = sd_bus_message_append(m, "ssu", "4294967296/x", "../../etc/passwd", 9);
                        break;
                case 8: /* unknown method */
                        r = sd_bus_message_new_method_call(bus, &m, RWKV_BUS_NAME, RWKV_BUS_PATH, RWKV_BUS_INTERFACE, "NoSuchMethod");
                        break;
                default: { /* a client that sends a call and disconnects before the reply */
                        sd_bus *b2 = NULL;
                        if (connect_bus(address, &b2) >= 0) {
                                sd_bus_message *c = NULL;
                                if (sd_bus_message_new_method_call(b2, &c, RWKV_BUS_NAME, RWKV_BUS_PATH, RWKV_BUS_INTERFACE,
                                                                   i % 20 == 9 ? "Generate" : "ListSessions") >= 0) {
                                        if (i % 20 == 9)
                                                (void) sd_bus_message_append(c, "ssa{sv}", "", "Hello", 1, "max_tokens", "u", 4);
                                        (void) sd_bus_send(b2, c, NULL);
                                        (void) sd_bus_flush(b2);
                                }
                                sd_bus_message_unref(c);
                                sd_bus_close_unref(b2);
                        }
                        continue;
                }
                }
                if (r < 0) {
                        fprintf(stderr, "building call %d failed: %s\n", i, strerror(-r));
                        return 1;
                }
                r = sd_bus_call(bus, m, 10 * 1000000ULL, &error, NULL);
                if (r >= 0) {
                        fprintf(stderr, "hostile call %d unexpectedly succeeded\n", i);
                        return 1;
                }
                if (r < 0 && sd_bus_error_has_name(&error, SD_BUS_ERROR_NO_REPLY)) {
                        fprintf(stderr, "call %d: no reply (daemon hung or died)\n", i);
                        return 1;
                }
                sd_bus_error_free(&error);
                sd_bus_message_unref(m);
        }
        sd_bus_error error = SD_BUS_ERROR_NULL;
        r = sd_bus_call_method(bus, RWKV_BUS_NAME, RWKV_BUS_PATH, RWKV_BUS_INTERFACE, "Status", &error, NULL, "");
        if (r < 0) {
                fprintf(stderr, "Status after the blast failed: %s\n", error.message);
                return 1;
        }
        printf("%d hostile calls, daemon still serving\n", n);
        free(huge);
        sd_bus_flush_close_unref(bus);
        return 0;
}

/* Connect and start a generation of "Hello" in session id; the reply holds the job and its fds. */
static int start_hello(const char *address, const char *id, uint32_t max_tokens, sd_bus **ret_bus,
                       sd_bus_message **ret_reply) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        int r;

        if (connect_bus(address, ret_bus) < 0)
                return -EIO;
        r = sd_bus_call_method(*ret_bus, RWKV_BUS_NAME, RWKV_BUS_PATH, RWKV_BUS_INTERFACE, "Generate", &error,
                               ret_reply, "ssa{sv}", id, "Hello", 1, "max_tokens", "u", max_tokens);
        if (r < 0)
                fprintf(stderr, "Generate: %s: %s\n", error.name, error.message);
        return r;
}

/* Start a generation in session id and keep its ring without reading it for `seconds`. */
static int cmd_hold(const char *address, const char *id, uint32_t max_tokens, unsigned seconds) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;

        if (start_hello(address, id, max_tokens, &bus, &reply) < 0)
                return 1;
        uint64_t job = 0;
        (void) sd_bus_message_read(reply, "t", &job);
        printf("started %llu\n", (unsigned long long) job);
        fflush(stdout);
        sleep(seconds);
        return 0;
}

static int cmd_cancel_full(const char *address, const char *id, uint32_t max_tokens) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        int ring_fd, cw, dw, r;
        uint64_t job;

        if (start_hello(address, id, max_tokens, &bus, &reply) < 0)
                return 1;
        if (sd_bus_message_read(reply, "thhh", &job, &ring_fd, &cw, &dw) < 0)
                return 1;
        struct stat st;
        if (fstat(ring_fd, &st) < 0)
                return 1;
        void *mem = mmap(NULL, (size_t) st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, ring_fd, 0);
        RingHeader h;
        if (mem == MAP_FAILED || ring_header_validate(mem, (uint64_t) st.st_size, &h) < 0)
                return 1;
        RingShared *sh = mem;
        RingBuf out = { .data = (uint8_t *) mem + h.out_offset, .size = h.out_size, .head = &sh->client.out_head,
                        .tail = &sh->daemon.out_tail, .pos = 0 };

        /* The daemon sleeps on a full ring: its NEED_WAKEUP flag is up with the ring nearly full. */
        uint64_t t0 = now_usec();
        while (!(rwkv_smp_load_acquire(&sh->daemon.flags) & RING_FLAG_NEED_WAKEUP) ||
               ring_buf_fill(&out) < (int64_t) h.out_size / 2) {
                if (rwkv_smp_load_acquire(&sh->daemon.flags) & RING_FLAG_CLOSED) {
                        fprintf(stderr, "the generation ended before the ring was full\n");
                        return 1;
                }
                if (now_usec() - t0 > 30000000) {
                        fprintf(stderr, "the ring did not fill\n");
                        return 1;
                }
                usleep(1000);
        }
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        r = sd_bus_call_method(bus, RWKV_BUS_NAME, RWKV_BUS_PATH, RWKV_BUS_INTERFACE, "Cancel", &error, NULL, "t", job);
        if (r < 0) {
                fprintf(stderr, "Cancel: %s: %s\n", error.name, error.message);
                return 1;
        }
        /* Give the compute thread time to meet the full ring with the cancel. */
        usleep(300000);

        long texts = 0;
        for (;;) {
                RingRecord rec;
                r = ring_record_peek(&out, &rec);
                if (r < 0)
                        return 1;
                if (r == 0) {
                        ring_sleep_prepare(&sh->client.flags);
                        if (ring_buf_fill(&out) != 0) {
                                ring_flag_clear(&sh->client.flags, RING_FLAG_NEED_WAKEUP);
                                continue;
                        }
                        if (rwkv_smp_load_acquire(&sh->daemon.flags) & RING_FLAG_CLOSED && ring_buf_fill(&out) == 0) {
                                fprintf(stderr, "the daemon ended the ring without an end record (error %d: %s) "
                                        "after %ld text records\n",
                                        sh->daemon.error, strerror(sh->daemon.error), texts);
                                return 1;
                        }
                        struct pollfd p = { .fd = cw, .events = POLLIN };
                        if (poll(&p, 1, 30000) == 0) {
                                fprintf(stderr, "no end record within 30 s\n");
                                return 1;
                        }
                        uint64_t v;
                        (void) !read(cw, &v, sizeof(v));
                        ring_flag_clear(&sh->client.flags, RING_FLAG_NEED_WAKEUP);
                        continue;
                }
                char buf[RING_RECORD_PAYLOAD_MAX];
                ring_buf_read_at(&out, sizeof(RingRecord), buf, rec.size);
                ring_buf_consume(&out, ring_record_span(rec.size));
                if (ring_peer_needs_wakeup(&sh->daemon.flags)) {
                        uint64_t one = 1;
                        (void) !write(dw, &one, sizeof(one));
                }
                if (rec.type == RING_RECORD_TEXT)
                        texts++;
                else if (rec.type == RING_RECORD_ERROR) {
                        fprintf(stderr, "error record after %ld text records\n", texts);
                        return 1;
                } else if (rec.type == RING_RECORD_END && rec.size >= sizeof(RingEnd)) {
                        RingEnd e;
                        memcpy(&e, buf, sizeof(e));
                        printf("end %s %ld %llu\n",
                               e.stop_reason == RING_STOP_CANCELLED ? "cancelled" : "not-cancelled", texts,
                               (unsigned long long) e.session_tokens);
                        munmap(mem, (size_t) st.st_size);
                        return e.stop_reason == RING_STOP_CANCELLED ? 0 : 1;
                }
        }
}

/* ExportSession(id) into file, or ImportSession(file) as id; prints the imported id. */
static int cmd_transfer(const char *address, bool export, const char *id, const char *path) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        sd_bus *bus = NULL;
        int fd, r, ret = 1;

        if (connect_bus(address, &bus) < 0)
                return 1;
        fd = export ? open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600) : open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
                perror(path);
                goto finish;
        }
        if (export)
                r = sd_bus_call_method(bus, RWKV_BUS_NAME, RWKV_BUS_PATH, RWKV_BUS_INTERFACE, "ExportSession", &error,
                                       &reply, "sh", id, fd);
        else
                r = sd_bus_call_method(bus, RWKV_BUS_NAME, RWKV_BUS_PATH, RWKV_BUS_INTERFACE, "ImportSession", &error,
                                       &reply, "hs", fd, id);
        if (r < 0) {
                fprintf(stderr, "%s: %s\n", error.name, error.message);
                goto finish;
        }
        if (!export) {
                const char *got;
                if (sd_bus_message_read(reply, "s", &got) < 0)
                        goto finish;
                printf("%s\n", got);
        }
        ret = 0;
finish:
        /* Freed on the error paths too: the tests expect named errors here, under LeakSanitizer. */
        if (fd >= 0)
                close(fd);
        sd_bus_error_free(&error);
        sd_bus_message_unref(reply);
        sd_bus_flush_close_unref(bus);
        return ret;
}

/* ImportSession from a pipe whose write end stays open for `seconds` (a client that never finishes
 * sending): the daemon must keep serving everyone else meanwhile. */
static int cmd_stuck(const char *address, unsigned seconds) {
        sd_bus *bus = NULL;
        sd_bus_message *m = NULL;
        int p[2];

        if (connect_bus(address, &bus) < 0 || pipe2(p, O_CLOEXEC) < 0)
                return 1;
        if (sd_bus_message_new_method_call(bus, &m, RWKV_BUS_NAME, RWKV_BUS_PATH, RWKV_BUS_INTERFACE, "ImportSession") < 0 ||
            sd_bus_message_append(m, "hs", p[0], "stuck") < 0 || sd_bus_send(bus, m, NULL) < 0 || sd_bus_flush(bus) < 0)
                return 1;
        (void) !write(p[1], "partial", 7);
        printf("sent\n");
        fflush(stdout);
        sleep(seconds);
        sd_bus_message_unref(m);
        sd_bus_flush_close_unref(bus);
        return 0;
}

static int cmd_fork_rename(const char *address, const char *id, const char *fork, const char *new_id) {
        sd_bus *bus = NULL;
        sd_bus_message *m[2] = {}, *reply = NULL;
        uint64_t cookie[2];
        int ret = 0;

        if (connect_bus(address, &bus) < 0)
                return 1;
        for (int i = 0; i < 2; i++) {
                int r = sd_bus_message_new_method_call(bus, &m[i], RWKV_BUS_NAME, RWKV_BUS_PATH, RWKV_BUS_INTERFACE,
                                                       i == 0 ? "ForkSession" : "RenameSession");
                if (r >= 0)
                        r = i == 0 ? sd_bus_message_append(m[i], "ssu", id, fork, 0u)
                                   : sd_bus_message_append(m[i], "ss", fork, new_id);
                if (r >= 0)
                        r = sd_bus_send(bus, m[i], &cookie[i]);
                if (r < 0) {
                        fprintf(stderr, "sending call %d: %s\n", i, strerror(-r));
                        return 1;
                }
        }
        if (sd_bus_flush(bus) < 0)
                return 1;
        /* both calls are on the wire: now collect their replies (unhandled messages come back) */
        for (int got = 0; got < 2;) {
                int r = sd_bus_process(bus, &reply);
                if (r < 0)
                        return 1;
                if (r == 0) {
                        if (sd_bus_wait(bus, 10 * 1000000ULL) <= 0)
                                return 1;
                        continue;
                }
                if (!reply)
                        continue;
                uint64_t rc;
                if (sd_bus_message_get_reply_cookie(reply, &rc) >= 0 && (rc == cookie[0] || rc == cookie[1])) {
                        const sd_bus_error *e = sd_bus_message_get_error(reply);
                        if (e) {
                                fprintf(stderr, "%s: %s: %s\n", rc == cookie[0] ? "ForkSession" : "RenameSession", e->name,
                                        e->message);
                                ret = 1;
                        }
                        got++;
                }
                reply = sd_bus_message_unref(reply);
        }
        sd_bus_message_unref(m[0]);
        sd_bus_message_unref(m[1]);
        sd_bus_flush_close_unref(bus);
        return ret;
}

int main(int argc, char *argv[]) {
        if (argc == 4 && strcmp(argv[2], "stuck") == 0)
                return cmd_stuck(argv[1], (unsigned) atoi(argv[3]));
        if ((argc == 7 || argc == 8) && strcmp(argv[2], "stream") == 0) {
                /* like run, with STREAM_BYTES more prompt bytes through the ring's input direction */
                arg_stream_bytes = strtoull(argv[6], NULL, 10);
                if (argc == 8)
                        arg_stream_pause_ms = (unsigned)strtoul(argv[7], NULL, 10);
                argc = 6;
                argv[2] = (char *) "run";
        }
        if (argc == 6 && strcmp(argv[2], "run") == 0) {
                const char *prompt = argv[4];
                char *big = NULL;
                if (prompt[0] == '@') { /* "@N": a prompt of N bytes of text */
                        size_t n = strtoull(prompt + 1, NULL, 10);
                        big = malloc(n + 1);
                        if (!big)
                                return 1;
                        for (size_t i = 0; i < n; i++)
                                big[i] = "the quick brown fox jumps over the lazy dog "[i % 44];
                        big[n] = 0;
                        prompt = big;
                }
                uint64_t t0 = now_usec();
                long t = generate_one(argv[1], argv[3], prompt, (uint32_t) atoi(argv[5]), stdout, -1, NULL);
                fprintf(stderr, "elapsed_usec %llu\n", (unsigned long long) (now_usec() - t0));
                free(big);
                if (t < 0) {
                        fprintf(stderr, "generation failed: %s\n", strerror((int) -t));
                        return 1;
                }
                return 0;
        }
        if (argc == 5 && (strcmp(argv[2], "export") == 0 || strcmp(argv[2], "import") == 0))
                return cmd_transfer(argv[1], argv[2][0] == 'e', argv[3], argv[4]);
        if (argc == 5 && strcmp(argv[2], "cancel-full") == 0)
                return cmd_cancel_full(argv[1], argv[3], (uint32_t) atoi(argv[4]));
        if (argc == 6 && strcmp(argv[2], "hold") == 0)
                return cmd_hold(argv[1], argv[3], (uint32_t) atoi(argv[4]), (unsigned) atoi(argv[5]));
        if (argc == 5 && strcmp(argv[2], "gen") == 0)
                return cmd_gen(argv[1], atoi(argv[3]), (uint32_t) atoi(argv[4]));
        if (argc == 6 && strcmp(argv[2], "fork-rename") == 0)
                return cmd_fork_rename(argv[1], argv[3], argv[4], argv[5]);
        if (argc == 4 && strcmp(argv[2], "blast") == 0)
                return cmd_blast(argv[1], atoi(argv[3]));
        fprintf(stderr, "usage: %s ADDRESS gen N MAX_TOKENS | ADDRESS blast N\n", argv[0]);
        return 2;
}
