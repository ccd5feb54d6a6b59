//  upload - the upload actor: for one object service (or one object of it) replays the upload
//  cache, then sends the pending changes in RSN order in batches and applies each answer with
//  the removal of the changes it covered in one LMDB transaction (SPEC 3.3, 3.4, D14).
#ifndef UPLOAD_H
#define UPLOAD_H
#include "common/es_actor.h"

typedef struct upload upload_t;

upload_t *upload_new(const es_actor_opts_t *opts, es_err_t *err);
void upload_destroy(upload_t **self_p);
//  Loop until STOP or SIGTERM. 0 or -1 with err.
int upload_run(upload_t *self, es_err_t *err);

#endif
