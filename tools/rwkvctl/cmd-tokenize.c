/* cmd-tokenize.c: `rwkvctl tokenize` (stdin text -> ids) and `rwkvctl detokenize` (ids -> raw bytes).
 *
 * Offline: the tokenizer comes from --vocab (World vocabulary text), from --model (the one the
 * model file embeds, or --vocab for one that embeds none), or is byte-level (id = byte) when neither
 * is given. Input of any size streams through: tokenize keeps only the unconsumed tail of each read
 * (shorter than the longest token), detokenize writes each id's bytes as it goes. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/arch/model.h"
#include "engine/text/tokenizer.h"
#include "tools/rwkvctl/rwkvctl.h"

#define READ_CHUNK (64u << 10)

typedef struct TokenizerSource {
        Tokenizer *own; /* when built here (bytes, --vocab) */
        Model *model;   /* when taken from a model */
        const Tokenizer *t;
} TokenizerSource;

static void tokenizer_source_done(TokenizerSource *s) {
        s->own = tokenizer_free(s->own);
        s->model = model_free(s->model);
        s->t = NULL;
}

static int tokenizer_source_open(const char *verb, const char *model_path, const char *vocab, TokenizerSource *ret) {
        TokenizerSource s = {};
        RwkvError err = {};
        int r;

        if (model_path) {
                ModelLoadOptions opts = { .vocab_path = vocab };
                r = model_load(model_path, &opts, &s.model, &err);
                if (r < 0)
                        return fail("%s: cannot load model '%s': %s", verb, model_path, error_message(&err, r));
                s.t = model_tokenizer(s.model);
                if (!s.t) {
                        tokenizer_source_done(&s);
                        return fail("%s: model '%s' has no tokenizer; give its World vocabulary with --vocab FILE",
                                    verb, model_path);
                }
        } else if (vocab) {
                r = tokenizer_load_world(vocab, &s.own, &err);
                if (r < 0)
                        return fail("%s: %s", verb, error_message(&err, r));
                s.t = s.own;
        } else {
                r = tokenizer_new_bytes(&s.own);
                if (r < 0)
                        return fail("%s: %s", verb, strerror(-r));
                s.t = s.own;
        }
        *ret = s;
        return 0;
}

/* Options shared by both verbs. Returns -1 to continue, else an exit status. */
static int parse_options(int argc, char *argv[], const char *verb, void (*help)(void), const char **ret_model,
                         const char **ret_vocab, bool *json) {
        enum { OPT_MODEL = 0x100, OPT_VOCAB, OPT_JSON };
        static const struct option options[] = {
                { "help", no_argument, NULL, 'h' },
                { "model", required_argument, NULL, OPT_MODEL },
                { "vocab", required_argument, NULL, OPT_VOCAB },
                { "json", no_argument, NULL, OPT_JSON },
                {},
        };
        int c;

        optind = 0;
        while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0)
                switch (c) {
                case 'h':
                        help();
                        return 0;
                case OPT_MODEL:
                        *ret_model = optarg;
                        break;
                case OPT_VOCAB:
                        *ret_vocab = optarg;
                        break;
                case OPT_JSON:
                        *json = true;
                        break;
                default:
                        return 2; /* getopt said why, in one line */
                }
        return -1;
}

static int flush_stdout(const char *verb) {
        if (fflush(stdout) != 0 || ferror(stdout))
                return fail("%s: cannot write to stdout: %m", verb);
        return 0;
}

/* ---- tokenize ---- */

static void tokenize_help(void) {
        printf("rwkvctl tokenize [--model FILE | --vocab FILE] [--json] < TEXT\n\n"
               "Print the token ids of stdin on one line, separated by spaces.\n\n"
               "  --model FILE   use the model's tokenizer (its embedded World vocabulary, or byte-level)\n"
               "  --vocab FILE   World vocabulary (rwkv_vocab_v20230424.txt); with --model, for a model\n"
               "                 file that embeds none\n"
               "  --json         print {\"tokens\": [...], \"count\": N, \"bytes\": B}\n\n"
               "With neither --model nor --vocab the tokenizer is byte-level (id = byte value).\n");
}

int verb_tokenize(int argc, char *argv[]) {
        const char *model_path = NULL, *vocab = NULL;
        bool json = arg_json;
        _cleanup_(tokenizer_source_done) TokenizerSource src = {};
        _cleanup_(freep) uint8_t *buf = NULL;
        _cleanup_(freep) uint32_t *ids = NULL;
        size_t have = 0, count = 0, cap;
        uint64_t total_bytes = 0;
        bool eof = false;
        int r;

        r = parse_options(argc, argv, "tokenize", tokenize_help, &model_path, &vocab, &json);
        if (r >= 0)
                return r;
        if (optind < argc)
                return fail_usage("tokenize: unexpected argument '%s' (the text is read from stdin)", argv[optind]);
        r = tokenizer_source_open("tokenize", model_path, vocab, &src);
        if (r != 0)
                return r;

        /* The buffer holds one read plus the tail the encoder left (< the longest token). */
        cap = READ_CHUNK + tokenizer_max_token_bytes(src.t);
        buf = malloc(cap);
        ids = malloc(cap * sizeof(uint32_t));
        if (!buf || !ids)
                return fail("tokenize: out of memory");

        if (json)
                fputs("{\"tokens\": [", stdout);
        while (!eof || have > 0) {
                size_t consumed, n;

                while (!eof && have < cap) {
                        ssize_t k = read(STDIN_FILENO, buf + have, cap - have);
                        if (k < 0) {
                                if (errno == EINTR)
                                        continue;
                                return fail("tokenize: cannot read stdin: %m");
                        }
                        if (k == 0)
                                eof = true;
                        have += (size_t)k;
                        total_bytes += (uint64_t)k;
                        if (k > 0)
                                break; /* encode what came; a pipe delivers in pieces */
                }
                r = tokenizer_encode(src.t, buf, have, eof, ids, cap, &consumed, &n);
                if (r < 0)
                        return fail("tokenize: %s", strerror(-r));
                for (size_t i = 0; i < n; i++, count++) {
                        if (count > 0)
                                fputs(json ? ", " : " ", stdout);
                        printf("%u", ids[i]);
                }
                memmove(buf, buf + consumed, have - consumed);
                have -= consumed;
                if (eof && have == 0)
                        break;
        }
        if (json)
                printf("], \"count\": %zu, \"bytes\": %llu}\n", count, (unsigned long long)total_bytes);
        else
                putchar('\n');
        return flush_stdout("tokenize");
}

/* ---- detokenize ---- */

static void detokenize_help(void) {
        printf("rwkvctl detokenize [--model FILE | --vocab FILE] [ID...]\n\n"
               "Write the bytes of token ids (from the arguments, else from stdin; separated by spaces,\n"
               "commas or newlines) to stdout, exactly: no newline is added and invalid UTF-8 is kept.\n\n"
               "  --model FILE   use the model's tokenizer\n"
               "  --vocab FILE   World vocabulary (rwkv_vocab_v20230424.txt)\n\n"
               "With neither --model nor --vocab the tokenizer is byte-level (id = byte value).\n");
}

static bool is_separator(int ch) {
        return ch == ' ' || ch == ',' || ch == '\n' || ch == '\t' || ch == '\r';
}

/* Write the bytes of one decimal id given as text; with t NULL only check that it is a number.
 * Returns 0 or the exit status after the message. */
static int emit_id(const Tokenizer *t, const char *text, size_t len) {
        uint64_t v = 0;
        const uint8_t *b;
        size_t l;

        for (size_t i = 0; i < len; i++) {
                if (text[i] < '0' || text[i] > '9' || len > 10)
                        return fail("detokenize: '%.*s' is not a token id", (int)MIN(len, (size_t)40), text);
                v = v * 10 + (uint64_t)(text[i] - '0');
        }
        if (!t)
                return 0;
        b = v <= UINT32_MAX ? tokenizer_token_bytes(t, (uint32_t)v, &l) : NULL;
        if (!b)
                return fail("detokenize: token id %.*s is not in the vocabulary (%u ids%s)", (int)MIN(len, (size_t)40),
                            text, tokenizer_vocab_size(t), tokenizer_is_bytes(t) ? "" : "; 0 is end of text");
        if (fwrite(b, 1, l, stdout) != l)
                return fail("detokenize: cannot write to stdout: %m");
        return 0;
}

/* The ids given as arguments, as emit_id() does them. */
static int emit_args(const Tokenizer *t, int argc, char *argv[]) {
        for (int a = 0; a < argc; a++) {
                const char *s = argv[a];
                while (*s) {
                        size_t l = 0;
                        int r;
                        while (s[l] && !is_separator((unsigned char)s[l]))
                                l++;
                        if (l > 0 && (r = emit_id(t, s, l)) != 0)
                                return r;
                        s += l;
                        while (*s && is_separator((unsigned char)*s))
                                s++;
                }
        }
        return 0;
}

int verb_detokenize(int argc, char *argv[]) {
        const char *model_path = NULL, *vocab = NULL;
        bool json = false;
        _cleanup_(tokenizer_source_done) TokenizerSource src = {};
        int r;

        r = parse_options(argc, argv, "detokenize", detokenize_help, &model_path, &vocab, &json);
        if (r >= 0)
                return r;
        if (json)
                return fail_usage("detokenize: --json is not supported (the output is raw bytes)");
        /* An argument that is not a number is invalid usage, refused before any byte is written. */
        if (emit_args(NULL, argc - optind, argv + optind) != 0)
                return 2;
        r = tokenizer_source_open("detokenize", model_path, vocab, &src);
        if (r != 0)
                return r;

        if (optind < argc) {
                r = emit_args(src.t, argc - optind, argv + optind);
                if (r != 0)
                        return r;
        } else {
                char word[32];
                size_t wl = 0;
                int ch;
                for (;;) {
                        ch = getchar();
                        if (ch == EOF || is_separator(ch)) {
                                if (wl > 0 && (r = emit_id(src.t, word, wl)) != 0)
                                        return r;
                                wl = 0;
                                if (ch == EOF)
                                        break;
                                continue;
                        }
                        if (wl == sizeof(word))
                                return fail("detokenize: '%.*s...' is not a token id", (int)wl, word);
                        word[wl++] = (char)ch;
                }
                if (ferror(stdin))
                        return fail("detokenize: cannot read stdin: %m");
        }
        return flush_stdout("detokenize");
}
