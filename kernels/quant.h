/* quant.h: the native block-quantized layouts (DTYPE_Q8_0, DTYPE_Q4_0 and their 16-row groups).
 *
 * CONTRACT (stored in .rwkv files; never change a layout without a new dtype number): a row of n
 * elements (n a multiple of QK = 32) is self-contained and holds its nb = n/32 block scales FIRST,
 * then all quants. Splitting scales from quants (ggml interleaves them) lets SIMD loops stream the
 * quants as one contiguous array and load several scales with one instruction.
 *
 *   Q8_0 row:  uint16 d[nb] (IEEE f16, little endian) | int8 q[n]
 *              x[32*b + j] = d[b] * q[32*b + j],  q in [-127, 127]
 *   Q4_0 row:  uint16 d[nb] (IEEE f16, little endian) | uint8 qs[16*nb]
 *              block b owns qs[16*b .. 16*b+15]; for j < 16:
 *              x[32*b + j]      = d[b] * ((qs[16*b + j] & 0xF) - 8)
 *              x[32*b + j + 16] = d[b] * ((qs[16*b + j] >> 4)  - 8)
 *              (the nibble order of ggml's Q4_0: low nibbles are elements 0..15 of the block)
 *
 * The rows are not padded: dtype_row_bytes() gives 34*nb (Q8_0) and 18*nb (Q4_0).
 *
 *   Q8_0X16 (the same values as Q8_0, 16 rows interleaved; a matrix has a multiple of 16 rows):
 *              group g = rows 16g .. 16g+15, G = 16 * row_bytes bytes at g * G, where row_bytes =
 *              34*nb + 2*(nb odd) (so G is a multiple of 64 and every group starts on a cache line)
 *              uint8 q[nb][8][16][4] | uint16 d[nb][16] (f16) | 32 zero bytes when nb is odd
 *              x[row 16g+i][32*b + 4*j + k] = d[b][i] * (q[b][j][i][k] - 128),  q in [1, 255]
 *   Line j of block b (64 bytes) holds bytes 4j..4j+3 of the block for each of the 16 rows, stored
 *   with +128 (vpdpbusd multiplies unsigned by signed bytes): one full-width load feeds a
 *   multiply-add of 16 rows by a 4-byte broadcast of each activation vector, where a row layout
 *   needs one weight load for every vpdpbusd. The same quantization as Q8_0 (rounding, scales), so
 *   a Q8_0 row and its Q8_0X16 copy hold equal values.
 *
 *   Q4_0X16 (the same values as Q4_0, 16 rows interleaved; a matrix has a multiple of 16 rows):
 *              group g = rows 16g .. 16g+15, G = 16 * row_bytes bytes at g * G, where row_bytes =
 *              18*nb + 2*(nb odd) (G a multiple of 64 again)
 *              uint8 q[nb][4][16][4] | uint16 d[nb][16] (f16) | 32 zero bytes when nb is odd
 *              x[row 16g+i][32*b + 4*j + k]      = d[b][i] * ((q[b][j][i][k] & 0xF) - 8)
 *              x[row 16g+i][32*b + 16 + 4*j + k] = d[b][i] * ((q[b][j][i][k] >> 4)  - 8)
 *   Line j of block b (64 bytes) holds 4 bytes of each of the 16 rows: low nibbles are elements
 *   4j..4j+3 of the block, high nibbles elements 16+4j..16+4j+3 (Q4_0's split of a block into
 *   halves). A mask and a shift of one full-width load give two multiply-adds of 16 rows by 4-byte
 *   broadcasts of the activations in their natural order, so the activations are packed exactly
 *   as for Q8_0X16. The same quantization as Q4_0: a Q4_0 row and its Q4_0X16 copy hold equal
 *   values. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#define QK 32

static inline size_t q8_0_row_bytes(size_t n) {
        return n / QK * 2 + n;
}
static inline size_t q4_0_row_bytes(size_t n) {
        return n / QK * 2 + n / 2;
}
static inline size_t q8_0x16_row_bytes(size_t n) {
        size_t nb = n / QK;
        return nb * 34 + (nb & 1) * 2;
}
static inline size_t q4_0x16_row_bytes(size_t n) {
        size_t nb = n / QK;
        return nb * 18 + (nb & 1) * 2;
}
/* Bytes of quants of one block of a group: 8 lines (Q8_0X16) or 4 (Q4_0X16, when q4). */
static inline size_t x16_block_quant_bytes(int q4) {
        return q4 ? 256 : 512;
}
/* Offset of the scales inside a group (the quants come first). */
static inline size_t x16_scales_offset(int q4, size_t n) {
        return n / QK * x16_block_quant_bytes(q4);
}
/* Offset of the quants inside a native Q8_0/Q4_0 row (the scales come first). */
static inline size_t q_row_quants_offset(size_t n) {
        return n / QK * 2;
}

/* ggml / rwkv.cpp blocks (read only, generic kernels). All fields little endian, no padding. */
typedef struct GgmlBlockQ4_0 {
        uint16_t d;
        uint8_t qs[16];
} GgmlBlockQ4_0;
typedef struct GgmlBlockQ4_1 {
        uint16_t d, m;
        uint8_t qs[16];
} GgmlBlockQ4_1;
typedef struct GgmlBlockQ5_0 {
        uint16_t d;
        uint8_t qh[4]; /* bit j = 5th bit of element j (j < 32) */
        uint8_t qs[16];
} GgmlBlockQ5_0;
typedef struct GgmlBlockQ5_1 {
        uint16_t d, m;
        uint8_t qh[4];
        uint8_t qs[16];
} GgmlBlockQ5_1;
typedef struct GgmlBlockQ8_0 {
        uint16_t d;
        int8_t qs[32];
} GgmlBlockQ8_0;

_Static_assert(sizeof(GgmlBlockQ4_0) == 18, "ggml q4_0 block");
_Static_assert(sizeof(GgmlBlockQ4_1) == 20, "ggml q4_1 block");
_Static_assert(sizeof(GgmlBlockQ5_0) == 22, "ggml q5_0 block");
_Static_assert(sizeof(GgmlBlockQ5_1) == 24, "ggml q5_1 block");
_Static_assert(sizeof(GgmlBlockQ8_0) == 34, "ggml q8_0 block");
