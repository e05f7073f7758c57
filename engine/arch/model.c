/* model.c: load a model of any supported architecture, and run it (sequence, token and batch modes).
 *
 * The architecture is read off the tensors (names and shapes), never the file name: v7 has att.k_k,
 * v6 att.time_maa_x, v5 att.ln_x (5.2 also att.gate), v4 none of these. */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "engine/arch/model-internal.h"

#define MAX_EMBD (1u << 16)
#define MAX_VOCAB (1u << 24)
#define MAX_LAYERS 4096u
#define MAX_ROWS 4096u
#define DEFAULT_CHUNK 64u
#define MAX_HEAD_SIZE 1024u
#define MAX_STATE_FLOATS ((size_t)1 << 31)

Model *model_free(Model *m) {
        if (!m)
                return NULL;
        for (size_t i = 0; i < m->n_owned; i++)
                free(m->owned[i]);
        free(m->owned);
        free(m->layers);
        tokenizer_free(m->tokenizer);
        tensor_table_free(m->table);
        free(m);
        return NULL;
}
DEFINE_TRIVIAL_CLEANUP_FUNC(Model *, model_free);

const ModelInfo *model_info(const Model *m) {
        return &m->info;
}

const Tokenizer *model_tokenizer(const Model *m) {
        return m->tokenizer;
}

static bool has(const Model *m, const char *name) {
        return tensor_table_get(m->table, name) != NULL;
}

/* Heads from the tensor that carries them in each version; both conventions agree on dim 0. */
static int detect_heads(Model *m, RwkvError *err) {
        ModelInfo *in = &m->info;
        const char *name;
        switch (in->arch) {
        case MODEL_ARCH_V4:
                in->n_head = 1;
                in->head_size = in->n_embd;
                return 0;
        case MODEL_ARCH_V5_1:
        case MODEL_ARCH_V5_2:
                name = "blocks.0.att.time_decay";
                break;
        case MODEL_ARCH_V6:
                name = "blocks.0.att.time_faaaa";
                break;
        case MODEL_ARCH_V7:
                name = "blocks.0.att.r_k";
                break;
        default:
                return -EINVAL;
        }
        const Tensor *t = tensor_table_get(m->table, name);
        if (!t)
                return error_set(err, ENOENT, "missing tensor '%s'", name);
        uint64_t H = t->shape[0];
        if (H == 0 || H > in->n_embd || in->n_embd % H != 0)
                return error_set(err, EBADMSG, "tensor '%s': %" PRIu64 " heads do not divide the embedding of %u", name,
                                 H, in->n_embd);
        in->n_head = (uint32_t)H;
        in->head_size = in->n_embd / in->n_head;
        /* the WKV state is H x N x N per layer: real models use N = 64; refuse absurd ones early */
        if (in->head_size > MAX_HEAD_SIZE)
                return error_set(err, EBADMSG, "tensor '%s': head size %u (at most %u supported)", name, in->head_size,
                                 MAX_HEAD_SIZE);
        return 0;
}

static int detect(Model *m, RwkvError *err) {
        ModelInfo *in = &m->info;
        const Tensor *emb = tensor_table_get(m->table, "emb.weight");
        if (!emb)
                return error_set(err, ENOENT, "missing tensor 'emb.weight' (not an RWKV model?)");
        if (emb->n_dims != 2)
                return error_set(err, EBADMSG, "tensor 'emb.weight' has %u dimensions, expected 2", emb->n_dims);
        if (emb->shape[1] == 0 || emb->shape[1] > MAX_EMBD || emb->shape[0] == 0 || emb->shape[0] > MAX_VOCAB)
                return error_set(err, EBADMSG,
                                 "tensor 'emb.weight' has an unsupported shape (%" PRIu64 ", %" PRIu64 ")",
                                 emb->shape[0], emb->shape[1]);
        in->n_vocab = (uint32_t)emb->shape[0];
        in->n_embd = (uint32_t)emb->shape[1];

        uint32_t L = 0;
        while (L <= MAX_LAYERS && model_tensor(m, "blocks.%u.ln1.weight", L))
                L++;
        if (L == 0)
                return error_set(err, ENOENT, "missing tensor 'blocks.0.ln1.weight' (no layers)");
        if (L > MAX_LAYERS)
                return error_set(err, EBADMSG, "more than %u layers", MAX_LAYERS);
        in->n_layer = L;

        if (has(m, "blocks.0.att.k_k") || has(m, "blocks.0.att.r_k") || has(m, "blocks.0.att.x_rwkvag")) {
                in->arch = MODEL_ARCH_V7;
                in->arch_name = "rwkv7";
                m->ops = &arch_v7_ops;
        } else if (has(m, "blocks.0.att.time_maa_x")) {
                in->arch = MODEL_ARCH_V6;
                in->arch_name = "rwkv6";
                m->ops = &arch_v6_ops;
        } else if (has(m, "blocks.0.att.ln_x.weight") && has(m, "blocks.0.att.time_decay")) {
                bool gate = has(m, "blocks.0.att.gate.weight");
                in->arch = gate ? MODEL_ARCH_V5_2 : MODEL_ARCH_V5_1;
                in->arch_name = gate ? "rwkv5.2" : "rwkv5.1";
                m->ops = &arch_v5_ops;
        } else if (has(m, "blocks.0.att.time_decay") && has(m, "blocks.0.att.time_first")) {
                in->arch = MODEL_ARCH_V4;
                in->arch_name = "rwkv4";
                m->ops = &arch_v4_ops;
        } else
                return error_set(err, EPROTONOSUPPORT,
                                 "unknown RWKV architecture (blocks.0 has none of att.k_k, att.time_maa_x, "
                                 "att.ln_x, att.time_first)");

        int r = detect_heads(m, err);
        if (r < 0)
                return r;

        const Tensor *fk = tensor_table_get(m->table, "blocks.0.ffn.key.weight");
        if (!fk)
                return error_set(err, ENOENT, "missing tensor 'blocks.0.ffn.key.weight'");
        if (fk->n_dims != 2 || fk->shape[0] == 0 || fk->shape[0] > 16 * (uint64_t)MAX_EMBD)
                return error_set(err, EBADMSG, "tensor 'blocks.0.ffn.key.weight' has an unsupported shape");
        in->n_ffn = (uint32_t)fk->shape[0];

        const Tensor *wk = tensor_table_get(m->table, "blocks.0.att.key.weight");
        in->wtype = wk ? wk->dtype : emb->dtype;

        size_t C = in->n_embd;
        if (in->arch == MODEL_ARCH_V4)
                m->layer_state_floats = 5 * C;
        else
                m->layer_state_floats = 2 * C + (size_t)in->n_head * in->head_size * in->head_size;
        if (m->layer_state_floats > MAX_STATE_FLOATS / in->n_layer)
                return error_set(err, EFBIG, "a session state of this model would exceed %zu floats", MAX_STATE_FLOATS);
        in->state_floats = m->layer_state_floats * in->n_layer;
        /* ln_x: the official code (ChatRWKV, RWKV-LM) normalizes with eps 64e-5 (x/8 before an eps of
         * 1e-5) in v5 to v7. rwkv.cpp runs v5 with 1e-5, and its files' reference logits follow that
         * (the difference is visible on small models), so v5 keeps the convention of its source. */
        bool v5 = in->arch == MODEL_ARCH_V5_1 || in->arch == MODEL_ARCH_V5_2;
        m->group_norm_eps = v5 && m->conv == PARAM_CONVENTION_RWKVCPP ? 1e-5f : 64e-5f;
        return 0;
}

static int bind_model(Model *m, RwkvError *err) {
        ModelInfo *in = &m->info;
        size_t C = in->n_embd, V = in->n_vocab;
        int r;

        r = bind_mat(m, err, V, C, &m->emb, "emb.weight");
        if (r < 0)
                return r;
        /* decoding reads one embedding row per token, not the matrix */
        in->weight_bytes -= m->emb.t.nbytes;
        in->weight_bytes += m->emb.t.nbytes / V;

        if ((r = bind_vec(m, err, C, &m->ln0_w, "blocks.0.ln0.weight")) < 0 ||
            (r = bind_vec(m, err, C, &m->ln0_b, "blocks.0.ln0.bias")) < 0 ||
            (r = bind_vec(m, err, C, &m->ln_out_w, "ln_out.weight")) < 0 ||
            (r = bind_vec(m, err, C, &m->ln_out_b, "ln_out.bias")) < 0 ||
            (r = bind_mat(m, err, V, C, &m->head, "head.weight")) < 0)
                return r;

        m->layers = calloc(in->n_layer, sizeof(Layer));
        if (!m->layers)
                return -ENOMEM;
        for (uint32_t l = 0; l < in->n_layer; l++) {
                r = m->ops->bind_layer(m, l, err);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int load_tokenizer(Model *m, const ModelLoadOptions *opts, RwkvError *err) {
        size_t len = 0;
        const char *vocab = tensor_table_vocab(m->table, &len);
        int r;

        if (m->info.n_vocab == 256)
                r = tokenizer_new_bytes(&m->tokenizer);
        else if (vocab)
                r = tokenizer_new_world(vocab, len, &m->tokenizer, err);
        else if (opts && opts->vocab_path)
                r = tokenizer_load_world(opts->vocab_path, &m->tokenizer, err);
        else
                return 0;
        if (r < 0) {
                if (err && err->errnum == 0)
                        error_set(err, -r, "cannot build the tokenizer: %s", strerror(-r));
                return r;
        }
        if (tokenizer_vocab_size(m->tokenizer) > m->info.n_vocab)
                return error_set(err, EINVAL, "the tokenizer has %u tokens but the model only %u",
                                 tokenizer_vocab_size(m->tokenizer), m->info.n_vocab);
        return 0;
}

int model_load(const char *path, const ModelLoadOptions *opts, Model **ret, RwkvError *err) {
        _cleanup_(model_freep) Model *m = calloc(1, sizeof(Model));
        if (!m)
                return -ENOMEM;

        int r = tensor_table_open(path, &m->table, err);
        if (r < 0)
                return r;
        m->conv = tensor_table_convention(m->table);

        r = detect(m, err);
        if (r < 0)
                return r;
        r = bind_model(m, err);
        if (r < 0)
                return r;
        r = load_tokenizer(m, opts, err);
        if (r < 0)
                return r;

        ModelInfo *in = &m->info;
        in->format = tensor_table_format(m->table);
        in->format_name = tensor_table_format_name(m->table);
        in->file_size = tensor_table_file_size(m->table);
        r = tensor_table_hash(m->table, in->hash);
        if (r < 0)
                return error_set(err, -r, "cannot hash the model: %s", strerror(-r));
        for (size_t i = 0; i < 32; i++)
                snprintf(in->hash_hex + 2 * i, 3, "%02x", in->hash[i]);
        const char *base = strrchr(path, '/');
        snprintf(in->name, sizeof(in->name), "%s", base ? base + 1 : path);

        *ret = TAKE_PTR(m);
        return 0;
}

void model_state_reset(const Model *m, float *state) {
        memset(state, 0, m->info.state_floats * sizeof(float));
        for (uint32_t l = 0; l < m->info.n_layer; l++)
                m->ops->state_reset(m, state + (size_t)l * m->layer_state_floats);
}

/* ---- evaluation ---- */

EvalCtx *evalctx_free(EvalCtx *ctx) {
        if (!ctx)
                return NULL;
        free(ctx->x);
        free(ctx->scratch);
        free(ctx->head_in);
        free(ctx->head_out);
        free(ctx->outs);
        free(ctx);
        return NULL;
}
DEFINE_TRIVIAL_CLEANUP_FUNC(EvalCtx *, evalctx_free);

static float *alloc_floats(size_t n) {
        void *p = NULL;
        if (posix_memalign(&p, 64, MAX(n, (size_t)16) * sizeof(float)) != 0)
                return NULL;
        return p;
}

int evalctx_new(const Model *m, ThreadPool *pool, size_t max_batch, size_t chunk, EvalCtx **ret) {
        if (!m || !ret)
                return -EINVAL;
        if (max_batch == 0)
                max_batch = 1;
        if (chunk == 0)
                chunk = DEFAULT_CHUNK;
        if (max_batch > MAX_ROWS || chunk > MAX_ROWS)
                return -EINVAL;

        _cleanup_(evalctx_freep) EvalCtx *ctx = calloc(1, sizeof(EvalCtx));
        if (!ctx)
                return -ENOMEM;
        ctx->m = m;
        ctx->pool = pool;
        ctx->k = kernels_get();
        ctx->max_batch = max_batch;
        ctx->chunk = chunk;
        ctx->max_rows = MAX(max_batch, chunk);

        size_t C = m->info.n_embd, V = m->info.n_vocab, rows = ctx->max_rows;
        ctx->x = alloc_floats(rows * C);
        ctx->scratch = alloc_floats(rows * m->ops->scratch_per_row(m));
        ctx->head_in = alloc_floats(rows * C);
        ctx->head_out = alloc_floats(max_batch * V);
        ctx->outs = calloc(rows, sizeof(float *));
        if (!ctx->k || !ctx->x || !ctx->scratch || !ctx->head_in || !ctx->head_out || !ctx->outs)
                return -ENOMEM;

        *ret = TAKE_PTR(ctx);
        return 0;
}

/* Run n rows through the network. want[t]: write row t's logits to out[t] (NULL: skip the head). */
static void forward(EvalCtx *ctx, bool sequence, float *const *states, const uint32_t *tokens, size_t n,
                    float *const *out) {
        const Model *m = ctx->m;
        size_t C = m->info.n_embd;
        EvalPass p = {
                .ctx = ctx,
                .m = m,
                .k = ctx->k,
                .pool = ctx->pool,
                .n = n,
                .sequence = sequence,
                .states = states,
                .x = ctx->x,
                .scratch = ctx->scratch,
        };

        for (size_t t = 0; t < n; t++) {
                float *x = p.x + t * C;
                dtype_rows_to_f32(m->emb.t.dtype, m->emb.t.data, C, tokens[t], 1, x);
                ctx->k->layer_norm(x, m->ln0_w, m->ln0_b, x, C, LN_EPS);
        }

        for (uint32_t l = 0; l < m->info.n_layer; l++)
                m->ops->layer(&p, l);

        size_t cnt = 0, last = 0;
        for (size_t t = 0; t < n; t++)
                if (out[t]) {
                        ctx->k->layer_norm(p.x + t * C, m->ln_out_w, m->ln_out_b, ctx->head_in + cnt * C, C, LN_EPS);
                        cnt++;
                        last = t;
                }
        if (cnt == 0)
                return;
        if (cnt == 1) {
                pass_matmul(&p, &m->head, ctx->head_in, 1, out[last]);
                return;
        }
        size_t V = m->info.n_vocab;
        bool contiguous = cnt == n;
        for (size_t t = 1; t < n && contiguous; t++)
                contiguous = out[t] == out[t - 1] + V;
        if (contiguous) {
                /* every row wants logits into one n x V array: write them in place */
                pass_matmul(&p, &m->head, ctx->head_in, cnt, out[0]);
                return;
        }
        pass_matmul(&p, &m->head, ctx->head_in, cnt, ctx->head_out);
        for (size_t t = 0, i = 0; t < n; t++)
                if (out[t])
                        memcpy(out[t], ctx->head_out + i++ * V, V * sizeof(float));
}

static int check_tokens(const Model *m, const uint32_t *tokens, size_t n) {
        for (size_t i = 0; i < n; i++)
                if (tokens[i] >= m->info.n_vocab)
                        return -EINVAL;
        return 0;
}

int model_eval_sequence(EvalCtx *ctx, float *state, const uint32_t *tokens, size_t n, float *logits) {
        if (!ctx || !state || (n > 0 && !tokens))
                return -EINVAL;
        int r = check_tokens(ctx->m, tokens, n);
        if (r < 0)
                return r;

        float *const states[1] = { state };
        float **outs = ctx->outs;
        size_t chunk = ctx->chunk;
        for (size_t done = 0; done < n;) {
                size_t len = MIN(chunk, n - done);
                memset(outs, 0, len * sizeof(float *));
                if (done + len == n)
                        outs[len - 1] = logits;
                forward(ctx, true, states, tokens + done, len, outs);
                done += len;
        }
        return 0;
}

int model_eval_sequence_all(EvalCtx *ctx, float *state, const uint32_t *tokens, size_t n, float *logits) {
        if (!ctx || !state || (n > 0 && (!tokens || !logits)))
                return -EINVAL;
        int r = check_tokens(ctx->m, tokens, n);
        if (r < 0)
                return r;

        size_t V = ctx->m->info.n_vocab;
        float *const states[1] = { state };
        float **outs = ctx->outs;
        for (size_t done = 0; done < n;) {
                size_t len = MIN(ctx->chunk, n - done);
                for (size_t t = 0; t < len; t++)
                        outs[t] = logits + (done + t) * V;
                forward(ctx, true, states, tokens + done, len, outs);
                done += len;
        }
        return 0;
}

int model_eval_token(EvalCtx *ctx, float *state, uint32_t token, float *logits) {
        return model_eval_sequence(ctx, state, &token, 1, logits);
}

int model_eval_batch(EvalCtx *ctx, float *const *states, const uint32_t *tokens, size_t B, float *const *logits) {
        if (!ctx || (B > 0 && (!states || !tokens)) || B > ctx->max_batch)
                return -EINVAL;
        int r = check_tokens(ctx->m, tokens, B);
        if (r < 0)
                return r;
        for (size_t i = 0; i < B; i++)
                if (!states[i])
                        return -EINVAL;
        if (B == 0)
                return 0;

        float **outs = ctx->outs;
        for (size_t i = 0; i < B; i++)
                outs[i] = logits ? logits[i] : NULL;
        forward(ctx, false, states, tokens, B, outs);
        return 0;
}
