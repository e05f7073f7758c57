/* manager-bus.c: the org.rwkvd.Daemon1 vtable. Each handler: parse -> validate -> authorize (peer
 * uid) -> hand off -> reply. Nothing here blocks on compute or disk. */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-daemon.h>

#include "daemon/log.h"
#include "daemon/bus-util.h"
#include "daemon/manager.h"
#include "engine/text/utf8-stream.h"
#include "kernels/dtype.h"
#include "protocol/bus.h"

int bus_caller_uid(sd_bus_message *msg, uid_t *ret) {
        _cleanup_(sd_bus_creds_unrefp) sd_bus_creds *creds = NULL;
        int r;

        r = sd_bus_query_sender_creds(msg, SD_BUS_CREDS_EUID, &creds);
        if (r < 0)
                return r;
        return sd_bus_creds_get_euid(creds, ret);
}

/* Finds the session a caller names; another user's session is reported exactly like a missing one. */
int bus_find_session(Manager *m, uid_t caller, const char *name, Session **ret, sd_bus_error *error) {
        const char *id;
        uid_t owner;
        Session *s;
        int r;

        r = session_name_parse(name, caller, &owner, &id);
        if (r == -EPERM)
                return sd_bus_error_set(error, RWKV_ERROR_NO_SUCH_SESSION, "No such session.");
        if (r < 0)
                return sd_bus_error_set(error, RWKV_ERROR_INVALID_ARGUMENT, "Invalid session id: expected " ID_RULES
                                        " (root: UID/ID).");
        s = session_table_find(&m->sessions, owner, id);
        if (!s) {
                const ForeignSession *f = manager_foreign_find(m, owner, id);
                if (f)
                        return manager_foreign_error(m, f, error);
                return sd_bus_error_setf(error, RWKV_ERROR_NO_SUCH_SESSION, "No session '%s'.", id);
        }
        *ret = s;
        return 0;
}

static int check_new_id(Manager *m, uid_t owner, const char *id, sd_bus_error *error) {
        if (!session_id_valid(id))
                return sd_bus_error_set(error, RWKV_ERROR_INVALID_ARGUMENT, "Invalid new session id: expected " ID_RULES ".");
        if (session_table_find(&m->sessions, owner, id))
                return sd_bus_error_setf(error, RWKV_ERROR_SESSION_EXISTS, "Session '%s' already exists.", id);
        /* Never shadow another model's session of that id: its file would be lost or refused later. */
        const ForeignSession *f = manager_foreign_find(m, owner, id);
        if (f)
                return manager_foreign_error(m, f, error);
        return 0;
}

static int check_quota(Manager *m, uid_t owner, sd_bus_error *error) {
        uint32_t max = m->config.limits.max_sessions_per_user;
        if (session_table_count_uid(&m->sessions, owner) >= max)
                return sd_bus_error_setf(error, RWKV_ERROR_QUOTA_EXCEEDED,
                                         "Session limit reached: max_sessions_per_user is %" PRIu32 ".", max);
        return 0;
}

/* Decide the owner and id for a new session named "ID", "UID/ID" (root) or "" (daemon picks). */
static int new_session_name(Manager *m, uid_t caller, const char *name, uid_t *ret_owner, char ret_id[static SESSION_ID_MAX + 1],
                            sd_bus_error *error) {
        uid_t owner = caller;
        const char *id = name;
        int r;

        if (!isempty_str(name)) {
                r = session_name_parse(name, caller, &owner, &id);
                if (r == -EPERM)
                        return sd_bus_error_set(error, RWKV_ERROR_ACCESS_DENIED, "Only root may create sessions for other users.");
                if (r < 0)
                        return sd_bus_error_set(error, RWKV_ERROR_INVALID_ARGUMENT, "Invalid session id: expected " ID_RULES ".");
        }
        /* The id before the quota: an id the owner already has is SessionExists, which clients
         * take as "continue it" (rwkvctl --session), even for a user at the quota. */
        if (!isempty_str(name)) {
                r = check_new_id(m, owner, id, error);
                if (r < 0)
                        return r;
        }
        r = check_quota(m, owner, error);
        if (r < 0)
                return r;
        if (isempty_str(name)) {
                r = session_table_pick_id(&m->sessions, owner, ret_id);
                if (r < 0)
                        return sd_bus_error_set(error, RWKV_ERROR_IO, "Could not pick a free session id.");
        } else
                strcpy(ret_id, id);
        *ret_owner = owner;
        return 0;
}

static int check_title(Manager *m, const char *title, sd_bus_error *error) {
        if (strlen(title) > m->config.limits.max_title_bytes)
                return sd_bus_error_setf(error, RWKV_ERROR_INVALID_ARGUMENT,
                                         "Title too long: max_title_bytes is %" PRIu32 ".", m->config.limits.max_title_bytes);
        for (const char *p = title; *p; p++)
                if ((unsigned char) *p < 0x20)
                        return sd_bus_error_set(error, RWKV_ERROR_INVALID_ARGUMENT, "Title contains control characters.");
        return 0;
}

int bus_parse_options(Manager *m, sd_bus_message *msg, OptionFn fn, void *userdata, sd_bus_error *error) {
        int r;

        r = sd_bus_message_enter_container(msg, 'a', "{sv}");
        if (r < 0)
                return r;
        for (;;) {
                const char *key, *contents;
                char type;

                r = sd_bus_message_enter_container(msg, 'e', "sv");
                if (r < 0)
                        return r;
                if (r == 0)
                        break;
                r = sd_bus_message_read(msg, "s", &key);
                if (r < 0)
                        return r;
                r = sd_bus_message_peek_type(msg, &type, &contents);
                if (r < 0)
                        return r;
                r = sd_bus_message_enter_container(msg, 'v', contents);
                if (r < 0)
                        return r;
                r = fn(m, key, contents, msg, userdata, error);
                if (r < 0)
                        return r;
                r = sd_bus_message_exit_container(msg);
                if (r < 0)
                        return r;
                r = sd_bus_message_exit_container(msg);
                if (r < 0)
                        return r;
        }
        return sd_bus_message_exit_container(msg);
}

int bus_option_type_error(const char *key, const char *want, sd_bus_error *error) {
        return sd_bus_error_setf(error, RWKV_ERROR_INVALID_ARGUMENT, "Option '%s' must have type '%s'.", key, want);
}

int bus_option_unknown(const char *key, sd_bus_error *error) {
        /* Quote at most a short prefix of a hostile key. */
        return sd_bus_error_setf(error, RWKV_ERROR_INVALID_ARGUMENT, "Unknown option '%.64s'.", key);
}

/* ---- properties ------------------------------------------------------------------------------ */

static int property_get(sd_bus *bus, const char *path, const char *interface, const char *property,
                        sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        const ModelInfo *i = m->info;

        if (strcmp(property, "Version") == 0)
                return sd_bus_message_append(reply, "s", RWKVD_VERSION);
        if (strcmp(property, "ModelName") == 0)
                return sd_bus_message_append(reply, "s", i->name);
        if (strcmp(property, "ModelArchitecture") == 0)
                return sd_bus_message_append(reply, "s", i->arch_name ? i->arch_name : "");
        if (strcmp(property, "ModelHash") == 0)
                return sd_bus_message_append(reply, "s", i->hash_hex);
        if (strcmp(property, "ModelType") == 0) {
                const char *t = dtype_name(i->wtype);
                return sd_bus_message_append(reply, "s", t ? t : "");
        }
        if (strcmp(property, "ModelLayers") == 0)
                return sd_bus_message_append(reply, "u", i->n_layer);
        if (strcmp(property, "ModelEmbedding") == 0)
                return sd_bus_message_append(reply, "u", i->n_embd);
        if (strcmp(property, "ModelHeads") == 0)
                return sd_bus_message_append(reply, "u", i->n_head);
        if (strcmp(property, "VocabularySize") == 0)
                return sd_bus_message_append(reply, "u", i->n_vocab);
        if (strcmp(property, "Tokenizer") == 0)
                return sd_bus_message_append(reply, "s", tokenizer_is_bytes(model_tokenizer(m->model)) ? "bytes" : "world");
        if (strcmp(property, "StateSize") == 0)
                return sd_bus_message_append(reply, "t", (uint64_t) (i->state_floats * sizeof(float)));
        if (strcmp(property, "Threads") == 0)
                return sd_bus_message_append(reply, "u", m->config.threads);
        return -ENOENT;
}

/* ---- sessions -------------------------------------------------------------------------------- */

typedef struct CreateOptions {
        const char *title;
} CreateOptions;

static int create_option(Manager *m, const char *key, const char *type, sd_bus_message *msg, void *userdata,
                         sd_bus_error *error) {
        CreateOptions *o = userdata;
        if (strcmp(key, "title") == 0) {
                if (strcmp(type, "s") != 0)
                        return bus_option_type_error(key, "s", error);
                int r = sd_bus_message_read(msg, "s", &o->title);
                if (r < 0)
                        return r;
                return check_title(m, o->title, error);
        }
        return bus_option_unknown(key, error);
}

static int method_create_session(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        _cleanup_(session_freep) Session *s = NULL;
        CreateOptions o = {};
        char id[SESSION_ID_MAX + 1];
        const char *name;
        uid_t caller, owner;
        int r;

        r = sd_bus_message_read(msg, "s", &name);
        if (r < 0)
                return r;
        r = bus_parse_options(m, msg, create_option, &o, error);
        if (r < 0)
                return r;
        GET_CALLER(msg, caller, error);
        REFUSE_WHEN_SHUTTING_DOWN(m, error);
        r = new_session_name(m, caller, name, &owner, id, error);
        if (r < 0)
                return r;

        r = session_new(id, owner, m->fresh_state, m->info->state_floats, m->info->n_vocab, &s);
        if (r < 0)
                return r;
        if (o.title) {
                r = session_set_title(s, o.title);
                if (r < 0)
                        return r;
        }
        log_debug("uid %u created session '%s' for uid %u.", (unsigned) caller, id, (unsigned) owner);
        Session *added = TAKE_PTR(s);
        session_table_add(&m->sessions, added);
        (void) manager_session_commit(m, added);
        return sd_bus_reply_method_return(msg, "s", added->id);
}

static int method_list_sessions(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        Manager *m = userdata;
        uid_t caller;
        int r;

        GET_CALLER(msg, caller, error);
        r = sd_bus_message_new_method_return(msg, &reply);
        if (r < 0)
                return r;
        r = sd_bus_message_open_container(reply, 'a', "(sstuttb)");
        if (r < 0)
                return r;
        for (Session *s = m->sessions.head; s; s = s->next) {
                if (caller != 0 && s->owner != caller)
                        continue;
                char name[SESSION_ID_MAX + 16];
                /* root sees every session; other users' ones by the name root uses to address them */
                if (s->owner != caller)
                        snprintf(name, sizeof(name), "%u/%s", (unsigned) s->owner, s->id);
                else
                        snprintf(name, sizeof(name), "%s", s->id);
                r = sd_bus_message_append(reply, "(sstuttb)", name, s->title ? s->title : "", s->tokens, s->turns,
                                          s->created_usec, s->updated_usec, s->hot);
                if (r < 0)
                        return r;
        }
        r = sd_bus_message_close_container(reply);
        if (r < 0)
                return r;
        return sd_bus_send(NULL, reply, NULL);
}

static int method_get_session(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        const char *name;
        Session *s;
        uid_t caller;
        int r;

        r = sd_bus_message_read(msg, "s", &name);
        if (r < 0)
                return r;
        GET_CALLER(msg, caller, error);
        r = bus_find_session(m, caller, name, &s, error);
        if (r < 0)
                return r;
        return sd_bus_reply_method_return(
                msg, "a{sv}", 13,
                "id", "s", s->id,
                "owner", "u", (uint32_t) s->owner,
                "title", "s", s->title ? s->title : "",
                "tokens", "t", s->tokens,
                "turns", "u", s->turns,
                "created", "t", s->created_usec,
                "updated", "t", s->updated_usec,
                "hot", "b", s->hot,
                "busy", "b", s->busy,
                "model_hash", "s", m->info->hash_hex,
                "state_bytes", "t", (uint64_t) session_state_bytes(s),
                "disk_bytes", "t", s->disk_bytes,
                "checkpoints", "u", manager_session_checkpoints(m, s));
}

static int method_fork_session(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        _cleanup_(session_freep) Session *n = NULL;
        const char *name, *new_name;
        char id[SESSION_ID_MAX + 1];
        uid_t caller, owner;
        uint32_t turn;
        Session *s;
        int r;

        r = sd_bus_message_read(msg, "ssu", &name, &new_name, &turn);
        if (r < 0)
                return r;
        GET_CALLER(msg, caller, error);
        REFUSE_WHEN_SHUTTING_DOWN(m, error);
        r = bus_find_session(m, caller, name, &s, error);
        if (r < 0)
                return r;
        if (turn > s->turns)
                return sd_bus_error_setf(error, RWKV_ERROR_INVALID_ARGUMENT, "Session '%s' has %" PRIu32 " turns, not %" PRIu32 ".",
                                         s->id, s->turns, turn);
        if (s->busy)
                return sd_bus_error_setf(error, RWKV_ERROR_SESSION_BUSY, "Session '%s' is generating.", s->id);
        r = manager_session_ensure_hot(m, s, msg, method_fork_session, error);
        if (r <= 0)
                return r == 0 ? 1 : r;
        /* The copy belongs to the source's owner (root forking a user's session gives it to the user). */
        r = new_session_name(m, s->owner, new_name, &owner, id, error);
        if (r < 0)
                return r;
        if (turn > 0 && !session_checkpoint(s, turn)) {
                /* Not in RAM (older than those held, or the daemon restarted): read it from disk. */
                r = manager_session_fork_from_disk(m, s, turn, id, msg);
                if (r == -ENOENT)
                        return sd_bus_error_setf(error, RWKV_ERROR_INVALID_ARGUMENT,
                                                 "Turn %" PRIu32 " of session '%s' has no checkpoint any more.", turn, s->id);
                return r < 0 ? r : 1;
        }
        r = session_fork(s, id, turn, &n);
        if (r < 0)
                return r;
        Session *added = TAKE_PTR(n);
        session_table_add(&m->sessions, added);
        (void) manager_session_commit(m, added);
        return sd_bus_reply_method_return(msg, "s", added->id);
}

static int method_rename_session(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        const char *name, *new_id;
        uid_t caller;
        Session *s;
        int r;

        r = sd_bus_message_read(msg, "ss", &name, &new_id);
        if (r < 0)
                return r;
        GET_CALLER(msg, caller, error);
        REFUSE_WHEN_SHUTTING_DOWN(m, error);
        r = bus_find_session(m, caller, name, &s, error);
        if (r < 0)
                return r;
        if (strcmp(s->id, new_id) == 0)
                return sd_bus_reply_method_return(msg, NULL);
        r = check_new_id(m, s->owner, new_id, error);
        if (r < 0)
                return r;
        if (s->busy)
                return sd_bus_error_setf(error, RWKV_ERROR_SESSION_BUSY, "Session '%s' is generating.", s->id);
        r = manager_session_rename(m, s, new_id, msg);
        return r < 0 ? r : 1;
}

static int method_set_session_title(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        const char *name, *title;
        uid_t caller;
        Session *s;
        int r;

        r = sd_bus_message_read(msg, "ss", &name, &title);
        if (r < 0)
                return r;
        r = check_title(m, title, error);
        if (r < 0)
                return r;
        GET_CALLER(msg, caller, error);
        r = bus_find_session(m, caller, name, &s, error);
        if (r < 0)
                return r;
        if (s->busy)
                return sd_bus_error_setf(error, RWKV_ERROR_SESSION_BUSY, "Session '%s' is generating.", s->id);
        r = manager_session_ensure_hot(m, s, msg, method_set_session_title, error);
        if (r <= 0)
                return r == 0 ? 1 : r;
        r = session_set_title(s, title);
        if (r < 0)
                return r;
        (void) manager_session_commit(m, s);
        return sd_bus_reply_method_return(msg, NULL);
}

static int method_delete_session(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        const char *name;
        uid_t caller;
        Session *s;
        int r;

        r = sd_bus_message_read(msg, "s", &name);
        if (r < 0)
                return r;
        GET_CALLER(msg, caller, error);
        r = bus_find_session(m, caller, name, &s, error);
        if (r < 0) {
                /* A stored session this daemon cannot use (another model's, a corrupt or
                 * unreadable file) may still be deleted, to free its id. */
                uid_t owner;
                const char *id;
                if (session_name_parse(name, caller, &owner, &id) >= 0) {
                        const ForeignSession *f = manager_foreign_find(m, owner, id);
                        if (f) {
                                sd_bus_error_free(error);
                                r = manager_foreign_delete(m, f, msg);
                                return r < 0 ? r : 1;
                        }
                }
        }
        if (r < 0)
                return r;
        if (s->busy)
                return sd_bus_error_setf(error, RWKV_ERROR_SESSION_BUSY, "Session '%s' is generating; cancel it first.", s->id);
        r = manager_session_delete(m, s, msg);
        return r < 0 ? r : 1;
}

static int method_rewind_session(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        const char *name;
        uint32_t turn;
        uid_t caller;
        Session *s;
        int r;

        r = sd_bus_message_read(msg, "su", &name, &turn);
        if (r < 0)
                return r;
        GET_CALLER(msg, caller, error);
        REFUSE_WHEN_SHUTTING_DOWN(m, error);
        r = bus_find_session(m, caller, name, &s, error);
        if (r < 0)
                return r;
        if (turn == 0 || turn > s->turns)
                return sd_bus_error_setf(error, RWKV_ERROR_INVALID_ARGUMENT, "Session '%s' has turns 1..%" PRIu32 "; %" PRIu32 " is not one.",
                                         s->id, s->turns, turn);
        if (s->busy)
                return sd_bus_error_setf(error, RWKV_ERROR_SESSION_BUSY, "Session '%s' is generating.", s->id);
        r = manager_session_ensure_hot(m, s, msg, method_rewind_session, error);
        if (r <= 0)
                return r == 0 ? 1 : r;
        r = session_rewind(s, turn);
        if (r == -ENOENT) {
                /* Not in RAM (older than those held, or the daemon restarted): read it from disk. */
                r = manager_session_rewind_from_disk(m, s, turn, msg);
                if (r == -ENOENT)
                        return sd_bus_error_setf(error, RWKV_ERROR_INVALID_ARGUMENT,
                                                 "Turn %" PRIu32 " of session '%s' has no checkpoint any more.", turn, s->id);
                return r < 0 ? r : 1;
        }
        if (r < 0)
                return r;
        (void) manager_session_commit(m, s);
        (void) manager_checkpoint_truncate(m, s, turn - 1);
        return sd_bus_reply_method_return(msg, NULL);
}

/* Each export/import may hold a thread while the client's pipe is slow: bounded like generations. */
static int check_transfers(Manager *m, uid_t caller, sd_bus_error *error) {
        if (manager_transfers(m, (uid_t) -1) >= m->config.limits.max_streams)
                return sd_bus_error_setf(error, RWKV_ERROR_TOO_MANY_GENERATIONS,
                                         "The daemon runs its maximum of %" PRIu32 " exports and imports (max_streams).",
                                         m->config.limits.max_streams);
        if (manager_transfers(m, caller) >= m->config.limits.max_generations_per_user)
                return sd_bus_error_setf(error, RWKV_ERROR_TOO_MANY_GENERATIONS,
                                         "You already run %" PRIu32 " exports or imports: max_generations_per_user is %" PRIu32 ".",
                                         manager_transfers(m, caller), m->config.limits.max_generations_per_user);
        return 0;
}

static int method_export_session(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        const char *name;
        uid_t caller;
        Session *s;
        int fd, r;

        r = sd_bus_message_read(msg, "sh", &name, &fd);
        if (r < 0)
                return r;
        GET_CALLER(msg, caller, error);
        r = bus_find_session(m, caller, name, &s, error);
        if (r < 0)
                return r;
        if (s->busy)
                return sd_bus_error_setf(error, RWKV_ERROR_SESSION_BUSY, "Session '%s' is generating.", s->id);
        r = check_transfers(m, caller, error);
        if (r < 0)
                return r;
        r = manager_session_export(m, s, fd, msg);
        if (r < 0)
                return sd_bus_error_setf(error, RWKV_ERROR_IO, "Export failed: %s", strerror(-r));
        return 1;
}

static int method_import_session(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        const char *name;
        uid_t caller;
        int fd, r;

        r = sd_bus_message_read(msg, "hs", &fd, &name);
        if (r < 0)
                return r;
        if (!isempty_str(name) && !session_id_valid(name))
                return sd_bus_error_set(error, RWKV_ERROR_INVALID_ARGUMENT, "Invalid session id: expected " ID_RULES ".");
        GET_CALLER(msg, caller, error);
        REFUSE_WHEN_SHUTTING_DOWN(m, error);
        if (!isempty_str(name)) {
                r = check_new_id(m, caller, name, error);
                if (r < 0)
                        return r;
        }
        r = check_quota(m, caller, error);
        if (r < 0)
                return r;
        r = check_transfers(m, caller, error);
        if (r < 0)
                return r;
        r = manager_session_import(m, caller, fd, name, msg);
        if (r < 0)
                return sd_bus_error_setf(error, RWKV_ERROR_IO, "Import failed: %s", strerror(-r));
        return 1;
}

/* ---- generations ----------------------------------------------------------------------------- */

static uint64_t rss_bytes(void) {
        _cleanup_(fclosep) FILE *f = fopen("/proc/self/statm", "re");
        unsigned long size, resident;
        if (!f || fscanf(f, "%lu %lu", &size, &resident) != 2)
                return 0;
        return (uint64_t) resident * (uint64_t) sysconf(_SC_PAGESIZE);
}

static int method_status(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        SchedulerStats st;
        uint32_t n_hot = 0;

        scheduler_get_stats(m->scheduler, &st);
        for (Session *s = m->sessions.head; s; s = s->next)
                n_hot += s->hot;
        /* one key and value a line */
        /* clang-format off */
        return sd_bus_reply_method_return(
                msg, "a{sv}", 14,
                "sessions_hot", "u", n_hot,
                "sessions_cold", "u", m->sessions.n - n_hot,
                "jobs_running", "u", st.running,
                "jobs_queued", "u", st.queued,
                "jobs_parked", "u", st.parked,
                "tokens_per_second", "d", st.tokens_per_second,
                "tokens_total", "t", st.tokens_total,
                "decode_steps", "t", st.decode_steps,
                "decode_batch_max", "u", st.decode_batch_max,
                "rss_bytes", "t", rss_bytes(),
                "hot_bytes", "t", manager_hot_bytes(m),
                "threads", "u", m->config.threads,
                "uptime_usec", "t", now_monotonic_usec() - m->start_usec,
                "isa", "s", scheduler_isa(m->scheduler));
        /* clang-format on */
}

static const sd_bus_vtable manager_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_PROPERTY("Version", "s", property_get, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("ModelName", "s", property_get, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("ModelArchitecture", "s", property_get, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("ModelHash", "s", property_get, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("ModelType", "s", property_get, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("ModelLayers", "u", property_get, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("ModelEmbedding", "u", property_get, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("ModelHeads", "u", property_get, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("VocabularySize", "u", property_get, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Tokenizer", "s", property_get, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("StateSize", "t", property_get, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Threads", "u", property_get, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_METHOD_WITH_ARGS("CreateSession", SD_BUS_ARGS("s", id, "a{sv}", options), SD_BUS_RESULT("s", session_id),
                                method_create_session, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("ListSessions", SD_BUS_NO_ARGS, SD_BUS_RESULT("a(sstuttb)", sessions),
                                method_list_sessions, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("GetSession", SD_BUS_ARGS("s", id), SD_BUS_RESULT("a{sv}", info), method_get_session,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("ForkSession", SD_BUS_ARGS("s", id, "s", new_id, "u", turn),
                                SD_BUS_RESULT("s", session_id), method_fork_session, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("RenameSession", SD_BUS_ARGS("s", id, "s", new_id), SD_BUS_NO_RESULT,
                                method_rename_session, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("SetSessionTitle", SD_BUS_ARGS("s", id, "s", title), SD_BUS_NO_RESULT,
                                method_set_session_title, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("DeleteSession", SD_BUS_ARGS("s", id), SD_BUS_NO_RESULT, method_delete_session,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("RewindSession", SD_BUS_ARGS("s", id, "u", turn), SD_BUS_NO_RESULT,
                                method_rewind_session, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("ExportSession", SD_BUS_ARGS("s", id, "h", fd), SD_BUS_NO_RESULT,
                                method_export_session, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("ImportSession", SD_BUS_ARGS("h", fd, "s", id), SD_BUS_RESULT("s", session_id),
                                method_import_session, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Generate", SD_BUS_ARGS("s", id, "s", prompt, "a{sv}", options),
                                SD_BUS_RESULT("t", job, "h", ring, "h", client_wakeup, "h", daemon_wakeup),
                                method_generate, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Cancel", SD_BUS_ARGS("t", job), SD_BUS_NO_RESULT, method_cancel,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Status", SD_BUS_NO_ARGS, SD_BUS_RESULT("a{sv}", status), method_status,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_VTABLE_END,
};

static int on_bus_message(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;

        if (!sd_bus_message_is_signal(msg, "org.freedesktop.DBus.Local", "Disconnected"))
                return 0;
        log_error("Lost the connection to the bus: finishing running generations, saving sessions, exiting.");
        m->bus_lost = true;
        manager_shutdown(m);
        return 0;
}

int manager_bus_setup(Manager *m) {
        int r;

        switch (m->bus_mode) {
        case BUS_MODE_SYSTEM:
                r = sd_bus_open_system_with_description(&m->bus, "rwkvd");
                break;
        case BUS_MODE_USER:
                r = sd_bus_open_user_with_description(&m->bus, "rwkvd");
                break;
        default:
                r = sd_bus_new(&m->bus);
                if (r >= 0)
                        r = sd_bus_set_address(m->bus, m->bus_address);
                if (r >= 0)
                        r = sd_bus_set_bus_client(m->bus, true);
                if (r >= 0)
                        r = sd_bus_start(m->bus);
                break;
        }
        if (r < 0)
                return log_error_errno(r, "Failed to connect to the bus: %m");

        r = sd_bus_add_object_vtable(m->bus, &m->vtable_slot, RWKV_BUS_PATH, RWKV_BUS_INTERFACE, manager_vtable, m);
        if (r < 0)
                return log_error_errno(r, "Failed to register the object: %m");
        r = sd_bus_attach_event(m->bus, m->event, SD_EVENT_PRIORITY_NORMAL);
        if (r < 0)
                return log_error_errno(r, "Failed to attach the bus to the event loop: %m");
        /* Without its bus rwkvd can serve no one (and it would stay behind, idle, forever). */
        r = sd_bus_add_filter(m->bus, NULL, on_bus_message, m);
        if (r < 0)
                return log_error_errno(r, "Failed to watch the bus connection: %m");
        /* Synchronous on purpose: READY=1 must mean the name is ours. */
        r = sd_bus_request_name(m->bus, RWKV_BUS_NAME, 0);
        if (r < 0)
                return log_error_errno(r, "Failed to acquire the bus name %s: %m", RWKV_BUS_NAME);
        return 0;
}
