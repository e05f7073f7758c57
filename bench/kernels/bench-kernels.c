/* bench-kernels: throughput of the matrix kernels on the RWKV matrix shapes, per dtype and ISA.
 *   matvec   (decode): GB/s of weights streamed, over copies that together exceed the caches
 *   matmul64 (prefill chunk of 64 vectors): GFLOP/s
 *   batch8/16 (8 or 16 sessions decoded together): speed-up over as many separate matvecs
 * Usage: bench-kernels [--shape 0.1B,0.4B,1.5B] [--types f16,q8_0,...] [--isa avx2,avx512-novnni,...]
 *                      [--threads N] [--seconds S] [--json] */
#include <getopt.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kernels/kernels.h"

static double now(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static uint64_t rng = 88172645463325252ull;
static float randf(void) {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        return (float)((double)(rng >> 11) * 0x1p-53 * 2.0 - 1.0);
}

static bool in_list(const char *list, const char *item) {
        if (!list)
                return true;
        size_t n = strlen(item);
        for (const char *p = list; (p = strstr(p, item)); p += n)
                if ((p == list || p[-1] == ',') && (p[n] == ',' || p[n] == 0))
                        return true;
        return false;
}

/* Seconds per call of an n_vec product (1: matvec), the weights rotating over copies larger than
 * the caches so that every call streams them from memory. */
static double time_calls(const Kernels *k, ThreadPool *pool, Tensor *tw, const uint8_t *w, size_t mbytes, size_t copies,
                         const float *x, size_t n_vec, float *y, double seconds) {
        size_t calls = 0;
        double dt, t0 = now();
        do {
                tw->data = w + (calls % copies) * mbytes;
                if (n_vec == 1)
                        kernels_matvec(k, pool, tw, x, y);
                else
                        kernels_matmul(k, pool, tw, x, n_vec, y);
                calls++;
        } while ((dt = now() - t0) < seconds || calls < copies);
        return dt / (double)calls;
}

typedef struct Shape {
        const char *name;
        size_t C;
} Shape;

int main(int argc, char **argv) {
        const char *shapes_arg = "0.4B", *types_arg = "f32,f16,bf16,q8_0,q4_0", *isa_arg = NULL;
        unsigned threads = 2;
        double seconds = 0.3;
        bool json = false;
        static const struct option opts[] = {
                { "shape", required_argument, NULL, 's' },
                { "types", required_argument, NULL, 'T' },
                { "isa", required_argument, NULL, 'i' },
                { "threads", required_argument, NULL, 't' },
                { "seconds", required_argument, NULL, 'S' },
                { "json", no_argument, NULL, 'j' },
                {},
        };
        int c;
        while ((c = getopt_long(argc, argv, "", opts, NULL)) >= 0)
                switch (c) {
                case 's':
                        shapes_arg = optarg;
                        break;
                case 'T':
                        types_arg = optarg;
                        break;
                case 'i':
                        isa_arg = optarg;
                        break;
                case 't':
                        threads = (unsigned)atoi(optarg);
                        break;
                case 'S':
                        seconds = atof(optarg);
                        break;
                case 'j':
                        json = true;
                        break;
                default:
                        fprintf(stderr, "usage: see the comment at the top of bench-kernels.c\n");
                        return 2;
                }

        static const Shape shapes[] = { { "0.1B", 768 }, { "0.4B", 1024 }, { "1.5B", 2048 } };
        /* without --isa: every path but the scalar reference and the tables that are never the
         * default on a CPU that has them: avx512-novnni (the AVX-512 table without its VNNI
         * kernels, a stand-in for Skylake-SP on CPUs that have VNNI) and, where AVX-512 is the
         * default, avx2-vnni (then the EVEX form of what AVX-VNNI CPUs run) */
        static const char *const isas[] = { "scalar", "avx2", "avx2-vnni", "avx512-novnni", "avx512", "neon" };
        ThreadPool *pool = NULL;
        if (threadpool_new(threads, &pool) < 0) {
                fprintf(stderr, "threadpool_new failed\n");
                return 1;
        }
        if (!json)
                printf("%-5s %-6s %-13s %-12s %9s %12s %9s %8s\n", "shape", "type", "isa", "matrix", "matvec",
                       "matmul64", "batch8", "batch16");

        for (size_t s = 0; s < sizeof(shapes) / sizeof(shapes[0]); s++) {
                if (!in_list(shapes_arg, shapes[s].name))
                        continue;
                /* The FFN key matrix (4C x C): the most common shape of a decode step. */
                size_t rows = 4 * shapes[s].C, cols = shapes[s].C;
                for (int t = 0; t < _DTYPE_MAX; t++) {
                        if (!dtype_is_native((DType)t) || !in_list(types_arg, dtype_name((DType)t)))
                                continue;
                        size_t rb = dtype_row_bytes((DType)t, cols), mbytes = rb * rows;
                        /* enough copies to stream 256 MiB, far beyond the last-level cache */
                        size_t copies = (256u << 20) / mbytes + 1;
                        uint8_t *w = malloc(mbytes * copies);
                        float *row = malloc(16 * cols * sizeof(float));
                        float *x = malloc(64 * cols * sizeof(float)), *y = malloc(64 * rows * sizeof(float));
                        if (!w || !row || !x || !y) {
                                fprintf(stderr, "out of memory\n");
                                return 1;
                        }
                        /* 16 rows at a time: the most any type encodes together (dtype_group_rows) */
                        for (size_t r = 0; r < rows; r += 16) {
                                for (size_t i = 0; i < 16 * cols; i++)
                                        row[i] = randf() * 0.05f;
                                dtype_rows_from_f32((DType)t, row, w + r * rb, cols, 16);
                        }
                        for (size_t k = 1; k < copies; k++)
                                memcpy(w + k * mbytes, w, mbytes);
                        for (size_t i = 0; i < 64 * cols; i++)
                                x[i] = randf();

                        for (size_t ii = 0; ii < sizeof(isas) / sizeof(isas[0]); ii++) {
                                const Kernels *k = kernels_get_isa(isas[ii]);
                                if (!k || (isa_arg ? !in_list(isa_arg, isas[ii])
                                                   : strcmp(isas[ii], "scalar") == 0 ||
                                                             strcmp(isas[ii], "avx512-novnni") == 0 ||
                                                             (strcmp(isas[ii], "avx2-vnni") == 0 &&
                                                              kernels_get_isa("avx512"))))
                                        continue;
                                Tensor tw = {
                                        .dtype = (DType)t, .n_dims = 2, .shape = { rows, cols }, .nbytes = mbytes
                                };

                                /* matvec and 8 / 16 vectors over rotating copies, in alternating rounds
                                 * (best of each): on a shared box the load changes within seconds, and
                                 * the ratio is only meaningful between measurements taken together */
                                double t_mv = HUGE_VAL, t_b8 = HUGE_VAL, t_b16 = HUGE_VAL;
                                for (int round = 0; round < 5; round++) {
                                        t_mv = fmin(t_mv,
                                                    time_calls(k, pool, &tw, w, mbytes, copies, x, 1, y, seconds / 5));
                                        t_b8 = fmin(t_b8,
                                                    time_calls(k, pool, &tw, w, mbytes, copies, x, 8, y, seconds / 5));
                                        t_b16 = fmin(t_b16, time_calls(k, pool, &tw, w, mbytes, copies, x, 16, y,
                                                                       seconds / 5));
                                }
                                double gbs = (double)mbytes / t_mv / 1e9;
                                double batch8 = 8 * t_mv / t_b8, batch16 = 16 * t_mv / t_b16;

                                /* matmul, 64 vectors: weights stay hot, compute-bound */
                                tw.data = w;
                                size_t calls = 0;
                                double dt, t0 = now();
                                do {
                                        kernels_matmul(k, pool, &tw, x, 64, y);
                                        calls++;
                                } while ((dt = now() - t0) < seconds);
                                double gflops = 2.0 * (double)rows * (double)cols * 64 * (double)calls / dt / 1e9;

                                if (json)
                                        printf("{\"shape\": \"%s\", \"type\": \"%s\", \"isa\": \"%s\", \"rows\": %zu, "
                                               "\"cols\": %zu, \"threads\": %u, \"matvec_gb_s\": %.2f, "
                                               "\"matmul64_gflop_s\": %.1f, \"batch8_speedup\": %.2f, "
                                               "\"batch16_speedup\": %.2f}\n",
                                               shapes[s].name, dtype_name((DType)t), k->isa, rows, cols, threads, gbs,
                                               gflops, batch8, batch16);
                                else
                                        printf("%-5s %-6s %-13s %5zux%-6zu %6.2f GB/s %7.1f GF/s %7.2fx %7.2fx\n",
                                               shapes[s].name, dtype_name((DType)t), k->isa, rows, cols, gbs, gflops,
                                               batch8, batch16);
                                fflush(stdout);
                        }
                        free(w);
                        free(row);
                        free(x);
                        free(y);
                }
        }
        threadpool_free(pool);
        return 0;
}
