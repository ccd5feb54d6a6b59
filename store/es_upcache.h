//  es_upcache - rows of the upload cache (SPEC 3.3, D14): the exact request body with its request
//  id, so that a request whose answer may have been lost is only ever sent again under that id.
//  Written and replayed by the upload actor; read by rollback and clear, which must not drop a
//  change that such a request carries (see es_local_rollback).
//
//  upcache "<syncable>" -> [u8 kind][u8 id length][id][u32 attempts][u64 last attempt, epoch ms]
//                          [u32 url length][url][body]   (integers little-endian)
#ifndef ES_UPCACHE_H
#define ES_UPCACHE_H
#include "common/es_buf.h"
#include "common/es_err.h"
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum { ES_UPCACHE_OBJECT = 0, ES_UPCACHE_SERVICE = 1 };

//  One row; the pointers point into the stored value (or the caller's data when encoding).
typedef struct {
    uint8_t kind;           //  ES_UPCACHE_OBJECT / ES_UPCACHE_SERVICE
    const char *request_id; //  X-...-RequestCacheId (at most 255 bytes)
    size_t request_id_len;
    uint32_t attempts;     //  replays so far
    uint64_t last_attempt; //  epoch ms
    const char *url;       //  endpoint with query string
    size_t url_len;
    const char *body; //  exact body sent
    size_t body_len;
} es_upcache_row_t;

//  Append the encoding of row to out.
void es_upcache_encode(const es_upcache_row_t *row, es_buf_t *out);
//  Decode a stored value (row points into val). -1 with err (ES_ESTORE) if it is malformed.
int es_upcache_decode(es_upcache_row_t *row, const void *val, size_t len, es_err_t *err);
//  The rowIds (_metadata.rowId of records[]) of an upload request body (SPEC 5.3), sorted
//  ascending; *ids is the caller's to free (NULL when there are none). -1 with err (ES_EPROTO)
//  naming what is wrong if body is not such a request.
int es_upcache_row_ids(const char *body, size_t len, uint64_t **ids, size_t *n, es_err_t *err);
//  True if id is in the sorted array ids.
bool es_upcache_has_id(const uint64_t *ids, size_t n, uint64_t id);

#endif
