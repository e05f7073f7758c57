/* zip.c: central directory parsing, zip64, local headers; no decompression on purpose. */
#include <inttypes.h>
#include <string.h>

#include "engine/format/tensor-table-private.h"
#include "engine/format/zip.h"

#define SIG_LOCAL UINT32_C(0x04034b50)
#define SIG_CENTRAL UINT32_C(0x02014b50)
#define SIG_EOCD UINT32_C(0x06054b50)
#define SIG_EOCD64 UINT32_C(0x06064b50)
#define SIG_EOCD64_LOCATOR UINT32_C(0x07064b50)

#define EOCD_SIZE 22
#define EOCD64_LOCATOR_SIZE 20
#define EOCD64_SIZE 56
#define CENTRAL_SIZE 46
#define LOCAL_SIZE 30
#define ZIP_MAX_ENTRIES (1u << 20)

struct ZipArchive {
        ZipEntry *entries;
        size_t n;
};

ZipArchive *zip_free(ZipArchive *z) {
        if (!z)
                return NULL;
        free(z->entries);
        free(z);
        return NULL;
}

uint32_t zip_crc32(const uint8_t *p, size_t n) {
        uint32_t c = UINT32_MAX;
        while (n--) {
                c ^= *p++;
                for (int k = 0; k < 8; k++)
                        c = (c >> 1) ^ (UINT32_C(0xedb88320) & (0u - (c & 1)));
        }
        return ~c;
}

/* The zip64 extended-information extra field replaces, in this order, each 32-bit field that
 * holds 0xffffffff: uncompressed size, compressed size, local header offset. */
static int apply_zip64_extra(const uint8_t *extra, size_t len, uint64_t *usize, uint64_t *csize, uint64_t *offset,
                             RwkvError *err) {
        while (len >= 4) {
                uint16_t id = read_le16(extra), n = read_le16(extra + 2);
                if (n > len - 4)
                        return error_set(err, EBADMSG, "zip: extra field overruns its entry");
                if (id == 0x0001) {
                        const uint8_t *q = extra + 4;
                        size_t left = n;
                        uint64_t *fields[] = { usize, csize, offset };
                        for (size_t i = 0; i < ELEMENTSOF(fields); i++) {
                                if (*fields[i] != UINT32_MAX)
                                        continue;
                                if (left < 8)
                                        return error_set(err, EBADMSG, "zip: short zip64 extra field");
                                *fields[i] = read_le64(q);
                                q += 8;
                                left -= 8;
                        }
                        return 0;
                }
                extra += 4 + n;
                len -= 4 + n;
        }
        return 0;
}

static int find_eocd(const uint8_t *data, size_t size, size_t *ret, RwkvError *err) {
        if (size < EOCD_SIZE)
                return error_set(err, EBADMSG, "zip: too short for an end-of-central-directory record");
        /* The record is last, followed only by a comment of at most 65535 bytes. */
        size_t lowest = size > EOCD_SIZE + 65535 ? size - EOCD_SIZE - 65535 : 0;
        for (size_t off = size - EOCD_SIZE;; off--) {
                if (read_le32(data + off) == SIG_EOCD && off + EOCD_SIZE + read_le16(data + off + 20) == size) {
                        *ret = off;
                        return 0;
                }
                if (off == lowest)
                        break;
        }
        return error_set(err, EBADMSG, "zip: no end-of-central-directory record (truncated file?)");
}

int zip_open(const uint8_t *data, size_t size, ZipArchive **ret, RwkvError *err) {
        size_t eocd = 0;
        int r = find_eocd(data, size, &eocd, err);
        if (r < 0)
                return r;
        const uint8_t *e = data + eocd;
        if (read_le16(e + 4) != 0 || read_le16(e + 6) != 0)
                return error_set(err, EPROTONOSUPPORT, "zip: multi-disk archives are not supported");
        uint64_t count = read_le16(e + 10), cd_size = read_le32(e + 12), cd_offset = read_le32(e + 16);

        if (count == UINT16_MAX || cd_size == UINT32_MAX || cd_offset == UINT32_MAX) {
                if (eocd < EOCD64_LOCATOR_SIZE || read_le32(data + eocd - EOCD64_LOCATOR_SIZE) != SIG_EOCD64_LOCATOR)
                        return error_set(err, EBADMSG, "zip: zip64 sizes without a zip64 locator");
                uint64_t off64 = read_le64(data + eocd - EOCD64_LOCATOR_SIZE + 8);
                if (off64 > size || size - off64 < EOCD64_SIZE || read_le32(data + off64) != SIG_EOCD64)
                        return error_set(err, EBADMSG, "zip: bad zip64 end-of-central-directory offset");
                const uint8_t *e64 = data + off64;
                count = read_le64(e64 + 32);
                cd_size = read_le64(e64 + 40);
                cd_offset = read_le64(e64 + 48);
        }
        if (cd_offset > size || cd_size > size - cd_offset)
                return error_set(err, EBADMSG, "zip: central directory outside the file");
        if (count > ZIP_MAX_ENTRIES || count > cd_size / CENTRAL_SIZE + 1)
                return error_set(err, EBADMSG, "zip: %" PRIu64 " entries do not fit the central directory", count);

        _cleanup_(zip_freep) ZipArchive *z = calloc(1, sizeof(ZipArchive));
        if (!z)
                return -ENOMEM;
        z->entries = calloc(count ? count : 1, sizeof(ZipEntry));
        if (!z->entries)
                return -ENOMEM;

        const uint8_t *p = data + cd_offset, *end = p + cd_size;
        for (uint64_t i = 0; i < count; i++) {
                if ((size_t)(end - p) < CENTRAL_SIZE || read_le32(p) != SIG_CENTRAL)
                        return error_set(err, EBADMSG, "zip: central directory entry %" PRIu64 " is damaged", i);
                uint16_t flags = read_le16(p + 8), method = read_le16(p + 10);
                uint32_t crc = read_le32(p + 16);
                uint64_t csize = read_le32(p + 20), usize = read_le32(p + 24);
                size_t name_len = read_le16(p + 28), extra_len = read_le16(p + 30), comment_len = read_le16(p + 32);
                uint64_t local = read_le32(p + 42);
                if ((size_t)(end - p) - CENTRAL_SIZE < name_len + extra_len + comment_len)
                        return error_set(err, EBADMSG, "zip: central directory entry %" PRIu64 " overruns", i);
                const char *name = (const char *)p + CENTRAL_SIZE;
                r = apply_zip64_extra(p + CENTRAL_SIZE + name_len, extra_len, &usize, &csize, &local, err);
                if (r < 0)
                        return r;
                p += CENTRAL_SIZE + name_len + extra_len + comment_len;

                ZipEntry *ze = &z->entries[i];
                *ze = (ZipEntry){ .name = name, .name_len = name_len, .method = method, .crc32 = crc, .size = usize };
                if (flags & 1)
                        return error_set(err, EPROTONOSUPPORT, "zip: entry '%.*s' is encrypted",
                                         (int)MIN(name_len, 200u), name);

                /* The local header repeats the name; its extra field (alignment padding in
                 * torch.save's archives) may differ from the central one. */
                if (local > size || size - local < LOCAL_SIZE || read_le32(data + local) != SIG_LOCAL)
                        return error_set(err, EBADMSG, "zip: entry '%.*s' has a bad local header offset",
                                         (int)MIN(name_len, 200u), name);
                uint64_t start = local + LOCAL_SIZE + read_le16(data + local + 26) + read_le16(data + local + 28);
                if (start > size || csize > size - start)
                        return error_set(err, EBADMSG, "zip: entry '%.*s' lies outside the file (truncated?)",
                                         (int)MIN(name_len, 200u), name);
                if (method == 0) {
                        if (csize != usize)
                                return error_set(err, EBADMSG, "zip: stored entry '%.*s' has two sizes",
                                                 (int)MIN(name_len, 200u), name);
                        ze->data = data + start;
                }
        }
        z->n = count;
        *ret = TAKE_PTR(z);
        return 0;
}

size_t zip_count(const ZipArchive *z) {
        return z->n;
}

const ZipEntry *zip_entry_at(const ZipArchive *z, size_t i) {
        return i < z->n ? &z->entries[i] : NULL;
}

const ZipEntry *zip_find(const ZipArchive *z, const char *name, size_t name_len) {
        for (size_t i = 0; i < z->n; i++)
                if (z->entries[i].name_len == name_len && memcmp(z->entries[i].name, name, name_len) == 0)
                        return &z->entries[i];
        return NULL;
}
