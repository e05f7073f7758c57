/* tokenizer.h: text <-> token ids. Byte-level (vocab 256: id = byte) or the RWKV World tokenizer
 * (greedy longest match over bytes, rwkv_vocab_v20230424.txt; id 0 = end of text).
 *
 * CONTRACT used by engine/arch, rwkvd and rwkvctl. A Tokenizer is immutable once built and may be
 * shared by threads. Encoding then decoding gives back exactly the input bytes, for any bytes. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/common/error.h"

typedef struct Tokenizer Tokenizer;

int tokenizer_new_bytes(Tokenizer **ret);
/* Parse vocabulary text (the .txt format). */
int tokenizer_new_world(const char *vocab, size_t len, Tokenizer **ret, RwkvError *err);
int tokenizer_load_world(const char *path, Tokenizer **ret, RwkvError *err);
Tokenizer *tokenizer_free(Tokenizer *t);

bool tokenizer_is_bytes(const Tokenizer *t);
uint32_t tokenizer_vocab_size(const Tokenizer *t);
/* Longest token in bytes: an encoder fed in chunks must keep this many bytes of look-ahead. */
size_t tokenizer_max_token_bytes(const Tokenizer *t);

/* Streaming encode: consumes a prefix of s (all of it when final) and writes at most out_cap ids.
 * Without final, a tail shorter than the longest token may stay unconsumed (feed it again with more). */
int tokenizer_encode(const Tokenizer *t, const uint8_t *s, size_t len, bool final, uint32_t *out, size_t out_cap,
                     size_t *ret_consumed, size_t *ret_n);
/* Whole-buffer convenience; *ret_ids is malloc'ed. */
int tokenizer_encode_all(const Tokenizer *t, const uint8_t *s, size_t len, uint32_t **ret_ids, size_t *ret_n);
/* The bytes of one token (not NUL-terminated), or NULL for an id outside the vocabulary (or id 0). */
const uint8_t *tokenizer_token_bytes(const Tokenizer *t, uint32_t id, size_t *ret_len);
