//  srv_upload - upload: records applied in rowId order, each answered with one full record or a
//  per-record error; auto-generated keys; conflict policies; the upload cache (request ids kept
//  24 h, the apply and the stored answer committed in one transaction).
#include "common/es_log.h"
#include "common/es_mem.h"
#include "protocol/es_key.h"
#include "protocol/es_record.h"
#include "protocol/es_upload.h"
#include "server/srv.h"
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define S_CACHE_PROGRESS 1 //  upc value state: being applied (older versions; now in memory)
#define S_CACHE_DONE 2     //  upc value state: applied, answer stored
#define S_CACHE_HDR 9      //  upc value: state byte, then the time (big-endian u64), then answer

//  The request body is read straight into the compact form below, with no tree (building and
//  freeing one cost more than applying the records): by a small scanner when it is plain JSON,
//  as clients send it, else by yajl's event parser, which also words any syntax error. What it
//  keeps, and how it reads it, is what the tree-based code looked at: the first "records" of
//  the root, every member of each record, the first _metadata and its first object, action,
//  checksum and rowId. Strings stop at their first NUL byte, as the tree's C strings did; texts
//  without escapes are not copied but referred to in the body.

//  A value: scalars keep their text (a number as the client wrote it), containers are noted.
typedef enum {
    S_J_ABSENT = 0,
    S_J_NULL,
    S_J_TRUE,
    S_J_FALSE,
    S_J_NUMBER,
    S_J_STRING,
    S_J_OTHER //  object or array
} s_jkind_t;

typedef struct {
    s_jkind_t kind; //  what it is
    bool arena;     //  text in s_up_t.text (NUL-terminated), else in the body (not terminated)
    size_t off;     //  number/string/name: offset of its text
    size_t len;     //  its length
} s_jval_t;

typedef struct {
    s_jval_t key; //  the member name (kind unused)
    s_jval_t v;   //  its value
} s_pair_t;

typedef struct {
    size_t pair0;      //  first member in s_up_t.pairs
    size_t npairs;     //  members, in body order
    int meta;          //  first _metadata: 0 absent, 1 an object, 2 something else
    s_jval_t object;   //  _metadata.object (first of that name)
    s_jval_t action;   //  _metadata.action
    s_jval_t checksum; //  _metadata.checksum
    s_jval_t rowid;    //  _metadata.rowId
    int64_t row_id;    //  rowId as an integer
    size_t index;      //  position in the request (tie-break)
} s_item_t;

typedef struct {
    char *name;    //  object name as the client sent it
    es_buf_t recs; //  answered records, comma-separated
    size_t n;      //  how many
} s_group_t;

typedef struct {
    size_t obj;   //  object index
    int64_t temp; //  temporary negative key the client sent
    int64_t real; //  key assigned
} s_temp_t;

//  What a container is to the parser.
typedef enum { S_R_SKIP, S_R_ROOT, S_R_RECORDS, S_R_RECORD, S_R_META } s_role_t;
//  What is wrong with the request once it parsed: the first problem in the order it is checked.
typedef enum { S_BAD_NONE, S_BAD_NOT_OBJECT, S_BAD_META, S_BAD_ROWID } s_bad_t;

typedef struct {
    srv_t *srv;                     //  server
    int obj;                        //  endpoint object, or -1 for the service endpoint
    const char *body;               //  the body text being parsed (s_jval_t refer into it)
    size_t blen;                    //  its length
    es_buf_t text;                  //  texts not taken from the body as is, each NUL-terminated
    s_pair_t *pairs;                //  record members of every record
    size_t npairs, pairs_cap;       //  used, allocated
    s_item_t *items;                //  records (in rowId order once parsed)
    size_t n, items_cap;            //  records, allocated
    const char *cache_id;           //  request id to store the answer under, or NULL
    es_record_builder_t **builders; //  one per object
    es_buf_t rec, key, old;         //  per record scratch
    //  Parser state:
    int depth;        //  containers open
    s_role_t role[5]; //  role of the containers at depth 1..4; deeper ones are skipped
    bool root_object; //  the root is an object
    int records;      //  root "records": 0 absent, 1 an array, 2 something else
    bool key_records; //  the root member whose value comes next is that "records"
    bool key_meta;    //  the record member whose value comes next is its _metadata
    s_jval_t *slot;   //  the _metadata member whose value comes next, or NULL
    bool too_deep;    //  nesting went over SRV_JSON_MAX_DEPTH
    s_bad_t bad;      //  first record problem
    size_t bad_index; //  its record
    size_t elements;  //  elements of "records" seen
    //  Per attempt (es_store_write may run the function again after growing the map):
    es_buf_t out;             //  upc value: S_CACHE_HDR bytes, then the response body
    s_group_t *groups;        //  answers by object, in order of first appearance
    size_t ngroups;           //  how many
    s_temp_t *temps;          //  temporary keys mapped in this request
    size_t ntemps, temps_cap; //  how many, allocated
    uint64_t applied[SRV_MAX_OBJECTS], rejected[SRV_MAX_OBJECTS], conflicts;
    size_t success, failure; //  records answered
    srv_counters_t cnt;      //  sequence and auto-key counters, written once at the end
} s_up_t;

// ---------------------------------------------------------------- parsing

static const char *
s_str(const s_up_t *u, const s_jval_t *v)
{
    return (v->arena ? u->text.data : u->body) + v->off;
}

//  Keep s[0..len) up to its first NUL, terminated, in the text arena; its offset.
static size_t
s_keep(s_up_t *u, const char *s, size_t len, size_t *kept)
{
    const char *nul = memchr(s, '\0', len);
    if (nul)
        len = (size_t)(nul - s);
    size_t off = u->text.len;
    es_buf_append(&u->text, s, len);
    es_buf_putc(&u->text, '\0');
    *kept = len;
    return off;
}

//  Refer to s[0..len) in place when it lies in the body (no escapes, so no NUL byte), else
//  keep a copy.
static void
s_ref(s_up_t *u, const char *s, size_t len, s_jval_t *v)
{
    uintptr_t at = (uintptr_t)s, base = (uintptr_t)u->body;
    if (at >= base && len <= u->blen && at - base <= u->blen - len) {
        v->arena = false;
        v->off = (size_t)(s - u->body);
        v->len = len;
    } else {
        v->arena = true;
        v->off = s_keep(u, s, len, &v->len);
    }
}

static bool
s_is(const char *s, size_t len, const char *lit, size_t litlen)
{
    //  Compared as the tree's C strings: a name with a NUL byte ends there.
    return len >= litlen && memcmp(s, lit, litlen) == 0 && (len == litlen || s[litlen] == '\0');
}

static void
s_note_bad(s_up_t *u, s_bad_t bad, size_t index)
{
    if (u->bad == S_BAD_NONE) {
        u->bad = bad;
        u->bad_index = index;
    }
}

static s_role_t
s_role(const s_up_t *u)
{
    return u->depth >= 1 && u->depth <= 4 ? u->role[u->depth] : S_R_SKIP;
}

//  A value arrives in the current container: kind, the text of a number or string, and for a
//  container whether it is an object. Returns the role the container gets.
static s_role_t
s_value(s_up_t *u, s_jkind_t kind, const char *s, size_t len, bool open_map)
{
    if (u->depth == 0) {
        u->root_object = open_map;
        return open_map ? S_R_ROOT : S_R_SKIP;
    }
    switch (s_role(u)) {
    case S_R_ROOT:
        if (!u->key_records)
            return S_R_SKIP;
        u->key_records = false;
        u->records = kind == S_J_OTHER && !open_map ? 1 : 2;
        return u->records == 1 ? S_R_RECORDS : S_R_SKIP;
    case S_R_RECORDS: {
        size_t i = u->elements++;
        if (!open_map) {
            s_note_bad(u, S_BAD_NOT_OBJECT, i);
            return S_R_SKIP;
        }
        if (u->n == u->items_cap) {
            u->items_cap = u->items_cap ? u->items_cap * 2 : 64;
            u->items = es_realloc(u->items, u->items_cap * sizeof *u->items);
        }
        u->items[u->n++] = (s_item_t){.pair0 = u->npairs, .index = i};
        return S_R_RECORD;
    }
    case S_R_RECORD: {
        s_item_t *it = &u->items[u->n - 1];
        s_jval_t *v = &u->pairs[u->npairs - 1].v;
        v->kind = kind;
        if (kind == S_J_NUMBER || kind == S_J_STRING)
            s_ref(u, s, len, v);
        if (u->key_meta) {
            u->key_meta = false;
            it->meta = open_map ? 1 : 2;
            return open_map ? S_R_META : S_R_SKIP;
        }
        return S_R_SKIP;
    }
    case S_R_META:
        if (u->slot) {
            //  Kept terminated: these are read as C strings.
            u->slot->kind = kind;
            if (kind == S_J_NUMBER || kind == S_J_STRING) {
                u->slot->arena = true;
                u->slot->off = s_keep(u, s, len, &u->slot->len);
            }
            u->slot = NULL;
        }
        return S_R_SKIP;
    case S_R_SKIP:
        break;
    }
    return S_R_SKIP;
}

//  rowId as the tree-based check read it: an integer number, or a string strtoll takes whole.
static int
s_row_id(const s_up_t *u, const s_jval_t *v, int64_t *out)
{
    if (v->kind == S_J_NUMBER) {
        es_value_t x;
        if (srv_json_number(s_str(u, v), v->len, &x) || x.type != ES_V_INT)
            return -1;
        *out = x.u.i;
        return 0;
    }
    if (v->kind == S_J_STRING) {
        const char *s = s_str(u, v);
        char *end;
        if (v->len == 0 || v->len > 19)
            return -1;
        long long x = strtoll(s, &end, 10);
        if (*end)
            return -1;
        *out = x;
        return 0;
    }
    return -1;
}

static int
s_on_null(void *ctx)
{
    s_value(ctx, S_J_NULL, NULL, 0, false);
    return 1;
}

static int
s_on_bool(void *ctx, int b)
{
    s_value(ctx, b ? S_J_TRUE : S_J_FALSE, NULL, 0, false);
    return 1;
}

static int
s_on_number(void *ctx, const char *s, size_t len)
{
    s_value(ctx, S_J_NUMBER, s, len, false);
    return 1;
}

static int
s_on_string(void *ctx, const unsigned char *s, size_t len)
{
    s_value(ctx, S_J_STRING, (const char *)s, len, false);
    return 1;
}

static int
s_open(s_up_t *u, bool map)
{
    s_role_t r = s_value(u, S_J_OTHER, NULL, 0, map);
    if (++u->depth > SRV_JSON_MAX_DEPTH) {
        u->too_deep = true;
        return 0;
    }
    if (u->depth <= 4)
        u->role[u->depth] = r;
    return 1;
}

static int
s_on_start_map(void *ctx)
{
    return s_open(ctx, true);
}

static int
s_on_start_array(void *ctx)
{
    return s_open(ctx, false);
}

static int
s_on_end(void *ctx)
{
    s_up_t *u = ctx;
    if (s_role(u) == S_R_RECORD) {
        s_item_t *it = &u->items[u->n - 1];
        it->npairs = u->npairs - it->pair0;
        if (it->meta != 1)
            s_note_bad(u, S_BAD_META, it->index);
        else if (s_row_id(u, &it->rowid, &it->row_id))
            s_note_bad(u, S_BAD_ROWID, it->index);
    }
    u->depth--;
    return 1;
}

static int
s_on_key(void *ctx, const unsigned char *key, size_t len)
{
    s_up_t *u = ctx;
    const char *k = (const char *)key;
    switch (s_role(u)) {
    case S_R_ROOT:
        if (u->records == 0 && !u->key_records && s_is(k, len, "records", 7))
            u->key_records = true;
        break;
    case S_R_RECORD: {
        if (u->npairs == u->pairs_cap) {
            u->pairs_cap = u->pairs_cap ? u->pairs_cap * 2 : 256;
            u->pairs = es_realloc(u->pairs, u->pairs_cap * sizeof *u->pairs);
        }
        s_pair_t *p = &u->pairs[u->npairs++];
        s_ref(u, k, len, &p->key);
        p->v.kind = S_J_ABSENT;
        u->key_meta = u->items[u->n - 1].meta == 0 && s_is(k, len, "_metadata", 9);
        break;
    }
    case S_R_META: {
        s_item_t *it = &u->items[u->n - 1];
        s_jval_t *slot = s_is(k, len, "object", 6)     ? &it->object
                         : s_is(k, len, "action", 6)   ? &it->action
                         : s_is(k, len, "checksum", 8) ? &it->checksum
                         : s_is(k, len, "rowId", 5)    ? &it->rowid
                                                       : NULL;
        u->slot = slot && slot->kind == S_J_ABSENT ? slot : NULL;
        break;
    }
    default:
        break;
    }
    return 1;
}

//  The same events as yajl for the plain JSON that clients send (ASCII strings without escapes,
//  no comments), at a fraction of its cost. -1 at anything else, valid or not: the caller then
//  starts over with yajl, which also words the error. text[len] must be '\0'.
static int
s_fast(s_up_t *u, const char *text, size_t len)
{
    const unsigned char *p = (const unsigned char *)text, *end = p + len;
    char stack[SRV_JSON_MAX_DEPTH]; //  '{' or '[' per open container
    int sp = 0;
    enum { S_VALUE, S_KEY, S_AFTER } state = S_VALUE;
    for (;;) {
        while (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t')
            p++;
        if (state == S_KEY || (state == S_VALUE && *p == '"')) {
            if (*p != '"')
                return -1;
            const unsigned char *s = ++p;
            p += es_buf_json_plain_run(p, end);
            if (*p != '"')
                return -1; //  escapes, control or non-ASCII bytes, or the end: yajl decides
            size_t n = (size_t)(p++ - s);
            if (state == S_VALUE) {
                s_value(u, S_J_STRING, (const char *)s, n, false);
                state = S_AFTER;
                continue;
            }
            s_on_key(u, s, n);
            while (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t')
                p++;
            if (*p++ != ':')
                return -1;
            state = S_VALUE;
            continue;
        }
        if (state == S_VALUE) {
            const unsigned char *s = p;
            switch (*p) {
            case '{':
            case '[': {
                bool map = *p++ == '{';
                if (sp == SRV_JSON_MAX_DEPTH || !s_open(u, map))
                    return -1;
                stack[sp++] = map ? '{' : '[';
                while (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t')
                    p++;
                if (*p == (map ? '}' : ']')) {
                    p++;
                    s_on_end(u);
                    sp--;
                    state = S_AFTER;
                } else {
                    state = map ? S_KEY : S_VALUE;
                }
                continue;
            }
            case 't':
                if (strncmp((const char *)p, "true", 4))
                    return -1;
                p += 4;
                s_value(u, S_J_TRUE, NULL, 0, false);
                break;
            case 'f':
                if (strncmp((const char *)p, "false", 5))
                    return -1;
                p += 5;
                s_value(u, S_J_FALSE, NULL, 0, false);
                break;
            case 'n':
                if (strncmp((const char *)p, "null", 4))
                    return -1;
                p += 4;
                s_value(u, S_J_NULL, NULL, 0, false);
                break;
            default:
                //  -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?
                if (*p == '-')
                    p++;
                if (*p == '0')
                    p++;
                else if (*p >= '1' && *p <= '9')
                    while (*p >= '0' && *p <= '9')
                        p++;
                else
                    return -1;
                if (*p == '.') {
                    if (*++p < '0' || *p > '9')
                        return -1;
                    while (*p >= '0' && *p <= '9')
                        p++;
                }
                if (*p == 'e' || *p == 'E') {
                    if (*++p == '+' || *p == '-')
                        p++;
                    if (*p < '0' || *p > '9')
                        return -1;
                    while (*p >= '0' && *p <= '9')
                        p++;
                }
                s_value(u, S_J_NUMBER, (const char *)s, (size_t)(p - s), false);
                break;
            }
            state = S_AFTER;
            continue;
        }
        //  S_AFTER: a value ended.
        if (sp == 0)
            return p == end ? 0 : -1;
        if (*p == ',') {
            p++;
            state = stack[sp - 1] == '{' ? S_KEY : S_VALUE;
        } else if (*p == (stack[sp - 1] == '{' ? '}' : ']')) {
            p++;
            s_on_end(u);
            sp--;
        } else {
            return -1;
        }
    }
}

//  Forget what a parse attempt collected.
static void
s_parse_reset(s_up_t *u)
{
    es_buf_reset(&u->text);
    u->npairs = u->n = u->elements = u->bad_index = 0;
    u->depth = 0;
    u->root_object = u->key_records = u->key_meta = u->too_deep = false;
    u->records = 0;
    u->slot = NULL;
    u->bad = S_BAD_NONE;
}

//  Checks once the body parsed, in the order the tree-based code made them.
static int
s_parsed(s_up_t *u, srv_resp_t *resp)
{
    if (!u->root_object) {
        srv_resp_error(resp, 400, 400, "body: expected a JSON object");
        return -1;
    }
    if (u->records != 1) {
        srv_resp_error(resp, 400, 400, "records: expected an array");
        return -1;
    }
    switch (u->bad) {
    case S_BAD_NONE:
        return 0;
    case S_BAD_NOT_OBJECT:
        srv_resp_error(resp, 400, 400, "records[%zu]: expected an object", u->bad_index);
        break;
    case S_BAD_META:
        srv_resp_error(resp, 400, 400, "records[%zu]._metadata: expected an object", u->bad_index);
        break;
    case S_BAD_ROWID:
        srv_resp_error(resp, 400, 400, "records[%zu]._metadata.rowId: expected an integer",
                       u->bad_index);
        break;
    }
    return -1;
}

//  Parse the body into u. 0, or -1 with resp set to the 400 answer (same checks, same order
//  and same texts as when the body was read into a tree).
static int
s_parse(s_up_t *u, const char *body, size_t len, srv_resp_t *resp)
{
    static const yajl_callbacks cb = {.yajl_null = s_on_null,
                                      .yajl_boolean = s_on_bool,
                                      .yajl_number = s_on_number,
                                      .yajl_string = s_on_string,
                                      .yajl_start_map = s_on_start_map,
                                      .yajl_map_key = s_on_key,
                                      .yajl_end_map = s_on_end,
                                      .yajl_start_array = s_on_start_array,
                                      .yajl_end_array = s_on_end};
    es_err_t err;
    size_t tlen;
    const char *text = srv_json_body_text(body, len, &tlen, &err);
    if (!text) {
        srv_resp_error(resp, 400, 400, "%s", err.what);
        return -1;
    }
    u->body = text;
    u->blen = tlen;
    if (text[tlen] == '\0' && s_fast(u, text, tlen) == 0)
        return s_parsed(u, resp);
    s_parse_reset(u);
    yajl_handle h = yajl_alloc(&cb, NULL, u);
    if (!h) {
        srv_resp_error(resp, 500, 500, "upload: out of memory");
        return -1;
    }
    srv_json_config(h);
    yajl_status st = yajl_parse(h, (const unsigned char *)text, tlen);
    if (st == yajl_status_ok)
        st = yajl_complete_parse(h);
    if (u->too_deep)
        srv_resp_error(resp, 400, 400, SRV_JSON_DEPTH_MSG);
    else if (st != yajl_status_ok) {
        srv_json_error(h, text, tlen, &err);
        srv_resp_error(resp, 400, 400, "%s", err.what);
    }
    yajl_free(h);
    if (u->too_deep || st != yajl_status_ok)
        return -1;
    return s_parsed(u, resp);
}

// ---------------------------------------------------------------- applying

//  First member named name (as srv_json_get found it), or NULL.
static const s_jval_t *
s_member(const s_up_t *u, const s_item_t *it, const char *name)
{
    size_t nlen = strlen(name);
    for (size_t i = 0; i < it->npairs; i++) {
        const s_pair_t *p = &u->pairs[it->pair0 + i];
        if (p->key.len == nlen && memcmp(s_str(u, &p->key), name, nlen) == 0)
            return &p->v;
    }
    return NULL;
}

//  Scalar to value, as srv_json_value did (absent and null are null). -1 for containers and
//  numbers the tree could read neither as an integer nor as a double.
static int
s_jval_value(const s_up_t *u, const s_jval_t *v, es_value_t *out)
{
    memset(out, 0, sizeof *out);
    switch (v ? v->kind : S_J_ABSENT) {
    case S_J_ABSENT:
    case S_J_NULL:
        out->type = ES_V_NULL;
        return 0;
    case S_J_TRUE:
    case S_J_FALSE:
        out->type = ES_V_BOOL;
        out->u.b = v->kind == S_J_TRUE;
        return 0;
    case S_J_NUMBER:
        return srv_json_number(s_str(u, v), v->len, out);
    case S_J_STRING:
        out->type = ES_V_STR;
        out->u.s.ptr = s_str(u, v);
        out->u.s.len = v->len;
        return 0;
    case S_J_OTHER:
        break;
    }
    return -1;
}

//  A scalar as JSON text (numbers as the client wrote them), "null" for anything else.
static void
s_jval_write(const s_up_t *u, es_buf_t *b, const s_jval_t *v)
{
    es_value_t ev;
    if (v->kind == S_J_NUMBER)
        es_buf_append(b, s_str(u, v), v->len);
    else if (s_jval_value(u, v, &ev))
        es_buf_puts(b, "null");
    else
        srv_json_write_value(b, &ev);
}

//  The record of item it for obj (what srv_record_build makes of a node): base (may be NULL)
//  supplies columns the item does not set; ov_col (may be NULL) is set to ov last.
static int
s_build(s_up_t *u, const es_meta_object_t *mo, es_record_builder_t *b, const s_item_t *it,
        const void *base, size_t blen, const char *ov_col, const es_value_t *ov, es_buf_t *out,
        es_err_t *err)
{
    es_record_builder_reset(b);
    if (base) {
        for (size_t f = 0; f < mo->nfields; f++) {
            es_value_t v;
            const char *name = mo->fields[f].name;
            int rc = es_record_get(base, blen, name, &v);
            if (rc < 0)
                return es_err_set(err, ES_ESTORE, "%s: stored record is malformed", mo->name);
            if (rc == 1 && es_record_builder_set(b, name, strlen(name), &v, err))
                return -1;
        }
    }
    size_t hint = 0; //  clients send columns in metadata order: try the next one first
    for (size_t i = 0; i < it->npairs; i++) {
        const s_pair_t *p = &u->pairs[it->pair0 + i];
        const char *name = s_str(u, &p->key);
        size_t nlen = p->key.len;
        bool known = hint < mo->nfields && strncmp(mo->fields[hint].name, name, nlen) == 0 &&
                     mo->fields[hint].name[nlen] == '\0';
        size_t idx = hint;
        if (!known) {
            int found = es_meta_field_index(mo, name, nlen);
            if (found < 0) {
                if (nlen > 0 && name[0] == '_')
                    continue; //  "_metadata", "_<pk>" and other annotations
                return es_err_set(err, ES_EINVAL, "%s: unknown field '%.*s'", mo->name, (int)nlen,
                                  name);
            }
            idx = (size_t)found;
        }
        hint = idx + 1;
        es_value_t v;
        if (s_jval_value(u, &p->v, &v))
            return es_err_set(err, ES_EINVAL, "%.*s: expected a scalar value", (int)nlen, name);
        //  By index: the name is matched already (set by name would look it up again).
        if (es_record_builder_set_field(b, idx, &v, err))
            return -1;
    }
    if (ov_col && es_record_builder_set(b, ov_col, strlen(ov_col), ov, err))
        return -1;
    return es_record_builder_end(b, out, err);
}

// ---------------------------------------------------------------- answer text

//  Answer text goes through a small local buffer into the answer in large pieces: a record's
//  answer is some sixty small pieces, and an es_buf call costs more than copying one.
typedef struct {
    es_buf_t *out;  //  where the text goes
    size_t n;       //  bytes pending in buf
    char buf[2048]; //  pending text
} s_sink_t;

static void
s_flush(s_sink_t *k)
{
    if (k->n)
        es_buf_append(k->out, k->buf, k->n);
    k->n = 0;
}

static void
s_put(s_sink_t *k, const char *p, size_t n)
{
    if (n > sizeof k->buf - k->n) {
        s_flush(k);
        if (n > sizeof k->buf) {
            es_buf_append(k->out, p, n);
            return;
        }
    }
    memcpy(k->buf + k->n, p, n);
    k->n += n;
}

static void
s_putc(s_sink_t *k, char c)
{
    if (k->n == sizeof k->buf)
        s_flush(k);
    k->buf[k->n++] = c;
}

#define S_PUTS(k, lit) s_put((k), (lit), sizeof(lit) - 1)

//  A JSON string literal, escaped exactly as es_buf_json_str does (it does the unusual ones).
static void
s_put_json_str(s_sink_t *k, const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    if (es_buf_json_plain_run(p, p + len) != len) {
        s_flush(k);
        es_buf_json_str(k->out, s, len);
        return;
    }
    s_putc(k, '"');
    s_put(k, s, len);
    s_putc(k, '"');
}

//  What es_record_put_int writes.
static void
s_put_int(s_sink_t *k, int64_t v)
{
    char tmp[ES_INT_TEXT_MAX];
    char *p = es_record_int_text(tmp, v);
    s_put(k, p, (size_t)(tmp + sizeof tmp - p));
}

//  What es_record_to_json writes for a double; null when not finite.
static void
s_put_double(s_sink_t *k, double d)
{
    char tmp[ES_DOUBLE_TEXT_MAX];
    size_t n;
    const char *t = es_record_double_text(tmp, d, &n);
    if (t)
        s_put(k, t, n);
    else
        S_PUTS(k, "null");
}

//  Big-endian n-byte number at *p, if the bytes are there.
static bool
s_mp_take(const uint8_t **p, const uint8_t *end, size_t n, uint64_t *out)
{
    if ((size_t)(end - *p) < n)
        return false;
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++)
        v = (v << 8) | (*p)[i];
    *p += n;
    *out = v;
    return true;
}

//  A MessagePack str of any width at *p.
static bool
s_mp_str(const uint8_t **p, const uint8_t *end, const char **s, size_t *len)
{
    uint64_t n;
    if (*p >= end)
        return false;
    uint8_t t = *(*p)++;
    if ((t & 0xE0) == 0xA0)
        n = t & 0x1F;
    else if (t < 0xd9 || t > 0xdb || !s_mp_take(p, end, (size_t)1 << (t - 0xd9), &n))
        return false;
    if ((uint64_t)(end - *p) < n)
        return false;
    *s = (const char *)*p;
    *len = (size_t)n;
    *p += n;
    return true;
}

//  The record map as JSON, without its closing brace, as es_record_to_json writes it; *count
//  gets the number of columns. -1 for anything it does not expect (the caller then asks
//  es_record_to_json, which words the error if there is one).
static int
s_record_json(s_sink_t *k, const void *rec, size_t len, size_t *count)
{
    const uint8_t *p = rec, *end = p + len;
    uint64_t n, u;
    if (!rec || p >= end)
        return -1;
    uint8_t t = *p++;
    if ((t & 0xF0) == 0x80)
        n = t & 0x0F;
    else if ((t != 0xde && t != 0xdf) || !s_mp_take(&p, end, t == 0xde ? 2 : 4, &n))
        return -1;
    s_putc(k, '{');
    for (uint64_t i = 0; i < n; i++) {
        const char *s;
        size_t slen;
        if (!s_mp_str(&p, end, &s, &slen) || p >= end)
            return -1;
        if (i)
            s_putc(k, ',');
        s_put_json_str(k, s, slen);
        s_putc(k, ':');
        t = *p;
        if (t <= 0x7f) {
            p++;
            s_put_int(k, t);
        } else if (t >= 0xe0) {
            p++;
            s_put_int(k, (int8_t)t);
        } else if (t == 0xc0) {
            p++;
            S_PUTS(k, "null");
        } else if (t == 0xc2 || t == 0xc3) {
            p++;
            if (t == 0xc3)
                S_PUTS(k, "true");
            else
                S_PUTS(k, "false");
        } else if (t >= 0xcc && t <= 0xcf) {
            p++;
            if (!s_mp_take(&p, end, (size_t)1 << (t - 0xcc), &u) || u > INT64_MAX)
                return -1;
            s_put_int(k, (int64_t)u);
        } else if (t >= 0xd0 && t <= 0xd3) {
            p++;
            size_t nb = (size_t)1 << (t - 0xd0);
            if (!s_mp_take(&p, end, nb, &u))
                return -1;
            unsigned shift = (unsigned)(64 - 8 * nb); //  sign-extend from nb bytes
            s_put_int(k, (int64_t)(u << shift) >> shift);
        } else if (t == 0xcb) {
            p++;
            double d;
            if (!s_mp_take(&p, end, 8, &u))
                return -1;
            memcpy(&d, &u, sizeof d);
            s_put_double(k, d);
        } else {
            if (!s_mp_str(&p, end, &s, &slen))
                return -1; //  float32 and anything else: es_record_to_json decides
            s_put_json_str(k, s, slen);
        }
    }
    if (p != end)
        return -1;
    *count = (size_t)n;
    return 0;
}

// ---------------------------------------------------------------- applying (continued)

static int
s_item_cmp(const void *a, const void *b)
{
    const s_item_t *x = a, *y = b;
    if (x->row_id != y->row_id)
        return x->row_id < y->row_id ? -1 : 1;
    return x->index < y->index ? -1 : x->index > y->index;
}

static s_group_t *
s_group(s_up_t *u, const char *name)
{
    for (size_t i = 0; i < u->ngroups; i++)
        if (strcmp(u->groups[i].name, name) == 0)
            return &u->groups[i];
    u->groups = es_realloc(u->groups, (u->ngroups + 1) * sizeof *u->groups);
    s_group_t *g = &u->groups[u->ngroups++];
    g->name = es_strdup(name);
    es_buf_init(&g->recs);
    g->n = 0;
    return g;
}

static void
s_attempt_reset(s_up_t *u)
{
    for (size_t i = 0; i < u->ngroups; i++) {
        free(u->groups[i].name);
        es_buf_release(&u->groups[i].recs);
    }
    free(u->groups);
    u->groups = NULL;
    u->ngroups = 0;
    u->ntemps = 0;
    memset(u->applied, 0, sizeof u->applied);
    memset(u->rejected, 0, sizeof u->rejected);
    u->conflicts = 0;
    u->success = u->failure = 0;
    memset(&u->cnt, 0, sizeof u->cnt);
    es_buf_reset(&u->out);
}

static s_group_t *
s_begin_answer(s_up_t *u, const char *name)
{
    s_group_t *g = s_group(u, name);
    if (g->n++)
        es_buf_putc(&g->recs, ',');
    return g;
}

//  A rejected record: the key columns the client sent, and _metadata with errmsg.
static void
s_reject(s_up_t *u, const char *objname, int obj, const s_item_t *it, const char *action,
         int opstatus, const char *msg)
{
    s_group_t *g = s_begin_answer(u, objname);
    es_buf_t *b = &g->recs;
    es_buf_putc(b, '{');
    if (obj >= 0) {
        const es_meta_object_t *mo = &srv_data_meta(u->srv->data)->objects[obj];
        for (size_t k = 0; k < mo->nkey; k++) {
            const char *col = mo->fields[mo->key[k]].name;
            const s_jval_t *v = s_member(u, it, col);
            if (!v)
                continue;
            es_buf_json_str(b, col, strlen(col));
            es_buf_putc(b, ':');
            s_jval_write(u, b, v);
            es_buf_putc(b, ',');
        }
    }
    es_buf_puts(b, "\"_metadata\":{\"action\":");
    es_buf_json_str(b, action, strlen(action));
    es_buf_puts(b, ",\"rowId\":");
    es_record_put_int(b, it->row_id);
    es_buf_puts(b, ",\"opstatus\":");
    es_record_put_int(b, opstatus);
    es_buf_puts(b, ",\"errmsg\":");
    es_buf_json_str(b, msg, strlen(msg));
    es_buf_puts(b, "}}");
    u->failure++;
    if (obj >= 0)
        u->rejected[obj]++;
}

//  A full record answer.
static int
s_answer(s_up_t *u, const char *objname, const es_meta_object_t *mo, const void *rec, size_t len,
         const char *action, const char *cs, size_t cslen, const s_item_t *it, bool has_temp,
         int64_t temp, es_err_t *err)
{
    s_group_t *g = s_begin_answer(u, objname);
    es_buf_t *b = &g->recs;
    size_t start = b->len, count;
    s_sink_t k = {.out = b, .n = 0};
    if (s_record_json(&k, rec, len, &count)) {
        k.n = 0;
        b->len = start;
        if (b->data)
            b->data[start] = '\0';
        if (es_record_to_json(rec, len, b, err))
            return -1;
        b->len--; //  its closing brace: the annotations follow
        count = b->len > start + 1;
    }
    if (count)
        s_putc(&k, ',');
    if (has_temp) {
        for (size_t i = 0; i < mo->nkey; i++) {
            const es_meta_field_t *f = &mo->fields[mo->key[i]];
            if (f->auto_generated) {
                S_PUTS(&k, "\"_");
                s_put(&k, f->name, strlen(f->name));
                S_PUTS(&k, "\":");
                s_put_int(&k, temp);
                s_putc(&k, ',');
            }
        }
    }
    S_PUTS(&k, "\"_metadata\":{\"action\":\"");
    s_put(&k, action, strlen(action));
    S_PUTS(&k, "\",\"checksum\":\"");
    s_put(&k, cs, cslen);
    S_PUTS(&k, "\",\"rowId\":");
    s_put_int(&k, it->row_id);
    S_PUTS(&k, ",\"opstatus\":0}}");
    s_flush(&k);
    u->success++;
    return 0;
}

static const es_meta_field_t *
s_auto_field(const es_meta_object_t *mo)
{
    for (size_t k = 0; k < mo->nkey; k++)
        if (mo->fields[mo->key[k]].auto_generated)
            return &mo->fields[mo->key[k]];
    return NULL;
}

//  Apply one record. 0 (applied or rejected: answered either way) or -1 on a store failure.
static int
s_apply_one(s_up_t *u, es_txn_t *txn, const s_item_t *it, es_err_t *err)
{
    srv_t *srv = u->srv;
    const es_meta_t *meta = srv_data_meta(srv->data);
    char cs[SRV_CS_MAX + 1];
    es_err_t rerr;
    es_buf_t *rec = &u->rec, *key = &u->key, *old = &u->old;

    const char *action = it->action.kind == S_J_STRING ? s_str(u, &it->action) : "";
    const char *objname = it->object.kind == S_J_STRING ? s_str(u, &it->object) : NULL;
    if (!objname && u->obj >= 0)
        objname = meta->objects[u->obj].name;
    if (!objname) {
        s_reject(u, "", -1, it, action, 400, "_metadata.object: expected an object name");
        return 0;
    }
    int obj = u->obj >= 0 && strcmp(objname, meta->objects[u->obj].name) == 0
                  ? u->obj
                  : srv_data_object_index(srv->data, objname);
    if (obj < 0) {
        char msg[300];
        snprintf(msg, sizeof msg, "unknown object '%.200s'", objname);
        s_reject(u, objname, -1, it, action, 404, msg);
        return 0;
    }
    if (u->obj >= 0 && obj != u->obj) {
        char msg[400];
        snprintf(msg, sizeof msg, "object '%.100s' sent to the endpoint of object '%.100s'",
                 objname, meta->objects[u->obj].name);
        s_reject(u, objname, obj, it, action, 400, msg);
        return 0;
    }
    const es_meta_object_t *mo = &meta->objects[obj];
    bool create = strcmp(action, "create") == 0, update = strcmp(action, "update") == 0,
         partial = strcmp(action, "partialupdate") == 0, del = strcmp(action, "delete") == 0;
    if (!create && !update && !partial && !del) {
        char msg[200];
        snprintf(msg, sizeof msg,
                 "_metadata.action: expected create, update, partialupdate or delete, got "
                 "'%.60s'",
                 action);
        s_reject(u, objname, obj, it, action, 400, msg);
        return 0;
    }
    s_jkind_t csk = it->checksum.kind;
    if (csk != S_J_ABSENT && csk != S_J_NULL && csk != S_J_STRING) {
        s_reject(u, objname, obj, it, action, 400, "_metadata.checksum: expected a string");
        return 0;
    }
    const char *client_cs = csk == S_J_STRING ? s_str(u, &it->checksum) : "";

    //  Auto-generated key: a create with a negative (temporary) or no value gets the next real
    //  key; later records of this request naming the temporary key get the same real key.
    const es_meta_field_t *af = s_auto_field(mo);
    bool has_temp = false;
    int64_t temp = 0;
    es_value_t ov = {.type = ES_V_NULL};
    const char *ov_col = NULL;
    if (af) {
        const s_jval_t *kv = s_member(u, it, af->name);
        es_value_t v;
        bool absent = !kv || kv->kind == S_J_NULL;
        if (!absent && s_jval_value(u, kv, &v) == 0 && v.type == ES_V_INT && v.u.i < 0) {
            has_temp = true;
            temp = v.u.i;
        }
        if (create && (absent || has_temp)) {
            int64_t real;
            if (srv_data_next_auto(srv->data, txn, &u->cnt, (size_t)obj, &real, err))
                return -1;
            ov.type = ES_V_INT;
            ov.u.i = real;
            ov_col = af->name;
            if (has_temp) {
                if (u->ntemps == u->temps_cap) {
                    u->temps_cap = u->temps_cap ? u->temps_cap * 2 : 64;
                    u->temps = es_realloc(u->temps, u->temps_cap * sizeof *u->temps);
                }
                u->temps[u->ntemps++] = (s_temp_t){(size_t)obj, temp, real};
            }
        } else if (has_temp) {
            for (size_t i = 0; i < u->ntemps; i++)
                if (u->temps[i].obj == (size_t)obj && u->temps[i].temp == temp) {
                    ov.type = ES_V_INT;
                    ov.u.i = u->temps[i].real;
                    ov_col = af->name;
                }
        }
    }
    if (s_build(u, mo, u->builders[obj], it, NULL, 0, ov_col, &ov, rec, &rerr) ||
        es_key_from_record(mo, rec->data, rec->len, key, &rerr)) {
        s_reject(u, objname, obj, it, action, 400, rerr.what);
        return 0;
    }
    srv_row_t row;
    int found = srv_data_get(srv->data, txn, (size_t)obj, key->data, key->len, &row, err);
    if (found < 0)
        return -1;
    bool live = found == 1 && !row.deleted;
    if (create) {
        if (live) {
            s_reject(u, objname, obj, it, action, 409, "create: a record with this key exists");
            return 0;
        }
        if (srv_record_check_required(mo, rec->data, rec->len, &rerr)) {
            s_reject(u, objname, obj, it, action, 400, rerr.what);
            return 0;
        }
        if (af && !ov_col) {
            es_value_t v;
            if (es_record_get(rec->data, rec->len, af->name, &v) == 1 && v.type == ES_V_INT &&
                srv_data_seen_auto(srv->data, txn, &u->cnt, (size_t)obj, v.u.i, err))
                return -1;
        }
        if (srv_data_put_over(srv->data, txn, &u->cnt, (size_t)obj, key->data, key->len, rec->data,
                              rec->len, false, found == 1 ? &row : NULL, cs, err) ||
            s_answer(u, objname, mo, rec->data, rec->len, "create", cs, strlen(cs), it, has_temp,
                     temp, err))
            return -1;
        u->applied[obj]++;
        return 0;
    }
    if (!live) {
        char msg[200];
        snprintf(msg, sizeof msg, "%s: no record with this key", action);
        s_reject(u, objname, obj, it, action, 404, msg);
        return 0;
    }
    //  Conflict: the client's checksum is its view of the row; a different current checksum
    //  means the row changed on the server since the client last saw it.
    const char *policy = srv->opts->policy;
    if (strcmp(policy, "None") != 0 && client_cs[0] &&
        (strlen(client_cs) != row.cslen || memcmp(client_cs, row.checksum, row.cslen) != 0)) {
        u->conflicts++;
        if (strcmp(policy, "Server Wins") == 0)
            return s_answer(u, objname, mo, row.rec, row.len, "update", row.checksum, row.cslen, it,
                            has_temp, temp, err);
    }
    es_buf_reset(old);
    es_buf_append(old, row.rec, row.len); //  row points into the store: copy before writing
    if (del) {
        if (srv_data_put_over(srv->data, txn, &u->cnt, (size_t)obj, key->data, key->len, old->data,
                              old->len, true, &row, cs, err) ||
            s_answer(u, objname, mo, old->data, old->len, "delete", cs, strlen(cs), it, has_temp,
                     temp, err))
            return -1;
        u->applied[obj]++;
        return 0;
    }
    if (partial &&
        s_build(u, mo, u->builders[obj], it, old->data, old->len, ov_col, &ov, rec, &rerr)) {
        s_reject(u, objname, obj, it, action, 400, rerr.what);
        return 0;
    }
    if (srv_record_check_required(mo, rec->data, rec->len, &rerr)) {
        s_reject(u, objname, obj, it, action, 400, rerr.what);
        return 0;
    }
    if (srv_data_put_over(srv->data, txn, &u->cnt, (size_t)obj, key->data, key->len, rec->data,
                          rec->len, false, &row, cs, err) ||
        s_answer(u, objname, mo, rec->data, rec->len, action, cs, strlen(cs), it, has_temp, temp,
                 err))
        return -1;
    u->applied[obj]++;
    return 0;
}

static void
s_be64_put(unsigned char *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        p[i] = (unsigned char)(v & 0xff);
        v >>= 8;
    }
}

static uint64_t
s_be64_get(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | p[i];
    return v;
}

static int
s_apply_all(es_txn_t *txn, void *vctx, es_err_t *err)
{
    s_up_t *u = vctx;
    s_attempt_reset(u);
    for (size_t i = 0; i < u->n; i++)
        if (s_apply_one(u, txn, &u->items[i], err))
            return -1;
    if (srv_data_counters_flush(u->srv->data, txn, &u->cnt, err))
        return -1;
    time_t now = time(NULL);
    struct tm tm;
    char ts[32];
    gmtime_r(&now, &tm);
    strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%SZ", &tm);
    //  The answer goes after the cache header, so the stored value needs no second copy.
    es_buf_t *b = &u->out;
    unsigned char hdr[S_CACHE_HDR];
    hdr[0] = S_CACHE_DONE;
    s_be64_put(hdr + 1, (uint64_t)now);
    es_buf_append(b, hdr, sizeof hdr);
    es_buf_printf(b,
                  "{\"opstatus\":0,\"httpStatusCode\":200,\"_metadata\":{\"recordCount\":%zu,"
                  "\"successCount\":%zu,\"failureCount\":%zu,\"processCount\":%zu,"
                  "\"timestamp\":\"%s\"},\"objects\":[",
                  u->n, u->success, u->failure, u->n, ts);
    for (size_t i = 0; i < u->ngroups; i++) {
        es_buf_puts(b, i ? ",{\"name\":" : "{\"name\":");
        es_buf_json_str(b, u->groups[i].name, strlen(u->groups[i].name));
        es_buf_puts(b, ",\"records\":[");
        es_buf_append(b, u->groups[i].recs.data, u->groups[i].recs.len);
        es_buf_puts(b, "]}");
    }
    es_buf_puts(b, "]}");
    if (u->cache_id &&
        es_txn_put(txn, SRV_UPC_TABLE, u->cache_id, strlen(u->cache_id), b->data, b->len, err))
        return -1;
    return 0;
}

typedef enum { S_CACHE_NEW, S_CACHE_HIT, S_CACHE_BUSY } s_cache_state_t;

typedef struct {
    const char *id;        //  request id
    s_cache_state_t state; //  what we found
    es_buf_t stored;       //  the stored answer on a hit
} s_mark_t;

//  Request ids being applied right now. An in-progress mark needs no durable commit of its
//  own: after a crash nothing of its request was committed and the startup sweep would drop
//  it anyway, so it lives in memory and saves one synchronous commit per upload. Taken and
//  released under the lock; released only after the answer is committed, so a repeat sees
//  either the mark or the stored answer, never neither.
static pthread_mutex_t s_busy_lock = PTHREAD_MUTEX_INITIALIZER;
static char **s_busy;     //  ids in progress
static size_t s_nbusy;    //  how many
static size_t s_busy_cap; //  allocated slots

static bool
s_busy_has(const char *id)
{
    for (size_t i = 0; i < s_nbusy; i++)
        if (strcmp(s_busy[i], id) == 0)
            return true;
    return false;
}

//  Look the id up in the stored answers (read transaction). Caller holds s_busy_lock.
static int
s_cache_lookup(srv_t *srv, s_mark_t *m, es_err_t *err)
{
    es_txn_t *txn = es_store_begin(srv_data_store(srv->data), false, err);
    if (!txn)
        return -1;
    const void *val;
    size_t vlen;
    uint64_t now = (uint64_t)time(NULL);
    m->state = S_CACHE_NEW;
    es_buf_reset(&m->stored);
    int rc = es_txn_get(txn, SRV_UPC_TABLE, m->id, strlen(m->id), &val, &vlen, err);
    if (rc == 1 && vlen >= 9) {
        const unsigned char *p = val;
        //  Rows in progress (from a version that stored them) are stale: this process
        //  is the only writer and its own marks are in memory.
        if (p[0] == S_CACHE_DONE && now < s_be64_get(p + 1) + SRV_CACHE_TTL_S) {
            m->state = S_CACHE_HIT;
            es_buf_append(&m->stored, p + 9, vlen - 9);
        }
    }
    es_txn_abort(&txn);
    return rc < 0 ? -1 : 0;
}

//  Mark id in progress unless it is being applied (BUSY) or answered already (HIT).
static int
s_cache_mark(srv_t *srv, s_mark_t *m, es_err_t *err)
{
    pthread_mutex_lock(&s_busy_lock);
    int rc = 0;
    if (s_busy_has(m->id)) {
        m->state = S_CACHE_BUSY;
    } else if ((rc = s_cache_lookup(srv, m, err)) == 0 && m->state == S_CACHE_NEW) {
        if (s_nbusy == s_busy_cap) {
            s_busy_cap = s_busy_cap ? s_busy_cap * 2 : 8;
            s_busy = es_realloc(s_busy, s_busy_cap * sizeof *s_busy);
        }
        s_busy[s_nbusy++] = es_strdup(m->id);
    }
    pthread_mutex_unlock(&s_busy_lock);
    return rc;
}

//  Drop the in-progress mark of id (after its answer is committed, or after a failure).
static void
s_cache_unmark(const char *id)
{
    pthread_mutex_lock(&s_busy_lock);
    for (size_t i = 0; i < s_nbusy; i++)
        if (strcmp(s_busy[i], id) == 0) {
            free(s_busy[i]);
            s_busy[i] = s_busy[--s_nbusy];
            break;
        }
    if (s_nbusy == 0) {
        free(s_busy);
        s_busy = NULL;
        s_busy_cap = 0;
    }
    pthread_mutex_unlock(&s_busy_lock);
}

typedef struct {
    uint64_t now;   //  current time
    es_buf_t stale; //  keys to delete, each preceded by its length (size_t)
} s_sweep_t;

static int
s_sweep_cb(void *vctx, const void *key, size_t klen, const void *val, size_t vlen, es_err_t *err)
{
    s_sweep_t *s = vctx;
    const unsigned char *p = val;
    (void)err;
    //  In progress at startup means the process died mid-request: its transaction never
    //  committed, so nothing was applied and the client may send it again.
    if (vlen < 9 || p[0] != S_CACHE_DONE || s->now >= s_be64_get(p + 1) + SRV_CACHE_TTL_S) {
        es_buf_append(&s->stale, &klen, sizeof klen);
        es_buf_append(&s->stale, key, klen);
    }
    return 0;
}

static int
s_sweep(es_txn_t *txn, void *vctx, es_err_t *err)
{
    s_sweep_t *s = vctx;
    es_buf_reset(&s->stale);
    if (es_txn_iter(txn, SRV_UPC_TABLE, NULL, 0, s_sweep_cb, s, err))
        return -1;
    for (size_t off = 0; off < s->stale.len;) {
        size_t klen;
        memcpy(&klen, s->stale.data + off, sizeof klen);
        off += sizeof klen;
        if (es_txn_del(txn, SRV_UPC_TABLE, s->stale.data + off, klen, err) < 0)
            return -1;
        off += klen;
    }
    return 0;
}

int
srv_upload_cache_sweep(srv_t *srv, es_err_t *err)
{
    s_sweep_t s = {(uint64_t)time(NULL), {0}};
    es_buf_init(&s.stale);
    int rc = es_store_write(srv_data_store(srv->data), s_sweep, &s, err);
    es_buf_release(&s.stale);
    return rc;
}

void
srv_upload(srv_t *srv, int obj, const char *cache_id, const char *body, size_t len,
           srv_resp_t *resp)
{
    es_err_t err;
    const es_meta_t *meta = srv_data_meta(srv->data);
    s_up_t u = {.srv = srv, .obj = obj};
    es_buf_init(&u.text);
    es_buf_init(&u.rec);
    es_buf_init(&u.key);
    es_buf_init(&u.old);
    es_buf_init(&u.out);
    s_mark_t mark = {.id = NULL};
    es_buf_init(&mark.stored);
    if (s_parse(&u, body, len, resp))
        goto done;
    if (u.n > 1) //  (items is NULL when there are none)
        qsort(u.items, u.n, sizeof *u.items, s_item_cmp);

    if (cache_id && srv->opts->upload_cache) {
        if (strlen(cache_id) > 200) {
            srv_resp_error(resp, 400, 400, "X-Voltmx-RequestCacheId: longer than 200 bytes");
            goto done;
        }
        mark.id = cache_id;
        if (s_cache_mark(srv, &mark, &err)) {
            srv_resp_error(resp, 500, 500, "store: %s", err.what);
            goto done;
        }
        if (mark.state == S_CACHE_HIT) {
            pthread_mutex_lock(&srv->stats->lock);
            srv->stats->cache_hits++;
            pthread_mutex_unlock(&srv->stats->lock);
            resp->status = 200;
            es_buf_reset(&resp->body);
            es_buf_append(&resp->body, mark.stored.data, mark.stored.len);
            srv_stats_count(srv->stats, SRV_K_UPLOAD);
            goto done;
        }
        if (mark.state == S_CACHE_BUSY) {
            pthread_mutex_lock(&srv->stats->lock);
            srv->stats->cache_in_progress++;
            pthread_mutex_unlock(&srv->stats->lock);
            srv_resp_error(resp, 200, SRV_OPSTATUS_IN_PROGRESS, "request already in progress");
            goto done;
        }
        u.cache_id = cache_id;
    }
    if (resp->apply_delay)
        srv_sleep_ms(srv->stopping, resp->apply_delay);

    u.builders = es_calloc(meta->nobjects, sizeof *u.builders);
    for (size_t i = 0; i < meta->nobjects; i++)
        u.builders[i] = es_record_builder_new(&meta->objects[i]);
    if (es_store_write(srv_data_store(srv->data), s_apply_all, &u, &err)) {
        es_log_error("server: upload: %s", err.what);
        srv_resp_error(resp, 500, 500, "store: %s", err.what);
        goto done;
    }
    pthread_mutex_lock(&srv->stats->lock);
    for (size_t i = 0; i < meta->nobjects && i < SRV_MAX_OBJECTS; i++) {
        srv->stats->applied[i] += u.applied[i];
        srv->stats->rejected[i] += u.rejected[i];
    }
    srv->stats->conflicts += u.conflicts;
    pthread_mutex_unlock(&srv->stats->lock);
    srv_stats_count(srv->stats, SRV_K_UPLOAD);
    resp->status = 200;
    es_buf_reset(&resp->body);
    es_buf_append(&resp->body, u.out.data + S_CACHE_HDR, u.out.len - S_CACHE_HDR);
done:
    if (u.cache_id)
        s_cache_unmark(u.cache_id);
    if (u.builders)
        for (size_t i = 0; i < meta->nobjects; i++)
            es_record_builder_destroy(&u.builders[i]);
    free(u.builders);
    s_attempt_reset(&u);
    free(u.temps);
    es_buf_release(&u.out);
    es_buf_release(&u.old);
    es_buf_release(&u.key);
    es_buf_release(&u.rec);
    es_buf_release(&mark.stored);
    free(u.items);
    free(u.pairs);
    es_buf_release(&u.text);
}

// ---------------------------------------------------------------- admin edits and listing

typedef struct {
    srv_t *srv;
    int obj;
    yajl_val node;             //  record
    const char *op;            //  create | update | delete
    es_record_builder_t *b;    //  builder for obj
    es_buf_t out;              //  answer
    int status;                //  HTTP status of a refusal
    char why[ES_ERR_WHAT_MAX]; //  refusal text
} s_edit_t;

static int
s_edit(es_txn_t *txn, void *vctx, es_err_t *err)
{
    s_edit_t *e = vctx;
    srv_data_t *data = e->srv->data;
    const es_meta_object_t *mo = &srv_data_meta(data)->objects[e->obj];
    es_buf_t rec, key, old;
    es_buf_init(&rec);
    es_buf_init(&key);
    es_buf_init(&old);
    es_err_t rerr;
    int rc = 0;
    char cs[SRV_CS_MAX + 1];
    e->status = 0;
    es_buf_reset(&e->out);
    bool create = strcmp(e->op, "create") == 0;
    const es_meta_field_t *af = s_auto_field(mo);
    es_value_t ov = {.type = ES_V_NULL};
    const char *ov_col = NULL;
    if (create && af) {
        yajl_val kv = srv_json_get(e->node, af->name);
        if (!kv || YAJL_IS_NULL(kv)) {
            int64_t real;
            if (srv_data_next_auto(data, txn, NULL, (size_t)e->obj, &real, err)) {
                rc = -1;
                goto done;
            }
            ov.type = ES_V_INT;
            ov.u.i = real;
            ov_col = af->name;
        }
    }
    if (srv_record_build(e->b, mo, e->node, NULL, 0, ov_col, &ov, &rec, &rerr) ||
        es_key_from_record(mo, rec.data, rec.len, &key, &rerr)) {
        e->status = 400;
        snprintf(e->why, sizeof e->why, "%s", rerr.what);
        goto done;
    }
    srv_row_t row;
    int found = srv_data_get(data, txn, (size_t)e->obj, key.data, key.len, &row, err);
    if (found < 0) {
        rc = -1;
        goto done;
    }
    bool live = found == 1 && !row.deleted;
    if (create == live) {
        e->status = create ? 409 : 404;
        snprintf(e->why, sizeof e->why, "%s: %s", e->op,
                 create ? "a record with this key exists" : "no record with this key");
        goto done;
    }
    bool deleted = strcmp(e->op, "delete") == 0;
    if (!create) {
        es_buf_append(&old, row.rec, row.len);
        //  Admin update merges: tests name only the columns they change.
        if (!deleted &&
            srv_record_build(e->b, mo, e->node, old.data, old.len, NULL, NULL, &rec, &rerr)) {
            e->status = 400;
            snprintf(e->why, sizeof e->why, "%s", rerr.what);
            goto done;
        }
    }
    if (!deleted && srv_record_check_required(mo, rec.data, rec.len, &rerr)) {
        e->status = 400;
        snprintf(e->why, sizeof e->why, "%s", rerr.what);
        goto done;
    }
    if (create && af && !ov_col) {
        es_value_t v;
        if (es_record_get(rec.data, rec.len, af->name, &v) == 1 && v.type == ES_V_INT &&
            srv_data_seen_auto(data, txn, NULL, (size_t)e->obj, v.u.i, err)) {
            rc = -1;
            goto done;
        }
    }
    const es_buf_t *w = deleted ? &old : &rec;
    if (srv_data_put(data, txn, NULL, (size_t)e->obj, key.data, key.len, w->data, w->len, deleted,
                     cs, err)) {
        rc = -1;
        goto done;
    }
    es_buf_puts(&e->out, "{\"opstatus\":0,\"record\":");
    if (es_record_to_json(w->data, w->len, &e->out, err)) {
        rc = -1;
        goto done;
    }
    es_buf_printf(&e->out, ",\"checksum\":\"%s\",\"deleted\":%s}", cs, deleted ? "true" : "false");
done:
    es_buf_release(&old);
    es_buf_release(&key);
    es_buf_release(&rec);
    return rc;
}

void
srv_admin_edit(srv_t *srv, int obj, const char *body, size_t len, srv_resp_t *resp)
{
    es_err_t err;
    const es_meta_t *meta = srv_data_meta(srv->data);
    yajl_val root = srv_json_parse(body, len, &err);
    if (!root) {
        srv_resp_error(resp, 400, 400, "%s", err.what);
        return;
    }
    yajl_val op = srv_json_get(root, "op"), rec = srv_json_get(root, "record");
    const char *ops = op && YAJL_IS_STRING(op) ? YAJL_GET_STRING(op) : "";
    if (strcmp(ops, "create") && strcmp(ops, "update") && strcmp(ops, "delete")) {
        srv_resp_error(resp, 400, 400, "op: expected create, update or delete");
        yajl_tree_free(root);
        return;
    }
    if (!rec || !YAJL_IS_OBJECT(rec)) {
        srv_resp_error(resp, 400, 400, "record: expected an object");
        yajl_tree_free(root);
        return;
    }
    s_edit_t e = {.srv = srv, .obj = obj, .node = rec, .op = ops};
    e.b = es_record_builder_new(&meta->objects[obj]);
    es_buf_init(&e.out);
    if (es_store_write(srv_data_store(srv->data), s_edit, &e, &err))
        srv_resp_error(resp, 500, 500, "store: %s", err.what);
    else if (e.status)
        srv_resp_error(resp, e.status, e.status, "%s", e.why);
    else {
        resp->status = 200;
        es_buf_reset(&resp->body);
        es_buf_append(&resp->body, e.out.data, e.out.len);
    }
    es_buf_release(&e.out);
    es_record_builder_destroy(&e.b);
    yajl_tree_free(root);
}

typedef struct {
    es_buf_t *out; //  JSON lines
} s_list_t;

static int
s_list_cb(void *vctx, const void *key, size_t klen, const void *val, size_t vlen, es_err_t *err)
{
    s_list_t *l = vctx;
    srv_row_t row;
    (void)key;
    (void)klen;
    if (srv_row_unpack(val, vlen, &row))
        return es_err_set(err, ES_ESTORE, "corrupt row");
    if (row.deleted)
        return 0;
    if (es_record_to_json(row.rec, row.len, l->out, err))
        return -1;
    es_buf_putc(l->out, '\n');
    return 0;
}

void
srv_admin_list(srv_t *srv, int obj, srv_resp_t *resp)
{
    es_err_t err;
    es_buf_reset(&resp->body);
    s_list_t l = {&resp->body};
    es_txn_t *txn = es_store_begin(srv_data_store(srv->data), false, &err);
    if (!txn || es_txn_iter(txn, srv_data_rec_table(srv->data, (size_t)obj), NULL, 0, s_list_cb, &l,
                            &err)) {
        es_txn_abort(&txn);
        srv_resp_error(resp, 500, 500, "store: %s", err.what);
        return;
    }
    es_txn_abort(&txn);
    resp->status = 200;
}
