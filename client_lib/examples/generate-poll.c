/* generate-poll.c: librwkv-client from an event loop. Starts one generation and prints its text as it
 * arrives, waiting in poll() on rwkv_stream_get_fd() the way a GLib/sd-event/epoll program would.
 *
 *   rwkv-client-example [--user | --address ADDR] PROMPT
 *
 * Build against the installed library: cc generate-poll.c $(pkg-config --cflags --libs rwkv-client) */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>

#include <rwkv/client.h>

int main(int argc, char *argv[]) {
        RwkvClient *client = NULL;
        RwkvGenerateOptions *options = NULL;
        RwkvStream *stream = NULL;
        int bus = RWKV_BUS_SYSTEM, status = 1, r;
        const char *address = NULL;
        int i = 1;

        if (i < argc && strcmp(argv[i], "--user") == 0) {
                bus = RWKV_BUS_USER;
                i++;
        } else if (i + 1 < argc && strcmp(argv[i], "--address") == 0) {
                bus = RWKV_BUS_ADDRESS;
                address = argv[i + 1];
                i += 2;
        }
        if (i + 1 != argc) {
                fprintf(stderr, "usage: %s [--user | --address ADDR] PROMPT\n", argv[0]);
                return 2;
        }

        r = rwkv_client_new(bus, address, &client);
        if (r < 0) {
                fprintf(stderr, "connect: %s\n", strerror(-r));
                return 1;
        }
        r = rwkv_generate_options_new(&options);
        if (r >= 0)
                r = rwkv_generate_options_set_max_tokens(options, 64);
        if (r >= 0)
                r = rwkv_generate_start(client, NULL, argv[i], strlen(argv[i]), options, &stream);
        if (r < 0) {
                fprintf(stderr, "generate: %s (%s)\n", strerror(-r), rwkv_client_get_error_message(client));
                goto finish;
        }

        for (;;) {
                /* Drain everything that is there, then sleep in the event loop. */
                r = rwkv_stream_read(stream, 0);
                if (r == RWKV_EVENT_TEXT) {
                        size_t len;
                        const char *text = rwkv_stream_get_text(stream, &len);
                        fwrite(text, 1, len, stdout);
                        fflush(stdout);
                } else if (r == RWKV_EVENT_END) {
                        uint64_t n = 0;
                        (void)rwkv_stream_get_stat(stream, RWKV_STAT_TOKENS_GENERATED, &n);
                        fprintf(stderr, "\n[%" PRIu64 " tokens]\n", n);
                        status = 0;
                        break;
                } else if (r == RWKV_EVENT_ERROR) {
                        fprintf(stderr, "\nerror: %s: %s\n", strerror(rwkv_stream_get_error(stream)),
                                rwkv_stream_get_error_message(stream));
                        break;
                } else if (r == -EAGAIN) {
                        struct pollfd p = { .fd = rwkv_stream_get_fd(stream), .events = POLLIN };
                        if (poll(&p, 1, -1) < 0 && errno != EINTR)
                                break;
                } else {
                        fprintf(stderr, "read: %s\n", strerror(r < 0 ? -r : EPIPE));
                        break;
                }
        }

finish:
        rwkv_stream_free(stream);
        rwkv_generate_options_free(options);
        rwkv_client_free(client);
        return status;
}
