//  Unit tests of the reference server's request body reading (srv_json): numbers classified as
//  yajl's tree does (checked against the tree itself, token by token), the nesting bound of 64
//  levels and its error text, and which error wins when a body has more than one problem.
//  cmocka needs these first.
// clang-format off
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
// clang-format on

#include "common/es_buf.h"
#include "common/es_mem.h"
#include "server/srv.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

//  What yajl_tree_parse makes of token: 0 int, 1 double, -1 neither (value in *v).
static int
s_tree_kind(const char *token, es_value_t *v)
{
    char text[600], ebuf[128];
    snprintf(text, sizeof text, "[%s]", token);
    yajl_val root = yajl_tree_parse(text, ebuf, sizeof ebuf);
    assert_non_null(root);
    yajl_val n = root->u.array.values[0];
    int kind = YAJL_IS_INTEGER(n) ? 0 : YAJL_IS_DOUBLE(n) ? 1 : -1;
    if (kind == 0)
        v->u.i = YAJL_GET_INTEGER(n);
    if (kind == 1)
        v->u.d = YAJL_GET_DOUBLE(n);
    yajl_tree_free(root);
    return kind;
}

static void
s_check_number(const char *token)
{
    es_value_t want, got;
    int kind = s_tree_kind(token, &want);
    int rc = srv_json_number(token, strlen(token), &got);
    if (kind < 0) {
        assert_int_equal(rc, -1);
        return;
    }
    assert_int_equal(rc, 0);
    assert_int_equal(got.type, kind == 0 ? ES_V_INT : ES_V_DOUBLE);
    if (kind == 0)
        assert_true(got.u.i == want.u.i);
    else
        assert_memory_equal(&got.u.d, &want.u.d, sizeof got.u.d);
}

static void
test_numbers_as_the_tree(void **state)
{
    (void)state;
    static const char *tokens[] = {
        "0",
        "-0",
        "1",
        "-1",
        "7",
        "123456789012345678",
        "922337203685477580",
        "9223372036854775806",
        "9223372036854775807",
        "9223372036854775808",
        "9223372036854775810",
        "9223372036854775879",
        "-9223372036854775807",
        "-9223372036854775808",
        "-9223372036854775809",
        "10000000000000000000",
        "99999999999999999999",
        "1.5",
        "-1.5",
        "0.25",
        "1e2",
        "1E2",
        "1e+2",
        "1e-2",
        "-0.0",
        "1e308",
        "1e309",
        "1e999",
        "-1e999",
        "1e-300",
        "1e-400",
        "-1e-400",
        "5e-324",
        "2.2250738585072014e-308",
        "0.30000000000000004",
        "1.7976931348623157e308",
        "123456789012345678901234567890",
        "-123456789012345678901234567890.5",
    };
    for (size_t i = 0; i < sizeof tokens / sizeof tokens[0]; i++)
        s_check_number(tokens[i]);
    //  A long token takes the heap copy for strtod.
    char big[400];
    memset(big, '9', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    s_check_number(big);
    big[200] = '.';
    s_check_number(big);
    //  Random integers and decimals of every length.
    srand(7);
    for (int i = 0; i < 3000; i++) {
        char t[64];
        int n = 1 + rand() % 24, k = 0;
        if (rand() % 2)
            t[k++] = '-';
        t[k++] = (char)('1' + rand() % 9);
        for (int j = 1; j < n; j++)
            t[k++] = (char)('0' + rand() % 10);
        if (rand() % 3 == 0) {
            t[k++] = '.';
            t[k++] = (char)('0' + rand() % 10);
        }
        if (rand() % 4 == 0)
            k += snprintf(t + k, sizeof t - (size_t)k, "e%d", rand() % 700 - 350);
        t[k] = '\0';
        s_check_number(t);
    }
}

static char *
s_nest(const char *head, int levels, const char *tail)
{
    es_buf_t b;
    es_buf_init(&b);
    es_buf_puts(&b, head);
    for (int i = 0; i < levels; i++)
        es_buf_putc(&b, '[');
    es_buf_puts(&b, tail);
    for (int i = 0; i < levels; i++)
        es_buf_putc(&b, ']');
    es_buf_putc(&b, '}');
    return es_buf_steal(&b);
}

static void
test_depth_bound(void **state)
{
    (void)state;
    es_err_t err;
    //  The root object is level 1: 63 arrays inside it make 64 levels, one more is refused.
    char *ok = s_nest("{\"a\":", 63, "1");
    yajl_val root = srv_json_parse(ok, strlen(ok), &err);
    assert_non_null(root);
    yajl_tree_free(root);
    free(ok);
    char *deep = s_nest("{\"a\":", 64, "1");
    assert_null(srv_json_parse(deep, strlen(deep), &err));
    assert_int_equal(err.code, ES_EINVAL);
    assert_string_equal(err.what, SRV_JSON_DEPTH_MSG);
    assert_string_equal(err.what, "body: nested deeper than 64 levels");
    free(deep);
    //  Objects count as levels too.
    es_buf_t b;
    es_buf_init(&b);
    for (int i = 0; i < 65; i++)
        es_buf_puts(&b, "{\"k\":");
    es_buf_puts(&b, "1");
    for (int i = 0; i < 65; i++)
        es_buf_putc(&b, '}');
    assert_null(srv_json_parse(b.data, b.len, &err));
    assert_string_equal(err.what, SRV_JSON_DEPTH_MSG);
    //  Far too deep for a recursive free: refused without building anything.
    es_buf_reset(&b);
    for (int i = 0; i < 1000000; i++)
        es_buf_putc(&b, '[');
    for (int i = 0; i < 1000000; i++)
        es_buf_putc(&b, ']');
    assert_null(srv_json_parse(b.data, b.len, &err));
    assert_string_equal(err.what, SRV_JSON_DEPTH_MSG);
    es_buf_release(&b);
}

static void
test_first_problem_wins(void **state)
{
    (void)state;
    es_err_t err;
    //  A syntax error before the 65th level is reported as the syntax error.
    char *bad = s_nest("{\"a\":1,,\"b\":", 70, "1");
    assert_null(srv_json_parse(bad, strlen(bad), &err));
    assert_string_equal(err.what,
                        "malformed JSON body: parse error: invalid object key (must be a string)");
    free(bad);
    //  Too deep before a later syntax error: the depth.
    char *late = s_nest("{\"a\":", 64, "x"); //  the 'x' comes after the 65th level
    assert_null(srv_json_parse(late, strlen(late), &err));
    assert_string_equal(err.what, SRV_JSON_DEPTH_MSG);
    free(late);
    late = s_nest("{\"a\":", 63, "x"); //  not too deep: the 'x' is the problem
    assert_null(srv_json_parse(late, strlen(late), &err));
    assert_string_equal(err.what, "malformed JSON body: lexical error: invalid char in json text.");
    free(late);
    //  The texts that were there before the bound stay as they were.
    assert_null(srv_json_parse("[1]", 3, &err));
    assert_string_equal(err.what, "body: expected a JSON object");
    assert_null(srv_json_parse("{\"a\":1", 6, &err));
    assert_string_equal(err.what, "malformed JSON body: parse error: premature EOF");
    assert_null(srv_json_parse("{\"a\"\0:1}", 8, &err));
    assert_string_equal(err.what, "malformed JSON body: contains a NUL byte");
    yajl_val root = srv_json_parse(" \n\t", 3, &err);
    assert_non_null(root);
    assert_true(YAJL_IS_OBJECT(root) && root->u.object.len == 0);
    yajl_tree_free(root);
    //  Comments stay allowed, as yajl_tree_parse allows them.
    root = srv_json_parse("/* c */ {\"a\": [1] } // e", 24, &err);
    assert_non_null(root);
    yajl_tree_free(root);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_numbers_as_the_tree),
        cmocka_unit_test(test_depth_bound),
        cmocka_unit_test(test_first_problem_wins),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
