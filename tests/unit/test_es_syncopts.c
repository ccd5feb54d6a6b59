//  test_es_syncopts - syncOptions parsing and validation, table-driven: every option with
//  valid, boundary and invalid values at object and service level, and the app level.
#include "common/es_mem.h"
#include "protocol/es_syncopts.h"
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#define O ES_SYNCOPTS_OBJECT
#define S ES_SYNCOPTS_SERVICE

//  The normalised JSON of es_syncopts_to_json(); REST is the optional tail (",\"filter\":...").
#define NORM(type, dl, ul, stats, rec, pres, rest)                                                 \
    "{\"syncType\":\"" type "\",\"downloadBatchSize\":" #dl ",\"uploadBatchSize\":" #ul            \
    ",\"getSyncStats\":" stats ",\"downloadReconciliationRequired\":" rec                          \
    ",\"preserveBatchContext\":" pres rest "}"
#define DEF NORM("fullSync", 500, 50, "false", "true", "false", "")
#define DL(n) NORM("fullSync", n, 50, "false", "true", "false", "")
#define UL(n) NORM("fullSync", 500, n, "false", "true", "false", "")
#define STATS(b) NORM("fullSync", 500, 50, b, "true", "false", "")
#define REC(b) NORM("fullSync", 500, 50, "false", b, "false", "")
#define PRES(b) NORM("fullSync", 500, 50, "false", "true", b, "")
#define TAIL(rest) NORM("fullSync", 500, 50, "false", "true", "false", rest)

typedef struct {
    es_syncopts_level_t level;
    const char *json;
    int vmx;              //  0: success expected
    const char *expect;   //  success: normalised JSON; failure: err.what
    const char *warnings; //  success: warnings joined with '|'
} case_t;

static const case_t s_cases[] = {
    //  Empty options: every default.
    {O, "{}", 0, DEF, ""},
    {S, " { } ", 0, DEF, ""},

    //  syncType (D3)
    {O, "{\"syncType\":\"fullSync\"}", 0, DEF, ""},
    {O, "{\"syncType\":\"uploadOnly\"}", 0,
     NORM("uploadOnly", 500, 50, "false", "true", "false", ""), ""},
    {S, "{\"syncType\":\"downloadOnly\"}", 0,
     NORM("downloadOnly", 500, 50, "false", "true", "false", ""), ""},
    {O, "{\"syncType\":\"fullsync\"}", 2477, "Invalid value found for syncType option fullsync",
     NULL},
    {S, "{\"syncType\":\"UPLOADONLY\"}", 2477, "Invalid value found for syncType option UPLOADONLY",
     NULL},
    {O, "{\"syncType\":\" fullSync\"}", 2477, "Invalid value found for syncType option  fullSync",
     NULL},
    {O, "{\"syncType\":\"\"}", 2477,
     "Invalid value found for syncType option \"\". It's either empty or null", NULL},
    {S, "{\"syncType\":null}", 2477,
     "Invalid value found for syncType option null. It's either empty or null", NULL},
    {O, "{\"syncType\":1}", 2477, "Invalid value found for syncType option 1", NULL},
    {O, "{\"syncType\":true}", 2477, "Invalid value found for syncType option true", NULL},
    {O, "{\"syncType\":{}}", 2477, "Invalid value found for syncType option {}", NULL},
    {O, "{\"syncType\":[\"fullSync\"]}", 2477, "Invalid value found for syncType option [...]",
     NULL},

    //  filter, object level (D4)
    {O, "{\"filter\":\"qty gt 3\"}", 0, TAIL(",\"filter\":\"qty gt 3\""), ""},
    {O, "{\"filter\":\"name eq 'a\\\"b'\"}", 0, TAIL(",\"filter\":\"name eq 'a\\\"b'\""), ""},
    {O, "{\"filter\":null}", 2472,
     "Invalid value found for filter option null: filters sent are null/empty", NULL},
    {O, "{\"filter\":\"\"}", 2472,
     "Invalid value found for filter option \"\": filters sent are null/empty", NULL},
    {O, "{\"filter\":5}", 2472,
     "Invalid value found for filter option 5: filter is not of type String", NULL},
    {O, "{\"filter\":false}", 2472,
     "Invalid value found for filter option false: filter is not of type String", NULL},
    {O, "{\"filter\":{\"orders\":\"a eq 1\"}}", 2472,
     "Invalid value found for filter option {...}: filter is not of type String", NULL},
    {O, "{\"filter\":[\"a eq 1\"]}", 2472,
     "Invalid value found for filter option [...]: filter is not of type String", NULL},

    //  filter, service level (D4)
    {S, "{\"filter\":{\"orders\":\"a eq 1\",\"lines\":\"b eq 2\"}}", 0,
     TAIL(",\"filter\":{\"orders\":\"a eq 1\",\"lines\":\"b eq 2\"}"), ""},
    {S, "{\"filter\":{\"orders\":\"a eq 1\",\"orders\":\"a eq 2\"}}", 0,
     TAIL(",\"filter\":{\"orders\":\"a eq 2\"}"), ""},
    {S, "{\"filter\":\"a eq 1\"}", 2472,
     "Invalid value found for filter option a eq 1: expected a map of object names to filters",
     NULL},
    {S, "{\"filter\":null}", 2472,
     "Invalid value found for filter option null: expected a map of object names to filters", NULL},
    {S, "{\"filter\":[]}", 2472,
     "Invalid value found for filter option []: expected a map of object names to filters", NULL},
    {S, "{\"filter\":{}}", 2472,
     "Invalid value found for filter option {}: filters sent are null/empty", NULL},
    {S, "{\"filter\":{\"nope\":\"a eq 1\"}}", 2472,
     "Invalid value found for filter option: 'nope' sent in filter options doesn't belong to "
     "the object service",
     NULL},
    {S, "{\"filter\":{\"Orders\":\"a eq 1\"}}", 2472,
     "Invalid value found for filter option: 'Orders' sent in filter options doesn't belong to "
     "the object service",
     NULL},
    {S, "{\"filter\":{\"orders\":null}}", 2472,
     "Invalid value found for filter option: filter for 'orders' is null: filters sent are "
     "null/empty",
     NULL},
    {S, "{\"filter\":{\"lines\":\"\"}}", 2472,
     "Invalid value found for filter option: filter for 'lines' is \"\": filters sent are "
     "null/empty",
     NULL},
    {S, "{\"filter\":{\"orders\":12}}", 2472,
     "Invalid value found for filter option: filter for 'orders' is 12: not of type String", NULL},

    //  downloadBatchSize (D5): number or numeric string, integer part; < 0 or NaN -> 500
    {O, "{\"downloadBatchSize\":200}", 0, DL(200), ""},
    {O, "{\"downloadBatchSize\":\"200\"}", 0, DL(200), ""},
    {S, "{\"downloadBatchSize\":\"12.7\"}", 0, DL(12), ""},
    {S, "{\"downloadBatchSize\":12.7}", 0, DL(12), ""},
    {O, "{\"downloadBatchSize\":\" 42 \"}", 0, DL(42), ""},
    {O, "{\"downloadBatchSize\":\"1e3\"}", 0, DL(1000), ""},
    {O, "{\"downloadBatchSize\":0}", 0, DL(0), ""},
    {O, "{\"downloadBatchSize\":\"0\"}", 0, DL(0), ""},
    {O, "{\"downloadBatchSize\":0.9}", 0, DL(0), ""},
    {O, "{\"downloadBatchSize\":1}", 0, DL(1), ""},
    {O, "{\"downloadBatchSize\":2147483647}", 0, DL(2147483647), ""},
    {O, "{\"downloadBatchSize\":2147483648}", 0, DL(2147483647),
     "downloadBatchSize: 2147483648 is too large, using 2147483647"},
    {O, "{\"downloadBatchSize\":1e30}", 0, DL(2147483647),
     "downloadBatchSize: 1e30 is too large, using 2147483647"},
    {O, "{\"downloadBatchSize\":99999999999999999999999}", 0, DL(2147483647),
     "downloadBatchSize: 99999999999999999999999 is too large, using 2147483647"},
    {O, "{\"downloadBatchSize\":\"1e999\"}", 0, DL(2147483647),
     "downloadBatchSize: 1e999 is too large, using 2147483647"},
    {O, "{\"downloadBatchSize\":-1}", 0, DL(500), "downloadBatchSize: -1 is negative, using 500"},
    {S, "{\"downloadBatchSize\":\"-5\"}", 0, DL(500),
     "downloadBatchSize: -5 is negative, using 500"},
    {O, "{\"downloadBatchSize\":-0.5}", 0, DL(500),
     "downloadBatchSize: -0.5 is negative, using 500"},
    {O, "{\"downloadBatchSize\":null}", 0, DL(500),
     "downloadBatchSize: null is not a number, using 500"},
    {O, "{\"downloadBatchSize\":true}", 0, DL(500),
     "downloadBatchSize: true is not a number, using 500"},
    {O, "{\"downloadBatchSize\":\"abc\"}", 0, DL(500),
     "downloadBatchSize: abc is not a number, using 500"},
    {O, "{\"downloadBatchSize\":\"\"}", 0, DL(500),
     "downloadBatchSize: \"\" is not a number, using 500"},
    {O, "{\"downloadBatchSize\":\"12abc\"}", 0, DL(500),
     "downloadBatchSize: 12abc is not a number, using 500"},
    {O, "{\"downloadBatchSize\":\"0x10\"}", 0, DL(500),
     "downloadBatchSize: 0x10 is not a number, using 500"},
    {O, "{\"downloadBatchSize\":\"inf\"}", 0, DL(500),
     "downloadBatchSize: inf is not a number, using 500"},
    {O, "{\"downloadBatchSize\":\"1 2\"}", 0, DL(500),
     "downloadBatchSize: 1 2 is not a number, using 500"},
    {O, "{\"downloadBatchSize\":\"-\"}", 0, DL(500),
     "downloadBatchSize: - is not a number, using 500"},
    {O, "{\"downloadBatchSize\":[5]}", 0, DL(500),
     "downloadBatchSize: [...] is not a number, using 500"},
    {O, "{\"downloadBatchSize\":{}}", 0, DL(500),
     "downloadBatchSize: {} is not a number, using 500"},
    {O, "{\"BatchSize\":10}", 0, DEF, "unknown option 'BatchSize' ignored"},

    //  uploadBatchSize (D5): <= 0 or NaN -> 50
    {O, "{\"uploadBatchSize\":1}", 0, UL(1), ""},
    {S, "{\"uploadBatchSize\":\"75\"}", 0, UL(75), ""},
    {O, "{\"uploadBatchSize\":1.9}", 0, UL(1), ""},
    {O, "{\"uploadBatchSize\":\"12.7\"}", 0, UL(12), ""},
    {O, "{\"uploadBatchSize\":0}", 0, UL(50), "uploadBatchSize: 0 is not positive, using 50"},
    {O, "{\"uploadBatchSize\":0.5}", 0, UL(50), "uploadBatchSize: 0.5 is not positive, using 50"},
    {O, "{\"uploadBatchSize\":-3}", 0, UL(50), "uploadBatchSize: -3 is not positive, using 50"},
    {O, "{\"uploadBatchSize\":\"x\"}", 0, UL(50), "uploadBatchSize: x is not a number, using 50"},
    {O, "{\"uploadBatchSize\":null}", 0, UL(50), "uploadBatchSize: null is not a number, using 50"},
    {O, "{\"uploadBatchSize\":5e9}", 0, UL(2147483647),
     "uploadBatchSize: 5e9 is too large, using 2147483647"},

    //  getSyncStats (D2)
    {O, "{\"getSyncStats\":true}", 0, STATS("true"), ""},
    {O, "{\"getSyncStats\":\"true\"}", 0, STATS("true"), ""},
    {S, "{\"getSyncStats\":\"TRUE\"}", 0, STATS("true"), ""},
    {O, "{\"getSyncStats\":\"True\"}", 0, STATS("true"), ""},
    {O, "{\"getSyncStats\":false}", 0, STATS("false"), ""},
    {O, "{\"getSyncStats\":\"false\"}", 0, STATS("false"), ""},
    {O, "{\"getSyncStats\":1}", 0, STATS("false"), "getSyncStats: 1 is not a boolean, no stats"},
    {O, "{\"getSyncStats\":\"ALL\"}", 0, STATS("false"),
     "getSyncStats: ALL is not a boolean, no stats"},
    {O, "{\"getSyncStats\":null}", 0, STATS("false"),
     "getSyncStats: null is not a boolean, no stats"},
    {O, "{\"getSyncStats\":\"\"}", 0, STATS("false"),
     "getSyncStats: \"\" is not a boolean, no stats"},
    {O, "{\"GetSyncStats\":true}", 0, STATS("false"), "unknown option 'GetSyncStats' ignored"},

    //  downloadReconciliationRequired (D6)
    {O, "{\"downloadReconciliationRequired\":false}", 0, REC("false"), ""},
    {S, "{\"downloadReconciliationRequired\":\"false\"}", 0, REC("false"), ""},
    {O, "{\"downloadReconciliationRequired\":true}", 0, REC("true"), ""},
    {O, "{\"downloadReconciliationRequired\":\"true\"}", 0, REC("true"), ""},
    {O, "{\"downloadReconciliationRequired\":\"TRUE\"}", 2304,
     "Invalid value found for downloadReconciliationRequired option TRUE: expected true or "
     "false",
     NULL},
    {S, "{\"downloadReconciliationRequired\":1}", 2304,
     "Invalid value found for downloadReconciliationRequired option 1: expected true or false",
     NULL},
    {O, "{\"downloadReconciliationRequired\":null}", 2304,
     "Invalid value found for downloadReconciliationRequired option null: expected true or "
     "false",
     NULL},
    {O, "{\"downloadReconciliationRequired\":\"\"}", 2304,
     "Invalid value found for downloadReconciliationRequired option \"\": expected true or "
     "false",
     NULL},
    {O, "{\"downloadReconciliationRequired\":{}}", 2304,
     "Invalid value found for downloadReconciliationRequired option {}: expected true or false",
     NULL},

    //  preserveBatchContext (D7)
    {O, "{\"preserveBatchContext\":true}", 0, PRES("true"), ""},
    {S, "{\"preserveBatchContext\":\"TRUE\"}", 0, PRES("true"), ""},
    {O, "{\"preserveBatchContext\":\"false\"}", 0, PRES("false"), ""},
    {O, "{\"preserveBatchContext\":false}", 0, PRES("false"), ""},
    {O, "{\"preserveBatchContext\":1}", 0, PRES("false"),
     "preserveBatchContext: 1 is not a boolean, using false"},
    {O, "{\"preserveBatchContext\":\"yes\"}", 0, PRES("false"),
     "preserveBatchContext: yes is not a boolean, using false"},
    {O, "{\"preserveBatchContext\":null}", 0, PRES("false"),
     "preserveBatchContext: null is not a boolean, using false"},

    //  query params
    {O, "{\"downloadRequestQueryParams\":{\"loc\":\"Paris\",\"n\":12.50,\"i\":-3}}", 0,
     TAIL(",\"downloadRequestQueryParams\":{\"loc\":\"Paris\",\"n\":\"12.50\",\"i\":\"-3\"}"), ""},
    {S, "{\"uploadRequestQueryParams\":{\"a\":\"1\",\"a\":\"2\",\"b\":\"x y\"}}", 0,
     TAIL(",\"uploadRequestQueryParams\":{\"a\":\"2\",\"b\":\"x y\"}"), ""},
    {O, "{\"downloadRequestQueryParams\":{\"c\":1,\"a\":\"1\",\"c\":2,\"b\":3,\"a\":4,\"c\":5}}", 0,
     TAIL(",\"downloadRequestQueryParams\":{\"c\":\"5\",\"a\":\"4\",\"b\":\"3\"}"), ""},
    {O, "{\"downloadRequestQueryParams\":{}}", 0, DEF, ""},
    //  Text must be UTF-8 (found by fuzz/fuzz_syncopts: yajl passes a 4-byte form above
    //  U+10FFFF and decodes an escaped lone low surrogate, neither of which survives
    //  normalisation unchanged). Valid non-ASCII text passes as it is.
    {O, "{\"downloadRequestQueryParams\":{\"ville\":\"S\xC3\xA8te \\u00e9\"}}", 0,
     TAIL(",\"downloadRequestQueryParams\":{\"ville\":\"S\xC3\xA8te \xC3\xA9\"}"), ""},
    {O, "{\"downloadRequestQueryParams\":{\"&il\xF5\x9C\xAB\x86pe\":\"x\"}}", 2304,
     "syncOptions: invalid UTF-8 at byte 4 of a string beginning '&il'", NULL},
    {S, "{\"filter\":{\"orders\":\"a eq '\\udc00'\"}}", 2304,
     "syncOptions: invalid UTF-8 at byte 7 of a string beginning 'a eq ''", NULL},
    {O, "{\"x\":[1,{\"y\":\"\xC0\xAF\"}]}", 2304,
     "syncOptions: invalid UTF-8 at byte 1 of a string beginning ''", NULL},
    {O, "{\"downloadRequestQueryParams\":\"a=b\"}", 0, DEF,
     "downloadRequestQueryParams: a=b is not an object, ignored"},
    {O, "{\"uploadRequestQueryParams\":[]}", 0, DEF,
     "uploadRequestQueryParams: [] is not an object, ignored"},
    {O, "{\"uploadRequestQueryParams\":null}", 0, DEF,
     "uploadRequestQueryParams: null is not an object, ignored"},
    {O, "{\"downloadRequestQueryParams\":{\"\":\"x\"}}", 2304,
     "Invalid value found for downloadRequestQueryParams option: empty query param name", NULL},
    {S, "{\"downloadRequestQueryParams\":{\"k\":\"\"}}", 2304,
     "Invalid value found for downloadRequestQueryParams option: null or empty value \"\" for "
     "query param 'k'",
     NULL},
    {O, "{\"uploadRequestQueryParams\":{\"k\":null}}", 2304,
     "Invalid value found for uploadRequestQueryParams option: null or empty value null for "
     "query param 'k'",
     NULL},
    {O, "{\"uploadRequestQueryParams\":{\"k\":true}}", 2304,
     "Invalid value found for uploadRequestQueryParams option: value true for query param 'k' "
     "is not a string or number",
     NULL},
    {O, "{\"downloadRequestQueryParams\":{\"k\":[1]}}", 2304,
     "Invalid value found for downloadRequestQueryParams option: value [...] for query param "
     "'k' is not a string or number",
     NULL},

    //  removeAfterUpload (D8)
    {S, "{\"syncType\":\"uploadOnly\",\"removeAfterUpload\":[\"orders\",\"lines\",\"orders\"]}", 0,
     NORM("uploadOnly", 500, 50, "false", "true", "false",
          ",\"removeAfterUpload\":[\"orders\",\"lines\"]"),
     ""},
    {O, "{\"syncType\":\"uploadOnly\",\"removeAfterUpload\":[\"orders\"]}", 0,
     NORM("uploadOnly", 500, 50, "false", "true", "false", ",\"removeAfterUpload\":[\"orders\"]"),
     ""},
    {S, "{\"syncType\":\"uploadOnly\",\"removeAfterUpload\":[]}", 0,
     NORM("uploadOnly", 500, 50, "false", "true", "false", ""), ""},
    {S, "{\"removeAfterUpload\":[\"orders\"]}", 0, DEF,
     "removeAfterUpload ignored: syncType is fullSync, not uploadOnly"},
    {S, "{\"syncType\":\"downloadOnly\",\"removeAfterUpload\":[\"lines\"]}", 0,
     NORM("downloadOnly", 500, 50, "false", "true", "false", ""),
     "removeAfterUpload ignored: syncType is downloadOnly, not uploadOnly"},
    {S, "{\"syncType\":\"uploadOnly\",\"removeAfterUpload\":[\"nope\"]}", 2304,
     "Invalid value found for removeAfterUpload option: 'nope' is not an object of the entity "
     "being synced",
     NULL},
    {O, "{\"syncType\":\"uploadOnly\",\"removeAfterUpload\":[\"lines\"]}", 2304,
     "Invalid value found for removeAfterUpload option: 'lines' is not an object of the entity "
     "being synced",
     NULL},
    {S, "{\"removeAfterUpload\":[\"Orders\"]}", 2304,
     "Invalid value found for removeAfterUpload option: 'Orders' is not an object of the entity "
     "being synced",
     NULL},
    {S, "{\"removeAfterUpload\":\"orders\"}", 2304,
     "Invalid value found for removeAfterUpload option orders: expected an array of object "
     "names",
     NULL},
    {S, "{\"removeAfterUpload\":null}", 2304,
     "Invalid value found for removeAfterUpload option null: expected an array of object names",
     NULL},
    {S, "{\"removeAfterUpload\":[\"orders\",1]}", 2304,
     "Invalid value found for removeAfterUpload option: element 1 is 1, expected an object name",
     NULL},

    //  Unknown and repeated keys
    {O, "{\"foo\":1,\"bar\":{\"x\":[1,2]}}", 0, DEF,
     "unknown option 'foo' ignored|unknown option 'bar' ignored"},
    {O, "{\"SyncType\":\"bad\"}", 0, DEF, "unknown option 'SyncType' ignored"},
    {O, "{\"isUploadCacheEnabled\":true}", 0, DEF, "unknown option 'isUploadCacheEnabled' ignored"},
    {O, "{\"syncType\":\"uploadOnly\",\"syncType\":\"downloadOnly\"}", 0,
     NORM("downloadOnly", 500, 50, "false", "true", "false", ""),
     "option 'syncType' given more than once, the last one counts"},
    {O, "{\"syncType\":\"bad\",\"syncType\":\"uploadOnly\"}", 0,
     NORM("uploadOnly", 500, 50, "false", "true", "false", ""),
     "option 'syncType' given more than once, the last one counts"},

    //  Validation order (SPEC 2.2): removeAfterUpload, filter, syncType, reconciliation.
    {O, "{\"syncType\":\"bad\",\"filter\":null}", 2472,
     "Invalid value found for filter option null: filters sent are null/empty", NULL},
    {S, "{\"filter\":null,\"removeAfterUpload\":5}", 2304,
     "Invalid value found for removeAfterUpload option 5: expected an array of object names", NULL},
    {O, "{\"downloadReconciliationRequired\":1,\"syncType\":\"x\"}", 2477,
     "Invalid value found for syncType option x", NULL},
    {O, "{\"downloadRequestQueryParams\":{\"k\":null},\"downloadReconciliationRequired\":1}", 2304,
     "Invalid value found for downloadReconciliationRequired option 1: expected true or false",
     NULL},

    //  Everything at once, service level.
    {S,
     "{\"syncType\":\"uploadOnly\",\"downloadBatchSize\":\"0\",\"uploadBatchSize\":200,"
     "\"getSyncStats\":\"true\",\"downloadReconciliationRequired\":\"false\","
     "\"preserveBatchContext\":true,\"filter\":{\"lines\":\"q eq 'it''s'\"},"
     "\"downloadRequestQueryParams\":{\"p\":1},\"uploadRequestQueryParams\":{\"u\":\"\\u00e9\"},"
     "\"removeAfterUpload\":[\"lines\"]}",
     0,
     NORM("uploadOnly", 0, 200, "true", "false", "true",
          ",\"filter\":{\"lines\":\"q eq 'it''s'\"},\"downloadRequestQueryParams\":{\"p\":\"1\"},"
          "\"uploadRequestQueryParams\":{\"u\":\"\xc3\xa9\"},\"removeAfterUpload\":[\"lines\"]"),
     ""},

    //  Not a JSON object
    {O, "", 2304, "syncOptions: not a JSON object", NULL},
    {O, "[]", 2304, "syncOptions: not a JSON object", NULL},
    {S, "5", 2304, "syncOptions: not a JSON object", NULL},
    {O, "null", 2304, "syncOptions: not a JSON object", NULL},
    {O, "\"{}\"", 2304, "syncOptions: not a JSON object", NULL},
    {O, "{", 2304, "syncOptions: not a JSON object", NULL},
    {O, "{\"a\":}", 2304, "syncOptions: not a JSON object", NULL},
    {O, "{}x", 2304, "syncOptions: not a JSON object", NULL},
    {O, "{} {}", 2304, "syncOptions: not a JSON object", NULL},
    {O, "{'syncType':'fullSync'}", 2304, "syncOptions: not a JSON object", NULL},
    {O, "{\"filter\":\"\xff\"}", 2304, "syncOptions: not a JSON object", NULL},
};
#define NCASES (sizeof s_cases / sizeof s_cases[0])

static const char *const s_svc_objects[] = {"orders", "lines", "customers"};
static const char *const s_obj_objects[] = {"orders"};

static int
s_parse(es_syncopts_t *o, const char *json, size_t len, es_syncopts_level_t level, es_err_t *err,
        int *vmx)
{
    if (level == O)
        return es_syncopts_parse(o, json, len, level, s_obj_objects, 1, err, vmx);
    return es_syncopts_parse(o, json, len, level, s_svc_objects, 3, err, vmx);
}

static char *
s_join(char **items, size_t n)
{
    es_buf_t b;
    es_buf_init(&b);
    for (size_t i = 0; i < n; i++) {
        if (i)
            es_buf_putc(&b, '|');
        es_buf_puts(&b, items[i]);
    }
    return es_buf_steal(&b);
}

static void
test_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < NCASES; i++) {
        const case_t *c = &s_cases[i];
        print_message("case %zu: %s\n", i, c->json);
        es_syncopts_t o;
        es_err_t err = {ES_OK, ""};
        int vmx = -1;
        int rc = s_parse(&o, c->json, strlen(c->json), c->level, &err, &vmx);
        if (c->vmx) {
            assert_int_equal(rc, -1);
            assert_int_equal(vmx, c->vmx);
            assert_int_equal(err.code, ES_EINVAL);
            assert_string_equal(err.what, c->expect);
            //  Nothing is left owned after a failure.
            assert_null(o.warnings);
            assert_null(o.filters);
            assert_null(o.download_params);
            assert_null(o.upload_params);
            assert_null(o.remove_after_upload);
            continue;
        }
        assert_int_equal(rc, 0);
        assert_int_equal(vmx, 0);
        es_buf_t json;
        es_buf_init(&json);
        es_syncopts_to_json(&o, &json);
        assert_string_equal(json.data, c->expect);
        char *warnings = s_join(o.warnings, o.nwarnings);
        assert_string_equal(warnings, c->warnings);
        free(warnings);
        //  The normalised text parses back to the same options, without warnings.
        es_syncopts_t again;
        assert_int_equal(s_parse(&again, json.data, json.len, c->level, &err, &vmx), 0);
        assert_int_equal(again.nwarnings, 0);
        es_buf_t json2;
        es_buf_init(&json2);
        es_syncopts_to_json(&again, &json2);
        assert_string_equal(json2.data, json.data);
        es_buf_release(&json2);
        es_syncopts_release(&again);
        es_buf_release(&json);
        es_syncopts_release(&o);
        es_syncopts_release(&o); //  safe twice
    }
}

static void
test_struct_values(void **state)
{
    (void)state;
    es_syncopts_t o;
    const char *json = "{\"syncType\":\"uploadOnly\",\"downloadBatchSize\":\"12.7\","
                       "\"uploadBatchSize\":7,\"getSyncStats\":true,"
                       "\"downloadReconciliationRequired\":false,\"preserveBatchContext\":\"True\","
                       "\"filter\":{\"orders\":\"a eq 1\",\"customers\":\"b eq 2\"},"
                       "\"downloadRequestQueryParams\":{\"x\":3},"
                       "\"uploadRequestQueryParams\":{\"y\":\"z\"},"
                       "\"removeAfterUpload\":[\"customers\"]}";
    assert_int_equal(s_parse(&o, json, strlen(json), S, NULL, NULL), 0);
    assert_int_equal(o.level, ES_SYNCOPTS_SERVICE);
    assert_int_equal(o.sync_type, ES_SYNC_UPLOAD_ONLY);
    assert_int_equal(o.download_batch_size, 12);
    assert_int_equal(o.upload_batch_size, 7);
    assert_true(o.get_sync_stats);
    assert_false(o.reconcile);
    assert_true(o.preserve_batch_context);
    assert_int_equal(o.nfilters, 2);
    assert_string_equal(o.filters[0].key, "orders");
    assert_string_equal(o.filters[0].value, "a eq 1");
    assert_string_equal(o.filters[1].key, "customers");
    assert_string_equal(o.filters[1].value, "b eq 2");
    assert_int_equal(o.ndownload_params, 1);
    assert_string_equal(o.download_params[0].key, "x");
    assert_string_equal(o.download_params[0].value, "3");
    assert_int_equal(o.nupload_params, 1);
    assert_string_equal(o.upload_params[0].value, "z");
    assert_int_equal(o.nremove_after_upload, 1);
    assert_string_equal(o.remove_after_upload[0], "customers");
    es_syncopts_release(&o);
    assert_null(o.filters);
    assert_int_equal(o.nfilters, 0);

    //  Object level: the filter is keyed by the object.
    json = "{\"filter\":\"a eq 1\"}";
    assert_int_equal(s_parse(&o, json, strlen(json), O, NULL, NULL), 0);
    assert_int_equal(o.nfilters, 1);
    assert_string_equal(o.filters[0].key, "orders");
    assert_string_equal(o.filters[0].value, "a eq 1");
    assert_int_equal(o.sync_type, ES_SYNC_FULL);
    assert_int_equal(o.download_batch_size, ES_SYNCOPTS_DOWNLOAD_BATCH);
    assert_int_equal(o.upload_batch_size, ES_SYNCOPTS_UPLOAD_BATCH);
    assert_true(o.reconcile);
    es_syncopts_release(&o);

    assert_string_equal(es_syncopts_type_name(ES_SYNC_FULL), "fullSync");
    assert_string_equal(es_syncopts_type_name(ES_SYNC_UPLOAD_ONLY), "uploadOnly");
    assert_string_equal(es_syncopts_type_name(ES_SYNC_DOWNLOAD_ONLY), "downloadOnly");
    assert_string_equal(es_syncopts_type_name((es_sync_type_t)7), "?");
}

static void
test_raw_input(void **state)
{
    (void)state;
    es_syncopts_t o;
    es_err_t err;
    int vmx;
    //  Length is honoured: the text need not be NUL-terminated.
    const char buf[] = {'{', '}', 'x'};
    assert_int_equal(s_parse(&o, buf, 2, O, &err, &vmx), 0);
    es_syncopts_release(&o);
    //  Every prefix of a valid text fails cleanly.
    const char *json = "{\"syncType\":\"uploadOnly\",\"filter\":{\"orders\":\"a eq 1\"}}";
    for (size_t n = 0; n < strlen(json); n++) {
        char *copy = es_strndup(json, n);
        assert_int_equal(s_parse(&o, copy, n, S, &err, &vmx), -1);
        assert_int_equal(vmx, 2304);
        assert_string_equal(err.what, "syncOptions: not a JSON object");
        free(copy);
    }
    //  A NUL inside the text.
    assert_int_equal(s_parse(&o, "{}\0{", 4, O, &err, &vmx), -1);
    assert_string_equal(err.what, "syncOptions: not a JSON object");
    assert_int_equal(s_parse(&o, NULL, 0, O, &err, &vmx), -1);
    assert_string_equal(err.what, "syncOptions: not a JSON object");
    //  Nesting: 32 levels (inside an unknown key) pass, 33 do not.
    es_buf_t b;
    es_buf_init(&b);
    es_buf_puts(&b, "{\"deep\":");
    for (int i = 0; i < 31; i++)
        es_buf_puts(&b, "[");
    es_buf_puts(&b, "\"[[[[\"");
    for (int i = 0; i < 31; i++)
        es_buf_puts(&b, "]");
    es_buf_puts(&b, "}");
    assert_int_equal(s_parse(&o, b.data, b.len, O, &err, &vmx), 0);
    assert_int_equal(o.nwarnings, 1);
    es_syncopts_release(&o);
    es_buf_reset(&b);
    es_buf_puts(&b, "{\"deep\":");
    for (int i = 0; i < 100000; i++)
        es_buf_puts(&b, "[");
    assert_int_equal(s_parse(&o, b.data, b.len, O, &err, &vmx), -1);
    assert_int_equal(vmx, 2304);
    assert_string_equal(err.what, "syncOptions: nested too deeply (max 32 levels)");
    //  Oversized text.
    es_buf_reset(&b);
    es_buf_puts(&b, "{\"filter\":\"");
    while (b.len < ES_SYNCOPTS_MAX_LEN)
        es_buf_puts(&b, "a eq 1 or ");
    es_buf_puts(&b, "\"}");
    char want[128];
    snprintf(want, sizeof want, "syncOptions: too long (%zu bytes, max 1048576)", b.len);
    assert_int_equal(s_parse(&o, b.data, b.len, O, &err, &vmx), -1);
    assert_int_equal(vmx, 2304);
    assert_string_equal(err.what, want);
    es_buf_release(&b);
    //  A long value is quoted in the error but the text stays bounded.
    es_buf_init(&b);
    es_buf_puts(&b, "{\"syncType\":\"");
    for (int i = 0; i < 1000; i++)
        es_buf_putc(&b, 'x');
    es_buf_puts(&b, "\"}");
    assert_int_equal(s_parse(&o, b.data, b.len, O, &err, &vmx), -1);
    assert_int_equal(vmx, 2477);
    assert_int_equal(strncmp(err.what, "Invalid value found for syncType option xxxx", 44), 0);
    assert_true(strlen(err.what) < ES_ERR_WHAT_MAX);
    es_buf_release(&b);
    //  err and vmx_code may be NULL.
    assert_int_equal(s_parse(&o, "[]", 2, O, NULL, NULL), -1);
}

//  ---------------------------------------------------------------------------------------------
//  Application level

static const char *const s_services[] = {"Orders", "Inventory"};

typedef struct {
    const char *json;
    int vmx;
    const char *expect;   //  success: "mode;svc=json;svc=json"; failure: err.what
    const char *warnings; //  success only
} app_case_t;

static const app_case_t s_app_cases[] = {
    {"{}", 0, "parallel", ""},
    {"{\"syncMode\":\"sequential\"}", 0, "sequential", ""},
    {"{\"syncMode\":\"SEQUENTIAL\"}", 0, "sequential", ""},
    {"{\"syncMode\":\"Parallel\"}", 0, "parallel", ""},
    {"{\"syncMode\":\"serial\"}", 0, "parallel",
     "syncMode: serial is not parallel or sequential, using parallel"},
    {"{\"syncMode\":\"\"}", 0, "parallel",
     "syncMode: \"\" is not parallel or sequential, using parallel"},
    {"{\"syncMode\":1}", 0, "parallel",
     "syncMode: 1 is not parallel or sequential, using parallel"},
    {"{\"syncMode\":null}", 0, "parallel",
     "syncMode: null is not parallel or sequential, using parallel"},
    {"{\"objectServicesOptions\":null}", 0, "parallel", ""},
    {"{\"objectServicesOptions\":{}}", 0, "parallel", ""},
    {"{\"objectServicesOptions\":{\"Orders\":{\"syncType\":\"uploadOnly\"}}}", 0,
     "parallel;Orders={\"syncType\":\"uploadOnly\"}", ""},
    {"{\"syncMode\":\"sequential\",\"objectServicesOptions\":{\"Inventory\":{},"
     "\"Orders\":{ \"a\" : [1, 2.50, -3e2, true, false, null, {\"q\":\"\\\"\\u00e9\"}] }}}",
     0,
     "sequential;Inventory={};Orders={\"a\":[1,2.50,-3e2,true,false,null,{\"q\":\"\\\"\xc3\xa9\"}]"
     "}",
     ""},
    {"{\"objectServicesOptions\":{\"Orders\":{\"x\":1},\"Orders\":{\"y\":2}}}", 0,
     "parallel;Orders={\"y\":2}", ""},
    {"{\"foo\":1}", 0, "parallel", "unknown option 'foo' ignored"},
    {"{\"objectServiceOptions\":{}}", 0, "parallel",
     "unknown option 'objectServiceOptions' ignored"},
    {"{\"objectServicesOptions\":\"Orders\"}", 2482,
     "Invalid data type sent for objectServicesOptions: Orders is not an object", NULL},
    {"{\"objectServicesOptions\":[]}", 2482,
     "Invalid data type sent for objectServicesOptions: [] is not an object", NULL},
    {"{\"objectServicesOptions\":5}", 2482,
     "Invalid data type sent for objectServicesOptions: 5 is not an object", NULL},
    {"{\"objectServicesOptions\":{\"Nope\":{}}}", 2482, "Invalid SDKObjectServiceName Nope", NULL},
    {"{\"objectServicesOptions\":{\"orders\":{}}}", 2482, "Invalid SDKObjectServiceName orders",
     NULL},
    {"{\"objectServicesOptions\":{\"Orders\":{},\"x\":{}}}", 2482, "Invalid SDKObjectServiceName x",
     NULL},
    {"{\"objectServicesOptions\":{\"Orders\":5}}", 2482,
     "Invalid value found for objectServicesOptions.Orders: 5 is not an object", NULL},
    {"{\"objectServicesOptions\":{\"Inventory\":null}}", 2482,
     "Invalid value found for objectServicesOptions.Inventory: null is not an object", NULL},
    {"{\"objectServicesOptions\":{\"Inventory\":\"{}\"}}", 2482,
     "Invalid value found for objectServicesOptions.Inventory: {} is not an object", NULL},
    {"[]", 2304, "syncOptions: not a JSON object", NULL},
    {"", 2304, "syncOptions: not a JSON object", NULL},
    {"{\"syncMode\":", 2304, "syncOptions: not a JSON object", NULL},
};
#define NAPP (sizeof s_app_cases / sizeof s_app_cases[0])

static void
test_app_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < NAPP; i++) {
        const app_case_t *c = &s_app_cases[i];
        print_message("app case %zu: %s\n", i, c->json);
        es_syncopts_app_t a;
        es_err_t err = {ES_OK, ""};
        int vmx = -1;
        int rc = es_syncopts_app_parse(&a, c->json, strlen(c->json), s_services, 2, &err, &vmx);
        if (c->vmx) {
            assert_int_equal(rc, -1);
            assert_int_equal(vmx, c->vmx);
            assert_int_equal(err.code, ES_EINVAL);
            assert_string_equal(err.what, c->expect);
            assert_null(a.services);
            assert_null(a.warnings);
            continue;
        }
        assert_int_equal(rc, 0);
        assert_int_equal(vmx, 0);
        es_buf_t b;
        es_buf_init(&b);
        es_buf_puts(&b, a.sync_mode == ES_SYNC_MODE_SEQUENTIAL ? "sequential" : "parallel");
        for (size_t k = 0; k < a.nservices; k++)
            es_buf_printf(&b, ";%s=%s", a.services[k].key, a.services[k].value);
        assert_string_equal(b.data, c->expect);
        es_buf_release(&b);
        char *warnings = s_join(a.warnings, a.nwarnings);
        assert_string_equal(warnings, c->warnings);
        free(warnings);
        es_syncopts_app_release(&a);
        es_syncopts_app_release(&a);
    }
}

//  A per-service text from the app level feeds es_syncopts_parse() at service level.
static void
test_app_then_service(void **state)
{
    (void)state;
    const char *json = "{\"objectServicesOptions\":{\"Orders\":{\"syncType\":\"downloadOnly\","
                       "\"filter\":{\"lines\":\"q gt 1\"}}}}";
    es_syncopts_app_t a;
    assert_int_equal(es_syncopts_app_parse(&a, json, strlen(json), s_services, 2, NULL, NULL), 0);
    assert_int_equal(a.nservices, 1);
    es_syncopts_t o;
    assert_int_equal(s_parse(&o, a.services[0].value, strlen(a.services[0].value), S, NULL, NULL),
                     0);
    assert_int_equal(o.sync_type, ES_SYNC_DOWNLOAD_ONLY);
    assert_int_equal(o.nfilters, 1);
    assert_string_equal(o.filters[0].value, "q gt 1");
    es_syncopts_release(&o);
    es_syncopts_app_release(&a);
}

//  Found by fuzz/fuzz_syncopts: repeated-key checks were quadratic (60,000 query params took
//  11 s). 30,000 params, every key twice: first position and last value kept, in input order.
static void
test_many_params(void **state)
{
    (void)state;
    es_buf_t json;
    es_buf_init(&json);
    es_buf_puts(&json, "{\"uploadRequestQueryParams\":{");
    //  5,000 keys twice: enough to show repeats collapse (the O(n^2) scan took seconds at
    //  this size under ASan); more makes yajl_tree's own one-by-one realloc slow under ASan.
    for (int i = 0; i < 5000; i++)
        es_buf_printf(&json, "%s\"k%d\":%d", i ? "," : "", i, i);
    for (int i = 0; i < 5000; i++)
        es_buf_printf(&json, ",\"k%d\":\"v%d\"", i, i);
    es_buf_puts(&json, "}}");
    es_syncopts_t o;
    es_err_t err;
    assert_int_equal(es_syncopts_parse(&o, json.data, json.len, ES_SYNCOPTS_OBJECT, s_obj_objects,
                                       1, &err, NULL),
                     0);
    assert_int_equal(o.nupload_params, 5000);
    for (size_t i = 0; i < o.nupload_params; i += 499) {
        char k[32], v[32];
        snprintf(k, sizeof k, "k%zu", i);
        snprintf(v, sizeof v, "v%zu", i);
        assert_string_equal(o.upload_params[i].key, k);
        assert_string_equal(o.upload_params[i].value, v);
    }
    es_syncopts_release(&o);
    es_buf_release(&json);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table),
        cmocka_unit_test(test_struct_values),
        cmocka_unit_test(test_raw_input),
        cmocka_unit_test(test_app_table),
        cmocka_unit_test(test_app_then_service),
        cmocka_unit_test(test_many_params),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
