/* bus-errors.h: the org.rwkvd.Error.* <-> errno map for sd_bus_error_add_map(). */
#pragma once

#include <systemd/sd-bus.h>

extern const sd_bus_error_map rwkv_bus_error_map[];

/* Registers the map once per process (idempotent, thread-safe); returns 0 or negative errno. */
int rwkv_bus_errors_register(void);
