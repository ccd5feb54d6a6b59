//  es_local - local changes (SPEC 1.2-1.4, 3.4.6, 3.6.5, 3.7): create / update / partial update /
//  delete of records with change tracking, the pending-change log in RSN order, the server
//  baseline (orig:), temporary negative keys, rollback, clear, and applying upload results.
//  Every function works inside the caller's write (or read) transaction, so a caller composes
//  several into one atomic step (es_store_write). Bad input is rejected before anything is
//  written, but a store failure can leave a call half done: on -1 the caller aborts the txn.
//
//  Tables (ARCHITECTURE.md "The store"):
//    main:<object>  pk -> es_store_rec_pack(checksum, record)
//    orig:<object>  pk -> [u8 change type][es_store_rec_pack(checksum, record)]  first-edit baseline
//                          (change type 1 "create" = the row did not exist on the server; high
//                          bit 0x80: main holds a trackChanges:false edit that no pending change
//                          carries, which upload answers leave in place)
//    hist           "<service>\0" + RSN (8 bytes big-endian) -> es_local_change encoding
//    pend:<object>  pk -> u32 (little-endian) count of hist rows of that pk, then u64 (LE) RSN
//                   of its latest hist row (12 bytes)
//    meta           "rsn/<service>" -> u64 next RSN (starts at 1); "gen/<service>" -> i64 last
//                   temporary id (starts at 0, first id is -1)
//    upcache        "<syncable>" -> upload cache row (store/es_upcache.h; written and removed by
//                   the upload actor only: rollback and clear refuse to drop a change one carries)
#ifndef ES_LOCAL_H
#define ES_LOCAL_H
#include "common/es_buf.h"
#include "common/es_err.h"
#include "protocol/es_meta.h"
#include "store/es_store.h"
#include <stdbool.h>
#include <stdint.h>

//  Change types (konysyncchangetype). Only 0-3 reach the wire, as names; 80 goes as update.
typedef enum {
    ES_CHG_UPDATE = 0,
    ES_CHG_CREATE = 1,
    ES_CHG_PARTIAL = 2,
    ES_CHG_DELETE = 3,
    ES_CHG_DEFERRED_NOINTER = 70, //  deferred + don't track intermediate updates
    ES_CHG_NOINTER = 80,          //  don't track intermediate updates (sent as update)
    ES_CHG_DEFERRED_UPDATE = 90,
    ES_CHG_DEFERRED_CREATE = 91,
    ES_CHG_DEFERRED_DELETE = 93,
} es_chg_t;

typedef struct {
    bool track_changes;        //  false: change main only, no hist row (never uploaded)
    bool mark_for_upload;      //  false: hist row with a deferred code (not uploaded yet)
    bool track_intermediate;   //  false: consecutive updates collapse into one row (code 80),
                               //  moved to a new RSN each time (an upload in flight keeps its own)
} es_local_opts_t;

//  Defaults: all true.
void es_local_opts_init(es_local_opts_t *opts);
//  Parse CRUD options JSON ({"trackChanges":bool,"markForUpload":bool,
//  "trackIntermediateUpdates"|"trackIntermediateChanges":bool}); NULL/empty = defaults.
//  -1 with err (ES_EINVAL) naming the option on a wrong type.
int es_local_opts_parse(es_local_opts_t *opts, const char *json, size_t len, es_err_t *err);

//  One pending change as stored in hist (pointers into the stored value or the caller's data).
typedef struct {
    uint64_t rsn;              //  replay sequence number (service-wide)
    es_chg_t action;           //  change type
    const char *object;        //  object name
    size_t object_len;
    const void *pk;            //  es_key encoding
    size_t pk_len;
    const char *checksum;      //  konysynchashsum at the time of the edit ("" if none)
    size_t checksum_len;
    const void *rec;           //  es_record map of the record as edited (delete: key columns)
    size_t rec_len;
} es_local_change_t;

//  CRUD. Records are JSON objects; keys are JSON (scalar or {"col": v}) as es_key_from_json.
//  Errors (ES_EINVAL / ES_ENOTFOUND, nothing written): unknown column, wrong type, missing or
//  null key column (except auto-generated ones on create, which get the next temporary
//  negative id), create of an existing key, update/delete of a missing key, a change of a key
//  column, a column that is not creatable/updatable, a non-deferred edit of a record that has
//  deferred changes (code 2314 in err text: "record has deferred changes").
//  create: pk_out (if not NULL) gets the key as JSON (with the temporary id if one was given).
int es_local_create(es_txn_t *txn, const es_meta_t *meta, const es_meta_object_t *obj,
                    const char *json, size_t len, const es_local_opts_t *opts, es_buf_t *pk_out,
                    es_err_t *err);
//  update replaces every updatable non-key column (absent ones become absent; columns that are
//  not updatable keep their values); partial merges the given columns into the current record.
//  The record JSON may repeat the key columns (they must equal the key) or omit them.
int es_local_update(es_txn_t *txn, const es_meta_t *meta, const es_meta_object_t *obj,
                    const char *pk_json, size_t pk_len, const char *json, size_t len, bool partial,
                    const es_local_opts_t *opts, es_err_t *err);
int es_local_delete(es_txn_t *txn, const es_meta_t *meta, const es_meta_object_t *obj,
                    const char *pk_json, size_t pk_len, const es_local_opts_t *opts,
                    es_err_t *err);
//  markForUpload API: turn the deferred changes of obj (or of every object of meta when obj is
//  NULL) into uploadable ones (91->1, 90->0, 93->3, 70->80). Count of rows converted, or -1.
int64_t es_local_mark_for_upload(es_txn_t *txn, const es_meta_t *meta, const es_meta_object_t *obj,
                                 es_err_t *err);

//  getPendingRecordsForUpload: {"pendingSyncRecords":[{pk...},...]} of distinct keys with hist
//  rows, for obj (or all objects of meta, then {"<object>":{"pendingSyncRecords":[...]},...}).
int es_local_pending(es_txn_t *txn, const es_meta_t *meta, const es_meta_object_t *obj,
                     es_buf_t *out, es_err_t *err);
//  True if pk of obj has hist rows or an orig baseline (pending local state: SPEC 3.6.5).
//  -1 on error.
int es_local_has_local_state(es_txn_t *txn, const char *object, const void *pk, size_t pk_len,
                             es_err_t *err);

//  Download protection (SPEC 3.6.5): if pk of object has pending local state, make the
//  downloaded version (value = es_store_rec_pack of the server record; is_delete for a server
//  delete) its new baseline in orig (change type update, or create for a delete so that a
//  rollback removes the row) and refresh the checksum of its main row; main values stay.
//  1 if protected (the caller must not write main), 0 if there is no local state, -1 on error.
int es_local_protect(es_txn_t *txn, const char *object, const void *pk, size_t pk_len,
                     bool is_delete, const void *value, size_t value_len, es_err_t *err);

//  rollback (SPEC 3.7): restore the orig baseline into main (or delete the row if its baseline
//  is a create), drop the hist rows and the baseline; for one pk, one object, or every object of
//  meta. One pk without baseline: -1 with err "rollback: no local changes for that key" (2471).
//  A pending change in scope that a cached upload request carries (its answer never arrived, so
//  the server may have applied it): -1 with err ES_EBUSY naming key, rowId and request id,
//  nothing changed; the next sync's replay settles it (D14/D15). Upload cache rows are never
//  removed here. Count of rows rolled back, or -1.
int64_t es_local_rollback(es_txn_t *txn, const es_meta_t *meta, const es_meta_object_t *obj,
                          const char *pk_json, size_t pk_len, es_err_t *err);
//  clearOfflineData: delete main/orig/hist/pend rows (and the object's delta contexts in ctx,
//  keys "<object>\n...") for one pk, one object or every object of meta. Refused like rollback
//  (ES_EBUSY) when a change in scope is in a cached upload request. Count of main rows removed,
//  or -1.
int64_t es_local_clear(es_txn_t *txn, const es_meta_t *meta, const es_meta_object_t *obj,
                       const char *pk_json, size_t pk_len, es_err_t *err);

//  --- upload side --------------------------------------------------------------------------

//  Last RSN issued in the service (0 if none): the snapshot bound of an upload session.
int es_local_last_rsn(es_txn_t *txn, const char *service, uint64_t *rsn, es_err_t *err);
//  Pending changes of service with after < RSN <= upto, in RSN order, skipping deferred codes
//  (70, 90, 91, 93) and objects not accepted by filter (NULL = all); at most limit (0 = all).
//  fn returns 0 to go on, 1 to stop, -1 to fail. 0 or -1.
typedef int(es_local_change_fn)(void *ctx, const es_local_change_t *c, es_err_t *err);
typedef bool(es_local_object_filter_fn)(void *ctx, const char *object, size_t len);
int es_local_changes(es_txn_t *txn, const char *service, uint64_t after, uint64_t upto,
                     size_t limit, es_local_object_filter_fn *filter, void *filter_ctx,
                     es_local_change_fn *fn, void *ctx, es_err_t *err);

//  One successful record of an upload response (SPEC 3.4.5), as the upload parser gives it.
typedef struct {
    const es_meta_object_t *object; //  object of the record
    uint64_t row_id;                //  highest rowId among the records of this key
    bool is_delete;                 //  action == delete
    const char *checksum;           //  new konysynchashsum
    const void *rec;                //  full server record (es_record map); delete: key columns
    size_t rec_len;
    bool has_temp;                  //  the response carried "_<pk>" (auto-generated key)
    int64_t temp_value;             //  the temporary negative value the client sent
} es_local_result_t;

//  Is r about a change that was sent? 1: the pending change at r->row_id is of r's object and of
//  r's key (or of the temporary key r names); 0: no pending change at that rowId any more
//  (nothing to apply); -1 with err: ES_EPROTO if it is another object's or key's change, else a
//  store error. Reads only.
int es_local_check_result(es_txn_t *txn, const char *service, const es_local_result_t *r,
                          es_err_t *err);

//  Apply one successful upload result per SPEC 3.4.6: rewrite a temporary key everywhere
//  (main, orig, hist, pend; foreign keys of other objects are not known without relationships:
//  D17), force delete when remove is set (removeAfterUpload), delete the key's hist rows with
//  RSN <= row_id, then either apply the server record to main and drop orig (no newer local
//  edit) or make it the new baseline in orig and only refresh checksums (newer pending edits,
//  or an untracked edit in main: the later local edit wins locally). A result failing
//  es_local_check_result: 0 without change when its change is gone, else -1. 0 or -1.
int es_local_apply_result(es_txn_t *txn, const char *service, const es_local_result_t *r,
                          bool remove, es_err_t *err);

//  Encode/decode a hist value (exposed for tests and the upload actor).
void es_local_change_encode(const es_local_change_t *c, es_buf_t *out);
int es_local_change_decode(es_local_change_t *c, uint64_t rsn, const void *val, size_t len,
                           es_err_t *err);

#endif
