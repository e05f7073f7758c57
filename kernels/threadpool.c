/* threadpool.c: persistent workers woken per job through a futex, no thread creation per call.
 *
 * One job at a time (the caller is the engine's eval thread). A job is published by bumping
 * `generation`; workers and the caller then claim task indices from `next_task` until none are
 * left, and the caller waits for `active` (workers still inside the job) to drop to zero.
 *
 * Both waits spin briefly first, because the engine runs jobs back to back (every matrix of every
 * layer) and a futex round trip costs more than a small matvec; after the spin they sleep in the
 * kernel, so an idle daemon uses no CPU. Sleepers announce themselves (`n_sleeping`,
 * `caller_sleeping`) so the common no-sleeper case makes no wake-up syscall: each announcement and
 * the matching state change are seq_cst, so either the sleeper sees the change or the waker sees
 * the sleeper (the Dekker pattern). */
#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "kernels/threadpool.h"

#define THREADPOOL_MAX_THREADS 256U
/* About 10-50 µs of polling depending on the CPU: covers the gap between two back-to-back jobs. */
#define SPIN_ITERATIONS 4000

struct ThreadPool {
        unsigned n_threads; /* including the caller */
        pthread_t *threads; /* n_threads - 1 workers */
        unsigned n_started;

        /* job description, written by the caller before `generation` is bumped */
        ThreadPoolFn fn;
        void *ctx;
        unsigned n_tasks;

        _Alignas(64) atomic_uint generation; /* futex word the workers sleep on */
        atomic_uint n_sleeping;
        atomic_bool stop;

        _Alignas(64) atomic_uint next_task;

        _Alignas(64) atomic_uint active; /* futex word the caller sleeps on */
        atomic_uint caller_sleeping;
};

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
        __builtin_ia32_pause();
#elif defined(__aarch64__)
        __asm__ __volatile__("yield" ::: "memory");
#endif
}

static void futex_wait(atomic_uint *addr, unsigned expected) {
        /* EAGAIN (value changed) and EINTR are both "look again" for the callers' loops. */
        (void) syscall(SYS_futex, (unsigned *) addr, FUTEX_WAIT_PRIVATE, expected, NULL, NULL, 0);
}

static void futex_wake_all(atomic_uint *addr) {
        (void) syscall(SYS_futex, (unsigned *) addr, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
}

static void run_tasks(ThreadPool *p) {
        unsigned n = p->n_tasks;
        for (;;) {
                unsigned t = atomic_fetch_add_explicit(&p->next_task, 1, memory_order_relaxed);
                if (t >= n)
                        break;
                p->fn(p->ctx, t, n);
        }
}

static void *worker_main(void *userdata) {
        ThreadPool *p = userdata;
        /* Not a load: the caller may publish the first job before this thread gets to run. */
        unsigned seen = 0;

        for (;;) {
                unsigned g;
                int spins = 0;
                /* acquire pairs with the caller's release of `generation`: the job fields are visible */
                while ((g = atomic_load_explicit(&p->generation, memory_order_acquire)) == seen) {
                        if (++spins < SPIN_ITERATIONS) {
                                cpu_relax();
                                continue;
                        }
                        atomic_fetch_add(&p->n_sleeping, 1); /* seq_cst: pairs with the caller's bump */
                        if (atomic_load(&p->generation) == seen)
                                futex_wait(&p->generation, seen);
                        atomic_fetch_sub(&p->n_sleeping, 1);
                }
                seen = g;
                if (atomic_load_explicit(&p->stop, memory_order_acquire))
                        return NULL;

                run_tasks(p);

                /* release: our tasks' writes happen before the caller returns from threadpool_run */
                if (atomic_fetch_sub(&p->active, 1) == 1 && atomic_load(&p->caller_sleeping))
                        futex_wake_all(&p->active);
        }
}

static void publish(ThreadPool *p) {
        atomic_fetch_add(&p->generation, 1); /* seq_cst (release for the job fields) */
        if (atomic_load(&p->n_sleeping) > 0)
                futex_wake_all(&p->generation);
}

static unsigned online_cpus(void) {
        cpu_set_t set;
        if (sched_getaffinity(0, sizeof(set), &set) == 0 && CPU_COUNT(&set) > 0)
                return (unsigned) CPU_COUNT(&set);
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        return n > 0 ? (unsigned) n : 1;
}

int threadpool_new(unsigned n_threads, ThreadPool **ret) {
        if (!ret)
                return -EINVAL;
        if (n_threads == 0)
                n_threads = online_cpus();
        if (n_threads > THREADPOOL_MAX_THREADS)
                return -EINVAL;

        ThreadPool *p = calloc(1, sizeof(*p));
        if (!p)
                return -ENOMEM;
        p->n_threads = n_threads;
        if (n_threads > 1) {
                p->threads = calloc(n_threads - 1, sizeof(pthread_t));
                if (!p->threads) {
                        free(p);
                        return -ENOMEM;
                }
        }

        /* Workers never handle signals: the daemon takes them on its main thread (signalfd). */
        sigset_t all, old;
        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &old);
        int r = 0;
        for (unsigned i = 0; i + 1 < n_threads; i++) {
                r = -pthread_create(&p->threads[i], NULL, worker_main, p);
                if (r < 0)
                        break;
                (void) pthread_setname_np(p->threads[i], "rwkv-worker");
                p->n_started++;
        }
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        if (r < 0) {
                threadpool_free(p);
                return r;
        }

        *ret = p;
        return 0;
}

ThreadPool *threadpool_free(ThreadPool *p) {
        if (!p)
                return NULL;
        atomic_store_explicit(&p->stop, true, memory_order_release);
        publish(p);
        for (unsigned i = 0; i < p->n_started; i++)
                pthread_join(p->threads[i], NULL);
        free(p->threads);
        free(p);
        return NULL;
}

unsigned threadpool_size(const ThreadPool *p) {
        return p ? p->n_threads : 1;
}

void threadpool_run(ThreadPool *p, ThreadPoolFn fn, void *ctx, unsigned n_tasks) {
        if (n_tasks == 0 || !fn)
                return;
        if (!p || p->n_threads == 1 || n_tasks == 1) {
                for (unsigned t = 0; t < n_tasks; t++)
                        fn(ctx, t, n_tasks);
                return;
        }

        p->fn = fn;
        p->ctx = ctx;
        p->n_tasks = n_tasks;
        atomic_store_explicit(&p->next_task, 0, memory_order_relaxed);
        atomic_store_explicit(&p->active, p->n_threads - 1, memory_order_relaxed);
        atomic_store_explicit(&p->caller_sleeping, 0, memory_order_relaxed);
        publish(p);

        run_tasks(p);

        int spins = 0;
        unsigned a;
        /* acquire pairs with the workers' decrements: their tasks' writes are visible after the loop */
        while ((a = atomic_load_explicit(&p->active, memory_order_acquire)) != 0) {
                if (++spins < SPIN_ITERATIONS) {
                        cpu_relax();
                        continue;
                }
                atomic_store(&p->caller_sleeping, 1); /* seq_cst: pairs with the last worker's decrement */
                if ((a = atomic_load(&p->active)) != 0)
                        futex_wait(&p->active, a);
        }
}
