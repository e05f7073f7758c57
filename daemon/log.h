/* log.h: rwkvd's logging: one line per event on stderr with a "<N>" syslog priority prefix, which
 * journald (and systemd's StandardError=journal) turns into the message priority. */
#pragma once

#include <errno.h>
#include <stdarg.h>
#include <syslog.h>

#include "engine/common/macros.h"

/* Messages above this priority are dropped; -v raises it to LOG_DEBUG. */
extern int log_max_level;

void log_internal(int level, int error, const char *fmt, ...) _printf_(3, 4);

/* Returns -|error| (or -EIO for 0) so handlers can "return log_error_errno(r, ...)". */
int log_internal_errno(int level, int error, const char *fmt, ...) _printf_(3, 4);

#define log_debug(...) log_internal(LOG_DEBUG, 0, __VA_ARGS__)
#define log_info(...) log_internal(LOG_INFO, 0, __VA_ARGS__)
#define log_notice(...) log_internal(LOG_NOTICE, 0, __VA_ARGS__)
#define log_warning(...) log_internal(LOG_WARNING, 0, __VA_ARGS__)
#define log_error(...) log_internal(LOG_ERR, 0, __VA_ARGS__)

#define log_debug_errno(e, ...) log_internal_errno(LOG_DEBUG, (e), __VA_ARGS__)
#define log_warning_errno(e, ...) log_internal_errno(LOG_WARNING, (e), __VA_ARGS__)
#define log_error_errno(e, ...) log_internal_errno(LOG_ERR, (e), __VA_ARGS__)

#define log_oom() log_error_errno(ENOMEM, "Out of memory.")
