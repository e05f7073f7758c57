/* utf8-stream.c: emit only complete, valid UTF-8; hold back an incomplete tail; U+FFFD for invalid bytes. */
#include "engine/text/utf8-stream.h"

#include <string.h>

/* The WHATWG UTF-8 decoder, which implements the "maximal subpart" rule: a byte that cannot continue
 * the current sequence ends it (one U+FFFD) and is then looked at again as a possible start. */

static const uint8_t replacement[3] = { 0xEF, 0xBF, 0xBD };

/* Sequence length announced by a lead byte, 0 for bytes that cannot start one. */
static inline unsigned lead_length(uint8_t b) {
        if (b < 0x80)
                return 1;
        if (b >= 0xC2 && b <= 0xDF)
                return 2;
        if (b >= 0xE0 && b <= 0xEF)
                return 3;
        if (b >= 0xF0 && b <= 0xF4)
                return 4;
        return 0;
}

/* The allowed range of the byte after lead (second position); later positions are always 80..BF.
 * These ranges exclude overlongs (E0 80.., F0 80..), surrogates (ED A0..) and > U+10FFFF (F4 90..). */
static inline void second_range(uint8_t lead, uint8_t *lo, uint8_t *hi) {
        *lo = 0x80;
        *hi = 0xBF;
        if (lead == 0xE0)
                *lo = 0xA0;
        else if (lead == 0xED)
                *hi = 0x9F;
        else if (lead == 0xF0)
                *lo = 0x90;
        else if (lead == 0xF4)
                *hi = 0x8F;
}

bool utf8_stream_valid(const Utf8Stream *u) {
        if (u->n_pending == 0)
                return true;
        if (u->n_pending > 3 || u->n_pending >= lead_length(u->pending[0]) || lead_length(u->pending[0]) < 2)
                return false;
        for (unsigned k = 1; k < u->n_pending; k++) {
                uint8_t lo = 0x80, hi = 0xBF;
                if (k == 1)
                        second_range(u->pending[0], &lo, &hi);
                if (u->pending[k] < lo || u->pending[k] > hi)
                        return false;
        }
        return true;
}

void utf8_stream_init(Utf8Stream *u) {
        *u = (Utf8Stream){};
}

size_t utf8_stream_feed(Utf8Stream *u, const uint8_t *in, size_t len, uint8_t *out) {
        size_t o = 0, i = 0;

        if (!utf8_stream_valid(u))
                u->n_pending = 0; /* a corrupted saved state: drop it rather than overflow */

        while (i < len) {
                uint8_t b = in[i];

                if (u->n_pending == 0) {
                        unsigned n;

                        /* ASCII runs are the common case: copy them in one go. */
                        if (b < 0x80) {
                                size_t j = i + 1;
                                while (j < len && in[j] < 0x80)
                                        j++;
                                memcpy(out + o, in + i, j - i);
                                o += j - i;
                                i = j;
                                continue;
                        }
                        n = lead_length(b);
                        if (n == 0) {
                                memcpy(out + o, replacement, 3);
                                o += 3;
                        } else {
                                u->pending[0] = b;
                                u->n_pending = 1;
                        }
                        i++;
                        continue;
                }

                uint8_t lo = 0x80, hi = 0xBF;
                if (u->n_pending == 1)
                        second_range(u->pending[0], &lo, &hi);
                if (b < lo || b > hi) {
                        /* The sequence so far is a maximal invalid subpart; b is reconsidered. */
                        memcpy(out + o, replacement, 3);
                        o += 3;
                        u->n_pending = 0;
                        continue;
                }
                if (u->n_pending + 1u == lead_length(u->pending[0])) {
                        memcpy(out + o, u->pending, u->n_pending);
                        o += u->n_pending;
                        out[o++] = b;
                        u->n_pending = 0;
                } else
                        u->pending[u->n_pending++] = b;
                i++;
        }
        return o;
}

size_t utf8_stream_flush(Utf8Stream *u, uint8_t *out) {
        if (u->n_pending == 0)
                return 0;
        u->n_pending = 0;
        memcpy(out, replacement, 3);
        return 3;
}

bool utf8_is_valid(const uint8_t *s, size_t len) {
        size_t i = 0;

        while (i < len) {
                uint8_t b = s[i], lo, hi;
                unsigned n;

                if (b < 0x80) {
                        i++;
                        continue;
                }
                n = lead_length(b);
                if (n == 0 || len - i < n)
                        return false;
                second_range(b, &lo, &hi);
                if (s[i + 1] < lo || s[i + 1] > hi)
                        return false;
                for (unsigned k = 2; k < n; k++)
                        if (s[i + k] < 0x80 || s[i + k] > 0xBF)
                                return false;
                i += n;
        }
        return true;
}
