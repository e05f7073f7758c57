/* tensor.h: a view of a weight tensor (no ownership): type, shape in PyTorch order, bytes. */
#pragma once

#include <stdint.h>

#include "kernels/dtype.h"

#define TENSOR_MAX_DIMS 4

typedef struct Tensor {
        DType dtype;
        uint32_t n_dims;
        uint64_t shape[TENSOR_MAX_DIMS]; /* PyTorch order: shape[n_dims-1] is contiguous */
        const void *data;                /* often inside a read-only mmap */
        uint64_t nbytes;
} Tensor;

/* For a 2-D matrix: rows = shape[0] (outputs), cols = shape[1] (inputs). */
static inline uint64_t tensor_rows(const Tensor *t) {
        return t->n_dims >= 2 ? t->shape[0] : 1;
}
static inline uint64_t tensor_cols(const Tensor *t) {
        return t->shape[t->n_dims - 1];
}
static inline uint64_t tensor_nelem(const Tensor *t) {
        uint64_t n = 1;
        for (uint32_t i = 0; i < t->n_dims; i++)
                n *= t->shape[i];
        return n;
}
