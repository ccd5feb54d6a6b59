//  test_es_curve - CURVE key files and the allow-list parser: comments, blank lines, trailing
//  comments, duplicates, a commented-out key; every bad line named "file:line"; the secret key
//  file's mode; keygen's files, modes and refusal to replace.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "common/es_curve.h"
#include "common/es_mem.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

typedef struct {
    char dir[64];
    char path[128]; //  a scratch file in dir
    char pub[2][ES_CURVE_Z85_LEN + 1], sec[2][ES_CURVE_Z85_LEN + 1];
} fixture_t;

static int
s_setup(void **state)
{
    fixture_t *f = es_calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/test_es_curve.XXXXXX");
    if (!mkdtemp(f->dir)) {
        free(f);
        return -1;
    }
    snprintf(f->path, sizeof f->path, "%s/file", f->dir);
    for (int i = 0; i < 2; i++)
        if (zmq_curve_keypair(f->pub[i], f->sec[i]))
            return -1;
    *state = f;
    return 0;
}

static int
s_teardown(void **state)
{
    fixture_t *f = *state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", f->dir);
    int rc = system(cmd);
    free(f);
    return rc;
}

static void
s_write(const char *path, const char *text)
{
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    assert_int_equal(fputs(text, fp) >= 0, 1);
    assert_int_equal(fclose(fp), 0);
}

static void
test_allow_list(void **state)
{
    fixture_t *f = *state;
    char *text = es_sprintf("# gateway clients\n"
                            "\n"
                            "   %s   # ops laptop\n"
                            "%s\n"
                            "%s\n" //  a duplicate counts once
                            "\t\n"
                            "#%s retired\n", //  commented out: not allowed
                            f->pub[0], f->pub[0], f->pub[0], f->pub[1]);
    s_write(f->path, text);
    free(text);
    es_err_t err;
    es_curve_allow_t *allow = es_curve_allow_new(f->path, &err);
    assert_non_null(allow);
    assert_int_equal(es_curve_allow_size(allow), 1);
    uint8_t key[ES_CURVE_KEY_LEN];
    assert_non_null(zmq_z85_decode(key, f->pub[0]));
    assert_true(es_curve_allow_has(allow, key));
    assert_non_null(zmq_z85_decode(key, f->pub[1]));
    assert_false(es_curve_allow_has(allow, key));
    es_curve_allow_destroy(&allow);
    assert_null(allow);
    es_curve_allow_destroy(&allow); //  safe twice

    //  An empty list is valid (every client refused).
    s_write(f->path, "# nobody yet\n");
    allow = es_curve_allow_new(f->path, &err);
    assert_non_null(allow);
    assert_int_equal(es_curve_allow_size(allow), 0);
    assert_false(es_curve_allow_has(allow, key));
    es_curve_allow_destroy(&allow);
}

static void
test_allow_list_errors(void **state)
{
    fixture_t *f = *state;
    struct {
        const char *line; //  the third line of the file
        const char *what; //  expected in the error after "file:3: "
    } cases[] = {
        {"tooShort", "expected a 40-character Z85 key, got 'tooShort'"},
        {"0123456789012345678901234567890123456789X", "expected a 40-character"},
        {"012345678901234567890123456789012345678\"", "expected a 40-character"}, //  '"' not Z85
        {"@KEY@ trailing words", "unexpected text after the key: 'trailing words'"},
        {"@KEY@,@KEY@", "expected a 40-character"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char line[256];
        snprintf(line, sizeof line, "%s", cases[i].line);
        char *at;
        while ((at = strstr(line, "@KEY@"))) {
            char rest[256];
            snprintf(rest, sizeof rest, "%s", at + 5);
            snprintf(at, sizeof line - (size_t)(at - line), "%s%s", f->pub[0], rest);
        }
        char *text = es_sprintf("# header\n%s\n%s\n%s\n", f->pub[1], line, f->pub[0]);
        s_write(f->path, text);
        free(text);
        es_err_t err;
        assert_null(es_curve_allow_new(f->path, &err));
        char *prefix = es_sprintf("%s:3: ", f->path);
        if (strncmp(err.what, prefix, strlen(prefix)) != 0 || !strstr(err.what, cases[i].what))
            fail_msg("case %zu: got '%s'", i, err.what);
        free(prefix);
    }
    //  A line too long to be a key line.
    char *longline = es_malloc(3000);
    memset(longline, 'a', 2999);
    longline[2999] = '\0';
    char *text = es_sprintf("%s\n%s\n", f->pub[0], longline);
    s_write(f->path, text);
    free(text);
    free(longline);
    es_err_t err;
    assert_null(es_curve_allow_new(f->path, &err));
    assert_non_null(strstr(err.what, ":2: line longer than"));
    //  A missing file names itself.
    char *missing = es_sprintf("%s/missing", f->dir);
    assert_null(es_curve_allow_new(missing, &err));
    assert_non_null(strstr(err.what, missing));
    assert_int_equal(err.code, ES_ECONFIG);
    free(missing);
}

static void
test_key_files(void **state)
{
    fixture_t *f = *state;
    es_err_t err;
    char out[ES_CURVE_Z85_LEN + 1], pub[ES_CURVE_Z85_LEN + 1];
    char *text = es_sprintf("# a public key\n\n%s\n", f->pub[0]);
    s_write(f->path, text);
    free(text);
    assert_int_equal(es_curve_load_public(f->path, out, &err), 0);
    assert_string_equal(out, f->pub[0]);

    text = es_sprintf("%s\n%s\n", f->pub[0], f->pub[1]);
    s_write(f->path, text);
    free(text);
    assert_int_equal(es_curve_load_public(f->path, out, &err), -1);
    assert_non_null(strstr(err.what, ":2: a key file holds one key"));

    s_write(f->path, "# only comments\n");
    assert_int_equal(es_curve_load_public(f->path, out, &err), -1);
    assert_non_null(strstr(err.what, "no key in the file"));

    //  A secret: mode checked, public key derived.
    text = es_sprintf("# secret\n%s\n", f->sec[1]);
    s_write(f->path, text);
    free(text);
    assert_int_equal(chmod(f->path, 0644), 0);
    assert_int_equal(es_curve_load_secret(f->path, pub, out, &err), -1);
    assert_non_null(strstr(err.what, "mode 0644"));
    assert_null(strstr(err.what, f->sec[1])); //  never the secret in a message
    assert_int_equal(chmod(f->path, 0600), 0);
    assert_int_equal(es_curve_load_secret(f->path, pub, out, &err), 0);
    assert_string_equal(out, f->sec[1]);
    assert_string_equal(pub, f->pub[1]);
    assert_int_equal(es_curve_load_secret(f->dir, pub, out, &err), -1); //  a directory
    assert_non_null(strstr(err.what, "not a regular file"));
}

static void
test_keygen(void **state)
{
    fixture_t *f = *state;
    char prefix[128], path[160], pub[ES_CURVE_Z85_LEN + 1], sec[ES_CURVE_Z85_LEN + 1];
    char again[ES_CURVE_Z85_LEN + 1];
    snprintf(prefix, sizeof prefix, "%s/gw", f->dir);
    es_err_t err;
    mode_t old = umask(0); //  the secret is 0600 whatever the umask
    int rc = es_curve_keygen(prefix, pub, &err);
    umask(old);
    assert_int_equal(rc, 0);
    struct stat st;
    snprintf(path, sizeof path, "%s.key", prefix);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(es_curve_load_secret(path, again, sec, &err), 0);
    assert_string_equal(again, pub);
    snprintf(path, sizeof path, "%s.pub", prefix);
    assert_int_equal(es_curve_load_public(path, again, &err), 0);
    assert_string_equal(again, pub);
    //  Never replaced.
    assert_int_equal(es_curve_keygen(prefix, again, &err), -1);
    assert_non_null(strstr(err.what, "exists"));
    assert_int_equal(es_curve_load_public(path, again, &err), 0);
    assert_string_equal(again, pub);
    assert_int_equal(es_curve_keygen("", again, &err), -1);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_allow_list, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_allow_list_errors, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_key_files, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_keygen, s_setup, s_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
