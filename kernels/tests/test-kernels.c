/* test-kernels: every kernel of every ISA this CPU runs, against a double-precision reference built
 * from dtype_rows_to_f32 (itself tested in test-dtype), on random shapes including odd ones.
 *
 * Tolerances: a dot product of n terms in f32 is off by at most about n * 2^-24 * sum|w*x| in the
 * worst case and sqrt(n) times that in practice; we allow 1e-5 * sum|w*x| + 1e-6 (with n <= 4096
 * that is well above the typical error and far below any indexing or decoding bug, which is O(|w*x|)).
 * ISA kernels that quantize the activations to int8 get the bound of that rounding (x_quantized()). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/cpu.h"
#include "kernels/kernels.h"
#include "kernels/quant.h"
#include "tests/lib/check.h"
#include "test-util.h"

/* The AVX2 table, with or without vpdpbusd: the same int8 paths and the same results. */
static bool is_avx2(const Kernels *k) {
        return strcmp(k->isa, "avx2") == 0 || strcmp(k->isa, "avx2-vnni") == 0;
}

static const DType all_types[] = {
        DTYPE_F32,       DTYPE_F16,       DTYPE_BF16,      DTYPE_Q8_0,      DTYPE_Q4_0,    DTYPE_GGML_Q4_0,
        DTYPE_GGML_Q4_1, DTYPE_GGML_Q5_0, DTYPE_GGML_Q5_1, DTYPE_GGML_Q8_0, DTYPE_Q8_0X16, DTYPE_Q4_0X16,
};

/* Rows a matrix of `rows` rows takes in memory: a grouped type (Q8_0X16, Q4_0X16) encodes whole groups of
 * 16; the kernels may still be asked for any row range inside the matrix. */
static size_t stored_rows(DType t, size_t rows) {
        size_t g = dtype_group_rows(t);
        return (rows + g - 1) / g * g;
}

/* Random weights of any type: native types through the encoder, ggml blocks as random bytes with
 * sane f16 scales patched in. */
static uint8_t *random_matrix(DType t, size_t rows, size_t cols, size_t *ret_row_bytes) {
        size_t rb = dtype_row_bytes(t, cols);
        CHECK(rb > 0);
        rows = stored_rows(t, rows);
        uint8_t *w = malloc(rb * rows);
        float *tmp = malloc(rows * cols * sizeof(float));
        CHECK(w && tmp);
        if (dtype_is_native(t)) {
                for (size_t i = 0; i < rows * cols; i++)
                        tmp[i] = test_randf();
                CHECK_OK(dtype_rows_from_f32(t, tmp, w, cols, rows));
                free(tmp);
                *ret_row_bytes = rb;
                return w;
        }
        for (size_t r = 0; r < rows; r++) {
                uint8_t *row = w + r * rb;
                for (size_t i = 0; i < rb; i++)
                        row[i] = (uint8_t)test_rand32();
                size_t bb = rb / (cols / QK);
                for (size_t b = 0; b < cols / QK; b++) {
                        uint16_t d = f32_to_f16(test_randf() * 0.1f), m = f32_to_f16(test_randf() * 0.1f);
                        memcpy(row + b * bb, &d, 2);
                        if (t == DTYPE_GGML_Q4_1 || t == DTYPE_GGML_Q5_1)
                                memcpy(row + b * bb + 2, &m, 2);
                }
        }
        free(tmp);
        *ret_row_bytes = rb;
        return w;
}

static double tolerance(double abs_sum) {
        return 1e-5 * abs_sum + 1e-6;
}

/* The x86 matvec of the native block types (and their matmul for up to 8 vectors, q4_0 up to 16 while
 * vectors x columns <= 65536) quantizes x to int8 blocks (simd-template.h): its error bound is sum over
 * blocks of amax(x_b)/254 * sum|w_b|, on top of the f32 tolerance. */
static bool x_quantized(const Kernels *k, DType t, size_t n_vec, size_t cols) {
        bool vnni = strcmp(k->isa, "avx512") == 0 && cpu_features()->avx512vnni;
        bool avx512 = vnni || strncmp(k->isa, "avx512", 6) == 0;
        /* with avx512_vnni, q8_0 and q4_0 of any vector count (x86-avx512vnni.c, x86-avx512vnni-q4.c;
         * the shapes here have at most 8192 columns, the limit of those paths) */
        if ((t == DTYPE_Q8_0 || t == DTYPE_Q4_0) && vnni)
                return true;
        /* the grouped types on x86 and NEON run in integers for every vector count */
        if (dtype_group_rows(t) > 1)
                return is_avx2(k) || avx512 || strncmp(k->isa, "neon", 4) == 0; /* neon, neon-dotprod */
        /* AVX2 (and AVX-512 without VNNI, which keeps these entries), any column count: q8_0 from 2
         * vectors (2-3 the row kernel, 4 on copies into groups; with vpdpbusd copies from 3) and q4_0
         * from 8 (copies, from 5 with vpdpbusd; x86-avx2-kernels.h) */
        if (((t == DTYPE_Q8_0 && n_vec >= 2) || (t == DTYPE_Q4_0 && n_vec >= 8)) && (is_avx2(k) || (avx512 && !vnni)))
                return true;
        return ((t == DTYPE_Q8_0 && n_vec <= 8) ||
                (t == DTYPE_Q4_0 && n_vec <= 16 && n_vec * cols <= 65536 && cols <= 32768) ||
                (t == DTYPE_Q4_0 && n_vec == 1)) &&
               (is_avx2(k) || avx512);
}

static void check_matrix(const Kernels *k, DType t, size_t rows, size_t cols, size_t n_vec) {
        size_t rb;
        uint8_t *w = random_matrix(t, rows, cols, &rb);
        float *wf = malloc(rows * cols * sizeof(float));
        float *x = malloc(n_vec * cols * sizeof(float));
        size_t ldy = rows + 3; /* a stride above rows: the kernel must not write the gap */
        float *y = malloc(n_vec * ldy * sizeof(float));
        CHECK(wf && x && y);
        dtype_rows_to_f32(t, w, cols, 0, rows, wf);
        for (size_t i = 0; i < n_vec * cols; i++)
                x[i] = test_randf();

        /* a sub-range of rows: everything outside it keeps its sentinel */
        size_t r0 = rows > 2 ? 1 : 0, r1 = rows > 3 ? rows - 1 : rows;
        for (size_t i = 0; i < n_vec * ldy; i++)
                y[i] = 12345.f;
        if (n_vec == 1)
                k->matvec[t](w, rb, cols, x, y, r0, r1);
        else
                k->matmul[t](w, rb, cols, x, cols, n_vec, y, ldy, r0, r1);

        for (size_t v = 0; v < n_vec; v++)
                for (size_t r = 0; r < ldy; r++) {
                        float got = y[v * ldy + r];
                        if (r < r0 || r >= r1) {
                                CHECK(got == 12345.f);
                                continue;
                        }
                        double ref = 0, abs_sum = 0, xq_bound = 0;
                        for (size_t i = 0; i < cols; i++) {
                                double p = (double)wf[r * cols + i] * x[v * cols + i];
                                ref += p;
                                abs_sum += fabs(p);
                        }
                        if (x_quantized(k, t, n_vec, cols))
                                for (size_t b = 0; b < cols / QK; b++) {
                                        double amax = 0, wsum = 0;
                                        for (size_t i = b * QK; i < (b + 1) * QK; i++) {
                                                amax = fmax(amax, fabs(x[v * cols + i]));
                                                wsum += fabs(wf[r * cols + i]);
                                        }
                                        xq_bound += amax / 254.0 * wsum * 1.01;
                                }
                        if (!(fabs(got - ref) <= tolerance(abs_sum) + xq_bound)) {
                                fprintf(stderr, "%s %s %s rows=%zu cols=%zu n_vec=%zu: y[%zu][%zu] = %.9g, want %.9g\n",
                                        k->isa, dtype_name(t), n_vec == 1 ? "matvec" : "matmul", rows, cols, n_vec, v,
                                        r, got, ref);
                                CHECK(false);
                        }
                }
        free(w);
        free(wf);
        free(x);
        free(y);
}

static void test_matrix(const Kernels *k) {
        static const size_t shapes[][2] = {
                { 1, 32 },   { 3, 32 },  { 7, 64 },   { 17, 96 },   { 33, 160 },
                { 64, 256 }, { 5, 768 }, { 9, 1056 }, { 40, 4096 },
        };
        for (size_t ti = 0; ti < sizeof(all_types) / sizeof(all_types[0]); ti++)
                for (size_t s = 0; s < sizeof(shapes) / sizeof(shapes[0]); s++) {
                        check_matrix(k, all_types[ti], shapes[s][0], shapes[s][1], 1);
                        check_matrix(k, all_types[ti], shapes[s][0], shapes[s][1], 1 + (s * 5) % 17);
                }
        /* every n_vec 1..17 for the register tiling of matmul: on 19 rows, and on 50, where the rows
         * 1..48 the check asks for hold whole 16-row groups (the grouped types' tiles of 2 groups x
         * up to 8 vectors in passes of up to 4, and q4_0's copies into groups) */
        for (size_t ti = 0; ti < sizeof(all_types) / sizeof(all_types[0]); ti++)
                for (size_t nv = 1; nv <= 17; nv++) {
                        check_matrix(k, all_types[ti], 19, 128, nv);
                        check_matrix(k, all_types[ti], 50, 96, nv);
                }
        /* batched decode of 2-16 vectors (VNNI q8_0: 2 vectors a zmm, 3-8 as 8 vectors x 2 groups of 4
         * bytes, from 9 copies into groups with the one-lane layout for the other rows) on wide rows,
         * odd block counts (1056 = 33 blocks) and the largest packed x (8192 columns) */
        for (size_t ti = 0; ti < sizeof(all_types) / sizeof(all_types[0]); ti++)
                for (size_t nv = 2; nv <= 16; nv++) {
                        check_matrix(k, all_types[ti], 13, 1056, nv);
                        check_matrix(k, all_types[ti], 6, 8192, nv);
                }
        /* prefill chunks: more than 16 vectors (VNNI: groups of up to 15, packed x in several passes
         * once the columns are many; q8_0 and q4_0 through 16-row copies for the grouped kernel, two
         * groups a tile up to 4096 columns and one beyond, with the rows left over by the row
         * kernels), odd row counts and odd block counts */
        static const size_t chunks[][3] = {
                { 19, 96, 17 },  { 33, 160, 31 },  { 5, 768, 64 },   { 40, 4096, 64 },
                { 9, 8192, 65 }, { 70, 1056, 47 }, { 48, 3072, 64 }, { 20, 8192, 33 },
        };
        for (size_t ti = 0; ti < sizeof(all_types) / sizeof(all_types[0]); ti++)
                for (size_t c = 0; c < sizeof(chunks) / sizeof(chunks[0]); c++)
                        check_matrix(k, all_types[ti], chunks[c][0], chunks[c][1], chunks[c][2]);
        /* a non-finite activation reaches the outputs of its own vector only, as in IEEE arithmetic
         * (the int8 paths hand such a vector to a float kernel; 37 rows: two 16-row groups, which
         * the grouped kernels and the copies into groups take, and 5 rows the row kernels take) */
        /* 3 vectors: the batched row kernels; 9: the copies into groups from 9 (VNNI q8_0); 20: chunks */
        static const size_t nvs[] = { 3, 9, 20 };
        for (size_t ti = 0; ti < sizeof(all_types) / sizeof(all_types[0]); ti++)
                for (size_t ni = 0; ni < sizeof(nvs) / sizeof(nvs[0]); ni++) {
                        const DType t = all_types[ti];
                        const size_t rows = 37, cols = 64, nv = nvs[ni], bad = nv / 2;
                        size_t rb;
                        uint8_t *w = random_matrix(t, rows, cols, &rb);
                        float *x = malloc(nv * cols * sizeof(float)), *y = malloc(nv * rows * sizeof(float));
                        float wf[64];
                        CHECK(x && y);
                        for (size_t i = 0; i < nv * cols; i++)
                                x[i] = test_randf();
                        x[bad * cols + 3] = INFINITY;
                        k->matmul[t](w, rb, cols, x, cols, nv, y, rows, 0, rows);
                        for (size_t r = 0; r < rows; r++) {
                                dtype_rows_to_f32(t, w, cols, r, 1, wf);
                                for (size_t v = 0; v < nv; v++)
                                        CHECK(v == bad ? (wf[3] == 0.f || !isfinite(y[v * rows + r]))
                                                       : isfinite(y[v * rows + r]));
                        }
                        free(w);
                        free(x);
                        free(y);
                }
        /* float types take any column count */
        const DType ft[] = { DTYPE_F32, DTYPE_F16, DTYPE_BF16 };
        for (size_t ti = 0; ti < 3; ti++)
                for (size_t cols = 1; cols < 70; cols += 3) {
                        check_matrix(k, ft[ti], 11, cols, 1);
                        check_matrix(k, ft[ti], 11, cols, 5);
                }
}

static void ref_norm(const float *x, const float *w, const float *b, double *y, size_t n, float eps) {
        double mean = 0, var = 0;
        for (size_t i = 0; i < n; i++)
                mean += x[i];
        mean /= (double)n;
        for (size_t i = 0; i < n; i++)
                var += (x[i] - mean) * (x[i] - mean);
        var /= (double)n;
        for (size_t i = 0; i < n; i++)
                y[i] = (x[i] - mean) / sqrt(var + eps) * w[i] + b[i];
}

static void test_norms(const Kernels *k) {
        static const size_t sizes[] = { 1, 2, 7, 16, 64, 65, 768, 1024, 2051 };
        for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
                size_t n = sizes[s];
                float *x = malloc(n * sizeof(float)), *w = malloc(n * sizeof(float)), *b = malloc(n * sizeof(float));
                float *y = malloc(n * sizeof(float));
                double *ref = malloc(n * sizeof(double));
                CHECK(x && w && b && y && ref);
                for (size_t i = 0; i < n; i++) {
                        x[i] = test_randf() * 3.f + 5.f; /* a large mean catches one-pass variance */
                        w[i] = test_randf();
                        b[i] = test_randf();
                }
                ref_norm(x, w, b, ref, n, 1e-5f);
                k->layer_norm(x, w, b, y, n, 1e-5f);
                for (size_t i = 0; i < n; i++)
                        CHECK_NEAR(y[i], ref[i], 1e-4 * (1 + fabs(ref[i])));
                /* in place */
                memcpy(y, x, n * sizeof(float));
                k->layer_norm(y, w, b, y, n, 1e-5f);
                for (size_t i = 0; i < n; i++)
                        CHECK_NEAR(y[i], ref[i], 1e-4 * (1 + fabs(ref[i])));

                /* group norm with the groups RWKV uses (head size 64) and odd ones */
                static const size_t gs[] = { 1, 3, 16, 64 };
                for (size_t g = 0; g < 4; g++) {
                        if (n % gs[g])
                                continue;
                        size_t ng = n / gs[g];
                        for (size_t i = 0; i < ng; i++)
                                ref_norm(x + i * gs[g], w + i * gs[g], b + i * gs[g], ref + i * gs[g], gs[g], 64e-5f);
                        k->group_norm(x, w, b, y, ng, gs[g], 64e-5f);
                        for (size_t i = 0; i < n; i++)
                                CHECK_NEAR(y[i], ref[i], 1e-4 * (1 + fabs(ref[i])));
                }
                free(x);
                free(w);
                free(b);
                free(y);
                free(ref);
        }
}

static void test_wkv7(const Kernels *k) {
        static const size_t shapes[][2] = { { 1, 4 }, { 2, 64 }, { 3, 16 }, { 1, 7 }, { 12, 64 } };
        for (size_t s = 0; s < sizeof(shapes) / sizeof(shapes[0]); s++) {
                size_t H = shapes[s][0], N = shapes[s][1], C = H * N;
                float *st = malloc(H * N * N * sizeof(float));
                double *ref = malloc(H * N * N * sizeof(double));
                float *vec[7];
                for (int i = 0; i < 7; i++)
                        CHECK((vec[i] = malloc(C * sizeof(float))));
                double *yref = malloc(C * sizeof(double));
                CHECK(st && ref && yref);
                for (size_t i = 0; i < H * N * N; i++)
                        ref[i] = st[i] = test_randf();

                for (int step = 0; step < 3; step++) {
                        float *r = vec[0], *w = vec[1], *kk = vec[2], *v = vec[3], *a = vec[4], *b = vec[5],
                              *y = vec[6];
                        for (size_t i = 0; i < C; i++) {
                                r[i] = test_randf();
                                w[i] = 0.5f + 0.5f * fabsf(test_randf()); /* decays in (0.5, 1) */
                                kk[i] = test_randf();
                                v[i] = test_randf();
                                a[i] = test_randf() * 0.2f;
                                b[i] = test_randf() * 0.2f;
                        }
                        for (size_t h = 0; h < H; h++)
                                for (size_t i = 0; i < N; i++) {
                                        double *Si = ref + h * N * N + i * N, sa = 0, yi = 0;
                                        size_t o = h * N;
                                        for (size_t j = 0; j < N; j++)
                                                sa += Si[j] * a[o + j];
                                        for (size_t j = 0; j < N; j++) {
                                                Si[j] = Si[j] * w[o + j] + sa * b[o + j] + (double)v[o + i] * kk[o + j];
                                                yi += Si[j] * r[o + j];
                                        }
                                        yref[o + i] = yi;
                                }
                        k->wkv7(st, r, w, kk, v, a, b, y, H, N);
                        for (size_t i = 0; i < C; i++)
                                CHECK_NEAR(y[i], yref[i], 1e-4 * (1 + fabs(yref[i])));
                        for (size_t i = 0; i < H * N * N; i++)
                                CHECK_NEAR(st[i], ref[i], 1e-5 * (1 + fabs(ref[i])));
                }
                for (int i = 0; i < 7; i++)
                        free(vec[i]);
                free(st);
                free(ref);
                free(yref);
        }
}

/* wkv7_seq against token-by-token scalar wkv7: a chunk keeps the state to rounding (the SIMD
 * version sums in another order), head size 64 (the transposed path) and others (fallback). */
static void test_wkv7_seq(const Kernels *k) {
        static const size_t shapes[][3] = { { 1, 64, 5 }, { 3, 64, 64 }, { 2, 16, 7 }, { 1, 7, 3 }, { 2, 64, 1 } };
        for (size_t s = 0; s < sizeof(shapes) / sizeof(shapes[0]); s++) {
                size_t H = shapes[s][0], N = shapes[s][1], n = shapes[s][2], C = H * N, ld = C + 5;
                float *st = malloc(H * N * N * sizeof(float)), *ref = malloc(H * N * N * sizeof(float));
                float *vec[7], *yref = malloc(n * ld * sizeof(float));
                for (int i = 0; i < 7; i++)
                        CHECK((vec[i] = malloc(n * ld * sizeof(float))));
                CHECK(st && ref && yref);
                for (size_t i = 0; i < H * N * N; i++)
                        ref[i] = st[i] = test_randf();
                float *r = vec[0], *w = vec[1], *kk = vec[2], *v = vec[3], *a = vec[4], *b = vec[5], *y = vec[6];
                for (size_t i = 0; i < n * ld; i++) {
                        r[i] = test_randf();
                        w[i] = 0.5f + 0.5f * fabsf(test_randf());
                        kk[i] = test_randf();
                        v[i] = test_randf();
                        a[i] = test_randf() * 0.2f;
                        b[i] = test_randf() * 0.2f;
                        y[i] = yref[i] = 777.f; /* the gaps between rows stay untouched */
                }
                const Kernels *sc = kernels_get_isa("scalar");
                for (size_t t = 0; t < n; t++) {
                        size_t o = t * ld;
                        sc->wkv7(ref, r + o, w + o, kk + o, v + o, a + o, b + o, yref + o, H, N);
                }
                k->wkv7_seq(st, r, w, kk, v, a, b, y, ld, n, H, N);
                for (size_t i = 0; i < n * ld; i++)
                        CHECK_NEAR(y[i], yref[i], 1e-4 * (1 + fabs(yref[i])));
                for (size_t i = 0; i < H * N * N; i++)
                        CHECK_NEAR(st[i], ref[i], 1e-5 * (1 + fabs(ref[i])));
                for (int i = 0; i < 7; i++)
                        free(vec[i]);
                free(st);
                free(ref);
                free(yref);
        }
}

static double ref_sigmoid(double x) {
        return 1.0 / (1.0 + exp(-x));
}

/* v7_gates against double precision: a few ulp (the SIMD exp is a polynomial), every length up to
 * a few vectors plus a tail, arguments up to +-100 (clamped inside), NaN passed through. */
static void test_v7_gates(const Kernels *k) {
        static const size_t sizes[] = { 1, 3, 4, 8, 15, 16, 17, 33, 64, 100 };
        for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++)
                for (int with_v = 0; with_v < 2; with_v++) {
                        size_t n = sizes[s];
                        float w[100], w0[100], a[100], a0[100], v[100], vf[100], v0[100], t[100];
                        double wr[100], ar[100], vr[100];
                        for (size_t i = 0; i < n; i++) {
                                float scale = i % 7 == 3 ? 50.f : 4.f; /* some far out in the tails */
                                w[i] = test_randf() * scale;
                                w0[i] = test_randf() * scale;
                                a[i] = test_randf() * scale;
                                a0[i] = test_randf();
                                v[i] = test_randf();
                                vf[i] = test_randf();
                                v0[i] = test_randf();
                                t[i] = test_randf() * scale;
                                wr[i] = exp(-0.606531 * ref_sigmoid(w0[i] + w[i])); /* float sums, as in the kernel */
                                ar[i] = ref_sigmoid(a0[i] + a[i]);
                                vr[i] = v[i] + ((double)vf[i] - v[i]) * ref_sigmoid(v0[i] + t[i]);
                        }
                        k->v7_gates(w, w0, a, a0, v, vf, with_v ? v0 : NULL, t, n);
                        for (size_t i = 0; i < n; i++) {
                                if (!(fabs(w[i] - wr[i]) <= 1e-6 * fabs(wr[i]) &&
                                      fabs(a[i] - ar[i]) <= 1e-6 * fabs(ar[i]) + 1e-30)) {
                                        fprintf(stderr, "%s v7_gates n=%zu [%zu]: w %.9g want %.9g, a %.9g want %.9g\n",
                                                k->isa, n, i, w[i], wr[i], a[i], ar[i]);
                                        CHECK(false);
                                }
                                if (with_v)
                                        CHECK(fabs(v[i] - vr[i]) <= 1e-6 * (fabs(v[i]) + fabs(vf[i])) + 1e-7);
                        }
                }
        /* NaN in, NaN out (on every lane and in the tail) */
        float w[19], w0[19], a[19], a0[19];
        for (size_t i = 0; i < 19; i++) {
                w[i] = a[i] = a0[i] = 0.5f;
                w0[i] = NAN;
        }
        k->v7_gates(w, w0, a, a0, NULL, NULL, NULL, NULL, 19);
        for (size_t i = 0; i < 19; i++)
                CHECK(isnan(w[i]) && fabsf(a[i] - (float)ref_sigmoid(1.0)) < 1e-6f);
}

/* v7_keys and v7_bonus against double precision, head sizes on and off the vector width. */
static void test_v7_heads(const Kernels *k) {
        static const size_t shapes[][2] = { { 1, 4 }, { 2, 64 }, { 3, 16 }, { 1, 7 }, { 12, 64 } };
        for (size_t s = 0; s < sizeof(shapes) / sizeof(shapes[0]); s++) {
                size_t H = shapes[s][0], N = shapes[s][1], C = H * N;
                float kv[768], kk[768], b[768], a[768], k_k[768], k_a[768], y[768], r[768], v[768], g[768], r_k[768],
                        kin[768], yin[768];
                for (size_t i = 0; i < C; i++) {
                        kin[i] = kv[i] = test_randf();
                        a[i] = 0.5f + 0.5f * test_randf();
                        k_k[i] = test_randf();
                        k_a[i] = test_randf();
                        yin[i] = y[i] = test_randf();
                        r[i] = test_randf();
                        v[i] = test_randf();
                        g[i] = test_randf();
                        r_k[i] = test_randf();
                }
                if (s == 0) /* a head of zero keys: the norm's floor, no NaN */
                        for (size_t i = 0; i < N; i++)
                                kin[i] = kv[i] = 0;
                k->v7_keys(kv, kk, b, a, k_k, k_a, H, N);
                k->v7_bonus(y, r, kin, v, g, r_k, H, N);
                for (size_t h = 0; h < H; h++) {
                        size_t o = h * N;
                        double ss = 0, bonus = 0;
                        for (size_t i = o; i < o + N; i++) {
                                ss += (double)kin[i] * k_k[i] * kin[i] * k_k[i];
                                bonus += (double)r[i] * kin[i] * r_k[i];
                        }
                        double inv = 1.0 / fmax(sqrt(ss), 1e-12);
                        for (size_t i = o; i < o + N; i++) {
                                double q = (double)kin[i] * k_k[i] * inv;
                                CHECK_NEAR(kk[i], -q, 1e-6);
                                CHECK_NEAR(b[i], q * a[i], 1e-6);
                                CHECK_NEAR(kv[i], kin[i] * (1.0 + ((double)a[i] - 1.0) * k_a[i]), 1e-6);
                                CHECK_NEAR(y[i], (yin[i] + bonus * v[i]) * g[i], 1e-5);
                        }
                }
        }
}

/* add and relu_sq equal the scalar reference bit for bit (NaN included), mix within an ulp of it;
 * every length up to a few vectors plus a tail, and mix writing over its inputs. */
static void test_elementwise(const Kernels *k) {
        const Kernels *ref = kernels_get_isa("scalar");
        for (size_t n = 0; n <= 70; n += n < 20 ? 1 : 7) {
                float x[70], y[70], yr[70], d[70], m[70], h[70], hr[70];
                for (size_t i = 0; i < n; i++) {
                        x[i] = test_randf();
                        yr[i] = y[i] = test_randf();
                        d[i] = test_randf();
                        m[i] = test_randf();
                        hr[i] = h[i] = test_randf();
                }
                if (n > 5) {
                        hr[3] = h[3] = NAN;
                        hr[4] = h[4] = -0.0f;
                        hr[5] = h[5] = -INFINITY;
                }
                k->add(y, x, n);
                ref->add(yr, x, n);
                CHECK(memcmp(y, yr, n * sizeof(float)) == 0);
                k->relu_sq(h, n);
                ref->relu_sq(hr, n);
                for (size_t i = 0; i < n; i++)
                        CHECK(isnan(h[i]) ? isnan(hr[i]) : memcmp(&h[i], &hr[i], sizeof(float)) == 0);
                if (n > 5)
                        CHECK(isnan(h[3]) && h[4] == 0 && h[5] == 0);

                k->mix(y, x, d, m, n);
                float *alias_x = malloc((n + 1) * sizeof(float)), *alias_d = malloc((n + 1) * sizeof(float));
                CHECK(alias_x && alias_d);
                memcpy(alias_x, x, n * sizeof(float));
                memcpy(alias_d, d, n * sizeof(float));
                k->mix(alias_x, alias_x, d, m, n);
                k->mix(alias_d, x, alias_d, m, n);
                for (size_t i = 0; i < n; i++) {
                        double want = x[i] + (double)d[i] * m[i];
                        double tol = 0x1p-23 * (fabs(x[i]) + fabs((double)d[i] * m[i]));
                        CHECK_NEAR(y[i], want, tol);
                        CHECK(alias_x[i] == y[i] && alias_d[i] == y[i]);
                }
                free(alias_x);
                free(alias_d);
        }
}

/* The threaded wrappers give the same result as the direct kernel, for 1..3 threads. */
static void test_wrappers(const Kernels *k) {
        const size_t cols = 512;
        for (unsigned nt = 1; nt <= 3; nt++) {
                ThreadPool *pool = NULL;
                CHECK_OK(threadpool_new(nt, &pool));
                for (size_t ti = 0; ti < sizeof(all_types) / sizeof(all_types[0]); ti++) {
                        DType t = all_types[ti];
                        size_t rows = stored_rows(t, 333), rb;
                        uint8_t *w = random_matrix(t, rows, cols, &rb);
                        Tensor tw = {
                                .dtype = t, .n_dims = 2, .shape = { rows, cols }, .data = w, .nbytes = rb * rows
                        };
                        const size_t nv = 5;
                        float *x = malloc(nv * cols * sizeof(float)), *y = malloc(nv * rows * sizeof(float)),
                              *yd = malloc(nv * rows * sizeof(float));
                        CHECK(x && y && yd);
                        for (size_t i = 0; i < nv * cols; i++)
                                x[i] = test_randf();

                        kernels_matvec(k, pool, &tw, x, y);
                        k->matvec[t](w, rb, cols, x, yd, 0, rows);
                        CHECK(memcmp(y, yd, rows * sizeof(float)) == 0);

                        kernels_matmul(k, pool, &tw, x, nv, y);
                        k->matmul[t](w, rb, cols, x, cols, nv, yd, rows, 0, rows);
                        CHECK(memcmp(y, yd, nv * rows * sizeof(float)) == 0);

                        /* a tensor whose bytes do not cover its shape is refused (NaN output, no read) */
                        Tensor bad = tw;
                        bad.nbytes = rb * rows - 1;
                        kernels_matvec(k, pool, &bad, x, y);
                        CHECK(isnan(y[0]) && isnan(y[rows - 1]));
                        bad = tw;
                        bad.shape[1] = dtype_block_elems(t) == 1 ? 0 : 33;
                        kernels_matmul(k, pool, &bad, x, 2, y);
                        CHECK(isnan(y[0]));
                        if (dtype_group_rows(t) > 1) {
                                /* a grouped type's rows must be whole groups */
                                bad = tw;
                                bad.shape[0] = rows - 1;
                                kernels_matvec(k, pool, &bad, x, y);
                                CHECK(isnan(y[0]));
                        }
                        free(w);
                        free(x);
                        free(y);
                        free(yd);
                }
                pool = threadpool_free(pool);
        }
}

/* avx2-vnni against avx2, bit for bit wherever both take the same kernel: vpdpbusd sums the same
 * exact integers that maddubs / madd do, and the float arithmetic around them is the same in the
 * same order. Every int8 path of the table: matvec, the batched row kernels, the copies into
 * groups, the grouped tiles, vectors in several tiles and chunks, column passes (8192 columns) and
 * a non-finite activation. */
static void test_avx2_vnni_exact(void) {
        const Kernels *a = kernels_get_isa("avx2"), *v = kernels_get_isa("avx2-vnni");
        if (!a || !v) {
                fprintf(stderr, "avx2-vnni exactness: not available here, skipped\n");
                return;
        }
        static const DType types[] = { DTYPE_Q8_0, DTYPE_Q4_0, DTYPE_Q8_0X16, DTYPE_Q4_0X16 };
        static const size_t shapes[][2] = { { 50, 96 }, { 37, 1056 }, { 33, 8192 }, { 16, 3072 } };
        static const size_t nvs[] = { 1, 2, 3, 4, 5, 7, 8, 9, 13, 16, 17, 33, 64 };
        for (size_t ti = 0; ti < sizeof(types) / sizeof(types[0]); ti++)
                for (size_t s = 0; s < sizeof(shapes) / sizeof(shapes[0]); s++)
                        for (size_t ni = 0; ni < sizeof(nvs) / sizeof(nvs[0]); ni++) {
                                const DType t = types[ti];
                                size_t rows = shapes[s][0], cols = shapes[s][1], nv = nvs[ni], rb;
                                /* where the two tables take different kernels (with vpdpbusd the
                                 * copies into groups start earlier: q8_0 at 3 vectors, q4_0 at 5;
                                 * x86-avx2-kernels.h) the sums are added in another order, and the
                                 * tolerance test above covers them */
                                bool other_path = (t == DTYPE_Q8_0 && nv == 3) ||
                                                  (t == DTYPE_Q4_0 && nv >= 5 && nv < 8 && nv * cols < 12288);
                                if (nv * cols > 65536 * 4 || other_path)
                                        continue;
                                uint8_t *w = random_matrix(t, rows, cols, &rb);
                                float *x = malloc(nv * cols * sizeof(float)), *y0 = malloc(nv * rows * sizeof(float)),
                                      *y1 = malloc(nv * rows * sizeof(float));
                                CHECK(x && y0 && y1);
                                for (size_t i = 0; i < nv * cols; i++)
                                        x[i] = test_randf();
                                if (nv == 9)
                                        x[4 * cols + 5] = NAN;
                                size_t r0 = s % 2, r1 = rows;
                                if (dtype_group_rows(t) > 1)
                                        r0 = 0;
                                for (int pass = 0; pass < 2; pass++) {
                                        const Kernels *k = pass ? v : a;
                                        float *y = pass ? y1 : y0;
                                        memset(y, 0, nv * rows * sizeof(float));
                                        if (nv == 1)
                                                k->matvec[t](w, rb, cols, x, y, r0, r1);
                                        else
                                                k->matmul[t](w, rb, cols, x, cols, nv, y, rows, r0, r1);
                                }
                                if (memcmp(y0, y1, nv * rows * sizeof(float)) != 0) {
                                        fprintf(stderr, "avx2-vnni differs from avx2: %s rows=%zu cols=%zu n_vec=%zu\n",
                                                dtype_name(t), rows, cols, nv);
                                        CHECK(false);
                                }
                                free(w);
                                free(x);
                                free(y0);
                                free(y1);
                        }
        fprintf(stderr, "avx2-vnni exactness: ok\n");
}

int main(void) {
        const Kernels *def = kernels_get();
        CHECK(def && def->isa);
        fprintf(stderr, "default ISA: %s\n", def->isa);
        const char *forced = getenv("RWKV_ISA");
        if (forced && kernels_get_isa(forced))
                CHECK_STREQ(def->isa, forced);
        CHECK(kernels_get_isa("scalar"));
        CHECK(kernels_get_isa("sse9") == NULL);
        CHECK(kernels_get_isa(NULL) == NULL);

        for (size_t i = 0; i < sizeof(test_isas) / sizeof(test_isas[0]); i++) {
                const Kernels *k = kernels_get_isa(test_isas[i]);
                if (!k) {
                        fprintf(stderr, "%s: not available here, skipped\n", test_isas[i]);
                        continue;
                }
                CHECK_STREQ(k->isa, test_isas[i]);
                for (size_t t = 0; t < sizeof(all_types) / sizeof(all_types[0]); t++)
                        CHECK(k->matvec[all_types[t]] && k->matmul[all_types[t]]);
                CHECK(k->layer_norm && k->group_norm && k->wkv7 && k->wkv7_seq && k->v7_gates && k->v7_keys &&
                      k->v7_bonus && k->add && k->relu_sq && k->mix);
                test_seed(42);
                test_matrix(k);
                test_norms(k);
                test_wkv7(k);
                test_wkv7_seq(k);
                test_v7_gates(k);
                test_v7_heads(k);
                test_elementwise(k);
                test_wrappers(k);
                fprintf(stderr, "%s: ok\n", test_isas[i]);
        }
        test_seed(7);
        test_avx2_vnni_exact();
        return 0;
}
