/* convert.c: any TensorTable -> native .rwkv, raw copies where the type is kept, row re-encoding
 * through f32 elsewhere (non-finite values refused: a converted model must verify). */
#include <inttypes.h>
#include <math.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "engine/format/convert.h"
#include "engine/format/native-writer.h"
#include "engine/format/tensor-table-private.h"

#define COPY_CHUNK ((size_t)4 << 20)

static bool is_native(DType t) {
        return dtype_is_native(t);
}

static bool is_weight_matrix(const char *name, const Tensor *t) {
        size_t n = strlen(name);
        return t->n_dims == 2 && t->shape[0] > 1 && t->shape[1] % 32 == 0 && n > 7 &&
               strcmp(name + n - 7, ".weight") == 0;
}

/* The tensors that are not weight matrices (norms, mixes, and the LoRA factors of v6/v7) stay exact:
 * f16 and bf16 as they are, anything else as f32. A widened copy holds the same values in twice the
 * bytes, and the LoRA factors are read every token (~12% of a decode step's bytes at f32 in an RWKV-7
 * q8_0 model); only an f32 target widens them. */
static DType exact_type(const Tensor *src, int type) {
        if (type != DTYPE_F32 && (src->dtype == DTYPE_F16 || src->dtype == DTYPE_BF16))
                return src->dtype;
        return DTYPE_F32;
}

/* The grouped types are for the matrices the forward pass multiplies. The embedding is read one row
 * per token, which the row layout does from one stretch of memory. */
DType convert_matrix_type(const char *name, uint64_t rows, DType type) {
        if (dtype_group_rows(type) <= 1)
                return type;
        if (rows % 16 == 0 && strcmp(name, "emb.weight") != 0)
                return type;
        return type == DTYPE_Q8_0X16 ? DTYPE_Q8_0 : DTYPE_Q4_0;
}

DType convert_target_type(const char *name, const Tensor *src, int type) {
        if (type >= 0)
                return is_weight_matrix(name, src) ? convert_matrix_type(name, src->shape[0], (DType)type)
                                                   : exact_type(src, type);
        if (is_native(src->dtype))
                return src->dtype;
        if (src->dtype == DTYPE_GGML_Q8_0)
                return is_weight_matrix(name, src) ? DTYPE_Q8_0 : DTYPE_F32;
        return is_weight_matrix(name, src) ? DTYPE_F16 : exact_type(src, -1);
}

/* Done with a tensor of a mapped source: drop its pages from our page tables (they stay in the page
 * cache), so converting a model bigger than RAM keeps RSS at about one tensor. */
static void release_pages(const TensorTable *t, const Tensor *x) {
        uintptr_t base = (uintptr_t)t->map, p = (uintptr_t)x->data, page = (uintptr_t)sysconf(_SC_PAGESIZE);
        if (!t->map || p < base || p - base >= t->map_len)
                return;
        uintptr_t start = ALIGN_UP(p, page), end = (p + (uintptr_t)x->nbytes) & ~(page - 1);
        if (end > start)
                (void)madvise((void *)start, end - start, MADV_DONTNEED);
}

typedef struct Progress {
        const ConvertOptions *o;
        uint64_t done, total;
} Progress;

static void progress_add(Progress *p, uint64_t n) {
        p->done += n;
        if (p->o && p->o->progress)
                p->o->progress(p->done, p->total, p->o->userdata);
}

static int reencode(NativeWriter *w, const char *name, const Tensor *src, DType dst, Progress *pr, RwkvError *err) {
        uint64_t cols = tensor_cols(src), rows = tensor_nelem(src) / cols;
        size_t src_row = format_row_bytes(src->dtype, cols), dst_row = format_row_bytes(dst, cols);
        /* rows a step: a grouped type (either side) is read or written a whole group at a time */
        size_t step = MAX(dtype_group_rows(src->dtype), dtype_group_rows(dst));
        if (step == 0 || rows % step != 0)
                return error_set(err, EINVAL, "tensor '%s': %" PRIu64 " rows are not whole groups of %zu", name, rows,
                                 step);
        _cleanup_(freep) float *f = malloc(step * cols * sizeof(float));
        _cleanup_(freep) uint8_t *out = malloc(step * dst_row);
        if (!f || !out)
                return -ENOMEM;
        for (uint64_t r = 0; r < rows; r += step) {
                dtype_rows_to_f32(src->dtype, src->data, cols, r, step, f);
                for (uint64_t c = 0; c < step * cols; c++)
                        if (!isfinite(f[c]))
                                return error_set(err, EBADMSG,
                                                 "tensor '%s': non-finite value at row %" PRIu64 ", column %" PRIu64,
                                                 name, r + c / cols, c % cols);
                int k = dtype_rows_from_f32(dst, f, out, cols, step);
                if (k < 0)
                        return error_set(err, k, "tensor '%s': cannot encode as %s", name, dtype_name(dst));
                k = native_writer_write(w, out, step * dst_row, err);
                if (k < 0)
                        return k;
                progress_add(pr, step * src_row);
        }
        return 0;
}

int model_convert(TensorTable *src, const char *out_path, const ConvertOptions *opts, uint8_t ret_hash[32],
                  RwkvError *err) {
        ConvertOptions none = { .type = -1 };
        const ConvertOptions *o = opts ? opts : &none;
        if (o->type >= 0 && (!dtype_is_valid(o->type) || !is_native((DType)o->type)))
                return error_set(err, EINVAL, "the target type must be f32, f16, bf16, q8_0, q8_0x16, q4_0 or q4_0x16");

        /* A native source is copied mostly as is: a corrupt one must not become a new file with a
         * freshly computed (so valid-looking) hash. Loading never reads the whole file; this does. */
        int r = tensor_table_check_hash(src, err);
        if (r < 0)
                return r;

        _cleanup_(native_writer_freep) NativeWriter *w = NULL;
        r = native_writer_new(out_path, &w, err);
        if (r < 0)
                return r;

        size_t n = tensor_table_count(src);
        _cleanup_(freep) DType *types = calloc(n ? n : 1, sizeof(DType));
        if (!types)
                return -ENOMEM;
        Progress pr = { .o = o };
        TensorTableMeta meta = o->meta ? *o->meta : *tensor_table_meta(src);
        if (o->type >= 0)
                meta.wtype = o->type;
        else if (meta.wtype >= 0 && !is_native((DType)meta.wtype))
                meta.wtype = meta.wtype == DTYPE_GGML_Q8_0 ? DTYPE_Q8_0 : DTYPE_F16;
        size_t vlen = 0;
        const char *vocab = o->vocab ? o->vocab : tensor_table_vocab(src, &vlen);
        if (o->vocab)
                vlen = o->vocab_len;
        native_writer_set_meta(w, &meta, tensor_table_convention(src));
        if (vocab && (r = native_writer_set_vocab(w, vocab, vlen, err)) < 0)
                return r;

        for (size_t i = 0; i < n; i++) {
                const char *name = tensor_table_name_at(src, i);
                const Tensor *t = tensor_table_at(src, i);
                types[i] = convert_target_type(name, t, o->type);
                if (format_row_bytes(types[i], tensor_cols(t)) == 0)
                        types[i] = DTYPE_F32; /* rows that are not whole blocks stay exact */
                r = native_writer_add_tensor(w, name, types[i], t->n_dims, t->shape, err);
                if (r < 0)
                        return r;
                pr.total += t->nbytes;
        }
        if ((r = native_writer_begin(w, err)) < 0)
                return r;

        for (size_t i = 0; i < n; i++) {
                const char *name = tensor_table_name_at(src, i);
                const Tensor *t = tensor_table_at(src, i);
                if (types[i] == t->dtype) {
                        /* kept as is: bit-identical, straight from the mapping */
                        int64_t bad = format_first_nonfinite(t);
                        if (bad >= 0)
                                return error_set(err, EBADMSG, "tensor '%s': non-finite %s at element %" PRId64, name,
                                                 t->dtype <= DTYPE_BF16 ? "value" : "scale", bad);
                        for (uint64_t off = 0; off < t->nbytes; off += COPY_CHUNK) {
                                size_t k = (size_t)MIN((uint64_t)COPY_CHUNK, t->nbytes - off);
                                if ((r = native_writer_write(w, (const uint8_t *)t->data + off, k, err)) < 0)
                                        return r;
                                progress_add(&pr, k);
                        }
                } else if ((r = reencode(w, name, t, types[i], &pr, err)) < 0)
                        return r;
                release_pages(src, t);
        }
        return native_writer_finish(w, ret_hash, err);
}
