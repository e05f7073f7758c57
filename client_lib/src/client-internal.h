/* client-internal.h: the structures behind librwkv-client's opaque handles, shared by its files. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <systemd/sd-bus.h>

#include "client_lib/src/ring-client.h"
#include "protocol/ring.h"
#include "rwkv/client.h"

#define _cleanup_(f) __attribute__((cleanup(f)))

struct RwkvClient {
        sd_bus *bus;
        char *error_message; /* of the last failed call, NULL after a success */
};

/* Records the outcome of a call on c: the D-Bus error's message, or strerror() of r. Returns r. */
int client_set_error(RwkvClient *c, int r, const sd_bus_error *error);

typedef struct InfoEntry {
        char *key;
        int type;
        union {
                char *s;
                uint64_t u;
                int64_t i;
                double d;
                int b;
        };
} InfoEntry;

struct RwkvInfo {
        InfoEntry *entries;
        size_t n, allocated;
};

int info_new(RwkvInfo **ret);
/* Appends the entries of an a{sv} at the read position of m; unknown value types are skipped. key_style
 * 1 converts CamelCase keys (D-Bus property names) to snake_case. */
int info_read_dict(RwkvInfo *info, sd_bus_message *m, int snake_case);

#define OPTIONS_STOP_MAX 64

struct RwkvGenerateOptions {
        uint32_t set; /* OPTION_* bits */
        uint32_t max_tokens, top_k;
        double temperature, top_p, min_p, presence_penalty, frequency_penalty, penalty_decay;
        uint64_t seed;
        char *stop[OPTIONS_STOP_MAX + 1]; /* NULL-terminated */
        size_t n_stop;
        bool prompt_stream, regenerate;
};

/* Appends the options as the a{sv} Generate() takes. */
int options_append(const RwkvGenerateOptions *o, sd_bus_message *m);

struct RwkvStream {
        sd_bus *bus;        /* a reference; Cancel() and the daemon-vanished match */
        sd_bus_slot *match; /* NameOwnerChanged of the daemon: it crashed or exited */
        uint64_t job;
        RingClient ring;
        int epoll_fd; /* rwkv_stream_get_fd(): the ring's eventfd + the bus fd */
        bool prompt_stream;
        bool finished; /* the last event was returned */
        bool daemon_gone;
        /* The current event. */
        uint32_t token;
        uint64_t time_ns;
        size_t text_len;
        bool have_end;
        RingEnd end;
        int error;
        char error_message[RING_ERROR_MESSAGE_MAX + 1];
        uint8_t payload[RING_RECORD_PAYLOAD_MAX + 1]; /* + NUL after text */
};
