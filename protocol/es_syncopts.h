//  es_syncopts - startSync syncOptions: parse and validate the JSON text (SPEC 2.2, 2.3, D2-D8)
//  into one normalised struct, and write that struct back as JSON for the actors.
#ifndef ES_SYNCOPTS_H
#define ES_SYNCOPTS_H
#include "common/es_buf.h"
#include "common/es_err.h"
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ES_SYNCOPTS_DOWNLOAD_BATCH 500   //  downloadBatchSize default (D5)
#define ES_SYNCOPTS_UPLOAD_BATCH 50      //  uploadBatchSize default (D5)
#define ES_SYNCOPTS_BATCH_MAX 2147483647 //  larger batch sizes are clamped to this
#define ES_SYNCOPTS_MAX_LEN (1u << 20)   //  longest syncOptions text accepted
#define ES_SYNCOPTS_MAX_DEPTH 32         //  deepest JSON nesting accepted

typedef enum {
    ES_SYNC_FULL = 0,      //  "fullSync": upload, then download
    ES_SYNC_UPLOAD_ONLY,   //  "uploadOnly"
    ES_SYNC_DOWNLOAD_ONLY, //  "downloadOnly"
} es_sync_type_t;

typedef enum {
    ES_SYNCOPTS_OBJECT = 0, //  VMXObj.startSync: filter is one string
    ES_SYNCOPTS_SERVICE,    //  VMXObjSvc.startSync: filter maps object -> string
} es_syncopts_level_t;

typedef enum {
    ES_SYNC_MODE_PARALLEL = 0, //  app level: every service at once
    ES_SYNC_MODE_SEQUENTIAL,   //  app level: one service after the other
} es_sync_mode_t;

typedef struct {
    char *key;   //  owned
    char *value; //  owned
} es_syncopts_pair_t;

//  Normalised options. Every string and array is owned by the struct: es_syncopts_release().
typedef struct {
    es_syncopts_level_t level;           //  as parsed (decides the JSON shape of filter)
    es_sync_type_t sync_type;            //  syncType, default ES_SYNC_FULL
    int64_t download_batch_size;         //  0 = all records in one response; default 500
    int64_t upload_batch_size;           //  >= 1; default 50
    bool get_sync_stats;                 //  getSyncStats is true or "true" (any case)
    bool reconcile;                      //  downloadReconciliationRequired, default true
    bool preserve_batch_context;         //  preserveBatchContext, default false
    es_syncopts_pair_t *filters;         //  (object, OData filter); object level: at most one
    size_t nfilters;                     //  entries in filters
    es_syncopts_pair_t *download_params; //  downloadRequestQueryParams, in input order
    size_t ndownload_params;             //  entries in download_params
    es_syncopts_pair_t *upload_params;   //  uploadRequestQueryParams, in input order
    size_t nupload_params;               //  entries in upload_params
    char **remove_after_upload;          //  object names; empty unless sync_type is uploadOnly
    size_t nremove_after_upload;         //  entries in remove_after_upload
    char **warnings;                     //  things ignored or defaulted, for the result's warnings
    size_t nwarnings;                    //  entries in warnings
} es_syncopts_t;

//  Parse and validate syncOptions JSON text (len bytes, need not be NUL-terminated) for an
//  object (level OBJECT, objects = {that object}) or an object service (level SERVICE,
//  objects = its objects). The object names validate filter keys and removeAfterUpload.
//  0 with *out filled (caller releases it), or -1 with *out zeroed (owns nothing), err set
//  (code ES_EINVAL) and *vmx_code (if not NULL) set to the Volt MX code:
//    2477 syncType null, empty or not exactly fullSync / uploadOnly / downloadOnly;
//    2472 filter null, empty, wrong type, or naming an object not in objects;
//    2304 the text is not a JSON object, downloadReconciliationRequired is not a boolean or
//         "true"/"false", removeAfterUpload is not an array of names of objects, or a query
//         param has an empty key or a value that is not a non-empty string or a number.
//  Checked in the order of SPEC 2.2: removeAfterUpload, filter, syncType, reconciliation,
//  then the rest. Lenient options (batch sizes, getSyncStats, preserveBatchContext) never fail:
//  invalid values take the default and add a warning; so do unknown keys. A key given twice:
//  the last one counts (with a warning). Query param values that are numbers keep their JSON
//  text ("12.50").
int es_syncopts_parse(es_syncopts_t *out, const char *json, size_t len, es_syncopts_level_t level,
                      const char *const *objects, size_t nobjects, es_err_t *err, int *vmx_code);

//  Free everything *self owns and zero it. Safe on a zeroed struct, safe twice.
void es_syncopts_release(es_syncopts_t *self);

//  Append the normalised options as one JSON object to out; es_syncopts_parse() of that text
//  at the same level gives the same options (without the warnings).
void es_syncopts_to_json(const es_syncopts_t *self, es_buf_t *out);

//  "fullSync", "uploadOnly", "downloadOnly", or "?".
const char *es_syncopts_type_name(es_sync_type_t type);

//  Application-level options (SPEC 2.3). Owned by the struct: es_syncopts_app_release().
typedef struct {
    es_sync_mode_t sync_mode;     //  syncMode, default parallel
    es_syncopts_pair_t *services; //  (service name, its options as JSON object text)
    size_t nservices;             //  entries in services (only those given)
    char **warnings;              //  things ignored or defaulted
    size_t nwarnings;             //  entries in warnings
} es_syncopts_app_t;

//  Parse application-level syncOptions. syncMode is lower-cased; anything but parallel or
//  sequential means parallel (with a warning when present). objectServicesOptions (absent or
//  null: none) must map names from services to objects; each value is kept as JSON text for
//  es_syncopts_parse() at level SERVICE. 0, or -1 with *out zeroed, err set and *vmx_code:
//  2304 the text is not a JSON object; 2482 objectServicesOptions is not an object, names an
//  unknown service ("Invalid SDKObjectServiceName <x>") or has a value that is not an object.
int es_syncopts_app_parse(es_syncopts_app_t *out, const char *json, size_t len,
                          const char *const *services, size_t nservices, es_err_t *err,
                          int *vmx_code);

//  Free everything *self owns and zero it. Safe on a zeroed struct, safe twice.
void es_syncopts_app_release(es_syncopts_app_t *self);

#endif
