/* simd-template.h: the SIMD kernels, written once over a vector of VL floats and included by each
 * ISA file (x86-avx2-kernels.h for x86-avx2*.c, x86-avx512.c, arm-neon.c) after it defined VEC, VL,
 * FN(), MM_R, MM_V, the v*() / load_*() helpers and i8x16_to_vecs() (the NEON file also its own
 * block_q8_0/q4_0).
 *
 * matvec (decode, memory-bound): 4 rows at a time share each load of x; weights are decoded in
 * registers and never touch memory again. matmul (prefill, batched decode): a tile of MM_R rows is
 * decoded once per chunk of KC columns into an f32 buffer that stays in L1, then every group of
 * MM_V vectors runs over it with MM_R x MM_V accumulators in registers, so each weight byte is
 * read from memory once for all n_vec vectors. */
#include "kernels/quant.h"

#ifndef KC
#define KC 2048 /* columns per matmul chunk; a multiple of QK and of VL */
#endif
#define QV (QK / VL) /* vectors per 32-element block */

static inline size_t FN(min_sz)(size_t a, size_t b) {
        return a < b ? a : b;
}

/* ---- float weights (f32, f16, bf16): any column count ---- */

static inline VEC FN(w_f32)(const uint8_t *p) {
        return vload((const float *)p);
}
static inline VEC FN(w_f16)(const uint8_t *p) {
        return load_f16(p);
}
static inline VEC FN(w_bf16)(const uint8_t *p) {
        return load_bf16(p);
}

/* Tail of a row (n < VL elements) through a zeroed buffer: never reads past the row. */
#define DEFINE_W_TAIL(name, esz)                                                                                       \
        static inline VEC FN(w_##name##_tail)(const uint8_t *p, size_t n) {                                            \
                _Alignas(64) uint8_t tmp[VL * 4] = { 0 };                                                              \
                memcpy(tmp, p, n *(esz));                                                                              \
                return FN(w_##name)(tmp);                                                                              \
        }
DEFINE_W_TAIL(f32, 4)
DEFINE_W_TAIL(f16, 2)
DEFINE_W_TAIL(bf16, 2)

/* An ISA file whose own float matvec measured slower than AVX2's defines SIMD_KEEP_FLOAT_MATVEC: the
 * table, filled with the AVX2 kernels first (kernels.c), keeps those. */
#ifndef SIMD_KEEP_FLOAT_MATVEC
/* One row at a time: the rows of a matrix are contiguous, so this reads memory as one sequential
 * stream, which the hardware prefetchers follow at full bandwidth (software prefetch measured
 * slower here, unlike in the integer q8/q4 loop, which runs more instructions per byte). Interleaving 4 rows to share
 * the loads of x (which sits in L1 anyway) measured 2x slower: four short streams per 4 rows. */
#define DEFINE_MATVEC_FLOAT(name, esz)                                                                                 \
        static void FN(matvec_##name)(const void *w, size_t rb, size_t K, const float *x, float *y, size_t r0,         \
                                      size_t r1) {                                                                     \
                size_t kv = K / VL * VL;                                                                               \
                for (size_t r = r0; r < r1; r++) {                                                                     \
                        const uint8_t *p0 = (const uint8_t *)w + r * rb;                                               \
                        VEC a0 = vzero(), a1 = vzero(), a2 = vzero(), a3 = vzero();                                    \
                        size_t k = 0;                                                                                  \
                        for (; k + 4 * VL <= kv; k += 4 * VL) {                                                        \
                                a0 = vfma(FN(w_##name)(p0 + k * (esz)), vload(x + k), a0);                             \
                                a1 = vfma(FN(w_##name)(p0 + (k + VL) * (esz)), vload(x + k + VL), a1);                 \
                                a2 = vfma(FN(w_##name)(p0 + (k + 2 * VL) * (esz)), vload(x + k + 2 * VL), a2);         \
                                a3 = vfma(FN(w_##name)(p0 + (k + 3 * VL) * (esz)), vload(x + k + 3 * VL), a3);         \
                        }                                                                                              \
                        for (; k < kv; k += VL)                                                                        \
                                a0 = vfma(FN(w_##name)(p0 + k * (esz)), vload(x + k), a0);                             \
                        if (kv < K)                                                                                    \
                                a1 = vfma(FN(w_##name##_tail)(p0 + kv * (esz), K - kv), vloadn(x + kv, K - kv), a1);   \
                        y[r] = vhsum(vadd(vadd(a0, a1), vadd(a2, a3)));                                                \
                }                                                                                                      \
        }
DEFINE_MATVEC_FLOAT(f32, 4)
DEFINE_MATVEC_FLOAT(f16, 2)
DEFINE_MATVEC_FLOAT(bf16, 2)
#endif

#define DEFINE_DECODE_FLOAT(name, esz)                                                                                 \
        /* Columns [k0, k0+kc) of a row to f32, zero padded to a multiple of VL. */                                    \
        static inline void FN(decode_##name)(const uint8_t *row, size_t K, size_t k0, size_t kc, float *out) {         \
                size_t kv = kc / VL * VL;                                                                              \
                for (size_t k = 0; k < kv; k += VL)                                                                    \
                        vstore(out + k, FN(w_##name)(row + (k0 + k) * (esz)));                                         \
                if (kv < kc)                                                                                           \
                        vstore(out + kv, FN(w_##name##_tail)(row + (k0 + kv) * (esz), kc - kv));                       \
        }

DEFINE_DECODE_FLOAT(f32, 4)
DEFINE_DECODE_FLOAT(f16, 2)
DEFINE_DECODE_FLOAT(bf16, 2)

/* ---- block weights (native q8_0, q4_0): scales first, then quants (quant.h) ---- */

#ifndef SIMD_OWN_BLOCK_DECODERS
/* One block of 32 quants to QV vectors of integers-as-floats (scale not applied). */
static inline void FN(block_q8_0)(const uint8_t *q, VEC *out) {
        i8x16_to_vecs(_mm_loadu_si128((const __m128i *)q), out);
        i8x16_to_vecs(_mm_loadu_si128((const __m128i *)(q + 16)), out + QV / 2);
}
static inline void FN(block_q4_0)(const uint8_t *qs, VEC *out) {
        const __m128i m4 = _mm_set1_epi8(0x0f), m8 = _mm_set1_epi8(8);
        __m128i v = _mm_loadu_si128((const __m128i *)qs);
        __m128i lo = _mm_sub_epi8(_mm_and_si128(v, m4), m8);
        __m128i hi = _mm_sub_epi8(_mm_and_si128(_mm_srli_epi16(v, 4), m4), m8);
        i8x16_to_vecs(lo, out);
        i8x16_to_vecs(hi, out + QV / 2);
}
#endif

/* One row at a time (see DEFINE_MATVEC_FLOAT); two accumulators over alternate blocks keep two
 * FMA chains in flight. Scale per block: sum_b d_b * (q_b . x_b). */
#define DEFINE_MATVEC_BLOCK(name, qbytes)                                                                              \
        static inline VEC FN(block_dot_##name)(const uint8_t *q, const float *x) {                                     \
                VEC wv[QV];                                                                                            \
                FN(block_##name)(q, wv);                                                                               \
                VEC s = vmul(wv[0], vload(x));                                                                         \
                for (int j = 1; j < QV; j++)                                                                           \
                        s = vfma(wv[j], vload(x + j * VL), s);                                                         \
                return s;                                                                                              \
        }                                                                                                              \
        static void FN(matvec_##name)(const void *w, size_t rb, size_t K, const float *x, float *y, size_t r0,         \
                                      size_t r1) {                                                                     \
                size_t nb = K / QK, qo = q_row_quants_offset(K);                                                       \
                for (size_t r = r0; r < r1; r++) {                                                                     \
                        const uint8_t *p0 = (const uint8_t *)w + r * rb, *q = p0 + qo;                                 \
                        VEC acc0 = vzero(), acc1 = vzero();                                                            \
                        size_t b = 0;                                                                                  \
                        for (; b + 2 <= nb; b += 2) {                                                                  \
                                VEC s0 = FN(block_dot_##name)(q + b * (qbytes), x + b * QK);                           \
                                VEC s1 = FN(block_dot_##name)(q + (b + 1) * (qbytes), x + (b + 1) * QK);               \
                                acc0 = vfma(s0, vset1(scalar_f16(p0 + 2 * b)), acc0);                                  \
                                acc1 = vfma(s1, vset1(scalar_f16(p0 + 2 * b + 2)), acc1);                              \
                        }                                                                                              \
                        if (b < nb)                                                                                    \
                                acc0 = vfma(FN(block_dot_##name)(q + b * (qbytes), x + b * QK),                        \
                                            vset1(scalar_f16(p0 + 2 * b)), acc0);                                      \
                        y[r] = vhsum(vadd(acc0, acc1));                                                                \
                }                                                                                                      \
        }                                                                                                              \
        static inline void FN(decode_##name)(const uint8_t *row, size_t K, size_t k0, size_t kc, float *out) {         \
                size_t qo = q_row_quants_offset(K);                                                                    \
                for (size_t b = k0 / QK; b < (k0 + kc) / QK; b++, out += QK) {                                         \
                        VEC wv[QV], d = vset1(scalar_f16(row + 2 * b));                                                \
                        FN(block_##name)(row + qo + b * (qbytes), wv);                                                 \
                        for (int j = 0; j < QV; j++)                                                                   \
                                vstore(out + j * VL, vmul(wv[j], d));                                                  \
                }                                                                                                      \
        }

DEFINE_MATVEC_BLOCK(q8_0, QK)
DEFINE_MATVEC_BLOCK(q4_0, QK / 2)

#ifdef SIMD_INT8_MATVEC
/* x86: matvec of the block types in integers, as ggml does. x is quantized once per call to int8
 * blocks of 32 (scale amax/127, on the stack); then a block of a row costs one 32-byte load, a sign
 * transfer (so that the unsigned x unsigned-by-signed multiply sees |x|), a multiply-add of byte
 * pairs (i8dot32, from the ISA file) and one float FMA, instead of widening every weight to f32.
 * The result differs from the f32 reference by the rounding of x: |error| <= sum over blocks of
 * (amax_b / 254) * sum |w| (the test checks this bound). */
#ifndef I8MV_PREFETCH
#define I8MV_PREFETCH 4096 /* bytes ahead */
#endif
#define I8MV_MAX_COLS 16384 /* stack: K + K/32*4 bytes; larger rows take the f32 path */

/* Returns false when x has a non-finite value (the f32 path then gives the IEEE result). */
static inline bool FN(quantize_x)(const float *x, size_t K, int8_t *xq, uint8_t *xa, float *dx) {
        const __m256 sign = _mm256_set1_ps(-0.0f), zero = _mm256_setzero_ps();
        /* packs interleave 128-bit lanes; this puts the 8 groups of 4 bytes back in order */
        const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
        for (size_t b = 0; b < K / QK; b++) {
                const float *xb = x + b * QK;
                __m256 v0 = _mm256_loadu_ps(xb), v1 = _mm256_loadu_ps(xb + 8);
                __m256 v2 = _mm256_loadu_ps(xb + 16), v3 = _mm256_loadu_ps(xb + 24);
                /* inf or NaN anywhere makes v * 0 a NaN */
                __m256 z = _mm256_add_ps(_mm256_add_ps(_mm256_mul_ps(v0, zero), _mm256_mul_ps(v1, zero)),
                                         _mm256_add_ps(_mm256_mul_ps(v2, zero), _mm256_mul_ps(v3, zero)));
                if (_mm256_movemask_ps(_mm256_cmp_ps(z, z, _CMP_UNORD_Q)))
                        return false;
                __m256 m = _mm256_max_ps(_mm256_max_ps(_mm256_andnot_ps(sign, v0), _mm256_andnot_ps(sign, v1)),
                                         _mm256_max_ps(_mm256_andnot_ps(sign, v2), _mm256_andnot_ps(sign, v3)));
                __m128 h = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
                h = _mm_max_ps(h, _mm_movehl_ps(h, h));
                h = _mm_max_ss(h, _mm_movehdup_ps(h));
                float amax = _mm_cvtss_f32(h), d = amax / 127.f, id = d > 0.f ? 1.f / d : 0.f;
                dx[b] = d;
                __m256 vid = _mm256_set1_ps(id);
                /* |x * id| <= 127 up to rounding, which the saturating packs absorb */
                __m256i i0 = _mm256_cvtps_epi32(_mm256_mul_ps(v0, vid)),
                        i1 = _mm256_cvtps_epi32(_mm256_mul_ps(v1, vid));
                __m256i i2 = _mm256_cvtps_epi32(_mm256_mul_ps(v2, vid)),
                        i3 = _mm256_cvtps_epi32(_mm256_mul_ps(v3, vid));
                __m256i q = _mm256_packs_epi16(_mm256_packs_epi32(i0, i1), _mm256_packs_epi32(i2, i3));
                q = _mm256_permutevar8x32_epi32(q, order);
                _mm256_store_si256((__m256i *)(xq + b * QK), q);
                _mm256_store_si256((__m256i *)(xa + b * QK), _mm256_abs_epi8(q));
        }
        return true;
}

static inline __m256i FN(wq_q8_0)(const uint8_t *q) {
        return _mm256_loadu_si256((const __m256i *)q);
}

/* The sum of the 8 lanes of a. */
static inline float FN(hsum8)(__m256 a) {
        __m128 h = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
        h = _mm_add_ps(h, _mm_movehl_ps(h, h));
        return _mm_cvtss_f32(_mm_add_ss(h, _mm_movehdup_ps(h)));
}

#define DEFINE_MATVEC_I8(name, qbytes)                                                                                 \
        static void FN(matvec_i8_##name)(const void *w, size_t rb, size_t K, const float *x, float *y, size_t r0,      \
                                         size_t r1) {                                                                  \
                _Alignas(32) int8_t xq[I8MV_MAX_COLS];                                                                 \
                _Alignas(32) uint8_t xa[I8MV_MAX_COLS];                                                                \
                float dx[I8MV_MAX_COLS / QK];                                                                          \
                if (K > I8MV_MAX_COLS || !FN(quantize_x)(x, K, xq, xa, dx)) {                                          \
                        FN(matvec_##name)(w, rb, K, x, y, r0, r1);                                                     \
                        return;                                                                                        \
                }                                                                                                      \
                size_t nb = K / QK, qo = q_row_quants_offset(K);                                                       \
                for (size_t r = r0; r < r1; r++) {                                                                     \
                        const uint8_t *p0 = (const uint8_t *)w + r * rb, *q = p0 + qo;                                 \
                        __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();                                 \
                        size_t b = 0;                                                                                  \
                        for (; b + 2 <= nb; b += 2) {                                                                  \
                                /* many instructions per byte: the out-of-order window alone does not                  \
                                 * keep enough cache misses in flight, so ask ahead (harmless past the end) */         \
                                __builtin_prefetch(q + b * (qbytes) + I8MV_PREFETCH, 0, 0);                            \
                                __m256i x0 = _mm256_load_si256((const __m256i *)(xq + b * QK));                        \
                                __m256i x1 = _mm256_load_si256((const __m256i *)(xq + b * QK + QK));                   \
                                __m256i w0 = _mm256_sign_epi8(FN(wq_##name)(q + b * (qbytes)), x0);                    \
                                __m256i w1 = _mm256_sign_epi8(FN(wq_##name)(q + (b + 1) * (qbytes)), x1);              \
                                __m256i s0 = i8dot32(_mm256_load_si256((const __m256i *)(xa + b * QK)), w0);           \
                                __m256i s1 = i8dot32(_mm256_load_si256((const __m256i *)(xa + b * QK + QK)), w1);      \
                                acc0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s0),                                         \
                                                       _mm256_set1_ps(scalar_f16(p0 + 2 * b) * dx[b]), acc0);          \
                                acc1 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s1),                                         \
                                                       _mm256_set1_ps(scalar_f16(p0 + 2 * b + 2) * dx[b + 1]), acc1);  \
                        }                                                                                              \
                        if (b < nb) {                                                                                  \
                                __m256i x0 = _mm256_load_si256((const __m256i *)(xq + b * QK));                        \
                                __m256i w0 = _mm256_sign_epi8(FN(wq_##name)(q + b * (qbytes)), x0);                    \
                                __m256i s0 = i8dot32(_mm256_load_si256((const __m256i *)(xa + b * QK)), w0);           \
                                acc0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s0),                                         \
                                                       _mm256_set1_ps(scalar_f16(p0 + 2 * b) * dx[b]), acc0);          \
                        }                                                                                              \
                        y[r] = FN(hsum8)(_mm256_add_ps(acc0, acc1));                                                   \
                }                                                                                                      \
        }

DEFINE_MATVEC_I8(q8_0, QK)

/* The nibbles of blocks 2p and 2p+1 of a row (only 2p when half): elements 0-15 of both in lo,
 * 16-31 in hi, unsigned. */
static inline __attribute__((always_inline)) void FN(q4_unpack)(const uint8_t *q, bool half, __m256i *lo, __m256i *hi) {
        const __m256i m4 = _mm256_set1_epi8(0x0f);
        __m256i v = half ? _mm256_zextsi128_si256(_mm_loadu_si128((const __m128i *)q))
                         : _mm256_loadu_si256((const __m256i *)q);
        *lo = _mm256_and_si256(v, m4);
        *hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
}

/* A pair's nibbles against x's pair: the 8 int32 block partials, bias included. */
static inline __attribute__((always_inline)) __m256i FN(q4_dot)(__m256i lo, __m256i hi, const int8_t *xl,
                                                                const int8_t *xh, const int32_t *corr) {
#ifdef AVX2_DPBUSD /* x86-avx2vnni*.c: straight into int32 from the bias */
        return AVX2_DPBUSD(
                AVX2_DPBUSD(_mm256_load_si256((const __m256i *)corr), lo, _mm256_load_si256((const __m256i *)xl)), hi,
                _mm256_load_si256((const __m256i *)xh));
#else
        __m256i s = _mm256_add_epi16(_mm256_maddubs_epi16(lo, _mm256_load_si256((const __m256i *)xl)),
                                     _mm256_maddubs_epi16(hi, _mm256_load_si256((const __m256i *)xh)));
        return _mm256_add_epi32(_mm256_madd_epi16(s, _mm256_set1_epi16(1)), _mm256_load_si256((const __m256i *)corr));
#endif
}

static inline __attribute__((always_inline)) __m256i FN(q4_pair)(const uint8_t *q, const int8_t *xl, const int8_t *xh,
                                                                 const int32_t *corr, bool half) {
        __m256i lo, hi;
        FN(q4_unpack)(q, half, &lo, &hi);
        return FN(q4_dot)(lo, hi, xl, xh, corr);
}

/* Q4_0 without VNNI: one 32-byte load holds two blocks of a row, and a mask and a shift make two
 * registers of unsigned nibbles (elements 0-15 and 16-31 of both blocks) that go straight into
 * maddubs as its unsigned operand, against x repacked per call in the same order: no unpacking to
 * signed bytes and no sign transfer (15 * 127 * 4 fits in int16). The stored nibble is the weight +
 * 8; the 8 * sum(x) this adds is computed per call and added before the conversion. The weight
 * scales are converted 8 at a time and multiplied by x's there. */
/* x for the Q4_0 pairs: pair p = blocks 2p and 2p+1; xl = elements 0-15 of each, xh = 16-31; corr
 * lane 4j+m = -8 x the 8 elements that lane multiplies (a missing block 2p+1 is zero); dx[b] = block
 * b's scale, zero from nb to nb + 8. xq: K bytes of scratch. False on a non-finite value. */
static bool FN(q4_pack_x)(const float *x, size_t K, int8_t *xq, int8_t *xl, int8_t *xh, int32_t *corr, float *dx) {
        _Alignas(32) uint8_t xa[QK];
        size_t nb = K / QK, np = (nb + 1) / 2;
        for (size_t b = 0; b < nb; b++)
                if (!FN(quantize_x)(x + b * QK, QK, xq + b * QK, xa, dx + b))
                        return false;
        const __m256i ones8 = _mm256_set1_epi8(1), ones16 = _mm256_set1_epi16(1);
        for (size_t p = 0; p < np; p++) {
                __m256i a = _mm256_load_si256((const __m256i *)(xq + 64 * p));
                __m256i b = 2 * p + 1 < nb ? _mm256_load_si256((const __m256i *)(xq + 64 * p + 32))
                                           : _mm256_setzero_si256();
                __m256i lo = _mm256_permute2x128_si256(a, b, 0x20), hi = _mm256_permute2x128_si256(a, b, 0x31);
                _mm256_store_si256((__m256i *)(xl + 32 * p), lo);
                _mm256_store_si256((__m256i *)(xh + 32 * p), hi);
                __m256i sum = _mm256_add_epi16(_mm256_maddubs_epi16(ones8, lo), _mm256_maddubs_epi16(ones8, hi));
                _mm256_store_si256((__m256i *)(corr + 8 * p),
                                   _mm256_mullo_epi32(_mm256_madd_epi16(sum, ones16), _mm256_set1_epi32(-8)));
        }
        for (size_t b = nb; b < nb + 8; b++)
                dx[b] = 0;
        return true;
}

/* The scales of blocks 2p .. 2p+7 of a row (zero past its nb blocks). */
static inline __m256 FN(q4_scales8)(const uint8_t *row, size_t nb, size_t p) {
        size_t left = nb - 2 * p;
        if (left >= 8)
                return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(row + 4 * p)));
        _Alignas(16) uint16_t tmp[8] = { 0 };
        memcpy(tmp, row + 4 * p, 2 * left);
        return _mm256_cvtph_ps(_mm_load_si128((const __m128i *)tmp));
}

static void FN(matvec_i8_q4_0)(const void *w, size_t rb, size_t K, const float *x, float *y, size_t r0, size_t r1) {
        _Alignas(32) int8_t xq[I8MV_MAX_COLS], xl[I8MV_MAX_COLS / 2], xh[I8MV_MAX_COLS / 2];
        _Alignas(32) int32_t corr[I8MV_MAX_COLS / 8];
        float dx[I8MV_MAX_COLS / QK + 8];
        if (K > I8MV_MAX_COLS || !FN(q4_pack_x)(x, K, xq, xl, xh, corr, dx)) {
                FN(matvec_q4_0)(w, rb, K, x, y, r0, r1);
                return;
        }
        size_t nb = K / QK, np = (nb + 1) / 2, qo = q_row_quants_offset(K);
        const __m256i spread = _mm256_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1);
        for (size_t r = r0; r < r1; r++) {
                const uint8_t *p0 = (const uint8_t *)w + r * rb, *q = p0 + qo;
                __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
                size_t p = 0;
                /* 8 blocks (4 pairs, one scale load) at a time while they are whole, then the rest */
                for (; 2 * p + 8 <= nb; p += 4) {
                        __m256 s8 = _mm256_mul_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(p0 + 4 * p))),
                                                  _mm256_loadu_ps(dx + 2 * p));
                        __builtin_prefetch(q + 32 * p + I8MV_PREFETCH, 0, 0);
                        __builtin_prefetch(q + 32 * p + 64 + I8MV_PREFETCH, 0, 0);
#pragma GCC unroll 4
                        for (int k = 0; k < 4; k++) {
                                __m256i t = FN(q4_pair)(q + 32 * (p + k), xl + 32 * (p + k), xh + 32 * (p + k),
                                                        corr + 8 * (p + k), false);
                                __m256 sc = _mm256_permutevar8x32_ps(
                                        s8, _mm256_add_epi32(spread, _mm256_set1_epi32(2 * k)));
                                if (k % 2 == 0)
                                        acc0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(t), sc, acc0);
                                else
                                        acc1 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(t), sc, acc1);
                        }
                }
                for (; p < np; p++) {
                        __m256 s8 = _mm256_mul_ps(FN(q4_scales8)(p0, nb, p), _mm256_loadu_ps(dx + 2 * p));
                        __m256i t = FN(q4_pair)(q + 32 * p, xl + 32 * p, xh + 32 * p, corr + 8 * p, 2 * p + 1 == nb);
                        acc0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(t), _mm256_permutevar8x32_ps(s8, spread), acc0);
                }
                y[r] = FN(hsum8)(_mm256_add_ps(acc0, acc1));
        }
}

/* Batched decode (a few vectors): the matvec's loop above with each 32-byte block of a row loaded
 * once for up to I8MM_GROUP vectors (the sign transfer, the multiply-adds and the FMA are per vector;
 * |x| is computed once per call, not per row), the row stream prefetched 4 KiB ahead like the matvec.
 * Before, |x| was recomputed per block and vector and only the next row was prefetched: on AVX2 2
 * vectors took 468 us where one matvec takes 152 (4096 x 1024 q8_0 streamed, one thread). More
 * vectors than I8MM_MAX_VEC, or a non-finite x: the f32 path. */
#define I8MM_GROUP 4
#define I8MM_MAX_VEC 8
#define I8MM_MAX_COLS 8192 /* stack: I8MM_MAX_VEC x K x 2 bytes + scales */
#define DEFINE_MATMUL_I8(name, qbytes, max_vec)                                                                        \
        static inline __attribute__((always_inline)) void FN(mm_row_i8_##name)(                                        \
                const uint8_t *p0, size_t K, const int8_t(*xq)[I8MM_MAX_COLS], const uint8_t(*xa)[I8MM_MAX_COLS],      \
                const float(*dx)[I8MM_MAX_COLS / QK], const int nv, float *y, size_t ldy) {                            \
                size_t nb = K / QK;                                                                                    \
                const uint8_t *q = p0 + q_row_quants_offset(K);                                                        \
                __m256 acc[I8MM_GROUP];                                                                                \
                _Pragma("GCC unroll 4") for (int v = 0; v < nv; v++) acc[v] = _mm256_setzero_ps();                     \
                for (size_t b = 0; b < nb; b++) {                                                                      \
                        if (b % 2 == 0)                                                                                \
                                __builtin_prefetch(q + b * (qbytes) + I8MV_PREFETCH, 0, 0);                            \
                        __m256i wq = FN(wq_##name)(q + b * (qbytes));                                                  \
                        __m256 dw = _mm256_set1_ps(scalar_f16(p0 + 2 * b));                                            \
                        _Pragma("GCC unroll 4") for (int v = 0; v < nv; v++) {                                         \
                                __m256i xv = _mm256_load_si256((const __m256i *)(xq[v] + b * QK));                     \
                                __m256i s = i8dot32(_mm256_load_si256((const __m256i *)(xa[v] + b * QK)),              \
                                                    _mm256_sign_epi8(wq, xv));                                         \
                                acc[v] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s),                                        \
                                                         _mm256_mul_ps(dw, _mm256_broadcast_ss(&dx[v][b])), acc[v]);   \
                        }                                                                                              \
                }                                                                                                      \
                _Pragma("GCC unroll 4") for (int v = 0; v < nv; v++) y[(size_t)v * ldy] = FN(hsum8)(acc[v]);           \
        }                                                                                                              \
        static void FN(matmul_i8_##name)(const void *w, size_t rb, size_t K, const float *x, size_t ldx, size_t n_vec, \
                                         float *y, size_t ldy, size_t r0, size_t r1) {                                 \
                _Alignas(32) int8_t xq[I8MM_MAX_VEC][I8MM_MAX_COLS];                                                   \
                _Alignas(32) uint8_t xa[I8MM_MAX_VEC][I8MM_MAX_COLS];                                                  \
                float dx[I8MM_MAX_VEC][I8MM_MAX_COLS / QK];                                                            \
                bool ok = n_vec <= (max_vec) && K <= I8MM_MAX_COLS;                                                    \
                for (size_t v = 0; v < n_vec && ok; v++)                                                               \
                        ok = FN(quantize_x)(x + v * ldx, K, xq[v], xa[v], dx[v]);                                      \
                if (!ok) { /* many vectors, long rows, or non-finite input (IEEE result) */                            \
                        FN(matmul_##name)(w, rb, K, x, ldx, n_vec, y, ldy, r0, r1);                                    \
                        return;                                                                                        \
                }                                                                                                      \
                for (size_t r = r0; r < r1; r++) {                                                                     \
                        const uint8_t *p0 = (const uint8_t *)w + r * rb;                                               \
                        for (size_t v0 = 0; v0 < n_vec; v0 += I8MM_GROUP) {                                            \
                                float *yv = y + v0 * ldy + r;                                                          \
                                switch (FN(min_sz)(I8MM_GROUP, n_vec - v0)) {                                          \
                                case 1:                                                                                \
                                        FN(mm_row_i8_##name)(p0, K, xq + v0, xa + v0, dx + v0, 1, yv, ldy);            \
                                        break;                                                                         \
                                case 2:                                                                                \
                                        FN(mm_row_i8_##name)(p0, K, xq + v0, xa + v0, dx + v0, 2, yv, ldy);            \
                                        break;                                                                         \
                                case 3:                                                                                \
                                        FN(mm_row_i8_##name)(p0, K, xq + v0, xa + v0, dx + v0, 3, yv, ldy);            \
                                        break;                                                                         \
                                default:                                                                               \
                                        FN(mm_row_i8_##name)(p0, K, xq + v0, xa + v0, dx + v0, 4, yv, ldy);            \
                                        break;                                                                         \
                                }                                                                                      \
                        }                                                                                              \
                }                                                                                                      \
        }
#endif

/* ---- matmul ---- */

/* Dot products of MM_R decoded rows (stride KC, zero padded) with NV vectors over kc columns. */
static inline __attribute__((always_inline)) void FN(microkernel)(const float *wb, size_t kc, const float *x,
                                                                  size_t ldx, int nv, float out[MM_R][MM_V]) {
        VEC acc[MM_R][MM_V];
        size_t kv = kc / VL * VL;
#pragma GCC unroll 8
        for (int i = 0; i < MM_R; i++)
#pragma GCC unroll 8
                for (int j = 0; j < MM_V; j++)
                        acc[i][j] = vzero();
        for (size_t k = 0; k < kv; k += VL) {
                VEC wv[MM_R];
#pragma GCC unroll 8
                for (int i = 0; i < MM_R; i++)
                        wv[i] = vload(wb + i * KC + k);
#pragma GCC unroll 8
                for (int j = 0; j < MM_V; j++) {
                        if (j >= nv)
                                break;
                        VEC xv = vload(x + j * ldx + k);
#pragma GCC unroll 8
                        for (int i = 0; i < MM_R; i++)
                                acc[i][j] = vfma(wv[i], xv, acc[i][j]);
                }
        }
        if (kv < kc) {
#pragma GCC unroll 8
                for (int j = 0; j < MM_V; j++) {
                        if (j >= nv)
                                break;
                        VEC xv = vloadn(x + j * ldx + kv, kc - kv);
#pragma GCC unroll 8
                        for (int i = 0; i < MM_R; i++)
                                acc[i][j] = vfma(vload(wb + i * KC + kv), xv, acc[i][j]);
                }
        }
#pragma GCC unroll 8
        for (int i = 0; i < MM_R; i++)
#pragma GCC unroll 8
                for (int j = 0; j < MM_V; j++)
                        if (j < nv)
                                out[i][j] = vhsum(acc[i][j]);
}

/* One instance per vector count, so that the accumulators stay in registers. */
#define DEFINE_MICROKERNEL_NV(n)                                                                                       \
        static void FN(microkernel_##n)(const float *wb, size_t kc, const float *x, size_t ldx,                        \
                                        float out[MM_R][MM_V]) {                                                       \
                FN(microkernel)(wb, kc, x, ldx, n, out);                                                               \
        }
DEFINE_MICROKERNEL_NV(1)
DEFINE_MICROKERNEL_NV(2)
DEFINE_MICROKERNEL_NV(3)
#if MM_V > 3
DEFINE_MICROKERNEL_NV(4)
#endif
#if MM_V > 4
DEFINE_MICROKERNEL_NV(5)
DEFINE_MICROKERNEL_NV(6)
#endif
#if MM_V > 6
DEFINE_MICROKERNEL_NV(7)
DEFINE_MICROKERNEL_NV(8)
#endif
_Static_assert(MM_V <= 8, "add microkernel instances");

typedef void (*FN(MicrokernelFn))(const float *wb, size_t kc, const float *x, size_t ldx, float out[MM_R][MM_V]);
static const FN(MicrokernelFn) FN(microkernels)[MM_V + 1] = {
        NULL,
        FN(microkernel_1),
        FN(microkernel_2),
        FN(microkernel_3),
#if MM_V > 3
        FN(microkernel_4),
#endif
#if MM_V > 4
        FN(microkernel_5),
        FN(microkernel_6),
#endif
#if MM_V > 6
        FN(microkernel_7),
        FN(microkernel_8),
#endif
};

#ifndef MM_PREFETCH
#define MM_PREFETCH 1
#endif
/* Ask for the next row tile while this one computes: with few vectors (batched decode) the tile's
 * compute and the next tile's memory reads then overlap instead of taking turns. Into L2 (hint 2):
 * a tile is MM_R rows, up to a few hundred KiB. The requests are spread over the tile's steps
 * (step s of n_steps asks for its share of the cache lines) so that they never come in one burst.
 * Until PREFETCH_L2 below, this loop was compiled away and a prefill chunk stalled on every next
 * tile's first reads (13% of the model's prefill samples on the f16 decode's loads, 6-9% now).
 * Prefetching two tiles ahead, or one line per microkernel step, measured worse. */
#ifndef PREFETCH_L2
/* As an asm statement: gcc 12 deletes a loop whose body is only __builtin_prefetch (it counts as
 * having no effect), and this one, with a trip count known at run time only, was never emitted. */
#if defined(__x86_64__)
#define PREFETCH_L2(p) __asm__ volatile("prefetcht1 %0" : : "m"(*(const char *)(p)))
#elif defined(__aarch64__)
#define PREFETCH_L2(p) __asm__ volatile("prfm pldl2keep, %a0" : : "p"(p))
#else
#define PREFETCH_L2(p) __builtin_prefetch((p), 0, 2)
#endif
#endif
static inline void FN(prefetch_rows)(const uint8_t *w, size_t rb, size_t r, size_t r1, size_t s, size_t n_steps) {
        if (!MM_PREFETCH || r >= r1)
                return;
        size_t lines = (FN(min_sz)(r + MM_R, r1) - r) * rb / 64 + 1;
        const uint8_t *base = w + r * rb;
        for (size_t c = lines * s / n_steps; c < lines * (s + 1) / n_steps; c++)
                PREFETCH_L2(base + 64 * c);
}

#define DEFINE_MATMUL(name)                                                                                            \
        static void FN(matmul_##name)(const void *w, size_t rb, size_t K, const float *x, size_t ldx, size_t n_vec,    \
                                      float *y, size_t ldy, size_t r0, size_t r1) {                                    \
                _Alignas(64) float wbuf[MM_R * KC];                                                                    \
                size_t n_steps = ((K + KC - 1) / KC) * ((n_vec + MM_V - 1) / MM_V), step;                              \
                for (size_t r = r0; r < r1; r += MM_R) {                                                               \
                        size_t nr = FN(min_sz)(MM_R, r1 - r);                                                          \
                        step = 0;                                                                                      \
                        for (size_t k0 = 0; k0 < K; k0 += KC) {                                                        \
                                size_t kc = FN(min_sz)(KC, K - k0);                                                    \
                                for (size_t i = 0; i < MM_R; i++) {                                                    \
                                        if (i < nr)                                                                    \
                                                FN(decode_##name)                                                      \
                                        ((const uint8_t *)w + (r + i) * rb, K, k0, kc, wbuf + i * KC);                 \
                                        else memset(wbuf + i * KC, 0, sizeof(float) * KC);                             \
                                }                                                                                      \
                                for (size_t v = 0; v < n_vec; v += MM_V) {                                             \
                                        size_t nv = FN(min_sz)(MM_V, n_vec - v);                                       \
                                        float out[MM_R][MM_V];                                                         \
                                        FN(prefetch_rows)((const uint8_t *)w, rb, r + MM_R, r1, step++, n_steps);      \
                                        FN(microkernels)[nv](wbuf, kc, x + v * ldx + k0, ldx, out);                    \
                                        if (k0 == 0)                                                                   \
                                                for (size_t j = 0; j < nv; j++)                                        \
                                                        for (size_t i = 0; i < nr; i++)                                \
                                                                y[(v + j) * ldy + r + i] = out[i][j];                  \
                                        else                                                                           \
                                                for (size_t j = 0; j < nv; j++)                                        \
                                                        for (size_t i = 0; i < nr; i++)                                \
                                                                y[(v + j) * ldy + r + i] += out[i][j];                 \
                                }                                                                                      \
                        }                                                                                              \
                }                                                                                                      \
        }

DEFINE_MATMUL(f32)
DEFINE_MATMUL(f16)
DEFINE_MATMUL(bf16)
/* An ISA file whose q8_0 / q4_0 products of 2+ vectors measured slower than AVX2's defines
 * SIMD_KEEP_INT8_MATMUL: the table, filled with the AVX2 kernels first (kernels.c), keeps those. */
#ifndef SIMD_KEEP_INT8_MATMUL
DEFINE_MATMUL(q8_0)
DEFINE_MATMUL(q4_0)
#endif
#ifdef SM_R
/* Batched decode of float weights (a few vectors): no f32 buffer. A tile of SM_R rows is read
 * once, each VL columns of it converted in registers and applied to up to SM_V vectors held in
 * SM_R x SM_V accumulators, so the conversion is paid once per weight for all of them and the
 * loop is FMA-bound. The SM_R rows are one contiguous stretch of memory; the next one is
 * prefetched into L2 spread over this tile's columns (one instruction per cache line), because
 * at several FMAs per weight the out-of-order window alone keeps too few misses in flight. Into
 * L2, not L1: the next tile, this one and the vectors crowd L1 (bench-kernels batch8, 2 threads,
 * f16 4.3-4.8x -> 5.3-6.1x, f32 5.6-5.7x -> 7.7x over the three shapes, bf16 4.1 -> 5.5x at 0.1B). */
#ifndef SM_MAX_VEC
#define SM_MAX_VEC 16
#endif
#define DEFINE_MATMUL_STREAM(name, esz)                                                                                \
        static inline __attribute__((always_inline)) void FN(sm_tile_##name)(const uint8_t *w, size_t rb, size_t K,    \
                                                                             const float *x, size_t ldx, int nr,       \
                                                                             int nv, float *y, size_t ldy, size_t r) { \
                VEC acc[SM_R][SM_V];                                                                                   \
                const uint8_t *p[SM_R];                                                                                \
                size_t kv = K / VL * VL;                                                                               \
                _Pragma("GCC unroll 8") for (int i = 0; i < nr; i++) {                                                 \
                        p[i] = w + (r + (size_t)i) * rb;                                                               \
                        _Pragma("GCC unroll 8") for (int j = 0; j < nv; j++) acc[i][j] = vzero();                      \
                }                                                                                                      \
                const uint8_t *ahead = p[0] + (size_t)nr * rb;                                                         \
                for (size_t k = 0; k < kv; k += VL) {                                                                  \
                        if (k % (64 / (esz)) == 0)                                                                     \
                                _Pragma("GCC unroll 8") for (int i = 0; i < nr; i++)                                   \
                                        __builtin_prefetch(ahead + (size_t)i * rb + k * (esz), 0, 2);                  \
                        VEC wv[SM_R];                                                                                  \
                        _Pragma("GCC unroll 8") for (int i = 0; i < nr; i++) wv[i] = FN(w_##name)(p[i] + k * (esz));   \
                        _Pragma("GCC unroll 8") for (int j = 0; j < nv; j++) {                                         \
                                VEC xv = vload(x + (size_t)j * ldx + k);                                               \
                                _Pragma("GCC unroll 8") for (int i = 0; i < nr; i++) acc[i][j] =                       \
                                        vfma(wv[i], xv, acc[i][j]);                                                    \
                        }                                                                                              \
                }                                                                                                      \
                if (kv < K) {                                                                                          \
                        VEC wv[SM_R];                                                                                  \
                        _Pragma("GCC unroll 8") for (int i = 0; i < nr; i++) wv[i] =                                   \
                                FN(w_##name##_tail)(p[i] + kv * (esz), K - kv);                                        \
                        _Pragma("GCC unroll 8") for (int j = 0; j < nv; j++) {                                         \
                                VEC xv = vloadn(x + (size_t)j * ldx + kv, K - kv);                                     \
                                _Pragma("GCC unroll 8") for (int i = 0; i < nr; i++) acc[i][j] =                       \
                                        vfma(wv[i], xv, acc[i][j]);                                                    \
                        }                                                                                              \
                }                                                                                                      \
                /* a row's vectors summed side by side (vhsum4): with the short rows of the LoRA                       \
                 * up-projections (K = 32-128) one sum per accumulator cost more than the FMAs */                      \
                _Pragma("GCC unroll 8") for (int i = 0; i < nr; i++) {                                                 \
                        if (nv == 1) {                                                                                 \
                                y[r + (size_t)i] = vhsum(acc[i][0]);                                                   \
                                continue;                                                                              \
                        }                                                                                              \
                        float s[4];                                                                                    \
                        vhsum4(acc[i][0], acc[i][1], nv > 2 ? acc[i][2] : vzero(), nv > 3 ? acc[i][3] : vzero(), s);   \
                        _Pragma("GCC unroll 8") for (int j = 0; j < nv; j++) y[(size_t)j * ldy + r + (size_t)i] =      \
                                s[j];                                                                                  \
                }                                                                                                      \
        }                                                                                                              \
        /* One instance per (rows, vectors), so that the accumulators stay in registers. */                            \
        static void FN(sm_full_##name)(const uint8_t *w, size_t rb, size_t K, const float *x, size_t ldx, int nv,      \
                                       float *y, size_t ldy, size_t r) {                                               \
                switch (nv) {                                                                                          \
                case 1:                                                                                                \
                        FN(sm_tile_##name)(w, rb, K, x, ldx, SM_R, 1, y, ldy, r);                                      \
                        break;                                                                                         \
                case 2:                                                                                                \
                        FN(sm_tile_##name)(w, rb, K, x, ldx, SM_R, 2, y, ldy, r);                                      \
                        break;                                                                                         \
                case 3:                                                                                                \
                        FN(sm_tile_##name)(w, rb, K, x, ldx, SM_R, 3, y, ldy, r);                                      \
                        break;                                                                                         \
                default:                                                                                               \
                        FN(sm_tile_##name)(w, rb, K, x, ldx, SM_R, 4, y, ldy, r);                                      \
                        break;                                                                                         \
                }                                                                                                      \
        }                                                                                                              \
        static void FN(sm_one_##name)(const uint8_t *w, size_t rb, size_t K, const float *x, size_t ldx, int nv,       \
                                      float *y, size_t ldy, size_t r) {                                                \
                switch (nv) {                                                                                          \
                case 1:                                                                                                \
                        FN(sm_tile_##name)(w, rb, K, x, ldx, 1, 1, y, ldy, r);                                         \
                        break;                                                                                         \
                case 2:                                                                                                \
                        FN(sm_tile_##name)(w, rb, K, x, ldx, 1, 2, y, ldy, r);                                         \
                        break;                                                                                         \
                case 3:                                                                                                \
                        FN(sm_tile_##name)(w, rb, K, x, ldx, 1, 3, y, ldy, r);                                         \
                        break;                                                                                         \
                default:                                                                                               \
                        FN(sm_tile_##name)(w, rb, K, x, ldx, 1, 4, y, ldy, r);                                         \
                        break;                                                                                         \
                }                                                                                                      \
        }                                                                                                              \
        static void FN(matmul_stream_##name)(const void *w, size_t rb, size_t K, const float *x, size_t ldx,           \
                                             size_t n_vec, float *y, size_t ldy, size_t r0, size_t r1) {               \
                if (n_vec > SM_MAX_VEC) { /* prefill chunks: the tiled f32 matmul is compute-efficient */              \
                        FN(matmul_##name)(w, rb, K, x, ldx, n_vec, y, ldy, r0, r1);                                    \
                        return;                                                                                        \
                }                                                                                                      \
                /* vectors in even groups of at most SM_V; a tile's later groups find it in L1 */                      \
                size_t n_groups = (n_vec + SM_V - 1) / SM_V, per = (n_vec + n_groups - 1) / n_groups;                  \
                size_t r = r0;                                                                                         \
                for (; r + SM_R <= r1; r += SM_R)                                                                      \
                        for (size_t v = 0; v < n_vec; v += per)                                                        \
                                FN(sm_full_##name)                                                                     \
                (w, rb, K, x + v * ldx, ldx, (int)FN(min_sz)(per, n_vec - v), y + v * ldy, ldy, r);                    \
                for (; r < r1; r++)                                                                                    \
                        for (size_t v = 0; v < n_vec; v += per)                                                        \
                                FN(sm_one_##name)                                                                      \
                (w, rb, K, x + v * ldx, ldx, (int)FN(min_sz)(per, n_vec - v), y + v * ldy, ldy, r);                    \
        }
_Static_assert(SM_V == 4, "the stream tile instances are for 1-4 vectors");
DEFINE_MATMUL_STREAM(f32, 4)
DEFINE_MATMUL_STREAM(f16, 2)
DEFINE_MATMUL_STREAM(bf16, 2)
#endif

#if defined(SIMD_INT8_MATVEC) && !defined(SIMD_KEEP_INT8_MATMUL)
/* q8_0 in integers up to 8 vectors; q4_0 has its own pairs below (up to 16). */
DEFINE_MATMUL_I8(q8_0, QK, I8MM_MAX_VEC)

/* Q4_0, 2-8 vectors (batched decode) without VNNI: the pairs of the matvec above, each pair's nibbles
 * unpacked once for every vector. */
#define Q4MM_MAX_VEC 8
static inline __attribute__((always_inline)) void FN(q4_pair_nv)(const uint8_t *q, bool half, __m256 scw,
                                                                 const int8_t *xl, const int8_t *xh,
                                                                 const int32_t *corr, const float *dxe, size_t p,
                                                                 size_t xs, size_t cs, const int NV, __m256 *acc) {
        __m256i lo, hi;
        FN(q4_unpack)(q, half, &lo, &hi);
#pragma GCC unroll 8
        for (int u = 0; u < NV; u++) {
                __m256i t = FN(q4_dot)(lo, hi, xl + u * xs + 32 * p, xh + u * xs + 32 * p, corr + u * cs + 8 * p);
                acc[u] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(t),
                                         _mm256_mul_ps(scw, _mm256_load_ps(dxe + u * cs + 8 * p)), acc[u]);
        }
}

static inline __attribute__((always_inline)) void
FN(q4_rows_nv)(const uint8_t *w, size_t rb, size_t K, const int8_t *xl, const int8_t *xh, const int32_t *corr,
               const float *dxe, size_t xs, size_t cs, const int NV, float *y, size_t ldy, size_t r0, size_t r1) {
        size_t nb = K / QK, np = (nb + 1) / 2, qo = q_row_quants_offset(K);
        const __m256i spread = _mm256_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1);
        for (size_t r = r0; r < r1; r++) {
                const uint8_t *p0 = (const uint8_t *)w + r * rb, *q = p0 + qo;
                __m256 acc[Q4MM_MAX_VEC];
#pragma GCC unroll 8
                for (int u = 0; u < NV; u++)
                        acc[u] = _mm256_setzero_ps();
                __m256 s8 = _mm256_setzero_ps();
                for (size_t p = 0; p < np; p++) {
                        if (p % 4 == 0) {
                                s8 = FN(q4_scales8)(p0, nb, p);
                                __builtin_prefetch(q + 32 * p + I8MV_PREFETCH, 0, 0);
                                __builtin_prefetch(q + 32 * p + 64 + I8MV_PREFETCH, 0, 0);
                        }
                        __m256 scw = _mm256_permutevar8x32_ps(
                                s8, _mm256_add_epi32(spread, _mm256_set1_epi32((int)(2 * (p % 4)))));
                        FN(q4_pair_nv)(q + 32 * p, 2 * p + 1 == nb, scw, xl, xh, corr, dxe, p, xs, cs, NV, acc);
                }
#pragma GCC unroll 8
                for (int u = 0; u < NV; u++)
                        y[(size_t)u * ldy + r] = FN(hsum8)(acc[u]);
        }
}

#define Q4MM_CASE(n)                                                                                                   \
        case n:                                                                                                        \
                FN(q4_rows_nv)(w, rb, K, xl, xh, corr, dxe, xs, cs, n, y, ldy, r0, r1);                                \
                break;

/* Rows [r0, r1) against n packed vectors (<= Q4MM_MAX_VEC), through the instance for n. */
static void FN(q4_rows_any)(const uint8_t *w, size_t rb, size_t K, const int8_t *xl, const int8_t *xh,
                            const int32_t *corr, const float *dxe, size_t xs, size_t cs, size_t n_vec, float *y,
                            size_t ldy, size_t r0, size_t r1) {
        switch (n_vec) {
                Q4MM_CASE(1)
                Q4MM_CASE(2)
                Q4MM_CASE(3)
                Q4MM_CASE(4)
                Q4MM_CASE(5)
                Q4MM_CASE(6)
                Q4MM_CASE(7)
                Q4MM_CASE(8)
        default:
                break;
        }
}

/* Up to 16 vectors (two chunks over each block of Q4MM_ROWS rows, which the second finds in cache)
 * while vectors x columns <= Q4MM_PACK (the packed x is 2 bytes a column and vector, on the stack);
 * beyond, the f32 path. */
#define Q4MM_PACK 65536
#define Q4MM_ROWS 16
static void FN(matmul_i8_q4_0)(const void *w, size_t rb, size_t K, const float *x, size_t ldx, size_t n_vec, float *y,
                               size_t ldy, size_t r0, size_t r1) {
        /* prefill chunks, and rows too long for the stack: the tiled f32 matmul */
        if (n_vec > 2 * Q4MM_MAX_VEC || n_vec * K > Q4MM_PACK || K > Q4MM_PACK / 2) {
                FN(matmul_q4_0)(w, rb, K, x, ldx, n_vec, y, ldy, r0, r1);
                return;
        }
        size_t nb = K / QK, np = (nb + 1) / 2, xs = 32 * np, cs = 8 * np;
        _Alignas(32) int8_t xq[Q4MM_PACK / 2], xl[Q4MM_PACK / 2], xh[Q4MM_PACK / 2];
        _Alignas(32) int32_t corr[Q4MM_PACK / 8];
        _Alignas(32) float dxe[Q4MM_PACK / 8];
        float dx[Q4MM_PACK / 2 / QK + 8];
        for (size_t u = 0; u < n_vec; u++) {
                if (!FN(q4_pack_x)(x + u * ldx, K, xq, xl + u * xs, xh + u * xs, corr + u * cs, dx)) {
                        /* non-finite input: the f32 path gives the IEEE result */
                        FN(matmul_q4_0)(w, rb, K, x, ldx, n_vec, y, ldy, r0, r1);
                        return;
                }
                /* each pair's two x scales spread to its 4 + 4 lanes */
                for (size_t p = 0; p < np; p++)
                        for (size_t l = 0; l < 8; l++)
                                dxe[u * cs + 8 * p + l] = dx[2 * p + l / 4];
        }
        if (n_vec <= Q4MM_MAX_VEC) {
                FN(q4_rows_any)(w, rb, K, xl, xh, corr, dxe, xs, cs, n_vec, y, ldy, r0, r1);
                return;
        }
        size_t n1 = (n_vec + 1) / 2, n2 = n_vec - n1;
        for (size_t r = r0; r < r1; r += Q4MM_ROWS) {
                size_t re = r + Q4MM_ROWS < r1 ? r + Q4MM_ROWS : r1;
                FN(q4_rows_any)(w, rb, K, xl, xh, corr, dxe, xs, cs, n1, y, ldy, r, re);
                FN(q4_rows_any)
                (w, rb, K, xl + n1 * xs, xh + n1 * xs, corr + n1 * cs, dxe + n1 * cs, xs, cs, n2, y + n1 * ldy, ldy, r,
                 re);
        }
}
#endif

/* ---- norms ---- */

static void FN(layer_norm)(const float *x, const float *w, const float *b, float *y, size_t n, float eps) {
        size_t nv = n / VL * VL;
        VEC s = vzero();
        for (size_t i = 0; i < nv; i += VL)
                s = vadd(s, vload(x + i));
        float sum = vhsum(s);
        for (size_t i = nv; i < n; i++)
                sum += x[i];
        float mean = sum / (float)n;

        /* Two passes: the variance of (x - mean) does not cancel catastrophically like E[x^2] - mean^2. */
        VEC m = vset1(mean), q = vzero();
        for (size_t i = 0; i < nv; i += VL) {
                VEC d = vsub(vload(x + i), m);
                q = vfma(d, d, q);
        }
        float var = vhsum(q);
        for (size_t i = nv; i < n; i++)
                var += (x[i] - mean) * (x[i] - mean);
        float rs = 1.f / sqrtf(var / (float)n + eps);

        VEC r = vset1(rs);
        for (size_t i = 0; i < nv; i += VL)
                vstore(y + i, vfma(vmul(vsub(vload(x + i), m), r), vload(w + i), vload(b + i)));
        for (size_t i = nv; i < n; i++)
                y[i] = (x[i] - mean) * rs * w[i] + b[i];
}

static void FN(group_norm)(const float *x, const float *w, const float *b, float *y, size_t n_groups, size_t group_size,
                           float eps) {
        for (size_t g = 0; g < n_groups; g++) {
                size_t o = g * group_size;
                FN(layer_norm)(x + o, w + o, b + o, y + o, group_size, eps);
        }
}

/* ---- RWKV-7 state update: rows of the state (value index i) in registers, WKV_ROWS at a time ----
 * Each row is two dependent chains (sa, then the update and y) ending in a horizontal sum; one row at a
 * time left the core waiting on those latencies (AVX-512 no faster than AVX2). Four rows side by side
 * overlap them and share the loads of a, w, b, k and r. A row's sums are the same as one at a time. */
#define WKV_ROWS 4

/* One vector of state cells: S = S * w + sa * b + v * k, stored, and y += S * r (each operand is
 * the row's broadcast or the columns' vector, depending on the layout). */
static inline __attribute__((always_inline)) void FN(wkv_cells)(float *p, VEC w, VEC sa, VEC b, VEC v, VEC k, VEC r,
                                                                VEC *y) {
        VEC s = vmul(vload(p), w);
        s = vfma(sa, b, s);
        s = vfma(v, k, s);
        vstore(p, s);
        *y = vfma(s, r, *y);
}

static void FN(wkv7)(float *state, const float *r, const float *w, const float *k, const float *v, const float *a,
                     const float *b, float *y, size_t H, size_t N) {
        if (N % VL != 0 || N % WKV_ROWS != 0) {
                wkv7_generic(state, r, w, k, v, a, b, y, H, N);
                return;
        }
        for (size_t h = 0; h < H; h++) {
                float *S = state + h * N * N;
                size_t o = h * N;
                for (size_t i = 0; i < N; i += WKV_ROWS) {
                        float *Si = S + i * N;
                        VEC sa[WKV_ROWS], yi[WKV_ROWS], sab[WKV_ROWS], vi[WKV_ROWS];
                        /* The next head's state, as many bytes as this group of rows, into L2: in a
                         * batched step 8 sessions' states do not stay in L3 behind the weight stream,
                         * and from memory the step ran at half its in-cache speed (one thread, states
                         * in DRAM: 11.2-12.2 -> 9.3-9.6 us for 12 heads; in cache 6.3 -> 6.5) */
                        if (h + 1 < H)
                                for (size_t c = 0; c < WKV_ROWS * N * sizeof(float); c += 64)
                                        __builtin_prefetch((const char *)(Si + N * N) + c, 0, 2);
#pragma GCC unroll 4
                        for (int u = 0; u < WKV_ROWS; u++)
                                sa[u] = yi[u] = vzero();
                        for (size_t j = 0; j < N; j += VL) {
                                VEC aj = vload(a + o + j);
#pragma GCC unroll 4
                                for (int u = 0; u < WKV_ROWS; u++)
                                        sa[u] = vfma(vload(Si + (size_t)u * N + j), aj, sa[u]);
                        }
#pragma GCC unroll 4
                        for (int u = 0; u < WKV_ROWS; u++) {
                                sab[u] = vset1(vhsum(sa[u]));
                                vi[u] = vset1(v[o + i + (size_t)u]);
                        }
                        for (size_t j = 0; j < N; j += VL) {
                                VEC wj = vload(w + o + j), bj = vload(b + o + j), kj = vload(k + o + j),
                                    rj = vload(r + o + j);
#pragma GCC unroll 4
                                for (int u = 0; u < WKV_ROWS; u++)
                                        FN(wkv_cells)(Si + (size_t)u * N + j, wj, sab[u], bj, vi[u], kj, rj, &yi[u]);
                        }
#pragma GCC unroll 4
                        for (int u = 0; u < WKV_ROWS; u++)
                                y[o + i + (size_t)u] = vhsum(yi[u]);
                }
        }
}

/* A chunk of tokens on a transposed copy of each head's state (T[j][i] = S[i][j]), head size 64:
 * the lanes are then value indices i, every key index j is a broadcast, and neither sa nor y needs
 * a horizontal sum (two of them per row and token in wkv7 above, half its instructions). The copy
 * costs two 64 x 64 transposes per head and chunk. sa is summed in two chains (even / odd j). */
#define WKV_SEQ_N 64
#define WKV_SEQ_V (WKV_SEQ_N / VL)
static void FN(wkv7_seq)(float *state, const float *r, const float *w, const float *k, const float *v, const float *a,
                         const float *b, float *y, size_t ld, size_t n_tok, size_t H, size_t N) {
        if (N != WKV_SEQ_N || n_tok < 2) {
                for (size_t t = 0; t < n_tok; t++) {
                        size_t o = t * ld;
                        FN(wkv7)(state, r + o, w + o, k + o, v + o, a + o, b + o, y + o, H, N);
                }
                return;
        }
        _Alignas(64) float T[WKV_SEQ_N * WKV_SEQ_N];
        for (size_t h = 0; h < H; h++) {
                float *S = state + h * N * N;
                for (size_t i = 0; i < N; i++)
                        for (size_t j = 0; j < N; j++)
                                T[j * N + i] = S[i * N + j];
                for (size_t t = 0; t < n_tok; t++) {
                        size_t o = t * ld + h * N;
                        VEC s0[WKV_SEQ_V], s1[WKV_SEQ_V], vv[WKV_SEQ_V], yy[WKV_SEQ_V];
#pragma GCC unroll 16
                        for (int u = 0; u < WKV_SEQ_V; u++)
                                s0[u] = s1[u] = vzero();
                        for (size_t j = 0; j < N; j += 2) {
                                VEC a0 = vset1(a[o + j]), a1 = vset1(a[o + j + 1]);
#pragma GCC unroll 16
                                for (int u = 0; u < WKV_SEQ_V; u++) {
                                        s0[u] = vfma(vload(T + j * N + (size_t)u * VL), a0, s0[u]);
                                        s1[u] = vfma(vload(T + (j + 1) * N + (size_t)u * VL), a1, s1[u]);
                                }
                        }
#pragma GCC unroll 16
                        for (int u = 0; u < WKV_SEQ_V; u++) {
                                s0[u] = vadd(s0[u], s1[u]); /* sa */
                                vv[u] = vload(v + o + (size_t)u * VL);
                                yy[u] = vzero();
                        }
                        for (size_t j = 0; j < N; j++) {
                                VEC wj = vset1(w[o + j]), bj = vset1(b[o + j]), kj = vset1(k[o + j]),
                                    rj = vset1(r[o + j]);
#pragma GCC unroll 16
                                for (int u = 0; u < WKV_SEQ_V; u++)
                                        FN(wkv_cells)(T + j * N + (size_t)u * VL, wj, s0[u], bj, vv[u], kj, rj, &yy[u]);
                        }
#pragma GCC unroll 16
                        for (int u = 0; u < WKV_SEQ_V; u++)
                                vstore(y + o + (size_t)u * VL, yy[u]);
                }
                for (size_t i = 0; i < N; i++)
                        for (size_t j = 0; j < N; j++)
                                S[i * N + j] = T[j * N + i];
        }
}

/* ---- RWKV-7 gates: exp in registers ----
 * exp(x) = 2^n * e^r with n = round(x / ln 2) and |r| <= ln(2)/2, e^r by the Cephes expf polynomial
 * (ln 2 split in two parts so that r is exact enough); within a few ulp of expf. x is clamped to
 * [-87.3, 88.3] so that 2^n stays a normal float; NaN goes through (vmin/vmax keep their second
 * operand's NaN, see the ISA files). */
static inline VEC FN(vexp)(VEC x) {
        x = vmax(vset1(-87.3f), vmin(vset1(88.3f), x));
        VEC n = vround(vmul(x, vset1(1.44269504088896341f)));
        VEC r = vfma(n, vset1(-0.693359375f), x);
        r = vfma(n, vset1(2.12194440e-4f), r);
        VEC p = vset1(1.9875691500e-4f);
        p = vfma(p, r, vset1(1.3981999507e-3f));
        p = vfma(p, r, vset1(8.3334519073e-3f));
        p = vfma(p, r, vset1(4.1665795894e-2f));
        p = vfma(p, r, vset1(1.6666665459e-1f));
        p = vfma(p, r, vset1(5.0000001201e-1f));
        p = vfma(vmul(p, r), r, vadd(r, vset1(1.0f)));
        return vmul(p, vpow2i(n));
}
static inline VEC FN(vsigmoid)(VEC x) {
        return vdiv(vset1(1.0f), vadd(vset1(1.0f), FN(vexp)(vsub(vzero(), x))));
}

static void FN(v7_gates)(float *w, const float *w0, float *a, const float *a0, float *v, const float *vf,
                         const float *v0, const float *t, size_t n) {
        size_t nv = n / VL * VL;
        for (size_t i = 0; i < nv; i += VL) {
                VEC s = FN(vsigmoid)(vadd(vload(w0 + i), vload(w + i)));
                vstore(w + i, FN(vexp)(vmul(vset1(-0.606531f), s)));
                vstore(a + i, FN(vsigmoid)(vadd(vload(a0 + i), vload(a + i))));
                if (v0) {
                        VEC vi = vload(v + i), g = FN(vsigmoid)(vadd(vload(v0 + i), vload(t + i)));
                        vstore(v + i, vfma(vsub(vload(vf + i), vi), g, vi));
                }
        }
        if (nv < n)
                /* v, vf, v0 and t may be NULL without the residual */
                v7_gates_generic(w + nv, w0 + nv, a + nv, a0 + nv, v0 ? v + nv : NULL, v0 ? vf + nv : NULL,
                                 v0 ? v0 + nv : NULL, v0 ? t + nv : NULL, n - nv);
}

/* ---- RWKV-7 keys and output, per head (N a multiple of VL, else the scalar reference) ---- */

static void FN(v7_keys)(float *k, float *kk, float *b, const float *a, const float *k_k, const float *k_a, size_t H,
                        size_t N) {
        if (N % VL != 0) {
                v7_keys_generic(k, kk, b, a, k_k, k_a, H, N);
                return;
        }
        VEC one = vset1(1.0f);
        for (size_t h = 0; h < H; h++) {
                size_t o = h * N;
                VEC ss = vzero();
                for (size_t i = o; i < o + N; i += VL) {
                        VEC q = vmul(vload(k + i), vload(k_k + i));
                        vstore(kk + i, q);
                        ss = vfma(q, q, ss);
                }
                VEC inv = vset1(1.0f / fmaxf(sqrtf(vhsum(ss)), 1e-12f));
                for (size_t i = o; i < o + N; i += VL) {
                        VEC q = vmul(vload(kk + i), inv), ai = vload(a + i);
                        vstore(b + i, vmul(q, ai));
                        vstore(kk + i, vmul(q, vset1(-1.0f))); /* -q exactly, as the scalar (-0 for +0) */
                        vstore(k + i, vmul(vload(k + i), vfma(vsub(ai, one), vload(k_a + i), one)));
                }
        }
}

static void FN(v7_bonus)(float *y, const float *r, const float *k, const float *v, const float *g, const float *r_k,
                         size_t H, size_t N) {
        if (N % VL != 0) {
                v7_bonus_generic(y, r, k, v, g, r_k, H, N);
                return;
        }
        for (size_t h = 0; h < H; h++) {
                size_t o = h * N;
                VEC acc = vzero();
                for (size_t i = o; i < o + N; i += VL)
                        acc = vfma(vmul(vload(r + i), vload(k + i)), vload(r_k + i), acc);
                VEC s = vset1(vhsum(acc));
                for (size_t i = o; i < o + N; i += VL)
                        vstore(y + i, vmul(vfma(s, vload(v + i), vload(y + i)), vload(g + i)));
        }
}

/* ---- element-wise ---- */

static void FN(add)(float *y, const float *x, size_t n) {
        size_t nv = n / VL * VL;
        for (size_t i = 0; i < nv; i += VL)
                vstore(y + i, vadd(vload(y + i), vload(x + i)));
        add_generic(y + nv, x + nv, n - nv);
}

static void FN(relu_sq)(float *x, size_t n) {
        size_t nv = n / VL * VL;
        for (size_t i = 0; i < nv; i += VL) {
                VEC v = vmax(vzero(), vload(x + i)); /* NaN: the second operand, or NaN (NEON) */
                vstore(x + i, vmul(v, v));
        }
        relu_sq_generic(x + nv, n - nv);
}

static void FN(mix)(float *y, const float *x, const float *d, const float *m, size_t n) {
        size_t nv = n / VL * VL;
        for (size_t i = 0; i < nv; i += VL)
                vstore(y + i, vfma(vload(d + i), vload(m + i), vload(x + i)));
        mix_generic(y + nv, x + nv, d + nv, m + nv, n - nv);
}

#include "kernels/simd-sampling.h"

static void simd_fill(Kernels *k) {
        k->isa = ISA_NAME;
#ifndef SIMD_KEEP_FLOAT_MATVEC
        k->matvec[DTYPE_F32] = FN(matvec_f32);
        k->matvec[DTYPE_F16] = FN(matvec_f16);
        k->matvec[DTYPE_BF16] = FN(matvec_bf16);
#endif
#ifdef SIMD_INT8_MATVEC
        k->matvec[DTYPE_Q8_0] = FN(matvec_i8_q8_0);
        k->matvec[DTYPE_Q4_0] = FN(matvec_i8_q4_0);
#else
        k->matvec[DTYPE_Q8_0] = FN(matvec_q8_0);
        k->matvec[DTYPE_Q4_0] = FN(matvec_q4_0);
#endif
        k->matmul[DTYPE_F32] = FN(matmul_f32);
        k->matmul[DTYPE_F16] = FN(matmul_f16);
        k->matmul[DTYPE_BF16] = FN(matmul_bf16);
#ifndef SIMD_KEEP_INT8_MATMUL
        k->matmul[DTYPE_Q8_0] = FN(matmul_q8_0);
        k->matmul[DTYPE_Q4_0] = FN(matmul_q4_0);
#endif
#ifdef SM_R
        k->matmul[DTYPE_F32] = FN(matmul_stream_f32);
        k->matmul[DTYPE_F16] = FN(matmul_stream_f16);
        k->matmul[DTYPE_BF16] = FN(matmul_stream_bf16);
#endif
#if defined(SIMD_INT8_MATVEC) && !defined(SIMD_KEEP_INT8_MATMUL)
        k->matmul[DTYPE_Q8_0] = FN(matmul_i8_q8_0);
        k->matmul[DTYPE_Q4_0] = FN(matmul_i8_q4_0);
#endif
        k->layer_norm = FN(layer_norm);
        k->group_norm = FN(group_norm);
        k->wkv7 = FN(wkv7);
        k->wkv7_seq = FN(wkv7_seq);
        k->v7_gates = FN(v7_gates);
        k->v7_keys = FN(v7_keys);
        k->v7_bonus = FN(v7_bonus);
        k->add = FN(add);
        k->relu_sq = FN(relu_sq);
        k->mix = FN(mix);
        k->penalize_max = FN(penalize_max);
        k->softmax_scan = FN(softmax_scan);
        k->select_below = FN(select_below);
}
