//  test_es_result - es_sync_result_new(): success, partial failure, failure and app-level objects
//  as the daemon writes them (SPEC 4.2-4.4, D10, D11) parsed into es_sync_result_t, and every kind
//  of malformed input refused with an error naming the member.
#include "client/edgesync.h"
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

static void
test_success_with_stats(void **state)
{
    (void)state;
    const char *json =
        "{\"status\":0,\"objectServiceName\":\"SampleSvc\",\"syncStats\":{\"name\":\"SampleSvc\","
        "\"startTime\":1795664033462,\"syncElapsedTime\":123,\"numberOfRecordsSynced\":252,"
        "\"totalUploadedRecords\":2,\"totalDownloadedRecords\":250,\"uploadStats\":[{"
        "\"objectService\":\"SampleSvc\",\"object\":\"Customer\",\"batchNumber\":1,"
        "\"numberOfRecords\":2,\"requestCreationTime\":1,\"networkDurationTime\":9,"
        "\"responseParsingTime\":0,\"dataPersistanceTime\":3,\"bytes\":812,\"retries\":0}],"
        "\"downloadStats\":[{\"object\":\"Customer\",\"batchNumber\":1,\"numberOfRecords\":200,"
        "\"requestCreationTime\":1,\"networkDurationTime\":12,\"responseParsingTime\":2,"
        "\"dataPersistanceTime\":5,\"bytes\":35390,\"retries\":1},{\"object\":\"Product\","
        "\"batchNumber\":1,\"numberOfRecords\":50,\"requestCreationTime\":0,"
        "\"networkDurationTime\":6,\"responseParsingTime\":0,\"dataPersistanceTime\":17,"
        "\"bytes\":18517,\"retries\":0}],\"reconciledDeletes\":4,\"uploadCacheReplays\":1},"
        "\"warnings\":[\"unknown option 'foo' ignored\"]}";
    es_sync_result_t *r = es_sync_result_new(json);
    assert_non_null(r);
    assert_int_equal(es_client_last_code(), ES_CLIENT_OK);
    assert_int_equal(r->ok, 1);
    assert_int_equal(r->code, 0);
    assert_string_equal(r->message, "");
    assert_string_equal(r->name, "SampleSvc");
    assert_int_equal(r->nerrors, 0);
    assert_int_equal(r->nservices, 0);
    assert_int_equal(r->nwarnings, 1);
    assert_string_equal(r->warnings[0], "unknown option 'foo' ignored");
    es_sync_stats_t *s = r->stats;
    assert_non_null(s);
    assert_string_equal(s->name, "SampleSvc");
    assert_true(s->start_time == 1795664033462LL);
    assert_int_equal(s->sync_elapsed_time, 123);
    assert_int_equal(s->number_of_records_synced, 252);
    assert_int_equal(s->total_uploaded_records, 2);
    assert_int_equal(s->total_downloaded_records, 250);
    assert_int_equal(s->reconciled_deletes, 4);
    assert_int_equal(s->upload_cache_replays, 1);
    assert_int_equal(s->nupload_stats, 1);
    assert_string_equal(s->upload_stats[0].object, "Customer");
    assert_int_equal(s->upload_stats[0].network_duration_time, 9);
    assert_int_equal(s->upload_stats[0].bytes, 812);
    assert_int_equal(s->ndownload_stats, 2);
    es_sync_batch_t *b = &s->download_stats[0];
    assert_string_equal(b->object, "Customer");
    assert_int_equal(b->batch_number, 1);
    assert_int_equal(b->number_of_records, 200);
    assert_int_equal(b->request_creation_time, 1);
    assert_int_equal(b->network_duration_time, 12);
    assert_int_equal(b->response_parsing_time, 2);
    assert_int_equal(b->data_persistance_time, 5);
    assert_int_equal(b->bytes, 35390);
    assert_int_equal(b->retries, 1);
    assert_string_equal(s->download_stats[1].object, "Product");
    assert_int_equal(s->download_stats[1].data_persistance_time, 17);
    es_sync_result_destroy(&r);
    assert_null(r);
    es_sync_result_destroy(&r);
}

static void
test_partial_failure(void **state)
{
    (void)state;
    const char *json =
        "{\"status\":0,\"name\":\"Product\",\"syncErrors\":{\"upload\":[{\"object\":\"Product\","
        "\"objectService\":\"SampleSvc\",\"primaryKeys\":{\"sku\":\"SKU-1\"},\"opstatus\":"
        "500123,\"errmsg\":\"duplicate key\"}],\"download\":[{\"object\":\"Product\","
        "\"objectService\":\"SampleSvc\",\"opstatus\":7,\"errmsg\":\"bad row\"}]}}";
    es_sync_result_t *r = es_sync_result_new(json);
    assert_non_null(r);
    assert_int_equal(r->ok, 1);
    assert_string_equal(r->name, "Product");
    assert_null(r->stats);
    assert_int_equal(r->nerrors, 2);
    assert_int_equal(r->errors[0].upload, 1);
    assert_string_equal(r->errors[0].object, "Product");
    assert_string_equal(r->errors[0].object_service, "SampleSvc");
    assert_string_equal(r->errors[0].primary_keys, "{\"sku\":\"SKU-1\"}");
    assert_int_equal(r->errors[0].opstatus, 500123);
    assert_string_equal(r->errors[0].errmsg, "duplicate key");
    assert_int_equal(r->errors[1].upload, 0);
    assert_string_equal(r->errors[1].primary_keys, "");
    assert_string_equal(r->errors[1].errmsg, "bad row");
    es_sync_result_destroy(&r);
}

static void
test_failure(void **state)
{
    (void)state;
    const char *json = "{\"code\":2477,\"message\":\"Invalid value found for syncType option bad\","
                       "\"domain\":\"OfflineObjectsError\",\"status\":-1,\"userInfo\":{"
                       "\"objectName\":\"Customer\"}}";
    es_sync_result_t *r = es_sync_result_new(json);
    assert_non_null(r);
    assert_int_equal(r->ok, 0);
    assert_int_equal(r->code, 2477);
    assert_string_equal(r->message, "Invalid value found for syncType option bad");
    assert_string_equal(r->domain, "OfflineObjectsError");
    assert_string_equal(r->name, "Customer");
    assert_null(r->stats);
    es_sync_result_destroy(&r);
    //  A complete upload failure carries syncErrors too (SPEC 4.4).
    r = es_sync_result_new("{\"code\":2473,\"message\":\"Sync upload failed with an error: x\","
                           "\"status\":-1,\"userInfo\":{\"objectServiceName\":\"S\"},"
                           "\"syncErrors\":{\"upload\":[{\"object\":\"A\",\"opstatus\":1}]}}");
    assert_non_null(r);
    assert_int_equal(r->ok, 0);
    assert_string_equal(r->name, "S");
    assert_int_equal(r->nerrors, 1);
    assert_string_equal(r->errors[0].object, "A");
    assert_string_equal(r->errors[0].errmsg, "");
    es_sync_result_destroy(&r);
}

static void
test_app_level(void **state)
{
    (void)state;
    const char *ok = "{\"status\":0,\"successResponse\":{\"A\":{\"status\":0,"
                     "\"objectServiceName\":\"A\"},\"B\":{\"status\":0}}}";
    es_sync_result_t *r = es_sync_result_new(ok);
    assert_non_null(r);
    assert_int_equal(r->ok, 1);
    assert_string_equal(r->name, "");
    assert_int_equal(r->nservices, 2);
    assert_string_equal(r->services[0].name, "A");
    assert_string_equal(r->services[1].name, "B"); //  from the map key
    assert_int_equal(r->services[1].ok, 1);
    es_sync_result_destroy(&r);

    const char *failed =
        "{\"code\":2460,\"message\":\"Application Sync failed due to failure in sync of one or "
        "more object services,[B]\",\"domain\":\"OfflineObjectsError\",\"status\":-1,"
        "\"userInfo\":{\"successResponse\":{\"A\":{\"status\":0,\"objectServiceName\":\"A\"}},"
        "\"failureResponse\":{\"B\":{\"code\":2474,\"message\":\"Sync download failed with an "
        "error: HTTP 500\",\"status\":-1,\"userInfo\":{\"objectServiceName\":\"B\"}}}},"
        "\"successResponse\":{\"A\":{\"status\":0,\"objectServiceName\":\"A\"}},"
        "\"failureResponse\":{\"B\":{\"code\":2474,\"message\":\"Sync download failed with an "
        "error: HTTP 500\",\"status\":-1,\"userInfo\":{\"objectServiceName\":\"B\"}}}}";
    r = es_sync_result_new(failed);
    assert_non_null(r);
    assert_int_equal(r->ok, 0);
    assert_int_equal(r->code, 2460);
    assert_int_equal(r->nservices, 2); //  the top-level maps, not userInfo's copies as well
    assert_int_equal(r->services[0].ok, 1);
    assert_string_equal(r->services[0].name, "A");
    assert_int_equal(r->services[1].ok, 0);
    assert_int_equal(r->services[1].code, 2474);
    assert_string_equal(r->services[1].name, "B");
    assert_string_equal(r->services[1].message, "Sync download failed with an error: HTTP 500");
    es_sync_result_destroy(&r);

    //  Native shape: the maps only inside userInfo.
    r = es_sync_result_new("{\"code\":2460,\"status\":-1,\"userInfo\":{\"failureResponse\":{"
                           "\"B\":{\"code\":2461,\"status\":-1}}}}");
    assert_non_null(r);
    assert_int_equal(r->nservices, 1);
    assert_int_equal(r->services[0].code, 2461);
    es_sync_result_destroy(&r);
}

typedef struct {
    const char *json;
    const char *what; //  es_client_last_error()
} bad_t;

static const bad_t s_bad[] = {
    {"", "sync result: not JSON: parse error: premature EOF"},
    {"{\"status\":0", "sync result: not JSON: parse error: premature EOF"},
    {"[]", "sync result: expected a JSON object"},
    {"7", "sync result: expected a JSON object"},
    {"{}", "sync result: neither status nor code: not a sync result"},
    {"{\"status\":\"0\"}", "sync result: status: expected an integer"},
    {"{\"status\":1}", "sync result: status: expected 0 or -1, got 1"},
    {"{\"status\":-1}", "sync result: code: missing in a failure object"},
    {"{\"status\":0,\"code\":2477}", "sync result: code: 2477 in a success object"},
    {"{\"status\":-1,\"code\":1.5}", "sync result: code: expected an integer"},
    {"{\"status\":-1,\"code\":99999999999}", "sync result: code: 99999999999 out of range"},
    {"{\"status\":-1,\"code\":2,\"message\":3}", "sync result: message: expected a string"},
    {"{\"status\":0,\"name\":[]}", "sync result: name: expected a string"},
    {"{\"status\":-1,\"code\":2,\"userInfo\":[]}", "sync result: userInfo: expected an object"},
    {"{\"status\":-1,\"code\":2,\"userInfo\":{\"objectName\":1}}",
     "sync result: userInfo.objectName: expected a string"},
    {"{\"status\":0,\"syncStats\":5}", "sync result: syncStats: expected an object"},
    {"{\"status\":0,\"syncStats\":{\"startTime\":\"x\"}}",
     "sync result: syncStats.startTime: expected an integer"},
    {"{\"status\":0,\"syncStats\":{\"downloadStats\":{}}}",
     "sync result: syncStats.downloadStats: expected an array"},
    {"{\"status\":0,\"syncStats\":{\"uploadStats\":[{},1]}}",
     "sync result: syncStats.uploadStats[1]: expected an object"},
    {"{\"status\":0,\"syncStats\":{\"downloadStats\":[{\"bytes\":-1},{\"bytes\":true}]}}",
     "sync result: syncStats.downloadStats[1].bytes: expected an integer"},
    {"{\"status\":0,\"syncErrors\":[]}", "sync result: syncErrors: expected an object"},
    {"{\"status\":0,\"syncErrors\":{\"upload\":{}}}",
     "sync result: syncErrors.upload: expected an array"},
    {"{\"status\":0,\"syncErrors\":{\"download\":[\"x\"]}}",
     "sync result: syncErrors.download[0]: expected an object"},
    {"{\"status\":0,\"syncErrors\":{\"upload\":[{\"errmsg\":false}]}}",
     "sync result: syncErrors.upload[0].errmsg: expected a string"},
    {"{\"status\":0,\"warnings\":\"w\"}", "sync result: warnings: expected an array"},
    {"{\"status\":0,\"warnings\":[\"a\",null]}", "sync result: warnings[1]: expected a string"},
    {"{\"status\":0,\"successResponse\":[]}", "sync result: successResponse: expected an object"},
    {"{\"status\":0,\"successResponse\":{\"A\":{\"status\":2}}}",
     "sync result: successResponse.A: status: expected 0 or -1, got 2"},
    {"{\"status\":-1,\"code\":2460,\"failureResponse\":{\"B\":{}}}",
     "sync result: failureResponse.B: neither status nor code: not a sync result"},
};

static void
test_bad_input(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof s_bad / sizeof s_bad[0]; i++) {
        print_message("bad %zu: %s\n", i, s_bad[i].json);
        es_sync_result_t *r = es_sync_result_new(s_bad[i].json);
        assert_null(r);
        assert_int_equal(es_client_last_code(), ES_CLIENT_EINVAL);
        assert_string_equal(es_client_last_error(), s_bad[i].what);
    }
    assert_null(es_sync_result_new(NULL));
    assert_string_equal(es_client_last_error(), "sync result: NULL text");
    //  A later success clears the error.
    es_sync_result_t *r = es_sync_result_new("{\"status\":0}");
    assert_non_null(r);
    assert_string_equal(es_client_last_error(), "");
    es_sync_result_destroy(&r);
}

//  Every proper prefix of a valid result is refused, never crashes or leaks.
static void
test_prefixes(void **state)
{
    (void)state;
    const char *json = "{\"status\":0,\"name\":\"P\",\"syncStats\":{\"downloadStats\":[{"
                       "\"object\":\"P\",\"bytes\":3}]},\"syncErrors\":{\"upload\":[{"
                       "\"primaryKeys\":{\"id\":1}}]},\"warnings\":[\"w\"]}";
    char buf[512];
    size_t n = strlen(json);
    for (size_t len = 0; len < n; len++) {
        memcpy(buf, json, len);
        buf[len] = '\0';
        assert_null(es_sync_result_new(buf));
    }
    es_sync_result_t *r = es_sync_result_new(json);
    assert_non_null(r);
    assert_string_equal(r->errors[0].primary_keys, "{\"id\":1}");
    es_sync_result_destroy(&r);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_success_with_stats),
        cmocka_unit_test(test_partial_failure),
        cmocka_unit_test(test_failure),
        cmocka_unit_test(test_app_level),
        cmocka_unit_test(test_bad_input),
        cmocka_unit_test(test_prefixes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
