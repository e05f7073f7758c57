/* test-world.c: the RWKV World tokenizer against the reference vocabulary and the reference cases
 * (../shared/reference; skipped when absent). */
#include <json-c/json.h>
#include <string.h>

#include "engine/text/tokenizer.h"
#include "engine/text/tests/text-test-util.h"

static Tokenizer *load(const char *dir) {
        char path[4096];
        Tokenizer *t = NULL;
        RwkvError err = {};
        int r;

        snprintf(path, sizeof(path), "%s/rwkv_vocab_v20230424.txt", dir);
        r = tokenizer_load_world(path, &t, &err);
        if (r == -ENOENT)
                SKIP("%s is absent", path);
        if (r < 0)
                fprintf(stderr, "%s\n", error_message(&err, r));
        CHECK_OK(r);
        return t;
}

static int hex_nibble(char c) {
        return c >= '0' && c <= '9'   ? c - '0'
               : c >= 'a' && c <= 'f' ? c - 'a' + 10
               : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                      : -1;
}

static void test_cases(const Tokenizer *t, const char *dir) {
        char path[4096];
        size_t len, n_cases = 0;

        snprintf(path, sizeof(path), "%s/world-tokenizer-cases.jsonl", dir);
        _cleanup_(freep) char *text = test_read_file(path, &len);
        if (!text) {
                fprintf(stderr, "note: %s is absent, reference cases not checked\n", path);
                return;
        }
        for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
                json_object *o = json_tokener_parse(line), *hex, *tokens;
                CHECK(o);
                CHECK(json_object_object_get_ex(o, "hex", &hex) && json_object_object_get_ex(o, "tokens", &tokens));
                const char *h = json_object_get_string(hex);
                size_t hl = strlen(h), n_expect = json_object_array_length(tokens), n;
                uint8_t *bytes = malloc(hl / 2 + 1);
                uint32_t *ids = NULL;
                CHECK(bytes && hl % 2 == 0);
                for (size_t i = 0; i < hl / 2; i++) {
                        int hi = hex_nibble(h[2 * i]), lo = hex_nibble(h[2 * i + 1]);
                        CHECK(hi >= 0 && lo >= 0);
                        bytes[i] = (uint8_t)(hi << 4 | lo);
                }
                CHECK_OK(tokenizer_encode_all(t, bytes, hl / 2, &ids, &n));
                if (n != n_expect)
                        fprintf(stderr, "case %s: %zu ids, expected %zu\n", h, n, n_expect);
                CHECK(n == n_expect);
                for (size_t i = 0; i < n; i++) {
                        uint32_t e = (uint32_t)json_object_get_int64(json_object_array_get_idx(tokens, i));
                        if (ids[i] != e)
                                fprintf(stderr, "case %s: id %zu is %u, expected %u\n", h, i, ids[i], e);
                        CHECK(ids[i] == e);
                }
                /* ... and back. */
                size_t pos = 0;
                for (size_t i = 0; i < n; i++) {
                        size_t l;
                        const uint8_t *b = tokenizer_token_bytes(t, ids[i], &l);
                        CHECK(b && pos + l <= hl / 2 && memcmp(b, bytes + pos, l) == 0);
                        pos += l;
                }
                CHECK(pos == hl / 2);
                free(ids);
                free(bytes);
                json_object_put(o);
                n_cases++;
        }
        CHECK(n_cases > 0);
        fprintf(stderr, "%zu reference cases match\n", n_cases);
}

/* Random mixes of vocabulary tokens and random bytes: round trip exact, streaming == whole, and the
 * greedy property (no token starting at a token boundary is longer than the one chosen). */
static void test_random(const Tokenizer *t) {
        Rng r;
        uint8_t s[1024];
        uint32_t a[1024], c[1024];
        uint32_t nv = tokenizer_vocab_size(t);

        rng_seed(&r, 42);
        for (int iter = 0; iter < 3000; iter++) {
                size_t len = test_rand(&r, sizeof(s) + 1), i = 0, n, m;
                while (i < len) {
                        size_t l;
                        const uint8_t *b = NULL;
                        if (test_rand(&r, 4) != 0)
                                b = tokenizer_token_bytes(t, 1 + test_rand(&r, nv - 1), &l);
                        if (!b) {
                                s[i++] = (uint8_t)rng_next(&r);
                                continue;
                        }
                        for (size_t k = 0; k < l && i < len; k++)
                                s[i++] = b[k];
                }
                size_t consumed;
                CHECK_OK(tokenizer_encode(t, s, len, true, a, ELEMENTSOF(a), &consumed, &n));
                CHECK(consumed == len);

                /* Decode and check greediness at every boundary with a brute-force lookup of
                 * every token id (sampled: only on some iterations, it is O(vocab)). */
                size_t pos = 0;
                for (size_t k = 0; k < n; k++) {
                        size_t l;
                        const uint8_t *b = tokenizer_token_bytes(t, a[k], &l);
                        CHECK(b && pos + l <= len && memcmp(b, s + pos, l) == 0);
                        if (iter % 300 == 0 && k < 50)
                                for (uint32_t id = 1; id < nv; id++) {
                                        size_t l2;
                                        const uint8_t *b2 = tokenizer_token_bytes(t, id, &l2);
                                        CHECK(b2);
                                        CHECK(!(l2 > l && pos + l2 <= len && memcmp(b2, s + pos, l2) == 0));
                                }
                        pos += l;
                }
                CHECK(pos == len);

                /* Streaming at random split points. */
                size_t start = 0, avail = 0;
                m = 0;
                for (;;) {
                        size_t k;
                        size_t more = test_rand(&r, 200);
                        avail = MIN(len, avail + more);
                        bool final = avail == len;
                        CHECK_OK(tokenizer_encode(t, s + start, avail - start, final, c + m, ELEMENTSOF(c) - m,
                                                  &consumed, &k));
                        if (!final)
                                CHECK(avail - start - consumed < tokenizer_max_token_bytes(t));
                        start += consumed;
                        m += k;
                        if (final)
                                break;
                }
                CHECK(start == len);
                CHECK(m == n && memcmp(a, c, n * sizeof(uint32_t)) == 0);
        }
}

int main(void) {
        const char *dir = test_reference_dir();
        Tokenizer *t = load(dir);

        CHECK(tokenizer_vocab_size(t) == 65530);
        CHECK(tokenizer_max_token_bytes(t) == 128);
        CHECK(!tokenizer_is_bytes(t));
        /* ids 1..256 are the single bytes */
        for (uint32_t b = 0; b < 256; b++) {
                size_t l;
                const uint8_t *p = tokenizer_token_bytes(t, b + 1, &l);
                CHECK(p && l == 1 && p[0] == b);
        }
        CHECK(tokenizer_token_bytes(t, 0, NULL) == NULL);

        test_cases(t, dir);
        test_random(t);
        tokenizer_free(t);
        return 0;
}
