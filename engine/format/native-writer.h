/* native-writer.h: write a native .rwkv file (protocol/model-format.md) in one streaming pass.
 *
 * Declare every tensor first (name, type, shape), then begin, then write the tensors' bytes in the
 * order declared, in chunks of any size: the writer pads to 64 bytes between tensors and hashes as
 * it goes, so no model needs to fit in memory. Finish fsyncs the temporary file, renames it over the
 * target and fsyncs the directory; freeing an unfinished writer removes the temporary file. */
#pragma once

#include "engine/format/tensor-table.h"

typedef struct NativeWriter NativeWriter;

int native_writer_new(const char *path, NativeWriter **ret, RwkvError *err);
NativeWriter *native_writer_free(NativeWriter *w);
DEFINE_TRIVIAL_CLEANUP_FUNC(NativeWriter *, native_writer_free);

/* Header facts (arch, shape, tokenizer kind, wtype) and the parameter convention of the source. */
void native_writer_set_meta(NativeWriter *w, const TensorTableMeta *meta, ParamConvention convention);
/* World vocabulary text to embed (copied); sets the tokenizer kind to world. */
int native_writer_set_vocab(NativeWriter *w, const char *text, size_t len, RwkvError *err);
/* Native types only (f32, f16, bf16, q8_0, q4_0, q8_0x16, q4_0x16). */
int native_writer_add_tensor(NativeWriter *w, const char *name, DType dtype, uint32_t n_dims, const uint64_t *shape,
                             RwkvError *err);

int native_writer_begin(NativeWriter *w, RwkvError *err);
int native_writer_write(NativeWriter *w, const void *data, size_t n, RwkvError *err);
/* Index of the tensor the next written byte belongs to (== count once all are written). */
size_t native_writer_current(const NativeWriter *w);
uint64_t native_writer_total_bytes(const NativeWriter *w);
int native_writer_finish(NativeWriter *w, uint8_t ret_hash[32], RwkvError *err);
