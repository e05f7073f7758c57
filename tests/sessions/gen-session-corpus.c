/* gen-session-corpus: writes the seed corpus of fuzz-session-file (valid files sealed with the fuzz
 * key, and [u16 length][header]([u16 length][block])... inputs for its sealing harness). Run by hand:
 *   gen-session-corpus tests/sessions/corpus-session-file */
#include <sodium.h>
#include <stdio.h>

#include "daemon/store-format.h"
#include "tests/sessions/store-test-util.h"

static const uint8_t fuzz_key[32] = {
        0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42,
        0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42,
};

static void put(const char *dir, const char *name, const void *a, size_t na, const void *b, size_t nb) {
        char p[4096];
        snprintf(p, sizeof(p), "%s/%s", dir, name);
        FILE *f = fopen(p, "we");
        CHECK(f);
        CHECK(fwrite(a, 1, na, f) == na);
        if (nb)
                CHECK(fwrite(b, 1, nb, f) == nb);
        CHECK(fclose(f) == 0);
}

int main(int argc, char **argv) {
        CHECK(argc == 2);
        CHECK(sodium_init() >= 0);
        const char *dir = argv[1];
        struct {
                const char *name;
                int prec, level, shuffle;
                size_t nstate;
                uint32_t nvocab;
                size_t text;
                SfKind kind;
        } v[] = {
                { "session-f32-zstd", 0, 1, 1, 2000, 1500, 5000, SF_KIND_SESSION },
                { "session-f16-zstd", 1, 1, 1, 200, 0, 0, SF_KIND_SESSION },
                { "session-bf16-raw", 2, 0, 0, 64, 4, 3, SF_KIND_SESSION },
                { "export-f32", 0, 3, 1, 100, 8, 0, SF_KIND_EXPORT },
        };
        for (size_t i = 0; i < ELEMENTSOF(v); i++) {
                SessionRecord *r = test_record("seed", v[i].nstate, v[i].nvocab, v[i].text, i + 1);
                SfEncodeParams p = { .kind = v[i].kind,
                                     .uid = 1000,
                                     .key = fuzz_key,
                                     .precision = v[i].prec,
                                     .zstd_level = v[i].level,
                                     .shuffle = v[i].shuffle,
                                     .block_log2 = 12 };
                uint8_t *buf;
                size_t size;
                CHECK_OK(sf_encode(r, &p, &buf, &size, NULL));
                put(dir, v[i].name, buf, size, NULL, 0);
                put(dir, "truncated", buf, size / 2, NULL, 0);

                /* The same record in the harness's plaintext form: decrypt it back with the key. */
                crypto_secretstream_xchacha20poly1305_state st;
                CHECK(crypto_secretstream_xchacha20poly1305_init_pull(&st, buf + 24, fuzz_key) == 0);
                uint32_t hclen = buf[20] | buf[21] << 8 | buf[22] << 16 | (uint32_t)buf[23] << 24;
                uint8_t plain[SF_HEADER_MAX + 2];
                unsigned long long hl;
                unsigned char tag;
                CHECK(crypto_secretstream_xchacha20poly1305_pull(&st, plain + 2, &hl, &tag, buf + 64, hclen, buf, 64) ==
                      0);
                plain[0] = (uint8_t)hl;
                plain[1] = (uint8_t)(hl >> 8);
                SfHeader h;
                CHECK_OK(sf_header_parse(plain + 2, hl, &h, NULL));
                /* Blocks as [u16 length][plaintext]. */
                uint8_t *blocks = malloc(size), *msg = malloc(size);
                size_t pos = 64 + hclen, bpos = 0;
                while (pos < size) {
                        uint32_t ml = buf[pos] | buf[pos + 1] << 8 | buf[pos + 2] << 16 | (uint32_t)buf[pos + 3] << 24;
                        unsigned long long n;
                        CHECK(crypto_secretstream_xchacha20poly1305_pull(&st, msg, &n, &tag, buf + pos + 4, ml, NULL,
                                                                         0) == 0);
                        CHECK(n < 65536);
                        blocks[bpos] = (uint8_t)n;
                        blocks[bpos + 1] = (uint8_t)(n >> 8);
                        memcpy(blocks + bpos + 2, msg, n);
                        bpos += 2 + n;
                        pos += 4 + ml;
                }
                char name[128];
                snprintf(name, sizeof(name), "plain-%s", v[i].name);
                put(dir, name, plain, hl + 2, blocks, bpos);
                free(blocks);
                free(msg);
                free(buf);
                session_record_free(r);
        }
        return 0;
}
