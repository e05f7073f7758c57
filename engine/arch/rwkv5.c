/* rwkv5.c: RWKV-5 (Eagle; 5.1 without, 5.2 with the SiLU gate): binding and one block's forward
 * pass, plus the matrix-valued WKV that v6 shares.
 *
 * Layer state: [att shift C][ffn shift C][WKV H*N*N, per head row i = key, column j = value]. */
#include <math.h>
#include <string.h>

#include "engine/arch/model-internal.h"

static int bind_layer(Model *m, uint32_t l, RwkvError *err) {
        Layer *L = &m->layers[l];
        LayerV5 *a = &L->v5;
        size_t C = m->info.n_embd, F = m->info.n_ffn, H = m->info.n_head;
        bool pth = m->conv == PARAM_CONVENTION_PTH;
        int r;

        a->gate = m->info.arch == MODEL_ARCH_V5_2;
        if ((r = bind_vec(m, err, C, &L->ln1_w, "blocks.%u.ln1.weight", l)) < 0 ||
            (r = bind_vec(m, err, C, &L->ln1_b, "blocks.%u.ln1.bias", l)) < 0 ||
            (r = bind_vec(m, err, C, &L->ln2_w, "blocks.%u.ln2.weight", l)) < 0 ||
            (r = bind_vec(m, err, C, &L->ln2_b, "blocks.%u.ln2.bias", l)) < 0 ||
            (r = bind_vec(m, err, C, &a->att_mix_k, "blocks.%u.att.time_mix_k", l)) < 0 ||
            (r = bind_vec(m, err, C, &a->att_mix_v, "blocks.%u.att.time_mix_v", l)) < 0 ||
            (r = bind_vec(m, err, C, &a->att_mix_r, "blocks.%u.att.time_mix_r", l)) < 0 ||
            (r = bind_vec_bcast(m, err, C, H, &a->decay, "blocks.%u.att.time_decay", l)) < 0 ||
            (r = bind_mat(m, err, C, C, &a->att_k, "blocks.%u.att.key.weight", l)) < 0 ||
            (r = bind_mat(m, err, C, C, &a->att_v, "blocks.%u.att.value.weight", l)) < 0 ||
            (r = bind_mat(m, err, C, C, &a->att_r, "blocks.%u.att.receptance.weight", l)) < 0 ||
            (r = bind_mat(m, err, C, C, &a->att_o, "blocks.%u.att.output.weight", l)) < 0 ||
            (r = bind_vec(m, err, C, &a->ln_x_w, "blocks.%u.att.ln_x.weight", l)) < 0 ||
            (r = bind_vec(m, err, C, &a->ln_x_b, "blocks.%u.att.ln_x.bias", l)) < 0 ||
            (r = bind_vec(m, err, C, &a->ffn_mix_k, "blocks.%u.ffn.time_mix_k", l)) < 0 ||
            (r = bind_vec(m, err, C, &a->ffn_mix_r, "blocks.%u.ffn.time_mix_r", l)) < 0 ||
            (r = bind_mat(m, err, F, C, &a->ffn_k, "blocks.%u.ffn.key.weight", l)) < 0 ||
            (r = bind_mat(m, err, C, F, &a->ffn_v, "blocks.%u.ffn.value.weight", l)) < 0 ||
            (r = bind_mat(m, err, C, C, &a->ffn_r, "blocks.%u.ffn.receptance.weight", l)) < 0)
                return r;
        if (a->gate && ((r = bind_vec(m, err, C, &a->att_mix_g, "blocks.%u.att.time_mix_g", l)) < 0 ||
                        (r = bind_mat(m, err, C, C, &a->att_g, "blocks.%u.att.gate.weight", l)) < 0))
                return r;

        /* The bonus u: time_faaaa is used as stored; the older time_first is exp()ed (rwkv.cpp's
         * converter already did that). */
        if (model_tensor(m, "blocks.%u.att.time_faaaa", l))
                r = bind_vec_bcast(m, err, C, H, &a->bonus, "blocks.%u.att.time_faaaa", l);
        else {
                r = bind_vec_bcast(m, err, C, H, &a->bonus, "blocks.%u.att.time_first", l);
                if (r >= 0 && pth)
                        for (size_t c = 0; c < C; c++)
                                a->bonus[c] = expf(a->bonus[c]);
        }
        if (r < 0)
                return r;

        /* decay w = exp(-exp(time_decay)); rwkv.cpp's converter stored w itself */
        if (pth)
                for (size_t c = 0; c < C; c++)
                        a->decay[c] = expf(-expf(a->decay[c]));
        return 0;
}

typedef struct Wkv5Job {
        const EvalPass *p;
        uint32_t l;
        const float *r, *k, *v, *w, *u;
        bool w_per_row;
        float *y;
} Wkv5Job;

static void wkv5_head(float *S, const float *r, const float *k, const float *v, const float *w, const float *u,
                      float *y, size_t N) {
        for (size_t j = 0; j < N; j++)
                y[j] = 0.0f;
        for (size_t i = 0; i < N; i++) {
                float ki = k[i], ri = r[i], wi = w[i], ui = u[i];
                float *row = S + i * N;
                for (size_t j = 0; j < N; j++) {
                        float kv = ki * v[j];
                        y[j] += ri * (ui * kv + row[j]);
                        row[j] = row[j] * wi + kv;
                }
        }
}

static void wkv5_seq(void *ctx, size_t h0, size_t h1) {
        const Wkv5Job *j = ctx;
        size_t C = j->p->m->info.n_embd, N = j->p->m->info.head_size;
        float *S = layer_state(j->p, 0, j->l) + 2 * C;
        for (size_t t = 0; t < j->p->n; t++)
                for (size_t h = h0; h < h1; h++) {
                        size_t o = t * C + h * N, ow = (j->w_per_row ? t * C : 0) + h * N;
                        wkv5_head(S + h * N * N, j->r + o, j->k + o, j->v + o, j->w + ow, j->u + h * N, j->y + o, N);
                }
}

static void wkv5_batch(void *ctx, size_t i0, size_t i1) {
        const Wkv5Job *j = ctx;
        size_t C = j->p->m->info.n_embd, H = j->p->m->info.n_head, N = j->p->m->info.head_size;
        for (size_t i = i0; i < i1; i++) {
                size_t t = i / H, h = i % H, o = t * C + h * N, ow = (j->w_per_row ? t * C : 0) + h * N;
                float *S = layer_state(j->p, t, j->l) + 2 * C + h * N * N;
                wkv5_head(S, j->r + o, j->k + o, j->v + o, j->w + ow, j->u + h * N, j->y + o, N);
        }
}

void wkv5_pass(const EvalPass *p, uint32_t l, const float *r, const float *k, const float *v, const float *w,
               bool w_per_row, const float *u, float *y) {
        Wkv5Job job = { .p = p, .l = l, .r = r, .k = k, .v = v, .w = w, .u = u, .w_per_row = w_per_row, .y = y };
        size_t H = p->m->info.n_head;
        if (p->sequence)
                pass_parallel(p, H, wkv5_seq, &job);
        else
                pass_parallel(p, p->n * H, wkv5_batch, &job);
}

enum { B_XN, B_PREV, B_XK, B_XV, B_XR, B_XG, B_R, B_K, B_V, B_G, B_Y, B_OUT, B_N };

static size_t scratch_per_row(const Model *m) {
        return MAX(B_N * (size_t)m->info.n_embd, channel_mix_scratch(m));
}

static void time_mix(EvalPass *p, uint32_t l) {
        const Model *m = p->m;
        const Layer *L = &m->layers[l];
        const LayerV5 *a = &L->v5;
        size_t C = m->info.n_embd, H = m->info.n_head, N = m->info.head_size, n = p->n;
#define BUF(i) (p->scratch + (size_t)(i)*n * C)
        float *xn = BUF(B_XN), *prev = BUF(B_PREV), *xk = BUF(B_XK), *xv = BUF(B_XV), *xr = BUF(B_XR), *xg = BUF(B_XG),
              *r = BUF(B_R), *k = BUF(B_K), *v = BUF(B_V), *g = BUF(B_G), *y = BUF(B_Y), *out = BUF(B_OUT);
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
                        if (a->gate)
                                xg[i] = xn[i] * a->att_mix_g[c] + prev[i] * (1.0f - a->att_mix_g[c]);
                }
        pass_matmul(p, &a->att_r, xr, n, r);
        pass_matmul(p, &a->att_k, xk, n, k);
        pass_matmul(p, &a->att_v, xv, n, v);
        if (a->gate) {
                pass_matmul(p, &a->att_g, xg, n, g);
                for (size_t i = 0; i < n * C; i++)
                        g[i] = g[i] * sigmoidf(g[i]);
        }

        wkv5_pass(p, l, r, k, v, a->decay, false, a->bonus, y);

        for (size_t t = 0; t < n; t++)
                p->k->group_norm(y + t * C, a->ln_x_w, a->ln_x_b, y + t * C, H, N, m->group_norm_eps);
        if (a->gate)
                for (size_t i = 0; i < n * C; i++)
                        y[i] *= g[i];
        pass_matmul(p, &a->att_o, y, n, out);
        for (size_t i = 0; i < n * C; i++)
                p->x[i] += out[i];
}

static void layer(EvalPass *p, uint32_t l) {
        const Layer *L = &p->m->layers[l];
        time_mix(p, l);
        channel_mix_rkv(p, l, L->ln2_w, L->ln2_b, L->v5.ffn_mix_k, L->v5.ffn_mix_r, &L->v5.ffn_k, &L->v5.ffn_v,
                        &L->v5.ffn_r, false);
}

static void state_reset(const Model *m, float *s) {
}

const ArchOps arch_v5_ops = {
        .bind_layer = bind_layer,
        .layer = layer,
        .state_reset = state_reset,
        .scratch_per_row = scratch_per_row,
};
