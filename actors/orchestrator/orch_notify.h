//  orch_notify - tells systemd how edgesyncd is doing (the sd_notify(3) datagram protocol, without
//  libsystemd): READY=1 once every actor said HELLO, STATUS= lines, WATCHDOG=1 pings while the
//  supervisor loop turns, STOPPING=1 on shutdown. Does nothing when NOTIFY_SOCKET is unset.
#ifndef ORCH_NOTIFY_H
#define ORCH_NOTIFY_H
#include "common/es_err.h"
#include <stddef.h>

typedef struct orch_notify orch_notify_t;

//  Reads NOTIFY_SOCKET, WATCHDOG_USEC and WATCHDOG_PID and unsets them (actors must not inherit
//  them). NULL with err naming the variable if one is malformed.
orch_notify_t *orch_notify_new(es_err_t *err);
void orch_notify_destroy(orch_notify_t **self_p);
//  Call every loop turn with how many of the total actors are ready: sends READY=1 the first
//  time all are, a STATUS= line whenever the count changes, WATCHDOG=1 when one is due.
void orch_notify_tick(orch_notify_t *self, size_t ready, size_t total);
//  ms until the next watchdog ping is due, at most cap (for the poll timeout).
int orch_notify_next_ms(const orch_notify_t *self, int cap);
//  Shutdown has begun: STOPPING=1.
void orch_notify_stopping(orch_notify_t *self);

#endif
