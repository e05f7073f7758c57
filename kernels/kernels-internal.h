/* kernels-internal.h: what the ISA files and the dispatcher share (not for engine/). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "kernels/kernels.h"

typedef void (*MatvecFn)(const void *w, size_t row_bytes, size_t n_cols, const float *x, float *y, size_t r0,
                         size_t r1);
typedef void (*MatmulFn)(const void *w, size_t row_bytes, size_t n_cols, const float *x, size_t ldx, size_t n_vec,
                         float *y, size_t ldy, size_t r0, size_t r1);

/* Decode elements [i0, i0+len) of a row of n elements. For block types i0 and len are multiples of 32. */
void dtype_decode_range(DType t, const void *row, size_t n, size_t i0, float *out, size_t len);

/* Elements [i0, i0+len) (multiples of 32) of row `lane` (0-15) of a group of n-element rows of a
 * grouped type t (Q8_0X16 or Q4_0X16). */
void x16_decode_range(DType t, const uint8_t *group, size_t lane, size_t n, size_t i0, float *out, size_t len);

/* The scalar kernels of the grouped types: ISA files hand them what their int8 paths cannot take (a
 * non-finite activation, a row range that does not start or end on a group). */
void matmul_x16_generic(DType t, const void *w, size_t row_bytes, size_t n_cols, const float *x, size_t ldx,
                        size_t n_vec, float *y, size_t ldy, size_t r0, size_t r1);
/* The part of rows [r0, r1) that cuts a group (never from the threaded wrappers: only direct calls)
 * goes to the reference; true with the whole groups [*g0, *g1) left for the caller's SIMD path. */
bool x16_split_groups(DType t, const void *w, size_t row_bytes, size_t n_cols, const float *x, size_t ldx, size_t n_vec,
                      float *y, size_t ldy, size_t r0, size_t r1, size_t *ret_g0, size_t *ret_g1);

/* The table entries of the two grouped types over one implementation impl(DType t, <MatmulFn's
 * arguments>): matvec_/matmul_q8_0x16_<sfx>, matvec_/matmul_q4_0x16_<sfx> and x16_fill_<sfx>(k). */
#define DEFINE_X16_ENTRY(impl, sfx, name, T)                                                                           \
        static void matmul_##name##_##sfx(const void *w, size_t rb, size_t K, const float *x, size_t ldx,              \
                                          size_t n_vec, float *y, size_t ldy, size_t r0, size_t r1) {                  \
                impl(T, w, rb, K, x, ldx, n_vec, y, ldy, r0, r1);                                                      \
        }                                                                                                              \
        static void matvec_##name##_##sfx(const void *w, size_t rb, size_t K, const float *x, float *y, size_t r0,     \
                                          size_t r1) {                                                                 \
                impl(T, w, rb, K, x, K, 1, y, 0, r0, r1);                                                              \
        }
#define DEFINE_X16_ENTRIES(impl, sfx)                                                                                  \
        DEFINE_X16_ENTRY(impl, sfx, q8_0x16, DTYPE_Q8_0X16)                                                            \
        DEFINE_X16_ENTRY(impl, sfx, q4_0x16, DTYPE_Q4_0X16)                                                            \
        static inline void x16_fill_##sfx(Kernels *k) {                                                                \
                k->matvec[DTYPE_Q8_0X16] = matvec_q8_0x16_##sfx;                                                       \
                k->matmul[DTYPE_Q8_0X16] = matmul_q8_0x16_##sfx;                                                       \
                k->matvec[DTYPE_Q4_0X16] = matvec_q4_0x16_##sfx;                                                       \
                k->matmul[DTYPE_Q4_0X16] = matmul_q4_0x16_##sfx;                                                       \
        }

/* Fill every entry with the scalar *_generic reference. */
void kernels_fill_generic(Kernels *k);

/* ISA files: override what they implement in a table already filled with the generic kernels. */
void kernels_fill_avx2(Kernels *k);
/* The AVX2 table with 256-bit vpdpbusd (x86-avx2vnni.c: AVX-VNNI, VEX; -evex: AVX512-VNNI + VL). */
void kernels_fill_avx2vnni(Kernels *k);
void kernels_fill_avx2vnni_evex(Kernels *k);
void kernels_fill_avx512(Kernels *k);
/* Called after kernels_fill_avx512 on CPUs with avx512_vnni: overrides the batched q8_0 matmul. */
void kernels_fill_avx512vnni(Kernels *k);
/* The same CPUs: Q8_0X16 and Q4_0X16 matvec and matmul (x86-avx512vnni-x16.c). */
void kernels_fill_avx512vnni_x16(Kernels *k);
/* The same CPUs: Q8_0 or Q4_0 (t) rows [r0, r0 + 16k) (k as large as fits) through the grouped
 * kernel, 16 rows at a time copied into a group; the rows done (a multiple of 16), 0 when it
 * declined (another type, K over 8192 or not whole blocks, a non-finite x). One copy serves every
 * vector: q8_0 uses it from 9 vectors on, q4_0 from 3 (what measured faster). */
size_t matmul_rows_as_x16_vnni(DType t, const void *w, size_t rb, size_t K, const float *x, size_t ldx, size_t n_vec,
                               float *y, size_t ldy, size_t r0, size_t r1);
/* The same CPUs: Q4_0 matvec and matmul (x86-avx512vnni-q4.c); after the AVX2 / AVX-512 fills,
 * whose Q4_0 kernels it keeps for the rows it refuses. */
void kernels_fill_avx512vnni_q4(Kernels *k);
void kernels_fill_neon(Kernels *k);
/* The NEON table with Q8_0X16 / Q4_0X16 on sdot (arm-neon-dotprod.c), for CPUs with asimddp. */
void kernels_fill_neon_dotprod(Kernels *k);

/* The scalar references, also used by ISA files for their tails. */
void layer_norm_generic(const float *x, const float *w, const float *b, float *y, size_t n, float eps);
void group_norm_generic(const float *x, const float *w, const float *b, float *y, size_t n_groups, size_t group_size,
                        float eps);
void wkv7_generic(float *state, const float *r, const float *w, const float *k, const float *v, const float *a,
                  const float *b, float *y, size_t H, size_t N);
void wkv7_seq_generic(float *state, const float *r, const float *w, const float *k, const float *v, const float *a,
                      const float *b, float *y, size_t ld, size_t n_tok, size_t H, size_t N);
void v7_gates_generic(float *w, const float *w0, float *a, const float *a0, float *v, const float *vf, const float *v0,
                      const float *t, size_t n);
void v7_keys_generic(float *k, float *kk, float *b, const float *a, const float *k_k, const float *k_a, size_t H,
                     size_t N);
void v7_bonus_generic(float *y, const float *r, const float *k, const float *v, const float *g, const float *r_k,
                      size_t H, size_t N);
void add_generic(float *y, const float *x, size_t n);
void relu_sq_generic(float *x, size_t n);
void mix_generic(float *y, const float *x, const float *d, const float *m, size_t n);
size_t penalize_max_generic(float *l, const float *counts, float presence, float frequency, size_t n, float *ret_max);
void softmax_scan_generic(const float *l, size_t n, float max, float inv_t, float d_lim, const float th[4], float *d,
                          float *e, double mass[4], uint32_t count[4]);
size_t select_below_generic(const float *d, size_t n, float bound, uint32_t *idx, size_t max_idx);

static inline uint16_t load_u16(const void *p) {
        uint16_t v;
        memcpy(&v, p, sizeof(v));
        return v;
}
static inline uint32_t load_u32(const void *p) {
        uint32_t v;
        memcpy(&v, p, sizeof(v));
        return v;
}
