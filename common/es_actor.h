//  es_actor - the runtime of an actor process: argv, signals via signalfd, the DEALER socket to
//  the orchestrator, HELLO and heartbeats, and one non-blocking loop step (ZeroMQ + libcurl).
#ifndef ES_ACTOR_H
#define ES_ACTOR_H
#include "common/es_err.h"
#include "common/es_http.h"
#include "protocol/es_msg.h"
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <zmq.h>

typedef struct {
    char endpoint[512];      //  orchestrator's work socket (--endpoint)
    char data_dir[PATH_MAX]; //  store directory (--data-dir)
    char config[PATH_MAX];   //  config file, "" for defaults (--config)
    uint32_t worker;         //  worker index (--worker)
} es_actor_opts_t;

//  Parse "--endpoint EP --data-dir DIR [--config FILE] [--worker N]". -1 with err (usage text).
int es_actor_opts_parse(es_actor_opts_t *opts, int argc, char *argv[], es_err_t *err);

typedef struct es_actor es_actor_t;

//  Block SIGTERM/SIGINT into a signalfd, ask for SIGTERM when the parent dies, connect a DEALER
//  (routing id "<kind>.<worker>") and send HELLO. NULL with err.
es_actor_t *es_actor_new(const char *kind, const es_actor_opts_t *opts, int heartbeat_ms,
                         es_err_t *err);
void es_actor_destroy(es_actor_t **self_p);

//  Send msg to the orchestrator. 0 or -1 with err.
int es_actor_send(es_actor_t *self, const es_msg_t *msg, es_err_t *err);

//  Called for each message from the orchestrator (STOP is handled by the runtime too: it sets
//  terminated after fn runs). msg is valid during the call only.
typedef void(es_actor_msg_fn)(void *ctx, const es_msg_t *msg);

//  Wait up to timeout_ms for a message, a signal or (if http is not NULL) network activity, then
//  dispatch messages, advance transfers and send a heartbeat when due. -1 with err on a fatal
//  socket error.
int es_actor_step(es_actor_t *self, es_http_t *http, int timeout_ms, es_actor_msg_fn *fn,
                  void *ctx, es_err_t *err);
//  Like es_actor_step without http, also waiting on n more poll items of the caller (a SUB
//  socket, a listening fd); their revents are set on return. -1 with err on a fatal error.
int es_actor_step_poll(es_actor_t *self, zmq_pollitem_t *extra, int n, int timeout_ms,
                       es_actor_msg_fn *fn, void *ctx, es_err_t *err);
//  STOP received, SIGTERM/SIGINT seen or the parent died.
bool es_actor_terminated(const es_actor_t *self);
//  Send a heartbeat now (before work that may take a while). Failures are logged only.
void es_actor_beat(es_actor_t *self);
//  Reported in heartbeats.
void es_actor_set_busy(es_actor_t *self, bool busy);

//  Milliseconds of a monotonic clock.
int64_t es_now_ms(void);
//  Milliseconds since the epoch (wall clock: for timestamps people read, not for intervals).
int64_t es_epoch_ms(void);

#endif
