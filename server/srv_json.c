//  srv_json - small helpers over yajl trees for request bodies, records built from JSON nodes,
//  the Foundry error shape, counters and interruptible sleeps.
#include "common/es_mem.h"
#include "server/srv.h"
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

yajl_val
srv_json_get(yajl_val obj, const char *key)
{
    if (!obj || !YAJL_IS_OBJECT(obj))
        return NULL;
    for (size_t i = 0; i < obj->u.object.len; i++)
        if (strcmp(obj->u.object.keys[i], key) == 0)
            return obj->u.object.values[i];
    return NULL;
}

int
srv_json_value(yajl_val v, es_value_t *out)
{
    memset(out, 0, sizeof *out);
    if (!v || YAJL_IS_NULL(v)) {
        out->type = ES_V_NULL;
    } else if (YAJL_IS_TRUE(v) || YAJL_IS_FALSE(v)) {
        out->type = ES_V_BOOL;
        out->u.b = YAJL_IS_TRUE(v);
    } else if (YAJL_IS_INTEGER(v)) {
        out->type = ES_V_INT;
        out->u.i = YAJL_GET_INTEGER(v);
    } else if (YAJL_IS_DOUBLE(v)) {
        out->type = ES_V_DOUBLE;
        out->u.d = YAJL_GET_DOUBLE(v);
    } else if (YAJL_IS_STRING(v)) {
        out->type = ES_V_STR;
        out->u.s.ptr = YAJL_GET_STRING(v);
        out->u.s.len = strlen(out->u.s.ptr);
    } else {
        return -1;
    }
    return 0;
}

void
srv_json_write_value(es_buf_t *out, const es_value_t *v)
{
    switch (v->type) {
    case ES_V_NULL:
        es_buf_puts(out, "null");
        break;
    case ES_V_BOOL:
        es_buf_puts(out, v->u.b ? "true" : "false");
        break;
    case ES_V_INT:
        es_buf_printf(out, "%" PRId64, v->u.i);
        break;
    case ES_V_DOUBLE:
        if (isfinite(v->u.d))
            es_buf_printf(out, "%.17g", v->u.d);
        else
            es_buf_puts(out, "null");
        break;
    case ES_V_STR:
        es_buf_json_str(out, v->u.s.ptr, v->u.s.len);
        break;
    }
}

void
srv_json_write(es_buf_t *out, yajl_val v)
{
    es_value_t ev;
    if (v && YAJL_IS_NUMBER(v)) {
        //  Echo numbers as the client wrote them.
        es_buf_puts(out, YAJL_GET_NUMBER(v));
        return;
    }
    if (srv_json_value(v, &ev)) {
        es_buf_puts(out, "null");
        return;
    }
    srv_json_write_value(out, &ev);
}

int
srv_json_number(const char *s, size_t len, es_value_t *out)
{
    memset(out, 0, sizeof *out);
    if (len == 0)
        return -1; //  yajl never lexes one; strtod would read it as 0
    //  yajl's integer test: plain digits whose magnitude fits int64 (-2^63 itself does not).
    size_t i = len > 0 && s[0] == '-' ? 1 : 0;
    bool plain = i < len, fits = true;
    uint64_t mag = 0;
    for (size_t k = i; k < len; k++) {
        if (s[k] < '0' || s[k] > '9') {
            plain = false;
            break;
        }
        uint64_t dg = (uint64_t)(s[k] - '0');
        if (fits && mag > ((uint64_t)INT64_MAX - dg) / 10)
            fits = false;
        else if (fits)
            mag = mag * 10 + dg;
    }
    if (plain && fits) {
        out->type = ES_V_INT;
        out->u.i = i ? -(int64_t)mag : (int64_t)mag;
        return 0;
    }
    //  strtod needs a terminated copy; the tree accepts a double only without ERANGE.
    char small[64];
    char *copy = len < sizeof small ? small : es_malloc(len + 1);
    memcpy(copy, s, len);
    copy[len] = '\0';
    char *end = NULL;
    errno = 0;
    double d = strtod(copy, &end);
    bool ok = errno == 0 && end == copy + len;
    if (copy != small)
        free(copy);
    if (!ok)
        return -1;
    out->type = ES_V_DOUBLE;
    out->u.d = d;
    return 0;
}

void
srv_json_error(yajl_handle h, const char *text, size_t len, es_err_t *err)
{
    unsigned char *e = yajl_get_error(h, 1, (const unsigned char *)text, len);
    char ebuf[256];
    //  yajl's text spans lines and repeats the input; keep its first line.
    snprintf(ebuf, sizeof ebuf, "%s", e ? (const char *)e : "");
    if (e)
        yajl_free_error(h, e);
    char *nl = strchr(ebuf, '\n');
    if (nl)
        *nl = '\0';
    es_err_set(err, ES_EINVAL, "malformed JSON body: %s", ebuf[0] ? ebuf : "parse error");
}

const char *
srv_json_body_text(const char *body, size_t len, size_t *tlen, es_err_t *err)
{
    size_t i = 0;
    while (i < len && (body[i] == ' ' || body[i] == '\n' || body[i] == '\r' || body[i] == '\t'))
        i++;
    if (i == len) {
        *tlen = 2;
        return "{}";
    }
    if (memchr(body, '\0', len)) {
        es_err_set(err, ES_EINVAL, "malformed JSON body: contains a NUL byte");
        return NULL;
    }
    *tlen = len;
    return body;
}

//  Depth check pass: yajl_tree_parse has no depth bound and yajl_tree_free recurses.
typedef struct {
    int depth;     //  containers open
    bool too_deep; //  went over SRV_JSON_MAX_DEPTH
} s_depth_t;

static int
s_depth_open(void *ctx)
{
    s_depth_t *d = ctx;
    if (++d->depth > SRV_JSON_MAX_DEPTH) {
        d->too_deep = true;
        return 0;
    }
    return 1;
}

static int
s_depth_close(void *ctx)
{
    ((s_depth_t *)ctx)->depth--;
    return 1;
}

static int
s_depth_check(const char *text, size_t len, es_err_t *err)
{
    static const yajl_callbacks cb = {.yajl_start_map = s_depth_open,
                                      .yajl_end_map = s_depth_close,
                                      .yajl_start_array = s_depth_open,
                                      .yajl_end_array = s_depth_close};
    s_depth_t d = {0, false};
    yajl_handle h = yajl_alloc(&cb, NULL, &d);
    if (!h)
        return es_err_set(err, ES_EINVAL, "body: out of memory");
    srv_json_config(h);
    yajl_status st = yajl_parse(h, (const unsigned char *)text, len);
    if (st == yajl_status_ok)
        st = yajl_complete_parse(h);
    int rc = 0;
    if (d.too_deep)
        rc = es_err_set(err, ES_EINVAL, SRV_JSON_DEPTH_MSG);
    else if (st != yajl_status_ok) {
        srv_json_error(h, text, len, err);
        rc = -1;
    }
    yajl_free(h);
    return rc;
}

void
srv_json_config(yajl_handle h)
{
    //  What yajl_tree_parse sets: request bodies keep the dialect they always had.
    yajl_config(h, yajl_allow_comments, 1);
}

yajl_val
srv_json_parse(const char *body, size_t len, es_err_t *err)
{
    char ebuf[256];
    size_t tlen;
    const char *text = srv_json_body_text(body, len, &tlen, err);
    if (!text || s_depth_check(text, tlen, err))
        return NULL;
    ebuf[0] = '\0';
    yajl_val root = yajl_tree_parse(text, ebuf, sizeof ebuf);
    if (!root) {
        //  yajl's text spans lines and repeats the input; keep its first line.
        char *nl = strchr(ebuf, '\n');
        if (nl)
            *nl = '\0';
        es_err_set(err, ES_EINVAL, "malformed JSON body: %s", ebuf[0] ? ebuf : "parse error");
        return NULL;
    }
    if (!YAJL_IS_OBJECT(root)) {
        yajl_tree_free(root);
        es_err_set(err, ES_EINVAL, "body: expected a JSON object");
        return NULL;
    }
    return root;
}

int
srv_record_build(es_record_builder_t *b, const es_meta_object_t *obj, yajl_val node,
                 const void *base, size_t blen, const char *ov_col, const es_value_t *ov,
                 es_buf_t *out, es_err_t *err)
{
    es_record_builder_reset(b);
    if (base) {
        for (size_t f = 0; f < obj->nfields; f++) {
            es_value_t v;
            const char *name = obj->fields[f].name;
            int rc = es_record_get(base, blen, name, &v);
            if (rc < 0)
                return es_err_set(err, ES_ESTORE, "%s: stored record is malformed", obj->name);
            if (rc == 1 && es_record_builder_set(b, name, strlen(name), &v, err))
                return -1;
        }
    }
    for (size_t i = 0; i < node->u.object.len; i++) {
        const char *name = node->u.object.keys[i];
        size_t nlen = strlen(name);
        if (es_meta_field_index(obj, name, nlen) < 0) {
            if (name[0] == '_')
                continue; //  "_metadata", "_<pk>" and other annotations
            return es_err_set(err, ES_EINVAL, "%s: unknown field '%s'", obj->name, name);
        }
        es_value_t v;
        if (srv_json_value(node->u.object.values[i], &v))
            return es_err_set(err, ES_EINVAL, "%s: expected a scalar value", name);
        if (es_record_builder_set(b, name, nlen, &v, err))
            return -1;
    }
    if (ov_col && es_record_builder_set(b, ov_col, strlen(ov_col), ov, err))
        return -1;
    return es_record_builder_end(b, out, err);
}

int
srv_record_check_required(const es_meta_object_t *obj, const void *rec, size_t len, es_err_t *err)
{
    for (size_t f = 0; f < obj->nfields; f++) {
        const es_meta_field_t *mf = &obj->fields[f];
        if (mf->nullable || mf->auto_generated)
            continue;
        es_value_t v;
        int rc = es_record_get(rec, len, mf->name, &v);
        if (rc < 0)
            return es_err_set(err, ES_EINVAL, "%s: malformed record", obj->name);
        if (rc == 0 || v.type == ES_V_NULL)
            return es_err_set(err, ES_EINVAL, "%s: missing required field '%s'", obj->name,
                              mf->name);
    }
    return 0;
}

void
srv_resp_error(srv_resp_t *resp, int status, int opstatus, const char *fmt, ...)
{
    char msg[ES_ERR_WHAT_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    resp->status = status;
    es_buf_reset(&resp->body);
    es_buf_printf(&resp->body, "{\"opstatus\":%d,\"errmsg\":", opstatus);
    es_buf_json_str(&resp->body, msg, strlen(msg));
    es_buf_printf(&resp->body, ",\"httpStatusCode\":%d}", status);
}

void
srv_stats_count(srv_stats_t *self, srv_kind_t kind)
{
    pthread_mutex_lock(&self->lock);
    self->requests[kind]++;
    pthread_mutex_unlock(&self->lock);
}

void
srv_sleep_ms(volatile int *stopping, uint32_t ms)
{
    //  Short steps so shutdown is never held up by a latency or hang fault.
    while (ms > 0 && !*stopping) {
        uint32_t step = ms < 50 ? ms : 50;
        struct timespec ts = {0, (long)step * 1000000L};
        nanosleep(&ts, NULL);
        ms -= step;
    }
}
