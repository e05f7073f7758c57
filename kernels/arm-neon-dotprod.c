/* arm-neon-dotprod.c: Q8_0X16 and Q4_0X16 with the AArch64 dot-product extension (sdot: Armv8.2
 * optional, Armv8.4 mandatory; Cortex-A55/A76 and later, Neoverse N1 and later, Apple M1). Built
 * with +dotprod and entered only when the kernel reports it (HWCAP_ASIMDDP, kernels/cpu.c): the
 * neon-dotprod table is the neon table with these two types replaced.
 *
 * The interleaved layout fits sdot as it fits x86's vpdpbusd: a 16-byte load of a line holds 4
 * bytes of 4 rows, and `sdot (by element)` multiplies each row's 4 bytes by the same 4 bytes of x,
 * picked from a 16-byte load of x by lane, adding them into that row's int32 lane. So a line costs
 * one instruction per vector (16 multiply-adds), where the baseline tile (arm-neon.c) spends three
 * (its widening multiplies and pairwise adds), and x needs no broadcast: one 16-byte load of it
 * serves 4 lines. Each int32 lane is one row, so the block sums
 * need no pairwise add either. Same quantization of x, same sums, so the results equal the baseline
 * tile's (the integer sums are exact; the float part is shared, arm-neon-x16.h). */
#include <arm_neon.h>

#include "kernels/kernels-internal.h"

#if !defined(__ARM_FEATURE_DOTPROD)
#error "arm-neon-dotprod.c needs -march=armv8.2-a+dotprod (kernels/meson.build)"
#endif

/* 4 vectors x 4 row-quads = 16 int32x4 accumulators, 4 x loads and the lines: within 32 registers */
#define X16_TILE 4
#include "kernels/arm-neon-x16.h"

/* acc[v][k] += line j of rows 4k..4k+3 . x bytes 4j..4j+3 of vector v, for the 4 lines of xv
 * (bytes 4*j0 .. 4*j0+15 of each vector); the lane is an immediate, hence one macro per line */
#define X16_DOT_LINE(l)                                                                                                \
        do {                                                                                                           \
                for (int k = 0; k < 4; k++) {                                                                          \
                        int8x16_t w = x16_line(q, j0 + (l), k, Q4);                                                    \
                        for (int v = 0; v < nv; v++)                                                                   \
                                acc[v][k] = vdotq_laneq_s32(acc[v][k], w, xv[v], (l));                                 \
                }                                                                                                      \
        } while (0)

static inline __attribute__((always_inline)) void x16_tile_dot(const uint8_t *q, const uint8_t *d, size_t nb,
                                                               const int8_t *xs, const float *dx, size_t xld,
                                                               size_t dld, int nv, const int Q4, float *y, size_t ldy,
                                                               bool add, float *sums) {
        const size_t QB = x16_block_quant_bytes(Q4);
        float *sp = sums;
        for (size_t b = 0; b < nb; b++, q += QB, xs += QK) {
                int32x4_t acc[X16_TILE][4]; /* [vector][rows 4k..4k+3] */
                for (int v = 0; v < nv; v++)
                        for (int k = 0; k < 4; k++)
                                acc[v][k] = vdupq_n_s32(0);
                for (int j0 = 0; j0 < 8; j0 += 4) {
                        int8x16_t xv[X16_TILE];
                        for (int v = 0; v < nv; v++)
                                xv[v] = vld1q_s8(xs + v * xld + 4 * j0);
                        X16_DOT_LINE(0);
                        X16_DOT_LINE(1);
                        X16_DOT_LINE(2);
                        X16_DOT_LINE(3);
                }
                for (int v = 0; v < nv; v++, sp += 16)
                        for (int k = 0; k < 4; k++)
                                vst1q_f32(sp + 4 * k, vcvtq_f32_s32(acc[v][k]));
        }
        x16_finish(d, nb, dx, dld, nv, y, ldy, add, sums);
}

/* One instance per vector count and type, so that the accumulators stay in registers. */
#define X16_DOT_CASE(n)                                                                                                \
        case n:                                                                                                        \
                if (q4)                                                                                                \
                        x16_tile_dot(q, d, nb, xs, dx, xld, dld, n, 1, y, ldy, add, sums);                             \
                else                                                                                                   \
                        x16_tile_dot(q, d, nb, xs, dx, xld, dld, n, 0, y, ldy, add, sums);                             \
                break;

static void x16_tile(int nv, const uint8_t *q, const uint8_t *d, size_t nb, const int8_t *xs, const float *dx,
                     size_t xld, size_t dld, bool q4, float *y, size_t ldy, bool add, float *sums) {
        _Static_assert(X16_TILE == 4, "the tile instances are for 1-4 vectors");
        switch (nv) {
                X16_DOT_CASE(1)
                X16_DOT_CASE(2)
                X16_DOT_CASE(3)
                X16_DOT_CASE(4)
        default:
                break;
        }
}

DEFINE_X16_ENTRIES(x16_matmul, neon_dotprod)

void kernels_fill_neon_dotprod(Kernels *k) {
        x16_fill_neon_dotprod(k);
}
