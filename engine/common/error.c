/* error.c: RwkvError helpers. */
#include <stdio.h>
#include <string.h>

#include "engine/common/error.h"

int error_setv(RwkvError *err, int errnum, const char *fmt, va_list ap) {
        if (errnum < 0)
                errnum = -errnum;
        if (errnum == 0)
                errnum = EINVAL;
        if (err) {
                err->errnum = errnum;
                vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
        }
        return -errnum;
}

int error_set(RwkvError *err, int errnum, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        int r = error_setv(err, errnum, fmt, ap);
        va_end(ap);
        return r;
}

int error_prefix(RwkvError *err, const char *fmt, ...) {
        if (!err)
                return -EINVAL;
        char prefix[256], old[sizeof(err->msg)];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(prefix, sizeof(prefix), fmt, ap);
        va_end(ap);
        memcpy(old, err->msg, sizeof(old));
        snprintf(err->msg, sizeof(err->msg), "%s%s", prefix, old);
        return -(err->errnum ? err->errnum : EINVAL);
}

const char *error_message(const RwkvError *err, int r) {
        if (err && err->msg[0])
                return err->msg;
        return strerror(r < 0 ? -r : r);
}
