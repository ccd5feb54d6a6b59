//  es_cli - the edgesync command line over libedgesync: parses arguments strictly (usage errors
//  exit 2 before anything is sent), finds the daemon's endpoint, shows sync progress.
#include "client/es_cli.h"
#include "client/edgesync.h"
#include "common/es_buf.h"
#include "common/es_config.h"
#include "common/es_curve.h"
#include "common/es_err.h"
#include "common/es_mem.h"
#include "protocol/es_json.h"
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>
#include <yajl/yajl_tree.h>

#ifndef ES_VERSION
#define ES_VERSION "0.0.0"
#endif
#define S_SYSTEM_CONFIG "/etc/edgesync/edgesync.conf"
#define S_OPTIONS_MAX (1u << 20) //  options or a record larger than this are surely a mistake
#define S_POS_MAX 4              //  positional arguments of any command
#define S_ROWS_MAX 32            //  objects shown by the progress display
#define S_BAR 16                 //  progress bar width (a row fits 80 columns)
#define S_REDRAW_MS 100          //  redraw the display at most this often

static volatile sig_atomic_t s_interrupted;

static void
s_on_sigint(int sig)
{
    (void)sig;
    s_interrupted = 1;
}

//  --- usage --------------------------------------------------------------------------------

typedef struct {
    const char *name;     //  command word
    const char *synopsis; //  arguments
    const char *help;     //  what it does, options
} cmd_help_t;

static const cmd_help_t s_helps[] = {
    {"sync", "[SERVICE [OBJECT]] [--options JSON|@FILE] [--json]",
     "Sync the application (no SERVICE), an object service, or one object, and wait for the\n"
     "result, which is printed as JSON on stdout. Progress goes to stderr: a live display on a\n"
     "terminal, else (or with --json) one JSON line per event.\n"
     "  --options JSON|@FILE  syncOptions as a JSON object, inline or read from FILE\n"
     "  --json                progress events as JSON lines even on a terminal\n"
     "Exit: 0 success (also with syncErrors), 1 sync failed, 2 usage, 3 daemon unreachable."},
    {"setup", "[SERVICE]", "Fetch and store the metadata of one object service (default: all)."},
    {"get", "SERVICE OBJECT [PK] [--filter ODATA] [--limit N]",
     "Print local records. PK is JSON (42, '\"abc\"', '{\"id\":1,\"k\":\"x\"}'); text that is not\n"
     "JSON is taken as a string.\n"
     "  --filter ODATA  OData $filter evaluated locally\n"
     "  --limit N       at most N records (0 = all)"},
    {"status", "[SESSION]", "Print the daemon's status, or one session's state."},
    {"stats", "[ENTITY]", "Print the last sync stats of an object or service (default: all)."},
    {"history", "[ENTITY] [--limit N] [--json]",
     "List past sync runs, newest first: when, entity, level, result, records, bytes, time.\n"
     "ENTITY is an object, a service or \"application\" (default: every run).\n"
     "  --limit N  at most N runs (default 20; 0 = every run kept, see history.max_runs)\n"
     "  --json     the runs as a JSON array, with options, phases, retries and errors"},
    {"events", "[SESSION] [--from ENDPOINT]",
     "Print progress events as JSON lines until Ctrl-C or, with SESSION, until its result.\n"
     "  --from ENDPOINT  event socket (default: $EDGESYNC_EVENT_ENDPOINT, the config file's\n"
     "                   event_endpoint, or events.sock beside an ipc command socket)"},
    {"cancel", "SESSION", "Cancel a running sync session."},
    {"keygen", "[--out PREFIX]",
     "Make a CURVE key pair for a daemon on tcp://: PREFIX.key (the secret, mode 0600) and\n"
     "PREFIX.pub (the public key); existing files are never replaced. Prints the public key.\n"
     "The daemon's pair: curve.secret_key_file = PREFIX.key, clients get PREFIX.pub for\n"
     "--curve-server-key. A client's pair: --curve-key PREFIX.key, and the key in its\n"
     "PREFIX.pub goes on a line of the daemon's curve.allow_keys_file (then SIGHUP it).\n"
     "  --out PREFIX  file name prefix (default: edgesync, in the current directory)"},
    {"create", "SERVICE OBJECT RECORD_JSON|@FILE [--options JSON|@FILE]",
     "Create a record locally; prints {\"pk\":{...}}, the new key (auto-generated key columns\n"
     "get a temporary negative id until the record is uploaded).\n"
     "  --options JSON|@FILE  {\"trackChanges\":false} keeps the change from being uploaded,\n"
     "                        {\"markForUpload\":false} defers it until mark-for-upload"},
    {"update", "SERVICE OBJECT PK RECORD_JSON|@FILE [--options JSON|@FILE]",
     "Replace the non-key columns of the record with key PK. PK is JSON (7, '\"SKU-1\"',\n"
     "'{\"orderId\":1,\"lineNo\":2}'); a word that is not JSON is taken as a string.\n"
     "  --options JSON|@FILE  trackChanges, markForUpload, trackIntermediateUpdates"},
    {"partial-update", "SERVICE OBJECT PK RECORD_JSON|@FILE [--options JSON|@FILE]",
     "Change only the given columns of the record with key PK (PK as for update).\n"
     "  --options JSON|@FILE  trackChanges, markForUpload, trackIntermediateUpdates"},
    {"delete", "SERVICE OBJECT PK [--options JSON|@FILE]",
     "Delete the record with key PK locally (PK as for update).\n"
     "  --options JSON|@FILE  trackChanges, markForUpload"},
    {"pending", "SERVICE [OBJECT]",
     "Print the keys of the records with changes waiting for upload."},
    {"rollback", "[SERVICE [OBJECT [PK]]]",
     "Undo local changes not yet uploaded: of everything, a service, an object or one record;\n"
     "prints {\"rolledBack\":N}."},
    {"clear", "SERVICE [OBJECT [PK]]",
     "Delete local data of a service, an object or one record (not uploaded); prints\n"
     "{\"cleared\":N}."},
    {"mark-for-upload", "SERVICE [OBJECT]",
     "Make the deferred changes (markForUpload false) of a service or object pending for\n"
     "upload; prints {\"marked\":N}."},
};
#define S_NCMDS (sizeof s_helps / sizeof s_helps[0])

static void
s_usage(FILE *out)
{
    fprintf(out,
            "usage: edgesync [-c CONFIG | -e ENDPOINT] [-t MS] COMMAND [ARGS]\n"
            "       edgesync --help | --version | COMMAND --help\n\n"
            "  -c CONFIG    config file (default %s if it exists)\n"
            "  -e ENDPOINT  daemon command endpoint (default: $EDGESYNC_ENDPOINT, the config\n"
            "               file, else ipc://<cwd>/edgesync-data/cmd.sock)\n"
            "  -t MS        reply timeout in milliseconds (default 5000)\n"
            "  --curve-server-key FILE  the daemon's CURVE public key (PREFIX.pub), for a\n"
            "               tcp:// endpoint (default: $EDGESYNC_CURVE_SERVER_KEY, else the\n"
            "               config file's curve.server_public_key_file)\n"
            "  --curve-key FILE  this client's CURVE secret key (PREFIX.key, mode 0600)\n"
            "               (default: $EDGESYNC_CURVE_KEY, else curve.client_key_file)\n\n"
            "commands:\n",
            S_SYSTEM_CONFIG);
    for (size_t i = 0; i < S_NCMDS; i++)
        fprintf(out, "  %-15s %s\n", s_helps[i].name, s_helps[i].synopsis);
}

static const cmd_help_t *
s_help_of(const char *cmd)
{
    for (size_t i = 0; i < S_NCMDS; i++)
        if (strcmp(s_helps[i].name, cmd) == 0)
            return &s_helps[i];
    return NULL;
}

static int s_usage_error(const char *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int
s_usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "edgesync: %s%s", cmd ? cmd : "", cmd ? ": " : "");
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, " (see 'edgesync %s%s--help')\n", cmd ? cmd : "", cmd ? " " : "");
    return ES_CLI_USAGE;
}

//  --- command arguments ----------------------------------------------------------------------

typedef struct {
    const char *name;  //  "--options"
    bool has_value;    //  takes a value
    const char *value; //  value, or "" for a flag that is set; NULL if absent
} opt_t;

typedef struct {
    const char *cmd;            //  command word
    const char *pos[S_POS_MAX]; //  positional arguments
    size_t npos;                //  how many
    bool help;                  //  --help given
} args_t;

//  Split a command's arguments into options (anywhere; "--" ends them) and positionals.
//  ES_CLI_USAGE with a message for an unknown option, a missing value or too many arguments.
static int
s_parse_args(args_t *a, int argc, char **argv, opt_t *opts, size_t nopts, size_t max_pos,
             const char *const *pos_names, size_t min_pos)
{
    bool only_pos = false;
    for (int i = 0; i < argc; i++) {
        const char *arg = argv[i];
        if (!only_pos && strcmp(arg, "--") == 0) {
            only_pos = true;
            continue;
        }
        if (!only_pos && (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0)) {
            a->help = true;
            return 0;
        }
        //  A negative number is an argument, not an option: temporary keys are negative.
        if (!only_pos && arg[0] == '-' && arg[1] != '\0' && !(arg[1] >= '0' && arg[1] <= '9')) {
            const char *eq = strchr(arg, '=');
            size_t nlen = eq ? (size_t)(eq - arg) : strlen(arg);
            opt_t *o = NULL;
            for (size_t k = 0; k < nopts; k++)
                if (strlen(opts[k].name) == nlen && strncmp(opts[k].name, arg, nlen) == 0)
                    o = &opts[k];
            if (!o)
                return s_usage_error(a->cmd, "unknown option '%.*s'", (int)nlen, arg);
            if (!o->has_value) {
                if (eq)
                    return s_usage_error(a->cmd, "option '%s' takes no value", o->name);
                o->value = "";
            } else if (eq) {
                o->value = eq + 1;
            } else if (i + 1 < argc) {
                o->value = argv[++i];
            } else {
                return s_usage_error(a->cmd, "option '%s' needs a value", o->name);
            }
            continue;
        }
        if (a->npos == max_pos)
            return s_usage_error(a->cmd, "unexpected argument '%s'", arg);
        a->pos[a->npos++] = arg;
    }
    if (a->npos < min_pos)
        return s_usage_error(a->cmd, "missing %s", pos_names[a->npos]);
    for (size_t i = 0; i < a->npos; i++) {
        if (!*a->pos[i])
            return s_usage_error(a->cmd, "%s must not be empty", pos_names[i]);
        //  Names are bounded; keys and records are JSON, bounded elsewhere.
        if (strlen(a->pos[i]) > ES_CLIENT_NAME_MAX && strcmp(pos_names[i], "PK") != 0 &&
            strcmp(pos_names[i], "RECORD") != 0)
            return s_usage_error(a->cmd, "%s longer than %d bytes", pos_names[i],
                                 ES_CLIENT_NAME_MAX);
    }
    return 0;
}

static int
s_print_help(const char *cmd)
{
    const cmd_help_t *h = s_help_of(cmd);
    printf("usage: edgesync %s %s\n\n%s\n", h->name, h->synopsis, h->help);
    return ES_CLI_OK;
}

//  First line of a yajl error (it adds the text and a caret on further lines).
static void
s_first_line(char *text)
{
    char *nl = strchr(text, '\n');
    if (nl)
        *nl = '\0';
}

//  A JSON object argument, inline or "@FILE" (what names it in messages: "--options", "RECORD";
//  example shows the expected shape), checked to parse. *out is the caller's. ES_CLI_USAGE with
//  a message naming the problem.
static int
s_load_json(const char *cmd, const char *what, const char *example, const char *value, char **out)
{
    *out = NULL;
    char *text = NULL;
    if (value[0] == '@') {
        const char *path = value + 1;
        FILE *f = fopen(path, "rb");
        if (!f)
            return s_usage_error(cmd, "%s: cannot read '%s': %s", what, path, strerror(errno));
        es_buf_t b;
        es_buf_init(&b);
        char chunk[4096];
        size_t n;
        while ((n = fread(chunk, 1, sizeof chunk, f)) > 0 && b.len <= S_OPTIONS_MAX)
            es_buf_append(&b, chunk, n);
        int bad = ferror(f);
        fclose(f);
        if (bad) {
            es_buf_release(&b);
            return s_usage_error(cmd, "%s: cannot read '%s': read error", what, path);
        }
        if (b.len > S_OPTIONS_MAX) {
            es_buf_release(&b);
            return s_usage_error(cmd, "%s: '%s' is larger than %u bytes", what, path,
                                 S_OPTIONS_MAX);
        }
        //  The parser stops at a NUL: what follows would be dropped unseen.
        if (b.len && memchr(b.data, '\0', b.len)) {
            es_buf_release(&b);
            return s_usage_error(cmd, "%s: '%s' contains a NUL byte", what, path);
        }
        text = es_buf_steal(&b);
    } else {
        if (strlen(value) > S_OPTIONS_MAX)
            return s_usage_error(cmd, "%s: larger than %u bytes", what, S_OPTIONS_MAX);
        text = es_strdup(value);
    }
    char errbuf[256] = "";
    yajl_val root = yajl_tree_parse(text, errbuf, sizeof errbuf);
    int rc = 0;
    if (!root) {
        s_first_line(errbuf);
        rc = s_usage_error(cmd, "%s: invalid JSON%s%s: %s", what, value[0] == '@' ? " in " : "",
                           value[0] == '@' ? value + 1 : "", errbuf[0] ? errbuf : "parse error");
    } else if (!YAJL_IS_OBJECT(root)) {
        rc = s_usage_error(cmd, "%s: must be a JSON object, like %s", what, example);
    }
    yajl_tree_free(root);
    if (rc)
        free(text);
    else
        *out = text;
    return rc;
}

static int
s_load_options(const char *value, char **out)
{
    return s_load_json("sync", "--options", "{\"syncType\":\"fullSync\"}", value, out);
}

//  A primary key argument as JSON: JSON as given when it parses (a string, number or object),
//  else the text as a JSON string, so SKU-1 works unquoted. Text that starts like a JSON object
//  or string but does not parse is a mistake, not a key. *out is the caller's.
static int
s_pk_json(const char *cmd, const char *text, char **out)
{
    *out = NULL;
    char errbuf[256] = "";
    yajl_val v = yajl_tree_parse(text, errbuf, sizeof errbuf);
    if (!v && (text[0] == '{' || text[0] == '"')) {
        s_first_line(errbuf);
        return s_usage_error(cmd, "PK: invalid JSON: %s", errbuf[0] ? errbuf : "parse error");
    }
    if (v && !YAJL_IS_ARRAY(v) && !YAJL_IS_NULL(v)) {
        *out = es_strdup(text);
    } else {
        es_buf_t b;
        es_buf_init(&b);
        es_buf_json_str(&b, text, strlen(text));
        *out = es_buf_steal(&b);
    }
    yajl_tree_free(v);
    return 0;
}

//  --- endpoints ------------------------------------------------------------------------------

typedef struct {
    const char *config_path; //  -c
    const char *endpoint;    //  -e
    int timeout_ms;          //  -t
    char *cmd_endpoint;      //  resolved command endpoint
    char *event_endpoint;    //  from the config file or the environment, or NULL
    const char *curve_server_key; //  --curve-server-key
    const char *curve_key;        //  --curve-key
    char *curve_server_file;      //  resolved: the daemon's public key file, or NULL
    char *curve_key_file;         //  resolved: this client's secret key file, or NULL
} env_t;

//  -e, else $EDGESYNC_ENDPOINT, else the config file (-c, else the system one if it exists),
//  else the default data_dir's socket.
static int
s_resolve_endpoints(env_t *env)
{
    const char *ev = getenv("EDGESYNC_EVENT_ENDPOINT");
    if (ev && *ev)
        env->event_endpoint = es_strdup(ev);
    if (env->endpoint) {
        env->cmd_endpoint = es_strdup(env->endpoint);
        return 0;
    }
    const char *ep = getenv("EDGESYNC_ENDPOINT");
    if (ep && *ep) {
        env->cmd_endpoint = es_strdup(ep);
        return 0;
    }
    const char *path = env->config_path;
    if (!path && access(S_SYSTEM_CONFIG, F_OK) == 0)
        path = S_SYSTEM_CONFIG;
    es_config_t *config = es_config_new();
    if (path) {
        es_err_t err;
        if (es_config_load(config, path, &err)) {
            es_config_destroy(&config);
            fprintf(stderr, "edgesync: config: %s\n", err.what);
            return ES_CLI_USAGE;
        }
    }
    env->cmd_endpoint = es_config_cmd_endpoint(config);
    if (!env->event_endpoint)
        env->event_endpoint = es_config_event_endpoint(config);
    es_config_destroy(&config);
    return 0;
}

//  CURVE key files: the options, else the environment, else the config file (-c, else the system
//  one if it exists). Both or neither.
static int
s_resolve_curve(env_t *env)
{
    const char *server = env->curve_server_key, *key = env->curve_key;
    const char *e = getenv("EDGESYNC_CURVE_SERVER_KEY");
    if (!server && e && *e)
        server = e;
    e = getenv("EDGESYNC_CURVE_KEY");
    if (!key && e && *e)
        key = e;
    const char *path = env->config_path;
    if (!path && access(S_SYSTEM_CONFIG, F_OK) == 0)
        path = S_SYSTEM_CONFIG;
    es_config_t *config = NULL;
    if ((!server || !key) && path) {
        config = es_config_new();
        es_err_t err;
        if (es_config_load(config, path, &err)) {
            es_config_destroy(&config);
            fprintf(stderr, "edgesync: config: %s\n", err.what);
            return ES_CLI_USAGE;
        }
        if (!server && *es_config_str(config, "curve.server_public_key_file"))
            server = es_config_str(config, "curve.server_public_key_file");
        if (!key && *es_config_str(config, "curve.client_key_file"))
            key = es_config_str(config, "curve.client_key_file");
    }
    int rc = 0;
    if (!server != !key)
        rc = s_usage_error(NULL,
                           "%s is missing: CURVE needs both --curve-server-key (the daemon's "
                           "public key) and --curve-key (this client's secret key)",
                           server ? "--curve-key" : "--curve-server-key");
    else if (server) {
        env->curve_server_file = es_strdup(server);
        env->curve_key_file = es_strdup(key);
    }
    es_config_destroy(&config);
    return rc;
}

//  The PUB socket beside the command socket: ipc://DIR/cmd.sock -> ipc://DIR/events.sock,
//  tcp://HOST:PORT -> tcp://HOST:PORT+1. NULL if there is no such rule for the endpoint.
static char *
s_derive_event_endpoint(const char *cmd)
{
    if (strncmp(cmd, "ipc://", 6) == 0) {
        const char *slash = strrchr(cmd + 6, '/');
        if (!slash)
            return es_strdup("ipc://events.sock");
        return es_sprintf("%.*s/events.sock", (int)(slash - cmd), cmd);
    }
    if (strncmp(cmd, "tcp://", 6) == 0) {
        const char *colon = strrchr(cmd, ':');
        char *end;
        errno = 0;
        unsigned long port = colon ? strtoul(colon + 1, &end, 10) : 0;
        if (!colon || colon == cmd + 3 || errno || *end || port == 0 || port >= 65535)
            return NULL;
        return es_sprintf("%.*s:%lu", (int)(colon - cmd), cmd, port + 1);
    }
    return NULL;
}

//  --- output ---------------------------------------------------------------------------------

static int
s_exit_for_error(void)
{
    int code = es_client_last_code();
    fprintf(stderr, "edgesync: %s\n", es_client_last_error());
    switch (code) {
    case ES_CLIENT_EINVAL:
        return ES_CLI_USAGE;
    case ES_CLIENT_EINTR:
        return ES_CLI_INTERRUPTED;
    case ES_CLIENT_EUNREACHABLE:
    case ES_CLIENT_EAUTH:
    case ES_CLIENT_ETIMEOUT:
    case ES_CLIENT_EPROTO:
    case ES_CLIENT_ESYS:
        return ES_CLI_UNREACHABLE;
    default:
        return ES_CLI_FAILED; //  the daemon answered: the request failed
    }
}

//  A request's reply body on stdout, or its error (and failure object, if any).
static int
s_print_reply(es_client_t *client, char *body)
{
    if (!body) {
        const char *failure = es_client_last_body(client);
        if (failure)
            printf("%s\n", failure);
        return s_exit_for_error();
    }
    if (*body)
        printf("%s\n", body);
    free(body);
    return ES_CLI_OK;
}

//  --- progress display -----------------------------------------------------------------------

typedef enum {
    ROW_WAITING,
    ROW_UPLOAD,
    ROW_DOWNLOAD,
    ROW_RECONCILE,
    ROW_DONE,
    ROW_FAILED
} row_state_t;

typedef struct {
    char service[ES_CLIENT_NAME_MAX + 1]; //  object service ("" if not told)
    char name[ES_CLIENT_NAME_MAX + 1];    //  object (or service) name
    row_state_t state;                    //  what it is doing
    uint64_t records;                     //  records downloaded so far
    uint64_t uploaded;                    //  records uploaded so far
    uint32_t batches;                     //  download batches so far
    int64_t start_ms;                     //  first event about it
    int64_t end_ms;                       //  when it ended, or 0
} row_t;

typedef struct {
    bool live;                            //  redraw in place (stderr is a terminal, no --json)
    char session[ES_CLIENT_NAME_MAX + 1]; //  session id, from the events
    row_t rows[S_ROWS_MAX];               //  one per object
    size_t nrows;                         //  rows used
    size_t hidden;                        //  objects beyond S_ROWS_MAX
    size_t drawn;                         //  lines drawn last time (to move back over)
    int64_t start_ms;                     //  first event
    int64_t last_draw_ms;                 //  last redraw
    unsigned tick;                        //  animation step of the indeterminate bars
} progress_t;

static int64_t
s_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static bool
s_uint(yajl_val root, const char *key, uint64_t *out)
{
    const char *path[] = {key, NULL};
    yajl_val v = yajl_tree_get(root, path, yajl_t_number);
    if (!v || !YAJL_IS_INTEGER(v) || YAJL_GET_INTEGER(v) < 0)
        return false;
    *out = (uint64_t)YAJL_GET_INTEGER(v);
    return true;
}

static row_t *
s_row(progress_t *self, const char *service, const char *name)
{
    for (size_t i = 0; i < self->nrows; i++) {
        row_t *r = &self->rows[i];
        if (strcmp(r->name, name) == 0 &&
            (!*service || !*r->service || strcmp(r->service, service) == 0)) {
            if (!*r->service)
                snprintf(r->service, sizeof r->service, "%s", service);
            return r;
        }
    }
    if (self->nrows == S_ROWS_MAX) {
        self->hidden++;
        return NULL;
    }
    row_t *r = &self->rows[self->nrows++];
    memset(r, 0, sizeof *r);
    snprintf(r->service, sizeof r->service, "%s", service);
    snprintf(r->name, sizeof r->name, "%s", name);
    return r;
}

static void
s_bar(const row_t *r, unsigned tick, char *bar)
{
    memset(bar, ' ', S_BAR);
    bar[S_BAR] = '\0';
    if (r->state == ROW_DONE) {
        memset(bar, '=', S_BAR);
    } else if (r->state == ROW_DOWNLOAD || r->state == ROW_UPLOAD || r->state == ROW_RECONCILE) {
        //  Totals are unknown while downloading: a block bouncing across the bar.
        const unsigned block = 4, span = S_BAR - block;
        unsigned pos = tick % (2 * span);
        if (pos > span)
            pos = 2 * span - pos;
        memset(bar + pos, '=', block);
    }
}

static int
s_columns(void)
{
    struct winsize ws;
    if (ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 20)
        return ws.ws_col;
    return 80;
}

static void
s_draw(progress_t *self, bool force)
{
    int64_t now = s_now_ms();
    if (!force && now - self->last_draw_ms < S_REDRAW_MS)
        return;
    self->last_draw_ms = now;
    self->tick++;
    int cols = s_columns();
    static const char *states[] = {"waiting", "upload", "download", "reconcile", "done", "FAILED"};
    es_buf_t out;
    es_buf_init(&out);
    if (self->drawn)
        es_buf_printf(&out, "\033[%zuA", self->drawn); //  back to the first line drawn
    size_t lines = 0;
    char line[512], bar[S_BAR + 1];
    snprintf(line, sizeof line, "session %s  %.1fs", self->session[0] ? self->session : "?",
             (double)(now - self->start_ms) / 1000.0);
    es_buf_printf(&out, "\r\033[2K%.*s\n", cols - 1, line);
    lines++;
    for (size_t i = 0; i < self->nrows; i++) {
        const row_t *r = &self->rows[i];
        s_bar(r, self->tick, bar);
        int64_t end = r->end_ms ? r->end_ms : now;
        double secs = r->start_ms ? (double)(end - r->start_ms) / 1000.0 : 0;
        double rate = secs > 0.05 ? (double)r->records / secs : 0;
        int n = snprintf(line, sizeof line, "  %-16.16s [%s] %8" PRIu64 " rec %4u bat %6.0f/s %s",
                         r->name, bar, r->records, r->batches, rate, states[r->state]);
        if (r->uploaded && n > 0 && (size_t)n < sizeof line)
            snprintf(line + n, sizeof line - (size_t)n, " (%" PRIu64 " uploaded)", r->uploaded);
        es_buf_printf(&out, "\r\033[2K%.*s\n", cols - 1, line);
        lines++;
    }
    if (self->hidden) {
        es_buf_printf(&out, "\r\033[2K  ... and %zu more objects\n", self->hidden);
        lines++;
    }
    self->drawn = lines;
    fwrite(out.data, 1, out.len, stderr);
    fflush(stderr);
    es_buf_release(&out);
}

static void
s_on_progress(void *ctx, const char *json)
{
    progress_t *self = ctx;
    if (!self->live) {
        fprintf(stderr, "%s\n", json);
        fflush(stderr);
        return;
    }
    yajl_val root = yajl_tree_parse(json, NULL, 0);
    if (!root || !YAJL_IS_OBJECT(root)) {
        yajl_tree_free(root); //  the display skips what it cannot read
        return;
    }
    int64_t now = s_now_ms();
    if (!self->start_ms)
        self->start_ms = now;
    const char *session = es_json_get_str(root, "session"), *phase = es_json_get_str(root, "phase"),
               *state = es_json_get_str(root, "state"), *name = es_json_get_str(root, "name");
    //  Object events name the object in "object" (at service level "name" is the service).
    const char *object = es_json_get_str(root, "object");
    if (object && !(phase && strcmp(phase, "Sync") == 0))
        name = object;
    const char *service = es_json_get_str(root, "objectService");
    if (session)
        snprintf(self->session, sizeof self->session, "%s", session);
    bool force = false;
    if (phase && state && name) {
        if (strcmp(phase, "Sync") == 0 && strcmp(state, "Started") == 0) {
            const char *path[] = {"objects", NULL};
            yajl_val objs = yajl_tree_get(root, path, yajl_t_array);
            for (size_t i = 0; objs && i < objs->u.array.len; i++)
                if (YAJL_IS_STRING(objs->u.array.values[i]))
                    (void)s_row(self, "", objs->u.array.values[i]->u.string);
            force = true;
        } else if (strcmp(phase, "Sync") == 0 && strcmp(state, "Ended") == 0) {
            for (size_t i = 0; i < self->nrows; i++)
                if (self->rows[i].state != ROW_DONE) {
                    self->rows[i].state = ROW_DONE;
                    self->rows[i].end_ms = now;
                }
            force = true;
        } else {
            row_t *r = s_row(self, service ? service : "", name);
            if (r) {
                if (!r->start_ms)
                    r->start_ms = now;
                uint64_t v;
                if (strcmp(phase, "Upload") == 0) {
                    r->state = ROW_UPLOAD;
                    if (s_uint(root, "totalUploadedRecords", &v))
                        r->uploaded = v;
                } else if (strcmp(phase, "Download") == 0) {
                    r->state = ROW_DOWNLOAD;
                    if (s_uint(root, "batchNumber", &v) && strcmp(state, "Ended") == 0)
                        r->batches = (uint32_t)v;
                    //  Per-object count when the daemon gives one, else the event's total.
                    if (s_uint(root, "objectDownloadedRecords", &v) ||
                        s_uint(root, "totalDownloadedRecords", &v))
                        r->records = v;
                    //  The object's last batch: its download is complete.
                    const char *lp[] = {"lastBatch", NULL};
                    if (YAJL_IS_TRUE(yajl_tree_get(root, lp, yajl_t_any))) {
                        r->state = ROW_DONE;
                        r->end_ms = now;
                        force = true;
                    }
                } else if (strcmp(phase, "Reconcile") == 0) {
                    r->state = strcmp(state, "Ended") == 0 ? ROW_DONE : ROW_RECONCILE;
                    if (r->state == ROW_DONE) {
                        r->end_ms = now;
                        force = true;
                    }
                }
            }
        }
    }
    yajl_tree_free(root);
    s_draw(self, force);
}

//  --- commands -------------------------------------------------------------------------------

typedef struct {
    progress_t *progress; //  display to finish before printing
    bool failed;          //  on_failure was called
} sync_out_t;

static void
s_on_result(void *ctx, const char *json, bool failed)
{
    sync_out_t *out = ctx;
    out->failed = failed;
    progress_t *p = out->progress;
    if (p->live && p->drawn) {
        for (size_t i = 0; i < p->nrows; i++)
            if (p->rows[i].state != ROW_DONE && (failed || p->rows[i].state != ROW_WAITING))
                p->rows[i].state = failed ? ROW_FAILED : ROW_DONE;
        s_draw(p, true);
    }
    printf("%s\n", json);
    fflush(stdout);
}

static void
s_on_success(void *ctx, const char *json)
{
    s_on_result(ctx, json, false);
}

static void
s_on_failure(void *ctx, const char *json)
{
    s_on_result(ctx, json, true);
}

static void
s_progress_cb(void *ctx, const char *json)
{
    sync_out_t *out = ctx;
    s_on_progress(out->progress, json);
}

static es_client_t *
s_connect(env_t *env, int *exit_code)
{
    es_client_t *client;
    if (env->curve_key_file) {
        char server[ES_CURVE_Z85_LEN + 1], public[ES_CURVE_Z85_LEN + 1],
            secret[ES_CURVE_Z85_LEN + 1];
        es_err_t err;
        if (es_curve_load_public(env->curve_server_file, server, &err) ||
            es_curve_load_secret(env->curve_key_file, public, secret, &err)) {
            fprintf(stderr, "edgesync: CURVE: %s\n", err.what);
            *exit_code = ES_CLI_USAGE;
            return NULL;
        }
        client = es_client_new_curve(env->cmd_endpoint, env->timeout_ms, server, public, secret);
        explicit_bzero(secret, sizeof secret);
    } else
        client = es_client_new(env->cmd_endpoint, env->timeout_ms);
    if (!client) {
        *exit_code = s_exit_for_error();
        return NULL;
    }
    es_client_set_interrupt(client, &s_interrupted);
    return client;
}

static int
s_cmd_sync(env_t *env, int argc, char **argv)
{
    args_t a = {.cmd = "sync"};
    opt_t opts[] = {{"--options", true, NULL}, {"--json", false, NULL}};
    static const char *const names[] = {"SERVICE", "OBJECT"};
    int rc = s_parse_args(&a, argc, argv, opts, 2, 2, names, 0);
    if (rc || a.help)
        return rc ? rc : s_print_help("sync");
    char *options = NULL;
    if (opts[0].value && (rc = s_load_options(opts[0].value, &options)))
        return rc;
    es_client_t *client = s_connect(env, &rc);
    if (!client) {
        free(options);
        return rc;
    }
    progress_t *progress = es_calloc(1, sizeof *progress);
    progress->live = !opts[1].value && isatty(STDERR_FILENO);
    sync_out_t out = {progress, false};
    int r;
    if (a.npos == 0)
        r = es_app_start_sync(client, options, s_on_success, s_on_failure, s_progress_cb, &out);
    else if (a.npos == 1)
        r = es_objsvc_start_sync(client, a.pos[0], options, s_on_success, s_on_failure,
                                 s_progress_cb, &out);
    else
        r = es_obj_start_sync(client, a.pos[0], a.pos[1], options, s_on_success, s_on_failure,
                              s_progress_cb, &out);
    if (r == 0)
        rc = ES_CLI_OK;
    else if (r == 1)
        rc = ES_CLI_FAILED;
    else {
        rc = s_exit_for_error();
        if (rc == ES_CLI_INTERRUPTED && progress->session[0])
            fprintf(stderr,
                    "edgesync: session %s keeps running in the daemon "
                    "('edgesync cancel %s' stops it)\n",
                    progress->session, progress->session);
    }
    free(progress);
    free(options);
    es_client_destroy(&client);
    return rc;
}

//  SETUP, STATUS, STATS, CANCEL: at most one name argument, body to stdout.
static int
s_cmd_simple(env_t *env, const char *cmd, int argc, char **argv)
{
    args_t a = {.cmd = cmd};
    bool cancel = strcmp(cmd, "cancel") == 0;
    const char *name = strcmp(cmd, "setup") == 0   ? "SERVICE"
                       : strcmp(cmd, "stats") == 0 ? "ENTITY"
                                                   : "SESSION";
    const char *const names[] = {name};
    int rc = s_parse_args(&a, argc, argv, NULL, 0, 1, names, cancel ? 1 : 0);
    if (rc || a.help)
        return rc ? rc : s_print_help(cmd);
    es_client_t *client = s_connect(env, &rc);
    if (!client)
        return rc;
    const char *arg = a.npos ? a.pos[0] : NULL;
    char *body = strcmp(cmd, "setup") == 0    ? es_client_setup(client, arg)
                 : strcmp(cmd, "status") == 0 ? es_client_status(client, arg)
                 : strcmp(cmd, "stats") == 0  ? es_client_stats(client, arg)
                                              : es_client_cancel(client, arg);
    rc = s_print_reply(client, body);
    es_client_destroy(&client);
    return rc;
}

static uint64_t
s_json_u64(yajl_val run, const char *key)
{
    const char *path[] = {key, NULL};
    yajl_val v = yajl_tree_get(run, path, yajl_t_number);
    return v && YAJL_IS_INTEGER(v) && YAJL_GET_INTEGER(v) > 0 ? (uint64_t)YAJL_GET_INTEGER(v) : 0;
}

static const char *
s_json_str(yajl_val run, const char *key)
{
    const char *path[] = {key, NULL};
    yajl_val v = yajl_tree_get(run, path, yajl_t_string);
    return v ? YAJL_GET_STRING(v) : "";
}

//  history: one line per run, or the JSON array with --json.
static int
s_cmd_history(env_t *env, int argc, char **argv)
{
    args_t a = {.cmd = "history"};
    opt_t opts[] = {{"--limit", true, NULL}, {"--json", false, NULL}};
    static const char *const names[] = {"ENTITY"};
    int rc = s_parse_args(&a, argc, argv, opts, 2, 1, names, 0);
    if (rc || a.help)
        return rc ? rc : s_print_help("history");
    uint32_t limit = 20;
    if (opts[0].value) {
        char *end;
        errno = 0;
        unsigned long long n = strtoull(opts[0].value, &end, 10);
        if (!*opts[0].value || *end || errno || opts[0].value[0] == '-' || n > UINT32_MAX)
            return s_usage_error("history", "--limit: expected a number 0..%u, got '%s'",
                                 UINT32_MAX, opts[0].value);
        limit = (uint32_t)n;
    }
    es_client_t *client = s_connect(env, &rc);
    if (!client)
        return rc;
    char *body = es_client_history(client, a.npos ? a.pos[0] : NULL, limit);
    if (!body || opts[1].value) {
        rc = s_print_reply(client, body);
        es_client_destroy(&client);
        return rc;
    }
    es_client_destroy(&client);
    yajl_val runs = yajl_tree_parse(body, NULL, 0);
    if (!runs || !YAJL_IS_ARRAY(runs)) {
        fprintf(stderr, "edgesync: history: the daemon's answer is not a JSON array\n");
        yajl_tree_free(runs);
        free(body);
        return ES_CLI_FAILED;
    }
    printf("%-6s %-19s %-24s %-8s %-16s %10s %10s %12s %9s\n", "ID", "START", "ENTITY", "LEVEL",
           "RESULT", "UPLOADED", "DOWNLOADED", "BYTES", "SECONDS");
    for (size_t i = 0; i < runs->u.array.len; i++) {
        yajl_val r = runs->u.array.values[i];
        time_t start = (time_t)(s_json_u64(r, "start") / 1000);
        struct tm tm;
        char when[32] = "?";
        if (localtime_r(&start, &tm))
            strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", &tm);
        char result[32];
        uint64_t code = s_json_u64(r, "code");
        if (code)
            snprintf(result, sizeof result, "%s %" PRIu64, s_json_str(r, "result"), code);
        else
            snprintf(result, sizeof result, "%s", s_json_str(r, "result"));
        printf("%-6" PRIu64 " %-19s %-24s %-8s %-16s %10" PRIu64 " %10" PRIu64 " %12" PRIu64
               " %9.3f\n",
               s_json_u64(r, "id"), when, s_json_str(r, "entity"), s_json_str(r, "level"), result,
               s_json_u64(r, "uploaded"), s_json_u64(r, "downloaded"),
               s_json_u64(r, "bytesUploaded") + s_json_u64(r, "bytesDownloaded"),
               (double)s_json_u64(r, "durationMs") / 1000.0);
    }
    yajl_tree_free(runs);
    free(body);
    return ES_CLI_OK;
}

static int
s_cmd_get(env_t *env, int argc, char **argv)
{
    args_t a = {.cmd = "get"};
    opt_t opts[] = {{"--filter", true, NULL}, {"--limit", true, NULL}};
    static const char *const names[] = {"SERVICE", "OBJECT", "PK"};
    int rc = s_parse_args(&a, argc, argv, opts, 2, 3, names, 2);
    if (rc || a.help)
        return rc ? rc : s_print_help("get");
    uint32_t limit = 0;
    if (opts[1].value) {
        char *end;
        errno = 0;
        unsigned long long n = strtoull(opts[1].value, &end, 10);
        if (!*opts[1].value || *end || errno || opts[1].value[0] == '-' || n > UINT32_MAX)
            return s_usage_error("get", "--limit: expected a number 0..%u, got '%s'", UINT32_MAX,
                                 opts[1].value);
        limit = (uint32_t)n;
    }
    if (opts[0].value && !*opts[0].value)
        return s_usage_error("get", "--filter: must not be empty");
    char *pk = NULL;
    if (a.npos == 3 && (rc = s_pk_json("get", a.pos[2], &pk)))
        return rc;
    es_client_t *client = s_connect(env, &rc);
    if (client) {
        char *body = es_client_get(client, a.pos[0], a.pos[1], pk, opts[0].value, limit);
        rc = s_print_reply(client, body);
        es_client_destroy(&client);
    }
    free(pk);
    return rc;
}

//  create, update, partial-update, delete: SERVICE OBJECT [PK] [RECORD] [--options].
static int
s_cmd_change(env_t *env, const char *cmd, int argc, char **argv)
{
    bool has_pk = strcmp(cmd, "create") != 0, has_record = strcmp(cmd, "delete") != 0;
    args_t a = {.cmd = cmd};
    opt_t opts[] = {{"--options", true, NULL}};
    const char *const names[] = {"SERVICE", "OBJECT", has_pk ? "PK" : "RECORD", "RECORD"};
    size_t npos = 2 + (has_pk ? 1 : 0) + (has_record ? 1 : 0);
    int rc = s_parse_args(&a, argc, argv, opts, 1, npos, names, npos);
    if (rc || a.help)
        return rc ? rc : s_print_help(cmd);
    char *pk = NULL, *record = NULL, *options = NULL;
    if (has_pk && (rc = s_pk_json(cmd, a.pos[2], &pk)))
        goto done;
    if (has_record &&
        (rc = s_load_json(cmd, "RECORD", "{\"name\":\"x\"}", a.pos[npos - 1], &record)))
        goto done;
    if (opts[0].value &&
        (rc = s_load_json(cmd, "--options", "{\"markForUpload\":false}", opts[0].value, &options)))
        goto done;
    es_client_t *client = s_connect(env, &rc);
    if (client) {
        const char *op = strcmp(cmd, "partial-update") == 0 ? "partialupdate" : cmd;
        char *body = es_client_local(client, op, a.pos[0], a.pos[1], pk, record, options);
        rc = s_print_reply(client, body);
        es_client_destroy(&client);
    }
done:
    free(pk);
    free(record);
    free(options);
    return rc;
}

//  pending, rollback, clear, mark-for-upload: a scope of service, object and (some) a key.
static int
s_cmd_scope(env_t *env, const char *cmd, int argc, char **argv)
{
    bool rollback = strcmp(cmd, "rollback") == 0, clear = strcmp(cmd, "clear") == 0;
    args_t a = {.cmd = cmd};
    static const char *const names[] = {"SERVICE", "OBJECT", "PK"};
    size_t max = rollback || clear ? 3 : 2;
    int rc = s_parse_args(&a, argc, argv, NULL, 0, max, names, rollback ? 0 : 1);
    if (rc || a.help)
        return rc ? rc : s_print_help(cmd);
    char *pk = NULL;
    if (a.npos == 3 && (rc = s_pk_json(cmd, a.pos[2], &pk)))
        return rc;
    es_client_t *client = s_connect(env, &rc);
    if (client) {
        const char *service = a.npos > 0 ? a.pos[0] : NULL, *object = a.npos > 1 ? a.pos[1] : NULL;
        char *body = rollback ? es_client_rollback(client, service, object, pk)
                     : clear  ? es_client_clear(client, service, object, pk)
                     : strcmp(cmd, "pending") == 0
                         ? es_client_pending(client, service, object)
                         : es_client_mark_for_upload(client, service, object);
        rc = s_print_reply(client, body);
        es_client_destroy(&client);
    }
    free(pk);
    return rc;
}

typedef struct {
    const char *session; //  subscribed session, or NULL
    int status;          //  the session result's "status" (0 success), when seen
} events_out_t;

static int
s_on_event(void *ctx, const char *topic, const char *json)
{
    events_out_t *out = ctx;
    printf("%s\n", json);
    fflush(stdout);
    if (out->session && strncmp(topic, "result.", 7) == 0) {
        yajl_val root = yajl_tree_parse(json, NULL, 0);
        const char *path[] = {"status", NULL};
        yajl_val st = root ? yajl_tree_get(root, path, yajl_t_number) : NULL;
        out->status = st && YAJL_IS_INTEGER(st) && YAJL_GET_INTEGER(st) == 0 ? 0 : 1;
        yajl_tree_free(root);
    }
    return 0;
}

static int
s_cmd_events(env_t *env, int argc, char **argv)
{
    args_t a = {.cmd = "events"};
    opt_t opts[] = {{"--from", true, NULL}};
    static const char *const names[] = {"SESSION"};
    int rc = s_parse_args(&a, argc, argv, opts, 1, 1, names, 0);
    if (rc || a.help)
        return rc ? rc : s_print_help("events");
    char *from = NULL;
    if (opts[0].value)
        from = es_strdup(opts[0].value);
    else if (env->event_endpoint)
        from = es_strdup(env->event_endpoint);
    else if (!(from = s_derive_event_endpoint(env->cmd_endpoint)))
        return s_usage_error("events",
                             "cannot tell the event endpoint from '%s': give --from or set "
                             "EDGESYNC_EVENT_ENDPOINT",
                             env->cmd_endpoint);
    es_client_t *client = s_connect(env, &rc);
    if (client) {
        events_out_t out = {a.npos ? a.pos[0] : NULL, 0};
        if (es_client_subscribe(client, from, out.session, s_on_event, &out) == 0)
            rc = out.status ? ES_CLI_FAILED : ES_CLI_OK;
        else if (es_client_last_code() == ES_CLIENT_EINTR && !out.session)
            rc = ES_CLI_OK; //  Ctrl-C is how an open-ended listen ends
        else
            rc = s_exit_for_error();
        es_client_destroy(&client);
    }
    free(from);
    return rc;
}

static int
s_cmd_keygen(int argc, char **argv)
{
    args_t a = {.cmd = "keygen"};
    opt_t opts[] = {{"--out", true, NULL}};
    int rc = s_parse_args(&a, argc, argv, opts, 1, 0, NULL, 0);
    if (rc || a.help)
        return rc ? rc : s_print_help("keygen");
    const char *prefix = opts[0].value ? opts[0].value : "edgesync";
    if (!*prefix)
        return s_usage_error("keygen", "--out: must not be empty");
    char public[ES_CURVE_Z85_LEN + 1];
    es_err_t err;
    if (es_curve_keygen(prefix, public, &err)) {
        fprintf(stderr, "edgesync: keygen: %s\n", err.what);
        return err.code == ES_EINVAL ? ES_CLI_USAGE : ES_CLI_FAILED;
    }
    printf("%s\n", public);
    fprintf(stderr, "edgesync: wrote %s.key (secret, mode 0600) and %s.pub\n", prefix, prefix);
    return ES_CLI_OK;
}

//  --- main -----------------------------------------------------------------------------------

int
es_cli_run(int argc, char *argv[])
{
    env_t env = {.timeout_ms = 5000};
    int i = 1;
    for (; i < argc && argv[i][0] == '-'; i++) {
        const char *arg = argv[i];
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            s_usage(stdout);
            return ES_CLI_OK;
        }
        if (strcmp(arg, "--version") == 0 || strcmp(arg, "-V") == 0) {
            printf("edgesync %s\n", ES_VERSION);
            return ES_CLI_OK;
        }
        const char **slot = strcmp(arg, "-c") == 0                   ? &env.config_path
                            : strcmp(arg, "-e") == 0                 ? &env.endpoint
                            : strcmp(arg, "--curve-server-key") == 0 ? &env.curve_server_key
                            : strcmp(arg, "--curve-key") == 0        ? &env.curve_key
                                                                     : NULL;
        if (!slot && strcmp(arg, "-t") != 0)
            return s_usage_error(NULL, "unknown option '%s'", arg);
        if (i + 1 >= argc || !*argv[i + 1])
            return s_usage_error(NULL, "option '%s' needs a value", arg);
        const char *value = argv[++i];
        if (slot) {
            *slot = value;
            continue;
        }
        char *end;
        errno = 0;
        long t = strtol(value, &end, 10);
        if (*end || errno || t < 1 || t > 3600000)
            return s_usage_error(NULL, "-t: expected milliseconds 1..3600000, got '%s'", value);
        env.timeout_ms = (int)t;
    }
    if (env.config_path && env.endpoint)
        return s_usage_error(NULL, "-c and -e exclude each other");
    if (i == argc) {
        s_usage(stderr);
        return ES_CLI_USAGE;
    }
    const char *cmd = argv[i];
    if (!s_help_of(cmd))
        return s_usage_error(NULL, "unknown command '%s'", cmd);
    int sub_argc = argc - i - 1;
    char **sub_argv = argv + i + 1;

    //  Ctrl-C interrupts the blocking calls (no SA_RESTART) so the display and output end cleanly.
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = s_on_sigint;
    sigemptyset(&sa.sa_mask);
    (void)sigaction(SIGINT, &sa, NULL); //  cannot fail for SIGINT with a valid handler
    (void)sigaction(SIGTERM, &sa, NULL);

    //  --help needs no daemon and no config: answer it before resolving anything.
    for (int k = 0; k < sub_argc; k++) {
        if (strcmp(sub_argv[k], "--") == 0)
            break;
        if (strcmp(sub_argv[k], "--help") == 0 || strcmp(sub_argv[k], "-h") == 0)
            return s_print_help(cmd);
    }
    //  keygen needs no daemon.
    if (strcmp(cmd, "keygen") == 0)
        return s_cmd_keygen(sub_argc, sub_argv);
    int rc = s_resolve_endpoints(&env);
    if (rc == 0)
        rc = s_resolve_curve(&env);
    if (rc == 0) {
        if (strcmp(cmd, "sync") == 0)
            rc = s_cmd_sync(&env, sub_argc, sub_argv);
        else if (strcmp(cmd, "get") == 0)
            rc = s_cmd_get(&env, sub_argc, sub_argv);
        else if (strcmp(cmd, "history") == 0)
            rc = s_cmd_history(&env, sub_argc, sub_argv);
        else if (strcmp(cmd, "events") == 0)
            rc = s_cmd_events(&env, sub_argc, sub_argv);
        else if (strcmp(cmd, "create") == 0 || strcmp(cmd, "update") == 0 ||
                 strcmp(cmd, "partial-update") == 0 || strcmp(cmd, "delete") == 0)
            rc = s_cmd_change(&env, cmd, sub_argc, sub_argv);
        else if (strcmp(cmd, "pending") == 0 || strcmp(cmd, "rollback") == 0 ||
                 strcmp(cmd, "clear") == 0 || strcmp(cmd, "mark-for-upload") == 0)
            rc = s_cmd_scope(&env, cmd, sub_argc, sub_argv);
        else
            rc = s_cmd_simple(&env, cmd, sub_argc, sub_argv);
    }
    free(env.cmd_endpoint);
    free(env.event_endpoint);
    free(env.curve_server_file);
    free(env.curve_key_file);
    return rc;
}
