//  es_dlparse - streaming parser of Foundry download responses (SPEC 5.4), object level
//  ({"records":[...], ...}) and object-service level ({"Objects":[{"name":..,"records":[...]}]}).
//  Feed bytes as they arrive; records come out one by one through a callback; memory does not
//  depend on the number of records. Built on libyajl.
#ifndef ES_DLPARSE_H
#define ES_DLPARSE_H
#include "common/es_err.h"
#include "protocol/es_meta.h"
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct es_dlparse es_dlparse_t;

typedef struct {
    const es_meta_object_t *object; //  the object the record belongs to
    bool is_delete;                 //  _metadata.action == "delete"
    const char *checksum;           //  _metadata.checksum ("" if absent), NUL-terminated
    const void *rec;                //  es_record MessagePack map of the metadata columns
    size_t rec_len;                 //  bytes of rec (rec NULL, 0 in keys-only mode)
    const void *key;                //  keys-only mode: the es_key encoding of its primary key
    size_t key_len;                 //  bytes of key
} es_dl_record_t;

typedef struct {
    //  One record, valid during the call. Return 0, or -1 (err set) to stop the parse.
    int (*on_record)(void *ctx, const es_dl_record_t *r, es_err_t *err);
    //  Service level: an object entry with opstatus != 0 (its records are skipped). May be NULL.
    void (*on_object_error)(void *ctx, const char *object, int64_t opstatus, const char *errmsg);
} es_dlparse_cb_t;

//  object: the requested object at object level, or NULL for a service-level response (objects
//  resolved by name in meta; unknown names fail the parse). Borrowed: meta, cb, ctx outlive self.
es_dlparse_t *es_dlparse_new(const es_meta_t *meta, const es_meta_object_t *object,
                             const es_dlparse_cb_t *cb, void *ctx);
void es_dlparse_destroy(es_dlparse_t **self_p);
//  Keys-only mode (key listings): records are checked as usual but reported by their encoded
//  primary key instead of a MessagePack map (no map is built). Set before the first feed.
void es_dlparse_keys_only(es_dlparse_t *self);

//  Feed the next bytes. -1 with err (ES_EPROTO) naming where: invalid JSON (with byte offset),
//  nesting deeper than 64, a record column of the wrong type ("records[3].age: expected int,
//  got string"), a record without its key, delta_context not an object or over 1 MiB,
//  hasMoreRecords not "true"/"false"/boolean, records not an array.
int es_dlparse_feed(es_dlparse_t *self, const void *data, size_t len, es_err_t *err);
//  End of body. -1 with err if the document is incomplete or the root is not an object.
int es_dlparse_finish(es_dlparse_t *self, es_err_t *err);

//  After finish:
bool es_dlparse_has_opstatus(const es_dlparse_t *self);
int64_t es_dlparse_opstatus(const es_dlparse_t *self);
//  errmsg / errcode of an error envelope, or "".
const char *es_dlparse_errmsg(const es_dlparse_t *self);
bool es_dlparse_has_more(const es_dlparse_t *self); //  hasMoreRecords == "true" (or true)
//  The delta_context object re-serialised as compact JSON, or NULL if absent.
const char *es_dlparse_delta_context(const es_dlparse_t *self);
//  delta_context.objs.<object>.delta as a string, or NULL.
const char *es_dlparse_delta(const es_dlparse_t *self, const char *object);
//  delta_context.objs.<object>.bc as compact JSON, or NULL.
const char *es_dlparse_bc(const es_dlparse_t *self, const char *object);
//  Records seen (all objects) and records of one object.
size_t es_dlparse_count(const es_dlparse_t *self);

#endif
