/* output-file.c: write a file for the user, replacing a regular file only once the content is whole. */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/common/fs-util.h"
#include "engine/common/macros.h"
#include "tools/rwkvctl/output-file.h"

/* An unnamed file in the target's folder (O_TMPFILE): nothing is left behind if rwkvctl is killed
 * before the commit. Where the file system has no O_TMPFILE, a named one that
 * output_file_done() removes. */
static int open_temporary(OutputFile *f) {
        _cleanup_(freep) char *dir = strdup(f->path);
        if (!dir)
                return -ENOMEM;
        f->fd = open(dirname(dir), O_TMPFILE | O_WRONLY | O_CLOEXEC, 0600);
        if (f->fd < 0 && (errno == EOPNOTSUPP || errno == EISDIR || errno == EINVAL)) {
                if (asprintf(&f->tmp_path, "%s.XXXXXX", f->path) < 0) {
                        f->tmp_path = NULL;
                        return -ENOMEM;
                }
                f->fd = mkostemp(f->tmp_path, O_CLOEXEC);
                if (f->fd < 0) {
                        int r = -errno;
                        free(f->tmp_path);
                        f->tmp_path = NULL;
                        return r;
                }
        }
        if (f->fd < 0)
                return -errno;
        /* "Created 0600" whatever the umask, and not the old file's mode: an export holds a whole
         * conversation. */
        if (fchmod(f->fd, 0600) < 0)
                return -errno;
        return 0;
}

int output_file_open(const char *path, OutputFile *ret) {
        _cleanup_(output_file_done) OutputFile f = { .fd = -EBADF };
        struct stat st;
        bool exists = true;
        int r;

        if (strcmp(path, "-") == 0) {
                *ret = (OutputFile){ .fd = STDOUT_FILENO, .direct = true, .borrowed = true };
                return 0;
        }
        if (stat(path, &st) < 0) {
                if (errno != ENOENT)
                        return -errno;
                exists = false;
        }
        if (exists && S_ISDIR(st.st_mode))
                return -EISDIR;
        if (exists && !S_ISREG(st.st_mode)) {
                /* A device or FIFO is the destination itself: renaming over it would replace
                 * (as root: destroy) the node, and there is nothing to truncate. */
                f.fd = open(path, O_WRONLY | O_NOCTTY | O_CLOEXEC);
                if (f.fd < 0)
                        return -errno;
                f.direct = true;
                *ret = f;
                f = (OutputFile){ .fd = -EBADF };
                return 0;
        }
        /* Through a symbolic link, the file it points to is replaced, not the link. */
        f.path = exists ? realpath(path, NULL) : strdup(path);
        if (!f.path)
                return -errno;
        r = open_temporary(&f);
        if (r < 0)
                return r;
        *ret = f;
        f = (OutputFile){ .fd = -EBADF };
        return 0;
}

/* Gives the O_TMPFILE a name beside the target (link() cannot replace a file, rename() can). */
static int link_temporary(OutputFile *f) {
        static const char chars[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
        char proc[64];

        snprintf(proc, sizeof(proc), "/proc/self/fd/%d", f->fd);
        for (unsigned attempt = 0; attempt < 64; attempt++) {
                uint8_t rnd[6];
                _cleanup_(freep) char *name = NULL;
                if (getrandom(rnd, sizeof(rnd), 0) != sizeof(rnd))
                        return -errno;
                if (asprintf(&name, "%s.%c%c%c%c%c%c", f->path, chars[rnd[0] % 62], chars[rnd[1] % 62],
                             chars[rnd[2] % 62], chars[rnd[3] % 62], chars[rnd[4] % 62], chars[rnd[5] % 62]) < 0)
                        return -ENOMEM;
                if (linkat(AT_FDCWD, proc, AT_FDCWD, name, AT_SYMLINK_FOLLOW) == 0) {
                        f->tmp_path = TAKE_PTR(name);
                        return 0;
                }
                if (errno != EEXIST)
                        return -errno;
        }
        return -EEXIST;
}

int output_file_commit(OutputFile *f) {
        int r;

        if (f->direct) {
                if (f->borrowed)
                        return 0;
                r = close(f->fd) < 0 ? -errno : 0;
                f->fd = -EBADF;
                return r;
        }
        if (fsync(f->fd) < 0)
                return -errno;
        if (!f->tmp_path) {
                r = link_temporary(f);
                if (r < 0)
                        return r;
        }
        if (rename(f->tmp_path, f->path) < 0)
                return -errno;
        free(f->tmp_path);
        f->tmp_path = NULL;
        r = close(f->fd) < 0 ? -errno : 0;
        f->fd = -EBADF;
        if (r < 0)
                return r;
        return fsync_parent_dir(f->path);
}

void output_file_done(OutputFile *f) {
        if (!f->borrowed)
                f->fd = safe_close(f->fd);
        if (f->tmp_path)
                (void)unlink(f->tmp_path);
        free(f->tmp_path);
        f->tmp_path = NULL;
        free(f->path);
        f->path = NULL;
}
