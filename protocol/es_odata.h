//  es_odata - the OData $filter subset of SPEC.md: parse once against an object's columns,
//  evaluate against records many times.
#ifndef ES_ODATA_H
#define ES_ODATA_H
#include "common/es_err.h"
#include "protocol/es_meta.h"
#include "protocol/es_value.h"
#include <stdbool.h>

typedef struct es_odata es_odata_t;

//  Parse text (comparison eq ne gt ge lt le; and or not; parentheses; in (...); integers,
//  decimals, 'strings' with '' escapes, true false null, unquoted ISO-8601 dates and date-times;
//  contains startswith endswith tolower toupper length). Column names must be columns of obj
//  (case-sensitive). NULL with err (ES_EINVAL) naming the 1-based position and what was expected:
//  "filter: position 7: expected a comparison operator, got 'foo'". Nesting depth is bounded.
es_odata_t *es_odata_new(const char *text, const es_meta_object_t *obj, es_err_t *err);
void es_odata_destroy(es_odata_t **self_p);

//  Column value lookup for evaluation: 1 found (out set), 0 absent (treated as null).
typedef int(es_odata_get_fn)(void *ctx, const char *column, es_value_t *out);

//  True if the record the getter describes matches. Comparisons with null follow OData
//  (null eq null is true; any ordering comparison with null is false).
bool es_odata_match(const es_odata_t *self, es_odata_get_fn *get, void *ctx);
//  Convenience: evaluate against an es_record MessagePack map.
bool es_odata_match_record(const es_odata_t *self, const void *rec, size_t len);

#endif
