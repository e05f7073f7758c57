/* native-writer.c: streaming .rwkv writer: layout first, then bytes in file order through one buffer
 * that also feeds the BLAKE2b state, then the hash is patched into the header. */
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <sodium.h>
#include <string.h>
#include <sys/stat.h>

#include "engine/common/fs-util.h"
#include "engine/format/native-format.h"
#include "engine/format/native-writer.h"
#include "engine/format/tensor-table-private.h"

#define OUT_BUFFER (1u << 20)

typedef struct WTensor {
        char *name;
        uint32_t name_offset;
        DType dtype;
        uint32_t n_dims;
        uint64_t shape[TENSOR_MAX_DIMS];
        uint64_t nbytes, offset;
} WTensor;

struct NativeWriter {
        char *path, *tmp_path;
        int fd;
        TensorTableMeta meta;
        ParamConvention convention;
        char *vocab;
        size_t vocab_len;

        WTensor *tensors;
        size_t n, allocated;
        uint64_t strings_size;

        bool begun, finished;
        uint64_t pos;          /* file bytes produced so far */
        size_t current;        /* tensor being written */
        uint64_t current_done; /* its bytes written */
        uint64_t data_offset, file_size;

        uint8_t *buf;
        size_t buf_used;
        crypto_generichash_state hash;
};

NativeWriter *native_writer_free(NativeWriter *w) {
        if (!w)
                return NULL;
        if (w->fd >= 0)
                safe_close(w->fd);
        if (w->tmp_path && !w->finished)
                (void)unlink(w->tmp_path);
        for (size_t i = 0; i < w->n; i++)
                free(w->tensors[i].name);
        free(w->tensors);
        free(w->vocab);
        free(w->buf);
        free(w->path);
        free(w->tmp_path);
        free(w);
        return NULL;
}

int native_writer_new(const char *path, NativeWriter **ret, RwkvError *err) {
        if (sodium_init() < 0)
                return error_set(err, EIO, "libsodium failed to initialize");
        _cleanup_(native_writer_freep) NativeWriter *w = calloc(1, sizeof(NativeWriter));
        if (!w)
                return -ENOMEM;
        w->fd = -EBADF;
        w->meta.wtype = -1;
        w->convention = PARAM_CONVENTION_PTH;
        w->path = strdup(path);
        w->buf = malloc(OUT_BUFFER);
        if (!w->path || !w->buf || asprintf(&w->tmp_path, "%s.XXXXXX", path) < 0) {
                w->tmp_path = NULL;
                return -ENOMEM;
        }
        /* A temporary file beside the target, so the final rename is atomic. */
        w->fd = mkostemp(w->tmp_path, O_CLOEXEC);
        if (w->fd < 0) {
                int r = error_set(err, errno, "cannot create a temporary file for '%s': %m", path);
                free(w->tmp_path);
                w->tmp_path = NULL;
                return r;
        }
        if (fchmod(w->fd, 0644) < 0)
                return error_set(err, errno, "cannot set the mode of '%s': %m", w->tmp_path);
        crypto_generichash_init(&w->hash, NULL, 0, 32);
        *ret = TAKE_PTR(w);
        return 0;
}

void native_writer_set_meta(NativeWriter *w, const TensorTableMeta *meta, ParamConvention convention) {
        ModelTokenizerKind tok = w->vocab ? MODEL_TOKENIZER_WORLD : meta->tokenizer;
        w->meta = *meta;
        w->meta.tokenizer = tok;
        w->convention = convention;
}

int native_writer_set_vocab(NativeWriter *w, const char *text, size_t len, RwkvError *err) {
        if (w->begun)
                return error_set(err, EBUSY, "vocabulary set after the data began");
        if (memchr(text, 0, len))
                return error_set(err, EINVAL, "vocabulary text contains a NUL byte");
        char *v = malloc(len + 1);
        if (!v)
                return -ENOMEM;
        memcpy(v, text, len);
        v[len] = 0;
        free(w->vocab);
        w->vocab = v;
        w->vocab_len = len;
        w->meta.tokenizer = MODEL_TOKENIZER_WORLD;
        return 0;
}

int native_writer_add_tensor(NativeWriter *w, const char *name, DType dtype, uint32_t n_dims, const uint64_t *shape,
                             RwkvError *err) {
        if (w->begun)
                return error_set(err, EBUSY, "tensor '%s' declared after the data began", name);
        if (!dtype_is_native(dtype))
                return error_set(err, EINVAL, "tensor '%s': .rwkv files hold native types only", name);
        size_t len = strlen(name);
        if (len == 0 || len > TENSOR_NAME_MAX)
                return error_set(err, EINVAL, "tensor name '%s' is empty or too long", name);
        for (size_t i = 0; i < w->n; i++)
                if (strcmp(w->tensors[i].name, name) == 0)
                        return error_set(err, EEXIST, "duplicate tensor '%s'", name);
        Tensor t;
        int r = format_tensor_shape(&t, dtype, n_dims, shape, err);
        if (r < 0)
                return err ? error_prefix(err, "tensor '%s': ", name) : r;
        if (w->n == w->allocated) {
                size_t cap = w->allocated ? w->allocated * 2 : 64;
                WTensor *ts = reallocarray(w->tensors, cap, sizeof(WTensor));
                if (!ts)
                        return -ENOMEM;
                w->tensors = ts;
                w->allocated = cap;
        }
        WTensor *wt = &w->tensors[w->n];
        *wt = (WTensor){
                .dtype = dtype, .n_dims = n_dims, .nbytes = t.nbytes, .name_offset = (uint32_t)w->strings_size
        };
        memcpy(wt->shape, t.shape, sizeof(wt->shape));
        wt->name = strdup(name);
        if (!wt->name)
                return -ENOMEM;
        w->n++;
        w->strings_size += len + 1;
        if (w->n > NATIVE_MAX_TENSORS || w->strings_size > UINT32_MAX)
                return error_set(err, E2BIG, "too many tensors");
        return 0;
}

static int flush(NativeWriter *w, RwkvError *err) {
        const uint8_t *p = w->buf;
        size_t n = w->buf_used;
        while (n > 0) {
                ssize_t k = write(w->fd, p, n);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return error_set(err, errno, "cannot write '%s': %m", w->tmp_path);
                }
                p += k;
                n -= (size_t)k;
        }
        w->buf_used = 0;
        return 0;
}

/* Every byte of the file goes through here, in order: it is hashed and buffered. */
static int emit(NativeWriter *w, const void *data, size_t n, RwkvError *err) {
        const uint8_t *p = data;
        crypto_generichash_update(&w->hash, p, n);
        w->pos += n;
        while (n > 0) {
                size_t k = MIN(n, OUT_BUFFER - w->buf_used);
                memcpy(w->buf + w->buf_used, p, k);
                w->buf_used += k;
                p += k;
                n -= k;
                if (w->buf_used == OUT_BUFFER) {
                        int r = flush(w, err);
                        if (r < 0)
                                return r;
                }
        }
        return 0;
}

static int emit_zeros(NativeWriter *w, uint64_t n, RwkvError *err) {
        static const uint8_t zeros[NATIVE_ALIGN];
        while (n > 0) {
                size_t k = (size_t)MIN(n, (uint64_t)sizeof(zeros));
                int r = emit(w, zeros, k, err);
                if (r < 0)
                        return r;
                n -= k;
        }
        return 0;
}

static int pad_to(NativeWriter *w, uint64_t target, RwkvError *err) {
        return emit_zeros(w, target - w->pos, err);
}

static void le16(uint8_t *p, uint16_t v) {
        p[0] = (uint8_t)v;
        p[1] = (uint8_t)(v >> 8);
}
static void le32(uint8_t *p, uint32_t v) {
        for (int i = 0; i < 4; i++)
                p[i] = (uint8_t)(v >> (8 * i));
}
static void le64(uint8_t *p, uint64_t v) {
        for (int i = 0; i < 8; i++)
                p[i] = (uint8_t)(v >> (8 * i));
}

int native_writer_begin(NativeWriter *w, RwkvError *err) {
        if (w->begun)
                return error_set(err, EBUSY, "begun twice");
        if (w->n == 0)
                return error_set(err, EINVAL, "a model needs at least one tensor");
        w->begun = true;

        /* header | index | strings | vocab + NUL | (64-aligned) tensors, each 64-aligned */
        uint64_t index = NATIVE_HEADER_SIZE;
        uint64_t strings = index + (uint64_t)w->n * NATIVE_RECORD_SIZE;
        uint64_t vocab = w->vocab ? ALIGN_UP(strings + w->strings_size, (uint64_t)8) : 0;
        uint64_t end = w->vocab ? vocab + w->vocab_len + 1 : strings + w->strings_size;
        uint64_t data = ALIGN_UP(end, (uint64_t)NATIVE_ALIGN), off = data;
        for (size_t i = 0; i < w->n; i++) {
                w->tensors[i].offset = off;
                off = ALIGN_UP(off + w->tensors[i].nbytes, (uint64_t)NATIVE_ALIGN);
        }
        w->data_offset = data;
        w->file_size = off;

        uint8_t h[NATIVE_HEADER_SIZE] = {};
        memcpy(h + NH_MAGIC, NATIVE_MAGIC, 8);
        le32(h + NH_VERSION, NATIVE_VERSION);
        le32(h + NH_HEADER_SIZE, NATIVE_HEADER_SIZE);
        le64(h + NH_FILE_SIZE, w->file_size);
        /* NH_HASH stays zero until finish */
        le32(h + NH_ARCH, w->meta.arch);
        le32(h + NH_CONVENTION, w->convention);
        const uint32_t shape[6] = { w->meta.n_layer, w->meta.n_embd,    w->meta.n_vocab,
                                    w->meta.n_head,  w->meta.head_size, w->meta.n_ffn };
        for (int i = 0; i < 6; i++)
                le32(h + NH_N_LAYER + 4 * i, shape[i]);
        le32(h + NH_TOKENIZER, w->meta.tokenizer);
        le32(h + NH_WTYPE, w->meta.wtype < 0 ? UINT32_MAX : (uint32_t)w->meta.wtype);
        le32(h + NH_N_TENSORS, (uint32_t)w->n);
        le64(h + NH_INDEX_OFFSET, index);
        le64(h + NH_STRINGS_OFFSET, strings);
        le64(h + NH_STRINGS_SIZE, w->strings_size);
        le64(h + NH_VOCAB_OFFSET, vocab);
        le64(h + NH_VOCAB_SIZE, w->vocab ? w->vocab_len : 0);
        le64(h + NH_DATA_OFFSET, data);
        le64(h + NH_DATA_SIZE, w->file_size - data);
        int r = emit(w, h, sizeof(h), err);
        if (r < 0)
                return r;

        for (size_t i = 0; i < w->n; i++) {
                const WTensor *t = &w->tensors[i];
                uint8_t rec[NATIVE_RECORD_SIZE] = {};
                le32(rec + NR_NAME_OFFSET, t->name_offset);
                le16(rec + NR_NAME_LEN, (uint16_t)strlen(t->name));
                rec[NR_DTYPE] = (uint8_t)t->dtype;
                rec[NR_N_DIMS] = (uint8_t)t->n_dims;
                for (uint32_t d = 0; d < t->n_dims; d++)
                        le64(rec + NR_SHAPE + 8 * d, t->shape[d]);
                le64(rec + NR_DATA_OFFSET, t->offset);
                le64(rec + NR_NBYTES, t->nbytes);
                if ((r = emit(w, rec, sizeof(rec), err)) < 0)
                        return r;
        }
        for (size_t i = 0; i < w->n; i++)
                if ((r = emit(w, w->tensors[i].name, strlen(w->tensors[i].name) + 1, err)) < 0)
                        return r;
        if (w->vocab) {
                if ((r = pad_to(w, vocab, err)) < 0 || (r = emit(w, w->vocab, w->vocab_len + 1, err)) < 0)
                        return r;
        }
        return pad_to(w, data, err);
}

int native_writer_write(NativeWriter *w, const void *data, size_t n, RwkvError *err) {
        const uint8_t *p = data;
        if (!w->begun || w->finished)
                return error_set(err, EINVAL, "tensor data written outside begin..finish");
        while (n > 0) {
                if (w->current >= w->n)
                        return error_set(err, EINVAL, "more tensor data than the declared tensors hold");
                const WTensor *t = &w->tensors[w->current];
                if (w->current_done == 0) {
                        int r = pad_to(w, t->offset, err);
                        if (r < 0)
                                return r;
                }
                size_t k = (size_t)MIN((uint64_t)n, t->nbytes - w->current_done);
                int r = emit(w, p, k, err);
                if (r < 0)
                        return r;
                p += k;
                n -= k;
                w->current_done += k;
                if (w->current_done == t->nbytes) {
                        w->current++;
                        w->current_done = 0;
                }
        }
        return 0;
}

size_t native_writer_current(const NativeWriter *w) {
        return w->current;
}

uint64_t native_writer_total_bytes(const NativeWriter *w) {
        return w->file_size;
}

int native_writer_finish(NativeWriter *w, uint8_t ret_hash[32], RwkvError *err) {
        if (!w->begun || w->finished)
                return error_set(err, EINVAL, "finish without begin");
        if (w->current != w->n)
                return error_set(err, EINVAL, "tensor '%s' is incomplete (%" PRIu64 " of %" PRIu64 " bytes)",
                                 w->tensors[w->current].name, w->current_done, w->tensors[w->current].nbytes);
        int r = pad_to(w, w->file_size, err);
        if (r < 0 || (r = flush(w, err)) < 0)
                return r;
        uint8_t hash[32];
        crypto_generichash_final(&w->hash, hash, sizeof(hash));
        if (pwrite(w->fd, hash, sizeof(hash), NH_HASH) != (ssize_t)sizeof(hash))
                return error_set(err, errno ? errno : EIO, "cannot write the hash of '%s': %m", w->tmp_path);
        if (fsync(w->fd) < 0)
                return error_set(err, errno, "cannot sync '%s': %m", w->tmp_path);
        if (rename(w->tmp_path, w->path) < 0)
                return error_set(err, errno, "cannot rename '%s' to '%s': %m", w->tmp_path, w->path);
        w->finished = true;
        r = fsync_parent_dir(w->path);
        if (r < 0)
                return error_set(err, r, "cannot sync the directory of '%s': %s", w->path, strerror(-r));
        if (ret_hash)
                memcpy(ret_hash, hash, 32);
        return 0;
}
