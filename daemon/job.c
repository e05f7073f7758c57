/* job.c: freeing a generation job (see job.h for who owns what). */
#include <stdlib.h>

#include "daemon/job.h"

void job_params_done(JobParams *p) {
        for (size_t i = 0; i < p->n_stops; i++)
                free(p->stops[i]);
        free(p->stops);
        free(p->bias);
        *p = (JobParams) {};
}

Job *job_free(Job *j) {
        if (!j)
                return NULL;
        sd_event_source_disable_unref(j->wakeup_source);
        sd_bus_track_unref(j->track);
        stream_free(j->stream);
        stop_matcher_free(j->stop);
        job_params_done(&j->params);
        free(j->prompt);
        free(j->out);
        if (j->session && j->session->throwaway)
                session_free(j->session);
        free(j);
        return NULL;
}
