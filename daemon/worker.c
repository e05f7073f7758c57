/* worker.c: a single I/O thread with a FIFO of work items (see worker.h). */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/eventfd.h>

#include "daemon/worker.h"

typedef struct Work Work;
struct Work {
        WorkFn fn;
        WorkDoneFn done;
        void *userdata;
        int r;
        bool spawned;
        Worker *worker;
        Work *next;
};

struct Worker {
        pthread_mutex_t lock;
        pthread_cond_t cond;
        Work *queue, **queue_tail;   /* to run */
        Work *done, **done_tail;     /* ran, done function pending */
        bool stop;
        atomic_uint pending;         /* submitted, done function not yet run (any thread submits) */
        atomic_uint spawned;         /* worker_spawn() threads still running */
        int fd;
        sd_event_source *source;
        pthread_t thread;
        bool started;
};

static void *worker_thread(void *userdata) {
        Worker *w = userdata;

        pthread_mutex_lock(&w->lock);
        for (;;) {
                while (!w->queue && !w->stop)
                        pthread_cond_wait(&w->cond, &w->lock);
                if (!w->queue)
                        break;
                Work *k = w->queue;
                w->queue = k->next;
                if (!w->queue)
                        w->queue_tail = &w->queue;
                pthread_mutex_unlock(&w->lock);

                k->r = k->fn(k->userdata);

                pthread_mutex_lock(&w->lock);
                k->next = NULL;
                *w->done_tail = k;
                w->done_tail = &k->next;
                uint64_t one = 1;
                (void) !write(w->fd, &one, sizeof(one));
        }
        pthread_mutex_unlock(&w->lock);
        return NULL;
}

static void worker_dispatch_done(Worker *w) {
        Work *list;

        pthread_mutex_lock(&w->lock);
        list = w->done;
        w->done = NULL;
        w->done_tail = &w->done;
        pthread_mutex_unlock(&w->lock);
        while (list) {
                Work *k = list;
                list = k->next;
                if (!k->spawned)
                        atomic_fetch_sub(&w->pending, 1);
                if (k->done)
                        k->done(k->r, k->userdata);
                free(k);
        }
}

static int on_done(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        uint64_t v;
        (void) !read(fd, &v, sizeof(v));
        worker_dispatch_done(userdata);
        return 0;
}

int worker_new(sd_event *event, Worker **ret) {
        _cleanup_(worker_freep) Worker *w = NULL;
        int r;

        w = calloc(1, sizeof(*w));
        if (!w)
                return -ENOMEM;
        pthread_mutex_init(&w->lock, NULL);
        pthread_cond_init(&w->cond, NULL);
        w->queue_tail = &w->queue;
        w->done_tail = &w->done;
        w->fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (w->fd < 0)
                return -errno;
        r = sd_event_add_io(event, &w->source, w->fd, EPOLLIN, on_done, w);
        if (r < 0)
                return r;
        (void) sd_event_source_set_description(w->source, "io-worker-done");
        r = -pthread_create(&w->thread, NULL, worker_thread, w);
        if (r < 0)
                return r;
        w->started = true;
        *ret = TAKE_PTR(w);
        return 0;
}

static void *spawned_thread(void *userdata) {
        Work *k = userdata;
        Worker *w = k->worker;

        k->r = k->fn(k->userdata);
        pthread_mutex_lock(&w->lock);
        k->next = NULL;
        *w->done_tail = k;
        w->done_tail = &k->next;
        uint64_t one = 1;
        (void) !write(w->fd, &one, sizeof(one));
        atomic_fetch_sub(&w->spawned, 1);
        pthread_mutex_unlock(&w->lock);
        return NULL;
}

int worker_spawn(Worker *w, WorkFn fn, WorkDoneFn done, void *userdata) {
        pthread_attr_t attr;
        pthread_t t;
        Work *k;
        int r;

        k = calloc(1, sizeof(*k));
        if (!k)
                return -ENOMEM;
        *k = (Work) { .fn = fn, .done = done, .userdata = userdata, .spawned = true, .worker = w };
        atomic_fetch_add(&w->spawned, 1);
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        r = -pthread_create(&t, &attr, spawned_thread, k);
        pthread_attr_destroy(&attr);
        if (r < 0) {
                atomic_fetch_sub(&w->spawned, 1);
                free(k);
        }
        return r;
}

Worker *worker_free(Worker *w) {
        if (!w)
                return NULL;
        if (w->started) {
                pthread_mutex_lock(&w->lock);
                w->stop = true;
                pthread_cond_signal(&w->cond);
                pthread_mutex_unlock(&w->lock);
                /* The thread drains the queue before it exits: queued commits are not lost. */
                pthread_join(w->thread, NULL);
        }
        worker_dispatch_done(w);
        sd_event_source_disable_unref(w->source);
        w->source = NULL;
        /* A copy to a client that never reads may still run: it owns w until the process exits. */
        pthread_mutex_lock(&w->lock);
        bool busy = atomic_load(&w->spawned) > 0;
        pthread_mutex_unlock(&w->lock);
        if (busy)
                return NULL;
        safe_close(w->fd);
        pthread_cond_destroy(&w->cond);
        pthread_mutex_destroy(&w->lock);
        free(w);
        return NULL;
}

int worker_submit(Worker *w, WorkFn fn, WorkDoneFn done, void *userdata) {
        Work *k = calloc(1, sizeof(*k));
        if (!k)
                return -ENOMEM;
        k->fn = fn;
        k->done = done;
        k->userdata = userdata;
        atomic_fetch_add(&w->pending, 1);
        pthread_mutex_lock(&w->lock);
        *w->queue_tail = k;
        w->queue_tail = &k->next;
        pthread_cond_signal(&w->cond);
        pthread_mutex_unlock(&w->lock);
        return 0;
}

unsigned worker_pending(Worker *w) {
        return w ? atomic_load(&w->pending) : 0;
}
