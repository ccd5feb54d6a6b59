//  es_upload - the upload wire format (SPEC 5.3, 5.4, 3.4.2-3.4.5): request bodies built from
//  pending changes, and upload responses parsed into per-record outcomes.
#ifndef ES_UPLOAD_H
#define ES_UPLOAD_H
#include "common/es_buf.h"
#include "common/es_err.h"
#include "protocol/es_meta.h"
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

//  Request body: begin, add each record, end. Between begin and end, out holds a partial body.
//  {"checksum":"","sessionID":"","echo":[],"hasMoreRecords":"true|false","abortonError":"false",
//   "_metadata":{"totalNamespaces":"0","totalRecords":"N","totalObjects":"K","recordCount":"N"},
//   "records":[ {<columns, nulls omitted>, "_metadata":{"object":..,"action":..,"checksum":..,
//                "rowId":RSN,"ignore_duplicate":"false"}} ... ]}
//  Counters are filled with real values (as the native SDKs do).
typedef struct es_upload_body es_upload_body_t;
es_upload_body_t *es_upload_body_new(void);
void es_upload_body_destroy(es_upload_body_t **self_p);
void es_upload_body_reset(es_upload_body_t *self);
//  action: "create" | "update" | "partialupdate" | "delete". rec: es_record map (for delete the
//  key columns suffice). -1 with err if rec is malformed.
int es_upload_body_add(es_upload_body_t *self, const es_meta_object_t *obj, const char *action,
                       uint64_t rsn, const char *checksum, size_t checksum_len, const void *rec,
                       size_t rec_len, es_err_t *err);
//  Finish and return the body (borrowed until the next reset/destroy).
const char *es_upload_body_end(es_upload_body_t *self, bool has_more, size_t *len);
size_t es_upload_body_count(const es_upload_body_t *self);

//  One record of an upload response.
typedef struct {
    const es_meta_object_t *object; //  its object (NULL: unknown object name; see errmsg)
    const char *object_name;        //  the name as the server gave it
    bool has_row_id;                //  _metadata.rowId present (missing -> the caller fails 2473)
    uint64_t row_id;                //  rowId (number or numeric string)
    bool is_delete;                 //  _metadata.action == "delete"
    const char *checksum;           //  _metadata.checksum ("" if absent)
    const void *rec;                //  es_record map of the metadata columns of the record
    size_t rec_len;
    bool has_temp;                  //  "_<auto key column>" present: the temporary value sent
    int64_t temp_value;             //  that value
    const char *errmsg;             //  _metadata.errmsg: the record failed (NULL on success)
    int64_t opstatus;               //  _metadata.opstatus (0 if absent)
    const char *pk_json;            //  the record's key as JSON {"col":v} ("{}" if incomplete)
    const char *intermediate_errors; //  _metadata.intermediateErrors as JSON (NULL: absent/{})
} es_upload_rec_t;

typedef struct {
    bool has_opstatus;     //  root opstatus present
    int64_t opstatus;      //  root opstatus
    char errmsg[512];      //  root errmsg / errcode text
    uint64_t record_count; //  _metadata.recordCount
    uint64_t success_count; //  _metadata.successCount
    uint64_t failure_count; //  _metadata.failureCount
    size_t records;        //  records seen in objects[].records[]
    bool has_metadata;     //  root _metadata present (replay: missing -> 2473, SPEC 3.3)
} es_upload_summary_t;

//  Parse a whole response body ({"opstatus":0,"_metadata":{...},"objects":[{"name":..,
//  "records":[...]}]}). fn is called once per record (valid during the call; return 0, or -1
//  with err to stop). Nested child arrays inside records are skipped (D17). -1 with err
//  (ES_EPROTO) naming where on malformed JSON, wrong types, nesting over 64, a record that is
//  not an object, a body of 2 GiB or more; an error envelope (opstatus != 0) parses fine (see
//  sum). The whole body is checked as JSON before fn sees a record; strings end at a decoded
//  "\u0000".
typedef int(es_upload_rec_fn)(void *ctx, const es_upload_rec_t *r, es_err_t *err);
int es_upload_parse(const es_meta_t *meta, const char *json, size_t len, es_upload_rec_fn *fn,
                    void *ctx, es_upload_summary_t *sum, es_err_t *err);

#endif
