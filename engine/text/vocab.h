/* vocab.h: parser of the RWKV World vocabulary text (rwkv_vocab_v20230424.txt). Internal to engine/text.
 *
 * Each line is `ID REPR LEN`: REPR a Python str literal ('...' or "...", encoded as UTF-8) or bytes
 * literal (b'...'), LEN its length in bytes. The file is untrusted input: every line is validated and
 * a refusal names the line. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "engine/common/error.h"

/* Caps on what a vocabulary may declare (the real one: 65529 tokens, longest 128 bytes). */
#define VOCAB_MAX_ID ((1u << 20) - 1)
#define VOCAB_MAX_TOKEN_BYTES 1024u

typedef struct VocabEntry {
        uint32_t id;
        uint32_t offset; /* into Vocab.blob */
        uint32_t len;
        uint32_t line; /* 1-based, for error messages */
} VocabEntry;

typedef struct Vocab {
        VocabEntry *entries; /* in file order */
        size_t n;
        uint8_t *blob; /* decoded bytes of all tokens */
        size_t blob_len;
        uint32_t max_id;
} Vocab;

int vocab_parse(const char *text, size_t len, Vocab *ret, RwkvError *err);
void vocab_done(Vocab *v);

/* Decode one Python literal (the REPR field). out must hold len bytes (decoding never grows).
 * Returns 0 and *ret_len, or -EBADMSG with a short reason in *ret_why. Exposed for tests. */
int vocab_parse_literal(const char *s, size_t len, uint8_t *out, size_t *ret_len, const char **ret_why);
