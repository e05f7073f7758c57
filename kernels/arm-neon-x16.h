/* arm-neon-x16.h: Q8_0X16 and Q4_0X16 (16 rows interleaved, kernels/quant.h) in integers on NEON,
 * included by arm-neon.c (baseline armv8-a: vmull + vpadal) and arm-neon-dotprod.c (the dot-product
 * extension: sdot). The includer defines X16_TILE (the most vectors a tile takes) and, after this
 * header, x16_tile(): the integer sums of a group's blocks for 1..X16_TILE vectors into `sums`
 * (16 floats per block and vector, block-major), which x16_finish() then scales and adds up.
 *
 * x is quantized per call to int8 blocks of 32 (scale amax/127, rounding to nearest even: the x86
 * integer kernels' rounding and error bound). A 16-byte load of a line holds 4 bytes of 4 rows (the
 * elements 4j..4j+3 of a block for rows 4k..4k+3); x16_line() makes them signed. The block sums of a
 * group wait (as floats) until its quants are done, and only then meet the scales, so that the
 * group is read in address order (quants, then scales; see x86-avx2-kernels.h). Q4_0X16 runs over 8
 * "lines" of a block too: line j < 4 is the low nibbles of the stored line j, line j >= 4 the high
 * nibbles of line j - 4 (elements 4j.. of the block either way), made signed by subtracting the +8. */
#pragma once

#include <arm_neon.h>
#include <stdbool.h>
#include <string.h>

#include "kernels/kernels-internal.h"
#include "kernels/quant.h"

#define Q16_XBYTES 16384                /* stack: int8 x of a column pass */
#define Q16_VC 32                       /* vectors quantized together: each weight byte is read once per 32 vectors */
#define Q16_SUMS (Q16_XBYTES / QK * 16) /* stack: the block sums of a tile (blocks x vectors <= 512) */

static void x16_tile(int nv, const uint8_t *q, const uint8_t *d, size_t nb, const int8_t *xs, const float *dx,
                     size_t xld, size_t dld, bool q4, float *y, size_t ldy, bool add, float *sums);

static inline size_t x16_min(size_t a, size_t b) {
        return a < b ? a : b;
}

/* Returns false when x has a non-finite value (the scalar kernel then gives the IEEE result). */
static bool x16_quantize(const float *x, size_t K, int8_t *xq, float *dx) {
        for (size_t b = 0; b < K / QK; b++) {
                const float *xb = x + b * QK;
                float32x4_t v[8], m = vdupq_n_f32(0.f);
                for (int i = 0; i < 8; i++) {
                        v[i] = vld1q_f32(xb + 4 * i);
                        m = vmaxq_f32(m, vabsq_f32(v[i])); /* NaN propagates */
                }
                float amax = vmaxvq_f32(m);
                if (!(amax <= 3.40282347e+38f))
                        return false;
                float d = amax / 127.f, id = d > 0.f ? 1.f / d : 0.f;
                int16x8_t h[4];
                for (int i = 0; i < 4; i++) {
                        /* |x * id| <= 127 up to rounding, which the saturating narrows absorb */
                        int32x4_t a = vcvtnq_s32_f32(vmulq_n_f32(v[2 * i], id));
                        int32x4_t c = vcvtnq_s32_f32(vmulq_n_f32(v[2 * i + 1], id));
                        h[i] = vcombine_s16(vqmovn_s32(a), vqmovn_s32(c));
                }
                vst1q_s8(xq + b * QK, vcombine_s8(vqmovn_s16(h[0]), vqmovn_s16(h[1])));
                vst1q_s8(xq + b * QK + 16, vcombine_s8(vqmovn_s16(h[2]), vqmovn_s16(h[3])));
                dx[b] = d;
        }
        return true;
}

/* Bytes 4j..4j+3 of block elements for rows 4k..4k+3 of a group's block at q, as signed values. */
static inline __attribute__((always_inline)) int8x16_t x16_line(const uint8_t *q, int j, int k, const int Q4) {
        if (!Q4)
                return vreinterpretq_s8_u8(veorq_u8(vld1q_u8(q + 64 * j + 16 * k), vdupq_n_u8(0x80)));
        uint8x16_t raw = vld1q_u8(q + 64 * (j & 3) + 16 * k);
        uint8x16_t nib = j < 4 ? vandq_u8(raw, vdupq_n_u8(0x0F)) : vshrq_n_u8(raw, 4);
        return vsubq_s8(vreinterpretq_s8_u8(nib), vdupq_n_s8(8));
}

/* The scales of blocks [0, nb) of a group (d: at the pass's first block) against the block sums
 * of nv vectors that x16_tile() left in sums: y[v * ldy + i] for the 16 rows, added to what y
 * holds when add (the passes after the first). */
static inline __attribute__((always_inline)) void x16_finish(const uint8_t *d, size_t nb, const float *dx, size_t dld,
                                                             int nv, float *y, size_t ldy, bool add,
                                                             const float *sums) {
        float32x4_t f[X16_TILE][4];
        for (int v = 0; v < nv; v++)
                for (int k = 0; k < 4; k++)
                        f[v][k] = vdupq_n_f32(0.f);
        const float *sp = sums;
        for (size_t b = 0; b < nb; b++) {
                float32x4_t dw[4];
                for (int k = 0; k < 4; k++)
                        dw[k] = vcvt_f32_f16(vreinterpret_f16_u8(vld1_u8(d + 32 * b + 8 * k)));
                for (int v = 0; v < nv; v++, sp += 16) {
                        float s = dx[v * dld + b];
                        for (int k = 0; k < 4; k++)
                                f[v][k] = vfmaq_f32(f[v][k], vld1q_f32(sp + 4 * k), vmulq_n_f32(dw[k], s));
                }
        }
        for (int v = 0; v < nv; v++) {
                float *yv = y + v * ldy;
                for (int k = 0; k < 4; k++) {
                        if (add)
                                f[v][k] = vaddq_f32(f[v][k], vld1q_f32(yv + 4 * k));
                        vst1q_f32(yv + 4 * k, f[v][k]);
                }
        }
}

/* Whole groups with the int8 tiles; the rows of a partial group at either end (only callers other
 * than the threaded wrappers split groups) and the vectors with a non-finite activation (IEEE
 * result) go to the scalar kernel. Vectors in chunks of Q16_VC, columns in passes that fit the
 * stack buffers (Q16_XBYTES / chunk columns: 16384 for one vector, 512 for 32). */
static void x16_matmul(DType t, const void *w, size_t rb, size_t K, const float *x, size_t ldx, size_t n_vec, float *y,
                       size_t ldy, size_t r0, size_t r1) {
        size_t g0, g1;
        if (!x16_split_groups(t, w, rb, K, x, ldx, n_vec, y, ldy, r0, r1, &g0, &g1))
                return;

        _Alignas(16) int8_t xs[Q16_XBYTES];
        _Alignas(16) float sums[Q16_SUMS];
        float dx[Q16_XBYTES / QK];
        bool q4 = t == DTYPE_Q4_0X16;
        size_t nb = K / QK, G = 16 * rb, so = x16_scales_offset(q4, K), QB = x16_block_quant_bytes(q4);
        const uint8_t *wb = w;
        for (size_t v0 = 0; v0 < n_vec; v0 += Q16_VC) {
                /* pb blocks x vc vectors fill xs; a tile's sums take pb x (at most vc) blocks of 16 */
                size_t vc = x16_min(Q16_VC, n_vec - v0), pb = Q16_XBYTES / QK / vc;
                uint32_t bad = 0; /* vectors with a non-finite activation */
                _Static_assert(Q16_VC <= 32, "bad is a 32-bit mask");
                for (size_t b0 = 0; b0 < nb; b0 += pb) {
                        size_t pn = x16_min(pb, nb - b0), xld = pn * QK;
                        for (size_t v = 0; v < vc; v++) {
                                int8_t *s = xs + v * xld;
                                if (!(bad >> v & 1) && x16_quantize(x + (v0 + v) * ldx + b0 * QK, xld, s, dx + v * pn))
                                        continue;
                                bad |= (uint32_t)1 << v;
                                memset(s, 0, xld);
                                memset(dx + v * pn, 0, pn * sizeof(float));
                        }
                        for (size_t g = g0; g < g1; g++) {
                                const uint8_t *grp = wb + g * G;
                                for (size_t v = 0; v < vc; v += X16_TILE)
                                        x16_tile((int)x16_min(X16_TILE, vc - v), grp + QB * b0, grp + so + 32 * b0, pn,
                                                 xs + v * xld, dx + v * pn, xld, pn, q4, y + (v0 + v) * ldy + 16 * g,
                                                 ldy, b0 > 0, sums);
                        }
                }
                for (; bad; bad &= bad - 1) {
                        size_t v = v0 + (size_t)__builtin_ctz(bad);
                        matmul_x16_generic(t, w, rb, K, x + v * ldx, K, 1, y + v * ldy, 0, 16 * g0, 16 * g1);
                }
        }
}
