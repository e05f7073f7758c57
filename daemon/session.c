/* session.c: sessions in RAM and the per-daemon table of them. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "protocol/bus.h"
#include "daemon/session.h"

uint64_t now_realtime_usec(void) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        return (uint64_t) ts.tv_sec * 1000000ULL + (uint64_t) ts.tv_nsec / 1000ULL;
}

uint64_t now_monotonic_usec(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000ULL + (uint64_t) ts.tv_nsec / 1000ULL;
}

_Static_assert(SESSION_ID_MAX == RWKV_SESSION_ID_MAX, "session ids are protocol/bus.h's");

bool session_id_valid(const char *id) {
        return rwkv_session_id_valid(id);
}

int session_name_parse(const char *name, uid_t caller, uid_t *ret_uid, const char **ret_id) {
        const char *slash;

        if (!name)
                return -EINVAL;
        slash = strchr(name, '/');
        if (!slash) {
                if (!session_id_valid(name))
                        return -EINVAL;
                *ret_uid = caller;
                *ret_id = name;
                return 0;
        }

        /* "UID/ID": decimal uid, no sign, no leading junk. */
        uint64_t uid = 0;
        if (slash == name || slash - name > 10)
                return -EINVAL;
        for (const char *p = name; p < slash; p++) {
                if (*p < '0' || *p > '9')
                        return -EINVAL;
                uid = uid * 10 + (uint64_t) (*p - '0');
        }
        if (uid >= UINT32_MAX || !session_id_valid(slash + 1))
                return -EINVAL;
        if (caller != 0 && (uid_t) uid != caller)
                return -EPERM;
        *ret_uid = (uid_t) uid;
        *ret_id = slash + 1;
        return 0;
}

static void checkpoint_done(Checkpoint *c) {
        free(c->state);
        free(c->logits);
        free(c->penalties);
        free(c->prompt);
        *c = (Checkpoint) {};
}

static int checkpoint_copy(Checkpoint *dst, const Checkpoint *src, size_t state_floats, size_t n_vocab) {
        *dst = (Checkpoint) { .tokens = src->tokens, .rng = src->rng, .utf8 = src->utf8, .prompt_len = src->prompt_len,
                              .streamed = src->streamed };
        dst->state = malloc(state_floats * sizeof(float));
        if (!dst->state)
                goto fail;
        memcpy(dst->state, src->state, state_floats * sizeof(float));
        dst->penalties = malloc(n_vocab * sizeof(float));
        if (!dst->penalties)
                goto fail;
        memcpy(dst->penalties, src->penalties, n_vocab * sizeof(float));
        if (src->logits) {
                dst->logits = malloc(n_vocab * sizeof(float));
                if (!dst->logits)
                        goto fail;
                memcpy(dst->logits, src->logits, n_vocab * sizeof(float));
        }
        dst->prompt = malloc(src->prompt_len + 1);
        if (!dst->prompt)
                goto fail;
        memcpy(dst->prompt, src->prompt ? src->prompt : "", src->prompt_len);
        dst->prompt[src->prompt_len] = 0;
        return 0;
fail:
        checkpoint_done(dst);
        return -ENOMEM;
}

/* Sessions are made on the main thread only. */
static uint64_t next_serial(void) {
        static uint64_t serial;
        return ++serial;
}

int session_new(const char *id, uid_t owner, const float *fresh_state, size_t state_floats, size_t n_vocab,
                Session **ret) {
        _cleanup_(session_freep) Session *s = NULL;

        if (id && strlen(id) > SESSION_ID_MAX)
                return -EINVAL;
        s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        if (id)
                strcpy(s->id, id);
        s->serial = next_serial();
        s->owner = owner;
        s->state_floats = state_floats;
        s->n_vocab = n_vocab;
        s->state = malloc(MAX(state_floats, (size_t) 1) * sizeof(float));
        s->logits = malloc(MAX(n_vocab, (size_t) 1) * sizeof(float));
        s->penalties = calloc(MAX(n_vocab, (size_t) 1), sizeof(float));
        if (!s->state || !s->logits || !s->penalties)
                return -ENOMEM;
        if (fresh_state)
                memcpy(s->state, fresh_state, state_floats * sizeof(float));
        else
                memset(s->state, 0, state_floats * sizeof(float));
        /* A fresh session's RNG starts somewhere unpredictable; "seed" makes it reproducible. */
        uint64_t seed;
        if (getrandom(&seed, sizeof(seed), GRND_NONBLOCK) != sizeof(seed))
                seed = now_monotonic_usec() ^ 0x9e3779b97f4a7c15ULL;
        rng_seed(&s->rng, seed);
        s->sampler = sampler_params_default();
        s->created_usec = s->updated_usec = now_realtime_usec();
        s->used_usec = now_monotonic_usec();
        s->dirty = true;
        s->hot = true;
        *ret = TAKE_PTR(s);
        return 0;
}

int session_new_cold(const char *id, uid_t owner, size_t state_floats, size_t n_vocab, Session **ret) {
        Session *s;

        if (!id || strlen(id) > SESSION_ID_MAX)
                return -EINVAL;
        s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        strcpy(s->id, id);
        s->serial = next_serial();
        s->owner = owner;
        s->state_floats = state_floats;
        s->n_vocab = n_vocab;
        s->sampler = sampler_params_default();
        s->on_disk = true;
        *ret = s;
        return 0;
}

int session_warm(Session *s, float *state, float *logits, float *penalties) {
        if (!state) {
                free(logits);
                free(penalties);
                return -EINVAL;
        }
        s->has_logits = logits != NULL;
        if (!logits)
                logits = malloc(MAX(s->n_vocab, (size_t) 1) * sizeof(float));
        if (!penalties)
                penalties = calloc(MAX(s->n_vocab, (size_t) 1), sizeof(float));
        if (!logits || !penalties) {
                free(state);
                free(logits);
                free(penalties);
                return -ENOMEM;
        }
        free(s->state);
        free(s->logits);
        free(s->penalties);
        s->state = state;
        s->logits = logits;
        s->penalties = penalties;
        s->hot = true;
        s->used_usec = now_monotonic_usec();
        return 0;
}

void session_cool(Session *s) {
        for (uint32_t i = 0; i < s->n_checkpoints; i++)
                checkpoint_done(&s->checkpoints[i]);
        s->n_checkpoints = 0;
        free(s->state);
        free(s->logits);
        free(s->penalties);
        s->state = s->logits = s->penalties = NULL;
        s->has_logits = false;
        s->hot = false;
}

Session *session_free(Session *s) {
        if (!s)
                return NULL;
        for (uint32_t i = 0; i < s->n_checkpoints; i++)
                checkpoint_done(&s->checkpoints[i]);
        free(s->title);
        free(s->state);
        free(s->logits);
        free(s->penalties);
        free(s);
        return NULL;
}

void session_mark_streamed(Session *s) {
        if (s->n_checkpoints > 0)
                s->checkpoints[s->n_checkpoints - 1].streamed = true;
}

static uint32_t first_turn_held(const Session *s) {
        /* checkpoints[] holds the newest n_checkpoints turns: turns - n + 1 .. turns. */
        return s->turns - s->n_checkpoints + 1;
}

const Checkpoint *session_checkpoint(const Session *s, uint32_t turn) {
        if (turn == 0 || turn > s->turns || turn < first_turn_held(s))
                return NULL;
        return &s->checkpoints[turn - first_turn_held(s)];
}

int session_fork(const Session *s, const char *new_id, uint32_t turn, Session **ret) {
        _cleanup_(session_freep) Session *n = NULL;
        const Checkpoint *at = NULL;
        int r;

        if (turn > 0) {
                at = session_checkpoint(s, turn);
                if (!at)
                        return -ENOENT;
        }
        r = session_new(new_id, s->owner, at ? at->state : s->state, s->state_floats, s->n_vocab, &n);
        if (r < 0)
                return r;
        if (at) {
                n->has_logits = at->logits != NULL;
                if (at->logits)
                        memcpy(n->logits, at->logits, s->n_vocab * sizeof(float));
                memcpy(n->penalties, at->penalties, s->n_vocab * sizeof(float));
                n->tokens = at->tokens;
                n->rng = at->rng;
                n->utf8 = at->utf8;
                n->turns = turn - 1;
        } else {
                n->has_logits = s->has_logits;
                memcpy(n->logits, s->logits, s->n_vocab * sizeof(float));
                memcpy(n->penalties, s->penalties, s->n_vocab * sizeof(float));
                n->tokens = s->tokens;
                n->rng = s->rng;
                n->utf8 = s->utf8;
                n->turns = s->turns;
        }
        /* Copy the checkpoints of the turns the copy keeps. */
        for (uint32_t t = first_turn_held(s); t <= n->turns; t++) {
                r = checkpoint_copy(&n->checkpoints[n->n_checkpoints], session_checkpoint(s, t), s->state_floats,
                                    s->n_vocab);
                if (r < 0)
                        return r;
                n->n_checkpoints++;
        }
        n->sampler = s->sampler;
        if (s->title) {
                n->title = strdup(s->title);
                if (!n->title)
                        return -ENOMEM;
        }
        *ret = TAKE_PTR(n);
        return 0;
}

int session_begin_turn(Session *s, const char *prompt, size_t prompt_len) {
        Checkpoint c = { .tokens = s->tokens, .rng = s->rng, .utf8 = s->utf8, .prompt_len = prompt_len };

        c.state = malloc(s->state_floats * sizeof(float));
        c.prompt = malloc(prompt_len + 1);
        c.penalties = malloc(s->n_vocab * sizeof(float));
        if (s->has_logits)
                c.logits = malloc(s->n_vocab * sizeof(float));
        if (!c.state || !c.prompt || !c.penalties || (s->has_logits && !c.logits)) {
                checkpoint_done(&c);
                return -ENOMEM;
        }
        memcpy(c.state, s->state, s->state_floats * sizeof(float));
        if (c.logits)
                memcpy(c.logits, s->logits, s->n_vocab * sizeof(float));
        memcpy(c.penalties, s->penalties, s->n_vocab * sizeof(float));
        memcpy(c.prompt, prompt, prompt_len);
        c.prompt[prompt_len] = 0;

        /* Keep the newest checkpoints only: the oldest turn can no longer be rewound to. */
        if (s->n_checkpoints == SESSION_CHECKPOINTS_MAX) {
                checkpoint_done(&s->checkpoints[0]);
                memmove(&s->checkpoints[0], &s->checkpoints[1], (SESSION_CHECKPOINTS_MAX - 1) * sizeof(Checkpoint));
                s->n_checkpoints--;
        }
        s->checkpoints[s->n_checkpoints++] = c;
        s->turns++;
        s->dirty = true;
        return 0;
}

int session_adopt_checkpoint(Session *s, float *state, float *logits, float *penalties, uint64_t tokens, Rng rng,
                             Utf8Stream utf8, char *prompt, size_t prompt_len) {
        Checkpoint c = { .state = state, .logits = logits, .penalties = penalties, .tokens = tokens, .rng = rng,
                         .utf8 = utf8, .prompt = prompt, .prompt_len = prompt_len };

        if (!state || !penalties || !prompt || s->n_checkpoints > 0 || s->turns == 0) {
                checkpoint_done(&c);
                return -EINVAL;
        }
        s->checkpoints[0] = c;
        s->n_checkpoints = 1;
        return 0;
}

int session_rewind_to(Session *s, uint32_t turn, float *state, float *logits, float *penalties, uint64_t tokens,
                      Rng rng) {
        if (turn == 0 || turn > s->turns || !state) {
                free(state);
                free(logits);
                free(penalties);
                return -EINVAL;
        }
        int r = session_warm(s, state, logits, penalties);
        if (r < 0)
                return r;
        for (uint32_t i = 0; i < s->n_checkpoints; i++)
                checkpoint_done(&s->checkpoints[i]);
        s->n_checkpoints = 0;
        s->turns = turn - 1;
        s->tokens = tokens;
        s->rng = rng;
        utf8_stream_init(&s->utf8);
        s->updated_usec = now_realtime_usec();
        s->dirty = true;
        return 0;
}

int session_rewind(Session *s, uint32_t turn) {
        const Checkpoint *c = session_checkpoint(s, turn);

        if (!c)
                return -ENOENT;
        memcpy(s->state, c->state, s->state_floats * sizeof(float));
        s->has_logits = c->logits != NULL;
        if (c->logits)
                memcpy(s->logits, c->logits, s->n_vocab * sizeof(float));
        memcpy(s->penalties, c->penalties, s->n_vocab * sizeof(float));
        s->tokens = c->tokens;
        s->rng = c->rng;
        s->utf8 = c->utf8;
        uint32_t keep = turn - first_turn_held(s);
        for (uint32_t i = keep; i < s->n_checkpoints; i++)
                checkpoint_done(&s->checkpoints[i]);
        s->n_checkpoints = keep;
        s->turns = turn - 1;
        s->updated_usec = now_realtime_usec();
        s->dirty = true;
        return 0;
}

int session_set_title(Session *s, const char *title) {
        char *t = strdup(title);
        if (!t)
                return -ENOMEM;
        free(s->title);
        s->title = t;
        s->updated_usec = now_realtime_usec();
        s->dirty = true;
        return 0;
}

size_t session_state_bytes(const Session *s) {
        return s->state_floats * sizeof(float);
}

void session_table_add(SessionTable *t, Session *s) {
        s->prev = NULL;
        s->next = t->head;
        if (t->head)
                t->head->prev = s;
        t->head = s;
        t->n++;
}

void session_table_remove(SessionTable *t, Session *s) {
        if (s->prev)
                s->prev->next = s->next;
        else if (t->head == s)
                t->head = s->next;
        else
                return; /* not in the table */
        if (s->next)
                s->next->prev = s->prev;
        s->prev = s->next = NULL;
        t->n--;
}

Session *session_table_find(const SessionTable *t, uid_t owner, const char *id) {
        for (Session *s = t->head; s; s = s->next)
                if (s->owner == owner && strcmp(s->id, id) == 0)
                        return s;
        return NULL;
}

Session *session_table_find_serial(const SessionTable *t, uint64_t serial) {
        for (Session *s = t->head; s; s = s->next)
                if (s->serial == serial)
                        return s;
        return NULL;
}

uint32_t session_table_count_uid(const SessionTable *t, uid_t owner) {
        uint32_t n = 0;
        for (Session *s = t->head; s; s = s->next)
                if (s->owner == owner)
                        n++;
        return n;
}

void session_table_clear(SessionTable *t) {
        while (t->head) {
                Session *s = t->head;
                session_table_remove(t, s);
                session_free(s);
        }
}

int session_table_pick_id(const SessionTable *t, uid_t owner, char ret[static SESSION_ID_MAX + 1]) {
        for (unsigned attempt = 0; attempt < 64; attempt++) {
                uint32_t v;
                if (getrandom(&v, sizeof(v), GRND_NONBLOCK) != sizeof(v))
                        v = (uint32_t) (now_monotonic_usec() * 2654435761u) + attempt;
                snprintf(ret, SESSION_ID_MAX + 1, "s-%08" PRIx32, v);
                if (!session_table_find(t, owner, ret))
                        return 0;
        }
        return -EBUSY;
}
