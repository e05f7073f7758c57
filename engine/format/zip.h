/* zip.h: a read-only view of a zip archive in memory (stored entries; zip64 aware).
 *
 * Only what PyTorch's torch.save writes is needed: the central directory is the truth, each
 * entry's local header gives where its bytes start, and every entry must be stored (method 0):
 * weights are mapped in place, never inflated. All offsets are checked against the buffer. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "engine/common/error.h"

typedef struct ZipEntry {
        const char *name; /* inside the central directory, not NUL-terminated */
        size_t name_len;
        uint16_t method; /* 0 = stored */
        uint32_t crc32;
        const uint8_t *data; /* NULL unless method is 0 */
        uint64_t size;
} ZipEntry;

typedef struct ZipArchive ZipArchive;

int zip_open(const uint8_t *data, size_t size, ZipArchive **ret, RwkvError *err);
ZipArchive *zip_free(ZipArchive *z);
DEFINE_TRIVIAL_CLEANUP_FUNC(ZipArchive *, zip_free);

size_t zip_count(const ZipArchive *z);
const ZipEntry *zip_entry_at(const ZipArchive *z, size_t i);
const ZipEntry *zip_find(const ZipArchive *z, const char *name, size_t name_len);

/* The CRC-32 of zip (IEEE 802.3, reflected). */
uint32_t zip_crc32(const uint8_t *p, size_t n);
