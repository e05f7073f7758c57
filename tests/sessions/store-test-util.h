/* store-test-util.h: fixtures for the session store tests: temp state dirs, synthetic records. */
#pragma once

#include <ftw.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemon/store.h"
#include "tests/lib/check.h"

static inline int rm_cb(const char *p, const struct stat *sb, int flag, struct FTW *ftw) {
        (void)sb;
        (void)flag;
        (void)ftw;
        return remove(p);
}

static inline void rm_rf(const char *path) {
        (void)nftw(path, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

/* mkdtemp under TMPDIR; the state dir itself is a subfolder the store creates. */
static inline char *test_tmpdir(void) {
        const char *t = getenv("TMPDIR");
        char *p;
        CHECK(asprintf(&p, "%s/rwkvd-store-XXXXXX", t && *t ? t : "/tmp") > 0);
        CHECK(mkdtemp(p));
        return p;
}

static inline uint64_t test_rand(uint64_t *s) {
        *s ^= *s << 13;
        *s ^= *s >> 7;
        *s ^= *s << 17;
        return *s;
}

/* A state that looks like a real one: slowly drifting values of mixed magnitude (random walk). */
static inline void test_fill_state(float *x, size_t n, uint64_t seed) {
        uint64_t s = seed | 1;
        float v = 0;
        for (size_t i = 0; i < n; i++) {
                v = v * 0.98f + ((float)(test_rand(&s) % 2001) - 1000.0f) * 1e-4f;
                x[i] = v * (1.0f + (float)(i % 64) / 16.0f);
        }
}

/* A record with every optional part; free with session_record_free(). */
static inline SessionRecord *test_record(const char *id, size_t state_floats, uint32_t n_vocab, size_t transcript,
                                         uint64_t seed) {
        SessionRecord *r = calloc(1, sizeof(*r));
        CHECK(r);
        snprintf(r->meta.id, sizeof(r->meta.id), "%s", id);
        for (int i = 0; i < 32; i++)
                r->meta.model_hash[i] = (uint8_t)(i * 7 + 1);
        r->meta.arch = 70;
        r->meta.n_layer = 2;
        r->meta.n_embd = 64;
        r->meta.n_head = 1;
        r->meta.head_size = 64;
        r->meta.n_vocab = n_vocab;
        r->meta.state_floats = state_floats;
        r->meta.n_tokens = 1234;
        r->meta.n_turns = 3;
        snprintf(r->meta.title, sizeof(r->meta.title), "title of %s", id);
        r->state = malloc(state_floats * sizeof(float));
        CHECK(r->state);
        test_fill_state(r->state, state_floats, seed);
        if (n_vocab) {
                r->logits = malloc(n_vocab * sizeof(float));
                r->penalties = calloc(n_vocab, sizeof(float));
                CHECK(r->logits && r->penalties);
                test_fill_state(r->logits, n_vocab, seed + 1);
                r->penalties[n_vocab / 2] = 1.5f;
                r->has_pending_token = true;
                r->pending_token = n_vocab - 1;
        }
        r->sampler = (SamplerParams){ 0.8f, 0.3f, 40, 0.05f, 0.5f, 0.5f, 0.996f };
        r->rng = (Rng){ { seed, seed * 3, seed * 5, ~seed } };
        if (transcript) {
                r->transcript = malloc(transcript);
                CHECK(r->transcript);
                for (size_t i = 0; i < transcript; i++)
                        ((uint8_t *)r->transcript)[i] = (uint8_t)("hello, world "[i % 13]);
                r->transcript_size = transcript;
        }
        return r;
}

static inline void test_check_same(const SessionRecord *a, const SessionRecord *b) {
        CHECK(a->meta.state_floats == b->meta.state_floats);
        CHECK(memcmp(a->state, b->state, a->meta.state_floats * sizeof(float)) == 0);
        CHECK(!a->logits == !b->logits);
        if (a->logits)
                CHECK(memcmp(a->logits, b->logits, a->meta.n_vocab * sizeof(float)) == 0);
        CHECK(!a->penalties == !b->penalties);
        if (a->penalties)
                CHECK(memcmp(a->penalties, b->penalties, a->meta.n_vocab * sizeof(float)) == 0);
        CHECK(a->has_pending_token == b->has_pending_token);
        CHECK(a->pending_token == b->pending_token);
        CHECK(memcmp(&a->sampler, &b->sampler, sizeof(a->sampler)) == 0);
        CHECK(memcmp(&a->rng, &b->rng, sizeof(a->rng)) == 0);
        CHECK(a->utf8.n_pending == b->utf8.n_pending);
        CHECK(memcmp(a->utf8.pending, b->utf8.pending, a->utf8.n_pending) == 0);
        CHECK(a->transcript_size == b->transcript_size);
        if (a->transcript_size)
                CHECK(memcmp(a->transcript, b->transcript, a->transcript_size) == 0);
        CHECK(memcmp(a->meta.model_hash, b->meta.model_hash, 32) == 0);
        CHECK(a->meta.n_tokens == b->meta.n_tokens);
        CHECK(a->meta.n_turns == b->meta.n_turns);
        CHECK(a->meta.arch == b->meta.arch && a->meta.n_layer == b->meta.n_layer && a->meta.n_vocab == b->meta.n_vocab);
        CHECK_STREQ(a->meta.title, b->meta.title);
}
