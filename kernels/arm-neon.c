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
static inline float vhsum(VEC v) {
        return vaddvq_f32(v);
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

void kernels_fill_neon(Kernels *k) {
        simd_fill(k);
}
