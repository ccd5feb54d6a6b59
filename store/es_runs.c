//  es_runs - the sync run ledger: append with its bound in one transaction, list newest first.
#include "store/es_runs.h"
#include "common/es_mem.h"
#include <assert.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

static const uint8_t s_seq_key[8] = {0}; //  key 0: the next run id (u64 LE)

static void
s_key(uint8_t key[8], uint64_t id)
{
    for (int i = 7; i >= 0; i--, id >>= 8)
        key[i] = (uint8_t)id;
}

static uint64_t
s_key_id(const uint8_t *key)
{
    uint64_t id = 0;
    for (int i = 0; i < 8; i++)
        id = (id << 8) | key[i];
    return id;
}

typedef struct {
    uint8_t (*keys)[8]; //  oldest keys to drop
    size_t n, want;
} drop_t;

static int
s_collect_oldest(void *ctx, const void *key, size_t klen, const void *val, size_t vlen,
                 es_err_t *err)
{
    (void)val;
    (void)vlen;
    (void)err;
    drop_t *d = ctx;
    if (klen != 8 || memcmp(key, s_seq_key, 8) == 0)
        return 0;
    memcpy(d->keys[d->n++], key, 8);
    return d->n == d->want ? 1 : 0;
}

int
es_runs_append(es_txn_t *txn, const char *entity, const char *fields, uint64_t max_runs,
               uint64_t *id, es_err_t *err)
{
    assert(txn && entity && fields && max_runs >= 1);
    size_t elen = strlen(entity);
    if (elen > UINT16_MAX)
        return es_err_set(err, ES_EINVAL, "history: entity name too long (%zu bytes)", elen);
    const void *val;
    size_t vlen;
    int rc = es_txn_get(txn, ES_RUNS_TABLE, s_seq_key, 8, &val, &vlen, err);
    if (rc < 0)
        return -1;
    uint64_t next = 1;
    if (rc == 1) {
        if (vlen != 8)
            return es_err_set(err, ES_ESTORE, "history: next-id row has %zu bytes, expected 8",
                              vlen);
        memcpy(&next, val, 8);
    }
    es_buf_t row;
    es_buf_init(&row);
    uint16_t el = (uint16_t)elen;
    es_buf_append(&row, &el, 2);
    es_buf_append(&row, entity, elen);
    es_buf_printf(&row, "{\"id\":%" PRIu64 "%s%s}", next, *fields ? "," : "", fields);
    uint8_t key[8];
    s_key(key, next);
    uint64_t after = next + 1;
    rc = es_txn_put(txn, ES_RUNS_TABLE, key, 8, row.data, row.len, err) ||
                 es_txn_put(txn, ES_RUNS_TABLE, s_seq_key, 8, &after, 8, err)
             ? -1
             : 0;
    es_buf_release(&row);
    if (rc)
        return -1;
    int64_t count = es_runs_count(txn, err);
    if (count < 0)
        return -1;
    if ((uint64_t)count > max_runs) {
        drop_t d = {NULL, 0, (size_t)((uint64_t)count - max_runs)};
        d.keys = es_malloc(d.want * sizeof *d.keys);
        rc = es_txn_iter(txn, ES_RUNS_TABLE, NULL, 0, s_collect_oldest, &d, err);
        //  Deleted after the walk: the cursor is not used while the table changes.
        for (size_t i = 0; rc == 0 && i < d.n; i++)
            if (es_txn_del(txn, ES_RUNS_TABLE, d.keys[i], 8, err) < 0)
                rc = -1;
        free(d.keys);
        if (rc)
            return -1;
    }
    if (id)
        *id = next;
    return 0;
}

typedef struct {
    const char *entity; //  filter, NULL = all
    size_t elen;
    const char **json; //  matching rows, oldest first (borrowed from the txn)
    size_t *len;
    size_t n, cap;
} list_t;

static int
s_list_row(void *ctx, const void *key, size_t klen, const void *val, size_t vlen, es_err_t *err)
{
    list_t *l = ctx;
    if (klen != 8 || memcmp(key, s_seq_key, 8) == 0)
        return 0;
    const uint8_t *v = val;
    uint16_t el;
    if (vlen < 2 || (memcpy(&el, v, 2), (size_t)el + 2 > vlen))
        return es_err_set(err, ES_ESTORE, "history: run %" PRIu64 " is malformed (%zu bytes)",
                          s_key_id(key), vlen);
    if (l->entity && (el != l->elen || memcmp(v + 2, l->entity, el) != 0))
        return 0;
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 64;
        l->json = es_realloc(l->json, l->cap * sizeof *l->json);
        l->len = es_realloc(l->len, l->cap * sizeof *l->len);
    }
    l->json[l->n] = (const char *)v + 2 + el;
    l->len[l->n++] = vlen - 2 - el;
    return 0;
}

int
es_runs_list(es_txn_t *txn, const char *entity, size_t limit, es_buf_t *out, es_err_t *err)
{
    assert(txn && out);
    list_t l = {0};
    if (entity && *entity) {
        l.entity = entity;
        l.elen = strlen(entity);
    }
    int rc = es_txn_iter(txn, ES_RUNS_TABLE, NULL, 0, s_list_row, &l, err);
    if (rc == 0) {
        es_buf_putc(out, '[');
        size_t shown = 0;
        for (size_t i = l.n; i > 0 && (limit == 0 || shown < limit); i--, shown++) {
            if (shown)
                es_buf_putc(out, ',');
            es_buf_append(out, l.json[i - 1], l.len[i - 1]);
        }
        es_buf_putc(out, ']');
    }
    free(l.json);
    free(l.len);
    return rc ? -1 : 0;
}

int64_t
es_runs_count(es_txn_t *txn, es_err_t *err)
{
    int64_t n = es_txn_count(txn, ES_RUNS_TABLE, err);
    if (n < 0)
        return -1;
    //  Every table with rows has the next-id row.
    return n > 0 ? n - 1 : 0;
}
