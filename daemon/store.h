/* store.h: the persistent session store — one zstd-compressed, libsodium-encrypted file per session.
 *
 * CONTRACT used by the daemon's I/O worker threads. Every call is synchronous and thread-safe: calls
 * for different sessions may run concurrently on any threads; calls for the same session must be
 * serialized by the caller (the store never corrupts a file either way: the last rename wins).
 *
 * Layout under the state directory (format: protocol/session-format.md):
 *   <dir>/daemon.key                      32 random bytes, 0600, created at first start
 *   <dir>/<uid>/                          0700, one folder per owner uid
 *   <dir>/<uid>/<id>.session              0600, the session's current record
 *   <dir>/<uid>/<id>.checkpoints/turn-<10 digits>.session   0600, snapshots at the start of turns
 *   <dir>/<uid>/<id>.session[.<usec>].corrupt   files that failed to load, moved aside for inspection;
 *                                         their id stays reserved (store_list) until store_delete
 *
 * Writes are atomic (temp file in the same folder, fsync, rename, fsync folder): after any failure,
 * including a crash or a full disk, the previous version of the file is intact. Loads stream the file
 * block by block (no buffer the size of the file); CPU cost about 1 ms per MB of state (bench/sessions).
 * One Store per state directory at a time (store_open takes an flock: -EBUSY otherwise).
 *
 * Errors are negative errno; functions taking an RwkvError* (may be NULL) also say why in words:
 *   -EINVAL      bad id/argument          -ENOENT   no such session/checkpoint
 *   -EEXIST      target id already exists -EMEDIUMTYPE  the file was made by another model (left in place)
 *   -EBADMSG     corrupt, truncated, unauthenticated, another uid's, or hostile: the file has been
 *                moved aside to *.corrupt and is never loaded (deleted only by store_delete of its id)
 *   -EKEYREJECTED  store_open: the daemon key authenticates none of the stored sessions (see there)
 *   -EPROTONOSUPPORT  a file format version this build cannot read (left in place)
 *   -EFBIG/-ENOSPC/-EROFS/-EACCES/-EIO  write failures; the previous version is intact */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "engine/common/error.h"
#include "engine/text/sampler.h"
#include "engine/text/utf8-stream.h"

/* Session ids: 1..64 bytes of [A-Za-z0-9._-], not starting with '.'. */
#define STORE_ID_MAX 64
#define STORE_TITLE_MAX 256
/* Caps (hostile headers declaring more are refused). */
#define STORE_TRANSCRIPT_MAX (64u * 1024u * 1024u)
#define STORE_STATE_FLOATS_MAX (UINT64_C(1) << 32) /* 16 GiB of fp32 state */
#define STORE_VOCAB_MAX (1u << 24)

typedef enum StorePrecision {
        STORE_PRECISION_F32 = 0,  /* exact (default): resume is bit-identical */
        STORE_PRECISION_F16 = 1,  /* half the bytes, not exact */
        STORE_PRECISION_BF16 = 2, /* half the bytes, not exact, keeps fp32's range */
} StorePrecision;

typedef struct StoreOptions {
        StorePrecision state_precision; /* how new saves store the state; loads read any */
        int zstd_level;                 /* 0: the measured default (see bench/sessions) */
        unsigned max_checkpoints;       /* per session, oldest dropped first; 0: default 32 */
        bool no_sync;                   /* skip fsync (tests/benchmarks only; loses crash safety) */
} StoreOptions;

/* What store_list returns and every record carries: the file's small authenticated header. */
typedef struct SessionMeta {
        char id[STORE_ID_MAX + 1];
        uid_t uid;
        uint8_t model_hash[32];
        uint32_t arch; /* ModelArch (engine/arch/model.h) */
        uint32_t n_layer, n_embd, n_head, head_size, n_vocab;
        uint64_t state_floats;               /* floats in the state (ModelInfo.state_floats) */
        uint64_t n_tokens;                   /* tokens consumed so far */
        uint32_t n_turns;                    /* finished turns */
        uint32_t turn;                       /* for a checkpoint: the turn it was taken at the start of */
        uint64_t created_usec, updated_usec; /* CLOCK_REALTIME */
        char title[STORE_TITLE_MAX + 1];
        StorePrecision precision; /* how the state is stored in the file */
        uint64_t file_bytes;      /* size on disk (filled by list/load) */
} SessionMeta;

/* A full session. For store_save the pointers are borrowed (read only, any allocation); a record
 * returned by the store owns them and is freed with session_record_free(). */
typedef struct SessionRecord {
        SessionMeta meta;
        float *state;           /* meta.state_floats floats, required */
        float *logits;          /* meta.n_vocab floats: the pending logits, or NULL */
        bool has_pending_token; /* a sampled token not yet fed to the model */
        uint32_t pending_token;
        /* Sampler settings, RNG stream and penalty counts (engine/text/sampler.h), kept bit-exact so
         * a resumed generation continues the same stream. The store does not validate params: the
         * daemon runs sampler_params_validate() as for any input. */
        SamplerParams sampler;
        Rng rng;
        float *penalties;       /* meta.n_vocab decayed counts, or NULL (none yet) */
        /* The start of a character the last generation stopped in the middle of (max tokens or
         * cancel): the next generation that continues with an empty prompt completes it. A loaded
         * one has been checked to be a valid incomplete UTF-8 prefix (0..3 bytes). */
        Utf8Stream utf8;
        void *transcript;       /* optional conversation text/tokens, opaque to the store */
        size_t transcript_size; /* <= STORE_TRANSCRIPT_MAX */
} SessionRecord;

SessionRecord *session_record_free(SessionRecord *r);
static inline void session_record_freep(SessionRecord **r) {
        if (*r)
                session_record_free(*r);
}

typedef struct Store Store;

/* Creates dir (0700) and the daemon key (0600) when missing; the key stays in locked memory.
 * A key that is not the one the sessions were sealed with (a backup restored with another key)
 * would make every file look corrupt, and moving them all aside would lose the collection. So
 * when some session or checkpoint file's header fails authentication and none authenticates,
 * store_open refuses with -EKEYREJECTED and moves nothing; files too damaged to tell (no session
 * prefix, cut inside the header) count neither way. */
int store_open(const char *dir, const StoreOptions *opts, Store **ret, RwkvError *err);
Store *store_free(Store *s);
static inline void store_freep(Store **s) {
        if (*s)
                store_free(*s);
}

bool store_id_is_valid(const char *id);

/* Commit rec as session rec->meta.id of uid (replacing the previous version atomically). A stored
 * session of another model (model_hash) is never replaced: -EMEDIUMTYPE (delete it first); the same
 * holds for checkpoints.
 * rec->meta.uid is ignored (uid wins); file_bytes is ignored; created_usec/updated_usec of 0 are set
 * to now. The daemon must ignore SIGXFSZ so that RLIMIT_FSIZE surfaces as -EFBIG, not death. */
int store_save(Store *s, uid_t uid, const SessionRecord *rec, RwkvError *err);

/* model_hash: refuse a session made by another model with -EMEDIUMTYPE (NULL: accept any). */
int store_load(Store *s, uid_t uid, const char *id, const uint8_t model_hash[32], SessionRecord **ret, RwkvError *err);

/* A session file store_list could not list. */
typedef struct StoreBadFile {
        char id[STORE_ID_MAX + 1];
        /* -EBADMSG: failed its checks, now (or at an earlier start) moved aside to *.corrupt;
         * -EPROTONOSUPPORT: a newer format, left in place; else a read error, left in place. */
        int error;
        char message[512]; /* names the id, the reason and where the file went; no key material */
} StoreBadFile;

/* Metadata of every session of uid (headers only: no decompression), sorted by id. Files that
 * fail their checks are moved aside and skipped; when ret_bad is not NULL they are returned there
 * (malloc'ed, sorted by id), with the ids of files moved aside earlier whose session has no file
 * of its own again: those ids are not free. *ret is a malloc'ed array (free()), NULL when there
 * are none. Returns the count of *ret. */
int store_list(Store *s, uid_t uid, SessionMeta **ret, size_t *ret_n, StoreBadFile **ret_bad, size_t *ret_n_bad,
               RwkvError *err);
/* One session's header only. */
int store_stat(Store *s, uid_t uid, const char *id, SessionMeta *ret, RwkvError *err);

/* Overwrites the file's blocks, then unlinks it, its checkpoints and its copies moved aside
 * (*.corrupt): the owner's explicit delete is what frees the id of a corrupt session. */
int store_delete(Store *s, uid_t uid, const char *id, RwkvError *err);
/* -EEXIST when new_id exists. Checkpoints follow. */
int store_rename(Store *s, uid_t uid, const char *id, const char *new_id, RwkvError *err);
/* Copy id (and its checkpoints) to new_id (reflink/copy-on-write where the filesystem can). */
int store_fork(Store *s, uid_t uid, const char *id, const char *new_id, RwkvError *err);

/* Turn checkpoints: a full record taken at the start of a turn. Saving a turn that exists replaces
 * it; beyond max_checkpoints the lowest turns are dropped. */
int store_checkpoint_save(Store *s, uid_t uid, const char *id, uint32_t turn, const SessionRecord *rec, RwkvError *err);
int store_checkpoint_load(Store *s, uid_t uid, const char *id, uint32_t turn, const uint8_t model_hash[32],
                          SessionRecord **ret, RwkvError *err);
/* Delete every checkpoint with turn > after_turn (rewind/regenerate). Returns how many went. */
int store_checkpoint_truncate(Store *s, uid_t uid, const char *id, uint32_t after_turn, RwkvError *err);
/* Turns that have a checkpoint, ascending; *ret malloc'ed (free()). */
int store_checkpoint_list(Store *s, uid_t uid, const char *id, uint32_t **ret, size_t *ret_n, RwkvError *err);

/* Export: write session id of uid to fd (a pipe is fine) as a self-contained file sealed with the
 * daemon's export key. Import: read one from fd (hostile input), re-encrypt it for uid and save it
 * as new_id (NULL: the exported id); -EEXIST when that id exists. */
int store_export(Store *s, uid_t uid, const char *id, int fd, RwkvError *err);
/* Export rec (a session as it is in RAM, maybe newer than its file) the same way, at the precision
 * rec->meta.precision says (0: fp32, exact). rec->meta.id names it; the created and updated times
 * of 0 are set to now. */
int store_export_record(Store *s, uid_t uid, const SessionRecord *rec, int fd, RwkvError *err);
int store_import(Store *s, uid_t uid, int fd, const char *new_id, char ret_id[STORE_ID_MAX + 1], RwkvError *err);

/* What one session takes on disk: its file and its turn checkpoints (0 when there are none). */
typedef struct StoreSessionUsage {
        uint64_t file_bytes;
        uint64_t checkpoint_bytes;
        uint32_t checkpoints;
} StoreSessionUsage;
int store_session_usage(Store *s, uid_t uid, const char *id, StoreSessionUsage *ret);

/* For quotas: sessions of uid and bytes on disk (checkpoints included). */
int store_usage(Store *s, uid_t uid, uint64_t *ret_count, uint64_t *ret_bytes);
