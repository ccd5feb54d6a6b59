//  es-reconcile - reconcile actor process: after an object's download, lists the backend's
//  primary keys and removes local rows the backend no longer has (D6).
#include "actors/reconcile/reconcile.h"
#include "common/es_log.h"
#include <stdio.h>

int
main(int argc, char *argv[])
{
    es_log_init("reconcile");
    es_actor_opts_t opts;
    es_err_t err;
    if (es_actor_opts_parse(&opts, argc, argv, &err)) {
        fprintf(stderr, "es-reconcile: %s\n", err.what);
        return 2;
    }
    reconcile_t *self = reconcile_new(&opts, &err);
    if (!self) {
        es_log_error("%s", err.what);
        return 1;
    }
    int rc = reconcile_run(self, &err);
    if (rc)
        es_log_error("%s", err.what);
    reconcile_destroy(&self);
    return rc ? 1 : 0;
}
