/* keys.h: the daemon's master key for sessions at rest, and the subkeys derived from it.
 *
 * One 32-byte random key per state directory (daemon.key, 0600, created at first start). It lives
 * in sodium_malloc'ed memory (guard pages, mlock'ed, excluded from core dumps, read-only). Every
 * file is sealed with a subkey: crypto_kdf(master, subkey id = uid, context "rwkvsess") for a
 * uid's sessions, crypto_kdf(master, 1, "rwkvexpt") for exports. A file copied between users
 * therefore fails authentication even before its bound uid is compared. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "engine/common/error.h"

#define DAEMON_KEY_BYTES 32

typedef struct DaemonKey DaemonKey;

/* Open name relative to dir_fd; create it (O_EXCL, 0600) when missing and create is true. A key
 * file that is not a regular file of exactly 32 bytes, or is readable by group/others, is refused. */
int daemon_key_load(int dir_fd, const char *name, bool create, DaemonKey **ret, RwkvError *err);
/* A key from given bytes (tests, fuzzing). */
int daemon_key_new_from_bytes(const uint8_t bytes[DAEMON_KEY_BYTES], DaemonKey **ret);
DaemonKey *daemon_key_free(DaemonKey *k);
static inline void daemon_key_freep(DaemonKey **k) {
        if (*k)
                daemon_key_free(*k);
}

/* Subkeys; the caller wipes them (sodium_memzero) after use. */
void daemon_key_derive_uid(const DaemonKey *k, uid_t uid, uint8_t out[DAEMON_KEY_BYTES]);
void daemon_key_derive_export(const DaemonKey *k, uint8_t out[DAEMON_KEY_BYTES]);
