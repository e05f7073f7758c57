/* threadpool.h: a persistent pool of worker threads; no thread creation per token.
 * A ThreadPool is used by one caller thread at a time (the engine's eval thread). */
#pragma once

typedef struct ThreadPool ThreadPool;

/* Run fn(ctx, i, n_tasks) for i in [0, n_tasks); the calling thread takes part; returns when all
 * tasks finished. n_tasks may exceed the thread count. */
typedef void (*ThreadPoolFn)(void *ctx, unsigned task, unsigned n_tasks);

int threadpool_new(unsigned n_threads, ThreadPool **ret); /* n_threads counts the caller; 0 = online CPUs */
ThreadPool *threadpool_free(ThreadPool *p);               /* NULL-safe, joins the workers */
unsigned threadpool_size(const ThreadPool *p);            /* 1 for a NULL pool (run inline) */
void threadpool_run(ThreadPool *p, ThreadPoolFn fn, void *ctx, unsigned n_tasks); /* p may be NULL */
