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

#endif
