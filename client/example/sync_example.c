//  sync_example - sync one object service through edgesyncd with libedgesync and print what
//  happens. Build: cc sync_example.c $(pkg-config --cflags --libs edgesync)
//  Run: ./sync_example ipc:///var/lib/edgesync/cmd.sock SampleSvc '{"getSyncStats":true}'
#include <edgesync.h>
#include <stdio.h>

static void
on_progress(void *ctx, const char *json)
{
    (void)ctx;
    printf("progress %s\n", json); //  {"phase":"Download","state":"Ended",...}
}

static void
on_success(void *ctx, const char *json)
{
    (void)ctx;
    es_sync_result_t *r = es_sync_result_new(json);
    if (r && r->stats)
        printf("success %s: %lld records downloaded, %lld uploaded, %zu record errors\n", r->name,
               (long long)r->stats->total_downloaded_records,
               (long long)r->stats->total_uploaded_records, r->nerrors);
    else
        printf("success %s\n", json);
    es_sync_result_destroy(&r);
}

static void
on_failure(void *ctx, const char *json)
{
    (void)ctx;
    es_sync_result_t *r = es_sync_result_new(json);
    printf("failure %d: %s\n", r ? r->code : -1, r ? r->message : json);
    es_sync_result_destroy(&r);
}

int
main(int argc, char *argv[])
{
    if (argc < 3) {
        fprintf(stderr, "usage: sync_example ENDPOINT SERVICE [SYNC_OPTIONS_JSON]\n");
        return 2;
    }
    es_client_t *client = es_client_new(argv[1], 5000);
    if (!client) {
        fprintf(stderr, "sync_example: %s\n", es_client_last_error());
        return 3;
    }
    int rc = es_objsvc_start_sync(client, argv[2], argc > 3 ? argv[3] : "{}", on_success,
                                  on_failure, on_progress, NULL);
    if (rc < 0)
        fprintf(stderr, "sync_example: %s\n", es_client_last_error());
    es_client_destroy(&client);
    return rc == 0 ? 0 : 1;
}
