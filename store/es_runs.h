//  es_runs - the ledger of past sync runs ("hist_runs" table; not "hist", the change log).
//  Key: run id as 8 bytes big-endian (monotonic, from 1); key 0 holds the next id. Value:
//  [u16 LE entity length][entity][JSON object of the run, starting {"id":N,...}]. The stats
//  actor appends one row per finished session; the daemon reads them for `edgesync history`.
#ifndef ES_RUNS_H
#define ES_RUNS_H
#include "common/es_buf.h"
#include "common/es_err.h"
#include "store/es_store.h"
#include <stddef.h>
#include <stdint.h>

#define ES_RUNS_TABLE "hist_runs"

//  Append a run in txn: fields is the inside of its JSON object without braces ("\"a\":1,...",
//  may be empty); the row becomes {"id":<new id>,<fields>}. Then drop the oldest rows beyond
//  max_runs (>= 1) in the same transaction. *id (if not NULL) gets the new id. 0 or -1 with err.
int es_runs_append(es_txn_t *txn, const char *entity, const char *fields, uint64_t max_runs,
                   uint64_t *id, es_err_t *err);

//  Append to out a JSON array of the newest runs first, at most limit (0 = all), only those of
//  entity when entity is not NULL or "". 0 or -1 with err.
int es_runs_list(es_txn_t *txn, const char *entity, size_t limit, es_buf_t *out, es_err_t *err);

//  Runs in the ledger. -1 on error.
int64_t es_runs_count(es_txn_t *txn, es_err_t *err);

#endif
