//  reconcile - the reconcile actor (D6): lists the backend's primary keys of an object (same
//  filter and query params, $select of the key columns, batched) into a scratch table, then
//  deletes the local rows whose key the backend does not have, except rows with pending local
//  changes. Memory does not depend on the object's size: keys go through LMDB.
#ifndef RECONCILE_H
#define RECONCILE_H
#include "common/es_actor.h"

typedef struct reconcile reconcile_t;

reconcile_t *reconcile_new(const es_actor_opts_t *opts, es_err_t *err);
void reconcile_destroy(reconcile_t **self_p);
//  Loop until STOP or SIGTERM. 0 or -1 with err.
int reconcile_run(reconcile_t *self, es_err_t *err);

#endif
