//  es_worker - what every job-running actor (download, upload, reconcile) has in common: its
//  settings, the store, libcurl, the actor runtime, and the loop that waits for messages,
//  transfers and one retry timer.
#ifndef ES_WORKER_H
#define ES_WORKER_H
#include "common/es_actor.h"
#include "common/es_config.h"
#include "common/es_http.h"
#include "protocol/es_meta.h"
#include "protocol/es_syncopts.h"
#include "store/es_store.h"

typedef struct {
    es_config_t *config; //  settings (the --config file, or defaults)
    es_store_t *store;   //  the LMDB environment
    es_http_t *http;     //  transfers
    es_actor_t *actor;   //  socket, signals, heartbeats
    int64_t retry_at;    //  call the timer function at this time (0 = none)
    bool lost;           //  a message the orchestrator waits for could not be sent: exit
} es_worker_t;

//  Load the config, open the store and libcurl, connect and say HELLO as kind. On failure
//  err is set, whatever was opened is closed, and -1 is returned.
int es_worker_open(es_worker_t *self, const char *kind, const es_actor_opts_t *opts,
                   es_err_t *err);
void es_worker_close(es_worker_t *self);

//  Run until STOP/SIGTERM: messages go to on_msg; when retry_at is due, on_timer runs (after
//  retry_at is cleared). Transfers in flight are aborted at the end (nothing uncommitted is
//  kept). -1 with err on a fatal socket error or when lost is set.
typedef void(es_worker_timer_fn)(void *ctx);
int es_worker_run(es_worker_t *self, es_actor_msg_fn *on_msg, es_worker_timer_fn *on_timer,
                  void *ctx, es_err_t *err);

//  What a job needs of its service: the metadata and URL stored by setup, and the job's options
//  (normalised, service-level shape) parsed against the service's objects. object "" means the
//  whole service, else it must be one of its objects. On success the caller owns *meta, *url
//  and *opts (es_meta_destroy, free, es_syncopts_release). On failure nothing is left to
//  release, *code is the Volt MX code (missing_code for an unknown service or object) and err
//  says why.
int es_worker_job_open(es_worker_t *self, const char *service, const char *object,
                       es_slice_t options, int32_t missing_code, es_meta_t **meta, char **url,
                       es_syncopts_t *opts, int32_t *code, es_err_t *err);

//  Report the end of job (JOB_DONE) with code (0 = done), what (may be NULL) and result JSON
//  (may be NULL); if it cannot be sent the worker exits (see es_worker_send_or_exit).
void es_worker_job_done(es_worker_t *self, const char *session, uint64_t job, int32_t code,
                        const char *what, const char *result);

//  Send a message the orchestrator waits for; if it cannot be sent, mark the worker lost so
//  that it exits and supervision re-dispatches its job.
void es_worker_send_or_exit(es_worker_t *self, const es_msg_t *msg);

#endif
