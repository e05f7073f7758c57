/* kernels.c: the per-ISA kernel tables, chosen once, and the threaded matrix wrappers. */
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/cpu.h"
#include "kernels/kernels-internal.h"

/* In order of preference: the last usable one is the default. ISA_AVX512_NOVNNI is the AVX-512 table
 * without its AVX-512 VNNI kernels, i.e. what a CPU with AVX-512 F/BW/VL but no VNNI (Skylake-SP/X)
 * runs. It comes before ISA_AVX512 so it is never the default; RWKV_ISA=avx512-novnni selects it,
 * so that those kernels are tested and measured on CPUs that have VNNI too. ISA_AVX2_VNNI is the
 * AVX2 table with 256-bit vpdpbusd: the default on CPUs with AVX-VNNI and no AVX-512 (Intel client
 * cores since Alder Lake); on AVX-512 VNNI CPUs the same code in EVEX encoding, for RWKV_ISA.
 * ISA_NEON_DOTPROD is the NEON table with the grouped int8 types on sdot (arm-neon-dotprod.c), the
 * default where the CPU has the dot-product extension; RWKV_ISA=neon runs the baseline there. */
enum {
        ISA_SCALAR,
        ISA_AVX2,
        ISA_AVX2_VNNI,
        ISA_AVX512_NOVNNI,
        ISA_AVX512,
        ISA_NEON,
        ISA_NEON_DOTPROD,
        _ISA_MAX,
};

static const char *const isa_names[_ISA_MAX] = {
        [ISA_SCALAR] = "scalar",
        [ISA_AVX2] = "avx2",
        [ISA_AVX2_VNNI] = "avx2-vnni",
        [ISA_AVX512_NOVNNI] = "avx512-novnni",
        [ISA_AVX512] = "avx512",
        [ISA_NEON] = "neon",
        [ISA_NEON_DOTPROD] = "neon-dotprod",
};

static Kernels tables[_ISA_MAX];
static bool table_ok[_ISA_MAX];
static const Kernels *selected;
static pthread_once_t tables_once = PTHREAD_ONCE_INIT;

static void tables_init(void) {
        const CpuFeatures *f = cpu_features();

        for (int i = 0; i < _ISA_MAX; i++)
                kernels_fill_generic(&tables[i]);
        table_ok[ISA_SCALAR] = true;

#ifdef RWKV_KERNELS_AVX2
        if (f->avx2 && f->fma && f->f16c) {
                kernels_fill_avx2(&tables[ISA_AVX2]);
                table_ok[ISA_AVX2] = true;
        }
#endif
#ifdef RWKV_KERNELS_AVX2VNNI
        if (f->avx2 && f->fma && f->f16c && f->avxvnni) {
                kernels_fill_avx2vnni(&tables[ISA_AVX2_VNNI]);
                table_ok[ISA_AVX2_VNNI] = true;
        }
#endif
#ifdef RWKV_KERNELS_AVX2VNNI_EVEX
        if (!table_ok[ISA_AVX2_VNNI] && f->avx2 && f->fma && f->f16c && f->avx512f && f->avx512vl && f->avx512vnni) {
                kernels_fill_avx2vnni_evex(&tables[ISA_AVX2_VNNI]);
                table_ok[ISA_AVX2_VNNI] = true;
        }
#endif
#ifdef RWKV_KERNELS_AVX512
        if (f->avx2 && f->fma && f->f16c && f->avx512f && f->avx512bw && f->avx512vl) {
                /* AVX-512 files fall back to AVX2 kernels for what they do not override */
                kernels_fill_avx2(&tables[ISA_AVX512]);
                kernels_fill_avx512(&tables[ISA_AVX512]);
                tables[ISA_AVX512_NOVNNI] = tables[ISA_AVX512];
                tables[ISA_AVX512_NOVNNI].isa = isa_names[ISA_AVX512_NOVNNI];
                table_ok[ISA_AVX512_NOVNNI] = true;
#ifdef RWKV_KERNELS_AVX512VNNI
                if (f->avx512vnni) {
                        kernels_fill_avx512vnni(&tables[ISA_AVX512]);
                        kernels_fill_avx512vnni_x16(&tables[ISA_AVX512]);
                        kernels_fill_avx512vnni_q4(&tables[ISA_AVX512]);
                }
#endif
                table_ok[ISA_AVX512] = true;
        }
#endif
#ifdef RWKV_KERNELS_NEON
        if (f->neon) {
                kernels_fill_neon(&tables[ISA_NEON]);
                table_ok[ISA_NEON] = true;
        }
#endif
#ifdef RWKV_KERNELS_NEON_DOTPROD
        if (f->neon && f->asimddp) {
                tables[ISA_NEON_DOTPROD] = tables[ISA_NEON];
                tables[ISA_NEON_DOTPROD].isa = isa_names[ISA_NEON_DOTPROD];
                kernels_fill_neon_dotprod(&tables[ISA_NEON_DOTPROD]);
                table_ok[ISA_NEON_DOTPROD] = true;
        }
#endif
        (void)f;

        int best = ISA_SCALAR;
        for (int i = 0; i < _ISA_MAX; i++)
                if (table_ok[i])
                        best = i;

        /* RWKV_ISA forces a path (tests, comparisons); an unsupported request gets the best one. */
        const char *want = secure_getenv("RWKV_ISA");
        int chosen = best;
        if (want && *want)
                for (int i = 0; i < _ISA_MAX; i++)
                        if (strcmp(want, isa_names[i]) == 0 && table_ok[i])
                                chosen = i;
        selected = &tables[chosen];
}

const Kernels *kernels_get(void) {
        pthread_once(&tables_once, tables_init);
        return selected;
}

const Kernels *kernels_get_isa(const char *isa) {
        pthread_once(&tables_once, tables_init);
        if (!isa)
                return NULL;
        for (int i = 0; i < _ISA_MAX; i++)
                if (strcmp(isa, isa_names[i]) == 0)
                        return table_ok[i] ? &tables[i] : NULL;
        return NULL;
}

/* ---- threaded wrappers ---- */

/* Below this many weight bytes (times vectors) a job is not worth waking the pool for. */
#define PARALLEL_MIN_BYTES (64u * 1024u)
/* Row ranges start on multiples of this, so SIMD kernels that tile rows see whole tiles and a
 * grouped type's groups are never split (a multiple of every dtype_group_rows()). */
#define ROW_ALIGN 16

static inline size_t min_sz(size_t a, size_t b) {
        return a < b ? a : b;
}

typedef struct MatrixJob {
        MatvecFn matvec;
        MatmulFn matmul;
        const void *w;
        size_t row_bytes, rows, cols;
        const float *x;
        float *y;
        size_t n_vec;
} MatrixJob;

static void job_range(const MatrixJob *j, unsigned task, unsigned n_tasks, size_t *r0, size_t *r1) {
        size_t units = (j->rows + ROW_ALIGN - 1) / ROW_ALIGN;
        size_t a = units * task / n_tasks, b = units * (task + 1) / n_tasks;
        *r0 = min_sz(a * ROW_ALIGN, j->rows);
        *r1 = min_sz(b * ROW_ALIGN, j->rows);
}

static void matrix_task(void *ctx, unsigned task, unsigned n_tasks) {
        const MatrixJob *j = ctx;
        size_t r0, r1;
        job_range(j, task, n_tasks, &r0, &r1);
        if (r0 >= r1)
                return;
        if (j->matvec)
                j->matvec(j->w, j->row_bytes, j->cols, j->x, j->y, r0, r1);
        else
                j->matmul(j->w, j->row_bytes, j->cols, j->x, j->cols, j->n_vec, j->y, j->rows, r0, r1);
}

static bool job_prepare(const Kernels *k, const Tensor *w, const float *x, size_t n_vec, float *y, MatrixJob *j) {
        *j = (MatrixJob){ .w = w->data, .x = x, .y = y, .n_vec = n_vec };
        if (!dtype_is_valid(w->dtype) || w->n_dims < 1 || w->n_dims > 2)
                return false;
        j->rows = tensor_rows(w);
        j->cols = tensor_cols(w);
        j->row_bytes = dtype_row_bytes(w->dtype, j->cols);
        if (j->row_bytes == 0 || j->rows == 0 || j->row_bytes * j->rows > w->nbytes ||
            j->rows % dtype_group_rows(w->dtype) != 0)
                return false;
        j->matvec = n_vec == 1 ? k->matvec[w->dtype] : NULL;
        j->matmul = n_vec == 1 ? NULL : k->matmul[w->dtype];
        return j->matvec || j->matmul;
}

static void run_job(ThreadPool *pool, MatrixJob *j) {
        unsigned n = threadpool_size(pool);
        size_t bytes = j->row_bytes * j->rows * j->n_vec;
        if (bytes < PARALLEL_MIN_BYTES || j->rows < 2 * ROW_ALIGN)
                n = 1;
        threadpool_run(pool, matrix_task, j, n);
}

/* A malformed tensor is a bug in the caller (the loader validates shapes); make it loud in the
 * output instead of reading out of bounds. */
static void fill_nan(float *y, size_t n) {
        for (size_t i = 0; i < n; i++)
                y[i] = NAN;
}

void kernels_matvec(const Kernels *k, ThreadPool *pool, const Tensor *w, const float *x, float *y) {
        MatrixJob j;
        if (!job_prepare(k, w, x, 1, y, &j)) {
                fill_nan(y, tensor_rows(w));
                return;
        }
        run_job(pool, &j);
}

void kernels_matmul(const Kernels *k, ThreadPool *pool, const Tensor *w, const float *x, size_t n_vec, float *y) {
        if (n_vec == 0)
                return;
        MatrixJob j;
        if (!job_prepare(k, w, x, n_vec, y, &j)) {
                fill_nan(y, tensor_rows(w) * n_vec);
                return;
        }
        run_job(pool, &j);
}
