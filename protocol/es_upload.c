//  es_upload - upload request bodies (SPEC 5.3) and upload response parsing (SPEC 5.4, 3.4.5).
//  Responses are parsed whole with yajl_tree: they are bounded by the upload batch size and the
//  HTTP size limit, so a streaming parser would buy nothing. Nesting is bounded before the tree
//  is built because yajl_tree_free() recurses once per level.
#include "protocol/es_upload.h"
#include "common/es_mem.h"
#include "protocol/es_json.h"
#include "protocol/es_record.h"
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_tree.h>

#define DEPTH_MAX 64 //  deepest nesting accepted in a response

//  ---------------------------------------------------------------------------------------------
//  Values as JSON, shared by the body and the key text of response records.

//  Shortest of %.15g / %.17g that reads back as the same double: the same text es_record_to_json
//  writes, so a value survives record -> JSON -> record unchanged.
static void
s_put_double(es_buf_t *out, double d)
{
    char tmp[40];
    snprintf(tmp, sizeof tmp, "%.15g", d);
    if (strtod(tmp, NULL) != d)
        snprintf(tmp, sizeof tmp, "%.17g", d);
    es_buf_puts(out, tmp);
}

//  -1 only for a non-finite double (JSON has no spelling for it).
static int
s_put_value(es_buf_t *out, const es_value_t *v)
{
    switch (v->type) {
    case ES_V_NULL:
        es_buf_puts(out, "null");
        break;
    case ES_V_BOOL:
        es_buf_puts(out, v->u.b ? "true" : "false");
        break;
    case ES_V_INT:
        es_record_put_int(out, v->u.i);
        break;
    case ES_V_DOUBLE:
        if (!isfinite(v->u.d))
            return -1;
        s_put_double(out, v->u.d);
        break;
    case ES_V_STR:
        es_buf_json_str(out, v->u.s.ptr, v->u.s.len);
        break;
    }
    return 0;
}

//  ---------------------------------------------------------------------------------------------
//  Request body

struct es_upload_body {
    es_buf_t records;              //  the records, comma-separated, without brackets
    es_buf_t out;                  //  the whole body, built by end
    size_t count;                  //  records added
    const es_meta_object_t **objs; //  distinct objects added (for totalObjects)
    size_t nobjs;                  //  entries used in objs
    size_t capobjs;                //  entries allocated in objs
};

es_upload_body_t *
es_upload_body_new(void)
{
    es_upload_body_t *self = es_calloc(1, sizeof *self);
    es_buf_init(&self->records);
    es_buf_init(&self->out);
    return self;
}

void
es_upload_body_destroy(es_upload_body_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    es_upload_body_t *self = *self_p;
    es_buf_release(&self->records);
    es_buf_release(&self->out);
    free(self->objs);
    free(self);
    *self_p = NULL;
}

void
es_upload_body_reset(es_upload_body_t *self)
{
    es_buf_reset(&self->records);
    es_buf_reset(&self->out);
    self->count = 0;
    self->nobjs = 0;
}

static bool
s_valid_action(const char *action)
{
    static const char *const actions[] = {"create", "update", "partialupdate", "delete"};
    for (size_t i = 0; i < sizeof actions / sizeof actions[0]; i++)
        if (strcmp(action, actions[i]) == 0)
            return true;
    return false;
}

//  Objects are compared by name: two metadata copies of the same service count once.
static void
s_note_object(es_upload_body_t *self, const es_meta_object_t *obj)
{
    for (size_t i = 0; i < self->nobjs; i++)
        if (strcmp(self->objs[i]->name, obj->name) == 0)
            return;
    if (self->nobjs == self->capobjs) {
        self->capobjs = self->capobjs ? self->capobjs * 2 : 4;
        self->objs = es_realloc(self->objs, self->capobjs * sizeof *self->objs);
    }
    self->objs[self->nobjs++] = obj;
}

int
es_upload_body_add(es_upload_body_t *self, const es_meta_object_t *obj, const char *action,
                   uint64_t rsn, const char *checksum, size_t checksum_len, const void *rec,
                   size_t rec_len, es_err_t *err)
{
    if (!obj)
        return es_err_set(err, ES_EINVAL, "upload record: no object");
    if (!action || !s_valid_action(action))
        return es_err_set(err, ES_EINVAL,
                          "%s: action '%.40s' is not create, update, partialupdate or delete",
                          obj->name, action ? action : "(null)");
    if (!checksum && checksum_len > 0)
        return es_err_set(err, ES_EINVAL, "%s: checksum of %zu bytes without data", obj->name,
                          checksum_len);
    //  es_record_get stops at the column it finds; a full pass first proves the whole map sound.
    es_err_t e;
    if (es_record_check(rec, rec_len, &e))
        return es_err_set(err, ES_EINVAL, "%s: %s", obj->name, e.what);
    for (size_t i = 0; i < obj->nkey; i++) {
        es_value_t v;
        const char *name = obj->fields[obj->key[i]].name;
        if (es_record_get(rec, rec_len, name, &v) != 1 || v.type == ES_V_NULL)
            return es_err_set(err, ES_EINVAL, "%s: key column '%s' missing", obj->name, name);
    }

    size_t start = self->records.len;
    es_buf_t *b = &self->records;
    if (self->count)
        es_buf_putc(b, ',');
    es_buf_putc(b, '{');
    //  Metadata order; columns not in metadata and null-valued columns are left out (3.4.2).
    for (size_t i = 0; i < obj->nfields; i++) {
        es_value_t v;
        const char *name = obj->fields[i].name;
        if (es_record_get(rec, rec_len, name, &v) != 1 || v.type == ES_V_NULL)
            continue;
        es_buf_json_str(b, name, strlen(name));
        es_buf_putc(b, ':');
        if (s_put_value(b, &v)) {
            b->len = start;
            b->data[start] = '\0';
            return es_err_set(err, ES_EINVAL, "%s.%s: not a finite number", obj->name, name);
        }
        es_buf_putc(b, ',');
    }
    es_buf_puts(b, "\"_metadata\":{\"object\":");
    es_buf_json_str(b, obj->name, strlen(obj->name));
    es_buf_puts(b, ",\"action\":");
    es_buf_json_str(b, action, strlen(action));
    es_buf_puts(b, ",\"checksum\":");
    es_buf_json_str(b, checksum ? checksum : "", checksum_len);
    es_buf_printf(b, ",\"rowId\":%llu,\"ignore_duplicate\":\"false\"}}", (unsigned long long)rsn);
    self->count++;
    s_note_object(self, obj);
    return 0;
}

const char *
es_upload_body_end(es_upload_body_t *self, bool has_more, size_t *len)
{
    es_buf_t *o = &self->out;
    es_buf_reset(o);
    es_buf_printf(o,
                  "{\"checksum\":\"\",\"sessionID\":\"\",\"echo\":[],\"hasMoreRecords\":\"%s\","
                  "\"abortonError\":\"false\",\"_metadata\":{\"totalNamespaces\":\"0\","
                  "\"totalRecords\":\"%zu\",\"totalObjects\":\"%zu\",\"recordCount\":\"%zu\"},"
                  "\"records\":[",
                  has_more ? "true" : "false", self->count, self->nobjs, self->count);
    es_buf_append(o, self->records.data, self->records.len);
    es_buf_puts(o, "]}");
    if (len)
        *len = o->len;
    return o->data;
}

size_t
es_upload_body_count(const es_upload_body_t *self)
{
    return self->count;
}

//  ---------------------------------------------------------------------------------------------
//  Response parsing

//  An empty MessagePack map: the record of an unknown object or a failed record without its key.
static const unsigned char s_empty_map[] = {0x80};

typedef struct {
    const es_meta_t *meta;
    es_upload_rec_fn *fn;
    void *ctx;
    es_upload_summary_t *sum;
    es_err_t *err;
    es_record_builder_t **builders; //  per metadata object, created on first use
    es_buf_t rec;                   //  the current record's MessagePack map
    es_buf_t pk;                    //  the current record's key as JSON
    es_buf_t intermediate;          //  the current record's intermediateErrors as JSON
    char path[96];                  //  "objects[i].records[j]"
} parse_t;

static const char *
s_type_name(yajl_val v)
{
    if (!v || YAJL_IS_NULL(v))
        return "null";
    if (YAJL_IS_STRING(v))
        return "string";
    if (YAJL_IS_NUMBER(v))
        return "number";
    if (YAJL_IS_TRUE(v) || YAJL_IS_FALSE(v))
        return "boolean";
    if (YAJL_IS_ARRAY(v))
        return "array";
    return "object";
}

//  The last value of key in object o (later duplicates win, as for record columns), or NULL.
//  A JSON null counts as absent: servers write "errmsg":null on success.
static yajl_val
s_member(yajl_val o, const char *key)
{
    yajl_val found = NULL;
    for (size_t i = 0; i < o->u.object.len; i++)
        if (strcmp(o->u.object.keys[i], key) == 0)
            found = o->u.object.values[i];
    return found && YAJL_IS_NULL(found) ? NULL : found;
}

//  Digits with an optional leading '-' (only if allow_neg), 1..20 characters.
static bool
s_int_text(const char *s, bool allow_neg)
{
    size_t n = strlen(s);
    if (n == 0 || n > 20)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!(s[i] >= '0' && s[i] <= '9') && !(allow_neg && i == 0 && s[i] == '-' && n > 1))
            return false;
    return true;
}

//  An integer as a JSON number without fraction/exponent, or a string of digits.
static bool
s_get_int(yajl_val v, bool allow_neg, int64_t *i_out, uint64_t *u_out)
{
    const char *text;
    if (YAJL_IS_NUMBER(v))
        text = v->u.number.r;
    else if (YAJL_IS_STRING(v))
        text = v->u.string;
    else
        return false;
    if (!s_int_text(text, allow_neg))
        return false;
    errno = 0;
    char *end;
    if (allow_neg) {
        long long x = strtoll(text, &end, 10);
        if (errno || *end)
            return false;
        *i_out = x;
    } else {
        unsigned long long x = strtoull(text, &end, 10);
        if (errno || *end)
            return false;
        *u_out = x;
    }
    return true;
}

//  "<path>: expected <what>, got string '12a'" (value shown for strings and numbers).
static int
s_fail_type(parse_t *p, const char *path, const char *what, yajl_val v)
{
    const char *text = YAJL_IS_STRING(v) ? v->u.string : YAJL_IS_NUMBER(v) ? v->u.number.r : NULL;
    if (text)
        return es_err_set(p->err, ES_EPROTO, "%s: expected %s, got %s '%.40s'", path, what,
                          s_type_name(v), text);
    return es_err_set(p->err, ES_EPROTO, "%s: expected %s, got %s", path, what, s_type_name(v));
}

static int
s_opt_int(parse_t *p, yajl_val o, const char *key, const char *prefix, bool *has, int64_t *out)
{
    yajl_val v = s_member(o, key);
    if (!v)
        return 0;
    uint64_t unused;
    if (!s_get_int(v, true, out, &unused)) {
        char path[160];
        snprintf(path, sizeof path, "%s%s", prefix, key);
        return s_fail_type(p, path, "an integer", v);
    }
    if (has)
        *has = true;
    return 0;
}

static int
s_opt_uint(parse_t *p, yajl_val o, const char *key, const char *prefix, bool *has, uint64_t *out)
{
    yajl_val v = s_member(o, key);
    if (!v)
        return 0;
    int64_t unused;
    if (!s_get_int(v, false, &unused, out)) {
        char path[160];
        snprintf(path, sizeof path, "%s%s", prefix, key);
        return s_fail_type(p, path, "a non-negative integer", v);
    }
    if (has)
        *has = true;
    return 0;
}

static int
s_opt_str(parse_t *p, yajl_val o, const char *key, const char *prefix, const char **out)
{
    yajl_val v = s_member(o, key);
    if (!v)
        return 0;
    if (!YAJL_IS_STRING(v)) {
        char path[160];
        snprintf(path, sizeof path, "%s%s", prefix, key);
        return s_fail_type(p, path, "a string", v);
    }
    *out = v->u.string;
    return 0;
}

//  A scalar column value as the builder wants it. Integer syntax within int64 -> int, any other
//  number -> double (as es_record_from_json decides). false for objects and arrays.
static bool
s_scalar(yajl_val v, es_value_t *out)
{
    if (YAJL_IS_NULL(v)) {
        out->type = ES_V_NULL;
    } else if (YAJL_IS_TRUE(v) || YAJL_IS_FALSE(v)) {
        out->type = ES_V_BOOL;
        out->u.b = YAJL_IS_TRUE(v);
    } else if (YAJL_IS_STRING(v)) {
        out->type = ES_V_STR;
        out->u.s.ptr = v->u.string;
        out->u.s.len = strlen(v->u.string);
    } else if (YAJL_IS_NUMBER(v)) {
        const char *r = v->u.number.r;
        out->type = ES_V_DOUBLE;
        if (strcspn(r, ".eE") == strlen(r)) {
            errno = 0;
            char *end;
            long long i = strtoll(r, &end, 10);
            if (errno == 0 && *end == '\0') {
                out->type = ES_V_INT;
                out->u.i = i;
            }
        }
        if (out->type == ES_V_DOUBLE)
            out->u.d = strtod(r, NULL); //  overflow gives +-HUGE_VAL; the builder rejects it
    } else {
        return false;
    }
    return true;
}

//  The key of the built record as {"col":v,...}, or "{}" if any key column is missing.
static void
s_pk_json(parse_t *p, const es_meta_object_t *obj, const void *rec, size_t len)
{
    es_buf_reset(&p->pk);
    es_buf_putc(&p->pk, '{');
    for (size_t i = 0; i < obj->nkey; i++) {
        const char *name = obj->fields[obj->key[i]].name;
        es_value_t v;
        if (es_record_get(rec, len, name, &v) != 1 || v.type == ES_V_NULL) {
            es_buf_reset(&p->pk);
            es_buf_puts(&p->pk, "{}");
            return;
        }
        if (i)
            es_buf_putc(&p->pk, ',');
        es_buf_json_str(&p->pk, name, strlen(name));
        es_buf_putc(&p->pk, ':');
        //  The builder only stores finite doubles.
        (void)s_put_value(&p->pk, &v);
    }
    es_buf_putc(&p->pk, '}');
}

//  The auto-generated key column of obj (its temporary value comes back as "_<name>"), or NULL.
static const char *
s_auto_key(const es_meta_object_t *obj)
{
    for (size_t i = 0; i < obj->nkey; i++)
        if (obj->fields[obj->key[i]].auto_generated)
            return obj->fields[obj->key[i]].name;
    return NULL;
}

//  Columns of record o into r->rec / r->pk_json / r->has_temp. A successful record must be
//  well-typed and carry its key; a failed one is reported with whatever could be built.
static int
s_columns(parse_t *p, yajl_val o, size_t obj_index, es_upload_rec_t *r)
{
    const es_meta_object_t *obj = r->object;
    bool strict = r->errmsg == NULL;
    if (!p->builders[obj_index])
        p->builders[obj_index] = es_record_builder_new(obj);
    es_record_builder_t *b = p->builders[obj_index];
    es_record_builder_reset(b);
    es_err_t e;
    for (size_t i = 0; i < o->u.object.len; i++) {
        const char *key = o->u.object.keys[i];
        yajl_val v = o->u.object.values[i];
        size_t klen = strlen(key);
        if (es_meta_field_index(obj, key, klen) < 0)
            continue; //  _metadata, _<pk>, child arrays (D17), extra server fields
        es_value_t sv;
        if (!s_scalar(v, &sv)) {
            if (!strict)
                continue;
            const es_meta_field_t *f = &obj->fields[es_meta_field_index(obj, key, klen)];
            return es_err_set(p->err, ES_EPROTO, "%s.%s: expected %s, got %s", p->path, key,
                              es_meta_ftype_name(f->type), s_type_name(v));
        }
        if (es_record_builder_set(b, key, klen, &sv, &e) && strict)
            return es_err_set(p->err, ES_EPROTO, "%s.%s", p->path, e.what);
    }
    if (es_record_builder_end(b, &p->rec, &e)) {
        if (strict)
            return es_err_set(p->err, ES_EPROTO, "%s: %s", p->path, e.what);
        r->rec = s_empty_map;
        r->rec_len = sizeof s_empty_map;
        r->pk_json = "{}";
    } else {
        r->rec = p->rec.data;
        r->rec_len = p->rec.len;
        s_pk_json(p, obj, r->rec, r->rec_len);
        r->pk_json = p->pk.data;
    }

    const char *auto_key = s_auto_key(obj);
    if (auto_key) {
        char name[256];
        snprintf(name, sizeof name, "_%s", auto_key);
        yajl_val v = s_member(o, name);
        uint64_t unused;
        if (v && YAJL_IS_NUMBER(v) && s_get_int(v, true, &r->temp_value, &unused))
            r->has_temp = true;
        else if (v && strict) {
            char path[sizeof p->path + sizeof name];
            snprintf(path, sizeof path, "%s.%s", p->path, name);
            return s_fail_type(p, path, "an integer", v);
        }
    }
    return 0;
}

static int
s_record(parse_t *p, yajl_val o, const char *object_name, const es_meta_object_t *obj,
         size_t obj_index)
{
    if (!YAJL_IS_OBJECT(o))
        return s_fail_type(p, p->path, "an object", o);
    es_upload_rec_t r = {
        .object = obj,
        .object_name = object_name,
        .checksum = "",
        .rec = s_empty_map,
        .rec_len = sizeof s_empty_map,
        .pk_json = "{}",
    };
    yajl_val md = s_member(o, "_metadata");
    if (md) {
        char prefix[128];
        snprintf(prefix, sizeof prefix, "%s._metadata.", p->path);
        if (!YAJL_IS_OBJECT(md)) {
            snprintf(prefix, sizeof prefix, "%s._metadata", p->path);
            return s_fail_type(p, prefix, "an object", md);
        }
        const char *action = NULL;
        if (s_opt_str(p, md, "action", prefix, &action) ||
            s_opt_str(p, md, "checksum", prefix, &r.checksum) ||
            s_opt_uint(p, md, "rowId", prefix, &r.has_row_id, &r.row_id) ||
            s_opt_int(p, md, "opstatus", prefix, NULL, &r.opstatus) ||
            s_opt_str(p, md, "errmsg", prefix, &r.errmsg))
            return -1;
        r.is_delete = action && strcmp(action, "delete") == 0;
        yajl_val ie = s_member(md, "intermediateErrors");
        if (ie) {
            if (!YAJL_IS_OBJECT(ie)) {
                snprintf(prefix, sizeof prefix, "%s._metadata.intermediateErrors", p->path);
                return s_fail_type(p, prefix, "an object", ie);
            }
            if (ie->u.object.len > 0) {
                es_buf_reset(&p->intermediate);
                es_buf_putc(&p->intermediate, '{');
                for (size_t i = 0; i < ie->u.object.len; i++) {
                    if (i)
                        es_buf_putc(&p->intermediate, ',');
                    es_buf_json_str(&p->intermediate, ie->u.object.keys[i],
                                    strlen(ie->u.object.keys[i]));
                    es_buf_putc(&p->intermediate, ':');
                    //  Depth is bounded by the scan before parsing, so recursion is too.
                    es_json_write(&p->intermediate, ie->u.object.values[i]);
                }
                es_buf_putc(&p->intermediate, '}');
                r.intermediate_errors = p->intermediate.data;
            }
        }
    }
    if (obj && s_columns(p, o, obj_index, &r))
        return -1;
    p->sum->records++;
    if (p->fn && p->fn(p->ctx, &r, p->err))
        return -1;
    return 0;
}

static int
s_object_entry(parse_t *p, yajl_val e, size_t ei)
{
    char path[64];
    snprintf(path, sizeof path, "objects[%zu]", ei);
    if (!YAJL_IS_OBJECT(e))
        return s_fail_type(p, path, "an object", e);
    snprintf(path, sizeof path, "objects[%zu].", ei);
    const char *name = NULL;
    if (s_opt_str(p, e, "name", path, &name))
        return -1;
    if (!name)
        return es_err_set(p->err, ES_EPROTO, "objects[%zu].name: missing", ei);
    yajl_val recs = s_member(e, "records");
    if (!recs)
        return 0;
    if (!YAJL_IS_ARRAY(recs)) {
        snprintf(path, sizeof path, "objects[%zu].records", ei);
        return s_fail_type(p, path, "an array", recs);
    }
    const es_meta_object_t *obj = es_meta_object(p->meta, name);
    size_t obj_index = obj ? (size_t)(obj - p->meta->objects) : 0;
    for (size_t i = 0; i < recs->u.array.len; i++) {
        snprintf(p->path, sizeof p->path, "objects[%zu].records[%zu]", ei, i);
        if (s_record(p, recs->u.array.values[i], name, obj, obj_index))
            return -1;
    }
    return 0;
}

//  Bound nesting before yajl_tree builds (and later frees, recursively) the tree. Brackets
//  inside strings do not count; the scan is only exact for valid JSON, and yajl rejects the rest.
static int
s_check_depth(const char *json, size_t len, es_err_t *err)
{
    size_t at = 0;
    if (es_json_too_deep(json, len, DEPTH_MAX, &at))
        return es_err_set(err, ES_EPROTO, "response: nested deeper than %d levels at byte %zu",
                          DEPTH_MAX, at);
    return 0;
}

static void
s_root_errmsg(yajl_val root, es_upload_summary_t *sum)
{
    yajl_val msg = s_member(root, "errmsg");
    yajl_val code = s_member(root, "errcode");
    const char *m = msg && YAJL_IS_STRING(msg) ? msg->u.string : NULL;
    const char *c = !code                  ? NULL
                    : YAJL_IS_STRING(code) ? code->u.string
                    : YAJL_IS_NUMBER(code) ? code->u.number.r
                                           : NULL;
    if (m && c)
        snprintf(sum->errmsg, sizeof sum->errmsg, "%s (errcode %s)", m, c);
    else if (m)
        snprintf(sum->errmsg, sizeof sum->errmsg, "%s", m);
    else if (c)
        snprintf(sum->errmsg, sizeof sum->errmsg, "errcode %s", c);
}

static int
s_parse_root(parse_t *p, yajl_val root)
{
    es_upload_summary_t *sum = p->sum;
    if (!YAJL_IS_OBJECT(root))
        return s_fail_type(p, "response", "an object", root);
    if (s_opt_int(p, root, "opstatus", "", &sum->has_opstatus, &sum->opstatus))
        return -1;
    yajl_val msg = s_member(root, "errmsg");
    if (msg && !YAJL_IS_STRING(msg))
        return s_fail_type(p, "errmsg", "a string", msg);
    yajl_val code = s_member(root, "errcode");
    if (code && !YAJL_IS_STRING(code) && !YAJL_IS_NUMBER(code))
        return s_fail_type(p, "errcode", "a string or number", code);
    s_root_errmsg(root, sum);

    yajl_val md = s_member(root, "_metadata");
    if (md) {
        if (!YAJL_IS_OBJECT(md))
            return s_fail_type(p, "_metadata", "an object", md);
        sum->has_metadata = true;
        if (s_opt_uint(p, md, "recordCount", "_metadata.", NULL, &sum->record_count) ||
            s_opt_uint(p, md, "successCount", "_metadata.", NULL, &sum->success_count) ||
            s_opt_uint(p, md, "failureCount", "_metadata.", NULL, &sum->failure_count))
            return -1;
    }
    yajl_val objs = s_member(root, "objects");
    if (!objs)
        return 0;
    if (!YAJL_IS_ARRAY(objs))
        return s_fail_type(p, "objects", "an array", objs);
    for (size_t i = 0; i < objs->u.array.len; i++)
        if (s_object_entry(p, objs->u.array.values[i], i))
            return -1;
    return 0;
}

int
es_upload_parse(const es_meta_t *meta, const char *json, size_t len, es_upload_rec_fn *fn,
                void *ctx, es_upload_summary_t *sum, es_err_t *err)
{
    es_upload_summary_t local;
    if (!sum)
        sum = &local;
    memset(sum, 0, sizeof *sum);
    if (!json || len == 0)
        return es_err_set(err, ES_EPROTO, "response: empty body");
    //  yajl_tree_parse() reads a C string: a NUL would hide the rest (and is not JSON anyway).
    const char *nul = memchr(json, '\0', len);
    if (nul)
        return es_err_set(err, ES_EPROTO, "response: invalid JSON: NUL byte at offset %zu",
                          (size_t)(nul - json));
    if (s_check_depth(json, len, err))
        return -1;
    char *text = es_strndup(json, len);
    char errbuf[256];
    errbuf[0] = '\0';
    yajl_val root = yajl_tree_parse(text, errbuf, sizeof errbuf);
    free(text);
    if (!root) {
        size_t n = strcspn(errbuf, "\r\n");
        return es_err_set(err, ES_EPROTO, "response: invalid JSON: %.*s", (int)n, errbuf);
    }
    parse_t p = {.meta = meta, .fn = fn, .ctx = ctx, .sum = sum, .err = err};
    p.builders = es_calloc(meta->nobjects ? meta->nobjects : 1, sizeof *p.builders);
    es_buf_init(&p.rec);
    es_buf_init(&p.pk);
    es_buf_init(&p.intermediate);
    int rc = s_parse_root(&p, root);
    for (size_t i = 0; i < meta->nobjects; i++)
        es_record_builder_destroy(&p.builders[i]);
    free(p.builders);
    es_buf_release(&p.rec);
    es_buf_release(&p.pk);
    es_buf_release(&p.intermediate);
    yajl_tree_free(root);
    return rc;
}
