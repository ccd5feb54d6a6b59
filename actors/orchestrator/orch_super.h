//  orch_super - supervision of actor processes: fork/exec, HELLO, heartbeats, STOP with grace
//  then SIGKILL, reaping, and restart of an actor that exits or goes quiet.
#ifndef ORCH_SUPER_H
#define ORCH_SUPER_H
#include "common/es_buf.h"
#include "common/es_err.h"
#include "protocol/es_msg.h"
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

typedef enum { ACTOR_DOWN = 0, ACTOR_STARTING, ACTOR_READY, ACTOR_STOPPING } actor_state_t;

typedef struct {
    char kind[ES_KIND_MAX + 1];  //  upload | download | reconcile | stats
    uint32_t worker;             //  index within kind
    char route[64];              //  routing id "<kind>.<worker>"
    char exe[4096];              //  binary path
    pid_t pid;                   //  0 when not running
    actor_state_t state;         //  lifecycle
    int64_t started_ms;          //  spawn time (HELLO timeout)
    int64_t last_seen_ms;        //  last message (heartbeat timeout)
    int64_t stop_deadline_ms;    //  SIGKILL after this while stopping
    int64_t restart_at_ms;       //  earliest restart after a crash (backoff)
    uint32_t restarts;           //  how often it was restarted
    uint64_t job;                //  job running on it, 0 if idle
    bool busy;                   //  last heartbeat said busy
} actor_t;

typedef struct orch_super orch_super_t;

typedef struct {
    const char *endpoint;  //  work socket for actors to connect to
    const char *data_dir;  //  passed as --data-dir
    const char *config;    //  passed as --config, or NULL
    const char *bin_dir;   //  where es-<kind> binaries live
    int hello_timeout_ms;  //  an actor must say HELLO within this
    int heartbeat_timeout_ms; //  an actor silent this long is killed and restarted
    int grace_ms;          //  STOP grace before SIGKILL
} orch_super_opts_t;

//  Called when an actor goes down with the job it had (0 if none), so the job can be re-queued.
typedef void(orch_super_down_fn)(void *ctx, actor_t *actor, uint64_t job);

orch_super_t *orch_super_new(const orch_super_opts_t *opts, void *work_sock,
                             orch_super_down_fn *on_down, void *ctx);
void orch_super_destroy(orch_super_t **self_p);
//  Declare an actor; started by orch_super_tick.
void orch_super_add(orch_super_t *self, const char *kind, uint32_t worker);
//  A message from route arrived (HELLO marks it ready; anything counts as alive).
actor_t *orch_super_seen(orch_super_t *self, const char *route, size_t route_len,
                         const es_msg_t *msg);
//  Reap children (call on SIGCHLD) and handle timeouts, restarts, kills. Call every loop.
void orch_super_tick(orch_super_t *self);
//  An idle ready actor of kind, or NULL.
actor_t *orch_super_idle(orch_super_t *self, const char *kind);
//  Actor running job, or NULL.
actor_t *orch_super_by_job(orch_super_t *self, uint64_t job);
//  Actor by route, or NULL.
actor_t *orch_super_find(orch_super_t *self, const char *route, size_t route_len);
//  Send STOP to all, wait up to grace, then SIGKILL; reaps. Blocks (shutdown only).
void orch_super_stop_all(orch_super_t *self);
//  All declared actors are ready.
bool orch_super_all_ready(const orch_super_t *self);
//  How many declared actors are ready; *total gets how many are declared.
size_t orch_super_count_ready(const orch_super_t *self, size_t *total);
//  Status as a JSON array appended to out.
void orch_super_json(const orch_super_t *self, es_buf_t *out);
//  ms until the next deadline (for the poll timeout), at most cap.
int orch_super_next_ms(const orch_super_t *self, int cap);

#endif
