/* x86-x16-copy.h: 16 Q8_0/Q4_0 rows copied into a Q8_0X16/Q4_0X16 group (kernels/quant.h), for the
 * kernels that run those rows through the grouped tiles (x86-avx2-kernels.h, x86-avx512vnni-x16.c).
 * The quants: an 8 x 8 dword transpose per 8 rows of a Q8_0 block, 8 x 4 for Q4_0 (in-lane unpacks,
 * and a lane permute for Q8_0). The scales: 16 x 16 transposes of 16-bit values. In 256-bit
 * registers for both ISAs: the VNNI kernels' own 512-bit copies (a 16 x 8 qword transpose for
 * Q8_0, inserts and a dword permute for Q4_0) measured no faster, one thread, 4096 x 1024 streamed:
 * q4_0 4 vectors 169-173 against 178 µs, q8_0 64 vectors 1748-1757 against 1848-1865.
 * AVX2 instructions: include it only from files built for AVX2 or more. */
#pragma once

#include <immintrin.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "kernels/quant.h"

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

/* Blocks [b0, b0 + pn) of 16 Q8_0 rows (rb bytes apart) as a Q8_0X16 group's quants (q) and scales
 * (d) for those blocks. */
static inline void x16_copy_q8_0_rows(const uint8_t *rows, size_t rb, size_t K, size_t b0, size_t pn, uint8_t *q,
                                      uint8_t *d) {
        const uint8_t *src = rows + q_row_quants_offset(K);
        const __m256i bias = _mm256_set1_epi8((char)0x80);
        for (size_t b = 0; b < pn; b++) {
#pragma GCC unroll 2
                for (size_t h = 0; h < 2; h++) { /* rows 8h .. 8h+7: the half h of each line */
                        __m256i r[8], t[8], u[8];
#pragma GCC unroll 8
                        for (int m = 0; m < 8; m++)
                                r[m] = _mm256_loadu_si256((const __m256i *)(src + (8 * h + m) * rb + 32 * (b0 + b)));
#pragma GCC unroll 4
                        for (int m = 0; m < 8; m += 2) { /* dwords 0,1 | 4,5 and 2,3 | 6,7 of rows m, m+1 */
                                t[m] = _mm256_unpacklo_epi32(r[m], r[m + 1]);
                                t[m + 1] = _mm256_unpackhi_epi32(r[m], r[m + 1]);
                        }
#pragma GCC unroll 2
                        for (int m = 0; m < 8; m += 4) { /* dword j | j+4 of rows m..m+3, j = 0..3 */
                                u[m] = _mm256_unpacklo_epi64(t[m], t[m + 2]);
                                u[m + 1] = _mm256_unpackhi_epi64(t[m], t[m + 2]);
                                u[m + 2] = _mm256_unpacklo_epi64(t[m + 1], t[m + 3]);
                                u[m + 3] = _mm256_unpackhi_epi64(t[m + 1], t[m + 3]);
                        }
                        uint8_t *line = q + 512 * b + 32 * h;
#pragma GCC unroll 4
                        for (int j = 0; j < 4; j++) {
                                __m256i lo = _mm256_permute2x128_si256(u[j], u[4 + j], 0x20); /* dword j */
                                __m256i hi = _mm256_permute2x128_si256(u[j], u[4 + j], 0x31); /* dword j + 4 */
                                _mm256_storeu_si256((__m256i *)(line + 64 * j), _mm256_xor_si256(lo, bias));
                                _mm256_storeu_si256((__m256i *)(line + 64 * (j + 4)), _mm256_xor_si256(hi, bias));
                        }
                }
        }
        x16_copy_scales(rows, rb, b0, pn, d);
}

/* The same for 16 Q4_0 rows as a Q4_0X16 group: line j of a block is dword j of each row's 16 quant
 * bytes. */
static inline void x16_copy_q4_0_rows(const uint8_t *rows, size_t rb, size_t K, size_t b0, size_t pn, uint8_t *q,
                                      uint8_t *d) {
        const uint8_t *src = rows + q_row_quants_offset(K);
        for (size_t b = 0; b < pn; b++) {
#pragma GCC unroll 2
                for (size_t h = 0; h < 2; h++) {
                        const uint8_t *p = src + 8 * h * rb + 16 * (b0 + b);
                        __m256i r[4], t[4];
#pragma GCC unroll 4
                        for (int m = 0; m < 4; m++) /* rows m | m+4 of the eight */
                                r[m] = _mm256_inserti128_si256(
                                        _mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)(p + m * rb))),
                                        _mm_loadu_si128((const __m128i *)(p + (m + 4) * rb)), 1);
                        t[0] = _mm256_unpacklo_epi32(r[0], r[1]);
                        t[1] = _mm256_unpackhi_epi32(r[0], r[1]);
                        t[2] = _mm256_unpacklo_epi32(r[2], r[3]);
                        t[3] = _mm256_unpackhi_epi32(r[2], r[3]);
                        uint8_t *line = q + 256 * b + 32 * h;
                        _mm256_storeu_si256((__m256i *)line, _mm256_unpacklo_epi64(t[0], t[2]));
                        _mm256_storeu_si256((__m256i *)(line + 64), _mm256_unpackhi_epi64(t[0], t[2]));
                        _mm256_storeu_si256((__m256i *)(line + 128), _mm256_unpacklo_epi64(t[1], t[3]));
                        _mm256_storeu_si256((__m256i *)(line + 192), _mm256_unpackhi_epi64(t[1], t[3]));
                }
        }
        x16_copy_scales(rows, rb, b0, pn, d);
}
