//  stats_ledger - markers of the sessions the run ledger holds; finding the ones it lacks.
#include "actors/stats/stats_ledger.h"
#include "common/es_log.h"
#include "common/es_mem.h"
#include "protocol/es_json.h"
#include "store/es_runs.h"
#include <assert.h>
#include <stdlib.h>
#include <string.h>

#define INIT_KEY "stats.ledger" //  "metrics" table: markers are kept (value "1")
#define DONE_TEXT "\"state\":\"done\""

//  A parsed row whose top-level state is "done" (plan entries have states too: the top level
//  decides), or NULL; *malformed when the row has the text but is not a JSON object. text is
//  not NUL-terminated.
static yajl_val
s_parse_done(const void *text, size_t len, bool *malformed)
{
    *malformed = false;
    //  Every done row contains the text; a running one without it needs no parse.
    if (!memmem(text, len, DONE_TEXT, sizeof DONE_TEXT - 1))
        return NULL;
    char *copy = es_strndup(text, len);
    yajl_val row = yajl_tree_parse(copy, NULL, 0);
    free(copy);
    if (!row || !YAJL_IS_OBJECT(row)) {
        *malformed = true;
        yajl_tree_free(row);
        return NULL;
    }
    const char *state = es_json_get_str(row, "state");
    if (!state || strcmp(state, "done") != 0) {
        yajl_tree_free(row);
        return NULL;
    }
    return row;
}

static int64_t
s_int(yajl_val row, const char *key)
{
    const char *path[] = {key, NULL};
    yajl_val v = yajl_tree_get(row, path, yajl_t_number);
    return v && YAJL_IS_INTEGER(v) ? YAJL_GET_INTEGER(v) : 0;
}

//  The row's end; a daemon older than endTime stored only the start, which still orders the
//  sessions and, on upgrade, proves a session newer than the ledger's oldest run.
static int64_t
s_end_ms(yajl_val row)
{
    int64_t end = s_int(row, "endTime");
    return end > 0 ? end : s_int(row, "startTime");
}

typedef struct {
    es_cursor_t *marks;      //  markers, asked in ascending order (NULL: none yet)
    stats_ledger_due_t *due; //  unmarked done sessions, and malformed rows
    size_t n, cap;
    size_t bad_keys; //  rows whose key cannot be a session id
} scan_t;

static void
s_add(scan_t *s, const void *key, size_t klen, int64_t end, bool malformed)
{
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 8;
        s->due = es_realloc(s->due, s->cap * sizeof *s->due);
    }
    stats_ledger_due_t *d = &s->due[s->n++];
    memcpy(d->id, key, klen);
    d->id[klen] = '\0';
    d->end_ms = end;
    d->malformed = malformed;
}

//  Every unmarked row that looks done is parsed: at most the ~100 rows the daemon keeps, and
//  normally only the running ones, every few seconds.
static int
s_scan_row(void *ctx, const void *key, size_t klen, const void *val, size_t vlen, es_err_t *err)
{
    scan_t *s = ctx;
    if (klen == 0 || klen > ES_NAME_MAX) {
        es_log_debug("session table: key of %zu bytes skipped", klen);
        s->bad_keys++;
        return 0;
    }
    int has = s->marks ? es_cursor_contains(s->marks, key, klen, err) : 0;
    if (has < 0)
        return -1;
    if (has)
        return 0;
    bool malformed;
    yajl_val row = s_parse_done(val, vlen, &malformed);
    if (malformed)
        s_add(s, key, klen, 0, true);
    if (!row)
        return 0;
    s_add(s, key, klen, s_end_ms(row), false);
    yajl_tree_free(row);
    return 0;
}

//  What the ledger says before markers exist: the sessions it holds, its oldest end.
typedef struct {
    char (*ids)[ES_NAME_MAX + 1];
    size_t n, cap;
    int64_t oldest_end; //  INT64_MAX while empty
} held_t;

static int
s_held_row(void *ctx, const void *key, size_t klen, const void *val, size_t vlen, es_err_t *err)
{
    (void)err;
    held_t *h = ctx;
    const uint8_t *v = val;
    uint16_t el;
    //  Key 0 is the next-id row; rows are [u16 entity length][entity][JSON] (store/es_runs.h).
    static const uint8_t next_id_key[8] = {0};
    if (klen != 8 || memcmp(key, next_id_key, 8) == 0 || vlen < 2 ||
        (memcpy(&el, v, 2), (size_t)el + 2 > vlen))
        return 0;
    char *text = es_strndup((const char *)v + 2 + el, vlen - 2 - el);
    yajl_val run = yajl_tree_parse(text, NULL, 0);
    free(text);
    const char *session = es_json_get_str(run, "session");
    const char *ep[] = {"end", NULL};
    yajl_val end = run ? yajl_tree_get(run, ep, yajl_t_number) : NULL;
    if (end && YAJL_IS_INTEGER(end) && YAJL_GET_INTEGER(end) < h->oldest_end)
        h->oldest_end = YAJL_GET_INTEGER(end);
    if (session && strlen(session) <= ES_NAME_MAX) {
        if (h->n == h->cap) {
            h->cap = h->cap ? h->cap * 2 : 64;
            h->ids = es_realloc(h->ids, h->cap * sizeof *h->ids);
        }
        strcpy(h->ids[h->n++], session);
    }
    yajl_tree_free(run);
    return 0;
}

//  A finished session recorded before markers were kept: in the ledger, or ended before its
//  oldest row (perhaps recorded, then dropped by history.max_runs). An empty ledger has
//  recorded nothing.
static bool
s_held(const held_t *h, const stats_ledger_due_t *d)
{
    for (size_t i = 0; i < h->n; i++)
        if (strcmp(h->ids[i], d->id) == 0)
            return true;
    return !d->malformed && h->n && d->end_ms < h->oldest_end;
}

static int
s_init_fn(es_txn_t *txn, void *ctx, es_err_t *err)
{
    size_t *marked = ctx;
    *marked = 0;
    const void *val;
    size_t vlen;
    int rc = es_txn_get(txn, "metrics", INIT_KEY, strlen(INIT_KEY), &val, &vlen, err);
    if (rc != 0)
        return rc < 0 ? -1 : 0;
    //  Marked after the walks: no cursor is open while the txn writes.
    scan_t s = {0};
    held_t h = {.oldest_end = INT64_MAX};
    rc = es_txn_iter(txn, "session", NULL, 0, s_scan_row, &s, err);
    if (rc == 0 && s.n)
        rc = es_txn_iter(txn, ES_RUNS_TABLE, NULL, 0, s_held_row, &h, err);
    for (size_t i = 0; rc == 0 && i < s.n; i++)
        if (s_held(&h, &s.due[i])) {
            rc = stats_ledger_mark(txn, s.due[i].id, 0, err);
            (*marked)++;
        }
    free(h.ids);
    free(s.due);
    if (rc)
        return -1;
    return es_txn_put(txn, "metrics", INIT_KEY, strlen(INIT_KEY), "1", 1, err);
}

int
stats_ledger_init(es_store_t *store, size_t *marked, es_err_t *err)
{
    assert(store);
    size_t n = 0;
    //  Checked in the write txn too: two es-stats (one being replaced) must not both mark.
    if (es_store_write(store, s_init_fn, &n, err))
        return -1;
    if (marked)
        *marked = n;
    return 0;
}

static int
s_by_end(const void *a, const void *b)
{
    const stats_ledger_due_t *x = a, *y = b;
    if (x->end_ms != y->end_ms)
        return x->end_ms < y->end_ms ? -1 : 1;
    return strcmp(x->id, y->id);
}

int
stats_ledger_due(es_store_t *store, stats_ledger_due_t **due, size_t *n, size_t *bad_keys,
                 es_err_t *err)
{
    assert(store && due && n);
    *due = NULL;
    *n = 0;
    if (bad_keys)
        *bad_keys = 0;
    es_txn_t *txn = es_store_begin(store, false, err);
    if (!txn)
        return -1;
    scan_t s = {0};
    s.marks = es_cursor_new(txn, STATS_LEDGER_TABLE, err);
    int rc = s.marks ? es_txn_iter(txn, "session", NULL, 0, s_scan_row, &s, err) : -1;
    es_cursor_destroy(&s.marks);
    es_txn_abort(&txn);
    if (rc) {
        free(s.due);
        return -1;
    }
    if (s.n > 1)
        qsort(s.due, s.n, sizeof *s.due, s_by_end);
    *due = s.due;
    *n = s.n;
    if (bad_keys)
        *bad_keys = s.bad_keys;
    return 0;
}

int
stats_ledger_row(es_store_t *store, const char *session, yajl_val *row, es_err_t *err)
{
    assert(store && session && row);
    *row = NULL;
    es_txn_t *txn = es_store_begin(store, false, err);
    if (!txn)
        return -1;
    const void *val;
    size_t vlen;
    int rc = es_txn_get(txn, "session", session, strlen(session), &val, &vlen, err);
    if (rc == 1) {
        bool malformed;
        *row = s_parse_done(val, vlen, &malformed);
        rc = *row ? 1 : 0;
        if (malformed) {
            es_err_set(err, ES_EINVAL, "session %s: stored row is not a JSON object", session);
            rc = -1;
        }
    }
    es_txn_abort(&txn);
    return rc;
}

int
stats_ledger_has(es_txn_t *txn, const char *session, es_err_t *err)
{
    assert(txn && session);
    const void *val;
    size_t vlen;
    return es_txn_get(txn, STATS_LEDGER_TABLE, session, strlen(session), &val, &vlen, err);
}

int
stats_ledger_mark(es_txn_t *txn, const char *session, uint64_t run, es_err_t *err)
{
    assert(txn && session);
    return es_txn_put(txn, STATS_LEDGER_TABLE, session, strlen(session), &run, sizeof run, err);
}

typedef struct {
    es_cursor_t *rows; //  session rows, asked in ascending order
    char (*gone)[ES_NAME_MAX + 1];
    size_t n, cap;
} sweep_t;

static int
s_sweep_mark(void *ctx, const void *key, size_t klen, const void *val, size_t vlen, es_err_t *err)
{
    (void)val;
    (void)vlen;
    sweep_t *s = ctx;
    if (klen == 0 || klen > ES_NAME_MAX)
        return 0;
    int has = es_cursor_contains(s->rows, key, klen, err);
    if (has)
        return has < 0 ? -1 : 0;
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 16;
        s->gone = es_realloc(s->gone, s->cap * sizeof *s->gone);
    }
    memcpy(s->gone[s->n], key, klen);
    s->gone[s->n++][klen] = '\0';
    return 0;
}

static int
s_sweep_fn(es_txn_t *txn, void *ctx, es_err_t *err)
{
    sweep_t *s = ctx;
    for (size_t i = 0; i < s->n; i++)
        if (es_txn_del(txn, STATS_LEDGER_TABLE, s->gone[i], strlen(s->gone[i]), err) < 0)
            return -1;
    return 0;
}

int
stats_ledger_sweep(es_store_t *store, size_t *dropped, es_err_t *err)
{
    assert(store);
    if (dropped)
        *dropped = 0;
    es_txn_t *txn = es_store_begin(store, false, err);
    if (!txn)
        return -1;
    int64_t marks = es_txn_count(txn, STATS_LEDGER_TABLE, err);
    int64_t rows = marks >= 0 ? es_txn_count(txn, "session", err) : -1;
    if (rows < 0 || marks <= rows) {
        es_txn_abort(&txn);
        return rows < 0 ? -1 : 0;
    }
    sweep_t s = {0};
    s.rows = es_cursor_new(txn, "session", err);
    int rc = s.rows ? es_txn_iter(txn, STATS_LEDGER_TABLE, NULL, 0, s_sweep_mark, &s, err) : -1;
    es_cursor_destroy(&s.rows);
    es_txn_abort(&txn);
    //  A row never comes back once pruned, so deleting outside the read txn is exact.
    if (rc == 0 && s.n)
        rc = es_store_write(store, s_sweep_fn, &s, err);
    if (rc == 0 && dropped)
        *dropped = s.n;
    free(s.gone);
    return rc;
}
