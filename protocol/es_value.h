//  es_value - one scalar field value, borrowed (strings point into someone else's bytes).
#ifndef ES_VALUE_H
#define ES_VALUE_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum { ES_V_NULL = 0, ES_V_BOOL, ES_V_INT, ES_V_DOUBLE, ES_V_STR } es_vtype_t;

typedef struct {
    es_vtype_t type; //  which member is set
    union {
        bool b;
        int64_t i;
        double d;
        struct {
            const char *ptr; //  not NUL-terminated
            size_t len;
        } s;
    } u;
} es_value_t;

#endif
