//  es_log: the rate limit of warnings that outside input can repeat (a flood of malformed
//  messages gives a bounded number of lines: the first few, then one summary per window).
#include "common/es_log.h"
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

//  Runs the limiter with stderr sent to a temporary file; returns what was written (caller
//  frees).
static char *
s_stderr_end(int saved, FILE *tmp)
{
    fflush(stderr);
    assert_int_not_equal(dup2(saved, STDERR_FILENO), -1);
    close(saved);
    assert_int_equal(fseek(tmp, 0, SEEK_END), 0);
    long n = ftell(tmp);
    assert_true(n >= 0);
    rewind(tmp);
    char *text = calloc(1, (size_t)n + 1);
    assert_non_null(text);
    assert_int_equal(fread(text, 1, (size_t)n, tmp), (size_t)n);
    fclose(tmp);
    return text;
}

static FILE *
s_stderr_begin(int *saved)
{
    FILE *tmp = tmpfile();
    assert_non_null(tmp);
    fflush(stderr);
    *saved = dup(STDERR_FILENO);
    assert_true(*saved >= 0);
    assert_int_not_equal(dup2(fileno(tmp), STDERR_FILENO), -1);
    return tmp;
}

static size_t
s_lines(const char *text)
{
    size_t n = 0;
    for (; *text; text++)
        n += *text == '\n';
    return n;
}

static void
test_limit_flood(void **state)
{
    (void)state;
    es_log_set_level(ES_LOG_INFO);
    es_log_limit_t lim = {.what = "command socket: dropped malformed messages"};
    int saved;
    FILE *tmp = s_stderr_begin(&saved);
    //  10,000 in one second: the burst is allowed, the rest only counted.
    size_t allowed = 0;
    for (int i = 0; i < 10000; i++)
        allowed += es_log_limit_allow(&lim, 5000 + i / 10);
    assert_int_equal(allowed, ES_LOG_LIMIT_BURST);
    assert_int_equal(lim.suppressed, 10000 - ES_LOG_LIMIT_BURST);
    //  Nothing to say before the window ends; then one summary with the count, once.
    assert_int_equal(es_log_limit_flush(&lim, 5000 + ES_LOG_LIMIT_WINDOW_MS - 1), 0);
    assert_int_equal(es_log_limit_flush(&lim, 5000 + ES_LOG_LIMIT_WINDOW_MS),
                     10000 - ES_LOG_LIMIT_BURST);
    assert_int_equal(es_log_limit_flush(&lim, 5000 + 3 * ES_LOG_LIMIT_WINDOW_MS), 0);
    //  A new window: the burst is allowed again.
    assert_true(es_log_limit_allow(&lim, 60000));
    assert_int_equal(lim.logged, 1);
    assert_int_equal(lim.suppressed, 0);
    char *text = s_stderr_end(saved, tmp);
    assert_int_equal(s_lines(text), 1);
    assert_non_null(strstr(text, "W "));
    assert_non_null(strstr(text, "command socket: dropped malformed messages: 9990 more in the "
                                 "last 10 s (the first 10 logged one by one)\n"));
    free(text);
}

static void
test_limit_quiet(void **state)
{
    (void)state;
    es_log_limit_t lim = {.what = "x"};
    int saved;
    FILE *tmp = s_stderr_begin(&saved);
    //  A few at a time, never over the burst: every one is logged, no summary line.
    for (int w = 0; w < 3; w++)
        for (int i = 0; i < ES_LOG_LIMIT_BURST; i++)
            assert_true(es_log_limit_allow(&lim, 1000 + w * ES_LOG_LIMIT_WINDOW_MS + i));
    assert_int_equal(es_log_limit_flush(&lim, 1000 + 10 * ES_LOG_LIMIT_WINDOW_MS), 0);
    //  An occurrence after an expired window with suppressed ones summarises them first.
    for (int i = 0; i < ES_LOG_LIMIT_BURST + 3; i++)
        (void)es_log_limit_allow(&lim, 200000);
    assert_true(es_log_limit_allow(&lim, 200000 + ES_LOG_LIMIT_WINDOW_MS));
    //  A clock that starts at 0 still opens a window.
    es_log_limit_t zero = {.what = "y"};
    for (int i = 0; i < ES_LOG_LIMIT_BURST; i++)
        assert_true(es_log_limit_allow(&zero, 0));
    assert_false(es_log_limit_allow(&zero, 0));
    char *text = s_stderr_end(saved, tmp);
    assert_int_equal(s_lines(text), 1);
    assert_non_null(strstr(text, "x: 3 more in the last 10 s"));
    free(text);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_limit_flood),
        cmocka_unit_test(test_limit_quiet),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
