//  es_http - libcurl multi wrapper: streamed bodies, bounded sizes, errors naming the URL.
#include "common/es_http.h"
#include "common/es_log.h"
#include "common/es_mem.h"
#include <assert.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

typedef struct req {
    CURL *easy;                   //  the transfer
    struct curl_slist *headers;   //  request headers
    char *url;                    //  for error texts (never holds credentials)
    char *body;                   //  request body copy
    const es_http_cb_t *cb;       //  caller's callbacks
    void *ctx;                    //  caller's context
    char errbuf[CURL_ERROR_SIZE]; //  curl's text
    es_http_result_t result;      //  filled as the transfer goes
    size_t owner_max;             //  body limit
    struct req *next;             //  in-flight list
} req_t;

struct es_http {
    CURLM *multi;        //  all transfers
    es_http_opts_t opts; //  timeouts and limits (its tls_* strings point to the copies below)
    char *ca_file;       //  tls.ca_file copy, NULL if none
    char *cert_file;     //  tls.cert_file copy, NULL if none
    char *key_file;      //  tls.key_file copy, NULL if none
    char *key_pass_file; //  tls.key_password_file copy (for error texts), NULL if none
    req_t *reqs;         //  in flight
    size_t nreqs;        //  count of reqs
    bool fresh;          //  new connection per request
    //  The key's passphrase, "" if none (wiped on destroy; never logged). Passed even when
    //  empty: with no passphrase callback OpenSSL would prompt on the terminal for an
    //  encrypted key, hanging the daemon instead of failing.
    char key_pass[ES_CONFIG_SECRET_MAX + 1];
};

static char *
s_dup_or_null(const char *s)
{
    return s && *s ? es_strdup(s) : NULL;
}

void
es_http_opts_from_config(es_http_opts_t *opts, const es_config_t *config)
{
    memset(opts, 0, sizeof *opts);
    opts->connect_timeout_ms = (long)es_config_int(config, "http.connect_timeout_ms");
    opts->timeout_ms = (long)es_config_int(config, "http.timeout_ms");
    opts->max_response = (size_t)es_config_int(config, "http.max_response_mb") << 20;
    opts->tls_insecure = !es_config_bool(config, "tls.verify");
    opts->tls_ca_file = es_config_str(config, "tls.ca_file");
    opts->tls_cert_file = es_config_str(config, "tls.cert_file");
    opts->tls_key_file = es_config_str(config, "tls.key_file");
    opts->tls_key_password_file = es_config_str(config, "tls.key_password_file");
}

void
es_http_set_fresh_connections(es_http_t *self, bool on)
{
    self->fresh = on;
}

es_http_t *
es_http_new(const es_http_opts_t *opts, es_err_t *err)
{
    static bool s_global_done = false;
    if (!s_global_done) {
        CURLcode rc = curl_global_init(CURL_GLOBAL_DEFAULT);
        if (rc != CURLE_OK) {
            es_err_set(err, ES_EHTTP, "http: curl_global_init: %s", curl_easy_strerror(rc));
            return NULL;
        }
        s_global_done = true;
    }
    es_http_t *self = es_calloc(1, sizeof *self);
    self->opts = *opts;
    self->ca_file = s_dup_or_null(opts->tls_ca_file);
    self->cert_file = s_dup_or_null(opts->tls_cert_file);
    self->key_file = s_dup_or_null(opts->tls_key_file);
    self->key_pass_file = s_dup_or_null(opts->tls_key_password_file);
    self->opts.tls_ca_file = self->ca_file;
    self->opts.tls_cert_file = self->cert_file;
    self->opts.tls_key_file = self->key_file;
    self->opts.tls_key_password_file = self->key_pass_file;
    if (self->key_pass_file &&
        es_config_read_secret("tls.key_password_file", self->key_pass_file, self->key_pass, err)) {
        es_http_destroy(&self);
        return NULL;
    }
    static bool s_warned = false;
    if (opts->tls_insecure && !s_warned) {
        es_log_warn("http: tls.verify = false: the backend's certificate is NOT checked; anyone "
                    "on the network path can pose as the backend and read the auth token and "
                    "data. Set tls.ca_file instead.");
        s_warned = true;
    }
    self->multi = curl_multi_init();
    if (!self->multi) {
        es_http_destroy(&self);
        es_err_set(err, ES_EHTTP, "http: curl_multi_init failed");
        return NULL;
    }
    return self;
}

static void
s_req_free(es_http_t *self, req_t *r)
{
    CURLMcode mc = curl_multi_remove_handle(self->multi, r->easy);
    if (mc != CURLM_OK)
        es_log_warn("http: remove handle: %s", curl_multi_strerror(mc));
    curl_easy_cleanup(r->easy);
    curl_slist_free_all(r->headers);
    free(r->url);
    free(r->body);
    free(r);
}

void
es_http_abort_all(es_http_t *self)
{
    while (self->reqs) {
        req_t *r = self->reqs;
        self->reqs = r->next;
        s_req_free(self, r);
    }
    self->nreqs = 0;
}

void
es_http_destroy(es_http_t **self_p)
{
    if (!*self_p)
        return;
    es_http_t *self = *self_p;
    es_http_abort_all(self);
    if (self->multi)
        curl_multi_cleanup(self->multi);
    free(self->key_file);
    free(self->key_pass_file);
    free(self->cert_file);
    free(self->ca_file);
    explicit_bzero(self->key_pass, sizeof self->key_pass);
    free(self);
    *self_p = NULL;
}

static size_t
s_on_write(char *data, size_t size, size_t nmemb, void *userp)
{
    req_t *r = userp;
    size_t len = size * nmemb;
    r->result.bytes += len;
    //  Refuse over-limit bodies before the caller sees them.
    if (r->result.bytes > r->owner_max) {
        r->result.data_failed = true;
        es_err_set(&r->result.err, ES_EHTTP, "response larger than %zu bytes", r->owner_max);
        return 0;
    }
    //  An error page (a proxy's HTML, a JSON error) is not a response to parse: keep its start
    //  for the error text and let the status decide.
    long status = 0;
    if (curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &status) == CURLE_OK &&
        (status < 200 || status > 299)) {
        size_t have = strlen(r->result.excerpt);
        size_t room = sizeof r->result.excerpt - 1 - have;
        size_t n = len < room ? len : room;
        for (size_t i = 0; i < n; i++) //  printable only: it ends up in logs and results
            r->result.excerpt[have + i] = (data[i] >= 0x20 && data[i] < 0x7f) ? data[i] : ' ';
        r->result.excerpt[have + n] = '\0';
        return len;
    }
    if (r->cb->on_data && r->cb->on_data(r->ctx, data, len, &r->result.err)) {
        r->result.data_failed = true;
        return 0;
    }
    return len;
}

static size_t
s_on_header(char *data, size_t size, size_t nmemb, void *userp)
{
    req_t *r = userp;
    size_t len = size * nmemb;
    static const char name[] = "retry-after:";
    if (len > sizeof name - 1 && strncasecmp(data, name, sizeof name - 1) == 0) {
        char tmp[32];
        size_t n = len - (sizeof name - 1);
        if (n >= sizeof tmp)
            n = sizeof tmp - 1;
        memcpy(tmp, data + sizeof name - 1, n);
        tmp[n] = '\0';
        char *end;
        long v = strtol(tmp, &end, 10);
        //  Only the delta-seconds form; an HTTP date falls back to our own backoff.
        if (end != tmp && v >= 0)
            r->result.retry_after_s = v;
    }
    return len;
}

#define SETOPT(opt, val)                                                                           \
    do {                                                                                           \
        CURLcode c_ = curl_easy_setopt(r->easy, opt, val);                                         \
        if (c_ != CURLE_OK) {                                                                      \
            es_err_set(err, ES_EHTTP, "http: %s: setopt " #opt ": %s", url,                        \
                       curl_easy_strerror(c_));                                                    \
            goto fail;                                                                             \
        }                                                                                          \
    } while (0)

int
es_http_start(es_http_t *self, const char *url, const char *body, size_t body_len,
              const char *const *headers, size_t nheaders, const es_http_cb_t *cb, void *ctx,
              es_err_t *err)
{
    assert(self && url && cb);
    req_t *r = es_calloc(1, sizeof *r);
    r->cb = cb;
    r->ctx = ctx;
    r->url = es_strdup(url);
    r->owner_max = self->opts.max_response;
    r->result.retry_after_s = -1;
    r->easy = curl_easy_init();
    if (!r->easy) {
        es_err_set(err, ES_EHTTP, "http: %s: curl_easy_init failed", url);
        goto fail;
    }
    for (size_t i = 0; i < nheaders; i++) {
        struct curl_slist *h = curl_slist_append(r->headers, headers[i]);
        if (!h) {
            es_err_set(err, ES_EHTTP, "http: %s: cannot add header", url);
            goto fail;
        }
        r->headers = h;
    }
    SETOPT(CURLOPT_URL, r->url);
    SETOPT(CURLOPT_ERRORBUFFER, r->errbuf);
    SETOPT(CURLOPT_CONNECTTIMEOUT_MS, self->opts.connect_timeout_ms);
    SETOPT(CURLOPT_TIMEOUT_MS, self->opts.timeout_ms);
    SETOPT(CURLOPT_NOSIGNAL, 1L);
    SETOPT(CURLOPT_WRITEFUNCTION, s_on_write);
    SETOPT(CURLOPT_WRITEDATA, r);
    SETOPT(CURLOPT_HEADERFUNCTION, s_on_header);
    SETOPT(CURLOPT_HEADERDATA, r);
    SETOPT(CURLOPT_HTTPHEADER, r->headers);
    SETOPT(CURLOPT_ACCEPT_ENCODING, "");
    SETOPT(CURLOPT_TCP_KEEPALIVE, 1L);
    if (self->fresh) {
        SETOPT(CURLOPT_FORBID_REUSE, 1L);
        SETOPT(CURLOPT_FRESH_CONNECT, 1L);
    }
    //  URLs come from the backend's appconfig: only HTTP(S), also after redirects.
    SETOPT(CURLOPT_PROTOCOLS_STR, "http,https");
    SETOPT(CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    SETOPT(CURLOPT_SSL_VERIFYPEER, self->opts.tls_insecure ? 0L : 1L);
    SETOPT(CURLOPT_SSL_VERIFYHOST, self->opts.tls_insecure ? 0L : 2L);
    if (self->ca_file)
        SETOPT(CURLOPT_CAINFO, self->ca_file);
    if (self->cert_file) {
        SETOPT(CURLOPT_SSLCERT, self->cert_file);
        SETOPT(CURLOPT_SSLCERTTYPE, "PEM");
        SETOPT(CURLOPT_SSLKEY, self->key_file);
        SETOPT(CURLOPT_SSLKEYTYPE, "PEM");
        SETOPT(CURLOPT_KEYPASSWD, self->key_pass);
    }
    if (body) {
        r->body = es_malloc(body_len + 1);
        memcpy(r->body, body, body_len);
        r->body[body_len] = '\0';
        SETOPT(CURLOPT_POST, 1L);
        SETOPT(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
        SETOPT(CURLOPT_POSTFIELDS, r->body);
    }
    CURLMcode mc = curl_multi_add_handle(self->multi, r->easy);
    if (mc != CURLM_OK) {
        es_err_set(err, ES_EHTTP, "http: %s: %s", url, curl_multi_strerror(mc));
        goto fail;
    }
    r->next = self->reqs;
    self->reqs = r;
    self->nreqs++;
    return 0;
fail:
    if (r->easy)
        curl_easy_cleanup(r->easy);
    curl_slist_free_all(r->headers);
    free(r->url);
    free(r->body);
    free(r);
    return -1;
}

size_t
es_http_active(const es_http_t *self)
{
    return self->nreqs;
}

int
es_http_wait(es_http_t *self, struct curl_waitfd *extra, unsigned nextra, int timeout_ms,
             es_err_t *err)
{
    int numfds = 0;
    CURLMcode mc = curl_multi_poll(self->multi, extra, nextra, timeout_ms, &numfds);
    if (mc != CURLM_OK)
        return es_err_set(err, ES_EHTTP, "http: poll: %s", curl_multi_strerror(mc));
    return 0;
}

bool
es_http_is_tls_error(CURLcode code)
{
    switch (code) {
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_SSL_ENGINE_NOTFOUND:
    case CURLE_SSL_ENGINE_SETFAILED:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_ENGINE_INITFAILED:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_SHUTDOWN_FAILED:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
#if LIBCURL_VERSION_NUM >= 0x074d00
    case CURLE_SSL_CLIENTCERT:
#endif
        return true;
    default:
        return false;
    }
}

bool
es_http_tls_permanent(const es_http_result_t *r)
{
    return es_http_is_tls_error(r->curl_code) && r->curl_code != CURLE_SSL_CONNECT_ERROR;
}

//  What to check for a TLS failure, naming the option involved: curl's own text says what
//  went wrong, not which setting to change.
static void
s_tls_hint(const es_http_t *self, CURLcode code, char *out, size_t size)
{
    const char *ca = self->ca_file;
    switch (code) {
    case CURLE_PEER_FAILED_VERIFICATION:
        if (ca)
            snprintf(out, size,
                     "the backend's certificate is not signed by tls.ca_file '%s' or not issued "
                     "for this host name",
                     ca);
        else
            snprintf(out, size,
                     "the backend's certificate is not trusted by the system CAs or not issued for "
                     "this host name (set tls.ca_file to the CA that signed it)");
        break;
    case CURLE_SSL_CACERT_BADFILE:
        snprintf(out, size, "cannot use tls.ca_file '%s' as a PEM CA bundle", ca ? ca : "");
        break;
    case CURLE_SSL_CERTPROBLEM:
        if (self->key_pass_file)
            snprintf(out, size,
                     "cannot use the client certificate tls.cert_file '%s' with tls.key_file '%s' "
                     "and the passphrase in tls.key_password_file '%s' (a wrong passphrase? PEM, "
                     "a matching pair)",
                     self->cert_file ? self->cert_file : "", self->key_file ? self->key_file : "",
                     self->key_pass_file);
        else
            snprintf(out, size,
                     "cannot use the client certificate tls.cert_file '%s' with tls.key_file '%s' "
                     "(PEM, a matching pair; an encrypted key needs tls.key_password_file)",
                     self->cert_file ? self->cert_file : "", self->key_file ? self->key_file : "");
        break;
#if LIBCURL_VERSION_NUM >= 0x074d00
    case CURLE_SSL_CLIENTCERT:
        snprintf(out, size, "the backend refused the client certificate%s",
                 self->cert_file ? " (tls.cert_file)" : ": set tls.cert_file and tls.key_file");
        break;
#endif
    case CURLE_SSL_CONNECT_ERROR:
        snprintf(out, size,
                 "handshake failed (is the backend serving https on that port? does it "
                 "want a client certificate: tls.cert_file?)");
        break;
    default:
        snprintf(out, size, "TLS failure");
        break;
    }
}

static void
s_finish(es_http_t *self, req_t *r, CURLcode code)
{
    es_http_result_t *res = &r->result;
    res->curl_code = code;
    long status = 0;
    if (curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &status) == CURLE_OK)
        res->status = status;
    double secs = 0;
    if (curl_easy_getinfo(r->easy, CURLINFO_TOTAL_TIME, &secs) == CURLE_OK)
        res->seconds = secs;
    if (res->data_failed) {
        es_err_prefix(&res->err, "http: %s", r->url);
    } else if (es_http_is_tls_error(code)) {
        char hint[768];
        s_tls_hint(self, code, hint, sizeof hint);
        es_err_set(&res->err, ES_EHTTP, "http: %.160s: TLS: %s: %s", r->url, hint,
                   r->errbuf[0] ? r->errbuf : curl_easy_strerror(code));
    } else if (code != CURLE_OK) {
        es_err_set(&res->err, code == CURLE_OPERATION_TIMEDOUT ? ES_ETIMEOUT : ES_EHTTP,
                   "http: %s: %s", r->url, r->errbuf[0] ? r->errbuf : curl_easy_strerror(code));
    } else {
        es_err_clear(&res->err);
    }
    //  Unlink first: on_done may start the next request.
    req_t **pp = &self->reqs;
    while (*pp != r)
        pp = &(*pp)->next;
    *pp = r->next;
    self->nreqs--;
    r->cb->on_done(r->ctx, res);
    s_req_free(self, r);
}

void
es_http_perform(es_http_t *self)
{
    int running = 0;
    CURLMcode mc = curl_multi_perform(self->multi, &running);
    if (mc != CURLM_OK)
        es_log_warn("http: perform: %s", curl_multi_strerror(mc));
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(self->multi, &left))) {
        if (m->msg != CURLMSG_DONE)
            continue;
        req_t *r = self->reqs;
        while (r && r->easy != m->easy_handle)
            r = r->next;
        if (r)
            s_finish(self, r, m->data.result);
    }
}

void
es_http_kick(es_http_t *self)
{
    int running = 0;
    CURLMcode mc = curl_multi_perform(self->multi, &running);
    if (mc != CURLM_OK)
        es_log_warn("http: perform: %s", curl_multi_strerror(mc));
}

void
es_http_url_escape(es_buf_t *out, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
            *p == '-' || *p == '_' || *p == '.' || *p == '~' || *p == '$') {
            es_buf_putc(out, (char)*p);
        } else {
            es_buf_putc(out, '%');
            es_buf_putc(out, hex[*p >> 4]);
            es_buf_putc(out, hex[*p & 15]);
        }
    }
}

void
es_http_query_add(es_buf_t *url, bool *first, const char *key, const char *value)
{
    es_buf_putc(url, *first ? '?' : '&');
    *first = false;
    es_http_url_escape(url, key);
    es_buf_putc(url, '=');
    es_http_url_escape(url, value);
}

int
es_http_vmx_code(const es_http_result_t *r)
{
    if (r->data_failed)
        return 2037;
    switch (r->curl_code) {
    case CURLE_OK:
        return 0;
    case CURLE_OPERATION_TIMEDOUT:
        return 2032;
    case CURLE_COULDNT_CONNECT:
        return 2034;
    case CURLE_COULDNT_RESOLVE_HOST:
        return 2035;
    default:
        return es_http_is_tls_error(r->curl_code) ? 2033 : 2030;
    }
}

int64_t
es_http_retry_delay_ms(uint32_t attempt, int64_t base, int64_t cap, long retry_after_s,
                       uint32_t *seed)
{
    int64_t d = base << (attempt < 20 ? attempt : 20);
    if (d > cap)
        d = cap;
    *seed = *seed * 1103515245u + 12345u;
    d = d / 2 + (int64_t)(*seed % (uint32_t)(d / 2 + 1));
    if (retry_after_s >= 0 && retry_after_s * 1000 > d)
        d = retry_after_s > cap / 100 ? cap * 10 : retry_after_s * 1000;
    return d;
}
