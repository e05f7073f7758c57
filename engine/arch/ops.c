/* ops.c: the pieces every architecture's forward pass is made of: threaded matrix products, token
 * shift across a chunk or a batch, a parallel-for over the pool, and the v4-v6 channel mix. */
#include <assert.h>
#include <math.h>
#include <string.h>

#include "engine/arch/model-internal.h"

void pass_matmul(const EvalPass *p, const Mat *w, const float *x, size_t n, float *y) {
        if (n == 1)
                kernels_matvec(p->k, p->pool, &w->t, x, y);
        else
                kernels_matmul(p->k, p->pool, &w->t, x, n, y);
}

void pass_shift_prev(const EvalPass *p, uint32_t l, size_t off, const float *xn, float *prev) {
        size_t C = p->m->info.n_embd;
        for (size_t t = 0; t < p->n; t++) {
                const float *src;
                if (p->sequence && t > 0)
                        src = xn + (t - 1) * C;
                else
                        src = layer_state(p, t, l) + off;
                memcpy(prev + t * C, src, C * sizeof(float));
        }
}

void pass_shift_store(const EvalPass *p, uint32_t l, size_t off, const float *xn) {
        size_t C = p->m->info.n_embd;
        if (p->sequence)
                memcpy(layer_state(p, 0, l) + off, xn + (p->n - 1) * C, C * sizeof(float));
        else
                for (size_t t = 0; t < p->n; t++)
                        memcpy(layer_state(p, t, l) + off, xn + t * C, C * sizeof(float));
}

typedef struct ParallelJob {
        void (*fn)(void *ctx, size_t i0, size_t i1);
        void *ctx;
        size_t n_items;
} ParallelJob;

static void parallel_task(void *ctx, unsigned task, unsigned n_tasks) {
        const ParallelJob *j = ctx;
        size_t i0 = j->n_items * task / n_tasks, i1 = j->n_items * (task + 1) / n_tasks;
        if (i0 < i1)
                j->fn(j->ctx, i0, i1);
}

void pass_parallel(const EvalPass *p, size_t n_items, void (*fn)(void *ctx, size_t i0, size_t i1), void *ctx) {
        unsigned threads = threadpool_size(p->pool);
        if (n_items <= 1 || threads <= 1) {
                fn(ctx, 0, n_items);
                return;
        }
        ParallelJob j = { .fn = fn, .ctx = ctx, .n_items = n_items };
        threadpool_run(p->pool, parallel_task, &j, (unsigned)MIN((size_t)threads, n_items));
}

void mat_matvec_rows(const Kernels *k, const Mat *w, const float *x, float *y, size_t r0, size_t r1) {
        /* bind checked the type, the row size and the length of every Mat */
        size_t cols = mat_cols(w);
        k->matvec[w->t.dtype](w->t.data, dtype_row_bytes(w->t.dtype, cols), cols, x, y, r0, r1);
}

#define SEG_MAX 8
#define SEG_BLOCK 16 /* rows: a multiple of every dtype_group_rows(), so no task splits a group */
#define MULTI_MIN_BYTES (64u * 1024u)

typedef struct MultiJob {
        const Kernels *k;
        const MatvecSeg *segs;
        size_t n_segs;
        size_t n;                    /* vectors: 1 = matvec */
        size_t block_bytes[SEG_MAX]; /* matvec only: bytes of SEG_BLOCK rows */
        size_t start[SEG_MAX];       /* matvec only: bytes of the segments before */
        size_t total;
        void (*after)(void *ctx, size_t seg, size_t r0, size_t r1);
        void *after_ctx;
} MultiJob;

/* Matvec: task t owns the blocks that start in its share [total*t/T, total*(t+1)/T) of the bytes.
 * Several vectors: task t owns its share of the blocks of every segment. */
static void multi_task(void *ctx, unsigned task, unsigned n_tasks) {
        const MultiJob *j = ctx;
        size_t lo = j->total * task / n_tasks, hi = j->total * (task + 1) / n_tasks;
        for (size_t s = 0; s < j->n_segs; s++) {
                const MatvecSeg *g = &j->segs[s];
                size_t rows = mat_rows(g->w), bb = j->block_bytes[s], st = j->start[s];
                size_t n_blocks = (rows + SEG_BLOCK - 1) / SEG_BLOCK, b0, b1;
                if (j->n > 1) { /* a share of each matrix (pass_matmul_multi says why) */
                        b0 = n_blocks * task / n_tasks;
                        b1 = n_blocks * (task + 1) / n_tasks;
                } else { /* a share of the bytes of all: the first block starting at or after lo, and
                          * the first starting at or after hi */
                        b0 = lo <= st ? 0 : (lo - st + bb - 1) / bb;
                        b1 = hi <= st ? 0 : (hi - st + bb - 1) / bb;
                }
                b0 = MIN(b0, n_blocks);
                b1 = MIN(b1, n_blocks);
                if (b0 >= b1)
                        continue;
                size_t r0 = b0 * SEG_BLOCK, r1 = MIN(b1 * SEG_BLOCK, rows);
                if (j->n == 1)
                        mat_matvec_rows(j->k, g->w, g->x, g->y, r0, r1);
                else
                        mat_matmul_rows(j->k, g->w, g->x, j->n, g->y, r0, r1);
                if (j->after)
                        j->after(j->after_ctx, s, r0, r1);
        }
}

void pass_matvec_multi(const EvalPass *p, const MatvecSeg *segs, size_t n_segs,
                       void (*after)(void *ctx, size_t seg, size_t r0, size_t r1), void *after_ctx) {
        assert(n_segs <= SEG_MAX);
        MultiJob j = { .k = p->k, .segs = segs, .n_segs = n_segs, .n = 1, .after = after, .after_ctx = after_ctx };
        for (size_t s = 0; s < n_segs; s++) {
                const Mat *w = segs[s].w;
                j.block_bytes[s] = SEG_BLOCK * dtype_row_bytes(w->t.dtype, mat_cols(w));
                j.start[s] = j.total;
                j.total += ((mat_rows(w) + SEG_BLOCK - 1) / SEG_BLOCK) * j.block_bytes[s];
        }
        /* as in the kernels' wrapper: below this, waking the pool costs more than it saves */
        unsigned threads = j.total < MULTI_MIN_BYTES ? 1 : threadpool_size(p->pool);
        threadpool_run(p->pool, multi_task, &j, threads);
}

void mat_matmul_rows(const Kernels *k, const Mat *w, const float *x, size_t n, float *y, size_t r0, size_t r1) {
        size_t rows = mat_rows(w), cols = mat_cols(w);
        k->matmul[w->t.dtype](w->t.data, dtype_row_bytes(w->t.dtype, cols), cols, x, cols, n, y, rows, r0, r1);
}

void pass_matmul_multi(const EvalPass *p, const MatvecSeg *segs, size_t n_segs,
                       void (*after)(void *ctx, size_t seg, size_t r0, size_t r1), void *after_ctx) {
        assert(n_segs <= SEG_MAX);
        if (p->n == 1) {
                pass_matvec_multi(p, segs, n_segs, after, after_ctx);
                return;
        }
        /* Several vectors are compute-bound, and a multiply-add costs what its kernel makes it cost:
         * at 8 vectors an int8 matrix's (VNNI) is several times cheaper than a bf16 LoRA factor's
         * (f32 FMA). A share of the multiply-adds of all segments gave one task the int8 matrices
         * and the other the LoRA factors; a share of each segment is even whatever the types. */
        MultiJob j = { .k = p->k, .segs = segs, .n_segs = n_segs, .n = p->n, .after = after, .after_ctx = after_ctx };
        threadpool_run(p->pool, multi_task, &j, threadpool_size(p->pool));
}

typedef struct CmixRelu {
        const Kernels *k;
        float *hid;
} CmixRelu;

static void after_rk(void *ctx, size_t seg, size_t r0, size_t r1) {
        const CmixRelu *j = ctx;
        if (seg == 1)
                j->k->relu_sq(j->hid + r0, r1 - r0);
}

typedef struct CmixAdd {
        float *x;
        const float *r, *out;
} CmixAdd;

static void after_gated_add(void *ctx, size_t seg, size_t r0, size_t r1) {
        const CmixAdd *j = ctx;
        for (size_t i = r0; i < r1; i++)
                j->x[i] += sigmoidf(j->r[i]) * j->out[i];
}

/* v4/v5: xk = x*mix_k + prev*(1-mix_k); v6 passes maa: xk = x + (prev-x)*maa_k (the official
 * formulas; they round differently, so each version keeps its own). */
void channel_mix_rkv(EvalPass *p, uint32_t l, const float *ln_w, const float *ln_b, const float *mix_k,
                     const float *mix_r, const Mat *wk, const Mat *wv, const Mat *wr, bool maa) {
        const Model *m = p->m;
        size_t C = m->info.n_embd, F = m->info.n_ffn, n = p->n;
        /* scratch: xn, prev, xk, xr, r, out (C each), hidden (F) */
        float *xn = p->scratch, *prev = xn + n * C, *xk = prev + n * C, *xr = xk + n * C, *r = xr + n * C,
              *out = r + n * C, *hid = out + n * C;

        for (size_t t = 0; t < n; t++)
                p->k->layer_norm(p->x + t * C, ln_w, ln_b, xn + t * C, C, LN_EPS);
        pass_shift_prev(p, l, C, xn, prev);
        pass_shift_store(p, l, C, xn);

        for (size_t t = 0, i = 0; t < n; t++)
                for (size_t c = 0; c < C; c++, i++) {
                        if (maa) {
                                float d = prev[i] - xn[i];
                                xk[i] = xn[i] + d * mix_k[c];
                                xr[i] = xn[i] + d * mix_r[c];
                        } else {
                                xk[i] = xn[i] * mix_k[c] + prev[i] * (1.0f - mix_k[c]);
                                xr[i] = xn[i] * mix_r[c] + prev[i] * (1.0f - mix_r[c]);
                        }
                }

        if (n == 1) {
                /* one dispatch for the receptance and the key (relu^2 on the task's rows), one for
                 * the value (adding into x): same arithmetic, a third of the hand-offs saved */
                MatvecSeg rk[2] = { { wr, xr, r }, { wk, xk, hid } };
                CmixRelu relu = { .k = p->k, .hid = hid };
                pass_matvec_multi(p, rk, 2, after_rk, &relu);
                CmixAdd add = { .x = p->x, .r = r, .out = out };
                MatvecSeg value = { wv, hid, out };
                pass_matvec_multi(p, &value, 1, after_gated_add, &add);
                return;
        }
        pass_matmul(p, wr, xr, n, r);
        pass_matmul(p, wk, xk, n, hid);
        p->k->relu_sq(hid, n * F);
        pass_matmul(p, wv, hid, n, out);
        for (size_t i = 0; i < n * C; i++)
                p->x[i] += sigmoidf(r[i]) * out[i];
}

size_t channel_mix_scratch(const Model *m) {
        return 6 * (size_t)m->info.n_embd + m->info.n_ffn;
}
