/* cmd-eval.c: `rwkvctl eval`: run token ids from a fresh state in-process and print the final logits.
 *
 * The conformance scripts compare these numbers with reference implementations, so the output is
 * exactly one `%.9g` per line (round-trips a float) and nothing else on stdout. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/arch/model.h"
#include "engine/text/utf8-stream.h"
#include "tools/rwkvctl/rwkvctl.h"

#define EVAL_MAX_TOKENS (1u << 20)

/* "34,105,110": decimal ids separated by commas, nothing else. */
static int parse_tokens(const char *s, uint32_t **ret, size_t *ret_n) {
        size_t cap = 1;
        for (const char *p = s; *p; p++)
                cap += *p == ',';
        if (cap > EVAL_MAX_TOKENS)
                return -E2BIG;
        _cleanup_(freep) uint32_t *ids = malloc(cap * sizeof(uint32_t));
        if (!ids)
                return -ENOMEM;
        size_t n = 0;
        const char *p = s;
        for (;;) {
                if (*p < '0' || *p > '9')
                        return -EINVAL;
                uint64_t v = 0;
                while (*p >= '0' && *p <= '9') {
                        v = v * 10 + (uint64_t)(*p++ - '0');
                        if (v > UINT32_MAX)
                                return -ERANGE;
                }
                ids[n++] = (uint32_t)v;
                if (*p == '\0')
                        break;
                if (*p++ != ',')
                        return -EINVAL;
        }
        *ret = TAKE_PTR(ids);
        *ret_n = n;
        return 0;
}

static int parse_threads(const char *s, unsigned *ret) {
        char *end;
        errno = 0;
        unsigned long v = strtoul(s, &end, 10);
        if (errno || end == s || *end || v > 1024 || s[0] == '-')
                return -EINVAL;
        *ret = (unsigned)v;
        return 0;
}

static void help(void) {
        printf("rwkvctl eval --model FILE --tokens ID,ID,... [--logits] [--sequence] [--vocab FILE] [--threads N] "
               "[--json]\n\n"
               "Feed token ids to a model from a fresh state, in-process, and print the final logits.\n\n"
               "  --model FILE    model file (.rwkv, rwkv.cpp .bin, PyTorch .pth)\n"
               "  --tokens LIST   comma-separated token ids\n"
               "  --logits        print every logit, one per line (default: the 10 most likely tokens)\n"
               "  --sequence      feed all tokens in one prefill call (default: one at a time)\n"
               "  --vocab FILE    World vocabulary for a model file that embeds none\n"
               "  --threads N     compute threads (default: all CPUs)\n"
               "  --json          one JSON object: {\"logits\": [...]} or {\"top\": [{\"id\", \"logit\", "
               "\"text\"}]}\n");
}

typedef struct Top {
        uint32_t id;
        float logit;
} Top;

static void print_logits_json(const float *logits, uint32_t n) {
        fputs("{\"logits\": [", stdout);
        for (uint32_t i = 0; i < n; i++) {
                if (isfinite(logits[i]))
                        printf("%s%.9g", i ? ", " : "", logits[i]);
                else
                        printf("%snull", i ? ", " : "");
        }
        fputs("]}\n", stdout);
}

static void print_top(const Model *m, const float *logits, bool json) {
        const ModelInfo *in = model_info(m);
        const Tokenizer *tok = model_tokenizer(m);
        Top top[10];
        size_t n = 0;
        for (uint32_t i = 0; i < in->n_vocab; i++) {
                if (n == 10 && logits[i] <= top[9].logit)
                        continue;
                size_t j = n < 10 ? n++ : 9;
                while (j > 0 && top[j - 1].logit < logits[i]) {
                        top[j] = top[j - 1];
                        j--;
                }
                top[j] = (Top){ i, logits[i] };
        }
        if (json) {
                json_object *root = json_object_new_object(), *arr = json_object_new_array();
                for (size_t i = 0; i < n; i++) {
                        json_object *o = json_object_new_object();
                        size_t len = 0;
                        const uint8_t *b = tok ? tokenizer_token_bytes(tok, top[i].id, &len) : NULL;
                        json_object_object_add(o, "id", json_object_new_int64(top[i].id));
                        json_object_object_add(o, "logit", json_object_new_double(top[i].logit));
                        if (b) {
                                /* JSON strings are UTF-8: a partial character shows as U+FFFD */
                                uint8_t text[UTF8_STREAM_OUT_MAX(256) + UTF8_STREAM_FLUSH_MAX];
                                Utf8Stream u;
                                utf8_stream_init(&u);
                                size_t tl = utf8_stream_feed(&u, b, MIN(len, (size_t)256), text);
                                tl += utf8_stream_flush(&u, text + tl);
                                json_object_object_add(o, "text",
                                                       json_object_new_string_len((const char *)text, (int)tl));
                        }
                        json_object_array_add(arr, o);
                }
                json_object_object_add(root, "top", arr);
                puts(json_object_to_json_string_ext(root, JSON_C_TO_STRING_PLAIN));
                json_object_put(root);
                return;
        }
        for (size_t i = 0; i < n; i++) {
                printf("%8" PRIu32 " %12.6f", top[i].id, top[i].logit);
                size_t len = 0;
                const uint8_t *b = tok ? tokenizer_token_bytes(tok, top[i].id, &len) : NULL;
                if (b) {
                        fputs("  '", stdout);
                        for (size_t k = 0; k < len; k++)
                                if (b[k] >= 0x20 && b[k] < 0x7f && b[k] != '\'' && b[k] != '\\')
                                        putchar(b[k]);
                                else
                                        printf("\\x%02x", b[k]);
                        putchar('\'');
                }
                putchar('\n');
        }
}

int verb_eval(int argc, char *argv[]) {
        enum { OPT_MODEL = 0x100, OPT_TOKENS, OPT_LOGITS, OPT_SEQUENCE, OPT_VOCAB, OPT_THREADS, OPT_JSON };
        static const struct option options[] = {
                { "help", no_argument, NULL, 'h' },
                { "model", required_argument, NULL, OPT_MODEL },
                { "tokens", required_argument, NULL, OPT_TOKENS },
                { "logits", no_argument, NULL, OPT_LOGITS },
                { "sequence", no_argument, NULL, OPT_SEQUENCE },
                { "vocab", required_argument, NULL, OPT_VOCAB },
                { "threads", required_argument, NULL, OPT_THREADS },
                { "json", no_argument, NULL, OPT_JSON },
                {},
        };
        const char *model_path = NULL, *token_list = NULL, *vocab = NULL;
        bool all_logits = false, sequence = false, json = arg_json;
        unsigned threads = 0;
        int c, r;

        while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0)
                switch (c) {
                case 'h':
                        help();
                        return 0;
                case OPT_MODEL:
                        model_path = optarg;
                        break;
                case OPT_TOKENS:
                        token_list = optarg;
                        break;
                case OPT_LOGITS:
                        all_logits = true;
                        break;
                case OPT_SEQUENCE:
                        sequence = true;
                        break;
                case OPT_VOCAB:
                        vocab = optarg;
                        break;
                case OPT_JSON:
                        json = true;
                        break;
                case OPT_THREADS:
                        if (parse_threads(optarg, &threads) < 0)
                                return fail_usage("eval: invalid --threads '%s' (0 to 1024)", optarg);
                        break;
                default:
                        return 2;
                }
        if (optind < argc)
                return fail_usage("eval: unexpected argument '%s'", argv[optind]);
        if (!model_path)
                return fail_usage("eval: --model FILE is required");
        if (!token_list)
                return fail_usage("eval: --tokens LIST is required");

        _cleanup_(freep) uint32_t *ids = NULL;
        size_t n = 0;
        r = parse_tokens(token_list, &ids, &n);
        if (r == -E2BIG)
                return fail_usage("eval: more than %u tokens", EVAL_MAX_TOKENS);
        if (r < 0)
                return fail_usage("eval: invalid --tokens '%s' (expected ids like 34,105,110)", token_list);

        Model *m = NULL;
        RwkvError err = {};
        r = model_load(model_path, &(ModelLoadOptions){ .vocab_path = vocab }, &m, &err);
        if (r < 0)
                return fail("eval: cannot load '%s': %s", model_path, error_message(&err, r));
        const ModelInfo *in = model_info(m);
        for (size_t i = 0; i < n; i++)
                if (ids[i] >= in->n_vocab) {
                        uint32_t n_vocab = in->n_vocab; /* in points into m */
                        model_free(m);
                        return fail("eval: token %" PRIu32 " is outside the vocabulary (%" PRIu32 " tokens)", ids[i],
                                    n_vocab);
                }

        ThreadPool *pool = NULL;
        EvalCtx *ctx = NULL;
        float *state = malloc(in->state_floats * sizeof(float));
        float *logits = malloc((size_t)in->n_vocab * sizeof(float));
        int ret = 1;
        if (!state || !logits) {
                fail("eval: out of memory");
                goto out;
        }
        r = threadpool_new(threads, &pool);
        if (r >= 0)
                r = evalctx_new(m, pool, 1, 0, &ctx);
        if (r < 0) {
                fail("eval: cannot set up the evaluation: %s", strerror(-r));
                goto out;
        }

        model_state_reset(m, state);
        if (sequence)
                r = model_eval_sequence(ctx, state, ids, n, logits);
        else
                for (size_t i = 0; i < n && r >= 0; i++)
                        r = model_eval_token(ctx, state, ids[i], i + 1 == n ? logits : NULL);
        if (r < 0) {
                fail("eval: evaluation failed: %s", strerror(-r));
                goto out;
        }

        if (all_logits && json)
                print_logits_json(logits, in->n_vocab);
        else if (all_logits)
                for (uint32_t i = 0; i < in->n_vocab; i++)
                        printf("%.9g\n", logits[i]);
        else
                print_top(m, logits, json);
        ret = fflush(stdout) == 0 && !ferror(stdout) ? 0 : fail("eval: cannot write the output");
out:
        free(state);
        free(logits);
        evalctx_free(ctx);
        threadpool_free(pool);
        model_free(m);
        return ret;
}
