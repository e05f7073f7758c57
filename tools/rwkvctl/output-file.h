/* output-file.h: a file rwkvctl writes for the user (session export) without ever destroying what
 * the path held when the write fails. A regular file (or a path that does not exist yet) is written
 * to a temporary file in the same folder, synced, and renamed over the target only on success; a
 * device, a FIFO or "-" (standard output) is written in place and never removed or truncated. */
#pragma once

#include <stdbool.h>

typedef struct OutputFile {
        int fd;
        char *path;     /* the name the rename gives the file (symbolic links resolved) */
        char *tmp_path; /* the named temporary file (no O_TMPFILE here), removed on failure */
        bool direct;    /* not a regular file: fd is the target itself */
        bool borrowed;  /* fd is standard output: not ours to close */
} OutputFile;

/* Opens path ("-": standard output) for writing; 0 or a negative errno. */
int output_file_open(const char *path, OutputFile *ret);

/* Makes the written content the file at the path (mode 0600): fsync, rename, fsync the folder.
 * On failure the target is left as it was. Returns 0 or a negative errno; output_file_done() is
 * still called after it. */
int output_file_commit(OutputFile *f);

/* Closes the file; an uncommitted temporary file is removed (the target is untouched). */
void output_file_done(OutputFile *f);
