/* dtype.c: element types, row sizes, scalar f16/bf16 conversions, and row encode/decode. */
#include <errno.h>
#include <math.h>
#include <string.h>

#include "kernels/dtype.h"
#include "kernels/kernels-internal.h"
#include "kernels/quant.h"

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "row layouts are little endian");

static const struct {
        const char *name;
        size_t block_elems;
        size_t block_bytes; /* for native Q8_0/Q4_0: bytes per 32 elements, scale included */
        bool native;
} dtype_info[_DTYPE_MAX] = {
        [DTYPE_F32] = { "f32", 1, 4, true },
        [DTYPE_F16] = { "f16", 1, 2, true },
        [DTYPE_BF16] = { "bf16", 1, 2, true },
        [DTYPE_Q8_0] = { "q8_0", QK, 34, true },
        [DTYPE_Q4_0] = { "q4_0", QK, 18, true },
        [DTYPE_Q8_0X16] = { "q8_0x16", QK, 34, true }, /* plus 2 per row when nb is odd (quant.h) */
        [DTYPE_Q4_0X16] = { "q4_0x16", QK, 18, true }, /* plus 2 per row when nb is odd (quant.h) */
        [DTYPE_GGML_Q4_0] = { "ggml_q4_0", QK, sizeof(GgmlBlockQ4_0), false },
        [DTYPE_GGML_Q4_1] = { "ggml_q4_1", QK, sizeof(GgmlBlockQ4_1), false },
        [DTYPE_GGML_Q5_0] = { "ggml_q5_0", QK, sizeof(GgmlBlockQ5_0), false },
        [DTYPE_GGML_Q5_1] = { "ggml_q5_1", QK, sizeof(GgmlBlockQ5_1), false },
        [DTYPE_GGML_Q8_0] = { "ggml_q8_0", QK, sizeof(GgmlBlockQ8_0), false },
};

bool dtype_is_valid(int t) {
        return t >= 0 && t < _DTYPE_MAX && dtype_info[t].name;
}

bool dtype_is_native(DType t) {
        return dtype_is_valid(t) && dtype_info[t].native;
}

const char *dtype_name(DType t) {
        return dtype_is_valid(t) ? dtype_info[t].name : NULL;
}

int dtype_from_name(const char *name, DType *ret) {
        if (!name)
                return -EINVAL;
        for (int t = 0; t < _DTYPE_MAX; t++)
                if (dtype_info[t].name && strcmp(dtype_info[t].name, name) == 0) {
                        if (ret)
                                *ret = (DType)t;
                        return 0;
                }
        return -EINVAL;
}

size_t dtype_block_elems(DType t) {
        return dtype_is_valid(t) ? dtype_info[t].block_elems : 0;
}

size_t dtype_row_bytes(DType t, size_t n) {
        if (!dtype_is_valid(t) || n == 0)
                return 0;
        size_t be = dtype_info[t].block_elems, bb = dtype_info[t].block_bytes;
        if (n % be != 0)
                return 0;
        /* Caps n so that every byte count (and n * sizeof(float) in callers) fits comfortably. */
        if (n / be > (SIZE_MAX / 8) / bb)
                return 0;
        if (t == DTYPE_Q8_0X16)
                return q8_0x16_row_bytes(n);
        if (t == DTYPE_Q4_0X16)
                return q4_0x16_row_bytes(n);
        return n / be * bb;
}

size_t dtype_group_rows(DType t) {
        if (!dtype_is_valid(t))
                return 0;
        return t == DTYPE_Q8_0X16 || t == DTYPE_Q4_0X16 ? 16 : 1;
}

/* ---- scalar conversions ---- */

static inline uint32_t f32_bits(float f) {
        uint32_t u;
        memcpy(&u, &f, sizeof(u));
        return u;
}

static inline float bits_f32(uint32_t u) {
        float f;
        memcpy(&f, &u, sizeof(f));
        return f;
}

float f16_to_f32(uint16_t h) {
        uint32_t sign = (uint32_t)(h & 0x8000) << 16;
        uint32_t e = (h >> 10) & 0x1f, m = h & 0x3ff;

        if (e == 0) {
                /* zero or subnormal: m * 2^-24, exact in f32 */
                float v = (float)m * 0x1p-24f;
                return bits_f32(sign | f32_bits(v));
        }
        if (e == 31)
                return bits_f32(sign | 0x7f800000u | (m << 13));
        return bits_f32(sign | ((e + 112) << 23) | (m << 13));
}

uint16_t f32_to_f16(float f) {
        uint32_t x = f32_bits(f);
        uint32_t sign = (x >> 16) & 0x8000;
        uint32_t ax = x & 0x7fffffffu;

        if (ax >= 0x7f800000u) /* inf stays inf, NaN stays a quiet NaN with its top payload bits */
                return (uint16_t)(sign | 0x7c00 | (ax > 0x7f800000u ? 0x200 | ((ax >> 13) & 0x3ff) : 0));
        if (ax >= 0x477ff000u) /* >= 65520 rounds to infinity */
                return (uint16_t)(sign | 0x7c00);
        if (ax >= 0x38800000u) /* normal: rebias the exponent, round the 13 dropped bits to nearest even */
                return (uint16_t)(sign | ((ax - (112u << 23) + 0xfffu + ((ax >> 13) & 1)) >> 13));
        if (ax < 0x33000000u) /* <= 2^-25 (exactly half the smallest subnormal ties to 0) */
                return (uint16_t)sign;

        /* subnormal result: value in units of 2^-24, rounded to nearest even */
        uint32_t e = ax >> 23, m = (ax & 0x7fffffu) | 0x800000u;
        uint32_t shift = 126 - e; /* 14..24 */
        uint32_t r = m >> shift, rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
        if (rem > half || (rem == half && (r & 1)))
                r++;
        return (uint16_t)(sign | r);
}

float bf16_to_f32(uint16_t h) {
        return bits_f32((uint32_t)h << 16);
}

uint16_t f32_to_bf16(float f) {
        uint32_t x = f32_bits(f);
        if ((x & 0x7fffffffu) > 0x7f800000u) /* NaN: truncating could make it inf; keep it a quiet NaN */
                return (uint16_t)((x >> 16) | 0x40);
        return (uint16_t)((x + 0x7fffu + ((x >> 16) & 1)) >> 16);
}

/* ---- encode ---- */

/* One block of 32 to a scale and quants in [-127, 127], quantized against the scale as stored
 * (rounded to f16) so that decode matches encode. */
static void q8_0_quantize_block(const float *x, uint16_t *ret_d, int8_t q[QK]) {
        float amax = 0.f;
        for (size_t j = 0; j < QK; j++)
                amax = fmaxf(amax, fabsf(x[j])); /* fmaxf ignores NaN */
        float d = fminf(amax / 127.f, 65504.f);
        uint16_t dh = f32_to_f16(d);
        float dr = f16_to_f32(dh), id = dr > 0.f ? 1.f / dr : 0.f;
        *ret_d = dh;
        for (size_t j = 0; j < QK; j++) {
                float v = x[j] * id;
                v = isnan(v) ? 0.f : fmaxf(-127.f, fminf(127.f, v));
                q[j] = (int8_t)lrintf(v);
        }
}

static void q8_0_encode(const float *in, uint8_t *row, size_t n) {
        int8_t *q = (int8_t *)(row + q_row_quants_offset(n));

        for (size_t b = 0; b < n / QK; b++) {
                uint16_t dh;
                q8_0_quantize_block(in + b * QK, &dh, q + b * QK);
                memcpy(row + 2 * b, &dh, 2);
        }
}

/* One block of 32 to its f16 scale and 32 stored nibbles (the value + 8, in 0..15). */
static void q4_0_quantize_block(const float *x, uint16_t *ret_d, uint8_t q[QK]) {
        /* The element of largest magnitude maps to -8 exactly, as in ggml: the asymmetric
         * range [-8, 7] then spends its extra level on the side that needs it. */
        float amax = 0.f, vmax = 0.f;
        for (size_t j = 0; j < QK; j++)
                if (fabsf(x[j]) > amax) {
                        amax = fabsf(x[j]);
                        vmax = x[j];
                }
        float d = fmaxf(-65504.f, fminf(65504.f, vmax / -8.f));
        uint16_t dh = f32_to_f16(d);
        float dr = f16_to_f32(dh), id = dr != 0.f ? 1.f / dr : 0.f;
        for (size_t j = 0; j < QK; j++) {
                float v = x[j] * id + 8.f;
                v = isnan(v) ? 8.f : fmaxf(0.f, fminf(15.f, v));
                q[j] = (uint8_t)lrintf(v);
        }
        *ret_d = dh;
}

static void q4_0_encode(const float *in, uint8_t *row, size_t n) {
        uint8_t *qs = row + q_row_quants_offset(n);

        for (size_t b = 0; b < n / QK; b++) {
                uint16_t dh;
                uint8_t q[QK];
                q4_0_quantize_block(in + b * QK, &dh, q);
                memcpy(row + 2 * b, &dh, 2);
                for (size_t j = 0; j < QK / 2; j++)
                        qs[b * (QK / 2) + j] = (uint8_t)(q[j] | (q[j + QK / 2] << 4));
        }
}

/* 16 rows of n elements into one Q8_0X16 group, or Q4_0X16 when q4 (layouts in quant.h). */
static void x16_encode_group(bool q4, const float *in, uint8_t *group, size_t n) {
        size_t nb = n / QK, qb = x16_block_quant_bytes(q4);
        uint8_t *scales = group + x16_scales_offset(q4, n);

        for (size_t i = 0; i < 16; i++)
                for (size_t b = 0; b < nb; b++) {
                        uint16_t dh;
                        uint8_t *line = group + qb * b + 4 * i; /* line j at 64 j */
                        if (q4) {
                                uint8_t q[QK];
                                q4_0_quantize_block(in + i * n + b * QK, &dh, q);
                                for (size_t j = 0; j < 4; j++)
                                        for (size_t k = 0; k < 4; k++)
                                                line[64 * j + k] = (uint8_t)(q[4 * j + k] | q[16 + 4 * j + k] << 4);
                        } else {
                                int8_t q[QK];
                                q8_0_quantize_block(in + i * n + b * QK, &dh, q);
                                for (size_t j = 0; j < 8; j++)
                                        for (size_t k = 0; k < 4; k++)
                                                line[64 * j + k] = (uint8_t)(q[4 * j + k] + 128);
                        }
                        memcpy(scales + 32 * b + 2 * i, &dh, 2);
                }
        if (nb & 1)
                memset(scales + 32 * nb, 0, 32);
}

int dtype_row_from_f32(DType t, const float *in, void *row, size_t n) {
        if (!dtype_is_native(t) || dtype_row_bytes(t, n) == 0 || !in || !row)
                return -EINVAL;

        switch (t) {
        case DTYPE_F32:
                memcpy(row, in, n * sizeof(float));
                break;
        case DTYPE_F16:
                for (size_t i = 0; i < n; i++) {
                        uint16_t h = f32_to_f16(in[i]);
                        memcpy((uint8_t *)row + 2 * i, &h, 2);
                }
                break;
        case DTYPE_BF16:
                for (size_t i = 0; i < n; i++) {
                        uint16_t h = f32_to_bf16(in[i]);
                        memcpy((uint8_t *)row + 2 * i, &h, 2);
                }
                break;
        case DTYPE_Q8_0:
                q8_0_encode(in, row, n);
                break;
        case DTYPE_Q4_0:
                q4_0_encode(in, row, n);
                break;
        default:
                return -EINVAL;
        }
        return 0;
}

int dtype_rows_from_f32(DType t, const float *in, void *data, size_t n, size_t n_rows) {
        size_t g = dtype_group_rows(t), rb = dtype_row_bytes(t, n);
        if (!dtype_is_native(t) || rb == 0 || !in || !data || n_rows % g != 0)
                return -EINVAL;
        for (size_t r = 0; r < n_rows; r += g) {
                uint8_t *dst = (uint8_t *)data + r * rb;
                if (g > 1)
                        x16_encode_group(t == DTYPE_Q4_0X16, in + r * n, dst, n);
                else {
                        int k = dtype_row_from_f32(t, in + r * n, dst, n);
                        if (k < 0)
                                return k;
                }
        }
        return 0;
}

/* ---- decode ---- */

void dtype_row_to_f32(DType t, const void *row, float *out, size_t n) {
        if (dtype_row_bytes(t, n) == 0 || dtype_group_rows(t) != 1)
                return;
        dtype_decode_range(t, row, n, 0, out, n);
}

void x16_decode_range(DType t, const uint8_t *group, size_t lane, size_t n, size_t i0, float *out, size_t len) {
        bool q4 = t == DTYPE_Q4_0X16;
        const uint8_t *scales = group + x16_scales_offset(q4, n);
        for (size_t b = i0 / QK; b < (i0 + len) / QK; b++) {
                float d = f16_to_f32(load_u16(scales + 32 * b + 2 * lane));
                if (q4) {
                        const uint8_t *q = group + 256 * b + 4 * lane;
                        for (size_t j = 0; j < 16; j++)
                                out[j] = d * (float)((q[64 * (j / 4) + j % 4] & 0xF) - 8);
                        for (size_t j = 0; j < 16; j++)
                                out[16 + j] = d * (float)((q[64 * (j / 4) + j % 4] >> 4) - 8);
                        out += QK;
                        continue;
                }
                for (size_t j = 0; j < 8; j++)
                        for (size_t k = 0; k < 4; k++)
                                *out++ = d * (float)((int)group[512 * b + 64 * j + 4 * lane + k] - 128);
        }
}

void dtype_rows_to_f32(DType t, const void *data, size_t n, size_t r0, size_t n_rows, float *out) {
        size_t rb = dtype_row_bytes(t, n);
        if (rb == 0)
                return;
        for (size_t r = r0; r < r0 + n_rows; r++, out += n) {
                if (dtype_group_rows(t) == 16)
                        x16_decode_range(t, (const uint8_t *)data + (r / 16) * 16 * rb, r % 16, n, 0, out, n);
                else
                        dtype_decode_range(t, (const uint8_t *)data + r * rb, n, 0, out, n);
        }
}
