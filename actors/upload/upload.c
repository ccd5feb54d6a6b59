//  upload - upload-cache replay, then batched upload of pending changes, each answer applied
//  with the removal of the changes it covered in one transaction.
#include "actors/upload/upload.h"
#include "actors/worker/es_worker.h"
#include "common/es_actor.h"
#include "common/es_config.h"
#include "common/es_log.h"
#include "common/es_mem.h"
#include "protocol/es_record.h"
#include "protocol/es_syncopts.h"
#include "protocol/es_upload.h"
#include "store/es_local.h"
#include "store/es_store.h"
#include "store/es_svc.h"
#include "store/es_upcache.h"
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

//  One request of the job: a replayed cache row or a new batch.
typedef struct {
    bool replay;                     //  from the upload cache
    char cache_key[ES_NAME_MAX + 1]; //  its upcache row ("" when the cache is off)
    char request_id[40];             //  X-...-RequestCacheId ("" when the cache is off)
    char *url;                       //  endpoint with query string
    es_buf_t body;                   //  exact body sent
    uint64_t last_rsn;               //  highest RSN in the batch (0 for a replay)
    size_t records;                  //  records in the body
    bool cached;                     //  its upcache row is committed already
} req_t;

//  A successful record kept until the whole answer is parsed (applied in rowId order). Its
//  checksum and record live in the answer's one buffer (offsets: the buffer moves as it grows).
typedef struct {
    const es_meta_object_t *object;
    uint64_t row_id;
    bool is_delete;
    size_t checksum; //  offset of the NUL-terminated checksum
    size_t rec;      //  offset of the record
    size_t rec_len;
    bool has_temp;
    int64_t temp_value;
} result_t;

typedef struct {
    bool active;                   //  a job is running
    char session[ES_NAME_MAX + 1]; //  its session
    uint64_t id;                   //  job id
    char service[ES_NAME_MAX + 1]; //  object service
    char object[ES_NAME_MAX + 1];  //  one object, or "" for every object of the service
    es_meta_t *meta;               //  service metadata
    char *endpoint;                //  object or service URL, no query
    char *query;                   //  uploadRequestQueryParams as "?a=b&c=d" (or "")
    es_syncopts_t opts;            //  parsed options
    bool opts_parsed;              //  opts must be released
    char **replay;                 //  upcache keys to replay first
    size_t nreplay, next_replay;   //  count, next
    uint64_t upto, after;          //  RSN snapshot and position
    uint32_t batch;                //  batch number of the last request
    req_t req;                     //  the request in flight or waiting to retry
    bool in_flight;                //  a request is running
    uint32_t attempt;              //  retries of this request
    es_buf_t resp;                 //  response body
    int64_t t_start, t_sent;       //  timing (ms)
    uint64_t uploaded;             //  records the server accepted
    uint32_t ok_batches, failed_batches, replays;
    es_buf_t errors; //  syncErrors.upload entries, comma-joined
    bool cancelled;  //  stop after the request in flight
} job_t;

struct upload {
    es_actor_opts_t opts;   //  argv
    es_worker_t w;          //  config, store, http, actor, retry timer
    es_upload_body_t *body; //  body builder
    job_t job;              //  the current job
    uint32_t seed;          //  jitter
};

//  Crash test hook: ES_TEST_CRASH_AT="<point>:<marker file>" kills this process (SIGKILL, as a
//  power cut would) the first time it reaches <point>, creating the marker so that the
//  restarted actor goes on. Points: before_send, in_flight, after_answer, mid_apply.
static void
s_crash_point(const char *point)
{
    const char *spec = getenv("ES_TEST_CRASH_AT");
    size_t n = strlen(point);
    if (!spec || strncmp(spec, point, n) != 0 || spec[n] != ':')
        return;
    const char *marker = spec + n + 1;
    int fd = open(marker, O_CREAT | O_EXCL | O_WRONLY, 0600);
    if (fd < 0)
        return; //  fired already
    close(fd);
    es_log_warn("test hook: killed at %s", point);
    raise(SIGKILL);
}

//  --- messages ------------------------------------------------------------------------------

static void
s_progress(upload_t *self, const char *state, uint32_t records, int64_t request_ms,
           int64_t network_ms, int64_t persist_ms, bool last)
{
    job_t *j = &self->job;
    es_msg_t m;
    es_msg_init(&m, ES_MSG_PROGRESS, 0);
    es_progress_t *p = &m.u.progress;
    snprintf(p->session, sizeof p->session, "%s", j->session);
    p->job = j->id;
    snprintf(p->phase, sizeof p->phase, "Upload");
    snprintf(p->state, sizeof p->state, "%s", state);
    snprintf(p->object, sizeof p->object, "%s", j->object[0] ? j->object : j->service);
    p->batch = j->batch;
    p->records = records;
    p->bytes = j->req.body.len;
    p->request_ms = (uint32_t)request_ms;
    p->network_ms = (uint32_t)(network_ms < 0 ? 0 : network_ms);
    p->persist_ms = (uint32_t)persist_ms;
    p->retries = j->attempt;
    p->last = last;
    es_err_t err;
    if (es_actor_send(self->w.actor, &m, &err))
        es_log_warn("progress: %s", err.what);
}

static void
s_req_release(req_t *r)
{
    free(r->url);
    es_buf_release(&r->body);
    memset(r, 0, sizeof *r);
}

static void
s_job_end(upload_t *self, int32_t code, const char *what)
{
    job_t *j = &self->job;
    es_buf_t result;
    es_buf_init(&result);
    es_buf_printf(&result, "{\"uploaded\":%llu,\"replays\":%u,\"upload\":[%s]}",
                  (unsigned long long)j->uploaded, j->replays,
                  j->errors.data ? j->errors.data : "");
    es_worker_job_done(&self->w, j->session, j->id, code, what, result.data);
    es_buf_release(&result);
    if (code && code != 2478)
        es_log_warn("%s%s%s: upload failed (%d): %s", j->service, j->object[0] ? "/" : "",
                    j->object, code, what);
    else
        es_log_info("%s%s%s: upload %s: %llu records in %u batches, %u replays", j->service,
                    j->object[0] ? "/" : "", j->object, code ? "cancelled" : "done",
                    (unsigned long long)j->uploaded, j->ok_batches + j->failed_batches, j->replays);
    es_meta_destroy(&j->meta);
    if (j->opts_parsed)
        es_syncopts_release(&j->opts);
    for (size_t i = 0; i < j->nreplay; i++)
        free(j->replay[i]);
    free(j->replay);
    free(j->endpoint);
    free(j->query);
    s_req_release(&j->req);
    es_buf_release(&j->resp);
    es_buf_release(&j->errors);
    memset(j, 0, sizeof *j);
    es_actor_set_busy(self->w.actor, false);
}

//  --- the upload cache ----------------------------------------------------------------------
//  Rows as store/es_upcache.h encodes them.

enum { CACHE_OBJECT = ES_UPCACHE_OBJECT, CACHE_SERVICE = ES_UPCACHE_SERVICE };

typedef struct {
    const req_t *req;
    uint8_t kind;
    uint32_t attempts;
} cache_put_t;

static int
s_cache_put_fn(es_txn_t *txn, void *ctx, es_err_t *err)
{
    cache_put_t *c = ctx;
    const req_t *r = c->req;
    es_upcache_row_t row = {.kind = c->kind,
                            .request_id = r->request_id,
                            .request_id_len = strlen(r->request_id),
                            .attempts = c->attempts,
                            .last_attempt = (uint64_t)es_epoch_ms(),
                            .url = r->url,
                            .url_len = strlen(r->url),
                            .body = r->body.data ? r->body.data : "",
                            .body_len = r->body.len};
    es_buf_t v;
    es_buf_init(&v);
    es_upcache_encode(&row, &v);
    int rc = es_txn_put(txn, "upcache", r->cache_key, strlen(r->cache_key), v.data, v.len, err);
    es_buf_release(&v);
    return rc;
}

//  Load a cache row into req (replay). 1 loaded, 0 absent, -1 malformed or store error.
static int
s_cache_load(upload_t *self, const char *key, req_t *r, uint32_t *attempts, es_err_t *err)
{
    es_txn_t *txn = es_store_begin(self->w.store, false, err);
    if (!txn)
        return -1;
    const void *val;
    size_t len;
    es_upcache_row_t row;
    int rc = es_txn_get(txn, "upcache", key, strlen(key), &val, &len, err);
    if (rc == 1) {
        if (es_upcache_decode(&row, val, len, err)) {
            rc = es_err_prefix(err, "upcache %s", key);
        } else if (row.request_id_len >= sizeof r->request_id) {
            rc = es_err_set(err, ES_ESTORE, "upcache %s: request id of %zu bytes", key,
                            row.request_id_len);
        } else {
            memcpy(r->request_id, row.request_id, row.request_id_len);
            r->request_id[row.request_id_len] = '\0';
            *attempts = row.attempts;
            r->url = es_strndup(row.url, row.url_len);
            es_buf_reset(&r->body);
            es_buf_append(&r->body, row.body, row.body_len);
            snprintf(r->cache_key, sizeof r->cache_key, "%s", key);
            r->replay = true;
        }
    }
    es_txn_abort(&txn);
    return rc;
}

typedef struct {
    const char *service; //  rows of this service's objects...
    const es_meta_t *meta;
    const char *object; //  ...or of this object only ("" = all)
    char ***keys;
    size_t *n;
} replay_ctx_t;

static int
s_collect_replay(void *ctx, const void *key, size_t klen, const void *val, size_t vlen,
                 es_err_t *err)
{
    (void)err, (void)val;
    replay_ctx_t *c = ctx;
    if (vlen < 1)
        return 0;
    char *name = es_strndup(key, klen);
    bool mine = strcmp(name, c->service) == 0; //  the service's own row
    for (size_t i = 0; !mine && i < c->meta->nobjects; i++)
        mine = strcmp(name, c->meta->objects[i].name) == 0 &&
               (!c->object[0] || strcmp(name, c->object) == 0);
    if (!mine) {
        free(name);
        return 0;
    }
    *c->keys = es_realloc(*c->keys, (*c->n + 1) * sizeof **c->keys);
    (*c->keys)[(*c->n)++] = name;
    return 0;
}

//  Cache rows to replay first (SPEC 3.3 step 4): the objects' rows, then the service's own.
static int
s_plan_replay(upload_t *self, es_err_t *err)
{
    job_t *j = &self->job;
    es_txn_t *txn = es_store_begin(self->w.store, false, err);
    if (!txn)
        return -1;
    replay_ctx_t c = {j->service, j->meta, j->object, &j->replay, &j->nreplay};
    int rc = es_txn_iter(txn, "upcache", NULL, 0, s_collect_replay, &c, err);
    es_txn_abort(&txn);
    //  The service's own row last.
    for (size_t i = 0; rc == 0 && i + 1 < j->nreplay; i++)
        if (strcmp(j->replay[i], j->service) == 0) {
            char *svc = j->replay[i];
            memmove(&j->replay[i], &j->replay[i + 1], (j->nreplay - i - 1) * sizeof *j->replay);
            j->replay[j->nreplay - 1] = svc;
            break;
        }
    return rc;
}

static int
s_cache_del_fn(es_txn_t *txn, void *ctx, es_err_t *err)
{
    const char *key = ctx;
    return es_txn_del(txn, "upcache", key, strlen(key), err) < 0 ? -1 : 0;
}

//  --- batches -------------------------------------------------------------------------------

typedef struct {
    upload_t *self;
    uint64_t last_rsn;
    const es_meta_object_t *obj; //  the previous change's object
} batch_ctx_t;

static bool
s_in_scope(void *ctx, const char *object, size_t len)
{
    const job_t *j = ctx;
    if (j->object[0])
        return strlen(j->object) == len && memcmp(j->object, object, len) == 0;
    return true;
}

static const char *
s_action_name(es_chg_t a)
{
    switch (a) {
    case ES_CHG_CREATE:
        return "create";
    case ES_CHG_PARTIAL:
        return "partialupdate";
    case ES_CHG_DELETE:
        return "delete";
    default:
        return "update"; //  0 and 80
    }
}

static int
s_add_change(void *ctx, const es_local_change_t *c, es_err_t *err)
{
    batch_ctx_t *b = ctx;
    job_t *j = &b->self->job;
    //  A batch is mostly changes of one object: the previous change's object is tried first.
    const es_meta_object_t *obj = b->obj;
    if (!obj || strlen(obj->name) != c->object_len ||
        memcmp(obj->name, c->object, c->object_len) != 0) {
        char name[ES_NAME_MAX + 1];
        snprintf(name, sizeof name, "%.*s", (int)c->object_len, c->object);
        obj = es_meta_object(j->meta, name);
        if (!obj)
            return es_err_set(err, ES_ESTORE,
                              "pending change %llu: object '%s' is not in service '%s'",
                              (unsigned long long)c->rsn, name, j->service);
        b->obj = obj;
    }
    if (es_upload_body_add(b->self->body, obj, s_action_name(c->action), c->rsn, c->checksum,
                           c->checksum_len, c->rec, c->rec_len, err))
        return -1;
    b->last_rsn = c->rsn;
    return 0;
}

static void s_send(upload_t *self);
static void s_next(upload_t *self);

static void
s_request_id(char *out, size_t size)
{
    unsigned char r[16];
    if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r)
        for (size_t i = 0; i < sizeof r; i++)
            r[i] = (unsigned char)(rand() ^ (int)es_now_ms());
    r[6] = (unsigned char)((r[6] & 0x0f) | 0x40); //  UUID version 4
    r[8] = (unsigned char)((r[8] & 0x3f) | 0x80);
    snprintf(out, size, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
             r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9], r[10], r[11], r[12], r[13],
             r[14], r[15]);
}

//  Build the batch of the pending changes after RSN `after` into r, reading through txn.
//  1 built, 0 none left, -1 with err.
static int
s_build_in(upload_t *self, es_txn_t *txn, uint64_t after, req_t *r, es_err_t *err)
{
    job_t *j = &self->job;
    es_upload_body_reset(self->body);
    batch_ctx_t b = {self, 0, NULL};
    if (es_local_changes(txn, j->service, after, j->upto, (size_t)j->opts.upload_batch_size,
                         s_in_scope, j, s_add_change, &b, err))
        return -1;
    size_t n = es_upload_body_count(self->body);
    if (n == 0)
        return 0;
    //  hasMoreRecords per SPEC 3.4.1.
    bool more = n == (size_t)j->opts.upload_batch_size && b.last_rsn != j->upto;
    size_t len;
    const char *body = es_upload_body_end(self->body, more, &len);
    s_req_release(r);
    es_buf_init(&r->body);
    es_buf_append(&r->body, body, len);
    r->url = es_sprintf("%s%s", j->endpoint, j->query);
    r->last_rsn = b.last_rsn;
    r->records = n;
    if (j->meta->upload_cache) {
        s_request_id(r->request_id, sizeof r->request_id);
        snprintf(r->cache_key, sizeof r->cache_key, "%s", j->object[0] ? j->object : j->service);
    }
    return 1;
}

//  Build the next batch from the pending changes; false when there is none left.
static bool
s_build_batch(upload_t *self, es_err_t *err, bool *failed)
{
    job_t *j = &self->job;
    *failed = false;
    es_txn_t *txn = es_store_begin(self->w.store, false, err);
    int rc = txn ? s_build_in(self, txn, j->after, &j->req, err) : -1;
    es_txn_abort(&txn);
    if (rc < 0)
        *failed = true;
    return rc == 1;
}

//  An answer echoes the records sent, with the server's columns added: one many times larger
//  than its request is hostile or broken. Bounding it here keeps the actor's memory bounded
//  (the answer is held whole for parsing) whatever http.max_response_mb allows for downloads.
#define ANSWER_MIN_LIMIT (4u << 20)
#define ANSWER_PER_REQUEST_BYTE 16u

static int
s_on_data(void *ctx, const char *data, size_t len, es_err_t *err)
{
    upload_t *self = ctx;
    job_t *j = &self->job;
    size_t limit = j->req.body.len * ANSWER_PER_REQUEST_BYTE;
    if (limit < ANSWER_MIN_LIMIT)
        limit = ANSWER_MIN_LIMIT;
    if (len > limit - j->resp.len || j->resp.len > limit)
        return es_err_set(err, ES_EPROTO,
                          "%s: upload answer larger than %zu bytes (%u times its %zu-byte "
                          "request, at least %u MiB): refused",
                          j->req.url, limit, ANSWER_PER_REQUEST_BYTE, j->req.body.len,
                          ANSWER_MIN_LIMIT >> 20);
    es_buf_append(&j->resp, data, len);
    return 0;
}

static void s_on_done(void *ctx, const es_http_result_t *r);
static const es_http_cb_t s_http_cb = {s_on_data, s_on_done};

//  Send the current request. The upload cache row (request id and exact body) is committed
//  before the request leaves, so a crash after sending replays the same id (D14).
static void
s_send(upload_t *self)
{
    job_t *j = &self->job;
    es_err_t err;
    self->w.retry_at = 0;
    es_buf_reset(&j->resp);
    if (j->req.request_id[0] && j->attempt == 0 && !j->req.replay && !j->req.cached) {
        cache_put_t c = {&j->req, j->object[0] ? CACHE_OBJECT : CACHE_SERVICE, 0};
        if (es_store_write(self->w.store, s_cache_put_fn, &c, &err)) {
            s_job_end(self, 2000, err.what);
            return;
        }
    }
    //  Without the server's cache nothing may re-send this request behind our back.
    es_http_set_fresh_connections(self->w.http, !j->req.request_id[0]);
    const char *prefix = es_config_str(self->w.config, "header_prefix");
    const char *token = es_config_str(self->w.config, "auth_token");
    char *h[6];
    size_t nh = 0;
    h[nh++] = es_strdup("X-Http-Method-Override: UPLOAD");
    h[nh++] = es_strdup("Content-Type: application/json");
    h[nh++] = es_sprintf("%sAPI-Version: %s", prefix, j->meta->version);
    if (*token)
        h[nh++] = es_sprintf("%sAuthorization: %s", prefix, token);
    if (j->req.request_id[0])
        h[nh++] = es_sprintf("%sRequestCacheId: %s", prefix, j->req.request_id);
    if (!j->req.replay && j->attempt == 0)
        s_progress(self, "InProgress", (uint32_t)j->req.records, es_now_ms() - j->t_start, 0, 0,
                   false);
    j->t_sent = es_now_ms();
    s_crash_point("before_send");
    int rc = es_http_start(self->w.http, j->req.url, j->req.body.data, j->req.body.len,
                           (const char *const *)h, nh, &s_http_cb, self, &err);
    for (size_t i = 0; i < nh; i++)
        free(h[i]);
    if (rc) {
        s_job_end(self, 2030, err.what);
        return;
    }
    j->in_flight = true;
    //  Crash test hook: look again shortly, with the request on the wire.
    if (getenv("ES_TEST_CRASH_AT"))
        self->w.retry_at = es_now_ms() + 20;
}

//  The next request: a cached one to replay, else the next batch, else the end of the job.
static void
s_next(upload_t *self)
{
    job_t *j = &self->job;
    es_err_t err;
    j->attempt = 0;
    if (j->cancelled) {
        s_job_end(self, 2478, "Syncing operation has been cancelled");
        return;
    }
    while (j->next_replay < j->nreplay) {
        const char *key = j->replay[j->next_replay++];
        s_req_release(&j->req);
        es_buf_init(&j->req.body);
        uint32_t attempts = 0;
        int rc = s_cache_load(self, key, &j->req, &attempts, &err);
        if (rc < 0) {
            s_job_end(self, 2913, err.what);
            return;
        }
        if (rc == 0)
            continue;
        //  Count the attempt before sending (SPEC 3.3 step 4).
        cache_put_t c = {&j->req, strcmp(key, j->service) == 0 ? CACHE_SERVICE : CACHE_OBJECT,
                         attempts + 1};
        if (es_store_write(self->w.store, s_cache_put_fn, &c, &err)) {
            s_job_end(self, 2000, err.what);
            return;
        }
        es_log_info("%s: replaying cached upload %s (request %s)", j->service, key,
                    j->req.request_id);
        j->t_start = es_now_ms();
        s_send(self);
        return;
    }
    bool failed;
    j->t_start = es_now_ms();
    if (!s_build_batch(self, &err, &failed)) {
        if (failed)
            s_job_end(self, 2000, err.what);
        else if (j->failed_batches && !j->ok_batches)
            //  Every batch failed: a complete failure (SPEC 3.4.4).
            s_job_end(self, 2038, "every upload batch was rejected by the server");
        else
            s_job_end(self, 0, NULL);
        return;
    }
    j->batch++;
    s_progress(self, "Started", (uint32_t)j->req.records, 0, 0, 0, false);
    s_send(self);
}

//  --- answers -------------------------------------------------------------------------------

typedef struct {
    upload_t *self;
    result_t *results; //  successes, applied after the parse in rowId order
    size_t n, cap;
    es_buf_t data;       //  their checksums and records
    bool missing_row_id; //  a success without rowId (2473)
    char missing_object[ES_NAME_MAX + 1];
    uint64_t failures; //  records with errmsg
    uint64_t *ids;     //  every rowId the answer gives, success or failure
    size_t nids, ids_cap;
} answer_t;

static void
s_answer_release(answer_t *a)
{
    free(a->results);
    free(a->ids);
    a->ids = NULL;
    a->nids = a->ids_cap = 0;
    a->results = NULL;
    es_buf_release(&a->data);
    a->n = a->cap = 0;
}

static void
s_sync_error(job_t *j, const char *object, const char *pk_json, int64_t opstatus,
             const char *errmsg)
{
    if (j->errors.len)
        es_buf_putc(&j->errors, ',');
    es_buf_puts(&j->errors, "{\"object\":");
    es_buf_json_str(&j->errors, object, strlen(object));
    es_buf_puts(&j->errors, ",\"objectService\":");
    es_buf_json_str(&j->errors, j->service, strlen(j->service));
    es_buf_printf(&j->errors, ",\"primaryKeys\":%s,\"opstatus\":%lld,\"errmsg\":",
                  pk_json && *pk_json ? pk_json : "{}", (long long)opstatus);
    es_buf_json_str(&j->errors, errmsg, strlen(errmsg));
    es_buf_putc(&j->errors, '}');
}

static int
s_on_rec(void *ctx, const es_upload_rec_t *r, es_err_t *err)
{
    answer_t *a = ctx;
    job_t *j = &a->self->job;
    if (r->has_row_id) {
        if (a->nids == a->ids_cap) {
            a->ids_cap = a->ids_cap ? a->ids_cap * 2 : 64;
            a->ids = es_realloc(a->ids, a->ids_cap * sizeof *a->ids);
        }
        a->ids[a->nids++] = r->row_id;
    }
    if (r->errmsg || !r->object) {
        a->failures++;
        s_sync_error(j, r->object_name ? r->object_name : "", r->pk_json,
                     r->errmsg ? r->opstatus : 0,
                     r->errmsg ? r->errmsg : "record of an object this service does not have");
        return 0;
    }
    if (!r->has_row_id) {
        a->missing_row_id = true;
        snprintf(a->missing_object, sizeof a->missing_object, "%s", r->object->name);
        return 0;
    }
    //  A rowId this batch did not send answers nothing we sent: taking the batch as done would
    //  drop the cache row while the change sent stays pending, and its next upload, under a new
    //  request id, could apply it twice.
    if (!j->req.replay && (r->row_id <= j->after || r->row_id > j->req.last_rsn))
        return es_err_set(err, ES_EPROTO,
                          "%s: upload result for rowId %llu, which this batch did not send "
                          "(rowIds %llu..%llu)",
                          r->object->name, (unsigned long long)r->row_id,
                          (unsigned long long)j->after + 1, (unsigned long long)j->req.last_rsn);
    if (a->n == a->cap) {
        a->cap = a->cap ? a->cap * 2 : 64;
        a->results = es_realloc(a->results, a->cap * sizeof *a->results);
    }
    result_t *x = &a->results[a->n++];
    x->object = r->object;
    x->row_id = r->row_id;
    x->is_delete = r->is_delete;
    const char *cs = r->checksum ? r->checksum : "";
    x->checksum = a->data.len;
    es_buf_append(&a->data, cs, strlen(cs) + 1);
    x->rec = a->data.len;
    es_buf_append(&a->data, r->rec, r->rec_len);
    x->rec_len = r->rec_len;
    x->has_temp = r->has_temp;
    x->temp_value = r->temp_value;
    return 0;
}

static int
s_by_row_id(const void *a, const void *b)
{
    const result_t *x = a, *y = b;
    return x->row_id < y->row_id ? -1 : x->row_id > y->row_id;
}

static int
s_u64_cmp(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

//  Records of the batch (rowIds after+1..last) the answer speaks of, success or failure, each
//  once: a repeated or foreign rowId must not hide one left out. Sorts a->ids.
static size_t
s_answered(answer_t *a, uint64_t after, uint64_t last)
{
    if (a->nids)
        qsort(a->ids, a->nids, sizeof *a->ids, s_u64_cmp);
    size_t count = 0;
    for (size_t i = 0; i < a->nids; i++)
        count += a->ids[i] > after && a->ids[i] <= last && (i == 0 || a->ids[i] != a->ids[i - 1]);
    return count;
}

typedef struct {
    upload_t *self;
    answer_t *answer;
    bool failed_batch; //  a whole-batch failure: apply what matches, skip the rest
    uint32_t applied;  //  results applied
    uint32_t skipped;  //  results that did not match what was sent (failed_batch only)
    bool chain;        //  build the next batch in the same transaction
    int next_rc;       //  its s_build_in result (1 built, 0 none, -1 failed)
    es_err_t next_err; //  why it failed (the answer is committed all the same)
    req_t next;        //  the next batch, its upcache row written in the transaction
} apply_t;

static bool
s_remove_after(const job_t *j, const char *object)
{
    for (size_t i = 0; i < j->opts.nremove_after_upload; i++)
        if (strcmp(j->opts.remove_after_upload[i], object) == 0)
            return true;
    return false;
}

//  The answer and the removal of the changes it covered, in one transaction (SPEC 3.4.6).
static int
s_apply_fn(es_txn_t *txn, void *ctx, es_err_t *err)
{
    apply_t *a = ctx;
    job_t *j = &a->self->job;
    a->applied = a->skipped = 0; //  es_store_write may run this again
    for (size_t i = 0; i < a->answer->n; i++) {
        const result_t *x = &a->answer->results[i];
        const char *d = a->answer->data.data;
        es_local_result_t r = {x->object,  x->row_id,  x->is_delete, d + x->checksum,
                               d + x->rec, x->rec_len, x->has_temp,  x->temp_value};
        //  In a failed batch each success stands alone: one that does not match what was
        //  sent is left out (its change stays pending) instead of refusing the others.
        if (a->failed_batch) {
            int m = es_local_check_result(txn, j->service, &r, err);
            if (m < 0 && err->code != ES_EPROTO)
                return -1;
            if (m < 0) {
                es_log_warn("%s: failed batch %u: %s; kept pending", j->service, j->batch,
                            err->what);
                a->skipped++;
            }
            if (m <= 0)
                continue;
        }
        if (es_local_apply_result(txn, j->service, &r, s_remove_after(j, x->object->name), err))
            return -1;
        a->applied++;
    }
    if (j->req.cache_key[0] &&
        es_txn_del(txn, "upcache", j->req.cache_key, strlen(j->req.cache_key), err) < 0)
        return -1;
    //  The next batch, read after this answer's changes, and its upcache row go into the same
    //  commit: the row is durable before that request leaves, one synchronous commit a batch
    //  instead of two. A batch that cannot be built leaves the answer to commit alone.
    if (a->chain) {
        uint64_t after = j->req.replay ? j->after : j->req.last_rsn;
        a->next_rc = s_build_in(a->self, txn, after, &a->next, &a->next_err);
        if (a->next_rc == 1 && a->next.request_id[0]) {
            cache_put_t c = {&a->next, j->object[0] ? CACHE_OBJECT : CACHE_SERVICE, 0};
            if (s_cache_put_fn(txn, &c, err))
                return -1;
            a->next.cached = true;
        }
    }
    s_crash_point("mid_apply"); //  everything written, nothing committed
    return 0;
}

//  Whether the next batch may be built inside the apply: no cached request is left to replay
//  first, and the job goes on.
static bool
s_can_chain(const job_t *j)
{
    return !j->cancelled && j->next_replay >= j->nreplay;
}

//  After an answer is committed: send the batch built in its transaction, or end the job when
//  there was none, or go the ordinary way (s_next) when none was built.
static void
s_continue(upload_t *self, apply_t *ap)
{
    job_t *j = &self->job;
    if (!ap->chain) {
        s_next(self);
        return;
    }
    j->attempt = 0;
    if (ap->next_rc < 0) {
        s_req_release(&ap->next);
        s_job_end(self, 2000, ap->next_err.what);
        return;
    }
    if (ap->next_rc == 0) {
        s_req_release(&ap->next);
        if (j->failed_batches && !j->ok_batches)
            s_job_end(self, 2038, "every upload batch was rejected by the server");
        else
            s_job_end(self, 0, NULL);
        return;
    }
    s_req_release(&j->req);
    j->req = ap->next; //  takes its url and body
    memset(&ap->next, 0, sizeof ap->next);
    j->t_start = es_now_ms();
    j->batch++;
    s_progress(self, "Started", (uint32_t)j->req.records, 0, 0, 0, false);
    s_send(self);
}

//  Give up on the request: keep its cache row only where the server may still apply or have
//  applied it (timeout, 429, already in progress: SPEC 3.3 step 3).
static void
s_fail(upload_t *self, int32_t code, bool keep_cache, const char *what)
{
    job_t *j = &self->job;
    es_err_t err;
    if (j->req.cache_key[0] && !keep_cache &&
        es_store_write(self->w.store, s_cache_del_fn, j->req.cache_key, &err))
        es_log_error("upcache %s: %s", j->req.cache_key, err.what);
    if (j->req.replay) {
        char *msg = es_sprintf("replay of the cached upload %s: %s", j->req.cache_key, what);
        s_job_end(self, 2476, msg);
        free(msg);
        return;
    }
    s_job_end(self, code, what);
}

static bool
s_retry(upload_t *self, const es_http_result_t *r, const char *what)
{
    job_t *j = &self->job;
    if (j->cancelled || j->attempt >= es_config_int(self->w.config, "retry.max_attempts"))
        return false;
    int64_t d = es_http_retry_delay_ms(j->attempt, es_config_int(self->w.config, "retry.base_ms"),
                                       es_config_int(self->w.config, "retry.max_ms"),
                                       r ? r->retry_after_s : -1, &self->seed);
    j->attempt++;
    self->w.retry_at = es_now_ms() + d;
    es_log_warn("%s: upload batch %u: %s; retry %u in %lld ms", j->service, j->batch, what,
                j->attempt, (long long)d);
    return true;
}

static void
s_on_done(void *ctx, const es_http_result_t *r)
{
    upload_t *self = ctx;
    job_t *j = &self->job;
    j->in_flight = false;
    s_crash_point("after_answer");
    int64_t t_done = es_now_ms();
    bool cache = j->req.request_id[0] != '\0';
    char what[ES_ERR_WHAT_MAX + 300];
    if (r->curl_code != CURLE_OK || r->data_failed || r->status != 200) {
        if (r->curl_code != CURLE_OK || r->data_failed)
            snprintf(what, sizeof what, "%s", r->err.what);
        else
            snprintf(what, sizeof what, "%s: HTTP %ld%s%.200s", j->req.url, r->status,
                     r->excerpt[0] ? ": " : "", r->excerpt);
        bool timeout = r->curl_code == CURLE_OPERATION_TIMEDOUT;
        bool transient = (r->curl_code != CURLE_OK && !es_http_tls_permanent(r)) ||
                         r->status == 429 || r->status >= 500;
        //  Without the cache a request that reached the server must not be sent twice.
        bool safe =
            cache || r->curl_code == CURLE_COULDNT_CONNECT || r->status == 429 || r->status == 503;
        if (transient && safe && s_retry(self, r, what))
            return;
        int code = es_http_vmx_code(r);
        //  Keep the cached request unless it certainly never reached the server (no
        //  connection) or the server refused it outright (4xx): if it may have been applied,
        //  only its own request id may carry it again (D15 over SPEC 3.3's shorter list).
        bool unsent =
            r->curl_code == CURLE_COULDNT_CONNECT || r->curl_code == CURLE_COULDNT_RESOLVE_HOST;
        bool refused =
            r->curl_code == CURLE_OK && r->status >= 400 && r->status < 500 && r->status != 429;
        (void)timeout;
        s_fail(self, code ? code : 2030, !(unsent || refused), what);
        return;
    }
    answer_t ans = {.self = self};
    es_buf_init(&ans.data);
    es_upload_summary_t sum;
    es_err_t err;
    size_t errors_mark = j->errors.len;
    if (es_upload_parse(j->meta, j->resp.data ? j->resp.data : "", j->resp.len, s_on_rec, &ans,
                        &sum, &err)) {
        //  A garbled answer: with the cache the same id gets the stored answer again.
        j->errors.len = errors_mark;
        if (j->errors.data)
            j->errors.data[errors_mark] = '\0';
        s_answer_release(&ans);
        snprintf(what, sizeof what, "%s: %s", j->req.url, err.what);
        if (cache && s_retry(self, r, what))
            return;
        s_fail(self, 2037, true, what); //  it may have been applied: keep its id
        return;
    }
    int64_t t_parsed = es_now_ms();
    if (sum.has_opstatus && sum.opstatus == 500210) {
        s_answer_release(&ans);
        snprintf(what, sizeof what, "The upload request is already in progress (request %s)",
                 j->req.request_id);
        j->errors.len = errors_mark;
        if (j->errors.data)
            j->errors.data[errors_mark] = '\0';
        if (s_retry(self, r, what))
            return;
        s_fail(self, 2044, true, what);
        return;
    }
    bool partial = sum.opstatus >= 500100 && sum.opstatus <= 500200;
    if (sum.has_opstatus && sum.opstatus != 0 && !partial) {
        //  The batch failed as a whole (2038), but the body is still an upload answer (SPEC
        //  3.4.4): the records it answers with success were applied by the server. Apply those
        //  that match what was sent, with the removal of the cache row, in one transaction;
        //  left pending they would be sent again under a new request id, and auto-key creates
        //  would be duplicated. The other changes stay pending; go on with the next batch.
        if (ans.n)
            qsort(ans.results, ans.n, sizeof *ans.results, s_by_row_id);
        apply_t ap = {.self = self, .answer = &ans, .failed_batch = true, .chain = s_can_chain(j)};
        es_actor_beat(self->w.actor);
        if (es_store_write(self->w.store, s_apply_fn, &ap, &err)) {
            s_req_release(&ap.next);
            s_answer_release(&ans);
            s_fail(self, 2000, true, err.what);
            return;
        }
        s_answer_release(&ans);
        if (j->errors.len == errors_mark)
            s_sync_error(j, j->object[0] ? j->object : j->service, "{}", sum.opstatus,
                         sum.errmsg[0] ? sum.errmsg : "upload rejected");
        if (ap.skipped) {
            char msg[160];
            snprintf(msg, sizeof msg,
                     "%u successful records of the failed batch did not match what was sent; "
                     "their changes stay pending",
                     ap.skipped);
            s_sync_error(j, j->object[0] ? j->object : j->service, "{}", sum.opstatus, msg);
        }
        j->uploaded += ap.applied;
        j->failed_batches++;
        if (!j->req.replay)
            j->after = j->req.last_rsn;
        s_progress(self, "Ended", ap.applied, t_done - j->t_start, t_done - j->t_sent, 0, false);
        s_continue(self, &ap);
        return;
    }
    if (ans.missing_row_id) {
        s_answer_release(&ans);
        snprintf(what, sizeof what,
                 "Sync upload failed with an error: rowId key missing for a "
                 "record of object -%s",
                 ans.missing_object);
        s_fail(self, 2473, true, what);
        return;
    }
    if (ans.n)
        qsort(ans.results, ans.n, sizeof *ans.results, s_by_row_id);
    apply_t ap = {.self = self, .answer = &ans, .chain = s_can_chain(j)};
    es_actor_beat(self->w.actor);
    if (es_store_write(self->w.store, s_apply_fn, &ap, &err)) {
        s_req_release(&ap.next);
        s_answer_release(&ans);
        //  An answer that does not match what was sent is refused whole (nothing applied).
        s_fail(self, err.code == ES_EPROTO ? 2473 : 2000, true, err.what);
        return;
    }
    int64_t t_committed = es_now_ms();
    uint32_t accepted = (uint32_t)ans.n;
    //  Every record sent must be answered (SPEC 5.4). One left out was not applied here and its
    //  change stays pending for the next sync; say so rather than report a clean batch.
    size_t answered = j->req.replay ? 0 : s_answered(&ans, j->after, j->req.last_rsn);
    if (!j->req.replay && answered < j->req.records) {
        snprintf(what, sizeof what,
                 "%zu of the %zu records sent in batch %u (rowIds %llu..%llu) have no result in "
                 "the upload answer; their changes stay pending",
                 j->req.records - answered, j->req.records, j->batch,
                 (unsigned long long)j->after + 1, (unsigned long long)j->req.last_rsn);
        es_log_warn("%s: %s", j->service, what);
        s_sync_error(j, j->object[0] ? j->object : j->service, "{}", 0, what);
    }
    s_answer_release(&ans);
    j->uploaded += accepted;
    if (j->req.replay)
        j->replays++;
    else
        j->after = j->req.last_rsn;
    j->ok_batches++;
    s_progress(self, "Ended", accepted, j->t_sent - j->t_start, t_parsed - j->t_sent,
               t_committed - t_parsed, false);
    s_continue(self, &ap);
}

//  --- jobs ------------------------------------------------------------------------------------

static void
s_start_job(upload_t *self, const es_upload_t *u)
{
    job_t *j = &self->job;
    es_err_t err;
    if (j->active) {
        es_worker_job_done(&self->w, u->session, u->job, 2460, "upload actor busy with another job",
                           NULL);
        return;
    }
    memset(j, 0, sizeof *j);
    j->active = true;
    es_actor_set_busy(self->w.actor, true);
    snprintf(j->session, sizeof j->session, "%s", u->session);
    j->id = u->job;
    snprintf(j->service, sizeof j->service, "%s", u->service);
    snprintf(j->object, sizeof j->object, "%s", u->object);
    es_buf_init(&j->resp);
    es_buf_init(&j->errors);
    es_buf_init(&j->req.body);
    char *base;
    int32_t code;
    if (es_worker_job_open(&self->w, u->service, u->object, u->options, 2473, &j->meta, &base,
                           &j->opts, &code, &err)) {
        s_job_end(self, code, err.what);
        return;
    }
    j->opts_parsed = true;
    //  Object level: the object's endpoint; service level: the service's (SPEC 5.3).
    es_buf_t url;
    es_buf_init(&url);
    es_buf_puts(&url, base);
    if (j->object[0]) {
        es_buf_puts(&url, "/objects/");
        es_http_url_escape(&url, j->object);
    }
    free(base);
    j->endpoint = es_buf_steal(&url);
    es_buf_t q;
    es_buf_init(&q);
    bool first = true;
    for (size_t i = 0; i < j->opts.nupload_params; i++)
        es_http_query_add(&q, &first, j->opts.upload_params[i].key, j->opts.upload_params[i].value);
    j->query = es_buf_steal(&q);
    es_txn_t *txn = es_store_begin(self->w.store, false, &err);
    int rc = txn ? es_local_last_rsn(txn, j->service, &j->upto, &err) : -1;
    es_txn_abort(&txn);
    //  Cached requests are replayed even if the service's metadata turned the cache off since:
    //  their changes must not travel again under a new identity.
    if (rc == 0)
        rc = s_plan_replay(self, &err);
    if (rc) {
        s_job_end(self, 2000, err.what);
        return;
    }
    s_next(self);
}

static void
s_on_msg(void *ctx, const es_msg_t *msg)
{
    upload_t *self = ctx;
    if (msg->type == ES_MSG_UPLOAD)
        s_start_job(self, &msg->u.upload);
    else if (msg->type == ES_MSG_CANCEL && self->job.active &&
             strcmp(msg->u.cancel.session, self->job.session) == 0) {
        self->job.cancelled = true;
        if (!self->job.in_flight)
            s_job_end(self, 2478, "Syncing operation has been cancelled");
    }
}

upload_t *
upload_new(const es_actor_opts_t *opts, es_err_t *err)
{
    upload_t *self = es_calloc(1, sizeof *self);
    self->opts = *opts;
    self->seed = (uint32_t)getpid() ^ (uint32_t)es_now_ms();
    self->body = es_upload_body_new();
    if (es_worker_open(&self->w, "upload", opts, err)) {
        upload_destroy(&self);
        return NULL;
    }
    return self;
}

void
upload_destroy(upload_t **self_p)
{
    if (!*self_p)
        return;
    upload_t *self = *self_p;
    job_t *j = &self->job;
    es_meta_destroy(&j->meta);
    if (j->opts_parsed)
        es_syncopts_release(&j->opts);
    for (size_t i = 0; i < j->nreplay; i++)
        free(j->replay[i]);
    free(j->replay);
    free(j->endpoint);
    free(j->query);
    s_req_release(&j->req);
    es_buf_release(&j->resp);
    es_buf_release(&j->errors);
    es_worker_close(&self->w);
    es_upload_body_destroy(&self->body);
    free(self);
    *self_p = NULL;
}

static void
s_on_timer(void *ctx)
{
    upload_t *self = ctx;
    if (self->job.in_flight) {
        s_crash_point("in_flight"); //  the test hook's timer (see s_send)
        return;
    }
    if (self->job.active)
        s_send(self);
}

int
upload_run(upload_t *self, es_err_t *err)
{
    return es_worker_run(&self->w, s_on_msg, s_on_timer, self, err);
}
