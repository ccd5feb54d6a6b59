//  srv_fault - fault injection rules set at run time from the admin port: which requests (path
//  substring, method), how often (probability from a seeded generator, every Nth match, a count
//  limit), and what happens (latency, HTTP errors, hang, drop, truncate, malformed, lost answer).
#include "common/es_mem.h"
#include "server/srv.h"
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

typedef struct {
    srv_fkind_t kind;   //  what happens
    uint32_t ms;        //  latency / hang / apply_delay duration
    int retry_after;    //  http_429: Retry-After seconds
    double probability; //  fire with this probability (< 0: always)
    uint64_t every;     //  fire on every Nth matching request (0: every one)
    int64_t count;      //  fires left (< 0: unlimited)
    char *path;         //  URL path substring to match, or NULL
    char *method;       //  X-Http-Method-Override (or HTTP method) to match, or NULL
    srv_body_t *body;   //  body: what to answer
    uint64_t seen;      //  matching requests so far
    uint64_t fired;     //  times fired
} s_rule_t;

struct srv_fault {
    pthread_mutex_t lock; //  guards everything below
    uint64_t seed;        //  seed last set
    uint64_t state;       //  xorshift64* state
    s_rule_t *rules;      //  rules in order
    size_t nrules;        //  how many
    uint64_t fired;       //  total fires
};

static const struct {
    const char *name;
    srv_fkind_t kind;
} s_kinds[] = {
    {"latency_ms", SRV_F_LATENCY},
    {"latency", SRV_F_LATENCY},
    {"http_500", SRV_F_HTTP_500},
    {"http_503", SRV_F_HTTP_503},
    {"http_429", SRV_F_HTTP_429},
    {"hang", SRV_F_HANG},
    {"drop", SRV_F_DROP},
    {"truncate", SRV_F_TRUNCATE},
    {"malformed", SRV_F_MALFORMED},
    {"lost_response", SRV_F_LOST_RESPONSE},
    {"apply_delay", SRV_F_APPLY_DELAY},
    {"body", SRV_F_BODY},
};

static const char *
s_kind_name(srv_fkind_t k)
{
    for (size_t i = 0; i < sizeof s_kinds / sizeof s_kinds[0]; i++)
        if (s_kinds[i].kind == k)
            return s_kinds[i].name;
    return "none";
}

static void
s_rules_free(s_rule_t *rules, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(rules[i].path);
        free(rules[i].method);
        srv_body_release(&rules[i].body);
    }
    free(rules);
}

static uint64_t
s_next(srv_fault_t *self)
{
    uint64_t x = self->state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    self->state = x;
    return x * 0x2545F4914F6CDD1Dull;
}

static void
s_seed(srv_fault_t *self, uint64_t seed)
{
    self->seed = seed;
    self->state = seed ? seed : 0x9E3779B97F4A7C15ull;
}

srv_fault_t *
srv_fault_new(uint64_t seed)
{
    srv_fault_t *self = es_calloc(1, sizeof *self);
    pthread_mutex_init(&self->lock, NULL);
    s_seed(self, seed);
    return self;
}

void
srv_fault_destroy(srv_fault_t **self_p)
{
    if (!*self_p)
        return;
    srv_fault_t *self = *self_p;
    s_rules_free(self->rules, self->nrules);
    pthread_mutex_destroy(&self->lock);
    free(self);
    *self_p = NULL;
}

//  Optional integer member in [lo, hi]; 1 set, 0 absent, -1 error.
static int
s_int(yajl_val r, const char *name, size_t idx, int64_t lo, int64_t hi, int64_t *out, es_err_t *err)
{
    yajl_val v = srv_json_get(r, name);
    if (!v)
        return 0;
    if (!YAJL_IS_INTEGER(v) || YAJL_GET_INTEGER(v) < lo || YAJL_GET_INTEGER(v) > hi)
        return es_err_set(err, ES_EINVAL,
                          "rules[%zu].%s: expected an integer %" PRId64 "..%" PRId64, idx, name, lo,
                          hi);
    *out = YAJL_GET_INTEGER(v);
    return 1;
}

static int
s_str(yajl_val r, const char *name, size_t idx, char **out, es_err_t *err)
{
    yajl_val v = srv_json_get(r, name);
    if (!v || YAJL_IS_NULL(v))
        return 0;
    if (!YAJL_IS_STRING(v))
        return es_err_set(err, ES_EINVAL, "rules[%zu].%s: expected a string", idx, name);
    *out = es_strdup(YAJL_GET_STRING(v));
    return 0;
}

static int
s_parse_rule(yajl_val r, size_t idx, s_rule_t *rule, es_err_t *err)
{
    static const char *known[] = {"kind",  "ms",   "retry_after", "probability", "every",
                                  "count", "path", "method",      "status",      "text",
                                  "parts", "set",  "replace",     "bytes"};
    memset(rule, 0, sizeof *rule);
    rule->probability = -1;
    rule->count = -1;
    if (!YAJL_IS_OBJECT(r))
        return es_err_set(err, ES_EINVAL, "rules[%zu]: expected an object", idx);
    for (size_t i = 0; i < r->u.object.len; i++) {
        bool ok = false;
        for (size_t k = 0; k < sizeof known / sizeof known[0]; k++)
            ok = ok || strcmp(r->u.object.keys[i], known[k]) == 0;
        if (!ok)
            return es_err_set(err, ES_EINVAL, "rules[%zu]: unknown member '%s'", idx,
                              r->u.object.keys[i]);
    }
    yajl_val kind = srv_json_get(r, "kind");
    if (!kind || !YAJL_IS_STRING(kind))
        return es_err_set(err, ES_EINVAL, "rules[%zu].kind: expected a string", idx);
    for (size_t i = 0; i < sizeof s_kinds / sizeof s_kinds[0]; i++)
        if (strcmp(kind->u.string, s_kinds[i].name) == 0)
            rule->kind = s_kinds[i].kind;
    if (rule->kind == SRV_F_NONE)
        return es_err_set(err, ES_EINVAL, "rules[%zu].kind: unknown fault kind '%.40s'", idx,
                          YAJL_GET_STRING(kind));
    for (size_t k = 8; rule->kind != SRV_F_BODY && k < sizeof known / sizeof known[0]; k++)
        if (srv_json_get(r, known[k]))
            return es_err_set(err, ES_EINVAL, "rules[%zu].%s: only for kind body", idx, known[k]);
    int64_t v = 0;
    rule->ms = rule->kind == SRV_F_HANG ? 60000 : rule->kind == SRV_F_APPLY_DELAY ? 1000 : 100;
    int rc = s_int(r, "ms", idx, 0, 600000, &v, err);
    if (rc < 0)
        return -1;
    if (rc)
        rule->ms = (uint32_t)v;
    rule->retry_after = 1;
    if ((rc = s_int(r, "retry_after", idx, 0, 3600, &v, err)) < 0)
        return -1;
    if (rc)
        rule->retry_after = (int)v;
    if ((rc = s_int(r, "every", idx, 1, 1000000000, &v, err)) < 0)
        return -1;
    if (rc)
        rule->every = (uint64_t)v;
    if ((rc = s_int(r, "count", idx, 1, 1000000000, &v, err)) < 0)
        return -1;
    if (rc)
        rule->count = v;
    yajl_val p = srv_json_get(r, "probability");
    if (p) {
        if (!YAJL_IS_NUMBER(p) || YAJL_GET_DOUBLE(p) < 0 || YAJL_GET_DOUBLE(p) > 1)
            return es_err_set(err, ES_EINVAL, "rules[%zu].probability: expected a number 0..1",
                              idx);
        rule->probability = YAJL_GET_DOUBLE(p);
    }
    if (s_str(r, "path", idx, &rule->path, err) || s_str(r, "method", idx, &rule->method, err))
        return -1;
    if (rule->kind == SRV_F_BODY && !(rule->body = srv_body_parse(r, idx, err)))
        return -1;
    return 0;
}

int
srv_fault_set(srv_fault_t *self, const char *json, size_t len, es_err_t *err)
{
    yajl_val root = srv_json_parse(json, len, err);
    if (!root)
        return -1;
    int rc = -1;
    s_rule_t *rules = NULL;
    size_t n = 0;
    yajl_val seed = srv_json_get(root, "seed"), list = srv_json_get(root, "rules");
    for (size_t i = 0; i < root->u.object.len; i++)
        if (strcmp(root->u.object.keys[i], "seed") && strcmp(root->u.object.keys[i], "rules")) {
            es_err_set(err, ES_EINVAL, "unknown member '%s' (expected seed, rules)",
                       root->u.object.keys[i]);
            goto done;
        }
    if (seed && (!YAJL_IS_INTEGER(seed) || YAJL_GET_INTEGER(seed) < 0)) {
        es_err_set(err, ES_EINVAL, "seed: expected a non-negative integer");
        goto done;
    }
    if (list && !YAJL_IS_ARRAY(list)) {
        es_err_set(err, ES_EINVAL, "rules: expected an array");
        goto done;
    }
    n = list ? list->u.array.len : 0;
    rules = es_calloc(n ? n : 1, sizeof *rules);
    for (size_t i = 0; i < n; i++)
        if (s_parse_rule(list->u.array.values[i], i, &rules[i], err)) {
            n = i + 1; //  free what this rule allocated too
            goto done;
        }
    pthread_mutex_lock(&self->lock);
    s_rules_free(self->rules, self->nrules);
    self->rules = rules;
    self->nrules = n;
    if (seed)
        s_seed(self, (uint64_t)YAJL_GET_INTEGER(seed));
    else
        s_seed(self, self->seed);
    pthread_mutex_unlock(&self->lock);
    rules = NULL;
    n = 0;
    rc = 0;
done:
    s_rules_free(rules, n);
    yajl_tree_free(root);
    return rc;
}

void
srv_fault_clear(srv_fault_t *self)
{
    pthread_mutex_lock(&self->lock);
    s_rules_free(self->rules, self->nrules);
    self->rules = NULL;
    self->nrules = 0;
    pthread_mutex_unlock(&self->lock);
}

void
srv_fault_dump(srv_fault_t *self, es_buf_t *out)
{
    pthread_mutex_lock(&self->lock);
    es_buf_printf(out, "{\"seed\":%" PRIu64 ",\"fired\":%" PRIu64 ",\"rules\":[", self->seed,
                  self->fired);
    for (size_t i = 0; i < self->nrules; i++) {
        const s_rule_t *r = &self->rules[i];
        es_buf_printf(out, "%s{\"kind\":\"%s\",\"ms\":%u,\"retry_after\":%d", i ? "," : "",
                      s_kind_name(r->kind), r->ms, r->retry_after);
        if (r->probability >= 0)
            es_buf_printf(out, ",\"probability\":%g", r->probability);
        if (r->every)
            es_buf_printf(out, ",\"every\":%" PRIu64, r->every);
        if (r->count >= 0)
            es_buf_printf(out, ",\"count\":%" PRId64, r->count);
        if (r->path) {
            es_buf_puts(out, ",\"path\":");
            es_buf_json_str(out, r->path, strlen(r->path));
        }
        if (r->method) {
            es_buf_puts(out, ",\"method\":");
            es_buf_json_str(out, r->method, strlen(r->method));
        }
        es_buf_printf(out, ",\"seen\":%" PRIu64 ",\"fired\":%" PRIu64 "}", r->seen, r->fired);
    }
    es_buf_puts(out, "]}");
    pthread_mutex_unlock(&self->lock);
}

void
srv_fault_pick(srv_fault_t *self, const char *path, const char *method, srv_fault_hit_t *hit)
{
    memset(hit, 0, sizeof *hit);
    pthread_mutex_lock(&self->lock);
    for (size_t i = 0; i < self->nrules; i++) {
        s_rule_t *r = &self->rules[i];
        if (r->count == 0)
            continue;
        if (r->kind != SRV_F_LATENCY && hit->action != SRV_F_NONE)
            continue;
        if (r->path && !strstr(path, r->path))
            continue;
        if (r->method && (!method || strcasecmp(r->method, method) != 0))
            continue;
        r->seen++;
        bool fire = r->every ? r->seen % r->every == 0 : true;
        if (fire && r->probability >= 0)
            fire = (double)(s_next(self) >> 11) / 9007199254740992.0 < r->probability;
        if (!fire)
            continue;
        r->fired++;
        self->fired++;
        if (r->count > 0)
            r->count--;
        if (r->kind == SRV_F_LATENCY) {
            hit->latency_ms += r->ms;
        } else {
            hit->action = r->kind;
            hit->ms = r->ms;
            hit->retry_after = r->retry_after;
            hit->body = srv_body_ref(r->body);
        }
    }
    pthread_mutex_unlock(&self->lock);
}

uint64_t
srv_fault_fired(srv_fault_t *self)
{
    pthread_mutex_lock(&self->lock);
    uint64_t n = self->fired;
    pthread_mutex_unlock(&self->lock);
    return n;
}
