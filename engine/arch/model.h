/* model.h: a loaded RWKV model (any supported architecture) and its forward pass.
 *
 * CONTRACT used by rwkvd and rwkvctl. A Model is immutable after model_load and may be shared by
 * threads; an EvalCtx holds scratch buffers and is used by one thread at a time. A session's state is
 * a flat float array of info->state_floats elements that the caller owns, copies and saves.
 *
 * State layout (f32, layer after layer, C = n_embd, H = n_head, N = head_size):
 *   v4:        [att shift C][ffn shift C][aa C][bb C][pp C]      (pp starts at -1e30: model_state_reset)
 *   v5, v6:    [att shift C][ffn shift C][WKV H x N x N]          (per head: row = key, column = value)
 *   v7:        [att shift C][ffn shift C][WKV H x N x N]          (per head: row = value, column = key)
 * A state belongs to the model that made it (same hash); copying it is how sessions fork and save.
 * Evaluation errors (-EINVAL: token >= n_vocab, B > max_batch) are detected before any state changes. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/common/error.h"
#include "engine/format/tensor-table.h"
#include "engine/text/tokenizer.h"
#include "kernels/kernels.h"

typedef enum ModelArch {
        MODEL_ARCH_V4 = 40,
        MODEL_ARCH_V5_1 = 51,
        MODEL_ARCH_V5_2 = 52,
        MODEL_ARCH_V6 = 60,
        MODEL_ARCH_V7 = 70,
} ModelArch;

typedef struct ModelInfo {
        ModelArch arch;
        const char *arch_name; /* "rwkv4", "rwkv5.1", "rwkv5.2", "rwkv6", "rwkv7" */
        uint32_t n_layer, n_embd, n_vocab, n_head, head_size, n_ffn;
        DType wtype; /* type of the large matrices */
        ModelFormat format;
        const char *format_name;
        uint64_t file_size;
        uint64_t weight_bytes; /* bytes of weights streamed per decoded token */
        size_t state_floats;   /* floats in one session state */
        uint8_t hash[32];      /* BLAKE2b-256 that names the model */
        char hash_hex[65];
        char name[256]; /* basename of the file */
} ModelInfo;

typedef struct ModelLoadOptions {
        const char *vocab_path; /* World vocabulary for files that embed none (NULL: none) */
} ModelLoadOptions;

typedef struct Model Model;

int model_load(const char *path, const ModelLoadOptions *opts, Model **ret, RwkvError *err);
Model *model_free(Model *m);
const ModelInfo *model_info(const Model *m);
/* Byte-level for vocab 256, the World tokenizer when embedded or given; NULL when unknown. */
const Tokenizer *model_tokenizer(const Model *m);

/* A fresh (empty-context) state: zeros, except where an architecture needs otherwise (v4). */
void model_state_reset(const Model *m, float *state);

typedef struct EvalCtx EvalCtx;

/* max_batch: most sessions model_eval_batch takes; chunk: prefill tokens per matmul pass (0 = default). */
int evalctx_new(const Model *m, ThreadPool *pool, size_t max_batch, size_t chunk, EvalCtx **ret);
EvalCtx *evalctx_free(EvalCtx *ctx);

/* Feed n tokens from state (updated in place), in chunked sequence mode; logits (n_vocab floats, or
 * NULL to skip the head) are those after the last token. n == 0 is allowed (no-op). */
int model_eval_sequence(EvalCtx *ctx, float *state, const uint32_t *tokens, size_t n, float *logits);
/* The same, but the logits after EVERY token: logits holds n x n_vocab floats (scoring, perplexity). */
int model_eval_sequence_all(EvalCtx *ctx, float *state, const uint32_t *tokens, size_t n, float *logits);
/* One token in RNN mode. */
int model_eval_token(EvalCtx *ctx, float *state, uint32_t token, float *logits);
/* B sessions one token each, one weight pass; logits[i] may be NULL. B <= max_batch. The states must
 * be distinct arrays. */
int model_eval_batch(EvalCtx *ctx, float *const *states, const uint32_t *tokens, size_t B, float *const *logits);
