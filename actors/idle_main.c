//  es-upload / es-reconcile - the process shell of an actor whose jobs are not yet dispatched
//  by edgesyncd (upload: local changes issue; reconcile: orchestration issue). It runs under
//  supervision like every actor: HELLO, heartbeats, STOP/SIGTERM; a job sent to it is refused
//  with a clear error rather than silently ignored.
#include "common/es_actor.h"
#include "common/es_config.h"
#include "common/es_log.h"
#include <stdio.h>
#include <string.h>

#ifndef ACTOR_KIND
#error "ACTOR_KIND must name the actor"
#endif

static void
s_on_msg(void *ctx, const es_msg_t *msg)
{
    es_actor_t *actor = ctx;
    if (msg->type != ES_MSG_DOWNLOAD)
        return;
    es_msg_t m;
    es_msg_init(&m, ES_MSG_JOB_DONE, 0);
    snprintf(m.u.job_done.session, sizeof m.u.job_done.session, "%s", msg->u.download.session);
    m.u.job_done.job = msg->u.download.job;
    m.u.job_done.code = 2460;
    static const char what[] = ACTOR_KIND " actor: job type not supported";
    m.u.job_done.what = (es_slice_t){what, sizeof what - 1};
    es_err_t err;
    if (es_actor_send(actor, &m, &err))
        es_log_warn("%s", err.what);
}

int
main(int argc, char *argv[])
{
    es_log_init(ACTOR_KIND);
    es_actor_opts_t opts;
    es_err_t err;
    if (es_actor_opts_parse(&opts, argc, argv, &err)) {
        fprintf(stderr, "es-" ACTOR_KIND ": %s\n", err.what);
        return 2;
    }
    es_config_t *config = es_config_new();
    if (opts.config[0] && es_config_load(config, opts.config, &err)) {
        es_log_error("%s", err.what);
        es_config_destroy(&config);
        return 1;
    }
    es_actor_t *actor =
        es_actor_new(ACTOR_KIND, &opts, (int)es_config_int(config, "heartbeat.interval_ms"), &err);
    es_config_destroy(&config);
    if (!actor) {
        es_log_error("%s", err.what);
        return 1;
    }
    int rc = 0;
    while (!es_actor_terminated(actor))
        if (es_actor_step(actor, NULL, 1000, s_on_msg, actor, &err)) {
            es_log_error("%s", err.what);
            rc = 1;
            break;
        }
    es_actor_destroy(&actor);
    return rc;
}
