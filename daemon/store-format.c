/* store-format.c: the session file codec (see store-format.h and protocol/session-format.md). */
#include <limits.h>
#include <sodium.h>
#include <string.h>
#include <zstd.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include "daemon/store-format.h"

#define SS_ABYTES crypto_secretstream_xchacha20poly1305_ABYTES
#define SS_HEADERBYTES crypto_secretstream_xchacha20poly1305_HEADERBYTES
#define SF_CHUNK_LOG2_DEFAULT 17u /* 128 KiB: small enough to stay in L2 while decrypting */
#define SF_CHUNK_LOG2_MIN 12u
#define SF_CHUNK_LOG2_MAX 24u

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
        uint8_t b[2] = { (uint8_t) v, (uint8_t) (v >> 8) };
        wr_bytes(w, b, 2);
}
static void wr_u32(Wr *w, uint32_t v) {
        uint8_t b[4];
        for (int i = 0; i < 4; i++)
                b[i] = (uint8_t) (v >> (8 * i));
        wr_bytes(w, b, 4);
}
static void wr_u64(Wr *w, uint64_t v) {
        uint8_t b[8];
        for (int i = 0; i < 8; i++)
                b[i] = (uint8_t) (v >> (8 * i));
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
                v |= (uint64_t) b[i] << (8 * i);
        return v;
}
static uint8_t rd_u8(Rd *r) {
        return (uint8_t) rd_le(r, 1);
}
static uint16_t rd_u16(Rd *r) {
        return (uint16_t) rd_le(r, 2);
}
static uint32_t rd_u32(Rd *r) {
        return (uint32_t) rd_le(r, 4);
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
                return (uint16_t) ((x >> 16) | 0x40u);
        x += 0x7fffu + ((x >> 16) & 1u);
        return (uint16_t) (x >> 16);
}
static float bf16_to_f32_(uint16_t h) {
        uint32_t x = (uint32_t) h << 16;
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
                return (uint16_t) (sign | 0x7e00u);
        if (ax >= 0x477ff000u) /* rounds to >= 65520: infinity */
                return (uint16_t) (sign | 0x7c00u);
        if (ax < 0x38800000u) { /* below the smallest normal half: subnormal or zero */
                if (ax < 0x33000000u)
                        return (uint16_t) sign;
                uint32_t e = ax >> 23, m = (ax & 0x7fffffu) | 0x800000u;
                uint32_t shift = 126u - e; /* 14..24 */
                uint32_t half = m >> shift, rem = m & ((1u << shift) - 1u), mid = 1u << (shift - 1u);
                if (rem > mid || (rem == mid && (half & 1u)))
                        half++;
                return (uint16_t) (sign | half);
        }
        uint32_t h = ((ax >> 13) - (112u << 10));
        uint32_t rem = ax & 0x1fffu;
        if (rem > 0x1000u || (rem == 0x1000u && (h & 1u)))
                h++;
        return (uint16_t) (sign | h);
}
static float f16_to_f32_(uint16_t h) {
        uint32_t sign = (uint32_t) (h & 0x8000u) << 16, e = (h >> 10) & 0x1fu, m = h & 0x3ffu, x;
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
                        __m128i x0 = _mm_loadu_si128((const __m128i *) (in + 4 * i));
                        __m128i x1 = _mm_loadu_si128((const __m128i *) (in + 4 * i + 16));
                        __m128i x2 = _mm_loadu_si128((const __m128i *) (in + 4 * i + 32));
                        __m128i x3 = _mm_loadu_si128((const __m128i *) (in + 4 * i + 48));
                        for (int b = 0; b < 4; b++) {
                                __m128i sh = _mm_cvtsi32_si128(8 * b);
                                __m128i y0 = _mm_and_si128(_mm_srl_epi32(x0, sh), m);
                                __m128i y1 = _mm_and_si128(_mm_srl_epi32(x1, sh), m);
                                __m128i y2 = _mm_and_si128(_mm_srl_epi32(x2, sh), m);
                                __m128i y3 = _mm_and_si128(_mm_srl_epi32(x3, sh), m);
                                __m128i p = _mm_packus_epi16(_mm_packs_epi32(y0, y1), _mm_packs_epi32(y2, y3));
                                _mm_storeu_si128((__m128i *) (out + (size_t) b * n + i), p);
                        }
                }
#endif
                for (; i < n; i++) {
                        uint32_t v;
                        memcpy(&v, in + 4 * i, 4); /* little-endian: byte b = bits 8b.. */
                        o0[i] = (uint8_t) v;
                        o1[i] = (uint8_t) (v >> 8);
                        o2[i] = (uint8_t) (v >> 16);
                        o3[i] = (uint8_t) (v >> 24);
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
                        __m128i a = _mm_loadu_si128((const __m128i *) (i0 + i));
                        __m128i b = _mm_loadu_si128((const __m128i *) (i1 + i));
                        __m128i c = _mm_loadu_si128((const __m128i *) (i2 + i));
                        __m128i d = _mm_loadu_si128((const __m128i *) (i3 + i));
                        __m128i ab_lo = _mm_unpacklo_epi8(a, b), ab_hi = _mm_unpackhi_epi8(a, b);
                        __m128i cd_lo = _mm_unpacklo_epi8(c, d), cd_hi = _mm_unpackhi_epi8(c, d);
                        __m128i *o = (__m128i *) (out + 4 * i);
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

typedef struct Layout {
        uint64_t state, logits, penalties, transcript, raw;
} Layout;

static int layout_compute(const SfHeader *h, Layout *ret) {
        Layout l = {};
        if (h->meta.state_floats == 0 || h->meta.state_floats > STORE_STATE_FLOATS_MAX)
                return -EBADMSG;
        if (h->meta.n_vocab > STORE_VOCAB_MAX || h->transcript_size > STORE_TRANSCRIPT_MAX)
                return -EBADMSG;
        if ((h->flags & (SF_FLAG_LOGITS | SF_FLAG_PENALTIES)) && h->meta.n_vocab == 0)
                return -EBADMSG;
        l.state = h->meta.state_floats * precision_bytes(h->meta.precision);
        l.logits = (h->flags & SF_FLAG_LOGITS) ? (uint64_t) h->meta.n_vocab * 4 : 0;
        l.penalties = (h->flags & SF_FLAG_PENALTIES) ? (uint64_t) h->meta.n_vocab * 4 : 0;
        l.transcript = h->transcript_size;
        l.raw = l.state + l.logits + l.penalties + l.transcript; /* each term capped: no overflow */
        if (l.raw > SIZE_MAX / 2)
                return -EFBIG;
        *ret = l;
        return 0;
}

static uint64_t total_bytes(uint32_t header_clen, uint64_t comp, uint32_t chunk_log2) {
        uint64_t chunk = UINT64_C(1) << chunk_log2;
        uint64_t nchunks = (comp + chunk - 1) / chunk;
        return SF_PREFIX_BYTES + header_clen + comp + nchunks * SS_ABYTES;
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
        wr_u32(&w, (uint32_t) m->precision);
        wr_u32(&w, h->codec);
        wr_u32(&w, h->chunk_log2);
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
        wr_u64(&w, h->comp_size);
        size_t id_len = strnlen(m->id, STORE_ID_MAX);
        wr_u8(&w, (uint8_t) id_len);
        wr_bytes(&w, m->id, id_len);
        size_t title_len = strnlen(m->title, STORE_TITLE_MAX);
        wr_u16(&w, (uint16_t) title_len);
        wr_bytes(&w, m->title, title_len);
        return w.n;
}

int sf_header_parse(const uint8_t *buf, size_t size, SfHeader *ret, RwkvError *err) {
        Rd r = { buf, size, 0, false };
        SfHeader h = {};
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
        h.chunk_log2 = rd_u32(&r);
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
        h.comp_size = rd_u64(&r);
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
        if (r.bad)
                return error_set(err, EBADMSG, "header: truncated (%zu bytes)", size);
        if (r.pos != size)
                return error_set(err, EBADMSG, "header: %zu trailing bytes", size - r.pos);

        if (prec > STORE_PRECISION_BF16)
                return error_set(err, EBADMSG, "header: unknown state precision %u", prec);
        m->precision = (StorePrecision) prec;
        if ((h.codec & ~(uint32_t) SF_CODEC_SHUFFLE) > SF_CODEC_ZSTD)
                return error_set(err, EBADMSG, "header: unknown codec 0x%x", h.codec);
        if (h.chunk_log2 < SF_CHUNK_LOG2_MIN || h.chunk_log2 > SF_CHUNK_LOG2_MAX)
                return error_set(err, EBADMSG, "header: chunk size 2^%u out of range", h.chunk_log2);
        if (h.flags & ~(uint32_t) SF_FLAGS_KNOWN)
                return error_set(err, EBADMSG, "header: unknown flags 0x%x", h.flags);
        if (id_len > 0 && !store_id_is_valid(m->id))
                return error_set(err, EBADMSG, "header: invalid session id");
        if (memchr(m->title, 0, title_len))
                return error_set(err, EBADMSG, "header: title contains NUL");
        if (m->state_floats == 0 || m->state_floats > STORE_STATE_FLOATS_MAX)
                return error_set(err, EBADMSG, "header: state size %llu floats out of range",
                                 (unsigned long long) m->state_floats);
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
                                 (unsigned long long) h.raw_size, (unsigned long long) l.raw);
        if ((h.codec & 0xff) == SF_CODEC_RAW ? h.comp_size != h.raw_size
                                             : (h.comp_size == 0 || h.comp_size > ZSTD_compressBound(h.raw_size)))
                return error_set(err, EBADMSG, "header: compressed size %llu impossible for %llu bytes",
                                 (unsigned long long) h.comp_size, (unsigned long long) h.raw_size);
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
        if (p.version != SF_VERSION)
                return error_set(err, EPROTONOSUPPORT, "unsupported session file version %u (this daemon reads %u)", p.version,
                                 SF_VERSION);
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

/* Authenticates the header; leaves st ready for the payload chunks. */
static int header_open(const uint8_t *buf, size_t size, const uint8_t *key, SfKind kind, uid_t uid,
                       crypto_secretstream_xchacha20poly1305_state *st, SfPrefix *ret_p, SfHeader *ret_h,
                       RwkvError *err) {
        SfPrefix p;
        int r = sf_prefix_parse(buf, size, &p, err);
        if (r < 0)
                return r;
        if (p.kind != (uint32_t) kind)
                return error_set(err, EBADMSG, "%s file where %s file was expected",
                                 p.kind == SF_KIND_EXPORT ? "an export" : "a session",
                                 kind == SF_KIND_EXPORT ? "an export" : "a session");
        if (uid != (uid_t) -1 && p.uid != (uint32_t) uid)
                return error_set(err, EBADMSG, "file belongs to uid %u, not %u", p.uid, (unsigned) uid);
        if (size < sf_prefix_head_bytes(&p))
                return error_set(err, EBADMSG, "file truncated inside its header");

        uint8_t plain[SF_HEADER_MAX];
        unsigned char tag;
        unsigned long long mlen;
        if (crypto_secretstream_xchacha20poly1305_init_pull(st, buf + 24, key) != 0 ||
            crypto_secretstream_xchacha20poly1305_pull(st, plain, &mlen, &tag, buf + SF_PREFIX_BYTES, p.header_clen,
                                                       buf, SF_PREFIX_BYTES) != 0)
                return error_set(err, EBADMSG, "header fails authentication (corrupt, or sealed with another key)");
        if (tag != crypto_secretstream_xchacha20poly1305_TAG_MESSAGE)
                return error_set(err, EBADMSG, "header message has an unexpected tag");
        SfHeader h;
        r = sf_header_parse(plain, (size_t) mlen, &h, err);
        sodium_memzero(plain, sizeof(plain));
        if (r < 0)
                return r;
        h.meta.uid = (uid_t) p.uid;
        *ret_p = p;
        *ret_h = h;
        return 0;
}

int sf_decode_header(const uint8_t *buf, size_t size, const uint8_t *key, SfKind kind, uid_t uid, SessionMeta *meta,
                     uint64_t *ret_total, RwkvError *err) {
        _cleanup_(ss_state_wipe) crypto_secretstream_xchacha20poly1305_state st;
        SfPrefix p;
        SfHeader h;
        int r = header_open(buf, size, key, kind, uid, &st, &p, &h, err);
        if (r < 0)
                return r;
        if (meta)
                *meta = h.meta;
        if (ret_total)
                *ret_total = total_bytes(p.header_clen, h.comp_size, h.chunk_log2);
        return 0;
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
static void section_pack(const float *src, size_t n, StorePrecision prec, bool shuffle, uint8_t *out, uint8_t *scratch) {
        size_t esz = precision_bytes(prec);
        const uint8_t *bytes = (const uint8_t *) src;
        if (prec != STORE_PRECISION_F32) {
                uint16_t *h = (uint16_t *) (shuffle ? scratch : out);
                for (size_t i = 0; i < n; i++) {
                        uint16_t v = prec == STORE_PRECISION_F16 ? f32_to_f16_rne(src[i]) : f32_to_bf16_rne(src[i]);
                        memcpy(h + i, &v, 2); /* host order here; files are little-endian only (see docs) */
                }
                bytes = (const uint8_t *) h;
        }
        if (shuffle)
                planes_split(bytes, out, n, esz);
        else if (bytes != out)
                memcpy(out, bytes, n * esz);
}

static void section_unpack(const uint8_t *in, size_t n, StorePrecision prec, bool shuffle, float *dst, uint8_t *scratch) {
        size_t esz = precision_bytes(prec);
        if (prec == STORE_PRECISION_F32) {
                if (shuffle)
                        planes_join(in, (uint8_t *) dst, n, esz);
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
        if ((unsigned) p->precision > STORE_PRECISION_BF16)
                return error_set(err, EINVAL, "unknown state precision %d", (int) p->precision);

        SfHeader h = { .meta = *m };
        h.meta.precision = p->precision;
        h.flags = (rec->logits ? SF_FLAG_LOGITS : 0) | (rec->penalties ? SF_FLAG_PENALTIES : 0) |
                  (rec->has_pending_token ? SF_FLAG_PENDING_TOKEN : 0) | (p->checkpoint ? SF_FLAG_CHECKPOINT : 0);
        h.pending_token = rec->has_pending_token ? rec->pending_token : 0;
        h.source_uid = (uint32_t) p->uid;
        h.sampler = rec->sampler;
        h.rng = rec->rng;
        h.transcript_size = rec->transcript_size;
        h.chunk_log2 = SF_CHUNK_LOG2_DEFAULT;
        Layout l;
        if (layout_compute(&h, &l) < 0)
                return error_set(err, EINVAL, "record sizes out of range");
        h.raw_size = l.raw;

        /* 1. The raw payload: sections back to back. */
        _cleanup_(freep) uint8_t *raw = malloc(l.raw);
        _cleanup_(freep) uint8_t *scratch = NULL;
        if (!raw)
                return error_set(err, ENOMEM, "out of memory for a %llu-byte payload", (unsigned long long) l.raw);
        if (p->shuffle && p->precision != STORE_PRECISION_F32) {
                scratch = malloc(l.state);
                if (!scratch)
                        return error_set(err, ENOMEM, "out of memory");
        }
        uint8_t *o = raw;
        section_pack(rec->state, m->state_floats, p->precision, p->shuffle, o, scratch);
        o += l.state;
        if (rec->logits) {
                section_pack(rec->logits, m->n_vocab, STORE_PRECISION_F32, p->shuffle, o, NULL);
                o += l.logits;
        }
        if (rec->penalties) {
                section_pack(rec->penalties, m->n_vocab, STORE_PRECISION_F32, p->shuffle, o, NULL);
                o += l.penalties;
        }
        if (rec->transcript_size)
                memcpy(o, rec->transcript, rec->transcript_size);

        /* 2. Compress; keep the raw bytes when zstd does not shrink them (never larger than raw). */
        const uint8_t *payload = raw;
        h.comp_size = l.raw;
        h.codec = SF_CODEC_RAW | (p->shuffle ? SF_CODEC_SHUFFLE : 0);
        _cleanup_(freep) uint8_t *comp = NULL;
        if (p->zstd_level != 0) {
                size_t bound = ZSTD_compressBound(l.raw);
                _cleanup_(zstd_cctx_freep) ZSTD_CCtx *cctx = ZSTD_createCCtx();
                comp = malloc(bound);
                if (!comp || !cctx)
                        return error_set(err, ENOMEM, "out of memory for compression");
                size_t c = ZSTD_compressCCtx(cctx, comp, bound, raw, l.raw, p->zstd_level);
                if (ZSTD_isError(c))
                        return error_set(err, EIO, "zstd: %s", ZSTD_getErrorName(c));
                if (c < l.raw) {
                        payload = comp;
                        h.comp_size = c;
                        h.codec = SF_CODEC_ZSTD | (p->shuffle ? SF_CODEC_SHUFFLE : 0);
                }
        }

        /* 3. Seal: prefix (plain, authenticated as the header's additional data), header, chunks. */
        uint8_t hbuf[SF_HEADER_MAX];
        size_t hlen = sf_header_write(&h, hbuf, sizeof(hbuf));
        if (hlen > sizeof(hbuf))
                return error_set(err, EINVAL, "header too large");
        uint32_t header_clen = (uint32_t) (hlen + SS_ABYTES);
        uint64_t total = total_bytes(header_clen, h.comp_size, h.chunk_log2);
        _cleanup_(freep) uint8_t *out = malloc(total);
        if (!out)
                return error_set(err, ENOMEM, "out of memory for a %llu-byte file", (unsigned long long) total);

        Wr w = { out, 0, SF_PREFIX_BYTES };
        wr_bytes(&w, SF_MAGIC, 8);
        wr_u32(&w, SF_VERSION);
        wr_u32(&w, (uint32_t) p->kind);
        wr_u32(&w, (uint32_t) p->uid);
        wr_u32(&w, header_clen);
        crypto_secretstream_xchacha20poly1305_state st;
        crypto_secretstream_xchacha20poly1305_init_push(&st, out + 24, p->key);
        memset(out + 24 + SS_HEADERBYTES, 0, SF_PREFIX_BYTES - 24 - SS_HEADERBYTES);

        size_t pos = SF_PREFIX_BYTES;
        crypto_secretstream_xchacha20poly1305_push(&st, out + pos, NULL, hbuf, hlen, out, SF_PREFIX_BYTES,
                                                   crypto_secretstream_xchacha20poly1305_TAG_MESSAGE);
        pos += header_clen;
        sodium_memzero(hbuf, sizeof(hbuf));
        size_t chunk = (size_t) 1 << h.chunk_log2;
        for (uint64_t off = 0; off < h.comp_size; off += chunk) {
                size_t n = (size_t) MIN((uint64_t) chunk, h.comp_size - off);
                bool last = off + n == h.comp_size;
                crypto_secretstream_xchacha20poly1305_push(&st, out + pos, NULL, payload + off, n, NULL, 0,
                                                           last ? crypto_secretstream_xchacha20poly1305_TAG_FINAL
                                                                : crypto_secretstream_xchacha20poly1305_TAG_MESSAGE);
                pos += n + SS_ABYTES;
        }
        sodium_memzero(&st, sizeof(st));
        if (pos != total)
                return error_set(err, EIO, "internal error: wrote %zu of %llu bytes", pos, (unsigned long long) total);
        *ret = TAKE_PTR(out);
        *ret_size = (size_t) total;
        return 0;
}

int sf_decode(const uint8_t *buf, size_t size, const uint8_t *key, SfKind kind, uid_t uid, SessionRecord **ret,
              RwkvError *err) {
        _cleanup_(ss_state_wipe) crypto_secretstream_xchacha20poly1305_state st;
        SfPrefix p;
        SfHeader h;
        int r = header_open(buf, size, key, kind, uid, &st, &p, &h, err);
        if (r < 0)
                return r;
        uint64_t total = total_bytes(p.header_clen, h.comp_size, h.chunk_log2);
        if (size != total)
                return error_set(err, EBADMSG, "file is %zu bytes, its header says %llu (%s)", size,
                              (unsigned long long) total, size < total ? "truncated" : "trailing garbage");
        Layout l;
        (void) layout_compute(&h, &l); /* validated by sf_header_parse */

        /* Decrypt all chunks into one contiguous compressed buffer, checking the tag sequence. */
        _cleanup_(freep) uint8_t *comp = malloc(h.comp_size);
        if (!comp)
                return error_set(err, ENOMEM, "out of memory");
        size_t chunk = (size_t) 1 << h.chunk_log2, pos = sf_prefix_head_bytes(&p);
        for (uint64_t off = 0; off < h.comp_size; off += chunk) {
                size_t n = (size_t) MIN((uint64_t) chunk, h.comp_size - off);
                bool last = off + n == h.comp_size;
                unsigned char tag;
                if (crypto_secretstream_xchacha20poly1305_pull(&st, comp + off, NULL, &tag, buf + pos, n + SS_ABYTES, NULL,
                                                               0) != 0)
                        return error_set(err, EBADMSG, "payload chunk at offset %zu fails authentication", pos);
                if ((tag == crypto_secretstream_xchacha20poly1305_TAG_FINAL) != last ||
                    (!last && tag != crypto_secretstream_xchacha20poly1305_TAG_MESSAGE))
                        return error_set(err, EBADMSG, "payload chunk at offset %zu has an unexpected tag", pos);
                pos += n + SS_ABYTES;
        }

        /* Decompress into exactly the declared size; anything else is corruption. */
        const uint8_t *raw = comp;
        _cleanup_(freep) uint8_t *rawbuf = NULL;
        if ((h.codec & 0xff) == SF_CODEC_ZSTD) {
                rawbuf = malloc(l.raw ? l.raw : 1);
                _cleanup_(zstd_dctx_freep) ZSTD_DCtx *dctx = ZSTD_createDCtx();
                if (!rawbuf || !dctx)
                        return error_set(err, ENOMEM, "out of memory");
                unsigned long long fcs = ZSTD_getFrameContentSize(comp, h.comp_size);
                if (fcs != l.raw)
                        return error_set(err, EBADMSG, "compressed payload declares %llu bytes, expected %llu", fcs,
                                      (unsigned long long) l.raw);
                size_t d = ZSTD_decompressDCtx(dctx, rawbuf, l.raw, comp, h.comp_size);
                if (ZSTD_isError(d) || d != l.raw)
                        return error_set(err, EBADMSG, "payload does not decompress to %llu bytes: %s",
                                      (unsigned long long) l.raw, ZSTD_isError(d) ? ZSTD_getErrorName(d) : "short");
                raw = rawbuf;
        }

        _cleanup_(session_record_freep) SessionRecord *rec = calloc(1, sizeof(*rec));
        if (!rec)
                return error_set(err, ENOMEM, "out of memory");
        rec->meta = h.meta;
        rec->meta.file_bytes = size;
        rec->sampler = h.sampler;
        rec->rng = h.rng;
        rec->has_pending_token = !!(h.flags & SF_FLAG_PENDING_TOKEN);
        rec->pending_token = h.pending_token;
        bool shuffle = !!(h.codec & SF_CODEC_SHUFFLE);
        _cleanup_(freep) uint8_t *scratch = NULL;
        rec->state = malloc(h.meta.state_floats * sizeof(float));
        if (shuffle && h.meta.precision != STORE_PRECISION_F32)
                scratch = malloc(l.state);
        if (h.flags & SF_FLAG_LOGITS)
                rec->logits = malloc((size_t) l.logits);
        if (h.flags & SF_FLAG_PENALTIES)
                rec->penalties = malloc((size_t) l.penalties);
        if (l.transcript)
                rec->transcript = malloc((size_t) l.transcript);
        if (!rec->state || (shuffle && h.meta.precision != STORE_PRECISION_F32 && !scratch) ||
            (l.logits && !rec->logits) || (l.penalties && !rec->penalties) || (l.transcript && !rec->transcript))
                return error_set(err, ENOMEM, "out of memory");
        const uint8_t *in = raw;
        section_unpack(in, h.meta.state_floats, h.meta.precision, shuffle, rec->state, scratch);
        in += l.state;
        if (rec->logits) {
                section_unpack(in, h.meta.n_vocab, STORE_PRECISION_F32, shuffle, rec->logits, NULL);
                in += l.logits;
        }
        if (rec->penalties) {
                section_unpack(in, h.meta.n_vocab, STORE_PRECISION_F32, shuffle, rec->penalties, NULL);
                in += l.penalties;
        }
        if (l.transcript) {
                memcpy(rec->transcript, in, l.transcript);
                rec->transcript_size = l.transcript;
        }
        *ret = TAKE_PTR(rec);
        return 0;
}
