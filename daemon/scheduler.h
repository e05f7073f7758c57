/* scheduler.h: the compute thread: continuous batching of every running generation.
 *
 * Each step: every decoding job samples one token and all of them go through ONE model_eval_batch()
 * call; prefilling jobs get one chunk each (model_eval_sequence on <= prefill_chunk tokens), a few
 * per step, round-robin across uids, so a huge prompt never freezes anyone's stream. Jobs join and
 * leave between steps. A job whose ring is full parks (the others go on) until its client makes room.
 * Finished jobs come back to the main thread through a queue and an eventfd sd-event source. */
#pragma once

#include <stdint.h>
#include <systemd/sd-event.h>

#include "daemon/job.h"
#include "engine/arch/model.h"

typedef struct Scheduler Scheduler;

/* Called on the main thread for each job the compute thread is done with (its text is in the ring,
 * with room left for the last record, or the client is gone); the callee owns the job again, and
 * calls scheduler_push_last() once it has released the job's session. */
typedef void (*SchedulerDoneFn)(Job *job, void *userdata);

typedef struct SchedulerOptions {
        unsigned threads;          /* compute threads (the pool counts the scheduler thread); 0: all CPUs */
        unsigned max_batch;        /* most decoding jobs per step (more wait for the next step) */
        unsigned prefill_chunk;    /* prompt tokens per prefill call */
        unsigned prefill_per_step; /* prefill calls per step */
        unsigned commit_every;     /* call progress every N generated tokens (0: never) */
        /* Runs on the compute thread, between steps, while it owns the job's session. */
        void (*progress)(Job *job, void *userdata);
} SchedulerOptions;

typedef struct SchedulerStats {
        uint32_t running, queued, parked;
        uint64_t tokens_total;     /* generated tokens since start */
        uint64_t prompt_tokens_total;
        double tokens_per_second;  /* generated, over the last few seconds */
        /* model steps that generated tokens (tokens_total / decode_steps is the mean batch), and the
         * most sessions one of them decoded at once */
        uint64_t decode_steps;
        uint32_t decode_batch_max;
} SchedulerStats;

int scheduler_new(const Model *model, const SchedulerOptions *opts, sd_event *event, SchedulerDoneFn done,
                  void *userdata, Scheduler **ret);
/* Joins the compute thread; jobs still inside are cancelled and handed to the done callback first
 * only when the event loop runs, so call scheduler_drain() before freeing. NULL-safe. */
Scheduler *scheduler_free(Scheduler *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(Scheduler *, scheduler_free);

/* Hand a job to the compute thread (main thread). */
void scheduler_submit(Scheduler *s, Job *job);
/* Ask a job to stop at the next token boundary (any thread); its session keeps the state reached. */
void scheduler_cancel(Scheduler *s, Job *job);
/* Cancel a job whose client is gone (or that the daemon cannot wait for, at exit): a full ring
 * then ends the stream without its last record instead of parking until the client reads. A
 * cancelled job that is not abandoned waits for room for its end record like any other. */
void scheduler_abandon(Scheduler *s, Job *job);
/* The job's client made room or sent input (main thread, from the wake-up eventfd). */
void scheduler_unpark(Scheduler *s, Job *job);
void scheduler_get_stats(Scheduler *s, SchedulerStats *ret);
/* Main thread, from the done callback: push the job's end or error record (never blocks: the
 * compute thread made room for it). A no-op on a stream that is already over. */
void scheduler_push_last(Job *job);
/* Jobs submitted whose completion has not been delivered yet. */
unsigned scheduler_jobs(Scheduler *s);
const char *scheduler_isa(Scheduler *s);
