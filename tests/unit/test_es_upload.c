//  Unit tests of es_upload: request bodies compared as exact text (nulls omitted, metadata order,
//  counters, every action, numbers that round-trip), and upload responses (successes, failed
//  records, temporary keys, rowId forms, unknown objects, error envelopes, every wrong type,
//  malformed JSON, every prefix, nesting bound, 1000 records).
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
#include "protocol/es_json.h"
#include "protocol/es_meta.h"
#include "protocol/es_record.h"
#include "protocol/es_upload.h"
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *s_meta_json =
    "{\"name\":\"Svc\",\"version\":\"1.0\",\"objects\":["
    "{\"name\":\"Customer\",\"key\":[\"id\"],\"fields\":["
    "{\"name\":\"id\",\"datatype\":\"int\",\"nullable\":false,\"auto_generated\":true},"
    "{\"name\":\"name\",\"datatype\":\"string\",\"length\":20,\"nullable\":true},"
    "{\"name\":\"age\",\"datatype\":\"int\",\"nullable\":true},"
    "{\"name\":\"score\",\"datatype\":\"number\",\"nullable\":true},"
    "{\"name\":\"active\",\"datatype\":\"boolean\",\"nullable\":true},"
    "{\"name\":\"born\",\"datatype\":\"date\",\"nullable\":true}]},"
    "{\"name\":\"Order\",\"key\":[\"oid\"],\"fields\":["
    "{\"name\":\"oid\",\"datatype\":\"string\",\"nullable\":false},"
    "{\"name\":\"total\",\"datatype\":\"number\",\"nullable\":true}]},"
    "{\"name\":\"Line\",\"key\":[\"order\",\"no\"],\"fields\":["
    "{\"name\":\"order\",\"datatype\":\"string\",\"nullable\":false},"
    "{\"name\":\"no\",\"datatype\":\"int\",\"nullable\":false},"
    "{\"name\":\"qty\",\"datatype\":\"int\",\"nullable\":true}]}]}";

static es_meta_t *s_meta;
static const es_meta_object_t *s_customer, *s_order, *s_line;

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
    s_order = es_meta_object(s_meta, "Order");
    s_line = es_meta_object(s_meta, "Line");
    return 0;
}

static int
s_teardown(void **state)
{
    (void)state;
    es_meta_destroy(&s_meta);
    return 0;
}

//  A record from JSON (through the builder, as the store would hold it).
static void
s_rec(const es_meta_object_t *obj, const char *json, es_buf_t *out)
{
    es_err_t err;
    es_buf_reset(out);
    if (es_record_from_json(obj, json, strlen(json), out, &err))
        fail_msg("record %s: %s", json, err.what);
}

static void
s_add(es_upload_body_t *b, const es_meta_object_t *obj, const char *action, uint64_t rsn,
      const char *checksum, const char *json)
{
    es_buf_t rec;
    es_buf_init(&rec);
    s_rec(obj, json, &rec);
    es_err_t err;
    if (es_upload_body_add(b, obj, action, rsn, checksum, strlen(checksum), rec.data, rec.len,
                           &err))
        fail_msg("add %s: %s", json, err.what);
    es_buf_release(&rec);
}

#define HEAD(more, n, k)                                                                           \
    "{\"checksum\":\"\",\"sessionID\":\"\",\"echo\":[],\"hasMoreRecords\":\"" more "\","           \
    "\"abortonError\":\"false\",\"_metadata\":{\"totalNamespaces\":\"0\",\"totalRecords\":\"" n    \
    "\",\"totalObjects\":\"" k "\",\"recordCount\":\"" n "\"},\"records\":["

//  ---------------------------------------------------------------------------------------------
//  Body

static void
test_body_empty(void **state)
{
    (void)state;
    es_upload_body_t *b = es_upload_body_new();
    size_t len = 99;
    const char *text = es_upload_body_end(b, false, &len);
    assert_string_equal(text, HEAD("false", "0", "0") "]}");
    assert_int_equal(len, strlen(text));
    assert_int_equal(es_upload_body_count(b), 0);
    es_upload_body_destroy(&b);
    assert_null(b);
    es_upload_body_destroy(&b); //  safe twice
}

static void
test_body_one(void **state)
{
    (void)state;
    es_upload_body_t *b = es_upload_body_new();
    //  Input out of metadata order, a null column and an absent one: output in metadata order,
    //  null omitted.
    s_add(b, s_customer, "create", 7, "",
          "{\"active\":true,\"score\":1.5,\"age\":null,\"name\":\"Ann \\\"A\\\"\",\"id\":-1}");
    assert_int_equal(es_upload_body_count(b), 1);
    size_t len;
    const char *text = es_upload_body_end(b, false, &len);
    assert_string_equal(text, HEAD("false", "1", "1") "{\"id\":-1,\"name\":\"Ann \\\"A\\\"\","
                                                      "\"score\":1.5,\"active\":true,"
                                                      "\"_metadata\":{\"object\":\"Customer\","
                                                      "\"action\":\"create\",\"checksum\":\"\","
                                                      "\"rowId\":7,\"ignore_duplicate\":\"false\"}}"
                                                      "]}");
    assert_int_equal(len, strlen(text));
    //  end is repeatable and does not consume the records.
    assert_string_equal(es_upload_body_end(b, true, NULL),
                        HEAD("true", "1", "1") "{\"id\":-1,\"name\":\"Ann \\\"A\\\"\","
                                               "\"score\":1.5,\"active\":true,"
                                               "\"_metadata\":{\"object\":\"Customer\","
                                               "\"action\":\"create\",\"checksum\":\"\","
                                               "\"rowId\":7,\"ignore_duplicate\":\"false\"}}"
                                               "]}");
    es_upload_body_destroy(&b);
}

static void
test_body_several(void **state)
{
    (void)state;
    es_upload_body_t *b = es_upload_body_new();
    s_add(b, s_customer, "create", 1, "", "{\"id\":-1,\"name\":\"A\",\"born\":\"2001-02-03\"}");
    s_add(b, s_order, "update", 2, "abc", "{\"oid\":\"o1\",\"total\":10}");
    s_add(b, s_customer, "partialupdate", 3, "h1", "{\"id\":5,\"age\":30,\"active\":false}");
    s_add(b, s_order, "delete", 18446744073709551615ULL, "x\"y", "{\"oid\":\"o2\"}");
    s_add(b, s_line, "create", 5, "", "{\"no\":2,\"order\":\"o1\",\"qty\":null}");
    assert_int_equal(es_upload_body_count(b), 5);
    const char *expect =
        HEAD("true", "5", "3") "{\"id\":-1,\"name\":\"A\",\"born\":\"2001-02-03\",\"_metadata\":{"
                               "\"object\":\"Customer\",\"action\":\"create\",\"checksum\":\"\","
                               "\"rowId\":1,\"ignore_duplicate\":\"false\"}},"
                               "{\"oid\":\"o1\",\"total\":10,\"_metadata\":{\"object\":\"Order\","
                               "\"action\":\"update\",\"checksum\":\"abc\",\"rowId\":2,"
                               "\"ignore_duplicate\":\"false\"}},"
                               "{\"id\":5,\"age\":30,\"active\":false,\"_metadata\":{\"object\":"
                               "\"Customer\",\"action\":\"partialupdate\",\"checksum\":\"h1\","
                               "\"rowId\":3,\"ignore_duplicate\":\"false\"}},"
                               "{\"oid\":\"o2\",\"_metadata\":{\"object\":\"Order\",\"action\":"
                               "\"delete\",\"checksum\":\"x\\\"y\",\"rowId\":18446744073709551615,"
                               "\"ignore_duplicate\":\"false\"}},"
                               "{\"order\":\"o1\",\"no\":2,\"_metadata\":{\"object\":\"Line\","
                               "\"action\":\"create\",\"checksum\":\"\",\"rowId\":5,"
                               "\"ignore_duplicate\":\"false\"}}]}";
    assert_string_equal(es_upload_body_end(b, true, NULL), expect);

    //  Reset starts over: counters and objects too.
    es_upload_body_reset(b);
    assert_int_equal(es_upload_body_count(b), 0);
    s_add(b, s_order, "delete", 9, "", "{\"oid\":\"z\"}");
    assert_string_equal(
        es_upload_body_end(b, false, NULL),
        HEAD("false", "1", "1") "{\"oid\":\"z\",\"_metadata\":{\"object\":\"Order\","
                                "\"action\":\"delete\",\"checksum\":\"\","
                                "\"rowId\":9,\"ignore_duplicate\":\"false\"}}]}");
    es_upload_body_destroy(&b);
}

//  The record part of the body, parsed back into a record, equals the original bytes.
static void
test_body_numbers_round_trip(void **state)
{
    (void)state;
    static const char *scores[] = {"0.1",
                                   "1e300",
                                   "-2.5e-310",
                                   "123456789.123456789",
                                   "0.3333333333333333",
                                   "-0.0",
                                   "5e-324",
                                   "1.7976931348623157e308",
                                   "100"};
    static const char *ages[] = {"9223372036854775807", "-9223372036854775808", "0", "-1"};
    for (size_t i = 0; i < sizeof scores / sizeof scores[0]; i++) {
        char json[200];
        snprintf(json, sizeof json, "{\"id\":1,\"score\":%s,\"age\":%s}", scores[i],
                 ages[i % (sizeof ages / sizeof ages[0])]);
        es_buf_t rec, back, out;
        es_buf_init(&rec);
        es_buf_init(&back);
        es_buf_init(&out);
        s_rec(s_customer, json, &rec);
        es_upload_body_t *b = es_upload_body_new();
        es_err_t err;
        assert_int_equal(
            es_upload_body_add(b, s_customer, "update", 1, NULL, 0, rec.data, rec.len, &err), 0);
        const char *body = es_upload_body_end(b, false, NULL);
        char ebuf[128];
        yajl_val root = yajl_tree_parse(body, ebuf, sizeof ebuf);
        assert_non_null(root);
        const char *path[] = {"records", NULL};
        yajl_val recs = yajl_tree_get(root, path, yajl_t_array);
        assert_non_null(recs);
        assert_int_equal(recs->u.array.len, 1);
        es_json_write(&out, recs->u.array.values[0]);
        assert_int_equal(es_record_from_json(s_customer, out.data, out.len, &back, &err), 0);
        if (strcmp(scores[i], "-0.0") != 0) {
            assert_int_equal(back.len, rec.len);
            assert_memory_equal(back.data, rec.data, rec.len);
        }
        //  Same values: ints exact, doubles bit for bit. An integral double comes back as an
        //  int of equal value ("100", "-0": es_record_to_json spells them so too), which the
        //  number column accepts; only the sign of a zero is lost.
        static const char *cols[] = {"id", "age", "score"};
        for (size_t k = 0; k < 3; k++) {
            es_value_t a, z;
            assert_int_equal(es_record_get(rec.data, rec.len, cols[k], &a), 1);
            assert_int_equal(es_record_get(back.data, back.len, cols[k], &z), 1);
            if (a.type == ES_V_DOUBLE && z.type == ES_V_INT)
                assert_true(a.u.d == (double)z.u.i);
            else if (a.type == ES_V_DOUBLE)
                assert_memory_equal(&a.u.d, &z.u.d, sizeof a.u.d);
            else
                assert_int_equal(a.u.i, z.u.i);
            assert_true(a.type == z.type || (a.type == ES_V_DOUBLE && a.u.d == 0 && z.u.i == 0));
        }
        //  Same text as es_record_to_json writes for the number.
        es_buf_reset(&out);
        assert_int_equal(es_record_to_json(rec.data, rec.len, &out, &err), 0);
        const char *num = strstr(out.data, "\"score\":") + 8;
        size_t nlen = strcspn(num, ",}");
        char needle[80];
        snprintf(needle, sizeof needle, "\"score\":%.*s,", (int)nlen, num);
        assert_non_null(strstr(body, needle));
        yajl_tree_free(root);
        es_upload_body_destroy(&b);
        es_buf_release(&rec);
        es_buf_release(&back);
        es_buf_release(&out);
    }
}

static void
s_pack_str(msgpack_packer *pk, const char *s)
{
    msgpack_pack_str(pk, strlen(s));
    msgpack_pack_str_body(pk, s, strlen(s));
}

static int
s_sbuf_write(void *data, const char *buf, size_t len)
{
    es_buf_append(data, buf, len);
    return 0;
}

//  Doubles are written as "%.15g" when that reads back, else "%.17g" (short decimals take a
//  shortcut to the same text).
static void
test_body_double_text(void **state)
{
    (void)state;
    static const double values[] = {2.25,    -0.5,   0.1 + 0.2, 1234.5678, 0.0001,
                                    0.00001, 1e15,   1e14,      -99.99,    12345678901234.5,
                                    0.3,     1.0005, 1e-300,    123.4560,  999999999999999.9,
                                    -7.0625};
    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
        char want[64], tmp[40];
        snprintf(tmp, sizeof tmp, "%.15g", values[i]);
        if (strtod(tmp, NULL) != values[i])
            snprintf(tmp, sizeof tmp, "%.17g", values[i]);
        snprintf(want, sizeof want, "\"score\":%s,", tmp);
        es_buf_t rec;
        es_buf_init(&rec);
        msgpack_packer pk;
        msgpack_packer_init(&pk, &rec, s_sbuf_write);
        msgpack_pack_map(&pk, 2);
        s_pack_str(&pk, "id");
        msgpack_pack_int(&pk, 1);
        s_pack_str(&pk, "score");
        msgpack_pack_double(&pk, values[i]);
        es_upload_body_t *b = es_upload_body_new();
        es_err_t err;
        assert_int_equal(
            es_upload_body_add(b, s_customer, "update", 1, NULL, 0, rec.data, rec.len, &err), 0);
        const char *body = es_upload_body_end(b, false, NULL);
        if (!strstr(body, want))
            fail_msg("%.17g: want %s in %s", values[i], want, body);
        es_upload_body_destroy(&b);
        es_buf_release(&rec);
    }
}

//  Hand-made maps: a column not in metadata is dropped; columns come out in metadata order.
static void
test_body_foreign_column(void **state)
{
    (void)state;
    es_buf_t rec;
    es_buf_init(&rec);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &rec, s_sbuf_write);
    msgpack_pack_map(&pk, 4);
    s_pack_str(&pk, "name");
    s_pack_str(&pk, "Bo");
    s_pack_str(&pk, "extra");
    msgpack_pack_int(&pk, 5);
    s_pack_str(&pk, "age");
    msgpack_pack_nil(&pk);
    s_pack_str(&pk, "id");
    msgpack_pack_int(&pk, 3);
    es_upload_body_t *b = es_upload_body_new();
    es_err_t err;
    assert_int_equal(
        es_upload_body_add(b, s_customer, "update", 4, "c", 1, rec.data, rec.len, &err), 0);
    assert_string_equal(es_upload_body_end(b, false, NULL),
                        HEAD("false", "1", "1") "{\"id\":3,\"name\":\"Bo\",\"_metadata\":{"
                                                "\"object\":\"Customer\",\"action\":\"update\","
                                                "\"checksum\":\"c\",\"rowId\":4,"
                                                "\"ignore_duplicate\":\"false\"}}]}");
    es_upload_body_destroy(&b);
    es_buf_release(&rec);
}

static void
test_body_errors(void **state)
{
    (void)state;
    es_upload_body_t *b = es_upload_body_new();
    s_add(b, s_order, "create", 1, "", "{\"oid\":\"a\"}");
    const char *before = HEAD("false", "1", "1") "{\"oid\":\"a\",\"_metadata\":{\"object\":"
                                                 "\"Order\",\"action\":\"create\",\"checksum\":"
                                                 "\"\",\"rowId\":1,\"ignore_duplicate\":"
                                                 "\"false\"}}]}";
    es_buf_t good;
    es_buf_init(&good);
    s_rec(s_order, "{\"oid\":\"b\"}", &good);
    es_err_t err;

    assert_int_equal(es_upload_body_add(b, s_order, "upsert", 2, "", 0, good.data, good.len, &err),
                     -1);
    assert_int_equal(err.code, ES_EINVAL);
    assert_string_equal(err.what,
                        "Order: action 'upsert' is not create, update, partialupdate or delete");
    assert_int_equal(es_upload_body_add(b, s_order, NULL, 2, "", 0, good.data, good.len, &err), -1);
    assert_string_equal(err.what,
                        "Order: action '(null)' is not create, update, partialupdate or delete");
    assert_int_equal(es_upload_body_add(b, NULL, "create", 2, "", 0, good.data, good.len, &err),
                     -1);
    assert_string_equal(err.what, "upload record: no object");
    assert_int_equal(
        es_upload_body_add(b, s_order, "create", 2, NULL, 3, good.data, good.len, &err), -1);
    assert_string_equal(err.what, "Order: checksum of 3 bytes without data");

    //  Not a map; truncated map; trailing bytes; NULL.
    const unsigned char notmap[] = {0x01};
    assert_int_equal(
        es_upload_body_add(b, s_order, "create", 2, "", 0, notmap, sizeof notmap, &err), -1);
    assert_int_equal(err.code, ES_EINVAL);
    assert_string_equal(err.what, "Order: record: not a MessagePack map");
    assert_int_equal(
        es_upload_body_add(b, s_order, "create", 2, "", 0, good.data, good.len - 1, &err), -1);
    assert_string_equal(err.what, "Order: record: malformed entry 0 at byte 6");
    es_buf_t longer;
    es_buf_init(&longer);
    es_buf_append(&longer, good.data, good.len);
    es_buf_putc(&longer, 0x00);
    assert_int_equal(
        es_upload_body_add(b, s_order, "create", 2, "", 0, longer.data, longer.len, &err), -1);
    assert_string_equal(err.what, "Order: record: 1 trailing bytes");
    assert_int_equal(es_upload_body_add(b, s_order, "create", 2, "", 0, NULL, 0, &err), -1);
    assert_string_equal(err.what, "Order: record: not a MessagePack map");

    //  Key missing (a Customer record offered as an Order), and a key that is null.
    es_buf_t cust;
    es_buf_init(&cust);
    s_rec(s_customer, "{\"id\":1}", &cust);
    assert_int_equal(es_upload_body_add(b, s_order, "delete", 2, "", 0, cust.data, cust.len, &err),
                     -1);
    assert_string_equal(err.what, "Order: key column 'oid' missing");
    es_buf_t nullkey;
    es_buf_init(&nullkey);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &nullkey, s_sbuf_write);
    msgpack_pack_map(&pk, 1);
    s_pack_str(&pk, "oid");
    msgpack_pack_nil(&pk);
    assert_int_equal(
        es_upload_body_add(b, s_order, "delete", 2, "", 0, nullkey.data, nullkey.len, &err), -1);
    assert_string_equal(err.what, "Order: key column 'oid' missing");

    //  A non-finite double (the builder never makes one; a corrupt map might).
    es_buf_t inf;
    es_buf_init(&inf);
    msgpack_packer_init(&pk, &inf, s_sbuf_write);
    msgpack_pack_map(&pk, 2);
    s_pack_str(&pk, "oid");
    s_pack_str(&pk, "q");
    s_pack_str(&pk, "total");
    msgpack_pack_double(&pk, 1.0 / 0.0);
    assert_int_equal(es_upload_body_add(b, s_order, "update", 2, "", 0, inf.data, inf.len, &err),
                     -1);
    assert_string_equal(err.what, "Order.total: not a finite number");

    //  Nothing of the failed adds leaked into the body.
    assert_int_equal(es_upload_body_count(b), 1);
    assert_string_equal(es_upload_body_end(b, false, NULL), before);
    es_buf_release(&good);
    es_buf_release(&longer);
    es_buf_release(&cust);
    es_buf_release(&nullkey);
    es_buf_release(&inf);
    es_upload_body_destroy(&b);
}

//  ---------------------------------------------------------------------------------------------
//  Responses

typedef struct {
    es_buf_t log;   //  one line per record
    size_t calls;   //  callback calls
    size_t fail_at; //  fail at this call (1-based), 0 never
} collect_t;

static int
s_on_rec(void *ctx, const es_upload_rec_t *r, es_err_t *err)
{
    collect_t *c = ctx;
    c->calls++;
    if (c->fail_at && c->calls == c->fail_at)
        return es_err_set(err, ES_ESTORE, "store: full");
    es_buf_t json;
    es_buf_init(&json);
    es_err_t e;
    if (es_record_to_json(r->rec, r->rec_len, &json, &e))
        fail_msg("callback record: %s", e.what);
    es_buf_printf(&c->log, "%s%s row=", r->object_name, r->object ? "" : "(?)");
    if (r->has_row_id)
        es_buf_printf(&c->log, "%llu", (unsigned long long)r->row_id);
    else
        es_buf_puts(&c->log, "-");
    es_buf_printf(&c->log, " %s cs=%s rec=%s pk=%s", r->is_delete ? "D" : "U", r->checksum,
                  json.data, r->pk_json);
    if (r->has_temp)
        es_buf_printf(&c->log, " temp=%lld", (long long)r->temp_value);
    if (r->errmsg)
        es_buf_printf(&c->log, " err=%s op=%lld", r->errmsg, (long long)r->opstatus);
    else if (r->opstatus)
        es_buf_printf(&c->log, " op=%lld", (long long)r->opstatus);
    if (r->intermediate_errors)
        es_buf_printf(&c->log, " ie=%s", r->intermediate_errors);
    es_buf_putc(&c->log, '\n');
    es_buf_release(&json);
    return 0;
}

//  Parse json; on success the log, on failure "ERR <code> <what>".
static char *
s_parse(const char *json, es_upload_summary_t *sum)
{
    collect_t c = {0};
    es_buf_init(&c.log);
    es_err_t err = {0};
    es_upload_summary_t local;
    int rc = es_upload_parse(s_meta, json, strlen(json), s_on_rec, &c, sum ? sum : &local, &err);
    if (rc) {
        es_buf_reset(&c.log);
        es_buf_printf(&c.log, "ERR %s %s", es_err_name(err.code), err.what);
    }
    es_buf_puts(&c.log, "");
    return es_buf_steal(&c.log);
}

static void
s_expect(const char *json, const char *expect)
{
    char *got = s_parse(json, NULL);
    if (strcmp(got, expect) != 0)
        fail_msg("input: %s\n got: %s\nwant: %s", json, got, expect);
    free(got);
}

static const char *s_ok_response =
    "{\"opstatus\":0,\"httpStatusCode\":200,\"_metadata\":{\"recordCount\":3,\"successCount\":2,"
    "\"failureCount\":1,\"processCount\":3,\"timestamp\":\"2024\"},\"objects\":["
    "{\"name\":\"Customer\",\"records\":["
    "{\"id\":41,\"name\":\"Ann\",\"age\":null,\"score\":2.25,\"active\":true,\"_id\":-1,"
    "\"extra\":{\"x\":[1]},\"_metadata\":{\"action\":\"create\",\"checksum\":\"h41\","
    "\"rowId\":7,\"opstatus\":0}},"
    "{\"id\":5,\"_metadata\":{\"action\":\"delete\",\"checksum\":\"\",\"rowId\":\"8\","
    "\"errmsg\":null,\"intermediateErrors\":{}}}]},"
    "{\"name\":\"Order\",\"records\":[{\"oid\":\"o1\",\"total\":10.5,\"Line\":[{\"order\":\"o1\"}],"
    "\"_metadata\":{\"action\":\"update\",\"checksum\":\"c\",\"rowId\":9,"
    "\"intermediateErrors\":{\"Line\":\"child failed\",\"n\":[1,{\"a\":null}]}}}]}]}";

static void
test_parse_success(void **state)
{
    (void)state;
    es_upload_summary_t sum;
    char *got = s_parse(s_ok_response, &sum);
    assert_string_equal(
        got, "Customer row=7 U cs=h41 "
             "rec={\"id\":41,\"name\":\"Ann\",\"age\":null,\"score\":2.25,\"active\":true} "
             "pk={\"id\":41} temp=-1\n"
             "Customer row=8 D cs= rec={\"id\":5} pk={\"id\":5}\n"
             "Order row=9 U cs=c rec={\"oid\":\"o1\",\"total\":10.5} pk={\"oid\":\"o1\"} "
             "ie={\"Line\":\"child failed\",\"n\":[1,{\"a\":null}]}\n");
    free(got);
    assert_true(sum.has_opstatus);
    assert_int_equal(sum.opstatus, 0);
    assert_string_equal(sum.errmsg, "");
    assert_true(sum.has_metadata);
    assert_int_equal(sum.record_count, 3);
    assert_int_equal(sum.success_count, 2);
    assert_int_equal(sum.failure_count, 1);
    assert_int_equal(sum.records, 3);

    //  No callback and no summary: still validates and succeeds.
    es_err_t err;
    assert_int_equal(
        es_upload_parse(s_meta, s_ok_response, strlen(s_ok_response), NULL, NULL, NULL, &err), 0);
}

//  The temporary key member is found in the walk over the columns: the last one counts, a null
//  one is absent, and one before or after _metadata is found alike.
static void
test_parse_temp_member(void **state)
{
    (void)state;
    s_expect("{\"opstatus\":0,\"objects\":[{\"name\":\"Customer\",\"records\":["
             "{\"_id\":-1,\"id\":1,\"_id\":-9,\"_metadata\":{\"rowId\":1}},"
             "{\"id\":2,\"_id\":-2,\"_id\":null,\"_metadata\":{\"rowId\":2}},"
             "{\"id\":3,\"_metadata\":{\"rowId\":3},\"_id\":-3},"
             "{\"_metadata\":{\"rowId\":4},\"id\":4}]}]}",
             "Customer row=1 U cs= rec={\"id\":1} pk={\"id\":1} temp=-9\n"
             "Customer row=2 U cs= rec={\"id\":2} pk={\"id\":2}\n"
             "Customer row=3 U cs= rec={\"id\":3} pk={\"id\":3} temp=-3\n"
             "Customer row=4 U cs= rec={\"id\":4} pk={\"id\":4}\n");
    //  A wrong type of the last one fails a successful record.
    s_expect("{\"objects\":[{\"name\":\"Customer\",\"records\":["
             "{\"id\":1,\"_id\":-1,\"_id\":\"x\",\"_metadata\":{\"rowId\":1}}]}]}",
             "ERR EPROTO objects[0].records[0]._id: expected an integer, got string 'x'");
}

static void
test_parse_failed_records(void **state)
{
    (void)state;
    //  A failed record tolerates wrong column types (the column is dropped) and a missing key.
    s_expect("{\"opstatus\":0,\"objects\":[{\"name\":\"Customer\",\"records\":["
             "{\"id\":3,\"age\":\"old\",\"name\":[1],\"score\":1,\"_id\":\"x\",\"_metadata\":{"
             "\"action\":\"update\",\"rowId\":4,\"opstatus\":\"500102\","
             "\"errmsg\":\"age is invalid\"}},"
             "{\"name\":\"NoKey\",\"_metadata\":{\"rowId\":5,\"opstatus\":-3,\"errmsg\":\"\"}},"
             "{\"id\":-7,\"_id\":-7,\"_metadata\":{\"rowId\":6,\"errmsg\":\"dup\"}}]},"
             "{\"name\":\"Line\",\"records\":[{\"order\":\"a\",\"no\":\"2\",\"_metadata\":{"
             "\"rowId\":11,\"errmsg\":\"bad\"}}]}]}",
             "Customer row=4 U cs= rec={\"id\":3,\"score\":1} pk={\"id\":3} "
             "err=age is invalid op=500102\n"
             "Customer row=5 U cs= rec={} pk={} err= op=-3\n"
             "Customer row=6 U cs= rec={\"id\":-7} pk={\"id\":-7} temp=-7 err=dup op=0\n"
             "Line row=11 U cs= rec={} pk={} err=bad op=0\n");
}

static void
test_parse_keys_and_row_ids(void **state)
{
    (void)state;
    //  Composite key, rowId as a string, missing rowId, missing _metadata, opstatus as string.
    s_expect("{\"opstatus\":\"0\",\"objects\":[{\"name\":\"Line\",\"records\":["
             "{\"no\":2,\"order\":\"o\\\"1\",\"qty\":3,\"_metadata\":{\"rowId\":\"12\"}},"
             "{\"order\":\"o2\",\"no\":1,\"_metadata\":{\"action\":\"create\"}},"
             "{\"order\":\"o3\",\"no\":0}]},"
             "{\"name\":\"Customer\",\"records\":[{\"id\":9,\"_id\":-3,\"_metadata\":{"
             "\"rowId\":18446744073709551615}}]}]}",
             "Line row=12 U cs= rec={\"order\":\"o\\\"1\",\"no\":2,\"qty\":3} "
             "pk={\"order\":\"o\\\"1\",\"no\":2}\n"
             "Line row=- U cs= rec={\"order\":\"o2\",\"no\":1} pk={\"order\":\"o2\",\"no\":1}\n"
             "Line row=- U cs= rec={\"order\":\"o3\",\"no\":0} pk={\"order\":\"o3\",\"no\":0}\n"
             "Customer row=18446744073709551615 U cs= rec={\"id\":9} pk={\"id\":9} temp=-3\n");
}

static void
test_parse_unknown_object(void **state)
{
    (void)state;
    //  Reported with object NULL (the caller records a sync error); columns are not checked.
    es_upload_summary_t sum;
    char *got = s_parse("{\"opstatus\":0,\"objects\":[{\"name\":\"Ghost\",\"records\":["
                        "{\"id\":\"x\",\"_metadata\":{\"rowId\":1,\"checksum\":\"k\"}},"
                        "{\"_metadata\":{\"rowId\":2,\"errmsg\":\"gone\",\"opstatus\":7}}]},"
                        "{\"name\":\"Empty\"},{\"name\":\"Empty2\",\"records\":[]}]}",
                        &sum);
    assert_string_equal(got, "Ghost(?) row=1 U cs=k rec={} pk={}\n"
                             "Ghost(?) row=2 U cs= rec={} pk={} err=gone op=7\n");
    free(got);
    assert_int_equal(sum.records, 2);
    assert_false(sum.has_metadata);
}

static void
test_parse_error_envelope(void **state)
{
    (void)state;
    es_upload_summary_t sum;
    char *got = s_parse("{\"opstatus\":8009,\"errmsg\":\"Invalid claims token\","
                        "\"errcode\":\"Auth-01\",\"httpStatusCode\":401}",
                        &sum);
    assert_string_equal(got, "");
    free(got);
    assert_true(sum.has_opstatus);
    assert_int_equal(sum.opstatus, 8009);
    assert_string_equal(sum.errmsg, "Invalid claims token (errcode Auth-01)");
    assert_false(sum.has_metadata);
    assert_int_equal(sum.records, 0);

    got = s_parse("{\"opstatus\":\"500210\",\"errcode\":500210}", &sum);
    assert_string_equal(got, "");
    free(got);
    assert_int_equal(sum.opstatus, 500210);
    assert_string_equal(sum.errmsg, "errcode 500210");

    got = s_parse("{\"opstatus\":-1,\"errmsg\":\"boom\"}", &sum);
    free(got);
    assert_int_equal(sum.opstatus, -1);
    assert_string_equal(sum.errmsg, "boom");

    //  No opstatus at all; counts as strings.
    got = s_parse("{\"_metadata\":{\"recordCount\":\"4\",\"successCount\":\"3\","
                  "\"failureCount\":\"1\"}}",
                  &sum);
    assert_string_equal(got, "");
    free(got);
    assert_false(sum.has_opstatus);
    assert_true(sum.has_metadata);
    assert_int_equal(sum.record_count, 4);
    assert_int_equal(sum.success_count, 3);
    assert_int_equal(sum.failure_count, 1);

    //  A long errmsg is truncated to the summary's buffer.
    es_buf_t big;
    es_buf_init(&big);
    es_buf_puts(&big, "{\"opstatus\":1,\"errmsg\":\"");
    for (int i = 0; i < 1000; i++)
        es_buf_putc(&big, 'a' + i % 26);
    es_buf_puts(&big, "\"}");
    got = s_parse(big.data, &sum);
    free(got);
    assert_int_equal(strlen(sum.errmsg), sizeof sum.errmsg - 1);
    assert_memory_equal(sum.errmsg, "abcdefghijklmnopqrstuvwxyzabc", 29);
    es_buf_release(&big);
}

static void
test_parse_wrong_types(void **state)
{
    (void)state;
    static const struct {
        const char *json;
        const char *err;
    } cases[] = {
        {"[]", "ERR EPROTO response: expected an object, got array"},
        {"\"x\"", "ERR EPROTO response: expected an object, got string 'x'"},
        {"{\"opstatus\":true}", "ERR EPROTO opstatus: expected an integer, got boolean"},
        {"{\"opstatus\":\"0x1\"}", "ERR EPROTO opstatus: expected an integer, got string '0x1'"},
        {"{\"opstatus\":1.5}", "ERR EPROTO opstatus: expected an integer, got number '1.5'"},
        {"{\"opstatus\":\" 1\"}", "ERR EPROTO opstatus: expected an integer, got string ' 1'"},
        {"{\"opstatus\":\"\"}", "ERR EPROTO opstatus: expected an integer, got string ''"},
        {"{\"opstatus\":\"-\"}", "ERR EPROTO opstatus: expected an integer, got string '-'"},
        {"{\"opstatus\":99999999999999999999}",
         "ERR EPROTO opstatus: expected an integer, got number '99999999999999999999'"},
        {"{\"opstatus\":{}}", "ERR EPROTO opstatus: expected an integer, got object"},
        {"{\"errmsg\":5}", "ERR EPROTO errmsg: expected a string, got number '5'"},
        {"{\"errcode\":[]}", "ERR EPROTO errcode: expected a string or number, got array"},
        {"{\"_metadata\":[]}", "ERR EPROTO _metadata: expected an object, got array"},
        {"{\"_metadata\":{\"recordCount\":-1}}",
         "ERR EPROTO _metadata.recordCount: expected a non-negative integer, got number '-1'"},
        {"{\"_metadata\":{\"successCount\":\"2a\"}}",
         "ERR EPROTO _metadata.successCount: expected a non-negative integer, got string '2a'"},
        {"{\"_metadata\":{\"failureCount\":false}}",
         "ERR EPROTO _metadata.failureCount: expected a non-negative integer, got boolean"},
        {"{\"_metadata\":{\"recordCount\":1e2}}",
         "ERR EPROTO _metadata.recordCount: expected a non-negative integer, got number '1e2'"},
        {"{\"objects\":{}}", "ERR EPROTO objects: expected an array, got object"},
        {"{\"objects\":[1]}", "ERR EPROTO objects[0]: expected an object, got number '1'"},
        {"{\"objects\":[{}]}", "ERR EPROTO objects[0].name: missing"},
        {"{\"objects\":[{\"name\":3}]}",
         "ERR EPROTO objects[0].name: expected a string, got number '3'"},
        {"{\"objects\":[{\"name\":\"Order\",\"records\":{}}]}",
         "ERR EPROTO objects[0].records: expected an array, got object"},
        {"{\"objects\":[{\"name\":\"Order\",\"records\":[{\"oid\":\"a\"},\"r\"]}]}",
         "ERR EPROTO objects[0].records[1]: expected an object, got string 'r'"},
        {"{\"objects\":[{\"name\":\"Order\",\"records\":[null]}]}",
         "ERR EPROTO objects[0].records[0]: expected an object, got null"},
        {"{\"objects\":[{\"name\":\"Order\",\"records\":[{\"oid\":\"a\",\"_metadata\":1}]}]}",
         "ERR EPROTO objects[0].records[0]._metadata: expected an object, got number '1'"},
        {"{\"objects\":[{\"name\":\"Order\",\"records\":[{\"oid\":\"a\",\"_metadata\":{"
         "\"action\":1}}]}]}",
         "ERR EPROTO objects[0].records[0]._metadata.action: expected a string, got number '1'"},
        {"{\"objects\":[{\"name\":\"Order\",\"records\":[{\"oid\":\"a\",\"_metadata\":{"
         "\"checksum\":[]}}]}]}",
         "ERR EPROTO objects[0].records[0]._metadata.checksum: expected a string, got array"},
        {"{\"objects\":[{\"name\":\"Order\",\"records\":[{\"oid\":\"a\",\"_metadata\":{"
         "\"rowId\":-1}}]}]}",
         "ERR EPROTO objects[0].records[0]._metadata.rowId: expected a non-negative integer, "
         "got number '-1'"},
        {"{\"objects\":[{\"name\":\"Order\",\"records\":[{\"oid\":\"a\",\"_metadata\":{"
         "\"rowId\":\"7.0\"}}]}]}",
         "ERR EPROTO objects[0].records[0]._metadata.rowId: expected a non-negative integer, "
         "got string '7.0'"},
        {"{\"objects\":[{\"name\":\"Order\",\"records\":[{\"oid\":\"a\",\"_metadata\":{"
         "\"rowId\":18446744073709551616}}]}]}",
         "ERR EPROTO objects[0].records[0]._metadata.rowId: expected a non-negative integer, "
         "got number '18446744073709551616'"},
        {"{\"objects\":[{\"name\":\"Order\",\"records\":[{\"oid\":\"a\",\"_metadata\":{"
         "\"rowId\":true}}]}]}",
         "ERR EPROTO objects[0].records[0]._metadata.rowId: expected a non-negative integer, "
         "got boolean"},
        {"{\"objects\":[{\"name\":\"Order\",\"records\":[{\"oid\":\"a\",\"_metadata\":{"
         "\"opstatus\":\"x\"}}]}]}",
         "ERR EPROTO objects[0].records[0]._metadata.opstatus: expected an integer, got string "
         "'x'"},
        {"{\"objects\":[{\"name\":\"Order\",\"records\":[{\"oid\":\"a\",\"_metadata\":{"
         "\"errmsg\":{}}}]}]}",
         "ERR EPROTO objects[0].records[0]._metadata.errmsg: expected a string, got object"},
        {"{\"objects\":[{\"name\":\"Order\",\"records\":[{\"oid\":\"a\",\"_metadata\":{"
         "\"intermediateErrors\":[]}}]}]}",
         "ERR EPROTO objects[0].records[0]._metadata.intermediateErrors: expected an object, "
         "got array"},
        //  Column types in a successful record.
        {"{\"objects\":[{\"name\":\"Customer\",\"records\":[{\"id\":1},{\"id\":2},{\"id\":3},"
         "{\"id\":4,\"age\":\"x\"}]}]}",
         "ERR EPROTO objects[0].records[3].age: expected int, got string"},
        {"{\"objects\":[{\"name\":\"Customer\",\"records\":[{\"id\":1,\"age\":1.5}]}]}",
         "ERR EPROTO objects[0].records[0].age: expected int, got non-integral number"},
        {"{\"objects\":[{\"name\":\"Customer\",\"records\":[{\"id\":1,\"name\":1}]}]}",
         "ERR EPROTO objects[0].records[0].name: expected string, got int"},
        {"{\"objects\":[{\"name\":\"Customer\",\"records\":[{\"id\":1,\"name\":{}}]}]}",
         "ERR EPROTO objects[0].records[0].name: expected string, got object"},
        {"{\"objects\":[{\"name\":\"Customer\",\"records\":[{\"id\":1,\"score\":[]}]}]}",
         "ERR EPROTO objects[0].records[0].score: expected number, got array"},
        {"{\"objects\":[{\"name\":\"Customer\",\"records\":[{\"id\":1,\"active\":\"yes\"}]}]}",
         "ERR EPROTO objects[0].records[0].active: expected boolean, got string"},
        {"{\"objects\":[{\"name\":\"Customer\",\"records\":[{\"id\":1,\"born\":\"2001-13-01\"}]}]}",
         "ERR EPROTO objects[0].records[0].born: expected date YYYY-MM-DD, got '2001-13-01'"},
        {"{\"objects\":[{\"name\":\"Customer\",\"records\":[{\"id\":1,\"name\":"
         "\"123456789012345678901\"}]}]}",
         "ERR EPROTO objects[0].records[0].name: string of 21 characters exceeds length 20"},
        {"{\"objects\":[{\"name\":\"Customer\",\"records\":[{\"id\":null}]}]}",
         "ERR EPROTO objects[0].records[0].id: expected int, got null (key column)"},
        {"{\"objects\":[{\"name\":\"Customer\",\"records\":[{\"name\":\"a\"}]}]}",
         "ERR EPROTO objects[0].records[0]: Customer: key column 'id' missing"},
        {"{\"objects\":[{\"name\":\"Customer\",\"records\":[{\"id\":1,\"_id\":\"-1\"}]}]}",
         "ERR EPROTO objects[0].records[0]._id: expected an integer, got string '-1'"},
        {"{\"objects\":[{\"name\":\"Customer\",\"records\":[{\"id\":1,\"_id\":-1.5}]}]}",
         "ERR EPROTO objects[0].records[0]._id: expected an integer, got number '-1.5'"},
        {"{\"objects\":[{\"name\":\"Order\",\"records\":[]},{\"name\":\"Line\",\"records\":["
         "{\"order\":\"a\"}]}]}",
         "ERR EPROTO objects[1].records[0]: Line: key column 'no' missing"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        s_expect(cases[i].json, cases[i].err);
}

static void
test_parse_malformed(void **state)
{
    (void)state;
    s_expect("", "ERR EPROTO response: empty body");
    s_expect("{\"opstatus\":0,}", "ERR EPROTO response: invalid JSON: parse error: invalid object "
                                  "key (must be a string)");
    s_expect("{\"a\":tru}", "ERR EPROTO response: invalid JSON: lexical error: invalid string in "
                            "json text.");
    s_expect("{} {}", "ERR EPROTO response: invalid JSON: parse error: trailing garbage");
    s_expect("{\"a\":\"\xff\"}",
             "ERR EPROTO response: invalid JSON: lexical error: invalid bytes in UTF8 string.");
    es_err_t err;
    const char nul[] = "{\"a\":1}\0{}";
    assert_int_equal(es_upload_parse(s_meta, nul, sizeof nul - 1, NULL, NULL, NULL, &err), -1);
    assert_int_equal(err.code, ES_EPROTO);
    assert_string_equal(err.what, "response: invalid JSON: NUL byte at offset 7");
    assert_int_equal(es_upload_parse(s_meta, NULL, 0, NULL, NULL, NULL, &err), -1);
    assert_string_equal(err.what, "response: empty body");
    //  Without err: still -1, no crash.
    assert_int_equal(es_upload_parse(s_meta, "[", 1, NULL, NULL, NULL, NULL), -1);
}

static void
test_parse_every_prefix(void **state)
{
    (void)state;
    size_t n = strlen(s_ok_response);
    for (size_t len = 0; len < n; len++) {
        collect_t c = {0};
        es_buf_init(&c.log);
        es_err_t err = {0};
        es_upload_summary_t sum;
        //  A copy of exactly len bytes, so ASan sees any read past it.
        char *copy = es_malloc(len ? len : 1);
        memcpy(copy, s_ok_response, len);
        int rc = es_upload_parse(s_meta, copy, len, s_on_rec, &c, &sum, &err);
        free(copy);
        if (rc != -1)
            fail_msg("prefix of %zu bytes parsed", len);
        assert_int_equal(err.code, ES_EPROTO);
        if (len == 0)
            assert_string_equal(err.what, "response: empty body");
        else if (strncmp(err.what, "response: invalid JSON: ", 24) != 0)
            fail_msg("prefix %zu: %s", len, err.what);
        assert_int_equal(c.calls, 0);
        es_buf_release(&c.log);
    }
}

static char *
s_nested(int depth)
{
    es_buf_t b;
    es_buf_init(&b);
    es_buf_puts(&b, "{\"opstatus\":0,\"x\":");
    for (int i = 1; i < depth; i++)
        es_buf_puts(&b, i % 2 ? "[" : "{\"k\":");
    es_buf_puts(&b, "\"[{[{\"");
    for (int i = depth - 1; i >= 1; i--)
        es_buf_puts(&b, i % 2 ? "]" : "}");
    es_buf_puts(&b, "}");
    return es_buf_steal(&b);
}

static void
test_parse_depth(void **state)
{
    (void)state;
    char *ok = s_nested(64);
    s_expect(ok, "");
    free(ok);
    char *deep = s_nested(65);
    char expect[128];
    //  The 65th opening bracket: after the 18-byte prefix, 32 "[" and 31 "{\"k\":", one "{".
    size_t at = strlen("{\"opstatus\":0,\"x\":") + 32 * 1 + 31 * 5;
    assert_int_equal(deep[at], '{');
    snprintf(expect, sizeof expect, "ERR EPROTO response: nested deeper than 64 levels at byte %zu",
             at);
    s_expect(deep, expect);
    free(deep);
    //  Deep nesting inside a record (a child array) is bounded the same way.
    es_buf_t b;
    es_buf_init(&b);
    es_buf_puts(&b, "{\"objects\":[{\"name\":\"Order\",\"records\":[{\"oid\":\"a\",\"c\":");
    size_t at60 = b.len + 59; //  five levels above the array, so its 60th bracket is level 65
    for (int i = 0; i < 60; i++)
        es_buf_putc(&b, '[');
    for (int i = 0; i < 60; i++)
        es_buf_putc(&b, ']');
    es_buf_puts(&b, "}]}]}");
    snprintf(expect, sizeof expect, "ERR EPROTO response: nested deeper than 64 levels at byte %zu",
             at60);
    s_expect(b.data, expect);
    es_buf_release(&b);
}

//  The same answer spelled for the fast parser (plain ASCII) and for yajl (\u escapes, UTF-8,
//  \f whitespace, a comment) gives the same records; what yajl alone accepts still parses.
static void
test_parse_spellings_agree(void **state)
{
    (void)state;
    const char *plain =
        "{\"opstatus\":0,\"objects\":[{\"name\":\"Customer\",\"records\":[{\"id\":4,"
        "\"name\":\"A\\\"n\\\\n\\/\\t\",\"score\":-12.5,\"age\":7,\"_id\":-2,"
        "\"_metadata\":{\"rowId\":3,\"checksum\":\"k\"}}]}]}";
    const char *escaped =
        "{\"opstatus\":0,\f\"objects\":[{\"name\":\"\\u0043ustomer\",\"records\":[{\"id\":4,"
        "\"name\":\"\\u0041\\\"n\\\\n/\\t\" /* c */,\"score\":-1.25e1,\"age\":7,\"_id\":-2,"
        "\"_metadata\":{\"rowId\":3,\"checksum\":\"k\"}}]}]}";
    char *a = s_parse(plain, NULL);
    char *b = s_parse(escaped, NULL);
    assert_string_equal(a, "Customer row=3 U cs=k rec={\"id\":4,\"name\":\"A\\\"n\\\\n/\\t\","
                           "\"age\":7,\"score\":-12.5} pk={\"id\":4} temp=-2\n");
    assert_string_equal(a, b);
    free(a);
    free(b);
    s_expect("{\"objects\":[{\"name\":\"Order\",\"records\":[{\"oid\":\"\xc3\xa9\","
             "\"_metadata\":{\"rowId\":1}}]}]}",
             "Order row=1 U cs= rec={\"oid\":\"\xc3\xa9\"} pk={\"oid\":\"\xc3\xa9\"}\n");
    //  Not JSON for either: yajl words the error.
    s_expect("{\"objects\":[01]}", "ERR EPROTO response: invalid JSON: parse error: after array "
                                   "element, I expect ',' or ']'");
    s_expect("{\"a\":tru}", "ERR EPROTO response: invalid JSON: lexical error: invalid string in "
                            "json text.");
}

//  A comment can hide brackets from the depth scan; the tree refuses to nest deeper anyway.
static void
test_parse_depth_behind_comment(void **state)
{
    (void)state;
    es_buf_t b;
    es_buf_init(&b);
    es_buf_puts(&b, "{\"x\":/* \" */");
    for (int i = 0; i < 70; i++)
        es_buf_putc(&b, '[');
    for (int i = 0; i < 70; i++)
        es_buf_putc(&b, ']');
    es_buf_putc(&b, '}');
    char *got = s_parse(b.data, NULL);
    assert_non_null(strstr(got, "ERR EPROTO response: nested deeper than 64 levels at byte "));
    free(got);
    es_buf_release(&b);
}

static void
test_parse_callback_stops(void **state)
{
    (void)state;
    collect_t c = {.fail_at = 2};
    es_buf_init(&c.log);
    es_err_t err;
    es_upload_summary_t sum;
    assert_int_equal(
        es_upload_parse(s_meta, s_ok_response, strlen(s_ok_response), s_on_rec, &c, &sum, &err),
        -1);
    assert_int_equal(err.code, ES_ESTORE);
    assert_string_equal(err.what, "store: full");
    assert_int_equal(c.calls, 2);
    es_buf_release(&c.log);
}

//  A string ends at "\u0000", as yajl_tree ended it (documented limitation of the parser).
static void
test_parse_nul_escape(void **state)
{
    (void)state;
    s_expect("{\"objects\":[{\"name\":\"Order\",\"records\":[{\"oid\":\"a\\u0000b\","
             "\"_metadata\":{\"rowId\":1}}]}]}",
             "Order row=1 U cs= rec={\"oid\":\"a\"} pk={\"oid\":\"a\"}\n");
}

static void
test_parse_1000(void **state)
{
    (void)state;
    es_buf_t b, want;
    es_buf_init(&b);
    es_buf_init(&want);
    es_buf_puts(&b, "{\"opstatus\":0,\"_metadata\":{\"recordCount\":1000,\"successCount\":1000,"
                    "\"failureCount\":0},\"objects\":[{\"name\":\"Customer\",\"records\":[");
    for (int i = 0; i < 1000; i++) {
        es_buf_printf(&b,
                      "%s{\"id\":%d,\"_id\":%d,\"name\":\"n%d\",\"score\":%d.5,\"_metadata\":{"
                      "\"action\":\"create\",\"checksum\":\"h%d\",\"rowId\":%d}}",
                      i ? "," : "", 1000 + i, -1 - i, i, i, i, i + 1);
        es_buf_printf(&want,
                      "Customer row=%d U cs=h%d rec={\"id\":%d,\"name\":\"n%d\",\"score\":%d.5} "
                      "pk={\"id\":%d} temp=%d\n",
                      i + 1, i, 1000 + i, i, i, 1000 + i, -1 - i);
    }
    es_buf_puts(&b, "]}]}");
    es_upload_summary_t sum;
    char *got = s_parse(b.data, &sum);
    assert_string_equal(got, want.data);
    free(got);
    assert_int_equal(sum.records, 1000);
    assert_int_equal(sum.record_count, 1000);
    assert_int_equal(sum.success_count, 1000);
    es_buf_release(&b);
    es_buf_release(&want);
}

//  A body we built, answered by echoing each record with its rowId: the parse sees what we sent.
static void
test_body_then_parse(void **state)
{
    (void)state;
    es_upload_body_t *body = es_upload_body_new();
    s_add(body, s_customer, "create", 3, "", "{\"id\":-2,\"name\":\"Zé\",\"score\":0.1}");
    s_add(body, s_line, "delete", 4, "k", "{\"order\":\"o\",\"no\":1}");
    const char *text = es_upload_body_end(body, false, NULL);
    char ebuf[128];
    yajl_val root = yajl_tree_parse(text, ebuf, sizeof ebuf);
    assert_non_null(root);
    const char *path[] = {"records", NULL};
    yajl_val recs = yajl_tree_get(root, path, yajl_t_array);
    assert_non_null(recs);
    es_buf_t resp;
    es_buf_init(&resp);
    es_buf_puts(&resp, "{\"opstatus\":0,\"objects\":[{\"name\":\"Customer\",\"records\":[");
    es_json_write(&resp, recs->u.array.values[0]);
    es_buf_puts(&resp, "]},{\"name\":\"Line\",\"records\":[");
    es_json_write(&resp, recs->u.array.values[1]);
    es_buf_puts(&resp, "]}]}");
    s_expect(resp.data, "Customer row=3 U cs= rec={\"id\":-2,\"name\":\"Zé\",\"score\":0.1} "
                        "pk={\"id\":-2}\n"
                        "Line row=4 D cs=k rec={\"order\":\"o\",\"no\":1} "
                        "pk={\"order\":\"o\",\"no\":1}\n");
    es_buf_release(&resp);
    yajl_tree_free(root);
    es_upload_body_destroy(&body);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_body_empty),
        cmocka_unit_test(test_body_one),
        cmocka_unit_test(test_body_several),
        cmocka_unit_test(test_body_numbers_round_trip),
        cmocka_unit_test(test_body_foreign_column),
        cmocka_unit_test(test_body_double_text),
        cmocka_unit_test(test_body_errors),
        cmocka_unit_test(test_parse_success),
        cmocka_unit_test(test_parse_failed_records),
        cmocka_unit_test(test_parse_temp_member),
        cmocka_unit_test(test_parse_keys_and_row_ids),
        cmocka_unit_test(test_parse_unknown_object),
        cmocka_unit_test(test_parse_error_envelope),
        cmocka_unit_test(test_parse_wrong_types),
        cmocka_unit_test(test_parse_malformed),
        cmocka_unit_test(test_parse_every_prefix),
        cmocka_unit_test(test_parse_depth),
        cmocka_unit_test(test_parse_spellings_agree),
        cmocka_unit_test(test_parse_depth_behind_comment),
        cmocka_unit_test(test_parse_callback_stops),
        cmocka_unit_test(test_parse_nul_escape),
        cmocka_unit_test(test_parse_1000),
        cmocka_unit_test(test_body_then_parse),
    };
    return cmocka_run_group_tests(tests, s_setup, s_teardown);
}
