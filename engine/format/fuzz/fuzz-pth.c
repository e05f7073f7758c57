/* fuzz-pth.c: hostile bytes as a whole .pth (zip + pickle + storages) and, because the zip's CRC
 * would stop most mutated pickles, the same bytes straight into the pickle machine. */
#include <stdint.h>
#include <stdlib.h>

#include "engine/format/fuzz/fuzz-common.h"
#include "engine/format/pickle.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        TensorTable *t = NULL;
        RwkvError err = {};
        if (tensor_table_open_memory(data, size, &t, &err) >= 0) {
                fuzz_exercise_table(t);
                tensor_table_free(t);
        }
        PickleTensor *tensors = NULL;
        size_t n = 0;
        if (pickle_load_state_dict(data, size, &tensors, &n, &err) >= 0)
                free(tensors);
        return 0;
}
