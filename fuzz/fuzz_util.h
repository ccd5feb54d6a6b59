//  fuzz_util - what the fuzz targets share: one metadata document covering every field type,
//  a hash of the input (deterministic chunk splits), and a loud failure for broken invariants.
#ifndef FUZZ_UTIL_H
#define FUZZ_UTIL_H
#include "common/es_err.h"
#include "protocol/es_meta.h"
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

//  Where the shared metadata lives (a function, so files that do not use it get no warning).
static inline es_meta_t **
fz_meta_slot(void)
{
    static es_meta_t *meta;
    return &meta;
}

static inline void
fz_meta_free(void)
{
    es_meta_destroy(fz_meta_slot());
}

//  The shared metadata, parsed on first use and freed at exit (no leak reports): every
//  datatype, a string length bound, an auto-generated key, a composite key.
static inline const es_meta_t *
fz_meta(void)
{
    static const char json[] =
        "{\"name\":\"Svc\",\"version\":\"1.0\",\"uploadCache\":true,\"objects\":["
        "{\"name\":\"Customer\",\"key\":[\"id\"],\"fields\":["
        "{\"name\":\"id\",\"datatype\":\"int\",\"nullable\":false,\"auto_generated\":true},"
        "{\"name\":\"name\",\"datatype\":\"string\",\"length\":20,\"nullable\":true},"
        "{\"name\":\"age\",\"datatype\":\"int\",\"nullable\":true},"
        "{\"name\":\"score\",\"datatype\":\"number\",\"nullable\":true},"
        "{\"name\":\"active\",\"datatype\":\"boolean\",\"nullable\":true},"
        "{\"name\":\"born\",\"datatype\":\"date\",\"nullable\":true},"
        "{\"name\":\"updated\",\"datatype\":\"datetime\",\"nullable\":true}]},"
        "{\"name\":\"Order\",\"key\":[\"oid\"],\"fields\":["
        "{\"name\":\"oid\",\"datatype\":\"string\",\"nullable\":false},"
        "{\"name\":\"total\",\"datatype\":\"number\",\"nullable\":true}]},"
        "{\"name\":\"Line\",\"key\":[\"order\",\"no\"],\"fields\":["
        "{\"name\":\"order\",\"datatype\":\"string\",\"nullable\":false},"
        "{\"name\":\"no\",\"datatype\":\"int\",\"nullable\":false},"
        "{\"name\":\"qty\",\"datatype\":\"int\",\"nullable\":true}]}]}";
    es_meta_t **slot = fz_meta_slot();
    if (!*slot) {
        es_err_t err;
        *slot = es_meta_new(json, sizeof json - 1, &err);
        if (!*slot) {
            fprintf(stderr, "fuzz: metadata: %s\n", err.what);
            abort();
        }
        atexit(fz_meta_free);
    }
    return *slot;
}

//  An invariant of the code under test does not hold: report and crash, so libFuzzer keeps
//  the input and the replay test fails.
__attribute__((format(printf, 1, 2), noreturn)) static inline void
fz_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "fuzz invariant broken: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    abort();
}

//  A failed call must say what was wrong.
static inline void
fz_check_err(const char *call, const es_err_t *err)
{
    if (err->code == ES_OK || err->what[0] == '\0' || !memchr(err->what, '\0', sizeof err->what))
        fz_fail("%s failed without an error code and text", call);
}

//  FNV-1a: the same input always splits the same way, so crashes reproduce.
static inline uint64_t
fz_hash(const uint8_t *data, size_t size)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < size; i++)
        h = (h ^ data[i]) * 1099511628211ULL;
    return h;
}

static inline uint64_t
fz_rand(uint64_t *state)
{
    uint64_t x = *state ? *state : 88172645463325252ULL;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *state = x;
}

//  A NUL-terminated copy (caller frees); text parsers stop at the first NUL like C strings.
static inline char *
fz_strndup(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    if (!s)
        abort();
    if (size)
        memcpy(s, data, size);
    s[size] = '\0';
    return s;
}

#endif
