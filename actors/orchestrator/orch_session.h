//  orch_session - one sync session: its plan (objects and their phase), the progress events it
//  publishes, the stats it accumulates and the result it ends with. Persisted as JSON in the
//  "session" table at every step so a restarted daemon resumes it.
#ifndef ORCH_SESSION_H
#define ORCH_SESSION_H
#include "common/es_buf.h"
#include "protocol/es_msg.h"
#include <stdbool.h>
#include <stdint.h>

typedef enum { SOBJ_PENDING = 0, SOBJ_RUNNING, SOBJ_DONE, SOBJ_FAILED, SOBJ_SKIPPED } sobj_state_t;

typedef enum { SOBJ_DOWNLOAD = 0, SOBJ_UPLOAD = 1, SOBJ_RECONCILE = 2 } sobj_kind_t;

//  One job of the plan: the download of an object, the upload of a service's changes (name is
//  then the object of an object-level sync, or "" for every object of the service), or the
//  key-set reconciliation of an object after its download (D6).
typedef struct {
    sobj_kind_t kind;              //  download or upload
    char service[ES_NAME_MAX + 1]; //  object service
    char name[ES_NAME_MAX + 1];    //  object
    sobj_state_t state;            //  download phase of this object
    uint64_t job;                  //  job id while running (not persisted)
    uint32_t batches;              //  committed batches
    uint64_t records;              //  records downloaded (upload: uploaded)
    uint32_t attempts;             //  dispatches (a restart counts)
    int32_t code;                  //  failure code of this object, 0 if none
    char what[256];                //  its message
} sobj_t;

//  Batch entries kept for syncStats.downloadStats; past this the list is marked truncated.
#define ORCH_STATS_BATCHES_MAX 10000

typedef struct session {
    char id[ES_NAME_MAX + 1];      //  session id
    char level[ES_KIND_MAX + 1];   //  app | service | object
    char service[ES_NAME_MAX + 1]; //  entity service ("" at app level)
    char object[ES_NAME_MAX + 1];  //  entity object ("" unless object level)
    char sync_type[16];            //  fullSync | uploadOnly | downloadOnly
    bool get_stats;                //  syncStats wanted in the result
    bool sequential;               //  app level, syncMode sequential: one service at a time
    char *options;                 //  syncOptions JSON as given
    int64_t start_epoch_ms;        //  wall clock start
    int64_t end_epoch_ms;          //  wall clock end, set by finish (0 while running)
    int64_t start_mono_ms;         //  monotonic start (elapsed time)
    int64_t elapsed_ms;            //  syncElapsedTime, read once at finish for event and result
    sobj_t *objs;                  //  objects in the plan
    size_t nobjs;                  //  count
    es_buf_t batches;              //  downloadStats entries, comma-separated JSON objects
    uint32_t nbatches;             //  batches committed (entries in the "sbatch" table)
    uint32_t nkept;                //  entries in batches (at most ORCH_STATS_BATCHES_MAX)
    es_buf_t errors;               //  syncErrors.download entries
    es_buf_t warnings;             //  warnings, JSON strings
    uint64_t downloaded;           //  total records downloaded
    uint64_t uploaded;             //  total records uploaded (accepted by the server)
    uint32_t replays;              //  upload cache replays
    uint64_t reconciled;           //  local rows removed by reconciliation
    es_buf_t uerrors;              //  syncErrors.upload entries
    int32_t code;                  //  first failure code, 0 if none
    char *what;                    //  its message
    bool cancelled;                //  cancel requested
    bool done;                     //  result sent
    es_buf_t unsaved;              //  batch rows not yet in the store: [u32 seq][u32 len][json]
    bool dirty;                    //  state changed since the last write
    int64_t saved_ms;              //  when it was last written
    char *result;                  //  final result JSON once done
    //  The client waiting for EVENT/RESULT messages (lost on a daemon restart).
    char route[256];
    size_t route_len;
    uint64_t request_id;
    struct session *next;          //  list of sessions
} session_t;

session_t *orch_session_new(const char *id, const char *level, const char *service,
                            const char *object, const char *options);
void orch_session_destroy(session_t **self_p);
void orch_session_add_object(session_t *self, const char *service, const char *name);
//  Add the upload job of service (object: "" or the one object), before its downloads.
void orch_session_add_upload(session_t *self, const char *service, const char *object);
//  Add the reconciliation of an object, run after its download.
void orch_session_add_reconcile(session_t *self, const char *service, const char *object);
//  True if o must wait: a download whose service's upload has not ended, or a reconciliation
//  whose object's download has not ended.
bool orch_session_blocked(const session_t *self, const sobj_t *o);
sobj_t *orch_session_object(session_t *self, const char *service, const char *name);
//  True if the two sessions' entities overlap (same object, its service, or app level).
bool orch_session_overlaps(const session_t *self, const char *level, const char *service,
                           const char *object);
//  True when no object is pending or running.
bool orch_session_finished(const session_t *self);
//  Session state as JSON (for the store and STATUS); batch entries are not part of it.
void orch_session_to_json(const session_t *self, es_buf_t *out);
//  Rebuild from to_json's output. NULL if malformed.
session_t *orch_session_from_json(const char *json, size_t len);
//  Event JSON for a step; extra is a JSON fragment of more keys (",\"k\":v" form) or "".
void orch_session_event(const session_t *self, const char *phase, const char *state,
                        const char *name, const char *extra, es_buf_t *out);
//  Record one committed batch (download, or upload when p->phase is "Upload") of job o; entry
//  gets its downloadStats / uploadStats JSON (kept
//  apart from the session row so a long session does not rewrite a growing document).
void orch_session_batch(session_t *self, const sobj_t *o, const es_progress_t *p,
                        es_buf_t *entry);
//  Restore a batch entry written by orch_session_batch (after a restart).
void orch_session_add_batch(session_t *self, const char *json, size_t len);
//  Mark an object failed with its code and message (the session's first failure is kept too).
void orch_session_fail_object(session_t *self, sobj_t *o, int32_t code, const char *what,
                              size_t len);
//  Build the final success or failure object (SPEC 4.3/4.4; app level: successResponse and
//  failureResponse per service, 2460 if any failed) into self->result; returns the code.
//  Sets elapsed_ms, which the result's syncStats carry, for the Sync/Ended event to repeat.
int32_t orch_session_finish(session_t *self);

#endif
