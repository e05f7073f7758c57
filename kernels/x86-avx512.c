/* x86-avx512.c: AVX-512 F/BW/VL kernels (16 lanes), plus F16C/FMA. Built with those flags for this
 * file only and entered only when cpu.c found the CPU and the OS (ZMM state) support them. */
#include <immintrin.h>
#include <math.h>

#include "kernels/kernels-internal.h"

#define ISA_NAME "avx512"
#define FN(name) name##_avx512
#define VL 16
#ifndef MM_R
#define MM_R 6 /* matmul register tile: 6 rows x 4 vectors = 24 accumulators of 32 */
#define MM_V 4
#endif
#ifndef SM_R
#define SM_R 4 /* batched decode of float weights: 4 rows x 4 vectors (3 x 8 measured 2x slower: spills) */
#define SM_V 4
#endif

typedef __m512 VEC;

static inline VEC vzero(void) {
        return _mm512_setzero_ps();
}
static inline VEC vset1(float f) {
        return _mm512_set1_ps(f);
}
static inline VEC vload(const float *p) {
        return _mm512_loadu_ps(p);
}
static inline void vstore(float *p, VEC v) {
        _mm512_storeu_ps(p, v);
}
static inline VEC vadd(VEC a, VEC b) {
        return _mm512_add_ps(a, b);
}
static inline VEC vsub(VEC a, VEC b) {
        return _mm512_sub_ps(a, b);
}
static inline VEC vmul(VEC a, VEC b) {
        return _mm512_mul_ps(a, b);
}
static inline VEC vfma(VEC a, VEC b, VEC c) {
        return _mm512_fmadd_ps(a, b, c);
}
/* min/max return their SECOND operand when either is NaN (vexp relies on it to pass NaN through) */
static inline VEC vmin(VEC a, VEC b) {
        return _mm512_min_ps(a, b);
}
static inline VEC vmax(VEC a, VEC b) {
        return _mm512_max_ps(a, b);
}
static inline VEC vdiv(VEC a, VEC b) {
        return _mm512_div_ps(a, b);
}
static inline VEC vround(VEC a) {
        return _mm512_roundscale_ps(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
}
/* 2^n for integral n in [-126, 127] */
static inline VEC vpow2i(VEC n) {
        return _mm512_castsi512_ps(
                _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127)), 23));
}
/* a < b ? x : y per lane, acc + (a < b ? x : 0), and the lanes where a < b as bits (false where a or
 * b is NaN) */
static inline VEC vlt_sel(VEC a, VEC b, VEC x, VEC y) {
        return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(a, b, _CMP_LT_OQ), y, x);
}
static inline VEC vadd_lt(VEC acc, VEC a, VEC b, VEC x) {
        return _mm512_mask_add_ps(acc, _mm512_cmp_ps_mask(a, b, _CMP_LT_OQ), acc, x);
}
static inline unsigned vlt_mask(VEC a, VEC b) {
        return (unsigned)_mm512_cmp_ps_mask(a, b, _CMP_LT_OQ);
}
static inline float vhsum(VEC v) {
        __m256 h = _mm256_add_ps(_mm512_castps512_ps256(v),
                                 _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
        __m128 s = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
        s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        s = _mm_add_ss(s, _mm_movehdup_ps(s));
        return _mm_cvtss_f32(s);
}
/* out[0..3] = the sums of a, b, c and d: halves, then quarters of all four side by side, then within
 * 128 bits; 15 instructions where four vhsum take 32. */
static inline void vhsum4(VEC a, VEC b, VEC c, VEC d, float *out) {
        __m512 ab = _mm512_add_ps(_mm512_shuffle_f32x4(a, b, 0x44), _mm512_shuffle_f32x4(a, b, 0xee));
        __m512 cd = _mm512_add_ps(_mm512_shuffle_f32x4(c, d, 0x44), _mm512_shuffle_f32x4(c, d, 0xee));
        __m512 q = _mm512_add_ps(_mm512_shuffle_f32x4(ab, cd, 0x88), _mm512_shuffle_f32x4(ab, cd, 0xdd));
        q = _mm512_add_ps(q, _mm512_permute_ps(q, _MM_SHUFFLE(2, 3, 0, 1)));
        q = _mm512_add_ps(q, _mm512_permute_ps(q, _MM_SHUFFLE(1, 0, 3, 2)));
        q = _mm512_permutexvar_ps(_mm512_setr_epi32(0, 4, 8, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0), q);
        _mm_storeu_ps(out, _mm512_castps512_ps128(q));
}
static inline VEC vloadn(const float *p, size_t n) {
        return _mm512_maskz_loadu_ps((__mmask16)((1u << n) - 1), p);
}
static inline VEC load_f16(const void *p) {
        return _mm512_cvtph_ps(_mm256_loadu_si256(p));
}
static inline VEC load_bf16(const void *p) {
        return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256(p)), 16));
}
static inline float scalar_f16(const void *p) {
        return _cvtsh_ss(load_u16(p));
}
static inline void i8x16_to_vecs(__m128i v, VEC *out) {
        out[0] = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(v));
}

/* Sums of 4 adjacent byte products |x| * w (no int16 overflow: |x|, |w| <= 127) into 8 int32.
 * (AVX-512 VNNI's vpdpbusd does this in one instruction; not every AVX-512 CPU has it.) */
static inline __m256i i8dot32(__m256i xa, __m256i ws) {
        return _mm256_madd_epi16(_mm256_maddubs_epi16(xa, ws), _mm256_set1_epi16(1));
}
#define SIMD_INT8_MATVEC 1
/* Decode of f32/f16/bf16 (one vector) keeps AVX2's matvec (8 lanes), filled into this table first.
 * f16: the same loop over zmm (vcvtph2ps zmm, m256) streamed slower from DRAM on this Zen 4
 * (bench-kernels matvec, one thread, alternating runs, medians: 0.1B 21.1 vs 24.2 GB/s, 0.4B 22.4
 * vs 25.9; rwkvctl bench, 0.1B f16 decode on 2 threads: 86 vs 102 tok/s), while rows in L2 convert
 * at the same rate either way. Two 16-byte loads per 16 halves instead of one 32-byte operand closed
 * the model-level gap but not the one-thread one. f32 and bf16 over zmm measured the same as AVX2
 * (0.1B: 23.9 vs 23.7, 23.1 vs 24.3 GB/s), so one loop serves all three. Batched decode and prefill
 * are compute-bound and keep zmm. */
#define SIMD_KEEP_FLOAT_MATVEC 1
/* The q8_0 / q4_0 products of 2+ vectors stay AVX2's (the table is filled with them first): its
 * copies into 16-row groups beat the template's integer row kernels built here (the same 256-bit
 * maddubs / madd, i8dot32 above) and its f32 tiles for more vectors and prefill. One thread,
 * 4096 x 1024 streamed, RWKV_ISA=avx512-novnni against avx2 (us): q8_0 2 vectors 461 / 390, 8 1198 /
 * 777, 64 5603 / 5294; q4_0 8 494 / 484, 16 999 / 875, 64 5368 / 3362. With VNNI these entries are
 * the fallbacks of x86-avx512vnni*.c (non-finite x, more than 8192 columns). */
#define SIMD_KEEP_INT8_MATMUL 1

#include "kernels/simd-template.h"

void kernels_fill_avx512(Kernels *k) {
        simd_fill(k);
}
