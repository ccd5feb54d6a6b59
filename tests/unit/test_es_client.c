//  test_es_client - libedgesync against a fake daemon (ROUTER + PUB on ipc sockets in a mkdtemp
//  directory, served by a thread): request encoding, the SYNC flow, error replies, keepalive
//  probes, subscriptions, unreachable endpoints and malformed replies; local-data operations
//  (LOCAL): encoding of every op, argument checks before sending, daemon refusals.
#include "client/edgesync.h"
#include "common/es_buf.h"
#include "common/es_mem.h"
#include "protocol/es_msg.h"
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

//  cmocka needs the headers above first.
#include <cmocka.h>

#define MAX_REQ 64

typedef struct fake fake_t;
typedef void(handler_t)(fake_t *f, const es_msg_in_t *in);

typedef struct {
    es_msg_type_t type; //  request type
    uint64_t id;        //  request id
    es_msg_t msg;       //  decoded (slices not valid: see the copies)
    char slice1[256];   //  SYNC options / GET pk / LOCAL pk
    char slice2[256];   //  GET filter / LOCAL record
    char slice3[256];   //  LOCAL options
} captured_t;

struct fake {
    char dir[64];                //  mkdtemp directory
    char cmd_ep[128];            //  ipc://dir/cmd.sock
    char ev_ep[128];             //  ipc://dir/events.sock
    void *zctx;                  //  the fake's own context
    void *router;                //  command socket
    void *pub;                   //  event socket
    pthread_t thread;            //  serves the router
    volatile int stop;           //  ends the thread
    volatile int pub_stop;       //  ends s_publisher
    handler_t *volatile handler; //  answers each request
    pthread_mutex_t lock;        //  guards what follows
    captured_t req[MAX_REQ];     //  requests received
    size_t nreq;                 //  how many
    size_t prefix;               //  for h_prefix: bytes of the reply to send
};

static void
s_copy_slice(char *dst, size_t size, es_slice_t s)
{
    snprintf(dst, size, "%.*s", (int)s.len, s.ptr ? s.ptr : "");
}

static void *
s_serve(void *arg)
{
    fake_t *f = arg;
    while (!f->stop) {
        zmq_pollitem_t item = {f->router, 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&item, 1, 20) <= 0)
            continue;
        es_msg_in_t in;
        es_msg_in_init(&in);
        es_err_t err;
        if (es_msg_recv(f->router, true, &in, &err) == 1) {
            pthread_mutex_lock(&f->lock);
            if (f->nreq < MAX_REQ) {
                captured_t *c = &f->req[f->nreq++];
                c->type = in.msg.type;
                c->id = in.msg.request_id;
                c->msg = in.msg;
                if (in.msg.type == ES_MSG_SYNC)
                    s_copy_slice(c->slice1, sizeof c->slice1, in.msg.u.sync.options);
                if (in.msg.type == ES_MSG_GET) {
                    s_copy_slice(c->slice1, sizeof c->slice1, in.msg.u.get.pk);
                    s_copy_slice(c->slice2, sizeof c->slice2, in.msg.u.get.filter);
                }
                if (in.msg.type == ES_MSG_LOCAL) {
                    s_copy_slice(c->slice1, sizeof c->slice1, in.msg.u.local.pk);
                    s_copy_slice(c->slice2, sizeof c->slice2, in.msg.u.local.record);
                    s_copy_slice(c->slice3, sizeof c->slice3, in.msg.u.local.options);
                }
            }
            pthread_mutex_unlock(&f->lock);
            if (f->handler)
                f->handler(f, &in);
        }
        es_msg_in_release(&in);
    }
    return NULL;
}

static void
s_send(fake_t *f, const es_msg_in_t *in, const es_msg_t *m)
{
    es_err_t err;
    int rc = es_msg_send(f->router, in->route, in->route_len, m, &err);
    if (rc)
        fprintf(stderr, "fake: send: %s\n", err.what);
}

static void
s_reply(fake_t *f, const es_msg_in_t *in, int32_t code, const char *what, const char *body)
{
    es_msg_t m;
    es_msg_init(&m, ES_MSG_REPLY, in->msg.request_id);
    m.u.reply.code = code;
    m.u.reply.what = (es_slice_t){what, strlen(what)};
    m.u.reply.body = (es_slice_t){body, strlen(body)};
    s_send(f, in, &m);
}

static void
s_event(fake_t *f, const es_msg_in_t *in, uint64_t id, const char *session, const char *body)
{
    es_msg_t m;
    es_msg_init(&m, ES_MSG_EVENT, id);
    snprintf(m.u.event.session, sizeof m.u.event.session, "%s", session);
    m.u.event.body = (es_slice_t){body, strlen(body)};
    s_send(f, in, &m);
}

static void
s_result(fake_t *f, const es_msg_in_t *in, uint64_t id, int32_t code, const char *body)
{
    es_msg_t m;
    es_msg_init(&m, ES_MSG_RESULT, id);
    snprintf(m.u.result.session, sizeof m.u.result.session, "s1");
    m.u.result.code = code;
    m.u.result.body = (es_slice_t){body, strlen(body)};
    s_send(f, in, &m);
}

static void
s_publish(fake_t *f, es_msg_type_t type, const char *session, const char *body)
{
    es_msg_t m;
    es_msg_init(&m, type, 0);
    char topic[160];
    if (type == ES_MSG_EVENT) {
        snprintf(m.u.event.session, sizeof m.u.event.session, "%s", session);
        m.u.event.body = (es_slice_t){body, strlen(body)};
        snprintf(topic, sizeof topic, "progress.%s", session);
    } else {
        snprintf(m.u.result.session, sizeof m.u.result.session, "%s", session);
        m.u.result.body = (es_slice_t){body, strlen(body)};
        snprintf(topic, sizeof topic, "result.%s", session);
    }
    //  Runs in the fake's threads: report, do not assert (cmocka asserts belong to the test).
    es_err_t err;
    if (zmq_send(f->pub, topic, strlen(topic), ZMQ_SNDMORE) == -1)
        fprintf(stderr, "fake: publish topic: %s\n", zmq_strerror(errno));
    else if (es_msg_send(f->pub, NULL, 0, &m, &err))
        fprintf(stderr, "fake: publish: %s\n", err.what);
}

static int
s_setup(void **state)
{
    fake_t *f = es_calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/es_client_XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->cmd_ep, sizeof f->cmd_ep, "ipc://%s/cmd.sock", f->dir);
    snprintf(f->ev_ep, sizeof f->ev_ep, "ipc://%s/events.sock", f->dir);
    f->zctx = zmq_ctx_new();
    f->router = zmq_socket(f->zctx, ZMQ_ROUTER);
    f->pub = zmq_socket(f->zctx, ZMQ_PUB);
    int linger = 0;
    zmq_setsockopt(f->router, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(f->pub, ZMQ_LINGER, &linger, sizeof linger);
    assert_int_equal(zmq_bind(f->router, f->cmd_ep), 0);
    assert_int_equal(zmq_bind(f->pub, f->ev_ep), 0);
    pthread_mutex_init(&f->lock, NULL);
    assert_int_equal(pthread_create(&f->thread, NULL, s_serve, f), 0);
    *state = f;
    return 0;
}

static int
s_teardown(void **state)
{
    fake_t *f = *state;
    f->stop = 1;
    pthread_join(f->thread, NULL);
    zmq_close(f->router);
    zmq_close(f->pub);
    zmq_ctx_term(f->zctx);
    char path[160];
    snprintf(path, sizeof path, "%s/cmd.sock", f->dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/events.sock", f->dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/file", f->dir);
    unlink(path);
    rmdir(f->dir);
    pthread_mutex_destroy(&f->lock);
    free(f);
    return 0;
}

static es_client_t *
s_client(fake_t *f, int timeout_ms)
{
    es_client_t *c = es_client_new(f->cmd_ep, timeout_ms);
    assert_non_null(c);
    assert_int_equal(es_client_last_code(), ES_CLIENT_OK);
    assert_string_equal(es_client_last_error(), "");
    return c;
}

static captured_t
s_req(fake_t *f, size_t i)
{
    pthread_mutex_lock(&f->lock);
    assert_true(i < f->nreq);
    captured_t c = f->req[i];
    pthread_mutex_unlock(&f->lock);
    return c;
}

static size_t
s_nreq(fake_t *f)
{
    pthread_mutex_lock(&f->lock);
    size_t n = f->nreq;
    pthread_mutex_unlock(&f->lock);
    return n;
}

//  --- handlers ----------------------------------------------------------------------------

static void
h_echo(fake_t *f, const es_msg_in_t *in)
{
    char body[64];
    snprintf(body, sizeof body, "{\"type\":\"%s\"}", es_msg_name(in->msg.type));
    if (in->msg.type == ES_MSG_GET) {
        //  Two pages: the client must ask again with "after" = the first page's "next".
        if (in->msg.u.get.after.len == 0)
            snprintf(body, sizeof body,
                     "{\"records\":[{\"n\":1}],\"more\":true,"
                     "\"next\":{\"id\":1}}");
        else
            snprintf(body, sizeof body, "{\"records\":[{\"n\":2}],\"more\":false}");
    }
    s_reply(f, in, 0, "", body);
}

static void
h_not_found(fake_t *f, const es_msg_in_t *in)
{
    s_reply(f, in, 5, "session 'zz': not found", "{\"code\":5}");
}

static void
h_error_no_text(fake_t *f, const es_msg_in_t *in)
{
    s_reply(f, in, 2483, "", "");
}

static void
h_silent(fake_t *f, const es_msg_in_t *in)
{
    (void)f;
    (void)in;
}

static void
h_sync_ok(fake_t *f, const es_msg_in_t *in)
{
    uint64_t id = in->msg.request_id;
    //  A stale message of an earlier request first: the client must skip it.
    s_event(f, in, id + 1000, "old", "{\"stale\":true}");
    s_reply(f, in, 0, "", "{\"session\":\"s1\"}");
    s_event(f, in, id, "s1",
            "{\"session\":\"s1\",\"phase\":\"Sync\",\"state\":\"Started\",\"name\":\"Customer\","
            "\"totalObjectsToSync\":1,\"objects\":[\"Customer\"]}");
    s_result(f, in, id + 7, 2460, "{\"stale\":1}");
    s_event(f, in, id, "s1",
            "{\"session\":\"s1\",\"phase\":\"Download\",\"state\":\"Ended\",\"name\":\"Customer\","
            "\"batchNumber\":1,\"totalDownloadedRecords\":500}");
    s_event(f, in, id, "s1",
            "{\"session\":\"s1\",\"phase\":\"Sync\",\"state\":\"Ended\",\"name\":\"Customer\"}");
    s_result(f, in, id, 0, "{\"status\":0,\"name\":\"Customer\"}");
}

static void
h_sync_refused(fake_t *f, const es_msg_in_t *in)
{
    s_reply(f, in, 2477, "Invalid value found for syncType option",
            "{\"code\":2477,\"message\":\"Invalid value found for syncType option\","
            "\"domain\":\"OfflineObjectsError\",\"status\":-1}");
}

static void
h_sync_busy(fake_t *f, const es_msg_in_t *in)
{
    s_reply(f, in, 2461, "Sync is \"in progress\"", "");
}

static void
h_sync_fails(fake_t *f, const es_msg_in_t *in)
{
    s_reply(f, in, 0, "", "{\"session\":\"s1\"}");
    s_result(f, in, in->msg.request_id, 2478,
             "{\"code\":2478,\"message\":\"Syncing operation has been cancelled\",\"status\":-1}");
}

static void
h_sync_no_session(fake_t *f, const es_msg_in_t *in)
{
    s_reply(f, in, 0, "", "{\"session\":17}");
}

//  Accepts the SYNC and then sends nothing more on it (as a restarted daemon would); answers
//  STATUS probes: "running" first, then the stored result.
static void
h_sync_restart(fake_t *f, const es_msg_in_t *in)
{
    if (in->msg.type == ES_MSG_SYNC) {
        s_reply(f, in, 0, "", "{\"session\":\"s1\"}");
        return;
    }
    pthread_mutex_lock(&f->lock);
    size_t probes = f->nreq - 1;
    pthread_mutex_unlock(&f->lock);
    if (probes == 1)
        s_reply(f, in, 0, "", "{\"session\":\"s1\",\"state\":\"running\"}");
    else
        s_reply(f, in, 0, "",
                "{\"state\":\"done\",\"code\":0,\"result\":{\"status\":0,\"name\":\"X\","
                "\"n\":1.50,\"big\":12345678901234,\"arr\":[true,false,null,\"s\\\"q\\u00e9\"],"
                "\"o\":{}}}");
}

static void
h_sync_restart_failed(fake_t *f, const es_msg_in_t *in)
{
    if (in->msg.type == ES_MSG_SYNC)
        s_reply(f, in, 0, "", "{\"session\":\"s1\"}");
    else
        s_reply(f, in, 0, "", "{\"state\":\"done\",\"code\":2474}");
}

static void
h_sync_then_silent(fake_t *f, const es_msg_in_t *in)
{
    if (in->msg.type == ES_MSG_SYNC)
        s_reply(f, in, 0, "", "{\"session\":\"s1\"}");
}

static void
h_sync_forgotten(fake_t *f, const es_msg_in_t *in)
{
    if (in->msg.type == ES_MSG_SYNC)
        s_reply(f, in, 0, "", "{\"session\":\"s1\"}");
    else
        s_reply(f, in, 5, "session 's1': not found", "");
}

//  Sends the first f->prefix bytes of a valid REPLY frame.
static void
h_prefix(fake_t *f, const es_msg_in_t *in)
{
    es_msg_t m;
    es_msg_init(&m, ES_MSG_REPLY, in->msg.request_id);
    m.u.reply.body = (es_slice_t){"{}", 2};
    es_buf_t b;
    es_buf_init(&b);
    es_err_t err;
    if (es_msg_encode(&m, &b, &err))
        fprintf(stderr, "fake: encode: %s\n", err.what);
    size_t n = f->prefix < b.len ? f->prefix : b.len;
    zmq_send(f->router, in->route, in->route_len, ZMQ_SNDMORE);
    zmq_send(f->router, b.data, n, 0);
    es_buf_release(&b);
}

static void
h_sub_publish(fake_t *f, const es_msg_in_t *in)
{
    //  The first STATUS comes after the subscription settled: answer, then publish.
    s_reply(f, in, 0, "", "{\"state\":\"running\"}");
    s_publish(f, ES_MSG_EVENT, "s10", "{\"session\":\"s10\"}");
    s_publish(f, ES_MSG_EVENT, "s1", "{\"session\":\"s1\",\"phase\":\"Download\"}");
    s_publish(f, ES_MSG_RESULT, "s1", "{\"status\":0}");
}

static void
h_sub_done(fake_t *f, const es_msg_in_t *in)
{
    s_reply(f, in, 0, "",
            "{\"state\":\"done\",\"code\":0,\"result\":{\"status\":0,\"name\":\"C\"}}");
}

//  LOCAL: create answers with a key, the others name their op; a few keys and records trigger
//  the daemon's refusals and odd replies.
static void
h_local(fake_t *f, const es_msg_in_t *in)
{
    const es_local_t *l = &in->msg.u.local;
    char pk[64], record[64], body[128];
    s_copy_slice(pk, sizeof pk, l->pk);
    s_copy_slice(record, sizeof record, l->record);
    if (strcmp(record, "{\"deferred\":1}") == 0)
        s_reply(f, in, 2314, "record has deferred changes",
                "{\"code\":2314,\"message\":\"record has deferred changes\"}");
    else if (strcmp(pk, "404") == 0)
        s_reply(f, in, 5, "", "");
    else if (strcmp(pk, "\"bad-reply\"") == 0)
        s_reply(f, in, 0, "", "[1,2]");
    else if (strcmp(pk, "\"empty-reply\"") == 0)
        s_reply(f, in, 0, "", "");
    else if (strcmp(l->op, "create") == 0)
        s_reply(f, in, 0, "", "{\"pk\":{\"id\":-1}}");
    else {
        snprintf(body, sizeof body, "{\"op\":\"%s\"}", l->op);
        s_reply(f, in, 0, "", body);
    }
}

//  --- collecting callbacks ---------------------------------------------------------------

typedef struct {
    int successes, failures;
    char last[1024];
    char progress[8][512];
    int nprogress;
} seen_t;

static void
cb_success(void *ctx, const char *json)
{
    seen_t *s = ctx;
    s->successes++;
    snprintf(s->last, sizeof s->last, "%s", json);
}

static void
cb_failure(void *ctx, const char *json)
{
    seen_t *s = ctx;
    s->failures++;
    snprintf(s->last, sizeof s->last, "%s", json);
}

static void
cb_progress(void *ctx, const char *json)
{
    seen_t *s = ctx;
    if (s->nprogress < 8)
        snprintf(s->progress[s->nprogress], sizeof s->progress[0], "%s", json);
    s->nprogress++;
}

//  --- tests -------------------------------------------------------------------------------

static void
test_requests_encoded(void **state)
{
    fake_t *f = *state;
    f->handler = h_echo;
    es_client_t *c = s_client(f, 2000);
    char *body = es_client_setup(c, "OrderSvc");
    assert_string_equal(body, "{\"type\":\"SETUP\"}");
    free(body);
    body = es_client_get(c, "OrderSvc", "Customer", "{\"id\":7}", "name eq 'x'", 25);
    assert_string_equal(body, "{\"records\":[{\"n\":1},{\"n\":2}],\"count\":2}");
    free(body);
    body = es_client_get(c, "OrderSvc", "Customer", NULL, NULL, 0);
    assert_string_equal(body, "{\"records\":[{\"n\":1},{\"n\":2}],\"count\":2}");
    free(body);
    body = es_client_status(c, NULL);
    assert_string_equal(body, "{\"type\":\"STATUS\"}");
    free(body);
    body = es_client_status(c, "s9");
    free(body);
    body = es_client_stats(c, "Customer");
    assert_string_equal(body, "{\"type\":\"STATS\"}");
    free(body);
    body = es_client_cancel(c, "s9");
    assert_string_equal(body, "{\"type\":\"CANCEL\"}");
    free(body);
    assert_int_equal(es_client_last_code(), ES_CLIENT_OK);
    assert_null(es_client_last_body(c));
    assert_int_equal(s_nreq(f), 9);

    captured_t r = s_req(f, 0);
    assert_int_equal(r.type, ES_MSG_SETUP);
    assert_string_equal(r.msg.u.setup.service, "OrderSvc");
    r = s_req(f, 1);
    assert_int_equal(r.type, ES_MSG_GET);
    assert_string_equal(r.msg.u.get.service, "OrderSvc");
    assert_string_equal(r.msg.u.get.object, "Customer");
    assert_string_equal(r.slice1, "{\"id\":7}");
    assert_string_equal(r.slice2, "name eq 'x'");
    assert_int_equal(r.msg.u.get.limit, 25);
    r = s_req(f, 2);
    assert_int_equal(r.type, ES_MSG_GET);
    assert_int_equal(r.msg.u.get.limit, 24); //  one record already received
    r = s_req(f, 3);
    assert_string_equal(r.slice1, "");
    assert_string_equal(r.slice2, "");
    assert_int_equal(r.msg.u.get.limit, 0);
    r = s_req(f, 5);
    assert_int_equal(r.type, ES_MSG_STATUS);
    assert_string_equal(r.msg.u.status.session, "");
    r = s_req(f, 6);
    assert_string_equal(r.msg.u.status.session, "s9");
    r = s_req(f, 7);
    assert_int_equal(r.type, ES_MSG_STATS);
    assert_string_equal(r.msg.u.stats.entity, "Customer");
    r = s_req(f, 8);
    assert_int_equal(r.type, ES_MSG_CANCEL);
    assert_string_equal(r.msg.u.cancel.session, "s9");
    //  Every request has its own id.
    for (size_t i = 0; i < 9; i++) {
        assert_int_not_equal(s_req(f, i).id, 0);
        for (size_t k = 0; k < i; k++)
            assert_int_not_equal(s_req(f, i).id, s_req(f, k).id);
    }
    es_client_destroy(&c);
    assert_null(c);
    es_client_destroy(&c); //  safe twice
}

static void
test_sync_flow(void **state)
{
    fake_t *f = *state;
    f->handler = h_sync_ok;
    es_client_t *c = s_client(f, 2000);
    seen_t seen = {0};
    int rc = es_obj_start_sync(c, "OrderSvc", "Customer", "{\"syncType\":\"downloadOnly\"}",
                               cb_success, cb_failure, cb_progress, &seen);
    assert_int_equal(rc, 0);
    assert_int_equal(seen.successes, 1);
    assert_int_equal(seen.failures, 0);
    assert_string_equal(seen.last, "{\"status\":0,\"name\":\"Customer\"}");
    assert_int_equal(seen.nprogress, 3);
    assert_string_equal(seen.progress[0],
                        "{\"session\":\"s1\",\"phase\":\"Sync\",\"state\":\"Started\",\"name\":"
                        "\"Customer\",\"totalObjectsToSync\":1,\"objects\":[\"Customer\"]}");
    assert_string_equal(seen.progress[1],
                        "{\"session\":\"s1\",\"phase\":\"Download\",\"state\":\"Ended\",\"name\":"
                        "\"Customer\",\"batchNumber\":1,\"totalDownloadedRecords\":500}");
    assert_string_equal(seen.progress[2], "{\"session\":\"s1\",\"phase\":\"Sync\",\"state\":"
                                          "\"Ended\",\"name\":\"Customer\"}");
    captured_t r = s_req(f, 0);
    assert_int_equal(r.type, ES_MSG_SYNC);
    assert_string_equal(r.msg.u.sync.level, "object");
    assert_string_equal(r.msg.u.sync.service, "OrderSvc");
    assert_string_equal(r.msg.u.sync.object, "Customer");
    assert_string_equal(r.slice1, "{\"syncType\":\"downloadOnly\"}");

    //  Service and app level; NULL options become "{}"; callbacks may be NULL.
    assert_int_equal(es_objsvc_start_sync(c, "OrderSvc", NULL, NULL, NULL, NULL, NULL), 0);
    r = s_req(f, 1);
    assert_string_equal(r.msg.u.sync.level, "service");
    assert_string_equal(r.msg.u.sync.service, "OrderSvc");
    assert_string_equal(r.msg.u.sync.object, "");
    assert_string_equal(r.slice1, "{}");
    assert_int_equal(es_app_start_sync(c, "", cb_success, cb_failure, NULL, &seen), 0);
    r = s_req(f, 2);
    assert_string_equal(r.msg.u.sync.level, "app");
    assert_string_equal(r.msg.u.sync.service, "");
    assert_string_equal(r.slice1, "{}");
    assert_int_equal(seen.successes, 2);
    es_client_destroy(&c);
}

static void
test_sync_refused_and_failed(void **state)
{
    fake_t *f = *state;
    es_client_t *c = s_client(f, 2000);
    seen_t seen = {0};
    f->handler = h_sync_refused;
    int rc = es_obj_start_sync(c, "S", "O", "{\"syncType\":\"x\"}", cb_success, cb_failure,
                               cb_progress, &seen);
    assert_int_equal(rc, 1);
    assert_int_equal(seen.failures, 1);
    assert_int_equal(seen.successes, 0);
    assert_string_equal(seen.last, "{\"code\":2477,\"message\":\"Invalid value found for syncType "
                                   "option\",\"domain\":\"OfflineObjectsError\",\"status\":-1}");
    //  A refusal without a body gets a failure object built from the code and text.
    f->handler = h_sync_busy;
    rc = es_objsvc_start_sync(c, "S", NULL, cb_success, cb_failure, cb_progress, &seen);
    assert_int_equal(rc, 1);
    assert_int_equal(seen.failures, 2);
    assert_string_equal(seen.last, "{\"code\":2461,\"message\":\"Sync is \\\"in progress\\\"\","
                                   "\"domain\":\"OfflineObjectsError\",\"status\":-1}");
    //  Accepted, then failed.
    f->handler = h_sync_fails;
    rc = es_app_start_sync(c, NULL, cb_success, cb_failure, cb_progress, &seen);
    assert_int_equal(rc, 1);
    assert_int_equal(seen.failures, 3);
    assert_string_equal(seen.last, "{\"code\":2478,\"message\":\"Syncing operation has been "
                                   "cancelled\",\"status\":-1}");
    assert_int_equal(seen.nprogress, 0);
    //  A reply without a session id is a protocol error: no callback.
    f->handler = h_sync_no_session;
    rc = es_app_start_sync(c, NULL, cb_success, cb_failure, cb_progress, &seen);
    assert_int_equal(rc, -1);
    assert_int_equal(seen.failures, 3);
    assert_int_equal(es_client_last_code(), ES_CLIENT_EPROTO);
    assert_string_equal(es_client_last_error(),
                        "SYNC: reply body has no valid \"session\": {\"session\":17}");
    es_client_destroy(&c);
}

static void
test_sync_result_by_status(void **state)
{
    fake_t *f = *state;
    f->handler = h_sync_restart;
    es_client_t *c = s_client(f, 2000);
    es_client_set_keepalive(c, 50, 2000);
    seen_t seen = {0};
    int rc = es_obj_start_sync(c, "S", "O", NULL, cb_success, cb_failure, cb_progress, &seen);
    assert_int_equal(rc, 0);
    assert_int_equal(seen.successes, 1);
    assert_string_equal(seen.last, "{\"status\":0,\"name\":\"X\",\"n\":1.50,\"big\":12345678901234,"
                                   "\"arr\":[true,false,null,\"s\\\"q\xc3\xa9\"],\"o\":{}}");
    assert_int_equal(s_nreq(f), 3);
    captured_t r = s_req(f, 1);
    assert_int_equal(r.type, ES_MSG_STATUS);
    assert_string_equal(r.msg.u.status.session, "s1");

    //  Done and failed, without a stored result: a failure object from the code.
    pthread_mutex_lock(&f->lock);
    f->nreq = 0;
    pthread_mutex_unlock(&f->lock);
    f->handler = h_sync_restart_failed;
    rc = es_obj_start_sync(c, "S", "O", NULL, cb_success, cb_failure, cb_progress, &seen);
    assert_int_equal(rc, 1);
    assert_string_equal(seen.last, "{\"code\":2474,\"message\":\"sync failed\",\"domain\":"
                                   "\"OfflineObjectsError\",\"status\":-1}");
    es_client_destroy(&c);
}

static void
test_sync_daemon_gone(void **state)
{
    fake_t *f = *state;
    es_client_t *c = s_client(f, 2000);
    es_client_set_keepalive(c, 30, 300);
    seen_t seen = {0};
    f->handler = h_sync_then_silent;
    int rc = es_obj_start_sync(c, "S", "O", NULL, cb_success, cb_failure, cb_progress, &seen);
    assert_int_equal(rc, -1);
    assert_int_equal(es_client_last_code(), ES_CLIENT_ETIMEOUT);
    char want[256];
    snprintf(want, sizeof want,
             "daemon at %s stopped answering: nothing for 300 ms while waiting for the result of "
             "session s1",
             f->cmd_ep);
    assert_string_equal(es_client_last_error(), want);
    assert_true(s_nreq(f) >= 3); //  the SYNC and several probes
    assert_int_equal(seen.successes + seen.failures, 0);

    f->handler = h_sync_forgotten;
    rc = es_obj_start_sync(c, "S", "O", NULL, cb_success, cb_failure, cb_progress, &seen);
    assert_int_equal(rc, -1);
    assert_int_equal(es_client_last_code(), ES_CLIENT_ENOSESSION);
    assert_string_equal(es_client_last_error(),
                        "session s1: unknown to the daemon (session 's1': not found)");
    es_client_destroy(&c);
}

static void
test_error_replies(void **state)
{
    fake_t *f = *state;
    es_client_t *c = s_client(f, 2000);
    f->handler = h_not_found;
    assert_null(es_client_status(c, "zz"));
    assert_int_equal(es_client_last_code(), 5);
    assert_string_equal(es_client_last_error(), "session 'zz': not found");
    assert_string_equal(es_client_last_body(c), "{\"code\":5}");
    f->handler = h_error_no_text;
    assert_null(es_client_setup(c, NULL));
    assert_int_equal(es_client_last_code(), 2483);
    assert_string_equal(es_client_last_error(), "SETUP: daemon replied with code 2483");
    assert_null(es_client_last_body(c));
    //  A success clears the error.
    f->handler = h_echo;
    char *body = es_client_stats(c, NULL);
    assert_string_equal(body, "{\"type\":\"STATS\"}");
    free(body);
    assert_int_equal(es_client_last_code(), 0);
    assert_string_equal(es_client_last_error(), "");
    es_client_destroy(&c);
}

static void
test_timeout_and_interrupt(void **state)
{
    fake_t *f = *state;
    es_client_t *c = s_client(f, 150);
    f->handler = h_silent;
    assert_null(es_client_stats(c, "X"));
    assert_int_equal(es_client_last_code(), ES_CLIENT_ETIMEOUT);
    char want[256];
    snprintf(want, sizeof want,
             "no reply from the daemon at %s within 150 ms (is edgesyncd running?)", f->cmd_ep);
    assert_string_equal(es_client_last_error(), want);
    seen_t seen = {0};
    assert_int_equal(es_app_start_sync(c, NULL, cb_success, cb_failure, cb_progress, &seen), -1);
    assert_string_equal(es_client_last_error(), want);

    volatile sig_atomic_t flag = 1;
    es_client_set_interrupt(c, &flag);
    assert_null(es_client_status(c, NULL));
    assert_int_equal(es_client_last_code(), ES_CLIENT_EINTR);
    assert_string_equal(es_client_last_error(), "interrupted");
    es_client_destroy(&c);
}

static void
test_bad_arguments(void **state)
{
    fake_t *f = *state;
    es_client_t *c = s_client(f, 500);
    seen_t seen = {0};
    char longname[ES_CLIENT_NAME_MAX + 2];
    memset(longname, 'a', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    assert_int_equal(es_obj_start_sync(c, "S", NULL, NULL, cb_success, cb_failure, NULL, &seen),
                     -1);
    assert_int_equal(es_client_last_code(), ES_CLIENT_EINVAL);
    assert_string_equal(es_client_last_error(), "object: must not be empty");
    assert_int_equal(es_obj_start_sync(c, "", "O", NULL, NULL, NULL, NULL, NULL), -1);
    assert_string_equal(es_client_last_error(), "service: must not be empty");
    assert_int_equal(es_objsvc_start_sync(c, longname, NULL, NULL, NULL, NULL, NULL), -1);
    assert_string_equal(es_client_last_error(), "service: longer than 128 bytes (129)");
    assert_null(es_client_get(c, "S", longname, NULL, NULL, 0));
    assert_string_equal(es_client_last_error(), "object: longer than 128 bytes (129)");
    assert_null(es_client_cancel(c, ""));
    assert_string_equal(es_client_last_error(), "session: must not be empty");
    assert_null(es_client_stats(c, longname));
    assert_string_equal(es_client_last_error(), "entity: longer than 128 bytes (129)");
    assert_int_equal(s_nreq(f), 0); //  nothing was sent
    //  Exactly the limit is fine.
    longname[ES_CLIENT_NAME_MAX] = '\0';
    f->handler = h_echo;
    char *body = es_client_setup(c, longname);
    assert_non_null(body);
    free(body);
    assert_string_equal(s_req(f, 0).msg.u.setup.service, longname);
    assert_int_equal(seen.successes + seen.failures, 0);
    es_client_destroy(&c);
}

//  One LOCAL request as the fake received it.
static void
s_check_local(fake_t *f, size_t i, const char *op, const char *service, const char *object,
              const char *pk, const char *record, const char *options)
{
    captured_t r = s_req(f, i);
    assert_int_equal(r.type, ES_MSG_LOCAL);
    assert_string_equal(r.msg.u.local.op, op);
    assert_string_equal(r.msg.u.local.service, service);
    assert_string_equal(r.msg.u.local.object, object);
    assert_string_equal(r.slice1, pk);
    assert_string_equal(r.slice2, record);
    assert_string_equal(r.slice3, options);
}

//  The body of a call that must succeed, compared and freed.
static void
s_body_is(char *body, const char *want)
{
    assert_non_null(body);
    assert_string_equal(body, want);
    free(body);
    assert_int_equal(es_client_last_code(), ES_CLIENT_OK);
    assert_string_equal(es_client_last_error(), "");
}

static void
test_local_encoded(void **state)
{
    fake_t *f = *state;
    f->handler = h_local;
    es_client_t *c = s_client(f, 2000);
    s_body_is(es_client_create(c, "SampleSvc", "Product", "{\"name\":\"x\",\"qty\":2}", NULL),
              "{\"pk\":{\"id\":-1}}");
    s_check_local(f, 0, "create", "SampleSvc", "Product", "", "{\"name\":\"x\",\"qty\":2}", "{}");
    s_body_is(es_client_create(c, "SampleSvc", "Product", "{}", "{\"trackChanges\":false}"),
              "{\"pk\":{\"id\":-1}}");
    s_check_local(f, 1, "create", "SampleSvc", "Product", "", "{}", "{\"trackChanges\":false}");
    s_body_is(es_client_update(c, "SampleSvc", "Product", "\"SKU-1\"", "{\"qty\":3}", ""),
              "{\"op\":\"update\"}");
    s_check_local(f, 2, "update", "SampleSvc", "Product", "\"SKU-1\"", "{\"qty\":3}", "{}");
    s_body_is(es_client_partial_update(c, "OrderSvc", "OrderLine", "{\"orderId\":1,\"lineNo\":2}",
                                       "{\"qty\":1}", "{\"markForUpload\":false}"),
              "{\"op\":\"partialupdate\"}");
    s_check_local(f, 3, "partialupdate", "OrderSvc", "OrderLine", "{\"orderId\":1,\"lineNo\":2}",
                  "{\"qty\":1}", "{\"markForUpload\":false}");
    s_body_is(es_client_delete(c, "SampleSvc", "Product", "-3", NULL), "{\"op\":\"delete\"}");
    s_check_local(f, 4, "delete", "SampleSvc", "Product", "-3", "", "{}");
    s_body_is(es_client_pending(c, "SampleSvc", "Product"), "{\"op\":\"pending\"}");
    s_check_local(f, 5, "pending", "SampleSvc", "Product", "", "", "{}");
    s_body_is(es_client_pending(c, "SampleSvc", NULL), "{\"op\":\"pending\"}");
    s_check_local(f, 6, "pending", "SampleSvc", "", "", "", "{}");
    s_body_is(es_client_pending(c, NULL, NULL), "{\"op\":\"pending\"}");
    s_check_local(f, 7, "pending", "", "", "", "", "{}");
    s_body_is(es_client_rollback(c, NULL, NULL, NULL), "{\"op\":\"rollback\"}");
    s_check_local(f, 8, "rollback", "", "", "", "", "{}");
    s_body_is(es_client_rollback(c, "SampleSvc", "", ""), "{\"op\":\"rollback\"}");
    s_check_local(f, 9, "rollback", "SampleSvc", "", "", "", "{}");
    s_body_is(es_client_rollback(c, "SampleSvc", "Product", "7"), "{\"op\":\"rollback\"}");
    s_check_local(f, 10, "rollback", "SampleSvc", "Product", "7", "", "{}");
    s_body_is(es_client_clear(c, "SampleSvc", NULL, NULL), "{\"op\":\"clear\"}");
    s_check_local(f, 11, "clear", "SampleSvc", "", "", "", "{}");
    s_body_is(es_client_clear(c, "SampleSvc", "Product", "{\"id\":7}"), "{\"op\":\"clear\"}");
    s_check_local(f, 12, "clear", "SampleSvc", "Product", "{\"id\":7}", "", "{}");
    s_body_is(es_client_mark_for_upload(c, "SampleSvc", NULL), "{\"op\":\"markforupload\"}");
    s_check_local(f, 13, "markforupload", "SampleSvc", "", "", "", "{}");
    s_body_is(es_client_mark_for_upload(c, "SampleSvc", "Product"), "{\"op\":\"markforupload\"}");
    s_check_local(f, 14, "markforupload", "SampleSvc", "Product", "", "", "{}");
    //  The generic call sends the same; a boolean key and whitespace are JSON too.
    s_body_is(es_client_local(c, "delete", "S", "O", " true ", NULL, " { } "),
              "{\"op\":\"delete\"}");
    s_check_local(f, 15, "delete", "S", "O", " true ", "", " { } ");
    //  Names of exactly the limit pass.
    char name[ES_CLIENT_NAME_MAX + 1];
    memset(name, 'n', ES_CLIENT_NAME_MAX);
    name[ES_CLIENT_NAME_MAX] = '\0';
    s_body_is(es_client_pending(c, name, name), "{\"op\":\"pending\"}");
    s_check_local(f, 16, "pending", name, name, "", "", "{}");
    assert_int_equal(s_nreq(f), 17);
    for (size_t i = 1; i < 17; i++)
        assert_int_not_equal(s_req(f, i).id, s_req(f, i - 1).id);
    es_client_destroy(&c);
}

//  A call that must fail before sending, with code EINVAL and this text.
#define REFUSED(call, text)                                                                        \
    do {                                                                                           \
        assert_null(call);                                                                         \
        assert_int_equal(es_client_last_code(), ES_CLIENT_EINVAL);                                 \
        assert_string_equal(es_client_last_error(), text);                                         \
    } while (0)

static void
test_local_bad_arguments(void **state)
{
    fake_t *f = *state;
    f->handler = h_local;
    es_client_t *c = s_client(f, 2000);
    char longname[ES_CLIENT_NAME_MAX + 2];
    memset(longname, 'a', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    const char *ops = "(expected create, update, partialupdate, delete, pending, rollback, clear "
                      "or markforupload)";
    char want[512];

    //  op
    REFUSED(es_client_local(c, NULL, "S", "O", NULL, "{}", NULL), "op: must not be empty");
    REFUSED(es_client_local(c, "", "S", "O", NULL, "{}", NULL), "op: must not be empty");
    snprintf(want, sizeof want, "op: unknown 'upsert' %s", ops);
    REFUSED(es_client_local(c, "upsert", "S", "O", NULL, "{}", NULL), want);
    snprintf(want, sizeof want, "op: unknown 'CREATE' %s", ops);
    REFUSED(es_client_local(c, "CREATE", "S", "O", NULL, "{}", NULL), want);
    snprintf(want, sizeof want, "op: unknown '%.32s' %s", longname, ops);
    REFUSED(es_client_local(c, longname, "S", "O", NULL, "{}", NULL), want);

    //  names: required, bounded, scoped
    REFUSED(es_client_create(c, NULL, "O", "{}", NULL), "service: must not be empty");
    REFUSED(es_client_create(c, "S", "", "{}", NULL), "object: must not be empty");
    REFUSED(es_client_update(c, longname, "O", "1", "{}", NULL),
            "service: longer than 128 bytes (129)");
    REFUSED(es_client_delete(c, "S", longname, "1", NULL), "object: longer than 128 bytes (129)");
    REFUSED(es_client_pending(c, longname, NULL), "service: longer than 128 bytes (129)");
    REFUSED(es_client_clear(c, "", NULL, NULL), "service: must not be empty");
    REFUSED(es_client_mark_for_upload(c, NULL, "O"), "service: must not be empty");
    REFUSED(es_client_rollback(c, NULL, "O", NULL), "object: given without a service");
    REFUSED(es_client_pending(c, "", "O"), "object: given without a service");
    REFUSED(es_client_rollback(c, "S", NULL, "1"), "pk: given without an object");
    REFUSED(es_client_clear(c, "S", "", "{\"id\":1}"), "pk: given without an object");

    //  required and refused texts
    REFUSED(es_client_create(c, "S", "O", NULL, NULL), "record: must not be empty");
    REFUSED(es_client_update(c, "S", "O", "1", "", NULL), "record: must not be empty");
    REFUSED(es_client_update(c, "S", "O", NULL, "{}", NULL), "pk: must not be empty");
    REFUSED(es_client_partial_update(c, "S", "O", "", "{}", NULL), "pk: must not be empty");
    REFUSED(es_client_delete(c, "S", "O", NULL, NULL), "pk: must not be empty");
    REFUSED(es_client_local(c, "create", "S", "O", "1", "{}", NULL), "pk: not used by create");
    REFUSED(es_client_local(c, "delete", "S", "O", "1", "{}", NULL), "record: not used by delete");
    REFUSED(es_client_local(c, "pending", "S", "O", "1", NULL, NULL), "pk: not used by pending");
    REFUSED(es_client_local(c, "markforupload", "S", "O", "1", NULL, NULL),
            "pk: not used by markforupload");
    REFUSED(es_client_local(c, "rollback", "S", "O", NULL, "{}", NULL),
            "record: not used by rollback");
    REFUSED(es_client_local(c, "clear", "S", NULL, NULL, NULL, "{}"), "options: not used by clear");
    REFUSED(es_client_local(c, "pending", "S", NULL, NULL, NULL, "{\"a\":1}"),
            "options: not used by pending");

    //  wrong JSON type per field
    const char *not_objects[] = {"[]", "[{\"a\":1}]", "\"x\"", "1", "true", "null"};
    for (size_t i = 0; i < sizeof not_objects / sizeof *not_objects; i++) {
        REFUSED(es_client_create(c, "S", "O", not_objects[i], NULL),
                "record: must be a JSON object");
        REFUSED(es_client_delete(c, "S", "O", "1", not_objects[i]),
                "options: must be a JSON object");
    }
    REFUSED(es_client_delete(c, "S", "O", "[1,2]", NULL),
            "pk: must be a JSON string, number or object");
    REFUSED(es_client_rollback(c, "S", "O", "null"), "pk: must be a JSON string, number or object");

    //  invalid JSON: every strict prefix of valid texts (the empty one is "not given")
    const char *record = "{\"name\":\"x\\\"y\",\"qty\":-2.5e3,\"ok\":true,\"n\":null}";
    for (size_t n = 1; n < strlen(record); n++) {
        char text[128];
        snprintf(text, sizeof text, "%.*s", (int)n, record);
        assert_null(es_client_create(c, "S", "O", text, NULL));
        assert_int_equal(es_client_last_code(), ES_CLIENT_EINVAL);
        assert_memory_equal(es_client_last_error(), "record: invalid JSON: ", 22);
        assert_true(strlen(es_client_last_error()) > 22);
        assert_null(strchr(es_client_last_error(), '\n')); //  the caret lines are cut
        assert_null(es_client_update(c, "S", "O", text, "{}", NULL));
        assert_memory_equal(es_client_last_error(), "pk: invalid JSON: ", 18);
        assert_null(es_client_delete(c, "S", "O", "1", text));
        assert_memory_equal(es_client_last_error(), "options: invalid JSON: ", 23);
    }
    REFUSED(es_client_create(c, "S", "O", "{\"a\":1} x", NULL),
            "record: invalid JSON: parse error: trailing garbage");
    REFUSED(es_client_create(c, "S", "O", " ", NULL), "record: invalid JSON: parse error: "
                                                      "premature EOF");
    REFUSED(es_client_update(c, "S", "O", "SKU-1", "{}", NULL),
            "pk: invalid JSON: lexical error: invalid char in json text.");
    REFUSED(es_client_create(c, "S", "O", "{\"a\":\"\xff\"}", NULL),
            "record: invalid JSON: lexical error: invalid bytes in UTF8 string.");

    //  nesting and size bounds
    char deep[80];
    memset(deep, '[', 33);
    memset(deep + 33, ']', 33);
    deep[66] = '\0';
    REFUSED(es_client_create(c, "S", "O", deep, NULL), "record: nested deeper than 32 levels");
    //  Brackets inside strings do not count; 32 levels parse (and are then not an object).
    snprintf(deep, sizeof deep, "{\"a\":\"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\"}");
    s_body_is(es_client_create(c, "S", "O", deep, NULL), "{\"pk\":{\"id\":-1}}");
    memset(deep, '[', 32);
    memset(deep + 32, ']', 32);
    deep[64] = '\0';
    REFUSED(es_client_create(c, "S", "O", deep, NULL), "record: must be a JSON object");
    size_t big = 4u << 20;
    char *huge = es_malloc(big + 1);
    memset(huge, ' ', big);
    huge[0] = '{';
    huge[big - 1] = '}';
    huge[big] = '\0';
    snprintf(want, sizeof want, "create: pk, record and options take %zu bytes, more than %u",
             big + 2, (4u << 20) - 4096);
    REFUSED(es_client_create(c, "S", "O", huge, "{}"), want);
    huge[big - 8192] = '}'; //  just under the bound: sent whole
    huge[big - 8191] = '\0';
    s_body_is(es_client_create(c, "S", "O", huge, NULL), "{\"pk\":{\"id\":-1}}");
    free(huge);

    assert_int_equal(s_nreq(f), 2); //  only the two valid creates were sent
    assert_int_equal(s_req(f, 0).type, ES_MSG_LOCAL);
    es_client_destroy(&c);
}

static void
test_local_refused(void **state)
{
    fake_t *f = *state;
    f->handler = h_local;
    es_client_t *c = s_client(f, 2000);
    //  A refusal with text and a failure body.
    assert_null(es_client_update(c, "S", "O", "1", "{\"deferred\":1}", NULL));
    assert_int_equal(es_client_last_code(), 2314);
    assert_string_equal(es_client_last_error(), "record has deferred changes");
    assert_string_equal(es_client_last_body(c),
                        "{\"code\":2314,\"message\":\"record has deferred changes\"}");
    //  Without text: the request and the code.
    assert_null(es_client_delete(c, "S", "O", "404", NULL));
    assert_int_equal(es_client_last_code(), 5);
    assert_string_equal(es_client_last_error(), "LOCAL delete: daemon replied with code 5");
    assert_null(es_client_last_body(c));
    //  A reply that is not an object is the daemon's fault.
    assert_null(es_client_clear(c, "S", "O", "\"bad-reply\""));
    assert_int_equal(es_client_last_code(), ES_CLIENT_EPROTO);
    assert_string_equal(es_client_last_error(), "LOCAL clear: reply is not a JSON object: [1,2]");
    //  An empty body is the empty object.
    s_body_is(es_client_rollback(c, "S", "O", "\"empty-reply\""), "{}");
    //  No answer at all.
    f->handler = h_silent;
    es_client_t *quick = s_client(f, 100);
    assert_null(es_client_mark_for_upload(quick, "S", NULL));
    assert_int_equal(es_client_last_code(), ES_CLIENT_ETIMEOUT);
    char want[256];
    snprintf(want, sizeof want,
             "no reply from the daemon at %s within 100 ms (is edgesyncd running?)", f->cmd_ep);
    assert_string_equal(es_client_last_error(), want);
    es_client_destroy(&quick);
    es_client_destroy(&c);
}

static void
test_unreachable(void **state)
{
    fake_t *f = *state;
    char ep[200], want[300];
    snprintf(ep, sizeof ep, "ipc://%s/missing.sock", f->dir);
    assert_null(es_client_new(ep, 100));
    assert_int_equal(es_client_last_code(), ES_CLIENT_EUNREACHABLE);
    snprintf(want, sizeof want,
             "cannot reach the daemon: command socket '%s/missing.sock': No such file or "
             "directory (is edgesyncd running?)",
             f->dir);
    assert_string_equal(es_client_last_error(), want);

    char path[160];
    snprintf(path, sizeof path, "%s/file", f->dir);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fclose(fp);
    snprintf(ep, sizeof ep, "ipc://%s", path);
    assert_null(es_client_new(ep, 100));
    assert_int_equal(es_client_last_code(), ES_CLIENT_EUNREACHABLE);
    snprintf(want, sizeof want, "cannot reach the daemon: command socket '%s' is not a socket",
             path);
    assert_string_equal(es_client_last_error(), want);

    assert_null(es_client_new("", 100));
    assert_int_equal(es_client_last_code(), ES_CLIENT_EINVAL);
    assert_string_equal(es_client_last_error(), "command endpoint: empty");
    assert_null(es_client_new(NULL, 100));
    assert_string_equal(es_client_last_error(), "command endpoint: empty");
    assert_null(es_client_new("bogus://x", 100));
    assert_int_equal(es_client_last_code(), ES_CLIENT_EINVAL);
    assert_string_equal(es_client_last_error(),
                        "command endpoint 'bogus://x': Protocol not supported");

    //  TCP: nothing to check up front; nobody answers, so the request times out.
    es_client_t *c = es_client_new("tcp://127.0.0.1:1", 100);
    assert_non_null(c);
    assert_null(es_client_status(c, NULL));
    assert_int_equal(es_client_last_code(), ES_CLIENT_ETIMEOUT);
    assert_string_equal(es_client_last_error(), "no reply from the daemon at tcp://127.0.0.1:1 "
                                                "within 100 ms (is edgesyncd running?)");
    es_client_destroy(&c);
}

static void
test_malformed_replies(void **state)
{
    fake_t *f = *state;
    es_client_t *c = s_client(f, 2000);
    f->handler = h_prefix;
    es_msg_t m;
    es_msg_init(&m, ES_MSG_REPLY, UINT64_MAX / 2); //  client ids are >= 2^40: 9 bytes too
    m.u.reply.body = (es_slice_t){"{}", 2};
    es_buf_t b;
    es_buf_init(&b);
    es_err_t err;
    assert_int_equal(es_msg_encode(&m, &b, &err), 0);
    size_t full = b.len;
    es_buf_release(&b);
    //  Every strict prefix of a valid reply is refused with the codec's text.
    for (size_t n = 0; n < full; n++) {
        f->prefix = n;
        assert_null(es_client_status(c, NULL));
        assert_int_equal(es_client_last_code(), ES_CLIENT_EPROTO);
        assert_memory_equal(es_client_last_error(), "reply from daemon: ", 19);
        assert_true(strlen(es_client_last_error()) > 19);
    }
    f->prefix = SIZE_MAX; //  the whole frame (with a fresh request id) is accepted
    char *body = es_client_status(c, NULL);
    assert_non_null(body);
    assert_string_equal(body, "{}");
    free(body);
    es_client_destroy(&c);
}

typedef struct {
    char topics[8][64];
    char jsons[8][256];
    int n;
    int stop_after; //  return nonzero after this many (0 = never)
} events_t;

static int
cb_event(void *ctx, const char *topic, const char *json)
{
    events_t *e = ctx;
    if (e->n < 8) {
        snprintf(e->topics[e->n], sizeof e->topics[0], "%s", topic);
        snprintf(e->jsons[e->n], sizeof e->jsons[0], "%s", json);
    }
    e->n++;
    return e->stop_after && e->n >= e->stop_after;
}

static void
test_subscribe(void **state)
{
    fake_t *f = *state;
    es_client_t *c = s_client(f, 2000);
    es_client_set_keepalive(c, 5000, 10000);
    events_t ev = {0};
    f->handler = h_sub_publish;
    assert_int_equal(es_client_subscribe(c, f->ev_ep, "s1", cb_event, &ev), 0);
    assert_int_equal(ev.n, 2); //  s10 shares the topic prefix but is not ours
    assert_string_equal(ev.topics[0], "progress.s1");
    assert_string_equal(ev.jsons[0], "{\"session\":\"s1\",\"phase\":\"Download\"}");
    assert_string_equal(ev.topics[1], "result.s1");
    assert_string_equal(ev.jsons[1], "{\"status\":0}");
    captured_t r = s_req(f, 0);
    assert_int_equal(r.type, ES_MSG_STATUS);
    assert_string_equal(r.msg.u.status.session, "s1");

    //  Finished before we listened: the STATUS answer delivers the stored result.
    memset(&ev, 0, sizeof ev);
    f->handler = h_sub_done;
    assert_int_equal(es_client_subscribe(c, f->ev_ep, "s1", cb_event, &ev), 0);
    assert_int_equal(ev.n, 1);
    assert_string_equal(ev.topics[0], "result.s1");
    assert_string_equal(ev.jsons[0], "{\"status\":0,\"name\":\"C\"}");

    //  Unknown session.
    f->handler = h_not_found;
    assert_int_equal(es_client_subscribe(c, f->ev_ep, "zz", cb_event, &ev), -1);
    assert_int_equal(es_client_last_code(), ES_CLIENT_ENOSESSION);
    assert_string_equal(es_client_last_error(),
                        "session zz: unknown to the daemon (session 'zz': not found)");

    //  Missing event socket.
    char ep[200];
    snprintf(ep, sizeof ep, "ipc://%s/nothing.sock", f->dir);
    assert_int_equal(es_client_subscribe(c, ep, NULL, cb_event, &ev), -1);
    assert_int_equal(es_client_last_code(), ES_CLIENT_EUNREACHABLE);
    es_client_destroy(&c);
}

static void *
s_publisher(void *arg)
{
    fake_t *f = arg;
    //  No STATUS without a session: publish until the subscriber has had enough.
    for (int i = 0; i < 200 && !f->pub_stop; i++) {
        s_publish(f, ES_MSG_EVENT, i % 2 ? "a" : "b", "{\"x\":1}");
        usleep(10000);
    }
    return NULL;
}

static void
test_subscribe_all(void **state)
{
    fake_t *f = *state;
    es_client_t *c = s_client(f, 2000);
    events_t ev = {.stop_after = 3};
    //  The fake's PUB is driven from a second thread here; the router thread never touches it.
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, s_publisher, f), 0);
    assert_int_equal(es_client_subscribe(c, f->ev_ep, NULL, cb_event, &ev), 0);
    f->pub_stop = 1;
    pthread_join(t, NULL);
    assert_int_equal(ev.n, 3);
    for (int i = 0; i < 3; i++) {
        assert_true(strcmp(ev.topics[i], "progress.a") == 0 ||
                    strcmp(ev.topics[i], "progress.b") == 0);
        assert_string_equal(ev.jsons[i], "{\"x\":1}");
    }
    assert_int_equal(s_nreq(f), 0);
    es_client_destroy(&c);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_requests_encoded, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_sync_flow, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_sync_refused_and_failed, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_sync_result_by_status, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_sync_daemon_gone, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_error_replies, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_timeout_and_interrupt, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_bad_arguments, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_local_encoded, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_local_bad_arguments, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_local_refused, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_unreachable, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_malformed_replies, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_subscribe, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_subscribe_all, s_setup, s_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
