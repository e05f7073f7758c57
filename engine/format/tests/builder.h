/* builder.h: build small .pth files in memory for tests (a zip of stored entries + a pickle the way
 * torch.save writes it), so hostile variants are one mutation away from a valid file. */
#pragma once

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/format/zip.h"
#include "tests/lib/check.h"

typedef struct Buf {
        uint8_t *p;
        size_t n, cap;
} Buf;

static inline void buf_put(Buf *b, const void *src, size_t n) {
        if (b->n + n > b->cap) {
                b->cap = (b->n + n) * 2 + 64;
                b->p = realloc(b->p, b->cap);
                CHECK(b->p);
        }
        if (n)
                memcpy(b->p + b->n, src, n);
        b->n += n;
}
static inline void buf_u8(Buf *b, uint8_t v) {
        buf_put(b, &v, 1);
}
static inline void buf_u16(Buf *b, uint16_t v) {
        uint8_t le[2] = { v, v >> 8 };
        buf_put(b, le, 2);
}
static inline void buf_u32(Buf *b, uint32_t v) {
        uint8_t le[4] = { v, v >> 8, v >> 16, v >> 24 };
        buf_put(b, le, 4);
}
static inline void buf_u64(Buf *b, uint64_t v) {
        buf_u32(b, (uint32_t)v);
        buf_u32(b, (uint32_t)(v >> 32));
}
static inline void buf_str(Buf *b, const char *s) {
        buf_put(b, s, strlen(s));
}

/* ---- zip ---- */
typedef struct ZipFileSpec {
        const char *name;
        const void *data;
        size_t size;
        uint16_t method;
} ZipFileSpec;

/* Stored entries, data 64-byte aligned like torch.save; zip64 records when asked. */
static inline void zip_build(Buf *b, const ZipFileSpec *files, size_t n, int zip64) {
        uint64_t *offsets = calloc(n, sizeof(uint64_t));
        CHECK(offsets);
        for (size_t i = 0; i < n; i++) {
                offsets[i] = b->n;
                size_t name_len = strlen(files[i].name);
                size_t pad = (64 - (b->n + 30 + name_len + 4) % 64) % 64;
                buf_u32(b, 0x04034b50);
                buf_u16(b, 20);
                buf_u16(b, 0);
                buf_u16(b, files[i].method);
                buf_u32(b, 0);
                buf_u32(b, zip_crc32(files[i].data, files[i].size));
                buf_u32(b, (uint32_t)files[i].size);
                buf_u32(b, (uint32_t)files[i].size);
                buf_u16(b, (uint16_t)name_len);
                buf_u16(b, (uint16_t)(pad + 4));
                buf_str(b, files[i].name);
                buf_u16(b, 0x4646); /* padding extra field, as PyTorch writes ("FF") */
                buf_u16(b, (uint16_t)pad);
                for (size_t k = 0; k < pad; k++)
                        buf_u8(b, 'Z');
                buf_put(b, files[i].data, files[i].size);
        }
        uint64_t cd_start = b->n;
        for (size_t i = 0; i < n; i++) {
                size_t name_len = strlen(files[i].name);
                buf_u32(b, 0x02014b50);
                buf_u16(b, 45);
                buf_u16(b, 45);
                buf_u16(b, 0);
                buf_u16(b, files[i].method);
                buf_u32(b, 0);
                buf_u32(b, zip_crc32(files[i].data, files[i].size));
                buf_u32(b, (uint32_t)files[i].size);
                buf_u32(b, (uint32_t)files[i].size);
                buf_u16(b, (uint16_t)name_len);
                buf_u16(b, zip64 ? 12 : 0);
                buf_u16(b, 0);
                buf_u16(b, 0);
                buf_u16(b, 0);
                buf_u32(b, 0);
                buf_u32(b, zip64 ? 0xffffffffu : (uint32_t)offsets[i]);
                buf_str(b, files[i].name);
                if (zip64) {
                        buf_u16(b, 1);
                        buf_u16(b, 8);
                        buf_u64(b, offsets[i]);
                }
        }
        uint64_t cd_size = b->n - cd_start;
        if (zip64) {
                uint64_t eocd64 = b->n;
                buf_u32(b, 0x06064b50);
                buf_u64(b, 44);
                buf_u16(b, 45);
                buf_u16(b, 45);
                buf_u32(b, 0);
                buf_u32(b, 0);
                buf_u64(b, n);
                buf_u64(b, n);
                buf_u64(b, cd_size);
                buf_u64(b, cd_start);
                buf_u32(b, 0x07064b50);
                buf_u32(b, 0);
                buf_u64(b, eocd64);
                buf_u32(b, 1);
        }
        buf_u32(b, 0x06054b50);
        buf_u16(b, 0);
        buf_u16(b, 0);
        buf_u16(b, zip64 ? 0xffff : (uint16_t)n);
        buf_u16(b, zip64 ? 0xffff : (uint16_t)n);
        buf_u32(b, zip64 ? 0xffffffffu : (uint32_t)cd_size);
        buf_u32(b, zip64 ? 0xffffffffu : (uint32_t)cd_start);
        buf_u16(b, 0);
        free(offsets);
}

/* ---- pickle ---- */
static inline void pk_unicode(Buf *b, const char *s) {
        buf_u8(b, 'X');
        buf_u32(b, (uint32_t)strlen(s));
        buf_str(b, s);
}
static inline void pk_int(Buf *b, int64_t v) {
        if (v >= 0 && v < 256) {
                buf_u8(b, 'K');
                buf_u8(b, (uint8_t)v);
        } else if (v >= 0 && v < 65536) {
                buf_u8(b, 'M');
                buf_u16(b, (uint16_t)v);
        } else if (v >= INT32_MIN && v <= INT32_MAX) {
                buf_u8(b, 'J');
                buf_u32(b, (uint32_t)v);
        } else {
                buf_u8(b, 0x8a);
                buf_u8(b, 8);
                buf_u64(b, (uint64_t)v);
        }
}
static inline void pk_global(Buf *b, const char *mod, const char *name) {
        buf_u8(b, 'c');
        buf_str(b, mod);
        buf_u8(b, '\n');
        buf_str(b, name);
        buf_u8(b, '\n');
}

typedef struct PthTensorSpec {
        const char *name;
        const char *storage; /* "FloatStorage", ... */
        const char *key;
        int64_t numel;
        int64_t offset;
        int n_dims;
        int64_t shape[4], stride[4];
} PthTensorSpec;

/* One tensor entry: key string, then _rebuild_tensor_v2(persid, offset, size, stride, False, OrderedDict()) */
static inline void pk_tensor(Buf *b, const PthTensorSpec *t) {
        pk_unicode(b, t->name);
        pk_global(b, "torch._utils", "_rebuild_tensor_v2");
        buf_u8(b, '(');
        buf_u8(b, '(');
        pk_unicode(b, "storage");
        pk_global(b, "torch", t->storage);
        pk_unicode(b, t->key);
        pk_unicode(b, "cpu");
        pk_int(b, t->numel);
        buf_u8(b, 't');
        buf_u8(b, 'Q');
        pk_int(b, t->offset);
        buf_u8(b, '(');
        for (int i = 0; i < t->n_dims; i++)
                pk_int(b, t->shape[i]);
        buf_u8(b, 't');
        buf_u8(b, '(');
        for (int i = 0; i < t->n_dims; i++)
                pk_int(b, t->stride[i]);
        buf_u8(b, 't');
        buf_u8(b, 0x89);
        pk_global(b, "collections", "OrderedDict");
        buf_u8(b, ')');
        buf_u8(b, 'R');
        buf_u8(b, 't');
        buf_u8(b, 'R');
}

static inline void pk_state_dict(Buf *b, const PthTensorSpec *ts, size_t n) {
        buf_u8(b, 0x80);
        buf_u8(b, 2);
        buf_u8(b, '}');
        buf_u8(b, 'q');
        buf_u8(b, 0);
        buf_u8(b, '(');
        for (size_t i = 0; i < n; i++)
                pk_tensor(b, &ts[i]);
        buf_u8(b, 'u');
        buf_u8(b, '.');
}
