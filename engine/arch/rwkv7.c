/* rwkv7.c: RWKV-7 "Goose" (x070): binding and the forward pass of one block.
 *
 * Follows the official RNN reference (BlinkDL RWKV-LM, RWKV-v7 demo): a time mix whose state is an
 * H x N x N matrix per layer updated by a generalized delta rule, and a squared-ReLU channel mix.
 * Layer state: [att shift C][ffn shift C][WKV H*N*N, per head row i = value, column j = key]. */
#include <inttypes.h>
#include <math.h>
#include <string.h>

#include "engine/arch/model-internal.h"

#define V7_GN_EPS 64e-5f
/* the decay w = exp(-exp(-0.5) * sigmoid(.)) and the other gates: the kernels' v7_gates */

enum { X_R, X_W, X_K, X_V, X_A, X_G };

/* The bottleneck width of LoRA att.<what>1/2, from both factors (first: D x C, second: C x D in
 * the kernels' orientation), so a malformed pair is reported as such. */
static int lora_dim(const Model *m, const char *what, uint32_t l, size_t *ret, RwkvError *err) {
        const Tensor *f = model_tensor(m, "blocks.%u.att.%s1", l, what);
        const Tensor *s = model_tensor(m, "blocks.%u.att.%s2", l, what);
        if (!f || !s)
                return error_set(err, ENOENT, "missing tensor 'blocks.%u.att.%s%d'", l, what, f ? 2 : 1);
        if (f->n_dims != 2 || s->n_dims != 2)
                return error_set(err, EBADMSG, "tensors 'blocks.%u.att.%s1/2' are not matrices", l, what);
        bool pth = m->conv == PARAM_CONVENTION_PTH;
        uint64_t d1 = pth ? f->shape[1] : f->shape[0], d2 = pth ? s->shape[0] : s->shape[1];
        if (d1 != d2 || d1 == 0 || d1 > (1u << 16))
                return error_set(err, EBADMSG,
                                 "tensors 'blocks.%u.att.%s1' (%" PRIu64 ", %" PRIu64
                                 ") and 'blocks.%u.att.%s2' (%" PRIu64 ", %" PRIu64 ") do not form a LoRA",
                                 l, what, f->shape[0], f->shape[1], l, what, s->shape[0], s->shape[1]);
        *ret = (size_t)d1;
        return 0;
}

static int bind_layer(Model *m, uint32_t l, RwkvError *err) {
        Layer *L = &m->layers[l];
        LayerV7 *a = &L->v7;
        size_t C = m->info.n_embd, F = m->info.n_ffn, H = m->info.n_head, N = m->info.head_size;
        int r;

#define TRY(x)                                                                                                         \
        do {                                                                                                           \
                r = (x);                                                                                               \
                if (r < 0)                                                                                             \
                        return r;                                                                                      \
        } while (0)

        TRY(bind_vec(m, err, C, &L->ln1_w, "blocks.%u.ln1.weight", l));
        TRY(bind_vec(m, err, C, &L->ln1_b, "blocks.%u.ln1.bias", l));
        TRY(bind_vec(m, err, C, &L->ln2_w, "blocks.%u.ln2.weight", l));
        TRY(bind_vec(m, err, C, &L->ln2_b, "blocks.%u.ln2.bias", l));

        /* rwkv.cpp concatenates the six token-shift mixes into one (6, 1, C) tensor */
        if (model_tensor(m, "blocks.%u.att.x_rwkvag", l)) {
                float *all;
                TRY(bind_vec(m, err, 6 * C, &all, "blocks.%u.att.x_rwkvag", l));
                for (size_t i = 0; i < 6; i++)
                        a->x[i] = all + i * C;
        } else {
                static const char *const names[6] = { "r", "w", "k", "v", "a", "g" };
                for (size_t i = 0; i < 6; i++)
                        TRY(bind_vec(m, err, C, &a->x[i], "blocks.%u.att.x_%s", l, names[i]));
        }

        size_t dw = 0, da = 0, dg = 0;
        TRY(lora_dim(m, "w", l, &dw, err));
        TRY(lora_dim(m, "a", l, &da, err));
        TRY(lora_dim(m, "g", l, &dg, err));
        TRY(bind_vec(m, err, C, &a->w0, "blocks.%u.att.w0", l));
        TRY(bind_lora(m, err, 1, dw, C, &a->w1, "blocks.%u.att.w1", l));
        TRY(bind_lora(m, err, 1, C, dw, &a->w2, "blocks.%u.att.w2", l));
        TRY(bind_vec(m, err, C, &a->a0, "blocks.%u.att.a0", l));
        TRY(bind_lora(m, err, 1, da, C, &a->a1, "blocks.%u.att.a1", l));
        TRY(bind_lora(m, err, 1, C, da, &a->a2, "blocks.%u.att.a2", l));
        TRY(bind_lora(m, err, 1, dg, C, &a->g1, "blocks.%u.att.g1", l));
        TRY(bind_lora(m, err, 1, C, dg, &a->g2, "blocks.%u.att.g2", l));
        size_t widest = MAX(dw, MAX(da, dg));

        /* The value residual mixes in layer 0's v; layer 0 itself has no (or unused) v0/v1/v2. */
        if (l > 0) {
                size_t dv = 0;
                TRY(lora_dim(m, "v", l, &dv, err));
                TRY(bind_vec(m, err, C, &a->v0, "blocks.%u.att.v0", l));
                TRY(bind_lora(m, err, 1, dv, C, &a->v1, "blocks.%u.att.v1", l));
                TRY(bind_lora(m, err, 1, C, dv, &a->v2, "blocks.%u.att.v2", l));
                widest = MAX(widest, dv);
        }
        m->max_lora = MAX(m->max_lora, widest);

        TRY(bind_vec(m, err, C, &a->k_k, "blocks.%u.att.k_k", l));
        TRY(bind_vec(m, err, C, &a->k_a, "blocks.%u.att.k_a", l));
        TRY(bind_vec(m, err, H * N, &a->r_k, "blocks.%u.att.r_k", l));
        TRY(bind_mat(m, err, C, C, &a->att_r, "blocks.%u.att.receptance.weight", l));
        TRY(bind_mat(m, err, C, C, &a->att_k, "blocks.%u.att.key.weight", l));
        TRY(bind_mat(m, err, C, C, &a->att_v, "blocks.%u.att.value.weight", l));
        TRY(bind_mat(m, err, C, C, &a->att_o, "blocks.%u.att.output.weight", l));
        TRY(bind_vec(m, err, C, &a->ln_x_w, "blocks.%u.att.ln_x.weight", l));
        TRY(bind_vec(m, err, C, &a->ln_x_b, "blocks.%u.att.ln_x.bias", l));

        TRY(bind_vec(m, err, C, &a->ffn_x_k, "blocks.%u.ffn.x_k", l));
        TRY(bind_mat(m, err, F, C, &a->ffn_k, "blocks.%u.ffn.key.weight", l));
        TRY(bind_mat(m, err, C, F, &a->ffn_v, "blocks.%u.ffn.value.weight", l));
#undef TRY
        return 0;
}

/* Scratch, per row: [v_first C] then either the time mix's 18 C + LoRA, or the channel mix. */
enum { B_XN, B_PREV, B_X6, B_R = B_X6 + 6, B_W, B_K, B_V, B_A, B_G, B_KK, B_B, B_Y, B_TMP, B_N };

static size_t scratch_per_row(const Model *m) {
        size_t C = m->info.n_embd, F = m->info.n_ffn;
        /* the single-row path keeps the four LoRA bottlenecks side by side */
        return C + MAX(B_N * C + 4 * m->max_lora, 4 * C + F);
}

/* ---- chunks (sequence mode) and batches: n > 1 rows ----
 *
 * Per layer: the norm and the token-shift mixes split by rows; r, k, v and the four LoRA
 * down-projections in one dispatch (tanh/sigmoid on the bottlenecks ride in it); then ONE dispatch
 * per range of heads for everything from the LoRA up-projections to the gate (heads are independent
 * from there on; in sequence mode each head walks the chunk in order); att.output adding into x;
 * then the channel mix in the same way. Every value is the same expression in the same order as
 * before this split (and as in the single-row path), so the logits did not change by a bit. */

typedef struct PrefixJob {
        const EvalPass *p;
        uint32_t l;
        size_t off; /* the shift's place in the layer state */
        const float *ln_w, *ln_b;
        float *xn, *prev; /* prev becomes the shift difference prev - xn */
        float *dst[6];    /* dst[j] = xn + (prev - xn) * mix[j] */
        const float *mix[6];
        size_t n_mix;
} PrefixJob;

static void prefix_rows(void *ctx, size_t t0, size_t t1) {
        const PrefixJob *j = ctx;
        const EvalPass *p = j->p;
        size_t C = p->m->info.n_embd;
        for (size_t t = t0; t < t1; t++)
                p->k->layer_norm(p->x + t * C, j->ln_w, j->ln_b, j->xn + t * C, C, LN_EPS);
        for (size_t t = t0; t < t1; t++) {
                float *prev = j->prev + t * C;
                if (!p->sequence || t == 0)
                        memcpy(prev, layer_state(p, t, j->l) + j->off, C * sizeof(float));
                else if (t == t0) /* the row before belongs to another task: the same norm, again */
                        p->k->layer_norm(p->x + (t - 1) * C, j->ln_w, j->ln_b, prev, C, LN_EPS);
                else
                        memcpy(prev, j->xn + (t - 1) * C, C * sizeof(float));
        }
        float *xn = j->xn + t0 * C, *d = j->prev + t0 * C;
        for (size_t i = 0, n = (t1 - t0) * C; i < n; i++)
                d[i] -= xn[i];
        for (size_t m = 0; m < j->n_mix; m++)
                for (size_t t = t0; t < t1; t++)
                        p->k->mix(j->dst[m] + t * C, j->xn + t * C, j->prev + t * C, j->mix[m], C);
}

static void prefix(PrefixJob *j) {
        pass_parallel(j->p, j->p->n, prefix_rows, j);
        /* after every task read the previous shift */
        pass_shift_store(j->p, j->l, j->off, j->xn);
}

typedef struct SeqJob {
        const EvalPass *p;
        uint32_t l;
        float *r, *w, *k, *v, *aa, *g, *kk, *bb, *y, *tmp, *v_first;
        float *hw, *ha, *hg, *hv; /* n x (that LoRA's width) each */
} SeqJob;

static void after_down(void *ctx, size_t seg, size_t r0, size_t r1) {
        const SeqJob *j = ctx;
        const LayerV7 *a = &j->p->m->layers[j->l].v7;
        size_t n = j->p->n;
        if (seg == 3) {
                size_t D = mat_rows(&a->w1);
                for (size_t t = 0; t < n; t++)
                        for (size_t i = r0; i < r1; i++)
                                j->hw[t * D + i] = tanhf(j->hw[t * D + i]);
        } else if (seg == 5) {
                size_t D = mat_rows(&a->g1);
                for (size_t t = 0; t < n; t++)
                        for (size_t i = r0; i < r1; i++)
                                j->hg[t * D + i] = sigmoidf(j->hg[t * D + i]);
        }
}

/* The job's buffers for n rows: [v_first n*C] then the time mix's B_N rows of n*C and the four
 * LoRA bottlenecks (n x max_lora each); the same layout serves one row (n = 1) and many. */
static float *mix_buf(const EvalPass *p, size_t n, int i) {
        size_t C = p->m->info.n_embd;
        return p->scratch + n * C + (size_t)i * n * C;
}

static SeqJob mix_job(const EvalPass *p, uint32_t l, size_t n) {
        SeqJob j = { .p = p,
                     .l = l,
                     .r = mix_buf(p, n, B_R),
                     .w = mix_buf(p, n, B_W),
                     .k = mix_buf(p, n, B_K),
                     .v = mix_buf(p, n, B_V),
                     .aa = mix_buf(p, n, B_A),
                     .g = mix_buf(p, n, B_G),
                     .kk = mix_buf(p, n, B_KK),
                     .bb = mix_buf(p, n, B_B),
                     .y = mix_buf(p, n, B_Y),
                     .tmp = mix_buf(p, n, B_TMP),
                     .v_first = p->scratch,
                     .hw = mix_buf(p, n, B_N) };
        j.ha = j.hw + n * p->m->max_lora;
        j.hg = j.ha + n * p->m->max_lora;
        j.hv = j.hg + n * p->m->max_lora;
        return j;
}

/* One row (at offset o) of heads [h0, h1), after the LoRA up-projections: the gates, the keys
 * normalized per head (kk), b = kk * a, kk negated and k mixed by a. */
static void heads_in(const SeqJob *j, size_t o, size_t h0, size_t h1) {
        const LayerV7 *a = &j->p->m->layers[j->l].v7;
        size_t N = j->p->m->info.head_size, c0 = h0 * N, c1 = h1 * N;
        float *w = j->w + o, *aa = j->aa + o, *v = j->v + o, *k = j->k + o, *kk = j->kk + o, *bb = j->bb + o;
        j->p->k->v7_gates(w + c0, a->w0 + c0, aa + c0, a->a0 + c0, v + c0, j->v_first + o + c0,
                          j->l > 0 ? a->v0 + c0 : NULL, j->tmp + o + c0, c1 - c0);
        j->p->k->v7_keys(k + c0, kk + c0, bb + c0, aa + c0, a->k_k + c0, a->k_a + c0, h1 - h0, N);
}

/* One row of heads [h0, h1), after the WKV step: ln_x, the bonus (r . k . r_k) v and the gate. */
static void heads_out(const SeqJob *j, size_t o, size_t h0, size_t h1) {
        const LayerV7 *a = &j->p->m->layers[j->l].v7;
        size_t N = j->p->m->info.head_size, c0 = h0 * N;
        const float *r = j->r + o, *k = j->k + o, *v = j->v + o, *g = j->g + o;
        float *y = j->y + o;
        j->p->k->group_norm(y + c0, a->ln_x_w + c0, a->ln_x_b + c0, y + c0, h1 - h0, N, V7_GN_EPS);
        j->p->k->v7_bonus(y + c0, r + c0, k + c0, v + c0, g + c0, a->r_k + c0, h1 - h0, N);
}

static void seq_heads(void *ctx, size_t h0, size_t h1) {
        const SeqJob *j = ctx;
        const EvalPass *p = j->p;
        const Model *m = p->m;
        const LayerV7 *a = &m->layers[j->l].v7;
        uint32_t l = j->l;
        size_t C = m->info.n_embd, N = m->info.head_size, n = p->n, c0 = h0 * N, c1 = h1 * N;
        float *r = j->r, *w = j->w, *k = j->k, *v = j->v, *aa = j->aa, *g = j->g, *kk = j->kk, *bb = j->bb, *y = j->y,
              *tmp = j->tmp, *v_first = j->v_first;

        mat_matmul_rows(p->k, &a->w2, j->hw, n, w, c0, c1);
        mat_matmul_rows(p->k, &a->a2, j->ha, n, aa, c0, c1);
        mat_matmul_rows(p->k, &a->g2, j->hg, n, g, c0, c1);
        if (l > 0)
                mat_matmul_rows(p->k, &a->v2, j->hv, n, tmp, c0, c1);
        else
                for (size_t t = 0; t < n; t++)
                        memcpy(v_first + t * C + c0, v + t * C + c0, (c1 - c0) * sizeof(float));

        for (size_t t = 0; t < n; t++)
                heads_in(j, t * C, h0, h1);

        /* sequence: these heads walk the chunk in order; batch: each row has its own state */
        if (p->sequence)
                p->k->wkv7_seq(layer_state(p, 0, l) + 2 * C + h0 * N * N, r + c0, w + c0, k + c0, v + c0, kk + c0,
                               bb + c0, y + c0, C, n, h1 - h0, N);
        else
                for (size_t t = 0; t < n; t++) {
                        size_t o = t * C + c0;
                        float *S = layer_state(p, t, l) + 2 * C + h0 * N * N;
                        p->k->wkv7(S, r + o, w + o, k + o, v + o, kk + o, bb + o, y + o, h1 - h0, N);
                }

        for (size_t t = 0; t < n; t++)
                heads_out(j, t * C, h0, h1);
}

typedef struct RowsAdd {
        const Kernels *k;
        float *x;
        const float *add;
        size_t n, ld;
} RowsAdd;

/* x[t][i] += add[t][i] for the rows [r0, r1) of the matrix a task computed, in every vector */
static void after_add_rows(void *ctx, size_t seg, size_t r0, size_t r1) {
        const RowsAdd *j = ctx;
        for (size_t t = 0; t < j->n; t++)
                j->k->add(j->x + t * j->ld + r0, j->add + t * j->ld + r0, r1 - r0);
}

typedef struct RowsRelu {
        const Kernels *k;
        float *h;
        size_t n, ld;
} RowsRelu;

static void after_relu_rows(void *ctx, size_t seg, size_t r0, size_t r1) {
        const RowsRelu *j = ctx;
        for (size_t t = 0; t < j->n; t++)
                j->k->relu_sq(j->h + t * j->ld + r0, r1 - r0);
}

static void time_mix(EvalPass *p, uint32_t l) {
        const Model *m = p->m;
        const Layer *L = &m->layers[l];
        const LayerV7 *a = &L->v7;
        size_t C = m->info.n_embd, H = m->info.n_head, n = p->n;
        SeqJob j = mix_job(p, l, n);
        PrefixJob pre = { .p = p,
                          .l = l,
                          .off = 0,
                          .ln_w = L->ln1_w,
                          .ln_b = L->ln1_b,
                          .xn = mix_buf(p, n, B_XN),
                          .prev = mix_buf(p, n, B_PREV),
                          .n_mix = 6 };
        for (int i = 0; i < 6; i++) {
                pre.dst[i] = mix_buf(p, n, B_X6 + i);
                pre.mix[i] = a->x[i];
        }
        float *const *xs = pre.dst;

        prefix(&pre);

        MatvecSeg down[7] = {
                { &a->att_r, xs[X_R], j.r }, { &a->att_k, xs[X_K], j.k }, { &a->att_v, xs[X_V], j.v },
                { &a->w1, xs[X_W], j.hw },   { &a->a1, xs[X_A], j.ha },   { &a->g1, xs[X_G], j.hg },
                { &a->v1, xs[X_V], j.hv },
        };
        pass_matmul_multi(p, down, l > 0 ? 7 : 6, after_down, &j);

        pass_parallel(p, H, seq_heads, &j);

        RowsAdd add = { .k = p->k, .x = p->x, .add = j.tmp, .n = n, .ld = C };
        MatvecSeg out = { &a->att_o, j.y, j.tmp };
        pass_matmul_multi(p, &out, 1, after_add_rows, &add);
}

static void channel_mix(EvalPass *p, uint32_t l) {
        const Model *m = p->m;
        const Layer *L = &m->layers[l];
        size_t C = m->info.n_embd, F = m->info.n_ffn, n = p->n;
        float *base = p->scratch + n * C; /* after v_first */
        float *xn = base, *prev = xn + n * C, *xk = prev + n * C, *out = xk + n * C, *hid = out + n * C;

        PrefixJob pre = { .p = p,
                          .l = l,
                          .off = C,
                          .ln_w = L->ln2_w,
                          .ln_b = L->ln2_b,
                          .xn = xn,
                          .prev = prev,
                          .dst = { xk },
                          .mix = { L->v7.ffn_x_k },
                          .n_mix = 1 };
        prefix(&pre);

        RowsRelu relu = { .k = p->k, .h = hid, .n = n, .ld = F };
        MatvecSeg key = { &L->v7.ffn_k, xk, hid };
        pass_matmul_multi(p, &key, 1, after_relu_rows, &relu);
        RowsAdd add = { .k = p->k, .x = p->x, .add = out, .n = n, .ld = C };
        MatvecSeg value = { &L->v7.ffn_v, hid, out };
        pass_matmul_multi(p, &value, 1, after_add_rows, &add);
}

/* ---- single-row decode: the same arithmetic in five pool dispatches per layer instead of fifteen ----
 *
 * 1. r, k, v and the four LoRA down-projections (one matvec each, all in one dispatch; tanh and
 *    sigmoid on the bottlenecks ride in it, on the rows a task computed);
 * 2. per range of heads: the LoRA up-projections of those heads' channels, the element-wise work,
 *    the WKV step, ln_x, the bonus and the gate (heads are independent from the up-projections on);
 * 3. att.output, adding into x;  4. ffn.key with relu^2;  5. ffn.value, adding into x.
 * The job, its buffers and the per-row work of a head range (heads_in, heads_out) are time_mix()'s,
 * the rest is the same expression in the same order, and the matvec kernels compute each row on its
 * own, so the logits are bit-identical to theirs. */

static void one_heads(void *ctx, size_t h0, size_t h1) {
        const SeqJob *j = ctx;
        const EvalPass *p = j->p;
        const Model *m = p->m;
        const LayerV7 *a = &m->layers[j->l].v7;
        uint32_t l = j->l;
        size_t N = m->info.head_size, c0 = h0 * N, c1 = h1 * N;

        mat_matvec_rows(p->k, &a->w2, j->hw, j->w, c0, c1);
        mat_matvec_rows(p->k, &a->a2, j->ha, j->aa, c0, c1);
        mat_matvec_rows(p->k, &a->g2, j->hg, j->g, c0, c1);
        if (l > 0)
                mat_matvec_rows(p->k, &a->v2, j->hv, j->tmp, c0, c1);
        else
                memcpy(j->v_first + c0, j->v + c0, (c1 - c0) * sizeof(float));
        heads_in(j, 0, h0, h1);
        float *S = layer_state(p, 0, l) + 2 * m->info.n_embd + h0 * N * N;
        p->k->wkv7(S, j->r + c0, j->w + c0, j->k + c0, j->v + c0, j->kk + c0, j->bb + c0, j->y + c0, h1 - h0, N);
        heads_out(j, 0, h0, h1);
}

static void time_mix_one(EvalPass *p, uint32_t l) {
        const Model *m = p->m;
        const Layer *L = &m->layers[l];
        const LayerV7 *a = &L->v7;
        size_t C = m->info.n_embd, H = m->info.n_head;
        SeqJob j = mix_job(p, l, 1);
        float *xn = mix_buf(p, 1, B_XN), *prev = mix_buf(p, 1, B_PREV), *xs[6];
        for (int i = 0; i < 6; i++)
                xs[i] = mix_buf(p, 1, B_X6 + i);

        p->k->layer_norm(p->x, L->ln1_w, L->ln1_b, xn, C, LN_EPS);
        pass_shift_prev(p, l, 0, xn, prev);
        pass_shift_store(p, l, 0, xn);
        for (size_t i = 0; i < C; i++)
                prev[i] -= xn[i];
        for (size_t s = 0; s < 6; s++)
                p->k->mix(xs[s], xn, prev, a->x[s], C);

        MatvecSeg down[7] = {
                { &a->att_r, xs[X_R], j.r }, { &a->att_k, xs[X_K], j.k }, { &a->att_v, xs[X_V], j.v },
                { &a->w1, xs[X_W], j.hw },   { &a->a1, xs[X_A], j.ha },   { &a->g1, xs[X_G], j.hg },
                { &a->v1, xs[X_V], j.hv },
        };
        pass_matvec_multi(p, down, l > 0 ? 7 : 6, after_down, &j);

        pass_parallel(p, H, one_heads, &j);

        RowsAdd add = { .k = p->k, .x = p->x, .add = j.tmp, .n = 1, .ld = C };
        MatvecSeg out = { &a->att_o, j.y, j.tmp };
        pass_matvec_multi(p, &out, 1, after_add_rows, &add);
}

static void channel_mix_one(EvalPass *p, uint32_t l) {
        const Model *m = p->m;
        const Layer *L = &m->layers[l];
        size_t C = m->info.n_embd;
        float *base = p->scratch + C; /* after v_first */
        float *xn = base, *prev = xn + C, *xk = prev + C, *out = xk + C, *hid = out + C;

        p->k->layer_norm(p->x, L->ln2_w, L->ln2_b, xn, C, LN_EPS);
        pass_shift_prev(p, l, C, xn, prev);
        pass_shift_store(p, l, C, xn);
        for (size_t c = 0; c < C; c++)
                prev[c] -= xn[c];
        p->k->mix(xk, xn, prev, L->v7.ffn_x_k, C);

        RowsRelu relu = { .k = p->k, .h = hid, .n = 1, .ld = m->info.n_ffn };
        MatvecSeg key = { &L->v7.ffn_k, xk, hid };
        pass_matvec_multi(p, &key, 1, after_relu_rows, &relu);
        RowsAdd add = { .k = p->k, .x = p->x, .add = out, .n = 1, .ld = C };
        MatvecSeg value = { &L->v7.ffn_v, hid, out };
        pass_matvec_multi(p, &value, 1, after_add_rows, &add);
}

static void layer(EvalPass *p, uint32_t l) {
        if (p->n == 1) {
                time_mix_one(p, l);
                channel_mix_one(p, l);
                return;
        }
        time_mix(p, l);
        channel_mix(p, l);
}

static void state_reset(const Model *m, float *s) {
        /* the WKV matrix starts at zero, as do the shifts */
}

const ArchOps arch_v7_ops = {
        .bind_layer = bind_layer,
        .layer = layer,
        .state_reset = state_reset,
        .scratch_per_row = scratch_per_row,
};
