//  es_buf - a growable byte buffer, embedded by value: es_buf_init(&b) / es_buf_release(&b).
#ifndef ES_BUF_H
#define ES_BUF_H
#include <stddef.h>

typedef struct {
    char *data; //  always NUL-terminated after any append (not counted in len)
    size_t len; //  bytes used
    size_t cap; //  bytes allocated
} es_buf_t;

void es_buf_init(es_buf_t *self);
void es_buf_release(es_buf_t *self);
//  Drop the contents, keep the allocation.
void es_buf_reset(es_buf_t *self);
void es_buf_append(es_buf_t *self, const void *data, size_t len);
void es_buf_puts(es_buf_t *self, const char *s);
void es_buf_putc(es_buf_t *self, char c);
void es_buf_printf(es_buf_t *self, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
//  Append s as a JSON string literal, quotes included; invalid UTF-8 bytes become U+FFFD.
void es_buf_json_str(es_buf_t *self, const char *s, size_t len);
//  Length of the run of bytes from p (before end) that a JSON string holds as they are:
//  printable ASCII (0x20..0x7f) but '"' and '\\'. Eight bytes at a time (little-endian words):
//  most of a body or answer is such text.
size_t es_buf_json_plain_run(const unsigned char *p, const unsigned char *end);
//  Offset of the first byte of s that is not part of valid UTF-8 (no overlong forms, surrogates
//  or code points above U+10FFFF), or len if all of it is valid.
size_t es_utf8_invalid_at(const char *s, size_t len);
//  Take ownership of the bytes (NUL-terminated; caller frees); the buffer is left empty.
char *es_buf_steal(es_buf_t *self);

#endif
