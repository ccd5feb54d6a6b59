//  mkchanges - create N pending changes (new Customer records) through libedgesync, one client
//  connection, so the upload benchmark does not pay N process spawns of the CLI.
//
//  usage: mkchanges CMD_ENDPOINT SERVICE OBJECT N
//  Prints {"created":N,"seconds":S} on stdout.
#include "client/edgesync.h"
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double
s_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

int
main(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: mkchanges CMD_ENDPOINT SERVICE OBJECT N\n");
        return 2;
    }
    long n = strtol(argv[4], NULL, 10);
    es_client_t *c = es_client_new(argv[1], 30000);
    if (!c) {
        fprintf(stderr, "mkchanges: %s\n", es_client_last_error());
        return 1;
    }
    double t0 = s_now();
    char rec[512];
    long i;
    for (i = 0; i < n; i++) {
        //  About 300 bytes, the same ten columns as the generated Customers (id auto-generated).
        snprintf(rec, sizeof rec,
                 "{\"name\":\"Bench User %ld\",\"email\":\"bench.user%ld@example.com\","
                 "\"city\":\"Lisbon\",\"country\":\"Portugal\",\"balance\":%ld.25,"
                 "\"active\":true,\"created\":\"2024-05-01T10:00:00Z\",\"tier\":%ld,"
                 "\"notes\":\"created by the edgesync upload benchmark, lorem ipsum dolor sit "
                 "amet consectetur adipiscing elit sed do eiusmod tempor\"}",
                 i, i, i % 100000, i % 5 + 1);
        char *r = es_client_create(c, argv[2], argv[3], rec, NULL);
        if (!r) {
            fprintf(stderr, "mkchanges: record %ld: %s\n", i, es_client_last_error());
            break;
        }
        free(r);
    }
    double secs = s_now() - t0;
    es_client_destroy(&c);
    printf("{\"created\":%ld,\"seconds\":%.6f}\n", i, secs);
    return i == n ? 0 : 1;
}
