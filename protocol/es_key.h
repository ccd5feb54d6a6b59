//  es_key - primary key encoding whose byte order equals key order; composite keys concatenate
//  typed, length-safe parts, so ("a","b") and ("ab","") never collide and sort correctly.
#ifndef ES_KEY_H
#define ES_KEY_H
#include "common/es_buf.h"
#include "common/es_err.h"
#include "protocol/es_meta.h"
#include "protocol/es_value.h"

//  Append the encoding of one key part (any type; null sorts first) to out.
void es_key_append(es_buf_t *out, const es_value_t *v);
//  Encode the primary key of rec (a es_record map) into out (reset first). -1 with err
//  ("Customer: key column 'id' missing") if a key column is absent or null.
int es_key_from_record(const es_meta_object_t *obj, const void *rec, size_t len, es_buf_t *out,
                       es_err_t *err);
//  Encode a key from JSON: a scalar for single-column keys, or an object {"col": value, ...}
//  naming every key column. Values are checked against column types. -1 with err.
int es_key_from_json(const es_meta_object_t *obj, const char *json, size_t len, es_buf_t *out,
                     es_err_t *err);
//  Decode key bytes back to a JSON object {"col": value, ...} appended to out. -1 if malformed.
int es_key_to_json(const es_meta_object_t *obj, const void *key, size_t len, es_buf_t *out,
                   es_err_t *err);

#endif
