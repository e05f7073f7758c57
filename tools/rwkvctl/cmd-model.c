/* cmd-model.c: `rwkvctl model info | convert | random`: model files, offline (no daemon).
 *
 * The byte formats live in engine/format/; the architecture (and so the shape a file describes) is
 * what engine/arch's model_load() makes of it, so `info` shows what the daemon would run. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "engine/arch/model.h"
#include "engine/format/convert.h"
#include "engine/format/tensor-table.h"
#include "tools/rwkvctl/rwkvctl.h"

#define VOCAB_MAX_BYTES ((size_t)64 << 20)

static void hex(const uint8_t h[32], char out[65]) {
        for (int i = 0; i < 32; i++)
                snprintf(out + 2 * i, 3, "%02x", h[i]);
}

static const char *tokenizer_name(ModelTokenizerKind k) {
        return k == MODEL_TOKENIZER_BYTES ? "bytes" : k == MODEL_TOKENIZER_WORLD ? "world" : "unknown";
}

static const char *convention_name(ParamConvention c) {
        return c == PARAM_CONVENTION_RWKVCPP ? "rwkv.cpp" : "pytorch";
}

static int parse_u32(const char *s, uint32_t *ret) {
        char *end;
        errno = 0;
        unsigned long long v = strtoull(s, &end, 10);
        if (errno || end == s || *end || s[0] == '-' || v > UINT32_MAX)
                return -EINVAL;
        *ret = (uint32_t)v;
        return 0;
}

static int parse_type(const char *s, int *ret) {
        DType t;
        if (dtype_from_name(s, &t) < 0 || !dtype_is_native(t))
                return -EINVAL;
        *ret = t;
        return 0;
}

static int read_vocab(const char *path, char **ret, size_t *ret_len) {
        _cleanup_(fclosep) FILE *f = fopen(path, "re");
        if (!f)
                return -errno;
        _cleanup_(freep) char *buf = NULL;
        size_t n = 0, cap = 0;
        for (;;) {
                if (n == cap) {
                        if (cap >= VOCAB_MAX_BYTES)
                                return -EFBIG;
                        cap = cap ? cap * 2 : 1 << 20;
                        char *b = realloc(buf, cap + 1);
                        if (!b)
                                return -ENOMEM;
                        buf = b;
                }
                size_t k = fread(buf + n, 1, cap - n, f);
                if (k == 0)
                        break;
                n += k;
        }
        if (ferror(f))
                return -EIO;
        buf[n] = 0;
        *ret = TAKE_PTR(buf);
        *ret_len = n;
        return 0;
}

/* The one-line result of convert and random: {"file", "size", "hash"} through json-c, which
 * escapes what a path may hold. */
static void print_written(const char *path, bool json, const char hash_hex[65]) {
        struct stat st = {};
        (void)stat(path, &st);
        if (json) {
                struct json_object *o = json_object_new_object();
                json_object_object_add(o, "file", json_object_new_string(path));
                json_object_object_add(o, "size", json_object_new_int64((int64_t)st.st_size));
                json_object_object_add(o, "hash", json_object_new_string(hash_hex));
                puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
                json_object_put(o);
        } else
                printf("wrote %s (%.1f MiB), hash %s\n", path, (double)st.st_size / (1 << 20), hash_hex);
}

/* ---- progress ---- */

typedef struct Bar {
        const char *label;
        time_t last;
        int last_pct;
} Bar;

static void bar_update(uint64_t done, uint64_t total, void *userdata) {
        Bar *b = userdata;
        int pct = total ? (int)(done * 100 / total) : 100;
        time_t now = time(NULL);
        if (pct == b->last_pct || (now == b->last && pct != 100))
                return;
        b->last = now;
        b->last_pct = pct;
        char bar[41];
        int fill = pct * 40 / 100;
        memset(bar, '#', (size_t)fill);
        memset(bar + fill, '-', (size_t)(40 - fill));
        bar[40] = 0;
        fprintf(stderr, "\r%s [%s] %3d%%", b->label, bar, pct);
        if (pct == 100)
                fputc('\n', stderr);
        fflush(stderr);
}

/* ---- info ---- */

static void help_info(void) {
        printf("rwkvctl model info FILE [--json] [--tensors] [--verify] [--vocab FILE]\n\n"
               "Describe a model file (.rwkv, rwkv.cpp .bin or PyTorch .pth): format, architecture, shape,\n"
               "data types, tokenizer, size and the BLAKE2b-256 hash that names it.\n\n"
               "  --json        one JSON object\n"
               "  --tensors     list every tensor\n"
               "  --verify      read everything: check the hash and that all values are finite\n"
               "  --vocab FILE  World vocabulary for a file that embeds none\n");
}

static int model_info_verb(int argc, char *argv[]) {
        enum { OPT_JSON = 0x100, OPT_TENSORS, OPT_VERIFY, OPT_VOCAB };
        static const struct option options[] = {
                { "help", no_argument, NULL, 'h' },
                { "json", no_argument, NULL, OPT_JSON },
                { "tensors", no_argument, NULL, OPT_TENSORS },
                { "verify", no_argument, NULL, OPT_VERIFY },
                { "vocab", required_argument, NULL, OPT_VOCAB },
                {},
        };
        bool json = arg_json, tensors = false, verify = false;
        const char *vocab = NULL;
        int c;
        optind = 0;
        while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0)
                switch (c) {
                case 'h':
                        help_info();
                        return 0;
                case OPT_JSON:
                        json = true;
                        break;
                case OPT_TENSORS:
                        tensors = true;
                        break;
                case OPT_VERIFY:
                        verify = true;
                        break;
                case OPT_VOCAB:
                        vocab = optarg;
                        break;
                default:
                        return 2;
                }
        if (optind + 1 != argc)
                return fail_usage("model info: expected one FILE (see --help)");
        const char *path = argv[optind];

        TensorTable *t = NULL;
        RwkvError err = {};
        int r = tensor_table_open(path, &t, &err);
        if (r < 0)
                return fail("model info: %s", error_message(&err, r));
        uint8_t hash[32];
        char hash_hex[65];
        r = tensor_table_hash(t, hash);
        if (r < 0) {
                tensor_table_free(t);
                return fail("model info: cannot hash '%s': %s", path, strerror(-r));
        }
        hex(hash, hash_hex);
        const char *verified = NULL;
        if (verify) {
                err = (RwkvError){};
                r = tensor_table_verify(t, &err);
                verified = r < 0 ? error_message(&err, r) : "ok";
        }

        /* what the engine makes of it: architecture and shape */
        Model *m = NULL;
        RwkvError merr = {};
        int mr = model_load(path, &(ModelLoadOptions){ .vocab_path = vocab }, &m, &merr);
        const ModelInfo *mi = mr >= 0 ? model_info(m) : NULL;
        const TensorTableMeta *meta = tensor_table_meta(t);

        uint64_t type_count[_DTYPE_MAX] = {}, type_bytes[_DTYPE_MAX] = {}, params = 0;
        for (size_t i = 0; i < tensor_table_count(t); i++) {
                const Tensor *x = tensor_table_at(t, i);
                type_count[x->dtype]++;
                type_bytes[x->dtype] += x->nbytes;
                params += tensor_nelem(x);
        }
        size_t vlen = 0;
        const char *vtext = tensor_table_vocab(t, &vlen);
        const char *tok = mi ? (model_tokenizer(m) ? (tokenizer_is_bytes(model_tokenizer(m)) ? "bytes" : "world")
                                                   : "none (give --vocab)")
                             : tokenizer_name(meta->tokenizer);

        if (json) {
                struct json_object *o = json_object_new_object();
                json_object_object_add(o, "file", json_object_new_string(path));
                json_object_object_add(o, "format", json_object_new_string(tensor_table_format_name(t)));
                json_object_object_add(o, "convention",
                                       json_object_new_string(convention_name(tensor_table_convention(t))));
                json_object_object_add(o, "size", json_object_new_int64((int64_t)tensor_table_file_size(t)));
                json_object_object_add(o, "hash", json_object_new_string(hash_hex));
                json_object_object_add(o, "tensors", json_object_new_int64((int64_t)tensor_table_count(t)));
                json_object_object_add(o, "parameters", json_object_new_int64((int64_t)params));
                json_object_object_add(o, "tokenizer", json_object_new_string(tok));
                json_object_object_add(o, "vocab_embedded", json_object_new_boolean(vtext != NULL));
                if (mi) {
                        json_object_object_add(o, "architecture", json_object_new_string(mi->arch_name));
                        json_object_object_add(o, "n_layer", json_object_new_int64(mi->n_layer));
                        json_object_object_add(o, "n_embd", json_object_new_int64(mi->n_embd));
                        json_object_object_add(o, "n_vocab", json_object_new_int64(mi->n_vocab));
                        json_object_object_add(o, "n_head", json_object_new_int64(mi->n_head));
                        json_object_object_add(o, "head_size", json_object_new_int64(mi->head_size));
                        json_object_object_add(o, "n_ffn", json_object_new_int64(mi->n_ffn));
                        json_object_object_add(o, "wtype", json_object_new_string(dtype_name(mi->wtype)));
                        json_object_object_add(o, "state_floats", json_object_new_int64((int64_t)mi->state_floats));
                } else
                        json_object_object_add(o, "load_error", json_object_new_string(error_message(&merr, mr)));
                struct json_object *types = json_object_new_object();
                for (int d = 0; d < _DTYPE_MAX; d++)
                        if (type_count[d]) {
                                struct json_object *e = json_object_new_object();
                                json_object_object_add(e, "tensors", json_object_new_int64((int64_t)type_count[d]));
                                json_object_object_add(e, "bytes", json_object_new_int64((int64_t)type_bytes[d]));
                                json_object_object_add(types, dtype_name((DType)d), e);
                        }
                json_object_object_add(o, "dtypes", types);
                if (verified)
                        json_object_object_add(o, "verify", json_object_new_string(verified));
                if (tensors) {
                        struct json_object *list = json_object_new_array();
                        for (size_t i = 0; i < tensor_table_count(t); i++) {
                                const Tensor *x = tensor_table_at(t, i);
                                struct json_object *e = json_object_new_object(), *shape = json_object_new_array();
                                json_object_object_add(e, "name", json_object_new_string(tensor_table_name_at(t, i)));
                                json_object_object_add(e, "dtype", json_object_new_string(dtype_name(x->dtype)));
                                for (uint32_t d = 0; d < x->n_dims; d++)
                                        json_object_array_add(shape, json_object_new_int64((int64_t)x->shape[d]));
                                json_object_object_add(e, "shape", shape);
                                json_object_object_add(e, "bytes", json_object_new_int64((int64_t)x->nbytes));
                                json_object_array_add(list, e);
                        }
                        json_object_object_add(o, "tensor_list", list);
                }
                puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
                json_object_put(o);
        } else {
                printf("file:          %s\n", path);
                printf("format:        %s (parameters: %s convention)\n", tensor_table_format_name(t),
                       convention_name(tensor_table_convention(t)));
                if (mi) {
                        printf("architecture:  %s\n", mi->arch_name);
                        printf("shape:         %u layers, embedding %u, vocabulary %u, %u heads of %u, ffn %u\n",
                               mi->n_layer, mi->n_embd, mi->n_vocab, mi->n_head, mi->head_size, mi->n_ffn);
                } else {
                        printf("architecture:  unknown (%s)\n", error_message(&merr, mr));
                        if (meta->n_layer || meta->n_embd || meta->n_vocab)
                                printf("header shape:  %u layers, embedding %u, vocabulary %u\n", meta->n_layer,
                                       meta->n_embd, meta->n_vocab);
                }
                printf("parameters:    %" PRIu64 " in %zu tensors\n", params, tensor_table_count(t));
                printf("data types:   ");
                for (int d = 0; d < _DTYPE_MAX; d++)
                        if (type_count[d])
                                printf(" %s: %" PRIu64 " (%.1f MiB)", dtype_name((DType)d), type_count[d],
                                       (double)type_bytes[d] / (1 << 20));
                printf("\n");
                printf("tokenizer:     %s%s\n", tok, vtext ? " (vocabulary embedded)" : "");
                printf("size:          %" PRIu64 " bytes (%.1f MiB)\n", tensor_table_file_size(t),
                       (double)tensor_table_file_size(t) / (1 << 20));
                printf("hash:          %s\n", hash_hex);
                if (verified)
                        printf("verify:        %s\n", verified);
                if (tensors)
                        for (size_t i = 0; i < tensor_table_count(t); i++) {
                                const Tensor *x = tensor_table_at(t, i);
                                printf("  %-40s %-10s [", tensor_table_name_at(t, i), dtype_name(x->dtype));
                                for (uint32_t d = 0; d < x->n_dims; d++)
                                        printf("%s%" PRIu64, d ? ", " : "", x->shape[d]);
                                printf("]\n");
                        }
        }
        model_free(m);
        tensor_table_free(t);
        return verified && strcmp(verified, "ok") != 0 ? 1 : 0;
}

/* ---- convert ---- */

static void help_convert(void) {
        printf("rwkvctl model convert IN OUT [--type f32|f16|bf16|q8_0|q8_0x16|q4_0|q4_0x16] [--vocab FILE] "
               "[--json]\n\n"
               "Write IN (.rwkv, rwkv.cpp .bin or PyTorch .pth) as a native .rwkv file.\n\n"
               "  --type T      type of the weight matrices (2-D *.weight with rows of whole 32-blocks);\n"
               "                every other tensor stays exact: f16/bf16 as they are (f32 with --type\n"
               "                f32), other types as f32. Default: keep every tensor's type\n"
               "                (rwkv.cpp q8_0 -> q8_0, other rwkv.cpp block types -> f16).\n"
               "                q8_0x16: q8_0's values with 16 rows interleaved (faster batched decode\n"
               "                and prefill with AVX-512 VNNI); the embedding and matrices whose rows\n"
               "                are not a multiple of 16 get q8_0; q4_0x16 is the same for q4_0\n"
               "  --vocab FILE  embed this World vocabulary (rwkv_vocab_v20230424.txt format)\n"
               "  --json        print {\"file\", \"size\", \"hash\"}\n");
}

static int model_convert_verb(int argc, char *argv[]) {
        enum { OPT_TYPE = 0x100, OPT_VOCAB, OPT_JSON };
        static const struct option options[] = {
                { "help", no_argument, NULL, 'h' },
                { "type", required_argument, NULL, OPT_TYPE },
                { "vocab", required_argument, NULL, OPT_VOCAB },
                { "json", no_argument, NULL, OPT_JSON },
                {},
        };
        bool json = arg_json;
        int type = -1;
        const char *vocab_path = NULL;
        int c;
        optind = 0;
        while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0)
                switch (c) {
                case 'h':
                        help_convert();
                        return 0;
                case OPT_TYPE:
                        if (parse_type(optarg, &type) < 0)
                                return fail_usage(
                                        "model convert: unknown type '%s' (f32, f16, bf16, q8_0, q8_0x16, q4_0, "
                                        "q4_0x16)",
                                        optarg);
                        break;
                case OPT_VOCAB:
                        vocab_path = optarg;
                        break;
                case OPT_JSON:
                        json = true;
                        break;
                default:
                        return 2;
                }
        if (optind + 2 != argc)
                return fail_usage("model convert: expected IN and OUT (see --help)");
        const char *in = argv[optind], *out = argv[optind + 1];

        _cleanup_(freep) char *vocab = NULL;
        size_t vocab_len = 0;
        if (vocab_path) {
                int r = read_vocab(vocab_path, &vocab, &vocab_len);
                if (r < 0)
                        return fail("model convert: cannot read '%s': %s", vocab_path, strerror(-r));
        }

        TensorTable *t = NULL;
        RwkvError err = {};
        int r = tensor_table_open(in, &t, &err);
        if (r < 0)
                return fail("model convert: %s", error_message(&err, r));

        /* Record what the engine detects, so the native header is complete. */
        TensorTableMeta meta = *tensor_table_meta(t);
        Model *m = NULL;
        RwkvError merr = {};
        int lr = model_load(in, &(ModelLoadOptions){ .vocab_path = vocab_path }, &m, &merr);
        if (lr < 0 && vocab_path) {
                /* A model the engine runs without the vocabulary asked for: refuse rather than write a
                 * file that nothing can load. (A model the engine cannot run at all is still
                 * converted below, with a warning.) */
                char why[256];
                snprintf(why, sizeof(why), "%s", error_message(&merr, lr));
                merr = (RwkvError){};
                lr = model_load(in, NULL, &m, &merr);
                if (lr >= 0) {
                        model_free(m);
                        tensor_table_free(t);
                        return fail("model convert: the vocabulary '%s' does not fit '%s': %s", vocab_path, in, why);
                }
        }
        if (lr >= 0) {
                const ModelInfo *mi = model_info(m);
                meta.arch = mi->arch;
                meta.n_layer = mi->n_layer;
                meta.n_embd = mi->n_embd;
                meta.n_vocab = mi->n_vocab;
                meta.n_head = mi->n_head;
                meta.head_size = mi->head_size;
                meta.n_ffn = mi->n_ffn;
                model_free(m);
        } else
                fprintf(stderr, "rwkvctl: warning: the engine cannot run '%s' (%s); converting the tensors anyway\n",
                        in, error_message(&merr, -merr.errnum));
        if (meta.n_vocab == 256)
                meta.tokenizer = MODEL_TOKENIZER_BYTES;
        else if (vocab || tensor_table_vocab(t, NULL))
                meta.tokenizer = MODEL_TOKENIZER_WORLD;

        Bar bar = { .label = "converting", .last_pct = -1 };
        ConvertOptions o = {
                .type = type,
                .vocab = vocab,
                .vocab_len = vocab_len,
                .meta = &meta,
                .progress = isatty(STDERR_FILENO) ? bar_update : NULL,
                .userdata = &bar,
        };
        uint8_t hash[32];
        char hash_hex[65];
        err = (RwkvError){};
        r = model_convert(t, out, &o, hash, &err);
        tensor_table_free(t);
        if (r < 0)
                return fail("model convert: %s", error_message(&err, r));
        hex(hash, hash_hex);
        print_written(out, json, hash_hex);
        return 0;
}

/* ---- random ---- */

static void help_random(void) {
        printf("rwkvctl model random --version 7 --layers L --embd C --vocab V [--seed S] [--type T] [--json] OUT\n\n"
               "Write a random-weight RWKV-7 model of any shape (official tensor names and shapes,\n"
               "initialized like a real model: finite logits in any precision) for benchmarks and tests.\n\n"
               "  --version 7   architecture (only 7)\n"
               "  --layers L    layers\n"
               "  --embd C      embedding size, a multiple of 64 (head size 64)\n"
               "  --vocab V     vocabulary size (256: byte-level)\n"
               "  --seed S      random seed (default 0): the same options give the same file\n"
               "  --type T      type of the weight matrices: f32 (default), f16, bf16, q8_0, q8_0x16,\n"
               "                q4_0, q4_0x16\n"
               "  --json        print {\"file\", \"size\", \"hash\"}\n");
}

static int model_random_verb(int argc, char *argv[]) {
        enum { OPT_VERSION = 0x100, OPT_LAYERS, OPT_EMBD, OPT_VOCAB, OPT_SEED, OPT_TYPE, OPT_JSON };
        static const struct option options[] = {
                { "help", no_argument, NULL, 'h' },
                { "version", required_argument, NULL, OPT_VERSION },
                { "layers", required_argument, NULL, OPT_LAYERS },
                { "embd", required_argument, NULL, OPT_EMBD },
                { "vocab", required_argument, NULL, OPT_VOCAB },
                { "seed", required_argument, NULL, OPT_SEED },
                { "type", required_argument, NULL, OPT_TYPE },
                { "json", no_argument, NULL, OPT_JSON },
                {},
        };
        bool json = arg_json;
        RandomModelOptions o = { .version = 7, .type = -1 };
        bool have_layers = false, have_embd = false, have_vocab = false;
        int c;
        optind = 0;
        while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0) {
                int r = 0;
                switch (c) {
                case 'h':
                        help_random();
                        return 0;
                case OPT_VERSION:
                        r = parse_u32(optarg, &o.version);
                        break;
                case OPT_LAYERS:
                        r = parse_u32(optarg, &o.n_layer);
                        have_layers = true;
                        break;
                case OPT_EMBD:
                        r = parse_u32(optarg, &o.n_embd);
                        have_embd = true;
                        break;
                case OPT_VOCAB:
                        r = parse_u32(optarg, &o.n_vocab);
                        have_vocab = true;
                        break;
                case OPT_SEED: {
                        char *end;
                        errno = 0;
                        o.seed = strtoull(optarg, &end, 0);
                        r = errno || end == optarg || *end || optarg[0] == '-' ? -EINVAL : 0;
                        break;
                }
                case OPT_TYPE:
                        r = parse_type(optarg, &o.type);
                        break;
                case OPT_JSON:
                        json = true;
                        break;
                default:
                        return 2;
                }
                if (r < 0)
                        return fail_usage("model random: bad value '%s' for --%s", optarg,
                                          options[c - OPT_VERSION + 1].name);
        }
        if (optind + 1 != argc)
                return fail_usage("model random: expected one OUT file (see --help)");
        if (!have_layers || !have_embd || !have_vocab)
                return fail_usage("model random: --layers, --embd and --vocab are required");
        /* model_write_random() checks these too (engine/format/random-model.c); here a shape out of
         * range is invalid usage that names its option. */
        if (o.version != 7)
                return fail_usage("model random: --version %" PRIu32 ": random models exist for RWKV-7 only",
                                  o.version);
        if (o.n_layer < 1 || o.n_layer > 4096)
                return fail_usage("model random: --layers %" PRIu32 ": must be 1 to 4096", o.n_layer);
        if (o.n_embd == 0 || o.n_embd % 64 != 0 || o.n_embd > 65536)
                return fail_usage("model random: --embd %" PRIu32 ": must be a positive multiple of 64 (at most 65536)",
                                  o.n_embd);
        if (o.n_vocab < 1 || o.n_vocab > (1u << 24))
                return fail_usage("model random: --vocab %" PRIu32 ": must be 1 to 16777216", o.n_vocab);

        Bar bar = { .label = "writing", .last_pct = -1 };
        o.progress = isatty(STDERR_FILENO) ? bar_update : NULL;
        o.userdata = &bar;
        uint8_t hash[32];
        char hash_hex[65];
        RwkvError err = {};
        int r = model_write_random(&o, argv[optind], hash, &err);
        if (r < 0)
                return fail("model random: %s", error_message(&err, r));
        hex(hash, hash_hex);
        print_written(argv[optind], json, hash_hex);
        return 0;
}

int verb_model(int argc, char *argv[]) {
        static const struct {
                const char *name;
                int (*run)(int argc, char *argv[]);
        } sub[] = {
                { "info", model_info_verb },
                { "convert", model_convert_verb },
                { "random", model_random_verb },
        };
        if (argc < 2)
                return fail_usage("model: expected info, convert or random (see rwkvctl model --help)");
        if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
                printf("rwkvctl model info FILE | convert IN OUT | random ... OUT   (--help on each)\n");
                return 0;
        }
        for (size_t i = 0; i < ELEMENTSOF(sub); i++)
                if (strcmp(argv[1], sub[i].name) == 0) {
                        char name[32]; /* for getopt's messages, as in main() */
                        snprintf(name, sizeof(name), "rwkvctl: model %s", sub[i].name);
                        argv[1] = name;
                        return sub[i].run(argc - 1, argv + 1);
                }
        return fail_usage("model: unknown command '%s' (info, convert, random)", argv[1]);
}
