//  test_es_odata - the OData $filter subset: evaluation table, error table with exact texts,
//  every prefix of a complex filter, bounds, and evaluation against MessagePack records.
#include "common/es_mem.h"
#include "protocol/es_meta.h"
#include "protocol/es_odata.h"
#include "protocol/es_record.h"
#include <math.h>
#include <msgpack.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

static const char s_meta_json[] = "{\"name\":\"Svc\",\"version\":\"1.0\",\"objects\":["
                                  "{\"name\":\"Customer\",\"key\":[\"Id\"],\"fields\":["
                                  "{\"name\":\"Id\",\"datatype\":\"int\",\"nullable\":false},"
                                  "{\"name\":\"Name\",\"datatype\":\"string\"},"
                                  "{\"name\":\"Age\",\"datatype\":\"int\"},"
                                  "{\"name\":\"Score\",\"datatype\":\"number\"},"
                                  "{\"name\":\"Active\",\"datatype\":\"boolean\"},"
                                  "{\"name\":\"Born\",\"datatype\":\"date\"},"
                                  "{\"name\":\"Updated\",\"datatype\":\"datetime\"},"
                                  "{\"name\":\"City\",\"datatype\":\"string\"},"
                                  "{\"name\":\"Note\",\"datatype\":\"string\"}]},"
                                  "{\"name\":\"Item\",\"key\":[\"Id\"],\"fields\":["
                                  "{\"name\":\"Id\",\"datatype\":\"int\"},"
                                  "{\"name\":\"length\",\"datatype\":\"int\"}]}]}";

//  ---------------------------------------------------------------------------------------------
//  Records for the getter: a fixed list of (column, value); a column not listed is absent.

typedef struct {
    const char *name;
    es_value_t v;
} col_t;

typedef struct {
    col_t cols[10];
} rec_t;

#define VI(x)                                                                                      \
    {                                                                                              \
        .type = ES_V_INT, .u.i = (x)                                                               \
    }
#define VD(x)                                                                                      \
    {                                                                                              \
        .type = ES_V_DOUBLE, .u.d = (x)                                                            \
    }
#define VB(x)                                                                                      \
    {                                                                                              \
        .type = ES_V_BOOL, .u.b = (x)                                                              \
    }
#define VS(x)                                                                                      \
    {                                                                                              \
        .type = ES_V_STR, .u.s = {(x), sizeof(x) - 1 }                                             \
    }
#define VN                                                                                         \
    {                                                                                              \
        .type = ES_V_NULL                                                                          \
    }

static rec_t s_recs[5];

static void
s_init_records(void)
{
    rec_t r0 = {{{"Id", VI(1)},
                 {"Name", VS("Alice")},
                 {"Age", VI(30)},
                 {"Score", VD(4.5)},
                 {"Active", VB(true)},
                 {"Born", VS("1994-03-15")},
                 {"Updated", VS("2024-01-31T10:00:00Z")},
                 {"City", VS("Paris")},
                 {"Note", VS("it's")}}};
    //  Score holds an integer in a number column; City is an explicit null; Note is absent.
    rec_t r1 = {{{"Id", VI(2)},
                 {"Name", VS("bob")},
                 {"Age", VI(17)},
                 {"Score", VI(3)},
                 {"Active", VB(false)},
                 {"Born", VS("2007-12-01")},
                 {"Updated", VS("2024-02-01T08:30:00.123+01:00")},
                 {"City", VN}}};
    //  UTF-8, INT64_MAX, an empty string; Active, Born, Updated absent.
    rec_t r2 = {{{"Id", VI(3)},
                 {"Name", VS("Zo\xc3\xab \xc3\x9cnal")},
                 {"Age", VI(INT64_MAX)},
                 {"Score", VD(-0.5)},
                 {"City", VS("\xc3\x9cnterstadt")},
                 {"Note", VS("")}}};
    //  A quote in a value, a null int, NaN.
    rec_t r3 = {{{"Id", VI(-4)},
                 {"Name", VS("O'Brien")},
                 {"Age", VN},
                 {"Score", VD(NAN)},
                 {"Active", VB(true)},
                 {"Born", VS("2024-02-29")},
                 {"Updated", VS("2024-01-31T10:00:00.5Z")},
                 {"City", VS("paris")},
                 {"Note", VS("50% off_ (x)")}}};
    //  Columns holding values of the wrong type (a broken backend): compared as they are.
    rec_t r4 = {{{"Id", VS("5")}, {"Name", VI(5)}, {"Active", VS("true")}, {"Age", VD(30.0)}}};
    s_recs[0] = r0;
    s_recs[1] = r1;
    s_recs[2] = r2;
    s_recs[3] = r3;
    s_recs[4] = r4;
}

static int
s_get(void *ctx, const char *column, es_value_t *out)
{
    const rec_t *r = ctx;
    for (size_t i = 0; i < sizeof r->cols / sizeof r->cols[0] && r->cols[i].name; i++)
        if (strcmp(r->cols[i].name, column) == 0) {
            *out = r->cols[i].v;
            return 1;
        }
    return 0;
}

typedef struct {
    es_meta_t *meta;
    const es_meta_object_t *customer;
    const es_meta_object_t *item;
} fixture_t;

static int
s_setup(void **state)
{
    es_err_t err;
    fixture_t *f = es_calloc(1, sizeof *f);
    f->meta = es_meta_new(s_meta_json, strlen(s_meta_json), &err);
    if (!f->meta) {
        fprintf(stderr, "es_meta_new: %s\n", err.what);
        free(f);
        return -1;
    }
    f->customer = es_meta_object(f->meta, "Customer");
    f->item = es_meta_object(f->meta, "Item");
    if (!f->customer || !f->item)
        return -1;
    s_init_records();
    *state = f;
    return 0;
}

static int
s_teardown(void **state)
{
    fixture_t *f = *state;
    es_meta_destroy(&f->meta);
    free(f);
    return 0;
}

//  ---------------------------------------------------------------------------------------------
//  Evaluation table

typedef struct {
    const char *filter;
    int rec;
    bool expect;
} match_case_t;

static const match_case_t s_matches[] = {
    //  integers
    {"Id eq 1", 0, true},
    {"Id eq 1", 1, false},
    {"Id ne 1", 1, true},
    {"Id ne 1", 0, false},
    {"Age gt 17", 0, true},
    {"Age gt 17", 1, false},
    {"Age ge 17", 1, true},
    {"Age ge 18", 1, false},
    {"Age lt 18", 1, true},
    {"Age lt 17", 1, false},
    {"Age le 17", 1, true},
    {"Age le 16", 1, false},
    {"Id eq -4", 3, true},
    {"Id lt 0", 3, true},
    {"-4 eq Id", 3, true},
    {"1 eq 1", 0, true},
    {"1 eq 2", 0, false},
    {"Age eq 9223372036854775807", 2, true},
    {"Age gt 9223372036854775806", 2, true},
    {"Age eq -9223372036854775808", 2, false},
    //  integers against decimals, exactly (INT64_MAX is not 2^63 though (double) says so)
    {"Score eq 4.5", 0, true},
    {"Score gt 4", 0, true},
    {"Score lt 4.51", 0, true},
    {"Score eq 3", 1, true},
    {"Score eq 3.0", 1, true},
    {"Score ge 3.0", 1, true},
    {"Score gt 3.0", 1, false},
    {"Score gt 2.999", 1, true},
    {"Score lt 3.001", 1, true},
    {"Score eq 3.5", 1, false},
    {"Age lt 9.3e18", 2, true},
    {"Age eq 9.223372036854775807e18", 2, false},
    {"Age lt 9.223372036854775807e18", 2, true},
    {"Age lt 1E300", 2, true},
    {"Age gt -1e300", 2, true},
    {"Score eq -0.5", 2, true},
    {"Score lt 0", 2, true},
    {"Score gt -1", 2, true},
    {"Score eq 1", 3, false},
    {"Score ne 1", 3, true},
    {"Score lt 1", 3, false},
    {"Score gt 1", 3, false},
    {"Score ge 1.5", 3, false},
    {"Score le 1.5", 3, false},
    //  strings, byte-wise
    {"Name eq 'Alice'", 0, true},
    {"Name eq 'Alice'", 1, false},
    {"Name ne 'Alice'", 1, true},
    {"Name eq 'alice'", 0, false},
    {"Name gt 'Al'", 0, true},
    {"Name lt 'Alicf'", 0, true},
    {"Name gt 'Alice'", 0, false},
    {"Name ge 'Alice'", 0, true},
    {"Name le 'Alice'", 0, true},
    {"Name lt 'Alice'", 0, false},
    {"Name lt 'a'", 0, true},
    {"Name gt 'Zz'", 2, false},
    {"Name gt 'Zo'", 2, true},
    {"City gt 'Z'", 2, true},
    {"City eq '\xc3\x9cnterstadt'", 2, true},
    {"Name eq 'Zo\xc3\xab \xc3\x9cnal'", 2, true},
    //  escapes
    {"Note eq 'it''s'", 0, true},
    {"Note eq 'its'", 0, false},
    {"Name eq 'O''Brien'", 3, true},
    {"Note eq ''", 2, true},
    {"Note eq ''''", 2, false},
    {"Note eq '50% off_ (x)'", 3, true},
    {"Name eq 'Alice and Id eq 2'", 0, false},
    //  null: absent and explicit
    {"Note eq 'it''s'", 1, false},
    {"Note eq null", 1, true},
    {"Note ne null", 1, false},
    {"null eq Note", 1, true},
    {"Note eq null", 2, false},
    {"City eq null", 1, true},
    {"City ne null", 0, true},
    {"City ne 'Paris'", 1, true},
    {"null eq null", 0, true},
    {"null ne null", 0, false},
    {"City gt 'A'", 1, false},
    {"City lt 'A'", 1, false},
    {"City ge null", 1, false},
    {"City le null", 1, false},
    {"null ge null", 0, false},
    {"null le null", 0, false},
    {"Age gt 0", 3, false},
    {"Age lt 0", 3, false},
    {"Age eq 0", 3, false},
    {"Age eq null", 3, true},
    //  type mismatches are false (ne is the negation of eq)
    {"Name eq 1", 0, false},
    {"Name ne 1", 0, true},
    {"Name gt 1", 0, false},
    {"Name lt 1", 0, false},
    {"Age eq '30'", 0, false},
    {"Age gt '1'", 0, false},
    {"Active eq 1", 0, false},
    {"Active eq 'true'", 0, false},
    {"Id eq 5", 4, false},
    {"Id eq '5'", 4, true},
    {"Name eq 5", 4, true},
    {"Active", 4, false},
    {"Age eq 30", 4, true},
    //  booleans: eq/ne only
    {"Active eq true", 0, true},
    {"Active eq true", 1, false},
    {"Active eq false", 1, true},
    {"Active ne true", 1, true},
    {"Active gt false", 0, false},
    {"Active ge true", 0, false},
    {"Active le true", 0, false},
    {"Active", 0, true},
    {"Active", 1, false},
    {"Active", 2, false},
    {"Active eq null", 2, true},
    {"not Active", 1, true},
    {"not Active", 2, true},
    {"true", 0, true},
    {"false", 0, false},
    {"not false", 0, true},
    {"true eq true", 0, true},
    {"true ne false", 0, true},
    {"(Age gt 18) eq true", 0, true},
    {"(Age gt 18) eq Active", 1, true},
    {"(Age gt 18) ne Active", 1, false},
    //  not binds tighter than eq: (not Active) eq false
    {"not Active eq false", 0, true},
    {"not Active eq false", 1, false},
    //  dates and date-times compare as text
    {"Born eq 1994-03-15", 0, true},
    {"Born eq '1994-03-15'", 0, true},
    {"Born ne 1994-03-15", 0, false},
    {"Born lt 2000-01-01", 0, true},
    {"Born lt 2000-01-01", 1, false},
    {"Born gt 2000-01-01", 1, true},
    {"Born ge 2024-02-29", 3, true},
    {"Born eq null", 2, true},
    {"Born lt 2000-01-01", 2, false},
    {"Born in (1994-03-15, 2007-12-01)", 1, true},
    {"Updated eq 2024-01-31T10:00:00Z", 0, true},
    {"Updated gt 2024-01-31", 0, true},
    {"Updated lt 2024-02-01T00:00:00-05:00", 0, true},
    {"Updated ge 2024-02-01T08:30:00.123+01:00", 1, true},
    {"Updated eq 2024-02-01T08:30:00.123+01:00", 1, true},
    {"Updated gt 2024-02-01T08:30:00.1234+01:00", 1, false},
    {"Updated eq 2024-01-31T10:00:00", 0, false},
    {"Updated lt 2024-01-31T10:00:00Z", 3, true},
    {"Updated gt 2023-12-31T23:59:59.999999999Z", 0, true},
    //  and, or, not, precedence, parentheses
    {"Id eq 1 and Age eq 30", 0, true},
    {"Id eq 1 and Age eq 31", 0, false},
    {"Id eq 1 or Id eq 2", 1, true},
    {"Id eq 5 or Id eq 6", 1, false},
    {"Id eq 1 or Id eq 2 and Age eq 99", 0, true},
    {"(Id eq 1 or Id eq 2) and Age eq 99", 0, false},
    {"Id eq 2 and Age eq 17 or Name eq 'Alice'", 0, true},
    {"Id eq 2 and (Age eq 17 or Name eq 'Alice')", 0, false},
    {"Id eq 9 or Id eq 8 or Id eq 7 or Id eq 3", 2, true},
    {"Id gt 0 and Id lt 10 and Name ne null and Age ge 0", 2, true},
    {"Id gt 0 and Id lt 10 and Name eq null and Age ge 0", 2, false},
    {"not (Id eq 1)", 0, false},
    {"not (Id eq 1)", 1, true},
    {"not (Id eq 1 or Id eq 2)", 1, false},
    {"not (Id eq 1 or Id eq 2)", 2, true},
    {"not not Active", 0, true},
    {"not (not (Active))", 1, false},
    {"Active and Age gt 18", 0, true},
    {"Active or Id eq 2", 1, true},
    {"not Active and Id eq 2", 1, true},
    {"not Active or Id eq 1", 0, true},
    {"Id eq 1 and (Age eq 30 and (Name eq 'Alice' and (Active)))", 0, true},
    {"((((Id eq 1))))", 0, true},
    {"  Id\teq\r\n1  ", 0, true},
    {"(Id eq 1)and(Age eq 30)", 0, true},
    //  in
    {"Id in (1, 2, 3)", 0, true},
    {"Id in (1, 2, 3)", 2, true},
    {"Id in (1, 2, 3)", 3, false},
    {"Id in (-4)", 3, true},
    {"Name in ('bob','Alice')", 1, true},
    {"Name in ('bob','Alice')", 2, false},
    {"City in (null, 'Paris')", 1, true},
    {"City in (null, 'Paris')", 0, true},
    {"City in (null, 'Paris')", 2, false},
    {"Score in (4.5)", 0, true},
    {"Score in (3)", 1, true},
    {"Score in (3.0)", 1, true},
    {"Active in (true)", 0, true},
    {"Active in (true)", 2, false},
    {"Age in ('30', 30.5)", 0, false},
    {"tolower(Name) in ('alice')", 0, true},
    {"Id in (1,2) and Age lt 20", 1, true},
    {"not (Id in (1))", 1, true},
    {"(Id in (1)) eq false", 1, true},
    //  contains, startswith, endswith
    {"contains(Name,'lic')", 0, true},
    {"contains(Name,'LIC')", 0, false},
    {"contains(Name,'')", 0, true},
    {"contains(Name,'Alicee')", 0, false},
    {"contains(Name,'Alice')", 0, true},
    {"contains(City,'x')", 1, false},
    {"contains(Note,'')", 2, true},
    {"contains(Note,'x')", 1, false},
    {"contains(tolower(Name),'ali')", 0, true},
    {"contains(toupper(Name),'ALI')", 0, true},
    {"contains(Name, toupper('lic'))", 0, false},
    {"contains(toupper(Name), toupper('lic'))", 0, true},
    {"contains(tolower(Name), toupper('lic'))", 0, false},
    {"contains(Note,'% off_ (')", 3, true},
    {"contains(Note,'%')", 0, false},
    {"contains(Age,'3')", 0, false},
    {"contains ( Name , 'li' )", 0, true},
    {"not contains(Name,'li')", 0, false},
    {"not contains(Name,'li')", 1, true},
    {"contains(Name,'li') eq true", 0, true},
    {"startswith(Name,'Al')", 0, true},
    {"startswith(Name,'al')", 0, false},
    {"startswith(Name,'Alice')", 0, true},
    {"startswith(Name,'Alice!')", 0, false},
    {"startswith(Name,'')", 0, true},
    {"startswith(tolower(Name),'al')", 0, true},
    {"startswith(Name, Name)", 0, true},
    {"startswith(City,'P')", 1, false},
    {"startswith(Name,'Zo\xc3\xab')", 2, true},
    {"endswith(Name,'ce')", 0, true},
    {"endswith(Name,'Ce')", 0, false},
    {"endswith(toupper(Name),'CE')", 0, true},
    {"endswith(Name,'nal')", 2, true},
    {"endswith(Name,'xAlice')", 0, false},
    {"endswith(Note,'s')", 1, false},
    //  tolower, toupper: ASCII only
    {"tolower(Name) eq 'alice'", 0, true},
    {"toupper(Name) eq 'ALICE'", 0, true},
    {"tolower(Name) eq 'Alice'", 0, false},
    {"tolower(Name) eq tolower('ALICE')", 0, true},
    {"tolower('ALICE') eq tolower(Name)", 0, true},
    {"toupper(tolower(Name)) eq 'BOB'", 1, true},
    {"tolower(Name) eq 'zo\xc3\xab \xc3\x9cnal'", 2, true},
    {"tolower(Name) eq 'zo\xc3\xab \xc3\xbcnal'", 2, false},
    {"tolower(Name) gt 'alicd'", 0, true},
    {"tolower(Name) lt 'b'", 0, true},
    {"Name lt 'b'", 1, false},
    {"tolower(City) eq tolower(toupper('paris'))", 3, true},
    {"tolower(City) eq 'paris'", 1, false},
    {"tolower(City) eq null", 1, true},
    {"tolower(Age) eq null", 0, true},
    //  length counts UTF-8 characters
    {"length(Name) eq 5", 0, true},
    {"length(Name) eq 8", 2, true},
    {"length(Name) eq 10", 2, false},
    {"length(City) eq 10", 2, true},
    {"length(Note) eq 0", 2, true},
    {"length(City) eq null", 1, true},
    {"length(Note) gt 0", 1, false},
    {"length(Age) eq null", 0, true},
    {"length(tolower(Name)) eq 5", 0, true},
    {"length('abc') eq 3", 0, true},
    {"length('it''s') eq 4", 0, true},
    {"length(Name) gt length(Note)", 0, true},
    {"3 lt length(Name)", 0, true},
};

static void
test_match_table(void **state)
{
    fixture_t *f = *state;
    for (size_t i = 0; i < sizeof s_matches / sizeof s_matches[0]; i++) {
        const match_case_t *c = &s_matches[i];
        es_err_t err = {0};
        es_odata_t *q = es_odata_new(c->filter, f->customer, &err);
        if (!q)
            fail_msg("[%zu] %s: %s", i, c->filter, err.what);
        bool got = es_odata_match(q, s_get, &s_recs[c->rec]);
        if (got != c->expect)
            fail_msg("[%zu] %s on record %d: expected %d, got %d", i, c->filter, c->rec, c->expect,
                     got);
        es_odata_destroy(&q);
        assert_null(q);
    }
}

//  A column named like a function is a column unless a '(' follows.
static void
test_function_named_column(void **state)
{
    fixture_t *f = *state;
    es_value_t len3 = {.type = ES_V_INT, .u.i = 3};
    rec_t r = {{{"Id", VI(1)}, {"length", len3}}};
    const char *yes[] = {"length eq 3", "length ne 4", "length in (2, 3)"};
    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++) {
        es_err_t err;
        es_odata_t *q = es_odata_new(yes[i], f->item, &err);
        if (!q)
            fail_msg("%s: %s", yes[i], err.what);
        assert_true(es_odata_match(q, s_get, &r));
        es_odata_destroy(&q);
    }
    //  length(length): the function applied to the column; an int has no length (null).
    es_err_t err;
    es_odata_t *q = es_odata_new("length(length) eq null", f->item, &err);
    if (!q)
        fail_msg("%s", err.what);
    assert_true(es_odata_match(q, s_get, &r));
    es_odata_destroy(&q);
    assert_null(es_odata_new("length", f->item, &err));
    assert_string_equal(err.what,
                        "filter: position 7: expected a comparison operator, got end of input");
    assert_null(es_odata_new("length(Id", f->item, &err));
    assert_string_equal(err.what, "filter: position 10: expected ')', got end of input");
}

//  ---------------------------------------------------------------------------------------------
//  Errors: exact texts

typedef struct {
    const char *filter;
    const char *what;
} bad_case_t;

static const bad_case_t s_bad[] = {
    {"", "filter: position 1: expected an operand, got end of input"},
    {"   ", "filter: position 4: expected an operand, got end of input"},
    {"Nme eq 'x'", "filter: position 1: unknown column 'Nme'"},
    {"name eq 'x'", "filter: position 1: unknown column 'name'"},
    {"Id eq 1 and Nme eq 'x'", "filter: position 13: unknown column 'Nme'"},
    {"Name eq", "filter: position 8: expected an operand, got end of input"},
    {"Name", "filter: position 5: expected a comparison operator, got end of input"},
    {"Name foo 'x'", "filter: position 6: expected a comparison operator, got 'foo'"},
    {"Name == 'x'", "filter: position 6: expected a comparison operator, got '='"},
    {"Name EQ 'x'", "filter: position 6: expected a comparison operator, got 'EQ'"},
    {"Age", "filter: position 4: expected a comparison operator, got end of input"},
    {"null", "filter: position 5: expected a comparison operator, got end of input"},
    {"Id eq 1 and Age", "filter: position 16: expected a comparison operator, got end of input"},
    {"Id eq 1 and Age or Active", "filter: position 17: expected a comparison operator, got 'or'"},
    {"(Name eq 'x'", "filter: position 13: expected ')', got end of input"},
    {"((Id eq 1)", "filter: position 11: expected ')', got end of input"},
    {"(Id eq 1 Age eq 1)", "filter: position 10: expected ')', got 'Age'"},
    {"(Age) eq 1", "filter: position 5: expected a comparison operator, got ')'"},
    {"Name eq 'x')", "filter: position 12: expected end of input, got ')'"},
    {"Name eq 'x' Age eq 1", "filter: position 13: expected end of input, got 'Age'"},
    {"Id eq 1 eq 2", "filter: position 9: expected end of input, got 'eq'"},
    {"Name eq 'x' & Id eq 1", "filter: position 13: expected end of input, got '&'"},
    {"Name eq 'abc", "filter: position 9: unterminated string"},
    {"Name eq 'it''s", "filter: position 9: unterminated string"},
    {"Name eq '", "filter: position 9: unterminated string"},
    {"Name eq \"x\"", "filter: position 9: expected an operand, got '\"'"},
    {"Age eq 12abc", "filter: position 8: invalid number '12abc'"},
    {"Age eq 1.", "filter: position 8: invalid number '1.'"},
    {"Age eq 1.5.2", "filter: position 8: invalid number '1.5.2'"},
    {"Age eq 1e", "filter: position 8: invalid number '1e'"},
    {"Age eq 1e+", "filter: position 8: invalid number '1e+'"},
    {"Age eq 1e-x", "filter: position 8: invalid number '1e-x'"},
    {"Age eq 1e5x", "filter: position 8: invalid number '1e5x'"},
    {"Age eq 99999999999999999999",
     "filter: position 8: number out of range '99999999999999999999'"},
    {"Age eq -9223372036854775809",
     "filter: position 8: number out of range '-9223372036854775809'"},
    {"Age eq 1e999", "filter: position 8: number out of range '1e999'"},
    {"Age eq -", "filter: position 8: expected an operand, got '-'"},
    {"Age eq .5", "filter: position 8: expected an operand, got '.'"},
    {"Born eq 2024-13-01", "filter: position 9: invalid date '2024-13-01'"},
    {"Born eq 2024-00-10", "filter: position 9: invalid date '2024-00-10'"},
    {"Born eq 2024-04-31", "filter: position 9: invalid date '2024-04-31'"},
    {"Born eq 2023-02-29", "filter: position 9: invalid date '2023-02-29'"},
    {"Born eq 1900-02-29", "filter: position 9: invalid date '1900-02-29'"},
    {"Born eq 2024-1-31", "filter: position 9: invalid date '2024-1-31'"},
    {"Born eq 2024-01-3", "filter: position 9: invalid date '2024-01-3'"},
    {"Born eq 2024-01-31x", "filter: position 9: invalid date '2024-01-31x'"},
    {"Updated eq 2024-01-31T25:00:00Z",
     "filter: position 12: invalid date-time '2024-01-31T25:00:00Z'"},
    {"Updated eq 2024-01-31T10:60:00Z",
     "filter: position 12: invalid date-time '2024-01-31T10:60:00Z'"},
    {"Updated eq 2024-01-31T10:00Z", "filter: position 12: invalid date-time '2024-01-31T10:00Z'"},
    {"Updated eq 2024-01-31T10:00:00+1:00",
     "filter: position 12: invalid date-time '2024-01-31T10:00:00+1:00'"},
    {"Updated eq 2024-01-31T10:00:00.",
     "filter: position 12: invalid date-time '2024-01-31T10:00:00.'"},
    {"Updated eq 2024-01-31T10:00:00ZZ",
     "filter: position 12: invalid date-time '2024-01-31T10:00:00ZZ'"},
    {"Updated eq 2024-01-31T10:00:00+01:00:00",
     "filter: position 12: invalid date-time '2024-01-31T10:00:00+01:00:00'"},
    {"foo(Name)", "filter: position 1: unknown function 'foo'"},
    {"Name(1) eq 1", "filter: position 1: unknown function 'Name'"},
    {"substringof('a', Name)", "filter: position 1: unknown function 'substringof'"},
    {"Contains(Name,'a')", "filter: position 1: unknown function 'Contains'"},
    {"contains(Name)", "filter: position 14: expected ',', got ')'"},
    {"contains(Name,'a','b')", "filter: position 18: expected ')', got ','"},
    {"contains(Name,'a'", "filter: position 18: expected ')', got end of input"},
    {"contains()", "filter: position 10: expected an operand, got ')'"},
    {"contains", "filter: position 9: expected '(', got end of input"},
    {"length Name", "filter: position 8: expected '(', got 'Name'"},
    {"length(Name)", "filter: position 13: expected a comparison operator, got end of input"},
    {"tolower(Name)", "filter: position 14: expected a comparison operator, got end of input"},
    {"contains(Name,'a') eq", "filter: position 22: expected an operand, got end of input"},
    {"contains(Name eq 'a', 'b')", "filter: position 15: expected ',', got 'eq'"},
    {"Id in 1", "filter: position 7: expected '(', got '1'"},
    {"Id in", "filter: position 6: expected '(', got end of input"},
    {"Id in ()", "filter: position 8: expected a literal, got ')'"},
    {"Id in (1,)", "filter: position 10: expected a literal, got ')'"},
    {"Id in (1 2)", "filter: position 10: expected ',' or ')', got '2'"},
    {"Id in (Age)", "filter: position 8: expected a literal, got 'Age'"},
    {"Id in (1", "filter: position 9: expected ',' or ')', got end of input"},
    {"Id in ((1))", "filter: position 8: expected a literal, got '('"},
    {"not Name eq 'x'", "filter: position 5: expected a boolean operand after 'not', got 'Name'"},
    {"not Id in (1)", "filter: position 5: expected a boolean operand after 'not', got 'Id'"},
    {"not length(Name) eq 1",
     "filter: position 5: expected a boolean operand after 'not', got 'length'"},
    {"not", "filter: position 4: expected an operand, got end of input"},
    {"not not", "filter: position 8: expected an operand, got end of input"},
    {"Id eq 1 and", "filter: position 12: expected an operand, got end of input"},
    {"Id eq 1 or", "filter: position 11: expected an operand, got end of input"},
    {"Id eq 1 or or Id eq 2", "filter: position 12: expected an operand, got 'or'"},
    {"and Id eq 1", "filter: position 1: expected an operand, got 'and'"},
    {"Id eq eq", "filter: position 7: expected an operand, got 'eq'"},
    {"in (1)", "filter: position 1: expected an operand, got 'in'"},
    {"Id eq 1 and ()", "filter: position 14: expected an operand, got ')'"},
    {",", "filter: position 1: expected an operand, got ','"},
    {")", "filter: position 1: expected an operand, got ')'"},
    //  positions count characters, not bytes; non-ASCII and control bytes are quoted readably
    {"Name eq '\xc3\xa9' and Nme eq 1", "filter: position 17: unknown column 'Nme'"},
    {"Name eq 'x' \xc3\xbc", "filter: position 13: expected end of input, got '\xc3\xbc'"},
    {"Id eq 1\x01", "filter: position 8: expected end of input, got '\\x01'"},
    {"Id eq 1 #", "filter: position 9: expected end of input, got '#'"},
};

static void
test_bad_table(void **state)
{
    fixture_t *f = *state;
    for (size_t i = 0; i < sizeof s_bad / sizeof s_bad[0]; i++) {
        const bad_case_t *c = &s_bad[i];
        es_err_t err = {0};
        es_odata_t *q = es_odata_new(c->filter, f->customer, &err);
        if (q) {
            es_odata_destroy(&q);
            fail_msg("[%zu] %s: parsed, expected \"%s\"", i, c->filter, c->what);
        }
        if (err.code != ES_EINVAL || strcmp(err.what, c->what) != 0)
            fail_msg("[%zu] %s:\n  expected \"%s\"\n  got      \"%s\" (%d)", i, c->filter, c->what,
                     err.what, err.code);
    }
}

//  A NULL err is allowed (es_err_set accepts it).
static void
test_null_err(void **state)
{
    fixture_t *f = *state;
    assert_null(es_odata_new("Nme eq 1", f->customer, NULL));
    es_odata_t *none = NULL;
    es_odata_destroy(&none); //  safe on NULL, safe twice
    es_odata_destroy(&none);
    assert_null(none);
}

//  Long tokens are cut in messages; a long unknown name cannot overflow err.what.
static void
test_long_token(void **state)
{
    fixture_t *f = *state;
    char text[300];
    memset(text, 'a', 200);
    strcpy(text + 200, " eq 1");
    es_err_t err;
    assert_null(es_odata_new(text, f->customer, &err));
    assert_string_equal(
        err.what,
        "filter: position 1: unknown column 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa...'");
    memset(text, 0, sizeof text);
    strcpy(text, "Name eq 'x' ");
    memset(text + 12, 'b', 100);
    assert_null(es_odata_new(text, f->customer, &err));
    assert_string_equal(err.what, "filter: position 13: expected end of input, got "
                                  "'bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb...'");
}

//  ---------------------------------------------------------------------------------------------
//  Bounds

static void
test_text_length(void **state)
{
    fixture_t *f = *state;
    size_t max = 8192;
    char *text = es_malloc(max + 2);
    memset(text, ' ', max + 1);
    memcpy(text, "Id eq 1", 7);
    text[max] = '\0';
    es_err_t err;
    es_odata_t *q = es_odata_new(text, f->customer, &err);
    if (!q)
        fail_msg("%s", err.what);
    assert_true(es_odata_match(q, s_get, &s_recs[0]));
    es_odata_destroy(&q);

    text[max] = ' ';
    text[max + 1] = '\0';
    assert_null(es_odata_new(text, f->customer, &err));
    assert_int_equal(err.code, ES_EINVAL);
    assert_string_equal(err.what, "filter: longer than 8192 bytes");
    free(text);
}

static char *
s_nested(const char *open, int n, const char *inner, const char *close)
{
    size_t lo = strlen(open), li = strlen(inner), lc = strlen(close);
    char *s = es_malloc(n * (lo + lc) + li + 1), *p = s;
    for (int i = 0; i < n; i++, p += lo)
        memcpy(p, open, lo);
    memcpy(p, inner, li);
    p += li;
    for (int i = 0; i < n; i++, p += lc)
        memcpy(p, close, lc);
    *p = '\0';
    return s;
}

static void
test_depth(void **state)
{
    fixture_t *f = *state;
    es_err_t err;
    struct {
        const char *open, *inner, *close;
        int ok_at;             //  deepest accepted
        const char *err_at_65; //  error one deeper
        bool expect;           //  match on record 0 at ok_at
    } cases[] = {
        {"(", "Id eq 1", ")", 64, "filter: position 65: nesting deeper than 64 levels", true},
        {"not ", "Active", "", 64, "filter: position 257: nesting deeper than 64 levels", true},
        {"not (", "Active", ")", 32, "filter: position 161: nesting deeper than 64 levels", true},
        {"tolower(", "Name", ")", 64, "filter: position 513: nesting deeper than 64 levels", true},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *ok = s_nested(cases[i].open, cases[i].ok_at, cases[i].inner, cases[i].close);
        char *text = ok;
        //  tolower(...) needs a comparison around it to be a filter.
        if (strcmp(cases[i].inner, "Name") == 0) {
            text = es_sprintf("%s eq 'alice'", ok);
            free(ok);
        }
        es_odata_t *q = es_odata_new(text, f->customer, &err);
        if (!q)
            fail_msg("[%zu] depth %d: %s", i, cases[i].ok_at, err.what);
        assert_int_equal(es_odata_match(q, s_get, &s_recs[0]), cases[i].expect);
        es_odata_destroy(&q);
        free(text);

        char *deep = s_nested(cases[i].open, cases[i].ok_at + 1, cases[i].inner, cases[i].close);
        q = es_odata_new(deep, f->customer, &err);
        if (q)
            fail_msg("[%zu] depth %d accepted", i, cases[i].ok_at + 1);
        assert_int_equal(err.code, ES_EINVAL);
        assert_string_equal(err.what, cases[i].err_at_65);
        free(deep);
    }
}

//  and/or chains are flat: thousands of terms cost no recursion depth.
static void
test_long_chain(void **state)
{
    fixture_t *f = *state;
    es_buf_t b;
    es_buf_init(&b);
    int n = 0;
    while (b.len < 8000) {
        es_buf_printf(&b, "%sId eq %d", n ? " or " : "", 1000 + n);
        n++;
    }
    es_buf_puts(&b, " or Id eq 3");
    es_err_t err;
    es_odata_t *q = es_odata_new(b.data, f->customer, &err);
    if (!q)
        fail_msg("%s", err.what);
    assert_true(n > 500);
    assert_true(es_odata_match(q, s_get, &s_recs[2]));
    assert_false(es_odata_match(q, s_get, &s_recs[0]));
    es_odata_destroy(&q);
    es_buf_release(&b);
}

//  ---------------------------------------------------------------------------------------------
//  Every prefix of a complex filter parses or fails cleanly, with a position inside the text.

static size_t
s_chars(const char *s, size_t n)
{
    size_t c = 0;
    for (size_t i = 0; i < n; i++)
        if (((unsigned char)s[i] & 0xc0) != 0x80)
            c++;
    return c;
}

static void
test_prefixes(void **state)
{
    fixture_t *f = *state;
    static const char full[] =
        "(Id in (1, -2, 3.5e0, null) or startswith(tolower(Name), 'al''x\xc3\xa9')) and "
        "not (Born ge 2024-01-31 or Updated lt 2024-01-31T10:00:00.123+01:00) and "
        "length(City) le 10 or (Active eq true and contains(toupper(Note), 'IT''S')) or "
        "Score gt -0.5";
    size_t n = strlen(full);
    size_t parsed = 0, failed = 0;
    for (size_t len = 0; len <= n; len++) {
        char *text = es_strndup(full, len);
        es_err_t err = {0};
        es_odata_t *q = es_odata_new(text, f->customer, &err);
        if (q) {
            parsed++;
            for (size_t r = 0; r < sizeof s_recs / sizeof s_recs[0]; r++)
                (void)es_odata_match(q, s_get, &s_recs[r]); //  must not crash; value varies
            es_odata_destroy(&q);
        } else {
            failed++;
            assert_int_equal(err.code, ES_EINVAL);
            size_t pos;
            if (sscanf(err.what, "filter: position %zu: ", &pos) != 1)
                fail_msg("prefix %zu: %s", len, err.what);
            assert_true(pos >= 1 && pos <= s_chars(text, len) + 1);
        }
        free(text);
    }
    //  Complete prefixes: "(...)", "... and length(City) le 1" (and "le 10"), the full text
    //  ending in "-0" and "-0.5".
    assert_true(parsed >= 4);
    assert_int_equal(parsed + failed, n + 1);

    es_err_t err;
    es_odata_t *q = es_odata_new(full, f->customer, &err);
    if (!q)
        fail_msg("%s", err.what);
    //  rec 0: Id 1 -> first group true; Born 1994 < 2024 and Updated 2024-01-31T10:00:00Z is not
    //  < ...T10:00:00.123+01:00 ('Z' > '.') -> not (...) true; City 'Paris' 5 <= 10 -> true.
    assert_true(es_odata_match(q, s_get, &s_recs[0]));
    //  rec 1: Id 2 no; Name 'bob' no -> first and-group false; Active false; Score 3 > -0.5.
    assert_true(es_odata_match(q, s_get, &s_recs[1]));
    //  rec 3: Id -4, 'o''brien' no; Active true but Note '50% off_ (x)' lacks IT'S; Score NaN.
    assert_false(es_odata_match(q, s_get, &s_recs[3]));
    es_odata_destroy(&q);
}

//  ---------------------------------------------------------------------------------------------
//  es_odata_match_record on MessagePack records

static void
s_pack_str(msgpack_packer *pk, const char *s)
{
    size_t n = strlen(s);
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, s, n);
}

static void
test_match_record(void **state)
{
    fixture_t *f = *state;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 6);
    s_pack_str(&pk, "Id");
    msgpack_pack_int64(&pk, 7);
    s_pack_str(&pk, "Name");
    s_pack_str(&pk, "Grace");
    s_pack_str(&pk, "Score");
    msgpack_pack_double(&pk, 2.25);
    s_pack_str(&pk, "Active");
    msgpack_pack_true(&pk);
    s_pack_str(&pk, "City");
    msgpack_pack_nil(&pk);
    s_pack_str(&pk, "Born");
    s_pack_str(&pk, "2001-09-09");

    static const match_case_t cases[] = {
        {"Id eq 7", 0, true},
        {"Id eq 8", 0, false},
        {"Name eq 'Grace' and Active", 0, true},
        {"tolower(Name) eq 'grace'", 0, true},
        {"Score gt 2 and Score lt 2.5", 0, true},
        {"City eq null", 0, true},
        {"Note eq null", 0, true},
        {"Age gt 1", 0, false},
        {"Born lt 2001-09-10", 0, true},
        {"length(Name) eq 5", 0, true},
        {"not Active", 0, false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        es_err_t err;
        es_odata_t *q = es_odata_new(cases[i].filter, f->customer, &err);
        if (!q)
            fail_msg("%s: %s", cases[i].filter, err.what);
        if (es_odata_match_record(q, sb.data, sb.size) != cases[i].expect)
            fail_msg("[%zu] %s: expected %d", i, cases[i].filter, cases[i].expect);
        //  A truncated record either yields the columns read before the cut or is found
        //  malformed (no match); it never makes a match the whole record would not.
        for (size_t cut = 0; cut < sb.size; cut++) {
            bool m = es_odata_match_record(q, sb.data, cut);
            if (m && !cases[i].expect)
                fail_msg("[%zu] %s matched a record cut at %zu", i, cases[i].filter, cut);
            //  Note is absent: finding that needs the whole map, so every cut is malformed.
            if (m && strcmp(cases[i].filter, "Note eq null") == 0)
                fail_msg("[%zu] %s matched a record cut at %zu", i, cases[i].filter, cut);
        }
        es_odata_destroy(&q);
    }
    //  Not a map at all.
    es_err_t err;
    es_odata_t *q = es_odata_new("Note eq null", f->customer, &err);
    assert_non_null(q);
    static const char not_map[] = "\x93\x01\x02\x03";
    assert_false(es_odata_match_record(q, not_map, sizeof not_map - 1));
    assert_false(es_odata_match_record(q, "", 0));
    es_odata_destroy(&q);
    msgpack_sbuffer_destroy(&sb);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_match_table), cmocka_unit_test(test_function_named_column),
        cmocka_unit_test(test_bad_table),   cmocka_unit_test(test_null_err),
        cmocka_unit_test(test_long_token),  cmocka_unit_test(test_text_length),
        cmocka_unit_test(test_depth),       cmocka_unit_test(test_long_chain),
        cmocka_unit_test(test_prefixes),    cmocka_unit_test(test_match_record),
    };
    return cmocka_run_group_tests(tests, s_setup, s_teardown);
}
