/* test-sampling-kernels: the sampler's passes (penalize_max, softmax_scan, select_below) of every
 * ISA this CPU runs against the scalar reference: lengths from 0 to a few vectors plus tails and a
 * vocabulary-sized one, NaN / -inf / +inf logits, ties for the maximum, a d_lim that cuts, a
 * temperature whose 1/T overflows the distances, and writing d over l. */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/kernels.h"
#include "tests/lib/check.h"
#include "test-util.h"

static const size_t lengths[] = { 0, 1, 2, 3, 7, 8, 9, 15, 16, 17, 31, 33, 47, 64, 65, 200, 1023, 4097, 65536, 65539 };

/* Logits in [-8, 8) with the specials placed where a lane, a vector border or the tail has them. */
static void fill_logits(float *l, float *counts, size_t n, unsigned variant) {
        for (size_t i = 0; i < n; i++) {
                l[i] = 8.0f * test_randf();
                counts[i] = (test_rand32() & 3) == 0 ? 0.0f : 3.0f * (test_randf() + 1.0f);
        }
        if (n < 4)
                return;
        switch (variant % 4) {
        case 0: /* a tie for the maximum, the later copy in a lower lane of a later vector */
                l[n / 2 + 1] = l[n - 2] = 20.0f;
                counts[n / 2 + 1] = counts[n - 2] = 0.0f;
                break;
        case 1: /* NaN and -inf never win; +inf does */
                l[0] = NAN;
                l[1] = -INFINITY;
                l[n - 1] = NAN;
                if (n > 8)
                        l[n - 3] = INFINITY;
                break;
        case 2: /* nothing qualifies in the first lanes */
                for (size_t i = 0; i < n / 2; i++)
                        l[i] = (i & 1) ? NAN : -INFINITY;
                break;
        default: /* the maximum in the tail */
                l[n - 1] = 30.0f;
                counts[n - 1] = 0.0f;
                break;
        }
}

static void test_penalize_max(const Kernels *k, const Kernels *ref, size_t n, float *l, float *lr,
                              const float *counts) {
        for (int with_counts = 0; with_counts < 2; with_counts++) {
                const float *c = with_counts ? counts : NULL;
                float *a = malloc((n + 1) * sizeof(float)), *b = malloc((n + 1) * sizeof(float)), max, max_ref;
                CHECK(a && b);
                memcpy(a, l, n * sizeof(float));
                memcpy(b, lr, n * sizeof(float));
                size_t at = k->penalize_max(a, c, 0.5f, 0.7f, n, &max);
                size_t at_ref = ref->penalize_max(b, c, 0.5f, 0.7f, n, &max_ref);
                for (size_t i = 0; i < n; i++) {
                        if (isnan(b[i]) || isinf(b[i]) || !c)
                                CHECK(memcmp(&a[i], &b[i], sizeof(float)) == 0 || (isnan(a[i]) && isnan(b[i])));
                        else
                                CHECK_NEAR(a[i], b[i], 0x1p-22 * (fabsf(b[i]) + 0.5f + 0.7f * fabsf(c[i])));
                }
                /* its own answer is consistent: the lowest index holding the largest non-NaN value */
                if (at_ref == n) {
                        CHECK(at == n && max == -INFINITY);
                } else {
                        CHECK(at < n && a[at] == max);
                        for (size_t i = 0; i < n; i++)
                                CHECK(!(a[i] > max) && (i >= at || a[i] != max));
                        /* without counts the values are the reference's, so the answer is too */
                        if (!c)
                                CHECK(at == at_ref && max == max_ref);
                        else if (max != max_ref)
                                CHECK_NEAR(max, max_ref, 0x1p-22 * (fabsf(max_ref) + 0.5f + 0.7f * fabsf(c[at_ref])));
                }
                free(a);
                free(b);
        }
}

static void test_softmax_scan(const Kernels *k, const Kernels *ref, size_t n, float *l, unsigned variant) {
        float *d = malloc((n + 1) * sizeof(float)), *e = malloc((n + 1) * sizeof(float));
        float *dr = malloc((n + 1) * sizeof(float)), *er = malloc((n + 1) * sizeof(float));
        float *inplace = malloc((n + 1) * sizeof(float));
        CHECK(d && e && dr && er && inplace);
        /* the contract's max is the logits' maximum: every d >= 0 (the sampler never scans +inf logits) */
        float max = -INFINITY, inv_t = 1.0f, d_lim = INFINITY;
        for (size_t i = 0; i < n; i++)
                if (l[i] > max && l[i] < INFINITY)
                        max = l[i];
        for (size_t i = 0; i < n; i++)
                if (l[i] == INFINITY)
                        l[i] = max;
        switch (variant % 3) {
        case 1:
                inv_t = 1.0f / 0.7f;
                d_lim = 5.0f; /* min-p */
                break;
        case 2:
                inv_t = 1e37f; /* distances overflow to +inf but the maximum's */
                break;
        }
        const float th[4] = { 0.5f, 2.0f, 8.0f, INFINITY };
        double mass[4], mass_ref[4];
        uint32_t count[4], count_ref[4];
        k->softmax_scan(l, n, max, inv_t, d_lim, th, d, e, mass, count);
        ref->softmax_scan(l, n, max, inv_t, d_lim, th, dr, er, mass_ref, count_ref);
        for (size_t i = 0; i < n; i++) {
                /* the same two roundings, so the same d; e within a few ulp of expf */
                CHECK(memcmp(&d[i], &dr[i], sizeof(float)) == 0);
                CHECK_NEAR(e[i], er[i], 1e-6 * er[i] + 1e-37);
                CHECK(isinf(d[i]) ? e[i] == 0.0f : (e[i] >= 0.0f && (d[i] > 80.0f || e[i] > 0.0f)));
                if (isnan(l[i]) || l[i] == -INFINITY)
                        CHECK(d[i] == INFINITY);
                if (d[i] > d_lim)
                        CHECK(d[i] == INFINITY);
        }
        for (size_t t = 0; t < 4; t++) {
                CHECK(count[t] == count_ref[t]);
                CHECK_NEAR(mass[t], mass_ref[t], 1e-6 * mass_ref[t] + 1e-30);
        }
        /* in place */
        memcpy(inplace, l, n * sizeof(float));
        k->softmax_scan(inplace, n, max, inv_t, d_lim, th, inplace, e, mass, count);
        CHECK(n == 0 || memcmp(inplace, d, n * sizeof(float)) == 0);

        /* select_below over the distances: the same indices as the reference, truncated or not */
        uint32_t *idx = malloc((n + 1) * sizeof(uint32_t)), *idx_ref = malloc((n + 1) * sizeof(uint32_t));
        CHECK(idx && idx_ref);
        for (size_t t = 0; t < 4; t++) {
                size_t m = k->select_below(d, n, th[t], idx, n);
                size_t m_ref = ref->select_below(d, n, th[t], idx_ref, n);
                CHECK(m == m_ref && m == count_ref[t]);
                CHECK(m == 0 || memcmp(idx, idx_ref, m * sizeof(uint32_t)) == 0);
                for (size_t j = 1; j < m; j++)
                        CHECK(idx[j - 1] < idx[j] && d[idx[j]] < th[t]);
                if (m > 2) {
                        uint32_t guard = 0xdeadbeef;
                        idx[m / 2] = guard;
                        CHECK(k->select_below(d, n, th[t], idx, m / 2) == m);
                        CHECK(memcmp(idx, idx_ref, m / 2 * sizeof(uint32_t)) == 0 && idx[m / 2] == guard);
                }
        }
        free(idx);
        free(idx_ref);
        free(d);
        free(e);
        free(dr);
        free(er);
        free(inplace);
}

int main(void) {
        const Kernels *ref = kernels_get_isa("scalar");
        CHECK(ref && ref->penalize_max && ref->softmax_scan && ref->select_below);
        for (size_t s = 0; s < sizeof(test_isas) / sizeof(test_isas[0]); s++) {
                const Kernels *k = kernels_get_isa(test_isas[s]);
                if (!k) {
                        fprintf(stderr, "%s: not available here, skipped\n", test_isas[s]);
                        continue;
                }
                CHECK(k->penalize_max && k->softmax_scan && k->select_below);
                test_seed(11);
                for (size_t li = 0; li < sizeof(lengths) / sizeof(lengths[0]); li++)
                        for (unsigned variant = 0; variant < 6; variant++) {
                                size_t n = lengths[li];
                                float *l = malloc((n + 1) * sizeof(float)), *counts = malloc((n + 1) * sizeof(float));
                                CHECK(l && counts);
                                fill_logits(l, counts, n, variant);
                                test_penalize_max(k, ref, n, l, l, counts);
                                test_softmax_scan(k, ref, n, l, variant);
                                free(l);
                                free(counts);
                        }
                /* nothing qualifies at all */
                float none[37];
                for (size_t i = 0; i < 37; i++)
                        none[i] = (i % 3) ? -INFINITY : NAN;
                float max = 0;
                CHECK(k->penalize_max(none, NULL, 0, 0, 37, &max) == 37 && max == -INFINITY);
                fprintf(stderr, "%s: ok\n", test_isas[s]);
        }
        return 0;
}
