/* pth.c: placeholder until the PyTorch loader lands. */
#include "engine/format/tensor-table-private.h"

int pth_load(TensorTable *t, RwkvError *err) {
        return error_set(err, EPROTONOSUPPORT, "PyTorch .pth files are not supported yet");
}
