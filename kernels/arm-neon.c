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

/* ---- Q8_0X16 and Q4_0X16 (16 rows interleaved, kernels/quant.h) in integers ----
 * x is quantized per call to int8 blocks of 32 (scale amax/127, rounding to nearest even: the x86
 * integer kernels' rounding and error bound). A 16-byte load of a line holds 4 bytes of 4 rows; a
 * 4-byte broadcast of x meets all of them (vmull_s8 of the low / high halves: 2 rows x 4 products
 * each). Two lines go into one int16 product (2 x 127 x 127 fits; three would not) before the
 * pairwise add into int32, so a block of 16 rows costs 8 multiplies, 8 multiply-adds and 8 pairwise
 * adds per vector; baseline armv8-a, no dot-product extension. Several vectors share each weight
 * load. The block sums of a group wait (as floats) until its quants are done, and only then meet
 * the scales, so that the group is read in address order (quants, then scales; see x86-avx2-kernels.h).
 * Q4_0X16 runs the same loop over 8 "lines" of a block too: line j < 4 is the low nibbles of the
 * stored line j, line j >= 4 the high nibbles of line j - 4 (elements 4j.. of the block either way),
 * made signed by subtracting the +8. */
#define Q16_XBYTES 16384                /* stack: int8 x of a column pass */
#define Q16_VC 32                       /* vectors quantized together: each weight byte is read once per 32 vectors */
#define Q16_TILE 2                      /* vectors per pass over a group: 8 int32x4 accumulators each */
#define Q16_SUMS (Q16_XBYTES / QK * 16) /* stack: the block sums of a tile (blocks x vectors <= 512) */

/* Returns false when x has a non-finite value (the scalar kernel then gives the IEEE result). */
static bool q8_0x16_quantize_neon(const float *x, size_t K, int8_t *xq, float *dx) {
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
static inline __attribute__((always_inline)) int8x16_t x16_line_neon(const uint8_t *q, int j, int k, const int Q4) {
        if (!Q4)
                return vreinterpretq_s8_u8(veorq_u8(vld1q_u8(q + 64 * j + 16 * k), vdupq_n_u8(0x80)));
        uint8x16_t raw = vld1q_u8(q + 64 * (j & 3) + 16 * k);
        uint8x16_t nib = j < 4 ? vandq_u8(raw, vdupq_n_u8(0x0F)) : vshrq_n_u8(raw, 4);
        return vsubq_s8(vreinterpretq_s8_u8(nib), vdupq_n_s8(8));
}

/* Blocks [0, nb) of a group (q: its quants, d: its scales, both at the pass's first block) against
 * nv vectors (xs/dx: a vector every xld bytes / dld scales): y[v * ldy + i] for its 16 rows, added
 * to what y holds when add (the passes after the first). */
static inline __attribute__((always_inline)) void x16_tile_neon(const uint8_t *q, const uint8_t *d, size_t nb,
                                                                const int8_t *xs, const float *dx, size_t xld,
                                                                size_t dld, int nv, const int Q4, float *y, size_t ldy,
                                                                bool add, float *sums) {
        const size_t QB = x16_block_quant_bytes(Q4);
        float *sp = sums;
        for (size_t b = 0; b < nb; b++, q += QB, xs += QK) {
                /* [vector][rows 4k..4k+3][rows 4k, 4k+1 | 4k+2, 4k+3]: pairwise sums of 2 products */
                int32x4_t acc[Q16_TILE][4][2];
                for (int v = 0; v < nv; v++)
                        for (int k = 0; k < 4; k++)
                                acc[v][k][0] = acc[v][k][1] = vdupq_n_s32(0);
                for (int j = 0; j < 8; j += 2) {
                        int8x16_t x0[Q16_TILE], x1[Q16_TILE];
                        for (int v = 0; v < nv; v++) {
                                x0[v] = vreinterpretq_s8_u32(vdupq_n_u32(load_u32(xs + v * xld + 4 * j)));
                                x1[v] = vreinterpretq_s8_u32(vdupq_n_u32(load_u32(xs + v * xld + 4 * j + 4)));
                        }
                        for (int k = 0; k < 4; k++) {
                                int8x16_t w0 = x16_line_neon(q, j, k, Q4), w1 = x16_line_neon(q, j + 1, k, Q4);
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
        float32x4_t f[Q16_TILE][4];
        for (int v = 0; v < nv; v++)
                for (int k = 0; k < 4; k++)
                        f[v][k] = vdupq_n_f32(0.f);
        sp = sums;
        for (size_t b = 0; b < nb; b++) {
                float32x4_t dw[4];
                for (int k = 0; k < 4; k++)
                        dw[k] = load_f16(d + 32 * b + 8 * k);
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

/* One instance per vector count, so that the accumulators stay in registers. */
#define DEFINE_X16_TILE_NEON(n)                                                                                        \
        static void x16_tile##n##_neon(const uint8_t *q, const uint8_t *d, size_t nb, const int8_t *xs,                \
                                       const float *dx, size_t xld, size_t dld, bool q4, float *y, size_t ldy,         \
                                       bool add, float *sums) {                                                        \
                if (q4)                                                                                                \
                        x16_tile_neon(q, d, nb, xs, dx, xld, dld, n, 1, y, ldy, add, sums);                            \
                else                                                                                                   \
                        x16_tile_neon(q, d, nb, xs, dx, xld, dld, n, 0, y, ldy, add, sums);                            \
        }
DEFINE_X16_TILE_NEON(1)
DEFINE_X16_TILE_NEON(2)
_Static_assert(Q16_TILE == 2, "the tile instances are for 1-2 vectors");

/* Whole groups with the int8 tiles; the rows of a partial group at either end (only callers other
 * than the threaded wrappers split groups) and the vectors with a non-finite activation (IEEE
 * result) go to the scalar kernel. Vectors in chunks of Q16_VC, columns in passes that fit the
 * stack buffers (Q16_XBYTES / chunk columns: 16384 for one vector, 512 for 32). */
static void matmul_x16_neon(DType t, const void *w, size_t rb, size_t K, const float *x, size_t ldx, size_t n_vec,
                            float *y, size_t ldy, size_t r0, size_t r1) {
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
                size_t vc = FN(min_sz)(Q16_VC, n_vec - v0), pb = Q16_XBYTES / QK / vc;
                uint32_t bad = 0; /* vectors with a non-finite activation */
                _Static_assert(Q16_VC <= 32, "bad is a 32-bit mask");
                for (size_t b0 = 0; b0 < nb; b0 += pb) {
                        size_t pn = FN(min_sz)(pb, nb - b0), xld = pn * QK;
                        for (size_t v = 0; v < vc; v++) {
                                int8_t *s = xs + v * xld;
                                if (!(bad >> v & 1) &&
                                    q8_0x16_quantize_neon(x + (v0 + v) * ldx + b0 * QK, xld, s, dx + v * pn))
                                        continue;
                                bad |= (uint32_t)1 << v;
                                memset(s, 0, xld);
                                memset(dx + v * pn, 0, pn * sizeof(float));
                        }
                        for (size_t g = g0; g < g1; g++) {
                                const uint8_t *grp = wb + g * G;
                                for (size_t v = 0; v < vc; v += Q16_TILE) {
                                        float *yv = y + (v0 + v) * ldy + 16 * g;
                                        if (v + 1 < vc)
                                                x16_tile2_neon(grp + QB * b0, grp + so + 32 * b0, pn, xs + v * xld,
                                                               dx + v * pn, xld, pn, q4, yv, ldy, b0 > 0, sums);
                                        else
                                                x16_tile1_neon(grp + QB * b0, grp + so + 32 * b0, pn, xs + v * xld,
                                                               dx + v * pn, xld, pn, q4, yv, ldy, b0 > 0, sums);
                                }
                        }
                }
                for (; bad; bad &= bad - 1) {
                        size_t v = v0 + (size_t)__builtin_ctz(bad);
                        matmul_x16_generic(t, w, rb, K, x + v * ldx, K, 1, y + v * ldy, 0, 16 * g0, 16 * g1);
                }
        }
}

DEFINE_X16_ENTRIES(matmul_x16_neon, neon)

void kernels_fill_neon(Kernels *k) {
        simd_fill(k);
        x16_fill_neon(k);
}
