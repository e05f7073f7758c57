/* cmd-run.c: offline, in-process verbs: `rwkvctl run` (generate text without a daemon) and
 * `rwkvctl perplexity` (bits per token and per byte of a text, for judging quantizations).
 *
 * run follows the daemon's pipeline so both produce the same text for the same seed: prefill the
 * prompt in one sequence call, then sample -> penalty update -> token bytes -> stop matcher ->
 * UTF-8 stream -> stdout, flushed per token. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "engine/arch/model.h"
#include "engine/text/sampler.h"
#include "engine/text/stop.h"
#include "engine/text/tokenizer.h"
#include "engine/text/utf8-stream.h"
#include "tools/rwkvctl/rwkvctl.h"

#define RUN_MAX_TOKENS (1u << 24)

DEFINE_TRIVIAL_CLEANUP_FUNC(StopMatcher *, stop_matcher_free);
DEFINE_TRIVIAL_CLEANUP_FUNC(Sampler *, sampler_free);
#define INPUT_MAX_BYTES ((size_t)256 << 20)

static int parse_uint(const char *s, uint64_t max, uint64_t *ret) {
        char *end;
        if (!s || !*s || s[0] == '-' || s[0] == '+' || s[0] == ' ')
                return -EINVAL;
        errno = 0;
        unsigned long long v = strtoull(s, &end, 10);
        if (errno || *end || v > max)
                return -EINVAL;
        *ret = v;
        return 0;
}

static int parse_float(const char *s, float *ret) {
        char *end;
        if (!s || !*s)
                return -EINVAL;
        errno = 0;
        float v = strtof(s, &end);
        if (errno || *end || !isfinite(v))
                return -EINVAL;
        *ret = v;
        return 0;
}

/* Read all of stdin (capped: the prompt is held in memory and tokenized at once). */
static int read_stdin(uint8_t **ret, size_t *ret_len) {
        size_t cap = 1 << 16, len = 0;
        _cleanup_(freep) uint8_t *buf = malloc(cap);
        if (!buf)
                return -ENOMEM;
        for (;;) {
                if (len == cap) {
                        if (cap >= INPUT_MAX_BYTES)
                                return -E2BIG;
                        uint8_t *b = realloc(buf, cap * 2);
                        if (!b)
                                return -ENOMEM;
                        buf = b;
                        cap *= 2;
                }
                ssize_t n = read(STDIN_FILENO, buf + len, cap - len);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (n == 0)
                        break;
                len += (size_t)n;
        }
        *ret = TAKE_PTR(buf);
        *ret_len = len;
        return 0;
}

typedef struct Offline {
        Model *model;
        ThreadPool *pool;
        EvalCtx *ctx;
        float *state;
} Offline;

static void offline_done(Offline *o) {
        evalctx_free(o->ctx);
        threadpool_free(o->pool);
        free(o->state);
        model_free(o->model);
        *o = (Offline){};
}

/* Load the model, which must have a tokenizer, and a fresh state. Prints the error itself. */
static int offline_open(Offline *o, const char *verb, const char *path, const char *vocab, unsigned threads,
                        size_t chunk) {
        RwkvError err = {};
        int r = model_load(path, &(ModelLoadOptions){ .vocab_path = vocab }, &o->model, &err);
        if (r < 0)
                return fail("%s: cannot load '%s': %s", verb, path, error_message(&err, r));
        if (!model_tokenizer(o->model))
                return fail("%s: '%s' has no tokenizer (give the World vocabulary with --vocab FILE)", verb, path);
        const ModelInfo *in = model_info(o->model);
        o->state = malloc(in->state_floats * sizeof(float));
        if (!o->state)
                return fail("%s: out of memory", verb);
        model_state_reset(o->model, o->state);
        r = threadpool_new(threads, &o->pool);
        if (r >= 0)
                r = evalctx_new(o->model, o->pool, 1, chunk, &o->ctx);
        if (r < 0)
                return fail("%s: cannot set up the evaluation: %s", verb, strerror(-r));
        return 0;
}

static bool arg_run_json = false;

/* Generated text: raw bytes, or with --json one {"text": ...} object per piece (valid UTF-8 always). */
static int write_all(const uint8_t *b, size_t n) {
        if (n == 0)
                return 0;
        if (arg_run_json) {
                json_object *o = json_object_new_object();
                json_object_object_add(o, "text", json_object_new_string_len((const char *)b, (int)n));
                int r = puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
                json_object_put(o);
                return r < 0 ? -EIO : 0;
        }
        if (fwrite(b, 1, n, stdout) != n)
                return -EIO;
        return 0;
}

/* ---- run ---- */

static void run_help(void) {
        printf("rwkvctl run --model FILE [OPTIONS] [PROMPT]\n\n"
               "Generate text in-process, without a daemon; the prompt is read from stdin when not given.\n\n"
               "  --model FILE             model file (.rwkv, rwkv.cpp .bin, PyTorch .pth)\n"
               "  --vocab FILE             World vocabulary for a model file that embeds none\n"
               "  --max-tokens N           stop after N tokens (default 256)\n"
               "  --temperature T          0 = greedy (default 1.0)\n"
               "  --top-p P                nucleus mass (default: 1 = off on a byte-level model, 0.3 on a\n"
               "                           World model, as rwkvd)\n"
               "  --top-k K                keep the K most likely tokens (default 0 = off)\n"
               "  --min-p P                drop tokens below P x the best (default 0 = off)\n"
               "  --presence-penalty X     (default: 0 on a byte-level model, 0.5 on a World model)\n"
               "  --frequency-penalty X    (default: 0 on a byte-level model, 0.5 on a World model)\n"
               "  --penalty-decay X        (default 0.996)\n"
               "  --seed S                 random seed (default: random)\n"
               "  --stop STR               stop when STR appears (repeatable)\n"
               "  --threads N              compute threads (default: all CPUs)\n"
               "  --json                   one {\"text\": ...} object per line, then {\"tokens\", \"finish\"}\n");
}

int verb_run(int argc, char *argv[]) {
        enum {
                OPT_MODEL = 0x100,
                OPT_VOCAB,
                OPT_MAX_TOKENS,
                OPT_TEMPERATURE,
                OPT_TOP_P,
                OPT_TOP_K,
                OPT_MIN_P,
                OPT_PRESENCE,
                OPT_FREQUENCY,
                OPT_DECAY,
                OPT_SEED,
                OPT_STOP,
                OPT_THREADS,
                OPT_JSON,
        };
        static const struct option options[] = {
                { "help", no_argument, NULL, 'h' },
                { "model", required_argument, NULL, OPT_MODEL },
                { "vocab", required_argument, NULL, OPT_VOCAB },
                { "max-tokens", required_argument, NULL, OPT_MAX_TOKENS },
                { "temperature", required_argument, NULL, OPT_TEMPERATURE },
                { "top-p", required_argument, NULL, OPT_TOP_P },
                { "top-k", required_argument, NULL, OPT_TOP_K },
                { "min-p", required_argument, NULL, OPT_MIN_P },
                { "presence-penalty", required_argument, NULL, OPT_PRESENCE },
                { "frequency-penalty", required_argument, NULL, OPT_FREQUENCY },
                { "penalty-decay", required_argument, NULL, OPT_DECAY },
                { "seed", required_argument, NULL, OPT_SEED },
                { "stop", required_argument, NULL, OPT_STOP },
                { "threads", required_argument, NULL, OPT_THREADS },
                { "json", no_argument, NULL, OPT_JSON },
                {},
        };
        const char *model_path = NULL, *vocab = NULL;
        const char *stops[STOP_MAX_SEQUENCES];
        size_t n_stops = 0;
        SamplerParams sp = sampler_params_default();
        uint64_t max_tokens = 256, seed = 0, threads = 0, v;
        bool have_seed = false, have_top_p = false, have_presence = false, have_frequency = false;
        int c, r;

        arg_run_json = arg_json;
        while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0) {
                float *fp = NULL;
                const char *what = NULL;
                switch (c) {
                case 'h':
                        run_help();
                        return 0;
                case OPT_MODEL:
                        model_path = optarg;
                        continue;
                case OPT_VOCAB:
                        vocab = optarg;
                        continue;
                case OPT_MAX_TOKENS:
                        if (parse_uint(optarg, RUN_MAX_TOKENS, &max_tokens) < 0)
                                return fail_usage("run: invalid --max-tokens '%s' (0 to %u)", optarg, RUN_MAX_TOKENS);
                        continue;
                case OPT_TOP_K:
                        if (parse_uint(optarg, UINT32_MAX, &v) < 0)
                                return fail_usage("run: invalid --top-k '%s'", optarg);
                        sp.top_k = (uint32_t)v;
                        continue;
                case OPT_SEED:
                        if (parse_uint(optarg, UINT64_MAX, &seed) < 0)
                                return fail_usage("run: invalid --seed '%s' (a non-negative integer)", optarg);
                        have_seed = true;
                        continue;
                case OPT_STOP:
                        if (n_stops == STOP_MAX_SEQUENCES)
                                return fail_usage("run: at most %d --stop strings", STOP_MAX_SEQUENCES);
                        stops[n_stops++] = optarg;
                        continue;
                case OPT_THREADS:
                        if (parse_uint(optarg, 1024, &threads) < 0)
                                return fail_usage("run: invalid --threads '%s' (0 to 1024)", optarg);
                        continue;
                case OPT_JSON:
                        arg_run_json = true;
                        continue;
                case OPT_TEMPERATURE:
                        fp = &sp.temperature, what = "temperature";
                        break;
                case OPT_TOP_P:
                        fp = &sp.top_p, what = "top-p";
                        have_top_p = true;
                        break;
                case OPT_MIN_P:
                        fp = &sp.min_p, what = "min-p";
                        break;
                case OPT_PRESENCE:
                        fp = &sp.presence_penalty, what = "presence-penalty";
                        have_presence = true;
                        break;
                case OPT_FREQUENCY:
                        fp = &sp.frequency_penalty, what = "frequency-penalty";
                        have_frequency = true;
                        break;
                case OPT_DECAY:
                        fp = &sp.penalty_decay, what = "penalty-decay";
                        break;
                default:
                        return 2;
                }
                if (parse_float(optarg, fp) < 0)
                        return fail_usage("run: invalid --%s '%s' (a number)", what, optarg);
        }
        if (!model_path)
                return fail_usage("run: --model FILE is required");
        if (optind + 1 < argc)
                return fail_usage("run: give the prompt as one argument (quote it), or on stdin");

        RwkvError err = {};
        r = sampler_params_validate(&sp, &err);
        if (r < 0)
                return fail_usage("run: %s", error_message(&err, r));
        _cleanup_(stop_matcher_freep) StopMatcher *stop = NULL;
        r = stop_matcher_new(stops, n_stops, &stop, &err);
        if (r < 0)
                return fail_usage("run: invalid --stop: %s", error_message(&err, r));
        if (!have_seed && getrandom(&seed, sizeof(seed), 0) != sizeof(seed))
                return fail("run: cannot get a random seed: %m");

        _cleanup_(freep) uint8_t *prompt = NULL;
        size_t prompt_len = 0;
        if (optind < argc) {
                prompt_len = strlen(argv[optind]);
                prompt = (uint8_t *)strdup(argv[optind]);
                if (!prompt)
                        return fail("run: out of memory");
        } else {
                r = read_stdin(&prompt, &prompt_len);
                if (r < 0)
                        return fail("run: cannot read the prompt from stdin: %s",
                                    r == -E2BIG ? "too long" : strerror(-r));
        }

        Offline o = {};
        int ret = 1;
        _cleanup_(freep) uint32_t *ids = NULL;
        _cleanup_(freep) float *logits = NULL, *counts = NULL;
        _cleanup_(sampler_freep) Sampler *sampler = NULL;
        r = offline_open(&o, "run", model_path, vocab, (unsigned)threads, 0);
        if (r != 0)
                goto out;
        const Tokenizer *tok = model_tokenizer(o.model);
        uint32_t V = model_info(o.model)->n_vocab;
        /* The model's defaults, as rwkvd starts from (run and generate give the same text for the
         * same seed); options given still win. */
        SamplerParams def = sampler_params_for(tok);
        if (!have_top_p)
                sp.top_p = def.top_p;
        if (!have_presence)
                sp.presence_penalty = def.presence_penalty;
        if (!have_frequency)
                sp.frequency_penalty = def.frequency_penalty;

        size_t n_ids = 0;
        r = tokenizer_encode_all(tok, prompt, prompt_len, &ids, &n_ids);
        if (r < 0) {
                fail("run: cannot tokenize the prompt: %s", strerror(-r));
                goto out;
        }
        logits = malloc((size_t)V * sizeof(float));
        counts = calloc(V, sizeof(float));
        if (!logits || !counts || sampler_new(V, &sampler) < 0) {
                fail("run: out of memory");
                goto out;
        }
        /* an empty prompt starts from token 0 (end of text: "a new document") */
        uint32_t start = 0;
        r = n_ids ? model_eval_sequence(o.ctx, o.state, ids, n_ids, logits)
                  : model_eval_token(o.ctx, o.state, start, logits);
        if (r < 0) {
                fail("run: evaluation failed: %s", strerror(-r));
                goto out;
        }

        Rng rng;
        rng_seed(&rng, seed);
        Utf8Stream u8;
        utf8_stream_init(&u8);
        uint8_t held[STOP_MAX_BYTES * 2 + 64], text[UTF8_STREAM_OUT_MAX(sizeof(held))];
        bool stopped = false;
        const char *finish = "length";
        uint64_t generated = 0;
        for (uint64_t i = 0; i < max_tokens && !stopped; i++) {
                uint32_t t;
                r = sampler_sample(sampler, &sp, logits, counts, NULL, 0, &rng, &t);
                if (r < 0) {
                        fail("run: sampling failed: %s", strerror(-r));
                        goto out;
                }
                sampler_penalty_update(counts, V, sp.penalty_decay, t);

                size_t len = 0, out_len = 0, which = 0;
                const uint8_t *b = tokenizer_token_bytes(tok, t, &len);
                generated++;
                if (!b) {
                        finish = "end"; /* end of text */
                        break;
                }
                /* long tokens go through the matcher in pieces its output buffer can take */
                for (size_t off = 0; off < len && !stopped; off += MIN(len - off, (size_t)64)) {
                        size_t piece = MIN(len - off, (size_t)64);
                        r = stop_matcher_feed(stop, b + off, piece, held, &out_len, &which);
                        if (r < 0) {
                                fail("run: stop matching failed: %s", strerror(-r));
                                goto out;
                        }
                        stopped = r == 1;
                        if (stopped)
                                finish = "stop";
                        if (write_all(text, utf8_stream_feed(&u8, held, out_len, text)) < 0)
                                goto write_error;
                }
                if (fflush(stdout) != 0)
                        goto write_error;
                if (stopped || i + 1 == max_tokens)
                        break;
                r = model_eval_token(o.ctx, o.state, t, logits);
                if (r < 0) {
                        fail("run: evaluation failed: %s", strerror(-r));
                        goto out;
                }
        }
        if (!stopped) {
                size_t n = stop_matcher_flush(stop, held);
                if (write_all(text, utf8_stream_feed(&u8, held, n, text)) < 0)
                        goto write_error;
        }
        if (write_all(text, utf8_stream_flush(&u8, text)) < 0)
                goto write_error;
        if (arg_run_json)
                printf("{\"tokens\": %" PRIu64 ", \"finish\": \"%s\"}\n", generated, finish);
        else if (isatty(STDOUT_FILENO))
                putchar('\n');
        if (fflush(stdout) != 0)
                goto write_error;
        ret = 0;
        goto out;

write_error:
        fail("run: cannot write the output: %m");
out:
        offline_done(&o);
        return ret;
}

/* ---- perplexity ---- */

static void perplexity_help(void) {
        printf("rwkvctl perplexity --model FILE [--vocab FILE] [--threads N] [--json] < TEXT\n\n"
               "Score a text: the model predicts each token from the ones before it (the first token\n"
               "is context only). Prints bits per token, bits per byte and the perplexity.\n");
}

/* -log p(target) in nats from one row of logits, in double precision. */
static double nll(const float *logits, uint32_t V, uint32_t target) {
        double mx = -INFINITY, sum = 0;
        for (uint32_t i = 0; i < V; i++)
                mx = fmax(mx, logits[i]);
        for (uint32_t i = 0; i < V; i++)
                sum += exp((double)logits[i] - mx);
        return log(sum) + mx - logits[target];
}

int verb_perplexity(int argc, char *argv[]) {
        enum { OPT_MODEL = 0x100, OPT_VOCAB, OPT_THREADS, OPT_JSON };
        static const struct option options[] = {
                { "help", no_argument, NULL, 'h' },
                { "model", required_argument, NULL, OPT_MODEL },
                { "vocab", required_argument, NULL, OPT_VOCAB },
                { "threads", required_argument, NULL, OPT_THREADS },
                { "json", no_argument, NULL, OPT_JSON },
                {},
        };
        const char *model_path = NULL, *vocab = NULL;
        uint64_t threads = 0;
        bool json = arg_json;
        int c, r;

        while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0)
                switch (c) {
                case 'h':
                        perplexity_help();
                        return 0;
                case OPT_MODEL:
                        model_path = optarg;
                        break;
                case OPT_VOCAB:
                        vocab = optarg;
                        break;
                case OPT_THREADS:
                        if (parse_uint(optarg, 1024, &threads) < 0)
                                return fail_usage("perplexity: invalid --threads '%s' (0 to 1024)", optarg);
                        break;
                case OPT_JSON:
                        json = true;
                        break;
                default:
                        return 2;
                }
        if (optind < argc)
                return fail_usage("perplexity: unexpected argument '%s' (the text comes on stdin)", argv[optind]);
        if (!model_path)
                return fail_usage("perplexity: --model FILE is required");

        _cleanup_(freep) uint8_t *text = NULL;
        size_t text_len = 0;
        r = read_stdin(&text, &text_len);
        if (r < 0)
                return fail("perplexity: cannot read stdin: %s", r == -E2BIG ? "too long" : strerror(-r));

        const size_t chunk = 32;
        Offline o = {};
        int ret = 1;
        _cleanup_(freep) uint32_t *ids = NULL;
        _cleanup_(freep) float *logits = NULL;
        r = offline_open(&o, "perplexity", model_path, vocab, (unsigned)threads, chunk);
        if (r != 0)
                goto out;
        const Tokenizer *tok = model_tokenizer(o.model);
        uint32_t V = model_info(o.model)->n_vocab;

        size_t n = 0;
        r = tokenizer_encode_all(tok, text, text_len, &ids, &n);
        if (r < 0) {
                fail("perplexity: cannot tokenize the text: %s", strerror(-r));
                goto out;
        }
        if (n < 2) {
                fail("perplexity: the text must have at least 2 tokens (it has %zu)", n);
                goto out;
        }
        logits = malloc(chunk * (size_t)V * sizeof(float));
        if (!logits) {
                fail("perplexity: out of memory");
                goto out;
        }

        /* logits after token i predict token i+1: feed ids[0..n-2] in chunks */
        double total = 0;
        uint64_t bytes = 0;
        for (size_t done = 0; done + 1 < n;) {
                size_t len = MIN(chunk, n - 1 - done);
                r = model_eval_sequence_all(o.ctx, o.state, ids + done, len, logits);
                if (r < 0) {
                        fail("perplexity: evaluation failed: %s", strerror(-r));
                        goto out;
                }
                for (size_t t = 0; t < len; t++) {
                        uint32_t target = ids[done + t + 1];
                        size_t blen = 0;
                        tokenizer_token_bytes(tok, target, &blen);
                        total += nll(logits + t * V, V, target);
                        bytes += blen;
                }
                done += len;
        }

        size_t scored = n - 1;
        double bits = total / log(2.0);
        double bpt = bits / (double)scored, bpb = bytes ? bits / (double)bytes : 0.0;
        double ppl = exp(total / (double)scored);
        if (json)
                printf("{\"tokens\": %zu, \"scored_tokens\": %zu, \"scored_bytes\": %" PRIu64
                       ", \"bits_per_token\": %.6f, \"bits_per_byte\": %.6f, \"perplexity\": %.6f}\n",
                       n, scored, bytes, bpt, bpb, ppl);
        else
                printf("tokens %zu (scored %zu, %" PRIu64 " bytes)\nbits/token %.4f\nbits/byte %.4f\nperplexity %.4f\n",
                       n, scored, bytes, bpt, bpb, ppl);
        ret = fflush(stdout) == 0 ? 0 : fail("perplexity: cannot write the output: %m");
out:
        offline_done(&o);
        return ret;
}
