/* sampler.h: choose the next token from logits (greedy, temperature, top-k, top-p, min-p, penalties).
 *
 * CONTRACT used by rwkvd and rwkvctl. Everything a session must keep to continue a generation exactly
 * is plain caller-owned data: the SamplerParams, the Rng (four words) and the penalty counts (n_vocab
 * floats). Saving those and restoring them gives the same tokens as never having stopped.
 * A Sampler only holds scratch buffers: one thread at a time, any number of sessions in turn.
 *
 * Order of operations in sampler_sample() (this exact order is part of the contract):
 *   1. l[i] = logits[i] + sum of the biases given for i          (logit bias; -INFINITY bans a token)
 *   2. l[i] -= presence_penalty * (count[i] > 0) + frequency_penalty * count[i]
 *                                                                (only when counts != NULL)
 *   3. temperature == 0 (or a logit is +inf): return the argmax of l (lowest id on ties); NaN and
 *      -inf logits never win. No RNG draw happens.
 *   4. top_k > 0: keep the top_k largest l (ties at the border broken by the lower id).
 *   5. p[i] = softmax(l[i] / temperature) over the kept tokens.
 *   6. min_p > 0: drop tokens with p[i] < min_p * max(p).
 *   7. top_p < 1: keep the smallest set of most-probable tokens whose mass reaches top_p of the
 *      kept mass (the most probable token is always kept; ties broken by the lower id).
 *   8. Draw exactly ONE 64-bit value from the Rng and pick from the renormalised kept mass.
 * Steps 4 and 6 both keep a prefix of the same order, so they commute (6 is applied first).
 * Steps 2-3 and the distances and masses of 5-7 are vector passes (kernels.h: penalize_max,
 * softmax_scan, select_below). Only the tokens below the first of three distance bounds whose mass
 * (or count, for top-k) holds the set are taken out of the vocabulary; steps 4 and 7 then bucket
 * those by log-probability (a histogram) and quickselect only inside the boundary bucket: O(n),
 * never a sort of the whole vocabulary. bench/text, 65536 ids: ~0.03 ms greedy; ~0.1 ms with the
 * defaults when a few tokens hold the mass, ~0.3 ms when it is spread over thousands.
 * After the caller accepts a token it calls sampler_penalty_update() (counts *= decay; count[t] += 1).
 * The caller decides which tokens count (e.g. not the prompt): the sampler never updates counts itself. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/common/error.h"
#include "engine/text/tokenizer.h"

/* xoshiro256** seeded through splitmix64. A plain value: copy it, store it (as four uint64_t), restore it. */
typedef struct Rng {
        uint64_t s[4];
} Rng;

void rng_seed(Rng *rng, uint64_t seed);
uint64_t rng_next(Rng *rng);
/* Uniform in [0, 1) from the top 53 bits of one rng_next(). */
double rng_uniform(Rng *rng);

typedef struct SamplerParams {
        float temperature;       /* 0 = greedy; >= 0 */
        float top_p;             /* [0, 1]; 1 = off, 0 = only the most probable token */
        uint32_t top_k;          /* 0 = off */
        float min_p;             /* [0, 1); 0 = off */
        float presence_penalty;  /* subtracted once from every token seen (count > 0) */
        float frequency_penalty; /* subtracted per (decayed) occurrence */
        float penalty_decay;     /* [0, 1]: counts are multiplied by this after each token */
} SamplerParams;

/* RWKV-7 G1 chat defaults: temperature 1.0, top_p 0.3, top_k 0, min_p 0, presence 0.5,
 * frequency 0.5, decay 0.996. */
SamplerParams sampler_params_default(void);
/* The defaults for a model with tokenizer tok, which rwkvd and `rwkvctl run` both start from: the
 * above suit World chat models; a byte-level model gets top_p 1 and no penalties (penalising every
 * common letter ruins its text; the model's own distribution over 256 bytes). */
SamplerParams sampler_params_for(const Tokenizer *tok);
/* -EINVAL with a message naming the field for NaN/inf or out-of-range values (edges validate input). */
int sampler_params_validate(const SamplerParams *p, RwkvError *err);

typedef struct LogitBias {
        uint32_t token; /* ids >= n_vocab are ignored */
        float bias;     /* added to the logit; -INFINITY bans the token */
} LogitBias;

typedef struct Sampler Sampler;

int sampler_new(uint32_t n_vocab, Sampler **ret);
Sampler *sampler_free(Sampler *s);
uint32_t sampler_vocab_size(const Sampler *s);

/* logits: n_vocab floats (not modified). counts: n_vocab decayed occurrence counts, or NULL for no
 * penalties. bias: n_bias pairs (may be NULL when n_bias == 0). Returns 0 and *ret_token, or
 * -EINVAL (bad params) / -EDOM (no token left with finite logit, e.g. all banned or NaN logits). */
int sampler_sample(Sampler *s, const SamplerParams *p, const float *logits, const float *counts, const LogitBias *bias,
                   size_t n_bias, Rng *rng, uint32_t *ret_token);

/* counts[i] *= decay for all i, then counts[token] += 1 (token >= n_vocab: only the decay). */
void sampler_penalty_update(float *counts, uint32_t n_vocab, float decay, uint32_t token);
