/* ring.h: the shared-memory token ring between rwkvd and one client (layout: protocol/ring.md).
 *
 * One sealed memfd per generation holds a header page and two single-producer/single-consumer byte
 * rings: "out" (daemon → client: text, end and error records) and "in" (client → daemon: prompt
 * bytes). Indices are free-running uint32; fill = tail - head, and a fill above the ring size can
 * only come from a peer scribbling over the shared page, so it is reported as -EBADMSG. Each side
 * keeps its own index privately (RingBuf.pos) and never re-reads it from shared memory.
 *
 * Header-only on purpose: the daemon (daemon/stream.c), librwkv-client and the tests all use the
 * same inline code, so there is one implementation of the protocol. */
#pragma once

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "protocol/barrier.h"

#define RING_MAGIC UINT32_C(0x524b5752) /* "RWKR" as little-endian bytes */
#define RING_VERSION UINT32_C(1)
#define RING_HEADER_SIZE UINT32_C(4096)
#define RING_SIZE_MIN UINT32_C(16384) /* room for several maximal records */
#define RING_SIZE_MAX UINT32_C(64 * 1024 * 1024)
#define RING_SIZE_DEFAULT UINT32_C(128 * 1024)

/* Bits of RingShared.daemon.flags and RingShared.client.flags; each word has a single writer. */
#define RING_FLAG_NEED_WAKEUP UINT32_C(0x1)  /* this side is about to sleep on its eventfd */
#define RING_FLAG_INPUT_CLOSED UINT32_C(0x2) /* client: the prompt direction is finished */
#define RING_FLAG_CLOSED UINT32_C(0x4)       /* daemon: no more records; client: stream abandoned */

/* Line 0, written once by the daemon before the fd is handed out. The daemon never reads it back
 * (the client can write it); the client validates it once against the mapping's size. */
typedef struct RingHeader {
        uint32_t magic;
        uint32_t version;
        uint32_t header_size; /* offset of the out ring's data */
        uint32_t flags;       /* none defined yet; must be 0 */
        uint32_t out_offset;
        uint32_t out_size; /* power of two */
        uint32_t in_offset;
        uint32_t in_size; /* power of two */
        uint64_t total_size;
        uint8_t reserved[24];
} RingHeader;

/* The fields written by each side sit on their own 128-byte block (two cache lines, because x86's
 * adjacent-line prefetcher pairs lines), so a producer's index store never invalidates the line
 * its consumer is writing. For the out ring out_tail (producer) and out_head (consumer) are thus
 * apart, and likewise in_tail/in_head. */
typedef struct RingShared {
        RingHeader header;
        uint8_t pad0[128 - sizeof(RingHeader)];
        struct {
                uint32_t out_tail; /* out ring producer index */
                uint32_t in_head;  /* in ring consumer index */
                uint32_t flags;    /* RING_FLAG_NEED_WAKEUP, RING_FLAG_CLOSED */
                int32_t error;     /* positive errno when the daemon aborted the ring, else 0 */
                uint8_t pad[128 - 16];
        } daemon;
        struct {
                uint32_t out_head; /* out ring consumer index */
                uint32_t in_tail;  /* in ring producer index */
                uint32_t flags;    /* RING_FLAG_NEED_WAKEUP, RING_FLAG_INPUT_CLOSED, RING_FLAG_CLOSED */
                uint32_t reserved;
                uint8_t pad[128 - 16];
        } client;
} RingShared;

_Static_assert(sizeof(RingHeader) == 64, "RingHeader is one cache line");
_Static_assert(offsetof(RingShared, daemon) == 128, "daemon block at 128");
_Static_assert(offsetof(RingShared, client) == 256, "client block at 256");
_Static_assert(sizeof(RingShared) <= RING_HEADER_SIZE, "shared block fits the header page");

/* Records of the out ring: an 8-byte header, the payload, padding to 8 bytes. A record is
 * published whole (one release of out_tail), so a reader never sees half of one. */
typedef struct RingRecord {
        uint16_t type; /* RING_RECORD_* */
        uint16_t flags;
        uint32_t size; /* payload bytes, at most RING_RECORD_PAYLOAD_MAX */
} RingRecord;

#define RING_RECORD_ALIGN 8u
#define RING_RECORD_PAYLOAD_MAX UINT32_C(4096)

enum {
        RING_RECORD_TEXT = 1,  /* RingText + UTF-8 bytes */
        RING_RECORD_END = 2,   /* RingEnd; the last record of a generation */
        RING_RECORD_ERROR = 3, /* RingError + message bytes; the last record of a failed generation */
};

#define RING_TOKEN_NONE UINT32_MAX /* a text piece that belongs to the previous token */

typedef struct RingText {
        uint32_t token;
        uint32_t reserved;
        uint64_t time_ns; /* CLOCK_MONOTONIC when the daemon pushed it (delivery latency) */
} RingText;
#define RING_TEXT_MAX (RING_RECORD_PAYLOAD_MAX - (uint32_t)sizeof(RingText))

enum {
        RING_STOP_MAX_TOKENS = 1,
        RING_STOP_STOP_STRING = 2,
        RING_STOP_END_TOKEN = 3,
        RING_STOP_CANCELLED = 4,
        RING_STOP_PROMPT_ONLY = 5, /* max_tokens was 0: the prompt was ingested, nothing sampled */
};

typedef struct RingEnd {
        uint64_t tokens_generated;
        uint64_t prompt_tokens;
        uint32_t stop_reason; /* RING_STOP_* */
        uint32_t reserved0;
        uint64_t queue_usec;     /* from Generate() to the first compute */
        uint64_t prompt_usec;    /* prefill */
        uint64_t generate_usec;  /* sampling/decoding */
        uint64_t session_tokens; /* tokens in the session after this generation */
        uint64_t reserved[2];
} RingEnd;
_Static_assert(sizeof(RingEnd) == 72, "RingEnd layout");

typedef struct RingError {
        int32_t errnum; /* positive errno, e.g. EIO, E2BIG */
        uint32_t reserved;
} RingError;
#define RING_ERROR_MESSAGE_MAX 1024u

static inline uint32_t ring_record_span(uint32_t payload) {
        return (uint32_t)((sizeof(RingRecord) + payload + RING_RECORD_ALIGN - 1) & ~(RING_RECORD_ALIGN - 1));
}

static inline bool ring_size_valid(uint32_t size) {
        return size >= RING_SIZE_MIN && size <= RING_SIZE_MAX && (size & (size - 1)) == 0;
}

/* Rounds a requested size up to a valid ring size (clamped to the limits). */
static inline uint32_t ring_size_round(size_t want) {
        uint32_t s = RING_SIZE_MIN;
        while (s < want && s < RING_SIZE_MAX)
                s <<= 1;
        return s;
}

static inline uint64_t ring_total_size(uint32_t out_size, uint32_t in_size) {
        return (uint64_t)RING_HEADER_SIZE + out_size + in_size;
}

/* Daemon: lays out a zeroed mapping of ring_total_size() bytes. */
static inline void ring_header_init(void *mem, uint32_t out_size, uint32_t in_size) {
        RingShared *sh = mem;
        memset(sh, 0, RING_HEADER_SIZE);
        sh->header = (RingHeader){
                .magic = RING_MAGIC,
                .version = RING_VERSION,
                .header_size = RING_HEADER_SIZE,
                .out_offset = RING_HEADER_SIZE,
                .out_size = out_size,
                .in_offset = RING_HEADER_SIZE + out_size,
                .in_size = in_size,
                .total_size = ring_total_size(out_size, in_size),
        };
}

/* Client: checks a mapping of mapped_size bytes once and returns a private copy of its header.
 * -EPROTO for a ring of another version, -EBADMSG for anything inconsistent. */
static inline int ring_header_validate(const void *mem, uint64_t mapped_size, RingHeader *ret) {
        RingHeader h;
        if (mapped_size < RING_HEADER_SIZE)
                return -EBADMSG;
        memcpy(&h, mem, sizeof(h)); /* copy first: the peer may change it while we look */
        if (h.magic != RING_MAGIC)
                return -EBADMSG;
        if (h.version != RING_VERSION)
                return -EPROTO;
        if (h.header_size != RING_HEADER_SIZE || h.flags != 0 || !ring_size_valid(h.out_size) ||
            !ring_size_valid(h.in_size) || h.out_offset != RING_HEADER_SIZE ||
            h.in_offset != RING_HEADER_SIZE + h.out_size || h.total_size != ring_total_size(h.out_size, h.in_size) ||
            h.total_size != mapped_size)
                return -EBADMSG;
        *ret = h;
        return 0;
}

/* One direction as this process sees it. data/size come from this side's trusted copy of the
 * geometry; head/tail point into shared memory; pos is this side's own index (the producer's tail
 * or the consumer's head), kept privately. */
typedef struct RingBuf {
        uint8_t *data;
        uint32_t size;
        uint32_t *head;
        uint32_t *tail;
        uint32_t pos;
} RingBuf;

/* Producer: bytes free, or -EBADMSG when the consumer's index is impossible. */
static inline int64_t ring_buf_free(const RingBuf *b) {
        /* Pairs with the release in ring_buf_consume(): the consumer finished copying out of the
         * bytes before we may overwrite them. */
        uint32_t head = rwkv_smp_load_acquire(b->head);
        uint32_t fill = b->pos - head;
        if (fill > b->size)
                return -EBADMSG;
        return (int64_t)b->size - fill;
}

/* Consumer: bytes readable, or -EBADMSG when the producer's index is impossible. */
static inline int64_t ring_buf_fill(const RingBuf *b) {
        /* Pairs with the release in ring_buf_produce(): the bytes are in place before we read them. */
        uint32_t tail = rwkv_smp_load_acquire(b->tail);
        uint32_t fill = tail - b->pos;
        if (fill > b->size)
                return -EBADMSG;
        return fill;
}

/* Copies len bytes to/from the ring at pos + offset, wrapping around the end. The caller has
 * checked len + offset against ring_buf_free()/ring_buf_fill(). */
static inline void ring_buf_write_at(RingBuf *b, uint32_t offset, const void *src, size_t len) {
        uint32_t at = (b->pos + offset) & (b->size - 1);
        size_t first = len < (size_t)(b->size - at) ? len : (size_t)(b->size - at);
        memcpy(b->data + at, src, first);
        memcpy(b->data, (const uint8_t *)src + first, len - first);
}

static inline void ring_buf_read_at(const RingBuf *b, uint32_t offset, void *dst, size_t len) {
        uint32_t at = (b->pos + offset) & (b->size - 1);
        size_t first = len < (size_t)(b->size - at) ? len : (size_t)(b->size - at);
        memcpy(dst, b->data + at, first);
        memcpy((uint8_t *)dst + first, b->data, len - first);
}

/* Publishes n written bytes. Pairs with the acquire in the consumer's ring_buf_fill(). */
static inline void ring_buf_produce(RingBuf *b, uint32_t n) {
        b->pos += n;
        rwkv_smp_store_release(b->tail, b->pos);
}

/* Releases n read bytes. Pairs with the acquire in the producer's ring_buf_free(). */
static inline void ring_buf_consume(RingBuf *b, uint32_t n) {
        b->pos += n;
        rwkv_smp_store_release(b->head, b->pos);
}

/* Producer: writes one record (header + up to two payload parts) at pos + offset without
 * publishing it; returns its span. The caller checked the span against ring_buf_free(). */
static inline uint32_t ring_record_write(RingBuf *b, uint32_t offset, uint16_t type, const void *p1, uint32_t l1,
                                         const void *p2, uint32_t l2) {
        RingRecord r = { .type = type, .size = l1 + l2 };
        ring_buf_write_at(b, offset, &r, sizeof(r));
        if (l1 > 0)
                ring_buf_write_at(b, offset + (uint32_t)sizeof(r), p1, l1);
        if (l2 > 0)
                ring_buf_write_at(b, offset + (uint32_t)sizeof(r) + l1, p2, l2);
        return ring_record_span(l1 + l2);
}

/* Consumer: the header of the next complete record, copied out. 1 if there is one, 0 if the ring
 * is empty, -EBADMSG if the ring holds something that is not a whole valid record. */
static inline int ring_record_peek(const RingBuf *b, RingRecord *ret) {
        int64_t fill = ring_buf_fill(b);
        RingRecord r;

        if (fill < 0)
                return (int)fill;
        if (fill == 0)
                return 0;
        if (fill < (int64_t)sizeof(r))
                return -EBADMSG;
        ring_buf_read_at(b, 0, &r, sizeof(r));
        if (r.size > RING_RECORD_PAYLOAD_MAX || ring_record_span(r.size) > fill)
                return -EBADMSG;
        *ret = r;
        return 1;
}

/* Flag words have one writer each; RMW atomics keep a word whole even if that side has threads. */
static inline void ring_flag_set(uint32_t *flags, uint32_t bit) {
        __atomic_fetch_or(flags, bit, __ATOMIC_RELEASE);
}

static inline void ring_flag_clear(uint32_t *flags, uint32_t bit) {
        __atomic_fetch_and(flags, ~bit, __ATOMIC_RELAXED);
}

/* The wake-up protocol (see ring.md). A side about to sleep calls ring_sleep_prepare() on its own
 * flag word and then re-checks the peer's index before blocking on its eventfd; a side that just
 * published calls ring_peer_needs_wakeup() on the peer's flag word and signals the peer's eventfd
 * only if it returns true. The two full fences pair: either the sleeper's re-check sees the new
 * index, or the publisher sees the flag. */
static inline void ring_sleep_prepare(uint32_t *own_flags) {
        ring_flag_set(own_flags, RING_FLAG_NEED_WAKEUP);
        rwkv_smp_mb(); /* flag store before the index re-check; pairs with ring_peer_needs_wakeup() */
}

static inline bool ring_peer_needs_wakeup(const uint32_t *peer_flags) {
        rwkv_smp_mb(); /* index store (release) before the flag load; pairs with ring_sleep_prepare() */
        return RWKV_READ_ONCE(*peer_flags) & RING_FLAG_NEED_WAKEUP;
}
