/* test-pth.c: PyTorch .pth checkpoints: zip (incl. zip64), the pickle subset, storages, and the
 * hostile-file classes (truncation, compression, CRC, foreign globals and opcodes, strides, offsets). */
#include <inttypes.h>
#include <math.h>

#include "engine/format/pickle.h"
#include "engine/format/tensor-table.h"
#include "engine/format/tests/builder.h"

static uint8_t storage0[128 * 4], storage1[32 * 2], storage2[32 * 2];

static const PthTensorSpec base_tensors[] = {
        { "emb.weight", "FloatStorage", "0", 128, 0, 2, { 4, 32 }, { 32, 1 } },
        { "ln.weight", "HalfStorage", "1", 32, 0, 1, { 32 }, { 1 } },
        { "blocks.0.att.x_r", "BFloat16Storage", "2", 32, 0, 3, { 1, 1, 32 }, { 32, 32, 1 } },
        { "view", "FloatStorage", "0", 128, 32, 1, { 32 }, { 1 } },
};

/* A whole .pth from tensor specs and an optional replacement pickle. */
static void build_pth(Buf *out, const PthTensorSpec *ts, size_t n, const Buf *pickle_override, int zip64,
                      uint16_t storage_method) {
        Buf pk = {};
        if (pickle_override)
                buf_put(&pk, pickle_override->p, pickle_override->n);
        else
                pk_state_dict(&pk, ts, n);
        ZipFileSpec files[] = {
                { "archive/data.pkl", pk.p, pk.n, 0 },
                { "archive/byteorder", "little", 6, 0 },
                { "archive/data/0", storage0, sizeof(storage0), storage_method },
                { "archive/data/1", storage1, sizeof(storage1), 0 },
                { "archive/data/2", storage2, sizeof(storage2), 0 },
                { "archive/version", "3\n", 2, 0 },
        };
        out->n = 0;
        zip_build(out, files, ELEMENTSOF(files), zip64);
        free(pk.p);
}

static int open_buf(const Buf *b, TensorTable **ret, RwkvError *err) {
        *err = (RwkvError){};
        return tensor_table_open_memory(b->p, b->n, ret, err);
}

static void expect_fail(const Buf *b, const char *needle) {
        TensorTable *t = NULL;
        RwkvError err;
        int r = open_buf(b, &t, &err);
        if (r >= 0 || !strstr(err.msg, needle)) {
                fprintf(stderr, "expected failure with '%s', got r=%d msg='%s'\n", needle, r, err.msg);
                exit(1);
        }
}

static void expect_spec_fail(const PthTensorSpec *ts, size_t n, const char *needle) {
        Buf b = {};
        build_pth(&b, ts, n, NULL, 0, 0);
        expect_fail(&b, needle);
        free(b.p);
}

static void expect_pickle_fail(const char *bytes, size_t len, const char *needle) {
        Buf pk = {}, b = {};
        buf_put(&pk, bytes, len);
        build_pth(&b, NULL, 0, &pk, 0, 0);
        expect_fail(&b, needle);
        free(pk.p);
        free(b.p);
}

static void check_valid(const Buf *b) {
        TensorTable *t;
        RwkvError err;
        int r = open_buf(b, &t, &err);
        if (r < 0) {
                fprintf(stderr, "valid file refused: %s\n", error_message(&err, r));
                exit(1);
        }
        CHECK(tensor_table_format(t) == MODEL_FORMAT_PTH);
        CHECK_STREQ(tensor_table_format_name(t), "pth");
        CHECK(tensor_table_convention(t) == PARAM_CONVENTION_PTH);
        CHECK(tensor_table_count(t) == 4);
        const Tensor *e = tensor_table_get(t, "emb.weight");
        CHECK(e && e->dtype == DTYPE_F32 && e->n_dims == 2 && e->shape[0] == 4 && e->shape[1] == 32);
        CHECK(e->nbytes == sizeof(storage0));
        CHECK(memcmp(e->data, storage0, sizeof(storage0)) == 0);
        /* in place: the data pointer lies inside the buffer */
        CHECK((const uint8_t *)e->data > b->p && (const uint8_t *)e->data < b->p + b->n);
        const Tensor *ln = tensor_table_get(t, "ln.weight");
        CHECK(ln && ln->dtype == DTYPE_F16 && ln->n_dims == 1 && memcmp(ln->data, storage1, sizeof(storage1)) == 0);
        const Tensor *x = tensor_table_get(t, "blocks.0.att.x_r");
        CHECK(x && x->dtype == DTYPE_BF16 && x->n_dims == 3 && x->shape[2] == 32);
        const Tensor *v = tensor_table_get(t, "view");
        CHECK(v && v->nbytes == 128 && memcmp(v->data, storage0 + 128, 128) == 0);
        tensor_table_free(t);
}

static void test_valid(void) {
        Buf b = {};
        build_pth(&b, base_tensors, ELEMENTSOF(base_tensors), NULL, 0, 0);
        check_valid(&b);
        build_pth(&b, base_tensors, ELEMENTSOF(base_tensors), NULL, 1, 0);
        check_valid(&b);

        /* every truncation fails cleanly */
        size_t full = b.n;
        for (size_t n = 0; n < full; n++) {
                TensorTable *t = NULL;
                RwkvError err = {};
                CHECK(tensor_table_open_memory(b.p, n, &t, &err) < 0);
                CHECK(err.msg[0]);
        }
        /* random byte flips: an error or a valid table, never a crash (ASan watches) */
        uint32_t s = 12345;
        Buf m = {};
        for (int round = 0; round < 3000; round++) {
                m.n = 0;
                buf_put(&m, b.p, b.n);
                for (int k = 0; k < 1 + round % 4; k++) {
                        s = s * 1103515245u + 12345u;
                        m.p[(s >> 8) % m.n] ^= (uint8_t)(1u << (s % 8));
                }
                TensorTable *t = NULL;
                RwkvError err = {};
                if (tensor_table_open_memory(m.p, m.n, &t, &err) >= 0) {
                        for (size_t i = 0; i < tensor_table_count(t); i++) {
                                const Tensor *x = tensor_table_at(t, i);
                                volatile uint8_t sink = ((const uint8_t *)x->data)[x->nbytes - 1];
                                (void)sink;
                        }
                        tensor_table_free(t);
                }
        }
        free(m.p);
        free(b.p);
}

static void test_hostile(void) {
        Buf b = {};
        build_pth(&b, base_tensors, ELEMENTSOF(base_tensors), NULL, 0, 8);
        expect_fail(&b, "compressed");

        /* corrupt the pickle after the zip recorded its CRC */
        build_pth(&b, base_tensors, ELEMENTSOF(base_tensors), NULL, 0, 0);
        uint8_t *pkl = memmem(b.p, b.n, "emb.weight", 10);
        CHECK(pkl);
        pkl[0] = 'E';
        expect_fail(&b, "CRC");

        /* wrong zip signature in the end record, central directory out of range */
        build_pth(&b, base_tensors, ELEMENTSOF(base_tensors), NULL, 0, 0);
        b.p[b.n - 22] = 'X';
        expect_fail(&b, "end-of-central-directory");
        build_pth(&b, base_tensors, ELEMENTSOF(base_tensors), NULL, 0, 0);
        b.p[b.n - 22 + 16] = 0xff;
        b.p[b.n - 22 + 19] = 0x7f;
        expect_fail(&b, "central directory outside");
        /* a zip without data.pkl */
        b.n = 0;
        zip_build(&b, (ZipFileSpec[]){ { "a/b", "x", 1, 0 } }, 1, 0);
        expect_fail(&b, "data.pkl");

        PthTensorSpec ts[ELEMENTSOF(base_tensors)];
        memcpy(ts, base_tensors, sizeof(ts));
        ts[0].stride[0] = 1, ts[0].stride[1] = 4; /* transposed */
        expect_spec_fail(ts, 1, "not contiguous");
        memcpy(ts, base_tensors, sizeof(ts));
        ts[3].offset = 100; /* 100 + 32 > 128 */
        expect_spec_fail(ts, 4, "outside storage");
        memcpy(ts, base_tensors, sizeof(ts));
        ts[0].numel = 200;
        expect_spec_fail(ts, 1, "holds 512 bytes");
        memcpy(ts, base_tensors, sizeof(ts));
        ts[0].key = "9";
        expect_spec_fail(ts, 1, "missing");
        memcpy(ts, base_tensors, sizeof(ts));
        ts[0].shape[0] = -4;
        expect_spec_fail(ts, 1, "negative dimension");
        memcpy(ts, base_tensors, sizeof(ts));
        ts[0].shape[0] = INT64_MAX, ts[0].shape[1] = INT64_MAX;
        expect_spec_fail(ts, 1, "overflow");
        memcpy(ts, base_tensors, sizeof(ts));
        ts[0].storage = "LongStorage";
        expect_spec_fail(ts, 1, "refusing global 'torch.LongStorage'");
        memcpy(ts, base_tensors, sizeof(ts));
        ts[1].name = "emb.weight";
        expect_spec_fail(ts, 2, "duplicate tensor 'emb.weight'");
        memcpy(ts, base_tensors, sizeof(ts));
        ts[0].n_dims = 0; /* a scalar becomes shape (1,) */
        build_pth(&b, ts, 1, NULL, 0, 0);
        TensorTable *t;
        RwkvError err;
        CHECK_OK(open_buf(&b, &t, &err));
        CHECK(tensor_table_at(t, 0)->n_dims == 1 && tensor_table_at(t, 0)->shape[0] == 1);
        tensor_table_free(t);

        /* raw pickles */
        static const char os_system[] = "\x80\x02"
                                        "cos\nsystem\n"
                                        "X\x02\0\0\0ls"
                                        "\x85R.";
        expect_pickle_fail(os_system, sizeof(os_system) - 1, "refusing global 'os.system'");
        static const char builtins[] = "\x80\x02"
                                       "cbuiltins\neval\n.";
        expect_pickle_fail(builtins, sizeof(builtins) - 1, "refusing global 'builtins.eval'");
        static const char list_op[] = "\x80\x02]q\0.";
        expect_pickle_fail(list_op, sizeof(list_op) - 1, "refusing opcode ']'");
        static const char inst_op[] = "\x80\x02}(\x93.";
        expect_pickle_fail(inst_op, sizeof(inst_op) - 1, "refusing opcode 0x93");
        static const char underflow[] = "\x80\x02u.";
        expect_pickle_fail(underflow, sizeof(underflow) - 1, "pickle:");
        static const char not_dict[] = "\x80\x02K\x05.";
        expect_pickle_fail(not_dict, sizeof(not_dict) - 1, "not a dict");
        static const char not_tensor[] = "\x80\x02}(X\x01\0\0\0aK\x01u.";
        expect_pickle_fail(not_tensor, sizeof(not_tensor) - 1, "'a' is not a tensor");
        static const char bad_memo[] = "\x80\x02h\x07.";
        expect_pickle_fail(bad_memo, sizeof(bad_memo) - 1, "memo 7 is unset");
        static const char no_stop[] = "\x80\x02}";
        expect_pickle_fail(no_stop, sizeof(no_stop) - 1, "truncated");
        static const char proto9[] = "\x80\x09}.";
        expect_pickle_fail(proto9, sizeof(proto9) - 1, "protocol 9");
        static const char empty[] = "\x80\x02}.";
        expect_pickle_fail(empty, sizeof(empty) - 1, "empty");
        static const char reduce_str[] = "\x80\x02X\x01\0\0\0a)R.";
        expect_pickle_fail(reduce_str, sizeof(reduce_str) - 1, "REDUCE");
        static const char long_str[] = "\x80\x02X\xff\xff\xff\xff";
        expect_pickle_fail(long_str, sizeof(long_str) - 1, "truncated");

        /* torch.save of a module's state_dict(): an OrderedDict with _metadata set by BUILD;
         * and protocol 4 framing (FRAME, MEMOIZE, SHORT_BINUNICODE) */
        for (int variant = 0; variant < 2; variant++) {
                Buf p = {};
                if (variant == 0) {
                        buf_put(&p, "\x80\x02", 2);
                        pk_global(&p, "collections", "OrderedDict");
                        buf_put(&p, ")R(", 3);
                        pk_tensor(&p, &base_tensors[0]);
                        buf_u8(&p, 'u');
                        buf_put(&p, "}\x8c\x09_metadata}s", 14); /* state {'_metadata': {}} */
                        buf_put(&p, "b.", 2);
                } else {
                        buf_put(&p, "\x80\x04\x95\x00\x01\0\0\0\0\0\0}\x94(", 14);
                        pk_tensor(&p, &base_tensors[0]);
                        buf_put(&p, "u.", 2);
                }
                build_pth(&b, NULL, 0, &p, 0, 0);
                TensorTable *t2;
                RwkvError e2;
                int r2 = open_buf(&b, &t2, &e2);
                if (r2 < 0) {
                        fprintf(stderr, "variant %d: %s\n", variant, error_message(&e2, r2));
                        exit(1);
                }
                CHECK(tensor_table_count(t2) == 1 && tensor_table_get(t2, "emb.weight"));
                tensor_table_free(t2);
                free(p.p);
        }

        /* big-endian checkpoints */
        Buf pk = {};
        pk_state_dict(&pk, base_tensors, 1);
        b.n = 0;
        zip_build(&b,
                  (ZipFileSpec[]){ { "m/data.pkl", pk.p, pk.n, 0 },
                                   { "m/byteorder", "big", 3, 0 },
                                   { "m/data/0", storage0, sizeof(storage0), 0 } },
                  3, 0);
        expect_fail(&b, "little-endian");
        free(pk.p);
        free(b.p);
}

static float half_to_float(uint16_t h) {
        uint32_t sign = (h >> 15) & 1, exp = (h >> 10) & 31, man = h & 1023;
        float v = exp == 0    ? ldexpf((float)man, -24)
                  : exp == 31 ? INFINITY
                              : ldexpf((float)(man | 1024), (int)exp - 25);
        return sign ? -v : v;
}

static void test_reference(void) {
        const char *dir = getenv("RWKV_REFERENCE_DIR");
        char path[4096];
        snprintf(path, sizeof(path), "%s/pth-rwkv7/rwkv7-L2-C128-V512-fp32.pth", dir ? dir : "");
        if (!dir || access(path, R_OK) < 0) {
                fprintf(stderr, "reference data absent: skipping the reference checkpoints\n");
                return;
        }
        TensorTable *t32, *t16, *tbf;
        RwkvError err = {};
        CHECK_OK(tensor_table_open(path, &t32, &err));
        snprintf(path, sizeof(path), "%s/pth-rwkv7/rwkv7-L2-C128-V512-fp16.pth", dir);
        CHECK_OK(tensor_table_open(path, &t16, &err));
        snprintf(path, sizeof(path), "%s/pth-rwkv7/rwkv7-L2-C128-V512-bf16.pth", dir);
        CHECK_OK(tensor_table_open(path, &tbf, &err));

        CHECK(tensor_table_count(t32) == 69 && tensor_table_count(t16) == 69 && tensor_table_count(tbf) == 69);
        const Tensor *e = tensor_table_get(t32, "emb.weight");
        CHECK(e && e->shape[0] == 512 && e->shape[1] == 128 && e->dtype == DTYPE_F32);
        CHECK(tensor_table_get(t32, "head.weight"));
        CHECK(!tensor_table_get(t32, "blocks.0.att.v0"));
        CHECK(tensor_table_get(t32, "blocks.1.att.v0"));
        const Tensor *rk = tensor_table_get(t32, "blocks.0.att.r_k");
        CHECK(rk && rk->n_dims == 2 && rk->shape[0] == 2 && rk->shape[1] == 64);

        /* same names, shapes and (rounded) values in every precision */
        for (size_t i = 0; i < tensor_table_count(t32); i++) {
                const char *name = tensor_table_name_at(t32, i);
                const Tensor *a = tensor_table_at(t32, i), *h = tensor_table_get(t16, name),
                             *bf = tensor_table_get(tbf, name);
                CHECK(h && bf && h->dtype == DTYPE_F16 && bf->dtype == DTYPE_BF16);
                CHECK(h->n_dims == a->n_dims && memcmp(h->shape, a->shape, a->n_dims * sizeof(uint64_t)) == 0);
                CHECK(bf->n_dims == a->n_dims && memcmp(bf->shape, a->shape, a->n_dims * sizeof(uint64_t)) == 0);
                const float *f = a->data;
                const uint16_t *hv = h->data, *bv = bf->data;
                for (uint64_t k = 0; k < a->nbytes / 4; k++) {
                        uint32_t bits = (uint32_t)bv[k] << 16;
                        float b;
                        memcpy(&b, &bits, 4);
                        CHECK_NEAR(half_to_float(hv[k]), f[k], 1e-3 * fabsf(f[k]) + 1e-7);
                        CHECK_NEAR(b, f[k], 8e-3 * fabsf(f[k]) + 1e-30);
                }
        }
        tensor_table_free(t32);
        tensor_table_free(t16);
        tensor_table_free(tbf);
}

/* Limits of the pickle machine: stack depth and memo indices are capped, not trusted. */
static void test_pickle_limits(void) {
        Buf p = {};
        buf_put(&p, "\x80\x02", 2);
        for (int i = 0; i < 70000; i++)
                buf_u8(&p, 'N');
        buf_u8(&p, '.');
        PickleTensor *ts = NULL;
        size_t n;
        RwkvError err = {};
        CHECK(pickle_load_state_dict(p.p, p.n, &ts, &n, &err) == -E2BIG);
        CHECK(strstr(err.msg, "stack deeper"));
        p.n = 0;
        buf_put(&p, "\x80\x02}r\xff\xff\xff\x7f.", 9); /* LONG_BINPUT 2^31-1 */
        CHECK(pickle_load_state_dict(p.p, p.n, &ts, &n, &err) == -E2BIG);
        CHECK(strstr(err.msg, "memo index"));
        free(p.p);
}

int main(void) {
        for (size_t i = 0; i < sizeof(storage0); i++)
                storage0[i] = (uint8_t)(i * 13 + 7);
        memset(storage1, 0x3c, sizeof(storage1));
        memset(storage2, 0x3f, sizeof(storage2));
        test_valid();
        test_hostile();
        test_pickle_limits();
        test_reference();
        return 0;
}
