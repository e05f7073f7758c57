/* vocab.c: parser of the RWKV World vocabulary text (Python literals, validated line by line). */
#include "engine/text/vocab.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "engine/text/utf8-stream.h"

static int hex_value(char c) {
        if (c >= '0' && c <= '9')
                return c - '0';
        if (c >= 'a' && c <= 'f')
                return c - 'a' + 10;
        if (c >= 'A' && c <= 'F')
                return c - 'A' + 10;
        return -1;
}

/* Read exactly n hex digits at s. */
static int parse_hex(const char *s, size_t avail, size_t n, uint32_t *ret) {
        uint32_t v = 0;

        if (avail < n)
                return -EBADMSG;
        for (size_t i = 0; i < n; i++) {
                int h = hex_value(s[i]);
                if (h < 0)
                        return -EBADMSG;
                v = v << 4 | (uint32_t)h;
        }
        *ret = v;
        return 0;
}

static size_t utf8_put(uint8_t *out, uint32_t cp) {
        if (cp < 0x80) {
                out[0] = (uint8_t)cp;
                return 1;
        }
        if (cp < 0x800) {
                out[0] = (uint8_t)(0xC0 | cp >> 6);
                out[1] = (uint8_t)(0x80 | (cp & 0x3F));
                return 2;
        }
        if (cp < 0x10000) {
                out[0] = (uint8_t)(0xE0 | cp >> 12);
                out[1] = (uint8_t)(0x80 | (cp >> 6 & 0x3F));
                out[2] = (uint8_t)(0x80 | (cp & 0x3F));
                return 3;
        }
        out[0] = (uint8_t)(0xF0 | cp >> 18);
        out[1] = (uint8_t)(0x80 | (cp >> 12 & 0x3F));
        out[2] = (uint8_t)(0x80 | (cp >> 6 & 0x3F));
        out[3] = (uint8_t)(0x80 | (cp & 0x3F));
        return 4;
}

/* Python semantics: in a str literal \xHH, \uHHHH, \UHHHHHHHH and octal escapes name code points
 * (written as UTF-8); in a bytes literal \xHH and octal name bytes, \u is not an escape and only
 * ASCII may appear. Escapes Python would keep verbatim (an unknown \q) are refused: the real
 * vocabulary has none, and guessing would silently change a token. */
int vocab_parse_literal(const char *s, size_t len, uint8_t *out, size_t *ret_len, const char **ret_why) {
        bool is_bytes = false;
        size_t i = 0, n = 0;
        char q;

        if (len > 0 && (s[0] == 'b' || s[0] == 'B')) {
                is_bytes = true;
                i = 1;
        }
        if (len < i + 2 || (s[i] != '\'' && s[i] != '"') || s[len - 1] != s[i]) {
                *ret_why = "not a quoted Python str or bytes literal";
                return -EBADMSG;
        }
        q = s[i++];
        len--; /* the closing quote */

        while (i < len) {
                unsigned char c = (unsigned char)s[i];
                uint32_t cp;

                if (c == (unsigned char)q) {
                        *ret_why = "unescaped quote inside the literal";
                        return -EBADMSG;
                }
                if (c != '\\') {
                        if (is_bytes && c >= 0x80) {
                                *ret_why = "non-ASCII character in a bytes literal";
                                return -EBADMSG;
                        }
                        if (c == '\n' || c == '\r') {
                                *ret_why = "line break inside the literal";
                                return -EBADMSG;
                        }
                        out[n++] = c;
                        i++;
                        continue;
                }
                if (++i >= len) {
                        *ret_why = "backslash at the end of the literal";
                        return -EBADMSG;
                }
                c = (unsigned char)s[i++];
                switch (c) {
                case '\\':
                        out[n++] = '\\';
                        break;
                case '\'':
                        out[n++] = '\'';
                        break;
                case '"':
                        out[n++] = '"';
                        break;
                case 'n':
                        out[n++] = '\n';
                        break;
                case 't':
                        out[n++] = '\t';
                        break;
                case 'r':
                        out[n++] = '\r';
                        break;
                case 'a':
                        out[n++] = '\a';
                        break;
                case 'b':
                        out[n++] = '\b';
                        break;
                case 'f':
                        out[n++] = '\f';
                        break;
                case 'v':
                        out[n++] = '\v';
                        break;
                case 'x':
                        if (parse_hex(s + i, len - i, 2, &cp) < 0) {
                                *ret_why = "\\x needs two hex digits";
                                return -EBADMSG;
                        }
                        i += 2;
                        if (is_bytes)
                                out[n++] = (uint8_t)cp;
                        else
                                n += utf8_put(out + n, cp);
                        break;
                case 'u':
                case 'U': {
                        size_t digits = c == 'u' ? 4 : 8;
                        if (is_bytes) {
                                *ret_why = "\\u or \\U in a bytes literal";
                                return -EBADMSG;
                        }
                        if (parse_hex(s + i, len - i, digits, &cp) < 0) {
                                *ret_why = c == 'u' ? "\\u needs four hex digits" : "\\U needs eight hex digits";
                                return -EBADMSG;
                        }
                        if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
                                *ret_why = "code point is a surrogate or above U+10FFFF (not encodable as UTF-8)";
                                return -EBADMSG;
                        }
                        i += digits;
                        n += utf8_put(out + n, cp);
                        break;
                }
                case '0' ... '7': {
                        cp = c - '0';
                        for (int k = 0; k < 2 && i < len && s[i] >= '0' && s[i] <= '7'; k++)
                                cp = cp * 8 + (uint32_t)(s[i++] - '0');
                        if (is_bytes) {
                                if (cp > 0xFF) {
                                        *ret_why = "octal escape above \\377 in a bytes literal";
                                        return -EBADMSG;
                                }
                                out[n++] = (uint8_t)cp;
                        } else
                                n += utf8_put(out + n, cp);
                        break;
                }
                default:
                        *ret_why = "unknown escape sequence";
                        return -EBADMSG;
                }
        }

        /* A str is a sequence of code points: literal characters came from a UTF-8 file and must be
         * valid UTF-8 themselves (escapes above were encoded correctly). */
        if (!is_bytes && !utf8_is_valid(out, n)) {
                *ret_why = "str literal is not valid UTF-8";
                return -EBADMSG;
        }
        *ret_len = n;
        return 0;
}

static int parse_u32(const char *s, size_t len, uint32_t max, uint32_t *ret) {
        uint64_t v = 0;

        if (len == 0 || len > 10)
                return -EBADMSG;
        for (size_t i = 0; i < len; i++) {
                if (s[i] < '0' || s[i] > '9')
                        return -EBADMSG;
                v = v * 10 + (uint64_t)(s[i] - '0');
        }
        if (v > max)
                return -ERANGE;
        *ret = (uint32_t)v;
        return 0;
}

static int compare_id(const void *a, const void *b) {
        const VocabEntry *x = a, *y = b;
        return (x->id > y->id) - (x->id < y->id);
}

void vocab_done(Vocab *v) {
        if (!v)
                return;
        free(v->entries);
        free(v->blob);
        *v = (Vocab){};
}

int vocab_parse(const char *text, size_t len, Vocab *ret, RwkvError *err) {
        _cleanup_(freep) VocabEntry *entries = NULL;
        _cleanup_(freep) uint8_t *blob = NULL;
        size_t n = 0, cap = 0, blob_len = 0;
        uint32_t max_id = 0, line = 0;

        if (!text && len > 0)
                return error_set(err, EINVAL, "vocabulary: no text");
        if (len > UINT32_MAX)
                return error_set(err, EFBIG, "vocabulary: %zu bytes is too large", len);

        /* Decoded tokens are never longer than their literal, so the text length bounds the blob. */
        blob = malloc(len + 1);
        if (!blob)
                return -ENOMEM;

        for (size_t pos = 0; pos < len;) {
                const char *l = text + pos, *nl = memchr(l, '\n', len - pos);
                size_t ll = nl ? (size_t)(nl - l) : len - pos;
                const char *sp1, *sp2;
                uint32_t id, declared;
                size_t tok_len;
                const char *why;
                int r;

                pos += ll + (nl ? 1 : 0);
                line++;
                if (ll > 0 && l[ll - 1] == '\r')
                        ll--;
                /* Blank lines carry nothing (an editor's trailing newline). */
                bool blank = true;
                for (size_t i = 0; i < ll && blank; i++)
                        blank = l[i] == ' ' || l[i] == '\t';
                if (blank)
                        continue;

                if (memchr(l, '\0', ll))
                        return error_set(err, EBADMSG, "vocabulary line %u: NUL byte", line);
                sp1 = memchr(l, ' ', ll);
                sp2 = memrchr(l, ' ', ll);
                if (!sp1 || sp1 == sp2)
                        return error_set(err, EBADMSG, "vocabulary line %u: expected 'ID REPR LEN'", line);

                r = parse_u32(l, (size_t)(sp1 - l), VOCAB_MAX_ID, &id);
                if (r < 0 || id == 0)
                        return error_set(err, EBADMSG, "vocabulary line %u: bad token id '%.*s' (1..%u)", line,
                                         (int)MIN((size_t)(sp1 - l), 32u), l, VOCAB_MAX_ID);
                r = parse_u32(sp2 + 1, (size_t)(l + ll - sp2 - 1), UINT32_MAX, &declared);
                if (r < 0)
                        return error_set(err, EBADMSG, "vocabulary line %u: bad length field '%.*s'", line,
                                         (int)MIN((size_t)(l + ll - sp2 - 1), 32u), sp2 + 1);

                /* REPR is everything between the first and the last space (it may contain spaces);
                 * Python's eval() would skip leading blanks, so we do too. */
                const char *repr = sp1 + 1;
                size_t repr_len = (size_t)(sp2 - repr);
                while (repr_len > 0 && (*repr == ' ' || *repr == '\t')) {
                        repr++;
                        repr_len--;
                }
                r = vocab_parse_literal(repr, repr_len, blob + blob_len, &tok_len, &why);
                if (r < 0)
                        return error_set(err, EBADMSG, "vocabulary line %u (token %u): %s", line, id, why);
                if (tok_len == 0)
                        return error_set(err, EBADMSG, "vocabulary line %u (token %u): empty token", line, id);
                if (tok_len != declared)
                        return error_set(
                                err, EBADMSG,
                                "vocabulary line %u (token %u): declared length %u but the literal is %zu bytes", line,
                                id, declared, tok_len);
                if (tok_len > VOCAB_MAX_TOKEN_BYTES)
                        return error_set(err, EBADMSG, "vocabulary line %u (token %u): %zu bytes is longer than %u",
                                         line, id, tok_len, VOCAB_MAX_TOKEN_BYTES);

                if (n == cap) {
                        size_t ncap = cap ? cap * 2 : 1024;
                        VocabEntry *ne = reallocarray(entries, ncap, sizeof(*ne));
                        if (!ne)
                                return -ENOMEM;
                        entries = ne;
                        cap = ncap;
                }
                entries[n++] = (VocabEntry){
                        .id = id,
                        .offset = (uint32_t)blob_len,
                        .len = (uint32_t)tok_len,
                        .line = line,
                };
                blob_len += tok_len;
                max_id = MAX(max_id, id);
        }

        if (n == 0)
                return error_set(err, EBADMSG, "vocabulary: no tokens");

        /* Duplicate ids would make decoding ambiguous. */
        _cleanup_(freep) VocabEntry *by_id = malloc(n * sizeof(*by_id));
        if (!by_id)
                return -ENOMEM;
        memcpy(by_id, entries, n * sizeof(*by_id));
        qsort(by_id, n, sizeof(*by_id), compare_id);
        for (size_t i = 1; i < n; i++)
                if (by_id[i].id == by_id[i - 1].id)
                        return error_set(err, EBADMSG, "vocabulary line %u: token id %u already defined on line %u",
                                         MAX(by_id[i].line, by_id[i - 1].line), by_id[i].id,
                                         MIN(by_id[i].line, by_id[i - 1].line));

        *ret = (Vocab){
                .entries = TAKE_PTR(entries),
                .n = n,
                .blob = TAKE_PTR(blob),
                .blob_len = blob_len,
                .max_id = max_id,
        };
        return 0;
}
