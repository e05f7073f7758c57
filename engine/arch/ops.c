/* ops.c: the pieces every architecture's forward pass is made of: threaded matrix products, token
 * shift across a chunk or a batch, a parallel-for over the pool, and the v4-v6 channel mix. */
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

        pass_matmul(p, wr, xr, n, r);
        pass_matmul(p, wk, xk, n, hid);
        for (size_t i = 0; i < n * F; i++)
                hid[i] = relu_sq(hid[i]);
        pass_matmul(p, wv, hid, n, out);
        for (size_t i = 0; i < n * C; i++)
                p->x[i] += sigmoidf(r[i]) * out[i];
}

size_t channel_mix_scratch(const Model *m) {
        return 6 * (size_t)m->info.n_embd + m->info.n_ffn;
}
