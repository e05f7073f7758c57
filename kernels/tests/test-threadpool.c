/* test-threadpool: every task runs exactly once per call, for any thread and task count, at a high
 * call rate, and the pool's writes are visible to the caller when threadpool_run returns. */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kernels/threadpool.h"
#include "tests/lib/check.h"

typedef struct Job {
        atomic_uint count[1000];
        unsigned plain[1000]; /* non-atomic: checks the happens-before edge at return */
        unsigned n_tasks_seen;
} Job;

static void task_fn(void *ctx, unsigned task, unsigned n_tasks) {
        Job *j = ctx;
        atomic_fetch_add_explicit(&j->count[task], 1, memory_order_relaxed);
        j->plain[task] += task + 1;
        if (n_tasks != j->n_tasks_seen)
                abort();
}

static double now(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void check_pool(ThreadPool *p) {
        static Job j;
        static const unsigned task_counts[] = { 1, 2, 3, 5, 17, 64, 1000 };
        for (size_t c = 0; c < sizeof(task_counts) / sizeof(task_counts[0]); c++) {
                unsigned n = task_counts[c];
                memset(&j, 0, sizeof(j));
                j.n_tasks_seen = n;
                for (int rep = 0; rep < 50; rep++)
                        threadpool_run(p, task_fn, &j, n);
                for (unsigned t = 0; t < 1000; t++) {
                        CHECK(atomic_load(&j.count[t]) == (t < n ? 50u : 0u));
                        CHECK(j.plain[t] == (t < n ? 50u * (t + 1) : 0u));
                }
        }
        threadpool_run(p, task_fn, &j, 0); /* no tasks: returns at once */
        threadpool_run(p, NULL, &j, 3);
}

int main(void) {
        ThreadPool *p = NULL;

        CHECK(threadpool_size(NULL) == 1);
        check_pool(NULL);
        CHECK_ERR(threadpool_new(100000, &p), EINVAL);
        CHECK_ERR(threadpool_new(2, NULL), EINVAL);

        for (unsigned nt = 0; nt <= 4; nt++) {
                CHECK_OK(threadpool_new(nt, &p));
                CHECK(threadpool_size(p) >= 1);
                if (nt)
                        CHECK(threadpool_size(p) == nt);
                check_pool(p);
                p = threadpool_free(p);
                CHECK(!p);
        }

        /* created and freed without a job; and a pool that sleeps before its next job */
        CHECK_OK(threadpool_new(3, &p));
        p = threadpool_free(p);
        CHECK_OK(threadpool_new(2, &p));
        check_pool(p);
        struct timespec ts = { 0, 20 * 1000 * 1000 };
        nanosleep(&ts, NULL);
        check_pool(p);

        /* call rate: the engine runs a job per matrix per layer per token */
        static Job j;
        memset(&j, 0, sizeof(j));
        j.n_tasks_seen = 2;
        const int calls = 20000;
        double t0 = now();
        for (int i = 0; i < calls; i++)
                threadpool_run(p, task_fn, &j, 2);
        double dt = now() - t0;
        CHECK(atomic_load(&j.count[0]) == (unsigned)calls && atomic_load(&j.count[1]) == (unsigned)calls);
        fprintf(stderr, "threadpool_run: %.2f us per call with 2 threads\n", dt / calls * 1e6);
        p = threadpool_free(p);
        return 0;
}
