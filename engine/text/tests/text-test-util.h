/* text-test-util.h: helpers shared by the engine/text tests (deterministic random data, file reading). */
#pragma once

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "engine/text/sampler.h"
#include "tests/lib/check.h"

static inline uint32_t test_rand(Rng *r, uint32_t n) {
        return (uint32_t)(rng_next(r) % n);
}

/* Whole file, NUL-terminated; NULL when it cannot be read. */
static inline char *test_read_file(const char *path, size_t *ret_len) {
        FILE *f = fopen(path, "re");
        char *buf = NULL;
        size_t cap = 0, n = 0;

        if (!f)
                return NULL;
        for (;;) {
                if (n + 65536 + 1 > cap) {
                        cap = (n + 65536 + 1) * 2;
                        buf = realloc(buf, cap);
                        CHECK(buf);
                }
                size_t k = fread(buf + n, 1, cap - n - 1, f);
                n += k;
                if (k == 0)
                        break;
        }
        fclose(f);
        buf[n] = 0;
        *ret_len = n;
        return buf;
}
