//  test_stats_ledger - the markers that keep each finished session in the run ledger once: which
//  sessions are due (done rows without a marker, oldest end first), the first start over a
//  store written without markers, the sweep of markers whose session rows were pruned, and a
//  caught-up run's figures taken from its syncStats.
//  Rows are written by the daemon's own orch_session_to_json, in a real LMDB store.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "actors/orchestrator/orch_session.h"
#include "actors/stats/stats_history.h"
#include "actors/stats/stats_ledger.h"
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
        snprintf(out + strlen(out), size - strlen(out), "%s%s", i ? "," : "", due[i].id);
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
    //  Not JSON, though it contains the text: skipped (with a warning), never due.
    s_put(f->store, "session", "s5", "{\"state\":\"done\"", 15);
    s_due(f->store, ids, sizeof ids);
    assert_string_equal(ids, "s1,s4,s3"); //  oldest end first, the running one not at all
    //  A row from a daemon that did not store endTime: parsed, listed first (end unknown).
    const char *old = "{\"id\":\"s6\",\"level\":\"object\",\"service\":\"Svc\",\"object\":"
                      "\"Obj\",\"options\":\"{}\",\"code\":0,\"state\":\"done\",\"objects\":[]}";
    s_put(f->store, "session", "s6", old, strlen(old));
    s_due(f->store, ids, sizeof ids);
    assert_string_equal(ids, "s6,s1,s4,s3");
    s_mark(f->store, "s6");
    s_mark(f->store, "s4");
    assert_int_equal(s_has(f->store, "s4"), 1);
    assert_int_equal(s_has(f->store, "s1"), 0);
    s_due(f->store, ids, sizeof ids);
    assert_string_equal(ids, "s1,s3");
    stats_ledger_due_t *due;
    size_t n;
    es_err_t err;
    size_t bad = 0;
    assert_int_equal(stats_ledger_due(f->store, &due, &n, &bad, &err), 0);
    assert_int_equal(n, 2);
    assert_int_equal(bad, 1);
    assert_int_equal(due[0].end_ms, 1000);
    assert_int_equal(due[1].end_ms, 3000);
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
    assert_int_equal(stats_ledger_row(f->store, "s5", &row, &err), 0);

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

static void
test_init_upgrade(void **state)
{
    fix_t *f = *state;
    es_err_t err;
    //  A store written by a version without markers: the ledger holds A (ended at 5000).
    run_t a = {"Obj", "\"session\":\"A\",\"entity\":\"Obj\",\"start\":4000,\"end\":5000"};
    assert_int_equal(es_store_write(f->store, s_append_fn, &a, &err), 0);
    s_session(f->store, "A", true, 5000); //  in the ledger: recorded
    s_session(f->store, "B", true, 1000); //  ended before its oldest row: maybe dropped by bound
    s_session(f->store, "C", true, 9000); //  missed (es-stats was down): to record
    s_session(f->store, "D", false, 0);   //  running
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
    s_session(f->store, "E", true, 100);
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

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_due, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_init, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_init_upgrade, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_sweep, s_setup, s_teardown),
        cmocka_unit_test(test_figures_from_result),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
