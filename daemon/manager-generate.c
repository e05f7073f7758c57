/* manager-generate.c: Generate() and Cancel(): validation, limits, the ring, handing the job to the
 * scheduler, peer tracking, and what happens when a job comes back. */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-daemon.h>

#include "daemon/bus-util.h"
#include "daemon/log.h"
#include "daemon/manager.h"
#include "protocol/bus.h"

static int read_double_option(const char *key, const char *type, sd_bus_message *msg, double lo, double hi,
                              float *ret, sd_bus_error *error) {
        double v;
        int r;
        if (strcmp(type, "d") != 0)
                return bus_option_type_error(key, "d", error);
        r = sd_bus_message_read(msg, "d", &v);
        if (r < 0)
                return r;
        if (!isfinite(v) || v < lo || v > hi)
                return sd_bus_error_setf(error, RWKV_ERROR_INVALID_ARGUMENT, "Option '%s' must be within [%g, %g].", key, lo, hi);
        *ret = (float) v;
        return 0;
}

static int generate_option(Manager *m, const char *key, const char *type, sd_bus_message *msg, void *userdata,
                           sd_bus_error *error) {
        JobParams *p = userdata;
        int r;

        if (strcmp(key, "max_tokens") == 0) {
                if (strcmp(type, "u") != 0)
                        return bus_option_type_error(key, "u", error);
                r = sd_bus_message_read(msg, "u", &p->max_tokens);
                if (r < 0)
                        return r;
                if (p->max_tokens > m->config.limits.max_tokens_per_request)
                        return sd_bus_error_setf(error, RWKV_ERROR_INVALID_ARGUMENT,
                                                 "max_tokens %" PRIu32 " exceeds the limit max_tokens_per_request = %" PRIu32 ".",
                                                 p->max_tokens, m->config.limits.max_tokens_per_request);
                return 0;
        }
        if (strcmp(key, "temperature") == 0)
                return read_double_option(key, type, msg, 0, 100, &p->sampler.temperature, error);
        if (strcmp(key, "top_p") == 0)
                return read_double_option(key, type, msg, 0, 1, &p->sampler.top_p, error);
        if (strcmp(key, "min_p") == 0)
                return read_double_option(key, type, msg, 0, 1, &p->sampler.min_p, error);
        if (strcmp(key, "presence_penalty") == 0)
                return read_double_option(key, type, msg, -100, 100, &p->sampler.presence_penalty, error);
        if (strcmp(key, "frequency_penalty") == 0)
                return read_double_option(key, type, msg, -100, 100, &p->sampler.frequency_penalty, error);
        if (strcmp(key, "penalty_decay") == 0)
                return read_double_option(key, type, msg, 0, 1, &p->sampler.penalty_decay, error);
        if (strcmp(key, "top_k") == 0) {
                if (strcmp(type, "u") != 0)
                        return bus_option_type_error(key, "u", error);
                return sd_bus_message_read(msg, "u", &p->sampler.top_k);
        }
        if (strcmp(key, "seed") == 0) {
                if (strcmp(type, "t") != 0)
                        return bus_option_type_error(key, "t", error);
                p->seed_set = true;
                return sd_bus_message_read(msg, "t", &p->seed);
        }
        if (strcmp(key, "prompt_stream") == 0 || strcmp(key, "regenerate") == 0) {
                int b;
                if (strcmp(type, "b") != 0)
                        return bus_option_type_error(key, "b", error);
                r = sd_bus_message_read(msg, "b", &b);
                if (r < 0)
                        return r;
                if (key[0] == 'p')
                        p->prompt_stream = b;
                else
                        p->regenerate = b;
                return 0;
        }
        if (strcmp(key, "stop") == 0) {
                const char *s;
                if (strcmp(type, "as") != 0)
                        return bus_option_type_error(key, "as", error);
                r = sd_bus_message_enter_container(msg, 'a', "s");
                if (r < 0)
                        return r;
                while ((r = sd_bus_message_read(msg, "s", &s)) > 0) {
                        size_t len = strlen(s);
                        if (p->n_stops >= m->config.limits.max_stop_strings || p->n_stops >= STOP_MAX_SEQUENCES)
                                return sd_bus_error_setf(error, RWKV_ERROR_INVALID_ARGUMENT, "Too many stop strings: at most %u.",
                                                         MIN(m->config.limits.max_stop_strings, (unsigned) STOP_MAX_SEQUENCES));
                        if (len == 0 || len > MIN(m->config.limits.max_stop_bytes, (unsigned) STOP_MAX_BYTES))
                                return sd_bus_error_setf(error, RWKV_ERROR_INVALID_ARGUMENT, "A stop string must have 1 to %u bytes.",
                                                         MIN(m->config.limits.max_stop_bytes, (unsigned) STOP_MAX_BYTES));
                        char **n = realloc(p->stops, (p->n_stops + 1) * sizeof(char *));
                        if (!n)
                                return -ENOMEM;
                        p->stops = n;
                        p->stops[p->n_stops] = strdup(s);
                        if (!p->stops[p->n_stops])
                                return -ENOMEM;
                        p->n_stops++;
                }
                if (r < 0)
                        return r;
                return sd_bus_message_exit_container(msg);
        }
        if (strcmp(key, "logit_bias") == 0) {
                uint32_t tok;
                double bias;
                if (strcmp(type, "a{ud}") != 0)
                        return bus_option_type_error(key, "a{ud}", error);
                r = sd_bus_message_enter_container(msg, 'a', "{ud}");
                if (r < 0)
                        return r;
                while ((r = sd_bus_message_read(msg, "{ud}", &tok, &bias)) > 0) {
                        if (tok >= m->info->n_vocab)
                                return sd_bus_error_setf(error, RWKV_ERROR_INVALID_ARGUMENT, "logit_bias: token %" PRIu32 " is outside the vocabulary (%" PRIu32 ").",
                                                         tok, m->info->n_vocab);
                        if (isnan(bias) || bias == INFINITY)
                                return sd_bus_error_set(error, RWKV_ERROR_INVALID_ARGUMENT, "logit_bias: a bias must be finite or -inf.");
                        if (p->n_bias >= m->info->n_vocab)
                                return sd_bus_error_set(error, RWKV_ERROR_INVALID_ARGUMENT, "logit_bias: too many entries.");
                        LogitBias *n = realloc(p->bias, (p->n_bias + 1) * sizeof(LogitBias));
                        if (!n)
                                return -ENOMEM;
                        p->bias = n;
                        p->bias[p->n_bias++] = (LogitBias) { .token = tok, .bias = (float) bias };
                }
                if (r < 0)
                        return r;
                return sd_bus_message_exit_container(msg);
        }
        return bus_option_unknown(key, error);
}

static void job_link(Manager *m, Job *j) {
        j->mprev = NULL;
        j->mnext = m->jobs;
        if (m->jobs)
                m->jobs->mprev = j;
        m->jobs = j;
        m->n_jobs++;
}

static void job_unlink(Manager *m, Job *j) {
        if (j->mprev)
                j->mprev->mnext = j->mnext;
        else
                m->jobs = j->mnext;
        if (j->mnext)
                j->mnext->mprev = j->mprev;
        j->mprev = j->mnext = NULL;
        m->n_jobs--;
}

uint32_t manager_jobs_of_uid(Manager *m, uid_t uid) {
        uint32_t n = 0;
        for (Job *j = m->jobs; j; j = j->mnext)
                if (j->uid == uid)
                        n++;
        return n;
}

static int on_peer_gone(sd_bus_track *track, void *userdata) {
        Job *j = userdata;
        log_debug("Client of job %" PRIu64 " disconnected, cancelling it.", j->id);
        scheduler_abandon(j->manager->scheduler, j);
        /* Once is enough: an empty track would call us again on every loop iteration. */
        j->track = sd_bus_track_unref(j->track);
        return 0;
}

static int on_stream_wakeup(sd_event_source *source, int fd, uint32_t revents, void *userdata) {
        Job *j = userdata;
        if (stream_process_wakeup(j->stream) > 0)
                scheduler_unpark(j->manager->scheduler, j);
        return 0;
}

void manager_update_status(Manager *m) {
        (void) sd_notifyf(false, "STATUS=Serving %s: %" PRIu32 " sessions, %" PRIu32 " generations",
                          m->info->name, m->sessions.n, m->n_jobs);
}

void manager_job_done(Job *j, void *userdata) {
        Manager *m = userdata;
        Session *s = j->session;
        int r;

        job_unlink(m, j);
        log_debug("Job %" PRIu64 " done: %" PRIu64 " prompt tokens, %" PRIu64 " generated%s.", j->id, j->prompt_tokens,
                  j->generated, j->error ? " (failed)" : "");
        if (s && !s->throwaway) {
                s->busy = false;
                s->updated_usec = now_realtime_usec();
                s->used_usec = now_monotonic_usec();
                s->dirty = true;
                /* The end record tells the client the turn is saved, so it waits for the commit
                 * (one fast save on the I/O thread); a commit that fails ends the stream with an
                 * error record instead, and the session stays in RAM, dirty. */
                r = manager_session_commit_job(m, s, j);
                if (r > 0)
                        j = NULL;
                else if (r < 0 && j->error == 0) {
                        j->error = r;
                        snprintf(j->error_message, sizeof(j->error_message),
                                 "The text was generated, but session '%s' could not be saved: %s. It is kept in RAM "
                                 "and saved again at its next commit.", s->id, strerror(-r));
                }
        }
        if (j) {
                /* Only now: a client that starts its next turn on reading the end record finds the
                 * session free. */
                scheduler_push_last(j);
                job_free(j);
        }
        manager_update_status(m);
        if (m->shutting_down && !m->jobs)
                manager_commit_all(m);
        manager_check_exit(m);
}

int method_generate(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        _cleanup_(job_freep) Job *j = NULL;
        _cleanup_(session_freep) Session *throwaway = NULL;
        const char *name, *prompt;
        Session *s = NULL;
        uid_t caller;
        int r;

        j = calloc(1, sizeof(*j));
        if (!j)
                return -ENOMEM;
        j->manager = m;
        j->params.sampler = m->sampling;
        j->params.max_tokens = MIN(256u, m->config.limits.max_tokens_per_request);
        j->params.max_prompt_bytes = m->config.limits.max_prompt_bytes;

        /* parse and validate */
        r = sd_bus_message_read(msg, "ss", &name, &prompt);
        if (r < 0)
                return r;
        size_t prompt_len = strlen(prompt);
        if (prompt_len > m->config.limits.max_prompt_bytes)
                return sd_bus_error_setf(error, RWKV_ERROR_PROMPT_TOO_LARGE,
                                         "Prompt of %zu bytes exceeds the limit max_prompt_bytes = %" PRIu64 ".", prompt_len,
                                         m->config.limits.max_prompt_bytes);
        r = bus_parse_options(m, msg, generate_option, &j->params, error);
        if (r < 0)
                return r;
        RwkvError err = {};
        if (sampler_params_validate(&j->params.sampler, &err) < 0)
                return sd_bus_error_setf(error, RWKV_ERROR_INVALID_ARGUMENT, "Invalid sampling parameters: %s", err.msg);

        r = stop_matcher_new((const char *const *) j->params.stops, j->params.n_stops, &j->stop, &err);
        if (r < 0)
                return sd_bus_error_setf(error, RWKV_ERROR_INVALID_ARGUMENT, "Invalid stop strings: %s", err.msg);
        if (j->params.regenerate && (isempty_str(name) || prompt_len > 0 || j->params.prompt_stream))
                return sd_bus_error_set(error, RWKV_ERROR_INVALID_ARGUMENT,
                                        "Option 'regenerate' needs a session id, an empty prompt and no prompt_stream.");

        /* authorize */
        GET_CALLER(msg, caller, error);
        REFUSE_WHEN_SHUTTING_DOWN(m, error);
        if (!isempty_str(name)) {
                r = bus_find_session(m, caller, name, &s, error);
                if (r < 0)
                        return r;
        }

        /* limits, before allocating anything large */
        if (m->n_jobs >= m->config.limits.max_streams)
                return sd_bus_error_setf(error, RWKV_ERROR_TOO_MANY_GENERATIONS,
                                         "The daemon runs its maximum of %" PRIu32 " generations (max_streams); try again later.",
                                         m->config.limits.max_streams);
        if (manager_jobs_of_uid(m, caller) >= m->config.limits.max_generations_per_user)
                return sd_bus_error_setf(error, RWKV_ERROR_TOO_MANY_GENERATIONS,
                                         "You already run %" PRIu32 " generations: max_generations_per_user is %" PRIu32 ".",
                                         manager_jobs_of_uid(m, caller), m->config.limits.max_generations_per_user);
        if (s && s->busy)
                return sd_bus_error_setf(error, RWKV_ERROR_SESSION_BUSY, "Session '%s' is already generating.", s->id);
        if (s) {
                r = manager_session_ensure_hot(m, s, msg, method_generate, error);
                if (r <= 0)
                        return r == 0 ? 1 : r;
        }
        if (j->params.regenerate) {
                const Checkpoint *c = session_checkpoint(s, s->turns);
                if (!c)
                        return sd_bus_error_setf(error, RWKV_ERROR_INVALID_ARGUMENT,
                                                 "Session '%s' has no last turn held to regenerate.", s->id);
                if (c->streamed)
                        return sd_bus_error_setf(error, RWKV_ERROR_INVALID_ARGUMENT,
                                                 "The last turn of session '%s' had a streamed prompt, which is not kept: "
                                                 "rewind the session and send the prompt again.", s->id);
                _cleanup_(freep) char *again = strndup(c->prompt, c->prompt_len);
                if (!again)
                        return -ENOMEM;
                /* The RNG stream goes on: regenerating gives another answer (unless "seed" is set). */
                Rng rng = s->rng;
                r = session_rewind(s, s->turns);
                if (r < 0)
                        return r;
                s->rng = rng;
                /* From here on this is a generation with the last turn's prompt. */
                prompt_len = strlen(again);
                j->prompt = TAKE_PTR(again);
                j->prompt_len = j->prompt_cap = prompt_len;
        }
        if (prompt_len == 0 && !j->params.prompt_stream && s && !s->has_logits && s->tokens > 0)
                /* a prompt cancelled in the middle: the state took its tokens, but the prediction
                 * after the last of them was never computed */
                return sd_bus_error_setf(error, RWKV_ERROR_INVALID_ARGUMENT,
                                         "Empty prompt: session '%s' ends in a prompt that was cancelled before its "
                                         "end, so there is no prediction to continue from; send a prompt.",
                                         s->id);
        if (prompt_len == 0 && !j->params.prompt_stream && (!s || !s->has_logits))
                return sd_bus_error_set(error, RWKV_ERROR_INVALID_ARGUMENT,
                                        "Empty prompt: there is no text to continue in this session.");

        /* hand off */
        if (!s) {
                r = session_new(NULL, caller, m->fresh_state, m->info->state_floats, m->info->n_vocab, &throwaway);
                if (r < 0)
                        return r;
                throwaway->throwaway = true;
                s = throwaway;
        }
        if (!j->prompt) {
                j->prompt = strdup(prompt);
                if (!j->prompt)
                        return -ENOMEM;
                j->prompt_len = j->prompt_cap = prompt_len;
        }
        j->prompt_total = prompt_len;
        r = stream_new(0, &j->stream);
        if (r < 0)
                return sd_bus_error_setf(error, RWKV_ERROR_IO, "Could not create the token ring: %s", strerror(-r));
        r = sd_event_add_io(m->event, &j->wakeup_source, stream_get_daemon_wakeup_fd(j->stream), EPOLLIN, on_stream_wakeup, j);
        if (r < 0)
                return r;
        r = sd_bus_track_new(sd_bus_message_get_bus(msg), &j->track, on_peer_gone, j);
        if (r < 0)
                return r;
        r = sd_bus_track_add_sender(j->track, msg);
        if (r < 0)
                return r;

        if (!throwaway) {
                r = session_begin_turn(s, j->prompt, prompt_len);
                if (r < 0)
                        return r;
                if (j->params.prompt_stream)
                        session_mark_streamed(s);
                (void) manager_checkpoint_commit(m, s, s->turns);
        }
        if (j->params.seed_set)
                rng_seed(&s->rng, j->params.seed);
        s->sampler = j->params.sampler;
        j->session = s;
        TAKE_PTR(throwaway);
        s->busy = true;
        j->id = m->next_job_id++;
        j->uid = caller;
        j->submit_usec = now_monotonic_usec();

        int ring_fd, client_fd, daemon_fd;
        stream_get_client_fds(j->stream, &ring_fd, &client_fd, &daemon_fd);
        r = sd_bus_reply_method_return(msg, "thhh", j->id, ring_fd, client_fd, daemon_fd);
        if (r < 0) {
                s->busy = false;
                j->session = s->throwaway ? s : NULL;
                return r;
        }
        log_debug("uid %u started job %" PRIu64 " (%zu prompt bytes).", (unsigned) caller, j->id, prompt_len);
        Job *taken = TAKE_PTR(j);
        job_link(m, taken);
        scheduler_submit(m->scheduler, taken);
        manager_update_status(m);
        return 1;
}

int method_cancel(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        uint64_t id;
        uid_t caller;
        int r;

        r = sd_bus_message_read(msg, "t", &id);
        if (r < 0)
                return r;
        GET_CALLER(msg, caller, error);
        for (Job *j = m->jobs; j; j = j->mnext)
                if (j->id == id && (caller == 0 || j->uid == caller)) {
                        scheduler_cancel(m->scheduler, j);
                        return sd_bus_reply_method_return(msg, NULL);
                }
        return sd_bus_error_setf(error, RWKV_ERROR_NO_SUCH_JOB, "No running generation %" PRIu64 ".", id);
}
