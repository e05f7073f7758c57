/* bench-ceilings: the machine's physical limits that the kernels are measured against.
 *   read bandwidth: threads each stream their part of a buffer far larger than the caches
 *   FMA peak: independent f32 FMA chains in the widest registers the CPU runs
 *   int8 dot peak: independent vpdpbusd chains (vpmaddubsw + vpmaddwd without VNNI), alone and with
 *   the float work that a quantized block's scales add (below)
 * Usage: bench-ceilings [--threads N] [--mib M] [--json] */
#include <getopt.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

static double now(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

typedef struct Part {
        const float *p;
        size_t n;
        long iters;
        int wide;
        double result;
        double macs; /* i8_thread: multiply-adds done */
        bool scaled; /* i8_thread: with the block scales' float work (VNNI only) */
        pthread_barrier_t *barrier;
} Part;

static volatile float sink;

static float sum_plain(const float *p, size_t n) {
        float s[16] = { 0 };
        for (size_t i = 0; i + 16 <= n; i += 16)
                for (int l = 0; l < 16; l++)
                        s[l] += p[i + l];
        float t = 0;
        for (int l = 0; l < 16; l++)
                t += s[l];
        return t;
}

#if defined(__x86_64__)
__attribute__((target("avx512f"))) static float sum_avx512(const float *p, size_t n) {
        __m512 a = _mm512_setzero_ps(), b = a, c = a, d = a;
        for (size_t i = 0; i + 64 <= n; i += 64) {
                a = _mm512_add_ps(a, _mm512_load_ps(p + i));
                b = _mm512_add_ps(b, _mm512_load_ps(p + i + 16));
                c = _mm512_add_ps(c, _mm512_load_ps(p + i + 32));
                d = _mm512_add_ps(d, _mm512_load_ps(p + i + 48));
        }
        return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a, b), _mm512_add_ps(c, d)));
}

__attribute__((target("avx2"))) static float sum_avx2(const float *p, size_t n) {
        __m256 a = _mm256_setzero_ps(), b = a, c = a, d = a;
        for (size_t i = 0; i + 32 <= n; i += 32) {
                a = _mm256_add_ps(a, _mm256_load_ps(p + i));
                b = _mm256_add_ps(b, _mm256_load_ps(p + i + 8));
                c = _mm256_add_ps(c, _mm256_load_ps(p + i + 16));
                d = _mm256_add_ps(d, _mm256_load_ps(p + i + 24));
        }
        float t[8];
        _mm256_storeu_ps(t, _mm256_add_ps(_mm256_add_ps(a, b), _mm256_add_ps(c, d)));
        return t[0] + t[1] + t[2] + t[3] + t[4] + t[5] + t[6] + t[7];
}

/* 12 independent chains cover FMA latency (4) x 2 pipes with room to spare; named variables, not
 * an array, so that every chain stays in a register. */
#define FMA12(T, fmadd)                                                                                                \
        do {                                                                                                           \
                a0 = fmadd(a0, m, c), a1 = fmadd(a1, m, c), a2 = fmadd(a2, m, c);                                      \
                a3 = fmadd(a3, m, c), a4 = fmadd(a4, m, c), a5 = fmadd(a5, m, c);                                      \
                a6 = fmadd(a6, m, c), a7 = fmadd(a7, m, c), a8 = fmadd(a8, m, c);                                      \
                a9 = fmadd(a9, m, c), a10 = fmadd(a10, m, c), a11 = fmadd(a11, m, c);                                  \
        } while (0)

__attribute__((target("avx512f"))) static float fma_avx512(long iters) {
        __m512 m = _mm512_set1_ps(0.999999f), c = _mm512_set1_ps(1e-7f);
        /* distinct starting values: identical chains would be merged by the compiler */
        __m512 a0 = _mm512_set1_ps(0), a1 = _mm512_set1_ps(1), a2 = _mm512_set1_ps(2), a3 = _mm512_set1_ps(3);
        __m512 a4 = _mm512_set1_ps(4), a5 = _mm512_set1_ps(5), a6 = _mm512_set1_ps(6), a7 = _mm512_set1_ps(7);
        __m512 a8 = _mm512_set1_ps(8), a9 = _mm512_set1_ps(9), a10 = _mm512_set1_ps(10), a11 = _mm512_set1_ps(11);
        for (long it = 0; it < iters; it++)
                FMA12(__m512, _mm512_fmadd_ps);
        __m512 s = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)),
                                 _mm512_add_ps(_mm512_add_ps(a4, a5), _mm512_add_ps(a6, a7)));
        s = _mm512_add_ps(s, _mm512_add_ps(_mm512_add_ps(a8, a9), _mm512_add_ps(a10, a11)));
        return _mm512_reduce_add_ps(s);
}

__attribute__((target("avx2,fma"))) static float fma_avx2(long iters) {
        __m256 m = _mm256_set1_ps(0.999999f), c = _mm256_set1_ps(1e-7f);
        /* distinct starting values: identical chains would be merged by the compiler */
        __m256 a0 = _mm256_set1_ps(0), a1 = _mm256_set1_ps(1), a2 = _mm256_set1_ps(2), a3 = _mm256_set1_ps(3);
        __m256 a4 = _mm256_set1_ps(4), a5 = _mm256_set1_ps(5), a6 = _mm256_set1_ps(6), a7 = _mm256_set1_ps(7);
        __m256 a8 = _mm256_set1_ps(8), a9 = _mm256_set1_ps(9), a10 = _mm256_set1_ps(10), a11 = _mm256_set1_ps(11);
        for (long it = 0; it < iters; it++)
                FMA12(__m256, _mm256_fmadd_ps);
        __m256 s = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)),
                                 _mm256_add_ps(_mm256_add_ps(a4, a5), _mm256_add_ps(a6, a7)));
        s = _mm256_add_ps(s, _mm256_add_ps(_mm256_add_ps(a8, a9), _mm256_add_ps(a10, a11)));
        float t[8];
        _mm256_storeu_ps(t, s);
        return t[0] + t[7];
}

/* int8 dot products as the q8_0 kernels do them: vpdpbusd (64 multiply-adds per zmm) where the CPU
 * has AVX-512 VNNI, else vpmaddubsw + vpmaddwd (32 per ymm pair). Returns multiply-adds done. */
__attribute__((target("avx512f,avx512vnni"))) static double i8_vnni(long iters) {
        __m512i m = _mm512_set1_epi8(3), c = _mm512_set1_epi8(5);
        __m512i a0 = _mm512_set1_epi32(0), a1 = _mm512_set1_epi32(1), a2 = _mm512_set1_epi32(2);
        __m512i a3 = _mm512_set1_epi32(3), a4 = _mm512_set1_epi32(4), a5 = _mm512_set1_epi32(5);
        __m512i a6 = _mm512_set1_epi32(6), a7 = _mm512_set1_epi32(7), a8 = _mm512_set1_epi32(8);
        __m512i a9 = _mm512_set1_epi32(9), a10 = _mm512_set1_epi32(10), a11 = _mm512_set1_epi32(11);
        for (long it = 0; it < iters; it++)
                FMA12(__m512i, _mm512_dpbusd_epi32);
        __m512i s = _mm512_add_epi32(_mm512_add_epi32(_mm512_add_epi32(a0, a1), _mm512_add_epi32(a2, a3)),
                                     _mm512_add_epi32(_mm512_add_epi32(a4, a5), _mm512_add_epi32(a6, a7)));
        s = _mm512_add_epi32(s, _mm512_add_epi32(_mm512_add_epi32(a8, a9), _mm512_add_epi32(a10, a11)));
        sink = (float)_mm512_reduce_add_epi32(s);
        return (double)iters * 12 * 64;
}

/* The same chains with what a 4-bit x16 tile (kernels/x86-avx512vnni-x16.c) adds per block of 32
 * columns and vector: 8 vpdpbusd, then one conversion, one multiply (the two blocks' scales) and one
 * FMA into the float sum. If the multiply and the FMA share the pipes that run vpdpbusd (they do on
 * Zen 4), this rate, not the peak above, bounds those kernels. Returns multiply-adds done. */
__attribute__((target("avx512f,avx512vnni"))) static double i8_vnni_scaled(long iters) {
        __m512i m = _mm512_set1_epi8(3), c = _mm512_set1_epi8(5);
        __m512i a0 = _mm512_set1_epi32(0), a1 = _mm512_set1_epi32(1), a2 = _mm512_set1_epi32(2);
        __m512i a3 = _mm512_set1_epi32(3), a4 = _mm512_set1_epi32(4), a5 = _mm512_set1_epi32(5);
        __m512i a6 = _mm512_set1_epi32(6), a7 = _mm512_set1_epi32(7);
        __m512 d = _mm512_set1_ps(0.5f), s = _mm512_set1_ps(1e-9f), f0 = _mm512_setzero_ps(), f1 = f0;
#define DP8                                                                                                            \
        a0 = _mm512_dpbusd_epi32(a0, m, c), a1 = _mm512_dpbusd_epi32(a1, m, c);                                        \
        a2 = _mm512_dpbusd_epi32(a2, m, c), a3 = _mm512_dpbusd_epi32(a3, m, c);                                        \
        a4 = _mm512_dpbusd_epi32(a4, m, c), a5 = _mm512_dpbusd_epi32(a5, m, c);                                        \
        a6 = _mm512_dpbusd_epi32(a6, m, c), a7 = _mm512_dpbusd_epi32(a7, m, c)
        /* two blocks an iteration, into two sums, so that the FMA's latency never waits; a new scale
         * every block, as in the kernel (the multiply is not loop-invariant) */
        for (long it = 0; it < iters; it += 2) {
                DP8;
                __asm__("" : "+v"(d));
                f0 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(a0), _mm512_mul_ps(d, s), f0);
                DP8;
                __asm__("" : "+v"(d));
                f1 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(a1), _mm512_mul_ps(d, s), f1);
        }
#undef DP8
        __m512i t = _mm512_add_epi32(_mm512_add_epi32(_mm512_add_epi32(a0, a1), _mm512_add_epi32(a2, a3)),
                                     _mm512_add_epi32(_mm512_add_epi32(a4, a5), _mm512_add_epi32(a6, a7)));
        sink = (float)_mm512_reduce_add_epi32(t) + _mm512_reduce_add_ps(_mm512_add_ps(f0, f1));
        return (double)(iters + (iters & 1)) * 8 * 64;
}

/* one maddubs + madd pair per 32 multiply-adds, 12 chains (the add closing each is its own) */
#define MADD_I8(acc, x, w) _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(x, w), one))

__attribute__((target("avx2"))) static double i8_avx2(long iters) {
        __m256i m = _mm256_set1_epi8(3), c = _mm256_set1_epi8(5), one = _mm256_set1_epi16(1);
        __m256i a0 = _mm256_set1_epi32(0), a1 = _mm256_set1_epi32(1), a2 = _mm256_set1_epi32(2);
        __m256i a3 = _mm256_set1_epi32(3), a4 = _mm256_set1_epi32(4), a5 = _mm256_set1_epi32(5);
        __m256i a6 = _mm256_set1_epi32(6), a7 = _mm256_set1_epi32(7), a8 = _mm256_set1_epi32(8);
        __m256i a9 = _mm256_set1_epi32(9), a10 = _mm256_set1_epi32(10), a11 = _mm256_set1_epi32(11);
        for (long it = 0; it < iters; it++)
                FMA12(__m256i, MADD_I8);
        __m256i s = _mm256_add_epi32(_mm256_add_epi32(_mm256_add_epi32(a0, a1), _mm256_add_epi32(a2, a3)),
                                     _mm256_add_epi32(_mm256_add_epi32(a4, a5), _mm256_add_epi32(a6, a7)));
        s = _mm256_add_epi32(s, _mm256_add_epi32(_mm256_add_epi32(a8, a9), _mm256_add_epi32(a10, a11)));
        sink = (float)_mm256_extract_epi32(s, 0);
        return (double)iters * 12 * 32;
}
#endif

static int widest(void) {
#if defined(__x86_64__)
        if (__builtin_cpu_supports("avx512f"))
                return 16;
        if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
                return 8;
#endif
        return 1;
}

static void *bw_thread(void *arg) {
        Part *p = arg;
        pthread_barrier_wait(p->barrier);
        double best = 1e30;
        for (int rep = 0; rep < 5; rep++) {
                double t0 = now();
#if defined(__x86_64__)
                if (p->wide == 16)
                        sink = sum_avx512(p->p, p->n);
                else if (p->wide == 8)
                        sink = sum_avx2(p->p, p->n);
                else
#endif
                        sink = sum_plain(p->p, p->n);
                double dt = now() - t0;
                if (dt < best)
                        best = dt;
                pthread_barrier_wait(p->barrier); /* passes in lock step: all threads stream together */
        }
        p->result = best;
        return NULL;
}

static void *fma_thread(void *arg) {
        Part *p = arg;
        pthread_barrier_wait(p->barrier);
        double t0 = now();
#if defined(__x86_64__)
        if (p->wide == 16)
                sink = fma_avx512(p->iters);
        else if (p->wide == 8)
                sink = fma_avx2(p->iters);
#endif
        p->result = now() - t0;
        return NULL;
}

static void *i8_thread(void *arg) {
        Part *p = arg;
        pthread_barrier_wait(p->barrier);
        double t0 = now(), macs = 0;
#if defined(__x86_64__)
        if (__builtin_cpu_supports("avx512vnni"))
                macs = p->scaled ? i8_vnni_scaled(p->iters) : i8_vnni(p->iters);
        else if (__builtin_cpu_supports("avx2"))
                macs = i8_avx2(p->iters);
#endif
        p->result = now() - t0;
        p->macs = macs;
        return NULL;
}

static double run_parts(void *(*fn)(void *), Part *parts, unsigned n) {
        pthread_t th[64];
        pthread_barrier_t barrier;
        pthread_barrier_init(&barrier, NULL, n);
        for (unsigned i = 0; i < n; i++) {
                parts[i].barrier = &barrier;
                pthread_create(&th[i], NULL, fn, &parts[i]);
        }
        double worst = 0;
        for (unsigned i = 0; i < n; i++) {
                pthread_join(th[i], NULL);
                if (parts[i].result > worst)
                        worst = parts[i].result;
        }
        pthread_barrier_destroy(&barrier);
        return worst;
}

int main(int argc, char **argv) {
        unsigned threads = 2;
        size_t mib = 512;
        bool json = false;
        static const struct option opts[] = {
                { "threads", required_argument, NULL, 't' },
                { "mib", required_argument, NULL, 'm' },
                { "json", no_argument, NULL, 'j' },
                {},
        };
        int c;
        while ((c = getopt_long(argc, argv, "t:m:j", opts, NULL)) >= 0)
                switch (c) {
                case 't':
                        threads = (unsigned)atoi(optarg);
                        break;
                case 'm':
                        mib = (size_t)atol(optarg);
                        break;
                case 'j':
                        json = true;
                        break;
                default:
                        fprintf(stderr, "usage: %s [--threads N] [--mib M] [--json]\n", argv[0]);
                        return 2;
                }
        if (threads < 1 || threads > 64 || mib < 16) {
                fprintf(stderr, "bad --threads or --mib\n");
                return 2;
        }

        int wide = widest();
        size_t n = mib * 1024 * 1024 / sizeof(float);
        float *buf = aligned_alloc(64, n * sizeof(float));
        if (!buf) {
                fprintf(stderr, "out of memory\n");
                return 1;
        }
        for (size_t i = 0; i < n; i++) /* touch every page so the first pass does not measure faults */
                buf[i] = (float)(i & 255);

        double bw[2];
        for (int pass = 0; pass < 2; pass++) {
                unsigned nt = pass == 0 ? 1 : threads;
                Part parts[64];
                size_t per = n / nt / 64 * 64;
                for (unsigned i = 0; i < nt; i++)
                        parts[i] = (Part){ .p = buf + i * per, .n = per, .wide = wide };
                double dt = run_parts(bw_thread, parts, nt);
                bw[pass] = (double)(per * nt * sizeof(float)) / dt / 1e9;
        }
        free(buf);

        double gflops = 0;
        if (wide > 1) {
                long iters = 20 * 1000 * 1000;
                Part parts[64];
                for (unsigned i = 0; i < threads; i++)
                        parts[i] = (Part){ .iters = iters, .wide = wide };
                double dt = run_parts(fma_thread, parts, threads);
                gflops = (double)iters * 12 * wide * 2 * threads / dt / 1e9;
        }

        /* int8 multiply-adds (q8_0 / q4_0 products), counted as 2 operations each like the FMAs; then
         * the same with a quantized block's scale work (0 where not measured) */
        double i8_gop[2] = { 0, 0 };
        for (int scaled = 0; scaled < 2; scaled++) {
                Part parts[64];
                for (unsigned i = 0; i < threads; i++)
                        parts[i] = (Part){ .iters = 10 * 1000 * 1000, .scaled = scaled };
                double dt = run_parts(i8_thread, parts, threads);
                if (parts[0].macs > 0)
                        i8_gop[scaled] = parts[0].macs * 2 * threads / dt / 1e9;
        }

        if (json)
                printf("{\"read_gb_s_1t\": %.2f, \"read_gb_s\": %.2f, \"threads\": %u, \"fma_gflop_s\": %.1f, "
                       "\"vector_lanes\": %d, \"int8_gop_s\": %.1f, \"int8_scaled_gop_s\": %.1f}\n",
                       bw[0], bw[1], threads, gflops, wide, i8_gop[0], i8_gop[1]);
        else {
                printf("read bandwidth, 1 thread:   %6.2f GB/s\n", bw[0]);
                printf("read bandwidth, %u threads:  %6.2f GB/s\n", threads, bw[1]);
                printf("f32 FMA peak, %u threads:    %6.1f GFLOP/s (%d lanes)\n", threads, gflops, wide);
                if (i8_gop[0] > 0)
                        printf("int8 dot peak, %u threads:   %6.1f GOP/s\n", threads, i8_gop[0]);
                if (i8_gop[1] > 0)
                        printf("  with block scales:         %6.1f GOP/s (%.0f%%: 8 vpdpbusd, 1 multiply, 1 FMA "
                               "per block of 32 and vector)\n",
                               i8_gop[1], 100 * i8_gop[1] / i8_gop[0]);
        }
        return 0;
}
