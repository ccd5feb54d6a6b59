//  fuzz_config - es_config_load() of any configuration file (written to a memfd, read back
//  through /proc/self/fd); what loads must give options that es_config_set() accepts again.
#include "common/es_config.h"
#include "fuzz/fuzz_util.h"
#include <sys/mman.h>
#include <unistd.h>

static int s_fd = -1;

static void
s_close(void)
{
    if (s_fd >= 0)
        (void)close(s_fd);
    s_fd = -1;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (s_fd < 0) {
        s_fd = memfd_create("fuzz_config", 0);
        if (s_fd < 0)
            fz_fail("memfd_create failed");
        atexit(s_close);
    }
    if (ftruncate(s_fd, 0) || (size && pwrite(s_fd, data, size, 0) != (ssize_t)size))
        fz_fail("writing the config file failed");
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", s_fd);

    es_config_t *cfg = es_config_new();
    es_err_t err;
    es_err_clear(&err);
    if (es_config_load(cfg, path, &err)) {
        fz_check_err("es_config_load", &err);
        if (err.code != ES_ECONFIG)
            fz_fail("es_config_load: code %d, expected ECONFIG: %s", (int)err.code, err.what);
    } else {
        //  Every value the file set reads back and is accepted again as it is.
        static const char *const keys[] = {"data_dir",  "server_url",       "auth_token",
                                           "log.level", "download.workers", "retry.max_ms"};
        for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
            char *v = strdup(es_config_str(cfg, keys[i]));
            if (!v)
                abort();
            if (es_config_set(cfg, keys[i], v, &err))
                fz_fail("%s: loaded value '%s' not accepted again: %s", keys[i], v, err.what);
            free(v);
        }
        char *ep = es_config_cmd_endpoint(cfg);
        free(ep);
    }
    es_config_destroy(&cfg);
    return 0;
}
