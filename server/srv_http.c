//  srv_http - the two libmicrohttpd listeners: the object service API (appconfig, metadata,
//  download, upload; token auth; fault injection) and the loopback-only admin port (faults,
//  record edits and listings, reset, stats). One thread per connection, so latency and hang
//  faults simply sleep.
#include "common/es_log.h"
#include "common/es_mem.h"
#include "server/srv.h"
#include <arpa/inet.h>
#include <errno.h>
#include <gnutls/gnutls.h>
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
    char *tls_cert, *tls_key;    //  PEM texts of --tls-cert/--tls-key, NULL = plain http
    char *tls_ca;                //  PEM text of --tls-client-ca, NULL = no client certificates
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

static ssize_t
s_gen_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    size_t n = srv_body_read(cls, pos, buf, max);
    return n ? (ssize_t)n : MHD_CONTENT_READER_END_OF_STREAM;
}

static void
s_gen_free(void *cls)
{
    srv_body_t *b = cls;
    srv_body_release(&b);
}

//  A generated hostile body, streamed as it is produced (takes the reference to body).
static enum MHD_Result
s_send_generated(struct MHD_Connection *conn, srv_body_t *body)
{
    uint64_t total = 0;
    (void)srv_body_generated(body, &total);
    int status = srv_body_status(body) ? srv_body_status(body) : 200;
    struct MHD_Response *resp =
        MHD_create_response_from_callback(total, 64 * 1024, s_gen_read, body, s_gen_free);
    if (!resp) {
        srv_body_release(&body);
        return MHD_NO;
    }
    if (MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json") == MHD_NO) {
        MHD_destroy_response(resp);
        return MHD_NO;
    }
    enum MHD_Result rc = MHD_queue_response(conn, (unsigned)status, resp);
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
    const char *scheme = self->tls_cert ? "https" : "http"; //  the service URLs are on this port
    es_buf_printf(&r->body,
                  "{\"objectsvc\":{\"%s\":{\"url\":\"%s://%s" S_DATA_PREFIX "%s\","
                  "\"metadata_url\":\"%s://%s" S_META_PREFIX "%s\",\"version\":\"1.0\"}}}",
                  SRV_SERVICE, scheme, host, SRV_SERVICE, scheme, host, SRV_SERVICE);
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
    uint64_t gen_total;
    if (hit.body && srv_body_generated(hit.body, &gen_total)) {
        //  Nothing of the request is looked at: the answer is the generated body.
        srv_stats_count(srv->stats, SRV_K_FAULT);
        es_buf_release(&r.body);
        return s_send_generated(conn, hit.body);
    }
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
    case SRV_F_BODY:
        srv_stats_count(srv->stats, SRV_K_FAULT);
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
    if (hit.body) {
        //  The request was handled (an upload applied): only its answer is hostile.
        srv_body_rewrite(hit.body, &r);
        srv_body_release(&hit.body);
    }
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

//  With --tls-client-ca, a request is served only over a connection whose client certificate
//  that CA signed. libmicrohttpd asks for a certificate but does not insist (GNUTLS_CERT_REQUEST)
//  nor verify it, so it is checked here; a refusal says why, like a proxy's 403 would.
static enum MHD_Result
s_client_cert_check(srv_http_t *self, struct MHD_Connection *conn, const char *url,
                    const char *method, s_conn_t *c)
{
    char why[300] = "";
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_GNUTLS_SESSION);
    gnutls_session_t s = ci ? (gnutls_session_t)ci->tls_session : NULL;
    unsigned int npeers = 0, status = 0;
    if (!s) {
        snprintf(why, sizeof why, "client certificate required: no TLS session");
    } else if (!gnutls_certificate_get_peers(s, &npeers) || npeers == 0) {
        snprintf(why, sizeof why, "client certificate required: none was sent");
    } else {
        int rc = gnutls_certificate_verify_peers2(s, &status);
        gnutls_datum_t text = {NULL, 0};
        if (rc < 0)
            snprintf(why, sizeof why, "client certificate not verified: %s", gnutls_strerror(rc));
        else if (status && gnutls_certificate_verification_status_print(status, GNUTLS_CRT_X509,
                                                                        &text, 0) == 0)
            snprintf(why, sizeof why, "client certificate refused: %s", (char *)text.data);
        else if (status)
            snprintf(why, sizeof why, "client certificate refused (status 0x%x)", status);
        gnutls_free(text.data);
    }
    if (!why[0])
        return s_api(self, conn, url, method, c);
    es_log_info("server: %s %s refused: %s", method, url, why);
    srv_stats_count(self->srv->stats, SRV_K_UNAUTHORIZED);
    srv_resp_t r = {.status = 403};
    es_buf_init(&r.body);
    srv_resp_error(&r, 403, 403, "%s", why);
    return s_send(conn, &r, SRV_F_NONE, "application/json");
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
    if (l->http->tls_ca)
        return s_client_cert_check(l->http, conn, url, method, c);
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

//  tls: NULL for plain http, else the HTTPS options (an MHD_OPTION_END-terminated array).
static struct MHD_Daemon *
s_start(s_listener_t *l, const char *addr, int port, const struct MHD_OptionItem *tls, int *bound,
        es_err_t *err)
{
    static const struct MHD_OptionItem s_none[] = {{MHD_OPTION_END, 0, NULL}};
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, addr, &sa.sin_addr) != 1) {
        es_err_set(err, ES_EINVAL, "--bind: expected an IPv4 address, got '%s'", addr);
        return NULL;
    }
    struct MHD_Daemon *d = MHD_start_daemon(
        MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | (tls ? MHD_USE_TLS : 0),
        (uint16_t)port, NULL, NULL, s_handler, l, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
        MHD_OPTION_NOTIFY_COMPLETED, s_completed, NULL, MHD_OPTION_CONNECTION_TIMEOUT,
        (unsigned int)300, MHD_OPTION_LISTENING_ADDRESS_REUSE, (unsigned int)1, MHD_OPTION_ARRAY,
        tls ? tls : s_none, MHD_OPTION_END);
    if (!d) {
        es_err_set(err, ES_ESYS, "cannot listen on %s:%d (in use?)", addr, port);
        return NULL;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    *bound = info ? info->port : port;
    return d;
}

//  Whole PEM file of option opt into *out (NUL-terminated). 0 or -1 with err naming both.
static int
s_read_pem(const char *opt, const char *path, char **out, es_err_t *err)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return es_err_set(err, ES_EINVAL, "%s %s: %s", opt, path, strerror(errno));
    es_buf_t b;
    es_buf_init(&b);
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0 && b.len <= (1u << 20))
        es_buf_append(&b, chunk, n);
    bool bad = ferror(f) || b.len > (1u << 20);
    fclose(f);
    if (bad || !strstr(b.data ? b.data : "", "-----BEGIN ")) {
        explicit_bzero(b.data, b.len); //  may be a key
        es_buf_release(&b);
        return es_err_set(err, ES_EINVAL, "%s %s: %s", opt, path,
                          bad ? "unreadable or over 1 MiB" : "not a PEM file");
    }
    *out = es_buf_steal(&b);
    return 0;
}

//  Read and check the TLS files, so a bad one is named here rather than by a bare MHD failure.
static int
s_tls_load(srv_http_t *self, const srv_opts_t *o, es_err_t *err)
{
    if (!MHD_is_feature_supported(MHD_FEATURE_TLS))
        return es_err_set(err, ES_EINVAL, "--tls-cert: this libmicrohttpd has no TLS support");
    if (s_read_pem("--tls-cert", o->tls_cert, &self->tls_cert, err) ||
        s_read_pem("--tls-key", o->tls_key, &self->tls_key, err) ||
        (o->client_ca && s_read_pem("--tls-client-ca", o->client_ca, &self->tls_ca, err)))
        return -1;
    gnutls_certificate_credentials_t cred;
    if (gnutls_certificate_allocate_credentials(&cred) < 0)
        return es_err_set(err, ES_ESYS, "--tls-cert: cannot allocate TLS credentials");
    gnutls_datum_t cert = {(unsigned char *)self->tls_cert, (unsigned)strlen(self->tls_cert)};
    gnutls_datum_t key = {(unsigned char *)self->tls_key, (unsigned)strlen(self->tls_key)};
    int rc = gnutls_certificate_set_x509_key_mem(cred, &cert, &key, GNUTLS_X509_FMT_PEM);
    if (rc < 0)
        es_err_set(err, ES_EINVAL, "--tls-cert %s / --tls-key %s: %s", o->tls_cert, o->tls_key,
                   gnutls_strerror(rc));
    if (rc >= 0 && self->tls_ca) {
        gnutls_datum_t ca = {(unsigned char *)self->tls_ca, (unsigned)strlen(self->tls_ca)};
        int n = gnutls_certificate_set_x509_trust_mem(cred, &ca, GNUTLS_X509_FMT_PEM);
        if (n <= 0) {
            es_err_set(err, ES_EINVAL, "--tls-client-ca %s: %s", o->client_ca,
                       n < 0 ? gnutls_strerror(n) : "no certificate in it");
            rc = -1;
        }
    }
    gnutls_certificate_free_credentials(cred);
    return rc < 0 ? -1 : 0;
}

srv_http_t *
srv_http_new(srv_t *srv, es_err_t *err)
{
    srv_http_t *self = es_calloc(1, sizeof *self);
    self->srv = srv;
    self->api_l = (s_listener_t){self, false};
    self->admin_l = (s_listener_t){self, true};
    struct MHD_OptionItem tls[4] = {{MHD_OPTION_END, 0, NULL}};
    if (srv->opts->tls_cert) {
        if (s_tls_load(self, srv->opts, err)) {
            srv_http_destroy(&self);
            return NULL;
        }
        //  libmicrohttpd keeps these pointers: the texts live until srv_http_destroy.
        tls[0] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_CERT, 0, self->tls_cert};
        tls[1] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_KEY, 0, self->tls_key};
        tls[2] = self->tls_ca ? (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_TRUST, 0, self->tls_ca}
                              : (struct MHD_OptionItem){MHD_OPTION_END, 0, NULL};
        tls[3] = (struct MHD_OptionItem){MHD_OPTION_END, 0, NULL};
    }
    self->api = s_start(&self->api_l, srv->opts->bind, srv->opts->port,
                        srv->opts->tls_cert ? tls : NULL, &self->port, err);
    if (!self->api) {
        srv_http_destroy(&self);
        return NULL;
    }
    //  Admin is never reachable from outside this host, whatever --bind says.
    self->admin =
        s_start(&self->admin_l, "127.0.0.1", srv->opts->admin_port, NULL, &self->admin_port, err);
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
    if (self->tls_key)
        explicit_bzero(self->tls_key, strlen(self->tls_key));
    free(self->tls_key);
    free(self->tls_cert);
    free(self->tls_ca);
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
