/* cpu.h: what this CPU and OS can run (cpuid plus the OS-enabled register state from xgetbv). */
#pragma once

#include <stdbool.h>

typedef struct CpuFeatures {
        bool avx2, fma, f16c;             /* and the OS saves YMM state */
        bool avxvnni;                     /* AVX-VNNI: 256-bit vpdpbusd, VEX-encoded */
        bool avx512f, avx512bw, avx512vl; /* and the OS saves ZMM + opmask state */
        bool avx512vnni, avx512bf16;
        bool neon, asimddp; /* aarch64 */
} CpuFeatures;

const CpuFeatures *cpu_features(void);
