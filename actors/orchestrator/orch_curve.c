//  orch_curve - the daemon's CURVE server key, client allow-list and ZAP handler.
#include "actors/orchestrator/orch_curve.h"
#include "common/es_actor.h"
#include "common/es_curve.h"
#include "common/es_log.h"
#include "common/es_mem.h"
#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#define S_ZAP_ENDPOINT "inproc://zeromq.zap.01" //  fixed by RFC 27
#define S_FRAMES 8                              //  a CURVE request has 7
#define S_LOG_SLOTS 16                          //  refused keys remembered for rate limiting
#define S_LOG_EVERY_MS 10000                    //  a refused key is logged at most this often

typedef struct {
    uint8_t key[ES_CURVE_KEY_LEN];
    int64_t last_ms; //  last time it was logged (0 = free slot)
    uint64_t quiet;  //  refusals not logged since
} refused_t;

struct orch_curve {
    const es_config_t *config;             //  borrowed
    char public_z85[ES_CURVE_Z85_LEN + 1]; //  the server's public key (logged at start)
    char secret_z85[ES_CURVE_Z85_LEN + 1]; //  its secret: never logged, wiped at the end
    es_curve_allow_t *allow;               //  allowed client keys
    void *zap;                             //  REP bound at S_ZAP_ENDPOINT
    int zap_fd;
    refused_t refused[S_LOG_SLOTS];
};

bool
orch_curve_needed(const char *endpoint)
{
    return strncmp(endpoint, "ipc://", 6) != 0;
}

static es_curve_allow_t *
s_load_allow(const char *path, es_err_t *err)
{
    es_curve_allow_t *allow = es_curve_allow_new(path, err);
    if (!allow)
        return NULL;
    if (es_curve_allow_size(allow) == 0)
        es_log_warn("curve.allow_keys_file %s: no keys: every CURVE client is refused", path);
    return allow;
}

orch_curve_t *
orch_curve_new(void *zctx, const es_config_t *config, es_err_t *err)
{
    assert(zctx && config);
    const char *secret_path = es_config_str(config, "curve.secret_key_file");
    const char *allow_path = es_config_str(config, "curve.allow_keys_file");
    if (!*secret_path || !*allow_path) {
        es_err_set(err, ES_ECONFIG,
                   "%s is not set: a tcp:// (network) endpoint needs CURVE: set "
                   "curve.secret_key_file and curve.allow_keys_file (keys from 'edgesync keygen')",
                   *secret_path ? "curve.allow_keys_file" : "curve.secret_key_file");
        return NULL;
    }
    if (!es_curve_available()) {
        es_err_set(err, ES_ESYS, "this libzmq has no CURVE support (built without libsodium)");
        return NULL;
    }
    orch_curve_t *self = es_calloc(1, sizeof *self);
    self->config = config;
    if (es_curve_load_secret(secret_path, self->public_z85, self->secret_z85, err)) {
        es_err_prefix(err, "curve.secret_key_file");
        goto fail;
    }
    self->allow = s_load_allow(allow_path, err);
    if (!self->allow) {
        es_err_prefix(err, "curve.allow_keys_file");
        goto fail;
    }
    //  Bound before any CURVE socket: without a handler libzmq would let every key in.
    int linger = 0;
    size_t fdlen = sizeof self->zap_fd;
    self->zap = zmq_socket(zctx, ZMQ_REP);
    if (!self->zap || zmq_setsockopt(self->zap, ZMQ_LINGER, &linger, sizeof linger) ||
        zmq_bind(self->zap, S_ZAP_ENDPOINT) ||
        zmq_getsockopt(self->zap, ZMQ_FD, &self->zap_fd, &fdlen)) {
        es_err_set(err, ES_ESYS, "ZAP handler %s: %s", S_ZAP_ENDPOINT, zmq_strerror(errno));
        goto fail;
    }
    es_log_info("curve: server public key %s, %zu allowed client keys from %s", self->public_z85,
                es_curve_allow_size(self->allow), allow_path);
    return self;
fail:
    orch_curve_destroy(&self);
    return NULL;
}

void
orch_curve_destroy(orch_curve_t **self_p)
{
    if (!*self_p)
        return;
    orch_curve_t *self = *self_p;
    if (self->zap)
        (void)zmq_close(self->zap); //  linger 0: nothing to flush
    es_curve_allow_destroy(&self->allow);
    explicit_bzero(self->secret_z85, sizeof self->secret_z85);
    free(self);
    *self_p = NULL;
}

int
orch_curve_apply(orch_curve_t *self, void *socket, const char *name, es_err_t *err)
{
    int server = 1;
    if (zmq_setsockopt(socket, ZMQ_CURVE_SERVER, &server, sizeof server) ||
        zmq_setsockopt(socket, ZMQ_CURVE_SECRETKEY, self->secret_z85, ES_CURVE_Z85_LEN + 1) ||
        zmq_setsockopt(socket, ZMQ_ZAP_DOMAIN, name, strlen(name)))
        return es_err_set(err, ES_ESYS, "%s socket: CURVE options: %s", name, zmq_strerror(errno));
    return 0;
}

int
orch_curve_fd(const orch_curve_t *self)
{
    return self->zap_fd;
}

bool
orch_curve_readable(orch_curve_t *self)
{
    uint32_t ev = 0;
    size_t len = sizeof ev;
    return zmq_getsockopt(self->zap, ZMQ_EVENTS, &ev, &len) == 0 && (ev & ZMQ_POLLIN);
}

static bool
s_frame_is(zmq_msg_t *m, const char *text)
{
    size_t n = strlen(text);
    return zmq_msg_size(m) == n && memcmp(zmq_msg_data(m), text, n) == 0;
}

//  A refused key is logged once per S_LOG_EVERY_MS: a client keeps reconnecting (every 100 ms
//  by default) and would otherwise fill the log.
static void
s_log_refused(orch_curve_t *self, const uint8_t *key, const char *domain, const char *address)
{
    int64_t now = es_now_ms();
    refused_t *slot = NULL, *oldest = &self->refused[0];
    for (size_t i = 0; i < S_LOG_SLOTS && !slot; i++) {
        refused_t *r = &self->refused[i];
        if (r->last_ms && memcmp(r->key, key, ES_CURVE_KEY_LEN) == 0)
            slot = r;
        else if (r->last_ms < oldest->last_ms)
            oldest = r;
    }
    if (slot && now - slot->last_ms < S_LOG_EVERY_MS) {
        slot->quiet++;
        return;
    }
    uint64_t quiet = slot ? slot->quiet : 0;
    if (!slot) {
        slot = oldest;
        memcpy(slot->key, key, ES_CURVE_KEY_LEN);
    }
    slot->last_ms = now;
    slot->quiet = 0;
    char z85[ES_CURVE_Z85_LEN + 1];
    if (!zmq_z85_encode(z85, key, ES_CURVE_KEY_LEN))
        snprintf(z85, sizeof z85, "?");
    char more[64] = "";
    if (quiet)
        snprintf(more, sizeof more, " (%llu more refusals since the last report)",
                 (unsigned long long)quiet);
    es_log_warn("%s socket: refused CURVE client key %s from %s: not in curve.allow_keys_file%s",
                domain, z85, address, more);
}

//  Decide one request (frames f[0..n)): status code and text, user id (the client key).
static const char *
s_decide(orch_curve_t *self, zmq_msg_t *f, size_t n, const char **text, char *user)
{
    user[0] = '\0';
    if (n < 6 || !s_frame_is(&f[0], "1.0")) {
        es_log_warn("ZAP: malformed request (%zu frames)", n);
        *text = "malformed ZAP request";
        return "500";
    }
    char domain[64], address[64];
    snprintf(domain, sizeof domain, "%.*s", (int)zmq_msg_size(&f[2]), (char *)zmq_msg_data(&f[2]));
    snprintf(address, sizeof address, "%.*s", (int)zmq_msg_size(&f[3]),
             (char *)zmq_msg_data(&f[3]));
    if (!s_frame_is(&f[5], "CURVE") || n < 7 || zmq_msg_size(&f[6]) != ES_CURVE_KEY_LEN) {
        es_log_warn("%s socket: refused a client from %s: mechanism %.*s is not CURVE", domain,
                    address, (int)zmq_msg_size(&f[5]), (char *)zmq_msg_data(&f[5]));
        *text = "CURVE required";
        return "400";
    }
    const uint8_t *key = zmq_msg_data(&f[6]);
    if (!es_curve_allow_has(self->allow, key)) {
        s_log_refused(self, key, domain, address);
        *text = "client key not authorised";
        return "400";
    }
    if (!zmq_z85_encode(user, key, ES_CURVE_KEY_LEN))
        user[0] = '\0';
    es_log_debug("%s socket: CURVE client %s from %s accepted", domain, user, address);
    *text = "OK";
    return "200";
}

//  Receive and answer one request. 1 answered, 0 none waiting, -1 socket error.
static int
s_handle_one(orch_curve_t *self)
{
    zmq_msg_t f[S_FRAMES];
    size_t n = 0;
    int rc = 0;
    bool more = true;
    while (more) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, self->zap, n == 0 ? ZMQ_DONTWAIT : 0) == -1) {
            zmq_msg_close(&m);
            if (n == 0 && errno == EAGAIN)
                return 0;
            es_log_error("ZAP handler: receive: %s", zmq_strerror(errno));
            rc = -1;
            goto done;
        }
        more = zmq_msg_more(&m);
        if (n < S_FRAMES)
            f[n++] = m; //  the message moves into f
        else
            zmq_msg_close(&m); //  extra frames: not part of RFC 27, ignored
    }
    const char *text;
    char user[ES_CURVE_Z85_LEN + 1];
    const char *status = s_decide(self, f, n, &text, user);
    //  Reply: version, request id, status code, status text, user id, metadata.
    const void *data[6] = {"1.0", n > 1 ? zmq_msg_data(&f[1]) : "", status, text, user, ""};
    size_t sizes[6] = {3, n > 1 ? zmq_msg_size(&f[1]) : 0, 3, strlen(text), strlen(user), 0};
    for (int i = 0; i < 6; i++)
        if (zmq_send(self->zap, data[i], sizes[i], i < 5 ? ZMQ_SNDMORE : 0) == -1) {
            es_log_error("ZAP handler: reply: %s", zmq_strerror(errno));
            rc = -1;
            goto done;
        }
    rc = 1;
done:
    for (size_t i = 0; i < n; i++)
        zmq_msg_close(&f[i]);
    return rc;
}

void
orch_curve_handle(orch_curve_t *self)
{
    while (s_handle_one(self) == 1)
        ;
}

int
orch_curve_reload(orch_curve_t *self, es_err_t *err)
{
    const char *path = es_config_str(self->config, "curve.allow_keys_file");
    es_curve_allow_t *allow = s_load_allow(path, err);
    if (!allow)
        return es_err_prefix(err, "curve.allow_keys_file");
    size_t before = es_curve_allow_size(self->allow);
    es_curve_allow_destroy(&self->allow);
    self->allow = allow;
    es_log_info("curve: allow-list reloaded from %s: %zu keys (was %zu)", path,
                es_curve_allow_size(allow), before);
    return 0;
}
