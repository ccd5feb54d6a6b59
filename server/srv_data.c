//  srv_data - the reference backend's data: metadata of the sample service, the LMDB layout
//  (rows with change sequence and checksum, a change log per object), the deterministic sample
//  generator and the JSON lines loader.
#include "common/es_log.h"
#include "common/es_mem.h"
#include "protocol/es_key.h"
#include "protocol/es_record.h"
#include "server/srv.h"
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

//  Row value layout: [u64 seq][u64 cseq][u8 flags][u8 cslen][checksum][record]; big-endian.
#define S_ROW_HDR 18
#define S_FLAG_DELETED 1
#define S_GEN_BATCH 10000 //  records per write transaction while generating or loading

typedef struct {
    const char *name; //  column
    const char *type; //  metadata datatype
    uint32_t length;  //  string length limit (0 = none)
    bool nullable;    //  may be null
    bool key;         //  primary key column (in table order)
    bool autogen;     //  auto_generated
} s_field_t;

static const s_field_t s_customer[] = {
    {"id", "int", 0, false, true, true},           {"name", "string", 100, false, false, false},
    {"email", "string", 200, true, false, false},  {"city", "string", 60, true, false, false},
    {"country", "string", 60, true, false, false}, {"balance", "number", 0, true, false, false},
    {"active", "boolean", 0, false, false, false}, {"created", "datetime", 0, true, false, false},
    {"tier", "int", 0, true, false, false},        {"notes", "string", 1000, true, false, false},
};
static const s_field_t s_product[] = {
    {"sku", "string", 32, false, true, false},
    {"name", "string", 100, false, false, false},
    {"category", "string", 60, true, false, false},
    {"price", "number", 0, false, false, false},
    {"stock", "int", 0, true, false, false},
    {"active", "boolean", 0, true, false, false},
    {"weight", "number", 0, true, false, false},
    {"released", "date", 0, true, false, false},
    {"description", "string", 1000, true, false, false},
    {"supplier", "string", 100, true, false, false},
};
static const s_field_t s_orderline[] = {
    {"orderId", "int", 0, false, true, false},       {"lineNo", "int", 0, false, true, false},
    {"sku", "string", 32, false, false, false},      {"qty", "int", 0, false, false, false},
    {"price", "number", 0, true, false, false},      {"discount", "number", 0, true, false, false},
    {"status", "string", 20, true, false, false},    {"shipped", "boolean", 0, true, false, false},
    {"shipdate", "datetime", 0, true, false, false}, {"note", "string", 1000, true, false, false},
};

//  Only in the service when --generate names it (the bench's four-object scenario): the default
//  service keeps its three objects.
static const s_field_t s_supplier[] = {
    {"supplierId", "int", 0, false, true, false}, {"name", "string", 100, false, false, false},
    {"contact", "string", 100, true, false, false}, {"email", "string", 200, true, false, false},
    {"phone", "string", 32, true, false, false},  {"city", "string", 60, true, false, false},
    {"country", "string", 60, true, false, false}, {"rating", "number", 0, true, false, false},
    {"active", "boolean", 0, false, false, false}, {"notes", "string", 1000, true, false, false},
};

typedef struct {
    const char *name;
    const s_field_t *fields;
    size_t nfields;
} s_object_t;

static const s_object_t s_objects[] = {
    {"Customer", s_customer, sizeof s_customer / sizeof s_customer[0]},
    {"Product", s_product, sizeof s_product / sizeof s_product[0]},
    {"OrderLine", s_orderline, sizeof s_orderline / sizeof s_orderline[0]},
    {"Supplier", s_supplier, sizeof s_supplier / sizeof s_supplier[0]},
};
#define S_NOBJECTS (sizeof s_objects / sizeof s_objects[0])
_Static_assert(S_NOBJECTS <= SRV_MAX_OBJECTS, "srv_counters_t holds every object");
#define S_NOBJECTS_OF(opts) ((opts)->supplier ? S_NOBJECTS : S_NOBJECTS - 1)

struct srv_data {
    const srv_opts_t *opts;      //  settings (borrowed)
    es_store_t *store;           //  server.mdb
    char *meta_json;             //  metadata document
    es_meta_t *meta;             //  parsed metadata
    char *rec_table[S_NOBJECTS]; //  "rec:<Svc>.<Obj>"
    char *chg_table[S_NOBJECTS]; //  "chg:<Svc>.<Obj>"
    char *auto_key[S_NOBJECTS];  //  counter key "auto:<Obj>" in the cnt table
    size_t nobjects;             //  objects in this service: 3, or 4 with Supplier
    char *marker;                //  describes the arguments the data was made from
};

// ---------------------------------------------------------------- helpers

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

//  splitmix64: one well-mixed value per (seed, object, index), so a record does not depend on
//  how generation is batched.
static uint64_t
s_mix(uint64_t x)
{
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

static void
s_checksum(const void *rec, size_t len, uint64_t seq, char cs[SRV_CS_MAX + 1])
{
    //  FNV-1a 64 over content and sequence: changes whenever the row changes.
    uint64_t h = 0xcbf29ce484222325ull;
    const unsigned char *p = rec;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 0x100000001b3ull;
    }
    for (int i = 0; i < 8; i++) {
        h ^= (seq >> (8 * i)) & 0xff;
        h *= 0x100000001b3ull;
    }
    //  "%016" PRIx64 by hand: snprintf cost as much as the hash, once a row.
    static const char hex[] = "0123456789abcdef";
    for (int i = 15; i >= 0; i--, h >>= 4)
        cs[i] = hex[h & 0xf];
    cs[16] = '\0';
}

// ---------------------------------------------------------------- metadata

static char *
s_meta_json(const srv_opts_t *opts)
{
    es_buf_t b;
    es_buf_init(&b);
    es_buf_puts(&b, "{\"name\":\"" SRV_SERVICE "\",\"version\":\"1.0\",\"uploadCache\":");
    es_buf_puts(&b, opts->upload_cache ? "true" : "false");
    es_buf_puts(&b, ",\"syncConflictResolutionPolicy\":");
    es_buf_json_str(&b, opts->policy, strlen(opts->policy));
    es_buf_puts(&b, ",\"timestamp\":\"1\",\"objects\":[");
    for (size_t o = 0; o < S_NOBJECTS_OF(opts); o++) {
        const s_object_t *so = &s_objects[o];
        es_buf_printf(&b, "%s{\"name\":\"%s\",\"key\":[", o ? "," : "", so->name);
        bool first = true;
        for (size_t f = 0; f < so->nfields; f++) {
            if (!so->fields[f].key)
                continue;
            es_buf_printf(&b, "%s\"%s\"", first ? "" : ",", so->fields[f].name);
            first = false;
        }
        es_buf_puts(&b, "],\"fields\":[");
        for (size_t f = 0; f < so->nfields; f++) {
            const s_field_t *sf = &so->fields[f];
            es_buf_printf(&b,
                          "%s{\"name\":\"%s\",\"datatype\":\"%s\",\"length\":%u,"
                          "\"nullable\":%s,\"creatable\":true,\"updatable\":%s,"
                          "\"auto_generated\":%s}",
                          f ? "," : "", sf->name, sf->type, sf->length,
                          sf->nullable ? "true" : "false", sf->key ? "false" : "true",
                          sf->autogen ? "true" : "false");
        }
        es_buf_puts(&b, "],\"relationships\":[],\"operations\":{\"get\":{},\"create\":{},"
                        "\"update\":{},\"partialupdate\":{},\"delete\":{}}}");
    }
    es_buf_puts(&b, "]}");
    return es_buf_steal(&b);
}

// ---------------------------------------------------------------- rows

int
srv_row_unpack(const void *val, size_t vlen, srv_row_t *row)
{
    const unsigned char *p = val;
    if (vlen < S_ROW_HDR)
        return -1;
    row->seq = s_be64_get(p);
    row->cseq = s_be64_get(p + 8);
    row->deleted = (p[16] & S_FLAG_DELETED) != 0;
    row->cslen = p[17];
    if (vlen < S_ROW_HDR + row->cslen)
        return -1;
    row->checksum = (const char *)p + S_ROW_HDR;
    row->rec = p + S_ROW_HDR + row->cslen;
    row->len = vlen - S_ROW_HDR - row->cslen;
    return 0;
}

static void
s_row_pack(es_buf_t *out, uint64_t seq, uint64_t cseq, bool deleted, const char *cs,
           const void *rec, size_t len)
{
    unsigned char hdr[S_ROW_HDR];
    size_t cslen = strlen(cs);
    s_be64_put(hdr, seq);
    s_be64_put(hdr + 8, cseq);
    hdr[16] = deleted ? S_FLAG_DELETED : 0;
    hdr[17] = (unsigned char)cslen;
    es_buf_reset(out);
    es_buf_append(out, hdr, sizeof hdr);
    es_buf_append(out, cs, cslen);
    es_buf_append(out, rec, len);
}

int
srv_data_get(srv_data_t *self, es_txn_t *txn, size_t obj, const void *key, size_t klen,
             srv_row_t *row, es_err_t *err)
{
    const void *val;
    size_t vlen;
    int rc = es_txn_get(txn, self->rec_table[obj], key, klen, &val, &vlen, err);
    if (rc != 1)
        return rc;
    if (srv_row_unpack(val, vlen, row))
        return es_err_set(err, ES_ESTORE, "%s: corrupt row (%zu bytes)", self->rec_table[obj],
                          vlen);
    return 1;
}

static int
s_get_u64(es_txn_t *txn, const char *key, uint64_t *out, es_err_t *err)
{
    const void *val;
    size_t vlen;
    int rc = es_txn_get(txn, SRV_CNT_TABLE, key, strlen(key), &val, &vlen, err);
    if (rc < 0)
        return -1;
    *out = 0;
    if (rc == 1) {
        if (vlen != 8)
            return es_err_set(err, ES_ESTORE, "%s: counter '%s' is corrupt", SRV_CNT_TABLE, key);
        *out = s_be64_get(val);
    }
    return 0;
}

static int
s_put_u64(es_txn_t *txn, const char *key, uint64_t v, es_err_t *err)
{
    unsigned char b[8];
    s_be64_put(b, v);
    return es_txn_put(txn, SRV_CNT_TABLE, key, strlen(key), b, 8, err);
}

int
srv_data_max_seq(srv_data_t *self, es_txn_t *txn, uint64_t *seq, es_err_t *err)
{
    (void)self;
    return s_get_u64(txn, "seq", seq, err);
}

//  Write one row at seq and its change log entry (old entry removed by the caller's logic).
static int
s_put_row(srv_data_t *self, es_txn_t *txn, size_t obj, const void *key, size_t klen,
          const void *rec, size_t len, bool deleted, uint64_t seq, uint64_t cseq,
          char cs[SRV_CS_MAX + 1], es_buf_t *scratch, es_err_t *err)
{
    unsigned char sk[8];
    s_checksum(rec, len, seq, cs);
    //  A usual row is packed on the stack: a heap buffer grown for each row cost more than the
    //  packing.
    unsigned char small[2048];
    size_t cslen = strlen(cs);
    const void *val;
    size_t vlen = S_ROW_HDR + cslen + len;
    if (len <= sizeof small - S_ROW_HDR - SRV_CS_MAX) {
        s_be64_put(small, seq);
        s_be64_put(small + 8, cseq);
        small[16] = deleted ? S_FLAG_DELETED : 0;
        small[17] = (unsigned char)cslen;
        memcpy(small + S_ROW_HDR, cs, cslen);
        if (len)
            memcpy(small + S_ROW_HDR + cslen, rec, len);
        val = small;
    } else {
        s_row_pack(scratch, seq, cseq, deleted, cs, rec, len);
        val = scratch->data;
        vlen = scratch->len;
    }
    if (es_txn_put(txn, self->rec_table[obj], key, klen, val, vlen, err))
        return -1;
    s_be64_put(sk, seq);
    return es_txn_put(txn, self->chg_table[obj], sk, 8, key, klen, err);
}

//  The sequence counter through c (loaded on first use) or the store.
static int
s_seq_get(es_txn_t *txn, srv_counters_t *c, uint64_t *seq, es_err_t *err)
{
    if (!c)
        return s_get_u64(txn, "seq", seq, err);
    if (!c->seq_loaded) {
        if (s_get_u64(txn, "seq", &c->seq, err))
            return -1;
        c->seq_loaded = true;
    }
    *seq = c->seq;
    return 0;
}

static int
s_seq_set(es_txn_t *txn, srv_counters_t *c, uint64_t seq, es_err_t *err)
{
    if (!c)
        return s_put_u64(txn, "seq", seq, err);
    c->seq = seq;
    c->seq_dirty = true;
    return 0;
}

static int
s_auto_get(srv_data_t *self, es_txn_t *txn, srv_counters_t *c, size_t obj, uint64_t *v,
           es_err_t *err)
{
    if (!c)
        return s_get_u64(txn, self->auto_key[obj], v, err);
    if (!c->auto_loaded[obj]) {
        if (s_get_u64(txn, self->auto_key[obj], &c->autos[obj], err))
            return -1;
        c->auto_loaded[obj] = true;
    }
    *v = c->autos[obj];
    return 0;
}

static int
s_auto_set(srv_data_t *self, es_txn_t *txn, srv_counters_t *c, size_t obj, uint64_t v,
           es_err_t *err)
{
    if (!c)
        return s_put_u64(txn, self->auto_key[obj], v, err);
    c->autos[obj] = v;
    c->auto_dirty[obj] = true;
    return 0;
}

int
srv_data_counters_flush(srv_data_t *self, es_txn_t *txn, srv_counters_t *c, es_err_t *err)
{
    if (c->seq_dirty && s_put_u64(txn, "seq", c->seq, err))
        return -1;
    c->seq_dirty = false;
    for (size_t o = 0; o < self->nobjects; o++) {
        if (c->auto_dirty[o] && s_put_u64(txn, self->auto_key[o], c->autos[o], err))
            return -1;
        c->auto_dirty[o] = false;
    }
    return 0;
}

int
srv_data_put(srv_data_t *self, es_txn_t *txn, srv_counters_t *c, size_t obj, const void *key,
             size_t klen, const void *rec, size_t len, bool deleted, char cs[SRV_CS_MAX + 1],
             es_err_t *err)
{
    srv_row_t old;
    memset(&old, 0, sizeof old); //  filled when rc == 1; Release -O2 cannot tell
    int rc = srv_data_get(self, txn, obj, key, klen, &old, err);
    if (rc < 0)
        return -1;
    return srv_data_put_over(self, txn, c, obj, key, klen, rec, len, deleted, rc == 1 ? &old : NULL,
                             cs, err);
}

int
srv_data_put_over(srv_data_t *self, es_txn_t *txn, srv_counters_t *c, size_t obj, const void *key,
                  size_t klen, const void *rec, size_t len, bool deleted, const srv_row_t *old,
                  char cs[SRV_CS_MAX + 1], es_err_t *err)
{
    uint64_t seq = 0;
    if (s_seq_get(txn, c, &seq, err))
        return -1;
    seq++;
    uint64_t cseq = seq;
    if (old) {
        unsigned char ok[8];
        s_be64_put(ok, old->seq);
        if (es_txn_del(txn, self->chg_table[obj], ok, 8, err) < 0)
            return -1;
        if (!old->deleted)
            cseq = old->cseq;
    }
    es_buf_t scratch;
    es_buf_init(&scratch);
    int rc = s_put_row(self, txn, obj, key, klen, rec, len, deleted, seq, cseq, cs, &scratch, err);
    es_buf_release(&scratch);
    if (rc)
        return -1;
    return s_seq_set(txn, c, seq, err);
}

int
srv_data_next_auto(srv_data_t *self, es_txn_t *txn, srv_counters_t *c, size_t obj, int64_t *out,
                   es_err_t *err)
{
    uint64_t v;
    if (s_auto_get(self, txn, c, obj, &v, err))
        return -1;
    v++;
    if (s_auto_set(self, txn, c, obj, v, err))
        return -1;
    *out = (int64_t)v;
    return 0;
}

int
srv_data_seen_auto(srv_data_t *self, es_txn_t *txn, srv_counters_t *c, size_t obj, int64_t v,
                   es_err_t *err)
{
    uint64_t cur;
    if (v <= 0)
        return 0;
    if (s_auto_get(self, txn, c, obj, &cur, err))
        return -1;
    if ((uint64_t)v <= cur)
        return 0;
    return s_auto_set(self, txn, c, obj, (uint64_t)v, err);
}

int
srv_data_object_index(srv_data_t *self, const char *name)
{
    for (size_t i = 0; i < self->meta->nobjects; i++)
        if (strcmp(self->meta->objects[i].name, name) == 0)
            return (int)i;
    return -1;
}

// ---------------------------------------------------------------- generator

static const char *s_first[] = {"Ada",   "Bruno", "Chloe", "Dmitri", "Elena", "Farid",
                                "Grace", "Hiro",  "Ines",  "Jonas",  "Keiko", "Liam",
                                "Maya",  "Noah",  "Olga",  "Pablo",  "Quinn", "Rosa",
                                "Sven",  "Tara",  "Umar",  "Vera",   "Wei",   "Yusuf"};
static const char *s_last[] = {"Abbott", "Berger",   "Costa",  "Dubois", "Eriksen",  "Fischer",
                               "Garcia", "Haddad",   "Ivanov", "Jensen", "Kowalski", "Lopez",
                               "Moreau", "Nakamura", "Okafor", "Petrov", "Quist",    "Rossi",
                               "Silva",  "Tanaka",   "Ueda",   "Varga",  "Weber",    "Young"};
static const char *s_city[][2] = {
    {"Lisbon", "Portugal"}, {"Berlin", "Germany"},   {"Paris", "France"},  {"Madrid", "Spain"},
    {"Rome", "Italy"},      {"Vienna", "Austria"},   {"Oslo", "Norway"},   {"Tokyo", "Japan"},
    {"Lagos", "Nigeria"},   {"Lima", "Peru"},        {"Austin", "USA"},    {"Pune", "India"},
    {"Cairo", "Egypt"},     {"Sydney", "Australia"}, {"Quebec", "Canada"}, {"Seoul", "Korea"}};
static const char *s_lorem =
    "Lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor incididunt ut "
    "labore et dolore magna aliqua Ut enim ad minim veniam quis nostrud exercitation ullamco "
    "laboris nisi ut aliquip ex ea commodo consequat Duis aute irure dolor in reprehenderit";
static const char *s_category[] = {"tools", "garden", "kitchen", "office", "toys", "sports"};
static const char *s_status[] = {"open", "picked", "shipped", "delivered", "returned"};

typedef struct {
    es_record_builder_t *b; //  builder for the object
    es_err_t *err;          //  first error
    int rc;                 //  -1 once a set failed
} s_gen_t;

static void
s_set(s_gen_t *g, const char *col, es_value_t v)
{
    if (g->rc == 0 && es_record_builder_set(g->b, col, strlen(col), &v, g->err))
        g->rc = -1;
}

static void
s_set_str(s_gen_t *g, const char *col, const char *s, size_t len)
{
    es_value_t v = {.type = ES_V_STR, .u.s = {s, len}};
    s_set(g, col, v);
}

static void
s_set_int(s_gen_t *g, const char *col, int64_t i)
{
    es_value_t v = {.type = ES_V_INT, .u.i = i};
    s_set(g, col, v);
}

static void
s_set_dbl(s_gen_t *g, const char *col, double d)
{
    es_value_t v = {.type = ES_V_DOUBLE, .u.d = d};
    s_set(g, col, v);
}

static void
s_set_bool(s_gen_t *g, const char *col, bool b)
{
    es_value_t v = {.type = ES_V_BOOL, .u.b = b};
    s_set(g, col, v);
}

static void s_set_fmt(s_gen_t *g, const char *col, char *tmp, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static void
s_set_fmt(s_gen_t *g, const char *col, char *tmp, size_t cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, cap, fmt, ap);
    va_end(ap);
    if (n < 0)
        n = 0;
    if ((size_t)n >= cap)
        n = (int)cap - 1;
    s_set_str(g, col, tmp, (size_t)n);
}

static void
s_datetime(char *out, size_t cap, uint64_t r)
{
    snprintf(out, cap, "%04d-%02d-%02dT%02d:%02d:%02dZ", 2015 + (int)(r % 10),
             1 + (int)((r >> 4) % 12), 1 + (int)((r >> 8) % 28), (int)((r >> 13) % 24),
             (int)((r >> 18) % 60), (int)((r >> 24) % 60));
}

//  Fill builder with record i (1-based) of object o.
static void
s_gen_record(s_gen_t *g, size_t o, uint64_t i, uint64_t seed, uint64_t nproduct)
{
    uint64_t r = s_mix(seed * 0x100000001b3ull + o * 0x1000003ull + i);
    uint64_t r2 = s_mix(r);
    char t1[160], t2[64];
    size_t lorem = strlen(s_lorem);
    if (o == 0) {
        const char *fn = s_first[r % 24], *ln = s_last[(r >> 5) % 24];
        size_t c = (r >> 10) % 16;
        s_set_int(g, "id", (int64_t)i);
        s_set_fmt(g, "name", t1, sizeof t1, "%s %s", fn, ln);
        s_set_fmt(g, "email", t1, sizeof t1, "%s.%s%" PRIu64 "@example.com", fn, ln, i);
        s_set_str(g, "city", s_city[c][0], strlen(s_city[c][0]));
        s_set_str(g, "country", s_city[c][1], strlen(s_city[c][1]));
        s_set_dbl(g, "balance", (double)((r >> 16) % 10000000) / 100.0);
        s_set_bool(g, "active", (r >> 40) & 1);
        s_datetime(t2, sizeof t2, r2);
        s_set_str(g, "created", t2, strlen(t2));
        s_set_int(g, "tier", 1 + (int64_t)((r >> 41) % 5));
        size_t off = (r2 >> 30) % 60, n = 70 + (r2 >> 40) % 60;
        if (off + n > lorem)
            n = lorem - off;
        s_set_str(g, "notes", s_lorem + off, n);
    } else if (o == 1) {
        s_set_fmt(g, "sku", t2, sizeof t2, "SKU-%08" PRIu64, i);
        s_set_fmt(g, "name", t1, sizeof t1, "Product %" PRIu64 " %s", i, s_last[r % 24]);
        s_set_str(g, "category", s_category[(r >> 5) % 6], strlen(s_category[(r >> 5) % 6]));
        s_set_dbl(g, "price", (double)(100 + (r >> 8) % 100000) / 100.0);
        s_set_int(g, "stock", (int64_t)((r >> 20) % 1000));
        s_set_bool(g, "active", (r >> 31) & 1);
        s_set_dbl(g, "weight", (double)((r >> 32) % 5000) / 100.0);
        snprintf(t2, sizeof t2, "%04d-%02d-%02d", 2015 + (int)(r2 % 10), 1 + (int)((r2 >> 4) % 12),
                 1 + (int)((r2 >> 8) % 28));
        s_set_str(g, "released", t2, strlen(t2));
        size_t off = (r2 >> 30) % 60, n = 80 + (r2 >> 40) % 60;
        if (off + n > lorem)
            n = lorem - off;
        s_set_str(g, "description", s_lorem + off, n);
        s_set_fmt(g, "supplier", t1, sizeof t1, "%s %s Ltd", s_first[(r >> 45) % 24],
                  s_last[(r >> 50) % 24]);
    } else if (o == 3) {
        const char *fn = s_first[r % 24], *ln = s_last[(r >> 5) % 24];
        size_t c = (r >> 10) % 16;
        s_set_int(g, "supplierId", (int64_t)i);
        s_set_fmt(g, "name", t1, sizeof t1, "%s & %s Supplies %" PRIu64, ln,
                  s_last[(r >> 45) % 24], i);
        s_set_fmt(g, "contact", t1, sizeof t1, "%s %s", fn, ln);
        s_set_fmt(g, "email", t1, sizeof t1, "orders%" PRIu64 "@%s.example.com", i, ln);
        s_set_fmt(g, "phone", t2, sizeof t2, "+1-555-%04d-%03d", (int)((r >> 16) % 10000),
                  (int)((r >> 30) % 1000));
        s_set_str(g, "city", s_city[c][0], strlen(s_city[c][0]));
        s_set_str(g, "country", s_city[c][1], strlen(s_city[c][1]));
        s_set_dbl(g, "rating", (double)((r >> 40) % 500) / 100.0);
        s_set_bool(g, "active", (r >> 50) & 1);
        size_t off = (r2 >> 30) % 60, n = 60 + (r2 >> 40) % 60;
        if (off + n > lorem)
            n = lorem - off;
        s_set_str(g, "notes", s_lorem + off, n);
    } else {
        uint64_t k = i - 1;
        bool shipped = (r >> 30) & 1;
        s_set_int(g, "orderId", (int64_t)(k / 4 + 1));
        s_set_int(g, "lineNo", (int64_t)(k % 4 + 1));
        s_set_fmt(g, "sku", t2, sizeof t2, "SKU-%08" PRIu64, 1 + r % (nproduct ? nproduct : 1));
        s_set_int(g, "qty", 1 + (int64_t)((r >> 10) % 20));
        s_set_dbl(g, "price", (double)(100 + (r >> 15) % 100000) / 100.0);
        s_set_dbl(g, "discount", (double)((r >> 35) % 30) / 100.0);
        s_set_str(g, "status", s_status[(r >> 40) % 5], strlen(s_status[(r >> 40) % 5]));
        s_set_bool(g, "shipped", shipped);
        if (shipped) {
            s_datetime(t2, sizeof t2, r2);
            s_set_str(g, "shipdate", t2, strlen(t2));
        }
        size_t off = (r2 >> 30) % 60, n = 90 + (r2 >> 40) % 60;
        if (off + n > lorem)
            n = lorem - off;
        s_set_str(g, "note", s_lorem + off, n);
    }
}

typedef struct {
    srv_data_t *self;
    size_t obj;        //  object index
    uint64_t from, to; //  record numbers [from, to)
    uint64_t seq0;     //  sequence before the first record
} s_gen_ctx_t;

static int
s_gen_batch(es_txn_t *txn, void *vctx, es_err_t *err)
{
    s_gen_ctx_t *ctx = vctx;
    srv_data_t *self = ctx->self;
    const es_meta_object_t *mo = &self->meta->objects[ctx->obj];
    es_buf_t rec, key, scratch;
    es_buf_init(&rec);
    es_buf_init(&key);
    es_buf_init(&scratch);
    s_gen_t g = {es_record_builder_new(mo), err, 0};
    int rc = 0;
    uint64_t seq = ctx->seq0;
    for (uint64_t i = ctx->from; i < ctx->to && rc == 0; i++) {
        char cs[SRV_CS_MAX + 1];
        es_record_builder_reset(g.b);
        s_gen_record(&g, ctx->obj, i, self->opts->seed, self->opts->gen_product);
        rc = g.rc;
        if (rc == 0)
            rc = es_record_builder_end(g.b, &rec, err);
        if (rc == 0)
            rc = es_key_from_record(mo, rec.data, rec.len, &key, err);
        seq++;
        if (rc == 0)
            rc = s_put_row(self, txn, ctx->obj, key.data, key.len, rec.data, rec.len, false, seq,
                           seq, cs, &scratch, err);
    }
    if (rc == 0)
        rc = s_put_u64(txn, "seq", seq, err);
    if (rc == 0 && ctx->obj == 0)
        rc = s_put_u64(txn, self->auto_key[0], ctx->to - 1, err);
    es_record_builder_destroy(&g.b);
    es_buf_release(&scratch);
    es_buf_release(&key);
    es_buf_release(&rec);
    return rc;
}

static int
s_generate(srv_data_t *self, es_err_t *err)
{
    uint64_t counts[S_NOBJECTS] = {self->opts->gen_customer, self->opts->gen_product,
                                   self->opts->gen_orderline, self->opts->gen_supplier};
    uint64_t seq = 0;
    for (size_t o = 0; o < self->nobjects; o++) {
        for (uint64_t from = 1; from <= counts[o]; from += S_GEN_BATCH) {
            uint64_t to = from + S_GEN_BATCH;
            if (to > counts[o] + 1)
                to = counts[o] + 1;
            s_gen_ctx_t ctx = {self, o, from, to, seq};
            if (es_store_write(self->store, s_gen_batch, &ctx, err))
                return es_err_prefix(err, "generate %s", s_objects[o].name);
            seq += to - from;
        }
    }
    return 0;
}

// ---------------------------------------------------------------- loader

typedef struct {
    srv_data_t *self;
    char **lines;      //  JSON lines of this batch
    size_t n;          //  how many
    size_t first_line; //  line number of lines[0]
    const char *path;  //  file name for errors
} s_load_ctx_t;

static int
s_load_line(srv_data_t *self, es_txn_t *txn, const char *line, es_record_builder_t **builders,
            es_buf_t *rec, es_buf_t *key, es_err_t *err)
{
    yajl_val root = srv_json_parse(line, strlen(line), err);
    if (!root)
        return -1;
    int rc = -1;
    yajl_val o = srv_json_get(root, "object"), r = srv_json_get(root, "record");
    if (!o || !YAJL_IS_STRING(o)) {
        es_err_set(err, ES_EINVAL, "object: expected a string");
        goto done;
    }
    int idx = srv_data_object_index(self, YAJL_GET_STRING(o));
    if (idx < 0) {
        es_err_set(err, ES_EINVAL, "object: unknown object '%s'", YAJL_GET_STRING(o));
        goto done;
    }
    if (!r || !YAJL_IS_OBJECT(r)) {
        es_err_set(err, ES_EINVAL, "record: expected an object");
        goto done;
    }
    const es_meta_object_t *mo = &self->meta->objects[idx];
    if (srv_record_build(builders[idx], mo, r, NULL, 0, NULL, NULL, rec, err) ||
        srv_record_check_required(mo, rec->data, rec->len, err) ||
        es_key_from_record(mo, rec->data, rec->len, key, err))
        goto done;
    for (size_t k = 0; k < mo->nkey; k++) {
        const es_meta_field_t *f = &mo->fields[mo->key[k]];
        es_value_t v;
        if (f->auto_generated && es_record_get(rec->data, rec->len, f->name, &v) == 1 &&
            v.type == ES_V_INT && srv_data_seen_auto(self, txn, NULL, (size_t)idx, v.u.i, err))
            goto done;
    }
    char cs[SRV_CS_MAX + 1];
    rc = srv_data_put(self, txn, NULL, (size_t)idx, key->data, key->len, rec->data, rec->len, false,
                      cs, err);
done:
    yajl_tree_free(root);
    return rc;
}

static int
s_load_batch(es_txn_t *txn, void *vctx, es_err_t *err)
{
    s_load_ctx_t *ctx = vctx;
    srv_data_t *self = ctx->self;
    es_record_builder_t *builders[S_NOBJECTS];
    for (size_t o = 0; o < self->nobjects; o++)
        builders[o] = es_record_builder_new(&self->meta->objects[o]);
    es_buf_t rec, key;
    es_buf_init(&rec);
    es_buf_init(&key);
    int rc = 0;
    for (size_t i = 0; i < ctx->n && rc == 0; i++) {
        const char *p = ctx->lines[i];
        while (*p == ' ' || *p == '\t' || *p == '\r')
            p++;
        if (*p == '\0' || *p == '#')
            continue;
        rc = s_load_line(self, txn, ctx->lines[i], builders, &rec, &key, err);
        if (rc)
            es_err_prefix(err, "%s:%zu", ctx->path, ctx->first_line + i);
    }
    es_buf_release(&key);
    es_buf_release(&rec);
    for (size_t o = 0; o < self->nobjects; o++)
        es_record_builder_destroy(&builders[o]);
    return rc;
}

static int
s_load(srv_data_t *self, const char *path, es_err_t *err)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return es_err_set(err, ES_EINVAL, "--load %s: %s", path, strerror(errno));
    char **lines = es_calloc(S_GEN_BATCH, sizeof *lines);
    size_t n = 0, lineno = 0, first = 1;
    int rc = 0;
    char *line = NULL;
    size_t cap = 0;
    ssize_t got;
    while (rc == 0) {
        got = getline(&line, &cap, f);
        if (got >= 0) {
            lineno++;
            if (got > 0 && line[got - 1] == '\n')
                line[got - 1] = '\0';
            lines[n++] = es_strdup(line);
        }
        if (n == S_GEN_BATCH || (got < 0 && n > 0)) {
            s_load_ctx_t ctx = {self, lines, n, first, path};
            rc = es_store_write(self->store, s_load_batch, &ctx, err);
            for (size_t i = 0; i < n; i++)
                free(lines[i]);
            n = 0;
            first = lineno + 1;
        }
        if (got < 0)
            break;
    }
    for (size_t i = 0; i < n; i++)
        free(lines[i]);
    free(line);
    free(lines);
    if (rc == 0 && ferror(f))
        rc = es_err_set(err, ES_EINVAL, "--load %s: read error", path);
    fclose(f);
    return rc;
}

// ---------------------------------------------------------------- lifecycle

static int
s_clear_all(es_txn_t *txn, void *vctx, es_err_t *err)
{
    srv_data_t *self = vctx;
    for (size_t o = 0; o < self->nobjects; o++)
        if (es_txn_clear(txn, self->rec_table[o], err) ||
            es_txn_clear(txn, self->chg_table[o], err))
            return -1;
    if (es_txn_clear(txn, SRV_CNT_TABLE, err) || es_txn_clear(txn, SRV_UPC_TABLE, err))
        return -1;
    return 0;
}

static int
s_put_marker(es_txn_t *txn, void *vctx, es_err_t *err)
{
    srv_data_t *self = vctx;
    return es_txn_put(txn, SRV_CNT_TABLE, "gen", 3, self->marker, strlen(self->marker), err);
}

static int
s_fill(srv_data_t *self, es_err_t *err)
{
    if (es_store_write(self->store, s_clear_all, self, err) || s_generate(self, err))
        return -1;
    if (self->opts->load && s_load(self, self->opts->load, err))
        return -1;
    return es_store_write(self->store, s_put_marker, self, err);
}

int
srv_data_reset(srv_data_t *self, es_err_t *err)
{
    return s_fill(self, err);
}

//  1 if the store holds data made from the same arguments, 0 if not, -1 on error.
static int
s_marker_matches(srv_data_t *self, es_err_t *err)
{
    es_txn_t *txn = es_store_begin(self->store, false, err);
    if (!txn)
        return -1;
    const void *val;
    size_t vlen;
    int rc = es_txn_get(txn, SRV_CNT_TABLE, "gen", 3, &val, &vlen, err);
    if (rc == 1)
        rc = vlen == strlen(self->marker) && memcmp(val, self->marker, vlen) == 0;
    es_txn_abort(&txn);
    return rc;
}

srv_data_t *
srv_data_new(const srv_opts_t *opts, es_err_t *err)
{
    srv_data_t *self = es_calloc(1, sizeof *self);
    self->opts = opts;
    es_store_opts_t so = {.file = "server.mdb", .map_size = 256u << 20};
    self->store = es_store_new(opts->data_dir, &so, err);
    if (!self->store)
        goto fail;
    self->meta_json = s_meta_json(opts);
    self->meta = es_meta_new(self->meta_json, strlen(self->meta_json), err);
    if (!self->meta) {
        es_err_prefix(err, "internal metadata");
        goto fail;
    }
    self->nobjects = S_NOBJECTS_OF(opts);
    for (size_t o = 0; o < self->nobjects; o++) {
        self->rec_table[o] = es_sprintf("rec:%s.%s", SRV_SERVICE, s_objects[o].name);
        self->chg_table[o] = es_sprintf("chg:%s.%s", SRV_SERVICE, s_objects[o].name);
        self->auto_key[o] = es_sprintf("auto:%s", s_objects[o].name);
    }
    struct stat st = {0};
    if (opts->load && stat(opts->load, &st)) {
        es_err_set(err, ES_EINVAL, "--load %s: %s", opts->load, strerror(errno));
        goto fail;
    }
    self->marker =
        es_sprintf("v1 seed=%" PRIu64 " Customer=%" PRIu64 " Product=%" PRIu64 " OrderLine=%" PRIu64
                   " Supplier=%s%" PRIu64 " load=%s:%lld:%lld",
                   opts->seed, opts->gen_customer, opts->gen_product, opts->gen_orderline,
                   opts->supplier ? "" : "-", opts->gen_supplier,
                   opts->load ? opts->load : "", (long long)st.st_size, (long long)st.st_mtime);
    int m = s_marker_matches(self, err);
    if (m < 0)
        goto fail;
    if (m == 0 && s_fill(self, err))
        goto fail;
    if (m == 1)
        es_log_info("server: keeping existing data in %s", es_store_path(self->store));
    return self;
fail:
    srv_data_destroy(&self);
    return NULL;
}

void
srv_data_destroy(srv_data_t **self_p)
{
    if (!*self_p)
        return;
    srv_data_t *self = *self_p;
    free(self->marker);
    for (size_t o = 0; o < S_NOBJECTS; o++) {
        free(self->auto_key[o]);
        free(self->chg_table[o]);
        free(self->rec_table[o]);
    }
    es_meta_destroy(&self->meta);
    free(self->meta_json);
    es_store_destroy(&self->store);
    free(self);
    *self_p = NULL;
}

es_store_t *
srv_data_store(srv_data_t *self)
{
    return self->store;
}

const es_meta_t *
srv_data_meta(srv_data_t *self)
{
    return self->meta;
}

const char *
srv_data_meta_json(srv_data_t *self)
{
    return self->meta_json;
}

const char *
srv_data_rec_table(srv_data_t *self, size_t obj)
{
    return self->rec_table[obj];
}

const char *
srv_data_chg_table(srv_data_t *self, size_t obj)
{
    return self->chg_table[obj];
}
