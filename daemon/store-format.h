/* store-format.h: encode/decode one session file in memory (protocol/session-format.md).
 *
 * Pure functions over byte buffers: no file system, no global state, so the parser can be fuzzed.
 * A file is a 64-byte plain prefix, then a crypto_secretstream_xchacha20poly1305 stream whose first
 * message is the header (the prefix is its additional data) and whose following messages are the
 * payload: its sections cut into blocks of 2^block_log2 bytes, each one message (zstd frame or raw,
 * byte planes within the block), framed by a u32 length, the last one tagged FINAL. A loader thus
 * needs only one block of buffers, whatever the state size. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "daemon/store.h"
#include "engine/common/error.h"

#define SF_MAGIC "RWKVSESS"
#define SF_VERSION 2u     /* what this build writes */
#define SF_VERSION_MIN 1u /* the oldest it reads (1: no UTF-8 carry, no plane-coded blocks) */
#define SF_PREFIX_BYTES 64u
#define SF_HEADER_MAX 1024u /* plaintext header bytes */

typedef enum SfKind {
        SF_KIND_SESSION = 1, /* sealed with the owner's uid subkey */
        SF_KIND_EXPORT = 2,  /* sealed with the daemon's export subkey */
} SfKind;

enum {
        SF_CODEC_RAW = 0,           /* no block is compressed */
        SF_CODEC_ZSTD = 1,          /* blocks may be zstd frames */
        SF_CODEC_SHUFFLE = 1u << 8, /* float sections stored as byte planes, block by block */
};

/* First plaintext byte of each payload block. */
enum {
        SF_BLOCK_RAW = 0,
        SF_BLOCK_ZSTD = 1,
        SF_BLOCK_PLANES = 2, /* version 2: each byte plane alone, raw or one zstd frame */
};

enum {
        SF_FLAG_LOGITS = 1u << 0,
        SF_FLAG_PENALTIES = 1u << 1,
        SF_FLAG_PENDING_TOKEN = 1u << 2,
        SF_FLAG_CHECKPOINT = 1u << 3,
        SF_FLAGS_KNOWN = 0xfu,
};

typedef struct SfEncodeParams {
        SfKind kind;
        uid_t uid;          /* owner (session) or exporting uid (export), bound into the file */
        const uint8_t *key; /* 32-byte subkey */
        StorePrecision precision;
        int zstd_level;      /* 0: store uncompressed; else zstd at this level (negative: fast modes) */
        bool shuffle;        /* byte-plane shuffle of float sections */
        uint32_t block_log2; /* 0: default (17: 128 KiB blocks) */
        bool checkpoint;
        uint32_t version; /* 0: SF_VERSION; 1: the old format (tests of old files; no UTF-8 carry) */
} SfEncodeParams;

/* What a reader learns before it has the whole file. */
typedef struct SfPrefix {
        uint32_t version, kind, uid, header_clen;
} SfPrefix;

/* Parse the plain prefix (not authenticated yet: only used to size the next read). */
int sf_prefix_parse(const uint8_t *buf, size_t size, SfPrefix *ret, RwkvError *err);
/* Bytes of prefix + sealed header, i.e. what to read to learn the rest (valid after sf_prefix_parse). */
size_t sf_prefix_head_bytes(const SfPrefix *p);

int sf_encode(const SessionRecord *rec, const SfEncodeParams *p, uint8_t **ret, size_t *ret_size, RwkvError *err);

/* Authenticate and parse the header: meta filled, *ret_total = exact size the whole file must have.
 * size may be just sf_prefix_head_bytes(). Checks kind and uid against the expected ones. */
int sf_decode_header(const uint8_t *buf, size_t size, const uint8_t *key, SfKind kind, uid_t uid, SessionMeta *meta,
                     uint64_t *ret_total, RwkvError *err);

/* Whether buf's sealed header authenticates with key: 1 yes, 0 no (damage, or another key),
 * -EBADMSG when it cannot tell (no session prefix, or buf ends inside the header). Nothing else is
 * checked: store_open uses it to tell a wrong daemon key from damaged files. */
int sf_header_authenticates(const uint8_t *buf, size_t size, const uint8_t *key);

/* Decode a whole file into a new record (file_bytes = its size). Everything is checked: sizes exactly
 * as declared, every block authenticated, FINAL on the last, no trailing bytes. -EBADMSG for a bad
 * file; other errors (-EIO, -ENOMEM) are not the file's fault. */
int sf_decode(const uint8_t *buf, size_t size, const uint8_t *key, SfKind kind, uid_t uid, SessionRecord **ret,
              RwkvError *err);
/* The same, reading fd from its current offset to its end (a file or a pipe). */
int sf_decode_fd(int fd, const uint8_t *key, SfKind kind, uid_t uid, SessionRecord **ret, RwkvError *err);

/* Plaintext header codec, exposed for the fuzzer. */
typedef struct SfHeader {
        uint32_t version; /* of the file it came from (sf_header_write writes SF_VERSION) */
        SessionMeta meta;
        uint32_t codec, flags, pending_token, block_log2;
        uint32_t source_uid;
        SamplerParams sampler;
        Rng rng;
        uint64_t transcript_size, raw_size;
        uint64_t payload_bytes; /* the framed, sealed blocks after the header */
        Utf8Stream utf8;        /* version 2: the unfinished character the last generation ended in */
} SfHeader;
/* Parses a header of the current version (SF_VERSION); sf_header_parse_version() any readable one. */
int sf_header_parse(const uint8_t *buf, size_t size, SfHeader *ret, RwkvError *err);
int sf_header_parse_version(uint32_t version, const uint8_t *buf, size_t size, SfHeader *ret, RwkvError *err);
size_t sf_header_write(const SfHeader *h, uint8_t *buf, size_t cap);
