/* bus-util.h: helpers shared by the org.rwkvd.Daemon1 handlers (manager-bus.c, manager-generate.c). */
#pragma once

#include <string.h>
#include <sys/types.h>
#include <systemd/sd-bus.h>

#include "daemon/manager.h"
#include "protocol/bus.h"

#define ID_RULES "1 to 64 characters of [A-Za-z0-9._-], not starting with '.'"

int bus_caller_uid(sd_bus_message *msg, uid_t *ret);

/* The caller's uid or an AccessDenied error: a call whose sender we cannot identify gets nothing. */
#define GET_CALLER(msg, uid, error)                                                                    \
        do {                                                                                           \
                int _r = bus_caller_uid((msg), &(uid));                                                \
                if (_r < 0)                                                                            \
                        return sd_bus_error_setf((error), RWKV_ERROR_ACCESS_DENIED,                    \
                                                 "Cannot determine the caller's user id: %s", strerror(-_r)); \
        } while (0)

#define REFUSE_WHEN_SHUTTING_DOWN(m, error)                                                            \
        do {                                                                                           \
                if ((m)->shutting_down)                                                                \
                        return sd_bus_error_set((error), RWKV_ERROR_SHUTTING_DOWN,                     \
                                                "rwkvd is shutting down and accepts no new work.");    \
        } while (0)

/* Finds the session a caller names; another user's session is reported exactly like a missing one. */
int bus_find_session(Manager *m, uid_t caller, const char *name, Session **ret, sd_bus_error *error);

/* Reads an a{sv} of options; calls fn for each key with the variant entered. */
typedef int (*OptionFn)(Manager *m, const char *key, const char *type, sd_bus_message *msg, void *userdata,
                        sd_bus_error *error);
int bus_parse_options(Manager *m, sd_bus_message *msg, OptionFn fn, void *userdata, sd_bus_error *error);
int bus_option_type_error(const char *key, const char *want, sd_bus_error *error);
int bus_option_unknown(const char *key, sd_bus_error *error);

/* manager-generate.c */
int method_generate(sd_bus_message *msg, void *userdata, sd_bus_error *error);
int method_cancel(sd_bus_message *msg, void *userdata, sd_bus_error *error);
void manager_update_status(Manager *m);
