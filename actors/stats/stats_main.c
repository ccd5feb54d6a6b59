//  es-stats - the stats actor: subscribes to the daemon's events and results; keeps the last sync
//  stats of every entity ("stats" table, read by `edgesync stats`), the run ledger ("hist_runs",
//  read by `edgesync history`; every finished session once, from the daemon's session rows, even
//  if its result was missed: stats_ledger) and the Prometheus metrics it serves on metrics.listen.
#include "actors/stats/stats_history.h"
#include "actors/stats/stats_http.h"
#include "actors/stats/stats_ledger.h"
#include "actors/stats/stats_metrics.h"
#include "actors/stats/stats_record.h"
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
#include <yajl/yajl_tree.h>
#include <zmq.h>

//  Counters reach the store at most this long after they change (at once for a result).
#define FLUSH_MS 1000
//  A metrics port that cannot be bound is tried again this often (no restart would free it).
#define METRICS_RETRY_MS 30000
//  Finished sessions are looked for at every result message and this often besides: a message
//  is lost while es-stats is down and can be dropped by PUB/SUB.
#define CATCHUP_MS 5000
//  Sessions recorded per look (one durable commit each); more wait for the next loop turn, so
//  a long backlog cannot delay the heartbeat (stats_record_catch_up says when to look again).
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
    stats_record_t *record;   //  records finished sessions
    es_buf_t labels;          //  scratch
} stats_t;

//  --- persistence ---------------------------------------------------------------------------

static int
s_flush(stats_t *self, es_err_t *err)
{
    int rc = stats_record_flush(self->record, err);
    self->flushed_ms = es_now_ms();
    if (rc == 0)
        self->dirty = false;
    return rc;
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
    int rc = es_txn_get(txn, "metrics", STATS_RECORD_SNAPSHOT_KEY,
                        strlen(STATS_RECORD_SNAPSHOT_KEY), &val, &vlen, err);
    es_err_t e2;
    if (rc == 1 && stats_metrics_load(self->metrics, val, vlen, &e2))
        es_log_error("%s: counters start again from zero", e2.what);
    if (rc >= 0)
        rc = es_txn_get(txn, "metrics", STATS_RECORD_RUNS_KEY, strlen(STATS_RECORD_RUNS_KEY), &val,
                        &vlen, err);
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
    stats_history_event(self->history, ev->session, root, es_epoch_ms());
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

//  A recording wrote the counters as they are now.
static void
s_saved(stats_t *self)
{
    self->dirty = false;
    self->flushed_ms = es_now_ms();
}

//  Record every finished session the ledger lacks (a bounded number per look). The next look
//  is at once only while a backlog is being recorded, else in CATCHUP_MS.
static void
s_catch_up(stats_t *self)
{
    stats_catchup_t c;
    stats_record_catch_up(self->record, CATCHUP_MAX, &c);
    if (c.recorded)
        s_saved(self);
    self->catchup_ms = es_now_ms() + (c.more ? 0 : CATCHUP_MS);
}

//  A result: the session is recorded from its stored row (stored before the result was
//  published), or from the message when the row is missing; then others the ledger lacks.
static void
s_on_result(stats_t *self, const es_result_t *r)
{
    es_err_t err;
    int rc = stats_record_result(self->record, r->session, r->code, r->body.ptr, r->body.len, &err);
    if (rc < 0)
        es_log_error("session %s: run not recorded: %s", r->session, err.what);
    else if (rc == 1)
        s_saved(self);
    s_catch_up(self);
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
    s_catch_up(self); //  results published while this process was down
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
            s_catch_up(self);
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
    self.record = stats_record_new(self.store, self.metrics, self.history,
                                   (uint64_t)es_config_int(self.config, "history.max_runs"));
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
    stats_record_destroy(&self.record);
    es_store_destroy(&self.store);
    es_config_destroy(&self.config);
    stats_history_destroy(&self.history);
    stats_metrics_destroy(&self.metrics);
    es_buf_release(&self.labels);
    es_msg_in_release(&self.in);
    return rc;
}
