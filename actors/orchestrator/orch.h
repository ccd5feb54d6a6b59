//  orch - the edgesyncd daemon: command and event sockets, actor supervision, session planning,
//  job dispatch, setup, local reads; one non-blocking loop.
#ifndef ORCH_H
#define ORCH_H
#include "common/es_config.h"
#include "common/es_err.h"

typedef struct orch orch_t;

//  config is borrowed for the daemon's life; config_path (may be NULL) is handed to actors.
orch_t *orch_new(const es_config_t *config, const char *config_path, const char *bin_dir,
                 es_err_t *err);
void orch_destroy(orch_t **self_p);
//  Run until SIGTERM/SIGINT. 0 on a clean stop, -1 with err.
int orch_run(orch_t *self, es_err_t *err);

#endif
