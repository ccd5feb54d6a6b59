//  srv_download - object and object-service level download: change-log scans between a delta
//  and a snapshot sequence, resumable batch contexts, OData filters, keys-only listings.
#include "common/es_mem.h"
#include "protocol/es_key.h"
#include "protocol/es_odata.h"
#include "protocol/es_record.h"
#include "server/srv.h"
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_BATCH_MAX 2147483647ull //  $batchsize upper bound, a 32-bit int (0 = everything)

//  One object's part of a download request and its result.
typedef struct {
    size_t obj;                 //  object index
    const es_meta_object_t *mo; //  its metadata
    uint64_t lo;                //  delta: changes after this sequence (0 = initial)
    uint64_t pos;               //  resume after this sequence
    uint64_t hi;                //  snapshot: changes up to this sequence
    es_odata_t *filter;         //  $filter, or NULL
    char *warning;              //  filter parse error, or NULL
    yajl_val odatastring;       //  service level: echoed back in the context
    bool keys_only;             //  $select of the key columns
    es_buf_t from_key;          //  keys-only: resume after this key (empty = from the start)
    es_buf_t last_key;          //  keys-only: last key emitted
    size_t n, created, updated, deleted; //  emitted
    uint64_t last;                       //  sequence of the last record emitted
    bool more;                           //  another matching record exists beyond this batch
} s_dl_t;

typedef struct {
    srv_data_t *data; //  store and metadata
    es_txn_t *txn;    //  read transaction
    s_dl_t *d;        //  object being scanned
    size_t limit;     //  records per batch, 0 = all
    es_buf_t *out;    //  records array being written
} s_scan_t;

static void
s_dl_release(s_dl_t *d)
{
    es_odata_destroy(&d->filter);
    free(d->warning);
    es_buf_release(&d->from_key);
    es_buf_release(&d->last_key);
}

//  A sequence number sent as a decimal string (or a JSON integer). -1 with err naming path.
static int
s_parse_seq(yajl_val v, const char *path, uint64_t *out, es_err_t *err)
{
    if (v && YAJL_IS_INTEGER(v) && YAJL_GET_INTEGER(v) >= 0) {
        *out = (uint64_t)YAJL_GET_INTEGER(v);
        return 0;
    }
    const char *s = v && YAJL_IS_STRING(v) ? YAJL_GET_STRING(v) : NULL;
    size_t n = s ? strlen(s) : 0;
    if (!s || n == 0 || n > 19 || strspn(s, "0123456789") != n)
        return es_err_set(err, ES_EINVAL, "%s: expected a decimal sequence number", path);
    *out = strtoull(s, NULL, 10);
    return 0;
}

static int
s_parse_batchsize(const char *text, size_t *out, es_err_t *err)
{
    if (!text) {
        *out = 0;
        return 0;
    }
    size_t n = strlen(text);
    if (n == 0 || n > 10 || strspn(text, "0123456789") != n ||
        strtoull(text, NULL, 10) > S_BATCH_MAX)
        return es_err_set(err, ES_EINVAL,
                          "$batchsize: expected an integer 0..%llu (0 = all records), got '%.40s'",
                          S_BATCH_MAX, text);
    *out = (size_t)strtoull(text, NULL, 10);
    return 0;
}

static void
s_set_filter(s_dl_t *d, const char *text)
{
    if (!text || !*text)
        return;
    es_err_t err;
    d->filter = es_odata_new(text, d->mo, &err);
    //  Foundry documents that a filter it cannot use yields every record; say so.
    if (!d->filter)
        d->warning = es_strdup(err.what);
}

//  "$filter=<f>&$expand=<e>" -> the filter text (caller frees) or NULL.
static char *
s_odata_filter(const char *odata)
{
    const char *p = odata;
    while (p && *p) {
        const char *end = strstr(p, "&$");
        size_t n = end ? (size_t)(end - p) : strlen(p);
        if (n >= 8 && strncmp(p, "$filter=", 8) == 0)
            return es_strndup(p + 8, n - 8);
        p = end ? end + 1 : NULL;
    }
    return NULL;
}

static int
s_hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

//  Read objs.<Obj> = {delta?, bc?} into d. hi_now: the current snapshot.
static int
s_parse_entry(s_dl_t *d, yajl_val entry, uint64_t hi_now, es_err_t *err)
{
    char path[160];
    d->lo = 0;
    d->hi = hi_now;
    if (entry && !YAJL_IS_OBJECT(entry))
        return es_err_set(err, ES_EINVAL, "delta_context.objs.%s: expected an object", d->mo->name);
    yajl_val delta = srv_json_get(entry, "delta"), bc = srv_json_get(entry, "bc");
    if (delta && !YAJL_IS_NULL(delta)) {
        snprintf(path, sizeof path, "delta_context.objs.%s.delta", d->mo->name);
        if (s_parse_seq(delta, path, &d->lo, err))
            return -1;
    }
    d->pos = d->lo;
    if (bc && !YAJL_IS_NULL(bc)) {
        if (!YAJL_IS_OBJECT(bc))
            return es_err_set(err, ES_EINVAL, "delta_context.objs.%s.bc: expected an object",
                              d->mo->name);
        yajl_val bid = srv_json_get(bc, "batchid");
        if (d->keys_only) {
            const char *hex = bid && YAJL_IS_STRING(bid) ? YAJL_GET_STRING(bid) : NULL;
            size_t n = hex ? strlen(hex) : 0;
            if (!hex || n % 2)
                return es_err_set(err, ES_EINVAL,
                                  "delta_context.objs.%s.bc.batchid: expected a hex key",
                                  d->mo->name);
            for (size_t i = 0; i < n; i += 2) {
                int a = s_hexval(hex[i]), b = s_hexval(hex[i + 1]);
                if (a < 0 || b < 0)
                    return es_err_set(err, ES_EINVAL,
                                      "delta_context.objs.%s.bc.batchid: expected a hex key",
                                      d->mo->name);
                es_buf_putc(&d->from_key, (char)(a * 16 + b));
            }
            return 0;
        }
        snprintf(path, sizeof path, "delta_context.objs.%s.bc.bdelta", d->mo->name);
        if (s_parse_seq(srv_json_get(bc, "bdelta"), path, &d->lo, err))
            return -1;
        snprintf(path, sizeof path, "delta_context.objs.%s.bc.batchid", d->mo->name);
        if (s_parse_seq(bid, path, &d->pos, err))
            return -1;
        snprintf(path, sizeof path, "delta_context.objs.%s.bc.bhi", d->mo->name);
        if (s_parse_seq(srv_json_get(bc, "bhi"), path, &d->hi, err))
            return -1;
        if (d->pos < d->lo || d->hi < d->pos || d->hi > hi_now)
            return es_err_set(err, ES_EINVAL,
                              "delta_context.objs.%s.bc: inconsistent batch context", d->mo->name);
    }
    return 0;
}

//  Append obj JSON with "_metadata" added inside: out holds "...{...}" just written from start.
static void
s_close_with_meta(es_buf_t *out, size_t start, const char *action, const char *cs, size_t cslen)
{
    if (out->len > start && out->data[out->len - 1] == '}')
        out->len--;
    if (out->len > start + 1)
        es_buf_putc(out, ',');
    es_buf_printf(out, "\"_metadata\":{\"action\":\"%s\",\"checksum\":\"%.*s\"}}", action,
                  (int)cslen, cs);
}

static int
s_scan_cb(void *vctx, const void *key, size_t klen, const void *val, size_t vlen, es_err_t *err)
{
    s_scan_t *s = vctx;
    s_dl_t *d = s->d;
    (void)vlen;
    if (klen != 8)
        return es_err_set(err, ES_ESTORE, "change log of %s: bad key", d->mo->name);
    uint64_t seq = 0;
    for (int i = 0; i < 8; i++)
        seq = (seq << 8) | ((const unsigned char *)key)[i];
    if (seq > d->hi)
        return 1;
    srv_row_t row;
    int rc = srv_data_get(s->data, s->txn, d->obj, val, vlen, &row, err);
    if (rc < 0)
        return -1;
    if (rc == 0 || row.seq != seq)
        return 0; //  a stale entry: the row moved on
    if (row.deleted && d->lo == 0)
        return 0; //  initial download: nothing to delete on the client
    if (d->filter && !es_odata_match_record(d->filter, row.rec, row.len))
        return 0;
    if (s->limit && d->n == s->limit) {
        d->more = true;
        return 1;
    }
    size_t start = s->out->len;
    if (d->n)
        es_buf_putc(s->out, ',');
    start = s->out->len;
    if (row.deleted) {
        if (es_key_to_json(d->mo, val, vlen, s->out, err))
            return -1;
        s_close_with_meta(s->out, start, "delete", "", 0);
        d->deleted++;
    } else {
        if (es_record_to_json(row.rec, row.len, s->out, err))
            return -1;
        bool created = row.cseq > d->lo;
        s_close_with_meta(s->out, start, created ? "create" : "update", row.checksum, row.cslen);
        if (created)
            d->created++;
        else
            d->updated++;
    }
    d->n++;
    d->last = seq;
    return 0;
}

static int
s_keys_cb(void *vctx, const void *key, size_t klen, const void *val, size_t vlen, es_err_t *err)
{
    s_scan_t *s = vctx;
    s_dl_t *d = s->d;
    if (d->from_key.len && klen == d->from_key.len && memcmp(key, d->from_key.data, klen) == 0)
        return 0; //  the last key of the previous batch
    srv_row_t row;
    if (srv_row_unpack(val, vlen, &row))
        return es_err_set(err, ES_ESTORE, "%s: corrupt row", d->mo->name);
    if (row.deleted)
        return 0;
    if (d->filter && !es_odata_match_record(d->filter, row.rec, row.len))
        return 0;
    if (s->limit && d->n == s->limit) {
        d->more = true;
        return 1;
    }
    if (d->n)
        es_buf_putc(s->out, ',');
    if (es_key_to_json(d->mo, key, klen, s->out, err))
        return -1;
    es_buf_reset(&d->last_key);
    es_buf_append(&d->last_key, key, klen);
    d->n++;
    return 0;
}

static int
s_scan(srv_data_t *data, es_txn_t *txn, s_dl_t *d, size_t limit, es_buf_t *out, es_err_t *err)
{
    s_scan_t s = {data, txn, d, limit, out};
    if (d->keys_only)
        return es_txn_iter(txn, srv_data_rec_table(data, d->obj),
                           d->from_key.len ? d->from_key.data : NULL, d->from_key.len, s_keys_cb,
                           &s, err);
    if (d->pos >= d->hi)
        return 0;
    unsigned char from[8];
    uint64_t f = d->pos + 1;
    for (int i = 7; i >= 0; i--) {
        from[i] = (unsigned char)(f & 0xff);
        f >>= 8;
    }
    return es_txn_iter(txn, srv_data_chg_table(data, d->obj), from, 8, s_scan_cb, &s, err);
}

static void
s_write_meta(es_buf_t *b, const s_dl_t *d)
{
    es_buf_printf(b,
                  "\"_metadata\":{\"recordCount\":%zu,\"createdRecords\":%zu,"
                  "\"updatedRecords\":%zu,\"deletedRecords\":%zu}",
                  d->n, d->created, d->updated, d->deleted);
    if (d->warning) {
        es_buf_puts(b, ",\"warning\":");
        es_buf_json_str(b, d->warning, strlen(d->warning));
    }
}

//  delta_context.objs.<Obj> for this response. any_more: another object of the same response
//  still has records, so a finished object must not start a new window in the next batch.
static void
s_write_ctx(es_buf_t *b, const s_dl_t *d, bool any_more)
{
    es_buf_printf(b, "\"%s\":{", d->mo->name);
    if (d->keys_only) {
        if (d->more) {
            es_buf_puts(b, "\"bc\":{\"batchid\":\"");
            for (size_t i = 0; i < d->last_key.len; i++)
                es_buf_printf(b, "%02x", (unsigned char)d->last_key.data[i]);
            es_buf_puts(b, "\"}");
        }
    } else if (d->more || any_more) {
        //  A finished object whose siblings go on gets an empty window (hi, hi] until the
        //  last batch, so it neither starts a new window nor repeats records.
        uint64_t batchid = d->more ? d->last : d->hi;
        es_buf_printf(b,
                      "\"delta\":\"%" PRIu64 "\",\"bc\":{\"bdelta\":\"%" PRIu64
                      "\",\"batchid\":\"%" PRIu64 "\",\"bhi\":\"%" PRIu64 "\"}",
                      d->lo, d->lo, batchid, d->hi);
    } else {
        es_buf_printf(b, "\"delta\":\"%" PRIu64 "\"", d->hi);
    }
    if (d->odatastring && YAJL_IS_STRING(d->odatastring)) {
        if (b->data[b->len - 1] != '{')
            es_buf_putc(b, ',');
        es_buf_puts(b, "\"odatastring\":");
        srv_json_write(b, d->odatastring);
    }
    es_buf_putc(b, '}');
}

//  $select: must name exactly the key columns. 1 keys-only, 0 absent, -1 error.
static int
s_parse_select(const es_meta_object_t *mo, const char *sel, es_err_t *err)
{
    if (!sel)
        return 0;
    bool seen[64] = {false};
    size_t nseen = 0;
    const char *p = sel;
    while (*p) {
        while (*p == ' ')
            p++;
        size_t n = strcspn(p, ",");
        size_t m = n;
        while (m && p[m - 1] == ' ')
            m--;
        int idx = es_meta_field_index(mo, p, m);
        if (idx < 0)
            return es_err_set(err, ES_EINVAL, "$select: unknown column '%.*s' of %s", (int)m, p,
                              mo->name);
        bool is_key = false;
        for (size_t k = 0; k < mo->nkey && k < 64; k++)
            if (mo->key[k] == (size_t)idx) {
                is_key = true;
                if (!seen[k])
                    nseen++;
                seen[k] = true;
            }
        if (!is_key)
            return es_err_set(err, ES_EINVAL,
                              "$select: only the primary key columns of %s are supported, "
                              "got '%.*s'",
                              mo->name, (int)m, p);
        p += n;
        if (*p == ',')
            p++;
    }
    if (nseen != mo->nkey)
        return es_err_set(err, ES_EINVAL, "$select: must name every primary key column of %s",
                          mo->name);
    return 1;
}

static void
s_download_object(srv_t *srv, int obj, const srv_query_t *q, yajl_val root, srv_resp_t *resp)
{
    es_err_t err;
    size_t limit = 0;
    const es_meta_t *meta = srv_data_meta(srv->data);
    s_dl_t d = {.obj = (size_t)obj, .mo = &meta->objects[obj]};
    es_buf_init(&d.from_key);
    es_buf_init(&d.last_key);
    es_txn_t *txn = NULL;
    es_buf_t *b = &resp->body;
    if (s_parse_batchsize(q->batchsize, &limit, &err)) {
        srv_resp_error(resp, 400, 400, "%s", err.what);
        goto done;
    }
    yajl_val dc = srv_json_get(root, "delta_context");
    if (dc && !YAJL_IS_NULL(dc) && !YAJL_IS_OBJECT(dc)) {
        srv_resp_error(resp, 400, 400, "delta_context: expected an object");
        goto done;
    }
    yajl_val objs = srv_json_get(dc, "objs");
    if (objs && !YAJL_IS_NULL(objs) && !YAJL_IS_OBJECT(objs)) {
        srv_resp_error(resp, 400, 400, "delta_context.objs: expected an object");
        goto done;
    }
    yajl_val entry = srv_json_get(objs, d.mo->name);
    int ko = s_parse_select(d.mo, q->select, &err);
    if (ko < 0) {
        srv_resp_error(resp, 400, 400, "%s", err.what);
        goto done;
    }
    d.keys_only = ko == 1;
    txn = es_store_begin(srv_data_store(srv->data), false, &err);
    uint64_t hi_now;
    if (!txn || srv_data_max_seq(srv->data, txn, &hi_now, &err)) {
        srv_resp_error(resp, 500, 500, "store: %s", err.what);
        goto done;
    }
    if (s_parse_entry(&d, entry, hi_now, &err)) {
        srv_resp_error(resp, 400, 400, "%s", err.what);
        goto done;
    }
    if (d.keys_only && d.lo) {
        srv_resp_error(resp, 400, 400, "$select: a keys-only listing takes no delta");
        goto done;
    }
    s_set_filter(&d, q->filter);
    es_buf_reset(b);
    es_buf_puts(b, "{\"opstatus\":0,\"httpStatusCode\":200,\"records\":[");
    if (s_scan(srv->data, txn, &d, limit, b, &err)) {
        srv_resp_error(resp, 500, 500, "store: %s", err.what);
        goto done;
    }
    es_buf_puts(b, "],");
    s_write_meta(b, &d);
    es_buf_printf(b, ",\"delta_context\":{\"curobj\":\"%s\",\"objs\":{", d.mo->name);
    s_write_ctx(b, &d, false);
    es_buf_printf(b, "}},\"hasMoreRecords\":\"%s\"", d.more ? "true" : "false");
    if (d.warning) {
        es_buf_puts(b, ",\"warning\":");
        es_buf_json_str(b, d.warning, strlen(d.warning));
    }
    es_buf_putc(b, '}');
    resp->status = 200;
    srv_stats_count(srv->stats, d.keys_only ? SRV_K_KEYS : SRV_K_DOWNLOAD);
done:
    es_txn_abort(&txn);
    s_dl_release(&d);
}

static void
s_download_service(srv_t *srv, const srv_query_t *q, yajl_val root, srv_resp_t *resp)
{
    es_err_t err;
    size_t limit = 0;
    const es_meta_t *meta = srv_data_meta(srv->data);
    size_t nobj = meta->nobjects;
    s_dl_t *ds = es_calloc(nobj, sizeof *ds);
    for (size_t i = 0; i < nobj; i++) {
        ds[i].obj = i;
        ds[i].mo = &meta->objects[i];
        es_buf_init(&ds[i].from_key);
        es_buf_init(&ds[i].last_key);
    }
    es_txn_t *txn = NULL;
    es_buf_t *b = &resp->body;
    if (!q->offline || strcmp(q->offline, "true") != 0) {
        srv_resp_error(resp, 400, 400,
                       "object service download needs the query parameter offline=true");
        goto done;
    }
    if (s_parse_batchsize(q->batchsize, &limit, &err)) {
        srv_resp_error(resp, 400, 400, "%s", err.what);
        goto done;
    }
    yajl_val dc = srv_json_get(root, "delta_context");
    if (dc && !YAJL_IS_NULL(dc) && !YAJL_IS_OBJECT(dc)) {
        srv_resp_error(resp, 400, 400, "delta_context: expected an object");
        goto done;
    }
    yajl_val objs = srv_json_get(dc, "objs");
    if (objs && !YAJL_IS_NULL(objs) && !YAJL_IS_OBJECT(objs)) {
        srv_resp_error(resp, 400, 400, "delta_context.objs: expected an object");
        goto done;
    }
    for (size_t i = 0; objs && YAJL_IS_OBJECT(objs) && i < objs->u.object.len; i++)
        if (srv_data_object_index(srv->data, objs->u.object.keys[i]) < 0) {
            srv_resp_error(resp, 400, 400, "delta_context.objs: unknown object '%s'",
                           objs->u.object.keys[i]);
            goto done;
        }
    txn = es_store_begin(srv_data_store(srv->data), false, &err);
    uint64_t hi_now;
    if (!txn || srv_data_max_seq(srv->data, txn, &hi_now, &err)) {
        srv_resp_error(resp, 500, 500, "store: %s", err.what);
        goto done;
    }
    for (size_t i = 0; i < nobj; i++) {
        yajl_val entry = srv_json_get(objs, ds[i].mo->name);
        if (s_parse_entry(&ds[i], entry, hi_now, &err)) {
            srv_resp_error(resp, 400, 400, "%s", err.what);
            goto done;
        }
        yajl_val od = srv_json_get(entry, "odatastring");
        if (od && !YAJL_IS_NULL(od) && !YAJL_IS_STRING(od)) {
            srv_resp_error(resp, 400, 400, "delta_context.objs.%s.odatastring: expected a string",
                           ds[i].mo->name);
            goto done;
        }
        if (od && YAJL_IS_STRING(od)) {
            ds[i].odatastring = od;
            char *f = s_odata_filter(YAJL_GET_STRING(od));
            s_set_filter(&ds[i], f);
            free(f);
        }
    }
    es_buf_reset(b);
    es_buf_puts(b, "{\"opstatus\":0,\"httpStatusCode\":200,\"Objects\":[");
    bool any_more = false;
    for (size_t i = 0; i < nobj; i++) {
        es_buf_printf(b, "%s{\"name\":\"%s\",\"opstatus\":0,\"httpStatusCode\":200,\"records\":[",
                      i ? "," : "", ds[i].mo->name);
        if (s_scan(srv->data, txn, &ds[i], limit, b, &err)) {
            srv_resp_error(resp, 500, 500, "store: %s", err.what);
            goto done;
        }
        es_buf_puts(b, "],");
        s_write_meta(b, &ds[i]);
        es_buf_putc(b, '}');
        any_more = any_more || ds[i].more;
    }
    es_buf_printf(b, "],\"delta_context\":{\"curobj\":\"%s\",\"objs\":{",
                  nobj ? ds[nobj - 1].mo->name : "");
    for (size_t i = 0; i < nobj; i++) {
        if (i)
            es_buf_putc(b, ',');
        s_write_ctx(b, &ds[i], any_more);
    }
    es_buf_printf(b, "}},\"hasMoreRecords\":\"%s\"}", any_more ? "true" : "false");
    resp->status = 200;
    srv_stats_count(srv->stats, SRV_K_DOWNLOAD_SVC);
done:
    es_txn_abort(&txn);
    for (size_t i = 0; i < nobj; i++)
        s_dl_release(&ds[i]);
    free(ds);
}

void
srv_download(srv_t *srv, int obj, const srv_query_t *q, const char *body, size_t len,
             srv_resp_t *resp)
{
    es_err_t err;
    yajl_val root = srv_json_parse(body, len, &err);
    if (!root) {
        srv_resp_error(resp, 400, 400, "%s", err.what);
        return;
    }
    if (obj >= 0)
        s_download_object(srv, obj, q, root, resp);
    else
        s_download_service(srv, q, root, resp);
    yajl_tree_free(root);
}
