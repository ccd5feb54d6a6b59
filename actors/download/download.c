//  download - one object's batched download: request, stream-parse, commit, progress.
#include "actors/download/download.h"
#include "actors/worker/es_worker.h"
#include "common/es_log.h"
#include "common/es_mem.h"
#include "protocol/es_dlparse.h"
#include "protocol/es_json.h"
#include "protocol/es_key.h"
#include "protocol/es_meta.h"
#include "protocol/es_syncopts.h"
#include "store/es_local.h"
#include "store/es_store.h"
#include "store/es_svc.h"
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <yajl/yajl_tree.h>

enum { OP_PUT = 1, OP_DEL = 2 };
#define ES_KEY_STORE_MAX 511 //  LMDB's default maximum key size
//  Parsed records of a batch are held until its commit; past this they go to an unlinked temp
//  file in the data dir, so memory does not grow with downloadBatchSize.
#define OPS_MEM_MAX (1u << 20)
//  Commits read the store's pages through its map; after this many response bytes the actor
//  gives them back (es_store_trim), so its memory does not grow with the table.
#define TRIM_EVERY (8u << 20)

//  Parsed records of one batch: [op][u32 key length][key][u32 value length][value]...
typedef struct {
    es_buf_t buf;   //  records not spilled
    uint32_t n;     //  records in buf and the spill file
    int spill_fd;   //  records beyond OPS_MEM_MAX, in order before buf (-1: none yet)
    size_t spilled; //  bytes in the spill file
} ops_t;

//  Figures of one batch for its "Ended" progress message.
typedef struct {
    uint32_t records;   //  records committed
    size_t bytes;       //  response bytes
    int64_t request_ms; //  building and starting the request
    int64_t network_ms; //  waiting for the response, parsing excluded
    int64_t parse_ms;   //  in the parser
    int64_t persist_ms; //  the commit
    uint32_t retries;   //  attempts before the one that succeeded
} figures_t;

typedef struct {
    bool active;                   //  a job is running
    char session[ES_NAME_MAX + 1]; //  its session
    uint64_t id;                   //  job id
    char service[ES_NAME_MAX + 1]; //  object service
    char object[ES_NAME_MAX + 1];  //  object
    es_meta_t *meta;               //  service metadata
    const es_meta_object_t *obj;   //  the object in meta
    es_syncopts_t opts;            //  parsed options
    bool opts_parsed;              //  opts must be released
    char *url;                     //  request URL with query string
    char *filter;                  //  this object's filter, or NULL
    es_buf_t ctx_key;              //  "object\nfilter" key of the ctx table
    char *delta;                   //  stored delta (for the final write), or NULL
    uint32_t batch;                //  batch being fetched (its predecessor is committed)
    uint64_t records;              //  records committed in this job (incl. earlier runs)
    es_buf_t body;                 //  request body of the current batch
    bool cancelled;                //  finish the batch in flight, then stop
    //  The batch in flight. Its request goes out as soon as the previous response is parsed,
    //  before that batch commits, so the server prepares it meanwhile (at most two batches in
    //  memory: the one committing, in ready, and the one arriving, in ops).
    bool in_flight;          //  a request is running
    uint32_t attempt;        //  retries of this batch so far
    es_dlparse_t *parser;    //  response parser
    ops_t ops;               //  records parsed from the response in flight
    ops_t ready;             //  records of the parsed batch being committed
    int64_t t_start, t_sent; //  timing of the batch (ms)
    int64_t parse_us;        //  time spent in the parser
    size_t bytes;            //  response bytes
    size_t untrimmed;        //  response bytes committed since the last store trim
    es_err_t parse_err;      //  why the parser stopped
    es_buf_t errors;         //  syncErrors.download entries (JSON objects, comma-joined)
} job_t;

struct download {
    es_actor_opts_t opts; //  argv
    es_worker_t w;        //  config, store, http, actor, retry timer
    job_t job;            //  the current job
    es_buf_t key, val;    //  scratch for record encoding
    uint32_t seed;        //  jitter
};

//  --- messages to the orchestrator ----------------------------------------------------------

//  state "Started"/"InProgress" (f NULL) or "Ended" with the batch's figures.
static void
s_progress(download_t *self, const char *state, const figures_t *f, bool last)
{
    static const figures_t none;
    if (!f)
        f = &none;
    job_t *j = &self->job;
    es_msg_t m;
    es_msg_init(&m, ES_MSG_PROGRESS, 0);
    es_progress_t *p = &m.u.progress;
    snprintf(p->session, sizeof p->session, "%s", j->session);
    p->job = j->id;
    snprintf(p->phase, sizeof p->phase, "Download");
    snprintf(p->state, sizeof p->state, "%s", state);
    snprintf(p->object, sizeof p->object, "%s", j->object);
    p->batch = j->batch;
    p->records = f->records;
    p->bytes = f->bytes;
    p->request_ms = (uint32_t)f->request_ms;
    p->network_ms = (uint32_t)(f->network_ms < 0 ? 0 : f->network_ms);
    p->parse_ms = (uint32_t)f->parse_ms;
    p->persist_ms = (uint32_t)f->persist_ms;
    p->retries = f->retries;
    p->last = last;
    es_err_t err;
    if (es_actor_send(self->w.actor, &m, &err))
        es_log_warn("progress: %s", err.what);
}

static void
s_ops_init(ops_t *o)
{
    es_buf_init(&o->buf);
    o->n = 0;
    o->spill_fd = -1;
    o->spilled = 0;
}

static void
s_ops_release(ops_t *o)
{
    es_buf_release(&o->buf);
    if (o->spill_fd >= 0)
        close(o->spill_fd);
    s_ops_init(o);
}

//  Forget the records (after their commit, or before a retry); allocations are kept.
static void
s_ops_reset(ops_t *o)
{
    es_buf_reset(&o->buf);
    o->n = 0;
    if (o->spill_fd >= 0 && o->spilled && ftruncate(o->spill_fd, 0) == -1)
        es_log_warn("spill file: truncate: %s", strerror(errno)); //  overwritten from 0 anyway
    o->spilled = 0;
}

//  Release everything the job holds; a request in flight is dropped (what it would have
//  committed is fetched again by whoever resumes).
static void
s_job_release(download_t *self)
{
    job_t *j = &self->job;
    if (j->in_flight)
        es_http_abort_all(self->w.http); //  the actor's only transfers are its job's
    es_dlparse_destroy(&j->parser);
    es_meta_destroy(&j->meta);
    if (j->opts_parsed)
        es_syncopts_release(&j->opts);
    free(j->url);
    free(j->filter);
    free(j->delta);
    es_buf_release(&j->ctx_key);
    es_buf_release(&j->body);
    s_ops_release(&j->ops);
    s_ops_release(&j->ready);
    es_buf_release(&j->errors);
    memset(j, 0, sizeof *j);
    s_ops_init(&j->ops);
    s_ops_init(&j->ready);
}

static void
s_job_end(download_t *self, int32_t code, const char *what)
{
    job_t *j = &self->job;
    es_buf_t result;
    es_buf_init(&result);
    //  records: every record this session committed for the object (also before a restart).
    es_buf_printf(&result, "{\"records\":%llu,\"syncErrors\":[%s]}", (unsigned long long)j->records,
                  j->errors.data ? j->errors.data : "");
    es_worker_job_done(&self->w, j->session, j->id, code, what, result.data);
    es_buf_release(&result);
    if (code && code != 2478)
        es_log_warn("%s/%s: download failed (%d): %s", j->service, j->object, code, what);
    else
        es_log_info("%s/%s: download %s: %llu records in %u batches", j->service, j->object,
                    code ? "cancelled" : "done", (unsigned long long)j->records, j->batch);
    s_job_release(self);
    es_actor_set_busy(self->w.actor, false);
}

//  --- the request ---------------------------------------------------------------------------

//  The ctx row of this object and filter: {"delta":..., "partial":{"session","batch","records",
//  "delta_context"}}. Decides the first request body: resume this session's last committed
//  batch (D15), or the preserved batch context of an earlier failed session (D7), or the delta.
static int
s_load_ctx(download_t *self, es_err_t *err)
{
    job_t *j = &self->job;
    es_txn_t *txn = es_store_begin(self->w.store, false, err);
    if (!txn)
        return -1;
    const void *val;
    size_t vlen;
    int rc = es_txn_get(txn, "ctx", j->ctx_key.data, j->ctx_key.len, &val, &vlen, err);
    char *text = rc == 1 ? es_strndup(val, vlen) : NULL;
    es_txn_abort(&txn);
    if (rc < 0)
        return -1;
    es_buf_reset(&j->body);
    j->batch = 1;
    if (!text) {
        es_buf_puts(&j->body, "{}");
        return 0;
    }
    yajl_val root = yajl_tree_parse(text, NULL, 0);
    free(text);
    const char *dp[] = {"delta", NULL}, *pp[] = {"partial", NULL};
    const char *sp[] = {"session", NULL}, *bp[] = {"batch", NULL}, *rp[] = {"records", NULL};
    const char *cp[] = {"delta_context", NULL};
    yajl_val delta = root ? yajl_tree_get(root, dp, yajl_t_string) : NULL;
    yajl_val partial = root ? yajl_tree_get(root, pp, yajl_t_object) : NULL;
    const char *dtext = delta ? YAJL_GET_STRING(delta) : NULL;
    if (dtext)
        j->delta = es_strdup(dtext);
    yajl_val psess = partial ? yajl_tree_get(partial, sp, yajl_t_string) : NULL;
    yajl_val pctx = partial ? yajl_tree_get(partial, cp, yajl_t_object) : NULL;
    const char *stext = psess ? YAJL_GET_STRING(psess) : NULL;
    bool same = stext && strcmp(stext, j->session) == 0;
    if (pctx && (same || j->opts.preserve_batch_context)) {
        es_buf_puts(&j->body, "{\"delta_context\":");
        es_json_write(&j->body, pctx);
        es_buf_putc(&j->body, '}');
        if (same) {
            yajl_val pb = yajl_tree_get(partial, bp, yajl_t_number);
            yajl_val pr = yajl_tree_get(partial, rp, yajl_t_number);
            j->batch = (pb && YAJL_IS_INTEGER(pb) ? (uint32_t)YAJL_GET_INTEGER(pb) : 0) + 1;
            j->records = pr && YAJL_IS_INTEGER(pr) ? (uint64_t)YAJL_GET_INTEGER(pr) : 0;
        }
        es_log_info("%s/%s: resuming at batch %u (%s)", j->service, j->object, j->batch,
                    same ? "same session" : "preserved batch context");
    } else if (j->delta) {
        es_buf_puts(&j->body, "{\"delta_context\":{\"objs\":{");
        es_buf_json_str(&j->body, j->object, strlen(j->object));
        es_buf_puts(&j->body, ":{\"delta\":");
        es_buf_json_str(&j->body, j->delta, strlen(j->delta));
        es_buf_puts(&j->body, "}}}}");
    } else {
        es_buf_puts(&j->body, "{}");
    }
    yajl_tree_free(root);
    return 0;
}

static int s_on_record(void *ctx, const es_dl_record_t *r, es_err_t *err);
static void s_on_object_error(void *ctx, const char *object, int64_t opstatus, const char *errmsg);
static int s_on_data(void *ctx, const char *data, size_t len, es_err_t *err);
static void s_on_done(void *ctx, const es_http_result_t *r);

static const es_dlparse_cb_t s_parse_cb = {s_on_record, s_on_object_error};
static const es_http_cb_t s_http_cb = {s_on_data, s_on_done};

//  Start the request of j->body for the current batch. 0, or -1 with err.
static int
s_request(download_t *self, es_err_t *err)
{
    job_t *j = &self->job;
    self->w.retry_at = 0;
    j->t_start = es_now_ms();
    j->bytes = 0;
    j->parse_us = 0;
    s_ops_reset(&j->ops);
    es_err_clear(&j->parse_err);
    es_dlparse_destroy(&j->parser);
    j->parser = es_dlparse_new(j->meta, j->obj, &s_parse_cb, self);
    const char *prefix = es_config_str(self->w.config, "header_prefix");
    const char *token = es_config_str(self->w.config, "auth_token");
    char *h[5];
    size_t nh = 0;
    h[nh++] = es_strdup("X-Http-Method-Override: GET");
    h[nh++] = es_strdup("Content-Type: application/json");
    h[nh++] = es_sprintf("%sAPI-Version: %s", prefix, j->meta->version);
    if (*token)
        h[nh++] = es_sprintf("%sAuthorization: %s", prefix, token);
    int rc = es_http_start(self->w.http, j->url, j->body.data, j->body.len, (const char *const *)h,
                           nh, &s_http_cb, self, err);
    for (size_t i = 0; i < nh; i++)
        free(h[i]);
    j->t_sent = es_now_ms();
    if (rc)
        return -1;
    j->in_flight = true;
    return 0;
}

//  The first request of a batch (with its progress events) or a retry.
static void
s_send(download_t *self)
{
    job_t *j = &self->job;
    if (j->attempt == 0) {
        s_progress(self, "Started", NULL, false);
        s_progress(self, "InProgress", NULL, false);
    }
    es_err_t err;
    if (s_request(self, &err))
        s_job_end(self, 2030, err.what);
}

//  --- the response --------------------------------------------------------------------------

//  Move the buffered records to the spill file (whole records only).
static int
s_spill(download_t *self, ops_t *o, es_err_t *err)
{
    if (o->spill_fd < 0) {
        o->spill_fd = open(self->opts.data_dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
        if (o->spill_fd < 0)
            return es_err_set(err, ES_ESYS, "spill file in %s: %s", self->opts.data_dir,
                              strerror(errno));
    }
    const char *p = o->buf.data;
    size_t left = o->buf.len;
    while (left) {
        ssize_t n = pwrite(o->spill_fd, p, left, (off_t)o->spilled);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return es_err_set(err, ES_ESYS, "spill file: write: %s",
                              n < 0 ? strerror(errno) : "no progress");
        p += n;
        left -= (size_t)n;
        o->spilled += (size_t)n;
    }
    es_buf_reset(&o->buf);
    return 0;
}

static int
s_on_record(void *ctx, const es_dl_record_t *r, es_err_t *err)
{
    download_t *self = ctx;
    job_t *j = &self->job;
    ops_t *o = &j->ops;
    size_t cslen = strlen(r->checksum);
    if (cslen > 1024)
        return es_err_set(err, ES_EPROTO, "records[%u]._metadata.checksum: longer than 1024 bytes",
                          o->n);
    if (es_key_from_record(r->object, r->rec, r->rec_len, &self->key, err))
        return es_err_prefix(err, "records[%u]", o->n);
    if (self->key.len > ES_KEY_STORE_MAX) {
        //  LMDB keys stop at 511 bytes: report the record, keep the rest of the batch.
        if (j->errors.len)
            es_buf_putc(&j->errors, ',');
        es_buf_puts(&j->errors, "{\"object\":");
        es_buf_json_str(&j->errors, j->object, strlen(j->object));
        es_buf_puts(&j->errors, ",\"objectService\":");
        es_buf_json_str(&j->errors, j->service, strlen(j->service));
        es_buf_printf(&j->errors,
                      ",\"opstatus\":0,\"errmsg\":\"primary key of %zu bytes "
                      "exceeds the local store's limit of %d bytes; record skipped\"}",
                      self->key.len, ES_KEY_STORE_MAX);
        return 0;
    }
    //  [op][u32 key length][key][u32 value length][value]: one append of a header and the
    //  key, then the value (it is a few hundred bytes, and this runs for every record).
    uint8_t head[ES_KEY_STORE_MAX + 9];
    uint32_t klen = (uint32_t)self->key.len, vlen = 0;
    head[0] = r->is_delete ? OP_DEL : OP_PUT;
    memcpy(head + 1, &klen, 4);
    memcpy(head + 5, self->key.data, klen);
    if (!r->is_delete) {
        es_store_rec_pack(&self->val, r->checksum, cslen, r->rec, r->rec_len);
        vlen = (uint32_t)self->val.len;
    }
    memcpy(head + 5 + klen, &vlen, 4);
    es_buf_append(&o->buf, head, 9 + klen);
    if (vlen)
        es_buf_append(&o->buf, self->val.data, vlen);
    o->n++;
    if (o->buf.len >= OPS_MEM_MAX)
        return s_spill(self, o, err);
    return 0;
}

static void
s_on_object_error(void *ctx, const char *object, int64_t opstatus, const char *errmsg)
{
    download_t *self = ctx;
    es_log_warn("%s: object %s: opstatus %lld: %s", self->job.service, object, (long long)opstatus,
                errmsg);
}

static int
s_on_data(void *ctx, const char *data, size_t len, es_err_t *err)
{
    download_t *self = ctx;
    job_t *j = &self->job;
    j->bytes += len;
    int64_t t0 = es_now_ms();
    int rc = es_dlparse_feed(j->parser, data, len, &j->parse_err);
    j->parse_us += (es_now_ms() - t0) * 1000;
    if (rc) {
        *err = j->parse_err;
        return -1;
    }
    return 0;
}

typedef struct {
    download_t *self;
    const ops_t *ops;        //  the batch's records
    uint32_t batch;          //  its number
    const char *partial_ctx; //  delta_context to store for resume, or NULL on the final batch
    const char *new_delta;   //  delta to store with the final batch
} commit_t;

//  Apply the parsed records of the batch. A row with local state (a baseline in orig:) is not
//  overwritten: the server version becomes its new baseline (SPEC 3.6.5). protect false: the
//  object has no local state at all, so no row needs the per-record lookups.
static int
s_apply_ops(es_txn_t *txn, const job_t *j, bool protect_rows, const char *ops, size_t len,
            const char *main_t, es_err_t *err)
{
    const char *p = ops, *end = ops + len;
    while (p < end) {
        uint8_t op = (uint8_t)*p++;
        uint32_t klen, vlen;
        memcpy(&klen, p, 4);
        p += 4;
        const char *key = p;
        p += klen;
        memcpy(&vlen, p, 4);
        p += 4;
        const char *val = p;
        p += vlen;
        int protect =
            protect_rows ? es_local_protect(txn, j->object, key, klen, op == OP_DEL, val, vlen, err)
                         : 0;
        if (protect < 0)
            return -1;
        if (protect)
            continue;
        if (op == OP_PUT) {
            if (es_txn_put(txn, main_t, key, klen, val, vlen, err))
                return -1;
        } else if (es_txn_del(txn, main_t, key, klen, err) < 0) {
            return -1;
        }
    }
    return 0;
}

//  Test hook: ES_TEST_STOP_IN_TXN=<marker file> stops this process (SIGSTOP) inside a batch's
//  write transaction, holding the LMDB writer lock, the first time any download actor gets
//  there (creating the marker decides which one): shows the supervisor still replaces it.
//  With ES_TEST_STOP_AT_BATCH=<n>, only in the transaction of batch n (the request of batch
//  n+1 is out by then: shows a crash there loses and duplicates nothing).
static void
s_test_stop_in_txn(uint32_t batch)
{
    const char *marker = getenv("ES_TEST_STOP_IN_TXN");
    if (!marker || !*marker)
        return;
    const char *at = getenv("ES_TEST_STOP_AT_BATCH");
    if (at && *at && strtoul(at, NULL, 10) != batch)
        return;
    int fd = open(marker, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0600);
    if (fd == -1)
        return; //  fired already
    (void)close(fd);
    es_log_warn("test hook: stopping inside a write transaction");
    (void)raise(SIGSTOP);
}

//  Whether any row of the object may have pending local state (pend: or orig: rows, see
//  es_local.h). Asked once per batch inside its write transaction, which no local edit can
//  interleave with. 1 yes, 0 no, -1 error.
static int
s_has_local_state(es_txn_t *txn, const char *object, es_err_t *err)
{
    static const char *const prefixes[] = {"pend", "orig"};
    es_buf_t t;
    es_buf_init(&t);
    int rc = 0;
    for (size_t i = 0; i < 2 && rc == 0; i++) {
        es_store_table(&t, prefixes[i], object);
        int64_t n = es_txn_count(txn, t.data, err);
        rc = n < 0 ? -1 : n > 0;
    }
    es_buf_release(&t);
    return rc;
}

static int
s_commit_fn(es_txn_t *txn, void *ctx, es_err_t *err)
{
    commit_t *c = ctx;
    job_t *j = &c->self->job;
    const ops_t *o = c->ops;
    s_test_stop_in_txn(c->batch);
    //  Rows with pending local state keep their values (SPEC 3.6.5); with
    //  downloadReconciliationRequired false the server version wins unconditionally.
    int protect = j->opts.reconcile ? s_has_local_state(txn, j->object, err) : 0;
    if (protect < 0)
        return -1;
    es_buf_t main_b;
    es_buf_init(&main_b);
    es_store_table(&main_b, "main", j->object);
    int rc = 0;
    if (o->spilled) {
        //  Spilled records first (they were parsed first); the mapping is file-backed, so
        //  the kernel can drop its pages under pressure.
        void *map = mmap(NULL, o->spilled, PROT_READ, MAP_SHARED, o->spill_fd, 0);
        if (map == MAP_FAILED) {
            rc = es_err_set(err, ES_ESYS, "spill file: mmap: %s", strerror(errno));
        } else {
            rc = s_apply_ops(txn, j, protect, map, o->spilled, main_b.data, err);
            munmap(map, o->spilled);
        }
    }
    if (rc == 0)
        rc = s_apply_ops(txn, j, protect, o->buf.data, o->buf.len, main_b.data, err);
    es_buf_release(&main_b);
    if (rc)
        return -1;
    //  The context goes in the same transaction as the batch: that makes resume exact.
    es_buf_t row;
    es_buf_init(&row);
    es_buf_puts(&row, "{\"delta\":");
    const char *delta = c->new_delta ? c->new_delta : j->delta;
    if (delta)
        es_buf_json_str(&row, delta, strlen(delta));
    else
        es_buf_puts(&row, "null");
    if (c->partial_ctx) {
        es_buf_puts(&row, ",\"partial\":{\"session\":");
        es_buf_json_str(&row, j->session, strlen(j->session));
        es_buf_printf(&row, ",\"batch\":%u,\"records\":%llu,\"delta_context\":%s}", c->batch,
                      (unsigned long long)(j->records + o->n), c->partial_ctx);
    }
    es_buf_putc(&row, '}');
    rc = es_txn_put(txn, "ctx", j->ctx_key.data, j->ctx_key.len, row.data, row.len, err);
    es_buf_release(&row);
    return rc;
}

static bool
s_transient(const es_http_result_t *r)
{
    if (r->data_failed)
        return r->err.code == ES_EPROTO; //  a garbled body may be fetched again; too big not
    if (r->curl_code != CURLE_OK)
        return !es_http_tls_permanent(r);
    return r->status == 429 || r->status >= 500;
}

static void
s_on_done(void *ctx, const es_http_result_t *r)
{
    download_t *self = ctx;
    job_t *j = &self->job;
    j->in_flight = false;
    int64_t now = es_now_ms();
    es_err_t err;
    char what[ES_ERR_WHAT_MAX + 64];
    bool ok_http = !r->data_failed && r->curl_code == CURLE_OK && r->status == 200;
    bool parsed = ok_http && es_dlparse_finish(j->parser, &j->parse_err) == 0;
    if (!parsed) {
        if (ok_http)
            snprintf(what, sizeof what, "%s: %s", j->url, j->parse_err.what);
        else if (r->curl_code != CURLE_OK || r->data_failed)
            snprintf(what, sizeof what, "%s", r->err.what);
        else
            snprintf(what, sizeof what, "%s: HTTP %ld%s%.200s", j->url, r->status,
                     r->excerpt[0] ? ": " : "", r->excerpt);
        bool transient = ok_http || s_transient(r);
        if (transient && j->attempt < es_config_int(self->w.config, "retry.max_attempts") &&
            !j->cancelled) {
            int64_t d = es_http_retry_delay_ms(
                j->attempt, es_config_int(self->w.config, "retry.base_ms"),
                es_config_int(self->w.config, "retry.max_ms"), r->retry_after_s, &self->seed);
            j->attempt++;
            self->w.retry_at = now + d;
            es_log_warn("%s/%s: batch %u: %s; retry %u in %lld ms", j->service, j->object, j->batch,
                        what, j->attempt, (long long)d);
            return;
        }
        int32_t code = ok_http ? 2037 : es_http_vmx_code(r) ? es_http_vmx_code(r) : 2474;
        if (!ok_http && r->curl_code == CURLE_OK && !r->data_failed &&
            (r->status == 401 || r->status == 403))
            snprintf(what + strlen(what), sizeof what - strlen(what),
                     " (backend refused the credentials: check auth_token)");
        s_job_end(self, code, what);
        return;
    }
    if (es_dlparse_has_opstatus(j->parser) && es_dlparse_opstatus(j->parser) != 0) {
        snprintf(what, sizeof what, "Server responded with error opstatus %lld: %s",
                 (long long)es_dlparse_opstatus(j->parser), es_dlparse_errmsg(j->parser));
        s_job_end(self, 2038, what);
        return;
    }
    bool more = es_dlparse_has_more(j->parser);
    const char *dctx = es_dlparse_delta_context(j->parser);
    const char *new_delta = es_dlparse_delta(j->parser, j->object);
    if (more && !dctx) {
        snprintf(what, sizeof what, "%s: hasMoreRecords is true but delta_context is missing",
                 j->url);
        s_job_end(self, 2474, what);
        return;
    }
    //  A server that says "more" without moving on would loop for ever.
    if (more && es_dlparse_count(j->parser) == 0 && strstr(j->body.data, dctx)) {
        snprintf(what, sizeof what,
                 "%s: hasMoreRecords is true but the batch is empty and delta_context did not "
                 "change",
                 j->url);
        s_job_end(self, 2474, what);
        return;
    }
    int64_t t_parsed = es_now_ms();
    figures_t f = {.bytes = j->bytes,
                   .request_ms = j->t_sent - j->t_start,
                   .parse_ms = j->parse_us / 1000,
                   .retries = j->attempt};
    f.network_ms = (t_parsed - j->t_sent) - f.parse_ms;
    //  The parsed batch moves to ready (with its parser, which holds dctx), so that the next
    //  request can start now: the server prepares batch N+1 while batch N commits. Nothing of
    //  N+1 is written before N is committed, so a crash anywhere resumes from N-1 or N.
    es_dlparse_t *done_parser = j->parser;
    j->parser = NULL;
    ops_t spare = j->ready;
    j->ready = j->ops;
    j->ops = spare;
    bool prefetch = more && !j->cancelled, prefetch_failed = false;
    es_err_t prefetch_err;
    if (prefetch) {
        //  Next batch: echo the server's delta_context verbatim.
        es_buf_reset(&j->body);
        es_buf_printf(&j->body, "{\"delta_context\":%s}", dctx);
        j->attempt = 0;
        prefetch_failed = s_request(self, &prefetch_err) != 0;
        if (!prefetch_failed)
            es_http_kick(self->w.http);
    }
    commit_t c = {self, &j->ready, j->batch, more ? dctx : NULL, more ? NULL : new_delta};
    //  A big commit (or a wait for the writer lock) must not look like silence.
    es_actor_beat(self->w.actor);
    int rc = es_store_write(self->w.store, s_commit_fn, &c, &err);
    f.persist_ms = es_now_ms() - t_parsed;
    f.records = j->ready.n;
    es_dlparse_destroy(&done_parser); //  dctx and new_delta die here
    if (rc) {
        s_job_end(self, 2000, err.what); //  drops the request of the next batch
        return;
    }
    j->records += j->ready.n;
    j->untrimmed += f.bytes;
    if (j->untrimmed >= TRIM_EVERY || !more) {
        j->untrimmed = 0;
        if (es_store_trim(self->w.store, &err))
            es_log_warn("%s", err.what); //  memory only: the download goes on
    }
    s_ops_reset(&j->ready);
    s_progress(self, "Ended", &f, !more);
    if (!more) {
        s_job_end(self, 0, NULL);
        return;
    }
    if (j->cancelled) {
        s_job_end(self, 2478, "Syncing operation has been cancelled");
        return;
    }
    j->batch++;
    if (prefetch_failed) {
        s_job_end(self, 2030, prefetch_err.what);
        return;
    }
    s_progress(self, "Started", NULL, false);
    s_progress(self, "InProgress", NULL, false);
}

//  --- jobs ------------------------------------------------------------------------------------

static void
s_start_job(download_t *self, const es_download_t *d)
{
    job_t *j = &self->job;
    if (j->active) {
        es_log_warn("job %llu refused: job %llu is running", (unsigned long long)d->job,
                    (unsigned long long)j->id);
        es_worker_job_done(&self->w, d->session, d->job, 2460,
                           "download actor busy with another job", NULL);
        return;
    }
    memset(j, 0, sizeof *j);
    s_ops_init(&j->ops);
    s_ops_init(&j->ready);
    j->active = true;
    es_actor_set_busy(self->w.actor, true);
    snprintf(j->session, sizeof j->session, "%s", d->session);
    j->id = d->job;
    snprintf(j->service, sizeof j->service, "%s", d->service);
    snprintf(j->object, sizeof j->object, "%s", d->object);
    es_buf_init(&j->ctx_key);
    es_buf_init(&j->body);
    es_buf_init(&j->errors);
    es_err_t err;
    char *base;
    int32_t code;
    if (!d->object[0] || es_worker_job_open(&self->w, d->service, d->object, d->options, 2474,
                                            &j->meta, &base, &j->opts, &code, &err)) {
        if (!d->object[0])
            es_err_set(&err, ES_EINVAL, "DOWNLOAD.object: empty");
        s_job_end(self, d->object[0] ? code : 2474, err.what);
        return;
    }
    j->opts_parsed = true;
    j->obj = es_meta_object(j->meta, d->object);
    const char *filter = NULL;
    for (size_t i = 0; i < j->opts.nfilters; i++)
        if (strcmp(j->opts.filters[i].key, j->object) == 0)
            filter = j->opts.filters[i].value;
    j->filter = filter ? es_strdup(filter) : NULL;
    //  URL: user query params, then $filter, $expand, $batchsize (SPEC 3.6.1).
    es_buf_t url;
    es_buf_init(&url);
    es_buf_printf(&url, "%s/objects/", base);
    es_http_url_escape(&url, j->object);
    free(base);
    bool first = true;
    for (size_t i = 0; i < j->opts.ndownload_params; i++)
        es_http_query_add(&url, &first, j->opts.download_params[i].key,
                          j->opts.download_params[i].value);
    if (j->filter)
        es_http_query_add(&url, &first, "$filter", j->filter);
    if (j->obj->expand)
        es_http_query_add(&url, &first, "$expand", j->obj->expand);
    char bs[32];
    snprintf(bs, sizeof bs, "%lld", (long long)j->opts.download_batch_size);
    es_http_query_add(&url, &first, "$batchsize", bs);
    j->url = es_buf_steal(&url);
    es_buf_printf(&j->ctx_key, "%s\n%s", j->object, j->filter ? j->filter : "");
    if (s_load_ctx(self, &err)) {
        s_job_end(self, 2000, err.what);
        return;
    }
    s_send(self);
}

static void
s_on_msg(void *ctx, const es_msg_t *msg)
{
    download_t *self = ctx;
    if (msg->type == ES_MSG_DOWNLOAD)
        s_start_job(self, &msg->u.download);
    else if (msg->type == ES_MSG_CANCEL && self->job.active &&
             strcmp(msg->u.cancel.session, self->job.session) == 0) {
        self->job.cancelled = true;
        //  Waiting to retry: nothing in flight to finish.
        if (!self->job.in_flight)
            s_job_end(self, 2478, "Syncing operation has been cancelled");
    }
}

download_t *
download_new(const es_actor_opts_t *opts, es_err_t *err)
{
    download_t *self = es_calloc(1, sizeof *self);
    self->opts = *opts;
    s_ops_init(&self->job.ops);
    s_ops_init(&self->job.ready);
    self->seed = (uint32_t)getpid() ^ (uint32_t)es_now_ms();
    es_buf_init(&self->key);
    es_buf_init(&self->val);
    if (es_worker_open(&self->w, "download", opts, err)) {
        download_destroy(&self);
        return NULL;
    }
    return self;
}

void
download_destroy(download_t **self_p)
{
    if (!*self_p)
        return;
    download_t *self = *self_p;
    s_job_release(self);
    es_worker_close(&self->w);
    es_buf_release(&self->key);
    es_buf_release(&self->val);
    free(self);
    *self_p = NULL;
}

static void
s_on_timer(void *ctx)
{
    download_t *self = ctx;
    if (self->job.active && !self->job.in_flight)
        s_send(self);
}

int
download_run(download_t *self, es_err_t *err)
{
    return es_worker_run(&self->w, s_on_msg, s_on_timer, self, err);
}
