//  fuzz_odata - es_odata_new() of any filter text against an object with every column type;
//  what parses is evaluated against records of right, wrong and missing types, from a getter
//  and from an es_record map.
#include "common/es_buf.h"
#include "fuzz/fuzz_util.h"
#include "protocol/es_odata.h"
#include "protocol/es_record.h"
#include <math.h>
#include <stdint.h>

typedef struct {
    const char *name;
    es_value_t v;
} col_t;

#define VS(text)                                                                                   \
    {                                                                                              \
        .type = ES_V_STR, .u.s = { text, sizeof text - 1 }                                         \
    }
#define VI(x)                                                                                      \
    {                                                                                              \
        .type = ES_V_INT, .u.i = x                                                                 \
    }
#define VD(x)                                                                                      \
    {                                                                                              \
        .type = ES_V_DOUBLE, .u.d = x                                                              \
    }
#define VB(x)                                                                                      \
    {                                                                                              \
        .type = ES_V_BOOL, .u.b = x                                                                \
    }
#define VN                                                                                         \
    {                                                                                              \
        .type = ES_V_NULL                                                                          \
    }

//  A well-typed record, one with extreme values, and one whose columns hold the wrong types.
static const col_t s_rec_ok[] = {
    {"id", VI(7)},
    {"name", VS("Ann O'Neil")},
    {"age", VI(41)},
    {"score", VD(2.5)},
    {"active", VB(true)},
    {"born", VS("1983-02-28")},
    {"updated", VS("2024-01-31T10:00:00.5Z")},
    {NULL, VN},
};
static const col_t s_rec_edge[] = {
    {"id", VI(INT64_MIN)},  {"name", VS("\xc3\xa9t\xc3\xa9 \xff\x00x")},
    {"age", VI(INT64_MAX)}, {"score", VD(NAN)},
    {"active", VN},         {"born", VS("")},
    {"updated", VD(-0.0)},  {NULL, VN},
};
static const col_t s_rec_wrong[] = {
    {"id", VS("7")},        {"name", VI(5)},     {"age", VD(1e300)}, {"score", VS("2.5")},
    {"active", VS("true")}, {"born", VB(false)}, {"updated", VI(0)}, {NULL, VN},
};

static int
s_get(void *ctx, const char *column, es_value_t *out)
{
    for (const col_t *c = ctx; c->name; c++)
        if (strcmp(c->name, column) == 0) {
            *out = c->v;
            return 1;
        }
    return 0;
}

static es_buf_t s_rec, s_rec_ok_map; //  a record; s_rec_ok as an es_record map
static bool s_rec_ready;

static void
s_rec_free(void)
{
    es_buf_release(&s_rec);
    es_buf_release(&s_rec_ok_map);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const es_meta_t *meta = fz_meta();
    const es_meta_object_t *obj = es_meta_object(meta, "Customer");
    if (!s_rec_ready) {
        es_err_t err;
        static const char json[] = "{\"id\":3,\"name\":\"B\\u00e9a\",\"age\":null,\"score\":-1e-3,"
                                   "\"active\":false,\"born\":\"2000-01-01\"}";
        static const char ok[] = "{\"id\":7,\"name\":\"Ann O'Neil\",\"age\":41,\"score\":2.5,"
                                 "\"active\":true,\"born\":\"1983-02-28\","
                                 "\"updated\":\"2024-01-31T10:00:00.5Z\"}";
        es_buf_init(&s_rec);
        es_buf_init(&s_rec_ok_map);
        if (es_record_from_json(obj, json, sizeof json - 1, &s_rec, &err) ||
            es_record_from_json(obj, ok, sizeof ok - 1, &s_rec_ok_map, &err))
            fz_fail("record: %s", err.what);
        atexit(s_rec_free);
        s_rec_ready = true;
    }
    char *text = fz_strndup(data, size);
    es_err_t err;
    es_err_clear(&err);
    es_odata_t *q = es_odata_new(text, obj, &err);
    if (!q) {
        fz_check_err("es_odata_new", &err);
        if (err.code != ES_EINVAL)
            fz_fail("es_odata_new: code %d, expected EINVAL: %s", (int)err.code, err.what);
        free(text);
        return 0;
    }
    static const col_t s_none[] = {{NULL, VN}};
    (void)es_odata_match(q, s_get, (void *)s_none);
    //  The same values through a getter and through an es_record map: same verdict.
    if (es_odata_match(q, s_get, (void *)s_rec_ok) !=
        es_odata_match_record(q, s_rec_ok_map.data, s_rec_ok_map.len))
        fz_fail("getter and record disagree on '%s'", text);
    (void)es_odata_match(q, s_get, (void *)s_rec_edge);
    (void)es_odata_match(q, s_get, (void *)s_rec_wrong);
    (void)es_odata_match_record(q, s_rec.data, s_rec.len);
    static const uint8_t truncated[] = {0x81, 0xa2, 'i', 'd'}; //  {"id": <missing>
    (void)es_odata_match_record(q, truncated, sizeof truncated);
    es_odata_destroy(&q);
    free(text);
    return 0;
}
