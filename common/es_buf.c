//  es_buf - growable byte buffer and JSON string escaping.
#include "common/es_buf.h"
#include "common/es_mem.h"
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void
es_buf_init(es_buf_t *self)
{
    self->data = NULL;
    self->len = 0;
    self->cap = 0;
}

void
es_buf_release(es_buf_t *self)
{
    free(self->data);
    es_buf_init(self);
}

void
es_buf_reset(es_buf_t *self)
{
    self->len = 0;
    if (self->data)
        self->data[0] = '\0';
}

static void
s_reserve(es_buf_t *self, size_t extra)
{
    size_t need = self->len + extra + 1;
    if (need <= self->cap)
        return;
    size_t cap = self->cap ? self->cap : 256;
    while (cap < need)
        cap *= 2;
    self->data = es_realloc(self->data, cap);
    self->cap = cap;
}

void
es_buf_append(es_buf_t *self, const void *data, size_t len)
{
    s_reserve(self, len);
    if (len)
        memcpy(self->data + self->len, data, len);
    self->len += len;
    self->data[self->len] = '\0';
}

void
es_buf_puts(es_buf_t *self, const char *s)
{
    es_buf_append(self, s, strlen(s));
}

void
es_buf_putc(es_buf_t *self, char c)
{
    s_reserve(self, 1);
    self->data[self->len++] = c;
    self->data[self->len] = '\0';
}

void
es_buf_printf(es_buf_t *self, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        n = 0; //  an encoding error appends nothing
    //  Even an empty result leaves data allocated and NUL-terminated, as after any append.
    s_reserve(self, (size_t)n);
    self->data[self->len] = '\0';
    if (n > 0) {
        va_start(ap, fmt);
        vsnprintf(self->data + self->len, (size_t)n + 1, fmt, ap);
        va_end(ap);
        self->len += (size_t)n;
    }
}

//  Length of the valid UTF-8 sequence at s (1..4), or 0 if invalid.
static size_t
s_utf8_len(const unsigned char *s, size_t avail)
{
    unsigned c = s[0];
    size_t n;
    uint32_t cp;
    if (c < 0x80)
        return 1;
    else if ((c & 0xE0) == 0xC0)
        n = 2, cp = c & 0x1F;
    else if ((c & 0xF0) == 0xE0)
        n = 3, cp = c & 0x0F;
    else if ((c & 0xF8) == 0xF0)
        n = 4, cp = c & 0x07;
    else
        return 0;
    if (n > avail)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if ((n == 2 && cp < 0x80) || (n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) ||
        cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return n;
}

size_t
es_utf8_invalid_at(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    for (size_t i = 0; i < len;) {
        //  Plain ASCII 8 bytes at a time: most text is, and this runs once per string column.
        uint64_t w;
        if (len - i >= 8 && (memcpy(&w, p + i, 8), (w & 0x8080808080808080ull) == 0)) {
            i += 8;
            continue;
        }
        size_t n = s_utf8_len(p + i, len - i);
        if (!n)
            return i;
        i += n;
    }
    return len;
}

//  Bytes a string copies as they are: printable ASCII but the quote and the backslash.
static const bool s_plain[256] = {
    [' ' ... '!'] = true,
    ['#' ... '['] = true,
    [']' ... 0x7f] = true,
};

size_t
es_buf_json_plain_run(const unsigned char *p, const unsigned char *end)
{
    const unsigned char *s = p;
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__ //  the lowest flagged byte is the first one
    const uint64_t ones = 0x0101010101010101ULL, highs = 0x8080808080808080ULL;
    while (end - p >= 8) {
        uint64_t w;
        memcpy(&w, p, sizeof w);
        uint64_t q = w ^ (ones * '"'), b = w ^ (ones * '\\');
        //  Any byte >= 0x80, == '"', == '\\' or < 0x20 sets its high bit here; the lowest one is
        //  exact (borrows only flag bytes after a real match).
        uint64_t m = (w | ((q - ones) & ~q) | ((b - ones) & ~b) | ((w - ones * 0x20) & ~w)) & highs;
        if (m)
            return (size_t)(p - s) + (size_t)__builtin_ctzll(m) / 8;
        p += 8;
    }
#endif
    while (p < end && s_plain[*p])
        p++;
    return (size_t)(p - s);
}

void
es_buf_json_str(es_buf_t *self, const char *s, size_t len)
{
    s_reserve(self, len + 2);
    es_buf_putc(self, '"');
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < len) {
        //  Copy the longest run that needs no escaping in one go.
        size_t start = i;
        i += es_buf_json_plain_run(p + i, p + len);
        if (i > start)
            es_buf_append(self, s + start, i - start);
        if (i >= len)
            break;
        unsigned char c = p[i];
        if (c == '"' || c == '\\') {
            es_buf_putc(self, '\\');
            es_buf_putc(self, (char)c);
            i++;
        } else if (c < 0x20) {
            switch (c) {
            case '\n':
                es_buf_puts(self, "\\n");
                break;
            case '\r':
                es_buf_puts(self, "\\r");
                break;
            case '\t':
                es_buf_puts(self, "\\t");
                break;
            case '\b':
                es_buf_puts(self, "\\b");
                break;
            case '\f':
                es_buf_puts(self, "\\f");
                break;
            default:
                es_buf_printf(self, "\\u%04x", c);
            }
            i++;
        } else {
            size_t n = s_utf8_len(p + i, len - i);
            if (n == 0) {
                es_buf_puts(self, "\\ufffd");
                i++;
            } else {
                es_buf_append(self, s + i, n);
                i += n;
            }
        }
    }
    es_buf_putc(self, '"');
}

char *
es_buf_steal(es_buf_t *self)
{
    if (!self->data)
        return es_strdup("");
    char *p = self->data;
    es_buf_init(self);
    return p;
}
