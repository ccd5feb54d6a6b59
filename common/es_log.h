//  es_log - one line per event on stderr: "W upload[4242]: orders: batch 7 rejected: HTTP 409".
#ifndef ES_LOG_H
#define ES_LOG_H

typedef enum { ES_LOG_ERROR = 0, ES_LOG_WARN = 1, ES_LOG_INFO = 2, ES_LOG_DEBUG = 3 } es_log_level_t;

//  Name the process in every line (borrowed: pass a string literal). Default "edgesync".
void es_log_init(const char *name);
//  Lines above level are dropped. Default ES_LOG_INFO, or $ES_LOG_LEVEL (error|warn|info|debug).
void es_log_set_level(es_log_level_t level);
//  Parse "error|warn|info|debug"; -1 if unknown.
int es_log_level_parse(const char *text);
es_log_level_t es_log_get_level(void);

void es_log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void es_log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void es_log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void es_log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#include <stdbool.h>
#include <stdint.h>

//  Rate limit for one kind of warning that outside input can repeat at will (malformed
//  messages): the first ES_LOG_LIMIT_BURST in a window of ES_LOG_LIMIT_WINDOW_MS are logged by
//  the caller, the rest only counted, and one summary line per window reports how many were
//  not logged. Zero-initialise with what set; what is borrowed (a string literal).
#define ES_LOG_LIMIT_BURST 10
#define ES_LOG_LIMIT_WINDOW_MS 10000
typedef struct {
    const char *what;    //  e.g. "command socket: dropped malformed messages"
    int64_t window_ms;   //  start of the current window, 0 = none open
    uint32_t logged;     //  lines the caller logged in this window
    uint64_t suppressed; //  occurrences counted but not logged in this window
} es_log_limit_t;

//  One occurrence at now_ms (monotonic): true if the caller should log it, false if it was
//  only counted. Ends an expired window first (see es_log_limit_flush).
bool es_log_limit_allow(es_log_limit_t *self, int64_t now_ms);
//  If the window is over, log its summary (when anything was suppressed) and close it; call
//  from the loop's periodic tick so a burst is summarised even if nothing follows it. Returns
//  the number of occurrences the summary reported (0 if none).
uint64_t es_log_limit_flush(es_log_limit_t *self, int64_t now_ms);

#endif
