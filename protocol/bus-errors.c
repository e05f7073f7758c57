/* bus-errors.c: one table for both directions, so a daemon errno becomes the same named error that a
 * client turns back into that errno. */
#include <errno.h>

#include "protocol/bus-errors.h"
#include "protocol/bus.h"

const sd_bus_error_map rwkv_bus_error_map[] = {
        SD_BUS_ERROR_MAP(RWKV_ERROR_INVALID_ARGUMENT, EINVAL),
        SD_BUS_ERROR_MAP(RWKV_ERROR_NO_SUCH_SESSION, ENOENT),
        SD_BUS_ERROR_MAP(RWKV_ERROR_SESSION_EXISTS, EEXIST),
        SD_BUS_ERROR_MAP(RWKV_ERROR_SESSION_BUSY, EBUSY),
        SD_BUS_ERROR_MAP(RWKV_ERROR_QUOTA_EXCEEDED, EDQUOT),
        SD_BUS_ERROR_MAP(RWKV_ERROR_TOO_MANY_GENERATIONS, EUSERS),
        SD_BUS_ERROR_MAP(RWKV_ERROR_PROMPT_TOO_LARGE, E2BIG),
        SD_BUS_ERROR_MAP(RWKV_ERROR_MODEL_MISMATCH, EMEDIUMTYPE),
        SD_BUS_ERROR_MAP(RWKV_ERROR_SHUTTING_DOWN, ESHUTDOWN),
        SD_BUS_ERROR_MAP(RWKV_ERROR_CORRUPT, EBADMSG),
        SD_BUS_ERROR_MAP(RWKV_ERROR_NO_SPACE, ENOSPC),
        SD_BUS_ERROR_MAP(RWKV_ERROR_IO, EIO),
        SD_BUS_ERROR_MAP(RWKV_ERROR_CANCELLED, ECANCELED),
        SD_BUS_ERROR_MAP(RWKV_ERROR_NO_SUCH_JOB, ESRCH),
        SD_BUS_ERROR_MAP(RWKV_ERROR_ACCESS_DENIED, EPERM),
        SD_BUS_ERROR_MAP_END,
};

int rwkv_bus_errors_register(void) {
        /* sd_bus_error_add_map() ignores a map it already holds, so repeated calls are harmless. */
        return sd_bus_error_add_map(rwkv_bus_error_map);
}
