/* info.c: RwkvInfo (a key/value copy of an a{sv} reply) and RwkvGenerateOptions (setters that
 * validate, turned into Generate()'s a{sv}). */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "client_lib/src/client-internal.h"

int info_new(RwkvInfo **ret) {
        RwkvInfo *info = calloc(1, sizeof(*info));
        if (!info)
                return -ENOMEM;
        *ret = info;
        return 0;
}

RWKV_EXPORT RwkvInfo *rwkv_info_free(RwkvInfo *info) {
        if (!info)
                return NULL;
        for (size_t i = 0; i < info->n; i++) {
                free(info->entries[i].key);
                if (info->entries[i].type == RWKV_VALUE_STRING)
                        free(info->entries[i].s);
        }
        free(info->entries);
        free(info);
        return NULL;
}

/* "ModelName" → "model_name". */
static char *snake_case(const char *s) {
        size_t n = strlen(s);
        char *d = malloc(2 * n + 1), *p = d;
        if (!d)
                return NULL;
        for (size_t i = 0; i < n; i++) {
                if (isupper((unsigned char)s[i])) {
                        if (i > 0)
                                *p++ = '_';
                        *p++ = (char)tolower((unsigned char)s[i]);
                } else
                        *p++ = s[i];
        }
        *p = 0;
        return d;
}

static InfoEntry *info_add(RwkvInfo *info, const char *key, int snake) {
        if (info->n == info->allocated) {
                size_t na = info->allocated ? info->allocated * 2 : 16;
                InfoEntry *e = realloc(info->entries, na * sizeof(*e));
                if (!e)
                        return NULL;
                info->entries = e;
                info->allocated = na;
        }
        InfoEntry *e = &info->entries[info->n];
        *e = (InfoEntry){ .key = snake ? snake_case(key) : strdup(key) };
        if (!e->key)
                return NULL;
        info->n++;
        return e;
}

int info_read_dict(RwkvInfo *info, sd_bus_message *m, int snake) {
        int r;

        r = sd_bus_message_enter_container(m, 'a', "{sv}");
        if (r < 0)
                return r;
        for (;;) {
                const char *key, *contents;
                char type;

                r = sd_bus_message_enter_container(m, 'e', "sv");
                if (r < 0)
                        return r;
                if (r == 0)
                        break;
                r = sd_bus_message_read(m, "s", &key);
                if (r < 0)
                        return r;
                r = sd_bus_message_peek_type(m, &type, &contents);
                if (r < 0)
                        return r;
                if (!contents || strlen(contents) != 1 || !strchr("sobyqutnixd", contents[0])) {
                        r = sd_bus_message_skip(m, "v"); /* a type we do not present: skip it */
                        if (r < 0)
                                return r;
                } else {
                        char t = contents[0];
                        InfoEntry *e;

                        r = sd_bus_message_enter_container(m, 'v', contents);
                        if (r < 0)
                                return r;
                        e = info_add(info, key, snake);
                        if (!e)
                                return -ENOMEM;
                        union {
                                const char *s;
                                uint8_t y;
                                uint16_t q;
                                uint32_t u;
                                uint64_t t;
                                int16_t n;
                                int32_t i;
                                int64_t x;
                                double d;
                                int b;
                        } v;
                        r = sd_bus_message_read_basic(m, t, &v);
                        if (r < 0)
                                return r;
                        switch (t) {
                        case 's':
                        case 'o':
                                e->type = RWKV_VALUE_STRING;
                                e->s = strdup(v.s);
                                if (!e->s) {
                                        e->type = RWKV_VALUE_BOOL; /* nothing to free */
                                        return -ENOMEM;
                                }
                                break;
                        case 'b':
                                e->type = RWKV_VALUE_BOOL;
                                e->b = !!v.b;
                                break;
                        case 'y':
                                e->type = RWKV_VALUE_UNSIGNED;
                                e->u = v.y;
                                break;
                        case 'q':
                                e->type = RWKV_VALUE_UNSIGNED;
                                e->u = v.q;
                                break;
                        case 'u':
                                e->type = RWKV_VALUE_UNSIGNED;
                                e->u = v.u;
                                break;
                        case 't':
                                e->type = RWKV_VALUE_UNSIGNED;
                                e->u = v.t;
                                break;
                        case 'n':
                                e->type = RWKV_VALUE_SIGNED;
                                e->i = v.n;
                                break;
                        case 'i':
                                e->type = RWKV_VALUE_SIGNED;
                                e->i = v.i;
                                break;
                        case 'x':
                                e->type = RWKV_VALUE_SIGNED;
                                e->i = v.x;
                                break;
                        case 'd':
                                e->type = RWKV_VALUE_DOUBLE;
                                e->d = v.d;
                                break;
                        }
                        r = sd_bus_message_exit_container(m);
                        if (r < 0)
                                return r;
                }
                r = sd_bus_message_exit_container(m);
                if (r < 0)
                        return r;
        }
        return sd_bus_message_exit_container(m);
}

RWKV_EXPORT size_t rwkv_info_get_count(const RwkvInfo *info) {
        return info ? info->n : 0;
}

RWKV_EXPORT const char *rwkv_info_get_key(const RwkvInfo *info, size_t i) {
        return info && i < info->n ? info->entries[i].key : NULL;
}

RWKV_EXPORT int rwkv_info_get_type(const RwkvInfo *info, size_t i) {
        return info && i < info->n ? info->entries[i].type : -ERANGE;
}

static const InfoEntry *info_find(const RwkvInfo *info, const char *key) {
        if (!info || !key)
                return NULL;
        /* The last one wins: rwkv_status() reads properties first, then Status(). */
        for (size_t i = info->n; i > 0; i--)
                if (strcmp(info->entries[i - 1].key, key) == 0)
                        return &info->entries[i - 1];
        return NULL;
}

RWKV_EXPORT int rwkv_info_get_string(const RwkvInfo *info, const char *key, const char **ret) {
        const InfoEntry *e = info_find(info, key);
        if (!e)
                return -ENOENT;
        if (e->type != RWKV_VALUE_STRING)
                return -EMEDIUMTYPE;
        if (ret)
                *ret = e->s;
        return 0;
}

RWKV_EXPORT int rwkv_info_get_uint(const RwkvInfo *info, const char *key, uint64_t *ret) {
        const InfoEntry *e = info_find(info, key);
        uint64_t v;
        if (!e)
                return -ENOENT;
        switch (e->type) {
        case RWKV_VALUE_UNSIGNED:
                v = e->u;
                break;
        case RWKV_VALUE_BOOL:
                v = (uint64_t)e->b;
                break;
        case RWKV_VALUE_SIGNED:
                if (e->i < 0)
                        return -ERANGE;
                v = (uint64_t)e->i;
                break;
        default:
                return -EMEDIUMTYPE;
        }
        if (ret)
                *ret = v;
        return 0;
}

RWKV_EXPORT int rwkv_info_get_int(const RwkvInfo *info, const char *key, int64_t *ret) {
        const InfoEntry *e = info_find(info, key);
        int64_t v;
        if (!e)
                return -ENOENT;
        switch (e->type) {
        case RWKV_VALUE_SIGNED:
                v = e->i;
                break;
        case RWKV_VALUE_UNSIGNED:
                if (e->u > (uint64_t)INT64_MAX)
                        return -ERANGE;
                v = (int64_t)e->u;
                break;
        case RWKV_VALUE_BOOL:
                v = e->b;
                break;
        default:
                return -EMEDIUMTYPE;
        }
        if (ret)
                *ret = v;
        return 0;
}

RWKV_EXPORT int rwkv_info_get_double(const RwkvInfo *info, const char *key, double *ret) {
        const InfoEntry *e = info_find(info, key);
        double v;
        if (!e)
                return -ENOENT;
        switch (e->type) {
        case RWKV_VALUE_DOUBLE:
                v = e->d;
                break;
        case RWKV_VALUE_UNSIGNED:
                v = (double)e->u;
                break;
        case RWKV_VALUE_SIGNED:
                v = (double)e->i;
                break;
        default:
                return -EMEDIUMTYPE;
        }
        if (ret)
                *ret = v;
        return 0;
}

RWKV_EXPORT int rwkv_info_get_bool(const RwkvInfo *info, const char *key, int *ret) {
        const InfoEntry *e = info_find(info, key);
        if (!e)
                return -ENOENT;
        if (e->type != RWKV_VALUE_BOOL)
                return -EMEDIUMTYPE;
        if (ret)
                *ret = e->b;
        return 0;
}

/* ---- Generation options ---- */

enum {
        OPTION_MAX_TOKENS = 1u << 0,
        OPTION_TEMPERATURE = 1u << 1,
        OPTION_TOP_P = 1u << 2,
        OPTION_TOP_K = 1u << 3,
        OPTION_MIN_P = 1u << 4,
        OPTION_PRESENCE_PENALTY = 1u << 5,
        OPTION_FREQUENCY_PENALTY = 1u << 6,
        OPTION_PENALTY_DECAY = 1u << 7,
        OPTION_SEED = 1u << 8,
};

RWKV_EXPORT int rwkv_generate_options_new(RwkvGenerateOptions **ret) {
        RwkvGenerateOptions *o;
        if (!ret)
                return -EINVAL;
        o = calloc(1, sizeof(*o));
        if (!o)
                return -ENOMEM;
        *ret = o;
        return 0;
}

RWKV_EXPORT RwkvGenerateOptions *rwkv_generate_options_free(RwkvGenerateOptions *o) {
        if (!o)
                return NULL;
        for (size_t i = 0; i < o->n_stop; i++)
                free(o->stop[i]);
        free(o);
        return NULL;
}

#define SET_OPTION(name, type, field, bit, valid)                                                                      \
        RWKV_EXPORT int rwkv_generate_options_set_##name(RwkvGenerateOptions *o, type v) {                             \
                if (!o || !(valid))                                                                                    \
                        return -EINVAL;                                                                                \
                o->field = v;                                                                                          \
                o->set |= (bit);                                                                                       \
                return 0;                                                                                              \
        }
SET_OPTION(max_tokens, uint32_t, max_tokens, OPTION_MAX_TOKENS, 1)
SET_OPTION(temperature, double, temperature, OPTION_TEMPERATURE, isfinite(v) && v >= 0 && v <= 100)
SET_OPTION(top_p, double, top_p, OPTION_TOP_P, isfinite(v) && v > 0 && v <= 1)
SET_OPTION(top_k, uint32_t, top_k, OPTION_TOP_K, 1)
SET_OPTION(min_p, double, min_p, OPTION_MIN_P,
           isfinite(v) && v >= 0 && v < 1) /* 1 would drop every token but the top */
SET_OPTION(presence_penalty, double, presence_penalty, OPTION_PRESENCE_PENALTY, isfinite(v) && fabs(v) <= 100)
SET_OPTION(frequency_penalty, double, frequency_penalty, OPTION_FREQUENCY_PENALTY, isfinite(v) && fabs(v) <= 100)
SET_OPTION(penalty_decay, double, penalty_decay, OPTION_PENALTY_DECAY, isfinite(v) && v >= 0 && v <= 1)
SET_OPTION(seed, uint64_t, seed, OPTION_SEED, 1)

RWKV_EXPORT int rwkv_generate_options_add_stop(RwkvGenerateOptions *o, const char *s, size_t len) {
        char *d;
        if (!o || !s || len == 0 || memchr(s, 0, len))
                return -EINVAL;
        if (o->n_stop >= OPTIONS_STOP_MAX)
                return -E2BIG;
        d = strndup(s, len);
        if (!d)
                return -ENOMEM;
        o->stop[o->n_stop++] = d;
        return 0;
}

RWKV_EXPORT int rwkv_generate_options_set_prompt_stream(RwkvGenerateOptions *o, int enable) {
        if (!o)
                return -EINVAL;
        o->prompt_stream = !!enable;
        return 0;
}

RWKV_EXPORT int rwkv_generate_options_set_regenerate(RwkvGenerateOptions *o, int enable) {
        if (!o)
                return -EINVAL;
        o->regenerate = !!enable;
        return 0;
}

int options_append(const RwkvGenerateOptions *o, sd_bus_message *m) {
        int r;

        r = sd_bus_message_open_container(m, 'a', "{sv}");
        if (r < 0 || !o)
                return r < 0 ? r : sd_bus_message_close_container(m);
#define APPEND(bit, key, sig, value)                                                                                   \
        if (o->set & (bit)) {                                                                                          \
                r = sd_bus_message_append(m, "{sv}", key, sig, value);                                                 \
                if (r < 0)                                                                                             \
                        return r;                                                                                      \
        }
        APPEND(OPTION_MAX_TOKENS, "max_tokens", "u", o->max_tokens);
        APPEND(OPTION_TEMPERATURE, "temperature", "d", o->temperature);
        APPEND(OPTION_TOP_P, "top_p", "d", o->top_p);
        APPEND(OPTION_TOP_K, "top_k", "u", o->top_k);
        APPEND(OPTION_MIN_P, "min_p", "d", o->min_p);
        APPEND(OPTION_PRESENCE_PENALTY, "presence_penalty", "d", o->presence_penalty);
        APPEND(OPTION_FREQUENCY_PENALTY, "frequency_penalty", "d", o->frequency_penalty);
        APPEND(OPTION_PENALTY_DECAY, "penalty_decay", "d", o->penalty_decay);
        APPEND(OPTION_SEED, "seed", "t", o->seed);
#undef APPEND
        if (o->n_stop > 0) {
                r = sd_bus_message_open_container(m, 'e', "sv");
                if (r >= 0)
                        r = sd_bus_message_append(m, "s", "stop");
                if (r >= 0)
                        r = sd_bus_message_open_container(m, 'v', "as");
                if (r >= 0)
                        r = sd_bus_message_append_strv(m, (char **)o->stop);
                if (r >= 0)
                        r = sd_bus_message_close_container(m);
                if (r >= 0)
                        r = sd_bus_message_close_container(m);
                if (r < 0)
                        return r;
        }
        if (o->prompt_stream) {
                r = sd_bus_message_append(m, "{sv}", "prompt_stream", "b", 1);
                if (r < 0)
                        return r;
        }
        if (o->regenerate) {
                r = sd_bus_message_append(m, "{sv}", "regenerate", "b", 1);
                if (r < 0)
                        return r;
        }
        return sd_bus_message_close_container(m);
}
