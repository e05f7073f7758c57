/* convert.h: produce native .rwkv files: from any loaded TensorTable, or random RWKV-7 weights.
 * Both stream tensor by tensor (row by row when re-encoding): no model is ever held in memory. */
#pragma once

#include "engine/format/tensor-table.h"

typedef void (*ConvertProgress)(uint64_t done, uint64_t total, void *userdata);

typedef struct ConvertOptions {
        int type;          /* DType for weight matrices; -1 keeps each tensor's type (ggml -> native) */
        const char *vocab; /* World vocabulary text to embed; NULL keeps the source's */
        size_t vocab_len;
        const TensorTableMeta *meta; /* header facts to record; NULL: the source's */
        ConvertProgress progress;    /* bytes of tensor data done / total; may be NULL */
        void *userdata;
} ConvertOptions;

/* Which type a tensor gets. Only 2-D "*.weight" matrices whose rows are whole 32-blocks take the
 * requested type; with a requested type every other tensor stays exact: f16/bf16 as they are (f32 when
 * f32 is the requested type), anything else as f32; without one, native types stay as they are
 * (bit-identical), ggml q8_0 becomes q8_0 and the other ggml block types f16. */
DType convert_target_type(const char *name, const Tensor *src, int type);
/* The type a weight matrix of `rows` rows gets when `type` is asked: type itself, except that
 * q8_0x16 and q4_0x16 (16 rows a group) fall back to q8_0 and q4_0 for the embedding (read one row
 * per token) and for a row count that is not whole groups. */
DType convert_matrix_type(const char *name, uint64_t rows, DType type);

int model_convert(TensorTable *src, const char *out_path, const ConvertOptions *opts, uint8_t ret_hash[32],
                  RwkvError *err);

typedef struct RandomModelOptions {
        uint32_t version; /* 7 */
        uint32_t n_layer, n_embd, n_vocab;
        uint64_t seed;
        int type; /* DType of the weight matrices; -1 = f32 */
        ConvertProgress progress;
        void *userdata;
} RandomModelOptions;

/* RWKV-7 (x070) with the official names and shapes, initialized like a real model at the start of
 * training: finite logits in any precision. n_embd must be a multiple of 64 (head size 64). */
int model_write_random(const RandomModelOptions *opts, const char *out_path, uint8_t ret_hash[32], RwkvError *err);
