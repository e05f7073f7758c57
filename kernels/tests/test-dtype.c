/* test-dtype: names, row sizes, f16/bf16 conversions, native encode/decode, ggml block decode. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/cpu.h"
#include "kernels/dtype.h"
#include "kernels/quant.h"
#include "tests/lib/check.h"
#include "test-util.h"

#if defined(__x86_64__)
#include <immintrin.h>
__attribute__((target("f16c"))) static uint16_t hw_f32_to_f16(float f) {
        return (uint16_t)_cvtss_sh(f, _MM_FROUND_TO_NEAREST_INT);
}
#endif

static float from_bits(uint32_t u) {
        float f;
        memcpy(&f, &u, 4);
        return f;
}

static void test_names(void) {
        DType t;
        for (int i = -2; i < _DTYPE_MAX + 2; i++) {
                bool valid = (i >= 0 && i <= 6) || (i >= 16 && i <= 20);
                CHECK(dtype_is_valid(i) == valid);
                if (!valid)
                        continue;
                const char *n = dtype_name((DType)i);
                CHECK(n);
                CHECK_OK(dtype_from_name(n, &t));
                CHECK((int)t == i);
                CHECK(dtype_is_native((DType)i) == (i <= 6));
                CHECK(dtype_group_rows((DType)i) == (i == DTYPE_Q8_0X16 || i == DTYPE_Q4_0X16 ? 16u : 1u));
        }
        CHECK(dtype_group_rows((DType)7) == 0);
        CHECK_STREQ(dtype_name(DTYPE_Q8_0X16), "q8_0x16");
        CHECK_STREQ(dtype_name(DTYPE_Q4_0X16), "q4_0x16");
        CHECK(dtype_name((DType)7) == NULL);
        CHECK_STREQ(dtype_name(DTYPE_GGML_Q5_1), "ggml_q5_1");
        CHECK_STREQ(dtype_name(DTYPE_BF16), "bf16");
        CHECK_ERR(dtype_from_name("q3_k", &t), EINVAL);
        CHECK_ERR(dtype_from_name("", &t), EINVAL);
        CHECK_ERR(dtype_from_name(NULL, &t), EINVAL);
}

static void test_row_bytes(void) {
        CHECK(dtype_row_bytes(DTYPE_F32, 3) == 12);
        CHECK(dtype_row_bytes(DTYPE_F16, 3) == 6);
        CHECK(dtype_row_bytes(DTYPE_BF16, 768) == 1536);
        CHECK(dtype_row_bytes(DTYPE_Q8_0, 64) == 68);
        CHECK(dtype_row_bytes(DTYPE_Q4_0, 64) == 36);
        CHECK(dtype_row_bytes(DTYPE_GGML_Q4_0, 64) == 36);
        CHECK(dtype_row_bytes(DTYPE_GGML_Q4_1, 64) == 40);
        CHECK(dtype_row_bytes(DTYPE_GGML_Q5_0, 64) == 44);
        CHECK(dtype_row_bytes(DTYPE_GGML_Q5_1, 64) == 48);
        CHECK(dtype_row_bytes(DTYPE_GGML_Q8_0, 64) == 68);
        CHECK(dtype_block_elems(DTYPE_F16) == 1);
        CHECK(dtype_block_elems(DTYPE_GGML_Q5_0) == 32);
        /* rejected: not a multiple of the block, zero, overflow, invalid type */
        CHECK(dtype_row_bytes(DTYPE_Q8_0, 33) == 0);
        CHECK(dtype_row_bytes(DTYPE_GGML_Q4_1, 16) == 0);
        CHECK(dtype_row_bytes(DTYPE_F32, 0) == 0);
        CHECK(dtype_row_bytes(DTYPE_F32, SIZE_MAX / 2) == 0);
        CHECK(dtype_row_bytes(DTYPE_Q8_0, SIZE_MAX / 64 * 32) == 0);
        /* the grouped types: their row type's bytes, plus 2 a row when the block count is odd (a
         * group is whole lines) */
        static const struct {
                DType t;
                size_t n, bytes;
        } grouped[] = {
                { DTYPE_Q8_0X16, 64, 68 },     { DTYPE_Q8_0X16, 96, 104 },  { DTYPE_Q8_0X16, 768, 816 },
                { DTYPE_Q8_0X16, 1056, 1124 }, { DTYPE_Q8_0X16, 48, 0 },    { DTYPE_Q4_0X16, 64, 36 },
                { DTYPE_Q4_0X16, 96, 56 },     { DTYPE_Q4_0X16, 768, 432 }, { DTYPE_Q4_0X16, 48, 0 },
        };
        for (size_t i = 0; i < sizeof(grouped) / sizeof(grouped[0]); i++)
                CHECK(dtype_row_bytes(grouped[i].t, grouped[i].n) == grouped[i].bytes);
        for (size_t n = 32; n <= 4096; n += 32) {
                CHECK(16 * dtype_row_bytes(DTYPE_Q8_0X16, n) % 64 == 0);
                CHECK(16 * dtype_row_bytes(DTYPE_Q4_0X16, n) % 64 == 0);
        }
        CHECK(dtype_row_bytes((DType)9, 32) == 0);
        CHECK(dtype_row_bytes((DType)-1, 32) == 0);
}

static void test_f16(void) {
        /* every f16 survives f16 -> f32 -> f16; NaNs stay NaN */
        for (uint32_t h = 0; h < 0x10000; h++) {
                float f = f16_to_f32((uint16_t)h);
                bool nan = (h & 0x7c00) == 0x7c00 && (h & 0x3ff);
                if (nan) {
                        CHECK(isnan(f));
                        CHECK(((f32_to_f16(f) & 0x7c00) == 0x7c00) && (f32_to_f16(f) & 0x3ff));
                } else
                        CHECK(f32_to_f16(f) == h);
        }
        CHECK(f16_to_f32(0x3c00) == 1.f);
        CHECK(f16_to_f32(0xc000) == -2.f);
        CHECK(f16_to_f32(0x0001) == 0x1p-24f);
        CHECK(f16_to_f32(0x7bff) == 65504.f);
        CHECK(f32_to_f16(65519.f) == 0x7bff);
        CHECK(f32_to_f16(65520.f) == 0x7c00);
        CHECK(f32_to_f16(-1e9f) == 0xfc00);
        CHECK(f32_to_f16(0x1p-25f) == 0);            /* tie to even: 0 */
        CHECK(f32_to_f16(0x1.8p-25f) == 1);          /* above the tie */
        CHECK(f32_to_f16(0x1.8p-24f) == 2);          /* 1.5 ulp ties to even 2 */
        CHECK(f32_to_f16(1.f + 0x1p-11f) == 0x3c00); /* tie to even, down */
        CHECK(f32_to_f16(1.f + 0x3p-11f) == 0x3c02); /* tie to even, up */
        CHECK(f32_to_f16(-0.f) == 0x8000);
        CHECK(f32_to_f16(from_bits(1)) == 0); /* f32 subnormal */

#if defined(__x86_64__)
        if (cpu_features()->f16c) { /* clang 14 knows no "f16c" for __builtin_cpu_supports */
                /* random bit patterns against the hardware conversion */
                test_seed(1);
                for (int i = 0; i < 2000000; i++) {
                        uint32_t u = test_rand32();
                        float f = from_bits(u);
                        uint16_t a = f32_to_f16(f), b = hw_f32_to_f16(f);
                        if (isnan(f))
                                CHECK(isnan(f16_to_f32(a)));
                        else if (a != b) {
                                fprintf(stderr, "f32 %08x: soft %04x hw %04x\n", u, a, b);
                                CHECK(a == b);
                        }
                }
        } else
                fprintf(stderr, "no F16C: skipping the hardware comparison\n");
#endif
}

static void test_bf16(void) {
        for (uint32_t h = 0; h < 0x10000; h++) {
                float f = bf16_to_f32((uint16_t)h);
                if (isnan(f))
                        CHECK(isnan(bf16_to_f32(f32_to_bf16(f))));
                else
                        CHECK(f32_to_bf16(f) == h);
        }
        CHECK(f32_to_bf16(1.f) == 0x3f80);
        CHECK(f32_to_bf16(from_bits(0x3f808000)) == 0x3f80); /* tie to even, down */
        CHECK(f32_to_bf16(from_bits(0x3f818000)) == 0x3f82); /* tie to even, up */
        CHECK(f32_to_bf16(from_bits(0x3f808001)) == 0x3f81);
        CHECK(isnan(bf16_to_f32(f32_to_bf16(from_bits(0x7f800001))))); /* NaN must not become inf */
        CHECK(f32_to_bf16(from_bits(0x7f7fffff)) == 0x7f80);           /* FLT_MAX rounds to inf */
}

/* Encode then decode: every element within half a quantization step of the input. */
static void test_native_roundtrip(DType t, size_t n) {
        float *x = malloc(n * sizeof(float)), *y = malloc(n * sizeof(float));
        uint8_t *row = malloc(dtype_row_bytes(t, n));
        CHECK(x && y && row);
        for (size_t i = 0; i < n; i++)
                x[i] = test_randf() * (i % 7 == 0 ? 10.f : 1.f);
        CHECK_OK(dtype_row_from_f32(t, x, row, n));
        dtype_row_to_f32(t, row, y, n);
        for (size_t i = 0; i < n; i++) {
                double tol;
                if (t == DTYPE_F32)
                        tol = 0;
                else if (t == DTYPE_F16)
                        tol = fabs(x[i]) * 0x1p-11 + 0x1p-25; /* subnormal f16 below 2^-14 */
                else if (t == DTYPE_BF16)
                        tol = fabs(x[i]) * 0x1p-8;
                else {
                        float amax = 0;
                        size_t b0 = i / QK * QK;
                        for (size_t j = b0; j < b0 + QK; j++)
                                amax = fmaxf(amax, fabsf(x[j]));
                        /* half a step, plus the f16 rounding of the scale over the whole range */
                        /* Q4_0 maps the largest magnitude to -8, so the other side clamps at +7: a full step */
                        double step = t == DTYPE_Q8_0 ? amax / 127.0 * 0.5 : amax / 8.0;
                        tol = step * 1.01 + amax * 0x1p-10;
                }
                if (!(fabs(x[i] - y[i]) <= tol)) {
                        fprintf(stderr, "%s n=%zu i=%zu: %g -> %g\n", dtype_name(t), n, i, x[i], y[i]);
                        CHECK(false);
                }
        }
        free(x);
        free(y);
        free(row);
}

static void test_native_exact(void) {
        /* integers in [-127, 127] with a max of 127 survive Q8_0 exactly (scale 1) */
        float x[64], y[64];
        uint8_t row[68];
        for (int i = 0; i < 64; i++)
                x[i] = (float)((i * 37) % 255 - 127);
        x[0] = 127;
        x[32] = -127;
        CHECK_OK(dtype_row_from_f32(DTYPE_Q8_0, x, row, 64));
        CHECK(dtype_row_bytes(DTYPE_Q8_0, 64) == sizeof(row));
        dtype_row_to_f32(DTYPE_Q8_0, row, y, 64);
        for (int i = 0; i < 64; i++)
                CHECK(x[i] == y[i]);
        /* layout: scales first, then quants */
        uint16_t d0;
        memcpy(&d0, row, 2);
        CHECK(d0 == 0x3c00);
        CHECK((int8_t)row[4] == 127 && (int8_t)row[4 + 32] == -127);

        /* Q4_0: values -8..7 times 0.5, the largest magnitude negative so d = 0.5 exactly */
        uint8_t r4[18];
        for (int i = 0; i < 32; i++)
                x[i] = (float)((i % 16) - 8) * 0.5f;
        CHECK_OK(dtype_row_from_f32(DTYPE_Q4_0, x, r4, 32));
        dtype_row_to_f32(DTYPE_Q4_0, r4, y, 32);
        for (int i = 0; i < 32; i++)
                CHECK(x[i] == y[i]);
        CHECK((r4[2] & 0xf) == 0 && (r4[2] >> 4) == 0); /* element 0 and 16 are both -8 */
        CHECK((r4[3] & 0xf) == 1);

        /* all zero and hostile values: no crash, finite output */
        memset(x, 0, sizeof(x));
        x[3] = NAN;
        x[40] = INFINITY;
        x[41] = -INFINITY;
        CHECK_OK(dtype_row_from_f32(DTYPE_Q8_0, x, row, 64));
        dtype_row_to_f32(DTYPE_Q8_0, row, y, 64);
        CHECK_OK(dtype_row_from_f32(DTYPE_Q4_0, x, row, 64));
        dtype_row_to_f32(DTYPE_Q4_0, row, y, 64);
        for (int i = 0; i < 64; i++)
                CHECK(!isnan(y[i]));

        CHECK_ERR(dtype_row_from_f32(DTYPE_GGML_Q8_0, x, row, 32), EINVAL);
        CHECK_ERR(dtype_row_from_f32(DTYPE_Q8_0, x, row, 48), EINVAL);
        CHECK_ERR(dtype_row_from_f32((DType)12, x, row, 32), EINVAL);
}

static void put16(uint8_t *p, uint16_t v) {
        memcpy(p, &v, 2);
}

/* Hand-built ggml blocks, decoded against the formulas of ggml's dequantize_row_*. */
static void test_ggml(void) {
        float y[64];

        uint8_t q40[2 * 18];
        for (int b = 0; b < 2; b++) {
                put16(q40 + 18 * b, f32_to_f16(b ? -0.25f : 2.f));
                for (int j = 0; j < 16; j++)
                        q40[18 * b + 2 + j] = (uint8_t)((j & 0xf) | ((15 - j) << 4));
        }
        dtype_row_to_f32(DTYPE_GGML_Q4_0, q40, y, 64);
        for (int b = 0; b < 2; b++)
                for (int j = 0; j < 16; j++) {
                        float d = b ? -0.25f : 2.f;
                        CHECK(y[32 * b + j] == d * (float)(j - 8));
                        CHECK(y[32 * b + j + 16] == d * (float)(15 - j - 8));
                }

        uint8_t q41[20];
        put16(q41, f32_to_f16(0.5f));
        put16(q41 + 2, f32_to_f16(-3.f));
        for (int j = 0; j < 16; j++)
                q41[4 + j] = (uint8_t)(j | (((j * 3) & 0xf) << 4));
        dtype_row_to_f32(DTYPE_GGML_Q4_1, q41, y, 32);
        for (int j = 0; j < 16; j++) {
                CHECK(y[j] == 0.5f * (float)j - 3.f);
                CHECK(y[j + 16] == 0.5f * (float)((j * 3) & 0xf) - 3.f);
        }

        uint8_t q50[22];
        uint32_t qh = 0x80010002u; /* 5th bit set for elements 1, 16, 31 */
        put16(q50, f32_to_f16(1.f));
        memcpy(q50 + 2, &qh, 4);
        for (int j = 0; j < 16; j++)
                q50[6 + j] = (uint8_t)(j | (j << 4));
        dtype_row_to_f32(DTYPE_GGML_Q5_0, q50, y, 32);
        for (int j = 0; j < 32; j++) {
                int q = (j % 16) | (((qh >> j) & 1) << 4);
                CHECK(y[j] == (float)(q - 16));
        }
        CHECK(y[1] == 1.f && y[16] == 0.f && y[31] == 15.f && y[0] == -16.f);

        uint8_t q51[24];
        put16(q51, f32_to_f16(0.25f));
        put16(q51 + 2, f32_to_f16(1.f));
        memcpy(q51 + 4, &qh, 4);
        for (int j = 0; j < 16; j++)
                q51[8 + j] = (uint8_t)((15 - j) | (j << 4));
        dtype_row_to_f32(DTYPE_GGML_Q5_1, q51, y, 32);
        for (int j = 0; j < 32; j++) {
                int nib = j < 16 ? 15 - j : j - 16;
                int q = nib | (((qh >> j) & 1) << 4);
                CHECK(y[j] == 0.25f * (float)q + 1.f);
        }

        uint8_t q80[34];
        put16(q80, f32_to_f16(0.125f));
        for (int j = 0; j < 32; j++)
                q80[2 + j] = (uint8_t)(int8_t)(j * 8 - 128);
        dtype_row_to_f32(DTYPE_GGML_Q8_0, q80, y, 32);
        for (int j = 0; j < 32; j++)
                CHECK(y[j] == 0.125f * (float)(j * 8 - 128));
}

/* A grouped type (Q8_0X16 / Q4_0X16) holds its row type's values exactly, at the places quant.h
 * gives, and encodes whole groups only. */
static void test_x16(DType t, size_t rows, size_t n) {
        bool q4 = t == DTYPE_Q4_0X16;
        DType rt = q4 ? DTYPE_Q4_0 : DTYPE_Q8_0;
        size_t nb = n / QK, rb = dtype_row_bytes(t, n), qb = dtype_row_bytes(rt, n), QB = x16_block_quant_bytes(q4);
        float *x = malloc(rows * n * sizeof(float)), *y = malloc(rows * n * sizeof(float)),
              *ref = malloc(n * sizeof(float));
        uint8_t *g = malloc(rows * rb), *q = malloc(qb);
        CHECK(x && y && ref && g && q);
        for (size_t i = 0; i < rows * n; i++)
                x[i] = test_randf() * (i % 7 == 0 ? 100.f : 1.f);
        memset(g, 0xee, rows * rb);
        CHECK_OK(dtype_rows_from_f32(t, x, g, n, rows));
        dtype_rows_to_f32(t, g, n, 0, rows, y);
        for (size_t r = 0; r < rows; r++) {
                CHECK_OK(dtype_row_from_f32(rt, x + r * n, q, n));
                dtype_row_to_f32(rt, q, ref, n);
                CHECK(memcmp(ref, y + r * n, n * sizeof(float)) == 0);
                /* one row alone, from any place in its group */
                float one[4096];
                dtype_rows_to_f32(t, g, n, r, 1, one);
                CHECK(memcmp(one, ref, n * sizeof(float)) == 0);
                /* the layout itself: element 32b + 4j + k of row 16G + i (for Q4_0X16 the byte is Q4_0's
                 * byte 16b + 4j + k, whose high nibble is element 16 + 4j + k) */
                const uint8_t *grp = g + r / 16 * 16 * rb;
                size_t i = r % 16, b = nb - 1, k = 2;
                for (size_t j = 0; j < (q4 ? 4u : 8u); j++) {
                        const uint8_t *qs = q + q_row_quants_offset(n);
                        uint8_t want = q4 ? qs[16 * b + 4 * j + k] : (uint8_t)((int8_t)qs[32 * b + 4 * j + k] + 128);
                        CHECK(grp[QB * b + 64 * j + 4 * i + k] == want);
                }
                CHECK(memcmp(grp + QB * nb + 32 * b + 2 * i, q + 2 * b, 2) == 0);
                if (nb & 1)
                        for (size_t p = 0; p < 32; p++)
                                CHECK(grp[QB * nb + 32 * nb + p] == 0);
        }
        CHECK_ERR(dtype_rows_from_f32(t, x, g, n, rows - 1), EINVAL);
        CHECK_ERR(dtype_row_from_f32(t, x, g, n), EINVAL);
        CHECK_ERR(dtype_rows_from_f32(t, x, g, n + 16, rows), EINVAL);
        free(x);
        free(y);
        free(ref);
        free(g);
        free(q);
}

int main(void) {
        test_names();
        test_row_bytes();
        test_f16();
        test_bf16();
        test_seed(2);
        const DType native[] = { DTYPE_F32, DTYPE_F16, DTYPE_BF16, DTYPE_Q8_0, DTYPE_Q4_0 };
        for (size_t i = 0; i < sizeof(native) / sizeof(native[0]); i++)
                for (size_t n = 32; n <= 4096; n *= 2) {
                        test_native_roundtrip(native[i], n);
                        test_native_roundtrip(native[i], n + 32 * 3);
                }
        test_native_roundtrip(DTYPE_F16, 7);
        test_native_roundtrip(DTYPE_BF16, 1);
        test_native_exact();
        test_ggml();
        for (int q4 = 0; q4 < 2; q4++) {
                DType t = q4 ? DTYPE_Q4_0X16 : DTYPE_Q8_0X16;
                test_x16(t, 16, 32);
                test_x16(t, 32, 96);
                test_x16(t, 48, 768);
                test_x16(t, 16, 4096);
        }
        return 0;
}
