/* manager.h: the daemon's context object: bus, event loop, model, sessions, jobs and limits.
 * Everything here lives on the main thread (the compute thread sees only the jobs it is given). */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#include "daemon/config.h"
#include "daemon/job.h"
#include "daemon/scheduler.h"
#include "daemon/session.h"
#include "daemon/store.h"
#include "daemon/worker.h"
#include "engine/arch/model.h"

typedef enum BusMode {
        BUS_MODE_SYSTEM,
        BUS_MODE_USER,
        BUS_MODE_ADDRESS,
} BusMode;

struct Manager {
        Config config;
        BusMode bus_mode;
        char *bus_address;

        sd_event *event;
        sd_bus *bus;
        sd_bus_slot *vtable_slot;

        Model *model;
        const ModelInfo *info;
        float *fresh_state;
        SamplerParams sampling;     /* Generate's defaults: by tokenizer, then [sampling] */

        Scheduler *scheduler;
        Worker *worker;             /* the I/O thread: every store call */
        Store *store;
        bool redispatch;            /* re-running a method after its session was loaded */
        struct StoreWork *transfers; /* exports/imports in progress (each may hold a thread) */
        SessionTable sessions;
        struct ForeignSession *foreign; /* on disk, made with another model: ids that must not be shadowed */
        size_t n_foreign;
        Job *jobs;                  /* every live job (submitted, not yet completed) */
        uint32_t n_jobs;
        uint64_t next_job_id;

        bool shutting_down;
        bool bus_lost;              /* the bus went away: shut down as on SIGTERM, exit status 1 */
        uint64_t start_usec;
};

int manager_new(Manager **ret);
Manager *manager_free(Manager *m);
DEFINE_TRIVIAL_CLEANUP_FUNC(Manager *, manager_free);

/* Map the model, start the compute thread, connect and take the bus name. */
int manager_startup(Manager *m);
/* Runs until SIGTERM/SIGINT, then drains running generations; returns 0 or negative errno. */
int manager_run(Manager *m);
/* What SIGTERM does: refuse new work, cancel running generations, commit, exit when done. */
void manager_shutdown(Manager *m);

/* manager-store.c */
int manager_store_open(Manager *m);
int manager_store_error(sd_bus_error *error, int r, const char *what, const char *msg);
int manager_session_commit(Manager *m, Session *s);
/* The commit at the end of job's generation: 1 when it was queued and job rides along (its end or
 * error record is pushed, and the job freed, once the commit is settled: a commit that fails turns
 * it into an error record); 0 when there was nothing to commit and <0 on error (the caller still
 * owns job). */
int manager_session_commit_job(Manager *m, Session *s, Job *job);
int manager_checkpoint_commit(Manager *m, Session *s, uint32_t turn);
int manager_checkpoint_truncate(Manager *m, Session *s, uint32_t after_turn);
/* 1: the session is hot; 0: a load started and handler will run again on msg; <0: error. */
int manager_session_ensure_hot(Manager *m, Session *s, sd_bus_message *msg, sd_bus_message_handler_t handler,
                               sd_bus_error *error);
/* These answer msg themselves once the disk work is done. */
int manager_session_delete(Manager *m, Session *s, sd_bus_message *msg);
/* RewindSession to a turn whose checkpoint is on disk only. */
int manager_session_rewind_from_disk(Manager *m, Session *s, uint32_t turn, sd_bus_message *msg);
/* ForkSession at a turn whose checkpoint is on disk only, into new_id (already checked). */
int manager_session_fork_from_disk(Manager *m, Session *s, uint32_t turn, const char *new_id, sd_bus_message *msg);
int manager_session_rename(Manager *m, Session *s, const char *new_id, sd_bus_message *msg);
int manager_session_export(Manager *m, Session *s, int fd, sd_bus_message *msg);
int manager_session_import(Manager *m, uid_t uid, int fd, const char *new_id, sd_bus_message *msg);
/* Compute thread: commit a snapshot of a running job's session. */
void manager_job_progress(Job *job, void *userdata);
/* Exports and imports in progress: of uid, or of everyone for UID_INVALID. */
uint32_t manager_transfers(Manager *m, uid_t uid);
uint64_t manager_hot_bytes(Manager *m);
/* Sessions on disk this daemon cannot use: another model made them, or their file failed its
 * checks (moved aside) or cannot be read. They keep their ids, so that no new session silently
 * takes the place of one that is still on disk; every use is an error until DeleteSession. */
typedef struct ForeignSession {
        uid_t uid;
        char id[SESSION_ID_MAX + 1];
        int error;              /* -EMEDIUMTYPE: another model's; -EBADMSG: corrupt; else unreadable */
        uint8_t model_hash[32]; /* -EMEDIUMTYPE: the model that made it */
        char message[512];      /* else: what the store said (the reason, where the file went) */
} ForeignSession;
const ForeignSession *manager_foreign_find(Manager *m, uid_t uid, const char *id);
int manager_foreign_add(Manager *m, uid_t uid, const char *id, const uint8_t model_hash[32]);
/* A session whose file failed its checks (error -EBADMSG) or cannot be read (other errors). */
int manager_foreign_add_bad(Manager *m, uid_t uid, const char *id, int error, const char *message);
void manager_foreign_remove(Manager *m, uid_t uid, const char *id);
/* Sets org.rwkvd.Error.ModelMismatch naming both models, org.rwkvd.Error.Corrupt naming the file
 * kept aside, or the error of an unreadable file. */
int manager_foreign_error(Manager *m, const ForeignSession *f, sd_bus_error *error);
/* GetSession's "checkpoints": the turn checkpoints on disk (in RAM for a session never stored). */
uint32_t manager_session_checkpoints(Manager *m, const Session *s);
/* DeleteSession of a foreign session: its files go, answered on msg. */
int manager_foreign_delete(Manager *m, const ForeignSession *f, sd_bus_message *msg);
void manager_evict(Manager *m);
void manager_commit_all(Manager *m);
/* At exit: logs each session whose latest state is not on disk; returns how many. */
unsigned manager_log_unsaved(Manager *m);
void manager_check_exit(Manager *m);

/* manager-bus.c */
int manager_bus_setup(Manager *m);
void manager_job_done(Job *job, void *userdata);
uint32_t manager_jobs_of_uid(Manager *m, uid_t uid);
