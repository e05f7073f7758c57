/* x86-x16-copy.h: the scales of 16 Q8_0/Q4_0 rows copied into a Q8_0X16/Q4_0X16 group (kernels/quant.h),
 * for the kernels that run those rows through copies into groups (x86-avx2.c, x86-avx512vnni-x16.c).
 * AVX2 instructions: include it only from files built for AVX2 or more. */
#pragma once

#include <immintrin.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* Elements j of 8 rows of 8 16-bit values per 128-bit lane: r[j] becomes lane-wise column j. */
static inline __attribute__((always_inline)) void transpose8_epi16_lanes(__m256i *r) {
        __m256i a[8], b[8];
#pragma GCC unroll 4
        for (int m = 0; m < 8; m += 2) { /* elements 0-3 and 4-7 of rows m, m+1 interleaved */
                a[m] = _mm256_unpacklo_epi16(r[m], r[m + 1]);
                a[m + 1] = _mm256_unpackhi_epi16(r[m], r[m + 1]);
        }
#pragma GCC unroll 2
        for (int m = 0; m < 8; m += 4) { /* elements 2k, 2k+1 of rows m..m+3 */
                b[m] = _mm256_unpacklo_epi32(a[m], a[m + 2]);
                b[m + 1] = _mm256_unpackhi_epi32(a[m], a[m + 2]);
                b[m + 2] = _mm256_unpacklo_epi32(a[m + 1], a[m + 3]);
                b[m + 3] = _mm256_unpackhi_epi32(a[m + 1], a[m + 3]);
        }
#pragma GCC unroll 4
        for (int k = 0; k < 4; k++) {
                r[2 * k] = _mm256_unpacklo_epi64(b[k], b[4 + k]);
                r[2 * k + 1] = _mm256_unpackhi_epi64(b[k], b[4 + k]);
        }
}

/* The f16 scales of blocks [b0, b0 + pn) of 16 rows (rb bytes apart, scales first) as a group's:
 * d[32 * b + 2 * i] = row i's scale of block b0 + b. 16 blocks at a time as a 16 x 16 transpose of
 * 16-bit values (16 two-byte moves a block cost as much as the quants' transpose). */
static inline void x16_copy_scales(const uint8_t *rows, size_t rb, size_t b0, size_t pn, uint8_t *d) {
        size_t b = 0;
        for (; b + 16 <= pn; b += 16) {
                __m256i lo[8], hi[8]; /* rows 0-7 and 8-15, blocks b..b+7 | b+8..b+15 */
#pragma GCC unroll 8
                for (int m = 0; m < 8; m++) {
                        lo[m] = _mm256_loadu_si256((const __m256i *)(rows + m * rb + 2 * (b0 + b)));
                        hi[m] = _mm256_loadu_si256((const __m256i *)(rows + (m + 8) * rb + 2 * (b0 + b)));
                }
                transpose8_epi16_lanes(lo);
                transpose8_epi16_lanes(hi);
#pragma GCC unroll 8
                for (int j = 0; j < 8; j++) {
                        _mm256_storeu_si256((__m256i *)(d + 32 * (b + j)),
                                            _mm256_permute2x128_si256(lo[j], hi[j], 0x20));
                        _mm256_storeu_si256((__m256i *)(d + 32 * (b + 8 + j)),
                                            _mm256_permute2x128_si256(lo[j], hi[j], 0x31));
                }
        }
        for (; b < pn; b++)
                for (size_t i = 0; i < 16; i++)
                        memcpy(d + 32 * b + 2 * i, rows + i * rb + 2 * (b0 + b), 2);
}
