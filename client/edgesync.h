//  edgesync.h - libedgesync, the C client of the edgesync daemon (edgesyncd): start syncs at
//  application, object-service or object level with Volt MX-style callbacks, and query the daemon.
//  Self-contained: needs only this header and -ledgesync. One client is used by one thread.
#ifndef EDGESYNC_H
#define EDGESYNC_H
#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define ES_CLIENT_NAME_MAX 128 //  longest service, object or session name accepted

//  Library error codes (es_client_last_code). A positive value is the code the daemon replied
//  with (an edgesync code, or a Volt MX code such as 2461); the reply body, if any, is kept.
typedef enum {
    ES_CLIENT_OK = 0,
    ES_CLIENT_EINVAL = -1,       //  bad argument (NULL, empty or over-long name, bad endpoint)
    ES_CLIENT_EUNREACHABLE = -2, //  daemon not running: ipc socket file missing
    ES_CLIENT_ETIMEOUT = -3,     //  no reply in time, or the daemon stopped answering mid-sync
    ES_CLIENT_EPROTO = -4,       //  malformed or unexpected message from the daemon
    ES_CLIENT_ESYS = -5,         //  ZeroMQ or operating system failure
    ES_CLIENT_EINTR = -6,        //  interrupted: the flag given to es_client_set_interrupt was set
    ES_CLIENT_ENOSESSION = -7,   //  the daemon no longer knows the session being waited for
    ES_CLIENT_EAUTH = -8,        //  the daemon refused the connection: CURVE key not authorised,
                                 //  or security mismatch (CURVE on one side only)
} es_client_code_t;

typedef struct es_client es_client_t;

//  Callback of a sync: json is the success object, failure object or progress event (SPEC 4),
//  NUL-terminated, valid only during the call.
typedef void(es_sync_cb)(void *ctx, const char *json);

//  Callback of es_client_subscribe: topic is "progress.<session>" or "result.<session>", json
//  the event or result JSON (valid during the call). Return nonzero to stop listening.
typedef int(es_event_cb)(void *ctx, const char *topic, const char *json);

//  Connect to the daemon's command socket. timeout_ms bounds each request's reply (<= 0: 5000).
//  For ipc:// endpoints the socket file must exist. NULL on failure (see es_client_last_error).
es_client_t *es_client_new(const char *cmd_endpoint, int timeout_ms);
//  Like es_client_new, for a daemon whose network (tcp://) endpoints use ZeroMQ CURVE. Keys are
//  Z85 text (40 characters, as in the files of `edgesync keygen`): server_public is the daemon's
//  public key, client_secret this client's secret key, client_public its public key (NULL:
//  derived from the secret); the daemon must list client_public in its allow-list. CURVE applies
//  to the command socket and to es_client_subscribe's event socket when their endpoint is not
//  ipc:// (the daemon's ipc sockets stay plain). The secret is copied, and wiped at destroy.
es_client_t *es_client_new_curve(const char *cmd_endpoint, int timeout_ms, const char *server_public,
                                 const char *client_public, const char *client_secret);
//  Close the connection and set *self_p to NULL. Safe on NULL, safe twice.
void es_client_destroy(es_client_t **self_p);

//  Text and code of the last failure in this thread ("" and ES_CLIENT_OK after a success).
const char *es_client_last_error(void);
int es_client_last_code(void);
//  Body of the daemon's last error reply (often a failure object JSON), or NULL. Borrowed: valid
//  until the next call on self.
const char *es_client_last_body(const es_client_t *self);

//  While waiting for a sync's RESULT: after probe_ms without any message, ask the daemon for the
//  session's status (repeated every probe_ms); give up with ES_CLIENT_ETIMEOUT when nothing at
//  all has arrived for dead_ms. Defaults 3000 / max(3 * timeout, 15000). Values <= 0 keep them.
void es_client_set_keepalive(es_client_t *self, int probe_ms, int dead_ms);
//  Blocking calls return -1 with ES_CLIENT_EINTR soon after *flag becomes nonzero (set it from a
//  signal handler installed without SA_RESTART). Borrowed; NULL to disable.
void es_client_set_interrupt(es_client_t *self, volatile sig_atomic_t *flag);

//  Start a sync and block until it ends. options_json: syncOptions (NULL = "{}"), validated by the
//  daemon. on_progress gets each progress event; exactly one of on_success / on_failure is called
//  when the sync ended (any may be NULL). Returns 0 if the sync succeeded (possibly with
//  syncErrors), 1 if it failed (on_failure got the failure object), -1 if the daemon could not
//  be reached or broke the protocol (no callback; see es_client_last_error).
int es_obj_start_sync(es_client_t *self, const char *service, const char *object,
                      const char *options_json, es_sync_cb *on_success, es_sync_cb *on_failure,
                      es_sync_cb *on_progress, void *ctx);
int es_objsvc_start_sync(es_client_t *self, const char *service, const char *options_json,
                         es_sync_cb *on_success, es_sync_cb *on_failure, es_sync_cb *on_progress,
                         void *ctx);
int es_app_start_sync(es_client_t *self, const char *options_json, es_sync_cb *on_success,
                      es_sync_cb *on_failure, es_sync_cb *on_progress, void *ctx);

//  Requests: each returns the reply body JSON (caller frees), or NULL on failure with
//  es_client_last_error / es_client_last_code / es_client_last_body.
//  Fetch and store metadata; service NULL or "" = every service. {"services":[...]}
char *es_client_setup(es_client_t *self, const char *service);
//  Read local records: pk_json NULL = all, filter NULL = none (OData), limit 0 = no limit.
//  {"records":[...]}
char *es_client_get(es_client_t *self, const char *service, const char *object, const char *pk_json,
                    const char *filter, uint32_t limit);
//  Daemon status (session NULL or ""), or that session's state JSON.
char *es_client_status(es_client_t *self, const char *session);
//  Last sync stats of an entity (NULL or "" = all entities).
char *es_client_stats(es_client_t *self, const char *entity);
//  Past sync runs, newest first, as a JSON array: at most limit (0 = all kept), only those of
//  entity (object, service or "application"; NULL or "" = every run). Each run: id, session,
//  entity, level, options, result ("ok" | "failed" | "cancelled"), code, message (failures),
//  uploaded, downloaded, reconciledDeletes, bytesUploaded, bytesDownloaded, batchesUploaded,
//  batchesDownloaded, retries, errors, start, end (ms since the epoch), durationMs, phases
//  ({"Upload": ms, "Download": ms, "Reconcile": ms}, the phases that ran).
char *es_client_history(es_client_t *self, const char *entity, uint32_t limit);
//  Cancel a running session.
char *es_client_cancel(es_client_t *self, const char *session);

//  Local data (SPEC 1.4, 3.7). JSON texts are checked before anything is sent: record and
//  options must be JSON objects, a primary key a JSON string, number or object ({"col": v}
//  for composite keys); NULL or "" = not given (options then default to {}). A change the
//  daemon refuses fails with its code (e.g. 2314 record has deferred changes, 1 invalid,
//  5 not found) and text.
//  The generic call: op is create | update | partialupdate | delete | pending | rollback |
//  clear | markforupload; which of the other arguments it needs is as in the wrappers below.
char *es_client_local(es_client_t *self, const char *op, const char *service, const char *object,
                      const char *pk_json, const char *record_json, const char *options_json);
//  Create a record. options: {"trackChanges":bool,"markForUpload":bool}. {"pk":{...}}, with a
//  temporary negative id for auto-generated key columns.
char *es_client_create(es_client_t *self, const char *service, const char *object,
                       const char *record_json, const char *options_json);
//  Replace every non-key column of the record with key pk. {}
char *es_client_update(es_client_t *self, const char *service, const char *object,
                       const char *pk_json, const char *record_json, const char *options_json);
//  Merge the given columns into the record with key pk. {}
char *es_client_partial_update(es_client_t *self, const char *service, const char *object,
                               const char *pk_json, const char *record_json,
                               const char *options_json);
//  Delete the record with key pk. {}
char *es_client_delete(es_client_t *self, const char *service, const char *object,
                       const char *pk_json, const char *options_json);
//  Keys of the records with changes waiting for upload; service NULL = every service, object
//  NULL = every object of the service. {"pendingSyncRecords":[...]} (per object map when wider).
char *es_client_pending(es_client_t *self, const char *service, const char *object);
//  Undo local changes: everything (service NULL), a service, an object, or one record (pk).
//  {"rolledBack":N}
char *es_client_rollback(es_client_t *self, const char *service, const char *object,
                         const char *pk_json);
//  Delete local data (records, changes, delta context) of a service, an object or one record,
//  without tracking or uploading it. {"cleared":N}
char *es_client_clear(es_client_t *self, const char *service, const char *object,
                      const char *pk_json);
//  Turn deferred changes (made with markForUpload false) of a service or object into pending
//  ones. {"marked":N}
char *es_client_mark_for_upload(es_client_t *self, const char *service, const char *object);

//  Subscribe to the daemon's event socket (event_endpoint, a PUB) and call cb per message until
//  cb returns nonzero, or, when session is given, until that session's result arrived (also if
//  it had finished before: the status of the session is checked). session NULL = all sessions.
//  0 when stopped that way, -1 on failure (ES_CLIENT_EINTR when interrupted).
int es_client_subscribe(es_client_t *self, const char *event_endpoint, const char *session,
                        es_event_cb *cb, void *ctx);

//  --- results as a structure -------------------------------------------------------------
//  The success and failure objects given to on_success / on_failure (SPEC 4.3, 4.4), parsed.
//  Strings are never NULL ("" when the key is absent); numbers absent are 0.

//  One entry of syncErrors.upload or syncErrors.download: a record the backend refused.
typedef struct {
    int upload;           //  1: from syncErrors.upload, 0: from syncErrors.download
    char *object;         //  object of the record
    char *object_service; //  its object service
    char *primary_keys;   //  primaryKeys as JSON text ({"id":7}); "" for download errors
    int64_t opstatus;     //  the backend's opstatus
    char *errmsg;         //  the backend's message
} es_sync_error_t;

//  One batch of syncStats.uploadStats or downloadStats (SPEC 4.2 + D10); times in ms.
typedef struct {
    char *object;                  //  object the batch belongs to
    int64_t batch_number;          //  1, 2, ... per object
    int64_t number_of_records;     //  records in the batch
    int64_t request_creation_time; //  building the request
    int64_t network_duration_time; //  request sent to answer received
    int64_t response_parsing_time; //  parsing the answer
    int64_t data_persistance_time; //  committing it to the store (sic, as in the SDKs)
    int64_t bytes;                 //  body bytes received (download) or sent (upload)
    int64_t retries;               //  transient failures retried for this batch
} es_sync_batch_t;

//  syncStats, present only when getSyncStats was true.
typedef struct {
    char *name;                        //  object or object-service name
    int64_t start_time;                //  epoch ms
    int64_t sync_elapsed_time;         //  ms
    int64_t number_of_records_synced;  //  uploaded + downloaded
    int64_t total_uploaded_records;    //  records the backend accepted
    int64_t total_downloaded_records;  //  records received
    int64_t reconciled_deletes;        //  local rows removed by reconciliation (D6)
    int64_t upload_cache_replays;      //  cached upload requests sent again (D14)
    es_sync_batch_t *upload_stats;     //  one per upload batch
    size_t nupload_stats;              //  entries in upload_stats
    es_sync_batch_t *download_stats;   //  one per download batch
    size_t ndownload_stats;            //  entries in download_stats
} es_sync_stats_t;

typedef struct es_sync_result es_sync_result_t;
struct es_sync_result {
    int ok;                     //  1: success object (status 0), 0: failure object (status -1)
    int code;                   //  failure code (SPEC 4.5, e.g. 2477, 2460); 0 on success
    char *message;              //  failure message "<generic>: <details>"; "" on success
    char *domain;               //  "OfflineObjectsError" on failure
    char *name;                 //  object or object service (name / objectServiceName, or
                                //  userInfo's objectName / objectServiceName); "" at app level
    es_sync_stats_t *stats;     //  NULL unless the options asked for getSyncStats
    es_sync_error_t *errors;    //  syncErrors: upload entries first, then download
    size_t nerrors;             //  entries in errors (> 0 on success = partial failure)
    char **warnings;            //  options ignored or defaulted, unparsable filters
    size_t nwarnings;           //  entries in warnings
    es_sync_result_t *services; //  app level: each service's result, successResponse entries
                                //  first, then failureResponse entries; name = the service
    size_t nservices;           //  entries in services
};

//  Parse a success or failure object (NUL-terminated JSON) into a new result. NULL if json is
//  not such an object, with es_client_last_error naming what was wrong. Caller destroys it.
es_sync_result_t *es_sync_result_new(const char *json);
//  Free the result and set *self_p to NULL. Safe on NULL, safe twice.
void es_sync_result_destroy(es_sync_result_t **self_p);

#ifdef __cplusplus
}
#endif
#endif
