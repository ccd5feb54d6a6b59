//  es_local - local CRUD with change tracking, the pending-change log (hist) in RSN order, the
//  first-edit baseline (orig), temporary keys, rollback, clear and applying upload results.
//
//  Every public function first reads and checks everything it needs and only then writes, so a
//  bad input returns -1 before anything changed. A store failure half way through a write still
//  returns -1 with the txn partly written: callers abort the transaction on -1 (es_store_write
//  does that).
//
//  hist rows of one key are found by scanning the service's hist in RSN order (the log is keyed
//  by RSN so that upload reads it in replay order). pend:<object> keeps, per key, the row count
//  and the RSN of the key's latest row, so the frequent questions (has this key pending rows?
//  is its latest row deferred / collapsible?) need no scan.
#include "store/es_local.h"
#include "common/es_mem.h"
#include "protocol/es_json.h"
#include "protocol/es_key.h"
#include "protocol/es_record.h"
#include "store/es_upcache.h"
#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_tree.h>

#define S_EMPTY_MAP "\x80" //  MessagePack map with no entries: the baseline of a create
#define S_PEND_LEN 12      //  u32 count + u64 latest RSN
//  High bit of an orig row's change-type byte: main holds an edit made with trackChanges:false
//  that no pending change carries, so an upload answer must not overwrite main (the later local
//  edit wins locally) nor drop the baseline that marks the row as locally changed (SPEC 3.6.5).
//  Set by an untracked edit; cleared by a tracked edit that carries the whole record.
#define S_ORIG_UNTRACKED 0x80

//  ---------------------------------------------------------------------------------------------
//  Small encodings

static void
s_put_le(es_buf_t *out, uint64_t v, size_t n)
{
    uint8_t b[8];
    for (size_t i = 0; i < n; i++, v >>= 8)
        b[i] = (uint8_t)v;
    es_buf_append(out, b, n);
}

static uint64_t
s_get_le(const uint8_t *p, size_t n)
{
    uint64_t v = 0;
    for (size_t i = n; i > 0; i--)
        v = (v << 8) | p[i - 1];
    return v;
}

static void
s_put_be64(es_buf_t *out, uint64_t v)
{
    uint8_t b[8];
    for (int i = 7; i >= 0; i--, v >>= 8)
        b[i] = (uint8_t)v;
    es_buf_append(out, b, 8);
}

static uint64_t
s_get_be64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | p[i];
    return v;
}

static bool
s_is_deferred(es_chg_t c)
{
    return c == ES_CHG_DEFERRED_NOINTER || c == ES_CHG_DEFERRED_UPDATE ||
           c == ES_CHG_DEFERRED_CREATE || c == ES_CHG_DEFERRED_DELETE;
}

static bool
s_known_chg(unsigned c)
{
    return c <= ES_CHG_DELETE || c == ES_CHG_DEFERRED_NOINTER || c == ES_CHG_NOINTER ||
           c == ES_CHG_DEFERRED_UPDATE || c == ES_CHG_DEFERRED_CREATE ||
           c == ES_CHG_DEFERRED_DELETE;
}

static bool
s_is_create(es_chg_t c)
{
    return c == ES_CHG_CREATE || c == ES_CHG_DEFERRED_CREATE;
}

//  "<service>\0" + RSN big-endian: byte order is RSN order within a service.
static void
s_hist_key(es_buf_t *out, const char *service, uint64_t rsn)
{
    es_buf_reset(out);
    es_buf_append(out, service, strlen(service) + 1);
    s_put_be64(out, rsn);
}

//  Value: [u8 action][u16 object len][object][u32 pk len][pk][u16 checksum len][checksum]
//         [u32 record len][record], all little-endian, nothing after.
void
es_local_change_encode(const es_local_change_t *c, es_buf_t *out)
{
    assert(c && out);
    assert(c->object_len <= UINT16_MAX && c->checksum_len <= UINT16_MAX);
    assert(c->pk_len <= UINT32_MAX && c->rec_len <= UINT32_MAX);
    es_buf_reset(out);
    s_put_le(out, (uint64_t)c->action, 1);
    s_put_le(out, c->object_len, 2);
    es_buf_append(out, c->object, c->object_len);
    s_put_le(out, c->pk_len, 4);
    es_buf_append(out, c->pk, c->pk_len);
    s_put_le(out, c->checksum_len, 2);
    es_buf_append(out, c->checksum ? c->checksum : "", c->checksum_len);
    s_put_le(out, c->rec_len, 4);
    es_buf_append(out, c->rec, c->rec_len);
}

//  Takes n bytes of length at *p, then that many bytes; false if val runs out.
static bool
s_take_part(const uint8_t **p, const uint8_t *end, size_t n, const void **part, size_t *len)
{
    if ((size_t)(end - *p) < n)
        return false;
    uint64_t l = s_get_le(*p, n);
    *p += n;
    if ((uint64_t)(end - *p) < l)
        return false;
    *part = *p;
    *len = (size_t)l;
    *p += l;
    return true;
}

int
es_local_change_decode(es_local_change_t *c, uint64_t rsn, const void *val, size_t len,
                       es_err_t *err)
{
    assert(c);
    const uint8_t *p = val, *end = p + len;
    const void *object, *pk, *checksum, *rec;
    size_t olen, pklen, cslen, rlen;
    if (!val || len < 1)
        return es_err_set(err, ES_EPROTO, "hist row %" PRIu64 ": empty", rsn);
    unsigned action = *p++;
    if (!s_known_chg(action))
        return es_err_set(err, ES_EPROTO, "hist row %" PRIu64 ": unknown change type %u", rsn,
                          action);
    if (!s_take_part(&p, end, 2, &object, &olen) || !s_take_part(&p, end, 4, &pk, &pklen) ||
        !s_take_part(&p, end, 2, &checksum, &cslen) || !s_take_part(&p, end, 4, &rec, &rlen))
        return es_err_set(err, ES_EPROTO, "hist row %" PRIu64 ": truncated (%zu bytes)", rsn, len);
    if (p != end)
        return es_err_set(err, ES_EPROTO, "hist row %" PRIu64 ": %zu trailing bytes", rsn,
                          (size_t)(end - p));
    if (olen == 0 || pklen == 0 || rlen == 0)
        return es_err_set(err, ES_EPROTO, "hist row %" PRIu64 ": empty object, key or record", rsn);
    *c = (es_local_change_t){.rsn = rsn,
                             .action = (es_chg_t)action,
                             .object = object,
                             .object_len = olen,
                             .pk = pk,
                             .pk_len = pklen,
                             .checksum = checksum,
                             .checksum_len = cslen,
                             .rec = rec,
                             .rec_len = rlen};
    return 0;
}

//  ---------------------------------------------------------------------------------------------
//  Options

void
es_local_opts_init(es_local_opts_t *opts)
{
    assert(opts);
    opts->track_changes = true;
    opts->mark_for_upload = true;
    opts->track_intermediate = true;
}

int
es_local_opts_parse(es_local_opts_t *opts, const char *json, size_t len, es_err_t *err)
{
    assert(opts);
    es_local_opts_init(opts);
    if (!json || len == 0)
        return 0;
    size_t at;
    if (es_json_too_deep(json, len, ES_JSON_DEPTH_MAX, &at))
        return es_err_set(err, ES_EINVAL, "options: nested deeper than %d levels at byte %zu",
                          ES_JSON_DEPTH_MAX, at);
    //  yajl_tree wants a NUL-terminated text.
    char *text = es_strndup(json, len);
    char errbuf[256] = "";
    yajl_val root = yajl_tree_parse(text, errbuf, sizeof errbuf);
    free(text);
    if (!root) {
        errbuf[strcspn(errbuf, "\r\n")] = '\0';
        return es_err_set(err, ES_EINVAL, "options: invalid JSON: %s", errbuf);
    }
    int rc = 0;
    if (YAJL_IS_NULL(root))
        goto done;
    if (!YAJL_IS_OBJECT(root)) {
        rc = es_err_set(err, ES_EINVAL, "options: expected a JSON object");
        goto done;
    }
    for (size_t i = 0; i < root->u.object.len; i++) {
        const char *k = root->u.object.keys[i];
        yajl_val v = root->u.object.values[i];
        bool *dst = NULL;
        if (strcmp(k, "trackChanges") == 0)
            dst = &opts->track_changes;
        else if (strcmp(k, "markForUpload") == 0)
            dst = &opts->mark_for_upload;
        else if (strcmp(k, "trackIntermediateUpdates") == 0 ||
                 strcmp(k, "trackIntermediateChanges") == 0)
            dst = &opts->track_intermediate;
        if (!dst)
            continue; //  other CRUD options (primaryKeys, ...) are not ours
        if (!YAJL_IS_TRUE(v) && !YAJL_IS_FALSE(v)) {
            rc = es_err_set(err, ES_EINVAL, "options.%s: expected a boolean", k);
            goto done;
        }
        *dst = YAJL_IS_TRUE(v);
    }
done:
    yajl_tree_free(root);
    return rc;
}

//  ---------------------------------------------------------------------------------------------
//  Table access helpers

//  The object's table names (es_store_table's "<prefix>:<object>"), in one allocation: this
//  runs for every record an answer applies.
typedef struct {
    char *names; //  "main:<object>\0orig:<object>\0pend:<object>\0"
    struct {
        const char *data;
    } main, orig, pend;
} s_tables_t;

static void
s_tables_init(s_tables_t *t, const char *object)
{
    size_t n = strlen(object), one = 5 + n + 1;
    t->names = es_malloc(3 * one);
    static const char prefix[3][6] = {"main:", "orig:", "pend:"};
    for (size_t i = 0; i < 3; i++) {
        memcpy(t->names + i * one, prefix[i], 5);
        memcpy(t->names + i * one + 5, object, n + 1);
    }
    t->main.data = t->names;
    t->orig.data = t->names + one;
    t->pend.data = t->names + 2 * one;
}

static void
s_tables_release(s_tables_t *t)
{
    free(t->names);
    t->names = NULL;
}

//  meta counter "<prefix>/<service>" as 8 little-endian bytes. 1 found, 0 absent, -1 error.
static int
s_counter_get(es_txn_t *txn, const char *prefix, const char *service, uint64_t *v, es_err_t *err)
{
    char *key = es_sprintf("%s/%s", prefix, service);
    const void *val;
    size_t vlen;
    int rc = es_txn_get(txn, "meta", key, strlen(key), &val, &vlen, err);
    if (rc == 1 && vlen != 8)
        rc = es_err_set(err, ES_ESTORE, "store: meta '%s': %zu bytes, expected 8", key, vlen);
    if (rc == 1)
        *v = s_get_le(val, 8);
    free(key);
    return rc;
}

static int
s_counter_put(es_txn_t *txn, const char *prefix, const char *service, uint64_t v, es_err_t *err)
{
    char *key = es_sprintf("%s/%s", prefix, service);
    es_buf_t val;
    es_buf_init(&val);
    s_put_le(&val, v, 8);
    int rc = es_txn_put(txn, "meta", key, strlen(key), val.data, val.len, err);
    es_buf_release(&val);
    free(key);
    return rc;
}

//  Next RSN to issue (1 if the service has none yet).
static int
s_next_rsn(es_txn_t *txn, const char *service, uint64_t *rsn, es_err_t *err)
{
    int rc = s_counter_get(txn, "rsn", service, rsn, err);
    if (rc < 0)
        return -1;
    if (rc == 0)
        *rsn = 1;
    return 0;
}

//  pend row of pk: count and latest RSN (0, 0 if absent). -1 on error.
static int
s_pend_get(es_txn_t *txn, const s_tables_t *t, const void *pk, size_t pklen, uint32_t *count,
           uint64_t *last, es_err_t *err)
{
    const void *val;
    size_t vlen;
    *count = 0;
    *last = 0;
    int rc = es_txn_get(txn, t->pend.data, pk, pklen, &val, &vlen, err);
    if (rc < 0)
        return -1;
    if (rc == 0)
        return 0;
    if (vlen != S_PEND_LEN)
        return es_err_set(err, ES_ESTORE, "store: %s row: %zu bytes, expected %d", t->pend.data,
                          vlen, S_PEND_LEN);
    *count = (uint32_t)s_get_le(val, 4);
    *last = s_get_le((const uint8_t *)val + 4, 8);
    return 0;
}

//  Count 0 deletes the row.
static int
s_pend_put(es_txn_t *txn, const s_tables_t *t, const void *pk, size_t pklen, uint32_t count,
           uint64_t last, es_err_t *err)
{
    if (count == 0)
        return es_txn_del(txn, t->pend.data, pk, pklen, err) < 0 ? -1 : 0;
    es_buf_t val;
    es_buf_init(&val);
    s_put_le(&val, count, 4);
    s_put_le(&val, last, 8);
    int rc = es_txn_put(txn, t->pend.data, pk, pklen, val.data, val.len, err);
    es_buf_release(&val);
    return rc;
}

//  hist row of service at rsn, decoded into c (pointers valid until the txn ends). 1/0/-1.
static int
s_hist_get(es_txn_t *txn, const char *service, uint64_t rsn, es_local_change_t *c, es_err_t *err)
{
    es_buf_t key;
    es_buf_init(&key);
    s_hist_key(&key, service, rsn);
    const void *val;
    size_t vlen;
    int rc = es_txn_get(txn, "hist", key.data, key.len, &val, &vlen, err);
    es_buf_release(&key);
    if (rc == 1 && es_local_change_decode(c, rsn, val, vlen, err))
        return -1;
    return rc;
}

static int
s_hist_put(es_txn_t *txn, const char *service, const es_local_change_t *c, es_err_t *err)
{
    es_buf_t key, val;
    es_buf_init(&key);
    es_buf_init(&val);
    s_hist_key(&key, service, c->rsn);
    es_local_change_encode(c, &val);
    int rc = es_txn_put(txn, "hist", key.data, key.len, val.data, val.len, err);
    es_buf_release(&val);
    es_buf_release(&key);
    return rc;
}

static int
s_hist_del(es_txn_t *txn, const char *service, uint64_t rsn, es_err_t *err)
{
    es_buf_t key;
    es_buf_init(&key);
    s_hist_key(&key, service, rsn);
    int rc = es_txn_del(txn, "hist", key.data, key.len, err);
    es_buf_release(&key);
    return rc < 0 ? -1 : 0;
}

//  Copies of hist rows, collected during a scan and changed after it (never change a table
//  under an open cursor).
typedef struct {
    uint64_t rsn;
    es_buf_t val; //  the stored value
} s_row_t;

typedef struct {
    s_row_t *rows;
    size_t n, cap;
} s_rows_t;

static void
s_rows_release(s_rows_t *r)
{
    for (size_t i = 0; i < r->n; i++)
        es_buf_release(&r->rows[i].val);
    free(r->rows);
    *r = (s_rows_t){0};
}

typedef struct {
    const char *service;
    size_t slen;        //  strlen(service)
    uint64_t upto;      //  last RSN to look at
    const char *object; //  only rows of this object (NULL: all)
    size_t olen;
    const void *pk; //  only rows of this key (NULL: all)
    size_t pklen;
    size_t stop_after; //  stop after this many matches (0: no limit)
    s_rows_t *out;
} s_scan_t;

static int
s_scan_cb(void *ctx, const void *key, size_t klen, const void *val, size_t vlen, es_err_t *err)
{
    s_scan_t *s = ctx;
    if (klen != s->slen + 9 || memcmp(key, s->service, s->slen + 1) != 0)
        return 1; //  past the service's rows
    uint64_t rsn = s_get_be64((const uint8_t *)key + s->slen + 1);
    if (rsn > s->upto)
        return 1;
    es_local_change_t c;
    if (es_local_change_decode(&c, rsn, val, vlen, err))
        return -1;
    if (s->object && (c.object_len != s->olen || memcmp(c.object, s->object, s->olen) != 0))
        return 0;
    if (s->pk && (c.pk_len != s->pklen || memcmp(c.pk, s->pk, s->pklen) != 0))
        return 0;
    if (s->out->n == s->out->cap) {
        s->out->cap = s->out->cap ? s->out->cap * 2 : 16;
        s->out->rows = es_realloc(s->out->rows, s->out->cap * sizeof *s->out->rows);
    }
    s_row_t *r = &s->out->rows[s->out->n++];
    r->rsn = rsn;
    es_buf_init(&r->val);
    es_buf_append(&r->val, val, vlen);
    return s->stop_after && s->out->n >= s->stop_after ? 1 : 0;
}

//  Collect hist rows of service with from <= RSN <= upto matching object / pk.
static int
s_hist_collect(es_txn_t *txn, const char *service, uint64_t from, uint64_t upto, const char *object,
               const void *pk, size_t pklen, size_t stop_after, s_rows_t *out, es_err_t *err)
{
    if (from > upto)
        return 0;
    s_scan_t s = {.service = service,
                  .slen = strlen(service),
                  .upto = upto,
                  .object = object,
                  .olen = object ? strlen(object) : 0,
                  .pk = pk,
                  .pklen = pklen,
                  .stop_after = stop_after,
                  .out = out};
    es_buf_t key;
    es_buf_init(&key);
    s_hist_key(&key, service, from);
    int rc = es_txn_iter(txn, "hist", key.data, key.len, s_scan_cb, &s, err);
    es_buf_release(&key);
    return rc;
}

//  ---------------------------------------------------------------------------------------------
//  Records

//  Rewrite a column error from the record builder ("nme: expected int, got string") as
//  "<object>.nme: ...".
static int
s_col_err(es_err_t *err, const es_meta_object_t *obj)
{
    if (!err)
        return -1;
    char old[ES_ERR_WHAT_MAX];
    memcpy(old, err->what, sizeof old);
    return es_err_set(err, err->code, "%s.%s", obj->name, old);
}

static bool
s_is_key(const es_meta_object_t *obj, size_t idx)
{
    for (size_t i = 0; i < obj->nkey; i++)
        if (obj->key[i] == idx)
            return true;
    return false;
}

//  Copy column idx of rec (if present) into b. 1 copied, 0 absent, -1 error.
static int
s_copy_col(es_record_builder_t *b, const es_meta_object_t *obj, size_t idx, const void *rec,
           size_t len, es_err_t *err)
{
    const char *name = obj->fields[idx].name;
    es_value_t v;
    int rc = es_record_get(rec, len, name, &v);
    if (rc < 0)
        return es_err_set(err, ES_ESTORE, "%s: stored record is malformed", obj->name);
    if (rc == 0)
        return 0;
    if (es_record_builder_set(b, name, strlen(name), &v, err))
        return s_col_err(err, obj);
    return 1;
}

//  Equal column values; int and double compare by value (number columns hold either).
static bool
s_value_eq(const es_value_t *a, const es_value_t *b)
{
    if (a->type == ES_V_INT && b->type == ES_V_DOUBLE)
        return (double)a->u.i == b->u.d;
    if (a->type == ES_V_DOUBLE && b->type == ES_V_INT)
        return a->u.d == (double)b->u.i;
    if (a->type != b->type)
        return false;
    switch (a->type) {
    case ES_V_NULL:
        return true;
    case ES_V_BOOL:
        return a->u.b == b->u.b;
    case ES_V_INT:
        return a->u.i == b->u.i;
    case ES_V_DOUBLE:
        return a->u.d == b->u.d;
    case ES_V_STR:
        return a->u.s.len == b->u.s.len && memcmp(a->u.s.ptr, b->u.s.ptr, a->u.s.len) == 0;
    }
    return false;
}

//  Record with only the key columns of rec.
static int
s_key_record(const es_meta_object_t *obj, const void *rec, size_t len, es_buf_t *out, es_err_t *err)
{
    es_record_builder_t *b = es_record_builder_new(obj);
    int rc = 0;
    for (size_t i = 0; i < obj->nkey && rc == 0; i++)
        rc = s_copy_col(b, obj, obj->key[i], rec, len, err) < 0 ? -1 : 0;
    if (rc == 0)
        rc = es_record_builder_end(b, out, err);
    es_record_builder_destroy(&b);
    return rc;
}

//  rec with column idx set to v where rec has that column (records without it stay as they are:
//  the empty baseline of a create).
static int
s_record_set_col(const es_meta_object_t *obj, const void *rec, size_t len, size_t idx,
                 const es_value_t *v, es_buf_t *out, es_err_t *err)
{
    es_value_t old;
    int rc = es_record_get(rec, len, obj->fields[idx].name, &old);
    if (rc < 0)
        return es_err_set(err, ES_ESTORE, "%s: stored record is malformed", obj->name);
    es_buf_reset(out);
    if (rc == 0) {
        es_buf_append(out, rec, len);
        return 0;
    }
    es_record_builder_t *b = es_record_builder_new(obj);
    rc = 0;
    for (size_t i = 0; i < obj->nfields && rc == 0; i++)
        rc = s_copy_col(b, obj, i, rec, len, err) < 0 ? -1 : 0;
    if (rc == 0 &&
        es_record_builder_set(b, obj->fields[idx].name, strlen(obj->fields[idx].name), v, err))
        rc = s_col_err(err, obj);
    //  A record without key columns (never written by us) cannot be rebuilt; keep it.
    if (rc == 0 && es_record_builder_end(b, out, err))
        rc = -1;
    es_record_builder_destroy(&b);
    return rc;
}

//  Key as JSON for error texts.
static void
s_key_text(const es_meta_object_t *obj, const void *pk, size_t pklen, char *buf, size_t size)
{
    es_buf_t j;
    es_buf_init(&j);
    es_err_t e;
    if (es_key_to_json(obj, pk, pklen, &j, &e))
        snprintf(buf, size, "(undecodable key)");
    else
        snprintf(buf, size, "%s", j.data);
    es_buf_release(&j);
}

//  The JSON record of a CRUD call: its members as (field index, value), checked against the
//  metadata names and JSON shapes. Types are checked by the record builder.
typedef struct {
    size_t idx;
    es_value_t v;
} s_member_t;

typedef struct {
    yajl_val root;
    s_member_t *m;
    size_t n;
} s_input_t;

static void
s_input_release(s_input_t *in)
{
    if (in->root)
        yajl_tree_free(in->root);
    free(in->m);
    *in = (s_input_t){0};
}

//  Integer syntax within int64 -> int; anything else -> double (as es_record_from_json).
static void
s_number(const char *s, es_value_t *v)
{
    if (strcspn(s, ".eE") == strlen(s)) {
        errno = 0;
        char *end;
        long long i = strtoll(s, &end, 10);
        if (errno == 0 && *end == '\0') {
            v->type = ES_V_INT;
            v->u.i = i;
            return;
        }
    }
    v->type = ES_V_DOUBLE;
    v->u.d = strtod(s, NULL);
}

static int
s_input_parse(s_input_t *in, const es_meta_object_t *obj, const char *op, const char *json,
              size_t len, es_err_t *err)
{
    *in = (s_input_t){0};
    if (!json || len == 0)
        return es_err_set(err, ES_EINVAL, "%s: %s: record missing", obj->name, op);
    size_t at;
    if (es_json_too_deep(json, len, ES_JSON_DEPTH_MAX, &at))
        return es_err_set(err, ES_EINVAL,
                          "%s: %s: record: nested deeper than %d levels at byte %zu", obj->name, op,
                          ES_JSON_DEPTH_MAX, at);
    char *text = es_strndup(json, len);
    char errbuf[256] = "";
    in->root = yajl_tree_parse(text, errbuf, sizeof errbuf);
    free(text);
    if (!in->root) {
        errbuf[strcspn(errbuf, "\r\n")] = '\0';
        return es_err_set(err, ES_EINVAL, "%s: %s: record: invalid JSON: %s", obj->name, op,
                          errbuf);
    }
    if (!YAJL_IS_OBJECT(in->root))
        return es_err_set(err, ES_EINVAL, "%s: %s: record: expected a JSON object", obj->name, op);
    size_t n = in->root->u.object.len;
    in->m = es_calloc(n ? n : 1, sizeof *in->m);
    for (size_t i = 0; i < n; i++) {
        const char *k = in->root->u.object.keys[i];
        yajl_val v = in->root->u.object.values[i];
        int idx = es_meta_field_index(obj, k, strlen(k));
        if (idx < 0)
            return es_err_set(err, ES_EINVAL, "%s.%s: unknown column", obj->name, k);
        const es_meta_field_t *f = &obj->fields[idx];
        es_value_t *val = &in->m[in->n].v;
        if (YAJL_IS_NULL(v)) {
            val->type = ES_V_NULL;
        } else if (YAJL_IS_TRUE(v) || YAJL_IS_FALSE(v)) {
            val->type = ES_V_BOOL;
            val->u.b = YAJL_IS_TRUE(v);
        } else if (YAJL_IS_NUMBER(v)) {
            s_number(v->u.number.r, val);
        } else if (YAJL_IS_STRING(v)) {
            val->type = ES_V_STR;
            val->u.s.ptr = v->u.string;
            val->u.s.len = strlen(v->u.string);
        } else {
            return es_err_set(err, ES_EINVAL, "%s.%s: expected %s, got %s", obj->name, f->name,
                              es_meta_ftype_name(f->type), YAJL_IS_ARRAY(v) ? "array" : "object");
        }
        in->m[in->n++].idx = (size_t)idx;
    }
    return 0;
}

//  ---------------------------------------------------------------------------------------------
//  The write path shared by create / update / delete

//  Change code of a tracked edit: base is create, update, partial, delete or 80.
static es_chg_t
s_deferred(es_chg_t base, bool mark_for_upload)
{
    if (mark_for_upload)
        return base;
    switch (base) {
    case ES_CHG_CREATE:
        return ES_CHG_DEFERRED_CREATE;
    case ES_CHG_DELETE:
        return ES_CHG_DEFERRED_DELETE;
    case ES_CHG_NOINTER:
        return ES_CHG_DEFERRED_NOINTER;
    default:
        return ES_CHG_DEFERRED_UPDATE;
    }
}

//  State of one key before an edit (everything the edit reads).
typedef struct {
    uint32_t count;       //  hist rows of the key
    uint64_t last;        //  RSN of its latest row (when count > 0)
    es_chg_t last_action; //  that row's change type
    bool has_orig;        //  baseline taken
} s_keystate_t;

static int
s_keystate(es_txn_t *txn, const es_meta_t *meta, const es_meta_object_t *obj, const s_tables_t *t,
           const void *pk, size_t pklen, s_keystate_t *ks, es_err_t *err)
{
    *ks = (s_keystate_t){0};
    if (s_pend_get(txn, t, pk, pklen, &ks->count, &ks->last, err))
        return -1;
    if (ks->count > 0) {
        es_local_change_t c;
        int rc = s_hist_get(txn, meta->name, ks->last, &c, err);
        if (rc < 0)
            return -1;
        if (rc == 0)
            return es_err_set(err, ES_ESTORE,
                              "%s: pend row names hist row %" PRIu64 " which does not exist",
                              obj->name, ks->last);
        ks->last_action = c.action;
    }
    const void *val;
    size_t vlen;
    int rc = es_txn_get(txn, t->orig.data, pk, pklen, &val, &vlen, err);
    if (rc < 0)
        return -1;
    ks->has_orig = rc == 1;
    return 0;
}

//  2314: an uploadable edit behind deferred ones would be replayed before them.
static int
s_check_deferred(const es_meta_object_t *obj, const char *op, const s_keystate_t *ks,
                 const es_local_opts_t *opts, const void *pk, size_t pklen, es_err_t *err)
{
    if (!opts->track_changes || !opts->mark_for_upload || ks->count == 0 ||
        !s_is_deferred(ks->last_action))
        return 0;
    char key[256];
    s_key_text(obj, pk, pklen, key, sizeof key);
    return es_err_set(err, ES_EINVAL,
                      "%s: %s: record has deferred changes (2314): key %s; call markForUpload "
                      "first or pass markForUpload:false",
                      obj->name, op, key);
}

//  Set (set) or clear (clear) the untracked mark of an existing baseline; neither: no change.
static int
s_orig_mark(es_txn_t *txn, const s_tables_t *t, const void *pk, size_t pklen, bool set, bool clear,
            es_err_t *err)
{
    const void *val;
    size_t vlen;
    int got = es_txn_get(txn, t->orig.data, pk, pklen, &val, &vlen, err);
    if (got <= 0)
        return got;
    if (vlen < 1)
        return es_err_set(err, ES_ESTORE, "%s row is empty", t->orig.data);
    uint8_t code = ((const uint8_t *)val)[0];
    uint8_t want = set     ? (uint8_t)(code | S_ORIG_UNTRACKED)
                   : clear ? (uint8_t)(code & ~S_ORIG_UNTRACKED)
                           : code;
    if (want == code)
        return 0;
    es_buf_t copy;
    es_buf_init(&copy);
    es_buf_append(&copy, val, vlen);
    copy.data[0] = (char)want;
    int rc = es_txn_put(txn, t->orig.data, pk, pklen, copy.data, copy.len, err);
    es_buf_release(&copy);
    return rc;
}

//  The untracked mark of pk's baseline (0 if none or no baseline). -1 on error.
static int
s_orig_untracked(es_txn_t *txn, const s_tables_t *t, const void *pk, size_t pklen, uint8_t *mark,
                 es_err_t *err)
{
    const void *val;
    size_t vlen;
    *mark = 0;
    int got = es_txn_get(txn, t->orig.data, pk, pklen, &val, &vlen, err);
    if (got < 0)
        return -1;
    if (got == 1 && vlen >= 1)
        *mark = ((const uint8_t *)val)[0] & S_ORIG_UNTRACKED;
    return 0;
}

//  One edit, all checks done: baseline, hist row with the next RSN (or the collapsed row), pend.
//  base_value: the main row before the edit (NULL for a create). main itself is the caller's.
typedef struct {
    es_chg_t code;      //  change type of the hist row (deferral applied)
    es_chg_t orig_code; //  change type for a new baseline
    const void *rec;    //  hist record
    size_t rec_len;
    const char *checksum; //  checksum at the time of the edit
    size_t checksum_len;
    const void *base_value; //  main value before the edit, NULL = did not exist
    size_t base_len;
    bool collapse; //  update the key's latest row in place
} s_edit_t;

static int
s_record_edit(es_txn_t *txn, const es_meta_t *meta, const es_meta_object_t *obj,
              const s_tables_t *t, const void *pk, size_t pklen, const s_keystate_t *ks,
              const es_local_opts_t *opts, const s_edit_t *e, es_err_t *err)
{
    if (!ks->has_orig) {
        es_buf_t val;
        es_buf_init(&val);
        s_put_le(&val, (uint64_t)e->orig_code | (opts->track_changes ? 0 : S_ORIG_UNTRACKED), 1);
        if (e->base_value)
            es_buf_append(&val, e->base_value, e->base_len);
        else {
            es_buf_t packed;
            es_buf_init(&packed);
            es_store_rec_pack(&packed, "", 0, S_EMPTY_MAP, 1);
            es_buf_append(&val, packed.data, packed.len);
            es_buf_release(&packed);
        }
        int rc = es_txn_put(txn, t->orig.data, pk, pklen, val.data, val.len, err);
        es_buf_release(&val);
        if (rc)
            return -1;
    } else if (s_orig_mark(txn, t, pk, pklen, !opts->track_changes, e->code != ES_CHG_PARTIAL,
                           err)) {
        return -1;
    }
    if (!opts->track_changes)
        return 0;
    es_local_change_t c = {.action = e->code,
                           .object = obj->name,
                           .object_len = strlen(obj->name),
                           .pk = pk,
                           .pk_len = pklen,
                           .checksum = e->checksum,
                           .checksum_len = e->checksum_len,
                           .rec = e->rec,
                           .rec_len = e->rec_len};
    //  A collapsed update replaces the key's latest row but takes a new RSN: the old row may
    //  be in an upload in flight, whose answer deletes rows up to its rowId, and the newer
    //  state must survive that.
    if (e->collapse && s_hist_del(txn, meta->name, ks->last, err) < 0)
        return -1;
    uint32_t count = e->collapse ? ks->count : ks->count + 1;
    if (s_next_rsn(txn, meta->name, &c.rsn, err))
        return -1;
    if (s_counter_put(txn, "rsn", meta->name, c.rsn + 1, err) ||
        s_hist_put(txn, meta->name, &c, err) ||
        s_pend_put(txn, t, pk, pklen, count, c.rsn, err))
        return -1;
    return 0;
}

//  ---------------------------------------------------------------------------------------------
//  CRUD

int
es_local_create(es_txn_t *txn, const es_meta_t *meta, const es_meta_object_t *obj, const char *json,
                size_t len, const es_local_opts_t *opts, es_buf_t *pk_out, es_err_t *err)
{
    assert(txn && meta && obj);
    es_local_opts_t defaults;
    if (!opts) {
        es_local_opts_init(&defaults);
        opts = &defaults;
    }
    s_input_t in;
    s_tables_t t;
    s_tables_init(&t, obj->name);
    es_record_builder_t *b = es_record_builder_new(obj);
    bool *given = es_calloc(obj->nfields ? obj->nfields : 1, sizeof *given);
    es_buf_t rec, pk, packed;
    es_buf_init(&rec);
    es_buf_init(&pk);
    es_buf_init(&packed);
    int rc = -1;
    if (s_input_parse(&in, obj, "create", json, len, err))
        goto done;
    for (size_t i = 0; i < in.n; i++) {
        const es_meta_field_t *f = &obj->fields[in.m[i].idx];
        bool is_null = in.m[i].v.type == ES_V_NULL;
        if (is_null && f->auto_generated && s_is_key(obj, in.m[i].idx)) {
            given[in.m[i].idx] = false; //  null asks for a temporary id, like absent
            continue;
        }
        if (!is_null && !f->creatable) {
            es_err_set(err, ES_EINVAL, "%s.%s: column is not creatable", obj->name, f->name);
            goto done;
        }
        if (es_record_builder_set(b, f->name, strlen(f->name), &in.m[i].v, err)) {
            s_col_err(err, obj);
            goto done;
        }
        given[in.m[i].idx] = true;
    }
    //  Temporary id for an absent auto-generated key column (at most one per object).
    bool temp = false;
    uint64_t gen = 0;
    for (size_t i = 0; i < obj->nkey; i++) {
        const es_meta_field_t *f = &obj->fields[obj->key[i]];
        if (!f->auto_generated || given[obj->key[i]])
            continue;
        int r = s_counter_get(txn, "gen", meta->name, &gen, err);
        if (r < 0)
            goto done;
        int64_t last = r == 1 ? (int64_t)gen : 0;
        if (last == INT64_MIN) {
            es_err_set(err, ES_EINVAL, "%s: create: temporary ids exhausted", obj->name);
            goto done;
        }
        es_value_t v = {.type = ES_V_INT, .u.i = last - 1};
        if (es_record_builder_set(b, f->name, strlen(f->name), &v, err)) {
            s_col_err(err, obj);
            goto done;
        }
        gen = (uint64_t)(last - 1);
        temp = true;
    }
    if (es_record_builder_end(b, &rec, err) || es_key_from_record(obj, rec.data, rec.len, &pk, err))
        goto done;
    const void *val;
    size_t vlen;
    int r = es_txn_get(txn, t.main.data, pk.data, pk.len, &val, &vlen, err);
    if (r < 0)
        goto done;
    if (r == 1) {
        char key[256];
        s_key_text(obj, pk.data, pk.len, key, sizeof key);
        es_err_set(err, ES_EINVAL, "%s: create: a record with key %s exists", obj->name, key);
        goto done;
    }
    s_keystate_t ks;
    if (s_keystate(txn, meta, obj, &t, pk.data, pk.len, &ks, err) ||
        s_check_deferred(obj, "create", &ks, opts, pk.data, pk.len, err))
        goto done;
    //  Checks done; writes from here.
    if (temp && s_counter_put(txn, "gen", meta->name, gen, err))
        goto done;
    s_edit_t e = {.code = s_deferred(ES_CHG_CREATE, opts->mark_for_upload),
                  .orig_code = opts->track_changes
                                   ? s_deferred(ES_CHG_CREATE, opts->mark_for_upload)
                                   : ES_CHG_CREATE,
                  .rec = rec.data,
                  .rec_len = rec.len,
                  .checksum = "",
                  .checksum_len = 0};
    if (s_record_edit(txn, meta, obj, &t, pk.data, pk.len, &ks, opts, &e, err))
        goto done;
    es_store_rec_pack(&packed, "", 0, rec.data, rec.len);
    if (es_txn_put(txn, t.main.data, pk.data, pk.len, packed.data, packed.len, err))
        goto done;
    if (pk_out) {
        es_buf_reset(pk_out);
        if (es_key_to_json(obj, pk.data, pk.len, pk_out, err))
            goto done;
    }
    rc = 0;
done:
    es_buf_release(&packed);
    es_buf_release(&pk);
    es_buf_release(&rec);
    free(given);
    es_record_builder_destroy(&b);
    s_input_release(&in);
    s_tables_release(&t);
    return rc;
}

//  Key from the caller's JSON and the current main row. -1 with err (not found: ES_ENOTFOUND).
static int
s_load(es_txn_t *txn, const es_meta_object_t *obj, const s_tables_t *t, const char *op,
       const char *pk_json, size_t pk_len, es_buf_t *pk, const void **val, size_t *vlen,
       const char **cs, size_t *cslen, const void **rec, size_t *rlen, es_err_t *err)
{
    if (!pk_json || pk_len == 0)
        return es_err_set(err, ES_EINVAL, "%s: %s: primary key missing", obj->name, op);
    if (es_key_from_json(obj, pk_json, pk_len, pk, err))
        return es_err_prefix(err, "%s: %s", obj->name, op);
    int r = es_txn_get(txn, t->main.data, pk->data, pk->len, val, vlen, err);
    if (r < 0)
        return -1;
    if (r == 0) {
        char key[256];
        s_key_text(obj, pk->data, pk->len, key, sizeof key);
        return es_err_set(err, ES_ENOTFOUND, "%s: %s: no record with key %s", obj->name, op, key);
    }
    if (es_store_rec_unpack(*val, *vlen, cs, cslen, rec, rlen))
        return es_err_set(err, ES_ESTORE, "%s: main row is malformed", obj->name);
    return 0;
}

int
es_local_update(es_txn_t *txn, const es_meta_t *meta, const es_meta_object_t *obj,
                const char *pk_json, size_t pk_len, const char *json, size_t len, bool partial,
                const es_local_opts_t *opts, es_err_t *err)
{
    assert(txn && meta && obj);
    es_local_opts_t defaults;
    if (!opts) {
        es_local_opts_init(&defaults);
        opts = &defaults;
    }
    const char *op = partial ? "partialUpdate" : "update";
    s_input_t in = {0};
    s_tables_t t;
    s_tables_init(&t, obj->name);
    es_record_builder_t *bg = es_record_builder_new(obj), *bf = es_record_builder_new(obj);
    es_buf_t pk, given_rec, full_rec, packed;
    es_buf_init(&pk);
    es_buf_init(&given_rec);
    es_buf_init(&full_rec);
    es_buf_init(&packed);
    int rc = -1;
    const void *val, *cur;
    const char *cs;
    size_t vlen, cslen, curlen;
    if (s_load(txn, obj, &t, op, pk_json, pk_len, &pk, &val, &vlen, &cs, &cslen, &cur, &curlen,
               err) ||
        s_input_parse(&in, obj, op, json, len, err))
        goto done;
    //  given: key columns of the row, then the caller's columns (type-checked by the builder).
    for (size_t i = 0; i < obj->nkey; i++)
        if (s_copy_col(bg, obj, obj->key[i], cur, curlen, err) < 0)
            goto done;
    for (size_t i = 0; i < in.n; i++) {
        const char *name = obj->fields[in.m[i].idx].name;
        if (es_record_builder_set(bg, name, strlen(name), &in.m[i].v, err)) {
            s_col_err(err, obj);
            goto done;
        }
    }
    if (es_record_builder_end(bg, &given_rec, err))
        goto done;
    //  Compare the converted values with the row: key columns and non-updatable columns may
    //  only repeat what is there.
    for (size_t i = 0; i < in.n; i++) {
        const es_meta_field_t *f = &obj->fields[in.m[i].idx];
        es_value_t vn, vc;
        int rn = es_record_get(given_rec.data, given_rec.len, f->name, &vn);
        int rcur = es_record_get(cur, curlen, f->name, &vc);
        if (rn != 1 || rcur < 0) {
            es_err_set(err, ES_ESTORE, "%s: record is malformed", obj->name);
            goto done;
        }
        //  Absent and null are the same "no value".
        bool same = rcur == 1 ? s_value_eq(&vn, &vc) : vn.type == ES_V_NULL;
        if (s_is_key(obj, in.m[i].idx) && !same) {
            es_err_set(err, ES_EINVAL, "%s.%s: key columns cannot be updated", obj->name, f->name);
            goto done;
        }
        if (!f->updatable && !same) {
            es_err_set(err, ES_EINVAL, "%s.%s: column is not updatable", obj->name, f->name);
            goto done;
        }
    }
    //  The new record: the given columns; the other columns keep their values in a partial
    //  update, and in a full one only if an update cannot change them (key, not updatable).
    for (size_t i = 0; i < obj->nfields; i++) {
        int r = s_copy_col(bf, obj, i, given_rec.data, given_rec.len, err);
        if (r == 0 && (partial || s_is_key(obj, i) || !obj->fields[i].updatable))
            r = s_copy_col(bf, obj, i, cur, curlen, err);
        if (r < 0)
            goto done;
    }
    if (es_record_builder_end(bf, &full_rec, err))
        goto done;
    const void *full = full_rec.data;
    size_t full_len = full_rec.len;
    s_keystate_t ks;
    if (s_keystate(txn, meta, obj, &t, pk.data, pk.len, &ks, err) ||
        s_check_deferred(obj, op, &ks, opts, pk.data, pk.len, err))
        goto done;
    es_chg_t base = partial ? ES_CHG_PARTIAL : ES_CHG_UPDATE;
    if (!opts->track_intermediate)
        base = ES_CHG_NOINTER;
    s_edit_t e = {.code = s_deferred(base, opts->mark_for_upload),
                  .orig_code = partial ? ES_CHG_PARTIAL : ES_CHG_UPDATE,
                  .checksum = cs,
                  .checksum_len = cslen,
                  .base_value = val,
                  .base_len = vlen};
    if (opts->track_changes)
        e.orig_code = e.code;
    //  Only an uploadable partial update carries just the given columns; 80 and the deferred
    //  codes (which become full updates when marked) carry the whole record.
    bool given_only = e.code == ES_CHG_PARTIAL;
    e.rec = given_only ? given_rec.data : full;
    e.rec_len = given_only ? given_rec.len : full_len;
    e.collapse = !opts->track_intermediate && ks.count > 0 && ks.last_action == e.code;
    //  Copy the main value: writes below may move the page val points into.
    es_buf_t base_copy;
    es_buf_init(&base_copy);
    es_buf_append(&base_copy, val, vlen);
    e.base_value = base_copy.data;
    es_buf_t cs_copy;
    es_buf_init(&cs_copy);
    es_buf_append(&cs_copy, cs, cslen);
    e.checksum = cs_copy.data;
    es_store_rec_pack(&packed, cs_copy.data, cslen, full, full_len);
    int w = s_record_edit(txn, meta, obj, &t, pk.data, pk.len, &ks, opts, &e, err);
    if (w == 0)
        w = es_txn_put(txn, t.main.data, pk.data, pk.len, packed.data, packed.len, err);
    es_buf_release(&cs_copy);
    es_buf_release(&base_copy);
    if (w)
        goto done;
    rc = 0;
done:
    es_buf_release(&packed);
    es_buf_release(&full_rec);
    es_buf_release(&given_rec);
    es_buf_release(&pk);
    es_record_builder_destroy(&bf);
    es_record_builder_destroy(&bg);
    s_input_release(&in);
    s_tables_release(&t);
    return rc;
}

int
es_local_delete(es_txn_t *txn, const es_meta_t *meta, const es_meta_object_t *obj,
                const char *pk_json, size_t pk_len, const es_local_opts_t *opts, es_err_t *err)
{
    assert(txn && meta && obj);
    es_local_opts_t defaults;
    if (!opts) {
        es_local_opts_init(&defaults);
        opts = &defaults;
    }
    s_tables_t t;
    s_tables_init(&t, obj->name);
    es_buf_t pk, keyrec, base_copy, cs_copy;
    es_buf_init(&pk);
    es_buf_init(&keyrec);
    es_buf_init(&base_copy);
    es_buf_init(&cs_copy);
    int rc = -1;
    const void *val, *cur;
    const char *cs;
    size_t vlen, cslen, curlen;
    if (s_load(txn, obj, &t, "delete", pk_json, pk_len, &pk, &val, &vlen, &cs, &cslen, &cur,
               &curlen, err) ||
        s_key_record(obj, cur, curlen, &keyrec, err))
        goto done;
    s_keystate_t ks;
    if (s_keystate(txn, meta, obj, &t, pk.data, pk.len, &ks, err) ||
        s_check_deferred(obj, "delete", &ks, opts, pk.data, pk.len, err))
        goto done;
    es_buf_append(&base_copy, val, vlen);
    es_buf_append(&cs_copy, cs, cslen);
    s_edit_t e = {.code = s_deferred(ES_CHG_DELETE, opts->mark_for_upload),
                  .orig_code = ES_CHG_DELETE,
                  .rec = keyrec.data,
                  .rec_len = keyrec.len,
                  .checksum = cs_copy.data,
                  .checksum_len = cslen,
                  .base_value = base_copy.data,
                  .base_len = base_copy.len};
    if (opts->track_changes)
        e.orig_code = e.code;
    if (s_record_edit(txn, meta, obj, &t, pk.data, pk.len, &ks, opts, &e, err) ||
        es_txn_del(txn, t.main.data, pk.data, pk.len, err) < 0)
        goto done;
    rc = 0;
done:
    es_buf_release(&cs_copy);
    es_buf_release(&base_copy);
    es_buf_release(&keyrec);
    es_buf_release(&pk);
    s_tables_release(&t);
    return rc;
}

int64_t
es_local_mark_for_upload(es_txn_t *txn, const es_meta_t *meta, const es_meta_object_t *obj,
                         es_err_t *err)
{
    assert(txn && meta);
    s_rows_t rows = {0};
    int64_t n = -1;
    if (s_hist_collect(txn, meta->name, 1, UINT64_MAX, obj ? obj->name : NULL, NULL, 0, 0, &rows,
                       err))
        goto done;
    n = 0;
    for (size_t i = 0; i < rows.n; i++) {
        es_local_change_t c;
        if (es_local_change_decode(&c, rows.rows[i].rsn, rows.rows[i].val.data,
                                   rows.rows[i].val.len, err)) {
            n = -1;
            goto done;
        }
        switch (c.action) {
        case ES_CHG_DEFERRED_CREATE:
            c.action = ES_CHG_CREATE;
            break;
        case ES_CHG_DEFERRED_UPDATE:
            c.action = ES_CHG_UPDATE;
            break;
        case ES_CHG_DEFERRED_DELETE:
            c.action = ES_CHG_DELETE;
            break;
        case ES_CHG_DEFERRED_NOINTER:
            c.action = ES_CHG_NOINTER;
            break;
        default:
            continue;
        }
        //  c points into rows.rows[i].val, which s_hist_put only reads.
        if (s_hist_put(txn, meta->name, &c, err)) {
            n = -1;
            goto done;
        }
        n++;
    }
done:
    s_rows_release(&rows);
    return n;
}

//  ---------------------------------------------------------------------------------------------
//  Queries

typedef struct {
    const es_meta_object_t *obj;
    es_buf_t *out;
    size_t n;
} s_pend_list_t;

static int
s_pend_list_cb(void *ctx, const void *key, size_t klen, const void *val, size_t vlen, es_err_t *err)
{
    (void)val;
    (void)vlen;
    s_pend_list_t *p = ctx;
    if (p->n++)
        es_buf_putc(p->out, ',');
    return es_key_to_json(p->obj, key, klen, p->out, err);
}

static int
s_pending_one(es_txn_t *txn, const es_meta_object_t *obj, es_buf_t *out, es_err_t *err)
{
    es_buf_t table;
    es_buf_init(&table);
    es_store_table(&table, "pend", obj->name);
    es_buf_puts(out, "{\"pendingSyncRecords\":[");
    s_pend_list_t p = {.obj = obj, .out = out};
    int rc = es_txn_iter(txn, table.data, NULL, 0, s_pend_list_cb, &p, err);
    es_buf_puts(out, "]}");
    es_buf_release(&table);
    return rc;
}

int
es_local_pending(es_txn_t *txn, const es_meta_t *meta, const es_meta_object_t *obj, es_buf_t *out,
                 es_err_t *err)
{
    assert(txn && meta && out);
    es_buf_reset(out);
    if (obj)
        return s_pending_one(txn, obj, out, err);
    es_buf_putc(out, '{');
    for (size_t i = 0; i < meta->nobjects; i++) {
        if (i)
            es_buf_putc(out, ',');
        es_buf_json_str(out, meta->objects[i].name, strlen(meta->objects[i].name));
        es_buf_putc(out, ':');
        if (s_pending_one(txn, &meta->objects[i], out, err))
            return -1;
    }
    es_buf_putc(out, '}');
    return 0;
}

int
es_local_has_local_state(es_txn_t *txn, const char *object, const void *pk, size_t pk_len,
                         es_err_t *err)
{
    assert(txn && object && pk);
    s_tables_t t;
    s_tables_init(&t, object);
    const void *val;
    size_t vlen;
    int rc = es_txn_get(txn, t.pend.data, pk, pk_len, &val, &vlen, err);
    if (rc == 0)
        rc = es_txn_get(txn, t.orig.data, pk, pk_len, &val, &vlen, err);
    s_tables_release(&t);
    return rc;
}

int
es_local_protect(es_txn_t *txn, const char *object, const void *pk, size_t pk_len,
                 bool is_delete, const void *value, size_t value_len, es_err_t *err)
{
    assert(txn && object && pk);
    int has = es_local_has_local_state(txn, object, pk, pk_len, err);
    if (has <= 0)
        return has;
    s_tables_t t;
    s_tables_init(&t, object);
    es_buf_t v, packed;
    es_buf_init(&v);
    es_buf_init(&packed);
    int rc = -1;
    const char *cs = "";
    size_t cslen = 0;
    const void *rec = NULL;
    size_t rlen = 0;
    if (!is_delete &&
        es_store_rec_unpack(value, value_len, &cs, &cslen, &rec, &rlen)) {
        es_err_set(err, ES_EPROTO, "%s: downloaded value is malformed", object);
        goto done;
    }
    uint8_t mark;
    if (s_orig_untracked(txn, &t, pk, pk_len, &mark, err))
        goto done;
    s_put_le(&v, (uint64_t)(is_delete ? ES_CHG_CREATE : ES_CHG_UPDATE) | mark, 1);
    if (is_delete) {
        es_store_rec_pack(&packed, "", 0, S_EMPTY_MAP, 1);
        es_buf_append(&v, packed.data, packed.len);
    } else {
        es_buf_append(&v, value, value_len);
    }
    if (es_txn_put(txn, t.orig.data, pk, pk_len, v.data, v.len, err))
        goto done;
    //  The next upload carries the fresh checksum for conflict detection.
    const void *mv;
    size_t mlen;
    int got = is_delete ? 0 : es_txn_get(txn, t.main.data, pk, pk_len, &mv, &mlen, err);
    if (got < 0)
        goto done;
    if (got == 1) {
        const char *ocs;
        size_t ocslen, mrlen;
        const void *mrec;
        if (es_store_rec_unpack(mv, mlen, &ocs, &ocslen, &mrec, &mrlen) == 0) {
            es_buf_t copy;
            es_buf_init(&copy);
            es_buf_append(&copy, mrec, mrlen); //  mv dies with the put below
            es_store_rec_pack(&packed, cs, cslen, copy.data, copy.len);
            es_buf_release(&copy);
            if (es_txn_put(txn, t.main.data, pk, pk_len, packed.data, packed.len, err))
                goto done;
        }
    }
    rc = 1;
done:
    es_buf_release(&packed);
    es_buf_release(&v);
    s_tables_release(&t);
    return rc;
}

int
es_local_last_rsn(es_txn_t *txn, const char *service, uint64_t *rsn, es_err_t *err)
{
    assert(txn && service && rsn);
    uint64_t next = 1;
    if (s_next_rsn(txn, service, &next, err))
        return -1;
    *rsn = next - 1;
    return 0;
}

typedef struct {
    size_t slen;
    const char *service;
    uint64_t upto;
    size_t limit, n;
    es_local_object_filter_fn *filter;
    void *filter_ctx;
    es_local_change_fn *fn;
    void *ctx;
} s_changes_t;

static int
s_changes_cb(void *ctx, const void *key, size_t klen, const void *val, size_t vlen, es_err_t *err)
{
    s_changes_t *s = ctx;
    if (klen != s->slen + 9 || memcmp(key, s->service, s->slen + 1) != 0)
        return 1;
    uint64_t rsn = s_get_be64((const uint8_t *)key + s->slen + 1);
    if (rsn > s->upto)
        return 1;
    es_local_change_t c;
    if (es_local_change_decode(&c, rsn, val, vlen, err))
        return -1;
    if (s_is_deferred(c.action))
        return 0;
    if (s->filter && !s->filter(s->filter_ctx, c.object, c.object_len))
        return 0;
    int r = s->fn(s->ctx, &c, err);
    if (r != 0)
        return r;
    s->n++;
    return s->limit && s->n >= s->limit ? 1 : 0;
}

int
es_local_changes(es_txn_t *txn, const char *service, uint64_t after, uint64_t upto, size_t limit,
                 es_local_object_filter_fn *filter, void *filter_ctx, es_local_change_fn *fn,
                 void *ctx, es_err_t *err)
{
    assert(txn && service && fn);
    if (after >= upto)
        return 0;
    s_changes_t s = {.slen = strlen(service),
                     .service = service,
                     .upto = upto,
                     .limit = limit,
                     .filter = filter,
                     .filter_ctx = filter_ctx,
                     .fn = fn,
                     .ctx = ctx};
    es_buf_t key;
    es_buf_init(&key);
    s_hist_key(&key, service, after + 1);
    int rc = es_txn_iter(txn, "hist", key.data, key.len, s_changes_cb, &s, err);
    es_buf_release(&key);
    return rc;
}

//  ---------------------------------------------------------------------------------------------
//  Rollback and clear

//  Rollback and clear never delete upload cache rows and refuse to drop a pending change that
//  one of them carries. A cached request may have been applied by the server with its answer
//  lost; only its replay under the same request id settles that (D14, D15). Dropping the row
//  would send its other changes again under a new id (duplicated creates if it had been
//  applied); dropping the change alone would let the replay apply what was rolled back, or
//  leave the server holding a change the device has forgotten. So the user syncs first: the
//  replay resolves the request, and the change is then either uploaded or still pending and
//  free to roll back. (The JS SDK deletes the rows, SPEC 3.3/3.7; D14/D15 decide here.)
typedef struct {
    const es_meta_t *meta;
    char **ids_of;  //  request id of each row
    uint64_t **ids; //  sorted rowIds of each row
    size_t *nids;   //  how many
    size_t n;       //  rows
} s_cached_t;

static void
s_cached_release(s_cached_t *c)
{
    for (size_t i = 0; i < c->n; i++) {
        free(c->ids_of[i]);
        free(c->ids[i]);
    }
    free(c->ids_of);
    free(c->ids);
    free(c->nids);
}

static int
s_cached_cb(void *ctx, const void *key, size_t klen, const void *val, size_t vlen, es_err_t *err)
{
    s_cached_t *c = ctx;
    //  The rows of this service: its own and its objects' (as the upload actor replays them).
    bool mine = klen == strlen(c->meta->name) && memcmp(key, c->meta->name, klen) == 0;
    for (size_t i = 0; !mine && i < c->meta->nobjects; i++)
        mine = klen == strlen(c->meta->objects[i].name) &&
               memcmp(key, c->meta->objects[i].name, klen) == 0;
    if (!mine)
        return 0;
    es_upcache_row_t row;
    uint64_t *ids;
    size_t nids;
    if (es_upcache_decode(&row, val, vlen, err) ||
        es_upcache_row_ids(row.body, row.body_len, &ids, &nids, err))
        return es_err_prefix(err, "upload cache row '%.*s'", (int)klen, (const char *)key);
    c->ids_of = es_realloc(c->ids_of, (c->n + 1) * sizeof *c->ids_of);
    c->ids = es_realloc(c->ids, (c->n + 1) * sizeof *c->ids);
    c->nids = es_realloc(c->nids, (c->n + 1) * sizeof *c->nids);
    c->ids_of[c->n] = es_strndup(row.request_id, row.request_id_len);
    c->ids[c->n] = ids;
    c->nids[c->n] = nids;
    c->n++;
    return 0;
}

//  -1 with err (ES_EBUSY) if a pending change of obj's key pk (pk NULL: of obj; obj NULL: of
//  the service) is in a cached upload request; op names the operation in the message.
static int
s_check_cached(es_txn_t *txn, const es_meta_t *meta, const es_meta_object_t *obj, const void *pk,
               size_t pklen, const char *op, es_err_t *err)
{
    s_cached_t c = {.meta = meta};
    s_rows_t rows = {0};
    int rc = -1;
    if (es_txn_iter(txn, "upcache", NULL, 0, s_cached_cb, &c, err))
        goto done;
    rc = 0;
    if (c.n == 0)
        goto done;
    rc = -1;
    if (pk) {
        s_tables_t t;
        s_tables_init(&t, obj->name);
        uint32_t count;
        uint64_t last;
        int r = s_pend_get(txn, &t, pk, pklen, &count, &last, err);
        if (r == 0 && count > 0)
            r = s_hist_collect(txn, meta->name, 1, last, obj->name, pk, pklen, count, &rows, err);
        s_tables_release(&t);
        if (r)
            goto done;
    } else if (s_hist_collect(txn, meta->name, 1, UINT64_MAX, obj ? obj->name : NULL, NULL, 0, 0,
                              &rows, err)) {
        goto done;
    }
    for (size_t i = 0; i < rows.n; i++)
        for (size_t k = 0; k < c.n; k++) {
            if (!es_upcache_has_id(c.ids[k], c.nids[k], rows.rows[i].rsn))
                continue;
            es_local_change_t ch;
            if (es_local_change_decode(&ch, rows.rows[i].rsn, rows.rows[i].val.data,
                                       rows.rows[i].val.len, err))
                goto done;
            char name[256], key[256] = "?";
            snprintf(name, sizeof name, "%.*s", (int)ch.object_len, ch.object);
            const es_meta_object_t *o = es_meta_object(meta, name);
            if (o)
                s_key_text(o, ch.pk, ch.pk_len, key, sizeof key);
            es_err_set(err, ES_EBUSY,
                       "%s: %s: key %s has a change (rowId %llu) in upload request %s, whose "
                       "answer never arrived: the server may have applied it. Sync first; the "
                       "replay of that request settles it",
                       name, op, key, (unsigned long long)rows.rows[i].rsn, c.ids_of[k]);
            goto done;
        }
    rc = 0;
done:
    s_rows_release(&rows);
    s_cached_release(&c);
    return rc;
}

//  Delete the collected hist rows.
static int
s_rows_delete(es_txn_t *txn, const char *service, const s_rows_t *rows, es_err_t *err)
{
    for (size_t i = 0; i < rows->n; i++)
        if (s_hist_del(txn, service, rows->rows[i].rsn, err))
            return -1;
    return 0;
}

//  Delete every hist row of obj's key pk (or of obj when pk is NULL) and the pend rows.
static int
s_drop_hist(es_txn_t *txn, const es_meta_t *meta, const es_meta_object_t *obj, const s_tables_t *t,
            const void *pk, size_t pklen, es_err_t *err)
{
    s_rows_t rows = {0};
    uint32_t count = 0;
    uint64_t last = 0;
    int rc = -1;
    if (pk) {
        if (s_pend_get(txn, t, pk, pklen, &count, &last, err))
            goto done;
        //  The pend row bounds the scan: the key's rows end at its latest RSN.
        if (count > 0 &&
            s_hist_collect(txn, meta->name, 1, last, obj->name, pk, pklen, count, &rows, err))
            goto done;
        if (es_txn_del(txn, t->pend.data, pk, pklen, err) < 0)
            goto done;
    } else {
        if (s_hist_collect(txn, meta->name, 1, UINT64_MAX, obj->name, NULL, 0, 0, &rows, err) ||
            es_txn_clear(txn, t->pend.data, err))
            goto done;
    }
    rc = s_rows_delete(txn, meta->name, &rows, err);
done:
    s_rows_release(&rows);
    return rc;
}

//  Restore one baseline value (orig row) into main.
static int
s_restore(es_txn_t *txn, const es_meta_object_t *obj, const s_tables_t *t, const void *pk,
          size_t pklen, const void *oval, size_t olen, es_err_t *err)
{
    if (olen < 1)
        return es_err_set(err, ES_ESTORE, "%s: orig row is empty", obj->name);
    es_chg_t code = (es_chg_t)(((const uint8_t *)oval)[0] & ~S_ORIG_UNTRACKED);
    if (s_is_create(code))
        return es_txn_del(txn, t->main.data, pk, pklen, err) < 0 ? -1 : 0;
    return es_txn_put(txn, t->main.data, pk, pklen, (const uint8_t *)oval + 1, olen - 1, err);
}

static int
s_collect_kv_cb(void *ctx, const void *key, size_t klen, const void *val, size_t vlen,
                es_err_t *err)
{
    (void)err;
    s_rows_t *r = ctx;
    if (r->n == r->cap) {
        r->cap = r->cap ? r->cap * 2 : 16;
        r->rows = es_realloc(r->rows, r->cap * sizeof *r->rows);
    }
    s_row_t *row = &r->rows[r->n++];
    row->rsn = klen; //  split point between key and value
    es_buf_init(&row->val);
    es_buf_append(&row->val, key, klen);
    es_buf_append(&row->val, val, vlen);
    return 0;
}

static int64_t
s_rollback_object(es_txn_t *txn, const es_meta_t *meta, const es_meta_object_t *obj, es_err_t *err)
{
    s_tables_t t;
    s_tables_init(&t, obj->name);
    s_rows_t origs = {0};
    int64_t n = -1;
    if (es_txn_iter(txn, t.orig.data, NULL, 0, s_collect_kv_cb, &origs, err))
        goto done;
    for (size_t i = 0; i < origs.n; i++) {
        const char *p = origs.rows[i].val.data;
        size_t klen = (size_t)origs.rows[i].rsn;
        if (s_restore(txn, obj, &t, p, klen, p + klen, origs.rows[i].val.len - klen, err))
            goto done;
    }
    if (es_txn_clear(txn, t.orig.data, err) || s_drop_hist(txn, meta, obj, &t, NULL, 0, err))
        goto done;
    n = (int64_t)origs.n;
done:
    s_rows_release(&origs);
    s_tables_release(&t);
    return n;
}

int64_t
es_local_rollback(es_txn_t *txn, const es_meta_t *meta, const es_meta_object_t *obj,
                  const char *pk_json, size_t pk_len, es_err_t *err)
{
    assert(txn && meta);
    if (pk_json && pk_len > 0) {
        if (!obj)
            return es_err_set(err, ES_EINVAL, "rollback: a primary key needs an object");
        s_tables_t t;
        s_tables_init(&t, obj->name);
        es_buf_t pk, oval;
        es_buf_init(&pk);
        es_buf_init(&oval);
        int64_t n = -1;
        const void *val;
        size_t vlen;
        if (es_key_from_json(obj, pk_json, pk_len, &pk, err)) {
            es_err_prefix(err, "%s: rollback", obj->name);
            goto done1;
        }
        if (s_check_cached(txn, meta, obj, pk.data, pk.len, "rollback", err))
            goto done1;
        int r = es_txn_get(txn, t.orig.data, pk.data, pk.len, &val, &vlen, err);
        if (r < 0)
            goto done1;
        if (r == 0) {
            char key[256];
            s_key_text(obj, pk.data, pk.len, key, sizeof key);
            es_err_set(err, ES_ENOTFOUND, "%s: rollback: no local changes for that key %s (2471)",
                       obj->name, key);
            goto done1;
        }
        es_buf_append(&oval, val, vlen);
        if (s_restore(txn, obj, &t, pk.data, pk.len, oval.data, oval.len, err) ||
            es_txn_del(txn, t.orig.data, pk.data, pk.len, err) < 0 ||
            s_drop_hist(txn, meta, obj, &t, pk.data, pk.len, err))
            goto done1;
        n = 1;
    done1:
        es_buf_release(&oval);
        es_buf_release(&pk);
        s_tables_release(&t);
        return n;
    }
    if (s_check_cached(txn, meta, obj, NULL, 0, "rollback", err))
        return -1;
    if (obj)
        return s_rollback_object(txn, meta, obj, err);
    int64_t total = 0;
    for (size_t i = 0; i < meta->nobjects; i++) {
        int64_t n = s_rollback_object(txn, meta, &meta->objects[i], err);
        if (n < 0)
            return -1;
        total += n;
    }
    //  Rows of objects no longer in the metadata would never upload nor roll back.
    s_rows_t rows = {0};
    int rc = s_hist_collect(txn, meta->name, 1, UINT64_MAX, NULL, NULL, 0, 0, &rows, err);
    if (rc == 0)
        rc = s_rows_delete(txn, meta->name, &rows, err);
    s_rows_release(&rows);
    if (rc)
        return -1;
    return total;
}

//  ctx rows "<object>\n<filter>".
static int
s_ctx_cb(void *ctx, const void *key, size_t klen, const void *val, size_t vlen, es_err_t *err)
{
    (void)val;
    (void)vlen;
    (void)err;
    void **c = ctx;
    const es_buf_t *prefix = c[0];
    s_rows_t *rows = c[1];
    if (klen < prefix->len || memcmp(key, prefix->data, prefix->len) != 0)
        return 1;
    return s_collect_kv_cb(rows, key, klen, "", 0, err);
}

static int64_t
s_clear_object(es_txn_t *txn, const es_meta_t *meta, const es_meta_object_t *obj, es_err_t *err)
{
    s_tables_t t;
    s_tables_init(&t, obj->name);
    es_buf_t prefix;
    es_buf_init(&prefix);
    es_buf_printf(&prefix, "%s\n", obj->name);
    s_rows_t ctxrows = {0};
    int64_t n = es_txn_count(txn, t.main.data, err);
    void *c[2] = {&prefix, &ctxrows};
    if (n < 0 || es_txn_clear(txn, t.main.data, err) || es_txn_clear(txn, t.orig.data, err) ||
        s_drop_hist(txn, meta, obj, &t, NULL, 0, err) ||
        es_txn_iter(txn, "ctx", prefix.data, prefix.len, s_ctx_cb, c, err)) {
        n = -1;
        goto done;
    }
    for (size_t i = 0; i < ctxrows.n; i++)
        if (es_txn_del(txn, "ctx", ctxrows.rows[i].val.data, ctxrows.rows[i].val.len, err) < 0) {
            n = -1;
            goto done;
        }
done:
    s_rows_release(&ctxrows);
    es_buf_release(&prefix);
    s_tables_release(&t);
    return n;
}

int64_t
es_local_clear(es_txn_t *txn, const es_meta_t *meta, const es_meta_object_t *obj,
               const char *pk_json, size_t pk_len, es_err_t *err)
{
    assert(txn && meta);
    if (pk_json && pk_len > 0) {
        if (!obj)
            return es_err_set(err, ES_EINVAL, "clear: a primary key needs an object");
        s_tables_t t;
        s_tables_init(&t, obj->name);
        es_buf_t pk;
        es_buf_init(&pk);
        int64_t n = -1;
        if (es_key_from_json(obj, pk_json, pk_len, &pk, err)) {
            es_err_prefix(err, "%s: clear", obj->name);
            goto done1;
        }
        if (s_check_cached(txn, meta, obj, pk.data, pk.len, "clear", err))
            goto done1;
        int r = es_txn_del(txn, t.main.data, pk.data, pk.len, err);
        if (r < 0 || es_txn_del(txn, t.orig.data, pk.data, pk.len, err) < 0 ||
            s_drop_hist(txn, meta, obj, &t, pk.data, pk.len, err))
            goto done1;
        n = r;
    done1:
        es_buf_release(&pk);
        s_tables_release(&t);
        return n;
    }
    if (s_check_cached(txn, meta, obj, NULL, 0, "clear", err))
        return -1;
    if (obj)
        return s_clear_object(txn, meta, obj, err);
    int64_t total = 0;
    for (size_t i = 0; i < meta->nobjects; i++) {
        int64_t n = s_clear_object(txn, meta, &meta->objects[i], err);
        if (n < 0)
            return -1;
        total += n;
    }
    s_rows_t rows = {0};
    int rc = s_hist_collect(txn, meta->name, 1, UINT64_MAX, NULL, NULL, 0, 0, &rows, err);
    if (rc == 0)
        rc = s_rows_delete(txn, meta->name, &rows, err);
    s_rows_release(&rows);
    if (rc)
        return -1;
    return total;
}

//  ---------------------------------------------------------------------------------------------
//  Upload results

//  Rewrite a temporary key tmp -> real in main, orig, pend and the key's hist rows; the auto
//  column col inside the stored records gets value real_v.
static int
s_rewrite_key(es_txn_t *txn, const char *service, const es_meta_object_t *obj, const s_tables_t *t,
              const es_buf_t *tmp, const es_buf_t *real, size_t col, const es_value_t *real_v,
              es_err_t *err)
{
    es_buf_t rec, packed, val;
    es_buf_init(&rec);
    es_buf_init(&packed);
    es_buf_init(&val);
    s_rows_t rows = {0};
    int rc = -1;
    const void *v;
    size_t vlen;
    const char *cs;
    size_t cslen;
    const void *r;
    size_t rlen;
    //  main
    int got = es_txn_get(txn, t->main.data, tmp->data, tmp->len, &v, &vlen, err);
    if (got < 0)
        goto done;
    if (got == 1) {
        if (es_store_rec_unpack(v, vlen, &cs, &cslen, &r, &rlen)) {
            es_err_set(err, ES_ESTORE, "%s: main row is malformed", obj->name);
            goto done;
        }
        es_buf_append(&val, cs, cslen); //  cs copy: v dies with the first write
        if (s_record_set_col(obj, r, rlen, col, real_v, &rec, err))
            goto done;
        es_store_rec_pack(&packed, val.data, cslen, rec.data, rec.len);
        if (es_txn_del(txn, t->main.data, tmp->data, tmp->len, err) < 0 ||
            es_txn_put(txn, t->main.data, real->data, real->len, packed.data, packed.len, err))
            goto done;
    }
    //  orig: a baseline already under the real key wins (it is the older one).
    got = es_txn_get(txn, t->orig.data, tmp->data, tmp->len, &v, &vlen, err);
    if (got < 0)
        goto done;
    if (got == 1) {
        if (vlen < 1 ||
            es_store_rec_unpack((const uint8_t *)v + 1, vlen - 1, &cs, &cslen, &r, &rlen)) {
            es_err_set(err, ES_ESTORE, "%s: orig row is malformed", obj->name);
            goto done;
        }
        uint8_t code = ((const uint8_t *)v)[0];
        es_buf_t csb;
        es_buf_init(&csb);
        es_buf_append(&csb, cs, cslen);
        rc = s_record_set_col(obj, r, rlen, col, real_v, &rec, err);
        if (rc == 0) {
            es_store_rec_pack(&packed, csb.data, cslen, rec.data, rec.len);
            es_buf_reset(&val);
            es_buf_append(&val, &code, 1);
            es_buf_append(&val, packed.data, packed.len);
        }
        es_buf_release(&csb);
        if (rc)
            goto done;
        rc = -1;
        const void *ev;
        size_t evlen;
        int exists = es_txn_get(txn, t->orig.data, real->data, real->len, &ev, &evlen, err);
        if (exists < 0 || es_txn_del(txn, t->orig.data, tmp->data, tmp->len, err) < 0)
            goto done;
        if (exists == 0 &&
            es_txn_put(txn, t->orig.data, real->data, real->len, val.data, val.len, err))
            goto done;
    }
    //  pend and hist
    uint32_t count, rcount;
    uint64_t last, rlast;
    if (s_pend_get(txn, t, tmp->data, tmp->len, &count, &last, err) ||
        s_pend_get(txn, t, real->data, real->len, &rcount, &rlast, err))
        goto done;
    if (count > 0) {
        if (s_hist_collect(txn, service, 1, last, obj->name, tmp->data, tmp->len, count, &rows,
                           err))
            goto done;
        for (size_t i = 0; i < rows.n; i++) {
            es_local_change_t c;
            if (es_local_change_decode(&c, rows.rows[i].rsn, rows.rows[i].val.data,
                                       rows.rows[i].val.len, err) ||
                s_record_set_col(obj, c.rec, c.rec_len, col, real_v, &rec, err))
                goto done;
            c.pk = real->data;
            c.pk_len = real->len;
            c.rec = rec.data;
            c.rec_len = rec.len;
            if (s_hist_put(txn, service, &c, err))
                goto done;
        }
        if (s_pend_put(txn, t, tmp->data, tmp->len, 0, 0, err) ||
            s_pend_put(txn, t, real->data, real->len, rcount + count, last > rlast ? last : rlast,
                       err))
            goto done;
    }
    rc = 0;
done:
    s_rows_release(&rows);
    es_buf_release(&val);
    es_buf_release(&packed);
    es_buf_release(&rec);
    return rc;
}

//  Key of the result record with the auto-generated column set to the temporary value.
//  A key of that column alone is encoded from a one-column record written here; composite
//  keys go through the record builder.
static int
s_temp_key(const es_meta_object_t *obj, const es_local_result_t *r, size_t *col, es_buf_t *tmp,
           es_err_t *err)
{
    size_t auto_col = obj->nfields;
    for (size_t i = 0; i < obj->nkey; i++)
        if (obj->fields[obj->key[i]].auto_generated)
            auto_col = obj->key[i];
    if (auto_col == obj->nfields)
        return es_err_set(err, ES_EPROTO,
                          "%s: upload result carries a temporary key but no key column is "
                          "auto-generated",
                          obj->name);
    *col = auto_col;
    const char *name = obj->fields[auto_col].name;
    size_t nlen = strlen(name);
    es_buf_t rec;
    es_buf_init(&rec);
    int rc = 0;
    if (obj->nkey == 1 && nlen <= UINT32_MAX) {
        //  {name: temp} as map1, str32, int64: any valid MessagePack is the same key (the
        //  metadata makes an auto-generated column int or number, which take an int as is).
        uint8_t b[9];
        b[0] = 0x81;
        b[1] = 0xdb;
        for (int i = 0; i < 4; i++)
            b[2 + i] = (uint8_t)((uint64_t)nlen >> (8 * (3 - i)));
        es_buf_append(&rec, b, 6);
        es_buf_append(&rec, name, nlen);
        b[0] = 0xd3;
        for (int i = 0; i < 8; i++)
            b[1 + i] = (uint8_t)((uint64_t)r->temp_value >> (8 * (7 - i)));
        es_buf_append(&rec, b, 9);
        rc = es_key_from_record(obj, rec.data, rec.len, tmp, err);
        es_buf_release(&rec);
        return rc;
    }
    es_record_builder_t *b = es_record_builder_new(obj);
    for (size_t i = 0; i < obj->nkey && rc == 0; i++) {
        if (obj->key[i] == auto_col)
            continue;
        rc = s_copy_col(b, obj, obj->key[i], r->rec, r->rec_len, err) < 0 ? -1 : 0;
    }
    es_value_t v = {.type = ES_V_INT, .u.i = r->temp_value};
    if (rc == 0 && es_record_builder_set(b, name, nlen, &v, err))
        rc = s_col_err(err, obj);
    if (rc == 0 && (es_record_builder_end(b, &rec, err) ||
                    es_key_from_record(obj, rec.data, rec.len, tmp, err)))
        rc = -1;
    es_buf_release(&rec);
    es_record_builder_destroy(&b);
    return rc;
}

//  es_local_check_result, leaving the result's key in pk and, for a result naming a temporary
//  key, that key in tmp and its column in *col (so that the apply works neither out again).
static int
s_check_result(es_txn_t *txn, const char *service, const es_local_result_t *r, es_buf_t *pk,
               es_buf_t *tmp, size_t *col, es_err_t *err)
{
    const es_meta_object_t *obj = r->object;
    if (es_key_from_record(obj, r->rec, r->rec_len, pk, err)) {
        es_err_prefix(err, "upload result");
        return -1;
    }
    //  The answer must be about a change we sent: the pending change at its rowId, of this
    //  object and of this key (or of the temporary key the server replaced). A rowId with no
    //  pending change any more changes nothing; a mismatch is refused, so a confused answer
    //  can never delete or overwrite another key's pending changes.
    es_local_change_t sent;
    int found = s_hist_get(txn, service, r->row_id, &sent, err);
    if (found <= 0)
        return found;
    if (sent.object_len != strlen(obj->name) || memcmp(sent.object, obj->name, sent.object_len))
        return es_err_set(err, ES_EPROTO,
                          "%s: upload result for rowId %llu, which was sent for %.*s", obj->name,
                          (unsigned long long)r->row_id, (int)sent.object_len, sent.object);
    if (r->has_temp) {
        if (r->temp_value >= 0 || s_temp_key(obj, r, col, tmp, err) || sent.pk_len != tmp->len ||
            memcmp(sent.pk, tmp->data, tmp->len))
            return es_err_set(err, ES_EPROTO,
                              "%s: upload result for rowId %llu names a temporary key that was "
                              "not sent",
                              obj->name, (unsigned long long)r->row_id);
    } else if (sent.pk_len != pk->len || memcmp(sent.pk, pk->data, pk->len)) {
        return es_err_set(err, ES_EPROTO,
                          "%s: upload result for rowId %llu has another key than sent", obj->name,
                          (unsigned long long)r->row_id);
    }
    return 1;
}

int
es_local_check_result(es_txn_t *txn, const char *service, const es_local_result_t *r, es_err_t *err)
{
    assert(txn && service && r && r->object);
    es_buf_t pk, tmp;
    es_buf_init(&pk);
    es_buf_init(&tmp);
    size_t col = 0;
    int rc = s_check_result(txn, service, r, &pk, &tmp, &col, err);
    es_buf_release(&tmp);
    es_buf_release(&pk);
    return rc;
}

//  The usual answer to a create sent under a temporary key: every pending change of that key
//  is covered by the answer, the server key has no local state of its own, and no untracked
//  edit marks the baseline. What the general path (rewrite the key everywhere, then apply)
//  leaves behind is then known without rewriting anything: no hist, pend or orig rows of either
//  key, no main row under the temporary key, and the server's record (or nothing, for a
//  delete) under its key. 1 applied, 0 not that case (nothing written), -1 with err.
static int
s_apply_temp_fast(es_txn_t *txn, const char *service, const es_local_result_t *r, bool is_delete,
                  const s_tables_t *t, const es_buf_t *tmp, const es_buf_t *pk,
                  const char *checksum, size_t cslen, es_err_t *err)
{
    const es_meta_object_t *obj = r->object;
    uint32_t count, rcount;
    uint64_t last, rlast;
    //  Each table's rows of the temporary key are read last, just before they are deleted: the
    //  store's cursor still rests on them then (see es_txn_del).
    if (s_pend_get(txn, t, pk->data, pk->len, &rcount, &rlast, err) ||
        s_pend_get(txn, t, tmp->data, tmp->len, &count, &last, err))
        return -1;
    if (rcount > 0 || count == 0 || last > r->row_id)
        return 0;
    //  The baseline the general path would leave under the server key: its own, else the
    //  temporary key's (checked as the rewrite checks it).
    const void *v;
    size_t vlen;
    int oreal = es_txn_get(txn, t->orig.data, pk->data, pk->len, &v, &vlen, err);
    if (oreal < 0)
        return -1;
    uint8_t mark = 0;
    if (oreal == 1)
        mark = vlen >= 1 ? ((const uint8_t *)v)[0] & S_ORIG_UNTRACKED : 0;
    int otmp = es_txn_get(txn, t->orig.data, tmp->data, tmp->len, &v, &vlen, err);
    if (otmp < 0)
        return -1;
    if (otmp == 1) {
        const char *cs;
        size_t n;
        const void *rec;
        size_t rlen;
        if (vlen < 1 || es_store_rec_unpack((const uint8_t *)v + 1, vlen - 1, &cs, &n, &rec, &rlen))
            return es_err_set(err, ES_ESTORE, "%s: orig row is malformed", obj->name);
        if (oreal == 0)
            mark = ((const uint8_t *)v)[0] & S_ORIG_UNTRACKED;
    }
    if (mark)
        return 0;
    int mtmp = es_txn_get(txn, t->main.data, tmp->data, tmp->len, &v, &vlen, err);
    if (mtmp < 0)
        return -1;
    if (mtmp == 1) {
        const char *cs;
        size_t n;
        const void *rec;
        size_t rlen;
        if (es_store_rec_unpack(v, vlen, &cs, &n, &rec, &rlen))
            return es_err_set(err, ES_ESTORE, "%s: main row is malformed", obj->name);
    }
    int rc;
    if (count == 1 && last == r->row_id) {
        //  The key's one row is the one at row_id, which s_check_result found to be this key's:
        //  no scan for it.
        rc = s_hist_del(txn, service, r->row_id, err);
    } else {
        s_rows_t rows = {0};
        if (s_hist_collect(txn, service, 1, last, obj->name, tmp->data, tmp->len, count, &rows,
                           err)) {
            s_rows_release(&rows);
            return -1;
        }
        if (rows.n != count) { //  pend disagrees with hist: the general path sorts that out
            s_rows_release(&rows);
            return 0;
        }
        rc = s_rows_delete(txn, service, &rows, err);
        s_rows_release(&rows);
    }
    if (rc || s_pend_put(txn, t, tmp->data, tmp->len, 0, 0, err))
        return -1;
    if ((otmp == 1 && es_txn_del(txn, t->orig.data, tmp->data, tmp->len, err) < 0) ||
        (oreal == 1 && es_txn_del(txn, t->orig.data, pk->data, pk->len, err) < 0) ||
        (mtmp == 1 && es_txn_del(txn, t->main.data, tmp->data, tmp->len, err) < 0))
        return -1;
    if (is_delete)
        return es_txn_del(txn, t->main.data, pk->data, pk->len, err) < 0 ? -1 : 1;
    es_buf_t packed;
    es_buf_init(&packed);
    es_store_rec_pack(&packed, checksum, cslen, r->rec, r->rec_len);
    rc = es_txn_put(txn, t->main.data, pk->data, pk->len, packed.data, packed.len, err);
    es_buf_release(&packed);
    return rc ? -1 : 1;
}

int
es_local_apply_result(es_txn_t *txn, const char *service, const es_local_result_t *r, bool remove,
                      es_err_t *err)
{
    assert(txn && service && r && r->object);
    const es_meta_object_t *obj = r->object;
    const char *checksum = r->checksum ? r->checksum : "";
    size_t cslen = strlen(checksum);
    if (cslen > UINT16_MAX)
        return es_err_set(err, ES_EPROTO, "%s: upload result checksum of %zu bytes", obj->name,
                          cslen);
    es_buf_t pk, tmp, packed, val, rec;
    es_buf_init(&pk);
    es_buf_init(&tmp);
    //  0. Only an answer about a change we sent (see es_local_check_result).
    size_t col = 0;
    int found = s_check_result(txn, service, r, &pk, &tmp, &col, err);
    if (found <= 0) {
        es_buf_release(&tmp);
        es_buf_release(&pk);
        return found;
    }
    s_tables_t t;
    s_tables_init(&t, obj->name);
    es_buf_init(&packed);
    es_buf_init(&val);
    es_buf_init(&rec);
    s_rows_t rows = {0};
    int rc = -1;
    //  2. removeAfterUpload (ahead of 1., whose short way needs it)
    bool is_delete = r->is_delete || remove;
    //  1. temporary key -> server key
    if (r->has_temp) {
        if (tmp.len != pk.len || memcmp(tmp.data, pk.data, pk.len) != 0) {
            int fast =
                s_apply_temp_fast(txn, service, r, is_delete, &t, &tmp, &pk, checksum, cslen, err);
            if (fast != 0) {
                rc = fast < 0 ? -1 : 0;
                goto done;
            }
        }
        es_value_t real_v;
        if (es_record_get(r->rec, r->rec_len, obj->fields[col].name, &real_v) != 1) {
            es_err_set(err, ES_EPROTO, "%s: upload result: key column '%s' missing", obj->name,
                       obj->fields[col].name);
            goto done;
        }
        if ((tmp.len != pk.len || memcmp(tmp.data, pk.data, pk.len) != 0) &&
            s_rewrite_key(txn, service, obj, &t, &tmp, &pk, col, &real_v, err))
            goto done;
    }
    //  3. hist rows of this key up to the result's rowId
    uint32_t count;
    uint64_t last;
    if (s_pend_get(txn, &t, pk.data, pk.len, &count, &last, err))
        goto done;
    if (count > 0) {
        uint64_t upto = r->row_id < last ? r->row_id : last;
        if (s_hist_collect(txn, service, 1, upto, obj->name, pk.data, pk.len, count, &rows, err) ||
            s_rows_delete(txn, service, &rows, err))
            goto done;
        if (rows.n > count) {
            es_err_set(err, ES_ESTORE, "%s: pend count below hist rows", obj->name);
            goto done;
        }
        count -= (uint32_t)rows.n;
        if (s_pend_put(txn, &t, pk.data, pk.len, count, last, err))
            goto done;
    }
    //  4. apply, or make the server version the new baseline: when newer pending edits exist,
    //  or an untracked edit (made after the change was sent, or not carried by it) is in main.
    uint8_t mark;
    if (s_orig_untracked(txn, &t, pk.data, pk.len, &mark, err))
        goto done;
    if (count == 0 && !mark) {
        if (es_txn_del(txn, t.orig.data, pk.data, pk.len, err) < 0)
            goto done;
        if (is_delete) {
            if (es_txn_del(txn, t.main.data, pk.data, pk.len, err) < 0)
                goto done;
        } else {
            es_store_rec_pack(&packed, checksum, cslen, r->rec, r->rec_len);
            if (es_txn_put(txn, t.main.data, pk.data, pk.len, packed.data, packed.len, err))
                goto done;
        }
        rc = 0;
        goto done;
    }
    es_store_rec_pack(&packed, checksum, cslen, r->rec, r->rec_len);
    uint8_t code = (uint8_t)((is_delete ? ES_CHG_CREATE : ES_CHG_UPDATE) | mark);
    es_buf_append(&val, &code, 1);
    es_buf_append(&val, packed.data, packed.len);
    if (es_txn_put(txn, t.orig.data, pk.data, pk.len, val.data, val.len, err))
        goto done;
    const void *mv;
    size_t mvlen;
    int got = es_txn_get(txn, t.main.data, pk.data, pk.len, &mv, &mvlen, err);
    if (got < 0)
        goto done;
    if (got == 1) {
        const char *ocs;
        size_t ocslen;
        const void *mrec;
        size_t mrlen;
        if (es_store_rec_unpack(mv, mvlen, &ocs, &ocslen, &mrec, &mrlen)) {
            es_err_set(err, ES_ESTORE, "%s: main row is malformed", obj->name);
            goto done;
        }
        es_buf_append(&rec, mrec, mrlen);
        es_store_rec_pack(&packed, checksum, cslen, rec.data, rec.len);
        if (es_txn_put(txn, t.main.data, pk.data, pk.len, packed.data, packed.len, err))
            goto done;
    }
    s_rows_release(&rows);
    if (count > 0 && r->row_id < UINT64_MAX &&
        s_hist_collect(txn, service, r->row_id + 1, last, obj->name, pk.data, pk.len, count, &rows,
                       err))
        goto done;
    for (size_t i = 0; i < rows.n; i++) {
        es_local_change_t c;
        if (es_local_change_decode(&c, rows.rows[i].rsn, rows.rows[i].val.data,
                                   rows.rows[i].val.len, err))
            goto done;
        c.checksum = checksum;
        c.checksum_len = cslen;
        if (s_hist_put(txn, service, &c, err))
            goto done;
    }
    rc = 0;
done:
    s_rows_release(&rows);
    es_buf_release(&rec);
    es_buf_release(&val);
    es_buf_release(&packed);
    es_buf_release(&tmp);
    es_buf_release(&pk);
    s_tables_release(&t);
    return rc;
}
