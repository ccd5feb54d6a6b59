//  test_es_local - local CRUD with change tracking on a real LMDB store in a mkdtemp directory:
//  RSNs, baselines, deferred and collapsed changes, temporary keys, errors (nothing written),
//  pending listing, rollback, clear, the upload-side change listing and applying upload results.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "common/es_mem.h"
#include "protocol/es_key.h"
#include "protocol/es_record.h"
#include "store/es_local.h"
#include "store/es_upcache.h"
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *s_doc =
    "{\"name\":\"Svc\",\"version\":\"1.0\",\"objects\":["
    "{\"name\":\"Customer\",\"key\":[\"id\"],\"fields\":["
    "{\"name\":\"id\",\"datatype\":\"int\",\"nullable\":false,\"auto_generated\":true},"
    "{\"name\":\"name\",\"datatype\":\"string\",\"length\":8},"
    "{\"name\":\"age\",\"datatype\":\"int\"},"
    "{\"name\":\"code\",\"datatype\":\"string\",\"updatable\":false},"
    "{\"name\":\"vip\",\"datatype\":\"boolean\"}]},"
    "{\"name\":\"Order\",\"key\":[\"cust\",\"line\"],\"fields\":["
    "{\"name\":\"cust\",\"datatype\":\"int\"},"
    "{\"name\":\"line\",\"datatype\":\"string\"},"
    "{\"name\":\"qty\",\"datatype\":\"number\"},"
    "{\"name\":\"secret\",\"datatype\":\"string\",\"creatable\":false}]}]}";

static const char *s_doc2 = "{\"name\":\"Other\",\"objects\":["
                            "{\"name\":\"Thing\",\"key\":[\"k\"],\"fields\":["
                            "{\"name\":\"k\",\"datatype\":\"int\",\"auto_generated\":true},"
                            "{\"name\":\"v\",\"datatype\":\"string\"}]}]}";

static char s_dir[256];
static es_store_t *s_store;
static es_meta_t *s_meta, *s_meta2;
static const es_meta_object_t *s_cust, *s_order, *s_thing;

static int
s_setup(void **state)
{
    (void)state;
    snprintf(s_dir, sizeof s_dir, "/tmp/test_es_local.XXXXXX");
    if (!mkdtemp(s_dir))
        return -1;
    es_err_t err = {0};
    s_store = es_store_new(s_dir, NULL, &err);
    s_meta = es_meta_new(s_doc, strlen(s_doc), &err);
    s_meta2 = es_meta_new(s_doc2, strlen(s_doc2), &err);
    if (!s_store || !s_meta || !s_meta2) {
        fprintf(stderr, "setup: %s\n", err.what);
        return -1;
    }
    s_cust = es_meta_object(s_meta, "Customer");
    s_order = es_meta_object(s_meta, "Order");
    s_thing = es_meta_object(s_meta2, "Thing");
    return 0;
}

static int
s_teardown(void **state)
{
    (void)state;
    es_store_destroy(&s_store);
    es_meta_destroy(&s_meta);
    es_meta_destroy(&s_meta2);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", s_dir);
    return system(cmd) == 0 ? 0 : -1;
}

static es_txn_t *
s_begin(bool write)
{
    es_err_t err = {0};
    es_txn_t *txn = es_store_begin(s_store, write, &err);
    if (!txn)
        fail_msg("begin: %s", err.what);
    return txn;
}

static void
s_commit(es_txn_t **txn)
{
    es_err_t err = {0};
    if (es_txn_commit(txn, &err))
        fail_msg("commit: %s", err.what);
}

static const es_meta_object_t *
s_obj_named(const char *name, size_t len)
{
    const es_meta_object_t *objs[] = {s_cust, s_order, s_thing};
    for (size_t i = 0; i < 3; i++)
        if (strlen(objs[i]->name) == len && memcmp(objs[i]->name, name, len) == 0)
            return objs[i];
    fail_msg("unknown object %.*s", (int)len, name);
    return NULL;
}

static es_local_opts_t
s_opts(bool track, bool mark, bool inter)
{
    return (es_local_opts_t){track, mark, inter};
}

//  ---------------------------------------------------------------------------------------------
//  Operations in their own committed txn (expect success).

static char *
s_create(const es_meta_object_t *obj, const char *json, const es_local_opts_t *o)
{
    es_err_t err = {0};
    es_buf_t pk;
    es_buf_init(&pk);
    es_txn_t *txn = s_begin(true);
    es_meta_t *m = obj == s_thing ? s_meta2 : s_meta;
    if (es_local_create(txn, m, obj, json, strlen(json), o, &pk, &err))
        fail_msg("create %s: %s", json, err.what);
    s_commit(&txn);
    return es_buf_steal(&pk);
}

static void
s_update(const es_meta_object_t *obj, const char *pk, const char *json, bool partial,
         const es_local_opts_t *o)
{
    es_err_t err = {0};
    es_txn_t *txn = s_begin(true);
    if (es_local_update(txn, s_meta, obj, pk, strlen(pk), json, strlen(json), partial, o, &err))
        fail_msg("update %s %s: %s", pk, json, err.what);
    s_commit(&txn);
}

static void
s_delete(const es_meta_object_t *obj, const char *pk, const es_local_opts_t *o)
{
    es_err_t err = {0};
    es_txn_t *txn = s_begin(true);
    if (es_local_delete(txn, s_meta, obj, pk, strlen(pk), o, &err))
        fail_msg("delete %s: %s", pk, err.what);
    s_commit(&txn);
}

//  A record as the download would have stored it (checksum cs).
static void
s_seed(const es_meta_object_t *obj, const char *json, const char *cs)
{
    es_err_t err = {0};
    es_buf_t rec, pk, val, table;
    es_buf_init(&rec);
    es_buf_init(&pk);
    es_buf_init(&val);
    es_buf_init(&table);
    assert_int_equal(es_record_from_json(obj, json, strlen(json), &rec, &err), 0);
    assert_int_equal(es_key_from_record(obj, rec.data, rec.len, &pk, &err), 0);
    es_store_rec_pack(&val, cs, strlen(cs), rec.data, rec.len);
    es_store_table(&table, "main", obj->name);
    es_txn_t *txn = s_begin(true);
    assert_int_equal(es_txn_put(txn, table.data, pk.data, pk.len, val.data, val.len, &err), 0);
    s_commit(&txn);
    es_buf_release(&table);
    es_buf_release(&val);
    es_buf_release(&pk);
    es_buf_release(&rec);
}

static void
s_put_raw(const char *table, const char *key, const char *val)
{
    es_err_t err = {0};
    es_txn_t *txn = s_begin(true);
    assert_int_equal(es_txn_put(txn, table, key, strlen(key), val, strlen(val), &err), 0);
    s_commit(&txn);
}

static bool
s_has_raw(const char *table, const char *key)
{
    es_err_t err = {0};
    es_txn_t *txn = s_begin(false);
    const void *v;
    size_t vlen;
    int rc = es_txn_get(txn, table, key, strlen(key), &v, &vlen, &err);
    es_txn_abort(&txn);
    assert_true(rc >= 0);
    return rc == 1;
}

//  ---------------------------------------------------------------------------------------------
//  Inspection (fresh read txn). Returned strings are the caller's to free.

static void
s_key(const es_meta_object_t *obj, const char *pk_json, es_buf_t *pk)
{
    es_err_t err = {0};
    if (es_key_from_json(obj, pk_json, strlen(pk_json), pk, &err))
        fail_msg("key %s: %s", pk_json, err.what);
}

//  main row as "checksum|{record}", or NULL.
static char *
s_main(const es_meta_object_t *obj, const char *pk_json)
{
    es_err_t err = {0};
    es_buf_t pk, table, out;
    es_buf_init(&pk);
    es_buf_init(&table);
    es_buf_init(&out);
    s_key(obj, pk_json, &pk);
    es_store_table(&table, "main", obj->name);
    es_txn_t *txn = s_begin(false);
    const void *v;
    size_t vlen;
    int rc = es_txn_get(txn, table.data, pk.data, pk.len, &v, &vlen, &err);
    assert_true(rc >= 0);
    char *res = NULL;
    if (rc == 1) {
        const char *cs;
        size_t cslen;
        const void *rec;
        size_t rlen;
        assert_int_equal(es_store_rec_unpack(v, vlen, &cs, &cslen, &rec, &rlen), 0);
        es_buf_append(&out, cs, cslen);
        es_buf_putc(&out, '|');
        assert_int_equal(es_record_to_json(rec, rlen, &out, &err), 0);
        res = es_buf_steal(&out);
    }
    es_txn_abort(&txn);
    es_buf_release(&out);
    es_buf_release(&table);
    es_buf_release(&pk);
    return res;
}

//  orig row as "code|checksum|{record}", or NULL; "code" gets a "u" when the untracked mark
//  (high bit) is set.
static char *
s_orig(const es_meta_object_t *obj, const char *pk_json)
{
    es_err_t err = {0};
    es_buf_t pk, table, out;
    es_buf_init(&pk);
    es_buf_init(&table);
    es_buf_init(&out);
    s_key(obj, pk_json, &pk);
    es_store_table(&table, "orig", obj->name);
    es_txn_t *txn = s_begin(false);
    const void *v;
    size_t vlen;
    int rc = es_txn_get(txn, table.data, pk.data, pk.len, &v, &vlen, &err);
    assert_true(rc >= 0);
    char *res = NULL;
    if (rc == 1) {
        const char *cs;
        size_t cslen;
        const void *rec;
        size_t rlen;
        assert_true(vlen >= 1);
        assert_int_equal(
            es_store_rec_unpack((const uint8_t *)v + 1, vlen - 1, &cs, &cslen, &rec, &rlen), 0);
        uint8_t code = ((const uint8_t *)v)[0];
        es_buf_printf(&out, "%u%s|", code & 0x7fu, code & 0x80u ? "u" : "");
        es_buf_append(&out, cs, cslen);
        es_buf_putc(&out, '|');
        assert_int_equal(es_record_to_json(rec, rlen, &out, &err), 0);
        res = es_buf_steal(&out);
    }
    es_txn_abort(&txn);
    es_buf_release(&out);
    es_buf_release(&table);
    es_buf_release(&pk);
    return res;
}

//  pend row as "count/lastRSN", or NULL.
static char *
s_pend(const es_meta_object_t *obj, const char *pk_json)
{
    es_err_t err = {0};
    es_buf_t pk, table;
    es_buf_init(&pk);
    es_buf_init(&table);
    s_key(obj, pk_json, &pk);
    es_store_table(&table, "pend", obj->name);
    es_txn_t *txn = s_begin(false);
    const void *v;
    size_t vlen;
    int rc = es_txn_get(txn, table.data, pk.data, pk.len, &v, &vlen, &err);
    assert_true(rc >= 0);
    char *res = NULL;
    if (rc == 1) {
        assert_int_equal(vlen, 12);
        const uint8_t *p = v;
        uint32_t count =
            (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
        uint64_t last = 0;
        for (int i = 11; i >= 4; i--)
            last = last << 8 | p[i];
        res = es_sprintf("%u/%" PRIu64, count, last);
    }
    es_txn_abort(&txn);
    es_buf_release(&table);
    es_buf_release(&pk);
    return res;
}

//  meta counter as a signed number, or "absent".
static char *
s_counter(const char *prefix, const char *service)
{
    es_err_t err = {0};
    char *key = es_sprintf("%s/%s", prefix, service);
    es_txn_t *txn = s_begin(false);
    const void *v;
    size_t vlen;
    int rc = es_txn_get(txn, "meta", key, strlen(key), &v, &vlen, &err);
    assert_true(rc >= 0);
    char *res;
    if (rc == 1) {
        assert_int_equal(vlen, 8);
        uint64_t x = 0;
        for (int i = 7; i >= 0; i--)
            x = x << 8 | ((const uint8_t *)v)[i];
        res = es_sprintf("%" PRId64, (int64_t)x);
    } else {
        res = es_strdup("absent");
    }
    es_txn_abort(&txn);
    free(key);
    return res;
}

static void
s_change_line(es_buf_t *out, const es_local_change_t *c)
{
    es_err_t err = {0};
    const es_meta_object_t *obj = s_obj_named(c->object, c->object_len);
    es_buf_printf(out, "%" PRIu64 " %.*s %d ", c->rsn, (int)c->object_len, c->object,
                  (int)c->action);
    assert_int_equal(es_key_to_json(obj, c->pk, c->pk_len, out, &err), 0);
    es_buf_printf(out, " '%.*s' ", (int)c->checksum_len, c->checksum);
    assert_int_equal(es_record_to_json(c->rec, c->rec_len, out, &err), 0);
    es_buf_putc(out, '\n');
}

typedef struct {
    es_buf_t *out;
    const char *service;
} s_hist_ctx_t;

static int
s_hist_cb(void *ctx, const void *key, size_t klen, const void *val, size_t vlen, es_err_t *err)
{
    s_hist_ctx_t *h = ctx;
    size_t slen = strlen(h->service);
    if (klen != slen + 9 || memcmp(key, h->service, slen + 1) != 0)
        return 0;
    uint64_t rsn = 0;
    for (int i = 0; i < 8; i++)
        rsn = rsn << 8 | ((const uint8_t *)key)[slen + 1 + i];
    es_local_change_t c;
    if (es_local_change_decode(&c, rsn, val, vlen, err))
        return -1;
    s_change_line(h->out, &c);
    return 0;
}

//  Every hist row of service, one line each: "rsn object action pk 'checksum' record".
static char *
s_hist(const char *service)
{
    es_err_t err = {0};
    es_buf_t out;
    es_buf_init(&out);
    es_buf_puts(&out, "");
    s_hist_ctx_t h = {&out, service};
    es_txn_t *txn = s_begin(false);
    if (es_txn_iter(txn, "hist", NULL, 0, s_hist_cb, &h, &err))
        fail_msg("hist: %s", err.what);
    es_txn_abort(&txn);
    return es_buf_steal(&out);
}

static int
s_dump_cb(void *ctx, const void *key, size_t klen, const void *val, size_t vlen, es_err_t *err)
{
    (void)err;
    es_buf_t *out = ctx;
    for (size_t i = 0; i < klen; i++)
        es_buf_printf(out, "%02x", ((const uint8_t *)key)[i]);
    es_buf_putc(out, '=');
    for (size_t i = 0; i < vlen; i++)
        es_buf_printf(out, "%02x", ((const uint8_t *)val)[i]);
    es_buf_putc(out, '\n');
    return 0;
}

//  Every table es_local touches, as hex: to prove that nothing changed.
static char *
s_dump(void)
{
    static const char *tables[] = {"meta",          "hist",          "upcache",       "ctx",
                                   "main:Customer", "orig:Customer", "pend:Customer", "main:Order",
                                   "orig:Order",    "pend:Order",    "main:Thing",    "orig:Thing",
                                   "pend:Thing"};
    es_err_t err = {0};
    es_buf_t out;
    es_buf_init(&out);
    es_txn_t *txn = s_begin(false);
    for (size_t i = 0; i < sizeof tables / sizeof tables[0]; i++) {
        es_buf_printf(&out, "[%s]\n", tables[i]);
        if (es_txn_iter(txn, tables[i], NULL, 0, s_dump_cb, &out, &err))
            fail_msg("dump: %s", err.what);
    }
    es_txn_abort(&txn);
    return es_buf_steal(&out);
}

static void
s_expect_str(char *got, const char *want)
{
    if (!want) {
        if (got)
            fail_msg("expected nothing, got '%s'", got);
        return;
    }
    if (!got)
        fail_msg("expected '%s', got nothing", want);
    assert_string_equal(got, want);
    free(got);
}

//  ---------------------------------------------------------------------------------------------
//  Create

static void
test_create(void **state)
{
    (void)state;
    es_local_opts_t o = s_opts(true, true, true);
    s_expect_str(s_counter("rsn", "Svc"), "absent");
    s_expect_str(s_create(s_cust, "{\"name\":\"Ann\"}", &o), "{\"id\":-1}");
    s_expect_str(s_main(s_cust, "-1"), "|{\"id\":-1,\"name\":\"Ann\"}");
    s_expect_str(s_orig(s_cust, "-1"), "1||{}");
    s_expect_str(s_pend(s_cust, "-1"), "1/1");
    s_expect_str(s_counter("rsn", "Svc"), "2");
    s_expect_str(s_counter("gen", "Svc"), "-1");
    //  null asks for a temporary id too; RSNs are shared by the objects of a service.
    s_expect_str(s_create(s_cust, "{\"id\":null,\"age\":3}", &o), "{\"id\":-2}");
    s_expect_str(s_create(s_order, "{\"cust\":-2,\"line\":\"a\",\"qty\":2.5}", &o),
                 "{\"cust\":-2,\"line\":\"a\"}");
    //  A given value is kept and takes no temporary id.
    s_expect_str(s_create(s_cust, "{\"id\":50,\"name\":\"Bo\",\"vip\":true}", &o), "{\"id\":50}");
    s_expect_str(s_counter("gen", "Svc"), "-2");
    //  The other service has its own counters.
    s_expect_str(s_create(s_thing, "{\"v\":\"x\"}", &o), "{\"k\":-1}");
    s_expect_str(s_counter("rsn", "Other"), "2");
    s_expect_str(s_counter("gen", "Other"), "-1");
    s_expect_str(s_counter("rsn", "Svc"), "5");
    s_expect_str(
        s_hist("Svc"),
        "1 Customer 1 {\"id\":-1} '' {\"id\":-1,\"name\":\"Ann\"}\n"
        "2 Customer 1 {\"id\":-2} '' {\"id\":-2,\"age\":3}\n"
        "3 Order 1 {\"cust\":-2,\"line\":\"a\"} '' {\"cust\":-2,\"line\":\"a\",\"qty\":2.5}\n"
        "4 Customer 1 {\"id\":50} '' {\"id\":50,\"name\":\"Bo\",\"vip\":true}\n");
    s_expect_str(s_hist("Other"), "1 Thing 1 {\"k\":-1} '' {\"k\":-1,\"v\":\"x\"}\n");
    //  Create without pk_out and with default options (NULL).
    es_err_t err = {0};
    es_txn_t *txn = s_begin(true);
    assert_int_equal(es_local_create(txn, s_meta, s_cust, "{\"id\":51}", 9, NULL, NULL, &err), 0);
    s_commit(&txn);
    s_expect_str(s_pend(s_cust, "51"), "1/5");
}

static void
test_create_options(void **state)
{
    (void)state;
    es_local_opts_t untracked = s_opts(false, true, true);
    es_local_opts_t deferred = s_opts(true, false, true);
    s_expect_str(s_create(s_cust, "{\"id\":1}", &untracked), "{\"id\":1}");
    s_expect_str(s_main(s_cust, "1"), "|{\"id\":1}");
    s_expect_str(s_orig(s_cust, "1"), "1u||{}"); //  baseline even when not tracked
    s_expect_str(s_pend(s_cust, "1"), NULL);
    s_expect_str(s_counter("rsn", "Svc"), "absent");
    s_expect_str(s_hist("Svc"), "");
    s_expect_str(s_create(s_cust, "{\"id\":2}", &deferred), "{\"id\":2}");
    s_expect_str(s_orig(s_cust, "2"), "91||{}");
    s_expect_str(s_hist("Svc"), "1 Customer 91 {\"id\":2} '' {\"id\":2}\n");
    s_expect_str(s_pend(s_cust, "2"), "1/1");
    //  trackIntermediate has no effect on a create.
    es_local_opts_t nointer = s_opts(true, true, false);
    s_expect_str(s_create(s_cust, "{\"id\":3}", &nointer), "{\"id\":3}");
    s_expect_str(s_pend(s_cust, "3"), "1/2");
}

//  ---------------------------------------------------------------------------------------------
//  Update, partial update, delete

static void
test_update_partial_delete(void **state)
{
    (void)state;
    es_local_opts_t o = s_opts(true, true, true);
    s_seed(s_cust, "{\"id\":7,\"name\":\"Srv\",\"age\":40,\"code\":\"C7\"}", "cs1");
    s_seed(s_cust, "{\"id\":8,\"name\":\"Eve\"}", "cs8");
    //  Full update: absent updatable columns go, non-updatable ones stay; the key may repeat.
    s_update(s_cust, "7", "{\"id\":7,\"name\":\"Loc\",\"code\":\"C7\"}", false, &o);
    s_expect_str(s_main(s_cust, "7"), "cs1|{\"id\":7,\"name\":\"Loc\",\"code\":\"C7\"}");
    s_expect_str(s_orig(s_cust, "7"),
                 "0|cs1|{\"id\":7,\"name\":\"Srv\",\"age\":40,\"code\":\"C7\"}");
    //  Partial update merges; the baseline is not taken again.
    s_update(s_cust, "{\"id\":7}", "{\"age\":41,\"vip\":false}", true, &o);
    s_expect_str(s_main(s_cust, "7"),
                 "cs1|{\"id\":7,\"name\":\"Loc\",\"age\":41,\"code\":\"C7\",\"vip\":false}");
    s_expect_str(s_orig(s_cust, "7"),
                 "0|cs1|{\"id\":7,\"name\":\"Srv\",\"age\":40,\"code\":\"C7\"}");
    s_delete(s_cust, "8", &o);
    s_expect_str(s_main(s_cust, "8"), NULL);
    s_expect_str(s_orig(s_cust, "8"), "3|cs8|{\"id\":8,\"name\":\"Eve\"}");
    s_expect_str(s_hist("Svc"),
                 "1 Customer 0 {\"id\":7} 'cs1' {\"id\":7,\"name\":\"Loc\",\"code\":\"C7\"}\n"
                 "2 Customer 2 {\"id\":7} 'cs1' {\"id\":7,\"age\":41,\"vip\":false}\n"
                 "3 Customer 3 {\"id\":8} 'cs8' {\"id\":8}\n");
    s_expect_str(s_pend(s_cust, "7"), "2/2");
    s_expect_str(s_pend(s_cust, "8"), "1/3");
    //  Delete of the locally updated record; then a create of the same key again.
    s_delete(s_cust, "7", &o);
    s_expect_str(s_pend(s_cust, "7"), "3/4");
    s_expect_str(s_orig(s_cust, "7"),
                 "0|cs1|{\"id\":7,\"name\":\"Srv\",\"age\":40,\"code\":\"C7\"}");
    s_expect_str(s_create(s_cust, "{\"id\":7,\"name\":\"New\"}", &o), "{\"id\":7}");
    s_expect_str(s_pend(s_cust, "7"), "4/5");
    s_expect_str(s_orig(s_cust, "7"),
                 "0|cs1|{\"id\":7,\"name\":\"Srv\",\"age\":40,\"code\":\"C7\"}");
    //  Composite key, null value, number column given an integer.
    s_seed(s_order, "{\"cust\":1,\"line\":\"x\",\"qty\":1,\"secret\":\"s\"}", "oc");
    s_update(s_order, "{\"cust\":1,\"line\":\"x\"}", "{\"qty\":null}", true, &o);
    s_expect_str(s_main(s_order, "{\"cust\":1,\"line\":\"x\"}"),
                 "oc|{\"cust\":1,\"line\":\"x\",\"qty\":null,\"secret\":\"s\"}");
    s_update(s_order, "{\"line\":\"x\",\"cust\":1.0}", "{\"qty\":3}", false, &o);
    s_expect_str(s_main(s_order, "{\"cust\":1,\"line\":\"x\"}"),
                 "oc|{\"cust\":1,\"line\":\"x\",\"qty\":3}");
}

static void
test_update_delete_options(void **state)
{
    (void)state;
    es_local_opts_t untracked = s_opts(false, true, true);
    es_local_opts_t deferred = s_opts(true, false, true);
    s_seed(s_cust, "{\"id\":1,\"name\":\"A\"}", "c1");
    s_seed(s_cust, "{\"id\":2,\"name\":\"B\"}", "c2");
    s_seed(s_cust, "{\"id\":3,\"name\":\"C\"}", "c3");
    s_update(s_cust, "1", "{\"name\":\"A2\"}", true, &untracked);
    s_expect_str(s_main(s_cust, "1"), "c1|{\"id\":1,\"name\":\"A2\"}");
    s_expect_str(s_orig(s_cust, "1"), "2u|c1|{\"id\":1,\"name\":\"A\"}");
    s_expect_str(s_pend(s_cust, "1"), NULL);
    s_delete(s_cust, "2", &untracked);
    s_expect_str(s_main(s_cust, "2"), NULL);
    s_expect_str(s_orig(s_cust, "2"), "3u|c2|{\"id\":2,\"name\":\"B\"}");
    s_expect_str(s_hist("Svc"), "");
    s_expect_str(s_counter("rsn", "Svc"), "absent");
    es_err_t err = {0};
    es_txn_t *txn = s_begin(false);
    es_buf_t pk;
    es_buf_init(&pk);
    s_key(s_cust, "1", &pk);
    assert_int_equal(es_local_has_local_state(txn, "Customer", pk.data, pk.len, &err), 1);
    s_key(s_cust, "3", &pk);
    assert_int_equal(es_local_has_local_state(txn, "Customer", pk.data, pk.len, &err), 0);
    es_txn_abort(&txn);
    //  Deferred update (full and partial: both 90 with the whole record) and delete.
    s_update(s_cust, "3", "{\"name\":\"C2\"}", true, &deferred);
    s_update(s_cust, "3", "{\"name\":\"C3\"}", false, &deferred);
    s_expect_str(s_orig(s_cust, "3"), "90|c3|{\"id\":3,\"name\":\"C\"}");
    s_delete(s_cust, "3", &deferred);
    s_expect_str(s_hist("Svc"), "1 Customer 90 {\"id\":3} 'c3' {\"id\":3,\"name\":\"C2\"}\n"
                                "2 Customer 90 {\"id\":3} 'c3' {\"id\":3,\"name\":\"C3\"}\n"
                                "3 Customer 93 {\"id\":3} 'c3' {\"id\":3}\n");
    txn = s_begin(false);
    s_key(s_cust, "3", &pk);
    assert_int_equal(es_local_has_local_state(txn, "Customer", pk.data, pk.len, &err), 1);
    es_txn_abort(&txn);
    es_buf_release(&pk);
}

static void
test_collapse(void **state)
{
    (void)state;
    es_local_opts_t ni = s_opts(true, true, false);
    es_local_opts_t o = s_opts(true, true, true);
    es_local_opts_t dni = s_opts(true, false, false);
    s_seed(s_cust, "{\"id\":1,\"name\":\"A\",\"age\":1}", "c1");
    s_update(s_cust, "1", "{\"name\":\"B\"}", false, &ni);
    s_update(s_cust, "1", "{\"name\":\"C\",\"age\":5}", false, &ni);
    s_update(s_cust, "1", "{\"vip\":true}", true, &ni);
    //  Collapsing keeps one row but moves it to a new RSN (an upload in flight may hold the
    //  old one, and its answer deletes rows up to its rowId).
    s_expect_str(
        s_hist("Svc"),
        "3 Customer 80 {\"id\":1} 'c1' {\"id\":1,\"name\":\"C\",\"age\":5,\"vip\":true}\n");
    s_expect_str(s_pend(s_cust, "1"), "1/3");
    s_expect_str(s_counter("rsn", "Svc"), "4");
    s_expect_str(s_orig(s_cust, "1"), "80|c1|{\"id\":1,\"name\":\"A\",\"age\":1}");
    //  A tracked intermediate update ends the run; the next 80 starts a new row.
    s_update(s_cust, "1", "{\"age\":6}", true, &o);
    s_update(s_cust, "1", "{\"age\":7}", true, &ni);
    s_update(s_cust, "1", "{\"age\":8}", true, &ni);
    //  Deferred collapsing (70) after an uploadable row.
    s_update(s_cust, "1", "{\"age\":9}", true, &dni);
    s_update(s_cust, "1", "{\"age\":10}", true, &dni);
    s_expect_str(
        s_hist("Svc"),
        "3 Customer 80 {\"id\":1} 'c1' {\"id\":1,\"name\":\"C\",\"age\":5,\"vip\":true}\n"
        "4 Customer 2 {\"id\":1} 'c1' {\"id\":1,\"age\":6}\n"
        "6 Customer 80 {\"id\":1} 'c1' {\"id\":1,\"name\":\"C\",\"age\":8,\"vip\":true}\n"
        "8 Customer 70 {\"id\":1} 'c1' {\"id\":1,\"name\":\"C\",\"age\":10,\"vip\":true}\n");
    s_expect_str(s_pend(s_cust, "1"), "4/8");
    s_expect_str(s_counter("rsn", "Svc"), "9");
    s_expect_str(s_main(s_cust, "1"), "c1|{\"id\":1,\"name\":\"C\",\"age\":10,\"vip\":true}");
}

static void
test_mark_for_upload(void **state)
{
    (void)state;
    es_local_opts_t d = s_opts(true, false, true);
    es_local_opts_t dni = s_opts(true, false, false);
    es_local_opts_t o = s_opts(true, true, true);
    s_seed(s_cust, "{\"id\":1}", "");
    s_seed(s_cust, "{\"id\":2}", "");
    s_expect_str(s_create(s_cust, "{\"id\":5}", &d), "{\"id\":5}");
    s_update(s_cust, "1", "{\"age\":1}", true, &dni);
    s_delete(s_cust, "2", &d);
    s_expect_str(s_create(s_order, "{\"cust\":1,\"line\":\"l\"}", &d),
                 "{\"cust\":1,\"line\":\"l\"}");
    s_update(s_cust, "5", "{\"age\":2}", true, &d);
    char *before = s_dump();
    //  An uploadable edit behind deferred ones is refused, nothing written.
    es_err_t err = {0};
    es_txn_t *txn = s_begin(true);
    assert_int_equal(es_local_update(txn, s_meta, s_cust, "5", 1, "{\"age\":3}", 9, true, &o, &err),
                     -1);
    es_txn_abort(&txn);
    assert_int_equal(err.code, ES_EINVAL);
    assert_string_equal(err.what,
                        "Customer: partialUpdate: record has deferred changes (2314): key "
                        "{\"id\":5}; call markForUpload first or pass "
                        "markForUpload:false");
    txn = s_begin(true);
    assert_int_equal(es_local_delete(txn, s_meta, s_cust, "1", 1, &o, &err), -1);
    es_txn_abort(&txn);
    assert_string_equal(err.what, "Customer: delete: record has deferred changes (2314): key "
                                  "{\"id\":1}; call markForUpload first or pass "
                                  "markForUpload:false");
    char *after = s_dump();
    assert_string_equal(before, after);
    free(after);
    free(before);
    //  Deferred rows are not listed for upload.
    txn = s_begin(false);
    uint64_t last = 0;
    assert_int_equal(es_local_last_rsn(txn, "Svc", &last, &err), 0);
    assert_int_equal(last, 5);
    es_txn_abort(&txn);
    //  Object level converts only that object's rows.
    txn = s_begin(true);
    assert_int_equal(es_local_mark_for_upload(txn, s_meta, s_cust, &err), 4);
    s_commit(&txn);
    s_expect_str(s_hist("Svc"), "1 Customer 1 {\"id\":5} '' {\"id\":5}\n"
                                "2 Customer 80 {\"id\":1} '' {\"id\":1,\"age\":1}\n"
                                "3 Customer 3 {\"id\":2} '' {\"id\":2}\n"
                                "4 Order 91 {\"cust\":1,\"line\":\"l\"} '' "
                                "{\"cust\":1,\"line\":\"l\"}\n"
                                "5 Customer 0 {\"id\":5} '' {\"id\":5,\"age\":2}\n");
    s_expect_str(s_pend(s_cust, "5"), "2/5");
    txn = s_begin(true);
    assert_int_equal(es_local_mark_for_upload(txn, s_meta, NULL, &err), 1);
    assert_int_equal(es_local_mark_for_upload(txn, s_meta, NULL, &err), 0);
    s_commit(&txn);
    s_expect_str(s_hist("Svc"), "1 Customer 1 {\"id\":5} '' {\"id\":5}\n"
                                "2 Customer 80 {\"id\":1} '' {\"id\":1,\"age\":1}\n"
                                "3 Customer 3 {\"id\":2} '' {\"id\":2}\n"
                                "4 Order 1 {\"cust\":1,\"line\":\"l\"} '' "
                                "{\"cust\":1,\"line\":\"l\"}\n"
                                "5 Customer 0 {\"id\":5} '' {\"id\":5,\"age\":2}\n");
    //  Now an uploadable edit is accepted; collapsing continues the converted 80 row.
    s_update(s_cust, "5", "{\"age\":3}", true, &o);
    s_update(s_cust, "1", "{\"age\":4}", true, &(es_local_opts_t){true, true, false});
    s_expect_str(s_pend(s_cust, "1"), "1/7");
}

//  ---------------------------------------------------------------------------------------------
//  Errors: exact text, nothing written

typedef enum { OP_CREATE, OP_UPDATE, OP_PARTIAL, OP_DELETE, OP_ROLLBACK, OP_CLEAR } s_op_t;

static void
s_expect_error(s_op_t op, const es_meta_object_t *obj, const char *pk, const char *json,
               es_code_t code, const char *what)
{
    char *before = s_dump();
    es_err_t err = {0};
    es_local_opts_t o = s_opts(true, true, true);
    es_txn_t *txn = s_begin(true);
    int64_t rc = 0;
    switch (op) {
    case OP_CREATE:
        rc = es_local_create(txn, s_meta, obj, json, json ? strlen(json) : 0, &o, NULL, &err);
        break;
    case OP_UPDATE:
    case OP_PARTIAL:
        rc = es_local_update(txn, s_meta, obj, pk, pk ? strlen(pk) : 0, json,
                             json ? strlen(json) : 0, op == OP_PARTIAL, &o, &err);
        break;
    case OP_DELETE:
        rc = es_local_delete(txn, s_meta, obj, pk, pk ? strlen(pk) : 0, &o, &err);
        break;
    case OP_ROLLBACK:
        rc = es_local_rollback(txn, s_meta, obj, pk, pk ? strlen(pk) : 0, &err);
        break;
    case OP_CLEAR:
        rc = es_local_clear(txn, s_meta, obj, pk, pk ? strlen(pk) : 0, &err);
        break;
    }
    es_txn_abort(&txn);
    if (rc != -1)
        fail_msg("expected failure '%s', got %lld", what, (long long)rc);
    assert_string_equal(err.what, what);
    assert_int_equal(err.code, code);
    char *after = s_dump();
    assert_string_equal(before, after);
    free(after);
    free(before);
}

static void
test_errors(void **state)
{
    (void)state;
    es_local_opts_t o = s_opts(true, true, true);
    s_seed(s_cust, "{\"id\":7,\"name\":\"S\",\"code\":\"K\"}", "cs");
    s_expect_str(s_create(s_cust, "{\"name\":\"T\"}", &o), "{\"id\":-1}");
    s_seed(s_order, "{\"cust\":1,\"line\":\"a\"}", "");
    //  create
    s_expect_error(OP_CREATE, s_cust, NULL, "{\"nme\":\"x\"}", ES_EINVAL,
                   "Customer.nme: unknown column");
    s_expect_error(OP_CREATE, s_cust, NULL, "{\"_metadata\":{}}", ES_EINVAL,
                   "Customer._metadata: unknown column");
    s_expect_error(OP_CREATE, s_cust, NULL, "{\"age\":\"x\"}", ES_EINVAL,
                   "Customer.age: expected int, got string");
    s_expect_error(OP_CREATE, s_cust, NULL, "{\"age\":1.5}", ES_EINVAL,
                   "Customer.age: expected int, got non-integral number");
    s_expect_error(OP_CREATE, s_cust, NULL, "{\"vip\":\"yes\"}", ES_EINVAL,
                   "Customer.vip: expected boolean, got string");
    s_expect_error(OP_CREATE, s_cust, NULL, "{\"age\":[1]}", ES_EINVAL,
                   "Customer.age: expected int, got array");
    s_expect_error(OP_CREATE, s_cust, NULL, "{\"name\":{}}", ES_EINVAL,
                   "Customer.name: expected string, got object");
    s_expect_error(OP_CREATE, s_cust, NULL, "{\"name\":\"123456789\"}", ES_EINVAL,
                   "Customer.name: string of 9 characters exceeds length 8");
    s_expect_error(OP_CREATE, s_cust, NULL, "{\"id\":7}", ES_EINVAL,
                   "Customer: create: a record with key {\"id\":7} exists");
    s_expect_error(OP_CREATE, s_cust, NULL, "{\"id\":-1}", ES_EINVAL,
                   "Customer: create: a record with key {\"id\":-1} exists");
    s_expect_error(OP_CREATE, s_cust, NULL, "{\"id\":\"7\"}", ES_EINVAL,
                   "Customer.id: expected int, got string");
    s_expect_error(OP_CREATE, s_cust, NULL, "[1]", ES_EINVAL,
                   "Customer: create: record: expected a JSON object");
    s_expect_error(OP_CREATE, s_cust, NULL, "{\"name\":", ES_EINVAL,
                   "Customer: create: record: invalid JSON: parse error: premature EOF");
    s_expect_error(OP_CREATE, s_cust, NULL, NULL, ES_EINVAL, "Customer: create: record missing");
    {
        //  A client's record nested 1M levels deep used to overflow the stack in
        //  yajl_tree_free() (the orchestrator died); nesting is refused before parsing.
        size_t depth = 1u << 20;
        char *deep = malloc(2 * depth + 16);
        assert_non_null(deep);
        strcpy(deep, "{\"name\":");
        size_t n = strlen(deep);
        memset(deep + n, '[', depth);
        memset(deep + n + depth, ']', depth);
        strcpy(deep + n + 2 * depth, "}");
        s_expect_error(OP_CREATE, s_cust, NULL, deep, ES_EINVAL,
                       "Customer: create: record: nested deeper than 64 levels at byte 71");
        free(deep);
    }
    s_expect_error(OP_CREATE, s_order, NULL, "{\"cust\":1}", ES_EINVAL,
                   "Order: key column 'line' missing");
    s_expect_error(OP_CREATE, s_order, NULL, "{\"cust\":1,\"line\":null}", ES_EINVAL,
                   "Order.line: expected string, got null (key column)");
    s_expect_error(OP_CREATE, s_order, NULL, "{\"cust\":1,\"line\":\"b\",\"secret\":\"s\"}",
                   ES_EINVAL, "Order.secret: column is not creatable");
    s_expect_error(OP_CREATE, s_order, NULL, "{\"cust\":1,\"line\":\"a\"}", ES_EINVAL,
                   "Order: create: a record with key {\"cust\":1,\"line\":\"a\"} exists");
    //  update / partial update
    s_expect_error(OP_UPDATE, s_cust, "99", "{\"name\":\"x\"}", ES_ENOTFOUND,
                   "Customer: update: no record with key {\"id\":99}");
    s_expect_error(OP_PARTIAL, s_cust, "99", "{\"name\":\"x\"}", ES_ENOTFOUND,
                   "Customer: partialUpdate: no record with key {\"id\":99}");
    s_expect_error(OP_UPDATE, s_cust, "7", "{\"id\":8}", ES_EINVAL,
                   "Customer.id: key columns cannot be updated");
    s_expect_error(OP_PARTIAL, s_order, "{\"cust\":1,\"line\":\"a\"}", "{\"line\":\"b\"}",
                   ES_EINVAL, "Order.line: key columns cannot be updated");
    s_expect_error(OP_UPDATE, s_cust, "7", "{\"code\":\"Z\"}", ES_EINVAL,
                   "Customer.code: column is not updatable");
    s_expect_error(OP_PARTIAL, s_cust, "7", "{\"code\":null}", ES_EINVAL,
                   "Customer.code: column is not updatable");
    s_expect_error(OP_PARTIAL, s_cust, "7", "{\"nme\":1}", ES_EINVAL,
                   "Customer.nme: unknown column");
    s_expect_error(OP_PARTIAL, s_cust, "7", "{\"age\":true}", ES_EINVAL,
                   "Customer.age: expected int, got boolean");
    s_expect_error(OP_PARTIAL, s_cust, "7", "{\"id\":null}", ES_EINVAL,
                   "Customer.id: expected int, got null (key column)");
    s_expect_error(OP_UPDATE, s_cust, "\"7\"", "{}", ES_EINVAL,
                   "Customer: update: pk: expected int for 'id', got string");
    s_expect_error(OP_UPDATE, s_cust, NULL, "{}", ES_EINVAL,
                   "Customer: update: primary key missing");
    s_expect_error(OP_UPDATE, s_order, "1", "{}", ES_EINVAL,
                   "Order: update: pk: Order has a composite key; expected an object naming "
                   "'cust', 'line'");
    s_expect_error(OP_UPDATE, s_order, "{\"cust\":1}", "{}", ES_EINVAL,
                   "Order: update: pk: missing key column 'line'");
    s_expect_error(OP_UPDATE, s_cust, "7", "7", ES_EINVAL,
                   "Customer: update: record: expected a JSON object");
    //  delete
    s_expect_error(OP_DELETE, s_cust, "99", NULL, ES_ENOTFOUND,
                   "Customer: delete: no record with key {\"id\":99}");
    s_expect_error(OP_DELETE, s_cust, "{\"id\":\"x\"}", NULL, ES_EINVAL,
                   "Customer: delete: pk: expected int for 'id', got string");
    //  rollback of a key without local changes
    s_expect_error(OP_ROLLBACK, s_cust, "7", NULL, ES_ENOTFOUND,
                   "Customer: rollback: no local changes for that key {\"id\":7} (2471)");
    //  Repeating the key, or an unchanged non-updatable value, is fine.
    s_update(s_cust, "7", "{\"id\":7,\"code\":\"K\",\"name\":\"N\"}", false, &o);
    s_update(s_cust, "7", "{\"id\":7.0}", true, &o);
    s_expect_str(s_main(s_cust, "7"), "cs|{\"id\":7,\"name\":\"N\",\"code\":\"K\"}");
}

static void
test_opts_parse(void **state)
{
    (void)state;
    es_local_opts_t o;
    es_err_t err = {0};
    assert_int_equal(es_local_opts_parse(&o, NULL, 0, &err), 0);
    assert_true(o.track_changes && o.mark_for_upload && o.track_intermediate);
    const char *j = "{\"trackChanges\":false,\"markForUpload\":false,"
                    "\"trackIntermediateUpdates\":false,\"primaryKeys\":{\"id\":1}}";
    assert_int_equal(es_local_opts_parse(&o, j, strlen(j), &err), 0);
    assert_false(o.track_changes || o.mark_for_upload || o.track_intermediate);
    j = "{\"trackIntermediateChanges\":false}";
    assert_int_equal(es_local_opts_parse(&o, j, strlen(j), &err), 0);
    assert_true(o.track_changes && o.mark_for_upload);
    assert_false(o.track_intermediate);
    j = "null";
    assert_int_equal(es_local_opts_parse(&o, j, strlen(j), &err), 0);
    const char *bad[][2] = {
        {"{\"trackChanges\":1}", "options.trackChanges: expected a boolean"},
        {"{\"markForUpload\":\"false\"}", "options.markForUpload: expected a boolean"},
        {"{\"trackIntermediateUpdates\":null}",
         "options.trackIntermediateUpdates: expected a boolean"},
        {"[true]", "options: expected a JSON object"},
        {"{\"trackChanges\":", "options: invalid JSON: parse error: premature EOF"},
        {"{\"a\":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]"
         "]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}",
         "options: nested deeper than 64 levels at byte 68"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(es_local_opts_parse(&o, bad[i][0], strlen(bad[i][0]), &err), -1);
        assert_int_equal(err.code, ES_EINVAL);
        assert_string_equal(err.what, bad[i][1]);
    }
}

//  ---------------------------------------------------------------------------------------------
//  Pending, rollback, clear

static char *
s_pending(const es_meta_object_t *obj)
{
    es_err_t err = {0};
    es_buf_t out;
    es_buf_init(&out);
    es_txn_t *txn = s_begin(false);
    if (es_local_pending(txn, s_meta, obj, &out, &err))
        fail_msg("pending: %s", err.what);
    es_txn_abort(&txn);
    return es_buf_steal(&out);
}

static void
test_pending(void **state)
{
    (void)state;
    es_local_opts_t o = s_opts(true, true, true);
    s_expect_str(s_pending(s_cust), "{\"pendingSyncRecords\":[]}");
    s_expect_str(s_pending(NULL), "{\"Customer\":{\"pendingSyncRecords\":[]},"
                                  "\"Order\":{\"pendingSyncRecords\":[]}}");
    s_seed(s_cust, "{\"id\":7}", "");
    s_seed(s_cust, "{\"id\":8}", "");
    free(s_create(s_cust, "{}", &o));
    free(s_create(s_cust, "{}", &o));
    s_update(s_cust, "7", "{\"age\":1}", true, &o);
    s_update(s_cust, "7", "{\"age\":2}", true, &o);
    s_update(s_cust, "8", "{\"age\":2}", true, &(es_local_opts_t){false, true, true});
    free(s_create(s_order, "{\"cust\":2,\"line\":\"b\"}", &o));
    free(s_create(s_order, "{\"cust\":2,\"line\":\"a\"}", &o));
    s_expect_str(s_pending(s_cust),
                 "{\"pendingSyncRecords\":[{\"id\":-2},{\"id\":-1},{\"id\":7}]}");
    s_expect_str(s_pending(NULL),
                 "{\"Customer\":{\"pendingSyncRecords\":[{\"id\":-2},{\"id\":-1},{\"id\":7}]},"
                 "\"Order\":{\"pendingSyncRecords\":[{\"cust\":2,\"line\":\"a\"},"
                 "{\"cust\":2,\"line\":\"b\"}]}}");
}

//  An upload cache row for name whose request carries the given rowIds.
static void
s_put_upcache(const char *name, const char *request_id, const uint64_t *ids, size_t n)
{
    es_buf_t body, val;
    es_buf_init(&body);
    es_buf_init(&val);
    es_buf_puts(&body, "{\"hasMoreRecords\":\"false\",\"records\":[");
    for (size_t i = 0; i < n; i++)
        es_buf_printf(&body,
                      "%s{\"id\":1,\"_metadata\":{\"object\":\"Customer\",\"rowId\":%" PRIu64 "}}",
                      i ? "," : "", ids[i]);
    es_buf_puts(&body, "]}");
    es_upcache_row_t row = {.kind = ES_UPCACHE_OBJECT,
                            .request_id = request_id,
                            .request_id_len = strlen(request_id),
                            .attempts = 1,
                            .last_attempt = 1700000000000ull,
                            .url = "http://x/objects/Customer",
                            .url_len = 25,
                            .body = body.data,
                            .body_len = body.len};
    es_upcache_encode(&row, &val);
    es_err_t err = {0};
    es_txn_t *txn = s_begin(true);
    assert_int_equal(es_txn_put(txn, "upcache", name, strlen(name), val.data, val.len, &err), 0);
    s_commit(&txn);
    es_buf_release(&val);
    es_buf_release(&body);
}

//  Server rows 1..3, local: update 1 (twice), delete 2, create temp -1, untracked update 3,
//  order create; upload cache rows for the service and both objects, carrying no change that
//  is still pending (their requests' changes were settled; rollback and clear keep them).
static void
s_local_scene(void)
{
    es_local_opts_t o = s_opts(true, true, true);
    s_seed(s_cust, "{\"id\":1,\"name\":\"One\"}", "c1");
    s_seed(s_cust, "{\"id\":2,\"name\":\"Two\"}", "c2");
    s_seed(s_cust, "{\"id\":3,\"name\":\"Three\"}", "c3");
    s_update(s_cust, "1", "{\"name\":\"Uno\"}", true, &o);
    s_update(s_cust, "1", "{\"age\":9}", true, &o);
    s_delete(s_cust, "2", &o);
    s_expect_str(s_create(s_cust, "{\"name\":\"Tmp\"}", &o), "{\"id\":-1}");
    s_update(s_cust, "3", "{\"name\":\"Tres\"}", true, &(es_local_opts_t){false, true, true});
    free(s_create(s_order, "{\"cust\":1,\"line\":\"a\"}", &o));
    s_put_upcache("Svc", "req-svc", (uint64_t[]){900}, 1);
    s_put_upcache("Customer", "req-cust", (uint64_t[]){901, 902}, 2);
    s_put_upcache("Order", "req-order", (uint64_t[]){903}, 1);
    s_put_raw("ctx", "Customer\n", "d1");
    s_put_raw("ctx", "Customer\nage gt 1", "d2");
    s_put_raw("ctx", "Customers\n", "other");
    s_put_raw("ctx", "Order\n", "d3");
}

static int64_t
s_rollback(const es_meta_object_t *obj, const char *pk)
{
    es_err_t err = {0};
    es_txn_t *txn = s_begin(true);
    int64_t n = es_local_rollback(txn, s_meta, obj, pk, pk ? strlen(pk) : 0, &err);
    if (n < 0)
        fail_msg("rollback: %s", err.what);
    s_commit(&txn);
    return n;
}

static void
test_rollback_key(void **state)
{
    (void)state;
    s_local_scene();
    assert_int_equal(s_rollback(s_cust, "1"), 1);
    s_expect_str(s_main(s_cust, "1"), "c1|{\"id\":1,\"name\":\"One\"}");
    s_expect_str(s_orig(s_cust, "1"), NULL);
    s_expect_str(s_pend(s_cust, "1"), NULL);
    assert_true(s_has_raw("upcache", "Customer"));
    assert_true(s_has_raw("upcache", "Svc"));
    assert_true(s_has_raw("upcache", "Order"));
    s_expect_str(s_hist("Svc"),
                 "3 Customer 3 {\"id\":2} 'c2' {\"id\":2}\n"
                 "4 Customer 1 {\"id\":-1} '' {\"id\":-1,\"name\":\"Tmp\"}\n"
                 "5 Order 1 {\"cust\":1,\"line\":\"a\"} '' {\"cust\":1,\"line\":\"a\"}\n");
    //  A create rolls back to nothing; a delete to the server row; untracked edits too.
    assert_int_equal(s_rollback(s_cust, "-1"), 1);
    s_expect_str(s_main(s_cust, "-1"), NULL);
    s_expect_str(s_orig(s_cust, "-1"), NULL);
    s_expect_str(s_pend(s_cust, "-1"), NULL);
    assert_int_equal(s_rollback(s_cust, "2"), 1);
    s_expect_str(s_main(s_cust, "2"), "c2|{\"id\":2,\"name\":\"Two\"}");
    assert_int_equal(s_rollback(s_cust, "3"), 1);
    s_expect_str(s_main(s_cust, "3"), "c3|{\"id\":3,\"name\":\"Three\"}");
    s_expect_str(s_hist("Svc"),
                 "5 Order 1 {\"cust\":1,\"line\":\"a\"} '' {\"cust\":1,\"line\":\"a\"}\n");
    s_expect_error(OP_ROLLBACK, s_cust, "1", NULL, ES_ENOTFOUND,
                   "Customer: rollback: no local changes for that key {\"id\":1} (2471)");
    //  The RSN counter is not rewound.
    s_expect_str(s_counter("rsn", "Svc"), "6");
}

static void
test_rollback_object_service(void **state)
{
    (void)state;
    s_local_scene();
    s_expect_str(s_create(s_thing, "{\"v\":\"t\"}", NULL), "{\"k\":-1}");
    assert_int_equal(s_rollback(s_cust, NULL), 4);
    s_expect_str(s_main(s_cust, "1"), "c1|{\"id\":1,\"name\":\"One\"}");
    s_expect_str(s_main(s_cust, "2"), "c2|{\"id\":2,\"name\":\"Two\"}");
    s_expect_str(s_main(s_cust, "3"), "c3|{\"id\":3,\"name\":\"Three\"}");
    s_expect_str(s_main(s_cust, "-1"), NULL);
    s_expect_str(s_pending(s_cust), "{\"pendingSyncRecords\":[]}");
    s_expect_str(s_hist("Svc"),
                 "5 Order 1 {\"cust\":1,\"line\":\"a\"} '' {\"cust\":1,\"line\":\"a\"}\n");
    assert_true(s_has_raw("upcache", "Customer"));
    assert_true(s_has_raw("upcache", "Order"));
    s_update(s_cust, "1", "{\"age\":1}", true, NULL);
    assert_int_equal(s_rollback(NULL, NULL), 2);
    s_expect_str(s_main(s_cust, "1"), "c1|{\"id\":1,\"name\":\"One\"}");
    s_expect_str(s_main(s_order, "{\"cust\":1,\"line\":\"a\"}"), NULL);
    s_expect_str(s_hist("Svc"), "");
    s_expect_str(s_pending(NULL), "{\"Customer\":{\"pendingSyncRecords\":[]},"
                                  "\"Order\":{\"pendingSyncRecords\":[]}}");
    assert_true(s_has_raw("upcache", "Svc"));
    assert_true(s_has_raw("upcache", "Order"));
    //  Another service is untouched.
    s_expect_str(s_hist("Other"), "1 Thing 1 {\"k\":-1} '' {\"k\":-1,\"v\":\"t\"}\n");
    assert_int_equal(s_rollback(NULL, NULL), 0);
}

static int64_t
s_clear(const es_meta_object_t *obj, const char *pk)
{
    es_err_t err = {0};
    es_txn_t *txn = s_begin(true);
    int64_t n = es_local_clear(txn, s_meta, obj, pk, pk ? strlen(pk) : 0, &err);
    if (n < 0)
        fail_msg("clear: %s", err.what);
    s_commit(&txn);
    return n;
}

static void
test_clear(void **state)
{
    (void)state;
    s_local_scene();
    assert_int_equal(s_clear(s_cust, "1"), 1);
    s_expect_str(s_main(s_cust, "1"), NULL);
    s_expect_str(s_orig(s_cust, "1"), NULL);
    s_expect_str(s_pend(s_cust, "1"), NULL);
    assert_true(s_has_raw("upcache", "Customer"));
    assert_true(s_has_raw("ctx", "Customer\n"));
    assert_int_equal(s_clear(s_cust, "2"), 0); //  deleted locally: no main row
    s_expect_str(s_orig(s_cust, "2"), NULL);
    s_expect_str(s_hist("Svc"),
                 "4 Customer 1 {\"id\":-1} '' {\"id\":-1,\"name\":\"Tmp\"}\n"
                 "5 Order 1 {\"cust\":1,\"line\":\"a\"} '' {\"cust\":1,\"line\":\"a\"}\n");
    assert_int_equal(s_clear(s_cust, NULL), 2);
    s_expect_str(s_main(s_cust, "3"), NULL);
    s_expect_str(s_orig(s_cust, "3"), NULL);
    s_expect_str(s_hist("Svc"),
                 "5 Order 1 {\"cust\":1,\"line\":\"a\"} '' {\"cust\":1,\"line\":\"a\"}\n");
    assert_false(s_has_raw("ctx", "Customer\n"));
    assert_false(s_has_raw("ctx", "Customer\nage gt 1"));
    assert_true(s_has_raw("ctx", "Customers\n"));
    assert_true(s_has_raw("ctx", "Order\n"));
    assert_true(s_has_raw("upcache", "Customer"));
    assert_true(s_has_raw("upcache", "Svc"));
    assert_int_equal(s_clear(NULL, NULL), 1);
    s_expect_str(s_hist("Svc"), "");
    s_expect_str(s_main(s_order, "{\"cust\":1,\"line\":\"a\"}"), NULL);
    s_expect_str(s_pend(s_order, "{\"cust\":1,\"line\":\"a\"}"), NULL);
    assert_false(s_has_raw("ctx", "Order\n"));
    assert_true(s_has_raw("upcache", "Svc"));
    assert_true(s_has_raw("upcache", "Order"));
    assert_true(s_has_raw("ctx", "Customers\n"));
}

//  ---------------------------------------------------------------------------------------------
//  Upload side

typedef struct {
    es_buf_t out;
    int stop_at; //  return 1 at this call (1-based), or -1 at -stop_at; 0: never
    int calls;
} s_collect_t;

static int
s_collect_fn(void *ctx, const es_local_change_t *c, es_err_t *err)
{
    s_collect_t *s = ctx;
    s->calls++;
    if (s->stop_at < 0 && s->calls == -s->stop_at)
        return es_err_set(err, ES_EINVAL, "stop here");
    s_change_line(&s->out, c);
    return s->stop_at > 0 && s->calls == s->stop_at ? 1 : 0;
}

static bool
s_only_order(void *ctx, const char *object, size_t len)
{
    (void)ctx;
    return len == 5 && memcmp(object, "Order", 5) == 0;
}

static char *
s_changes(const char *service, uint64_t after, uint64_t upto, size_t limit, bool only_order,
          int stop_at, int want_rc)
{
    es_err_t err = {0};
    s_collect_t s = {.stop_at = stop_at};
    es_buf_init(&s.out);
    es_buf_puts(&s.out, "");
    es_txn_t *txn = s_begin(false);
    int rc = es_local_changes(txn, service, after, upto, limit, only_order ? s_only_order : NULL,
                              NULL, s_collect_fn, &s, &err);
    es_txn_abort(&txn);
    assert_int_equal(rc, want_rc);
    if (rc)
        assert_string_equal(err.what, "stop here");
    return es_buf_steal(&s.out);
}

static void
test_changes(void **state)
{
    (void)state;
    es_local_opts_t o = s_opts(true, true, true), d = s_opts(true, false, true);
    es_err_t err = {0};
    es_txn_t *txn = s_begin(false);
    uint64_t last = 99;
    assert_int_equal(es_local_last_rsn(txn, "Svc", &last, &err), 0);
    assert_int_equal(last, 0);
    es_txn_abort(&txn);
    s_expect_str(s_changes("Svc", 0, UINT64_MAX, 0, false, 0, 0), "");
    free(s_create(s_cust, "{\"id\":1}", &o));                   //  1
    free(s_create(s_order, "{\"cust\":1,\"line\":\"a\"}", &o)); //  2
    free(s_create(s_cust, "{\"id\":2}", &d));                   //  3 deferred
    free(s_create(s_cust, "{\"id\":3}", &o));                   //  4
    free(s_create(s_order, "{\"cust\":1,\"line\":\"b\"}", &o)); //  5
    free(s_create(s_thing, "{\"k\":1}", &o));                   //  Other 1
    //  A service whose name is a prefix of another must not see its rows.
    s_expect_str(s_changes("Sv", 0, UINT64_MAX, 0, false, 0, 0), "");
    const char *l1 = "1 Customer 1 {\"id\":1} '' {\"id\":1}\n";
    const char *l2 = "2 Order 1 {\"cust\":1,\"line\":\"a\"} '' {\"cust\":1,\"line\":\"a\"}\n";
    const char *l4 = "4 Customer 1 {\"id\":3} '' {\"id\":3}\n";
    const char *l5 = "5 Order 1 {\"cust\":1,\"line\":\"b\"} '' {\"cust\":1,\"line\":\"b\"}\n";
    char want[1024];
    snprintf(want, sizeof want, "%s%s%s%s", l1, l2, l4, l5);
    s_expect_str(s_changes("Svc", 0, UINT64_MAX, 0, false, 0, 0), want);
    snprintf(want, sizeof want, "%s%s", l2, l4);
    s_expect_str(s_changes("Svc", 1, 4, 0, false, 0, 0), want);
    s_expect_str(s_changes("Svc", 1, 3, 0, false, 0, 0), l2);
    snprintf(want, sizeof want, "%s%s", l4, l5);
    s_expect_str(s_changes("Svc", 2, 5, 0, false, 0, 0), want);
    s_expect_str(s_changes("Svc", 2, 5, 1, false, 0, 0), l4); //  limit counts delivered rows
    snprintf(want, sizeof want, "%s%s", l1, l2);
    s_expect_str(s_changes("Svc", 0, 5, 2, false, 0, 0), want);
    snprintf(want, sizeof want, "%s%s", l2, l5);
    s_expect_str(s_changes("Svc", 0, 5, 0, true, 0, 0), want);
    s_expect_str(s_changes("Svc", 0, 5, 1, true, 0, 0), l2);
    s_expect_str(s_changes("Svc", 5, 5, 0, false, 0, 0), "");
    s_expect_str(s_changes("Svc", 5, 4, 0, false, 0, 0), "");
    s_expect_str(s_changes("Svc", UINT64_MAX, UINT64_MAX, 0, false, 0, 0), "");
    snprintf(want, sizeof want, "%s%s", l1, l2);
    s_expect_str(s_changes("Svc", 0, 5, 0, false, 2, 0), want);
    s_expect_str(s_changes("Svc", 0, 5, 0, false, -2, -1), l1);
    s_expect_str(s_changes("Other", 0, UINT64_MAX, 0, false, 0, 0),
                 "1 Thing 1 {\"k\":1} '' {\"k\":1}\n");
    txn = s_begin(false);
    assert_int_equal(es_local_last_rsn(txn, "Svc", &last, &err), 0);
    assert_int_equal(last, 5);
    es_txn_abort(&txn);
}

static void
test_change_codec(void **state)
{
    (void)state;
    const char rec[] = "\x81\xa2id\x07";
    es_local_change_t c = {.rsn = 42,
                           .action = ES_CHG_NOINTER,
                           .object = "Customer",
                           .object_len = 8,
                           .pk = "\x10\x80\0\0\0\0\0\0\x07",
                           .pk_len = 9,
                           .checksum = "abc",
                           .checksum_len = 3,
                           .rec = rec,
                           .rec_len = sizeof rec - 1};
    es_buf_t enc;
    es_buf_init(&enc);
    es_local_change_encode(&c, &enc);
    es_local_change_t d;
    es_err_t err = {0};
    assert_int_equal(es_local_change_decode(&d, 42, enc.data, enc.len, &err), 0);
    assert_int_equal(d.rsn, 42);
    assert_int_equal(d.action, ES_CHG_NOINTER);
    assert_int_equal(d.object_len, 8);
    assert_memory_equal(d.object, "Customer", 8);
    assert_int_equal(d.pk_len, 9);
    assert_memory_equal(d.pk, c.pk, 9);
    assert_int_equal(d.checksum_len, 3);
    assert_memory_equal(d.checksum, "abc", 3);
    assert_int_equal(d.rec_len, c.rec_len);
    assert_memory_equal(d.rec, rec, c.rec_len);
    //  Every truncated prefix fails with a text naming the row.
    for (size_t n = 0; n < enc.len; n++) {
        err = (es_err_t){0};
        assert_int_equal(es_local_change_decode(&d, 42, enc.data, n, &err), -1);
        assert_int_equal(err.code, ES_EPROTO);
        assert_non_null(strstr(err.what, "hist row 42: "));
    }
    es_buf_t more;
    es_buf_init(&more);
    es_buf_append(&more, enc.data, enc.len);
    es_buf_putc(&more, 'x');
    assert_int_equal(es_local_change_decode(&d, 42, more.data, more.len, &err), -1);
    assert_string_equal(err.what, "hist row 42: 1 trailing bytes");
    more.data[0] = 5;
    assert_int_equal(es_local_change_decode(&d, 42, more.data, enc.len, &err), -1);
    assert_string_equal(err.what, "hist row 42: unknown change type 5");
    assert_int_equal(es_local_change_decode(&d, 7, NULL, 0, &err), -1);
    assert_string_equal(err.what, "hist row 7: empty");
    //  Every known code round-trips; empty parts are refused.
    const es_chg_t codes[] = {0, 1, 2, 3, 70, 80, 90, 91, 93};
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
        c.action = codes[i];
        es_local_change_encode(&c, &enc);
        assert_int_equal(es_local_change_decode(&d, 1, enc.data, enc.len, &err), 0);
        assert_int_equal(d.action, codes[i]);
    }
    c.pk_len = 0;
    es_local_change_encode(&c, &enc);
    assert_int_equal(es_local_change_decode(&d, 1, enc.data, enc.len, &err), -1);
    assert_string_equal(err.what, "hist row 1: empty object, key or record");
    //  An empty checksum is fine.
    c.pk_len = 9;
    c.checksum = NULL;
    c.checksum_len = 0;
    es_local_change_encode(&c, &enc);
    assert_int_equal(es_local_change_decode(&d, 1, enc.data, enc.len, &err), 0);
    assert_int_equal(d.checksum_len, 0);
    es_buf_release(&more);
    es_buf_release(&enc);
}

//  Apply one result built from JSON.
static void
s_apply(const es_meta_object_t *obj, const char *rec_json, uint64_t row_id, bool is_delete,
        const char *cs, bool has_temp, int64_t temp, bool remove)
{
    es_err_t err = {0};
    es_buf_t rec;
    es_buf_init(&rec);
    assert_int_equal(es_record_from_json(obj, rec_json, strlen(rec_json), &rec, &err), 0);
    es_local_result_t r = {.object = obj,
                           .row_id = row_id,
                           .is_delete = is_delete,
                           .checksum = cs,
                           .rec = rec.data,
                           .rec_len = rec.len,
                           .has_temp = has_temp,
                           .temp_value = temp};
    es_txn_t *txn = s_begin(true);
    if (es_local_apply_result(txn, "Svc", &r, remove, &err))
        fail_msg("apply: %s", err.what);
    s_commit(&txn);
    es_buf_release(&rec);
}

static void
test_apply_plain(void **state)
{
    (void)state;
    es_local_opts_t o = s_opts(true, true, true);
    s_seed(s_cust, "{\"id\":7,\"name\":\"A\"}", "c1");
    s_seed(s_cust, "{\"id\":8,\"name\":\"B\"}", "c8");
    s_update(s_cust, "7", "{\"name\":\"L\"}", true, &o); //  1
    s_update(s_cust, "7", "{\"age\":2}", true, &o);      //  2
    s_update(s_cust, "8", "{\"age\":3}", true, &o);      //  3
    s_apply(s_cust, "{\"id\":7,\"name\":\"L\",\"age\":2,\"code\":\"srv\"}", 2, false, "c2", false,
            0, false);
    s_expect_str(s_main(s_cust, "7"), "c2|{\"id\":7,\"name\":\"L\",\"age\":2,\"code\":\"srv\"}");
    s_expect_str(s_orig(s_cust, "7"), NULL);
    s_expect_str(s_pend(s_cust, "7"), NULL);
    s_expect_str(s_hist("Svc"), "3 Customer 2 {\"id\":8} 'c8' {\"id\":8,\"age\":3}\n");
    //  The same result again (upload cache replay) changes nothing more.
    s_apply(s_cust, "{\"id\":7,\"name\":\"L\",\"age\":2,\"code\":\"srv\"}", 2, false, "c2", false,
            0, false);
    s_expect_str(s_main(s_cust, "7"), "c2|{\"id\":7,\"name\":\"L\",\"age\":2,\"code\":\"srv\"}");
    //  Server delete.
    s_apply(s_cust, "{\"id\":8}", 3, true, "", false, 0, false);
    s_expect_str(s_main(s_cust, "8"), NULL);
    s_expect_str(s_orig(s_cust, "8"), NULL);
    s_expect_str(s_pend(s_cust, "8"), NULL);
    s_expect_str(s_hist("Svc"), "");
    //  removeAfterUpload turns a success into a delete.
    s_update(s_cust, "7", "{\"age\":5}", true, &o); //  4
    s_apply(s_cust, "{\"id\":7,\"age\":5}", 4, false, "c3", false, 0, true);
    s_expect_str(s_main(s_cust, "7"), NULL);
    s_expect_str(s_orig(s_cust, "7"), NULL);
    s_expect_str(s_hist("Svc"), "");
}

static void
test_apply_newer_edit(void **state)
{
    (void)state;
    es_local_opts_t o = s_opts(true, true, true);
    s_seed(s_cust, "{\"id\":7,\"name\":\"A\"}", "c1");
    s_seed(s_cust, "{\"id\":9,\"name\":\"Z\"}", "c9");
    s_update(s_cust, "7", "{\"name\":\"L1\"}", true, &o); //  1
    s_update(s_cust, "9", "{\"name\":\"Y\"}", true, &o);  //  2
    s_update(s_cust, "7", "{\"name\":\"L2\"}", true, &o); //  3 (after the upload snapshot)
    s_update(s_cust, "7", "{\"age\":4}", true, &o);       //  4
    s_apply(s_cust, "{\"id\":7,\"name\":\"L1\",\"code\":\"s\"}", 1, false, "c2", false, 0, false);
    //  Local values stay; the server version is the new baseline; checksums refreshed.
    s_expect_str(s_main(s_cust, "7"), "c2|{\"id\":7,\"name\":\"L2\",\"age\":4}");
    s_expect_str(s_orig(s_cust, "7"), "0|c2|{\"id\":7,\"name\":\"L1\",\"code\":\"s\"}");
    s_expect_str(s_pend(s_cust, "7"), "2/4");
    s_expect_str(s_hist("Svc"), "2 Customer 2 {\"id\":9} 'c9' {\"id\":9,\"name\":\"Y\"}\n"
                                "3 Customer 2 {\"id\":7} 'c2' {\"id\":7,\"name\":\"L2\"}\n"
                                "4 Customer 2 {\"id\":7} 'c2' {\"id\":7,\"age\":4}\n");
    //  Server delete with a newer local edit: baseline "create" (rollback removes the row).
    s_apply(s_cust, "{\"id\":7}", 3, true, "c3", false, 0, false);
    s_expect_str(s_main(s_cust, "7"), "c3|{\"id\":7,\"name\":\"L2\",\"age\":4}");
    s_expect_str(s_orig(s_cust, "7"), "1|c3|{\"id\":7}");
    s_expect_str(s_pend(s_cust, "7"), "1/4");
    assert_int_equal(s_rollback(s_cust, "7"), 1);
    s_expect_str(s_main(s_cust, "7"), NULL);
    s_expect_str(s_hist("Svc"), "2 Customer 2 {\"id\":9} 'c9' {\"id\":9,\"name\":\"Y\"}\n");
}

//  Answers that cover every pending change of a temporary key take the short way (nothing is
//  rewritten before it is dropped); what they leave must be what the long way leaves.
static void
test_apply_temp_key_covered(void **state)
{
    (void)state;
    es_local_opts_t o = s_opts(true, true, true);
    //  Create and update answered by the update's rowId: both rows go, the record lands.
    s_expect_str(s_create(s_cust, "{\"name\":\"A\"}", &o), "{\"id\":-1}"); //  1
    s_update(s_cust, "-1", "{\"age\":2}", true, &o);                       //  2
    s_apply(s_cust, "{\"id\":700,\"name\":\"A\",\"age\":2}", 2, false, "t1", true, -1, false);
    s_expect_str(s_main(s_cust, "-1"), NULL);
    s_expect_str(s_orig(s_cust, "-1"), NULL);
    s_expect_str(s_pend(s_cust, "-1"), NULL);
    s_expect_str(s_main(s_cust, "700"), "t1|{\"id\":700,\"name\":\"A\",\"age\":2}");
    s_expect_str(s_orig(s_cust, "700"), NULL);
    s_expect_str(s_pend(s_cust, "700"), NULL);
    //  removeAfterUpload: nothing stays under either key.
    s_expect_str(s_create(s_cust, "{\"name\":\"B\"}", &o), "{\"id\":-2}"); //  3
    s_apply(s_cust, "{\"id\":701,\"name\":\"B\"}", 3, false, "t2", true, -2, true);
    s_expect_str(s_main(s_cust, "-2"), NULL);
    s_expect_str(s_main(s_cust, "701"), NULL);
    s_expect_str(s_orig(s_cust, "701"), NULL);
    //  The server key has pending changes of its own: the long way merges the keys, and the
    //  answer covers every row of the merged key up to its rowId.
    s_seed(s_cust, "{\"id\":702,\"name\":\"S\"}", "c702");
    s_update(s_cust, "702", "{\"age\":4}", true, &o);                      //  4
    s_expect_str(s_create(s_cust, "{\"name\":\"C\"}", &o), "{\"id\":-3}"); //  5
    s_apply(s_cust, "{\"id\":702,\"name\":\"C\"}", 5, false, "t3", true, -3, false);
    s_expect_str(s_main(s_cust, "-3"), NULL);
    s_expect_str(s_pend(s_cust, "702"), NULL);
    s_expect_str(s_hist("Svc"), "");
    s_expect_str(s_orig(s_cust, "702"), NULL);
    s_expect_str(s_main(s_cust, "702"), "t3|{\"id\":702,\"name\":\"C\"}");
    //  A newer edit of the created row: the long way keeps it under the server key.
    s_expect_str(s_create(s_cust, "{\"name\":\"D\"}", &o), "{\"id\":-4}"); //  6
    s_update(s_cust, "-4", "{\"age\":6}", true, &o);                       //  7
    s_apply(s_cust, "{\"id\":703,\"name\":\"D\"}", 6, false, "t4", true, -4, false);
    s_expect_str(s_pend(s_cust, "703"), "1/7");
    s_expect_str(s_main(s_cust, "703"), "t4|{\"id\":703,\"name\":\"D\",\"age\":6}");
}

static void
test_apply_temp_key(void **state)
{
    (void)state;
    es_local_opts_t o = s_opts(true, true, true);
    s_expect_str(s_create(s_cust, "{\"name\":\"T\"}", &o), "{\"id\":-1}"); //  1
    s_expect_str(s_create(s_cust, "{\"name\":\"U\"}", &o), "{\"id\":-2}"); //  2
    s_update(s_cust, "-1", "{\"age\":5}", true, &o);                       //  3
    s_update(s_cust, "-1", "{\"name\":\"T2\"}", true, &o);                 //  4
    //  Result for the create only: rows 3 and 4 stay, rewritten to the real key.
    s_apply(s_cust, "{\"id\":500,\"name\":\"T\"}", 1, false, "s1", true, -1, false);
    s_expect_str(s_main(s_cust, "-1"), NULL);
    s_expect_str(s_orig(s_cust, "-1"), NULL);
    s_expect_str(s_pend(s_cust, "-1"), NULL);
    s_expect_str(s_main(s_cust, "500"), "s1|{\"id\":500,\"name\":\"T2\",\"age\":5}");
    s_expect_str(s_orig(s_cust, "500"), "0|s1|{\"id\":500,\"name\":\"T\"}");
    s_expect_str(s_pend(s_cust, "500"), "2/4");
    s_expect_str(s_hist("Svc"), "2 Customer 1 {\"id\":-2} '' {\"id\":-2,\"name\":\"U\"}\n"
                                "3 Customer 2 {\"id\":500} 's1' {\"id\":500,\"age\":5}\n"
                                "4 Customer 2 {\"id\":500} 's1' {\"id\":500,\"name\":\"T2\"}\n");
    s_expect_str(s_pending(s_cust), "{\"pendingSyncRecords\":[{\"id\":-2},{\"id\":500}]}");
    //  Later results carry the real key.
    s_apply(s_cust, "{\"id\":500,\"name\":\"T2\",\"age\":5}", 4, false, "s2", false, 0, false);
    s_expect_str(s_main(s_cust, "500"), "s2|{\"id\":500,\"name\":\"T2\",\"age\":5}");
    s_expect_str(s_orig(s_cust, "500"), NULL);
    s_expect_str(s_pend(s_cust, "500"), NULL);
    //  No newer edit: the server record lands under the real key directly.
    s_apply(s_cust, "{\"id\":501,\"name\":\"U\",\"code\":\"k\"}", 2, false, "s3", true, -2, false);
    s_expect_str(s_main(s_cust, "-2"), NULL);
    s_expect_str(s_main(s_cust, "501"), "s3|{\"id\":501,\"name\":\"U\",\"code\":\"k\"}");
    s_expect_str(s_orig(s_cust, "501"), NULL);
    s_expect_str(s_pend(s_cust, "501"), NULL);
    s_expect_str(s_hist("Svc"), "");
    s_expect_str(s_pending(s_cust), "{\"pendingSyncRecords\":[]}");
    //  A temporary key on an object without auto-generated key column is a protocol error.
    es_err_t err = {0};
    es_buf_t rec;
    es_buf_init(&rec);
    const char *j = "{\"cust\":1,\"line\":\"a\"}";
    assert_int_equal(es_record_from_json(s_order, j, strlen(j), &rec, &err), 0);
    es_local_result_t r = {.object = s_order,
                           .row_id = 1,
                           .checksum = "",
                           .rec = rec.data,
                           .rec_len = rec.len,
                           .has_temp = true,
                           .temp_value = -1};
    //  rowId 1 is no longer pending (applied above): nothing happens at all.
    es_txn_t *txn = s_begin(true);
    assert_int_equal(es_local_apply_result(txn, "Svc", &r, false, &err), 0);
    es_txn_abort(&txn);
    //  Answers must match what was sent: the pending change at their rowId, same object and
    //  key; a temporary key only where one was sent.
    s_seed(s_cust, "{\"id\":7,\"name\":\"A\"}", "c7");
    s_seed(s_cust, "{\"id\":8,\"name\":\"B\"}", "c8");
    es_local_opts_t tracked = s_opts(true, true, true);
    s_update(s_cust, "7", "{\"name\":\"A2\"}", true, &tracked);
    s_update(s_cust, "8", "{\"name\":\"B2\"}", true, &tracked);
    char *before = s_dump();
    uint64_t rsn7 = 0;
    txn = s_begin(false);
    assert_int_equal(es_local_last_rsn(txn, "Svc", &rsn7, &err), 0);
    es_txn_abort(&txn);
    rsn7 -= 1; //  the update of 7 came first
    const char *other = "{\"id\":8,\"name\":\"X\"}";
    es_buf_reset(&rec);
    assert_int_equal(es_record_from_json(s_cust, other, strlen(other), &rec, &err), 0);
    es_local_result_t bad = {
        .object = s_cust, .row_id = rsn7, .checksum = "", .rec = rec.data, .rec_len = rec.len};
    txn = s_begin(true);
    assert_int_equal(es_local_apply_result(txn, "Svc", &bad, false, &err), -1);
    es_txn_abort(&txn);
    assert_int_equal(err.code, ES_EPROTO);
    assert_string_equal(err.what, "Customer: upload result for rowId 5 has another key than sent");
    bad.has_temp = true; //  a "temporary" 8 that names an existing row
    bad.temp_value = 8;
    txn = s_begin(true);
    assert_int_equal(es_local_apply_result(txn, "Svc", &bad, false, &err), -1);
    es_txn_abort(&txn);
    assert_string_equal(err.what,
                        "Customer: upload result for rowId 5 names a temporary key that was not "
                        "sent");
    es_buf_t orec;
    es_buf_init(&orec);
    assert_int_equal(es_record_from_json(s_order, j, strlen(j), &orec, &err), 0);
    bad.object = s_order;
    bad.has_temp = false;
    bad.rec = orec.data;
    bad.rec_len = orec.len;
    txn = s_begin(true);
    assert_int_equal(es_local_apply_result(txn, "Svc", &bad, false, &err), -1);
    es_txn_abort(&txn);
    assert_string_equal(err.what, "Order: upload result for rowId 5, which was sent for Customer");
    char *after = s_dump();
    assert_string_equal(before, after); //  nothing changed
    free(before);
    free(after);
    //  A temporary key on an object without auto-generated key column is a protocol error.
    r.row_id = rsn7;
    r.rec = orec.data;
    r.rec_len = orec.len;
    txn = s_begin(true);
    assert_int_equal(es_local_apply_result(txn, "Svc", &r, false, &err), -1);
    es_txn_abort(&txn);
    assert_int_equal(err.code, ES_EPROTO);
    //  A result record without its key.
    r.object = s_cust;
    r.has_temp = false;
    es_record_builder_t *b = es_record_builder_new(s_cust);
    es_value_t v = {.type = ES_V_STR, .u.s = {"x", 1}};
    assert_int_equal(es_record_builder_set(b, "name", 4, &v, &err), 0);
    assert_int_equal(es_record_builder_end(b, &rec, &err), -1); //  builder refuses too
    es_record_builder_destroy(&b);
    es_buf_reset(&rec);
    es_buf_append(&rec, "\x81\xa4name\xa1x", 8);
    r.rec = rec.data;
    r.rec_len = rec.len;
    txn = s_begin(true);
    assert_int_equal(es_local_apply_result(txn, "Svc", &r, false, &err), -1);
    es_txn_abort(&txn);
    assert_string_equal(err.what, "upload result: Customer: key column 'id' missing");
    es_buf_release(&rec);
    es_buf_release(&orec);
}

//  A change sent in a request whose answer never arrived (its upload cache row is there) may
//  have been applied: rollback and clear of it are refused until a sync settles the request;
//  changes outside it roll back and the row stays for the replay.
static void
test_rollback_cached(void **state)
{
    (void)state;
    s_local_scene(); //  rowIds: 1, 2 key 1; 3 key 2; 4 key -1; 5 the order
    s_put_upcache("Customer", "req-lost", (uint64_t[]){4, 1, 2}, 3);
    s_put_upcache("Svc", "req-svc", (uint64_t[]){5}, 1);
    const char *busy1 = "Customer: %s: key {\"id\":1} has a change (rowId 1) in upload request "
                        "req-lost, whose answer never arrived: the server may have applied it. "
                        "Sync first; the replay of that request settles it";
    char want[512];
    snprintf(want, sizeof want, busy1, "rollback");
    s_expect_error(OP_ROLLBACK, s_cust, "1", NULL, ES_EBUSY, want);
    s_expect_error(OP_ROLLBACK, s_cust, NULL, NULL, ES_EBUSY, want);
    s_expect_error(OP_ROLLBACK, NULL, NULL, NULL, ES_EBUSY, want);
    snprintf(want, sizeof want, busy1, "clear");
    s_expect_error(OP_CLEAR, s_cust, "1", NULL, ES_EBUSY, want);
    s_expect_error(OP_CLEAR, s_cust, NULL, NULL, ES_EBUSY, want);
    s_expect_error(OP_CLEAR, NULL, NULL, NULL, ES_EBUSY, want);
    s_expect_error(OP_ROLLBACK, s_cust, "-1", NULL, ES_EBUSY,
                   "Customer: rollback: key {\"id\":-1} has a change (rowId 4) in upload request "
                   "req-lost, whose answer never arrived: the server may have applied it. Sync "
                   "first; the replay of that request settles it");
    s_expect_error(OP_ROLLBACK, s_order, NULL, NULL, ES_EBUSY,
                   "Order: rollback: key {\"cust\":1,\"line\":\"a\"} has a change (rowId 5) in "
                   "upload request req-svc, whose answer never arrived: the server may have "
                   "applied it. Sync first; the replay of that request settles it");
    //  Keys whose changes are not in a cached request: done, and the rows stay.
    assert_int_equal(s_rollback(s_cust, "2"), 1);
    s_expect_str(s_main(s_cust, "2"), "c2|{\"id\":2,\"name\":\"Two\"}");
    assert_int_equal(s_rollback(s_cust, "3"), 1); //  untracked: no change anywhere
    assert_int_equal(s_clear(s_cust, "3"), 1);
    assert_true(s_has_raw("upcache", "Customer"));
    assert_true(s_has_raw("upcache", "Svc"));
    //  The replay's answer settles rowIds 1 and 2 (and the actor drops the row with it): the
    //  rest of key 1 is gone from hist, and rollback works again where changes remain.
    s_apply(s_cust, "{\"id\":1,\"name\":\"Uno\",\"age\":9}", 2, false, "s1", false, 0, false);
    s_expect_str(s_main(s_cust, "1"), "s1|{\"id\":1,\"name\":\"Uno\",\"age\":9}");
    es_err_t err = {0};
    es_txn_t *txn = s_begin(true);
    assert_int_equal(es_txn_del(txn, "upcache", "Customer", 8, &err), 1);
    s_commit(&txn);
    assert_int_equal(s_rollback(s_cust, NULL), 1); //  the temporary create -1
    s_expect_str(s_main(s_cust, "-1"), NULL);
    s_expect_error(OP_ROLLBACK, NULL, NULL, NULL, ES_EBUSY,
                   "Order: rollback: key {\"cust\":1,\"line\":\"a\"} has a change (rowId 5) in "
                   "upload request req-svc, whose answer never arrived: the server may have "
                   "applied it. Sync first; the replay of that request settles it");
    //  A cache row that cannot be read stops rollback too (it cannot tell what is safe).
    s_put_raw("upcache", "Order", "junk");
    txn = s_begin(true);
    assert_int_equal(es_local_rollback(txn, s_meta, s_cust, NULL, 0, &err), -1);
    es_txn_abort(&txn);
    assert_string_equal(err.what, "upload cache row 'Order': upcache row of 4 bytes is malformed");
    //  Rows of another service's objects are not looked at.
    txn = s_begin(true);
    assert_int_equal(es_txn_del(txn, "upcache", "Order", 5, &err), 1);
    s_commit(&txn);
    s_put_raw("upcache", "Thing", "junk");
    assert_int_equal(s_rollback(s_cust, NULL), 0);
}

//  An edit made with trackChanges:false after a change was sent (or not carried by it) wins
//  locally over that change's upload answer, which still settles the change and the key.
static void
test_apply_untracked_edit(void **state)
{
    (void)state;
    es_local_opts_t o = s_opts(true, true, true), un = s_opts(false, true, true);
    s_seed(s_cust, "{\"id\":7,\"name\":\"A\",\"age\":1}", "c1");
    s_update(s_cust, "7", "{\"name\":\"L\"}", true, &o); //  1, in flight
    s_update(s_cust, "7", "{\"age\":9}", true, &un);     //  meanwhile, untracked
    s_expect_str(s_orig(s_cust, "7"), "2u|c1|{\"id\":7,\"name\":\"A\",\"age\":1}");
    s_apply(s_cust, "{\"id\":7,\"name\":\"L\",\"age\":1,\"code\":\"s\"}", 1, false, "c2", false, 0,
            false);
    s_expect_str(s_main(s_cust, "7"), "c2|{\"id\":7,\"name\":\"L\",\"age\":9}");
    s_expect_str(s_orig(s_cust, "7"), "0u|c2|{\"id\":7,\"name\":\"L\",\"age\":1,\"code\":\"s\"}");
    s_expect_str(s_pend(s_cust, "7"), NULL);
    s_expect_str(s_hist("Svc"), "");
    //  A download keeps protecting the row, and keeps the mark.
    es_err_t err = {0};
    es_buf_t pk, rec, val;
    es_buf_init(&pk);
    es_buf_init(&rec);
    es_buf_init(&val);
    s_key(s_cust, "7", &pk);
    const char *srv = "{\"id\":7,\"name\":\"D\",\"age\":1}";
    assert_int_equal(es_record_from_json(s_cust, srv, strlen(srv), &rec, &err), 0);
    es_store_rec_pack(&val, "c3", 2, rec.data, rec.len);
    es_txn_t *txn = s_begin(true);
    assert_int_equal(
        es_local_protect(txn, "Customer", pk.data, pk.len, false, val.data, val.len, &err), 1);
    s_commit(&txn);
    s_expect_str(s_main(s_cust, "7"), "c3|{\"id\":7,\"name\":\"L\",\"age\":9}");
    s_expect_str(s_orig(s_cust, "7"), "0u|c3|{\"id\":7,\"name\":\"D\",\"age\":1}");
    //  A tracked partial update carries only its columns: the mark stays, main keeps age 9.
    s_update(s_cust, "7", "{\"name\":\"P\"}", true, &o); //  2
    s_expect_str(s_orig(s_cust, "7"), "0u|c3|{\"id\":7,\"name\":\"D\",\"age\":1}");
    s_apply(s_cust, "{\"id\":7,\"name\":\"P\",\"age\":1}", 2, false, "c4", false, 0, false);
    s_expect_str(s_main(s_cust, "7"), "c4|{\"id\":7,\"name\":\"P\",\"age\":9}");
    s_expect_str(s_orig(s_cust, "7"), "0u|c4|{\"id\":7,\"name\":\"P\",\"age\":1}");
    //  A tracked full update carries the whole row: the mark goes, its answer lands in main.
    s_update(s_cust, "7", "{\"name\":\"F\",\"age\":9}", false, &o); //  3
    s_expect_str(s_orig(s_cust, "7"), "0|c4|{\"id\":7,\"name\":\"P\",\"age\":1}");
    s_apply(s_cust, "{\"id\":7,\"name\":\"F\",\"age\":9,\"code\":\"s\"}", 3, false, "c5", false, 0,
            false);
    s_expect_str(s_main(s_cust, "7"), "c5|{\"id\":7,\"name\":\"F\",\"age\":9,\"code\":\"s\"}");
    s_expect_str(s_orig(s_cust, "7"), NULL);
    //  Temporary key: the real key is set everywhere, the untracked edit stays.
    s_expect_str(s_create(s_cust, "{\"name\":\"T\"}", &o), "{\"id\":-1}"); //  4
    s_update(s_cust, "-1", "{\"age\":3}", true, &un);
    s_apply(s_cust, "{\"id\":600,\"name\":\"T\"}", 4, false, "s6", true, -1, false);
    s_expect_str(s_main(s_cust, "-1"), NULL);
    s_expect_str(s_orig(s_cust, "-1"), NULL);
    s_expect_str(s_main(s_cust, "600"), "s6|{\"id\":600,\"name\":\"T\",\"age\":3}");
    s_expect_str(s_orig(s_cust, "600"), "0u|s6|{\"id\":600,\"name\":\"T\"}");
    s_expect_str(s_pend(s_cust, "600"), NULL);
    //  A delete in flight, then an untracked create of the key: the row stays; its baseline
    //  says the server has none, so a rollback removes it.
    s_seed(s_cust, "{\"id\":8,\"name\":\"B\"}", "c8");
    s_delete(s_cust, "8", &o); //  5
    free(s_create(s_cust, "{\"id\":8,\"name\":\"again\"}", &un));
    s_apply(s_cust, "{\"id\":8}", 5, true, "", false, 0, false);
    s_expect_str(s_main(s_cust, "8"), "|{\"id\":8,\"name\":\"again\"}");
    s_expect_str(s_orig(s_cust, "8"), "1u||{\"id\":8}");
    s_expect_str(s_hist("Svc"), "");
    assert_int_equal(s_rollback(s_cust, "8"), 1);
    s_expect_str(s_main(s_cust, "8"), NULL);
    //  Without an untracked edit nothing changes: the answer lands in main (test_apply_plain).
    es_buf_release(&val);
    es_buf_release(&rec);
    es_buf_release(&pk);
}

//  es_local_check_result: 1 for the change sent, 0 when it is gone, ES_EPROTO for another key.
static void
test_check_result(void **state)
{
    (void)state;
    es_local_opts_t o = s_opts(true, true, true);
    s_seed(s_cust, "{\"id\":7,\"name\":\"A\"}", "c7");
    s_update(s_cust, "7", "{\"name\":\"B\"}", true, &o); //  1
    es_err_t err = {0};
    es_buf_t rec;
    es_buf_init(&rec);
    const char *j = "{\"id\":7,\"name\":\"B\"}";
    assert_int_equal(es_record_from_json(s_cust, j, strlen(j), &rec, &err), 0);
    es_local_result_t r = {
        .object = s_cust, .row_id = 1, .checksum = "", .rec = rec.data, .rec_len = rec.len};
    es_txn_t *txn = s_begin(false);
    assert_int_equal(es_local_check_result(txn, "Svc", &r, &err), 1);
    r.row_id = 2;
    assert_int_equal(es_local_check_result(txn, "Svc", &r, &err), 0);
    r.row_id = 1;
    r.has_temp = true;
    r.temp_value = -5;
    assert_int_equal(es_local_check_result(txn, "Svc", &r, &err), -1);
    assert_int_equal(err.code, ES_EPROTO);
    assert_string_equal(err.what,
                        "Customer: upload result for rowId 1 names a temporary key that was not "
                        "sent");
    es_txn_abort(&txn);
    s_expect_str(s_hist("Svc"), "1 Customer 2 {\"id\":7} 'c7' {\"id\":7,\"name\":\"B\"}\n");
    es_buf_release(&rec);
}

//  es_upcache: rows round-trip, truncated rows are refused, rowIds come out sorted.
static void
test_upcache_codec(void **state)
{
    (void)state;
    const char body[] = "{\"records\":[{\"_metadata\":{\"rowId\":9}},{\"a\":1,\"_metadata\":"
                        "{\"rowId\":3}}]}";
    es_upcache_row_t row = {.kind = ES_UPCACHE_SERVICE,
                            .request_id = "rid",
                            .request_id_len = 3,
                            .attempts = 7,
                            .last_attempt = 0x0102030405060708ull,
                            .url = "u://x",
                            .url_len = 5,
                            .body = body,
                            .body_len = sizeof body - 1};
    es_buf_t enc;
    es_buf_init(&enc);
    es_upcache_encode(&row, &enc);
    es_upcache_row_t d;
    es_err_t err = {0};
    assert_int_equal(es_upcache_decode(&d, enc.data, enc.len, &err), 0);
    assert_int_equal(d.kind, ES_UPCACHE_SERVICE);
    assert_int_equal(d.request_id_len, 3);
    assert_memory_equal(d.request_id, "rid", 3);
    assert_int_equal(d.attempts, 7);
    assert_true(d.last_attempt == 0x0102030405060708ull);
    assert_int_equal(d.url_len, 5);
    assert_memory_equal(d.url, "u://x", 5);
    assert_int_equal(d.body_len, sizeof body - 1);
    assert_memory_equal(d.body, body, sizeof body - 1);
    //  Every prefix that cuts into the header or url is refused.
    for (size_t n = 0; n < 2 + 3 + 16 + 5; n++)
        assert_int_equal(es_upcache_decode(&d, enc.data, n, &err), -1);
    assert_int_equal(err.code, ES_ESTORE);
    uint64_t *ids;
    size_t n;
    assert_int_equal(es_upcache_row_ids(body, sizeof body - 1, &ids, &n, &err), 0);
    assert_int_equal(n, 2);
    assert_true(ids[0] == 3 && ids[1] == 9);
    assert_true(es_upcache_has_id(ids, n, 9) && !es_upcache_has_id(ids, n, 4));
    free(ids);
    static const struct {
        const char *body, *what;
    } bad[] = {
        {"{\"records\":", "upload request body: "},
        {"[]", "upload request body: records: expected an array"},
        {"{\"records\":{}}", "upload request body: records: expected an array"},
        {"{\"records\":[{}]}", "upload request body: records[0]._metadata.rowId: expected an "
                               "integer >= 0"},
        {"{\"records\":[{\"_metadata\":{\"rowId\":\"1\"}}]}",
         "upload request body: records[0]._metadata.rowId: expected an integer >= 0"},
        {"{\"records\":[{\"_metadata\":{\"rowId\":-1}}]}",
         "upload request body: records[0]._metadata.rowId: expected an integer >= 0"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err = (es_err_t){0};
        assert_int_equal(es_upcache_row_ids(bad[i].body, strlen(bad[i].body), &ids, &n, &err), -1);
        assert_int_equal(err.code, ES_EPROTO);
        assert_non_null(strstr(err.what, bad[i].what));
        assert_null(ids);
    }
    es_buf_release(&enc);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_create, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_create_options, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_update_partial_delete, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_update_delete_options, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_collapse, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_mark_for_upload, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_errors, s_setup, s_teardown),
        cmocka_unit_test(test_opts_parse),
        cmocka_unit_test_setup_teardown(test_pending, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_rollback_key, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_rollback_object_service, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_clear, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_changes, s_setup, s_teardown),
        cmocka_unit_test(test_change_codec),
        cmocka_unit_test_setup_teardown(test_apply_plain, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_apply_newer_edit, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_apply_temp_key, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_apply_temp_key_covered, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_rollback_cached, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_apply_untracked_edit, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_check_result, s_setup, s_teardown),
        cmocka_unit_test(test_upcache_codec),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
