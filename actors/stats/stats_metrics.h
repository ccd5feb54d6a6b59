//  stats_metrics - the metric registry of es-stats: counters, gauges and histograms by label set,
//  the Prometheus text exposition (format 0.0.4), and a text snapshot of the counters and
//  histograms that is kept in the store so they survive a restart.
#ifndef STATS_METRICS_H
#define STATS_METRICS_H
#include "common/es_buf.h"
#include "common/es_err.h"
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

//  Families (name, TYPE, HELP) are a fixed table in stats_metrics.c; these are their names.
#define SM_SESSIONS "edgesync_sessions_total"
#define SM_REC_UP "edgesync_records_uploaded_total"
#define SM_REC_DOWN "edgesync_records_downloaded_total"
#define SM_BYTES_UP "edgesync_bytes_uploaded_total"
#define SM_BYTES_DOWN "edgesync_bytes_downloaded_total"
#define SM_ERRORS "edgesync_errors_total"
#define SM_BATCH_SECONDS "edgesync_batch_duration_seconds"
#define SM_RESTARTS "edgesync_actor_restarts_total"
#define SM_PENDING "edgesync_pending_changes"
#define SM_UPCACHE "edgesync_upload_cache_depth"
#define SM_IN_PROGRESS "edgesync_sync_in_progress"
#define SM_RUNS "edgesync_history_runs"

//  Upper bounds (seconds) of the batch latency histogram; +Inf is implicit.
#define SM_NBUCKETS 13
extern const double stats_metrics_buckets[SM_NBUCKETS];

typedef struct stats_metrics stats_metrics_t;

stats_metrics_t *stats_metrics_new(void);
void stats_metrics_destroy(stats_metrics_t **self_p);

//  Build a label set `k1="v1",k2="v2"` into out (reset first), values escaped as the format
//  wants (\\, \", \n). keys and values alternate, NULL-terminated: ("level", "object", NULL).
void stats_metrics_labels(es_buf_t *out, ...) __attribute__((sentinel));

//  Add v (>= 0) to a counter series. family must be a counter of the table (asserted).
void stats_metrics_add(stats_metrics_t *self, const char *family, const char *labels, double v);
//  Set a gauge series (or a counter kept elsewhere, such as restarts).
void stats_metrics_set(stats_metrics_t *self, const char *family, const char *labels, double v);
//  Record one observation in a histogram series.
void stats_metrics_observe(stats_metrics_t *self, const char *family, const char *labels, double v);
//  Value of a counter or gauge series (0 if absent); histograms: their count.
double stats_metrics_get(const stats_metrics_t *self, const char *family, const char *labels);
//  Drop every series of the families read from the store at each scrape (gauges, restarts).
void stats_metrics_clear_live(stats_metrics_t *self);

//  The exposition: HELP and TYPE of every family, then its series, in a stable order.
void stats_metrics_format(const stats_metrics_t *self, es_buf_t *out);

//  Snapshot of counters and histograms (not live families), appended to out.
void stats_metrics_save(const stats_metrics_t *self, es_buf_t *out);
//  Replace counters and histograms with a snapshot. -1 with err naming the line if malformed
//  (the registry is then left empty).
int stats_metrics_load(stats_metrics_t *self, const char *text, size_t len, es_err_t *err);

#endif
