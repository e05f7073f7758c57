/* fuzz-bin.c: hostile bytes through tensor_table_open_memory() (the bin seed corpus steers it to
 * the rwkv.cpp .bin loader; format detection runs too). */
#include <stdint.h>
#include <stdlib.h>

#include "engine/format/fuzz/fuzz-common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        TensorTable *t = NULL;
        RwkvError err = {};
        if (tensor_table_open_memory(data, size, &t, &err) >= 0) {
                fuzz_exercise_table(t);
                tensor_table_free(t);
        }
        return 0;
}
