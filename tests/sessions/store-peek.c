/* store-peek: print the committed header of a session file without taking the store's lock, so a
 * test can tell when the running daemon's commit of a turn has reached the disk.
 *   store-peek STATE_DIR UID ID [TURN]  ->  "tokens turns bytes" (exit 2: no file, 3: corrupt)
 * With TURN, the checkpoint of that turn instead. */
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemon/keys.h"
#include "daemon/store-format.h"

int main(int argc, char **argv) {
        if (argc != 4 && argc != 5) {
                fprintf(stderr, "usage: store-peek STATE_DIR UID ID [TURN]\n");
                return 1;
        }
        uid_t uid = (uid_t)strtoul(argv[2], NULL, 10);
        _cleanup_(closep) int dfd = open(argv[1], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0) {
                perror(argv[1]);
                return 2;
        }
        _cleanup_(daemon_key_freep) DaemonKey *k = NULL;
        RwkvError err = {};
        if (daemon_key_load(dfd, "daemon.key", false, &k, &err) < 0) {
                fprintf(stderr, "%s\n", err.msg);
                return 2;
        }
        char path[512];
        if (argc == 5)
                snprintf(path, sizeof(path), "%u/%s.checkpoints/turn-%010u.session", (unsigned)uid, argv[3],
                         (unsigned)strtoul(argv[4], NULL, 10));
        else
                snprintf(path, sizeof(path), "%u/%s.session", (unsigned)uid, argv[3]);
        _cleanup_(closep) int fd = openat(dfd, path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0)
                return 2;
        uint8_t head[SF_PREFIX_BYTES + SF_HEADER_MAX + 64];
        ssize_t n = pread(fd, head, sizeof(head), 0);
        struct stat st;
        if (n < 0 || fstat(fd, &st) < 0)
                return 2;
        uint8_t key[DAEMON_KEY_BYTES];
        daemon_key_derive_uid(k, uid, key);
        SessionMeta m;
        uint64_t total;
        if (sf_decode_header(head, (size_t)n, key, SF_KIND_SESSION, uid, &m, &total, &err) < 0 ||
            total != (uint64_t)st.st_size) {
                fprintf(stderr, "%s: %s\n", path, err.msg[0] ? err.msg : "size mismatch");
                return 3;
        }
        printf("%llu %u %llu\n", (unsigned long long)m.n_tokens, m.n_turns, (unsigned long long)st.st_size);
        return 0;
}
