//  srv_hostile - the "body" fault: hostile response bodies for client tests. A rule replaces the
//  answer of a matching request with given text, edits the real answer (set or delete members at
//  paths, textual replacements), or streams a generated body of any size (parts repeated N
//  times, produced on the fly: a 1 GB answer costs no server memory).
#include "common/es_log.h"
#include "common/es_mem.h"
#include "protocol/es_json.h"
#include "server/srv.h"
#include <inttypes.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define S_TOTAL_MAX (1ull << 40) //  generated bodies up to 1 TiB
#define S_EDITS_MAX 64           //  set / replace entries per rule

typedef struct {
    char *bytes;    //  the part's bytes
    size_t len;     //  how many
    uint64_t times; //  repeated this often
} s_part_t;

typedef struct {
    char *path;  //  dot-separated: member names, array indexes, "*" for every element
    char *value; //  JSON text to put there, or NULL to delete the member / element
    char *copy;  //  or: put a copy of the answer's value at this path (before any edit)
} s_set_t;

typedef struct {
    char *from, *to; //  every occurrence of from becomes to
    size_t from_len, to_len;
} s_replace_t;

struct srv_body {
    atomic_int refs;
    int status;         //  HTTP status to send (0: the real one)
    char *text;         //  whole body, or NULL
    size_t text_len;    //  its length
    s_part_t *parts;    //  generated body, or NULL
    size_t nparts;      //  how many
    uint64_t total;     //  generated body size
    s_set_t *sets;      //  edits of the parsed real answer
    size_t nsets;       //  how many
    s_replace_t *repls; //  textual edits of the answer
    size_t nrepls;      //  how many
};

//  JSON strings cannot carry invalid UTF-8: with "bytes":true, every code point below 256 in
//  the given texts stands for that single byte ("\u00ff" sends the byte 0xff).
static int
s_text(yajl_val v, bool bytes, const char *what, size_t idx, char **out, size_t *len, es_err_t *err)
{
    if (!v || !YAJL_IS_STRING(v))
        return es_err_set(err, ES_EINVAL, "rules[%zu].%s: expected a string", idx, what);
    const unsigned char *s = (const unsigned char *)YAJL_GET_STRING(v);
    size_t n = strlen((const char *)s);
    char *b = es_malloc(n + 1);
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (bytes && (s[i] == 0xc2 || s[i] == 0xc3) && i + 1 < n && (s[i + 1] & 0xc0) == 0x80) {
            b[o++] = (char)(((s[i] & 0x03) << 6) | (s[i + 1] & 0x3f));
            i++;
        } else {
            b[o++] = (char)s[i];
        }
    }
    b[o] = '\0';
    *out = b;
    *len = o;
    return 0;
}

static yajl_val
s_array(yajl_val rule, const char *name, size_t idx, es_err_t *err, bool *bad)
{
    yajl_val v = srv_json_get(rule, name);
    *bad = false;
    if (!v)
        return NULL;
    if (!YAJL_IS_ARRAY(v) || v->u.array.len == 0 || v->u.array.len > S_EDITS_MAX) {
        *bad = true;
        es_err_set(err, ES_EINVAL, "rules[%zu].%s: expected an array of 1..%d entries", idx, name,
                   S_EDITS_MAX);
        return NULL;
    }
    return v;
}

static int
s_parse_parts(srv_body_t *self, yajl_val list, bool bytes, size_t idx, es_err_t *err)
{
    self->parts = es_calloc(list->u.array.len, sizeof *self->parts);
    for (size_t i = 0; i < list->u.array.len; i++) {
        yajl_val p = list->u.array.values[i];
        s_part_t *part = &self->parts[self->nparts];
        if (!YAJL_IS_OBJECT(p))
            return es_err_set(err, ES_EINVAL, "rules[%zu].parts[%zu]: expected an object", idx, i);
        if (s_text(srv_json_get(p, "text"), bytes, "parts[].text", idx, &part->bytes, &part->len,
                   err))
            return -1;
        self->nparts++;
        yajl_val t = srv_json_get(p, "times");
        part->times = 1;
        if (t && (!YAJL_IS_INTEGER(t) || YAJL_GET_INTEGER(t) < 0))
            return es_err_set(err, ES_EINVAL,
                              "rules[%zu].parts[%zu].times: expected a non-negative integer", idx,
                              i);
        if (t)
            part->times = (uint64_t)YAJL_GET_INTEGER(t);
        if (part->len && part->times > (S_TOTAL_MAX - self->total) / part->len)
            return es_err_set(err, ES_EINVAL, "rules[%zu].parts: body larger than %llu bytes", idx,
                              (unsigned long long)S_TOTAL_MAX);
        self->total += part->len * part->times;
    }
    return 0;
}

static int
s_parse_sets(srv_body_t *self, yajl_val list, size_t idx, es_err_t *err)
{
    self->sets = es_calloc(list->u.array.len, sizeof *self->sets);
    for (size_t i = 0; i < list->u.array.len; i++) {
        yajl_val e = list->u.array.values[i];
        yajl_val path = YAJL_IS_OBJECT(e) ? srv_json_get(e, "path") : NULL;
        yajl_val value = YAJL_IS_OBJECT(e) ? srv_json_get(e, "value") : NULL;
        yajl_val del = YAJL_IS_OBJECT(e) ? srv_json_get(e, "delete") : NULL;
        yajl_val copy = YAJL_IS_OBJECT(e) ? srv_json_get(e, "copy") : NULL;
        if (copy && !YAJL_IS_STRING(copy))
            return es_err_set(err, ES_EINVAL, "rules[%zu].set[%zu].copy: expected a path", idx, i);
        if (!path || !YAJL_IS_STRING(path) || !*YAJL_GET_STRING(path) ||
            (!value && !copy && !(del && YAJL_IS_TRUE(del))))
            return es_err_set(
                err, ES_EINVAL,
                "rules[%zu].set[%zu]: expected {\"path\":\"a.0.b\",\"value\":any} "
                "or {\"path\":...,\"copy\":\"a.1\"} or {\"path\":...,\"delete\":true}",
                idx, i);
        s_set_t *s = &self->sets[self->nsets++];
        s->path = es_strdup(YAJL_GET_STRING(path));
        if (copy)
            s->copy = es_strdup(YAJL_GET_STRING(copy));
        if (value) {
            es_buf_t b;
            es_buf_init(&b);
            es_json_write(&b, value);
            s->value = es_buf_steal(&b);
        }
    }
    return 0;
}

static int
s_parse_repls(srv_body_t *self, yajl_val list, bool bytes, size_t idx, es_err_t *err)
{
    self->repls = es_calloc(list->u.array.len, sizeof *self->repls);
    for (size_t i = 0; i < list->u.array.len; i++) {
        yajl_val e = list->u.array.values[i];
        if (!YAJL_IS_ARRAY(e) || e->u.array.len != 2)
            return es_err_set(err, ES_EINVAL, "rules[%zu].replace[%zu]: expected [\"from\",\"to\"]",
                              idx, i);
        s_replace_t *r = &self->repls[self->nrepls];
        if (s_text(e->u.array.values[0], bytes, "replace[][0]", idx, &r->from, &r->from_len, err))
            return -1;
        self->nrepls++;
        if (s_text(e->u.array.values[1], bytes, "replace[][1]", idx, &r->to, &r->to_len, err))
            return -1;
        if (r->from_len == 0)
            return es_err_set(err, ES_EINVAL, "rules[%zu].replace[%zu][0]: must not be empty", idx,
                              i);
    }
    return 0;
}

srv_body_t *
srv_body_parse(yajl_val rule, size_t idx, es_err_t *err)
{
    srv_body_t *self = es_calloc(1, sizeof *self);
    atomic_init(&self->refs, 1);
    yajl_val bytes_v = srv_json_get(rule, "bytes");
    if (bytes_v && !YAJL_IS_TRUE(bytes_v) && !YAJL_IS_FALSE(bytes_v)) {
        es_err_set(err, ES_EINVAL, "rules[%zu].bytes: expected a boolean", idx);
        goto fail;
    }
    bool bytes = bytes_v && YAJL_IS_TRUE(bytes_v);
    yajl_val status = srv_json_get(rule, "status");
    if (status) {
        if (!YAJL_IS_INTEGER(status) || YAJL_GET_INTEGER(status) < 100 ||
            YAJL_GET_INTEGER(status) > 599) {
            es_err_set(err, ES_EINVAL, "rules[%zu].status: expected an integer 100..599", idx);
            goto fail;
        }
        self->status = (int)YAJL_GET_INTEGER(status);
    }
    yajl_val text = srv_json_get(rule, "text");
    bool bad;
    yajl_val parts = s_array(rule, "parts", idx, err, &bad);
    if (bad)
        goto fail;
    yajl_val sets = s_array(rule, "set", idx, err, &bad);
    if (bad)
        goto fail;
    yajl_val repls = s_array(rule, "replace", idx, err, &bad);
    if (bad)
        goto fail;
    if ((text != NULL) + (parts != NULL) + (sets || repls ? 1 : 0) != 1) {
        es_err_set(err, ES_EINVAL,
                   "rules[%zu]: kind body needs exactly one of text, parts, or set/replace", idx);
        goto fail;
    }
    if (text && s_text(text, bytes, "text", idx, &self->text, &self->text_len, err))
        goto fail;
    if (parts && s_parse_parts(self, parts, bytes, idx, err))
        goto fail;
    if (sets && s_parse_sets(self, sets, idx, err))
        goto fail;
    if (repls && s_parse_repls(self, repls, bytes, idx, err))
        goto fail;
    return self;
fail:
    srv_body_release(&self);
    return NULL;
}

srv_body_t *
srv_body_ref(srv_body_t *self)
{
    if (self)
        atomic_fetch_add(&self->refs, 1);
    return self;
}

void
srv_body_release(srv_body_t **self_p)
{
    if (!*self_p)
        return;
    srv_body_t *self = *self_p;
    *self_p = NULL;
    if (atomic_fetch_sub(&self->refs, 1) != 1)
        return;
    free(self->text);
    for (size_t i = 0; i < self->nparts; i++)
        free(self->parts[i].bytes);
    free(self->parts);
    for (size_t i = 0; i < self->nsets; i++) {
        free(self->sets[i].path);
        free(self->sets[i].value);
        free(self->sets[i].copy);
    }
    free(self->sets);
    for (size_t i = 0; i < self->nrepls; i++) {
        free(self->repls[i].from);
        free(self->repls[i].to);
    }
    free(self->repls);
    free(self);
}

bool
srv_body_generated(const srv_body_t *self, uint64_t *total)
{
    *total = self->total;
    return self->parts != NULL;
}

int
srv_body_status(const srv_body_t *self)
{
    return self->status;
}

size_t
srv_body_read(const srv_body_t *self, uint64_t pos, char *buf, size_t max)
{
    size_t n = 0;
    uint64_t start = 0;
    for (size_t i = 0; i < self->nparts && n < max; i++) {
        const s_part_t *p = &self->parts[i];
        uint64_t size = p->len * p->times;
        if (pos >= start + size) {
            start += size;
            continue;
        }
        //  Copy from this part until it ends or buf is full; then the next part goes on.
        while (n < max && pos < start + size) {
            size_t off = (size_t)((pos - start) % p->len);
            size_t k = p->len - off;
            if (k > max - n)
                k = max - n;
            if (k > start + size - pos)
                k = (size_t)(start + size - pos);
            memcpy(buf + n, p->bytes + off, k);
            n += k;
            pos += k;
        }
        start += size;
    }
    return n;
}

//  Apply one path edit under node v (segments from seg on). Counts the places edited.
static void
s_set_at(yajl_val *slot, char *seg, const char *value, size_t *edited)
{
    yajl_val v = *slot;
    if (!seg) {
        char eb[128];
        yajl_val nv = yajl_tree_parse(value, eb, sizeof eb);
        if (!nv)
            return; //  checked when the rule was set
        yajl_tree_free(v);
        *slot = nv;
        (*edited)++;
        return;
    }
    char *dot = strchr(seg, '.');
    char *rest = NULL;
    if (dot) {
        *dot = '\0';
        rest = dot + 1;
    }
    bool all = strcmp(seg, "*") == 0;
    if (v && YAJL_IS_OBJECT(v)) {
        size_t len = v->u.object.len;
        bool found = false;
        for (size_t i = 0; i < len; i++) {
            if (!all && strcmp(v->u.object.keys[i], seg) != 0)
                continue;
            found = true;
            if (!rest && !value) { //  delete the member
                free((char *)v->u.object.keys[i]);
                yajl_tree_free(v->u.object.values[i]);
                memmove(&v->u.object.keys[i], &v->u.object.keys[i + 1],
                        (len - i - 1) * sizeof *v->u.object.keys);
                memmove(&v->u.object.values[i], &v->u.object.values[i + 1],
                        (len - i - 1) * sizeof *v->u.object.values);
                v->u.object.len = --len;
                i--;
                (*edited)++;
                continue;
            }
            s_set_at(&v->u.object.values[i], rest, value, edited);
        }
        if (!found && !all && !rest && value) { //  add a member
            v->u.object.keys = es_realloc(v->u.object.keys, (len + 1) * sizeof *v->u.object.keys);
            v->u.object.values =
                es_realloc(v->u.object.values, (len + 1) * sizeof *v->u.object.values);
            v->u.object.keys[len] = es_strdup(seg);
            v->u.object.values[len] = NULL;
            v->u.object.len++;
            char eb[128];
            v->u.object.values[len] = yajl_tree_parse(value, eb, sizeof eb);
            if (!v->u.object.values[len]) //  cannot happen: value was written by us
                v->u.object.len--;
            else
                (*edited)++;
        }
    } else if (v && YAJL_IS_ARRAY(v)) {
        char *end;
        unsigned long k = strtoul(seg, &end, 10);
        size_t len = v->u.array.len;
        if (strcmp(seg, "-") == 0 && !rest && value) { //  "-": append (as in JSON Pointer)
            char eb[128];
            yajl_val nv = yajl_tree_parse(value, eb, sizeof eb);
            if (nv) {
                v->u.array.values =
                    es_realloc(v->u.array.values, (len + 1) * sizeof *v->u.array.values);
                v->u.array.values[len] = nv;
                v->u.array.len++;
                (*edited)++;
            }
        }
        for (size_t i = 0; i < len; i++) {
            if (!all && (*end || end == seg || i != k))
                continue;
            if (!rest && !value) {
                yajl_tree_free(v->u.array.values[i]);
                memmove(&v->u.array.values[i], &v->u.array.values[i + 1],
                        (len - i - 1) * sizeof *v->u.array.values);
                v->u.array.len = --len;
                i--;
                (*edited)++;
                if (!all)
                    break;
                continue;
            }
            s_set_at(&v->u.array.values[i], rest, value, edited);
        }
    }
    if (dot)
        *dot = '.';
}

//  The value at path (member names and array indexes, no wildcards), or NULL.
static yajl_val
s_find(yajl_val v, const char *path)
{
    while (v && *path) {
        size_t n = strcspn(path, ".");
        yajl_val next = NULL;
        if (YAJL_IS_OBJECT(v)) {
            for (size_t i = 0; i < v->u.object.len && !next; i++)
                if (strlen(v->u.object.keys[i]) == n && strncmp(v->u.object.keys[i], path, n) == 0)
                    next = v->u.object.values[i];
        } else if (YAJL_IS_ARRAY(v)) {
            char *end;
            unsigned long k = strtoul(path, &end, 10);
            if (end == path + n && k < v->u.array.len)
                next = v->u.array.values[k];
        }
        v = next;
        path += n;
        if (*path == '.')
            path++;
    }
    return v;
}

//  Edit the real answer: set/delete at paths on its parsed form, then textual replacements.
void
srv_body_rewrite(const srv_body_t *self, srv_resp_t *r)
{
    if (self->status)
        r->status = self->status;
    if (self->text) {
        es_buf_reset(&r->body);
        es_buf_append(&r->body, self->text, self->text_len);
        return;
    }
    if (self->nsets) {
        char eb[256];
        yajl_val root = yajl_tree_parse(r->body.data ? r->body.data : "", eb, sizeof eb);
        if (!root) {
            es_log_warn("fault body: answer is not JSON, set skipped: %s", eb);
        } else {
            size_t edited = 0;
            char **copies = es_calloc(self->nsets, sizeof *copies);
            for (size_t i = 0; i < self->nsets; i++) {
                yajl_val src = self->sets[i].copy ? s_find(root, self->sets[i].copy) : NULL;
                if (src) {
                    es_buf_t b;
                    es_buf_init(&b);
                    es_json_write(&b, src);
                    copies[i] = es_buf_steal(&b);
                }
            }
            for (size_t i = 0; i < self->nsets; i++) {
                if (self->sets[i].copy && !copies[i])
                    continue; //  nothing to copy: this answer has no such value
                char *path = es_strdup(self->sets[i].path);
                s_set_at(&root, path, copies[i] ? copies[i] : self->sets[i].value, &edited);
                free(path);
                free(copies[i]);
            }
            free(copies);
            es_buf_reset(&r->body);
            es_json_write(&r->body, root);
            yajl_tree_free(root);
        }
    }
    for (size_t i = 0; i < self->nrepls; i++) {
        const s_replace_t *rp = &self->repls[i];
        es_buf_t out;
        es_buf_init(&out);
        const char *p = r->body.data ? r->body.data : "", *end = p + r->body.len;
        while (p < end) {
            const char *hit = memmem(p, (size_t)(end - p), rp->from, rp->from_len);
            if (!hit) {
                es_buf_append(&out, p, (size_t)(end - p));
                break;
            }
            es_buf_append(&out, p, (size_t)(hit - p));
            es_buf_append(&out, rp->to, rp->to_len);
            p = hit + rp->from_len;
        }
        es_buf_release(&r->body);
        r->body = out;
        if (!r->body.data)
            es_buf_append(&r->body, "", 0);
    }
}
