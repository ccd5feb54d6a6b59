//  es_config - the configuration file: "key = value" lines, '#' comments. One table in
//  es_config.c names every option with its type, bounds, default and help.
#ifndef ES_CONFIG_H
#define ES_CONFIG_H
#include "common/es_err.h"
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>

typedef struct es_config es_config_t;

//  All options at their defaults (defaults run the bundled example).
es_config_t *es_config_new(void);
void es_config_destroy(es_config_t **self_p);
//  Load a file over the current values. -1 with err (ES_ECONFIG)
//  "edgesync.conf:12: download.workers: must be 1..16, got 0"; unknown keys are errors.
//  File options (tls.*_file) must name readable files and are stored as absolute paths;
//  tls.cert_file and tls.key_file must be both set or both empty once the file is read;
//  tls.key_password_file needs tls.key_file; it is made absolute but not read (see below).
int es_config_load(es_config_t *self, const char *path, es_err_t *err);
//  edgesyncd's check of what only it reads, after loading path: tls.key_password_file is read
//  (es_config_read_secret, wiped at once) and an encrypted tls.key_file needs it. -1 with err
//  (ES_ECONFIG) "path: ..." naming the option. The CLI loads the same file without this.
int es_config_check_secrets(const es_config_t *self, const char *path, es_err_t *err);
//  Set one option from text, checked like a file line. -1 with err naming the key.
int es_config_set(es_config_t *self, const char *key, const char *value, es_err_t *err);
//  Values (borrowed / by value). Asserts the key exists and has that type.
const char *es_config_str(const es_config_t *self, const char *key);
int64_t es_config_int(const es_config_t *self, const char *key);
bool es_config_bool(const es_config_t *self, const char *key);
//  Endpoints: cmd_endpoint / event_endpoint if set, else "ipc://<data_dir>/cmd.sock" /
//  "ipc://<data_dir>/events.sock" (data_dir made absolute). Caller frees.
char *es_config_cmd_endpoint(const es_config_t *self);
char *es_config_event_endpoint(const es_config_t *self);
//  Parse a metrics.listen value "host:port" (IPv4, "[IPv6]", or "localhost"; port 0..65535)
//  into sa. A host outside 127.0.0.0/8 and ::1 is refused unless allow_remote. -1 with err
//  (ES_ECONFIG) "metrics.listen: ..." naming the value. es_config_load checks the option with it.
int es_config_parse_listen(const char *listen, bool allow_remote, struct sockaddr_storage *sa,
                           socklen_t *salen, es_err_t *err);
//  Print every option: name, default, bounds, help (for --help-config and the default file).
void es_config_help(FILE *out);

//  Longest secret es_config_read_secret takes (bytes, without the newline).
#define ES_CONFIG_SECRET_MAX 1024
//  Read a secret (tls.key_password_file) from the first line of the file at path into out
//  (ES_CONFIG_SECRET_MAX + 1 bytes, NUL-terminated; a trailing "\n" or "\r\n" is cut). The file
//  must be a regular file that neither group nor others may read or write (like a CURVE secret
//  key file), and the line must be 1..ES_CONFIG_SECRET_MAX bytes without NUL. -1 with err
//  (ES_ECONFIG) "key: ..." naming the file, never quoting its content; out is then wiped.
int es_config_read_secret(const char *key, const char *path, char *out, es_err_t *err);

#endif
