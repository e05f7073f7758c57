/* cpu.c: feature detection. cpuid alone is not enough: the OS must also save the wider register
 * state on context switch (XCR0 via xgetbv), or the first AVX instruction faults. */
#include <pthread.h>

#include "kernels/cpu.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>

static unsigned long long xgetbv0(void) {
        unsigned eax, edx;
        __asm__ __volatile__("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
        return ((unsigned long long)edx << 32) | eax;
}

static void detect(CpuFeatures *f) {
        unsigned a, b, c, d;
        if (!__get_cpuid(1, &a, &b, &c, &d))
                return;
        bool osxsave = c & (1u << 27), avx = c & (1u << 28);
        bool fma = c & (1u << 12), f16c = c & (1u << 29);
        if (!osxsave || !avx)
                return;
        unsigned long long xcr0 = xgetbv0();
        bool ymm_ok = (xcr0 & 0x6) == 0x6;   /* SSE + AVX state */
        bool zmm_ok = (xcr0 & 0xe6) == 0xe6; /* + opmask, ZMM_Hi256, Hi16_ZMM */
        if (!ymm_ok)
                return;

        unsigned max_leaf = __get_cpuid_max(0, NULL);
        if (max_leaf < 7)
                return;
        __cpuid_count(7, 0, a, b, c, d);
        f->avx2 = (b & (1u << 5)) && fma && f16c;
        f->fma = fma;
        f->f16c = f16c;
        unsigned a1, b1, c1, d1;
        __cpuid_count(7, 1, a1, b1, c1, d1);
        f->avxvnni = a1 & (1u << 4);
        if (zmm_ok) {
                f->avx512f = b & (1u << 16);
                f->avx512bw = b & (1u << 30);
                f->avx512vl = b & (1u << 31);
                f->avx512vnni = c & (1u << 11);
                f->avx512bf16 = a1 & (1u << 5);
        }
}
#elif defined(__aarch64__)
#include <sys/auxv.h>
#ifndef HWCAP_ASIMDDP
#define HWCAP_ASIMDDP (1 << 20)
#endif

static void detect(CpuFeatures *f) {
        unsigned long hw = getauxval(AT_HWCAP);
        f->neon = true; /* mandatory on aarch64 */
        f->asimddp = hw & HWCAP_ASIMDDP;
}
#else
static void detect(CpuFeatures *f) {
}
#endif

static CpuFeatures features;
static pthread_once_t features_once = PTHREAD_ONCE_INIT;

static void features_init(void) {
        detect(&features);
}

const CpuFeatures *cpu_features(void) {
        pthread_once(&features_once, features_init);
        return &features;
}
