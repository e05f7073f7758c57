/* test-tokenizer.c: properties of the World tokenizer on synthetic vocabularies (no reference data
 * needed): greedy longest match equals a naive matcher, round trip is exact for any bytes, and
 * streaming encode at random split points equals whole-buffer encode. */
#include <string.h>

#include "engine/text/tokenizer.h"
#include "engine/text/tests/text-test-util.h"

typedef struct Tok {
        uint8_t b[16];
        size_t len;
} Tok;

/* The 256 single bytes plus n_extra random tokens over a small alphabet (many shared prefixes, the
 * hard case for a trie), as vocabulary text; the tokens are also returned for the naive matcher. */
static char *make_vocab(Rng *r, size_t n_extra, Tok **ret_toks, size_t *ret_n) {
        size_t cap = (256 + n_extra) * 96, n = 0, nt = 0;
        char *v = malloc(cap);
        Tok *toks = calloc(256 + n_extra, sizeof(Tok));
        CHECK(v && toks);

        for (unsigned c = 0; c < 256; c++) {
                n += (size_t)snprintf(v + n, cap - n, "%u b'\\x%02x' 1\n", c + 1, c);
                toks[nt].b[0] = (uint8_t)c;
                toks[nt++].len = 1;
        }
        for (size_t k = 0; k < n_extra; k++) {
                Tok t = {};
                bool dup;
                do {
                        t.len = 2 + test_rand(r, 10);
                        for (size_t i = 0; i < t.len; i++)
                                t.b[i] = (uint8_t)("ab\x00\xff\n'\\"[test_rand(r, 7)]);
                        dup = false;
                        for (size_t j = 0; j < nt && !dup; j++)
                                dup = toks[j].len == t.len && memcmp(toks[j].b, t.b, t.len) == 0;
                } while (dup);
                toks[nt++] = t;
                n += (size_t)snprintf(v + n, cap - n, "%zu b'", 257 + k);
                for (size_t i = 0; i < t.len; i++)
                        n += (size_t)snprintf(v + n, cap - n, "\\x%02x", t.b[i]);
                n += (size_t)snprintf(v + n, cap - n, "' %zu\n", t.len);
        }
        *ret_toks = toks;
        *ret_n = nt;
        return v;
}

/* Greedy longest match, the obvious quadratic way. Token k has id k + 1. */
static size_t naive_encode(const Tok *toks, size_t nt, const uint8_t *s, size_t len, uint32_t *out) {
        size_t pos = 0, n = 0;
        while (pos < len) {
                size_t best = 0, best_len = 0;
                for (size_t k = 0; k < nt; k++)
                        if (toks[k].len <= len - pos && toks[k].len > best_len &&
                            memcmp(toks[k].b, s + pos, toks[k].len) == 0) {
                                best = k;
                                best_len = toks[k].len;
                        }
                CHECK(best_len > 0);
                out[n++] = (uint32_t)best + 1;
                pos += best_len;
        }
        return n;
}

static void random_text(Rng *r, const Tok *toks, size_t nt, uint8_t *s, size_t len) {
        size_t i = 0;
        while (i < len) {
                if (test_rand(r, 3) == 0)
                        s[i++] = (uint8_t)test_rand(r, 256);
                else {
                        const Tok *t = &toks[test_rand(r, (uint32_t)nt)];
                        for (size_t k = 0; k < t->len && i < len; k++)
                                s[i++] = t->b[k];
                }
        }
}

static void check_decode(const Tokenizer *t, const uint32_t *ids, size_t n, const uint8_t *s, size_t len) {
        size_t pos = 0;
        for (size_t i = 0; i < n; i++) {
                size_t l;
                const uint8_t *b = tokenizer_token_bytes(t, ids[i], &l);
                CHECK(b);
                CHECK(pos + l <= len);
                CHECK(memcmp(b, s + pos, l) == 0);
                pos += l;
        }
        CHECK(pos == len);
}

/* Feed s in random pieces; the encoder keeps its unconsumed tail, as a caller would. */
static size_t stream_encode(const Tokenizer *t, Rng *r, const uint8_t *s, size_t len, uint32_t *out, size_t out_cap) {
        size_t start = 0, avail = 0, n = 0;
        for (;;) {
                bool final;
                size_t consumed, k;
                size_t more = test_rand(r, 40);
                avail = MIN(len, avail + more);
                final = avail == len;
                /* Sometimes give the encoder only a little room for ids. */
                size_t cap = test_rand(r, 4) == 0 ? 1 + test_rand(r, 3) : out_cap - n;
                cap = MIN(cap, out_cap - n);
                CHECK_OK(tokenizer_encode(t, s + start, avail - start, final, out + n, cap, &consumed, &k));
                CHECK(k <= cap);
                /* Without final, what is left must be shorter than the longest token (or out of room). */
                if (!final && k < cap)
                        CHECK(avail - start - consumed < tokenizer_max_token_bytes(t));
                if (final && k < cap)
                        CHECK(consumed == avail - start);
                start += consumed;
                n += k;
                if (final && start == len)
                        break;
        }
        return n;
}

static void test_properties(uint64_t seed, size_t n_extra, size_t cases) {
        Rng r;
        Tok *toks;
        size_t nt;
        Tokenizer *t = NULL;
        RwkvError err = {};
        uint8_t s[300];
        uint32_t a[300], c[300];

        rng_seed(&r, seed);
        _cleanup_(freep) char *v = make_vocab(&r, n_extra, &toks, &nt);
        int ret = tokenizer_new_world(v, strlen(v), &t, &err);
        if (ret < 0)
                fprintf(stderr, "%s\n", err.msg);
        CHECK_OK(ret);

        for (size_t i = 0; i < cases; i++) {
                size_t len = test_rand(&r, sizeof(s) + 1), na, nb, nc;
                uint32_t *all = NULL;
                random_text(&r, toks, nt, s, len);

                na = naive_encode(toks, nt, s, len, a);
                CHECK_OK(tokenizer_encode_all(t, s, len, &all, &nb));
                CHECK(nb == na);
                CHECK(memcmp(all, a, na * sizeof(uint32_t)) == 0);
                free(all);
                check_decode(t, a, na, s, len);

                nc = stream_encode(t, &r, s, len, c, ELEMENTSOF(c));
                CHECK(nc == na);
                CHECK(memcmp(c, a, na * sizeof(uint32_t)) == 0);
        }
        free(toks);
        tokenizer_free(t);
}

/* Byte-level: round trip of random bytes, streaming included. */
static void test_bytes_round_trip(void) {
        Tokenizer *t = NULL;
        Rng r;
        uint8_t s[300];
        uint32_t ids[300];

        rng_seed(&r, 7);
        CHECK_OK(tokenizer_new_bytes(&t));
        for (int i = 0; i < 2000; i++) {
                size_t len = test_rand(&r, sizeof(s) + 1), n;
                for (size_t k = 0; k < len; k++)
                        s[k] = (uint8_t)rng_next(&r);
                n = stream_encode(t, &r, s, len, ids, ELEMENTSOF(ids));
                CHECK(n == len);
                check_decode(t, ids, n, s, len);
        }
        tokenizer_free(t);
}

int main(void) {
        test_properties(1, 0, 200);   /* only single bytes */
        test_properties(2, 40, 1000); /* few long tokens */
        test_properties(3, 600, 500); /* dense: shared prefixes everywhere */
        test_bytes_round_trip();
        return 0;
}
