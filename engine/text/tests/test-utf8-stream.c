/* test-utf8-stream.c: only complete valid UTF-8 comes out, whatever the split; U+FFFD per maximal
 * invalid subpart. */
#include <string.h>

#include "engine/text/tests/text-test-util.h"
#include "engine/text/utf8-stream.h"

#define FFFD "\xef\xbf\xbd"

/* Feed in pieces of the given size (0: all at once), then flush. */
static size_t run(const uint8_t *in, size_t len, size_t piece, uint8_t *out) {
        Utf8Stream u;
        size_t o = 0;

        utf8_stream_init(&u);
        if (piece == 0)
                piece = len ? len : 1;
        for (size_t i = 0; i < len; i += piece) {
                size_t k = MIN(piece, len - i);
                size_t w = utf8_stream_feed(&u, in + i, k, out + o);
                CHECK(w <= UTF8_STREAM_OUT_MAX(k));
                /* Every emitted piece is valid on its own: that is the point. */
                CHECK(utf8_is_valid(out + o, w));
                o += w;
                CHECK(u.n_pending <= 3);
        }
        o += utf8_stream_flush(&u, out + o);
        return o;
}

static void check(const char *in, size_t len, const char *expect) {
        uint8_t out[256];
        for (size_t piece = 0; piece <= 4; piece++) {
                size_t n = run((const uint8_t *)in, len, piece, out);
                if (n != strlen(expect) || memcmp(out, expect, n) != 0) {
                        fprintf(stderr, "input of %zu bytes, piece %zu: got %zu bytes, expected %zu\n", len, piece, n,
                                strlen(expect));
                        CHECK(0);
                }
        }
}

#define CHECK_UTF8(in, expect) check(in, sizeof(in) - 1, expect)

static void test_cases(void) {
        CHECK_UTF8("", "");
        CHECK_UTF8("hello", "hello");
        CHECK_UTF8("caf\xc3\xa9", "caf\xc3\xa9");
        CHECK_UTF8("\xe4\xbd\xa0\xe5\xa5\xbd", "\xe4\xbd\xa0\xe5\xa5\xbd");
        CHECK_UTF8("\xf0\x9f\x98\x80!", "\xf0\x9f\x98\x80!");
        /* Stray continuation bytes and impossible bytes: one U+FFFD each. */
        CHECK_UTF8("\x80", FFFD);
        CHECK_UTF8("a\xbf\xbf"
                   "b",
                   "a" FFFD FFFD "b");
        CHECK_UTF8("\xff\xfe", FFFD FFFD);
        CHECK_UTF8("\xc0\xaf", FFFD FFFD); /* overlong lead C0 can start nothing */
        /* Truncated sequences: the maximal valid prefix is one U+FFFD, the next byte is reconsidered. */
        CHECK_UTF8("\xe4\xbd"
                   "a",
                   FFFD "a");
        CHECK_UTF8("\xf0\x9f\x98"
                   "a",
                   FFFD "a");
        CHECK_UTF8("\xe4\xbd\xe5\xa5\xbd", FFFD "\xe5\xa5\xbd");
        /* Overlong / surrogate / too large: the second byte is out of range. */
        CHECK_UTF8("\xe0\x80\x80", FFFD FFFD FFFD);
        CHECK_UTF8("\xed\xa0\x80", FFFD FFFD FFFD);
        CHECK_UTF8("\xf4\x90\x80\x80", FFFD FFFD FFFD FFFD);
        CHECK_UTF8("\xf0\x80\x80\x80", FFFD FFFD FFFD FFFD);
        /* Incomplete at the end: the flush emits one U+FFFD. */
        CHECK_UTF8("ab\xe4\xbd", "ab" FFFD);
        CHECK_UTF8("\xf0", FFFD);
        /* the reference tokenizer case with invalid UTF-8 */
        CHECK_UTF8("\xff\xfe\x80"
                   "A\xc3",
                   FFFD FFFD FFFD "A" FFFD);
}

static void test_nul(void) {
        uint8_t out[16];
        size_t n = run((const uint8_t *)"\0a\0", 3, 1, out);
        CHECK(n == 3 && memcmp(out, "\0a\0", 3) == 0);
}

/* Valid text split at every possible point comes out unchanged; random bytes always give valid
 * output, the same whatever the split, and a saved-and-restored stream (the struct copied) goes on
 * identically. */
static void test_random(void) {
        Rng r;
        uint8_t in[200], out1[UTF8_STREAM_OUT_MAX(200) + 3], out2[UTF8_STREAM_OUT_MAX(200) + 3];
        const char *valid = "h\xc3\xa9llo \xe4\xbd\xa0\xe5\xa5\xbd \xf0\x9f\x98\x80 \xd0\x9f";
        size_t vl = strlen(valid);

        for (size_t split = 0; split <= vl; split++) {
                Utf8Stream u;
                size_t o;
                utf8_stream_init(&u);
                o = utf8_stream_feed(&u, (const uint8_t *)valid, split, out1);
                o += utf8_stream_feed(&u, (const uint8_t *)valid + split, vl - split, out1 + o);
                o += utf8_stream_flush(&u, out1 + o);
                CHECK(o == vl && memcmp(out1, valid, vl) == 0);
        }

        rng_seed(&r, 99);
        for (int iter = 0; iter < 5000; iter++) {
                size_t len = test_rand(&r, sizeof(in) + 1);
                for (size_t i = 0; i < len; i++) {
                        /* Bias towards bytes that form (or almost form) sequences. */
                        uint32_t k = test_rand(&r, 4);
                        in[i] = (uint8_t)(k == 0   ? test_rand(&r, 0x80)
                                          : k == 1 ? 0x80 + test_rand(&r, 0x40)
                                                   : 0xC0 + test_rand(&r, 0x40));
                        if (test_rand(&r, 8) == 0)
                                in[i] = (uint8_t)rng_next(&r);
                }
                size_t n1 = run(in, len, 0, out1);
                CHECK(utf8_is_valid(out1, n1));

                /* Random pieces, with a save/restore (struct copy) in the middle. */
                Utf8Stream u, saved;
                size_t o = 0, i = 0;
                utf8_stream_init(&u);
                while (i < len) {
                        size_t want = test_rand(&r, 6), k = MIN(len - i, want);
                        o += utf8_stream_feed(&u, in + i, k, out2 + o);
                        i += k;
                        saved = u;
                        memset(&u, 0xAA, sizeof(u));
                        u = saved;
                }
                o += utf8_stream_flush(&u, out2 + o);
                CHECK(o == n1 && memcmp(out1, out2, n1) == 0);

                /* Valid input passes through unchanged. */
                if (utf8_is_valid(in, len))
                        CHECK(n1 == len && memcmp(in, out1, len) == 0);
        }
}

static void test_corrupt_state(void) {
        Utf8Stream u = { .n_pending = 200 };
        uint8_t out[UTF8_STREAM_OUT_MAX(1)];
        size_t n = utf8_stream_feed(&u, (const uint8_t *)"a", 1, out);
        CHECK(n == 1 && out[0] == 'a');

        /* Restored states that are not the valid start of one shorter character: a continuation
         * byte as lead, a tail as long as its character, a bad second byte. Each is dropped, and
         * a long run of continuation bytes after it never grows the tail past 3 bytes. */
        static const Utf8Stream bad[] = {
                { .pending = { 0x80 }, .n_pending = 1 },
                { .pending = { 0xC3, 0xA9 }, .n_pending = 2 },
                { .pending = { 0xE0, 0x80 }, .n_pending = 2 },
                { .pending = { 0xF0, 0x9F, 0x41 }, .n_pending = 3 },
        };
        uint8_t cont[64], big[UTF8_STREAM_OUT_MAX(64)];
        memset(cont, 0x80, sizeof(cont));
        for (size_t k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
                u = bad[k];
                n = utf8_stream_feed(&u, cont, sizeof(cont), big);
                CHECK(n == 3 * sizeof(cont) && u.n_pending == 0);
        }
        /* A valid restored tail completes: E2 82 + AC = U+20AC. */
        u = (Utf8Stream){ .pending = { 0xE2, 0x82 }, .n_pending = 2 };
        n = utf8_stream_feed(&u, (const uint8_t *)"\xac", 1, big);
        CHECK(n == 3 && memcmp(big, "\xe2\x82\xac", 3) == 0);
}

int main(void) {
        test_cases();
        test_nul();
        test_random();
        test_corrupt_state();
        CHECK(utf8_is_valid((const uint8_t *)"", 0));
        CHECK(!utf8_is_valid((const uint8_t *)"\xc3", 1));
        CHECK(!utf8_is_valid((const uint8_t *)"\xed\xa0\x80", 3));
        CHECK(utf8_is_valid((const uint8_t *)"\xed\x9f\xbf", 3));
        CHECK(utf8_is_valid((const uint8_t *)"\xf4\x8f\xbf\xbf", 4));
        return 0;
}
