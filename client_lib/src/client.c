/* client.c: librwkv-client's connection and the control-plane calls (sessions, status). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "client_lib/src/client-internal.h"
#include "config.h"
#include "protocol/bus-errors.h"
#include "protocol/bus.h"

#define RWKV_PROPERTIES_INTERFACE "org.freedesktop.DBus.Properties"

RWKV_EXPORT const char *rwkv_client_version(void) {
        return RWKVD_VERSION;
}

static void bus_unrefp(sd_bus **b) {
        sd_bus_flush_close_unref(*b);
}

static void message_unrefp(sd_bus_message **m) {
        sd_bus_message_unref(*m);
}

int client_set_error(RwkvClient *c, int r, const sd_bus_error *error) {
        free(c->error_message);
        c->error_message = NULL;
        if (r >= 0)
                return r;
        if (error && sd_bus_error_is_set(error) && error->message)
                c->error_message = strdup(error->message);
        else if (error && sd_bus_error_is_set(error))
                c->error_message = strdup(error->name);
        else
                c->error_message = strdup(strerror(-r));
        return r;
}

RWKV_EXPORT const char *rwkv_client_get_error_message(const RwkvClient *c) {
        return c && c->error_message ? c->error_message : "";
}

RWKV_EXPORT int rwkv_client_new(int bus, const char *address, RwkvClient **ret) {
        _cleanup_(bus_unrefp) sd_bus *b = NULL;
        RwkvClient *c;
        int r;

        if (!ret)
                return -EINVAL;
        /* Named daemon errors come back as their errno (bus-errors.c); idempotent. */
        r = rwkv_bus_errors_register();
        if (r < 0)
                return r;

        switch (bus) {
        case RWKV_BUS_SYSTEM:
                r = sd_bus_open_system(&b);
                break;
        case RWKV_BUS_USER:
                r = sd_bus_open_user(&b);
                break;
        case RWKV_BUS_ADDRESS:
                if (!address || !*address)
                        address = secure_getenv(RWKV_BUS_ADDRESS_ENV);
                if (!address || !*address)
                        return -EINVAL;
                r = sd_bus_new(&b);
                if (r < 0)
                        return r;
                r = sd_bus_set_address(b, address);
                if (r < 0)
                        return r;
                r = sd_bus_set_bus_client(b, 1);
                if (r < 0)
                        return r;
                r = sd_bus_negotiate_fds(b, 1);
                if (r < 0)
                        return r;
                r = sd_bus_start(b);
                break;
        default:
                return -EINVAL;
        }
        if (r < 0)
                return r;

        c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        c->bus = b;
        b = NULL;
        *ret = c;
        return 0;
}

RWKV_EXPORT RwkvClient *rwkv_client_free(RwkvClient *c) {
        if (!c)
                return NULL;
        /* Not closed: streams started from this client hold their own references. */
        sd_bus_flush(c->bus);
        sd_bus_unref(c->bus);
        free(c->error_message);
        free(c);
        return NULL;
}

/* Sends m and waits for the reply; records the error message on c. */
static int client_call(RwkvClient *c, sd_bus_message *m, sd_bus_message **reply) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        int r = sd_bus_call(c->bus, m, 0, &error, reply);
        client_set_error(c, r, &error);
        sd_bus_error_free(&error);
        return r;
}

static int client_new_call(RwkvClient *c, const char *member, sd_bus_message **ret) {
        int r = sd_bus_message_new_method_call(c->bus, ret, RWKV_BUS_NAME, RWKV_BUS_PATH, RWKV_BUS_INTERFACE, member);
        return client_set_error(c, r, NULL);
}

/* Starts a call whose first argument is a session id (every per-session method has one). */
static int session_call_new(RwkvClient *c, const char *member, const char *id, sd_bus_message **ret) {
        _cleanup_(message_unrefp) sd_bus_message *m = NULL;
        int r;

        if (!id)
                return client_set_error(c, -EINVAL, NULL);
        r = client_new_call(c, member, &m);
        if (r < 0)
                return r;
        r = sd_bus_message_append(m, "s", id);
        if (r < 0)
                return client_set_error(c, r, NULL);
        *ret = m;
        m = NULL;
        return 0;
}

/* Reads an "s" reply into a fresh string (if ret is not NULL). */
static int read_id(RwkvClient *c, sd_bus_message *reply, char **ret) {
        const char *s;
        int r = sd_bus_message_read(reply, "s", &s);
        if (r < 0)
                return client_set_error(c, r, NULL);
        if (ret) {
                char *d = strdup(s);
                if (!d)
                        return client_set_error(c, -ENOMEM, NULL);
                *ret = d;
        }
        return 0;
}

RWKV_EXPORT int rwkv_session_create(RwkvClient *c, const char *id, const char *title, char **ret_id) {
        _cleanup_(message_unrefp) sd_bus_message *m = NULL, *reply = NULL;
        int r;

        if (!c)
                return -EINVAL;
        r = client_new_call(c, "CreateSession", &m);
        if (r < 0)
                return r;
        r = sd_bus_message_append(m, "s", id ? id : "");
        if (r >= 0)
                r = title ? sd_bus_message_append(m, "a{sv}", 1, "title", "s", title)
                          : sd_bus_message_append(m, "a{sv}", 0);
        if (r < 0)
                return client_set_error(c, r, NULL);
        r = client_call(c, m, &reply);
        if (r < 0)
                return r;
        return read_id(c, reply, ret_id);
}

/* Calls member with one string argument and no reply value. */
static int call_s(RwkvClient *c, const char *member, const char *id) {
        _cleanup_(message_unrefp) sd_bus_message *m = NULL, *reply = NULL;
        int r;

        if (!c)
                return -EINVAL;
        r = session_call_new(c, member, id, &m);
        if (r < 0)
                return r;
        return client_call(c, m, &reply);
}

static int call_ss(RwkvClient *c, const char *member, const char *a, const char *b) {
        _cleanup_(message_unrefp) sd_bus_message *m = NULL, *reply = NULL;
        int r;

        if (!c)
                return -EINVAL;
        if (!a || !b)
                return client_set_error(c, -EINVAL, NULL);
        r = client_new_call(c, member, &m);
        if (r < 0)
                return r;
        r = sd_bus_message_append(m, "ss", a, b);
        if (r < 0)
                return client_set_error(c, r, NULL);
        return client_call(c, m, &reply);
}

RWKV_EXPORT int rwkv_session_delete(RwkvClient *c, const char *id) {
        return call_s(c, "DeleteSession", id);
}

RWKV_EXPORT int rwkv_session_rename(RwkvClient *c, const char *id, const char *new_id) {
        return call_ss(c, "RenameSession", id, new_id);
}

RWKV_EXPORT int rwkv_session_set_title(RwkvClient *c, const char *id, const char *title) {
        return call_ss(c, "SetSessionTitle", id, title);
}

RWKV_EXPORT int rwkv_session_rewind(RwkvClient *c, const char *id, uint32_t turn) {
        _cleanup_(message_unrefp) sd_bus_message *m = NULL, *reply = NULL;
        int r;

        if (!c)
                return -EINVAL;
        r = session_call_new(c, "RewindSession", id, &m);
        if (r < 0)
                return r;
        r = sd_bus_message_append(m, "u", turn);
        if (r < 0)
                return client_set_error(c, r, NULL);
        return client_call(c, m, &reply);
}

RWKV_EXPORT int rwkv_session_fork(RwkvClient *c, const char *id, const char *new_id, uint32_t turn, char **ret_id) {
        _cleanup_(message_unrefp) sd_bus_message *m = NULL, *reply = NULL;
        int r;

        if (!c)
                return -EINVAL;
        r = session_call_new(c, "ForkSession", id, &m);
        if (r < 0)
                return r;
        r = sd_bus_message_append(m, "su", new_id ? new_id : "", turn);
        if (r < 0)
                return client_set_error(c, r, NULL);
        r = client_call(c, m, &reply);
        if (r < 0)
                return r;
        return read_id(c, reply, ret_id);
}

RWKV_EXPORT int rwkv_session_export(RwkvClient *c, const char *id, int fd) {
        _cleanup_(message_unrefp) sd_bus_message *m = NULL, *reply = NULL;
        int r;

        if (!c)
                return -EINVAL;
        if (fd < 0)
                return client_set_error(c, -EBADF, NULL);
        r = session_call_new(c, "ExportSession", id, &m);
        if (r < 0)
                return r;
        r = sd_bus_message_append(m, "h", fd); /* sd-bus dups the fd */
        if (r < 0)
                return client_set_error(c, r, NULL);
        return client_call(c, m, &reply);
}

RWKV_EXPORT int rwkv_session_import(RwkvClient *c, int fd, const char *id, char **ret_id) {
        _cleanup_(message_unrefp) sd_bus_message *m = NULL, *reply = NULL;
        int r;

        if (!c)
                return -EINVAL;
        if (fd < 0)
                return client_set_error(c, -EBADF, NULL);
        r = client_new_call(c, "ImportSession", &m);
        if (r < 0)
                return r;
        r = sd_bus_message_append(m, "hs", fd, id ? id : "");
        if (r < 0)
                return client_set_error(c, r, NULL);
        r = client_call(c, m, &reply);
        if (r < 0)
                return r;
        return read_id(c, reply, ret_id);
}

RWKV_EXPORT int rwkv_session_get(RwkvClient *c, const char *id, RwkvInfo **ret) {
        _cleanup_(message_unrefp) sd_bus_message *m = NULL, *reply = NULL;
        RwkvInfo *info = NULL;
        int r;

        if (!c || !ret)
                return -EINVAL;
        r = session_call_new(c, "GetSession", id, &m);
        if (r < 0)
                return r;
        r = client_call(c, m, &reply);
        if (r < 0)
                return r;
        r = info_new(&info);
        if (r >= 0)
                r = info_read_dict(info, reply, 0);
        if (r < 0) {
                rwkv_info_free(info);
                return client_set_error(c, r, NULL);
        }
        *ret = info;
        return 0;
}

RWKV_EXPORT int rwkv_status(RwkvClient *c, RwkvInfo **ret) {
        _cleanup_(message_unrefp) sd_bus_message *m = NULL, *reply = NULL, *props = NULL;
        sd_bus_error error = SD_BUS_ERROR_NULL;
        RwkvInfo *info = NULL;
        int r;

        if (!c || !ret)
                return -EINVAL;
        r = client_new_call(c, "Status", &m);
        if (r < 0)
                return r;
        r = client_call(c, m, &reply);
        if (r < 0)
                return r;
        r = sd_bus_call_method(c->bus, RWKV_BUS_NAME, RWKV_BUS_PATH, RWKV_PROPERTIES_INTERFACE, "GetAll", &error,
                               &props, "s", RWKV_BUS_INTERFACE);
        client_set_error(c, r, &error);
        sd_bus_error_free(&error);
        if (r < 0)
                return r;
        r = info_new(&info);
        if (r >= 0)
                r = info_read_dict(info, props, 1);
        if (r >= 0)
                r = info_read_dict(info, reply, 0);
        if (r < 0) {
                rwkv_info_free(info);
                return client_set_error(c, r, NULL);
        }
        *ret = info;
        return 0;
}

/* ---- Session lists ---- */

typedef struct ListEntry {
        char *id, *title;
        uint64_t tokens, created, updated;
        uint32_t turns;
        int hot;
} ListEntry;

struct RwkvSessionList {
        ListEntry *entries;
        size_t n;
};

RWKV_EXPORT RwkvSessionList *rwkv_session_list_free(RwkvSessionList *l) {
        if (!l)
                return NULL;
        for (size_t i = 0; i < l->n; i++) {
                free(l->entries[i].id);
                free(l->entries[i].title);
        }
        free(l->entries);
        free(l);
        return NULL;
}

RWKV_EXPORT int rwkv_session_list(RwkvClient *c, RwkvSessionList **ret) {
        _cleanup_(message_unrefp) sd_bus_message *m = NULL, *reply = NULL;
        RwkvSessionList *l;
        size_t allocated = 0;
        int r;

        if (!c || !ret)
                return -EINVAL;
        r = client_new_call(c, "ListSessions", &m);
        if (r < 0)
                return r;
        r = client_call(c, m, &reply);
        if (r < 0)
                return r;
        l = calloc(1, sizeof(*l));
        if (!l)
                return client_set_error(c, -ENOMEM, NULL);
        /* id, title, tokens, turns, created, updated, hot */
        r = sd_bus_message_enter_container(reply, 'a', "(sstuttb)");
        while (r >= 0) {
                const char *id, *title;
                uint32_t turns;
                uint64_t created, updated, tokens;
                int hot;

                r = sd_bus_message_read(reply, "(sstuttb)", &id, &title, &tokens, &turns, &created, &updated, &hot);
                if (r <= 0)
                        break;
                if (l->n == allocated) {
                        size_t na = allocated ? allocated * 2 : 16;
                        ListEntry *e = realloc(l->entries, na * sizeof(*e));
                        if (!e) {
                                r = -ENOMEM;
                                break;
                        }
                        l->entries = e;
                        allocated = na;
                }
                ListEntry *e = &l->entries[l->n];
                *e = (ListEntry){ .id = strdup(id),
                                  .title = strdup(title),
                                  .tokens = tokens,
                                  .turns = turns,
                                  .created = created,
                                  .updated = updated,
                                  .hot = !!hot };
                l->n++;
                if (!e->id || !e->title) {
                        r = -ENOMEM;
                        break;
                }
        }
        if (r >= 0)
                r = sd_bus_message_exit_container(reply);
        if (r < 0) {
                rwkv_session_list_free(l);
                return client_set_error(c, r, NULL);
        }
        *ret = l;
        return 0;
}

RWKV_EXPORT size_t rwkv_session_list_get_count(const RwkvSessionList *l) {
        return l ? l->n : 0;
}

#define LIST_GET(name, type, field, none)                                                                              \
        RWKV_EXPORT type rwkv_session_list_get_##name(const RwkvSessionList *l, size_t i) {                            \
                return l && i < l->n ? l->entries[i].field : none;                                                     \
        }
LIST_GET(id, const char *, id, NULL)
LIST_GET(title, const char *, title, NULL)
LIST_GET(tokens, uint64_t, tokens, 0)
LIST_GET(turns, uint32_t, turns, 0)
LIST_GET(created, uint64_t, created, 0)
LIST_GET(updated, uint64_t, updated, 0)
LIST_GET(hot, int, hot, 0)
