//  es_upload - upload request bodies (SPEC 5.3) and upload response parsing (SPEC 5.4, 3.4.5).
//  Responses are parsed whole (the actor bounds them at 16 times their request) into a compact
//  tree, then walked: see "Response parsing".
#include "protocol/es_upload.h"
#include "common/es_mem.h"
#include "protocol/es_json.h"
#include "protocol/es_record.h"
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_parse.h>

#define DEPTH_MAX 64 //  deepest nesting accepted in a response

//  ---------------------------------------------------------------------------------------------
//  Values as JSON, shared by the body and the key text of response records.

//  Exact powers of ten (every one up to 1e22 is a double).
static const double s_pow10[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                 1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

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
        es_record_put_double(out, v->u.d);
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
    es_buf_t records;                 //  the records, comma-separated, without brackets
    es_buf_t out;                     //  the whole body, built by end
    size_t count;                     //  records added
    const es_meta_object_t **objs;    //  distinct objects added (for totalObjects)
    size_t nobjs;                     //  entries used in objs
    size_t capobjs;                   //  entries allocated in objs
    const es_meta_object_t *names_of; //  the object whose column names names holds
    es_buf_t names;                   //  its columns as "name": (JSON), one after the other
    size_t *name_at;                  //  per column: offset in names, then one past the last
};

es_upload_body_t *
es_upload_body_new(void)
{
    es_upload_body_t *self = es_calloc(1, sizeof *self);
    es_buf_init(&self->records);
    es_buf_init(&self->out);
    es_buf_init(&self->names);
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
    es_buf_release(&self->names);
    free(self->name_at);
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
    self->names_of = NULL; //  metadata may be freed and another allocated at its address
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

//  A record map read in its own order (es_record_check has vouched for it): the request body
//  walks it once instead of looking each metadata column up.
typedef struct {
    const uint8_t *p, *end;
} mp_t;

static bool
s_mp_take(mp_t *m, size_t n, uint64_t *out)
{
    if ((size_t)(m->end - m->p) < n)
        return false;
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++)
        v = (v << 8) | m->p[i];
    m->p += n;
    *out = v;
    return true;
}

static bool
s_mp_str(mp_t *m, uint8_t t, const char **s, size_t *len)
{
    uint64_t n;
    if ((t & 0xE0) == 0xA0)
        n = t & 0x1F;
    else if (t < 0xd9 || t > 0xdb || !s_mp_take(m, (size_t)1 << (t - 0xd9), &n))
        return false;
    if ((uint64_t)(m->end - m->p) < n)
        return false;
    *s = (const char *)m->p;
    *len = (size_t)n;
    m->p += n;
    return true;
}

//  One value as es_record_get decodes it. false on anything else.
static bool
s_mp_value(mp_t *m, es_value_t *v)
{
    if (m->p >= m->end)
        return false;
    uint8_t t = *m->p++;
    uint64_t u;
    if (t <= 0x7f || t >= 0xe0) {
        v->type = ES_V_INT;
        v->u.i = t <= 0x7f ? t : (int8_t)t;
        return true;
    }
    switch (t) {
    case 0xc0:
        v->type = ES_V_NULL;
        return true;
    case 0xc2:
    case 0xc3:
        v->type = ES_V_BOOL;
        v->u.b = t == 0xc3;
        return true;
    case 0xcc:
    case 0xcd:
    case 0xce:
    case 0xcf:
        if (!s_mp_take(m, (size_t)1 << (t - 0xcc), &u) || u > INT64_MAX)
            return false;
        v->type = ES_V_INT;
        v->u.i = (int64_t)u;
        return true;
    case 0xd0:
    case 0xd1:
    case 0xd2:
    case 0xd3: {
        size_t n = (size_t)1 << (t - 0xd0);
        if (!s_mp_take(m, n, &u))
            return false;
        unsigned shift = (unsigned)(64 - 8 * n);
        v->type = ES_V_INT;
        v->u.i = (int64_t)(u << shift) >> shift;
        return true;
    }
    case 0xca: {
        if (!s_mp_take(m, 4, &u))
            return false;
        uint32_t bits = (uint32_t)u;
        float f;
        memcpy(&f, &bits, sizeof f);
        v->type = ES_V_DOUBLE;
        v->u.d = f;
        return true;
    }
    case 0xcb:
        if (!s_mp_take(m, 8, &u))
            return false;
        memcpy(&v->u.d, &u, sizeof v->u.d);
        v->type = ES_V_DOUBLE;
        return true;
    }
    v->type = ES_V_STR;
    return s_mp_str(m, t, &v->u.s.ptr, &v->u.s.len);
}

//  The columns of rec in metadata order, nulls and unknown columns left out, as
//  "name":value, each followed by a comma. Done in one walk when the record's columns come in
//  metadata order (as the record builder writes them); false, with nothing written, when they
//  do not or a value has no JSON spelling: the caller then looks each column up.
//  The columns of obj as JSON member names ("name":), escaped once per object and body.
static void
s_names(es_upload_body_t *self, const es_meta_object_t *obj)
{
    if (self->names_of == obj)
        return;
    es_buf_reset(&self->names);
    self->name_at = es_realloc(self->name_at, (obj->nfields + 1) * sizeof *self->name_at);
    for (size_t i = 0; i < obj->nfields; i++) {
        self->name_at[i] = self->names.len;
        es_buf_json_str(&self->names, obj->fields[i].name, strlen(obj->fields[i].name));
        es_buf_putc(&self->names, ':');
    }
    self->name_at[obj->nfields] = self->names.len;
    self->names_of = obj;
}

static bool
s_put_columns_in_order(es_upload_body_t *self, const es_meta_object_t *obj, const void *rec,
                       size_t len)
{
    es_buf_t *b = &self->records;
    s_names(self, obj);
    size_t start = b->len;
    mp_t m = {rec, (const uint8_t *)rec + len};
    uint64_t n;
    if (m.p >= m.end)
        return false;
    uint8_t t = *m.p++;
    if ((t & 0xF0) == 0x80)
        n = t & 0x0F;
    else if (!(t == 0xde && s_mp_take(&m, 2, &n)) && !(t == 0xdf && s_mp_take(&m, 4, &n)))
        return false;
    size_t next = 0; //  metadata index the next column may have, at least
    for (uint64_t i = 0; i < n; i++) {
        const char *k;
        size_t klen;
        es_value_t v;
        if (m.p >= m.end || !s_mp_str(&m, *m.p++, &k, &klen) || !s_mp_value(&m, &v))
            goto fallback;
        while (next < obj->nfields && (strlen(obj->fields[next].name) != klen ||
                                       memcmp(obj->fields[next].name, k, klen) != 0))
            next++;
        if (next == obj->nfields) //  unknown, repeated or out of order
            goto fallback;
        size_t at = self->name_at[next], end = self->name_at[next + 1];
        next++;
        if (v.type == ES_V_NULL)
            continue;
        es_buf_append(b, self->names.data + at, end - at);
        if (s_put_value(b, &v))
            goto fallback;
        es_buf_putc(b, ',');
    }
    return true;
fallback:
    b->len = start;
    b->data[start] = '\0';
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
    for (size_t i = s_put_columns_in_order(self, obj, rec, rec_len) ? obj->nfields : 0;
         i < obj->nfields; i++) {
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
    es_buf_puts(b, ",\"rowId\":");
    char digits[24];
    char *d = digits + sizeof digits;
    *--d = '\0';
    do {
        *--d = (char)('0' + rsn % 10);
        rsn /= 10;
    } while (rsn);
    es_buf_puts(b, d);
    es_buf_puts(b, ",\"ignore_duplicate\":\"false\"}}");
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
//
//  The body becomes a compact tree: one array of nodes in document order and one buffer of
//  NUL-terminated texts, instead of yajl_tree's allocation per value. A strict-JSON reader
//  fills it for plain ASCII text; anything else goes through yajl's event parser, which also
//  words every error. The whole body is parsed before any record is reported, so a syntax
//  error anywhere still wins over what the records say, as it did with yajl_tree. Texts keep
//  yajl_tree's C-string view: a decoded "\u0000" ends a string or key.

//  An empty MessagePack map: the record of an unknown object or a failed record without its key.
static const unsigned char s_empty_map[] = {0x80};

enum { J_NULL, J_TRUE, J_FALSE, J_NUM, J_STR, J_OBJ, J_ARR };
#define J_NONE 0 //  "no node": the root is node 0 and never a member or element
#define J_NO_KEY UINT32_MAX

typedef struct {
    uint8_t type;
    uint32_t key; //  offset of its member key in text (J_NO_KEY in arrays and at the root)
    uint32_t a;   //  J_NUM / J_STR: offset of its text; J_OBJ / J_ARR: index past its subtree
    uint32_t n;   //  J_OBJ / J_ARR: members or elements
} jnode_t;

typedef struct {
    jnode_t *nodes;
    size_t n, cap;
    es_buf_t text;  //  keys, strings and number texts, each NUL-terminated
    uint32_t *open; //  containers not closed yet, innermost last
    size_t nopen, capopen;
    uint32_t key;  //  the pending member key (J_NO_KEY: none)
    bool too_deep; //  a callback stopped the parse: nesting over DEPTH_MAX
    bool no_nul;   //  texts come from the fast parser, which lets no NUL through
} jtree_t;

static void
s_jtree_reset(jtree_t *t)
{
    t->n = 0;
    t->nopen = 0;
    t->key = J_NO_KEY;
    t->too_deep = false;
    t->no_nul = false;
    es_buf_reset(&t->text);
}

static void
s_jtree_release(jtree_t *t)
{
    free(t->nodes);
    free(t->open);
    es_buf_release(&t->text);
}

//  Text up to len bytes or the first NUL, whichever comes first (yajl_tree's strlen view).
static uint32_t
s_jtext(jtree_t *t, const unsigned char *s, size_t len)
{
    const void *nul = t->no_nul ? NULL : memchr(s, '\0', len);
    size_t n = nul ? (size_t)((const unsigned char *)nul - s) : len;
    uint32_t off = (uint32_t)t->text.len;
    es_buf_append(&t->text, s, n);
    es_buf_putc(&t->text, '\0');
    return off;
}

static jnode_t *
s_jadd(jtree_t *t, uint8_t type)
{
    if (t->n == t->cap) {
        t->cap = t->cap ? t->cap * 2 : 256;
        t->nodes = es_realloc(t->nodes, t->cap * sizeof *t->nodes);
    }
    jnode_t *node = &t->nodes[t->n++];
    node->type = type;
    node->key = t->key;
    node->a = 0;
    node->n = 0;
    t->key = J_NO_KEY;
    if (t->nopen)
        t->nodes[t->open[t->nopen - 1]].n++;
    return node;
}

static int
s_cb_null(void *ctx)
{
    s_jadd(ctx, J_NULL);
    return 1;
}

static int
s_cb_bool(void *ctx, int b)
{
    s_jadd(ctx, b ? J_TRUE : J_FALSE);
    return 1;
}

static int
s_cb_number(void *ctx, const char *s, size_t len)
{
    jtree_t *t = ctx;
    uint32_t off = s_jtext(t, (const unsigned char *)s, len);
    s_jadd(t, J_NUM)->a = off;
    return 1;
}

static int
s_cb_string(void *ctx, const unsigned char *s, size_t len)
{
    jtree_t *t = ctx;
    uint32_t off = s_jtext(t, s, len);
    s_jadd(t, J_STR)->a = off;
    return 1;
}

static int
s_cb_key(void *ctx, const unsigned char *s, size_t len)
{
    jtree_t *t = ctx;
    t->key = s_jtext(t, s, len);
    return 1;
}

//  The depth scan before parsing is exact for valid JSON only (a comment can hide brackets
//  from it): the tree refuses to nest deeper whatever the scan saw.
static int
s_cb_open(jtree_t *t, uint8_t type)
{
    if (t->nopen >= DEPTH_MAX) {
        t->too_deep = true;
        return 0;
    }
    s_jadd(t, type);
    if (t->nopen == t->capopen) {
        t->capopen = t->capopen ? t->capopen * 2 : 16;
        t->open = es_realloc(t->open, t->capopen * sizeof *t->open);
    }
    t->open[t->nopen++] = (uint32_t)(t->n - 1);
    return 1;
}

static int
s_cb_start_map(void *ctx)
{
    return s_cb_open(ctx, J_OBJ);
}

static int
s_cb_start_array(void *ctx)
{
    return s_cb_open(ctx, J_ARR);
}

static int
s_cb_close(void *ctx)
{
    jtree_t *t = ctx;
    //  yajl only closes what it opened.
    t->nodes[t->open[--t->nopen]].a = (uint32_t)t->n;
    return 1;
}

static const yajl_callbacks s_jcallbacks = {
    s_cb_null,   s_cb_bool,        NULL,           NULL,
    s_cb_number, s_cb_string,      s_cb_start_map, s_cb_key,
    s_cb_close,  s_cb_start_array, s_cb_close,
};

typedef struct {
    const es_meta_t *meta;
    es_upload_rec_fn *fn;
    void *ctx;
    es_upload_summary_t *sum;
    es_err_t *err;
    const jtree_t *t;
    es_record_builder_t **builders; //  per metadata object, created on first use
    char (*temp_names)[256];        //  per metadata object: "_<auto key>" ("" if none)
    uint8_t *underscore;            //  per metadata object: 0 not worked out, 1 a field name
                                    //  starts with '_', 2 none does
    es_buf_t rec;                   //  the current record's MessagePack map
    es_buf_t pk;                    //  the current record's key as JSON
    es_buf_t intermediate;          //  the current record's intermediateErrors as JSON
    size_t ei, ri;                  //  the current record: objects[ei].records[ri]
    char path[96];                  //  "objects[i].records[j]", written when an error needs it
} parse_t;

//  Path of the current record, for error texts.
static const char *
s_path(parse_t *p)
{
    snprintf(p->path, sizeof p->path, "objects[%zu].records[%zu]", p->ei, p->ri);
    return p->path;
}

//  Prefix "<record path>._metadata." for the s_opt_* of a record's _metadata: made only when
//  an error names it (a NULL prefix stands for it).
static const char *
s_prefix(parse_t *p, const char *prefix, char *buf, size_t size)
{
    if (prefix)
        return prefix;
    snprintf(buf, size, "%s._metadata.", s_path(p));
    return buf;
}

static const jnode_t *
s_node(const parse_t *p, uint32_t i)
{
    return &p->t->nodes[i];
}

static const char *
s_text(const parse_t *p, uint32_t off)
{
    return p->t->text.data + off;
}

//  Index of the node after i and its subtree.
static uint32_t
s_skip(const parse_t *p, uint32_t i)
{
    const jnode_t *n = s_node(p, i);
    return n->type == J_OBJ || n->type == J_ARR ? n->a : i + 1;
}

static bool
s_is(const parse_t *p, uint32_t i, uint8_t type)
{
    return s_node(p, i)->type == type;
}

static const char *
s_type_name(const parse_t *p, uint32_t v)
{
    switch (s_node(p, v)->type) {
    case J_NULL:
        return "null";
    case J_STR:
        return "string";
    case J_NUM:
        return "number";
    case J_TRUE:
    case J_FALSE:
        return "boolean";
    case J_ARR:
        return "array";
    }
    return "object";
}

//  The last value of key in object o (later duplicates win, as for record columns), or J_NONE.
//  A JSON null counts as absent: servers write "errmsg":null on success.
static uint32_t
s_member(const parse_t *p, uint32_t o, const char *key)
{
    uint32_t found = J_NONE;
    for (uint32_t i = o + 1; i < s_node(p, o)->a; i = s_skip(p, i)) {
        const char *name = s_text(p, s_node(p, i)->key);
        //  The first byte settles most members without a call (a record has a dozen).
        if (name[0] == key[0] && strcmp(name, key) == 0)
            found = i;
    }
    return found != J_NONE && s_is(p, found, J_NULL) ? J_NONE : found;
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
s_get_int(const parse_t *p, uint32_t v, bool allow_neg, int64_t *i_out, uint64_t *u_out)
{
    if (!s_is(p, v, J_NUM) && !s_is(p, v, J_STR))
        return false;
    const char *text = s_text(p, s_node(p, v)->a);
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
s_fail_type(parse_t *p, const char *path, const char *what, uint32_t v)
{
    if (s_is(p, v, J_STR) || s_is(p, v, J_NUM))
        return es_err_set(p->err, ES_EPROTO, "%s: expected %s, got %s '%.40s'", path, what,
                          s_type_name(p, v), s_text(p, s_node(p, v)->a));
    return es_err_set(p->err, ES_EPROTO, "%s: expected %s, got %s", path, what, s_type_name(p, v));
}

//  s_member of several keys in one walk of o: found[i] for keys[i] (distinct keys).
static void
s_members(const parse_t *p, uint32_t o, const char *const *keys, size_t n, uint32_t *found)
{
    for (size_t k = 0; k < n; k++)
        found[k] = J_NONE;
    for (uint32_t i = o + 1; i < s_node(p, o)->a; i = s_skip(p, i)) {
        const char *name = s_text(p, s_node(p, i)->key);
        for (size_t k = 0; k < n; k++)
            if (name[0] == keys[k][0] && strcmp(name, keys[k]) == 0) {
                found[k] = i;
                break;
            }
    }
    for (size_t k = 0; k < n; k++)
        if (found[k] != J_NONE && s_is(p, found[k], J_NULL))
            found[k] = J_NONE;
}

//  The s_opt_* check member key of o; their *_at forms take the member s_member found (v).
static int
s_opt_int_at(parse_t *p, uint32_t v, const char *key, const char *prefix, bool *has, int64_t *out)
{
    if (v == J_NONE)
        return 0;
    uint64_t unused;
    if (!s_get_int(p, v, true, out, &unused)) {
        char path[160], pre[128];
        snprintf(path, sizeof path, "%s%s", s_prefix(p, prefix, pre, sizeof pre), key);
        return s_fail_type(p, path, "an integer", v);
    }
    if (has)
        *has = true;
    return 0;
}

static int
s_opt_int(parse_t *p, uint32_t o, const char *key, const char *prefix, bool *has, int64_t *out)
{
    return s_opt_int_at(p, s_member(p, o, key), key, prefix, has, out);
}

static int
s_opt_uint_at(parse_t *p, uint32_t v, const char *key, const char *prefix, bool *has, uint64_t *out)
{
    if (v == J_NONE)
        return 0;
    int64_t unused;
    if (!s_get_int(p, v, false, &unused, out)) {
        char path[160], pre[128];
        snprintf(path, sizeof path, "%s%s", s_prefix(p, prefix, pre, sizeof pre), key);
        return s_fail_type(p, path, "a non-negative integer", v);
    }
    if (has)
        *has = true;
    return 0;
}

static int
s_opt_uint(parse_t *p, uint32_t o, const char *key, const char *prefix, bool *has, uint64_t *out)
{
    return s_opt_uint_at(p, s_member(p, o, key), key, prefix, has, out);
}

static int
s_opt_str_at(parse_t *p, uint32_t v, const char *key, const char *prefix, const char **out)
{
    if (v == J_NONE)
        return 0;
    if (!s_is(p, v, J_STR)) {
        char path[160], pre[128];
        snprintf(path, sizeof path, "%s%s", s_prefix(p, prefix, pre, sizeof pre), key);
        return s_fail_type(p, path, "a string", v);
    }
    *out = s_text(p, s_node(p, v)->a);
    return 0;
}

static int
s_opt_str(parse_t *p, uint32_t o, const char *key, const char *prefix, const char **out)
{
    return s_opt_str_at(p, s_member(p, o, key), key, prefix, out);
}

//  Value v as compact JSON, numbers as their original text (what es_json_write does for a
//  yajl_tree value). Recursion is bounded by DEPTH_MAX.
static void
s_write_json(const parse_t *p, es_buf_t *out, uint32_t v)
{
    const jnode_t *n = s_node(p, v);
    switch (n->type) {
    case J_NULL:
        es_buf_puts(out, "null");
        return;
    case J_TRUE:
        es_buf_puts(out, "true");
        return;
    case J_FALSE:
        es_buf_puts(out, "false");
        return;
    case J_NUM:
        es_buf_puts(out, s_text(p, n->a));
        return;
    case J_STR: {
        const char *s = s_text(p, n->a);
        es_buf_json_str(out, s, strlen(s));
        return;
    }
    }
    es_buf_putc(out, n->type == J_OBJ ? '{' : '[');
    for (uint32_t i = v + 1; i < n->a; i = s_skip(p, i)) {
        if (i != v + 1)
            es_buf_putc(out, ',');
        if (n->type == J_OBJ) {
            const char *k = s_text(p, s_node(p, i)->key);
            es_buf_json_str(out, k, strlen(k));
            es_buf_putc(out, ':');
        }
        s_write_json(p, out, i);
    }
    es_buf_putc(out, n->type == J_OBJ ? '}' : ']');
}

//  strtod's value of a JSON number "-?digits.digits" (no exponent) of at most 15 digits: both
//  the digits as an integer and the power of ten are exact doubles, so one division is
//  correctly rounded, as strtod is. false for any other text.
static bool
s_short_decimal(const char *r, double *out)
{
    const char *p = r + (*r == '-');
    uint64_t n = 0;
    int digits = 0, frac = -1;
    for (; *p; p++) {
        if (*p == '.' && frac < 0) {
            frac = 0;
            continue;
        }
        if (*p < '0' || *p > '9' || ++digits > 15)
            return false;
        n = n * 10 + (uint64_t)(*p - '0');
        if (frac >= 0)
            frac++;
    }
    if (frac <= 0)
        return false;
    double d = (double)n / s_pow10[frac];
    *out = *r == '-' ? -d : d;
    return true;
}

//  A scalar column value as the builder wants it. Integer syntax within int64 -> int, any other
//  number -> double (as es_record_from_json decides). false for objects and arrays.
static bool
s_scalar(const parse_t *p, uint32_t v, es_value_t *out)
{
    const jnode_t *n = s_node(p, v);
    switch (n->type) {
    case J_NULL:
        out->type = ES_V_NULL;
        return true;
    case J_TRUE:
    case J_FALSE:
        out->type = ES_V_BOOL;
        out->u.b = n->type == J_TRUE;
        return true;
    case J_STR:
        out->type = ES_V_STR;
        out->u.s.ptr = s_text(p, n->a);
        out->u.s.len = strlen(out->u.s.ptr);
        return true;
    case J_NUM: {
        const char *r = s_text(p, n->a);
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
        if (out->type == ES_V_DOUBLE && !s_short_decimal(r, &out->u.d))
            out->u.d = strtod(r, NULL); //  overflow gives +-HUGE_VAL; the builder rejects it
        return true;
    }
    }
    return false;
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

//  "_<auto-generated key column>" of obj (its temporary value comes back under that name), or
//  "" when no key column is auto-generated. Worked out once per object and parse.
static const char *
s_temp_name(parse_t *p, const es_meta_object_t *obj, size_t obj_index)
{
    char *name = p->temp_names[obj_index];
    if (name[0] == '\0' && name[1] == '\0') {
        name[1] = '\1'; //  worked out: "" with this marker means none
        for (size_t i = 0; i < obj->nkey; i++)
            if (obj->fields[obj->key[i]].auto_generated)
                snprintf(name, sizeof p->temp_names[0], "_%s", obj->fields[obj->key[i]].name);
    }
    return name;
}

//  Whether no field name of obj starts with '_'. Worked out once per object and parse.
static bool
s_no_underscore(parse_t *p, const es_meta_object_t *obj, size_t obj_index)
{
    if (!p->underscore[obj_index]) {
        p->underscore[obj_index] = 2;
        for (size_t i = 0; i < obj->nfields; i++)
            if (obj->fields[i].name && obj->fields[i].name[0] == '_')
                p->underscore[obj_index] = 1;
    }
    return p->underscore[obj_index] == 2;
}

//  Columns of record o into r->rec / r->pk_json / r->has_temp. A successful record must be
//  well-typed and carry its key; a failed one is reported with whatever could be built.
static int
s_columns(parse_t *p, uint32_t o, size_t obj_index, es_upload_rec_t *r)
{
    const es_meta_object_t *obj = r->object;
    bool strict = r->errmsg == NULL;
    if (!p->builders[obj_index])
        p->builders[obj_index] = es_record_builder_new(obj);
    es_record_builder_t *b = p->builders[obj_index];
    es_record_builder_reset(b);
    es_err_t e;
    //  The temporary key member is found in the same walk (the last one, as s_member would).
    const char *name = s_temp_name(p, obj, obj_index);
    uint32_t temp = J_NONE;
    size_t next = 0; //  servers echo columns in metadata order: try the field after the last
    for (uint32_t i = o + 1; i < s_node(p, o)->a; i = s_skip(p, i)) {
        const char *key = s_text(p, s_node(p, i)->key);
        if (name[0] && key[0] == name[0] && strcmp(key, name) == 0)
            temp = i;
        //  Field names are unique (es_meta refuses duplicates): a match is the field index.
        //  "_metadata" and "_<auto key>" are in every record: no search when no field name
        //  starts with '_'.
        int idx;
        if (next < obj->nfields && strcmp(obj->fields[next].name, key) == 0)
            idx = (int)next;
        else if (key[0] == '_' && s_no_underscore(p, obj, obj_index))
            idx = -1;
        else
            idx = es_meta_field_index(obj, key, strlen(key));
        if (idx >= 0)
            next = (size_t)idx + 1;
        if (idx < 0)
            continue; //  _metadata, _<pk>, child arrays (D17), extra server fields
        es_value_t sv;
        if (!s_scalar(p, i, &sv)) {
            if (!strict)
                continue;
            const es_meta_field_t *f = &obj->fields[idx];
            return es_err_set(p->err, ES_EPROTO, "%s.%s: expected %s, got %s", s_path(p), key,
                              es_meta_ftype_name(f->type), s_type_name(p, i));
        }
        if (es_record_builder_set_field(b, (size_t)idx, &sv, &e) && strict)
            return es_err_set(p->err, ES_EPROTO, "%s.%s", s_path(p), e.what);
    }
    if (es_record_builder_end(b, &p->rec, &e)) {
        if (strict)
            return es_err_set(p->err, ES_EPROTO, "%s: %s", s_path(p), e.what);
        r->rec = s_empty_map;
        r->rec_len = sizeof s_empty_map;
        r->pk_json = "{}";
    } else {
        r->rec = p->rec.data;
        r->rec_len = p->rec.len;
        s_pk_json(p, obj, r->rec, r->rec_len);
        r->pk_json = p->pk.data;
    }

    if (name[0]) {
        uint32_t v = temp != J_NONE && s_is(p, temp, J_NULL) ? J_NONE : temp;
        uint64_t unused;
        if (v != J_NONE && s_is(p, v, J_NUM) && s_get_int(p, v, true, &r->temp_value, &unused))
            r->has_temp = true;
        else if (v != J_NONE && strict) {
            char path[sizeof p->path + sizeof p->temp_names[0]];
            snprintf(path, sizeof path, "%s.%s", s_path(p), name);
            return s_fail_type(p, path, "an integer", v);
        }
    }
    return 0;
}

static int
s_record(parse_t *p, uint32_t o, const char *object_name, const es_meta_object_t *obj,
         size_t obj_index)
{
    if (!s_is(p, o, J_OBJ))
        return s_fail_type(p, s_path(p), "an object", o);
    es_upload_rec_t r = {
        .object = obj,
        .object_name = object_name,
        .checksum = "",
        .rec = s_empty_map,
        .rec_len = sizeof s_empty_map,
        .pk_json = "{}",
    };
    uint32_t md = s_member(p, o, "_metadata");
    if (md != J_NONE) {
        char prefix[128];
        if (!s_is(p, md, J_OBJ)) {
            snprintf(prefix, sizeof prefix, "%s._metadata", s_path(p));
            return s_fail_type(p, prefix, "an object", md);
        }
        static const char *const keys[] = {"action",   "checksum", "rowId",
                                           "opstatus", "errmsg",   "intermediateErrors"};
        uint32_t m[6];
        s_members(p, md, keys, 6, m);
        const char *action = NULL;
        if (s_opt_str_at(p, m[0], keys[0], NULL, &action) ||
            s_opt_str_at(p, m[1], keys[1], NULL, &r.checksum) ||
            s_opt_uint_at(p, m[2], keys[2], NULL, &r.has_row_id, &r.row_id) ||
            s_opt_int_at(p, m[3], keys[3], NULL, NULL, &r.opstatus) ||
            s_opt_str_at(p, m[4], keys[4], NULL, &r.errmsg))
            return -1;
        r.is_delete = action && strcmp(action, "delete") == 0;
        uint32_t ie = m[5];
        if (ie != J_NONE) {
            if (!s_is(p, ie, J_OBJ)) {
                snprintf(prefix, sizeof prefix, "%s._metadata.intermediateErrors", s_path(p));
                return s_fail_type(p, prefix, "an object", ie);
            }
            if (s_node(p, ie)->n > 0) {
                es_buf_reset(&p->intermediate);
                s_write_json(p, &p->intermediate, ie);
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
s_object_entry(parse_t *p, uint32_t e, size_t ei)
{
    char path[64];
    snprintf(path, sizeof path, "objects[%zu]", ei);
    if (!s_is(p, e, J_OBJ))
        return s_fail_type(p, path, "an object", e);
    snprintf(path, sizeof path, "objects[%zu].", ei);
    const char *name = NULL;
    if (s_opt_str(p, e, "name", path, &name))
        return -1;
    if (!name)
        return es_err_set(p->err, ES_EPROTO, "objects[%zu].name: missing", ei);
    uint32_t recs = s_member(p, e, "records");
    if (recs == J_NONE)
        return 0;
    if (!s_is(p, recs, J_ARR)) {
        snprintf(path, sizeof path, "objects[%zu].records", ei);
        return s_fail_type(p, path, "an array", recs);
    }
    const es_meta_object_t *obj = es_meta_object(p->meta, name);
    size_t obj_index = obj ? (size_t)(obj - p->meta->objects) : 0;
    size_t i = 0;
    for (uint32_t v = recs + 1; v < s_node(p, recs)->a; v = s_skip(p, v), i++) {
        p->ei = ei;
        p->ri = i;
        if (s_record(p, v, name, obj, obj_index))
            return -1;
    }
    return 0;
}

//  Bound nesting before parsing. Brackets inside strings do not count; the scan is only exact
//  for valid JSON, and yajl rejects the rest (the tree's own bound catches what hides).
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
s_root_errmsg(parse_t *p, uint32_t root, es_upload_summary_t *sum)
{
    uint32_t msg = s_member(p, root, "errmsg");
    uint32_t code = s_member(p, root, "errcode");
    const char *m = msg != J_NONE && s_is(p, msg, J_STR) ? s_text(p, s_node(p, msg)->a) : NULL;
    const char *c = code != J_NONE && (s_is(p, code, J_STR) || s_is(p, code, J_NUM))
                        ? s_text(p, s_node(p, code)->a)
                        : NULL;
    if (m && c)
        snprintf(sum->errmsg, sizeof sum->errmsg, "%s (errcode %s)", m, c);
    else if (m)
        snprintf(sum->errmsg, sizeof sum->errmsg, "%s", m);
    else if (c)
        snprintf(sum->errmsg, sizeof sum->errmsg, "errcode %s", c);
}

static int
s_parse_root(parse_t *p, uint32_t root)
{
    es_upload_summary_t *sum = p->sum;
    if (!s_is(p, root, J_OBJ))
        return s_fail_type(p, "response", "an object", root);
    if (s_opt_int(p, root, "opstatus", "", &sum->has_opstatus, &sum->opstatus))
        return -1;
    uint32_t msg = s_member(p, root, "errmsg");
    if (msg != J_NONE && !s_is(p, msg, J_STR))
        return s_fail_type(p, "errmsg", "a string", msg);
    uint32_t code = s_member(p, root, "errcode");
    if (code != J_NONE && !s_is(p, code, J_STR) && !s_is(p, code, J_NUM))
        return s_fail_type(p, "errcode", "a string or number", code);
    s_root_errmsg(p, root, sum);

    uint32_t md = s_member(p, root, "_metadata");
    if (md != J_NONE) {
        if (!s_is(p, md, J_OBJ))
            return s_fail_type(p, "_metadata", "an object", md);
        sum->has_metadata = true;
        if (s_opt_uint(p, md, "recordCount", "_metadata.", NULL, &sum->record_count) ||
            s_opt_uint(p, md, "successCount", "_metadata.", NULL, &sum->success_count) ||
            s_opt_uint(p, md, "failureCount", "_metadata.", NULL, &sum->failure_count))
            return -1;
    }
    uint32_t objs = s_member(p, root, "objects");
    if (objs == J_NONE)
        return 0;
    if (!s_is(p, objs, J_ARR))
        return s_fail_type(p, "objects", "an array", objs);
    size_t i = 0;
    for (uint32_t e = objs + 1; e < s_node(p, objs)->a; e = s_skip(p, e), i++)
        if (s_object_entry(p, e, i))
            return -1;
    return 0;
}

//  The common case without yajl: strict JSON in ASCII, without \u escapes, comments or
//  yajl's extra whitespace (\v, \f). Such text means the same to every JSON parser, so the
//  tree is the one yajl's events would build. Anything else, an error included, returns false
//  with the tree reset: yajl then parses the text and words any error.
typedef struct {
    const unsigned char *p, *end;
    es_buf_t *scratch; //  a string with escapes, decoded
} fast_t;

static void
s_fast_ws(fast_t *f)
{
    while (f->p < f->end && (*f->p == ' ' || *f->p == '\n' || *f->p == '\r' || *f->p == '\t'))
        f->p++;
}

//  A string at f->p (its opening quote): *s / *n its bytes (into the text or scratch).
static bool
s_fast_str(fast_t *f, const unsigned char **s, size_t *n)
{
    const unsigned char *start = ++f->p;
    f->p += es_buf_json_plain_run(f->p, f->end);
    if (f->p < f->end && *f->p == '"') {
        *s = start;
        *n = (size_t)(f->p++ - start);
        return true;
    }
    es_buf_reset(f->scratch);
    es_buf_append(f->scratch, start, (size_t)(f->p - start));
    while (f->p < f->end && *f->p != '"') {
        unsigned char c = *f->p++;
        if (c < 0x20 || c >= 0x80)
            return false;
        if (c == '\\') {
            if (f->p >= f->end)
                return false;
            static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
            const char *e = memchr(from, *f->p++, sizeof from - 1);
            if (!e) //  \u (surrogates and all) and bad escapes: yajl's call
                return false;
            c = (unsigned char)to[e - from];
        }
        es_buf_putc(f->scratch, (char)c);
    }
    if (f->p >= f->end)
        return false;
    f->p++;
    *s = (const unsigned char *)f->scratch->data;
    *n = f->scratch->len;
    return true;
}

static bool
s_fast_digits(fast_t *f)
{
    const unsigned char *start = f->p;
    while (f->p < f->end && *f->p >= '0' && *f->p <= '9')
        f->p++;
    return f->p > start;
}

//  -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?
static bool
s_fast_number(fast_t *f, jtree_t *t)
{
    const unsigned char *start = f->p;
    if (*f->p == '-')
        f->p++;
    if (f->p < f->end && *f->p == '0')
        f->p++;
    else if (f->p >= f->end || *f->p < '1' || *f->p > '9' || !s_fast_digits(f))
        return false;
    if (f->p < f->end && *f->p == '.' && (f->p++, !s_fast_digits(f)))
        return false;
    if (f->p < f->end && (*f->p == 'e' || *f->p == 'E')) {
        f->p++;
        if (f->p < f->end && (*f->p == '+' || *f->p == '-'))
            f->p++;
        if (!s_fast_digits(f))
            return false;
    }
    return s_cb_number(t, (const char *)start, (size_t)(f->p - start)) == 1;
}

static bool
s_fast_word(fast_t *f, const char *w, size_t n)
{
    if ((size_t)(f->end - f->p) < n || memcmp(f->p, w, n) != 0)
        return false;
    f->p += n;
    return true;
}

//  A member key and its colon.
static bool
s_fast_key(fast_t *f, jtree_t *t)
{
    const unsigned char *k;
    size_t n;
    if (f->p >= f->end || *f->p != '"' || !s_fast_str(f, &k, &n))
        return false;
    s_cb_key(t, k, n);
    s_fast_ws(f);
    if (f->p >= f->end || *f->p != ':')
        return false;
    f->p++;
    return true;
}

static bool
s_fast_parse(jtree_t *t, const char *json, size_t len, es_buf_t *scratch)
{
    fast_t f = {(const unsigned char *)json, (const unsigned char *)json + len, scratch};
    s_jtree_reset(t);
    t->no_nul = true;
    for (;;) {
        //  A value.
        s_fast_ws(&f);
        if (f.p >= f.end)
            goto bail;
        unsigned char c = *f.p;
        const unsigned char *str;
        size_t n;
        if (c == '{' || c == '[') {
            f.p++;
            if (!s_cb_open(t, c == '{' ? J_OBJ : J_ARR))
                goto bail;
            s_fast_ws(&f);
            if (f.p < f.end && *f.p == (c == '{' ? '}' : ']')) {
                f.p++;
                s_cb_close(t);
            } else if (c == '[' || s_fast_key(&f, t)) {
                continue;
            } else {
                goto bail;
            }
        } else if (c == '"') {
            if (!s_fast_str(&f, &str, &n))
                goto bail;
            s_cb_string(t, str, n);
        } else if (c == '-' || (c >= '0' && c <= '9')) {
            if (!s_fast_number(&f, t))
                goto bail;
        } else if (s_fast_word(&f, "true", 4)) {
            s_cb_bool(t, 1);
        } else if (s_fast_word(&f, "false", 5)) {
            s_cb_bool(t, 0);
        } else if (s_fast_word(&f, "null", 4)) {
            s_cb_null(t);
        } else {
            goto bail;
        }
        //  After a value: more of its container, its end, or the end of the text.
        for (;;) {
            s_fast_ws(&f);
            if (t->nopen == 0) {
                if (f.p != f.end)
                    goto bail;
                return true;
            }
            bool in_obj = t->nodes[t->open[t->nopen - 1]].type == J_OBJ;
            if (f.p >= f.end)
                goto bail;
            c = *f.p++;
            if (c == (in_obj ? '}' : ']')) {
                s_cb_close(t);
                continue;
            }
            if (c != ',')
                goto bail;
            if (in_obj) {
                s_fast_ws(&f);
                if (!s_fast_key(&f, t))
                    goto bail;
            }
            break;
        }
    }
bail:
    s_jtree_reset(t);
    return false;
}

//  Parse json into t with the settings yajl_tree_parse() uses (comments allowed), with its
//  error text.
static int
s_jtree_parse(jtree_t *t, const char *json, size_t len, es_err_t *err)
{
    s_jtree_reset(t);
    yajl_handle h = yajl_alloc(&s_jcallbacks, NULL, t);
    (void)yajl_config(h, yajl_allow_comments, 1);
    yajl_status st = yajl_parse(h, (const unsigned char *)json, len);
    if (st == yajl_status_ok)
        st = yajl_complete_parse(h);
    int rc = 0;
    if (t->too_deep) {
        rc = es_err_set(err, ES_EPROTO, "response: nested deeper than %d levels at byte %zu",
                        DEPTH_MAX, yajl_get_bytes_consumed(h));
    } else if (st != yajl_status_ok) {
        unsigned char *msg = yajl_get_error(h, 1, (const unsigned char *)json, len);
        size_t n = strcspn((const char *)msg, "\r\n");
        rc = es_err_set(err, ES_EPROTO, "response: invalid JSON: %.*s", (int)n, (const char *)msg);
        yajl_free_error(h, msg);
    } else if (t->n == 0) {
        rc = es_err_set(err, ES_EPROTO, "response: invalid JSON: no value");
    }
    yajl_free(h);
    return rc;
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
    //  A NUL is not JSON (and yajl_tree, which this parser replaces, stopped reading there).
    const char *nul = memchr(json, '\0', len);
    if (nul)
        return es_err_set(err, ES_EPROTO, "response: invalid JSON: NUL byte at offset %zu",
                          (size_t)(nul - json));
    //  Node indexes and text offsets are 32-bit: each is bounded by the body length.
    if (len >= UINT32_MAX / 2)
        return es_err_set(err, ES_EPROTO, "response: %zu bytes, over the 2 GiB a parse takes", len);
    //  The depth scan decides first, as it always did; it can only object when the parse
    //  fails, or when a '/' (a comment, or inside a string) may hide brackets from the parse.
    jtree_t t = {0};
    es_buf_init(&t.text);
    es_buf_t scratch;
    es_buf_init(&scratch);
    es_err_t perr;
    int prc = s_fast_parse(&t, json, len, &scratch) ? 0 : s_jtree_parse(&t, json, len, &perr);
    es_buf_release(&scratch);
    if ((prc || memchr(json, '/', len)) && s_check_depth(json, len, err)) {
        s_jtree_release(&t);
        return -1;
    }
    if (prc) {
        s_jtree_release(&t);
        if (err)
            *err = perr;
        return -1;
    }
    size_t nobj = meta->nobjects ? meta->nobjects : 1;
    parse_t p = {.meta = meta, .fn = fn, .ctx = ctx, .sum = sum, .err = err, .t = &t};
    p.builders = es_calloc(nobj, sizeof *p.builders);
    p.temp_names = es_calloc(nobj, sizeof *p.temp_names);
    p.underscore = es_calloc(nobj, sizeof *p.underscore);
    es_buf_init(&p.rec);
    es_buf_init(&p.pk);
    es_buf_init(&p.intermediate);
    int rc = s_parse_root(&p, 0);
    for (size_t i = 0; i < meta->nobjects; i++)
        es_record_builder_destroy(&p.builders[i]);
    free(p.builders);
    free(p.temp_names);
    free(p.underscore);
    es_buf_release(&p.rec);
    es_buf_release(&p.pk);
    es_buf_release(&p.intermediate);
    s_jtree_release(&t);
    return rc;
}
