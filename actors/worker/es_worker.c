//  es_worker - common setup and loop of the job-running actors.
#include "actors/worker/es_worker.h"
#include "common/es_log.h"
#include "common/es_mem.h"
#include "store/es_svc.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int
es_worker_open(es_worker_t *self, const char *kind, const es_actor_opts_t *opts, es_err_t *err)
{
    memset(self, 0, sizeof *self);
    self->config = es_config_new();
    if (opts->config[0] && es_config_load(self->config, opts->config, err))
        goto fail;
    es_log_set_level((es_log_level_t)es_log_level_parse(es_config_str(self->config, "log.level")));
    es_store_opts_t sopts = {
        .map_size = (size_t)es_config_int(self->config, "store.map_size_mb") << 20,
        .map_max = (size_t)es_config_int(self->config, "store.map_max_mb") << 20,
    };
    self->store = es_store_new(opts->data_dir, &sopts, err);
    if (!self->store)
        goto fail;
    es_http_opts_t hopts;
    es_http_opts_from_config(&hopts, self->config);
    self->http = es_http_new(&hopts, err);
    if (!self->http)
        goto fail;
    self->actor =
        es_actor_new(kind, opts, (int)es_config_int(self->config, "heartbeat.interval_ms"), err);
    if (!self->actor)
        goto fail;
    return 0;
fail:
    es_worker_close(self);
    return -1;
}

void
es_worker_close(es_worker_t *self)
{
    es_actor_destroy(&self->actor);
    es_http_destroy(&self->http);
    es_store_destroy(&self->store);
    es_config_destroy(&self->config);
}

int
es_worker_run(es_worker_t *self, es_actor_msg_fn *on_msg, es_worker_timer_fn *on_timer, void *ctx,
              es_err_t *err)
{
    while (!es_actor_terminated(self->actor)) {
        if (self->lost)
            return es_err_set(err, ES_ESYS, "lost contact with the orchestrator");
        int timeout = 1000;
        if (self->retry_at) {
            int64_t left = self->retry_at - es_now_ms();
            timeout = left < 0 ? 0 : (int)left;
        }
        if (es_actor_step(self->actor, self->http, timeout, on_msg, ctx, err))
            return -1;
        if (self->retry_at && es_now_ms() >= self->retry_at) {
            self->retry_at = 0;
            on_timer(ctx);
        }
    }
    //  A request in flight is dropped: what it would have committed is fetched again.
    es_http_abort_all(self->http);
    return 0;
}

void
es_worker_send_or_exit(es_worker_t *self, const es_msg_t *msg)
{
    es_err_t err;
    if (es_actor_send(self->actor, msg, &err)) {
        es_log_error("%s not sent (%s): exiting", es_msg_name(msg->type), err.what);
        self->lost = true;
    }
}

int
es_worker_job_open(es_worker_t *self, const char *service, const char *object, es_slice_t options,
                   int32_t missing_code, es_meta_t **meta, char **url, es_syncopts_t *opts,
                   int32_t *code, es_err_t *err)
{
    *meta = NULL;
    *url = es_svc_url(self->store, service, err);
    if (*url)
        *meta = es_svc_meta(self->store, service, err);
    if (*meta && object[0] && !es_meta_object(*meta, object))
        es_err_set(err, ES_ENOTFOUND, "object '%s' is not in service '%s'", object, service);
    else if (*meta) {
        const char **names = es_malloc(((*meta)->nobjects + 1) * sizeof *names);
        for (size_t i = 0; i < (*meta)->nobjects; i++)
            names[i] = (*meta)->objects[i].name;
        int vmx = 0;
        int rc = es_syncopts_parse(opts, options.ptr, options.len, ES_SYNCOPTS_SERVICE,
                                   (const char *const *)names, (*meta)->nobjects, err, &vmx);
        free(names);
        if (rc == 0)
            return 0;
        *code = vmx ? vmx : 2304;
        es_meta_destroy(meta);
        free(*url);
        *url = NULL;
        return -1;
    }
    *code = missing_code;
    es_meta_destroy(meta);
    free(*url);
    *url = NULL;
    return -1;
}

void
es_worker_job_done(es_worker_t *self, const char *session, uint64_t job, int32_t code,
                   const char *what, const char *result)
{
    es_msg_t m;
    es_msg_init(&m, ES_MSG_JOB_DONE, 0);
    es_job_done_t *d = &m.u.job_done;
    snprintf(d->session, sizeof d->session, "%s", session);
    d->job = job;
    d->code = code;
    d->what = (es_slice_t){what ? what : "", what ? strlen(what) : 0};
    d->result = (es_slice_t){result ? result : "", result ? strlen(result) : 0};
    es_worker_send_or_exit(self, &m);
}
