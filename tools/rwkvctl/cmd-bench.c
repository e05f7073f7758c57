/* cmd-bench.c: `rwkvctl bench`: prefill, decode and batched-decode speed of a model, in-process.
 *
 * Prompt and generated tokens are fixed pseudo-random ids (the speed of an RNN does not depend on
 * which tokens it sees). With --json stdout is one object (one line) for scripts such as
 * bench/kernels/perf-table, like every other verb's --json; without it, a human summary. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "engine/arch/model.h"
#include "tools/rwkvctl/rwkvctl.h"

#define BENCH_MAX_TOKENS 65536u
#define BENCH_MAX_BATCH 256u
#define BENCH_MAX_BATCHES 16
#define BENCH_MAX_REPEAT 100

static double now_s(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int parse_uint(const char *s, unsigned long max, unsigned long *ret) {
        char *end;
        errno = 0;
        unsigned long v = strtoul(s, &end, 10);
        if (errno || end == s || *end || s[0] == '-' || v > max)
                return -EINVAL;
        *ret = v;
        return 0;
}

/* "1,2,4,8": distinct batch sizes in [1, BENCH_MAX_BATCH]. */
static int parse_batches(const char *s, unsigned *out, size_t *ret_n) {
        size_t n = 0;
        char buf[256];
        if (strlen(s) >= sizeof(buf))
                return -EINVAL;
        strcpy(buf, s);
        char *save = NULL;
        for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
                unsigned long v;
                if (n >= BENCH_MAX_BATCHES || parse_uint(tok, BENCH_MAX_BATCH, &v) < 0 || v == 0)
                        return -EINVAL;
                out[n++] = (unsigned)v;
        }
        if (n == 0)
                return -EINVAL;
        *ret_n = n;
        return 0;
}

static int cmp_double(const void *a, const void *b) {
        double x = *(const double *)a, y = *(const double *)b;
        return (x > y) - (x < y);
}

static double percentile(const double *sorted, size_t n, double p) {
        size_t i = (size_t)(p * (double)(n - 1) + 0.5);
        return sorted[i < n ? i : n - 1];
}

static void help(void) {
        printf("rwkvctl bench --model FILE [--threads N] [--prompt N] [--gen N] [--repeat N] [--batch B[,B...]]\n"
               "              [--json]\n\n"
               "Measure a model's speed in-process: prefill of a prompt, token-by-token decode, and batched\n"
               "decode of B sessions at once.\n\n"
               "  --model FILE    model file (.rwkv, rwkv.cpp .bin, PyTorch .pth)\n"
               "  --vocab FILE    World vocabulary for a model file that embeds none\n"
               "  --threads N     compute threads (default: all CPUs)\n"
               "  --prompt N      prompt tokens for the prefill measurement (default 512, 0 to skip)\n"
               "  --gen N         decoded tokens (default 128)\n"
               "  --repeat N      run the prefill and the decode N times from the same state and report\n"
               "                  the median (default 3; latency percentiles over every token)\n"
               "  --batch LIST    batch sizes for batched decode, e.g. 1,2,4,8,16 (default 8); each runs\n"
               "                  min(gen, 32) steps and at least one second in all, spread over the\n"
               "                  repeat rounds (every size once a round), and reports their median\n"
               "  --json          print one JSON object (one line) instead of the summary\n");
}

typedef struct BenchResult {
        double load_s, prefill_tok_s, decode_tok_s, p50_ms, p99_ms;
        double batch_tok_s[BENCH_MAX_BATCHES];
} BenchResult;

int verb_bench(int argc, char *argv[]) {
        const char *model_path = NULL, *vocab = NULL;
        unsigned long threads = 0, prompt = 512, gen = 128, repeat = 3;
        unsigned batches[BENCH_MAX_BATCHES] = { 8 };
        size_t n_batches = 1;
        bool json = arg_json;
        enum { ARG_VOCAB = 0x100, ARG_REPEAT };
        static const struct option opts[] = {
                { "help", no_argument, NULL, 'h' },
                { "model", required_argument, NULL, 'm' },
                { "vocab", required_argument, NULL, ARG_VOCAB },
                { "threads", required_argument, NULL, 't' },
                { "prompt", required_argument, NULL, 'p' },
                { "gen", required_argument, NULL, 'g' },
                { "repeat", required_argument, NULL, ARG_REPEAT },
                { "batch", required_argument, NULL, 'b' },
                { "json", no_argument, NULL, 'j' },
                {},
        };
        int c;
        optind = 0;
        while ((c = getopt_long(argc, argv, "hm:t:p:g:b:j", opts, NULL)) >= 0)
                switch (c) {
                case 'h':
                        help();
                        return 0;
                case 'm':
                        model_path = optarg;
                        break;
                case ARG_VOCAB:
                        vocab = optarg;
                        break;
                case 't':
                        if (parse_uint(optarg, 1024, &threads) < 0)
                                return fail_usage("bench: invalid --threads '%s' (0 to 1024)", optarg);
                        break;
                case 'p':
                        if (parse_uint(optarg, BENCH_MAX_TOKENS, &prompt) < 0)
                                return fail_usage("bench: invalid --prompt '%s' (0 to %u)", optarg, BENCH_MAX_TOKENS);
                        break;
                case 'g':
                        if (parse_uint(optarg, BENCH_MAX_TOKENS, &gen) < 0 || gen == 0)
                                return fail_usage("bench: invalid --gen '%s' (1 to %u)", optarg, BENCH_MAX_TOKENS);
                        break;
                case ARG_REPEAT:
                        if (parse_uint(optarg, BENCH_MAX_REPEAT, &repeat) < 0 || repeat == 0)
                                return fail_usage("bench: invalid --repeat '%s' (1 to %u)", optarg, BENCH_MAX_REPEAT);
                        break;
                case 'b':
                        if (parse_batches(optarg, batches, &n_batches) < 0)
                                return fail_usage("bench: invalid --batch '%s' (sizes 1 to %u, comma separated)",
                                                  optarg, BENCH_MAX_BATCH);
                        break;
                case 'j':
                        json = true;
                        break;
                default:
                        return 2; /* getopt said why */
                }
        if (optind < argc)
                return fail_usage("bench: unexpected argument '%s'", argv[optind]);
        if (!model_path)
                return fail_usage("bench: --model FILE is required");

        unsigned max_batch = 1;
        for (size_t i = 0; i < n_batches; i++)
                max_batch = batches[i] > max_batch ? batches[i] : max_batch;

        BenchResult res = { 0 };
        RwkvError err = { 0 };
        Model *m = NULL;
        double t0 = now_s();
        int r = model_load(model_path, &(ModelLoadOptions){ .vocab_path = vocab }, &m, &err);
        if (r < 0)
                return fail("bench: cannot load '%s': %s", model_path, error_message(&err, r));
        res.load_s = now_s() - t0;
        const ModelInfo *in = model_info(m);

        int ret = 1;
        ThreadPool *pool = NULL;
        EvalCtx *ctx = NULL;
        size_t ntok = (prompt > gen ? prompt : gen) + 1;
        uint32_t *tokens = malloc(ntok * sizeof(uint32_t));
        float *logits = malloc((size_t)in->n_vocab * sizeof(float));
        float *states = calloc((size_t)max_batch * in->state_floats, sizeof(float));
        float **state_ptrs = calloc(max_batch, sizeof(float *));
        float **logit_ptrs = calloc(max_batch, sizeof(float *));
        float *batch_logits = malloc((size_t)max_batch * in->n_vocab * sizeof(float));
        uint32_t *batch_tokens = malloc(max_batch * sizeof(uint32_t));
        double *lat = malloc(gen * repeat * sizeof(double)), *runs = malloc(repeat * sizeof(double));
        float *start = malloc(in->state_floats * sizeof(float));
        double *batch_runs = malloc(n_batches * repeat * sizeof(double));
        if (!tokens || !logits || !states || !state_ptrs || !logit_ptrs || !batch_logits || !batch_tokens || !lat ||
            !runs || !start || !batch_runs) {
                fail("bench: out of memory");
                goto finish;
        }
        uint64_t x = 0x2545f4914f6cdd1dull;
        for (size_t i = 0; i < ntok; i++) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                tokens[i] = (uint32_t)(x % in->n_vocab);
        }

        r = threadpool_new((unsigned)threads, &pool);
        if (r >= 0)
                r = evalctx_new(m, pool, max_batch, 0, &ctx);
        if (r < 0) {
                fail("bench: cannot set up the evaluation: %s", strerror(-r));
                goto finish;
        }

        float *state = states;
        /* Warm-up: the first pass faults the mapped weights in; that is load time, not speed. */
        model_state_reset(m, state);
        r = model_eval_token(ctx, state, tokens[0], logits);
        if (r < 0)
                goto eval_failed;

        /* Each measurement is run `repeat` times and the median reported: on a shared machine a
         * single run of a second or less reads whatever the neighbours were doing at that moment. */
        if (prompt == 0) {
                model_state_reset(m, state); /* else each prefill run starts from a reset state */
        } else {
                for (size_t k = 0; k < repeat; k++) {
                        model_state_reset(m, state);
                        t0 = now_s();
                        r = model_eval_sequence(ctx, state, tokens, prompt, logits);
                        if (r < 0)
                                goto eval_failed;
                        runs[k] = (double)prompt / (now_s() - t0);
                }
                qsort(runs, repeat, sizeof(double), cmp_double);
                res.prefill_tok_s = percentile(runs, repeat, 0.50);
        }

        memcpy(start, state, in->state_floats * sizeof(float)); /* every decode run starts after the prompt */
        for (size_t k = 0; k < repeat; k++) {
                memcpy(state, start, in->state_floats * sizeof(float));
                double total = 0;
                for (size_t i = 0; i < gen; i++) {
                        t0 = now_s();
                        r = model_eval_token(ctx, state, tokens[i + 1], logits);
                        if (r < 0)
                                goto eval_failed;
                        lat[k * gen + i] = now_s() - t0;
                        total += lat[k * gen + i];
                }
                runs[k] = (double)gen / total;
        }
        qsort(runs, repeat, sizeof(double), cmp_double);
        res.decode_tok_s = percentile(runs, repeat, 0.50);
        qsort(lat, gen * repeat, sizeof(double), cmp_double);
        res.p50_ms = percentile(lat, gen * repeat, 0.50) * 1e3;
        res.p99_ms = percentile(lat, gen * repeat, 0.99) * 1e3;

        /* Batched decode in --repeat rounds, each size once a round (in reverse order every other
         * round), the median per size. Single-session decode is bound by memory bandwidth and a
         * batch of 8 by arithmetic, so a burst of bandwidth on a shared machine moves one and not
         * the other: measured one after the other, the ratio of two sizes read whichever second
         * each happened to get; interleaved, both sample the same stretch of time. */
        size_t min_steps = ((gen < 32 ? gen : 32) + repeat - 1) / repeat; /* a round's share of min(gen, 32) */
        double min_s = 1.0 / (double)repeat;
        for (size_t k = 0; k < repeat; k++)
                for (size_t i = 0; i < n_batches; i++) {
                        size_t bi = k % 2 ? n_batches - 1 - i : i;
                        unsigned B = batches[bi];
                        for (unsigned s = 0; s < B; s++) {
                                state_ptrs[s] = states + (size_t)s * in->state_floats;
                                memcpy(state_ptrs[s], start, in->state_floats * sizeof(float));
                                logit_ptrs[s] = batch_logits + (size_t)s * in->n_vocab;
                        }
                        size_t steps = 0;
                        double elapsed = 0;
                        t0 = now_s();
                        while (steps < min_steps || (elapsed < min_s && steps < 100000)) {
                                for (unsigned s = 0; s < B; s++)
                                        batch_tokens[s] = tokens[(steps + s) % ntok];
                                r = model_eval_batch(ctx, state_ptrs, batch_tokens, B, logit_ptrs);
                                if (r < 0)
                                        goto eval_failed;
                                steps++;
                                elapsed = now_s() - t0;
                        }
                        batch_runs[bi * repeat + k] = (double)(B * steps) / elapsed;
                }
        for (size_t bi = 0; bi < n_batches; bi++) {
                qsort(batch_runs + bi * repeat, repeat, sizeof(double), cmp_double);
                res.batch_tok_s[bi] = percentile(batch_runs + bi * repeat, repeat, 0.50);
        }

        struct rusage ru;
        getrusage(RUSAGE_SELF, &ru);
        double rss_mib = (double)ru.ru_maxrss / 1024.0;
        const char *isa = kernels_get()->isa;

        const char *wtype = dtype_name(in->wtype) ? dtype_name(in->wtype) : "?";
        if (json) {
                /* json-c: the model's name is a file name and may hold anything */
                struct json_object *o = json_object_new_object(), *b = json_object_new_object();
                json_object_object_add(o, "model", json_object_new_string(in->name));
                json_object_object_add(o, "arch", json_object_new_string(in->arch_name));
                json_object_object_add(o, "wtype", json_object_new_string(wtype));
                json_object_object_add(o, "n_layer", json_object_new_int64(in->n_layer));
                json_object_object_add(o, "n_embd", json_object_new_int64(in->n_embd));
                json_object_object_add(o, "n_vocab", json_object_new_int64(in->n_vocab));
                json_object_object_add(o, "threads", json_object_new_int64(threadpool_size(pool)));
                json_object_object_add(o, "file_bytes", json_object_new_int64((int64_t)in->file_size));
                json_object_object_add(o, "load_ms", json_object_new_double(res.load_s * 1e3));
                json_object_object_add(o, "prompt", json_object_new_int64((int64_t)prompt));
                json_object_object_add(o, "gen", json_object_new_int64((int64_t)gen));
                json_object_object_add(o, "repeat", json_object_new_int64((int64_t)repeat));
                json_object_object_add(o, "prefill_tok_s", json_object_new_double(res.prefill_tok_s));
                json_object_object_add(o, "decode_tok_s", json_object_new_double(res.decode_tok_s));
                for (size_t bi = 0; bi < n_batches; bi++) {
                        char key[16];
                        snprintf(key, sizeof(key), "%u", batches[bi]);
                        json_object_object_add(b, key, json_object_new_double(res.batch_tok_s[bi]));
                }
                json_object_object_add(o, "batch_tok_s", b);
                json_object_object_add(o, "latency_ms_p50", json_object_new_double(res.p50_ms));
                json_object_object_add(o, "latency_ms_p99", json_object_new_double(res.p99_ms));
                json_object_object_add(o, "peak_rss_mib", json_object_new_double(rss_mib));
                json_object_object_add(o, "weight_bytes_per_token", json_object_new_int64((int64_t)in->weight_bytes));
                json_object_object_add(o, "isa", json_object_new_string(isa));
                puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_SPACED | JSON_C_TO_STRING_NOSLASHESCAPE));
                json_object_put(o);
        } else {
                printf("model:        %s (%s, %s, L%" PRIu32 " C%" PRIu32 " V%" PRIu32 ")\n", in->name, in->arch_name,
                       wtype, in->n_layer, in->n_embd, in->n_vocab);
                printf("threads:      %u, isa %s\n", threadpool_size(pool), isa);
                printf("load:         %.1f ms (%" PRIu64 " bytes)\n", res.load_s * 1e3, in->file_size);
                if (prompt > 0)
                        printf("prefill:      %.1f tok/s (%lu tokens, median of %lu runs)\n", res.prefill_tok_s, prompt,
                               repeat);
                printf("decode:       %.1f tok/s (%lu tokens, median of %lu runs), latency p50 %.2f ms, p99 %.2f ms\n",
                       res.decode_tok_s, gen, repeat, res.p50_ms, res.p99_ms);
                printf("              %.2f GB/s of weights (%" PRIu64 " bytes per token)\n",
                       res.decode_tok_s * (double)in->weight_bytes / 1e9, in->weight_bytes);
                for (size_t bi = 0; bi < n_batches; bi++)
                        printf("batch %3u:    %.1f tok/s aggregate (%.2fx single)\n", batches[bi], res.batch_tok_s[bi],
                               res.batch_tok_s[bi] / res.decode_tok_s);
                printf("peak RSS:     %.1f MiB\n", rss_mib);
        }
        ret = fflush(stdout) == 0 && !ferror(stdout) ? 0 : fail("bench: cannot write the output");
        goto finish;

eval_failed:
        fail("bench: evaluation failed: %s", strerror(-r));
finish:
        evalctx_free(ctx);
        threadpool_free(pool);
        model_free(m);
        free(tokens);
        free(logits);
        free(states);
        free(state_ptrs);
        free(logit_ptrs);
        free(batch_logits);
        free(batch_tokens);
        free(lat);
        free(runs);
        free(start);
        free(batch_runs);
        return ret;
}
