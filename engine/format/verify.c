/* verify.c: the full-content checks that opening skips on purpose (opening must not touch the pages
 * of a mapped model): the native hash and finite values/scales. */
#include <inttypes.h>
#include <sodium.h>
#include <string.h>

#include "engine/format/native-format.h"
#include "engine/format/tensor-table-private.h"
#include "kernels/quant.h"

static bool f16_finite(uint16_t h) {
        return (h & 0x7c00) != 0x7c00;
}
static bool bf16_finite(uint16_t h) {
        return (h & 0x7f80) != 0x7f80;
}

/* Index of the first non-finite value or scale, or -1. */
int64_t format_first_nonfinite(const Tensor *x) {
        const uint8_t *p = x->data;
        uint64_t cols = x->shape[x->n_dims - 1];
        switch (x->dtype) {
        case DTYPE_F32:
                for (uint64_t i = 0; i < x->nbytes / 4; i++)
                        if ((read_le32(p + 4 * i) & UINT32_C(0x7f800000)) == UINT32_C(0x7f800000))
                                return (int64_t)i;
                return -1;
        case DTYPE_F16:
        case DTYPE_BF16:
                for (uint64_t i = 0; i < x->nbytes / 2; i++)
                        if (!(x->dtype == DTYPE_F16 ? f16_finite : bf16_finite)(read_le16(p + 2 * i)))
                                return (int64_t)i;
                return -1;
        case DTYPE_Q8_0:
        case DTYPE_Q4_0: {
                /* native rows: nb f16 scales first, then the quants */
                size_t row = format_row_bytes(x->dtype, cols), nb = cols / 32;
                for (uint64_t r = 0; r < x->nbytes / row; r++)
                        for (size_t b = 0; b < nb; b++)
                                if (!f16_finite(read_le16(p + r * row + 2 * b)))
                                        return (int64_t)(r * cols + b * 32);
                return -1;
        }
        case DTYPE_Q8_0X16:
        case DTYPE_Q4_0X16: {
                /* groups of 16 rows: all quants, then the nb x 16 f16 scales (kernels/quant.h) */
                size_t group = 16 * format_row_bytes(x->dtype, cols), nb = cols / 32;
                size_t quants = x16_scales_offset(x->dtype == DTYPE_Q4_0X16, cols);
                for (uint64_t g = 0; g < x->nbytes / group; g++)
                        for (size_t b = 0; b < nb; b++)
                                for (size_t i = 0; i < 16; i++)
                                        if (!f16_finite(read_le16(p + g * group + quants + 32 * b + 2 * i)))
                                                return (int64_t)((16 * g + i) * cols + b * 32);
                return -1;
        }
        default: {
                /* ggml blocks: d (and m for the *_1 types) lead each block */
                size_t block = format_row_bytes(x->dtype, 32);
                bool has_m = x->dtype == DTYPE_GGML_Q4_1 || x->dtype == DTYPE_GGML_Q5_1;
                for (uint64_t b = 0; b < x->nbytes / block; b++)
                        if (!f16_finite(read_le16(p + b * block)) ||
                            (has_m && !f16_finite(read_le16(p + b * block + 2))))
                                return (int64_t)(b * 32);
                return -1;
        }
        }
}

int tensor_table_check_hash(TensorTable *t, RwkvError *err) {
        static const uint8_t zeros[32];
        uint8_t h[32];
        crypto_generichash_state st;

        if (t->format != MODEL_FORMAT_RWKV)
                return 0;
        if (sodium_init() < 0)
                return error_set(err, EIO, "libsodium failed to initialize");
        crypto_generichash_init(&st, NULL, 0, sizeof(h));
        crypto_generichash_update(&st, t->data, NH_HASH);
        crypto_generichash_update(&st, zeros, sizeof(zeros));
        crypto_generichash_update(&st, t->data + NH_HASH + 32, t->size - NH_HASH - 32);
        crypto_generichash_final(&st, h, sizeof(h));
        if (memcmp(h, t->hash, sizeof(h)) != 0)
                return error_set(err, EBADMSG, "the content does not match the hash in the header (corrupt file)");
        return 0;
}

int tensor_table_verify(TensorTable *t, RwkvError *err) {
        int r = tensor_table_check_hash(t, err);
        if (r < 0)
                return r;
        for (size_t i = 0; i < t->n_entries; i++) {
                int64_t bad = format_first_nonfinite(&t->entries[i].tensor);
                if (bad >= 0)
                        return error_set(err, EBADMSG, "tensor '%s': non-finite %s at element %" PRId64,
                                         t->entries[i].name,
                                         t->entries[i].tensor.dtype <= DTYPE_BF16 ? "value" : "scale", bad);
        }
        return 0;
}
