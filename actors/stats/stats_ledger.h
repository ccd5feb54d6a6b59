//  stats_ledger - which finished sessions the run ledger already holds, so that each is recorded
//  exactly once. Table "hist_rec": session id -> run id (u64 LE), written in the transaction
//  that appends the ledger row. es-stats records sessions from the rows the daemon stores in
//  "session" (state "done", with the result), found by stats_ledger_due, so a result published
//  while es-stats was down is recorded when it is back (stats_record).
#ifndef STATS_LEDGER_H
#define STATS_LEDGER_H
#include "common/es_err.h"
#include "protocol/es_msg.h"
#include "store/es_store.h"
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <yajl/yajl_tree.h>

#define STATS_LEDGER_TABLE "hist_rec"

//  A finished session not in the ledger yet, or a stored row that looks done but is not a JSON
//  object (malformed: it can never be recorded from its row).
typedef struct {
    char id[ES_NAME_MAX + 1]; //  session id
    int64_t end_ms; //  its end (wall clock ms); its start if the row has no end (older daemon); 0
    bool malformed;
} stats_ledger_due_t;

//  On the first start over a store (no "stats.ledger" row in "metrics"), mark the sessions
//  already done that a version without markers recorded from result messages: those in the
//  ledger, and those that ended before its oldest row (they may have been dropped by its bound;
//  a row without endTime, from before it was stored, is judged by its start).
//  The others are left to stats_ledger_due. *marked (if not NULL) gets how many. 0 or -1.
int stats_ledger_init(es_store_t *store, size_t *marked, es_err_t *err);

//  Finished sessions without a marker, oldest end first, into *due (caller frees; NULL when
//  none) and *n, with the malformed rows (end 0, so first). Only rows without a marker are
//  parsed. Rows whose key cannot be a session id (empty, longer than ES_NAME_MAX) are counted
//  in *bad_keys (if not NULL). 0 or -1 with err.
int stats_ledger_due(es_store_t *store, stats_ledger_due_t **due, size_t *n, size_t *bad_keys,
                     es_err_t *err);

//  The stored row of session if it is done, parsed into *row (caller frees with
//  yajl_tree_free): 1; 0 if absent or not done; -1 with err (also when the row looks done but
//  is not a JSON object).
int stats_ledger_row(es_store_t *store, const char *session, yajl_val *row, es_err_t *err);

//  In txn: 1 if session is marked recorded, 0 if not, -1 with err.
int stats_ledger_has(es_txn_t *txn, const char *session, es_err_t *err);
//  In txn: mark session recorded as ledger run id. 0 or -1 with err.
int stats_ledger_mark(es_txn_t *txn, const char *session, uint64_t run, es_err_t *err);

//  Drop the markers of sessions whose row the daemon has pruned (it keeps the newest finished
//  ones): such a session can never be found again, so its marker has no use. Skipped while
//  there are no more markers than session rows, which keeps stale markers fewer than the
//  sessions running. *dropped (if not NULL) gets how many. 0 or -1 with err.
int stats_ledger_sweep(es_store_t *store, size_t *dropped, es_err_t *err);

#endif
