//  srv_upload - upload: records applied in rowId order, each answered with one full record or a
//  per-record error; auto-generated keys; conflict policies; the upload cache (request ids kept
//  24 h, the apply and the stored answer committed in one transaction).
#include "common/es_log.h"
#include "common/es_mem.h"
#include "protocol/es_key.h"
#include "protocol/es_record.h"
#include "server/srv.h"
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define S_CACHE_PROGRESS 1 //  upc value state: being applied (older versions; now in memory)
#define S_CACHE_DONE 2     //  upc value state: applied, answer stored

typedef struct {
    yajl_val node;  //  the record object
    yajl_val meta;  //  its _metadata
    int64_t row_id; //  rowId
    size_t index;   //  position in the request (tie-break)
} s_item_t;

typedef struct {
    char *name;    //  object name as the client sent it
    es_buf_t recs; //  answered records, comma-separated
    size_t n;      //  how many
} s_group_t;

typedef struct {
    size_t obj;   //  object index
    int64_t temp; //  temporary negative key the client sent
    int64_t real; //  key assigned
} s_temp_t;

typedef struct {
    srv_t *srv;                     //  server
    int obj;                        //  endpoint object, or -1 for the service endpoint
    s_item_t *items;                //  records in rowId order
    size_t n;                       //  how many
    const char *cache_id;           //  request id to store the answer under, or NULL
    es_record_builder_t **builders; //  one per object
    //  Per attempt (es_store_write may run the function again after growing the map):
    es_buf_t out;      //  response body
    s_group_t *groups; //  answers by object, in order of first appearance
    size_t ngroups;    //  how many
    s_temp_t *temps;   //  temporary keys mapped in this request
    size_t ntemps;     //  how many
    uint64_t applied[SRV_MAX_OBJECTS], rejected[SRV_MAX_OBJECTS], conflicts;
    size_t success, failure; //  records answered
} s_up_t;

static int
s_item_cmp(const void *a, const void *b)
{
    const s_item_t *x = a, *y = b;
    if (x->row_id != y->row_id)
        return x->row_id < y->row_id ? -1 : 1;
    return x->index < y->index ? -1 : x->index > y->index;
}

static s_group_t *
s_group(s_up_t *u, const char *name)
{
    for (size_t i = 0; i < u->ngroups; i++)
        if (strcmp(u->groups[i].name, name) == 0)
            return &u->groups[i];
    u->groups = es_realloc(u->groups, (u->ngroups + 1) * sizeof *u->groups);
    s_group_t *g = &u->groups[u->ngroups++];
    g->name = es_strdup(name);
    es_buf_init(&g->recs);
    g->n = 0;
    return g;
}

static void
s_attempt_reset(s_up_t *u)
{
    for (size_t i = 0; i < u->ngroups; i++) {
        free(u->groups[i].name);
        es_buf_release(&u->groups[i].recs);
    }
    free(u->groups);
    u->groups = NULL;
    u->ngroups = 0;
    free(u->temps);
    u->temps = NULL;
    u->ntemps = 0;
    memset(u->applied, 0, sizeof u->applied);
    memset(u->rejected, 0, sizeof u->rejected);
    u->conflicts = 0;
    u->success = u->failure = 0;
    es_buf_reset(&u->out);
}

static s_group_t *
s_begin_answer(s_up_t *u, const char *name)
{
    s_group_t *g = s_group(u, name);
    if (g->n++)
        es_buf_putc(&g->recs, ',');
    return g;
}

//  A rejected record: the key columns the client sent, and _metadata with errmsg.
static void
s_reject(s_up_t *u, const char *objname, int obj, const s_item_t *it, const char *action,
         int opstatus, const char *msg)
{
    s_group_t *g = s_begin_answer(u, objname);
    es_buf_t *b = &g->recs;
    es_buf_putc(b, '{');
    if (obj >= 0) {
        const es_meta_object_t *mo = &srv_data_meta(u->srv->data)->objects[obj];
        for (size_t k = 0; k < mo->nkey; k++) {
            const char *col = mo->fields[mo->key[k]].name;
            yajl_val v = srv_json_get(it->node, col);
            if (!v)
                continue;
            es_buf_json_str(b, col, strlen(col));
            es_buf_putc(b, ':');
            srv_json_write(b, v);
            es_buf_putc(b, ',');
        }
    }
    es_buf_puts(b, "\"_metadata\":{\"action\":");
    es_buf_json_str(b, action, strlen(action));
    es_buf_printf(b, ",\"rowId\":%" PRId64 ",\"opstatus\":%d,\"errmsg\":", it->row_id, opstatus);
    es_buf_json_str(b, msg, strlen(msg));
    es_buf_puts(b, "}}");
    u->failure++;
    if (obj >= 0)
        u->rejected[obj]++;
}

//  A full record answer.
static int
s_answer(s_up_t *u, const char *objname, const es_meta_object_t *mo, const void *rec, size_t len,
         const char *action, const char *cs, size_t cslen, const s_item_t *it, bool has_temp,
         int64_t temp, es_err_t *err)
{
    s_group_t *g = s_begin_answer(u, objname);
    es_buf_t *b = &g->recs;
    size_t start = b->len;
    if (es_record_to_json(rec, len, b, err))
        return -1;
    if (b->len > start && b->data[b->len - 1] == '}')
        b->len--;
    if (b->len > start + 1)
        es_buf_putc(b, ',');
    if (has_temp) {
        for (size_t k = 0; k < mo->nkey; k++) {
            const es_meta_field_t *f = &mo->fields[mo->key[k]];
            if (f->auto_generated)
                es_buf_printf(b, "\"_%s\":%" PRId64 ",", f->name, temp);
        }
    }
    es_buf_printf(b,
                  "\"_metadata\":{\"action\":\"%s\",\"checksum\":\"%.*s\",\"rowId\":%" PRId64
                  ",\"opstatus\":0}}",
                  action, (int)cslen, cs, it->row_id);
    u->success++;
    return 0;
}

static const es_meta_field_t *
s_auto_field(const es_meta_object_t *mo)
{
    for (size_t k = 0; k < mo->nkey; k++)
        if (mo->fields[mo->key[k]].auto_generated)
            return &mo->fields[mo->key[k]];
    return NULL;
}

//  Apply one record. 0 (applied or rejected: answered either way) or -1 on a store failure.
static int
s_apply_one(s_up_t *u, es_txn_t *txn, const s_item_t *it, es_err_t *err)
{
    srv_t *srv = u->srv;
    const es_meta_t *meta = srv_data_meta(srv->data);
    char cs[SRV_CS_MAX + 1];
    es_err_t rerr;
    int rc = 0;
    es_buf_t rec, key, old;
    es_buf_init(&rec);
    es_buf_init(&key);
    es_buf_init(&old);

    yajl_val vobj = srv_json_get(it->meta, "object");
    yajl_val vact = srv_json_get(it->meta, "action");
    yajl_val vcs = srv_json_get(it->meta, "checksum");
    const char *action = vact && YAJL_IS_STRING(vact) ? YAJL_GET_STRING(vact) : "";
    const char *objname = vobj && YAJL_IS_STRING(vobj) ? YAJL_GET_STRING(vobj) : NULL;
    if (!objname && u->obj >= 0)
        objname = meta->objects[u->obj].name;
    if (!objname) {
        s_reject(u, "", -1, it, action, 400, "_metadata.object: expected an object name");
        goto done;
    }
    int obj = srv_data_object_index(srv->data, objname);
    if (obj < 0) {
        char msg[300];
        snprintf(msg, sizeof msg, "unknown object '%.200s'", objname);
        s_reject(u, objname, -1, it, action, 404, msg);
        goto done;
    }
    if (u->obj >= 0 && obj != u->obj) {
        char msg[400];
        snprintf(msg, sizeof msg, "object '%.100s' sent to the endpoint of object '%.100s'",
                 objname, meta->objects[u->obj].name);
        s_reject(u, objname, obj, it, action, 400, msg);
        goto done;
    }
    const es_meta_object_t *mo = &meta->objects[obj];
    bool create = strcmp(action, "create") == 0, update = strcmp(action, "update") == 0,
         partial = strcmp(action, "partialupdate") == 0, del = strcmp(action, "delete") == 0;
    if (!create && !update && !partial && !del) {
        char msg[200];
        snprintf(msg, sizeof msg,
                 "_metadata.action: expected create, update, partialupdate or delete, got "
                 "'%.60s'",
                 action);
        s_reject(u, objname, obj, it, action, 400, msg);
        goto done;
    }
    if (vcs && !YAJL_IS_NULL(vcs) && !YAJL_IS_STRING(vcs)) {
        s_reject(u, objname, obj, it, action, 400, "_metadata.checksum: expected a string");
        goto done;
    }
    const char *client_cs = vcs && YAJL_IS_STRING(vcs) ? YAJL_GET_STRING(vcs) : "";

    //  Auto-generated key: a create with a negative (temporary) or no value gets the next real
    //  key; later records of this request naming the temporary key get the same real key.
    const es_meta_field_t *af = s_auto_field(mo);
    bool has_temp = false;
    int64_t temp = 0;
    es_value_t ov = {.type = ES_V_NULL};
    const char *ov_col = NULL;
    if (af) {
        yajl_val kv = srv_json_get(it->node, af->name);
        es_value_t v;
        bool absent = !kv || YAJL_IS_NULL(kv);
        if (!absent && srv_json_value(kv, &v) == 0 && v.type == ES_V_INT && v.u.i < 0) {
            has_temp = true;
            temp = v.u.i;
        }
        if (create && (absent || has_temp)) {
            int64_t real;
            if (srv_data_next_auto(srv->data, txn, (size_t)obj, &real, err)) {
                rc = -1;
                goto done;
            }
            ov.type = ES_V_INT;
            ov.u.i = real;
            ov_col = af->name;
            if (has_temp) {
                u->temps = es_realloc(u->temps, (u->ntemps + 1) * sizeof *u->temps);
                u->temps[u->ntemps++] = (s_temp_t){(size_t)obj, temp, real};
            }
        } else if (has_temp) {
            for (size_t i = 0; i < u->ntemps; i++)
                if (u->temps[i].obj == (size_t)obj && u->temps[i].temp == temp) {
                    ov.type = ES_V_INT;
                    ov.u.i = u->temps[i].real;
                    ov_col = af->name;
                }
        }
    }
    if (srv_record_build(u->builders[obj], mo, it->node, NULL, 0, ov_col, &ov, &rec, &rerr) ||
        es_key_from_record(mo, rec.data, rec.len, &key, &rerr)) {
        s_reject(u, objname, obj, it, action, 400, rerr.what);
        goto done;
    }
    srv_row_t row;
    int found = srv_data_get(srv->data, txn, (size_t)obj, key.data, key.len, &row, err);
    if (found < 0) {
        rc = -1;
        goto done;
    }
    bool live = found == 1 && !row.deleted;
    if (create) {
        if (live) {
            s_reject(u, objname, obj, it, action, 409, "create: a record with this key exists");
            goto done;
        }
        if (srv_record_check_required(mo, rec.data, rec.len, &rerr)) {
            s_reject(u, objname, obj, it, action, 400, rerr.what);
            goto done;
        }
        if (af && !ov_col) {
            es_value_t v;
            if (es_record_get(rec.data, rec.len, af->name, &v) == 1 && v.type == ES_V_INT &&
                srv_data_seen_auto(srv->data, txn, (size_t)obj, v.u.i, err)) {
                rc = -1;
                goto done;
            }
        }
        if (srv_data_put(srv->data, txn, (size_t)obj, key.data, key.len, rec.data, rec.len, false,
                         cs, err) ||
            s_answer(u, objname, mo, rec.data, rec.len, "create", cs, strlen(cs), it, has_temp,
                     temp, err)) {
            rc = -1;
            goto done;
        }
        u->applied[obj]++;
        goto done;
    }
    if (!live) {
        char msg[200];
        snprintf(msg, sizeof msg, "%s: no record with this key", action);
        s_reject(u, objname, obj, it, action, 404, msg);
        goto done;
    }
    //  Conflict: the client's checksum is its view of the row; a different current checksum
    //  means the row changed on the server since the client last saw it.
    const char *policy = srv->opts->policy;
    if (strcmp(policy, "None") != 0 && client_cs[0] &&
        (strlen(client_cs) != row.cslen || memcmp(client_cs, row.checksum, row.cslen) != 0)) {
        u->conflicts++;
        if (strcmp(policy, "Server Wins") == 0) {
            if (s_answer(u, objname, mo, row.rec, row.len, "update", row.checksum, row.cslen, it,
                         has_temp, temp, err))
                rc = -1;
            goto done;
        }
    }
    es_buf_append(&old, row.rec, row.len); //  row points into the store: copy before writing
    if (del) {
        if (srv_data_put(srv->data, txn, (size_t)obj, key.data, key.len, old.data, old.len, true,
                         cs, err) ||
            s_answer(u, objname, mo, old.data, old.len, "delete", cs, strlen(cs), it, has_temp,
                     temp, err)) {
            rc = -1;
            goto done;
        }
        u->applied[obj]++;
        goto done;
    }
    if (partial && srv_record_build(u->builders[obj], mo, it->node, old.data, old.len, ov_col, &ov,
                                    &rec, &rerr)) {
        s_reject(u, objname, obj, it, action, 400, rerr.what);
        goto done;
    }
    if (srv_record_check_required(mo, rec.data, rec.len, &rerr)) {
        s_reject(u, objname, obj, it, action, 400, rerr.what);
        goto done;
    }
    if (srv_data_put(srv->data, txn, (size_t)obj, key.data, key.len, rec.data, rec.len, false, cs,
                     err) ||
        s_answer(u, objname, mo, rec.data, rec.len, action, cs, strlen(cs), it, has_temp, temp,
                 err)) {
        rc = -1;
        goto done;
    }
    u->applied[obj]++;
done:
    es_buf_release(&old);
    es_buf_release(&key);
    es_buf_release(&rec);
    return rc;
}

static void
s_be64_put(unsigned char *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        p[i] = (unsigned char)(v & 0xff);
        v >>= 8;
    }
}

static uint64_t
s_be64_get(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | p[i];
    return v;
}

static int
s_apply_all(es_txn_t *txn, void *vctx, es_err_t *err)
{
    s_up_t *u = vctx;
    s_attempt_reset(u);
    for (size_t i = 0; i < u->n; i++)
        if (s_apply_one(u, txn, &u->items[i], err))
            return -1;
    time_t now = time(NULL);
    struct tm tm;
    char ts[32];
    gmtime_r(&now, &tm);
    strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%SZ", &tm);
    es_buf_t *b = &u->out;
    es_buf_printf(b,
                  "{\"opstatus\":0,\"httpStatusCode\":200,\"_metadata\":{\"recordCount\":%zu,"
                  "\"successCount\":%zu,\"failureCount\":%zu,\"processCount\":%zu,"
                  "\"timestamp\":\"%s\"},\"objects\":[",
                  u->n, u->success, u->failure, u->n, ts);
    for (size_t i = 0; i < u->ngroups; i++) {
        es_buf_puts(b, i ? ",{\"name\":" : "{\"name\":");
        es_buf_json_str(b, u->groups[i].name, strlen(u->groups[i].name));
        es_buf_puts(b, ",\"records\":[");
        es_buf_append(b, u->groups[i].recs.data, u->groups[i].recs.len);
        es_buf_puts(b, "]}");
    }
    es_buf_puts(b, "]}");
    if (u->cache_id) {
        es_buf_t v;
        es_buf_init(&v);
        unsigned char hdr[9];
        hdr[0] = S_CACHE_DONE;
        s_be64_put(hdr + 1, (uint64_t)now);
        es_buf_append(&v, hdr, sizeof hdr);
        es_buf_append(&v, b->data, b->len);
        int rc =
            es_txn_put(txn, SRV_UPC_TABLE, u->cache_id, strlen(u->cache_id), v.data, v.len, err);
        es_buf_release(&v);
        if (rc)
            return -1;
    }
    return 0;
}

typedef enum { S_CACHE_NEW, S_CACHE_HIT, S_CACHE_BUSY } s_cache_state_t;

typedef struct {
    const char *id;        //  request id
    s_cache_state_t state; //  what we found
    es_buf_t stored;       //  the stored answer on a hit
} s_mark_t;

//  Request ids being applied right now. An in-progress mark needs no durable commit of its
//  own: after a crash nothing of its request was committed and the startup sweep would drop
//  it anyway, so it lives in memory and saves one synchronous commit per upload. Taken and
//  released under the lock; released only after the answer is committed, so a repeat sees
//  either the mark or the stored answer, never neither.
static pthread_mutex_t s_busy_lock = PTHREAD_MUTEX_INITIALIZER;
static char **s_busy;     //  ids in progress
static size_t s_nbusy;    //  how many
static size_t s_busy_cap; //  allocated slots

static bool
s_busy_has(const char *id)
{
    for (size_t i = 0; i < s_nbusy; i++)
        if (strcmp(s_busy[i], id) == 0)
            return true;
    return false;
}

//  Look the id up in the stored answers (read transaction). Caller holds s_busy_lock.
static int
s_cache_lookup(srv_t *srv, s_mark_t *m, es_err_t *err)
{
    es_txn_t *txn = es_store_begin(srv_data_store(srv->data), false, err);
    if (!txn)
        return -1;
    const void *val;
    size_t vlen;
    uint64_t now = (uint64_t)time(NULL);
    m->state = S_CACHE_NEW;
    es_buf_reset(&m->stored);
    int rc = es_txn_get(txn, SRV_UPC_TABLE, m->id, strlen(m->id), &val, &vlen, err);
    if (rc == 1 && vlen >= 9) {
        const unsigned char *p = val;
        //  Rows in progress (from a version that stored them) are stale: this process
        //  is the only writer and its own marks are in memory.
        if (p[0] == S_CACHE_DONE && now < s_be64_get(p + 1) + SRV_CACHE_TTL_S) {
            m->state = S_CACHE_HIT;
            es_buf_append(&m->stored, p + 9, vlen - 9);
        }
    }
    es_txn_abort(&txn);
    return rc < 0 ? -1 : 0;
}

//  Mark id in progress unless it is being applied (BUSY) or answered already (HIT).
static int
s_cache_mark(srv_t *srv, s_mark_t *m, es_err_t *err)
{
    pthread_mutex_lock(&s_busy_lock);
    int rc = 0;
    if (s_busy_has(m->id)) {
        m->state = S_CACHE_BUSY;
    } else if ((rc = s_cache_lookup(srv, m, err)) == 0 && m->state == S_CACHE_NEW) {
        if (s_nbusy == s_busy_cap) {
            s_busy_cap = s_busy_cap ? s_busy_cap * 2 : 8;
            s_busy = es_realloc(s_busy, s_busy_cap * sizeof *s_busy);
        }
        s_busy[s_nbusy++] = es_strdup(m->id);
    }
    pthread_mutex_unlock(&s_busy_lock);
    return rc;
}

//  Drop the in-progress mark of id (after its answer is committed, or after a failure).
static void
s_cache_unmark(const char *id)
{
    pthread_mutex_lock(&s_busy_lock);
    for (size_t i = 0; i < s_nbusy; i++)
        if (strcmp(s_busy[i], id) == 0) {
            free(s_busy[i]);
            s_busy[i] = s_busy[--s_nbusy];
            break;
        }
    if (s_nbusy == 0) {
        free(s_busy);
        s_busy = NULL;
        s_busy_cap = 0;
    }
    pthread_mutex_unlock(&s_busy_lock);
}

typedef struct {
    uint64_t now;   //  current time
    es_buf_t stale; //  keys to delete, each preceded by its length (size_t)
} s_sweep_t;

static int
s_sweep_cb(void *vctx, const void *key, size_t klen, const void *val, size_t vlen, es_err_t *err)
{
    s_sweep_t *s = vctx;
    const unsigned char *p = val;
    (void)err;
    //  In progress at startup means the process died mid-request: its transaction never
    //  committed, so nothing was applied and the client may send it again.
    if (vlen < 9 || p[0] != S_CACHE_DONE || s->now >= s_be64_get(p + 1) + SRV_CACHE_TTL_S) {
        es_buf_append(&s->stale, &klen, sizeof klen);
        es_buf_append(&s->stale, key, klen);
    }
    return 0;
}

static int
s_sweep(es_txn_t *txn, void *vctx, es_err_t *err)
{
    s_sweep_t *s = vctx;
    es_buf_reset(&s->stale);
    if (es_txn_iter(txn, SRV_UPC_TABLE, NULL, 0, s_sweep_cb, s, err))
        return -1;
    for (size_t off = 0; off < s->stale.len;) {
        size_t klen;
        memcpy(&klen, s->stale.data + off, sizeof klen);
        off += sizeof klen;
        if (es_txn_del(txn, SRV_UPC_TABLE, s->stale.data + off, klen, err) < 0)
            return -1;
        off += klen;
    }
    return 0;
}

int
srv_upload_cache_sweep(srv_t *srv, es_err_t *err)
{
    s_sweep_t s = {(uint64_t)time(NULL), {0}};
    es_buf_init(&s.stale);
    int rc = es_store_write(srv_data_store(srv->data), s_sweep, &s, err);
    es_buf_release(&s.stale);
    return rc;
}

//  Parse an integer rowId (number or numeric string). -1 if not one.
static int
s_row_id(yajl_val v, int64_t *out)
{
    if (v && YAJL_IS_INTEGER(v)) {
        *out = YAJL_GET_INTEGER(v);
        return 0;
    }
    if (v && YAJL_IS_STRING(v)) {
        const char *s = YAJL_GET_STRING(v);
        char *end;
        size_t n = strlen(s);
        if (n == 0 || n > 19)
            return -1;
        long long x = strtoll(s, &end, 10);
        if (*end)
            return -1;
        *out = x;
        return 0;
    }
    return -1;
}

void
srv_upload(srv_t *srv, int obj, const char *cache_id, const char *body, size_t len,
           srv_resp_t *resp)
{
    es_err_t err;
    const es_meta_t *meta = srv_data_meta(srv->data);
    s_up_t u = {.srv = srv, .obj = obj};
    es_buf_init(&u.out);
    s_mark_t mark = {.id = NULL};
    es_buf_init(&mark.stored);
    yajl_val root = srv_json_parse(body, len, &err);
    if (!root) {
        srv_resp_error(resp, 400, 400, "%s", err.what);
        goto done;
    }
    yajl_val recs = srv_json_get(root, "records");
    if (!recs || !YAJL_IS_ARRAY(recs)) {
        srv_resp_error(resp, 400, 400, "records: expected an array");
        goto done;
    }
    u.n = recs->u.array.len;
    u.items = es_calloc(u.n ? u.n : 1, sizeof *u.items);
    for (size_t i = 0; i < u.n; i++) {
        yajl_val r = recs->u.array.values[i];
        if (!YAJL_IS_OBJECT(r)) {
            srv_resp_error(resp, 400, 400, "records[%zu]: expected an object", i);
            goto done;
        }
        yajl_val m = srv_json_get(r, "_metadata");
        if (!m || !YAJL_IS_OBJECT(m)) {
            srv_resp_error(resp, 400, 400, "records[%zu]._metadata: expected an object", i);
            goto done;
        }
        if (s_row_id(srv_json_get(m, "rowId"), &u.items[i].row_id)) {
            srv_resp_error(resp, 400, 400, "records[%zu]._metadata.rowId: expected an integer", i);
            goto done;
        }
        u.items[i].node = r;
        u.items[i].meta = m;
        u.items[i].index = i;
    }
    qsort(u.items, u.n, sizeof *u.items, s_item_cmp);

    if (cache_id && srv->opts->upload_cache) {
        if (strlen(cache_id) > 200) {
            srv_resp_error(resp, 400, 400, "X-Voltmx-RequestCacheId: longer than 200 bytes");
            goto done;
        }
        mark.id = cache_id;
        if (s_cache_mark(srv, &mark, &err)) {
            srv_resp_error(resp, 500, 500, "store: %s", err.what);
            goto done;
        }
        if (mark.state == S_CACHE_HIT) {
            pthread_mutex_lock(&srv->stats->lock);
            srv->stats->cache_hits++;
            pthread_mutex_unlock(&srv->stats->lock);
            resp->status = 200;
            es_buf_reset(&resp->body);
            es_buf_append(&resp->body, mark.stored.data, mark.stored.len);
            srv_stats_count(srv->stats, SRV_K_UPLOAD);
            goto done;
        }
        if (mark.state == S_CACHE_BUSY) {
            pthread_mutex_lock(&srv->stats->lock);
            srv->stats->cache_in_progress++;
            pthread_mutex_unlock(&srv->stats->lock);
            srv_resp_error(resp, 200, SRV_OPSTATUS_IN_PROGRESS, "request already in progress");
            goto done;
        }
        u.cache_id = cache_id;
    }
    if (resp->apply_delay)
        srv_sleep_ms(srv->stopping, resp->apply_delay);

    u.builders = es_calloc(meta->nobjects, sizeof *u.builders);
    for (size_t i = 0; i < meta->nobjects; i++)
        u.builders[i] = es_record_builder_new(&meta->objects[i]);
    if (es_store_write(srv_data_store(srv->data), s_apply_all, &u, &err)) {
        es_log_error("server: upload: %s", err.what);
        srv_resp_error(resp, 500, 500, "store: %s", err.what);
        goto done;
    }
    pthread_mutex_lock(&srv->stats->lock);
    for (size_t i = 0; i < meta->nobjects && i < SRV_MAX_OBJECTS; i++) {
        srv->stats->applied[i] += u.applied[i];
        srv->stats->rejected[i] += u.rejected[i];
    }
    srv->stats->conflicts += u.conflicts;
    pthread_mutex_unlock(&srv->stats->lock);
    srv_stats_count(srv->stats, SRV_K_UPLOAD);
    resp->status = 200;
    es_buf_reset(&resp->body);
    es_buf_append(&resp->body, u.out.data, u.out.len);
done:
    if (u.cache_id)
        s_cache_unmark(u.cache_id);
    if (u.builders)
        for (size_t i = 0; i < meta->nobjects; i++)
            es_record_builder_destroy(&u.builders[i]);
    free(u.builders);
    s_attempt_reset(&u);
    es_buf_release(&u.out);
    es_buf_release(&mark.stored);
    free(u.items);
    yajl_tree_free(root);
}

// ---------------------------------------------------------------- admin edits and listing

typedef struct {
    srv_t *srv;
    int obj;
    yajl_val node;             //  record
    const char *op;            //  create | update | delete
    es_record_builder_t *b;    //  builder for obj
    es_buf_t out;              //  answer
    int status;                //  HTTP status of a refusal
    char why[ES_ERR_WHAT_MAX]; //  refusal text
} s_edit_t;

static int
s_edit(es_txn_t *txn, void *vctx, es_err_t *err)
{
    s_edit_t *e = vctx;
    srv_data_t *data = e->srv->data;
    const es_meta_object_t *mo = &srv_data_meta(data)->objects[e->obj];
    es_buf_t rec, key, old;
    es_buf_init(&rec);
    es_buf_init(&key);
    es_buf_init(&old);
    es_err_t rerr;
    int rc = 0;
    char cs[SRV_CS_MAX + 1];
    e->status = 0;
    es_buf_reset(&e->out);
    bool create = strcmp(e->op, "create") == 0;
    const es_meta_field_t *af = s_auto_field(mo);
    es_value_t ov = {.type = ES_V_NULL};
    const char *ov_col = NULL;
    if (create && af) {
        yajl_val kv = srv_json_get(e->node, af->name);
        if (!kv || YAJL_IS_NULL(kv)) {
            int64_t real;
            if (srv_data_next_auto(data, txn, (size_t)e->obj, &real, err)) {
                rc = -1;
                goto done;
            }
            ov.type = ES_V_INT;
            ov.u.i = real;
            ov_col = af->name;
        }
    }
    if (srv_record_build(e->b, mo, e->node, NULL, 0, ov_col, &ov, &rec, &rerr) ||
        es_key_from_record(mo, rec.data, rec.len, &key, &rerr)) {
        e->status = 400;
        snprintf(e->why, sizeof e->why, "%s", rerr.what);
        goto done;
    }
    srv_row_t row;
    int found = srv_data_get(data, txn, (size_t)e->obj, key.data, key.len, &row, err);
    if (found < 0) {
        rc = -1;
        goto done;
    }
    bool live = found == 1 && !row.deleted;
    if (create == live) {
        e->status = create ? 409 : 404;
        snprintf(e->why, sizeof e->why, "%s: %s", e->op,
                 create ? "a record with this key exists" : "no record with this key");
        goto done;
    }
    bool deleted = strcmp(e->op, "delete") == 0;
    if (!create) {
        es_buf_append(&old, row.rec, row.len);
        //  Admin update merges: tests name only the columns they change.
        if (!deleted &&
            srv_record_build(e->b, mo, e->node, old.data, old.len, NULL, NULL, &rec, &rerr)) {
            e->status = 400;
            snprintf(e->why, sizeof e->why, "%s", rerr.what);
            goto done;
        }
    }
    if (!deleted && srv_record_check_required(mo, rec.data, rec.len, &rerr)) {
        e->status = 400;
        snprintf(e->why, sizeof e->why, "%s", rerr.what);
        goto done;
    }
    if (create && af && !ov_col) {
        es_value_t v;
        if (es_record_get(rec.data, rec.len, af->name, &v) == 1 && v.type == ES_V_INT &&
            srv_data_seen_auto(data, txn, (size_t)e->obj, v.u.i, err)) {
            rc = -1;
            goto done;
        }
    }
    const es_buf_t *w = deleted ? &old : &rec;
    if (srv_data_put(data, txn, (size_t)e->obj, key.data, key.len, w->data, w->len, deleted, cs,
                     err)) {
        rc = -1;
        goto done;
    }
    es_buf_puts(&e->out, "{\"opstatus\":0,\"record\":");
    if (es_record_to_json(w->data, w->len, &e->out, err)) {
        rc = -1;
        goto done;
    }
    es_buf_printf(&e->out, ",\"checksum\":\"%s\",\"deleted\":%s}", cs, deleted ? "true" : "false");
done:
    es_buf_release(&old);
    es_buf_release(&key);
    es_buf_release(&rec);
    return rc;
}

void
srv_admin_edit(srv_t *srv, int obj, const char *body, size_t len, srv_resp_t *resp)
{
    es_err_t err;
    const es_meta_t *meta = srv_data_meta(srv->data);
    yajl_val root = srv_json_parse(body, len, &err);
    if (!root) {
        srv_resp_error(resp, 400, 400, "%s", err.what);
        return;
    }
    yajl_val op = srv_json_get(root, "op"), rec = srv_json_get(root, "record");
    const char *ops = op && YAJL_IS_STRING(op) ? YAJL_GET_STRING(op) : "";
    if (strcmp(ops, "create") && strcmp(ops, "update") && strcmp(ops, "delete")) {
        srv_resp_error(resp, 400, 400, "op: expected create, update or delete");
        yajl_tree_free(root);
        return;
    }
    if (!rec || !YAJL_IS_OBJECT(rec)) {
        srv_resp_error(resp, 400, 400, "record: expected an object");
        yajl_tree_free(root);
        return;
    }
    s_edit_t e = {.srv = srv, .obj = obj, .node = rec, .op = ops};
    e.b = es_record_builder_new(&meta->objects[obj]);
    es_buf_init(&e.out);
    if (es_store_write(srv_data_store(srv->data), s_edit, &e, &err))
        srv_resp_error(resp, 500, 500, "store: %s", err.what);
    else if (e.status)
        srv_resp_error(resp, e.status, e.status, "%s", e.why);
    else {
        resp->status = 200;
        es_buf_reset(&resp->body);
        es_buf_append(&resp->body, e.out.data, e.out.len);
    }
    es_buf_release(&e.out);
    es_record_builder_destroy(&e.b);
    yajl_tree_free(root);
}

typedef struct {
    es_buf_t *out; //  JSON lines
} s_list_t;

static int
s_list_cb(void *vctx, const void *key, size_t klen, const void *val, size_t vlen, es_err_t *err)
{
    s_list_t *l = vctx;
    srv_row_t row;
    (void)key;
    (void)klen;
    if (srv_row_unpack(val, vlen, &row))
        return es_err_set(err, ES_ESTORE, "corrupt row");
    if (row.deleted)
        return 0;
    if (es_record_to_json(row.rec, row.len, l->out, err))
        return -1;
    es_buf_putc(l->out, '\n');
    return 0;
}

void
srv_admin_list(srv_t *srv, int obj, srv_resp_t *resp)
{
    es_err_t err;
    es_buf_reset(&resp->body);
    s_list_t l = {&resp->body};
    es_txn_t *txn = es_store_begin(srv_data_store(srv->data), false, &err);
    if (!txn || es_txn_iter(txn, srv_data_rec_table(srv->data, (size_t)obj), NULL, 0, s_list_cb, &l,
                            &err)) {
        es_txn_abort(&txn);
        srv_resp_error(resp, 500, 500, "store: %s", err.what);
        return;
    }
    es_txn_abort(&txn);
    resp->status = 200;
}
