//  stats_history - per-session figures from progress events; the ledger row of a result.
#include "actors/stats/stats_history.h"
#include "common/es_mem.h"
#include "protocol/es_json.h"
#include "protocol/es_msg.h"
#include <assert.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NPHASES 3
#define STATS_RUNS_MAX 256 //  sessions followed at once
static const char *s_phases[NPHASES] = {"Upload", "Download", "Reconcile"};

typedef struct {
    char session[ES_NAME_MAX + 1];
    int64_t first_ms, last_ms;                         //  first and last event seen
    int64_t phase_first[NPHASES], phase_last[NPHASES]; //  0 = phase not seen
    uint64_t bytes_up, bytes_down, batches_up, batches_down, retries;
} run_t;

struct stats_history {
    run_t *runs;
    size_t n, cap;
};

stats_history_t *
stats_history_new(void)
{
    return es_calloc(1, sizeof(stats_history_t));
}

void
stats_history_destroy(stats_history_t **self_p)
{
    if (!*self_p)
        return;
    free((*self_p)->runs);
    free(*self_p);
    *self_p = NULL;
}

size_t
stats_history_size(const stats_history_t *self)
{
    return self->n;
}

static run_t *
s_run(stats_history_t *self, const char *session, bool create)
{
    for (size_t i = 0; i < self->n; i++)
        if (strcmp(self->runs[i].session, session) == 0)
            return &self->runs[i];
    if (!create)
        return NULL;
    //  A session whose result never arrived (published while this process was down) must not
    //  hold memory for ever: past STATS_RUNS_MAX, the one quiet the longest goes.
    if (self->n == STATS_RUNS_MAX) {
        size_t old = 0;
        for (size_t i = 1; i < self->n; i++)
            if (self->runs[i].last_ms < self->runs[old].last_ms)
                old = i;
        self->runs[old] = self->runs[--self->n];
    }
    if (self->n == self->cap) {
        self->cap = self->cap ? self->cap * 2 : 8;
        self->runs = es_realloc(self->runs, self->cap * sizeof *self->runs);
    }
    run_t *r = &self->runs[self->n++];
    memset(r, 0, sizeof *r);
    snprintf(r->session, sizeof r->session, "%s", session);
    return r;
}

void
stats_history_event(stats_history_t *self, const char *session, yajl_val ev, int64_t now_ms)
{
    const char *phase = es_json_get_str(ev, "phase"), *state = es_json_get_str(ev, "state");
    if (!phase || !state || strlen(session) > ES_NAME_MAX)
        return;
    //  "Sync Ended" comes just before the result: nothing to learn from it.
    if (strcmp(phase, "Sync") == 0 && strcmp(state, "Ended") == 0)
        return;
    run_t *r = s_run(self, session, true);
    if (!r->first_ms)
        r->first_ms = now_ms;
    r->last_ms = now_ms;
    for (int i = 0; i < NPHASES; i++)
        if (strcmp(phase, s_phases[i]) == 0) {
            if (!r->phase_first[i])
                r->phase_first[i] = now_ms;
            r->phase_last[i] = now_ms;
        }
    if (strcmp(state, "Ended") != 0)
        return;
    bool up = strcmp(phase, "Upload") == 0, down = strcmp(phase, "Download") == 0;
    if (!up && !down)
        return;
    uint64_t bytes = es_json_get_count(ev, "batchBytes");
    if (up) {
        r->batches_up++;
        r->bytes_up += bytes;
    } else {
        r->batches_down++;
        r->bytes_down += bytes;
    }
    r->retries += es_json_get_count(ev, "batchRetries");
}

//  syncErrors entries of a result object (upload and download).
static uint64_t
s_errors_of(yajl_val obj)
{
    const char *up[] = {"syncErrors", "upload", NULL}, *dp[] = {"syncErrors", "download", NULL};
    yajl_val u = yajl_tree_get(obj, up, yajl_t_array), d = yajl_tree_get(obj, dp, yajl_t_array);
    return (u ? u->u.array.len : 0) + (d ? d->u.array.len : 0);
}

static uint64_t
s_errors(yajl_val result)
{
    if (!result || !YAJL_IS_OBJECT(result))
        return 0;
    uint64_t n = s_errors_of(result);
    //  App level: each service's result inside successResponse / failureResponse.
    const char *groups[] = {"successResponse", "failureResponse"};
    for (int g = 0; g < 2; g++) {
        const char *path[] = {groups[g], NULL};
        yajl_val m = yajl_tree_get(result, path, yajl_t_object);
        for (size_t i = 0; m && i < m->u.object.len; i++)
            n += s_errors_of(m->u.object.values[i]);
    }
    return n;
}

//  Batches, bytes and retries of the uploadStats / downloadStats entries of one syncStats.
static void
s_figures_of(yajl_val stats, run_t *r)
{
    const char *kinds[] = {"uploadStats", "downloadStats"};
    for (int k = 0; stats && k < 2; k++) {
        const char *path[] = {kinds[k], NULL};
        yajl_val arr = yajl_tree_get(stats, path, yajl_t_array);
        for (size_t i = 0; arr && i < arr->u.array.len; i++) {
            yajl_val e = arr->u.array.values[i];
            uint64_t bytes = es_json_get_count(e, "bytes");
            if (k == 0) {
                r->batches_up++;
                r->bytes_up += bytes;
            } else {
                r->batches_down++;
                r->bytes_down += bytes;
            }
            r->retries += es_json_get_count(e, "retries");
        }
    }
}

//  A session whose progress events were missed (es-stats was down): its figures from the
//  result's syncStats, when the sync asked for them (getSyncStats); else they stay 0.
static void
s_figures_from_result(yajl_val result, run_t *r)
{
    const char *sp[] = {"syncStats", NULL};
    if (!result || !YAJL_IS_OBJECT(result))
        return;
    s_figures_of(yajl_tree_get(result, sp, yajl_t_object), r);
    const char *groups[] = {"successResponse", "failureResponse"};
    for (int g = 0; g < 2; g++) {
        const char *path[] = {groups[g], NULL};
        yajl_val m = yajl_tree_get(result, path, yajl_t_object);
        for (size_t i = 0; m && i < m->u.object.len; i++)
            s_figures_of(yajl_tree_get(m->u.object.values[i], sp, yajl_t_object), r);
    }
}

void
stats_history_finish(stats_history_t *self, const char *session, yajl_val row, int32_t code,
                     yajl_val result, int64_t now_ms, es_buf_t *out, char **entity, char level[16])
{
    run_t none = {0};
    run_t *r = s_run(self, session, false);
    if (!r) {
        r = &none;
        s_figures_from_result(result, r);
    }
    const char *lv = es_json_get_str(row, "level"), *svc = es_json_get_str(row, "service"),
               *obj = es_json_get_str(row, "object");
    snprintf(level, 16, "%s", lv ? lv : "");
    const char *name = lv && strcmp(lv, "object") == 0    ? obj
                       : lv && strcmp(lv, "service") == 0 ? svc
                       : lv                               ? "application"
                                                          : NULL;
    *entity = es_strdup(name ? name : "");
    es_buf_puts(out, "\"session\":");
    es_buf_json_str(out, session, strlen(session));
    es_buf_puts(out, ",\"entity\":");
    es_buf_json_str(out, *entity, strlen(*entity));
    es_buf_puts(out, ",\"level\":");
    es_buf_json_str(out, level, strlen(level));
    //  Options are stored as JSON text in the session row: embed them as JSON.
    const char *opts = es_json_get_str(row, "options");
    yajl_val ov = opts ? yajl_tree_parse(opts, NULL, 0) : NULL;
    es_buf_puts(out, ",\"options\":");
    if (ov)
        es_json_write(out, ov);
    else
        es_buf_puts(out, "{}");
    yajl_tree_free(ov);
    const char *message = code ? es_json_get_str(result, "message") : NULL;
    es_buf_printf(out, ",\"result\":\"%s\",\"code\":%d",
                  code == 0      ? "ok"
                  : code == 2478 ? "cancelled"
                                 : "failed",
                  code);
    if (message) {
        es_buf_puts(out, ",\"message\":");
        es_buf_json_str(out, message, strlen(message));
    }
    const char *sp[] = {"startTime", NULL};
    yajl_val st = row ? yajl_tree_get(row, sp, yajl_t_number) : NULL;
    int64_t start = st && YAJL_IS_INTEGER(st) ? YAJL_GET_INTEGER(st) : r->first_ms;
    if (!start)
        start = now_ms;
    es_buf_printf(out,
                  ",\"uploaded\":%" PRIu64 ",\"downloaded\":%" PRIu64
                  ",\"reconciledDeletes\":%" PRIu64 ",\"bytesUploaded\":%" PRIu64
                  ",\"bytesDownloaded\":%" PRIu64 ",\"batchesUploaded\":%" PRIu64
                  ",\"batchesDownloaded\":%" PRIu64 ",\"retries\":%" PRIu64 ",\"errors\":%" PRIu64
                  ",\"start\":%" PRId64 ",\"end\":%" PRId64 ",\"durationMs\":%" PRId64
                  ",\"phases\":{",
                  es_json_get_count(row, "uploaded"), es_json_get_count(row, "downloaded"),
                  es_json_get_count(row, "reconciled"), r->bytes_up, r->bytes_down, r->batches_up,
                  r->batches_down, r->retries, s_errors(result) + (code ? 1 : 0), start, now_ms,
                  now_ms > start ? now_ms - start : 0);
    //  A phase lasts from its first event to its last one (milliseconds of wall time).
    for (int i = 0, n = 0; i < NPHASES; i++)
        if (r->phase_first[i])
            es_buf_printf(out, "%s\"%s\":%" PRId64, n++ ? "," : "", s_phases[i],
                          r->phase_last[i] - r->phase_first[i]);
    es_buf_putc(out, '}');
    if (r != &none)
        *r = self->runs[--self->n];
}

//  R <first> <last> <pf0> <pl0> <pf1> <pl1> <pf2> <pl2> <bu> <bd> <nu> <nd> <retries> <session>
void
stats_history_save(const stats_history_t *self, es_buf_t *out)
{
    for (size_t i = 0; i < self->n; i++) {
        const run_t *r = &self->runs[i];
        es_buf_printf(out, "R %" PRId64 " %" PRId64, r->first_ms, r->last_ms);
        for (int p = 0; p < NPHASES; p++)
            es_buf_printf(out, " %" PRId64 " %" PRId64, r->phase_first[p], r->phase_last[p]);
        es_buf_printf(out, " %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64 " %s\n",
                      r->bytes_up, r->bytes_down, r->batches_up, r->batches_down, r->retries,
                      r->session);
    }
}

int
stats_history_load(stats_history_t *self, const char *text, size_t len, es_err_t *err)
{
    self->n = 0;
    char *copy = es_strndup(text, len);
    int line = 1;
    for (char *save = NULL, *l = strtok_r(copy, "\n", &save); l;
         l = strtok_r(NULL, "\n", &save), line++) {
        run_t r = {0};
        int used = 0;
        int got = sscanf(
            l,
            "R %" SCNd64 " %" SCNd64 " %" SCNd64 " %" SCNd64 " %" SCNd64 " %" SCNd64 " %" SCNd64
            " %" SCNd64 " %" SCNu64 " %" SCNu64 " %" SCNu64 " %" SCNu64 " %" SCNu64 " %n",
            &r.first_ms, &r.last_ms, &r.phase_first[0], &r.phase_last[0], &r.phase_first[1],
            &r.phase_last[1], &r.phase_first[2], &r.phase_last[2], &r.bytes_up, &r.bytes_down,
            &r.batches_up, &r.batches_down, &r.retries, &used);
        const char *sess = l + used;
        if (got != 13 || !used || !*sess || strlen(sess) > ES_NAME_MAX || strchr(sess, ' ')) {
            free(copy);
            self->n = 0;
            return es_err_set(err, ES_EINVAL, "run figures: line %d is malformed", line);
        }
        snprintf(r.session, sizeof r.session, "%s", sess);
        *s_run(self, r.session, true) = r;
    }
    free(copy);
    return 0;
}
