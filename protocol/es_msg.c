//  es_msg - the message catalogue and its MessagePack codec. Each body has one field table;
//  encode (msgpack-c packer) and decode (a bounded reader over the frame) both walk it.
#include "protocol/es_msg.h"
#include "common/es_mem.h"
#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <msgpack.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

typedef enum {
    F_STR,  //  char[]: msgpack str, bounded by the array (room for the NUL)
    F_TEXT, //  es_slice_t: msgpack str (or bin on decode), points into the frame
    F_BOOL, //  bool
    F_U32,  //  uint32_t
    F_U64,  //  uint64_t
    F_I32,  //  int32_t
} ftype_t;

typedef struct {
    const char *name; //  wire key = member name; NULL ends a table
    size_t offset;    //  of the member within the body
    size_t size;      //  of the member (bounds F_STR)
    ftype_t type;     //  how it travels
} field_t;

#define FIELD(body, member, t)                                                                     \
    {                                                                                              \
#member, offsetof(es_##body##_t, member), sizeof(((es_##body##_t *)0)->member), t          \
    }
#define FIELDS_END                                                                                 \
    {                                                                                              \
        NULL, 0, 0, F_STR                                                                          \
    }

static const field_t s_hello[] = {
    FIELD(hello, kind, F_STR),
    FIELD(hello, pid, F_U32),
    FIELD(hello, worker, F_U32),
    FIELDS_END,
};
//  es_stop_t.unused only keeps the struct non-empty; STOP travels with an empty map.
static const field_t s_stop[] = {FIELDS_END};
static const field_t s_heartbeat[] = {
    FIELD(heartbeat, busy, F_BOOL),
    FIELDS_END,
};
static const field_t s_reply[] = {
    FIELD(reply, code, F_I32),
    FIELD(reply, what, F_TEXT),
    FIELD(reply, body, F_TEXT),
    FIELDS_END,
};
static const field_t s_result[] = {
    FIELD(result, session, F_STR),
    FIELD(result, code, F_I32),
    FIELD(result, body, F_TEXT),
    FIELDS_END,
};
static const field_t s_event[] = {
    FIELD(event, session, F_STR),
    FIELD(event, body, F_TEXT),
    FIELDS_END,
};
static const field_t s_sync[] = {
    FIELD(sync, level, F_STR),
    FIELD(sync, service, F_STR),
    FIELD(sync, object, F_STR),
    FIELD(sync, options, F_TEXT),
    FIELDS_END,
};
static const field_t s_cancel[] = {
    FIELD(cancel, session, F_STR),
    FIELDS_END,
};
static const field_t s_status[] = {
    FIELD(status, session, F_STR),
    FIELDS_END,
};
static const field_t s_setup[] = {
    FIELD(setup, service, F_STR),
    FIELDS_END,
};
static const field_t s_get[] = {
    FIELD(get, service, F_STR), FIELD(get, object, F_STR), FIELD(get, pk, F_TEXT),
    FIELD(get, filter, F_TEXT), FIELD(get, limit, F_U32),  FIELD(get, after, F_TEXT),
    FIELDS_END,
};
static const field_t s_stats[] = {
    FIELD(stats, entity, F_STR),
    FIELDS_END,
};
static const field_t s_history[] = {
    FIELD(history, entity, F_STR),
    FIELD(history, limit, F_U32),
    FIELDS_END,
};
static const field_t s_local[] = {
    FIELD(local, op, F_STR),       FIELD(local, service, F_STR), FIELD(local, object, F_STR),
    FIELD(local, pk, F_TEXT),      FIELD(local, record, F_TEXT), FIELD(local, options, F_TEXT),
    FIELDS_END,
};
static const field_t s_upload[] = {
    FIELD(upload, session, F_STR), FIELD(upload, job, F_U64),    FIELD(upload, service, F_STR),
    FIELD(upload, object, F_STR),  FIELD(upload, options, F_TEXT), FIELDS_END,
};
static const field_t s_reconcile[] = {
    FIELD(reconcile, session, F_STR), FIELD(reconcile, job, F_U64),
    FIELD(reconcile, service, F_STR), FIELD(reconcile, object, F_STR),
    FIELD(reconcile, options, F_TEXT), FIELDS_END,
};
static const field_t s_download[] = {
    FIELD(download, session, F_STR),  FIELD(download, job, F_U64),
    FIELD(download, service, F_STR),  FIELD(download, object, F_STR),
    FIELD(download, options, F_TEXT), FIELDS_END,
};
static const field_t s_progress[] = {
    FIELD(progress, session, F_STR),    FIELD(progress, job, F_U64),
    FIELD(progress, phase, F_STR),      FIELD(progress, state, F_STR),
    FIELD(progress, object, F_STR),     FIELD(progress, batch, F_U32),
    FIELD(progress, records, F_U32),    FIELD(progress, bytes, F_U64),
    FIELD(progress, request_ms, F_U32), FIELD(progress, network_ms, F_U32),
    FIELD(progress, parse_ms, F_U32),   FIELD(progress, persist_ms, F_U32),
    FIELD(progress, retries, F_U32),    FIELD(progress, last, F_BOOL),
    FIELDS_END,
};
static const field_t s_job_done[] = {
    FIELD(job_done, session, F_STR), FIELD(job_done, job, F_U64),     FIELD(job_done, code, F_I32),
    FIELD(job_done, what, F_TEXT),   FIELD(job_done, result, F_TEXT), FIELDS_END,
};

typedef struct {
    es_msg_type_t type;    //  wire id
    const char *name;      //  "HELLO"
    const field_t *fields; //  FIELDS_END-terminated
} msgdef_t;

static const msgdef_t s_catalogue[] = {
#define ES_MSG(NAME, id, body) {ES_MSG_##NAME, #NAME, s_##body},
#include "protocol/es_msg.def"
#undef ES_MSG
};
#define S_NTYPES (sizeof s_catalogue / sizeof s_catalogue[0])

static const msgdef_t *
s_lookup(uint64_t type)
{
    for (size_t i = 0; i < S_NTYPES; i++)
        if ((uint64_t)s_catalogue[i].type == type)
            return &s_catalogue[i];
    return NULL;
}

const char *
es_msg_name(es_msg_type_t type)
{
    const msgdef_t *def = s_lookup((uint64_t)type);
    return def ? def->name : "?";
}

void
es_msg_init(es_msg_t *msg, es_msg_type_t type, uint64_t request_id)
{
    assert(msg);
    memset(msg, 0, sizeof *msg);
    msg->type = type;
    msg->request_id = request_id;
}

//  ---------------------------------------------------------------------------------------------
//  Encoding

static int
s_buf_write(void *data, const char *buf, size_t len)
{
    es_buf_append((es_buf_t *)data, buf, len);
    return 0;
}

static size_t
s_nfields(const field_t *fields)
{
    size_t n = 0;
    while (fields[n].name)
        n++;
    return n;
}

//  msgpack_pack_* only fail when the write callback does, and ours cannot (OOM aborts), so
//  their return values carry no information here.
static int
s_encode_body(const msgdef_t *def, const void *body, msgpack_packer *pk, es_err_t *err)
{
    size_t n = s_nfields(def->fields);
    (void)msgpack_pack_map(pk, n);
    for (size_t i = 0; i < n; i++) {
        const field_t *f = &def->fields[i];
        const char *member = (const char *)body + f->offset;
        size_t klen = strlen(f->name);
        (void)msgpack_pack_str(pk, klen);
        (void)msgpack_pack_str_body(pk, f->name, klen);
        switch (f->type) {
        case F_STR: {
            size_t len = strnlen(member, f->size);
            if (len == f->size)
                return es_err_set(err, ES_EINVAL, "%s.%s: string too long (max %zu bytes)",
                                  def->name, f->name, f->size - 1);
            (void)msgpack_pack_str(pk, len);
            (void)msgpack_pack_str_body(pk, member, len);
            break;
        }
        case F_TEXT: {
            es_slice_t s;
            memcpy(&s, member, sizeof s);
            if (s.len > ES_MSG_MAX_SIZE)
                return es_err_set(err, ES_EINVAL, "%s.%s: text too long (%zu bytes, max %u)",
                                  def->name, f->name, s.len, ES_MSG_MAX_SIZE);
            assert(s.ptr || s.len == 0);
            (void)msgpack_pack_str(pk, s.len);
            if (s.len)
                (void)msgpack_pack_str_body(pk, s.ptr, s.len);
            break;
        }
        case F_BOOL: {
            bool b;
            memcpy(&b, member, sizeof b);
            (void)(b ? msgpack_pack_true(pk) : msgpack_pack_false(pk));
            break;
        }
        case F_U32: {
            uint32_t v;
            memcpy(&v, member, sizeof v);
            (void)msgpack_pack_uint32(pk, v);
            break;
        }
        case F_U64: {
            uint64_t v;
            memcpy(&v, member, sizeof v);
            (void)msgpack_pack_uint64(pk, v);
            break;
        }
        case F_I32: {
            int32_t v;
            memcpy(&v, member, sizeof v);
            (void)msgpack_pack_int32(pk, v);
            break;
        }
        }
    }
    return 0;
}

int
es_msg_encode(const es_msg_t *msg, es_buf_t *out, es_err_t *err)
{
    assert(msg && out);
    const msgdef_t *def = s_lookup((uint64_t)msg->type);
    if (!def)
        return es_err_set(err, ES_EINVAL, "message: unknown type %d", (int)msg->type);
    size_t start = out->len;
    msgpack_packer pk;
    msgpack_packer_init(&pk, out, s_buf_write);
    (void)msgpack_pack_array(&pk, 4);
    (void)msgpack_pack_uint32(&pk, ES_MSG_VERSION);
    (void)msgpack_pack_uint32(&pk, (uint32_t)def->type);
    (void)msgpack_pack_uint64(&pk, msg->request_id);
    int rc = s_encode_body(def, &msg->u, &pk, err);
    if (rc == 0 && out->len - start > ES_MSG_MAX_SIZE)
        rc = es_err_set(err, ES_EINVAL, "%s: message too large (%zu bytes, max %u)", def->name,
                        out->len - start, ES_MSG_MAX_SIZE);
    if (rc) {
        //  Leave out as it was, so a caller appending several messages is not left with half.
        out->len = start;
        out->data[start] = '\0';
    }
    return rc;
}

//  ---------------------------------------------------------------------------------------------
//  Decoding. A small reader rather than msgpack_unpack_next(): msgpack-c allocates an array's
//  or map's declared element count before reading any element, so a 5-byte frame could ask
//  for gigabytes; the reader allocates nothing and its slices point into the frame.

typedef enum { V_NIL, V_BOOL, V_UINT, V_INT, V_FLOAT, V_STR, V_BIN, V_ARRAY, V_MAP, V_EXT } vkind_t;

typedef struct {
    vkind_t kind;
    bool b;          //  V_BOOL
    uint64_t u;      //  V_UINT
    int64_t i;       //  V_INT (always negative: msgpack-c and others use uint for >= 0)
    const char *ptr; //  V_STR, V_BIN, V_EXT: payload
    uint32_t len;    //  V_STR, V_BIN, V_EXT: payload bytes; V_ARRAY, V_MAP: element count
} val_t;

typedef struct {
    const uint8_t *p;   //  next byte
    const uint8_t *end; //  one past the frame
    const uint8_t *bad; //  the byte that is no msgpack type (0xc1), if one stopped reading
} reader_t;

static bool
s_take(reader_t *r, size_t n, const uint8_t **out)
{
    if ((size_t)(r->end - r->p) < n)
        return false;
    *out = r->p;
    r->p += n;
    return true;
}

static uint64_t
s_be(const uint8_t *p, size_t n)
{
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++)
        v = (v << 8) | p[i];
    return v;
}

//  Read one value header (and a str/bin/ext payload). false if the frame ends first or the
//  byte is not a msgpack type (0xc1).
static bool
s_read(reader_t *r, val_t *v)
{
    const uint8_t *p;
    if (!s_take(r, 1, &p))
        return false;
    uint8_t b = *p;
    memset(v, 0, sizeof *v);
    size_t nlen = 0; //  bytes of the length that follows, for str/bin/array/map/ext
    if (b <= 0x7f) {
        v->kind = V_UINT;
        v->u = b;
        return true;
    }
    if (b >= 0xe0) {
        v->kind = V_INT;
        v->i = (int8_t)b;
        return true;
    }
    if (b >= 0x80 && b <= 0x8f) {
        v->kind = V_MAP;
        v->len = b & 0x0f;
        return true;
    }
    if (b >= 0x90 && b <= 0x9f) {
        v->kind = V_ARRAY;
        v->len = b & 0x0f;
        return true;
    }
    if (b >= 0xa0 && b <= 0xbf) {
        v->kind = V_STR;
        v->len = b & 0x1f;
        return s_take(r, v->len, (const uint8_t **)&v->ptr);
    }
    switch (b) {
    case 0xc0:
        v->kind = V_NIL;
        return true;
    case 0xc2:
    case 0xc3:
        v->kind = V_BOOL;
        v->b = b == 0xc3;
        return true;
    case 0xcc:
    case 0xcd:
    case 0xce:
    case 0xcf: {
        size_t n = (size_t)1 << (b - 0xcc);
        if (!s_take(r, n, &p))
            return false;
        v->kind = V_UINT;
        v->u = s_be(p, n);
        return true;
    }
    case 0xd0:
    case 0xd1:
    case 0xd2:
    case 0xd3: {
        size_t n = (size_t)1 << (b - 0xd0);
        if (!s_take(r, n, &p))
            return false;
        uint64_t raw = s_be(p, n);
        //  Sign-extend from n bytes.
        int64_t i = n == 8 ? (int64_t)raw : (int64_t)(raw << (64 - 8 * n)) >> (64 - 8 * n);
        if (i >= 0) {
            v->kind = V_UINT;
            v->u = (uint64_t)i;
        } else {
            v->kind = V_INT;
            v->i = i;
        }
        return true;
    }
    case 0xca:
    case 0xcb:
        v->kind = V_FLOAT;
        return s_take(r, b == 0xca ? 4 : 8, &p);
    case 0xd9:
    case 0xda:
    case 0xdb:
        v->kind = V_STR;
        nlen = (size_t)1 << (b - 0xd9);
        break;
    case 0xc4:
    case 0xc5:
    case 0xc6:
        v->kind = V_BIN;
        nlen = (size_t)1 << (b - 0xc4);
        break;
    case 0xdc:
    case 0xdd:
        v->kind = V_ARRAY;
        nlen = b == 0xdc ? 2 : 4;
        break;
    case 0xde:
    case 0xdf:
        v->kind = V_MAP;
        nlen = b == 0xde ? 2 : 4;
        break;
    case 0xd4:
    case 0xd5:
    case 0xd6:
    case 0xd7:
    case 0xd8: //  fixext 1..16: type byte + payload
        v->kind = V_EXT;
        v->len = 1u << (b - 0xd4);
        return s_take(r, 1, &p) && s_take(r, v->len, (const uint8_t **)&v->ptr);
    case 0xc7:
    case 0xc8:
    case 0xc9: //  ext 8/16/32: length, type byte, payload
        if (!s_take(r, (size_t)1 << (b - 0xc7), &p))
            return false;
        v->kind = V_EXT;
        v->len = (uint32_t)s_be(p, (size_t)1 << (b - 0xc7));
        return s_take(r, 1, &p) && s_take(r, v->len, (const uint8_t **)&v->ptr);
    default: //  0xc1 is never used
        r->bad = p;
        return false;
    }
    if (!s_take(r, nlen, &p))
        return false;
    v->len = (uint32_t)s_be(p, nlen);
    if (v->kind == V_STR || v->kind == V_BIN)
        return s_take(r, v->len, (const uint8_t **)&v->ptr);
    return true;
}

//  Skip the elements of a container whose header was just read, without recursion. Every
//  element takes at least one byte, so a count larger than the bytes left is truncation.
static bool
s_skip(reader_t *r, const val_t *head)
{
    uint64_t pending = head->kind == V_ARRAY ? head->len
                       : head->kind == V_MAP ? (uint64_t)head->len * 2
                                             : 0;
    while (pending) {
        if (pending > (uint64_t)(r->end - r->p))
            return false;
        val_t v;
        if (!s_read(r, &v))
            return false;
        pending--;
        if (v.kind == V_ARRAY)
            pending += v.len;
        else if (v.kind == V_MAP)
            pending += (uint64_t)v.len * 2;
    }
    return true;
}

//  Why s_read() or s_skip() stopped: the frame ended, or a byte that is no msgpack type.
static int
s_truncated(es_err_t *err, const reader_t *r, const uint8_t *start)
{
    if (r->bad)
        return es_err_set(err, ES_EPROTO, "message: invalid byte 0xc1 at offset %zu",
                          (size_t)(r->bad - start));
    return es_err_set(err, ES_EPROTO, "message: truncated");
}

static int
s_decode_field(const msgdef_t *def, const field_t *f, const val_t *v, void *body, es_err_t *err)
{
    char *member = (char *)body + f->offset;
    switch (f->type) {
    case F_STR:
        if (v->kind != V_STR)
            return es_err_set(err, ES_EPROTO, "%s.%s: expected a string", def->name, f->name);
        if (v->len >= f->size)
            return es_err_set(err, ES_EPROTO, "%s.%s: string too long (%" PRIu32 " bytes, max %zu)",
                              def->name, f->name, v->len, f->size - 1);
        if (memchr(v->ptr, '\0', v->len))
            return es_err_set(err, ES_EPROTO, "%s.%s: string contains a NUL byte", def->name,
                              f->name);
        memcpy(member, v->ptr, v->len);
        member[v->len] = '\0';
        return 0;
    case F_TEXT: {
        if (v->kind != V_STR && v->kind != V_BIN)
            return es_err_set(err, ES_EPROTO, "%s.%s: expected a string", def->name, f->name);
        es_slice_t s = {v->len ? v->ptr : "", v->len};
        memcpy(member, &s, sizeof s);
        return 0;
    }
    case F_BOOL:
        if (v->kind != V_BOOL)
            return es_err_set(err, ES_EPROTO, "%s.%s: expected a boolean", def->name, f->name);
        memcpy(member, &v->b, sizeof v->b);
        return 0;
    case F_U32:
    case F_U64:
        if (v->kind != V_UINT && v->kind != V_INT)
            return es_err_set(err, ES_EPROTO, "%s.%s: expected an integer", def->name, f->name);
        if (v->kind == V_INT || (f->type == F_U32 && v->u > UINT32_MAX)) {
            if (v->kind == V_INT)
                return es_err_set(err, ES_EPROTO, "%s.%s: integer out of range (%" PRId64 ")",
                                  def->name, f->name, v->i);
            return es_err_set(err, ES_EPROTO, "%s.%s: integer out of range (%" PRIu64 ")",
                              def->name, f->name, v->u);
        }
        if (f->type == F_U32) {
            uint32_t u32 = (uint32_t)v->u;
            memcpy(member, &u32, sizeof u32);
        } else {
            memcpy(member, &v->u, sizeof v->u);
        }
        return 0;
    case F_I32: {
        if (v->kind != V_UINT && v->kind != V_INT)
            return es_err_set(err, ES_EPROTO, "%s.%s: expected an integer", def->name, f->name);
        if (v->kind == V_UINT && v->u > INT32_MAX)
            return es_err_set(err, ES_EPROTO, "%s.%s: integer out of range (%" PRIu64 ")",
                              def->name, f->name, v->u);
        if (v->kind == V_INT && v->i < INT32_MIN)
            return es_err_set(err, ES_EPROTO, "%s.%s: integer out of range (%" PRId64 ")",
                              def->name, f->name, v->i);
        int32_t i32 = v->kind == V_UINT ? (int32_t)v->u : (int32_t)v->i;
        memcpy(member, &i32, sizeof i32);
        return 0;
    }
    }
    return es_err_set(err, ES_EPROTO, "%s.%s: bad field table", def->name, f->name);
}

//  Header reads that fail name the header element; truncation is reported by the caller.
static int
s_read_uint(reader_t *r, const uint8_t *start, const char *what, uint64_t *out, es_err_t *err)
{
    val_t v;
    if (!s_read(r, &v))
        return s_truncated(err, r, start);
    if (v.kind != V_UINT)
        return es_err_set(err, ES_EPROTO, "message: %s: expected an unsigned integer", what);
    *out = v.u;
    return 0;
}

int
es_msg_decode(es_msg_t *msg, const void *data, size_t len, es_err_t *err)
{
    assert(msg && (data || len == 0));
    es_msg_init(msg, 0, 0);
    const uint8_t *start = data;
    reader_t r = {start, start + len, NULL};
    val_t v;
    if (!s_read(&r, &v))
        return s_truncated(err, &r, start);
    if (v.kind != V_ARRAY || v.len != 4)
        return es_err_set(err, ES_EPROTO, "message: expected an array of 4");
    uint64_t version = 0, type = 0, request_id = 0; //  set by s_read_uint (Release -O2 cannot tell)
    if (s_read_uint(&r, start, "version", &version, err))
        return -1;
    if (version != ES_MSG_VERSION)
        return es_err_set(err, ES_EPROTO,
                          "message: version %" PRIu64 " not supported (expected %d)", version,
                          ES_MSG_VERSION);
    if (s_read_uint(&r, start, "type", &type, err))
        return -1;
    const msgdef_t *def = s_lookup(type);
    if (!def)
        return es_err_set(err, ES_EPROTO, "message: unknown type %" PRIu64, type);
    if (s_read_uint(&r, start, "request_id", &request_id, err))
        return -1;
    msg->type = def->type;
    msg->request_id = request_id;

    if (!s_read(&r, &v))
        return s_truncated(err, &r, start);
    if (v.kind != V_MAP)
        return es_err_set(err, ES_EPROTO, "%s: expected a map of fields", def->name);
    size_t nfields = s_nfields(def->fields);
    assert(nfields <= 64);
    uint64_t seen = 0;
    for (uint32_t i = 0; i < v.len; i++) {
        val_t key, val;
        if (!s_read(&r, &key))
            return s_truncated(err, &r, start);
        if (key.kind != V_STR)
            return es_err_set(err, ES_EPROTO, "%s: expected string keys", def->name);
        if (!s_read(&r, &val))
            return s_truncated(err, &r, start);
        size_t k = 0;
        while (k < nfields && !(strlen(def->fields[k].name) == key.len &&
                                memcmp(def->fields[k].name, key.ptr, key.len) == 0))
            k++;
        if (k == nfields) {
            //  Unknown key: a newer peer's field. Skip its value, whatever shape it has.
            if (!s_skip(&r, &val))
                return s_truncated(err, &r, start);
            continue;
        }
        //  A key given twice: the last value wins, as in most map readers.
        if (s_decode_field(def, &def->fields[k], &val, &msg->u, err))
            return -1;
        seen |= (uint64_t)1 << k;
    }
    if (r.p != r.end)
        return es_err_set(err, ES_EPROTO, "message: trailing bytes");
    for (size_t k = 0; k < nfields; k++)
        if (!(seen & ((uint64_t)1 << k)))
            return es_err_set(err, ES_EPROTO, "%s.%s: missing", def->name, def->fields[k].name);
    return 0;
}

//  ---------------------------------------------------------------------------------------------
//  ZeroMQ

static void
s_free_frame(void *data, void *hint)
{
    (void)hint;
    free(data);
}

int
es_msg_send(void *socket, const void *route, size_t route_len, const es_msg_t *msg, es_err_t *err)
{
    assert(socket && msg);
    es_buf_t buf;
    es_buf_init(&buf);
    if (es_msg_encode(msg, &buf, err)) {
        es_buf_release(&buf);
        return -1;
    }
    if (route && zmq_send(socket, route, route_len, ZMQ_SNDMORE | ZMQ_DONTWAIT) == -1) {
        es_buf_release(&buf);
        return es_err_set(err, ES_ESYS, "%s: send route: %s", es_msg_name(msg->type),
                          zmq_strerror(errno));
    }
    size_t len = buf.len;
    char *data = es_buf_steal(&buf);
    zmq_msg_t frame;
    //  The frame takes the encoded bytes without a copy; zmq frees them once sent.
    if (zmq_msg_init_data(&frame, data, len, s_free_frame, NULL)) {
        free(data);
        return es_err_set(err, ES_ESYS, "%s: zmq_msg_init_data: %s", es_msg_name(msg->type),
                          zmq_strerror(errno));
    }
    if (zmq_msg_send(&frame, socket, ZMQ_DONTWAIT) == -1) {
        int e = errno;
        (void)zmq_msg_close(&frame); //  frees data; the send failed so we still own it
        return es_err_set(err, ES_ESYS, "%s: send: %s", es_msg_name(msg->type), zmq_strerror(e));
    }
    return 0;
}

void
es_msg_in_init(es_msg_in_t *in)
{
    assert(in);
    memset(in, 0, sizeof *in);
    es_buf_init(&in->frame);
}

void
es_msg_in_release(es_msg_in_t *in)
{
    if (!in)
        return;
    es_buf_release(&in->frame);
    memset(in, 0, sizeof *in);
    es_buf_init(&in->frame);
}

int
es_msg_recv(void *socket, bool with_route, es_msg_in_t *in, es_err_t *err)
{
    assert(socket && in);
    es_buf_reset(&in->frame);
    in->route_len = 0;
    es_msg_init(&in->msg, 0, 0);

    size_t nparts = 0;
    size_t want = with_route ? 2 : 1;
    bool route_too_long = false;
    int more = 1;
    while (more) {
        zmq_msg_t part;
        if (zmq_msg_init(&part))
            return es_err_set(err, ES_ESYS, "message: zmq_msg_init: %s", zmq_strerror(errno));
        if (zmq_msg_recv(&part, socket, ZMQ_DONTWAIT) == -1) {
            int e = errno;
            (void)zmq_msg_close(&part);
            if (nparts == 0 && e == EAGAIN)
                return 0;
            //  Later parts cannot be missing (zmq delivers a message whole), so any failure
            //  here is the socket's.
            return es_err_set(err, ES_ESYS, "message: receive: %s", zmq_strerror(e));
        }
        more = zmq_msg_more(&part);
        const void *bytes = zmq_msg_data(&part);
        size_t size = zmq_msg_size(&part);
        nparts++;
        if (with_route && nparts == 1) {
            if (size > sizeof in->route)
                route_too_long = true;
            else {
                memcpy(in->route, bytes, size);
                in->route_len = size;
            }
        } else if (nparts == want) {
            es_buf_append(&in->frame, bytes, size);
        }
        (void)zmq_msg_close(&part); //  cannot fail on an initialised message
    }
    //  The whole message is consumed; now judge its shape.
    if (nparts != want)
        return es_err_set(err, ES_EPROTO, "message: %zu frame%s, expected %zu%s", nparts,
                          nparts == 1 ? "" : "s", want, with_route ? " (route, body)" : "");
    if (route_too_long)
        return es_err_set(err, ES_EPROTO, "message: route frame too long (max %zu bytes)",
                          sizeof in->route);
    if (es_msg_decode(&in->msg, in->frame.data, in->frame.len, err))
        return -1;
    return 1;
}
