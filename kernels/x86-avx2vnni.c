/* x86-avx2vnni.c: the AVX2 table (x86-avx2-kernels.h) with its int8 dot products in AVX-VNNI's
 * 256-bit vpdpbusd (VEX), for CPUs that have it without AVX-512 (Intel Alder Lake and later client
 * cores, Sierra Forest). Built with -mavxvnni for this file only and entered only when cpu.c found
 * avx_vnni. The same code built with the EVEX instruction (x86-avx2vnni-evex.c) runs on AVX-512
 * VNNI CPUs under RWKV_ISA=avx2-vnni, which is how it is tested where no AVX-VNNI CPU is at hand. */
#define ISA_NAME "avx2-vnni"
#define FN(name) name##_avx2vnni
#define ISA_SFX avx2vnni
#define AVX2_DPBUSD _mm256_dpbusd_avx_epi32

#include "kernels/x86-avx2-kernels.h"
