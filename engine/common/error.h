/* error.h: a negative errno plus a human message, for the parsers of untrusted input.
 *
 * Libraries never log (STYLE.md): a loader that refuses a hostile file returns -errno and, when the
 * caller passed an RwkvError, says why in words the edge (rwkvd, rwkvctl) can print. */
#pragma once

#include <stdarg.h>

#include "engine/common/macros.h"

typedef struct RwkvError {
        int errnum;     /* positive errno, 0 when unset */
        char msg[512];
} RwkvError;

/* Record errnum and a message in err (which may be NULL); returns -errnum for "return error_set(...)". */
int error_set(RwkvError *err, int errnum, const char *fmt, ...) _printf_(3, 4);
int error_setv(RwkvError *err, int errnum, const char *fmt, va_list ap) _printf_(3, 0);

/* Prefix an existing message with context ("tensor 'x': " + old message). Returns -err->errnum. */
int error_prefix(RwkvError *err, const char *fmt, ...) _printf_(2, 3);

/* The message, or strerror of errnum when no message was recorded. */
const char *error_message(const RwkvError *err, int r);
