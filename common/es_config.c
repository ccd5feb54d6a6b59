//  es_config - the configuration table and the "key = value" file reader.
#include "common/es_config.h"
#include "common/es_log.h"
#include "common/es_mem.h"
#include <arpa/inet.h>
#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

//  C_FILE: a path that must name a readable regular file (or be empty), kept absolute.
//  C_SECRET: a path kept absolute but not opened at load: the CLI loads the same file and must
//  not need (or read) the daemon's secrets; es_config_check_secrets reads it in edgesyncd.
typedef enum { C_STR, C_INT, C_LEVEL, C_BOOL, C_FILE, C_SECRET } ctype_t;

typedef struct {
    const char *name; //  key in the file
    ctype_t type;     //  value type
    int64_t min, max; //  bounds of C_INT
    const char *dflt; //  default as text
    const char *help; //  one line for --help-config and the sample file
} option_t;

static const option_t s_options[] = {
    {"data_dir", C_STR, 0, 0, "./edgesync-data", "directory of the LMDB store and ipc sockets"},
    {"server_url", C_STR, 0, 0, "http://127.0.0.1:8088",
     "backend base URL; object services are listed at <server_url>/appconfig"},
    {"auth_token", C_STR, 0, 0, "", "token sent in <header_prefix>Authorization (never logged)"},
    {"header_prefix", C_STR, 0, 0, "X-Voltmx-", "prefix of Foundry headers (X-Voltmx- or X-Kony-)"},
    {"services", C_STR, 0, 0, "", "comma-separated object services to set up; empty = all"},
    {"cmd_endpoint", C_STR, 0, 0, "", "command socket; empty = ipc://<data_dir>/cmd.sock"},
    {"event_endpoint", C_STR, 0, 0, "", "event PUB socket; empty = ipc://<data_dir>/events.sock"},
    {"curve.secret_key_file", C_STR, 0, 0, "",
     "daemon's CURVE secret key (edgesync keygen; mode 0600): required by tcp:// endpoints"},
    {"curve.allow_keys_file", C_STR, 0, 0, "",
     "client CURVE public keys allowed on tcp:// endpoints, one per line; reread on SIGHUP"},
    {"curve.server_public_key_file", C_STR, 0, 0, "",
     "edgesync CLI: the daemon's CURVE public key, to reach a tcp:// endpoint"},
    {"curve.client_key_file", C_STR, 0, 0, "",
     "edgesync CLI: this client's CURVE secret key (its public key in the allow-list)"},
    {"download.workers", C_INT, 1, 16, "2",
     "download actor processes (objects downloaded in parallel)"},
    {"reconcile.page_size", C_INT, 1, 100000, "10000",
     "primary keys per reconciliation listing request"},
    {"store.map_size_mb", C_INT, 1, 1048576, "64", "initial LMDB map size in MiB"},
    {"store.map_max_mb", C_INT, 1, 1048576, "16384", "LMDB map never grows past this (MiB)"},
    {"http.connect_timeout_ms", C_INT, 100, 600000, "10000", "connect timeout per request"},
    {"http.timeout_ms", C_INT, 100, 3600000, "60000", "total timeout per request"},
    {"http.max_response_mb", C_INT, 1, 65536, "512", "responses larger than this are refused"},
    {"retry.max_attempts", C_INT, 0, 100, "5", "retries of a transient failure per request"},
    {"retry.base_ms", C_INT, 1, 600000, "200",
     "first retry delay; doubles each attempt, with jitter"},
    {"retry.max_ms", C_INT, 1, 3600000, "10000", "longest retry delay (Retry-After may exceed it)"},
    {"heartbeat.interval_ms", C_INT, 50, 60000, "1000", "actor heartbeat period"},
    {"heartbeat.timeout_ms", C_INT, 200, 600000, "5000", "an actor silent this long is restarted"},
    {"stop.grace_ms", C_INT, 0, 600000, "3000", "time an actor gets to stop before SIGKILL"},
    {"log.level", C_LEVEL, 0, 0, "info", "error | warn | info | debug"},
    {"metrics.listen", C_STR, 0, 0, "",
     "Prometheus /metrics address host:port (served by es-stats); empty = off"},
    {"metrics.allow_remote", C_BOOL, 0, 0, "false",
     "allow metrics.listen on an address other than loopback"},
    {"history.max_runs", C_INT, 1, 1000000, "1000",
     "sync runs kept in the history ledger; the oldest are dropped"},
    {"tls.verify", C_BOOL, 0, 0, "true",
     "check the backend's certificate and host name (false: insecure, logged as such)"},
    {"tls.ca_file", C_FILE, 0, 0, "", "PEM CA bundle for the backend; empty = system CAs"},
    {"tls.cert_file", C_FILE, 0, 0, "", "PEM client certificate (with tls.key_file); empty = none"},
    {"tls.key_file", C_FILE, 0, 0, "",
     "PEM private key of tls.cert_file; if encrypted, set tls.key_password_file"},
    {"tls.key_password_file", C_SECRET, 0, 0, "",
     "file whose first line is the passphrase of tls.key_file (mode 0600); empty = none"},
};
#define NOPTIONS (sizeof s_options / sizeof s_options[0])

struct es_config {
    char *values[NOPTIONS]; //  current value of each option, as text
    int64_t ints[NOPTIONS]; //  parsed value of C_INT options
};

static int
s_find(const char *key)
{
    for (size_t i = 0; i < NOPTIONS; i++)
        if (strcmp(s_options[i].name, key) == 0)
            return (int)i;
    return -1;
}

static int
s_assign(es_config_t *self, int idx, const char *value, es_err_t *err)
{
    const option_t *o = &s_options[idx];
    if (o->type == C_INT) {
        errno = 0;
        char *end;
        long long v = strtoll(value, &end, 10);
        if (errno || end == value || *end || !*value)
            return es_err_set(err, ES_ECONFIG, "%s: expected an integer, got '%s'", o->name, value);
        if (v < o->min || v > o->max)
            return es_err_set(err, ES_ECONFIG, "%s: must be %lld..%lld, got %lld", o->name,
                              (long long)o->min, (long long)o->max, v);
        self->ints[idx] = v;
    } else if (o->type == C_LEVEL) {
        if (es_log_level_parse(value) < 0)
            return es_err_set(err, ES_ECONFIG, "%s: must be error, warn, info or debug, got '%s'",
                              o->name, value);
    } else if (o->type == C_BOOL) {
        if (strcmp(value, "true") && strcmp(value, "false"))
            return es_err_set(err, ES_ECONFIG, "%s: must be true or false, got '%s'", o->name,
                              value);
        self->ints[idx] = strcmp(value, "true") == 0;
    } else if (o->type == C_FILE && *value) {
        //  Checked now, so a typo stops the daemon at start rather than failing every sync.
        //  Absolute, so every process (and libcurl) finds the same file whatever its cwd.
        int fd = open(value, O_RDONLY | O_CLOEXEC | O_NONBLOCK); //  a FIFO must not hang us
        struct stat st;
        if (fd == -1 || fstat(fd, &st) == -1) {
            int e = errno;
            if (fd != -1)
                close(fd);
            return es_err_set(err, ES_ECONFIG, "%s: cannot read '%s': %s", o->name, value,
                              strerror(e));
        }
        close(fd);
        if (!S_ISREG(st.st_mode))
            return es_err_set(err, ES_ECONFIG, "%s: '%s' is not a regular file", o->name, value);
        char *abs = realpath(value, NULL);
        if (!abs)
            return es_err_set(err, ES_ECONFIG, "%s: cannot resolve '%s': %s", o->name, value,
                              strerror(errno));
        free(self->values[idx]);
        self->values[idx] = abs;
        return 0;
    }
    if (o->type == C_SECRET && *value && value[0] != '/') {
        char cwd[PATH_MAX];
        if (!getcwd(cwd, sizeof cwd))
            return es_err_set(err, ES_ECONFIG, "%s: cannot make '%s' absolute: %s", o->name, value,
                              strerror(errno));
        free(self->values[idx]);
        self->values[idx] = es_sprintf("%s/%s", cwd, value);
        return 0;
    }
    free(self->values[idx]);
    self->values[idx] = es_strdup(value);
    return 0;
}

int
es_config_parse_listen(const char *listen, bool allow_remote, struct sockaddr_storage *sa,
                       socklen_t *salen, es_err_t *err)
{
    memset(sa, 0, sizeof *sa);
    char host[64];
    const char *colon = strrchr(listen, ':');
    const char *h = listen, *hend = colon;
    if (!colon)
        return es_err_set(err, ES_ECONFIG, "metrics.listen: expected host:port, got '%s'", listen);
    if (*h == '[') {
        if (hend == h || hend[-1] != ']')
            return es_err_set(err, ES_ECONFIG, "metrics.listen: expected [IPv6]:port, got '%s'",
                              listen);
        h++;
        hend--;
    }
    if ((size_t)(hend - h) >= sizeof host || hend == h)
        return es_err_set(err, ES_ECONFIG, "metrics.listen: bad host in '%s'", listen);
    memcpy(host, h, (size_t)(hend - h));
    host[hend - h] = '\0';
    char *end;
    errno = 0;
    long port = strtol(colon + 1, &end, 10);
    if (errno || end == colon + 1 || *end || port < 0 || port > 65535)
        return es_err_set(err, ES_ECONFIG, "metrics.listen: port must be 0..65535, got '%s'",
                          colon + 1);
    if (strcmp(host, "localhost") == 0)
        strcpy(host, "127.0.0.1");
    struct sockaddr_in *v4 = (struct sockaddr_in *)sa;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)sa;
    bool loopback;
    if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons((uint16_t)port);
        *salen = sizeof *v4;
        loopback = (ntohl(v4->sin_addr.s_addr) >> 24) == 127;
    } else if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons((uint16_t)port);
        *salen = sizeof *v6;
        loopback = IN6_IS_ADDR_LOOPBACK(&v6->sin6_addr);
    } else {
        return es_err_set(err, ES_ECONFIG, "metrics.listen: '%s' is not an IP address or localhost",
                          host);
    }
    if (!loopback && !allow_remote)
        return es_err_set(err, ES_ECONFIG,
                          "metrics.listen: %s is not a loopback address (set "
                          "metrics.allow_remote = true to expose metrics beyond this host)",
                          host);
    return 0;
}

int
es_config_read_secret(const char *key, const char *path, char *out, es_err_t *err)
{
    //  One byte more than a line may hold, and room for its "\r\n": a longer first line is
    //  seen as such without reading the rest of the file.
    char buf[ES_CONFIG_SECRET_MAX + 3];
    size_t len = 0;
    int rc = 0;
    out[0] = '\0';
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK); //  a FIFO must not hang us
    struct stat st;
    if (fd == -1 || fstat(fd, &st) == -1) {
        int e = errno;
        if (fd != -1)
            close(fd);
        return es_err_set(err, ES_ECONFIG, "%s: cannot read '%s': %s", key, path, strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        rc = es_err_set(err, ES_ECONFIG, "%s: '%s' is not a regular file", key, path);
        goto done;
    }
    //  The same rule as curve.secret_key_file: a secret others may read is no secret.
    if (st.st_mode & 077) {
        rc = es_err_set(err, ES_ECONFIG,
                        "%s: '%s' has mode %04o, readable by group or others: 'chmod 600 %s'", key,
                        path, (unsigned)(st.st_mode & 07777), path);
        goto done;
    }
    while (len < sizeof buf) {
        ssize_t n = read(fd, buf + len, sizeof buf - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc =
                es_err_set(err, ES_ECONFIG, "%s: cannot read '%s': %s", key, path, strerror(errno));
            goto done;
        }
        if (n == 0)
            break;
        len += (size_t)n;
        if (memchr(buf, '\n', len))
            break;
    }
    char *nl = memchr(buf, '\n', len);
    size_t line = nl ? (size_t)(nl - buf) : len;
    if (line && buf[line - 1] == '\r')
        line--;
    if (line > ES_CONFIG_SECRET_MAX)
        rc = es_err_set(err, ES_ECONFIG, "%s: the first line of '%s' is longer than %d bytes", key,
                        path, ES_CONFIG_SECRET_MAX);
    else if (line == 0)
        rc = es_err_set(err, ES_ECONFIG, "%s: '%s' is empty: its first line must hold the secret",
                        key, path);
    else if (memchr(buf, '\0', line))
        rc = es_err_set(err, ES_ECONFIG, "%s: the first line of '%s' holds a NUL byte", key, path);
    else {
        memcpy(out, buf, line);
        out[line] = '\0';
    }
done:
    explicit_bzero(buf, sizeof buf);
    close(fd);
    return rc;
}

//  Does the PEM file at path hold an encrypted private key (PKCS#8 "ENCRYPTED PRIVATE KEY" or
//  the traditional "Proc-Type: 4,ENCRYPTED" header)? Unreadable counts as not: libcurl then
//  names the file at the first request.
static bool
s_key_encrypted(const char *path)
{
    static const char *const marks[] = {"-----BEGIN ENCRYPTED PRIVATE KEY-----",
                                        "Proc-Type: 4,ENCRYPTED"};
    char buf[65536]; //  a PEM key is a few KiB; the markers come first
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd == -1)
        return false;
    size_t len = 0;
    while (len < sizeof buf - 1) {
        ssize_t n = read(fd, buf + len, sizeof buf - 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    close(fd);
    buf[len] = '\0';
    bool found = false;
    for (size_t i = 0; i < sizeof marks / sizeof marks[0] && !found; i++)
        found = memmem(buf, len, marks[i], strlen(marks[i])) != NULL;
    explicit_bzero(buf, len); //  it held the key
    return found;
}

//  Options that only make sense together, checked once a whole file is read.
static int
s_check(const es_config_t *self, const char *path, es_err_t *err)
{
    bool cert = *es_config_str(self, "tls.cert_file"), key = *es_config_str(self, "tls.key_file");
    if (cert != key)
        return es_err_set(
            err, ES_ECONFIG, "%s: tls.cert_file and tls.key_file go together: %s is set, %s is not",
            path, cert ? "tls.cert_file" : "tls.key_file", cert ? "tls.key_file" : "tls.cert_file");
    if (*es_config_str(self, "tls.key_password_file") && !key)
        return es_err_set(err, ES_ECONFIG,
                          "%s: tls.key_password_file is set but tls.key_file is not: the "
                          "passphrase is for the client key",
                          path);
    //  Checked here, not only when es-stats binds it: a bad value would make es-stats exit at
    //  every start. After the whole file, since metrics.allow_remote may come later.
    const char *listen = es_config_str(self, "metrics.listen");
    struct sockaddr_storage sa;
    socklen_t salen;
    if (*listen && es_config_parse_listen(listen, es_config_bool(self, "metrics.allow_remote"), &sa,
                                          &salen, err))
        return es_err_prefix(err, "%s", path);
    return 0;
}

int
es_config_check_secrets(const es_config_t *self, const char *path, es_err_t *err)
{
    //  The passphrase is read so that a bad file stops the daemon at start instead of failing
    //  every sync; the copy is wiped at once (es_http keeps its own).
    const char *pass_file = es_config_str(self, "tls.key_password_file");
    const char *key = es_config_str(self, "tls.key_file");
    if (*pass_file) {
        char pass[ES_CONFIG_SECRET_MAX + 1];
        int rc = es_config_read_secret("tls.key_password_file", pass_file, pass, err);
        explicit_bzero(pass, sizeof pass);
        if (rc)
            return es_err_prefix(err, "%s", path);
    } else if (*key && s_key_encrypted(key)) {
        return es_err_set(err, ES_ECONFIG,
                          "%s: tls.key_file '%s' is encrypted: set tls.key_password_file to a "
                          "file holding its passphrase",
                          path, key);
    }
    return 0;
}

es_config_t *
es_config_new(void)
{
    es_config_t *self = es_calloc(1, sizeof *self);
    for (size_t i = 0; i < NOPTIONS; i++) {
        int rc = s_assign(self, (int)i, s_options[i].dflt, NULL);
        assert(rc == 0); //  defaults are ours
        (void)rc;
    }
    return self;
}

void
es_config_destroy(es_config_t **self_p)
{
    if (!*self_p)
        return;
    es_config_t *self = *self_p;
    for (size_t i = 0; i < NOPTIONS; i++)
        free(self->values[i]);
    free(self);
    *self_p = NULL;
}

int
es_config_set(es_config_t *self, const char *key, const char *value, es_err_t *err)
{
    int idx = s_find(key);
    if (idx < 0)
        return es_err_set(err, ES_ECONFIG, "%s: unknown option", key);
    return s_assign(self, idx, value, err);
}

static char *
s_trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    size_t n = strlen(s);
    while (n && isspace((unsigned char)s[n - 1]))
        s[--n] = '\0';
    return s;
}

int
es_config_load(es_config_t *self, const char *path, es_err_t *err)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return es_err_set(err, ES_ECONFIG, "%s: %s", path, strerror(errno));
    char line[4096];
    int lineno = 0, rc = 0;
    while (fgets(line, sizeof line, f)) {
        lineno++;
        if (!strchr(line, '\n') && !feof(f)) {
            rc = es_err_set(err, ES_ECONFIG, "%s:%d: line longer than %zu bytes", path, lineno,
                            sizeof line - 2);
            break;
        }
        char *s = s_trim(line);
        char *eq = strchr(s, '='), *hash = strchr(s, '#');
        if (!eq || (hash && hash < eq)) {
            if (hash)
                *hash = '\0';
            s = s_trim(s);
            if (!*s)
                continue; //  blank or comment line
            rc = es_err_set(err, ES_ECONFIG, "%s:%d: expected 'key = value', got '%s'", path,
                            lineno, s);
            break;
        }
        *eq = '\0';
        char *key = s_trim(s), *value = eq + 1;
        while (isspace((unsigned char)*value))
            value++;
        //  A "quoted value" may hold leading or trailing spaces and '#', so the comment is cut
        //  only after the closing quote.
        if (*value == '"') {
            char *close = strchr(value + 1, '"');
            if (!close) {
                rc = es_err_set(err, ES_ECONFIG, "%s:%d: %s: missing closing '\"'", path, lineno,
                                key);
                break;
            }
            char *tail = close + 1;
            while (isspace((unsigned char)*tail))
                tail++;
            if (*tail && *tail != '#') {
                rc =
                    es_err_set(err, ES_ECONFIG, "%s:%d: %s: unexpected text after the quoted value",
                               path, lineno, key);
                break;
            }
            *close = '\0';
            value++;
        } else {
            hash = strchr(value, '#');
            if (hash)
                *hash = '\0';
            value = s_trim(value);
        }
        if (es_config_set(self, key, value, err)) {
            rc = es_err_prefix(err, "%s:%d", path, lineno);
            break;
        }
    }
    if (rc == 0 && ferror(f))
        rc = es_err_set(err, ES_ECONFIG, "%s: read error", path);
    fclose(f);
    if (rc == 0)
        rc = s_check(self, path, err);
    return rc;
}

const char *
es_config_str(const es_config_t *self, const char *key)
{
    int idx = s_find(key);
    assert(idx >= 0);
    return self->values[idx];
}

int64_t
es_config_int(const es_config_t *self, const char *key)
{
    int idx = s_find(key);
    assert(idx >= 0 && s_options[idx].type == C_INT);
    return self->ints[idx];
}

bool
es_config_bool(const es_config_t *self, const char *key)
{
    int idx = s_find(key);
    assert(idx >= 0 && s_options[idx].type == C_BOOL);
    return self->ints[idx] != 0;
}

static char *
s_endpoint(const es_config_t *self, const char *key, const char *sock)
{
    const char *ep = es_config_str(self, key);
    if (*ep)
        return es_strdup(ep);
    const char *dir = es_config_str(self, "data_dir");
    if (dir[0] == '/')
        return es_sprintf("ipc://%s/%s", dir, sock);
    char cwd[PATH_MAX];
    if (!getcwd(cwd, sizeof cwd))
        return es_sprintf("ipc://%s/%s", dir, sock);
    //  Drop "./" prefixes, so "./data" and "." give clean absolute paths (no "/./" inside).
    const char *rel = dir;
    while (strncmp(rel, "./", 2) == 0)
        rel += 2;
    if (strcmp(rel, ".") == 0 || !*rel)
        return es_sprintf("ipc://%s/%s", cwd, sock);
    return es_sprintf("ipc://%s/%s/%s", cwd, rel, sock);
}

char *
es_config_cmd_endpoint(const es_config_t *self)
{
    return s_endpoint(self, "cmd_endpoint", "cmd.sock");
}

char *
es_config_event_endpoint(const es_config_t *self)
{
    return s_endpoint(self, "event_endpoint", "events.sock");
}

void
es_config_help(FILE *out)
{
    for (size_t i = 0; i < NOPTIONS; i++) {
        const option_t *o = &s_options[i];
        fprintf(out, "# %s", o->help);
        if (o->type == C_INT)
            fprintf(out, " (%lld..%lld)", (long long)o->min, (long long)o->max);
        fprintf(out, "\n%s = %s\n\n", o->name, o->dflt);
    }
}
