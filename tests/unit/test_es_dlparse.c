//  Unit tests of es_dlparse: object- and service-level download responses fed whole, byte by
//  byte and in random chunks; delta/bc extraction; every error; a 20 MB response in bounded memory.
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
#include "protocol/es_dlparse.h"
#include "protocol/es_key.h"
#include "protocol/es_meta.h"
#include "protocol/es_record.h"
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *s_meta_json =
    "{\"name\":\"Svc\",\"version\":\"1.0\",\"objects\":["
    "{\"name\":\"Customer\",\"key\":[\"id\"],\"fields\":["
    "{\"name\":\"id\",\"datatype\":\"int\",\"nullable\":false},"
    "{\"name\":\"name\",\"datatype\":\"string\",\"length\":20,\"nullable\":true},"
    "{\"name\":\"age\",\"datatype\":\"int\",\"nullable\":true},"
    "{\"name\":\"score\",\"datatype\":\"number\",\"nullable\":true},"
    "{\"name\":\"active\",\"datatype\":\"boolean\",\"nullable\":true}]},"
    "{\"name\":\"Order\",\"key\":[\"oid\"],\"fields\":["
    "{\"name\":\"oid\",\"datatype\":\"string\",\"nullable\":false},"
    "{\"name\":\"total\",\"datatype\":\"number\",\"nullable\":true}]}]}";

typedef enum { FEED_WHOLE, FEED_BYTES, FEED_RANDOM, FEED_MODES } feed_t;

//  What the callbacks saw, as text, so one string comparison checks everything.
typedef struct {
    es_buf_t log;   //  one line per record / object error
    size_t records; //  on_record calls
    size_t fail_at; //  on_record fails at this call (1-based), 0 = never
} collect_t;

static es_meta_t *s_meta;
static const es_meta_object_t *s_customer;

static int
s_on_record(void *ctx, const es_dl_record_t *r, es_err_t *err)
{
    collect_t *c = ctx;
    c->records++;
    if (c->fail_at && c->records == c->fail_at)
        return es_err_set(err, ES_ESTORE, "store: full");
    es_buf_t json;
    es_buf_init(&json);
    es_err_t e;
    assert_int_equal(es_record_to_json(r->rec, r->rec_len, &json, &e), 0);
    es_buf_printf(&c->log, "%s %s [%s] %s\n", r->object->name, r->is_delete ? "D" : "U",
                  r->checksum, json.data);
    es_buf_release(&json);
    return 0;
}

static void
s_on_object_error(void *ctx, const char *object, int64_t opstatus, const char *errmsg)
{
    collect_t *c = ctx;
    es_buf_printf(&c->log, "ERROR %s %lld %s\n", object, (long long)opstatus, errmsg);
}

static const es_dlparse_cb_t s_cb = {s_on_record, s_on_object_error};

static uint64_t s_rng = 88172645463325252ULL;

static size_t
s_rand(size_t max)
{
    s_rng ^= s_rng << 13;
    s_rng ^= s_rng >> 7;
    s_rng ^= s_rng << 17;
    return (size_t)(s_rng % max);
}

//  Feed doc in the given way, then finish. 0 or -1 (err set). The parser stays in *out.
static int
s_run(const es_meta_object_t *obj, const char *doc, size_t len, feed_t mode, collect_t *c,
      es_dlparse_t **out, es_err_t *err)
{
    es_dlparse_t *p = es_dlparse_new(s_meta, obj, &s_cb, c);
    assert_non_null(p);
    *out = p;
    //  yajl re-scans a token split across chunks from its start, so a 1 MiB string in tiny
    //  chunks is quadratic: large documents get chunks nearer to what libcurl delivers.
    size_t max = len > 4096 ? 16381 : 97;
    size_t off = 0;
    while (off < len) {
        size_t n = len - off;
        if (mode == FEED_BYTES)
            n = 1;
        else if (mode == FEED_RANDOM)
            n = 1 + s_rand(n < max ? n : max);
        if (es_dlparse_feed(p, doc + off, n, err))
            return -1;
        off += n;
    }
    return es_dlparse_finish(p, err);
}

//  Everything the parser reports after finish, plus the callback log.
static char *
s_summary(const es_dlparse_t *p, const collect_t *c)
{
    es_buf_t b;
    es_buf_init(&b);
    es_buf_printf(&b, "%s", c->log.data ? c->log.data : "");
    if (es_dlparse_has_opstatus(p))
        es_buf_printf(&b, "opstatus=%lld\n", (long long)es_dlparse_opstatus(p));
    es_buf_printf(&b, "errmsg=%s\nmore=%d\ncount=%zu\n", es_dlparse_errmsg(p),
                  es_dlparse_has_more(p), es_dlparse_count(p));
    const char *dc = es_dlparse_delta_context(p);
    es_buf_printf(&b, "dc=%s\n", dc ? dc : "(null)");
    const char *names[] = {"Customer", "Order", "Nope"};
    for (size_t i = 0; i < 3; i++) {
        const char *d = es_dlparse_delta(p, names[i]), *bc = es_dlparse_bc(p, names[i]);
        if (d || bc)
            es_buf_printf(&b, "%s delta=%s bc=%s\n", names[i], d ? d : "(null)",
                          bc ? bc : "(null)");
    }
    return es_buf_steal(&b);
}

//  Parse doc in every feed mode; each must succeed with the same summary, equal to expected.
static void
s_check_ok(const es_meta_object_t *obj, const char *doc, const char *expected)
{
    for (int mode = 0; mode < FEED_MODES; mode++) {
        collect_t c = {.records = 0};
        es_buf_init(&c.log);
        es_dlparse_t *p;
        es_err_t err = {.code = ES_OK};
        int rc = s_run(obj, doc, strlen(doc), (feed_t)mode, &c, &p, &err);
        if (rc)
            fail_msg("mode %d: %s", mode, err.what);
        char *sum = s_summary(p, &c);
        if (strcmp(sum, expected) != 0)
            fail_msg("mode %d:\n--- got\n%s--- expected\n%s", mode, sum, expected);
        free(sum);
        es_dlparse_destroy(&p);
        assert_null(p);
        es_buf_release(&c.log);
    }
}

//  Parse doc whole and in random chunks; both must fail with code and exact text.
static void
s_check_err(const es_meta_object_t *obj, const char *doc, size_t len, es_code_t code,
            const char *what)
{
    for (int mode = 0; mode < FEED_MODES; mode++) {
        if (mode == FEED_BYTES && len > 4096)
            continue;
        collect_t c = {.records = 0};
        es_buf_init(&c.log);
        es_dlparse_t *p;
        es_err_t err = {.code = ES_OK};
        int rc = s_run(obj, doc, len, (feed_t)mode, &c, &p, &err);
        if (rc != -1)
            fail_msg("mode %d: expected failure '%s' for %.200s", mode, what, doc);
        if (err.code != code || strcmp(err.what, what) != 0)
            fail_msg("mode %d: got %s '%s', expected %s '%s'", mode, es_err_name(err.code),
                     err.what, es_err_name(code), what);
        //  The error sticks: later calls repeat it.
        es_err_t again = {.code = ES_OK};
        assert_int_equal(es_dlparse_feed(p, "{}", 2, &again), -1);
        assert_string_equal(again.what, what);
        assert_int_equal(es_dlparse_finish(p, &again), -1);
        assert_string_equal(again.what, what);
        es_dlparse_destroy(&p);
        es_buf_release(&c.log);
    }
}

static void
s_check_err_str(const es_meta_object_t *obj, const char *doc, es_code_t code, const char *what)
{
    s_check_err(obj, doc, strlen(doc), code, what);
}

// ---------------------------------------------------------------------------------------------

static const char *s_object_doc =
    "{\"opstatus\":0,\"httpStatusCode\":200,\n"
    " \"records\":[\n"
    "  {\"id\":1,\"name\":\"Ann\",\"age\":41,\"score\":2.5,\"active\":true,"
    "   \"_metadata\":{\"action\":\"update\",\"checksum\":\"c1\"}},\n"
    "  {\"_metadata\":{\"checksum\":\"c2\",\"action\":\"create\",\"extra\":{\"x\":[1,2]}},"
    "   \"id\":2,\"name\":null,\"age\":null,\"score\":7,\"active\":false,\"unknown\":\"zz\"},\n"
    "  {\"id\":3,\"_metadata\":{\"action\":\"delete\",\"checksum\":\"c3\"}},\n"
    "  {\"id\":4,\"Orders\":[{\"oid\":\"o1\",\"_metadata\":{\"action\":\"create\"}}],"
    "   \"address\":{\"city\":\"X\",\"deep\":[[[{}]]]},\"name\":\"caf\\u00e9 \\\"q\\\"\"},\n"
    "  {\"id\":5,\"_metadata\":{\"action\":null,\"checksum\":null}}\n"
    " ],\n"
    " \"_metadata\":{\"recordCount\":5,\"updatedRecords\":1,\"deletedRecords\":1},\n"
    " \"delta_context\" : { \"curobj\" : \"Customer\", \"objs\" : {\"Customer\": {\"delta\" : "
    "\"2024-01-02T03:04:05Z\", \"odatastring\":\"$filter=age gt 3\", \"bc\" : { \"bdelta\" : "
    "\"b1\" , \"batchid\" : 2, \"x\":[1.50E+3, true, null, \"a\\/b\\n\"] } } } },\n"
    " \"unknownRoot\":{\"a\":[{\"b\":{\"c\":[1,{\"d\":null}]}}]},\"more\":[1,[2,[3]]],\n"
    " \"hasMoreRecords\":\"true\"}";

static const char *s_object_expected =
    "Customer U [c1] {\"id\":1,\"name\":\"Ann\",\"age\":41,\"score\":2.5,\"active\":true}\n"
    "Customer U [c2] {\"id\":2,\"name\":null,\"age\":null,\"score\":7,\"active\":false}\n"
    "Customer D [c3] {\"id\":3}\n"
    "Customer U [] {\"id\":4,\"name\":\"caf\xc3\xa9 \\\"q\\\"\"}\n"
    "Customer U [] {\"id\":5}\n"
    "opstatus=0\nerrmsg=\nmore=1\ncount=5\n"
    "dc={\"curobj\":\"Customer\",\"objs\":{\"Customer\":{\"delta\":\"2024-01-02T03:04:05Z\","
    "\"odatastring\":\"$filter=age gt 3\",\"bc\":{\"bdelta\":\"b1\",\"batchid\":2,"
    "\"x\":[1.50E+3,true,null,\"a/b\\n\"]}}}}\n"
    "Customer delta=2024-01-02T03:04:05Z bc={\"bdelta\":\"b1\",\"batchid\":2,"
    "\"x\":[1.50E+3,true,null,\"a/b\\n\"]}\n";

static void
test_object_level(void **state)
{
    (void)state;
    s_check_ok(s_customer, s_object_doc, s_object_expected);
}

//  Columns are matched by name whatever their order, which may change from record to record
//  (the parser guesses each column from the previous record's order).
static void
test_column_order(void **state)
{
    (void)state;
    s_check_ok(s_customer,
               "{\"records\":["
               "{\"id\":1,\"name\":\"a\",\"age\":2,\"score\":3,\"active\":true},"
               "{\"active\":false,\"score\":4,\"age\":5,\"name\":\"b\",\"id\":2},"
               "{\"x\":0,\"age\":6,\"id\":3,\"y\":[1],\"active\":null,\"name\":\"c\"},"
               "{\"name\":\"d\",\"id\":4},"
               "{\"name\":\"e\",\"id\":5,\"nam\":1,\"names\":2,\"ID\":3,\"score\":1.5},"
               "{\"id\":6,\"name\":\"f\",\"age\":7,\"score\":8,\"active\":true}]}",
               "Customer U [] {\"id\":1,\"name\":\"a\",\"age\":2,\"score\":3,\"active\":true}\n"
               "Customer U [] {\"id\":2,\"name\":\"b\",\"age\":5,\"score\":4,\"active\":false}\n"
               "Customer U [] {\"id\":3,\"name\":\"c\",\"age\":6,\"active\":null}\n"
               "Customer U [] {\"id\":4,\"name\":\"d\"}\n"
               "Customer U [] {\"id\":5,\"name\":\"e\",\"score\":1.5}\n"
               "Customer U [] {\"id\":6,\"name\":\"f\",\"age\":7,\"score\":8,\"active\":true}\n"
               "errmsg=\nmore=0\ncount=6\ndc=(null)\n");
    //  The key twice is caught also when the guess is right for the first of them.
    s_check_err_str(s_customer, "{\"records\":[{\"id\":1,\"name\":\"a\"},{\"id\":2,\"id\":3}]}",
                    ES_EPROTO, "records[1].id: key column given twice");
}

//  Integers: the short ones are read without strtoll; the limits of int64 and beyond.
static void
test_integers(void **state)
{
    (void)state;
    s_check_ok(s_customer,
               "{\"records\":[{\"id\":0,\"age\":-0},{\"id\":-7,\"age\":123456789012345678},"
               "{\"id\":-123456789012345678,\"age\":9223372036854775807},"
               "{\"id\":-9223372036854775808,\"age\":1999999999999999999},"
               "{\"id\":8,\"age\":2.0e1,\"score\":12345678901234567890}]}",
               "Customer U [] {\"id\":0,\"age\":0}\n"
               "Customer U [] {\"id\":-7,\"age\":123456789012345678}\n"
               "Customer U [] {\"id\":-123456789012345678,\"age\":9223372036854775807}\n"
               "Customer U [] {\"id\":-9223372036854775808,\"age\":1999999999999999999}\n"
               "Customer U [] {\"id\":8,\"age\":20,\"score\":1.2345678901234567e+19}\n"
               "errmsg=\nmore=0\ncount=5\ndc=(null)\n");
    s_check_err_str(s_customer, "{\"records\":[{\"id\":9223372036854775808}]}", ES_EPROTO,
                    "records[0].id: expected int, got number out of int64 range");
    s_check_err_str(s_customer, "{\"records\":[{\"id\":1,\"age\":-10000000000000000000}]}",
                    ES_EPROTO, "records[0].age: expected int, got number out of int64 range");
    s_check_err_str(s_customer, "{\"records\":[{\"id\":1.5}]}", ES_EPROTO,
                    "records[0].id: expected int, got non-integral number");
}

static void
test_records_after_delta_context(void **state)
{
    (void)state;
    const char *doc = "{\"hasMoreRecords\":\"false\",\"delta_context\":{\"objs\":{\"Customer\":"
                      "{\"delta\":12345}}},\"records\":[{\"id\":9,\"_metadata\":{\"action\":"
                      "\"delete\",\"checksum\":\"x\"}}],\"opstatus\":0}";
    s_check_ok(s_customer, doc,
               "Customer D [x] {\"id\":9}\nopstatus=0\nerrmsg=\nmore=0\ncount=1\n"
               "dc={\"objs\":{\"Customer\":{\"delta\":12345}}}\n"
               "Customer delta=12345 bc=(null)\n");
    //  Booleans for hasMoreRecords (Android style), no opstatus, no delta_context.
    s_check_ok(s_customer, "{\"hasMoreRecords\":true,\"records\":[]}",
               "errmsg=\nmore=1\ncount=0\ndc=(null)\n");
    s_check_ok(s_customer, "{\"hasMoreRecords\":false,\"delta_context\":null}",
               "errmsg=\nmore=0\ncount=0\ndc=(null)\n");
    //  delta_context shapes we do not look into are still captured; bc null is no bc.
    s_check_ok(s_customer,
               "{\"delta_context\":{\"objs\":[1],\"x\":{\"objs\":{\"Customer\":{\"delta\":\"n\"}}"
               "}}}",
               "errmsg=\nmore=0\ncount=0\n"
               "dc={\"objs\":[1],\"x\":{\"objs\":{\"Customer\":{\"delta\":\"n\"}}}}\n");
    s_check_ok(s_customer,
               "{\"delta_context\":{\"objs\":{\"Customer\":{\"delta\":null,\"bc\":null},"
               "\"Order\":{\"bc\":\"s\",\"delta\":\"d2\"}, \"Customer\":{\"bc\":[]}}}}",
               "errmsg=\nmore=0\ncount=0\n"
               "dc={\"objs\":{\"Customer\":{\"delta\":null,\"bc\":null},\"Order\":{\"bc\":\"s\","
               "\"delta\":\"d2\"},\"Customer\":{\"bc\":[]}}}\n"
               "Customer delta=(null) bc=[]\nOrder delta=d2 bc=\"s\"\n");
    //  A second delta_context replaces the first.
    s_check_ok(s_customer,
               "{\"delta_context\":{\"objs\":{\"Customer\":{\"delta\":\"1\"}}},"
               "\"delta_context\":{\"objs\":{\"Order\":{\"delta\":\"2\"}}}}",
               "errmsg=\nmore=0\ncount=0\ndc={\"objs\":{\"Order\":{\"delta\":\"2\"}}}\n"
               "Order delta=2 bc=(null)\n");
}

static void
test_error_envelope(void **state)
{
    (void)state;
    s_check_ok(s_customer, "{\"opstatus\":8009,\"errmsg\":\"Invalid input\",\"errcode\":17}",
               "opstatus=8009\nerrmsg=Invalid input\nmore=0\ncount=0\ndc=(null)\n");
    s_check_ok(s_customer, "{\"errcode\":\"E17\",\"opstatus\":\"-3\",\"httpStatusCode\":500}",
               "opstatus=-3\nerrmsg=E17\nmore=0\ncount=0\ndc=(null)\n");
    s_check_ok(NULL, "{\"opstatus\":1013,\"errcode\":1013,\"errmsg\":{\"odd\":1}}",
               "opstatus=1013\nerrmsg=1013\nmore=0\ncount=0\ndc=(null)\n");
}

static const char *s_service_doc =
    "{\"opstatus\":0,\"hasMoreRecords\":\"false\","
    "\"delta_context\":{\"objs\":{\"Customer\":{\"delta\":\"dc1\",\"bc\":{\"batchid\":\"3\"}},"
    "\"Order\":{\"delta\":\"do1\"}}},"
    "\"Objects\":["
    "{\"name\":\"Customer\",\"opstatus\":0,\"httpStatusCode\":200,\"records\":["
    "{\"id\":1,\"name\":\"A\",\"_metadata\":{\"action\":\"update\",\"checksum\":\"k1\"}},"
    "{\"id\":2,\"_metadata\":{\"action\":\"delete\",\"checksum\":\"k2\"}}],"
    "\"_metadata\":{\"recordCount\":2}},"
    "{\"opstatus\":8005,\"name\":\"Customer\",\"records\":[{\"id\":\"bad type\",\"x\":[1]}],"
    "\"errmsg\":\"backend down\"},"
    "{\"opstatus\":0,\"name\":\"Order\",\"records\":[{\"oid\":\"o-1\",\"total\":12.75},"
    "{\"oid\":\"o-2\",\"total\":null,\"_metadata\":{\"action\":\"delete\"}}]},"
    "{\"name\":\"Order\",\"opstatus\":\"500\",\"errcode\":\"E5\",\"records\":[1,2]},"
    "{\"name\":\"Customer\",\"extra\":{\"records\":5},\"records\":[]}"
    "],\"records\":\"ignored at service level\"}";

static void
test_service_level(void **state)
{
    (void)state;
    s_check_ok(NULL, s_service_doc,
               "Customer U [k1] {\"id\":1,\"name\":\"A\"}\n"
               "Customer D [k2] {\"id\":2}\n"
               "ERROR Customer 8005 backend down\n"
               "Order U [] {\"oid\":\"o-1\",\"total\":12.75}\n"
               "Order D [] {\"oid\":\"o-2\",\"total\":null}\n"
               "ERROR Order 500 E5\n"
               "opstatus=0\nerrmsg=\nmore=0\ncount=4\n"
               "dc={\"objs\":{\"Customer\":{\"delta\":\"dc1\",\"bc\":{\"batchid\":\"3\"}},"
               "\"Order\":{\"delta\":\"do1\"}}}\n"
               "Customer delta=dc1 bc={\"batchid\":\"3\"}\n"
               "Order delta=do1 bc=(null)\n");
    //  Object level ignores a root Objects array.
    s_check_ok(s_customer, "{\"Objects\":[{\"name\":\"Foo\",\"records\":[{}]}]}",
               "errmsg=\nmore=0\ncount=0\ndc=(null)\n");
    //  A NULL on_object_error is allowed.
    static const es_dlparse_cb_t cb = {s_on_record, NULL};
    collect_t c = {.records = 0};
    es_buf_init(&c.log);
    es_dlparse_t *p = es_dlparse_new(s_meta, NULL, &cb, &c);
    es_err_t err;
    const char *doc = "{\"Objects\":[{\"name\":\"Order\",\"opstatus\":1}]}";
    assert_int_equal(es_dlparse_feed(p, doc, strlen(doc), &err), 0);
    assert_int_equal(es_dlparse_finish(p, &err), 0);
    assert_int_equal(es_dlparse_finish(p, &err), 0); //  twice is harmless
    assert_null(c.log.data);
    assert_int_equal(es_dlparse_feed(p, "x", 1, &err), -1);
    assert_string_equal(err.what, "response: data after finish");
    es_dlparse_destroy(&p);
    es_dlparse_destroy(&p); //  safe twice
}

static void
test_errors(void **state)
{
    (void)state;
    const es_meta_object_t *c = s_customer;
    s_check_err_str(c, "{\"records\":[{\"id\":1},{\"id\":2},{\"id\":3},{\"id\":4,\"age\":\"x\"}]}",
                    ES_EPROTO, "records[3].age: expected int, got string");
    s_check_err_str(c, "{\"records\":[{\"id\":1,\"age\":{\"y\":1}}]}", ES_EPROTO,
                    "records[0].age: expected int, got object");
    s_check_err_str(c, "{\"records\":[{\"id\":1,\"name\":[]}]}", ES_EPROTO,
                    "records[0].name: expected string, got array");
    s_check_err_str(c, "{\"records\":[{\"id\":1},{\"name\":\"no key\"}]}", ES_EPROTO,
                    "records[1]: Customer: key column 'id' missing");
    s_check_err_str(c, "{\"records\":[{\"id\":null}]}", ES_EPROTO,
                    "records[0].id: expected int, got null (key column)");
    s_check_err_str(c, "{\"records\":[{\"id\":1,\"name\":\"123456789012345678901\"}]}", ES_EPROTO,
                    "records[0].name: string of 21 characters exceeds length 20");
    //  A key column twice names two records in one; another column twice: the last value wins.
    s_check_err_str(c, "{\"records\":[{\"id\":1},{\"id\":2,\"name\":\"a\",\"id\":3}]}", ES_EPROTO,
                    "records[1].id: key column given twice");
    s_check_ok(c, "{\"records\":[{\"id\":2,\"name\":\"a\",\"name\":\"b\"},{\"id\":2}]}",
               "Customer U [] {\"id\":2,\"name\":\"b\"}\nCustomer U [] {\"id\":2}\n"
               "errmsg=\nmore=0\ncount=2\ndc=(null)\n");
    s_check_err_str(c, "{\"records\":{}}", ES_EPROTO, "records: expected an array, got object");
    s_check_err_str(c, "{\"records\":\"x\"}", ES_EPROTO, "records: expected an array, got string");
    s_check_err_str(c, "{\"records\":[{\"id\":1},7]}", ES_EPROTO,
                    "records[1]: expected an object, got number");
    s_check_err_str(c, "{\"records\":[[]]}", ES_EPROTO,
                    "records[0]: expected an object, got array");
    s_check_err_str(c, "{\"records\":[{\"id\":1,\"_metadata\":5}]}", ES_EPROTO,
                    "records[0]._metadata: expected an object, got number");
    s_check_err_str(c, "{\"records\":[{\"id\":1,\"_metadata\":[]}]}", ES_EPROTO,
                    "records[0]._metadata: expected an object, got array");
    s_check_err_str(c, "{\"records\":[{\"id\":1,\"_metadata\":{\"action\":true}}]}", ES_EPROTO,
                    "records[0]._metadata.action: expected a string, got boolean");
    s_check_err_str(c, "{\"records\":[{\"id\":1,\"_metadata\":{\"checksum\":{}}}]}", ES_EPROTO,
                    "records[0]._metadata.checksum: expected a string, got object");
    s_check_err_str(c, "{\"delta_context\":5}", ES_EPROTO,
                    "delta_context: expected an object, got number");
    s_check_err_str(c, "{\"delta_context\":[]}", ES_EPROTO,
                    "delta_context: expected an object, got array");
    s_check_err_str(c, "{\"delta_context\":\"x\"}", ES_EPROTO,
                    "delta_context: expected an object, got string");
    s_check_err_str(c, "{\"hasMoreRecords\":\"yes\"}", ES_EPROTO,
                    "hasMoreRecords: expected \"true\" or \"false\"");
    s_check_err_str(c, "{\"hasMoreRecords\":1}", ES_EPROTO,
                    "hasMoreRecords: expected \"true\" or \"false\"");
    s_check_err_str(c, "{\"hasMoreRecords\":{}}", ES_EPROTO,
                    "hasMoreRecords: expected \"true\" or \"false\"");
    s_check_err_str(c, "{\"opstatus\":\"zero\"}", ES_EPROTO,
                    "opstatus: expected an integer, got string");
    s_check_err_str(c, "{\"opstatus\":1.5}", ES_EPROTO,
                    "opstatus: expected an integer, got number");
    s_check_err_str(c, "{\"opstatus\":99999999999999999999}", ES_EPROTO,
                    "opstatus: expected an integer, got number");
    s_check_err_str(c, "{\"opstatus\":[]}", ES_EPROTO, "opstatus: expected an integer, got array");
    s_check_err_str(c, "[]", ES_EPROTO, "response: expected an object, got array");
    s_check_err_str(c, "\"x\"", ES_EPROTO, "response: expected an object, got string");
    s_check_err_str(c, "null", ES_EPROTO, "response: expected an object, got null");

    //  Service level.
    s_check_err_str(NULL,
                    "{\"Objects\":[{\"name\":\"Customer\",\"records\":[]},{\"name\":\"Foo\"}]}",
                    ES_EPROTO, "Objects[1].name: unknown object 'Foo'");
    s_check_err_str(NULL, "{\"Objects\":[{\"name\":\"Cust\\u0000omer\"}]}", ES_EPROTO,
                    "Objects[0].name: unknown object 'Cust'");
    s_check_err_str(NULL, "{\"Objects\":[{\"name\":5}]}", ES_EPROTO,
                    "Objects[0].name: expected a string, got number");
    s_check_err_str(NULL, "{\"Objects\":[{\"name\":{}}]}", ES_EPROTO,
                    "Objects[0].name: expected a string, got object");
    s_check_err_str(NULL, "{\"Objects\":[{\"records\":[],\"name\":\"Order\"}]}", ES_EPROTO,
                    "Objects[0].records: must come after name");
    s_check_err_str(NULL, "{\"Objects\":[{\"name\":\"Order\",\"records\":{}}]}", ES_EPROTO,
                    "Objects[0].records: expected an array, got object");
    s_check_err_str(NULL, "{\"Objects\":[{\"name\":\"Order\",\"records\":null}]}", ES_EPROTO,
                    "Objects[0].records: expected an array, got null");
    s_check_err_str(NULL,
                    "{\"Objects\":[{\"name\":\"Order\",\"records\":[]},{\"name\":\"Order\","
                    "\"records\":[{\"oid\":\"a\"},{\"oid\":\"b\",\"total\":\"12\"}]}]}",
                    ES_EPROTO, "Objects[1].records[1].total: expected number, got string");
    s_check_err_str(NULL, "{\"Objects\":[{\"name\":\"Order\",\"opstatus\":true}]}", ES_EPROTO,
                    "Objects[0].opstatus: expected an integer, got boolean");
    s_check_err_str(NULL, "{\"Objects\":[{\"name\":\"Order\",\"opstatus\":[]}]}", ES_EPROTO,
                    "Objects[0].opstatus: expected an integer, got array");
    s_check_err_str(NULL, "{\"Objects\":{}}", ES_EPROTO, "Objects: expected an array, got object");
    s_check_err_str(NULL, "{\"Objects\":1}", ES_EPROTO, "Objects: expected an array, got number");
    s_check_err_str(NULL, "{\"Objects\":[[]]}", ES_EPROTO,
                    "Objects[0]: expected an object, got array");
    s_check_err_str(NULL, "{\"Objects\":[{\"name\":\"Order\"},\"x\"]}", ES_EPROTO,
                    "Objects[1]: expected an object, got string");

    //  Invalid JSON, with the byte offset.
    s_check_err_str(c, "{\"records\":[}", ES_EPROTO,
                    "response: invalid JSON at byte 13: parse error: unallowed token at this "
                    "point in JSON text");
    s_check_err_str(c, "{\"opstatus\":0} x", ES_EPROTO,
                    "response: invalid JSON at byte 16: parse error: trailing garbage");
    s_check_err_str(c, "{\"a\":tru}", ES_EPROTO,
                    "response: invalid JSON at byte 8: lexical error: invalid string in json "
                    "text.");
    s_check_err_str(c, "", ES_EPROTO,
                    "response: invalid JSON at byte 0: parse error: premature EOF");
    s_check_err_str(c, "{\"records\":[{\"id\":1}", ES_EPROTO,
                    "response: invalid JSON at byte 20: parse error: premature EOF");
    //  Comments are not JSON (yajl defaults).
    s_check_err_str(c, "{/* c */}", ES_EPROTO,
                    "response: invalid JSON at byte 1: lexical error: probable comment found in "
                    "input text, comments are not enabled.");
}

static void
test_invalid_utf8(void **state)
{
    (void)state;
    s_check_err_str(s_customer, "{\"records\":[{\"id\":1,\"name\":\"a\xff\"}]}", ES_EPROTO,
                    "response: invalid JSON at byte 30: lexical error: invalid bytes in UTF8 "
                    "string.");
    //  In a key and in an ignored value too.
    s_check_err_str(s_customer, "{\"x\xc3\":1}", ES_EPROTO,
                    "response: invalid JSON at byte 5: lexical error: invalid bytes in UTF8 "
                    "string.");
    s_check_err_str(s_customer, "{\"x\":[\"ok\",\"\x80\"]}", ES_EPROTO,
                    "response: invalid JSON at byte 13: lexical error: invalid bytes in UTF8 "
                    "string.");
}

//  depth levels of arrays under an ignored root key.
static char *
s_nested(int depth)
{
    es_buf_t b;
    es_buf_init(&b);
    es_buf_puts(&b, "{\"x\":");
    for (int i = 1; i < depth; i++)
        es_buf_putc(&b, '[');
    for (int i = 1; i < depth; i++)
        es_buf_putc(&b, ']');
    es_buf_putc(&b, '}');
    return es_buf_steal(&b);
}

static void
test_nesting(void **state)
{
    (void)state;
    char *ok = s_nested(64), *bad = s_nested(65);
    s_check_ok(s_customer, ok, "errmsg=\nmore=0\ncount=0\ndc=(null)\n");
    s_check_err_str(s_customer, bad, ES_EPROTO, "response: nesting deeper than 64");
    free(ok);
    free(bad);
    //  Inside a record and inside delta_context as well.
    es_buf_t b;
    es_buf_init(&b);
    es_buf_puts(&b, "{\"delta_context\":{\"objs\":{\"Customer\":{\"bc\":");
    for (int i = 0; i < 61; i++)
        es_buf_putc(&b, '[');
    s_check_err(s_customer, b.data, b.len, ES_EPROTO, "response: nesting deeper than 64");
    es_buf_reset(&b);
    es_buf_puts(&b, "{\"records\":[{\"id\":1,\"Child\":");
    for (int i = 0; i < 62; i++)
        es_buf_putc(&b, '[');
    s_check_err(s_customer, b.data, b.len, ES_EPROTO, "response: nesting deeper than 64");
    es_buf_release(&b);
}

static void
test_delta_context_too_big(void **state)
{
    (void)state;
    size_t n = 1024 * 1024;
    char *doc = es_malloc(n + 100);
    int len = snprintf(doc, 100, "{\"delta_context\":{\"objs\":{\"Customer\":{\"delta\":\"");
    memset(doc + len, 'a', n);
    strcpy(doc + len + n, "\"}}}}");
    s_check_err_str(s_customer, doc, ES_EPROTO, "delta_context: larger than 1 MiB");
    //  Just under the limit is fine (the compact text is the input here).
    size_t under = n - strlen("{\"objs\":{\"Customer\":{\"delta\":\"\"}}}");
    strcpy(doc + len + under, "\"}}}}");
    collect_t c = {.records = 0};
    es_buf_init(&c.log);
    es_dlparse_t *p;
    es_err_t err;
    assert_int_equal(s_run(s_customer, doc, strlen(doc), FEED_WHOLE, &c, &p, &err), 0);
    assert_int_equal(strlen(es_dlparse_delta_context(p)), n);
    assert_int_equal(strlen(es_dlparse_delta(p, "Customer")), under);
    es_dlparse_destroy(&p);
    free(doc);
}

static void
test_callback_error(void **state)
{
    (void)state;
    const char *doc = "{\"records\":[{\"id\":1},{\"id\":2},{\"id\":3}]}";
    collect_t c = {.fail_at = 2};
    es_buf_init(&c.log);
    es_dlparse_t *p;
    es_err_t err;
    assert_int_equal(s_run(s_customer, doc, strlen(doc), FEED_WHOLE, &c, &p, &err), -1);
    assert_int_equal(err.code, ES_ESTORE);
    assert_string_equal(err.what, "store: full");
    assert_int_equal(c.records, 2); //  the parse stopped at the failing record
    es_dlparse_destroy(&p);
    es_buf_release(&c.log);
}

//  Every proper prefix of a valid document is an error naming the end of the input.
static void
test_prefixes(void **state)
{
    (void)state;
    const char *docs[] = {s_object_doc, s_service_doc};
    const es_meta_object_t *objs[] = {s_customer, NULL};
    for (size_t d = 0; d < 2; d++) {
        size_t len = strlen(docs[d]);
        for (size_t n = 0; n < len; n++) {
            collect_t c = {.records = 0};
            es_buf_init(&c.log);
            es_dlparse_t *p;
            es_err_t err = {.code = ES_OK};
            assert_int_equal(s_run(objs[d], docs[d], n, FEED_WHOLE, &c, &p, &err), -1);
            assert_int_equal(err.code, ES_EPROTO);
            char want[64];
            snprintf(want, sizeof want, "response: invalid JSON at byte %zu: ", n);
            if (strncmp(err.what, want, strlen(want)) != 0)
                fail_msg("prefix %zu: %s", n, err.what);
            es_dlparse_destroy(&p);
            es_buf_release(&c.log);
        }
    }
}

// ---------------------------------------------------------------------------------------------
//  A 20 MB response: records counted, memory flat.

typedef struct {
    size_t records;  //  records seen
    int64_t next_id; //  expected id of the next record
    size_t base;     //  heap in use when record 1000 arrived
    size_t peak;     //  highest heap in use seen from then on
    bool ok;         //  every record had the expected id and checksum
} big_t;

static size_t
s_heap_used(void)
{
    struct mallinfo2 mi = mallinfo2();
    return mi.uordblks + mi.hblkhd;
}

static int
s_big_record(void *ctx, const es_dl_record_t *r, es_err_t *err)
{
    (void)err;
    big_t *b = ctx;
    es_value_t v;
    if (es_record_get(r->rec, r->rec_len, "id", &v) != 1 || v.type != ES_V_INT ||
        v.u.i != b->next_id || strcmp(r->checksum, "0123456789abcdef") != 0 ||
        r->is_delete != (b->next_id % 10 == 0))
        b->ok = false;
    b->next_id++;
    b->records++;
    //  mallinfo2 walks the heap: sample every 97th record (odd, so not in step with anything).
    if (b->records % 97 != 0 && b->records != 1000)
        return 0;
    size_t used = s_heap_used();
    if (b->records == 1000)
        b->base = used;
    if (b->records >= 1000 && used > b->peak)
        b->peak = used;
    return 0;
}

static void
test_big_response(void **state)
{
    (void)state;
    es_buf_t doc;
    es_buf_init(&doc);
    es_buf_puts(&doc, "{\"opstatus\":0,\"records\":[");
    size_t n = 0;
    while (doc.len < 20u * 1024 * 1024) {
        es_buf_printf(&doc,
                      "%s{\"id\":%zu,\"name\":\"name %zu\",\"age\":%zu,\"score\":%zu.25,"
                      "\"active\":%s,\"_metadata\":{\"action\":\"%s\",\"checksum\":"
                      "\"0123456789abcdef\"}}",
                      n ? "," : "", n, n, n % 100, n, n % 2 ? "true" : "false",
                      n % 10 == 0 ? "delete" : "update");
        n++;
    }
    es_buf_puts(&doc, "],\"delta_context\":{\"objs\":{\"Customer\":{\"delta\":\"end\"}}},"
                      "\"hasMoreRecords\":\"false\"}");

    static const es_dlparse_cb_t cb = {s_big_record, NULL};
    big_t b = {.ok = true};
    size_t before = s_heap_used();
    es_dlparse_t *p = es_dlparse_new(s_meta, s_customer, &cb, &b);
    es_err_t err;
    size_t chunk = 64 * 1024;
    for (size_t off = 0; off < doc.len; off += chunk) {
        size_t len = doc.len - off < chunk ? doc.len - off : chunk;
        if (es_dlparse_feed(p, doc.data + off, len, &err))
            fail_msg("%s", err.what);
    }
    assert_int_equal(es_dlparse_finish(p, &err), 0);
    size_t after = s_heap_used();
    assert_true(b.ok);
    assert_int_equal(b.records, n);
    assert_int_equal(es_dlparse_count(p), n);
    assert_string_equal(es_dlparse_delta(p, "Customer"), "end");
    //  Flat: nothing accumulates per record, and the parser as a whole stays within a few KB.
    //  (Under AddressSanitizer or valgrind mallinfo2 reports zeros and this checks nothing.)
    if (b.peak > b.base + 1024)
        fail_msg("heap grew by %zu bytes between record 1000 and %zu", b.peak - b.base, n);
    if (after > before + 16 * 1024)
        fail_msg("parser holds %zu bytes after %zu records", after - before, n);
    print_message("big: %zu records, %zu bytes, parser heap %zd bytes\n", n, doc.len,
                  (ssize_t)(after - before));
    es_dlparse_destroy(&p);
    es_buf_release(&doc);
}

static int
s_setup(void **state)
{
    (void)state;
    es_err_t err;
    s_meta = es_meta_new(s_meta_json, strlen(s_meta_json), &err);
    if (!s_meta) {
        fprintf(stderr, "meta: %s\n", err.what);
        return -1;
    }
    s_customer = es_meta_object(s_meta, "Customer");
    return s_customer ? 0 : -1;
}

static int
s_teardown(void **state)
{
    (void)state;
    es_meta_destroy(&s_meta);
    return 0;
}

//  Found by fuzz/fuzz_dlparse: each delta_context.objs name was looked up among all before it,
//  so 1 MiB of names took 10 s. Now one entry per key; a repeated name: the last one counts.
static void
test_many_delta_objs(void **state)
{
    (void)state;
    es_buf_t doc;
    es_buf_init(&doc);
    es_buf_puts(&doc, "{\"records\":[],\"delta_context\":{\"objs\":{"
                      "\"Customer\":{\"delta\":\"first\",\"bc\":[1]}");
    for (int i = 0; i < 60000; i++)
        es_buf_printf(&doc, ",\"o%d\":{}", i);
    es_buf_puts(&doc, ",\"Customer\":{\"delta\":\"last\"}}}}");
    collect_t c = {0};
    es_buf_init(&c.log);
    es_dlparse_t *p = es_dlparse_new(s_meta, s_customer, &s_cb, &c);
    es_err_t err;
    assert_int_equal(es_dlparse_feed(p, doc.data, doc.len, &err), 0);
    assert_int_equal(es_dlparse_finish(p, &err), 0);
    assert_string_equal(es_dlparse_delta(p, "Customer"), "last");
    assert_null(es_dlparse_bc(p, "Customer"));
    assert_null(es_dlparse_delta(p, "o7"));
    size_t wrapper = strlen("{\"records\":[],\"delta_context\":}");
    assert_int_equal(strlen(es_dlparse_delta_context(p)), doc.len - wrapper);
    es_dlparse_destroy(&p);
    es_buf_release(&c.log);
    es_buf_release(&doc);
}

//  Keys-only mode: each record's key equals es_key_from_record of the record the normal mode
//  builds (int and string keys, service level), and a missing key fails with the same text.
typedef struct {
    es_buf_t keys; //  [object]\t[hex key]\n per record
    bool from_rec; //  normal mode: encode the key from the record
} keys_t;

static int
s_on_key(void *ctx, const es_dl_record_t *r, es_err_t *err)
{
    keys_t *k = ctx;
    es_buf_t key;
    es_buf_init(&key);
    if (k->from_rec) {
        assert_null(r->key);
        assert_int_equal(es_key_from_record(r->object, r->rec, r->rec_len, &key, err), 0);
    } else {
        assert_null(r->rec);
        es_buf_append(&key, r->key, r->key_len);
    }
    es_buf_printf(&k->keys, "%s\t", r->object->name);
    for (size_t i = 0; i < key.len; i++)
        es_buf_printf(&k->keys, "%02x", (unsigned char)key.data[i]);
    es_buf_puts(&k->keys, "\n");
    es_buf_release(&key);
    return 0;
}

static void
s_keys(const char *doc, bool keys_only, es_buf_t *out, es_err_t *err, int *rc)
{
    static const es_dlparse_cb_t cb = {s_on_key, NULL};
    keys_t k = {.from_rec = !keys_only};
    es_buf_init(&k.keys);
    es_dlparse_t *p = es_dlparse_new(s_meta, NULL, &cb, &k);
    assert_non_null(p);
    if (keys_only)
        es_dlparse_keys_only(p);
    *rc = es_dlparse_feed(p, doc, strlen(doc), err);
    if (*rc == 0)
        *rc = es_dlparse_finish(p, err);
    es_dlparse_destroy(&p);
    *out = k.keys;
}

static void
test_keys_only(void **state)
{
    (void)state;
    const char *doc =
        "{\"opstatus\":0,\"Objects\":["
        "{\"name\":\"Customer\",\"opstatus\":0,\"records\":[{\"id\":1},{\"id\":-7,\"name\":\"x\"},"
        "{\"id\":9223372036854775807},{\"age\":3,\"id\":42}]},"
        "{\"name\":\"Order\",\"opstatus\":0,\"records\":[{\"oid\":\"\"},{\"oid\":\"a\\u00e9b\"},"
        "{\"oid\":\"zz\",\"total\":1.5}]}],\"hasMoreRecords\":\"false\"}";
    es_buf_t a, b;
    es_err_t e1 = {0}, e2 = {0};
    int rc1, rc2;
    s_keys(doc, false, &a, &e1, &rc1);
    s_keys(doc, true, &b, &e2, &rc2);
    assert_int_equal(rc1, 0);
    assert_int_equal(rc2, 0);
    assert_non_null(a.data);
    assert_string_equal(a.data, b.data);
    assert_int_equal(strlen(a.data) > 0 && strchr(a.data, '\n') != NULL, 1);
    es_buf_release(&a);
    es_buf_release(&b);
    //  A record without its key: the same error either way.
    const char *bad = "{\"opstatus\":0,\"Objects\":[{\"name\":\"Customer\",\"opstatus\":0,"
                      "\"records\":[{\"id\":1},{\"name\":\"n\"}]}]}";
    s_keys(bad, false, &a, &e1, &rc1);
    s_keys(bad, true, &b, &e2, &rc2);
    assert_int_equal(rc1, -1);
    assert_int_equal(rc2, -1);
    assert_string_equal(e1.what, e2.what);
    assert_non_null(strstr(e2.what, "key column 'id' missing"));
    es_buf_release(&a);
    es_buf_release(&b);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_object_level),   cmocka_unit_test(test_records_after_delta_context),
        cmocka_unit_test(test_error_envelope), cmocka_unit_test(test_service_level),
        cmocka_unit_test(test_errors),         cmocka_unit_test(test_invalid_utf8),
        cmocka_unit_test(test_nesting),        cmocka_unit_test(test_delta_context_too_big),
        cmocka_unit_test(test_callback_error), cmocka_unit_test(test_prefixes),
        cmocka_unit_test(test_big_response),   cmocka_unit_test(test_many_delta_objs),
        cmocka_unit_test(test_column_order),   cmocka_unit_test(test_integers),
        cmocka_unit_test(test_keys_only),
    };
    return cmocka_run_group_tests(tests, s_setup, s_teardown);
}
