//  reconcile - key listing into a scratch table, then a sweep of the local rows.
#include "actors/reconcile/reconcile.h"
#include "actors/worker/es_worker.h"
#include "common/es_config.h"
#include "common/es_log.h"
#include "common/es_mem.h"
#include "protocol/es_dlparse.h"
#include "protocol/es_json.h"
#include "protocol/es_key.h"
#include "protocol/es_syncopts.h"
#include "store/es_local.h"
#include "store/es_store.h"
#include "store/es_svc.h"
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <yajl/yajl_tree.h>

#define SWEEP_CHUNK 10000 //  local rows examined per read txn (beginning one costs ~0.2M instructions)

typedef struct {
    bool active;                   //  a job is running
    char session[ES_NAME_MAX + 1]; //  its session
    uint64_t id;                   //  job id
    char service[ES_NAME_MAX + 1]; //  object service
    char object[ES_NAME_MAX + 1];  //  object
    es_meta_t *meta;               //  service metadata
    const es_meta_object_t *obj;   //  the object
    char *url;                     //  listing URL with query string
    es_buf_t body;                 //  request body of the next page
    es_buf_t keys;                 //  keys of the page: [u32 length][key]...
    es_buf_t done_keys;            //  keys of the page committing while the next one arrives
    es_buf_t next_ctx;             //  its delta_context (NUL-terminated)
    es_buf_t scratch;              //  "rkeys:<object>": the backend's keys
    es_buf_t ctx_key;              //  "reconcile\n<object>" in ctx: where the listing stands
    es_dlparse_t *parser;          //  page parser
    es_err_t parse_err;            //  why the parser stopped
    bool in_flight;                //  a request is running
    uint32_t attempt;              //  retries of this page
    uint32_t pages;                //  pages listed
    uint64_t listed;               //  keys listed
    uint64_t deleted;              //  local rows removed
    bool cancelled;                //  stop after the page in flight
} job_t;

struct reconcile {
    es_actor_opts_t opts; //  argv
    es_worker_t w;        //  config, store, http, actor, retry timer
    job_t job;            //  the current job
    uint32_t seed;        //  jitter
};

static void
s_progress(reconcile_t *self, const char *state, uint32_t records)
{
    job_t *j = &self->job;
    es_msg_t m;
    es_msg_init(&m, ES_MSG_PROGRESS, 0);
    es_progress_t *p = &m.u.progress;
    snprintf(p->session, sizeof p->session, "%s", j->session);
    p->job = j->id;
    snprintf(p->phase, sizeof p->phase, "Reconcile");
    snprintf(p->state, sizeof p->state, "%s", state);
    snprintf(p->object, sizeof p->object, "%s", j->object);
    p->records = records;
    p->batch = j->pages;
    p->last = strcmp(state, "Ended") == 0;
    es_err_t err;
    if (es_actor_send(self->w.actor, &m, &err))
        es_log_warn("progress: %s", err.what);
}

static void
s_job_end(reconcile_t *self, int32_t code, const char *what)
{
    job_t *j = &self->job;
    if (j->in_flight) //  the next page, requested before this one committed
        es_http_abort_all(self->w.http);
    char result[96];
    snprintf(result, sizeof result, "{\"reconciledDeletes\":%llu}", (unsigned long long)j->deleted);
    es_worker_job_done(&self->w, j->session, j->id, code, what, result);
    if (code && code != 2478)
        es_log_warn("%s/%s: reconcile failed (%d): %s", j->service, j->object, code, what);
    else
        es_log_info("%s/%s: reconciled: %llu backend keys, %llu local rows removed", j->service,
                    j->object, (unsigned long long)j->listed, (unsigned long long)j->deleted);
    es_dlparse_destroy(&j->parser);
    es_meta_destroy(&j->meta);
    free(j->url);
    es_buf_release(&j->body);
    es_buf_release(&j->keys);
    es_buf_release(&j->done_keys);
    es_buf_release(&j->next_ctx);
    es_buf_release(&j->scratch);
    es_buf_release(&j->ctx_key);
    memset(j, 0, sizeof *j);
    es_actor_set_busy(self->w.actor, false);
}

//  --- listing -------------------------------------------------------------------------------

static int
s_on_record(void *ctx, const es_dl_record_t *r, es_err_t *err)
{
    reconcile_t *self = ctx;
    job_t *j = &self->job;
    (void)err;
    if (r->object != j->obj)
        return 0;
    uint32_t n = (uint32_t)r->key_len;
    es_buf_append(&j->keys, &n, 4);
    es_buf_append(&j->keys, r->key, n);
    return 0;
}

static int
s_on_data(void *ctx, const char *data, size_t len, es_err_t *err)
{
    reconcile_t *self = ctx;
    job_t *j = &self->job;
    if (es_dlparse_feed(j->parser, data, len, &j->parse_err)) {
        *err = j->parse_err;
        return -1;
    }
    return 0;
}

static void s_on_done(void *ctx, const es_http_result_t *r);
static const es_dlparse_cb_t s_parse_cb = {s_on_record, NULL};
static const es_http_cb_t s_http_cb = {s_on_data, s_on_done};

static void
s_send(reconcile_t *self)
{
    job_t *j = &self->job;
    self->w.retry_at = 0;
    es_buf_reset(&j->keys);
    es_dlparse_destroy(&j->parser);
    j->parser = es_dlparse_new(j->meta, j->obj, &s_parse_cb, self);
    if (j->parser)
        es_dlparse_keys_only(j->parser);
    const char *prefix = es_config_str(self->w.config, "header_prefix");
    const char *token = es_config_str(self->w.config, "auth_token");
    char *h[4];
    size_t nh = 0;
    h[nh++] = es_strdup("X-Http-Method-Override: GET");
    h[nh++] = es_strdup("Content-Type: application/json");
    h[nh++] = es_sprintf("%sAPI-Version: %s", prefix, j->meta->version);
    if (*token)
        h[nh++] = es_sprintf("%sAuthorization: %s", prefix, token);
    es_err_t err;
    int rc = es_http_start(self->w.http, j->url, j->body.data, j->body.len, (const char *const *)h,
                           nh, &s_http_cb, self, &err);
    for (size_t i = 0; i < nh; i++)
        free(h[i]);
    if (rc) {
        s_job_end(self, 2030, err.what);
        return;
    }
    j->in_flight = true;
}

typedef struct {
    job_t *job;
    const char *next_ctx; //  delta_context of the next page, NULL when the listing is complete
    const es_buf_t *keys; //  the page's keys
    size_t count;         //  records the page listed
} page_t;

//  A page's keys and where the listing stands, in one transaction: a restarted job of the same
//  session continues from there instead of listing again.
static int
s_store_keys_fn(es_txn_t *txn, void *ctx, es_err_t *err)
{
    page_t *pg = ctx;
    job_t *j = pg->job;
    const char *p = pg->keys->data, *end = p + pg->keys->len;
    while (p < end) {
        uint32_t n;
        memcpy(&n, p, 4);
        p += 4;
        if (es_txn_put_sorted(txn, j->scratch.data, p, n, "", 0, err))
            return -1;
        p += n;
    }
    es_buf_t row;
    es_buf_init(&row);
    es_buf_puts(&row, "{\"session\":");
    es_buf_json_str(&row, j->session, strlen(j->session));
    es_buf_printf(&row, ",\"pages\":%u,\"listed\":%llu,\"next\":%s}", j->pages + 1,
                  (unsigned long long)(j->listed + pg->count),
                  pg->next_ctx ? pg->next_ctx : "null");
    int rc = es_txn_put(txn, "ctx", j->ctx_key.data, j->ctx_key.len, row.data, row.len, err);
    es_buf_release(&row);
    return rc;
}

static int
s_clear_fn(es_txn_t *txn, void *ctx, es_err_t *err)
{
    job_t *j = ctx;
    if (es_txn_del(txn, "ctx", j->ctx_key.data, j->ctx_key.len, err) < 0)
        return -1;
    return es_txn_clear(txn, j->scratch.data, err);
}

//  Resume state of this session's listing: 1 resumed (body set, or listing complete when
//  *complete), 0 nothing to resume, -1 error.
static int
s_load_resume(reconcile_t *self, bool *complete, es_err_t *err)
{
    job_t *j = &self->job;
    *complete = false;
    es_txn_t *txn = es_store_begin(self->w.store, false, err);
    if (!txn)
        return -1;
    const void *val;
    size_t vlen;
    int rc = es_txn_get(txn, "ctx", j->ctx_key.data, j->ctx_key.len, &val, &vlen, err);
    char *text = rc == 1 ? es_strndup(val, vlen) : NULL;
    es_txn_abort(&txn);
    if (rc <= 0)
        return rc;
    yajl_val root = yajl_tree_parse(text, NULL, 0);
    free(text);
    const char *sp[] = {"session", NULL}, *np[] = {"next", NULL}, *pp[] = {"pages", NULL},
               *lp[] = {"listed", NULL};
    yajl_val sess = root ? yajl_tree_get(root, sp, yajl_t_string) : NULL;
    int resumed = 0;
    const char *stext = sess ? YAJL_GET_STRING(sess) : NULL;
    if (stext && strcmp(stext, j->session) == 0) {
        yajl_val next = yajl_tree_get(root, np, yajl_t_any);
        yajl_val pages = yajl_tree_get(root, pp, yajl_t_number);
        yajl_val listed = yajl_tree_get(root, lp, yajl_t_number);
        j->pages = pages && YAJL_IS_INTEGER(pages) ? (uint32_t)YAJL_GET_INTEGER(pages) : 0;
        j->listed = listed && YAJL_IS_INTEGER(listed) ? (uint64_t)YAJL_GET_INTEGER(listed) : 0;
        es_buf_reset(&j->body);
        if (next && YAJL_IS_OBJECT(next)) {
            es_buf_puts(&j->body, "{\"delta_context\":");
            es_json_write(&j->body, next);
            es_buf_putc(&j->body, '}');
        } else {
            *complete = true;
        }
        resumed = 1;
    }
    yajl_tree_free(root);
    return resumed;
}

//  --- sweep ---------------------------------------------------------------------------------

typedef struct {
    reconcile_t *self;
    es_txn_t *txn;
    es_cursor_t *listed; //  the backend's keys (scratch), walked beside the local rows
    es_buf_t *from;   //  last key examined (exclusive start), updated
    es_buf_t *doomed; //  keys to delete: [u32 length][key]...
    size_t examined;  //  rows looked at in this chunk
    bool more;        //  stopped at the chunk size
} sweep_t;

static int
s_sweep_row(void *ctx, const void *key, size_t klen, const void *val, size_t vlen, es_err_t *err)
{
    (void)val, (void)vlen;
    sweep_t *w = ctx;
    job_t *j = &w->self->job;
    if (w->from->len && w->from->len == klen && memcmp(w->from->data, key, klen) == 0)
        return 0;
    if (w->examined >= SWEEP_CHUNK) {
        w->more = true;
        return 1;
    }
    w->examined++;
    es_buf_reset(w->from);
    es_buf_append(w->from, key, klen);
    int on_server = es_cursor_contains(w->listed, key, klen, err);
    if (on_server < 0)
        return -1;
    if (on_server)
        return 0;
    int local = es_local_has_local_state(w->txn, j->object, key, klen, err);
    if (local < 0)
        return -1;
    if (local)
        return 0; //  never rows with pending changes (D6)
    uint32_t n = (uint32_t)klen;
    es_buf_append(w->doomed, &n, 4);
    es_buf_append(w->doomed, key, klen);
    return 0;
}

typedef struct {
    job_t *job;
    const es_buf_t *doomed;
    uint64_t deleted;
} delete_t;

static int
s_delete_fn(es_txn_t *txn, void *ctx, es_err_t *err)
{
    delete_t *d = ctx;
    job_t *j = d->job;
    d->deleted = 0;
    es_buf_t table;
    es_buf_init(&table);
    es_store_table(&table, "main", j->object);
    const char *p = d->doomed->data, *end = p + d->doomed->len;
    int rc = 0;
    while (p < end && rc == 0) {
        uint32_t n;
        memcpy(&n, p, 4);
        p += 4;
        //  A local edit may have arrived since the read: check again inside the write.
        int local = es_local_has_local_state(txn, j->object, p, n, err);
        if (local < 0)
            rc = -1;
        else if (!local) {
            int del = es_txn_del(txn, table.data, p, n, err);
            if (del < 0)
                rc = -1;
            d->deleted += (uint64_t)del;
        }
        p += n;
    }
    es_buf_release(&table);
    return rc;
}

//  Pages read stay mapped otherwise: a sweep of a large table would hold them all resident.
static void
s_trim(reconcile_t *self)
{
    es_err_t err;
    if (es_store_trim(self->w.store, &err))
        es_log_warn("reconcile: %s", err.what);
}

//  Remove local rows the backend does not have, a chunk per transaction.
static int
s_sweep(reconcile_t *self, es_err_t *err)
{
    job_t *j = &self->job;
    es_buf_t from, doomed, table;
    es_buf_init(&from);
    es_buf_init(&doomed);
    es_buf_init(&table);
    es_store_table(&table, "main", j->object);
    int rc = 0;
    for (bool more = true; more && rc == 0;) {
        es_buf_reset(&doomed);
        es_txn_t *txn = es_store_begin(self->w.store, false, err);
        if (!txn) {
            rc = -1;
            break;
        }
        sweep_t w = {self, txn, es_cursor_new(txn, j->scratch.data, err), &from, &doomed, 0,
                     false};
        rc = w.listed ? es_txn_iter(txn, table.data, from.len ? from.data : NULL, from.len,
                                    s_sweep_row, &w, err)
                      : -1;
        es_cursor_destroy(&w.listed);
        es_txn_abort(&txn);
        more = w.more;
        if (rc == 0 && doomed.len) {
            delete_t d = {j, &doomed, 0};
            rc = es_store_write(self->w.store, s_delete_fn, &d, err);
            j->deleted += d.deleted;
        }
        s_trim(self);
        es_actor_beat(self->w.actor);
    }
    es_buf_release(&from);
    es_buf_release(&doomed);
    es_buf_release(&table);
    return rc;
}

static void
s_finish(reconcile_t *self)
{
    job_t *j = &self->job;
    es_err_t err;
    int rc = s_sweep(self, &err);
    es_err_t cerr;
    if (es_store_write(self->w.store, s_clear_fn, j, &cerr))
        es_log_warn("%s: scratch keys not cleared: %s", j->object, cerr.what);
    if (rc) {
        s_job_end(self, 2000, err.what);
        return;
    }
    s_progress(self, "Ended", (uint32_t)j->deleted);
    s_job_end(self, 0, NULL);
}

static void
s_on_done(void *ctx, const es_http_result_t *r)
{
    reconcile_t *self = ctx;
    job_t *j = &self->job;
    j->in_flight = false;
    char what[ES_ERR_WHAT_MAX + 300];
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
        bool transient = ok_http || (r->curl_code != CURLE_OK && !es_http_tls_permanent(r)) ||
                         (r->data_failed && r->err.code == ES_EPROTO) || r->status == 429 ||
                         r->status >= 500;
        //  Listing is read-only: retrying is always safe.
        if (transient && !j->cancelled &&
            j->attempt < es_config_int(self->w.config, "retry.max_attempts")) {
            int64_t d = es_http_retry_delay_ms(
                j->attempt, es_config_int(self->w.config, "retry.base_ms"),
                es_config_int(self->w.config, "retry.max_ms"), r->retry_after_s, &self->seed);
            j->attempt++;
            self->w.retry_at = es_now_ms() + d;
            es_log_warn("%s/%s: key listing: %s; retry %u in %lld ms", j->service, j->object, what,
                        j->attempt, (long long)d);
            return;
        }
        int code = es_http_vmx_code(r);
        s_job_end(self, ok_http ? 2037 : code ? code : 2474, what);
        return;
    }
    if (es_dlparse_has_opstatus(j->parser) && es_dlparse_opstatus(j->parser) != 0) {
        snprintf(what, sizeof what, "Server responded with error opstatus %lld: %s",
                 (long long)es_dlparse_opstatus(j->parser), es_dlparse_errmsg(j->parser));
        s_job_end(self, 2038, what);
        return;
    }
    es_err_t err;
    es_actor_beat(self->w.actor);
    j->attempt = 0;
    bool more = es_dlparse_has_more(j->parser);
    size_t count = es_dlparse_count(j->parser);
    const char *dctx = es_dlparse_delta_context(j->parser);
    if (more && (!dctx || (count == 0 && strstr(j->body.data, dctx)))) {
        snprintf(what, sizeof what, "%s: key listing does not advance", j->url);
        s_job_end(self, 2474, what);
        return;
    }
    //  Keep this page (its keys and next position) and ask for the next one before committing
    //  it: the backend lists page N+1 while page N is written. The parser and key buffer are
    //  the new request's from here on.
    es_buf_reset(&j->next_ctx);
    if (more)
        es_buf_append(&j->next_ctx, dctx, strlen(dctx) + 1);
    es_buf_t t = j->done_keys;
    j->done_keys = j->keys;
    j->keys = t;
    if (more && !j->cancelled) {
        es_buf_reset(&j->body);
        es_buf_printf(&j->body, "{\"delta_context\":%s}", j->next_ctx.data);
        s_send(self);
        if (!j->active)
            return; //  could not start it: the job ended
        es_http_kick(self->w.http);
    }
    page_t pg = {j, more ? j->next_ctx.data : NULL, &j->done_keys, count};
    if (es_store_write(self->w.store, s_store_keys_fn, &pg, &err)) {
        s_job_end(self, 2000, err.what);
        return;
    }
    s_trim(self);
    j->pages++;
    j->listed += count;
    s_progress(self, "InProgress", (uint32_t)count);
    if (j->cancelled) {
        s_job_end(self, 2478, "Syncing operation has been cancelled");
        return;
    }
    if (!more)
        s_finish(self);
}

//  --- jobs ----------------------------------------------------------------------------------

static void
s_start_job(reconcile_t *self, const es_reconcile_t *q)
{
    job_t *j = &self->job;
    es_err_t err;
    if (j->active) {
        es_worker_job_done(&self->w, q->session, q->job, 2460,
                           "reconcile actor busy with another job", NULL);
        return;
    }
    memset(j, 0, sizeof *j);
    j->active = true;
    es_actor_set_busy(self->w.actor, true);
    snprintf(j->session, sizeof j->session, "%s", q->session);
    j->id = q->job;
    snprintf(j->service, sizeof j->service, "%s", q->service);
    snprintf(j->object, sizeof j->object, "%s", q->object);
    es_buf_init(&j->body);
    es_buf_init(&j->keys);
    es_buf_init(&j->done_keys);
    es_buf_init(&j->next_ctx);
    es_buf_init(&j->scratch);
    es_buf_init(&j->ctx_key);
    es_store_table(&j->scratch, "rkeys", j->object);
    es_buf_printf(&j->ctx_key, "reconcile\n%s", j->object);
    char *base;
    int32_t code;
    es_syncopts_t o;
    if (!q->object[0] || es_worker_job_open(&self->w, q->service, q->object, q->options, 2474,
                                            &j->meta, &base, &o, &code, &err)) {
        if (!q->object[0])
            es_err_set(&err, ES_EINVAL, "RECONCILE.object: empty");
        s_job_end(self, q->object[0] ? code : 2474, err.what);
        return;
    }
    j->obj = es_meta_object(j->meta, q->object);
    //  Same filter and query params as the download, $select of the key columns (D6).
    es_buf_t url, sel;
    es_buf_init(&url);
    es_buf_init(&sel);
    es_buf_printf(&url, "%s/objects/", base);
    es_http_url_escape(&url, j->object);
    free(base);
    bool first = true;
    for (size_t i = 0; i < o.ndownload_params; i++)
        es_http_query_add(&url, &first, o.download_params[i].key, o.download_params[i].value);
    for (size_t i = 0; i < o.nfilters; i++)
        if (strcmp(o.filters[i].key, j->object) == 0)
            es_http_query_add(&url, &first, "$filter", o.filters[i].value);
    for (size_t i = 0; i < j->obj->nkey; i++) {
        if (i)
            es_buf_putc(&sel, ',');
        es_buf_puts(&sel, j->obj->fields[j->obj->key[i]].name);
    }
    es_http_query_add(&url, &first, "$select", sel.data);
    char page[24];
    snprintf(page, sizeof page, "%lld",
             (long long)es_config_int(self->w.config, "reconcile.page_size"));
    es_http_query_add(&url, &first, "$batchsize", page);
    es_buf_release(&sel);
    es_syncopts_release(&o);
    j->url = es_buf_steal(&url);
    bool complete = false;
    int resumed = s_load_resume(self, &complete, &err);
    if (resumed < 0) {
        s_job_end(self, 2000, err.what);
        return;
    }
    if (resumed) {
        es_log_info("%s/%s: reconciliation resumes after %u pages", j->service, j->object,
                    j->pages);
        if (complete) {
            s_finish(self);
            return;
        }
    } else {
        es_buf_puts(&j->body, "{}");
        if (es_store_write(self->w.store, s_clear_fn, j, &err)) {
            s_job_end(self, 2000, err.what);
            return;
        }
        s_progress(self, "Started", 0);
    }
    s_send(self);
}

static void
s_on_msg(void *ctx, const es_msg_t *msg)
{
    reconcile_t *self = ctx;
    if (msg->type == ES_MSG_RECONCILE)
        s_start_job(self, &msg->u.reconcile);
    else if (msg->type == ES_MSG_CANCEL && self->job.active &&
             strcmp(msg->u.cancel.session, self->job.session) == 0) {
        self->job.cancelled = true;
        if (!self->job.in_flight)
            s_job_end(self, 2478, "Syncing operation has been cancelled");
    }
}

reconcile_t *
reconcile_new(const es_actor_opts_t *opts, es_err_t *err)
{
    reconcile_t *self = es_calloc(1, sizeof *self);
    self->opts = *opts;
    self->seed = (uint32_t)getpid() ^ (uint32_t)es_now_ms();
    if (es_worker_open(&self->w, "reconcile", opts, err)) {
        reconcile_destroy(&self);
        return NULL;
    }
    return self;
}

void
reconcile_destroy(reconcile_t **self_p)
{
    if (!*self_p)
        return;
    reconcile_t *self = *self_p;
    job_t *j = &self->job;
    es_dlparse_destroy(&j->parser);
    es_meta_destroy(&j->meta);
    free(j->url);
    es_buf_release(&j->body);
    es_buf_release(&j->keys);
    es_buf_release(&j->done_keys);
    es_buf_release(&j->next_ctx);
    es_buf_release(&j->scratch);
    es_buf_release(&j->ctx_key);
    es_worker_close(&self->w);
    free(self);
    *self_p = NULL;
}

static void
s_on_timer(void *ctx)
{
    reconcile_t *self = ctx;
    if (self->job.active && !self->job.in_flight)
        s_send(self);
}

int
reconcile_run(reconcile_t *self, es_err_t *err)
{
    return es_worker_run(&self->w, s_on_msg, s_on_timer, self, err);
}
