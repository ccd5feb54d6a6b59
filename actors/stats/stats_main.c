//  es-stats - the stats actor: subscribes to the daemon's events and results; keeps the last sync
//  stats of every entity ("stats" table, read by `edgesync stats`), the run ledger ("hist_runs",
//  read by `edgesync history`; every finished session once, from the daemon's session rows, even
//  if its result was missed: stats_ledger) and the Prometheus metrics it serves on metrics.listen.
#include "actors/stats/stats_history.h"
#include "actors/stats/stats_http.h"
#include "actors/stats/stats_ledger.h"
#include "actors/stats/stats_metrics.h"
#include "common/es_actor.h"
#include "common/es_config.h"
#include "common/es_log.h"
#include "common/es_mem.h"
#include "protocol/es_json.h"
#include "protocol/es_meta.h"
#include "protocol/es_msg.h"
#include "store/es_runs.h"
#include "store/es_store.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <yajl/yajl_tree.h>
#include <zmq.h>

//  Counters reach the store at most this long after they change (at once for a result).
#define FLUSH_MS 1000
#define SNAPSHOT_KEY "stats.snapshot" //  "metrics" table: counters and histograms
#define RUNS_KEY "stats.runs"         //  "metrics" table: figures of running sessions
//  A metrics port that cannot be bound is tried again this often (no restart would free it).
#define METRICS_RETRY_MS 30000
//  Finished sessions are looked for at every result message and this often besides: a message
//  is lost while es-stats is down and can be dropped by PUB/SUB.
#define CATCHUP_MS 5000
//  Sessions recorded per look (one durable commit each); more wait for the next loop turn, so
//  a long backlog cannot delay the heartbeat.
#define CATCHUP_MAX 16

typedef struct {
    es_config_t *config;      //  settings
    es_actor_t *actor;        //  runtime
    es_store_t *store;        //  LMDB
    void *zctx, *sub;         //  event subscription
    es_msg_in_t in;           //  receive buffer
    stats_metrics_t *metrics; //  counters, histograms
    stats_history_t *history; //  running sessions' figures
    stats_http_t *http;       //  /metrics, NULL when metrics.listen is empty or not bound
    int64_t http_retry_ms;    //  next bind attempt after a failure, 0 = none due
    bool dirty;               //  metrics changed since the last flush
    int64_t flushed_ms;       //  last flush
    int64_t catchup_ms;       //  next look for finished sessions not in the ledger
    size_t bad_rows;          //  unreadable session rows at the last look (warned once)
    es_buf_t labels;          //  scratch
} stats_t;

static int64_t
s_epoch_ms(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

//  --- persistence ---------------------------------------------------------------------------

typedef struct {
    es_buf_t snap, runs;
    const char *session; //  a finished session to record, or NULL
    const char *entity;  //  its ledger row
    const char *fields;
    uint64_t max_runs;
    yajl_val stats; //  its result's syncStats (with "name"), or NULL
    bool already;   //  out: the session was recorded already, nothing written
} flush_t;

static int64_t
s_start_of(yajl_val stats)
{
    const char *path[] = {"startTime", NULL};
    yajl_val v = stats ? yajl_tree_get(stats, path, yajl_t_number) : NULL;
    return v && YAJL_IS_INTEGER(v) ? YAJL_GET_INTEGER(v) : 0;
}

//  The entity's last sync stats, unless the stored ones are of a later session (a session
//  recorded late, from its row, must not replace them).
static int
s_put_stats(es_txn_t *txn, yajl_val stats, es_err_t *err)
{
    const char *np[] = {"name", NULL};
    yajl_val name = yajl_tree_get(stats, np, yajl_t_string);
    if (!name)
        return 0;
    const char *key = YAJL_GET_STRING(name);
    const void *val;
    size_t vlen;
    int rc = es_txn_get(txn, "stats", key, strlen(key), &val, &vlen, err);
    if (rc < 0)
        return -1;
    if (rc == 1) {
        char *text = es_strndup(val, vlen);
        yajl_val old = yajl_tree_parse(text, NULL, 0);
        free(text);
        bool later = old && s_start_of(old) > s_start_of(stats);
        yajl_tree_free(old);
        if (later)
            return 0;
    }
    es_buf_t b;
    es_buf_init(&b);
    es_json_write(&b, stats);
    rc = es_txn_put(txn, "stats", key, strlen(key), b.data, b.len, err);
    es_buf_release(&b);
    return rc;
}

//  Repeatable (es_store_write may run it again): writes only, and the marker test comes first.
static int
s_flush_fn(es_txn_t *txn, void *ctx, es_err_t *err)
{
    flush_t *f = ctx;
    f->already = false;
    if (f->session) {
        //  Tested in the write txn: exact even with a second es-stats (one being replaced).
        int has = stats_ledger_has(txn, f->session, err);
        if (has)
            return has < 0 ? -1 : (f->already = true, 0);
        uint64_t id;
        if ((f->stats && s_put_stats(txn, f->stats, err)) ||
            es_runs_append(txn, f->entity, f->fields, f->max_runs, &id, err) ||
            stats_ledger_mark(txn, f->session, id, err))
            return -1;
    }
    return es_txn_put(txn, "metrics", SNAPSHOT_KEY, strlen(SNAPSHOT_KEY),
                      f->snap.data ? f->snap.data : "", f->snap.len, err) ||
                   es_txn_put(txn, "metrics", RUNS_KEY, strlen(RUNS_KEY),
                              f->runs.data ? f->runs.data : "", f->runs.len, err)
               ? -1
               : 0;
}

//  Write counters and running sessions' figures in one transaction; with f->session, also the
//  session's ledger row, its marker and its entity's stats, unless it is marked already (then
//  f->already is set and nothing is written).
static int
s_flush_as(stats_t *self, flush_t *f, es_err_t *err)
{
    f->max_runs = (uint64_t)es_config_int(self->config, "history.max_runs");
    es_buf_init(&f->snap);
    es_buf_init(&f->runs);
    stats_metrics_save(self->metrics, &f->snap);
    stats_history_save(self->history, &f->runs);
    int rc = es_store_write(self->store, s_flush_fn, f, err);
    es_buf_release(&f->snap);
    es_buf_release(&f->runs);
    self->flushed_ms = es_now_ms();
    if (rc == 0 && !f->already)
        self->dirty = false;
    return rc;
}

static int
s_flush(stats_t *self, es_err_t *err)
{
    flush_t f = {0};
    return s_flush_as(self, &f, err);
}

//  Counters as the last flush left them. A malformed snapshot is logged and counting restarts
//  from zero rather than keeping the actor down.
static int
s_load(stats_t *self, es_err_t *err)
{
    es_txn_t *txn = es_store_begin(self->store, false, err);
    if (!txn)
        return -1;
    const void *val;
    size_t vlen;
    int rc = es_txn_get(txn, "metrics", SNAPSHOT_KEY, strlen(SNAPSHOT_KEY), &val, &vlen, err);
    es_err_t e2;
    if (rc == 1 && stats_metrics_load(self->metrics, val, vlen, &e2))
        es_log_error("%s: counters start again from zero", e2.what);
    if (rc >= 0)
        rc = es_txn_get(txn, "metrics", RUNS_KEY, strlen(RUNS_KEY), &val, &vlen, err);
    if (rc == 1 && stats_history_load(self->history, val, vlen, &e2))
        es_log_error("%s: running sessions' figures dropped", e2.what);
    es_txn_abort(&txn);
    return rc < 0 ? -1 : 0;
}

//  --- events and results --------------------------------------------------------------------

static void
s_on_event(stats_t *self, const es_event_t *ev)
{
    char *text = es_strndup(ev->body.ptr, ev->body.len);
    yajl_val root = yajl_tree_parse(text, NULL, 0);
    free(text);
    if (!root || !YAJL_IS_OBJECT(root)) {
        es_log_warn("session %s: event is not a JSON object", ev->session);
        yajl_tree_free(root);
        return;
    }
    stats_history_event(self->history, ev->session, root, s_epoch_ms());
    const char *phase = es_json_get_str(root, "phase"), *state = es_json_get_str(root, "state");
    const char *svc = es_json_get_str(root, "objectService"),
               *obj = es_json_get_str(root, "object");
    const char *np[] = {"batchRecords", NULL};
    bool batch = yajl_tree_get(root, np, yajl_t_number) != NULL;
    if (phase && state && batch && strcmp(state, "Ended") == 0) {
        bool up = strcmp(phase, "Upload") == 0;
        stats_metrics_labels(&self->labels, "service", svc ? svc : "", "object", obj ? obj : "",
                             NULL);
        stats_metrics_add(self->metrics, up ? SM_REC_UP : SM_REC_DOWN, self->labels.data,
                          (double)es_json_get_count(root, "batchRecords"));
        stats_metrics_add(self->metrics, up ? SM_BYTES_UP : SM_BYTES_DOWN, self->labels.data,
                          (double)es_json_get_count(root, "batchBytes"));
        stats_metrics_labels(&self->labels, "phase", up ? "upload" : "download", NULL);
        stats_metrics_observe(self->metrics, SM_BATCH_SECONDS, self->labels.data,
                              (double)es_json_get_count(root, "batchMs") / 1000.0);
    }
    self->dirty = true;
    yajl_tree_free(root);
}

//  opstatus (upload) or code of each syncErrors entry of a result object.
static void
s_count_record_errors(stats_t *self, yajl_val obj)
{
    const char *kinds[] = {"upload", "download"};
    for (int k = 0; k < 2; k++) {
        const char *path[] = {"syncErrors", kinds[k], NULL};
        yajl_val arr = obj ? yajl_tree_get(obj, path, yajl_t_array) : NULL;
        for (size_t i = 0; arr && i < arr->u.array.len; i++) {
            yajl_val e = arr->u.array.values[i];
            const char *op[] = {"opstatus", NULL}, *cp[] = {"code", NULL};
            yajl_val c = yajl_tree_get(e, op, yajl_t_number);
            if (!c)
                c = yajl_tree_get(e, cp, yajl_t_number);
            char code[32] = "unknown";
            if (c && YAJL_IS_INTEGER(c))
                snprintf(code, sizeof code, "%lld", (long long)YAJL_GET_INTEGER(c));
            stats_metrics_labels(&self->labels, "code", code, NULL);
            stats_metrics_add(self->metrics, SM_ERRORS, self->labels.data, 1);
        }
    }
}

//  Count one finished session: sessions by level and result, its code and its records' errors.
static void
s_count(stats_t *self, const char *level, int32_t code, yajl_val result)
{
    stats_metrics_labels(&self->labels, "level", level[0] ? level : "unknown", "result",
                         code == 0      ? "ok"
                         : code == 2478 ? "cancelled"
                                        : "failed",
                         NULL);
    stats_metrics_add(self->metrics, SM_SESSIONS, self->labels.data, 1);
    if (code) {
        char text[16];
        snprintf(text, sizeof text, "%d", (int)code);
        stats_metrics_labels(&self->labels, "code", text, NULL);
        stats_metrics_add(self->metrics, SM_ERRORS, self->labels.data, 1);
    }
    s_count_record_errors(self, result);
    const char *groups[] = {"successResponse", "failureResponse"};
    for (int g = 0; result && g < 2; g++) {
        const char *path[] = {groups[g], NULL};
        yajl_val m = yajl_tree_get(result, path, yajl_t_object);
        for (size_t i = 0; m && i < m->u.object.len; i++)
            s_count_record_errors(self, m->u.object.values[i]);
    }
}

//  Record one finished session from its stored row (state "done", with its result): the
//  entity's syncStats, the counters, a ledger row and the session's marker, in one
//  transaction. Counters and figures are applied in memory first and put back as they were if
//  the write fails or another es-stats recorded the session meanwhile, so a session counts
//  once whatever happens. 1 recorded, 0 already recorded, -1 with err.
static int
s_record(stats_t *self, const char *session, yajl_val row, es_err_t *err)
{
    const char *rp[] = {"result", NULL}, *cp[] = {"code", NULL}, *sp[] = {"syncStats", NULL};
    yajl_val result = yajl_tree_get(row, rp, yajl_t_object);
    yajl_val cv = yajl_tree_get(row, cp, yajl_t_number);
    int32_t code = cv && YAJL_IS_INTEGER(cv) ? (int32_t)YAJL_GET_INTEGER(cv) : 0;
    const char *ep[] = {"endTime", NULL};
    yajl_val ev = yajl_tree_get(row, ep, yajl_t_number);
    int64_t end =
        ev && YAJL_IS_INTEGER(ev) && YAJL_GET_INTEGER(ev) > 0 ? YAJL_GET_INTEGER(ev) : s_epoch_ms();
    es_buf_t m0, h0, fields;
    es_buf_init(&m0);
    es_buf_init(&h0);
    es_buf_init(&fields);
    stats_metrics_save(self->metrics, &m0);
    stats_history_save(self->history, &h0);
    char *entity = NULL, level[16];
    stats_history_finish(self->history, session, row, code, result, end, &fields, &entity, level);
    s_count(self, level, code, result);
    flush_t f = {.session = session,
                 .entity = entity,
                 .fields = fields.data ? fields.data : "",
                 .stats = result ? yajl_tree_get(result, sp, yajl_t_object) : NULL};
    int rc = s_flush_as(self, &f, err);
    if (rc || f.already) {
        es_err_t e2;
        if (stats_metrics_load(self->metrics, m0.data ? m0.data : "", m0.len, &e2) ||
            stats_history_load(self->history, h0.data ? h0.data : "", h0.len, &e2))
            es_log_error("%s: in-memory copy reloaded", e2.what); //  cannot happen: our text
    }
    free(entity);
    es_buf_release(&fields);
    es_buf_release(&h0);
    es_buf_release(&m0);
    return rc ? -1 : f.already ? 0 : 1;
}

//  Record every finished session the ledger lacks, oldest first; then drop the markers of
//  sessions the daemon has pruned. seen: the session of the result message that triggered
//  this (NULL: a periodic look), to tell a normal recording from a caught-up one in the log.
static void
s_catch_up(stats_t *self, const char *seen)
{
    self->catchup_ms = es_now_ms() + CATCHUP_MS;
    stats_ledger_due_t *due = NULL;
    size_t n = 0;
    es_err_t err;
    size_t bad;
    if (stats_ledger_due(self->store, &due, &n, &bad, &err)) {
        es_log_error("finished sessions not looked for: %s", err.what);
        return;
    }
    if (bad && bad != self->bad_rows)
        es_log_warn("%zu stored session rows are not JSON objects: not in the ledger", bad);
    self->bad_rows = bad;
    bool seen_done = false;
    if (n > CATCHUP_MAX) {
        n = CATCHUP_MAX;
        self->catchup_ms = es_now_ms(); //  the rest at the next turn, oldest first again
    }
    for (size_t i = 0; i < n; i++) {
        yajl_val row = NULL;
        int rc = stats_ledger_row(self->store, due[i].id, &row, &err);
        if (rc == 1)
            rc = s_record(self, due[i].id, row, &err);
        yajl_tree_free(row);
        bool mine = seen && strcmp(seen, due[i].id) == 0;
        seen_done = seen_done || mine;
        if (rc < 0)
            es_log_error("session %s: run not recorded (tried again in %d s): %s", due[i].id,
                         CATCHUP_MS / 1000, err.what);
        else if (rc == 1 && mine)
            es_log_debug("session %s: run recorded", due[i].id);
        else if (rc == 1)
            es_log_info("session %s: run recorded from its stored row (its result was not "
                        "received)",
                        due[i].id);
    }
    free(due);
    if (seen && !seen_done)
        es_log_debug("session %s: result received, nothing new to record", seen);
    size_t dropped;
    if (stats_ledger_sweep(self->store, &dropped, &err))
        es_log_error("ledger markers not swept: %s", err.what);
    else if (dropped)
        es_log_debug("ledger: %zu markers of pruned sessions dropped", dropped);
}

//  A result: the session's row, stored before the result was published, is recorded from the
//  store like any other finished session the ledger lacks.
static void
s_on_result(stats_t *self, const es_result_t *r)
{
    s_catch_up(self, r->session);
}

static void
s_drain_sub(stats_t *self)
{
    for (;;) {
        //  Frame 1: topic; frame 2: the message.
        char topic[256];
        int n = zmq_recv(self->sub, topic, sizeof topic, ZMQ_DONTWAIT);
        if (n == -1)
            return;
        int more = 0;
        size_t ml = sizeof more;
        if (zmq_getsockopt(self->sub, ZMQ_RCVMORE, &more, &ml) || !more)
            continue;
        es_err_t err;
        int rc = es_msg_recv(self->sub, false, &self->in, &err);
        if (rc < 0) {
            es_log_warn("event dropped: %s", err.what);
            continue;
        }
        if (rc == 1 && self->in.msg.type == ES_MSG_RESULT)
            s_on_result(self, &self->in.msg.u.result);
        else if (rc == 1 && self->in.msg.type == ES_MSG_EVENT)
            s_on_event(self, &self->in.msg.u.event);
    }
}

//  --- the page ------------------------------------------------------------------------------

typedef struct {
    stats_t *self;
    es_txn_t *txn;
    uint64_t n;
} scan_t;

static int
s_pend_row(void *ctx, const void *key, size_t klen, const void *val, size_t vlen, es_err_t *err)
{
    (void)key;
    (void)klen;
    (void)err;
    scan_t *p = ctx;
    uint32_t count; //  hist rows of this key (store/es_local.h)
    if (vlen >= sizeof count) {
        memcpy(&count, val, sizeof count);
        p->n += count;
    }
    return 0;
}

//  Pending changes of every object of each service set up ("meta" rows "svc/<service>").
static int
s_meta_row(void *ctx, const void *key, size_t klen, const void *val, size_t vlen, es_err_t *err)
{
    scan_t *p = ctx;
    if (klen < 4 || memcmp(key, "svc/", 4) != 0)
        return klen >= 4 && memcmp(key, "svc/", 4) > 0 ? 1 : 0;
    es_err_t merr;
    es_meta_t *meta = es_meta_new(val, vlen, &merr);
    if (!meta) {
        es_log_warn("metrics: stored metadata of %.*s: %s", (int)(klen - 4), (const char *)key + 4,
                    merr.what);
        return 0;
    }
    int rc = 0;
    es_buf_t table;
    es_buf_init(&table);
    for (size_t i = 0; rc == 0 && i < meta->nobjects; i++) {
        scan_t one = {p->self, p->txn, 0};
        es_buf_reset(&table);
        es_buf_printf(&table, "pend:%s", meta->objects[i].name);
        rc = es_txn_iter(p->txn, table.data, NULL, 0, s_pend_row, &one, err);
        stats_metrics_labels(&p->self->labels, "service", meta->name, "object",
                             meta->objects[i].name, NULL);
        stats_metrics_set(p->self->metrics, SM_PENDING, p->self->labels.data, (double)one.n);
    }
    es_buf_release(&table);
    es_meta_destroy(&meta);
    return rc;
}

static int
s_restart_row(void *ctx, const void *key, size_t klen, const void *val, size_t vlen, es_err_t *err)
{
    (void)err;
    scan_t *p = ctx;
    static const char prefix[] = "restarts.";
    size_t plen = sizeof prefix - 1;
    if (klen < plen || memcmp(key, prefix, plen) != 0)
        return klen >= plen && memcmp(key, prefix, plen) > 0 ? 1 : 0;
    uint64_t n;
    if (vlen != sizeof n)
        return 0;
    memcpy(&n, val, sizeof n);
    char kind[ES_KIND_MAX + 1];
    snprintf(kind, sizeof kind, "%.*s", (int)(klen - plen), (const char *)key + plen);
    stats_metrics_labels(&p->self->labels, "kind", kind, NULL);
    stats_metrics_set(p->self->metrics, SM_RESTARTS, p->self->labels.data, (double)n);
    return 0;
}

static int
s_session_state(void *ctx, const void *key, size_t klen, const void *val, size_t vlen,
                es_err_t *err)
{
    (void)key;
    (void)klen;
    (void)err;
    scan_t *p = ctx;
    //  The row is JSON with "state":"running" or "done" (orch_session_to_json).
    if (memmem(val, vlen, "\"state\":\"running\"", 17))
        p->n++;
    return 0;
}

//  Live families come from the store at each scrape: the daemon and the other actors own them.
static int
s_read_live(stats_t *self, es_err_t *err)
{
    stats_metrics_clear_live(self->metrics);
    static const char *kinds[] = {"download", "upload", "reconcile", "stats"};
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
        stats_metrics_labels(&self->labels, "kind", kinds[i], NULL);
        stats_metrics_set(self->metrics, SM_RESTARTS, self->labels.data, 0);
    }
    es_txn_t *txn = es_store_begin(self->store, false, err);
    if (!txn)
        return -1;
    scan_t scan = {self, txn, 0};
    int rc = es_txn_iter(txn, "meta", "svc/", 4, s_meta_row, &scan, err);
    if (rc == 0)
        rc = es_txn_iter(txn, "metrics", "restarts.", 9, s_restart_row, &scan, err);
    if (rc == 0)
        rc = es_txn_iter(txn, "session", NULL, 0, s_session_state, &scan, err);
    int64_t depth = rc == 0 ? es_txn_count(txn, "upcache", err) : -1;
    int64_t runs = depth >= 0 ? es_runs_count(txn, err) : -1;
    es_txn_abort(&txn);
    if (runs < 0)
        return -1;
    stats_metrics_set(self->metrics, SM_IN_PROGRESS, "", (double)scan.n);
    stats_metrics_set(self->metrics, SM_UPCACHE, "", (double)depth);
    stats_metrics_set(self->metrics, SM_RUNS, "", (double)runs);
    return 0;
}

static void
s_render(void *ctx, es_buf_t *out)
{
    stats_t *self = ctx;
    es_err_t err;
    //  Counters are still worth serving when the store cannot be read: say so, in a comment.
    if (s_read_live(self, &err)) {
        es_log_error("metrics: %s", err.what);
        es_buf_printf(out, "# store not readable, gauges missing: %s\n", err.what);
    }
    stats_metrics_format(self->metrics, out);
}

//  --- the process ---------------------------------------------------------------------------

//  Bind metrics.listen (its syntax was checked when the configuration was loaded). A busy port
//  leaves the actor up without metrics, trying again every METRICS_RETRY_MS, rather than exit
//  and be restarted in a loop; the failure is logged once, the recovery too.
static void
s_metrics_open(stats_t *self)
{
    const char *listen = es_config_str(self->config, "metrics.listen");
    es_err_t err;
    self->http = stats_http_new(listen, es_config_bool(self->config, "metrics.allow_remote"),
                                s_render, self, &err);
    if (self->http) {
        es_log_info("metrics on http://%s/metrics (port %u)", listen,
                    (unsigned)stats_http_port(self->http));
        self->http_retry_ms = 0;
        return;
    }
    if (!self->http_retry_ms)
        es_log_error("%s; no metrics served until it can be bound (retried every %d s)", err.what,
                     METRICS_RETRY_MS / 1000);
    self->http_retry_ms = es_now_ms() + METRICS_RETRY_MS;
}

static int
s_run(stats_t *self, es_err_t *err)
{
    s_catch_up(self, NULL); //  results published while this process was down
    while (!es_actor_terminated(self->actor)) {
        zmq_pollitem_t items[2] = {
            {self->sub, 0, ZMQ_POLLIN, 0},
            {NULL, self->http ? stats_http_fd(self->http) : -1, ZMQ_POLLIN, 0}};
        int64_t until = self->catchup_ms - es_now_ms();
        int timeout = until < 0 ? 0 : until < CATCHUP_MS ? (int)until : CATCHUP_MS;
        if (self->dirty && timeout > FLUSH_MS)
            timeout = FLUSH_MS;
        if (self->http)
            timeout = stats_http_timeout_ms(self->http, timeout);
        if (es_actor_step_poll(self->actor, items, self->http ? 2 : 1, timeout, NULL, NULL, err))
            return -1;
        //  SUB edges can be consumed by an earlier recv: drain every turn, it does not block.
        s_drain_sub(self);
        if (self->http)
            stats_http_run(self->http);
        else if (self->http_retry_ms && es_now_ms() >= self->http_retry_ms)
            s_metrics_open(self); //  the heartbeat wakes the loop at least every interval
        if (es_now_ms() >= self->catchup_ms)
            s_catch_up(self, NULL);
        if (self->dirty && es_now_ms() - self->flushed_ms >= FLUSH_MS) {
            es_err_t ferr;
            if (s_flush(self, &ferr))
                es_log_error("metrics not saved: %s", ferr.what);
        }
    }
    if (self->dirty && s_flush(self, err))
        es_log_error("metrics not saved: %s", err->what);
    return 0;
}

int
main(int argc, char *argv[])
{
    es_log_init("stats");
    es_actor_opts_t opts;
    es_err_t err;
    if (es_actor_opts_parse(&opts, argc, argv, &err)) {
        fprintf(stderr, "es-stats: %s\n", err.what);
        return 2;
    }
    stats_t self = {0};
    es_msg_in_init(&self.in);
    es_buf_init(&self.labels);
    self.metrics = stats_metrics_new();
    self.history = stats_history_new();
    int rc = 1;
    char *ep = NULL;
    self.config = es_config_new();
    if (opts.config[0] && es_config_load(self.config, opts.config, &err))
        goto done;
    if (es_config_set(self.config, "data_dir", opts.data_dir, &err))
        goto done;
    es_log_set_level((es_log_level_t)es_log_level_parse(es_config_str(self.config, "log.level")));
    es_store_opts_t sopts = {
        .map_size = (size_t)es_config_int(self.config, "store.map_size_mb") << 20,
        .map_max = (size_t)es_config_int(self.config, "store.map_max_mb") << 20,
    };
    self.store = es_store_new(opts.data_dir, &sopts, &err);
    if (!self.store || s_load(&self, &err))
        goto done;
    size_t marked;
    if (stats_ledger_init(self.store, &marked, &err))
        goto done;
    if (marked)
        es_log_info("ledger: %zu sessions finished before markers were kept count as recorded",
                    marked);
    ep = es_config_event_endpoint(self.config);
    self.zctx = zmq_ctx_new();
    self.sub = self.zctx ? zmq_socket(self.zctx, ZMQ_SUB) : NULL;
    int linger = 0;
    int64_t maxmsg = ES_MSG_MAX_SIZE;
    if (!self.sub || zmq_setsockopt(self.sub, ZMQ_LINGER, &linger, sizeof linger) ||
        zmq_setsockopt(self.sub, ZMQ_MAXMSGSIZE, &maxmsg, sizeof maxmsg) ||
        zmq_setsockopt(self.sub, ZMQ_SUBSCRIBE, "result.", 7) ||
        zmq_setsockopt(self.sub, ZMQ_SUBSCRIBE, "progress.", 9) || zmq_connect(self.sub, ep)) {
        es_err_set(&err, ES_ESYS, "subscribe %s: %s", ep, zmq_strerror(errno));
        goto done;
    }
    if (*es_config_str(self.config, "metrics.listen"))
        s_metrics_open(&self);
    //  HELLO last: the daemon counts this actor ready only once it serves.
    self.actor = es_actor_new("stats", &opts,
                              (int)es_config_int(self.config, "heartbeat.interval_ms"), &err);
    if (!self.actor)
        goto done;
    self.flushed_ms = es_now_ms();
    rc = s_run(&self, &err) ? 1 : 0;
done:
    if (rc)
        es_log_error("%s", err.what);
    free(ep);
    stats_http_destroy(&self.http);
    if (self.sub)
        zmq_close(self.sub);
    if (self.zctx)
        zmq_ctx_term(self.zctx);
    es_actor_destroy(&self.actor);
    es_store_destroy(&self.store);
    es_config_destroy(&self.config);
    stats_history_destroy(&self.history);
    stats_metrics_destroy(&self.metrics);
    es_buf_release(&self.labels);
    es_msg_in_release(&self.in);
    return rc;
}
