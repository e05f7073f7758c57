/* store-format.c: the session file codec (see store-format.h and protocol/session-format.md). */
#include <limits.h>
#include <sodium.h>
#include <string.h>
/* ZSTD_c_literalCompressionMode: an "experimental" parameter of the stable ZSTD_CCtx_setParameter();
 * a library that does not know it refuses it and the encoder goes on without it (slower, same format). */
#define ZSTD_STATIC_LINKING_ONLY
#include <zstd.h>
#if ZSTD_VERSION_NUMBER >= 10501
#define LITERALS_HUFFMAN ZSTD_ps_enable
#else
#define LITERALS_HUFFMAN ZSTD_lcm_huffman /* the same value under its name before zstd 1.5.1 */
#endif
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include "daemon/store-format.h"

#define SS_ABYTES crypto_secretstream_xchacha20poly1305_ABYTES
#define SS_HEADERBYTES crypto_secretstream_xchacha20poly1305_HEADERBYTES
/* 512 KiB blocks: each byte plane of a block (128 KiB) is then exactly one zstd block, with its own
 * literal statistics; smaller blocks mixed the planes and lost a third of the gain (bench/sessions). */
#define SF_BLOCK_LOG2_DEFAULT 19u
#define SF_BLOCK_LOG2_MIN 12u
#define SF_BLOCK_LOG2_MAX 24u

/* Little-endian field writer/reader: the layout never depends on struct padding or host order. */
typedef struct Wr {
        uint8_t *p;
        size_t n, cap;
} Wr;

static void wr_bytes(Wr *w, const void *b, size_t n) {
        if (w->n + n <= w->cap)
                memcpy(w->p + w->n, b, n);
        w->n += n;
}
static void wr_u8(Wr *w, uint8_t v) {
        wr_bytes(w, &v, 1);
}
static void wr_u16(Wr *w, uint16_t v) {
        uint8_t b[2] = { (uint8_t)v, (uint8_t)(v >> 8) };
        wr_bytes(w, b, 2);
}
static void wr_u32(Wr *w, uint32_t v) {
        uint8_t b[4];
        for (int i = 0; i < 4; i++)
                b[i] = (uint8_t)(v >> (8 * i));
        wr_bytes(w, b, 4);
}
static void wr_u64(Wr *w, uint64_t v) {
        uint8_t b[8];
        for (int i = 0; i < 8; i++)
                b[i] = (uint8_t)(v >> (8 * i));
        wr_bytes(w, b, 8);
}
static void wr_f32(Wr *w, float f) {
        uint32_t v;
        memcpy(&v, &f, 4);
        wr_u32(w, v);
}

typedef struct Rd {
        const uint8_t *p;
        size_t n, pos;
        bool bad;
} Rd;

static const uint8_t *rd_bytes(Rd *r, size_t n) {
        if (r->bad || n > r->n - r->pos) {
                r->bad = true;
                return NULL;
        }
        const uint8_t *b = r->p + r->pos;
        r->pos += n;
        return b;
}
static uint64_t rd_le(Rd *r, size_t n) {
        const uint8_t *b = rd_bytes(r, n);
        uint64_t v = 0;
        if (!b)
                return 0;
        for (size_t i = 0; i < n; i++)
                v |= (uint64_t)b[i] << (8 * i);
        return v;
}
static uint8_t rd_u8(Rd *r) {
        return (uint8_t)rd_le(r, 1);
}
static uint16_t rd_u16(Rd *r) {
        return (uint16_t)rd_le(r, 2);
}
static uint32_t rd_u32(Rd *r) {
        return (uint32_t)rd_le(r, 4);
}
static uint64_t rd_u64(Rd *r) {
        return rd_le(r, 8);
}
static float rd_f32(Rd *r) {
        uint32_t v = rd_u32(r);
        float f;
        memcpy(&f, &v, 4);
        return f;
}

/* ---- half precision (the store's own scalar conversions: saves are rare, exactness matters) ---- */

static uint16_t f32_to_bf16_rne(float f) {
        uint32_t x;
        memcpy(&x, &f, 4);
        if ((x & 0x7fffffffu) > 0x7f800000u) /* NaN: keep it a (quiet) NaN */
                return (uint16_t)((x >> 16) | 0x40u);
        x += 0x7fffu + ((x >> 16) & 1u);
        return (uint16_t)(x >> 16);
}
static float bf16_to_f32_(uint16_t h) {
        uint32_t x = (uint32_t)h << 16;
        float f;
        memcpy(&f, &x, 4);
        return f;
}
static uint16_t f32_to_f16_rne(float f) {
        uint32_t x;
        memcpy(&x, &f, 4);
        uint32_t sign = (x >> 16) & 0x8000u;
        uint32_t ax = x & 0x7fffffffu;
        if (ax > 0x7f800000u)
                return (uint16_t)(sign | 0x7e00u);
        if (ax >= 0x477ff000u) /* rounds to >= 65520: infinity */
                return (uint16_t)(sign | 0x7c00u);
        if (ax < 0x38800000u) { /* below the smallest normal half: subnormal or zero */
                if (ax < 0x33000000u)
                        return (uint16_t)sign;
                uint32_t e = ax >> 23, m = (ax & 0x7fffffu) | 0x800000u;
                uint32_t shift = 126u - e; /* 14..24 */
                uint32_t half = m >> shift, rem = m & ((1u << shift) - 1u), mid = 1u << (shift - 1u);
                if (rem > mid || (rem == mid && (half & 1u)))
                        half++;
                return (uint16_t)(sign | half);
        }
        uint32_t h = ((ax >> 13) - (112u << 10));
        uint32_t rem = ax & 0x1fffu;
        if (rem > 0x1000u || (rem == 0x1000u && (h & 1u)))
                h++;
        return (uint16_t)(sign | h);
}
static float f16_to_f32_(uint16_t h) {
        uint32_t sign = (uint32_t)(h & 0x8000u) << 16, e = (h >> 10) & 0x1fu, m = h & 0x3ffu, x;
        if (e == 0) {
                if (m == 0)
                        x = sign;
                else { /* subnormal: normalize */
                        e = 113;
                        while (!(m & 0x400u)) {
                                m <<= 1;
                                e--;
                        }
                        x = sign | (e << 23) | ((m & 0x3ffu) << 13);
                }
        } else if (e == 31)
                x = sign | 0x7f800000u | (m << 13);
        else
                x = sign | ((e + 112u) << 23) | (m << 13);
        float f;
        memcpy(&f, &x, 4);
        return f;
}

/* ---- byte planes: element i's byte b goes to plane b. The high (sign/exponent) bytes of nearby
 * floats repeat, which zstd finds once they are contiguous. ---- */

static void planes_split(const uint8_t *in, uint8_t *out, size_t n, size_t esz) {
        if (esz == 4) {
                uint8_t *o0 = out, *o1 = out + n, *o2 = out + 2 * n, *o3 = out + 3 * n;
                size_t i = 0;
#ifdef __SSE2__
                /* Byte b of 16 elements: shift it down in each 32-bit lane, then narrow 32->16->8
                 * (values are 0..255, so the saturating packs are exact). */
                const __m128i m = _mm_set1_epi32(0xff);
                for (; i + 16 <= n; i += 16) {
                        __m128i x0 = _mm_loadu_si128((const __m128i *)(in + 4 * i));
                        __m128i x1 = _mm_loadu_si128((const __m128i *)(in + 4 * i + 16));
                        __m128i x2 = _mm_loadu_si128((const __m128i *)(in + 4 * i + 32));
                        __m128i x3 = _mm_loadu_si128((const __m128i *)(in + 4 * i + 48));
                        for (int b = 0; b < 4; b++) {
                                __m128i sh = _mm_cvtsi32_si128(8 * b);
                                __m128i y0 = _mm_and_si128(_mm_srl_epi32(x0, sh), m);
                                __m128i y1 = _mm_and_si128(_mm_srl_epi32(x1, sh), m);
                                __m128i y2 = _mm_and_si128(_mm_srl_epi32(x2, sh), m);
                                __m128i y3 = _mm_and_si128(_mm_srl_epi32(x3, sh), m);
                                __m128i p = _mm_packus_epi16(_mm_packs_epi32(y0, y1), _mm_packs_epi32(y2, y3));
                                _mm_storeu_si128((__m128i *)(out + (size_t)b * n + i), p);
                        }
                }
#endif
                for (; i < n; i++) {
                        uint32_t v;
                        memcpy(&v, in + 4 * i, 4); /* little-endian: byte b = bits 8b.. */
                        o0[i] = (uint8_t)v;
                        o1[i] = (uint8_t)(v >> 8);
                        o2[i] = (uint8_t)(v >> 16);
                        o3[i] = (uint8_t)(v >> 24);
                }
        } else {
                for (size_t i = 0; i < n; i++)
                        for (size_t b = 0; b < esz; b++)
                                out[b * n + i] = in[esz * i + b];
        }
}

/* The load path's hot loop: SSE2 (baseline on x86-64) interleaves 16 elements per step. */
static void planes_join(const uint8_t *in, uint8_t *out, size_t n, size_t esz) {
        size_t i = 0;
        if (esz == 4) {
                const uint8_t *i0 = in, *i1 = in + n, *i2 = in + 2 * n, *i3 = in + 3 * n;
#ifdef __SSE2__
                for (; i + 16 <= n; i += 16) {
                        __m128i a = _mm_loadu_si128((const __m128i *)(i0 + i));
                        __m128i b = _mm_loadu_si128((const __m128i *)(i1 + i));
                        __m128i c = _mm_loadu_si128((const __m128i *)(i2 + i));
                        __m128i d = _mm_loadu_si128((const __m128i *)(i3 + i));
                        __m128i ab_lo = _mm_unpacklo_epi8(a, b), ab_hi = _mm_unpackhi_epi8(a, b);
                        __m128i cd_lo = _mm_unpacklo_epi8(c, d), cd_hi = _mm_unpackhi_epi8(c, d);
                        __m128i *o = (__m128i *)(out + 4 * i);
                        _mm_storeu_si128(o + 0, _mm_unpacklo_epi16(ab_lo, cd_lo));
                        _mm_storeu_si128(o + 1, _mm_unpackhi_epi16(ab_lo, cd_lo));
                        _mm_storeu_si128(o + 2, _mm_unpacklo_epi16(ab_hi, cd_hi));
                        _mm_storeu_si128(o + 3, _mm_unpackhi_epi16(ab_hi, cd_hi));
                }
#endif
                for (; i < n; i++) {
                        out[4 * i] = i0[i];
                        out[4 * i + 1] = i1[i];
                        out[4 * i + 2] = i2[i];
                        out[4 * i + 3] = i3[i];
                }
        } else {
                for (; i < n; i++)
                        for (size_t b = 0; b < esz; b++)
                                out[esz * i + b] = in[b * n + i];
        }
}

/* ---- sizes ---- */

static size_t precision_bytes(StorePrecision p) {
        return p == STORE_PRECISION_F32 ? 4 : 2;
}

/* The payload's sections, in file order. Each is cut into blocks of at most 2^block_log2 bytes;
 * every block is one sealed message. */
enum { SEC_STATE, SEC_LOGITS, SEC_PENALTIES, SEC_TRANSCRIPT, _SEC_MAX };

typedef struct Layout {
        uint64_t bytes[_SEC_MAX];
        size_t esz[_SEC_MAX]; /* element size: what the byte planes split */
        uint64_t raw, nblocks;
        uint64_t payload_min, payload_max; /* bounds of the framed, sealed payload */
} Layout;

/* One framed message: u32 length, then ciphertext of [u8 block codec][data]. */
#define MSG_OVERHEAD (4u + SS_ABYTES + 1u)
/* A plane-coded block: per plane [u8 codec][u32 length][bytes], each plane at most as long as raw. */
#define PLANE_OVERHEAD 5u
#define PLANES_MAX 4u

/* The most data bytes one block of bs raw bytes may take after its codec byte, any codec. */
static size_t block_data_max(size_t bs) {
        return MAX(ZSTD_compressBound(bs), bs + PLANES_MAX * PLANE_OVERHEAD);
}

static int layout_compute(const SfHeader *h, Layout *ret) {
        Layout l = {};
        if (h->meta.state_floats == 0 || h->meta.state_floats > STORE_STATE_FLOATS_MAX)
                return -EBADMSG;
        if (h->meta.n_vocab > STORE_VOCAB_MAX || h->transcript_size > STORE_TRANSCRIPT_MAX)
                return -EBADMSG;
        if ((h->flags & (SF_FLAG_LOGITS | SF_FLAG_PENALTIES)) && h->meta.n_vocab == 0)
                return -EBADMSG;
        if (h->block_log2 < SF_BLOCK_LOG2_MIN || h->block_log2 > SF_BLOCK_LOG2_MAX)
                return -EBADMSG;
        l.esz[SEC_STATE] = precision_bytes(h->meta.precision);
        l.bytes[SEC_STATE] = h->meta.state_floats * l.esz[SEC_STATE];
        l.esz[SEC_LOGITS] = l.esz[SEC_PENALTIES] = 4;
        l.bytes[SEC_LOGITS] = (h->flags & SF_FLAG_LOGITS) ? (uint64_t)h->meta.n_vocab * 4 : 0;
        l.bytes[SEC_PENALTIES] = (h->flags & SF_FLAG_PENALTIES) ? (uint64_t)h->meta.n_vocab * 4 : 0;
        l.esz[SEC_TRANSCRIPT] = 1;
        l.bytes[SEC_TRANSCRIPT] = h->transcript_size;
        uint64_t block = UINT64_C(1) << h->block_log2;
        for (int i = 0; i < _SEC_MAX; i++) { /* each term is capped: no overflow */
                uint64_t full = l.bytes[i] / block, tail = l.bytes[i] % block;
                l.raw += l.bytes[i];
                l.nblocks += full + (tail > 0);
                l.payload_min += (full + (tail > 0)) * MSG_OVERHEAD;
                l.payload_max += full * (MSG_OVERHEAD + block_data_max((size_t)block)) +
                                 (tail ? MSG_OVERHEAD + block_data_max((size_t)tail) : 0);
        }
        if (l.raw > SIZE_MAX / 2)
                return -EFBIG;
        *ret = l;
        return 0;
}

/* ---- header ---- */

size_t sf_header_write(const SfHeader *h, uint8_t *buf, size_t cap) {
        Wr w = { buf, 0, cap };
        const SessionMeta *m = &h->meta;
        wr_bytes(&w, m->model_hash, 32);
        wr_u32(&w, m->arch);
        wr_u32(&w, m->n_layer);
        wr_u32(&w, m->n_embd);
        wr_u32(&w, m->n_head);
        wr_u32(&w, m->head_size);
        wr_u32(&w, m->n_vocab);
        wr_u64(&w, m->state_floats);
        wr_u64(&w, m->n_tokens);
        wr_u32(&w, m->n_turns);
        wr_u32(&w, m->turn);
        wr_u64(&w, m->created_usec);
        wr_u64(&w, m->updated_usec);
        wr_u32(&w, (uint32_t)m->precision);
        wr_u32(&w, h->codec);
        wr_u32(&w, h->block_log2);
        wr_u32(&w, h->flags);
        wr_u32(&w, h->pending_token);
        wr_u32(&w, h->source_uid);
        wr_f32(&w, h->sampler.temperature);
        wr_f32(&w, h->sampler.top_p);
        wr_u32(&w, h->sampler.top_k);
        wr_f32(&w, h->sampler.min_p);
        wr_f32(&w, h->sampler.presence_penalty);
        wr_f32(&w, h->sampler.frequency_penalty);
        wr_f32(&w, h->sampler.penalty_decay);
        for (int i = 0; i < 4; i++)
                wr_u64(&w, h->rng.s[i]);
        wr_u64(&w, h->transcript_size);
        wr_u64(&w, h->raw_size);
        wr_u64(&w, h->payload_bytes);
        size_t id_len = strnlen(m->id, STORE_ID_MAX);
        wr_u8(&w, (uint8_t)id_len);
        wr_bytes(&w, m->id, id_len);
        size_t title_len = strnlen(m->title, STORE_TITLE_MAX);
        wr_u16(&w, (uint16_t)title_len);
        wr_bytes(&w, m->title, title_len);
        if (h->version == 1)
                return w.n;
        uint8_t carry[3] = {};
        memcpy(carry, h->utf8.pending, MIN(h->utf8.n_pending, (uint8_t)3));
        wr_u8(&w, h->utf8.n_pending); /* as is: sf_encode validated it, the parser checks it */
        wr_bytes(&w, carry, 3);
        return w.n;
}

/* A saved carry must be what a Utf8Stream can hold (utf8_stream_valid), unused bytes zero. Anything
 * else would be replayed into the text or overrun the stream's buffer. */
static bool utf8_carry_valid(const uint8_t b[3], uint8_t n) {
        Utf8Stream u = { .n_pending = n };
        if (n > 3)
                return false;
        for (unsigned i = n; i < 3; i++)
                if (b[i] != 0)
                        return false;
        memcpy(u.pending, b, 3);
        return utf8_stream_valid(&u);
}

int sf_header_parse(const uint8_t *buf, size_t size, SfHeader *ret, RwkvError *err) {
        return sf_header_parse_version(SF_VERSION, buf, size, ret, err);
}

int sf_header_parse_version(uint32_t version, const uint8_t *buf, size_t size, SfHeader *ret, RwkvError *err) {
        Rd r = { buf, size, 0, false };
        SfHeader h = { .version = version };
        if (version < SF_VERSION_MIN || version > SF_VERSION)
                return error_set(err, EPROTONOSUPPORT, "unsupported session file version %u", version);
        SessionMeta *m = &h.meta;
        const uint8_t *b = rd_bytes(&r, 32);
        if (b)
                memcpy(m->model_hash, b, 32);
        m->arch = rd_u32(&r);
        m->n_layer = rd_u32(&r);
        m->n_embd = rd_u32(&r);
        m->n_head = rd_u32(&r);
        m->head_size = rd_u32(&r);
        m->n_vocab = rd_u32(&r);
        m->state_floats = rd_u64(&r);
        m->n_tokens = rd_u64(&r);
        m->n_turns = rd_u32(&r);
        m->turn = rd_u32(&r);
        m->created_usec = rd_u64(&r);
        m->updated_usec = rd_u64(&r);
        uint32_t prec = rd_u32(&r);
        h.codec = rd_u32(&r);
        h.block_log2 = rd_u32(&r);
        h.flags = rd_u32(&r);
        h.pending_token = rd_u32(&r);
        h.source_uid = rd_u32(&r);
        h.sampler.temperature = rd_f32(&r);
        h.sampler.top_p = rd_f32(&r);
        h.sampler.top_k = rd_u32(&r);
        h.sampler.min_p = rd_f32(&r);
        h.sampler.presence_penalty = rd_f32(&r);
        h.sampler.frequency_penalty = rd_f32(&r);
        h.sampler.penalty_decay = rd_f32(&r);
        for (int i = 0; i < 4; i++)
                h.rng.s[i] = rd_u64(&r);
        h.transcript_size = rd_u64(&r);
        h.raw_size = rd_u64(&r);
        h.payload_bytes = rd_u64(&r);
        uint8_t id_len = rd_u8(&r);
        if (id_len > STORE_ID_MAX)
                return error_set(err, EBADMSG, "header: id length %u exceeds %u", id_len, STORE_ID_MAX);
        b = rd_bytes(&r, id_len);
        if (b) {
                memcpy(m->id, b, id_len);
                m->id[id_len] = 0;
        }
        uint16_t title_len = rd_u16(&r);
        if (title_len > STORE_TITLE_MAX)
                return error_set(err, EBADMSG, "header: title length %u exceeds %u", title_len, STORE_TITLE_MAX);
        b = rd_bytes(&r, title_len);
        if (b) {
                memcpy(m->title, b, title_len);
                m->title[title_len] = 0;
        }
        if (version >= 2) {
                uint8_t n_carry = rd_u8(&r);
                b = rd_bytes(&r, 3);
                if (b && !utf8_carry_valid(b, n_carry))
                        return error_set(err, EBADMSG, "header: the unfinished UTF-8 character is not one");
                if (b) {
                        memcpy(h.utf8.pending, b, 3);
                        h.utf8.n_pending = n_carry;
                }
        }
        if (r.bad)
                return error_set(err, EBADMSG, "header: truncated (%zu bytes)", size);
        if (r.pos != size)
                return error_set(err, EBADMSG, "header: %zu trailing bytes", size - r.pos);

        if (prec > STORE_PRECISION_BF16)
                return error_set(err, EBADMSG, "header: unknown state precision %u", prec);
        m->precision = (StorePrecision)prec;
        if ((h.codec & ~(uint32_t)SF_CODEC_SHUFFLE) > SF_CODEC_ZSTD)
                return error_set(err, EBADMSG, "header: unknown codec 0x%x", h.codec);
        if (h.block_log2 < SF_BLOCK_LOG2_MIN || h.block_log2 > SF_BLOCK_LOG2_MAX)
                return error_set(err, EBADMSG, "header: block size 2^%u out of range", h.block_log2);
        if (h.flags & ~(uint32_t)SF_FLAGS_KNOWN)
                return error_set(err, EBADMSG, "header: unknown flags 0x%x", h.flags);
        if (id_len > 0 && !store_id_is_valid(m->id))
                return error_set(err, EBADMSG, "header: invalid session id");
        if (memchr(m->title, 0, title_len))
                return error_set(err, EBADMSG, "header: title contains NUL");
        if (m->state_floats == 0 || m->state_floats > STORE_STATE_FLOATS_MAX)
                return error_set(err, EBADMSG, "header: state size %llu floats out of range",
                                 (unsigned long long)m->state_floats);
        if (m->n_vocab > STORE_VOCAB_MAX)
                return error_set(err, EBADMSG, "header: vocabulary %u too large", m->n_vocab);
        if ((h.flags & SF_FLAG_PENDING_TOKEN) && m->n_vocab && h.pending_token >= m->n_vocab)
                return error_set(err, EBADMSG, "header: pending token %u outside the vocabulary", h.pending_token);
        Layout l;
        int k = layout_compute(&h, &l);
        if (k < 0)
                return error_set(err, -k, "header: inconsistent section sizes");
        if (h.raw_size != l.raw)
                return error_set(err, EBADMSG, "header: payload size %llu does not match its sections (%llu)",
                                 (unsigned long long)h.raw_size, (unsigned long long)l.raw);
        if (h.payload_bytes < l.payload_min || h.payload_bytes > l.payload_max)
                return error_set(err, EBADMSG, "header: payload of %llu bytes impossible for %llu blocks",
                                 (unsigned long long)h.payload_bytes, (unsigned long long)l.nblocks);
        *ret = h;
        return 0;
}

/* ---- prefix ---- */

int sf_prefix_parse(const uint8_t *buf, size_t size, SfPrefix *ret, RwkvError *err) {
        if (size < SF_PREFIX_BYTES)
                return error_set(err, EBADMSG, "file truncated: %zu bytes, not even a header", size);
        if (memcmp(buf, SF_MAGIC, 8) != 0)
                return error_set(err, EBADMSG, "not a session file (bad magic)");
        Rd r = { buf, size, 8, false };
        SfPrefix p;
        p.version = rd_u32(&r);
        p.kind = rd_u32(&r);
        p.uid = rd_u32(&r);
        p.header_clen = rd_u32(&r);
        /* Another version is not corruption (a newer daemon wrote it): refuse, but never move it aside. */
        if (p.version < SF_VERSION_MIN || p.version > SF_VERSION)
                return error_set(err, EPROTONOSUPPORT,
                                 "unsupported session file version %u (this daemon reads %u to %u)", p.version,
                                 SF_VERSION_MIN, SF_VERSION);
        if (p.kind != SF_KIND_SESSION && p.kind != SF_KIND_EXPORT)
                return error_set(err, EBADMSG, "unknown session file kind %u", p.kind);
        if (p.header_clen < SS_ABYTES + 1 || p.header_clen > SS_ABYTES + SF_HEADER_MAX)
                return error_set(err, EBADMSG, "header length %u out of range", p.header_clen);
        *ret = p;
        return 0;
}

size_t sf_prefix_head_bytes(const SfPrefix *p) {
        return SF_PREFIX_BYTES + p->header_clen;
}

static void ss_state_wipe(crypto_secretstream_xchacha20poly1305_state *st) {
        sodium_memzero(st, sizeof(*st));
}

/* Where sealed bytes come from: memory (tests, fuzzing) or a file/pipe read front to back. Bytes
 * are handed out in pieces no larger than one message, so a load never holds the whole file. */
typedef struct Src {
        const uint8_t *mem;
        size_t size, pos;
        int fd; /* >= 0: read from here */
        uint64_t taken;
} Src;

/* Read the next n bytes into buf (which the caller may then decrypt in place). Running out is
 * truncation: -EBADMSG; a failing read is the disk's fault: -errno (the file is not blamed). */
static int src_read(Src *s, size_t n, uint8_t *buf) {
        if (s->fd < 0) {
                if (n > s->size - s->pos)
                        return -EBADMSG;
                memcpy(buf, s->mem + s->pos, n);
                s->pos += n;
        } else {
                size_t done = 0;
                while (done < n) {
                        ssize_t l = read(s->fd, buf + done, n - done);
                        if (l < 0 && errno == EINTR)
                                continue;
                        if (l < 0)
                                return -errno;
                        if (l == 0)
                                return -EBADMSG;
                        done += (size_t)l;
                }
        }
        s->taken += n;
        return 0;
}

/* 0 at the end, -EBADMSG if anything follows. */
static int src_end(Src *s) {
        if (s->fd < 0)
                return s->pos == s->size ? 0 : -EBADMSG;
        uint8_t b;
        ssize_t l;
        do
                l = read(s->fd, &b, 1);
        while (l < 0 && errno == EINTR);
        return l < 0 ? -errno : l == 0 ? 0 : -EBADMSG;
}

static int src_error(RwkvError *err, int r, const char *where) {
        if (r == -EBADMSG)
                return error_set(err, EBADMSG, "file truncated %s", where);
        return error_set(err, -r, "cannot read the file: %s", strerror(-r));
}

/* Authenticates the header; leaves st ready for the payload messages. */
static int header_open(Src *src, const uint8_t *key, SfKind kind, uid_t uid,
                       crypto_secretstream_xchacha20poly1305_state *st, SfPrefix *ret_p, SfHeader *ret_h,
                       RwkvError *err) {
        uint8_t pre[SF_PREFIX_BYTES], hc[SF_HEADER_MAX + SS_ABYTES];
        int r = src_read(src, SF_PREFIX_BYTES, pre);
        if (r == -EBADMSG)
                return error_set(err, EBADMSG, "file truncated: not even a header");
        if (r < 0)
                return src_error(err, r, "");
        SfPrefix p;
        r = sf_prefix_parse(pre, SF_PREFIX_BYTES, &p, err);
        if (r < 0)
                return r;
        if (p.kind != (uint32_t)kind)
                return error_set(err, EBADMSG, "%s file where %s file was expected",
                                 p.kind == SF_KIND_EXPORT ? "an export" : "a session",
                                 kind == SF_KIND_EXPORT ? "an export" : "a session");
        if (uid != (uid_t)-1 && p.uid != (uint32_t)uid)
                return error_set(err, EBADMSG, "file belongs to uid %u, not %u", p.uid, (unsigned)uid);
        r = src_read(src, p.header_clen, hc);
        if (r < 0)
                return src_error(err, r, "inside its header");

        uint8_t plain[SF_HEADER_MAX];
        unsigned char tag;
        unsigned long long mlen;
        if (crypto_secretstream_xchacha20poly1305_init_pull(st, pre + 24, key) != 0 ||
            crypto_secretstream_xchacha20poly1305_pull(st, plain, &mlen, &tag, hc, p.header_clen, pre,
                                                       SF_PREFIX_BYTES) != 0)
                return error_set(err, EBADMSG, "header fails authentication (corrupt, or sealed with another key)");
        if (tag != crypto_secretstream_xchacha20poly1305_TAG_MESSAGE)
                return error_set(err, EBADMSG, "header message has an unexpected tag");
        SfHeader h;
        r = sf_header_parse_version(p.version, plain, (size_t)mlen, &h, err);
        sodium_memzero(plain, sizeof(plain));
        if (r < 0)
                return r;
        h.meta.uid = (uid_t)p.uid;
        *ret_p = p;
        *ret_h = h;
        return 0;
}

int sf_decode_header(const uint8_t *buf, size_t size, const uint8_t *key, SfKind kind, uid_t uid, SessionMeta *meta,
                     uint64_t *ret_total, RwkvError *err) {
        _cleanup_(ss_state_wipe) crypto_secretstream_xchacha20poly1305_state st;
        Src src = { .mem = buf, .size = size, .fd = -1 };
        SfPrefix p;
        SfHeader h;
        int r = header_open(&src, key, kind, uid, &st, &p, &h, err);
        if (r < 0)
                return r;
        if (meta)
                *meta = h.meta;
        if (ret_total)
                *ret_total = sf_prefix_head_bytes(&p) + h.payload_bytes;
        return 0;
}

int sf_header_authenticates(const uint8_t *buf, size_t size, const uint8_t *key) {
        SfPrefix p;
        if (sf_prefix_parse(buf, size, &p, NULL) < 0 || size < sf_prefix_head_bytes(&p))
                return -EBADMSG;
        _cleanup_(ss_state_wipe) crypto_secretstream_xchacha20poly1305_state st;
        uint8_t plain[SF_HEADER_MAX];
        unsigned char tag;
        unsigned long long mlen;
        bool ok = crypto_secretstream_xchacha20poly1305_init_pull(&st, buf + 24, key) == 0 &&
                  crypto_secretstream_xchacha20poly1305_pull(&st, plain, &mlen, &tag, buf + SF_PREFIX_BYTES,
                                                             p.header_clen, buf, SF_PREFIX_BYTES) == 0;
        sodium_memzero(plain, sizeof(plain));
        return ok;
}

/* ---- whole file ---- */

SessionRecord *session_record_free(SessionRecord *r) {
        if (!r)
                return NULL;
        free(r->state);
        free(r->logits);
        free(r->penalties);
        free(r->transcript);
        free(r);
        return NULL;
}

static void zstd_dctx_freep(ZSTD_DCtx **c) {
        ZSTD_freeDCtx(*c);
}
static void zstd_cctx_freep(ZSTD_CCtx **c) {
        ZSTD_freeCCtx(*c);
}

/* Raw payload bytes of one float section (state in its stored precision, or fp32 arrays). */
static void section_pack(const float *src, size_t n, StorePrecision prec, bool shuffle, uint8_t *out,
                         uint8_t *scratch) {
        size_t esz = precision_bytes(prec);
        const uint8_t *bytes = (const uint8_t *)src;
        if (prec != STORE_PRECISION_F32) {
                uint16_t *h = (uint16_t *)(shuffle ? scratch : out);
                for (size_t i = 0; i < n; i++) {
                        uint16_t v = prec == STORE_PRECISION_F16 ? f32_to_f16_rne(src[i]) : f32_to_bf16_rne(src[i]);
                        memcpy(h + i, &v, 2); /* host order here; files are little-endian only (see docs) */
                }
                bytes = (const uint8_t *)h;
        }
        if (shuffle)
                planes_split(bytes, out, n, esz);
        else if (bytes != out)
                memcpy(out, bytes, n * esz);
}

static void section_unpack(const uint8_t *in, size_t n, StorePrecision prec, bool shuffle, float *dst,
                           uint8_t *scratch) {
        size_t esz = precision_bytes(prec);
        if (prec == STORE_PRECISION_F32) {
                if (shuffle)
                        planes_join(in, (uint8_t *)dst, n, esz);
                else
                        memcpy(dst, in, n * 4);
                return;
        }
        const uint8_t *bytes = in;
        if (shuffle) {
                planes_join(in, scratch, n, esz);
                bytes = scratch;
        }
        for (size_t i = 0; i < n; i++) {
                uint16_t v;
                memcpy(&v, bytes + 2 * i, 2);
                dst[i] = prec == STORE_PRECISION_F16 ? f16_to_f32_(v) : bf16_to_f32_(v);
        }
}

/* Does this byte plane look compressible? Its collision probability on a strided sample of 4096
 * bytes: random mantissa bytes give about 1/256, a sign/exponent plane or a plane of zeros far more.
 * Trying zstd on a random plane costs as much as compressing a useful one (bench-store --stages). */
static bool plane_compressible(const uint8_t *p, size_t n) {
        uint32_t hist[256] = {};
        size_t stride = MAX(n / 4096, (size_t)1), samples = 0;
        for (size_t i = 0; i < n; i += stride, samples++)
                hist[p[i]]++;
        uint64_t sumsq = 0;
        for (int i = 0; i < 256; i++)
                sumsq += (uint64_t)hist[i] * hist[i];
        return sumsq * 128 > (uint64_t)samples * samples; /* above 2/256 */
}

/* A plane-coded block: the byte planes of in (already split, esz planes of bs/esz bytes), each
 * [u8 codec][u32 length][bytes], zstd only where it looks worth trying and comes out smaller. */
static void encode_planes(ZSTD_CCtx *cctx, const uint8_t *in, size_t bs, size_t esz, uint8_t *out, size_t *ret_len) {
        size_t n = bs / esz, pos = 0;
        for (size_t b = 0; b < esz; b++) {
                const uint8_t *plane = in + b * n;
                uint8_t *o = out + pos;
                size_t c = 0;
                bool z = false;
                if (plane_compressible(plane, n)) {
                        /* Room for less than raw only: a frame that does not fit is not worth it
                         * (that error, like any other, leaves the plane raw: still a correct file). */
                        c = ZSTD_compress2(cctx, o + PLANE_OVERHEAD, n - 1, plane, n);
                        z = !ZSTD_isError(c);
                }
                if (!z) {
                        memcpy(o + PLANE_OVERHEAD, plane, n);
                        c = n;
                }
                o[0] = z ? SF_BLOCK_ZSTD : SF_BLOCK_RAW;
                for (int i = 0; i < 4; i++)
                        o[1 + i] = (uint8_t)(c >> (8 * i));
                pos += PLANE_OVERHEAD + c;
        }
        *ret_len = pos;
}

int sf_encode(const SessionRecord *rec, const SfEncodeParams *p, uint8_t **ret, size_t *ret_size, RwkvError *err) {
        if (__BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__)
                return error_set(err, EOPNOTSUPP, "session files are little-endian; big-endian hosts unsupported");
        const SessionMeta *m = &rec->meta;
        if (!rec->state || m->state_floats == 0 || m->state_floats > STORE_STATE_FLOATS_MAX)
                return error_set(err, EINVAL, "record has no state or a state size out of range");
        if ((rec->logits || rec->penalties) && (m->n_vocab == 0 || m->n_vocab > STORE_VOCAB_MAX))
                return error_set(err, EINVAL, "record has logits/penalties but vocabulary size %u", m->n_vocab);
        if (rec->transcript_size > STORE_TRANSCRIPT_MAX || (rec->transcript_size && !rec->transcript))
                return error_set(err, EINVAL, "transcript too large (%zu bytes, at most %u)", rec->transcript_size,
                                 STORE_TRANSCRIPT_MAX);
        if (rec->has_pending_token && m->n_vocab && rec->pending_token >= m->n_vocab)
                return error_set(err, EINVAL, "pending token %u outside the vocabulary", rec->pending_token);
        if (m->id[0] && !store_id_is_valid(m->id))
                return error_set(err, EINVAL, "invalid session id");
        if (strnlen(m->title, STORE_TITLE_MAX + 1) > STORE_TITLE_MAX)
                return error_set(err, EINVAL, "title longer than %u bytes", STORE_TITLE_MAX);
        if ((unsigned)p->precision > STORE_PRECISION_BF16)
                return error_set(err, EINVAL, "unknown state precision %d", (int)p->precision);

        uint32_t version = p->version ? p->version : SF_VERSION;
        if (version < SF_VERSION_MIN || version > SF_VERSION)
                return error_set(err, EINVAL, "cannot write session file version %u", version);
        if (version < 2 && rec->utf8.n_pending > 0)
                return error_set(err, EINVAL, "version 1 files cannot hold an unfinished UTF-8 character");
        SfHeader h = { .version = version, .meta = *m };
        h.meta.precision = p->precision;
        h.flags = (rec->logits ? SF_FLAG_LOGITS : 0) | (rec->penalties ? SF_FLAG_PENALTIES : 0) |
                  (rec->has_pending_token ? SF_FLAG_PENDING_TOKEN : 0) | (p->checkpoint ? SF_FLAG_CHECKPOINT : 0);
        h.pending_token = rec->has_pending_token ? rec->pending_token : 0;
        h.source_uid = (uint32_t)p->uid;
        h.sampler = rec->sampler;
        h.rng = rec->rng;
        h.transcript_size = rec->transcript_size;
        {
                /* Only the held bytes count (a Utf8Stream may leave stale ones after them). */
                uint8_t b[3] = {}, n = rec->utf8.n_pending;
                memcpy(b, rec->utf8.pending, MIN(n, (uint8_t)3));
                if (!utf8_carry_valid(b, n))
                        return error_set(err, EINVAL, "the unfinished UTF-8 character is not one");
                memcpy(h.utf8.pending, b, 3);
                h.utf8.n_pending = n;
        }
        h.block_log2 = p->block_log2 ? p->block_log2 : SF_BLOCK_LOG2_DEFAULT;
        h.codec = (p->zstd_level != 0 ? SF_CODEC_ZSTD : SF_CODEC_RAW) | (p->shuffle ? SF_CODEC_SHUFFLE : 0);
        Layout l;
        if (layout_compute(&h, &l) < 0)
                return error_set(err, EINVAL, "record sizes out of range");
        h.raw_size = l.raw;
        const void *src[_SEC_MAX] = { rec->state, rec->logits, rec->penalties, rec->transcript };

        /* The header's size does not depend on the payload (fixed-width fields), so the blocks can be
         * compressed straight to their final place in the file and sealed there, in place. */
        uint8_t hbuf[SF_HEADER_MAX];
        size_t hlen = sf_header_write(&h, hbuf, sizeof(hbuf));
        if (hlen > sizeof(hbuf))
                return error_set(err, EINVAL, "header too large");
        uint32_t header_clen = (uint32_t)(hlen + SS_ABYTES);
        size_t head = SF_PREFIX_BYTES + header_clen;

        /* 1. Blocks: [u32 length][sealed tag byte][codec][data][MAC]; zstd only where it shrinks. */
        size_t block = (size_t)1 << h.block_log2, bound = block_data_max(block);
        _cleanup_(freep) uint8_t *out = malloc(head + l.payload_max);
        _cleanup_(freep) size_t *lens = malloc(l.nblocks * sizeof(size_t));
        _cleanup_(freep) uint8_t *scratch = malloc(2 * block);
        _cleanup_(zstd_cctx_freep) ZSTD_CCtx *cctx = p->zstd_level != 0 ? ZSTD_createCCtx() : NULL;
        if (!out || !lens || !scratch || (p->zstd_level != 0 && !cctx))
                return error_set(err, ENOMEM, "out of memory for a %llu-byte payload", (unsigned long long)l.raw);
        if (cctx) {
                size_t z = ZSTD_CCtx_setParameter(cctx, ZSTD_c_compressionLevel, p->zstd_level);
                if (ZSTD_isError(z))
                        return error_set(err, EINVAL, "zstd level %d: %s", p->zstd_level, ZSTD_getErrorName(z));
                /* Negative (fast) levels normally store literals raw. Here the literals are what
                 * compresses: a sign/exponent plane has few distinct bytes but few long repeats, so
                 * Huffman coding is the gain and matching the cost (bench-store --stages: the 0.1B
                 * state's exponent plane takes 2.4 ms at level 1, 0.6 ms at level -256 with Huffman
                 * literals, and comes out smaller). Random mantissa planes are not even tried
                 * (plane_compressible); in a whole block they fail the Huffman test and stay raw. */
                (void)ZSTD_CCtx_setParameter(cctx, ZSTD_c_literalCompressionMode, LITERALS_HUFFMAN);
        }
        size_t opos = head, nb = 0;
        for (int sec = 0; sec < _SEC_MAX; sec++)
                for (uint64_t off = 0; off < l.bytes[sec]; off += block) {
                        size_t bs = (size_t)MIN((uint64_t)block, l.bytes[sec] - off);
                        const uint8_t *in;
                        if (sec == SEC_TRANSCRIPT) {
                                in = (const uint8_t *)src[sec] + off;
                        } else {
                                StorePrecision prec = sec == SEC_STATE ? p->precision : STORE_PRECISION_F32;
                                size_t esz = l.esz[sec];
                                const float *f = (const float *)src[sec] + off / esz;
                                section_pack(f, bs / esz, prec, p->shuffle, scratch, scratch + block);
                                in = scratch;
                        }
                        uint8_t *o = out + opos + 5; /* the plaintext: codec byte, then data */
                        size_t c = 0;
                        if (cctx && version >= 2 && sec != SEC_TRANSCRIPT && p->shuffle && l.esz[sec] > 1) {
                                encode_planes(cctx, in, bs, l.esz[sec], o + 1, &c);
                                o[0] = SF_BLOCK_PLANES;
                                lens[nb++] = c + 1;
                                opos += 4 + c + 1 + SS_ABYTES;
                                continue;
                        }
                        if (cctx) {
                                c = ZSTD_compress2(cctx, o + 1, bound, in, bs);
                                if (ZSTD_isError(c))
                                        return error_set(err, EIO, "zstd: %s", ZSTD_getErrorName(c));
                        }
                        if (cctx && c < bs)
                                o[0] = SF_BLOCK_ZSTD;
                        else {
                                o[0] = SF_BLOCK_RAW;
                                memcpy(o + 1, in, bs);
                                c = bs;
                        }
                        lens[nb++] = c + 1;
                        opos += 4 + c + 1 + SS_ABYTES;
                }
        uint64_t total = opos;
        h.payload_bytes = total - head;
        if (sf_header_write(&h, hbuf, sizeof(hbuf)) != hlen)
                return error_set(err, EIO, "internal error: header size changed");

        /* 2. Seal: prefix (plain, authenticated as the header's additional data), header, blocks. */
        Wr w = { out, 0, SF_PREFIX_BYTES };
        wr_bytes(&w, SF_MAGIC, 8);
        wr_u32(&w, version);
        wr_u32(&w, (uint32_t)p->kind);
        wr_u32(&w, (uint32_t)p->uid);
        wr_u32(&w, header_clen);
        _cleanup_(ss_state_wipe) crypto_secretstream_xchacha20poly1305_state st;
        crypto_secretstream_xchacha20poly1305_init_push(&st, out + 24, p->key);
        memset(out + 24 + SS_HEADERBYTES, 0, SF_PREFIX_BYTES - 24 - SS_HEADERBYTES);
        crypto_secretstream_xchacha20poly1305_push(&st, out + SF_PREFIX_BYTES, NULL, hbuf, hlen, out, SF_PREFIX_BYTES,
                                                   crypto_secretstream_xchacha20poly1305_TAG_MESSAGE);
        sodium_memzero(hbuf, sizeof(hbuf));
        opos = head;
        for (size_t i = 0; i < nb; i++) {
                Wr lw = { out + opos, 0, 4 };
                wr_u32(&lw, (uint32_t)(lens[i] + SS_ABYTES));
                /* In place: the cipher text starts one byte in (after the sealed tag byte), exactly
                 * where the plaintext lies. */
                crypto_secretstream_xchacha20poly1305_push(&st, out + opos + 4, NULL, out + opos + 5, lens[i], NULL, 0,
                                                           i + 1 == nb
                                                                   ? crypto_secretstream_xchacha20poly1305_TAG_FINAL
                                                                   : crypto_secretstream_xchacha20poly1305_TAG_MESSAGE);
                opos += 4 + lens[i] + SS_ABYTES;
        }
        if (opos != total)
                return error_set(err, EIO, "internal error: wrote %zu of %llu bytes", opos, (unsigned long long)total);
        *ret = TAKE_PTR(out);
        *ret_size = (size_t)total;
        return 0;
}

/* The planes of one plane-coded block into out (esz planes of n bytes). Every length is checked
 * against what is left; every plane must come out exactly n bytes, and fill data exactly.
 * -EBADMSG with *ret_plane = the plane at fault (esz: bytes after the last one). */
static int decode_planes(ZSTD_DCtx *dctx, const uint8_t *data, size_t dlen, size_t n, size_t esz, uint8_t *out,
                         size_t *ret_plane) {
        size_t pos = 0;
        for (size_t b = 0; b < esz; b++) {
                *ret_plane = b;
                if (dlen - pos < PLANE_OVERHEAD)
                        return -EBADMSG;
                uint8_t codec = data[pos];
                size_t c = (size_t)data[pos + 1] | (size_t)data[pos + 2] << 8 | (size_t)data[pos + 3] << 16 |
                           (size_t)data[pos + 4] << 24;
                pos += PLANE_OVERHEAD;
                if (c > dlen - pos)
                        return -EBADMSG;
                const uint8_t *d = data + pos;
                uint8_t *o = out + b * n;
                if (codec == SF_BLOCK_RAW) {
                        if (c != n)
                                return -EBADMSG;
                        memcpy(o, d, n);
                } else if (codec == SF_BLOCK_ZSTD) {
                        if (c >= n || ZSTD_getFrameContentSize(d, c) != n)
                                return -EBADMSG;
                        size_t k = ZSTD_decompressDCtx(dctx, o, n, d, c);
                        if (ZSTD_isError(k) || k != n)
                                return -EBADMSG;
                } else
                        return -EBADMSG;
                pos += c;
        }
        *ret_plane = esz;
        return pos == dlen ? 0 : -EBADMSG;
}

static int decode(Src *src, const uint8_t *key, SfKind kind, uid_t uid, SessionRecord **ret, RwkvError *err) {
        _cleanup_(ss_state_wipe) crypto_secretstream_xchacha20poly1305_state st;
        SfPrefix p;
        SfHeader h;
        int r = header_open(src, key, kind, uid, &st, &p, &h, err);
        if (r < 0)
                return r;
        Layout l;
        (void)layout_compute(&h, &l); /* validated by sf_header_parse */
        /* In memory the file's size is known before anything else is read. */
        uint64_t total = sf_prefix_head_bytes(&p) + h.payload_bytes;
        if (src->fd < 0 && src->size != total)
                return error_set(err, EBADMSG, "file is %zu bytes, its header says %llu (%s)", src->size,
                                 (unsigned long long)total, src->size < total ? "truncated" : "trailing garbage");

        _cleanup_(session_record_freep) SessionRecord *rec = calloc(1, sizeof(*rec));
        if (!rec)
                return error_set(err, ENOMEM, "out of memory");
        rec->meta = h.meta;
        rec->meta.file_bytes = total;
        rec->sampler = h.sampler;
        rec->rng = h.rng;
        rec->has_pending_token = !!(h.flags & SF_FLAG_PENDING_TOKEN);
        rec->pending_token = h.pending_token;
        rec->utf8 = h.utf8;
        rec->state = malloc(h.meta.state_floats * sizeof(float));
        if (l.bytes[SEC_LOGITS])
                rec->logits = malloc((size_t)l.bytes[SEC_LOGITS]);
        if (l.bytes[SEC_PENALTIES])
                rec->penalties = malloc((size_t)l.bytes[SEC_PENALTIES]);
        if (l.bytes[SEC_TRANSCRIPT]) {
                rec->transcript = malloc((size_t)l.bytes[SEC_TRANSCRIPT]);
                rec->transcript_size = (size_t)l.bytes[SEC_TRANSCRIPT];
        }
        size_t block = (size_t)1 << h.block_log2, msg_max = MSG_OVERHEAD - 4 + block_data_max(block);
        bool half = h.meta.precision != STORE_PRECISION_F32, shuffle = !!(h.codec & SF_CODEC_SHUFFLE);
        /* Per-block buffers, reused: the message (decrypted in place) and a block for the byte planes
         * (two for half floats). Nothing here grows with the state. */
        _cleanup_(freep) uint8_t *cbuf = malloc(msg_max), *scratch = malloc(block * (half ? 2 : 1));
        _cleanup_(zstd_dctx_freep) ZSTD_DCtx *dctx = ZSTD_createDCtx();
        if (!rec->state || (l.bytes[SEC_LOGITS] && !rec->logits) || (l.bytes[SEC_PENALTIES] && !rec->penalties) ||
            (l.bytes[SEC_TRANSCRIPT] && !rec->transcript) || !cbuf || !scratch || !dctx)
                return error_set(err, ENOMEM, "out of memory");
        void *dst[_SEC_MAX] = { rec->state, rec->logits, rec->penalties, rec->transcript };

        uint64_t nb = 0, payload = 0;
        for (int sec = 0; sec < _SEC_MAX; sec++)
                for (uint64_t off = 0; off < l.bytes[sec]; off += block) {
                        size_t bs = (size_t)MIN((uint64_t)block, l.bytes[sec] - off);
                        bool last = ++nb == l.nblocks;
                        r = src_read(src, 4, cbuf);
                        if (r < 0)
                                return src_error(err, r, "in its payload");
                        uint32_t clen = (uint32_t)cbuf[0] | (uint32_t)cbuf[1] << 8 | (uint32_t)cbuf[2] << 16 |
                                        (uint32_t)cbuf[3] << 24;
                        if (clen < MSG_OVERHEAD - 4 || clen > MSG_OVERHEAD - 4 + block_data_max(bs) ||
                            payload + 4 + clen > h.payload_bytes)
                                return error_set(err, EBADMSG, "block %llu: length %u out of range",
                                                 (unsigned long long)nb, clen);
                        payload += 4 + clen;
                        r = src_read(src, clen, cbuf);
                        if (r < 0)
                                return src_error(err, r, "in its payload");
                        /* In place: the message's text starts one byte in (after the sealed tag byte),
                         * exactly where libsodium reads its cipher text, and it is authenticated before
                         * any byte is written. */
                        uint8_t *pbuf = cbuf + 1;
                        unsigned char tag;
                        unsigned long long mlen;
                        if (crypto_secretstream_xchacha20poly1305_pull(&st, pbuf, &mlen, &tag, cbuf, clen, NULL, 0) !=
                            0)
                                return error_set(err, EBADMSG, "block %llu fails authentication",
                                                 (unsigned long long)nb);
                        if (tag != (last ? crypto_secretstream_xchacha20poly1305_TAG_FINAL
                                         : crypto_secretstream_xchacha20poly1305_TAG_MESSAGE))
                                return error_set(err, EBADMSG, "block %llu has an unexpected tag",
                                                 (unsigned long long)nb);

                        /* Decode straight into the record when the bytes need no reordering. */
                        size_t esz = l.esz[sec];
                        bool transform = sec != SEC_TRANSCRIPT && ((shuffle && esz > 1) || (sec == SEC_STATE && half));
                        uint8_t *target = transform
                                                  ? scratch
                                                  : (uint8_t *)dst[sec] + (sec == SEC_TRANSCRIPT ? off : off / esz * 4);
                        const uint8_t *data = pbuf + 1;
                        size_t dlen = (size_t)mlen - 1;
                        if (pbuf[0] == SF_BLOCK_RAW) {
                                if (dlen != bs)
                                        return error_set(err, EBADMSG, "block %llu: %zu bytes, expected %zu",
                                                         (unsigned long long)nb, dlen, bs);
                                memcpy(target, data, bs);
                        } else if (pbuf[0] == SF_BLOCK_ZSTD) {
                                /* Never trust the declared size: exactly bs bytes or nothing. */
                                unsigned long long fcs = ZSTD_getFrameContentSize(data, dlen);
                                if (fcs != bs)
                                        return error_set(err, EBADMSG, "block %llu declares %llu bytes, expected %zu",
                                                         (unsigned long long)nb, fcs, bs);
                                size_t d = ZSTD_decompressDCtx(dctx, target, bs, data, dlen);
                                if (ZSTD_isError(d) || d != bs)
                                        return error_set(err, EBADMSG, "block %llu does not decompress to %zu bytes",
                                                         (unsigned long long)nb, bs);
                        } else if (pbuf[0] == SF_BLOCK_PLANES && h.version >= 2 && transform && shuffle) {
                                size_t plane;
                                if (decode_planes(dctx, data, dlen, bs / esz, esz, target, &plane) < 0)
                                        return error_set(err, EBADMSG, "block %llu: bad byte plane %zu",
                                                         (unsigned long long)nb, plane);
                        } else
                                return error_set(err, EBADMSG, "block %llu: unknown codec %u", (unsigned long long)nb,
                                                 pbuf[0]);
                        if (transform) {
                                StorePrecision prec = sec == SEC_STATE ? h.meta.precision : STORE_PRECISION_F32;
                                section_unpack(scratch, bs / esz, prec, shuffle, (float *)dst[sec] + off / esz,
                                               scratch + block);
                        }
                }
        if (payload != h.payload_bytes)
                return error_set(err, EBADMSG, "payload is %llu bytes, its header says %llu",
                                 (unsigned long long)payload, (unsigned long long)h.payload_bytes);
        r = src_end(src);
        if (r < 0)
                return r == -EBADMSG ? error_set(err, EBADMSG, "trailing garbage after the last block")
                                     : src_error(err, r, "");
        *ret = TAKE_PTR(rec);
        return 0;
}

int sf_decode(const uint8_t *buf, size_t size, const uint8_t *key, SfKind kind, uid_t uid, SessionRecord **ret,
              RwkvError *err) {
        Src src = { .mem = buf, .size = size, .fd = -1 };
        return decode(&src, key, kind, uid, ret, err);
}

int sf_decode_fd(int fd, const uint8_t *key, SfKind kind, uid_t uid, SessionRecord **ret, RwkvError *err) {
        Src src = { .fd = fd };
        return decode(&src, key, kind, uid, ret, err);
}
