//  es_actor - actor process runtime: signals, socket, heartbeats, loop step.
#include "common/es_actor.h"
#include "common/es_log.h"
#include "common/es_mem.h"
#include <assert.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

struct es_actor {
    void *zctx;           //  ZeroMQ context
    void *sock;           //  DEALER to the orchestrator
    int sock_fd;          //  ZMQ_FD of sock (edge-triggered)
    int sigfd;            //  SIGTERM/SIGINT
    pid_t parent;         //  orchestrator pid at start
    bool terminated;      //  stop requested
    bool busy;            //  a job is running
    int heartbeat_ms;     //  heartbeat period
    int64_t next_beat;    //  when the next heartbeat is due
    es_msg_in_t in;       //  receive buffer
    es_log_limit_t bad;   //  malformed messages from the orchestrator's socket
};

int64_t
es_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t
es_epoch_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int
s_copy(char *dst, size_t size, const char *src, const char *what, es_err_t *err)
{
    if (strlen(src) >= size)
        return es_err_set(err, ES_EINVAL, "%s: longer than %zu bytes", what, size - 1);
    strcpy(dst, src);
    return 0;
}

int
es_actor_opts_parse(es_actor_opts_t *opts, int argc, char *argv[], es_err_t *err)
{
    memset(opts, 0, sizeof *opts);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (i + 1 >= argc)
            return es_err_set(err, ES_EINVAL, "%s: missing value", a);
        const char *v = argv[++i];
        int rc;
        if (strcmp(a, "--endpoint") == 0)
            rc = s_copy(opts->endpoint, sizeof opts->endpoint, v, a, err);
        else if (strcmp(a, "--data-dir") == 0)
            rc = s_copy(opts->data_dir, sizeof opts->data_dir, v, a, err);
        else if (strcmp(a, "--config") == 0)
            rc = s_copy(opts->config, sizeof opts->config, v, a, err);
        else if (strcmp(a, "--worker") == 0) {
            char *end;
            long n = strtol(v, &end, 10);
            if (*end || end == v || n < 0 || n > 1000)
                return es_err_set(err, ES_EINVAL, "--worker: expected 0..1000, got '%s'", v);
            opts->worker = (uint32_t)n;
            rc = 0;
        } else
            return es_err_set(err, ES_EINVAL,
                              "unknown argument '%s' (usage: --endpoint EP --data-dir DIR "
                              "[--config FILE] [--worker N])",
                              a);
        if (rc)
            return -1;
    }
    if (!opts->endpoint[0] || !opts->data_dir[0])
        return es_err_set(err, ES_EINVAL, "--endpoint and --data-dir are required");
    return 0;
}

es_actor_t *
es_actor_new(const char *kind, const es_actor_opts_t *opts, int heartbeat_ms, es_err_t *err)
{
    es_actor_t *self = es_calloc(1, sizeof *self);
    self->bad.what = "dropped malformed messages";
    self->sigfd = -1;
    self->heartbeat_ms = heartbeat_ms;
    self->parent = getppid();
    es_msg_in_init(&self->in);
    //  Die with the orchestrator; then check the parent did not die before prctl. The parent
    //  pid is the one exec'd us: an early death re-parents us before we get here.
    if (prctl(PR_SET_PDEATHSIG, SIGTERM) == -1) {
        es_err_set(err, ES_ESYS, "prctl: %s", strerror(errno));
        goto fail;
    }
    if (self->parent == 1 || getppid() != self->parent) {
        es_err_set(err, ES_ESYS, "the orchestrator exited before this actor started");
        goto fail;
    }
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    if (sigprocmask(SIG_BLOCK, &set, NULL) == -1 ||
        (self->sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC)) == -1) {
        es_err_set(err, ES_ESYS, "signalfd: %s", strerror(errno));
        goto fail;
    }
    self->zctx = zmq_ctx_new();
    if (!self->zctx) {
        es_err_set(err, ES_ESYS, "zmq_ctx_new: %s", zmq_strerror(errno));
        goto fail;
    }
    self->sock = zmq_socket(self->zctx, ZMQ_DEALER);
    char id[64];
    int idlen = snprintf(id, sizeof id, "%s.%u", kind, opts->worker);
    int linger = 0;
    int64_t maxmsg = ES_MSG_MAX_SIZE;
    size_t fdlen = sizeof self->sock_fd;
    if (!self->sock || zmq_setsockopt(self->sock, ZMQ_LINGER, &linger, sizeof linger) ||
        zmq_setsockopt(self->sock, ZMQ_MAXMSGSIZE, &maxmsg, sizeof maxmsg) ||
        zmq_setsockopt(self->sock, ZMQ_ROUTING_ID, id, (size_t)idlen) ||
        zmq_connect(self->sock, opts->endpoint) ||
        zmq_getsockopt(self->sock, ZMQ_FD, &self->sock_fd, &fdlen)) {
        es_err_set(err, ES_ESYS, "socket %s: %s", opts->endpoint, zmq_strerror(errno));
        goto fail;
    }
    es_msg_t hello;
    es_msg_init(&hello, ES_MSG_HELLO, 0);
    snprintf(hello.u.hello.kind, sizeof hello.u.hello.kind, "%s", kind);
    hello.u.hello.pid = (uint32_t)getpid();
    hello.u.hello.worker = opts->worker;
    if (es_actor_send(self, &hello, err))
        goto fail;
    self->next_beat = es_now_ms() + heartbeat_ms;
    return self;
fail:
    es_actor_destroy(&self);
    return NULL;
}

void
es_actor_destroy(es_actor_t **self_p)
{
    if (!*self_p)
        return;
    es_actor_t *self = *self_p;
    es_msg_in_release(&self->in);
    if (self->sock)
        zmq_close(self->sock);
    if (self->zctx)
        zmq_ctx_term(self->zctx);
    if (self->sigfd >= 0)
        close(self->sigfd);
    free(self);
    *self_p = NULL;
}

int
es_actor_send(es_actor_t *self, const es_msg_t *msg, es_err_t *err)
{
    return es_msg_send(self->sock, NULL, 0, msg, err);
}

static void
s_read_signals(es_actor_t *self)
{
    struct signalfd_siginfo si;
    while (read(self->sigfd, &si, sizeof si) == (ssize_t)sizeof si) {
        es_log_info("signal %u: stopping", si.ssi_signo);
        self->terminated = true;
    }
}

//  Drain every waiting message: ZMQ_FD is edge-triggered, so partial draining would stall.
static int
s_drain(es_actor_t *self, es_actor_msg_fn *fn, void *ctx, es_err_t *err)
{
    for (;;) {
        es_err_t rerr;
        int rc = es_msg_recv(self->sock, false, &self->in, &rerr);
        if (rc == 0)
            return 0;
        if (rc < 0) {
            if (rerr.code == ES_ESYS) {
                *err = rerr;
                return -1;
            }
            if (es_log_limit_allow(&self->bad, es_now_ms()))
                es_log_warn("dropped a malformed message: %s", rerr.what);
            continue;
        }
        if (fn)
            fn(ctx, &self->in.msg);
        if (self->in.msg.type == ES_MSG_STOP)
            self->terminated = true;
    }
}

static int s_step(es_actor_t *self, es_http_t *http, zmq_pollitem_t *extra, int n,
                  int timeout_ms, es_actor_msg_fn *fn, void *ctx, es_err_t *err);

int
es_actor_step(es_actor_t *self, es_http_t *http, int timeout_ms, es_actor_msg_fn *fn, void *ctx,
              es_err_t *err)
{
    return s_step(self, http, NULL, 0, timeout_ms, fn, ctx, err);
}

int
es_actor_step_poll(es_actor_t *self, zmq_pollitem_t *extra, int n, int timeout_ms,
                   es_actor_msg_fn *fn, void *ctx, es_err_t *err)
{
    assert(n >= 0 && n <= 8 && (extra || n == 0));
    return s_step(self, NULL, extra, n, timeout_ms, fn, ctx, err);
}

static int
s_step(es_actor_t *self, es_http_t *http, zmq_pollitem_t *extra, int n, int timeout_ms,
       es_actor_msg_fn *fn, void *ctx, es_err_t *err)
{
    int64_t now = es_now_ms();
    int64_t until_beat = self->next_beat - now;
    if (until_beat < 0)
        until_beat = 0;
    if (timeout_ms < 0 || timeout_ms > until_beat)
        timeout_ms = (int)until_beat;
    //  Messages may already be queued (the edge was consumed by an earlier send/recv).
    uint32_t events = 0;
    size_t elen = sizeof events;
    if (zmq_getsockopt(self->sock, ZMQ_EVENTS, &events, &elen) == 0 && (events & ZMQ_POLLIN))
        timeout_ms = 0;
    if (http) {
        struct curl_waitfd extra[2] = {{self->sock_fd, CURL_WAIT_POLLIN, 0},
                                       {self->sigfd, CURL_WAIT_POLLIN, 0}};
        if (es_http_wait(http, extra, 2, timeout_ms, err))
            return -1;
    } else {
        zmq_pollitem_t items[10] = {{self->sock, 0, ZMQ_POLLIN, 0},
                                    {NULL, self->sigfd, ZMQ_POLLIN, 0}};
        for (int i = 0; i < n; i++) {
            items[2 + i] = extra[i];
            items[2 + i].revents = 0;
        }
        int rc = zmq_poll(items, 2 + n, timeout_ms);
        if (rc == -1 && errno != EINTR)
            return es_err_set(err, ES_ESYS, "poll: %s", zmq_strerror(errno));
        for (int i = 0; i < n; i++)
            extra[i].revents = rc == -1 ? 0 : items[2 + i].revents;
    }
    //  A process stopped (SIGSTOP) until the orchestrator that owns its job died or replaced
    //  it must not finish that job when continued: no more messages, transfers or writes.
    if (getppid() != self->parent) {
        es_log_warn("the orchestrator (pid %d) is gone: exiting without further work",
                    (int)self->parent);
        self->terminated = true;
        return 0;
    }
    s_read_signals(self);
    if (s_drain(self, fn, ctx, err))
        return -1;
    if (http)
        es_http_perform(http);
    if (getppid() != self->parent)
        self->terminated = true;
    if (es_now_ms() >= self->next_beat)
        es_actor_beat(self);
    (void)es_log_limit_flush(&self->bad, es_now_ms()); //  summary of a flood that ended
    return 0;
}

void
es_actor_beat(es_actor_t *self)
{
    es_msg_t beat;
    es_msg_init(&beat, ES_MSG_HEARTBEAT, 0);
    beat.u.heartbeat.busy = self->busy;
    es_err_t err;
    //  A full queue (the orchestrator is busy) is not fatal: the next beat will do.
    if (es_actor_send(self, &beat, &err))
        es_log_debug("heartbeat not sent: %s", err.what);
    self->next_beat = es_now_ms() + self->heartbeat_ms;
}

bool
es_actor_terminated(const es_actor_t *self)
{
    return self->terminated;
}

void
es_actor_set_busy(es_actor_t *self, bool busy)
{
    self->busy = busy;
}
