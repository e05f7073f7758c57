/* test-rwkvcpp.c: rwkv.cpp .bin files, the reference models and every hostile-file class. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "engine/format/tensor-table.h"
#include "tests/lib/check.h"

/* A growable byte buffer to build .bin files in memory. */
typedef struct Buf {
        uint8_t *p;
        size_t n, cap;
} Buf;

static void put(Buf *b, const void *src, size_t n) {
        if (b->n + n > b->cap) {
                b->cap = (b->n + n) * 2 + 64;
                b->p = realloc(b->p, b->cap);
                CHECK(b->p);
        }
        memcpy(b->p + b->n, src, n);
        b->n += n;
}

static void put32(Buf *b, uint32_t v) {
        uint8_t le[4] = { v, v >> 8, v >> 16, v >> 24 };
        put(b, le, 4);
}

static void put_header(Buf *b, uint32_t version, uint32_t vocab, uint32_t embd, uint32_t layers, uint32_t type) {
        put32(b, 0x67676d66);
        put32(b, version);
        put32(b, vocab);
        put32(b, embd);
        put32(b, layers);
        put32(b, type);
}

/* dims in ggml order, as the file stores them; data_len bytes of a recognizable pattern */
static void put_tensor(Buf *b, const char *name, uint32_t type, uint32_t n_dims, const uint32_t *dims,
                       size_t data_len) {
        put32(b, n_dims);
        put32(b, (uint32_t)strlen(name));
        put32(b, type);
        for (uint32_t i = 0; i < n_dims; i++)
                put32(b, dims[i]);
        put(b, name, strlen(name));
        for (size_t i = 0; i < data_len; i++) {
                uint8_t v = (uint8_t)(i * 7 + 1);
                put(b, &v, 1);
        }
}

static int open_buf(const Buf *b, TensorTable **ret, RwkvError *err) {
        *err = (RwkvError){};
        return tensor_table_open_memory(b->p, b->n, ret, err);
}

/* Expect a load error whose message contains `needle`. */
static void expect_fail(const Buf *b, const char *needle) {
        TensorTable *t = NULL;
        RwkvError err;
        int r = open_buf(b, &t, &err);
        if (r >= 0 || !strstr(err.msg, needle)) {
                fprintf(stderr, "expected failure with '%s', got r=%d msg='%s'\n", needle, r, err.msg);
                exit(1);
        }
        CHECK(!t);
        /* the same errno without an error record */
        CHECK(tensor_table_open_memory(b->p, b->n, &t, NULL) == r && !t);
}

static void test_valid(void) {
        Buf b = {};
        put_header(&b, 101, 256, 64, 1, 1);
        put_tensor(&b, "emb.weight", 1, 2, (uint32_t[]){ 64, 256 }, 64 * 256 * 2);
        put_tensor(&b, "blocks.0.ln1.weight", 0, 1, (uint32_t[]){ 64 }, 64 * 4);
        put_tensor(&b, "blocks.0.att.key.weight", 8, 2, (uint32_t[]){ 64, 3 }, 3 * 2 * 24);
        put_tensor(&b, "blocks.0.att.time_faaaa", 0, 3, (uint32_t[]){ 1, 32, 2 }, 64 * 4);

        TensorTable *t;
        RwkvError err;
        CHECK_OK(open_buf(&b, &t, &err));
        CHECK(tensor_table_format(t) == MODEL_FORMAT_RWKVCPP);
        CHECK_STREQ(tensor_table_format_name(t), "rwkv.cpp-bin-v101");
        CHECK(tensor_table_convention(t) == PARAM_CONVENTION_RWKVCPP);
        CHECK(tensor_table_count(t) == 4);
        const TensorTableMeta *m = tensor_table_meta(t);
        CHECK(m->n_vocab == 256 && m->n_embd == 64 && m->n_layer == 1 && m->wtype == DTYPE_F16);
        CHECK(m->tokenizer == MODEL_TOKENIZER_BYTES);

        const Tensor *e = tensor_table_get(t, "emb.weight");
        CHECK(e && e->dtype == DTYPE_F16 && e->n_dims == 2 && e->shape[0] == 256 && e->shape[1] == 64);
        CHECK(e->nbytes == 64 * 256 * 2);
        CHECK(((const uint8_t *)e->data)[0] == 1 && ((const uint8_t *)e->data)[1] == 8);
        const Tensor *k = tensor_table_get(t, "blocks.0.att.key.weight");
        CHECK(k && k->dtype == DTYPE_GGML_Q5_1 && k->shape[0] == 3 && k->shape[1] == 64 && k->nbytes == 144);
        CHECK((uintptr_t)k->data % 2 == 0);
        const Tensor *f = tensor_table_get(t, "blocks.0.att.time_faaaa");
        CHECK(f && f->n_dims == 3 && f->shape[0] == 2 && f->shape[1] == 32 && f->shape[2] == 1);
        CHECK(!tensor_table_get(t, "blocks.0.att.value.weight"));
        CHECK_STREQ(tensor_table_name_at(t, 1), "blocks.0.ln1.weight");
        CHECK(!tensor_table_name_at(t, 4) && !tensor_table_at(t, 4));

        /* the f32 tensor sits at an unaligned offset (name length 19): it must have been copied */
        const Tensor *ln = tensor_table_get(t, "blocks.0.ln1.weight");
        CHECK((uintptr_t)ln->data % 4 == 0);
        CHECK(((const uint8_t *)ln->data)[0] == 1);

        uint8_t h1[32], h2[32];
        CHECK_OK(tensor_table_hash(t, h1));
        CHECK_OK(tensor_table_hash(t, h2));
        CHECK(memcmp(h1, h2, 32) == 0);
        CHECK(!tensor_table_vocab(t, NULL));
        tensor_table_free(t);
        free(b.p);
}

static void test_hostile(void) {
        Buf b = {};
        /* truncated header */
        put32(&b, 0x67676d66);
        put32(&b, 101);
        expect_fail(&b, "truncated rwkv.cpp header");
        b.n = 0;
        put_header(&b, 102, 256, 64, 1, 0);
        expect_fail(&b, "version 102");
        b.n = 0;
        put_header(&b, 101, 0, 64, 1, 0);
        expect_fail(&b, "bad rwkv.cpp header");
        b.n = 0;
        put_header(&b, 101, 256, 64, 1, 5);
        expect_fail(&b, "unknown rwkv.cpp data type 5 in the header");
        b.n = 0;
        put_header(&b, 101, 256, 64, 1, 0);
        expect_fail(&b, "holds no tensors");

        /* truncated data */
        b.n = 0;
        put_header(&b, 101, 256, 64, 1, 0);
        put_tensor(&b, "a", 0, 1, (uint32_t[]){ 64 }, 255);
        expect_fail(&b, "truncated data");
        /* truncated tensor header and key */
        b.n = 0;
        put_header(&b, 101, 256, 64, 1, 0);
        put32(&b, 1);
        put32(&b, 5);
        expect_fail(&b, "truncated header");
        b.n = 0;
        put_header(&b, 101, 256, 64, 1, 0);
        put32(&b, 1);
        put32(&b, 50);
        put32(&b, 0);
        put32(&b, 4);
        put(&b, "abc", 3);
        expect_fail(&b, "truncated header");
        /* trailing garbage shorter than a tensor header */
        b.n = 0;
        put_header(&b, 101, 256, 64, 1, 0);
        put_tensor(&b, "a", 0, 1, (uint32_t[]){ 4 }, 16);
        put32(&b, 1);
        expect_fail(&b, "truncated header");

        /* dims */
        b.n = 0;
        put_header(&b, 101, 256, 64, 1, 0);
        put_tensor(&b, "a", 0, 5, (uint32_t[]){ 1, 1, 1, 1, 1 }, 4);
        expect_fail(&b, "5 dimensions");
        b.n = 0;
        put_header(&b, 101, 256, 64, 1, 0);
        put_tensor(&b, "a", 0, 0, NULL, 4);
        expect_fail(&b, "0 dimensions");
        b.n = 0;
        put_header(&b, 101, 256, 64, 1, 0);
        put_tensor(&b, "a", 0, 2, (uint32_t[]){ 0, 4 }, 4);
        expect_fail(&b, "is 0");
        b.n = 0;
        put_header(&b, 101, 256, 64, 1, 0);
        put_tensor(&b, "a", 0, 2, (uint32_t[]){ 0x80000000u, 4 }, 4);
        expect_fail(&b, "is -2147483648");
        b.n = 0;
        put_header(&b, 101, 256, 64, 1, 0);
        put_tensor(&b, "a", 0, 4, (uint32_t[]){ 0x7fffffff, 0x7fffffff, 0x7fffffff, 0x7fffffff }, 4);
        expect_fail(&b, "overflow");
        b.n = 0;
        put_header(&b, 101, 256, 64, 1, 0);
        put_tensor(&b, "a", 0, 3, (uint32_t[]){ 0x7fffffff, 0x7fffffff, 0x7fffffff }, 4);
        expect_fail(&b, "overflow");
        /* huge but not overflowing: must say truncated, not try to allocate */
        b.n = 0;
        put_header(&b, 101, 256, 64, 1, 0);
        put_tensor(&b, "a", 0, 2, (uint32_t[]){ 0x7fffffff, 0x7fff }, 4);
        expect_fail(&b, "truncated data");

        /* types and blocks */
        b.n = 0;
        put_header(&b, 101, 256, 64, 1, 0);
        put_tensor(&b, "a", 4, 1, (uint32_t[]){ 32 }, 32);
        expect_fail(&b, "tensor 'a': unknown rwkv.cpp data type 4");
        b.n = 0;
        put_header(&b, 101, 256, 64, 1, 0);
        put_tensor(&b, "a", 99, 1, (uint32_t[]){ 32 }, 32);
        expect_fail(&b, "unknown rwkv.cpp data type 99");
        b.n = 0;
        put_header(&b, 101, 256, 64, 1, 0);
        put_tensor(&b, "a", 7, 2, (uint32_t[]){ 33, 2 }, 100);
        expect_fail(&b, "not a whole number of ggml_q5_0 blocks");
        b.n = 0;
        put_header(&b, 100, 256, 64, 1, 0);
        put_tensor(&b, "a", 9, 1, (uint32_t[]){ 32 }, 34);
        expect_fail(&b, "obsolete layout");
        b.n = 0;
        put_header(&b, 100, 256, 64, 1, 0);
        put_tensor(&b, "a", 1, 1, (uint32_t[]){ 32 }, 64);
        TensorTable *t;
        RwkvError err;
        CHECK_OK(open_buf(&b, &t, &err));
        CHECK_STREQ(tensor_table_format_name(t), "rwkv.cpp-bin-v100");
        tensor_table_free(t);

        /* non-finite block scales (f16 0x7e00 = NaN, 0x7c00 = inf) in ggml blocks */
        b.n = 0;
        put_header(&b, 101, 256, 64, 1, 0);
        put32(&b, 1);
        put32(&b, 1);
        put32(&b, 9); /* q8_0: d, then 32 quants */
        put32(&b, 64);
        put(&b, "q", 1);
        put(&b, (uint8_t[34]){ 0x00, 0x3c }, 34);
        put(&b, (uint8_t[34]){ 0x00, 0x7e }, 34);
        expect_fail(&b, "tensor 'q': non-finite scale in the block of element 32");
        b.n = 0;
        put_header(&b, 101, 256, 64, 1, 0);
        put32(&b, 1);
        put32(&b, 1);
        put32(&b, 3); /* q4_1: d, m, then 16 bytes */
        put32(&b, 32);
        put(&b, "q", 1);
        put(&b, (uint8_t[20]){ 0x00, 0x3c, 0x00, 0x7c }, 20);
        expect_fail(&b, "non-finite scale in the block of element 0");

        /* names */
        b.n = 0;
        put_header(&b, 101, 256, 64, 1, 0);
        put_tensor(&b, "a", 0, 1, (uint32_t[]){ 4 }, 16);
        put_tensor(&b, "a", 0, 1, (uint32_t[]){ 4 }, 16);
        expect_fail(&b, "duplicate tensor 'a'");
        b.n = 0;
        put_header(&b, 101, 256, 64, 1, 0);
        put32(&b, 1);
        put32(&b, 3);
        put32(&b, 0);
        put32(&b, 1);
        put(&b, "a\0b", 3);
        put32(&b, 0);
        expect_fail(&b, "NUL byte");
        b.n = 0;
        put_header(&b, 101, 256, 64, 1, 0);
        put_tensor(&b, "a\nb", 0, 1, (uint32_t[]){ 1 }, 4);
        expect_fail(&b, "control characters");
        b.n = 0;
        put_header(&b, 101, 256, 64, 1, 0);
        put32(&b, 1);
        put32(&b, 256);
        put32(&b, 0);
        expect_fail(&b, "name length 256");
        b.n = 0;
        put_header(&b, 101, 256, 64, 1, 0);
        put32(&b, 1);
        put32(&b, 0);
        put32(&b, 0);
        expect_fail(&b, "name length 0");

        /* not a model; big-endian */
        b.n = 0;
        put(&b, "hello world", 11);
        expect_fail(&b, "not a model file");
        b.n = 0;
        put32(&b, 0x666d6767);
        expect_fail(&b, "big-endian");
        free(b.p);
}

/* The reference models: every file loads, shapes follow PyTorch order. */
static void test_reference(void) {
        const char *dir = getenv("RWKV_REFERENCE_DIR");
        char path[4096];
        snprintf(path, sizeof(path), "%s/tiny-rwkv/tiny-rwkv-7v0-834K-FP32.bin", dir ? dir : "");
        if (!dir || access(path, R_OK) < 0) {
                fprintf(stderr, "reference data absent: skipping the reference models\n");
                return;
        }
        static const struct {
                const char *file;
                DType wtype;
                uint32_t embd, layers;
        } files[] = {
                { "tiny-rwkv-4v0-660K-FP32.bin", DTYPE_F32, 128, 4 },
                { "tiny-rwkv-4v0-660K-FP16.bin", DTYPE_F16, 128, 4 },
                { "tiny-rwkv-4v0-660K-Q5_1.bin", DTYPE_GGML_Q5_1, 128, 4 },
                { "tiny-rwkv-5v1-730K-FP32.bin", DTYPE_F32, 0, 0 },
                { "tiny-rwkv-5v2-730K-Q5_1.bin", DTYPE_GGML_Q5_1, 0, 0 },
                { "tiny-rwkv-6v0-1m-FP16.bin", DTYPE_F16, 0, 0 },
                { "tiny-rwkv-6v0-3m-Q5_1.bin", DTYPE_GGML_Q5_1, 0, 0 },
                { "tiny-rwkv-7v0-834K-FP32.bin", DTYPE_F32, 64, 12 },
                { "tiny-rwkv-7v0-834K-FP16.bin", DTYPE_F16, 64, 12 },
                { "tiny-rwkv-7v0-834K-Q5_0.bin", DTYPE_GGML_Q5_0, 64, 12 },
                { "tiny-rwkv-7v0-834K-Q5_1.bin", DTYPE_GGML_Q5_1, 64, 12 },
        };
        for (size_t i = 0; i < ELEMENTSOF(files); i++) {
                snprintf(path, sizeof(path), "%s/tiny-rwkv/%s", dir, files[i].file);
                TensorTable *t = NULL;
                RwkvError err = {};
                int r = tensor_table_open(path, &t, &err);
                if (r < 0) {
                        fprintf(stderr, "%s: %s\n", files[i].file, error_message(&err, r));
                        exit(1);
                }
                const TensorTableMeta *m = tensor_table_meta(t);
                CHECK(m->wtype == (int)files[i].wtype);
                CHECK(m->n_vocab == 256);
                if (files[i].embd)
                        CHECK(m->n_embd == files[i].embd && m->n_layer == files[i].layers);
                const Tensor *e = tensor_table_get(t, "emb.weight");
                CHECK(e && e->n_dims == 2 && e->shape[0] == 256 && e->shape[1] == m->n_embd);
                CHECK(tensor_table_get(t, "head.weight"));
                char name[64];
                snprintf(name, sizeof(name), "blocks.%u.ln1.weight", m->n_layer - 1);
                CHECK(tensor_table_get(t, name));
                /* every tensor lies inside the mapping or an owned copy; sizes add up to the file */
                uint64_t total = 0;
                bool saw_quant = false;
                for (size_t j = 0; j < tensor_table_count(t); j++) {
                        const Tensor *x = tensor_table_at(t, j);
                        total += x->nbytes;
                        saw_quant |= x->dtype == files[i].wtype;
                }
                CHECK(saw_quant);
                CHECK(total < tensor_table_file_size(t));
                printf("%-32s %zu tensors, %" PRIu64 " data bytes, n_embd %u, n_layer %u\n", files[i].file,
                       tensor_table_count(t), total, m->n_embd, m->n_layer);
                tensor_table_free(t);
        }
}

int main(void) {
        test_valid();
        test_hostile();
        test_reference();
        return 0;
}
