//  es_svc - what setup stored about an object service: its metadata document ("svc/<name>" in
//  the meta table) and its object service URL ("url/<name>").
#ifndef ES_SVC_H
#define ES_SVC_H
#include "common/es_err.h"
#include "protocol/es_meta.h"
#include "store/es_store.h"

//  Parsed metadata of service (caller destroys). NULL with err: ES_ENOTFOUND "object service
//  'X' is not set up", or a store/parse error.
es_meta_t *es_svc_meta(es_store_t *store, const char *service, es_err_t *err);
//  The service URL (caller frees). NULL with err as above.
char *es_svc_url(es_store_t *store, const char *service, es_err_t *err);
//  Store both (inside the caller's write transaction). 0 or -1.
int es_svc_put(es_txn_t *txn, const char *service, const char *meta_json, size_t meta_len,
               const char *url, es_err_t *err);

#endif
