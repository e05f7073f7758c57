/* manager.h: the daemon's context object: bus, event loop, model, sessions, jobs and limits.
 * Everything here lives on the main thread (the compute thread sees only the jobs it is given). */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#include "daemon/config.h"
#include "daemon/job.h"
#include "daemon/scheduler.h"
#include "daemon/session.h"
#include "engine/arch/model.h"

typedef enum BusMode {
        BUS_MODE_SYSTEM,
        BUS_MODE_USER,
        BUS_MODE_ADDRESS,
} BusMode;

struct Manager {
        Config config;
        BusMode bus_mode;
        char *bus_address;

        sd_event *event;
        sd_bus *bus;
        sd_bus_slot *vtable_slot;

        Model *model;
        const ModelInfo *info;
        float *fresh_state;

        Scheduler *scheduler;
        SessionTable sessions;
        Job *jobs;                  /* every live job (submitted, not yet completed) */
        uint32_t n_jobs;
        uint64_t next_job_id;

        bool shutting_down;
        uint64_t start_usec;
};

int manager_new(Manager **ret);
Manager *manager_free(Manager *m);
DEFINE_TRIVIAL_CLEANUP_FUNC(Manager *, manager_free);

/* Map the model, start the compute thread, connect and take the bus name. */
int manager_startup(Manager *m);
/* Runs until SIGTERM/SIGINT, then drains running generations; returns 0 or negative errno. */
int manager_run(Manager *m);

/* manager-bus.c */
int manager_bus_setup(Manager *m);
void manager_job_done(Job *job, void *userdata);
uint32_t manager_jobs_of_uid(Manager *m, uid_t uid);
