//  test_es_config - the option table: defaults, es_config_set bounds and types, the file reader
//  (comments, quotes, every error naming "file:line"), endpoints and --help-config output.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "common/es_config.h"
#include "common/es_mem.h"
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

//  Every option with its default: a new option must be added here (the help test counts them).
static const struct {
    const char *name;
    const char *dflt;
    int is_int;
} s_defaults[] = {
    {"data_dir", "./edgesync-data", 0},
    {"server_url", "http://127.0.0.1:8088", 0},
    {"auth_token", "", 0},
    {"header_prefix", "X-Voltmx-", 0},
    {"services", "", 0},
    {"cmd_endpoint", "", 0},
    {"event_endpoint", "", 0},
    {"curve.secret_key_file", "", 0},
    {"curve.allow_keys_file", "", 0},
    {"curve.server_public_key_file", "", 0},
    {"curve.client_key_file", "", 0},
    {"download.workers", "2", 1},
    {"reconcile.page_size", "10000", 1},
    {"store.map_size_mb", "64", 1},
    {"store.map_max_mb", "16384", 1},
    {"http.connect_timeout_ms", "10000", 1},
    {"http.timeout_ms", "60000", 1},
    {"http.max_response_mb", "512", 1},
    {"retry.max_attempts", "5", 1},
    {"retry.base_ms", "200", 1},
    {"retry.max_ms", "10000", 1},
    {"heartbeat.interval_ms", "1000", 1},
    {"heartbeat.timeout_ms", "5000", 1},
    {"stop.grace_ms", "3000", 1},
    {"log.level", "info", 0},
    {"metrics.listen", "", 0},
    {"metrics.allow_remote", "false", 0},
    {"history.max_runs", "1000", 1},
    {"tls.verify", "true", 0},
    {"tls.ca_file", "", 0},
    {"tls.cert_file", "", 0},
    {"tls.key_file", "", 0},
    {"tls.key_password_file", "", 0},
};
#define NDEFAULTS (sizeof s_defaults / sizeof s_defaults[0])

//  A scratch directory per test for config files.
typedef struct {
    char dir[64];
    char path[128];
} fixture_t;

static int
s_setup(void **state)
{
    fixture_t *f = es_calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/test_es_config.XXXXXX");
    if (!mkdtemp(f->dir)) {
        free(f);
        return -1;
    }
    snprintf(f->path, sizeof f->path, "%s/edgesync.conf", f->dir);
    *state = f;
    return 0;
}

static int
s_teardown(void **state)
{
    fixture_t *f = *state;
    (void)unlink(f->path); //  may not exist
    int rc = rmdir(f->dir);
    free(f);
    return rc;
}

static void
s_write(const fixture_t *f, const char *text, size_t len)
{
    FILE *out = fopen(f->path, "w");
    assert_non_null(out);
    assert_int_equal(fwrite(text, 1, len, out), len);
    assert_int_equal(fclose(out), 0);
}

//  Write text as the config file, load it into a fresh config, return rc; cfg stays for checks.
static int
s_load(const fixture_t *f, const char *text, es_config_t **cfg, es_err_t *err)
{
    s_write(f, text, strlen(text));
    *cfg = es_config_new();
    es_err_clear(err);
    return es_config_load(*cfg, f->path, err);
}

static void
s_expect_load_error(const fixture_t *f, const char *text, const char *expected_tail)
{
    es_config_t *cfg;
    es_err_t err;
    assert_int_equal(s_load(f, text, &cfg, &err), -1);
    assert_int_equal(err.code, ES_ECONFIG);
    char *expected = es_sprintf("%s%s", f->path, expected_tail);
    assert_string_equal(err.what, expected);
    free(expected);
    es_config_destroy(&cfg);
}

//  Loads (which must succeed: the CLI loads the same file) but edgesyncd's secrets check fails.
static void
s_expect_secrets_error(const fixture_t *f, const char *text, const char *expected_tail)
{
    es_config_t *cfg;
    es_err_t err;
    assert_int_equal(s_load(f, text, &cfg, &err), 0);
    assert_int_equal(es_config_check_secrets(cfg, f->path, &err), -1);
    assert_int_equal(err.code, ES_ECONFIG);
    char *expected = es_sprintf("%s%s", f->path, expected_tail);
    assert_string_equal(err.what, expected);
    free(expected);
    es_config_destroy(&cfg);
}

//  ---------------------------------------------------------------------------------------------

static void
test_defaults(void **state)
{
    (void)state;
    es_config_t *cfg = es_config_new();
    assert_non_null(cfg);
    for (size_t i = 0; i < NDEFAULTS; i++) {
        assert_string_equal(es_config_str(cfg, s_defaults[i].name), s_defaults[i].dflt);
        if (s_defaults[i].is_int)
            assert_int_equal(es_config_int(cfg, s_defaults[i].name),
                             strtoll(s_defaults[i].dflt, NULL, 10));
    }
    es_config_destroy(&cfg);
    assert_null(cfg);
    es_config_destroy(&cfg); //  safe twice
}

static void
s_expect_set_error(es_config_t *cfg, const char *key, const char *value, const char *expected)
{
    es_err_t err;
    es_err_clear(&err);
    assert_int_equal(es_config_set(cfg, key, value, &err), -1);
    assert_int_equal(err.code, ES_ECONFIG);
    assert_string_equal(err.what, expected);
}

static void
test_set_bounds(void **state)
{
    (void)state;
    es_config_t *cfg = es_config_new();
    es_err_t err;
    s_expect_set_error(cfg, "download.workers", "0", "download.workers: must be 1..16, got 0");
    s_expect_set_error(cfg, "download.workers", "17", "download.workers: must be 1..16, got 17");
    s_expect_set_error(cfg, "download.workers", "-3", "download.workers: must be 1..16, got -3");
    s_expect_set_error(cfg, "retry.max_attempts", "-1",
                       "retry.max_attempts: must be 0..100, got -1");
    s_expect_set_error(cfg, "retry.max_attempts", "101",
                       "retry.max_attempts: must be 0..100, got 101");
    s_expect_set_error(cfg, "http.timeout_ms", "99",
                       "http.timeout_ms: must be 100..3600000, got 99");
    s_expect_set_error(cfg, "store.map_max_mb", "1048577",
                       "store.map_max_mb: must be 1..1048576, got 1048577");
    //  A refused value leaves the old one in place.
    assert_int_equal(es_config_int(cfg, "download.workers"), 2);
    assert_string_equal(es_config_str(cfg, "download.workers"), "2");
    //  Both ends of each range are accepted.
    assert_int_equal(es_config_set(cfg, "download.workers", "1", &err), 0);
    assert_int_equal(es_config_int(cfg, "download.workers"), 1);
    assert_int_equal(es_config_set(cfg, "download.workers", "16", &err), 0);
    assert_int_equal(es_config_int(cfg, "download.workers"), 16);
    assert_string_equal(es_config_str(cfg, "download.workers"), "16");
    assert_int_equal(es_config_set(cfg, "retry.max_attempts", "0", &err), 0);
    assert_int_equal(es_config_int(cfg, "retry.max_attempts"), 0);
    assert_int_equal(es_config_set(cfg, "store.map_max_mb", "1048576", &err), 0);
    assert_int_equal(es_config_int(cfg, "store.map_max_mb"), 1048576);
    es_config_destroy(&cfg);
}

static void
test_set_type_errors(void **state)
{
    (void)state;
    es_config_t *cfg = es_config_new();
    es_err_t err;
    s_expect_set_error(cfg, "x", "1", "x: unknown option");
    s_expect_set_error(cfg, "", "1", ": unknown option");
    s_expect_set_error(cfg, "Download.Workers", "3", "Download.Workers: unknown option");
    s_expect_set_error(cfg, "download.workers", "abc",
                       "download.workers: expected an integer, got 'abc'");
    s_expect_set_error(cfg, "download.workers", "",
                       "download.workers: expected an integer, got ''");
    s_expect_set_error(cfg, "download.workers", "5x",
                       "download.workers: expected an integer, got '5x'");
    s_expect_set_error(cfg, "download.workers", "2.5",
                       "download.workers: expected an integer, got '2.5'");
    s_expect_set_error(cfg, "download.workers", "0x4",
                       "download.workers: expected an integer, got '0x4'");
    s_expect_set_error(cfg, "download.workers", "99999999999999999999",
                       "download.workers: expected an integer, got '99999999999999999999'");
    s_expect_set_error(cfg, "log.level", "verbose",
                       "log.level: must be error, warn, info or debug, got 'verbose'");
    s_expect_set_error(cfg, "log.level", "",
                       "log.level: must be error, warn, info or debug, got ''");
    assert_string_equal(es_config_str(cfg, "log.level"), "info");
    const char *levels[] = {"error", "warn", "info", "debug"};
    for (size_t i = 0; i < 4; i++) {
        assert_int_equal(es_config_set(cfg, "log.level", levels[i], &err), 0);
        assert_string_equal(es_config_str(cfg, "log.level"), levels[i]);
    }
    //  Strings take anything, including the empty string.
    assert_int_equal(es_config_set(cfg, "server_url", "http://example:1/p q", &err), 0);
    assert_string_equal(es_config_str(cfg, "server_url"), "http://example:1/p q");
    assert_int_equal(es_config_set(cfg, "header_prefix", "", &err), 0);
    assert_string_equal(es_config_str(cfg, "header_prefix"), "");
    //  An over-long error key is truncated, never overflows the error record.
    char key[2000];
    memset(key, 'k', sizeof key - 1);
    key[sizeof key - 1] = '\0';
    assert_int_equal(es_config_set(cfg, key, "1", &err), -1);
    assert_int_equal(strlen(err.what), ES_ERR_WHAT_MAX - 1);
    assert_memory_equal(err.what, key, ES_ERR_WHAT_MAX - 1);
    es_config_destroy(&cfg);
}

//  ---------------------------------------------------------------------------------------------

static void
test_load_values(void **state)
{
    fixture_t *f = *state;
    es_config_t *cfg;
    es_err_t err;
    const char *text = "# edgesync configuration\n"
                       "\n"
                       "   \t\n"
                       "   # indented comment = not an option\n"
                       "data_dir = /var/lib/es   # trailing comment\n"
                       "server_url=\"http://h:1/x?a=b\"\n"
                       "auth_token = \"  spaced # not a comment  \"\n"
                       "services = \"\"\n"
                       "header_prefix = \"X-Kony-\"   # comment after the quote\n"
                       "\tdownload.workers\t=\t16\t\n"
                       "http.timeout_ms = 100\r\n"
                       "log.level = debug"; //  last line without a newline
    assert_int_equal(s_load(f, text, &cfg, &err), 0);
    assert_string_equal(es_config_str(cfg, "data_dir"), "/var/lib/es");
    assert_string_equal(es_config_str(cfg, "server_url"), "http://h:1/x?a=b");
    assert_string_equal(es_config_str(cfg, "auth_token"), "  spaced # not a comment  ");
    assert_string_equal(es_config_str(cfg, "services"), "");
    assert_string_equal(es_config_str(cfg, "header_prefix"), "X-Kony-");
    assert_int_equal(es_config_int(cfg, "download.workers"), 16);
    assert_int_equal(es_config_int(cfg, "http.timeout_ms"), 100);
    assert_string_equal(es_config_str(cfg, "log.level"), "debug");
    //  Untouched options keep their defaults.
    assert_int_equal(es_config_int(cfg, "retry.max_attempts"), 5);
    assert_string_equal(es_config_str(cfg, "cmd_endpoint"), "");
    //  A second file loads over the first.
    s_write(f, "download.workers = 3\n", 21);
    assert_int_equal(es_config_load(cfg, f->path, &err), 0);
    assert_int_equal(es_config_int(cfg, "download.workers"), 3);
    assert_string_equal(es_config_str(cfg, "data_dir"), "/var/lib/es");
    es_config_destroy(&cfg);

    //  An empty file and a comments-only file change nothing.
    assert_int_equal(s_load(f, "", &cfg, &err), 0);
    assert_int_equal(es_config_int(cfg, "download.workers"), 2);
    es_config_destroy(&cfg);
    assert_int_equal(s_load(f, "#\n#\n\n", &cfg, &err), 0);
    assert_string_equal(es_config_str(cfg, "data_dir"), "./edgesync-data");
    es_config_destroy(&cfg);
}

static void
test_load_errors(void **state)
{
    fixture_t *f = *state;
    s_expect_load_error(f, "# c\n\nnovalue here\n",
                        ":3: expected 'key = value', got 'novalue here'");
    s_expect_load_error(f, "novalue # comment\n", ":1: expected 'key = value', got 'novalue'");
    s_expect_load_error(f, "data_dir = x\nbogus = 1\n", ":2: bogus: unknown option");
    s_expect_load_error(f, "\n\n\ndownload.workers = 0\n",
                        ":4: download.workers: must be 1..16, got 0");
    s_expect_load_error(f, "download.workers = \"17\"\n",
                        ":1: download.workers: must be 1..16, got 17");
    s_expect_load_error(f, "retry.base_ms = ten\n",
                        ":1: retry.base_ms: expected an integer, got 'ten'");
    s_expect_load_error(f, "download.workers =\n",
                        ":1: download.workers: expected an integer, got ''");
    s_expect_load_error(f, "log.level = loud\n",
                        ":1: log.level: must be error, warn, info or debug, got 'loud'");
    s_expect_load_error(f, "= 5\n", ":1: : unknown option");
    s_expect_load_error(f, "# a = b\n  # x = \"y\"\nnovalue # k = v\n",
                        ":3: expected 'key = value', got 'novalue'");
    s_expect_load_error(f, "\nauth_token = \"abc # def\n", ":2: auth_token: missing closing '\"'");
    s_expect_load_error(f, "auth_token = \"abc\" def\n",
                        ":1: auth_token: unexpected text after the quoted value");
    s_expect_load_error(f, "bogus = \"1\"\n", ":1: bogus: unknown option");

    //  The first error stops the load; earlier lines are applied, later ones are not.
    es_config_t *cfg;
    es_err_t err;
    assert_int_equal(
        s_load(f, "download.workers = 4\nbogus = 1\nretry.max_attempts = 9\n", &cfg, &err), -1);
    assert_int_equal(es_config_int(cfg, "download.workers"), 4);
    assert_int_equal(es_config_int(cfg, "retry.max_attempts"), 5);
    es_config_destroy(&cfg);
}

static void
test_load_long_lines(void **state)
{
    fixture_t *f = *state;
    es_config_t *cfg;
    es_err_t err;
    //  4094 bytes plus the newline is the longest line accepted.
    const char *head = "auth_token = ";
    size_t body = 4094 - strlen(head);
    char *text = es_malloc(8192);
    memcpy(text, head, strlen(head));
    memset(text + strlen(head), 'a', body);
    strcpy(text + 4094, "\n");
    assert_int_equal(s_load(f, text, &cfg, &err), 0);
    assert_int_equal(strlen(es_config_str(cfg, "auth_token")), body);
    assert_int_equal(es_config_str(cfg, "auth_token")[body - 1], 'a');
    es_config_destroy(&cfg);
    //  One byte more is refused, naming the line.
    char *longer = es_sprintf("# first\n%.*sa\nlog.level = debug\n", 4094, text);
    s_expect_load_error(f, longer, ":2: line longer than 4094 bytes");
    free(longer);
    //  Far longer, also on the last line without a newline.
    memset(text, 'b', 8000);
    text[8000] = '\0';
    s_expect_load_error(f, text, ":1: line longer than 4094 bytes");
    free(text);
}

static void
test_load_missing_file(void **state)
{
    fixture_t *f = *state;
    es_config_t *cfg = es_config_new();
    es_err_t err;
    char *path = es_sprintf("%s/nope.conf", f->dir);
    assert_int_equal(es_config_load(cfg, path, &err), -1);
    assert_int_equal(err.code, ES_ECONFIG);
    char *expected = es_sprintf("%s: No such file or directory", path);
    assert_string_equal(err.what, expected);
    free(expected);
    //  A directory is not a file either.
    assert_int_equal(es_config_load(cfg, f->dir, &err), -1);
    assert_int_equal(err.code, ES_ECONFIG);
    assert_non_null(strstr(err.what, f->dir));
    free(path);
    es_config_destroy(&cfg);
}

//  tls.*: a boolean, files checked when set and kept absolute, cert and key only together.
static void
test_tls_options(void **state)
{
    fixture_t *f = *state;
    es_config_t *cfg = es_config_new();
    es_err_t err;
    assert_true(es_config_bool(cfg, "tls.verify"));
    s_expect_set_error(cfg, "tls.verify", "yes", "tls.verify: must be true or false, got 'yes'");
    s_expect_set_error(cfg, "tls.verify", "", "tls.verify: must be true or false, got ''");
    assert_true(es_config_bool(cfg, "tls.verify"));
    assert_int_equal(es_config_set(cfg, "tls.verify", "false", &err), 0);
    assert_false(es_config_bool(cfg, "tls.verify"));

    char *pem = es_sprintf("%s/ca.pem", f->dir), *key = es_sprintf("%s/key.pem", f->dir);
    for (int i = 0; i < 2; i++) {
        FILE *out = fopen(i ? key : pem, "w");
        assert_non_null(out);
        assert_int_equal(fputs("-----BEGIN CERTIFICATE-----\n", out) >= 0, 1);
        assert_int_equal(fclose(out), 0);
    }
    char *missing = es_sprintf("%s/nope.pem", f->dir);
    char *expected =
        es_sprintf("tls.ca_file: cannot read '%s': No such file or directory", missing);
    s_expect_set_error(cfg, "tls.ca_file", missing, expected);
    free(expected);
    expected = es_sprintf("tls.ca_file: '%s' is not a regular file", f->dir);
    s_expect_set_error(cfg, "tls.ca_file", f->dir, expected);
    free(expected);
    if (geteuid() != 0) { //  root reads anything
        assert_int_equal(chmod(key, 0), 0);
        expected = es_sprintf("tls.key_file: cannot read '%s': Permission denied", key);
        s_expect_set_error(cfg, "tls.key_file", key, expected);
        free(expected);
        assert_int_equal(chmod(key, 0600), 0);
    }
    assert_string_equal(es_config_str(cfg, "tls.ca_file"), "");
    //  Stored absolute and clean, whatever the spelling.
    char *dotted = es_sprintf("%s/./ca.pem", f->dir);
    assert_int_equal(es_config_set(cfg, "tls.ca_file", dotted, &err), 0);
    char *real = realpath(pem, NULL);
    assert_non_null(real);
    assert_string_equal(es_config_str(cfg, "tls.ca_file"), real);
    assert_int_equal(es_config_set(cfg, "tls.ca_file", "", &err), 0);
    assert_string_equal(es_config_str(cfg, "tls.ca_file"), "");
    es_config_destroy(&cfg);

    //  A file naming only one of the pair is refused, naming both options.
    char *text = es_sprintf("tls.cert_file = %s\n", pem);
    s_expect_load_error(f, text,
                        ": tls.cert_file and tls.key_file go together: tls.cert_file is set, "
                        "tls.key_file is not");
    free(text);
    text = es_sprintf("tls.key_file = %s\n", key);
    s_expect_load_error(f, text,
                        ": tls.cert_file and tls.key_file go together: tls.key_file is set, "
                        "tls.cert_file is not");
    free(text);
    text = es_sprintf("\ntls.ca_file = %s\n", missing);
    expected = es_sprintf(":2: tls.ca_file: cannot read '%s': No such file or directory", missing);
    s_expect_load_error(f, text, expected);
    free(expected);
    free(text);
    text = es_sprintf("tls.cert_file = %s\ntls.key_file = \"%s\"\ntls.verify = false\n", pem, key);
    assert_int_equal(s_load(f, text, &cfg, &err), 0);
    assert_string_equal(es_config_str(cfg, "tls.cert_file"), real);
    assert_false(es_config_bool(cfg, "tls.verify"));
    es_config_destroy(&cfg);
    free(text);

    free(real);
    free(dotted);
    free(missing);
    assert_int_equal(unlink(pem), 0);
    assert_int_equal(unlink(key), 0);
    free(pem);
    free(key);
}

//  Write len bytes of text to dir/name with mode; returns the path (caller frees).
static char *
s_file(const char *dir, const char *name, const char *text, size_t len, mode_t mode)
{
    char *path = es_sprintf("%s/%s", dir, name);
    FILE *out = fopen(path, "w");
    assert_non_null(out);
    assert_int_equal(fwrite(text, 1, len, out), len);
    assert_int_equal(fclose(out), 0);
    assert_int_equal(chmod(path, mode), 0);
    return path;
}

//  es_config_read_secret on text (written mode 0600): 0 with the expected secret, or -1 with
//  err ending in tail; the secret never appears in an error and out is empty after one.
static void
s_expect_secret(const char *dir, const char *text, size_t len, const char *secret, const char *tail)
{
    char *path = s_file(dir, "pass", text, len, 0600);
    char out[ES_CONFIG_SECRET_MAX + 1];
    memset(out, 'x', sizeof out);
    es_err_t err;
    es_err_clear(&err);
    int rc = es_config_read_secret("tls.key_password_file", path, out, &err);
    if (secret) {
        assert_int_equal(rc, 0);
        assert_string_equal(out, secret);
    } else {
        assert_int_equal(rc, -1);
        assert_int_equal(err.code, ES_ECONFIG);
        char *expected = es_sprintf("tls.key_password_file: %s", tail);
        char *p = strstr(expected, "%P");
        if (p) { //  "%P" stands for the path
            *p = '\0';
            char *full = es_sprintf("%s%s%s", expected, path, p + 2);
            free(expected);
            expected = full;
        }
        assert_string_equal(err.what, expected);
        assert_string_equal(out, "");
        free(expected);
    }
    assert_int_equal(unlink(path), 0);
    free(path);
}

//  tls.key_password_file: the first line of a private file, bounded; needs tls.key_file at load;
//  read only by edgesyncd's check (es_config_check_secrets), which also refuses an encrypted key
//  without it.
static void
test_key_password(void **state)
{
    fixture_t *f = *state;
    s_expect_secret(f->dir, "s3cret pass\n", 12, "s3cret pass", NULL);
    s_expect_secret(f->dir, "crlf\r\nsecond line\n", 19, "crlf", NULL);
    s_expect_secret(f->dir, "no newline", 10, "no newline", NULL);
    s_expect_secret(f->dir, " spaces kept \n", 15, " spaces kept ", NULL);
    s_expect_secret(f->dir, "", 0, NULL, "'%P' is empty: its first line must hold the secret");
    s_expect_secret(f->dir, "\nsecond\n", 8, NULL,
                    "'%P' is empty: its first line must hold the secret");
    s_expect_secret(f->dir, "\r\n", 2, NULL, "'%P' is empty: its first line must hold the secret");
    s_expect_secret(f->dir, "ab\0cd\n", 6, NULL, "the first line of '%P' holds a NUL byte");
    //  The bound: ES_CONFIG_SECRET_MAX bytes pass, with or without "\r\n"; one more does not.
    char big[3 * ES_CONFIG_SECRET_MAX];
    memset(big, 'k', sizeof big);
    char want[ES_CONFIG_SECRET_MAX + 1];
    memset(want, 'k', ES_CONFIG_SECRET_MAX);
    want[ES_CONFIG_SECRET_MAX] = '\0';
    s_expect_secret(f->dir, big, ES_CONFIG_SECRET_MAX, want, NULL);
    big[ES_CONFIG_SECRET_MAX] = '\r';
    big[ES_CONFIG_SECRET_MAX + 1] = '\n';
    s_expect_secret(f->dir, big, sizeof big, want, NULL);
    big[ES_CONFIG_SECRET_MAX] = 'k';
    big[ES_CONFIG_SECRET_MAX + 1] = '\n';
    s_expect_secret(f->dir, big, sizeof big, NULL,
                    "the first line of '%P' is longer than 1024 bytes");
    memset(big, 'k', sizeof big);
    s_expect_secret(f->dir, big, sizeof big, NULL,
                    "the first line of '%P' is longer than 1024 bytes");

    //  Not private, not there, not a file.
    char out[ES_CONFIG_SECRET_MAX + 1];
    es_err_t err;
    char *pass = s_file(f->dir, "pass", "hunter2\n", 8, 0640);
    assert_int_equal(es_config_read_secret("tls.key_password_file", pass, out, &err), -1);
    char *expected = es_sprintf("tls.key_password_file: '%s' has mode 0640, readable by group or "
                                "others: 'chmod 600 %s'",
                                pass, pass);
    assert_string_equal(err.what, expected);
    assert_null(strstr(err.what, "hunter2"));
    free(expected);
    assert_int_equal(chmod(pass, 0604), 0);
    assert_int_equal(es_config_read_secret("tls.key_password_file", pass, out, &err), -1);
    assert_non_null(strstr(err.what, "mode 0604"));
    char *missing = es_sprintf("%s/nope", f->dir);
    assert_int_equal(es_config_read_secret("tls.key_password_file", missing, out, &err), -1);
    expected =
        es_sprintf("tls.key_password_file: cannot read '%s': No such file or directory", missing);
    assert_string_equal(err.what, expected);
    free(expected);
    assert_int_equal(es_config_read_secret("tls.key_password_file", f->dir, out, &err), -1);
    expected = es_sprintf("tls.key_password_file: '%s' is not a regular file", f->dir);
    assert_string_equal(err.what, expected);
    free(expected);

    //  In a config file.
    static const char plain_key[] =
        "-----BEGIN PRIVATE KEY-----\nMIGH\n-----END PRIVATE KEY-----\n";
    static const char pkcs8_key[] = "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIHs\n"
                                    "-----END ENCRYPTED PRIVATE KEY-----\n";
    static const char legacy_key[] =
        "-----BEGIN EC PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\n"
        "DEK-Info: AES-256-CBC,00\n\nMHcC\n-----END EC PRIVATE KEY-----\n";
    char *pem = s_file(f->dir, "cert.pem", "-----BEGIN CERTIFICATE-----\n", 28, 0644);
    char *plain = s_file(f->dir, "plain.key", plain_key, strlen(plain_key), 0600);
    char *pkcs8 = s_file(f->dir, "pkcs8.key", pkcs8_key, strlen(pkcs8_key), 0600);
    char *legacy = s_file(f->dir, "legacy.key", legacy_key, strlen(legacy_key), 0600);
    es_config_t *cfg;
    char *text = es_sprintf("tls.key_password_file = %s\n", pass);
    s_expect_load_error(f, text,
                        ": tls.key_password_file is set but tls.key_file is not: the passphrase "
                        "is for the client key");
    free(text);
    //  Mode 0604: refused by edgesyncd's check, naming the config file and the option.
    text = es_sprintf("tls.cert_file = %s\ntls.key_file = %s\ntls.key_password_file = %s\n", pem,
                      pkcs8, pass);
    expected = es_sprintf(": tls.key_password_file: '%s' has mode 0604, readable by group or "
                          "others: 'chmod 600 %s'",
                          pass, pass);
    s_expect_secrets_error(f, text, expected);
    free(expected);
    assert_int_equal(chmod(pass, 0600), 0);
    assert_int_equal(s_load(f, text, &cfg, &err), 0);
    assert_int_equal(es_config_check_secrets(cfg, f->path, &err), 0);
    char *real = realpath(pass, NULL);
    assert_non_null(real);
    assert_string_equal(es_config_str(cfg, "tls.key_password_file"), real);
    es_config_destroy(&cfg);
    free(real);
    free(text);
    //  Encrypted keys (both PEM forms) without a passphrase file are refused; a plain one is not.
    const char *encrypted[] = {pkcs8, legacy};
    for (int i = 0; i < 2; i++) {
        text = es_sprintf("tls.cert_file = %s\ntls.key_file = %s\n", pem, encrypted[i]);
        expected = es_sprintf(": tls.key_file '%s' is encrypted: set tls.key_password_file to a "
                              "file holding its passphrase",
                              encrypted[i]);
        s_expect_secrets_error(f, text, expected);
        free(expected);
        free(text);
    }
    text = es_sprintf("tls.cert_file = %s\ntls.key_file = %s\n", pem, plain);
    assert_int_equal(s_load(f, text, &cfg, &err), 0);
    assert_int_equal(es_config_check_secrets(cfg, f->path, &err), 0);
    es_config_destroy(&cfg);
    free(text);
    //  The CLI loads a config whose passphrase file it cannot read (or that is not there): the
    //  path is only made absolute; edgesyncd's check names it.
    text = es_sprintf("tls.cert_file = %s\ntls.key_file = %s\ntls.key_password_file = "
                      "no-such.pass\n",
                      pem, legacy);
    assert_int_equal(s_load(f, text, &cfg, &err), 0);
    char cwd[PATH_MAX];
    assert_non_null(getcwd(cwd, sizeof cwd));
    expected = es_sprintf("%s/no-such.pass", cwd);
    assert_string_equal(es_config_str(cfg, "tls.key_password_file"), expected);
    assert_int_equal(es_config_check_secrets(cfg, f->path, &err), -1);
    assert_non_null(strstr(err.what, "tls.key_password_file: cannot read"));
    assert_non_null(strstr(err.what, expected));
    free(expected);
    es_config_destroy(&cfg);
    free(text);
    //  An empty passphrase file: refused, naming it.
    assert_int_equal(truncate(pass, 0), 0);
    text = es_sprintf("tls.cert_file = %s\ntls.key_file = %s\ntls.key_password_file = %s\n", pem,
                      legacy, pass);
    expected = es_sprintf(": tls.key_password_file: '%s' is empty: its first line must hold the "
                          "secret",
                          pass);
    s_expect_secrets_error(f, text, expected);
    free(expected);
    free(text);

    char *paths[] = {pass, pem, plain, pkcs8, legacy};
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
        assert_int_equal(unlink(paths[i]), 0);
        free(paths[i]);
    }
    free(missing);
}

//  ---------------------------------------------------------------------------------------------

static void
s_expect_endpoints(es_config_t *cfg, const char *cmd, const char *ev)
{
    char *c = es_config_cmd_endpoint(cfg), *e = es_config_event_endpoint(cfg);
    assert_string_equal(c, cmd);
    assert_string_equal(e, ev);
    free(c);
    free(e);
}

static void
test_endpoints(void **state)
{
    (void)state;
    char cwd[PATH_MAX];
    assert_non_null(getcwd(cwd, sizeof cwd));
    es_config_t *cfg = es_config_new();
    es_err_t err;
    struct {
        const char *data_dir; //  as configured
        const char *suffix;   //  expected after "ipc://<cwd>" ("" + absolute: no cwd)
    } cases[] = {
        {"./edgesync-data", "/edgesync-data"},
        {"data", "/data"},
        {"./data/sub", "/data/sub"},
        {"../up", "/../up"},
        {".", ""},
        {"./", ""},
        {"././x", "/x"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        assert_int_equal(es_config_set(cfg, "data_dir", cases[i].data_dir, &err), 0);
        char *cmd = es_sprintf("ipc://%s%s/cmd.sock", cwd, cases[i].suffix);
        char *ev = es_sprintf("ipc://%s%s/events.sock", cwd, cases[i].suffix);
        s_expect_endpoints(cfg, cmd, ev);
        free(cmd);
        free(ev);
    }
    assert_int_equal(es_config_set(cfg, "data_dir", "/var/lib/edgesync", &err), 0);
    s_expect_endpoints(cfg, "ipc:///var/lib/edgesync/cmd.sock",
                       "ipc:///var/lib/edgesync/events.sock");
    //  Explicit endpoints win, each on its own.
    assert_int_equal(es_config_set(cfg, "cmd_endpoint", "tcp://127.0.0.1:5555", &err), 0);
    s_expect_endpoints(cfg, "tcp://127.0.0.1:5555", "ipc:///var/lib/edgesync/events.sock");
    assert_int_equal(es_config_set(cfg, "event_endpoint", "ipc:///run/es/ev", &err), 0);
    s_expect_endpoints(cfg, "tcp://127.0.0.1:5555", "ipc:///run/es/ev");
    assert_int_equal(es_config_set(cfg, "cmd_endpoint", "", &err), 0);
    s_expect_endpoints(cfg, "ipc:///var/lib/edgesync/cmd.sock", "ipc:///run/es/ev");
    es_config_destroy(&cfg);
}

static void
test_help(void **state)
{
    (void)state;
    char *text = NULL;
    size_t size = 0;
    FILE *out = open_memstream(&text, &size);
    assert_non_null(out);
    es_config_help(out);
    assert_int_equal(fclose(out), 0);
    for (size_t i = 0; i < NDEFAULTS; i++) {
        char *line = es_sprintf("\n%s = %s\n", s_defaults[i].name, s_defaults[i].dflt);
        if (!strstr(text, line))
            fail_msg("help lacks '%s = %s'", s_defaults[i].name, s_defaults[i].dflt);
        free(line);
    }
    //  As many "key = value" lines as options: the list above is complete.
    size_t lines = 0;
    for (const char *p = text; *p; p = strchr(p, '\n') + 1) {
        if (*p != '#' && *p != '\n')
            lines++;
        if (!strchr(p, '\n'))
            fail_msg("help output does not end with a newline");
    }
    assert_int_equal(lines, NDEFAULTS);
    //  Bounds and help text.
    assert_non_null(strstr(text, "# download actor processes (objects downloaded in parallel) "
                                 "(1..16)\ndownload.workers = 2\n"));
    assert_non_null(strstr(text, "# error | warn | info | debug\nlog.level = info\n"));
    //  The help output is itself a valid config file that sets the defaults.
    fixture_t *f = *state;
    es_config_t *cfg;
    es_err_t err;
    if (s_load(f, text, &cfg, &err))
        fail_msg("help output does not load: %s", err.what);
    assert_int_equal(es_config_int(cfg, "download.workers"), 2);
    es_config_destroy(&cfg);
    free(text);
}

//  metrics.listen is checked at load (edgesyncd refuses to start), not only when es-stats binds
//  it: syntax, port range, loopback unless metrics.allow_remote (which may come after it).
static void
test_metrics_listen(void **state)
{
    const fixture_t *f = *state;
    static const char *good[] = {"127.0.0.1:9469", "localhost:0", "[::1]:65535", "127.9.9.9:1"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        char *text = es_sprintf("metrics.listen = %s\n", good[i]);
        es_config_t *cfg;
        es_err_t err;
        assert_int_equal(s_load(f, text, &cfg, &err), 0);
        assert_string_equal(es_config_str(cfg, "metrics.listen"), good[i]);
        es_config_destroy(&cfg);
        free(text);
    }
    static const struct {
        const char *value, *tail;
    } bad[] = {
        {"9469", ": metrics.listen: expected host:port, got '9469'"},
        {"127.0.0.1:", ": metrics.listen: port must be 0..65535, got ''"},
        {"127.0.0.1:65536", ": metrics.listen: port must be 0..65535, got '65536'"},
        {"127.0.0.1:-1", ": metrics.listen: port must be 0..65535, got '-1'"},
        {"127.0.0.1:80x", ": metrics.listen: port must be 0..65535, got '80x'"},
        {":9469", ": metrics.listen: bad host in ':9469'"},
        {"[::1:9469", ": metrics.listen: expected [IPv6]:port, got '[::1:9469'"},
        {"metrics.example:9469", ": metrics.listen: 'metrics.example' is not an IP address or "
                                 "localhost"},
        {"0.0.0.0:9469", ": metrics.listen: 0.0.0.0 is not a loopback address (set "
                         "metrics.allow_remote = true to expose metrics beyond this host)"},
        {"[::]:9469", ": metrics.listen: :: is not a loopback address (set "
                      "metrics.allow_remote = true to expose metrics beyond this host)"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char *text = es_sprintf("metrics.listen = %s\n", bad[i].value);
        s_expect_load_error(f, text, bad[i].tail);
        free(text);
    }
    //  allow_remote, before or after the address, lets a non-loopback address through.
    static const char *remote[] = {"metrics.listen = 0.0.0.0:9469\nmetrics.allow_remote = true\n",
                                   "metrics.allow_remote = true\nmetrics.listen = [::]:1\n"};
    for (size_t i = 0; i < 2; i++) {
        es_config_t *cfg;
        es_err_t err;
        assert_int_equal(s_load(f, remote[i], &cfg, &err), 0);
        es_config_destroy(&cfg);
    }
    //  Syntax errors are errors whatever allow_remote says; empty is off, never an error.
    s_expect_load_error(f, "metrics.allow_remote = true\nmetrics.listen = 0.0.0.0:99999\n",
                        ": metrics.listen: port must be 0..65535, got '99999'");
    es_config_t *cfg;
    es_err_t err;
    assert_int_equal(s_load(f, "metrics.listen = \"\"\n", &cfg, &err), 0);
    es_config_destroy(&cfg);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_set_bounds),
        cmocka_unit_test(test_set_type_errors),
        cmocka_unit_test_setup_teardown(test_load_values, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_load_errors, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_load_long_lines, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_load_missing_file, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_tls_options, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_key_password, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_metrics_listen, s_setup, s_teardown),
        cmocka_unit_test(test_endpoints),
        cmocka_unit_test_setup_teardown(test_help, s_setup, s_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
