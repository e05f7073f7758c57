/* x86-avx512vnni.c: products of q8_0 rows with 2 or more vectors with AVX-512 VNNI. Built with its
 * own flags and entered only when cpu.c found avx512_vnni; it overrides one entry of the AVX-512
 * table. 2 vectors take rows2_q8_0, 3-4 the "4 vectors x 4 groups" layout (rows4_q8_0), 5-8 the "8 vectors
 * x 2 groups" layout (rows8_q8_0); from 9, whole
 * 16-row groups go through copies into Q8_0X16 groups (x86-avx512vnni-x16.c) and any other rows
 * through this one-lane layout (matmul_q8_0_vnni_many).
 *
 * Layout: the VECTORS are the lanes. x is quantized per call to int8 blocks of 32 (like the integer
 * matvec in simd-template.h) and repacked so that one zmm holds, for each of up to 15 vectors, the
 * same 4 consecutive bytes of a block. A weight row is then never shuffled or decoded: each group of
 * 4 weight bytes is a 32-bit broadcast memory operand of vpdpbusd, and one instruction applies it to
 * every vector. Per block of a row that is 8 vpdpbusd, a subtraction, a conversion and two float
 * multiply-adds for ALL vectors, against ~8 instructions per block AND vector in the AVX2 integer path.
 *
 * vpdpbusd multiplies unsigned by signed bytes: the weights (the broadcast operand) stay signed and x
 * is biased to x + 128. The extra 128 * sum(w) of each block is measured in one more lane whose bytes
 * are all 0x80 and subtracted from every lane, so the integer sums are exact. The result then
 * differs from the f32 reference only by the rounding of x (same bound as the integer matvec). */
#include <immintrin.h>

#include "kernels/kernels-internal.h"
#include "kernels/quant.h"
#include "kernels/x86-avx512-quantx.h"

#define VNNI_MAX_COLS 8192 /* stack: K/32 x 8 zmm of packed x (128 KiB at most) */
#define VNNI_LANES 16
#ifndef VNNI_ROWS
#define VNNI_ROWS 4 /* rows per pass: they share each load of packed x */
#endif
#ifndef VNNI_PREFETCH
#define VNNI_PREFETCH 1
#endif

static MatmulFn fallback_q8_0; /* the AVX-512 entry this one replaces, for what it does not handle */

/* x to int8 blocks of 32 (x86-avx512-quantx.h), as bytes. */
static inline __attribute__((always_inline)) bool quantize_block_regs(const float *x, __m128i *q0, __m128i *q1,
                                                                      float *d) {
        __m512i i0, i1;
        if (!quantize_block_i32(x, &i0, &i1, d))
                return false;
        *q0 = _mm512_cvtsepi32_epi8(i0);
        *q1 = _mm512_cvtsepi32_epi8(i1);
        return true;
}

static bool quantize_block(const float *x, int8_t *q, float *d) {
        __m128i q0, q1;
        if (!quantize_block_regs(x, &q0, &q1, d))
                return false;
        _mm_storeu_si128((__m128i *)q, q0);
        _mm_storeu_si128((__m128i *)(q + 16), q1);
        return true;
}

/* Packs vectors [v0, v0+nv) of x: xu[b*8 + j] lane v = bytes 4j..4j+3 of block b of vector v0+v,
 * biased by 128; lane nv = 0x80 bytes (measures 128 * sum(w)); the other lanes zero. dxs[b*16 + v]
 * = the scale of block b of vector v0+v. */
static bool pack_x(const float *x, size_t ldx, size_t nv, size_t K, __m512i *xu, float *dxs) {
        size_t nb = K / QK;
        _Alignas(64) uint32_t lanes[8][VNNI_LANES];
        _Alignas(64) int8_t q[QK];
        for (size_t b = 0; b < nb; b++) {
                memset(lanes, 0, sizeof(lanes));
                memset(dxs + b * VNNI_LANES, 0, sizeof(float) * VNNI_LANES);
                for (size_t v = 0; v < nv; v++) {
                        if (!quantize_block(x + v * ldx + b * QK, q, dxs + b * VNNI_LANES + v))
                                return false;
                        for (int j = 0; j < 8; j++)
                                lanes[j][v] = load_u32(q + 4 * j) ^ 0x80808080u;
                }
                for (int j = 0; j < 8; j++) {
                        lanes[j][nv] = 0x80808080u;
                        xu[b * 8 + (size_t)j] = _mm512_load_si512(lanes[j]);
                }
        }
        return true;
}

/* The start of a tile of nr rows from r: their addresses, and their block scales in f32 (16 per
 * instruction), read back as broadcast operands by every kernel below. */
static inline __attribute__((always_inline)) void tile_begin(const uint8_t *w, size_t rb, size_t K, size_t r, int nr,
                                                             const uint8_t **p, float (*dw)[VNNI_MAX_COLS / QK]) {
        size_t nb = K / QK;
#pragma GCC unroll 4
        for (int i = 0; i < nr; i++) {
                p[i] = w + (r + (size_t)i) * rb;
                size_t b = 0;
                for (; b + 16 <= nb; b += 16)
                        _mm512_storeu_ps(dw[i] + b,
                                         _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(p[i] + 2 * b))));
                for (; b < nb; b++)
                        dw[i][b] = _cvtsh_ss(load_u16(p[i] + 2 * b));
        }
}

/* Many instructions per byte: the out-of-order window alone keeps too few misses in flight. A
 * tile's nr rows are one contiguous stretch of memory; at block b ask for block b's share of the
 * next nr rows (same size, starting at `next`), into L1 or L2. */
static inline __attribute__((always_inline)) void prefetch_next_tile(const uint8_t *next, size_t b, int nr, bool l1) {
        const uint8_t *ahead = next + b * (size_t)nr * (QK + 2);
        for (int c = 0; c < (nr * (QK + 2) + 63) / 64 + 1; c++)
                if (l1)
                        __builtin_prefetch(ahead + 64 * c, 0, 3);
                else
                        __builtin_prefetch(ahead + 64 * c, 0, 2);
}

/* NR rows starting at r against the packed vectors; y[v*ldy + r+i] for v < nv. */
static inline __attribute__((always_inline)) void rows_q8_0(const uint8_t *w, size_t rb, size_t K, const __m512i *xu,
                                                            const float *dxs, int nr, size_t nv, float *y, size_t ldy,
                                                            size_t r) {
        size_t nb = K / QK, qo = q_row_quants_offset(K);
        const __m512i corr = _mm512_set1_epi32((int)nv);
        const uint8_t *p[VNNI_ROWS];
        __m512 acc[VNNI_ROWS] = { _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps() };
        _Alignas(64) float dw[VNNI_ROWS][VNNI_MAX_COLS / QK];
        tile_begin(w, rb, K, r, nr, p, dw);
        for (size_t b = 0; b < nb; b++) {
                const __m512i *xb = xu + b * 8;
                if (VNNI_PREFETCH) /* into L1, where they are needed next */
                        prefetch_next_tile(p[0] + (size_t)nr * rb, b, nr, true);
                __m512 dxb = _mm512_load_ps(dxs + b * VNNI_LANES);
#pragma GCC unroll 4
                for (int i = 0; i < nr; i++) {
                        const uint8_t *q = p[i] + qo + b * QK;
                        __m512i s0 =
                                _mm512_dpbusd_epi32(_mm512_setzero_si512(), xb[0], _mm512_set1_epi32((int)load_u32(q)));
                        __m512i s1 = _mm512_dpbusd_epi32(_mm512_setzero_si512(), xb[1],
                                                         _mm512_set1_epi32((int)load_u32(q + 4)));
                        s0 = _mm512_dpbusd_epi32(s0, xb[2], _mm512_set1_epi32((int)load_u32(q + 8)));
                        s1 = _mm512_dpbusd_epi32(s1, xb[3], _mm512_set1_epi32((int)load_u32(q + 12)));
                        s0 = _mm512_dpbusd_epi32(s0, xb[4], _mm512_set1_epi32((int)load_u32(q + 16)));
                        s1 = _mm512_dpbusd_epi32(s1, xb[5], _mm512_set1_epi32((int)load_u32(q + 20)));
                        s0 = _mm512_dpbusd_epi32(s0, xb[6], _mm512_set1_epi32((int)load_u32(q + 24)));
                        s1 = _mm512_dpbusd_epi32(s1, xb[7], _mm512_set1_epi32((int)load_u32(q + 28)));
                        __m512i s = _mm512_add_epi32(s0, s1);
                        s = _mm512_sub_epi32(s, _mm512_permutexvar_epi32(corr, s));
                        acc[i] = _mm512_fmadd_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(s), dxb), _mm512_set1_ps(dw[i][b]),
                                                 acc[i]);
                }
        }
#pragma GCC unroll 4
        for (int i = 0; i < nr; i++) {
                _Alignas(64) float out[VNNI_LANES];
                _mm512_store_ps(out, acc[i]);
                for (size_t v = 0; v < nv; v++)
                        y[v * ldy + r + (size_t)i] = out[v];
        }
}

/* ---- up to 8 vectors: the lanes are 8 vectors x 2 groups of 4 bytes ----
 * With one lane per vector, 8 vectors leave 7 of 16 lanes idle and vpdpbusd (one per cycle) is the
 * limit. Here qword lane v of packed zmm k holds bytes 8k..8k+7 of a block of vector v, i.e. dword
 * lane 2v = group 2k and 2v+1 = group 2k+1, and 8 weight bytes go to every qword with a 64-bit
 * broadcast from memory: a block of a row costs 4 vpdpbusd for all 8 vectors and no shuffle (the
 * former layout, 8 vectors x 2 blocks, spent one vpermd per vpdpbusd, and both issue about once per
 * cycle on Zen 4). Per row-block: 4 vpbroadcastq loads, 4 vpxord, 4 vpdpbusd, 4 more for the scales;
 * 2.7-3.2 -> 2.4-3.0 ns per row-block on one core, batch8 of the 0.1B FFN key matrix 21-22 -> 24-26 GB/s
 * of weights on 2 threads. vpdpbusd multiplies unsigned by signed bytes: the WEIGHTS are the unsigned
 * operand (w ^ 0x80 = w + 128, one vpxord after each broadcast) and x stays signed, so the extra
 * 128 * sum(x) depends on x alone: it is precomputed per lane and starts the accumulator. Lanes 2v
 * and 2v+1 carry the same x scale and are added at the end. Measured and dropped: x as the unsigned
 * side and the 128 * sum(w) of each block of a row computed per call (vpdpbusd by bytes of 1 and a
 * transposing reduction, or vpsadbw): the inner loop then needs no vpxord (2.0 ns per row-block),
 * but the per-row pass cost more than the vpxord it saved (3.1 ns in all); 2 or 8 rows per pass
 * instead of 4 were slower too. */
#define VNNI8_ROWS 4
#define VNNI8_L1_COLS 1024 /* prefetch the next tile into L1 up to this many columns, else L2 */

/* xq[b*4 + k]: qword lane v = bytes 8k..8k+7 of block b of vector v (zero beyond nv); xc[b] dword
 * lane 2v / 2v+1 = -128 * the sum of the bytes that lane multiplies (even / odd groups of block b);
 * dxs[b*16 + 2v] = dxs[b*16 + 2v+1] = the scale of block b of vector v. */
static bool pack_x8(const float *x, size_t ldx, size_t nv, size_t K, __m512i *xq, __m512i *xc, float *dxs) {
        size_t nb = K / QK;
        const __m512i bias = _mm512_set1_epi8((char)0x80);
        /* The bytes go straight to their qwords: building a lane array and loading it as one zmm
         * stalled on store forwarding (8 narrow stores, one wide load) and made the packing of 8
         * vectors at K = 768 cost as much as 200 rows of the product. */
        for (size_t b = 0; b < nb; b++) {
                uint8_t *dst = (uint8_t *)(xq + b * 4);
                float *ds = dxs + b * VNNI_LANES;
                for (size_t v = 0; v < nv; v++) {
                        __m128i q0, q1;
                        float d;
                        if (!quantize_block_regs(x + v * ldx + b * QK, &q0, &q1, &d))
                                return false;
                        _mm_storel_epi64((__m128i *)(dst + 8 * v), q0);
                        _mm_storel_epi64((__m128i *)(dst + 64 + 8 * v), _mm_unpackhi_epi64(q0, q0));
                        _mm_storel_epi64((__m128i *)(dst + 128 + 8 * v), q1);
                        _mm_storel_epi64((__m128i *)(dst + 192 + 8 * v), _mm_unpackhi_epi64(q1, q1));
                        ds[2 * v] = ds[2 * v + 1] = d;
                }
                for (size_t v = nv; v < 8; v++) {
                        for (int k = 0; k < 4; k++)
                                memset(dst + 64 * k + 8 * v, 0, 8);
                        ds[2 * v] = ds[2 * v + 1] = 0.f;
                }
        }
        /* a separate pass: the stores above have left the store buffer by now */
        for (size_t b = 0; b < nb; b++) {
                __m512i c = _mm512_setzero_si512();
                for (int k = 0; k < 4; k++)
                        c = _mm512_dpbusd_epi32(c, bias, xq[b * 4 + (size_t)k]); /* 128 * x, 4 bytes a lane */
                xc[b] = _mm512_sub_epi32(_mm512_setzero_si512(), c);
        }
        return true;
}

static inline __attribute__((always_inline)) void rows8_q8_0(const uint8_t *w, size_t rb, size_t K, const __m512i *xq,
                                                             const __m512i *xc, const float *dxs, int nr, size_t nv,
                                                             float *y, size_t ldy, size_t r) {
        size_t nb = K / QK, qo = q_row_quants_offset(K);
        const bool l1 = K <= VNNI8_L1_COLS;
        const __m512i bias = _mm512_set1_epi8((char)0x80);
        const uint8_t *p[VNNI8_ROWS];
        __m512 acc[VNNI8_ROWS] = { _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps() };
        _Alignas(64) float dw[VNNI8_ROWS][VNNI_MAX_COLS / QK];
        tile_begin(w, rb, K, r, nr, p, dw);
        for (size_t b = 0; b < nb; b++) {
                const __m512i *xb = xq + b * 4;
                __m512 dxb = _mm512_load_ps(dxs + b * VNNI_LANES);
                /* into L1 only while the next tile, this one and the packed x fit there (K = 768:
                 * 24 -> 22.5 GB/s into L2 instead, 2 threads); beyond that into L2 (K = 2048: 20 -> 27
                 * GB/s, K = 3072 18 -> 25) */
                prefetch_next_tile(p[0] + (size_t)nr * rb, b, nr, l1);
#pragma GCC unroll 4
                for (int i = 0; i < nr; i++) {
                        const uint8_t *q = p[i] + qo + b * QK;
                        /* broadcast and bias in one instruction (vpxorq m64{1to8}): gcc splits the
                         * intrinsics into a vpbroadcastq and a vpxord; 2.33 -> 2.22 ns per row-block */
                        __m512i w0, w1, w2, w3;
                        __asm__("vpxorq %1%{1to8%}, %2, %0" : "=v"(w0) : "m"(*(const uint64_t *)q), "v"(bias));
                        __asm__("vpxorq %1%{1to8%}, %2, %0" : "=v"(w1) : "m"(*(const uint64_t *)(q + 8)), "v"(bias));
                        __asm__("vpxorq %1%{1to8%}, %2, %0" : "=v"(w2) : "m"(*(const uint64_t *)(q + 16)), "v"(bias));
                        __asm__("vpxorq %1%{1to8%}, %2, %0" : "=v"(w3) : "m"(*(const uint64_t *)(q + 24)), "v"(bias));
                        /* one chain: the block's integer sum in 4 steps (exact in any order); two
                         * chains and an add measured 6-7% slower (the add and a zeroing per row-block,
                         * 2.48 -> 2.32 ns on one core; other rows and blocks hide the latency) */
                        __m512i s0 = _mm512_dpbusd_epi32(xc[b], w0, xb[0]);
                        s0 = _mm512_dpbusd_epi32(s0, w1, xb[1]);
                        s0 = _mm512_dpbusd_epi32(s0, w2, xb[2]);
                        s0 = _mm512_dpbusd_epi32(s0, w3, xb[3]);
                        __m512 f = _mm512_mul_ps(_mm512_cvtepi32_ps(s0), dxb);
                        acc[i] = _mm512_fmadd_ps(f, _mm512_set1_ps(dw[i][b]), acc[i]);
                }
        }
#pragma GCC unroll 4
        for (int i = 0; i < nr; i++) {
                _Alignas(64) float o[VNNI_LANES];
                _mm512_store_ps(o, acc[i]);
                for (size_t v = 0; v < nv; v++)
                        y[v * ldy + r + (size_t)i] = o[2 * v] + o[2 * v + 1];
        }
}

/* ---- 2 vectors: the lanes are 8 groups of 4 bytes x 2 vectors ----
 * The 8-vector layout above costs the same per row-block whatever the number of vectors (4
 * broadcasts, 4 vpxord, 4 vpdpbusd and the epilogue). For two, a zmm of packed x holds a whole
 * block of each (low half: vector 0, high half: vector 1) and the row's 32-byte block is broadcast
 * to both halves: one load, one vpxord and one vpdpbusd per row-block. Each dword lane then holds 4
 * products of one (row, vector, block), scaled per block in f32 and summed across lanes once per
 * row. 2.00 -> 1.36 ns per row-block on one core with the weights in cache (0.1B FFN key),
 * streamed on 2 threads 32.5 -> 34.9 GB/s (the matvec's rate then: it keeps up with memory). For 3
 * or 4 vectors (two such pairs) it measured slower than the 8-vector layout (2.24-2.30 vs 2.02-2.05
 * ns in cache); they take the 4-vector layout below. */
#define VNNI2_ROWS 4
_Static_assert(VNNI_ROWS == 4 && VNNI8_ROWS == 4 && VNNI2_ROWS == 4, "the accumulators are initialized for 4 rows");

/* xp[b]: low 256 bits = block b of vector 0 (int8), high = of vector 1; nc[b] dword lane j = -128 *
 * the sum of the 4 bytes that lane multiplies (the bias the weights carry); dp[b] = each half's
 * scale in its 8 lanes. */
static bool pack_x2(const float *x, size_t ldx, size_t K, __m512i *xp, __m512i *nc, __m512 *dp) {
        size_t nb = K / QK;
        const __m512i bias = _mm512_set1_epi8((char)0x80);
        for (size_t b = 0; b < nb; b++) {
                _Alignas(64) int8_t q[2][QK];
                float d[2];
                for (size_t v = 0; v < 2; v++)
                        if (!quantize_block(x + v * ldx + b * QK, q[v], &d[v]))
                                return false;
                __m512i xq = _mm512_load_si512(q);
                xp[b] = xq;
                nc[b] = _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_dpbusd_epi32(_mm512_setzero_si512(), bias, xq));
                dp[b] = _mm512_mask_blend_ps(0xff00, _mm512_set1_ps(d[0]), _mm512_set1_ps(d[1]));
        }
        return true;
}

static inline __attribute__((always_inline)) void rows2_q8_0(const uint8_t *w, size_t rb, size_t K, const __m512i *xp,
                                                             const __m512i *nc, const __m512 *dp, int nr, float *y,
                                                             size_t ldy, size_t r) {
        size_t nb = K / QK, qo = q_row_quants_offset(K);
        const bool l1 = K <= VNNI8_L1_COLS;
        const __m512i bias = _mm512_set1_epi8((char)0x80);
        const uint8_t *p[VNNI2_ROWS];
        __m512 acc[VNNI2_ROWS] = { _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps() };
        _Alignas(64) float dw[VNNI2_ROWS][VNNI_MAX_COLS / QK];
        tile_begin(w, rb, K, r, nr, p, dw);
        for (size_t b = 0; b < nb; b++) {
                /* as in rows8_q8_0 (one line a block and row was too little: 17.6 GB/s streamed
                 * instead of 34.9) */
                prefetch_next_tile(p[0] + (size_t)nr * rb, b, nr, l1);
#pragma GCC unroll 4
                for (int i = 0; i < nr; i++) {
                        __m512i wv = _mm512_xor_si512(
                                _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(p[i] + qo + b * QK))),
                                bias);
                        __m512i s = _mm512_dpbusd_epi32(nc[b], wv, xp[b]);
                        acc[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), _mm512_mul_ps(dp[b], _mm512_set1_ps(dw[i][b])),
                                                 acc[i]);
                }
        }
#pragma GCC unroll 4
        for (int i = 0; i < nr; i++) {
                _Alignas(64) float o[16];
                _mm512_store_ps(o, acc[i]);
                for (size_t v = 0; v < 2; v++) {
                        float sum = 0.f;
                        for (int j = 0; j < 8; j++)
                                sum += o[8 * v + j];
                        y[v * ldy + r + (size_t)i] = sum;
                }
        }
}

static void matmul_q8_0_vnni2(const void *w, size_t rb, size_t K, const float *x, size_t ldx, float *y, size_t ldy,
                              size_t r0, size_t r1) {
        _Alignas(64) __m512i xp[VNNI_MAX_COLS / QK], nc[VNNI_MAX_COLS / QK];
        _Alignas(64) __m512 dp[VNNI_MAX_COLS / QK];
        if (!pack_x2(x, ldx, K, xp, nc, dp)) {
                fallback_q8_0(w, rb, K, x, ldx, 2, y, ldy, r0, r1);
                return;
        }
        const uint8_t *wb = w;
        size_t r = r0;
        for (; r + VNNI2_ROWS <= r1; r += VNNI2_ROWS)
                rows2_q8_0(wb, rb, K, xp, nc, dp, VNNI2_ROWS, y, ldy, r);
        for (; r < r1; r++)
                rows2_q8_0(wb, rb, K, xp, nc, dp, 1, y, ldy, r);
}

/* ---- 3 or 4 vectors: the lanes are 4 vectors x 4 groups of 4 bytes ----
 * The 8-vector layout leaves half its lanes idle at 4 vectors and still pays 4 vpdpbusd per
 * row-block. Here 128-bit lane v of packed zmm h holds bytes 16h..16h+15 of a block of vector v, and
 * the row's matching 16 bytes are broadcast to the four lanes: two (broadcast, vpxord, vpdpbusd)
 * per row-block for up to 4 vectors. Dword lane 4v+g then sums 8 products of (row, vector v, block),
 * scaled per block in f32 and summed across its 4 lanes once per row. The weights are the unsigned
 * operand as in the 8-vector layout (w ^ 0x80 = w + 128; -128 * sum(x) starts each accumulator).
 * One thread, a /tmp loop over this entry, us, 8-vector layout against this one: 4096 x 1024
 * streamed, 3 vectors 269-271 / 225-227, 4 284-301 / 242-243; 3072 x 768 in cache, 3: 171 / 129,
 * 4: 150 / 131. Model level, 3 alternating rounds, q8_0 B=4: 0.1B 566-697 -> 618-772 tok/s, 0.4B
 * 215-253 -> 233-284. At 5-8 vectors two such passes would cost more than the 8-vector layout. */
#define VNNI4_ROWS 4
_Static_assert(VNNI4_ROWS == 4, "the accumulators are initialized for 4 rows");

/* xq[b*2 + h]: 128-bit lane v = bytes 16h..16h+15 of block b of vector v (zero beyond nv); xc[b]
 * dword lane 4v+g = -128 * the sum of the 8 bytes that lane multiplies; dxs[b*16 + 4v+g] = the scale
 * of block b of vector v (zero beyond nv). */
static bool pack_x4(const float *x, size_t ldx, size_t nv, size_t K, __m512i *xq, __m512i *xc, float *dxs) {
        size_t nb = K / QK;
        const __m512i bias = _mm512_set1_epi8((char)0x80);
        for (size_t b = 0; b < nb; b++) {
                __m512i h0 = _mm512_setzero_si512(), h1 = h0;
                __m512 d = _mm512_setzero_ps();
                for (size_t v = 0; v < nv; v++) {
                        __m128i q0, q1;
                        float dv;
                        if (!quantize_block_regs(x + v * ldx + b * QK, &q0, &q1, &dv))
                                return false;
                        /* lane inserts in registers: no narrow stores read back wide (see pack_x8) */
                        switch (v) {
                        case 0:
                                h0 = _mm512_inserti32x4(h0, q0, 0);
                                h1 = _mm512_inserti32x4(h1, q1, 0);
                                break;
                        case 1:
                                h0 = _mm512_inserti32x4(h0, q0, 1);
                                h1 = _mm512_inserti32x4(h1, q1, 1);
                                break;
                        case 2:
                                h0 = _mm512_inserti32x4(h0, q0, 2);
                                h1 = _mm512_inserti32x4(h1, q1, 2);
                                break;
                        default:
                                h0 = _mm512_inserti32x4(h0, q0, 3);
                                h1 = _mm512_inserti32x4(h1, q1, 3);
                                break;
                        }
                        d = _mm512_mask_mov_ps(d, (__mmask16)(0xFu << (4 * v)), _mm512_set1_ps(dv));
                }
                xq[2 * b] = h0;
                xq[2 * b + 1] = h1;
                __m512i c = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(_mm512_setzero_si512(), bias, h0), bias, h1);
                xc[b] = _mm512_sub_epi32(_mm512_setzero_si512(), c);
                _mm512_store_ps(dxs + b * VNNI_LANES, d);
        }
        return true;
}

static inline __attribute__((always_inline)) void rows4_q8_0(const uint8_t *w, size_t rb, size_t K, const __m512i *xq,
                                                             const __m512i *xc, const float *dxs, int nr, size_t nv,
                                                             float *y, size_t ldy, size_t r) {
        size_t nb = K / QK, qo = q_row_quants_offset(K);
        const bool l1 = K <= VNNI8_L1_COLS;
        const __m512i bias = _mm512_set1_epi8((char)0x80);
        const uint8_t *p[VNNI4_ROWS];
        __m512 acc[VNNI4_ROWS] = { _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps() };
        _Alignas(64) float dw[VNNI4_ROWS][VNNI_MAX_COLS / QK];
        tile_begin(w, rb, K, r, nr, p, dw);
        for (size_t b = 0; b < nb; b++) {
                __m512 dxb = _mm512_load_ps(dxs + b * VNNI_LANES);
                prefetch_next_tile(p[0] + (size_t)nr * rb, b, nr, l1); /* as in rows8_q8_0 */
#pragma GCC unroll 4
                for (int i = 0; i < nr; i++) {
                        const uint8_t *q = p[i] + qo + b * QK;
                        __m512i w0 =
                                _mm512_xor_si512(_mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)q)), bias);
                        __m512i w1 = _mm512_xor_si512(
                                _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)(q + 16))), bias);
                        __m512i s = _mm512_dpbusd_epi32(xc[b], w0, xq[2 * b]);
                        s = _mm512_dpbusd_epi32(s, w1, xq[2 * b + 1]);
                        __m512 f = _mm512_mul_ps(_mm512_cvtepi32_ps(s), dxb);
                        acc[i] = _mm512_fmadd_ps(f, _mm512_set1_ps(dw[i][b]), acc[i]);
                }
        }
#pragma GCC unroll 4
        for (int i = 0; i < nr; i++) {
                _Alignas(64) float o[VNNI_LANES];
                _mm512_store_ps(o, acc[i]);
                for (size_t v = 0; v < nv; v++)
                        y[v * ldy + r + (size_t)i] = (o[4 * v] + o[4 * v + 1]) + (o[4 * v + 2] + o[4 * v + 3]);
        }
}

/* 3-8 vectors: the 4-vector layout up to 4, the 8-vector one beyond (the same buffers, the 4-vector
 * layout using half of xq). */
static void matmul_q8_0_vnni_few(const void *w, size_t rb, size_t K, const float *x, size_t ldx, size_t n_vec, float *y,
                                 size_t ldy, size_t r0, size_t r1) {
        _Alignas(64) __m512i xq[VNNI_MAX_COLS / QK * 4], xc[VNNI_MAX_COLS / QK];
        _Alignas(64) float dxs[VNNI_MAX_COLS / QK * VNNI_LANES];
        const bool four = n_vec <= 4;
        _Static_assert(VNNI4_ROWS == VNNI8_ROWS, "one row loop for both layouts");
        if (!(four ? pack_x4 : pack_x8)(x, ldx, n_vec, K, xq, xc, dxs)) {
                fallback_q8_0(w, rb, K, x, ldx, n_vec, y, ldy, r0, r1);
                return;
        }
        const uint8_t *wb = w;
        for (size_t r = r0; r < r1;) {
                int nr = r + VNNI8_ROWS <= r1 ? VNNI8_ROWS : 1;
                if (four && nr == VNNI4_ROWS)
                        rows4_q8_0(wb, rb, K, xq, xc, dxs, VNNI4_ROWS, n_vec, y, ldy, r);
                else if (four)
                        rows4_q8_0(wb, rb, K, xq, xc, dxs, 1, n_vec, y, ldy, r);
                else if (nr == VNNI8_ROWS)
                        rows8_q8_0(wb, rb, K, xq, xc, dxs, VNNI8_ROWS, n_vec, y, ldy, r);
                else
                        rows8_q8_0(wb, rb, K, xq, xc, dxs, 1, n_vec, y, ldy, r);
                r += (size_t)nr;
        }
}

/* ---- more than 8 vectors, the rows that are not whole 16-row groups (and a non-finite x, which the
 * copies leave to it): groups of up to 15 vectors in the one-lane layout above ----
 * x is packed once per call for as many groups as VNNI_MANY_ZMM allows (all of a 64-vector chunk up
 * to K = 1024, 4 groups at K = 3072, 1 at 8192), then every tile of VNNI_ROWS rows is applied to
 * each packed group in turn while it sits in L1: a weight byte comes from memory once per pass of
 * groups, and one vpdpbusd multiplies 4 weight bytes with 15 vectors' bytes. */
#define VNNI_MANY_ZMM 3072 /* packed x on the stack: 192 KiB */
#define VNNI_GROUP 15

static void matmul_q8_0_vnni_many(const void *w, size_t rb, size_t K, const float *x, size_t ldx, size_t n_vec,
                                  float *y, size_t ldy, size_t r0, size_t r1) {
        _Alignas(64) __m512i xu[VNNI_MANY_ZMM];
        _Alignas(64) float dxs[VNNI_MANY_ZMM / 8 * VNNI_LANES];
        size_t nb = K / QK, n_groups = (n_vec + VNNI_GROUP - 1) / VNNI_GROUP;
        size_t per = (n_vec + n_groups - 1) / n_groups, batch = VNNI_MANY_ZMM / (nb * 8);
        const uint8_t *wb = w;
        for (size_t g0 = 0; g0 < n_groups; g0 += batch) {
                size_t g1 = g0 + batch < n_groups ? g0 + batch : n_groups;
                size_t v0[VNNI_MANY_ZMM / 8], nv[VNNI_MANY_ZMM / 8];
                for (size_t g = g0; g < g1; g++) {
                        v0[g - g0] = g * per;
                        nv[g - g0] = g * per + per <= n_vec ? per : n_vec - g * per;
                        if (!pack_x(x + v0[g - g0] * ldx, ldx, nv[g - g0], K, xu + (g - g0) * nb * 8,
                                    dxs + (g - g0) * nb * VNNI_LANES)) {
                                /* non-finite input: the f32 path gives the IEEE result for every output */
                                fallback_q8_0(w, rb, K, x, ldx, n_vec, y, ldy, r0, r1);
                                return;
                        }
                }
                size_t r = r0;
                for (; r + VNNI_ROWS <= r1; r += VNNI_ROWS)
                        for (size_t g = 0; g < g1 - g0; g++)
                                rows_q8_0(wb, rb, K, xu + g * nb * 8, dxs + g * nb * VNNI_LANES, VNNI_ROWS, nv[g],
                                          y + v0[g] * ldy, ldy, r);
                for (; r < r1; r++)
                        for (size_t g = 0; g < g1 - g0; g++)
                                rows_q8_0(wb, rb, K, xu + g * nb * 8, dxs + g * nb * VNNI_LANES, 1, nv[g],
                                          y + v0[g] * ldy, ldy, r);
        }
}

static void matmul_q8_0_vnni(const void *w, size_t rb, size_t K, const float *x, size_t ldx, size_t n_vec, float *y,
                             size_t ldy, size_t r0, size_t r1) {
        if (K > VNNI_MAX_COLS || K % QK != 0) {
                fallback_q8_0(w, rb, K, x, ldx, n_vec, y, ldy, r0, r1);
                return;
        }
        if (n_vec == 2) {
                matmul_q8_0_vnni2(w, rb, K, x, ldx, y, ldy, r0, r1);
                return;
        }
        if (n_vec <= 8) {
                matmul_q8_0_vnni_few(w, rb, K, x, ldx, n_vec, y, ldy, r0, r1);
                return;
        }
        /* From 9 vectors the copies into groups cost less than they save. One thread, a /tmp loop
         * over this entry, 4096 x 1024 streamed from memory (us), row kernels against copies: 9
         * vectors 469 / 392, 12 503 / 432, 16 668 / 541; 3072 x 768 in cache, 9: 258 / 189, 16: 324 /
         * 279; 1024 x 4096 streamed, 16: 570 / 536. At 8 they tie streamed (329-332 / 327-328)
         * and the row kernel wins in cache (160 / 170). Whole 16-row groups through a Q8_0X16 copy
         * (x86-avx512vnni-x16.c), the rest (and a non-finite x) through the one-lane layout. */
        size_t done = matmul_rows_as_x16_vnni(DTYPE_Q8_0, w, rb, K, x, ldx, n_vec, y, ldy, r0, r1);
        if (r0 + done < r1)
                matmul_q8_0_vnni_many(w, rb, K, x, ldx, n_vec, y, ldy, r0 + done, r1);
}

void kernels_fill_avx512vnni(Kernels *k) {
        fallback_q8_0 = k->matmul[DTYPE_Q8_0];
        k->matmul[DTYPE_Q8_0] = matmul_q8_0_vnni;
}
