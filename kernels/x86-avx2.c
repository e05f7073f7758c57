/* x86-avx2.c: the AVX2 + FMA + F16C table (x86-avx2-kernels.h), its int8 dot products with
 * maddubs / madd. Built with those flags for this file only. */
#define ISA_NAME "avx2"
#define FN(name) name##_avx2
#define ISA_SFX avx2

#include "kernels/x86-avx2-kernels.h"
