//  test_es_record - record builder type rules, JSON in/out, lookup, and malformed input.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "common/es_mem.h"
#include "protocol/es_record.h"
#include <math.h>
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *s_doc =
    "{\"name\":\"S\",\"objects\":[{\"name\":\"Item\",\"key\":[\"id\"],\"fields\":["
    "{\"name\":\"id\",\"datatype\":\"int\"},"
    "{\"name\":\"name\",\"datatype\":\"string\",\"length\":5},"
    "{\"name\":\"price\",\"datatype\":\"number\"},"
    "{\"name\":\"ok\",\"datatype\":\"boolean\"},"
    "{\"name\":\"day\",\"datatype\":\"date\"},"
    "{\"name\":\"at\",\"datatype\":\"datetime\"},"
    "{\"name\":\"qty\",\"datatype\":\"int\",\"nullable\":false},"
    "{\"name\":\"note\",\"datatype\":\"string\"}]}]}";

static es_meta_t *s_meta;
static const es_meta_object_t *s_item;

static int
s_setup(void **state)
{
    (void)state;
    es_err_t err;
    s_meta = es_meta_new(s_doc, strlen(s_doc), &err);
    if (!s_meta) {
        fprintf(stderr, "metadata: %s\n", err.what);
        return -1;
    }
    s_item = es_meta_object(s_meta, "Item");
    return 0;
}

static int
s_teardown(void **state)
{
    (void)state;
    es_meta_destroy(&s_meta);
    return 0;
}

static es_value_t
s_int(int64_t i)
{
    return (es_value_t){.type = ES_V_INT, .u.i = i};
}

static es_value_t
s_dbl(double d)
{
    return (es_value_t){.type = ES_V_DOUBLE, .u.d = d};
}

static es_value_t
s_str(const char *s)
{
    return (es_value_t){.type = ES_V_STR, .u.s = {s, strlen(s)}};
}

static es_value_t
s_bool(bool b)
{
    return (es_value_t){.type = ES_V_BOOL, .u.b = b};
}

static const es_value_t s_null = {.type = ES_V_NULL};

static int
s_set(es_record_builder_t *b, const char *col, es_value_t v, es_err_t *err)
{
    return es_record_builder_set(b, col, strlen(col), &v, err);
}

//  Record -> JSON text (caller frees), failing the test on error.
static char *
s_json(const es_buf_t *rec)
{
    es_buf_t out;
    es_buf_init(&out);
    es_err_t err;
    if (es_record_to_json(rec->data, rec->len, &out, &err))
        fail_msg("to_json: %s", err.what);
    return es_buf_steal(&out);
}

static void
test_build_and_read(void **state)
{
    (void)state;
    es_record_builder_t *b = es_record_builder_new(s_item);
    es_err_t err;
    es_buf_t rec;
    es_buf_init(&rec);
    //  Set out of metadata order, with a transient string buffer and an unknown column.
    char tmp[16];
    strcpy(tmp, "h\xc3\xa9llo");
    assert_int_equal(s_set(b, "note", s_str("n\"1\n"), &err), 0);
    assert_int_equal(
        s_set(b, "name", (es_value_t){.type = ES_V_STR, .u.s = {tmp, strlen(tmp)}}, &err), 0);
    memset(tmp, 'X', sizeof tmp);
    assert_int_equal(s_set(b, "price", s_dbl(0.1), &err), 0);
    assert_int_equal(s_set(b, "id", s_int(-42), &err), 0);
    assert_int_equal(s_set(b, "ok", s_int(1), &err), 0);
    assert_int_equal(s_set(b, "day", s_str("2024-02-29"), &err), 0);
    assert_int_equal(s_set(b, "at", s_str("2024-02-29T23:59:59.123+05:30"), &err), 0);
    assert_int_equal(s_set(b, "qty", s_dbl(3.0), &err), 0);
    assert_int_equal(s_set(b, "bogus", s_str("x"), &err), 0);
    assert_int_equal(es_record_builder_end(b, &rec, &err), 0);

    char *json = s_json(&rec);
    assert_string_equal(json, "{\"id\":-42,\"name\":\"h\xc3\xa9llo\",\"price\":0.1,\"ok\":true,"
                              "\"day\":\"2024-02-29\",\"at\":\"2024-02-29T23:59:59.123+05:30\","
                              "\"qty\":3,\"note\":\"n\\\"1\\n\"}");
    free(json);

    es_value_t v;
    assert_int_equal(es_record_get(rec.data, rec.len, "id", &v), 1);
    assert_int_equal(v.type, ES_V_INT);
    assert_int_equal(v.u.i, -42);
    assert_int_equal(es_record_get(rec.data, rec.len, "qty", &v), 1);
    assert_int_equal(v.type, ES_V_INT);
    assert_int_equal(v.u.i, 3);
    assert_int_equal(es_record_get(rec.data, rec.len, "price", &v), 1);
    assert_int_equal(v.type, ES_V_DOUBLE);
    assert_true(v.u.d == 0.1);
    assert_int_equal(es_record_get(rec.data, rec.len, "ok", &v), 1);
    assert_int_equal(v.type, ES_V_BOOL);
    assert_true(v.u.b);
    assert_int_equal(es_record_get(rec.data, rec.len, "name", &v), 1);
    assert_int_equal(v.type, ES_V_STR);
    assert_int_equal(v.u.s.len, 6);
    assert_memory_equal(v.u.s.ptr, "h\xc3\xa9llo", 6);
    //  The string points into the record.
    assert_true(v.u.s.ptr > rec.data && v.u.s.ptr < rec.data + rec.len);
    assert_int_equal(es_record_get(rec.data, rec.len, "bogus", &v), 0);
    assert_int_equal(es_record_get(rec.data, rec.len, "i", &v), 0);
    assert_int_equal(es_record_get(rec.data, rec.len, "idx", &v), 0);

    //  Reset drops everything; set twice keeps the last value; absent non-key columns are fine.
    es_record_builder_reset(b);
    assert_int_equal(s_set(b, "id", s_int(1), &err), 0);
    assert_int_equal(s_set(b, "id", s_int(2), &err), 0);
    assert_int_equal(s_set(b, "note", s_str("first"), &err), 0);
    assert_int_equal(s_set(b, "note", s_null, &err), 0);
    assert_int_equal(s_set(b, "price", s_int(7), &err), 0);
    assert_int_equal(s_set(b, "ok", s_int(0), &err), 0);
    assert_int_equal(es_record_builder_end(b, &rec, &err), 0);
    json = s_json(&rec);
    assert_string_equal(json, "{\"id\":2,\"price\":7,\"ok\":false,\"note\":null}");
    free(json);
    assert_int_equal(es_record_get(rec.data, rec.len, "price", &v), 1);
    assert_int_equal(v.type, ES_V_INT); //  ints stay ints in number columns
    assert_int_equal(es_record_get(rec.data, rec.len, "note", &v), 1);
    assert_int_equal(v.type, ES_V_NULL);
    assert_int_equal(es_record_get(rec.data, rec.len, "name", &v), 0);

    //  Missing key column.
    es_record_builder_reset(b);
    assert_int_equal(s_set(b, "name", s_str("x"), &err), 0);
    assert_int_equal(es_record_builder_end(b, &rec, &err), -1);
    assert_int_equal(err.code, ES_EINVAL);
    assert_string_equal(err.what, "Item: key column 'id' missing");

    es_buf_release(&rec);
    es_record_builder_destroy(&b);
    assert_null(b);
    es_record_builder_destroy(&b);
}

static const struct {
    const char *col;
    es_value_t v;
    const char *what;
} s_bad[] = {
    {"id", {.type = ES_V_NULL}, "id: expected int, got null (key column)"},
    {"qty", {.type = ES_V_NULL}, "qty: expected int, got null (not nullable)"},
    {"id", {.type = ES_V_STR, .u.s = {"1", 1}}, "id: expected int, got string"},
    {"id", {.type = ES_V_BOOL, .u.b = true}, "id: expected int, got boolean"},
    {"id", {.type = ES_V_DOUBLE, .u.d = 1.5}, "id: expected int, got non-integral number"},
    {"id",
     {.type = ES_V_DOUBLE, .u.d = 9223372036854775808.0},
     "id: expected int, got number out of int64 range"},
    {"id", {.type = ES_V_DOUBLE, .u.d = -1e19}, "id: expected int, got number out of int64 range"},
    {"id", {.type = ES_V_DOUBLE, .u.d = NAN}, "id: expected int, got non-integral number"},
    {"name", {.type = ES_V_INT, .u.i = 5}, "name: expected string, got int"},
    {"name", {.type = ES_V_DOUBLE, .u.d = 5}, "name: expected string, got number"},
    {"name", {.type = ES_V_BOOL}, "name: expected string, got boolean"},
    {"name",
     {.type = ES_V_STR, .u.s = {"h\xc3\xa9llo!", 7}},
     "name: string of 6 characters exceeds length 5"},
    {"price", {.type = ES_V_STR, .u.s = {"1.5", 3}}, "price: expected number, got string"},
    {"price", {.type = ES_V_BOOL}, "price: expected number, got boolean"},
    {"price", {.type = ES_V_DOUBLE, .u.d = INFINITY}, "price: expected number, got infinity"},
    {"price", {.type = ES_V_DOUBLE, .u.d = NAN}, "price: expected number, got NaN"},
    {"ok", {.type = ES_V_INT, .u.i = 2}, "ok: expected boolean, got int"},
    {"ok", {.type = ES_V_INT, .u.i = -1}, "ok: expected boolean, got int"},
    {"ok", {.type = ES_V_DOUBLE, .u.d = 1}, "ok: expected boolean, got number"},
    {"ok", {.type = ES_V_STR, .u.s = {"true", 4}}, "ok: expected boolean, got string"},
    {"day", {.type = ES_V_INT, .u.i = 20240101}, "day: expected date, got int"},
    {"day",
     {.type = ES_V_STR, .u.s = {"2024-13-01", 10}},
     "day: expected date YYYY-MM-DD, got '2024-13-01'"},
    {"at", {.type = ES_V_BOOL}, "at: expected datetime, got boolean"},
    {"at",
     {.type = ES_V_STR, .u.s = {"2024-01-01", 10}},
     "at: expected datetime YYYY-MM-DDTHH:MM:SS[.f][Z|+hh:mm], got '2024-01-01'"},
};

static void
test_type_errors(void **state)
{
    (void)state;
    es_record_builder_t *b = es_record_builder_new(s_item);
    for (size_t i = 0; i < sizeof s_bad / sizeof s_bad[0]; i++) {
        es_err_t err = {ES_OK, ""};
        if (es_record_builder_set(b, s_bad[i].col, strlen(s_bad[i].col), &s_bad[i].v, &err) != -1)
            fail_msg("case %zu accepted", i);
        assert_int_equal(err.code, ES_EINVAL);
        if (strcmp(err.what, s_bad[i].what) != 0)
            fail_msg("case %zu: got '%s', want '%s'", i, err.what, s_bad[i].what);
    }
    //  A rejected value leaves the column as it was.
    es_err_t err;
    es_buf_t rec;
    es_buf_init(&rec);
    assert_int_equal(s_set(b, "id", s_int(9), &err), 0);
    assert_int_equal(s_set(b, "id", s_str("x"), &err), -1);
    assert_int_equal(es_record_builder_end(b, &rec, &err), 0);
    char *json = s_json(&rec);
    assert_string_equal(json, "{\"id\":9}");
    free(json);
    es_buf_release(&rec);
    es_record_builder_destroy(&b);
}

static void
test_length_limits(void **state)
{
    (void)state;
    es_record_builder_t *b = es_record_builder_new(s_item);
    es_err_t err;
    //  Five characters in 2-, 3- and 4-byte UTF-8 fit length 5.
    assert_int_equal(s_set(b, "name",
                           s_str("\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80"
                                 "ab"),
                           &err),
                     0);
    assert_int_equal(s_set(b, "name", s_str(""), &err), 0);
    assert_int_equal(s_set(b, "name", s_str("abcdef"), &err), -1);
    assert_string_equal(err.what, "name: string of 6 characters exceeds length 5");
    //  length 0 = unbounded.
    char *big = es_malloc(100001);
    memset(big, 'z', 100000);
    big[100000] = '\0';
    assert_int_equal(s_set(b, "note", s_str(big), &err), 0);
    assert_int_equal(s_set(b, "id", s_int(1), &err), 0);
    es_buf_t rec;
    es_buf_init(&rec);
    assert_int_equal(es_record_builder_end(b, &rec, &err), 0);
    es_value_t v;
    assert_int_equal(es_record_get(rec.data, rec.len, "note", &v), 1);
    assert_int_equal(v.u.s.len, 100000);
    assert_memory_equal(v.u.s.ptr, big, 100000);
    es_buf_release(&rec);
    free(big);
    es_record_builder_destroy(&b);
}

static void
test_dates(void **state)
{
    (void)state;
    static const char *good_dates[] = {"2024-02-29", "2000-02-29", "1999-12-31", "0001-01-01"};
    static const char *bad_dates[] = {"2023-02-29", "1900-02-29", "2024-04-31",
                                      "2024-00-10", "2024-01-00", "2024-1-01",
                                      "2024/01/01", "24-01-01",   "2024-01-01T00:00:00",
                                      "",           "2024-01-0a", " 2024-01-01"};
    static const char *good_times[] = {
        "2024-01-01T00:00:00",          "2024-01-01T23:59:59Z",      "2024-01-01T12:00:00.5",
        "2024-01-01T12:00:00.123456Z",  "2024-01-01T12:00:00+05:30", "2024-01-01T12:00:00-08:00",
        "2024-01-01T12:00:00.000-00:00"};
    static const char *bad_times[] = {"2024-01-01",
                                      "2024-01-01 12:00:00",
                                      "2024-01-01T24:00:00",
                                      "2024-01-01T12:60:00",
                                      "2024-01-01T12:00:60",
                                      "2024-01-01T12:00:00.",
                                      "2024-01-01T12:00:00z",
                                      "2024-01-01T12:00:00Z0",
                                      "2024-01-01T12:00:00+0530",
                                      "2024-01-01T12:00:00+5:30",
                                      "2024-01-01T12:00:00+24:00",
                                      "2024-02-30T12:00:00",
                                      "2024-01-01T12:00",
                                      "2024-01-01T12:00:00.5 "};
    es_record_builder_t *b = es_record_builder_new(s_item);
    es_err_t err;
    for (size_t i = 0; i < sizeof good_dates / sizeof *good_dates; i++)
        if (s_set(b, "day", s_str(good_dates[i]), &err))
            fail_msg("rejected date '%s': %s", good_dates[i], err.what);
    for (size_t i = 0; i < sizeof bad_dates / sizeof *bad_dates; i++) {
        if (s_set(b, "day", s_str(bad_dates[i]), &err) != -1)
            fail_msg("accepted date '%s'", bad_dates[i]);
        char want[128];
        snprintf(want, sizeof want, "day: expected date YYYY-MM-DD, got '%s'", bad_dates[i]);
        assert_string_equal(err.what, want);
    }
    for (size_t i = 0; i < sizeof good_times / sizeof *good_times; i++)
        if (s_set(b, "at", s_str(good_times[i]), &err))
            fail_msg("rejected datetime '%s': %s", good_times[i], err.what);
    for (size_t i = 0; i < sizeof bad_times / sizeof *bad_times; i++) {
        if (s_set(b, "at", s_str(bad_times[i]), &err) != -1)
            fail_msg("accepted datetime '%s'", bad_times[i]);
        assert_int_equal(err.code, ES_EINVAL);
        assert_memory_equal(err.what, "at: expected datetime ", 22);
    }
    es_record_builder_destroy(&b);
}

static void
test_from_json(void **state)
{
    (void)state;
    const char *in = "{\"_metadata\":{\"deleted\":false,\"x\":[1,{\"y\":[]}]},\"qty\":2.0,"
                     "\"extra\":[1,2,{\"a\":null}],\"id\":-9223372036854775808,"
                     "\"name\":\"a\\u0000b\",\"price\":1e2,\"ok\":0,\"note\":null,"
                     "\"day\":\"2024-01-31\",\"more\":{\"id\":\"not me\"},\"price\":12.5}";
    es_buf_t rec;
    es_buf_init(&rec);
    es_err_t err;
    assert_int_equal(es_record_from_json(s_item, in, strlen(in), &rec, &err), 0);
    char *json = s_json(&rec);
    assert_string_equal(json, "{\"id\":-9223372036854775808,\"name\":\"a\\u0000b\",\"price\":12.5,"
                              "\"ok\":false,\"day\":\"2024-01-31\",\"qty\":2,\"note\":null}");
    //  The output parses back to the same record.
    es_buf_t again;
    es_buf_init(&again);
    assert_int_equal(es_record_from_json(s_item, json, strlen(json), &again, &err), 0);
    assert_int_equal(again.len, rec.len);
    assert_memory_equal(again.data, rec.data, rec.len);
    free(json);
    es_value_t v;
    assert_int_equal(es_record_get(rec.data, rec.len, "name", &v), 1);
    assert_int_equal(v.u.s.len, 3);
    assert_memory_equal(v.u.s.ptr, "a\0b", 3);
    assert_int_equal(es_record_get(rec.data, rec.len, "id", &v), 1);
    assert_true(v.u.i == INT64_MIN);

    //  Large and precise values.
    in = "{\"id\":9223372036854775807,\"price\":9223372036854775808}";
    assert_int_equal(es_record_from_json(s_item, in, strlen(in), &rec, &err), 0);
    json = s_json(&rec);
    assert_string_equal(json, "{\"id\":9223372036854775807,\"price\":9.2233720368547758e+18}");
    free(json);
    es_buf_release(&again);
    es_buf_release(&rec);
}

static const struct {
    const char *json;
    const char *what; //  exact, or a prefix when it ends in ": "
} s_bad_json[] = {
    {"[]", "record: expected a JSON object, got array"},
    {"5", "record: expected a JSON object, got int"},
    {"\"x\"", "record: expected a JSON object, got string"},
    {"null", "record: expected a JSON object, got null"},
    {"{}", "Item: key column 'id' missing"},
    {"{\"id\":null}", "id: expected int, got null (key column)"},
    {"{\"id\":1,\"name\":{}}", "name: expected string, got object"},
    {"{\"id\":1,\"qty\":[1]}", "qty: expected int, got array"},
    {"{\"id\":\"1\"}", "id: expected int, got string"},
    {"{\"id\":1.5}", "id: expected int, got non-integral number"},
    {"{\"id\":9223372036854775808}", "id: expected int, got number out of int64 range"},
    {"{\"id\":1,\"price\":1e999}", "price: expected number, got infinity"},
    {"{\"id\":1,\"ok\":\"yes\"}", "ok: expected boolean, got string"},
    {"{\"id\":1,\"qty\":null}", "qty: expected int, got null (not nullable)"},
    {"{\"id\":1,\"name\":\"toolong\"}", "name: string of 7 characters exceeds length 5"},
    {"{\"id\":1} {}", "record: invalid JSON: "},
    {"{\"id\":1,}", "record: invalid JSON: "},
    {"{\"id\":01}", "record: invalid JSON: "},
    {"{\"id\":1,\"name\":\"\xff\"}", "record: invalid JSON: "},
    //  Shapes yajl lets through: above U+10FFFF, an escaped lone surrogate, overlong.
    {"{\"id\":1,\"name\":\"a\xf5\x9c\xab\x86\"}", "name: invalid UTF-8 at byte 2 of the string"},
    {"{\"id\":1,\"name\":\"\\udc00\"}", "name: invalid UTF-8 at byte 1 of the string"},
    {"{\"id\":1,\"name\":\"ab\xc0\xaf\"}", "name: invalid UTF-8 at byte 3 of the string"},
    {"", "record: invalid JSON: "},
};

static void
test_from_json_errors(void **state)
{
    (void)state;
    es_buf_t rec;
    es_buf_init(&rec);
    for (size_t i = 0; i < sizeof s_bad_json / sizeof s_bad_json[0]; i++) {
        es_err_t err = {ES_OK, ""};
        const char *want = s_bad_json[i].what;
        if (es_record_from_json(s_item, s_bad_json[i].json, strlen(s_bad_json[i].json), &rec,
                                &err) != -1)
            fail_msg("case %zu accepted", i);
        assert_int_equal(err.code, ES_EINVAL);
        size_t n = strlen(want);
        bool prefix = n >= 2 && want[n - 2] == ':' && want[n - 1] == ' ';
        if (prefix ? strncmp(err.what, want, n) != 0 || !err.what[n] : strcmp(err.what, want) != 0)
            fail_msg("case %zu: got '%s', want '%s'", i, err.what, want);
        assert_null(strchr(err.what, '\n'));
    }
    //  Every prefix of a valid record is invalid JSON.
    const char *good = "{\"id\":12,\"name\":\"ab\",\"price\":1.25,\"ok\":true,\"note\":null}";
    for (size_t n = 0; n < strlen(good); n++) {
        es_err_t err = {ES_OK, ""};
        assert_int_equal(es_record_from_json(s_item, good, n, &rec, &err), -1);
        assert_int_equal(err.code, ES_EINVAL);
        assert_memory_equal(err.what, "record: invalid JSON: ", 22);
    }
    es_err_t err;
    assert_int_equal(es_record_from_json(s_item, good, strlen(good), &rec, &err), 0);
    es_buf_release(&rec);
}

//  Packs a map {"v": <value>} through msgpack-c, with each integer width it picks.
static void
test_int_widths(void **state)
{
    (void)state;
    static const int64_t vals[] = {
        0,         1,  127, 128, 255,  256,  65535,  65536,  4294967295LL, 4294967296LL,
        INT64_MAX, -1, -32, -33, -128, -129, -32768, -32769, INT32_MIN,    (int64_t)INT32_MIN - 1,
        INT64_MIN};
    for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {
        msgpack_sbuffer sb;
        msgpack_sbuffer_init(&sb);
        msgpack_packer pk;
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        assert_int_equal(msgpack_pack_map(&pk, 1), 0);
        assert_int_equal(msgpack_pack_str_with_body(&pk, "v", 1), 0);
        assert_int_equal(msgpack_pack_int64(&pk, vals[i]), 0);
        es_value_t v;
        assert_int_equal(es_record_get(sb.data, sb.size, "v", &v), 1);
        assert_int_equal(v.type, ES_V_INT);
        assert_true(v.u.i == vals[i]);
        es_buf_t out;
        es_buf_init(&out);
        es_err_t err;
        assert_int_equal(es_record_to_json(sb.data, sb.size, &out, &err), 0);
        char want[64];
        snprintf(want, sizeof want, "{\"v\":%lld}", (long long)vals[i]);
        assert_string_equal(out.data, want);
        es_buf_release(&out);
        msgpack_sbuffer_destroy(&sb);
    }
}

//  The builder's own MessagePack writer gives exactly msgpack-c's bytes (the shortest forms):
//  integers at every width boundary, strings of every header size, doubles, booleans, nil, and
//  map headers of both sizes.
static void
s_check_bytes(es_record_builder_t *b, const msgpack_sbuffer *want)
{
    es_buf_t out;
    es_buf_init(&out);
    es_err_t err;
    assert_int_equal(es_record_builder_end(b, &out, &err), 0);
    assert_int_equal(out.len, want->size);
    assert_memory_equal(out.data, want->data, want->size);
    es_buf_release(&out);
}

static void
test_builder_bytes(void **state)
{
    (void)state;
    static const int64_t ints[] = {
        0,         1,  127, 128, 255,  256,  65535,  65536,  4294967295, 1LL << 32,
        INT64_MAX, -1, -32, -33, -128, -129, -32768, -32769, INT32_MIN,  (int64_t)INT32_MIN - 1,
        INT64_MIN};
    static const size_t lens[] = {0, 1, 31, 32, 255, 256, 65535, 65536, 70000};
    char *big = es_malloc(70000);
    memset(big, 'z', 70000);
    es_record_builder_t *b = es_record_builder_new(s_item);
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
        size_t len = lens[i % (sizeof lens / sizeof lens[0])];
        double price = i % 2 ? 2.5 : -1e300;
        es_record_builder_reset(b);
        es_value_t v = {.type = ES_V_INT, .u.i = ints[i]};
        es_err_t err;
        assert_int_equal(es_record_builder_set(b, "id", 2, &v, &err), 0);
        assert_int_equal(es_record_builder_set(b, "qty", 3, &v, &err), 0);
        v = (es_value_t){.type = ES_V_DOUBLE, .u.d = price};
        assert_int_equal(es_record_builder_set(b, "price", 5, &v, &err), 0);
        v = (es_value_t){.type = ES_V_BOOL, .u.b = i % 3 == 0};
        assert_int_equal(es_record_builder_set(b, "ok", 2, &v, &err), 0);
        v = (es_value_t){.type = ES_V_NULL};
        assert_int_equal(es_record_builder_set(b, "name", 4, &v, &err), 0);
        v = (es_value_t){.type = ES_V_STR, .u.s = {big, len}};
        assert_int_equal(es_record_builder_set(b, "note", 4, &v, &err), 0);
        msgpack_sbuffer sb;
        msgpack_sbuffer_init(&sb);
        msgpack_packer pk;
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        //  Metadata order: id name price ok day at qty note.
        assert_int_equal(msgpack_pack_map(&pk, 6), 0);
        assert_int_equal(msgpack_pack_str_with_body(&pk, "id", 2), 0);
        assert_int_equal(msgpack_pack_int64(&pk, ints[i]), 0);
        assert_int_equal(msgpack_pack_str_with_body(&pk, "name", 4), 0);
        assert_int_equal(msgpack_pack_nil(&pk), 0);
        assert_int_equal(msgpack_pack_str_with_body(&pk, "price", 5), 0);
        assert_int_equal(msgpack_pack_double(&pk, price), 0);
        assert_int_equal(msgpack_pack_str_with_body(&pk, "ok", 2), 0);
        assert_int_equal(i % 3 == 0 ? msgpack_pack_true(&pk) : msgpack_pack_false(&pk), 0);
        assert_int_equal(msgpack_pack_str_with_body(&pk, "qty", 3), 0);
        assert_int_equal(msgpack_pack_int64(&pk, ints[i]), 0);
        assert_int_equal(msgpack_pack_str_with_body(&pk, "note", 4), 0);
        assert_int_equal(msgpack_pack_str_with_body(&pk, big, len), 0);
        s_check_bytes(b, &sb);
        msgpack_sbuffer_destroy(&sb);
    }
    es_record_builder_destroy(&b);

    //  A map of 17 columns (map16), long column names (str8).
    es_buf_t doc;
    es_buf_init(&doc);
    es_buf_puts(&doc,
                "{\"name\":\"S\",\"objects\":[{\"name\":\"Wide\",\"key\":[\"c0\"],\"fields\":[");
    for (int i = 0; i < 17; i++)
        es_buf_printf(&doc, "%s{\"name\":\"c%d%s\",\"datatype\":\"int\"}", i ? "," : "", i,
                      i == 16 ? "_a_column_name_of_more_than_32_bytes" : "");
    es_buf_puts(&doc, "]}]}");
    es_err_t err;
    es_meta_t *meta = es_meta_new(doc.data, doc.len, &err);
    assert_non_null(meta);
    b = es_record_builder_new(&meta->objects[0]);
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    assert_int_equal(msgpack_pack_map(&pk, 17), 0);
    for (int i = 0; i < 17; i++) {
        const char *name = meta->objects[0].fields[i].name;
        es_value_t v = {.type = ES_V_INT, .u.i = i * 1000};
        assert_int_equal(es_record_builder_set(b, name, strlen(name), &v, &err), 0);
        assert_int_equal(msgpack_pack_str_with_body(&pk, name, strlen(name)), 0);
        assert_int_equal(msgpack_pack_int64(&pk, i * 1000), 0);
    }
    assert_int_equal((uint8_t)sb.data[0], 0xde);
    s_check_bytes(b, &sb);
    msgpack_sbuffer_destroy(&sb);
    es_record_builder_destroy(&b);
    es_meta_destroy(&meta);
    es_buf_release(&doc);
    free(big);
}

static void
test_doubles_to_json(void **state)
{
    (void)state;
    static const struct {
        double d;
        const char *text;
    } cases[] = {
        {0.1, "0.1"},
        {1.0 / 3, "0.33333333333333331"},
        {1e300, "1e+300"},
        {-2.5, "-2.5"},
        {1e-7, "1e-07"},
        {0.1 + 0.2, "0.30000000000000004"},
        {123456789012345.0, "123456789012345"},
        {-0.0, "-0"},
        {NAN, "null"},
        {INFINITY, "null"},
        {-INFINITY, "null"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint8_t rec[16] = {0x81, 0xa1, 'd', 0xcb};
        uint64_t bits;
        memcpy(&bits, &cases[i].d, 8);
        for (int j = 0; j < 8; j++)
            rec[4 + j] = (uint8_t)(bits >> (56 - 8 * j));
        es_buf_t out;
        es_buf_init(&out);
        es_err_t err;
        assert_int_equal(es_record_to_json(rec, 12, &out, &err), 0);
        char want[64];
        snprintf(want, sizeof want, "{\"d\":%s}", cases[i].text);
        assert_string_equal(out.data, want);
        //  Every finite value reads back exactly.
        if (isfinite(cases[i].d))
            assert_true(strtod(cases[i].text, NULL) == cases[i].d);
        es_buf_release(&out);
    }
    //  float32, as another writer might send it.
    const uint8_t f32[] = {0x81, 0xa1, 'f', 0xca, 0x3f, 0xc0, 0x00, 0x00};
    es_value_t v;
    assert_int_equal(es_record_get(f32, sizeof f32, "f", &v), 1);
    assert_int_equal(v.type, ES_V_DOUBLE);
    assert_true(v.u.d == 1.5);
}

static void
test_wide_encodings(void **state)
{
    (void)state;
    //  map16 with 20 keys, str8/str16/str32 values, and a map32 by hand.
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    assert_int_equal(msgpack_pack_map(&pk, 20), 0);
    char *big = es_malloc(70000);
    memset(big, 'q', 70000);
    for (int i = 0; i < 20; i++) {
        char k[16];
        snprintf(k, sizeof k, "k%d", i);
        assert_int_equal(msgpack_pack_str_with_body(&pk, k, strlen(k)), 0);
        size_t n = i == 17 ? 40 : i == 18 ? 300 : i == 19 ? 70000 : (size_t)i;
        assert_int_equal(msgpack_pack_str_with_body(&pk, big, n), 0);
    }
    assert_int_equal((uint8_t)sb.data[0], 0xde);
    es_value_t v;
    assert_int_equal(es_record_get(sb.data, sb.size, "k19", &v), 1);
    assert_int_equal(v.u.s.len, 70000);
    assert_int_equal(es_record_get(sb.data, sb.size, "k18", &v), 1);
    assert_int_equal(v.u.s.len, 300);
    assert_int_equal(es_record_get(sb.data, sb.size, "k17", &v), 1);
    assert_int_equal(v.u.s.len, 40);
    assert_int_equal(es_record_get(sb.data, sb.size, "k3", &v), 1);
    assert_memory_equal(v.u.s.ptr, "qqq", 3);
    assert_int_equal(es_record_get(sb.data, sb.size, "k20", &v), 0);
    es_buf_t out;
    es_buf_init(&out);
    es_err_t err;
    assert_int_equal(es_record_to_json(sb.data, sb.size, &out, &err), 0);
    assert_int_equal(out.len, 70647);
    es_buf_release(&out);
    msgpack_sbuffer_destroy(&sb);
    free(big);

    const uint8_t m32[] = {0xdf, 0, 0, 0, 1, 0xa1, 'a', 0xc3};
    assert_int_equal(es_record_get(m32, sizeof m32, "a", &v), 1);
    assert_int_equal(v.type, ES_V_BOOL);
    assert_true(v.u.b);
}

static void
test_malformed_records(void **state)
{
    (void)state;
    es_record_builder_t *b = es_record_builder_new(s_item);
    es_err_t err;
    es_buf_t rec, out;
    es_buf_init(&rec);
    es_buf_init(&out);
    assert_int_equal(s_set(b, "id", s_int(100000), &err), 0);
    assert_int_equal(s_set(b, "name", s_str("abc"), &err), 0);
    assert_int_equal(s_set(b, "price", s_dbl(2.5), &err), 0);
    assert_int_equal(s_set(b, "ok", s_bool(false), &err), 0);
    assert_int_equal(s_set(b, "note", s_null, &err), 0);
    assert_int_equal(es_record_builder_end(b, &rec, &err), 0);
    //  Every proper prefix is malformed; out keeps what it had.
    for (size_t n = 0; n < rec.len; n++) {
        es_buf_reset(&out);
        es_buf_puts(&out, "keep");
        err.code = ES_OK;
        assert_int_equal(es_record_to_json(rec.data, n, &out, &err), -1);
        assert_int_equal(err.code, ES_EPROTO);
        assert_string_equal(out.data, "keep");
        assert_memory_equal(err.what, "record: ", 8);
        //  The check without output fails the same way, with the same text.
        es_err_t cerr;
        assert_int_equal(es_record_check(rec.data, n, &cerr), -1);
        assert_int_equal(cerr.code, ES_EPROTO);
        assert_string_equal(cerr.what, err.what);
        es_value_t v;
        //  Lookup of a column past the cut fails; "id" comes first so is found once complete.
        int rc = es_record_get(rec.data, n, "note", &v);
        assert_int_equal(rc, -1);
    }
    es_buf_reset(&out);
    assert_int_equal(es_record_to_json(rec.data, 0, &out, &err), -1);
    assert_string_equal(err.what, "record: not a MessagePack map");
    assert_int_equal(es_record_to_json(rec.data, 1, &out, &err), -1);
    assert_string_equal(err.what, "record: malformed entry 0 at byte 1");

    assert_int_equal(es_record_check(rec.data, rec.len, &err), 0);
    //  Trailing bytes.
    es_buf_append(&rec, "\xc0", 1);
    assert_int_equal(es_record_check(rec.data, rec.len, &err), -1);
    assert_string_equal(err.what, "record: 1 trailing bytes");
    assert_int_equal(es_record_to_json(rec.data, rec.len, &out, &err), -1);
    assert_string_equal(err.what, "record: 1 trailing bytes");
    assert_int_equal(out.len, 0);

    static const struct {
        const char *bytes;
        size_t len;
        const char *what;
    } bad[] = {
        {"\x91\xa1x", 3, "record: not a MessagePack map"},                //  array
        {"\xa1x", 2, "record: not a MessagePack map"},                    //  str
        {"\x81\x01\x01", 3, "record: malformed entry 0 at byte 2"},       //  int key
        {"\x81\xa1x\xc4\x01z", 6, "record: malformed entry 0 at byte 4"}, //  bin value
        {"\x81\xa1x\x90", 4, "record: malformed entry 0 at byte 4"},      //  array value
        {"\x81\xa1x\x80", 4, "record: malformed entry 0 at byte 4"},      //  map value
        {"\x81\xa1x\xcf\x80\x00\x00\x00\x00\x00\x00\x00", 12,
         "record: malformed entry 0 at byte 12"},                    //  uint64 above INT64_MAX
        {"\x81\xa1x\xc1", 4, "record: malformed entry 0 at byte 4"}, //  never-used byte
        {"\x82\xa1x\xc0", 4, "record: malformed entry 1 at byte 4"}, //  count too big
        {"\x81\xdb\xff\xff\xff\xff", 6, "record: malformed entry 0 at byte 6"}, //  huge str
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (es_record_to_json(bad[i].bytes, bad[i].len, &out, &err) != -1)
            fail_msg("bad record %zu accepted", i);
        assert_int_equal(err.code, ES_EPROTO);
        if (strcmp(err.what, bad[i].what) != 0)
            fail_msg("bad record %zu: got '%s', want '%s'", i, err.what, bad[i].what);
        assert_int_equal(es_record_check(bad[i].bytes, bad[i].len, &err), -1);
        assert_int_equal(err.code, ES_EPROTO);
        assert_string_equal(err.what, bad[i].what);
        es_value_t v;
        assert_int_equal(es_record_get(bad[i].bytes, bad[i].len, "zz", &v), -1);
    }
    es_value_t v;
    assert_int_equal(es_record_get(NULL, 0, "x", &v), -1);
    es_buf_release(&out);
    es_buf_release(&rec);
    es_record_builder_destroy(&b);
}

//  es_record_double_text against its definition (the shorter of %.15g / %.17g that reads back),
//  over the decimals its printf-free path takes and the edges where it must not.
static void
s_double_text_is(double d)
{
    char want[64], buf[ES_DOUBLE_TEXT_MAX];
    snprintf(want, sizeof want, "%.15g", d);
    if (strtod(want, NULL) != d)
        snprintf(want, sizeof want, "%.17g", d);
    size_t n = 0;
    const char *t = es_record_double_text(buf, d, &n);
    assert_non_null(t);
    if (n != strlen(want) || memcmp(t, want, n) != 0) {
        print_message("%.17g: got '%.*s', want '%s'\n", d, (int)n, t, want);
        fail();
    }
}

static void
test_double_text(void **state)
{
    (void)state;
    static const double edges[] = {0.0,
                                   -0.0,
                                   1,
                                   -1,
                                   0.1,
                                   0.2 + 0.1,
                                   1.0 / 3,
                                   1e-4,
                                   9.9999e-5,
                                   1.00000001e-4,
                                   0.00012345678,
                                   123456789012345,
                                   999999999999999,
                                   1e15,
                                   1234567890123456,
                                   12345678.12345678,
                                   1234567.12345678,
                                   9007199254740993.0,
                                   1e22,
                                   1e300,
                                   4.9e-324,
                                   2.2250738585072014e-308,
                                   1.7976931348623157e308,
                                   12.5,
                                   -19.99,
                                   0.30000000000000004};
    for (size_t i = 0; i < sizeof edges / sizeof edges[0]; i++)
        s_double_text_is(edges[i]);
    //  Decimals with 0..10 places (prices, amounts), and arbitrary bit patterns.
    uint64_t x = 88172645463325252u;
    for (int i = 0; i < 50000; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        int places = (int)(x % 11);
        double m = (double)((int64_t)(x >> 12) % 100000000000000 - 50000000000000);
        s_double_text_is(m / pow(10, places));
        double r;
        memcpy(&r, &x, sizeof r);
        if (isfinite(r))
            s_double_text_is(r);
    }
    char buf[ES_DOUBLE_TEXT_MAX];
    size_t n;
    assert_null(es_record_double_text(buf, NAN, &n));
    assert_null(es_record_double_text(buf, -INFINITY, &n));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_build_and_read), cmocka_unit_test(test_type_errors),
        cmocka_unit_test(test_length_limits),  cmocka_unit_test(test_dates),
        cmocka_unit_test(test_from_json),      cmocka_unit_test(test_from_json_errors),
        cmocka_unit_test(test_int_widths),     cmocka_unit_test(test_doubles_to_json),
        cmocka_unit_test(test_wide_encodings), cmocka_unit_test(test_malformed_records),
        cmocka_unit_test(test_builder_bytes),  cmocka_unit_test(test_double_text),
    };
    return cmocka_run_group_tests(tests, s_setup, s_teardown);
}
