//  es-upload - upload actor process.
#include "actors/upload/upload.h"
#include "common/es_log.h"
#include <stdio.h>

int
main(int argc, char *argv[])
{
    es_log_init("upload");
    es_actor_opts_t opts;
    es_err_t err;
    if (es_actor_opts_parse(&opts, argc, argv, &err)) {
        fprintf(stderr, "es-upload: %s\n", err.what);
        return 2;
    }
    upload_t *self = upload_new(&opts, &err);
    if (!self) {
        es_log_error("%s", err.what);
        return 1;
    }
    int rc = upload_run(self, &err);
    if (rc)
        es_log_error("%s", err.what);
    upload_destroy(&self);
    return rc ? 1 : 0;
}
