/* random-model.c: random RWKV-7 weights for benchmarks and tests, written straight to .rwkv.
 *
 * Scales follow the official x070 initialization closely enough to keep every activation tame:
 * projections ~ U(±1/sqrt(fan_in)) / 2, LoRA pairs small, decay bias w0 in [-6, -1] (so the decay
 * exp(-exp(w)) stays inside (0, 1)), layer norms 1/0, mixing coefficients in (0, 1). Generated row
 * by row from a seeded generator: the same options give the same file, bit for bit. */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "engine/format/convert.h"
#include "engine/format/native-writer.h"
#include "engine/format/tensor-table-private.h"

#define HEAD_SIZE 64

typedef enum Init {
        INIT_ZERO,
        INIT_ONE,
        INIT_CONST,   /* a */
        INIT_UNIFORM, /* U(a - b, a + b) */
        INIT_DECAY,   /* w0: -6 .. -1 along the channel, plus noise */
} Init;

typedef struct Spec {
        char name[64];
        uint32_t n_dims;
        uint64_t shape[3];
        Init init;
        float a, b;
        bool matrix; /* takes the requested weight type */
} Spec;

/* splitmix64: tiny, fast, good enough, and the same everywhere */
static uint64_t next_u64(uint64_t *s) {
        uint64_t z = (*s += UINT64_C(0x9e3779b97f4a7c15));
        z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
        z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
        return z ^ (z >> 31);
}

static float next_uniform(uint64_t *s) { /* [-1, 1) */
        return (float)((double)(next_u64(s) >> 11) * 0x1.0p-53 * 2.0 - 1.0);
}

static uint32_t lora_dim(double factor, double power, uint32_t c) {
        double d = round(factor * pow((double)c, power) / 32.0) * 32.0;
        return d < 32 ? 32 : (uint32_t)d;
}

typedef struct SpecList {
        Spec *v;
        size_t n, cap;
} SpecList;

static int add(SpecList *l, const char *name, uint32_t n_dims, uint64_t d0, uint64_t d1, uint64_t d2, Init init,
               float a, float b, bool matrix) {
        if (l->n == l->cap) {
                size_t cap = l->cap ? l->cap * 2 : 256;
                Spec *v = reallocarray(l->v, cap, sizeof(Spec));
                if (!v)
                        return -ENOMEM;
                l->v = v;
                l->cap = cap;
        }
        Spec *s = &l->v[l->n++];
        *s = (Spec){ .n_dims = n_dims, .shape = { d0, d1, d2 }, .init = init, .a = a, .b = b, .matrix = matrix };
        snprintf(s->name, sizeof(s->name), "%s", name);
        return 0;
}

static int build_specs(const RandomModelOptions *o, SpecList *l) {
        const uint64_t C = o->n_embd, V = o->n_vocab, F = 4 * C, H = C / HEAD_SIZE;
        /* the official x070 LoRA sizes, never below the released small models' 64/64/32/128 */
        const uint32_t dw = MAX(lora_dim(1.8, 0.5, o->n_embd), 64u), da = dw,
                       dv = MAX(lora_dim(1.3, 0.5, o->n_embd), 32u), dg = MAX(lora_dim(0.6, 0.8, o->n_embd), 128u);
        const float sc = 0.5f / sqrtf((float)C), sf = 0.5f / sqrtf((float)F);
        char n[64];
        int r = 0;
#define ADD(...)                                                                                                       \
        do {                                                                                                           \
                if ((r = add(l, __VA_ARGS__)) < 0)                                                                     \
                        return r;                                                                                      \
        } while (0)
#define VEC3(suffix, init, a, b)                                                                                       \
        do {                                                                                                           \
                snprintf(n, sizeof(n), "blocks.%u.%s", i, suffix);                                                     \
                ADD(n, 3, 1, 1, C, init, a, b, false);                                                                 \
        } while (0)
#define VEC1(suffix, init, a, b)                                                                                       \
        do {                                                                                                           \
                snprintf(n, sizeof(n), "blocks.%u.%s", i, suffix);                                                     \
                ADD(n, 1, C, 0, 0, init, a, b, false);                                                                 \
        } while (0)
#define MAT(suffix, rows, cols, a, b, matrix)                                                                          \
        do {                                                                                                           \
                snprintf(n, sizeof(n), "blocks.%u.%s", i, suffix);                                                     \
                ADD(n, 2, rows, cols, 0, INIT_UNIFORM, a, b, matrix);                                                  \
        } while (0)

        ADD("emb.weight", 2, V, C, 0, INIT_UNIFORM, 0, 0.5f, true);
        for (uint32_t i = 0; i < o->n_layer; i++) {
                if (i == 0) {
                        VEC1("ln0.weight", INIT_ONE, 0, 0);
                        VEC1("ln0.bias", INIT_ZERO, 0, 0);
                }
                VEC1("ln1.weight", INIT_ONE, 0, 0);
                VEC1("ln1.bias", INIT_ZERO, 0, 0);
                VEC1("ln2.weight", INIT_ONE, 0, 0);
                VEC1("ln2.bias", INIT_ZERO, 0, 0);
                VEC3("att.x_r", INIT_UNIFORM, 0.5f, 0.3f);
                VEC3("att.x_w", INIT_UNIFORM, 0.5f, 0.3f);
                VEC3("att.x_k", INIT_UNIFORM, 0.5f, 0.3f);
                VEC3("att.x_v", INIT_UNIFORM, 0.5f, 0.3f);
                VEC3("att.x_a", INIT_UNIFORM, 0.5f, 0.3f);
                VEC3("att.x_g", INIT_UNIFORM, 0.5f, 0.3f);
                VEC3("att.w0", INIT_DECAY, 0, 0);
                MAT("att.w1", C, dw, 0, 0.1f / sqrtf((float)C), false);
                MAT("att.w2", dw, C, 0, 0.1f / sqrtf((float)dw), false);
                VEC3("att.a0", INIT_UNIFORM, 0, 0.1f);
                MAT("att.a1", C, da, 0, 0.1f / sqrtf((float)C), false);
                MAT("att.a2", da, C, 0, 0.1f / sqrtf((float)da), false);
                if (i > 0) {
                        VEC3("att.v0", INIT_ONE, 0, 0);
                        MAT("att.v1", C, dv, 0, 0.1f / sqrtf((float)C), false);
                        MAT("att.v2", dv, C, 0, 0.1f / sqrtf((float)dv), false);
                }
                MAT("att.g1", C, dg, 0, 0.1f / sqrtf((float)C), false);
                MAT("att.g2", dg, C, 0, 0.1f / sqrtf((float)dg), false);
                VEC3("att.k_k", INIT_CONST, 0.85f, 0);
                VEC3("att.k_a", INIT_ONE, 0, 0);
                snprintf(n, sizeof(n), "blocks.%u.att.r_k", i);
                ADD(n, 2, H, HEAD_SIZE, 0, INIT_UNIFORM, -0.04f, 0.02f, false);
                MAT("att.receptance.weight", C, C, 0, sc, true);
                MAT("att.key.weight", C, C, 0, sc, true);
                MAT("att.value.weight", C, C, 0, sc, true);
                MAT("att.output.weight", C, C, 0, sc, true);
                VEC1("att.ln_x.weight", INIT_ONE, 0, 0);
                VEC1("att.ln_x.bias", INIT_ZERO, 0, 0);
                VEC3("ffn.x_k", INIT_UNIFORM, 0.5f, 0.3f);
                MAT("ffn.key.weight", F, C, 0, sc, true);
                MAT("ffn.value.weight", C, F, 0, sf, true);
        }
        ADD("ln_out.weight", 1, C, 0, 0, INIT_ONE, 0, 0, false);
        ADD("ln_out.bias", 1, C, 0, 0, INIT_ZERO, 0, 0, false);
        ADD("head.weight", 2, V, C, 0, INIT_UNIFORM, 0, sc, true);
        return 0;
#undef ADD
#undef VEC3
#undef VEC1
#undef MAT
}

static void fill_row(const Spec *s, uint64_t row, uint64_t cols, uint64_t *rng, float *out) {
        for (uint64_t c = 0; c < cols; c++) {
                switch (s->init) {
                case INIT_ZERO:
                        out[c] = 0;
                        break;
                case INIT_ONE:
                        out[c] = 1;
                        break;
                case INIT_CONST:
                        out[c] = s->a;
                        break;
                case INIT_UNIFORM:
                        out[c] = s->a + s->b * next_uniform(rng);
                        break;
                case INIT_DECAY: {
                        double ratio = cols > 1 ? (double)c / (double)(cols - 1) : 0;
                        out[c] = (float)(-6.0 + 5.0 * pow(ratio, 0.85) + 0.1 * next_uniform(rng));
                        break;
                }
                }
        }
        (void)row;
}

/* A tensor's type in the file: the weight matrices take the requested type; the LoRA factors (2-D,
 * not "*.weight") are bf16 unless f32 was asked, as converting an official (bf16) checkpoint keeps
 * them (engine/format/convert.c); the vectors f32. */
static DType spec_type(const Spec *s, DType wtype) {
        if (s->matrix && s->shape[1] % 32 == 0)
                return convert_matrix_type(s->name, s->shape[0], wtype);
        return s->n_dims == 2 && wtype != DTYPE_F32 ? DTYPE_BF16 : DTYPE_F32;
}

int model_write_random(const RandomModelOptions *o, const char *out_path, uint8_t ret_hash[32], RwkvError *err) {
        if (o->version != 7)
                return error_set(err, EOPNOTSUPP, "random models exist for RWKV-7 only (version %u asked)", o->version);
        if (o->n_layer == 0 || o->n_layer > 4096)
                return error_set(err, EINVAL, "layers must be 1 to 4096");
        if (o->n_embd == 0 || o->n_embd % HEAD_SIZE != 0 || o->n_embd > 65536)
                return error_set(err, EINVAL, "embedding size must be a positive multiple of %d (at most 65536)",
                                 HEAD_SIZE);
        if (o->n_vocab == 0 || o->n_vocab > (1u << 24))
                return error_set(err, EINVAL, "vocabulary size must be 1 to 16777216");
        int wt = o->type < 0 ? DTYPE_F32 : o->type;
        if (!dtype_is_native((DType)wt))
                return error_set(err, EINVAL, "the weight type must be f32, f16, bf16, q8_0, q8_0x16, q4_0 or q4_0x16");
        DType wtype = (DType)wt;

        _cleanup_(freep) Spec *specs = NULL;
        SpecList l = {};
        int r = build_specs(o, &l);
        specs = l.v;
        if (r < 0)
                return r;

        _cleanup_(native_writer_freep) NativeWriter *w = NULL;
        if ((r = native_writer_new(out_path, &w, err)) < 0)
                return r;
        TensorTableMeta meta = {
                .arch = 70,
                .n_layer = o->n_layer,
                .n_embd = o->n_embd,
                .n_vocab = o->n_vocab,
                .n_head = o->n_embd / HEAD_SIZE,
                .head_size = HEAD_SIZE,
                .n_ffn = 4 * o->n_embd,
                .tokenizer = o->n_vocab == 256 ? MODEL_TOKENIZER_BYTES : MODEL_TOKENIZER_UNKNOWN,
                .wtype = wtype,
        };
        native_writer_set_meta(w, &meta, PARAM_CONVENTION_PTH);

        uint64_t total = 0, done = 0, max_cols = 0;
        for (size_t i = 0; i < l.n; i++) {
                const Spec *s = &specs[i];
                DType t = spec_type(s, wtype);
                if ((r = native_writer_add_tensor(w, s->name, t, s->n_dims, s->shape, err)) < 0)
                        return r;
                max_cols = MAX(max_cols, s->shape[s->n_dims - 1]);
                uint64_t nelem = 1;
                for (uint32_t d = 0; d < s->n_dims; d++)
                        nelem *= s->shape[d];
                total += nelem;
        }
        if ((r = native_writer_begin(w, err)) < 0)
                return r;

        /* 16 rows at a time: the most any type encodes together (dtype_group_rows) */
        _cleanup_(freep) float *row = malloc(16 * max_cols * sizeof(float));
        _cleanup_(freep) uint8_t *enc = malloc(16 * max_cols * sizeof(float));
        if (!row || !enc)
                return -ENOMEM;
        for (size_t i = 0; i < l.n; i++) {
                const Spec *s = &specs[i];
                DType t = spec_type(s, wtype);
                uint64_t cols = s->shape[s->n_dims - 1], rows = 1;
                for (uint32_t d = 0; d + 1 < s->n_dims; d++)
                        rows *= s->shape[d];
                size_t step = dtype_group_rows(t);
                /* one stream per tensor: a tensor's values do not depend on the type of the others */
                uint64_t rng = o->seed ^ (UINT64_C(0x100000001b3) * (i + 1));
                for (uint64_t rr = 0; rr < rows; rr += step) {
                        for (size_t k = 0; k < step; k++)
                                fill_row(s, rr + k, cols, &rng, row + k * cols);
                        if ((r = dtype_rows_from_f32(t, row, enc, cols, step)) < 0)
                                return error_set(err, r, "tensor '%s': cannot encode as %s", s->name, dtype_name(t));
                        if ((r = native_writer_write(w, enc, step * dtype_row_bytes(t, cols), err)) < 0)
                                return r;
                        done += step * cols;
                        if (o->progress)
                                o->progress(done, total, o->userdata);
                }
        }
        return native_writer_finish(w, ret_hash, err);
}
