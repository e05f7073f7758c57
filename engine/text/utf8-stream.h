/* utf8-stream.h: turn the bytes of generated tokens into text that is always valid UTF-8.
 *
 * CONTRACT used by rwkvd and rwkvctl. Tokens end in the middle of characters; a terminal or a D-Bus
 * string must only ever see whole characters. Utf8Stream holds back an incomplete tail (at most 3
 * bytes) until the character completes. Invalid input is NOT passed through: each maximal invalid
 * subpart (the Unicode/WHATWG "substitution of maximal subparts" rule: overlongs, surrogates,
 * > U+10FFFF, stray continuation bytes, truncated sequences) becomes one U+FFFD (EF BF BD), so the
 * output is valid UTF-8 whatever the model emits. (Exact raw bytes are what tokenizer_token_bytes()
 * gives; rwkvctl detokenize writes those.)
 *
 * The struct is plain data (4 bytes) so a session can save it with the rest of its state and a
 * generation resumed after save/restore emits exactly the same text. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct Utf8Stream {
        uint8_t pending[3]; /* the held-back start of an incomplete sequence */
        uint8_t n_pending;  /* 0..3 */
} Utf8Stream;

/* The most bytes utf8_stream_feed() writes for len input bytes (each byte may become U+FFFD). */
#define UTF8_STREAM_OUT_MAX(len) (3 * ((size_t)(len) + 3))
/* The most bytes utf8_stream_flush() writes. */
#define UTF8_STREAM_FLUSH_MAX 3

void utf8_stream_init(Utf8Stream *u);
/* True when u's held-back tail is the valid start of one character and shorter than it (what the
 * functions below keep). The struct is saved with sessions: a restored one is checked with this,
 * and utf8_stream_feed() drops a tail that fails it rather than overflow. */
bool utf8_stream_valid(const Utf8Stream *u);
/* Feed len bytes; writes only complete valid UTF-8 to out, which must hold UTF8_STREAM_OUT_MAX(len)
 * bytes. Returns the number of bytes written. */
size_t utf8_stream_feed(Utf8Stream *u, const uint8_t *in, size_t len, uint8_t *out);
/* End of text: an incomplete held-back tail becomes one U+FFFD. Returns bytes written (0 or 3). */
size_t utf8_stream_flush(Utf8Stream *u, uint8_t *out);

/* Whole-buffer check: true when s is valid UTF-8 (no U+FFFD substitution needed). */
bool utf8_is_valid(const uint8_t *s, size_t len);
