//  test_es_http - the libcurl multi wrapper against a tiny HTTP/1.1 server running in a thread of
//  this test: streamed bodies, status codes, Retry-After, size limits, refused bodies, connection
//  failures, timeouts, request headers and bodies, and aborting requests in flight.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "common/es_buf.h"
#include "common/es_http.h"
#include "common/es_mem.h"
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

//  ---------------------------------------------------------------------------------------------
//  The server: one thread, one connection at a time, canned answers chosen by the request path.

#define PIECES 4        //  /pieces sends its body in this many writes
#define PIECE_LEN 3000  //  bytes per piece
#define PIECE_GAP_MS 60 //  pause between pieces
#define BIG_LEN 100000  //  /big body size
#define LIMIT 4096      //  max_response of the tests
#define HANG_MAX 16     //  connections /hang keeps open

typedef struct {
    int lfd;                //  listening socket
    int port;               //  its port
    pthread_t thread;       //  accept loop
    atomic_bool stop;       //  ends the loop
    atomic_int accepted;    //  connections accepted so far
    atomic_int hanging;     //  /hang requests read and left unanswered
    pthread_mutex_t mu;     //  guards the last request below
    char head[8192];        //  last request line and headers
    char body[8192];        //  last request body
    size_t body_len;        //  its length
    int hang_fds[HANG_MAX]; //  closed when the server stops
    int nhang;              //  count
} server_t;

static server_t s_srv;

static int64_t
s_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
s_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
        ;
}

//  Write everything; false once the client went away (never SIGPIPE).
static bool
s_send_all(int fd, const char *data, size_t len)
{
    while (len) {
        ssize_t n = send(fd, data, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return false;
        data += n;
        len -= (size_t)n;
    }
    return true;
}

static bool
s_send_str(int fd, const char *s)
{
    return s_send_all(fd, s, strlen(s));
}

//  Read one request: head up to the blank line, then Content-Length bytes of body.
static bool
s_read_request(int fd, char *head, size_t head_max, char *body, size_t body_max, size_t *body_len)
{
    char buf[16384];
    size_t len = 0;
    char *end = NULL;
    while (!end) {
        if (len == sizeof buf - 1)
            return false;
        ssize_t n = recv(fd, buf + len, sizeof buf - 1 - len, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return false;
        len += (size_t)n;
        buf[len] = '\0';
        end = strstr(buf, "\r\n\r\n");
    }
    size_t hlen = (size_t)(end - buf) + 4;
    snprintf(head, head_max, "%.*s", (int)hlen, buf);
    size_t want = 0;
    for (char *line = strstr(head, "\r\n"); line; line = strstr(line + 2, "\r\n"))
        if (strncasecmp(line + 2, "Content-Length:", 15) == 0)
            want = strtoul(line + 17, NULL, 10);
    if (want > body_max)
        return false;
    size_t have = len - hlen;
    memcpy(body, buf + hlen, have < want ? have : want);
    while (have < want) {
        ssize_t n = recv(fd, body + have, want - have, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return false;
        have += (size_t)n;
    }
    *body_len = want;
    return true;
}

//  Answer one connection; true if the server keeps the socket open (/hang).
static bool
s_serve(int fd)
{
    char head[8192], body[8192];
    size_t body_len = 0;
    if (!s_read_request(fd, head, sizeof head, body, sizeof body, &body_len))
        return false;
    pthread_mutex_lock(&s_srv.mu);
    memcpy(s_srv.head, head, sizeof head);
    memcpy(s_srv.body, body, body_len);
    s_srv.body_len = body_len;
    pthread_mutex_unlock(&s_srv.mu);
    char path[256] = "";
    if (sscanf(head, "%*s %255s", path) != 1)
        return false;
    if (strcmp(path, "/hang") == 0) {
        atomic_fetch_add(&s_srv.hanging, 1);
        return true;
    }
    char hdr[512];
    if (strcmp(path, "/pieces") == 0) {
        snprintf(hdr, sizeof hdr,
                 "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
                 "Connection: close\r\n\r\n",
                 PIECES * PIECE_LEN);
        if (!s_send_str(fd, hdr))
            return false;
        char piece[PIECE_LEN];
        for (int i = 0; i < PIECES; i++) {
            for (int k = 0; k < PIECE_LEN; k++)
                piece[k] = (char)('A' + (i * PIECE_LEN + k) % 26);
            if (!s_send_all(fd, piece, sizeof piece))
                return false;
            s_sleep_ms(PIECE_GAP_MS);
        }
    } else if (strcmp(path, "/429") == 0) {
        s_send_str(fd, "HTTP/1.1 429 Too Many Requests\r\nRetry-After: 7\r\nContent-Length: 4\r\n"
                       "Connection: close\r\n\r\nslow");
    } else if (strcmp(path, "/429date") == 0) {
        s_send_str(fd, "HTTP/1.1 429 Too Many Requests\r\n"
                       "retry-after: Wed, 21 Oct 2015 07:28:00 GMT\r\nContent-Length: 0\r\n"
                       "Connection: close\r\n\r\n");
    } else if (strcmp(path, "/503") == 0) {
        s_send_str(fd, "HTTP/1.1 503 Service Unavailable\r\nRETRY-AFTER:   12  \r\n"
                       "Content-Length: 5\r\nConnection: close\r\n\r\nbusy!");
    } else if (strcmp(path, "/500long") == 0) {
        //  An error page longer than the excerpt, with bytes that must not reach a log line.
        char page[1000];
        for (size_t k = 0; k < sizeof page; k++)
            page[k] = k % 50 == 0 ? '\n' : k % 50 == 1 ? '\xC3' : (char)('a' + k % 26);
        snprintf(hdr, sizeof hdr,
                 "HTTP/1.1 500 Internal Server Error\r\nContent-Length: %zu\r\n"
                 "Connection: close\r\n\r\n",
                 sizeof page);
        if (s_send_str(fd, hdr))
            (void)s_send_all(fd, page, sizeof page);
    } else if (strcmp(path, "/big") == 0 || strcmp(path, "/exact") == 0) {
        size_t n = strcmp(path, "/big") == 0 ? BIG_LEN : LIMIT;
        snprintf(hdr, sizeof hdr,
                 "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n", n);
        char *data = es_malloc(n);
        memset(data, 'x', n);
        if (s_send_str(fd, hdr))
            (void)s_send_all(fd, data, n); //  the client may hang up part way: expected
        free(data);
    } else if (strcmp(path, "/chunked") == 0) {
        //  No length announced: the limit must hold on chunked bodies too.
        s_send_str(fd,
                   "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n");
        char chunk[1000 + 16];
        memset(chunk, 'c', sizeof chunk);
        for (int i = 0; i < 10; i++) {
            memcpy(chunk, "3e8\r\n", 5);
            memcpy(chunk + 5 + 1000, "\r\n", 2);
            if (!s_send_all(fd, chunk, 5 + 1000 + 2))
                return false;
        }
        s_send_str(fd, "0\r\n\r\n");
    } else {
        //  /echo and anything else: a short 200.
        s_send_str(fd, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
    }
    return false;
}

static void *
s_server_loop(void *arg)
{
    (void)arg;
    while (!atomic_load(&s_srv.stop)) {
        struct pollfd p = {s_srv.lfd, POLLIN, 0};
        if (poll(&p, 1, 20) <= 0)
            continue;
        int fd = accept(s_srv.lfd, NULL, NULL);
        if (fd < 0)
            continue;
        atomic_fetch_add(&s_srv.accepted, 1);
        struct timeval tv = {5, 0}; //  a stuck client cannot block the server forever
        (void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        if (s_serve(fd) && s_srv.nhang < HANG_MAX)
            s_srv.hang_fds[s_srv.nhang++] = fd;
        else
            close(fd);
    }
    for (int i = 0; i < s_srv.nhang; i++)
        close(s_srv.hang_fds[i]);
    return NULL;
}

static int
s_server_start(void **state)
{
    (void)state;
    memset(&s_srv, 0, sizeof s_srv);
    pthread_mutex_init(&s_srv.mu, NULL);
    s_srv.lfd = socket(AF_INET, SOCK_STREAM, 0);
    if (s_srv.lfd < 0)
        return -1;
    int one = 1;
    (void)setsockopt(s_srv.lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t alen = sizeof a;
    if (bind(s_srv.lfd, (struct sockaddr *)&a, sizeof a) || listen(s_srv.lfd, 64) ||
        getsockname(s_srv.lfd, (struct sockaddr *)&a, &alen))
        return -1;
    s_srv.port = ntohs(a.sin_port);
    return pthread_create(&s_srv.thread, NULL, s_server_loop, NULL) ? -1 : 0;
}

static int
s_server_stop(void **state)
{
    (void)state;
    atomic_store(&s_srv.stop, true);
    pthread_join(s_srv.thread, NULL);
    close(s_srv.lfd);
    pthread_mutex_destroy(&s_srv.mu);
    curl_global_cleanup();
    return 0;
}

static char *
s_url(const char *path)
{
    return es_sprintf("http://127.0.0.1:%d%s", s_srv.port, path);
}

//  ---------------------------------------------------------------------------------------------
//  The client side.

typedef struct {
    es_buf_t body;           //  bytes seen by on_data
    int data_calls;          //  on_data calls
    int fail_at;             //  on_data fails on this call (1-based), 0 never
    int done_calls;          //  on_done calls
    es_http_result_t result; //  copy of what on_done saw
    es_http_t *http;         //  for on_done chaining
    int chain_left;          //  requests on_done still starts
    const es_http_cb_t *cb;  //  callbacks, for chaining
} ctx_t;

static int
s_on_data(void *arg, const char *data, size_t len, es_err_t *err)
{
    ctx_t *c = arg;
    c->data_calls++;
    if (c->fail_at && c->data_calls == c->fail_at)
        return es_err_set(err, ES_EPROTO, "parse: bad byte at %zu", c->body.len + 3);
    es_buf_append(&c->body, data, len);
    return 0;
}

static void
s_on_done(void *arg, const es_http_result_t *result)
{
    ctx_t *c = arg;
    c->done_calls++;
    c->result = *result;
    if (c->chain_left > 0) {
        c->chain_left--;
        char *url = s_url("/429");
        es_err_t err;
        if (es_http_start(c->http, url, NULL, 0, NULL, 0, c->cb, c, &err))
            fprintf(stderr, "chained start: %s\n", err.what);
        free(url);
    }
}

static const es_http_cb_t s_cb = {s_on_data, s_on_done};

static void
s_ctx_init(ctx_t *c)
{
    memset(c, 0, sizeof *c);
    es_buf_init(&c->body);
    c->result.retry_after_s = -2; //  on_done must overwrite this
}

static es_http_t *
s_http(long timeout_ms)
{
    es_http_opts_t o = {
        .connect_timeout_ms = 2000, .timeout_ms = timeout_ms, .max_response = LIMIT};
    es_err_t err;
    es_http_t *h = es_http_new(&o, &err);
    if (!h)
        fail_msg("es_http_new: %s", err.what);
    return h;
}

//  Run the loop until nothing is in flight (or max_ms passes).
static void
s_drive(es_http_t *h, int max_ms)
{
    int64_t end = s_now_ms() + max_ms;
    for (;;) {
        es_http_perform(h);
        if (!es_http_active(h) || s_now_ms() > end)
            break;
        es_err_t err;
        assert_int_equal(es_http_wait(h, NULL, 0, 50, &err), 0);
    }
    assert_int_equal(es_http_active(h), 0);
}

static void
s_get(es_http_t *h, const char *path, ctx_t *c)
{
    char *url = s_url(path);
    es_err_t err;
    if (es_http_start(h, url, NULL, 0, NULL, 0, &s_cb, c, &err))
        fail_msg("start %s: %s", url, err.what);
    free(url);
}

static void
test_streamed_200(void **state)
{
    (void)state;
    es_http_opts_t o = {.connect_timeout_ms = 2000, .timeout_ms = 10000, .max_response = 1 << 20};
    es_err_t err;
    es_http_t *h = es_http_new(&o, &err);
    assert_non_null(h);
    ctx_t c;
    s_ctx_init(&c);
    s_get(h, "/pieces", &c);
    assert_int_equal(es_http_active(h), 1);
    s_drive(h, 10000);
    assert_int_equal(c.done_calls, 1);
    assert_int_equal(c.result.curl_code, CURLE_OK);
    assert_int_equal(c.result.status, 200);
    assert_int_equal(c.result.bytes, PIECES * PIECE_LEN);
    assert_int_equal(c.result.retry_after_s, -1);
    assert_false(c.result.data_failed);
    assert_int_equal(c.result.err.code, ES_OK);
    assert_string_equal(c.result.err.what, "");
    //  The pieces were 60 ms apart: the body arrived in several calls, in order.
    assert_true(c.result.seconds >= 0.15);
    assert_true(c.data_calls >= 2);
    assert_int_equal(c.body.len, PIECES * PIECE_LEN);
    for (size_t k = 0; k < c.body.len; k++)
        if (c.body.data[k] != (char)('A' + k % 26))
            fail_msg("byte %zu: got %c", k, c.body.data[k]);
    es_buf_release(&c.body);
    es_http_destroy(&h);
    assert_null(h);
    es_http_destroy(&h); //  safe twice
}

static void
test_status_codes(void **state)
{
    (void)state;
    es_http_t *h = s_http(10000);
    ctx_t c429, c503, cdate, cexact;
    s_ctx_init(&c429);
    s_ctx_init(&c503);
    s_ctx_init(&cdate);
    s_ctx_init(&cexact);
    //  All in flight at once.
    s_get(h, "/429", &c429);
    s_get(h, "/503", &c503);
    s_get(h, "/429date", &cdate);
    s_get(h, "/exact", &cexact);
    assert_int_equal(es_http_active(h), 4);
    s_drive(h, 10000);

    assert_int_equal(c429.done_calls, 1);
    assert_int_equal(c429.result.curl_code, CURLE_OK);
    assert_int_equal(c429.result.status, 429);
    assert_int_equal(c429.result.retry_after_s, 7);
    assert_int_equal(c429.result.err.code, ES_OK); //  a status is not a transport error
    //  A non-2xx body is not for the parser: it is kept as an excerpt, on_data never sees it.
    assert_string_equal(c429.result.excerpt, "slow");
    assert_int_equal(c429.data_calls, 0);
    assert_int_equal(c429.body.len, 0);

    assert_int_equal(c503.done_calls, 1);
    assert_int_equal(c503.result.curl_code, CURLE_OK);
    assert_int_equal(c503.result.status, 503);
    assert_int_equal(c503.result.retry_after_s, 12); //  any case, spaces around
    assert_int_equal(c503.result.bytes, 5);
    assert_string_equal(c503.result.excerpt, "busy!");
    assert_int_equal(c503.data_calls, 0);

    //  The HTTP-date form is not understood: our own backoff applies.
    assert_int_equal(cdate.done_calls, 1);
    assert_int_equal(cdate.result.status, 429);
    assert_int_equal(cdate.result.retry_after_s, -1);
    assert_int_equal(cdate.data_calls, 0);
    assert_string_equal(cdate.result.excerpt, "");

    //  A body of exactly max_response bytes is accepted.
    assert_int_equal(cexact.done_calls, 1);
    assert_int_equal(cexact.result.curl_code, CURLE_OK);
    assert_false(cexact.result.data_failed);
    assert_int_equal(cexact.result.bytes, LIMIT);
    assert_int_equal(cexact.body.len, LIMIT);
    assert_string_equal(cexact.result.excerpt, ""); //  2xx bodies go to on_data only

    es_buf_release(&c429.body);
    es_buf_release(&c503.body);
    es_buf_release(&cdate.body);
    es_buf_release(&cexact.body);
    es_http_destroy(&h);
}

static void
s_check_too_big(const char *path)
{
    es_http_t *h = s_http(10000);
    ctx_t c;
    s_ctx_init(&c);
    s_get(h, path, &c);
    s_drive(h, 10000);
    assert_int_equal(c.done_calls, 1);
    assert_true(c.result.data_failed);
    assert_int_equal(c.result.curl_code, CURLE_WRITE_ERROR);
    assert_int_equal(c.result.status, 200);
    assert_int_equal(c.result.err.code, ES_EHTTP);
    char *url = s_url(path);
    char *want = es_sprintf("http: %s: response larger than %d bytes", url, LIMIT);
    assert_string_equal(c.result.err.what, want);
    free(want);
    free(url);
    //  The caller never saw more than the limit.
    assert_true(c.body.len <= LIMIT);
    assert_true(c.result.bytes > LIMIT);
    es_buf_release(&c.body);
    es_http_destroy(&h);
}

static void
test_too_big(void **state)
{
    (void)state;
    s_check_too_big("/big");
    s_check_too_big("/chunked");
}

static void
test_on_data_fails(void **state)
{
    (void)state;
    es_http_opts_t o = {.connect_timeout_ms = 2000, .timeout_ms = 10000, .max_response = 1 << 20};
    es_err_t err;
    es_http_t *h = es_http_new(&o, &err);
    assert_non_null(h);
    ctx_t c;
    s_ctx_init(&c);
    c.fail_at = 2; //  the second piece is refused
    s_get(h, "/pieces", &c);
    s_drive(h, 10000);
    assert_int_equal(c.done_calls, 1);
    assert_int_equal(c.data_calls, 2); //  no call after the refusal
    assert_true(c.result.data_failed);
    assert_int_equal(c.result.curl_code, CURLE_WRITE_ERROR);
    assert_int_equal(c.result.err.code, ES_EPROTO); //  the callback's code, passed through
    char *url = s_url("/pieces");
    char *want = es_sprintf("http: %s: parse: bad byte at %zu", url, c.body.len + 3);
    assert_string_equal(c.result.err.what, want);
    free(want);
    free(url);
    es_buf_release(&c.body);
    es_http_destroy(&h);
}

static void
test_connection_refused(void **state)
{
    (void)state;
    //  A bound socket that does not listen: connecting to its port is refused, and nobody else
    //  can take the port meanwhile.
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t alen = sizeof a;
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &alen), 0);
    char *url = es_sprintf("http://127.0.0.1:%d/x", ntohs(a.sin_port));
    es_http_t *h = s_http(10000);
    ctx_t c;
    s_ctx_init(&c);
    es_err_t err;
    assert_int_equal(es_http_start(h, url, "b", 1, NULL, 0, &s_cb, &c, &err), 0);
    s_drive(h, 10000);
    assert_int_equal(c.done_calls, 1);
    assert_int_equal(c.result.curl_code, CURLE_COULDNT_CONNECT);
    assert_int_equal(c.result.status, 0);
    assert_int_equal(c.result.bytes, 0);
    assert_false(c.result.data_failed);
    assert_int_equal(c.result.err.code, ES_EHTTP);
    char *prefix = es_sprintf("http: %s: ", url);
    assert_memory_equal(c.result.err.what, prefix, strlen(prefix));
    assert_true(strlen(c.result.err.what) > strlen(prefix)); //  followed by curl's text
    free(prefix);
    assert_int_equal(c.data_calls, 0);
    close(fd);
    free(url);

    //  A scheme curl does not speak fails the same way, naming the URL.
    s_ctx_init(&c);
    assert_int_equal(es_http_start(h, "gopherx://127.0.0.1/", NULL, 0, NULL, 0, &s_cb, &c, &err),
                     0);
    s_drive(h, 10000);
    assert_int_equal(c.done_calls, 1);
    assert_int_equal(c.result.curl_code, CURLE_UNSUPPORTED_PROTOCOL);
    assert_int_equal(c.result.err.code, ES_EHTTP);
    assert_non_null(strstr(c.result.err.what, "http: gopherx://127.0.0.1/: "));
    es_http_destroy(&h);
}

//  TLS settings that cannot work fail before any request is sent, as 2033, not worth a retry,
//  naming the option and its file. The plain test server only sees a connection close.
static void
s_expect_tls_failure(es_http_opts_t *o, CURLcode code, const char *words)
{
    es_err_t err;
    es_http_t *h = es_http_new(o, &err);
    if (!h)
        fail_msg("es_http_new: %s", err.what);
    char *url = es_sprintf("https://127.0.0.1:%d/ok", s_srv.port);
    ctx_t c;
    s_ctx_init(&c);
    assert_int_equal(es_http_start(h, url, NULL, 0, NULL, 0, &s_cb, &c, &err), 0);
    s_drive(h, 10000);
    assert_int_equal(c.done_calls, 1);
    assert_int_equal(c.result.curl_code, code);
    assert_int_equal(es_http_vmx_code(&c.result), 2033);
    assert_true(es_http_tls_permanent(&c.result));
    char *prefix = es_sprintf("http: %s: TLS: ", url);
    assert_memory_equal(c.result.err.what, prefix, strlen(prefix));
    if (!strstr(c.result.err.what, words))
        fail_msg("'%s' lacks '%s'", c.result.err.what, words);
    assert_int_equal(c.data_calls, 0);
    free(prefix);
    free(url);
    es_http_destroy(&h);
}

static void
test_tls_settings(void **state)
{
    (void)state;
    char dir[] = "/tmp/test_es_http.XXXXXX";
    assert_non_null(mkdtemp(dir));
    char *junk = es_sprintf("%s/junk.pem", dir);
    FILE *f = fopen(junk, "w");
    assert_non_null(f);
    assert_true(fputs("not a certificate\n", f) >= 0);
    assert_int_equal(fclose(f), 0);
    es_http_opts_t o = {.connect_timeout_ms = 2000, .timeout_ms = 5000, .max_response = LIMIT};
    es_err_t err0;
    o.tls_ca_file = junk;
    char *want = es_sprintf("cannot use tls.ca_file '%s'", junk);
    s_expect_tls_failure(&o, CURLE_SSL_CACERT_BADFILE, want);
    free(want);
    o.tls_ca_file = NULL;
    o.tls_cert_file = junk;
    o.tls_key_file = junk;
    want = es_sprintf("tls.cert_file '%s' with tls.key_file '%s'", junk, junk);
    s_expect_tls_failure(&o, CURLE_SSL_CERTPROBLEM, want);
    free(want);
    //  With a passphrase file: the failure names it too (a wrong passphrase looks the same to
    //  libcurl), and never quotes the passphrase.
    char *pass = es_sprintf("%s/pass", dir);
    f = fopen(pass, "w");
    assert_non_null(f);
    assert_true(fputs("Pass-Phrase-42\n", f) >= 0);
    assert_int_equal(fclose(f), 0);
    assert_int_equal(chmod(pass, 0600), 0);
    o.tls_key_password_file = pass;
    want = es_sprintf("tls.key_file '%s' and the passphrase in tls.key_password_file '%s'", junk,
                      pass);
    s_expect_tls_failure(&o, CURLE_SSL_CERTPROBLEM, want);
    free(want);
    {
        es_http_t *h = es_http_new(&o, &err0);
        assert_non_null(h);
        char *url = es_sprintf("https://127.0.0.1:%d/ok", s_srv.port);
        ctx_t c;
        s_ctx_init(&c);
        assert_int_equal(es_http_start(h, url, NULL, 0, NULL, 0, &s_cb, &c, &err0), 0);
        s_drive(h, 10000);
        assert_int_equal(c.done_calls, 1);
        assert_null(strstr(c.result.err.what, "Pass-Phrase-42"));
        free(url);
        es_http_destroy(&h);
    }
    //  A passphrase file that cannot be used: no handle, the option named.
    assert_int_equal(chmod(pass, 0644), 0);
    assert_null(es_http_new(&o, &err0));
    assert_int_equal(err0.code, ES_ECONFIG);
    assert_non_null(strstr(err0.what, "tls.key_password_file: "));
    assert_non_null(strstr(err0.what, "mode 0644"));
    assert_int_equal(unlink(pass), 0);
    assert_null(es_http_new(&o, &err0));
    want = es_sprintf("tls.key_password_file: cannot read '%s': No such file or directory", pass);
    assert_string_equal(err0.what, want);
    free(want);
    o.tls_key_password_file = "";
    //  Codes: every TLS failure is 2033; only a failed handshake may be retried.
    es_http_result_t r = {.curl_code = CURLE_SSL_CONNECT_ERROR};
    assert_int_equal(es_http_vmx_code(&r), 2033);
    assert_false(es_http_tls_permanent(&r));
    r.curl_code = CURLE_PEER_FAILED_VERIFICATION;
    assert_int_equal(es_http_vmx_code(&r), 2033);
    assert_true(es_http_tls_permanent(&r));
    r.curl_code = CURLE_COULDNT_CONNECT;
    assert_false(es_http_is_tls_error(r.curl_code));
    assert_false(es_http_tls_permanent(&r));
    //  From the config: verification on unless tls.verify = false; files as configured.
    es_config_t *cfg = es_config_new();
    es_http_opts_from_config(&o, cfg);
    assert_false(o.tls_insecure);
    assert_string_equal(o.tls_ca_file, "");
    assert_int_equal(o.timeout_ms, 60000);
    es_err_t err;
    assert_int_equal(es_config_set(cfg, "tls.verify", "false", &err), 0);
    assert_int_equal(es_config_set(cfg, "tls.ca_file", junk, &err), 0);
    es_http_opts_from_config(&o, cfg);
    assert_true(o.tls_insecure);
    assert_string_equal(o.tls_ca_file, junk);
    assert_string_equal(o.tls_key_password_file, "");
    assert_int_equal(es_config_set(cfg, "tls.key_password_file", junk, &err), 0);
    es_http_opts_from_config(&o, cfg);
    assert_string_equal(o.tls_key_password_file, junk);
    es_config_destroy(&cfg);
    assert_int_equal(unlink(junk), 0);
    assert_int_equal(rmdir(dir), 0);
    free(junk);
    free(pass);
}

//  A client certificate and its key encrypted (PKCS#8, AES-256-CBC) with the passphrase
//  "unit-test-passphrase", made for this test with openssl (self-signed, never trusted by anyone).
static const char s_client_pem[] =
    "-----BEGIN CERTIFICATE-----\n"
    "MIIBkzCCATmgAwIBAgIUPe7aEgyYIKwcei9PbHF96fGxAskwCgYIKoZIzj0EAwIw\n"
    "HjEcMBoGA1UEAwwTdGVzdF9lc19odHRwIGNsaWVudDAgFw0yNjExMjYxMTA0NDNa\n"
    "GA8yMTI2MTEwMjExMDQ0M1owHjEcMBoGA1UEAwwTdGVzdF9lc19odHRwIGNsaWVu\n"
    "dDBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABJ/S1JLTiRj1pGzzpavPRdva2zgt\n"
    "U2UHN6jSz0rubSNoT7CGc6koW8qvTmLKgXV0dKA/GuG0qCvsV5Rec+UScJKjUzBR\n"
    "MB0GA1UdDgQWBBTIWoSLIBiXmwCC7WEesoDwTHA22zAfBgNVHSMEGDAWgBTIWoSL\n"
    "IBiXmwCC7WEesoDwTHA22zAPBgNVHRMBAf8EBTADAQH/MAoGCCqGSM49BAMCA0gA\n"
    "MEUCIQCybmkMOSn8/sdkFjYMg0hV5TwHbEXsFLfhDXyZKKfl2wIgb3oc26b0/dkd\n"
    "WcX2WilaeQhWl1hMVUxgEihUfoFsJqA=\n"
    "-----END CERTIFICATE-----\n";
static const char s_client_enc_key[] =
    "-----BEGIN ENCRYPTED PRIVATE KEY-----\n"
    "MIHsMFcGCSqGSIb3DQEFDTBKMCkGCSqGSIb3DQEFDDAcBAj+BlkkVfuNywICCAAw\n"
    "DAYIKoZIhvcNAgkFADAdBglghkgBZQMEASoEEA8WQm1J422cV+MMFGOgqikEgZB3\n"
    "ULTu7LmUPA1EMP8Ec67ANWY4UV3DKMtppy4B+HmdMrOYnPQHOy3fJCBj1O5oX2xs\n"
    "6F7a8OzUcp6FoVIijbuPmM+IIhyz2AjcuD3oJYU5msESL0nziCuoQ5cSyMHePk+i\n"
    "566i7AkdVoqWlIlfGeh7A+7jTKx9tFrLvhnHDh/hECvrKIrqZ9UTFivvqB+kn6s=\n"
    "-----END ENCRYPTED PRIVATE KEY-----\n";

//  Write text to dir/name with mode 0600; returns the path (caller frees).
static char *
s_write_file(const char *dir, const char *name, const char *text)
{
    char *path = es_sprintf("%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_true(fputs(text, f) >= 0);
    assert_int_equal(fclose(f), 0);
    assert_int_equal(chmod(path, 0600), 0);
    return path;
}

//  One https request with opts to a loopback port that accepts each connection and closes it
//  at once: the client loads its certificate and key, then its handshake meets end of file.
//  Returns libcurl's code, err copied.
static CURLcode
s_tls_request(const es_http_opts_t *o, es_err_t *out)
{
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(lfd >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t salen = sizeof sa;
    assert_int_equal(bind(lfd, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(listen(lfd, 4), 0);
    assert_int_equal(getsockname(lfd, (struct sockaddr *)&sa, &salen), 0);
    es_err_t err;
    es_http_t *h = es_http_new(o, &err);
    if (!h)
        fail_msg("es_http_new: %s", err.what);
    char *url = es_sprintf("https://127.0.0.1:%d/ok", ntohs(sa.sin_port));
    ctx_t c;
    s_ctx_init(&c);
    assert_int_equal(es_http_start(h, url, NULL, 0, NULL, 0, &s_cb, &c, &err), 0);
    int64_t end = s_now_ms() + 10000;
    while (es_http_active(h) && s_now_ms() < end) {
        struct curl_waitfd extra = {.fd = lfd, .events = CURL_WAIT_POLLIN};
        assert_int_equal(es_http_wait(h, &extra, 1, 50, &err), 0);
        if (extra.revents & CURL_WAIT_POLLIN) {
            int cfd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
            if (cfd >= 0)
                close(cfd);
        }
        es_http_perform(h);
    }
    assert_int_equal(c.done_calls, 1);
    *out = c.result.err;
    free(url);
    es_http_destroy(&h);
    close(lfd);
    return c.result.curl_code;
}

//  An encrypted client key: libcurl gets the passphrase (CURLOPT_KEYPASSWD). The right one
//  loads the key, so the request gets as far as the handshake (cut by the peer);
//  a wrong one, or none, fails on the key (no terminal prompt), naming the options and never
//  quoting the passphrase.
static void
test_tls_encrypted_key(void **state)
{
    (void)state;
    char dir[] = "/tmp/test_es_http.XXXXXX";
    assert_non_null(mkdtemp(dir));
    char *pem = s_write_file(dir, "client.pem", s_client_pem);
    char *key = s_write_file(dir, "client.key", s_client_enc_key);
    char *right = s_write_file(dir, "right.pass", "unit-test-passphrase\n");
    char *wrong = s_write_file(dir, "wrong.pass", "not-the-passphrase\r\n");
    es_http_opts_t o = {.connect_timeout_ms = 2000, .timeout_ms = 5000, .max_response = LIMIT};
    o.tls_cert_file = pem;
    o.tls_key_file = key;
    es_err_t err;

    o.tls_key_password_file = right;
    assert_int_equal(s_tls_request(&o, &err), CURLE_SSL_CONNECT_ERROR);
    assert_null(strstr(err.what, "unit-test-passphrase"));

    o.tls_key_password_file = wrong;
    assert_int_equal(s_tls_request(&o, &err), CURLE_SSL_CERTPROBLEM);
    char *want = es_sprintf("with tls.key_file '%s' and the passphrase in tls.key_password_file "
                            "'%s' (a wrong passphrase?",
                            key, wrong);
    if (!strstr(err.what, want))
        fail_msg("'%s' lacks '%s'", err.what, want);
    free(want);
    assert_null(strstr(err.what, "not-the-passphrase"));

    o.tls_key_password_file = NULL;
    assert_int_equal(s_tls_request(&o, &err), CURLE_SSL_CERTPROBLEM);
    if (!strstr(err.what, "an encrypted key needs tls.key_password_file"))
        fail_msg("'%s' lacks the hint", err.what);

    char *paths[] = {pem, key, right, wrong};
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
        assert_int_equal(unlink(paths[i]), 0);
        free(paths[i]);
    }
    assert_int_equal(rmdir(dir), 0);
}

static void
test_timeout(void **state)
{
    (void)state;
    es_http_t *h = s_http(300);
    ctx_t c;
    s_ctx_init(&c);
    int64_t t0 = s_now_ms();
    s_get(h, "/hang", &c);
    s_drive(h, 10000);
    int64_t took = s_now_ms() - t0;
    assert_int_equal(c.done_calls, 1);
    assert_int_equal(c.result.curl_code, CURLE_OPERATION_TIMEDOUT);
    assert_int_equal(c.result.err.code, ES_ETIMEOUT);
    assert_int_equal(c.result.status, 0);
    char *url = s_url("/hang");
    char *prefix = es_sprintf("http: %s: ", url);
    assert_memory_equal(c.result.err.what, prefix, strlen(prefix));
    free(prefix);
    free(url);
    assert_true(took >= 290 && took < 5000);
    assert_true(c.result.seconds >= 0.29 && c.result.seconds < 5);
    es_http_destroy(&h);
}

static void
test_request_headers_and_body(void **state)
{
    (void)state;
    es_http_t *h = s_http(10000);
    ctx_t c;
    s_ctx_init(&c);
    char *url = s_url("/echo");
    const char *headers[] = {"X-Voltmx-Authorization: tok-123", "X-Test: a b  c",
                             "Content-Type: application/json"};
    const char body[] = "{\"a\":1}\0tail"; //  binary: the length counts, not the NUL
    size_t body_len = sizeof body - 1;
    es_err_t err;
    //  The caller's copies may change right after start: the request holds its own.
    char *hcopy[3], *bcopy = es_malloc(body_len);
    for (int i = 0; i < 3; i++)
        hcopy[i] = es_strdup(headers[i]);
    memcpy(bcopy, body, body_len);
    assert_int_equal(
        es_http_start(h, url, bcopy, body_len, (const char *const *)hcopy, 3, &s_cb, &c, &err), 0);
    for (int i = 0; i < 3; i++) {
        memset(hcopy[i], 'Z', strlen(hcopy[i]));
        free(hcopy[i]);
    }
    memset(bcopy, 'Z', body_len);
    free(bcopy);
    s_drive(h, 10000);
    assert_int_equal(c.done_calls, 1);
    assert_int_equal(c.result.status, 200);
    assert_string_equal(c.body.data, "ok");
    pthread_mutex_lock(&s_srv.mu);
    char *head = es_strdup(s_srv.head);
    size_t got_len = s_srv.body_len;
    char *got = es_strndup(s_srv.body, got_len);
    pthread_mutex_unlock(&s_srv.mu);
    assert_memory_equal(head, "POST /echo HTTP/1.1\r\n", 21);
    for (int i = 0; i < 3; i++) {
        char *line = es_sprintf("\r\n%s\r\n", headers[i]);
        if (!strstr(head, line))
            fail_msg("header '%s' not sent: %s", headers[i], head);
        free(line);
    }
    char *cl = es_sprintf("\r\nContent-Length: %zu\r\n", body_len);
    assert_non_null(strstr(head, cl));
    free(cl);
    assert_int_equal(got_len, body_len);
    assert_memory_equal(got, body, body_len);
    free(head);
    free(got);
    es_buf_release(&c.body);

    //  GET: no body, no Content-Length.
    s_ctx_init(&c);
    char *qurl = s_url("/echo?x=1&y=%20");
    assert_int_equal(es_http_start(h, qurl, NULL, 0, headers, 1, &s_cb, &c, &err), 0);
    s_drive(h, 10000);
    assert_int_equal(c.result.status, 200);
    pthread_mutex_lock(&s_srv.mu);
    head = es_strdup(s_srv.head);
    got_len = s_srv.body_len;
    pthread_mutex_unlock(&s_srv.mu);
    assert_memory_equal(head, "GET /echo?x=1&y=%20 HTTP/1.1\r\n", 30);
    assert_non_null(strstr(head, "\r\nX-Voltmx-Authorization: tok-123\r\n"));
    assert_null(strstr(head, "X-Test"));
    assert_null(strcasestr(head, "Content-Length"));
    assert_int_equal(got_len, 0);
    free(head);
    free(qurl);
    free(url);
    es_buf_release(&c.body);
    es_http_destroy(&h);
}

static void
test_chained_requests(void **state)
{
    (void)state;
    es_http_t *h = s_http(10000);
    ctx_t c;
    s_ctx_init(&c);
    c.http = h;
    c.cb = &s_cb;
    c.chain_left = 3; //  on_done starts the next request three times
    s_get(h, "/503", &c);
    s_drive(h, 10000);
    assert_int_equal(c.done_calls, 4);
    assert_int_equal(c.chain_left, 0);
    assert_int_equal(c.result.status, 429);
    assert_string_equal(c.result.excerpt, "slow"); //  each request has its own result
    assert_int_equal(c.data_calls, 0);
    es_buf_release(&c.body);
    es_http_destroy(&h);
}

//  Loop until the server holds want unanswered /hang requests.
static void
s_wait_hanging(es_http_t *h, int want)
{
    int64_t end = s_now_ms() + 10000;
    while (atomic_load(&s_srv.hanging) < want && s_now_ms() < end) {
        es_http_perform(h);
        es_err_t err;
        assert_int_equal(es_http_wait(h, NULL, 0, 20, &err), 0);
    }
    assert_int_equal(atomic_load(&s_srv.hanging), want);
}

static void
test_abort_all(void **state)
{
    (void)state;
    es_http_t *h = s_http(60000);
    ctx_t c[3];
    int before = atomic_load(&s_srv.hanging);
    for (int i = 0; i < 3; i++) {
        s_ctx_init(&c[i]);
        s_get(h, "/hang", &c[i]);
    }
    assert_int_equal(es_http_active(h), 3);
    s_wait_hanging(h, before + 3);
    es_http_abort_all(h);
    assert_int_equal(es_http_active(h), 0);
    es_http_perform(h); //  nothing left to finish
    for (int i = 0; i < 3; i++) {
        assert_int_equal(c[i].done_calls, 0);
        assert_int_equal(c[i].data_calls, 0);
    }
    es_http_abort_all(h); //  nothing in flight: no-op
    //  The handle still works afterwards.
    ctx_t ok;
    s_ctx_init(&ok);
    s_get(h, "/429", &ok);
    s_drive(h, 10000);
    assert_int_equal(ok.done_calls, 1);
    assert_int_equal(ok.result.status, 429);
    es_buf_release(&ok.body);

    //  Destroying with requests in flight aborts them the same way.
    s_ctx_init(&c[0]);
    s_ctx_init(&c[1]);
    s_get(h, "/hang", &c[0]);
    s_get(h, "/echo", &c[1]);
    s_wait_hanging(h, before + 4);
    es_http_destroy(&h);
    assert_null(h);
    assert_int_equal(c[0].done_calls, 0);
    for (int i = 0; i < 3; i++)
        es_buf_release(&c[i].body);
}

//  es_http_kick sends a started request without anything else driving the transfer, and never
//  reports an end: that waits for es_http_perform.
static void
test_kick(void **state)
{
    (void)state;
    es_http_t *h = s_http(60000);
    ctx_t c, e;
    s_ctx_init(&c);
    s_ctx_init(&e);
    int before = atomic_load(&s_srv.hanging);
    s_get(h, "/hang", &c);
    int64_t end = s_now_ms() + 10000;
    while (atomic_load(&s_srv.hanging) == before && s_now_ms() < end) {
        es_http_kick(h);
        s_sleep_ms(5);
    }
    assert_int_equal(atomic_load(&s_srv.hanging), before + 1); //  the request reached the server
    es_http_abort_all(h);
    s_get(h, "/echo", &e);
    end = s_now_ms() + 300; //  long enough for the answer to arrive and end the transfer
    while (s_now_ms() < end) {
        es_http_kick(h);
        s_sleep_ms(5);
    }
    assert_int_equal(e.done_calls, 0);
    assert_int_equal(es_http_active(h), 1);
    s_drive(h, 10000);
    assert_int_equal(e.done_calls, 1);
    assert_int_equal(e.result.status, 200);
    assert_int_equal(c.done_calls, 0);
    es_buf_release(&c.body);
    es_buf_release(&e.body);
    es_http_destroy(&h);
}

static void
test_error_page_excerpt(void **state)
{
    (void)state;
    es_http_t *h = s_http(10000);
    ctx_t c;
    s_ctx_init(&c);
    s_get(h, "/500long", &c);
    s_drive(h, 10000);
    assert_int_equal(c.done_calls, 1);
    assert_int_equal(c.result.curl_code, CURLE_OK);
    assert_int_equal(c.result.status, 500);
    assert_int_equal(c.result.err.code, ES_OK);
    assert_false(c.result.data_failed);
    assert_int_equal(c.result.bytes, 1000);
    assert_int_equal(c.data_calls, 0);
    //  The first 255 bytes, anything unprintable as a space.
    char want[sizeof c.result.excerpt];
    for (size_t k = 0; k < sizeof want - 1; k++)
        want[k] = k % 50 <= 1 ? ' ' : (char)('a' + k % 26);
    want[sizeof want - 1] = '\0';
    assert_string_equal(c.result.excerpt, want);
    es_http_destroy(&h);
}

//  The loop's other fds (pipe, signalfd) wake es_http_wait early; without activity it waits.
static void
test_wait_extra_fd(void **state)
{
    (void)state;
    es_http_t *h = s_http(10000);
    int p[2];
    assert_int_equal(pipe(p), 0);
    struct curl_waitfd w = {.fd = p[0], .events = CURL_WAIT_POLLIN};
    es_err_t err;
    int64_t t0 = s_now_ms();
    assert_int_equal(es_http_wait(h, &w, 1, 200, &err), 0);
    int64_t idle = s_now_ms() - t0;
    assert_true(idle >= 190 && idle < 2000);
    assert_int_equal(write(p[1], "x", 1), 1);
    t0 = s_now_ms();
    assert_int_equal(es_http_wait(h, &w, 1, 5000, &err), 0);
    assert_true(s_now_ms() - t0 < 1000);
    assert_true(w.revents & CURL_WAIT_POLLIN);
    close(p[0]);
    close(p[1]);
    es_http_destroy(&h);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_streamed_200),
        cmocka_unit_test(test_kick),
        cmocka_unit_test(test_status_codes),
        cmocka_unit_test(test_too_big),
        cmocka_unit_test(test_on_data_fails),
        cmocka_unit_test(test_connection_refused),
        cmocka_unit_test(test_tls_settings),
        cmocka_unit_test(test_tls_encrypted_key),
        cmocka_unit_test(test_timeout),
        cmocka_unit_test(test_request_headers_and_body),
        cmocka_unit_test(test_chained_requests),
        cmocka_unit_test(test_abort_all),
        cmocka_unit_test(test_error_page_excerpt),
        cmocka_unit_test(test_wait_extra_fd),
    };
    return cmocka_run_group_tests(tests, s_server_start, s_server_stop);
}
