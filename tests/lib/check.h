/* check.h: assertion macros for unit tests; on failure they print where, what, and errno, then exit 1.
 * Exit 77 means "skipped" to meson. */
#pragma once

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EXIT_TEST_SKIP 77

#define CHECK(expr)                                                                                    \
        do {                                                                                           \
                if (!(expr)) {                                                                         \
                        int _e = errno;                                                                \
                        fprintf(stderr, "%s:%d: check failed: %s (errno: %s)\n", __FILE__, __LINE__,    \
                                #expr, strerror(_e));                                                  \
                        exit(1);                                                                       \
                }                                                                                      \
        } while (0)

/* r is 0 or a negative errno */
#define CHECK_OK(expr)                                                                                 \
        do {                                                                                           \
                long _r = (long) (expr);                                                               \
                if (_r < 0) {                                                                          \
                        fprintf(stderr, "%s:%d: %s failed: %s\n", __FILE__, __LINE__, #expr,           \
                                strerror((int) -_r));                                                  \
                        exit(1);                                                                       \
                }                                                                                      \
        } while (0)

#define CHECK_ERR(expr, err)                                                                           \
        do {                                                                                           \
                long _r = (long) (expr);                                                               \
                if (_r != -(long) (err)) {                                                             \
                        fprintf(stderr, "%s:%d: %s returned %ld (%s), expected -%s\n", __FILE__,        \
                                __LINE__, #expr, _r, _r < 0 ? strerror((int) -_r) : "not an error", #err); \
                        exit(1);                                                                       \
                }                                                                                      \
        } while (0)

#define CHECK_STREQ(a, b)                                                                              \
        do {                                                                                           \
                const char *_a = (a), *_b = (b);                                                       \
                if (!_a || !_b || strcmp(_a, _b) != 0) {                                               \
                        fprintf(stderr, "%s:%d: \"%s\" != \"%s\"\n", __FILE__, __LINE__,                \
                                _a ? _a : "(null)", _b ? _b : "(null)");                               \
                        exit(1);                                                                       \
                }                                                                                      \
        } while (0)

#define CHECK_NEAR(a, b, tol)                                                                          \
        do {                                                                                           \
                double _a = (a), _b = (b);                                                             \
                if (!(fabs(_a - _b) <= (tol))) {                                                       \
                        fprintf(stderr, "%s:%d: %s = %.9g, %s = %.9g, |diff| %.3g > %.3g\n", __FILE__,   \
                                __LINE__, #a, _a, #b, _b, fabs(_a - _b), (double) (tol));              \
                        exit(1);                                                                       \
                }                                                                                      \
        } while (0)

#define SKIP(...)                                                                                      \
        do {                                                                                           \
                fprintf(stderr, "SKIP: " __VA_ARGS__);                                                 \
                fputc('\n', stderr);                                                                   \
                exit(EXIT_TEST_SKIP);                                                                  \
        } while (0)

/* The reference data folder (../shared/reference), or skip the test with a clear message. */
static inline const char *test_reference_dir(void) {
        const char *d = getenv("RWKV_REFERENCE_DIR");
        if (!d || !*d)
                SKIP("RWKV_REFERENCE_DIR is not set");
        char probe[4096];
        snprintf(probe, sizeof(probe), "%s/README.md", d);
        FILE *f = fopen(probe, "re");
        if (!f)
                SKIP("reference data not found at %s (a fresh clone has no ../shared)", d);
        fclose(f);
        return d;
}
