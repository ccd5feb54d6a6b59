//  es_json - small helpers over yajl_tree for documents we hold whole (commands, metadata,
//  session state): write a parsed value back as compact JSON.
#ifndef ES_JSON_H
#define ES_JSON_H
#include "common/es_buf.h"
#include <yajl/yajl_tree.h>

//  Append v as compact JSON (numbers copied as their original text).
void es_json_write(es_buf_t *out, yajl_val v);
//  Append each element of array v, comma-separated, without brackets (nothing if not an array).
void es_json_write_elements(es_buf_t *out, yajl_val v);

#endif
