//  test_stats_metrics - es-stats' registry and exposition text, the histogram, the snapshot that
//  carries counters across restarts, the metrics.listen parser, the run figures, and the run
//  ledger's bound (store/es_runs).
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "actors/stats/stats_history.h"
#include "actors/stats/stats_http.h"
#include "actors/stats/stats_metrics.h"
#include "common/es_mem.h"
#include "store/es_runs.h"
#include "store/es_store.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void
test_format(void **state)
{
    (void)state;
    stats_metrics_t *m = stats_metrics_new();
    es_buf_t l, out;
    es_buf_init(&l);
    es_buf_init(&out);
    stats_metrics_labels(&l, "level", "object", "result", "ok", NULL);
    assert_string_equal(l.data, "level=\"object\",result=\"ok\"");
    stats_metrics_add(m, SM_SESSIONS, l.data, 1);
    stats_metrics_add(m, SM_SESSIONS, l.data, 2);
    stats_metrics_labels(&l, "service", "S\"v\\c\nx", "object", "", NULL);
    assert_string_equal(l.data, "service=\"S\\\"v\\\\c\\nx\",object=\"\"");
    stats_metrics_add(m, SM_BYTES_DOWN, l.data, 1234567890123.0);
    stats_metrics_set(m, SM_UPCACHE, "", 4);
    stats_metrics_format(m, &out);
    assert_non_null(strstr(out.data, "# HELP edgesync_sessions_total "));
    assert_non_null(strstr(out.data, "# TYPE edgesync_sessions_total counter\n"));
    assert_non_null(
        strstr(out.data, "\nedgesync_sessions_total{level=\"object\",result=\"ok\"} 3\n"));
    assert_non_null(strstr(out.data, "edgesync_bytes_downloaded_total{service=\"S\\\"v\\\\c\\nx\","
                                     "object=\"\"} 1234567890123\n"));
    assert_non_null(strstr(out.data, "# TYPE edgesync_upload_cache_depth gauge\n"
                                     "edgesync_upload_cache_depth 4\n"));
    assert_non_null(strstr(out.data, "# TYPE edgesync_batch_duration_seconds histogram\n"));
    //  Every line is a comment or "name[{labels}] value".
    for (char *p = out.data; *p;) {
        char *nl = strchr(p, '\n');
        assert_non_null(nl);
        assert_true(*p == '#' || (strchr(p, ' ') && strchr(p, ' ') < nl));
        p = nl + 1;
    }
    assert_true(stats_metrics_get(m, SM_SESSIONS, "level=\"object\",result=\"ok\"") == 3);
    stats_metrics_clear_live(m);
    assert_true(stats_metrics_get(m, SM_UPCACHE, "") == 0);
    assert_true(stats_metrics_get(m, SM_SESSIONS, "level=\"object\",result=\"ok\"") == 3);
    es_buf_release(&l);
    es_buf_release(&out);
    stats_metrics_destroy(&m);
    stats_metrics_destroy(&m);
}

static void
test_histogram(void **state)
{
    (void)state;
    stats_metrics_t *m = stats_metrics_new();
    const char *ph = "phase=\"download\"";
    double obs[] = {0.001, 0.005, 0.006, 0.3, 2, 100};
    for (size_t i = 0; i < sizeof obs / sizeof obs[0]; i++)
        stats_metrics_observe(m, SM_BATCH_SECONDS, ph, obs[i]);
    es_buf_t out;
    es_buf_init(&out);
    stats_metrics_format(m, &out);
    //  le is inclusive; buckets are cumulative; +Inf equals the count.
    assert_non_null(strstr(out.data, "_bucket{phase=\"download\",le=\"0.005\"} 2\n"));
    assert_non_null(strstr(out.data, "_bucket{phase=\"download\",le=\"0.01\"} 3\n"));
    assert_non_null(strstr(out.data, "_bucket{phase=\"download\",le=\"0.25\"} 3\n"));
    assert_non_null(strstr(out.data, "_bucket{phase=\"download\",le=\"0.5\"} 4\n"));
    assert_non_null(strstr(out.data, "_bucket{phase=\"download\",le=\"2.5\"} 5\n"));
    assert_non_null(strstr(out.data, "_bucket{phase=\"download\",le=\"60\"} 5\n"));
    assert_non_null(strstr(out.data, "_bucket{phase=\"download\",le=\"+Inf\"} 6\n"));
    assert_non_null(
        strstr(out.data, "edgesync_batch_duration_seconds_count{phase=\"download\"} 6\n"));
    assert_non_null(
        strstr(out.data, "edgesync_batch_duration_seconds_sum{phase=\"download\"} 102.312"));
    assert_true(stats_metrics_get(m, SM_BATCH_SECONDS, ph) == 6);
    es_buf_release(&out);
    stats_metrics_destroy(&m);
}

static void
test_snapshot(void **state)
{
    (void)state;
    stats_metrics_t *m = stats_metrics_new();
    stats_metrics_add(m, SM_REC_UP, "service=\"A\",object=\"x y\"", 7);
    stats_metrics_add(m, SM_ERRORS, "code=\"2460\"", 2);
    stats_metrics_observe(m, SM_BATCH_SECONDS, "phase=\"upload\"", 0.02);
    stats_metrics_set(m, SM_PENDING, "service=\"A\",object=\"x\"", 9); //  live: not saved
    es_buf_t snap, a, b;
    es_buf_init(&snap);
    es_buf_init(&a);
    es_buf_init(&b);
    stats_metrics_save(m, &snap);
    assert_null(strstr(snap.data, "pending"));
    stats_metrics_t *back = stats_metrics_new();
    es_err_t err;
    assert_int_equal(stats_metrics_load(back, snap.data, snap.len, &err), 0);
    stats_metrics_clear_live(m);
    stats_metrics_format(m, &a);
    stats_metrics_format(back, &b);
    assert_string_equal(a.data, b.data);
    //  Malformed snapshots are refused with the line, leaving the registry empty.
    const char *bad[] = {"C x edgesync_errors_total code=\"1\"\n",
                         "C 1 nosuch_total \n",
                         "H 1 1 0 edgesync_batch_duration_seconds phase=\"u\"\n",
                         "C 1 edgesync_pending_changes \n",
                         "X 1 edgesync_errors_total\n",
                         "C -1 edgesync_errors_total \n"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(stats_metrics_load(back, bad[i], strlen(bad[i]), &err), -1);
        assert_non_null(strstr(err.what, "line 1"));
        assert_true(stats_metrics_get(back, SM_ERRORS, "code=\"2460\"") == 0);
    }
    es_buf_release(&snap);
    es_buf_release(&a);
    es_buf_release(&b);
    stats_metrics_destroy(&m);
    stats_metrics_destroy(&back);
}

static void
test_listen(void **state)
{
    (void)state;
    struct sockaddr_storage sa;
    socklen_t len;
    es_err_t err;
    assert_int_equal(stats_http_parse_listen("127.0.0.1:9469", false, &sa, &len, &err), 0);
    assert_int_equal(stats_http_parse_listen("127.1.2.3:0", false, &sa, &len, &err), 0);
    assert_int_equal(stats_http_parse_listen("localhost:80", false, &sa, &len, &err), 0);
    assert_int_equal(stats_http_parse_listen("[::1]:9469", false, &sa, &len, &err), 0);
    assert_int_equal(sa.ss_family, AF_INET6);
    assert_int_equal(stats_http_parse_listen("0.0.0.0:9469", false, &sa, &len, &err), -1);
    assert_non_null(strstr(err.what, "metrics.allow_remote"));
    assert_int_equal(stats_http_parse_listen("0.0.0.0:9469", true, &sa, &len, &err), 0);
    assert_int_equal(stats_http_parse_listen("[::]:1", false, &sa, &len, &err), -1);
    const char *bad[] = {"127.0.0.1",      "127.0.0.1:", "127.0.0.1:65536", "127.0.0.1:-1",
                         "example.com:80", ":80",        "[::1:80",         "127.0.0.1:8x"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(stats_http_parse_listen(bad[i], true, &sa, &len, &err), -1);
        assert_non_null(strstr(err.what, "metrics.listen"));
    }
}

static yajl_val
s_json(const char *text)
{
    yajl_val v = yajl_tree_parse(text, NULL, 0);
    assert_non_null(v);
    return v;
}

static void
test_run_figures(void **state)
{
    (void)state;
    stats_history_t *h = stats_history_new();
    const char *evs[] = {
        "{\"phase\":\"Sync\",\"state\":\"Started\"}",
        "{\"phase\":\"Upload\",\"state\":\"Ended\",\"batchRecords\":2,\"batchBytes\":100,"
        "\"batchMs\":5,\"batchRetries\":1}",
        "{\"phase\":\"Download\",\"state\":\"Ended\",\"batchRecords\":5,\"batchBytes\":300,"
        "\"batchMs\":5,\"batchRetries\":2}",
        "{\"phase\":\"Download\",\"state\":\"Ended\",\"batchRecords\":5,\"batchBytes\":30}",
    };
    for (size_t i = 0; i < 4; i++) {
        yajl_val v = s_json(evs[i]);
        stats_history_event(h, "s1", v, 1000 + 100 * (int64_t)i);
        yajl_tree_free(v);
    }
    //  Saved and loaded back, as after a restart of es-stats.
    es_buf_t saved;
    es_buf_init(&saved);
    stats_history_save(h, &saved);
    es_err_t err;
    assert_int_equal(stats_history_load(h, saved.data, saved.len, &err), 0);
    assert_int_equal(stats_history_size(h), 1);
    assert_int_equal(stats_history_load(h, "R 1 2 x\n", 8, &err), -1);
    assert_int_equal(stats_history_size(h), 0);
    assert_int_equal(stats_history_load(h, saved.data, saved.len, &err), 0);
    yajl_val row = s_json("{\"level\":\"object\",\"service\":\"S\",\"object\":\"O\","
                          "\"options\":\"{\\\"S\\\":{}}\",\"uploaded\":2,\"downloaded\":10,"
                          "\"startTime\":900}");
    yajl_val res = s_json("{\"code\":2460,\"message\":\"boom\",\"syncErrors\":{\"upload\":[{}],"
                          "\"download\":[]}}");
    es_buf_t out;
    es_buf_init(&out);
    char *entity = NULL, level[16];
    stats_history_finish(h, "s1", row, 2460, res, 2000, &out, &entity, level);
    assert_string_equal(entity, "O");
    assert_string_equal(level, "object");
    es_buf_t doc;
    es_buf_init(&doc);
    es_buf_printf(&doc, "{%s}", out.data);
    yajl_val run = s_json(doc.data);
    const char *p_bytes[] = {"bytesDownloaded", NULL}, *p_ret[] = {"retries", NULL},
               *p_err[] = {"errors", NULL}, *p_dl[] = {"phases", "Download", NULL},
               *p_dur[] = {"durationMs", NULL}, *p_res[] = {"result", NULL},
               *p_bd[] = {"batchesDownloaded", NULL};
    assert_int_equal(YAJL_GET_INTEGER(yajl_tree_get(run, p_bytes, yajl_t_number)), 330);
    assert_int_equal(YAJL_GET_INTEGER(yajl_tree_get(run, p_ret, yajl_t_number)), 3);
    assert_int_equal(YAJL_GET_INTEGER(yajl_tree_get(run, p_err, yajl_t_number)), 2);
    assert_int_equal(YAJL_GET_INTEGER(yajl_tree_get(run, p_dl, yajl_t_number)), 100);
    assert_int_equal(YAJL_GET_INTEGER(yajl_tree_get(run, p_dur, yajl_t_number)), 1100);
    assert_int_equal(YAJL_GET_INTEGER(yajl_tree_get(run, p_bd, yajl_t_number)), 2);
    assert_string_equal(YAJL_GET_STRING(yajl_tree_get(run, p_res, yajl_t_string)), "failed");
    assert_int_equal(stats_history_size(h), 0);
    yajl_tree_free(run);
    yajl_tree_free(row);
    yajl_tree_free(res);
    free(entity);
    es_buf_release(&doc);
    es_buf_release(&out);
    es_buf_release(&saved);
    stats_history_destroy(&h);
}

typedef struct {
    const char *entity;
    uint64_t max;
} app_t;

static int
s_append(es_txn_t *txn, void *ctx, es_err_t *err)
{
    app_t *a = ctx;
    return es_runs_append(txn, a->entity, "\"x\":1", a->max, NULL, err);
}

static void
test_ledger_bound(void **state)
{
    (void)state;
    char dir[] = "/tmp/test_stats_metrics.XXXXXX";
    assert_non_null(mkdtemp(dir));
    es_err_t err;
    es_store_t *store = es_store_new(dir, NULL, &err);
    assert_non_null(store);
    for (int i = 0; i < 7; i++) {
        app_t a = {i % 2 ? "odd" : "even", 3};
        assert_int_equal(es_store_write(store, s_append, &a, &err), 0);
    }
    es_txn_t *txn = es_store_begin(store, false, &err);
    assert_int_equal(es_runs_count(txn, &err), 3);
    es_buf_t out;
    es_buf_init(&out);
    assert_int_equal(es_runs_list(txn, NULL, 0, &out, &err), 0);
    assert_string_equal(out.data, "[{\"id\":7,\"x\":1},{\"id\":6,\"x\":1},{\"id\":5,\"x\":1}]");
    es_buf_reset(&out);
    assert_int_equal(es_runs_list(txn, "odd", 0, &out, &err), 0);
    assert_string_equal(out.data, "[{\"id\":6,\"x\":1}]");
    es_buf_reset(&out);
    assert_int_equal(es_runs_list(txn, "", 2, &out, &err), 0);
    assert_string_equal(out.data, "[{\"id\":7,\"x\":1},{\"id\":6,\"x\":1}]");
    es_txn_abort(&txn);
    //  A smaller bound drops the excess at the next append; ids keep increasing.
    app_t a = {"even", 1};
    assert_int_equal(es_store_write(store, s_append, &a, &err), 0);
    txn = es_store_begin(store, false, &err);
    es_buf_reset(&out);
    assert_int_equal(es_runs_list(txn, NULL, 0, &out, &err), 0);
    assert_string_equal(out.data, "[{\"id\":8,\"x\":1}]");
    es_txn_abort(&txn);
    es_buf_release(&out);
    es_store_destroy(&store);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_format),      cmocka_unit_test(test_histogram),
        cmocka_unit_test(test_snapshot),    cmocka_unit_test(test_listen),
        cmocka_unit_test(test_run_figures), cmocka_unit_test(test_ledger_bound),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
