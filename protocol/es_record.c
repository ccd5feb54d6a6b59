//  es_record - records as MessagePack maps of metadata columns: a type-checking builder (fed by
//  streaming parsers), JSON in and out, and an allocation-free field lookup for filters.
#include "protocol/es_record.h"
#include "common/es_mem.h"
#include "protocol/es_key.h"
#include <assert.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_parse.h>

//  One column's value between set and end. Strings live in the builder's scratch buffer because
//  the caller's bytes are transient (a parser's token buffer).
typedef struct {
    bool set;        //  set since the last reset
    es_vtype_t type; //  value type after conversion to the column type
    union {
        bool b;
        int64_t i;
        double d;
        struct {
            size_t off; //  offset into strings
            size_t len; //  bytes
        } s;
    } u;
} slot_t;

struct es_record_builder {
    const es_meta_object_t *obj; //  borrowed; outlives the builder
    slot_t *slots;               //  one per field, metadata order
    bool *is_key;                //  per field: part of the primary key
    size_t *nlen;                //  per field: length of its name
    es_buf_t strings;            //  string bytes of the current record
    uint8_t *pack;               //  the record being encoded by end
    size_t pack_cap;             //  bytes allocated at pack
};

es_record_builder_t *
es_record_builder_new(const es_meta_object_t *obj)
{
    es_record_builder_t *self = es_calloc(1, sizeof *self);
    self->obj = obj;
    self->slots = es_calloc(obj->nfields ? obj->nfields : 1, sizeof *self->slots);
    self->is_key = es_calloc(obj->nfields ? obj->nfields : 1, sizeof *self->is_key);
    for (size_t i = 0; i < obj->nkey; i++)
        self->is_key[obj->key[i]] = true;
    self->nlen = es_calloc(obj->nfields ? obj->nfields : 1, sizeof *self->nlen);
    for (size_t i = 0; i < obj->nfields; i++)
        self->nlen[i] = obj->fields[i].name ? strlen(obj->fields[i].name) : 0;
    es_buf_init(&self->strings);
    return self;
}

void
es_record_builder_destroy(es_record_builder_t **self_p)
{
    if (!*self_p)
        return;
    es_record_builder_t *self = *self_p;
    free(self->pack);
    es_buf_release(&self->strings);
    free(self->nlen);
    free(self->is_key);
    free(self->slots);
    free(self);
    *self_p = NULL;
}

void
es_record_builder_reset(es_record_builder_t *self)
{
    for (size_t i = 0; i < self->obj->nfields; i++)
        self->slots[i].set = false;
    es_buf_reset(&self->strings);
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

//  Characters, not bytes: metadata lengths count characters. Counts every byte that does not
//  continue a UTF-8 sequence, so invalid bytes count one each.
static size_t
s_utf8_chars(const char *s, size_t len)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++)
        if (((unsigned char)s[i] & 0xC0) != 0x80)
            n++;
    return n;
}

//  Reads exactly n digits at s into *out.
static bool
s_digits(const char *s, size_t n, int *out)
{
    int v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return true;
}

static bool
s_valid_date(const char *s, size_t len)
{
    static const int days[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int y, m, d;
    if (len != 10 || s[4] != '-' || s[7] != '-' || !s_digits(s, 4, &y) || !s_digits(s + 5, 2, &m) ||
        !s_digits(s + 8, 2, &d))
        return false;
    if (m < 1 || m > 12 || d < 1 || d > days[m - 1])
        return false;
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return !(m == 2 && d == 29 && !leap);
}

//  "YYYY-MM-DDTHH:MM:SS" [".f+"] ["Z" | "+hh:mm" | "-hh:mm"]
static bool
s_valid_datetime(const char *s, size_t len)
{
    int h, mi, se;
    if (len < 19 || !s_valid_date(s, 10) || s[10] != 'T' || s[13] != ':' || s[16] != ':' ||
        !s_digits(s + 11, 2, &h) || !s_digits(s + 14, 2, &mi) || !s_digits(s + 17, 2, &se))
        return false;
    if (h > 23 || mi > 59 || se > 59)
        return false;
    size_t i = 19;
    if (i < len && s[i] == '.') {
        size_t start = ++i;
        while (i < len && s[i] >= '0' && s[i] <= '9')
            i++;
        if (i == start)
            return false;
    }
    if (i == len)
        return true;
    if (s[i] == 'Z')
        return i + 1 == len;
    int oh, om;
    if ((s[i] != '+' && s[i] != '-') || len - i != 6 || s[i + 3] != ':' ||
        !s_digits(s + i + 1, 2, &oh) || !s_digits(s + i + 4, 2, &om))
        return false;
    return oh <= 23 && om <= 59;
}

//  True if d is integral and fits int64 (2^63 itself does not).
static bool
s_double_is_int64(double d, int64_t *out)
{
    if (!isfinite(d) || d != trunc(d) || d < -9223372036854775808.0 || d >= 9223372036854775808.0)
        return false;
    *out = (int64_t)d;
    return true;
}

int
es_record_builder_set(es_record_builder_t *self, const char *name, size_t len, const es_value_t *v,
                      es_err_t *err)
{
    int idx = es_meta_field_index(self->obj, name, len);
    if (idx < 0)
        return 0;
    return es_record_builder_set_field(self, (size_t)idx, v, err);
}

int
es_record_builder_set_field(es_record_builder_t *self, size_t idx, const es_value_t *v,
                            es_err_t *err)
{
    assert(idx < self->obj->nfields);
    const es_meta_field_t *f = &self->obj->fields[idx];
    slot_t val = {.set = true, .type = v->type};
    const char *want = es_meta_ftype_name(f->type);
    if (v->type == ES_V_NULL) {
        if (self->is_key[idx])
            return es_err_set(err, ES_EINVAL, "%s: expected %s, got null (key column)", f->name,
                              want);
        if (!f->nullable)
            return es_err_set(err, ES_EINVAL, "%s: expected %s, got null (not nullable)", f->name,
                              want);
    } else {
        switch (f->type) {
        case ES_FT_STRING:
        case ES_FT_DATE:
        case ES_FT_DATETIME:
            if (v->type != ES_V_STR)
                goto mismatch;
            if (f->type == ES_FT_DATE && !s_valid_date(v->u.s.ptr, v->u.s.len))
                return es_err_set(err, ES_EINVAL, "%s: expected date YYYY-MM-DD, got '%.*s'",
                                  f->name, (int)(v->u.s.len > 40 ? 40 : v->u.s.len), v->u.s.ptr);
            if (f->type == ES_FT_DATETIME && !s_valid_datetime(v->u.s.ptr, v->u.s.len))
                return es_err_set(err, ES_EINVAL,
                                  "%s: expected datetime YYYY-MM-DDTHH:MM:SS[.f][Z|+hh:mm], "
                                  "got '%.*s'",
                                  f->name, (int)(v->u.s.len > 40 ? 40 : v->u.s.len), v->u.s.ptr);
            if (f->type == ES_FT_STRING) {
                //  JSON text is UTF-8; yajl lets some invalid forms through (overlong,
                //  surrogates, above U+10FFFF), and they could not be written back unchanged.
                size_t bad = es_utf8_invalid_at(v->u.s.ptr, v->u.s.len);
                if (bad < v->u.s.len)
                    return es_err_set(err, ES_EINVAL, "%s: invalid UTF-8 at byte %zu of the string",
                                      f->name, bad + 1);
            }
            if (f->type == ES_FT_STRING && f->length > 0) {
                size_t n = s_utf8_chars(v->u.s.ptr, v->u.s.len);
                if (n > f->length)
                    return es_err_set(err, ES_EINVAL,
                                      "%s: string of %zu characters exceeds length %u", f->name, n,
                                      (unsigned)f->length);
            }
            val.u.s.off = self->strings.len;
            val.u.s.len = v->u.s.len;
            es_buf_append(&self->strings, v->u.s.ptr, v->u.s.len);
            break;
        case ES_FT_INT:
            if (v->type == ES_V_INT) {
                val.u.i = v->u.i;
            } else if (v->type == ES_V_DOUBLE) {
                if (!s_double_is_int64(v->u.d, &val.u.i))
                    return es_err_set(err, ES_EINVAL, "%s: expected int, got %s", f->name,
                                      isfinite(v->u.d) && v->u.d == trunc(v->u.d)
                                          ? "number out of int64 range"
                                          : "non-integral number");
                val.type = ES_V_INT;
            } else {
                goto mismatch;
            }
            break;
        case ES_FT_NUMBER:
            if (v->type == ES_V_INT) {
                val.u.i = v->u.i;
            } else if (v->type == ES_V_DOUBLE) {
                if (!isfinite(v->u.d))
                    return es_err_set(err, ES_EINVAL, "%s: expected number, got %s", f->name,
                                      isnan(v->u.d) ? "NaN" : "infinity");
                val.u.d = v->u.d;
            } else {
                goto mismatch;
            }
            break;
        case ES_FT_BOOL:
            if (v->type == ES_V_BOOL) {
                val.u.b = v->u.b;
            } else if (v->type == ES_V_INT && (v->u.i == 0 || v->u.i == 1)) {
                val.type = ES_V_BOOL;
                val.u.b = v->u.i == 1;
            } else {
                goto mismatch;
            }
            break;
        }
    }
    self->slots[idx] = val;
    return 0;
mismatch:
    return es_err_set(err, ES_EINVAL, "%s: expected %s, got %s", f->name, want,
                      s_vtype_name(v->type));
}

//  MessagePack writers for the subset records use, each picking the shortest form as msgpack-c
//  does (test_es_record compares the bytes with msgpack-c's). They write into one buffer sized
//  beforehand: msgpack-c's packer calls its writer once per token, which cost this per-record
//  path more than the encoding itself.
static uint8_t *
s_put_be(uint8_t *p, uint64_t v, int n)
{
    for (int i = n - 1; i >= 0; i--) {
        p[i] = (uint8_t)v;
        v >>= 8;
    }
    return p + n;
}

static uint8_t *
s_put_str(uint8_t *p, const char *str, size_t len)
{
    if (len < 32) {
        *p++ = (uint8_t)(0xa0 | len);
    } else if (len < 256) {
        *p++ = 0xd9;
        p = s_put_be(p, len, 1);
    } else if (len < 65536) {
        *p++ = 0xda;
        p = s_put_be(p, len, 2);
    } else {
        *p++ = 0xdb;
        p = s_put_be(p, len, 4);
    }
    memcpy(p, str, len);
    return p + len;
}

static uint8_t *
s_put_int(uint8_t *p, int64_t d)
{
    uint64_t u = (uint64_t)d;
    if (d < -(1LL << 5)) {
        if (d < -(1LL << 31)) {
            *p++ = 0xd3;
            return s_put_be(p, u, 8);
        }
        if (d < -(1LL << 15)) {
            *p++ = 0xd2;
            return s_put_be(p, u, 4);
        }
        if (d < -(1LL << 7)) {
            *p++ = 0xd1;
            return s_put_be(p, u, 2);
        }
        *p++ = 0xd0;
        return s_put_be(p, u, 1);
    }
    if (d < (1LL << 7)) {
        *p++ = (uint8_t)d; //  positive or negative fixint
        return p;
    }
    if (d < (1LL << 8)) {
        *p++ = 0xcc;
        return s_put_be(p, u, 1);
    }
    if (d < (1LL << 16)) {
        *p++ = 0xcd;
        return s_put_be(p, u, 2);
    }
    if (d < (1LL << 32)) {
        *p++ = 0xce;
        return s_put_be(p, u, 4);
    }
    *p++ = 0xcf;
    return s_put_be(p, u, 8);
}

int
es_record_builder_key(es_record_builder_t *self, es_buf_t *out, es_err_t *err)
{
    const es_meta_object_t *obj = self->obj;
    es_buf_reset(out);
    for (size_t i = 0; i < obj->nkey; i++) {
        const slot_t *s = &self->slots[obj->key[i]];
        if (!s->set || s->type == ES_V_NULL)
            return es_err_set(err, ES_EINVAL, "%s: key column '%s' missing", obj->name,
                              obj->fields[obj->key[i]].name);
        es_value_t v = {.type = s->type};
        if (s->type == ES_V_STR) {
            v.u.s.ptr = self->strings.data ? self->strings.data + s->u.s.off : "";
            v.u.s.len = s->u.s.len;
        } else if (s->type == ES_V_BOOL) {
            v.u.b = s->u.b;
        } else if (s->type == ES_V_INT) {
            v.u.i = s->u.i;
        } else {
            v.u.d = s->u.d;
        }
        es_key_append(out, &v);
    }
    return 0;
}

int
es_record_builder_end(es_record_builder_t *self, es_buf_t *out, es_err_t *err)
{
    const es_meta_object_t *obj = self->obj;
    for (size_t i = 0; i < obj->nkey; i++) {
        const slot_t *s = &self->slots[obj->key[i]];
        if (!s->set || s->type == ES_V_NULL)
            return es_err_set(err, ES_EINVAL, "%s: key column '%s' missing", obj->name,
                              obj->fields[obj->key[i]].name);
    }
    //  Upper bound of the encoding: 5-byte headers, 9-byte scalars.
    size_t n = 0, max = 5;
    for (size_t i = 0; i < obj->nfields; i++) {
        const slot_t *s = &self->slots[i];
        if (!s->set)
            continue;
        n++;
        max += 5 + self->nlen[i] + (s->type == ES_V_STR ? 5 + s->u.s.len : 9);
    }
    if (max > self->pack_cap) {
        self->pack_cap = max < 1024 ? 1024 : max;
        self->pack = es_realloc(self->pack, self->pack_cap);
    }
    uint8_t *p = self->pack;
    if (n < 16) {
        *p++ = (uint8_t)(0x80 | n);
    } else if (n < 65536) {
        *p++ = 0xde;
        p = s_put_be(p, n, 2);
    } else {
        *p++ = 0xdf;
        p = s_put_be(p, n, 4);
    }
    for (size_t i = 0; i < obj->nfields; i++) {
        const slot_t *s = &self->slots[i];
        if (!s->set)
            continue;
        p = s_put_str(p, obj->fields[i].name, self->nlen[i]);
        switch (s->type) {
        case ES_V_NULL:
            *p++ = 0xc0;
            break;
        case ES_V_BOOL:
            *p++ = s->u.b ? 0xc3 : 0xc2;
            break;
        case ES_V_INT:
            p = s_put_int(p, s->u.i);
            break;
        case ES_V_DOUBLE: {
            uint64_t bits;
            memcpy(&bits, &s->u.d, 8);
            *p++ = 0xcb;
            p = s_put_be(p, bits, 8);
            break;
        }
        case ES_V_STR:
            p = s_put_str(p, self->strings.data + s->u.s.off, s->u.s.len);
            break;
        }
    }
    es_buf_reset(out);
    es_buf_append(out, self->pack, (size_t)(p - self->pack));
    return 0;
}

//  ---------------------------------------------------------------------------------------------
//  Reading records: a minimal MessagePack reader for the subset we write, without allocation.

typedef struct {
    const uint8_t *p;   //  next byte
    const uint8_t *end; //  one past the last byte
} reader_t;

static uint64_t
s_be(const uint8_t *p, size_t n)
{
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++)
        v = (v << 8) | p[i];
    return v;
}

//  Reads an n-byte big-endian length/value after the tag byte.
static int
s_take(reader_t *r, size_t n, uint64_t *out)
{
    if ((size_t)(r->end - r->p) < n)
        return -1;
    *out = s_be(r->p, n);
    r->p += n;
    return 0;
}

static int
s_read_map(reader_t *r, uint64_t *count)
{
    if (r->p >= r->end)
        return -1;
    uint8_t t = *r->p++;
    if ((t & 0xF0) == 0x80) {
        *count = t & 0x0F;
        return 0;
    }
    if (t == 0xde)
        return s_take(r, 2, count);
    if (t == 0xdf)
        return s_take(r, 4, count);
    return -1;
}

//  A str of any width; anything else is malformed here (we only write str keys and values).
static int
s_read_str_after(reader_t *r, uint8_t t, const char **s, size_t *len)
{
    uint64_t n;
    if ((t & 0xE0) == 0xA0) {
        n = t & 0x1F;
    } else if (t == 0xd9 || t == 0xda || t == 0xdb) {
        if (s_take(r, (size_t)1 << (t - 0xd9), &n)) //  str8, str16, str32
            return -1;
    } else {
        return -1;
    }
    if ((uint64_t)(r->end - r->p) < n)
        return -1;
    *s = (const char *)r->p;
    *len = (size_t)n;
    r->p += n;
    return 0;
}

static int
s_read_value(reader_t *r, es_value_t *v)
{
    if (r->p >= r->end)
        return -1;
    uint8_t t = *r->p++;
    uint64_t u;
    if (t <= 0x7f) {
        v->type = ES_V_INT;
        v->u.i = t;
        return 0;
    }
    if (t >= 0xe0) {
        v->type = ES_V_INT;
        v->u.i = (int8_t)t;
        return 0;
    }
    switch (t) {
    case 0xc0:
        v->type = ES_V_NULL;
        return 0;
    case 0xc2:
    case 0xc3:
        v->type = ES_V_BOOL;
        v->u.b = t == 0xc3;
        return 0;
    case 0xcc:
    case 0xcd:
    case 0xce:
    case 0xcf:
        if (s_take(r, (size_t)1 << (t - 0xcc), &u) || u > INT64_MAX)
            return -1;
        v->type = ES_V_INT;
        v->u.i = (int64_t)u;
        return 0;
    case 0xd0:
    case 0xd1:
    case 0xd2:
    case 0xd3: {
        size_t n = (size_t)1 << (t - 0xd0);
        if (s_take(r, n, &u))
            return -1;
        //  Sign-extend from n bytes.
        unsigned shift = (unsigned)(64 - 8 * n);
        v->type = ES_V_INT;
        v->u.i = (int64_t)(u << shift) >> shift;
        return 0;
    }
    case 0xca: {
        if (s_take(r, 4, &u))
            return -1;
        uint32_t bits = (uint32_t)u;
        float f;
        memcpy(&f, &bits, sizeof f);
        v->type = ES_V_DOUBLE;
        v->u.d = f;
        return 0;
    }
    case 0xcb:
        if (s_take(r, 8, &u))
            return -1;
        v->type = ES_V_DOUBLE;
        memcpy(&v->u.d, &u, sizeof v->u.d);
        return 0;
    default:
        v->type = ES_V_STR;
        return s_read_str_after(r, t, &v->u.s.ptr, &v->u.s.len);
    }
}

static int
s_read_key(reader_t *r, const char **s, size_t *len)
{
    if (r->p >= r->end)
        return -1;
    uint8_t t = *r->p++;
    return s_read_str_after(r, t, s, len);
}

int
es_record_get(const void *rec, size_t len, const char *name, es_value_t *out)
{
    reader_t r = {rec, (const uint8_t *)rec + len};
    uint64_t n;
    if (!rec || s_read_map(&r, &n))
        return -1;
    size_t nlen = strlen(name);
    for (uint64_t i = 0; i < n; i++) {
        const char *k;
        size_t klen;
        if (s_read_key(&r, &k, &klen) || s_read_value(&r, out))
            return -1;
        if (klen == nlen && memcmp(k, name, nlen) == 0)
            return 1;
    }
    return 0;
}

char *
es_record_int_text(char buf[ES_INT_TEXT_MAX], int64_t v)
{
    char *p = buf + ES_INT_TEXT_MAX;
    //  Negate as unsigned: INT64_MIN has no positive int64.
    uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
    do {
        *--p = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0)
        *--p = '-';
    return p;
}

void
es_record_put_int(es_buf_t *out, int64_t v)
{
    char tmp[ES_INT_TEXT_MAX];
    char *p = es_record_int_text(tmp, v);
    es_buf_append(out, p, (size_t)(tmp + sizeof tmp - p));
}

int
es_record_check(const void *rec, size_t len, es_err_t *err)
{
    reader_t r = {rec, (const uint8_t *)rec + len};
    uint64_t n;
    if (!rec || s_read_map(&r, &n))
        return es_err_set(err, ES_EPROTO, "record: not a MessagePack map");
    for (uint64_t i = 0; i < n; i++) {
        const char *k;
        size_t klen;
        es_value_t v;
        if (s_read_key(&r, &k, &klen) || s_read_value(&r, &v))
            return es_err_set(err, ES_EPROTO, "record: malformed entry %llu at byte %zu",
                              (unsigned long long)i, (size_t)(r.p - (const uint8_t *)rec));
    }
    if (r.p != r.end)
        return es_err_set(err, ES_EPROTO, "record: %zu trailing bytes", (size_t)(r.end - r.p));
    return 0;
}

//  The fast path: when d is the double nearest to a decimal v of at most 15 significant digits,
//  at most 8 of them after the point, with 1e-4 <= |v| < 1e15, "%.15g" prints v's digits in
//  fixed notation (d is within half a unit of v's 15th digit) and they read back as d. a * 10^e
//  landing on an integer m proves nothing alone; m / 10^e == a (both exact, so correctly
//  rounded) proves d is the double nearest to m / 10^e.
const char *
es_record_double_text(char buf[ES_DOUBLE_TEXT_MAX], double d, size_t *len)
{
    static const double p10[] = {1, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8};
    static const uint64_t u10[] = {1, 10, 100, 1000, 10000, 100000, 1000000, 10000000, 100000000};
    if (!isfinite(d))
        return NULL;
    double a = fabs(d);
    for (size_t e = 0; a >= 1e-4 && a < 1e15 && e < sizeof p10 / sizeof p10[0]; e++) {
        double t = a * p10[e];
        if (t >= 1e15)
            break;
        if (t != floor(t))
            continue;
        uint64_t m = (uint64_t)t;
        if ((double)m / p10[e] != a)
            break;
        uint64_t ip = m / u10[e], fp = m % u10[e];
        char *end = buf + ES_DOUBLE_TEXT_MAX, *p = end;
        if (fp) {
            size_t digits = e;
            for (; fp % 10 == 0; fp /= 10)
                digits--; //  %g drops trailing zeros
            for (size_t i = 0; i < digits; i++, fp /= 10)
                *--p = (char)('0' + fp % 10);
            *--p = '.';
        }
        do {
            *--p = (char)('0' + ip % 10);
            ip /= 10;
        } while (ip);
        if (d < 0)
            *--p = '-';
        *len = (size_t)(end - p);
        return p;
    }
    int n = snprintf(buf, ES_DOUBLE_TEXT_MAX, "%.15g", d);
    if (strtod(buf, NULL) != d)
        n = snprintf(buf, ES_DOUBLE_TEXT_MAX, "%.17g", d);
    *len = (size_t)n;
    return buf;
}

void
es_record_put_double(es_buf_t *out, double d)
{
    char tmp[ES_DOUBLE_TEXT_MAX];
    size_t n;
    const char *t = es_record_double_text(tmp, d, &n);
    if (t)
        es_buf_append(out, t, n);
    else
        es_buf_puts(out, "null");
}

int
es_record_to_json(const void *rec, size_t len, es_buf_t *out, es_err_t *err)
{
    reader_t r = {rec, (const uint8_t *)rec + len};
    uint64_t n;
    size_t start = out->len;
    if (!rec || s_read_map(&r, &n))
        return es_err_set(err, ES_EPROTO, "record: not a MessagePack map");
    es_buf_putc(out, '{');
    for (uint64_t i = 0; i < n; i++) {
        const char *k;
        size_t klen;
        es_value_t v;
        if (s_read_key(&r, &k, &klen) || s_read_value(&r, &v)) {
            //  Leave out as it was: a half-written object is worse than none.
            out->len = start;
            out->data[start] = '\0';
            return es_err_set(err, ES_EPROTO, "record: malformed entry %llu at byte %zu",
                              (unsigned long long)i, (size_t)(r.p - (const uint8_t *)rec));
        }
        if (i)
            es_buf_putc(out, ',');
        es_buf_json_str(out, k, klen);
        es_buf_putc(out, ':');
        switch (v.type) {
        case ES_V_NULL:
            es_buf_puts(out, "null");
            break;
        case ES_V_BOOL:
            es_buf_puts(out, v.u.b ? "true" : "false");
            break;
        case ES_V_INT:
            es_record_put_int(out, v.u.i);
            break;
        case ES_V_DOUBLE:
            es_record_put_double(out, v.u.d);
            break;
        case ES_V_STR:
            es_buf_json_str(out, v.u.s.ptr, v.u.s.len);
            break;
        }
    }
    if (r.p != r.end) {
        out->len = start;
        out->data[start] = '\0';
        return es_err_set(err, ES_EPROTO, "record: %zu trailing bytes", (size_t)(r.end - r.p));
    }
    es_buf_putc(out, '}');
    return 0;
}

//  ---------------------------------------------------------------------------------------------
//  JSON -> record with yajl's event parser: it hands us string lengths (so "\u0000" survives)
//  and raw number text (so we decide int vs double ourselves, int64 range included).

typedef struct {
    es_record_builder_t *b; //  the builder being fed
    es_err_t *err;          //  filled when a callback stops the parse
    bool failed;            //  a callback set err
    int depth;              //  0 outside, 1 inside the record object
    int col;                //  field index of the current member, -1 if skipped
    es_buf_t key;           //  current member name (yajl's pointer is transient)
} json_ctx_t;

static int
s_fail_nested(json_ctx_t *c, const char *what)
{
    const es_meta_field_t *f = &c->b->obj->fields[c->col];
    es_err_set(c->err, ES_EINVAL, "%s: expected %s, got %s", f->name, es_meta_ftype_name(f->type),
               what);
    c->failed = true;
    return 0;
}

static int
s_value(json_ctx_t *c, const es_value_t *v)
{
    if (c->depth == 0) {
        es_err_set(c->err, ES_EINVAL, "record: expected a JSON object, got %s",
                   s_vtype_name(v->type));
        c->failed = true;
        return 0;
    }
    if (c->depth > 1 || c->col < 0)
        return 1;
    if (es_record_builder_set(c->b, c->key.data, c->key.len, v, c->err)) {
        c->failed = true;
        return 0;
    }
    return 1;
}

static int
s_on_null(void *ctx)
{
    es_value_t v = {.type = ES_V_NULL};
    return s_value(ctx, &v);
}

static int
s_on_bool(void *ctx, int b)
{
    es_value_t v = {.type = ES_V_BOOL, .u.b = b != 0};
    return s_value(ctx, &v);
}

//  Integer syntax within int64 -> int; anything else (fraction, exponent, too big) -> double.
static void
s_parse_number(const char *s, size_t len, es_value_t *v)
{
    char tmp[512];
    if (len >= sizeof tmp)
        len = sizeof tmp - 1; //  longer than any double needs; precision beyond is noise
    memcpy(tmp, s, len);
    tmp[len] = '\0';
    if (strcspn(tmp, ".eE") == len) {
        errno = 0;
        char *end;
        long long i = strtoll(tmp, &end, 10);
        if (errno == 0 && *end == '\0') {
            v->type = ES_V_INT;
            v->u.i = i;
            return;
        }
    }
    v->type = ES_V_DOUBLE;
    v->u.d = strtod(tmp, NULL);
}

static int
s_on_number(void *ctx, const char *s, size_t len)
{
    es_value_t v;
    s_parse_number(s, len, &v);
    return s_value(ctx, &v);
}

static int
s_on_string(void *ctx, const unsigned char *s, size_t len)
{
    es_value_t v = {.type = ES_V_STR, .u.s = {(const char *)s, len}};
    return s_value(ctx, &v);
}

static int
s_on_start(json_ctx_t *c, const char *what)
{
    if (c->depth == 1 && c->col >= 0)
        return s_fail_nested(c, what);
    c->depth++;
    return 1;
}

static int
s_on_start_map(void *ctx)
{
    json_ctx_t *c = ctx;
    if (c->depth == 0) {
        c->depth = 1;
        return 1;
    }
    return s_on_start(c, "object");
}

static int
s_on_start_array(void *ctx)
{
    json_ctx_t *c = ctx;
    if (c->depth == 0) {
        es_err_set(c->err, ES_EINVAL, "record: expected a JSON object, got array");
        c->failed = true;
        return 0;
    }
    return s_on_start(c, "array");
}

static int
s_on_end(void *ctx)
{
    ((json_ctx_t *)ctx)->depth--;
    return 1;
}

static int
s_on_key(void *ctx, const unsigned char *s, size_t len)
{
    json_ctx_t *c = ctx;
    if (c->depth != 1)
        return 1;
    es_buf_reset(&c->key);
    es_buf_append(&c->key, s, len);
    c->col = es_meta_field_index(c->b->obj, c->key.data, len);
    return 1;
}

static const yajl_callbacks s_callbacks = {
    .yajl_null = s_on_null,
    .yajl_boolean = s_on_bool,
    .yajl_number = s_on_number,
    .yajl_string = s_on_string,
    .yajl_start_map = s_on_start_map,
    .yajl_map_key = s_on_key,
    .yajl_end_map = s_on_end,
    .yajl_start_array = s_on_start_array,
    .yajl_end_array = s_on_end,
};

int
es_record_from_json(const es_meta_object_t *obj, const char *json, size_t len, es_buf_t *out,
                    es_err_t *err)
{
    json_ctx_t c = {.b = es_record_builder_new(obj), .err = err, .col = -1};
    es_buf_init(&c.key);
    yajl_handle h = yajl_alloc(&s_callbacks, NULL, &c);
    int rc = -1;
    if (!h) {
        es_err_set(err, ES_ESYS, "record: yajl_alloc failed");
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
        es_err_set(err, ES_EINVAL, "record: invalid JSON: %.*s", (int)n, msg ? (char *)msg : "");
        if (msg)
            yajl_free_error(h, msg);
        goto done;
    }
    rc = es_record_builder_end(c.b, out, err);
done:
    if (h)
        yajl_free(h);
    es_buf_release(&c.key);
    es_record_builder_destroy(&c.b);
    return rc;
}
