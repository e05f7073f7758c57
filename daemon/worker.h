/* worker.h: the I/O thread. Disk work (the session store: compression, encryption, fsync) runs here
 * in submission order, so two operations on one session never overlap; each result comes back to
 * the main thread through a queue and an eventfd sd-event source. */
#pragma once

#include <systemd/sd-event.h>

#include "engine/common/macros.h"

typedef struct Worker Worker;

/* Runs on the I/O thread; returns 0 or negative errno, which is passed to the done function. */
typedef int (*WorkFn)(void *userdata);
/* Runs on the main thread with the work's result; owns userdata again. */
typedef void (*WorkDoneFn)(int r, void *userdata);

int worker_new(sd_event *event, Worker **ret);
/* Finishes the queued work (running the done functions only if the loop still runs), joins. */
Worker *worker_free(Worker *w);
DEFINE_TRIVIAL_CLEANUP_FUNC(Worker *, worker_free);

/* Any thread may submit (the compute thread does, for checkpoints of long generations); the done
 * function always runs on the main thread. */
int worker_submit(Worker *w, WorkFn fn, WorkDoneFn done, void *userdata);
/* Runs fn on a thread of its own (for work that may block on a peer, like copying to a client's
 * pipe), so it never holds up the queue; done still runs on the main thread. Not counted by
 * worker_pending(): shutdown does not wait for a client that never reads. */
int worker_spawn(Worker *w, WorkFn fn, WorkDoneFn done, void *userdata);

/* Work submitted whose done function has not run yet. */
unsigned worker_pending(Worker *w);
