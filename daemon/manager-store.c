/* manager-store.c: sessions between RAM and the session store (daemon/store.h).
 *
 * The bus thread never touches the disk: every store call runs on the I/O worker, in submission
 * order (so a save, then a rename, then an export of one session happen in that order). The only
 * exception is the scan at startup, before READY=1. A method that needs a session that is on disk
 * only starts a load and returns; when the state is in RAM the same handler runs again on the
 * same message (manager_session_ensure_hot). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "daemon/log.h"
#include "daemon/manager.h"
#include "protocol/bus.h"

static void closedirp_local(DIR **d) {
        if (*d)
                closedir(*d);
}

/* ---- errors ---------------------------------------------------------------------------------- */

int manager_store_error(sd_bus_error *error, int r, const char *what, const char *msg) {
        const char *name;

        switch (-r) {
        case ENOENT: name = RWKV_ERROR_NO_SUCH_SESSION; break;
        case EEXIST: name = RWKV_ERROR_SESSION_EXISTS; break;
        case EMEDIUMTYPE: name = RWKV_ERROR_MODEL_MISMATCH; break;
        case EBADMSG: name = RWKV_ERROR_CORRUPT; break;
        case ENOSPC: case EDQUOT: case EFBIG: name = RWKV_ERROR_NO_SPACE; break;
        case EINVAL: name = RWKV_ERROR_INVALID_ARGUMENT; break;
        default: name = RWKV_ERROR_IO; break;
        }
        return sd_bus_error_setf(error, name, "%s: %s", what, msg && *msg ? msg : strerror(-r));
}

static int reply_store_error(sd_bus_message *msg, int r, const char *what, const char *msg_text) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        manager_store_error(&error, r, what, msg_text);
        return sd_bus_reply_method_error(msg, &error);
}

/* ---- records --------------------------------------------------------------------------------- */

static void fill_meta(Manager *m, const Session *s, SessionMeta *meta) {
        const ModelInfo *i = m->info;
        *meta = (SessionMeta) {
                .uid = s->owner,
                .arch = (uint32_t) i->arch,
                .n_layer = i->n_layer,
                .n_embd = i->n_embd,
                .n_head = i->n_head,
                .head_size = i->head_size,
                .n_vocab = i->n_vocab,
                .state_floats = i->state_floats,
                .n_tokens = s->tokens,
                .n_turns = s->turns,
                .created_usec = s->created_usec,
                .updated_usec = s->updated_usec,
        };
        snprintf(meta->id, sizeof(meta->id), "%s", s->id);
        snprintf(meta->title, sizeof(meta->title), "%s", s->title ? s->title : "");
        memcpy(meta->model_hash, i->hash, sizeof(meta->model_hash));
}

static void *memdup_floats(const float *p, size_t n) {
        float *c = malloc(MAX(n, (size_t) 1) * sizeof(float));
        if (c && p)
                memcpy(c, p, n * sizeof(float));
        return c;
}

/* A deep copy of a hot session for the I/O thread (the session may change meanwhile). */
static int session_snapshot(Manager *m, const Session *s, SessionRecord **ret) {
        _cleanup_(session_record_freep) SessionRecord *rec = calloc(1, sizeof(SessionRecord));
        if (!rec)
                return -ENOMEM;
        fill_meta(m, s, &rec->meta);
        rec->state = memdup_floats(s->state, s->state_floats);
        rec->penalties = memdup_floats(s->penalties, s->n_vocab);
        if (s->has_logits)
                rec->logits = memdup_floats(s->logits, s->n_vocab);
        if (!rec->state || !rec->penalties || (s->has_logits && !rec->logits))
                return -ENOMEM;
        rec->sampler = s->sampler;
        rec->rng = s->rng;
        rec->utf8 = s->utf8;
        *ret = TAKE_PTR(rec);
        return 0;
}

static int checkpoint_snapshot(Manager *m, const Session *s, const Checkpoint *c, uint32_t turn, SessionRecord **ret) {
        _cleanup_(session_record_freep) SessionRecord *rec = calloc(1, sizeof(SessionRecord));
        if (!rec)
                return -ENOMEM;
        fill_meta(m, s, &rec->meta);
        rec->meta.n_tokens = c->tokens;
        rec->meta.n_turns = turn - 1;
        rec->meta.turn = turn;
        rec->state = memdup_floats(c->state, s->state_floats);
        rec->penalties = memdup_floats(c->penalties, s->n_vocab);
        if (c->logits)
                rec->logits = memdup_floats(c->logits, s->n_vocab);
        if (!rec->state || !rec->penalties || (c->logits && !rec->logits))
                return -ENOMEM;
        rec->sampler = s->sampler;
        rec->rng = c->rng;
        rec->utf8 = c->utf8;
        /* The prompt that opened the turn rides along so "regenerate" works after a restart. */
        rec->transcript = malloc(c->prompt_len + 1);
        if (!rec->transcript)
                return -ENOMEM;
        memcpy(rec->transcript, c->prompt, c->prompt_len);
        rec->transcript_size = c->prompt_len;
        *ret = TAKE_PTR(rec);
        return 0;
}

/* ---- work items ------------------------------------------------------------------------------ */

typedef enum StoreOp {
        OP_SAVE,
        OP_CHECKPOINT_SAVE,
        OP_CHECKPOINT_TRUNCATE,
        OP_CHECKPOINT_REWIND,  /* read a turn's checkpoint back for RewindSession */
        OP_CHECKPOINT_FORK,    /* read a turn's checkpoint back for ForkSession (into new_id) */
        OP_LOAD,
        OP_DELETE,
        OP_RENAME,
        OP_EXPORT,         /* I/O thread: seal into a memfd */
        OP_EXPORT_COPY,    /* own thread: memfd -> client fd (may block on a pipe) */
        OP_IMPORT_READ,    /* own thread: client fd -> memfd, capped */
        OP_IMPORT,         /* I/O thread: open the memfd's copy and store it */
} StoreOp;

typedef struct StoreWork StoreWork;
struct StoreWork {
        StoreOp op;
        StoreWork *tprev, *tnext;        /* in manager->transfers while an export/import runs */
        bool transfer;
        Manager *manager;
        uid_t uid;
        char id[SESSION_ID_MAX + 1];
        char new_id[SESSION_ID_MAX + 1];
        uint64_t serial; /* of the session it was made for (0: none), which a rename does not change */
        uint32_t turn;
        int fd;                          /* the client's (dup'ed) */
        int tmp_fd;                      /* memfd between the I/O thread and the copy thread */
        uint64_t max_bytes;
        SessionRecord *rec;
        uint64_t seq;                    /* OP_SAVE from the main thread: Session.save_seq of this snapshot */
        Job *job;                        /* OP_SAVE after a generation: its last record waits for the result */
        SessionRecord *checkpoint;       /* OP_LOAD: the last turn's, when there is one */
        SessionMeta meta;
        StoreSessionUsage usage; /* the session's files once the op is done */
        bool have_usage;
        sd_bus_message *msg;             /* the call to answer (or re-run) when done, or NULL */
        sd_bus_message_handler_t handler;
        RwkvError err;
};

static void transfer_link(Manager *m, StoreWork *w) {
        w->transfer = true;
        w->tnext = m->transfers;
        if (m->transfers)
                m->transfers->tprev = w;
        m->transfers = w;
}

uint32_t manager_transfers(Manager *m, uid_t uid) {
        uint32_t n = 0;
        for (StoreWork *w = m->transfers; w; w = w->tnext)
                if (uid == (uid_t) -1 || w->uid == uid)
                        n++;
        return n;
}

/* The generation's last record, now that its commit is settled (r: the commit's result). */
static void job_finish(Job *j, const char *id, int r, const RwkvError *err) {
        if (r < 0 && j->error == 0) {
                j->error = r;
                snprintf(j->error_message, sizeof(j->error_message),
                         "The text was generated, but session '%s' could not be saved: %s. It is kept in RAM and "
                         "saved again at its next commit.",
                         id, error_message(err, r));
        }
        scheduler_push_last(j);
        job_free(j);
}

static StoreWork *store_work_free(StoreWork *w) {
        if (!w)
                return NULL;
        if (w->job) /* never ran: the client still gets its last record */
                job_finish(TAKE_PTR(w->job), w->id, -ECANCELED, NULL);
        if (w->transfer) {
                if (w->tprev)
                        w->tprev->tnext = w->tnext;
                else
                        w->manager->transfers = w->tnext;
                if (w->tnext)
                        w->tnext->tprev = w->tprev;
        }
        session_record_free(w->rec);
        session_record_free(w->checkpoint);
        sd_bus_message_unref(w->msg);
        safe_close(w->fd);
        safe_close(w->tmp_fd);
        free(w);
        return NULL;
}

/* Copies from -> to until EOF (or more than max bytes: -EFBIG). */
static int copy_fd(int from, int to, uint64_t max) {
        char buf[65536];
        uint64_t total = 0;

        for (;;) {
                ssize_t n = read(from, buf, sizeof(buf));
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return -errno;
                if (n == 0)
                        return 0;
                total += (uint64_t) n;
                if (total > max)
                        return -EFBIG;
                for (ssize_t off = 0; off < n;) {
                        ssize_t k = write(to, buf + off, (size_t) (n - off));
                        if (k < 0 && errno == EINTR)
                                continue;
                        if (k < 0)
                                return -errno;
                        off += k;
                }
        }
}
DEFINE_TRIVIAL_CLEANUP_FUNC(StoreWork *, store_work_free);

static int store_work_op(StoreWork *w) {
        Store *st = w->manager->store;

        switch (w->op) {
        case OP_SAVE:
                return store_save(st, w->uid, w->rec, &w->err);
        case OP_CHECKPOINT_SAVE:
                return store_checkpoint_save(st, w->uid, w->id, w->turn, w->rec, &w->err);
        case OP_CHECKPOINT_TRUNCATE: {
                int r = store_checkpoint_truncate(st, w->uid, w->id, w->turn, &w->err);
                return r == -ENOENT ? 0 : r;
        }
        case OP_CHECKPOINT_REWIND:
        case OP_CHECKPOINT_FORK:
                return store_checkpoint_load(st, w->uid, w->id, w->turn, w->manager->info->hash, &w->rec, &w->err);
        case OP_LOAD: {
                int r = store_load(st, w->uid, w->id, w->manager->info->hash, &w->rec, &w->err);
                if (r < 0)
                        return r;
                /* The last turn's checkpoint makes rewind/regenerate work after a restart. */
                if (w->rec->meta.n_turns > 0)
                        (void) store_checkpoint_load(st, w->uid, w->id, w->rec->meta.n_turns, w->manager->info->hash,
                                                     &w->checkpoint, NULL);
                return 0;
        }
        case OP_DELETE: {
                int r = store_delete(st, w->uid, w->id, &w->err);
                return r == -ENOENT ? 0 : r;
        }
        case OP_RENAME: {
                int r = store_rename(st, w->uid, w->id, w->new_id, &w->err);
                return r == -ENOENT ? 0 : r; /* never committed: nothing to move */
        }
        case OP_EXPORT: {
                w->tmp_fd = memfd_create("rwkvd-export", MFD_CLOEXEC);
                if (w->tmp_fd < 0)
                        return -errno;
                int r = w->rec ? store_export_record(st, w->uid, w->rec, w->tmp_fd, &w->err)
                               : store_export(st, w->uid, w->id, w->tmp_fd, &w->err);
                if (r < 0)
                        return r;
                return lseek(w->tmp_fd, 0, SEEK_SET) < 0 ? -errno : 0;
        }
        case OP_EXPORT_COPY:
                return copy_fd(w->tmp_fd, w->fd, UINT64_MAX);
        case OP_IMPORT_READ: {
                w->tmp_fd = memfd_create("rwkvd-import", MFD_CLOEXEC);
                if (w->tmp_fd < 0)
                        return -errno;
                int r = copy_fd(w->fd, w->tmp_fd, w->max_bytes);
                if (r < 0)
                        return r;
                return lseek(w->tmp_fd, 0, SEEK_SET) < 0 ? -errno : 0;
        }
        case OP_IMPORT: {
                int r = store_import(st, w->uid, w->tmp_fd, isempty_str(w->new_id) ? NULL : w->new_id, w->id, &w->err);
                if (r < 0)
                        return r;
                return store_stat(st, w->uid, w->id, &w->meta, &w->err);
        }
        }
        return -EINVAL;
}

static int store_work_run(void *userdata) {
        StoreWork *w = userdata;
        int r = store_work_op(w);

        /* GetSession's disk_bytes and checkpoints follow every change of the session's files, as
         * measured here, in queue order (so the last one applied is the newest). */
        switch (w->op) {
        case OP_SAVE:
        case OP_CHECKPOINT_SAVE:
        case OP_CHECKPOINT_TRUNCATE:
        case OP_CHECKPOINT_REWIND: /* a checkpoint that failed its checks was moved aside */
        case OP_CHECKPOINT_FORK:
        case OP_LOAD:
        case OP_IMPORT:
                w->have_usage = store_session_usage(w->manager->store, w->uid, w->id, &w->usage) >= 0;
                break;
        case OP_RENAME:
                w->have_usage = r >= 0 && store_session_usage(w->manager->store, w->uid, w->new_id, &w->usage) >= 0;
                break;
        default:
                break;
        }
        return r;
}

static void session_apply_meta(Session *s, const SessionMeta *meta) {
        s->tokens = meta->n_tokens;
        s->turns = meta->n_turns;
        s->created_usec = meta->created_usec;
        s->updated_usec = meta->updated_usec;
        if (meta->title[0]) {
                free(s->title);
                s->title = strdup(meta->title);
        }
}

static void session_apply_usage(Session *s, const StoreSessionUsage *u) {
        s->disk_bytes = u->file_bytes + u->checkpoint_bytes;
        s->disk_checkpoints = u->checkpoints;
}

uint32_t manager_session_checkpoints(Manager *m, const Session *s) {
        return m->store && !s->throwaway ? s->disk_checkpoints : s->n_checkpoints;
}

/* A cold session whose file the store found corrupt (and moved aside): it leaves the table, and
 * its id stays reserved until its owner deletes it, so that the next use is Corrupt again instead
 * of a fresh session silently taking its place. */
static void session_forget_corrupt(Manager *m, Session *s, const RwkvError *err) {
        if (manager_foreign_add_bad(m, s->owner, s->id, -EBADMSG, error_message(err, -EBADMSG)) < 0)
                log_oom();
        session_table_remove(&m->sessions, s);
        session_free(s);
}

/* ForkSession at a turn read back from disk: the copy starts at that turn (no checkpoints of its
 * own in RAM). Its id was checked when the call came; it is checked again now. */
static int fork_from_checkpoint(Manager *m, StoreWork *w, Session *s, int r) {
        _cleanup_(session_freep) Session *n = NULL;
        SessionRecord *rec = w->rec;

        if (r == -ENOENT)
                return sd_bus_reply_method_errorf(w->msg, RWKV_ERROR_INVALID_ARGUMENT,
                                                  "Turn %" PRIu32 " of session '%s' has no checkpoint any more.", w->turn, w->id);
        if (r < 0)
                return reply_store_error(w->msg, r, "Reading the checkpoint failed", w->err.msg);
        if (!s || w->turn > s->turns || rec->meta.state_floats != m->info->state_floats || rec->meta.n_vocab != m->info->n_vocab)
                return sd_bus_reply_method_errorf(w->msg, RWKV_ERROR_SESSION_BUSY,
                                                  "Session '%s' changed while its checkpoint was read; try again.", w->id);
        if (session_table_find(&m->sessions, w->uid, w->new_id))
                return sd_bus_reply_method_errorf(w->msg, RWKV_ERROR_SESSION_EXISTS, "Session '%s' already exists.", w->new_id);
        if (session_table_count_uid(&m->sessions, w->uid) >= m->config.limits.max_sessions_per_user)
                return sd_bus_reply_method_errorf(w->msg, RWKV_ERROR_QUOTA_EXCEEDED,
                                                  "Session limit reached: max_sessions_per_user is %" PRIu32 ".",
                                                  m->config.limits.max_sessions_per_user);
        r = session_new(w->new_id, w->uid, rec->state, s->state_floats, s->n_vocab, &n);
        if (r < 0)
                return sd_bus_reply_method_errno(w->msg, r, NULL);
        n->has_logits = rec->logits != NULL;
        if (rec->logits)
                memcpy(n->logits, rec->logits, s->n_vocab * sizeof(float));
        if (rec->penalties)
                memcpy(n->penalties, rec->penalties, s->n_vocab * sizeof(float));
        n->tokens = rec->meta.n_tokens;
        n->rng = rec->rng;
        n->utf8 = rec->utf8;
        n->turns = w->turn - 1;
        n->sampler = s->sampler;
        if (s->title) {
                n->title = strdup(s->title);
                if (!n->title)
                        return sd_bus_reply_method_errno(w->msg, -ENOMEM, NULL);
        }
        Session *added = TAKE_PTR(n);
        session_table_add(&m->sessions, added);
        (void) manager_session_commit(m, added);
        return sd_bus_reply_method_return(w->msg, "s", added->id);
}

static void store_work_done(int r, void *userdata) {
        _cleanup_(store_work_freep) StoreWork *w = userdata;
        Manager *m = w->manager;
        Session *s = w->serial ? session_table_find_serial(&m->sessions, w->serial)
                               : session_table_find(&m->sessions, w->uid, w->id);

        if (s && w->have_usage)
                session_apply_usage(s, &w->usage);
        if ((w->op == OP_CHECKPOINT_REWIND || w->op == OP_CHECKPOINT_FORK) && r == -EBADMSG)
                log_warning("Checkpoint of session '%s' of uid %u, turn %u: %s", w->id, (unsigned)w->uid, w->turn,
                            error_message(&w->err, r));
        switch (w->op) {
        case OP_SAVE:
                if (r < 0) {
                        log_error("Failed to save session '%s' of uid %u: %s", w->id, (unsigned) w->uid,
                                  error_message(&w->err, r));
                        /* Try again at the next commit point or at shutdown; a newer snapshot in
                         * the queue decides for itself, and a progress save (seq 0) is followed by
                         * its job's own commit. */
                        if (s && w->seq != 0 && w->seq == s->save_seq)
                                s->dirty = true;
                } else if (s) {
                        s->on_disk = true;
                        manager_evict(m);
                }
                if (w->job)
                        job_finish(TAKE_PTR(w->job), w->id, r, &w->err);
                break;
        case OP_CHECKPOINT_SAVE:
        case OP_CHECKPOINT_TRUNCATE:
                if (r < 0)
                        log_warning("Checkpoint of session '%s' turn %u: %s", w->id, w->turn, error_message(&w->err, r));
                break;
        case OP_CHECKPOINT_REWIND: {
                SessionRecord *rec = w->rec;
                if (r == -ENOENT)
                        r = sd_bus_reply_method_errorf(w->msg, RWKV_ERROR_INVALID_ARGUMENT,
                                                       "Turn %" PRIu32 " of session '%s' has no checkpoint any more.", w->turn, w->id);
                else if (r < 0)
                        r = reply_store_error(w->msg, r, "Reading the checkpoint failed", w->err.msg);
                else if (!s || s->busy || !s->hot || w->turn > s->turns || rec->meta.state_floats != s->state_floats ||
                         rec->meta.n_vocab != s->n_vocab)
                        r = sd_bus_reply_method_errorf(w->msg, RWKV_ERROR_SESSION_BUSY,
                                                       "Session '%s' changed while its checkpoint was read; try again.", w->id);
                else {
                        r = session_rewind_to(s, w->turn, TAKE_PTR(rec->state), TAKE_PTR(rec->logits),
                                              TAKE_PTR(rec->penalties), rec->meta.n_tokens, rec->rng);
                        if (r >= 0)
                                s->utf8 = rec->utf8;
                        if (r >= 0) {
                                (void) manager_session_commit(m, s);
                                (void) manager_checkpoint_truncate(m, s, w->turn - 1);
                                r = sd_bus_reply_method_return(w->msg, NULL);
                        } else
                                r = sd_bus_reply_method_errno(w->msg, r, NULL);
                }
                break;
        }
        case OP_CHECKPOINT_FORK:
                r = fork_from_checkpoint(m, w, s, r);
                break;
        case OP_LOAD:
                if (s)
                        s->loading = false;
                if (r < 0) {
                        log_warning("Failed to load session '%s' of uid %u: %s", w->id, (unsigned) w->uid,
                                    error_message(&w->err, r));
                        if (s && r == -EBADMSG)
                                session_forget_corrupt(m, s, &w->err);
                        if (w->msg)
                                (void) reply_store_error(w->msg, r, "Loading the session failed", w->err.msg);
                        break;
                }
                if (!s) {
                        if (w->msg)
                                (void) reply_store_error(w->msg, -ENOENT, "The session was deleted", NULL);
                        break;
                }
                if (!s->hot) {
                        SessionRecord *rec = w->rec;
                        if (rec->meta.state_floats != s->state_floats || rec->meta.n_vocab != s->n_vocab) {
                                if (w->msg)
                                        (void) reply_store_error(w->msg, -EMEDIUMTYPE, "Loading the session failed",
                                                                 "its state does not fit the model");
                                break;
                        }
                        r = session_warm(s, TAKE_PTR(rec->state), TAKE_PTR(rec->logits), TAKE_PTR(rec->penalties));
                        if (r < 0) {
                                if (w->msg)
                                        (void) sd_bus_reply_method_errno(w->msg, r, NULL);
                                break;
                        }
                        session_apply_meta(s, &rec->meta);
                        s->sampler = rec->sampler;
                        s->rng = rec->rng;
                        s->utf8 = rec->utf8;
                        SessionRecord *c = w->checkpoint;
                        if (c && c->meta.state_floats == s->state_floats && c->meta.n_vocab == s->n_vocab &&
                            c->state && c->meta.turn == s->turns) {
                                char *prompt = malloc(c->transcript_size + 1);
                                if (prompt) {
                                        if (c->transcript_size > 0)
                                                memcpy(prompt, c->transcript, c->transcript_size);
                                        prompt[c->transcript_size] = 0;
                                        (void) session_adopt_checkpoint(s, TAKE_PTR(c->state), TAKE_PTR(c->logits),
                                                                        TAKE_PTR(c->penalties), c->meta.n_tokens, c->rng, c->utf8,
                                                                        prompt, c->transcript_size);
                                }
                        }
                        s->dirty = false;
                        s->on_disk = true;
                        log_debug("Loaded session '%s' of uid %u.", s->id, (unsigned) s->owner);
                }
                if (w->msg) {
                        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
                        /* Run the method again, now that the session is hot. */
                        m->redispatch = true;
                        r = sd_bus_message_rewind(w->msg, true);
                        if (r >= 0)
                                r = w->handler(w->msg, m, &error);
                        m->redispatch = false;
                        if (r < 0 || sd_bus_error_is_set(&error))
                                (void) sd_bus_reply_method_errno(w->msg, r, &error);
                }
                manager_evict(m);
                break;
        case OP_EXPORT:
                if (r >= 0) {
                        /* The sealed copy is in memory; a slow or stuck reader only holds its own thread. */
                        w->op = OP_EXPORT_COPY;
                        r = worker_spawn(m->worker, store_work_run, store_work_done, w);
                        if (r >= 0) {
                                TAKE_PTR(w);
                                break;
                        }
                }
                if (s && !s->hot && r == -EBADMSG) /* read from its file, which the store moved aside */
                        session_forget_corrupt(m, s, &w->err);
                if (w->msg)
                        (void) reply_store_error(w->msg, r, "Exporting the session failed", w->err.msg);
                break;
        case OP_IMPORT_READ:
                if (r >= 0) {
                        w->op = OP_IMPORT;
                        r = worker_submit(m->worker, store_work_run, store_work_done, w);
                        if (r >= 0) {
                                TAKE_PTR(w);
                                break;
                        }
                }
                if (w->msg && r == -EFBIG)
                        (void) sd_bus_reply_method_errorf(w->msg, RWKV_ERROR_INVALID_ARGUMENT,
                                                          "Importing the session failed: larger than any session of this model.");
                else if (w->msg)
                        (void) sd_bus_reply_method_errorf(w->msg, RWKV_ERROR_IO, "Importing the session failed: reading the file: %s",
                                                          strerror(-r));
                break;
        case OP_DELETE:
        case OP_RENAME:
        case OP_EXPORT_COPY:
                if (r < 0 && w->msg)
                        (void) reply_store_error(w->msg, r, w->op == OP_DELETE   ? "Deleting the session failed"
                                                            : w->op == OP_RENAME ? "Renaming the session failed"
                                                                                 : "Exporting the session failed",
                                                 w->op == OP_EXPORT_COPY ? strerror(-r) : w->err.msg);
                else if (w->msg)
                        (void) sd_bus_reply_method_return(w->msg, NULL);
                /* the files kept the old name: so does the session, unless it has been renamed again
                 * since (that rename then finds no files under its old name and moves nothing) */
                if (r < 0 && w->op == OP_RENAME && s && strcmp(s->id, w->new_id) == 0)
                        snprintf(s->id, sizeof(s->id), "%s", w->id);
                break;
        case OP_IMPORT: {
                if (r < 0) {
                        if (w->msg)
                                (void) reply_store_error(w->msg, r, "Importing the session failed", w->err.msg);
                        break;
                }
                Session *n = NULL;
                /* The store refuses an id whose corrupt copy is still kept; a reservation left here is
                 * one whose kept file was removed by hand, and the id is free again. */
                manager_foreign_remove(m, w->uid, w->id);
                if (memcmp(w->meta.model_hash, m->info->hash, 32) != 0) {
                        /* Stored as it came; using it is ModelMismatch, and its id stays taken. */
                        (void) manager_foreign_add(m, w->uid, w->id, w->meta.model_hash);
                        if (w->msg)
                                (void) sd_bus_reply_method_return(w->msg, "s", w->id);
                        break;
                }
                if (!session_table_find(&m->sessions, w->uid, w->id) &&
                    session_new_cold(w->id, w->uid, m->info->state_floats, m->info->n_vocab, &n) >= 0) {
                        session_apply_meta(n, &w->meta);
                        session_apply_usage(n, &w->usage);
                        session_table_add(&m->sessions, n);
                }
                if (w->msg)
                        (void) sd_bus_reply_method_return(w->msg, "s", w->id);
                break;
        }
        }
        manager_check_exit(m);
}

static int submit(Manager *m, StoreWork *w) {
        int r = worker_submit(m->worker, store_work_run, store_work_done, w);
        if (r < 0)
                store_work_free(w);
        return r;
}

static StoreWork *work_new(Manager *m, StoreOp op, uid_t uid, const char *id, sd_bus_message *msg) {
        StoreWork *w = calloc(1, sizeof(*w));
        if (!w)
                return NULL;
        w->op = op;
        w->manager = m;
        w->uid = uid;
        w->fd = w->tmp_fd = -EBADF;
        if (id)
                snprintf(w->id, sizeof(w->id), "%s", id);
        w->msg = sd_bus_message_ref(msg);
        return w;
}

/* Work on behalf of a session: found again when it is done by its serial, not its id, so that a
 * RenameSession queued behind it (the id changes at once, the files when the queue gets there)
 * does not hide the session from, say, its failed save, which must mark it dirty. */
static StoreWork *work_for(Manager *m, StoreOp op, const Session *s, sd_bus_message *msg) {
        StoreWork *w = work_new(m, op, s->owner, s->id, msg);
        if (w)
                w->serial = s->serial;
        return w;
}

/* ---- the API used by the bus handlers ---------------------------------------------------------- */

int manager_session_commit_job(Manager *m, Session *s, Job *job) {
        StoreWork *w;
        int r;

        if (!m->store || s->throwaway || !s->hot || s->busy)
                return 0;
        w = work_for(m, OP_SAVE, s, NULL);
        if (!w)
                return -ENOMEM;
        r = session_snapshot(m, s, &w->rec);
        if (r < 0) {
                store_work_free(w);
                return r;
        }
        w->seq = ++s->save_seq;
        if (job) {
                /* The job waits for the result: its stream, not its session (released already, and
                 * it may be deleted meanwhile). */
                job->session_tokens = s->tokens;
                job->session = NULL;
                job->track = sd_bus_track_unref(job->track);
                job->wakeup_source = sd_event_source_disable_unref(job->wakeup_source);
                w->job = job;
        }
        r = worker_submit(m->worker, store_work_run, store_work_done, w);
        if (r < 0) {
                w->job = NULL; /* the caller finishes it with this error */
                store_work_free(w);
                return r;
        }
        s->dirty = false;
        return job ? 1 : 0;
}

int manager_session_commit(Manager *m, Session *s) {
        return manager_session_commit_job(m, s, NULL);
}

void manager_job_progress(Job *job, void *userdata) {
        Manager *m = userdata;
        Session *s = job->session;
        StoreWork *w;

        /* Runs on the compute thread, which owns the session now: the snapshot is consistent. */
        if (!m->store || s->throwaway)
                return;
        w = work_for(m, OP_SAVE, s, NULL);
        if (!w)
                return;
        if (session_snapshot(m, s, &w->rec) < 0) {
                store_work_free(w);
                return;
        }
        w->rec->meta.updated_usec = now_realtime_usec();
        (void) submit(m, w);
}

int manager_checkpoint_commit(Manager *m, Session *s, uint32_t turn) {
        const Checkpoint *c = session_checkpoint(s, turn);
        StoreWork *w;
        int r;

        if (!m->store || s->throwaway || !c)
                return 0;
        w = work_for(m, OP_CHECKPOINT_SAVE, s, NULL);
        if (!w)
                return -ENOMEM;
        w->turn = turn;
        r = checkpoint_snapshot(m, s, c, turn, &w->rec);
        if (r < 0) {
                store_work_free(w);
                return r;
        }
        return submit(m, w);
}

int manager_checkpoint_truncate(Manager *m, Session *s, uint32_t after_turn) {
        if (!m->store || s->throwaway)
                return 0;
        StoreWork *w = work_for(m, OP_CHECKPOINT_TRUNCATE, s, NULL);
        if (!w)
                return -ENOMEM;
        w->turn = after_turn;
        return submit(m, w);
}

int manager_session_ensure_hot(Manager *m, Session *s, sd_bus_message *msg, sd_bus_message_handler_t handler,
                               sd_bus_error *error) {
        StoreWork *w;
        int r;

        if (s->hot) {
                s->used_usec = now_monotonic_usec();
                return 1;
        }
        if (!m->store || m->redispatch)
                return sd_bus_error_setf(error, RWKV_ERROR_IO, "Session '%s' could not be loaded.", s->id);
        w = work_for(m, OP_LOAD, s, msg);
        if (!w)
                return -ENOMEM;
        w->handler = handler;
        r = submit(m, w);
        if (r < 0)
                return r;
        s->loading = true;
        return 0;
}

int manager_session_rewind_from_disk(Manager *m, Session *s, uint32_t turn, sd_bus_message *msg) {
        if (!m->store)
                return -ENOENT;
        StoreWork *w = work_for(m, OP_CHECKPOINT_REWIND, s, msg);
        if (!w)
                return -ENOMEM;
        w->turn = turn;
        return submit(m, w);
}

int manager_session_fork_from_disk(Manager *m, Session *s, uint32_t turn, const char *new_id, sd_bus_message *msg) {
        if (!m->store)
                return -ENOENT;
        StoreWork *w = work_for(m, OP_CHECKPOINT_FORK, s, msg);
        if (!w)
                return -ENOMEM;
        w->turn = turn;
        snprintf(w->new_id, sizeof(w->new_id), "%s", new_id);
        return submit(m, w);
}

int manager_session_delete(Manager *m, Session *s, sd_bus_message *msg) {
        StoreWork *w = work_for(m, OP_DELETE, s, msg);
        if (!w)
                return -ENOMEM;
        session_table_remove(&m->sessions, s);
        session_free(s);
        if (!m->store) {
                store_work_free(w);
                return sd_bus_reply_method_return(msg, NULL);
        }
        return submit(m, w);
}

int manager_session_rename(Manager *m, Session *s, const char *new_id, sd_bus_message *msg) {
        StoreWork *w = work_for(m, OP_RENAME, s, msg);
        if (!w)
                return -ENOMEM;
        snprintf(w->new_id, sizeof(w->new_id), "%s", new_id);
        snprintf(s->id, sizeof(s->id), "%s", new_id);
        s->updated_usec = now_realtime_usec();
        if (!m->store) {
                store_work_free(w);
                return sd_bus_reply_method_return(msg, NULL);
        }
        return submit(m, w);
}

int manager_session_export(Manager *m, Session *s, int fd, sd_bus_message *msg) {
        int r;

        if (!m->store)
                return -EOPNOTSUPP;
        /* A hot session is exported as RAM holds it, whether or not its commit lands: after a
         * failed commit (a full disk) the file is older than the session, and the export is how
         * its owner can still take it away. The commit is still tried first (the queue keeps
         * order, so when the export returns, a commit that worked is on disk). A cold session is
         * its file. */
        if (s->hot && (s->dirty || !s->on_disk)) {
                r = manager_session_commit(m, s);
                if (r < 0)
                        return r;
        }
        StoreWork *w = work_for(m, OP_EXPORT, s, msg);
        if (!w)
                return -ENOMEM;
        transfer_link(m, w);
        if (s->hot) {
                r = session_snapshot(m, s, &w->rec);
                if (r < 0) {
                        store_work_free(w);
                        return r;
                }
        }
        w->fd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
        if (w->fd < 0) {
                r = -errno;
                store_work_free(w);
                return r;
        }
        return submit(m, w);
}

int manager_session_import(Manager *m, uid_t uid, int fd, const char *new_id, sd_bus_message *msg) {
        int r;

        if (!m->store)
                return -EOPNOTSUPP;
        StoreWork *w = work_new(m, OP_IMPORT_READ, uid, NULL, msg);
        if (!w)
                return -ENOMEM;
        transfer_link(m, w);
        snprintf(w->new_id, sizeof(w->new_id), "%s", new_id ? new_id : "");
        /* A sealed session is at most its raw floats (state, logits, penalties) plus a transcript
         * and headers; anything larger is refused before it fills memory. */
        w->max_bytes = (uint64_t) (m->info->state_floats + 2 * (uint64_t) m->info->n_vocab) * sizeof(float) * 2 +
                       STORE_TRANSCRIPT_MAX + (1u << 20);
        w->fd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
        if (w->fd < 0) {
                r = -errno;
                store_work_free(w);
                return r;
        }
        r = worker_spawn(m->worker, store_work_run, store_work_done, w);
        if (r < 0)
                store_work_free(w);
        return r;
}

static uint64_t session_ram_bytes(const Session *s) {
        if (!s->hot)
                return 0;
        return (uint64_t) (s->state_floats + 2 * s->n_vocab) * sizeof(float) * (1 + s->n_checkpoints);
}

const ForeignSession *manager_foreign_find(Manager *m, uid_t uid, const char *id) {
        for (size_t i = 0; i < m->n_foreign; i++)
                if (m->foreign[i].uid == uid && strcmp(m->foreign[i].id, id) == 0)
                        return &m->foreign[i];
        return NULL;
}

/* A new entry for (uid, id) in *ret; 0 with *ret NULL when the id is reserved already. */
static int foreign_append(Manager *m, uid_t uid, const char *id, int error, ForeignSession **ret) {
        *ret = NULL;
        if (manager_foreign_find(m, uid, id))
                return 0;
        ForeignSession *n = realloc(m->foreign, (m->n_foreign + 1) * sizeof(ForeignSession));
        if (!n)
                return -ENOMEM;
        m->foreign = n;
        n = &m->foreign[m->n_foreign++];
        *n = (ForeignSession){ .uid = uid, .error = error };
        snprintf(n->id, sizeof(n->id), "%s", id);
        *ret = n;
        return 0;
}

int manager_foreign_add(Manager *m, uid_t uid, const char *id, const uint8_t model_hash[32]) {
        ForeignSession *n;
        int r = foreign_append(m, uid, id, -EMEDIUMTYPE, &n);
        if (r >= 0 && n)
                memcpy(n->model_hash, model_hash, sizeof(n->model_hash));
        return r;
}

int manager_foreign_add_bad(Manager *m, uid_t uid, const char *id, int error, const char *message) {
        ForeignSession *n;
        int r = foreign_append(m, uid, id, error, &n);
        if (r >= 0 && n)
                snprintf(n->message, sizeof(n->message), "%s", message);
        return r;
}

void manager_foreign_remove(Manager *m, uid_t uid, const char *id) {
        const ForeignSession *f = manager_foreign_find(m, uid, id);
        if (!f)
                return;
        size_t i = (size_t) (f - m->foreign);
        m->foreign[i] = m->foreign[--m->n_foreign];
}

int manager_foreign_error(Manager *m, const ForeignSession *f, sd_bus_error *error) {
        if (f->error == -EBADMSG)
                return sd_bus_error_setf(error, RWKV_ERROR_CORRUPT,
                                         "Stored session '%s' cannot be used: %s. The file is kept for inspection; "
                                         "delete the session to reuse its id.",
                                         f->id, f->message);
        if (f->error != -EMEDIUMTYPE)
                return manager_store_error(error, f->error, "Stored session cannot be read", f->message);
        char hex[17];
        for (size_t i = 0; i < 8; i++)
                snprintf(hex + 2 * i, 3, "%02x", f->model_hash[i]);
        return sd_bus_error_setf(error, RWKV_ERROR_MODEL_MISMATCH,
                                 "Session '%s' was made with another model (hash %s...); this daemon serves %s "
                                 "(hash %.16s...). Use that model, or delete the session to reuse its id.",
                                 f->id, hex, m->info->name, m->info->hash_hex);
}

int manager_foreign_delete(Manager *m, const ForeignSession *f, sd_bus_message *msg) {
        StoreWork *w = work_new(m, OP_DELETE, f->uid, f->id, msg);
        if (!w)
                return -ENOMEM;
        manager_foreign_remove(m, f->uid, f->id);
        if (!m->store) {
                store_work_free(w);
                return sd_bus_reply_method_return(msg, NULL);
        }
        return submit(m, w);
}

uint64_t manager_hot_bytes(Manager *m) {
        uint64_t sum = 0;
        for (Session *s = m->sessions.head; s; s = s->next)
                sum += session_ram_bytes(s);
        return sum;
}

void manager_evict(Manager *m) {
        uint64_t hot = manager_hot_bytes(m);

        /* Least recently used first; only sessions whose RAM copy is committed may go. */
        while (hot > m->config.hot_budget_bytes) {
                Session *victim = NULL;
                for (Session *s = m->sessions.head; s; s = s->next)
                        if (s->hot && !s->busy && !s->dirty && !s->loading && s->on_disk && !s->throwaway &&
                            (!victim || s->used_usec < victim->used_usec))
                                victim = s;
                if (!victim)
                        return;
                hot -= session_ram_bytes(victim);
                log_debug("Evicting session '%s' of uid %u from RAM.", victim->id, (unsigned) victim->owner);
                session_cool(victim);
        }
}

void manager_commit_all(Manager *m) {
        for (Session *s = m->sessions.head; s; s = s->next)
                if (s->dirty && s->hot && !s->busy)
                        (void) manager_session_commit(m, s);
}

unsigned manager_log_unsaved(Manager *m) {
        unsigned n = 0;
        if (!m->store)
                return 0;
        for (Session *s = m->sessions.head; s; s = s->next)
                if (s->hot && !s->throwaway && (s->dirty || s->busy)) {
                        log_error("Session '%s' of uid %u could not be saved: its changes since the last commit "
                                  "are lost.", s->id, (unsigned) s->owner);
                        n++;
                }
        return n;
}

void manager_check_exit(Manager *m) {
        if (m->shutting_down && !m->jobs && worker_pending(m->worker) == 0)
                (void) sd_event_exit(m->event, 0);
}

/* Startup (before READY=1, so blocking is fine): open the store and list every uid's sessions. */
int manager_store_open(Manager *m) {
        StoreOptions so = { .state_precision = (StorePrecision) m->config.state_precision };
        RwkvError err = {};
        int r;

        r = store_open(m->config.state_dir, &so, &m->store, &err);
        if (r < 0)
                return log_error_errno(r, "Failed to open the session store \"%s\": %s", m->config.state_dir,
                                       error_message(&err, r));
        _cleanup_(closedirp_local) DIR *d = opendir(m->config.state_dir);
        if (!d)
                return log_error_errno(errno, "Failed to list \"%s\": %m", m->config.state_dir);
        struct dirent *de;
        unsigned n_total = 0, n_unusable = 0;
        while ((de = readdir(d))) {
                char *end;
                errno = 0;
                unsigned long uid = strtoul(de->d_name, &end, 10);
                if (errno || *end || end == de->d_name || uid >= UINT32_MAX)
                        continue;
                _cleanup_(freep) SessionMeta *v = NULL;
                _cleanup_(freep) StoreBadFile *bad = NULL;
                size_t n = 0, n_bad = 0;
                r = store_list(m->store, (uid_t)uid, &v, &n, &bad, &n_bad, &err);
                if (r < 0) {
                        log_warning("Cannot list the sessions of uid %lu: %s", uid, error_message(&err, r));
                        continue;
                }
                for (size_t i = 0; i < n_bad; i++) {
                        /* Kept out of service, never silently replaced: every use names the file. */
                        log_warning("Session store %s/%lu: %s; the id stays reserved until the session is deleted.",
                                    m->config.state_dir, uid, bad[i].message);
                        if (manager_foreign_add_bad(m, (uid_t)uid, bad[i].id, bad[i].error, bad[i].message) < 0)
                                return log_oom();
                        n_unusable++;
                }
                for (size_t i = 0; i < n; i++) {
                        Session *s = NULL;
                        if (memcmp(v[i].model_hash, m->info->hash, 32) != 0) {
                                /* another model's: left alone on disk, its id reserved */
                                if (manager_foreign_add(m, (uid_t) uid, v[i].id, v[i].model_hash) < 0)
                                        return log_oom();
                                continue;
                        }
                        if (session_table_find(&m->sessions, (uid_t) uid, v[i].id))
                                continue;
                        r = session_new_cold(v[i].id, (uid_t) uid, m->info->state_floats, m->info->n_vocab, &s);
                        if (r < 0)
                                return log_oom();
                        session_apply_meta(s, &v[i]);
                        StoreSessionUsage u;
                        if (store_session_usage(m->store, (uid_t)uid, v[i].id, &u) >= 0)
                                session_apply_usage(s, &u);
                        session_table_add(&m->sessions, s);
                        n_total++;
                }
        }
        if (n_unusable > 0)
                log_warning("Session store %s: %u sessions on disk, %u unusable (see above).", m->config.state_dir,
                            n_total, n_unusable);
        else
                log_info("Session store %s: %u sessions on disk.", m->config.state_dir, n_total);
        return 0;
}
