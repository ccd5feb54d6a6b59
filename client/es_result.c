//  es_result - libedgesync: a sync's success or failure object (SPEC 4.3, 4.4, D10, D11) parsed
//  into es_sync_result_t, so C programs need no JSON parser of their own.
#include "client/edgesync.h"
#include "client/es_lib.h"
#include "common/es_buf.h"
#include "common/es_err.h"
#include "common/es_mem.h"
#include "protocol/es_json.h"
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_tree.h>

//  Where a parse failed: "syncStats.downloadStats[3].bytes: expected an integer".
typedef struct {
    char what[ES_ERR_WHAT_MAX]; //  first error, empty while none
} perr_t;

static int s_perr(perr_t *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int
s_perr(perr_t *e, const char *fmt, ...)
{
    if (e->what[0])
        return -1; //  keep the first error, it is the cause
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->what, sizeof e->what, fmt, ap);
    va_end(ap);
    return -1;
}

static yajl_val
s_get(yajl_val obj, const char *key)
{
    for (size_t i = 0; YAJL_IS_OBJECT(obj) && i < obj->u.object.len; i++)
        if (strcmp(obj->u.object.keys[i], key) == 0)
            return obj->u.object.values[i];
    return NULL;
}

//  A string member: a copy of it, "" when absent or null; -1 when of another type.
static int
s_str(yajl_val obj, const char *key, const char *path, char **out, perr_t *e)
{
    yajl_val v = s_get(obj, key);
    if (v && !YAJL_IS_NULL(v) && !YAJL_IS_STRING(v)) {
        *out = es_strdup("");
        return s_perr(e, "%s%s: expected a string", path, key);
    }
    *out = es_strdup(YAJL_IS_STRING(v) ? v->u.string : "");
    return 0;
}

//  An integer member: 0 when absent or null; -1 when not an integer.
static int
s_int(yajl_val obj, const char *key, const char *path, int64_t *out, perr_t *e)
{
    yajl_val v = s_get(obj, key);
    *out = 0;
    if (!v || YAJL_IS_NULL(v))
        return 0;
    if (!YAJL_IS_INTEGER(v))
        return s_perr(e, "%s%s: expected an integer", path, key);
    *out = YAJL_GET_INTEGER(v);
    return 0;
}

static void
s_batch_release(es_sync_batch_t *b)
{
    free(b->object);
}

static void
s_stats_destroy(es_sync_stats_t **self_p)
{
    es_sync_stats_t *self = *self_p;
    if (!self)
        return;
    for (size_t i = 0; i < self->ndownload_stats; i++)
        s_batch_release(&self->download_stats[i]);
    free(self->download_stats);
    for (size_t i = 0; i < self->nupload_stats; i++)
        s_batch_release(&self->upload_stats[i]);
    free(self->upload_stats);
    free(self->name);
    free(self);
    *self_p = NULL;
}

static int
s_batches(yajl_val stats, const char *key, es_sync_batch_t **out, size_t *n, perr_t *e)
{
    yajl_val arr = s_get(stats, key);
    if (!arr || YAJL_IS_NULL(arr))
        return 0;
    if (!YAJL_IS_ARRAY(arr))
        return s_perr(e, "syncStats.%s: expected an array", key);
    *out = es_calloc(arr->u.array.len ? arr->u.array.len : 1, sizeof **out);
    int rc = 0;
    for (size_t i = 0; i < arr->u.array.len; i++) {
        yajl_val b = arr->u.array.values[i];
        char path[96];
        snprintf(path, sizeof path, "syncStats.%s[%zu].", key, i);
        es_sync_batch_t *o = &(*out)[(*n)++];
        if (!YAJL_IS_OBJECT(b)) {
            o->object = es_strdup("");
            return s_perr(e, "syncStats.%s[%zu]: expected an object", key, i);
        }
        rc |= s_str(b, "object", path, &o->object, e);
        rc |= s_int(b, "batchNumber", path, &o->batch_number, e);
        rc |= s_int(b, "numberOfRecords", path, &o->number_of_records, e);
        rc |= s_int(b, "requestCreationTime", path, &o->request_creation_time, e);
        rc |= s_int(b, "networkDurationTime", path, &o->network_duration_time, e);
        rc |= s_int(b, "responseParsingTime", path, &o->response_parsing_time, e);
        rc |= s_int(b, "dataPersistanceTime", path, &o->data_persistance_time, e);
        rc |= s_int(b, "bytes", path, &o->bytes, e);
        rc |= s_int(b, "retries", path, &o->retries, e);
    }
    return rc ? -1 : 0;
}

static int
s_stats(yajl_val v, es_sync_stats_t **out, perr_t *e)
{
    if (!v || YAJL_IS_NULL(v))
        return 0;
    if (!YAJL_IS_OBJECT(v))
        return s_perr(e, "syncStats: expected an object");
    es_sync_stats_t *s = es_calloc(1, sizeof *s);
    *out = s;
    const char *p = "syncStats.";
    int rc = s_str(v, "name", p, &s->name, e);
    rc |= s_int(v, "startTime", p, &s->start_time, e);
    rc |= s_int(v, "syncElapsedTime", p, &s->sync_elapsed_time, e);
    rc |= s_int(v, "numberOfRecordsSynced", p, &s->number_of_records_synced, e);
    rc |= s_int(v, "totalUploadedRecords", p, &s->total_uploaded_records, e);
    rc |= s_int(v, "totalDownloadedRecords", p, &s->total_downloaded_records, e);
    rc |= s_int(v, "reconciledDeletes", p, &s->reconciled_deletes, e);
    rc |= s_int(v, "uploadCacheReplays", p, &s->upload_cache_replays, e);
    rc |= s_batches(v, "uploadStats", &s->upload_stats, &s->nupload_stats, e);
    rc |= s_batches(v, "downloadStats", &s->download_stats, &s->ndownload_stats, e);
    return rc ? -1 : 0;
}

static int
s_errors(es_sync_result_t *self, yajl_val v, perr_t *e)
{
    if (!v || YAJL_IS_NULL(v))
        return 0;
    if (!YAJL_IS_OBJECT(v))
        return s_perr(e, "syncErrors: expected an object");
    static const char *const kinds[] = {"upload", "download"};
    size_t total = 0;
    for (int k = 0; k < 2; k++) {
        yajl_val arr = s_get(v, kinds[k]);
        if (arr && !YAJL_IS_NULL(arr) && !YAJL_IS_ARRAY(arr))
            return s_perr(e, "syncErrors.%s: expected an array", kinds[k]);
        total += YAJL_IS_ARRAY(arr) ? arr->u.array.len : 0;
    }
    self->errors = es_calloc(total ? total : 1, sizeof *self->errors);
    int rc = 0;
    for (int k = 0; k < 2; k++) {
        yajl_val arr = s_get(v, kinds[k]);
        for (size_t i = 0; YAJL_IS_ARRAY(arr) && i < arr->u.array.len; i++) {
            yajl_val x = arr->u.array.values[i];
            es_sync_error_t *o = &self->errors[self->nerrors++];
            o->upload = k == 0;
            char path[64];
            snprintf(path, sizeof path, "syncErrors.%s[%zu].", kinds[k], i);
            if (!YAJL_IS_OBJECT(x)) {
                o->object = es_strdup("");
                o->object_service = es_strdup("");
                o->primary_keys = es_strdup("");
                o->errmsg = es_strdup("");
                return s_perr(e, "syncErrors.%s[%zu]: expected an object", kinds[k], i);
            }
            rc |= s_str(x, "object", path, &o->object, e);
            rc |= s_str(x, "objectService", path, &o->object_service, e);
            rc |= s_int(x, "opstatus", path, &o->opstatus, e);
            rc |= s_str(x, "errmsg", path, &o->errmsg, e);
            yajl_val pk = s_get(x, "primaryKeys");
            es_buf_t b;
            es_buf_init(&b);
            if (pk && !YAJL_IS_NULL(pk))
                es_json_write(&b, pk);
            o->primary_keys = b.data ? es_buf_steal(&b) : es_strdup("");
            es_buf_release(&b);
        }
    }
    return rc ? -1 : 0;
}

static int
s_warnings(es_sync_result_t *self, yajl_val v, perr_t *e)
{
    if (!v || YAJL_IS_NULL(v))
        return 0;
    if (!YAJL_IS_ARRAY(v))
        return s_perr(e, "warnings: expected an array");
    self->warnings = es_calloc(v->u.array.len ? v->u.array.len : 1, sizeof *self->warnings);
    for (size_t i = 0; i < v->u.array.len; i++) {
        yajl_val w = v->u.array.values[i];
        if (!YAJL_IS_STRING(w))
            return s_perr(e, "warnings[%zu]: expected a string", i);
        self->warnings[self->nwarnings++] = es_strdup(w->u.string);
    }
    return 0;
}

static void s_release(es_sync_result_t *self);
static int s_parse(es_sync_result_t *self, yajl_val root, bool nested, perr_t *e);

//  successResponse / failureResponse: service name -> that service's result.
static int
s_services(es_sync_result_t *self, yajl_val map, const char *key, perr_t *e)
{
    if (!map || YAJL_IS_NULL(map))
        return 0;
    if (!YAJL_IS_OBJECT(map))
        return s_perr(e, "%s: expected an object", key);
    size_t n = self->nservices + map->u.object.len;
    self->services = es_realloc(self->services, (n ? n : 1) * sizeof *self->services);
    for (size_t i = 0; i < map->u.object.len; i++) {
        es_sync_result_t *s = &self->services[self->nservices++];
        memset(s, 0, sizeof *s);
        perr_t sub = {""};
        if (s_parse(s, map->u.object.values[i], true, &sub))
            return s_perr(e, "%s.%s: %s", key, map->u.object.keys[i], sub.what);
        if (!s->name[0]) {
            free(s->name);
            s->name = es_strdup(map->u.object.keys[i]);
        }
    }
    return 0;
}

//  Fill self from one result object. Every string member is set even on failure, so that
//  s_release() needs no special cases.
static int
s_parse(es_sync_result_t *self, yajl_val root, bool nested, perr_t *e)
{
    self->message = es_strdup("");
    self->domain = es_strdup("");
    self->name = es_strdup("");
    if (!YAJL_IS_OBJECT(root))
        return s_perr(e, "expected a JSON object");
    int64_t status = 0, code = 0;
    yajl_val st = s_get(root, "status");
    if (s_int(root, "status", "", &status, e) || s_int(root, "code", "", &code, e))
        return -1;
    if (st && (status != 0 && status != -1))
        return s_perr(e, "status: expected 0 or -1, got %" PRId64, status);
    if (!st && !s_get(root, "code"))
        return s_perr(e, "neither status nor code: not a sync result");
    self->ok = st ? status == 0 : code == 0;
    if (!self->ok && code == 0)
        return s_perr(e, "code: missing in a failure object");
    if (self->ok && code != 0)
        return s_perr(e, "code: %" PRId64 " in a success object", code);
    if (code < INT32_MIN || code > INT32_MAX)
        return s_perr(e, "code: %" PRId64 " out of range", code);
    self->code = (int)code;
    free(self->message);
    free(self->domain);
    free(self->name);
    self->message = self->domain = self->name = NULL;
    if (s_str(root, "message", "", &self->message, e) ||
        s_str(root, "domain", "", &self->domain, e))
        return -1;
    //  The entity's name: on success beside status, on failure in userInfo (SPEC 4.4).
    yajl_val info = s_get(root, "userInfo");
    if (info && !YAJL_IS_NULL(info) && !YAJL_IS_OBJECT(info))
        return s_perr(e, "userInfo: expected an object");
    static const char *const keys[] = {"name", "objectServiceName"};
    static const char *const info_keys[] = {"objectName", "objectServiceName"};
    for (int i = 0; i < 2 && !self->name; i++) {
        yajl_val n = s_get(root, keys[i]);
        if (n && !YAJL_IS_STRING(n))
            return s_perr(e, "%s: expected a string", keys[i]);
        if (n)
            self->name = es_strdup(n->u.string);
    }
    for (int i = 0; i < 2 && !self->name; i++) {
        yajl_val n = s_get(info, info_keys[i]);
        if (n && !YAJL_IS_STRING(n))
            return s_perr(e, "userInfo.%s: expected a string", info_keys[i]);
        if (n)
            self->name = es_strdup(n->u.string);
    }
    if (!self->name)
        self->name = es_strdup("");
    if (s_stats(s_get(root, "syncStats"), &self->stats, e) ||
        s_errors(self, s_get(root, "syncErrors"), e) ||
        s_warnings(self, s_get(root, "warnings"), e))
        return -1;
    if (nested)
        return 0;
    //  App level: the maps sit at the top (JS) and, on failure, in userInfo too (native): the
    //  top ones are read, userInfo's only when the top has none.
    yajl_val ok = s_get(root, "successResponse"), failed = s_get(root, "failureResponse");
    if (!ok && !failed) {
        ok = s_get(info, "successResponse");
        failed = s_get(info, "failureResponse");
    }
    if (s_services(self, ok, "successResponse", e) ||
        s_services(self, failed, "failureResponse", e))
        return -1;
    return 0;
}

static void
s_release(es_sync_result_t *self)
{
    for (size_t i = 0; i < self->nservices; i++)
        s_release(&self->services[i]);
    free(self->services);
    for (size_t i = 0; i < self->nwarnings; i++)
        free(self->warnings[i]);
    free(self->warnings);
    for (size_t i = 0; i < self->nerrors; i++) {
        free(self->errors[i].object);
        free(self->errors[i].object_service);
        free(self->errors[i].primary_keys);
        free(self->errors[i].errmsg);
    }
    free(self->errors);
    s_stats_destroy(&self->stats);
    free(self->name);
    free(self->domain);
    free(self->message);
}

es_sync_result_t *
es_sync_result_new(const char *json)
{
    if (!json) {
        es_lib_fail(ES_CLIENT_EINVAL, "sync result: NULL text");
        return NULL;
    }
    char errbuf[256] = "";
    yajl_val root = yajl_tree_parse(json, errbuf, sizeof errbuf);
    if (!root) {
        //  yajl's text spans lines; its first line says what was wrong.
        errbuf[strcspn(errbuf, "\n")] = '\0';
        char what[ES_ERR_WHAT_MAX];
        snprintf(what, sizeof what, "sync result: not JSON: %s", errbuf);
        es_lib_fail(ES_CLIENT_EINVAL, what);
        return NULL;
    }
    es_sync_result_t *self = es_calloc(1, sizeof *self);
    perr_t e = {""};
    int rc = s_parse(self, root, false, &e);
    yajl_tree_free(root);
    if (rc) {
        char what[ES_ERR_WHAT_MAX + 16];
        snprintf(what, sizeof what, "sync result: %s", e.what);
        es_lib_fail(ES_CLIENT_EINVAL, what);
        es_sync_result_destroy(&self);
        return NULL;
    }
    es_lib_ok();
    return self;
}

void
es_sync_result_destroy(es_sync_result_t **self_p)
{
    if (!*self_p)
        return;
    s_release(*self_p);
    free(*self_p);
    *self_p = NULL;
}
