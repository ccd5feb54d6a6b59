//  es_meta - object service metadata (from setup): objects, primary keys, typed fields.
#ifndef ES_META_H
#define ES_META_H
#include "common/es_err.h"
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

//  Largest metadata accepted. Names are checked for duplicates pairwise and looked up by a
//  scan, so an unbounded document could stall a process for minutes (2 MiB of fields: 18 s,
//  found by fuzz/fuzz_meta); real services stay far below (SQL tables: about 1,000 columns).
#define ES_META_OBJECTS_MAX 4096 //  objects per service
#define ES_META_FIELDS_MAX 4096  //  fields (and key columns) per object

//  Field data types. Metadata "datatype" names: string, int, number, boolean, date, datetime
//  (aliases accepted: integer/long -> int, double/float/decimal -> number, bool -> boolean).
typedef enum {
    ES_FT_STRING = 0,
    ES_FT_INT = 1,
    ES_FT_NUMBER = 2,
    ES_FT_BOOL = 3,
    ES_FT_DATE = 4,     //  "YYYY-MM-DD", stored as a string
    ES_FT_DATETIME = 5, //  ISO-8601 "YYYY-MM-DDTHH:MM:SS[.fff][Z|+hh:mm]", stored as a string
} es_ftype_t;

typedef struct {
    char *name;          //  column name, case-sensitive
    es_ftype_t type;     //  data type
    uint32_t length;     //  max length for strings, 0 = unbounded
    bool nullable;       //  may be null / absent
    bool creatable;      //  may be set on create
    bool updatable;      //  may be changed on update
    bool auto_generated; //  server assigns it (temporary negative value locally)
} es_meta_field_t;

typedef struct {
    char *name;              //  object (table) name
    es_meta_field_t *fields; //  columns in metadata order
    size_t nfields;          //  number of columns
    size_t *key;             //  indexes into fields of the primary key columns, in key order
    size_t nkey;             //  number of key columns (>= 1)
    char *expand;            //  operations.get.$expand, or NULL
} es_meta_object_t;

typedef struct {
    char *name;            //  object service name
    char *version;         //  service version ("1.0"), sent as the API-version header
    bool upload_cache;     //  server upload cache enabled
    char *conflict_policy; //  syncConflictResolutionPolicy ("None" if absent)
    char *timestamp;       //  metadata delta context, or NULL
    es_meta_object_t *objects; //  objects in metadata order
    size_t nobjects;       //  number of objects
    char *json;            //  the metadata document as received (NUL-terminated)
} es_meta_t;

//  Parse a metadata document:
//  {"name":"Svc","version":"1.0","uploadCache":true,"syncConflictResolutionPolicy":"None",
//   "timestamp":"...","objects":[{"name":"Customer","key":["id"],
//     "fields":[{"name":"id","datatype":"int","length":0,"nullable":false,"creatable":true,
//                "updatable":false,"auto_generated":true}, ...],
//     "relationships":[...],"operations":{"get":{"$expand":"..."}}}]}
//  NULL with err (ES_EPROTO) naming the path of what is wrong ("objects[1].key: ...").
//  Rejects: duplicate object or field names, a key naming no field, an object without key,
//  unknown datatype, more than one auto-generated key column, an auto-generated string key.
es_meta_t *es_meta_new(const char *json, size_t len, es_err_t *err);
void es_meta_destroy(es_meta_t **self_p);

//  Object by name (exact), or NULL.
const es_meta_object_t *es_meta_object(const es_meta_t *self, const char *name);
//  Index of field name[0..len) in obj, or -1.
int es_meta_field_index(const es_meta_object_t *obj, const char *name, size_t len);
//  "string", "int", ...
const char *es_meta_ftype_name(es_ftype_t type);

#endif
