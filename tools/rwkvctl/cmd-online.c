/* cmd-online.c: the verbs that go through the daemon (generate, chat, session, status), built on the
 * public librwkv-client API only. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <json.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <editline/readline.h>

#include <rwkv/client.h>

#include "engine/common/macros.h"
#include "engine/text/stop.h"
#include "protocol/bus.h"
#include "tools/rwkvctl/output-file.h"
#include "tools/rwkvctl/rwkvctl.h"

#define STDIN_CHUNK (64 * 1024)
/* A prompt on stdin up to this size (valid UTF-8) goes in the Generate() call; a longer one goes
 * entirely through the ring (ingested as it arrives), with an empty prompt argument. */
#define STDIN_FIRST (4 * 1024)

static volatile sig_atomic_t interrupted = 0;

static void on_sigint(int sig) {
        interrupted = 1;
}

/* SIGINT without SA_RESTART: a blocking read returns -EINTR and the verb cancels the generation. */
static void catch_sigint(bool on) {
        struct sigaction sa = { .sa_handler = on ? on_sigint : SIG_DFL };
        sigemptyset(&sa.sa_mask);
        sigaction(SIGINT, &sa, NULL);
}

/* Prints why on failure (one line; the verb then exits 1) and returns a negative errno. */
static int connect_bus(RwkvClient **ret) {
        int kind = arg_bus == BUS_USER ? RWKV_BUS_USER : arg_bus == BUS_ADDRESS ? RWKV_BUS_ADDRESS : RWKV_BUS_SYSTEM;
        int r = rwkv_client_new(kind, arg_address, ret);
        if (r >= 0)
                return 0;
        if (kind == RWKV_BUS_ADDRESS)
                fail("cannot connect to the bus at '%s': %s", arg_address ? arg_address : "", strerror(-r));
        else if (kind == RWKV_BUS_USER && r == -ENOMEDIUM)
                fail("cannot connect to the user bus: neither $DBUS_SESSION_BUS_ADDRESS nor $XDG_RUNTIME_DIR is set");
        else
                fail("cannot connect to the %s bus: %s", kind == RWKV_BUS_USER ? "user" : "system", strerror(-r));
        return r;
}

/* One line: what failed, and the daemon's words for it. */
static int fail_call(RwkvClient *c, const char *what, int r) {
        const char *m = rwkv_client_get_error_message(c);
        /* ServiceUnknown / NameHasNoOwner: the bus's words do not say the daemon is not running. */
        if (r == -EHOSTUNREACH || r == -ENXIO)
                return fail("%s: rwkvd is not running on the %s bus (%s)", what,
                            arg_bus == BUS_USER      ? "user"
                            : arg_bus == BUS_ADDRESS ? "given"
                                                     : "system",
                            m && *m ? m : strerror(-r));
        return fail("%s: %s", what, m && *m ? m : strerror(-r));
}

static void json_print(struct json_object *o) {
        puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
        json_object_put(o);
}

static bool parse_u64(const char *s, uint64_t *ret) {
        char *end;
        errno = 0;
        if (!s || !*s || *s == '-')
                return false;
        unsigned long long v = strtoull(s, &end, 0);
        if (errno || *end)
                return false;
        *ret = v;
        return true;
}

static bool parse_u32(const char *s, uint32_t *ret) {
        uint64_t v;
        if (!parse_u64(s, &v) || v > UINT32_MAX)
                return false;
        *ret = (uint32_t)v;
        return true;
}

static bool parse_double(const char *s, double *ret) {
        char *end;
        errno = 0;
        if (!s || !*s)
                return false;
        double v = strtod(s, &end);
        if (errno || *end)
                return false;
        *ret = v;
        return true;
}

/* Length of the longest prefix of s that is valid UTF-8 without NUL (what a D-Bus string may hold);
 * an incomplete sequence at the end is left out. */
static size_t utf8_valid_prefix(const uint8_t *s, size_t n) {
        size_t i = 0;
        while (i < n) {
                uint8_t c = s[i];
                size_t len;
                uint32_t cp;
                if (c == 0)
                        break;
                if (c < 0x80) {
                        i++;
                        continue;
                }
                if (c >= 0xc2 && c <= 0xdf)
                        len = 2, cp = c & 0x1f;
                else if (c >= 0xe0 && c <= 0xef)
                        len = 3, cp = c & 0x0f;
                else if (c >= 0xf0 && c <= 0xf4)
                        len = 4, cp = c & 0x07;
                else
                        break;
                if (i + len > n)
                        break;
                size_t k;
                for (k = 1; k < len; k++) {
                        if ((s[i + k] & 0xc0) != 0x80)
                                break;
                        cp = (cp << 6) | (s[i + k] & 0x3f);
                }
                if (k < len || (len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
                    (len == 4 && (cp < 0x10000 || cp > 0x10ffff)))
                        break;
                i += len;
        }
        return i;
}

/* A D-Bus string must be valid UTF-8: name the argument that is not, instead of passing on the
 * bus library's bare "Invalid argument". 0, or -EINVAL after the message (invalid usage: exit 2). */
static int check_utf8(const char *verb, const char *what, const char *s) {
        size_t n = strlen(s);
        if (utf8_valid_prefix((const uint8_t *)s, n) == n)
                return 0;
        fail("%s: %s is not valid UTF-8", verb, what);
        return -EINVAL;
}

/* A session id given on the command line: CreateSession("") would make the daemon pick an id that
 * is never printed, and each such call would store another empty session. */
static int check_id(const char *verb, const char *what, const char *id) {
        if (!*id) {
                fail("%s: %s is empty (session ids are 1 to 64 characters)", verb, what);
                return -EINVAL;
        }
        int r = check_utf8(verb, what, id);
        if (r < 0)
                return r;
        /* The daemon's rule (org.rwkvd.Daemon1(5)), checked here too so that a typo is a usage error
         * before any connection: [UID/]ID, ID 1 to 64 of [A-Za-z0-9._-], not starting with '.'
         * (UID/ names another user's session, for root). */
        const char *p = id;
        size_t digits = strspn(p, "0123456789");
        if (digits > 0 && p[digits] == '/')
                p += digits + 1;
        if (!rwkv_session_id_valid(p)) {
                fail("%s: %s '%s' is not a session id (1 to 64 characters of A-Z a-z 0-9 . _ -, not starting with "
                     "'.')",
                     verb, what, id);
                return -EINVAL;
        }
        return 0;
}

static const char *stop_reason_name(uint64_t r) {
        switch (r) {
        case RWKV_STOP_MAX_TOKENS:
                return "max_tokens";
        case RWKV_STOP_STOP_STRING:
                return "stop_string";
        case RWKV_STOP_END_TOKEN:
                return "end_token";
        case RWKV_STOP_CANCELLED:
                return "cancelled";
        case RWKV_STOP_PROMPT_ONLY:
                return "prompt_only";
        default:
                return "unknown";
        }
}

/* The sampling options shared by generate and chat. */
typedef struct SamplingArgs {
        RwkvGenerateOptions *options;
        const char *session;
        unsigned n_stops;
} SamplingArgs;

enum {
        OPT_SESSION = 0x100,
        OPT_MAX_TOKENS,
        OPT_TEMPERATURE,
        OPT_TOP_P,
        OPT_TOP_K,
        OPT_MIN_P,
        OPT_PRESENCE_PENALTY,
        OPT_FREQUENCY_PENALTY,
        OPT_PENALTY_DECAY,
        OPT_SEED,
        OPT_STOP,
        OPT_SYSTEM,
        OPT_JSON,
};

#define SAMPLING_OPTIONS                                                                                               \
        { "session", required_argument, NULL, OPT_SESSION },                                                           \
                { "max-tokens", required_argument, NULL, OPT_MAX_TOKENS },                                             \
                { "temperature", required_argument, NULL, OPT_TEMPERATURE },                                           \
                { "top-p", required_argument, NULL, OPT_TOP_P }, { "top-k", required_argument, NULL, OPT_TOP_K },      \
                { "min-p", required_argument, NULL, OPT_MIN_P },                                                       \
                { "presence-penalty", required_argument, NULL, OPT_PRESENCE_PENALTY },                                 \
                { "frequency-penalty", required_argument, NULL, OPT_FREQUENCY_PENALTY },                               \
                { "penalty-decay", required_argument, NULL, OPT_PENALTY_DECAY },                                       \
                { "seed", required_argument, NULL, OPT_SEED }, { "stop", required_argument, NULL, OPT_STOP }, {        \
                "json", no_argument, NULL, OPT_JSON                                                                    \
        }

/* 1: handled, 0: not a sampling option, < 0: error already printed (exit 2). */
static int sampling_option(SamplingArgs *a, int c, const char *verb) {
        uint32_t u;
        uint64_t t;
        double d;
        int r = 0;

        switch (c) {
        case OPT_SESSION:
                if (check_id(verb, "the --session id", optarg) < 0)
                        return -1;
                a->session = optarg;
                return 1;
        case OPT_MAX_TOKENS:
                if (!parse_u32(optarg, &u))
                        return fail("%s: invalid --max-tokens '%s'", verb, optarg), -1;
                r = rwkv_generate_options_set_max_tokens(a->options, u);
                break;
        case OPT_TEMPERATURE:
                if (!parse_double(optarg, &d) || (r = rwkv_generate_options_set_temperature(a->options, d)) < 0)
                        return fail("%s: invalid --temperature '%s'", verb, optarg), -1;
                break;
        case OPT_TOP_P:
                if (!parse_double(optarg, &d) || (r = rwkv_generate_options_set_top_p(a->options, d)) < 0)
                        return fail("%s: invalid --top-p '%s' (0 < P <= 1)", verb, optarg), -1;
                break;
        case OPT_MIN_P:
                if (!parse_double(optarg, &d) || (r = rwkv_generate_options_set_min_p(a->options, d)) < 0)
                        return fail("%s: invalid --min-p '%s' (0 <= P < 1)", verb, optarg), -1;
                break;
        case OPT_PRESENCE_PENALTY:
                if (!parse_double(optarg, &d) || (r = rwkv_generate_options_set_presence_penalty(a->options, d)) < 0)
                        return fail("%s: invalid --presence-penalty '%s'", verb, optarg), -1;
                break;
        case OPT_FREQUENCY_PENALTY:
                if (!parse_double(optarg, &d) || (r = rwkv_generate_options_set_frequency_penalty(a->options, d)) < 0)
                        return fail("%s: invalid --frequency-penalty '%s'", verb, optarg), -1;
                break;
        case OPT_PENALTY_DECAY:
                if (!parse_double(optarg, &d) || (r = rwkv_generate_options_set_penalty_decay(a->options, d)) < 0)
                        return fail("%s: invalid --penalty-decay '%s' (0 <= D <= 1)", verb, optarg), -1;
                break;
        case OPT_TOP_K:
                if (!parse_u32(optarg, &u))
                        return fail("%s: invalid --top-k '%s'", verb, optarg), -1;
                r = rwkv_generate_options_set_top_k(a->options, u);
                break;
        case OPT_SEED:
                if (!parse_u64(optarg, &t))
                        return fail("%s: invalid --seed '%s'", verb, optarg), -1;
                r = rwkv_generate_options_set_seed(a->options, t);
                break;
        case OPT_STOP:
                if (!*optarg)
                        return fail("%s: the --stop string is empty", verb), -1;
                if (check_utf8(verb, "the --stop string", optarg) < 0)
                        return -1;
                /* the protocol's caps (a daemon may set lower ones in rwkvd.conf: those it refuses) */
                if (strlen(optarg) > STOP_MAX_BYTES)
                        return fail("%s: a --stop string has at most %d bytes", verb, STOP_MAX_BYTES), -1;
                if (++a->n_stops > STOP_MAX_SEQUENCES)
                        return fail("%s: at most %d --stop strings", verb, STOP_MAX_SEQUENCES), -1;
                r = rwkv_generate_options_add_stop(a->options, optarg, strlen(optarg));
                if (r < 0)
                        return fail("%s: invalid --stop '%s': %s", verb, optarg, strerror(-r)), -1;
                break;
        case OPT_JSON:
                arg_json = true;
                return 1;
        default:
                return 0;
        }
        if (r < 0)
                return fail("%s: %s", verb, strerror(-r)), -1;
        return 1;
}

/* --session: create it unless the caller already has one of that name. */
static int ensure_session(RwkvClient *c, const char *id, bool *ret_created) {
        int r = rwkv_session_create(c, id, NULL, NULL);
        if (ret_created)
                *ret_created = r >= 0;
        if (r == -EEXIST)
                return 0;
        if (r < 0)
                return fail_call(c, "session", r);
        return 0;
}

typedef struct StreamResult {
        uint64_t tokens;
        uint64_t stop_reason;
        bool cancelled;
        bool ends_with_newline;
        bool daemon_error; /* the stream ended with the daemon's ERROR record (already reported) */
} StreamResult;

static void text_json(const char *text, size_t len, uint32_t token) {
        struct json_object *o = json_object_new_object();
        if (token != RWKV_TOKEN_NONE)
                json_object_object_add(o, "token", json_object_new_int64(token));
        json_object_object_add(o, "text", json_object_new_string_len(text, (int)len));
        json_print(o);
}

static void end_json(RwkvStream *s) {
        static const struct {
                int key;
                const char *name;
        } stats[] = {
                { RWKV_STAT_TOKENS_GENERATED, "tokens_generated" },
                { RWKV_STAT_PROMPT_TOKENS, "prompt_tokens" },
                { RWKV_STAT_QUEUE_USEC, "queue_usec" },
                { RWKV_STAT_PROMPT_USEC, "prompt_usec" },
                { RWKV_STAT_GENERATE_USEC, "generate_usec" },
                { RWKV_STAT_SESSION_TOKENS, "session_tokens" },
        };
        struct json_object *o = json_object_new_object();
        uint64_t v = 0;
        json_object_object_add(o, "end", json_object_new_boolean(1));
        (void)rwkv_stream_get_stat(s, RWKV_STAT_STOP_REASON, &v);
        json_object_object_add(o, "stop_reason", json_object_new_string(stop_reason_name(v)));
        for (size_t i = 0; i < sizeof(stats) / sizeof(stats[0]); i++)
                if (rwkv_stream_get_stat(s, stats[i].key, &v) >= 0)
                        json_object_object_add(o, stats[i].name, json_object_new_int64((int64_t)v));
        json_print(o);
}

/* Prints the stream's text to stdout as it arrives (flushing whenever the ring runs dry), cancels
 * on Ctrl-C, and returns 0 at the end record or an exit status after printing the error. */
static int follow_stream(RwkvClient *c, RwkvStream *s, const char *verb, StreamResult *res) {
        bool cancel_sent = false;
        int r;

        *res = (StreamResult){};
        for (;;) {
                if (interrupted && !cancel_sent) {
                        r = rwkv_stream_cancel(s);
                        if (r < 0)
                                return fail("%s: cancel: %s", verb, strerror(-r));
                        cancel_sent = true;
                        res->cancelled = true;
                }
                r = rwkv_stream_read(s, 0);
                if (r == -EAGAIN) {
                        fflush(stdout);
                        r = rwkv_stream_read(s, -1);
                }
                if (r == -EINTR)
                        continue;
                if (r == RWKV_EVENT_TEXT) {
                        size_t len;
                        const char *text = rwkv_stream_get_text(s, &len);
                        if (arg_json)
                                text_json(text, len, rwkv_stream_get_token(s));
                        else
                                fwrite(text, 1, len, stdout);
                        if (len > 0)
                                res->ends_with_newline = text[len - 1] == '\n';
                        continue;
                }
                if (r == RWKV_EVENT_END) {
                        (void)rwkv_stream_get_stat(s, RWKV_STAT_TOKENS_GENERATED, &res->tokens);
                        (void)rwkv_stream_get_stat(s, RWKV_STAT_STOP_REASON, &res->stop_reason);
                        if (res->stop_reason == RWKV_STOP_CANCELLED)
                                res->cancelled = true;
                        if (arg_json)
                                end_json(s);
                        fflush(stdout);
                        if (res->cancelled && !cancel_sent && !interrupted) {
                                /* Not our Ctrl-C: the daemon stopping, or a Cancel() from another
                                 * client. The text is cut short; a script must not take it for
                                 * a whole answer. */
                                res->daemon_error = true;
                                return fail("%s: the daemon cancelled the generation after %" PRIu64
                                            " tokens (it is shutting down, or another client cancelled it)",
                                            verb, res->tokens);
                        }
                        return 0;
                }
                fflush(stdout);
                if (r == RWKV_EVENT_ERROR && cancel_sent && rwkv_stream_get_error(s) == ECANCELED) {
                        /* Our cancel met a full ring: the daemon ends such a stream without an end
                         * record (it cannot tell a slow reader from a stuck one). That is the
                         * cancellation asked for, not a failure; no statistics came with it. */
                        res->cancelled = true;
                        res->stop_reason = RWKV_STOP_CANCELLED;
                        if (arg_json) {
                                struct json_object *o = json_object_new_object();
                                json_object_object_add(o, "end", json_object_new_boolean(true));
                                json_object_object_add(o, "stop_reason", json_object_new_string("cancelled"));
                                json_print(o);
                        }
                        fflush(stdout);
                        return 0;
                }
                if (r == RWKV_EVENT_ERROR) {
                        const char *m = rwkv_stream_get_error_message(s);
                        res->daemon_error = true;
                        if (arg_json) {
                                struct json_object *o = json_object_new_object();
                                json_object_object_add(o, "error", json_object_new_string(m));
                                json_object_object_add(o, "errno", json_object_new_int(rwkv_stream_get_error(s)));
                                json_print(o);
                        }
                        return fail("%s: %s", verb, *m ? m : strerror(rwkv_stream_get_error(s)));
                }
                return fail("%s: reading the stream: %s", verb, strerror(r < 0 ? -r : EPIPE));
        }
        (void)c;
}

/* Reads up to size bytes from stdin (fewer only at end of input). */
static ssize_t read_full(uint8_t *buf, size_t size, bool *ret_eof) {
        size_t got = 0;
        *ret_eof = false;
        while (got < size) {
                ssize_t n = read(STDIN_FILENO, buf + got, size - got);
                if (n < 0) {
                        if (errno == EINTR && !interrupted)
                                continue;
                        return -errno;
                }
                if (n == 0) {
                        *ret_eof = true;
                        break;
                }
                got += (size_t)n;
        }
        return (ssize_t)got;
}

/* Sends len bytes through the ring. 0: sent; 1: stopped early (Ctrl-C, or the daemon ended the
 * generation: its events say why); -1: a local failure, already reported. */
static int ring_send(RwkvStream *s, const uint8_t *buf, size_t len, const char *verb) {
        for (size_t off = 0; off < len;) {
                ssize_t w = rwkv_stream_write(s, buf + off, len - off, -1);
                if (w == -EINTR) {
                        if (interrupted)
                                return 1;
                        continue;
                }
                if (w == -EPIPE)
                        return 1;
                if (w < 0)
                        return -fail("%s: sending the prompt: %s", verb, strerror((int)-w));
                off += (size_t)w;
        }
        return 0;
}

/* Streams stdin into the ring in fixed chunks (constant memory for any prompt size), starting with
 * the pending bytes already read. Returns as ring_send(). */
static int stream_stdin(RwkvStream *s, const uint8_t *pending, size_t pending_len, bool eof, const char *verb) {
        static uint8_t buf[STDIN_CHUNK];
        int r = ring_send(s, pending, pending_len, verb);
        if (r != 0)
                return r;
        while (!eof) {
                ssize_t n = read_full(buf, sizeof(buf), &eof);
                if (n == -EINTR)
                        return 1; /* the caller cancels */
                if (n < 0)
                        return -fail("%s: reading stdin: %s", verb, strerror((int)-n));
                r = ring_send(s, buf, (size_t)n, verb);
                if (r != 0)
                        return r;
        }
        r = rwkv_stream_close_input(s);
        if (r < 0)
                return -fail("%s: %s", verb, strerror(-r));
        return 0;
}

static void progress_summary(const StreamResult *res, double seconds) {
        if (!isatty(STDERR_FILENO) || arg_json)
                return;
        fprintf(stderr, "%s[%" PRIu64 " tokens, %.1f tokens/s, %s]\n", res->ends_with_newline ? "" : "\n", res->tokens,
                seconds > 0 ? (double)res->tokens / seconds : 0.0, stop_reason_name(res->stop_reason));
}

static double now_sec(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int verb_generate(int argc, char *argv[]) {
        static const struct option options[] = {
                SAMPLING_OPTIONS,
                { "help", no_argument, NULL, 'h' },
                {},
        };
        SamplingArgs a = {};
        RwkvClient *c = NULL;
        RwkvStream *s = NULL;
        StreamResult res;
        int ret = 1, r, opt;

        r = rwkv_generate_options_new(&a.options);
        if (r < 0)
                return fail("generate: %s", strerror(-r));
        while ((opt = getopt_long(argc, argv, "h", options, NULL)) >= 0) {
                if (opt == 'h') {
                        printf("rwkvctl generate [--session ID] [--max-tokens N] [--temperature T] [--top-p P]\n"
                               "                 [--top-k K] [--min-p P] [--presence-penalty X] [--frequency-penalty X]\n"
                               "                 [--penalty-decay D] [--seed S] [--stop STR]... [--json] [PROMPT]\n"
                               "Without PROMPT the prompt is read from stdin (streamed, any size).\n");
                        ret = 0;
                        goto finish;
                }
                r = sampling_option(&a, opt, "generate");
                if (r < 0 || r == 0) {
                        ret = 2;
                        goto finish;
                }
        }
        if (argc - optind > 1) {
                ret = fail_usage("generate: one PROMPT argument at most (quote it)");
                goto finish;
        }
        const char *prompt = optind < argc ? argv[optind] : NULL;
        if (prompt && check_utf8("generate", "the prompt", prompt) < 0) {
                /* (On stdin any bytes go: they stream through the ring, not a D-Bus string.) */
                ret = 2;
                goto finish;
        }
        size_t prompt_len = prompt ? strlen(prompt) : 0;
        /* From stdin: a short prompt goes in the Generate() call; a longer one (or one that is not
         * valid UTF-8, which a D-Bus string cannot carry) streams whole through the ring. */
        static uint8_t first[STDIN_FIRST + 1];
        size_t first_len = 0;
        bool eof = true, streaming = false;
        if (!prompt) {
                ssize_t n = read_full(first, STDIN_FIRST, &eof);
                if (n < 0) {
                        ret = fail("generate: reading stdin: %s", strerror((int)-n));
                        goto finish;
                }
                first_len = (size_t)n;
                prompt_len = utf8_valid_prefix(first, first_len);
                streaming = !eof || prompt_len < first_len;
                first[first_len] = 0;
                if (streaming) {
                        (void)rwkv_generate_options_set_prompt_stream(a.options, 1);
                        prompt_len = 0;
                }
                prompt = (const char *)first;
        }

        if (connect_bus(&c) < 0)
                goto finish;
        if (a.session && ensure_session(c, a.session, NULL) != 0)
                goto finish;

        catch_sigint(true);
        double t0 = now_sec();
        r = rwkv_generate_start(c, a.session, prompt, prompt_len, a.options, &s);
        if (r < 0) {
                fail_call(c, "generate", r);
                goto finish;
        }
        if (streaming && stream_stdin(s, first, first_len, eof, "generate") < 0)
                goto finish;
        if (follow_stream(c, s, "generate", &res) != 0)
                goto finish;
        progress_summary(&res, now_sec() - t0);
        ret = res.cancelled && interrupted ? 130 : 0;

finish:
        catch_sigint(false);
        rwkv_stream_free(s);
        rwkv_client_free(c);
        rwkv_generate_options_free(a.options);
        return ret;
}

/* ---- chat ---- */

/* The user's line as one paragraph of the RWKV World chat format: "\n\n" ends a turn, so blank
 * lines are collapsed into single newlines; surrounding whitespace goes. */
static char *chat_clean(const char *in) {
        size_t n = strlen(in);
        char *out = malloc(n + 1), *p = out;
        if (!out)
                return NULL;
        while (*in == ' ' || *in == '\t' || *in == '\n' || *in == '\r')
                in++;
        for (; *in; in++) {
                if (*in == '\r')
                        continue;
                if (*in == '\n' && p > out && p[-1] == '\n')
                        continue;
                *p++ = *in;
        }
        while (p > out && (p[-1] == ' ' || p[-1] == '\t' || p[-1] == '\n'))
                p--;
        *p = 0;
        return out;
}

int verb_chat(int argc, char *argv[]) {
        static const struct option options[] = {
                SAMPLING_OPTIONS,
                { "system", required_argument, NULL, OPT_SYSTEM },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        SamplingArgs a = {};
        RwkvClient *c = NULL;
        const char *system_line = NULL;
        bool created = false, tty = isatty(STDIN_FILENO);
        int ret = 1, r, opt;

        r = rwkv_generate_options_new(&a.options);
        if (r < 0)
                return fail("chat: %s", strerror(-r));
        while ((opt = getopt_long(argc, argv, "h", options, NULL)) >= 0) {
                if (opt == 'h') {
                        printf("rwkvctl chat --session ID [--system TEXT] [--max-tokens N] [--temperature T]\n"
                               "             [--top-p P] [--top-k K] [--min-p P] [--presence-penalty X]\n"
                               "             [--frequency-penalty X] [--penalty-decay D] [--seed S] [--stop STR]...\n"
                               "Ctrl-C stops a reply (at the prompt: ends the chat), Ctrl-D ends the chat.\n");
                        ret = 0;
                        goto finish;
                }
                if (opt == OPT_SYSTEM) {
                        if (check_utf8("chat", "the --system text", optarg) < 0) {
                                ret = 2;
                                goto finish;
                        }
                        system_line = optarg;
                        continue;
                }
                r = sampling_option(&a, opt, "chat");
                if (r <= 0) {
                        ret = 2;
                        goto finish;
                }
        }
        if (!a.session || optind < argc) {
                ret = fail_usage("chat: usage: rwkvctl chat --session ID [OPTIONS]");
                goto finish;
        }
        /* A turn ends at the blank line the model writes after its answer. */
        if (a.n_stops >= STOP_MAX_SEQUENCES) {
                ret = fail_usage("chat: at most %d --stop strings (chat adds its own, a blank line)",
                                 STOP_MAX_SEQUENCES - 1);
                goto finish;
        }
        r = rwkv_generate_options_add_stop(a.options, "\n\n", 2);
        if (r < 0) {
                fail("chat: %s", strerror(-r));
                goto finish;
        }
        if (connect_bus(&c) < 0)
                goto finish;
        if (ensure_session(c, a.session, &created) != 0)
                goto finish;
        if (tty && !arg_json)
                fprintf(stderr, "%s session '%s'. Ctrl-C stops a reply, Ctrl-D quits.\n", created ? "New" : "Resuming",
                        a.session);

        /* libedit's handlers (installed only inside readline()) put the terminal back in cooked mode
         * before Ctrl-C at the prompt ends the chat; with 0 it was left raw, without echo. */
        rl_catch_signals = 1;
        using_history();
        bool first = true, had_error = false;
        for (;;) {
                catch_sigint(false);
                interrupted = 0;
                char *line = readline(tty ? "User: " : NULL);
                if (!line)
                        break;
                char *text = chat_clean(line);
                if (!text) {
                        free(line);
                        fail("chat: out of memory");
                        goto finish;
                }
                if (!*text) {
                        free(text);
                        free(line);
                        continue;
                }
                add_history(line);
                free(line);

                /* "System: ...\n\n" once, at the start of a new conversation. */
                size_t plen = strlen(text) + 64 + (system_line ? strlen(system_line) : 0);
                char *prompt = malloc(plen);
                if (!prompt) {
                        free(text);
                        fail("chat: out of memory");
                        goto finish;
                }
                char *sys = system_line && created && first ? chat_clean(system_line) : NULL;
                snprintf(prompt, plen, "%s%s%sUser: %s\n\nAssistant:", sys && *sys ? "System: " : "",
                         sys && *sys ? sys : "", sys && *sys ? "\n\n" : "", text);
                free(sys);
                free(text);
                first = false;

                RwkvStream *s = NULL;
                StreamResult res;
                catch_sigint(true);
                r = rwkv_generate_start(c, a.session, prompt, strlen(prompt), a.options, &s);
                free(prompt);
                if (r < 0) {
                        fail_call(c, "chat", r);
                        goto finish;
                }
                if (tty && !arg_json)
                        fputs("Assistant:", stdout);
                r = follow_stream(c, s, "chat", &res);
                rwkv_stream_free(s);
                if (r != 0 && res.daemon_error) {
                        /* Reported on stderr; the conversation goes on, as in a shell. (A commit
                         * that failed after the answer, e.g. a full disk, ends the stream this way
                         * while the daemon keeps the session in RAM; if the session is gone,
                         * the next turn says so.) */
                        if (!arg_json)
                                fputs("\n\n", stdout);
                        fflush(stdout);
                        had_error = true;
                        continue;
                }
                if (r != 0)
                        goto finish;
                if (!arg_json)
                        fputs(res.cancelled ? " [stopped]\n\n" : res.ends_with_newline ? "" : "\n\n", stdout);
                fflush(stdout);
        }
        if (tty && !arg_json)
                fputc('\n', stderr);
        ret = had_error ? 1 : 0;

finish:
        catch_sigint(false);
        rwkv_client_free(c);
        rwkv_generate_options_free(a.options);
        return ret;
}

/* ---- session ---- */

static void print_time(const char *label, uint64_t usec) {
        time_t t = (time_t)(usec / 1000000);
        struct tm tm;
        char buf[64];
        if (usec == 0 || !localtime_r(&t, &tm) || strftime(buf, sizeof(buf), "%Y-%m-%d %H:%M:%S", &tm) == 0)
                printf("%-12s -\n", label);
        else
                printf("%-12s %s\n", label, buf);
}

static struct json_object *info_json(const RwkvInfo *info) {
        struct json_object *o = json_object_new_object();
        for (size_t i = 0; i < rwkv_info_get_count(info); i++) {
                const char *key = rwkv_info_get_key(info, i), *s;
                uint64_t u;
                int64_t v;
                double d;
                int b;
                switch (rwkv_info_get_type(info, i)) {
                case RWKV_VALUE_STRING:
                        if (rwkv_info_get_string(info, key, &s) >= 0)
                                json_object_object_add(o, key, json_object_new_string(s));
                        break;
                case RWKV_VALUE_UNSIGNED:
                        if (rwkv_info_get_uint(info, key, &u) >= 0)
                                json_object_object_add(o, key,
                                                       u > INT64_MAX ? json_object_new_double((double)u)
                                                                     : json_object_new_int64((int64_t)u));
                        break;
                case RWKV_VALUE_SIGNED:
                        if (rwkv_info_get_int(info, key, &v) >= 0)
                                json_object_object_add(o, key, json_object_new_int64(v));
                        break;
                case RWKV_VALUE_DOUBLE:
                        if (rwkv_info_get_double(info, key, &d) >= 0)
                                json_object_object_add(o, key, json_object_new_double(d));
                        break;
                case RWKV_VALUE_BOOL:
                        if (rwkv_info_get_bool(info, key, &b) >= 0)
                                json_object_object_add(o, key, json_object_new_boolean(b));
                        break;
                }
        }
        return o;
}

static void info_print(const RwkvInfo *info) {
        for (size_t i = 0; i < rwkv_info_get_count(info); i++) {
                const char *key = rwkv_info_get_key(info, i), *s;
                uint64_t u;
                int64_t v;
                double d;
                int b;
                switch (rwkv_info_get_type(info, i)) {
                case RWKV_VALUE_STRING:
                        if (rwkv_info_get_string(info, key, &s) >= 0)
                                printf("%-18s %s\n", key, s);
                        break;
                case RWKV_VALUE_UNSIGNED:
                        if (rwkv_info_get_uint(info, key, &u) < 0)
                                break;
                        if (strcmp(key, "created") == 0 || strcmp(key, "updated") == 0)
                                print_time(key, u);
                        else
                                printf("%-18s %" PRIu64 "\n", key, u);
                        break;
                case RWKV_VALUE_SIGNED:
                        if (rwkv_info_get_int(info, key, &v) >= 0)
                                printf("%-18s %" PRId64 "\n", key, v);
                        break;
                case RWKV_VALUE_DOUBLE:
                        if (rwkv_info_get_double(info, key, &d) >= 0)
                                printf("%-18s %.6g\n", key, d);
                        break;
                case RWKV_VALUE_BOOL:
                        if (rwkv_info_get_bool(info, key, &b) >= 0)
                                printf("%-18s %s\n", key, b ? "yes" : "no");
                        break;
                }
        }
}

static int session_list(RwkvClient *c) {
        RwkvSessionList *l = NULL;
        int r = rwkv_session_list(c, &l);
        if (r < 0)
                return fail_call(c, "session list", r);
        size_t n = rwkv_session_list_get_count(l);
        if (arg_json) {
                struct json_object *arr = json_object_new_array();
                for (size_t i = 0; i < n; i++) {
                        struct json_object *o = json_object_new_object();
                        json_object_object_add(o, "id", json_object_new_string(rwkv_session_list_get_id(l, i)));
                        json_object_object_add(o, "title", json_object_new_string(rwkv_session_list_get_title(l, i)));
                        json_object_object_add(o, "tokens",
                                               json_object_new_int64((int64_t)rwkv_session_list_get_tokens(l, i)));
                        json_object_object_add(o, "turns", json_object_new_int64(rwkv_session_list_get_turns(l, i)));
                        json_object_object_add(o, "created",
                                               json_object_new_int64((int64_t)rwkv_session_list_get_created(l, i)));
                        json_object_object_add(o, "updated",
                                               json_object_new_int64((int64_t)rwkv_session_list_get_updated(l, i)));
                        json_object_object_add(o, "hot", json_object_new_boolean(rwkv_session_list_get_hot(l, i)));
                        json_object_array_add(arr, o);
                }
                struct json_object *o = json_object_new_object();
                json_object_object_add(o, "sessions", arr);
                json_print(o);
        } else {
                if (n > 0 && isatty(STDOUT_FILENO))
                        printf("%-24s %10s %-19s %-4s %s\n", "ID", "TOKENS", "UPDATED", "HOT", "TITLE");
                for (size_t i = 0; i < n; i++) {
                        time_t t = (time_t)(rwkv_session_list_get_updated(l, i) / 1000000);
                        struct tm tm;
                        char when[32] = "-";
                        if (t > 0 && localtime_r(&t, &tm))
                                strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", &tm);
                        printf("%-24s %10" PRIu64 " %-19s %-4s %s\n", rwkv_session_list_get_id(l, i),
                               rwkv_session_list_get_tokens(l, i), when, rwkv_session_list_get_hot(l, i) ? "yes" : "no",
                               rwkv_session_list_get_title(l, i));
                }
        }
        rwkv_session_list_free(l);
        return 0;
}

/* A failed export (no such session, a busy one, a full disk) leaves FILE as it was. */
static int session_export(RwkvClient *c, const char *id, const char *path) {
        _cleanup_(output_file_done) OutputFile f = { .fd = -EBADF };
        int r = output_file_open(path, &f);
        if (r < 0)
                return fail("session export: cannot write '%s': %s", path, strerror(-r));
        r = rwkv_session_export(c, id, f.fd);
        if (r < 0)
                return fail_call(c, "session export", r);
        r = output_file_commit(&f);
        if (r < 0)
                return fail("session export: cannot write '%s': %s", path, strerror(-r));
        return 0;
}

static int print_id(const char *key, const char *id) {
        if (arg_json) {
                struct json_object *o = json_object_new_object();
                json_object_object_add(o, key, json_object_new_string(id));
                json_print(o);
        } else
                puts(id);
        return 0;
}

int verb_session(int argc, char *argv[]) {
        static const struct option options[] = {
                { "json", no_argument, NULL, OPT_JSON },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        RwkvClient *c = NULL;
        int ret = 1, r, opt;

        while ((opt = getopt_long(argc, argv, "+h", options, NULL)) >= 0)
                switch (opt) {
                case 'h':
                        printf("rwkvctl session list | show ID | fork ID [NEWID] | delete ID | export ID FILE | import "
                               "FILE [ID]\n");
                        return 0;
                case OPT_JSON:
                        arg_json = true;
                        break;
                default:
                        return 2;
                }
        /* Options may also follow the sub-verb ("session list --json"). */
        int n = 0;
        char *args[4];
        for (int i = optind; i < argc; i++) {
                if (strcmp(argv[i], "--json") == 0) {
                        arg_json = true;
                        continue;
                }
                if (n == 4)
                        return fail_usage("session: too many arguments");
                args[n++] = argv[i];
        }
        if (n == 0)
                return fail_usage(
                        "session: list | show ID | fork ID [NEWID] | delete ID | export ID FILE | import FILE "
                        "[ID]");
        const char *sub = args[0];
#define NEED(lo, hi)                                                                                                   \
        if (n - 1 < (lo) || n - 1 > (hi))                                                                              \
                return fail_usage("session %s: wrong number of arguments (see rwkvctl session --help)", sub);

        if (strcmp(sub, "list") == 0) {
                NEED(0, 0);
        } else if (strcmp(sub, "show") == 0 || strcmp(sub, "delete") == 0) {
                NEED(1, 1);
        } else if (strcmp(sub, "fork") == 0 || strcmp(sub, "import") == 0) {
                NEED(1, 2);
        } else if (strcmp(sub, "export") == 0) {
                NEED(2, 2);
        } else
                return fail_usage("session: unknown sub-command '%s'", sub);
#undef NEED
        /* The arguments that are session ids (the others are file names). */
        char what[32];
        snprintf(what, sizeof(what), "session %s", sub);
        bool takes_new_id = strcmp(sub, "fork") == 0 || strcmp(sub, "import") == 0;
        if (n > 1 && strcmp(sub, "import") != 0 && check_id(what, "the session id", args[1]) < 0)
                return 2;
        if (n > 2 && takes_new_id &&
            check_id(what, strcmp(sub, "fork") == 0 ? "the new session id" : "the session id", args[2]) < 0)
                return 2;

        if (connect_bus(&c) < 0)
                return 1;

        if (strcmp(sub, "list") == 0)
                ret = session_list(c);
        else if (strcmp(sub, "show") == 0) {
                RwkvInfo *info = NULL;
                r = rwkv_session_get(c, args[1], &info);
                if (r < 0)
                        ret = fail_call(c, "session show", r);
                else {
                        if (arg_json)
                                json_print(info_json(info));
                        else
                                info_print(info);
                        rwkv_info_free(info);
                        ret = 0;
                }
        } else if (strcmp(sub, "delete") == 0) {
                r = rwkv_session_delete(c, args[1]);
                ret = r < 0 ? fail_call(c, "session delete", r) : 0;
        } else if (strcmp(sub, "fork") == 0) {
                char *id = NULL;
                r = rwkv_session_fork(c, args[1], n > 2 ? args[2] : NULL, 0, &id);
                ret = r < 0 ? fail_call(c, "session fork", r) : print_id("session_id", id);
                free(id);
        } else if (strcmp(sub, "export") == 0)
                ret = session_export(c, args[1], args[2]);
        else if (strcmp(sub, "import") == 0) {
                bool from_stdin = strcmp(args[1], "-") == 0;
                int fd = from_stdin ? STDIN_FILENO : open(args[1], O_RDONLY | O_CLOEXEC);
                if (fd < 0)
                        ret = fail("session import: cannot open '%s': %m", args[1]);
                else {
                        char *id = NULL;
                        r = rwkv_session_import(c, fd, n > 2 ? args[2] : NULL, &id);
                        ret = r < 0 ? fail_call(c, "session import", r) : print_id("session_id", id);
                        free(id);
                        if (!from_stdin)
                                close(fd);
                }
        }
        rwkv_client_free(c);
        return ret;
}

/* ---- status ---- */

int verb_status(int argc, char *argv[]) {
        static const struct option options[] = {
                { "json", no_argument, NULL, OPT_JSON },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        RwkvClient *c = NULL;
        RwkvInfo *info = NULL;
        int r, opt;

        while ((opt = getopt_long(argc, argv, "h", options, NULL)) >= 0)
                switch (opt) {
                case 'h':
                        printf("rwkvctl status [--json]: model, version, threads, sessions, memory, tokens/s\n");
                        return 0;
                case OPT_JSON:
                        arg_json = true;
                        break;
                default:
                        return 2;
                }
        if (optind < argc)
                return fail_usage("status: no arguments expected");
        if (connect_bus(&c) < 0)
                return 1;
        r = rwkv_status(c, &info);
        if (r < 0) {
                r = fail_call(c, "status", r);
                rwkv_client_free(c);
                return r;
        }
        if (arg_json)
                json_print(info_json(info));
        else {
                const char *s;
                uint64_t u, hot = 0, cold = 0;
                double d;
                if (rwkv_info_get_string(info, "version", &s) >= 0)
                        printf("Version:     rwkvd %s\n", s);
                if (rwkv_info_get_string(info, "model_name", &s) >= 0) {
                        const char *arch = "", *type = "";
                        (void)rwkv_info_get_string(info, "model_architecture", &arch);
                        (void)rwkv_info_get_string(info, "model_type", &type);
                        printf("Model:       %s (%s, %s)\n", s, arch, type);
                }
                uint64_t layers = 0, embd = 0, vocab = 0;
                if (rwkv_info_get_uint(info, "model_layers", &layers) >= 0 &&
                    rwkv_info_get_uint(info, "model_embedding", &embd) >= 0 &&
                    rwkv_info_get_uint(info, "vocabulary_size", &vocab) >= 0)
                        printf("Shape:       %" PRIu64 " layers, %" PRIu64 " wide, vocabulary %" PRIu64 "\n", layers,
                               embd, vocab);
                if (rwkv_info_get_string(info, "model_hash", &s) >= 0)
                        printf("Model hash:  %s\n", s);
                if (rwkv_info_get_uint(info, "threads", &u) >= 0)
                        printf("Threads:     %" PRIu64 "\n", u);
                if (rwkv_info_get_string(info, "isa", &s) >= 0)
                        printf("Kernels:     %s\n", s);
                (void)rwkv_info_get_uint(info, "sessions_hot", &hot);
                (void)rwkv_info_get_uint(info, "sessions_cold", &cold);
                printf("Sessions:    %" PRIu64 " hot, %" PRIu64 " on disk\n", hot, cold);
                uint64_t running = 0, queued = 0, parked = 0;
                (void)rwkv_info_get_uint(info, "jobs_running", &running);
                (void)rwkv_info_get_uint(info, "jobs_queued", &queued);
                (void)rwkv_info_get_uint(info, "jobs_parked", &parked);
                printf("Jobs:        %" PRIu64 " running (%" PRIu64 " waiting for their client), %" PRIu64 " queued\n",
                       running, parked, queued);
                if (rwkv_info_get_uint(info, "rss_bytes", &u) >= 0)
                        printf("Memory:      %.1f MiB resident", (double)u / (1024.0 * 1024.0));
                if (rwkv_info_get_uint(info, "hot_bytes", &u) >= 0)
                        printf(", %.1f MiB hot sessions", (double)u / (1024.0 * 1024.0));
                printf("\n");
                if (rwkv_info_get_double(info, "tokens_per_second", &d) >= 0)
                        printf("Tokens/s:    %.1f", d);
                uint64_t total = 0, steps = 0, widest = 0;
                if (rwkv_info_get_uint(info, "tokens_total", &total) >= 0)
                        printf(" (%" PRIu64 " in total)", total);
                printf("\n");
                if (rwkv_info_get_uint(info, "decode_steps", &steps) >= 0 && steps > 0 &&
                    rwkv_info_get_uint(info, "decode_batch_max", &widest) >= 0)
                        printf("Batching:    %.2f sessions a step on average, at most %" PRIu64 "\n",
                               (double)total / (double)steps, widest);
                if (rwkv_info_get_uint(info, "uptime_usec", &u) >= 0)
                        printf("Uptime:      %" PRIu64 " s\n", u / 1000000);
        }
        rwkv_info_free(info);
        rwkv_client_free(c);
        return 0;
}
