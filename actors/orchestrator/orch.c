//  orch - edgesyncd: sockets, supervision, sessions, dispatch, setup, local reads.
#include "actors/orchestrator/orch.h"
#include "actors/orchestrator/orch_curve.h"
#include "actors/orchestrator/orch_notify.h"
#include "actors/orchestrator/orch_session.h"
#include "actors/orchestrator/orch_super.h"
#include "common/es_actor.h"
#include "common/es_http.h"
#include "common/es_log.h"
#include "common/es_mem.h"
#include "protocol/es_json.h"
#include "protocol/es_key.h"
#include "protocol/es_meta.h"
#include "protocol/es_msg.h"
#include "protocol/es_odata.h"
#include "protocol/es_record.h"
#include "protocol/es_syncopts.h"
#include "protocol/es_vmx.h"
#include "store/es_local.h"
#include "store/es_runs.h"
#include "store/es_store.h"
#include "store/es_svc.h"
#include <assert.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yajl/yajl_tree.h>
#include <zmq.h>

//  A setup in progress: appconfig first, then each service's metadata.
typedef struct {
    bool active;             //  a setup is running
    char route[256];         //  client to answer
    size_t route_len;
    uint64_t request_id;
    char service[ES_NAME_MAX + 1]; //  "" = all
    char **names;            //  services to fetch
    char **urls;             //  their object service URLs
    char **meta_urls;         //  their metadata URLs
    size_t n, next;          //  count, next to fetch
    es_buf_t body;           //  response being received
    es_buf_t done;           //  reply body: {"services":[...]}
} setup_t;

struct orch {
    const es_config_t *config; //  borrowed
    char *data_dir;            //  absolute
    char *cmd_ep, *event_ep, *work_ep;
    void *zctx, *cmd, *pub, *work;
    int cmd_fd, work_fd, sigfd;
    es_store_t *store;
    es_http_t *http;
    orch_super_t *super;
    orch_curve_t *curve;       //  CURVE of network endpoints; NULL when all are ipc://
    orch_notify_t *notify;     //  systemd readiness and watchdog
    session_t *sessions;       //  running and recently finished
    uint64_t next_job;         //  job ids
    uint32_t session_seq;      //  session ids
    bool terminated;
    setup_t setup;
    es_msg_in_t in;            //  receive buffer
    es_buf_t scratch;          //  event/reply text
    es_log_limit_t cmd_bad;    //  malformed messages on the command socket (a peer can flood)
    es_log_limit_t work_bad;   //  malformed messages on the work socket
};

//  --- sockets -------------------------------------------------------------------------------

//  A socket file in a directory that others may write could be replaced by an impostor; a
//  sticky directory (/tmp) keeps others from removing or renaming our file.
static int
s_check_ipc_dir(const char *path, es_err_t *err)
{
    char *dir = es_strdup(path);
    char *slash = strrchr(dir, '/');
    if (!slash)
        snprintf(dir, strlen(dir) + 1, "%s", ".");
    else if (slash == dir)
        slash[1] = '\0';
    else
        *slash = '\0';
    struct stat st;
    int rc = 0;
    if (stat(dir, &st) == -1)
        rc = es_err_set(err, ES_ESYS, "ipc socket directory %s: %s", dir, strerror(errno));
    else if ((st.st_mode & 022) && !(st.st_mode & S_ISVTX))
        rc = es_err_set(err, ES_ECONFIG,
                        "ipc socket directory %s: mode %04o lets group or others replace the "
                        "socket: 'chmod go-w %s'",
                        dir, (unsigned)(st.st_mode & 07777), dir);
    free(dir);
    return rc;
}

static void *
s_socket(orch_t *self, int type, const char *ep, int *fd, es_err_t *err)
{
    void *s = zmq_socket(self->zctx, type);
    int linger = 0;
    int64_t maxmsg = ES_MSG_MAX_SIZE;
    int mandatory = 1;
    if (!s || zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger) ||
        zmq_setsockopt(s, ZMQ_MAXMSGSIZE, &maxmsg, sizeof maxmsg) ||
        (type == ZMQ_ROUTER &&
         zmq_setsockopt(s, ZMQ_ROUTER_MANDATORY, &mandatory, sizeof mandatory))) {
        es_err_set(err, ES_ESYS, "socket %s: %s", ep, zmq_strerror(errno));
        if (s)
            zmq_close(s);
        return NULL;
    }
    //  Network endpoints: CURVE, clients checked against the allow-list by the ZAP handler.
    if (orch_curve_needed(ep)) {
        assert(self->curve); //  orch_new creates it when an endpoint needs it
        if (orch_curve_apply(self->curve, s, type == ZMQ_PUB ? "event" : "command", err)) {
            zmq_close(s);
            return NULL;
        }
    } else if (s_check_ipc_dir(ep + 6, err)) {
        zmq_close(s);
        return NULL;
    }
    //  The command socket is private to local users: bind under a 0077 umask (mode 0600).
    mode_t old = umask(0077);
    int rc = zmq_bind(s, ep);
    umask(old);
    if (rc) {
        es_err_set(err, ES_ESYS, "bind %s: %s", ep, zmq_strerror(errno));
        zmq_close(s);
        return NULL;
    }
    if (strncmp(ep, "ipc://", 6) == 0 && chmod(ep + 6, 0600) == -1) {
        es_err_set(err, ES_ESYS, "chmod %s: %s", ep + 6, strerror(errno));
        zmq_close(s);
        return NULL;
    }
    size_t fdlen = sizeof *fd;
    if (fd && zmq_getsockopt(s, ZMQ_FD, fd, &fdlen)) {
        es_err_set(err, ES_ESYS, "socket %s: %s", ep, zmq_strerror(errno));
        zmq_close(s);
        return NULL;
    }
    return s;
}

static void
s_reply(orch_t *self, const char *route, size_t route_len, uint64_t request_id, int32_t code,
        const char *what, const char *body)
{
    es_msg_t m;
    es_msg_init(&m, ES_MSG_REPLY, request_id);
    m.u.reply.code = code;
    m.u.reply.what = (es_slice_t){what ? what : "", what ? strlen(what) : 0};
    m.u.reply.body = (es_slice_t){body ? body : "", body ? strlen(body) : 0};
    es_err_t err;
    if (es_msg_send(self->cmd, route, route_len, &m, &err))
        es_log_warn("reply %s: %s", es_msg_name(ES_MSG_REPLY), err.what); //  client gone
}

//  Failure object of SPEC 4.4 for an error before any request; the message reads
//  "<generic message>: <details>" as in a failed session's result.
static char *
s_failure_json(int32_t code, const char *message, const char *key, const char *name)
{
    es_buf_t b;
    es_buf_init(&b);
    es_buf_printf(&b, "{\"code\":%d,\"message\":", code);
    char *text = es_vmx_format(code, message);
    es_buf_json_str(&b, text, strlen(text));
    free(text);
    es_buf_printf(&b, ",\"domain\":\"OfflineObjectsError\",\"status\":-1,\"userInfo\":{\"%s\":",
                  key);
    es_buf_json_str(&b, name, strlen(name));
    es_buf_puts(&b, "}}");
    return es_buf_steal(&b);
}

//  --- store helpers ---------------------------------------------------------------------------

typedef struct {
    es_buf_t *out;
    size_t n;
} names_ctx_t;

static int
s_collect_service(void *ctx, const void *key, size_t klen, const void *val, size_t vlen,
                  es_err_t *err)
{
    (void)val, (void)vlen, (void)err;
    names_ctx_t *c = ctx;
    if (klen < 4 || memcmp(key, "svc/", 4) != 0)
        return 1; //  past the svc/ keys
    if (c->n++)
        es_buf_putc(c->out, '\n');
    es_buf_append(c->out, (const char *)key + 4, klen - 4);
    return 0;
}

//  Set-up service names, newline-separated, into out. -1 on store error.
static int
s_services(orch_t *self, es_buf_t *out, size_t *n, es_err_t *err)
{
    es_txn_t *txn = es_store_begin(self->store, false, err);
    if (!txn)
        return -1;
    names_ctx_t c = {out, 0};
    int rc = es_txn_iter(txn, "meta", "svc/", 4, s_collect_service, &c, err);
    es_txn_abort(&txn);
    *n = c.n;
    return rc;
}

//  Batch rows: "<session>/<seq as 8 hex digits>" -> downloadStats entry.
static int
s_batch_key(char *key, size_t size, const char *session, uint32_t seq)
{
    return snprintf(key, size, "%s/%08x", session, seq);
}

typedef struct {
    session_t *s;          //  the session
    const es_buf_t *state; //  its row
    bool finished;         //  drop its batch rows, index it among finished sessions
} persist_t;

#define SESSIONS_KEPT 100 //  finished sessions kept in the store (STATUS answers from them)

typedef struct {
    char key[ES_NAME_MAX + 24]; //  first key of a table
    size_t klen;
    char val[ES_NAME_MAX + 1];  //  its value
    size_t vlen;
} first_t;

static int
s_first_row(void *ctx, const void *key, size_t klen, const void *val, size_t vlen, es_err_t *err)
{
    first_t *f = ctx;
    if (klen > sizeof f->key || vlen > sizeof f->val)
        return es_err_set(err, ES_ESTORE, "store: sdone: malformed entry");
    memcpy(f->key, key, klen);
    memcpy(f->val, val, vlen);
    f->klen = klen;
    f->vlen = vlen;
    return 1;
}

//  The highest order number among the "sdone" keys ("%016llx/<id>"), 0 if none.
static int
s_max_done(void *ctx, const void *key, size_t klen, const void *val, size_t vlen, es_err_t *err)
{
    (void)val, (void)vlen, (void)err;
    uint64_t *max = ctx, v = 0;
    const char *k = key;
    for (size_t i = 0; i < klen && i < 16; i++) {
        int d = k[i] >= '0' && k[i] <= '9'   ? k[i] - '0'
                : k[i] >= 'a' && k[i] <= 'f' ? k[i] - 'a' + 10
                                             : -1;
        if (d < 0)
            return 0; //  not one of ours: ignored
        v = v << 4 | (uint64_t)d;
    }
    if (v > *max)
        *max = v;
    return 0;
}

//  The order number of the next finished session: a counter kept in the store ("metrics" table,
//  SDONE_SEQ_KEY), so the order survives reboots and clock jumps (earlier versions used the time
//  since boot, which restarts at zero: after a reboot the newest sessions sorted first and were
//  pruned at once). Without the counter it starts above every key already there.
#define SDONE_SEQ_KEY "sdone.seq"
static int
s_next_done(es_txn_t *txn, uint64_t *out, es_err_t *err)
{
    const void *val;
    size_t vlen;
    uint64_t seq = 0;
    int rc = es_txn_get(txn, "metrics", SDONE_SEQ_KEY, strlen(SDONE_SEQ_KEY), &val, &vlen, err);
    if (rc < 0)
        return -1;
    if (rc == 1 && vlen == sizeof seq)
        memcpy(&seq, val, sizeof seq);
    else if (es_txn_iter(txn, "sdone", NULL, 0, s_max_done, &seq, err))
        return -1;
    seq++;
    *out = seq;
    return es_txn_put(txn, "metrics", SDONE_SEQ_KEY, strlen(SDONE_SEQ_KEY), &seq, sizeof seq, err);
}

static int
s_persist_fn(es_txn_t *txn, void *ctx, es_err_t *err)
{
    persist_t *p = ctx;
    session_t *s = p->s;
    char key[ES_NAME_MAX + 16];
    if (es_txn_put(txn, "session", s->id, strlen(s->id), p->state->data, p->state->len, err))
        return -1;
    if (!p->finished) {
        //  The batch rows collected since the last write.
        const char *q = s->unsaved.data, *end = q + s->unsaved.len;
        while (q < end) {
            uint32_t seq, len;
            memcpy(&seq, q, 4);
            memcpy(&len, q + 4, 4);
            int n = s_batch_key(key, sizeof key, s->id, seq);
            if (es_txn_put(txn, "sbatch", key, (size_t)n, q + 8, len, err))
                return -1;
            q += 8 + len;
        }
        return 0;
    }
    //  The result holds the stats now: the batch rows go.
    for (uint32_t i = 1; i <= s->nbatches; i++) {
        int n = s_batch_key(key, sizeof key, s->id, i);
        if (es_txn_del(txn, "sbatch", key, (size_t)n, err) < 0)
            return -1;
    }
    //  Finished sessions in the order they ended; the oldest beyond SESSIONS_KEPT are forgotten.
    uint64_t order;
    if (s_next_done(txn, &order, err))
        return -1;
    char idx[ES_NAME_MAX + 24];
    int n = snprintf(idx, sizeof idx, "%016llx/%s", (unsigned long long)order, s->id);
    if (es_txn_put(txn, "sdone", idx, (size_t)n, s->id, strlen(s->id), err))
        return -1;
    int64_t count = es_txn_count(txn, "sdone", err);
    if (count < 0)
        return -1;
    for (; count > SESSIONS_KEPT; count--) {
        first_t f = {{0}, 0, {0}, 0};
        if (es_txn_iter(txn, "sdone", NULL, 0, s_first_row, &f, err))
            return -1;
        if (!f.klen)
            break;
        if (es_txn_del(txn, "session", f.val, f.vlen, err) < 0 ||
            es_txn_del(txn, "sdone", f.key, f.klen, err) < 0)
            return -1;
    }
    return 0;
}

//  Write the session's state (and its batch rows collected so far) in one transaction. The
//  data's own resume point is the actors' ctx rows; this is progress and stats.
static void
s_persist_as(orch_t *self, session_t *s, bool finished)
{
    es_buf_reset(&self->scratch);
    orch_session_to_json(s, &self->scratch);
    persist_t p = {s, &self->scratch, finished};
    es_err_t err;
    if (es_store_write(self->store, s_persist_fn, &p, &err))
        es_log_error("session %s: not persisted: %s", s->id, err.what);
    es_buf_reset(&s->unsaved);
    s->dirty = false;
    s->saved_ms = es_now_ms();
}

static void
s_persist(orch_t *self, session_t *s)
{
    s_persist_as(self, s, false);
}

static void
s_persist_final(orch_t *self, session_t *s)
{
    s_persist_as(self, s, true);
}

//  Batches are frequent: their rows are written at most every SAVE_MS (a durable commit per
//  batch would double the commits of a download); a crash loses at most that much of stats.
#define SAVE_MS 250

static void
s_persist_batch(orch_t *self, session_t *s, const es_buf_t *entry)
{
    uint32_t seq = s->nbatches, len = (uint32_t)entry->len;
    es_buf_append(&s->unsaved, &seq, 4);
    es_buf_append(&s->unsaved, &len, 4);
    es_buf_append(&s->unsaved, entry->data, entry->len);
    s->dirty = true;
    if (es_now_ms() - s->saved_ms >= SAVE_MS)
        s_persist(self, s);
}

static void
s_flush_sessions(orch_t *self, bool all)
{
    int64_t now = es_now_ms();
    for (session_t *s = self->sessions; s; s = s->next)
        if (s->dirty && (all || now - s->saved_ms >= SAVE_MS))
            s_persist(self, s);
}

//  --- events and results -------------------------------------------------------------------

static void
s_publish(orch_t *self, session_t *s, es_msg_type_t type, const char *body, int32_t code)
{
    es_msg_t m;
    es_msg_init(&m, type, s->request_id);
    char topic[ES_NAME_MAX + 16];
    if (type == ES_MSG_EVENT) {
        snprintf(m.u.event.session, sizeof m.u.event.session, "%s", s->id);
        m.u.event.body = (es_slice_t){body, strlen(body)};
        snprintf(topic, sizeof topic, "progress.%s", s->id);
    } else {
        snprintf(m.u.result.session, sizeof m.u.result.session, "%s", s->id);
        m.u.result.code = code;
        m.u.result.body = (es_slice_t){body, strlen(body)};
        snprintf(topic, sizeof topic, "result.%s", s->id);
    }
    es_err_t err;
    es_buf_t frame;
    es_buf_init(&frame);
    //  Encode once, before any frame goes out, so a failure cannot leave half a message.
    if (es_msg_encode(&m, &frame, &err)) {
        es_log_error("session %s: %s not sent: %s", s->id, es_msg_name(type), err.what);
        es_buf_release(&frame);
        return;
    }
    if (s->route_len &&
        (zmq_send(self->cmd, s->route, s->route_len, ZMQ_SNDMORE | ZMQ_DONTWAIT) == -1 ||
         zmq_send(self->cmd, frame.data, frame.len, ZMQ_DONTWAIT) == -1)) {
        es_log_info("session %s: client gone (%s); results stay available by STATUS", s->id,
                    zmq_strerror(errno));
        s->route_len = 0;
    }
    //  PUB: topic frame, then the message frame; dropped when no one listens.
    if (zmq_send(self->pub, topic, strlen(topic), ZMQ_SNDMORE | ZMQ_DONTWAIT) == -1 ||
        zmq_send(self->pub, frame.data, frame.len, ZMQ_DONTWAIT) == -1)
        es_log_debug("publish %s: dropped", topic);
    es_buf_release(&frame);
}

static void
s_event(orch_t *self, session_t *s, const char *phase, const char *state, const char *name,
        const char *extra)
{
    es_buf_t ev;
    es_buf_init(&ev);
    orch_session_event(s, phase, state, name, extra, &ev);
    s_publish(self, s, ES_MSG_EVENT, ev.data, 0);
    es_buf_release(&ev);
}

static const char *
s_entity_name(const session_t *s)
{
    if (strcmp(s->level, "object") == 0)
        return s->object;
    if (strcmp(s->level, "service") == 0)
        return s->service;
    return "application";
}

static void
s_finish_session(orch_t *self, session_t *s)
{
    int32_t code = orch_session_finish(s);
    if (code == 0) {
        char extra[256];
        snprintf(extra, sizeof extra,
                 ",\"syncElapsedTime\":%lld,\"totalUploadedRecords\":%llu,"
                 "\"totalDownloadedRecords\":%llu",
                 (long long)s->elapsed_ms, (unsigned long long)s->uploaded,
                 (unsigned long long)s->downloaded);
        s_event(self, s, "Sync", "Ended", s_entity_name(s), extra);
    }
    s_persist_final(self, s);
    s_publish(self, s, ES_MSG_RESULT, s->result, code);
    es_log_info("session %s: %s (%llu records downloaded)", s->id, code ? "failed" : "succeeded",
                (unsigned long long)s->downloaded);
}

//  --- dispatch --------------------------------------------------------------------------------

static void
s_dispatch(orch_t *self)
{
    for (session_t *s = self->sessions; s; s = s->next) {
        if (s->done)
            continue;
        for (size_t i = 0; i < s->nobjs; i++) {
            sobj_t *o = &s->objs[i];
            if (o->state != SOBJ_PENDING)
                continue;
            if (s->cancelled || s->code) {
                o->state = SOBJ_SKIPPED;
                continue;
            }
            if (orch_session_blocked(s, o))
                continue;
            static const char *kinds[] = {"download", "upload", "reconcile"};
            static const es_msg_type_t types[] = {ES_MSG_DOWNLOAD, ES_MSG_UPLOAD,
                                                  ES_MSG_RECONCILE};
            actor_t *a = orch_super_idle(self->super, kinds[o->kind]);
            if (!a)
                continue; //  no free worker of that kind; later sessions may have finished
            //  DOWNLOAD, UPLOAD and RECONCILE bodies have the same fields.
            es_msg_t m;
            es_msg_init(&m, types[o->kind], 0);
            es_download_t dl;
            es_download_t *d = &dl;
            memset(d, 0, sizeof *d);
            snprintf(d->session, sizeof d->session, "%s", s->id);
            d->job = ++self->next_job;
            snprintf(d->service, sizeof d->service, "%s", o->service);
            snprintf(d->object, sizeof d->object, "%s", o->name);
            //  The session keeps {service: normalised options}; the job gets its service's.
            es_buf_reset(&self->scratch);
            yajl_val all = yajl_tree_parse(s->options, NULL, 0);
            const char *path[] = {o->service, NULL};
            yajl_val mine = all ? yajl_tree_get(all, path, yajl_t_object) : NULL;
            if (mine)
                es_json_write(&self->scratch, mine);
            else
                es_buf_puts(&self->scratch, "{}");
            yajl_tree_free(all);
            d->options = (es_slice_t){self->scratch.data, self->scratch.len};
            if (o->kind == SOBJ_UPLOAD) {
                es_upload_t *u = &m.u.upload;
                memcpy(u->session, d->session, sizeof u->session);
                u->job = d->job;
                memcpy(u->service, d->service, sizeof u->service);
                memcpy(u->object, d->object, sizeof u->object);
                u->options = d->options;
            } else if (o->kind == SOBJ_RECONCILE) {
                es_reconcile_t *r = &m.u.reconcile;
                memcpy(r->session, d->session, sizeof r->session);
                r->job = d->job;
                memcpy(r->service, d->service, sizeof r->service);
                memcpy(r->object, d->object, sizeof r->object);
                r->options = d->options;
            } else {
                m.u.download = *d;
            }
            es_err_t err;
            if (es_msg_send(self->work, a->route, strlen(a->route), &m, &err)) {
                es_log_warn("dispatch to %s: %s", a->route, err.what);
                break;
            }
            a->job = d->job;
            o->job = d->job;
            o->state = SOBJ_RUNNING;
            o->attempts++;
        }
        if (orch_session_finished(s))
            s_finish_session(self, s);
    }
    //  Keep the newest few finished sessions in memory; STATUS reads older ones from the store.
    size_t done = 0;
    for (session_t **pp = &self->sessions; *pp;) {
        session_t *s = *pp;
        if (s->done && ++done > 16) {
            *pp = s->next;
            orch_session_destroy(&s);
        } else {
            pp = &s->next;
        }
    }
}

static session_t *
s_session_by_job(orch_t *self, uint64_t job, sobj_t **obj)
{
    for (session_t *s = self->sessions; s; s = s->next)
        for (size_t i = 0; i < s->nobjs; i++)
            if (s->objs[i].job == job && s->objs[i].state == SOBJ_RUNNING) {
                *obj = &s->objs[i];
                return s;
            }
    return NULL;
}

static void s_cancel_jobs(orch_t *self, session_t *s);

//  Restarts are counted here, where they happen, in the store ("metrics" table, key
//  "restarts.<kind>", u64), so the count survives any process; es-stats exports it.
static int
s_count_restart(es_txn_t *txn, void *ctx, es_err_t *err)
{
    const actor_t *a = ctx;
    char key[ES_KIND_MAX + 16];
    int klen = snprintf(key, sizeof key, "restarts.%s", a->kind);
    const void *val;
    size_t vlen;
    uint64_t n = 0;
    int rc = es_txn_get(txn, "metrics", key, (size_t)klen, &val, &vlen, err);
    if (rc < 0)
        return -1;
    if (rc == 1 && vlen == sizeof n)
        memcpy(&n, val, sizeof n);
    n++;
    return es_txn_put(txn, "metrics", key, (size_t)klen, &n, sizeof n, err);
}

static void
s_on_actor_down(void *ctx, actor_t *actor, uint64_t job)
{
    orch_t *self = ctx;
    es_err_t err;
    if (es_store_write(self->store, s_count_restart, actor, &err))
        es_log_warn("%s: restart not counted: %s", actor->route, err.what);
    if (!job)
        return;
    sobj_t *o;
    session_t *s = s_session_by_job(self, job, &o);
    if (!s)
        return;
    //  The actor resumes from its last committed batch (D15); give up after repeated crashes.
    if (o->attempts >= 10) {
        char *what = es_sprintf("%s of %s%s%s crashed %u times without progress",
                                o->kind == SOBJ_UPLOAD      ? "upload"
                                : o->kind == SOBJ_RECONCILE ? "reconciliation"
                                                            : "download",
                                o->service, o->name[0] ? "/" : "", o->name, o->attempts);
        bool first = !s->code;
        orch_session_fail_object(s, o, 2460, what, strlen(what));
        free(what);
        if (first)
            s_cancel_jobs(self, s);
    } else {
        o->state = SOBJ_PENDING;
    }
    o->job = 0;
    s_persist(self, s);
}

//  --- messages from actors -------------------------------------------------------------------

static void
s_on_progress(orch_t *self, const es_progress_t *p)
{
    session_t *s;
    for (s = self->sessions; s; s = s->next)
        if (strcmp(s->id, p->session) == 0 && !s->done)
            break;
    if (!s)
        return;
    sobj_t *o = NULL;
    for (size_t i = 0; i < s->nobjs; i++)
        if (s->objs[i].job == p->job)
            o = &s->objs[i];
    if (!o)
        return; //  a late message of a job that was re-dispatched
    //  A committed step is progress: the crash-loop count starts again.
    if (strcmp(p->state, "Ended") == 0 || o->kind == SOBJ_RECONCILE)
        o->attempts = 0;
    //  A reconciliation page is not one of the documented events (D9): count, don't publish.
    if (strcmp(p->phase, "Reconcile") == 0 && strcmp(p->state, "InProgress") == 0)
        return;
    //  SPEC 4.1: "name" is the object at object level, the service at service level; the object
    //  is always in "object" too, since objects of a service run in parallel here.
    es_buf_t extra;
    es_buf_init(&extra);
    es_buf_puts(&extra, ",\"objectService\":");
    es_buf_json_str(&extra, o->service, strlen(o->service));
    if (o->name[0]) {
        es_buf_puts(&extra, ",\"object\":");
        es_buf_json_str(&extra, o->name, strlen(o->name));
    }
    es_buf_printf(&extra, ",\"batchNumber\":%u", p->batch);
    //  What the stats actor turns into metrics and the run history (not in SPEC 4.1; extra keys).
    if (strcmp(p->state, "Ended") == 0 &&
        (strcmp(p->phase, "Upload") == 0 || strcmp(p->phase, "Download") == 0))
        es_buf_printf(&extra, ",\"batchRecords\":%u,\"batchBytes\":%llu,\"batchMs\":%llu,"
                      "\"batchRetries\":%u",
                      p->records, (unsigned long long)p->bytes,
                      (unsigned long long)p->request_ms + p->network_ms + p->parse_ms +
                          p->persist_ms,
                      p->retries);
    if (strcmp(p->state, "Ended") == 0 && strcmp(p->phase, "Upload") == 0) {
        o->batches = p->batch;
        o->records += p->records;
        es_buf_t entry;
        es_buf_init(&entry);
        orch_session_batch(s, o, p, &entry);
        s_persist_batch(self, s, &entry);
        es_buf_release(&entry);
        es_buf_printf(&extra, ",\"totalUploadedRecords\":%llu", (unsigned long long)s->uploaded);
    } else if (strcmp(p->phase, "Reconcile") == 0) {
        if (strcmp(p->state, "Ended") == 0)
            es_buf_printf(&extra, ",\"reconciledDeletes\":%u", p->records);
    } else if (strcmp(p->state, "InProgress") == 0 && strcmp(p->phase, "Upload") == 0) {
        es_buf_printf(&extra, ",\"totalRecordsToUpload\":%u", p->records);
    } else if (strcmp(p->state, "Ended") == 0 && strcmp(p->phase, "Download") == 0) {
        o->batches = p->batch;
        o->records += p->records;
        es_buf_t entry;
        es_buf_init(&entry);
        orch_session_batch(s, o, p, &entry);
        s_persist_batch(self, s, &entry);
        es_buf_release(&entry);
        es_buf_printf(&extra,
                      ",\"totalDownloadedRecords\":%llu,\"objectDownloadedRecords\":%llu%s",
                      (unsigned long long)s->downloaded, (unsigned long long)o->records,
                      p->last ? ",\"lastBatch\":true" : "");
    }
    const char *name = strcmp(s->level, "object") == 0 ? p->object : o->service;
    s_event(self, s, p->phase, p->state, name, extra.data);
    es_buf_release(&extra);
}

//  Stop the other running jobs of a failed or cancelled session after their batch in flight.
static void
s_cancel_jobs(orch_t *self, session_t *s)
{
    es_msg_t m;
    es_msg_init(&m, ES_MSG_CANCEL, 0);
    snprintf(m.u.cancel.session, sizeof m.u.cancel.session, "%s", s->id);
    for (size_t i = 0; i < s->nobjs; i++) {
        actor_t *a = s->objs[i].state == SOBJ_RUNNING
                         ? orch_super_by_job(self->super, s->objs[i].job)
                         : NULL;
        es_err_t err;
        if (a && es_msg_send(self->work, a->route, strlen(a->route), &m, &err))
            es_log_warn("cancel to %s: %s", a->route, err.what);
    }
}

static void
s_on_job_done(orch_t *self, actor_t *a, const es_job_done_t *d)
{
    if (a->job == d->job)
        a->job = 0;
    sobj_t *o;
    session_t *s = s_session_by_job(self, d->job, &o);
    if (!s)
        return;
    o->job = 0;
    if (d->code == 0) {
        o->state = SOBJ_DONE;
    } else if (d->code == 2478) {
        o->state = SOBJ_SKIPPED;
        s->cancelled = true;
    } else {
        bool first = !s->code;
        orch_session_fail_object(s, o, d->code, d->what.ptr, d->what.len);
        if (first)
            s_cancel_jobs(self, s); //  the session fails: stop the others after their batch
    }
    //  {"syncErrors":[...],"warnings":[...]} fragments from the actor.
    if (d->result.len) {
        char *text = es_strndup(d->result.ptr, d->result.len);
        yajl_val root = yajl_tree_parse(text, NULL, 0);
        const char *ep[] = {"syncErrors", NULL}, *wp[] = {"warnings", NULL};
        const char *up[] = {"upload", NULL}, *rp[] = {"replays", NULL};
        yajl_val errs = root ? yajl_tree_get(root, ep, yajl_t_array) : NULL;
        yajl_val warns = root ? yajl_tree_get(root, wp, yajl_t_array) : NULL;
        yajl_val uerrs = root ? yajl_tree_get(root, up, yajl_t_array) : NULL;
        yajl_val replays = root ? yajl_tree_get(root, rp, yajl_t_number) : NULL;
        if (uerrs && uerrs->u.array.len) {
            if (s->uerrors.len)
                es_buf_putc(&s->uerrors, ',');
            es_json_write_elements(&s->uerrors, uerrs);
        }
        if (replays && YAJL_IS_INTEGER(replays))
            s->replays += (uint32_t)YAJL_GET_INTEGER(replays);
        //  The actor's own count is exact even when progress messages died with a process.
        const char *cp[] = {"records", NULL};
        yajl_val count = root ? yajl_tree_get(root, cp, yajl_t_number) : NULL;
        if (count && YAJL_IS_INTEGER(count) && o->kind == SOBJ_DOWNLOAD && d->code == 0) {
            uint64_t n = (uint64_t)YAJL_GET_INTEGER(count);
            s->downloaded = s->downloaded - o->records + n;
            o->records = n;
        }
        const char *dp[] = {"reconciledDeletes", NULL};
        yajl_val deletes = root ? yajl_tree_get(root, dp, yajl_t_number) : NULL;
        if (deletes && YAJL_IS_INTEGER(deletes) && o->kind == SOBJ_RECONCILE) {
            o->records = (uint64_t)YAJL_GET_INTEGER(deletes);
            s->reconciled += o->records;
        }
        if (errs && errs->u.array.len) {
            if (s->errors.len)
                es_buf_putc(&s->errors, ',');
            es_json_write_elements(&s->errors, errs);
        }
        if (warns && warns->u.array.len) {
            if (s->warnings.len)
                es_buf_putc(&s->warnings, ',');
            es_json_write_elements(&s->warnings, warns);
        }
        yajl_tree_free(root);
        free(text);
    }
    s_persist(self, s);
}

static void
s_on_work(orch_t *self)
{
    for (;;) {
        es_err_t err;
        int rc = es_msg_recv(self->work, true, &self->in, &err);
        if (rc == 0)
            return;
        if (rc < 0) {
            if (err.code == ES_ESYS) {
                es_log_warn("work socket: %s", err.what);
                return;
            }
            if (es_log_limit_allow(&self->work_bad, es_now_ms()))
                es_log_warn("work socket: dropped a malformed message: %s", err.what);
            continue;
        }
        const es_msg_t *m = &self->in.msg;
        actor_t *a = orch_super_seen(self->super, self->in.route, self->in.route_len, m);
        if (!a)
            continue;
        if (m->type == ES_MSG_PROGRESS)
            s_on_progress(self, &m->u.progress);
        else if (m->type == ES_MSG_JOB_DONE)
            s_on_job_done(self, a, &m->u.job_done);
        else if (m->type != ES_MSG_HELLO && m->type != ES_MSG_HEARTBEAT)
            es_log_warn("%s: unexpected %s", a->route, es_msg_name(m->type));
    }
}

//  --- commands --------------------------------------------------------------------------------

typedef struct {
    const char *route;
    size_t route_len;
    uint64_t request_id;
} client_t;

static void
s_fail(orch_t *self, const client_t *c, int32_t code, const char *message, const char *key,
       const char *name)
{
    char *body = s_failure_json(code, message, key, name);
    s_reply(self, c->route, c->route_len, c->request_id, code, message, body);
    free(body);
}

//  Validate one service's options (object level: that object; service level: all objects),
//  note flags on the session, append the normalised options (service-level shape, which actors
//  parse) to norm and return the sync type. -1 with *code and err on invalid options.
static int
s_check_options(session_t *s, const es_meta_t *meta, const char *object, const char *options,
                es_buf_t *norm, es_sync_type_t *type, bool *reconcile, int32_t *code,
                es_err_t *err)
{
    const char **names = es_malloc((meta->nobjects + 1) * sizeof *names);
    size_t n = 0;
    if (object)
        names[n++] = object;
    else
        for (size_t i = 0; i < meta->nobjects; i++)
            names[n++] = meta->objects[i].name;
    es_syncopts_t o;
    int vmx = 0;
    int rc = es_syncopts_parse(&o, options, strlen(options),
                               object ? ES_SYNCOPTS_OBJECT : ES_SYNCOPTS_SERVICE,
                               (const char *const *)names, n, err, &vmx);
    free(names);
    if (rc) {
        *code = vmx ? vmx : 2304;
        return -1;
    }
    s->get_stats = s->get_stats || o.get_sync_stats;
    snprintf(s->sync_type, sizeof s->sync_type, "%s", es_syncopts_type_name(o.sync_type));
    *type = o.sync_type;
    *reconcile = o.reconcile;
    for (size_t i = 0; i < o.nwarnings; i++) {
        if (s->warnings.len)
            es_buf_putc(&s->warnings, ',');
        es_buf_json_str(&s->warnings, o.warnings[i], strlen(o.warnings[i]));
    }
    //  D4: a filter our OData parser refuses is dropped (the object downloads unfiltered), and
    //  the result says which object and why.
    for (size_t i = 0; i < o.nfilters;) {
        es_err_t ferr;
        es_odata_t *f = es_odata_new(o.filters[i].value, es_meta_object(meta, o.filters[i].key),
                                     &ferr);
        if (f) {
            es_odata_destroy(&f);
            i++;
            continue;
        }
        char *w = es_sprintf("filter for '%s' ignored, every record is downloaded: %s",
                             o.filters[i].key, ferr.what);
        if (s->warnings.len)
            es_buf_putc(&s->warnings, ',');
        es_buf_json_str(&s->warnings, w, strlen(w));
        free(w);
        free(o.filters[i].key);
        free(o.filters[i].value);
        memmove(&o.filters[i], &o.filters[i + 1], (o.nfilters - i - 1) * sizeof o.filters[0]);
        o.nfilters--;
    }
    o.level = ES_SYNCOPTS_SERVICE;
    es_syncopts_to_json(&o, norm);
    es_syncopts_release(&o);
    return 0;
}

//  Names from clients: non-empty, no control characters (they end up in keys and JSON).
static bool
s_valid_name(const char *name)
{
    if (!*name)
        return false;
    for (const unsigned char *p = (const unsigned char *)name; *p; p++)
        if (*p < 0x20 || *p == 0x7f)
            return false;
    return true;
}

//  A session id that does not repeat across restarts, even on a gateway without a clock.
static void
s_session_id(char *id, size_t size)
{
    uint64_t r = 0;
    if (getrandom(&r, sizeof r, 0) != (ssize_t)sizeof r)
        r = (uint64_t)es_now_ms() ^ ((uint64_t)getpid() << 32); //  no entropy yet: still unique
    snprintf(id, size, "s%016llx", (unsigned long long)r);
}

static void
s_cmd_sync(orch_t *self, const client_t *c, const es_sync_t *req)
{
    const char *level = req->level;
    bool app = strcmp(level, "app") == 0, svc = strcmp(level, "service") == 0,
         obj = strcmp(level, "object") == 0;
    const char *key = obj ? "objectName" : app ? "name" : "objectServiceName";
    const char *name = obj ? req->object : app ? "application" : req->service;
    if (!app && !svc && !obj)
        return s_fail(self, c, 2460, "SYNC.level: expected app, service or object", key, "");
    if (!app && !s_valid_name(req->service))
        return s_fail(self, c, 2401, "Object service name is null, empty or invalid", key, name);
    if (obj && !s_valid_name(req->object))
        return s_fail(self, c, 2400, "Object name is null, empty or invalid", key, name);
    char *options = es_strndup(req->options.len ? req->options.ptr : "{}",
                               req->options.len ? req->options.len : 2);
    es_err_t err;
    es_buf_t names, norm;
    es_buf_init(&names);
    es_buf_init(&norm);
    es_syncopts_app_t appo;
    memset(&appo, 0, sizeof appo);
    session_t *s = NULL;
    size_t nservices = 0;
    if (app) {
        if (s_services(self, &names, &nservices, &err)) {
            s_fail(self, c, 2000, err.what, key, name);
            goto done;
        }
        if (nservices == 0) {
            s_fail(self, c, 2483, "Setup is not performed. There are no object services to sync.",
                   key, name);
            goto done;
        }
    } else {
        es_buf_puts(&names, req->service);
        nservices = 1;
    }
    //  Service names, as an array for the app options parser.
    const char **snames = es_calloc(nservices + 1, sizeof *snames);
    size_t k = 0;
    char *save = NULL;
    for (char *n = strtok_r(names.data, "\n", &save); n && k < nservices;
         n = strtok_r(NULL, "\n", &save))
        snames[k++] = n;
    char id[ES_NAME_MAX + 1];
    s_session_id(id, sizeof id);
    s = orch_session_new(id, level, app ? "" : req->service, obj ? req->object : "", "{}");
    if (app) {
        //  Each service's options come from objectServicesOptions (SPEC 2.3).
        int vmx = 0;
        if (es_syncopts_app_parse(&appo, options, strlen(options), (const char *const *)snames,
                                  k, &err, &vmx)) {
            s_fail(self, c, vmx ? vmx : 2482, err.what, key, name);
            goto done_names;
        }
        for (size_t i = 0; i < appo.nwarnings; i++) {
            if (s->warnings.len)
                es_buf_putc(&s->warnings, ',');
            es_buf_json_str(&s->warnings, appo.warnings[i], strlen(appo.warnings[i]));
        }
        s->sequential = appo.sync_mode == ES_SYNC_MODE_SEQUENTIAL;
    }
    es_buf_putc(&norm, '{');
    for (size_t si = 0; si < k; si++) {
        const char *svc_name = snames[si];
        es_meta_t *meta = es_svc_meta(self->store, svc_name, &err);
        if (!meta) {
            s_fail(self, c, err.code == ES_ENOTFOUND ? 2483 : 2000, err.what, key, name);
            goto done_names;
        }
        if (obj && !es_meta_object(meta, req->object)) {
            char *msg = es_sprintf("object '%s' is not an object of service '%s'", req->object,
                                   svc_name);
            s_fail(self, c, 2400, msg, key, name);
            free(msg);
            es_meta_destroy(&meta);
            goto done_names;
        }
        const char *sopts = app ? "{}" : options;
        for (size_t i = 0; app && i < appo.nservices; i++)
            if (strcmp(appo.services[i].key, svc_name) == 0)
                sopts = appo.services[i].value;
        if (norm.len > 1)
            es_buf_putc(&norm, ',');
        es_buf_json_str(&norm, svc_name, strlen(svc_name));
        es_buf_putc(&norm, ':');
        int32_t code = 0;
        es_sync_type_t type;
        bool reconcile;
        if (s_check_options(s, meta, obj ? req->object : NULL, sopts, &norm, &type, &reconcile,
                            &code, &err)) {
            //  At app level, say whose options were wrong.
            if (app) {
                char what[sizeof err.what];
                memcpy(what, err.what, sizeof what);
                es_err_set(&err, err.code, "%.180s (objectServicesOptions.%.60s)", what,
                           svc_name);
            }
            s_fail(self, c, code, err.what, key, name);
            es_meta_destroy(&meta);
            goto done_names;
        }
        //  Upload (upload-cache replay, then pending changes) precedes the downloads of the
        //  same objects (SPEC 3.1); downloadOnly skips it, uploadOnly skips the downloads.
        if (type != ES_SYNC_DOWNLOAD_ONLY)
            orch_session_add_upload(s, svc_name, obj ? req->object : "");
        for (size_t i = 0; i < meta->nobjects; i++) {
            if (obj && strcmp(meta->objects[i].name, req->object) != 0)
                continue;
            orch_session_add_object(s, svc_name, meta->objects[i].name);
            if (type == ES_SYNC_UPLOAD_ONLY)
                s->objs[s->nobjs - 1].state = SOBJ_SKIPPED;
            //  Key-set reconciliation after each object's download (D6).
            else if (reconcile)
                orch_session_add_reconcile(s, svc_name, meta->objects[i].name);
        }
        es_meta_destroy(&meta);
    }
    es_buf_putc(&norm, '}');
    //  Options are valid: now the concurrency check (SPEC 2.2 takes the lock last).
    for (session_t *o = self->sessions; o; o = o->next)
        if (!o->done && orch_session_overlaps(o, level, req->service, req->object)) {
            char *msg = es_sprintf("Sync is currently in progress for this object or object "
                                   "service: session %s",
                                   o->id);
            s_fail(self, c, 2461, msg, key, name);
            free(msg);
            goto done_names;
        }
    free(s->options);
    s->options = es_buf_steal(&norm);
    memcpy(s->route, c->route, c->route_len);
    s->route_len = c->route_len;
    s->request_id = c->request_id;
    s->next = self->sessions;
    self->sessions = s;
    char body[ES_NAME_MAX + 32];
    snprintf(body, sizeof body, "{\"session\":\"%s\"}", s->id);
    s_reply(self, c->route, c->route_len, c->request_id, 0, "", body);
    es_buf_t extra;
    es_buf_init(&extra);
    size_t nobjects = 0;
    for (size_t i = 0; i < s->nobjs; i++)
        nobjects += s->objs[i].kind == SOBJ_DOWNLOAD;
    es_buf_printf(&extra, ",\"startTime\":%lld,\"totalObjectsToSync\":%zu,\"objects\":[",
                  (long long)s->start_epoch_ms, nobjects);
    for (size_t i = 0, n = 0; i < s->nobjs; i++) {
        if (s->objs[i].kind != SOBJ_DOWNLOAD)
            continue;
        if (n++)
            es_buf_putc(&extra, ',');
        es_buf_json_str(&extra, s->objs[i].name, strlen(s->objs[i].name));
    }
    es_buf_putc(&extra, ']');
    s_event(self, s, "Sync", "Started", s_entity_name(s), extra.data);
    es_buf_release(&extra);
    s_persist(self, s);
    es_log_info("session %s: %s sync of %s%s%s (%s, %zu objects)", s->id, level,
                app ? "all services" : req->service, obj ? "/" : "", obj ? req->object : "",
                s->sync_type, s->nobjs);
    s = NULL; //  the list owns it now
    s_dispatch(self);
done_names:
    free(snames);
done:
    orch_session_destroy(&s);
    es_syncopts_app_release(&appo);
    es_buf_release(&norm);
    es_buf_release(&names);
    free(options);
}

static void
s_cmd_cancel(orch_t *self, const client_t *c, const es_cancel_t *req)
{
    for (session_t *s = self->sessions; s; s = s->next)
        if (strcmp(s->id, req->session) == 0 && !s->done) {
            s->cancelled = true;
            //  Running jobs finish their batch in flight, then stop (D13).
            s_cancel_jobs(self, s);
            s_persist(self, s);
            s_reply(self, c->route, c->route_len, c->request_id, 0, "", "{\"cancelled\":true}");
            s_dispatch(self);
            return;
        }
    s_reply(self, c->route, c->route_len, c->request_id, 2479,
            "Sync cancellation failed: no running session with that id", "");
}

//  --- local operations (CRUD, pending, rollback, clear, markForUpload) ------------------------

typedef struct {
    const es_local_t *req;          //  the request
    const es_meta_t *meta;          //  its service's metadata
    const es_meta_object_t *obj;    //  its object, or NULL for every object
    es_local_opts_t opts;           //  CRUD options
    es_buf_t *reply;                //  reply body
} local_t;

static int
s_local_fn(es_txn_t *txn, void *ctx, es_err_t *err)
{
    local_t *l = ctx;
    const es_local_t *r = l->req;
    const char *op = r->op;
    es_buf_reset(l->reply);
    int64_t n = 0;
    if (strcmp(op, "create") == 0) {
        es_buf_t pk;
        es_buf_init(&pk);
        int rc = es_local_create(txn, l->meta, l->obj, r->record.ptr, r->record.len, &l->opts,
                                 &pk, err);
        if (rc == 0)
            es_buf_printf(l->reply, "{\"pk\":%s}", pk.data ? pk.data : "{}");
        es_buf_release(&pk);
        return rc;
    } else if (strcmp(op, "update") == 0 || strcmp(op, "partialupdate") == 0) {
        if (es_local_update(txn, l->meta, l->obj, r->pk.ptr, r->pk.len, r->record.ptr,
                            r->record.len, op[0] == 'p', &l->opts, err))
            return -1;
    } else if (strcmp(op, "delete") == 0) {
        if (es_local_delete(txn, l->meta, l->obj, r->pk.ptr, r->pk.len, &l->opts, err))
            return -1;
    } else if (strcmp(op, "pending") == 0) {
        return es_local_pending(txn, l->meta, l->obj, l->reply, err);
    } else if (strcmp(op, "rollback") == 0) {
        if ((n = es_local_rollback(txn, l->meta, l->obj, r->pk.ptr, r->pk.len, err)) < 0)
            return -1;
        es_buf_printf(l->reply, "{\"rolledBack\":%lld}", (long long)n);
        return 0;
    } else if (strcmp(op, "clear") == 0) {
        if ((n = es_local_clear(txn, l->meta, l->obj, r->pk.ptr, r->pk.len, err)) < 0)
            return -1;
        es_buf_printf(l->reply, "{\"cleared\":%lld}", (long long)n);
        return 0;
    } else if (strcmp(op, "markforupload") == 0) {
        if ((n = es_local_mark_for_upload(txn, l->meta, l->obj, err)) < 0)
            return -1;
        es_buf_printf(l->reply, "{\"marked\":%lld}", (long long)n);
        return 0;
    }
    es_buf_puts(l->reply, "{}");
    return 0;
}

//  Volt MX code of a local operation's error.
static int32_t
s_local_code(const char *op, const es_err_t *err)
{
    if (strstr(err->what, "deferred"))
        return 2314;
    if (strstr(err->what, "key columns cannot"))
        return 2303;
    if (err->code == ES_EBUSY) //  a change in a cached upload request: sync first
        return 2461;
    if (strcmp(op, "rollback") == 0)
        return 2471;
    if (strcmp(op, "clear") == 0)
        return 2480;
    if (strcmp(op, "pending") == 0)
        return 2481;
    return err->code == ES_ESTORE ? 2000 : err->code;
}

static void
s_cmd_local(orch_t *self, const client_t *c, const es_local_t *req)
{
    static const char *ops[] = {"create",  "update", "partialupdate", "delete",
                                "pending", "rollback", "clear",       "markforupload"};
    bool known = false, crud = false;
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++)
        if (strcmp(req->op, ops[i]) == 0) {
            known = true;
            crud = i < 4;
        }
    if (!known)
        return s_reply(self, c->route, c->route_len, c->request_id, ES_EINVAL,
                       "LOCAL.op: expected create, update, partialupdate, delete, pending, "
                       "rollback, clear or markforupload",
                       "");
    bool all_services = strcmp(req->op, "rollback") == 0 && !req->service[0];
    if (!all_services && !s_valid_name(req->service))
        return s_reply(self, c->route, c->route_len, c->request_id, 2401,
                       "Object service name is null, empty or invalid", "");
    if ((crud && !s_valid_name(req->object)) || (req->object[0] && !s_valid_name(req->object)))
        return s_reply(self, c->route, c->route_len, c->request_id, 2400,
                       "Object name is null, empty or invalid", "");
    //  Rollback and clear rewrite what a running sync is working on: refuse (D12).
    if (strcmp(req->op, "rollback") == 0 || strcmp(req->op, "clear") == 0)
        for (session_t *s = self->sessions; s; s = s->next)
            if (!s->done && orch_session_overlaps(s, all_services ? "app" : "service",
                                                  req->service, "")) {
                char *msg = es_sprintf("%s: a sync is running on this entity (session %s)",
                                       req->op, s->id);
                s_reply(self, c->route, c->route_len, c->request_id, 2461, msg, "");
                free(msg);
                return;
            }
    es_buf_t names, reply, total;
    es_buf_init(&names);
    es_buf_init(&reply);
    es_buf_init(&total);
    es_err_t err;
    size_t nservices = 0;
    if (all_services) {
        if (s_services(self, &names, &nservices, &err)) {
            s_reply(self, c->route, c->route_len, c->request_id, 2000, err.what, "");
            goto done;
        }
    } else {
        es_buf_puts(&names, req->service);
    }
    int64_t rolled = 0;
    char *save = NULL;
    for (char *svc = strtok_r(names.data, "\n", &save); svc; svc = strtok_r(NULL, "\n", &save)) {
        es_meta_t *meta = es_svc_meta(self->store, svc, &err);
        if (!meta) {
            s_reply(self, c->route, c->route_len, c->request_id,
                    err.code == ES_ENOTFOUND ? 2483 : 2000, err.what, "");
            goto done;
        }
        local_t l = {req, meta, NULL, {0}, &reply};
        es_local_opts_init(&l.opts);
        int rc = 0;
        if (req->object[0] && !(l.obj = es_meta_object(meta, req->object)))
            rc = es_err_set(&err, ES_ENOTFOUND, "object '%s' is not an object of service '%s'",
                            req->object, svc);
        if (rc == 0 && req->options.len)
            rc = es_local_opts_parse(&l.opts, req->options.ptr, req->options.len, &err);
        if (rc == 0)
            rc = es_store_write(self->store, s_local_fn, &l, &err);
        es_meta_destroy(&meta);
        if (rc) {
            s_reply(self, c->route, c->route_len, c->request_id,
                    err.code == ES_ENOTFOUND && !l.obj && req->object[0] ? 2400
                                                                          : s_local_code(req->op, &err),
                    err.what, "");
            goto done;
        }
        if (all_services) {
            //  {"rolledBack":N} per service: add them up.
            const char *p = strchr(reply.data, ':');
            rolled += p ? strtoll(p + 1, NULL, 10) : 0;
        }
    }
    if (all_services) {
        es_buf_reset(&reply);
        es_buf_printf(&reply, "{\"rolledBack\":%lld}", (long long)rolled);
    }
    s_reply(self, c->route, c->route_len, c->request_id, 0, "", reply.data ? reply.data : "{}");
done:
    es_buf_release(&names);
    es_buf_release(&reply);
    es_buf_release(&total);
}

static void
s_cmd_status(orch_t *self, const client_t *c, const es_status_t *req)
{
    es_buf_t b;
    es_buf_init(&b);
    if (req->session[0]) {
        session_t *s;
        for (s = self->sessions; s; s = s->next)
            if (strcmp(s->id, req->session) == 0)
                break;
        if (s) {
            orch_session_to_json(s, &b);
        } else {
            //  A session of an earlier daemon: answer from the store.
            es_err_t err;
            es_txn_t *txn = es_store_begin(self->store, false, &err);
            const void *val;
            size_t vlen;
            int rc = txn ? es_txn_get(txn, "session", req->session, strlen(req->session), &val,
                                      &vlen, &err)
                         : -1;
            if (rc == 1)
                es_buf_append(&b, val, vlen);
            es_txn_abort(&txn);
            if (rc != 1) {
                s_reply(self, c->route, c->route_len, c->request_id, ES_ENOTFOUND,
                        rc == 0 ? "no such session" : err.what, "");
                es_buf_release(&b);
                return;
            }
        }
    } else {
        es_buf_printf(&b, "{\"pid\":%d,\"dataDir\":", (int)getpid());
        es_buf_json_str(&b, self->data_dir, strlen(self->data_dir));
        es_buf_puts(&b, ",\"actors\":");
        orch_super_json(self->super, &b);
        es_buf_puts(&b, ",\"sessions\":[");
        size_t n = 0;
        for (session_t *s = self->sessions; s; s = s->next) {
            es_buf_printf(&b, "%s{\"id\":\"%s\",\"level\":\"%s\",\"entity\":", n++ ? "," : "",
                          s->id, s->level);
            const char *e = s_entity_name(s);
            es_buf_json_str(&b, e, strlen(e));
            es_buf_printf(&b, ",\"state\":\"%s\",\"downloaded\":%llu}",
                          s->done ? "done" : "running", (unsigned long long)s->downloaded);
        }
        es_buf_puts(&b, "]}");
    }
    s_reply(self, c->route, c->route_len, c->request_id, 0, "", b.data);
    es_buf_release(&b);
}

//  A GET reply stays under this so it fits one message; the client asks for the next page.
#define GET_PAGE_BYTES (3u << 20)

typedef struct {
    es_buf_t *out;            //  reply being built
    size_t n;                 //  records in it
    size_t limit;             //  0 = no limit
    const es_odata_t *filter; //  or NULL
    const es_buf_t *after;    //  skip this key (the previous page's last)
    es_buf_t last;            //  key of the last record added
    bool more;                //  stopped at the page size
} get_ctx_t;

static int
s_get_row(void *ctx, const void *key, size_t klen, const void *val, size_t vlen, es_err_t *err)
{
    get_ctx_t *g = ctx;
    if (g->after && g->after->len == klen && memcmp(g->after->data, key, klen) == 0)
        return 0;
    if (g->out->len > GET_PAGE_BYTES) {
        g->more = true;
        return 1;
    }
    const char *cs;
    size_t cslen, rlen;
    const void *rec;
    if (es_store_rec_unpack(val, vlen, &cs, &cslen, &rec, &rlen))
        return es_err_set(err, ES_ESTORE, "store: corrupt record");
    if (g->filter && !es_odata_match_record(g->filter, rec, rlen))
        return 0;
    if (g->n++)
        es_buf_putc(g->out, ',');
    if (es_record_to_json(rec, rlen, g->out, err))
        return -1;
    es_buf_reset(&g->last);
    es_buf_append(&g->last, key, klen);
    return g->limit && g->n >= g->limit ? 1 : 0;
}

static void
s_cmd_get(orch_t *self, const client_t *c, const es_get_t *req)
{
    es_err_t err;
    es_meta_t *meta = es_svc_meta(self->store, req->service, &err);
    es_buf_t b, key, table;
    es_buf_init(&b);
    es_buf_init(&key);
    es_buf_init(&table);
    es_odata_t *filter = NULL;
    es_txn_t *txn = NULL;
    const es_meta_object_t *obj = meta ? es_meta_object(meta, req->object) : NULL;
    int32_t code = ES_OK;
    if (!meta) {
        code = err.code;
        goto done;
    }
    if (!obj) {
        code = es_err_set(&err, ES_ENOTFOUND, "object '%s' is not an object of service '%s'",
                          req->object, req->service);
        code = ES_ENOTFOUND;
        goto done;
    }
    if (req->filter.len) {
        char *text = es_strndup(req->filter.ptr, req->filter.len);
        filter = es_odata_new(text, obj, &err);
        free(text);
        if (!filter) {
            code = ES_EINVAL;
            goto done;
        }
    }
    es_store_table(&table, "main", obj->name);
    txn = es_store_begin(self->store, false, &err);
    if (!txn) {
        code = ES_ESTORE;
        goto done;
    }
    es_buf_puts(&b, "{\"records\":[");
    es_buf_t after;
    es_buf_init(&after);
    get_ctx_t g = {&b, 0, req->limit, filter, NULL, {0}, false};
    es_buf_init(&g.last);
    if (req->after.len) {
        if (es_key_from_json(obj, req->after.ptr, req->after.len, &after, &err)) {
            code = ES_EINVAL;
            es_err_prefix(&err, "after");
            goto page_done;
        }
        g.after = &after;
    }
    if (req->pk.len) {
        if (es_key_from_json(obj, req->pk.ptr, req->pk.len, &key, &err)) {
            code = ES_EINVAL;
            goto page_done;
        }
        const void *val;
        size_t vlen;
        int rc = es_txn_get(txn, table.data, key.data, key.len, &val, &vlen, &err);
        if (rc < 0 || (rc == 1 && s_get_row(&g, key.data, key.len, val, vlen, &err) < 0)) {
            code = ES_ESTORE;
            goto page_done;
        }
    } else if (es_txn_iter(txn, table.data, after.data, after.len, s_get_row, &g, &err)) {
        code = ES_ESTORE;
        goto page_done;
    }
    es_buf_printf(&b, "],\"count\":%zu,\"more\":%s", g.n, g.more ? "true" : "false");
    if (g.more) {
        es_buf_puts(&b, ",\"next\":");
        if (es_key_to_json(obj, g.last.data, g.last.len, &b, &err))
            code = ES_ESTORE;
    }
    es_buf_putc(&b, '}');
page_done:
    es_buf_release(&after);
    es_buf_release(&g.last);
done:
    es_txn_abort(&txn);
    if (code)
        s_reply(self, c->route, c->route_len, c->request_id, code, err.what, "");
    else
        s_reply(self, c->route, c->route_len, c->request_id, 0, "", b.data);
    es_odata_destroy(&filter);
    es_meta_destroy(&meta);
    es_buf_release(&table);
    es_buf_release(&key);
    es_buf_release(&b);
}

typedef struct {
    es_buf_t *out;
    size_t n;
} stats_ctx_t;

static int
s_stats_row(void *ctx, const void *key, size_t klen, const void *val, size_t vlen, es_err_t *err)
{
    (void)err;
    stats_ctx_t *st = ctx;
    if (st->n++)
        es_buf_putc(st->out, ',');
    es_buf_json_str(st->out, key, klen);
    es_buf_putc(st->out, ':');
    es_buf_append(st->out, val, vlen);
    return 0;
}

static void
s_cmd_stats(orch_t *self, const client_t *c, const es_stats_t *req)
{
    es_err_t err;
    es_buf_t b;
    es_buf_init(&b);
    es_txn_t *txn = es_store_begin(self->store, false, &err);
    int rc = -1;
    if (txn && req->entity[0]) {
        const void *val;
        size_t vlen;
        rc = es_txn_get(txn, "stats", req->entity, strlen(req->entity), &val, &vlen, &err);
        if (rc == 1)
            es_buf_append(&b, val, vlen);
        else if (rc == 0)
            es_err_set(&err, ES_ENOTFOUND, "no stats for '%s' (sync it with getSyncStats)",
                       req->entity);
    } else if (txn) {
        stats_ctx_t st = {&b, 0};
        es_buf_putc(&b, '{');
        rc = es_txn_iter(txn, "stats", NULL, 0, s_stats_row, &st, &err) == 0 ? 1 : -1;
        es_buf_putc(&b, '}');
    }
    es_txn_abort(&txn);
    if (rc == 1)
        s_reply(self, c->route, c->route_len, c->request_id, 0, "", b.data);
    else
        s_reply(self, c->route, c->route_len, c->request_id, rc == 0 ? ES_ENOTFOUND : ES_ESTORE,
                err.what, "");
    es_buf_release(&b);
}

//  The run ledger is written by es-stats; reading it here needs no actor to be up.
static void
s_cmd_history(orch_t *self, const client_t *c, const es_history_t *req)
{
    es_err_t err;
    es_buf_t b;
    es_buf_init(&b);
    es_txn_t *txn = es_store_begin(self->store, false, &err);
    int rc = txn ? es_runs_list(txn, req->entity, req->limit, &b, &err) : -1;
    es_txn_abort(&txn);
    if (rc == 0)
        s_reply(self, c->route, c->route_len, c->request_id, 0, "", b.data);
    else
        s_reply(self, c->route, c->route_len, c->request_id, ES_ESTORE, err.what, "");
    es_buf_release(&b);
}

//  --- setup: appconfig, then each service's metadata ------------------------------------------

static void s_setup_next(orch_t *self);

static void
s_setup_end(orch_t *self, int32_t code, const char *what)
{
    setup_t *st = &self->setup;
    if (code)
        es_log_error("setup: %s", what);
    else
        es_buf_puts(&st->done, "]}");
    s_reply(self, st->route, st->route_len, st->request_id, code, what ? what : "",
            code ? "" : st->done.data);
    for (size_t i = 0; i < st->n; i++) {
        free(st->names[i]);
        free(st->urls[i]);
        free(st->meta_urls[i]);
    }
    free(st->names);
    free(st->urls);
    free(st->meta_urls);
    es_buf_release(&st->body);
    es_buf_release(&st->done);
    memset(st, 0, sizeof *st);
}

static int
s_setup_data(void *ctx, const char *data, size_t len, es_err_t *err)
{
    orch_t *self = ctx;
    if (self->setup.body.len + len > 64u << 20)
        return es_err_set(err, ES_EPROTO, "setup response over 64 MiB");
    es_buf_append(&self->setup.body, data, len);
    return 0;
}

//  HTTP status and transport errors of a setup request: 0 ok, else the Volt MX code + text.
static int32_t
s_http_check(const es_http_result_t *r, char *what, size_t size)
{
    if (r->curl_code != CURLE_OK || r->data_failed) {
        snprintf(what, size, "%s", r->err.what);
        int code = es_http_vmx_code(r); //  2033 for TLS, as the actors report it
        return code ? code : 2030;
    }
    //  The server's own words (excerpt, printable only) say which credential it refused.
    if (r->status == 401 || r->status == 403) {
        snprintf(what, size,
                 "backend refused the credentials (HTTP %ld%s%.200s): check auth_token%s",
                 r->status, r->excerpt[0] ? ": " : "", r->excerpt,
                 strstr(r->excerpt, "certificate") ? " and tls.cert_file" : "");
        return 2030;
    }
    if (r->status != 200) {
        snprintf(what, size, "backend answered HTTP %ld%s%.200s", r->status,
                 r->excerpt[0] ? ": " : "", r->excerpt);
        return 2030;
    }
    return 0;
}

typedef struct {
    const char *name, *doc;
    size_t len;
    const char *url;
} svc_put_t;

static int
s_svc_put_fn(es_txn_t *txn, void *ctx, es_err_t *err)
{
    svc_put_t *p = ctx;
    return es_svc_put(txn, p->name, p->doc, p->len, p->url, err);
}

static void
s_setup_meta_done(void *ctx, const es_http_result_t *r)
{
    orch_t *self = ctx;
    setup_t *st = &self->setup;
    char what[ES_ERR_WHAT_MAX + 64];
    int32_t code = s_http_check(r, what, sizeof what);
    const char *name = st->names[st->next - 1];
    if (code) {
        char *msg = es_sprintf("metadata of %s: %s", name, what);
        s_setup_end(self, 2332, msg);
        free(msg);
        return;
    }
    es_err_t err;
    es_meta_t *meta = es_meta_new(st->body.data, st->body.len, &err);
    if (!meta) {
        char *msg = es_sprintf("metadata of %s: %s", name, err.what);
        s_setup_end(self, err.code == ES_EPROTO && strstr(err.what, "key") ? 2356 : 2332, msg);
        free(msg);
        return;
    }
    if (strcmp(meta->name, name) != 0)
        es_log_warn("setup: metadata of %s names itself '%s'", name, meta->name);
    svc_put_t put = {name, st->body.data, st->body.len, st->urls[st->next - 1]};
    if (es_store_write(self->store, s_svc_put_fn, &put, &err)) {
        es_meta_destroy(&meta);
        s_setup_end(self, 2000, err.what);
        return;
    }
    if (st->next > 1)
        es_buf_putc(&st->done, ',');
    es_buf_puts(&st->done, "{\"name\":");
    es_buf_json_str(&st->done, name, strlen(name));
    es_buf_puts(&st->done, ",\"objects\":[");
    for (size_t i = 0; i < meta->nobjects; i++) {
        if (i)
            es_buf_putc(&st->done, ',');
        es_buf_json_str(&st->done, meta->objects[i].name, strlen(meta->objects[i].name));
    }
    es_buf_puts(&st->done, "]}");
    es_log_info("setup: %s: %zu objects", name, meta->nobjects);
    es_meta_destroy(&meta);
    s_setup_next(self);
}

static size_t
s_headers(orch_t *self, char **h)
{
    size_t n = 0;
    const char *token = es_config_str(self->config, "auth_token");
    const char *prefix = es_config_str(self->config, "header_prefix");
    if (*token)
        h[n++] = es_sprintf("%sAuthorization: %s", prefix, token);
    h[n++] = es_strdup("Accept: application/json");
    return n;
}

static void
s_http_get(orch_t *self, const char *url, const es_http_cb_t *cb)
{
    char *h[4];
    size_t nh = s_headers(self, h);
    es_err_t err;
    es_buf_reset(&self->setup.body);
    int rc = es_http_start(self->http, url, NULL, 0, (const char *const *)h, nh, cb, self, &err);
    for (size_t i = 0; i < nh; i++)
        free(h[i]);
    if (rc)
        s_setup_end(self, 2030, err.what);
}

static void
s_setup_next(orch_t *self)
{
    setup_t *st = &self->setup;
    if (st->next >= st->n) {
        s_setup_end(self, 0, NULL);
        return;
    }
    static const es_http_cb_t cb = {s_setup_data, s_setup_meta_done};
    st->next++;
    s_http_get(self, st->meta_urls[st->next - 1], &cb);
}

static bool
s_wanted(const orch_t *self, const char *name)
{
    if (self->setup.service[0])
        return strcmp(self->setup.service, name) == 0;
    const char *list = es_config_str(self->config, "services");
    if (!*list)
        return true;
    size_t n = strlen(name);
    for (const char *p = list; *p;) {
        while (*p == ' ' || *p == ',')
            p++;
        const char *e = p;
        while (*e && *e != ',' && *e != ' ')
            e++;
        if ((size_t)(e - p) == n && memcmp(p, name, n) == 0)
            return true;
        p = e;
    }
    return false;
}

static void
s_setup_appconfig_done(void *ctx, const es_http_result_t *r)
{
    orch_t *self = ctx;
    setup_t *st = &self->setup;
    char what[ES_ERR_WHAT_MAX + 64];
    int32_t code = s_http_check(r, what, sizeof what);
    if (code) {
        char *msg = es_sprintf("appconfig: %s", what);
        s_setup_end(self, code, msg);
        free(msg);
        return;
    }
    char errbuf[256];
    //  Nesting is bounded first: yajl_tree_free() recurses once per level.
    bool deep = es_json_too_deep(st->body.data, st->body.len, ES_JSON_DEPTH_MAX, NULL);
    yajl_val root = deep ? NULL : yajl_tree_parse(st->body.data, errbuf, sizeof errbuf);
    const char *path[] = {"objectsvc", NULL};
    yajl_val svcs = root ? yajl_tree_get(root, path, yajl_t_object) : NULL;
    if (!svcs) {
        yajl_tree_free(root);
        s_setup_end(self, 2037, deep   ? "appconfig: nested too deeply"
                                : root ? "appconfig: objectsvc: expected an object"
                                       : "appconfig: invalid JSON");
        return;
    }
    for (size_t i = 0; i < svcs->u.object.len; i++) {
        const char *name = svcs->u.object.keys[i];
        yajl_val v = svcs->u.object.values[i];
        const char *up[] = {"url", NULL}, *mp[] = {"metadata_url", NULL};
        yajl_val url = yajl_tree_get(v, up, yajl_t_string);
        yajl_val murl = yajl_tree_get(v, mp, yajl_t_string);
        if (!s_wanted(self, name))
            continue;
        if (!url || !murl || strlen(name) > ES_NAME_MAX) {
            char *msg = es_sprintf("appconfig: objectsvc.%s: expected url and metadata_url", name);
            yajl_tree_free(root);
            s_setup_end(self, 2462, msg);
            free(msg);
            return;
        }
        st->names = es_realloc(st->names, (st->n + 1) * sizeof *st->names);
        st->urls = es_realloc(st->urls, (st->n + 1) * sizeof *st->urls);
        st->meta_urls = es_realloc(st->meta_urls, (st->n + 1) * sizeof *st->meta_urls);
        st->names[st->n] = es_strdup(name);
        st->urls[st->n] = es_strdup(YAJL_GET_STRING(url));
        st->meta_urls[st->n] = es_strdup(YAJL_GET_STRING(murl)); //  metadata URL
        st->n++;
    }
    yajl_tree_free(root);
    if (st->n == 0) {
        char *msg = es_sprintf("appconfig: no object service%s%s offered by the backend",
                               st->service[0] ? " named " : "", st->service);
        s_setup_end(self, 2483, msg);
        free(msg);
        return;
    }
    es_buf_puts(&st->done, "{\"services\":[");
    s_setup_next(self);
}

static void
s_cmd_setup(orch_t *self, const client_t *c, const es_setup_t *req)
{
    setup_t *st = &self->setup;
    if (st->active)
        return s_reply(self, c->route, c->route_len, c->request_id, 2353,
                       "setup is already running", "");
    memset(st, 0, sizeof *st);
    st->active = true;
    memcpy(st->route, c->route, c->route_len);
    st->route_len = c->route_len;
    st->request_id = c->request_id;
    snprintf(st->service, sizeof st->service, "%s", req->service);
    es_buf_init(&st->body);
    es_buf_init(&st->done);
    char *url = es_sprintf("%s/appconfig", es_config_str(self->config, "server_url"));
    static const es_http_cb_t cb = {s_setup_data, s_setup_appconfig_done};
    s_http_get(self, url, &cb);
    free(url);
}

//  --- loop ------------------------------------------------------------------------------------

static void
s_on_cmd(orch_t *self)
{
    for (;;) {
        es_err_t err;
        int rc = es_msg_recv(self->cmd, true, &self->in, &err);
        if (rc == 0)
            return;
        if (rc < 0) {
            if (err.code == ES_ESYS) {
                es_log_warn("command socket: %s", err.what);
                return;
            }
            if (es_log_limit_allow(&self->cmd_bad, es_now_ms()))
                es_log_warn("command socket: dropped a malformed message: %s", err.what);
            //  Tell the sender what was wrong when we know who it is.
            if (self->in.route_len)
                s_reply(self, self->in.route, self->in.route_len, 0, ES_EPROTO, err.what, "");
            continue;
        }
        client_t c = {self->in.route, self->in.route_len, self->in.msg.request_id};
        const es_msg_t *m = &self->in.msg;
        switch (m->type) {
        case ES_MSG_SYNC: s_cmd_sync(self, &c, &m->u.sync); break;
        case ES_MSG_CANCEL: s_cmd_cancel(self, &c, &m->u.cancel); break;
        case ES_MSG_STATUS: s_cmd_status(self, &c, &m->u.status); break;
        case ES_MSG_SETUP: s_cmd_setup(self, &c, &m->u.setup); break;
        case ES_MSG_GET: s_cmd_get(self, &c, &m->u.get); break;
        case ES_MSG_STATS: s_cmd_stats(self, &c, &m->u.stats); break;
        case ES_MSG_HISTORY: s_cmd_history(self, &c, &m->u.history); break;
        case ES_MSG_LOCAL: s_cmd_local(self, &c, &m->u.local); break;
        default: {
            char what[96];
            snprintf(what, sizeof what, "%s is not a command", es_msg_name(m->type));
            s_reply(self, c.route, c.route_len, c.request_id, ES_EPROTO, what, "");
        }
        }
    }
}

static void
s_on_signals(orch_t *self)
{
    struct signalfd_siginfo si;
    while (read(self->sigfd, &si, sizeof si) == (ssize_t)sizeof si) {
        if (si.ssi_signo == SIGCHLD)
            continue; //  orch_super_tick reaps
        if (si.ssi_signo == SIGHUP) {
            es_err_t err;
            if (!self->curve)
                es_log_info("SIGHUP: no CURVE allow-list to reload (all endpoints are ipc://)");
            else if (orch_curve_reload(self->curve, &err))
                es_log_error("SIGHUP: %s; the previous allow-list stays in force", err.what);
            continue;
        }
        es_log_info("signal %u: stopping", si.ssi_signo);
        self->terminated = true;
    }
}

static bool
s_readable(void *sock)
{
    uint32_t ev = 0;
    size_t len = sizeof ev;
    return zmq_getsockopt(sock, ZMQ_EVENTS, &ev, &len) == 0 && (ev & ZMQ_POLLIN);
}

//  Sessions that were running when an earlier daemon stopped continue now (D15).
static int
s_resume_row(void *ctx, const void *key, size_t klen, const void *val, size_t vlen, es_err_t *err)
{
    (void)err;
    orch_t *self = ctx;
    session_t *s = orch_session_from_json(val, vlen);
    if (!s) {
        es_log_warn("session %.*s: unreadable state, skipped", (int)klen, (const char *)key);
        return 0;
    }
    if (s->done) {
        orch_session_destroy(&s);
        return 0;
    }
    es_log_info("session %s: resuming after a restart", s->id);
    s->next = self->sessions;
    self->sessions = s;
    return 0;
}

int
orch_run(orch_t *self, es_err_t *err)
{
    es_txn_t *txn = es_store_begin(self->store, false, err);
    if (!txn || es_txn_iter(txn, "session", NULL, 0, s_resume_row, self, err)) {
        es_txn_abort(&txn);
        return -1;
    }
    for (session_t *s = self->sessions; s; s = s->next)
        for (uint32_t i = 1; i <= s->nbatches; i++) {
            char key[ES_NAME_MAX + 16];
            int n = s_batch_key(key, sizeof key, s->id, i);
            const void *val;
            size_t vlen;
            int rc = es_txn_get(txn, "sbatch", key, (size_t)n, &val, &vlen, err);
            if (rc < 0) {
                es_txn_abort(&txn);
                return -1;
            }
            if (rc == 1)
                orch_session_add_batch(s, val, vlen);
        }
    es_txn_abort(&txn);
    es_log_info("edgesyncd %d: commands on %s, events on %s", (int)getpid(), self->cmd_ep,
                self->event_ep);
    while (!self->terminated) {
        s_on_work(self); //  heartbeats queued while the loop was busy count before judging
        orch_super_tick(self->super);
        (void)es_log_limit_flush(&self->cmd_bad, es_now_ms()); //  summaries of quiet floods
        (void)es_log_limit_flush(&self->work_bad, es_now_ms());
        size_t nactors, nready = orch_super_count_ready(self->super, &nactors);
        orch_notify_tick(self->notify, nready, nactors);
        s_dispatch(self);
        int timeout = orch_notify_next_ms(self->notify, orch_super_next_ms(self->super, 250));
        if (s_readable(self->cmd) || s_readable(self->work) ||
            (self->curve && orch_curve_readable(self->curve)))
            timeout = 0;
        struct curl_waitfd extra[4] = {{self->cmd_fd, CURL_WAIT_POLLIN, 0},
                                       {self->work_fd, CURL_WAIT_POLLIN, 0},
                                       {self->sigfd, CURL_WAIT_POLLIN, 0},
                                       {self->curve ? orch_curve_fd(self->curve) : -1,
                                        CURL_WAIT_POLLIN, 0}};
        if (es_http_wait(self->http, extra, self->curve ? 4 : 3, timeout, err))
            return -1;
        s_on_signals(self);
        if (self->curve)
            orch_curve_handle(self->curve); //  handshakes wait for these answers
        s_on_work(self);
        s_on_cmd(self);
        es_http_perform(self->http);
        s_flush_sessions(self, false);
    }
    orch_notify_stopping(self->notify);
    s_flush_sessions(self, true);
    orch_super_stop_all(self->super);
    //  Sessions stay "running" in the store: the next start resumes them.
    return 0;
}

orch_t *
orch_new(const es_config_t *config, const char *config_path, const char *bin_dir, es_err_t *err)
{
    orch_t *self = es_calloc(1, sizeof *self);
    bool made_dir = false; //  this call created data_dir
    const char *dir = es_config_str(config, "data_dir");
    self->config = config;
    self->sigfd = -1;
    es_msg_in_init(&self->in);
    es_buf_init(&self->scratch);
    self->cmd_bad.what = "command socket: dropped malformed messages";
    self->work_bad.what = "work socket: dropped malformed messages";
    //  First: it unsets the systemd variables before any thread or child could read them.
    self->notify = orch_notify_new(err);
    if (!self->notify)
        goto fail;
    made_dir = mkdir(dir, 0700) == 0;
    if (!made_dir && errno != EEXIST) {
        es_err_set(err, ES_ESYS, "data_dir %s: %s", dir, strerror(errno));
        goto fail;
    }
    self->data_dir = realpath(dir, NULL);
    if (!self->data_dir) {
        es_err_set(err, ES_ESYS, "data_dir %s: %s", dir, strerror(errno));
        goto fail;
    }
    self->cmd_ep = es_config_cmd_endpoint(config);
    self->event_ep = es_config_event_endpoint(config);
    self->work_ep = es_sprintf("ipc://%s/work.sock", self->data_dir);
    es_http_opts_t hopts;
    es_http_opts_from_config(&hopts, config);
    self->http = es_http_new(&hopts, err);
    if (!self->http)
        goto fail;
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGCHLD);
    sigaddset(&set, SIGPIPE);
    sigaddset(&set, SIGHUP); //  reload the CURVE allow-list
    if (sigprocmask(SIG_BLOCK, &set, NULL) == -1 ||
        (self->sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC)) == -1) {
        es_err_set(err, ES_ESYS, "signalfd: %s", strerror(errno));
        goto fail;
    }
    self->zctx = zmq_ctx_new();
    if (!self->zctx) {
        es_err_set(err, ES_ESYS, "zmq_ctx_new: %s", zmq_strerror(errno));
        goto fail;
    }
    //  The ZAP handler is bound before any CURVE socket, so no handshake can skip it.
    const char *net_ep = orch_curve_needed(self->cmd_ep)     ? self->cmd_ep
                         : orch_curve_needed(self->event_ep) ? self->event_ep
                                                             : NULL;
    if (net_ep && !(self->curve = orch_curve_new(self->zctx, config, err))) {
        es_err_prefix(err, "%s %s", net_ep == self->cmd_ep ? "cmd_endpoint" : "event_endpoint",
                      net_ep);
        goto fail;
    }
    if (!(self->cmd = s_socket(self, ZMQ_ROUTER, self->cmd_ep, &self->cmd_fd, err)) ||
        !(self->work = s_socket(self, ZMQ_ROUTER, self->work_ep, &self->work_fd, err)) ||
        !(self->pub = s_socket(self, ZMQ_PUB, self->event_ep, NULL, err)))
        goto fail;
    //  The store after the sockets: a data dir unfit for them is refused before any file is
    //  created in it (closing a bound ipc socket removes its file).
    es_store_opts_t sopts = {
        .map_size = (size_t)es_config_int(config, "store.map_size_mb") << 20,
        .map_max = (size_t)es_config_int(config, "store.map_max_mb") << 20,
    };
    self->store = es_store_new(self->data_dir, &sopts, err);
    if (!self->store)
        goto fail;
    orch_super_opts_t so = {
        .endpoint = self->work_ep,
        .data_dir = self->data_dir,
        .config = config_path,
        .bin_dir = bin_dir,
        .hello_timeout_ms = 10000,
        .heartbeat_timeout_ms = (int)es_config_int(config, "heartbeat.timeout_ms"),
        .grace_ms = (int)es_config_int(config, "stop.grace_ms"),
    };
    self->super = orch_super_new(&so, self->work, s_on_actor_down, self);
    orch_super_add(self->super, "stats", 0);
    orch_super_add(self->super, "upload", 0);
    orch_super_add(self->super, "reconcile", 0);
    for (int64_t i = 0; i < es_config_int(config, "download.workers"); i++)
        orch_super_add(self->super, "download", (uint32_t)i);
    return self;
fail:
    orch_destroy(&self);
    if (made_dir)
        (void)rmdir(dir); //  leave nothing half-created; fails harmlessly if not empty
    return NULL;
}

void
orch_destroy(orch_t **self_p)
{
    if (!*self_p)
        return;
    orch_t *self = *self_p;
    while (self->sessions) {
        session_t *s = self->sessions;
        self->sessions = s->next;
        orch_session_destroy(&s);
    }
    if (self->setup.active)
        s_setup_end(self, 2460, "daemon stopping");
    orch_super_destroy(&self->super);
    orch_notify_destroy(&self->notify);
    if (self->cmd)
        zmq_close(self->cmd);
    if (self->work)
        zmq_close(self->work);
    if (self->pub)
        zmq_close(self->pub);
    orch_curve_destroy(&self->curve); //  after the sockets whose handshakes it answered
    if (self->zctx)
        zmq_ctx_term(self->zctx);
    if (self->sigfd >= 0)
        close(self->sigfd);
    es_http_destroy(&self->http);
    es_store_destroy(&self->store);
    es_msg_in_release(&self->in);
    es_buf_release(&self->scratch);
    free(self->cmd_ep);
    free(self->event_ep);
    free(self->work_ep);
    free(self->data_dir);
    free(self);
    *self_p = NULL;
}
