/* test-convert.c: a model converted to the native .rwkv format computes what its source computes.
 *
 * Without a requested type the conversion keeps native types as they are, so the logits must be
 * bit-identical (official .pth checkpoints in fp32/fp16/bf16, rwkv.cpp FP32 files of every
 * architecture: the parameter convention travels with the file). rwkv.cpp's Q5_1 becomes f16, and a
 * requested q8_0 re-quantizes: those land close to the reference instead. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/arch/model.h"
#include "engine/format/convert.h"
#include "tests/lib/check.h"

static const uint32_t tokens[] = { 1, 42, 7, 300 % 256, 34, 105, 110 };
#define T (sizeof(tokens) / sizeof(tokens[0]))

static char out_path[4096];

static Model *load(const char *path) {
        Model *m = NULL;
        RwkvError err = {};
        int r = model_load(path, NULL, &m, &err);
        if (r < 0) {
                fprintf(stderr, "%s: %s\n", path, error_message(&err, r));
                exit(1);
        }
        return m;
}

/* Logits after each token, one at a time, then the whole sequence again in one call. */
static float *run(const Model *m) {
        const ModelInfo *in = model_info(m);
        size_t V = in->n_vocab;
        float *logits = malloc((T + 1) * V * sizeof(float)), *state = malloc(in->state_floats * sizeof(float));
        CHECK(logits && state);
        EvalCtx *ctx = NULL;
        CHECK_OK(evalctx_new(m, NULL, 1, 4, &ctx));
        model_state_reset(m, state);
        for (size_t t = 0; t < T; t++)
                CHECK_OK(model_eval_token(ctx, state, tokens[t] % V, logits + t * V));
        uint32_t ids[T];
        for (size_t t = 0; t < T; t++)
                ids[t] = tokens[t] % V;
        model_state_reset(m, state);
        CHECK_OK(model_eval_sequence(ctx, state, ids, T, logits + T * V));
        evalctx_free(ctx);
        free(state);
        return logits;
}

static void convert(const char *src, int type) {
        TensorTable *t = NULL;
        RwkvError err = {};
        CHECK_OK(tensor_table_open(src, &t, &err));
        uint8_t hash[32];
        ConvertOptions o = { .type = type };
        int r = model_convert(t, out_path, &o, hash, &err);
        if (r < 0) {
                fprintf(stderr, "convert %s: %s\n", src, error_message(&err, r));
                exit(1);
        }
        tensor_table_free(t);
}

static void check_case(const char *dir, const char *rel, int type, double tol) {
        char src[4096];
        snprintf(src, sizeof(src), "%s/%s", dir, rel);
        convert(src, type);

        Model *a = load(src), *b = load(out_path);
        const ModelInfo *ia = model_info(a), *ib = model_info(b);
        CHECK(ia->arch == ib->arch && ia->n_layer == ib->n_layer && ia->n_embd == ib->n_embd &&
              ia->n_vocab == ib->n_vocab && ia->n_head == ib->n_head && ia->state_floats == ib->state_floats);
        CHECK(ib->format == MODEL_FORMAT_RWKV);
        CHECK(memcmp(ia->hash, ib->hash, 32) != 0);

        size_t n = (T + 1) * ia->n_vocab;
        float *la = run(a), *lb = run(b);
        double d = 0;
        for (size_t i = 0; i < n; i++) {
                CHECK(isfinite(lb[i]));
                d = fmax(d, fabs((double)la[i] - lb[i]));
        }
        printf("%-42s -> .rwkv %-5s %-8s max abs diff %.3g\n", rel, type < 0 ? "keep" : dtype_name((DType)type),
               ib->arch_name, d);
        if (tol == 0)
                CHECK(memcmp(la, lb, n * sizeof(float)) == 0);
        else
                CHECK(d <= tol);
        free(la);
        free(lb);
        model_free(a);
        model_free(b);
}

static void remove_tmp(void) {
        if (out_path[0])
                unlink(out_path);
}

int main(void) {
        const char *dir = test_reference_dir();
        const char *tmp = getenv("TMPDIR");
        snprintf(out_path, sizeof(out_path), "%s/rwkvd-test-convert-%d.rwkv", tmp && *tmp ? tmp : "/tmp",
                 (int)getpid());
        atexit(remove_tmp);

        check_case(dir, "pth-rwkv7/rwkv7-L2-C128-V512-fp32.pth", -1, 0);
        check_case(dir, "pth-rwkv7/rwkv7-L2-C128-V512-fp16.pth", -1, 0);
        check_case(dir, "pth-rwkv7/rwkv7-L2-C128-V512-bf16.pth", -1, 0);
        check_case(dir, "tiny-rwkv/tiny-rwkv-4v0-660K-FP32.bin", -1, 0);
        check_case(dir, "tiny-rwkv/tiny-rwkv-5v1-730K-FP32.bin", -1, 0);
        check_case(dir, "tiny-rwkv/tiny-rwkv-5v2-730K-FP32.bin", -1, 0);
        check_case(dir, "tiny-rwkv/tiny-rwkv-6v0-1m-FP32.bin", -1, 0);
        check_case(dir, "tiny-rwkv/tiny-rwkv-7v0-834K-FP32.bin", -1, 0);
        check_case(dir, "tiny-rwkv/tiny-rwkv-7v0-834K-FP16.bin", -1, 0);
        /* ggml Q5_1 -> f16 keeps the dequantized values to f16 precision */
        check_case(dir, "tiny-rwkv/tiny-rwkv-7v0-834K-Q5_1.bin", -1, 2e-2);
        /* re-quantized matrices (head and embedding included): close, not equal */
        check_case(dir, "tiny-rwkv/tiny-rwkv-7v0-834K-FP32.bin", DTYPE_Q8_0, 0.05);
        check_case(dir, "tiny-rwkv/tiny-rwkv-6v0-1m-FP32.bin", DTYPE_Q8_0, 0.25);
        check_case(dir, "pth-rwkv7/rwkv7-L2-C128-V512-fp32.pth", DTYPE_Q8_0, 0.25);

        unlink(out_path);
        return 0;
}
