//  es-download - download actor process.
#include "actors/download/download.h"
#include "common/es_log.h"
#include <stdio.h>

int
main(int argc, char *argv[])
{
    es_log_init("download");
    es_actor_opts_t opts;
    es_err_t err;
    if (es_actor_opts_parse(&opts, argc, argv, &err)) {
        fprintf(stderr, "es-download: %s\n", err.what);
        return 2;
    }
    download_t *self = download_new(&opts, &err);
    if (!self) {
        es_log_error("%s", err.what);
        return 1;
    }
    int rc = download_run(self, &err);
    if (rc)
        es_log_error("%s", err.what);
    download_destroy(&self);
    return rc ? 1 : 0;
}
