/* bench-q8-layout: what a different q8_0 weight layout would buy batched decode (8 sessions).
 *
 * The shipping kernel (kernels/x86-avx512vnni.c) reads q8_0 rows as stored: a row is its block
 * scales, then its quants. One 8-byte broadcast of a row's weights feeds one vpdpbusd for 8
 * vectors, so every vpdpbusd costs a load, and the load ports (one 512-bit load a cycle on Zen 4),
 * not the multipliers, set its speed. The prototype here stores 16 rows interleaved, 4 bytes of each
 * per 64-byte line, already biased to unsigned: one full-width load feeds a vpdpbusd per vector, a
 * 4-byte broadcast of x feeds one per group of 16 rows, and no vpxord is left in the loop.
 *
 * Both run on the same random matrix (default 3072 x 768, 2.5 MB: from the last-level cache, so
 * compute-bound: what is left to gain once the weights arrive), on one thread, x packed per call
 * by each; the prototype's products are checked against the shipping kernel's. Prints ns per
 * row-block (32 weights of one row applied to 8 vectors) for each. The prototype's group is 576
 * bytes per block against 16 x 34 = 544 (its scales padded to a cache line).
 *
 * Usage: bench-q8-layout [--cols K] [--rows R] [--seconds S]
 * Needs AVX-512 VNNI; elsewhere it says so and exits 0. Not a test: nothing asserts a speed. */
#include <getopt.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kernels/kernels.h"
#include "kernels/quant.h"

#if defined(__x86_64__)
#include <immintrin.h>

#define NV 8   /* vectors (sessions) */
#define GR 16  /* rows per interleaved group */
#define GB 576 /* bytes per group and block: 16 f16 scales, padding to 64, 8 x 64 bytes of weights */

static double now(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static uint64_t rng = 0x2545f4914f6cdd1dull;
static float randf(void) {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        return (float)((double)(rng >> 11) * 0x1p-53 * 2.0 - 1.0);
}

/* q8_0 rows (as stored in .rwkv files) -> 16-row groups: per block, the 16 scales, then line j =
 * bytes 4j..4j+3 of each row, each byte + 128 (vpdpbusd's unsigned operand). */
static void interleave(const uint8_t *w, size_t rb, size_t rows, size_t K, uint8_t *out) {
        size_t nb = K / QK, qo = q_row_quants_offset(K);
        for (size_t g = 0; g < rows / GR; g++)
                for (size_t b = 0; b < nb; b++) {
                        uint8_t *o = out + (g * nb + b) * GB;
                        memset(o, 0, 64);
                        for (size_t r = 0; r < GR; r++) {
                                const uint8_t *row = w + (g * GR + r) * rb;
                                memcpy(o + 2 * r, row + 2 * b, 2);
                                for (size_t j = 0; j < 8; j++)
                                        for (size_t i = 0; i < 4; i++)
                                                o[64 + 64 * j + 4 * r + i] =
                                                        (uint8_t)(row[qo + b * QK + 4 * j + i] ^ 0x80);
                        }
                }
}

/* x -> int8 blocks of 32 (scale amax/127, rounded like the shipping kernels' packing): xq[(b*NV +
 * v)*8 + j] = bytes 4j..4j+3 of block b of vector v; corr = -128 * the block's sum (the bias the
 * weights carry). */
__attribute__((target("avx512f,avx512bw"))) static void quantize_x(const float *x, size_t K, int32_t *xq, int32_t *corr,
                                                                   float *dx) {
        size_t nb = K / QK;
        for (size_t v = 0; v < NV; v++)
                for (size_t b = 0; b < nb; b++) {
                        const float *xb = x + v * K + b * QK;
                        __m512 v0 = _mm512_loadu_ps(xb), v1 = _mm512_loadu_ps(xb + 16);
                        float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(v0), _mm512_abs_ps(v1)));
                        float d = amax / 127.f, id = d > 0 ? 1.f / d : 0.f;
                        __m512 vid = _mm512_set1_ps(id);
                        __m512i q0 = _mm512_cvtps_epi32(_mm512_mul_ps(v0, vid)),
                                q1 = _mm512_cvtps_epi32(_mm512_mul_ps(v1, vid));
                        int8_t *dst = (int8_t *)(xq + (b * NV + v) * 8);
                        _mm_storeu_si128((__m128i *)dst, _mm512_cvtsepi32_epi8(q0));
                        _mm_storeu_si128((__m128i *)(dst + 16), _mm512_cvtsepi32_epi8(q1));
                        corr[b * NV + v] = -128 * _mm512_reduce_add_epi32(_mm512_add_epi32(q0, q1));
                        dx[b * NV + v] = d;
                }
}

/* 32 rows (two groups) x 8 vectors; the vectors in two passes of 4 while the block's lines are in
 * L1. y[v * ldy + row]. */
__attribute__((target("avx512f,avx512bw,avx512vnni,f16c,fma"))) static void rows32(const uint8_t *g0, const uint8_t *g1,
                                                                                   size_t nb, const int32_t *xq,
                                                                                   const int32_t *corr, const float *dx,
                                                                                   float *y, size_t ldy) {
        __m512 f0[NV], f1[NV];
        for (int v = 0; v < NV; v++)
                f0[v] = f1[v] = _mm512_setzero_ps();
        for (size_t b = 0; b < nb; b++) {
                const uint8_t *A = g0 + b * GB, *B = g1 + b * GB;
                __m512 d0 = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)A));
                __m512 d1 = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)B));
#pragma GCC unroll 2
                for (int p = 0; p < 2; p++) {
                        __m512i i0[4], i1[4];
#pragma GCC unroll 4
                        for (int v = 0; v < 4; v++)
                                i0[v] = i1[v] = _mm512_set1_epi32(corr[b * NV + 4 * p + v]);
#pragma GCC unroll 8
                        for (int j = 0; j < 8; j++) {
                                __m512i wa = _mm512_load_si512(A + 64 + 64 * j),
                                        wb = _mm512_load_si512(B + 64 + 64 * j);
#pragma GCC unroll 4
                                for (int v = 0; v < 4; v++) {
                                        __m512i xb = _mm512_set1_epi32(xq[(b * NV + 4 * p + v) * 8 + j]);
                                        i0[v] = _mm512_dpbusd_epi32(i0[v], wa, xb);
                                        i1[v] = _mm512_dpbusd_epi32(i1[v], wb, xb);
                                }
                        }
#pragma GCC unroll 4
                        for (int v = 0; v < 4; v++) {
                                __m512 s = _mm512_set1_ps(dx[b * NV + 4 * p + v]);
                                f0[4 * p + v] =
                                        _mm512_fmadd_ps(_mm512_cvtepi32_ps(i0[v]), _mm512_mul_ps(d0, s), f0[4 * p + v]);
                                f1[4 * p + v] =
                                        _mm512_fmadd_ps(_mm512_cvtepi32_ps(i1[v]), _mm512_mul_ps(d1, s), f1[4 * p + v]);
                        }
                }
        }
        for (int v = 0; v < NV; v++) {
                _mm512_storeu_ps(y + v * ldy, f0[v]);
                _mm512_storeu_ps(y + v * ldy + GR, f1[v]);
        }
}

static void interleaved_matmul(const uint8_t *il, size_t rows, size_t K, const int32_t *xq, const int32_t *corr,
                               const float *dx, float *y) {
        size_t nb = K / QK;
        for (size_t g = 0; g + 2 <= rows / GR; g += 2)
                rows32(il + g * nb * GB, il + (g + 1) * nb * GB, nb, xq, corr, dx, y + g * GR, rows);
}

int main(int argc, char **argv) {
        size_t K = 768, rows = 3072; /* the 0.1B FFN key matrix */
        double seconds = 0.5;
        static const struct option opts[] = {
                { "cols", required_argument, NULL, 'k' },
                { "rows", required_argument, NULL, 'r' },
                { "seconds", required_argument, NULL, 's' },
                {},
        };
        int c;
        while ((c = getopt_long(argc, argv, "", opts, NULL)) >= 0)
                switch (c) {
                case 'k':
                        K = (size_t)atol(optarg);
                        break;
                case 'r':
                        rows = (size_t)atol(optarg);
                        break;
                case 's':
                        seconds = atof(optarg);
                        break;
                default:
                        fprintf(stderr, "usage: bench-q8-layout [--cols K] [--rows R] [--seconds S]\n");
                        return 2;
                }
        if (K == 0 || K % QK || K > 8192 || rows == 0 || rows % (2 * GR) || seconds <= 0) {
                fprintf(stderr, "bench-q8-layout: --cols a multiple of 32 up to 8192, --rows a multiple of 32\n");
                return 2;
        }
        if (!__builtin_cpu_supports("avx512vnni")) {
                printf("bench-q8-layout: this CPU has no AVX-512 VNNI, nothing to compare\n");
                return 0;
        }

        size_t rb = dtype_row_bytes(DTYPE_Q8_0, K), nb = K / QK;
        uint8_t *w = malloc(rows * rb), *il = aligned_alloc(64, rows / GR * nb * GB);
        float *row = malloc(K * sizeof(float)), *x = malloc(NV * K * sizeof(float));
        float *y_ref = malloc(NV * rows * sizeof(float)), *y_il = malloc(NV * rows * sizeof(float));
        int32_t *xq = aligned_alloc(64, nb * NV * 8 * sizeof(int32_t)), *corr = malloc(nb * NV * sizeof(int32_t));
        float *dx = malloc(nb * NV * sizeof(float));
        ThreadPool *pool = NULL;
        if (!w || !il || !row || !x || !y_ref || !y_il || !xq || !corr || !dx || threadpool_new(1, &pool) < 0) {
                fprintf(stderr, "bench-q8-layout: out of memory\n");
                return 1;
        }
        for (size_t r = 0; r < rows; r++) {
                for (size_t i = 0; i < K; i++)
                        row[i] = randf() * 0.05f;
                dtype_row_from_f32(DTYPE_Q8_0, row, w + r * rb, K);
        }
        for (size_t i = 0; i < NV * K; i++)
                x[i] = randf();
        interleave(w, rb, rows, K, il);

        const Kernels *k = kernels_get();
        Tensor tw = { .dtype = DTYPE_Q8_0, .n_dims = 2, .shape = { rows, K }, .nbytes = rows * rb, .data = w };
        kernels_matmul(k, pool, &tw, x, NV, y_ref);
        quantize_x(x, K, xq, corr, dx);
        interleaved_matmul(il, rows, K, xq, corr, dx, y_il);
        double worst = 0, scale = 0;
        for (size_t i = 0; i < NV * rows; i++) {
                worst = fmax(worst, fabs((double)y_il[i] - y_ref[i]));
                scale = fmax(scale, fabs((double)y_ref[i]));
        }
        if (worst > 1e-4 * fmax(scale, 1.0)) {
                fprintf(stderr, "bench-q8-layout: the prototype's products differ from the kernel's by %g\n", worst);
                return 1;
        }

        /* alternating rounds, best of each: the machine's load changes within seconds */
        double t_ref = HUGE_VAL, t_il = HUGE_VAL;
        for (int round = 0; round < 6; round++) {
                for (int which = 0; which < 2; which++) {
                        size_t calls = 0;
                        double dt, t0 = now();
                        do {
                                if (which == 0)
                                        kernels_matmul(k, pool, &tw, x, NV, y_ref);
                                else {
                                        quantize_x(x, K, xq, corr, dx); /* per call, as the kernel packs x */
                                        interleaved_matmul(il, rows, K, xq, corr, dx, y_il);
                                }
                                calls++;
                        } while ((dt = now() - t0) < seconds / 12);
                        double per = dt / (double)calls;
                        if (which == 0)
                                t_ref = fmin(t_ref, per);
                        else
                                t_il = fmin(t_il, per);
                }
        }
        double blocks = (double)rows * (double)nb;
        printf("q8_0 x %d vectors, %zu x %zu, one thread, weights in cache (max |difference| %.2g):\n", NV, rows, K,
               worst);
        printf("  shipping row layout (%s):   %.2f ns per row-block\n", k->isa, t_ref * 1e9 / blocks);
        printf("  16-row interleaved prototype: %.2f ns per row-block (%.2fx)\n", t_il * 1e9 / blocks, t_ref / t_il);
        threadpool_free(pool);
        free(w);
        free(il);
        free(row);
        free(x);
        free(y_ref);
        free(y_il);
        free(xq);
        free(corr);
        free(dx);
        return 0;
}
#else
int main(void) {
        printf("bench-q8-layout: x86-64 only (AVX-512 VNNI)\n");
        return 0;
}
#endif
