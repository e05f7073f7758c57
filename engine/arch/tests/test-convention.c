/* test-convention.c: both parameter conventions give the same network, for every architecture.
 *
 * Reference data in the official (PyTorch) layout exists only for RWKV-7, so this test undoes what
 * rwkv.cpp's converter did to each tiny model (v4: decay = -exp(w); v5: decay = exp(-exp(w)), bonus
 * = exp(u) for time_first; v6/v7: LoRA factors transposed; v7: the six token-shift mixes
 * concatenated) and writes the result as a native .rwkv file that declares the official convention.
 * Loading it must give the logits the rwkv.cpp file gives. (v5 also differs in its ln_x epsilon by
 * convention; the comparison runs the rwkv.cpp model with the official epsilon for that.) */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/arch/model-internal.h"
#include "engine/format/native-writer.h"
#include "tests/lib/check.h"

static const uint32_t tokens[] = { 34, 105, 110 };
#define T (sizeof(tokens) / sizeof(tokens[0]))

typedef struct Out {
        char name[128];
        uint32_t n_dims;
        uint64_t shape[4];
        float *data;
        size_t n;
} Out;

static bool ends_with(const char *s, const char *suffix) {
        size_t a = strlen(s), b = strlen(suffix);
        return a >= b && strcmp(s + a - b, suffix) == 0;
}

static float *decode(const Tensor *t, size_t *ret_n) {
        size_t n = (size_t)tensor_nelem(t), cols = (size_t)tensor_cols(t), rb = dtype_row_bytes(t->dtype, cols);
        float *v = malloc(n * sizeof(float));
        CHECK(v && rb);
        dtype_rows_to_f32(t->dtype, t->data, cols, 0, n / cols, v);
        *ret_n = n;
        return v;
}

/* (count, rows, cols) -> (count, cols, rows) */
static void transpose(Out *o, size_t count) {
        size_t rows = o->shape[o->n_dims - 2], cols = o->shape[o->n_dims - 1];
        float *d = malloc(o->n * sizeof(float));
        CHECK(d);
        for (size_t i = 0; i < count; i++)
                for (size_t r = 0; r < rows; r++)
                        for (size_t c = 0; c < cols; c++)
                                d[i * rows * cols + c * rows + r] = o->data[i * rows * cols + r * cols + c];
        free(o->data);
        o->data = d;
        o->shape[o->n_dims - 2] = cols;
        o->shape[o->n_dims - 1] = rows;
}

static void set_shape(Out *o, uint32_t n_dims, uint64_t a, uint64_t b, uint64_t c) {
        uint64_t s[3] = { a, b, c };
        o->n_dims = n_dims;
        memcpy(o->shape, s, sizeof(s));
}

/* Rewrite one tensor of a rwkv.cpp file into the official layout; may emit several. v6's time_decay
 * is stored raw in both layouts (only reshaped). */
static size_t to_official(const char *name, const Tensor *t, bool v6, Out *out) {
        Out *o = &out[0];
        snprintf(o->name, sizeof(o->name), "%s", name);
        o->n_dims = t->n_dims;
        memcpy(o->shape, t->shape, sizeof(o->shape));
        o->data = decode(t, &o->n);
        size_t C = o->n;

        if (ends_with(name, ".att.x_rwkvag")) {
                static const char *const mix[6] = { "r", "w", "k", "v", "a", "g" };
                C = o->n / 6;
                float *all = o->data;
                for (size_t i = 0; i < 6; i++) {
                        Out *x = &out[i];
                        snprintf(x->name, sizeof(x->name), "%.*s.att.x_%s",
                                 (int)(strlen(name) - strlen(".att.x_rwkvag")), name, mix[i]);
                        set_shape(x, 3, 1, 1, C);
                        x->n = C;
                        x->data = malloc(C * sizeof(float));
                        CHECK(x->data);
                        memcpy(x->data, all + i * C, C * sizeof(float));
                }
                free(all);
                return 6;
        }
        if (ends_with(name, ".att.time_decay") && v6) {
                set_shape(o, 3, 1, 1, o->n);
        } else if (ends_with(name, ".att.time_decay")) {
                bool v4 = t->n_dims == 1;
                for (size_t i = 0; i < o->n; i++)
                        o->data[i] = v4 ? logf(-o->data[i]) : logf(-logf(o->data[i]));
                if (t->n_dims == 3 && t->shape[1] == 1) /* v5.1 per head (H,1,1) -> (H) */
                        set_shape(o, 1, t->shape[0], 0, 0);
                else if (t->n_dims == 3) /* (H,S,1) -> (H,S) */
                        set_shape(o, 2, t->shape[0], t->shape[1], 0);
        } else if (strstr(name, ".att.time_first") && t->n_dims == 3) {
                for (size_t i = 0; i < o->n; i++)
                        o->data[i] = logf(o->data[i]);
                set_shape(o, 1, t->shape[0], 0, 0);
        } else if (ends_with(name, ".att.time_faaaa")) {
                set_shape(o, 2, t->shape[0], t->shape[1], 0);
        } else if (ends_with(name, ".time_maa_w2")) {
                transpose(o, (size_t)t->shape[0]);
        } else if (ends_with(name, ".time_maa_w1") || ends_with(name, ".time_decay_w1") ||
                   ends_with(name, ".time_decay_w2")) {
                transpose(o, 1);
        } else {
                static const char *const lora[] = { ".att.w1", ".att.w2", ".att.a1", ".att.a2",
                                                    ".att.v1", ".att.v2", ".att.g1", ".att.g2" };
                for (size_t i = 0; i < sizeof(lora) / sizeof(lora[0]); i++)
                        if (ends_with(name, lora[i]))
                                transpose(o, 1);
        }
        return 1;
}

static void write_official(const char *src, const char *dst) {
        TensorTable *t = NULL;
        RwkvError err = {};
        CHECK_OK(tensor_table_open(src, &t, &err));
        CHECK(tensor_table_convention(t) == PARAM_CONVENTION_RWKVCPP);
        size_t n_in = tensor_table_count(t), n = 0;
        bool v6 = tensor_table_get(t, "blocks.0.att.time_maa_x") != NULL;
        Out *outs = calloc(n_in * 6, sizeof(Out));
        CHECK(outs);
        for (size_t i = 0; i < n_in; i++)
                n += to_official(tensor_table_name_at(t, i), tensor_table_at(t, i), v6, outs + n);

        NativeWriter *w = NULL;
        CHECK_OK(native_writer_new(dst, &w, &err));
        TensorTableMeta meta = *tensor_table_meta(t);
        meta.wtype = DTYPE_F32;
        native_writer_set_meta(w, &meta, PARAM_CONVENTION_PTH);
        for (size_t i = 0; i < n; i++)
                if (native_writer_add_tensor(w, outs[i].name, DTYPE_F32, outs[i].n_dims, outs[i].shape, &err) < 0) {
                        fprintf(stderr, "%s: %s\n", outs[i].name, err.msg);
                        exit(1);
                }
        CHECK_OK(native_writer_begin(w, &err));
        for (size_t i = 0; i < n; i++) {
                CHECK_OK(native_writer_write(w, outs[i].data, outs[i].n * sizeof(float), &err));
                free(outs[i].data);
        }
        uint8_t hash[32];
        CHECK_OK(native_writer_finish(w, hash, &err));
        native_writer_free(w);
        free(outs);
        tensor_table_free(t);
}

static void logits_of(Model *m, float *out) {
        float *state = malloc(m->info.state_floats * sizeof(float));
        CHECK(state);
        EvalCtx *ctx = NULL;
        CHECK_OK(evalctx_new(m, NULL, 1, 0, &ctx));
        model_state_reset(m, state);
        CHECK_OK(model_eval_sequence(ctx, state, tokens, T, out));
        evalctx_free(ctx);
        free(state);
}

static char dst[4096];

static void remove_tmp(void) {
        if (dst[0])
                unlink(dst);
}

int main(void) {
        static const char *const files[] = {
                "tiny-rwkv-4v0-660K-FP32.bin", "tiny-rwkv-5v1-730K-FP32.bin", "tiny-rwkv-5v2-730K-FP32.bin",
                "tiny-rwkv-6v0-1m-FP32.bin",   "tiny-rwkv-7v0-834K-FP32.bin",
        };
        const char *dir = test_reference_dir();
        const char *tmp = getenv("TMPDIR");
        snprintf(dst, sizeof(dst), "%s/rwkvd-test-convention-%d.rwkv", tmp && *tmp ? tmp : "/tmp", (int)getpid());
        atexit(remove_tmp);

        for (size_t f = 0; f < sizeof(files) / sizeof(files[0]); f++) {
                char src[4096];
                snprintf(src, sizeof(src), "%s/tiny-rwkv/%s", dir, files[f]);
                write_official(src, dst);

                Model *a = NULL, *b = NULL;
                RwkvError err = {};
                CHECK_OK(model_load(src, NULL, &a, &err));
                int r = model_load(dst, NULL, &b, &err);
                if (r < 0) {
                        fprintf(stderr, "%s (official layout): %s\n", files[f], error_message(&err, r));
                        return 1;
                }
                CHECK(b->conv == PARAM_CONVENTION_PTH && a->conv == PARAM_CONVENTION_RWKVCPP);
                CHECK(a->info.arch == b->info.arch && a->info.n_head == b->info.n_head);
                a->group_norm_eps = b->group_norm_eps; /* compare the parameters, not the epsilon choice */

                float la[256], lb[256];
                logits_of(a, la);
                logits_of(b, lb);
                double d = 0;
                for (size_t i = 0; i < 256; i++) {
                        CHECK(isfinite(lb[i]));
                        d = fmax(d, fabs((double)la[i] - lb[i]));
                }
                printf("%-30s %-8s official layout vs rwkv.cpp layout: max abs diff %.3g\n", files[f],
                       b->info.arch_name, d);
                CHECK(d <= 1e-4);
                model_free(a);
                model_free(b);
        }
        unlink(dst);
        return 0;
}
