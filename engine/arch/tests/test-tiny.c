/* test-tiny.c: conformance of every architecture on rwkv.cpp's tiny models (../shared/reference/tiny-rwkv).
 *
 * For each file: the logits after tokens 34,105,110 from a fresh state match the version's expected
 * logits within the tolerance of its weight type; sequence mode (whole and in small chunks), batch
 * mode and a saved-then-restored state all agree with token-by-token evaluation. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/arch/model.h"
#include "tests/lib/check.h"

#define V 256

static const uint32_t tokens[] = { 34, 105, 110 };
#define T (sizeof(tokens) / sizeof(tokens[0]))

typedef struct Case {
        const char *file, *expected;
        ModelArch arch;
        double tol;   /* vs the expected logits */
        double agree; /* sequence/batch vs serial */
} Case;

/* Q5 tolerances: 1.5x what rwkv.cpp itself shows on the same file (7v0: the 0.01). */
static const Case cases[] = {
        { "tiny-rwkv-4v0-660K-FP32.bin", "4v0-660K", MODEL_ARCH_V4, 1e-4, 1e-5 },
        { "tiny-rwkv-4v0-660K-FP16.bin", "4v0-660K", MODEL_ARCH_V4, 2e-2, 1e-4 },
        { "tiny-rwkv-4v0-660K-Q5_1.bin", "4v0-660K", MODEL_ARCH_V4, 0.10 * 1.5, 1e-4 },
        { "tiny-rwkv-5v1-730K-FP32.bin", "5v1-730K", MODEL_ARCH_V5_1, 1e-4, 1e-5 },
        { "tiny-rwkv-5v1-730K-FP16.bin", "5v1-730K", MODEL_ARCH_V5_1, 2e-2, 1e-4 },
        { "tiny-rwkv-5v1-730K-Q5_1.bin", "5v1-730K", MODEL_ARCH_V5_1, 0.28 * 1.5, 1e-4 },
        { "tiny-rwkv-5v2-730K-FP32.bin", "5v2-730K", MODEL_ARCH_V5_2, 1e-4, 1e-5 },
        { "tiny-rwkv-5v2-730K-FP16.bin", "5v2-730K", MODEL_ARCH_V5_2, 2e-2, 1e-4 },
        { "tiny-rwkv-5v2-730K-Q5_1.bin", "5v2-730K", MODEL_ARCH_V5_2, 0.39 * 1.5, 1e-4 },
        { "tiny-rwkv-6v0-1m-FP32.bin", "6v0-1m", MODEL_ARCH_V6, 1e-4, 1e-5 },
        { "tiny-rwkv-6v0-1m-FP16.bin", "6v0-1m", MODEL_ARCH_V6, 2e-2, 1e-4 },
        { "tiny-rwkv-6v0-1m-Q5_1.bin", "6v0-1m", MODEL_ARCH_V6, 0.12 * 1.5, 1e-4 },
        { "tiny-rwkv-6v0-3m-Q5_1.bin", "6v0-3m", MODEL_ARCH_V6, 0.077 * 1.5, 1e-4 },
        { "tiny-rwkv-7v0-834K-FP32.bin", "7v0-834K", MODEL_ARCH_V7, 1e-4, 1e-5 },
        { "tiny-rwkv-7v0-834K-FP16.bin", "7v0-834K", MODEL_ARCH_V7, 2e-2, 1e-4 },
        { "tiny-rwkv-7v0-834K-Q5_0.bin", "7v0-834K", MODEL_ARCH_V7, 0.01, 1e-4 },
        { "tiny-rwkv-7v0-834K-Q5_1.bin", "7v0-834K", MODEL_ARCH_V7, 0.01, 1e-4 },
};

static double max_diff(const float *a, const float *b, size_t n) {
        double d = 0;
        for (size_t i = 0; i < n; i++) {
                CHECK(isfinite(a[i]) && isfinite(b[i]));
                d = fmax(d, fabs((double)a[i] - b[i]));
        }
        return d;
}

static void read_expected(const char *dir, const char *name, float *out) {
        char path[4096];
        snprintf(path, sizeof(path), "%s/tiny-rwkv/expected-logits-%s.bin", dir, name);
        FILE *f = fopen(path, "re");
        CHECK(f);
        CHECK(fread(out, sizeof(float), V, f) == V);
        fclose(f);
}

static void run_case(const char *dir, const Case *c, ThreadPool *pool) {
        char path[4096];
        snprintf(path, sizeof(path), "%s/tiny-rwkv/%s", dir, c->file);

        Model *m = NULL;
        RwkvError err = {};
        int r = model_load(path, NULL, &m, &err);
        if (r < 0) {
                fprintf(stderr, "%s: %s\n", c->file, error_message(&err, r));
                exit(1);
        }
        const ModelInfo *in = model_info(m);
        CHECK(in->arch == c->arch);
        CHECK(in->n_vocab == V);
        CHECK(model_tokenizer(m) != NULL);
        size_t S = in->state_floats;

        float expected[V], serial[V], seq[V], chunked[V], restored[V];
        read_expected(dir, c->expected, expected);

        /* token by token, single-threaded */
        EvalCtx *ctx = NULL;
        CHECK_OK(evalctx_new(m, NULL, 4, 0, &ctx));
        float *state = malloc(S * sizeof(float)), *saved = malloc(S * sizeof(float));
        CHECK(state && saved);
        model_state_reset(m, state);
        for (size_t t = 0; t < T; t++) {
                CHECK_OK(model_eval_token(ctx, state, tokens[t], t + 1 == T ? serial : NULL));
                if (t == 1)
                        memcpy(saved, state, S * sizeof(float));
        }
        double d_ref = max_diff(serial, expected, V);

        /* a state copied mid-sequence continues exactly like the original did */
        CHECK_OK(model_eval_token(ctx, saved, tokens[2], restored));
        CHECK(memcmp(restored, serial, sizeof(serial)) == 0);

        /* one prefill call on a pool; then in chunks of 2 (a shift across the chunk boundary) */
        EvalCtx *pctx = NULL, *cctx = NULL;
        CHECK_OK(evalctx_new(m, pool, 4, 0, &pctx));
        CHECK_OK(evalctx_new(m, pool, 1, 2, &cctx));
        model_state_reset(m, state);
        CHECK_OK(model_eval_sequence(pctx, state, tokens, T, seq));
        double d_seq = max_diff(seq, serial, V);
        model_state_reset(m, state);
        CHECK_OK(model_eval_sequence(cctx, state, tokens, T, chunked));
        double d_chunk = max_diff(chunked, serial, V);

        /* the logits after every token, in one call (perplexity) */
        float all[T][V];
        model_state_reset(m, state);
        CHECK_OK(model_eval_sequence_all(cctx, state, tokens, T, &all[0][0]));
        double d_all = max_diff(all[T - 1], serial, V);
        model_state_reset(m, state);
        CHECK_OK(model_eval_token(ctx, state, tokens[0], restored));
        d_all = fmax(d_all, max_diff(all[0], restored, V));

        /* batch: three sessions, each fed a rotation of the tokens, one call per step */
        float *states[3], *outs[3], batch_logits[3][V], ref[3][V];
        for (size_t b = 0; b < 3; b++) {
                states[b] = malloc(S * sizeof(float));
                CHECK(states[b]);
                model_state_reset(m, states[b]);
                outs[b] = batch_logits[b];
        }
        for (size_t t = 0; t < T; t++) {
                uint32_t toks[3];
                for (size_t b = 0; b < 3; b++)
                        toks[b] = tokens[(t + b) % T];
                CHECK_OK(model_eval_batch(pctx, states, toks, 3, t + 1 == T ? outs : NULL));
        }
        double d_batch = 0;
        for (size_t b = 0; b < 3; b++) {
                model_state_reset(m, state);
                for (size_t t = 0; t < T; t++)
                        CHECK_OK(model_eval_token(ctx, state, tokens[(t + b) % T], ref[b]));
                d_batch = fmax(d_batch, max_diff(batch_logits[b], ref[b], V));
                free(states[b]);
        }

        printf("%-30s %-8s vs expected %.3g (tol %.3g)  sequence %.3g  chunked %.3g  all %.3g  batch %.3g\n", c->file,
               in->arch_name, d_ref, c->tol, d_seq, d_chunk, d_all, d_batch);
        CHECK(d_ref <= c->tol);
        CHECK(d_seq <= c->agree);
        CHECK(d_chunk <= c->agree);
        CHECK(d_all <= c->agree);
        CHECK(d_batch <= c->agree);

        /* hostile input: a token outside the vocabulary is refused and leaves the state alone */
        memcpy(saved, state, S * sizeof(float));
        CHECK_ERR(model_eval_token(ctx, state, V, serial), EINVAL);
        uint32_t bad[2] = { 1, 100000 };
        CHECK_ERR(model_eval_sequence(pctx, state, bad, 2, seq), EINVAL);
        CHECK(memcmp(saved, state, S * sizeof(float)) == 0);
        CHECK_ERR(model_eval_batch(cctx, states, tokens, 2, NULL), EINVAL); /* above max_batch */
        CHECK_OK(model_eval_sequence(pctx, state, tokens, 0, NULL));

        free(state);
        free(saved);
        evalctx_free(ctx);
        evalctx_free(pctx);
        evalctx_free(cctx);
        model_free(m);
}

int main(int argc, char *argv[]) {
        const char *dir = test_reference_dir();
        ThreadPool *pool = NULL;
        CHECK_OK(threadpool_new(2, &pool));
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
                if (argc < 2 || strstr(cases[i].file, argv[1]))
                        run_case(dir, &cases[i], pool);
        threadpool_free(pool);
        return 0;
}
