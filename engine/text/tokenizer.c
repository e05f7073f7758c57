/* tokenizer.c: byte-level and RWKV World tokenizers (greedy longest match over a compact trie). */
#include "engine/text/tokenizer.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "engine/text/vocab.h"

/* The vocabulary file is text of about 1 MiB; anything this large is not one. */
#define VOCAB_FILE_MAX (64u << 20)

/* A trie node is 8 bytes: its children are contiguous nodes [first, first + n) whose edge labels are
 * the bytes label[first .. first + n) (sorted), so a child lookup is a short scan of one cache line. */
typedef struct TrieNode {
        uint32_t first;
        uint32_t info; /* token id (bits 0..20, 0 = no token ends here) | n_children << 21 */
} TrieNode;

#define NODE_ID_MASK ((1u << 21) - 1)

static inline uint32_t node_n(const TrieNode *n) {
        return n->info >> 21;
}

struct Tokenizer {
        bool is_bytes;
        uint32_t vocab_size;
        size_t max_token_bytes;

        uint32_t *offsets; /* vocab_size + 1: token id's bytes are blob[offsets[id] .. offsets[id+1]) */
        uint8_t *blob;

        TrieNode *nodes;          /* nodes[0] is the root */
        uint32_t root_child[256]; /* the root's children, direct (every byte has one) */
        uint8_t *labels;          /* labels[i]: the byte on the edge into node i */
        size_t n_nodes;
};

static const uint8_t byte_table[256] = {
#define B4(i) (i), (i) + 1, (i) + 2, (i) + 3
#define B16(i) B4(i), B4((i) + 4), B4((i) + 8), B4((i) + 12)
#define B64(i) B16(i), B16((i) + 16), B16((i) + 32), B16((i) + 48)
        B64(0), B64(64), B64(128), B64(192)
#undef B64
#undef B16
#undef B4
};

Tokenizer *tokenizer_free(Tokenizer *t) {
        if (!t)
                return NULL;
        free(t->offsets);
        free(t->blob);
        free(t->nodes);
        free(t->labels);
        free(t);
        return NULL;
}
DEFINE_TRIVIAL_CLEANUP_FUNC(Tokenizer *, tokenizer_free);

int tokenizer_new_bytes(Tokenizer **ret) {
        Tokenizer *t;

        if (!ret)
                return -EINVAL;
        t = calloc(1, sizeof(*t));
        if (!t)
                return -ENOMEM;
        t->is_bytes = true;
        t->vocab_size = 256;
        t->max_token_bytes = 1;
        *ret = t;
        return 0;
}

bool tokenizer_is_bytes(const Tokenizer *t) {
        return t->is_bytes;
}

uint32_t tokenizer_vocab_size(const Tokenizer *t) {
        return t->vocab_size;
}

size_t tokenizer_max_token_bytes(const Tokenizer *t) {
        return t->max_token_bytes;
}

const uint8_t *tokenizer_token_bytes(const Tokenizer *t, uint32_t id, size_t *ret_len) {
        if (!t || id >= t->vocab_size)
                return NULL;
        if (t->is_bytes) {
                if (ret_len)
                        *ret_len = 1;
                return byte_table + id;
        }
        if (t->offsets[id + 1] == t->offsets[id])
                return NULL; /* id 0 (end of text) or a hole in the vocabulary */
        if (ret_len)
                *ret_len = t->offsets[id + 1] - t->offsets[id];
        return t->blob + t->offsets[id];
}

/* ---- building the trie ---- */

static int compare_bytes(const void *a, const void *b, void *userdata) {
        const VocabEntry *x = a, *y = b;
        const uint8_t *blob = userdata;
        int c = memcmp(blob + x->offset, blob + y->offset, MIN(x->len, y->len));
        if (c != 0)
                return c;
        return (x->len > y->len) - (x->len < y->len);
}

typedef struct TrieBuilder {
        TrieNode *nodes;
        uint8_t *labels;
        size_t n_nodes, cap;
        const VocabEntry *e; /* sorted by bytes */
        const uint8_t *blob;
} TrieBuilder;

/* entries [lo, hi) share their first depth bytes, the path to node. Children of one node are given
 * consecutive slots before recursing, which is what makes the layout contiguous. */
static void trie_build(TrieBuilder *b, size_t node, size_t lo, size_t hi, size_t depth) {
        size_t n_children = 0, first;

        if (lo < hi && b->e[lo].len == depth) {
                b->nodes[node].info = b->e[lo].id;
                lo++;
        }
        for (size_t i = lo; i < hi; i++)
                if (i == lo || b->blob[b->e[i].offset + depth] != b->blob[b->e[i - 1].offset + depth])
                        n_children++;
        if (n_children == 0)
                return;

        first = b->n_nodes;
        b->n_nodes += n_children;
        b->nodes[node].first = (uint32_t)first;
        b->nodes[node].info |= (uint32_t)n_children << 21;

        for (size_t i = lo, k = 0; i < hi; k++) {
                uint8_t c = b->blob[b->e[i].offset + depth];
                size_t j = i + 1;
                while (j < hi && b->blob[b->e[j].offset + depth] == c)
                        j++;
                b->labels[first + k] = c;
                b->nodes[first + k] = (TrieNode){};
                trie_build(b, first + k, i, j, depth + 1);
                i = j;
        }
}

int tokenizer_new_world(const char *vocab, size_t len, Tokenizer **ret, RwkvError *err) {
        _cleanup_(tokenizer_freep) Tokenizer *t = NULL;
        _cleanup_(vocab_done) Vocab v = {};
        _cleanup_(freep) VocabEntry *sorted = NULL;
        TrieBuilder b = {};
        int r;

        if (!ret)
                return -EINVAL;
        r = vocab_parse(vocab, len, &v, err);
        if (r < 0)
                return r;

        t = calloc(1, sizeof(*t));
        if (!t)
                return -ENOMEM;
        t->vocab_size = v.max_id + 1;

        /* Decode table: tokens laid out by id so token_bytes() is two loads. */
        t->offsets = calloc((size_t)t->vocab_size + 1, sizeof(uint32_t));
        t->blob = malloc(MAX(v.blob_len, 1u));
        if (!t->offsets || !t->blob)
                return -ENOMEM;
        {
                _cleanup_(freep) const VocabEntry **by_id = calloc(t->vocab_size, sizeof(*by_id));
                uint32_t off = 0;
                if (!by_id)
                        return -ENOMEM;
                for (size_t i = 0; i < v.n; i++)
                        by_id[v.entries[i].id] = &v.entries[i];
                for (uint32_t id = 0; id < t->vocab_size; id++) {
                        t->offsets[id] = off;
                        if (by_id[id]) {
                                memcpy(t->blob + off, v.blob + by_id[id]->offset, by_id[id]->len);
                                off += by_id[id]->len;
                                t->max_token_bytes = MAX(t->max_token_bytes, (size_t)by_id[id]->len);
                        }
                }
                t->offsets[t->vocab_size] = off;
        }

        sorted = malloc(v.n * sizeof(*sorted));
        if (!sorted)
                return -ENOMEM;
        memcpy(sorted, v.entries, v.n * sizeof(*sorted));
        qsort_r(sorted, v.n, sizeof(*sorted), compare_bytes, v.blob);

        /* Two ids with the same bytes: encoding could only ever produce one of them. */
        for (size_t i = 1; i < v.n; i++)
                if (compare_bytes(&sorted[i - 1], &sorted[i], v.blob) == 0) {
                        const VocabEntry *first = &sorted[i - 1], *second = &sorted[i];
                        if (first->line > second->line) {
                                const VocabEntry *x = first;
                                first = second;
                                second = x;
                        }
                        return error_set(err, EBADMSG,
                                         "vocabulary line %u (token %u): same bytes as token %u (line %u)",
                                         second->line, second->id, first->id, first->line);
                }

        /* Every byte must be a token of its own, or some inputs could not be encoded at all. */
        {
                bool have[256] = {};
                for (size_t i = 0; i < v.n; i++)
                        if (sorted[i].len == 1)
                                have[v.blob[sorted[i].offset]] = true;
                for (unsigned c = 0; c < 256; c++)
                        if (!have[c])
                                return error_set(err, EBADMSG, "vocabulary: byte 0x%02x has no token of its own", c);
        }

        /* At most one node per token byte, plus the root. */
        b.cap = v.blob_len + 1;
        b.nodes = calloc(b.cap, sizeof(TrieNode));
        b.labels = calloc(b.cap, 1);
        if (!b.nodes || !b.labels) {
                free(b.nodes);
                free(b.labels);
                return -ENOMEM;
        }
        b.n_nodes = 1;
        b.e = sorted;
        b.blob = v.blob;
        trie_build(&b, 0, 0, v.n, 0);

        /* Give back the slack (the real vocabulary needs ~60% of the bound). */
        t->nodes = realloc(b.nodes, b.n_nodes * sizeof(TrieNode)) ?: b.nodes;
        t->labels = realloc(b.labels, b.n_nodes) ?: b.labels;
        t->n_nodes = b.n_nodes;
        for (uint32_t k = 0; k < node_n(&t->nodes[0]); k++)
                t->root_child[t->labels[t->nodes[0].first + k]] = t->nodes[0].first + k;

        *ret = TAKE_PTR(t);
        return 0;
}

int tokenizer_load_world(const char *path, Tokenizer **ret, RwkvError *err) {
        _cleanup_(closep) int fd = -EBADF;
        _cleanup_(freep) char *buf = NULL;
        struct stat st;
        size_t have = 0;
        int r;

        if (!path || !ret)
                return -EINVAL;
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return error_set(err, errno, "vocabulary '%s': %m", path);
        if (fstat(fd, &st) < 0)
                return error_set(err, errno, "vocabulary '%s': %m", path);
        if (!S_ISREG(st.st_mode))
                return error_set(err, EINVAL, "vocabulary '%s': not a regular file", path);
        if ((uint64_t)st.st_size > VOCAB_FILE_MAX)
                return error_set(err, EFBIG, "vocabulary '%s': %jd bytes is too large for a vocabulary", path,
                                 (intmax_t)st.st_size);
        buf = malloc((size_t)st.st_size + 1);
        if (!buf)
                return -ENOMEM;
        while (have < (size_t)st.st_size) {
                ssize_t k = read(fd, buf + have, (size_t)st.st_size - have);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return error_set(err, errno, "vocabulary '%s': %m", path);
                }
                if (k == 0)
                        break; /* shrank under us: parse what is there */
                have += (size_t)k;
        }
        r = tokenizer_new_world(buf, have, ret, err);
        if (r < 0 && err)
                error_prefix(err, "'%s': ", path);
        return r;
}

/* ---- encoding ---- */

/* Longest token at s[0..len) (len >= 1). Returns its length and id; *ret_open is set when the walk
 * ran into the end of the buffer while a longer token was still possible. */
static inline size_t trie_match(const Tokenizer *t, const uint8_t *s, size_t len, uint32_t *ret_id, bool *ret_open) {
        const TrieNode *nodes = t->nodes;
        const uint8_t *labels = t->labels;
        /* The root has all 256 children: index them directly. Single bytes are tokens. */
        const TrieNode *node = nodes + t->root_child[s[0]];
        uint32_t best_id = node->info & NODE_ID_MASK;
        size_t best_len = 1, i = 1;

        for (;;) {
                uint32_t n = node_n(node), first, k;

                if (n == 0) {
                        *ret_open = false;
                        break;
                }
                if (i == len) {
                        *ret_open = true;
                        break;
                }
                first = node->first;
                if (n <= 16) {
                        for (k = 0; k < n; k++)
                                if (labels[first + k] == s[i])
                                        break;
                        if (k == n) {
                                *ret_open = false;
                                break;
                        }
                } else {
                        const uint8_t *p = memchr(labels + first, s[i], n);
                        if (!p) {
                                *ret_open = false;
                                break;
                        }
                        k = (uint32_t)(p - (labels + first));
                }
                node = nodes + first + k;
                i++;
                if (node->info & NODE_ID_MASK) {
                        best_id = node->info & NODE_ID_MASK;
                        best_len = i;
                }
        }
        *ret_id = best_id;
        return best_len;
}

int tokenizer_encode(const Tokenizer *t, const uint8_t *s, size_t len, bool final, uint32_t *out, size_t out_cap,
                     size_t *ret_consumed, size_t *ret_n) {
        size_t pos = 0, n = 0;

        if (!t || (!s && len > 0) || (!out && out_cap > 0) || !ret_consumed || !ret_n)
                return -EINVAL;

        if (t->is_bytes) {
                n = MIN(len, out_cap);
                for (size_t i = 0; i < n; i++)
                        out[i] = s[i];
                *ret_consumed = n;
                *ret_n = n;
                return 0;
        }

        while (pos < len && n < out_cap) {
                uint32_t id;
                bool open;
                size_t l = trie_match(t, s + pos, len - pos, &id, &open);

                /* More input could extend the match: leave the tail for the next call. */
                if (open && !final)
                        break;
                /* Every single byte is a token (checked at build), so l >= 1. */
                out[n++] = id;
                pos += l;
        }
        *ret_consumed = pos;
        *ret_n = n;
        return 0;
}

int tokenizer_encode_all(const Tokenizer *t, const uint8_t *s, size_t len, uint32_t **ret_ids, size_t *ret_n) {
        _cleanup_(freep) uint32_t *ids = NULL;
        size_t consumed, n;
        int r;

        if (!t || (!s && len > 0) || !ret_ids || !ret_n)
                return -EINVAL;
        /* At most one id per byte. */
        ids = malloc(MAX(len, 1u) * sizeof(uint32_t));
        if (!ids)
                return -ENOMEM;
        r = tokenizer_encode(t, s, len, true, ids, len, &consumed, &n);
        if (r < 0)
                return r;
        if (n < len && n > 0) {
                uint32_t *shrunk = realloc(ids, n * sizeof(uint32_t));
                if (shrunk)
                        ids = shrunk;
        }
        *ret_ids = TAKE_PTR(ids);
        *ret_n = n;
        return 0;
}
