//  es_http - HTTP requests on libcurl's multi interface, driven from an actor's single loop:
//  bodies are streamed to a callback as they arrive, nothing blocks.
#ifndef ES_HTTP_H
#define ES_HTTP_H
#include "common/es_buf.h"
#include "common/es_config.h"
#include "common/es_err.h"
#include <curl/curl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct es_http es_http_t;

typedef struct {
    long connect_timeout_ms; //  CURLOPT_CONNECTTIMEOUT_MS
    long timeout_ms;         //  CURLOPT_TIMEOUT_MS
    size_t max_response;     //  bodies over this many bytes are refused
    //  TLS (https:// URLs). Zero values are the safe ones: certificates are verified against
    //  the system CAs. Strings are copied by es_http_new.
    bool tls_insecure;         //  skip certificate and host name checks (tls.verify = false)
    const char *tls_ca_file;   //  CA bundle (CURLOPT_CAINFO), NULL or "" = system CAs
    const char *tls_cert_file; //  client certificate (CURLOPT_SSLCERT), NULL or "" = none
    const char *tls_key_file;  //  its private key (CURLOPT_SSLKEY)
    //  File holding the key's passphrase (tls.key_password_file), NULL or "" = none. es_http_new
    //  reads it (es_config_read_secret) and keeps the passphrase in memory only, wiped on destroy.
    const char *tls_key_password_file;
} es_http_opts_t;

typedef struct {
    CURLcode curl_code;   //  CURLE_OK if the transfer completed
    long status;          //  HTTP status, 0 if none
    size_t bytes;         //  body bytes received
    double seconds;       //  total transfer time
    long retry_after_s;   //  Retry-After header in seconds, -1 if absent
    bool data_failed;     //  the data callback refused the body (see err)
    char excerpt[256];    //  start of a non-2xx body (kept here, not passed to on_data)
    es_err_t err;         //  set unless the transfer completed with a 2xx-5xx status
} es_http_result_t;

typedef struct {
    //  Next piece of a 2xx body. Return 0, or -1 with err set to abort the transfer.
    int (*on_data)(void *ctx, const char *data, size_t len, es_err_t *err);
    //  The request ended (success or not); the request is freed after this returns.
    void (*on_done)(void *ctx, const es_http_result_t *result);
} es_http_cb_t;

//  The options of the http.* and tls.* config keys (strings borrowed from config). Warns, once
//  per process, when tls.verify is false.
void es_http_opts_from_config(es_http_opts_t *opts, const es_config_t *config);
//  NULL with err naming tls.key_password_file when that file cannot be used.
es_http_t *es_http_new(const es_http_opts_t *opts, es_err_t *err);
void es_http_destroy(es_http_t **self_p);

//  Start a POST (body copied; may be NULL for GET) with extra headers ("Name: value" strings,
//  nheaders of them, copied). cb and ctx are borrowed until on_done. 0 or -1 with err.
int es_http_start(es_http_t *self, const char *url, const char *body, size_t body_len,
                  const char *const *headers, size_t nheaders, const es_http_cb_t *cb, void *ctx,
                  es_err_t *err);
//  Requests started after this use a new connection each (CURLOPT_FORBID_REUSE) when on is
//  true. libcurl silently re-sends a request whose reused connection died before any answer;
//  for a non-idempotent POST (an upload without the server's upload cache) that could apply it
//  twice, so such requests must not ride on a reused connection.
void es_http_set_fresh_connections(es_http_t *self, bool on);
//  Requests in flight.
size_t es_http_active(const es_http_t *self);
//  Wait up to timeout_ms for network activity or for one of the extra fds to become readable
//  (curl_multi_poll). Returns -1 with err on failure.
int es_http_wait(es_http_t *self, struct curl_waitfd *extra, unsigned nextra, int timeout_ms,
                 es_err_t *err);
//  Advance transfers and run on_done for finished ones. Never blocks.
void es_http_perform(es_http_t *self);
//  Send what requests just started have to send (curl_multi_perform without collecting
//  finished transfers), so the server works on them while the caller does something long.
//  on_data of running requests may run; on_done never does. Never blocks.
void es_http_kick(es_http_t *self);
//  Abort every request in flight (on_done is not called).
void es_http_abort_all(es_http_t *self);

//  Append s percent-encoded for a query string (unreserved characters and '$' kept).
void es_http_url_escape(es_buf_t *out, const char *s);
//  Append "?key=value" (first) or "&key=value", both escaped.
void es_http_query_add(es_buf_t *url, bool *first, const char *key, const char *value);
//  Volt MX network error code of a failed transfer (SPEC 4.5): 2032 timeout, 2033 TLS
//  (certificate or handshake), 2034 cannot connect, 2035 host not found, 2037 unreadable body,
//  2030 anything else; 0 if it completed.
int es_http_vmx_code(const es_http_result_t *r);
//  True if code is a TLS failure (certificate, key, handshake; reported as 2033).
bool es_http_is_tls_error(CURLcode code);
//  True if the transfer failed on a TLS problem that a retry meets again (an untrusted or
//  unusable certificate): callers fail at once instead of spending their retry budget.
//  A failed handshake (CURLE_SSL_CONNECT_ERROR) may be a cut connection, so it is not one.
bool es_http_tls_permanent(const es_http_result_t *r);

//  Retry delay for attempt (0-based): base doubled per attempt up to cap, with jitter in
//  [d/2, d]; a Retry-After (seconds, -1 = none) longer than that wins, bounded by ten times
//  cap so a server cannot park a job for ever. seed: caller's jitter state.
int64_t es_http_retry_delay_ms(uint32_t attempt, int64_t base, int64_t cap, long retry_after_s,
                               uint32_t *seed);

#endif
