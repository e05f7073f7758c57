/* fs-util.h: small file-system steps shared by the writers of whole files (model conversion,
 * rwkvctl's exports). */
#pragma once

/* fsync() of the folder that holds path, so that a rename into it survives a crash. 0 or -errno. */
int fsync_parent_dir(const char *path);
