/* config.c: defaults and the INI parser (inih) for rwkvd.conf. */
#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "daemon/config.h"
#include "daemon/log.h"
#include "engine/text/stop.h"

void config_init(Config *c) {
        *c = (Config) {
                .threads = 0,
                .hot_budget_bytes = 1ULL << 30,
                .commit_every_tokens = 256,
                .prefill_chunk = 64,
                .max_batch = 32,
                .limits = {
                        .max_sessions_per_user = 64,
                        .max_generations_per_user = 4,
                        .max_prompt_bytes = 64ULL << 20,
                        .max_tokens_per_request = 4096,
                        .max_streams = 256,
                        .max_title_bytes = 256,
                        .max_stop_strings = 16,
                        .max_stop_bytes = 256,
                },
        };
}

void config_done(Config *c) {
        free(c->model_path);
        free(c->vocab_path);
        free(c->state_dir);
        *c = (Config) {};
}

int config_parse_size(const char *s, uint64_t *ret) {
        char *end;
        unsigned long long v;
        uint64_t mul = 1;

        if (!s || !isdigit((unsigned char) *s))
                return -EINVAL;
        errno = 0;
        v = strtoull(s, &end, 10);
        if (errno != 0)
                return -ERANGE;
        switch (*end) {
        case 'K': case 'k': mul = 1ULL << 10; end++; break;
        case 'M': case 'm': mul = 1ULL << 20; end++; break;
        case 'G': case 'g': mul = 1ULL << 30; end++; break;
        case 'T': case 't': mul = 1ULL << 40; end++; break;
        }
        if (*end == 'B' || *end == 'b')
                end++;
        if (*end != 0)
                return -EINVAL;
        if (v > UINT64_MAX / mul)
                return -ERANGE;
        *ret = v * mul;
        return 0;
}

int config_parse_u32(const char *s, uint32_t *ret) {
        uint64_t v;
        int r = config_parse_size(s, &v);
        if (r < 0)
                return r;
        if (v > UINT32_MAX)
                return -ERANGE;
        *ret = (uint32_t) v;
        return 0;
}

int config_parse_precision(const char *s, uint32_t *ret) {
        static const char *const names[] = { "fp32", "fp16", "bf16" };
        for (uint32_t i = 0; i < ELEMENTSOF(names); i++)
                if (s && strcmp(s, names[i]) == 0) {
                        *ret = i;
                        return 0;
                }
        return -EINVAL;
}

int config_parse_double(const char *s, double *ret) {
        char *end;
        double v;

        if (!s || !*s || isspace((unsigned char) *s))
                return -EINVAL;
        errno = 0;
        v = strtod(s, &end);
        if (errno != 0 || *end != 0 || end == s || !isfinite(v))
                return -EINVAL;
        *ret = v;
        return 0;
}

typedef struct ParseState {
        Config *config;
        const char *path;
        int error;
        char why[64]; /* the allowed range of the value just refused ("" when not a range) */
} ParseState;

static int set_sampling(ParseState *ps, SamplingConfig *sc, unsigned bit, double *field, const char *value, double lo,
                        double hi) {
        double v;
        int r = config_parse_double(value, &v);
        if (r < 0)
                return r;
        if (v < lo || v > hi) {
                snprintf(ps->why, sizeof(ps->why), "must be %g to %g", lo, hi);
                return -ERANGE;
        }
        *field = v;
        sc->set |= bit;
        return 0;
}

/* A count in [lo, hi]: -ERANGE outside it, so the message names the key instead of the daemon
 * clamping the value behind the user's back. */
static int set_u32_in(ParseState *ps, uint32_t *field, const char *value, uint32_t lo, uint32_t hi) {
        uint32_t v;
        int r = config_parse_u32(value, &v);
        if (r < 0)
                return r;
        if (v < lo || v > hi) {
                if (hi == UINT32_MAX)
                        snprintf(ps->why, sizeof(ps->why), "must be at least %" PRIu32, lo);
                else
                        snprintf(ps->why, sizeof(ps->why), "must be %" PRIu32 " to %" PRIu32, lo, hi);
                return -ERANGE;
        }
        *field = v;
        return 0;
}

static int set_string(char **p, const char *v) {
        char *s = strdup(v);
        if (!s)
                return -ENOMEM;
        free(*p);
        *p = s;
        return 0;
}

static int config_handler(void *userdata, const char *section, const char *name, const char *value) {
        ParseState *ps = userdata;
        Config *c = ps->config;
        Limits *l = &c->limits;
        int r = -EINVAL;

#define IS(s, n) (strcmp(section, s) == 0 && strcmp(name, n) == 0)
        if (IS("model", "path"))
                r = set_string(&c->model_path, value);
        else if (IS("model", "vocab"))
                r = set_string(&c->vocab_path, value);
        else if (IS("model", "threads"))
                r = set_u32_in(ps, &c->threads, value, 0, CONFIG_MAX_THREADS);
        else if (IS("store", "state_dir"))
                r = set_string(&c->state_dir, value);
        else if (IS("store", "hot_budget_bytes"))
                r = config_parse_size(value, &c->hot_budget_bytes);
        else if (IS("store", "state_precision"))
                r = config_parse_precision(value, &c->state_precision);
        else if (IS("store", "commit_every_tokens"))
                r = config_parse_u32(value, &c->commit_every_tokens);
        else if (IS("scheduler", "prefill_chunk"))
                r = set_u32_in(ps, &c->prefill_chunk, value, 1, CONFIG_MAX_PREFILL_CHUNK);
        else if (IS("scheduler", "max_batch"))
                r = set_u32_in(ps, &c->max_batch, value, 1, CONFIG_MAX_BATCH);
        else if (IS("limits", "max_sessions_per_user"))
                r = set_u32_in(ps, &l->max_sessions_per_user, value, 1, UINT32_MAX);
        else if (IS("limits", "max_generations_per_user"))
                r = set_u32_in(ps, &l->max_generations_per_user, value, 1, UINT32_MAX);
        else if (IS("limits", "max_prompt_bytes")) {
                r = config_parse_size(value, &l->max_prompt_bytes);
                if (r >= 0 && l->max_prompt_bytes == 0) {
                        snprintf(ps->why, sizeof(ps->why), "must be at least 1");
                        r = -ERANGE;
                }
        } else if (IS("limits", "max_tokens_per_request"))
                r = set_u32_in(ps, &l->max_tokens_per_request, value, 1, UINT32_MAX);
        else if (IS("limits", "max_streams"))
                r = set_u32_in(ps, &l->max_streams, value, 1, UINT32_MAX);
        else if (IS("limits", "max_title_bytes"))
                r = set_u32_in(ps, &l->max_title_bytes, value, 1, UINT32_MAX);
        else if (IS("limits", "max_stop_strings"))
                r = set_u32_in(ps, &l->max_stop_strings, value, 1, STOP_MAX_SEQUENCES);
        else if (IS("limits", "max_stop_bytes"))
                r = set_u32_in(ps, &l->max_stop_bytes, value, 1, STOP_MAX_BYTES);
        else if (IS("sampling", "temperature"))
                r = set_sampling(ps, &c->sampling, SAMPLING_SET_TEMPERATURE, &c->sampling.temperature, value, 0, 100);
        else if (IS("sampling", "top_p"))
                r = set_sampling(ps, &c->sampling, SAMPLING_SET_TOP_P, &c->sampling.top_p, value, 0, 1);
        else if (IS("sampling", "min_p"))
                r = set_sampling(ps, &c->sampling, SAMPLING_SET_MIN_P, &c->sampling.min_p, value, 0, 0.999999);
        else if (IS("sampling", "presence_penalty"))
                r = set_sampling(ps, &c->sampling, SAMPLING_SET_PRESENCE_PENALTY, &c->sampling.presence_penalty, value,
                                 -100, 100);
        else if (IS("sampling", "frequency_penalty"))
                r = set_sampling(ps, &c->sampling, SAMPLING_SET_FREQUENCY_PENALTY, &c->sampling.frequency_penalty,
                                 value, -100, 100);
        else if (IS("sampling", "penalty_decay"))
                r = set_sampling(ps, &c->sampling, SAMPLING_SET_PENALTY_DECAY, &c->sampling.penalty_decay, value, 0, 1);
        else if (IS("sampling", "top_k")) {
                r = config_parse_u32(value, &c->sampling.top_k);
                if (r >= 0)
                        c->sampling.set |= SAMPLING_SET_TOP_K;
        }
        else {
                log_error("%s: unknown setting [%s] %s", ps->path, section, name);
                ps->error = -EINVAL;
                return 1; /* keep going: report every bad line at once */
        }
#undef IS
        if (r < 0 && ps->why[0]) {
                log_error("%s: invalid value \"%s\" for [%s] %s: %s", ps->path, value, section, name, ps->why);
                ps->why[0] = 0;
        } else if (r < 0)
                log_error_errno(r, "%s: invalid value \"%s\" for [%s] %s: %m", ps->path, value, section, name);
        if (r < 0) {
                if (ps->error == 0)
                        ps->error = r == -ENOMEM ? r : -EINVAL;
        }
        return 1;
}

int config_parse_file(Config *c, const char *path) {
        _cleanup_(fclosep) FILE *f = NULL;
        ParseState ps = { .config = c, .path = path };
        int r;

        f = fopen(path, "re");
        if (!f)
                return -errno;
        /* a folder opens for reading, then reads as an empty file: not a configuration */
        struct stat st;
        if (fstat(fileno(f), &st) < 0)
                return -errno;
        if (S_ISDIR(st.st_mode))
                return -EISDIR;
        r = ini_parse_file(f, config_handler, &ps);
        if (r > 0) {
                log_error("%s:%d: syntax error", path, r);
                return -EINVAL;
        }
        if (r < 0)
                return -ENOMEM;
        return ps.error;
}
