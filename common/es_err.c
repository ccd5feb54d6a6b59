//  es_err - error records.
#include "common/es_err.h"
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int
es_err_set(es_err_t *err, es_code_t code, const char *fmt, ...)
{
    if (!err)
        return -1;
    err->code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->what, sizeof err->what, fmt, ap);
    va_end(ap);
    return -1;
}

int
es_err_prefix(es_err_t *err, const char *fmt, ...)
{
    if (!err)
        return -1;
    char prefix[ES_ERR_WHAT_MAX], old[ES_ERR_WHAT_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, err->what, sizeof old);
    //  Truncation is acceptable: the text is for people.
    size_t n = strlen(prefix);
    if (n > sizeof err->what - 3)
        n = sizeof err->what - 3;
    memcpy(err->what, prefix, n);
    memcpy(err->what + n, ": ", 2);
    size_t room = sizeof err->what - n - 3;
    size_t m = strnlen(old, room);
    memcpy(err->what + n + 2, old, m);
    err->what[n + 2 + m] = '\0';
    return -1;
}

void
es_err_clear(es_err_t *err)
{
    if (!err)
        return;
    err->code = ES_OK;
    err->what[0] = '\0';
}

const char *
es_err_name(es_code_t code)
{
    static const char *names[] = {"OK",     "EINVAL",  "EPROTO",   "ESTORE",
                                  "EHTTP",  "ENOTFOUND", "ECONFIG", "ESYS",
                                  "ETIMEOUT", "EBUSY", "ECANCEL",  "ESERVER"};
    if ((unsigned)code < sizeof names / sizeof names[0])
        return names[code];
    return "EUNKNOWN";
}
