//  stats_record - how es-stats records a finished session: the entity's syncStats, the counters,
//  a ledger row and the session's marker (stats_ledger) in one durable transaction, each session
//  once. A result message is recorded from the session's stored row, or from the message when
//  the row is absent or unusable; a catch-up look records the finished sessions whose results
//  were missed, a bounded number per look, and passes over rows it cannot record (malformed, or
//  whose recording failed) until the process restarts, so they neither stall newer sessions nor
//  make it spin.
#ifndef STATS_RECORD_H
#define STATS_RECORD_H
#include "actors/stats/stats_history.h"
#include "actors/stats/stats_metrics.h"
#include "common/es_err.h"
#include "store/es_store.h"
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define STATS_RECORD_SNAPSHOT_KEY "stats.snapshot" //  "metrics" table: counters and histograms
#define STATS_RECORD_RUNS_KEY "stats.runs"         //  "metrics" table: running sessions' figures
//  Sessions passed over until restart (ring: the oldest is forgotten first). Above the rows
//  the daemon keeps (100 finished + running), so a full ring only drops pruned sessions.
#define STATS_RECORD_SKIP_MAX 256

typedef struct stats_record stats_record_t;

//  What one catch-up look did.
typedef struct {
    size_t recorded;  //  sessions recorded
    size_t malformed; //  rows found malformed at this look (warned, then passed over)
    size_t failed;    //  sessions whose recording failed at this look (logged, passed over)
    size_t skipped;   //  sessions passed over, found bad or failed at an earlier look
    bool more;        //  due sessions were left and this look recorded some: look again at once
} stats_catchup_t;

//  A recorder writing to store, counting in metrics, ending history's running sessions; the
//  ledger keeps max_runs (>= 1) rows. Borrows all three.
stats_record_t *stats_record_new(es_store_t *store, stats_metrics_t *metrics,
                                 stats_history_t *history, uint64_t max_runs);
void stats_record_destroy(stats_record_t **self_p);

//  Write the counters and running sessions' figures. 0 or -1 with err.
int stats_record_flush(stats_record_t *self, es_err_t *err);

//  The result message of session (code, JSON body of len bytes): recorded from its stored row
//  if that is done and readable, else from the message itself (then the level and entity are
//  unknown). 1 recorded, 0 recorded already, -1 with err (the catch-up tries it again).
int stats_record_result(stats_record_t *self, const char *session, int32_t code, const char *body,
                        size_t len, es_err_t *err);

//  Record the finished sessions the ledger lacks, oldest end first, at most max of them (each
//  is one durable commit), then sweep the markers of pruned sessions. Errors are logged.
void stats_record_catch_up(stats_record_t *self, size_t max, stats_catchup_t *out);

#endif
