/* log.c: stderr logging with "<N>" priority prefixes (see log.h). */
#include <stdio.h>
#include <string.h>

#include "daemon/log.h"

int log_max_level = LOG_INFO;

static _printf_(3, 0) void log_writev(int level, int error, const char *fmt, va_list ap) {
        char buf[2048];
        int saved = errno;

        if (level > log_max_level)
                return;
        /* %m in the format names the error passed in, not whatever errno holds now. */
        errno = error < 0 ? -error : error;
        vsnprintf(buf, sizeof(buf), fmt, ap);
        /* One write per line so lines from different threads never interleave. */
        fprintf(stderr, "<%d>%s\n", level, buf);
        errno = saved;
}

void log_internal(int level, int error, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        log_writev(level, error, fmt, ap);
        va_end(ap);
}

int log_internal_errno(int level, int error, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        log_writev(level, error, fmt, ap);
        va_end(ap);
        if (error == 0)
                return -EIO;
        return error < 0 ? error : -error;
}
