/* x86-avx2.c: AVX2 + FMA + F16C kernels (8 lanes). Built with those flags for this file only and
 * entered only when cpu.c found the CPU and the OS support them. The code is simd-template.h. */
#include <immintrin.h>
#include <math.h>

#include "kernels/kernels-internal.h"

#define ISA_NAME "avx2"
#define FN(name) name##_avx2
#define VL 8
#ifndef MM_R
#define MM_R 3 /* matmul register tile: 3 rows x 4 vectors = 12 accumulators of 16 */
#define MM_V 4
#endif

typedef __m256 VEC;

static inline VEC vzero(void) {
        return _mm256_setzero_ps();
}
static inline VEC vset1(float f) {
        return _mm256_set1_ps(f);
}
static inline VEC vload(const float *p) {
        return _mm256_loadu_ps(p);
}
static inline void vstore(float *p, VEC v) {
        _mm256_storeu_ps(p, v);
}
static inline VEC vadd(VEC a, VEC b) {
        return _mm256_add_ps(a, b);
}
static inline VEC vsub(VEC a, VEC b) {
        return _mm256_sub_ps(a, b);
}
static inline VEC vmul(VEC a, VEC b) {
        return _mm256_mul_ps(a, b);
}
static inline VEC vfma(VEC a, VEC b, VEC c) {
        return _mm256_fmadd_ps(a, b, c);
}
/* min/max return their SECOND operand when either is NaN (vexp relies on it to pass NaN through) */
static inline VEC vmin(VEC a, VEC b) {
        return _mm256_min_ps(a, b);
}
static inline VEC vmax(VEC a, VEC b) {
        return _mm256_max_ps(a, b);
}
static inline VEC vdiv(VEC a, VEC b) {
        return _mm256_div_ps(a, b);
}
static inline VEC vround(VEC a) {
        return _mm256_round_ps(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
}
/* 2^n for integral n in [-126, 127] */
static inline VEC vpow2i(VEC n) {
        return _mm256_castsi256_ps(
                _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23));
}
static inline float vhsum(VEC v) {
        __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
        s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        s = _mm_add_ss(s, _mm_movehdup_ps(s));
        return _mm_cvtss_f32(s);
}
/* The first n (< VL) floats, zeros after: never reads past p + n. */
static inline VEC vloadn(const float *p, size_t n) {
        const __m256i iota = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
        __m256i m = _mm256_cmpgt_epi32(_mm256_set1_epi32((int)n), iota);
        return _mm256_maskload_ps(p, m);
}
static inline VEC load_f16(const void *p) {
        return _mm256_cvtph_ps(_mm_loadu_si128(p));
}
static inline VEC load_bf16(const void *p) {
        return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128(p)), 16));
}
static inline float scalar_f16(const void *p) {
        return _cvtsh_ss(load_u16(p));
}
/* 16 int8 lanes to 16/VL float vectors. */
static inline void i8x16_to_vecs(__m128i v, VEC *out) {
        out[0] = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(v));
        out[1] = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(v, 8)));
}

/* Sums of 4 adjacent byte products |x| * w (no int16 overflow: |x|, |w| <= 127) into 8 int32. */
static inline __m256i i8dot32(__m256i xa, __m256i ws) {
        return _mm256_madd_epi16(_mm256_maddubs_epi16(xa, ws), _mm256_set1_epi16(1));
}
#define SIMD_INT8_MATVEC 1

#include "kernels/simd-template.h"

void kernels_fill_avx2(Kernels *k) {
        simd_fill(k);
}
