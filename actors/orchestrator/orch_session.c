//  orch_session - sync session state, events, stats and results.
#include "actors/orchestrator/orch_session.h"
#include "common/es_actor.h"
#include "common/es_mem.h"
#include "protocol/es_json.h"
#include "protocol/es_vmx.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_tree.h>

session_t *
orch_session_new(const char *id, const char *level, const char *service, const char *object,
                 const char *options)
{
    session_t *self = es_calloc(1, sizeof *self);
    snprintf(self->id, sizeof self->id, "%s", id);
    snprintf(self->level, sizeof self->level, "%s", level);
    snprintf(self->service, sizeof self->service, "%s", service);
    snprintf(self->object, sizeof self->object, "%s", object);
    snprintf(self->sync_type, sizeof self->sync_type, "fullSync");
    self->options = es_strdup(options);
    self->start_epoch_ms = es_epoch_ms();
    self->start_mono_ms = es_now_ms();
    es_buf_init(&self->batches);
    es_buf_init(&self->errors);
    es_buf_init(&self->uerrors);
    es_buf_init(&self->unsaved);
    es_buf_init(&self->warnings);
    return self;
}

void
orch_session_destroy(session_t **self_p)
{
    if (!*self_p)
        return;
    session_t *self = *self_p;
    free(self->result);
    free(self->what);
    es_buf_release(&self->warnings);
    es_buf_release(&self->errors);
    es_buf_release(&self->uerrors);
    es_buf_release(&self->unsaved);
    es_buf_release(&self->batches);
    free(self->objs);
    free(self->options);
    free(self);
    *self_p = NULL;
}

void
orch_session_add_object(session_t *self, const char *service, const char *name)
{
    self->objs = es_realloc(self->objs, (self->nobjs + 1) * sizeof *self->objs);
    sobj_t *o = &self->objs[self->nobjs++];
    memset(o, 0, sizeof *o);
    snprintf(o->service, sizeof o->service, "%s", service);
    snprintf(o->name, sizeof o->name, "%s", name);
}

void
orch_session_add_upload(session_t *self, const char *service, const char *object)
{
    orch_session_add_object(self, service, object);
    self->objs[self->nobjs - 1].kind = SOBJ_UPLOAD;
}

void
orch_session_add_reconcile(session_t *self, const char *service, const char *object)
{
    orch_session_add_object(self, service, object);
    self->objs[self->nobjs - 1].kind = SOBJ_RECONCILE;
}

bool
orch_session_blocked(const session_t *self, const sobj_t *o)
{
    //  syncMode sequential: the next service starts when the previous one has ended (SPEC 2.3).
    if (self->sequential)
        for (size_t i = 0; i < self->nobjs; i++) {
            const sobj_t *x = &self->objs[i];
            if (x->state == SOBJ_PENDING || x->state == SOBJ_RUNNING) {
                if (strcmp(x->service, o->service) != 0)
                    return true;
                break;
            }
        }
    if (o->kind == SOBJ_RECONCILE) {
        for (size_t i = 0; i < self->nobjs; i++) {
            const sobj_t *d = &self->objs[i];
            if (d->kind == SOBJ_DOWNLOAD && strcmp(d->service, o->service) == 0 &&
                strcmp(d->name, o->name) == 0 && d->state != SOBJ_DONE)
                return true;
        }
        return false;
    }
    if (o->kind != SOBJ_DOWNLOAD)
        return false;
    //  Upload precedes download for the same objects (SPEC 3.1).
    for (size_t i = 0; i < self->nobjs; i++) {
        const sobj_t *u = &self->objs[i];
        if (u->kind == SOBJ_UPLOAD && strcmp(u->service, o->service) == 0 &&
            (u->state == SOBJ_PENDING || u->state == SOBJ_RUNNING))
            return true;
    }
    return false;
}

sobj_t *
orch_session_object(session_t *self, const char *service, const char *name)
{
    for (size_t i = 0; i < self->nobjs; i++)
        if (strcmp(self->objs[i].service, service) == 0 && strcmp(self->objs[i].name, name) == 0)
            return &self->objs[i];
    return NULL;
}

bool
orch_session_overlaps(const session_t *self, const char *level, const char *service,
                      const char *object)
{
    if (strcmp(self->level, "app") == 0 || strcmp(level, "app") == 0)
        return true;
    if (strcmp(self->service, service) != 0)
        return false;
    //  Same service: overlapping unless both are different single objects.
    if (strcmp(self->level, "object") == 0 && strcmp(level, "object") == 0)
        return strcmp(self->object, object) == 0;
    return true;
}

bool
orch_session_finished(const session_t *self)
{
    for (size_t i = 0; i < self->nobjs; i++)
        if (self->objs[i].state == SOBJ_PENDING || self->objs[i].state == SOBJ_RUNNING)
            return false;
    return true;
}

static void
s_str(es_buf_t *out, const char *key, const char *value)
{
    es_buf_printf(out, "\"%s\":", key);
    es_buf_json_str(out, value, strlen(value));
}

void
orch_session_to_json(const session_t *self, es_buf_t *out)
{
    static const char *states[] = {"pending", "running", "done", "failed", "skipped"};
    es_buf_putc(out, '{');
    s_str(out, "id", self->id);
    es_buf_putc(out, ',');
    s_str(out, "level", self->level);
    es_buf_putc(out, ',');
    s_str(out, "service", self->service);
    es_buf_putc(out, ',');
    s_str(out, "object", self->object);
    es_buf_putc(out, ',');
    s_str(out, "syncType", self->sync_type);
    es_buf_putc(out, ',');
    s_str(out, "options", self->options);
    es_buf_printf(out, ",\"uploaded\":%llu,\"replays\":%u,\"reconciled\":%llu",
                  (unsigned long long)self->uploaded, self->replays,
                  (unsigned long long)self->reconciled);
    es_buf_printf(out, ",\"sequential\":%s", self->sequential ? "true" : "false");
    es_buf_printf(out, ",\"getStats\":%s,\"startTime\":%lld,\"downloaded\":%llu,\"code\":%d",
                  self->get_stats ? "true" : "false", (long long)self->start_epoch_ms,
                  (unsigned long long)self->downloaded, self->code);
    es_buf_printf(out, ",\"cancelled\":%s,\"state\":\"%s\"", self->cancelled ? "true" : "false",
                  self->done ? "done" : "running");
    //  es-stats records a finished session from this row when it missed the result message.
    if (self->done)
        es_buf_printf(out, ",\"endTime\":%lld", (long long)self->end_epoch_ms);
    if (self->what) {
        es_buf_putc(out, ',');
        s_str(out, "what", self->what);
    }
    es_buf_puts(out, ",\"objects\":[");
    for (size_t i = 0; i < self->nobjs; i++) {
        const sobj_t *o = &self->objs[i];
        es_buf_puts(out, i ? ",{" : "{");
        s_str(out, "service", o->service);
        es_buf_putc(out, ',');
        s_str(out, "name", o->name);
        if (o->kind == SOBJ_UPLOAD)
            es_buf_puts(out, ",\"kind\":\"upload\"");
        else if (o->kind == SOBJ_RECONCILE)
            es_buf_puts(out, ",\"kind\":\"reconcile\"");
        es_buf_printf(out, ",\"state\":\"%s\",\"batches\":%u,\"records\":%llu,\"attempts\":%u",
                      states[o->state], o->batches, (unsigned long long)o->records, o->attempts);
        if (o->code) {
            es_buf_printf(out, ",\"code\":%d,", o->code);
            s_str(out, "what", o->what);
        }
        es_buf_putc(out, '}');
    }
    es_buf_printf(out, "],\"nbatches\":%u,\"uerrors\":[%s],\"errors\":[%s],\"warnings\":[%s]",
                  self->nbatches, self->uerrors.data ? self->uerrors.data : "",
                  self->errors.data ? self->errors.data : "",
                  self->warnings.data ? self->warnings.data : "");
    if (self->result)
        es_buf_printf(out, ",\"result\":%s", self->result);
    es_buf_putc(out, '}');
}

static long long
s_get_int(yajl_val root, const char *key)
{
    const char *path[] = {key, NULL};
    yajl_val v = yajl_tree_get(root, path, yajl_t_number);
    return v && YAJL_IS_INTEGER(v) ? YAJL_GET_INTEGER(v) : 0;
}

//  Array elements joined by commas (the in-memory form of batches/errors/warnings).
static void
s_fragment(es_buf_t *out, yajl_val root, const char *key)
{
    const char *path[] = {key, NULL};
    es_json_write_elements(out, yajl_tree_get(root, path, yajl_t_array));
}

//  A string that fits a field of max characters, else NULL.
static const char *
s_get_name(yajl_val root, const char *key, size_t max)
{
    const char *v = es_json_get_str(root, key);
    return v && strlen(v) <= max ? v : NULL;
}

static int
s_state_parse(const char *text)
{
    static const char *states[] = {"pending", "running", "done", "failed", "skipped"};
    for (int k = 0; k < 5; k++)
        if (strcmp(text, states[k]) == 0)
            return k;
    return -1;
}

//  Rebuild one plan entry; -1 if it is not what to_json writes.
static int
s_object_from_json(session_t *self, yajl_val o)
{
    const char *osvc = s_get_name(o, "service", ES_NAME_MAX);
    const char *oname = s_get_name(o, "name", ES_NAME_MAX);
    const char *ostate = es_json_get_str(o, "state");
    int state = ostate ? s_state_parse(ostate) : -1;
    if (!osvc || !oname || state < 0)
        return -1;
    orch_session_add_object(self, osvc, oname);
    sobj_t *so = &self->objs[self->nobjs - 1];
    const char *okind = es_json_get_str(o, "kind");
    so->kind = !okind                            ? SOBJ_DOWNLOAD
               : strcmp(okind, "upload") == 0    ? SOBJ_UPLOAD
               : strcmp(okind, "reconcile") == 0 ? SOBJ_RECONCILE
                                                 : SOBJ_DOWNLOAD;
    //  A running object's actor died with the daemon: dispatch it again.
    so->state = state == SOBJ_RUNNING ? SOBJ_PENDING : (sobj_state_t)state;
    so->batches = (uint32_t)s_get_int(o, "batches");
    so->records = (uint64_t)s_get_int(o, "records");
    so->attempts = (uint32_t)s_get_int(o, "attempts");
    so->code = (int32_t)s_get_int(o, "code");
    const char *owhat = es_json_get_str(o, "what");
    if (owhat)
        snprintf(so->what, sizeof so->what, "%s", owhat);
    return 0;
}

session_t *
orch_session_from_json(const char *json, size_t len)
{
    char *text = es_strndup(json, len);
    char errbuf[128];
    yajl_val root = yajl_tree_parse(text, errbuf, sizeof errbuf);
    free(text);
    if (!root || !YAJL_IS_OBJECT(root)) {
        yajl_tree_free(root);
        return NULL;
    }
    //  Names that do not fit their fields would come back truncated: refuse them instead.
    const char *id = s_get_name(root, "id", ES_NAME_MAX);
    const char *level = es_json_get_str(root, "level");
    const char *service = s_get_name(root, "service", ES_NAME_MAX);
    const char *object = s_get_name(root, "object", ES_NAME_MAX);
    const char *options = es_json_get_str(root, "options");
    const char *objs_path[] = {"objects", NULL};
    yajl_val objs = yajl_tree_get(root, objs_path, yajl_t_array);
    bool level_ok = level && (strcmp(level, "app") == 0 || strcmp(level, "service") == 0 ||
                              strcmp(level, "object") == 0);
    if (!id || !level_ok || !service || !object || !options || !objs) {
        yajl_tree_free(root);
        return NULL;
    }
    session_t *self = orch_session_new(id, level, service, object, options);
    const char *st = s_get_name(root, "syncType", sizeof self->sync_type - 1);
    snprintf(self->sync_type, sizeof self->sync_type, "%s", st ? st : "fullSync");
    const char *gs_path[] = {"getStats", NULL};
    self->get_stats = YAJL_IS_TRUE(yajl_tree_get(root, gs_path, yajl_t_any));
    const char *c_path[] = {"cancelled", NULL};
    self->cancelled = YAJL_IS_TRUE(yajl_tree_get(root, c_path, yajl_t_any));
    self->start_epoch_ms = s_get_int(root, "startTime");
    self->end_epoch_ms = s_get_int(root, "endTime");
    self->downloaded = (uint64_t)s_get_int(root, "downloaded");
    self->uploaded = (uint64_t)s_get_int(root, "uploaded");
    self->replays = (uint32_t)s_get_int(root, "replays");
    self->reconciled = (uint64_t)s_get_int(root, "reconciled");
    const char *sq_path[] = {"sequential", NULL};
    self->sequential = YAJL_IS_TRUE(yajl_tree_get(root, sq_path, yajl_t_any));
    self->code = (int32_t)s_get_int(root, "code");
    const char *what = es_json_get_str(root, "what");
    if (what)
        self->what = es_strdup(what);
    const char *state = es_json_get_str(root, "state");
    self->done = state && strcmp(state, "done") == 0;
    //  Elapsed time continues from the wall clock start.
    self->start_mono_ms = es_now_ms() - (es_epoch_ms() - self->start_epoch_ms);
    for (size_t i = 0; i < objs->u.array.len; i++)
        if (s_object_from_json(self, objs->u.array.values[i])) {
            //  A plan missing an object would end "successful" without syncing it.
            orch_session_destroy(&self);
            yajl_tree_free(root);
            return NULL;
        }
    self->nbatches = (uint32_t)s_get_int(root, "nbatches");
    s_fragment(&self->errors, root, "errors");
    s_fragment(&self->uerrors, root, "uerrors");
    s_fragment(&self->warnings, root, "warnings");
    const char *r_path[] = {"result", NULL};
    yajl_val result = yajl_tree_get(root, r_path, yajl_t_object);
    if (result) {
        es_buf_t b;
        es_buf_init(&b);
        es_json_write(&b, result);
        self->result = es_buf_steal(&b);
    }
    yajl_tree_free(root);
    return self;
}

void
orch_session_event(const session_t *self, const char *phase, const char *state, const char *name,
                   const char *extra, es_buf_t *out)
{
    es_buf_reset(out);
    es_buf_putc(out, '{');
    s_str(out, "session", self->id);
    es_buf_putc(out, ',');
    s_str(out, "phase", phase);
    es_buf_putc(out, ',');
    s_str(out, "state", state);
    es_buf_putc(out, ',');
    s_str(out, "name", name);
    es_buf_puts(out, extra);
    es_buf_putc(out, '}');
}

void
orch_session_batch(session_t *self, const sobj_t *o, const es_progress_t *p, es_buf_t *entry)
{
    es_buf_reset(entry);
    es_buf_putc(entry, '{');
    bool up = strcmp(p->phase, "Upload") == 0;
    if (up)
        es_buf_puts(entry, "\"phase\":\"Upload\",");
    s_str(entry, "objectService", o->service);
    es_buf_putc(entry, ',');
    s_str(entry, "object", p->object);
    es_buf_printf(entry,
                  ",\"batchNumber\":%u,\"numberOfRecords\":%u,\"requestCreationTime\":%u,"
                  "\"networkDurationTime\":%u,\"responseParsingTime\":%u,"
                  "\"dataPersistanceTime\":%u,\"bytes\":%llu,\"retries\":%u}",
                  p->batch, p->records, p->request_ms, p->network_ms, p->parse_ms, p->persist_ms,
                  (unsigned long long)p->bytes, p->retries);
    self->nbatches++;
    if (up)
        self->uploaded += p->records;
    else
        self->downloaded += p->records;
    orch_session_add_batch(self, entry->data, entry->len);
}

void
orch_session_add_batch(session_t *self, const char *json, size_t len)
{
    if (!self->get_stats || self->nkept >= ORCH_STATS_BATCHES_MAX)
        return;
    if (self->batches.len)
        es_buf_putc(&self->batches, ',');
    es_buf_append(&self->batches, json, len);
    self->nkept++;
}

void
orch_session_fail_object(session_t *self, sobj_t *o, int32_t code, const char *what, size_t len)
{
    o->state = SOBJ_FAILED;
    o->code = code;
    snprintf(o->what, sizeof o->what, "%.*s", (int)len, what);
    if (!self->code) {
        self->code = code;
        free(self->what);
        self->what = es_strndup(what, len);
    }
}

//  Elements of a comma-joined JSON array body whose "objectService" is service (all when
//  service is NULL), appended comma-joined to out.
static void
s_filter_entries(const es_buf_t *entries, const char *service, const char *phase, es_buf_t *out)
{
    if (!entries->len)
        return;
    if (!service && !phase) {
        es_buf_append(out, entries->data, entries->len);
        return;
    }
    es_buf_t doc;
    es_buf_init(&doc);
    es_buf_printf(&doc, "[%s]", entries->data);
    yajl_val arr = yajl_tree_parse(doc.data, NULL, 0);
    size_t n = 0;
    for (size_t i = 0; arr && YAJL_IS_ARRAY(arr) && i < arr->u.array.len; i++) {
        yajl_val e = arr->u.array.values[i];
        const char *svc = es_json_get_str(e, "objectService");
        if (service && svc && strcmp(svc, service) != 0)
            continue;
        //  Entries without a phase are download batches.
        const char *ph = es_json_get_str(e, "phase");
        if (phase && strcmp(ph ? ph : "Download", phase) != 0)
            continue;
        if (n++)
            es_buf_putc(out, ',');
        es_json_write(out, e);
    }
    yajl_tree_free(arr);
    es_buf_release(&doc);
}

//  One object or service result (SPEC 4.3/4.4); service NULL = every object of the session.
static void
s_result(const session_t *self, const char *level, const char *name, const char *service,
         int32_t code, const char *what, es_buf_t *out)
{
    bool obj = strcmp(level, "object") == 0;
    uint64_t downloaded = 0, uploaded = 0, reconciled = 0;
    for (size_t i = 0; i < self->nobjs; i++)
        if (!service || strcmp(self->objs[i].service, service) == 0) {
            if (self->objs[i].kind == SOBJ_UPLOAD)
                uploaded += self->objs[i].records;
            else if (self->objs[i].kind == SOBJ_RECONCILE)
                reconciled += self->objs[i].records;
            else
                downloaded += self->objs[i].records;
        }
    if (!service) {
        downloaded = self->downloaded;
        uploaded = self->uploaded;
        reconciled = self->reconciled;
    }
    if (code == 0) {
        es_buf_puts(out, "{\"status\":0,");
        s_str(out, obj ? "name" : "objectServiceName", name);
    } else {
        char *message = es_vmx_format(code, what);
        es_buf_printf(out, "{\"code\":%d,", code);
        s_str(out, "message", message);
        free(message);
        es_buf_puts(out, ",\"domain\":\"OfflineObjectsError\",\"status\":-1,\"userInfo\":{");
        s_str(out, obj ? "objectName" : "objectServiceName", name);
        es_buf_putc(out, '}');
    }
    if (self->get_stats) {
        es_buf_puts(out, ",\"syncStats\":{");
        s_str(out, "name", name);
        es_buf_printf(out,
                      ",\"startTime\":%lld,\"syncElapsedTime\":%lld,"
                      "\"numberOfRecordsSynced\":%llu,\"totalUploadedRecords\":%llu,"
                      "\"totalDownloadedRecords\":%llu,\"uploadStats\":[",
                      (long long)self->start_epoch_ms, (long long)self->elapsed_ms,
                      (unsigned long long)(uploaded + downloaded), (unsigned long long)uploaded,
                      (unsigned long long)downloaded);
        s_filter_entries(&self->batches, service, "Upload", out);
        es_buf_puts(out, "],\"downloadStats\":[");
        s_filter_entries(&self->batches, service, "Download", out);
        es_buf_printf(out, "],\"reconciledDeletes\":%llu,\"uploadCacheReplays\":%u%s}",
                      (unsigned long long)reconciled, self->replays,
                      self->nkept < self->nbatches ? ",\"downloadStatsTruncated\":true" : "");
    }
    es_buf_t errs, uerrs;
    es_buf_init(&errs);
    es_buf_init(&uerrs);
    s_filter_entries(&self->errors, service, NULL, &errs);
    s_filter_entries(&self->uerrors, service, NULL, &uerrs);
    if (errs.len || uerrs.len)
        es_buf_printf(out, ",\"syncErrors\":{\"upload\":[%s],\"download\":[%s]}",
                      uerrs.data ? uerrs.data : "", errs.data ? errs.data : "");
    es_buf_release(&errs);
    es_buf_release(&uerrs);
    if (self->warnings.len)
        es_buf_printf(out, ",\"warnings\":[%s]", self->warnings.data);
    es_buf_putc(out, '}');
}

//  App level (SPEC 4.4): each service's own result, grouped by outcome.
static void
s_app_result(session_t *self, es_buf_t *out)
{
    es_buf_t ok, failed, names;
    es_buf_init(&ok);
    es_buf_init(&failed);
    es_buf_init(&names);
    for (size_t i = 0; i < self->nobjs; i++) {
        const char *svc = self->objs[i].service;
        bool seen = false;
        for (size_t k = 0; k < i; k++)
            seen = seen || strcmp(self->objs[k].service, svc) == 0;
        if (seen)
            continue;
        int32_t code = 0;
        const char *what = NULL;
        for (size_t k = i; k < self->nobjs && !code; k++)
            if (strcmp(self->objs[k].service, svc) == 0 && self->objs[k].code) {
                code = self->objs[k].code;
                what = self->objs[k].what;
            }
        if (!code && self->cancelled) {
            code = 2478;
            what = "Syncing operation has been cancelled";
        }
        es_buf_t *b = code ? &failed : &ok;
        if (b->len)
            es_buf_putc(b, ',');
        es_buf_json_str(b, svc, strlen(svc));
        es_buf_putc(b, ':');
        s_result(self, "service", svc, svc, code, what, b);
        if (code) {
            if (names.len)
                es_buf_putc(&names, ',');
            es_buf_puts(&names, svc);
        }
    }
    const char *oks = ok.data ? ok.data : "", *fails = failed.data ? failed.data : "";
    if (!self->code) {
        es_buf_printf(out, "{\"status\":0,\"successResponse\":{%s}", oks);
    } else {
        self->code = 2460;
        char *msg = es_sprintf("Application Sync failed due to failure in sync of one or more "
                               "object services,[%s]",
                               names.data ? names.data : "");
        es_buf_puts(out, "{\"code\":2460,");
        s_str(out, "message", msg);
        free(msg);
        es_buf_printf(out,
                      ",\"domain\":\"OfflineObjectsError\",\"status\":-1,"
                      "\"userInfo\":{\"successResponse\":{%s},\"failureResponse\":{%s}},"
                      "\"successResponse\":{%s},\"failureResponse\":{%s}",
                      oks, fails, oks, fails);
    }
    if (self->warnings.len)
        es_buf_printf(out, ",\"warnings\":[%s]", self->warnings.data);
    es_buf_putc(out, '}');
    es_buf_release(&ok);
    es_buf_release(&failed);
    es_buf_release(&names);
}

int32_t
orch_session_finish(session_t *self)
{
    es_buf_t out;
    es_buf_init(&out);
    //  One clock read: the Sync/Ended event must report exactly the stats' elapsed time.
    self->elapsed_ms = es_now_ms() - self->start_mono_ms;
    self->end_epoch_ms = es_epoch_ms();
    if (self->code == 0 && self->cancelled) {
        self->code = 2478;
        free(self->what);
        self->what = es_strdup("Syncing operation has been cancelled");
    }
    if (strcmp(self->level, "app") == 0) {
        s_app_result(self, &out);
    } else {
        const char *name = strcmp(self->level, "object") == 0 ? self->object : self->service;
        s_result(self, self->level, name, NULL, self->code, self->what, &out);
    }
    free(self->result);
    self->result = es_buf_steal(&out);
    self->done = true;
    return self->code;
}
