/* x86-avx2-kernels.h: the AVX2 + FMA + F16C table (8 lanes), included by the files that build it:
 * x86-avx2.c (the int8 dot products with maddubs / madd) and x86-avx2vnni*.c (with 256-bit vpdpbusd,
 * AVX2_DPBUSD). Each defines ISA_NAME, FN(name) (the names' suffix) and ISA_SFX (the same suffix as a
 * token) first, and is built with its own flags and entered only when cpu.c found the CPU and the OS
 * support them. Most of the code is simd-template.h; here are the grouped types (Q8_0X16, Q4_0X16)
 * in integers, and the Q8_0 and Q4_0 matmuls that run through copies into their groups. */
#include <immintrin.h>
#include <math.h>

#include "kernels/kernels-internal.h"
#include "kernels/x86-x16-copy.h"

#if !defined(ISA_NAME) || !defined(FN) || !defined(ISA_SFX)
#error "define ISA_NAME, FN and ISA_SFX before including x86-avx2-kernels.h"
#endif
#define VL 8
#ifndef MM_R
#define MM_R 3 /* matmul register tile: 3 rows x 4 vectors = 12 accumulators of 16 */
#define MM_V 4
#endif
#ifndef SM_R
/* batched decode of float weights (the stream tiles of simd-template.h): 3 rows x 4 vectors, 12
 * accumulators + 3 weight rows + x in the 16 registers. Before, 2-16 vectors went through the tiled
 * f32 matmul, whose decoding into a buffer is paid per call: one thread, 4096 x 1024 f16 streamed,
 * 2 vectors 684-716 -> 359-366 us, 8: 1105-1146 -> 773-784; 2048 x 1024 f32 8: 684 -> 499, bf16
 * 494 -> 412 (2 x 4 measured slower: 8 vectors 1496 us) */
#define SM_R 3
#define SM_V 4
#endif

typedef __m256 VEC;

static inline VEC vzero(void) {
        return _mm256_setzero_ps();
}
static inline VEC vset1(float f) {
        return _mm256_set1_ps(f);
}
static inline VEC vload(const float *p) {
        return _mm256_loadu_ps(p);
}
static inline void vstore(float *p, VEC v) {
        _mm256_storeu_ps(p, v);
}
static inline VEC vadd(VEC a, VEC b) {
        return _mm256_add_ps(a, b);
}
static inline VEC vsub(VEC a, VEC b) {
        return _mm256_sub_ps(a, b);
}
static inline VEC vmul(VEC a, VEC b) {
        return _mm256_mul_ps(a, b);
}
static inline VEC vfma(VEC a, VEC b, VEC c) {
        return _mm256_fmadd_ps(a, b, c);
}
/* min/max return their SECOND operand when either is NaN (vexp relies on it to pass NaN through) */
static inline VEC vmin(VEC a, VEC b) {
        return _mm256_min_ps(a, b);
}
static inline VEC vmax(VEC a, VEC b) {
        return _mm256_max_ps(a, b);
}
static inline VEC vdiv(VEC a, VEC b) {
        return _mm256_div_ps(a, b);
}
static inline VEC vround(VEC a) {
        return _mm256_round_ps(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
}
/* 2^n for integral n in [-126, 127] */
static inline VEC vpow2i(VEC n) {
        return _mm256_castsi256_ps(
                _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23));
}
/* a < b ? x : y per lane, acc + (a < b ? x : 0), and the lanes where a < b as bits (false where a or
 * b is NaN) */
static inline VEC vlt_sel(VEC a, VEC b, VEC x, VEC y) {
        return _mm256_blendv_ps(y, x, _mm256_cmp_ps(a, b, _CMP_LT_OQ));
}
static inline VEC vadd_lt(VEC acc, VEC a, VEC b, VEC x) {
        return _mm256_add_ps(acc, _mm256_and_ps(_mm256_cmp_ps(a, b, _CMP_LT_OQ), x));
}
static inline unsigned vlt_mask(VEC a, VEC b) {
        return (unsigned)_mm256_movemask_ps(_mm256_cmp_ps(a, b, _CMP_LT_OQ));
}
static inline float vhsum(VEC v) {
        __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
        s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        s = _mm_add_ss(s, _mm_movehdup_ps(s));
        return _mm_cvtss_f32(s);
}
/* out[0..3] = the sums of a, b, c and d (11 instructions where four vhsum take 24) */
static inline void vhsum4(VEC a, VEC b, VEC c, VEC d, float *out) {
        __m256 t = _mm256_hadd_ps(_mm256_hadd_ps(a, b), _mm256_hadd_ps(c, d));
        _mm_storeu_ps(out, _mm_add_ps(_mm256_castps256_ps128(t), _mm256_extractf128_ps(t, 1)));
}
/* The first n (< VL) floats, zeros after: never reads past p + n. */
static inline VEC vloadn(const float *p, size_t n) {
        const __m256i iota = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
        __m256i m = _mm256_cmpgt_epi32(_mm256_set1_epi32((int)n), iota);
        return _mm256_maskload_ps(p, m);
}
static inline VEC load_f16(const void *p) {
        return _mm256_cvtph_ps(_mm_loadu_si128(p));
}
static inline VEC load_bf16(const void *p) {
        return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128(p)), 16));
}
static inline float scalar_f16(const void *p) {
        return _cvtsh_ss(load_u16(p));
}
/* 16 int8 lanes to 16/VL float vectors. */
static inline void i8x16_to_vecs(__m128i v, VEC *out) {
        out[0] = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(v));
        out[1] = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(v, 8)));
}

/* Sums of 4 adjacent byte products |x| * w (no int16 overflow: |x|, |w| <= 127) into 8 int32. */
#ifdef AVX2_DPBUSD
#define AVX2_VNNI 1
static inline __m256i i8dot32(__m256i xa, __m256i ws) {
        return AVX2_DPBUSD(_mm256_setzero_si256(), xa, ws);
}
#else
#define AVX2_VNNI 0
static inline __m256i i8dot32(__m256i xa, __m256i ws) {
        return _mm256_madd_epi16(_mm256_maddubs_epi16(xa, ws), _mm256_set1_epi16(1));
}
#endif
#define SIMD_INT8_MATVEC 1

#include "kernels/simd-template.h"

/* ---- Q8_0X16 and Q4_0X16 (16 rows interleaved, kernels/quant.h) in integers ----
 * x is quantized like the integer q8_0 matvec (quantize_x: blocks of 32, scale amax/127, the same
 * error bound) and kept twice, signed and absolute. A 32-byte load of a line holds 4 bytes of 8 rows;
 * a 4-byte broadcast of x meets all of them, so a group costs no horizontal sums and no shuffles:
 * per load an xor (stored +128 to signed), a sign transfer onto the weights (maddubs wants its
 * unsigned operand to be |x|), maddubs, madd and an add, 8 rows at a time. int16 pairs cannot be
 * added before the madd (2 * 2 * 127 * 127 overflows). Several vectors share each weight load.
 *
 * The block sums of a group are kept (as floats) until its quants are done and only then scaled:
 * reading the scales block by block, 12 KB ahead of the quants (0.1B), made the hardware prefetcher
 * lose the stream at every group and halved the matvec's bandwidth (11 against 24 GB/s from memory
 * on Zen 4; software prefetch did not recover it).
 *
 * Q4_0X16: a mask and a shift of a 32-byte load give the stored nibbles (the weights + 8, 0..15) of
 * elements 4j.. and 16+4j.. of the block for 8 rows; they are maddubs's unsigned operand as they
 * are, against the signed x, so there is no sign transfer. A block's 8 int16 products of a row pair
 * add up in int16 (8 x 2 x 15 x 127 = 30480 fits) before one madd into int32, and the bias
 * (8 x the block's sum of x, computed per call) is subtracted there.
 *
 * With vpdpbusd (AVX2_DPBUSD) both take the stored bytes as the unsigned operand against the signed
 * x, straight into int32 from minus the bias (128 or 8 x the block's sum of x): one instruction per
 * line half and vector for Q8_0X16 instead of a sign transfer, maddubs, madd and add; two for
 * Q4_0X16 instead of two maddubs and two int16 adds. The integer sums are the same, so are the
 * results (kernels/tests/test-kernels.c compares the two tables bit for bit).
 *
 * The loops over the vectors carry explicit unroll pragmas: without them gcc kept them rolled, each
 * accumulator in memory (a load and a store around every multiply-add). One thread, 3072 x 768 in
 * cache, us: Q8_0X16 8 vectors 363 -> 328, 16 722 -> 614; Q4_0X16 16 487 -> 440; with vpdpbusd
 * (on Zen 4, EVEX) Q8_0X16 8 vectors 331 before the pragmas, 122 after. */
#define Q16_XBYTES 16384 /* stack: int8 x of a column pass, as many bytes of |x| */
#define Q16_VC 32        /* vectors quantized together: each weight byte is read once per 32 vectors */
#ifndef Q16_TILE
#define Q16_TILE 4 /* vectors per pass over a group: 2 int accumulators each (5 spill) */
#endif
/* stack: the block sums of a tile, blocks x vectors <= Q16_XBYTES / QK (see FN(x16_run)) */
#define Q16_SUMS (Q16_XBYTES / QK * 16)

/* What a tile prefetches for the group after it, one share per block: the next group's lines (q:
 * its quants, d: its scales, both at the pass's first block), or, for copies of Q8_0/Q4_0 rows
 * (rows), what the next copy reads of its 16 rows: qb bytes of quants a block from q + i * rb and
 * dseg bytes of scales at d + i * rb for row i. */
typedef struct X16Pf {
        const uint8_t *q, *d;
        bool rows;
        size_t rb, qb, dseg;
} X16Pf;

static inline __attribute__((always_inline)) void x16_prefetch(const X16Pf *pf, size_t b, size_t QB) {
        /* into L2 (prefetcht1): into L1 the q8_0x16 tiles of 6-8 vectors ran 8-12% slower (one
         * thread, 4096 x 1024 streamed: 8 vectors 751-776 against 668-679 us), the copies up to 25% */
        if (!pf->rows) {
                for (size_t o = 0; o < QB; o += 64)
                        __builtin_prefetch(pf->q + QB * b + o, 0, 2);
                if (b % 2 == 0)
                        __builtin_prefetch(pf->d + 32 * b, 0, 2);
                return;
        }
        /* block b's bytes of each row (every line of a row's segment holds the start of a block's
         * 16 or 32 bytes), and row b's scales */
        for (size_t i = 0; i < 16; i++)
                __builtin_prefetch(pf->q + i * pf->rb + pf->qb * b, 0, 2);
        for (size_t o = 0; b < 16 && o < pf->dseg; o += 64)
                __builtin_prefetch(pf->d + b * pf->rb + o, 0, 2);
}

/* The grouped tiles' int8 products, with or without vpdpbusd (see above). A Q4_0X16 accumulator
 * starts at q4x16_start(c) (c: minus 8 x the block's sum of x) and q4x16_end gives its int32 sums;
 * a Q8_0X16 one starts at q8x16_start(c) (c: minus 128 x that sum, with vpdpbusd only) and is int32
 * throughout. wq: a line half as stored; s / xa: 4 bytes of x and of |x|, broadcast. */
#ifdef AVX2_DPBUSD
static inline __m256i FN(q4x16_start)(int32_t c) {
        return _mm256_set1_epi32(c);
}
static inline __m256i FN(q4x16_acc)(__m256i a, __m256i l, __m256i xl, __m256i h, __m256i xh) {
        return AVX2_DPBUSD(AVX2_DPBUSD(a, l, xl), h, xh);
}
static inline __m256i FN(q4x16_end)(__m256i a, int32_t c) {
        return a;
}
static inline __m256i FN(q8x16_start)(int32_t c) {
        return _mm256_set1_epi32(c);
}
static inline __m256i FN(q8x16_acc)(__m256i a, __m256i wq, __m256i s, __m256i xa) {
        return AVX2_DPBUSD(a, wq, s);
}
#else
static inline __m256i FN(q4x16_start)(int32_t c) {
        return _mm256_setzero_si256();
}
static inline __m256i FN(q4x16_acc)(__m256i a, __m256i l, __m256i xl, __m256i h, __m256i xh) {
        return _mm256_add_epi16(a, _mm256_add_epi16(_mm256_maddubs_epi16(l, xl), _mm256_maddubs_epi16(h, xh)));
}
static inline __m256i FN(q4x16_end)(__m256i a, int32_t c) {
        return _mm256_add_epi32(_mm256_madd_epi16(a, _mm256_set1_epi16(1)), _mm256_set1_epi32(c));
}
static inline __m256i FN(q8x16_start)(int32_t c) {
        return _mm256_setzero_si256();
}
static inline __m256i FN(q8x16_acc)(__m256i a, __m256i wq, __m256i s, __m256i xa) {
        __m256i w = _mm256_xor_si256(wq, _mm256_set1_epi8((char)0x80)); /* stored +128 to signed */
        return _mm256_add_epi32(a, i8dot32(xa, _mm256_sign_epi8(w, s)));
}
#endif

/* The sums of block b of a Q4_0X16 group against nv vectors (xc: minus 8 x each block's sum of x,
 * a vector every dld blocks) to sp, 16 floats a vector. */
static inline __attribute__((always_inline)) void
FN(q4_0x16_block)(const uint8_t *q, const int8_t *xs, const int32_t *xc, size_t xld, size_t dld, int nv, float *sp) {
        const __m256i m = _mm256_set1_epi8(0x0F);
        __m256i a0[Q16_TILE], a1[Q16_TILE];
#pragma GCC unroll 4
        for (int v = 0; v < nv; v++)
                a0[v] = a1[v] = FN(q4x16_start)(xc[v * dld]);
#pragma GCC unroll 8
        for (int j = 0; j < 4; j++) {
                __m256i w0 = _mm256_loadu_si256((const __m256i *)(q + 64 * j));
                __m256i w1 = _mm256_loadu_si256((const __m256i *)(q + 64 * j + 32));
                __m256i l0 = _mm256_and_si256(w0, m), h0 = _mm256_and_si256(_mm256_srli_epi16(w0, 4), m);
                __m256i l1 = _mm256_and_si256(w1, m), h1 = _mm256_and_si256(_mm256_srli_epi16(w1, 4), m);
#pragma GCC unroll 4
                for (int v = 0; v < nv; v++) {
                        __m256i xl = _mm256_set1_epi32((int)load_u32(xs + v * xld + 4 * j));
                        __m256i xh = _mm256_set1_epi32((int)load_u32(xs + v * xld + 16 + 4 * j));
                        a0[v] = FN(q4x16_acc)(a0[v], l0, xl, h0, xh);
                        a1[v] = FN(q4x16_acc)(a1[v], l1, xl, h1, xh);
                }
        }
#pragma GCC unroll 4
        for (int v = 0; v < nv; v++, sp += 16) {
                _mm256_store_ps(sp, _mm256_cvtepi32_ps(FN(q4x16_end)(a0[v], xc[v * dld])));
                _mm256_store_ps(sp + 8, _mm256_cvtepi32_ps(FN(q4x16_end)(a1[v], xc[v * dld])));
        }
}

/* Blocks [0, nb) of a group (q: its quants, d: its scales, both at the pass's first block) against
 * nv vectors (xs/xa/dx: a vector every xld bytes / dld scales; xc for Q4_0X16, and for Q8_0X16 with
 * vpdpbusd, see above):
 * y[v * ldy + i] for its 16 rows, added to what y holds when add (the passes after the first). */
static inline __attribute__((always_inline)) void FN(x16_tile)(const uint8_t *q, const uint8_t *d, size_t nb,
                                                               const int8_t *xs, const uint8_t *xa, const int32_t *xc,
                                                               const float *dx, size_t xld, size_t dld, int nv,
                                                               const int Q4, float *y, size_t ldy, bool add,
                                                               float *sums, const X16Pf *pf) {
        const size_t QB = x16_block_quant_bytes(Q4);
        float *sp = sums;
        for (size_t b = 0; b < nb; b++, q += QB, xs += QK, xa += QK) {
                if (pf)
                        x16_prefetch(pf, b, QB);
                if (Q4) {
                        FN(q4_0x16_block)(q, xs, xc + b, xld, dld, nv, sp);
                        sp += 16 * nv;
                        continue;
                }
                __m256i i0[Q16_TILE], i1[Q16_TILE];
#pragma GCC unroll 4
                for (int v = 0; v < nv; v++)
                        i0[v] = i1[v] = FN(q8x16_start)(AVX2_VNNI ? xc[b + v * dld] : 0);
#pragma GCC unroll 8
                for (int j = 0; j < 8; j++) {
                        __m256i w0 = _mm256_loadu_si256((const __m256i *)(q + 64 * j));
                        __m256i w1 = _mm256_loadu_si256((const __m256i *)(q + 64 * j + 32));
#pragma GCC unroll 4
                        for (int v = 0; v < nv; v++) {
                                __m256i s = _mm256_set1_epi32((int)load_u32(xs + v * xld + 4 * j));
                                __m256i a = _mm256_set1_epi32((int)load_u32(xa + v * xld + 4 * j));
                                i0[v] = FN(q8x16_acc)(i0[v], w0, s, a);
                                i1[v] = FN(q8x16_acc)(i1[v], w1, s, a);
                        }
                }
#pragma GCC unroll 4
                for (int v = 0; v < nv; v++, sp += 16) {
                        _mm256_store_ps(sp, _mm256_cvtepi32_ps(i0[v]));
                        _mm256_store_ps(sp + 8, _mm256_cvtepi32_ps(i1[v]));
                }
        }
        __m256 f0[Q16_TILE], f1[Q16_TILE];
#pragma GCC unroll 4
        for (int v = 0; v < nv; v++)
                f0[v] = f1[v] = _mm256_setzero_ps();
        sp = sums;
        for (size_t b = 0; b < nb; b++) {
                __m256 d0 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(d + 32 * b)));
                __m256 d1 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(d + 32 * b + 16)));
#pragma GCC unroll 4
                for (int v = 0; v < nv; v++, sp += 16) {
                        __m256 s = _mm256_broadcast_ss(dx + v * dld + b);
                        f0[v] = _mm256_fmadd_ps(_mm256_load_ps(sp), _mm256_mul_ps(d0, s), f0[v]);
                        f1[v] = _mm256_fmadd_ps(_mm256_load_ps(sp + 8), _mm256_mul_ps(d1, s), f1[v]);
                }
        }
#pragma GCC unroll 4
        for (int v = 0; v < nv; v++) {
                float *yv = y + v * ldy;
                if (add) {
                        f0[v] = _mm256_add_ps(f0[v], _mm256_loadu_ps(yv));
                        f1[v] = _mm256_add_ps(f1[v], _mm256_loadu_ps(yv + 8));
                }
                _mm256_storeu_ps(yv, f0[v]);
                _mm256_storeu_ps(yv + 8, f1[v]);
        }
}

/* One instance per type and vector count, so that the accumulators stay in registers. */
#define DEFINE_Q16_TILE_NV(n)                                                                                          \
        static void FN(x16_tile##n)(const uint8_t *q, const uint8_t *d, size_t nb, const int8_t *xs,                   \
                                    const uint8_t *xa, const int32_t *xc, const float *dx, size_t xld, size_t dld,     \
                                    bool q4, float *y, size_t ldy, bool add, float *sums, const X16Pf *pf) {           \
                if (q4)                                                                                                \
                        FN(x16_tile)(q, d, nb, xs, xa, xc, dx, xld, dld, n, 1, y, ldy, add, sums, pf);                 \
                else                                                                                                   \
                        FN(x16_tile)(q, d, nb, xs, xa, xc, dx, xld, dld, n, 0, y, ldy, add, sums, pf);                 \
        }
DEFINE_Q16_TILE_NV(1)
#if Q16_TILE > 1
DEFINE_Q16_TILE_NV(2)
#endif
#if Q16_TILE > 2
DEFINE_Q16_TILE_NV(3)
#endif
#if Q16_TILE > 3
DEFINE_Q16_TILE_NV(4)
#endif
_Static_assert(Q16_TILE <= 4, "add tile instances");

typedef void (*Q16TileFn)(const uint8_t *q, const uint8_t *d, size_t nb, const int8_t *xs, const uint8_t *xa,
                          const int32_t *xc, const float *dx, size_t xld, size_t dld, bool q4, float *y, size_t ldy,
                          bool add, float *sums, const X16Pf *pf);
static const Q16TileFn FN(x16_tiles)[Q16_TILE + 1] = {
        NULL, /* no tile of 0 vectors */
        FN(x16_tile1),
#if Q16_TILE > 1
        FN(x16_tile2),
#endif
#if Q16_TILE > 2
        FN(x16_tile3),
#endif
#if Q16_TILE > 3
        FN(x16_tile4),
#endif
};

/* ---- Q8_0 and Q4_0 rows through these tiles (copies into groups) ----
 * A Q8_0 or Q4_0 row holds the bytes of its grouped type's group in another order (kernels/quant.h;
 * Q8_0X16 adds +128), so 16 rows at a time are copied into a group on the stack and the tiles run
 * on the copy, which serves every vector of the call; the tiles prefetch the next copy's rows. The
 * row kernels above pay their decoding (q4_0: the nibble unpacking, q8_0: a sign transfer against
 * both x operands) per row and vector, where a group's tile shares each weight load among 8 rows and
 * up to 4 vectors. The copies are kernels/x86-x16-copy.h's (shared with the VNNI kernels). */
#define X16_COPY_BLOCKS 128 /* blocks of a column pass a copy holds: QB + 32 bytes each, 68 KiB */

/* Where the tiles read: groups of a grouped matrix, or 16-row copies of a Q8_0/Q4_0 one (rows), whose
 * group g is rows 16g .. 16g+15. A vector with a non-finite activation goes to a kernel that gives
 * the IEEE result, for the groups' rows: the scalar one of a grouped type, `fallback` for rows. */
typedef struct X16Src {
        DType t; /* the grouped type the tiles see */
        const uint8_t *w;
        size_t rb;
        bool rows;
        MatmulFn fallback;
} X16Src;

/* Groups [g0, g1) with the int8 tiles, y[v * ldy + 16 * g + i]. Vectors in chunks of Q16_VC, columns
 * in passes that fit the stack buffers (Q16_XBYTES / chunk columns: 16384 for one vector, 512 for
 * 32; X16_COPY_BLOCKS blocks at most for copies). */
static void FN(x16_run)(const X16Src *src, size_t K, const float *x, size_t ldx, size_t n_vec, float *y, size_t ldy,
                        size_t g0, size_t g1) {
        _Alignas(32) int8_t xs[Q16_XBYTES];
        _Alignas(32) uint8_t xa[Q16_XBYTES];
        _Alignas(32) float sums[Q16_SUMS];
        float dx[Q16_XBYTES / QK];
        int32_t xc[Q16_XBYTES / QK];
        bool q4 = src->t == DTYPE_Q4_0X16, rows = src->rows;
        size_t nb = K / QK, rb = src->rb, G = 16 * rb, so = x16_scales_offset(q4, K), QB = x16_block_quant_bytes(q4);
        /* per row and block: the quant bytes a copy reads from a row */
        size_t qb = q4 ? QK / 2 : QK, qo = q_row_quants_offset(K);
        _Alignas(32) uint8_t copy[X16_COPY_BLOCKS * (512 + 32)];
        const uint8_t *wb = src->w;
        for (size_t v0 = 0; v0 < n_vec; v0 += Q16_VC) {
                /* pb blocks x vc vectors fill xs; a tile's sums take pb x (at most vc) blocks of 16 */
                size_t vc = FN(min_sz)(Q16_VC, n_vec - v0), pb = Q16_XBYTES / QK / vc;
                if (rows)
                        pb = FN(min_sz)(pb, X16_COPY_BLOCKS);
                /* tiles of even size: 5 vectors as 3 + 2, not 4 + 1 */
                size_t n_tiles = (vc + Q16_TILE - 1) / Q16_TILE, per = (vc + n_tiles - 1) / n_tiles;
                uint32_t bad = 0; /* vectors with a non-finite activation */
                _Static_assert(Q16_VC <= 32, "bad is a 32-bit mask");
                for (size_t b0 = 0; b0 < nb; b0 += pb) {
                        size_t pn = FN(min_sz)(pb, nb - b0), xld = pn * QK;
                        for (size_t v = 0; v < vc; v++) {
                                int8_t *s = xs + v * xld;
                                uint8_t *a = xa + v * xld;
                                if (!(bad >> v & 1) &&
                                    FN(quantize_x)(x + (v0 + v) * ldx + b0 * QK, xld, s, a, dx + v * pn)) {
                                        /* the bias the stored bytes carry: +8 (Q4_0X16), +128
                                         * (Q8_0X16, where vpdpbusd takes them unsigned) */
                                        int32_t bias = q4 ? 8 : AVX2_VNNI ? 128 : 0;
                                        for (size_t b = 0; bias && b < pn; b++) {
                                                int32_t sum = 0;
                                                for (size_t i = 0; i < QK; i++)
                                                        sum += s[b * QK + i];
                                                xc[v * pn + b] = -bias * sum;
                                        }
                                        continue;
                                }
                                bad |= (uint32_t)1 << v;
                                memset(s, 0, xld);
                                memset(a, 0, xld);
                                memset(dx + v * pn, 0, pn * sizeof(float));
                                memset(xc + v * pn, 0, pn * sizeof(int32_t));
                        }
                        for (size_t g = g0; g < g1; g++) {
                                const uint8_t *gq, *gd;
                                X16Pf pf = { .rows = rows };
                                bool has_next = g + 1 < g1;
                                if (rows) {
                                        /* the next copy's rows always: 16 streams are too many for the
                                         * hardware prefetcher */
                                        (q4 ? x16_copy_q4_0_rows : x16_copy_q8_0_rows)(wb + g * G, rb, K, b0, pn, copy,
                                                                                       copy + QB * pn);
                                        gq = copy;
                                        gd = copy + QB * pn;
                                        const uint8_t *next = wb + (g + 1) * G;
                                        pf = (X16Pf){ .q = next + qo + qb * b0,
                                                      .d = next + 2 * b0,
                                                      .rows = true,
                                                      .rb = rb,
                                                      .qb = qb,
                                                      .dseg = 2 * pn };
                                } else {
                                        const uint8_t *grp = wb + g * G;
                                        gq = grp + QB * b0;
                                        gd = grp + so + 32 * b0;
                                        /* the last tile asks for the next group while it computes from
                                         * cache (with one tile the hardware prefetcher keeps up alone) */
                                        has_next = has_next && vc > per;
                                        pf.q = grp + G + QB * b0;
                                        pf.d = grp + G + so + 32 * b0;
                                }
                                for (size_t v = 0; v < vc; v += per) {
                                        size_t nv = FN(min_sz)(per, vc - v);
                                        bool last = v + per >= vc;
                                        FN(x16_tiles)
                                        [nv](gq, gd, pn, xs + v * xld, xa + v * xld, xc + v * pn, dx + v * pn, xld, pn,
                                             q4, y + (v0 + v) * ldy + 16 * g, ldy, b0 > 0, sums,
                                             last && has_next ? &pf : NULL);
                                }
                        }
                }
                for (; bad; bad &= bad - 1) {
                        size_t v = v0 + (size_t)__builtin_ctz(bad);
                        if (rows)
                                src->fallback(wb, rb, K, x + v * ldx, ldx, 1, y + v * ldy, ldy, 16 * g0, 16 * g1);
                        else
                                matmul_x16_generic(src->t, wb, rb, K, x + v * ldx, K, 1, y + v * ldy, 0, 16 * g0,
                                                   16 * g1);
                }
        }
}

/* The grouped types: whole groups with the int8 tiles; the rows of a partial group at either end
 * (only callers other than the threaded wrappers split groups) and the vectors with a non-finite
 * activation (IEEE result) go to the scalar kernel. */
static void FN(matmul_x16)(DType t, const void *w, size_t rb, size_t K, const float *x, size_t ldx, size_t n_vec,
                           float *y, size_t ldy, size_t r0, size_t r1) {
        size_t g0, g1;
        if (!x16_split_groups(t, w, rb, K, x, ldx, n_vec, y, ldy, r0, r1, &g0, &g1))
                return;
        X16Src src = { .t = t, .w = w, .rb = rb };
        FN(x16_run)(&src, K, x, ldx, n_vec, y, ldy, g0, g1);
}

/* (through a second macro so that ISA_SFX is expanded before DEFINE_X16_ENTRIES pastes it) */
#define DEFINE_X16_ENTRIES_FOR(impl, sfx) DEFINE_X16_ENTRIES(impl, sfx)
DEFINE_X16_ENTRIES_FOR(FN(matmul_x16), ISA_SFX)

/* The whole 16-row groups of [r0, r1) of Q8_0 or Q4_0 (t) through copies, the rows left over with
 * `rest` (the row kernels above); `ieee` takes a vector with a non-finite activation. */
static void FN(matmul_rows_as_x16)(DType t, MatmulFn rest, MatmulFn ieee, const void *w, size_t rb, size_t K,
                                   const float *x, size_t ldx, size_t n_vec, float *y, size_t ldy, size_t r0,
                                   size_t r1) {
        size_t n = K % QK == 0 ? (r1 - r0) / 16 * 16 : 0;
        if (n > 0) {
                X16Src src = { .t = t == DTYPE_Q4_0 ? DTYPE_Q4_0X16 : DTYPE_Q8_0X16,
                               .w = (const uint8_t *)w + r0 * rb,
                               .rb = rb,
                               .rows = true,
                               .fallback = ieee };
                FN(x16_run)(&src, K, x, ldx, n_vec, y + r0, ldy, 0, n / 16);
        }
        if (r0 + n < r1)
                rest(w, rb, K, x, ldx, n_vec, y, ldy, r0 + n, r1);
}

/* Where the copies paid, one thread, a matrix streamed from memory (a /tmp loop over the kernel):
 * q8_0 from 4 vectors (K = 1024: 8 vectors 740-780 against 1207 us, 64: 5300 against 5450; K =
 * 4096 up to 1.8x; 2 and 3 vectors take the row kernel since it loads each block once for all of
 * them and prefetches like the matvec: 245-261 / 334-376 against the copies' 382 / 420, in cache
 * (3072 x 768) 135 / 181 against 200 / 213; at 4 it lost, 510-517 against 474), q4_0 from 8
 * vectors, and from 3 once the row kernel's packed x (2 bytes a column and vector) outgrows L1 (K =
 * 3072, 4 vectors: 413 against 452 us; K = 4096, 8 vectors: 495 against 1625; but K = 1024, 4
 * vectors: 279 against 267). With vpdpbusd the grouped tiles cost a third to a half of that, and the
 * copies pay from fewer vectors: q8_0 from 3 (4096 x 1024 streamed 326-333 -> 293-297 us, 3072 x
 * 768 in cache 154 -> 127), q4_0 from 5 (5-7 vectors streamed 300-418 -> 244-281, in cache 158-220
 * -> 125-147). */
static void FN(matmul_q8_0_copies)(const void *w, size_t rb, size_t K, const float *x, size_t ldx, size_t n_vec,
                                   float *y, size_t ldy, size_t r0, size_t r1) {
        if (n_vec < (AVX2_VNNI ? 3 : 4)) {
                FN(matmul_i8_q8_0)(w, rb, K, x, ldx, n_vec, y, ldy, r0, r1);
                return;
        }
        MatmulFn rest = FN(matmul_i8_q8_0), ieee = FN(matmul_q8_0);
        FN(matmul_rows_as_x16)(DTYPE_Q8_0, rest, ieee, w, rb, K, x, ldx, n_vec, y, ldy, r0, r1);
}

static void FN(matmul_q4_0_copies)(const void *w, size_t rb, size_t K, const float *x, size_t ldx, size_t n_vec,
                                   float *y, size_t ldy, size_t r0, size_t r1) {
        if (n_vec < (AVX2_VNNI ? 5 : 8) && (n_vec < 3 || n_vec * K < 12288)) {
                FN(matmul_i8_q4_0)(w, rb, K, x, ldx, n_vec, y, ldy, r0, r1);
                return;
        }
        MatmulFn rest = FN(matmul_i8_q4_0), ieee = FN(matmul_q4_0);
        FN(matmul_rows_as_x16)(DTYPE_Q4_0, rest, ieee, w, rb, K, x, ldx, n_vec, y, ldy, r0, r1);
}

void FN(kernels_fill)(Kernels *k) {
        simd_fill(k);
        FN(x16_fill)(k);
        k->matmul[DTYPE_Q8_0] = FN(matmul_q8_0_copies);
        k->matmul[DTYPE_Q4_0] = FN(matmul_q4_0_copies);
}
