/* test-pth.c: RWKV-7 from official-layout PyTorch checkpoints (../shared/reference/pth-rwkv7).
 *
 * The reference logits were computed in float64 by an independent implementation after every prefix
 * of the manifest's tokens; ours must match them in serial mode (one token at a time) and in
 * sequence mode (each prefix in one prefill call, with chunks small enough to cross boundaries). */
#include <json-c/json.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/arch/model.h"
#include "tests/lib/check.h"

#define MAX_T 64

static double max_diff(const float *a, const float *b, size_t n) {
        double d = 0;
        for (size_t i = 0; i < n; i++) {
                CHECK(isfinite(a[i]));
                d = fmax(d, fabs((double)a[i] - b[i]));
        }
        return d;
}

static float *read_floats(const char *path, size_t n) {
        FILE *f = fopen(path, "re");
        CHECK(f);
        float *v = malloc(n * sizeof(float));
        CHECK(v);
        CHECK(fread(v, sizeof(float), n, f) == n);
        CHECK(fgetc(f) == EOF);
        fclose(f);
        return v;
}

static void run_model(const char *dir, json_object *jm, const uint32_t *tokens, size_t T, ThreadPool *pool) {
        json_object *o;
        CHECK(json_object_object_get_ex(jm, "file", &o));
        const char *file = json_object_get_string(o);
        CHECK(json_object_object_get_ex(jm, "logits", &o));
        const char *logits_file = json_object_get_string(o);
        CHECK(json_object_object_get_ex(jm, "dtype", &o));
        const char *dtype = json_object_get_string(o);
        CHECK(json_object_object_get_ex(jm, "vocab", &o));
        size_t V = (size_t)json_object_get_int(o);
        CHECK(json_object_object_get_ex(jm, "n_layer", &o));
        uint32_t n_layer = (uint32_t)json_object_get_int(o);
        CHECK(json_object_object_get_ex(jm, "n_embd", &o));
        uint32_t n_embd = (uint32_t)json_object_get_int(o);
        double tol = strcmp(dtype, "fp32") == 0 ? 2e-4 : 2e-3;

        char path[4096];
        snprintf(path, sizeof(path), "%s/pth-rwkv7/%s", dir, file);
        Model *m = NULL;
        RwkvError err = {};
        int r = model_load(path, NULL, &m, &err);
        if (r < 0) {
                fprintf(stderr, "%s: %s\n", file, error_message(&err, r));
                exit(1);
        }
        const ModelInfo *in = model_info(m);
        CHECK(in->arch == MODEL_ARCH_V7);
        CHECK(in->n_vocab == V && in->n_layer == n_layer && in->n_embd == n_embd);
        CHECK(in->head_size == 64);
        CHECK(in->format == MODEL_FORMAT_PTH);

        snprintf(path, sizeof(path), "%s/pth-rwkv7/%s", dir, logits_file);
        float *ref = read_floats(path, T * V);
        float *logits = malloc(V * sizeof(float)), *state = malloc(in->state_floats * sizeof(float));
        CHECK(logits && state);

        EvalCtx *ctx = NULL, *sctx = NULL;
        CHECK_OK(evalctx_new(m, NULL, 1, 0, &ctx));
        CHECK_OK(evalctx_new(m, pool, 1, 5, &sctx));

        double d_serial = 0, d_seq = 0;
        model_state_reset(m, state);
        for (size_t t = 0; t < T; t++) {
                CHECK_OK(model_eval_token(ctx, state, tokens[t], logits));
                d_serial = fmax(d_serial, max_diff(logits, ref + t * V, V));
        }
        for (size_t t = 0; t < T; t++) {
                model_state_reset(m, state);
                CHECK_OK(model_eval_sequence(sctx, state, tokens, t + 1, logits));
                d_seq = fmax(d_seq, max_diff(logits, ref + t * V, V));
        }
        printf("%-32s serial %.3g  sequence %.3g  (tol %.3g)\n", file, d_serial, d_seq, tol);
        CHECK(d_serial <= tol);
        CHECK(d_seq <= tol);

        free(ref);
        free(logits);
        free(state);
        evalctx_free(ctx);
        evalctx_free(sctx);
        model_free(m);
}

int main(void) {
        const char *dir = test_reference_dir();
        char path[4096];
        snprintf(path, sizeof(path), "%s/pth-rwkv7/manifest.json", dir);
        json_object *man = json_object_from_file(path);
        if (!man)
                SKIP("no %s", path);

        json_object *jt, *jmodels;
        CHECK(json_object_object_get_ex(man, "tokens", &jt));
        CHECK(json_object_object_get_ex(man, "models", &jmodels));
        size_t T = json_object_array_length(jt);
        CHECK(T > 0 && T <= MAX_T);
        uint32_t tokens[MAX_T];
        for (size_t i = 0; i < T; i++)
                tokens[i] = (uint32_t)json_object_get_int(json_object_array_get_idx(jt, i));

        ThreadPool *pool = NULL;
        CHECK_OK(threadpool_new(2, &pool));
        size_t n = json_object_array_length(jmodels);
        CHECK(n > 0);
        for (size_t i = 0; i < n; i++)
                run_model(dir, json_object_array_get_idx(jmodels, i), tokens, T, pool);
        threadpool_free(pool);
        json_object_put(man);
        return 0;
}
