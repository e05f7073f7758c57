/* threadpool.c: persistent workers woken per job through a futex, no thread creation per call.
 *
 * One job at a time (the caller is the engine's eval thread). The caller publishes a job by setting
 * its fields, opening it (`open`) and bumping `generation`; the caller and whichever workers are
 * awake claim task indices from `next_task`, and the caller returns once `done` reaches n_tasks.
 * It never waits for a worker that is asleep or descheduled and has claimed nothing: on a loaded
 * machine the caller simply does every task itself.
 *
 * A worker touches the job fields only between `inside++` and `inside--`, and only after it saw
 * `open`; the caller closes the job and waits for `inside == 0` before it may rewrite the fields.
 * `inside` and `open` are seq_cst on both sides (the Dekker pattern): either the worker sees the
 * job closed, or the caller sees the worker inside. The window is a few instructions long, except
 * when a worker is preempted inside it, in which case the caller yields to it.
 *
 * Waits spin for a few microseconds first, because the engine runs jobs back to back (every matrix
 * of every layer) and a futex round trip costs more than a small matvec; then they sleep in the
 * kernel, so an idle daemon uses no CPU. Sleepers announce themselves (`n_sleeping`,
 * `caller_sleeping`, again seq_cst against the state change), so the common case makes no syscall. */
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
#include <time.h>
#include <unistd.h>

#include "kernels/threadpool.h"

#define THREADPOOL_MAX_THREADS 256U
/* How long a waiter polls before it sleeps: covers the gap between two back-to-back jobs. */
#define SPIN_NS 30000

struct ThreadPool {
        unsigned n_threads; /* including the caller */
        pthread_t *threads; /* n_threads - 1 workers */
        unsigned n_started;

        /* the job, rewritten only while it is closed and nobody is inside */
        _Atomic(ThreadPoolFn) fn;
        _Atomic(void *) ctx;
        atomic_uint n_tasks;

        _Alignas(64) atomic_uint generation; /* futex word the workers sleep on */
        atomic_uint n_sleeping;
        atomic_bool open;
        atomic_bool stop;
        atomic_uint inside;

        _Alignas(64) atomic_uint next_task;

        _Alignas(64) atomic_uint done; /* futex word the caller sleeps on */
        atomic_uint caller_sleeping;
};

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
        __builtin_ia32_pause();
#elif defined(__aarch64__)
        __asm__ __volatile__("yield" ::: "memory");
#endif
}

static uint64_t now_ns(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Polls until cond or SPIN_NS passed; the clock is read once per 64 polls (vDSO, ~20 ns). */
#define SPIN_UNTIL(cond)                                                                                               \
        ({                                                                                                             \
                bool _ok = false;                                                                                      \
                uint64_t _t0 = 0;                                                                                      \
                for (unsigned _i = 0;; _i++) {                                                                         \
                        if (cond) {                                                                                    \
                                _ok = true;                                                                            \
                                break;                                                                                 \
                        }                                                                                              \
                        if ((_i & 63) == 0) {                                                                          \
                                uint64_t _t = now_ns();                                                                \
                                if (_i == 0)                                                                           \
                                        _t0 = _t;                                                                      \
                                else if (_t - _t0 > SPIN_NS)                                                           \
                                        break;                                                                         \
                        }                                                                                              \
                        cpu_relax();                                                                                   \
                }                                                                                                      \
                _ok;                                                                                                   \
        })

static void futex_wait(atomic_uint *addr, unsigned expected) {
        /* EAGAIN (value changed) and EINTR are both "look again" for the callers' loops. */
        (void)syscall(SYS_futex, (unsigned *)addr, FUTEX_WAIT_PRIVATE, expected, NULL, NULL, 0);
}

static void futex_wake_all(atomic_uint *addr) {
        (void)syscall(SYS_futex, (unsigned *)addr, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
}

/* Claims and runs tasks of the open job until none are left. */
static void run_tasks(ThreadPool *p, bool is_caller) {
        ThreadPoolFn fn = atomic_load_explicit(&p->fn, memory_order_relaxed);
        void *ctx = atomic_load_explicit(&p->ctx, memory_order_relaxed);
        unsigned n = atomic_load_explicit(&p->n_tasks, memory_order_relaxed);

        for (;;) {
                unsigned t = atomic_fetch_add_explicit(&p->next_task, 1, memory_order_relaxed);
                if (t >= n)
                        return;
                fn(ctx, t, n);
                /* release: the task's writes happen before the caller's acquire of `done` */
                unsigned d = atomic_fetch_add(&p->done, 1) + 1;
                if (d == n && !is_caller && atomic_load(&p->caller_sleeping))
                        futex_wake_all(&p->done);
        }
}

static void *worker_main(void *userdata) {
        ThreadPool *p = userdata;
        /* Not a load: the caller may publish the first job before this thread gets to run. */
        unsigned seen = 0;

        for (;;) {
                unsigned g;
                while ((g = atomic_load_explicit(&p->generation, memory_order_acquire)) == seen) {
                        if (SPIN_UNTIL(atomic_load_explicit(&p->generation, memory_order_relaxed) != seen))
                                continue;
                        atomic_fetch_add(&p->n_sleeping, 1); /* seq_cst: pairs with publish() */
                        if (atomic_load(&p->generation) == seen)
                                futex_wait(&p->generation, seen);
                        atomic_fetch_sub(&p->n_sleeping, 1);
                }
                seen = g;
                if (atomic_load(&p->stop))
                        return NULL;

                atomic_fetch_add(&p->inside, 1);
                if (atomic_load(&p->open)) /* acquire: the job fields were written before it opened */
                        run_tasks(p, false);
                atomic_fetch_sub(&p->inside, 1);
        }
}

static void publish(ThreadPool *p) {
        atomic_fetch_add(&p->generation, 1); /* seq_cst: pairs with the sleepers' n_sleeping++ */
        if (atomic_load(&p->n_sleeping) > 0)
                futex_wake_all(&p->generation);
}

static unsigned online_cpus(void) {
        cpu_set_t set;
        if (sched_getaffinity(0, sizeof(set), &set) == 0 && CPU_COUNT(&set) > 0)
                return (unsigned)CPU_COUNT(&set);
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        return n > 0 ? (unsigned)n : 1;
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
                (void)pthread_setname_np(p->threads[i], "rwkv-worker");
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
        atomic_store(&p->stop, true);
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

        /* Closed, and nobody inside (checked at the end of the previous job): safe to rewrite. */
        atomic_store_explicit(&p->fn, fn, memory_order_relaxed);
        atomic_store_explicit(&p->ctx, ctx, memory_order_relaxed);
        atomic_store_explicit(&p->n_tasks, n_tasks, memory_order_relaxed);
        atomic_store_explicit(&p->next_task, 0, memory_order_relaxed);
        atomic_store_explicit(&p->done, 0, memory_order_relaxed);
        atomic_store_explicit(&p->caller_sleeping, 0, memory_order_relaxed);
        atomic_store(&p->open, true); /* release for the fields above */
        publish(p);

        run_tasks(p, true);

        /* acquire on `done` pairs with each task's increment: every task's writes are visible */
        unsigned d;
        while ((d = atomic_load(&p->done)) != n_tasks) {
                if (SPIN_UNTIL(atomic_load_explicit(&p->done, memory_order_relaxed) == n_tasks))
                        continue;
                atomic_store(&p->caller_sleeping, 1); /* seq_cst: pairs with the last task's increment */
                if ((d = atomic_load(&p->done)) != n_tasks)
                        futex_wait(&p->done, d);
        }

        atomic_store(&p->open, false);
        while (atomic_load(&p->inside) != 0)
                sched_yield(); /* a worker preempted between inside++ and its check of `open` */
}
