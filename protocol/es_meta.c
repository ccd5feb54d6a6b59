//  es_meta - object service metadata: parsed once at setup (yajl_tree, the document is small) and
//  validated so every later module can trust names, types and keys without checking again.
#include "protocol/es_meta.h"
#include "common/es_mem.h"
#include "protocol/es_json.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yajl/yajl_tree.h>

//  Room for JSON paths in errors: "objects[N]", then ".fields[N]" or ".operations.get.", then
//  ".". N has at most 20 digits.
#define S_OBJ_PATH 32
#define S_MEMBER_PATH (S_OBJ_PATH + 48)

static const struct {
    const char *name;
    es_ftype_t type;
} s_type_names[] = {
    {"string", ES_FT_STRING}, {"int", ES_FT_INT},        {"integer", ES_FT_INT},
    {"long", ES_FT_INT},      {"number", ES_FT_NUMBER},  {"double", ES_FT_NUMBER},
    {"float", ES_FT_NUMBER},  {"decimal", ES_FT_NUMBER}, {"boolean", ES_FT_BOOL},
    {"bool", ES_FT_BOOL},     {"date", ES_FT_DATE},      {"datetime", ES_FT_DATETIME},
};

const char *
es_meta_ftype_name(es_ftype_t type)
{
    switch (type) {
    case ES_FT_STRING:
        return "string";
    case ES_FT_INT:
        return "int";
    case ES_FT_NUMBER:
        return "number";
    case ES_FT_BOOL:
        return "boolean";
    case ES_FT_DATE:
        return "date";
    case ES_FT_DATETIME:
        return "datetime";
    }
    return "unknown";
}

//  JSON type name of v, for "expected a string, got number".
static const char *
s_json_type(yajl_val v)
{
    if (!v || YAJL_IS_NULL(v))
        return "null";
    if (YAJL_IS_STRING(v))
        return "string";
    if (YAJL_IS_NUMBER(v))
        return "number";
    if (YAJL_IS_OBJECT(v))
        return "object";
    if (YAJL_IS_ARRAY(v))
        return "array";
    return "boolean";
}

//  Member key of object o, or NULL if absent. Later duplicates are ignored, as yajl keeps all.
static yajl_val
s_member(yajl_val o, const char *key)
{
    for (size_t i = 0; i < o->u.object.len; i++)
        if (strcmp(o->u.object.keys[i], key) == 0)
            return o->u.object.values[i];
    return NULL;
}

//  Required non-empty string member.
static int
s_get_name(yajl_val o, const char *key, const char *path, const char **out, es_err_t *err)
{
    yajl_val v = s_member(o, key);
    if (!v)
        return es_err_set(err, ES_EPROTO, "%s%s: missing", path, key);
    if (!YAJL_IS_STRING(v))
        return es_err_set(err, ES_EPROTO, "%s%s: expected a string, got %s", path, key,
                          s_json_type(v));
    if (v->u.string[0] == '\0')
        return es_err_set(err, ES_EPROTO, "%s%s: must not be empty", path, key);
    *out = v->u.string;
    return 0;
}

//  Optional string member (absent or null -> *out untouched).
static int
s_get_opt_str(yajl_val o, const char *key, const char *path, const char **out, es_err_t *err)
{
    yajl_val v = s_member(o, key);
    if (!v || YAJL_IS_NULL(v))
        return 0;
    if (!YAJL_IS_STRING(v))
        return es_err_set(err, ES_EPROTO, "%s%s: expected a string, got %s", path, key,
                          s_json_type(v));
    *out = v->u.string;
    return 0;
}

//  Optional boolean member (absent or null -> *out untouched).
static int
s_get_opt_bool(yajl_val o, const char *key, const char *path, bool *out, es_err_t *err)
{
    yajl_val v = s_member(o, key);
    if (!v || YAJL_IS_NULL(v))
        return 0;
    if (YAJL_IS_TRUE(v))
        *out = true;
    else if (YAJL_IS_FALSE(v))
        *out = false;
    else
        return es_err_set(err, ES_EPROTO, "%s%s: expected a boolean, got %s", path, key,
                          s_json_type(v));
    return 0;
}

static int
s_parse_type(const char *name, es_ftype_t *out)
{
    for (size_t i = 0; i < sizeof s_type_names / sizeof s_type_names[0]; i++)
        if (strcasecmp(name, s_type_names[i].name) == 0) {
            *out = s_type_names[i].type;
            return 0;
        }
    return -1;
}

static int
s_parse_field(yajl_val f, const char *path, es_meta_field_t *field, es_err_t *err)
{
    char p[S_MEMBER_PATH + 2];
    snprintf(p, sizeof p, "%s.", path);
    if (!YAJL_IS_OBJECT(f))
        return es_err_set(err, ES_EPROTO, "%s: expected an object, got %s", path, s_json_type(f));
    const char *name, *type;
    if (s_get_name(f, "name", p, &name, err) || s_get_name(f, "datatype", p, &type, err))
        return -1;
    field->name = es_strdup(name);
    if (s_parse_type(type, &field->type))
        return es_err_set(err, ES_EPROTO, "%sdatatype: unknown type '%s'", p, type);
    yajl_val len = s_member(f, "length");
    if (len && !YAJL_IS_NULL(len)) {
        if (!YAJL_IS_INTEGER(len) || len->u.number.i < 0 || len->u.number.i > UINT32_MAX)
            return es_err_set(err, ES_EPROTO, "%slength: expected an integer 0..%u", p,
                              (unsigned)UINT32_MAX);
        field->length = (uint32_t)len->u.number.i;
    }
    field->nullable = true;
    field->creatable = true;
    field->updatable = true;
    field->auto_generated = false;
    if (s_get_opt_bool(f, "nullable", p, &field->nullable, err) ||
        s_get_opt_bool(f, "creatable", p, &field->creatable, err) ||
        s_get_opt_bool(f, "updatable", p, &field->updatable, err) ||
        s_get_opt_bool(f, "auto_generated", p, &field->auto_generated, err))
        return -1;
    return 0;
}

static int
s_parse_key(yajl_val o, const char *path, es_meta_object_t *obj, es_err_t *err)
{
    yajl_val key = s_member(o, "key");
    if (!key)
        return es_err_set(err, ES_EPROTO, "%s.key: missing", path);
    if (!YAJL_IS_ARRAY(key))
        return es_err_set(err, ES_EPROTO, "%s.key: expected an array, got %s", path,
                          s_json_type(key));
    if (key->u.array.len == 0)
        return es_err_set(err, ES_EPROTO, "%s.key: must name at least one field", path);
    if (key->u.array.len > ES_META_FIELDS_MAX)
        return es_err_set(err, ES_EPROTO, "%s.key: more than %d fields", path, ES_META_FIELDS_MAX);
    obj->key = es_calloc(key->u.array.len, sizeof *obj->key);
    size_t autos = 0;
    for (size_t i = 0; i < key->u.array.len; i++) {
        yajl_val k = key->u.array.values[i];
        if (!YAJL_IS_STRING(k))
            return es_err_set(err, ES_EPROTO, "%s.key[%zu]: expected a string, got %s", path, i,
                              s_json_type(k));
        int idx = es_meta_field_index(obj, k->u.string, strlen(k->u.string));
        if (idx < 0)
            return es_err_set(err, ES_EPROTO, "%s.key[%zu]: no field '%s'", path, i, k->u.string);
        for (size_t j = 0; j < obj->nkey; j++)
            if (obj->key[j] == (size_t)idx)
                return es_err_set(err, ES_EPROTO, "%s.key[%zu]: field '%s' named twice", path, i,
                                  k->u.string);
        const es_meta_field_t *f = &obj->fields[idx];
        if (f->auto_generated) {
            //  A temporary local key must be a negative number until the server assigns one.
            if (f->type != ES_FT_INT && f->type != ES_FT_NUMBER)
                return es_err_set(err, ES_EPROTO,
                                  "%s.key[%zu]: auto-generated key '%s' must be int or number, "
                                  "not %s",
                                  path, i, f->name, es_meta_ftype_name(f->type));
            if (++autos > 1)
                return es_err_set(err, ES_EPROTO, "%s.key: more than one auto-generated key column",
                                  path);
        }
        obj->key[obj->nkey++] = (size_t)idx;
    }
    return 0;
}

static int
s_parse_object(yajl_val o, const char *path, es_meta_object_t *obj, es_err_t *err)
{
    char p[S_OBJ_PATH + 2], fp[S_MEMBER_PATH];
    snprintf(p, sizeof p, "%s.", path);
    if (!YAJL_IS_OBJECT(o))
        return es_err_set(err, ES_EPROTO, "%s: expected an object, got %s", path, s_json_type(o));
    const char *name;
    if (s_get_name(o, "name", p, &name, err))
        return -1;
    obj->name = es_strdup(name);

    yajl_val fields = s_member(o, "fields");
    if (!fields)
        return es_err_set(err, ES_EPROTO, "%sfields: missing", p);
    if (!YAJL_IS_ARRAY(fields))
        return es_err_set(err, ES_EPROTO, "%sfields: expected an array, got %s", p,
                          s_json_type(fields));
    if (fields->u.array.len == 0)
        return es_err_set(err, ES_EPROTO, "%sfields: must not be empty", p);
    if (fields->u.array.len > ES_META_FIELDS_MAX)
        return es_err_set(err, ES_EPROTO, "%sfields: more than %d fields", p, ES_META_FIELDS_MAX);
    obj->fields = es_calloc(fields->u.array.len, sizeof *obj->fields);
    for (size_t i = 0; i < fields->u.array.len; i++) {
        snprintf(fp, sizeof fp, "%sfields[%zu]", p, i);
        es_meta_field_t *f = &obj->fields[i];
        //  Count it first so destroy frees its name even if parsing fails half way.
        obj->nfields++;
        if (s_parse_field(fields->u.array.values[i], fp, f, err))
            return -1;
        if (es_meta_field_index(obj, f->name, strlen(f->name)) != (int)i)
            return es_err_set(err, ES_EPROTO, "%s.name: duplicate field '%s'", fp, f->name);
    }
    if (s_parse_key(o, path, obj, err))
        return -1;

    const char *expand = NULL;
    yajl_val ops = s_member(o, "operations");
    if (ops && !YAJL_IS_NULL(ops)) {
        if (!YAJL_IS_OBJECT(ops))
            return es_err_set(err, ES_EPROTO, "%soperations: expected an object, got %s", p,
                              s_json_type(ops));
        yajl_val get = s_member(ops, "get");
        //  Other operations only matter for hierarchical sync (D17), which comes later.
        if (get && YAJL_IS_OBJECT(get)) {
            snprintf(fp, sizeof fp, "%soperations.get.", p);
            if (s_get_opt_str(get, "$expand", fp, &expand, err))
                return -1;
        }
    }
    if (expand)
        obj->expand = es_strdup(expand);
    return 0;
}

static int
s_parse(es_meta_t *self, yajl_val root, es_err_t *err)
{
    if (!YAJL_IS_OBJECT(root))
        return es_err_set(err, ES_EPROTO, "metadata: expected an object, got %s",
                          s_json_type(root));
    const char *name, *version = "1.0", *policy = "None", *timestamp = NULL;
    if (s_get_name(root, "name", "", &name, err))
        return -1;
    //  A numeric version ("version": 1.0) is sent as written, so keep its text.
    yajl_val v = s_member(root, "version");
    if (v && YAJL_IS_NUMBER(v))
        version = v->u.number.r;
    else if (s_get_opt_str(root, "version", "", &version, err))
        return -1;
    if (s_member(root, "syncConflictResolutionPolicy")) {
        if (s_get_opt_str(root, "syncConflictResolutionPolicy", "", &policy, err))
            return -1;
    } else if (s_get_opt_str(root, "conflict_policy", "", &policy, err)) {
        return -1;
    }
    if (s_get_opt_str(root, "timestamp", "", &timestamp, err) ||
        s_get_opt_bool(root, "uploadCache", "", &self->upload_cache, err))
        return -1;
    self->name = es_strdup(name);
    self->version = es_strdup(version);
    self->conflict_policy = es_strdup(policy);
    self->timestamp = timestamp ? es_strdup(timestamp) : NULL;

    yajl_val objects = s_member(root, "objects");
    if (!objects)
        return es_err_set(err, ES_EPROTO, "objects: missing");
    if (!YAJL_IS_ARRAY(objects))
        return es_err_set(err, ES_EPROTO, "objects: expected an array, got %s",
                          s_json_type(objects));
    if (objects->u.array.len > ES_META_OBJECTS_MAX)
        return es_err_set(err, ES_EPROTO, "objects: more than %d objects", ES_META_OBJECTS_MAX);
    self->objects =
        es_calloc(objects->u.array.len ? objects->u.array.len : 1, sizeof *self->objects);
    for (size_t i = 0; i < objects->u.array.len; i++) {
        char path[S_OBJ_PATH];
        snprintf(path, sizeof path, "objects[%zu]", i);
        self->nobjects++;
        if (s_parse_object(objects->u.array.values[i], path, &self->objects[i], err))
            return -1;
        for (size_t j = 0; j < i; j++)
            if (strcmp(self->objects[j].name, self->objects[i].name) == 0)
                return es_err_set(err, ES_EPROTO, "%s.name: duplicate object '%s'", path,
                                  self->objects[i].name);
    }
    return 0;
}

es_meta_t *
es_meta_new(const char *json, size_t len, es_err_t *err)
{
    es_meta_t *self = es_calloc(1, sizeof *self);
    self->json = es_strndup(json ? json : "", json ? len : 0);
    if (!json || strlen(self->json) != len) {
        es_err_set(err, ES_EPROTO, "metadata: invalid JSON: contains a NUL byte");
        es_meta_destroy(&self);
        return NULL;
    }
    size_t at;
    if (es_json_too_deep(self->json, len, ES_JSON_DEPTH_MAX, &at)) {
        es_err_set(err, ES_EPROTO, "metadata: nested deeper than %d levels at byte %zu",
                   ES_JSON_DEPTH_MAX, at);
        es_meta_destroy(&self);
        return NULL;
    }
    char errbuf[256];
    errbuf[0] = '\0';
    yajl_val root = yajl_tree_parse(self->json, errbuf, sizeof errbuf);
    if (!root) {
        //  yajl's message spans lines (text and a caret); the first line is the useful part.
        errbuf[strcspn(errbuf, "\r\n")] = '\0';
        es_err_set(err, ES_EPROTO, "metadata: invalid JSON: %s",
                   errbuf[0] ? errbuf : "parse error");
        es_meta_destroy(&self);
        return NULL;
    }
    int rc = s_parse(self, root, err);
    yajl_tree_free(root);
    if (rc)
        es_meta_destroy(&self);
    return self;
}

void
es_meta_destroy(es_meta_t **self_p)
{
    if (!*self_p)
        return;
    es_meta_t *self = *self_p;
    for (size_t i = 0; i < self->nobjects; i++) {
        es_meta_object_t *obj = &self->objects[i];
        free(obj->expand);
        free(obj->key);
        for (size_t j = 0; j < obj->nfields; j++)
            free(obj->fields[j].name);
        free(obj->fields);
        free(obj->name);
    }
    free(self->objects);
    free(self->timestamp);
    free(self->conflict_policy);
    free(self->version);
    free(self->name);
    free(self->json);
    free(self);
    *self_p = NULL;
}

const es_meta_object_t *
es_meta_object(const es_meta_t *self, const char *name)
{
    for (size_t i = 0; i < self->nobjects; i++)
        if (strcmp(self->objects[i].name, name) == 0)
            return &self->objects[i];
    return NULL;
}

int
es_meta_field_index(const es_meta_object_t *obj, const char *name, size_t len)
{
    for (size_t i = 0; i < obj->nfields; i++) {
        const char *f = obj->fields[i].name;
        //  A field whose name is still NULL is half-parsed; nothing matches it.
        if (f && strlen(f) == len && memcmp(f, name, len) == 0)
            return (int)i;
    }
    return -1;
}
