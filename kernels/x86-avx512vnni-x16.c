/* x86-avx512vnni-x16.c: Q8_0X16 and Q4_0X16 matvec and matmul (decode, batched decode, prefill)
 * with AVX-512 VNNI. Built with the VNNI file's flags and entered only when cpu.c found avx512_vnni.
 *
 * Layout (kernels/quant.h): 16 rows interleaved, so one 64-byte line of a block holds 4 weight bytes
 * of each of 16 rows, already biased to unsigned (+128). Here the ROWS are the lanes: one full load
 * of a line feeds one vpdpbusd per vector, whose other operand is a 4-byte broadcast of that
 * vector's int8 x (a memory operand), and each dword lane sums 4 products of one row. Against the
 * row layout (x86-avx512vnni.c, where every vpdpbusd needs its own 8-byte weight broadcast and a
 * vpxord to bias it) that is about half the loads per vpdpbusd, and the load ports were its limit.
 *
 * The bias adds 128 * sum(x_b) to every row of block b; it depends on x alone, so it is computed
 * while x is packed and starts each block's accumulators (negated). The sums are then exact and
 * the result differs from the f32 reference only by the rounding of x to int8 (amax/127 per block
 * of 32: the bound of the integer matvec in simd-template.h).
 *
 * Q4_0X16 is the same loop with half the bytes: a line holds 4 nibble pairs of each of 16 rows, and
 * a mask and a shift give the two unsigned operands (elements 4j.. and 16+4j.. of the block, stored
 * +8) for two vpdpbusd with the same packed x; the bias is 8 * sum(x_b). A line's load and three
 * bit operations feed two vpdpbusd per vector; the scale work per vpdpbusd is Q8_0X16's (a block of
 * 32 columns is 8 vpdpbusd in both). In the row layout (x86-avx512vnni-q4.c) every vector pays its own
 * conversion and scale multiply per 4 blocks of a row, and batched decode stayed compute-bound.
 *
 * Tiles are 2 groups (32 rows) x up to 8 vectors, the vectors in passes of 4 while the block's lines
 * sit in L1: 16 int32 + 16 float accumulators would not fit 32 registers with 8 vectors at once. */
#include <immintrin.h>

#include "kernels/kernels-internal.h"
#include "kernels/quant.h"
#include "kernels/x86-avx512-quantx.h"
#include "kernels/x86-x16-copy.h"

#define QX_MAX_COLS 8192 /* columns a packed x takes on the stack; wider matrices use the reference */
#define QX_CHUNK 8       /* vectors per tile */
/* Packed x for a prefill chunk: as many 8-vector chunks as fit, so that the weights stream from
 * memory once per pass of chunks (all 64 vectors of a chunk up to K = 3072). */
#define QX_PACK_BYTES (192u * 1024u)
#define QX_MAX_CHUNKS 32 /* 256 vectors a pass */
#ifndef QX_PREFETCH
#define QX_PREFETCH 1
#endif

/* A chunk of up to 8 packed vectors: for block b and vector v, q[(b*nv + v)*8 + j] = bytes 4j..4j+3
 * of its int8 block, c[b*nv + v] = -bias * the block's sum (128 for Q8_0X16, 8 for Q4_0X16),
 * d[b*nv + v] = its scale. */
typedef struct PackedX {
        const uint32_t *q;
        const int32_t *c;
        const float *d;
        size_t nv;
} PackedX;

static size_t packed_bytes(size_t nv, size_t nb) {
        return nb * nv * (8 * sizeof(uint32_t) + sizeof(int32_t) + sizeof(float));
}

/* Quantizes vectors [0, nv) of x (row stride ldx) into buf. False on a non-finite value. */
static bool pack_chunk(const float *x, size_t ldx, size_t nv, size_t K, int bias, uint8_t *buf, PackedX *ret) {
        size_t nb = K / QK;
        uint32_t *q = (uint32_t *)buf;
        int32_t *c = (int32_t *)(q + nb * nv * 8);
        float *d = (float *)(c + nb * nv);
        for (size_t v = 0; v < nv; v++)
                for (size_t b = 0; b < nb; b++) {
                        __m512i i0, i1;
                        if (!quantize_block_i32(x + v * ldx + b * QK, &i0, &i1, d + b * nv + v))
                                return false;
                        uint32_t *dst = q + (b * nv + v) * 8;
                        _mm_storeu_si128((__m128i *)dst, _mm512_cvtsepi32_epi8(i0));
                        _mm_storeu_si128((__m128i *)(dst + 4), _mm512_cvtsepi32_epi8(i1));
                        c[b * nv + v] = -bias * _mm512_reduce_add_epi32(_mm512_add_epi32(i0, i1));
                }
        *ret = (PackedX){ .q = q, .c = c, .d = d, .nv = nv };
        return true;
}

/* NV (1-4) vectors from v0 of one block against NG (1-2) groups (Q4_0X16 when Q4); adds into
 * f0/f1[v0 ..]. */
static inline __attribute__((always_inline)) void block_pass(const uint8_t *A, const uint8_t *B, __m512 dA, __m512 dB,
                                                             const PackedX *px, size_t b, size_t v0, const int NV,
                                                             const int NG, const int Q4, __m512 *f0, __m512 *f1) {
        __m512i i0[4], i1[4];
        const uint32_t *xq = px->q + (b * px->nv + v0) * 8;
        const int32_t *xc = px->c + b * px->nv + v0;
        const float *xd = px->d + b * px->nv + v0;
#pragma GCC unroll 4
        for (int v = 0; v < NV; v++)
                i0[v] = i1[v] = _mm512_set1_epi32(xc[v]);
        if (Q4) {
                const __m512i m = _mm512_set1_epi8(0x0F);
#pragma GCC unroll 4
                for (int j = 0; j < 4; j++) {
                        __m512i wa = _mm512_loadu_si512(A + 64 * j), wb = wa;
                        if (NG == 2)
                                wb = _mm512_loadu_si512(B + 64 * j);
                        __m512i la = _mm512_and_si512(wa, m), ha = _mm512_and_si512(_mm512_srli_epi16(wa, 4), m);
                        __m512i lb = la, hb = ha;
                        if (NG == 2) {
                                lb = _mm512_and_si512(wb, m);
                                hb = _mm512_and_si512(_mm512_srli_epi16(wb, 4), m);
                        }
#pragma GCC unroll 4
                        for (int v = 0; v < NV; v++) {
                                __m512i xl = _mm512_set1_epi32((int)xq[v * 8 + j]);
                                __m512i xh = _mm512_set1_epi32((int)xq[v * 8 + 4 + j]);
                                i0[v] = _mm512_dpbusd_epi32(i0[v], la, xl);
                                i0[v] = _mm512_dpbusd_epi32(i0[v], ha, xh);
                                if (NG == 2) {
                                        i1[v] = _mm512_dpbusd_epi32(i1[v], lb, xl);
                                        i1[v] = _mm512_dpbusd_epi32(i1[v], hb, xh);
                                }
                        }
                }
        } else {
#pragma GCC unroll 8
                for (int j = 0; j < 8; j++) {
                        __m512i wa = _mm512_loadu_si512(A + 64 * j), wb = wa;
                        if (NG == 2)
                                wb = _mm512_loadu_si512(B + 64 * j);
#pragma GCC unroll 4
                        for (int v = 0; v < NV; v++) {
                                __m512i xb = _mm512_set1_epi32((int)xq[v * 8 + j]);
                                i0[v] = _mm512_dpbusd_epi32(i0[v], wa, xb);
                                if (NG == 2)
                                        i1[v] = _mm512_dpbusd_epi32(i1[v], wb, xb);
                        }
                }
        }
#pragma GCC unroll 4
        for (int v = 0; v < NV; v++) {
                __m512 s = _mm512_set1_ps(xd[v]);
                f0[v0 + v] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(i0[v]), _mm512_mul_ps(dA, s), f0[v0 + v]);
                if (NG == 2)
                        f1[v0 + v] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(i1[v]), _mm512_mul_ps(dB, s), f1[v0 + v]);
        }
}

/* NG groups (at A and B = A + G) x the chunk's vectors (NV1 in the first pass of 4, NV2 in the
 * second); y[v*ldy + row] for the 16*NG rows. */
static inline __attribute__((always_inline)) void tile(const uint8_t *A, size_t G, size_t K, const PackedX *px,
                                                       const int NG, const int Q4, const int NV1, const int NV2,
                                                       float *y, size_t ldy, const uint8_t *next) {
        size_t nb = K / QK, so = x16_scales_offset(Q4, K);
        const size_t QB = x16_block_quant_bytes(Q4);
        const uint8_t *B = A + G, *sA = A + so, *sB = B + so;
        /* the NG * G bytes at next (the caller's choice, below) are prefetched one share per block:
         * hardware prefetch alone left the loop waiting */
        size_t pf_step = ((size_t)NG * G / nb + 63) & ~(size_t)63;
        __m512 f0[QX_CHUNK], f1[QX_CHUNK];
#pragma GCC unroll 8
        for (int v = 0; v < NV1 + NV2; v++)
                f0[v] = f1[v] = _mm512_setzero_ps();
        for (size_t b = 0; b < nb; b++) {
                if (QX_PREFETCH && next)
                        for (size_t o = 0; o < pf_step; o += 64)
                                __builtin_prefetch(next + b * pf_step + o, 0, 2);
                const uint8_t *qa = A + QB * b, *qb = B + QB * b;
                __m512 dA = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(sA + 32 * b))), dB = dA;
                if (NG == 2)
                        dB = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(sB + 32 * b)));
                block_pass(qa, qb, dA, dB, px, b, 0, NV1, NG, Q4, f0, f1);
                if (NV2)
                        block_pass(qa, qb, dA, dB, px, b, NV1, NV2, NG, Q4, f0, f1);
        }
#pragma GCC unroll 8
        for (int v = 0; v < NV1 + NV2; v++) {
                _mm512_storeu_ps(y + (size_t)v * ldy, f0[v]);
                if (NG == 2)
                        _mm512_storeu_ps(y + (size_t)v * ldy + 16, f1[v]);
        }
}

/* One entry per (type, vector count, group count), so that every loop above unrolls with constants. */
#define TILE_CASE(n, a, b)                                                                                             \
        case n:                                                                                                        \
                if (ng == 2 && q4)                                                                                     \
                        tile(A, G, K, px, 2, 1, a, b, y, ldy, next);                                                   \
                else if (ng == 2)                                                                                      \
                        tile(A, G, K, px, 2, 0, a, b, y, ldy, next);                                                   \
                else if (q4)                                                                                           \
                        tile(A, G, K, px, 1, 1, a, b, y, ldy, next);                                                   \
                else                                                                                                   \
                        tile(A, G, K, px, 1, 0, a, b, y, ldy, next);                                                   \
                break;

static void tile_any(const uint8_t *A, size_t G, size_t K, const PackedX *px, int ng, bool q4, float *y, size_t ldy,
                     const uint8_t *next) {
        switch (px->nv) {
                TILE_CASE(1, 1, 0)
                TILE_CASE(2, 2, 0)
                TILE_CASE(3, 3, 0)
                TILE_CASE(4, 4, 0)
                TILE_CASE(5, 3, 2)
                TILE_CASE(6, 3, 3)
                TILE_CASE(7, 4, 3)
                TILE_CASE(8, 4, 4)
        default:
                break;
        }
}

/* Rows [r0, r1) on group boundaries against packed chunks; y[v*ldy + r]. */
static void run_groups(const uint8_t *w, size_t rb, size_t K, bool q4, const PackedX *chunks, size_t n_chunks, float *y,
                       size_t ldy, size_t g0, size_t g1) {
        size_t G = 16 * rb;
        for (size_t g = g0; g < g1;) {
                int ng = g + 2 <= g1 ? 2 : 1;
                /* the next tile for Q8_0X16; for Q4_0X16 the one after, about as many bytes ahead
                 * (bench-kernels 0.4B matvec, alternating binaries: 43-45 GB/s with the next tile, 46-51
                 * two ahead, 43-44 four ahead) */
                const uint8_t *next = w + (g + (size_t)(q4 ? 2 : 1) * (size_t)ng) * G;
                for (size_t c = 0; c < n_chunks; c++)
                        tile_any(w + g * G, G, K, &chunks[c], ng, q4, y + c * QX_CHUNK * ldy + 16 * g, ldy, next);
                g += (size_t)ng;
        }
}

/* Vectors from v0 of x quantized into buf, as many chunks of QX_CHUNK as it holds; the number of
 * chunks, 0 on a non-finite value. */
static size_t pack_pass(const float *x, size_t ldx, size_t n_vec, size_t v0, size_t K, int bias, uint8_t *buf,
                        PackedX *chunks) {
        size_t per_chunk = packed_bytes(QX_CHUNK, K / QK), batch = QX_PACK_BYTES / per_chunk, n = 0;
        if (batch > QX_MAX_CHUNKS)
                batch = QX_MAX_CHUNKS;
        for (size_t v = v0; v < n_vec && n < batch; v += QX_CHUNK, n++) {
                size_t nv = n_vec - v < QX_CHUNK ? n_vec - v : QX_CHUNK;
                if (!pack_chunk(x + v * ldx, ldx, nv, K, bias, buf + n * per_chunk, &chunks[n]))
                        return 0;
        }
        return n;
}

static void matmul_x16_vnni(DType t, const void *w, size_t rb, size_t K, const float *x, size_t ldx, size_t n_vec,
                            float *y, size_t ldy, size_t r0, size_t r1) {
        size_t g0, g1;
        bool q4 = t == DTYPE_Q4_0X16;
        if (K % QK != 0 || K > QX_MAX_COLS) {
                matmul_x16_generic(t, w, rb, K, x, ldx, n_vec, y, ldy, r0, r1);
                return;
        }
        if (!x16_split_groups(t, w, rb, K, x, ldx, n_vec, y, ldy, r0, r1, &g0, &g1))
                return;

        _Alignas(64) uint8_t buf[QX_PACK_BYTES];
        PackedX chunks[QX_MAX_CHUNKS];
        for (size_t v0 = 0; v0 < n_vec;) {
                size_t n_chunks = pack_pass(x, ldx, n_vec, v0, K, q4 ? 8 : 128, buf, chunks);
                if (n_chunks == 0) {
                        /* non-finite input: the reference gives the IEEE result */
                        matmul_x16_generic(t, w, rb, K, x, ldx, n_vec, y, ldy, 16 * g0, 16 * g1);
                        return;
                }
                run_groups(w, rb, K, q4, chunks, n_chunks, y + v0 * ldy, ldy, g0, g1);
                v0 += n_chunks * QX_CHUNK;
        }
}

/* ---- q8_0 prefill and q4_0 batches through this kernel ----
 * Q8_0 and Q4_0 rows (kernels/quant.h) hold the same bytes as a group of their x16 type, in
 * another order (Q8_0X16 adds the +128). On many vectors their row-layout VNNI kernels
 * (x86-avx512vnni.c, x86-avx512vnni-q4.c) ran at about half this one's rate; here 16 rows are
 * copied into one group (kernels/x86-x16-copy.h, AVX2's copies) and the tiles above run on the copy, paid once for up
 * to QX_CHUNK x QX_MAX_CHUNKS vectors: for q8_0 from 9 vectors (x86-avx512vnni.c; at 8 the copy cost more than it
 * saved: 0.1B B=8 900-998 -> 705-757 tok/s), for q4_0 from 3 vectors (x86-avx512vnni-q4.c). The rows of the next copy
 * are prefetched while the tiles compute: without it the copy waited on memory and the model-level prefill did not
 * gain. */
/* the copy on the stack: two groups up to 4096 columns, one up to QX_MAX_COLS (a q8_0 group of 8192) */
#define QX_REPACK_BYTES (2u * 16u * 34u * (4096u / QK))

size_t matmul_rows_as_x16_vnni(DType t, const void *w, size_t rb, size_t K, const float *x, size_t ldx, size_t n_vec,
                               float *y, size_t ldy, size_t r0, size_t r1) {
        size_t n_rows = (r1 - r0) / 16 * 16;
        bool q4 = t == DTYPE_Q4_0;
        if (K % QK != 0 || K > QX_MAX_COLS || n_rows == 0 || (t != DTYPE_Q8_0 && !q4))
                return 0;
        size_t G = 16 * (q4 ? q4_0x16_row_bytes(K) : q8_0x16_row_bytes(K)), max_ng = QX_REPACK_BYTES / G;
        if (max_ng == 0)
                return 0;
        _Alignas(64) uint8_t grp[QX_REPACK_BYTES];
        _Alignas(64) uint8_t buf[QX_PACK_BYTES];
        PackedX chunks[QX_MAX_CHUNKS];
        const uint8_t *wb = w;
        for (size_t v0 = 0; v0 < n_vec;) {
                size_t n_chunks = pack_pass(x, ldx, n_vec, v0, K, q4 ? 8 : 128, buf, chunks);
                if (n_chunks == 0)
                        return 0; /* non-finite input: the caller's kernel gives the IEEE result */
                for (size_t r = r0; r < r0 + n_rows;) {
                        int ng = max_ng >= 2 && r + 32 <= r0 + n_rows ? 2 : 1;
                        for (int g = 0; g < ng; g++) {
                                const uint8_t *rows = wb + (r + 16 * (size_t)g) * rb;
                                uint8_t *dst = grp + (size_t)g * G;
                                (q4 ? x16_copy_q4_0_rows : x16_copy_q8_0_rows)(rows, rb, K, 0, K / QK, dst,
                                                                               dst + x16_scales_offset(q4, K));
                        }
                        /* the rows of the next copy, from memory while the tiles compute on this one */
                        size_t rn = r + 16 * (size_t)ng;
                        const uint8_t *next = rn < r0 + n_rows ? wb + rn * rb : NULL;
                        for (size_t c = 0; c < n_chunks; c++)
                                tile_any(grp, G, K, &chunks[c], ng, q4, y + (v0 + c * QX_CHUNK) * ldy + r, ldy, next);
                        r += 16 * (size_t)ng;
                }
                v0 += n_chunks * QX_CHUNK;
        }
        return n_rows;
}

DEFINE_X16_ENTRIES(matmul_x16_vnni, vnni)

void kernels_fill_avx512vnni_x16(Kernels *k) {
        x16_fill_vnni(k);
}
