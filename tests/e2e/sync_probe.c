//  sync_probe - e2e helper linked with the shared libedgesync: runs one startSync at app,
//  service or object level and prints what the C callbacks got, one line each:
//  "P <event>", then "S <success>" or "F <failure>", then "R <the parsed result as JSON>".
#include "client/edgesync.h"
#include <stdio.h>
#include <string.h>

static void
s_progress(void *ctx, const char *json)
{
    (void)ctx;
    printf("P %s\n", json);
}

static void
s_result(const char *tag, const char *json)
{
    printf("%s %s\n", tag, json);
    es_sync_result_t *r = es_sync_result_new(json);
    if (!r) {
        printf("R {\"error\":\"%s\"}\n", es_client_last_error());
        return;
    }
    //  Only fields whose text cannot need JSON escaping are printed.
    printf("R {\"ok\":%d,\"code\":%d,\"name\":\"%s\",\"nerrors\":%zu,\"nwarnings\":%zu,"
           "\"nservices\":%zu,\"stats\":%s",
           r->ok, r->code, r->name, r->nerrors, r->nwarnings, r->nservices,
           r->stats ? "true" : "false");
    if (r->stats)
        printf(",\"downloaded\":%lld,\"uploaded\":%lld,\"nupload\":%zu,\"ndownload\":%zu",
               (long long)r->stats->total_downloaded_records,
               (long long)r->stats->total_uploaded_records, r->stats->nupload_stats,
               r->stats->ndownload_stats);
    printf(",\"services\":{");
    for (size_t i = 0; i < r->nservices; i++)
        printf("%s\"%s\":{\"ok\":%d,\"code\":%d}", i ? "," : "", r->services[i].name,
               r->services[i].ok, r->services[i].code);
    printf("}}\n");
    es_sync_result_destroy(&r);
}

static void
s_success(void *ctx, const char *json)
{
    (void)ctx;
    s_result("S", json);
}

static void
s_failure(void *ctx, const char *json)
{
    (void)ctx;
    s_result("F", json);
}

int
main(int argc, char *argv[])
{
    if (argc < 4) {
        fprintf(stderr, "usage: sync_probe ENDPOINT OPTIONS app|service SVC|object SVC OBJ\n");
        return 2;
    }
    es_client_t *c = es_client_new(argv[1], 5000);
    if (!c) {
        fprintf(stderr, "sync_probe: %s\n", es_client_last_error());
        return 3;
    }
    const char *opts = argv[2], *level = argv[3];
    int rc = -1;
    if (strcmp(level, "app") == 0)
        rc = es_app_start_sync(c, opts, s_success, s_failure, s_progress, NULL);
    else if (strcmp(level, "service") == 0 && argc > 4)
        rc = es_objsvc_start_sync(c, argv[4], opts, s_success, s_failure, s_progress, NULL);
    else if (strcmp(level, "object") == 0 && argc > 5)
        rc = es_obj_start_sync(c, argv[4], argv[5], opts, s_success, s_failure, s_progress, NULL);
    else
        fprintf(stderr, "sync_probe: bad level or missing names\n");
    if (rc < 0)
        fprintf(stderr, "sync_probe: %s\n", es_client_last_error());
    es_client_destroy(&c);
    return rc < 0 ? 3 : rc;
}
