/* generic.c: the scalar reference for every kernel and every dtype (the *_generic functions).
 *
 * Each matvec/matmul decodes a chunk of a row into a small stack buffer, then takes dot products
 * with the activations, so the per-dtype part is one decode function inlined into a macro-made
 * kernel: no switch on dtype in any loop. The ggml types only ever run through these. */
#include <math.h>

#include "kernels/kernels-internal.h"
#include "kernels/quant.h"

#define CHUNK 256 /* a multiple of QK */

static inline void decode_f32(const uint8_t *row, size_t n, size_t i0, float *out, size_t len) {
        memcpy(out, row + 4 * i0, len * sizeof(float));
}

static inline void decode_f16(const uint8_t *row, size_t n, size_t i0, float *out, size_t len) {
        for (size_t i = 0; i < len; i++)
                out[i] = f16_to_f32(load_u16(row + 2 * (i0 + i)));
}

static inline void decode_bf16(const uint8_t *row, size_t n, size_t i0, float *out, size_t len) {
        for (size_t i = 0; i < len; i++)
                out[i] = bf16_to_f32(load_u16(row + 2 * (i0 + i)));
}

static inline void decode_q8_0(const uint8_t *row, size_t n, size_t i0, float *out, size_t len) {
        const int8_t *q = (const int8_t *)(row + q_row_quants_offset(n));
        for (size_t b = i0 / QK; b < (i0 + len) / QK; b++) {
                float d = f16_to_f32(load_u16(row + 2 * b));
                for (size_t j = 0; j < QK; j++)
                        *out++ = d * (float)q[b * QK + j];
        }
}

static inline void decode_q4_0(const uint8_t *row, size_t n, size_t i0, float *out, size_t len) {
        const uint8_t *qs = row + q_row_quants_offset(n);
        for (size_t b = i0 / QK; b < (i0 + len) / QK; b++, out += QK) {
                float d = f16_to_f32(load_u16(row + 2 * b));
                for (size_t j = 0; j < QK / 2; j++) {
                        uint8_t v = qs[b * (QK / 2) + j];
                        out[j] = d * (float)((int)(v & 0xf) - 8);
                        out[j + QK / 2] = d * (float)((int)(v >> 4) - 8);
                }
        }
}

static inline void decode_ggml_q4_0(const uint8_t *row, size_t n, size_t i0, float *out, size_t len) {
        for (size_t b = i0 / QK; b < (i0 + len) / QK; b++, out += QK) {
                const uint8_t *blk = row + b * sizeof(GgmlBlockQ4_0);
                float d = f16_to_f32(load_u16(blk));
                for (size_t j = 0; j < QK / 2; j++) {
                        out[j] = d * (float)((int)(blk[2 + j] & 0xf) - 8);
                        out[j + QK / 2] = d * (float)((int)(blk[2 + j] >> 4) - 8);
                }
        }
}

static inline void decode_ggml_q4_1(const uint8_t *row, size_t n, size_t i0, float *out, size_t len) {
        for (size_t b = i0 / QK; b < (i0 + len) / QK; b++, out += QK) {
                const uint8_t *blk = row + b * sizeof(GgmlBlockQ4_1);
                float d = f16_to_f32(load_u16(blk)), m = f16_to_f32(load_u16(blk + 2));
                for (size_t j = 0; j < QK / 2; j++) {
                        out[j] = d * (float)(blk[4 + j] & 0xf) + m;
                        out[j + QK / 2] = d * (float)(blk[4 + j] >> 4) + m;
                }
        }
}

static inline void decode_ggml_q5_0(const uint8_t *row, size_t n, size_t i0, float *out, size_t len) {
        for (size_t b = i0 / QK; b < (i0 + len) / QK; b++, out += QK) {
                const uint8_t *blk = row + b * sizeof(GgmlBlockQ5_0);
                float d = f16_to_f32(load_u16(blk));
                uint32_t qh = load_u32(blk + 2);
                for (size_t j = 0; j < QK / 2; j++) {
                        int lo = (blk[6 + j] & 0xf) | (int)(((qh >> j) & 1) << 4);
                        int hi = (blk[6 + j] >> 4) | (int)(((qh >> (j + 16)) & 1) << 4);
                        out[j] = d * (float)(lo - 16);
                        out[j + QK / 2] = d * (float)(hi - 16);
                }
        }
}

static inline void decode_ggml_q5_1(const uint8_t *row, size_t n, size_t i0, float *out, size_t len) {
        for (size_t b = i0 / QK; b < (i0 + len) / QK; b++, out += QK) {
                const uint8_t *blk = row + b * sizeof(GgmlBlockQ5_1);
                float d = f16_to_f32(load_u16(blk)), m = f16_to_f32(load_u16(blk + 2));
                uint32_t qh = load_u32(blk + 4);
                for (size_t j = 0; j < QK / 2; j++) {
                        int lo = (blk[8 + j] & 0xf) | (int)(((qh >> j) & 1) << 4);
                        int hi = (blk[8 + j] >> 4) | (int)(((qh >> (j + 16)) & 1) << 4);
                        out[j] = d * (float)lo + m;
                        out[j + QK / 2] = d * (float)hi + m;
                }
        }
}

static inline void decode_ggml_q8_0(const uint8_t *row, size_t n, size_t i0, float *out, size_t len) {
        for (size_t b = i0 / QK; b < (i0 + len) / QK; b++, out += QK) {
                const uint8_t *blk = row + b * sizeof(GgmlBlockQ8_0);
                float d = f16_to_f32(load_u16(blk));
                for (size_t j = 0; j < QK; j++)
                        out[j] = d * (float)(int8_t)blk[2 + j];
        }
}

void dtype_decode_range(DType t, const void *row, size_t n, size_t i0, float *out, size_t len) {
        switch (t) {
        case DTYPE_F32:
                decode_f32(row, n, i0, out, len);
                break;
        case DTYPE_F16:
                decode_f16(row, n, i0, out, len);
                break;
        case DTYPE_BF16:
                decode_bf16(row, n, i0, out, len);
                break;
        case DTYPE_Q8_0:
                decode_q8_0(row, n, i0, out, len);
                break;
        case DTYPE_Q4_0:
                decode_q4_0(row, n, i0, out, len);
                break;
        case DTYPE_GGML_Q4_0:
                decode_ggml_q4_0(row, n, i0, out, len);
                break;
        case DTYPE_GGML_Q4_1:
                decode_ggml_q4_1(row, n, i0, out, len);
                break;
        case DTYPE_GGML_Q5_0:
                decode_ggml_q5_0(row, n, i0, out, len);
                break;
        case DTYPE_GGML_Q5_1:
                decode_ggml_q5_1(row, n, i0, out, len);
                break;
        case DTYPE_GGML_Q8_0:
                decode_ggml_q8_0(row, n, i0, out, len);
                break;
        default:
                break;
        }
}

/* Eight partial sums: deterministic, vectorizable by the compiler, and more accurate than one. */
static inline float dot_f32(const float *a, const float *b, size_t n) {
        float acc[8] = { 0 };
        size_t i = 0;
        for (; i + 8 <= n; i += 8)
                for (size_t l = 0; l < 8; l++)
                        acc[l] += a[i + l] * b[i + l];
        for (; i < n; i++)
                acc[i & 7] += a[i] * b[i];
        return ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
}

#define DEFINE_GENERIC_MATRIX_KERNELS(name)                                                                            \
        static void matvec_##name##_generic(const void *w, size_t row_bytes, size_t n_cols, const float *x, float *y,  \
                                            size_t r0, size_t r1) {                                                    \
                float buf[CHUNK];                                                                                      \
                for (size_t r = r0; r < r1; r++) {                                                                     \
                        const uint8_t *row = (const uint8_t *)w + r * row_bytes;                                       \
                        float acc = 0.f;                                                                               \
                        for (size_t i = 0; i < n_cols; i += CHUNK) {                                                   \
                                size_t len = MIN_(CHUNK, n_cols - i);                                                  \
                                decode_##name(row, n_cols, i, buf, len);                                               \
                                acc += dot_f32(buf, x + i, len);                                                       \
                        }                                                                                              \
                        y[r] = acc;                                                                                    \
                }                                                                                                      \
        }                                                                                                              \
        static void matmul_##name##_generic(const void *w, size_t row_bytes, size_t n_cols, const float *x,            \
                                            size_t ldx, size_t n_vec, float *y, size_t ldy, size_t r0, size_t r1) {    \
                float buf[CHUNK];                                                                                      \
                for (size_t r = r0; r < r1; r++) {                                                                     \
                        const uint8_t *row = (const uint8_t *)w + r * row_bytes;                                       \
                        for (size_t v = 0; v < n_vec; v++)                                                             \
                                y[v * ldy + r] = 0.f;                                                                  \
                        for (size_t i = 0; i < n_cols; i += CHUNK) {                                                   \
                                size_t len = MIN_(CHUNK, n_cols - i);                                                  \
                                decode_##name(row, n_cols, i, buf, len);                                               \
                                for (size_t v = 0; v < n_vec; v++)                                                     \
                                        y[v * ldy + r] += dot_f32(buf, x + v * ldx + i, len);                          \
                        }                                                                                              \
                }                                                                                                      \
        }

#define MIN_(a, b) ((a) < (b) ? (a) : (b))

DEFINE_GENERIC_MATRIX_KERNELS(f32)
DEFINE_GENERIC_MATRIX_KERNELS(f16)
DEFINE_GENERIC_MATRIX_KERNELS(bf16)
DEFINE_GENERIC_MATRIX_KERNELS(q8_0)
DEFINE_GENERIC_MATRIX_KERNELS(q4_0)
DEFINE_GENERIC_MATRIX_KERNELS(ggml_q4_0)
DEFINE_GENERIC_MATRIX_KERNELS(ggml_q4_1)
DEFINE_GENERIC_MATRIX_KERNELS(ggml_q5_0)
DEFINE_GENERIC_MATRIX_KERNELS(ggml_q5_1)
DEFINE_GENERIC_MATRIX_KERNELS(ggml_q8_0)

/* Q8_0X16, Q4_0X16: a row is lane r % 16 of group r / 16 (kernels/quant.h). */
void matmul_x16_generic(DType t, const void *w, size_t row_bytes, size_t n_cols, const float *x, size_t ldx,
                        size_t n_vec, float *y, size_t ldy, size_t r0, size_t r1) {
        float buf[CHUNK];
        for (size_t r = r0; r < r1; r++) {
                const uint8_t *group = (const uint8_t *)w + r / 16 * 16 * row_bytes;
                for (size_t v = 0; v < n_vec; v++)
                        y[v * ldy + r] = 0.f;
                for (size_t i = 0; i < n_cols; i += CHUNK) {
                        size_t len = MIN_(CHUNK, n_cols - i);
                        x16_decode_range(t, group, r % 16, n_cols, i, buf, len);
                        for (size_t v = 0; v < n_vec; v++)
                                y[v * ldy + r] += dot_f32(buf, x + v * ldx + i, len);
                }
        }
}

bool x16_split_groups(DType t, const void *w, size_t row_bytes, size_t n_cols, const float *x, size_t ldx, size_t n_vec,
                      float *y, size_t ldy, size_t r0, size_t r1, size_t *ret_g0, size_t *ret_g1) {
        size_t g0 = (r0 + 15) / 16, g1 = r1 / 16;
        if (g0 >= g1) {
                matmul_x16_generic(t, w, row_bytes, n_cols, x, ldx, n_vec, y, ldy, r0, r1);
                return false;
        }
        if (r0 < 16 * g0)
                matmul_x16_generic(t, w, row_bytes, n_cols, x, ldx, n_vec, y, ldy, r0, 16 * g0);
        if (16 * g1 < r1)
                matmul_x16_generic(t, w, row_bytes, n_cols, x, ldx, n_vec, y, ldy, 16 * g1, r1);
        *ret_g0 = g0;
        *ret_g1 = g1;
        return true;
}

DEFINE_X16_ENTRIES(matmul_x16_generic, generic)

void layer_norm_generic(const float *x, const float *w, const float *b, float *y, size_t n, float eps) {
        /* Two passes in double: the reference must not lose the variance of large-mean inputs. */
        double mean = 0, var = 0;
        for (size_t i = 0; i < n; i++)
                mean += x[i];
        mean /= (double)n;
        for (size_t i = 0; i < n; i++)
                var += ((double)x[i] - mean) * ((double)x[i] - mean);
        var /= (double)n;
        float m = (float)mean, rs = (float)(1.0 / sqrt(var + (double)eps));
        for (size_t i = 0; i < n; i++)
                y[i] = (x[i] - m) * rs * w[i] + b[i];
}

void group_norm_generic(const float *x, const float *w, const float *b, float *y, size_t n_groups, size_t group_size,
                        float eps) {
        for (size_t g = 0; g < n_groups; g++) {
                size_t o = g * group_size;
                layer_norm_generic(x + o, w + o, b + o, y + o, group_size, eps);
        }
}

void wkv7_generic(float *state, const float *r, const float *w, const float *k, const float *v, const float *a,
                  const float *b, float *y, size_t H, size_t N) {
        for (size_t h = 0; h < H; h++) {
                float *S = state + h * N * N;
                size_t o = h * N;
                for (size_t i = 0; i < N; i++) {
                        float *Si = S + i * N;
                        float sa = 0.f, yi = 0.f, vi = v[o + i];
                        for (size_t j = 0; j < N; j++)
                                sa += Si[j] * a[o + j];
                        for (size_t j = 0; j < N; j++) {
                                float s = Si[j] * w[o + j] + sa * b[o + j] + vi * k[o + j];
                                Si[j] = s;
                                yi += s * r[o + j];
                        }
                        y[o + i] = yi;
                }
        }
}

void wkv7_seq_generic(float *state, const float *r, const float *w, const float *k, const float *v, const float *a,
                      const float *b, float *y, size_t ld, size_t n_tok, size_t H, size_t N) {
        for (size_t t = 0; t < n_tok; t++) {
                size_t o = t * ld;
                wkv7_generic(state, r + o, w + o, k + o, v + o, a + o, b + o, y + o, H, N);
        }
}

static inline float sigmoid_generic(float x) {
        return 1.0f / (1.0f + expf(-x));
}

void v7_gates_generic(float *w, const float *w0, float *a, const float *a0, float *v, const float *vf, const float *v0,
                      const float *t, size_t n) {
        for (size_t i = 0; i < n; i++) {
                w[i] = expf(-0.606531f * sigmoid_generic(w0[i] + w[i]));
                a[i] = sigmoid_generic(a0[i] + a[i]);
                if (v0)
                        v[i] += (vf[i] - v[i]) * sigmoid_generic(v0[i] + t[i]);
        }
}

void v7_keys_generic(float *k, float *kk, float *b, const float *a, const float *k_k, const float *k_a, size_t H,
                     size_t N) {
        for (size_t h = 0; h < H; h++) {
                size_t o = h * N;
                float ss = 0;
                for (size_t i = o; i < o + N; i++) {
                        kk[i] = k[i] * k_k[i];
                        ss += kk[i] * kk[i];
                }
                float inv = 1.0f / fmaxf(sqrtf(ss), 1e-12f);
                for (size_t i = o; i < o + N; i++) {
                        float q = kk[i] * inv;
                        b[i] = q * a[i];
                        kk[i] = -q;
                        k[i] *= 1.0f + (a[i] - 1.0f) * k_a[i];
                }
        }
}

void v7_bonus_generic(float *y, const float *r, const float *k, const float *v, const float *g, const float *r_k,
                      size_t H, size_t N) {
        for (size_t h = 0; h < H; h++) {
                size_t o = h * N;
                float s = 0;
                for (size_t i = o; i < o + N; i++)
                        s += r[i] * k[i] * r_k[i];
                for (size_t i = o; i < o + N; i++)
                        y[i] = (y[i] + s * v[i]) * g[i];
        }
}

void add_generic(float *y, const float *x, size_t n) {
        for (size_t i = 0; i < n; i++)
                y[i] += x[i];
}

void relu_sq_generic(float *x, size_t n) {
        for (size_t i = 0; i < n; i++) {
                float v = x[i] < 0 ? 0.0f : x[i];
                x[i] = v * v;
        }
}

void mix_generic(float *y, const float *x, const float *d, const float *m, size_t n) {
        for (size_t i = 0; i < n; i++)
                y[i] = x[i] + d[i] * m[i];
}

void kernels_fill_generic(Kernels *k) {
        k->isa = "scalar";
#define SET(T, name)                                                                                                   \
        do {                                                                                                           \
                k->matvec[T] = matvec_##name##_generic;                                                                \
                k->matmul[T] = matmul_##name##_generic;                                                                \
        } while (0)
        SET(DTYPE_F32, f32);
        SET(DTYPE_F16, f16);
        SET(DTYPE_BF16, bf16);
        SET(DTYPE_Q8_0, q8_0);
        SET(DTYPE_Q4_0, q4_0);
        SET(DTYPE_GGML_Q4_0, ggml_q4_0);
        SET(DTYPE_GGML_Q4_1, ggml_q4_1);
        SET(DTYPE_GGML_Q5_0, ggml_q5_0);
        SET(DTYPE_GGML_Q5_1, ggml_q5_1);
        SET(DTYPE_GGML_Q8_0, ggml_q8_0);
#undef SET
        x16_fill_generic(k);
        k->layer_norm = layer_norm_generic;
        k->group_norm = group_norm_generic;
        k->wkv7 = wkv7_generic;
        k->wkv7_seq = wkv7_seq_generic;
        k->v7_gates = v7_gates_generic;
        k->v7_keys = v7_keys_generic;
        k->v7_bonus = v7_bonus_generic;
        k->add = add_generic;
        k->relu_sq = relu_sq_generic;
        k->mix = mix_generic;
        k->penalize_max = penalize_max_generic;
        k->softmax_scan = softmax_scan_generic;
        k->select_below = select_below_generic;
}
