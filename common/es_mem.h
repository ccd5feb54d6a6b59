//  es_mem - allocation that never returns NULL: out of memory prints the size and aborts
//  (the orchestrator restarts the process; LMDB keeps everything committed).
#ifndef ES_MEM_H
#define ES_MEM_H
#include <stddef.h>

void *es_malloc(size_t size);
void *es_calloc(size_t n, size_t size);
void *es_realloc(void *ptr, size_t size);
char *es_strdup(const char *s);
char *es_strndup(const char *s, size_t n);
//  printf into a new string (caller frees).
char *es_sprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
