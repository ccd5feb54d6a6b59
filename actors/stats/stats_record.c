//  stats_record - recording finished sessions into the run ledger, each once.
#include "actors/stats/stats_record.h"
#include "actors/stats/stats_ledger.h"
#include "common/es_actor.h"
#include "common/es_log.h"
#include "common/es_mem.h"
#include "protocol/es_json.h"
#include "store/es_runs.h"
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct stats_record {
    es_store_t *store;
    stats_metrics_t *metrics;
    stats_history_t *history;
    uint64_t max_runs;
    char (*skip)[ES_NAME_MAX + 1]; //  ring of sessions passed over (allocated at first use)
    size_t nskip, next_skip;
    size_t bad_keys; //  session rows with unusable keys at the last look (warned on change)
    es_buf_t labels; //  scratch
};

stats_record_t *
stats_record_new(es_store_t *store, stats_metrics_t *metrics, stats_history_t *history,
                 uint64_t max_runs)
{
    assert(store && metrics && history && max_runs >= 1);
    stats_record_t *self = es_calloc(1, sizeof *self);
    self->store = store;
    self->metrics = metrics;
    self->history = history;
    self->max_runs = max_runs;
    es_buf_init(&self->labels);
    return self;
}

void
stats_record_destroy(stats_record_t **self_p)
{
    assert(self_p);
    stats_record_t *self = *self_p;
    if (!self)
        return;
    free(self->skip);
    es_buf_release(&self->labels);
    free(self);
    *self_p = NULL;
}

//  --- the transaction -----------------------------------------------------------------------

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
        //  Tested in the write txn: a ledger row is exact even with a second es-stats.
        int has = stats_ledger_has(txn, f->session, err);
        if (has < 0)
            return -1;
        if (has) {
            f->already = true;
            return 0;
        }
        uint64_t id;
        if ((f->stats && s_put_stats(txn, f->stats, err)) ||
            es_runs_append(txn, f->entity, f->fields, f->max_runs, &id, err) ||
            stats_ledger_mark(txn, f->session, id, err))
            return -1;
    }
    if (es_txn_put(txn, "metrics", STATS_RECORD_SNAPSHOT_KEY, strlen(STATS_RECORD_SNAPSHOT_KEY),
                   f->snap.data ? f->snap.data : "", f->snap.len, err) ||
        es_txn_put(txn, "metrics", STATS_RECORD_RUNS_KEY, strlen(STATS_RECORD_RUNS_KEY),
                   f->runs.data ? f->runs.data : "", f->runs.len, err))
        return -1;
    return 0;
}

//  Counters and running sessions' figures in one transaction; with f->session, also the
//  session's ledger row, its marker and its entity's stats, unless it is marked already (then
//  f->already is set and nothing is written).
static int
s_flush_as(stats_record_t *self, flush_t *f, es_err_t *err)
{
    f->max_runs = self->max_runs;
    es_buf_init(&f->snap);
    es_buf_init(&f->runs);
    stats_metrics_save(self->metrics, &f->snap);
    stats_history_save(self->history, &f->runs);
    int rc = es_store_write(self->store, s_flush_fn, f, err);
    es_buf_release(&f->snap);
    es_buf_release(&f->runs);
    return rc;
}

int
stats_record_flush(stats_record_t *self, es_err_t *err)
{
    assert(self);
    flush_t f = {0};
    return s_flush_as(self, &f, err);
}

//  --- one session ---------------------------------------------------------------------------

//  opstatus (upload) or code of each syncErrors entry of a result object.
static void
s_count_record_errors(stats_record_t *self, yajl_val obj)
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
s_count(stats_record_t *self, const char *level, int32_t code, yajl_val result)
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

//  Record one finished session: row is its stored row (NULL if unusable), code and result
//  (may be NULL) its outcome, end_ms its end. Counters and figures are applied in memory first
//  and put back as they were if the write fails or the session is marked already, so it counts
//  once in this process. The counters go to the store as one whole snapshot: two es-stats
//  writing at once would lose each other's counts (the ledger rows stay exact through the
//  marker); the supervisor stops the old process before it starts the new one.
//  1 recorded, 0 already recorded, -1 with err.
static int
s_record(stats_record_t *self, const char *session, yajl_val row, int32_t code, yajl_val result,
         int64_t end_ms, es_err_t *err)
{
    es_buf_t m0, h0, fields;
    es_buf_init(&m0);
    es_buf_init(&h0);
    es_buf_init(&fields);
    stats_metrics_save(self->metrics, &m0);
    stats_history_save(self->history, &h0);
    char *entity = NULL, level[16];
    stats_history_finish(self->history, session, row, code, result, end_ms, &fields, &entity,
                         level);
    s_count(self, level, code, result);
    const char *sp[] = {"syncStats", NULL};
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
    if (rc)
        return -1;
    return f.already ? 0 : 1;
}

//  From its stored row (state "done", with its result, code and endTime).
static int
s_record_row(stats_record_t *self, const char *session, yajl_val row, es_err_t *err)
{
    const char *rp[] = {"result", NULL}, *cp[] = {"code", NULL}, *ep[] = {"endTime", NULL};
    yajl_val result = yajl_tree_get(row, rp, yajl_t_object);
    yajl_val cv = yajl_tree_get(row, cp, yajl_t_number);
    int32_t code = cv && YAJL_IS_INTEGER(cv) ? (int32_t)YAJL_GET_INTEGER(cv) : 0;
    yajl_val ev = yajl_tree_get(row, ep, yajl_t_number);
    int64_t end = ev && YAJL_IS_INTEGER(ev) && YAJL_GET_INTEGER(ev) > 0 ? YAJL_GET_INTEGER(ev)
                                                                        : es_epoch_ms();
    return s_record(self, session, row, code, result, end, err);
}

int
stats_record_result(stats_record_t *self, const char *session, int32_t code, const char *body,
                    size_t len, es_err_t *err)
{
    assert(self && session && (body || len == 0));
    yajl_val row = NULL;
    es_err_t rerr;
    int found = stats_ledger_row(self->store, session, &row, &rerr);
    if (found == 1) {
        int rc = s_record_row(self, session, row, err);
        yajl_tree_free(row);
        if (rc == 1)
            es_log_debug("session %s: run recorded", session);
        return rc;
    }
    //  The daemon's final save failed, or the row was pruned or is corrupt: the message is all
    //  there is. Its marker keeps a later look at the row from recording it again.
    char *text = es_strndup(body ? body : "", len);
    yajl_val result = yajl_tree_parse(text, NULL, 0);
    free(text);
    if (result && !YAJL_IS_OBJECT(result)) {
        yajl_tree_free(result);
        result = NULL;
    }
    int rc = s_record(self, session, NULL, code, result, es_epoch_ms(), err);
    yajl_tree_free(result);
    if (rc == 1)
        es_log_warn("session %s: run recorded from its result message, level and entity unknown "
                    "(%s)",
                    session, found == 0 ? "no finished session row stored" : rerr.what);
    return rc;
}

//  --- catching up ---------------------------------------------------------------------------

static bool
s_skipped(const stats_record_t *self, const char *session)
{
    for (size_t i = 0; i < self->nskip; i++)
        if (strcmp(self->skip[i], session) == 0)
            return true;
    return false;
}

static void
s_skip(stats_record_t *self, const char *session)
{
    if (!self->skip)
        self->skip = es_calloc(STATS_RECORD_SKIP_MAX, sizeof *self->skip);
    snprintf(self->skip[self->next_skip], sizeof self->skip[0], "%s", session);
    self->next_skip = (self->next_skip + 1) % STATS_RECORD_SKIP_MAX;
    if (self->nskip < STATS_RECORD_SKIP_MAX)
        self->nskip++;
}

void
stats_record_catch_up(stats_record_t *self, size_t max, stats_catchup_t *out)
{
    assert(self && out);
    memset(out, 0, sizeof *out);
    stats_ledger_due_t *due = NULL;
    size_t n = 0, bad_keys = 0;
    es_err_t err;
    if (stats_ledger_due(self->store, &due, &n, &bad_keys, &err)) {
        es_log_error("finished sessions not looked for: %s", err.what);
        return;
    }
    if (bad_keys && bad_keys != self->bad_keys)
        es_log_warn("%zu stored session rows have keys that cannot be session ids (empty or "
                    "over %d bytes): not in the ledger",
                    bad_keys, ES_NAME_MAX);
    self->bad_keys = bad_keys;
    size_t tried = 0;
    bool left = false;
    for (size_t i = 0; i < n; i++) {
        const char *id = due[i].id;
        if (s_skipped(self, id)) {
            out->skipped++;
            continue;
        }
        if (due[i].malformed) {
            //  Found by a parse, no write: does not count against max.
            es_log_warn("session %s: stored row looks finished but is not a JSON object: not "
                        "in the ledger (passed over until es-stats restarts)",
                        id);
            s_skip(self, id);
            out->malformed++;
            continue;
        }
        if (tried == max) {
            left = true;
            break;
        }
        tried++;
        yajl_val row = NULL;
        int rc = stats_ledger_row(self->store, id, &row, &err);
        if (rc == 1)
            rc = s_record_row(self, id, row, &err);
        yajl_tree_free(row);
        if (rc < 0) {
            es_log_error("session %s: run not recorded (passed over until es-stats restarts): %s",
                         id, err.what);
            s_skip(self, id);
            out->failed++;
        } else if (rc == 1) {
            es_log_info("session %s: run recorded from its stored row (its result was not "
                        "received)",
                        id);
            out->recorded++;
        }
    }
    free(due);
    //  Only a look that recorded something earns an immediate next one: a round of failures
    //  waits for the next periodic look, so nothing can spin.
    out->more = left && out->recorded > 0;
    size_t dropped;
    if (stats_ledger_sweep(self->store, &dropped, &err))
        es_log_error("ledger markers not swept: %s", err.what);
    else if (dropped)
        es_log_debug("ledger: %zu markers of pruned sessions dropped", dropped);
}
