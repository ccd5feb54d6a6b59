//  es_svc - object service metadata and URL in the meta table.
#include "store/es_svc.h"
#include "common/es_mem.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

//  Value of "<prefix>/<service>" in meta, as a new string; NULL with err.
static char *
s_get(es_store_t *store, const char *prefix, const char *service, size_t *len, es_err_t *err)
{
    es_txn_t *txn = es_store_begin(store, false, err);
    if (!txn)
        return NULL;
    char *key = es_sprintf("%s/%s", prefix, service);
    const void *val;
    size_t vlen;
    char *out = NULL;
    int rc = es_txn_get(txn, "meta", key, strlen(key), &val, &vlen, err);
    if (rc == 1) {
        out = es_strndup(val, vlen);
        *len = vlen;
    } else if (rc == 0) {
        es_err_set(err, ES_ENOTFOUND, "object service '%s' is not set up", service);
    }
    es_txn_abort(&txn);
    free(key);
    return out;
}

es_meta_t *
es_svc_meta(es_store_t *store, const char *service, es_err_t *err)
{
    size_t len = 0;
    char *doc = s_get(store, "svc", service, &len, err);
    if (!doc)
        return NULL;
    es_meta_t *meta = es_meta_new(doc, len, err);
    free(doc);
    if (!meta)
        es_err_prefix(err, "stored metadata of '%s'", service);
    return meta;
}

char *
es_svc_url(es_store_t *store, const char *service, es_err_t *err)
{
    size_t len = 0;
    return s_get(store, "url", service, &len, err);
}

int
es_svc_put(es_txn_t *txn, const char *service, const char *meta_json, size_t meta_len,
           const char *url, es_err_t *err)
{
    char *k1 = es_sprintf("svc/%s", service), *k2 = es_sprintf("url/%s", service);
    int rc = es_txn_put(txn, "meta", k1, strlen(k1), meta_json, meta_len, err);
    if (rc == 0)
        rc = es_txn_put(txn, "meta", k2, strlen(k2), url, strlen(url), err);
    free(k1);
    free(k2);
    return rc;
}
