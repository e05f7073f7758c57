/* bench-ring.c: what the token ring costs. For 1, 8 and 64 concurrent streams:
 *
 *   inproc   one producer thread (the daemon's compute thread: daemon/stream.c) feeds N streams, N
 *            consumer threads (the clients: client_lib/src/ring-client.c) sleep on their eventfds.
 *            Throughput: unpaced, tokens/s through all rings. Latency: paced steps (one token per
 *            stream every --step-us), delivery overhead = client read time - daemon push time.
 *   daemon   N librwkv-client connections to a running rwkvd (--address ADDR): the same delivery
 *            overhead measured on real generations (the ring stamps each token when it is pushed,
 *            after sampling, so read - stamp is the part the ring and the wake-up add to the
 *            in-process latency), plus aggregate tokens/s.
 *
 *   bench-ring [--tokens N] [--step-us U] [--streams 1,8,64]                 (inproc)
 *   bench-ring --address ADDR [--tokens N] [--streams 1,8,64]                (daemon) */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <rwkv/client.h>

#include "client_lib/src/ring-client.h"
#include "daemon/stream.h"

static uint64_t now_ns(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int cmp_u64(const void *a, const void *b) {
        uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
        return x < y ? -1 : x > y;
}

typedef struct Lat {
        uint64_t *v;
        size_t n, cap;
} Lat;

static void lat_add(Lat *l, uint64_t x) {
        if (l->n == l->cap) {
                l->cap = l->cap ? l->cap * 2 : 4096;
                l->v = realloc(l->v, l->cap * sizeof(*l->v));
                if (!l->v)
                        abort();
        }
        l->v[l->n++] = x;
}

static void lat_report(const char *what, unsigned streams, Lat *all, double tokens_per_s) {
        printf("%-8s streams=%-3u tokens/s=%-11.0f", what, streams, tokens_per_s);
        if (all->n > 0) {
                qsort(all->v, all->n, sizeof(*all->v), cmp_u64);
                printf(" overhead_p50_us=%-8.1f overhead_p99_us=%-8.1f samples=%zu\n",
                       (double)all->v[all->n / 2] / 1000.0, (double)all->v[(size_t)((double)all->n * 0.99)] / 1000.0,
                       all->n);
        } else
                printf(" (throughput only: latency is measured in the paced runs)\n");
        fflush(stdout);
}

/* ---- in-process ---- */

typedef struct Consumer {
        RingClient rc;
        uint64_t expect;
        Lat lat;
        bool measure;
} Consumer;

static void *consumer_main(void *arg) {
        Consumer *c = arg;
        static __thread uint8_t payload[RING_RECORD_PAYLOAD_MAX];
        for (;;) {
                RingRecord rec;
                int derr, r = ring_client_next(&c->rc, &rec, payload, &derr);
                if (r == -EAGAIN) {
                        if (ring_client_wait(&c->rc, RING_WAIT_READ, 30000) < 0)
                                abort();
                        continue;
                }
                if (r != 1 || rec.type == RING_RECORD_END)
                        break;
                RingText t;
                memcpy(&t, payload, sizeof(t));
                if (c->measure)
                        lat_add(&c->lat, now_ns() - t.time_ns);
        }
        return NULL;
}

static void run_inproc(unsigned n, uint64_t tokens_per_stream, uint64_t step_ns) {
        Stream **s = calloc(n, sizeof(*s));
        Consumer *c = calloc(n, sizeof(*c));
        pthread_t *th = calloc(n, sizeof(*th));
        bool paced = step_ns > 0;

        for (unsigned i = 0; i < n; i++) {
                int ring, cw, dw;
                if (stream_new(0, &s[i]) < 0)
                        abort();
                stream_get_client_fds(s[i], &ring, &cw, &dw);
                if (ring_client_attach(&c[i].rc, dup(ring), dup(cw), dup(dw)) < 0)
                        abort();
                c[i].measure = paced;
                pthread_create(&th[i], NULL, consumer_main, &c[i]);
        }

        uint64_t t0 = now_ns(), next = t0;
        for (uint64_t k = 0; k < tokens_per_stream; k++) {
                if (paced) {
                        next += step_ns;
                        struct timespec ts = { .tv_sec = (time_t)(next / 1000000000u),
                                               .tv_nsec = (long)(next % 1000000000u) };
                        clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
                }
                for (unsigned i = 0; i < n; i++) {
                        int r;
                        /* A full ring: the daemon would park the job; here wait for the reader. */
                        while ((r = stream_push_text(s[i], (uint32_t)k, "tok", 3)) == -EAGAIN) {
                                struct pollfd p = { .fd = stream_get_daemon_wakeup_fd(s[i]), .events = POLLIN };
                                poll(&p, 1, 1000);
                                stream_process_wakeup(s[i]);
                        }
                        if (r < 0)
                                abort();
                }
        }
        for (unsigned i = 0; i < n; i++)
                while (stream_push_end(s[i], NULL) == -EAGAIN)
                        usleep(100);
        for (unsigned i = 0; i < n; i++)
                pthread_join(th[i], NULL);
        double secs = (double)(now_ns() - t0) / 1e9;

        Lat all = {};
        for (unsigned i = 0; i < n; i++) {
                for (size_t j = 0; j < c[i].lat.n; j++)
                        lat_add(&all, c[i].lat.v[j]);
                free(c[i].lat.v);
                ring_client_done(&c[i].rc);
                stream_free(s[i]);
        }
        lat_report(paced ? "paced" : "unpaced", n, &all, (double)(tokens_per_stream * n) / secs);
        free(all.v);
        free(s);
        free(c);
        free(th);
}

/* ---- against rwkvd ---- */

typedef struct Client {
        const char *address;
        uint32_t tokens;
        Lat lat;
        uint64_t got, generate_usec;
        int error;
} Client;

static void *client_main(void *arg) {
        Client *c = arg;
        RwkvClient *client = NULL;
        RwkvGenerateOptions *o = NULL;
        RwkvStream *s = NULL;
        int r = rwkv_client_new(RWKV_BUS_ADDRESS, c->address, &client);
        if (r >= 0)
                r = rwkv_generate_options_new(&o);
        if (r >= 0)
                r = rwkv_generate_options_set_max_tokens(o, c->tokens);
        if (r >= 0)
                r = rwkv_generate_start(client, NULL, "The", 3, o, &s);
        while (r >= 0) {
                r = rwkv_stream_read(s, -1);
                if (r == RWKV_EVENT_TEXT) {
                        lat_add(&c->lat, now_ns() - rwkv_stream_get_time_ns(s));
                        c->got++;
                } else if (r == RWKV_EVENT_END) {
                        (void)rwkv_stream_get_stat(s, RWKV_STAT_GENERATE_USEC, &c->generate_usec);
                        break;
                } else {
                        r = r < 0 ? r : -rwkv_stream_get_error(s);
                        break;
                }
        }
        c->error = r < 0 ? r : 0;
        rwkv_stream_free(s);
        rwkv_generate_options_free(o);
        rwkv_client_free(client);
        return NULL;
}

static int run_daemon(const char *address, unsigned n, uint32_t tokens) {
        Client *c = calloc(n, sizeof(*c));
        pthread_t *th = calloc(n, sizeof(*th));
        uint64_t t0 = now_ns(), total = 0, gen_usec = 0;
        for (unsigned i = 0; i < n; i++) {
                c[i] = (Client){ .address = address, .tokens = tokens };
                pthread_create(&th[i], NULL, client_main, &c[i]);
        }
        Lat all = {};
        int err = 0;
        for (unsigned i = 0; i < n; i++) {
                pthread_join(th[i], NULL);
                if (c[i].error && !err)
                        err = c[i].error;
                for (size_t j = 0; j < c[i].lat.n; j++)
                        lat_add(&all, c[i].lat.v[j]);
                total += c[i].got;
                gen_usec = c[i].generate_usec > gen_usec ? c[i].generate_usec : gen_usec;
                free(c[i].lat.v);
        }
        double secs = (double)(now_ns() - t0) / 1e9;
        if (err)
                fprintf(stderr, "bench-ring: a client failed: %s\n", strerror(-err));
        lat_report("daemon", n, &all, (double)total / secs);
        if (total > 0 && gen_usec > 0)
                printf("         in-process decode: %.1f us per step (longest stream's generate_usec / its tokens)\n",
                       (double)gen_usec / (double)(total / n));
        free(all.v);
        free(c);
        free(th);
        return err;
}

int main(int argc, char *argv[]) {
        static const struct option options[] = {
                { "address", required_argument, NULL, 'a' },
                { "tokens", required_argument, NULL, 't' },
                { "step-us", required_argument, NULL, 's' },
                { "streams", required_argument, NULL, 'n' },
                {},
        };
        const char *address = NULL;
        uint64_t tokens = 0, step_us = 200;
        unsigned counts[16] = { 1, 8, 64 };
        size_t n_counts = 3;
        int opt;
        while ((opt = getopt_long(argc, argv, "", options, NULL)) >= 0)
                switch (opt) {
                case 'a':
                        address = optarg;
                        break;
                case 't':
                        tokens = strtoull(optarg, NULL, 0);
                        break;
                case 's':
                        step_us = strtoull(optarg, NULL, 0);
                        break;
                case 'n': {
                        char *p = optarg, *end;
                        n_counts = 0;
                        do {
                                unsigned long v = strtoul(p, &end, 10);
                                if (end == p || v == 0 || v > 1024 || n_counts == 16) {
                                        fprintf(stderr,
                                                "bench-ring: --streams: a list of counts 1-1024, e.g. 1,8,64\n");
                                        return 2;
                                }
                                counts[n_counts++] = (unsigned)v;
                                p = end + 1;
                        } while (*end == ',');
                        if (*end) {
                                fprintf(stderr, "bench-ring: --streams: a list of counts 1-1024, e.g. 1,8,64\n");
                                return 2;
                        }
                        break;
                }
                default:
                        return 2;
                }
        if (address) {
                int r = 0;
                for (size_t i = 0; i < n_counts; i++)
                        r |= run_daemon(address, counts[i], tokens ? (uint32_t)tokens : 200);
                return r ? 1 : 0;
        }
        for (size_t i = 0; i < n_counts; i++)
                run_inproc(counts[i], tokens ? tokens : 200000 / counts[i], 0);
        for (size_t i = 0; i < n_counts; i++)
                run_inproc(counts[i], tokens ? tokens / 10 : 2000, step_us * 1000);
        return 0;
}
