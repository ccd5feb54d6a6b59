//  es_syncopts - startSync syncOptions: parse and validate the JSON text (SPEC 2.2, 2.3, D2-D8)
//  into one normalised struct, and write that struct back as JSON for the actors.
#include "protocol/es_syncopts.h"
#include "common/es_mem.h"
#include "protocol/es_json.h"
#include <assert.h>
#include <ctype.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yajl/yajl_tree.h>

//  Volt MX codes (SPEC 4.5).
#define VMX_INVALID_OPTIONS 2304
#define VMX_INVALID_FILTER 2472
#define VMX_INVALID_SYNC_TYPE 2477
#define VMX_INVALID_APP_OPTIONS 2482

//  Set *vmx_code and err together; evaluates to -1.
#define S_FAIL(vmx, ...) (s_set_vmx(vmx_code, (vmx)), es_err_set(err, ES_EINVAL, __VA_ARGS__))

static void
s_set_vmx(int *vmx_code, int code)
{
    if (vmx_code)
        *vmx_code = code;
}

//  A value as people would write it, short enough to quote in an error or warning.
static const char *
s_render(yajl_val v, char *buf, size_t size)
{
    if (!v)
        return "null";
    switch (v->type) {
    case yajl_t_string:
        if (!v->u.string[0])
            return "\"\"";
        snprintf(buf, size, "%s", v->u.string);
        return buf;
    case yajl_t_number:
        snprintf(buf, size, "%s", v->u.number.r);
        return buf;
    case yajl_t_object:
        return v->u.object.len ? "{...}" : "{}";
    case yajl_t_array:
        return v->u.array.len ? "[...]" : "[]";
    case yajl_t_true:
        return "true";
    case yajl_t_false:
        return "false";
    default:
        return "null";
    }
}

static void
s_strv_push(char ***items, size_t *n, char *s)
{
    *items = es_realloc(*items, (*n + 1) * sizeof **items);
    (*items)[(*n)++] = s;
}

static void
s_strv_free(char ***items, size_t *n)
{
    for (size_t i = 0; i < *n; i++)
        free((*items)[i]);
    free(*items);
    *items = NULL;
    *n = 0;
}

static void s_warn(char ***items, size_t *n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
s_warn(char ***items, size_t *n, const char *fmt, ...)
{
    char text[ES_ERR_WHAT_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    s_strv_push(items, n, es_strdup(text));
}

//  Set key to value in a pair array: a key already there is replaced (the last one wins).
static void
s_pairs_set(es_syncopts_pair_t **pairs, size_t *n, const char *key, const char *value)
{
    for (size_t i = 0; i < *n; i++)
        if (strcmp((*pairs)[i].key, key) == 0) {
            free((*pairs)[i].value);
            (*pairs)[i].value = es_strdup(value);
            return;
        }
    *pairs = es_realloc(*pairs, (*n + 1) * sizeof **pairs);
    (*pairs)[*n].key = es_strdup(key);
    (*pairs)[*n].value = es_strdup(value);
    (*n)++;
}

//  Append key and value (repeats are left to s_pairs_dedup()). The array grows by doubling.
static void
s_pairs_push(es_syncopts_pair_t **pairs, size_t *n, const char *key, const char *value)
{
    if ((*n & (*n - 1)) == 0) //  0, 1, 2, 4, ...: full
        *pairs = es_realloc(*pairs, (*n ? 2 * *n : 1) * sizeof **pairs);
    (*pairs)[*n].key = es_strdup(key);
    (*pairs)[*n].value = es_strdup(value);
    (*n)++;
}

static int
s_by_key_then_position(const void *a, const void *b)
{
    const es_syncopts_pair_t *pa = *(const es_syncopts_pair_t *const *)a;
    const es_syncopts_pair_t *pb = *(const es_syncopts_pair_t *const *)b;
    int c = strcmp(pa->key, pb->key);
    return c ? c : (pa > pb) - (pa < pb);
}

//  Collapse repeated keys as s_pairs_set() does, in O(n log n) rather than O(n^2) (found by
//  fuzz/fuzz_syncopts: 60,000 query params took 11 s one by one, stalling the orchestrator):
//  each key keeps the position of its first occurrence and the value of its last.
static void
s_pairs_dedup(es_syncopts_pair_t *pairs, size_t *n)
{
    if (*n < 2)
        return;
    es_syncopts_pair_t **order = es_malloc(*n * sizeof *order);
    for (size_t i = 0; i < *n; i++)
        order[i] = &pairs[i];
    qsort(order, *n, sizeof *order, s_by_key_then_position);
    for (size_t i = 0, j; i < *n; i = j) {
        for (j = i + 1; j < *n && strcmp(order[j]->key, order[i]->key) == 0; j++)
            ;
        if (j - i == 1)
            continue;
        free(order[i]->value);
        order[i]->value = order[j - 1]->value;
        order[j - 1]->value = NULL;
        for (size_t k = i + 1; k < j; k++) {
            free(order[k]->key);
            free(order[k]->value);
            order[k]->key = order[k]->value = NULL;
        }
    }
    free(order);
    size_t kept = 0;
    for (size_t i = 0; i < *n; i++)
        if (pairs[i].key)
            pairs[kept++] = pairs[i];
    *n = kept;
}

static void
s_pairs_free(es_syncopts_pair_t **pairs, size_t *n)
{
    for (size_t i = 0; i < *n; i++) {
        free((*pairs)[i].key);
        free((*pairs)[i].value);
    }
    free(*pairs);
    *pairs = NULL;
    *n = 0;
}

//  The first key or string in v that is not valid UTF-8, or NULL; *bad = offset of the bad byte.
//  yajl checks only the shape of multi-byte sequences, and decodes an escaped lone low surrogate
//  into its three bytes; such text would not survive es_syncopts_to_json() unchanged.
static const char *
s_bad_utf8(yajl_val v, size_t *bad)
{
    const char *s = NULL;
    if (YAJL_IS_STRING(v)) {
        s = v->u.string;
    } else if (YAJL_IS_OBJECT(v)) {
        for (size_t i = 0; i < v->u.object.len; i++) {
            const char *k = v->u.object.keys[i];
            size_t n = strlen(k);
            if ((*bad = es_utf8_invalid_at(k, n)) < n)
                return k;
            if ((k = s_bad_utf8(v->u.object.values[i], bad)))
                return k;
        }
    } else if (YAJL_IS_ARRAY(v)) {
        for (size_t i = 0; i < v->u.array.len; i++)
            if ((s = s_bad_utf8(v->u.array.values[i], bad)))
                return s;
        return NULL;
    }
    if (!s)
        return NULL;
    size_t n = strlen(s);
    return (*bad = es_utf8_invalid_at(s, n)) < n ? s : NULL;
}

//  Parse text into a tree whose root is an object. NULL with err and *vmx_code on failure.
//  Nesting is bounded first because yajl_tree_free() recurses once per level.
static yajl_val
s_parse_root(const char *json, size_t len, es_err_t *err, int *vmx_code)
{
    if (len > ES_SYNCOPTS_MAX_LEN) {
        S_FAIL(VMX_INVALID_OPTIONS, "syncOptions: too long (%zu bytes, max %u)", len,
               ES_SYNCOPTS_MAX_LEN);
        return NULL;
    }
    //  yajl_tree_parse() reads a C string: a NUL inside would hide the rest.
    if (!json || memchr(json, '\0', len)) {
        S_FAIL(VMX_INVALID_OPTIONS, "syncOptions: not a JSON object");
        return NULL;
    }
    if (es_json_too_deep(json, len, ES_SYNCOPTS_MAX_DEPTH, NULL)) {
        S_FAIL(VMX_INVALID_OPTIONS, "syncOptions: nested too deeply (max %d levels)",
               ES_SYNCOPTS_MAX_DEPTH);
        return NULL;
    }
    char *text = es_strndup(json, len);
    char errbuf[256];
    yajl_val root = yajl_tree_parse(text, errbuf, sizeof errbuf);
    free(text);
    if (!root || root->type != yajl_t_object) {
        yajl_tree_free(root);
        S_FAIL(VMX_INVALID_OPTIONS, "syncOptions: not a JSON object");
        return NULL;
    }
    size_t bad = 0;
    const char *s = s_bad_utf8(root, &bad);
    if (s) {
        size_t shown = bad < 32 ? bad : 32;
        while (shown && ((unsigned char)s[shown] & 0xC0) == 0x80)
            shown--; //  whole characters only
        S_FAIL(VMX_INVALID_OPTIONS,
               "syncOptions: invalid UTF-8 at byte %zu of a string beginning '%.*s'", bad + 1,
               (int)shown, s);
        yajl_tree_free(root);
        return NULL;
    }
    return root;
}

//  Find the known options in root: slots[i] = the value of the last key equal to names[i].
//  Unknown and repeated keys become warnings.
static void
s_collect(yajl_val root, const char *const *names, size_t nnames, yajl_val *slots, char ***warnings,
          size_t *nwarnings)
{
    for (size_t i = 0; i < nnames; i++)
        slots[i] = NULL;
    bool seen[16] = {false};
    assert(nnames <= 16);
    for (size_t k = 0; k < root->u.object.len; k++) {
        const char *key = root->u.object.keys[k];
        size_t i = 0;
        while (i < nnames && strcmp(names[i], key) != 0)
            i++;
        if (i == nnames) {
            s_warn(warnings, nwarnings, "unknown option '%s' ignored", key);
            continue;
        }
        if (seen[i])
            s_warn(warnings, nwarnings, "option '%s' given more than once, the last one counts",
                   key);
        seen[i] = true;
        slots[i] = root->u.object.values[k];
    }
}

enum {
    O_SYNC_TYPE,
    O_FILTER,
    O_DL_BATCH,
    O_UL_BATCH,
    O_STATS,
    O_RECONCILE,
    O_PRESERVE,
    O_DL_PARAMS,
    O_UL_PARAMS,
    O_REMOVE,
    O_COUNT
};
static const char *const s_options[O_COUNT] = {
    "syncType",
    "filter",
    "downloadBatchSize",
    "uploadBatchSize",
    "getSyncStats",
    "downloadReconciliationRequired",
    "preserveBatchContext",
    "downloadRequestQueryParams",
    "uploadRequestQueryParams",
    "removeAfterUpload",
};

static const char *const s_type_names[] = {"fullSync", "uploadOnly", "downloadOnly"};

const char *
es_syncopts_type_name(es_sync_type_t type)
{
    if ((size_t)type < sizeof s_type_names / sizeof s_type_names[0])
        return s_type_names[type];
    return "?";
}

static bool
s_is_object(const char *name, const char *const *objects, size_t nobjects)
{
    for (size_t i = 0; i < nobjects; i++)
        if (objects[i] && strcmp(objects[i], name) == 0)
            return true;
    return false;
}

//  A number or numeric string as a double. Only decimal notation: strtod() alone would also
//  take "0x10", "inf" and "nan".
static bool
s_number(yajl_val v, double *out)
{
    const char *s;
    if (YAJL_IS_NUMBER(v))
        s = v->u.number.r;
    else if (YAJL_IS_STRING(v))
        s = v->u.string;
    else
        return false;
    while (isspace((unsigned char)*s))
        s++;
    bool digit = false;
    const char *p = s;
    for (; *p && !isspace((unsigned char)*p); p++) {
        if (isdigit((unsigned char)*p))
            digit = true;
        else if (!strchr("+-.eE", *p))
            return false;
    }
    while (isspace((unsigned char)*p))
        p++;
    if (!digit || *p)
        return false;
    char *end;
    double d = strtod(s, &end);
    while (isspace((unsigned char)*end))
        end++;
    if (*end || isnan(d))
        return false;
    *out = d; //  an overflow gives +-HUGE_VAL, which the clamp below handles
    return true;
}

//  downloadBatchSize / uploadBatchSize (D5): the integer part of a number or numeric string.
//  Lenient by design: a bad value takes the default, with a warning.
static int64_t
s_batch(es_syncopts_t *self, yajl_val v, const char *name, int64_t dflt, bool zero_ok)
{
    char shown[128];
    double d;
    if (!s_number(v, &d)) {
        s_warn(&self->warnings, &self->nwarnings, "%s: %s is not a number, using %" PRId64, name,
               s_render(v, shown, sizeof shown), dflt);
        return dflt;
    }
    if (d < 0 || (!zero_ok && trunc(d) < 1)) {
        s_warn(&self->warnings, &self->nwarnings, "%s: %s is %s, using %" PRId64, name,
               s_render(v, shown, sizeof shown), zero_ok ? "negative" : "not positive", dflt);
        return dflt;
    }
    if (d > (double)ES_SYNCOPTS_BATCH_MAX) {
        s_warn(&self->warnings, &self->nwarnings, "%s: %s is too large, using %d", name,
               s_render(v, shown, sizeof shown), ES_SYNCOPTS_BATCH_MAX);
        return ES_SYNCOPTS_BATCH_MAX;
    }
    return (int64_t)trunc(d);
}

//  true, or a string equal to "true" in any case, is true; false or "false" (any case) is
//  false; anything else is false with a warning.
static bool
s_flag(es_syncopts_t *self, yajl_val v, const char *name, const char *consequence)
{
    if (YAJL_IS_TRUE(v))
        return true;
    if (YAJL_IS_FALSE(v))
        return false;
    if (YAJL_IS_STRING(v) && strcasecmp(v->u.string, "true") == 0)
        return true;
    if (YAJL_IS_STRING(v) && strcasecmp(v->u.string, "false") == 0)
        return false;
    char shown[128];
    s_warn(&self->warnings, &self->nwarnings, "%s: %s is not a boolean, %s", name,
           s_render(v, shown, sizeof shown), consequence);
    return false;
}

static int
s_filter(es_syncopts_t *self, yajl_val v, const char *const *objects, size_t nobjects,
         es_err_t *err, int *vmx_code)
{
    char shown[128];
    if (self->level == ES_SYNCOPTS_OBJECT) {
        if (!v || YAJL_IS_NULL(v) || (YAJL_IS_STRING(v) && !v->u.string[0]))
            return S_FAIL(VMX_INVALID_FILTER,
                          "Invalid value found for filter option %s: filters sent are null/empty",
                          s_render(v, shown, sizeof shown));
        if (!YAJL_IS_STRING(v))
            return S_FAIL(VMX_INVALID_FILTER,
                          "Invalid value found for filter option %s: filter is not of type String",
                          s_render(v, shown, sizeof shown));
        s_pairs_set(&self->filters, &self->nfilters, nobjects ? objects[0] : "", v->u.string);
        return 0;
    }
    if (!YAJL_IS_OBJECT(v))
        return S_FAIL(VMX_INVALID_FILTER,
                      "Invalid value found for filter option %s: expected a map of object names "
                      "to filters",
                      s_render(v, shown, sizeof shown));
    if (v->u.object.len == 0)
        return S_FAIL(VMX_INVALID_FILTER,
                      "Invalid value found for filter option {}: filters sent are null/empty");
    for (size_t i = 0; i < v->u.object.len; i++) {
        const char *object = v->u.object.keys[i];
        yajl_val f = v->u.object.values[i];
        if (!s_is_object(object, objects, nobjects))
            return S_FAIL(VMX_INVALID_FILTER,
                          "Invalid value found for filter option: '%s' sent in filter options "
                          "doesn't belong to the object service",
                          object);
        if (YAJL_IS_NULL(f) || (YAJL_IS_STRING(f) && !f->u.string[0]))
            return S_FAIL(VMX_INVALID_FILTER,
                          "Invalid value found for filter option: filter for '%s' is %s: "
                          "filters sent are null/empty",
                          object, s_render(f, shown, sizeof shown));
        if (!YAJL_IS_STRING(f))
            return S_FAIL(VMX_INVALID_FILTER,
                          "Invalid value found for filter option: filter for '%s' is %s: not "
                          "of type String",
                          object, s_render(f, shown, sizeof shown));
        s_pairs_set(&self->filters, &self->nfilters, object, f->u.string);
    }
    return 0;
}

static int
s_sync_type(es_syncopts_t *self, yajl_val v, es_err_t *err, int *vmx_code)
{
    char shown[128];
    if (YAJL_IS_NULL(v) || (YAJL_IS_STRING(v) && !v->u.string[0]))
        return S_FAIL(VMX_INVALID_SYNC_TYPE,
                      "Invalid value found for syncType option %s. It's either empty or null",
                      s_render(v, shown, sizeof shown));
    for (size_t i = 0; YAJL_IS_STRING(v) && i < sizeof s_type_names / sizeof s_type_names[0]; i++)
        if (strcmp(v->u.string, s_type_names[i]) == 0) {
            self->sync_type = (es_sync_type_t)i;
            return 0;
        }
    return S_FAIL(VMX_INVALID_SYNC_TYPE, "Invalid value found for syncType option %s",
                  s_render(v, shown, sizeof shown));
}

//  D6: strictly a boolean or the exact strings "true" / "false".
static int
s_reconcile(es_syncopts_t *self, yajl_val v, es_err_t *err, int *vmx_code)
{
    char shown[128];
    if (YAJL_IS_TRUE(v) || (YAJL_IS_STRING(v) && strcmp(v->u.string, "true") == 0))
        self->reconcile = true;
    else if (YAJL_IS_FALSE(v) || (YAJL_IS_STRING(v) && strcmp(v->u.string, "false") == 0))
        self->reconcile = false;
    else
        return S_FAIL(VMX_INVALID_OPTIONS,
                      "Invalid value found for downloadReconciliationRequired option %s: "
                      "expected true or false",
                      s_render(v, shown, sizeof shown));
    return 0;
}

static int
s_remove_after_upload(es_syncopts_t *self, yajl_val v, const char *const *objects, size_t nobjects,
                      es_err_t *err, int *vmx_code)
{
    char shown[128];
    if (!YAJL_IS_ARRAY(v))
        return S_FAIL(VMX_INVALID_OPTIONS,
                      "Invalid value found for removeAfterUpload option %s: expected an array "
                      "of object names",
                      s_render(v, shown, sizeof shown));
    for (size_t i = 0; i < v->u.array.len; i++) {
        yajl_val e = v->u.array.values[i];
        if (!YAJL_IS_STRING(e))
            return S_FAIL(VMX_INVALID_OPTIONS,
                          "Invalid value found for removeAfterUpload option: element %zu is %s, "
                          "expected an object name",
                          i, s_render(e, shown, sizeof shown));
        if (!s_is_object(e->u.string, objects, nobjects))
            return S_FAIL(VMX_INVALID_OPTIONS,
                          "Invalid value found for removeAfterUpload option: '%s' is not an "
                          "object of the entity being synced",
                          e->u.string);
        bool dup = false;
        for (size_t j = 0; j < self->nremove_after_upload; j++)
            dup = dup || strcmp(self->remove_after_upload[j], e->u.string) == 0;
        if (!dup)
            s_strv_push(&self->remove_after_upload, &self->nremove_after_upload,
                        es_strdup(e->u.string));
    }
    return 0;
}

//  Query params: a map of non-empty names to non-empty strings or numbers (kept as their JSON
//  text). Anything but a map is ignored with a warning, as the SDKs ignore it.
static int
s_params(es_syncopts_t *self, yajl_val v, const char *name, es_syncopts_pair_t **pairs, size_t *n,
         es_err_t *err, int *vmx_code)
{
    char shown[128];
    if (!YAJL_IS_OBJECT(v)) {
        s_warn(&self->warnings, &self->nwarnings, "%s: %s is not an object, ignored", name,
               s_render(v, shown, sizeof shown));
        return 0;
    }
    for (size_t i = 0; i < v->u.object.len; i++) {
        const char *key = v->u.object.keys[i];
        yajl_val val = v->u.object.values[i];
        if (!key[0])
            return S_FAIL(VMX_INVALID_OPTIONS,
                          "Invalid value found for %s option: empty query param name", name);
        if (YAJL_IS_NUMBER(val))
            s_pairs_push(pairs, n, key, val->u.number.r);
        else if (YAJL_IS_STRING(val) && val->u.string[0])
            s_pairs_push(pairs, n, key, val->u.string);
        else if (YAJL_IS_NULL(val) || YAJL_IS_STRING(val))
            return S_FAIL(VMX_INVALID_OPTIONS,
                          "Invalid value found for %s option: null or empty value %s for query "
                          "param '%s'",
                          name, s_render(val, shown, sizeof shown), key);
        else
            return S_FAIL(VMX_INVALID_OPTIONS,
                          "Invalid value found for %s option: value %s for query param '%s' is "
                          "not a string or number",
                          name, s_render(val, shown, sizeof shown), key);
    }
    s_pairs_dedup(*pairs, n);
    return 0;
}

void
es_syncopts_release(es_syncopts_t *self)
{
    if (!self)
        return;
    s_strv_free(&self->warnings, &self->nwarnings);
    s_strv_free(&self->remove_after_upload, &self->nremove_after_upload);
    s_pairs_free(&self->upload_params, &self->nupload_params);
    s_pairs_free(&self->download_params, &self->ndownload_params);
    s_pairs_free(&self->filters, &self->nfilters);
    memset(self, 0, sizeof *self);
}

int
es_syncopts_parse(es_syncopts_t *out, const char *json, size_t len, es_syncopts_level_t level,
                  const char *const *objects, size_t nobjects, es_err_t *err, int *vmx_code)
{
    assert(out && (objects || nobjects == 0));
    memset(out, 0, sizeof *out);
    s_set_vmx(vmx_code, 0);
    yajl_val root = s_parse_root(json, len, err, vmx_code);
    if (!root)
        return -1;
    out->level = level;
    out->sync_type = ES_SYNC_FULL;
    out->download_batch_size = ES_SYNCOPTS_DOWNLOAD_BATCH;
    out->upload_batch_size = ES_SYNCOPTS_UPLOAD_BATCH;
    out->reconcile = true;

    yajl_val o[O_COUNT];
    s_collect(root, s_options, O_COUNT, o, &out->warnings, &out->nwarnings);
    //  The SDKs' order (SPEC 2.2), so the first error reported is theirs.
    int rc = 0;
    if (o[O_REMOVE])
        rc = s_remove_after_upload(out, o[O_REMOVE], objects, nobjects, err, vmx_code);
    if (rc == 0 && o[O_FILTER])
        rc = s_filter(out, o[O_FILTER], objects, nobjects, err, vmx_code);
    if (rc == 0 && o[O_SYNC_TYPE])
        rc = s_sync_type(out, o[O_SYNC_TYPE], err, vmx_code);
    if (rc == 0 && o[O_RECONCILE])
        rc = s_reconcile(out, o[O_RECONCILE], err, vmx_code);
    if (rc == 0 && o[O_DL_PARAMS])
        rc = s_params(out, o[O_DL_PARAMS], s_options[O_DL_PARAMS], &out->download_params,
                      &out->ndownload_params, err, vmx_code);
    if (rc == 0 && o[O_UL_PARAMS])
        rc = s_params(out, o[O_UL_PARAMS], s_options[O_UL_PARAMS], &out->upload_params,
                      &out->nupload_params, err, vmx_code);
    if (rc == 0) {
        if (o[O_DL_BATCH])
            out->download_batch_size = s_batch(out, o[O_DL_BATCH], s_options[O_DL_BATCH],
                                               ES_SYNCOPTS_DOWNLOAD_BATCH, true);
        if (o[O_UL_BATCH])
            out->upload_batch_size =
                s_batch(out, o[O_UL_BATCH], s_options[O_UL_BATCH], ES_SYNCOPTS_UPLOAD_BATCH, false);
        if (o[O_STATS])
            out->get_sync_stats = s_flag(out, o[O_STATS], "getSyncStats", "no stats");
        if (o[O_PRESERVE])
            out->preserve_batch_context =
                s_flag(out, o[O_PRESERVE], "preserveBatchContext", "using false");
        //  D8: only uploadOnly removes uploaded rows (in fullSync the download would bring
        //  them back).
        if (out->nremove_after_upload && out->sync_type != ES_SYNC_UPLOAD_ONLY) {
            s_warn(&out->warnings, &out->nwarnings,
                   "removeAfterUpload ignored: syncType is %s, not uploadOnly",
                   es_syncopts_type_name(out->sync_type));
            s_strv_free(&out->remove_after_upload, &out->nremove_after_upload);
        }
    }
    yajl_tree_free(root);
    if (rc)
        es_syncopts_release(out);
    return rc;
}

static void
s_json_pairs(es_buf_t *out, const es_syncopts_pair_t *pairs, size_t n)
{
    es_buf_putc(out, '{');
    for (size_t i = 0; i < n; i++) {
        if (i)
            es_buf_putc(out, ',');
        es_buf_json_str(out, pairs[i].key, strlen(pairs[i].key));
        es_buf_putc(out, ':');
        es_buf_json_str(out, pairs[i].value, strlen(pairs[i].value));
    }
    es_buf_putc(out, '}');
}

void
es_syncopts_to_json(const es_syncopts_t *self, es_buf_t *out)
{
    assert(self && out);
    es_buf_printf(out,
                  "{\"syncType\":\"%s\",\"downloadBatchSize\":%" PRId64
                  ",\"uploadBatchSize\":%" PRId64 ",\"getSyncStats\":%s,"
                  "\"downloadReconciliationRequired\":%s,\"preserveBatchContext\":%s",
                  es_syncopts_type_name(self->sync_type), self->download_batch_size,
                  self->upload_batch_size, self->get_sync_stats ? "true" : "false",
                  self->reconcile ? "true" : "false",
                  self->preserve_batch_context ? "true" : "false");
    if (self->nfilters) {
        es_buf_puts(out, ",\"filter\":");
        if (self->level == ES_SYNCOPTS_OBJECT)
            es_buf_json_str(out, self->filters[0].value, strlen(self->filters[0].value));
        else
            s_json_pairs(out, self->filters, self->nfilters);
    }
    if (self->ndownload_params) {
        es_buf_puts(out, ",\"downloadRequestQueryParams\":");
        s_json_pairs(out, self->download_params, self->ndownload_params);
    }
    if (self->nupload_params) {
        es_buf_puts(out, ",\"uploadRequestQueryParams\":");
        s_json_pairs(out, self->upload_params, self->nupload_params);
    }
    if (self->nremove_after_upload) {
        es_buf_puts(out, ",\"removeAfterUpload\":[");
        for (size_t i = 0; i < self->nremove_after_upload; i++) {
            if (i)
                es_buf_putc(out, ',');
            es_buf_json_str(out, self->remove_after_upload[i],
                            strlen(self->remove_after_upload[i]));
        }
        es_buf_putc(out, ']');
    }
    es_buf_putc(out, '}');
}

//  ---------------------------------------------------------------------------------------------
//  Application level

//  Write a parsed value back as JSON text (depth is bounded by s_parse_root()).
static void
s_json_value(es_buf_t *out, yajl_val v)
{
    switch (v ? v->type : yajl_t_null) {
    case yajl_t_string:
        es_buf_json_str(out, v->u.string, strlen(v->u.string));
        break;
    case yajl_t_number:
        es_buf_puts(out, v->u.number.r);
        break;
    case yajl_t_object:
        es_buf_putc(out, '{');
        for (size_t i = 0; i < v->u.object.len; i++) {
            if (i)
                es_buf_putc(out, ',');
            es_buf_json_str(out, v->u.object.keys[i], strlen(v->u.object.keys[i]));
            es_buf_putc(out, ':');
            s_json_value(out, v->u.object.values[i]);
        }
        es_buf_putc(out, '}');
        break;
    case yajl_t_array:
        es_buf_putc(out, '[');
        for (size_t i = 0; i < v->u.array.len; i++) {
            if (i)
                es_buf_putc(out, ',');
            s_json_value(out, v->u.array.values[i]);
        }
        es_buf_putc(out, ']');
        break;
    case yajl_t_true:
        es_buf_puts(out, "true");
        break;
    case yajl_t_false:
        es_buf_puts(out, "false");
        break;
    default:
        es_buf_puts(out, "null");
        break;
    }
}

void
es_syncopts_app_release(es_syncopts_app_t *self)
{
    if (!self)
        return;
    s_strv_free(&self->warnings, &self->nwarnings);
    s_pairs_free(&self->services, &self->nservices);
    memset(self, 0, sizeof *self);
}

static int
s_app_services(es_syncopts_app_t *self, yajl_val v, const char *const *services, size_t nservices,
               es_err_t *err, int *vmx_code)
{
    char shown[128];
    if (YAJL_IS_NULL(v))
        return 0;
    if (!YAJL_IS_OBJECT(v))
        return S_FAIL(VMX_INVALID_APP_OPTIONS,
                      "Invalid data type sent for objectServicesOptions: %s is not an object",
                      s_render(v, shown, sizeof shown));
    es_buf_t text;
    es_buf_init(&text);
    for (size_t i = 0; i < v->u.object.len; i++) {
        const char *name = v->u.object.keys[i];
        yajl_val opts = v->u.object.values[i];
        if (!s_is_object(name, services, nservices)) {
            es_buf_release(&text);
            return S_FAIL(VMX_INVALID_APP_OPTIONS, "Invalid SDKObjectServiceName %s", name);
        }
        if (!YAJL_IS_OBJECT(opts)) {
            es_buf_release(&text);
            return S_FAIL(VMX_INVALID_APP_OPTIONS,
                          "Invalid value found for objectServicesOptions.%s: %s is not an object",
                          name, s_render(opts, shown, sizeof shown));
        }
        es_buf_reset(&text);
        s_json_value(&text, opts);
        s_pairs_set(&self->services, &self->nservices, name, text.data);
    }
    es_buf_release(&text);
    return 0;
}

int
es_syncopts_app_parse(es_syncopts_app_t *out, const char *json, size_t len,
                      const char *const *services, size_t nservices, es_err_t *err, int *vmx_code)
{
    assert(out && (services || nservices == 0));
    memset(out, 0, sizeof *out);
    s_set_vmx(vmx_code, 0);
    yajl_val root = s_parse_root(json, len, err, vmx_code);
    if (!root)
        return -1;
    static const char *const names[] = {"syncMode", "objectServicesOptions"};
    yajl_val o[2];
    s_collect(root, names, 2, o, &out->warnings, &out->nwarnings);
    out->sync_mode = ES_SYNC_MODE_PARALLEL;
    if (o[0]) {
        char shown[128];
        const char *mode = YAJL_IS_STRING(o[0]) ? o[0]->u.string : NULL;
        if (mode && strcasecmp(mode, "sequential") == 0)
            out->sync_mode = ES_SYNC_MODE_SEQUENTIAL;
        else if (!mode || strcasecmp(mode, "parallel") != 0)
            s_warn(&out->warnings, &out->nwarnings,
                   "syncMode: %s is not parallel or sequential, using parallel",
                   s_render(o[0], shown, sizeof shown));
    }
    int rc = 0;
    if (o[1])
        rc = s_app_services(out, o[1], services, nservices, err, vmx_code);
    yajl_tree_free(root);
    if (rc)
        es_syncopts_app_release(out);
    return rc;
}
