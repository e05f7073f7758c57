/* test-util.h: deterministic random data for the kernel tests. */
#pragma once

#include <stdint.h>

static uint64_t test_rng_state = 0x9e3779b97f4a7c15ull;

static inline void test_seed(uint64_t s) {
        test_rng_state = s * 0x9e3779b97f4a7c15ull + 1;
}

static inline uint64_t test_rand64(void) {
        /* splitmix64 */
        uint64_t z = (test_rng_state += 0x9e3779b97f4a7c15ull);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        return z ^ (z >> 31);
}

static inline uint32_t test_rand32(void) {
        return (uint32_t)(test_rand64() >> 32);
}

/* Uniform in [-1, 1). */
static inline float test_randf(void) {
        return (float)((double)(test_rand64() >> 11) * 0x1p-52 - 1.0);
}
