/* store-io.c: atomic, durable file operations for the session store (see store-io.h). */
#include <dirent.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "daemon/store-io.h"
#include "engine/common/macros.h"

int io_write_all(int fd, const void *buf, size_t n) {
        const uint8_t *p = buf;
        while (n > 0) {
                ssize_t l = write(fd, p, MIN(n, (size_t)1 << 30));
                if (l < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (l == 0)
                        return -EIO;
                p += l;
                n -= (size_t)l;
        }
        return 0;
}

int io_read_exact(int fd, void *buf, size_t n) {
        uint8_t *p = buf;
        while (n > 0) {
                ssize_t l = read(fd, p, MIN(n, (size_t)1 << 30));
                if (l < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (l == 0)
                        return -EBADMSG;
                p += l;
                n -= (size_t)l;
        }
        return 0;
}

static int temp_open(int dir_fd, const char *name, char *tmp, size_t tmp_size) {
        for (int attempt = 0; attempt < 16; attempt++) {
                snprintf(tmp, tmp_size, ".#%.80s.%08x", name, randombytes_random());
                int fd = openat(dir_fd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
                if (fd >= 0 || errno != EEXIST)
                        return fd >= 0 ? fd : -errno;
        }
        return -EEXIST;
}

/* Publish tmp as name, then make the rename itself durable. */
static int temp_commit(int dir_fd, const char *tmp, const char *name, bool noreplace, bool sync) {
        int r;
        if (noreplace)
                r = renameat2(dir_fd, tmp, dir_fd, name, RENAME_NOREPLACE);
        else
                r = renameat(dir_fd, tmp, dir_fd, name);
        if (r < 0) {
                r = -errno;
                (void)unlinkat(dir_fd, tmp, 0);
                return r;
        }
        if (sync && fsync(dir_fd) < 0)
                return -errno;
        return 0;
}

int io_write_atomic(int dir_fd, const char *name, const void *data, size_t size, bool noreplace, bool sync) {
        char tmp[128];
        _cleanup_(closep) int fd = temp_open(dir_fd, name, tmp, sizeof(tmp));
        if (fd < 0)
                return fd;
        /* Allocating the whole file first costs less CPU than growing it write by write (bench-store
         * --stages: 0.3 vs 0.9 ms for 3 MB on ext4) and reports ENOSPC before any byte is written.
         * File systems without fallocate (EOPNOTSUPP) just get the plain write. */
        int r = 0;
        if (size > 0 && fallocate(fd, 0, 0, (off_t)size) < 0 && errno != EOPNOTSUPP && errno != ENOSYS)
                r = -errno;
        if (r >= 0)
                r = io_write_all(fd, data, size);
        if (r >= 0 && sync && fsync(fd) < 0)
                r = -errno;
        if (r >= 0 && close(TAKE_FD(fd)) < 0)
                r = -errno; /* NFS and quotas may report write errors only here */
        if (r < 0) {
                (void)unlinkat(dir_fd, tmp, 0);
                return r;
        }
        return temp_commit(dir_fd, tmp, name, noreplace, sync);
}

int io_read_head(int dir_fd, const char *name, uint8_t *buf, size_t size, uint64_t *ret_file_size) {
        _cleanup_(closep) int fd = openat(dir_fd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
        if (fd < 0)
                return -errno;
        struct stat st;
        if (fstat(fd, &st) < 0)
                return -errno;
        if (!S_ISREG(st.st_mode))
                return -EBADMSG;
        ssize_t l;
        do
                l = pread(fd, buf, size, 0);
        while (l < 0 && errno == EINTR);
        if (l < 0)
                return -errno;
        if (ret_file_size)
                *ret_file_size = (uint64_t)st.st_size;
        return (int)l;
}

int io_unlink_secure(int dir_fd, const char *name, bool sync) {
        _cleanup_(closep) int fd = openat(dir_fd, name, O_WRONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
        struct stat st;
        if (fd >= 0 && fstat(fd, &st) >= 0 && S_ISREG(st.st_mode) && st.st_nlink == 1) {
                static const uint8_t zeros[64 * 1024];
                uint64_t left = (uint64_t)st.st_size;
                while (left > 0) {
                        size_t n = (size_t)MIN(left, (uint64_t)sizeof(zeros));
                        if (io_write_all(fd, zeros, n) < 0)
                                break; /* best effort: the unlink below matters most */
                        left -= n;
                }
                if (sync)
                        (void)fdatasync(fd);
        }
        if (unlinkat(dir_fd, name, 0) < 0)
                return -errno;
        if (sync)
                (void)fsync(dir_fd);
        return 0;
}

int io_copy_file(int src_dir, const char *src, int dst_dir, const char *dst, bool noreplace, bool sync) {
        _cleanup_(closep) int in = openat(src_dir, src, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
        if (in < 0)
                return -errno;
        struct stat st;
        if (fstat(in, &st) < 0)
                return -errno;
        if (!S_ISREG(st.st_mode))
                return -EBADMSG;
        char tmp[128];
        _cleanup_(closep) int out = temp_open(dst_dir, dst, tmp, sizeof(tmp));
        if (out < 0)
                return out;
        int r = 0;
        /* Copy-on-write clone where the file system can (btrfs, xfs): O(1) and shares blocks. */
        if (ioctl(out, FICLONE, in) < 0) {
                off_t left = st.st_size;
                while (left > 0) {
                        ssize_t l = copy_file_range(in, NULL, out, NULL, (size_t)left, 0);
                        if (l < 0 && errno == EINTR)
                                continue;
                        if (l <= 0)
                                break;
                        left -= l;
                }
                if (left > 0) { /* copy_file_range unsupported (or short): plain copy from where it stopped */
                        uint8_t buf[64 * 1024];
                        off_t off = st.st_size - left;
                        if (lseek(in, off, SEEK_SET) < 0 || lseek(out, off, SEEK_SET) < 0)
                                r = -errno;
                        while (r >= 0 && left > 0) {
                                ssize_t l = read(in, buf, sizeof(buf));
                                if (l < 0 && errno == EINTR)
                                        continue;
                                if (l < 0)
                                        r = -errno;
                                else if (l == 0)
                                        r = -EIO; /* shrank under us */
                                else {
                                        r = io_write_all(out, buf, (size_t)l);
                                        left -= l;
                                }
                        }
                }
        }
        if (r >= 0 && sync && fsync(out) < 0)
                r = -errno;
        if (r >= 0 && close(TAKE_FD(out)) < 0)
                r = -errno;
        if (r < 0) {
                (void)unlinkat(dst_dir, tmp, 0);
                return r;
        }
        return temp_commit(dst_dir, tmp, dst, noreplace, sync);
}

int io_quarantine(int dir_fd, const char *name, char *ret_name, size_t ret_size) {
        char target[256];
        snprintf(target, sizeof(target), "%s.corrupt", name);
        if (renameat2(dir_fd, name, dir_fd, target, RENAME_NOREPLACE) < 0) {
                if (errno != EEXIST)
                        return -errno;
                struct timespec ts;
                clock_gettime(CLOCK_REALTIME, &ts);
                snprintf(target, sizeof(target), "%s.%llu.corrupt", name,
                         (unsigned long long)ts.tv_sec * 1000000ULL + (unsigned long long)ts.tv_nsec / 1000);
                if (renameat2(dir_fd, name, dir_fd, target, RENAME_NOREPLACE) < 0)
                        return -errno;
        }
        (void)fsync(dir_fd);
        if (ret_name)
                snprintf(ret_name, ret_size, "%s", target);
        return 0;
}

void io_sweep_temps(int dir_fd) {
        int fd = openat(dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                return;
        DIR *d = fdopendir(fd);
        if (!d) {
                close(fd);
                return;
        }
        struct dirent *de;
        while ((de = readdir(d)))
                if (de->d_name[0] == '.' && de->d_name[1] == '#')
                        (void)unlinkat(dir_fd, de->d_name, 0);
        closedir(d);
}
