/* rwkvcpp.c: rwkv.cpp's .bin files (versions 100 and 101).
 *
 * Layout (rwkv.cpp docs/FILE_FORMAT.md), all little-endian int32:
 *   magic 0x67676d66, version, n_vocab, n_embed, n_layer, data_type,
 *   then until EOF per tensor: n_dims, key_length, data_type, dims[n_dims] (ggml order: innermost
 *   first, i.e. PyTorch's shape reversed), key bytes (no NUL), data.
 * Version 101 changed every quantized layout (ggml of 2023-05-27); version 100 quantized tensors use
 * the obsolete layouts and are refused, exactly as rwkv.cpp itself refuses them. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "engine/format/tensor-table-private.h"

#define RWKVCPP_HEADER_SIZE 24
#define RWKVCPP_MAX_DIMS 4

/* rwkv.cpp type codes; 4..6 were ggml formats that no longer exist. */
static int type_from_code(uint32_t code, DType *ret) {
        static const int map[] = {
                [0] = DTYPE_F32, [1] = DTYPE_F16, [2] = DTYPE_GGML_Q4_0, [3] = DTYPE_GGML_Q4_1, [4] = -1,
                [5] = -1,        [6] = -1,        [7] = DTYPE_GGML_Q5_0, [8] = DTYPE_GGML_Q5_1, [9] = DTYPE_GGML_Q8_0,
        };
        if (code >= ELEMENTSOF(map) || map[code] < 0)
                return -EPROTONOSUPPORT;
        *ret = (DType)map[code];
        return 0;
}

static bool is_quantized(DType t) {
        return t != DTYPE_F32 && t != DTYPE_F16;
}

int rwkvcpp_load(TensorTable *t, RwkvError *err) {
        const uint8_t *p = t->data;
        size_t size = t->size;

        if (size < RWKVCPP_HEADER_SIZE)
                return error_set(err, EBADMSG, "truncated rwkv.cpp header (%zu of %d bytes)", size,
                                 RWKVCPP_HEADER_SIZE);
        uint32_t version = read_le32(p + 4);
        if (version != 100 && version != 101)
                return error_set(err, EPROTONOSUPPORT, "rwkv.cpp file version %" PRIu32 " (supported: 100, 101)",
                                 version);
        uint32_t n_vocab = read_le32(p + 8), n_embd = read_le32(p + 12), n_layer = read_le32(p + 16);
        uint32_t wcode = read_le32(p + 20);
        if (n_vocab == 0 || n_vocab > INT32_MAX || n_embd == 0 || n_embd > INT32_MAX || n_layer == 0 ||
            n_layer > INT32_MAX)
                return error_set(err, EBADMSG,
                                 "bad rwkv.cpp header: n_vocab %" PRIu32 ", n_embed %" PRIu32 ", n_layer %" PRIu32,
                                 n_vocab, n_embd, n_layer);
        DType wtype;
        if (type_from_code(wcode, &wtype) < 0)
                return error_set(err, EPROTONOSUPPORT, "unknown rwkv.cpp data type %" PRIu32 " in the header", wcode);

        t->format = MODEL_FORMAT_RWKVCPP;
        snprintf(t->format_name, sizeof(t->format_name), "rwkv.cpp-bin-v%" PRIu32, version);
        t->convention = PARAM_CONVENTION_RWKVCPP;
        t->meta.n_vocab = n_vocab;
        t->meta.n_embd = n_embd;
        t->meta.n_layer = n_layer;
        t->meta.wtype = wtype;
        t->meta.file_version = version;
        t->meta.tokenizer = n_vocab == 256 ? MODEL_TOKENIZER_BYTES : MODEL_TOKENIZER_UNKNOWN;

        size_t off = RWKVCPP_HEADER_SIZE;
        for (size_t index = 0; off < size; index++) {
                if (size - off < 12)
                        return error_set(err, EBADMSG, "tensor %zu: truncated header at offset %zu", index, off);
                uint32_t n_dims = read_le32(p + off), key_len = read_le32(p + off + 4), code = read_le32(p + off + 8);
                off += 12;
                if (n_dims < 1 || n_dims > RWKVCPP_MAX_DIMS)
                        return error_set(err, EBADMSG, "tensor %zu: %" PRIu32 " dimensions (supported: 1 to %d)", index,
                                         n_dims, RWKVCPP_MAX_DIMS);
                if (key_len == 0 || key_len > TENSOR_NAME_MAX)
                        return error_set(err, EBADMSG, "tensor %zu: name length %" PRIu32 " (1 to %d)", index, key_len,
                                         TENSOR_NAME_MAX);
                if (size - off < (size_t)n_dims * 4 + key_len)
                        return error_set(err, EBADMSG, "tensor %zu: truncated header at offset %zu", index, off);

                uint64_t shape[TENSOR_MAX_DIMS];
                for (uint32_t d = 0; d < n_dims; d++) {
                        uint32_t dim = read_le32(p + off + 4 * d);
                        if (dim == 0 || dim > INT32_MAX)
                                return error_set(err, EBADMSG, "tensor %zu: dimension %" PRIu32 " is %" PRId32, index,
                                                 d, (int32_t)dim);
                        shape[n_dims - 1 - d] = dim; /* ggml order -> PyTorch order */
                }
                off += (size_t)n_dims * 4;
                const char *name = (const char *)p + off;
                off += key_len;

                /* Names first in messages: "tensor 'blocks.0.att.key.weight': ..." */
                char label[TENSOR_NAME_MAX + 32];
                if (memchr(name, 0, key_len))
                        return error_set(err, EBADMSG, "tensor %zu: name contains a NUL byte", index);
                snprintf(label, sizeof(label), "tensor '%.*s': ", (int)key_len, name);

                DType dtype;
                if (type_from_code(code, &dtype) < 0)
                        return error_set(err, EPROTONOSUPPORT, "%sunknown rwkv.cpp data type %" PRIu32, label, code);
                if (version == 100 && is_quantized(dtype))
                        return error_set(err, EPROTONOSUPPORT,
                                         "%sversion 100 quantized tensors use ggml's obsolete layout; "
                                         "quantize the model again with a current rwkv.cpp",
                                         label);

                Tensor tensor;
                int r = format_tensor_shape(&tensor, dtype, n_dims, shape, err);
                if (r < 0)
                        return err ? error_prefix(err, "%s", label) : r;
                if (tensor.nbytes > size - off)
                        return error_set(err, EBADMSG,
                                         "%struncated data: %" PRIu64 " bytes needed at offset %zu, %zu left", label,
                                         tensor.nbytes, off, size - off);
                /* quantized scales are validated here: .bin data goes to generic kernels as is */
                if (is_quantized(dtype)) {
                        Tensor view = tensor;
                        view.data = p + off;
                        int64_t bad = format_first_nonfinite(&view);
                        if (bad >= 0)
                                return error_set(err, EBADMSG, "%snon-finite scale in the block of element %" PRId64,
                                                 label, bad);
                }
                r = table_add(t, name, key_len, &tensor, p + off, err);
                if (r < 0)
                        return err && err->errnum ? error_prefix(err, "%s", label) : r;
                off += tensor.nbytes;
        }
        if (t->n_entries == 0)
                return error_set(err, EBADMSG, "rwkv.cpp file holds no tensors");
        return 0;
}
