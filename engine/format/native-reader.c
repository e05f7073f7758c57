/* native-reader.c: the native .rwkv format: validate the header and index, then point every tensor
 * into the read-only mapping. Nothing is copied and no weight page is touched at open. */
#include <inttypes.h>
#include <string.h>

#include "engine/format/native-format.h"
#include "engine/format/tensor-table-private.h"

static bool region_ok(uint64_t off, uint64_t len, uint64_t size) {
        return off <= size && len <= size - off;
}

static bool all_zero(const uint8_t *p, size_t n) {
        for (size_t i = 0; i < n; i++)
                if (p[i])
                        return false;
        return true;
}

static int load_record(TensorTable *t, size_t i, const uint8_t *rec, uint64_t strings, uint64_t strings_size,
                       uint64_t data, uint64_t data_size, RwkvError *err) {
        uint32_t name_off = read_le32(rec + NR_NAME_OFFSET);
        uint16_t name_len = read_le16(rec + NR_NAME_LEN);
        if (name_len == 0 || (uint64_t)name_off + name_len >= strings_size)
                return error_set(err, EBADMSG, "tensor %zu: name outside the string table", i);
        const char *name = (const char *)t->data + strings + name_off;
        if (name[name_len] != 0)
                return error_set(err, EBADMSG, "tensor %zu: name not NUL-terminated", i);
        char label[TENSOR_NAME_MAX + 32];
        snprintf(label, sizeof(label), "tensor '%.*s': ", (int)MIN(name_len, (uint16_t)TENSOR_NAME_MAX), name);

        /* compare the raw byte: an out-of-range value must never be held in an enum */
        uint8_t code = rec[NR_DTYPE];
        if (code >= _DTYPE_MAX || !dtype_is_native((DType)code))
                return error_set(err, EPROTONOSUPPORT, "%sdata type %u is not a native type", label, code);
        DType dtype = (DType)code;
        uint32_t n_dims = rec[NR_N_DIMS];
        if (n_dims < 1 || n_dims > TENSOR_MAX_DIMS)
                return error_set(err, EBADMSG, "%s%u dimensions (supported: 1 to %d)", label, n_dims, TENSOR_MAX_DIMS);
        uint64_t shape[TENSOR_MAX_DIMS];
        for (uint32_t d = 0; d < TENSOR_MAX_DIMS; d++) {
                shape[d] = read_le64(rec + NR_SHAPE + 8 * d);
                if (d >= n_dims && d < TENSOR_MAX_DIMS && shape[d] != 0)
                        return error_set(err, EBADMSG, "%sunused dimension %u is not 0", label, d);
        }
        Tensor tensor;
        int r = format_tensor_shape(&tensor, dtype, n_dims, shape, err);
        if (r < 0)
                return err ? error_prefix(err, "%s", label) : r;
        uint64_t off = read_le64(rec + NR_DATA_OFFSET), nbytes = read_le64(rec + NR_NBYTES);
        if (nbytes != tensor.nbytes)
                return error_set(err, EBADMSG, "%srecords %" PRIu64 " bytes, its shape needs %" PRIu64, label, nbytes,
                                 tensor.nbytes);
        if (off % NATIVE_ALIGN != 0)
                return error_set(err, EBADMSG, "%sdata offset %" PRIu64 " is not 64-byte aligned", label, off);
        if (off < data || !region_ok(off - data, nbytes, data_size))
                return error_set(err, EBADMSG, "%sdata outside the data region (truncated file?)", label);
        if (read_le64(rec + NR_RESERVED) != 0)
                return error_set(err, EBADMSG, "%sreserved field is not 0", label);
        r = table_add(t, name, name_len, &tensor, t->data + off, err);
        if (r < 0)
                return err && err->errnum ? error_prefix(err, "%s", label) : r;
        return 0;
}

int native_load(TensorTable *t, RwkvError *err) {
        const uint8_t *h = t->data;
        uint64_t size = t->size;
        if (size < NATIVE_HEADER_SIZE)
                return error_set(err, EBADMSG, ".rwkv: truncated header (%" PRIu64 " bytes)", size);
        uint32_t version = read_le32(h + NH_VERSION);
        if (version != NATIVE_VERSION)
                return error_set(err, EPROTONOSUPPORT, ".rwkv: format version %" PRIu32 " (this build reads %d)",
                                 version, NATIVE_VERSION);
        if (read_le32(h + NH_HEADER_SIZE) != NATIVE_HEADER_SIZE)
                return error_set(err, EBADMSG, ".rwkv: header size %" PRIu32, read_le32(h + NH_HEADER_SIZE));
        uint64_t file_size = read_le64(h + NH_FILE_SIZE);
        if (file_size != size)
                return error_set(err, EBADMSG,
                                 ".rwkv: the header records %" PRIu64 " bytes, the file has %" PRIu64
                                 " (truncated or extended)",
                                 file_size, size);
        if (read_le32(h + NH_FLAGS) != 0 || !all_zero(h + NH_RESERVED, NATIVE_HEADER_SIZE - NH_RESERVED))
                return error_set(err, EPROTONOSUPPORT, ".rwkv: unknown flags or reserved fields set");

        uint32_t convention = read_le32(h + NH_CONVENTION);
        if (convention != PARAM_CONVENTION_PTH && convention != PARAM_CONVENTION_RWKVCPP)
                return error_set(err, EBADMSG, ".rwkv: unknown parameter convention %" PRIu32, convention);
        uint32_t tokenizer = read_le32(h + NH_TOKENIZER);
        if (tokenizer > MODEL_TOKENIZER_WORLD)
                return error_set(err, EBADMSG, ".rwkv: unknown tokenizer kind %" PRIu32, tokenizer);
        uint32_t wtype = read_le32(h + NH_WTYPE);
        if (wtype != UINT32_MAX && (wtype >= _DTYPE_MAX || format_row_bytes((DType)wtype, 32) == 0))
                return error_set(err, EBADMSG, ".rwkv: unknown weight type %" PRIu32, wtype);

        uint32_t n = read_le32(h + NH_N_TENSORS);
        uint64_t index = read_le64(h + NH_INDEX_OFFSET), strings = read_le64(h + NH_STRINGS_OFFSET),
                 strings_size = read_le64(h + NH_STRINGS_SIZE), vocab = read_le64(h + NH_VOCAB_OFFSET),
                 vocab_size = read_le64(h + NH_VOCAB_SIZE), data = read_le64(h + NH_DATA_OFFSET),
                 data_size = read_le64(h + NH_DATA_SIZE);
        if (n == 0 || n > NATIVE_MAX_TENSORS)
                return error_set(err, EBADMSG, ".rwkv: %" PRIu32 " tensors", n);
        if (index < NATIVE_HEADER_SIZE || !region_ok(index, (uint64_t)n * NATIVE_RECORD_SIZE, size))
                return error_set(err, EBADMSG, ".rwkv: tensor index outside the file");
        if (strings < NATIVE_HEADER_SIZE || strings_size == 0 || !region_ok(strings, strings_size, size))
                return error_set(err, EBADMSG, ".rwkv: string table outside the file");
        if (data % NATIVE_ALIGN != 0 || !region_ok(data, data_size, size))
                return error_set(err, EBADMSG, ".rwkv: data region outside the file or misaligned");
        if (vocab != 0) {
                if (vocab < NATIVE_HEADER_SIZE || vocab_size == UINT64_MAX || !region_ok(vocab, vocab_size + 1, size) ||
                    h[vocab + vocab_size] != 0)
                        return error_set(err, EBADMSG, ".rwkv: vocabulary outside the file or not NUL-terminated");
                if (memchr(h + vocab, 0, vocab_size))
                        return error_set(err, EBADMSG, ".rwkv: vocabulary text contains a NUL byte");
        } else if (vocab_size != 0)
                return error_set(err, EBADMSG, ".rwkv: vocabulary size without an offset");

        t->format = MODEL_FORMAT_RWKV;
        snprintf(t->format_name, sizeof(t->format_name), "rwkv");
        t->convention = (ParamConvention)convention;
        t->meta = (TensorTableMeta){
                .arch = read_le32(h + NH_ARCH),
                .n_layer = read_le32(h + NH_N_LAYER),
                .n_embd = read_le32(h + NH_N_LAYER + 4),
                .n_vocab = read_le32(h + NH_N_LAYER + 8),
                .n_head = read_le32(h + NH_N_LAYER + 12),
                .head_size = read_le32(h + NH_N_LAYER + 16),
                .n_ffn = read_le32(h + NH_N_LAYER + 20),
                .tokenizer = (ModelTokenizerKind)tokenizer,
                .wtype = wtype == UINT32_MAX ? -1 : (int)wtype,
                .file_version = version,
        };
        memcpy(t->hash, h + NH_HASH, 32);
        t->hash_known = true;
        if (vocab) {
                t->vocab = (const char *)h + vocab;
                t->vocab_len = vocab_size;
        }

        for (uint32_t i = 0; i < n; i++) {
                int r = load_record(t, i, h + index + (uint64_t)i * NATIVE_RECORD_SIZE, strings, strings_size, data,
                                    data_size, err);
                if (r < 0)
                        return r;
        }
        return 0;
}
