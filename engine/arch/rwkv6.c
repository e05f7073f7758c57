/* rwkv6.c: RWKV-6 (Finch): binding and one block's forward pass.
 *
 * v6 makes the token shift and the decay data-dependent through two small LoRAs (time_maa_w1/w2:
 * five mixes at once; time_decay_w1/w2: the decay); the WKV itself is v5's with a per-token decay.
 * Layer state: [att shift C][ffn shift C][WKV H*N*N, per head row i = key, column j = value]. */
#include <math.h>
#include <string.h>

#include "engine/arch/model-internal.h"

#define V6_GN_EPS 64e-5f

enum { M_W, M_K, M_V, M_R, M_G };

/* The bottleneck widths, read where each convention puts them. */
static int lora_dims(const Model *m, uint32_t l, size_t *ret_dm, size_t *ret_dw, RwkvError *err) {
        bool pth = m->conv == PARAM_CONVENTION_PTH;
        const Tensor *w2 = model_tensor(m, "blocks.%u.att.time_maa_w2", l);
        const Tensor *d1 = model_tensor(m, "blocks.%u.att.time_decay_w1", l);
        if (!w2)
                return error_set(err, ENOENT, "missing tensor 'blocks.%u.att.time_maa_w2'", l);
        if (!d1)
                return error_set(err, ENOENT, "missing tensor 'blocks.%u.att.time_decay_w1'", l);
        if (w2->n_dims != 3 || d1->n_dims != 2)
                return error_set(err, EBADMSG, "blocks.%u: time_maa_w2 or time_decay_w1 has the wrong rank", l);
        size_t dm = (size_t)(pth ? w2->shape[1] : w2->shape[2]);
        size_t dw = (size_t)(pth ? d1->shape[1] : d1->shape[0]);
        if (dm == 0 || dw == 0 || dm > (1u << 16) || dw > (1u << 16))
                return error_set(err, EBADMSG, "blocks.%u: bad LoRA widths", l);
        *ret_dm = dm;
        *ret_dw = dw;
        return 0;
}

static int bind_layer(Model *m, uint32_t l, RwkvError *err) {
        Layer *L = &m->layers[l];
        LayerV6 *a = &L->v6;
        size_t C = m->info.n_embd, F = m->info.n_ffn, dm = 0, dw = 0;
        static const char *const maa[5] = { "w", "k", "v", "r", "g" };
        int r;

        r = lora_dims(m, l, &dm, &dw, err);
        if (r < 0)
                return r;
        m->max_lora = MAX(m->max_lora, MAX(dm, dw));

        if ((r = bind_vec(m, err, C, &L->ln1_w, "blocks.%u.ln1.weight", l)) < 0 ||
            (r = bind_vec(m, err, C, &L->ln1_b, "blocks.%u.ln1.bias", l)) < 0 ||
            (r = bind_vec(m, err, C, &L->ln2_w, "blocks.%u.ln2.weight", l)) < 0 ||
            (r = bind_vec(m, err, C, &L->ln2_b, "blocks.%u.ln2.bias", l)) < 0 ||
            (r = bind_vec(m, err, C, &a->maa_x, "blocks.%u.att.time_maa_x", l)) < 0)
                return r;
        for (size_t i = 0; i < 5; i++)
                if ((r = bind_vec(m, err, C, &a->maa[i], "blocks.%u.att.time_maa_%s", l, maa[i])) < 0)
                        return r;
        if ((r = bind_lora(m, err, 1, 5 * dm, C, &a->maa_w1, "blocks.%u.att.time_maa_w1", l)) < 0 ||
            (r = bind_lora(m, err, 5, C, dm, a->maa_w2, "blocks.%u.att.time_maa_w2", l)) < 0 ||
            (r = bind_vec(m, err, C, &a->decay, "blocks.%u.att.time_decay", l)) < 0 ||
            (r = bind_lora(m, err, 1, dw, C, &a->decay_w1, "blocks.%u.att.time_decay_w1", l)) < 0 ||
            (r = bind_lora(m, err, 1, C, dw, &a->decay_w2, "blocks.%u.att.time_decay_w2", l)) < 0 ||
            (r = bind_vec(m, err, C, &a->bonus, "blocks.%u.att.time_faaaa", l)) < 0 ||
            (r = bind_mat(m, err, C, C, &a->att_r, "blocks.%u.att.receptance.weight", l)) < 0 ||
            (r = bind_mat(m, err, C, C, &a->att_k, "blocks.%u.att.key.weight", l)) < 0 ||
            (r = bind_mat(m, err, C, C, &a->att_v, "blocks.%u.att.value.weight", l)) < 0 ||
            (r = bind_mat(m, err, C, C, &a->att_o, "blocks.%u.att.output.weight", l)) < 0 ||
            (r = bind_mat(m, err, C, C, &a->att_g, "blocks.%u.att.gate.weight", l)) < 0 ||
            (r = bind_vec(m, err, C, &a->ln_x_w, "blocks.%u.att.ln_x.weight", l)) < 0 ||
            (r = bind_vec(m, err, C, &a->ln_x_b, "blocks.%u.att.ln_x.bias", l)) < 0 ||
            (r = bind_vec(m, err, C, &a->ffn_maa_k, "blocks.%u.ffn.time_maa_k", l)) < 0 ||
            (r = bind_vec(m, err, C, &a->ffn_maa_r, "blocks.%u.ffn.time_maa_r", l)) < 0 ||
            (r = bind_mat(m, err, F, C, &a->ffn_k, "blocks.%u.ffn.key.weight", l)) < 0 ||
            (r = bind_mat(m, err, C, F, &a->ffn_v, "blocks.%u.ffn.value.weight", l)) < 0 ||
            (r = bind_mat(m, err, C, C, &a->ffn_r, "blocks.%u.ffn.receptance.weight", l)) < 0)
                return r;
        return 0;
}

enum { B_XN, B_SX, B_XXX, B_X5, B_MIX = B_X5 + 5, B_R, B_K, B_V, B_G, B_W, B_Y, B_OUT, B_N };

static size_t scratch_per_row(const Model *m) {
        /* plus the LoRA hidden rows: 5 mixes at once, one gathered slice, the decay's */
        return MAX(B_N * (size_t)m->info.n_embd + 7 * m->max_lora, channel_mix_scratch(m));
}

static void time_mix(EvalPass *p, uint32_t l) {
        const Model *m = p->m;
        const Layer *L = &m->layers[l];
        const LayerV6 *a = &L->v6;
        size_t C = m->info.n_embd, H = m->info.n_head, N = m->info.head_size, n = p->n;
        size_t dm = mat_rows(&a->maa_w1) / 5, dw = mat_rows(&a->decay_w1);
#define BUF(i) (p->scratch + (size_t)(i)*n * C)
        float *xn = BUF(B_XN), *sx = BUF(B_SX), *xxx = BUF(B_XXX), *mix = BUF(B_MIX), *r = BUF(B_R), *k = BUF(B_K),
              *v = BUF(B_V), *g = BUF(B_G), *w = BUF(B_W), *y = BUF(B_Y), *out = BUF(B_OUT);
        float *h5 = BUF(B_N), *h1 = h5 + n * 5 * dm;
        float *xs[5];
        for (size_t i = 0; i < 5; i++)
                xs[i] = BUF(B_X5 + i);
#undef BUF

        for (size_t t = 0; t < n; t++)
                p->k->layer_norm(p->x + t * C, L->ln1_w, L->ln1_b, xn + t * C, C, LN_EPS);
        pass_shift_prev(p, l, 0, xn, sx);
        pass_shift_store(p, l, 0, xn);
        for (size_t t = 0, i = 0; t < n; t++)
                for (size_t c = 0; c < C; c++, i++) {
                        sx[i] -= xn[i];
                        xxx[i] = xn[i] + sx[i] * a->maa_x[c];
                }

        /* five data-dependent mixes: tanh(xxx W1) split in five, each through its own W2 */
        pass_matmul(p, &a->maa_w1, xxx, n, h5);
        for (size_t i = 0; i < n * 5 * dm; i++)
                h5[i] = tanhf(h5[i]);
        for (size_t j = 0; j < 5; j++) {
                for (size_t t = 0; t < n; t++)
                        memcpy(h1 + t * dm, h5 + t * 5 * dm + j * dm, dm * sizeof(float));
                pass_matmul(p, &a->maa_w2[j], h1, n, mix);
                for (size_t t = 0, i = 0; t < n; t++)
                        for (size_t c = 0; c < C; c++, i++)
                                xs[j][i] = xn[i] + sx[i] * (a->maa[j][c] + mix[i]);
        }

        pass_matmul(p, &a->att_r, xs[M_R], n, r);
        pass_matmul(p, &a->att_k, xs[M_K], n, k);
        pass_matmul(p, &a->att_v, xs[M_V], n, v);
        pass_matmul(p, &a->att_g, xs[M_G], n, g);
        for (size_t i = 0; i < n * C; i++)
                g[i] = g[i] * sigmoidf(g[i]);

        pass_matmul(p, &a->decay_w1, xs[M_W], n, h1);
        for (size_t i = 0; i < n * dw; i++)
                h1[i] = tanhf(h1[i]);
        pass_matmul(p, &a->decay_w2, h1, n, w);
        for (size_t t = 0, i = 0; t < n; t++)
                for (size_t c = 0; c < C; c++, i++)
                        w[i] = expf(-expf(a->decay[c] + w[i]));

        wkv5_pass(p, l, r, k, v, w, true, a->bonus, y);

        for (size_t t = 0; t < n; t++)
                p->k->group_norm(y + t * C, a->ln_x_w, a->ln_x_b, y + t * C, H, N, V6_GN_EPS);
        for (size_t i = 0; i < n * C; i++)
                y[i] *= g[i];
        pass_matmul(p, &a->att_o, y, n, out);
        for (size_t i = 0; i < n * C; i++)
                p->x[i] += out[i];
}

static void layer(EvalPass *p, uint32_t l) {
        const Layer *L = &p->m->layers[l];
        time_mix(p, l);
        channel_mix_rkv(p, l, L->ln2_w, L->ln2_b, L->v6.ffn_maa_k, L->v6.ffn_maa_r, &L->v6.ffn_k, &L->v6.ffn_v,
                        &L->v6.ffn_r, true);
}

static void state_reset(const Model *m, float *s) {
}

const ArchOps arch_v6_ops = {
        .bind_layer = bind_layer,
        .layer = layer,
        .state_reset = state_reset,
        .scratch_per_row = scratch_per_row,
};
