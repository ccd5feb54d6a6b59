//  stats_http - GET /metrics over libmicrohttpd in external-epoll mode.
#include "actors/stats/stats_http.h"
#include "common/es_config.h"
#include "common/es_log.h"
#include "common/es_mem.h"
#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

struct stats_http {
    struct MHD_Daemon *mhd;
    stats_http_render_fn *fn;
    void *ctx;
    int fd;        //  MHD's epoll descriptor
    uint16_t port; //  bound port
};

int
stats_http_parse_listen(const char *listen, bool allow_remote, struct sockaddr_storage *sa,
                        socklen_t *salen, es_err_t *err)
{
    //  One parser: edgesyncd checks the same value when it loads the configuration.
    return es_config_parse_listen(listen, allow_remote, sa, salen, err);
}

static void
s_free_page(void *cls)
{
    free(cls);
}

static enum MHD_Result
s_handler(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
          const char *version, const char *upload_data, size_t *upload_size, void **con_cls)
{
    (void)version;
    (void)upload_data;
    (void)con_cls;
    stats_http_t *self = cls;
    unsigned int status = MHD_HTTP_OK;
    const char *ctype = "text/plain; version=0.0.4; charset=utf-8";
    es_buf_t body;
    es_buf_init(&body);
    if (*upload_size) {
        //  No body is expected: discard it, answer once it has all been read.
        *upload_size = 0;
        es_buf_release(&body);
        return MHD_YES;
    }
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
        status = MHD_HTTP_METHOD_NOT_ALLOWED;
        es_buf_printf(&body, "method %s not allowed: GET /metrics\n", method);
    } else if (strcmp(url, "/metrics") != 0) {
        status = MHD_HTTP_NOT_FOUND;
        es_buf_puts(&body, "not found: the metrics are at /metrics\n");
    } else {
        self->fn(self->ctx, &body);
    }
    if (!body.data)
        es_buf_puts(&body, "");
    size_t len = body.len;
    struct MHD_Response *r =
        MHD_create_response_from_buffer_with_free_callback(len, es_buf_steal(&body), s_free_page);
    if (!r)
        return MHD_NO;
    enum MHD_Result rc = MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE,
                                                 status == MHD_HTTP_OK ? ctype : "text/plain");
    if (rc == MHD_YES && status == MHD_HTTP_METHOD_NOT_ALLOWED)
        rc = MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
    if (rc == MHD_YES)
        rc = MHD_queue_response(conn, status, r);
    MHD_destroy_response(r);
    return rc;
}

stats_http_t *
stats_http_new(const char *listen, bool allow_remote, stats_http_render_fn *fn, void *ctx,
               es_err_t *err)
{
    assert(listen && fn);
    struct sockaddr_storage sa;
    socklen_t salen;
    if (stats_http_parse_listen(listen, allow_remote, &sa, &salen, err))
        return NULL;
    stats_http_t *self = es_calloc(1, sizeof *self);
    self->fn = fn;
    self->ctx = ctx;
    unsigned int flags = MHD_USE_EPOLL | (sa.ss_family == AF_INET6 ? MHD_USE_IPv6 : 0);
    //  Few scrapers, small requests: bounded connections, each closed after 10 s idle.
    self->mhd = MHD_start_daemon(
        flags, 0, NULL, NULL, s_handler, self, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned int)16, MHD_OPTION_CONNECTION_TIMEOUT,
        (unsigned int)10, MHD_OPTION_LISTENING_ADDRESS_REUSE, (unsigned int)1, MHD_OPTION_END);
    if (!self->mhd) {
        es_err_set(err, ES_ESYS, "metrics.listen: cannot listen on %s (address in use?)", listen);
        stats_http_destroy(&self);
        return NULL;
    }
    const union MHD_DaemonInfo *fdi = MHD_get_daemon_info(self->mhd, MHD_DAEMON_INFO_EPOLL_FD);
    const union MHD_DaemonInfo *pi = MHD_get_daemon_info(self->mhd, MHD_DAEMON_INFO_BIND_PORT);
    if (!fdi || fdi->epoll_fd < 0) {
        es_err_set(err, ES_ESYS, "metrics: libmicrohttpd has no epoll descriptor");
        stats_http_destroy(&self);
        return NULL;
    }
    self->fd = fdi->epoll_fd;
    self->port = pi ? pi->port : 0;
    return self;
}

void
stats_http_destroy(stats_http_t **self_p)
{
    if (!*self_p)
        return;
    stats_http_t *self = *self_p;
    if (self->mhd)
        MHD_stop_daemon(self->mhd);
    free(self);
    *self_p = NULL;
}

int
stats_http_fd(const stats_http_t *self)
{
    return self->fd;
}

int
stats_http_timeout_ms(const stats_http_t *self, int cap)
{
    MHD_UNSIGNED_LONG_LONG ms;
    if (MHD_get_timeout(self->mhd, &ms) == MHD_YES && ms < (MHD_UNSIGNED_LONG_LONG)cap)
        return (int)ms;
    return cap;
}

void
stats_http_run(stats_http_t *self)
{
    if (MHD_run(self->mhd) != MHD_YES)
        es_log_warn("metrics: libmicrohttpd run failed");
}

uint16_t
stats_http_port(const stats_http_t *self)
{
    return self->port;
}
