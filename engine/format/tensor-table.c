/* tensor-table.c: the format-independent TensorTable: mapping, format detection, the name index. */
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <sodium.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "engine/format/tensor-table-private.h"

/* ggml/rwkv.cpp block layouts (32 elements each): an fp16 scale d, for *_1 also an fp16 minimum m,
 * for Q5_* 4 bytes of fifth bits, then the packed quants. Fixed by the .bin file format.
 * The grouped types (kernels/quant.h) add 2 bytes a row when the block count is odd. */
size_t format_row_bytes(DType t, uint64_t n) {
        static const struct {
                uint32_t elems, bytes;
        } sizes[_DTYPE_MAX] = {
                [DTYPE_F32] = { 1, 4 },         [DTYPE_F16] = { 1, 2 },         [DTYPE_BF16] = { 1, 2 },
                [DTYPE_Q8_0] = { 32, 34 },      [DTYPE_Q4_0] = { 32, 18 },      [DTYPE_GGML_Q4_0] = { 32, 18 },
                [DTYPE_Q8_0X16] = { 32, 34 },   [DTYPE_Q4_0X16] = { 32, 18 },   [DTYPE_GGML_Q4_1] = { 32, 20 },
                [DTYPE_GGML_Q5_0] = { 32, 22 }, [DTYPE_GGML_Q5_1] = { 32, 24 }, [DTYPE_GGML_Q8_0] = { 32, 34 },
        };
        if ((int)t < 0 || t >= _DTYPE_MAX || sizes[t].elems == 0)
                return 0;
        if (n == 0 || n % sizes[t].elems != 0)
                return 0;
        uint64_t blocks = n / sizes[t].elems, bytes;
        if (__builtin_mul_overflow(blocks, (uint64_t)sizes[t].bytes, &bytes) || bytes > SIZE_MAX - 2)
                return 0;
        if (dtype_group_rows(t) > 1 && (blocks & 1))
                bytes += 2;
        return (size_t)bytes;
}

size_t format_dtype_align(DType t) {
        return t == DTYPE_F32 ? 4 : 2;
}

int format_tensor_shape(Tensor *tensor, DType dtype, uint32_t n_dims, const uint64_t *shape, RwkvError *err) {
        if (n_dims < 1 || n_dims > TENSOR_MAX_DIMS)
                return error_set(err, EBADMSG, "%u dimensions (supported: 1 to %d)", n_dims, TENSOR_MAX_DIMS);
        uint64_t rows = 1;
        for (uint32_t i = 0; i < n_dims; i++) {
                if (shape[i] == 0)
                        return error_set(err, EBADMSG, "dimension %u is 0", i);
                if (i + 1 < n_dims && __builtin_mul_overflow(rows, shape[i], &rows))
                        return error_set(err, EOVERFLOW, "dimensions overflow");
        }
        uint64_t cols = shape[n_dims - 1];
        size_t row = format_row_bytes(dtype, cols);
        if (row == 0 && format_row_bytes(dtype, 32) == 0)
                return error_set(err, EPROTONOSUPPORT, "unknown data type %d", (int)dtype);
        if (row == 0 && (format_row_bytes(dtype, 1) != 0 || cols % 32 == 0))
                return error_set(err, EOVERFLOW, "tensor size overflows");
        if (row == 0)
                return error_set(err, EBADMSG, "a row of %" PRIu64 " elements is not a whole number of %s blocks", cols,
                                 dtype_name(dtype));
        /* a grouped type encodes whole groups of rows of one matrix (kernels/quant.h) */
        size_t group = dtype_group_rows(dtype);
        if (group > 1 && (n_dims != 2 || rows % group != 0))
                return error_set(err, EBADMSG, "a %s tensor is a matrix with a multiple of %zu rows", dtype_name(dtype),
                                 group);
        uint64_t nbytes;
        if (__builtin_mul_overflow(rows, (uint64_t)row, &nbytes) || nbytes > (uint64_t)SSIZE_MAX)
                return error_set(err, EOVERFLOW, "tensor size overflows");
        *tensor = (Tensor){ .dtype = dtype, .n_dims = n_dims, .nbytes = nbytes };
        memcpy(tensor->shape, shape, n_dims * sizeof(uint64_t));
        return 0;
}

/* FNV-1a: names are short and few; this only spreads them over the buckets. */
static uint64_t name_hash(const char *s) {
        uint64_t h = UINT64_C(0xcbf29ce484222325);
        for (; *s; s++)
                h = (h ^ (uint8_t)*s) * UINT64_C(0x100000001b3);
        return h;
}

static size_t *bucket_find(const TensorTable *t, const char *name) {
        size_t mask = t->n_buckets - 1;
        for (size_t b = name_hash(name) & mask;; b = (b + 1) & mask) {
                size_t *slot = &t->buckets[b];
                if (*slot == SIZE_MAX || strcmp(t->entries[*slot].name, name) == 0)
                        return slot;
        }
}

static int index_grow(TensorTable *t) {
        /* keep the load factor under one half */
        if (t->n_buckets > 2 * (t->n_entries + 1))
                return 0;
        size_t n = t->n_buckets ? t->n_buckets * 2 : 64;
        size_t *b = malloc(n * sizeof(size_t));
        if (!b)
                return -ENOMEM;
        free(t->buckets);
        t->buckets = b;
        t->n_buckets = n;
        memset(b, 0xff, n * sizeof(size_t));
        for (size_t i = 0; i < t->n_entries; i++)
                *bucket_find(t, t->entries[i].name) = i;
        return 0;
}

int table_add(TensorTable *t, const char *name, size_t name_len, const Tensor *tensor, const void *src,
              RwkvError *err) {
        if (name_len == 0)
                return error_set(err, EBADMSG, "empty tensor name");
        if (name_len > TENSOR_NAME_MAX)
                return error_set(err, EBADMSG, "tensor name of %zu bytes (at most %d)", name_len, TENSOR_NAME_MAX);
        if (memchr(name, 0, name_len))
                return error_set(err, EBADMSG, "tensor name contains a NUL byte");
        for (size_t i = 0; i < name_len; i++)
                if ((uint8_t)name[i] < 0x20 || name[i] == 0x7f)
                        return error_set(err, EBADMSG, "tensor name contains control characters");

        _cleanup_(freep) char *copy = strndup(name, name_len);
        if (!copy)
                return -ENOMEM;
        if (index_grow(t) < 0)
                return -ENOMEM;
        size_t *slot = bucket_find(t, copy);
        if (*slot != SIZE_MAX)
                return error_set(err, EBADMSG, "duplicate tensor '%s'", copy);

        if (t->n_entries == t->n_allocated) {
                size_t n = t->n_allocated ? t->n_allocated * 2 : 64;
                TableEntry *e = reallocarray(t->entries, n, sizeof(TableEntry));
                if (!e)
                        return -ENOMEM;
                t->entries = e;
                t->n_allocated = n;
        }

        TableEntry *e = &t->entries[t->n_entries];
        *e = (TableEntry){ .tensor = *tensor };
        if ((uintptr_t)src % format_dtype_align(tensor->dtype) == 0)
                e->tensor.data = src;
        else {
                /* Misaligned in the file (rwkv.cpp and zip offsets are arbitrary): one aligned copy. */
                void *buf = aligned_alloc(64, ALIGN_UP((size_t)tensor->nbytes, (size_t)64));
                if (!buf)
                        return error_set(err, ENOMEM, "out of memory copying tensor '%s' (%" PRIu64 " bytes)", copy,
                                         tensor->nbytes);
                memcpy(buf, src, tensor->nbytes);
                e->owned = buf;
                e->tensor.data = buf;
        }
        e->name = TAKE_PTR(copy);
        *slot = t->n_entries++;
        return 0;
}

TensorTable *tensor_table_free(TensorTable *t) {
        if (!t)
                return NULL;
        for (size_t i = 0; i < t->n_entries; i++) {
                free(t->entries[i].name);
                free(t->entries[i].owned);
        }
        free(t->entries);
        free(t->buckets);
        if (t->map)
                munmap(t->map, t->map_len);
        free(t);
        return NULL;
}
DEFINE_TRIVIAL_CLEANUP_FUNC(TensorTable *, tensor_table_free);

static int table_load(TensorTable *t, RwkvError *err) {
        static const uint8_t native_magic[8] = { 'R', 'W', 'K', 'V', 'M', 'O', 'D', 'L' };

        t->meta.wtype = -1;
        if (t->size >= 4 && read_le32(t->data) == UINT32_C(0x67676d66))
                return rwkvcpp_load(t, err);
        if (t->size >= 4 && read_le32(t->data) == UINT32_C(0x666d6767))
                return error_set(err, EPROTONOSUPPORT, "big-endian rwkv.cpp files are not supported");
        if (t->size >= 4 && memcmp(t->data, "PK", 2) == 0 &&
            (memcmp(t->data + 2, "\3\4", 2) == 0 || memcmp(t->data + 2, "\5\6", 2) == 0))
                return pth_load(t, err);
        if (t->size >= sizeof(native_magic) && memcmp(t->data, native_magic, sizeof(native_magic)) == 0)
                return native_load(t, err);
        return error_set(err, EMEDIUMTYPE, "not a model file (no .rwkv, rwkv.cpp .bin or PyTorch .pth signature)");
}

int tensor_table_open_memory(const void *data, size_t size, TensorTable **ret, RwkvError *err) {
        _cleanup_(tensor_table_freep) TensorTable *t = calloc(1, sizeof(TensorTable));
        if (!t)
                return -ENOMEM;
        t->data = data;
        t->size = size;
        int r = table_load(t, err);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(t);
        return 0;
}

int tensor_table_open(const char *path, TensorTable **ret, RwkvError *err) {
        _cleanup_(closep) int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return error_set(err, errno, "cannot open '%s': %m", path);
        struct stat st;
        if (fstat(fd, &st) < 0)
                return error_set(err, errno, "cannot stat '%s': %m", path);
        if (!S_ISREG(st.st_mode))
                return error_set(err, EINVAL, "'%s' is not a regular file", path);
        if (st.st_size == 0)
                return error_set(err, EBADMSG, "'%s' is empty", path);
        if ((uint64_t)st.st_size > SIZE_MAX)
                return error_set(err, EFBIG, "'%s' is too large to map", path);

        _cleanup_(tensor_table_freep) TensorTable *t = calloc(1, sizeof(TensorTable));
        if (!t)
                return -ENOMEM;
        /* MAP_SHARED + PROT_READ: every process serving the model shares the page cache pages. */
        void *map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
        if (map == MAP_FAILED)
                return error_set(err, errno, "cannot map '%s': %m", path);
        t->map = map;
        t->map_len = (size_t)st.st_size;
        t->data = map;
        t->size = (size_t)st.st_size;

        int r = table_load(t, err);
        if (r < 0)
                return err && err->errnum ? error_prefix(err, "'%s': ", path) : r;
        *ret = TAKE_PTR(t);
        return 0;
}

ModelFormat tensor_table_format(const TensorTable *t) {
        return t->format;
}

const char *tensor_table_format_name(const TensorTable *t) {
        return t->format_name;
}

ParamConvention tensor_table_convention(const TensorTable *t) {
        return t->convention;
}

uint64_t tensor_table_file_size(const TensorTable *t) {
        return t->size;
}

size_t tensor_table_count(const TensorTable *t) {
        return t->n_entries;
}

const char *tensor_table_name_at(const TensorTable *t, size_t i) {
        return i < t->n_entries ? t->entries[i].name : NULL;
}

const Tensor *tensor_table_at(const TensorTable *t, size_t i) {
        return i < t->n_entries ? &t->entries[i].tensor : NULL;
}

const Tensor *tensor_table_get(const TensorTable *t, const char *name) {
        if (!name || t->n_buckets == 0)
                return NULL;
        size_t *slot = bucket_find(t, name);
        return *slot == SIZE_MAX ? NULL : &t->entries[*slot].tensor;
}

int tensor_table_hash(TensorTable *t, uint8_t ret_hash[32]) {
        if (!t->hash_known) {
                if (sodium_init() < 0)
                        return -EIO;
                /* Files other than .rwkv carry no hash: their bytes name them. */
                if (crypto_generichash(t->hash, sizeof(t->hash), t->data, t->size, NULL, 0) != 0)
                        return -EIO;
                t->hash_known = true;
        }
        memcpy(ret_hash, t->hash, 32);
        return 0;
}

const char *tensor_table_vocab(const TensorTable *t, size_t *ret_len) {
        if (ret_len)
                *ret_len = t->vocab ? t->vocab_len : 0;
        return t->vocab;
}

const TensorTableMeta *tensor_table_meta(const TensorTable *t) {
        return &t->meta;
}
