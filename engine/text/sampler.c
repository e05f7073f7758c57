/* sampler.c: next-token selection with penalties, top-k, min-p and top-p by partial selection. */
#include "engine/text/sampler.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- RNG: xoshiro256** (Blackman & Vigna), seeded through splitmix64 so that any 64-bit seed,
 * 0 included, gives a well-mixed non-zero state. ---- */

static uint64_t splitmix64(uint64_t *x) {
        uint64_t z = (*x += UINT64_C(0x9E3779B97F4A7C15));
        z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
        z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
        return z ^ (z >> 31);
}

static inline uint64_t rotl(uint64_t x, int k) {
        return (x << k) | (x >> (64 - k));
}

void rng_seed(Rng *rng, uint64_t seed) {
        for (size_t i = 0; i < 4; i++)
                rng->s[i] = splitmix64(&seed);
}

uint64_t rng_next(Rng *rng) {
        uint64_t *s = rng->s;
        uint64_t result = rotl(s[1] * 5, 7) * 9;
        uint64_t t = s[1] << 17;

        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = rotl(s[3], 45);
        return result;
}

double rng_uniform(Rng *rng) {
        return (double) (rng_next(rng) >> 11) * 0x1.0p-53;
}

/* ---- parameters ---- */

SamplerParams sampler_params_default(void) {
        return (SamplerParams) {
                .temperature = 1.0f,
                .top_p = 0.3f,
                .top_k = 0,
                .min_p = 0.0f,
                .presence_penalty = 0.5f,
                .frequency_penalty = 0.5f,
                .penalty_decay = 0.996f,
        };
}

int sampler_params_validate(const SamplerParams *p, RwkvError *err) {
        if (!p)
                return error_set(err, EINVAL, "no sampler parameters");
        if (!isfinite(p->temperature) || p->temperature < 0.0f)
                return error_set(err, EINVAL, "temperature %g: must be a finite number >= 0", (double) p->temperature);
        if (!isfinite(p->top_p) || p->top_p < 0.0f || p->top_p > 1.0f)
                return error_set(err, EINVAL, "top-p %g: must be within [0, 1]", (double) p->top_p);
        if (!isfinite(p->min_p) || p->min_p < 0.0f || p->min_p >= 1.0f)
                return error_set(err, EINVAL, "min-p %g: must be within [0, 1)", (double) p->min_p);
        if (!isfinite(p->presence_penalty) || fabsf(p->presence_penalty) > 1e4f)
                return error_set(err, EINVAL, "presence penalty %g: must be finite and within +-10000",
                                 (double) p->presence_penalty);
        if (!isfinite(p->frequency_penalty) || fabsf(p->frequency_penalty) > 1e4f)
                return error_set(err, EINVAL, "frequency penalty %g: must be finite and within +-10000",
                                 (double) p->frequency_penalty);
        if (!isfinite(p->penalty_decay) || p->penalty_decay < 0.0f || p->penalty_decay > 1.0f)
                return error_set(err, EINVAL, "penalty decay %g: must be within [0, 1]", (double) p->penalty_decay);
        return 0;
}

/* ---- sampler ---- */

struct Sampler {
        uint32_t n_vocab;
        float *l;                 /* working logits */
        uint32_t *cand;           /* candidate ids */
        float *prob;              /* unnormalised probabilities, parallel to cand */
};

Sampler *sampler_free(Sampler *s) {
        if (!s)
                return NULL;
        free(s->l);
        free(s->cand);
        free(s->prob);
        free(s);
        return NULL;
}
DEFINE_TRIVIAL_CLEANUP_FUNC(Sampler *, sampler_free);

int sampler_new(uint32_t n_vocab, Sampler **ret) {
        _cleanup_(sampler_freep) Sampler *s = NULL;

        if (!ret || n_vocab == 0 || n_vocab > (1u << 24))
                return -EINVAL;
        s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        s->n_vocab = n_vocab;
        s->l = malloc(n_vocab * sizeof(float));
        s->cand = malloc(n_vocab * sizeof(uint32_t));
        s->prob = malloc(n_vocab * sizeof(float));
        if (!s->l || !s->cand || !s->prob)
                return -ENOMEM;
        *ret = TAKE_PTR(s);
        return 0;
}

uint32_t sampler_vocab_size(const Sampler *s) {
        return s->n_vocab;
}

void sampler_penalty_update(float *counts, uint32_t n_vocab, float decay, uint32_t token) {
        for (uint32_t i = 0; i < n_vocab; i++)
                counts[i] *= decay;
        if (token < n_vocab)
                counts[token] += 1.0f;
}

/* The total order used for selection: higher logit first, then lower id. With it every selection is
 * unique, so the result never depends on how the partial sort happened to arrange things. */
static inline bool logit_before(const float *l, uint32_t a, uint32_t b) {
        return l[a] > l[b] || (l[a] == l[b] && a < b);
}

static inline void swap_u32(uint32_t *a, uint32_t *b) {
        uint32_t t = *a;
        *a = *b;
        *b = t;
}

/* Rearrange c[0..n) so that c[0..k) are the k first in logit_before order (in no particular order).
 * Quickselect, median-of-three pivot: O(n) on average. */
static void select_top_k(const float *l, uint32_t *c, size_t n, size_t k) {
        size_t lo = 0, hi = n; /* the k-th element lies in [lo, hi) */

        while (hi - lo > 1) {
                size_t mid = lo + (hi - lo) / 2, store;
                /* Median of three moved to hi-1 as pivot. */
                if (logit_before(l, c[mid], c[lo]))
                        swap_u32(&c[mid], &c[lo]);
                if (logit_before(l, c[hi - 1], c[lo]))
                        swap_u32(&c[hi - 1], &c[lo]);
                if (logit_before(l, c[mid], c[hi - 1]))
                        swap_u32(&c[mid], &c[hi - 1]);
                uint32_t pivot = c[hi - 1];

                store = lo;
                for (size_t i = lo; i < hi - 1; i++)
                        if (logit_before(l, c[i], pivot))
                                swap_u32(&c[i], &c[store++]);
                swap_u32(&c[store], &c[hi - 1]);

                if (store == k || store + 1 == k)
                        return; /* [0, k) holds exactly the first k */
                if (store > k)
                        hi = store;
                else
                        lo = store + 1;
        }
}

/* Heap keyed by (prob desc, id asc) over the parallel arrays. */
static inline bool prob_before(const float *p, const uint32_t *c, size_t a, size_t b) {
        return p[a] > p[b] || (p[a] == p[b] && c[a] < c[b]);
}

static void heap_sift_down(float *p, uint32_t *c, size_t n, size_t i) {
        for (;;) {
                size_t best = i, l = 2 * i + 1, r = l + 1;
                if (l < n && prob_before(p, c, l, best))
                        best = l;
                if (r < n && prob_before(p, c, r, best))
                        best = r;
                if (best == i)
                        return;
                float tp = p[i];
                p[i] = p[best];
                p[best] = tp;
                swap_u32(&c[i], &c[best]);
                i = best;
        }
}

/* Move the nucleus to the end of the arrays in descending order; returns its size. O(n + m log n)
 * for a nucleus of m tokens, which top-p keeps small in practice. */
static size_t select_nucleus(float *p, uint32_t *c, size_t n, double target) {
        double cum = 0;
        size_t end = n;

        for (size_t i = n / 2; i-- > 0;)
                heap_sift_down(p, c, n, i);
        while (end > 0) {
                /* Pop the most probable remaining token to position end-1. */
                float tp = p[0];
                uint32_t tc = c[0];
                end--;
                p[0] = p[end];
                c[0] = c[end];
                p[end] = tp;
                c[end] = tc;
                heap_sift_down(p, c, end, 0);
                cum += tp;
                if (cum >= target)
                        break;
        }
        return n - end;
}

int sampler_sample(Sampler *s, const SamplerParams *p, const float *logits, const float *counts,
                   const LogitBias *bias, size_t n_bias, Rng *rng, uint32_t *ret_token) {
        const uint32_t nv = s ? s->n_vocab : 0;
        float *l, *prob, max;
        uint32_t *c;
        size_t m = 0;

        if (!s || !p || !logits || (!bias && n_bias > 0) || !rng || !ret_token)
                return -EINVAL;
        if (sampler_params_validate(p, NULL) < 0)
                return -EINVAL;
        l = s->l;
        c = s->cand;
        prob = s->prob;

        /* 1-2: bias, then penalties. */
        memcpy(l, logits, nv * sizeof(float));
        for (size_t i = 0; i < n_bias; i++) {
                if (isnan(bias[i].bias))
                        return -EINVAL;
                if (bias[i].token < nv)
                        l[bias[i].token] += bias[i].bias;
        }
        if (counts && (p->presence_penalty != 0.0f || p->frequency_penalty != 0.0f))
                for (uint32_t i = 0; i < nv; i++)
                        if (counts[i] > 0.0f)
                                l[i] -= p->presence_penalty + p->frequency_penalty * counts[i];

        /* Candidates: every token with a usable logit (NaN and -inf never win). */
        max = -INFINITY;
        uint32_t argmax = UINT32_MAX;
        for (uint32_t i = 0; i < nv; i++) {
                float v = l[i];
                if (!(v > -INFINITY))
                        continue;
                c[m++] = i;
                if (v > max) {
                        max = v;
                        argmax = i;
                }
        }
        if (m == 0)
                return -EDOM;

        /* 3: greedy. Also when a logit is +inf: nothing else has any probability. */
        if (p->temperature <= 0.0f || isinf(max)) {
                *ret_token = argmax;
                return 0;
        }

        /* 4: top-k by quickselect. */
        if (p->top_k > 0 && p->top_k < m) {
                select_top_k(l, c, m, p->top_k);
                m = p->top_k;
        }

        /* 5: softmax numerators relative to the maximum (which is kept by any top-k), so the most
         * probable token has exactly 1 and min-p compares against 1. */
        const float inv_t = 1.0f / p->temperature;
        double total = 0;
        for (size_t j = 0; j < m; j++) {
                prob[j] = expf((l[c[j]] - max) * inv_t);
                total += prob[j];
        }

        /* 6: min-p. */
        if (p->min_p > 0.0f) {
                size_t k = 0;
                total = 0;
                for (size_t j = 0; j < m; j++)
                        if (prob[j] >= p->min_p) {
                                prob[k] = prob[j];
                                c[k++] = c[j];
                                total += prob[j];
                        }
                m = k; /* the maximum (1.0) always survives */
        }

        /* 7: top-p. */
        float *kp = prob;
        uint32_t *kc = c;
        if (p->top_p < 1.0f && m > 1) {
                size_t k = select_nucleus(prob, c, m, (double) p->top_p * total);
                kp = prob + (m - k);
                kc = c + (m - k);
                m = k;
                total = 0;
                for (size_t j = 0; j < m; j++)
                        total += kp[j];
        }

        /* 8: one draw. */
        double r = rng_uniform(rng) * total, cum = 0;
        for (size_t j = 0; j < m; j++) {
                cum += kp[j];
                if (r < cum) {
                        *ret_token = kc[j];
                        return 0;
                }
        }
        *ret_token = kc[m - 1]; /* rounding left r at the very top */
        return 0;
}
