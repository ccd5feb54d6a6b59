//  es_msg - the message catalogue and its MessagePack codec. One frame per message:
//  [version, type, request_id, {field: value, ...}]. Bodies are defined once in es_msg.def.
#ifndef ES_MSG_H
#define ES_MSG_H
#include "common/es_buf.h"
#include "common/es_err.h"
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ES_MSG_VERSION 1
#define ES_MSG_MAX_SIZE (4u << 20) //  ZMQ_MAXMSGSIZE of every socket
#define ES_NAME_MAX 128           //  service, object, session names
#define ES_KIND_MAX 16            //  actor kinds, levels, phases, states

typedef enum {
#define ES_MSG(NAME, id, body) ES_MSG_##NAME = id,
#include "protocol/es_msg.def"
#undef ES_MSG
} es_msg_type_t;

//  Borrowed bytes: on decode they point into the received frame and stay valid as long as it.
typedef struct {
    const char *ptr;
    size_t len;
} es_slice_t;

typedef struct {
    char kind[ES_KIND_MAX + 1]; //  upload | download | reconcile | stats
    uint32_t pid;               //  process id
    uint32_t worker;            //  worker index within its kind
} es_hello_t;

typedef struct {
    uint8_t unused; //  no fields
} es_stop_t;

typedef struct {
    bool busy; //  a job is running
} es_heartbeat_t;

typedef struct {
    int32_t code;    //  0, an es_code_t, or a Volt MX error code (2000-2999)
    es_slice_t what; //  error text, empty on success
    es_slice_t body; //  JSON text, may be empty
} es_reply_t;

typedef struct {
    char session[ES_NAME_MAX + 1]; //  session id
    int32_t code;                  //  0 success, else the Volt MX error code
    es_slice_t body;               //  success or failure object as JSON (SPEC 4.3/4.4)
} es_result_t;

typedef struct {
    char session[ES_NAME_MAX + 1]; //  session id
    es_slice_t body;               //  the progress event as JSON (SPEC 4.1 keys + "session")
} es_event_t;

typedef struct {
    char level[ES_KIND_MAX + 1];   //  app | service | object
    char service[ES_NAME_MAX + 1]; //  object service ("" at app level)
    char object[ES_NAME_MAX + 1];  //  object ("" unless level object)
    es_slice_t options;            //  syncOptions as JSON text ("{}" if none)
} es_sync_t;

typedef struct {
    char session[ES_NAME_MAX + 1]; //  session to cancel
} es_cancel_t;

typedef struct {
    char session[ES_NAME_MAX + 1]; //  "" = daemon status; else that session's state
} es_status_t;

typedef struct {
    char service[ES_NAME_MAX + 1]; //  "" = every service the backend offers
} es_setup_t;

typedef struct {
    char service[ES_NAME_MAX + 1]; //  object service
    char object[ES_NAME_MAX + 1];  //  object
    es_slice_t pk;                 //  primary key as JSON (scalar or {col: v}); empty = all
    es_slice_t filter;             //  OData filter evaluated locally; empty = none
    uint32_t limit;                //  max records returned, 0 = no limit
    es_slice_t after;              //  key (JSON, like pk) of the last record of the previous
                                   //  page: records after it; empty = from the first
} es_get_t;

typedef struct {
    char entity[ES_NAME_MAX + 1]; //  object or service name; "" = all entities
} es_stats_t;

typedef struct {
    char entity[ES_NAME_MAX + 1]; //  object or service name, "application"; "" = all runs
    uint32_t limit;               //  newest runs returned, 0 = all kept
} es_history_t;

typedef struct {
    char op[ES_KIND_MAX + 1];      //  create | update | partialupdate | delete | pending |
                                   //  rollback | clear | markforupload
    char service[ES_NAME_MAX + 1]; //  object service ("" = every service: rollback, pending)
    char object[ES_NAME_MAX + 1];  //  object ("" = every object of the service)
    es_slice_t pk;                 //  primary key as JSON (scalar or {col: v}); empty = none
    es_slice_t record;             //  record as a JSON object (create, update); empty = none
    es_slice_t options;            //  CRUD options JSON (trackChanges, markForUpload, ...)
} es_local_t;

typedef struct {
    char session[ES_NAME_MAX + 1]; //  session id
    uint64_t job;                  //  job id within the session
    char service[ES_NAME_MAX + 1]; //  object service
    char object[ES_NAME_MAX + 1];  //  object; "" = service-level request
    es_slice_t options;            //  normalised download options as JSON
} es_download_t;

typedef struct {
    char session[ES_NAME_MAX + 1]; //  session id
    uint64_t job;                  //  job id within the session
    char service[ES_NAME_MAX + 1]; //  object service
    char object[ES_NAME_MAX + 1];  //  object; "" = every object of the service
    es_slice_t options;            //  normalised options as JSON (uploadBatchSize, params, ...)
} es_upload_t;

typedef struct {
    char session[ES_NAME_MAX + 1]; //  session id
    uint64_t job;                  //  job id within the session
    char service[ES_NAME_MAX + 1]; //  object service
    char object[ES_NAME_MAX + 1];  //  the object whose download just completed
    es_slice_t options;            //  normalised options as JSON (filter, query params)
} es_reconcile_t;

typedef struct {
    char session[ES_NAME_MAX + 1]; //  session id
    uint64_t job;                  //  job id
    char phase[ES_KIND_MAX + 1];   //  Upload | Download | Reconcile
    char state[ES_KIND_MAX + 1];   //  Started | InProgress | Ended
    char object[ES_NAME_MAX + 1];  //  object the step is about
    uint32_t batch;                //  batch number, from 1
    uint32_t records;              //  records in this batch (Ended)
    uint64_t bytes;                //  response bytes of this batch
    uint32_t request_ms;           //  building the request
    uint32_t network_ms;           //  transfer time
    uint32_t parse_ms;             //  parsing time
    uint32_t persist_ms;           //  LMDB commit time
    uint32_t retries;              //  retries of this batch
    bool last;                     //  Ended of the object's last batch: its phase is complete
} es_progress_t;

typedef struct {
    char session[ES_NAME_MAX + 1]; //  session id
    uint64_t job;                  //  job id
    int32_t code;                  //  0 done, else Volt MX error code
    es_slice_t what;               //  error text
    es_slice_t result;             //  JSON: {"syncErrors":[...], "warnings":[...]} or empty
} es_job_done_t;

typedef struct {
    es_msg_type_t type;  //  which body is set
    uint64_t request_id; //  echoed by replies
    union {
#define ES_MSG(NAME, id, body) es_##body##_t body;
#include "protocol/es_msg.def"
#undef ES_MSG
    } u;
} es_msg_t;

//  Name of a type ("HELLO"), or "?".
const char *es_msg_name(es_msg_type_t type);
//  Zero msg and set its type and request id.
void es_msg_init(es_msg_t *msg, es_msg_type_t type, uint64_t request_id);
//  Encode msg, appending to out. -1 with err if a string field overflows or the type is unknown.
int es_msg_encode(const es_msg_t *msg, es_buf_t *out, es_err_t *err);
//  Decode one frame into msg. Slices point into data. -1 with err (ES_EPROTO) naming
//  "TYPE.field: what was expected" on any malformed input: wrong version, unknown type,
//  trailing bytes, missing field, wrong type, over-long string. Unknown keys are skipped;
//  a key given twice: the last value wins.
int es_msg_decode(es_msg_t *msg, const void *data, size_t len, es_err_t *err);

//  Send msg on a ZeroMQ socket, preceded by a routing frame when route is not NULL (ROUTER).
int es_msg_send(void *socket, const void *route, size_t route_len, const es_msg_t *msg,
                es_err_t *err);
//  Received message: owns its frames; msg slices point into them.
typedef struct {
    char route[256];  //  routing id (ROUTER sockets), route_len 0 otherwise
    size_t route_len; //  bytes of route
    es_buf_t frame;   //  the message frame
    es_msg_t msg;     //  decoded message
} es_msg_in_t;
void es_msg_in_init(es_msg_in_t *in);
void es_msg_in_release(es_msg_in_t *in);
//  Receive one message without blocking (ZMQ_DONTWAIT). with_route: expect a routing frame first.
//  1 received, 0 nothing waiting, -1 with err: a malformed message (already consumed whole, so
//  the caller logs and continues) or a socket error (code ES_ESYS).
int es_msg_recv(void *socket, bool with_route, es_msg_in_t *in, es_err_t *err);

#endif
