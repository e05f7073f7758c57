/* test-native.c: the native .rwkv format: writer -> reader round trip, hash, zero-copy open (RSS),
 * atomic writing, and the hostile-file classes (truncation, sizes, offsets, types, names). */
#include <dirent.h>
#include <inttypes.h>
#include <sodium.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "engine/format/native-format.h"
#include "engine/format/native-writer.h"
#include "engine/format/tensor-table-private.h"
#include "engine/format/tensor-table.h"
#include "engine/format/tests/builder.h"

static char dir[] = "/tmp/test-native-XXXXXX";

static uint8_t f32_data[4 * 32 * 4], f16_data[32 * 2], bf16_data[2 * 32 * 2], q8_data[2 * 68], q4_data[3 * 36];
static const char vocab_text[] = "1 '\\x00' 1\n2 'a' 1\n";

static void fill(void) {
        for (size_t i = 0; i < sizeof(f32_data) / 4; i++) {
                float v = (float)i * 0.25f - 3.0f;
                memcpy(f32_data + 4 * i, &v, 4);
        }
        for (size_t i = 0; i < sizeof(f16_data); i++)
                f16_data[i] = (uint8_t)(i % 2 ? 0x3c : i);
        for (size_t i = 0; i < sizeof(bf16_data); i++)
                bf16_data[i] = (uint8_t)(i % 2 ? 0x3f : i);
        memset(q8_data, 0x11, sizeof(q8_data)); /* scale 0x1111: finite */
        memset(q4_data, 0x22, sizeof(q4_data));
}

static int write_model(const char *path, bool with_vocab, uint8_t hash[32], RwkvError *err) {
        NativeWriter *w;
        int r = native_writer_new(path, &w, err);
        if (r < 0)
                return r;
        TensorTableMeta meta = { .arch = 70,
                                 .n_layer = 1,
                                 .n_embd = 32,
                                 .n_vocab = 4,
                                 .n_head = 1,
                                 .head_size = 32,
                                 .n_ffn = 128,
                                 .tokenizer = MODEL_TOKENIZER_BYTES,
                                 .wtype = DTYPE_Q8_0 };
        native_writer_set_meta(w, &meta, PARAM_CONVENTION_PTH);
        if (with_vocab)
                CHECK_OK(native_writer_set_vocab(w, vocab_text, strlen(vocab_text), err));
        CHECK_OK(native_writer_add_tensor(w, "emb.weight", DTYPE_F32, 2, (uint64_t[]){ 4, 32 }, err));
        CHECK_OK(native_writer_add_tensor(w, "ln0.weight", DTYPE_F16, 1, (uint64_t[]){ 32 }, err));
        CHECK_OK(native_writer_add_tensor(w, "blocks.0.att.x_r", DTYPE_BF16, 3, (uint64_t[]){ 1, 2, 32 }, err));
        CHECK_OK(native_writer_add_tensor(w, "blocks.0.att.key.weight", DTYPE_Q8_0, 2, (uint64_t[]){ 2, 64 }, err));
        CHECK_OK(native_writer_add_tensor(w, "head.weight", DTYPE_Q4_0, 2, (uint64_t[]){ 3, 64 }, err));
        CHECK_OK(native_writer_begin(w, err));
        /* in odd chunk sizes, across tensor boundaries */
        Buf all = {};
        buf_put(&all, f32_data, sizeof(f32_data));
        buf_put(&all, f16_data, sizeof(f16_data));
        buf_put(&all, bf16_data, sizeof(bf16_data));
        buf_put(&all, q8_data, sizeof(q8_data));
        buf_put(&all, q4_data, sizeof(q4_data));
        for (size_t off = 0; off < all.n; off += 77)
                CHECK_OK(native_writer_write(w, all.p + off, MIN((size_t)77, all.n - off), err));
        free(all.p);
        r = native_writer_finish(w, hash, err);
        native_writer_free(w);
        return r;
}

static void read_file(const char *path, Buf *b) {
        FILE *f = fopen(path, "re");
        CHECK(f);
        b->n = 0;
        uint8_t tmp[4096];
        size_t k;
        while ((k = fread(tmp, 1, sizeof(tmp), f)) > 0)
                buf_put(b, tmp, k);
        fclose(f);
}

static int dir_entries(void) {
        DIR *d = opendir(dir);
        CHECK(d);
        int n = 0;
        struct dirent *de;
        while ((de = readdir(d)))
                n += de->d_name[0] != '.';
        closedir(d);
        return n;
}

static void test_round_trip(void) {
        char path[256];
        snprintf(path, sizeof(path), "%s/m.rwkv", dir);
        uint8_t hash[32], hash2[32], h[32];
        RwkvError err = {};
        CHECK_OK(write_model(path, true, hash, &err));
        CHECK(dir_entries() == 1); /* no temporary left behind */

        TensorTable *t;
        CHECK_OK(tensor_table_open(path, &t, &err));
        CHECK(tensor_table_format(t) == MODEL_FORMAT_RWKV);
        CHECK_STREQ(tensor_table_format_name(t), "rwkv");
        CHECK(tensor_table_convention(t) == PARAM_CONVENTION_PTH);
        const TensorTableMeta *m = tensor_table_meta(t);
        CHECK(m->arch == 70 && m->n_layer == 1 && m->n_embd == 32 && m->n_vocab == 4 && m->n_ffn == 128);
        CHECK(m->tokenizer == MODEL_TOKENIZER_WORLD && m->wtype == DTYPE_Q8_0 && m->file_version == 1);
        size_t vlen;
        const char *v = tensor_table_vocab(t, &vlen);
        CHECK(v && vlen == strlen(vocab_text) && strcmp(v, vocab_text) == 0);
        CHECK_OK(tensor_table_hash(t, h));
        CHECK(memcmp(h, hash, 32) == 0);
        CHECK_OK(tensor_table_verify(t, &err));

        static const struct {
                const char *name;
                DType dtype;
                const void *data;
                size_t size;
        } expect[] = {
                { "emb.weight", DTYPE_F32, f32_data, sizeof(f32_data) },
                { "ln0.weight", DTYPE_F16, f16_data, sizeof(f16_data) },
                { "blocks.0.att.x_r", DTYPE_BF16, bf16_data, sizeof(bf16_data) },
                { "blocks.0.att.key.weight", DTYPE_Q8_0, q8_data, sizeof(q8_data) },
                { "head.weight", DTYPE_Q4_0, q4_data, sizeof(q4_data) },
        };
        CHECK(tensor_table_count(t) == ELEMENTSOF(expect));
        for (size_t i = 0; i < ELEMENTSOF(expect); i++) {
                const Tensor *x = tensor_table_get(t, expect[i].name);
                CHECK(x && x->dtype == expect[i].dtype && x->nbytes == expect[i].size);
                CHECK(memcmp(x->data, expect[i].data, expect[i].size) == 0);
                CHECK((uintptr_t)x->data % 64 == 0);
                CHECK_STREQ(tensor_table_name_at(t, i), expect[i].name);
        }
        const Tensor *x = tensor_table_get(t, "blocks.0.att.x_r");
        CHECK(x->n_dims == 3 && x->shape[0] == 1 && x->shape[1] == 2 && x->shape[2] == 32);
        tensor_table_free(t);

        /* deterministic: the same content gives the same name */
        CHECK_OK(write_model(path, true, hash2, &err));
        CHECK(memcmp(hash, hash2, 32) == 0);
        CHECK_OK(write_model(path, false, hash2, &err));
        CHECK(memcmp(hash, hash2, 32) != 0);
        CHECK_OK(tensor_table_open(path, &t, &err));
        CHECK(!tensor_table_vocab(t, NULL) && tensor_table_meta(t)->tokenizer == MODEL_TOKENIZER_BYTES);
        tensor_table_free(t);
        unlink(path);
}

static void test_writer_errors(void) {
        char path[256];
        snprintf(path, sizeof(path), "%s/bad.rwkv", dir);
        RwkvError err = {};
        NativeWriter *w;
        CHECK_OK(native_writer_new(path, &w, &err));
        CHECK(native_writer_add_tensor(w, "a", DTYPE_GGML_Q5_1, 1, (uint64_t[]){ 32 }, &err) == -EINVAL);
        CHECK(native_writer_add_tensor(w, "a", DTYPE_Q8_0, 1, (uint64_t[]){ 33 }, &err) < 0);
        CHECK(native_writer_add_tensor(w, "", DTYPE_F32, 1, (uint64_t[]){ 1 }, &err) == -EINVAL);
        CHECK_OK(native_writer_add_tensor(w, "a", DTYPE_F32, 1, (uint64_t[]){ 4 }, &err));
        CHECK(native_writer_add_tensor(w, "a", DTYPE_F32, 1, (uint64_t[]){ 4 }, &err) == -EEXIST);
        CHECK_OK(native_writer_begin(w, &err));
        CHECK(native_writer_add_tensor(w, "b", DTYPE_F32, 1, (uint64_t[]){ 4 }, &err) == -EBUSY);
        CHECK_OK(native_writer_write(w, f32_data, 8, &err));
        CHECK(native_writer_finish(w, NULL, &err) == -EINVAL);
        CHECK(strstr(err.msg, "incomplete"));
        CHECK(native_writer_write(w, f32_data, 12, &err) == -EINVAL);
        CHECK(dir_entries() == 1);
        native_writer_free(w);
        CHECK(dir_entries() == 0); /* an unfinished file never appears under its name */
        CHECK(access(path, F_OK) < 0);
}

static void expect_fail(const Buf *b, const char *needle) {
        TensorTable *t = NULL;
        RwkvError err = {};
        int r = tensor_table_open_memory(b->p, b->n, &t, &err);
        if (r >= 0 || !strstr(err.msg, needle)) {
                fprintf(stderr, "expected failure with '%s', got r=%d msg='%s'\n", needle, r, err.msg);
                exit(1);
        }
}

static void put_le32(uint8_t *p, uint32_t v) {
        for (int i = 0; i < 4; i++)
                p[i] = (uint8_t)(v >> (8 * i));
}
static void put_le64(uint8_t *p, uint64_t v) {
        for (int i = 0; i < 8; i++)
                p[i] = (uint8_t)(v >> (8 * i));
}

static void test_hostile(void) {
        char path[256];
        snprintf(path, sizeof(path), "%s/h.rwkv", dir);
        uint8_t hash[32];
        RwkvError err = {};
        CHECK_OK(write_model(path, true, hash, &err));
        Buf good = {}, b = {};
        read_file(path, &good);
        unlink(path);
        /* aligned copies so that in-place tensors stay 64-aligned like a mapping */
        uint8_t *base = aligned_alloc(64, ALIGN_UP(good.n, (size_t)64));
        CHECK(base);
#define RESET() (memcpy(base, good.p, good.n), b.p = base, b.n = good.n)
        const size_t rec1 = NATIVE_HEADER_SIZE + NATIVE_RECORD_SIZE; /* record of tensor 1 */

        for (size_t n = 0; n < good.n; n++) {
                RESET();
                b.n = n;
                TensorTable *t = NULL;
                CHECK(tensor_table_open_memory(b.p, b.n, &t, &err) < 0);
        }
        RESET();
        b.n = 100;
        expect_fail(&b, "truncated header");
        RESET();
        b.n -= 1;
        expect_fail(&b, "truncated or extended");
        RESET();
        put_le32(base + NH_VERSION, 2);
        expect_fail(&b, "format version 2");
        RESET();
        base[200] = 1;
        expect_fail(&b, "reserved");
        RESET();
        put_le32(base + NH_CONVENTION, 7);
        expect_fail(&b, "convention");
        RESET();
        put_le32(base + NH_TOKENIZER, 3);
        expect_fail(&b, "tokenizer kind");
        RESET();
        put_le32(base + NH_N_TENSORS, 0x7fffffff);
        expect_fail(&b, "tensors");
        RESET();
        put_le32(base + NH_N_TENSORS, 100000);
        expect_fail(&b, "index outside");
        RESET();
        put_le64(base + NH_STRINGS_OFFSET, UINT64_MAX - 3);
        expect_fail(&b, "string table outside");
        RESET();
        put_le64(base + NH_DATA_OFFSET, 65);
        expect_fail(&b, "data region");
        RESET();
        put_le64(base + NH_DATA_SIZE, UINT64_MAX);
        expect_fail(&b, "data region");
        RESET();
        put_le64(base + NH_VOCAB_SIZE, read_le64(base + NH_VOCAB_SIZE) - 1); /* the NUL is not where it should be */
        expect_fail(&b, "vocabulary");
        RESET();
        put_le64(base + NH_VOCAB_SIZE, UINT64_MAX);
        expect_fail(&b, "vocabulary");

        RESET();
        base[rec1 + NR_DTYPE] = DTYPE_GGML_Q5_1;
        expect_fail(&b, "tensor 'ln0.weight': data type 19 is not a native type");
        RESET();
        base[rec1 + NR_N_DIMS] = 5;
        expect_fail(&b, "5 dimensions");
        RESET();
        base[rec1 + NR_SHAPE + 8 * 2] = 1;
        expect_fail(&b, "unused dimension 2 is not 0");
        RESET();
        base[rec1 + NR_N_DIMS] = 0;
        expect_fail(&b, "0 dimensions");
        RESET();
        put_le64(base + rec1 + NR_SHAPE, 0);
        expect_fail(&b, "dimension 0 is 0");
        RESET();
        base[rec1 + NR_N_DIMS] = 4;
        put_le64(base + rec1 + NR_SHAPE, UINT64_MAX / 2);
        for (int d = 1; d < 4; d++)
                put_le64(base + rec1 + NR_SHAPE + 8 * d, UINT64_MAX / 2);
        expect_fail(&b, "overflow");
        RESET();
        put_le64(base + rec1 + NR_NBYTES, 62);
        expect_fail(&b, "needs 64");
        RESET();
        put_le64(base + rec1 + NR_DATA_OFFSET, read_le64(base + rec1 + NR_DATA_OFFSET) + 8);
        expect_fail(&b, "not 64-byte aligned");
        RESET();
        put_le64(base + rec1 + NR_DATA_OFFSET, good.n);
        expect_fail(&b, "outside the data region");
        RESET();
        put_le64(base + rec1 + NR_DATA_OFFSET, 0);
        expect_fail(&b, "outside the data region");
        RESET();
        put_le32(base + rec1 + NR_NAME_OFFSET, 0); /* points at "emb.weight": a duplicate */
        base[rec1 + NR_NAME_LEN] = 10;
        expect_fail(&b, "duplicate tensor 'emb.weight'");
        RESET();
        base[rec1 + NR_NAME_LEN] = 3; /* "ln0" not followed by its NUL */
        expect_fail(&b, "not NUL-terminated");
        RESET();
        put_le32(base + rec1 + NR_NAME_OFFSET, 0xfffffff0u);
        expect_fail(&b, "name outside");
        RESET();
        base[rec1 + NR_RESERVED] = 1;
        expect_fail(&b, "reserved field");

        /* corrupted weights open (nothing is read at open) but fail verification */
        RESET();
        TensorTable *t;
        base[good.n - 100] ^= 0x40;
        CHECK_OK(tensor_table_open_memory(b.p, b.n, &t, &err));
        CHECK(tensor_table_verify(t, &err) == -EBADMSG && strstr(err.msg, "hash"));
        tensor_table_free(t);

        /* random bit flips: never a crash */
        uint32_t s = 99;
        for (int round = 0; round < 3000; round++) {
                RESET();
                for (int k = 0; k < 1 + round % 3; k++) {
                        s = s * 1103515245u + 12345u;
                        base[(s >> 8) % (round % 2 ? 1024 : good.n)] ^= (uint8_t)(1u << (s % 8));
                }
                t = NULL;
                if (tensor_table_open_memory(b.p, b.n, &t, &err) >= 0) {
                        (void)tensor_table_verify(t, &err);
                        tensor_table_free(t);
                }
        }
        free(base);
        free(good.p);
}

/* A non-finite value in a valid file: found by verify, not at open. */
static void test_nonfinite(void) {
        char path[256];
        snprintf(path, sizeof(path), "%s/nan.rwkv", dir);
        RwkvError err = {};
        NativeWriter *w;
        CHECK_OK(native_writer_new(path, &w, &err));
        CHECK_OK(native_writer_add_tensor(w, "q", DTYPE_Q8_0, 2, (uint64_t[]){ 2, 32 }, &err));
        CHECK_OK(native_writer_begin(w, &err));
        uint8_t rows[68] = {};
        rows[34] = 0x00, rows[35] = 0x7e; /* the second row's scale is an f16 NaN */
        CHECK_OK(native_writer_write(w, rows, sizeof(rows), &err));
        CHECK_OK(native_writer_finish(w, NULL, &err));
        native_writer_free(w);
        TensorTable *t;
        CHECK_OK(tensor_table_open(path, &t, &err));
        CHECK(tensor_table_verify(t, &err) == -EBADMSG);
        CHECK(strstr(err.msg, "tensor 'q': non-finite scale at element 32"));
        tensor_table_free(t);
        unlink(path);
}

static long rss_kib(void) {
        FILE *f = fopen("/proc/self/statm", "re");
        CHECK(f);
        long size, resident;
        CHECK(fscanf(f, "%ld %ld", &size, &resident) == 2);
        fclose(f);
        return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

/* Opening maps, never reads: a 200 MB model must not raise RSS by anything like 200 MB. */
static void test_zero_copy(void) {
        char path[256];
        snprintf(path, sizeof(path), "%s/big.rwkv", dir);
        const uint64_t rows = 1600, cols = 32768; /* 1600 x 32768 f32 = 200 MiB */
        RwkvError err = {};
        NativeWriter *w;
        CHECK_OK(native_writer_new(path, &w, &err));
        CHECK_OK(native_writer_add_tensor(w, "big.weight", DTYPE_F32, 2, (uint64_t[]){ rows, cols }, &err));
        CHECK_OK(native_writer_add_tensor(w, "small", DTYPE_F32, 1, (uint64_t[]){ 3 }, &err));
        CHECK_OK(native_writer_begin(w, &err));
        float *row = calloc(cols, sizeof(float));
        CHECK(row);
        for (uint64_t r = 0; r < rows; r++) {
                row[0] = (float)r;
                CHECK_OK(native_writer_write(w, row, cols * sizeof(float), &err));
        }
        CHECK_OK(native_writer_write(w, (float[]){ 1, 2, 3 }, 12, &err));
        free(row);
        CHECK_OK(native_writer_finish(w, NULL, &err));
        native_writer_free(w);
        /* drop our own dirty page-cache pages from the picture: the pages are not ours anyway */
        long before = rss_kib();
        TensorTable *t;
        CHECK_OK(tensor_table_open(path, &t, &err));
        long after = rss_kib();
        const Tensor *x = tensor_table_get(t, "big.weight");
        CHECK(x && x->nbytes == rows * cols * 4);
        fprintf(stderr, "open of a %" PRIu64 " MiB model: RSS %+ld KiB\n", x->nbytes >> 20, after - before);
        CHECK(after - before < 8 * 1024);
        /* the data is there, in place */
        CHECK(((const float *)x->data)[cols * 1234] == 1234.0f);
        const Tensor *s = tensor_table_get(t, "small");
        CHECK(((const float *)s->data)[2] == 3.0f);
        tensor_table_free(t);
        unlink(path);
}

/* Shared_Clean (KiB) of the mapping that contains p, from /proc/self/smaps. */
static long shared_clean_kib(const void *p) {
        FILE *f = fopen("/proc/self/smaps", "re");
        CHECK(f);
        char line[512];
        bool in = false;
        long kib = -1;
        while (fgets(line, sizeof(line), f)) {
                unsigned long lo, hi;
                if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2 && strchr(line, '-') < strchr(line, ' '))
                        in = (uintptr_t)p >= lo && (uintptr_t)p < hi;
                else if (in && sscanf(line, "Shared_Clean: %ld kB", &kib) == 1)
                        break;
        }
        fclose(f);
        return kib;
}

/* Two processes serving one model share its page-cache pages (MAP_SHARED, read-only). */
static void test_shared_pages(void) {
        char path[256];
        snprintf(path, sizeof(path), "%s/shared.rwkv", dir);
        const uint64_t n = 4 << 20; /* 16 MiB of f32 */
        RwkvError err = {};
        NativeWriter *w;
        CHECK_OK(native_writer_new(path, &w, &err));
        CHECK_OK(native_writer_add_tensor(w, "w", DTYPE_F32, 2, (uint64_t[]){ n / 1024, 1024 }, &err));
        CHECK_OK(native_writer_begin(w, &err));
        float *row = calloc(1024, sizeof(float));
        CHECK(row);
        for (uint64_t r = 0; r < n / 1024; r++)
                CHECK_OK(native_writer_write(w, row, 1024 * sizeof(float), &err));
        free(row);
        CHECK_OK(native_writer_finish(w, NULL, &err));
        native_writer_free(w);

        TensorTable *t;
        CHECK_OK(tensor_table_open(path, &t, &err));
        const Tensor *x = tensor_table_get(t, "w");
        volatile float sum = 0;
        for (uint64_t i = 0; i < n; i += 1024)
                sum += ((const float *)x->data)[i];
        int ready[2], done[2];
        CHECK(pipe(ready) == 0 && pipe(done) == 0);
        pid_t pid = fork();
        CHECK(pid >= 0);
        if (pid == 0) {
                TensorTable *c;
                if (tensor_table_open(path, &c, NULL) < 0)
                        _exit(1);
                const Tensor *y = tensor_table_get(c, "w");
                volatile float s2 = 0;
                for (uint64_t i = 0; i < n; i += 1024)
                        s2 += ((const float *)y->data)[i];
                (void)s2;
                char b = 1;
                (void)!write(ready[1], &b, 1);
                (void)!read(done[0], &b, 1);
                _exit(0);
        }
        char b;
        CHECK(read(ready[0], &b, 1) == 1);
        long kib = shared_clean_kib(x->data);
        fprintf(stderr, "16 MiB model mapped by two processes: Shared_Clean %ld KiB\n", kib);
        CHECK(write(done[1], &b, 1) == 1);
        int status;
        CHECK(waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0);
        CHECK(kib >= (long)(n * 4 / 1024) * 9 / 10);
        close(ready[0]), close(ready[1]), close(done[0]), close(done[1]);
        (void)sum;
        tensor_table_free(t);
        unlink(path);
}

int main(void) {
        CHECK(mkdtemp(dir));
        fill();
        test_round_trip();
        test_writer_errors();
        test_hostile();
        test_nonfinite();
        test_zero_copy();
        test_shared_pages();
        CHECK(rmdir(dir) == 0);
        return 0;
}
