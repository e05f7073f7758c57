/* test-util.h: deterministic random data for the kernel tests. */
#pragma once

#include <stdint.h>

/* Every table a kernel test goes through (those this CPU cannot run are skipped).
 * avx512-novnni: the AVX-512 table without its VNNI kernels (what Skylake-SP runs), testable here;
 * avx2-vnni: the AVX2 table with 256-bit vpdpbusd (AVX-VNNI, or its EVEX form on AVX-512 VNNI CPUs);
 * neon-dotprod: the NEON table with sdot for the grouped int8 types */
static const char *const test_isas[] = { "scalar", "avx2", "avx2-vnni",   "avx512-novnni",
                                         "avx512", "neon", "neon-dotprod" };

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
