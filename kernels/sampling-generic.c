/* sampling-generic.c: the scalar reference for the sampler's passes over the vocabulary
 * (penalize_max, softmax_scan, select_below; the contracts are in kernels.h). */
#include <float.h>
#include <math.h>

#include "kernels/kernels-internal.h"

size_t penalize_max_generic(float *l, const float *counts, float presence, float frequency, size_t n, float *ret_max) {
        float max = -INFINITY;
        size_t at = n;

        for (size_t i = 0; i < n; i++) {
                float v = l[i];
                if (counts) {
                        float c = counts[i];
                        v -= c > 0.0f ? presence + frequency * c : 0.0f;
                        l[i] = v;
                }
                if (v > max) { /* strict: the lowest index keeps a tie; NaN compares false */
                        max = v;
                        at = i;
                }
        }
        *ret_max = max;
        return at;
}

void softmax_scan_generic(const float *l, size_t n, float max, float inv_t, float d_lim, const float th[4], float *d,
                          float *e, double mass[4], uint32_t count[4]) {
        for (size_t t = 0; t < 4; t++) {
                mass[t] = 0;
                count[t] = 0;
        }
        for (size_t i = 0; i < n; i++) {
                float x = (max - l[i]) * inv_t, ex = 0.0f;
                if (x <= d_lim && x <= FLT_MAX)
                        ex = expf(-x);
                else
                        x = INFINITY;
                d[i] = x;
                e[i] = ex;
                for (size_t t = 0; t < 4; t++)
                        if (x < th[t]) {
                                mass[t] += ex;
                                count[t]++;
                        }
        }
}

size_t select_below_generic(const float *d, size_t n, float bound, uint32_t *idx, size_t max_idx) {
        size_t m = 0;

        for (size_t i = 0; i < n; i++)
                if (d[i] < bound) {
                        if (m < max_idx)
                                idx[m] = (uint32_t)i;
                        m++;
                }
        return m;
}
