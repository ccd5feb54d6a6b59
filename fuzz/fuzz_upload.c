//  fuzz_upload - es_upload_parse() of any upload response against the shared metadata; every
//  record it reports must be well formed (a valid es_record map, a key given as JSON).
#include "common/es_buf.h"
#include "fuzz/fuzz_util.h"
#include "protocol/es_record.h"
#include "protocol/es_upload.h"

typedef struct {
    size_t records; //  callback calls
    es_buf_t json;  //  scratch
} collect_t;

static int
s_on_rec(void *ctx, const es_upload_rec_t *r, es_err_t *err)
{
    collect_t *c = ctx;
    c->records++;
    if (!r->object_name || !r->checksum || !r->pk_json)
        fz_fail("record %zu: a string member is NULL", c->records);
    if (r->object && strcmp(r->object->name, r->object_name) != 0)
        fz_fail("record %zu: object '%s' resolved from name '%s'", c->records, r->object->name,
                r->object_name);
    if (r->rec_len) {
        es_buf_reset(&c->json);
        if (es_record_to_json(r->rec, r->rec_len, &c->json, err))
            fz_fail("record %zu: malformed record map: %s", c->records, err->what);
    }
    //  Touch every byte of the strings, so ASan sees an unterminated or freed one.
    size_t n = strlen(r->object_name) + strlen(r->checksum) + strlen(r->pk_json);
    if (r->errmsg)
        n += strlen(r->errmsg);
    if (r->intermediate_errors)
        n += strlen(r->intermediate_errors);
    (void)n;
    return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    collect_t c = {0};
    es_buf_init(&c.json);
    es_upload_summary_t sum;
    es_err_t err;
    es_err_clear(&err);
    int rc = es_upload_parse(fz_meta(), (const char *)data, size, s_on_rec, &c, &sum, &err);
    if (rc) {
        fz_check_err("es_upload_parse", &err);
    } else {
        if (!memchr(sum.errmsg, '\0', sizeof sum.errmsg))
            fz_fail("summary errmsg not terminated");
        if (sum.records != c.records)
            fz_fail("summary says %zu records, callback saw %zu", sum.records, c.records);
        //  Without a callback or a summary the verdict must be the same.
        if (es_upload_parse(fz_meta(), (const char *)data, size, NULL, NULL, NULL, &err))
            fz_fail("parse without callback failed where it succeeded with one: %s", err.what);
    }
    es_buf_release(&c.json);
    return 0;
}
