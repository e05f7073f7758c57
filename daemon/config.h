/* config.h: rwkvd's settings: compiled-in defaults, then the config file, then the command line.
 * Every user-controllable resource has a limit here (documented in rwkvd.conf(5)). */
#pragma once

#include <stdbool.h>
#include <stdint.h>

/* The ranges rwkvd.conf(5) documents; a value outside them stops the daemon at start. */
#define CONFIG_MAX_THREADS 256        /* the compute pool's limit (kernels/threadpool.c) */
#define CONFIG_MAX_BATCH 256          /* scheduler: sessions decoded in one step */
#define CONFIG_MAX_PREFILL_CHUNK 4096 /* scheduler: prompt tokens one step feeds a generation */

typedef struct Limits {
        uint32_t max_sessions_per_user;     /* stored sessions one uid may own */
        uint32_t max_generations_per_user;  /* concurrent Generate jobs per uid */
        uint64_t max_prompt_bytes;          /* one Generate's prompt, argument plus stream */
        uint32_t max_tokens_per_request;    /* the cap on (and default for) max_tokens */
        uint32_t max_streams;               /* concurrent jobs (rings) in the whole daemon */
        uint32_t max_title_bytes;
        uint32_t max_stop_strings;          /* "stop" entries per request */
        uint32_t max_stop_bytes;            /* bytes of one stop string */
} Limits;

/* [sampling]: defaults for Generate options the client leaves out. Only the keys the file names
 * (bits in .set) override the daemon's model-dependent defaults (see manager_startup()). */
enum {
        SAMPLING_SET_TEMPERATURE = 1u << 0,
        SAMPLING_SET_TOP_P = 1u << 1,
        SAMPLING_SET_TOP_K = 1u << 2,
        SAMPLING_SET_MIN_P = 1u << 3,
        SAMPLING_SET_PRESENCE_PENALTY = 1u << 4,
        SAMPLING_SET_FREQUENCY_PENALTY = 1u << 5,
        SAMPLING_SET_PENALTY_DECAY = 1u << 6,
};

typedef struct SamplingConfig {
        double temperature, top_p, min_p, presence_penalty, frequency_penalty, penalty_decay;
        uint32_t top_k;
        unsigned set;
} SamplingConfig;

typedef struct Config {
        char *model_path;
        char *vocab_path;
        uint32_t threads;                   /* 0: all online CPUs */
        char *state_dir;
        uint64_t hot_budget_bytes;          /* RAM for hot session states */
        uint32_t commit_every_tokens;       /* checkpoint a long generation every N tokens (0: only at end) */
        uint32_t state_precision;           /* StorePrecision of saved states: 0 fp32, 1 fp16, 2 bf16 */
        uint32_t prefill_chunk;             /* prompt tokens per scheduler step */
        uint32_t max_batch;                 /* decoding jobs per batched step */
        Limits limits;
        SamplingConfig sampling;
} Config;

void config_init(Config *c);
void config_done(Config *c);

/* Parse an INI file into c (keys it names override what c holds). A missing file is -ENOENT;
 * a bad key or value is -EINVAL with the reason logged with file:line. */
int config_parse_file(Config *c, const char *path);

/* Parse a size with an optional K/M/G/T suffix (powers of 1024), or a plain count. */
int config_parse_size(const char *s, uint64_t *ret);
int config_parse_u32(const char *s, uint32_t *ret);
/* "fp32" (0), "fp16" (1) or "bf16" (2): the values of StorePrecision (daemon/store.h). */
int config_parse_precision(const char *s, uint32_t *ret);
/* A finite decimal number (no suffix). */
int config_parse_double(const char *s, double *ret);
