//  edgesyncd - the orchestrator daemon.
#include "actors/orchestrator/orch.h"
#include "common/es_config.h"
#include "common/es_log.h"
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef ES_ACTOR_RELDIR
#define ES_ACTOR_RELDIR "../libexec/edgesync"
#endif

//  The actors live beside edgesyncd in a build tree, and in ES_ACTOR_RELDIR relative to it once
//  installed (libexecdir/edgesync from sbindir), so an installed tree also works when relocated.
//  dir gets the first directory holding all of them. -1 with err naming both places.
static int
s_actor_dir(const char *exe_dir, char *dir, size_t size, es_err_t *err)
{
    static const char *kinds[] = {"stats", "upload", "reconcile", "download"};
    char candidates[2][PATH_MAX];
    int n0 = snprintf(candidates[0], sizeof candidates[0], "%s", exe_dir);
    int n1 = snprintf(candidates[1], sizeof candidates[1], "%s/%s", exe_dir, ES_ACTOR_RELDIR);
    if (n0 < 0 || n1 < 0 || (size_t)n1 >= sizeof candidates[1])
        return es_err_set(err, ES_ESYS, "edgesyncd's directory is too long: %s", exe_dir);
    for (int c = 0; c < 2; c++) {
        bool all = true;
        for (size_t k = 0; all && k < sizeof kinds / sizeof kinds[0]; k++) {
            char path[PATH_MAX];
            int n = snprintf(path, sizeof path, "%s/es-%s", candidates[c], kinds[k]);
            all = n > 0 && (size_t)n < sizeof path && access(path, X_OK) == 0;
        }
        if (all) {
            char *real = realpath(candidates[c], NULL);
            if (!real)
                return es_err_set(err, ES_ESYS, "actor directory %s: %s", candidates[c],
                                  strerror(errno));
            snprintf(dir, size, "%s", real);
            free(real);
            return 0;
        }
    }
    return es_err_set(err, ES_ESYS,
                      "actor binaries (es-stats, es-upload, es-reconcile, es-download) are "
                      "neither in %s nor in %s",
                      candidates[0], candidates[1]);
}

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
            if (es_config_load(config, config_path, &err) ||
                es_config_check_secrets(config, config_path, &err)) {
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
    char exe[PATH_MAX], actor_dir[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) {
        fprintf(stderr, "edgesyncd: cannot find its own binary\n");
        rc = 1;
        goto done;
    }
    exe[n] = '\0';
    if (s_actor_dir(dirname(exe), actor_dir, sizeof actor_dir, &err)) {
        es_log_error("%s", err.what);
        rc = 1;
        goto done;
    }
    char *abs_config = config_path ? realpath(config_path, NULL) : NULL;
    orch_t *orch = orch_new(config, abs_config, actor_dir, &err);
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
