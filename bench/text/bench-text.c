/* bench-text.c: World tokenizer encode speed (MB/s, one core) on a few MB of mixed English, code and
 * UTF-8 text, and sampler latency per token over a 65536 vocabulary.
 *
 * Times are thread CPU time, best of 5 for encoding.
 *
 * usage: bench-text [VOCAB] [--mb N]   (VOCAB defaults to $RWKV_REFERENCE_DIR/rwkv_vocab_v20230424.txt) */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/text/sampler.h"
#include "engine/text/tokenizer.h"

/* CPU time of this thread: the build machine is shared, and wall time would measure the neighbours. */
static double now(void) {
        struct timespec ts;
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
        return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static const char *const pieces[] = {
        "The quick brown fox jumps over the lazy dog. ",
        "In 1969, the first humans landed on the Moon; it was a remarkable achievement of engineering.\n",
        "User: What is the capital of France?\n\nAssistant: The capital of France is Paris.\n\n",
        "int main(int argc, char **argv) {\n        for (int i = 0; i < argc; i++)\n                printf(\"%s\\n\", "
        "argv[i]);\n        return 0;\n}\n",
        "def fib(n):\n    return n if n < 2 else fib(n - 1) + fib(n - 2)\n",
        "{\"name\": \"rwkvd\", \"version\": [0, 1, 0], \"tags\": [\"rnn\", \"daemon\"]}\n",
        "\xe4\xbd\xa0\xe5\xa5\xbd\xef\xbc\x8c\xe4\xb8\x96\xe7\x95\x8c\xe3\x80\x82\xe4\xbb\x8a\xe5\xa4\xa9\xe5\xa4\xa9"
        "\xe6\xb0\x94\xe5\xbe\x88\xe5\xa5\xbd\xe3\x80\x82",
        "\xd0\x9f\xd1\x80\xd0\xb8\xd0\xb2\xd0\xb5\xd1\x82, \xd0\xbc\xd0\xb8\xd1\x80! ",
        "caf\xc3\xa9 na\xc3\xafve r\xc3\xa9sum\xc3\xa9 \xf0\x9f\x98\x80 ",
        "    if (r < 0)\n            return log_error_errno(r, \"Failed to parse '%s': %m\", path);\n",
};

int main(int argc, char *argv[]) {
        char path[4096];
        const char *vocab = NULL;
        size_t mb = 8;

        for (int i = 1; i < argc; i++) {
                if (strcmp(argv[i], "--mb") == 0 && i + 1 < argc)
                        mb = strtoul(argv[++i], NULL, 10);
                else
                        vocab = argv[i];
        }
        if (!vocab) {
                const char *d = getenv("RWKV_REFERENCE_DIR");
                snprintf(path, sizeof(path), "%s/rwkv_vocab_v20230424.txt", d ? d : "../shared/reference");
                vocab = path;
        }

        Tokenizer *t = NULL;
        RwkvError err = {};
        double t0 = now();
        int r = tokenizer_load_world(vocab, &t, &err);
        if (r < 0) {
                fprintf(stderr, "bench-text: %s\n", error_message(&err, r));
                return 1;
        }
        printf("vocab load: %.1f ms\n", (now() - t0) * 1e3);

        /* Text: the pieces in a pseudo-random order (deterministic), mb MiB. */
        size_t len = mb << 20, n = 0;
        uint8_t *text = malloc(len);
        Rng rng;
        rng_seed(&rng, 1);
        while (n < len) {
                const char *p = pieces[rng_next(&rng) % (sizeof(pieces) / sizeof(pieces[0]))];
                size_t l = strlen(p);
                if (l > len - n)
                        l = len - n;
                memcpy(text + n, p, l);
                n += l;
        }

        uint32_t *ids = NULL;
        size_t n_ids = 0;
        double best = 1e9;
        for (int rep = 0; rep < 5; rep++) {
                free(ids);
                t0 = now();
                r = tokenizer_encode_all(t, text, len, &ids, &n_ids);
                double dt = now() - t0;
                if (r < 0)
                        return 1;
                if (dt < best)
                        best = dt;
        }
        printf("encode: %zu MiB -> %zu tokens (%.2f bytes/token) in %.3f s: %.1f MB/s\n", mb, n_ids,
               (double)len / (double)n_ids, best, (double)len / best / 1e6);

        /* Decode speed (token bytes lookup). */
        t0 = now();
        size_t total = 0;
        for (size_t i = 0; i < n_ids; i++) {
                size_t l;
                if (tokenizer_token_bytes(t, ids[i], &l))
                        total += l;
        }
        printf("decode: %.1f MB/s (%s)\n", (double)total / (now() - t0) / 1e6,
               total == len ? "round trip ok" : "MISMATCH");

        /* Sampler over 65536 random logits: "flat" (uniform in [-2, 2] and two at 11 and 12: once the
         * penalties pushed those two down, top-p 0.3 keeps thousands of tokens) and "peaked" (uniform in
         * [-20, 20]: a few tokens hold most of the mass, as with a trained model's confident steps). */
        uint32_t nv = 65536;
        float *logits = malloc(nv * sizeof(float)), *counts = calloc(nv, sizeof(float));
        Sampler *s = NULL;
        sampler_new(nv, &s);
        struct {
                const char *name;
                SamplerParams p;
        } cfg[4];
        cfg[0].name = "greedy";
        cfg[0].p = sampler_params_default();
        cfg[0].p.temperature = 0;
        cfg[1].name = "default (T=1, top-p 0.3, penalties)";
        cfg[1].p = sampler_params_default();
        cfg[2].name = "top-p 0.95";
        cfg[2].p = sampler_params_default();
        cfg[2].p.top_p = 0.95f;
        cfg[3].name = "top-k 40, T=0.8";
        cfg[3].p = sampler_params_default();
        cfg[3].p.top_k = 40;
        cfg[3].p.top_p = 1.0f;
        cfg[3].p.temperature = 0.8f;
        for (int peaked = 0; peaked < 2; peaked++) {
                double spread = peaked ? 40.0 : 4.0;
                for (uint32_t i = 0; i < nv; i++)
                        logits[i] = (float)(rng_uniform(&rng) * spread - spread / 2);
                if (!peaked) {
                        logits[123] = 12.0f;
                        logits[456] = 11.0f;
                }
                for (size_t c = 0; c < 4; c++) {
                        int iters = 2000;
                        memset(counts, 0, nv * sizeof(float));
                        t0 = now();
                        for (int i = 0; i < iters; i++) {
                                uint32_t tok;
                                sampler_sample(s, &cfg[c].p, logits, counts, NULL, 0, &rng, &tok);
                                sampler_penalty_update(counts, nv, cfg[c].p.penalty_decay, tok);
                        }
                        printf("sample %-6s %-36s %.1f us/token (vocab %u)\n", peaked ? "peaked" : "flat", cfg[c].name,
                               (now() - t0) / iters * 1e6, nv);
                }
        }

        sampler_free(s);
        free(logits);
        free(counts);
        free(ids);
        free(text);
        tokenizer_free(t);
        return 0;
}
