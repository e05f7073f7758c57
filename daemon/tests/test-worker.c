/* test-worker.c: the I/O worker runs work in submission order on its own thread and hands every
 * result back on the event loop's thread; freeing it finishes queued work. */
#include <pthread.h>
#include <systemd/sd-event.h>

#include "daemon/worker.h"
#include "tests/lib/check.h"

#define N 200

static pthread_t main_thread;
static int order[N], n_ran, n_done;
static sd_event *loop;

typedef struct Item {
        int index;
        pthread_t ran_on;
} Item;

static Item items[N];

static int run(void *userdata) {
        Item *it = userdata;
        it->ran_on = pthread_self();
        order[n_ran++] = it->index; /* only the worker thread writes this */
        return it->index % 7 == 0 ? -EIO : it->index;
}

static void done(int r, void *userdata) {
        Item *it = userdata;
        CHECK(pthread_equal(pthread_self(), main_thread));
        CHECK(!pthread_equal(it->ran_on, main_thread));
        CHECK(r == (it->index % 7 == 0 ? -EIO : it->index));
        if (++n_done == N)
                (void) sd_event_exit(loop, 0);
}

int main(void) {
        Worker *w = NULL;

        main_thread = pthread_self();
        CHECK_OK(sd_event_new(&loop));
        CHECK_OK(worker_new(loop, &w));
        for (int i = 0; i < N; i++) {
                items[i].index = i;
                CHECK_OK(worker_submit(w, run, done, &items[i]));
        }
        CHECK(worker_pending(w) > 0);
        CHECK_OK(sd_event_loop(loop));
        CHECK(n_done == N && worker_pending(w) == 0);
        for (int i = 0; i < N; i++)
                CHECK(order[i] == i);

        /* Work still queued when the worker is freed runs to the end (commits are not lost). */
        n_ran = n_done = 0;
        for (int i = 0; i < 10; i++)
                CHECK_OK(worker_submit(w, run, done, &items[i]));
        w = worker_free(w);
        CHECK(n_ran == 10 && n_done == 10);
        sd_event_unref(loop);
        return 0;
}
