/* x86-avx512vnni-q4.c: Q4_0 matvec and matmul on CPUs with AVX-512 VNNI (row layout, quant.h).
 *
 * The integer path this replaced unpacked every block's nibbles to signed bytes and applied a sign
 * transfer and two multiply-adds per block and vector: it streamed 13-14 GB/s on one core (so a
 * 4-bit model decoded barely faster than q8_0), and paid the unpacking again for every vector
 * (batched decode of 8 sessions 1.5x one session's matvecs). Here one 64-byte load holds four
 * blocks of a row; a mask and a shift turn it into two zmm of unsigned nibbles (elements 0-15 and
 * 16-31 of each block), each multiplied with `vpdpbusd` by x quantized to int8 (the same rule and
 * error bound as the other integer kernels, x86-avx512-quantx.h) and packed in the matching order.
 * The stored nibble is the weight + 8: the 8 * sum(x) that this adds depends on x alone, so it is
 * computed while x is packed and starts the accumulator. Dword lane 4j+m then holds 8 products of
 * block j; one f32 multiply-add per lane applies the block scales (weight scale x x scale, both
 * spread to their block's 4 lanes), and the 16 lanes are summed once per row and vector.
 *
 * The unpacked blocks of a tile of 2 rows serve every vector of a chunk (up to 8), so batched decode
 * and prefill pay the unpacking once per weight. x is packed once per call for as many vectors as
 * fit in QX4_PACK_BYTES; a row tile stays in L1 while every packed chunk runs over it. */
#include <immintrin.h>
#include <stdbool.h>
#include <stdint.h>

#include "kernels/kernels-internal.h"
#include "kernels/quant.h"
#include "kernels/x86-avx512-quantx.h"

#define QX4_BLOCKS 4                  /* blocks per 64-byte load of a row's quants */
#define QX4_GROUP (QX4_BLOCKS * QK)   /* 128 elements */
#define QX4_MAX_COLS 8192             /* wider rows take the AVX2 integer path */
#define QX4_CHUNK 8                   /* vectors per register tile */
#define QX4_PACK_BYTES (192u * 1024u) /* packed x per pass (on the stack) */
#define QX4_ROWS 2                    /* rows per register tile */
/* Bytes ahead in the row stream, prefetched into L2. One core streaming a matrix from memory: 8 KiB
 * 20 GB/s, 4 KiB 17.5, 16 KiB 18; 4 KiB non-temporal (what the AVX2 integer matvec does) 14. */
#define QX4_PREFETCH 8192

/* One vector's group of 4 blocks: lo / hi = bytes 16j..16j+15 are elements 0-15 / 16-31 of block
 * j as int8; corr lane 4j+m = -8 * (the 8 elements that lane multiplies); d lane 4j+m = block j's
 * scale. Blocks past the row's end are zero (and so are their weights, loaded under a mask). */
typedef struct PackedGroup {
        __m512i lo, hi, corr;
        __m512 d;
} PackedGroup;

static MatvecFn prev_matvec;
static MatmulFn prev_matmul;

static inline __m512i nibble_mask(void) {
        return _mm512_set1_epi8(0x0F);
}

/* x (nv vectors, stride ldx, K columns) into ng groups per vector, and (dxc not NULL, one vector)
 * the block scales one after the other, zero up to a multiple of 16. False on a non-finite value. */
static bool pack_x4(const float *x, size_t ldx, size_t nv, size_t K, PackedGroup *out, float *dxc) {
        size_t nb = K / QK, ng = (nb + QX4_BLOCKS - 1) / QX4_BLOCKS;
        if (dxc)
                for (size_t b = nb; b % 16 != 0; b++)
                        dxc[b] = 0;
        for (size_t v = 0; v < nv; v++)
                for (size_t g = 0; g < ng; g++) {
                        _Alignas(64) int8_t lo[64] = { 0 }, hi[64] = { 0 };
                        _Alignas(64) int32_t corr[16] = { 0 };
                        _Alignas(64) float d[16] = { 0 };
                        for (size_t j = 0; j < QX4_BLOCKS && g * QX4_BLOCKS + j < nb; j++) {
                                size_t b = g * QX4_BLOCKS + j;
                                __m512i i0, i1;
                                float dd;
                                if (!quantize_block_i32(x + v * ldx + b * QK, &i0, &i1, &dd))
                                        return false;
                                _mm_store_si128((__m128i *)(lo + 16 * j), _mm512_cvtsepi32_epi8(i0));
                                _mm_store_si128((__m128i *)(hi + 16 * j), _mm512_cvtsepi32_epi8(i1));
                                for (size_t m = 0; m < 4; m++) {
                                        int32_t s = 0;
                                        for (size_t t = 0; t < 4; t++)
                                                s += lo[16 * j + 4 * m + t] + hi[16 * j + 4 * m + t];
                                        corr[4 * j + m] = -8 * s;
                                        d[4 * j + m] = dd;
                                }
                                if (dxc)
                                        dxc[b] = dd;
                        }
                        PackedGroup *p = &out[v * ng + g];
                        p->lo = _mm512_load_si512(lo);
                        p->hi = _mm512_load_si512(hi);
                        p->corr = _mm512_load_si512(corr);
                        p->d = _mm512_load_ps(d);
                }
        return true;
}

/* NR rows from r against NV packed vectors (ng groups each, vector stride ng); y[v*ldy + r+i].
 * The weight scales are converted 16 at a time (4 groups); with one vector and its compact block
 * scales (dxc), those are multiplied in there too, so a group's scaling is one permute. */
static inline __attribute__((always_inline)) void tile(const uint8_t *w, size_t rb, size_t K, const PackedGroup *px,
                                                       const int NR, const int NV, float *y, size_t ldy, size_t r,
                                                       const float *dxc) {
        size_t nb = K / QK, ng = (nb + QX4_BLOCKS - 1) / QX4_BLOCKS, full = nb / QX4_BLOCKS;
        const __m512i idx = _mm512_set_epi32(3, 3, 3, 3, 2, 2, 2, 2, 1, 1, 1, 1, 0, 0, 0, 0);
        const uint8_t *p[QX4_ROWS];
        __m512 acc[QX4_ROWS][QX4_CHUNK];
#pragma GCC unroll 2
        for (int i = 0; i < NR; i++) {
                p[i] = w + (r + (size_t)i) * rb;
#pragma GCC unroll 8
                for (int v = 0; v < NV; v++)
                        acc[i][v] = _mm512_setzero_ps();
        }
        /* the rows of a tile are one stretch of memory: ask for the stretch QX4_PREFETCH ahead */
        for (size_t o = 0; o < (size_t)NR * rb; o += 64)
                __builtin_prefetch(p[0] + QX4_PREFETCH + o, 0, 2);
        __m512 s16[QX4_ROWS] = { _mm512_setzero_ps(), _mm512_setzero_ps() };
        for (size_t g = 0; g < ng; g++) {
                __m512i lo[QX4_ROWS], hi[QX4_ROWS];
                __m512 sw[QX4_ROWS];
                if (g % 4 == 0) {
                        size_t n16 = nb - QX4_BLOCKS * g < 16 ? nb - QX4_BLOCKS * g : 16;
                        __mmask16 m16 = (__mmask16)((1u << n16) - 1);
#pragma GCC unroll 2
                        for (int i = 0; i < NR; i++) {
                                s16[i] = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m16, p[i] + 2 * QX4_BLOCKS * g));
                                if (NV == 1 && dxc)
                                        s16[i] = _mm512_mul_ps(s16[i], _mm512_loadu_ps(dxc + QX4_BLOCKS * g));
                        }
                }
                __m512i gi = _mm512_add_epi32(idx, _mm512_set1_epi32((int)(4 * (g % 4))));
                /* the last group of a row whose block count is not a multiple of 4: under a mask */
                size_t left = g < full ? QX4_BLOCKS : nb - g * QX4_BLOCKS;
                __mmask64 mq = left == QX4_BLOCKS ? ~(__mmask64)0 : ((__mmask64)1 << (16 * left)) - 1;
#pragma GCC unroll 2
                for (int i = 0; i < NR; i++) {
                        const uint8_t *q = p[i] + q_row_quants_offset(K) + 64 * g;
                        __m512i b = _mm512_maskz_loadu_epi8(mq, q);
                        lo[i] = _mm512_and_si512(b, nibble_mask());
                        hi[i] = _mm512_and_si512(_mm512_srli_epi16(b, 4), nibble_mask());
                        sw[i] = _mm512_permutexvar_ps(gi, s16[i]);
                }
#pragma GCC unroll 8
                for (int v = 0; v < NV; v++) {
                        const PackedGroup *x = &px[(size_t)v * ng + g];
#pragma GCC unroll 2
                        for (int i = 0; i < NR; i++) {
                                __m512i s = _mm512_dpbusd_epi32(x->corr, lo[i], x->lo);
                                s = _mm512_dpbusd_epi32(s, hi[i], x->hi);
                                __m512 sc = NV == 1 && dxc ? sw[i] : _mm512_mul_ps(sw[i], x->d);
                                acc[i][v] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), sc, acc[i][v]);
                        }
                }
        }
#pragma GCC unroll 2
        for (int i = 0; i < NR; i++)
#pragma GCC unroll 8
                for (int v = 0; v < NV; v++)
                        y[(size_t)v * ldy + r + (size_t)i] = _mm512_reduce_add_ps(acc[i][v]);
}

#define TILE_CASE(n)                                                                                                   \
        case n:                                                                                                        \
                if (nr == 2)                                                                                           \
                        tile(w, rb, K, px, 2, n, y, ldy, r, NULL);                                                     \
                else                                                                                                   \
                        tile(w, rb, K, px, 1, n, y, ldy, r, NULL);                                                     \
                break;

/* One entry per (rows, vectors), so that the loops above unroll with constants. */
static void tile_any(const uint8_t *w, size_t rb, size_t K, const PackedGroup *px, int nr, size_t nv, float *y,
                     size_t ldy, size_t r) {
        switch (nv) {
                TILE_CASE(1)
                TILE_CASE(2)
                TILE_CASE(3)
                TILE_CASE(4)
                TILE_CASE(5)
                TILE_CASE(6)
                TILE_CASE(7)
                TILE_CASE(8)
        default:
                break;
        }
}

static void matmul_q4_0_vnni(const void *w, size_t rb, size_t K, const float *x, size_t ldx, size_t n_vec, float *y,
                             size_t ldy, size_t r0, size_t r1) {
        size_t ng = (K / QK + QX4_BLOCKS - 1) / QX4_BLOCKS;
        if (K % QK != 0 || K > QX4_MAX_COLS || K == 0) {
                prev_matmul(w, rb, K, x, ldx, n_vec, y, ldy, r0, r1);
                return;
        }
        /* 3 vectors or more: whole 16-row groups through a Q4_0X16 copy (x86-avx512vnni-x16.c). Its
         * tiles ran faster than these from 4 vectors on, copy included (0.4B, alternating rounds:
         * B=4 224-286 -> 239-310 tok/s, B=8 317-318 -> 406-413, B=16 320-325 -> 476-485; B=2 fell
         * from 178-207 to 153-167, B=3 was even); from 3 since the scales are copied as transposes
         * (kernels-10, 3 alternating rounds: B=3 0.1B 680-689 -> 761-823, 0.4B 239-264 -> 294-303;
         * B=2 still lost, 0.1B 574-579 -> 544-568, 0.4B 210-214 -> 183-206) */
        if (n_vec >= 3) {
                r0 += matmul_rows_as_x16_vnni(DTYPE_Q4_0, w, rb, K, x, ldx, n_vec, y, ldy, r0, r1);
                if (r0 == r1)
                        return;
        }
        _Alignas(64) PackedGroup buf[QX4_PACK_BYTES / sizeof(PackedGroup)];
        size_t per_pass = QX4_PACK_BYTES / sizeof(PackedGroup) / ng;
        per_pass = per_pass / QX4_CHUNK * QX4_CHUNK;
        if (per_pass == 0)
                per_pass = QX4_PACK_BYTES / sizeof(PackedGroup) / ng;
        for (size_t v0 = 0; v0 < n_vec; v0 += per_pass) {
                size_t nv = n_vec - v0 < per_pass ? n_vec - v0 : per_pass;
                if (!pack_x4(x + v0 * ldx, ldx, nv, K, buf, NULL)) {
                        /* non-finite input: the other path gives the IEEE result */
                        prev_matmul(w, rb, K, x, ldx, n_vec, y, ldy, r0, r1);
                        return;
                }
                for (size_t r = r0; r < r1;) {
                        int nr = r + QX4_ROWS <= r1 ? QX4_ROWS : 1;
                        for (size_t c = 0; c < nv; c += QX4_CHUNK) {
                                size_t n = nv - c < QX4_CHUNK ? nv - c : QX4_CHUNK;
                                tile_any((const uint8_t *)w, rb, K, buf + c * ng, nr, n, y + (v0 + c) * ldy, ldy, r);
                        }
                        r += (size_t)nr;
                }
        }
}

static void matvec_q4_0_vnni(const void *w, size_t rb, size_t K, const float *x, float *y, size_t r0, size_t r1) {
        if (K % QK != 0 || K > QX4_MAX_COLS || K == 0) {
                prev_matvec(w, rb, K, x, y, r0, r1);
                return;
        }
        _Alignas(64) PackedGroup px[QX4_MAX_COLS / QX4_GROUP];
        _Alignas(64) float dxc[QX4_MAX_COLS / QK];
        if (!pack_x4(x, K, 1, K, px, dxc)) {
                prev_matvec(w, rb, K, x, y, r0, r1);
                return;
        }
        size_t r = r0;
        for (; r + QX4_ROWS <= r1; r += QX4_ROWS)
                tile((const uint8_t *)w, rb, K, px, QX4_ROWS, 1, y, 0, r, dxc);
        for (; r < r1; r++)
                tile((const uint8_t *)w, rb, K, px, 1, 1, y, 0, r, dxc);
}

/* After the AVX2 and AVX-512 fills: their Q4_0 kernels stay the path for rows this one refuses. */
void kernels_fill_avx512vnni_q4(Kernels *k) {
        prev_matvec = k->matvec[DTYPE_Q4_0];
        prev_matmul = k->matmul[DTYPE_Q4_0];
        k->matvec[DTYPE_Q4_0] = matvec_q4_0_vnni;
        k->matmul[DTYPE_Q4_0] = matmul_q4_0_vnni;
}
