//  es_json - small helpers over yajl_tree for documents we hold whole (commands, metadata,
//  session state): write a parsed value back as compact JSON.
#ifndef ES_JSON_H
#define ES_JSON_H
#include "common/es_buf.h"
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <yajl/yajl_tree.h>

//  Append v as compact JSON (numbers copied as their original text).
void es_json_write(es_buf_t *out, yajl_val v);
//  Append each element of array v, comma-separated, without brackets (nothing if not an array).
void es_json_write_elements(es_buf_t *out, yajl_val v);

//  Member key of object v as a string, or NULL (v NULL, no such member, or not a string).
const char *es_json_get_str(yajl_val v, const char *key);
//  Member key of object v as a positive integer count, or 0 (absent, not an integer, <= 0).
uint64_t es_json_get_count(yajl_val v, const char *key);

//  Deepest nesting accepted in a document from outside (responses, metadata, commands).
#define ES_JSON_DEPTH_MAX 64

//  True if objects and arrays in json[0..len) nest deeper than max (brackets inside strings do
//  not count); *at (if not NULL) is then the offset of the bracket that went too deep. Checked
//  before yajl_tree_parse() of outside input: yajl_tree_free() recurses once per level, so a
//  few MiB of '[' would overflow the stack.
bool es_json_too_deep(const char *json, size_t len, size_t max, size_t *at);

#endif
