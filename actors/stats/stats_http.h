//  stats_http - the /metrics endpoint of es-stats: libmicrohttpd without threads, driven from the
//  actor's own poll loop through one epoll descriptor. Writes are non-blocking, so a slow
//  scraper never holds the loop; connections idle for 10 s are closed.
#ifndef STATS_HTTP_H
#define STATS_HTTP_H
#include "common/es_buf.h"
#include "common/es_err.h"
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

typedef struct stats_http stats_http_t;

//  Fill out with the page body (text exposition); called inside stats_http_run.
typedef void(stats_http_render_fn)(void *ctx, es_buf_t *out);

//  Parse "host:port" (IPv4, "[IPv6]", or "localhost"; port 0..65535) into sa. A host outside
//  127.0.0.0/8 and ::1 is refused unless allow_remote. -1 with err naming the value.
int stats_http_parse_listen(const char *listen, bool allow_remote, struct sockaddr_storage *sa,
                            socklen_t *salen, es_err_t *err);

//  Listen on listen (see above). NULL with err (bad address, port in use).
stats_http_t *stats_http_new(const char *listen, bool allow_remote, stats_http_render_fn *fn,
                             void *ctx, es_err_t *err);
void stats_http_destroy(stats_http_t **self_p);
//  Descriptor to poll for input; then call stats_http_run.
int stats_http_fd(const stats_http_t *self);
//  ms until stats_http_run must be called even without input, at most cap.
int stats_http_timeout_ms(const stats_http_t *self, int cap);
//  Accept, read, answer, time out: whatever is ready, without blocking.
void stats_http_run(stats_http_t *self);
//  Port actually bound (useful with port 0).
uint16_t stats_http_port(const stats_http_t *self);

#endif
