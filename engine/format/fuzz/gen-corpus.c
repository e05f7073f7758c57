/* gen-corpus.c: writes the seed corpora of the model-file fuzz targets (small, valid or nearly
 * valid files of every kind the loaders accept). Run by hand after a format change:
 *   build/engine/format/tests/gen-format-corpus engine/format/fuzz */
#include <sys/stat.h>

#include "engine/format/native-writer.h"
#include "engine/format/tests/builder.h"

static const char *root;

static void save(const char *corpus, const char *name, const void *p, size_t n) {
        char path[4096];
        snprintf(path, sizeof(path), "%s/corpus-%s", root, corpus);
        (void)mkdir(path, 0755);
        snprintf(path, sizeof(path), "%s/corpus-%s/%s", root, corpus, name);
        FILE *f = fopen(path, "we");
        CHECK(f);
        CHECK(fwrite(p, 1, n, f) == n);
        fclose(f);
}

static void bin_tensor(Buf *b, const char *name, uint32_t type, uint32_t n_dims, const uint32_t *dims, size_t bytes) {
        buf_u32(b, n_dims);
        buf_u32(b, (uint32_t)strlen(name));
        buf_u32(b, type);
        for (uint32_t i = 0; i < n_dims; i++)
                buf_u32(b, dims[i]);
        buf_str(b, name);
        for (size_t i = 0; i < bytes; i++)
                buf_u8(b, (uint8_t)(i % 2 ? 0x30 : i)); /* f16 scales 0x30xx: finite */
}

static void gen_bin(void) {
        Buf b = {};
        uint32_t header[6] = { 0x67676d66, 101, 256, 32, 1, 1 };
        for (int i = 0; i < 6; i++)
                buf_u32(&b, header[i]);
        bin_tensor(&b, "emb.weight", 1, 2, (uint32_t[]){ 32, 4 }, 4 * 32 * 2);
        bin_tensor(&b, "blocks.0.ln1.weight", 0, 1, (uint32_t[]){ 32 }, 32 * 4);
        bin_tensor(&b, "blocks.0.att.key.weight", 2, 2, (uint32_t[]){ 32, 2 }, 2 * 18);
        bin_tensor(&b, "blocks.0.att.value.weight", 3, 2, (uint32_t[]){ 32, 2 }, 2 * 20);
        bin_tensor(&b, "blocks.0.att.receptance.weight", 7, 2, (uint32_t[]){ 32, 2 }, 2 * 22);
        bin_tensor(&b, "blocks.0.att.output.weight", 8, 2, (uint32_t[]){ 32, 2 }, 2 * 24);
        bin_tensor(&b, "blocks.0.ffn.key.weight", 9, 2, (uint32_t[]){ 32, 2 }, 2 * 34);
        bin_tensor(&b, "blocks.0.att.time_faaaa", 0, 3, (uint32_t[]){ 1, 32, 1 }, 32 * 4);
        save("bin", "all-types-v101", b.p, b.n);
        save("bin", "truncated", b.p, b.n - 7);
        b.p[4] = 100; /* version 100: quantized tensors refused */
        save("bin", "v100-quantized", b.p, b.n);
        b.n = 0;
        header[1] = 100;
        for (int i = 0; i < 6; i++)
                buf_u32(&b, header[i]);
        bin_tensor(&b, "emb.weight", 1, 2, (uint32_t[]){ 32, 4 }, 4 * 32 * 2);
        bin_tensor(&b, "head.weight", 0, 2, (uint32_t[]){ 32, 4 }, 4 * 32 * 4);
        save("bin", "v100-float", b.p, b.n);
        free(b.p);
}

static void gen_pth(void) {
        static uint8_t s0[64 * 4], s1[32 * 2], s2[32 * 2];
        memset(s0, 0x3c, sizeof(s0));
        memset(s1, 0x3c, sizeof(s1));
        memset(s2, 0x3f, sizeof(s2));
        static const PthTensorSpec ts[] = {
                { "emb.weight", "FloatStorage", "0", 64, 0, 2, { 2, 32 }, { 32, 1 } },
                { "blocks.0.ln1.weight", "HalfStorage", "1", 32, 0, 1, { 32 }, { 1 } },
                { "blocks.0.att.x_r", "BFloat16Storage", "2", 32, 0, 3, { 1, 1, 32 }, { 32, 32, 1 } },
                { "view", "FloatStorage", "0", 64, 32, 1, { 32 }, { 1 } },
        };
        Buf pk = {}, b = {};
        pk_state_dict(&pk, ts, 4);
        save("pth", "state-dict.pkl", pk.p, pk.n);
        ZipFileSpec files[] = {
                { "archive/data.pkl", pk.p, pk.n, 0 },   { "archive/byteorder", "little", 6, 0 },
                { "archive/data/0", s0, sizeof(s0), 0 }, { "archive/data/1", s1, sizeof(s1), 0 },
                { "archive/data/2", s2, sizeof(s2), 0 }, { "archive/version", "3\n", 2, 0 },
        };
        zip_build(&b, files, ELEMENTSOF(files), 0);
        save("pth", "state-dict.pth", b.p, b.n);
        b.n = 0;
        zip_build(&b, files, ELEMENTSOF(files), 1);
        save("pth", "state-dict-zip64.pth", b.p, b.n);
        static const char hostile[] = "\x80\x02"
                                      "cos\nsystem\n"
                                      "X\x02\0\0\0ls"
                                      "\x85R.";
        save("pth", "global-os-system.pkl", hostile, sizeof(hostile) - 1);
        free(pk.p);
        free(b.p);
}

static void gen_rwkv(const char *tmpdir) {
        static const struct {
                const char *name;
                bool vocab;
        } variants[] = { { "all-types.rwkv", false }, { "all-types-vocab.rwkv", true } };
        for (size_t v = 0; v < ELEMENTSOF(variants); v++) {
                char path[4096];
                snprintf(path, sizeof(path), "%s/seed.rwkv", tmpdir);
                NativeWriter *w;
                RwkvError err = {};
                CHECK_OK(native_writer_new(path, &w, &err));
                TensorTableMeta meta = { .arch = 70, .n_layer = 1, .n_embd = 32, .n_vocab = 2, .wtype = DTYPE_Q8_0 };
                native_writer_set_meta(w, &meta, PARAM_CONVENTION_PTH);
                if (variants[v].vocab)
                        CHECK_OK(native_writer_set_vocab(w, "1 'a' 1\n2 'b' 1\n", 16, &err));
                CHECK_OK(native_writer_add_tensor(w, "emb.weight", DTYPE_F32, 2, (uint64_t[]){ 2, 32 }, &err));
                CHECK_OK(native_writer_add_tensor(w, "ln.weight", DTYPE_F16, 1, (uint64_t[]){ 32 }, &err));
                CHECK_OK(native_writer_add_tensor(w, "x", DTYPE_BF16, 3, (uint64_t[]){ 1, 1, 32 }, &err));
                CHECK_OK(native_writer_add_tensor(w, "q8.weight", DTYPE_Q8_0, 2, (uint64_t[]){ 2, 32 }, &err));
                CHECK_OK(native_writer_add_tensor(w, "q4.weight", DTYPE_Q4_0, 2, (uint64_t[]){ 2, 32 }, &err));
                CHECK_OK(native_writer_add_tensor(w, "x16.weight", DTYPE_Q8_0X16, 2, (uint64_t[]){ 16, 32 }, &err));
                CHECK_OK(native_writer_add_tensor(w, "q4x16.weight", DTYPE_Q4_0X16, 2, (uint64_t[]){ 16, 32 }, &err));
                CHECK_OK(native_writer_begin(w, &err));
                uint8_t bytes[256 + 64 + 64 + 68 + 36 + 16 * 36 + 16 * 20];
                for (size_t i = 0; i < sizeof(bytes); i++)
                        bytes[i] = (uint8_t)(i % 2 ? 0x30 : i);
                CHECK_OK(native_writer_write(w, bytes, sizeof(bytes), &err));
                CHECK_OK(native_writer_finish(w, NULL, &err));
                native_writer_free(w);
                Buf b = {};
                FILE *f = fopen(path, "re");
                CHECK(f);
                uint8_t tmp[4096];
                size_t k;
                while ((k = fread(tmp, 1, sizeof(tmp), f)) > 0)
                        buf_put(&b, tmp, k);
                fclose(f);
                unlink(path);
                save("rwkv", variants[v].name, b.p, b.n);
                if (v == 0)
                        save("rwkv", "truncated.rwkv", b.p, b.n / 2);
                free(b.p);
        }
}

int main(int argc, char **argv) {
        if (argc != 2) {
                fprintf(stderr, "usage: %s DIR (engine/format/fuzz)\n", argv[0]);
                return 2;
        }
        root = argv[1];
        char tmp[] = "/tmp/gen-corpus-XXXXXX";
        CHECK(mkdtemp(tmp));
        gen_bin();
        gen_pth();
        gen_rwkv(tmp);
        rmdir(tmp);
        return 0;
}
