//  srv_http - the two libmicrohttpd listeners: the object service API (appconfig, metadata,
//  download, upload; token auth; fault injection) and the loopback-only admin port (faults,
//  record edits and listings, reset, stats). One thread per connection, so latency and hang
//  faults simply sleep.
#include "common/es_log.h"
#include "common/es_mem.h"
#include "server/srv.h"
#include <arpa/inet.h>
#include <inttypes.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define S_DATA_PREFIX "/services/data/v1/"
#define S_META_PREFIX "/services/metadata/v1/"
#define S_ADMIN_RECORDS "/admin/records/"

typedef struct {
    srv_http_t *http; //  owner
    bool admin;       //  the admin listener
} s_listener_t;

struct srv_http {
    srv_t *srv;                  //  shared state (borrowed)
    struct MHD_Daemon *api;      //  service listener
    struct MHD_Daemon *admin;    //  admin listener (127.0.0.1)
    s_listener_t api_l, admin_l; //  handler contexts
    int port, admin_port;        //  bound ports
};

//  Per request: the body as it arrives.
typedef struct {
    es_buf_t body; //  request body
    bool too_big;  //  body went over the limit; the rest is discarded
} s_conn_t;

typedef struct {
    char *data; //  whole body
    size_t cut; //  bytes served before the connection breaks
} s_drop_t;

static ssize_t
s_drop_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    s_drop_t *d = cls;
    if (pos >= d->cut)
        return MHD_CONTENT_READER_END_WITH_ERROR;
    size_t n = d->cut - (size_t)pos;
    if (n > max)
        n = max;
    memcpy(buf, d->data + pos, n);
    return (ssize_t)n;
}

static void
s_drop_free(void *cls)
{
    s_drop_t *d = cls;
    free(d->data);
    free(d);
}

//  Queue resp, mangled as a fault says. MHD_NO closes the connection without an answer.
static enum MHD_Result
s_send(struct MHD_Connection *conn, srv_resp_t *r, srv_fkind_t mangle, const char *ctype)
{
    if (mangle == SRV_F_LOST_RESPONSE)
        return MHD_NO;
    if (mangle == SRV_F_MALFORMED) {
        es_buf_reset(&r->body);
        es_buf_puts(&r->body, "<html>upstream garbage {\"opstatus\":0,\"records\":[{\"id\":,]]");
        r->status = 200;
    } else if (mangle == SRV_F_TRUNCATE) {
        //  A complete HTTP answer whose JSON stops half way.
        r->body.len /= 2;
        r->body.data[r->body.len] = '\0';
    }
    size_t len = r->body.len;
    struct MHD_Response *resp;
    if (mangle == SRV_F_DROP) {
        s_drop_t *d = es_malloc(sizeof *d);
        d->data = es_buf_steal(&r->body);
        d->cut = len / 2;
        resp = MHD_create_response_from_callback(len, 64 * 1024, s_drop_read, d, s_drop_free);
        if (!resp) {
            s_drop_free(d);
            return MHD_NO;
        }
    } else {
        char *data = es_buf_steal(&r->body);
        resp = MHD_create_response_from_buffer(len, data, MHD_RESPMEM_MUST_FREE);
        if (!resp) {
            free(data);
            return MHD_NO;
        }
    }
    if (MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype) == MHD_NO) {
        MHD_destroy_response(resp);
        return MHD_NO;
    }
    if (r->retry_after > 0) {
        char ra[16];
        snprintf(ra, sizeof ra, "%d", r->retry_after);
        (void)MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, ra); //  best effort
    }
    enum MHD_Result rc = MHD_queue_response(conn, (unsigned)r->status, resp);
    MHD_destroy_response(resp);
    return rc;
}

static const char *
s_header(struct MHD_Connection *conn, const char *name)
{
    return MHD_lookup_connection_value(conn, MHD_HEADER_KIND, name);
}

//  Constant-time comparison: the token must not leak through timing.
static bool
s_token_ok(const char *expected, const char *got)
{
    if (!got)
        return false;
    size_t n = strlen(expected), m = strlen(got);
    unsigned char diff = n != m;
    for (size_t i = 0; i < m; i++)
        diff |= (unsigned char)(got[i] ^ expected[i % (n ? n : 1)]);
    return diff == 0;
}

static void
s_appconfig(srv_http_t *self, struct MHD_Connection *conn, srv_resp_t *r)
{
    const char *host = s_header(conn, MHD_HTTP_HEADER_HOST);
    char fallback[80];
    //  The Host header goes into URLs: accept only host:port characters.
    if (!host || !*host || strlen(host) > 255 ||
        strspn(host, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-:[]") !=
            strlen(host)) {
        snprintf(fallback, sizeof fallback, "%s:%d", self->srv->opts->bind, self->port);
        host = fallback;
    }
    r->status = 200;
    es_buf_reset(&r->body);
    es_buf_printf(&r->body,
                  "{\"objectsvc\":{\"%s\":{\"url\":\"http://%s" S_DATA_PREFIX "%s\","
                  "\"metadata_url\":\"http://%s" S_META_PREFIX "%s\",\"version\":\"1.0\"}}}",
                  SRV_SERVICE, host, SRV_SERVICE, host, SRV_SERVICE);
    srv_stats_count(self->srv->stats, SRV_K_APPCONFIG);
}

//  "/services/data/v1/<Svc>[/objects/<Obj>]": -2 not this server's service (404 set), -1 the
//  service itself, else the object index.
static int
s_route_data(srv_http_t *self, const char *rest, srv_resp_t *r)
{
    size_t n = strcspn(rest, "/");
    if (n != strlen(SRV_SERVICE) || strncmp(rest, SRV_SERVICE, n) != 0) {
        srv_resp_error(r, 404, 404, "unknown object service '%.*s'", (int)(n > 100 ? 100 : n),
                       rest);
        return -2;
    }
    rest += n;
    if (*rest == '\0' || strcmp(rest, "/") == 0)
        return -1;
    if (strncmp(rest, "/objects/", 9) != 0) {
        srv_resp_error(r, 404, 404, "no such resource '%.100s'", rest);
        return -2;
    }
    int obj = srv_data_object_index(self->srv->data, rest + 9);
    if (obj < 0) {
        srv_resp_error(r, 404, 404, "unknown object '%.100s' in object service '%s'", rest + 9,
                       SRV_SERVICE);
        return -2;
    }
    return obj;
}

static enum MHD_Result
s_api(srv_http_t *self, struct MHD_Connection *conn, const char *url, const char *method,
      s_conn_t *c)
{
    srv_t *srv = self->srv;
    srv_resp_t r = {.status = 500};
    es_buf_init(&r.body);
    const char *override = s_header(conn, "X-Http-Method-Override");
    const char *verb = override ? override : method;
    srv_fault_hit_t hit;
    srv_fault_pick(srv->faults, url, verb, &hit);
    if (hit.latency_ms)
        srv_sleep_ms(srv->stopping, hit.latency_ms);
    srv_fkind_t mangle = SRV_F_NONE;
    switch (hit.action) {
    case SRV_F_HTTP_500:
        srv_resp_error(&r, 500, 500, "injected fault: internal server error");
        goto fault;
    case SRV_F_HTTP_503:
        srv_resp_error(&r, 503, 503, "injected fault: service unavailable");
        goto fault;
    case SRV_F_HTTP_429:
        srv_resp_error(&r, 429, 429, "injected fault: too many requests");
        r.retry_after = hit.retry_after;
        goto fault;
    case SRV_F_HANG:
        srv_stats_count(srv->stats, SRV_K_FAULT);
        srv_sleep_ms(srv->stopping, hit.ms);
        es_buf_release(&r.body);
        return MHD_NO;
    case SRV_F_APPLY_DELAY:
        r.apply_delay = hit.ms;
        break;
    case SRV_F_DROP:
    case SRV_F_TRUNCATE:
    case SRV_F_MALFORMED:
    case SRV_F_LOST_RESPONSE:
        mangle = hit.action;
        srv_stats_count(srv->stats, SRV_K_FAULT);
        break;
    default:
        break;
    }

    if (srv->opts->token &&
        !s_token_ok(srv->opts->token, s_header(conn, "X-Voltmx-Authorization")) &&
        !s_token_ok(srv->opts->token, s_header(conn, "X-Kony-Authorization"))) {
        const char *given = s_header(conn, "X-Voltmx-Authorization");
        if (!given)
            given = s_header(conn, "X-Kony-Authorization");
        srv_resp_error(&r, 401, 401, "%s",
                       given ? "authorization token is not valid"
                             : "authorization required: send X-Voltmx-Authorization");
        srv_stats_count(srv->stats, SRV_K_UNAUTHORIZED);
        goto send;
    }
    if (c->too_big) {
        srv_resp_error(&r, 413, 413, "request body larger than %zu bytes", srv->opts->max_body);
        goto send;
    }
    if (strcmp(url, "/appconfig") == 0) {
        s_appconfig(self, conn, &r);
    } else if (strncmp(url, S_META_PREFIX, strlen(S_META_PREFIX)) == 0) {
        if (strcmp(url + strlen(S_META_PREFIX), SRV_SERVICE) != 0) {
            srv_resp_error(&r, 404, 404, "unknown object service '%.100s'",
                           url + strlen(S_META_PREFIX));
        } else {
            r.status = 200;
            es_buf_puts(&r.body, srv_data_meta_json(srv->data));
            srv_stats_count(srv->stats, SRV_K_METADATA);
        }
    } else if (strncmp(url, S_DATA_PREFIX, strlen(S_DATA_PREFIX)) == 0) {
        int obj = s_route_data(self, url + strlen(S_DATA_PREFIX), &r);
        if (obj == -2)
            goto send;
        bool get = override ? strcasecmp(override, "GET") == 0 : strcmp(method, "GET") == 0;
        bool upload = override && strcasecmp(override, "UPLOAD") == 0;
        if (get) {
            srv_query_t q = {
                MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "$batchsize"),
                MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "$filter"),
                MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "$select"),
                MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "offline"),
            };
            srv_download(srv, obj, &q, c->body.data ? c->body.data : "", c->body.len, &r);
        } else if (upload) {
            const char *cid = s_header(conn, "X-Voltmx-RequestCacheId");
            if (!cid)
                cid = s_header(conn, "X-Kony-RequestCacheId");
            srv_upload(srv, obj, cid, c->body.data ? c->body.data : "", c->body.len, &r);
        } else {
            srv_resp_error(&r, 400, 400,
                           "X-Http-Method-Override: expected GET or UPLOAD, got '%.40s'",
                           override ? override : "");
        }
    } else {
        srv_resp_error(&r, 404, 404, "no such resource '%.100s'", url);
    }
send:
    if (r.status >= 400)
        srv_stats_count(srv->stats, SRV_K_ERROR);
    enum MHD_Result rc = s_send(conn, &r, mangle, "application/json");
    es_buf_release(&r.body);
    return rc;
fault:
    srv_stats_count(srv->stats, SRV_K_FAULT);
    rc = s_send(conn, &r, SRV_F_NONE, "application/json");
    es_buf_release(&r.body);
    return rc;
}

static void
s_stats(srv_http_t *self, srv_resp_t *r)
{
    static const char *names[SRV_K_COUNT] = {
        "appconfig", "metadata", "download",     "download_service", "keys",
        "upload",    "admin",    "unauthorized", "errors",           "faults"};
    srv_stats_t *st = self->srv->stats;
    const es_meta_t *meta = srv_data_meta(self->srv->data);
    es_buf_t *b = &r->body;
    pthread_mutex_lock(&st->lock);
    es_buf_puts(b, "{\"requests\":{");
    for (int k = 0; k < SRV_K_COUNT; k++)
        es_buf_printf(b, "%s\"%s\":%" PRIu64, k ? "," : "", names[k], st->requests[k]);
    es_buf_puts(b, "},\"uploadApplied\":{");
    for (size_t i = 0; i < meta->nobjects && i < SRV_MAX_OBJECTS; i++)
        es_buf_printf(b, "%s\"%s\":%" PRIu64, i ? "," : "", meta->objects[i].name, st->applied[i]);
    es_buf_puts(b, "},\"uploadRejected\":{");
    for (size_t i = 0; i < meta->nobjects && i < SRV_MAX_OBJECTS; i++)
        es_buf_printf(b, "%s\"%s\":%" PRIu64, i ? "," : "", meta->objects[i].name, st->rejected[i]);
    es_buf_printf(b,
                  "},\"uploadCacheHits\":%" PRIu64 ",\"uploadCacheInProgress\":%" PRIu64
                  ",\"conflicts\":%" PRIu64,
                  st->cache_hits, st->cache_in_progress, st->conflicts);
    pthread_mutex_unlock(&st->lock);
    es_buf_printf(b, ",\"faultsFired\":%" PRIu64 "}", srv_fault_fired(self->srv->faults));
    r->status = 200;
}

static enum MHD_Result
s_admin(srv_http_t *self, struct MHD_Connection *conn, const char *url, const char *method,
        s_conn_t *c)
{
    srv_t *srv = self->srv;
    srv_resp_t r = {.status = 500};
    es_buf_init(&r.body);
    es_err_t err;
    const char *ctype = "application/json";
    const char *body = c->body.data ? c->body.data : "";
    bool get = strcmp(method, "GET") == 0, post = strcmp(method, "POST") == 0;
    srv_stats_count(srv->stats, SRV_K_ADMIN);
    if (c->too_big) {
        srv_resp_error(&r, 413, 413, "request body larger than %zu bytes", srv->opts->max_body);
    } else if (strcmp(url, "/admin/stats") == 0 && get) {
        s_stats(self, &r);
    } else if (strcmp(url, "/admin/faults") == 0 && get) {
        srv_fault_dump(srv->faults, &r.body);
        r.status = 200;
    } else if (strcmp(url, "/admin/faults") == 0 && post) {
        if (srv_fault_set(srv->faults, body, c->body.len, &err)) {
            srv_resp_error(&r, 400, 400, "%s", err.what);
        } else {
            srv_fault_dump(srv->faults, &r.body);
            r.status = 200;
        }
    } else if (strcmp(url, "/admin/faults") == 0 && strcmp(method, "DELETE") == 0) {
        srv_fault_clear(srv->faults);
        srv_fault_dump(srv->faults, &r.body);
        r.status = 200;
    } else if (strcmp(url, "/admin/reset") == 0 && post) {
        if (srv_data_reset(srv->data, &err)) {
            srv_resp_error(&r, 500, 500, "reset: %s", err.what);
        } else {
            r.status = 200;
            es_buf_puts(&r.body, "{\"opstatus\":0}");
        }
    } else if (strncmp(url, S_ADMIN_RECORDS, strlen(S_ADMIN_RECORDS)) == 0 && (get || post)) {
        const char *rest = url + strlen(S_ADMIN_RECORDS);
        size_t n = strcspn(rest, "/");
        int obj = -1;
        if (n == strlen(SRV_SERVICE) && strncmp(rest, SRV_SERVICE, n) == 0 && rest[n] == '/')
            obj = srv_data_object_index(srv->data, rest + n + 1);
        if (obj < 0)
            srv_resp_error(&r, 404, 404, "unknown object '%.100s'", rest);
        else if (get) {
            srv_admin_list(srv, obj, &r);
            ctype = "application/x-ndjson";
        } else
            srv_admin_edit(srv, obj, body, c->body.len, &r);
    } else {
        srv_resp_error(&r, 404, 404, "no such admin resource '%s %.100s'", method, url);
    }
    enum MHD_Result rc = s_send(conn, &r, SRV_F_NONE, r.status == 200 ? ctype : "application/json");
    es_buf_release(&r.body);
    return rc;
}

static enum MHD_Result
s_handler(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
          const char *version, const char *upload_data, size_t *upload_data_size, void **con_cls)
{
    s_listener_t *l = cls;
    s_conn_t *c = *con_cls;
    (void)version;
    if (!c) {
        c = es_calloc(1, sizeof *c);
        es_buf_init(&c->body);
        *con_cls = c;
        return MHD_YES;
    }
    if (*upload_data_size) {
        if (!c->too_big) {
            if (c->body.len + *upload_data_size > l->http->srv->opts->max_body) {
                c->too_big = true;
                es_buf_release(&c->body);
            } else {
                es_buf_append(&c->body, upload_data, *upload_data_size);
            }
        }
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (l->admin)
        return s_admin(l->http, conn, url, method, c);
    return s_api(l->http, conn, url, method, c);
}

static void
s_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
            enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)conn;
    (void)toe;
    s_conn_t *c = *con_cls;
    if (!c)
        return;
    es_buf_release(&c->body);
    free(c);
    *con_cls = NULL;
}

static struct MHD_Daemon *
s_start(s_listener_t *l, const char *addr, int port, int *bound, es_err_t *err)
{
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, addr, &sa.sin_addr) != 1) {
        es_err_set(err, ES_EINVAL, "--bind: expected an IPv4 address, got '%s'", addr);
        return NULL;
    }
    struct MHD_Daemon *d = MHD_start_daemon(
        MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD, (uint16_t)port, NULL, NULL,
        s_handler, l, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa, MHD_OPTION_NOTIFY_COMPLETED,
        s_completed, NULL, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)300,
        MHD_OPTION_LISTENING_ADDRESS_REUSE, (unsigned int)1, MHD_OPTION_END);
    if (!d) {
        es_err_set(err, ES_ESYS, "cannot listen on %s:%d (in use?)", addr, port);
        return NULL;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    *bound = info ? info->port : port;
    return d;
}

srv_http_t *
srv_http_new(srv_t *srv, es_err_t *err)
{
    srv_http_t *self = es_calloc(1, sizeof *self);
    self->srv = srv;
    self->api_l = (s_listener_t){self, false};
    self->admin_l = (s_listener_t){self, true};
    self->api = s_start(&self->api_l, srv->opts->bind, srv->opts->port, &self->port, err);
    if (!self->api) {
        srv_http_destroy(&self);
        return NULL;
    }
    //  Admin is never reachable from outside this host, whatever --bind says.
    self->admin =
        s_start(&self->admin_l, "127.0.0.1", srv->opts->admin_port, &self->admin_port, err);
    if (!self->admin) {
        es_err_prefix(err, "admin port");
        srv_http_destroy(&self);
        return NULL;
    }
    return self;
}

void
srv_http_destroy(srv_http_t **self_p)
{
    if (!*self_p)
        return;
    srv_http_t *self = *self_p;
    if (self->admin)
        MHD_stop_daemon(self->admin);
    if (self->api)
        MHD_stop_daemon(self->api);
    free(self);
    *self_p = NULL;
}

int
srv_http_port(srv_http_t *self)
{
    return self->port;
}

int
srv_http_admin_port(srv_http_t *self)
{
    return self->admin_port;
}
