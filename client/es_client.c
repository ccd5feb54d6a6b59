//  es_client - libedgesync: requests to edgesyncd over a DEALER socket, syncs that wait for their
//  RESULT while forwarding EVENTs, and a subscriber for the daemon's PUB socket.
#include "client/edgesync.h"
#include "client/es_lib.h"
#include "common/es_buf.h"
#include "common/es_curve.h"
#include "common/es_err.h"
#include "common/es_mem.h"
#include "protocol/es_json.h"
#include "protocol/es_msg.h"
#include <assert.h>
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <yajl/yajl_tree.h>
#include <zmq.h>

_Static_assert(ES_CLIENT_NAME_MAX == ES_NAME_MAX, "public name limit must match the protocol's");

#define S_DEFAULT_TIMEOUT_MS 5000
#define S_DEFAULT_PROBE_MS 3000
#define S_MIN_DEAD_MS 15000
#define S_INTR_SLICE_MS 200 //  poll slice while an interrupt flag is watched
#define S_SUB_SETTLE_MS 200 //  let a new subscription reach the PUB before asking STATUS

struct es_client {
    void *zctx;                       //  ZeroMQ context, one per client
    void *cmd;                        //  DEALER connected to the command endpoint
    char *endpoint;                   //  command endpoint, for messages
    int timeout_ms;                   //  reply timeout of each request
    int probe_ms;                     //  idle time before a STATUS probe while waiting
    int dead_ms;                      //  idle time after which the daemon is given up
    uint64_t next_id;                 //  next request id
    volatile sig_atomic_t *interrupt; //  borrowed flag that stops blocking calls, or NULL
    char *last_body;                  //  body of the last error reply, or NULL
    es_buf_t text;                    //  NUL-terminated copy of a JSON body for callbacks
    bool curve;                       //  CURVE keys given (es_client_new_curve)
    char server_public[ES_CURVE_Z85_LEN + 1];
    char client_public[ES_CURVE_Z85_LEN + 1];
    char client_secret[ES_CURVE_Z85_LEN + 1]; //  wiped at destroy
    void *mon;                        //  PAIR getting the command socket's handshake events
                                      //  (network endpoints only), or NULL
    bool handshake_ok;                //  a handshake with the daemon succeeded
    unsigned mon_seq;                 //  monitor endpoints made so far
};

//  One error per thread, so es_client_new can report why it returned NULL.
static __thread int s_code;
static __thread char s_what[ES_ERR_WHAT_MAX];

static int s_fail(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int
s_fail(int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s_what, sizeof s_what, fmt, ap);
    va_end(ap);
    s_code = code;
    return -1;
}

static void
s_ok(void)
{
    s_code = ES_CLIENT_OK;
    s_what[0] = '\0';
}

const char *
es_client_last_error(void)
{
    return s_what;
}

int
es_client_last_code(void)
{
    return s_code;
}

int
es_lib_fail(int code, const char *what)
{
    return s_fail(code, "%s", what);
}

void
es_lib_ok(void)
{
    s_ok();
}

const char *
es_client_last_body(const es_client_t *self)
{
    return self ? self->last_body : NULL;
}

static int64_t
s_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

//  Errors from the codec: socket failures are ours to report as ESYS, the rest is the peer's.
static int
s_fail_err(const es_err_t *err, const char *context)
{
    int code = err->code == ES_ESYS     ? ES_CLIENT_ESYS
               : err->code == ES_EINVAL ? ES_CLIENT_EINVAL
                                        : ES_CLIENT_EPROTO;
    return s_fail(code, "%s: %s", context, err->what);
}

//  An ipc:// endpoint names a file: if it is missing the daemon is not running, and ZeroMQ would
//  only keep retrying silently, so say so now.
static int
s_check_endpoint(const char *what, const char *endpoint)
{
    if (!endpoint || !*endpoint)
        return s_fail(ES_CLIENT_EINVAL, "%s endpoint: empty", what);
    if (strncmp(endpoint, "ipc://", 6) != 0)
        return 0;
    const char *path = endpoint + 6;
    if (*path == '@') //  Linux abstract socket: no file to check
        return 0;
    struct stat st;
    if (stat(path, &st) != 0)
        return s_fail(ES_CLIENT_EUNREACHABLE,
                      "cannot reach the daemon: %s socket '%s': %s (is edgesyncd running?)", what,
                      path, strerror(errno));
    if (!S_ISSOCK(st.st_mode))
        return s_fail(ES_CLIENT_EUNREACHABLE,
                      "cannot reach the daemon: %s socket '%s' is not a socket", what, path);
    return 0;
}

static int
s_sockopts(void *socket, int timeout_ms)
{
    int linger = 0;
    int64_t max = ES_MSG_MAX_SIZE;
    if (zmq_setsockopt(socket, ZMQ_LINGER, &linger, sizeof linger) ||
        zmq_setsockopt(socket, ZMQ_MAXMSGSIZE, &max, sizeof max) ||
        zmq_setsockopt(socket, ZMQ_SNDTIMEO, &timeout_ms, sizeof timeout_ms))
        return s_fail(ES_CLIENT_ESYS, "zmq_setsockopt: %s", zmq_strerror(errno));
    return 0;
}

//  The daemon secures every endpoint but ipc:// with CURVE (orch_curve_needed), and so do we.
static bool
s_is_network(const char *endpoint)
{
    return strncmp(endpoint, "ipc://", 6) != 0;
}

//  CURVE client keys on a socket about to connect to a network endpoint.
static int
s_curve_opts(es_client_t *self, void *socket, const char *endpoint)
{
    if (!self->curve || !s_is_network(endpoint))
        return 0;
    if (zmq_setsockopt(socket, ZMQ_CURVE_SERVERKEY, self->server_public, ES_CURVE_Z85_LEN + 1) ||
        zmq_setsockopt(socket, ZMQ_CURVE_PUBLICKEY, self->client_public, ES_CURVE_Z85_LEN + 1) ||
        zmq_setsockopt(socket, ZMQ_CURVE_SECRETKEY, self->client_secret, ES_CURVE_Z85_LEN + 1))
        return s_fail(ES_CLIENT_ESYS, "CURVE keys: %s", zmq_strerror(errno));
    return 0;
}

//  Watch the handshakes of a socket to a network endpoint, so a refusal is reported as such
//  rather than as silence. *mon: a PAIR receiving the events, NULL for ipc://.
static int
s_monitor(es_client_t *self, void *socket, const char *endpoint, void **mon)
{
    *mon = NULL;
    if (!s_is_network(endpoint))
        return 0;
    char ep[64];
    snprintf(ep, sizeof ep, "inproc://es-client-monitor-%u", self->mon_seq++);
    int linger = 0;
    if (zmq_socket_monitor(socket, ep,
                           ZMQ_EVENT_HANDSHAKE_SUCCEEDED | ZMQ_EVENT_HANDSHAKE_FAILED_AUTH |
                               ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
                               ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL) ||
        !(*mon = zmq_socket(self->zctx, ZMQ_PAIR)) ||
        zmq_setsockopt(*mon, ZMQ_LINGER, &linger, sizeof linger) || zmq_connect(*mon, ep)) {
        s_fail(ES_CLIENT_ESYS, "socket monitor: %s", zmq_strerror(errno));
        if (*mon)
            (void)zmq_close(*mon);
        *mon = NULL;
        return -1;
    }
    return 0;
}

//  Read the waiting handshake events of mon. -1 with ES_CLIENT_EAUTH when the daemon refused us
//  (that will not change by retrying), else 0.
static int
s_monitor_check(es_client_t *self, void *mon, const char *endpoint)
{
    if (!mon)
        return 0;
    for (;;) {
        zmq_msg_t ev, addr;
        zmq_msg_init(&ev);
        if (zmq_msg_recv(&ev, mon, ZMQ_DONTWAIT) == -1) {
            zmq_msg_close(&ev);
            return 0; //  EAGAIN: no more events
        }
        uint16_t event = 0;
        uint32_t value = 0;
        if (zmq_msg_size(&ev) >= 6) {
            memcpy(&event, zmq_msg_data(&ev), 2);
            memcpy(&value, (char *)zmq_msg_data(&ev) + 2, 4);
        }
        bool more = zmq_msg_more(&ev);
        zmq_msg_close(&ev);
        if (more) { //  second frame: the endpoint
            zmq_msg_init(&addr);
            (void)zmq_msg_recv(&addr, mon, ZMQ_DONTWAIT); //  sent with the first, never blocks
            zmq_msg_close(&addr);
        }
        if (event == ZMQ_EVENT_HANDSHAKE_SUCCEEDED)
            self->handshake_ok = true;
        else if (event == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH)
            return s_fail(ES_CLIENT_EAUTH,
                          "not authorised: the daemon at %s refused this client's CURVE key "
                          "(status %u): add its public key to the daemon's "
                          "curve.allow_keys_file",
                          endpoint, value);
        else if (event == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL &&
                 value == ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH)
            return s_fail(ES_CLIENT_EAUTH,
                          self->curve ? "security mismatch: the daemon at %s does not use CURVE"
                                      : "not authorised: the daemon at %s requires CURVE (give "
                                        "--curve-server-key and --curve-key)",
                          endpoint);
    }
}

static es_client_t *s_new(const char *cmd_endpoint, int timeout_ms, const char *server_public,
                          const char *client_public, const char *client_secret);

es_client_t *
es_client_new(const char *cmd_endpoint, int timeout_ms)
{
    return s_new(cmd_endpoint, timeout_ms, NULL, NULL, NULL);
}

//  A Z85 key argument: 40 characters that decode.
static int
s_check_key(const char *what, const char *z85)
{
    uint8_t bin[ES_CURVE_KEY_LEN];
    if (!z85 || strlen(z85) != ES_CURVE_Z85_LEN || !zmq_z85_decode(bin, z85))
        return s_fail(ES_CLIENT_EINVAL, "%s: expected a %d-character Z85 key", what,
                      ES_CURVE_Z85_LEN);
    return 0;
}

es_client_t *
es_client_new_curve(const char *cmd_endpoint, int timeout_ms, const char *server_public,
                    const char *client_public, const char *client_secret)
{
    if (!zmq_has("curve")) {
        s_fail(ES_CLIENT_ESYS, "this libzmq has no CURVE support (built without libsodium)");
        return NULL;
    }
    if (s_check_key("CURVE server public key", server_public) ||
        (client_public && s_check_key("CURVE client public key", client_public)) ||
        s_check_key("CURVE client secret key", client_secret))
        return NULL;
    return s_new(cmd_endpoint, timeout_ms, server_public, client_public, client_secret);
}

static es_client_t *
s_new(const char *cmd_endpoint, int timeout_ms, const char *server_public,
      const char *client_public, const char *client_secret)
{
    if (s_check_endpoint("command", cmd_endpoint))
        return NULL;
    es_client_t *self = es_calloc(1, sizeof *self);
    es_buf_init(&self->text);
    self->endpoint = es_strdup(cmd_endpoint);
    if (client_secret) {
        self->curve = true;
        memcpy(self->server_public, server_public, ES_CURVE_Z85_LEN + 1);
        memcpy(self->client_secret, client_secret, ES_CURVE_Z85_LEN + 1);
        if (client_public)
            memcpy(self->client_public, client_public, ES_CURVE_Z85_LEN + 1);
        else if (zmq_curve_public(self->client_public, client_secret)) {
            s_fail(ES_CLIENT_EINVAL, "CURVE client secret key: %s", zmq_strerror(errno));
            goto fail;
        }
    }
    self->timeout_ms = timeout_ms > 0 ? timeout_ms : S_DEFAULT_TIMEOUT_MS;
    self->probe_ms = S_DEFAULT_PROBE_MS;
    self->dead_ms = 3 * self->timeout_ms > S_MIN_DEAD_MS ? 3 * self->timeout_ms : S_MIN_DEAD_MS;
    //  Ids differ across client runs, so a late reply to an earlier process is never taken.
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    self->next_id =
        ((uint64_t)getpid() << 40) ^ ((uint64_t)ts.tv_sec << 20) ^ (uint64_t)(ts.tv_nsec / 1000);
    if (self->next_id == 0)
        self->next_id = 1;
    self->zctx = zmq_ctx_new();
    if (!self->zctx) {
        s_fail(ES_CLIENT_ESYS, "zmq_ctx_new: %s", zmq_strerror(errno));
        goto fail;
    }
    self->cmd = zmq_socket(self->zctx, ZMQ_DEALER);
    if (!self->cmd) {
        s_fail(ES_CLIENT_ESYS, "zmq_socket: %s", zmq_strerror(errno));
        goto fail;
    }
    if (s_sockopts(self->cmd, self->timeout_ms) || s_curve_opts(self, self->cmd, cmd_endpoint) ||
        s_monitor(self, self->cmd, cmd_endpoint, &self->mon))
        goto fail;
    if (zmq_connect(self->cmd, cmd_endpoint)) {
        s_fail(ES_CLIENT_EINVAL, "command endpoint '%s': %s", cmd_endpoint, zmq_strerror(errno));
        goto fail;
    }
    s_ok();
    return self;
fail:
    es_client_destroy(&self);
    return NULL;
}

void
es_client_destroy(es_client_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    es_client_t *self = *self_p;
    free(self->last_body);
    if (self->mon)
        (void)zmq_close(self->mon);
    if (self->cmd)
        (void)zmq_close(self->cmd); //  linger 0: nothing to flush
    explicit_bzero(self->client_secret, sizeof self->client_secret);
    if (self->zctx)
        (void)zmq_ctx_term(self->zctx);
    free(self->endpoint);
    es_buf_release(&self->text);
    free(self);
    *self_p = NULL;
}

void
es_client_set_keepalive(es_client_t *self, int probe_ms, int dead_ms)
{
    assert(self);
    if (probe_ms > 0)
        self->probe_ms = probe_ms;
    if (dead_ms > 0)
        self->dead_ms = dead_ms;
}

void
es_client_set_interrupt(es_client_t *self, volatile sig_atomic_t *flag)
{
    assert(self);
    self->interrupt = flag;
}

//  --- names and JSON --------------------------------------------------------------------------

static int
s_check_name(const char *what, const char *name, bool required)
{
    if (!name || !*name) {
        if (required)
            return s_fail(ES_CLIENT_EINVAL, "%s: must not be empty", what);
        return 0;
    }
    size_t len = strlen(name);
    if (len > ES_NAME_MAX)
        return s_fail(ES_CLIENT_EINVAL, "%s: longer than %d bytes (%zu)", what, ES_NAME_MAX, len);
    return 0;
}

static void
s_copy_name(char *dst, const char *src)
{
    snprintf(dst, ES_NAME_MAX + 1, "%s", src ? src : "");
}

//  A NUL-terminated copy of a slice in self->text (callbacks and yajl need one).
static const char *
s_text(es_client_t *self, es_slice_t s)
{
    es_buf_reset(&self->text);
    es_buf_append(&self->text, s.ptr ? s.ptr : "", s.len);
    return self->text.data;
}

static void
s_json_write(es_buf_t *out, yajl_val v)
{
    if (YAJL_IS_STRING(v)) {
        es_buf_json_str(out, v->u.string, strlen(v->u.string));
    } else if (YAJL_IS_NUMBER(v)) {
        es_buf_puts(out, v->u.number.r); //  the number's own text: no precision lost
    } else if (YAJL_IS_OBJECT(v)) {
        es_buf_putc(out, '{');
        for (size_t i = 0; i < v->u.object.len; i++) {
            if (i)
                es_buf_putc(out, ',');
            es_buf_json_str(out, v->u.object.keys[i], strlen(v->u.object.keys[i]));
            es_buf_putc(out, ':');
            s_json_write(out, v->u.object.values[i]);
        }
        es_buf_putc(out, '}');
    } else if (YAJL_IS_ARRAY(v)) {
        es_buf_putc(out, '[');
        for (size_t i = 0; i < v->u.array.len; i++) {
            if (i)
                es_buf_putc(out, ',');
            s_json_write(out, v->u.array.values[i]);
        }
        es_buf_putc(out, ']');
    } else if (YAJL_IS_TRUE(v)) {
        es_buf_puts(out, "true");
    } else if (YAJL_IS_FALSE(v)) {
        es_buf_puts(out, "false");
    } else {
        es_buf_puts(out, "null");
    }
}

//  A failure object for a refusal that came without one.
static char *
s_failure_json(int32_t code, const char *message)
{
    es_buf_t b;
    es_buf_init(&b);
    es_buf_printf(&b, "{\"code\":%d,\"message\":", code);
    es_buf_json_str(&b, message, strlen(message));
    es_buf_puts(&b, ",\"domain\":\"OfflineObjectsError\",\"status\":-1}");
    return es_buf_steal(&b);
}

//  --- sending and receiving -------------------------------------------------------------------

static uint64_t
s_send(es_client_t *self, void *socket, es_msg_t *msg)
{
    msg->request_id = self->next_id++;
    if (self->next_id == 0)
        self->next_id = 1;
    es_err_t err;
    if (es_msg_send(socket, NULL, 0, msg, &err)) {
        if (errno == EAGAIN)
            s_fail(ES_CLIENT_ETIMEOUT, "send %s to %s: daemon not accepting (%s)",
                   es_msg_name(msg->type), self->endpoint, err.what);
        else
            s_fail_err(&err, es_msg_name(msg->type));
        return 0;
    }
    return msg->request_id;
}

//  Wait up to timeout_ms for one message on the command socket. 1 received, 0 timed out, -1 error.
static int
s_recv(es_client_t *self, es_msg_in_t *in, int timeout_ms)
{
    int64_t deadline = s_now_ms() + timeout_ms;
    for (;;) {
        if (self->interrupt && *self->interrupt)
            return s_fail(ES_CLIENT_EINTR, "interrupted");
        es_err_t err;
        es_msg_in_release(in);
        es_msg_in_init(in);
        int rc = es_msg_recv(self->cmd, false, in, &err);
        if (rc == 1)
            return 1;
        if (rc == -1)
            return s_fail_err(&err, "reply from daemon");
        int64_t left = deadline - s_now_ms();
        if (left <= 0)
            return 0;
        if (self->interrupt && left > S_INTR_SLICE_MS)
            left = S_INTR_SLICE_MS;
        zmq_pollitem_t items[2] = {{self->cmd, 0, ZMQ_POLLIN, 0}, {self->mon, 0, ZMQ_POLLIN, 0}};
        if (zmq_poll(items, self->mon ? 2 : 1, (long)left) == -1 && errno != EINTR)
            return s_fail(ES_CLIENT_ESYS, "zmq_poll: %s", zmq_strerror(errno));
        if (s_monitor_check(self, self->mon, self->endpoint))
            return -1;
    }
}

static void
s_keep_body(es_client_t *self, es_slice_t body)
{
    free(self->last_body);
    self->last_body = body.len ? es_strndup(body.ptr, body.len) : NULL;
}

//  Send a request and wait for its REPLY (other messages are stale: skipped). 1 with *in holding
//  the reply (code 0 or not), -1 on error.
static int
s_exchange(es_client_t *self, es_msg_t *req, es_msg_in_t *in)
{
    free(self->last_body);
    self->last_body = NULL;
    uint64_t id = s_send(self, self->cmd, req);
    if (!id)
        return -1;
    int64_t deadline = s_now_ms() + self->timeout_ms;
    for (;;) {
        int64_t left = deadline - s_now_ms();
        int rc = left > 0 ? s_recv(self, in, (int)left) : 0;
        if (rc == -1)
            return -1;
        if (rc == 0 && self->curve && !self->handshake_ok)
            return s_fail(ES_CLIENT_ETIMEOUT,
                          "no reply from the daemon at %s within %d ms: no CURVE connection was "
                          "established (is edgesyncd running there, and is --curve-server-key "
                          "its public key?)",
                          self->endpoint, self->timeout_ms);
        if (rc == 0)
            return s_fail(ES_CLIENT_ETIMEOUT,
                          "no reply from the daemon at %s within %d ms (is edgesyncd running?)",
                          self->endpoint, self->timeout_ms);
        if (in->msg.request_id == id && in->msg.type == ES_MSG_REPLY)
            return 1;
    }
}

//  Reply code != 0: keep the body and report the daemon's text.
static int
s_fail_reply(es_client_t *self, const char *request, const es_reply_t *r)
{
    s_keep_body(self, r->body);
    if (r->what.len)
        return s_fail(r->code, "%.*s", (int)r->what.len, r->what.ptr);
    return s_fail(r->code, "%s: daemon replied with code %d", request, r->code);
}

//  Send req, return its reply body (or NULL). name says which request in error texts.
static char *
s_request_named(es_client_t *self, es_msg_t *req, const char *name)
{
    es_msg_in_t in;
    es_msg_in_init(&in);
    char *body = NULL;
    if (s_exchange(self, req, &in) == 1) {
        const es_reply_t *r = &in.msg.u.reply;
        if (r->code)
            s_fail_reply(self, name, r);
        else {
            body = es_strndup(r->body.ptr ? r->body.ptr : "", r->body.len);
            s_ok();
        }
    }
    es_msg_in_release(&in);
    return body;
}

static char *
s_request(es_client_t *self, es_msg_t *req)
{
    return s_request_named(self, req, es_msg_name(req->type));
}

//  --- requests --------------------------------------------------------------------------------

char *
es_client_setup(es_client_t *self, const char *service)
{
    assert(self);
    if (s_check_name("service", service, false))
        return NULL;
    es_msg_t m;
    es_msg_init(&m, ES_MSG_SETUP, 0);
    s_copy_name(m.u.setup.service, service);
    return s_request(self, &m);
}

char *
es_client_get(es_client_t *self, const char *service, const char *object, const char *pk_json,
              const char *filter, uint32_t limit)
{
    assert(self);
    if (s_check_name("service", service, true) || s_check_name("object", object, true))
        return NULL;
    es_msg_t m;
    es_msg_init(&m, ES_MSG_GET, 0);
    s_copy_name(m.u.get.service, service);
    s_copy_name(m.u.get.object, object);
    if (pk_json)
        m.u.get.pk = (es_slice_t){pk_json, strlen(pk_json)};
    if (filter)
        m.u.get.filter = (es_slice_t){filter, strlen(filter)};
    //  The daemon answers in pages that fit one message; ask until it says no more.
    es_buf_t all, after;
    es_buf_init(&all);
    es_buf_init(&after);
    es_buf_puts(&all, "{\"records\":[");
    uint64_t total = 0;
    for (;;) {
        m.u.get.limit = limit ? (uint32_t)(limit - total) : 0;
        m.u.get.after = (es_slice_t){after.data ? after.data : "", after.len};
        char *page = s_request(self, &m);
        if (!page) {
            es_buf_release(&all);
            es_buf_release(&after);
            return NULL;
        }
        yajl_val root = yajl_tree_parse(page, NULL, 0);
        free(page);
        const char *rp[] = {"records", NULL}, *mp[] = {"more", NULL}, *np[] = {"next", NULL};
        yajl_val recs = root ? yajl_tree_get(root, rp, yajl_t_array) : NULL;
        if (!recs) {
            yajl_tree_free(root);
            es_buf_release(&all);
            es_buf_release(&after);
            (void)s_fail(ES_CLIENT_EPROTO, "GET: reply without a records array");
            return NULL;
        }
        if (recs->u.array.len) {
            if (total)
                es_buf_putc(&all, ',');
            es_json_write_elements(&all, recs);
            total += recs->u.array.len;
        }
        bool more = YAJL_IS_TRUE(yajl_tree_get(root, mp, yajl_t_any));
        yajl_val next = yajl_tree_get(root, np, yajl_t_any);
        es_buf_reset(&after);
        if (more && next)
            es_json_write(&after, next);
        yajl_tree_free(root);
        if (!more || !next || (limit && total >= limit))
            break;
    }
    es_buf_printf(&all, "],\"count\":%llu}", (unsigned long long)total);
    es_buf_release(&after);
    return es_buf_steal(&all);
}

char *
es_client_status(es_client_t *self, const char *session)
{
    assert(self);
    if (s_check_name("session", session, false))
        return NULL;
    es_msg_t m;
    es_msg_init(&m, ES_MSG_STATUS, 0);
    s_copy_name(m.u.status.session, session);
    return s_request(self, &m);
}

char *
es_client_stats(es_client_t *self, const char *entity)
{
    assert(self);
    if (s_check_name("entity", entity, false))
        return NULL;
    es_msg_t m;
    es_msg_init(&m, ES_MSG_STATS, 0);
    s_copy_name(m.u.stats.entity, entity);
    return s_request(self, &m);
}

char *
es_client_history(es_client_t *self, const char *entity, uint32_t limit)
{
    assert(self);
    if (s_check_name("entity", entity, false))
        return NULL;
    es_msg_t m;
    es_msg_init(&m, ES_MSG_HISTORY, 0);
    s_copy_name(m.u.history.entity, entity);
    m.u.history.limit = limit;
    return s_request(self, &m);
}

char *
es_client_cancel(es_client_t *self, const char *session)
{
    assert(self);
    if (s_check_name("session", session, true))
        return NULL;
    es_msg_t m;
    es_msg_init(&m, ES_MSG_CANCEL, 0);
    s_copy_name(m.u.cancel.session, session);
    return s_request(self, &m);
}

//  --- local data ------------------------------------------------------------------------------

#define S_JSON_DEPTH_MAX 32 //  records, keys and options are flat; deeper is not one of them
#define S_LOCAL_TEXT_MAX (ES_MSG_MAX_SIZE - 4096) //  room for the names and the framing

enum { S_NO, S_OPT, S_REQ }; //  an argument is refused, optional or required

typedef struct {
    const char *op; //  wire name
    char service, object, pk, record, options;
} local_op_t;

static const local_op_t s_local_ops[] = {
    {"create", S_REQ, S_REQ, S_NO, S_REQ, S_OPT},
    {"update", S_REQ, S_REQ, S_REQ, S_REQ, S_OPT},
    {"partialupdate", S_REQ, S_REQ, S_REQ, S_REQ, S_OPT},
    {"delete", S_REQ, S_REQ, S_REQ, S_NO, S_OPT},
    {"pending", S_OPT, S_OPT, S_NO, S_NO, S_NO},
    {"rollback", S_OPT, S_OPT, S_OPT, S_NO, S_NO},
    {"clear", S_REQ, S_OPT, S_OPT, S_NO, S_NO},
    {"markforupload", S_REQ, S_OPT, S_NO, S_NO, S_NO},
};

//  Deepest nesting of arrays and objects in a JSON text (strings skipped). yajl frees its
//  trees recursively, so a hostile text is measured before it is parsed.
static size_t
s_json_depth(const char *s)
{
    size_t depth = 0, max = 0;
    bool in_str = false;
    for (; *s; s++) {
        if (in_str) {
            if (*s == '\\' && s[1])
                s++;
            else if (*s == '"')
                in_str = false;
        } else if (*s == '"') {
            in_str = true;
        } else if (*s == '[' || *s == '{') {
            if (++depth > max)
                max = depth;
        } else if ((*s == ']' || *s == '}') && depth) {
            depth--;
        }
    }
    return max;
}

//  A JSON text argument. need: S_NO (must be absent), S_OPT, S_REQ; absent = NULL or "".
//  scalar: strings, numbers and booleans are accepted besides objects (keys).
static int
s_check_json(const char *op, const char *what, const char *text, char need, bool scalar)
{
    if (!text || !*text) {
        if (need == S_REQ)
            return s_fail(ES_CLIENT_EINVAL, "%s: must not be empty", what);
        return 0;
    }
    if (need == S_NO)
        return s_fail(ES_CLIENT_EINVAL, "%s: not used by %s", what, op);
    if (s_json_depth(text) > S_JSON_DEPTH_MAX)
        return s_fail(ES_CLIENT_EINVAL, "%s: nested deeper than %d levels", what, S_JSON_DEPTH_MAX);
    char errbuf[256] = "";
    yajl_val v = yajl_tree_parse(text, errbuf, sizeof errbuf);
    int rc = 0;
    if (!v) {
        char *nl = strchr(errbuf, '\n'); //  yajl adds the text and a caret on further lines
        if (nl)
            *nl = '\0';
        rc = s_fail(ES_CLIENT_EINVAL, "%s: invalid JSON: %s", what,
                    errbuf[0] ? errbuf : "parse error");
    } else if (!YAJL_IS_OBJECT(v) && !(scalar && (YAJL_IS_STRING(v) || YAJL_IS_NUMBER(v) ||
                                                  YAJL_IS_TRUE(v) || YAJL_IS_FALSE(v)))) {
        rc = s_fail(ES_CLIENT_EINVAL, "%s: must be a JSON %s", what,
                    scalar ? "string, number or object" : "object");
    }
    yajl_tree_free(v);
    return rc;
}

static int
s_check_local_name(const char *op, const char *what, const char *name, char need)
{
    if (need == S_NO && name && *name)
        return s_fail(ES_CLIENT_EINVAL, "%s: not used by %s", what, op);
    return s_check_name(what, name, need == S_REQ);
}

char *
es_client_local(es_client_t *self, const char *op, const char *service, const char *object,
                const char *pk_json, const char *record_json, const char *options_json)
{
    assert(self);
    const local_op_t *def = NULL;
    for (size_t i = 0; op && i < sizeof s_local_ops / sizeof s_local_ops[0]; i++)
        if (strcmp(s_local_ops[i].op, op) == 0)
            def = &s_local_ops[i];
    if (!op || !*op) {
        (void)s_fail(ES_CLIENT_EINVAL, "op: must not be empty");
        return NULL;
    }
    if (!def) {
        (void)s_fail(ES_CLIENT_EINVAL,
                     "op: unknown '%.32s' (expected create, update, partialupdate, delete, "
                     "pending, rollback, clear or markforupload)",
                     op);
        return NULL;
    }
    size_t total = (pk_json ? strlen(pk_json) : 0) + (record_json ? strlen(record_json) : 0) +
                   (options_json ? strlen(options_json) : 0);
    if (total > S_LOCAL_TEXT_MAX) {
        (void)s_fail(ES_CLIENT_EINVAL, "%s: pk, record and options take %zu bytes, more than %u",
                     op, total, (unsigned)S_LOCAL_TEXT_MAX);
        return NULL;
    }
    if (s_check_local_name(op, "service", service, def->service) ||
        s_check_local_name(op, "object", object, def->object) ||
        s_check_json(op, "pk", pk_json, def->pk, true) ||
        s_check_json(op, "record", record_json, def->record, false) ||
        s_check_json(op, "options", options_json, def->options, false))
        return NULL;
    //  Narrower scopes need the wider one: an object belongs to a service, a key to an object.
    if (object && *object && (!service || !*service)) {
        (void)s_fail(ES_CLIENT_EINVAL, "object: given without a service");
        return NULL;
    }
    if (pk_json && *pk_json && (!object || !*object)) {
        (void)s_fail(ES_CLIENT_EINVAL, "pk: given without an object");
        return NULL;
    }
    es_msg_t m;
    es_msg_init(&m, ES_MSG_LOCAL, 0);
    snprintf(m.u.local.op, sizeof m.u.local.op, "%s", def->op);
    s_copy_name(m.u.local.service, service);
    s_copy_name(m.u.local.object, object);
    if (pk_json)
        m.u.local.pk = (es_slice_t){pk_json, strlen(pk_json)};
    if (record_json)
        m.u.local.record = (es_slice_t){record_json, strlen(record_json)};
    if (!options_json || !*options_json)
        options_json = "{}";
    m.u.local.options = (es_slice_t){options_json, strlen(options_json)};
    char name[sizeof "LOCAL " + ES_KIND_MAX];
    snprintf(name, sizeof name, "LOCAL %s", def->op);
    char *body = s_request_named(self, &m, name);
    if (!body)
        return NULL;
    if (!*body) { //  nothing to say: the empty object
        free(body);
        return es_strdup("{}");
    }
    yajl_val v = yajl_tree_parse(body, NULL, 0);
    bool ok = v && YAJL_IS_OBJECT(v);
    yajl_tree_free(v);
    if (!ok) {
        (void)s_fail(ES_CLIENT_EPROTO, "%s: reply is not a JSON object: %.100s", name, body);
        free(body);
        return NULL;
    }
    return body;
}

char *
es_client_create(es_client_t *self, const char *service, const char *object,
                 const char *record_json, const char *options_json)
{
    return es_client_local(self, "create", service, object, NULL, record_json, options_json);
}

char *
es_client_update(es_client_t *self, const char *service, const char *object, const char *pk_json,
                 const char *record_json, const char *options_json)
{
    return es_client_local(self, "update", service, object, pk_json, record_json, options_json);
}

char *
es_client_partial_update(es_client_t *self, const char *service, const char *object,
                         const char *pk_json, const char *record_json, const char *options_json)
{
    return es_client_local(self, "partialupdate", service, object, pk_json, record_json,
                           options_json);
}

char *
es_client_delete(es_client_t *self, const char *service, const char *object, const char *pk_json,
                 const char *options_json)
{
    return es_client_local(self, "delete", service, object, pk_json, NULL, options_json);
}

char *
es_client_pending(es_client_t *self, const char *service, const char *object)
{
    return es_client_local(self, "pending", service, object, NULL, NULL, NULL);
}

char *
es_client_rollback(es_client_t *self, const char *service, const char *object, const char *pk_json)
{
    return es_client_local(self, "rollback", service, object, pk_json, NULL, NULL);
}

char *
es_client_clear(es_client_t *self, const char *service, const char *object, const char *pk_json)
{
    return es_client_local(self, "clear", service, object, pk_json, NULL, NULL);
}

char *
es_client_mark_for_upload(es_client_t *self, const char *service, const char *object)
{
    return es_client_local(self, "markforupload", service, object, NULL, NULL, NULL);
}

//  --- sync ------------------------------------------------------------------------------------

typedef struct {
    es_sync_cb *on_success;  //  or NULL
    es_sync_cb *on_failure;  //  or NULL
    es_sync_cb *on_progress; //  or NULL
    void *ctx;               //  passed to each
} cbs_t;

//  The end of a sync: call the right callback, return 0 (succeeded) or 1 (failed).
static int
s_finish(const cbs_t *cbs, int32_t code, const char *json)
{
    s_ok();
    es_sync_cb *cb = code == 0 ? cbs->on_success : cbs->on_failure;
    if (cb)
        cb(cbs->ctx, json);
    return code == 0 ? 0 : 1;
}

//  A STATUS{session} answer while waiting: 1 if it holds the session's final result (the sync
//  then ended through s_finish into *rc), 0 if the session still runs, -1 on error.
static int
s_probe_answer(es_client_t *self, const char *session, const es_reply_t *r, const cbs_t *cbs,
               int *rc)
{
    if (r->code) {
        s_keep_body(self, r->body);
        return s_fail(ES_CLIENT_ENOSESSION, "session %s: unknown to the daemon (%.*s)", session,
                      (int)r->what.len, r->what.ptr ? r->what.ptr : "");
    }
    char errbuf[128];
    yajl_val root = yajl_tree_parse(s_text(self, r->body), errbuf, sizeof errbuf);
    if (!root || !YAJL_IS_OBJECT(root)) {
        yajl_tree_free(root);
        return s_fail(ES_CLIENT_EPROTO, "STATUS %s: reply is not a JSON object", session);
    }
    const char *state_path[] = {"state", NULL}, *code_path[] = {"code", NULL},
               *result_path[] = {"result", NULL};
    yajl_val state = yajl_tree_get(root, state_path, yajl_t_string);
    int done = state && strcmp(state->u.string, "done") == 0;
    if (done) {
        yajl_val code = yajl_tree_get(root, code_path, yajl_t_number);
        int32_t c = code && YAJL_IS_INTEGER(code) ? (int32_t)YAJL_GET_INTEGER(code) : 0;
        yajl_val result = yajl_tree_get(root, result_path, yajl_t_object);
        es_buf_t b;
        es_buf_init(&b);
        if (result)
            s_json_write(&b, result);
        else if (c == 0)
            es_buf_puts(&b, "{\"status\":0}");
        else {
            char *f = s_failure_json(c, "sync failed");
            es_buf_puts(&b, f);
            free(f);
        }
        *rc = s_finish(cbs, c, b.data);
        es_buf_release(&b);
    }
    yajl_tree_free(root);
    return done;
}

//  The session id out of the SYNC reply {"session":"<id>"}.
static int
s_session_of(es_client_t *self, es_slice_t body, char *session)
{
    yajl_val root = yajl_tree_parse(s_text(self, body), NULL, 0);
    const char *path[] = {"session", NULL};
    yajl_val v = root ? yajl_tree_get(root, path, yajl_t_string) : NULL;
    int rc = 0;
    if (!v || !*v->u.string || strlen(v->u.string) > ES_NAME_MAX)
        rc = s_fail(ES_CLIENT_EPROTO, "SYNC: reply body has no valid \"session\": %.100s",
                    self->text.data);
    else
        s_copy_name(session, v->u.string);
    yajl_tree_free(root);
    return rc;
}

//  After SYNC was accepted: forward EVENTs until the RESULT; probe the daemon when it is quiet.
static int
s_wait_result(es_client_t *self, uint64_t id, const char *session, const cbs_t *cbs)
{
    es_msg_in_t in;
    es_msg_in_init(&in);
    int64_t last_rx = s_now_ms(), last_probe = 0;
    uint64_t first_probe = 0; //  replies to any probe since then are accepted
    int rc = -1;
    for (;;) {
        int64_t now = s_now_ms();
        if (now - last_rx >= self->dead_ms) {
            s_fail(ES_CLIENT_ETIMEOUT,
                   "daemon at %s stopped answering: nothing for %d ms while waiting for the "
                   "result of session %s",
                   self->endpoint, self->dead_ms, session);
            break;
        }
        if (now - last_rx >= self->probe_ms && now - last_probe >= self->probe_ms) {
            es_msg_t probe;
            es_msg_init(&probe, ES_MSG_STATUS, 0);
            s_copy_name(probe.u.status.session, session);
            uint64_t pid = s_send(self, self->cmd, &probe);
            if (!pid && s_code != ES_CLIENT_ETIMEOUT)
                break; //  a full queue only delays the probe; anything else is fatal
            if (pid && !first_probe)
                first_probe = pid;
            last_probe = now;
        }
        int64_t next = last_rx + self->probe_ms;
        if (next <= now)
            next = last_probe + self->probe_ms;
        if (next > last_rx + self->dead_ms)
            next = last_rx + self->dead_ms;
        int wait = next > now ? (int)(next - now) : 1;
        int got = s_recv(self, &in, wait);
        if (got == -1)
            break;
        if (got == 0)
            continue;
        const es_msg_t *m = &in.msg;
        if (m->request_id == id && m->type == ES_MSG_EVENT) {
            last_rx = s_now_ms();
            if (cbs->on_progress)
                cbs->on_progress(cbs->ctx, s_text(self, m->u.event.body));
        } else if (m->request_id == id && m->type == ES_MSG_RESULT) {
            rc = s_finish(cbs, m->u.result.code, s_text(self, m->u.result.body));
            break;
        } else if (first_probe && m->request_id >= first_probe && m->request_id != id &&
                   m->type == ES_MSG_REPLY) {
            last_rx = s_now_ms();
            int done = s_probe_answer(self, session, &m->u.reply, cbs, &rc);
            if (done != 0)
                break;
        }
        //  Anything else is a late answer to an earlier request: skipped.
    }
    es_msg_in_release(&in);
    return rc;
}

static int
s_sync(es_client_t *self, const char *level, const char *service, const char *object,
       const char *options_json, const cbs_t *cbs)
{
    es_msg_t m;
    es_msg_init(&m, ES_MSG_SYNC, 0);
    s_copy_name(m.u.sync.level, level);
    s_copy_name(m.u.sync.service, service);
    s_copy_name(m.u.sync.object, object);
    if (!options_json || !*options_json)
        options_json = "{}";
    m.u.sync.options = (es_slice_t){options_json, strlen(options_json)};
    es_msg_in_t in;
    es_msg_in_init(&in);
    int rc = -1;
    if (s_exchange(self, &m, &in) == 1) {
        const es_reply_t *r = &in.msg.u.reply;
        uint64_t id = in.msg.request_id;
        char session[ES_NAME_MAX + 1];
        if (r->code) {
            //  Refused before it started (2477, 2461, ...): that is a failed sync, not an error.
            s_keep_body(self, r->body);
            char *json = r->body.len ? es_strndup(r->body.ptr, r->body.len)
                                     : s_failure_json(r->code, s_text(self, r->what));
            rc = s_finish(cbs, r->code, json);
            free(json);
        } else if (s_session_of(self, r->body, session) == 0) {
            es_msg_in_release(&in); //  frees the frame before a possibly long wait
            es_msg_in_init(&in);
            rc = s_wait_result(self, id, session, cbs);
        }
    }
    es_msg_in_release(&in);
    return rc;
}

int
es_obj_start_sync(es_client_t *self, const char *service, const char *object,
                  const char *options_json, es_sync_cb *on_success, es_sync_cb *on_failure,
                  es_sync_cb *on_progress, void *ctx)
{
    assert(self);
    if (s_check_name("service", service, true) || s_check_name("object", object, true))
        return -1;
    cbs_t cbs = {on_success, on_failure, on_progress, ctx};
    return s_sync(self, "object", service, object, options_json, &cbs);
}

int
es_objsvc_start_sync(es_client_t *self, const char *service, const char *options_json,
                     es_sync_cb *on_success, es_sync_cb *on_failure, es_sync_cb *on_progress,
                     void *ctx)
{
    assert(self);
    if (s_check_name("service", service, true))
        return -1;
    cbs_t cbs = {on_success, on_failure, on_progress, ctx};
    return s_sync(self, "service", service, "", options_json, &cbs);
}

int
es_app_start_sync(es_client_t *self, const char *options_json, es_sync_cb *on_success,
                  es_sync_cb *on_failure, es_sync_cb *on_progress, void *ctx)
{
    assert(self);
    cbs_t cbs = {on_success, on_failure, on_progress, ctx};
    return s_sync(self, "app", "", "", options_json, &cbs);
}

//  --- events ----------------------------------------------------------------------------------

//  One PUB message: topic frame then message frame. 1 delivered (*stop set if cb or the session's
//  result ends the subscription), 0 nothing or skipped, -1 socket error.
static int
s_sub_read(es_client_t *self, void *sub, const char *session, es_event_cb *cb, void *ctx,
           bool *stop)
{
    zmq_msg_t topic, frame;
    zmq_msg_init(&topic);
    zmq_msg_init(&frame);
    int rc = 0;
    if (zmq_msg_recv(&topic, sub, ZMQ_DONTWAIT) == -1) {
        if (errno != EAGAIN && errno != EINTR)
            rc = s_fail(ES_CLIENT_ESYS, "event socket: %s", zmq_strerror(errno));
        goto done;
    }
    if (!zmq_msg_more(&topic))
        goto done; //  a lone frame is not ours: skipped
    if (zmq_msg_recv(&frame, sub, 0) == -1) {
        rc = s_fail(ES_CLIENT_ESYS, "event socket: %s", zmq_strerror(errno));
        goto done;
    }
    while (zmq_msg_more(&frame)) { //  extra frames: drain and skip the whole message
        zmq_msg_close(&frame);
        zmq_msg_init(&frame);
        if (zmq_msg_recv(&frame, sub, 0) == -1) {
            rc = s_fail(ES_CLIENT_ESYS, "event socket: %s", zmq_strerror(errno));
            goto done;
        }
        if (!zmq_msg_more(&frame))
            goto done;
    }
    es_msg_t m;
    es_err_t err;
    if (es_msg_decode(&m, zmq_msg_data(&frame), zmq_msg_size(&frame), &err))
        goto done; //  one bad message does not end the subscription
    if (m.type != ES_MSG_EVENT && m.type != ES_MSG_RESULT)
        goto done;
    //  Topics match by prefix: "progress.s1" also matches session "s10".
    const char *of = m.type == ES_MSG_EVENT ? m.u.event.session : m.u.result.session;
    if (session && strcmp(of, session) != 0)
        goto done;
    char name[ES_NAME_MAX + 32];
    snprintf(name, sizeof name, "%.*s", (int)zmq_msg_size(&topic), (char *)zmq_msg_data(&topic));
    es_slice_t body = m.type == ES_MSG_EVENT ? m.u.event.body : m.u.result.body;
    if (cb(ctx, name, s_text(self, body)))
        *stop = true;
    if (session && m.type == ES_MSG_RESULT)
        *stop = true;
    rc = 1;
done:
    zmq_msg_close(&topic);
    zmq_msg_close(&frame);
    return rc;
}

typedef struct {
    es_event_cb *cb;     //  the subscriber's callback
    void *ctx;           //  its context
    const char *session; //  session subscribed to
} sub_result_t;

//  A STATUS probe found the session done: deliver its result like the PUB would have.
static void
s_sub_result(void *ctx, const char *json)
{
    sub_result_t *r = ctx;
    char topic[ES_NAME_MAX + 32];
    snprintf(topic, sizeof topic, "result.%s", r->session);
    (void)r->cb(r->ctx, topic, json); //  the subscription ends anyway
}

int
es_client_subscribe(es_client_t *self, const char *event_endpoint, const char *session,
                    es_event_cb *cb, void *ctx)
{
    assert(self && cb);
    if (session && !*session)
        session = NULL;
    if (s_check_name("session", session, false) || s_check_endpoint("event", event_endpoint))
        return -1;
    void *sub = zmq_socket(self->zctx, ZMQ_SUB);
    if (!sub)
        return s_fail(ES_CLIENT_ESYS, "zmq_socket: %s", zmq_strerror(errno));
    int rc = -1;
    void *mon = NULL; //  the SUB's handshake events (network endpoints)
    es_msg_in_t in;
    es_msg_in_init(&in);
    if (s_sockopts(sub, self->timeout_ms) || s_curve_opts(self, sub, event_endpoint) ||
        s_monitor(self, sub, event_endpoint, &mon))
        goto done;
    char topics[2][ES_NAME_MAX + 32];
    snprintf(topics[0], sizeof topics[0], "progress.%s", session ? session : "");
    snprintf(topics[1], sizeof topics[1], "result.%s", session ? session : "");
    for (int i = 0; i < 2; i++)
        if (zmq_setsockopt(sub, ZMQ_SUBSCRIBE, topics[i], strlen(topics[i]))) {
            s_fail(ES_CLIENT_ESYS, "zmq_setsockopt SUBSCRIBE: %s", zmq_strerror(errno));
            goto done;
        }
    if (zmq_connect(sub, event_endpoint)) {
        s_fail(ES_CLIENT_EINVAL, "event endpoint '%s': %s", event_endpoint, zmq_strerror(errno));
        goto done;
    }
    sub_result_t sr = {cb, ctx, session};
    cbs_t cbs = {s_sub_result, s_sub_result, NULL, &sr};
    //  With a session: the first STATUS (soon after subscribing) catches a result published
    //  before the subscription took effect; later ones go out only while everything is quiet.
    int64_t start = s_now_ms();
    int64_t last_seen = start; //  last message from the daemon, either socket
    int64_t next_probe = start + S_SUB_SETTLE_MS;
    uint64_t first_probe = 0;
    for (;;) {
        if (self->interrupt && *self->interrupt) {
            s_fail(ES_CLIENT_EINTR, "interrupted");
            break;
        }
        int64_t now = s_now_ms();
        long wait = -1;
        if (session) {
            if (now - last_seen >= self->dead_ms) {
                s_fail(ES_CLIENT_ETIMEOUT,
                       "daemon at %s stopped answering: nothing about session %s for %d ms",
                       self->endpoint, session, self->dead_ms);
                break;
            }
            if (now >= next_probe) {
                es_msg_t probe;
                es_msg_init(&probe, ES_MSG_STATUS, 0);
                s_copy_name(probe.u.status.session, session);
                uint64_t pid = s_send(self, self->cmd, &probe);
                if (!pid && s_code != ES_CLIENT_ETIMEOUT)
                    break; //  a full queue only delays the probe; anything else is fatal
                if (pid && !first_probe)
                    first_probe = pid;
                next_probe = now + self->probe_ms;
            }
            int64_t next =
                next_probe < last_seen + self->dead_ms ? next_probe : last_seen + self->dead_ms;
            wait = next > now ? (long)(next - now) : 1;
        }
        if (self->interrupt && (wait < 0 || wait > S_INTR_SLICE_MS))
            wait = S_INTR_SLICE_MS;
        zmq_pollitem_t items[3] = {{sub, 0, ZMQ_POLLIN, 0},
                                   {self->cmd, 0, ZMQ_POLLIN, 0},
                                   {mon, 0, ZMQ_POLLIN, 0}};
        if (zmq_poll(items, mon ? 3 : 2, wait) == -1) {
            if (errno == EINTR)
                continue;
            s_fail(ES_CLIENT_ESYS, "zmq_poll: %s", zmq_strerror(errno));
            break;
        }
        //  A refused subscription would otherwise wait in silence.
        if (s_monitor_check(self, mon, event_endpoint) ||
            s_monitor_check(self, self->mon, self->endpoint))
            break;
        bool stop = false;
        if (items[0].revents & ZMQ_POLLIN) {
            int got = s_sub_read(self, sub, session, cb, ctx, &stop);
            if (got == -1)
                break;
            if (got == 1) {
                last_seen = s_now_ms();
                next_probe = next_probe > last_seen + self->probe_ms ? next_probe
                                                                     : last_seen + self->probe_ms;
            }
        }
        if (!stop && (items[1].revents & ZMQ_POLLIN)) {
            es_err_t err;
            es_msg_in_release(&in);
            es_msg_in_init(&in);
            int got = es_msg_recv(self->cmd, false, &in, &err);
            if (got == -1 && err.code == ES_ESYS) {
                s_fail_err(&err, "command socket");
                break;
            }
            if (got == 1 && first_probe && in.msg.request_id >= first_probe &&
                in.msg.type == ES_MSG_REPLY) {
                last_seen = s_now_ms();
                int prc;
                int done = s_probe_answer(self, session, &in.msg.u.reply, &cbs, &prc);
                if (done == -1)
                    break;
                if (done == 1)
                    stop = true;
            }
        }
        if (stop) {
            rc = 0;
            s_ok();
            break;
        }
    }
done:
    es_msg_in_release(&in);
    if (mon)
        (void)zmq_close(mon);
    (void)zmq_close(sub);
    return rc;
}
