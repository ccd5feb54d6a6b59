//  edgesync-server - the reference backend: a Foundry-compatible object service on loopback
//  with sample data, an upload cache, conflict policies and run-time fault injection.
#include "common/es_log.h"
#include "common/es_mem.h"
#include "server/srv.h"
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

static void
s_usage(FILE *out)
{
    fprintf(out, "usage: edgesync-server [options]\n"
                 "  --port N             service port (0 = pick a free one; default 8090)\n"
                 "  --admin-port N       admin port on 127.0.0.1 (0 = pick; default 8091)\n"
                 "  --bind ADDR          service listen address (default 127.0.0.1)\n"
                 "  --data DIR           directory for server.mdb (created; default "
                 "./edgesync-server-data)\n"
                 "  --generate SPEC      N (Customer=N, Product=N/2, OrderLine=N) or\n"
                 "                       Customer=N,Product=N,OrderLine=N (default 1000);\n"
                 "                       naming Supplier=N adds a fourth object, Supplier\n"
                 "  --load FILE.jsonl    load {\"object\":\"X\",\"record\":{...}} lines after "
                 "generating\n"
                 "  --token T            require X-Voltmx-Authorization (or X-Kony-) = T\n"
                 "  --policy P           conflict policy: none | client | server (default none)\n"
                 "  --upload-cache on|off  upload cache (default on)\n"
                 "  --seed N             generator and fault seed (default 1)\n"
                 "  --max-body-mb N      request body limit, 1..4096 MiB (default 64)\n"
                 "  --log-level L        error | warn | info | debug\n"
                 "  --tls-cert FILE      PEM certificate: the service port speaks HTTPS\n"
                 "  --tls-key FILE       its PEM private key (unencrypted)\n"
                 "  --tls-client-ca FILE require client certificates signed by this PEM CA\n"
                 "                       (the admin port stays plain http on 127.0.0.1)\n");
}

static int
s_parse_u64(const char *opt, const char *text, uint64_t max, uint64_t *out)
{
    char *end;
    errno = 0;
    if (!text || !*text || strspn(text, "0123456789") != strlen(text)) {
        fprintf(stderr, "edgesync-server: %s: expected a non-negative integer, got '%s'\n", opt,
                text ? text : "");
        return -1;
    }
    unsigned long long v = strtoull(text, &end, 10);
    if (errno || v > max) {
        fprintf(stderr, "edgesync-server: %s: must be 0..%" PRIu64 ", got '%s'\n", opt, max, text);
        return -1;
    }
    *out = v;
    return 0;
}

static int
s_parse_generate(const char *text, srv_opts_t *o)
{
    uint64_t n;
    if (strspn(text, "0123456789") == strlen(text)) {
        if (s_parse_u64("--generate", text, 100000000, &n))
            return -1;
        o->gen_customer = n;
        o->gen_product = n / 2;
        o->gen_orderline = n;
        return 0;
    }
    o->gen_customer = o->gen_product = o->gen_orderline = o->gen_supplier = 0;
    o->supplier = false;
    char *copy = es_strdup(text), *save = NULL;
    int rc = 0;
    for (char *tok = strtok_r(copy, ",", &save); tok && rc == 0; tok = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(tok, '=');
        uint64_t *dst = NULL;
        if (eq) {
            *eq = '\0';
            if (strcmp(tok, "Customer") == 0)
                dst = &o->gen_customer;
            else if (strcmp(tok, "Product") == 0)
                dst = &o->gen_product;
            else if (strcmp(tok, "OrderLine") == 0)
                dst = &o->gen_orderline;
            else if (strcmp(tok, "Supplier") == 0) {
                dst = &o->gen_supplier;
                o->supplier = true;
            }
        }
        if (!dst) {
            fprintf(stderr,
                    "edgesync-server: --generate: expected N or Customer=N,Product=N,"
                    "OrderLine=N[,Supplier=N], got '%s'\n",
                    text);
            rc = -1;
        } else {
            rc = s_parse_u64("--generate", eq + 1, 100000000, dst);
        }
    }
    free(copy);
    return rc;
}

static int
s_parse_policy(const char *text, srv_opts_t *o)
{
    static const struct {
        const char *alias, *name;
    } map[] = {{"none", "None"},
               {"client", "Client Wins"},
               {"client wins", "Client Wins"},
               {"clientwins", "Client Wins"},
               {"client_wins", "Client Wins"},
               {"server", "Server Wins"},
               {"server wins", "Server Wins"},
               {"serverwins", "Server Wins"},
               {"server_wins", "Server Wins"}};
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        if (strcasecmp(text, map[i].alias) == 0) {
            o->policy = map[i].name;
            return 0;
        }
    fprintf(stderr, "edgesync-server: --policy: expected none, client or server, got '%s'\n", text);
    return -1;
}

static int
s_parse_args(int argc, char *argv[], srv_opts_t *o)
{
    static const struct option longopts[] = {{"port", required_argument, NULL, 'p'},
                                             {"admin-port", required_argument, NULL, 'a'},
                                             {"bind", required_argument, NULL, 'b'},
                                             {"data", required_argument, NULL, 'd'},
                                             {"generate", required_argument, NULL, 'g'},
                                             {"load", required_argument, NULL, 'l'},
                                             {"token", required_argument, NULL, 't'},
                                             {"policy", required_argument, NULL, 'P'},
                                             {"upload-cache", required_argument, NULL, 'u'},
                                             {"seed", required_argument, NULL, 's'},
                                             {"max-body-mb", required_argument, NULL, 'm'},
                                             {"log-level", required_argument, NULL, 'L'},
                                             {"tls-cert", required_argument, NULL, 'C'},
                                             {"tls-key", required_argument, NULL, 'K'},
                                             {"tls-client-ca", required_argument, NULL, 'A'},
                                             {"help", no_argument, NULL, 'h'},
                                             {NULL, 0, NULL, 0}};
    uint64_t v;
    int c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (c) {
        case 'p':
        case 'a':
            if (s_parse_u64(c == 'p' ? "--port" : "--admin-port", optarg, 65535, &v))
                return -1;
            *(c == 'p' ? &o->port : &o->admin_port) = (int)v;
            break;
        case 'b':
            o->bind = optarg;
            break;
        case 'd':
            o->data_dir = optarg;
            break;
        case 'g':
            if (s_parse_generate(optarg, o))
                return -1;
            break;
        case 'l':
            o->load = optarg;
            break;
        case 't':
            if (!*optarg) {
                fprintf(stderr, "edgesync-server: --token: must not be empty\n");
                return -1;
            }
            o->token = optarg;
            break;
        case 'P':
            if (s_parse_policy(optarg, o))
                return -1;
            break;
        case 'u':
            if (strcmp(optarg, "on") && strcmp(optarg, "off")) {
                fprintf(stderr, "edgesync-server: --upload-cache: expected on or off, got '%s'\n",
                        optarg);
                return -1;
            }
            o->upload_cache = strcmp(optarg, "on") == 0;
            break;
        case 's':
            if (s_parse_u64("--seed", optarg, UINT64_MAX, &o->seed))
                return -1;
            break;
        case 'm':
            if (s_parse_u64("--max-body-mb", optarg, 4096, &v))
                return -1;
            if (v == 0) {
                fprintf(stderr, "edgesync-server: --max-body-mb: must be 1..4096, got 0\n");
                return -1;
            }
            o->max_body = (size_t)v << 20;
            break;
        case 'L': {
            int lvl = es_log_level_parse(optarg);
            if (lvl < 0) {
                fprintf(stderr,
                        "edgesync-server: --log-level: expected error, warn, info or debug, "
                        "got '%s'\n",
                        optarg);
                return -1;
            }
            es_log_set_level((es_log_level_t)lvl);
            break;
        }
        case 'C':
            o->tls_cert = optarg;
            break;
        case 'K':
            o->tls_key = optarg;
            break;
        case 'A':
            o->client_ca = optarg;
            break;
        case 'h':
            s_usage(stdout);
            exit(0);
        default:
            fprintf(stderr, "edgesync-server: unknown or incomplete option '%s'\n",
                    argv[optind - 1]);
            s_usage(stderr);
            return -1;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "edgesync-server: unexpected argument '%s'\n", argv[optind]);
        return -1;
    }
    if (!o->tls_cert != !o->tls_key) {
        fprintf(stderr, "edgesync-server: --tls-cert and --tls-key go together\n");
        return -1;
    }
    if (o->client_ca && !o->tls_cert) {
        fprintf(stderr, "edgesync-server: --tls-client-ca needs --tls-cert and --tls-key\n");
        return -1;
    }
    return 0;
}

int
main(int argc, char *argv[])
{
    srv_opts_t opts = {.bind = "127.0.0.1",
                       .port = 8090,
                       .admin_port = 8091,
                       .data_dir = "./edgesync-server-data",
                       .policy = "None",
                       .upload_cache = true,
                       .seed = 1,
                       .max_body = (size_t)64 << 20,
                       .gen_customer = 1000,
                       .gen_product = 500,
                       .gen_orderline = 1000};
    es_log_init("server");
    if (s_parse_args(argc, argv, &opts))
        return 2;
    if (mkdir(opts.data_dir, 0700) && errno != EEXIST) {
        fprintf(stderr, "edgesync-server: --data %s: %s\n", opts.data_dir, strerror(errno));
        return 2;
    }
    //  Block the stop signals before any thread starts, so only sigwait below sees them.
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);
    signal(SIGPIPE, SIG_IGN);

    es_err_t err;
    volatile int stopping = 0;
    srv_stats_t stats;
    memset(&stats, 0, sizeof stats);
    pthread_mutex_init(&stats.lock, NULL);
    srv_t srv = {.opts = &opts, .stats = &stats, .stopping = &stopping};
    int rc = 1;
    srv_http_t *http = NULL;
    srv.data = srv_data_new(&opts, &err);
    if (!srv.data) {
        es_log_error("server: %s", err.what);
        goto done;
    }
    if (srv_upload_cache_sweep(&srv, &err)) {
        es_log_error("server: upload cache: %s", err.what);
        goto done;
    }
    srv.faults = srv_fault_new(opts.seed);
    http = srv_http_new(&srv, &err);
    if (!http) {
        es_log_error("server: %s", err.what);
        goto done;
    }
    printf("edgesync-server listening on %s://%s:%d admin http://127.0.0.1:%d\n",
           opts.tls_cert ? "https" : "http", opts.bind, srv_http_port(http),
           srv_http_admin_port(http));
    fflush(stdout);
    int sig = 0;
    while (sigwait(&stop, &sig) != 0)
        ;
    es_log_info("server: signal %d, stopping", sig);
    stopping = 1;
    rc = 0;
done:
    srv_http_destroy(&http);
    srv_fault_destroy(&srv.faults);
    srv_data_destroy(&srv.data);
    pthread_mutex_destroy(&stats.lock);
    return rc;
}
