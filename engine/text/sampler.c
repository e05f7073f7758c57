/* sampler.c: next-token selection with penalties, top-k, min-p and top-p by partial selection. */
#include "engine/text/sampler.h"

#include "kernels/kernels.h"

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
        return (double)(rng_next(rng) >> 11) * 0x1.0p-53;
}

/* ---- parameters ---- */

SamplerParams sampler_params_default(void) {
        return (SamplerParams){
                .temperature = 1.0f,
                .top_p = 0.3f,
                .top_k = 0,
                .min_p = 0.0f,
                .presence_penalty = 0.5f,
                .frequency_penalty = 0.5f,
                .penalty_decay = 0.996f,
        };
}

SamplerParams sampler_params_for(const Tokenizer *tok) {
        SamplerParams p = sampler_params_default();
        if (tok && tokenizer_is_bytes(tok)) {
                p.top_p = 1.0f;
                p.presence_penalty = 0.0f;
                p.frequency_penalty = 0.0f;
        }
        return p;
}

int sampler_params_validate(const SamplerParams *p, RwkvError *err) {
        if (!p)
                return error_set(err, EINVAL, "no sampler parameters");
        if (!isfinite(p->temperature) || p->temperature < 0.0f)
                return error_set(err, EINVAL, "temperature %g: must be a finite number >= 0", (double)p->temperature);
        if (!isfinite(p->top_p) || p->top_p < 0.0f || p->top_p > 1.0f)
                return error_set(err, EINVAL, "top-p %g: must be within [0, 1]", (double)p->top_p);
        if (!isfinite(p->min_p) || p->min_p < 0.0f || p->min_p >= 1.0f)
                return error_set(err, EINVAL, "min-p %g: must be within [0, 1)", (double)p->min_p);
        if (!isfinite(p->presence_penalty) || fabsf(p->presence_penalty) > 1e4f)
                return error_set(err, EINVAL, "presence penalty %g: must be finite and within +-10000",
                                 (double)p->presence_penalty);
        if (!isfinite(p->frequency_penalty) || fabsf(p->frequency_penalty) > 1e4f)
                return error_set(err, EINVAL, "frequency penalty %g: must be finite and within +-10000",
                                 (double)p->frequency_penalty);
        if (!isfinite(p->penalty_decay) || p->penalty_decay < 0.0f || p->penalty_decay > 1.0f)
                return error_set(err, EINVAL, "penalty decay %g: must be within [0, 1]", (double)p->penalty_decay);
        return 0;
}

/* ---- sampler ---- */

struct Sampler {
        uint32_t n_vocab;
        float *l;         /* working logits, then each id's distance d from the top (in place) */
        float *e;         /* each id's relative probability exp(-d): every mass below sums these */
        uint32_t *cand;   /* candidate ids */
        float *prob;      /* distance from the top in nats, then relative probability; parallel to cand */
        uint16_t *bucket; /* histogram bucket, parallel to cand */
        uint32_t *tmp_c;  /* the boundary bucket while partitioning */
        float *tmp_p;
};

Sampler *sampler_free(Sampler *s) {
        if (!s)
                return NULL;
        free(s->l);
        free(s->e);
        free(s->cand);
        free(s->prob);
        free(s->bucket);
        free(s->tmp_c);
        free(s->tmp_p);
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
        s->e = malloc(n_vocab * sizeof(float));
        s->cand = malloc(n_vocab * sizeof(uint32_t));
        s->prob = malloc(n_vocab * sizeof(float));
        s->bucket = malloc(n_vocab * sizeof(uint16_t));
        s->tmp_c = malloc(n_vocab * sizeof(uint32_t));
        s->tmp_p = malloc(n_vocab * sizeof(float));
        if (!s->l || !s->e || !s->cand || !s->prob || !s->bucket || !s->tmp_c || !s->tmp_p)
                return -ENOMEM;
        *ret = TAKE_PTR(s);
        return 0;
}

uint32_t sampler_vocab_size(const Sampler *s) {
        return s->n_vocab;
}

void sampler_penalty_update(float *counts, uint32_t n_vocab, float decay, uint32_t token) {
        /* Four at a time in a GCC vector (SSE2 / NEON, both baseline): the scalar loop was 8% of a
         * sampled token (bench-text). */
        typedef float Float4 __attribute__((vector_size(16)));
        uint32_t i = 0;
        for (; i + 4 <= n_vocab; i += 4) {
                Float4 v;
                memcpy(&v, counts + i, sizeof(v));
                v *= decay;
                memcpy(counts + i, &v, sizeof(v));
        }
        for (; i < n_vocab; i++)
                counts[i] *= decay;
        if (token < n_vocab)
                counts[token] += 1.0f;
}

/* Selection works on d = (max - logit) / temperature >= 0 (p = exp(-d)): smaller d first, then the
 * lower id. With this total order every selection is unique, so the result never depends on how the
 * partial sorting happened to arrange things.
 *
 * Both top-k and top-p first sort candidates into buckets of d (a histogram: one branch-free pass,
 * no comparisons between candidates), find the bucket where the count or the mass reaches the goal,
 * keep the buckets before it whole and run an exact quickselect only inside that one bucket. */
#define N_BUCKETS 1024
#define BUCKETS_PER_NAT 32.0f

static inline uint16_t bucket_of(float d) {
        float b = d * BUCKETS_PER_NAT;
        return b < (float)(N_BUCKETS - 1) ? (uint16_t)b : N_BUCKETS - 1;
}

static inline bool cand_before(const float *d, const uint32_t *c, size_t a, size_t b) {
        return d[a] < d[b] || (d[a] == d[b] && c[a] < c[b]);
}

static inline void swap_cand(float *d, uint32_t *c, size_t a, size_t b) {
        float td = d[a];
        uint32_t tc = c[a];
        d[a] = d[b];
        c[a] = c[b];
        d[b] = td;
        c[b] = tc;
}

/* Partition [lo, hi) around a median-of-three pivot; returns the pivot's final position. The
 * elements before it come first in cand_before order; *ret_mass (when wanted) is their mass, from e
 * (indexed by id). */
static size_t partition(float *d, uint32_t *c, size_t lo, size_t hi, const float *e, double *ret_mass) {
        size_t mid = lo + (hi - lo) / 2, store = lo;
        double mass = 0;

        if (cand_before(d, c, mid, lo))
                swap_cand(d, c, mid, lo);
        if (cand_before(d, c, hi - 1, lo))
                swap_cand(d, c, hi - 1, lo);
        if (cand_before(d, c, mid, hi - 1))
                swap_cand(d, c, mid, hi - 1);
        for (size_t i = lo; i < hi - 1; i++)
                if (cand_before(d, c, i, hi - 1)) {
                        if (ret_mass)
                                mass += (double)e[c[i]];
                        swap_cand(d, c, i, store++);
                }
        swap_cand(d, c, store, hi - 1);
        if (ret_mass)
                *ret_mass = mass;
        return store;
}

/* Rearrange [0, n) so that [0, k) holds the first k (quickselect). */
static void quickselect_k(float *d, uint32_t *c, size_t n, size_t k) {
        size_t lo = 0, hi = n;
        while (hi - lo > 1) {
                size_t q = partition(d, c, lo, hi, NULL, NULL);
                if (q == k || q + 1 == k)
                        return;
                if (q > k)
                        hi = q;
                else
                        lo = q + 1;
        }
}

/* Rearrange [0, n) so that [0, k) is the smallest prefix (in order) whose mass exp(-d) reaches
 * target (> 0); returns k. Quickselect on mass: keep the part before the pivot whole when it falls
 * short, else descend into it. */
static size_t quickselect_mass(float *d, uint32_t *c, const float *e, size_t n, double target) {
        size_t lo = 0, hi = n;
        double acc = 0;

        while (lo < hi && acc < target) {
                double mass;
                size_t q = partition(d, c, lo, hi, e, &mass);
                if (acc + mass >= target)
                        hi = q;
                else {
                        acc += mass + (double)e[c[q]];
                        lo = q + 1;
                }
        }
        return lo;
}

/* Move candidates of buckets < b to [0, k) and those of bucket b right after them, [k, k + *ret_nb).
 * The rest is dropped. Returns k. */
static size_t bucket_compact(Sampler *s, size_t n, uint16_t b, size_t *ret_nb) {
        float *d = s->prob;
        uint32_t *c = s->cand;
        const uint16_t *bk = s->bucket;
        size_t k = 0, nb = 0;

        /* Branch-free: which side a candidate goes to is as good as random when the distribution is
         * flat, and mispredicted branches cost more than the stores (k <= j and nb <= j: in bounds). */
        for (size_t j = 0; j < n; j++) {
                float dj = d[j];
                uint32_t cj = c[j];
                d[k] = dj;
                c[k] = cj;
                k += bk[j] < b;
                s->tmp_p[nb] = dj;
                s->tmp_c[nb] = cj;
                nb += bk[j] == b;
        }
        memcpy(d + k, s->tmp_p, nb * sizeof(float));
        memcpy(c + k, s->tmp_c, nb * sizeof(uint32_t));
        *ret_nb = nb;
        return k;
}

static size_t select_top_k(Sampler *s, size_t n, size_t k) {
        uint32_t count[N_BUCKETS] = {};
        size_t before = 0, nb, first;
        uint16_t b;

        for (size_t j = 0; j < n; j++)
                count[s->bucket[j]]++;
        for (b = 0; before + count[b] < k; b++)
                before += count[b];
        first = bucket_compact(s, n, b, &nb);
        quickselect_k(s->prob + first, s->cand + first, nb, k - first);
        return k;
}

/* The top-p set: the smallest prefix of the n candidates whose mass reaches target (> 0). */
static size_t select_top_p(Sampler *s, size_t n, double target) {
        double mass[N_BUCKETS] = {}, acc = 0;
        size_t nb, first;
        uint16_t b;

        for (size_t j = 0; j < n; j++)
                mass[s->bucket[j]] += (double)s->e[s->cand[j]];
        for (b = 0; b < N_BUCKETS - 1 && acc + mass[b] < target; b++)
                acc += mass[b];
        first = bucket_compact(s, n, b, &nb);
        return first + quickselect_mass(s->prob + first, s->cand + first, s->e, nb, target - acc);
}

/* The most probable token has mass 1, so a tiny positive target keeps exactly it at top_p 0. */
static double top_p_target(float top_p, double total) {
        return MAX((double)top_p * total, 1e-30);
}

/* Thresholds on d (nats below the top) for softmax_scan's masses and counts: the first prefix of
 * the order that holds the top-k or the top-p set is the only part taken out of the vocabulary.
 * The last one counts every candidate. */
static const float scan_bounds[4] = { 0.5f, 2.0f, 8.0f, INFINITY };
/* softmax_scan sums e in another order than select_top_p: a bound is taken only when its mass
 * passes the target by more than that can change it. */
#define SCAN_MASS_MARGIN 1e-5

int sampler_sample(Sampler *s, const SamplerParams *p, const float *logits, const float *counts, const LogitBias *bias,
                   size_t n_bias, Rng *rng, uint32_t *ret_token) {
        const uint32_t nv = s ? s->n_vocab : 0;
        const Kernels *k = kernels_get();
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

        /* 1-2: bias, then penalties; the penalty pass also finds the maximum for step 3.
         * NaN and -inf never win; the lowest id keeps a tie. */
        for (size_t i = 0; i < n_bias; i++)
                if (isnan(bias[i].bias))
                        return -EINVAL;
        memcpy(l, logits, nv * sizeof(float));
        for (size_t i = 0; i < n_bias; i++)
                if (bias[i].token < nv)
                        l[bias[i].token] += bias[i].bias;
        const bool penalize = counts && (p->presence_penalty != 0.0f || p->frequency_penalty != 0.0f);
        size_t argmax =
                k->penalize_max(l, penalize ? counts : NULL, p->presence_penalty, p->frequency_penalty, nv, &max);

        /* 3: greedy (no RNG draw). Also when a logit is +inf: nothing else has any probability. */
        if (argmax >= nv)
                return -EDOM;
        /* A temperature so small that 1/T overflows is greedy too (and would make 0 * inf = NaN). */
        if (p->temperature <= 0.0f || isinf(max) || !isfinite(1.0f / p->temperature)) {
                *ret_token = (uint32_t)argmax;
                return 0;
        }

        /* Distances from the top, d = (max - l) / T, so p = exp(-d) relative to the most probable
         * token. min-p (6) is a prefix filter like top-k (4), so applying it here first gives the same
         * set and saves work: p >= min_p  <=>  d <= -ln(min_p). One vector pass gives every d and
         * exp(-d) and the mass and count below each of scan_bounds. */
        const float inv_t = 1.0f / p->temperature;
        const float d_max = p->min_p > 0.0f ? -logf(p->min_p) : INFINITY;
        double below_mass[4];
        uint32_t below_count[4];
        k->softmax_scan(l, nv, max, inv_t, d_max, scan_bounds, l, s->e, below_mass, below_count);
        const float *d = l;
        const bool top_k = p->top_k > 0 && p->top_k < below_count[3], top_p = p->top_p < 1.0f;
        const double target = top_p_target(p->top_p, below_mass[3]);

        /* The candidates: the smallest prefix below a bound that holds the top-k set, or the top-p
         * set when there is no top-k (its target comes from the whole mass); else every token
         * with a finite distance (the maximum has d = 0). */
        float bound = INFINITY;
        for (size_t t = 0; t < 3; t++)
                if (top_k ? below_count[t] >= p->top_k : top_p && below_mass[t] >= target * (1.0 + SCAN_MASS_MARGIN)) {
                        bound = scan_bounds[t];
                        break;
                }
        m = k->select_below(d, nv, bound, c, nv);
        if (m == 0) /* cannot happen: the maximum has d = 0; but never index c[-1] */
                return -EDOM;
        for (size_t j = 0; j < m; j++) {
                prob[j] = d[c[j]];
                s->bucket[j] = bucket_of(prob[j]);
        }

        /* 4: top-k. */
        if (top_k) {
                m = select_top_k(s, m, p->top_k);
                for (size_t j = 0; j < m; j++)
                        s->bucket[j] = bucket_of(prob[j]);
        }

        /* 7: top-p, of the mass top-k kept. */
        if (top_p && m > 1) {
                double t = target;
                if (top_k) {
                        double kept = 0;
                        for (size_t j = 0; j < m; j++)
                                kept += (double)s->e[c[j]];
                        t = top_p_target(p->top_p, kept);
                }
                m = select_top_p(s, m, t);
        }

        /* 5 and 8: the kept mass, then one draw. */
        double total = 0;
        for (size_t j = 0; j < m; j++) {
                prob[j] = s->e[c[j]];
                total += prob[j];
        }
        double r = rng_uniform(rng) * total, cum = 0;
        for (size_t j = 0; j < m; j++) {
                cum += prob[j];
                if (r < cum) {
                        *ret_token = c[j];
                        return 0;
                }
        }
        *ret_token = c[m - 1]; /* rounding left r at the very top */
        return 0;
}
