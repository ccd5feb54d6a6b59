//  test_es_vmx - Volt MX generic error messages and the "<generic>: <details>" form.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "common/es_mem.h"
#include "protocol/es_vmx.h"
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

//  The codes SPEC 4.5 gives a fixed text for, with that text.
static const struct {
    int code;
    const char *message;
} s_known[] = {
    {2000, "DB generic error"},
    {2030, "An error occurred in the network layer"},
    {2031, "Network call failed due to connection timeout"},
    {2032, "Network call failed due to socket connection timeout"},
    {2037, "Network response is either null or invalid JSON"},
    {2038, "Server responded with error opstatus"},
    {2039, "The url used is invalid"},
    {2044, "The upload request is already in progress"},
    {2460, "An error has occurred in the sync layer"},
    {2461, "Sync is currently in progress for this object or object service"},
    {2472, "Filters applied to the current sync operation are invalid"},
    {2473, "Sync upload failed with an error"},
    {2474, "Sync download failed with an error"},
    {2476, "Pending sync requests failed with an error"},
    {2478, "Syncing operation has been cancelled"},
    {2479, "Sync cancellation failed"},
    {2482, "Application sync options provided are invalid."},
    {2483, "Setup is not performed. There are no object services to sync."},
};
#define NKNOWN (sizeof s_known / sizeof s_known[0])

static void
test_message_known(void **state)
{
    (void)state;
    for (size_t i = 0; i < NKNOWN; i++) {
        const char *m = es_vmx_message(s_known[i].code);
        if (!m)
            fail_msg("%d: no message", s_known[i].code);
        assert_string_equal(m, s_known[i].message);
        //  Borrowed and stable: the same pointer every time.
        assert_ptr_equal(es_vmx_message(s_known[i].code), m);
    }
}

static void
test_message_unknown(void **state)
{
    (void)state;
    static const int unknown[] = {0,    -1,   1,    1999, 2001,   2029,    2040,
                                  2475, 2484, 2999, 3000, 500100, INT_MIN, INT_MAX};
    for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++)
        if (es_vmx_message(unknown[i]))
            fail_msg("%d: unexpected message %s", unknown[i], es_vmx_message(unknown[i]));
    //  Across the whole Volt MX range every text is non-empty, distinct, and has no separator
    //  of its own (format adds it).
    const char *seen[1000];
    size_t n = 0;
    for (int code = 2000; code < 3000; code++) {
        const char *m = es_vmx_message(code);
        if (!m)
            continue;
        assert_true(*m);
        assert_null(strstr(m, ": "));
        assert_int_not_equal(m[strlen(m) - 1], ' ');
        for (size_t k = 0; k < n; k++)
            if (strcmp(seen[k], m) == 0)
                fail_msg("%d: text repeated: %s", code, m);
        seen[n++] = m;
    }
    assert_true(n >= NKNOWN);
}

static void
s_expect(int code, const char *details, const char *expect)
{
    char *got = es_vmx_format(code, details);
    assert_non_null(got);
    if (strcmp(got, expect) != 0)
        fail_msg("format(%d, \"%s\"): got \"%s\", expected \"%s\"", code,
                 details ? details : "(null)", got, expect);
    //  A new string each time, never the details or the table's text.
    assert_ptr_not_equal(got, details);
    assert_ptr_not_equal(got, es_vmx_message(code));
    free(got);
}

static void
test_format_known(void **state)
{
    (void)state;
    s_expect(2474, "HTTP 500", "Sync download failed with an error: HTTP 500");
    s_expect(2030, "connection refused",
             "An error occurred in the network layer: connection refused");
    //  Every known code: "<generic>: <details>".
    for (size_t i = 0; i < NKNOWN; i++) {
        char *expect = es_sprintf("%s: d \"q\"", s_known[i].message);
        s_expect(s_known[i].code, "d \"q\"", expect);
        free(expect);
    }
    //  Details are text, not a format.
    s_expect(2474, "100%s %d%n", "Sync download failed with an error: 100%s %d%n");
    //  Multi-line and non-ASCII details are kept byte for byte.
    s_expect(2038, "line 1\nline 2 caf\xC3\xA9",
             "Server responded with error opstatus: line 1\nline 2 caf\xC3\xA9");
    //  Long details are not cut.
    size_t len = 100000;
    char *big = es_malloc(len + 1);
    memset(big, 'z', len);
    big[len] = '\0';
    char *got = es_vmx_format(2474, big);
    const char *g = "Sync download failed with an error: ";
    assert_int_equal(strlen(got), strlen(g) + len);
    assert_int_equal(strncmp(got, g, strlen(g)), 0);
    assert_int_equal(memcmp(got + strlen(g), big, len), 0);
    free(got);
    free(big);
}

static void
test_format_already_generic(void **state)
{
    (void)state;
    //  Details that already start with the generic text are not prefixed twice.
    s_expect(2474, "Sync download failed with an error: HTTP 500",
             "Sync download failed with an error: HTTP 500");
    s_expect(2474, "Sync download failed with an error", "Sync download failed with an error");
    s_expect(2478, "Syncing operation has been cancelled", "Syncing operation has been cancelled");
    //  Only a whole, same-case generic text counts as the prefix.
    s_expect(2474, "Sync download failed",
             "Sync download failed with an error: Sync download failed");
    s_expect(2474, "sync download failed with an error: x",
             "Sync download failed with an error: sync download failed with an error: x");
    s_expect(2474, " Sync download failed with an error",
             "Sync download failed with an error:  Sync download failed with an error");
    //  Another code's generic text is just details.
    s_expect(2474, "An error occurred in the network layer: x",
             "Sync download failed with an error: An error occurred in the network layer: x");
}

static void
test_format_empty(void **state)
{
    (void)state;
    //  Empty or no details: the generic message alone.
    for (size_t i = 0; i < NKNOWN; i++) {
        s_expect(s_known[i].code, "", s_known[i].message);
        s_expect(s_known[i].code, NULL, s_known[i].message);
    }
}

static void
test_format_unknown(void **state)
{
    (void)state;
    //  No generic text: the details as they are, or a fallback when there are none.
    s_expect(2999, "odd failure", "odd failure");
    s_expect(0, "x: y", "x: y");
    s_expect(-1, "boom", "boom");
    s_expect(2999, "", "sync failed");
    s_expect(2999, NULL, "sync failed");
    s_expect(INT_MIN, NULL, "sync failed");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_message_known), cmocka_unit_test(test_message_unknown),
        cmocka_unit_test(test_format_known),  cmocka_unit_test(test_format_already_generic),
        cmocka_unit_test(test_format_empty),  cmocka_unit_test(test_format_unknown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
