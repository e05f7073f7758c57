/* dtype.h: weight element types, their row layouts, and conversion to and from f32.
 *
 * CONTRACT (kernels/ owns the layouts; the numeric values are stored in .rwkv files, never renumber):
 * a weight matrix is stored row by row (row = one output feature, PyTorch's (out, in) order), every
 * row independently encoded in dtype_row_bytes(dtype, cols) bytes, so threads split by rows and an
 * embedding lookup decodes one row. The one exception is a grouped type (dtype_group_rows() > 1:
 * Q8_0X16 and Q4_0X16): its rows are encoded together in groups of that many (a matrix of it has a
 * multiple of 16 rows, group g is the 16 * dtype_row_bytes() bytes at g times that), so threads
 * split on group boundaries and a row is read through dtype_rows_to_f32(). Native types have fast
 * kernels on every ISA; the GGML_* types are rwkv.cpp's block formats, read in place from .bin files
 * with generic kernels only (`rwkvctl model convert` turns them into native types). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum DType {
        DTYPE_F32 = 0,
        DTYPE_F16 = 1,
        DTYPE_BF16 = 2,
        DTYPE_Q8_0 = 3,       /* native 8-bit, blocks of 32 (layout in kernels/quant.h) */
        DTYPE_Q4_0 = 4,       /* native 4-bit, blocks of 32 (layout in kernels/quant.h) */
        DTYPE_Q8_0X16 = 5,    /* Q8_0's values, 16 rows interleaved (layout in kernels/quant.h) */
        DTYPE_Q4_0X16 = 6,    /* Q4_0's values, 16 rows interleaved (layout in kernels/quant.h) */
        DTYPE_GGML_Q4_0 = 16, /* rwkv.cpp / ggml block formats, 32 elements per block */
        DTYPE_GGML_Q4_1 = 17,
        DTYPE_GGML_Q5_0 = 18,
        DTYPE_GGML_Q5_1 = 19,
        DTYPE_GGML_Q8_0 = 20,
        _DTYPE_MAX = 21,
        _DTYPE_INVALID = -1,
} DType;

bool dtype_is_valid(int t);
bool dtype_is_native(DType t);
const char *dtype_name(DType t);                 /* "f32", "f16", "bf16", "q8_0", "q4_0", "ggml_q5_1", ... */
int dtype_from_name(const char *name, DType *ret); /* 0 or -EINVAL */
size_t dtype_block_elems(DType t);               /* 1 for float types, 32 for block types */
/* Bytes of one row of n elements; 0 when n is not a multiple of the block size (caller must reject).
 * For a grouped type, a group's bytes divided by its rows. */
size_t dtype_row_bytes(DType t, size_t n);
/* Rows encoded together: 16 for Q8_0X16 and Q4_0X16, 1 for every other valid type, 0 for an invalid one. */
size_t dtype_group_rows(DType t);

/* Decode one row of n elements to f32 (row types only: a grouped type leaves out untouched). */
void dtype_row_to_f32(DType t, const void *row, float *out, size_t n);
/* Encode one row of n f32 elements (native row types only); -EINVAL for others or a bad n. */
int dtype_row_from_f32(DType t, const float *in, void *row, size_t n);

/* Decode rows [r0, r0 + n_rows) of the matrix of n-element rows at data (every type, any r0) into
 * out, n_rows * n floats. */
void dtype_rows_to_f32(DType t, const void *data, size_t n, size_t r0, size_t n_rows, float *out);
/* Encode n_rows rows of n f32 elements (native types; n_rows a multiple of dtype_group_rows()) into
 * n_rows * dtype_row_bytes(t, n) bytes at data; -EINVAL for a bad type, n or n_rows. */
int dtype_rows_from_f32(DType t, const float *in, void *data, size_t n, size_t n_rows);

/* Scalar conversions used everywhere (round to nearest even). */
float f16_to_f32(uint16_t h);
uint16_t f32_to_f16(float f);
float bf16_to_f32(uint16_t h);
uint16_t f32_to_bf16(float f);
