//  fuzz_dlparse - the streaming download response parser, object and service level. Each input
//  is parsed twice: fed whole, and fed in chunks of random sizes (seeded from the input, so a
//  crash reproduces); both parses must agree on success, every record and every result.
#include "common/es_buf.h"
#include "fuzz/fuzz_util.h"
#include "protocol/es_dlparse.h"
#include "protocol/es_record.h"
#include <inttypes.h>

typedef struct {
    es_buf_t log; //  everything the parse reported, as text
} collect_t;

static int
s_on_record(void *ctx, const es_dl_record_t *r, es_err_t *err)
{
    collect_t *c = ctx;
    es_buf_printf(&c->log, "%s %c [%s] ", r->object->name, r->is_delete ? 'D' : 'U', r->checksum);
    //  The record must be a valid es_record map: its JSON form must come out.
    if (es_record_to_json(r->rec, r->rec_len, &c->log, err))
        fz_fail("on_record: the parser produced a malformed record: %s", err->what);
    es_buf_putc(&c->log, '\n');
    return 0;
}

static void
s_on_object_error(void *ctx, const char *object, int64_t opstatus, const char *errmsg)
{
    collect_t *c = ctx;
    es_buf_printf(&c->log, "ERROR %s %" PRId64 " %s\n", object, opstatus, errmsg);
}

static const es_dlparse_cb_t s_cb = {s_on_record, s_on_object_error};

static void
s_opt(es_buf_t *log, const char *what, const char *v)
{
    es_buf_printf(log, "%s=%s\n", what, v ? v : "(null)");
}

//  Parse data in chunks (chunk_max 0: in one piece); the log gets the records and the results.
static int
s_parse(const es_meta_object_t *obj, const uint8_t *data, size_t size, uint64_t seed,
        size_t chunk_max, es_buf_t *log, es_err_t *err)
{
    collect_t c = {*log};
    es_dlparse_t *p = es_dlparse_new(fz_meta(), obj, &s_cb, &c);
    int rc = 0;
    size_t at = 0;
    while (rc == 0 && at < size) {
        size_t n = chunk_max ? 1 + fz_rand(&seed) % chunk_max : size;
        if (n > size - at)
            n = size - at;
        rc = es_dlparse_feed(p, data + at, n, err);
        at += n;
    }
    if (rc == 0)
        rc = es_dlparse_finish(p, err);
    if (rc == 0) {
        es_buf_printf(&c.log, "opstatus=%d/%" PRId64 " errmsg=%s more=%d count=%zu\n",
                      es_dlparse_has_opstatus(p), es_dlparse_opstatus(p), es_dlparse_errmsg(p),
                      es_dlparse_has_more(p), es_dlparse_count(p));
        s_opt(&c.log, "delta_context", es_dlparse_delta_context(p));
        const es_meta_t *meta = fz_meta();
        for (size_t i = 0; i < meta->nobjects; i++) {
            s_opt(&c.log, "delta", es_dlparse_delta(p, meta->objects[i].name));
            s_opt(&c.log, "bc", es_dlparse_bc(p, meta->objects[i].name));
        }
    }
    *log = c.log;
    es_dlparse_destroy(&p);
    return rc;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint64_t h = fz_hash(data, size);
    //  Object level (each object in turn) or service level, chosen by the input's hash.
    const es_meta_t *meta = fz_meta();
    size_t pick = h % (meta->nobjects + 1);
    const es_meta_object_t *obj = pick < meta->nobjects ? &meta->objects[pick] : NULL;

    es_buf_t whole, chunked;
    es_buf_init(&whole);
    es_buf_init(&chunked);
    es_err_t e1, e2;
    es_err_clear(&e1);
    es_err_clear(&e2);
    int rc1 = s_parse(obj, data, size, h, 0, &whole, &e1);
    int rc2 = s_parse(obj, data, size, h, 1 + (h >> 32) % 64, &chunked, &e2);
    if (rc1)
        fz_check_err("es_dlparse (whole)", &e1);
    if (rc2)
        fz_check_err("es_dlparse (chunked)", &e2);
    if (rc1 != rc2)
        fz_fail("whole feed %s (%s), chunked feed %s (%s)", rc1 ? "failed" : "succeeded", e1.what,
                rc2 ? "failed" : "succeeded", e2.what);
    if (whole.len != chunked.len || (whole.len && memcmp(whole.data, chunked.data, whole.len) != 0))
        fz_fail("whole and chunked feeds differ:\n--- whole\n%s--- chunked\n%s", whole.data,
                chunked.data);
    es_buf_release(&whole);
    es_buf_release(&chunked);
    return 0;
}
