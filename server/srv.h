//  srv - the reference backend's private modules: data (store layout, generator, changes),
//  JSON helpers, download, upload, fault injection and the HTTP front end.
#ifndef SRV_H
#define SRV_H
#include "common/es_buf.h"
#include "common/es_err.h"
#include "protocol/es_meta.h"
#include "protocol/es_record.h"
#include "protocol/es_value.h"
#include "store/es_store.h"
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <yajl/yajl_parse.h>
#include <yajl/yajl_tree.h>

#define SRV_SERVICE "SampleSvc"
#define SRV_CS_MAX 32                   //  longest checksum text we write
#define SRV_CACHE_TTL_S (24 * 3600)     //  upload cache lifetime
#define SRV_OPSTATUS_IN_PROGRESS 500210 //  "request already in progress"

//  Command line settings.
typedef struct {
    const char *bind;       //  listen address of the service port ("127.0.0.1")
    int port;               //  service port (0 = pick one)
    int admin_port;         //  admin port on 127.0.0.1 (0 = pick one)
    const char *data_dir;   //  directory holding server.mdb
    const char *token;      //  required auth token, or NULL
    const char *policy;     //  "None" | "Client Wins" | "Server Wins"
    bool upload_cache;      //  advertise and honour the upload cache
    uint64_t seed;          //  generator and fault seed
    size_t max_body;        //  request body limit in bytes
    uint64_t gen_customer;  //  sample sizes
    uint64_t gen_product;   //  (Products)
    uint64_t gen_orderline; //  (OrderLines)
    bool supplier;          //  the service also has a Supplier object (named in --generate)
    uint64_t gen_supplier;  //  (Suppliers)
    const char *load;       //  JSON lines file loaded after generation, or NULL
    const char *tls_cert;   //  PEM certificate: the service port speaks HTTPS; NULL = plain
    const char *tls_key;    //  its PEM private key (with tls_cert)
    const char *client_ca;  //  PEM CA: client certificates signed by it required, or NULL
} srv_opts_t;

// ---------------------------------------------------------------- data (srv_data.c)

typedef struct srv_data srv_data_t;

//  One stored row of rec:<Svc>.<Obj>, unpacked (pointers into the value).
typedef struct {
    uint64_t seq;         //  change sequence of the last change
    uint64_t cseq;        //  sequence at which the row was created
    bool deleted;         //  tombstone
    const char *checksum; //  hex text, not NUL-terminated
    size_t cslen;         //  its length
    const void *rec;      //  es_record MessagePack map (last content, also for tombstones)
    size_t len;           //  its length
} srv_row_t;

//  Open the store, build the metadata, generate and load the sample data unless the store
//  already holds data made from the same arguments. NULL with err.
srv_data_t *srv_data_new(const srv_opts_t *opts, es_err_t *err);
void srv_data_destroy(srv_data_t **self_p);
//  Drop everything (records, change logs, counters, upload cache) and regenerate.
int srv_data_reset(srv_data_t *self, es_err_t *err);

es_store_t *srv_data_store(srv_data_t *self);
const es_meta_t *srv_data_meta(srv_data_t *self);
//  Metadata document text (borrowed).
const char *srv_data_meta_json(srv_data_t *self);

//  Table names (borrowed; "rec:<Svc>.<Obj>", "chg:<Svc>.<Obj>"), by object index.
const char *srv_data_rec_table(srv_data_t *self, size_t obj);
const char *srv_data_chg_table(srv_data_t *self, size_t obj);
#define SRV_CNT_TABLE "cnt:" SRV_SERVICE
#define SRV_UPC_TABLE "upc:" SRV_SERVICE

//  Read one row by key. 1 found, 0 absent, -1 error.
int srv_data_get(srv_data_t *self, es_txn_t *txn, size_t obj, const void *key, size_t klen,
                 srv_row_t *row, es_err_t *err);
int srv_row_unpack(const void *val, size_t vlen, srv_row_t *row);
//  Current max change sequence of the service (0 if none). -1 on error.
int srv_data_max_seq(srv_data_t *self, es_txn_t *txn, uint64_t *seq, es_err_t *err);
#define SRV_MAX_OBJECTS 16

//  The counters (change sequence, auto-generated keys) of one write transaction held in
//  memory: a batch of rows reads and writes each counter once instead of once a row. Zero it
//  at the start of each run of the transaction body (es_store_write may run it again) and
//  flush it before the body returns; while it holds a counter, nothing in that transaction may
//  read the counter from the store. Where the functions below take it, NULL reads and writes
//  the store directly.
typedef struct {
    bool seq_loaded, seq_dirty;
    uint64_t seq;
    bool auto_loaded[SRV_MAX_OBJECTS], auto_dirty[SRV_MAX_OBJECTS];
    uint64_t autos[SRV_MAX_OBJECTS];
} srv_counters_t;
//  Write the changed counters of c into txn. 0 or -1.
int srv_data_counters_flush(srv_data_t *self, es_txn_t *txn, srv_counters_t *c, es_err_t *err);
//  Write rec under key (or a tombstone holding rec when deleted): assigns the next sequence,
//  moves the change log entry, writes a fresh checksum into cs (NUL-terminated).
int srv_data_put(srv_data_t *self, es_txn_t *txn, srv_counters_t *c, size_t obj, const void *key,
                 size_t klen, const void *rec, size_t len, bool deleted, char cs[SRV_CS_MAX + 1],
                 es_err_t *err);
//  srv_data_put over the row the caller read in this transaction with srv_data_get (old, or
//  NULL when absent; only its seq, cseq and deleted are used): saves reading it again.
int srv_data_put_over(srv_data_t *self, es_txn_t *txn, srv_counters_t *c, size_t obj,
                      const void *key, size_t klen, const void *rec, size_t len, bool deleted,
                      const srv_row_t *old, char cs[SRV_CS_MAX + 1], es_err_t *err);
//  Next value of the auto-generated key counter of obj (greater than every existing key).
int srv_data_next_auto(srv_data_t *self, es_txn_t *txn, srv_counters_t *c, size_t obj, int64_t *out,
                       es_err_t *err);
//  Note that key value v of obj's auto-generated column exists (raises the counter).
int srv_data_seen_auto(srv_data_t *self, es_txn_t *txn, srv_counters_t *c, size_t obj, int64_t v,
                       es_err_t *err);
//  Index of object name in the metadata, or -1.
int srv_data_object_index(srv_data_t *self, const char *name);

// ---------------------------------------------------------------- JSON (srv_json.c)

//  Member of a yajl object, or NULL.
yajl_val srv_json_get(yajl_val obj, const char *key);
//  Scalar node to value (strings borrowed from the node). -1 if object or array.
int srv_json_value(yajl_val v, es_value_t *out);
//  Append a scalar node as JSON text ("null" for objects/arrays).
void srv_json_write(es_buf_t *out, yajl_val v);
//  Append a value as JSON text.
void srv_json_write_value(es_buf_t *out, const es_value_t *v);
//  Parse a request body (empty = {}); NULL with err naming the problem. Root must be an object,
//  nested at most SRV_JSON_MAX_DEPTH levels (a deeper body gets SRV_JSON_DEPTH_MSG).
yajl_val srv_json_parse(const char *body, size_t len, es_err_t *err);
#define SRV_JSON_MAX_DEPTH 64
#define SRV_JSON_DEPTH_MSG "body: nested deeper than 64 levels"
//  The text srv_json_parse parses: body, or "{}" when it is only whitespace. NULL with err if
//  the body holds a NUL byte. *tlen gets the text's length.
const char *srv_json_body_text(const char *body, size_t len, size_t *tlen, es_err_t *err);
//  Configure a yajl handle for request bodies as srv_json_parse does (comments allowed).
void srv_json_config(yajl_handle h);
//  Set err to "malformed JSON body: <first line of yajl's error>" for a failed parse of text.
void srv_json_error(yajl_handle h, const char *text, size_t len, es_err_t *err);
//  A JSON number token (s[0..len), as yajl lexed it) as the tree sees it: ES_V_INT when plain
//  digits within int64 (not -2^63), else ES_V_DOUBLE when strtod takes it without ERANGE;
//  -1 when neither (a node srv_json_value refuses).
int srv_json_number(const char *s, size_t len, es_value_t *out);

// ---------------------------------------------------------------- stats and shared state

typedef enum {
    SRV_K_APPCONFIG,
    SRV_K_METADATA,
    SRV_K_DOWNLOAD,
    SRV_K_DOWNLOAD_SVC,
    SRV_K_KEYS,
    SRV_K_UPLOAD,
    SRV_K_ADMIN,
    SRV_K_UNAUTHORIZED,
    SRV_K_ERROR,
    SRV_K_FAULT,
    SRV_K_COUNT
} srv_kind_t;

typedef struct {
    pthread_mutex_t lock;               //  guards every counter below
    uint64_t requests[SRV_K_COUNT];     //  requests served by kind
    uint64_t applied[SRV_MAX_OBJECTS];  //  upload records applied per object
    uint64_t rejected[SRV_MAX_OBJECTS]; //  upload records rejected per object
    uint64_t conflicts;                 //  conflicts detected (Client/Server Wins)
    uint64_t cache_hits;                //  upload cache repeats answered from the cache
    uint64_t cache_in_progress;         //  repeats refused as in progress
} srv_stats_t;

void srv_stats_count(srv_stats_t *self, srv_kind_t kind);

typedef struct srv_fault srv_fault_t;

//  Everything a request handler needs.
typedef struct {
    const srv_opts_t *opts; //  settings
    srv_data_t *data;       //  store and metadata
    srv_stats_t *stats;     //  counters
    srv_fault_t *faults;    //  fault rules
    volatile int *stopping; //  set on shutdown: sleeps end early
} srv_t;

//  A response: status, JSON body, optional Retry-After.
typedef struct {
    int status;           //  HTTP status
    es_buf_t body;        //  response body
    int retry_after;      //  Retry-After seconds when > 0
    uint32_t apply_delay; //  (upload) sleep this many ms after marking a cached request
} srv_resp_t;

//  Set resp to the Foundry error shape {"opstatus":op,"errmsg":...,"httpStatusCode":status}.
void srv_resp_error(srv_resp_t *resp, int status, int opstatus, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

// ---------------------------------------------------------------- download / upload

//  Query parameters of a download request (borrowed).
typedef struct {
    const char *batchsize; //  $batchsize or NULL
    const char *filter;    //  $filter or NULL
    const char *select;    //  $select or NULL
    const char *offline;   //  offline or NULL
} srv_query_t;

//  Object level download (obj = index) or service level (obj = -1). Fills resp.
void srv_download(srv_t *srv, int obj, const srv_query_t *q, const char *body, size_t len,
                  srv_resp_t *resp);
//  Upload at object level (obj index) or service level (-1); cache_id may be NULL.
void srv_upload(srv_t *srv, int obj, const char *cache_id, const char *body, size_t len,
                srv_resp_t *resp);
//  Remove in-progress marks and expired entries from the upload cache (startup).
int srv_upload_cache_sweep(srv_t *srv, es_err_t *err);

//  Admin record edit: body {"op":"create|update|delete","record":{...}}.
void srv_admin_edit(srv_t *srv, int obj, const char *body, size_t len, srv_resp_t *resp);
//  Admin listing: every live record of obj, one JSON object per line, in key order.
void srv_admin_list(srv_t *srv, int obj, srv_resp_t *resp);

//  Build a record map from a JSON object node for obj. Unknown columns and "_metadata"-like
//  keys starting with '_' are skipped only when skip_meta; other unknown columns are errors.
//  base (may be NULL) supplies columns the node does not set (partial update).
//  ov_col (may be NULL) is set to ov after the node's columns (assigned auto-generated keys).
int srv_record_build(es_record_builder_t *b, const es_meta_object_t *obj, yajl_val node,
                     const void *base, size_t blen, const char *ov_col, const es_value_t *ov,
                     es_buf_t *out, es_err_t *err);
//  -1 with err naming the first non-nullable, non-auto column that rec lacks.
int srv_record_check_required(const es_meta_object_t *obj, const void *rec, size_t len,
                              es_err_t *err);

// ---------------------------------------------------------------- faults (srv_fault.c)

typedef enum {
    SRV_F_NONE = 0,
    SRV_F_LATENCY,
    SRV_F_HTTP_500,
    SRV_F_HTTP_503,
    SRV_F_HTTP_429,
    SRV_F_HANG,
    SRV_F_DROP,
    SRV_F_TRUNCATE,
    SRV_F_MALFORMED,
    SRV_F_LOST_RESPONSE,
    SRV_F_APPLY_DELAY,
    SRV_F_BODY,
} srv_fkind_t;

//  A hostile response body (srv_hostile.c), shared by a rule and the requests it hit.
typedef struct srv_body srv_body_t;

//  What the fault rules decided for one request.
typedef struct {
    uint32_t latency_ms; //  sleep before handling (sum of firing latency rules)
    srv_fkind_t action;  //  first firing non-latency rule, or SRV_F_NONE
    uint32_t ms;         //  hang / apply_delay duration
    int retry_after;     //  429 Retry-After seconds
    srv_body_t *body;    //  SRV_F_BODY: what to answer (a reference: srv_body_release it)
} srv_fault_hit_t;

srv_fault_t *srv_fault_new(uint64_t seed);
void srv_fault_destroy(srv_fault_t **self_p);
//  Replace the rules from JSON {"seed":n,"rules":[{"kind":..., ...}]}. -1 with err (rules kept).
int srv_fault_set(srv_fault_t *self, const char *json, size_t len, es_err_t *err);
//  Drop every rule.
void srv_fault_clear(srv_fault_t *self);
//  Append the rules and their counters as JSON.
void srv_fault_dump(srv_fault_t *self, es_buf_t *out);
//  Decide for a request (path, method override or HTTP method).
void srv_fault_pick(srv_fault_t *self, const char *path, const char *method, srv_fault_hit_t *hit);
uint64_t srv_fault_fired(srv_fault_t *self);

//  Body rule members of rules[idx] ("status", "text", "parts", "set", "replace", "bytes").
//  NULL with err naming the member.
srv_body_t *srv_body_parse(yajl_val rule, size_t idx, es_err_t *err);
srv_body_t *srv_body_ref(srv_body_t *self);
void srv_body_release(srv_body_t **self_p);
//  HTTP status the rule sends, 0 to keep the real one.
int srv_body_status(const srv_body_t *self);
//  A generated body (parts): true and its size in *total.
bool srv_body_generated(const srv_body_t *self, uint64_t *total);
//  Up to max bytes of the generated body from pos (fewer only at its end).
size_t srv_body_read(const srv_body_t *self, uint64_t pos, char *buf, size_t max);
//  Replace (text) or edit (set, replace) the real answer in r, and its status if the rule says.
void srv_body_rewrite(const srv_body_t *self, srv_resp_t *r);

//  Sleep ms milliseconds, waking early when *stopping becomes set.
void srv_sleep_ms(volatile int *stopping, uint32_t ms);

// ---------------------------------------------------------------- HTTP (srv_http.c)

typedef struct srv_http srv_http_t;
//  Start both listeners. NULL with err.
srv_http_t *srv_http_new(srv_t *srv, es_err_t *err);
void srv_http_destroy(srv_http_t **self_p);
int srv_http_port(srv_http_t *self);
int srv_http_admin_port(srv_http_t *self);

#endif
