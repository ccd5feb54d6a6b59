//  es_json - compact JSON writer for yajl_tree values.
#include "protocol/es_json.h"
#include <string.h>

void
es_json_write(es_buf_t *out, yajl_val v)
{
    if (!v || YAJL_IS_NULL(v)) {
        es_buf_puts(out, "null");
    } else if (YAJL_IS_STRING(v)) {
        es_buf_json_str(out, v->u.string, strlen(v->u.string));
    } else if (YAJL_IS_NUMBER(v)) {
        es_buf_puts(out, v->u.number.r);
    } else if (YAJL_IS_TRUE(v)) {
        es_buf_puts(out, "true");
    } else if (YAJL_IS_FALSE(v)) {
        es_buf_puts(out, "false");
    } else if (YAJL_IS_ARRAY(v)) {
        es_buf_putc(out, '[');
        es_json_write_elements(out, v);
        es_buf_putc(out, ']');
    } else {
        es_buf_putc(out, '{');
        for (size_t i = 0; i < v->u.object.len; i++) {
            if (i)
                es_buf_putc(out, ',');
            es_buf_json_str(out, v->u.object.keys[i], strlen(v->u.object.keys[i]));
            es_buf_putc(out, ':');
            es_json_write(out, v->u.object.values[i]);
        }
        es_buf_putc(out, '}');
    }
}

void
es_json_write_elements(es_buf_t *out, yajl_val v)
{
    if (!v || !YAJL_IS_ARRAY(v))
        return;
    for (size_t i = 0; i < v->u.array.len; i++) {
        if (i)
            es_buf_putc(out, ',');
        es_json_write(out, v->u.array.values[i]);
    }
}

bool
es_json_too_deep(const char *json, size_t len, size_t max, size_t *at)
{
    size_t depth = 0;
    bool in_string = false;
    for (size_t i = 0; i < len; i++) {
        char c = json[i];
        if (in_string) {
            if (c == '\\')
                i++; //  an escaped quote does not end the string
            else if (c == '"')
                in_string = false;
        } else if (c == '"') {
            in_string = true;
        } else if (c == '{' || c == '[') {
            if (++depth > max) {
                if (at)
                    *at = i;
                return true;
            }
        } else if ((c == '}' || c == ']') && depth > 0) {
            depth--;
        }
    }
    return false;
}

const char *
es_json_get_str(yajl_val v, const char *key)
{
    const char *path[] = {key, NULL};
    yajl_val s = v ? yajl_tree_get(v, path, yajl_t_string) : NULL;
    return s ? YAJL_GET_STRING(s) : NULL;
}

uint64_t
es_json_get_count(yajl_val v, const char *key)
{
    const char *path[] = {key, NULL};
    yajl_val n = v ? yajl_tree_get(v, path, yajl_t_number) : NULL;
    return n && YAJL_IS_INTEGER(n) && YAJL_GET_INTEGER(n) > 0 ? (uint64_t)YAJL_GET_INTEGER(n) : 0;
}
