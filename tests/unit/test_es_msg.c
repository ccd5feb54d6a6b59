//  test_es_msg - the message codec: round trips, malformed frames, and ZeroMQ send/recv.
#include "protocol/es_msg.h"
#include <msgpack.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include <cmocka.h>

//  The wire schema, written out independently of the codec's tables. Kinds: K short string
//  (ES_KIND_MAX), S name (ES_NAME_MAX), T text, B bool, U u32, L u64, I i32.
typedef struct {
    es_msg_type_t type;
    const char *name;
    const char *kinds;
    const char *fields[16];
} tdef_t;

static const tdef_t s_defs[] = {
    {ES_MSG_HELLO, "HELLO", "KUU", {"kind", "pid", "worker"}},
    {ES_MSG_STOP, "STOP", "", {NULL}},
    {ES_MSG_HEARTBEAT, "HEARTBEAT", "B", {"busy"}},
    {ES_MSG_REPLY, "REPLY", "ITT", {"code", "what", "body"}},
    {ES_MSG_RESULT, "RESULT", "SIT", {"session", "code", "body"}},
    {ES_MSG_EVENT, "EVENT", "ST", {"session", "body"}},
    {ES_MSG_SYNC, "SYNC", "KSST", {"level", "service", "object", "options"}},
    {ES_MSG_CANCEL, "CANCEL", "S", {"session"}},
    {ES_MSG_STATUS, "STATUS", "S", {"session"}},
    {ES_MSG_SETUP, "SETUP", "S", {"service"}},
    {ES_MSG_GET, "GET", "SSTTUT", {"service", "object", "pk", "filter", "limit", "after"}},
    {ES_MSG_STATS, "STATS", "S", {"entity"}},
    {ES_MSG_HISTORY, "HISTORY", "SU", {"entity", "limit"}},
    {ES_MSG_LOCAL, "LOCAL", "KSSTTT", {"op", "service", "object", "pk", "record", "options"}},
    {ES_MSG_DOWNLOAD, "DOWNLOAD", "SLSST", {"session", "job", "service", "object", "options"}},
    {ES_MSG_UPLOAD, "UPLOAD", "SLSST", {"session", "job", "service", "object", "options"}},
    {ES_MSG_RECONCILE, "RECONCILE", "SLSST", {"session", "job", "service", "object", "options"}},
    {ES_MSG_PROGRESS,
     "PROGRESS",
     "SLKKSUULUUUUUB",
     {"session", "job", "phase", "state", "object", "batch", "records", "bytes", "request_ms",
      "network_ms", "parse_ms", "persist_ms", "retries", "last"}},
    {ES_MSG_JOB_DONE, "JOB_DONE", "SLITT", {"session", "job", "code", "what", "result"}},
};
#define NDEFS (sizeof s_defs / sizeof s_defs[0])

static es_slice_t
s_slice(const char *s)
{
    es_slice_t sl = {s, strlen(s)};
    return sl;
}

static void
s_assert_slice(es_slice_t got, const char *want)
{
    assert_int_equal(got.len, strlen(want));
    assert_memory_equal(got.ptr, want, got.len);
}

//  A message of the given type with every field set to something non-trivial.
static void
s_fill(es_msg_t *m, es_msg_type_t type)
{
    es_msg_init(m, type, 0x123456789abcdef0ull);
    switch (type) {
    case ES_MSG_HELLO:
        strcpy(m->u.hello.kind, "download");
        m->u.hello.pid = 4242;
        m->u.hello.worker = UINT32_MAX;
        break;
    case ES_MSG_STOP:
        break;
    case ES_MSG_HEARTBEAT:
        m->u.heartbeat.busy = true;
        break;
    case ES_MSG_REPLY:
        m->u.reply.code = -2477;
        m->u.reply.what = s_slice("Invalid value found for syncType option x");
        m->u.reply.body = s_slice("{\"a\":[1,2,\"\xc3\xa9\"]}");
        break;
    case ES_MSG_RESULT:
        strcpy(m->u.result.session, "s-0001");
        m->u.result.code = INT32_MIN;
        m->u.result.body = s_slice("{\"status\":0}");
        break;
    case ES_MSG_EVENT:
        strcpy(m->u.event.session, "s-0002");
        m->u.event.body = s_slice("{\"phase\":\"Download\"}");
        break;
    case ES_MSG_SYNC:
        strcpy(m->u.sync.level, "object");
        strcpy(m->u.sync.service, "OrdersSvc");
        strcpy(m->u.sync.object, "orders");
        m->u.sync.options = s_slice("{\"syncType\":\"uploadOnly\"}");
        break;
    case ES_MSG_CANCEL:
        strcpy(m->u.cancel.session, "s-cancel");
        break;
    case ES_MSG_STATUS:
        strcpy(m->u.status.session, "s-status");
        break;
    case ES_MSG_SETUP:
        strcpy(m->u.setup.service, "Inventory");
        break;
    case ES_MSG_GET:
        strcpy(m->u.get.service, "OrdersSvc");
        strcpy(m->u.get.object, "lines");
        m->u.get.pk = s_slice("{\"id\":7,\"line\":2}");
        m->u.get.filter = s_slice("qty gt 3");
        m->u.get.limit = 100000;
        m->u.get.after = s_slice("{\"id\":7,\"line\":1}");
        break;
    case ES_MSG_STATS:
        strcpy(m->u.stats.entity, "orders");
        break;
    case ES_MSG_HISTORY:
        strcpy(m->u.history.entity, "orders");
        m->u.history.limit = 25;
        break;
    case ES_MSG_LOCAL:
        strcpy(m->u.local.op, "partialupdate");
        strcpy(m->u.local.service, "OrdersSvc");
        strcpy(m->u.local.object, "orders");
        m->u.local.pk = s_slice("{\"id\":-3}");
        m->u.local.record = s_slice("{\"qty\":2}");
        m->u.local.options = s_slice("{\"trackChanges\":false}");
        break;
    case ES_MSG_RECONCILE:
        strcpy(m->u.reconcile.session, "s-rc");
        m->u.reconcile.job = 78;
        strcpy(m->u.reconcile.service, "OrdersSvc");
        strcpy(m->u.reconcile.object, "orders");
        m->u.reconcile.options = s_slice("{\"filter\":{}}");
        break;
    case ES_MSG_UPLOAD:
        strcpy(m->u.upload.session, "s-up");
        m->u.upload.job = 77;
        strcpy(m->u.upload.service, "OrdersSvc");
        strcpy(m->u.upload.object, "lines");
        m->u.upload.options = s_slice("{\"uploadBatchSize\":200}");
        break;
    case ES_MSG_DOWNLOAD:
        strcpy(m->u.download.session, "s-dl");
        m->u.download.job = UINT64_MAX;
        strcpy(m->u.download.service, "OrdersSvc");
        strcpy(m->u.download.object, "orders");
        m->u.download.options = s_slice("{\"downloadBatchSize\":0}");
        break;
    case ES_MSG_PROGRESS: {
        es_progress_t *p = &m->u.progress;
        strcpy(p->session, "s-pr");
        p->job = 1ull << 40;
        strcpy(p->phase, "Reconcile");
        strcpy(p->state, "InProgress");
        strcpy(p->object, "orders");
        p->batch = 1;
        p->records = 500;
        p->bytes = 5000000000ull;
        p->request_ms = 3;
        p->network_ms = 70000;
        p->parse_ms = 128;
        p->persist_ms = 65536;
        p->retries = 255;
        p->last = true;
        break;
    }
    case ES_MSG_JOB_DONE:
        strcpy(m->u.job_done.session, "s-done");
        m->u.job_done.job = 9;
        m->u.job_done.code = 2474;
        m->u.job_done.what = s_slice("HTTP 500");
        m->u.job_done.result = s_slice("{\"syncErrors\":[]}");
        break;
    }
}

//  Compare every field of two messages of the same type.
static void
s_assert_equal(const es_msg_t *a, const es_msg_t *b)
{
    assert_int_equal(a->type, b->type);
    assert_true(a->request_id == b->request_id);
    switch (a->type) {
    case ES_MSG_HELLO:
        assert_string_equal(a->u.hello.kind, b->u.hello.kind);
        assert_int_equal(a->u.hello.pid, b->u.hello.pid);
        assert_int_equal(a->u.hello.worker, b->u.hello.worker);
        break;
    case ES_MSG_STOP:
        break;
    case ES_MSG_HEARTBEAT:
        assert_int_equal(a->u.heartbeat.busy, b->u.heartbeat.busy);
        break;
    case ES_MSG_REPLY:
        assert_int_equal(a->u.reply.code, b->u.reply.code);
        s_assert_slice(b->u.reply.what, a->u.reply.what.ptr);
        s_assert_slice(b->u.reply.body, a->u.reply.body.ptr);
        break;
    case ES_MSG_RESULT:
        assert_string_equal(a->u.result.session, b->u.result.session);
        assert_int_equal(a->u.result.code, b->u.result.code);
        s_assert_slice(b->u.result.body, a->u.result.body.ptr);
        break;
    case ES_MSG_EVENT:
        assert_string_equal(a->u.event.session, b->u.event.session);
        s_assert_slice(b->u.event.body, a->u.event.body.ptr);
        break;
    case ES_MSG_SYNC:
        assert_string_equal(a->u.sync.level, b->u.sync.level);
        assert_string_equal(a->u.sync.service, b->u.sync.service);
        assert_string_equal(a->u.sync.object, b->u.sync.object);
        s_assert_slice(b->u.sync.options, a->u.sync.options.ptr);
        break;
    case ES_MSG_CANCEL:
        assert_string_equal(a->u.cancel.session, b->u.cancel.session);
        break;
    case ES_MSG_STATUS:
        assert_string_equal(a->u.status.session, b->u.status.session);
        break;
    case ES_MSG_SETUP:
        assert_string_equal(a->u.setup.service, b->u.setup.service);
        break;
    case ES_MSG_GET:
        assert_string_equal(a->u.get.service, b->u.get.service);
        assert_string_equal(a->u.get.object, b->u.get.object);
        s_assert_slice(b->u.get.pk, a->u.get.pk.ptr);
        s_assert_slice(b->u.get.filter, a->u.get.filter.ptr);
        s_assert_slice(b->u.get.after, a->u.get.after.ptr);
        assert_int_equal(a->u.get.limit, b->u.get.limit);
        break;
    case ES_MSG_STATS:
        assert_string_equal(a->u.stats.entity, b->u.stats.entity);
        break;
    case ES_MSG_HISTORY:
        assert_string_equal(a->u.history.entity, b->u.history.entity);
        assert_int_equal(a->u.history.limit, b->u.history.limit);
        break;
    case ES_MSG_LOCAL:
        assert_string_equal(a->u.local.op, b->u.local.op);
        assert_string_equal(a->u.local.service, b->u.local.service);
        assert_string_equal(a->u.local.object, b->u.local.object);
        s_assert_slice(b->u.local.pk, a->u.local.pk.ptr);
        s_assert_slice(b->u.local.record, a->u.local.record.ptr);
        s_assert_slice(b->u.local.options, a->u.local.options.ptr);
        break;
    case ES_MSG_RECONCILE:
        assert_string_equal(a->u.reconcile.session, b->u.reconcile.session);
        assert_true(a->u.reconcile.job == b->u.reconcile.job);
        assert_string_equal(a->u.reconcile.service, b->u.reconcile.service);
        assert_string_equal(a->u.reconcile.object, b->u.reconcile.object);
        s_assert_slice(b->u.reconcile.options, a->u.reconcile.options.ptr);
        break;
    case ES_MSG_UPLOAD:
        assert_string_equal(a->u.upload.session, b->u.upload.session);
        assert_true(a->u.upload.job == b->u.upload.job);
        assert_string_equal(a->u.upload.service, b->u.upload.service);
        assert_string_equal(a->u.upload.object, b->u.upload.object);
        s_assert_slice(b->u.upload.options, a->u.upload.options.ptr);
        break;
    case ES_MSG_DOWNLOAD:
        assert_string_equal(a->u.download.session, b->u.download.session);
        assert_true(a->u.download.job == b->u.download.job);
        assert_string_equal(a->u.download.service, b->u.download.service);
        assert_string_equal(a->u.download.object, b->u.download.object);
        s_assert_slice(b->u.download.options, a->u.download.options.ptr);
        break;
    case ES_MSG_PROGRESS: {
        const es_progress_t *p = &a->u.progress, *q = &b->u.progress;
        assert_string_equal(p->session, q->session);
        assert_true(p->job == q->job);
        assert_string_equal(p->phase, q->phase);
        assert_string_equal(p->state, q->state);
        assert_string_equal(p->object, q->object);
        assert_int_equal(p->batch, q->batch);
        assert_int_equal(p->records, q->records);
        assert_true(p->bytes == q->bytes);
        assert_int_equal(p->request_ms, q->request_ms);
        assert_int_equal(p->network_ms, q->network_ms);
        assert_int_equal(p->parse_ms, q->parse_ms);
        assert_int_equal(p->persist_ms, q->persist_ms);
        assert_int_equal(p->retries, q->retries);
        assert_int_equal(p->last, q->last);
        break;
    }
    case ES_MSG_JOB_DONE:
        assert_string_equal(a->u.job_done.session, b->u.job_done.session);
        assert_true(a->u.job_done.job == b->u.job_done.job);
        assert_int_equal(a->u.job_done.code, b->u.job_done.code);
        s_assert_slice(b->u.job_done.what, a->u.job_done.what.ptr);
        s_assert_slice(b->u.job_done.result, a->u.job_done.result.ptr);
        break;
    }
}

static void
s_expect_fail(const void *data, size_t len, const char *what)
{
    es_msg_t m;
    es_err_t err = {ES_OK, ""};
    assert_int_equal(es_msg_decode(&m, data, len, &err), -1);
    assert_int_equal(err.code, ES_EPROTO);
    assert_string_equal(err.what, what);
}

static void
test_names(void **state)
{
    (void)state;
    for (size_t i = 0; i < NDEFS; i++)
        assert_string_equal(es_msg_name(s_defs[i].type), s_defs[i].name);
    assert_string_equal(es_msg_name((es_msg_type_t)99), "?");
}

static void
test_roundtrip_every_type(void **state)
{
    (void)state;
    for (size_t i = 0; i < NDEFS; i++) {
        es_msg_t in, out;
        s_fill(&in, s_defs[i].type);
        es_buf_t buf;
        es_buf_init(&buf);
        es_err_t err = {ES_OK, ""};
        assert_int_equal(es_msg_encode(&in, &buf, &err), 0);
        assert_int_equal(es_msg_decode(&out, buf.data, buf.len, &err), 0);
        s_assert_equal(&in, &out);
        //  Text slices point into the frame, not into copies.
        if (in.type == ES_MSG_SYNC) {
            assert_true(out.u.sync.options.ptr >= buf.data);
            assert_true(out.u.sync.options.ptr < buf.data + buf.len);
        }
        //  Re-encoding the decoded message gives the same bytes.
        es_buf_t again;
        es_buf_init(&again);
        assert_int_equal(es_msg_encode(&out, &again, &err), 0);
        assert_int_equal(again.len, buf.len);
        assert_memory_equal(again.data, buf.data, buf.len);
        es_buf_release(&again);
        es_buf_release(&buf);
    }
}

static void
test_roundtrip_boundaries(void **state)
{
    (void)state;
    es_msg_t in, out;
    es_err_t err = {ES_OK, ""};
    es_buf_t buf;
    es_buf_init(&buf);
    //  Longest strings that fit, empty texts, zero values.
    es_msg_init(&in, ES_MSG_SYNC, 0);
    memset(in.u.sync.level, 'k', ES_KIND_MAX);
    memset(in.u.sync.service, 's', ES_NAME_MAX);
    in.u.sync.options.ptr = NULL;
    in.u.sync.options.len = 0;
    assert_int_equal(es_msg_encode(&in, &buf, &err), 0);
    assert_int_equal(es_msg_decode(&out, buf.data, buf.len, &err), 0);
    assert_int_equal(strlen(out.u.sync.level), ES_KIND_MAX);
    assert_int_equal(strlen(out.u.sync.service), ES_NAME_MAX);
    assert_string_equal(out.u.sync.object, "");
    assert_int_equal(out.u.sync.options.len, 0);
    assert_non_null(out.u.sync.options.ptr);
    assert_true(out.request_id == 0);
    //  Integer extremes.
    es_buf_reset(&buf);
    es_msg_init(&in, ES_MSG_JOB_DONE, UINT64_MAX);
    in.u.job_done.code = INT32_MAX;
    in.u.job_done.job = 0;
    assert_int_equal(es_msg_encode(&in, &buf, &err), 0);
    assert_int_equal(es_msg_decode(&out, buf.data, buf.len, &err), 0);
    assert_int_equal(out.u.job_done.code, INT32_MAX);
    assert_true(out.request_id == UINT64_MAX);
    es_buf_release(&buf);
}

static void
test_encode_errors(void **state)
{
    (void)state;
    es_msg_t m;
    es_err_t err = {ES_OK, ""};
    es_buf_t buf;
    es_buf_init(&buf);
    es_buf_puts(&buf, "keep");
    //  A char[] member without its NUL does not fit.
    es_msg_init(&m, ES_MSG_HELLO, 1);
    memset(m.u.hello.kind, 'x', sizeof m.u.hello.kind);
    assert_int_equal(es_msg_encode(&m, &buf, &err), -1);
    assert_int_equal(err.code, ES_EINVAL);
    assert_string_equal(err.what, "HELLO.kind: string too long (max 16 bytes)");
    assert_int_equal(buf.len, 4);
    assert_string_equal(buf.data, "keep");
    es_msg_init(&m, ES_MSG_PROGRESS, 1);
    memset(m.u.progress.object, 'o', sizeof m.u.progress.object);
    assert_int_equal(es_msg_encode(&m, &buf, &err), -1);
    assert_string_equal(err.what, "PROGRESS.object: string too long (max 128 bytes)");
    //  Texts over the frame limit.
    es_msg_init(&m, ES_MSG_EVENT, 1);
    m.u.event.body.ptr = "x";
    m.u.event.body.len = ES_MSG_MAX_SIZE + 1;
    assert_int_equal(es_msg_encode(&m, &buf, &err), -1);
    assert_string_equal(err.what, "EVENT.body: text too long (4194305 bytes, max 4194304)");
    char *big = calloc(1, ES_MSG_MAX_SIZE);
    assert_non_null(big);
    m.u.event.body.ptr = big;
    m.u.event.body.len = ES_MSG_MAX_SIZE;
    assert_int_equal(es_msg_encode(&m, &buf, &err), -1);
    //  1+1+1+1 header, 1 map, 8+1 session, 5+5 body key and str32 head, then the text
    assert_string_equal(err.what, "EVENT: message too large (4194328 bytes, max 4194304)");
    free(big);
    assert_int_equal(buf.len, 4);
    es_msg_init(&m, (es_msg_type_t)99, 1);
    assert_int_equal(es_msg_encode(&m, &buf, &err), -1);
    assert_string_equal(err.what, "message: unknown type 99");
    assert_int_equal(buf.len, 4);
    es_buf_release(&buf);
}

static void
test_every_prefix_fails(void **state)
{
    (void)state;
    for (size_t i = 0; i < NDEFS; i++) {
        es_msg_t in;
        s_fill(&in, s_defs[i].type);
        es_buf_t buf;
        es_buf_init(&buf);
        assert_int_equal(es_msg_encode(&in, &buf, NULL), 0);
        for (size_t n = 0; n < buf.len; n++) {
            //  A fresh copy of exactly n bytes, so a read past it shows under ASan/valgrind.
            char *copy = malloc(n ? n : 1);
            assert_non_null(copy);
            memcpy(copy, buf.data, n);
            s_expect_fail(copy, n, "message: truncated");
            free(copy);
        }
        es_buf_release(&buf);
    }
}

static void
test_trailing_bytes(void **state)
{
    (void)state;
    for (size_t i = 0; i < NDEFS; i++) {
        es_msg_t in;
        s_fill(&in, s_defs[i].type);
        es_buf_t buf;
        es_buf_init(&buf);
        assert_int_equal(es_msg_encode(&in, &buf, NULL), 0);
        es_buf_putc(&buf, '\0');
        s_expect_fail(buf.data, buf.len, "message: trailing bytes");
        es_buf_release(&buf);
    }
}

//  ---------------------------------------------------------------------------------------------
//  Hand-built frames

static int
s_write(void *data, const char *buf, size_t len)
{
    es_buf_append((es_buf_t *)data, buf, len);
    return 0;
}

static void
s_pack_str(msgpack_packer *pk, const char *s)
{
    size_t n = strlen(s);
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, s, n);
}

//  A good value for a field kind.
static void
s_pack_good(msgpack_packer *pk, char kind)
{
    switch (kind) {
    case 'K':
    case 'S':
        s_pack_str(pk, "x");
        break;
    case 'T':
        s_pack_str(pk, "t");
        break;
    case 'B':
        msgpack_pack_true(pk);
        break;
    case 'U':
    case 'L':
        msgpack_pack_uint32(pk, 7);
        break;
    case 'I':
        msgpack_pack_int32(pk, -7);
        break;
    }
}

typedef void (*packfn_t)(msgpack_packer *pk);

//  Header [1, type, 5, {...}] with every field good, except field `omit` (left out) and field
//  `bad` (packed by badfn); extra(pk) adds pairs, counted by nextra.
static void
s_build(es_buf_t *buf, const tdef_t *d, int omit, int bad, packfn_t badfn, packfn_t extra,
        size_t nextra)
{
    msgpack_packer pk;
    msgpack_packer_init(&pk, buf, s_write);
    msgpack_pack_array(&pk, 4);
    msgpack_pack_uint8(&pk, 1);
    msgpack_pack_uint8(&pk, (uint8_t)d->type);
    msgpack_pack_uint8(&pk, 5);
    size_t n = strlen(d->kinds);
    msgpack_pack_map(&pk, n - (omit >= 0 ? 1 : 0) + nextra);
    if (extra)
        extra(&pk);
    for (size_t k = 0; k < n; k++) {
        if ((int)k == omit)
            continue;
        s_pack_str(&pk, d->fields[k]);
        if ((int)k == bad)
            badfn(&pk);
        else
            s_pack_good(&pk, d->kinds[k]);
    }
}

static void
s_bad_nil(msgpack_packer *pk)
{
    msgpack_pack_nil(pk);
}
static void
s_bad_int(msgpack_packer *pk)
{
    msgpack_pack_int(pk, 5);
}
static void
s_bad_str(msgpack_packer *pk)
{
    s_pack_str(pk, "5");
}
static void
s_bad_bool(msgpack_packer *pk)
{
    msgpack_pack_false(pk);
}
static void
s_bad_float(msgpack_packer *pk)
{
    msgpack_pack_double(pk, 5.0);
}
static void
s_bad_array(msgpack_packer *pk)
{
    msgpack_pack_array(pk, 1);
    msgpack_pack_int(pk, 5);
}
static void
s_bad_map(msgpack_packer *pk)
{
    msgpack_pack_map(pk, 0);
}
static void
s_bad_bin(msgpack_packer *pk)
{
    msgpack_pack_bin(pk, 1);
    msgpack_pack_bin_body(pk, "5", 1);
}

static const char *
s_expected(char kind)
{
    switch (kind) {
    case 'K':
    case 'S':
    case 'T':
        return "expected a string";
    case 'B':
        return "expected a boolean";
    default:
        return "expected an integer";
    }
}

static void
test_wrong_type_every_field(void **state)
{
    (void)state;
    static const struct {
        packfn_t fn;
        const char *ok_for; //  kinds for which this value is valid
    } bads[] = {
        {s_bad_nil, ""},   {s_bad_int, "ULI"}, {s_bad_str, "KST"}, {s_bad_bool, "B"},
        {s_bad_float, ""}, {s_bad_array, ""},  {s_bad_map, ""},    {s_bad_bin, "T"},
    };
    size_t checked = 0;
    for (size_t i = 0; i < NDEFS; i++) {
        const tdef_t *d = &s_defs[i];
        for (size_t k = 0; k < strlen(d->kinds); k++) {
            for (size_t b = 0; b < sizeof bads / sizeof bads[0]; b++) {
                es_buf_t buf;
                es_buf_init(&buf);
                s_build(&buf, d, -1, (int)k, bads[b].fn, NULL, 0);
                es_msg_t m;
                es_err_t err = {ES_OK, ""};
                int rc = es_msg_decode(&m, buf.data, buf.len, &err);
                if (strchr(bads[b].ok_for, d->kinds[k])) {
                    assert_int_equal(rc, 0);
                } else {
                    char want[256];
                    snprintf(want, sizeof want, "%s.%s: %s", d->name, d->fields[k],
                             s_expected(d->kinds[k]));
                    assert_int_equal(rc, -1);
                    assert_int_equal(err.code, ES_EPROTO);
                    assert_string_equal(err.what, want);
                    checked++;
                }
                es_buf_release(&buf);
            }
        }
    }
    assert_true(checked > 200);
}

static void
test_missing_every_field(void **state)
{
    (void)state;
    for (size_t i = 0; i < NDEFS; i++) {
        const tdef_t *d = &s_defs[i];
        for (size_t k = 0; k < strlen(d->kinds); k++) {
            es_buf_t buf;
            es_buf_init(&buf);
            s_build(&buf, d, (int)k, -1, NULL, NULL, 0);
            char want[256];
            snprintf(want, sizeof want, "%s.%s: missing", d->name, d->fields[k]);
            s_expect_fail(buf.data, buf.len, want);
            es_buf_release(&buf);
        }
        //  And with nothing left out, the hand-built frame is valid.
        es_buf_t buf;
        es_buf_init(&buf);
        s_build(&buf, d, -1, -1, NULL, NULL, 0);
        es_msg_t m;
        assert_int_equal(es_msg_decode(&m, buf.data, buf.len, NULL), 0);
        assert_int_equal(m.type, d->type);
        assert_true(m.request_id == 5);
        es_buf_release(&buf);
    }
}

static size_t s_len; //  string length for s_bad_long

static void
s_bad_long(msgpack_packer *pk)
{
    char *s = malloc(s_len + 1);
    assert_non_null(s);
    memset(s, 'a', s_len);
    s[s_len] = '\0';
    s_pack_str(pk, s);
    free(s);
}

static void
test_string_lengths(void **state)
{
    (void)state;
    for (size_t i = 0; i < NDEFS; i++) {
        const tdef_t *d = &s_defs[i];
        for (size_t k = 0; k < strlen(d->kinds); k++) {
            char kind = d->kinds[k];
            if (kind != 'K' && kind != 'S')
                continue;
            size_t max = kind == 'K' ? ES_KIND_MAX : ES_NAME_MAX;
            size_t lens[] = {max + 1, max + 2, 70000};
            for (size_t l = 0; l < 3; l++) {
                s_len = lens[l];
                es_buf_t buf;
                es_buf_init(&buf);
                s_build(&buf, d, -1, (int)k, s_bad_long, NULL, 0);
                char want[256];
                snprintf(want, sizeof want, "%s.%s: string too long (%zu bytes, max %zu)", d->name,
                         d->fields[k], s_len, max);
                s_expect_fail(buf.data, buf.len, want);
                es_buf_release(&buf);
            }
            //  Exactly the maximum fits.
            s_len = max;
            es_buf_t buf;
            es_buf_init(&buf);
            s_build(&buf, d, -1, (int)k, s_bad_long, NULL, 0);
            es_msg_t m;
            assert_int_equal(es_msg_decode(&m, buf.data, buf.len, NULL), 0);
            es_buf_release(&buf);
        }
    }
    //  A NUL inside a string would silently cut a char[] member.
    es_buf_t buf;
    es_buf_init(&buf);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &buf, s_write);
    msgpack_pack_array(&pk, 4);
    msgpack_pack_uint8(&pk, 1);
    msgpack_pack_uint8(&pk, ES_MSG_CANCEL);
    msgpack_pack_uint8(&pk, 1);
    msgpack_pack_map(&pk, 1);
    s_pack_str(&pk, "session");
    msgpack_pack_str(&pk, 3);
    msgpack_pack_str_body(&pk, "a\0b", 3);
    s_expect_fail(buf.data, buf.len, "CANCEL.session: string contains a NUL byte");
    es_buf_release(&buf);
}

//  Values for integer fields, packed in every width and signedness.
static int64_t s_ival;
static uint64_t s_uval;
static void
s_pack_i64(msgpack_packer *pk)
{
    msgpack_pack_int64(pk, s_ival);
}
static void
s_pack_u64(msgpack_packer *pk)
{
    msgpack_pack_uint64(pk, s_uval);
}

static void
test_int_ranges(void **state)
{
    (void)state;
    const tdef_t *progress = NULL, *job_done = NULL;
    for (size_t i = 0; i < NDEFS; i++) {
        if (s_defs[i].type == ES_MSG_PROGRESS)
            progress = &s_defs[i];
        if (s_defs[i].type == ES_MSG_JOB_DONE)
            job_done = &s_defs[i];
    }
    es_buf_t buf;
    es_buf_init(&buf);
    es_msg_t m;
    //  PROGRESS.batch (u32, index 5)
    s_uval = UINT32_MAX;
    s_build(&buf, progress, -1, 5, s_pack_u64, NULL, 0);
    assert_int_equal(es_msg_decode(&m, buf.data, buf.len, NULL), 0);
    assert_int_equal(m.u.progress.batch, UINT32_MAX);
    es_buf_reset(&buf);
    s_uval = (uint64_t)UINT32_MAX + 1;
    s_build(&buf, progress, -1, 5, s_pack_u64, NULL, 0);
    s_expect_fail(buf.data, buf.len, "PROGRESS.batch: integer out of range (4294967296)");
    es_buf_reset(&buf);
    s_ival = -1;
    s_build(&buf, progress, -1, 5, s_pack_i64, NULL, 0);
    s_expect_fail(buf.data, buf.len, "PROGRESS.batch: integer out of range (-1)");
    es_buf_reset(&buf);
    //  PROGRESS.bytes (u64, index 7)
    s_uval = UINT64_MAX;
    s_build(&buf, progress, -1, 7, s_pack_u64, NULL, 0);
    assert_int_equal(es_msg_decode(&m, buf.data, buf.len, NULL), 0);
    assert_true(m.u.progress.bytes == UINT64_MAX);
    es_buf_reset(&buf);
    s_ival = INT64_MIN;
    s_build(&buf, progress, -1, 7, s_pack_i64, NULL, 0);
    s_expect_fail(buf.data, buf.len, "PROGRESS.bytes: integer out of range (-9223372036854775808)");
    es_buf_reset(&buf);
    //  JOB_DONE.code (i32, index 2)
    int64_t ok[] = {INT32_MIN, -1, 0, INT32_MAX};
    for (size_t i = 0; i < 4; i++) {
        s_ival = ok[i];
        s_build(&buf, job_done, -1, 2, s_pack_i64, NULL, 0);
        assert_int_equal(es_msg_decode(&m, buf.data, buf.len, NULL), 0);
        assert_int_equal(m.u.job_done.code, ok[i]);
        es_buf_reset(&buf);
    }
    s_ival = (int64_t)INT32_MIN - 1;
    s_build(&buf, job_done, -1, 2, s_pack_i64, NULL, 0);
    s_expect_fail(buf.data, buf.len, "JOB_DONE.code: integer out of range (-2147483649)");
    es_buf_reset(&buf);
    s_uval = (uint64_t)INT32_MAX + 1;
    s_build(&buf, job_done, -1, 2, s_pack_u64, NULL, 0);
    s_expect_fail(buf.data, buf.len, "JOB_DONE.code: integer out of range (2147483648)");
    es_buf_reset(&buf);
    //  A non-negative value in a signed format is fine for an unsigned field.
    const uint8_t hello_signed[] = {0x94, 0x01, 0x01, 0x02, 0x83, 0xa4, 'k',  'i',  'n',  'd',
                                    0xa1, 'u',  0xa3, 'p',  'i',  'd',  0xd2, 0x00, 0x01, 0x00,
                                    0x00, 0xa6, 'w',  'o',  'r',  'k',  'e',  'r',  0xd0, 0x03};
    assert_int_equal(es_msg_decode(&m, hello_signed, sizeof hello_signed, NULL), 0);
    assert_int_equal(m.u.hello.pid, 65536);
    assert_int_equal(m.u.hello.worker, 3);
    assert_true(m.request_id == 2);
    es_buf_release(&buf);
}

//  Unknown keys with values of every shape, including nested containers and ext types.
static void
s_extra(msgpack_packer *pk)
{
    s_pack_str(pk, "zz_nested");
    msgpack_pack_map(pk, 2);
    s_pack_str(pk, "a");
    msgpack_pack_array(pk, 3);
    msgpack_pack_nil(pk);
    msgpack_pack_double(pk, 1.5);
    msgpack_pack_array(pk, 1);
    msgpack_pack_map(pk, 1);
    msgpack_pack_int(pk, -3);
    msgpack_pack_bin(pk, 2);
    msgpack_pack_bin_body(pk, "\x00\x01", 2);
    msgpack_pack_int(pk, 1);
    msgpack_pack_float(pk, 2.5f);
    s_pack_str(pk, "zz_ext");
    msgpack_pack_ext(pk, 3, 7);
    msgpack_pack_ext_body(pk, "abc", 3);
    s_pack_str(pk, "zz_fixext");
    msgpack_pack_ext(pk, 4, 1);
    msgpack_pack_ext_body(pk, "abcd", 4);
    s_pack_str(pk, "");
    msgpack_pack_int64(pk, INT64_MIN);
}

static void
test_unknown_keys_skipped(void **state)
{
    (void)state;
    for (size_t i = 0; i < NDEFS; i++) {
        es_buf_t buf;
        es_buf_init(&buf);
        s_build(&buf, &s_defs[i], -1, -1, NULL, s_extra, 4);
        es_msg_t m;
        es_err_t err = {ES_OK, ""};
        assert_int_equal(es_msg_decode(&m, buf.data, buf.len, &err), 0);
        assert_int_equal(m.type, s_defs[i].type);
        //  Every prefix of this one fails too, also inside the skipped values.
        for (size_t n = 0; n < buf.len; n++)
            s_expect_fail(buf.data, n, "message: truncated");
        es_buf_release(&buf);
    }
    //  Values land in the right members despite the extra keys.
    es_buf_t buf;
    es_buf_init(&buf);
    s_build(&buf, &s_defs[0], -1, -1, NULL, s_extra, 4);
    es_msg_t m;
    assert_int_equal(es_msg_decode(&m, buf.data, buf.len, NULL), 0);
    assert_string_equal(m.u.hello.kind, "x");
    assert_int_equal(m.u.hello.pid, 7);
    es_buf_release(&buf);
}

static void
s_dup_session(msgpack_packer *pk)
{
    s_pack_str(pk, "session");
    s_pack_str(pk, "first");
}

static void
test_duplicate_key_last_wins(void **state)
{
    (void)state;
    const tdef_t *cancel = NULL;
    for (size_t i = 0; i < NDEFS; i++)
        if (s_defs[i].type == ES_MSG_CANCEL)
            cancel = &s_defs[i];
    es_buf_t buf;
    es_buf_init(&buf);
    s_build(&buf, cancel, -1, -1, NULL, s_dup_session, 1); //  "first", then "x"
    es_msg_t m;
    assert_int_equal(es_msg_decode(&m, buf.data, buf.len, NULL), 0);
    assert_string_equal(m.u.cancel.session, "x");
    es_buf_release(&buf);
}

static void
test_header_errors(void **state)
{
    (void)state;
    //  Not an array, or not of 4.
    s_expect_fail("\x80", 1, "message: expected an array of 4");
    s_expect_fail("\x01", 1, "message: expected an array of 4");
    s_expect_fail("\x93\x01\x01\x01", 4, "message: expected an array of 4");
    s_expect_fail("\x95\x01\x01\x01\x80\x01", 6, "message: expected an array of 4");
}

static void
test_header_errors2(void **state)
{
    (void)state;
    //  array16 of 4 is a valid array header
    es_msg_t m;
    assert_int_equal(es_msg_decode(&m, "\xdc\x00\x04\x01\x02\x01\x80", 7, NULL), 0);
    assert_int_equal(m.type, ES_MSG_STOP);
    s_expect_fail("\x94\x02\x02\x01\x80", 5, "message: version 2 not supported (expected 1)");
    s_expect_fail("\x94\xa1"
                  "1\x02\x01\x80",
                  6, "message: version: expected an unsigned integer");
    s_expect_fail("\x94\x01\x63\x01\x80", 5, "message: unknown type 99");
    s_expect_fail("\x94\x01\x00\x01\x80", 5, "message: unknown type 0");
    s_expect_fail("\x94\x01\xff\x01\x80", 5, "message: type: expected an unsigned integer");
    s_expect_fail("\x94\x01\x02\xc0\x80", 5, "message: request_id: expected an unsigned integer");
    s_expect_fail("\x94\x01\x02\x01\x90", 5, "STOP: expected a map of fields");
    s_expect_fail("\x94\x01\x02\x01\x81\x01\x01", 7, "STOP: expected string keys");
    s_expect_fail("\x94\x01\x02\x01\x81\xc1\x01", 7, "message: invalid byte 0xc1 at offset 5");
    //  An unknown key claiming billions of elements: no allocation, just truncation.
    s_expect_fail("\x94\x01\x02\x01\x81\xa1z\xdd\xff\xff\xff\xff\x01", 13, "message: truncated");
    s_expect_fail("\x94\x01\x02\x01\x81\xa1z\xdf\xff\xff\xff\xff\x01", 13, "message: truncated");
    //  A str32 whose length runs past the frame.
    s_expect_fail("\x94\x01\x0b\x01\x81\xa7session\xdb\x7f\xff\xff\xff", 18, "message: truncated");
    //  STOP with an empty map, and with an unknown field (a newer peer).
    assert_int_equal(es_msg_decode(&m, "\x94\x01\x02\x07\x80", 5, NULL), 0);
    assert_int_equal(m.type, ES_MSG_STOP);
    assert_true(m.request_id == 7);
    assert_int_equal(es_msg_decode(&m, "\x94\x01\x02\x07\x81\xa6unused\x01", 13, NULL), 0);
    //  NULL data with zero length.
    s_expect_fail(NULL, 0, "message: truncated");
}

static void
test_text_accepts_bin(void **state)
{
    (void)state;
    es_buf_t buf;
    es_buf_init(&buf);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &buf, s_write);
    msgpack_pack_array(&pk, 4);
    msgpack_pack_uint8(&pk, 1);
    msgpack_pack_uint8(&pk, ES_MSG_EVENT);
    msgpack_pack_uint8(&pk, 3);
    msgpack_pack_map(&pk, 2);
    s_pack_str(&pk, "body");
    msgpack_pack_bin(&pk, 5);
    msgpack_pack_bin_body(&pk, "a\0b\xff\x01", 5);
    s_pack_str(&pk, "session");
    s_pack_str(&pk, "s1");
    es_msg_t m;
    assert_int_equal(es_msg_decode(&m, buf.data, buf.len, NULL), 0);
    assert_int_equal(m.u.event.body.len, 5);
    assert_memory_equal(m.u.event.body.ptr, "a\0b\xff\x01", 5);
    assert_string_equal(m.u.event.session, "s1");
    es_buf_release(&buf);
}

//  ---------------------------------------------------------------------------------------------
//  ZeroMQ

static void
s_wait(void *sock)
{
    zmq_pollitem_t item = {sock, 0, ZMQ_POLLIN, 0};
    assert_int_equal(zmq_poll(&item, 1, 5000), 1);
}

static void
test_zmq_send_recv(void **state)
{
    (void)state;
    void *ctx = zmq_ctx_new();
    assert_non_null(ctx);
    void *router = zmq_socket(ctx, ZMQ_ROUTER);
    void *dealer = zmq_socket(ctx, ZMQ_DEALER);
    assert_non_null(router);
    assert_non_null(dealer);
    int zero = 0;
    assert_int_equal(zmq_setsockopt(router, ZMQ_LINGER, &zero, sizeof zero), 0);
    assert_int_equal(zmq_setsockopt(dealer, ZMQ_LINGER, &zero, sizeof zero), 0);
    assert_int_equal(zmq_setsockopt(dealer, ZMQ_ROUTING_ID, "actor-1", 7), 0);
    assert_int_equal(zmq_bind(router, "inproc://test_es_msg"), 0);
    assert_int_equal(zmq_connect(dealer, "inproc://test_es_msg"), 0);

    es_msg_in_t in;
    es_msg_in_init(&in);
    es_err_t err = {ES_OK, ""};
    //  Nothing waiting.
    assert_int_equal(es_msg_recv(router, true, &in, &err), 0);

    //  DEALER -> ROUTER, every type.
    for (size_t i = 0; i < NDEFS; i++) {
        es_msg_t out;
        s_fill(&out, s_defs[i].type);
        assert_int_equal(es_msg_send(dealer, NULL, 0, &out, &err), 0);
        s_wait(router);
        assert_int_equal(es_msg_recv(router, true, &in, &err), 1);
        assert_int_equal(in.route_len, 7);
        assert_memory_equal(in.route, "actor-1", 7);
        s_assert_equal(&out, &in.msg);
    }
    //  ROUTER -> DEALER with the route frame.
    es_msg_t reply;
    es_msg_init(&reply, ES_MSG_REPLY, 77);
    reply.u.reply.code = 2461;
    reply.u.reply.what = s_slice("busy");
    reply.u.reply.body = s_slice("{}");
    assert_int_equal(es_msg_send(router, in.route, in.route_len, &reply, &err), 0);
    s_wait(dealer);
    assert_int_equal(es_msg_recv(dealer, false, &in, &err), 1);
    assert_int_equal(in.route_len, 0);
    s_assert_equal(&reply, &in.msg);

    //  A malformed frame is consumed and reported; the next message is fine.
    es_msg_t hb;
    es_msg_init(&hb, ES_MSG_HEARTBEAT, 1);
    hb.u.heartbeat.busy = true;
    assert_int_equal(zmq_send(dealer, "garbage", 7, 0), 7);
    assert_int_equal(es_msg_send(dealer, NULL, 0, &hb, &err), 0);
    s_wait(router);
    assert_int_equal(es_msg_recv(router, true, &in, &err), -1);
    assert_int_equal(err.code, ES_EPROTO);
    assert_string_equal(err.what, "message: expected an array of 4");
    assert_int_equal(es_msg_recv(router, true, &in, &err), 1);
    assert_int_equal(in.msg.type, ES_MSG_HEARTBEAT);
    assert_true(in.msg.u.heartbeat.busy);

    //  Too many frames: all of them consumed, then the error.
    es_buf_t buf;
    es_buf_init(&buf);
    assert_int_equal(es_msg_encode(&hb, &buf, NULL), 0);
    assert_int_equal(zmq_send(dealer, buf.data, buf.len, ZMQ_SNDMORE), (int)buf.len);
    assert_int_equal(zmq_send(dealer, "b", 1, ZMQ_SNDMORE), 1);
    assert_int_equal(zmq_send(dealer, "c", 1, 0), 1);
    assert_int_equal(es_msg_send(dealer, NULL, 0, &hb, &err), 0);
    s_wait(router);
    assert_int_equal(es_msg_recv(router, true, &in, &err), -1);
    assert_int_equal(err.code, ES_EPROTO);
    assert_string_equal(err.what, "message: 4 frames, expected 2 (route, body)");
    assert_int_equal(es_msg_recv(router, true, &in, &err), 1);
    assert_int_equal(in.msg.type, ES_MSG_HEARTBEAT);
    assert_int_equal(es_msg_recv(router, true, &in, &err), 0);

    //  Missing route frame: the dealer side expects one but gets only the body.
    assert_int_equal(es_msg_send(router, "actor-1", 7, &hb, &err), 0);
    assert_int_equal(es_msg_send(router, "actor-1", 7, &reply, &err), 0);
    s_wait(dealer);
    assert_int_equal(es_msg_recv(dealer, true, &in, &err), -1);
    assert_int_equal(err.code, ES_EPROTO);
    assert_string_equal(err.what, "message: 1 frame, expected 2 (route, body)");
    //  Two frames where one is expected.
    assert_int_equal(zmq_send(router, "actor-1", 7, ZMQ_SNDMORE), 7);
    assert_int_equal(zmq_send(router, buf.data, buf.len, ZMQ_SNDMORE), (int)buf.len);
    assert_int_equal(zmq_send(router, buf.data, buf.len, 0), (int)buf.len);
    assert_int_equal(es_msg_recv(dealer, false, &in, &err), 1); //  the queued REPLY
    assert_int_equal(in.msg.type, ES_MSG_REPLY);
    s_wait(dealer);
    assert_int_equal(es_msg_recv(dealer, false, &in, &err), -1);
    assert_string_equal(err.what, "message: 2 frames, expected 1");
    assert_int_equal(es_msg_recv(dealer, false, &in, &err), 0);
    //  An over-long route frame.
    char longroute[300];
    memset(longroute, 'r', sizeof longroute);
    assert_int_equal(zmq_send(router, "actor-1", 7, ZMQ_SNDMORE), 7);
    assert_int_equal(zmq_send(router, longroute, sizeof longroute, ZMQ_SNDMORE), 300);
    assert_int_equal(zmq_send(router, buf.data, buf.len, 0), (int)buf.len);
    s_wait(dealer);
    assert_int_equal(es_msg_recv(dealer, true, &in, &err), -1);
    assert_string_equal(err.what, "message: route frame too long (max 256 bytes)");
    es_buf_release(&buf);

    //  Encode errors surface from send, nothing is sent.
    es_msg_t badmsg;
    es_msg_init(&badmsg, ES_MSG_CANCEL, 1);
    memset(badmsg.u.cancel.session, 'x', sizeof badmsg.u.cancel.session);
    assert_int_equal(es_msg_send(dealer, NULL, 0, &badmsg, &err), -1);
    assert_int_equal(err.code, ES_EINVAL);
    assert_string_equal(err.what, "CANCEL.session: string too long (max 128 bytes)");
    assert_int_equal(es_msg_recv(router, true, &in, &err), 0);

    //  A socket error is ES_ESYS.
    void *pub = zmq_socket(ctx, ZMQ_PUB);
    assert_non_null(pub);
    assert_int_equal(es_msg_recv(pub, false, &in, &err), -1);
    assert_int_equal(err.code, ES_ESYS);
    assert_string_equal(err.what, "message: receive: Operation not supported");
    void *sub = zmq_socket(ctx, ZMQ_SUB);
    assert_non_null(sub);
    assert_int_equal(es_msg_send(sub, NULL, 0, &hb, &err), -1);
    assert_int_equal(err.code, ES_ESYS);
    assert_string_equal(err.what, "HEARTBEAT: send: Operation not supported");
    assert_int_equal(es_msg_send(sub, "r", 1, &hb, &err), -1);
    assert_string_equal(err.what, "HEARTBEAT: send route: Operation not supported");

    es_msg_in_release(&in);
    es_msg_in_release(&in); //  safe twice
    assert_int_equal(zmq_close(sub), 0);
    assert_int_equal(zmq_close(pub), 0);
    assert_int_equal(zmq_close(dealer), 0);
    assert_int_equal(zmq_close(router), 0);
    assert_int_equal(zmq_ctx_term(ctx), 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_roundtrip_every_type),
        cmocka_unit_test(test_roundtrip_boundaries),
        cmocka_unit_test(test_encode_errors),
        cmocka_unit_test(test_every_prefix_fails),
        cmocka_unit_test(test_trailing_bytes),
        cmocka_unit_test(test_wrong_type_every_field),
        cmocka_unit_test(test_missing_every_field),
        cmocka_unit_test(test_string_lengths),
        cmocka_unit_test(test_int_ranges),
        cmocka_unit_test(test_unknown_keys_skipped),
        cmocka_unit_test(test_duplicate_key_last_wins),
        cmocka_unit_test(test_header_errors),
        cmocka_unit_test(test_header_errors2),
        cmocka_unit_test(test_text_accepts_bin),
        cmocka_unit_test(test_zmq_send_recv),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
