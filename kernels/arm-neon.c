/* arm-neon.c: AArch64 Advanced SIMD kernels (4 lanes; NEON is mandatory on AArch64, so the table
 * is always usable there). The code is simd-template.h; this file supplies the vector helpers. */
#include <arm_neon.h>
#include <math.h>

#include "kernels/kernels-internal.h"

#define ISA_NAME "neon"
#define FN(name) name##_neon
#define VL 4
#define MM_R 4 /* 32 registers: 4 rows x 6 vectors = 24 accumulators */
#define MM_V 6
#define SIMD_OWN_BLOCK_DECODERS 1

typedef float32x4_t VEC;

static inline VEC vzero(void) {
        return vdupq_n_f32(0.f);
}
static inline VEC vset1(float f) {
        return vdupq_n_f32(f);
}
static inline VEC vload(const float *p) {
        return vld1q_f32(p);
}
static inline void vstore(float *p, VEC v) {
        vst1q_f32(p, v);
}
static inline VEC vadd(VEC a, VEC b) {
        return vaddq_f32(a, b);
}
static inline VEC vsub(VEC a, VEC b) {
        return vsubq_f32(a, b);
}
static inline VEC vmul(VEC a, VEC b) {
        return vmulq_f32(a, b);
}
static inline VEC vfma(VEC a, VEC b, VEC c) {
        return vfmaq_f32(c, a, b);
}
/* min/max return NaN when either operand is NaN (vexp passes NaN through) */
static inline VEC vmin(VEC a, VEC b) {
        return vminq_f32(a, b);
}
static inline VEC vmax(VEC a, VEC b) {
        return vmaxq_f32(a, b);
}
static inline VEC vdiv(VEC a, VEC b) {
        return vdivq_f32(a, b);
}
static inline VEC vround(VEC a) {
        return vrndnq_f32(a);
}
/* 2^n for integral n in [-126, 127] */
static inline VEC vpow2i(VEC n) {
        return vreinterpretq_f32_s32(vshlq_n_s32(vaddq_s32(vcvtq_s32_f32(n), vdupq_n_s32(127)), 23));
}
/* a < b ? x : y per lane, acc + (a < b ? x : 0), and the lanes where a < b as bits (false where a or
 * b is NaN) */
static inline VEC vlt_sel(VEC a, VEC b, VEC x, VEC y) {
        return vbslq_f32(vcltq_f32(a, b), x, y);
}
static inline VEC vadd_lt(VEC acc, VEC a, VEC b, VEC x) {
        return vaddq_f32(acc, vreinterpretq_f32_u32(vandq_u32(vcltq_f32(a, b), vreinterpretq_u32_f32(x))));
}
static inline unsigned vlt_mask(VEC a, VEC b) {
        static const uint32_t bit[4] = { 1, 2, 4, 8 };
        return vaddvq_u32(vandq_u32(vcltq_f32(a, b), vld1q_u32(bit)));
}
static inline float vhsum(VEC v) {
        return vaddvq_f32(v);
}
/* out[0..3] = the sums of a, b, c and d */
static inline void vhsum4(VEC a, VEC b, VEC c, VEC d, float *out) {
        vst1q_f32(out, vpaddq_f32(vpaddq_f32(a, b), vpaddq_f32(c, d)));
}
static inline VEC vloadn(const float *p, size_t n) {
        float tmp[VL] = { 0 };
        memcpy(tmp, p, n * sizeof(float));
        return vld1q_f32(tmp);
}
/* Byte loads: rows of 16-bit elements need not be 2-byte aligned inside a mapped file. */
static inline VEC load_f16(const void *p) {
        return vcvt_f32_f16(vreinterpret_f16_u8(vld1_u8(p)));
}
static inline VEC load_bf16(const void *p) {
        return vreinterpretq_f32_u32(vshll_n_u16(vreinterpret_u16_u8(vld1_u8(p)), 16));
}
static inline float scalar_f16(const void *p) {
        __fp16 h;
        memcpy(&h, p, sizeof(h));
        return (float)h;
}
static inline void i8x16_to_vecs(int8x16_t v, VEC *out) {
        int16x8_t lo = vmovl_s8(vget_low_s8(v)), hi = vmovl_high_s8(v);
        out[0] = vcvtq_f32_s32(vmovl_s16(vget_low_s16(lo)));
        out[1] = vcvtq_f32_s32(vmovl_high_s16(lo));
        out[2] = vcvtq_f32_s32(vmovl_s16(vget_low_s16(hi)));
        out[3] = vcvtq_f32_s32(vmovl_high_s16(hi));
}
static inline void block_q8_0_neon(const uint8_t *q, VEC *out) {
        i8x16_to_vecs(vreinterpretq_s8_u8(vld1q_u8(q)), out);
        i8x16_to_vecs(vreinterpretq_s8_u8(vld1q_u8(q + 16)), out + 4);
}
static inline void block_q4_0_neon(const uint8_t *qs, VEC *out) {
        uint8x16_t v = vld1q_u8(qs);
        int8x16_t m8 = vdupq_n_s8(8);
        int8x16_t lo = vsubq_s8(vreinterpretq_s8_u8(vandq_u8(v, vdupq_n_u8(0x0f))), m8);
        int8x16_t hi = vsubq_s8(vreinterpretq_s8_u8(vshrq_n_u8(v, 4)), m8);
        i8x16_to_vecs(lo, out);
        i8x16_to_vecs(hi, out + 4);
}

#include "kernels/simd-template.h"

/* ---- Q8_0X16 and Q4_0X16 in integers (arm-neon-x16.h), baseline armv8-a ----
 * A 4-byte broadcast of x meets the 4 rows of a line (vmull_s8 of the low / high halves: 2 rows x 4
 * products each). Two lines go into one int16 product (2 x 127 x 127 fits; three would not) before
 * the pairwise add into int32, so a block of 16 rows costs 8 multiplies, 8 multiply-adds and 8
 * pairwise adds per vector. Several vectors share each weight load. CPUs with the dot-product
 * extension run arm-neon-dotprod.c instead (the neon-dotprod table). */
#define X16_TILE 2 /* vectors per pass over a group: 8 int32x4 accumulators each */
#include "kernels/arm-neon-x16.h"

static inline __attribute__((always_inline)) void x16_tile_mull(const uint8_t *q, const uint8_t *d, size_t nb,
                                                                const int8_t *xs, const float *dx, size_t xld,
                                                                size_t dld, int nv, const int Q4, float *y, size_t ldy,
                                                                bool add, float *sums) {
        const size_t QB = x16_block_quant_bytes(Q4);
        float *sp = sums;
        for (size_t b = 0; b < nb; b++, q += QB, xs += QK) {
                /* [vector][rows 4k..4k+3][rows 4k, 4k+1 | 4k+2, 4k+3]: pairwise sums of 2 products */
                int32x4_t acc[X16_TILE][4][2];
                for (int v = 0; v < nv; v++)
                        for (int k = 0; k < 4; k++)
                                acc[v][k][0] = acc[v][k][1] = vdupq_n_s32(0);
                for (int j = 0; j < 8; j += 2) {
                        int8x16_t x0[X16_TILE], x1[X16_TILE];
                        for (int v = 0; v < nv; v++) {
                                x0[v] = vreinterpretq_s8_u32(vdupq_n_u32(load_u32(xs + v * xld + 4 * j)));
                                x1[v] = vreinterpretq_s8_u32(vdupq_n_u32(load_u32(xs + v * xld + 4 * j + 4)));
                        }
                        for (int k = 0; k < 4; k++) {
                                int8x16_t w0 = x16_line(q, j, k, Q4), w1 = x16_line(q, j + 1, k, Q4);
                                for (int v = 0; v < nv; v++) {
                                        int16x8_t lo = vmull_s8(vget_low_s8(w0), vget_low_s8(x0[v]));
                                        lo = vmlal_s8(lo, vget_low_s8(w1), vget_low_s8(x1[v]));
                                        int16x8_t hi = vmull_high_s8(w0, x0[v]);
                                        hi = vmlal_high_s8(hi, w1, x1[v]);
                                        acc[v][k][0] = vpadalq_s16(acc[v][k][0], lo);
                                        acc[v][k][1] = vpadalq_s16(acc[v][k][1], hi);
                                }
                        }
                }
                for (int v = 0; v < nv; v++, sp += 16)
                        for (int k = 0; k < 4; k++)
                                vst1q_f32(sp + 4 * k, vcvtq_f32_s32(vpaddq_s32(acc[v][k][0], acc[v][k][1])));
        }
        x16_finish(d, nb, dx, dld, nv, y, ldy, add, sums);
}

/* One instance per vector count and type, so that the accumulators stay in registers. */
static void x16_tile(int nv, const uint8_t *q, const uint8_t *d, size_t nb, const int8_t *xs, const float *dx,
                     size_t xld, size_t dld, bool q4, float *y, size_t ldy, bool add, float *sums) {
        _Static_assert(X16_TILE == 2, "the tile instances are for 1-2 vectors");
        if (nv == 2 && q4)
                x16_tile_mull(q, d, nb, xs, dx, xld, dld, 2, 1, y, ldy, add, sums);
        else if (nv == 2)
                x16_tile_mull(q, d, nb, xs, dx, xld, dld, 2, 0, y, ldy, add, sums);
        else if (q4)
                x16_tile_mull(q, d, nb, xs, dx, xld, dld, 1, 1, y, ldy, add, sums);
        else
                x16_tile_mull(q, d, nb, xs, dx, xld, dld, 1, 0, y, ldy, add, sums);
}

DEFINE_X16_ENTRIES(x16_matmul, neon)

void kernels_fill_neon(Kernels *k) {
        simd_fill(k);
        x16_fill_neon(k);
}
