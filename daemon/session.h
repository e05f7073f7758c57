/* session.h: a conversation held in RAM: owner, recurrent state, pending logits, sampler RNG, turns.
 *
 * Ownership across threads: a Session is created, looked up and freed on the main thread only. While
 * `busy` is set, a generation job owns `state`, `logits`, `rng` and the counters; the main thread reads
 * none of those until the job's completion comes back through the main loop. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "engine/common/macros.h"
#include "engine/text/sampler.h"
#include "engine/text/utf8-stream.h"

#define SESSION_ID_MAX 64
#define SESSION_CHECKPOINTS_MAX 32

/* The state at the start of one turn, so RewindSession/ForkSession/"regenerate" can go back to it. */
typedef struct Checkpoint {
        float *state;
        float *logits;              /* NULL when no token had been fed yet */
        float *penalties;           /* n_vocab decayed counts */
        uint64_t tokens;
        Rng rng;
        Utf8Stream utf8;            /* the unfinished character carried into the turn */
        char *prompt;               /* the prompt that opened the turn (for "regenerate") */
        size_t prompt_len;
        bool streamed;              /* more prompt came through the ring: not kept, no "regenerate" */
} Checkpoint;

typedef struct Session Session;
struct Session {
        char id[SESSION_ID_MAX + 1];
        uid_t owner;
        char *title;

        float *state;               /* state_floats floats */
        float *logits;              /* n_vocab floats after the last fed token */
        bool has_logits;
        size_t state_floats, n_vocab;

        float *penalties;           /* n_vocab decayed occurrence counts (sampler penalties) */
        SamplerParams sampler;      /* the last generation's settings, the default for the next */
        Rng rng;                    /* sampler RNG position, continues across generations */
        /* The start of a character the last generation stopped inside (max tokens, cancel): the
         * next generation continuing with an empty prompt sends it completed by its first bytes;
         * one that feeds a prompt first sends it as U+FFFD (it can no longer complete). */
        Utf8Stream utf8;
        uint64_t tokens;            /* tokens fed and generated so far */
        uint64_t created_usec, updated_usec;

        Checkpoint checkpoints[SESSION_CHECKPOINTS_MAX];
        uint32_t n_checkpoints;     /* kept in RAM (the newest ones) */
        uint32_t turns;             /* turns ever started (may exceed n_checkpoints) */

        bool hot;                   /* state, logits and penalties are in RAM (else NULL: on disk only) */
        bool on_disk;               /* a committed version exists in the store */
        bool loading;               /* the I/O thread is reading it */
        uint64_t disk_bytes;        /* its file and its turn checkpoints, as last measured on disk */
        uint32_t disk_checkpoints;  /* turn checkpoint files on disk */
        uint64_t used_usec;         /* CLOCK_MONOTONIC of the last use, for LRU eviction */
        bool busy;                  /* a job owns the state */
        bool throwaway;             /* never listed nor stored */
        bool dirty;                 /* changed since the last commit, or its commit failed */
        uint64_t save_seq;          /* commits submitted from the main thread: which one is the newest */
        uint64_t serial;            /* unique for the daemon's life: finds the session again after a rename */

        Session *prev, *next;
};

typedef struct SessionTable {
        Session *head;
        uint32_t n;
} SessionTable;

/* 1..64 of [A-Za-z0-9._-], not starting with '.'. */
bool session_id_valid(const char *id);

/* Split "UID/ID" (root only) into uid and id; plain "ID" names the caller's own. Returns -EINVAL for
 * malformed names and -EPERM when a non-root caller names another uid. */
int session_name_parse(const char *name, uid_t caller, uid_t *ret_uid, const char **ret_id);

int session_new(const char *id, uid_t owner, const float *fresh_state, size_t state_floats, size_t n_vocab,
                Session **ret);
Session *session_free(Session *s);
/* A session known only by its metadata (on disk, not loaded). */
int session_new_cold(const char *id, uid_t owner, size_t state_floats, size_t n_vocab, Session **ret);
/* Make a cold session hot by taking over buffers (each malloc'ed: state required, logits and
 * penalties may be NULL); the pointers passed are owned by the session afterwards (also on error). */
int session_warm(Session *s, float *state, float *logits, float *penalties);
/* Drop the RAM copy of a committed session (state, logits, checkpoints); metadata stays. */
void session_cool(Session *s);

/* A deep copy (state, logits, rng, checkpoints up to and excluding turn `turn` when turn > 0). */
int session_fork(const Session *s, const char *new_id, uint32_t turn, Session **ret);

/* Record the current point as the start of a new turn opened by prompt. */
int session_begin_turn(Session *s, const char *prompt, size_t prompt_len);
/* The newest turn's prompt went on through the ring (prompt_stream): prompt holds only its start. */
void session_mark_streamed(Session *s);
/* Go back to the start of turn (1-based); drops it and later ones. -ENOENT if not held in RAM. */
int session_rewind(Session *s, uint32_t turn);
/* After a load from disk: take over the checkpoint of the session's last turn (buffers malloc'ed,
 * owned by the session afterwards, also on error). Only while no checkpoint is held. */
int session_adopt_checkpoint(Session *s, float *state, float *logits, float *penalties, uint64_t tokens, Rng rng,
                             Utf8Stream utf8, char *prompt, size_t prompt_len);
/* Rewind to the start of turn from a checkpoint read back from disk (buffers malloc'ed, owned by
 * the session afterwards, also on error): every checkpoint held in RAM goes, turns = turn - 1.
 * The UTF-8 carry is cleared: the caller sets the checkpoint's. */
int session_rewind_to(Session *s, uint32_t turn, float *state, float *logits, float *penalties, uint64_t tokens,
                      Rng rng);
/* The checkpoint that opens turn (1-based) or NULL. */
const Checkpoint *session_checkpoint(const Session *s, uint32_t turn);

int session_set_title(Session *s, const char *title);
size_t session_state_bytes(const Session *s);

void session_table_add(SessionTable *t, Session *s);
void session_table_remove(SessionTable *t, Session *s);
Session *session_table_find(const SessionTable *t, uid_t owner, const char *id);
Session *session_table_find_serial(const SessionTable *t, uint64_t serial);
uint32_t session_table_count_uid(const SessionTable *t, uid_t owner);
void session_table_clear(SessionTable *t);

/* A fresh id "s-XXXXXXXX" unused by owner. */
int session_table_pick_id(const SessionTable *t, uid_t owner, char ret[static SESSION_ID_MAX + 1]);

static inline bool isempty_str(const char *s) {
        return !s || !*s;
}

uint64_t now_realtime_usec(void);
uint64_t now_monotonic_usec(void);

DEFINE_TRIVIAL_CLEANUP_FUNC(Session *, session_free);
