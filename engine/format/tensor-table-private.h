/* tensor-table-private.h: what the loaders share to build a TensorTable (not for engine/arch). */
#pragma once

#include "engine/format/tensor-table.h"

typedef struct TableEntry {
        char *name; /* owned copy, NUL-terminated */
        Tensor tensor;
        void *owned; /* aligned copy of the data when the file's bytes could not be used in place */
} TableEntry;

struct TensorTable {
        ModelFormat format;
        char format_name[32];
        ParamConvention convention;
        TensorTableMeta meta;

        const uint8_t *data; /* the whole file, read-only */
        size_t size;
        void *map; /* munmap'ed on free; NULL for borrowed memory */
        size_t map_len;

        TableEntry *entries;
        size_t n_entries, n_allocated;
        size_t *buckets; /* open addressing over entries, SIZE_MAX = empty */
        size_t n_buckets;

        bool hash_known;
        uint8_t hash[32];

        const char *vocab; /* inside data, NUL-terminated */
        size_t vocab_len;
};

/* Bytes of one row of n elements of a type, as files store it; 0 when n is not a whole number of
 * blocks or the type is unknown. Matches kernels/dtype.h's dtype_row_bytes for the types both know. */
size_t format_row_bytes(DType t, uint64_t n);
/* Alignment the kernels need to read a type in place (elements or block fields). */
size_t format_dtype_align(DType t);

/* Checks n_dims, every dimension (>= 1), the element count and the byte size (no overflow, whole
 * blocks per row) and fills tensor->{dtype,n_dims,shape,nbytes}. Shape in PyTorch order. */
int format_tensor_shape(Tensor *tensor, DType dtype, uint32_t n_dims, const uint64_t *shape, RwkvError *err);

/* Adds a tensor whose shape was checked by format_tensor_shape(). src (tensor->nbytes bytes, inside
 * the file) is used in place when aligned, else copied. Rejects bad names and duplicates. */
int table_add(TensorTable *t, const char *name, size_t name_len, const Tensor *tensor, const void *src, RwkvError *err);

/* Loaders: the table's data/size are set; they fill format, convention, meta and tensors. */
int rwkvcpp_load(TensorTable *t, RwkvError *err);
int pth_load(TensorTable *t, RwkvError *err);
int native_load(TensorTable *t, RwkvError *err);

/* Little-endian readers over an unaligned byte pointer. */
static inline uint16_t read_le16(const uint8_t *p) {
        return (uint16_t)(p[0] | (p[1] << 8));
}
static inline uint32_t read_le32(const uint8_t *p) {
        return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}
static inline uint64_t read_le64(const uint8_t *p) {
        return (uint64_t)read_le32(p) | ((uint64_t)read_le32(p + 4) << 32);
}

/* Index of the first non-finite value (float types) or block scale (quantized), or -1. */
int64_t format_first_nonfinite(const Tensor *x);
