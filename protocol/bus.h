/* bus.h: the D-Bus contract shared by rwkvd, librwkv-client and rwkvctl (names, errors).
 * The interface itself is protocol/org.rwkvd.Daemon1.xml; ARCHITECTURE.md lists these names. */
#pragma once

#include <stdbool.h>

#define RWKV_BUS_NAME "org.rwkvd.Daemon1"
#define RWKV_BUS_PATH "/org/rwkvd/Daemon1"
#define RWKV_BUS_INTERFACE "org.rwkvd.Daemon1"
#define RWKV_BUS_ADDRESS_ENV "RWKVD_BUS_ADDRESS"

/* Named errors, each mapped to one errno both ways (rwkv_bus_error_map in protocol/bus-errors.c). */
#define RWKV_ERROR_INVALID_ARGUMENT "org.rwkvd.Error.InvalidArgument"   /* EINVAL */
#define RWKV_ERROR_NO_SUCH_SESSION "org.rwkvd.Error.NoSuchSession"      /* ENOENT (also for other users') */
#define RWKV_ERROR_SESSION_EXISTS "org.rwkvd.Error.SessionExists"       /* EEXIST */
#define RWKV_ERROR_SESSION_BUSY "org.rwkvd.Error.SessionBusy"           /* EBUSY */
#define RWKV_ERROR_QUOTA_EXCEEDED "org.rwkvd.Error.QuotaExceeded"       /* EDQUOT */
#define RWKV_ERROR_TOO_MANY_GENERATIONS "org.rwkvd.Error.TooManyGenerations" /* EUSERS */
#define RWKV_ERROR_PROMPT_TOO_LARGE "org.rwkvd.Error.PromptTooLarge"    /* E2BIG */
#define RWKV_ERROR_MODEL_MISMATCH "org.rwkvd.Error.ModelMismatch"       /* EMEDIUMTYPE */
#define RWKV_ERROR_SHUTTING_DOWN "org.rwkvd.Error.ShuttingDown"         /* ESHUTDOWN */
#define RWKV_ERROR_CORRUPT "org.rwkvd.Error.Corrupt"                    /* EBADMSG */
#define RWKV_ERROR_NO_SPACE "org.rwkvd.Error.NoSpace"                   /* ENOSPC */
#define RWKV_ERROR_IO "org.rwkvd.Error.IO"                              /* EIO */
#define RWKV_ERROR_CANCELLED "org.rwkvd.Error.Cancelled"                /* ECANCELED */
#define RWKV_ERROR_NO_SUCH_JOB "org.rwkvd.Error.NoSuchJob"              /* ESRCH */
#define RWKV_ERROR_ACCESS_DENIED "org.rwkvd.Error.AccessDenied"         /* EPERM */

/* Session ids (org.rwkvd.Daemon1(5)): 1 to RWKV_SESSION_ID_MAX characters of [A-Za-z0-9._-], not
 * starting with '.' (they name files in the state directory). Root may prefix "UID/" to name
 * another user's session; that prefix is not part of the id. */
#define RWKV_SESSION_ID_MAX 64
static inline bool rwkv_session_id_valid(const char *id) {
        if (!id || !id[0] || id[0] == '.')
                return false;
        for (unsigned n = 0; id[n]; n++) {
                char c = id[n];
                if (n >= RWKV_SESSION_ID_MAX || !((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                                                  (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-'))
                        return false;
        }
        return true;
}
