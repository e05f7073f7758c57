/* store-io.h: file-system primitives of the session store: atomic replace, exact reads, secure
 * unlink, copy (reflink when possible), quarantine. All paths are names relative to a folder fd. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Write data to a temp file in dir_fd, fsync it, rename it to name (noreplace: fail with -EEXIST
 * instead of replacing), fsync dir_fd. On any failure the temp file is removed and name is untouched. */
int io_write_atomic(int dir_fd, const char *name, const void *data, size_t size, bool noreplace, bool sync);

/* Read up to size bytes from offset 0; returns the count read (short at EOF). */
int io_read_head(int dir_fd, const char *name, uint8_t *buf, size_t size, uint64_t *ret_file_size);
/* Read exactly n bytes from a stream (pipe/socket/file): -EBADMSG at a premature EOF. */
int io_read_exact(int fd, void *buf, size_t n);
int io_write_all(int fd, const void *buf, size_t n);

/* Overwrite the file's bytes with zeros, sync, then unlink it (best effort against recovery from the
 * disk; files with other hard links are only unlinked). */
int io_unlink_secure(int dir_fd, const char *name, bool sync);

/* Copy src_dir/src to dst_dir/dst atomically (reflink, then copy_file_range, then read/write). */
int io_copy_file(int src_dir, const char *src, int dst_dir, const char *dst, bool noreplace, bool sync);

/* Rename name to "name.corrupt" (or "name.<usec>.corrupt" when that exists); never deletes. */
int io_quarantine(int dir_fd, const char *name, char *ret_name, size_t ret_size);

/* Remove ".#*" temp files a crash left behind. */
void io_sweep_temps(int dir_fd);
