//  es-stats - the stats actor: subscribes to the daemon's events and keeps the last sync stats
//  of every entity in the store ("stats" table), where `edgesync stats` reads them.
#include "common/es_actor.h"
#include "common/es_config.h"
#include "common/es_log.h"
#include "common/es_mem.h"
#include "protocol/es_json.h"
#include "protocol/es_msg.h"
#include "store/es_store.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_tree.h>
#include <zmq.h>

typedef struct {
    es_config_t *config; //  settings
    es_actor_t *actor;   //  runtime
    es_store_t *store;   //  LMDB
    void *zctx, *sub;    //  event subscription
    es_msg_in_t in;      //  receive buffer
    uint64_t results;    //  results seen
} stats_t;

typedef struct {
    const char *name;
    const char *json;
    size_t len;
} put_t;

static int
s_put(es_txn_t *txn, void *ctx, es_err_t *err)
{
    put_t *p = ctx;
    return es_txn_put(txn, "stats", p->name, strlen(p->name), p->json, p->len, err);
}

//  A result: keep its syncStats under the entity name.
static void
s_on_result(stats_t *self, const es_result_t *r)
{
    self->results++;
    char *text = es_strndup(r->body.ptr, r->body.len);
    yajl_val root = yajl_tree_parse(text, NULL, 0);
    free(text);
    const char *sp[] = {"syncStats", NULL}, *np[] = {"name", NULL};
    yajl_val st = root ? yajl_tree_get(root, sp, yajl_t_object) : NULL;
    yajl_val name = st ? yajl_tree_get(st, np, yajl_t_string) : NULL;
    if (name) {
        es_buf_t b;
        es_buf_init(&b);
        es_json_write(&b, st);
        put_t p = {YAJL_GET_STRING(name), b.data, b.len};
        es_err_t err;
        if (es_store_write(self->store, s_put, &p, &err))
            es_log_error("stats of %s not stored: %s", p.name, err.what);
        else
            es_log_debug("stats of %s stored (session %s)", p.name, r->session);
        es_buf_release(&b);
    }
    yajl_tree_free(root);
}

static void
s_drain_sub(stats_t *self)
{
    for (;;) {
        //  Frame 1: topic; frame 2: the message.
        char topic[256];
        int n = zmq_recv(self->sub, topic, sizeof topic, ZMQ_DONTWAIT);
        if (n == -1)
            return;
        int more = 0;
        size_t ml = sizeof more;
        zmq_getsockopt(self->sub, ZMQ_RCVMORE, &more, &ml);
        if (!more)
            continue;
        es_err_t err;
        int rc = es_msg_recv(self->sub, false, &self->in, &err);
        if (rc < 0) {
            es_log_warn("event dropped: %s", err.what);
            continue;
        }
        if (rc == 1 && self->in.msg.type == ES_MSG_RESULT)
            s_on_result(self, &self->in.msg.u.result);
    }
}

int
main(int argc, char *argv[])
{
    es_log_init("stats");
    es_actor_opts_t opts;
    es_err_t err;
    if (es_actor_opts_parse(&opts, argc, argv, &err)) {
        fprintf(stderr, "es-stats: %s\n", err.what);
        return 2;
    }
    stats_t self = {0};
    es_msg_in_init(&self.in);
    int rc = 1;
    char *ep = NULL;
    self.config = es_config_new();
    if (opts.config[0] && es_config_load(self.config, opts.config, &err))
        goto done;
    if (es_config_set(self.config, "data_dir", opts.data_dir, &err))
        goto done;
    es_log_set_level((es_log_level_t)es_log_level_parse(es_config_str(self.config, "log.level")));
    es_store_opts_t sopts = {
        .map_size = (size_t)es_config_int(self.config, "store.map_size_mb") << 20,
        .map_max = (size_t)es_config_int(self.config, "store.map_max_mb") << 20,
    };
    self.store = es_store_new(opts.data_dir, &sopts, &err);
    if (!self.store)
        goto done;
    self.actor =
        es_actor_new("stats", &opts, (int)es_config_int(self.config, "heartbeat.interval_ms"),
                     &err);
    if (!self.actor)
        goto done;
    ep = es_config_event_endpoint(self.config);
    self.zctx = zmq_ctx_new();
    self.sub = self.zctx ? zmq_socket(self.zctx, ZMQ_SUB) : NULL;
    int linger = 0;
    int64_t maxmsg = ES_MSG_MAX_SIZE;
    if (!self.sub || zmq_setsockopt(self.sub, ZMQ_LINGER, &linger, sizeof linger) ||
        zmq_setsockopt(self.sub, ZMQ_MAXMSGSIZE, &maxmsg, sizeof maxmsg) ||
        zmq_setsockopt(self.sub, ZMQ_SUBSCRIBE, "result.", 7) || zmq_connect(self.sub, ep)) {
        es_err_set(&err, ES_ESYS, "subscribe %s: %s", ep, zmq_strerror(errno));
        goto done;
    }
    while (!es_actor_terminated(self.actor)) {
        //  Short steps: the SUB socket is polled between them.
        if (es_actor_step(self.actor, NULL, 50, NULL, NULL, &err))
            goto done;
        s_drain_sub(&self);
    }
    rc = 0;
done:
    if (rc)
        es_log_error("%s", err.what);
    free(ep);
    if (self.sub)
        zmq_close(self.sub);
    if (self.zctx)
        zmq_ctx_term(self.zctx);
    es_actor_destroy(&self.actor);
    es_store_destroy(&self.store);
    es_config_destroy(&self.config);
    es_msg_in_release(&self.in);
    return rc;
}
