/* fuzz-common.h: what every model-file fuzz target does with a table that opened: touch every
 * tensor's first and last byte (ASan sees any out-of-bounds pointer) and run the full verification. */
#pragma once

#include "engine/format/tensor-table.h"

static inline void fuzz_exercise_table(TensorTable *t) {
        volatile uint8_t sink = 0;
        for (size_t i = 0; i < tensor_table_count(t); i++) {
                const Tensor *x = tensor_table_at(t, i);
                sink ^= ((const uint8_t *)x->data)[0] ^ ((const uint8_t *)x->data)[x->nbytes - 1];
                (void)tensor_table_get(t, tensor_table_name_at(t, i));
        }
        size_t vlen;
        const char *v = tensor_table_vocab(t, &vlen);
        if (v)
                sink ^= (uint8_t)v[vlen];
        RwkvError err = {};
        (void)tensor_table_verify(t, &err);
        uint8_t h[32];
        (void)tensor_table_hash(t, h);
        (void)sink;
}
