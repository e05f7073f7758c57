/* test-vocab.c: which tokenizer a model gets. Byte-level for vocabulary 256; the World tokenizer
 * from the file or from ModelLoadOptions.vocab_path; none otherwise; and a vocabulary larger than
 * the model's embedding is refused (its ids would index past the matrices). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/arch/model.h"
#include "engine/format/convert.h"
#include "tests/lib/check.h"

static void write_random(const char *path, uint32_t vocab) {
        RandomModelOptions o = {
                .version = 7,
                .n_layer = 1,
                .n_embd = 64,
                .n_vocab = vocab,
                .seed = 5,
                .type = DTYPE_F16,
        };
        uint8_t hash[32];
        RwkvError err = {};
        int r = model_write_random(&o, path, hash, &err);
        if (r < 0) {
                fprintf(stderr, "random model: %s\n", error_message(&err, r));
                exit(1);
        }
}

static char path[4096];

static void remove_tmp(void) {
        if (path[0])
                unlink(path);
}

int main(void) {
        const char *dir = test_reference_dir();
        const char *tmp = getenv("TMPDIR");
        char vocab[4096];
        snprintf(path, sizeof(path), "%s/rwkvd-test-vocab-%d.rwkv", tmp && *tmp ? tmp : "/tmp", (int)getpid());
        atexit(remove_tmp);
        snprintf(vocab, sizeof(vocab), "%s/rwkv_vocab_v20230424.txt", dir);

        Model *m = NULL;
        RwkvError err = {};

        /* a World-sized model without a vocabulary has no tokenizer (eval still works) */
        write_random(path, 65536);
        CHECK_OK(model_load(path, NULL, &m, &err));
        CHECK(model_tokenizer(m) == NULL);
        model_free(m);

        /* ... and the World tokenizer when given one */
        CHECK_OK(model_load(path, &(ModelLoadOptions){ .vocab_path = vocab }, &m, &err));
        const Tokenizer *t = model_tokenizer(m);
        CHECK(t && !tokenizer_is_bytes(t));
        uint32_t *ids = NULL;
        size_t n = 0;
        CHECK_OK(tokenizer_encode_all(t, (const uint8_t *)"Hello world", 11, &ids, &n));
        CHECK(n >= 1 && n <= 3);
        for (size_t i = 0; i < n; i++)
                CHECK(ids[i] < model_info(m)->n_vocab);
        /* run what the tokenizer made, to be sure the ids are usable */
        float *state = malloc(model_info(m)->state_floats * sizeof(float)),
              *logits = malloc(model_info(m)->n_vocab * sizeof(float));
        EvalCtx *ctx = NULL;
        CHECK(state && logits);
        CHECK_OK(evalctx_new(m, NULL, 1, 0, &ctx));
        model_state_reset(m, state);
        CHECK_OK(model_eval_sequence(ctx, state, ids, n, logits));
        evalctx_free(ctx);
        free(state);
        free(logits);
        free(ids);
        model_free(m);

        /* a vocabulary file that does not exist or does not parse is an error, not a silent fallback */
        CHECK(model_load(path, &(ModelLoadOptions){ .vocab_path = "/nonexistent/vocab.txt" }, &m, &err) < 0);
        printf("missing vocabulary: %s\n", err.msg);

        /* a small model cannot take the World vocabulary */
        write_random(path, 512);
        memset(&err, 0, sizeof(err));
        int r = model_load(path, &(ModelLoadOptions){ .vocab_path = vocab }, &m, &err);
        printf("512-token model + World vocabulary: %d %s\n", r, err.msg);
        CHECK(r == -EINVAL && strstr(err.msg, "tokenizer"));

        /* vocabulary 256 is byte-level whatever else is given */
        char tiny[4096];
        snprintf(tiny, sizeof(tiny), "%s/tiny-rwkv/tiny-rwkv-7v0-834K-FP32.bin", dir);
        CHECK_OK(model_load(tiny, &(ModelLoadOptions){ .vocab_path = vocab }, &m, &err));
        CHECK(model_tokenizer(m) && tokenizer_is_bytes(model_tokenizer(m)));
        model_free(m);

        unlink(path);
        return 0;
}
