/* slow-reader.c: a librwkv-client reader that sleeps between reads (test-online.py's slow client).
 * Starts a long generation and reads one event per DELAY_MS until SIGTERM or the end; prints how
 * many text events it read. Exit 0 when stopped by SIGTERM or at the end, 1 on errors.
 *
 *   slow-reader ADDRESS DELAY_MS */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <rwkv/client.h>

static volatile sig_atomic_t stop = 0;

static void on_term(int sig) {
        stop = 1;
}

int main(int argc, char *argv[]) {
        RwkvClient *c = NULL;
        RwkvGenerateOptions *o = NULL;
        RwkvStream *s = NULL;
        unsigned long events = 0;
        int r;

        if (argc != 3) {
                fprintf(stderr, "usage: %s ADDRESS DELAY_MS\n", argv[0]);
                return 2;
        }
        long delay_ms = strtol(argv[2], NULL, 10);
        struct sigaction sa = { .sa_handler = on_term };
        sigaction(SIGTERM, &sa, NULL);

        r = rwkv_client_new(RWKV_BUS_ADDRESS, argv[1], &c);
        if (r >= 0)
                r = rwkv_generate_options_new(&o);
        if (r >= 0)
                r = rwkv_generate_options_set_max_tokens(o, 1000000);
        if (r >= 0)
                r = rwkv_generate_start(c, NULL, "Slow", 4, o, &s);
        if (r < 0) {
                fprintf(stderr, "slow-reader: %s (%s)\n", strerror(-r), rwkv_client_get_error_message(c));
                return 1;
        }
        printf("started\n");
        fflush(stdout);
        while (!stop) {
                r = rwkv_stream_read(s, -1);
                if (r == -EINTR)
                        continue;
                if (r != RWKV_EVENT_TEXT)
                        break;
                events++;
                nanosleep(&(struct timespec){ .tv_nsec = delay_ms * 1000000L }, NULL);
        }
        printf("events %lu\n", events);
        rwkv_stream_free(s);
        rwkv_generate_options_free(o);
        rwkv_client_free(c);
        return r < 0 && r != -EINTR ? 1 : 0;
}
