/* rwkv4.c: RWKV-4 (Pile, Raven, World v1): binding and the forward pass of one block.
 *
 * The WKV of v4 is a per-channel exponentially decayed average kept as numerator aa, denominator bb
 * and a running maximum exponent pp (for stability), so the state starts with pp = -1e30, not zero.
 * Layer state: [att shift C][ffn shift C][aa C][bb C][pp C]. */
#include <math.h>
#include <string.h>

#include "engine/arch/model-internal.h"

#define V4_PP_INIT (-1e30f)

static int bind_layer(Model *m, uint32_t l, RwkvError *err) {
        Layer *L = &m->layers[l];
        LayerV4 *a = &L->v4;
        size_t C = m->info.n_embd, F = m->info.n_ffn;
        int r;

        if ((r = bind_vec(m, err, C, &L->ln1_w, "blocks.%u.ln1.weight", l)) < 0 ||
            (r = bind_vec(m, err, C, &L->ln1_b, "blocks.%u.ln1.bias", l)) < 0 ||
            (r = bind_vec(m, err, C, &L->ln2_w, "blocks.%u.ln2.weight", l)) < 0 ||
            (r = bind_vec(m, err, C, &L->ln2_b, "blocks.%u.ln2.bias", l)) < 0 ||
            (r = bind_vec(m, err, C, &a->decay, "blocks.%u.att.time_decay", l)) < 0 ||
            (r = bind_vec(m, err, C, &a->first, "blocks.%u.att.time_first", l)) < 0 ||
            (r = bind_vec(m, err, C, &a->att_mix_k, "blocks.%u.att.time_mix_k", l)) < 0 ||
            (r = bind_vec(m, err, C, &a->att_mix_v, "blocks.%u.att.time_mix_v", l)) < 0 ||
            (r = bind_vec(m, err, C, &a->att_mix_r, "blocks.%u.att.time_mix_r", l)) < 0 ||
            (r = bind_mat(m, err, C, C, &a->att_k, "blocks.%u.att.key.weight", l)) < 0 ||
            (r = bind_mat(m, err, C, C, &a->att_v, "blocks.%u.att.value.weight", l)) < 0 ||
            (r = bind_mat(m, err, C, C, &a->att_r, "blocks.%u.att.receptance.weight", l)) < 0 ||
            (r = bind_mat(m, err, C, C, &a->att_o, "blocks.%u.att.output.weight", l)) < 0 ||
            (r = bind_vec(m, err, C, &a->ffn_mix_k, "blocks.%u.ffn.time_mix_k", l)) < 0 ||
            (r = bind_vec(m, err, C, &a->ffn_mix_r, "blocks.%u.ffn.time_mix_r", l)) < 0 ||
            (r = bind_mat(m, err, F, C, &a->ffn_k, "blocks.%u.ffn.key.weight", l)) < 0 ||
            (r = bind_mat(m, err, C, F, &a->ffn_v, "blocks.%u.ffn.value.weight", l)) < 0 ||
            (r = bind_mat(m, err, C, C, &a->ffn_r, "blocks.%u.ffn.receptance.weight", l)) < 0)
                return r;

        /* official checkpoints store w with decay = -exp(w); rwkv.cpp's converter stored -exp(w) */
        if (m->conv == PARAM_CONVENTION_PTH)
                for (size_t c = 0; c < C; c++)
                        a->decay[c] = -expf(a->decay[c]);
        return 0;
}

enum { B_XN, B_PREV, B_XK, B_XV, B_XR, B_R, B_K, B_V, B_Y, B_OUT, B_N };

static size_t scratch_per_row(const Model *m) {
        return MAX(B_N * (size_t)m->info.n_embd, channel_mix_scratch(m));
}

static void wkv4_row(const LayerV4 *a, float *s, size_t C, const float *k, const float *v, float *y) {
        float *aa = s + 2 * C, *bb = s + 3 * C, *pp = s + 4 * C;
        for (size_t c = 0; c < C; c++) {
                float ww = a->first[c] + k[c];
                float q = fmaxf(pp[c], ww);
                float e1 = expf(pp[c] - q), e2 = expf(ww - q);
                y[c] = (e1 * aa[c] + e2 * v[c]) / (e1 * bb[c] + e2);

                ww = pp[c] + a->decay[c];
                q = fmaxf(ww, k[c]);
                e1 = expf(ww - q);
                e2 = expf(k[c] - q);
                aa[c] = e1 * aa[c] + e2 * v[c];
                bb[c] = e1 * bb[c] + e2;
                pp[c] = q;
        }
}

static void time_mix(EvalPass *p, uint32_t l) {
        const Model *m = p->m;
        const Layer *L = &m->layers[l];
        const LayerV4 *a = &L->v4;
        size_t C = m->info.n_embd, n = p->n;
#define BUF(i) (p->scratch + (size_t)(i)*n * C)
        float *xn = BUF(B_XN), *prev = BUF(B_PREV), *xk = BUF(B_XK), *xv = BUF(B_XV), *xr = BUF(B_XR), *r = BUF(B_R),
              *k = BUF(B_K), *v = BUF(B_V), *y = BUF(B_Y), *out = BUF(B_OUT);
#undef BUF

        for (size_t t = 0; t < n; t++)
                p->k->layer_norm(p->x + t * C, L->ln1_w, L->ln1_b, xn + t * C, C, LN_EPS);
        pass_shift_prev(p, l, 0, xn, prev);
        pass_shift_store(p, l, 0, xn);
        for (size_t t = 0, i = 0; t < n; t++)
                for (size_t c = 0; c < C; c++, i++) {
                        xk[i] = xn[i] * a->att_mix_k[c] + prev[i] * (1.0f - a->att_mix_k[c]);
                        xv[i] = xn[i] * a->att_mix_v[c] + prev[i] * (1.0f - a->att_mix_v[c]);
                        xr[i] = xn[i] * a->att_mix_r[c] + prev[i] * (1.0f - a->att_mix_r[c]);
                }
        pass_matmul(p, &a->att_r, xr, n, r);
        pass_matmul(p, &a->att_k, xk, n, k);
        pass_matmul(p, &a->att_v, xv, n, v);

        for (size_t t = 0; t < n; t++) {
                wkv4_row(a, layer_state(p, t, l), C, k + t * C, v + t * C, y + t * C);
                for (size_t c = 0; c < C; c++)
                        y[t * C + c] *= sigmoidf(r[t * C + c]);
        }
        pass_matmul(p, &a->att_o, y, n, out);
        for (size_t i = 0; i < n * C; i++)
                p->x[i] += out[i];
}

static void layer(EvalPass *p, uint32_t l) {
        const Layer *L = &p->m->layers[l];
        time_mix(p, l);
        channel_mix_rkv(p, l, L->ln2_w, L->ln2_b, L->v4.ffn_mix_k, L->v4.ffn_mix_r, &L->v4.ffn_k, &L->v4.ffn_v,
                        &L->v4.ffn_r, false);
}

static void state_reset(const Model *m, float *s) {
        size_t C = m->info.n_embd;
        for (size_t c = 0; c < C; c++)
                s[4 * C + c] = V4_PP_INIT;
}

const ArchOps arch_v4_ops = {
        .bind_layer = bind_layer,
        .layer = layer,
        .state_reset = state_reset,
        .scratch_per_row = scratch_per_row,
};
