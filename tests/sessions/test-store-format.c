/* test-store-format: the session file codec: exact round trips, precisions, and that every byte of
 * a file is authenticated. */
#include <sodium.h>

#include "daemon/store-format.h"
#include "tests/sessions/store-test-util.h"

static uint8_t key[32], other_key[32];
static uint32_t block_log2; /* 0: default; 12: many small blocks */

static void roundtrip(StorePrecision prec, int level, bool shuffle, size_t nstate, uint32_t nvocab, size_t ntext) {
        SessionRecord *a = test_record("sess-1", nstate, nvocab, ntext, 42);
        SfEncodeParams p = { .kind = SF_KIND_SESSION,
                             .uid = 1000,
                             .key = key,
                             .precision = prec,
                             .zstd_level = level,
                             .shuffle = shuffle,
                             .block_log2 = block_log2 };
        uint8_t *buf;
        size_t size;
        RwkvError err = {};
        CHECK_OK(sf_encode(a, &p, &buf, &size, &err));
        SessionRecord *b = NULL;
        CHECK_OK(sf_decode(buf, size, key, SF_KIND_SESSION, 1000, &b, &err));
        CHECK(b->meta.file_bytes == size);
        CHECK(b->meta.precision == prec);
        CHECK(b->meta.uid == 1000);
        if (prec == STORE_PRECISION_F32)
                test_check_same(a, b);
        else {
                double tol = prec == STORE_PRECISION_F16 ? 1e-3 : 8e-3;
                for (size_t i = 0; i < nstate; i++)
                        CHECK_NEAR(b->state[i], a->state[i], tol * fabs(a->state[i]) + 1e-6);
                /* Only the state loses precision: logits, penalties, RNG stay exact. */
                SessionRecord tmp = *b;
                tmp.state = a->state;
                test_check_same(a, &tmp);
        }
        /* Header-only decode gives the same metadata and the exact file size. */
        SessionMeta m;
        uint64_t total;
        CHECK_OK(sf_decode_header(buf, size, key, SF_KIND_SESSION, 1000, &m, &total, &err));
        CHECK(total == size);
        CHECK(m.state_floats == nstate);
        /* Wrong key, wrong uid, wrong kind. */
        SessionRecord *c = NULL;
        CHECK_ERR(sf_decode(buf, size, other_key, SF_KIND_SESSION, 1000, &c, NULL), EBADMSG);
        CHECK_ERR(sf_decode(buf, size, key, SF_KIND_SESSION, 1001, &c, NULL), EBADMSG);
        CHECK_ERR(sf_decode(buf, size, key, SF_KIND_EXPORT, 1000, &c, NULL), EBADMSG);
        CHECK(!c);
        free(buf);
        session_record_free(a);
        session_record_free(b);
}

/* Every single-bit flip anywhere in a small file is refused (auth or parse), never accepted. */
static void every_bit_flip(void) {
        SessionRecord *a = test_record("flip", 300, 16, 20, 7);
        SfEncodeParams p = { .kind = SF_KIND_SESSION, .uid = 5, .key = key, .zstd_level = 1, .shuffle = true };
        uint8_t *buf;
        size_t size;
        CHECK_OK(sf_encode(a, &p, &buf, &size, NULL));
        for (size_t i = 0; i < size; i++)
                for (int bit = 0; bit < 8; bit += 3) {
                        buf[i] ^= (uint8_t)(1u << bit);
                        SessionRecord *b = NULL;
                        int r = sf_decode(buf, size, key, SF_KIND_SESSION, 5, &b, NULL);
                        /* The 8 reserved prefix bytes are authenticated too (additional data). */
                        if (r != (i >= 8 && i < 12 ? -EPROTONOSUPPORT : -EBADMSG)) {
                                fprintf(stderr, "flip at byte %zu bit %d: r=%d\n", i, bit, r);
                                exit(1);
                        }
                        buf[i] ^= (uint8_t)(1u << bit);
                }
        /* Every truncation too. */
        for (size_t n = 0; n < size; n++) {
                SessionRecord *b = NULL;
                CHECK_ERR(sf_decode(buf, n, key, SF_KIND_SESSION, 5, &b, NULL), EBADMSG);
        }
        /* And trailing garbage. */
        uint8_t *big = malloc(size + 1);
        memcpy(big, buf, size);
        big[size] = 0;
        SessionRecord *b = NULL;
        CHECK_ERR(sf_decode(big, size + 1, key, SF_KIND_SESSION, 5, &b, NULL), EBADMSG);
        free(big);
        free(buf);
        session_record_free(a);
}

/* The plaintext header parser refuses inconsistent sizes even when authenticated. */
static void header_validation(void) {
        SfHeader h = {};
        h.meta.state_floats = 100;
        h.meta.n_vocab = 10;
        h.block_log2 = 17;
        h.codec = SF_CODEC_ZSTD;
        h.raw_size = 400;
        h.payload_bytes = 50;
        uint8_t buf[SF_HEADER_MAX];
        size_t n = sf_header_write(&h, buf, sizeof(buf));
        SfHeader g;
        CHECK_OK(sf_header_parse(buf, n, &g, NULL));
        CHECK(g.raw_size == 400);

        SfHeader bad = h;
        bad.raw_size = 401;
        n = sf_header_write(&bad, buf, sizeof(buf));
        CHECK_ERR(sf_header_parse(buf, n, &g, NULL), EBADMSG);
        bad = h;
        bad.payload_bytes = UINT64_MAX;
        n = sf_header_write(&bad, buf, sizeof(buf));
        CHECK_ERR(sf_header_parse(buf, n, &g, NULL), EBADMSG);
        bad = h;
        bad.meta.state_floats = UINT64_MAX / 2;
        n = sf_header_write(&bad, buf, sizeof(buf));
        CHECK_ERR(sf_header_parse(buf, n, &g, NULL), EBADMSG);
        bad = h;
        bad.transcript_size = UINT64_MAX;
        n = sf_header_write(&bad, buf, sizeof(buf));
        CHECK_ERR(sf_header_parse(buf, n, &g, NULL), EBADMSG);
        bad = h;
        bad.flags = SF_FLAG_LOGITS; /* sizes no longer add up */
        n = sf_header_write(&bad, buf, sizeof(buf));
        CHECK_ERR(sf_header_parse(buf, n, &g, NULL), EBADMSG);
        bad = h;
        bad.block_log2 = 63;
        n = sf_header_write(&bad, buf, sizeof(buf));
        CHECK_ERR(sf_header_parse(buf, n, &g, NULL), EBADMSG);
        /* Truncated and trailing. */
        n = sf_header_write(&h, buf, sizeof(buf));
        for (size_t k = 0; k < n; k++)
                CHECK_ERR(sf_header_parse(buf, k, &g, NULL), EBADMSG);
        CHECK_ERR(sf_header_parse(buf, n + 1, &g, NULL), EBADMSG);
}

static void prefix_validation(void) {
        uint8_t p[SF_PREFIX_BYTES] = "RWKVSESS";
        SfPrefix pr;
        p[8] = 1;     /* version */
        p[12] = 1;    /* kind */
        p[20] = 0xff; /* header length 0xffffffff */
        p[21] = p[22] = p[23] = 0xff;
        CHECK_ERR(sf_prefix_parse(p, sizeof(p), &pr, NULL), EBADMSG);
        p[21] = p[22] = p[23] = 0;
        p[20] = 100;
        CHECK_OK(sf_prefix_parse(p, sizeof(p), &pr, NULL));
        p[8] = 2; /* the current version */
        CHECK_OK(sf_prefix_parse(p, sizeof(p), &pr, NULL));
        CHECK(pr.version == 2);
        p[8] = 3;
        RwkvError err = {};
        CHECK_ERR(sf_prefix_parse(p, sizeof(p), &pr, &err), EPROTONOSUPPORT);
        CHECK(strstr(err.msg, "version"));
        p[8] = 0;
        CHECK_ERR(sf_prefix_parse(p, sizeof(p), &pr, &err), EPROTONOSUPPORT);
}

/* Version 2 keeps the unfinished UTF-8 character a generation stopped in; only a proper prefix of
 * one valid sequence is accepted, by the writer and by the reader. */
static void utf8_carry(void) {
        static const struct {
                uint8_t b[3], n;
                bool ok;
        } cases[] = {
                { { 0 }, 0, true },
                { { 0xC3 }, 1, true },
                { { 0xE4, 0xB8 }, 2, true },
                { { 0xF0, 0x9F, 0x98 }, 3, true },
                { { 0xED, 0x9F }, 2, true },
                { { 0x41 }, 1, false },             /* ASCII is never held */
                { { 0x80 }, 1, false },             /* a continuation byte cannot start one */
                { { 0xC0 }, 1, false },             /* overlong lead */
                { { 0xC3, 0xA9 }, 2, false },       /* complete: nothing left to finish */
                { { 0xE0, 0x80 }, 2, false },       /* overlong */
                { { 0xED, 0xA0 }, 2, false },       /* surrogate */
                { { 0xF4, 0x90 }, 2, false },       /* beyond U+10FFFF */
                { { 0xF0, 0x9F, 0x41 }, 3, false }, /* not a continuation */
                { { 0xE4, 0xB8, 0xAD }, 3, false }, /* complete */
                { { 0xF0, 0x9F, 0x98 }, 4, false }, /* longer than a stream holds */
        };
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                SessionRecord *a = test_record("carry", 100, 8, 0, 3);
                memcpy(a->utf8.pending, cases[i].b, 3);
                a->utf8.n_pending = cases[i].n;
                SfEncodeParams p = { .kind = SF_KIND_SESSION, .uid = 5, .key = key, .zstd_level = -256, .shuffle = true };
                uint8_t *buf = NULL;
                size_t size;
                int r = sf_encode(a, &p, &buf, &size, NULL);
                if (!cases[i].ok) {
                        CHECK_ERR(r, EINVAL);
                        /* ... and the reader refuses it in an (authenticated) header. */
                        SfHeader h = { .meta = { .state_floats = 100 }, .block_log2 = 17, .raw_size = 400,
                                       .payload_bytes = 22 };
                        memcpy(h.utf8.pending, cases[i].b, 3);
                        h.utf8.n_pending = cases[i].n;
                        uint8_t hb[SF_HEADER_MAX];
                        size_t hn = sf_header_write(&h, hb, sizeof(hb));
                        SfHeader g;
                        CHECK_ERR(sf_header_parse(hb, hn, &g, NULL), EBADMSG);
                        session_record_free(a);
                        continue;
                }
                CHECK_OK(r);
                SessionRecord *b = NULL;
                CHECK_OK(sf_decode(buf, size, key, SF_KIND_SESSION, 5, &b, NULL));
                CHECK(b->utf8.n_pending == cases[i].n);
                CHECK(memcmp(b->utf8.pending, cases[i].b, cases[i].n) == 0);
                test_check_same(a, b);
                free(buf);
                session_record_free(a);
                session_record_free(b);
        }
        /* Bytes after the held ones are not part of it: written as zeros, and zeros required. */
        SfHeader h = { .meta = { .state_floats = 100 }, .block_log2 = 17, .raw_size = 400, .payload_bytes = 22 };
        h.utf8 = (Utf8Stream){ { 0xC3, 0x41, 0x42 }, 1 };
        uint8_t hb[SF_HEADER_MAX];
        size_t hn = sf_header_write(&h, hb, sizeof(hb));
        SfHeader g;
        CHECK_OK(sf_header_parse(hb, hn, &g, NULL));
        CHECK(g.utf8.n_pending == 1 && g.utf8.pending[0] == 0xC3 && g.utf8.pending[1] == 0);
        hb[hn - 2] = 0x41;
        CHECK_ERR(sf_header_parse(hb, hn, &g, NULL), EBADMSG);
        /* A version 1 header has no such field: 4 bytes shorter, and it parses as version 1 only. */
        h.version = 1;
        size_t h1 = sf_header_write(&h, hb, sizeof(hb));
        CHECK(h1 == hn - 4);
        CHECK_OK(sf_header_parse_version(1, hb, h1, &g, NULL));
        CHECK(g.utf8.n_pending == 0 && g.version == 1);
        CHECK_ERR(sf_header_parse(hb, h1, &g, NULL), EBADMSG);
}

/* Files of format version 1 (before the UTF-8 carry and plane-coded blocks) still load, exactly. */
static void old_version(void) {
        for (int level = -256; level <= 1; level += 257) {
                SessionRecord *a = test_record("old", 200000, 65536, 3000, 11);
                SfEncodeParams p = { .kind = SF_KIND_SESSION, .uid = 5, .key = key, .zstd_level = level,
                                     .shuffle = true, .version = 1 };
                uint8_t *buf;
                size_t size;
                CHECK_OK(sf_encode(a, &p, &buf, &size, NULL));
                CHECK(buf[8] == 1);
                SessionRecord *b = NULL;
                CHECK_OK(sf_decode(buf, size, key, SF_KIND_SESSION, 5, &b, NULL));
                test_check_same(a, b);
                CHECK(b->utf8.n_pending == 0);
                free(buf);
                session_record_free(b);
                /* A version 1 file cannot carry a character: the writer refuses rather than drop it. */
                a->utf8 = (Utf8Stream){ { 0xC3 }, 1 };
                CHECK_ERR(sf_encode(a, &p, &buf, &size, NULL), EINVAL);
                session_record_free(a);
        }
}

/* Files written by the version 1 code itself (the fuzz seeds made before version 2, sealed with the
 * fuzz key) load, and give back exactly the record gen-session-corpus sealed. */
static void old_files(void) {
        const char *root = getenv("RWKV_SOURCE_ROOT"); /* set by meson test */
        CHECK(root);
        static const uint8_t fuzz_key[32] = { [0 ... 31] = 0x42 };
        static const struct {
                const char *name;
                size_t nstate;
                uint32_t nvocab;
                size_t text;
                uint64_t seed;
                StorePrecision prec;
                SfKind kind;
        } v[] = {
                { "v1-session-f32-zstd", 2000, 1500, 5000, 1, STORE_PRECISION_F32, SF_KIND_SESSION },
                { "v1-session-bf16-raw", 64, 4, 3, 3, STORE_PRECISION_BF16, SF_KIND_SESSION },
                { "v1-export-f32", 100, 8, 0, 4, STORE_PRECISION_F32, SF_KIND_EXPORT },
        };
        for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
                char path[4096];
                snprintf(path, sizeof(path), "%s/tests/sessions/corpus-session-file/%s", root, v[i].name);
                FILE *f = fopen(path, "re");
                CHECK(f);
                uint8_t buf[65536];
                size_t size = fread(buf, 1, sizeof(buf), f);
                fclose(f);
                CHECK(size > 64 && buf[8] == 1);
                SessionRecord *b = NULL;
                RwkvError err = {};
                CHECK_OK(sf_decode(buf, size, fuzz_key, v[i].kind, 1000, &b, &err));
                SessionRecord *a = test_record("seed", v[i].nstate, v[i].nvocab, v[i].text, v[i].seed);
                if (v[i].prec == STORE_PRECISION_F32)
                        test_check_same(a, b);
                else
                        CHECK(b->meta.precision == v[i].prec && b->meta.state_floats == v[i].nstate);
                CHECK(b->utf8.n_pending == 0);
                session_record_free(a);
                session_record_free(b);
        }
}

/* Decrypt a sealed file, let mutate() change the plaintext of block `which` (it may change its
 * length, within cap), seal it again with the same key and header: what a hostile file that passes
 * authentication can be. Returns the new file (malloc'ed) and its size. */
typedef size_t (*MutateFn)(uint8_t *msg, size_t len, size_t cap);
static uint8_t *reseal(const uint8_t *buf, size_t size, size_t which, MutateFn mutate, size_t *ret_size) {
        enum { ABYTES = crypto_secretstream_xchacha20poly1305_ABYTES };
        crypto_secretstream_xchacha20poly1305_state in, out;
        uint8_t *o = malloc(size + 4096), *msg = malloc(size + 4096);
        CHECK(o && msg);
        memcpy(o, buf, 64);
        CHECK(crypto_secretstream_xchacha20poly1305_init_pull(&in, buf + 24, key) == 0);
        crypto_secretstream_xchacha20poly1305_init_push(&out, o + 24, key);
        uint32_t hclen = buf[20] | buf[21] << 8 | buf[22] << 16 | (uint32_t)buf[23] << 24;
        unsigned long long n;
        unsigned char tag;
        CHECK(crypto_secretstream_xchacha20poly1305_pull(&in, msg, &n, &tag, buf + 64, hclen, buf, 64) == 0);
        crypto_secretstream_xchacha20poly1305_push(&out, o + 64, NULL, msg, n, o, 64, tag);
        size_t pos = 64 + hclen, opos = pos;
        for (size_t i = 0; pos < size; i++) {
                uint32_t ml = buf[pos] | buf[pos + 1] << 8 | buf[pos + 2] << 16 | (uint32_t)buf[pos + 3] << 24;
                CHECK(crypto_secretstream_xchacha20poly1305_pull(&in, msg, &n, &tag, buf + pos + 4, ml, NULL, 0) == 0);
                size_t len = (size_t)n;
                if (i == which)
                        len = mutate(msg, len, size + 4096);
                uint32_t cl = (uint32_t)(len + ABYTES);
                CHECK(len == n); /* the header's payload size must still add up */
                for (int b = 0; b < 4; b++)
                        o[opos + b] = (uint8_t)(cl >> (8 * b));
                crypto_secretstream_xchacha20poly1305_push(&out, o + opos + 4, NULL, msg, len, NULL, 0, tag);
                pos += 4 + ml;
                opos += 4 + cl;
        }
        free(msg);
        *ret_size = opos;
        return o;
}

/* msg = [codec 2][plane 0: codec, u32 length, bytes][plane 1] ... */
static size_t plane_len(const uint8_t *m) {
        return m[1] | m[2] << 8 | m[3] << 16 | (size_t)m[4] << 24;
}
static size_t mut_none(uint8_t *m, size_t len, size_t cap) {
        CHECK(m[0] == SF_BLOCK_PLANES);
        return len;
}
static size_t mut_plane_codec(uint8_t *m, size_t len, size_t cap) {
        m[1] = 7;
        return len;
}
static size_t mut_plane_len_long(uint8_t *m, size_t len, size_t cap) {
        size_t l = plane_len(m + 1) + 1;
        for (int b = 0; b < 4; b++)
                m[2 + b] = (uint8_t)(l >> (8 * b));
        return len;
}
static size_t mut_plane_len_huge(uint8_t *m, size_t len, size_t cap) {
        m[2] = m[3] = m[4] = m[5] = 0xff;
        return len;
}
/* The first raw plane declared as zstd: not a frame of the right size. */
static size_t mut_raw_as_zstd(uint8_t *m, size_t len, size_t cap) {
        CHECK(m[1] == SF_BLOCK_RAW);
        m[1] = SF_BLOCK_ZSTD;
        return len;
}
/* Codec 2 in the transcript section, which has no planes. */
static size_t mut_block_codec(uint8_t *m, size_t len, size_t cap) {
        m[0] = SF_BLOCK_PLANES;
        return len;
}

static void hostile_planes(void) {
        SessionRecord *a = test_record("hostile", 3000, 16, 100, 9);
        SfEncodeParams p = { .kind = SF_KIND_SESSION, .uid = 5, .key = key, .zstd_level = -256, .shuffle = true };
        uint8_t *buf;
        size_t size, n;
        CHECK_OK(sf_encode(a, &p, &buf, &size, NULL));
        SessionRecord *b = NULL;
        /* The harness itself: an unchanged block reseals into a file that loads. */
        uint8_t *f = reseal(buf, size, 0, mut_none, &n);
        CHECK_OK(sf_decode(f, n, key, SF_KIND_SESSION, 5, &b, NULL));
        test_check_same(a, b);
        session_record_free(b);
        free(f);
        static const MutateFn bad[] = { mut_plane_codec, mut_plane_len_long, mut_plane_len_huge, mut_raw_as_zstd };
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                f = reseal(buf, size, 0, bad[i], &n);
                RwkvError err = {};
                b = NULL;
                CHECK_ERR(sf_decode(f, n, key, SF_KIND_SESSION, 5, &b, &err), EBADMSG);
                CHECK(strstr(err.msg, "plane"));
                CHECK(!b);
                free(f);
        }
        /* Blocks: state (1), logits (2), penalties (3), transcript (4). */
        f = reseal(buf, size, 3, mut_block_codec, &n);
        CHECK_ERR(sf_decode(f, n, key, SF_KIND_SESSION, 5, &b, NULL), EBADMSG);
        free(f);
        free(buf);
        session_record_free(a);
}

/* Plane-coded blocks: a realistic float state (random mantissas, clustered exponents) compresses
 * in its exponent plane only; penalty counts that are mostly zero compress in every plane. */
static void plane_blocks(void) {
        size_t n = 300000;
        SessionRecord *a = test_record("planes2", n, 65536, 0, 5);
        for (size_t i = 0; i < n; i++)
                a->state[i] = (float)((double)((i * 2654435761u) % 1000003) / 1000003.0 - 0.5) * 0.01f;
        memset(a->penalties, 0, 65536 * sizeof(float));
        for (size_t i = 0; i < 65536; i += 97)
                a->penalties[i] = 1.0f;
        SfEncodeParams p = { .kind = SF_KIND_SESSION, .uid = 5, .key = key, .zstd_level = -256, .shuffle = true };
        uint8_t *buf;
        size_t size;
        CHECK_OK(sf_encode(a, &p, &buf, &size, NULL));
        SessionRecord *b = NULL;
        CHECK_OK(sf_decode(buf, size, key, SF_KIND_SESSION, 5, &b, NULL));
        test_check_same(a, b);
        size_t raw = (n + 2 * 65536) * 4;
        CHECK(size < raw * 0.85);
        free(buf);
        session_record_free(a);
        session_record_free(b);
}

/* The documented payload layout, checked from outside the codec: with compression off, decrypting
 * the chunks gives the state as 4 byte planes (plane b = byte b of every float, little-endian). */
static void plane_layout(void) {
        size_t n = 1000; /* not a multiple of 16: the vector loop and its tail both run */
        SessionRecord *a = test_record("planes", n, 0, 0, 3);
        SfEncodeParams p = { .kind = SF_KIND_SESSION, .uid = 9, .key = key, .zstd_level = 0, .shuffle = true };
        uint8_t *buf;
        size_t size;
        CHECK_OK(sf_encode(a, &p, &buf, &size, NULL));
        crypto_secretstream_xchacha20poly1305_state st;
        CHECK(crypto_secretstream_xchacha20poly1305_init_pull(&st, buf + 24, key) == 0);
        uint32_t hclen = buf[20] | buf[21] << 8 | buf[22] << 16 | (uint32_t)buf[23] << 24;
        uint8_t hdr[SF_HEADER_MAX], *raw = malloc(4 * n);
        unsigned long long hl, pl;
        unsigned char tag;
        CHECK(crypto_secretstream_xchacha20poly1305_pull(&st, hdr, &hl, &tag, buf + 64, hclen, buf, 64) == 0);
        /* One block: u32 length, then the sealed [codec 0 = raw][4n bytes of planes]. */
        const uint8_t *m = buf + 64 + hclen;
        uint32_t mlen = m[0] | m[1] << 8 | m[2] << 16 | (uint32_t)m[3] << 24;
        CHECK(64 + hclen + 4 + mlen == size);
        uint8_t *msg = malloc(mlen);
        CHECK(crypto_secretstream_xchacha20poly1305_pull(&st, msg, &pl, &tag, m + 4, mlen, NULL, 0) == 0);
        CHECK(pl == 4 * n + 1 && msg[0] == SF_BLOCK_RAW && tag == crypto_secretstream_xchacha20poly1305_TAG_FINAL);
        memcpy(raw, msg + 1, 4 * n);
        free(msg);
        for (size_t i = 0; i < n; i++) {
                uint32_t v;
                memcpy(&v, &a->state[i], 4);
                for (int b = 0; b < 4; b++)
                        CHECK(raw[(size_t)b * n + i] == (uint8_t)(v >> (8 * b)));
        }
        free(raw);
        free(buf);
        session_record_free(a);
}

/* Half-precision conversions against known values (round to nearest even, subnormals, inf, NaN). */
static void half_values(void) {
        static const float in[] = { 0.0f,    -0.0f,    1.0f,          -2.5f,          65504.0f, 65520.0f, 1e-7f,
                                    6.1e-5f, 5.96e-8f, 1.0009765625f, 1.00048828125f, INFINITY, -INFINITY };
        size_t n = ELEMENTSOF(in);
        SessionRecord r = { .meta = { .id = "h", .state_floats = n } };
        r.state = (float *)in;
        for (int prec = 1; prec <= 2; prec++) {
                SfEncodeParams p = {
                        .kind = SF_KIND_SESSION, .uid = 9, .key = key, .precision = prec, .zstd_level = 1
                };
                uint8_t *buf;
                size_t size;
                CHECK_OK(sf_encode(&r, &p, &buf, &size, NULL));
                SessionRecord *b = NULL;
                CHECK_OK(sf_decode(buf, size, key, SF_KIND_SESSION, 9, &b, NULL));
                if (prec == 1) {
                        CHECK(b->state[0] == 0.0f && !signbit(b->state[0]) && signbit(b->state[1]));
                        CHECK(b->state[2] == 1.0f && b->state[3] == -2.5f && b->state[4] == 65504.0f);
                        CHECK(isinf(b->state[5]));                  /* rounds up past the max */
                        CHECK_NEAR(b->state[6], 1.19209e-7, 1e-10); /* subnormal half */
                        CHECK_NEAR(b->state[8], 5.96046e-8, 1e-12); /* smallest subnormal */
                        CHECK(b->state[9] == 1.0009765625f);        /* exactly representable */
                        CHECK(b->state[10] == 1.0f);                /* tie -> even */
                        CHECK(isinf(b->state[11]) && b->state[11] > 0 && isinf(b->state[12]) && b->state[12] < 0);
                } else {
                        CHECK(b->state[2] == 1.0f && b->state[3] == -2.5f && b->state[5] == 65536.0f);
                        CHECK(isinf(b->state[11]));
                }
                session_record_free(b);
                free(buf);
        }
}

int main(void) {
        CHECK(sodium_init() >= 0);
        randombytes_buf(key, sizeof(key));
        randombytes_buf(other_key, sizeof(other_key));
        for (int prec = 0; prec < 3; prec++)
                for (int shuffle = 0; shuffle < 4; shuffle++) {
                        block_log2 = shuffle >= 2 ? 12 : 0;
                        roundtrip((StorePrecision)prec, 1, shuffle & 1, 4099, 257, 10000);
                        roundtrip((StorePrecision)prec, 0, shuffle & 1, 4099, 0, 0);
                        roundtrip((StorePrecision)prec, -3, shuffle & 1, 4099, 5, 0);
                        roundtrip((StorePrecision)prec, 3, shuffle & 1, 1, 1, 1);
                }
        block_log2 = 0;
        /* More than one block (128 KiB), uncompressible raw path too. */
        roundtrip(STORE_PRECISION_F32, 1, true, 200000, 65536, 300000);
        roundtrip(STORE_PRECISION_F32, 0, false, 200000, 0, 0);
        every_bit_flip();
        plane_layout();
        half_values();
        header_validation();
        prefix_validation();
        utf8_carry();
        old_version();
        old_files();
        plane_blocks();
        hostile_planes();
        return 0;
}
