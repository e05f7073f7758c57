/* fuzz-ring.c: both ends of the ring against hostile shared memory.
 *
 * Input: 16 bytes for the daemon's block (what a client reads: out_tail, in_head, flags, error),
 * 16 bytes for the client's block (what the daemon reads: out_head, in_tail, flags, reserved), then
 * up to 16 KiB of ring data, placed in the out ring (for the client) and the in ring (for the
 * daemon). The client must report records or -EBADMSG, the daemon 0/-EAGAIN/-EBADMSG/-EPIPE;
 * neither may crash, read or write outside the mapping, or loop forever. */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "client_lib/src/ring-client.h"
#include "daemon/stream.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static uint8_t payload[RING_RECORD_PAYLOAD_MAX + 1];
        Stream *s = NULL;
        RingClient rc;
        uint32_t daemon_words[4] = {}, client_words[4] = {};
        int ring, cw, dw;

        if (size < 32)
                return 0;
        memcpy(daemon_words, data, 16);
        memcpy(client_words, data + 16, 16);
        data += 32;
        size -= 32;
        if (size > RING_SIZE_MIN)
                size = RING_SIZE_MIN;

        if (stream_new(RING_SIZE_MIN, &s) < 0)
                abort();
        stream_get_client_fds(s, &ring, &cw, &dw);
        if (ring_client_attach(&rc, fcntl(ring, F_DUPFD_CLOEXEC, 3), fcntl(cw, F_DUPFD_CLOEXEC, 3),
                               fcntl(dw, F_DUPFD_CLOEXEC, 3)) < 0)
                abort();

        /* The daemon's side, facing a hostile client block and in ring. */
        RingShared *sh = rc.shared;
        memcpy(rc.in.data, data, size);
        sh->client.out_head = client_words[0];
        sh->client.in_tail = client_words[1];
        sh->client.flags = client_words[2];
        sh->client.reserved = client_words[3];
        for (int i = 0; i < 8; i++) {
                char buf[1000];
                int r = stream_push_text(s, (uint32_t)i, "piece", 5);
                if (r != 0 && r != -EAGAIN && r != -EBADMSG && r != -EPIPE)
                        abort();
                ssize_t n = stream_read_input(s, buf, sizeof(buf));
                if (n < 0 && n != -EAGAIN && n != -EBADMSG && n != -EPIPE)
                        abort();
                if (n > (ssize_t)sizeof(buf))
                        abort();
                (void)stream_process_wakeup(s);
        }
        StreamEnd e = { .tokens_generated = 1 };
        (void)stream_push_end(s, &e);

        /* The client's side, facing a hostile daemon block and out ring. */
        memcpy(rc.out.data, data, size);
        sh->daemon.out_tail = daemon_words[0];
        sh->daemon.in_head = daemon_words[1];
        sh->daemon.flags = daemon_words[2];
        sh->daemon.error = (int32_t)daemon_words[3];
        rc.out.pos = 0;
        sh->client.out_head = 0;
        for (int i = 0; i < 4096; i++) {
                RingRecord rec;
                int derr = 0;
                int r = ring_client_next(&rc, &rec, payload, &derr);
                if (r == 1) {
                        if (rec.size > RING_RECORD_PAYLOAD_MAX)
                                abort();
                        continue;
                }
                if (r != 0 && r != -EAGAIN && r != -EBADMSG)
                        abort();
                break;
        }
        (void)ring_client_arm(&rc, RING_WAIT_READ | RING_WAIT_WRITE);
        (void)ring_client_write(&rc, "abc", 3);
        (void)ring_client_close_input(&rc);

        ring_client_done(&rc);
        stream_free(s);
        return 0;
}

#ifdef FUZZ_RING_OWN_MAIN
/* Without the tree's fuzz driver: replay every file of the folders named. */
#include <dirent.h>
#include <stdio.h>

int main(int argc, char *argv[]) {
        static uint8_t buf[RING_SIZE_MIN + 64];
        unsigned n = 0;
        for (int i = 1; i < argc; i++) {
                DIR *d = opendir(argv[i]);
                struct dirent *de;
                if (!d) {
                        perror(argv[i]);
                        return 1;
                }
                while ((de = readdir(d))) {
                        char path[4096];
                        if (de->d_name[0] == '.')
                                continue;
                        snprintf(path, sizeof(path), "%s/%s", argv[i], de->d_name);
                        FILE *f = fopen(path, "re");
                        if (!f)
                                continue;
                        size_t len = fread(buf, 1, sizeof(buf), f);
                        fclose(f);
                        LLVMFuzzerTestOneInput(buf, len);
                        n++;
                }
                closedir(d);
        }
        fprintf(stderr, "fuzz-ring: %u inputs run\n", n);
        return n > 0 ? 0 : 1;
}
#endif
