//  download - the download actor: runs one download job at a time for one object, batch by
//  batch; each batch is streamed through the response parser and committed with its context in
//  one LMDB transaction.
#ifndef DOWNLOAD_H
#define DOWNLOAD_H
#include "common/es_actor.h"
#include "common/es_config.h"

typedef struct download download_t;

download_t *download_new(const es_actor_opts_t *opts, es_err_t *err);
void download_destroy(download_t **self_p);
//  Loop until STOP or SIGTERM. 0 or -1 with err.
int download_run(download_t *self, es_err_t *err);

#endif
