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
        char joined[sizeof(err->msg) * 2];
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(joined, sizeof(err->msg), fmt, ap);
        va_end(ap);
        if (n < 0)
                n = 0;
        size_t plen = MIN((size_t) n, sizeof(err->msg) - 1);
        /* Messages are cut at the buffer size on purpose: the context comes first, the tail may go. */
        size_t olen = strnlen(err->msg, sizeof(err->msg) - 1);
        memcpy(joined + plen, err->msg, olen);
        joined[plen + olen] = 0;
        memcpy(err->msg, joined, sizeof(err->msg) - 1);
        err->msg[sizeof(err->msg) - 1] = 0;
        return -(err->errnum ? err->errnum : EINVAL);
}

const char *error_message(const RwkvError *err, int r) {
        if (err && err->msg[0])
                return err->msg;
        return strerror(r < 0 ? -r : r);
}
