//  stats_history - what es-stats learns about each running session from its progress events
//  (bytes, batches, retries, when each phase ran), and the ledger row it writes when the
//  session's result arrives (store/es_runs). The figures are saved with the metrics so a
//  restarted es-stats continues them.
#ifndef STATS_HISTORY_H
#define STATS_HISTORY_H
#include "common/es_buf.h"
#include "common/es_err.h"
#include <stdint.h>
#include <yajl/yajl_tree.h>

typedef struct stats_history stats_history_t;

stats_history_t *stats_history_new(void);
void stats_history_destroy(stats_history_t **self_p);

//  One progress event (its JSON) of session at wall-clock time now_ms.
void stats_history_event(stats_history_t *self, const char *session, yajl_val ev, int64_t now_ms);

//  The ledger fields of a finished session ("k":v,... without braces, for es_runs_append) into
//  out, from the session row the daemon stored (may be NULL), the result's code and JSON body
//  (may be NULL), ended at now_ms; the session's figures are then forgotten. A session without
//  figures (its events were missed) gets them from the result's syncStats if it has them.
//  *entity gets the entity name (object, service or "application"; caller frees), *level the
//  level ("" if unknown).
void stats_history_finish(stats_history_t *self, const char *session, yajl_val row, int32_t code,
                          yajl_val result, int64_t now_ms, es_buf_t *out, char **entity,
                          char level[16]);

//  Running sessions' figures as text lines, appended to out; load replaces them. -1 with err
//  naming the line if malformed (then empty).
void stats_history_save(const stats_history_t *self, es_buf_t *out);
int stats_history_load(stats_history_t *self, const char *text, size_t len, es_err_t *err);

//  Sessions with figures (tests).
size_t stats_history_size(const stats_history_t *self);

#endif
