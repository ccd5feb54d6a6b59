//  test_stats_ledger - the markers that keep each finished session in the run ledger once: which
//  sessions are due (done rows without a marker, oldest end first; malformed rows flagged), the
//  first start over a store written without markers (rows without endTime), the sweep of
//  markers whose session rows were pruned, a caught-up run's figures taken from its syncStats;
//  and the recorder (stats_record): a catch-up behind more than a look's worth of rows that can
//  never be recorded neither spins nor stalls, and a result whose row is absent is recorded
//  once, from the message.
//  Rows are written by the daemon's own orch_session_to_json, in a real LMDB store.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "actors/orchestrator/orch_session.h"
#include "actors/stats/stats_history.h"
#include "actors/stats/stats_ledger.h"
#include "actors/stats/stats_record.h"
#include "common/es_mem.h"
#include "protocol/es_json.h"
#include "store/es_runs.h"
#include "store/es_store.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    char dir[64];
    es_store_t *store;
} fix_t;

static int
s_setup(void **state)
{
    fix_t *f = es_calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/test_stats_ledger.XXXXXX");
    if (!mkdtemp(f->dir))
        return -1;
    es_err_t err;
    f->store = es_store_new(f->dir, NULL, &err);
    *state = f;
    return f->store ? 0 : -1;
}

static int
s_teardown(void **state)
{
    fix_t *f = *state;
    es_store_destroy(&f->store);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", f->dir);
    int rc = system(cmd);
    free(f);
    return rc == 0 ? 0 : -1;
}

typedef struct {
    const char *table, *key;
    const char *val;
    size_t vlen;
    bool del;
} put_t;

static int
s_put_fn(es_txn_t *txn, void *ctx, es_err_t *err)
{
    put_t *p = ctx;
    if (p->del)
        return es_txn_del(txn, p->table, p->key, strlen(p->key), err) < 0 ? -1 : 0;
    return es_txn_put(txn, p->table, p->key, strlen(p->key), p->val, p->vlen, err);
}

static void
s_put(es_store_t *store, const char *table, const char *key, const char *val, size_t vlen)
{
    put_t p = {table, key, val, vlen, false};
    es_err_t err;
    assert_int_equal(es_store_write(store, s_put_fn, &p, &err), 0);
}

static void
s_del(es_store_t *store, const char *table, const char *key)
{
    put_t p = {table, key, NULL, 0, true};
    es_err_t err;
    assert_int_equal(es_store_write(store, s_put_fn, &p, &err), 0);
}

//  A session row as the daemon stores it: done (finished, ending at end_ms) or running.
static void
s_session(es_store_t *store, const char *id, bool done, int64_t end_ms)
{
    session_t *s = orch_session_new(id, "object", "Svc", "Obj", "{\"syncType\":\"downloadOnly\"}");
    orch_session_add_object(s, "Svc", "Obj");
    orch_session_add_object(s, "Svc", "Other");
    //  A running session whose first object is done: "state":"done" appears in its plan.
    s->objs[0].state = SOBJ_DONE;
    if (done) {
        s->objs[1].state = SOBJ_DONE;
        orch_session_finish(s);
        s->end_epoch_ms = end_ms;
    }
    es_buf_t b;
    es_buf_init(&b);
    orch_session_to_json(s, &b);
    assert_true(done == (strstr(b.data, "\"result\":{") != NULL));
    s_put(store, "session", id, b.data, b.len);
    es_buf_release(&b);
    orch_session_destroy(&s);
}

static int
s_mark_fn(es_txn_t *txn, void *ctx, es_err_t *err)
{
    return stats_ledger_mark(txn, ctx, 7, err);
}

static void
s_mark(es_store_t *store, const char *id)
{
    es_err_t err;
    assert_int_equal(es_store_write(store, s_mark_fn, (void *)id, &err), 0);
}

static int
s_has(es_store_t *store, const char *id)
{
    es_err_t err;
    es_txn_t *txn = es_store_begin(store, false, &err);
    assert_non_null(txn);
    int rc = stats_ledger_has(txn, id, &err);
    es_txn_abort(&txn);
    return rc;
}

//  The due sessions' ids, comma-separated, in order.
static void
s_due(es_store_t *store, char *out, size_t size)
{
    stats_ledger_due_t *due;
    size_t n;
    es_err_t err;
    assert_int_equal(stats_ledger_due(store, &due, &n, NULL, &err), 0);
    out[0] = '\0';
    for (size_t i = 0; i < n; i++)
        snprintf(out + strlen(out), size - strlen(out), "%s%s%s", i ? "," : "", due[i].id,
                 due[i].malformed ? "!" : "");
    assert_true(n > 0 || due == NULL);
    free(due);
}

static void
test_due(void **state)
{
    fix_t *f = *state;
    char ids[256];
    s_due(f->store, ids, sizeof ids); //  no "session" table yet
    assert_string_equal(ids, "");
    s_session(f->store, "s3", true, 3000);
    s_session(f->store, "s1", true, 1000);
    s_session(f->store, "s2", false, 0);
    s_session(f->store, "s4", true, 2000);
    //  Not JSON, though it contains the text: listed as malformed (first: no end), for the
    //  caller to pass over; a truncated daemon row likewise.
    s_put(f->store, "session", "s5", "{\"state\":\"done\"", 15);
    const char *cut = "{\"id\":\"s7\",\"code\":0,\"cancelled\":false,\"state\":\"done\","
                      "\"endTime\":2500,\"objects\":[";
    s_put(f->store, "session", "s7", cut, strlen(cut));
    //  A key that cannot be a session id: counted apart.
    char longkey[ES_NAME_MAX + 2];
    memset(longkey, 'k', sizeof longkey - 1);
    longkey[sizeof longkey - 1] = '\0';
    s_put(f->store, "session", longkey, "{}", 2);
    s_due(f->store, ids, sizeof ids);
    assert_string_equal(ids, "s5!,s7!,s1,s4,s3"); //  oldest end first, the running one not at all
    //  A row from a daemon that did not store endTime: ordered by its start.
    const char *old = "{\"id\":\"s6\",\"level\":\"object\",\"service\":\"Svc\",\"object\":"
                      "\"Obj\",\"options\":\"{}\",\"startTime\":1500,\"code\":0,"
                      "\"state\":\"done\",\"objects\":[]}";
    s_put(f->store, "session", "s6", old, strlen(old));
    s_due(f->store, ids, sizeof ids);
    assert_string_equal(ids, "s5!,s7!,s1,s6,s4,s3");
    s_del(f->store, "session", "s7");
    s_mark(f->store, "s6");
    s_mark(f->store, "s4");
    assert_int_equal(s_has(f->store, "s4"), 1);
    assert_int_equal(s_has(f->store, "s1"), 0);
    s_due(f->store, ids, sizeof ids);
    assert_string_equal(ids, "s5!,s1,s3");
    stats_ledger_due_t *due;
    size_t n;
    es_err_t err;
    size_t bad = 0;
    assert_int_equal(stats_ledger_due(f->store, &due, &n, &bad, &err), 0);
    assert_int_equal(n, 3);
    assert_int_equal(bad, 1);
    assert_true(due[0].malformed);
    assert_string_equal(due[0].id, "s5");
    assert_false(due[1].malformed);
    assert_int_equal(due[1].end_ms, 1000);
    assert_int_equal(due[2].end_ms, 3000);
    free(due);

    //  The row of a due session carries its result; running or absent ones are not done.
    yajl_val row;
    assert_int_equal(stats_ledger_row(f->store, "s1", &row, &err), 1);
    const char *rp[] = {"result", "name", NULL};
    yajl_val name = yajl_tree_get(row, rp, yajl_t_string);
    assert_non_null(name);
    assert_string_equal(YAJL_GET_STRING(name), "Obj");
    assert_string_equal(es_json_get_str(row, "level"), "object");
    yajl_tree_free(row);
    assert_int_equal(stats_ledger_row(f->store, "s2", &row, &err), 0);
    assert_null(row);
    assert_int_equal(stats_ledger_row(f->store, "nope", &row, &err), 0);
    //  A malformed row is an error naming the session.
    assert_int_equal(stats_ledger_row(f->store, "s5", &row, &err), -1);
    assert_null(row);
    assert_non_null(strstr(err.what, "s5"));

    //  The session's end travels in its row (the daemon's orch_session_to_json / from_json).
    session_t *s = orch_session_new("x", "object", "Svc", "Obj", "{}");
    orch_session_finish(s);
    assert_true(s->end_epoch_ms > 1700000000000LL);
    s->end_epoch_ms = 4242;
    es_buf_t b;
    es_buf_init(&b);
    orch_session_to_json(s, &b);
    session_t *back = orch_session_from_json(b.data, b.len);
    assert_non_null(back);
    assert_int_equal(back->end_epoch_ms, 4242);
    orch_session_destroy(&back);
    orch_session_destroy(&s);
    es_buf_release(&b);
}

typedef struct {
    const char *entity, *fields;
} run_t;

static int
s_append_fn(es_txn_t *txn, void *ctx, es_err_t *err)
{
    run_t *r = ctx;
    return es_runs_append(txn, r->entity, r->fields, 1000, NULL, err);
}

static void
test_init(void **state)
{
    fix_t *f = *state;
    es_err_t err;
    size_t marked = 99;
    //  An empty ledger recorded nothing: sessions done before the first start stay due.
    s_session(f->store, "e1", true, 500);
    assert_int_equal(stats_ledger_init(f->store, &marked, &err), 0);
    assert_int_equal(marked, 0);
    char ids[256];
    s_due(f->store, ids, sizeof ids);
    assert_string_equal(ids, "e1");
}

//  A finished session row as a daemon before endTime stored it: started at start_ms.
static void
s_old_session(es_store_t *store, const char *id, int64_t start_ms)
{
    char text[512];
    int n = snprintf(text, sizeof text,
                     "{\"id\":\"%s\",\"level\":\"object\",\"service\":\"Svc\",\"object\":\"Obj\","
                     "\"syncType\":\"\",\"options\":\"{}\",\"uploaded\":0,\"replays\":0,"
                     "\"reconciled\":0,\"sequential\":false,\"getStats\":false,"
                     "\"startTime\":%lld,\"downloaded\":3,\"code\":0,\"cancelled\":false,"
                     "\"state\":\"done\",\"objects\":[{\"service\":\"Svc\",\"name\":\"Obj\","
                     "\"state\":\"done\",\"batches\":1,\"records\":3,\"attempts\":1}],"
                     "\"nbatches\":1,\"uerrors\":[],\"errors\":[],\"warnings\":[],"
                     "\"result\":{\"opstatus\":0}}",
                     id, (long long)start_ms);
    assert_true(n > 0 && (size_t)n < sizeof text);
    assert_null(strstr(text, "endTime"));
    s_put(store, "session", id, text, (size_t)n);
}

static void
test_init_upgrade(void **state)
{
    fix_t *f = *state;
    es_err_t err;
    //  A store written by a version without markers nor endTime: the ledger holds A (ended at
    //  5000).
    run_t a = {"Obj", "\"session\":\"A\",\"entity\":\"Obj\",\"start\":4000,\"end\":5000"};
    assert_int_equal(es_store_write(f->store, s_append_fn, &a, &err), 0);
    s_old_session(f->store, "A", 4000); //  in the ledger: recorded
    s_old_session(f->store, "B", 800);  //  started before its oldest end: maybe dropped by bound
    s_old_session(f->store, "C", 6000); //  started after it: missed (es-stats was down)
    s_session(f->store, "D", false, 0); //  running
    size_t marked = 0;
    assert_int_equal(stats_ledger_init(f->store, &marked, &err), 0);
    assert_int_equal(marked, 2);
    assert_int_equal(s_has(f->store, "A"), 1);
    assert_int_equal(s_has(f->store, "B"), 1);
    assert_int_equal(s_has(f->store, "C"), 0);
    char ids[256];
    s_due(f->store, ids, sizeof ids);
    assert_string_equal(ids, "C");
    //  Once only: later starts leave the markers to the recordings.
    s_session(f->store, "E", true, 100); //  a new daemon's row, with endTime
    assert_int_equal(stats_ledger_init(f->store, &marked, &err), 0);
    assert_int_equal(marked, 0);
    s_due(f->store, ids, sizeof ids);
    assert_string_equal(ids, "E,C");
}

static void
test_sweep(void **state)
{
    fix_t *f = *state;
    es_err_t err;
    size_t dropped = 99;
    assert_int_equal(stats_ledger_sweep(f->store, &dropped, &err), 0); //  no tables yet
    assert_int_equal(dropped, 0);
    s_session(f->store, "a", true, 1);
    s_session(f->store, "b", true, 2);
    s_session(f->store, "c", false, 0);
    s_mark(f->store, "a");
    s_mark(f->store, "b");
    //  The daemon prunes "a" and "b"; a stale marker is kept while markers <= rows.
    s_del(f->store, "session", "a");
    assert_int_equal(stats_ledger_sweep(f->store, &dropped, &err), 0);
    assert_int_equal(dropped, 0);
    assert_int_equal(s_has(f->store, "a"), 1);
    s_del(f->store, "session", "b");
    assert_int_equal(stats_ledger_sweep(f->store, &dropped, &err), 0);
    assert_int_equal(dropped, 2);
    assert_int_equal(s_has(f->store, "a"), 0);
    assert_int_equal(s_has(f->store, "b"), 0);
    //  Markers of sessions still stored stay.
    s_session(f->store, "d", true, 3);
    s_mark(f->store, "d");
    s_mark(f->store, "gone1");
    s_mark(f->store, "gone2");
    assert_int_equal(stats_ledger_sweep(f->store, &dropped, &err), 0);
    assert_int_equal(dropped, 2);
    assert_int_equal(s_has(f->store, "d"), 1);
    char ids[256];
    s_due(f->store, ids, sizeof ids);
    assert_string_equal(ids, "");
}

//  A session recorded from its row after its events were missed: figures from its syncStats.
static void
test_figures_from_result(void **state)
{
    (void)state;
    stats_history_t *h = stats_history_new();
    const char *row_text = "{\"level\":\"app\",\"service\":\"\",\"object\":\"\",\"options\":\"{}\","
                           "\"startTime\":1000,\"downloaded\":30,\"uploaded\":2}";
    const char *result_text =
        "{\"status\":0,\"successResponse\":{"
        "\"A\":{\"syncStats\":{\"uploadStats\":[{\"phase\":\"Upload\",\"bytes\":50,\"retries\":0}],"
        "\"downloadStats\":[{\"bytes\":100,\"retries\":1},{\"bytes\":200,\"retries\":0}]}},"
        "\"B\":{\"syncStats\":{\"uploadStats\":[],\"downloadStats\":[{\"bytes\":7,\"retries\":2}]}}"
        "}}";
    yajl_val row = yajl_tree_parse(row_text, NULL, 0),
             result = yajl_tree_parse(result_text, NULL, 0);
    assert_non_null(row);
    assert_non_null(result);
    es_buf_t out;
    es_buf_init(&out);
    char *entity = NULL, level[16];
    stats_history_finish(h, "sx", row, 0, result, 4000, &out, &entity, level);
    assert_string_equal(entity, "application");
    assert_string_equal(level, "app");
    assert_non_null(strstr(out.data, "\"uploaded\":2,\"downloaded\":30,"));
    assert_non_null(strstr(out.data,
                           "\"bytesUploaded\":50,\"bytesDownloaded\":307,"
                           "\"batchesUploaded\":1,\"batchesDownloaded\":3,\"retries\":3,"));
    assert_non_null(strstr(out.data, "\"start\":1000,\"end\":4000,\"durationMs\":3000,"));
    free(entity);
    es_buf_release(&out);
    yajl_tree_free(row);
    yajl_tree_free(result);
    stats_history_destroy(&h);
}

//  --- the recorder ----------------------------------------------------------------------------

typedef struct {
    stats_metrics_t *metrics;
    stats_history_t *history;
    stats_record_t *rec;
} recorder_t;

static void
s_rec_new(recorder_t *r, es_store_t *store)
{
    r->metrics = stats_metrics_new();
    r->history = stats_history_new();
    r->rec = stats_record_new(store, r->metrics, r->history, 1000);
}

static void
s_rec_destroy(recorder_t *r)
{
    stats_record_destroy(&r->rec);
    assert_null(r->rec);
    stats_history_destroy(&r->history);
    stats_metrics_destroy(&r->metrics);
}

static int64_t
s_runs(es_store_t *store)
{
    es_err_t err;
    es_txn_t *txn = es_store_begin(store, false, &err);
    assert_non_null(txn);
    int64_t n = es_runs_count(txn, &err);
    es_txn_abort(&txn);
    return n;
}

//  The ledger as JSON, newest first.
static char *
s_ledger(es_store_t *store)
{
    es_err_t err;
    es_txn_t *txn = es_store_begin(store, false, &err);
    assert_non_null(txn);
    es_buf_t b;
    es_buf_init(&b);
    assert_int_equal(es_runs_list(txn, NULL, 0, &b, &err), 0);
    es_txn_abort(&txn);
    char *text = es_strndup(b.data ? b.data : "", b.len);
    es_buf_release(&b);
    return text;
}

static double
s_sessions(const recorder_t *r, const char *level, const char *result)
{
    es_buf_t l;
    es_buf_init(&l);
    stats_metrics_labels(&l, "level", level, "result", result, NULL);
    double v = stats_metrics_get(r->metrics, SM_SESSIONS, l.data);
    es_buf_release(&l);
    return v;
}

//  A finished row whose recording always fails: its syncStats name is longer than an LMDB key
//  can be, so the entity's stats cannot be stored.
static void
s_failing_session(es_store_t *store, const char *id, int64_t end_ms)
{
    char name[600];
    memset(name, 'n', sizeof name - 1);
    name[sizeof name - 1] = '\0';
    es_buf_t b;
    es_buf_init(&b);
    es_buf_printf(&b,
                  "{\"id\":\"%s\",\"level\":\"object\",\"service\":\"Svc\",\"object\":\"Obj\","
                  "\"options\":\"{}\",\"startTime\":%lld,\"code\":0,\"state\":\"done\","
                  "\"endTime\":%lld,\"objects\":[],\"result\":{\"opstatus\":0,\"syncStats\":"
                  "{\"name\":\"%s\"}}}",
                  id, (long long)end_ms - 10, (long long)end_ms, name);
    s_put(store, "session", id, b.data, b.len);
    es_buf_release(&b);
}

//  More rows that can never be recorded than one look takes (malformed rows, rows whose
//  recording fails), all older than the good ones: a look that records nothing asks for no
//  immediate next look (no spin), each bad session is reported once, and the next periodic
//  look passes over them and records the newer sessions.
static void
test_catch_up_stuck(void **state)
{
    fix_t *f = *state;
    enum { MAX = 16, NBAD = MAX + 1 };
    char id[32];
    for (int i = 0; i < NBAD; i++) {
        snprintf(id, sizeof id, "bad%02d", i);
        //  Truncated daemon rows: they contain the finished-row text, no JSON object.
        char text[96];
        int n = snprintf(text, sizeof text, "{\"id\":\"%s\",\"state\":\"done\",\"endTime\":%d", id,
                         100 + i);
        s_put(f->store, "session", id, text, (size_t)n);
        snprintf(id, sizeof id, "fail%02d", i);
        s_failing_session(f->store, id, 1000 + i);
    }
    s_session(f->store, "good1", true, 5001);
    s_session(f->store, "good2", true, 5002);
    s_session(f->store, "good3", true, 5003);
    s_session(f->store, "run", false, 0);
    recorder_t r;
    s_rec_new(&r, f->store);

    //  First look: every malformed row found (no write: not bounded), MAX failures, nothing
    //  recorded, so no immediate next look although one failure and the good ones are left.
    stats_catchup_t c;
    stats_record_catch_up(r.rec, MAX, &c);
    assert_int_equal(c.malformed, NBAD);
    assert_int_equal(c.failed, MAX);
    assert_int_equal(c.recorded, 0);
    assert_int_equal(c.skipped, 0);
    assert_false(c.more);
    assert_int_equal(s_runs(f->store), 0);
    assert_true(s_sessions(&r, "object", "ok") == 0); //  failed recordings counted nothing

    //  The next (periodic) look passes over what is known bad, tries the last failing one,
    //  records the three newer sessions; nothing is left.
    stats_record_catch_up(r.rec, MAX, &c);
    assert_int_equal(c.malformed, 0);
    assert_int_equal(c.skipped, NBAD + MAX);
    assert_int_equal(c.failed, 1);
    assert_int_equal(c.recorded, 3);
    assert_false(c.more);
    assert_int_equal(s_runs(f->store), 3);
    assert_true(s_sessions(&r, "object", "ok") == 3);
    assert_int_equal(s_has(f->store, "good1"), 1);
    assert_int_equal(s_has(f->store, "fail00"), 0);
    assert_int_equal(s_has(f->store, "bad00"), 0);

    //  And then: nothing new, nothing reported again.
    stats_record_catch_up(r.rec, MAX, &c);
    assert_int_equal(c.malformed + c.failed + c.recorded, 0);
    assert_int_equal(c.skipped, 2 * NBAD);
    assert_false(c.more);
    s_rec_destroy(&r);

    //  A restarted es-stats tries them again, and still records nothing twice.
    s_rec_new(&r, f->store);
    stats_record_catch_up(r.rec, MAX, &c);
    assert_int_equal(c.malformed, NBAD);
    assert_int_equal(c.failed, MAX);
    assert_int_equal(c.recorded, 0);
    s_rec_destroy(&r);
    assert_int_equal(s_runs(f->store), 3);
}

//  A backlog longer than one look: an immediate next look while each records something.
static void
test_catch_up_backlog(void **state)
{
    fix_t *f = *state;
    char id[32];
    for (int i = 0; i < 20; i++) {
        snprintf(id, sizeof id, "s%02d", i);
        s_session(f->store, id, true, 1000 + i);
    }
    recorder_t r;
    s_rec_new(&r, f->store);
    stats_catchup_t c;
    stats_record_catch_up(r.rec, 16, &c);
    assert_int_equal(c.recorded, 16);
    assert_true(c.more);
    assert_int_equal(s_has(f->store, "s15"), 1); //  oldest first
    assert_int_equal(s_has(f->store, "s16"), 0);
    stats_record_catch_up(r.rec, 16, &c);
    assert_int_equal(c.recorded, 4);
    assert_false(c.more);
    stats_record_catch_up(r.rec, 16, &c);
    assert_int_equal(c.recorded, 0);
    assert_false(c.more);
    assert_int_equal(s_runs(f->store), 20);
    assert_true(s_sessions(&r, "object", "ok") == 20);
    s_rec_destroy(&r);
}

//  Results: recorded from the stored row when there is one; when the row is absent (the
//  daemon's final save failed, or it was pruned) or malformed, from the message, once, and a
//  row appearing later is not recorded again.
static void
test_result_without_row(void **state)
{
    fix_t *f = *state;
    recorder_t r;
    s_rec_new(&r, f->store);
    es_err_t err;
    const char *body = "{\"opstatus\":1012,\"message\":\"server said no\","
                       "\"syncStats\":{\"name\":\"Obj\",\"startTime\":1}}";

    //  With its row: level and entity from it.
    s_session(f->store, "withrow", true, 2000);
    assert_int_equal(stats_record_result(r.rec, "withrow", 0, "{}", 2, &err), 1);
    assert_int_equal(stats_record_result(r.rec, "withrow", 0, "{}", 2, &err), 0);
    assert_true(s_sessions(&r, "object", "ok") == 1);

    //  Without: from the message (code, message, syncStats), level unknown.
    assert_int_equal(stats_record_result(r.rec, "norow", 1012, body, strlen(body), &err), 1);
    assert_int_equal(s_has(f->store, "norow"), 1);
    assert_int_equal(s_runs(f->store), 2);
    assert_true(s_sessions(&r, "unknown", "failed") == 1);
    char *ledger = s_ledger(f->store);
    assert_non_null(strstr(ledger, "\"session\":\"norow\",\"entity\":\"\",\"level\":\"\""));
    assert_non_null(strstr(ledger, "\"result\":\"failed\",\"code\":1012,\"message\":"
                                   "\"server said no\""));
    assert_non_null(strstr(ledger, "\"session\":\"withrow\",\"entity\":\"Obj\","
                                   "\"level\":\"object\""));
    free(ledger);
    //  Its syncStats stored under the entity name, as the message said.
    es_txn_t *txn = es_store_begin(f->store, false, &err);
    assert_non_null(txn);
    const void *val;
    size_t vlen;
    assert_int_equal(es_txn_get(txn, "stats", "Obj", 3, &val, &vlen, &err), 1);
    es_txn_abort(&txn);

    //  The same result again, or its row stored late and found by a look: nothing more.
    assert_int_equal(stats_record_result(r.rec, "norow", 1012, body, strlen(body), &err), 0);
    s_session(f->store, "norow", true, 3000);
    stats_catchup_t c;
    stats_record_catch_up(r.rec, 16, &c);
    assert_int_equal(c.recorded, 0);
    assert_int_equal(s_runs(f->store), 2);

    //  A malformed row, and a body that is not JSON: still recorded once.
    s_put(f->store, "session", "cut", "{\"state\":\"done\",", 16);
    assert_int_equal(stats_record_result(r.rec, "cut", 0, "not json", 8, &err), 1);
    assert_int_equal(stats_record_result(r.rec, "cut", 0, NULL, 0, &err), 0);
    assert_int_equal(s_runs(f->store), 3);
    assert_true(s_sessions(&r, "unknown", "ok") == 1);
    assert_true(s_sessions(&r, "unknown", "failed") == 1);
    assert_true(s_sessions(&r, "object", "ok") == 1);

    //  Counters reach the store with the recordings.
    txn = es_store_begin(f->store, false, &err);
    assert_non_null(txn);
    assert_int_equal(es_txn_get(txn, "metrics", STATS_RECORD_SNAPSHOT_KEY,
                                strlen(STATS_RECORD_SNAPSHOT_KEY), &val, &vlen, &err),
                     1);
    stats_metrics_t *back = stats_metrics_new();
    assert_int_equal(stats_metrics_load(back, val, vlen, &err), 0);
    es_txn_abort(&txn);
    es_buf_t l;
    es_buf_init(&l);
    stats_metrics_labels(&l, "level", "unknown", "result", "failed", NULL);
    assert_true(stats_metrics_get(back, SM_SESSIONS, l.data) == 1);
    es_buf_release(&l);
    stats_metrics_destroy(&back);
    s_rec_destroy(&r);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_due, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_init, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_init_upgrade, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_sweep, s_setup, s_teardown),
        cmocka_unit_test(test_figures_from_result),
        cmocka_unit_test_setup_teardown(test_catch_up_stuck, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_catch_up_backlog, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_result_without_row, s_setup, s_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
