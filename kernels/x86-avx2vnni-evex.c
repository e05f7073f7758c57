/* x86-avx2vnni-evex.c: x86-avx2vnni.c's table with the EVEX encoding of the 256-bit vpdpbusd
 * (AVX512-VNNI + AVX512-VL). Never the default (a CPU with AVX-512 runs the AVX-512 table): it is
 * what RWKV_ISA=avx2-vnni selects on a CPU with AVX-512 VNNI and no AVX-VNNI, so that the AVX-VNNI
 * table's arithmetic is tested and measured there. */
#define ISA_NAME "avx2-vnni"
#define FN(name) name##_avx2vnni_evex
#define ISA_SFX avx2vnni_evex
#define AVX2_DPBUSD _mm256_dpbusd_epi32

#include "kernels/x86-avx2-kernels.h"
