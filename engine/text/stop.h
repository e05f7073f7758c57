/* stop.h: stop sequences matched on the emitted text, across token boundaries.
 *
 * CONTRACT used by rwkvd and rwkvctl. The generated text is fed in pieces (one token's bytes at a
 * time); the matcher releases the bytes that can no longer be part of a stop sequence and holds back
 * the longest tail that is still a prefix of one. When a stop sequence completes, the text before it
 * has been released and the stop string itself (and whatever followed in that piece) is not.
 * Stops are found at the first byte at which any completes; when several complete at the same byte,
 * the longest (earliest-starting) one wins. Matching is on raw bytes (Aho-Corasick: O(1) amortised
 * per byte, whatever the number of stops).
 *
 * Recommended pipeline: token bytes -> StopMatcher -> Utf8Stream -> client; at a stop or at the end,
 * stop_matcher_flush() (end only) then utf8_stream_flush(). A StopMatcher is per request (stops are
 * request parameters) and single-threaded. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/common/error.h"

/* Caps for requests from the bus (checked by stop_matcher_new, -E2BIG with a message). */
#define STOP_MAX_SEQUENCES 16
#define STOP_MAX_BYTES 256 /* per stop sequence */

typedef struct StopMatcher StopMatcher;

/* n NUL-terminated stop strings (n may be 0: everything passes). Empty strings: -EINVAL. */
int stop_matcher_new(const char *const *stops, size_t n, StopMatcher **ret, RwkvError *err);
StopMatcher *stop_matcher_free(StopMatcher *m);

/* Feed len bytes. out must hold len + STOP_MAX_BYTES bytes; *ret_out_len is what may be emitted now.
 * Returns 0 (no stop yet) or 1 (a stop sequence completed: *ret_which is its index in the array given
 * to stop_matcher_new; the matcher is then done and further feeds return -ESTALE until reset). */
int stop_matcher_feed(StopMatcher *m, const uint8_t *in, size_t len, uint8_t *out, size_t *ret_out_len,
                      size_t *ret_which);
/* End of generation without a stop: writes the held-back bytes (< STOP_MAX_BYTES) to out. */
size_t stop_matcher_flush(StopMatcher *m, uint8_t *out);
/* Bytes currently held back. */
size_t stop_matcher_held(const StopMatcher *m);
/* Forget the held-back bytes and the matched flag (same stops). */
void stop_matcher_reset(StopMatcher *m);
