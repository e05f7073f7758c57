/* kernels.h: the compute kernels, as one table resolved once at start for the CPU's ISA.
 *
 * CONTRACT used by engine/: every entry exists on every ISA (the scalar *_generic reference fills what
 * an ISA file does not override). Pure compute: no I/O, no logging, no allocation. `RWKV_ISA=scalar|
 * avx2|avx512|neon` forces a path (tests); an unsupported request falls back to the best available. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "kernels/dtype.h"
#include "kernels/tensor.h"
#include "kernels/threadpool.h"

typedef struct Kernels {
        const char *isa; /* "scalar", "avx2", "avx512-novnni", "avx512", "neon" */

        /* y[r] = dot(row r of W, x) for r in [r0, r1). Rows are row_bytes apart, n_cols elements. */
        void (*matvec[_DTYPE_MAX])(const void *w, size_t row_bytes, size_t n_cols, const float *x, float *y,
                                   size_t r0, size_t r1);
        /* Y[v*ldy + r] = dot(row r of W, X + v*ldx) for v < n_vec, r in [r0, r1): prefill chunks and
         * batched decode (one weight pass for every vector). */
        void (*matmul[_DTYPE_MAX])(const void *w, size_t row_bytes, size_t n_cols, const float *x, size_t ldx,
                                   size_t n_vec, float *y, size_t ldy, size_t r0, size_t r1);

        /* y = (x - mean) / sqrt(var + eps) * w + b over n elements (y may alias x). */
        void (*layer_norm)(const float *x, const float *w, const float *b, float *y, size_t n, float eps);
        /* The same per group of group_size elements, w/b over all n_groups*group_size. */
        void (*group_norm)(const float *x, const float *w, const float *b, float *y, size_t n_groups,
                           size_t group_size, float eps);
        /* RWKV-7 WKV step for H heads of size N; state is H x N x N, row i (value index), column j (key):
         *   sa[i] = sum_j S[i][j] * a[j]
         *   S[i][j] = S[i][j] * w[j] + sa[i] * b[j] + v[i] * k[j]
         *   y[i] = sum_j S[i][j] * r[j]
         * (a = -kk, b = kk*a in the paper's notation; w is the decay already exponentiated). */
        void (*wkv7)(float *state, const float *r, const float *w, const float *k, const float *v, const float *a,
                     const float *b, float *y, size_t H, size_t N);
        /* The same for n_tok consecutive tokens of one state (a prefill chunk): token t's r, w, k, v, a,
         * b and y start at t * ld. Equal to n_tok calls of wkv7 up to the order of the sums (the SIMD
         * versions keep a transposed copy of each head's state for the whole chunk: no horizontal sums). */
        void (*wkv7_seq)(float *state, const float *r, const float *w, const float *k, const float *v, const float *a,
                         const float *b, float *y, size_t ld, size_t n_tok, size_t H, size_t N);
        /* RWKV-7 gates of n channels, in place (between the LoRA products and the WKV step):
         *   w[i] = exp(-0.606531 * sigmoid(w0[i] + w[i]))     (the decay; 0.606531 = exp(-0.5))
         *   a[i] = sigmoid(a0[i] + a[i])
         *   if v0: v[i] += (vf[i] - v[i]) * sigmoid(v0[i] + t[i])     (the value residual; without
         *   v0, v, vf and t are not read and may be NULL)
         * sigmoid(x) = 1 / (1 + exp(-x)). The SIMD versions use a polynomial exp within a few ulp of
         * expf (arguments clamped to [-87.3, 88.3]: results below 1e-38 become about 1e-38). */
        void (*v7_gates)(float *w, const float *w0, float *a, const float *a0, float *v, const float *vf,
                         const float *v0, const float *t, size_t n);
        /* The next two: the SIMD versions sum in another order and may fuse a multiply-add.
         * RWKV-7 keys of H heads of size N, in place (after the gates, before the WKV step):
         *   kk = k * k_k, normalized per head (L2 norm, floored at 1e-12)
         *   b = kk * a;  kk = -kk;  k = k * (1 + (a - 1) * k_a) */
        void (*v7_keys)(float *k, float *kk, float *b, const float *a, const float *k_k, const float *k_a, size_t H,
                        size_t N);
        /* RWKV-7 output of H heads of size N (after ln_x): the bonus and the gate,
         *   y = (y + s * v) * g  with s = sum over the head of r * k * r_k */
        void (*v7_bonus)(float *y, const float *r, const float *k, const float *v, const float *g, const float *r_k,
                         size_t H, size_t N);

        /* Element-wise work of the forward passes, n elements. add and relu_sq give the scalar's values
         * bit for bit; mix may fuse its multiply-add (within an ulp of the scalar's two roundings).
         *   add:     y += x
         *   relu_sq: x = (x < 0 ? 0 : x)^2, in place (NaN stays NaN)
         *   mix:     y = x + d * m (the token shift's interpolation; y may be x or d) */
        void (*add)(float *y, const float *x, size_t n);
        void (*relu_sq)(float *x, size_t n);
        void (*mix)(float *y, const float *x, const float *d, const float *m, size_t n);

        /* The sampler's passes over the vocabulary (engine/text/sampler.c; n <= 2^24). Scanning 65536
         * logits a token in scalar code took ~0.5 ms, a real share of a decode step.
         *
         * penalize_max: with counts, l[i] -= presence + frequency * counts[i] where counts[i] > 0
         * (the SIMD versions may fuse that multiply-add); with counts NULL, l is not changed. Returns the index of the
         * largest l (the lowest index on ties; NaN and -inf never win) and *ret_max its value, or n (and -inf) when no
         * l qualifies. */
        size_t (*penalize_max)(float *l, const float *counts, float presence, float frequency, size_t n,
                               float *ret_max);
        /* softmax_scan: for n logits l whose maximum is max,
         *   d[i] = (max - l[i]) * inv_t  where that is <= d_lim, else +INFINITY (also for -inf and NaN
         *          logits and for a product that overflows)
         *   e[i] = exp(-d[i])  (0 where d[i] is +INFINITY; the SIMD versions: a polynomial within a few
         *          ulp of expf, about 1e-38 instead of 0 below that)
         * and for each threshold t < 4: mass[t] = the sum of e[i] over d[i] < th[t], count[t] = how many
         * (th[t] = +INFINITY counts every finite d). d may be l (in place). */
        void (*softmax_scan)(const float *l, size_t n, float max, float inv_t, float d_lim, const float th[4], float *d,
                             float *e, double mass[4], uint32_t count[4]);
        /* select_below: writes the indices i of d[i] < bound to idx in increasing order, at most
         * max_idx of them; returns how many there are (which may exceed max_idx: then only the first
         * max_idx were written). */
        size_t (*select_below)(const float *d, size_t n, float bound, uint32_t *idx, size_t max_idx);
} Kernels;

/* The table for this CPU, resolved on first call (thread-safe) and honouring RWKV_ISA. */
const Kernels *kernels_get(void);
/* The table for a named ISA, or NULL when this CPU/OS cannot run it or it was not compiled in. */
const Kernels *kernels_get_isa(const char *isa);

/* Threaded wrappers: split rows of W across the pool. W is a 2-D tensor (rows x cols). */
void kernels_matvec(const Kernels *k, ThreadPool *pool, const Tensor *w, const float *x, float *y);
/* X is n_vec x cols (row stride cols), Y is n_vec x rows (row stride rows). */
void kernels_matmul(const Kernels *k, ThreadPool *pool, const Tensor *w, const float *x, size_t n_vec, float *y);
