/* keys.c: daemon key creation/loading and per-purpose subkeys (see keys.h). */
#include <fcntl.h>
#include <sodium.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemon/keys.h"

struct DaemonKey {
        uint8_t *key; /* sodium_malloc'ed, read-only after setup */
};

DaemonKey *daemon_key_free(DaemonKey *k) {
        if (!k)
                return NULL;
        if (k->key)
                sodium_free(k->key); /* wipes and unlocks */
        free(k);
        return NULL;
}

int daemon_key_new_from_bytes(const uint8_t bytes[DAEMON_KEY_BYTES], DaemonKey **ret) {
        if (sodium_init() < 0)
                return -EIO;
        _cleanup_(daemon_key_freep) DaemonKey *k = calloc(1, sizeof(*k));
        if (!k)
                return -ENOMEM;
        /* sodium_malloc mlocks the pages and marks them MADV_DONTDUMP. */
        k->key = sodium_malloc(DAEMON_KEY_BYTES);
        if (!k->key)
                return -ENOMEM;
        memcpy(k->key, bytes, DAEMON_KEY_BYTES);
        (void)sodium_mprotect_readonly(k->key);
        *ret = TAKE_PTR(k);
        return 0;
}

static int read_exact(int fd, uint8_t *buf, size_t n) {
        size_t done = 0;
        while (done < n) {
                ssize_t l = read(fd, buf + done, n - done);
                if (l < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (l == 0)
                        return -EBADMSG;
                done += (size_t)l;
        }
        return 0;
}

static int write_exact(int fd, const uint8_t *buf, size_t n) {
        size_t done = 0;
        while (done < n) {
                ssize_t l = write(fd, buf + done, n - done);
                if (l < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                done += (size_t)l;
        }
        return 0;
}

static int key_create(int dir_fd, const char *name, RwkvError *err) {
        /* Write to a temp name and link it into place, so a crash never leaves a short key that a
         * later start would refuse (or worse, a different key than the files were sealed with). */
        uint8_t buf[DAEMON_KEY_BYTES];
        char tmp[64];
        snprintf(tmp, sizeof(tmp), ".#daemon.key.%08x", randombytes_random());
        _cleanup_(closep) int fd = openat(dir_fd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd < 0)
                return error_set(err, errno, "cannot create key file: %m");
        randombytes_buf(buf, sizeof(buf));
        int r = write_exact(fd, buf, sizeof(buf));
        sodium_memzero(buf, sizeof(buf));
        if (r >= 0 && fsync(fd) < 0)
                r = -errno;
        if (r >= 0 && linkat(dir_fd, tmp, dir_fd, name, 0) < 0)
                r = -errno; /* EEXIST: another instance won the race; load theirs */
        (void)unlinkat(dir_fd, tmp, 0);
        if (r < 0 && r != -EEXIST)
                return error_set(err, -r, "cannot write key file '%s': %s", name, strerror(-r));
        if (r >= 0)
                (void)fsync(dir_fd);
        return 0;
}

int daemon_key_load(int dir_fd, const char *name, bool create, DaemonKey **ret, RwkvError *err) {
        if (sodium_init() < 0)
                return error_set(err, EIO, "libsodium initialization failed");

        _cleanup_(closep) int fd = openat(dir_fd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
        if (fd < 0 && errno == ENOENT && create) {
                int r = key_create(dir_fd, name, err);
                if (r < 0)
                        return r;
                fd = openat(dir_fd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
        }
        if (fd < 0)
                return error_set(err, errno, "cannot open key file '%s': %m", name);

        struct stat st;
        if (fstat(fd, &st) < 0)
                return error_set(err, errno, "cannot stat key file: %m");
        if (!S_ISREG(st.st_mode) || st.st_size != DAEMON_KEY_BYTES)
                return error_set(err, EBADMSG, "key file '%s' is not a regular file of %d bytes", name,
                                 DAEMON_KEY_BYTES);
        if (st.st_mode & 0077)
                return error_set(err, EPERM, "key file '%s' is accessible by group or others (mode %04o)", name,
                                 (unsigned)(st.st_mode & 07777));

        uint8_t buf[DAEMON_KEY_BYTES];
        int r = read_exact(fd, buf, sizeof(buf));
        if (r < 0) {
                sodium_memzero(buf, sizeof(buf));
                return error_set(err, -r, "cannot read key file '%s': %s", name, strerror(-r));
        }
        r = daemon_key_new_from_bytes(buf, ret);
        sodium_memzero(buf, sizeof(buf));
        if (r < 0)
                return error_set(err, -r, "cannot allocate locked key memory: %s", strerror(-r));
        return 0;
}

void daemon_key_derive_uid(const DaemonKey *k, uid_t uid, uint8_t out[DAEMON_KEY_BYTES]) {
        /* Subkey id = uid: distinct uids always get distinct keys. */
        (void)crypto_kdf_derive_from_key(out, DAEMON_KEY_BYTES, (uint64_t)uid, "rwkvsess", k->key);
}

void daemon_key_derive_export(const DaemonKey *k, uint8_t out[DAEMON_KEY_BYTES]) {
        (void)crypto_kdf_derive_from_key(out, DAEMON_KEY_BYTES, 1, "rwkvexpt", k->key);
}
