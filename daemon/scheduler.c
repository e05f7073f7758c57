/* scheduler.c: the compute thread and its continuous-batching loop (see scheduler.h). */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>

#include "daemon/log.h"
#include "daemon/scheduler.h"
#include "kernels/threadpool.h"

#define TPS_WINDOW_USEC (5 * 1000000ULL)

struct Scheduler {
        const Model *model;
        const ModelInfo *info;
        const Tokenizer *tokenizer;
        SchedulerOptions opts;

        /* compute thread only */
        ThreadPool *pool;
        EvalCtx *ctx;
        Sampler **samplers; /* one per pool thread: a batch's sessions sample in parallel */
        unsigned n_samplers;
        Job *active;                /* in the loop */
        uint32_t *chunk;            /* prefill token buffer */
        float **b_states, **b_logits;
        uint32_t *b_tokens;
        Job **b_jobs;
        uid_t rr_uid;               /* prefill round-robin position */
        bool rr_valid;

        /* shared, under lock */
        pthread_mutex_t lock;
        pthread_cond_t cond;
        Job *incoming, *done;
        bool stop, kick;
        unsigned in_flight;         /* submitted, completion not yet delivered */
        SchedulerStats stats;
        uint64_t tps_window_start, tps_window_tokens;

        /* main thread */
        sd_event_source *done_source;
        int done_fd;
        SchedulerDoneFn done_fn;
        void *userdata;
        pthread_t thread;
        bool thread_started;
};

static void list_append(Job **head, Job *j) {
        j->next = NULL;
        while (*head)
                head = &(*head)->next;
        *head = j;
}

static void list_remove(Job **head, Job *j) {
        for (; *head; head = &(*head)->next)
                if (*head == j) {
                        *head = j->next;
                        j->next = NULL;
                        return;
                }
}

static void scheduler_signal_main(Scheduler *s) {
        uint64_t one = 1;
        /* EAGAIN means the counter is already non-zero: the main loop will wake anyway. */
        (void) !write(s->done_fd, &one, sizeof(one));
}

/* ---- compute thread -------------------------------------------------------------------------- */

/* Push pending text; 0 when all of it went out, -EAGAIN when the ring is full (park). */
static int job_flush_out(Job *j) {
        if (j->out_len == 0)
                return 0;
        int r = stream_push_text(j->stream, j->out_token, j->out, j->out_len);
        if (r == -EMSGSIZE) {
                /* Larger than half the ring: send it in pieces that fit (never split a character). */
                size_t off = 0;
                while (off < j->out_len) {
                        size_t n = stream_text_piece(j->out + off, j->out_len - off, RING_TEXT_MAX);
                        r = stream_push_text(j->stream, off == 0 ? j->out_token : RING_TOKEN_NONE, j->out + off, n);
                        if (r < 0)
                                break;
                        off += n;
                }
                memmove(j->out, j->out + off, j->out_len - off);
                j->out_len -= off;
                if (off > 0)
                        j->out_token = RING_TOKEN_NONE;
        } else if (r >= 0)
                j->out_len = 0;
        return r < 0 ? r : 0;
}

static int job_out_reserve(Job *j, size_t more) {
        if (j->out_len + more <= j->out_cap)
                return 0;
        size_t cap = MAX(j->out_cap * 2, j->out_len + more + 64);
        uint8_t *p = realloc(j->out, cap);
        if (!p)
                return -ENOMEM;
        j->out = p;
        j->out_cap = cap;
        return 0;
}

/* The session keeps the job's unfinished character (see Session.utf8): a continuation completes it. */
static void job_keep_carry(Job *j) {
        if (j->session)
                j->session->utf8 = j->utf8;
}

/* An incomplete character that can no longer complete goes out as U+FFFD (a piece of no token). */
static int job_flush_char(Job *j) {
        int r = job_out_reserve(j, UTF8_STREAM_FLUSH_MAX);
        if (r < 0)
                return r;
        if (j->out_len == 0)
                j->out_token = RING_TOKEN_NONE;
        j->out_len += utf8_stream_flush(&j->utf8, j->out + j->out_len);
        return 0;
}

static void job_fail(Job *j, int r, const char *msg) {
        job_keep_carry(j);
        if (j->error == 0) {
                j->error = r < 0 ? r : -EIO;
                snprintf(j->error_message, sizeof(j->error_message), "%s", msg);
        }
        j->phase = JOB_FINISHING;
        j->end_usec = now_monotonic_usec();
}

static void job_end(Job *j, uint32_t reason) {
        if (j->phase == JOB_FINISHING || j->phase == JOB_DONE)
                return;
        j->stop_reason = reason;
        j->phase = JOB_FINISHING;
        j->end_usec = now_monotonic_usec();
        /* The held-back tail of a stop-sequence prefix goes out now. */
        if (reason != RING_STOP_STOP_STRING && j->stop && job_out_reserve(j, STOP_MAX_BYTES + 3 * (STOP_MAX_BYTES + 3)) == 0) {
                uint8_t held[STOP_MAX_BYTES];
                size_t n = stop_matcher_flush(j->stop, held);
                j->out_len += utf8_stream_feed(&j->utf8, held, n, j->out + j->out_len);
        }
        /* An incomplete character: where the text ended for good (end token, stop string) it is
         * U+FFFD now; where it was only cut (max tokens, cancel, prompt only) the session keeps it,
         * so text(k tokens) + text(N - k more) == text(N tokens) byte for byte. */
        if (reason == RING_STOP_END_TOKEN || reason == RING_STOP_STOP_STRING)
                (void) job_flush_char(j);
        job_keep_carry(j);
}

/* Flush the text and make room for the end or error record; returns 0 when the job can go back to
 * the main thread, -EAGAIN when parked. The record itself is pushed by scheduler_push_last() on
 * the main thread once the session is released: a client that starts its next turn as soon as it
 * reads the end record must find the session free. */
static int job_finish_stream(Job *j) {
        int r;

        if (j->error == 0) {
                r = job_flush_out(j);
                if (r == -EAGAIN)
                        return r;
        }
        r = stream_reserve_last(j->stream);
        if (r == -EAGAIN)
                return r;
        if (r < 0 && r != -EPIPE && r != -ESHUTDOWN)
                stream_abort(j->stream, -r);
        j->phase = JOB_DONE;
        return 0;
}

void scheduler_push_last(Job *j) {
        int r;

        if (j->error != 0)
                r = stream_push_error(j->stream, j->error, j->error_message);
        else {
                StreamEnd end = {
                        .tokens_generated = j->generated,
                        .prompt_tokens = j->prompt_tokens,
                        .stop_reason = j->stop_reason,
                        .queue_usec = j->start_usec > j->submit_usec ? j->start_usec - j->submit_usec : 0,
                        .prompt_usec = j->prefill_done_usec > j->start_usec ? j->prefill_done_usec - j->start_usec : 0,
                        .generate_usec = j->end_usec > j->prefill_done_usec && j->prefill_done_usec
                                                 ? j->end_usec - j->prefill_done_usec : 0,
                        .session_tokens = j->session ? j->session->tokens : j->session_tokens,
                };
                r = stream_push_end(j->stream, &end);
        }
        /* -EAGAIN cannot happen after stream_reserve_last(); anything else: the stream is over. */
        if (r < 0 && r != -EPIPE && r != -ESHUTDOWN && r != -EBADMSG)
                stream_abort(j->stream, -r);
}

static void scheduler_complete(Scheduler *s, Job *j) {
        list_remove(&s->active, j);
        pthread_mutex_lock(&s->lock);
        list_append(&s->done, j);
        if (j->parked)
                s->stats.parked--;
        s->stats.running--;
        pthread_mutex_unlock(&s->lock);
        scheduler_signal_main(s);
}

static void job_set_parked(Scheduler *s, Job *j, bool parked);

/* Take more prompt bytes from the ring (prompt_stream). 0: progress or end, -EAGAIN: park.
 *
 * Constant memory for any prompt size: the bytes the tokenizer consumed are dropped first, so the
 * buffer holds only its look-ahead tail plus one window of new bytes (prefill_chunk * 16). */
static int job_read_input(Scheduler *s, Job *j) {
        size_t window = MAX((size_t) s->opts.prefill_chunk * 16, (size_t) 65536);

        if (j->prompt_pos > 0) {
                memmove(j->prompt, j->prompt + j->prompt_pos, j->prompt_len - j->prompt_pos);
                j->prompt_len -= j->prompt_pos;
                j->prompt_pos = 0;
        }
        /* A large prompt argument left a large buffer behind: give it back once consumed. */
        if (j->prompt_cap > 2 * window && j->prompt_len <= window) {
                char *p = realloc(j->prompt, window);
                if (p) {
                        j->prompt = p;
                        j->prompt_cap = window;
                }
        }
        for (;;) {
                if (j->prompt_len >= window)
                        return 0; /* enough to work on for now */
                if (j->prompt_len == j->prompt_cap) {
                        size_t cap = MIN(MAX(j->prompt_cap * 2, (size_t) 4096), window);
                        char *p = realloc(j->prompt, cap);
                        if (!p)
                                return -ENOMEM;
                        j->prompt = p;
                        j->prompt_cap = cap;
                }
                ssize_t n = stream_read_input(j->stream, j->prompt + j->prompt_len, j->prompt_cap - j->prompt_len);
                if (n == 0) {
                        j->input_done = true;
                        return 0;
                }
                if (n < 0)
                        return (int) n;
                j->prompt_len += (size_t) n;
                j->prompt_total += (uint64_t) n;
                /* A bound on the work one request may ask for, not on memory (constant here). */
                if (j->prompt_total > j->params.max_prompt_bytes)
                        return -E2BIG;
        }
}

/* One chunk of prompt for one job. */
static void job_prefill_step(Scheduler *s, Job *j) {
        size_t consumed = 0, n = 0;
        int r;

        if (j->start_usec == 0)
                j->start_usec = now_monotonic_usec();
        if (!j->input_done) {
                r = job_read_input(s, j);
                if (r == -E2BIG)
                        return job_fail(j, r, "the streamed prompt exceeds max_prompt_bytes");
                if (r == -EAGAIN && j->prompt_len - j->prompt_pos < tokenizer_max_token_bytes(s->tokenizer) + 1) {
                        job_set_parked(s, j, true);
                        return;
                }
                if (r == -EPIPE)
                        return job_end(j, RING_STOP_CANCELLED);
                if (r < 0 && r != -EAGAIN)
                        return job_fail(j, r, "reading the streamed prompt failed");
        }
        r = tokenizer_encode(s->tokenizer, (const uint8_t *) j->prompt + j->prompt_pos, j->prompt_len - j->prompt_pos,
                             j->input_done, s->chunk, s->opts.prefill_chunk, &consumed, &n);
        if (r < 0)
                return job_fail(j, r, "tokenizing the prompt failed");
        j->prompt_pos += consumed;
        bool last = j->input_done && j->prompt_pos >= j->prompt_len;
        /* A streamed prompt may end (EOF) after every byte it sent was fed: this chunk is then the
         * last one that runs, so a chunk that takes all the bytes received so far keeps its logits
         * too. The head runs once more per pause of the stream, not per chunk. */
        bool caught_up = last || j->prompt_pos >= j->prompt_len;
        if (n > 0) {
                Session *se = j->session;
                /* A character carried in from the last generation can no longer complete once prompt
                 * tokens follow it: it opens this generation's text as U+FFFD. */
                if (j->utf8.n_pending > 0 && (r = job_flush_char(j)) < 0)
                        return job_fail(j, r, "out of memory");
                r = model_eval_sequence(s->ctx, se->state, s->chunk, n, caught_up ? se->logits : NULL);
                if (r < 0)
                        return job_fail(j, r, "evaluating the prompt failed");
                /* A chunk without them leaves stale logits: mark them so until one has them. */
                se->has_logits = caught_up;
                se->tokens += n;
                j->prompt_tokens += n;
                pthread_mutex_lock(&s->lock);
                s->stats.prompt_tokens_total += n;
                pthread_mutex_unlock(&s->lock);
        }
        if (!last)
                return;
        /* The prompt is in: free its bytes early (a 50 MB prompt must not linger). */
        free(j->prompt);
        j->prompt = NULL;
        j->prompt_len = j->prompt_pos = j->prompt_cap = 0;
        j->prefill_done_usec = now_monotonic_usec();
        if (j->params.max_tokens == 0)
                return job_end(j, RING_STOP_PROMPT_ONLY);
        if (!j->session->has_logits)
                return job_fail(j, -EINVAL,
                                j->prompt_tokens == 0 && j->session->tokens > 0
                                        ? "nothing to continue: the session ends in a prompt that was cancelled "
                                          "before its end, and the prompt is empty"
                                        : "nothing to continue: the session is empty and the prompt is empty");
        j->phase = JOB_DECODE;
}

/* Prefill: up to prefill_per_step jobs, one per uid, starting after the uid served last. */
static void scheduler_prefill(Scheduler *s) {
        unsigned budget = s->opts.prefill_per_step;

        for (unsigned round = 0; round < budget; round++) {
                Job *pick = NULL, *first = NULL;
                /* The next uid above rr_uid with a runnable prefilling job, wrapping around. */
                for (Job *j = s->active; j; j = j->next) {
                        if (j->phase != JOB_PREFILL || j->parked)
                                continue;
                        if (!first || j->uid < first->uid)
                                first = j;
                        if (s->rr_valid && j->uid <= s->rr_uid)
                                continue;
                        if (!pick || j->uid < pick->uid)
                                pick = j;
                }
                if (!pick)
                        pick = first;
                if (!pick)
                        return;
                if (round > 0 && s->rr_valid && pick->uid == s->rr_uid && !pick->next && pick == first)
                        return; /* a single user: one chunk per step, decode gets its turn */
                s->rr_uid = pick->uid;
                s->rr_valid = true;
                /* Rotate the uid's jobs: the one served goes to the back of the list. */
                list_remove(&s->active, pick);
                list_append(&s->active, pick);
                job_prefill_step(s, pick);
        }
}

/* Sample the next token of each of b_jobs[0, n) into b_tokens and results, in parallel: a session's sampling reads and
 * writes only its own logits, penalties and RNG (one job per session), so the tokens are the same
 * as one after the other; each task has its own Sampler (scratch). ~0.1-0.3 ms a token over a
 * 65536 vocabulary (bench-text) adds up at 8 sessions a step. */
typedef struct SampleWork {
        Scheduler *s;
        size_t n;
        int *results; /* sampler_sample's, per job */
} SampleWork;

static void sample_task(void *ctx, unsigned task, unsigned n_tasks) {
        SampleWork *w = ctx;
        Scheduler *s = w->s;

        for (size_t i = task; i < w->n; i += n_tasks) {
                Job *j = s->b_jobs[i];
                Session *se = j->session;
                int r = sampler_sample(s->samplers[task], &j->params.sampler, se->logits, se->penalties, j->params.bias,
                                       j->params.n_bias, &se->rng, &s->b_tokens[i]);
                if (r >= 0)
                        sampler_penalty_update(se->penalties, (uint32_t)se->n_vocab, j->params.sampler.penalty_decay,
                                               s->b_tokens[i]);
                w->results[i] = r;
        }
}

/* Queue the text of j's sampled token t. Returns 0, 1 at the end token, 2 when a stop string
 * matched, or a negative errno. */
static int job_take_token(Scheduler *s, Job *j, uint32_t t) {
        int r;
        size_t len = 0;
        const uint8_t *bytes = tokenizer_token_bytes(s->tokenizer, t, &len);
        if (!bytes)
                len = 0;
        if (t == 0 && !tokenizer_is_bytes(s->tokenizer))
                return 1; /* end of text */
        uint8_t passed[RING_TEXT_MAX + STOP_MAX_BYTES];
        size_t n_passed = len, which = 0;
        const uint8_t *src = bytes;
        int stopped = 0;
        if (j->stop && len > 0) {
                if (len > RING_TEXT_MAX)
                        len = RING_TEXT_MAX;
                stopped = stop_matcher_feed(j->stop, bytes, len, passed, &n_passed, &which);
                if (stopped < 0)
                        return stopped;
                src = passed;
        }
        r = job_out_reserve(j, UTF8_STREAM_OUT_MAX(n_passed));
        if (r < 0)
                return r;
        if (j->out_len == 0)
                j->out_token = t;
        j->out_len += utf8_stream_feed(&j->utf8, src, n_passed, j->out + j->out_len);
        return stopped ? 2 : 0;
}

static void scheduler_decode(Scheduler *s) {
        size_t B = 0, n = 0;
        int outcome[256];

        for (Job *j = s->active; j && n < s->opts.max_batch; j = j->next)
                if (j->phase == JOB_DECODE && !j->parked && j->out_len == 0)
                        s->b_jobs[n++] = j;
        if (n == 0)
                return;
        SampleWork work = { .s = s, .n = n, .results = outcome };
        threadpool_run(s->pool, sample_task, &work, (unsigned)MIN(n, (size_t)s->n_samplers));

        /* Keep the jobs that go on in place: B <= i, so nothing is overwritten before it is read. */
        for (size_t i = 0; i < n; i++) {
                Job *j = s->b_jobs[i];
                uint32_t t = s->b_tokens[i];
                int r = outcome[i];
                if (r >= 0)
                        r = job_take_token(s, j, t);
                if (r < 0) {
                        job_fail(j, r,
                                 r == -EDOM ? "no token left to sample: logit_bias bans every token, or the model gave "
                                              "invalid (NaN) logits, as a damaged model file does (rwkvctl model "
                                              "info --verify checks one)"
                                            : "sampling failed");
                        continue;
                }
                if (r == 1) { /* the end token is not fed: the session ends where the text ended */
                        job_end(j, RING_STOP_END_TOKEN);
                        continue;
                }
                s->b_jobs[B] = j;
                s->b_tokens[B] = t;
                s->b_states[B] = j->session->state;
                s->b_logits[B] = j->session->logits;
                outcome[B] = r;
                B++;
        }
        if (B == 0)
                return;

        int r = model_eval_batch(s->ctx, s->b_states, s->b_tokens, B, s->b_logits);
        for (size_t i = 0; i < B; i++) {
                Job *j = s->b_jobs[i];
                if (r < 0) {
                        job_fail(j, r, "evaluating the model failed");
                        continue;
                }
                j->session->tokens++;
                j->session->has_logits = true;
                j->generated++;
                /* A long generation is committed on the way, so a crash loses at most N tokens. */
                if (s->opts.progress && s->opts.commit_every > 0 && j->generated % s->opts.commit_every == 0) {
                        job_keep_carry(j);
                        s->opts.progress(j, s->userdata);
                }
                if (outcome[i] == 2)
                        job_end(j, RING_STOP_STOP_STRING);
                else if (j->generated >= j->params.max_tokens)
                        job_end(j, RING_STOP_MAX_TOKENS);
        }
        if (r < 0)
                return;
        pthread_mutex_lock(&s->lock);
        s->stats.tokens_total += B;
        s->stats.decode_steps++;
        if (B > s->stats.decode_batch_max)
                s->stats.decode_batch_max = (uint32_t)B;
        uint64_t now = now_monotonic_usec();
        if (now - s->tps_window_start > TPS_WINDOW_USEC) {
                s->stats.tokens_per_second = (double) s->tps_window_tokens * 1e6 / (double) (now - s->tps_window_start);
                s->tps_window_start = now;
                s->tps_window_tokens = 0;
        }
        s->tps_window_tokens += B;
        pthread_mutex_unlock(&s->lock);
}

static void job_set_parked(Scheduler *s, Job *j, bool parked) {
        if (j->parked == parked)
                return;
        j->parked = parked;
        pthread_mutex_lock(&s->lock);
        if (parked)
                s->stats.parked++;
        else
                s->stats.parked--;
        pthread_mutex_unlock(&s->lock);
}

/* Between steps: cancellations, unparking, pushing held-back text and end records. */
static void scheduler_housekeeping(Scheduler *s) {
        Job *next;

        for (Job *j = s->active; j; j = next) {
                next = j->next;
                if (atomic_exchange(&j->unpark, false))
                        job_set_parked(s, j, false);
                if (atomic_load(&j->cancel) && j->phase != JOB_FINISHING && j->phase != JOB_DONE)
                        job_end(j, RING_STOP_CANCELLED);
                if (j->parked && j->phase != JOB_FINISHING)
                        continue;
                int r = 0;
                if (j->phase == JOB_FINISHING)
                        r = job_finish_stream(j);
                else if (j->out_len > 0)
                        r = job_flush_out(j);
                if (r == -EAGAIN) {
                        /* A client that cancelled and still reads gets its end record once it made
                         * room; only one that is gone (or an exiting daemon) is not waited for. */
                        if (atomic_load(&j->abandon) && j->phase == JOB_FINISHING) {
                                stream_abort(j->stream, ECANCELED);
                                j->phase = JOB_DONE;
                        } else
                                job_set_parked(s, j, true);
                } else if (r == -EPIPE || r == -EBADMSG) {
                        /* The client is gone or broke the ring: stop computing for it. */
                        if (j->phase != JOB_FINISHING)
                                job_end(j, RING_STOP_CANCELLED);
                        j->phase = JOB_DONE;
                }
                if (j->phase == JOB_DONE)
                        scheduler_complete(s, j);
        }
}

static bool scheduler_has_work(Scheduler *s) {
        for (Job *j = s->active; j; j = j->next) {
                if (!j->parked || atomic_load(&j->unpark) || atomic_load(&j->abandon))
                        return true;
                /* A cancelled job parked on its last record waits for room like the others. */
                if (atomic_load(&j->cancel) && j->phase != JOB_FINISHING)
                        return true;
        }
        return false;
}

static void *scheduler_thread(void *userdata) {
        Scheduler *s = userdata;

        for (;;) {
                pthread_mutex_lock(&s->lock);
                for (;;) {
                        while (s->incoming) {
                                Job *j = s->incoming;
                                s->incoming = j->next;
                                s->stats.queued--;
                                s->stats.running++;
                                list_append(&s->active, j);
                        }
                        if (s->stop && !s->active)
                                break;
                        if (s->kick || scheduler_has_work(s))
                                break;
                        pthread_cond_wait(&s->cond, &s->lock);
                }
                s->kick = false;
                bool stop = s->stop && !s->active;
                pthread_mutex_unlock(&s->lock);
                if (stop)
                        break;

                scheduler_housekeeping(s);
                scheduler_prefill(s);
                scheduler_decode(s);
                scheduler_housekeeping(s);
        }
        return NULL;
}

/* ---- main thread ----------------------------------------------------------------------------- */

static int on_done(sd_event_source *source, int fd, uint32_t revents, void *userdata) {
        Scheduler *s = userdata;
        uint64_t v;
        Job *list;

        (void) !read(fd, &v, sizeof(v));
        pthread_mutex_lock(&s->lock);
        list = s->done;
        s->done = NULL;
        pthread_mutex_unlock(&s->lock);
        while (list) {
                Job *j = list;
                list = j->next;
                j->next = NULL;
                s->in_flight--;
                s->done_fn(j, s->userdata);
        }
        return 0;
}

int scheduler_new(const Model *model, const SchedulerOptions *opts, sd_event *event, SchedulerDoneFn done,
                  void *userdata, Scheduler **ret) {
        _cleanup_(scheduler_freep) Scheduler *s = NULL;
        int r;

        s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        s->done_fd = -EBADF;
        pthread_mutex_init(&s->lock, NULL);
        pthread_cond_init(&s->cond, NULL);
        s->model = model;
        s->info = model_info(model);
        s->tokenizer = model_tokenizer(model);
        if (!s->tokenizer)
                return -EMEDIUMTYPE;
        s->opts = *opts;
        s->opts.max_batch = MIN(MAX(s->opts.max_batch, 1u), 256u);
        s->opts.prefill_chunk = MIN(MAX(s->opts.prefill_chunk, 1u), 4096u);
        s->opts.prefill_per_step = MAX(s->opts.prefill_per_step, 1u);
        s->done_fn = done;
        s->userdata = userdata;

        r = threadpool_new(s->opts.threads, &s->pool);
        if (r < 0)
                return r;
        r = evalctx_new(model, s->pool, s->opts.max_batch, s->opts.prefill_chunk, &s->ctx);
        if (r < 0)
                return r;
        s->n_samplers = threadpool_size(s->pool);
        s->samplers = calloc(s->n_samplers, sizeof(Sampler *));
        if (!s->samplers)
                return -ENOMEM;
        for (unsigned i = 0; i < s->n_samplers; i++) {
                r = sampler_new(s->info->n_vocab, &s->samplers[i]);
                if (r < 0)
                        return r;
        }
        s->chunk = calloc(s->opts.prefill_chunk, sizeof(uint32_t));
        s->b_states = calloc(s->opts.max_batch, sizeof(float *));
        s->b_logits = calloc(s->opts.max_batch, sizeof(float *));
        s->b_tokens = calloc(s->opts.max_batch, sizeof(uint32_t));
        s->b_jobs = calloc(s->opts.max_batch, sizeof(Job *));
        if (!s->chunk || !s->b_states || !s->b_logits || !s->b_tokens || !s->b_jobs)
                return -ENOMEM;
        s->tps_window_start = now_monotonic_usec();

        s->done_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (s->done_fd < 0)
                return -errno;
        r = sd_event_add_io(event, &s->done_source, s->done_fd, EPOLLIN, on_done, s);
        if (r < 0)
                return r;
        (void) sd_event_source_set_description(s->done_source, "scheduler-done");

        r = -pthread_create(&s->thread, NULL, scheduler_thread, s);
        if (r < 0)
                return r;
        s->thread_started = true;
        *ret = TAKE_PTR(s);
        return 0;
}

Scheduler *scheduler_free(Scheduler *s) {
        if (!s)
                return NULL;
        if (s->thread_started) {
                pthread_mutex_lock(&s->lock);
                s->stop = true;
                for (Job *j = s->active; j; j = j->next) {
                        atomic_store(&j->cancel, true);
                        atomic_store(&j->abandon, true);
                }
                for (Job *j = s->incoming; j; j = j->next) {
                        atomic_store(&j->cancel, true);
                        atomic_store(&j->abandon, true);
                }
                pthread_cond_signal(&s->cond);
                pthread_mutex_unlock(&s->lock);
                pthread_join(s->thread, NULL);
        }
        /* Whatever finished but was not delivered goes back to its owner now. */
        if (s->done_fn) {
                while (s->done) {
                        Job *j = s->done;
                        s->done = j->next;
                        j->next = NULL;
                        s->done_fn(j, s->userdata);
                }
        }
        sd_event_source_disable_unref(s->done_source);
        safe_close(s->done_fd);
        for (unsigned i = 0; s->samplers && i < s->n_samplers; i++)
                sampler_free(s->samplers[i]);
        free(s->samplers);
        evalctx_free(s->ctx);
        threadpool_free(s->pool);
        free(s->chunk);
        free(s->b_states);
        free(s->b_logits);
        free(s->b_tokens);
        free(s->b_jobs);
        pthread_cond_destroy(&s->cond);
        pthread_mutex_destroy(&s->lock);
        free(s);
        return NULL;
}

void scheduler_submit(Scheduler *s, Job *job) {
        job->next = NULL;
        job->phase = JOB_PREFILL;
        job->input_done = !job->params.prompt_stream;
        /* The session's unfinished character, if any, is where this generation's text begins. */
        if (job->session)
                job->utf8 = job->session->utf8;
        else
                utf8_stream_init(&job->utf8);
        pthread_mutex_lock(&s->lock);
        list_append(&s->incoming, job);
        s->stats.queued++;
        s->in_flight++;
        pthread_cond_signal(&s->cond);
        pthread_mutex_unlock(&s->lock);
}

void scheduler_cancel(Scheduler *s, Job *job) {
        atomic_store(&job->cancel, true);
        pthread_mutex_lock(&s->lock);
        s->kick = true;
        pthread_cond_signal(&s->cond);
        pthread_mutex_unlock(&s->lock);
}

void scheduler_abandon(Scheduler *s, Job *job) {
        atomic_store(&job->abandon, true);
        scheduler_cancel(s, job);
}

void scheduler_unpark(Scheduler *s, Job *job) {
        atomic_store(&job->unpark, true);
        pthread_mutex_lock(&s->lock);
        s->kick = true;
        pthread_cond_signal(&s->cond);
        pthread_mutex_unlock(&s->lock);
}

void scheduler_get_stats(Scheduler *s, SchedulerStats *ret) {
        pthread_mutex_lock(&s->lock);
        *ret = s->stats;
        if (now_monotonic_usec() - s->tps_window_start > 2 * TPS_WINDOW_USEC)
                ret->tokens_per_second = 0; /* idle */
        pthread_mutex_unlock(&s->lock);
}

unsigned scheduler_jobs(Scheduler *s) {
        return s->in_flight;
}

const char *scheduler_isa(Scheduler *s) {
        const Kernels *k = kernels_get();
        return k ? k->isa : "unknown";
}
