/* test-hostile.c: a model file that parses but does not describe a sane network is refused with an
 * error naming the tensor at fault, never a crash: missing tensors, wrong shapes, non-finite
 * parameters, unknown architectures, heads that do not divide the embedding.
 *
 * Each case rewrites the tiny RWKV-7 (and v5) rwkv.cpp file with one mutation into a temporary file. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/arch/model.h"
#include "tests/lib/check.h"

typedef struct Entry {
        char name[128];
        uint32_t n_dims, type;
        uint32_t dims[4]; /* as stored: reversed (ggml order) */
        uint8_t *data;
        size_t size;
        bool drop;
} Entry;

typedef struct File {
        uint32_t header[6];
        Entry e[512];
        size_t n;
} File;

static size_t type_bytes(uint32_t type, size_t nelem) {
        switch (type) {
        case 0:
                return nelem * 4;
        case 1:
                return nelem * 2;
        default:
                CHECK(!"only FP32/FP16 files are rewritten");
                return 0;
        }
}

static void file_read(File *f, const char *path) {
        FILE *fp = fopen(path, "re");
        CHECK(fp);
        CHECK(fread(f->header, 4, 6, fp) == 6);
        f->n = 0;
        for (;;) {
                uint32_t h[3];
                if (fread(h, 4, 3, fp) != 3)
                        break;
                CHECK(f->n < 512);
                Entry *e = &f->e[f->n++];
                memset(e, 0, sizeof(*e));
                e->n_dims = h[0];
                e->type = h[2];
                CHECK(e->n_dims >= 1 && e->n_dims <= 4 && h[1] < sizeof(e->name));
                CHECK(fread(e->dims, 4, e->n_dims, fp) == e->n_dims);
                CHECK(fread(e->name, 1, h[1], fp) == h[1]);
                size_t n = 1;
                for (uint32_t i = 0; i < e->n_dims; i++)
                        n *= e->dims[i];
                e->size = type_bytes(e->type, n);
                e->data = malloc(e->size);
                CHECK(e->data);
                CHECK(fread(e->data, 1, e->size, fp) == e->size);
        }
        fclose(fp);
}

static void file_write(const File *f, const char *path) {
        FILE *fp = fopen(path, "we");
        CHECK(fp);
        CHECK(fwrite(f->header, 4, 6, fp) == 6);
        for (size_t i = 0; i < f->n; i++) {
                const Entry *e = &f->e[i];
                if (e->drop)
                        continue;
                uint32_t h[3] = { e->n_dims, (uint32_t)strlen(e->name), e->type };
                CHECK(fwrite(h, 4, 3, fp) == 3);
                CHECK(fwrite(e->dims, 4, e->n_dims, fp) == e->n_dims);
                CHECK(fwrite(e->name, 1, h[1], fp) == h[1]);
                CHECK(fwrite(e->data, 1, e->size, fp) == e->size);
        }
        CHECK(fclose(fp) == 0);
}

static void file_free(File *f) {
        for (size_t i = 0; i < f->n; i++)
                free(f->e[i].data);
}

static Entry *find(File *f, const char *name) {
        for (size_t i = 0; i < f->n; i++)
                if (strcmp(f->e[i].name, name) == 0)
                        return &f->e[i];
        fprintf(stderr, "no tensor %s in the source file\n", name);
        exit(1);
}

static char tmp_path[4096];

/* Load path and expect failure -err with a message containing want (NULL: any). */
static void expect_fail(const char *what, int errnum, const char *want) {
        Model *m = NULL;
        RwkvError err = {};
        int r = model_load(tmp_path, NULL, &m, &err);
        printf("%-40s -> %d: %s\n", what, r, err.msg);
        CHECK(r < 0 && !m);
        if (errnum)
                CHECK(r == -errnum);
        CHECK(err.msg[0]);
        if (want && !strstr(err.msg, want)) {
                fprintf(stderr, "message '%s' does not mention '%s'\n", err.msg, want);
                exit(1);
        }
}

typedef void (*Mutation)(File *f);

static void run_mutation(const char *src, const char *what, Mutation mut, int errnum, const char *want) {
        File *f = calloc(1, sizeof(File));
        CHECK(f);
        file_read(f, src);
        mut(f);
        file_write(f, tmp_path);
        expect_fail(what, errnum, want);
        file_free(f);
        free(f);
}

static void drop_k_a(File *f) {
        find(f, "blocks.3.att.k_a")->drop = true;
}
static void drop_head(File *f) {
        find(f, "head.weight")->drop = true;
}
static void swap_w1(File *f) {
        Entry *e = find(f, "blocks.0.att.w1");
        uint32_t t = e->dims[0];
        e->dims[0] = e->dims[1];
        e->dims[1] = t;
}
static void nan_w0(File *f) {
        float nan = NAN;
        memcpy(find(f, "blocks.2.att.w0")->data + 4 * 7, &nan, 4);
}
static void inf_ln(File *f) {
        float inf = INFINITY;
        memcpy(find(f, "blocks.1.ln2.bias")->data, &inf, 4);
}
static void unknown_arch(File *f) {
        for (size_t i = 0; i < f->n; i++)
                if (strstr(f->e[i].name, ".att."))
                        f->e[i].drop = true;
}
static void no_r_k(File *f) {
        for (size_t i = 0; i < f->n; i++)
                if (strstr(f->e[i].name, ".att.k_k") || strstr(f->e[i].name, ".att.r_k"))
                        f->e[i].drop = true;
}
static void short_vector(File *f) {
        Entry *e = find(f, "blocks.4.att.k_k");
        e->dims[0] = 32; /* (1, 1, 32): half the channels */
        e->size /= 2;
}
static void odd_ffn(File *f) {
        /* ffn.key of layer 5 with one row less than layer 0 says */
        Entry *e = find(f, "blocks.5.ffn.key.weight");
        e->dims[1] -= 1;
        e->size -= e->dims[0] * 4;
}
static void bad_heads(File *f) {
        /* r_k claims 3 heads of 64: 192 channels in a 64-channel model */
        Entry *e = find(f, "blocks.0.att.r_k");
        e->dims[1] = 3;
        uint8_t *d = realloc(e->data, e->size * 3);
        CHECK(d);
        memcpy(d + e->size, d, e->size);
        memcpy(d + 2 * e->size, d, e->size);
        e->data = d;
        e->size *= 3;
}
static void drop_emb(File *f) {
        find(f, "emb.weight")->drop = true;
}
static void v5_decay_len(File *f) {
        Entry *e = find(f, "blocks.7.att.time_decay");
        e->dims[0] = 1, e->dims[1] = 1, e->dims[2] = 5; /* 5 heads' worth in an 8-head model */
        e->size = 5 * 4;
}

static void remove_tmp(void) {
        if (tmp_path[0])
                unlink(tmp_path);
}

int main(void) {
        const char *dir = test_reference_dir();
        char v7[4096], v5[4096];
        snprintf(v7, sizeof(v7), "%s/tiny-rwkv/tiny-rwkv-7v0-834K-FP32.bin", dir);
        snprintf(v5, sizeof(v5), "%s/tiny-rwkv/tiny-rwkv-5v1-730K-FP32.bin", dir);
        const char *tmp = getenv("TMPDIR");
        snprintf(tmp_path, sizeof(tmp_path), "%s/rwkvd-test-hostile-%d.bin", tmp && *tmp ? tmp : "/tmp", (int)getpid());
        atexit(remove_tmp);

        run_mutation(v7, "missing blocks.3.att.k_a", drop_k_a, ENOENT, "blocks.3.att.k_a");
        run_mutation(v7, "missing head.weight", drop_head, ENOENT, "head.weight");
        run_mutation(v7, "missing emb.weight", drop_emb, ENOENT, "emb.weight");
        run_mutation(v7, "transposed blocks.0.att.w1", swap_w1, EBADMSG, "blocks.0.att.w1' (64, 32)");
        run_mutation(v7, "NaN in blocks.2.att.w0", nan_w0, EBADMSG, "blocks.2.att.w0");
        run_mutation(v7, "inf in blocks.1.ln2.bias", inf_ln, EBADMSG, "blocks.1.ln2.bias");
        run_mutation(v7, "no attention: unknown architecture", unknown_arch, EPROTONOSUPPORT, "architecture");
        run_mutation(v7, "v7 without k_k and r_k", no_r_k, ENOENT, "blocks.0.att.r_k");
        run_mutation(v7, "short blocks.4.att.k_k", short_vector, EBADMSG, "blocks.4.att.k_k");
        run_mutation(v7, "blocks.5.ffn.key.weight rows", odd_ffn, EBADMSG, "blocks.5.ffn.key.weight");
        run_mutation(v7, "r_k heads exceed the embedding", bad_heads, EBADMSG, "r_k");
        run_mutation(v5, "v5 time_decay of 5 heads", v5_decay_len, EBADMSG, "blocks.7.att.time_decay");

        /* the untouched file still loads (the rewriter itself is faithful) */
        File *f = calloc(1, sizeof(File));
        CHECK(f);
        file_read(f, v7);
        file_write(f, tmp_path);
        file_free(f);
        free(f);
        Model *m = NULL;
        RwkvError err = {};
        CHECK_OK(model_load(tmp_path, NULL, &m, &err));
        CHECK(model_info(m)->arch == MODEL_ARCH_V7);
        model_free(m);

        unlink(tmp_path);
        return 0;
}
