/* tensor-table.h: the named tensors of a model file, whatever its format.
 *
 * CONTRACT between the loaders (engine/format/) and the architectures (engine/arch/): a TensorTable
 * lists tensors by their official PyTorch names ("emb.weight", "blocks.3.att.key.weight", ...) with
 * shapes in PyTorch order. Data points into the file's read-only mmap whenever the bytes can be used
 * as they are (native .rwkv always; .bin and .pth when aligned), else into a buffer the table owns.
 * Every size, offset and dimension has been validated against the file before it is listed. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/common/error.h"
#include "kernels/tensor.h"

typedef enum ModelFormat {
        MODEL_FORMAT_RWKV = 1,    /* native, mmap-ready (protocol/model-format.md) */
        MODEL_FORMAT_RWKVCPP = 2, /* rwkv.cpp .bin, versions 100/101 */
        MODEL_FORMAT_PTH = 3,     /* PyTorch zip + pickle */
} ModelFormat;

/* Which numeric conventions the parameters follow: the official checkpoint's, or rwkv.cpp's
 * converter's (which pre-transforms some of them, e.g. time_decay). engine/arch/ handles both. */
typedef enum ParamConvention {
        PARAM_CONVENTION_PTH = 1,
        PARAM_CONVENTION_RWKVCPP = 2,
} ParamConvention;

/* Longest tensor name any loader accepts (bytes, without the NUL). */
#define TENSOR_NAME_MAX 255

typedef struct TensorTable TensorTable;

/* Detects the format from the magic bytes, never from the file name. */
int tensor_table_open(const char *path, TensorTable **ret, RwkvError *err);
/* The same over bytes in memory, borrowed: they must outlive the table (fuzzers, tests). */
int tensor_table_open_memory(const void *data, size_t size, TensorTable **ret, RwkvError *err);
TensorTable *tensor_table_free(TensorTable *t);

ModelFormat tensor_table_format(const TensorTable *t);
const char *tensor_table_format_name(const TensorTable *t); /* "rwkv", "rwkv.cpp-bin-v101", "pth" */
ParamConvention tensor_table_convention(const TensorTable *t);
uint64_t tensor_table_file_size(const TensorTable *t);

size_t tensor_table_count(const TensorTable *t);
const char *tensor_table_name_at(const TensorTable *t, size_t i);
const Tensor *tensor_table_at(const TensorTable *t, size_t i);
const Tensor *tensor_table_get(const TensorTable *t, const char *name); /* NULL when absent */

/* BLAKE2b-256 that names the model: from the native header, else hashed over the file once. */
int tensor_table_hash(TensorTable *t, uint8_t ret_hash[32]);

/* World vocabulary text embedded in a native file (rwkv_vocab_v20230424.txt format), else NULL. */
const char *tensor_table_vocab(const TensorTable *t, size_t *ret_len);

/* Which tokenizer a file declares (native header; vocab 256 .bin files are byte-level). */
typedef enum ModelTokenizerKind {
        MODEL_TOKENIZER_UNKNOWN = 0,
        MODEL_TOKENIZER_BYTES = 1, /* vocab 256, token = byte */
        MODEL_TOKENIZER_WORLD = 2, /* World vocabulary (embedded, or given by the user) */
} ModelTokenizerKind;

/* What a file's header says about the model, beyond its tensors. Zero means "not recorded": the
 * architecture code (engine/arch/) detects the rest from tensor names and shapes. */
typedef struct TensorTableMeta {
        uint32_t arch; /* ModelArch value (40, 51, 52, 60, 70) from a native header, else 0 */
        uint32_t n_layer, n_embd, n_vocab, n_head, head_size, n_ffn;
        ModelTokenizerKind tokenizer;
        int wtype;             /* DType of most weights as the header records it; -1 when unknown */
        uint32_t file_version; /* version field of the container (.bin: 100/101; .rwkv: 1) */
} TensorTableMeta;

const TensorTableMeta *tensor_table_meta(const TensorTable *t);

/* Reads every byte (slow on big files; never done at open): recomputes a native file's hash and checks
 * that every float value and every quantization scale is finite. -EBADMSG with the tensor's name. */
int tensor_table_verify(TensorTable *t, RwkvError *err);
/* The hash part of tensor_table_verify() alone (0 for formats without one): reads the whole file. */
int tensor_table_check_hash(TensorTable *t, RwkvError *err);
