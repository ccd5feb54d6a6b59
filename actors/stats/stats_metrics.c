//  stats_metrics - counters, gauges and histograms by label set; exposition and snapshot.
#include "actors/stats/stats_metrics.h"
#include "common/es_mem.h"
#include <assert.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum { K_COUNTER, K_GAUGE, K_HISTOGRAM } kind_t;

typedef struct {
    const char *name;
    kind_t kind;
    bool live; //  read from the store at every scrape, never saved
    const char *help;
} family_t;

static const family_t s_families[] = {
    {SM_SESSIONS, K_COUNTER, false,
     "Sync sessions ended, by level and result (ok, failed, cancelled)."},
    {SM_REC_UP, K_COUNTER, false,
     "Records accepted by the backend on upload (object \"\" = a service-wide upload)."},
    {SM_REC_DOWN, K_COUNTER, false, "Records downloaded and committed to the store."},
    {SM_BYTES_UP, K_COUNTER, false, "Bytes of upload request bodies sent."},
    {SM_BYTES_DOWN, K_COUNTER, false, "Bytes of download responses received."},
    {SM_ERRORS, K_COUNTER, false,
     "Errors by code: the code of each failed session and the opstatus of each record error."},
    {SM_BATCH_SECONDS, K_HISTOGRAM, false,
     "Time of one batch (request, network, parsing, commit), by phase."},
    {SM_RESTARTS, K_COUNTER, true, "Actor processes restarted by the daemon, by kind."},
    {SM_PENDING, K_GAUGE, true, "Local changes waiting for upload, by object."},
    {SM_UPCACHE, K_GAUGE, true, "Upload requests kept in the upload cache for replay."},
    {SM_IN_PROGRESS, K_GAUGE, true, "Sync sessions running now."},
    {SM_RUNS, K_GAUGE, true, "Sync runs kept in the history ledger."},
};
#define NFAMILIES (sizeof s_families / sizeof s_families[0])

const double stats_metrics_buckets[SM_NBUCKETS] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                                                   1,     2.5,  5,     10,   30,  60};

typedef struct {
    size_t family;                     //  index in s_families
    char *labels;                      //  `k="v",...` or ""
    double value;                      //  counter or gauge
    uint64_t buckets[SM_NBUCKETS + 1]; //  histogram: per bucket (not cumulative), last = +Inf
    uint64_t count;                    //  histogram observations
    double sum;                        //  histogram sum
} series_t;

struct stats_metrics {
    series_t *series;
    size_t n, cap;
};

stats_metrics_t *
stats_metrics_new(void)
{
    return es_calloc(1, sizeof(stats_metrics_t));
}

static void
s_clear(stats_metrics_t *self, bool live_only)
{
    size_t k = 0;
    for (size_t i = 0; i < self->n; i++) {
        if (!live_only || s_families[self->series[i].family].live)
            free(self->series[i].labels);
        else
            self->series[k++] = self->series[i];
    }
    self->n = k;
}

void
stats_metrics_destroy(stats_metrics_t **self_p)
{
    if (!*self_p)
        return;
    stats_metrics_t *self = *self_p;
    s_clear(self, false);
    free(self->series);
    free(self);
    *self_p = NULL;
}

void
stats_metrics_labels(es_buf_t *out, ...)
{
    es_buf_reset(out);
    va_list ap;
    va_start(ap, out);
    const char *k;
    for (int i = 0; (k = va_arg(ap, const char *)); i++) {
        const char *v = va_arg(ap, const char *);
        es_buf_printf(out, "%s%s=\"", i ? "," : "", k);
        for (const char *p = v ? v : ""; *p; p++) {
            if (*p == '\\' || *p == '"')
                es_buf_putc(out, '\\');
            if (*p == '\n')
                es_buf_puts(out, "\\n");
            else
                es_buf_putc(out, *p);
        }
        es_buf_putc(out, '"');
    }
    va_end(ap);
    if (!out->data)
        es_buf_puts(out, "");
}

static size_t
s_family(const char *name)
{
    for (size_t i = 0; i < NFAMILIES; i++)
        if (strcmp(s_families[i].name, name) == 0)
            return i;
    return NFAMILIES;
}

//  The series of family with labels; created (zero) if create, else NULL when absent.
static series_t *
s_series(stats_metrics_t *self, size_t family, const char *labels, bool create)
{
    for (size_t i = 0; i < self->n; i++)
        if (self->series[i].family == family && strcmp(self->series[i].labels, labels) == 0)
            return &self->series[i];
    if (!create)
        return NULL;
    if (self->n == self->cap) {
        self->cap = self->cap ? self->cap * 2 : 32;
        self->series = es_realloc(self->series, self->cap * sizeof *self->series);
    }
    series_t *s = &self->series[self->n++];
    memset(s, 0, sizeof *s);
    s->family = family;
    s->labels = es_strdup(labels);
    return s;
}

void
stats_metrics_add(stats_metrics_t *self, const char *family, const char *labels, double v)
{
    size_t f = s_family(family);
    assert(f < NFAMILIES && s_families[f].kind == K_COUNTER && v >= 0);
    s_series(self, f, labels ? labels : "", true)->value += v;
}

void
stats_metrics_set(stats_metrics_t *self, const char *family, const char *labels, double v)
{
    size_t f = s_family(family);
    assert(f < NFAMILIES && s_families[f].kind != K_HISTOGRAM);
    s_series(self, f, labels ? labels : "", true)->value = v;
}

void
stats_metrics_observe(stats_metrics_t *self, const char *family, const char *labels, double v)
{
    size_t f = s_family(family);
    assert(f < NFAMILIES && s_families[f].kind == K_HISTOGRAM);
    series_t *s = s_series(self, f, labels ? labels : "", true);
    size_t b = 0;
    while (b < SM_NBUCKETS && v > stats_metrics_buckets[b])
        b++;
    s->buckets[b]++;
    s->count++;
    s->sum += v;
}

double
stats_metrics_get(const stats_metrics_t *self, const char *family, const char *labels)
{
    size_t f = s_family(family);
    assert(f < NFAMILIES);
    series_t *s = s_series((stats_metrics_t *)self, f, labels ? labels : "", false);
    if (!s)
        return 0;
    return s_families[f].kind == K_HISTOGRAM ? (double)s->count : s->value;
}

void
stats_metrics_clear_live(stats_metrics_t *self)
{
    s_clear(self, true);
}

//  A sample value as the format wants it: integers without a fraction, +Inf/NaN spelled out.
static void
s_value(es_buf_t *out, double v)
{
    if (isnan(v))
        es_buf_puts(out, "NaN");
    else if (isinf(v))
        es_buf_puts(out, v > 0 ? "+Inf" : "-Inf");
    else if (v == floor(v) && fabs(v) < 9007199254740992.0)
        es_buf_printf(out, "%.0f", v);
    else
        es_buf_printf(out, "%.17g", v);
}

static void
s_sample(es_buf_t *out, const char *name, const char *suffix, const char *labels, const char *extra,
         double v)
{
    es_buf_printf(out, "%s%s", name, suffix);
    if (*labels || *extra)
        es_buf_printf(out, "{%s%s%s}", labels, *labels && *extra ? "," : "", extra);
    es_buf_putc(out, ' ');
    s_value(out, v);
    es_buf_putc(out, '\n');
}

static const stats_metrics_t *s_sort_self; //  qsort has no context argument

static int
s_by_labels(const void *a, const void *b)
{
    const series_t *x = &s_sort_self->series[*(const size_t *)a];
    const series_t *y = &s_sort_self->series[*(const size_t *)b];
    return strcmp(x->labels, y->labels);
}

void
stats_metrics_format(const stats_metrics_t *self, es_buf_t *out)
{
    size_t *idx = es_malloc((self->n + 1) * sizeof *idx);
    for (size_t f = 0; f < NFAMILIES; f++) {
        const family_t *fam = &s_families[f];
        static const char *types[] = {"counter", "gauge", "histogram"};
        es_buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", fam->name, fam->help, fam->name,
                      types[fam->kind]);
        size_t m = 0;
        for (size_t i = 0; i < self->n; i++)
            if (self->series[i].family == f)
                idx[m++] = i;
        s_sort_self = self;
        qsort(idx, m, sizeof *idx, s_by_labels);
        for (size_t i = 0; i < m; i++) {
            const series_t *s = &self->series[idx[i]];
            if (fam->kind != K_HISTOGRAM) {
                s_sample(out, fam->name, "", s->labels, "", s->value);
                continue;
            }
            uint64_t cum = 0;
            char le[64];
            for (size_t b = 0; b < SM_NBUCKETS; b++) {
                cum += s->buckets[b];
                snprintf(le, sizeof le, "le=\"%g\"", stats_metrics_buckets[b]);
                s_sample(out, fam->name, "_bucket", s->labels, le, (double)cum);
            }
            s_sample(out, fam->name, "_bucket", s->labels, "le=\"+Inf\"", (double)s->count);
            s_sample(out, fam->name, "_sum", s->labels, "", s->sum);
            s_sample(out, fam->name, "_count", s->labels, "", (double)s->count);
        }
    }
    free(idx);
}

//  Snapshot lines, labels last (they may hold spaces; newlines in them are escaped):
//    C <value> <family> <labels>
//    H <sum> <count> <bucket 0> .. <bucket SM_NBUCKETS> <family> <labels>
void
stats_metrics_save(const stats_metrics_t *self, es_buf_t *out)
{
    for (size_t i = 0; i < self->n; i++) {
        const series_t *s = &self->series[i];
        const family_t *fam = &s_families[s->family];
        if (fam->live)
            continue;
        if (fam->kind == K_HISTOGRAM) {
            es_buf_printf(out, "H %.17g %" PRIu64, s->sum, s->count);
            for (size_t b = 0; b <= SM_NBUCKETS; b++)
                es_buf_printf(out, " %" PRIu64, s->buckets[b]);
        } else {
            es_buf_printf(out, "C %.17g", s->value);
        }
        es_buf_printf(out, " %s %s\n", fam->name, s->labels);
    }
}

//  Next space-separated token of [*p, end); false if none.
static bool
s_token(const char **p, const char *end, char *tok, size_t size)
{
    const char *s = *p;
    while (s < end && *s == ' ')
        s++;
    const char *e = s;
    while (e < end && *e != ' ')
        e++;
    if (e == s || (size_t)(e - s) >= size)
        return false;
    memcpy(tok, s, (size_t)(e - s));
    tok[e - s] = '\0';
    *p = e;
    return true;
}

static bool
s_number(const char **p, const char *end, double *v)
{
    char tok[64], *stop;
    if (!s_token(p, end, tok, sizeof tok))
        return false;
    *v = strtod(tok, &stop);
    return *stop == '\0' && isfinite(*v) && *v >= 0;
}

static bool
s_count(const char **p, const char *end, uint64_t *v)
{
    char tok[32], *stop;
    if (!s_token(p, end, tok, sizeof tok) || tok[0] == '-')
        return false;
    *v = strtoull(tok, &stop, 10);
    return *stop == '\0';
}

int
stats_metrics_load(stats_metrics_t *self, const char *text, size_t len, es_err_t *err)
{
    s_clear(self, false);
    const char *p = text, *end = text + len;
    for (int line = 1; p < end; line++) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *eol = nl ? nl : end;
        char kind[4], name[128];
        double value = 0, sum = 0;
        uint64_t count = 0, buckets[SM_NBUCKETS + 1];
        bool ok = s_token(&p, eol, kind, sizeof kind);
        bool hist = ok && strcmp(kind, "H") == 0;
        ok = ok && (hist || strcmp(kind, "C") == 0);
        if (ok && hist) {
            ok = s_number(&p, eol, &sum) && s_count(&p, eol, &count);
            for (size_t b = 0; ok && b <= SM_NBUCKETS; b++)
                ok = s_count(&p, eol, &buckets[b]);
        } else if (ok) {
            ok = s_number(&p, eol, &value);
        }
        ok = ok && s_token(&p, eol, name, sizeof name);
        size_t f = ok ? s_family(name) : NFAMILIES;
        ok = f < NFAMILIES && !s_families[f].live && (s_families[f].kind == K_HISTOGRAM) == hist;
        if (!ok) {
            s_clear(self, false);
            return es_err_set(err, ES_EINVAL, "metrics snapshot: line %d is malformed", line);
        }
        if (p < eol && *p == ' ')
            p++;
        char *labels = es_strndup(p, (size_t)(eol - p));
        series_t *s = s_series(self, f, labels, true);
        free(labels);
        s->value = value;
        s->sum = sum;
        s->count = count;
        if (hist)
            memcpy(s->buckets, buckets, sizeof buckets);
        p = nl ? nl + 1 : end;
    }
    return 0;
}
