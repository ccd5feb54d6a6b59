//  es_upcache - encoding of the upload cache rows and the rowIds of a cached request body.
#include "store/es_upcache.h"
#include "common/es_mem.h"
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_tree.h>

static void
s_put_le(es_buf_t *out, uint64_t v, size_t n)
{
    unsigned char b[8];
    for (size_t i = 0; i < n; i++)
        b[i] = (unsigned char)(v >> (8 * i));
    es_buf_append(out, b, n);
}

static uint64_t
s_get_le(const unsigned char *p, size_t n)
{
    uint64_t v = 0;
    for (size_t i = n; i > 0; i--)
        v = v << 8 | p[i - 1];
    return v;
}

void
es_upcache_encode(const es_upcache_row_t *row, es_buf_t *out)
{
    uint8_t idlen = (uint8_t)(row->request_id_len > 255 ? 255 : row->request_id_len);
    es_buf_append(out, &row->kind, 1);
    es_buf_append(out, &idlen, 1);
    es_buf_append(out, row->request_id, idlen);
    s_put_le(out, row->attempts, 4);
    s_put_le(out, row->last_attempt, 8);
    s_put_le(out, row->url_len, 4);
    es_buf_append(out, row->url, row->url_len);
    es_buf_append(out, row->body, row->body_len);
}

int
es_upcache_decode(es_upcache_row_t *row, const void *val, size_t len, es_err_t *err)
{
    const unsigned char *p = val, *end = p + len;
    memset(row, 0, sizeof *row);
    if (len < 2 || (size_t)(end - p) < 2u + p[1] + 16u)
        return es_err_set(err, ES_ESTORE, "upcache row of %zu bytes is malformed", len);
    row->kind = p[0];
    row->request_id_len = p[1];
    row->request_id = (const char *)p + 2;
    p += 2 + row->request_id_len;
    row->attempts = (uint32_t)s_get_le(p, 4);
    row->last_attempt = s_get_le(p + 4, 8);
    row->url_len = (size_t)s_get_le(p + 12, 4);
    p += 16;
    if ((size_t)(end - p) < row->url_len)
        return es_err_set(err, ES_ESTORE, "upcache row: url of %zu bytes overruns the row",
                          row->url_len);
    row->url = (const char *)p;
    p += row->url_len;
    row->body = (const char *)p;
    row->body_len = (size_t)(end - p);
    return 0;
}

static int
s_cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

int
es_upcache_row_ids(const char *body, size_t len, uint64_t **ids, size_t *n, es_err_t *err)
{
    *ids = NULL;
    *n = 0;
    char *text = es_strndup(body, len); //  yajl_tree wants a terminated string
    char ebuf[128] = "";
    yajl_val root = yajl_tree_parse(text, ebuf, sizeof ebuf);
    free(text);
    if (!root) {
        char *nl = strchr(ebuf, '\n');
        if (nl)
            *nl = '\0';
        return es_err_set(err, ES_EPROTO, "upload request body: %s", ebuf[0] ? ebuf : "not JSON");
    }
    int rc = -1;
    const char *recs_path[] = {"records", NULL};
    yajl_val recs = YAJL_IS_OBJECT(root) ? yajl_tree_get(root, recs_path, yajl_t_array) : NULL;
    if (!recs) {
        es_err_set(err, ES_EPROTO, "upload request body: records: expected an array");
        goto done;
    }
    size_t count = recs->u.array.len;
    *ids = es_malloc((count ? count : 1) * sizeof **ids);
    for (size_t i = 0; i < count; i++) {
        const char *row_path[] = {"_metadata", "rowId", NULL};
        yajl_val r = recs->u.array.values[i];
        yajl_val id = YAJL_IS_OBJECT(r) ? yajl_tree_get(r, row_path, yajl_t_number) : NULL;
        if (!id || !YAJL_IS_INTEGER(id) || YAJL_GET_INTEGER(id) < 0) {
            es_err_set(err, ES_EPROTO,
                       "upload request body: records[%zu]._metadata.rowId: expected an integer "
                       ">= 0",
                       i);
            free(*ids);
            *ids = NULL;
            goto done;
        }
        (*ids)[i] = (uint64_t)YAJL_GET_INTEGER(id);
    }
    qsort(*ids, count, sizeof **ids, s_cmp_u64);
    *n = count;
    rc = 0;
done:
    yajl_tree_free(root);
    return rc;
}

bool
es_upcache_has_id(const uint64_t *ids, size_t n, uint64_t id)
{
    return n && bsearch(&id, ids, n, sizeof *ids, s_cmp_u64) != NULL;
}
