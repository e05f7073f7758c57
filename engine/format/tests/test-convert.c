/* test-convert.c: conversion to .rwkv keeps what it should bit for bit (fp32, and f16/bf16 kept as
 * is), re-encodes what it should, records the source's convention, and gives the same logits as the
 * source; random models are deterministic, shaped like the official checkpoints and numerically sane. */
#include <inttypes.h>
#include <math.h>
#include <sodium.h>

#include "engine/arch/model.h"
#include "engine/format/convert.h"
#include "engine/format/native-format.h"
#include "engine/format/native-writer.h"
#include "engine/format/tensor-table.h"
#include "tests/lib/check.h"

static char dir[] = "/tmp/test-convert-XXXXXX";

static void path_in(char *buf, size_t n, const char *name) {
        snprintf(buf, n, "%s/%s", dir, name);
}

static TensorTable *open_or_die(const char *path) {
        TensorTable *t;
        RwkvError err = {};
        int r = tensor_table_open(path, &t, &err);
        if (r < 0) {
                fprintf(stderr, "%s\n", error_message(&err, r));
                exit(1);
        }
        return t;
}

static void convert_or_die(const char *in, const char *out, int type, const char *vocab) {
        TensorTable *t = open_or_die(in);
        RwkvError err = {};
        ConvertOptions o = { .type = type, .vocab = vocab, .vocab_len = vocab ? strlen(vocab) : 0 };
        int r = model_convert(t, out, &o, NULL, &err);
        if (r < 0) {
                fprintf(stderr, "convert %s: %s\n", in, error_message(&err, r));
                exit(1);
        }
        tensor_table_free(t);
}

/* Logits after feeding tokens one by one from a fresh state. */
static float *logits_of(const char *path, const uint32_t *tokens, size_t n) {
        Model *m;
        RwkvError err = {};
        int r = model_load(path, NULL, &m, &err);
        if (r < 0) {
                fprintf(stderr, "load %s: %s\n", path, error_message(&err, r));
                exit(1);
        }
        const ModelInfo *in = model_info(m);
        EvalCtx *ctx;
        CHECK_OK(evalctx_new(m, NULL, 1, 0, &ctx));
        float *state = calloc(in->state_floats, sizeof(float)), *logits = calloc(in->n_vocab, sizeof(float));
        CHECK(state && logits);
        model_state_reset(m, state);
        for (size_t i = 0; i < n; i++)
                CHECK_OK(model_eval_token(ctx, state, tokens[i], i + 1 == n ? logits : NULL));
        free(state);
        evalctx_free(ctx);
        model_free(m);
        return logits;
}

static void test_pth(const char *ref) {
        static const char *const precisions[] = { "fp32", "fp16", "bf16" };
        char in[4096], out[4096];
        for (size_t p = 0; p < ELEMENTSOF(precisions); p++) {
                snprintf(in, sizeof(in), "%s/pth-rwkv7/rwkv7-L2-C128-V512-%s.pth", ref, precisions[p]);
                path_in(out, sizeof(out), "p.rwkv");
                convert_or_die(in, out, -1, NULL);
                TensorTable *a = open_or_die(in), *b = open_or_die(out);
                CHECK(tensor_table_convention(b) == PARAM_CONVENTION_PTH);
                CHECK(tensor_table_count(a) == tensor_table_count(b));
                for (size_t i = 0; i < tensor_table_count(a); i++) {
                        const Tensor *x = tensor_table_at(a, i), *y = tensor_table_at(b, i);
                        CHECK_STREQ(tensor_table_name_at(a, i), tensor_table_name_at(b, i));
                        CHECK(x->dtype == y->dtype && x->n_dims == y->n_dims && x->nbytes == y->nbytes);
                        CHECK(memcmp(x->shape, y->shape, sizeof(x->shape)) == 0);
                        CHECK(memcmp(x->data, y->data, x->nbytes) == 0); /* bit-identical */
                }
                RwkvError err = {};
                CHECK_OK(tensor_table_verify(b, &err));
                tensor_table_free(a);
                tensor_table_free(b);

                /* the same logits: the forward pass sees the same bytes */
                static const uint32_t tokens[] = { 1, 42, 7, 300, 511 };
                float *la = logits_of(in, tokens, ELEMENTSOF(tokens)), *lb = logits_of(out, tokens, ELEMENTSOF(tokens));
                CHECK(memcmp(la, lb, 512 * sizeof(float)) == 0);
                free(la);
                free(lb);
                unlink(out);
        }

        /* --type: matrices take it, everything else stays exact: f16/bf16 as they are (this source is
         * bf16), other types as f32 */
        snprintf(in, sizeof(in), "%s/pth-rwkv7/rwkv7-L2-C128-V512-bf16.pth", ref);
        path_in(out, sizeof(out), "q.rwkv");
        static const char vocab[] = "1 'a' 1\n2 'b' 1\n";
        convert_or_die(in, out, DTYPE_Q8_0, vocab);
        TensorTable *a = open_or_die(in), *b = open_or_die(out);
        size_t vlen;
        CHECK_STREQ(tensor_table_vocab(b, &vlen), vocab);
        CHECK(tensor_table_meta(b)->tokenizer == MODEL_TOKENIZER_WORLD && tensor_table_meta(b)->wtype == DTYPE_Q8_0);
        size_t quantized = 0;
        for (size_t i = 0; i < tensor_table_count(a); i++) {
                const char *name = tensor_table_name_at(a, i);
                const Tensor *x = tensor_table_at(a, i), *y = tensor_table_get(b, name);
                CHECK(y);
                uint64_t cols = tensor_cols(x), rows = tensor_nelem(x) / cols;
                float *fx = malloc(cols * 4), *fy = malloc(cols * 4);
                CHECK(fx && fy);
                bool matrix = strstr(name, ".weight") && x->n_dims == 2;
                bool half = x->dtype == DTYPE_F16 || x->dtype == DTYPE_BF16;
                CHECK(y->dtype == (matrix ? DTYPE_Q8_0 : half ? x->dtype : DTYPE_F32));
                quantized += matrix;
                for (uint64_t r = 0; r < rows; r++) {
                        dtype_row_to_f32(x->dtype, (const uint8_t *)x->data + r * dtype_row_bytes(x->dtype, cols), fx,
                                         cols);
                        dtype_row_to_f32(y->dtype, (const uint8_t *)y->data + r * dtype_row_bytes(y->dtype, cols), fy,
                                         cols);
                        float amax = 0;
                        for (uint64_t c = 0; c < cols; c++)
                                amax = fmaxf(amax, fabsf(fx[c]));
                        for (uint64_t c = 0; c < cols; c++)
                                if (matrix)
                                        CHECK_NEAR(fy[c], fx[c], amax / 127 * 0.51 + 1e-6);
                                else
                                        CHECK(fy[c] == fx[c]);
                }
                free(fx);
                free(fy);
        }
        CHECK(quantized == 2 + 2 * 6); /* emb, head, 4 att + 2 ffn per layer */
        tensor_table_free(b);

        /* --type f32 widens everything */
        convert_or_die(in, out, DTYPE_F32, vocab);
        b = open_or_die(out);
        for (size_t i = 0; i < tensor_table_count(a); i++)
                CHECK(tensor_table_get(b, tensor_table_name_at(a, i))->dtype == DTYPE_F32);
        tensor_table_free(a);
        tensor_table_free(b);
        unlink(out);
}

static void test_bin(const char *ref) {
        char in[4096], out[4096];
        snprintf(in, sizeof(in), "%s/tiny-rwkv/tiny-rwkv-7v0-834K-Q5_1.bin", ref);
        path_in(out, sizeof(out), "b.rwkv");
        convert_or_die(in, out, -1, NULL);
        TensorTable *a = open_or_die(in), *b = open_or_die(out);
        CHECK(tensor_table_convention(b) == PARAM_CONVENTION_RWKVCPP);
        CHECK(tensor_table_meta(b)->n_vocab == 256 && tensor_table_meta(b)->wtype == DTYPE_F16);
        for (size_t i = 0; i < tensor_table_count(a); i++) {
                const Tensor *x = tensor_table_at(a, i), *y = tensor_table_get(b, tensor_table_name_at(a, i));
                CHECK(y);
                if (x->dtype == DTYPE_F32) {
                        CHECK(y->dtype == DTYPE_F32 && memcmp(x->data, y->data, x->nbytes) == 0);
                        continue;
                }
                CHECK(x->dtype == DTYPE_GGML_Q5_1 && y->dtype == DTYPE_F16);
                uint64_t cols = tensor_cols(x), rows = tensor_nelem(x) / cols;
                float *fx = malloc(cols * 4);
                CHECK(fx);
                for (uint64_t r = 0; r < rows; r++) {
                        dtype_row_to_f32(x->dtype, (const uint8_t *)x->data + r * dtype_row_bytes(x->dtype, cols), fx,
                                         cols);
                        const uint16_t *h = (const uint16_t *)y->data + r * cols;
                        for (uint64_t c = 0; c < cols; c++)
                                CHECK(h[c] == f32_to_f16(fx[c]));
                }
                free(fx);
        }
        tensor_table_free(a);
        tensor_table_free(b);
        static const uint32_t tokens[] = { 34, 105, 110 };
        float *la = logits_of(in, tokens, 3), *lb = logits_of(out, tokens, 3);
        for (int i = 0; i < 256; i++)
                CHECK_NEAR(la[i], lb[i], 2e-3);
        free(la);
        free(lb);
        unlink(out);
}

static void write_random(const char *out, uint32_t L, uint32_t C, uint32_t V, uint64_t seed, int type,
                         uint8_t hash[32]) {
        RandomModelOptions o = { .version = 7, .n_layer = L, .n_embd = C, .n_vocab = V, .seed = seed, .type = type };
        RwkvError err = {};
        int r = model_write_random(&o, out, hash, &err);
        if (r < 0) {
                fprintf(stderr, "random: %s\n", error_message(&err, r));
                exit(1);
        }
}

static void test_random(const char *ref) {
        char out[4096], out2[4096];
        path_in(out, sizeof(out), "r.rwkv");
        path_in(out2, sizeof(out2), "r2.rwkv");
        uint8_t h1[32], h2[32];
        write_random(out, 2, 128, 512, 7, -1, h1);
        write_random(out2, 2, 128, 512, 7, -1, h2);
        CHECK(memcmp(h1, h2, 32) == 0);
        write_random(out2, 2, 128, 512, 8, -1, h2);
        CHECK(memcmp(h1, h2, 32) != 0);

        TensorTable *r = open_or_die(out);
        const TensorTableMeta *m = tensor_table_meta(r);
        CHECK(m->arch == 70 && m->n_layer == 2 && m->n_embd == 128 && m->n_vocab == 512 && m->n_head == 2);
        RwkvError err = {};
        CHECK_OK(tensor_table_verify(r, &err));
        if (ref) {
                /* official names and shapes: exactly those of the reference checkpoint */
                char in[4096];
                snprintf(in, sizeof(in), "%s/pth-rwkv7/rwkv7-L2-C128-V512-fp32.pth", ref);
                TensorTable *p = open_or_die(in);
                CHECK(tensor_table_count(p) == tensor_table_count(r));
                for (size_t i = 0; i < tensor_table_count(p); i++) {
                        const Tensor *x = tensor_table_at(p, i), *y = tensor_table_get(r, tensor_table_name_at(p, i));
                        if (!y || y->n_dims != x->n_dims || memcmp(y->shape, x->shape, sizeof(x->shape)) != 0) {
                                fprintf(stderr, "random model differs at '%s'\n", tensor_table_name_at(p, i));
                                exit(1);
                        }
                }
                tensor_table_free(p);
        }
        tensor_table_free(r);

        /* numerically sane in every type: finite, non-degenerate logits */
        static const int types[] = { DTYPE_F32,  DTYPE_F16,     DTYPE_BF16,   DTYPE_Q8_0,
                                     DTYPE_Q4_0, DTYPE_Q8_0X16, DTYPE_Q4_0X16 };
        static const uint32_t tokens[] = { 1, 2, 3, 250, 255, 0, 17 };
        for (size_t k = 0; k < ELEMENTSOF(types); k++) {
                write_random(out, 3, 128, 256, 1, types[k], NULL);
                float *l = logits_of(out, tokens, ELEMENTSOF(tokens));
                double sum = 0, sq = 0;
                for (int i = 0; i < 256; i++) {
                        CHECK(isfinite(l[i]));
                        sum += l[i];
                        sq += (double)l[i] * l[i];
                }
                double sd = sqrt(sq / 256 - (sum / 256) * (sum / 256));
                fprintf(stderr, "random %s: logit sd %.3f\n", dtype_name((DType)types[k]), sd);
                CHECK(sd > 0.01 && sd < 100);
                free(l);
        }

        RandomModelOptions bad = { .version = 6, .n_layer = 1, .n_embd = 64, .n_vocab = 256, .type = -1 };
        CHECK(model_write_random(&bad, out, NULL, &err) == -EOPNOTSUPP);
        bad.version = 7, bad.n_embd = 100;
        CHECK(model_write_random(&bad, out, NULL, &err) == -EINVAL);
        bad.n_embd = 64, bad.type = DTYPE_GGML_Q5_1;
        CHECK(model_write_random(&bad, out, NULL, &err) == -EINVAL);
        unlink(out);
        unlink(out2);
}

/* A grouped type (Q8_0X16, Q4_0X16): the matrices the forward pass multiplies get it, the embedding
 * keeps the row layout (rt: q8_0, q4_0); the values are rt's exactly (random writes and conversion
 * alike), and a model of it computes the rt model's logits up to the order of the sums and the
 * rounding of x. */
static void test_x16(DType t, DType rt) {
        char f32[4096], q8[4096], x16[4096], conv[4096];
        path_in(f32, sizeof(f32), "f32.rwkv");
        path_in(q8, sizeof(q8), "q8.rwkv");
        path_in(x16, sizeof(x16), "x16.rwkv");
        path_in(conv, sizeof(conv), "conv.rwkv");
        write_random(f32, 2, 128, 256, 5, DTYPE_F32, NULL);
        write_random(q8, 2, 128, 256, 5, rt, NULL);
        write_random(x16, 2, 128, 256, 5, t, NULL);
        convert_or_die(f32, conv, t, NULL);
        TensorTable *a = open_or_die(q8), *b = open_or_die(x16), *c = open_or_die(conv);
        size_t grouped = 0;
        for (size_t i = 0; i < tensor_table_count(a); i++) {
                const char *name = tensor_table_name_at(a, i);
                const Tensor *x = tensor_table_at(a, i), *y = tensor_table_get(b, name), *z = tensor_table_get(c, name);
                CHECK(y && z);
                if (x->dtype != rt) {
                        CHECK(y->dtype == x->dtype);
                        continue;
                }
                bool emb = strcmp(name, "emb.weight") == 0;
                CHECK(y->dtype == (emb ? rt : t) && z->dtype == y->dtype);
                CHECK(y->nbytes == x->nbytes && z->nbytes == y->nbytes);
                grouped += !emb;
                uint64_t cols = tensor_cols(x), rows = tensor_nelem(x) / cols;
                float *fx = malloc(rows * cols * 4), *fy = malloc(rows * cols * 4), *fz = malloc(rows * cols * 4);
                CHECK(fx && fy && fz);
                dtype_rows_to_f32(x->dtype, x->data, cols, 0, rows, fx);
                dtype_rows_to_f32(y->dtype, y->data, cols, 0, rows, fy);
                dtype_rows_to_f32(z->dtype, z->data, cols, 0, rows, fz);
                CHECK(memcmp(fx, fy, rows * cols * 4) == 0 && memcmp(fy, fz, rows * cols * 4) == 0);
                free(fx);
                free(fy);
                free(fz);
        }
        CHECK(grouped == 2 * 6 + 1); /* each layer's r, k, v, o and FFN key, value; the head */
        tensor_table_free(a);
        tensor_table_free(b);
        tensor_table_free(c);

        static const uint32_t tokens[] = { 1, 2, 3, 250, 255, 0, 17 };
        float *la = logits_of(q8, tokens, ELEMENTSOF(tokens)), *lb = logits_of(x16, tokens, ELEMENTSOF(tokens));
        double amax = 0, dmax = 0;
        for (int i = 0; i < 256; i++) {
                amax = fmax(amax, fabs(la[i]));
                dmax = fmax(dmax, fabs(la[i] - lb[i]));
        }
        fprintf(stderr, "%s vs %s logits: max |diff| %.2g (max |logit| %.3g)\n", dtype_name(t), dtype_name(rt), dmax,
                amax);
        CHECK(dmax <= 0.02 * amax + 1e-4);
        free(la);
        free(lb);

        /* a grouped tensor that is not whole groups of a matrix is refused when declared */
        RwkvError err = {};
        NativeWriter *w = NULL;
        CHECK_OK(native_writer_new(conv, &w, &err));
        CHECK(native_writer_add_tensor(w, "m.weight", t, 2, (uint64_t[]){ 24, 64 }, &err) == -EBADMSG);
        CHECK(native_writer_add_tensor(w, "v.weight", t, 1, (uint64_t[]){ 64 }, &err) == -EBADMSG);
        CHECK(native_writer_add_tensor(w, "t.weight", t, 3, (uint64_t[]){ 2, 16, 64 }, &err) == -EBADMSG);
        CHECK_OK(native_writer_add_tensor(w, "ok.weight", t, 2, (uint64_t[]){ 32, 96 }, &err));
        native_writer_free(w);
        unlink(f32);
        unlink(q8);
        unlink(x16);
        unlink(conv);
}

/* A source with a NaN: refused, and no output appears. */
static void test_nonfinite(void) {
        char out[4096], bad[4096];
        path_in(bad, sizeof(bad), "nan.rwkv");
        path_in(out, sizeof(out), "out.rwkv");
        write_random(bad, 1, 64, 256, 1, -1, NULL);
        /* poke a NaN into ln_out.weight through a private writable copy of the file */
        FILE *f = fopen(bad, "r+e");
        CHECK(f);
        TensorTable *t = open_or_die(bad);
        const Tensor *x = tensor_table_get(t, "ln_out.weight");
        CHECK(x);
        /* the table maps the file: find the tensor's offset from a pointer difference to emb.weight */
        long off = (long)((const uint8_t *)x->data - (const uint8_t *)tensor_table_get(t, "emb.weight")->data);
        tensor_table_free(t);
        /* emb.weight is the first tensor: its data starts at the data region's first 64-byte slot */
        uint8_t hdr[256];
        CHECK(fread(hdr, 1, sizeof(hdr), f) == sizeof(hdr));
        uint64_t data_off = 0;
        for (int i = 7; i >= 0; i--)
                data_off = data_off << 8 | hdr[144 + i];
        float nan = NAN;
        CHECK(fseek(f, (long)data_off + off, SEEK_SET) == 0);
        CHECK(fwrite(&nan, 4, 1, f) == 1);
        CHECK(fflush(f) == 0);

        /* As poked, the content no longer matches the header's hash: convert refuses to copy a
         * corrupt file into a new one whose hash would look valid. */
        RwkvError err = {};
        t = open_or_die(bad);
        CHECK(model_convert(t, out, &(ConvertOptions){ .type = -1 }, NULL, &err) == -EBADMSG);
        CHECK(strstr(err.msg, "hash"));
        CHECK(access(out, F_OK) < 0);
        tensor_table_free(t);

        /* Re-hashed (a file written with a NaN in it): the non-finite check refuses it. */
        CHECK(fseek(f, 0, SEEK_END) == 0);
        long size = ftell(f);
        uint8_t *all = malloc((size_t)size), h[32];
        CHECK(all && fseek(f, 0, SEEK_SET) == 0 && fread(all, 1, (size_t)size, f) == (size_t)size);
        memset(all + NH_HASH, 0, 32);
        crypto_generichash(h, sizeof(h), all, (size_t)size, NULL, 0);
        CHECK(fseek(f, NH_HASH, SEEK_SET) == 0 && fwrite(h, 1, sizeof(h), f) == sizeof(h));
        free(all);
        fclose(f);

        t = open_or_die(bad);
        CHECK(model_convert(t, out, &(ConvertOptions){ .type = -1 }, NULL, &err) == -EBADMSG);
        CHECK(strstr(err.msg, "ln_out.weight") && strstr(err.msg, "non-finite"));
        CHECK(model_convert(t, out, &(ConvertOptions){ .type = DTYPE_F16 }, NULL, &err) == -EBADMSG);
        CHECK(access(out, F_OK) < 0);
        tensor_table_free(t);
        unlink(bad);
}

int main(void) {
        CHECK(mkdtemp(dir));
        const char *ref = getenv("RWKV_REFERENCE_DIR");
        char probe[4096];
        snprintf(probe, sizeof(probe), "%s/pth-rwkv7/manifest.json", ref ? ref : "");
        if (!ref || access(probe, R_OK) < 0) {
                fprintf(stderr, "reference data absent: skipping the conversions of reference files\n");
                ref = NULL;
        }
        if (ref) {
                test_pth(ref);
                test_bin(ref);
        }
        test_random(ref);
        test_x16(DTYPE_Q8_0X16, DTYPE_Q8_0);
        test_x16(DTYPE_Q4_0X16, DTYPE_Q4_0);
        test_nonfinite();
        CHECK(rmdir(dir) == 0);
        return 0;
}
