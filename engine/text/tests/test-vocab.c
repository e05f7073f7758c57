/* test-vocab.c: the vocabulary parser accepts Python literals and refuses malformed lines by number. */
#include <string.h>

#include "engine/text/tokenizer.h"
#include "engine/text/vocab.h"
#include "tests/lib/check.h"

static void check_literal(const char *lit, const char *expect, size_t expect_len) {
        uint8_t out[256];
        size_t n = 0;
        const char *why = NULL;
        int r = vocab_parse_literal(lit, strlen(lit), out, &n, &why);
        if (r < 0)
                fprintf(stderr, "literal %s: %s\n", lit, why);
        CHECK_OK(r);
        if (n != expect_len || memcmp(out, expect, n) != 0) {
                fprintf(stderr, "literal %s decoded to %zu bytes, expected %zu\n", lit, n, expect_len);
                CHECK(0);
        }
}

static void check_literal_bad(const char *lit) {
        uint8_t out[256];
        size_t n = 0;
        const char *why = NULL;
        CHECK_ERR(vocab_parse_literal(lit, strlen(lit), out, &n, &why), EBADMSG);
        CHECK(why && *why);
}

static void test_literals(void) {
        check_literal("'a'", "a", 1);
        check_literal("' '", " ", 1);
        check_literal("\"it's\"", "it's", 4);
        check_literal("'\\'\\\"\\\\'", "'\"\\", 3);
        check_literal("'\\n\\t\\r'", "\n\t\r", 3);
        check_literal("'\\x00'", "\0", 1);
        check_literal("'\\x80'", "\xc2\x80", 2); /* str: \x80 is the code point U+0080 */
        check_literal("b'\\x80'", "\x80", 1);    /* bytes: \x80 is the byte */
        check_literal("b'\\xff\\xfe'", "\xff\xfe", 2);
        check_literal("'\\u2002'", "\xe2\x80\x82", 3);
        check_literal("'\\U0001F600'", "\xf0\x9f\x98\x80", 4);
        check_literal("'\xe4\xbd\xa0'", "\xe4\xbd\xa0", 3); /* literal UTF-8 in a str */
        check_literal("'\\101'", "A", 1);                   /* octal */
        check_literal("'a b'", "a b", 3);

        check_literal_bad("a");
        check_literal_bad("'a");
        check_literal_bad("'a\"");
        check_literal_bad("'''");
        check_literal_bad("'\\'");
        check_literal_bad("'\\x4'");
        check_literal_bad("'\\xzz'");
        check_literal_bad("'\\u12'");
        check_literal_bad("'\\ud800'"); /* surrogate: not encodable */
        check_literal_bad("'\\U00110000'");
        check_literal_bad("b'\\u2002'");
        check_literal_bad("b'\xc3\xa9'"); /* non-ASCII in bytes */
        check_literal_bad("'\xff'");      /* invalid UTF-8 in a str */
        check_literal_bad("'\\q'");
        check_literal_bad("''''");
}

/* A complete minimal vocabulary (the 256 bytes) followed by extra lines. */
static char *make_vocab(const char *extra) {
        size_t cap = 256 * 16 + strlen(extra) + 1, n = 0;
        char *v = malloc(cap);
        CHECK(v);
        for (unsigned c = 0; c < 256; c++)
                n += (size_t)snprintf(v + n, cap - n, "%u b'\\x%02x' 1\n", c + 1, c);
        memcpy(v + n, extra, strlen(extra) + 1);
        return v;
}

static void check_vocab_error(const char *extra, int errnum, const char *needle) {
        _cleanup_(freep) char *v = make_vocab(extra);
        Tokenizer *t = NULL;
        RwkvError err = {};
        int r = tokenizer_new_world(v, strlen(v), &t, &err);
        if (r != -errnum || !strstr(err.msg, needle)) {
                fprintf(stderr, "extra %s: r=%d msg='%s', expected -%d and '%s'\n", extra, r, err.msg, errnum, needle);
                CHECK(0);
        }
        CHECK(!t);
}

static void test_malformed(void) {
        /* Line 257 is the first extra line. */
        check_vocab_error("257 'ab' 3\n", EBADMSG, "line 257 (token 257): declared length 3");
        check_vocab_error("257 'ab'\n", EBADMSG, "line 257");
        check_vocab_error("257\n", EBADMSG, "line 257: expected");
        check_vocab_error("x 'ab' 2\n", EBADMSG, "line 257: bad token id");
        check_vocab_error("0 'ab' 2\n", EBADMSG, "line 257: bad token id");
        check_vocab_error("99999999999 'ab' 2\n", EBADMSG, "line 257: bad token id");
        check_vocab_error("257 'ab' two\n", EBADMSG, "line 257: bad length");
        check_vocab_error("257 'ab' -2\n", EBADMSG, "line 257: bad length");
        check_vocab_error("257 ab 2\n", EBADMSG, "not a quoted");
        check_vocab_error("257 'a\\qb' 3\n", EBADMSG, "unknown escape");
        check_vocab_error("257 '' 0\n", EBADMSG, "empty token");
        check_vocab_error("257 'ab' 2\n258 'cd' 2\n5 'zz' 2\n", EBADMSG,
                          "line 259: token id 5 already defined on line 5");
        check_vocab_error("257 'ab' 2\n258 b'ab' 2\n", EBADMSG, "same bytes as token 257");
        check_vocab_error("257 'a\0b' 3\n", EBADMSG, "line"); /* NUL ends the string: still a short line */

        /* A vocabulary without every single byte cannot encode everything. */
        {
                const char *v = "1 'a' 1\n2 'b' 1\n";
                Tokenizer *t = NULL;
                RwkvError err = {};
                CHECK_ERR(tokenizer_new_world(v, strlen(v), &t, &err), EBADMSG);
                CHECK(strstr(err.msg, "byte 0x00 has no token"));
        }
        /* Empty input. */
        {
                Tokenizer *t = NULL;
                RwkvError err = {};
                CHECK_ERR(tokenizer_new_world("", 0, &t, &err), EBADMSG);
                CHECK_ERR(tokenizer_new_world("\n\n", 2, &t, &err), EBADMSG);
        }
        /* An embedded NUL inside a line is reported, not silently cut. */
        {
                _cleanup_(freep) char *v = make_vocab("257 'a");
                size_t n = strlen(v);
                char *w = malloc(n + 8);
                CHECK(w);
                memcpy(w, v, n);
                memcpy(w + n, "\0b' 3\n", 6);
                Tokenizer *t = NULL;
                RwkvError err = {};
                CHECK_ERR(tokenizer_new_world(w, n + 6, &t, &err), EBADMSG);
                CHECK(strstr(err.msg, "line 257: NUL"));
                free(w);
        }
        /* A missing file names itself. */
        {
                Tokenizer *t = NULL;
                RwkvError err = {};
                CHECK_ERR(tokenizer_load_world("/nonexistent/vocab.txt", &t, &err), ENOENT);
                CHECK(strstr(err.msg, "/nonexistent/vocab.txt"));
        }
}

static void test_small_vocab(void) {
        /* CRLF line ends, blank lines, quotes, spaces inside the literal and ids with holes. */
        _cleanup_(freep) char *v = make_vocab("300 'ab' 2\r\n\n301 'abc' 3\n302 \"it's\" 4\n303 'a b' 3\n");
        Tokenizer *t = NULL;
        RwkvError err = {};
        size_t l;
        const uint8_t *b;

        CHECK_OK(tokenizer_new_world(v, strlen(v), &t, &err));
        CHECK(!tokenizer_is_bytes(t));
        CHECK(tokenizer_vocab_size(t) == 304);
        CHECK(tokenizer_max_token_bytes(t) == 4);
        CHECK(tokenizer_token_bytes(t, 0, &l) == NULL);
        CHECK(tokenizer_token_bytes(t, 257, &l) == NULL); /* hole */
        CHECK(tokenizer_token_bytes(t, 304, &l) == NULL);
        CHECK(tokenizer_token_bytes(t, UINT32_MAX, &l) == NULL);
        b = tokenizer_token_bytes(t, 302, &l);
        CHECK(b && l == 4 && memcmp(b, "it's", 4) == 0);
        b = tokenizer_token_bytes(t, 1, &l);
        CHECK(b && l == 1 && b[0] == 0);

        uint32_t *ids = NULL;
        size_t n = 0;
        CHECK_OK(tokenizer_encode_all(t, (const uint8_t *)"abcabxa bit's", 13, &ids, &n));
        const uint32_t expect[] = { 301, 300, 'x' + 1, 303, 302 };
        CHECK(n == ELEMENTSOF(expect));
        for (size_t i = 0; i < n; i++)
                CHECK(ids[i] == expect[i]);
        free(ids);

        tokenizer_free(t);
}

static void test_bytes(void) {
        Tokenizer *t = NULL;
        uint8_t all[256];
        uint32_t ids[256];
        size_t consumed, n, l;

        CHECK_OK(tokenizer_new_bytes(&t));
        CHECK(tokenizer_is_bytes(t));
        CHECK(tokenizer_vocab_size(t) == 256);
        CHECK(tokenizer_max_token_bytes(t) == 1);
        for (unsigned i = 0; i < 256; i++)
                all[i] = (uint8_t)i;
        CHECK_OK(tokenizer_encode(t, all, 256, false, ids, 256, &consumed, &n));
        CHECK(consumed == 256 && n == 256);
        for (unsigned i = 0; i < 256; i++) {
                CHECK(ids[i] == i);
                const uint8_t *b = tokenizer_token_bytes(t, i, &l);
                CHECK(b && l == 1 && b[0] == i);
        }
        CHECK(tokenizer_token_bytes(t, 256, &l) == NULL);
        /* Output space limits consumption. */
        CHECK_OK(tokenizer_encode(t, all, 256, true, ids, 10, &consumed, &n));
        CHECK(consumed == 10 && n == 10);
        CHECK_ERR(tokenizer_encode(t, NULL, 3, true, ids, 10, &consumed, &n), EINVAL);
        CHECK(tokenizer_free(t) == NULL);
        CHECK(tokenizer_free(NULL) == NULL);
}

int main(void) {
        test_literals();
        test_malformed();
        test_small_vocab();
        test_bytes();
        return 0;
}
