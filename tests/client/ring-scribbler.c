/* ring-scribbler.c: a hostile client for test-online.py. Starts a long generation over raw sd-bus,
 * lets it fill part of the ring, then scribbles over the shared page (MODE "indices": an impossible
 * consumer index; "random": random words over our block and both data rings), wakes the daemon and
 * waits for it to end the stream. Exit 0 when the daemon closed the ring (printing its error), 1 when
 * it did not within 20 s, 77 when the setup is missing.
 *
 *   ring-scribbler ADDRESS indices|random */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <systemd/sd-bus.h>
#include <time.h>
#include <unistd.h>

#include "protocol/bus.h"
#include "protocol/ring.h"

static double now(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int main(int argc, char *argv[]) {
        sd_bus *bus = NULL;
        sd_bus_message *m = NULL, *reply = NULL;
        sd_bus_error error = SD_BUS_ERROR_NULL;
        uint64_t job;
        int ring_fd, cw, dw, r;
        struct stat st;

        if (argc != 3 || (strcmp(argv[2], "indices") != 0 && strcmp(argv[2], "random") != 0)) {
                fprintf(stderr, "usage: %s ADDRESS indices|random\n", argv[0]);
                return 2;
        }
        bool random_mode = strcmp(argv[2], "random") == 0;
        if (sd_bus_new(&bus) < 0 || sd_bus_set_address(bus, argv[1]) < 0 || sd_bus_set_bus_client(bus, 1) < 0 ||
            sd_bus_negotiate_fds(bus, 1) < 0 || sd_bus_start(bus) < 0) {
                fprintf(stderr, "cannot connect to %s\n", argv[1]);
                return 77;
        }
        r = sd_bus_message_new_method_call(bus, &m, RWKV_BUS_NAME, RWKV_BUS_PATH, RWKV_BUS_INTERFACE, "Generate");
        if (r >= 0)
                r = sd_bus_message_append(m, "ssa{sv}", "", "Once upon a time", 1, "max_tokens", "u", 1000000);
        if (r >= 0)
                r = sd_bus_call(bus, m, 0, &error, &reply);
        if (r < 0) {
                fprintf(stderr, "Generate failed: %s\n", error.message ? error.message : strerror(-r));
                return 1;
        }
        r = sd_bus_message_read(reply, "thhh", &job, &ring_fd, &cw, &dw);
        if (r < 0 || fstat(ring_fd, &st) < 0) {
                fprintf(stderr, "bad Generate reply\n");
                return 1;
        }
        uint8_t *map = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, ring_fd, 0);
        if (map == MAP_FAILED) {
                perror("mmap");
                return 1;
        }
        RingShared *sh = (RingShared *)map;
        RingHeader h = sh->header;

        /* Wait for some output, without reading it. */
        double deadline = now() + 20;
        while (__atomic_load_n(&sh->daemon.out_tail, __ATOMIC_ACQUIRE) < 256 && now() < deadline) {
                __atomic_fetch_or(&sh->client.flags, RING_FLAG_NEED_WAKEUP, __ATOMIC_SEQ_CST);
                struct pollfd p = { .fd = cw, .events = POLLIN };
                (void)poll(&p, 1, 100);
                uint64_t v;
                (void)!read(cw, &v, sizeof(v));
        }

        srand(1234);
        if (random_mode) {
                /* Our own block and everything in both rings: the daemon must not care. */
                uint32_t *client_block = (uint32_t *)(void *)&sh->client;
                for (int i = 0; i < 100000; i++) {
                        int where = rand() % 3;
                        /* Indices and the spare word; the flags word stays, so a transient CLOSED bit
                         * cannot turn this into an orderly hang-up. */
                        if (where == 0)
                                client_block[(int[]){ 0, 1, 3 }[rand() % 3]] = (uint32_t)rand() * 2654435761u;
                        else if (where == 1)
                                map[h.out_offset + (uint32_t)rand() % h.out_size] = (uint8_t)rand();
                        else
                                map[h.in_offset + (uint32_t)rand() % h.in_size] = (uint8_t)rand();
                }
                /* Leave an impossible index at the end, so the outcome is certain. */
                __atomic_store_n(&sh->client.out_head, sh->daemon.out_tail + h.out_size + 8, __ATOMIC_RELEASE);
        } else
                __atomic_store_n(&sh->client.out_head, sh->daemon.out_tail + 0x10000000u, __ATOMIC_RELEASE);
        uint64_t one = 1;
        (void)!write(dw, &one, sizeof(one));

        deadline = now() + 20;
        while (!(__atomic_load_n(&sh->daemon.flags, __ATOMIC_ACQUIRE) & RING_FLAG_CLOSED) && now() < deadline) {
                struct pollfd p = { .fd = cw, .events = POLLIN };
                (void)poll(&p, 1, 100);
                uint64_t v;
                (void)!read(cw, &v, sizeof(v));
        }
        if (!(__atomic_load_n(&sh->daemon.flags, __ATOMIC_ACQUIRE) & RING_FLAG_CLOSED)) {
                fprintf(stderr, "the daemon did not end the scribbled stream\n");
                return 1;
        }
        printf("closed error=%d\n", sh->daemon.error);
        sd_bus_message_unref(reply);
        sd_bus_message_unref(m);
        sd_bus_flush_close_unref(bus);
        return 0;
}
