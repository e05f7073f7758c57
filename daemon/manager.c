/* manager.c: the daemon's lifetime: load the model, start the scheduler, serve, shut down cleanly. */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-daemon.h>

#include "daemon/log.h"
#include "daemon/manager.h"
#include "protocol/bus-errors.h"
#include "protocol/bus.h"

int manager_new(Manager **ret) {
        Manager *m = calloc(1, sizeof(*m));
        if (!m)
                return -ENOMEM;
        config_init(&m->config);
        m->next_job_id = 1;
        m->start_usec = now_monotonic_usec();
        *ret = m;
        return 0;
}

Manager *manager_free(Manager *m) {
        if (!m)
                return NULL;
        /* Jobs come back through manager_job_done() while the scheduler is torn down. */
        m->scheduler = scheduler_free(m->scheduler);
        while (m->jobs) {
                Job *j = m->jobs;
                m->jobs = j->mnext;
                if (j->session)
                        j->session->busy = false;
                job_free(j);
        }
        /* Joining the worker finishes the queued saves. */
        m->worker = worker_free(m->worker);
        store_free(m->store);
        session_table_clear(&m->sessions);
        sd_bus_slot_unref(m->vtable_slot);
        sd_bus_flush_close_unref(m->bus);
        sd_event_unref(m->event);
        free(m->fresh_state);
        free(m->foreign);
        model_free(m->model);
        free(m->bus_address);
        config_done(&m->config);
        free(m);
        return NULL;
}

/* A cancelled generation waits for its client to make room for the end record; at exit only this
 * long, so a client that stopped reading cannot hold the shutdown (it then sees the ring end with
 * ECANCELED and no end record). */
#define SHUTDOWN_GRACE_USEC (3 * 1000000ULL)

static int on_shutdown_grace(sd_event_source *s, uint64_t usec, void *userdata) {
        Manager *m = userdata;
        for (Job *j = m->jobs; j; j = j->mnext)
                scheduler_abandon(m->scheduler, j);
        return 0;
}

void manager_shutdown(Manager *m) {
        if (m->shutting_down)
                return;
        m->shutting_down = true;
        (void) sd_notify(false, "STOPPING=1\nSTATUS=Stopping: finishing running generations");
        /* Stop at the next token boundary: each session keeps the state it reached, and is
         * committed when its job comes back (manager_job_done); then the rest, then exit. */
        for (Job *j = m->jobs; j; j = j->mnext)
                scheduler_cancel(m->scheduler, j);
        if (m->jobs && sd_event_add_time_relative(m->event, NULL, CLOCK_MONOTONIC, SHUTDOWN_GRACE_USEC, 0,
                                                  on_shutdown_grace, m) < 0)
                on_shutdown_grace(NULL, 0, m);
        if (!m->jobs)
                manager_commit_all(m);
        manager_check_exit(m);
}

static int on_signal(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        Manager *m = userdata;

        if (m->shutting_down) {
                log_notice("Second signal: exiting without waiting for running generations.");
                return sd_event_exit(m->event, 0);
        }
        log_info("Received %s, shutting down.", strsignal((int) si->ssi_signo));
        manager_shutdown(m);
        return 0;
}

int manager_startup(Manager *m) {
        RwkvError err = {};
        ModelLoadOptions lo = { .vocab_path = m->config.vocab_path };
        int r;

        r = rwkv_bus_errors_register();
        if (r < 0)
                return log_error_errno(r, "Failed to register the D-Bus error map: %m");

        r = sd_event_default(&m->event);
        if (r < 0)
                return log_error_errno(r, "Failed to allocate the event loop: %m");
        r = sd_event_set_watchdog(m->event, true);
        if (r < 0)
                log_warning_errno(r, "Failed to enable the watchdog, ignoring: %m");

        sigset_t mask;
        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        if (pthread_sigmask(SIG_BLOCK, &mask, NULL) != 0)
                return log_error_errno(errno, "Failed to block signals: %m");
        (void) signal(SIGPIPE, SIG_IGN);
        /* A file size limit (RLIMIT_FSIZE) must fail a commit with EFBIG (NoSpace), not kill us. */
        (void) signal(SIGXFSZ, SIG_IGN);
        r = sd_event_add_signal(m->event, NULL, SIGTERM, on_signal, m);
        if (r >= 0)
                r = sd_event_add_signal(m->event, NULL, SIGINT, on_signal, m);
        if (r < 0)
                return log_error_errno(r, "Failed to watch signals: %m");

        (void) sd_notifyf(false, "STATUS=Loading model %s", m->config.model_path);
        r = model_load(m->config.model_path, &lo, &m->model, &err);
        if (r < 0)
                return log_error_errno(r, "Failed to load model \"%s\": %s", m->config.model_path, error_message(&err, r));
        m->info = model_info(m->model);
        if (!model_tokenizer(m->model))
                return log_error_errno(-EMEDIUMTYPE,
                                       "Model \"%s\" has no tokenizer; pass the World vocabulary with --vocab.",
                                       m->config.model_path);
        m->fresh_state = malloc(MAX(m->info->state_floats, (size_t) 1) * sizeof(float));
        if (!m->fresh_state)
                return log_oom();
        model_state_reset(m->model, m->fresh_state);

        /* The model's defaults (on a byte-level model top_p 0.9 or a lower temperature, as in
         * tools/demo, read better and can be set), then [sampling] of rwkvd.conf. */
        m->sampling = sampler_params_for(model_tokenizer(m->model));
        const SamplingConfig *sc = &m->config.sampling;
        if (sc->set & SAMPLING_SET_TEMPERATURE)
                m->sampling.temperature = (float) sc->temperature;
        if (sc->set & SAMPLING_SET_TOP_P)
                m->sampling.top_p = (float) sc->top_p;
        if (sc->set & SAMPLING_SET_TOP_K)
                m->sampling.top_k = sc->top_k;
        if (sc->set & SAMPLING_SET_MIN_P)
                m->sampling.min_p = (float) sc->min_p;
        if (sc->set & SAMPLING_SET_PRESENCE_PENALTY)
                m->sampling.presence_penalty = (float) sc->presence_penalty;
        if (sc->set & SAMPLING_SET_FREQUENCY_PENALTY)
                m->sampling.frequency_penalty = (float) sc->frequency_penalty;
        if (sc->set & SAMPLING_SET_PENALTY_DECAY)
                m->sampling.penalty_decay = (float) sc->penalty_decay;
        if (sampler_params_validate(&m->sampling, &err) < 0)
                return log_error_errno(-EINVAL, "Invalid [sampling] defaults: %s", err.msg);
        log_debug("Sampling defaults: temperature %g, top_p %g, top_k %u, min_p %g, presence %g, frequency %g, decay %g.",
                  (double) m->sampling.temperature, (double) m->sampling.top_p, m->sampling.top_k,
                  (double) m->sampling.min_p, (double) m->sampling.presence_penalty,
                  (double) m->sampling.frequency_penalty, (double) m->sampling.penalty_decay);
        log_info("Loaded %s: %s, %u layers, %u embedding, vocabulary %u, state %zu bytes.", m->info->name,
                 m->info->arch_name, m->info->n_layer, m->info->n_embd, m->info->n_vocab,
                 m->info->state_floats * sizeof(float));

        SchedulerOptions so = {
                .threads = m->config.threads,
                .max_batch = m->config.max_batch,
                .prefill_chunk = m->config.prefill_chunk,
                .prefill_per_step = 2,
                .commit_every = m->config.commit_every_tokens,
                .progress = manager_job_progress,
        };
        r = worker_new(m->event, &m->worker);
        if (r < 0)
                return log_error_errno(r, "Failed to start the I/O thread: %m");
        r = manager_store_open(m);
        if (r < 0)
                return r;

        r = scheduler_new(m->model, &so, m->event, manager_job_done, m, &m->scheduler);
        if (r < 0)
                return log_error_errno(r, "Failed to start the compute thread: %m");

        return manager_bus_setup(m);
}

int manager_run(Manager *m) {
        int r;

        (void) sd_notifyf(false, "READY=1\nSTATUS=Serving %s", m->info->name);
        log_info("Ready.");
        r = sd_event_loop(m->event);
        if (r < 0)
                return log_error_errno(r, "Event loop failed: %m");
        /* A service manager and its admin must learn that sessions were lost. */
        unsigned unsaved = manager_log_unsaved(m);
        if (unsaved > 0)
                return log_error_errno(-EIO, "Exiting: %u session(s) could not be saved.", unsaved);
        if (m->bus_lost)
                return log_error_errno(-ECONNRESET, "Exiting: the bus connection was lost.");
        log_info("Exiting.");
        return 0;
}
