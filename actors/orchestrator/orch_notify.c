//  orch_notify - sd_notify(3) for edgesyncd: one AF_UNIX datagram per message to $NOTIFY_SOCKET.
#include "actors/orchestrator/orch_notify.h"
#include "common/es_actor.h"
#include "common/es_log.h"
#include "common/es_mem.h"
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

struct orch_notify {
    int fd;                  //  datagram socket, -1 when not started by systemd
    struct sockaddr_un addr; //  $NOTIFY_SOCKET
    socklen_t addr_len;
    int64_t watchdog_ms;  //  ping period (half of WATCHDOG_USEC), 0 = no watchdog
    int64_t last_ping_ms; //  0 = never pinged
    bool ready_sent;      //  READY=1 is sent once per process
    size_t last_ready;    //  counts of the last STATUS= line, SIZE_MAX before the first
    size_t last_total;
    bool failing; //  the last send failed (log a failure once, not every ping)
};

//  The variable's value, or NULL if unset; unset either way so that exec'd actors do not see it.
static char *
s_take_env(const char *name)
{
    const char *v = getenv(name);
    char *copy = v ? es_strdup(v) : NULL;
    (void)unsetenv(name); //  fails only for an invalid name, and ours are constants
    return copy;
}

static int
s_parse_u64(const char *name, const char *text, uint64_t *out, es_err_t *err)
{
    errno = 0;
    char *end;
    unsigned long long v = strtoull(text, &end, 10);
    if (errno || end == text || *end || text[0] == '-' || v == 0)
        return es_err_set(err, ES_EINVAL, "%s: expected a positive integer, got '%s'", name, text);
    *out = v;
    return 0;
}

static int
s_setup(orch_notify_t *self, const char *sock, const char *usec, const char *pid, es_err_t *err)
{
    if (usec) {
        uint64_t us = 0, who = 0; //  = 0: gcc -O2 cannot see s_parse_u64 sets it
        if (s_parse_u64("WATCHDOG_USEC", usec, &us, err))
            return -1;
        if (pid && s_parse_u64("WATCHDOG_PID", pid, &who, err))
            return -1;
        //  A WATCHDOG_PID naming another process means the watchdog is not ours to feed.
        if (!pid || who == (uint64_t)getpid()) {
            self->watchdog_ms = (int64_t)(us / 2000);
            if (self->watchdog_ms < 1)
                self->watchdog_ms = 1;
        }
    }
    if (!sock || !*sock)
        return 0;
    //  "/path" or "@abstract"; other forms (vsock:) are not used for services on a gateway.
    size_t len = strlen(sock);
    if (sock[0] != '/' && sock[0] != '@')
        return es_err_set(err, ES_EINVAL,
                          "NOTIFY_SOCKET: expected an absolute path or @abstract name, got '%s'",
                          sock);
    if (len >= sizeof self->addr.sun_path)
        return es_err_set(err, ES_EINVAL, "NOTIFY_SOCKET: longer than %zu bytes: '%s'",
                          sizeof self->addr.sun_path - 1, sock);
    self->addr.sun_family = AF_UNIX;
    memcpy(self->addr.sun_path, sock, len);
    if (sock[0] == '@')
        self->addr.sun_path[0] = '\0'; //  abstract namespace: no terminating NUL counted
    else
        len++;
    self->addr_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len);
    self->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (self->fd == -1)
        return es_err_set(err, ES_ESYS, "NOTIFY_SOCKET: socket: %s", strerror(errno));
    return 0;
}

orch_notify_t *
orch_notify_new(es_err_t *err)
{
    orch_notify_t *self = es_calloc(1, sizeof *self);
    self->fd = -1;
    self->last_ready = self->last_total = SIZE_MAX;
    char *sock = s_take_env("NOTIFY_SOCKET");
    char *usec = s_take_env("WATCHDOG_USEC");
    char *pid = s_take_env("WATCHDOG_PID");
    int rc = s_setup(self, sock, usec, pid, err);
    free(sock);
    free(usec);
    free(pid);
    if (rc)
        orch_notify_destroy(&self);
    else if (self->fd == -1)
        self->watchdog_ms = 0; //  nobody to ping
    return self;
}

void
orch_notify_destroy(orch_notify_t **self_p)
{
    if (!*self_p)
        return;
    orch_notify_t *self = *self_p;
    if (self->fd >= 0)
        close(self->fd);
    free(self);
    *self_p = NULL;
}

static void s_send(orch_notify_t *self, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

//  Never blocks: a full or absent receiver loses the datagram, which systemd tolerates (a lost
//  ping is covered by the next one at half the watchdog period).
static void
s_send(orch_notify_t *self, const char *fmt, ...)
{
    if (self->fd < 0)
        return;
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof msg)
        n = (int)strlen(msg); //  truncated STATUS text is still a valid message
    ssize_t sent = sendto(self->fd, msg, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT,
                          (const struct sockaddr *)&self->addr, self->addr_len);
    if (sent == (ssize_t)n) {
        if (self->failing)
            es_log_info("systemd notification socket: sending again");
        self->failing = false;
    } else if (!self->failing) {
        es_log_warn("systemd notification socket: send: %s",
                    sent < 0 ? strerror(errno) : "short datagram");
        self->failing = true;
    }
}

void
orch_notify_tick(orch_notify_t *self, size_t ready, size_t total)
{
    if (self->fd < 0)
        return;
    if (ready != self->last_ready || total != self->last_total) {
        self->last_ready = ready;
        self->last_total = total;
        if (ready == total && !self->ready_sent) {
            s_send(self, "READY=1\nSTATUS=running: all %zu actors ready", total);
            self->ready_sent = true;
        } else if (ready == total)
            s_send(self, "STATUS=running: all %zu actors ready", total);
        else if (!self->ready_sent)
            s_send(self, "STATUS=starting: %zu of %zu actors ready", ready, total);
        else
            s_send(self, "STATUS=degraded: %zu of %zu actors ready, restarting the others", ready,
                   total);
    }
    int64_t now = es_now_ms();
    if (self->watchdog_ms && now - self->last_ping_ms >= self->watchdog_ms) {
        s_send(self, "WATCHDOG=1");
        self->last_ping_ms = now;
    }
}

int
orch_notify_next_ms(const orch_notify_t *self, int cap)
{
    if (!self->watchdog_ms)
        return cap;
    int64_t left = self->last_ping_ms + self->watchdog_ms - es_now_ms();
    if (left < 0)
        left = 0;
    return left < cap ? (int)left : cap;
}

void
orch_notify_stopping(orch_notify_t *self)
{
    s_send(self, "STOPPING=1\nSTATUS=stopping: actors first");
}
