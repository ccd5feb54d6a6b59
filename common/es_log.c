//  es_log - stderr logging, one line per call, journald-friendly.
#include "common/es_log.h"
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *s_name = "edgesync";
static int s_level = -1;

void
es_log_init(const char *name)
{
    s_name = name;
}

int
es_log_level_parse(const char *text)
{
    static const char *names[] = {"error", "warn", "info", "debug"};
    for (int i = 0; i < 4; i++)
        if (text && strcmp(text, names[i]) == 0)
            return i;
    return -1;
}

es_log_level_t
es_log_get_level(void)
{
    if (s_level < 0) {
        int env = es_log_level_parse(getenv("ES_LOG_LEVEL"));
        s_level = env >= 0 ? env : ES_LOG_INFO;
    }
    return (es_log_level_t)s_level;
}

void
es_log_set_level(es_log_level_t level)
{
    s_level = (int)level;
}

static void
s_vlog(es_log_level_t level, const char *fmt, va_list ap)
{
    if (level > es_log_get_level())
        return;
    char line[2048];
    int n = snprintf(line, sizeof line, "%c %s[%d]: ", "EWID"[level], s_name, (int)getpid());
    if (n < 0)
        return;
    int m = vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
    size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
    if (len > sizeof line - 2)
        len = sizeof line - 2;
    line[len++] = '\n';
    //  One write per line so lines of concurrent processes do not interleave.
    ssize_t w = write(STDERR_FILENO, line, len);
    (void)w; //  nowhere to report a failed log write
}

#define ES_LOG_FN(fn, level)                                                                       \
    void fn(const char *fmt, ...)                                                                  \
    {                                                                                              \
        va_list ap;                                                                                \
        va_start(ap, fmt);                                                                         \
        s_vlog(level, fmt, ap);                                                                    \
        va_end(ap);                                                                                \
    }
ES_LOG_FN(es_log_error, ES_LOG_ERROR)
ES_LOG_FN(es_log_warn, ES_LOG_WARN)
ES_LOG_FN(es_log_info, ES_LOG_INFO)
ES_LOG_FN(es_log_debug, ES_LOG_DEBUG)

uint64_t
es_log_limit_flush(es_log_limit_t *self, int64_t now_ms)
{
    if (!self->window_ms || now_ms - self->window_ms < ES_LOG_LIMIT_WINDOW_MS)
        return 0;
    uint64_t n = self->suppressed;
    if (n)
        es_log_warn("%s: %llu more in the last %d s (the first %u logged one by one)", self->what,
                    (unsigned long long)n, ES_LOG_LIMIT_WINDOW_MS / 1000, self->logged);
    self->window_ms = 0;
    self->logged = 0;
    self->suppressed = 0;
    return n;
}

bool
es_log_limit_allow(es_log_limit_t *self, int64_t now_ms)
{
    (void)es_log_limit_flush(self, now_ms);
    if (!self->window_ms)
        self->window_ms = now_ms ? now_ms : 1; //  0 means "no window open"
    if (self->logged < ES_LOG_LIMIT_BURST) {
        self->logged++;
        return true;
    }
    self->suppressed++;
    return false;
}
