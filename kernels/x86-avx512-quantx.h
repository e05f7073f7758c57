/* x86-avx512-quantx.h: activations to int8 blocks of 32 for the AVX-512 VNNI kernels
 * (x86-avx512vnni.c, x86-avx512vnni-x16.c): one rule, one error bound, d = amax/127 per block
 * (the bound of the integer matvec in simd-template.h). Include only from files built with
 * AVX-512F flags. */
#pragma once

#include <immintrin.h>
#include <stdbool.h>

/* Block x[0..31] as two zmm of int32 in [-127, 127] and its scale. False on a non-finite value
 * (the caller's f32 path then gives the IEEE result). */
static inline __attribute__((always_inline)) bool quantize_block_i32(const float *x, __m512i *i0, __m512i *i1,
                                                                     float *d) {
        __m512 v0 = _mm512_loadu_ps(x), v1 = _mm512_loadu_ps(x + 16);
        /* x * 0 is NaN exactly when x is inf or NaN */
        __m512 z = _mm512_add_ps(_mm512_mul_ps(v0, _mm512_setzero_ps()), _mm512_mul_ps(v1, _mm512_setzero_ps()));
        if (_mm512_cmp_ps_mask(z, z, _CMP_UNORD_Q))
                return false;
        float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(v0), _mm512_abs_ps(v1)));
        float dd = amax / 127.f, id = dd > 0.f ? 1.f / dd : 0.f;
        __m512 vid = _mm512_set1_ps(id);
        /* |x * id| <= 127 up to a rounding that the conversion to the nearest integer absorbs */
        *i0 = _mm512_cvtps_epi32(_mm512_mul_ps(v0, vid));
        *i1 = _mm512_cvtps_epi32(_mm512_mul_ps(v1, vid));
        *d = dd;
        return true;
}
