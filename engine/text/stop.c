/* stop.c: stop sequences over streamed text bytes (Aho-Corasick automaton, held-back prefix). */
#include "engine/text/stop.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Goto edges are sibling lists: a node has few children (stop strings are short and few), and a full
 * 256-way table per node would cost megabytes for a per-request object. */
typedef struct AcNode {
        uint16_t child;   /* first child, 0 = none (the root is never a child) */
        uint16_t sibling; /* next sibling, 0 = none */
        uint16_t fail;    /* longest proper suffix that is also a prefix of a stop */
        uint16_t depth;   /* bytes from the root */
        uint16_t out;     /* 1 + index of the longest stop ending here (itself or by suffix), 0 = none */
        uint8_t label;
} AcNode;

struct StopMatcher {
        size_t n_stops;
        uint16_t stop_len[STOP_MAX_SEQUENCES];
        AcNode *nodes;
        size_t n_nodes;
        uint16_t state;
        bool matched;
        size_t n_held; /* == nodes[state].depth: the held bytes spell the state's path */
        uint8_t held[STOP_MAX_BYTES];
};

StopMatcher *stop_matcher_free(StopMatcher *m) {
        if (!m)
                return NULL;
        free(m->nodes);
        free(m);
        return NULL;
}
DEFINE_TRIVIAL_CLEANUP_FUNC(StopMatcher *, stop_matcher_free);

static uint16_t ac_child(const StopMatcher *m, uint16_t node, uint8_t c) {
        for (uint16_t k = m->nodes[node].child; k != 0; k = m->nodes[k].sibling)
                if (m->nodes[k].label == c)
                        return k;
        return 0;
}

/* The automaton's transition: follow failure links until some suffix can be extended by c. */
static uint16_t ac_step(const StopMatcher *m, uint16_t state, uint8_t c) {
        for (;;) {
                uint16_t k = ac_child(m, state, c);
                if (k != 0)
                        return k;
                if (state == 0)
                        return 0;
                state = m->nodes[state].fail;
        }
}

int stop_matcher_new(const char *const *stops, size_t n, StopMatcher **ret, RwkvError *err) {
        _cleanup_(stop_matcher_freep) StopMatcher *m = NULL;
        _cleanup_(freep) uint16_t *queue = NULL;
        size_t total = 0;

        if (!ret || (!stops && n > 0))
                return -EINVAL;
        if (n > STOP_MAX_SEQUENCES)
                return error_set(err, E2BIG, "%zu stop sequences: at most %u are allowed", n, STOP_MAX_SEQUENCES);
        for (size_t i = 0; i < n; i++) {
                size_t l;
                if (!stops[i])
                        return error_set(err, EINVAL, "stop sequence %zu is missing", i);
                l = strnlen(stops[i], STOP_MAX_BYTES + 1);
                if (l == 0)
                        return error_set(err, EINVAL, "stop sequence %zu is empty", i);
                if (l > STOP_MAX_BYTES)
                        return error_set(err, E2BIG, "stop sequence %zu is longer than %u bytes", i, STOP_MAX_BYTES);
                total += l;
        }
        _Static_assert(STOP_MAX_SEQUENCES * STOP_MAX_BYTES < UINT16_MAX, "node numbers are uint16_t");

        m = calloc(1, sizeof(*m));
        if (!m)
                return -ENOMEM;
        m->n_stops = n;
        for (size_t i = 0; i < n; i++)
                m->stop_len[i] = (uint16_t)strlen(stops[i]);
        /* total <= 16 * 256, so uint16_t node numbers suffice. */
        m->nodes = calloc(total + 1, sizeof(AcNode));
        queue = calloc(total + 1, sizeof(uint16_t));
        if (!m->nodes || !queue)
                return -ENOMEM;
        m->n_nodes = 1;

        /* The trie of the stops. */
        for (size_t i = 0; i < n; i++) {
                uint16_t node = 0;
                for (const uint8_t *p = (const uint8_t *)stops[i]; *p; p++) {
                        uint16_t k = ac_child(m, node, *p);
                        if (k == 0) {
                                k = (uint16_t)m->n_nodes++;
                                m->nodes[k] = (AcNode){
                                        .sibling = m->nodes[node].child,
                                        .depth = (uint16_t)(m->nodes[node].depth + 1),
                                        .label = *p,
                                };
                                m->nodes[node].child = k;
                        }
                        node = k;
                }
                if (m->nodes[node].out == 0) /* identical stops: the first one names the match */
                        m->nodes[node].out = (uint16_t)(i + 1);
        }

        /* Failure links breadth first (a node's fail is shallower, so it is final before use); the
         * output of a node without its own stop is its failure node's: the longest stop ending there. */
        size_t qh = 0, qt = 0;
        for (uint16_t k = m->nodes[0].child; k != 0; k = m->nodes[k].sibling) {
                m->nodes[k].fail = 0;
                queue[qt++] = k;
        }
        while (qh < qt) {
                uint16_t u = queue[qh++];
                for (uint16_t k = m->nodes[u].child; k != 0; k = m->nodes[k].sibling) {
                        uint16_t f = m->nodes[u].fail;
                        uint16_t v = ac_child(m, f, m->nodes[k].label);
                        while (v == 0 && f != 0) {
                                f = m->nodes[f].fail;
                                v = ac_child(m, f, m->nodes[k].label);
                        }
                        m->nodes[k].fail = v; /* shallower than k: never k itself */
                        if (m->nodes[k].out == 0)
                                m->nodes[k].out = m->nodes[m->nodes[k].fail].out;
                        queue[qt++] = k;
                }
        }

        *ret = TAKE_PTR(m);
        return 0;
}

int stop_matcher_feed(StopMatcher *m, const uint8_t *in, size_t len, uint8_t *out, size_t *ret_out_len,
                      size_t *ret_which) {
        size_t o = 0;

        if (!m || (!in && len > 0) || !out || !ret_out_len)
                return -EINVAL;
        if (m->matched)
                return -ESTALE;
        if (m->n_stops == 0) {
                if (len > 0)
                        memcpy(out, in, len);
                *ret_out_len = len;
                return 0;
        }

        for (size_t i = 0; i < len; i++) {
                uint16_t s = ac_step(m, m->state, in[i]);
                size_t d = m->n_held + 1, keep = m->nodes[s].depth;

                /* held + in[i] is d bytes, and the new state spells the last `keep` of them. A state
                 * that is not a match is shallower than the longest stop, so held never overflows. */
                m->held[m->n_held] = in[i];
                if (m->nodes[s].out != 0) {
                        size_t which = m->nodes[s].out - 1u;
                        size_t before = d - m->stop_len[which];

                        memcpy(out + o, m->held, before);
                        o += before;
                        m->matched = true;
                        m->n_held = 0;
                        m->state = 0;
                        *ret_out_len = o;
                        if (ret_which)
                                *ret_which = which;
                        return 1;
                }
                if (keep < d) {
                        memcpy(out + o, m->held, d - keep);
                        o += d - keep;
                        memmove(m->held, m->held + (d - keep), keep);
                }
                m->n_held = keep;
                m->state = s;
        }
        *ret_out_len = o;
        return 0;
}

size_t stop_matcher_flush(StopMatcher *m, uint8_t *out) {
        size_t n = m->matched ? 0 : m->n_held;

        if (n > 0)
                memcpy(out, m->held, n);
        m->n_held = 0;
        m->state = 0;
        return n;
}

size_t stop_matcher_held(const StopMatcher *m) {
        return m->n_held;
}

void stop_matcher_reset(StopMatcher *m) {
        m->n_held = 0;
        m->state = 0;
        m->matched = false;
}
