//  es_key - primary keys as bytes whose memcmp order is key order (LMDB's default comparator), so
//  range scans and sorted listings need no decoding. Each part is a type tag then a payload.
#include "protocol/es_key.h"
#include "common/es_mem.h"
#include "protocol/es_record.h"
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_parse.h>

//  Tags: their order is the order of types (null first, then booleans, numbers, strings).
enum {
    S_TAG_NULL = 0x01,
    S_TAG_FALSE = 0x02,
    S_TAG_TRUE = 0x03,
    S_TAG_INT = 0x10,
    S_TAG_DOUBLE = 0x20,
    S_TAG_STR = 0x30,
};

#define S_SIGN ((uint64_t)1 << 63)

static void
s_put_u64(es_buf_t *out, uint64_t v)
{
    uint8_t b[8];
    for (int i = 7; i >= 0; i--, v >>= 8)
        b[i] = (uint8_t)v;
    es_buf_append(out, b, 8);
}

void
es_key_append(es_buf_t *out, const es_value_t *v)
{
    switch (v->type) {
    case ES_V_NULL:
        es_buf_putc(out, S_TAG_NULL);
        break;
    case ES_V_BOOL:
        es_buf_putc(out, v->u.b ? S_TAG_TRUE : S_TAG_FALSE);
        break;
    case ES_V_INT:
        es_buf_putc(out, S_TAG_INT);
        //  Flipping the sign bit maps INT64_MIN..INT64_MAX onto 0..UINT64_MAX in order.
        s_put_u64(out, (uint64_t)v->u.i ^ S_SIGN);
        break;
    case ES_V_DOUBLE: {
        double d = v->u.d;
        //  Equal values must encode equally: -0.0 == 0.0, and every NaN is one key.
        if (d == 0)
            d = 0.0;
        else if (isnan(d))
            d = NAN;
        uint64_t bits;
        memcpy(&bits, &d, sizeof bits);
        //  Positive: above all negatives (set sign bit). Negative: larger magnitude sorts
        //  first, so invert every bit.
        bits = (bits & S_SIGN) ? ~bits : bits ^ S_SIGN;
        es_buf_putc(out, S_TAG_DOUBLE);
        s_put_u64(out, bits);
        break;
    }
    case ES_V_STR: {
        es_buf_putc(out, S_TAG_STR);
        //  0x00 becomes 0x00 0xFF and the end is 0x00 0x00, so a prefix sorts before its
        //  extensions and a part never runs into the next one.
        const char *p = v->u.s.ptr, *end = p + v->u.s.len;
        while (p < end) {
            const char *nul = memchr(p, '\0', (size_t)(end - p));
            size_t n = nul ? (size_t)(nul - p) : (size_t)(end - p);
            es_buf_append(out, p, n);
            p += n;
            if (nul) {
                es_buf_append(out, "\0\xff", 2);
                p++;
            }
        }
        es_buf_append(out, "\0\0", 2);
        break;
    }
    }
}

static const char *
s_vtype_name(es_vtype_t t)
{
    switch (t) {
    case ES_V_NULL:
        return "null";
    case ES_V_BOOL:
        return "boolean";
    case ES_V_INT:
        return "int";
    case ES_V_DOUBLE:
        return "number";
    case ES_V_STR:
        return "string";
    }
    return "unknown";
}

//  Converts v to the key form of column type t (in place). False if v does not fit the type.
static bool
s_normalise(es_ftype_t t, es_value_t *v)
{
    switch (t) {
    case ES_FT_INT:
        if (v->type == ES_V_DOUBLE) {
            double d = v->u.d;
            if (!isfinite(d) || d != trunc(d) || d < -9223372036854775808.0 ||
                d >= 9223372036854775808.0)
                return false;
            v->type = ES_V_INT;
            v->u.i = (int64_t)d;
        }
        return v->type == ES_V_INT;
    case ES_FT_NUMBER:
        //  2 and 2.0 are one key.
        if (v->type == ES_V_INT) {
            v->type = ES_V_DOUBLE;
            v->u.d = (double)v->u.i;
        }
        return v->type == ES_V_DOUBLE && isfinite(v->u.d);
    case ES_FT_BOOL:
        if (v->type == ES_V_INT && (v->u.i == 0 || v->u.i == 1)) {
            v->type = ES_V_BOOL;
            v->u.b = v->u.i == 1;
        }
        return v->type == ES_V_BOOL;
    case ES_FT_STRING:
    case ES_FT_DATE:
    case ES_FT_DATETIME:
        return v->type == ES_V_STR;
    }
    return false;
}

int
es_key_from_record(const es_meta_object_t *obj, const void *rec, size_t len, es_buf_t *out,
                   es_err_t *err)
{
    es_buf_reset(out);
    for (size_t i = 0; i < obj->nkey; i++) {
        const es_meta_field_t *f = &obj->fields[obj->key[i]];
        es_value_t v;
        int rc = es_record_get(rec, len, f->name, &v);
        if (rc < 0)
            return es_err_set(err, ES_EPROTO, "%s: malformed record", obj->name);
        if (rc == 0 || v.type == ES_V_NULL)
            return es_err_set(err, ES_EINVAL, "%s: key column '%s' missing", obj->name, f->name);
        es_vtype_t got = v.type;
        if (!s_normalise(f->type, &v))
            return es_err_set(err, ES_EINVAL, "%s: key column '%s': expected %s, got %s", obj->name,
                              f->name, es_meta_ftype_name(f->type), s_vtype_name(got));
        es_key_append(out, &v);
    }
    //  Callers take out->data; make it non-NULL even for an impossible empty key.
    es_buf_append(out, "", 0);
    return 0;
}

//  ---------------------------------------------------------------------------------------------
//  JSON -> key, with yajl's event parser so strings keep their length ("\u0000" included).

typedef struct {
    bool set;     //  seen in the JSON
    es_value_t v; //  normalised value; strings point at offset u.s.ptr - NULL into strings
} kslot_t;

typedef struct {
    const es_meta_object_t *obj; //  whose key
    es_err_t *err;               //  filled when a callback stops the parse
    bool failed;                 //  a callback set err
    int depth;                   //  0 top level, 1 inside the object
    int kpos;                    //  position in obj->key of the current member, or -1
    kslot_t *slots;              //  one per key column
    es_buf_t strings;            //  string values (slots hold offsets: the buffer may move)
} kctx_t;

static int
s_kfail(kctx_t *c, const char *got)
{
    const es_meta_field_t *f = &c->obj->fields[c->obj->key[c->kpos]];
    es_err_set(c->err, ES_EINVAL, "pk: expected %s for '%s', got %s", es_meta_ftype_name(f->type),
               f->name, got);
    c->failed = true;
    return 0;
}

//  A scalar at the top level is the value of a one-column key.
static int
s_ktop_scalar(kctx_t *c, const char *got)
{
    if (c->obj->nkey != 1) {
        es_buf_t names;
        es_buf_init(&names);
        for (size_t i = 0; i < c->obj->nkey; i++)
            es_buf_printf(&names, "%s'%s'", i ? ", " : "", c->obj->fields[c->obj->key[i]].name);
        es_err_set(c->err, ES_EINVAL, "pk: %s has a composite key; expected an object naming %s",
                   c->obj->name, names.data);
        es_buf_release(&names);
        c->failed = true;
        return 0;
    }
    (void)got;
    c->kpos = 0;
    return 1;
}

static int
s_kvalue(kctx_t *c, es_value_t v)
{
    if (c->depth == 0 && !s_ktop_scalar(c, s_vtype_name(v.type)))
        return 0;
    if (c->depth > 1 || c->kpos < 0)
        return 1;
    es_vtype_t got = v.type;
    if (!s_normalise(c->obj->fields[c->obj->key[c->kpos]].type, &v))
        return s_kfail(c, s_vtype_name(got));
    if (v.type == ES_V_STR) {
        //  Keep the bytes: yajl's buffer is reused by the next token.
        size_t off = c->strings.len;
        es_buf_append(&c->strings, v.u.s.ptr, v.u.s.len);
        v.u.s.ptr = (const char *)(uintptr_t)off;
    }
    c->slots[c->kpos].set = true;
    c->slots[c->kpos].v = v;
    return 1;
}

static int
s_kon_null(void *ctx)
{
    return s_kvalue(ctx, (es_value_t){.type = ES_V_NULL});
}

static int
s_kon_bool(void *ctx, int b)
{
    return s_kvalue(ctx, (es_value_t){.type = ES_V_BOOL, .u.b = b != 0});
}

static int
s_kon_number(void *ctx, const char *s, size_t len)
{
    char tmp[512];
    if (len >= sizeof tmp)
        len = sizeof tmp - 1; //  longer than any double needs
    memcpy(tmp, s, len);
    tmp[len] = '\0';
    es_value_t v = {.type = ES_V_DOUBLE};
    if (strcspn(tmp, ".eE") == len) {
        errno = 0;
        char *end;
        long long i = strtoll(tmp, &end, 10);
        if (errno == 0 && *end == '\0') {
            v.type = ES_V_INT;
            v.u.i = i;
        }
    }
    if (v.type == ES_V_DOUBLE)
        v.u.d = strtod(tmp, NULL);
    return s_kvalue(ctx, v);
}

static int
s_kon_string(void *ctx, const unsigned char *s, size_t len)
{
    return s_kvalue(ctx, (es_value_t){.type = ES_V_STR, .u.s = {(const char *)s, len}});
}

static int
s_kon_start(kctx_t *c, bool map)
{
    if (c->depth == 0) {
        if (!map) {
            es_err_set(c->err, ES_EINVAL, "pk: expected a scalar or an object, got array");
            c->failed = true;
            return 0;
        }
        c->depth = 1;
        return 1;
    }
    if (c->depth == 1 && c->kpos >= 0)
        return s_kfail(c, map ? "object" : "array");
    c->depth++;
    return 1;
}

static int
s_kon_start_map(void *ctx)
{
    return s_kon_start(ctx, true);
}

static int
s_kon_start_array(void *ctx)
{
    return s_kon_start(ctx, false);
}

static int
s_kon_end(void *ctx)
{
    ((kctx_t *)ctx)->depth--;
    return 1;
}

static int
s_kon_key(void *ctx, const unsigned char *s, size_t len)
{
    kctx_t *c = ctx;
    if (c->depth != 1)
        return 1;
    c->kpos = -1;
    int idx = es_meta_field_index(c->obj, (const char *)s, len);
    for (size_t i = 0; idx >= 0 && i < c->obj->nkey; i++)
        if (c->obj->key[i] == (size_t)idx)
            c->kpos = (int)i;
    return 1;
}

static const yajl_callbacks s_kcallbacks = {
    .yajl_null = s_kon_null,
    .yajl_boolean = s_kon_bool,
    .yajl_number = s_kon_number,
    .yajl_string = s_kon_string,
    .yajl_start_map = s_kon_start_map,
    .yajl_map_key = s_kon_key,
    .yajl_end_map = s_kon_end,
    .yajl_start_array = s_kon_start_array,
    .yajl_end_array = s_kon_end,
};

int
es_key_from_json(const es_meta_object_t *obj, const char *json, size_t len, es_buf_t *out,
                 es_err_t *err)
{
    kctx_t c = {.obj = obj, .err = err, .kpos = -1};
    c.slots = es_calloc(obj->nkey ? obj->nkey : 1, sizeof *c.slots);
    es_buf_init(&c.strings);
    int rc = -1;
    yajl_handle h = yajl_alloc(&s_kcallbacks, NULL, &c);
    if (!h) {
        es_err_set(err, ES_ESYS, "pk: yajl_alloc failed");
        goto done;
    }
    yajl_status st = yajl_parse(h, (const unsigned char *)json, len);
    if (st == yajl_status_ok)
        st = yajl_complete_parse(h);
    if (c.failed)
        goto done;
    if (st != yajl_status_ok) {
        unsigned char *msg = yajl_get_error(h, 0, NULL, 0);
        size_t n = msg ? strcspn((char *)msg, "\r\n") : 0;
        es_err_set(err, ES_EINVAL, "pk: invalid JSON: %.*s", (int)n, msg ? (char *)msg : "");
        if (msg)
            yajl_free_error(h, msg);
        goto done;
    }
    es_buf_reset(out);
    for (size_t i = 0; i < obj->nkey; i++) {
        kslot_t *s = &c.slots[i];
        if (!s->set) {
            es_err_set(err, ES_EINVAL, "pk: missing key column '%s'",
                       obj->fields[obj->key[i]].name);
            goto done;
        }
        if (s->v.type == ES_V_STR)
            s->v.u.s.ptr = c.strings.data + (uintptr_t)s->v.u.s.ptr;
        es_key_append(out, &s->v);
    }
    es_buf_append(out, "", 0);
    rc = 0;
done:
    if (h)
        yajl_free(h);
    es_buf_release(&c.strings);
    free(c.slots);
    return rc;
}

//  ---------------------------------------------------------------------------------------------
//  Key -> JSON.

static uint64_t
s_get_u64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | p[i];
    return v;
}

int
es_key_to_json(const es_meta_object_t *obj, const void *key, size_t len, es_buf_t *out,
               es_err_t *err)
{
    const uint8_t *p = key, *start = key, *end = p + len;
    size_t out_start = out->len;
    es_buf_t str;
    es_buf_init(&str);
    es_buf_putc(out, '{');
    for (size_t i = 0; i < obj->nkey; i++) {
        const char *name = obj->fields[obj->key[i]].name;
        if (p >= end)
            goto truncated;
        if (i)
            es_buf_putc(out, ',');
        es_buf_json_str(out, name, strlen(name));
        es_buf_putc(out, ':');
        uint8_t tag = *p++;
        switch (tag) {
        case S_TAG_NULL:
            es_buf_puts(out, "null");
            break;
        case S_TAG_FALSE:
        case S_TAG_TRUE:
            es_buf_puts(out, tag == S_TAG_TRUE ? "true" : "false");
            break;
        case S_TAG_INT:
            if (end - p < 8)
                goto truncated;
            es_buf_printf(out, "%lld", (long long)(int64_t)(s_get_u64(p) ^ S_SIGN));
            p += 8;
            break;
        case S_TAG_DOUBLE: {
            if (end - p < 8)
                goto truncated;
            uint64_t bits = s_get_u64(p);
            bits = (bits & S_SIGN) ? bits ^ S_SIGN : ~bits;
            double d;
            memcpy(&d, &bits, sizeof d);
            es_record_put_double(out, d);
            p += 8;
            break;
        }
        case S_TAG_STR:
            es_buf_reset(&str);
            for (;;) {
                if (p < end && *p != 0) {
                    es_buf_putc(&str, (char)*p++);
                    continue;
                }
                if (end - p < 2)
                    goto truncated;
                if (p[1] == 0) {
                    p += 2;
                    break;
                } else if (p[1] == 0xff) {
                    es_buf_putc(&str, '\0');
                    p += 2;
                } else {
                    es_err_set(err, ES_EPROTO, "%s key: bad string escape at byte %zu", obj->name,
                               (size_t)(p - start));
                    goto fail;
                }
            }
            es_buf_json_str(out, str.data ? str.data : "", str.len);
            break;
        default:
            es_err_set(err, ES_EPROTO, "%s key: unknown tag 0x%02x at byte %zu", obj->name, tag,
                       (size_t)(p - 1 - start));
            goto fail;
        }
    }
    if (p != end) {
        es_err_set(err, ES_EPROTO, "%s key: %zu trailing bytes after %zu parts", obj->name,
                   (size_t)(end - p), obj->nkey);
        goto fail;
    }
    es_buf_putc(out, '}');
    es_buf_release(&str);
    return 0;
truncated:
    es_err_set(err, ES_EPROTO, "%s key: truncated at byte %zu", obj->name, (size_t)(p - start));
fail:
    //  Leave out as it was: a half-written object is worse than none.
    out->len = out_start;
    out->data[out_start] = '\0';
    es_buf_release(&str);
    return -1;
}
