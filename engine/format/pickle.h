/* pickle.h: the subset of Python's pickle that torch.save writes for a state dict, and nothing more.
 *
 * A .pth is untrusted: this is not a Python VM. It knows five globals (collections.OrderedDict,
 * torch._utils._rebuild_tensor_v2 and the Float/Half/BFloat16 storage types), builds no objects but
 * dicts, tuples and tensor descriptions, and refuses every other global or opcode by name. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "engine/common/error.h"
#include "kernels/dtype.h"

#define PICKLE_MAX_DIMS 4

typedef struct PickleTensor {
        const char *name; /* inside the pickle bytes, not NUL-terminated */
        size_t name_len;
        DType dtype;             /* of the storage */
        const char *storage_key; /* "0", "1", ...: the zip entry <archive>/data/<key> */
        size_t storage_key_len;
        uint64_t storage_numel; /* elements the storage declares */
        uint64_t offset;        /* in elements */
        uint32_t n_dims;        /* 0 for a scalar */
        uint64_t shape[PICKLE_MAX_DIMS];
        int64_t stride[PICKLE_MAX_DIMS];
} PickleTensor;

/* Runs the pickle; on success *ret_tensors (malloc'ed, in file order) describes every entry of the
 * top-level dict, which must map strings to tensors. */
int pickle_load_state_dict(const uint8_t *data, size_t size, PickleTensor **ret_tensors, size_t *ret_n, RwkvError *err);
