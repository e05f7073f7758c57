/* fuzz-session-file: the session file parser against hostile bytes.
 *
 * Three views of one input: (1) a whole file, as the loader reads it (almost always stops at
 * authentication, which is the point); (2) the plaintext header parser alone; (3) the input read
 * as [u16 header length][header][payload], sealed here with a fixed key so that the hostile bytes
 * reach everything behind authentication: size checks, zstd, byte planes, half floats.
 *
 * Built with -fsanitize=fuzzer (meson -Dfuzz=true, tools/run-fuzzers) it is a libFuzzer target; with
 * FUZZ_STANDALONE_MAIN its own main() runs every file (or every file in every folder) given on the
 * command line once, which is how the corpus (tests/sessions/corpus-session-file) runs as a test. */
#include <dirent.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "daemon/store-format.h"

#define SS_ABYTES crypto_secretstream_xchacha20poly1305_ABYTES

static const uint8_t fuzz_key[32] = {
        0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42,
        0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42,
};

static void put_u32(uint8_t *p, uint32_t v) {
        for (int b = 0; b < 4; b++)
                p[b] = (uint8_t)(v >> (8 * b));
}

/* Input: [u16 header length][header][blocks...], each block [u16 length][plaintext]. The header's
 * payload_bytes is patched to what the blocks add up to, so the fuzzer does not need to guess it. */
static void seal_and_decode(const uint8_t *data, size_t size) {
        if (size < 2)
                return;
        size_t hlen = (size_t)data[0] | (size_t)data[1] << 8;
        data += 2;
        size -= 2;
        if (hlen > size || hlen > SF_HEADER_MAX)
                return;
        SfHeader h;
        uint8_t hdr[SF_HEADER_MAX + 16];
        if (sf_header_parse(data, hlen, &h, NULL) < 0)
                return;
        if (h.raw_size > (64u << 20)) /* keep the fuzzer's memory bounded; the cap itself is tested */
                return;
        const uint8_t *blocks = data + hlen;
        size_t blen = size - hlen, nblocks = 0, payload = 0;
        for (size_t off = 0; off + 2 <= blen;) {
                size_t n = (size_t)blocks[off] | (size_t)blocks[off + 1] << 8;
                if (off + 2 + n > blen)
                        break;
                nblocks++;
                payload += 4 + crypto_secretstream_xchacha20poly1305_ABYTES + n;
                off += 2 + n;
        }
        h.payload_bytes = payload;
        size_t hl = sf_header_write(&h, hdr, sizeof(hdr));
        if (hl > SF_HEADER_MAX || sf_header_parse(hdr, hl, &h, NULL) < 0)
                return;
        size_t total = SF_PREFIX_BYTES + hl + SS_ABYTES + payload;
        uint8_t *f = calloc(1, total);
        if (!f)
                return;
        memcpy(f, SF_MAGIC, 8);
        put_u32(f + 8, SF_VERSION);
        put_u32(f + 12, SF_KIND_SESSION);
        put_u32(f + 16, 1000);
        put_u32(f + 20, (uint32_t)(hl + SS_ABYTES));
        crypto_secretstream_xchacha20poly1305_state st;
        crypto_secretstream_xchacha20poly1305_init_push(&st, f + 24, fuzz_key);
        size_t pos = SF_PREFIX_BYTES;
        crypto_secretstream_xchacha20poly1305_push(&st, f + pos, NULL, hdr, hl, f, SF_PREFIX_BYTES,
                                                   crypto_secretstream_xchacha20poly1305_TAG_MESSAGE);
        pos += hl + SS_ABYTES;
        size_t i = 0;
        for (size_t off = 0; i < nblocks; i++) {
                size_t n = (size_t)blocks[off] | (size_t)blocks[off + 1] << 8;
                put_u32(f + pos, (uint32_t)(n + SS_ABYTES));
                pos += 4;
                crypto_secretstream_xchacha20poly1305_push(&st, f + pos, NULL, blocks + off + 2, n, NULL, 0,
                                                           i + 1 == nblocks
                                                                   ? crypto_secretstream_xchacha20poly1305_TAG_FINAL
                                                                   : crypto_secretstream_xchacha20poly1305_TAG_MESSAGE);
                pos += n + SS_ABYTES;
                off += 2 + n;
        }
        SessionRecord *rec = NULL;
        if (sf_decode(f, total, fuzz_key, SF_KIND_SESSION, 1000, &rec, NULL) >= 0) {
                /* Whatever decodes must be internally consistent. */
                if (!rec->state || rec->meta.state_floats != h.meta.state_floats)
                        abort();
                session_record_free(rec);
        }
        free(f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static bool init;
        if (!init) {
                if (sodium_init() < 0)
                        abort();
                init = true;
        }
        SessionRecord *rec = NULL;
        RwkvError err;
        if (sf_decode(data, size, fuzz_key, SF_KIND_SESSION, (uid_t)-1, &rec, &err) >= 0)
                session_record_free(rec);
        SessionMeta m;
        uint64_t total;
        (void)sf_decode_header(data, size, fuzz_key, SF_KIND_EXPORT, (uid_t)-1, &m, &total, NULL);
        SfHeader h;
        (void)sf_header_parse(data, size, &h, NULL);
        seal_and_decode(data, size);
        return 0;
}

#if defined(FUZZ_STANDALONE_MAIN) && !defined(FUZZING_ENGINE_LIBFUZZER)
/* Until the tree's fuzz driver (tools/run-fuzzers) is in every build: replay files/folders. */
static int run_file(const char *path) {
        FILE *f = fopen(path, "re");
        if (!f) {
                fprintf(stderr, "%s: %m\n", path);
                return -1;
        }
        uint8_t *buf = NULL;
        size_t n = 0, cap = 0;
        for (;;) {
                if (n == cap) {
                        cap = cap ? cap * 2 : 65536;
                        uint8_t *nb = realloc(buf, cap);
                        if (!nb)
                                abort();
                        buf = nb;
                }
                size_t l = fread(buf + n, 1, cap - n, f);
                if (l == 0)
                        break;
                n += l;
        }
        fclose(f);
        LLVMFuzzerTestOneInput(buf, n);
        free(buf);
        return 0;
}

int main(int argc, char **argv) {
        int failed = 0, runs = 0;
        for (int i = 1; i < argc; i++) {
                struct stat st;
                if (stat(argv[i], &st) < 0) {
                        fprintf(stderr, "%s: %m\n", argv[i]);
                        return 1;
                }
                if (!S_ISDIR(st.st_mode)) {
                        failed |= run_file(argv[i]) < 0;
                        runs++;
                        continue;
                }
                DIR *d = opendir(argv[i]);
                struct dirent *de;
                while (d && (de = readdir(d))) {
                        if (de->d_name[0] == '.')
                                continue;
                        char p[4096];
                        snprintf(p, sizeof(p), "%s/%s", argv[i], de->d_name);
                        failed |= run_file(p) < 0;
                        runs++;
                }
                if (d)
                        closedir(d);
        }
        fprintf(stderr, "%d inputs run\n", runs);
        return failed ? 1 : 0;
}
#endif
