/* model-internal.h: what the architectures share inside engine/arch (not a contract outside it).
 *
 * A Model is the TensorTable it was loaded from (weights stay in the file's mmap) plus small f32
 * vectors derived at load (mixing coefficients, decays, norms) and, for the few LoRA matrices that
 * the official checkpoints store as (in, out), a transposed copy. One forward "pass" runs n rows
 * through the network: either n consecutive tokens of one state (sequence mode, token shift inside
 * the chunk) or n independent sessions one token each (batch mode). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "engine/arch/model.h"

#define LN_EPS 1e-5f

/* A weight matrix as the kernels see it: rows = outputs, cols = inputs. */
typedef struct Mat {
        Tensor t;
} Mat;

static inline size_t mat_rows(const Mat *w) {
        return (size_t)w->t.shape[0];
}
static inline size_t mat_cols(const Mat *w) {
        return (size_t)w->t.shape[1];
}

typedef struct LayerV4 {
        float *decay, *first; /* -exp(w) and u, per channel */
        float *att_mix_k, *att_mix_v, *att_mix_r;
        Mat att_k, att_v, att_r, att_o;
        float *ffn_mix_k, *ffn_mix_r;
        Mat ffn_k, ffn_v, ffn_r;
} LayerV4;

typedef struct LayerV5 {
        float *decay, *bonus;                                 /* exp(-exp(w)) and u, per channel (broadcast per head) */
        float *att_mix_k, *att_mix_v, *att_mix_r, *att_mix_g; /* mix_g NULL without gate */
        Mat att_k, att_v, att_r, att_o, att_g;
        bool gate;
        float *ln_x_w, *ln_x_b;
        float *ffn_mix_k, *ffn_mix_r;
        Mat ffn_k, ffn_v, ffn_r;
} LayerV5;

typedef struct LayerV6 {
        float *maa_x, *maa[5];  /* w, k, v, r, g */
        Mat maa_w1;             /* (5*D, C) */
        Mat maa_w2[5];          /* (C, D) each */
        float *decay, *bonus;   /* raw time_decay and time_faaaa, per channel */
        Mat decay_w1, decay_w2; /* (Dw, C), (C, Dw) */
        Mat att_k, att_v, att_r, att_o, att_g;
        float *ln_x_w, *ln_x_b;
        float *ffn_maa_k, *ffn_maa_r;
        Mat ffn_k, ffn_v, ffn_r;
} LayerV6;

typedef struct LayerV7 {
        float *x[6];                        /* x_r, x_w, x_k, x_v, x_a, x_g */
        float *w0, *a0, *v0;                /* v0 NULL on layer 0 */
        Mat w1, w2, a1, a2, v1, v2, g1, g2; /* LoRA, (D, C) then (C, D) */
        float *k_k, *k_a, *r_k;
        Mat att_k, att_v, att_r, att_o;
        float *ln_x_w, *ln_x_b;
        float *ffn_x_k;
        Mat ffn_k, ffn_v;
} LayerV7;

typedef struct Layer {
        float *ln1_w, *ln1_b, *ln2_w, *ln2_b;
        union {
                LayerV4 v4;
                LayerV5 v5;
                LayerV6 v6;
                LayerV7 v7;
        };
} Layer;

typedef struct EvalPass EvalPass;

/* Per-architecture operations. */
typedef struct ArchOps {
        /* Binds layer i's tensors; messages name the tensor at fault. */
        int (*bind_layer)(Model *m, uint32_t i, RwkvError *err);
        /* Runs one block (time mix + channel mix) on the rows of the pass, updating x in place. */
        void (*layer)(EvalPass *p, uint32_t i);
        /* Sets a layer's part of a fresh state (after the token-shift vectors were zeroed). */
        void (*state_reset)(const Model *m, float *layer_state);
        /* Scratch floats per row needed beyond the common buffers. */
        size_t (*scratch_per_row)(const Model *m);
} ArchOps;

struct Model {
        ModelInfo info;
        const ArchOps *ops;
        TensorTable *table;
        ParamConvention conv;
        Tokenizer *tokenizer;

        Mat emb, head;
        float *ln0_w, *ln0_b, *ln_out_w, *ln_out_b;
        Layer *layers;

        size_t layer_state_floats; /* floats of one layer's state */
        size_t max_lora;           /* widest LoRA bottleneck (scratch sizing) */
        float group_norm_eps;      /* ln_x epsilon (v5+) */

        /* Memory the model owns: derived vectors and transposed copies. */
        void **owned;
        size_t n_owned, cap_owned;
};

/* One forward pass over n rows. */
struct EvalPass {
        EvalCtx *ctx;
        const Model *m;
        const Kernels *k;
        ThreadPool *pool;
        size_t n;
        bool sequence;        /* rows are consecutive tokens of states[0] */
        float *const *states; /* sequence: 1 entry; batch: n entries */
        float *x;             /* n x C residual stream */
        float *scratch;       /* ctx scratch: n x scratch_per_row floats, arch-defined layout */
};

struct EvalCtx {
        const Model *m;
        ThreadPool *pool;
        const Kernels *k;
        size_t max_batch, chunk, max_rows;
        float *x;        /* max_rows x C */
        float *scratch;  /* max_rows x scratch_per_row */
        float *head_in;  /* max_rows x C: rows that need logits */
        float *head_out; /* max_batch x V: scattered batch logits */
        float **outs;    /* max_rows: where each row's logits go (NULL: none) */
};

/* Layer l's part of a state. */
static inline float *layer_state(const EvalPass *p, size_t row, uint32_t l) {
        float *s = p->sequence ? p->states[0] : p->states[row];
        return s + (size_t)l * p->m->layer_state_floats;
}

/* ---- bind.c: tensors by name, with shape checks and derived f32 copies ---- */

void *model_own(Model *m, size_t bytes); /* zeroed allocation freed with the model; NULL on ENOMEM */
const Tensor *model_tensor(const Model *m, const char *fmt, ...) _printf_(2, 3);
/* A vector of n floats (any shape of n elements), decoded to f32, finite. */
int bind_vec(Model *m, RwkvError *err, size_t n, float **ret, const char *fmt, ...) _printf_(5, 6);
/* The same, from a tensor of n or n_small elements; n_small values are repeated n/n_small times each. */
int bind_vec_bcast(Model *m, RwkvError *err, size_t n, size_t n_small, float **ret, const char *fmt, ...)
        _printf_(6, 7);
/* A (rows, cols) matrix used in place. */
int bind_mat(Model *m, RwkvError *err, size_t rows, size_t cols, Mat *ret, const char *fmt, ...) _printf_(6, 7);
/* A LoRA factor the kernels need as (rows, cols): rwkv.cpp files store it so, official checkpoints
 * store (cols, rows) and get a transposed copy. count > 1: a stack of count such matrices in one
 * tensor of shape (count, ., .). */
int bind_lora(Model *m, RwkvError *err, size_t count, size_t rows, size_t cols, Mat *ret, const char *fmt, ...)
        _printf_(7, 8);

/* ---- ops.c: small helpers of the forward passes ---- */

/* Y (n x rows) = W X (n x cols), threaded; n == 1 uses the matvec kernel. */
void pass_matmul(const EvalPass *p, const Mat *w, const float *x, size_t n, float *y);
/* prev (n x C): the previous normalized input of each row (token shift) at offset off of a layer state. */
void pass_shift_prev(const EvalPass *p, uint32_t l, size_t off, const float *xn, float *prev);
/* Store the last normalized input of each state at offset off. */
void pass_shift_store(const EvalPass *p, uint32_t l, size_t off, const float *xn);
/* Run fn over [0, n) items split across the pool. */
void pass_parallel(const EvalPass *p, size_t n_items, void (*fn)(void *ctx, size_t i0, size_t i1), void *ctx);

/* Single-row decode: several matrix-vector products as ONE pool dispatch (a hand-off costs about as
 * much as a small LoRA product). Rows are split across the tasks by weight bytes, in blocks of 8 rows
 * counted from each matrix's first row, as the kernels' own wrapper splits them. after (optional)
 * runs on the task that computed rows [r0, r1) of segment seg, right after them: element-wise work
 * on those outputs rides in the same dispatch. */
typedef struct MatvecSeg {
        const Mat *w;
        const float *x;
        float *y;
} MatvecSeg;
void pass_matvec_multi(const EvalPass *p, const MatvecSeg *segs, size_t n_segs,
                       void (*after)(void *ctx, size_t seg, size_t r0, size_t r1), void *after_ctx);
/* y[r] for r in [r0, r1) of one matrix, on the calling thread (inside a dispatch). */
void mat_matvec_rows(const Kernels *k, const Mat *w, const float *x, float *y, size_t r0, size_t r1);
/* The same for a chunk of n > 1 rows (x: n x cols, y: n x rows): sequence and batch passes. The
 * segments' rows are shared across the tasks by multiply-adds instead of bytes; after() sees rows
 * [r0, r1) of segment seg for all n vectors (y[v * rows + r]). n == 1 is pass_matvec_multi(). */
void pass_matmul_multi(const EvalPass *p, const MatvecSeg *segs, size_t n_segs,
                       void (*after)(void *ctx, size_t seg, size_t r0, size_t r1), void *after_ctx);
void mat_matmul_rows(const Kernels *k, const Mat *w, const float *x, size_t n, float *y, size_t r0, size_t r1);

static inline float sigmoidf(float x) {
        return 1.0f / (1.0f + expf(-x));
}

/* The channel mix of v4/v5 (time_mix) and v6 (maa, same formula with mix = 1 - maa), all have a
 * receptance; v7 has none. */
void channel_mix_rkv(EvalPass *p, uint32_t l, const float *ln_w, const float *ln_b, const float *mix_k,
                     const float *mix_r, const Mat *wk, const Mat *wv, const Mat *wr, bool maa);
size_t channel_mix_scratch(const Model *m);

extern const ArchOps arch_v4_ops, arch_v5_ops, arch_v6_ops, arch_v7_ops;

/* rwkv5.c: the v5/v6 WKV over the pass's rows. State per head is N x N, row i = key, column j = value:
 *   y[j] = sum_i r[i] * (u[i] k[i] v[j] + S[i][j]);  S[i][j] = S[i][j] w[i] + k[i] v[j]
 * w is per channel (C floats) when w_per_row is false, else one row of C per pass row (v6). */
void wkv5_pass(const EvalPass *p, uint32_t l, const float *r, const float *k, const float *v, const float *w,
               bool w_per_row, const float *u, float *y);
