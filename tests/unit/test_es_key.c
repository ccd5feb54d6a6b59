//  test_es_key - key encoding: byte order equals value order, JSON in/out, and bad input.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "common/es_mem.h"
#include "protocol/es_key.h"
#include "protocol/es_record.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *s_doc =
    "{\"name\":\"S\",\"objects\":["
    "{\"name\":\"C\",\"key\":[\"id\"],\"fields\":[{\"name\":\"id\",\"datatype\":\"int\"},"
    "{\"name\":\"name\",\"datatype\":\"string\"}]},"
    "{\"name\":\"O\",\"key\":[\"orderId\",\"lineNo\"],\"fields\":["
    "{\"name\":\"lineNo\",\"datatype\":\"int\"},{\"name\":\"qty\",\"datatype\":\"int\"},"
    "{\"name\":\"orderId\",\"datatype\":\"string\"}]},"
    "{\"name\":\"N\",\"key\":[\"n\"],\"fields\":[{\"name\":\"n\",\"datatype\":\"number\"}]},"
    "{\"name\":\"B\",\"key\":[\"b\",\"d\",\"t\"],\"fields\":["
    "{\"name\":\"b\",\"datatype\":\"boolean\"},{\"name\":\"d\",\"datatype\":\"date\"},"
    "{\"name\":\"t\",\"datatype\":\"datetime\"}]}]}";

static es_meta_t *s_meta;

static int
s_setup(void **state)
{
    (void)state;
    es_err_t err;
    s_meta = es_meta_new(s_doc, strlen(s_doc), &err);
    if (!s_meta)
        fprintf(stderr, "metadata: %s\n", err.what);
    return s_meta ? 0 : -1;
}

static int
s_teardown(void **state)
{
    (void)state;
    es_meta_destroy(&s_meta);
    return 0;
}

static const es_meta_object_t *
s_obj(const char *name)
{
    const es_meta_object_t *o = es_meta_object(s_meta, name);
    assert_non_null(o);
    return o;
}

//  ---------------------------------------------------------------------------------------------
//  Ordering.

typedef struct {
    es_value_t v[2]; //  parts
    size_t n;        //  number of parts
    char sbuf[2][8]; //  string bytes for the parts
    es_buf_t enc;    //  encoding
} tkey_t;

static int
s_type_rank(const es_value_t *v)
{
    switch (v->type) {
    case ES_V_NULL:
        return 0;
    case ES_V_BOOL:
        return v->u.b ? 2 : 1;
    case ES_V_INT:
        return 3;
    case ES_V_DOUBLE:
        return 4;
    case ES_V_STR:
        return 5;
    }
    return 6;
}

static int
s_val_cmp(const es_value_t *a, const es_value_t *b)
{
    int ra = s_type_rank(a), rb = s_type_rank(b);
    if (ra != rb)
        return ra < rb ? -1 : 1;
    switch (a->type) {
    case ES_V_INT:
        return a->u.i < b->u.i ? -1 : a->u.i > b->u.i;
    case ES_V_DOUBLE:
        return a->u.d < b->u.d ? -1 : a->u.d > b->u.d;
    case ES_V_STR: {
        size_t n = a->u.s.len < b->u.s.len ? a->u.s.len : b->u.s.len;
        int c = memcmp(a->u.s.ptr, b->u.s.ptr, n);
        if (c)
            return c < 0 ? -1 : 1;
        return a->u.s.len < b->u.s.len ? -1 : a->u.s.len > b->u.s.len;
    }
    default:
        return 0;
    }
}

static int
s_key_cmp(const void *pa, const void *pb)
{
    const tkey_t *a = *(tkey_t *const *)pa, *b = *(tkey_t *const *)pb;
    for (size_t i = 0; i < a->n && i < b->n; i++) {
        int c = s_val_cmp(&a->v[i], &b->v[i]);
        if (c)
            return c;
    }
    return a->n < b->n ? -1 : a->n > b->n;
}

static int
s_enc_cmp(const void *pa, const void *pb)
{
    const tkey_t *a = *(tkey_t *const *)pa, *b = *(tkey_t *const *)pb;
    size_t n = a->enc.len < b->enc.len ? a->enc.len : b->enc.len;
    int c = memcmp(a->enc.data, b->enc.data, n);
    if (c)
        return c;
    return a->enc.len < b->enc.len ? -1 : a->enc.len > b->enc.len;
}

static uint64_t s_rng = 88172645463325252ULL;

static uint64_t
s_rand(void)
{
    s_rng ^= s_rng << 13;
    s_rng ^= s_rng >> 7;
    s_rng ^= s_rng << 17;
    return s_rng;
}

static void
s_random_part(tkey_t *k, size_t i, int kind)
{
    es_value_t *v = &k->v[i];
    switch (kind) {
    case 0: {
        static const int64_t edge[] = {INT64_MIN, INT64_MIN + 1, -256, -255,          -1,       0,
                                       1,         255,           256,  INT64_MAX - 1, INT64_MAX};
        uint64_t r = s_rand();
        v->type = ES_V_INT;
        v->u.i = (r & 3) == 0 ? edge[(r >> 8) % 11] : (int64_t)(s_rand() >> (r % 64));
        if ((r & 4) && v->u.i != INT64_MIN)
            v->u.i = -v->u.i;
        break;
    }
    case 1: {
        static const double edge[] = {-INFINITY, -1e308, -2.5, -1, -1e-300, -5e-324, 0,
                                      5e-324,    1e-300, 0.5,  1,  2.5,     1e308,   INFINITY};
        uint64_t r = s_rand();
        v->type = ES_V_DOUBLE;
        v->u.d = (r & 1) ? edge[(r >> 8) % 14]
                         : ldexp((double)(int64_t)s_rand() / 9.2e18, (int)(r % 200) - 100);
        break;
    }
    case 2: {
        //  Alphabet with the escape-sensitive bytes: 0x00, 0x01, 0xff.
        static const char alpha[] = {'\0', '\x01', 'a', 'b', '\xff'};
        size_t len = s_rand() % 5;
        for (size_t j = 0; j < len; j++)
            k->sbuf[i][j] = alpha[s_rand() % 5];
        v->type = ES_V_STR;
        v->u.s.ptr = k->sbuf[i];
        v->u.s.len = len;
        break;
    }
    default: {
        uint64_t r = s_rand() % 3;
        v->type = r == 0 ? ES_V_NULL : ES_V_BOOL;
        v->u.b = r == 2;
    }
    }
}

//  Generates n keys of given part kinds (-1 = any kind per key), sorts the encodings with memcmp
//  and checks the result is the value order.
static void
s_check_order(size_t n, size_t nparts, int kind0, int kind1)
{
    tkey_t *keys = es_calloc(n, sizeof *keys);
    tkey_t **by_val = es_calloc(n, sizeof *by_val), **by_enc = es_calloc(n, sizeof *by_enc);
    for (size_t i = 0; i < n; i++) {
        tkey_t *k = &keys[i];
        k->n = nparts;
        s_random_part(k, 0, kind0 < 0 ? (int)(s_rand() % 4) : kind0);
        if (nparts > 1)
            s_random_part(k, 1, kind1 < 0 ? (int)(s_rand() % 4) : kind1);
        es_buf_init(&k->enc);
        for (size_t j = 0; j < k->n; j++)
            es_key_append(&k->enc, &k->v[j]);
        by_val[i] = by_enc[i] = k;
    }
    qsort(by_val, n, sizeof *by_val, s_key_cmp);
    qsort(by_enc, n, sizeof *by_enc, s_enc_cmp);
    for (size_t i = 0; i < n; i++) {
        //  Equal values have equal encodings, so compare by value where the pointers differ.
        if (by_val[i] != by_enc[i] && s_key_cmp(&by_val[i], &by_enc[i]) != 0)
            fail_msg("order differs at %zu of %zu", i, n);
        if (i && s_key_cmp(&by_enc[i - 1], &by_enc[i]) == 0 &&
            s_enc_cmp(&by_enc[i - 1], &by_enc[i]) != 0)
            fail_msg("equal keys with different encodings at %zu", i);
    }
    for (size_t i = 0; i < n; i++)
        es_buf_release(&keys[i].enc);
    free(by_enc);
    free(by_val);
    free(keys);
}

static void
test_order(void **state)
{
    (void)state;
    s_check_order(3000, 1, 0, 0);   //  ints
    s_check_order(3000, 1, 1, 0);   //  doubles
    s_check_order(3000, 1, 2, 0);   //  strings with NULs
    s_check_order(3000, 1, -1, 0);  //  mixed types
    s_check_order(3000, 2, 2, 0);   //  (string, int)
    s_check_order(3000, 2, 2, 2);   //  (string, string): ("a","b") vs ("ab","")
    s_check_order(3000, 2, 0, 1);   //  (int, double)
    s_check_order(3000, 2, -1, -1); //  anything
}

static void
test_exact_bytes(void **state)
{
    (void)state;
    es_buf_t b;
    es_buf_init(&b);
    es_value_t v = {.type = ES_V_NULL};
    es_key_append(&b, &v);
    v = (es_value_t){.type = ES_V_BOOL, .u.b = false};
    es_key_append(&b, &v);
    v.u.b = true;
    es_key_append(&b, &v);
    v = (es_value_t){.type = ES_V_INT, .u.i = -2};
    es_key_append(&b, &v);
    v = (es_value_t){.type = ES_V_DOUBLE, .u.d = 1.0};
    es_key_append(&b, &v);
    v = (es_value_t){.type = ES_V_DOUBLE, .u.d = -1.0};
    es_key_append(&b, &v);
    v = (es_value_t){.type = ES_V_STR, .u.s = {"a\0b", 3}};
    es_key_append(&b, &v);
    const uint8_t want[] = {0x01, 0x02, 0x03, 0x10, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff,
                            0xff, 0xfe, 0x20, 0xbf, 0xf0, 0,    0,    0,    0,    0,
                            0,    0x20, 0x40, 0x0f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                            0x30, 'a',  0,    0xff, 'b',  0,    0};
    assert_int_equal(b.len, sizeof want);
    assert_memory_equal(b.data, want, sizeof want);

    //  -0.0 and 0.0 are one key; every NaN is one key.
    es_buf_t z1, z2;
    es_buf_init(&z1);
    es_buf_init(&z2);
    v = (es_value_t){.type = ES_V_DOUBLE, .u.d = -0.0};
    es_key_append(&z1, &v);
    v.u.d = 0.0;
    es_key_append(&z2, &v);
    assert_int_equal(z1.len, z2.len);
    assert_memory_equal(z1.data, z2.data, z1.len);
    es_buf_reset(&z1);
    es_buf_reset(&z2);
    v.u.d = NAN;
    es_key_append(&z1, &v);
    v.u.d = -NAN;
    es_key_append(&z2, &v);
    assert_memory_equal(z1.data, z2.data, z1.len);
    es_buf_release(&z1);
    es_buf_release(&z2);
    es_buf_release(&b);
}

//  ---------------------------------------------------------------------------------------------
//  From records and JSON.

static void
s_key_json(const char *obj, const char *json, es_buf_t *out)
{
    es_err_t err;
    if (es_key_from_json(s_obj(obj), json, strlen(json), out, &err))
        fail_msg("key_from_json(%s): %s", json, err.what);
}

static char *
s_to_json(const char *obj, const es_buf_t *key)
{
    es_buf_t out;
    es_buf_init(&out);
    es_err_t err;
    if (es_key_to_json(s_obj(obj), key->data, key->len, &out, &err))
        fail_msg("key_to_json: %s", err.what);
    return es_buf_steal(&out);
}

static void
test_from_record(void **state)
{
    (void)state;
    es_buf_t rec, k1, k2;
    es_buf_init(&rec);
    es_buf_init(&k1);
    es_buf_init(&k2);
    es_err_t err;
    const char *r = "{\"qty\":3,\"lineNo\":7,\"orderId\":\"A\\u0000x\"}";
    assert_int_equal(es_record_from_json(s_obj("O"), r, strlen(r), &rec, &err), 0);
    assert_int_equal(es_key_from_record(s_obj("O"), rec.data, rec.len, &k1, &err), 0);
    //  Key order (orderId, lineNo), not field order.
    es_value_t a = {.type = ES_V_STR, .u.s = {"A\0x", 3}}, b = {.type = ES_V_INT, .u.i = 7};
    es_key_append(&k2, &a);
    es_key_append(&k2, &b);
    assert_int_equal(k1.len, k2.len);
    assert_memory_equal(k1.data, k2.data, k1.len);
    //  Same key from JSON, as an object in any member order, with extra members.
    s_key_json("O", "{\"qty\":1,\"lineNo\":7.0,\"orderId\":\"A\\u0000x\",\"x\":[{}]}", &k2);
    assert_int_equal(k1.len, k2.len);
    assert_memory_equal(k1.data, k2.data, k1.len);
    char *json = s_to_json("O", &k1);
    assert_string_equal(json, "{\"orderId\":\"A\\u0000x\",\"lineNo\":7}");
    free(json);

    //  Number keys: 2 and 2.0 are one key, from records and JSON alike.
    r = "{\"n\":2}";
    assert_int_equal(es_record_from_json(s_obj("N"), r, strlen(r), &rec, &err), 0);
    assert_int_equal(es_key_from_record(s_obj("N"), rec.data, rec.len, &k1, &err), 0);
    s_key_json("N", "2.0", &k2);
    assert_int_equal(k1.len, 9);
    assert_memory_equal(k1.data, k2.data, 9);
    assert_int_equal((uint8_t)k1.data[0], 0x20);
    s_key_json("N", "{\"n\":2e0}", &k2);
    assert_memory_equal(k1.data, k2.data, 9);
    json = s_to_json("N", &k1);
    assert_string_equal(json, "{\"n\":2}");
    free(json);

    //  Missing, null, malformed.
    r = "{\"id\":5,\"name\":\"x\"}";
    assert_int_equal(es_record_from_json(s_obj("C"), r, strlen(r), &rec, &err), 0);
    assert_int_equal(es_key_from_record(s_obj("O"), rec.data, rec.len, &k1, &err), -1);
    assert_int_equal(err.code, ES_EINVAL);
    assert_string_equal(err.what, "O: key column 'orderId' missing");
    const uint8_t nul[] = {0x81, 0xa2, 'i', 'd', 0xc0};
    assert_int_equal(es_key_from_record(s_obj("C"), nul, sizeof nul, &k1, &err), -1);
    assert_string_equal(err.what, "C: key column 'id' missing");
    const uint8_t str[] = {0x81, 0xa2, 'i', 'd', 0xa1, '5'};
    assert_int_equal(es_key_from_record(s_obj("C"), str, sizeof str, &k1, &err), -1);
    assert_string_equal(err.what, "C: key column 'id': expected int, got string");
    assert_int_equal(es_key_from_record(s_obj("C"), str, 3, &k1, &err), -1);
    assert_int_equal(err.code, ES_EPROTO);
    assert_string_equal(err.what, "C: malformed record");

    es_buf_release(&k2);
    es_buf_release(&k1);
    es_buf_release(&rec);
}

static void
test_json_round_trip(void **state)
{
    (void)state;
    static const struct {
        const char *obj, *in, *out;
    } cases[] = {
        {"C", "0", "{\"id\":0}"},
        {"C", "-9223372036854775808", "{\"id\":-9223372036854775808}"},
        {"C", "9223372036854775807", "{\"id\":9223372036854775807}"},
        {"C", "{\"id\":-3}", "{\"id\":-3}"},
        {"C", " 12 ", "{\"id\":12}"},
        {"N", "-0.1", "{\"n\":-0.1}"},
        {"N", "1e300", "{\"n\":1e+300}"},
        {"N", "0.30000000000000004", "{\"n\":0.30000000000000004}"},
        {"N", "-0", "{\"n\":0}"},
        {"O", "{\"orderId\":\"\",\"lineNo\":1}", "{\"orderId\":\"\",\"lineNo\":1}"},
        {"O", "{\"orderId\":\"\\u00e9\\\"\\n\",\"lineNo\":1}",
         "{\"orderId\":\"\xc3\xa9\\\"\\n\",\"lineNo\":1}"},
        {"B", "{\"t\":\"2024-01-01T00:00:00Z\",\"b\":true,\"d\":\"2024-01-01\"}",
         "{\"b\":true,\"d\":\"2024-01-01\",\"t\":\"2024-01-01T00:00:00Z\"}"},
        {"B", "{\"t\":\"x\",\"b\":0,\"d\":\"y\"}", "{\"b\":false,\"d\":\"y\",\"t\":\"x\"}"},
    };
    es_buf_t k;
    es_buf_init(&k);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        s_key_json(cases[i].obj, cases[i].in, &k);
        char *json = s_to_json(cases[i].obj, &k);
        if (strcmp(json, cases[i].out) != 0)
            fail_msg("case %zu: got %s, want %s", i, json, cases[i].out);
        //  And back again to the same bytes.
        es_buf_t k2;
        es_buf_init(&k2);
        s_key_json(cases[i].obj, json, &k2);
        assert_int_equal(k2.len, k.len);
        assert_memory_equal(k2.data, k.data, k.len);
        es_buf_release(&k2);
        free(json);
    }
    //  to_json appends to what out holds.
    es_buf_t out;
    es_buf_init(&out);
    es_buf_puts(&out, "[");
    es_err_t err;
    s_key_json("C", "4", &k);
    assert_int_equal(es_key_to_json(s_obj("C"), k.data, k.len, &out, &err), 0);
    assert_string_equal(out.data, "[{\"id\":4}");
    es_buf_release(&out);
    //  A null part (es_key_append accepts any type) decodes as null.
    es_buf_reset(&k);
    es_value_t nul = {.type = ES_V_NULL};
    es_key_append(&k, &nul);
    char *json = s_to_json("C", &k);
    assert_string_equal(json, "{\"id\":null}");
    free(json);
    es_buf_release(&k);
}

static const struct {
    const char *obj, *json, *what; //  what: exact, or a prefix when it ends in ": "
} s_bad_json[] = {
    {"C", "\"5\"", "pk: expected int for 'id', got string"},
    {"C", "{\"id\":\"5\"}", "pk: expected int for 'id', got string"},
    {"C", "1.5", "pk: expected int for 'id', got number"},
    {"C", "1e19", "pk: expected int for 'id', got number"},
    {"C", "9223372036854775808", "pk: expected int for 'id', got number"},
    {"C", "null", "pk: expected int for 'id', got null"},
    {"C", "true", "pk: expected int for 'id', got boolean"},
    {"C", "{\"id\":{}}", "pk: expected int for 'id', got object"},
    {"C", "{\"id\":[1]}", "pk: expected int for 'id', got array"},
    {"C", "[1]", "pk: expected a scalar or an object, got array"},
    {"C", "{}", "pk: missing key column 'id'"},
    {"C", "{\"name\":\"x\"}", "pk: missing key column 'id'"},
    {"C", "{\"Id\":1}", "pk: missing key column 'id'"},
    {"O", "{\"orderId\":\"a\"}", "pk: missing key column 'lineNo'"},
    {"O", "{\"lineNo\":1}", "pk: missing key column 'orderId'"},
    {"O", "{\"orderId\":1,\"lineNo\":1}", "pk: expected string for 'orderId', got int"},
    {"O", "\"a\"", "pk: O has a composite key; expected an object naming 'orderId', 'lineNo'"},
    {"N", "\"1\"", "pk: expected number for 'n', got string"},
    {"N", "1e999", "pk: expected number for 'n', got number"},
    {"B", "{\"b\":2,\"d\":\"x\",\"t\":\"y\"}", "pk: expected boolean for 'b', got int"},
    {"B", "{\"b\":true,\"d\":20240101,\"t\":\"y\"}", "pk: expected date for 'd', got int"},
    {"C", "", "pk: invalid JSON: "},
    {"C", "1 2", "pk: invalid JSON: "},
    {"C", "{\"id\":1", "pk: invalid JSON: "},
    {"C", "{\"id\":1,}", "pk: invalid JSON: "},
    {"C", "\"\xff\"", "pk: invalid JSON: "},
};

static void
test_json_errors(void **state)
{
    (void)state;
    es_buf_t k;
    es_buf_init(&k);
    for (size_t i = 0; i < sizeof s_bad_json / sizeof s_bad_json[0]; i++) {
        es_err_t err = {ES_OK, ""};
        const char *want = s_bad_json[i].what;
        if (es_key_from_json(s_obj(s_bad_json[i].obj), s_bad_json[i].json,
                             strlen(s_bad_json[i].json), &k, &err) != -1)
            fail_msg("case %zu accepted", i);
        assert_int_equal(err.code, ES_EINVAL);
        size_t n = strlen(want);
        bool prefix = want[n - 2] == ':' && want[n - 1] == ' ';
        if (prefix ? strncmp(err.what, want, n) != 0 || !err.what[n] : strcmp(err.what, want) != 0)
            fail_msg("case %zu: got '%s', want '%s'", i, err.what, want);
        assert_null(strchr(err.what, '\n'));
    }
    //  Every proper prefix of a valid composite key fails as invalid JSON.
    const char *good = "{\"orderId\":\"ab\",\"lineNo\":-12}";
    for (size_t n = 0; n < strlen(good); n++) {
        es_err_t err = {ES_OK, ""};
        assert_int_equal(es_key_from_json(s_obj("O"), good, n, &k, &err), -1);
        assert_int_equal(err.code, ES_EINVAL);
        assert_memory_equal(err.what, "pk: invalid JSON: ", 18);
    }
    s_key_json("O", good, &k);
    es_buf_release(&k);
}

static void
test_decode_errors(void **state)
{
    (void)state;
    es_buf_t k, out;
    es_buf_init(&k);
    es_buf_init(&out);
    s_key_json("O", "{\"orderId\":\"a\\u0000b\",\"lineNo\":3}", &k);
    es_err_t err;
    //  Every proper prefix is truncated (or a bad escape where the cut splits 0x00 0xFF).
    for (size_t n = 0; n < k.len; n++) {
        es_buf_reset(&out);
        es_buf_puts(&out, "keep");
        err.code = ES_OK;
        assert_int_equal(es_key_to_json(s_obj("O"), k.data, n, &out, &err), -1);
        assert_int_equal(err.code, ES_EPROTO);
        assert_string_equal(out.data, "keep");
        assert_memory_equal(err.what, "O key: ", 7);
    }
    assert_int_equal(es_key_to_json(s_obj("O"), k.data, 0, &out, &err), -1);
    assert_string_equal(err.what, "O key: truncated at byte 0");
    assert_int_equal(es_key_to_json(s_obj("O"), k.data, 8, &out, &err), -1);
    assert_string_equal(err.what, "O key: truncated at byte 8");

    static const struct {
        const char *bytes;
        size_t len;
        const char *what;
    } bad[] = {
        {"\x10\x80\0\0\0\0\0\0\x01\x01", 10, "C key: 1 trailing bytes after 1 parts"},
        {"\x11", 1, "C key: unknown tag 0x11 at byte 0"},
        {"\x00", 1, "C key: unknown tag 0x00 at byte 0"},
        {"\x30"
         "a\x00\x01",
         4, "C key: bad string escape at byte 2"},
        {"\x30"
         "a",
         2, "C key: truncated at byte 2"},
        {"\x30"
         "a\x00",
         3, "C key: truncated at byte 2"},
        {"\x10\x80\0", 3, "C key: truncated at byte 1"},
        {"\x20\x80\0\0\0\0\0\0", 8, "C key: truncated at byte 1"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        es_buf_reset(&out);
        if (es_key_to_json(s_obj("C"), bad[i].bytes, bad[i].len, &out, &err) != -1)
            fail_msg("bad key %zu accepted", i);
        assert_int_equal(err.code, ES_EPROTO);
        assert_int_equal(out.len, 0);
        if (strcmp(err.what, bad[i].what) != 0)
            fail_msg("bad key %zu: got '%s', want '%s'", i, err.what, bad[i].what);
    }
    es_buf_release(&out);
    es_buf_release(&k);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_order),       cmocka_unit_test(test_exact_bytes),
        cmocka_unit_test(test_from_record), cmocka_unit_test(test_json_round_trip),
        cmocka_unit_test(test_json_errors), cmocka_unit_test(test_decode_errors),
    };
    return cmocka_run_group_tests(tests, s_setup, s_teardown);
}
