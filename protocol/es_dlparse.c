//  es_dlparse - streaming parser of Foundry download responses (SPEC 5.4) on libyajl callbacks.
//  A small stack of structural frames (root, records, record, ...) plus two counters for values
//  we skip or re-serialise (delta_context) keeps memory independent of the number of records.
#include "protocol/es_dlparse.h"
#include "common/es_buf.h"
#include "common/es_mem.h"
#include "protocol/es_record.h"
#include <assert.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_parse.h>

#define DEPTH_MAX 64         //  deepest nesting accepted in a response
#define DC_MAX (1024 * 1024) //  largest delta_context accepted, re-serialised
#define TEXT_MAX 1024        //  errmsg / errcode kept up to this many bytes
#define FRAMES_MAX 8         //  structural frames never nest deeper than this

//  What the next value means (set by a map key, or by the enclosing array).
typedef enum {
    V_ROOT,      //  the document itself
    V_SKIP,      //  unknown key: ignore the value, any depth
    V_OPSTATUS,  //  root opstatus
    V_ERRMSG,    //  root errmsg
    V_ERRCODE,   //  root errcode
    V_HASMORE,   //  root hasMoreRecords
    V_RECORDS,   //  object level root records
    V_OBJECTS,   //  service level root Objects
    V_DC,        //  root delta_context
    V_RECORD,    //  an element of a records array
    V_COLUMN,    //  a column of a record (field index in self->col)
    V_RECMETA,   //  a record's _metadata
    V_ACTION,    //  _metadata.action
    V_CHECKSUM,  //  _metadata.checksum
    V_ENTRY,     //  an element of Objects
    V_ENAME,     //  Objects[i].name
    V_EOPSTATUS, //  Objects[i].opstatus
    V_EERRMSG,   //  Objects[i].errmsg
    V_EERRCODE,  //  Objects[i].errcode
    V_ERECORDS,  //  Objects[i].records
} slot_t;

//  Structural containers we are inside of.
typedef enum {
    FR_ROOT,    //  the root object
    FR_RECORDS, //  a records array
    FR_RECORD,  //  one record object
    FR_RECMETA, //  a record's _metadata object
    FR_OBJECTS, //  the Objects array
    FR_ENTRY,   //  one Objects[i] object
} frame_t;

//  Role of the next value inside delta_context (for objs.<name>.delta / .bc).
typedef enum { DCV_NONE, DCV_OBJS, DCV_OBJ, DCV_DELTA, DCV_BC } dc_role_t;

//  One delta_context.objs entry.
typedef struct {
    char *name;  //  object name as the server wrote it
    char *delta; //  objs.<name>.delta as text, or NULL
    char *bc;    //  objs.<name>.bc as compact JSON, or NULL
} dc_obj_t;

//  A scalar event, whichever yajl callback produced it.
typedef enum { SC_NULL, SC_BOOL, SC_NUM, SC_STR } sc_type_t;
typedef struct {
    sc_type_t type;  //  which of the members is set
    bool b;          //  SC_BOOL
    const char *ptr; //  SC_NUM (number text) and SC_STR, not NUL-terminated
    size_t len;      //  bytes at ptr
} scalar_t;

struct es_dlparse {
    const es_meta_t *meta;          //  borrowed
    const es_meta_object_t *object; //  object level: the object; NULL at service level
    const es_dlparse_cb_t *cb;      //  borrowed
    void *ctx;                      //  passed to the callbacks
    bool keys_only;                 //  report records by their encoded key
    yajl_handle yajl;               //  the tokenizer
    es_record_builder_t **builders; //  one per meta object (service) or one (object level)
    size_t nbuilders;               //  entries in builders
    es_err_t err;                   //  error raised inside a callback
    bool failed;                    //  err is set; every later call repeats it
    bool finished;                  //  finish succeeded
    size_t fed;                     //  bytes fed before the current chunk

    int depth;                  //  current nesting, all containers
    frame_t frames[FRAMES_MAX]; //  structural containers, innermost last
    int nframes;                //  used entries of frames
    slot_t slot;                //  meaning of the next value inside a map frame
    int skip_depth;             //  > 0: inside a skipped container
    bool root_seen;             //  the root object started

    //  Root results.
    bool has_opstatus; //  root opstatus present
    int64_t opstatus;  //  root opstatus
    es_buf_t errmsg;   //  root errmsg
    es_buf_t errcode;  //  root errcode
    bool has_more;     //  hasMoreRecords true
    size_t count;      //  records delivered

    //  Records.
    const es_meta_object_t *rec_obj; //  object of the records array being parsed
    es_record_builder_t *builder;    //  its builder
    size_t rec_index;                //  index of the record in its records array
    int col;                         //  field index of the current column, -1: not a field
    size_t col_pos;                  //  position of the current column in its record
    size_t *flen;                    //  name length of each field of rec_obj
    size_t *order;                   //  field found at each position in the previous record
    size_t flen_cap;                 //  entries allocated in flen and order
    es_buf_t checksum;               //  current record's _metadata.checksum
    bool is_delete;                  //  current record's action is "delete"
    uint64_t keys_seen;              //  key columns (bit = position in the key) already set
    es_buf_t rec;                    //  the built record (reused)
    es_buf_t scratch;                //  NUL-terminated copy of a long number text

    //  Service level Objects entry.
    size_t entry_index;                //  index in Objects
    const es_meta_object_t *entry_obj; //  the entry's object once its name is known
    char *entry_name;                  //  the entry's name as received (for on_object_error)
    int64_t entry_opstatus;            //  the entry's opstatus (0 if absent)
    es_buf_t entry_errmsg;             //  the entry's errmsg
    es_buf_t entry_errcode;            //  the entry's errcode (reported when errmsg is absent)

    //  delta_context capture.
    bool dc_present;   //  a complete delta_context was seen
    int dc_depth;      //  > 0: inside delta_context, nesting below it
    es_buf_t dc;       //  compact JSON of delta_context
    bool dc_comma;     //  a ',' is due before the next key or element
    dc_role_t dc_role; //  role of the next value
    bool dc_in_objs;   //  inside objs (dc_depth 2)
    bool dc_in_obj;    //  inside objs.<name> (dc_depth 3)
    size_t dc_cur;     //  index in dc_objs of objs.<name>
    size_t bc_start;   //  offset in dc where the bc value being captured began
    bool bc_open;      //  a bc container value is being captured
    dc_obj_t *dc_objs; //  objs entries
    size_t dc_nobjs;   //  entries used
    size_t dc_capobjs; //  entries allocated
};

static const char *
s_sc_name(const scalar_t *s)
{
    switch (s->type) {
    case SC_NULL:
        return "null";
    case SC_BOOL:
        return "boolean";
    case SC_NUM:
        return "number";
    default:
        return "string";
    }
}

//  Sets self->err and returns 0, so callbacks can write: return s_fail(...).
static int s_fail(es_dlparse_t *self, es_code_t code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int
s_fail(es_dlparse_t *self, es_code_t code, const char *fmt, ...)
{
    char what[ES_ERR_WHAT_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    es_err_set(&self->err, code, "%s", what);
    self->failed = true;
    return 0;
}

//  "records[3]" or "Objects[1].records[3]" into buf.
static const char *
s_rec_path(const es_dlparse_t *self, char *buf, size_t size)
{
    if (self->object)
        snprintf(buf, size, "records[%zu]", self->rec_index);
    else
        snprintf(buf, size, "Objects[%zu].records[%zu]", self->entry_index, self->rec_index);
    return buf;
}

//  Prefix an error from the record builder (or our own column text) with the record's path.
static int
s_fail_rec(es_dlparse_t *self, const char *sep)
{
    char path[64], what[ES_ERR_WHAT_MAX];
    memcpy(what, self->err.what, sizeof what);
    return s_fail(self, ES_EPROTO, "%s%s%s", s_rec_path(self, path, sizeof path), sep, what);
}

//  "records" or "Objects[1].records".
static const char *
s_records_path(const es_dlparse_t *self, char *buf, size_t size)
{
    if (self->object)
        snprintf(buf, size, "records");
    else
        snprintf(buf, size, "Objects[%zu].records", self->entry_index);
    return buf;
}

static void
s_set_text(es_buf_t *buf, const char *p, size_t len)
{
    es_buf_reset(buf);
    es_buf_append(buf, p, len < TEXT_MAX ? len : TEXT_MAX);
}

//  Parse number text as an integer. false if it has a fraction, exponent or does not fit.
static bool
s_num_int(es_dlparse_t *self, const char *p, size_t len, int64_t *out)
{
    //  Most numbers are short integers: up to 18 digits cannot overflow, so no strtoll.
    size_t neg = len && p[0] == '-';
    if (len > neg && len - neg <= 18) {
        int64_t v = 0;
        size_t i = neg;
        for (; i < len; i++) {
            unsigned d = (unsigned)(unsigned char)p[i] - '0';
            if (d > 9)
                break;
            v = v * 10 + (int64_t)d;
        }
        if (i == len) {
            *out = neg ? -v : v;
            return true;
        }
    }
    if (memchr(p, '.', len) || memchr(p, 'e', len) || memchr(p, 'E', len))
        return false;
    char small[32];
    const char *text = small;
    if (len < sizeof small) {
        memcpy(small, p, len);
        small[len] = '\0';
    } else {
        es_buf_reset(&self->scratch);
        es_buf_append(&self->scratch, p, len);
        text = self->scratch.data;
    }
    errno = 0;
    char *end;
    long long v = strtoll(text, &end, 10);
    if (errno == ERANGE || *end != '\0')
        return false;
    *out = v;
    return true;
}

static double
s_num_double(es_dlparse_t *self, const char *p, size_t len)
{
    char small[64];
    const char *text = small;
    if (len < sizeof small) {
        memcpy(small, p, len);
        small[len] = '\0';
    } else {
        es_buf_reset(&self->scratch);
        es_buf_append(&self->scratch, p, len);
        text = self->scratch.data;
    }
    //  yajl already checked the grammar; overflow gives +-HUGE_VAL, which the caller stores.
    return strtod(text, NULL);
}

//  opstatus as a number or a numeric string.
static bool
s_sc_int(es_dlparse_t *self, const scalar_t *s, int64_t *out)
{
    if (s->type != SC_NUM && s->type != SC_STR)
        return false;
    if (s->len == 0 || s->len > 20)
        return false;
    if (s->type == SC_STR) {
        //  Only an optional '-' and digits: strtoll alone would accept spaces and '+'.
        for (size_t i = 0; i < s->len; i++)
            if (!(s->ptr[i] >= '0' && s->ptr[i] <= '9') && !(i == 0 && s->ptr[i] == '-'))
                return false;
    }
    return s_num_int(self, s->ptr, s->len, out);
}

// ---------------------------------------------------------------------------------------------
//  delta_context capture

static void
s_dc_clear(es_dlparse_t *self)
{
    for (size_t i = 0; i < self->dc_nobjs; i++) {
        free(self->dc_objs[i].name);
        free(self->dc_objs[i].delta);
        free(self->dc_objs[i].bc);
    }
    self->dc_nobjs = 0;
    es_buf_reset(&self->dc);
    self->dc_present = false;
}

//  A new objs entry. A name given twice gets a second entry and s_dc_find() takes the last, as
//  JSON readers take the last of repeated keys. No search here: with one per key, 1 MiB of
//  objs entries took 10 s (found by fuzz/fuzz_dlparse).
static size_t
s_dc_obj(es_dlparse_t *self, const char *name, size_t len)
{
    if (self->dc_nobjs == self->dc_capobjs) {
        self->dc_capobjs = self->dc_capobjs ? self->dc_capobjs * 2 : 4;
        self->dc_objs = es_realloc(self->dc_objs, self->dc_capobjs * sizeof *self->dc_objs);
    }
    dc_obj_t *o = &self->dc_objs[self->dc_nobjs];
    o->name = es_strndup(name, len);
    o->delta = NULL;
    o->bc = NULL;
    return self->dc_nobjs++;
}

//  Before a key or an array element: the separating comma.
static void
s_dc_sep(es_dlparse_t *self)
{
    if (self->dc_comma)
        es_buf_putc(&self->dc, ',');
}

static int
s_dc_check_size(es_dlparse_t *self)
{
    if (self->dc.len > DC_MAX)
        return s_fail(self, ES_EPROTO, "delta_context: larger than 1 MiB");
    return 1;
}

static int
s_dc_scalar(es_dlparse_t *self, const scalar_t *s)
{
    //  A value right after a key needs no comma; s_dc_key cleared dc_comma.
    s_dc_sep(self);
    size_t start = self->dc.len;
    switch (s->type) {
    case SC_NULL:
        es_buf_puts(&self->dc, "null");
        break;
    case SC_BOOL:
        es_buf_puts(&self->dc, s->b ? "true" : "false");
        break;
    case SC_NUM:
        es_buf_append(&self->dc, s->ptr, s->len);
        break;
    case SC_STR:
        es_buf_json_str(&self->dc, s->ptr, s->len);
        break;
    }
    self->dc_comma = true;
    if (self->dc_role == DCV_DELTA && (s->type == SC_STR || s->type == SC_NUM)) {
        dc_obj_t *o = &self->dc_objs[self->dc_cur];
        free(o->delta);
        o->delta = es_strndup(s->ptr, s->len);
    } else if (self->dc_role == DCV_BC && s->type != SC_NULL) {
        dc_obj_t *o = &self->dc_objs[self->dc_cur];
        free(o->bc);
        o->bc = es_strndup(self->dc.data + start, self->dc.len - start);
    }
    self->dc_role = DCV_NONE;
    return s_dc_check_size(self);
}

static int
s_dc_start(es_dlparse_t *self, char open)
{
    s_dc_sep(self);
    if (self->dc_role == DCV_BC) {
        self->bc_start = self->dc.len;
        self->bc_open = true;
    }
    es_buf_putc(&self->dc, open);
    self->dc_comma = false;
    self->dc_depth++;
    //  Only maps carry the objs.<name> structure we look into.
    if (open == '{' && self->dc_role == DCV_OBJS)
        self->dc_in_objs = true;
    else if (open == '{' && self->dc_role == DCV_OBJ)
        self->dc_in_obj = true;
    self->dc_role = DCV_NONE;
    return s_dc_check_size(self);
}

static int
s_dc_end(es_dlparse_t *self, char close)
{
    es_buf_putc(&self->dc, close);
    self->dc_comma = true;
    self->dc_depth--;
    if (self->bc_open && self->dc_depth == 3) {
        dc_obj_t *o = &self->dc_objs[self->dc_cur];
        free(o->bc);
        o->bc = es_strndup(self->dc.data + self->bc_start, self->dc.len - self->bc_start);
        self->bc_open = false;
    }
    if (self->dc_depth == 2 && self->dc_in_obj)
        self->dc_in_obj = false;
    else if (self->dc_depth == 1 && self->dc_in_objs)
        self->dc_in_objs = false;
    else if (self->dc_depth == 0)
        self->dc_present = true;
    self->dc_role = DCV_NONE;
    return s_dc_check_size(self);
}

static int
s_dc_key(es_dlparse_t *self, const char *key, size_t len)
{
    s_dc_sep(self);
    es_buf_json_str(&self->dc, key, len);
    es_buf_putc(&self->dc, ':');
    self->dc_comma = false;
    self->dc_role = DCV_NONE;
    if (self->dc_depth == 1 && len == 4 && memcmp(key, "objs", 4) == 0)
        self->dc_role = DCV_OBJS;
    else if (self->dc_depth == 2 && self->dc_in_objs) {
        self->dc_cur = s_dc_obj(self, key, len);
        self->dc_role = DCV_OBJ;
    } else if (self->dc_depth == 3 && self->dc_in_obj) {
        if (len == 5 && memcmp(key, "delta", 5) == 0)
            self->dc_role = DCV_DELTA;
        else if (len == 2 && memcmp(key, "bc", 2) == 0)
            self->dc_role = DCV_BC;
    }
    return s_dc_check_size(self);
}

// ---------------------------------------------------------------------------------------------
//  Structure

static int
s_push(es_dlparse_t *self, frame_t f)
{
    //  Frames follow the fixed response shape, at most root/Objects/entry/records/record/meta.
    assert(self->nframes < FRAMES_MAX);
    self->frames[self->nframes++] = f;
    return 1;
}

//  The meaning of the next value, from the enclosing container.
static slot_t
s_slot(const es_dlparse_t *self)
{
    if (self->nframes == 0)
        return V_ROOT;
    switch (self->frames[self->nframes - 1]) {
    case FR_RECORDS:
        return V_RECORD;
    case FR_OBJECTS:
        return V_ENTRY;
    default:
        return self->slot;
    }
}

//  The field index of column name[0..len) of rec_obj, or -1. The records of a response list
//  their columns in one order, so the field found at this position in the previous record is
//  tried first: one comparison per column instead of a search.
static int
s_column(es_dlparse_t *self, const char *name, size_t len)
{
    const es_meta_object_t *obj = self->rec_obj;
    size_t n = obj->nfields, pos = self->col_pos++;
    if (pos < n) {
        size_t i = self->order[pos];
        if (i < n && self->flen[i] == len && memcmp(obj->fields[i].name, name, len) == 0)
            return (int)i;
    }
    for (size_t i = 0; i < n; i++) {
        if (self->flen[i] == len && memcmp(obj->fields[i].name, name, len) == 0) {
            if (pos < n)
                self->order[pos] = i;
            return (int)i;
        }
    }
    return -1;
}

//  Field name lengths of the records' object, for s_column.
static void
s_field_lengths(es_dlparse_t *self)
{
    const es_meta_object_t *obj = self->rec_obj;
    if (obj->nfields > self->flen_cap) {
        self->flen = es_realloc(self->flen, obj->nfields * sizeof *self->flen);
        self->order = es_realloc(self->order, obj->nfields * sizeof *self->order);
        self->flen_cap = obj->nfields;
    }
    for (size_t i = 0; i < obj->nfields; i++) {
        //  A field whose name is still NULL is half-parsed metadata: nothing matches it.
        self->flen[i] = obj->fields[i].name ? strlen(obj->fields[i].name) : SIZE_MAX;
        self->order[i] = i; //  metadata order until a record shows another
    }
}

static es_record_builder_t *
s_builder(es_dlparse_t *self, const es_meta_object_t *obj)
{
    size_t i = 0;
    if (!self->object)
        i = (size_t)(obj - self->meta->objects);
    assert(i < self->nbuilders);
    if (!self->builders[i])
        self->builders[i] = es_record_builder_new(obj);
    return self->builders[i];
}

static int
s_record_begin(es_dlparse_t *self)
{
    es_record_builder_reset(self->builder);
    es_buf_reset(&self->checksum);
    self->is_delete = false;
    self->keys_seen = 0;
    self->col_pos = 0;
    return s_push(self, FR_RECORD);
}

static int
s_record_end(es_dlparse_t *self)
{
    //  The builder names the object and the missing key column.
    if ((self->keys_only ? es_record_builder_key : es_record_builder_end)(self->builder, &self->rec,
                                                                          &self->err))
        return s_fail_rec(self, ": ");
    es_dl_record_t r = {
        .object = self->rec_obj,
        .is_delete = self->is_delete,
        .checksum = self->checksum.data ? self->checksum.data : "",
    };
    if (self->keys_only) {
        r.key = self->rec.data;
        r.key_len = self->rec.len;
    } else {
        r.rec = self->rec.data;
        r.rec_len = self->rec.len;
    }
    self->count++;
    self->rec_index++;
    if (self->cb->on_record(self->ctx, &r, &self->err)) {
        //  The callback's error (its code and text) stands as is.
        self->failed = true;
        return 0;
    }
    return 1;
}

static void
s_entry_begin(es_dlparse_t *self)
{
    self->entry_obj = NULL;
    free(self->entry_name);
    self->entry_name = NULL;
    self->entry_opstatus = 0;
    es_buf_reset(&self->entry_errmsg);
    es_buf_reset(&self->entry_errcode);
}

static void
s_entry_end(es_dlparse_t *self)
{
    if (self->entry_opstatus != 0 && self->cb->on_object_error) {
        const char *msg = self->entry_errmsg.len    ? self->entry_errmsg.data
                          : self->entry_errcode.len ? self->entry_errcode.data
                                                    : "";
        self->cb->on_object_error(self->ctx, self->entry_name ? self->entry_name : "",
                                  self->entry_opstatus, msg);
    }
    self->entry_index++;
}

static int
s_entry_name(es_dlparse_t *self, const scalar_t *s)
{
    if (s->type != SC_STR)
        return s_fail(self, ES_EPROTO, "Objects[%zu].name: expected a string, got %s",
                      self->entry_index, s_sc_name(s));
    free(self->entry_name);
    self->entry_name = es_strndup(s->ptr, s->len);
    const es_meta_object_t *obj = NULL;
    if (!memchr(s->ptr, '\0', s->len))
        obj = es_meta_object(self->meta, self->entry_name);
    if (!obj)
        return s_fail(self, ES_EPROTO, "Objects[%zu].name: unknown object '%.*s'",
                      self->entry_index, s->len > 128 ? 128 : (int)s->len, s->ptr);
    self->entry_obj = obj;
    return 1;
}

//  A column value that is an object or an array.
static int
s_column_container(es_dlparse_t *self, const char *what)
{
    const es_meta_object_t *obj = self->rec_obj;
    int fi = self->col;
    if (fi < 0) {
        //  Child records of a hierarchical download (SPEC D17: not yet) or unknown: skip.
        self->skip_depth = 1;
        return 1;
    }
    char path[64];
    return s_fail(self, ES_EPROTO, "%s.%s: expected %s, got %s",
                  s_rec_path(self, path, sizeof path), obj->fields[fi].name,
                  es_meta_ftype_name(obj->fields[fi].type), what);
}

//  A scalar value in the current slot.
static int
s_scalar(es_dlparse_t *self, const scalar_t *s)
{
    if (self->skip_depth > 0)
        return 1;
    if (self->dc_depth > 0)
        return s_dc_scalar(self, s);
    char path[64];
    int64_t i;
    switch (s_slot(self)) {
    case V_ROOT:
        return s_fail(self, ES_EPROTO, "response: expected an object, got %s", s_sc_name(s));
    case V_SKIP:
        return 1;
    case V_OPSTATUS:
        if (!s_sc_int(self, s, &i))
            return s_fail(self, ES_EPROTO, "opstatus: expected an integer, got %s", s_sc_name(s));
        self->has_opstatus = true;
        self->opstatus = i;
        return 1;
    case V_ERRMSG:
    case V_ERRCODE:
        if (s->type == SC_STR || s->type == SC_NUM) {
            //  errmsg wins over errcode whatever their order.
            es_buf_t *b = s_slot(self) == V_ERRMSG ? &self->errmsg : &self->errcode;
            s_set_text(b, s->ptr, s->len);
        }
        return 1;
    case V_HASMORE:
        if (s->type == SC_BOOL)
            self->has_more = s->b;
        else if (s->type == SC_STR && s->len == 4 && memcmp(s->ptr, "true", 4) == 0)
            self->has_more = true;
        else if (s->type == SC_STR && s->len == 5 && memcmp(s->ptr, "false", 5) == 0)
            self->has_more = false;
        else
            return s_fail(self, ES_EPROTO, "hasMoreRecords: expected \"true\" or \"false\"");
        return 1;
    case V_RECORDS:
    case V_ERECORDS:
        return s_fail(self, ES_EPROTO, "%s: expected an array, got %s",
                      s_records_path(self, path, sizeof path), s_sc_name(s));
    case V_OBJECTS:
        return s_fail(self, ES_EPROTO, "Objects: expected an array, got %s", s_sc_name(s));
    case V_DC:
        if (s->type == SC_NULL) {
            s_dc_clear(self);
            return 1;
        }
        return s_fail(self, ES_EPROTO, "delta_context: expected an object, got %s", s_sc_name(s));
    case V_RECORD:
        return s_fail(self, ES_EPROTO, "%s: expected an object, got %s",
                      s_rec_path(self, path, sizeof path), s_sc_name(s));
    case V_COLUMN: {
        es_value_t v = {.type = ES_V_NULL};
        if (s->type == SC_BOOL) {
            v.type = ES_V_BOOL;
            v.u.b = s->b;
        } else if (s->type == SC_STR) {
            v.type = ES_V_STR;
            v.u.s.ptr = s->ptr;
            v.u.s.len = s->len;
        } else if (s->type == SC_NUM) {
            if (s_num_int(self, s->ptr, s->len, &v.u.i)) {
                v.type = ES_V_INT;
            } else {
                v.type = ES_V_DOUBLE;
                v.u.d = s_num_double(self, s->ptr, s->len);
            }
        }
        //  A key column given twice names two records in one: which one is meant cannot be
        //  told, and taking either would write a row the server may not have.
        int fi = self->col;
        if (fi < 0)
            return 1; //  not a metadata column: not stored
        for (size_t k = 0; fi >= 0 && k < self->rec_obj->nkey && k < 64; k++) {
            if (self->rec_obj->key[k] != (size_t)fi)
                continue;
            if (self->keys_seen & ((uint64_t)1 << k))
                return s_fail(self, ES_EPROTO, "%s.%s: key column given twice",
                              s_rec_path(self, path, sizeof path), self->rec_obj->fields[fi].name);
            self->keys_seen |= (uint64_t)1 << k;
        }
        if (es_record_builder_set_field(self->builder, (size_t)fi, &v, &self->err))
            return s_fail_rec(self, ".");
        return 1;
    }
    case V_RECMETA:
        return s_fail(self, ES_EPROTO, "%s._metadata: expected an object, got %s",
                      s_rec_path(self, path, sizeof path), s_sc_name(s));
    case V_ACTION:
        if (s->type == SC_STR)
            self->is_delete = s->len == 6 && memcmp(s->ptr, "delete", 6) == 0;
        else if (s->type != SC_NULL)
            return s_fail(self, ES_EPROTO, "%s._metadata.action: expected a string, got %s",
                          s_rec_path(self, path, sizeof path), s_sc_name(s));
        return 1;
    case V_CHECKSUM:
        es_buf_reset(&self->checksum);
        if (s->type == SC_STR || s->type == SC_NUM)
            es_buf_append(&self->checksum, s->ptr, s->len);
        else if (s->type != SC_NULL)
            return s_fail(self, ES_EPROTO, "%s._metadata.checksum: expected a string, got %s",
                          s_rec_path(self, path, sizeof path), s_sc_name(s));
        return 1;
    case V_ENTRY:
        return s_fail(self, ES_EPROTO, "Objects[%zu]: expected an object, got %s",
                      self->entry_index, s_sc_name(s));
    case V_ENAME:
        return s_entry_name(self, s);
    case V_EOPSTATUS:
        if (!s_sc_int(self, s, &i))
            return s_fail(self, ES_EPROTO, "Objects[%zu].opstatus: expected an integer, got %s",
                          self->entry_index, s_sc_name(s));
        self->entry_opstatus = i;
        return 1;
    case V_EERRMSG:
    case V_EERRCODE:
        if (s->type == SC_STR || s->type == SC_NUM) {
            es_buf_t *b = s_slot(self) == V_EERRMSG ? &self->entry_errmsg : &self->entry_errcode;
            s_set_text(b, s->ptr, s->len);
        }
        return 1;
    }
    return 1;
}

static bool
s_eq(const char *key, size_t len, const char *lit)
{
    return strlen(lit) == len && memcmp(key, lit, len) == 0;
}

//  Start of an object (is_map) or an array in the current slot.
static int
s_start(es_dlparse_t *self, bool is_map)
{
    if (++self->depth > DEPTH_MAX)
        return s_fail(self, ES_EPROTO, "response: nesting deeper than %d", DEPTH_MAX);
    if (self->skip_depth > 0) {
        self->skip_depth++;
        return 1;
    }
    if (self->dc_depth > 0)
        return s_dc_start(self, is_map ? '{' : '[');
    const char *what = is_map ? "object" : "array";
    char path[64];
    switch (s_slot(self)) {
    case V_ROOT:
        if (!is_map)
            return s_fail(self, ES_EPROTO, "response: expected an object, got array");
        self->root_seen = true;
        return s_push(self, FR_ROOT);
    case V_SKIP:
    case V_ERRMSG:
    case V_ERRCODE:
    case V_EERRMSG:
    case V_EERRCODE:
        self->skip_depth = 1;
        return 1;
    case V_OPSTATUS:
        return s_fail(self, ES_EPROTO, "opstatus: expected an integer, got %s", what);
    case V_HASMORE:
        return s_fail(self, ES_EPROTO, "hasMoreRecords: expected \"true\" or \"false\"");
    case V_RECORDS:
    case V_ERECORDS:
        if (is_map)
            return s_fail(self, ES_EPROTO, "%s: expected an array, got object",
                          s_records_path(self, path, sizeof path));
        if (self->object) {
            self->rec_obj = self->object;
        } else if (self->entry_opstatus != 0) {
            //  The entry reported an error: its records are not applied.
            self->skip_depth = 1;
            return 1;
        } else if (!self->entry_obj) {
            return s_fail(self, ES_EPROTO, "Objects[%zu].records: must come after name",
                          self->entry_index);
        } else {
            self->rec_obj = self->entry_obj;
        }
        self->builder = s_builder(self, self->rec_obj);
        s_field_lengths(self);
        self->rec_index = 0;
        return s_push(self, FR_RECORDS);
    case V_OBJECTS:
        if (is_map)
            return s_fail(self, ES_EPROTO, "Objects: expected an array, got object");
        self->entry_index = 0;
        return s_push(self, FR_OBJECTS);
    case V_DC:
        if (!is_map)
            return s_fail(self, ES_EPROTO, "delta_context: expected an object, got array");
        s_dc_clear(self);
        self->dc_comma = false;
        self->dc_role = DCV_NONE;
        self->dc_in_objs = false;
        self->dc_in_obj = false;
        self->bc_open = false;
        return s_dc_start(self, '{');
    case V_RECORD:
        if (!is_map)
            return s_fail(self, ES_EPROTO, "%s: expected an object, got array",
                          s_rec_path(self, path, sizeof path));
        return s_record_begin(self);
    case V_COLUMN:
        return s_column_container(self, what);
    case V_RECMETA:
        if (!is_map)
            return s_fail(self, ES_EPROTO, "%s._metadata: expected an object, got array",
                          s_rec_path(self, path, sizeof path));
        return s_push(self, FR_RECMETA);
    case V_ACTION:
    case V_CHECKSUM:
        return s_fail(self, ES_EPROTO, "%s._metadata.%s: expected a string, got %s",
                      s_rec_path(self, path, sizeof path),
                      s_slot(self) == V_ACTION ? "action" : "checksum", what);
    case V_ENTRY:
        if (!is_map)
            return s_fail(self, ES_EPROTO, "Objects[%zu]: expected an object, got array",
                          self->entry_index);
        s_entry_begin(self);
        return s_push(self, FR_ENTRY);
    case V_ENAME:
        return s_fail(self, ES_EPROTO, "Objects[%zu].name: expected a string, got %s",
                      self->entry_index, what);
    case V_EOPSTATUS:
        return s_fail(self, ES_EPROTO, "Objects[%zu].opstatus: expected an integer, got %s",
                      self->entry_index, what);
    }
    return 1;
}

static int
s_end(es_dlparse_t *self, bool is_map)
{
    self->depth--;
    if (self->skip_depth > 0) {
        self->skip_depth--;
        return 1;
    }
    if (self->dc_depth > 0)
        return s_dc_end(self, is_map ? '}' : ']');
    //  yajl only reports balanced ends, and every container outside skip/capture has a frame.
    assert(self->nframes > 0);
    switch (self->frames[--self->nframes]) {
    case FR_RECORD:
        return s_record_end(self);
    case FR_ENTRY:
        s_entry_end(self);
        return 1;
    default:
        return 1;
    }
}

static int
s_key(es_dlparse_t *self, const char *key, size_t len)
{
    if (self->skip_depth > 0)
        return 1;
    if (self->dc_depth > 0)
        return s_dc_key(self, key, len);
    assert(self->nframes > 0);
    slot_t slot = V_SKIP;
    switch (self->frames[self->nframes - 1]) {
    case FR_ROOT:
        if (s_eq(key, len, "opstatus"))
            slot = V_OPSTATUS;
        else if (s_eq(key, len, "errmsg"))
            slot = V_ERRMSG;
        else if (s_eq(key, len, "errcode"))
            slot = V_ERRCODE;
        else if (s_eq(key, len, "hasMoreRecords"))
            slot = V_HASMORE;
        else if (s_eq(key, len, "delta_context"))
            slot = V_DC;
        else if (self->object && s_eq(key, len, "records"))
            slot = V_RECORDS;
        else if (!self->object && s_eq(key, len, "Objects"))
            slot = V_OBJECTS;
        break;
    case FR_RECORD:
        if (s_eq(key, len, "_metadata")) {
            slot = V_RECMETA;
        } else {
            self->col = s_column(self, key, len);
            slot = V_COLUMN;
        }
        break;
    case FR_RECMETA:
        if (s_eq(key, len, "action"))
            slot = V_ACTION;
        else if (s_eq(key, len, "checksum"))
            slot = V_CHECKSUM;
        break;
    case FR_ENTRY:
        if (s_eq(key, len, "name"))
            slot = V_ENAME;
        else if (s_eq(key, len, "opstatus"))
            slot = V_EOPSTATUS;
        else if (s_eq(key, len, "errmsg"))
            slot = V_EERRMSG;
        else if (s_eq(key, len, "errcode"))
            slot = V_EERRCODE;
        else if (s_eq(key, len, "records"))
            slot = V_ERECORDS;
        break;
    default:
        break;
    }
    self->slot = slot;
    return 1;
}

// ---------------------------------------------------------------------------------------------
//  yajl callbacks: return 1 to go on, 0 (self->err set) to stop.

static int
s_cb_null(void *ctx)
{
    scalar_t s = {.type = SC_NULL};
    return s_scalar(ctx, &s);
}

static int
s_cb_boolean(void *ctx, int b)
{
    scalar_t s = {.type = SC_BOOL, .b = b != 0};
    return s_scalar(ctx, &s);
}

static int
s_cb_number(void *ctx, const char *p, size_t len)
{
    scalar_t s = {.type = SC_NUM, .ptr = p, .len = len};
    return s_scalar(ctx, &s);
}

static int
s_cb_string(void *ctx, const unsigned char *p, size_t len)
{
    scalar_t s = {.type = SC_STR, .ptr = (const char *)p, .len = len};
    return s_scalar(ctx, &s);
}

static int
s_cb_start_map(void *ctx)
{
    return s_start(ctx, true);
}

static int
s_cb_map_key(void *ctx, const unsigned char *key, size_t len)
{
    return s_key(ctx, (const char *)key, len);
}

static int
s_cb_end_map(void *ctx)
{
    return s_end(ctx, true);
}

static int
s_cb_start_array(void *ctx)
{
    return s_start(ctx, false);
}

static int
s_cb_end_array(void *ctx)
{
    return s_end(ctx, false);
}

//  yajl_number set: numbers arrive as text, so integers of any size and exact decimals survive.
static const yajl_callbacks s_callbacks = {
    s_cb_null,    s_cb_boolean,     NULL,           NULL,
    s_cb_number,  s_cb_string,      s_cb_start_map, s_cb_map_key,
    s_cb_end_map, s_cb_start_array, s_cb_end_array,
};

// ---------------------------------------------------------------------------------------------
//  Public

es_dlparse_t *
es_dlparse_new(const es_meta_t *meta, const es_meta_object_t *object, const es_dlparse_cb_t *cb,
               void *ctx)
{
    assert(cb && cb->on_record);
    assert(object || meta);
    es_dlparse_t *self = es_calloc(1, sizeof *self);
    self->meta = meta;
    self->object = object;
    self->cb = cb;
    self->ctx = ctx;
    self->nbuilders = object ? 1 : meta->nobjects;
    self->builders = es_calloc(self->nbuilders ? self->nbuilders : 1, sizeof *self->builders);
    es_buf_init(&self->errmsg);
    es_buf_init(&self->errcode);
    es_buf_init(&self->checksum);
    es_buf_init(&self->rec);
    es_buf_init(&self->scratch);
    es_buf_init(&self->entry_errmsg);
    es_buf_init(&self->entry_errcode);
    es_buf_init(&self->dc);
    self->slot = V_SKIP;
    //  Default yajl options: strings are UTF-8 validated, no comments, no trailing garbage.
    self->yajl = yajl_alloc(&s_callbacks, NULL, self);
    if (!self->yajl) {
        es_dlparse_destroy(&self);
        return NULL;
    }
    return self;
}

void
es_dlparse_keys_only(es_dlparse_t *self)
{
    assert(self);
    self->keys_only = true;
}

void
es_dlparse_destroy(es_dlparse_t **self_p)
{
    if (!*self_p)
        return;
    es_dlparse_t *self = *self_p;
    if (self->yajl)
        yajl_free(self->yajl);
    s_dc_clear(self);
    free(self->dc_objs);
    es_buf_release(&self->dc);
    free(self->entry_name);
    es_buf_release(&self->entry_errcode);
    es_buf_release(&self->entry_errmsg);
    es_buf_release(&self->scratch);
    es_buf_release(&self->rec);
    es_buf_release(&self->checksum);
    free(self->order);
    free(self->flen);
    es_buf_release(&self->errcode);
    es_buf_release(&self->errmsg);
    for (size_t i = 0; i < self->nbuilders; i++)
        es_record_builder_destroy(&self->builders[i]);
    free(self->builders);
    free(self);
    *self_p = NULL;
}

//  A failed yajl_parse / yajl_complete_parse: our own error, or yajl's with the byte offset.
static int
s_parse_error(es_dlparse_t *self, yajl_status st, size_t offset, es_err_t *err)
{
    if (st != yajl_status_client_canceled || !self->failed) {
        unsigned char *msg = yajl_get_error(self->yajl, 0, NULL, 0);
        const char *text = msg ? (const char *)msg : "unknown error";
        size_t n = strcspn(text, "\n");
        s_fail(self, ES_EPROTO, "response: invalid JSON at byte %zu: %.*s", offset, (int)n, text);
        if (msg)
            yajl_free_error(self->yajl, msg);
    }
    if (err)
        *err = self->err;
    return -1;
}

int
es_dlparse_feed(es_dlparse_t *self, const void *data, size_t len, es_err_t *err)
{
    assert(self);
    if (self->failed) {
        if (err)
            *err = self->err;
        return -1;
    }
    if (self->finished)
        return es_err_set(err, ES_EPROTO, "response: data after finish");
    if (len == 0)
        return 0;
    yajl_status st = yajl_parse(self->yajl, data, len);
    if (st != yajl_status_ok)
        return s_parse_error(self, st, self->fed + yajl_get_bytes_consumed(self->yajl), err);
    self->fed += len;
    return 0;
}

int
es_dlparse_finish(es_dlparse_t *self, es_err_t *err)
{
    assert(self);
    if (self->failed) {
        if (err)
            *err = self->err;
        return -1;
    }
    if (self->finished)
        return 0;
    yajl_status st = yajl_complete_parse(self->yajl);
    if (st != yajl_status_ok)
        return s_parse_error(self, st, self->fed, err);
    if (!self->root_seen) {
        //  yajl refuses an empty document itself; kept so finish never reports success on nothing.
        s_fail(self, ES_EPROTO, "response: expected an object");
        if (err)
            *err = self->err;
        return -1;
    }
    self->finished = true;
    return 0;
}

bool
es_dlparse_has_opstatus(const es_dlparse_t *self)
{
    return self->has_opstatus;
}

int64_t
es_dlparse_opstatus(const es_dlparse_t *self)
{
    return self->opstatus;
}

const char *
es_dlparse_errmsg(const es_dlparse_t *self)
{
    if (self->errmsg.len)
        return self->errmsg.data;
    if (self->errcode.len)
        return self->errcode.data;
    return "";
}

bool
es_dlparse_has_more(const es_dlparse_t *self)
{
    return self->has_more;
}

const char *
es_dlparse_delta_context(const es_dlparse_t *self)
{
    return self->dc_present ? self->dc.data : NULL;
}

static const dc_obj_t *
s_dc_find(const es_dlparse_t *self, const char *object)
{
    if (!self->dc_present || !object)
        return NULL;
    for (size_t i = self->dc_nobjs; i-- > 0;)
        if (strcmp(self->dc_objs[i].name, object) == 0)
            return &self->dc_objs[i];
    return NULL;
}

const char *
es_dlparse_delta(const es_dlparse_t *self, const char *object)
{
    const dc_obj_t *o = s_dc_find(self, object);
    return o ? o->delta : NULL;
}

const char *
es_dlparse_bc(const es_dlparse_t *self, const char *object)
{
    const dc_obj_t *o = s_dc_find(self, object);
    return o ? o->bc : NULL;
}

size_t
es_dlparse_count(const es_dlparse_t *self)
{
    return self->count;
}
