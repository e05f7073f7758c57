/* pth.c: PyTorch checkpoints (torch.save's zip): <archive>/data.pkl describes the state dict,
 * <archive>/data/<key> hold the raw little-endian storages, which are used in place. */
#include <inttypes.h>
#include <string.h>

#include "engine/format/pickle.h"
#include "engine/format/tensor-table-private.h"
#include "engine/format/zip.h"

static size_t elem_size(DType t) {
        return t == DTYPE_F32 ? 4 : 2;
}

/* Requires the row-major contiguous layout (dimensions of size 1 may carry any stride). */
static bool is_contiguous(const PickleTensor *p) {
        int64_t expect = 1;
        for (uint32_t i = p->n_dims; i > 0; i--) {
                if (p->shape[i - 1] != 1 && p->stride[i - 1] != expect)
                        return false;
                expect *= (int64_t)p->shape[i - 1];
        }
        return true;
}

static int add_tensor(TensorTable *t, const ZipArchive *z, const char *prefix, size_t prefix_len, const PickleTensor *p,
                      RwkvError *err) {
        uint64_t shape[TENSOR_MAX_DIMS] = { 1 };
        uint32_t n_dims = p->n_dims ? p->n_dims : 1; /* a scalar becomes shape (1,) */
        for (uint32_t i = 0; i < p->n_dims; i++)
                shape[i] = p->shape[i];
        Tensor tensor;
        int r = format_tensor_shape(&tensor, p->dtype, n_dims, shape, err);
        if (r < 0)
                return r;
        /* shapes are bounded (each dimension below 2^63) and their product checked just above */
        if (!is_contiguous(p))
                return error_set(err, EPROTONOSUPPORT, "not contiguous (strides are not row-major)");

        char entry[512];
        int n = snprintf(entry, sizeof(entry), "%.*sdata/%.*s", (int)prefix_len, prefix,
                         (int)MIN(p->storage_key_len, 200u), p->storage_key);
        if (p->storage_key_len > 200 || n < 0 || (size_t)n >= sizeof(entry))
                return error_set(err, EBADMSG, "storage key too long");
        const ZipEntry *e = zip_find(z, entry, (size_t)n);
        if (!e)
                return error_set(err, EBADMSG, "storage '%s' missing from the archive", entry);
        if (!e->data)
                return error_set(err, EPROTONOSUPPORT,
                                 "storage '%s' is compressed (method %u); only stored entries are read", entry,
                                 e->method);
        uint64_t storage_bytes, end;
        if (__builtin_mul_overflow(p->storage_numel, (uint64_t)elem_size(p->dtype), &storage_bytes) ||
            storage_bytes != e->size)
                return error_set(err, EBADMSG,
                                 "storage '%s' holds %" PRIu64 " bytes, its header says %" PRIu64 " elements", entry,
                                 e->size, p->storage_numel);
        uint64_t nelem = tensor.nbytes / elem_size(p->dtype);
        if (__builtin_add_overflow(p->offset, nelem, &end) || end > p->storage_numel)
                return error_set(err, EBADMSG, "elements %" PRIu64 "..%" PRIu64 " lie outside storage '%s' of %" PRIu64,
                                 p->offset, p->offset + nelem, entry, p->storage_numel);
        return table_add(t, p->name, p->name_len, &tensor, e->data + p->offset * elem_size(p->dtype), err);
}

int pth_load(TensorTable *t, RwkvError *err) {
        _cleanup_(zip_freep) ZipArchive *z = NULL;
        int r = zip_open(t->data, t->size, &z, err);
        if (r < 0)
                return r;

        /* torch.save names every entry "<archive>/...": find "<archive>/data.pkl" */
        const ZipEntry *pkl = NULL;
        for (size_t i = 0; i < zip_count(z); i++) {
                const ZipEntry *e = zip_entry_at(z, i);
                if (e->name_len >= 9 && memcmp(e->name + e->name_len - 9, "/data.pkl", 9) == 0 &&
                    !memchr(e->name, '/', e->name_len - 9)) {
                        if (pkl)
                                return error_set(err, EBADMSG, "pth: two data.pkl entries");
                        pkl = e;
                }
        }
        if (!pkl)
                return error_set(err, EBADMSG, "pth: no <archive>/data.pkl entry (not a torch.save file?)");
        if (!pkl->data)
                return error_set(err, EPROTONOSUPPORT, "pth: data.pkl is compressed (method %u)", pkl->method);
        if (zip_crc32(pkl->data, pkl->size) != pkl->crc32)
                return error_set(err, EBADMSG, "pth: data.pkl fails its CRC check");
        const char *prefix = pkl->name;
        size_t prefix_len = pkl->name_len - 8; /* keeps the '/' */

        char bo_name[512];
        snprintf(bo_name, sizeof(bo_name), "%.*sbyteorder", (int)prefix_len, prefix);
        const ZipEntry *bo = zip_find(z, bo_name, strlen(bo_name));
        if (bo && bo->data && !(bo->size == 6 && memcmp(bo->data, "little", 6) == 0))
                return error_set(err, EPROTONOSUPPORT, "pth: only little-endian checkpoints are supported");

        _cleanup_(freep) PickleTensor *tensors = NULL;
        size_t n;
        r = pickle_load_state_dict(pkl->data, pkl->size, &tensors, &n, err);
        if (r < 0)
                return r;
        if (n == 0)
                return error_set(err, EBADMSG, "pth: the state dict is empty");

        t->format = MODEL_FORMAT_PTH;
        snprintf(t->format_name, sizeof(t->format_name), "pth");
        t->convention = PARAM_CONVENTION_PTH;
        for (size_t i = 0; i < n; i++) {
                r = add_tensor(t, z, prefix, prefix_len, &tensors[i], err);
                if (r < 0)
                        return err && err->errnum
                                       ? error_prefix(err, "tensor '%.*s': ", (int)MIN(tensors[i].name_len, 200u),
                                                      tensors[i].name)
                                       : r;
        }
        return 0;
}
