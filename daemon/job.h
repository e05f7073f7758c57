/* job.h: one generation (a Generate() call) on its way through the scheduler.
 *
 * Created and freed on the main thread. Between scheduler_submit() and its completion callback the
 * compute thread owns every field below "compute thread" and the session's state; the main thread
 * only touches the atomics (cancel, unpark) and its own bus-side fields. */
#pragma once

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#include "daemon/session.h"
#include "daemon/stream.h"
#include "engine/text/sampler.h"
#include "engine/text/stop.h"
#include "engine/text/utf8-stream.h"

typedef enum JobPhase {
        JOB_PREFILL,
        JOB_DECODE,
        JOB_FINISHING,  /* end (or error) record still to be pushed */
        JOB_DONE,
} JobPhase;

typedef struct JobParams {
        SamplerParams sampler;
        bool seed_set;
        uint64_t seed;
        uint32_t max_tokens;
        char **stops;              /* n_stops strings */
        size_t n_stops;
        LogitBias *bias;
        size_t n_bias;
        bool prompt_stream;        /* more prompt arrives through the ring's input direction */
        bool regenerate;           /* rewind to the start of the last turn and feed its prompt again */
        uint64_t max_prompt_bytes;
} JobParams;

typedef struct Manager Manager;
typedef struct Job Job;

struct Job {
        uint64_t id;
        uid_t uid;
        Session *session;          /* busy while the job lives; freed with the job if throwaway */
        Stream *stream;
        JobParams params;
        uint64_t submit_usec;

        /* main thread */
        Manager *manager;
        uint64_t session_tokens;   /* for the end record once session is NULL (waiting for the commit) */
        sd_bus_track *track;       /* the peer that asked: when it leaves, the job is cancelled */
        sd_event_source *wakeup_source;
        Job *mprev, *mnext;

        /* shared */
        atomic_bool cancel;
        atomic_bool abandon;       /* cancel, and do not wait for room for the last record (client gone, exit) */
        atomic_bool unpark;

        /* compute thread */
        JobPhase phase;
        char *prompt;              /* prompt bytes not yet tokenized past prompt_pos (a window of a streamed one) */
        size_t prompt_len, prompt_cap, prompt_pos;
        uint64_t prompt_total;     /* bytes of the whole prompt so far (argument plus stream) */
        bool input_done;           /* no more prompt bytes will come */
        bool parked;
        StopMatcher *stop;
        Utf8Stream utf8;
        uint8_t *out;              /* text waiting for room in the ring */
        size_t out_len, out_cap;
        uint32_t out_token;
        uint32_t stop_reason;      /* RING_STOP_* once decided */
        int error;                 /* negative errno of a failed generation */
        char error_message[512];
        uint64_t prompt_tokens, generated;
        uint64_t start_usec, prefill_done_usec, end_usec;
        Job *next;                 /* scheduler lists */
};

Job *job_free(Job *j);
DEFINE_TRIVIAL_CLEANUP_FUNC(Job *, job_free);
void job_params_done(JobParams *p);
