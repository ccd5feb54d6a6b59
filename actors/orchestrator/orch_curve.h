//  orch_curve - CURVE security of the daemon's network sockets: the server key pair, the
//  allow-list of client public keys, and the ZAP handler (RFC 27) that applies it, answered from
//  the orchestrator's loop. ipc:// sockets stay plain: their file mode (0600) guards them.
#ifndef ORCH_CURVE_H
#define ORCH_CURVE_H
#include "common/es_config.h"
#include "common/es_err.h"
#include <stdbool.h>

typedef struct orch_curve orch_curve_t;

//  True for endpoints that need CURVE: every transport but ipc://.
bool orch_curve_needed(const char *endpoint);
//  Load curve.secret_key_file and curve.allow_keys_file (config borrowed for the object's life)
//  and bind the ZAP handler in zctx; call before binding any CURVE socket. NULL with err naming
//  the option or file that is missing or wrong.
orch_curve_t *orch_curve_new(void *zctx, const es_config_t *config, es_err_t *err);
void orch_curve_destroy(orch_curve_t **self_p);
//  Make socket a CURVE server; name ("command", "event") tells its ZAP requests apart in logs.
int orch_curve_apply(orch_curve_t *self, void *socket, const char *name, es_err_t *err);
//  The ZAP socket's file descriptor, for the loop's poll, and whether a request is waiting.
int orch_curve_fd(const orch_curve_t *self);
bool orch_curve_readable(orch_curve_t *self);
//  Answer every waiting ZAP request: 200 for an allowed key, else 400 and a (rate-limited)
//  warning naming the public key. Never blocks.
void orch_curve_handle(orch_curve_t *self);
//  Reread the allow-list; on error the previous list stays in force. -1 with err.
int orch_curve_reload(orch_curve_t *self, es_err_t *err);

#endif
