/* simd-sampling.h: the sampler's passes over the vocabulary (contracts in kernels.h), included by
 * simd-template.h. The ISA file gives vlt_sel(a, b, x, y) = a < b ? x : y per lane, vadd_lt(acc,
 * a, b, x) = acc + (a < b ? x : 0) and vlt_mask(a, b) = the lanes where a < b as bits (all false
 * where a or b is NaN). */
#include <float.h>

/* The lanes' indices 0..VL-1 as floats (exact: n <= 2^24). */
static inline VEC FN(viota)(void) {
        float io[VL];
        for (int j = 0; j < VL; j++)
                io[j] = (float)j;
        return vload(io);
}

static size_t FN(penalize_max)(float *l, const float *counts, float presence, float frequency, size_t n,
                               float *ret_max) {
        size_t nv = n / VL * VL, at = n;
        VEC best = vset1(-INFINITY), best_at = vzero(), pos = FN(viota)();
        const VEC zero = vzero(), pres = vset1(presence), freq = vset1(frequency), step = vset1((float)VL);
        float max = -INFINITY;

        for (size_t i = 0; i < nv; i += VL, pos = vadd(pos, step)) {
                VEC v = vload(l + i);
                if (counts) {
                        VEC c = vload(counts + i);
                        v = vsub(v, vlt_sel(zero, c, vadd(pres, vmul(freq, c)), zero));
                        vstore(l + i, v);
                }
                /* per lane, strict: each lane keeps its first maximum; NaN never replaces */
                best_at = vlt_sel(best, v, pos, best_at);
                best = vlt_sel(best, v, v, best);
        }
        float lane_max[VL], lane_at[VL];
        vstore(lane_max, best);
        vstore(lane_at, best_at);
        for (int j = 0; j < VL; j++) {
                size_t a = (size_t)lane_at[j];
                if (lane_max[j] > max || (lane_max[j] == max && max > -INFINITY && a < at)) {
                        max = lane_max[j];
                        at = a;
                }
        }
        if (nv < n) {
                float tail_max;
                size_t t = penalize_max_generic(l + nv, counts ? counts + nv : NULL, presence, frequency, n - nv,
                                                &tail_max);
                if (tail_max > max) { /* equal: the earlier index wins */
                        max = tail_max;
                        at = nv + t;
                }
        }
        *ret_max = max;
        return at;
}

/* Lane sums go to double every SCAN_FLUSH vectors: a float lane adds at most SCAN_FLUSH values <= 1
 * (about 1e-7 relative each), whatever n. */
#define SCAN_FLUSH 64
static void FN(softmax_scan)(const float *l, size_t n, float max, float inv_t, float d_lim, const float th[4], float *d,
                             float *e, double mass[4], uint32_t count[4]) {
        size_t nv = n / VL * VL;
        /* x <= min(d_lim, FLT_MAX) as one strict comparison: x < the next float above */
        const VEC lim = vset1(nextafterf(fminf(d_lim, FLT_MAX), INFINITY)), vmax_ = vset1(max), vinv = vset1(inv_t);
        const VEC inf = vset1(INFINITY), zero = vzero(), one = vset1(1.0f);
        VEC tv[4];
        double cnt[4];

        for (size_t t = 0; t < 4; t++) {
                tv[t] = vset1(th[t]);
                mass[t] = cnt[t] = 0;
        }
        for (size_t i0 = 0; i0 < nv; i0 += SCAN_FLUSH * VL) {
                size_t i1 = FN(min_sz)(nv, i0 + SCAN_FLUSH * VL);
                VEC m[4] = { zero, zero, zero, zero }, c[4] = { zero, zero, zero, zero };
                for (size_t i = i0; i < i1; i += VL) {
                        VEC x = vmul(vsub(vmax_, vload(l + i)), vinv);
                        VEC dx = vlt_sel(x, lim, x, inf);
                        VEC ex = vlt_sel(x, lim, FN(vexp)(vsub(zero, x)), zero);
                        vstore(d + i, dx);
                        vstore(e + i, ex);
#pragma GCC unroll 4
                        for (size_t t = 0; t < 4; t++) {
                                m[t] = vadd_lt(m[t], dx, tv[t], ex);
                                c[t] = vadd_lt(c[t], dx, tv[t], one);
                        }
                }
#pragma GCC unroll 4
                for (size_t t = 0; t < 4; t++) {
                        mass[t] += vhsum(m[t]);
                        cnt[t] += vhsum(c[t]);
                }
        }
        for (size_t t = 0; t < 4; t++)
                count[t] = (uint32_t)cnt[t];
        if (nv < n) {
                double tm[4];
                uint32_t tc[4];
                softmax_scan_generic(l + nv, n - nv, max, inv_t, d_lim, th, d + nv, e + nv, tm, tc);
                for (size_t t = 0; t < 4; t++) {
                        mass[t] += tm[t];
                        count[t] += tc[t];
                }
        }
}

static size_t FN(select_below)(const float *d, size_t n, float bound, uint32_t *idx, size_t max_idx) {
        size_t nv = n / VL * VL, m = 0;
        const VEC b = vset1(bound);

        /* Most vectors hold no candidate: one comparison skips them. */
        for (size_t i = 0; i < nv; i += VL)
                for (unsigned bits = vlt_mask(vload(d + i), b); bits; bits &= bits - 1) {
                        if (m < max_idx)
                                idx[m] = (uint32_t)(i + (size_t)__builtin_ctz(bits));
                        m++;
                }
        for (size_t i = nv; i < n; i++)
                if (d[i] < bound) {
                        if (m < max_idx)
                                idx[m] = (uint32_t)i;
                        m++;
                }
        return m;
}
