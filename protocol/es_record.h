//  es_record - a record as a MessagePack map {column: nil|bool|int|float64|str}, holding only
//  metadata columns, with conversion from/to JSON and field lookup.
#ifndef ES_RECORD_H
#define ES_RECORD_H
#include "common/es_buf.h"
#include "common/es_err.h"
#include "protocol/es_meta.h"
#include "protocol/es_value.h"

//  Incremental builder: used by streaming parsers (one call per column as it is parsed).
typedef struct es_record_builder es_record_builder_t;
es_record_builder_t *es_record_builder_new(const es_meta_object_t *obj);
void es_record_builder_destroy(es_record_builder_t **self_p);
//  Start a new record (drops anything set before).
void es_record_builder_reset(es_record_builder_t *self);
//  Set column name[0..len) to v, checked against the column type (int accepts only integers,
//  number accepts integers and decimals, date/datetime accept well-formed ISO-8601 strings,
//  string enforces length when > 0, null only if nullable or key-less...). Unknown columns are
//  skipped (return 0). -1 with err "<column>: expected int, got string" on a type mismatch.
//  A column set twice keeps the last value.
int es_record_builder_set(es_record_builder_t *self, const char *name, size_t len,
                          const es_value_t *v, es_err_t *err);
//  The same for the column at index idx of the object's fields (< nfields), for a caller that
//  resolved the name itself.
int es_record_builder_set_field(es_record_builder_t *self, size_t idx, const es_value_t *v,
                                es_err_t *err);
//  Finish: the MessagePack map (columns in metadata order) into out (reset first). The bytes are
//  valid until the next reset. -1 with err if a key column is missing or null.
int es_record_builder_end(es_record_builder_t *self, es_buf_t *out, es_err_t *err);
//  Instead of end: the primary key of the record being built, encoded as es_key_from_record
//  encodes the finished record, into out (reset first). The same errors as end.
int es_record_builder_key(es_record_builder_t *self, es_buf_t *out, es_err_t *err);

//  Parse a JSON object text into a record (via the builder; "_metadata" and unknown keys skipped,
//  nested objects/arrays rejected for known columns). -1 with err naming the column.
int es_record_from_json(const es_meta_object_t *obj, const char *json, size_t len, es_buf_t *out,
                        es_err_t *err);
//  Append the record as a JSON object text to out. -1 with err if rec is not a valid record map.
int es_record_to_json(const void *rec, size_t len, es_buf_t *out, es_err_t *err);
//  Whether rec is a valid record map: the checks of es_record_to_json, same errors, no output.
int es_record_check(const void *rec, size_t len, es_err_t *err);
//  Append v in decimal (what "%lld" prints, without printf's cost: a few per record).
void es_record_put_int(es_buf_t *out, int64_t v);
//  The same text written at the end of buf; returns where it starts (it ends at the buffer's end).
#define ES_INT_TEXT_MAX 24
char *es_record_int_text(char buf[ES_INT_TEXT_MAX], int64_t v);
//  A double as JSON text: the shorter of "%.15g" and "%.17g" that reads back as the same double,
//  so a value survives record -> JSON -> record unchanged. Written into buf (printf-free for
//  decimals of up to 15 digits, 8 of them after the point); returns its start and sets *len.
//  NULL for a non-finite double (JSON has no spelling for it).
#define ES_DOUBLE_TEXT_MAX 40
const char *es_record_double_text(char buf[ES_DOUBLE_TEXT_MAX], double d, size_t *len);
//  Append that text to out; null for a non-finite double.
void es_record_put_double(es_buf_t *out, double d);
//  Look up column name in rec. 1 found (out set, strings point into rec), 0 absent, -1 malformed.
int es_record_get(const void *rec, size_t len, const char *name, es_value_t *out);

#endif
