/* native-format.h: byte layout of the native .rwkv file (protocol/model-format.md is the spec).
 * Everything little-endian; offsets are absolute file offsets. */
#pragma once

#define NATIVE_MAGIC "RWKVMODL"
#define NATIVE_VERSION 1
#define NATIVE_HEADER_SIZE 256
#define NATIVE_RECORD_SIZE 64
#define NATIVE_ALIGN 64
#define NATIVE_MAX_TENSORS (1u << 20)

/* header field offsets */
enum {
        NH_MAGIC = 0,          /* char[8] "RWKVMODL" */
        NH_VERSION = 8,        /* u32 = 1 */
        NH_HEADER_SIZE = 12,   /* u32 = 256 */
        NH_FILE_SIZE = 16,     /* u64, the whole file */
        NH_HASH = 24,          /* u8[32] BLAKE2b-256 of the file with these 32 bytes zeroed */
        NH_ARCH = 56,          /* u32 ModelArch value (40, 51, 52, 60, 70), 0 = not recorded */
        NH_CONVENTION = 60,    /* u32 ParamConvention */
        NH_N_LAYER = 64,       /* u32 x 6: n_layer, n_embd, n_vocab, n_head, head_size, n_ffn */
        NH_TOKENIZER = 88,     /* u32 ModelTokenizerKind */
        NH_WTYPE = 92,         /* u32 DType of most matrices, 0xffffffff = not recorded */
        NH_N_TENSORS = 96,     /* u32 */
        NH_FLAGS = 100,        /* u32, 0 */
        NH_INDEX_OFFSET = 104, /* u64: n_tensors records of 64 bytes */
        NH_STRINGS_OFFSET = 112,
        NH_STRINGS_SIZE = 120,
        NH_VOCAB_OFFSET = 128, /* u64, 0 = none; the text is followed by a NUL not counted in the size */
        NH_VOCAB_SIZE = 136,
        NH_DATA_OFFSET = 144,
        NH_DATA_SIZE = 152,
        NH_RESERVED = 160, /* zero up to 256 */
};

/* tensor record field offsets */
enum {
        NR_NAME_OFFSET = 0,  /* u32, into the string table; the name is followed by a NUL */
        NR_NAME_LEN = 4,     /* u16 */
        NR_DTYPE = 6,        /* u8 DType */
        NR_N_DIMS = 7,       /* u8, 1..4 */
        NR_SHAPE = 8,        /* u64[4], PyTorch order, unused dimensions 0 */
        NR_DATA_OFFSET = 40, /* u64, multiple of 64 */
        NR_NBYTES = 48,      /* u64 */
        NR_RESERVED = 56,    /* u64, 0 */
};
