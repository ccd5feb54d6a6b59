//  edgesyncd - the orchestrator daemon.
#include "actors/orchestrator/orch.h"
#include "common/es_config.h"
#include "common/es_log.h"
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void
s_usage(FILE *out)
{
    fprintf(out, "usage: edgesyncd [--config FILE] [--help-config]\n"
                 "  Runs the edgesync daemon: the orchestrator and its actor processes.\n"
                 "  --config FILE     configuration file (key = value lines)\n"
                 "  --help-config     print every option with its default and bounds\n");
}

int
main(int argc, char *argv[])
{
    es_log_init("edgesyncd");
    es_config_t *config = es_config_new();
    const char *config_path = NULL;
    es_err_t err;
    int rc = 2;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            s_usage(stdout);
            rc = 0;
            goto done;
        } else if (strcmp(argv[i], "--help-config") == 0) {
            es_config_help(stdout);
            rc = 0;
            goto done;
        } else if (strcmp(argv[i], "--config") == 0 && i + 1 < argc) {
            config_path = argv[++i];
            if (es_config_load(config, config_path, &err)) {
                fprintf(stderr, "edgesyncd: %s\n", err.what);
                goto done;
            }
        } else {
            fprintf(stderr, "edgesyncd: unknown argument '%s'\n", argv[i]);
            s_usage(stderr);
            goto done;
        }
    }
    es_log_set_level((es_log_level_t)es_log_level_parse(es_config_str(config, "log.level")));
    //  Actors live beside this binary.
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) {
        fprintf(stderr, "edgesyncd: cannot find its own binary\n");
        rc = 1;
        goto done;
    }
    exe[n] = '\0';
    char *abs_config = config_path ? realpath(config_path, NULL) : NULL;
    orch_t *orch = orch_new(config, abs_config, dirname(exe), &err);
    if (!orch) {
        es_log_error("%s", err.what);
        free(abs_config);
        rc = 1;
        goto done;
    }
    rc = orch_run(orch, &err) ? 1 : 0;
    if (rc)
        es_log_error("%s", err.what);
    orch_destroy(&orch);
    free(abs_config);
done:
    es_config_destroy(&config);
    return rc;
}
