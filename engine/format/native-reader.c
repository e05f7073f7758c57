/* native-reader.c: placeholder until the native reader lands. */
#include "engine/format/tensor-table-private.h"

int native_load(TensorTable *t, RwkvError *err) {
        return error_set(err, EPROTONOSUPPORT, ".rwkv files are not supported yet");
}
