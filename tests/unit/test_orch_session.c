//  test_orch_session - session state: JSON round trip and malformed input, entity overlap,
//  batch stats and the success / failure / cancellation result objects (parsed, not grepped).
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "actors/orchestrator/orch_session.h"
#include "common/es_actor.h"
#include "common/es_mem.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_tree.h>

//  ---------------------------------------------------------------------------------------------
//  JSON helpers over yajl_tree.

static yajl_val
s_parse(const char *json)
{
    char errbuf[256];
    yajl_val root = yajl_tree_parse(json, errbuf, sizeof errbuf);
    if (!root)
        fail_msg("invalid JSON (%s): %s", errbuf, json);
    return root;
}

//  Value at a path of up to 4 keys ("" ends it early); NULL if absent.
static yajl_val
s_at(yajl_val v, const char *k1, const char *k2, const char *k3)
{
    const char *path[] = {k1, k2 && *k2 ? k2 : NULL, k2 && *k2 && k3 && *k3 ? k3 : NULL, NULL};
    return yajl_tree_get(v, path, yajl_t_any);
}

static const char *
s_str_at(yajl_val v, const char *k1, const char *k2)
{
    yajl_val s = s_at(v, k1, k2, NULL);
    if (!s || !YAJL_IS_STRING(s))
        fail_msg("%s.%s: expected a string", k1, k2 ? k2 : "");
    return YAJL_GET_STRING(s);
}

static long long
s_int_at(yajl_val v, const char *k1, const char *k2)
{
    yajl_val n = s_at(v, k1, k2, NULL);
    if (!n || !YAJL_IS_INTEGER(n))
        fail_msg("%s.%s: expected an integer", k1, k2 ? k2 : "");
    return YAJL_GET_INTEGER(n);
}

static size_t
s_keys(yajl_val obj)
{
    assert_true(YAJL_IS_OBJECT(obj));
    return obj->u.object.len;
}

static es_progress_t
s_progress(const char *object, uint32_t batch, uint32_t records)
{
    es_progress_t p;
    memset(&p, 0, sizeof p);
    snprintf(p.session, sizeof p.session, "s1");
    snprintf(p.object, sizeof p.object, "%s", object);
    p.batch = batch;
    p.records = records;
    p.bytes = 1000ull * records + 5000000000ull; //  over 32 bits
    p.request_ms = 1;
    p.network_ms = 20 + batch;
    p.parse_ms = 3;
    p.persist_ms = 4;
    p.retries = batch - 1;
    return p;
}

//  A session with every field set and one object in each state.
static session_t *
s_rich_session(void)
{
    session_t *s = orch_session_new("sess-1", "service", "Svc", "",
                                    "{\"getSyncStats\":true,\"filter\":{\"A\":\"x eq 'q\\\"'\"}}");
    snprintf(s->sync_type, sizeof s->sync_type, "downloadOnly");
    s->get_stats = true;
    s->cancelled = true;
    s->start_epoch_ms = 1700000000123;
    s->start_mono_ms = es_now_ms() - 2500;
    static const char *names[] = {"Pend", "Run", "Done", "Fail", "Skip"};
    for (int i = 0; i < 5; i++) {
        orch_session_add_object(s, "Svc", names[i]);
        sobj_t *o = &s->objs[i];
        o->state = (sobj_state_t)i;
        o->job = 77 + (uint64_t)i;
        o->batches = 10 + (uint32_t)i;
        o->records = 5000000000ull + (uint64_t)i;
        o->attempts = 1 + (uint32_t)i;
    }
    es_progress_t p1 = s_progress("Done", 1, 500), p2 = s_progress("Done", 2, 17);
    orch_session_batch(s, &p1);
    orch_session_batch(s, &p2);
    es_buf_puts(&s->errors, "{\"object\":\"Fail\",\"objectService\":\"Svc\",\"opstatus\":500,"
                            "\"errmsg\":\"boom \\\"x\\\"\"}");
    es_buf_puts(&s->warnings, "\"filter of A ignored\",\"caf\xC3\xA9\"");
    s->code = 2474;
    s->what = es_strdup("Sync download failed with an error: \"quoted\"\nline 2");
    snprintf(s->route, sizeof s->route, "client");
    s->route_len = 6;
    s->request_id = 9;
    return s;
}

static char *
s_to_json(const session_t *s)
{
    es_buf_t b;
    es_buf_init(&b);
    orch_session_to_json(s, &b);
    return es_buf_steal(&b);
}

//  ---------------------------------------------------------------------------------------------
//  Round trip.

static void
s_check_same(const session_t *a, const session_t *b)
{
    assert_string_equal(b->id, a->id);
    assert_string_equal(b->level, a->level);
    assert_string_equal(b->service, a->service);
    assert_string_equal(b->object, a->object);
    assert_string_equal(b->sync_type, a->sync_type);
    assert_string_equal(b->options, a->options);
    assert_int_equal(b->get_stats, a->get_stats);
    assert_int_equal(b->cancelled, a->cancelled);
    assert_int_equal(b->done, a->done);
    assert_int_equal(b->start_epoch_ms, a->start_epoch_ms);
    assert_int_equal(b->downloaded, a->downloaded);
    assert_int_equal(b->code, a->code);
    if (a->what)
        assert_string_equal(b->what, a->what);
    else
        assert_null(b->what);
    assert_int_equal(b->nobjs, a->nobjs);
    for (size_t i = 0; i < a->nobjs; i++) {
        assert_string_equal(b->objs[i].service, a->objs[i].service);
        assert_string_equal(b->objs[i].name, a->objs[i].name);
        //  A running object's actor died with the daemon: it comes back pending.
        sobj_state_t want = a->objs[i].state == SOBJ_RUNNING ? SOBJ_PENDING : a->objs[i].state;
        assert_int_equal(b->objs[i].state, want);
        assert_int_equal(b->objs[i].job, 0); //  not persisted
        assert_int_equal(b->objs[i].batches, a->objs[i].batches);
        assert_int_equal(b->objs[i].records, a->objs[i].records);
        assert_int_equal(b->objs[i].attempts, a->objs[i].attempts);
    }
    assert_string_equal(b->batches.data ? b->batches.data : "",
                        a->batches.data ? a->batches.data : "");
    assert_string_equal(b->errors.data ? b->errors.data : "", a->errors.data ? a->errors.data : "");
    assert_string_equal(b->warnings.data ? b->warnings.data : "",
                        a->warnings.data ? a->warnings.data : "");
    if (a->result)
        assert_string_equal(b->result, a->result);
    else
        assert_null(b->result);
    //  The client route is not persisted.
    assert_int_equal(b->route_len, 0);
    assert_int_equal(b->request_id, 0);
    assert_null(b->next);
}

static void
test_to_json_values(void **state)
{
    (void)state;
    session_t *s = s_rich_session();
    char *json = s_to_json(s);
    yajl_val root = s_parse(json);
    assert_string_equal(s_str_at(root, "id", NULL), "sess-1");
    assert_string_equal(s_str_at(root, "level", NULL), "service");
    assert_string_equal(s_str_at(root, "service", NULL), "Svc");
    assert_string_equal(s_str_at(root, "object", NULL), "");
    assert_string_equal(s_str_at(root, "syncType", NULL), "downloadOnly");
    assert_string_equal(s_str_at(root, "options", NULL), s->options);
    assert_true(YAJL_IS_TRUE(s_at(root, "getStats", NULL, NULL)));
    assert_true(YAJL_IS_TRUE(s_at(root, "cancelled", NULL, NULL)));
    assert_int_equal(s_int_at(root, "startTime", NULL), 1700000000123);
    assert_int_equal(s_int_at(root, "downloaded", NULL), 517);
    assert_int_equal(s_int_at(root, "code", NULL), 2474);
    assert_string_equal(s_str_at(root, "what", NULL), s->what);
    assert_string_equal(s_str_at(root, "state", NULL), "running");
    yajl_val objs = s_at(root, "objects", NULL, NULL);
    assert_true(YAJL_IS_ARRAY(objs));
    assert_int_equal(objs->u.array.len, 5);
    static const char *states[] = {"pending", "running", "done", "failed", "skipped"};
    for (size_t i = 0; i < 5; i++) {
        yajl_val o = objs->u.array.values[i];
        assert_string_equal(s_str_at(o, "service", NULL), "Svc");
        assert_string_equal(s_str_at(o, "name", NULL), s->objs[i].name);
        assert_string_equal(s_str_at(o, "state", NULL), states[i]);
        assert_int_equal(s_int_at(o, "batches", NULL), 10 + i);
        assert_int_equal(s_int_at(o, "records", NULL), 5000000000ll + (long long)i);
        assert_int_equal(s_int_at(o, "attempts", NULL), 1 + i);
        assert_int_equal(s_keys(o), 6); //  no job id
    }
    assert_int_equal(s_at(root, "batches", NULL, NULL)->u.array.len, 2);
    assert_int_equal(s_at(root, "errors", NULL, NULL)->u.array.len, 1);
    yajl_val w = s_at(root, "warnings", NULL, NULL);
    assert_int_equal(w->u.array.len, 2);
    assert_string_equal(YAJL_GET_STRING(w->u.array.values[1]), "caf\xC3\xA9");
    assert_null(s_at(root, "result", NULL, NULL));
    yajl_tree_free(root);
    free(json);
    orch_session_destroy(&s);
    assert_null(s);
    orch_session_destroy(&s); //  safe twice
}

static void
test_round_trip(void **state)
{
    (void)state;
    session_t *s = s_rich_session();
    for (int pass = 0; pass < 2; pass++) {
        //  Pass 0: running, no result. Pass 1: finished, with its result object.
        if (pass == 1)
            assert_int_equal(orch_session_finish(s), 2474);
        char *json = s_to_json(s);
        session_t *back = orch_session_from_json(json, strlen(json));
        if (!back)
            fail_msg("pass %d: from_json refused its own output: %s", pass, json);
        s_check_same(s, back);
        //  Elapsed time continues from the persisted wall clock start (not from now).
        int64_t elapsed = es_now_ms() - back->start_mono_ms;
        assert_true(elapsed > 1000);
        //  Written again, the text is the same except the running object, now pending.
        char *again = s_to_json(back);
        s->objs[1].state = SOBJ_PENDING;
        char *expect = s_to_json(s);
        s->objs[1].state = SOBJ_RUNNING;
        assert_string_equal(again, expect);
        free(again);
        free(expect);
        orch_session_destroy(&back);
        free(json);
    }
    orch_session_destroy(&s);

    //  The smallest session: app level, no objects, nothing accumulated.
    s = orch_session_new("a", "app", "", "", "{}");
    char *json = s_to_json(s);
    session_t *back = orch_session_from_json(json, strlen(json));
    assert_non_null(back);
    s_check_same(s, back);
    assert_string_equal(back->sync_type, "fullSync");
    assert_true(orch_session_finished(back));
    orch_session_destroy(&back);
    free(json);
    orch_session_destroy(&s);

    //  Names of exactly ES_NAME_MAX characters fit.
    char name[ES_NAME_MAX + 1];
    memset(name, 'n', ES_NAME_MAX);
    name[ES_NAME_MAX] = '\0';
    s = orch_session_new(name, "object", name, name, "{}");
    orch_session_add_object(s, name, name);
    json = s_to_json(s);
    back = orch_session_from_json(json, strlen(json));
    assert_non_null(back);
    s_check_same(s, back);
    orch_session_destroy(&back);
    free(json);
    orch_session_destroy(&s);
}

//  Replace the first occurrence of from (which must exist) in text.
static char *
s_replace(const char *text, const char *from, const char *to)
{
    const char *at = strstr(text, from);
    if (!at)
        fail_msg("'%s' not in %s", from, text);
    return es_sprintf("%.*s%s%s", (int)(at - text), text, to, at + strlen(from));
}

static void
test_from_json_malformed(void **state)
{
    (void)state;
    session_t *s = s_rich_session();
    assert_int_equal(orch_session_finish(s), 2474);
    char *json = s_to_json(s);
    size_t len = strlen(json);
    //  Every prefix of a valid document.
    for (size_t n = 0; n < len; n++) {
        session_t *back = orch_session_from_json(json, n);
        if (back)
            fail_msg("prefix of %zu bytes accepted", n);
    }
    //  Trailing bytes, other documents.
    const char *bad_docs[] = {"", " ", "null", "[]", "42", "\"x\"", "{}", "{\"id\":\"x\"}", "{]"};
    for (size_t i = 0; i < sizeof bad_docs / sizeof bad_docs[0]; i++)
        assert_null(orch_session_from_json(bad_docs[i], strlen(bad_docs[i])));
    char *trailing = es_sprintf("%s}", json);
    assert_null(orch_session_from_json(trailing, strlen(trailing)));
    free(trailing);
    //  A NUL inside the given length ends the document early: malformed.
    char *nul = es_strdup(json);
    nul[len / 2] = '\0';
    assert_null(orch_session_from_json(nul, len));
    free(nul);

    //  Required fields with a wrong type, missing, or too long for their fields.
    char longname[ES_NAME_MAX + 2];
    memset(longname, 'L', ES_NAME_MAX + 1);
    longname[ES_NAME_MAX + 1] = '\0';
    char *long_id = es_sprintf("\"id\":\"%s\"", longname);
    char *long_obj = es_sprintf("\"name\":\"%s\"", longname);
    struct {
        const char *from, *to;
    } edits[] = {
        {"\"id\":\"sess-1\"", "\"id\":1"},
        {"\"id\":\"sess-1\"", "\"ID\":\"sess-1\""},
        {"\"id\":\"sess-1\"", long_id},
        {"\"level\":\"service\"", "\"level\":null"},
        {"\"level\":\"service\"", "\"level\":\"everything\""},
        {"\"service\":\"Svc\"", "\"service\":[\"Svc\"]"},
        {"\"object\":\"\"", "\"object\":false"},
        {"\"options\":", "\"optionz\":"},
        {"\"objects\":[", "\"objects\":{\"x\":[]},\"x\":["},
        //  Plan entries that are not what to_json writes.
        {"{\"service\":\"Svc\",\"name\":\"Pend\"", "7,{\"service\":\"Svc\",\"name\":\"Pend\""},
        {"\"name\":\"Pend\"", "\"nam\":\"Pend\""},
        {"\"name\":\"Pend\"", long_obj},
        {"\"name\":\"Pend\",\"state\":\"pending\"", "\"name\":\"Pend\",\"state\":\"paused\""},
        {"\"name\":\"Pend\",\"state\":\"pending\"", "\"name\":\"Pend\",\"state\":0"},
        {"{\"service\":\"Svc\",\"name\":\"Run\"", "{\"service\":1,\"name\":\"Run\""},
    };
    for (size_t i = 0; i < sizeof edits / sizeof edits[0]; i++) {
        char *doc = s_replace(json, edits[i].from, edits[i].to);
        session_t *back = orch_session_from_json(doc, strlen(doc));
        if (back)
            fail_msg("edit %zu accepted: %s", i, doc);
        free(doc);
    }
    free(long_id);
    free(long_obj);

    //  Optional fields with a wrong type fall back to their defaults.
    char *d1 = s_replace(json, "\"syncType\":\"downloadOnly\"", "\"syncType\":3");
    char *d2 = s_replace(d1, "\"getStats\":true", "\"getStats\":\"true\"");
    char *d3 = s_replace(d2, "\"code\":2474", "\"code\":\"2474\"");
    char *d4 = s_replace(d3, "\"startTime\":1700000000123", "\"startTime\":1.5");
    char *d5 = s_replace(d4, "\"batches\":[{", "\"batches\":{\"x\":[{");
    char *d6 = s_replace(d5, "}],\"errors\"", "}]},\"errors\"");
    char *d7 = s_replace(d6, "\"result\":{", "\"result\":[{");
    //  The result is the last member: close the array before the document's brace.
    char *d8 = es_sprintf("%.*s]}", (int)strlen(d7) - 1, d7);
    session_t *back = orch_session_from_json(d8, strlen(d8));
    if (!back)
        fail_msg("lenient fields refused: %s", d8);
    assert_string_equal(back->sync_type, "fullSync");
    assert_false(back->get_stats);
    assert_int_equal(back->code, 0);
    assert_int_equal(back->start_epoch_ms, 0);
    assert_int_equal(back->batches.len, 0);
    assert_null(back->result);
    assert_int_equal(back->nobjs, 5);
    orch_session_destroy(&back);
    free(d1);
    free(d2);
    free(d3);
    free(d4);
    free(d5);
    free(d6);
    free(d7);
    free(d8);
    free(json);
    orch_session_destroy(&s);
}

//  ---------------------------------------------------------------------------------------------
//  Overlap and progress.

static void
test_overlaps(void **state)
{
    (void)state;
    //  Entities: level, service, object.
    static const struct {
        const char *level, *service, *object;
    } e[] = {
        {"app", "", ""},      //  0
        {"service", "A", ""}, //  1
        {"service", "B", ""}, //  2
        {"object", "A", "x"}, //  3
        {"object", "A", "y"}, //  4
        {"object", "B", "x"}, //  5 same object name, other service
    };
    //  expect[i][j]: a running session on e[i] blocks a new sync of e[j] (D12), symmetric.
    static const bool expect[6][6] = {
        {1, 1, 1, 1, 1, 1}, //  app overlaps everything
        {1, 1, 0, 1, 1, 0}, //  service A: itself and its objects
        {1, 0, 1, 0, 0, 1}, //  service B
        {1, 1, 0, 1, 0, 0}, //  A/x: app, its service, itself
        {1, 1, 0, 0, 1, 0}, //  A/y
        {1, 0, 1, 0, 0, 1}, //  B/x
    };
    for (size_t i = 0; i < 6; i++) {
        session_t *s = orch_session_new("s", e[i].level, e[i].service, e[i].object, "{}");
        for (size_t j = 0; j < 6; j++) {
            bool got = orch_session_overlaps(s, e[j].level, e[j].service, e[j].object);
            if (got != expect[i][j])
                fail_msg("%s %s/%s vs %s %s/%s: got %d", e[i].level, e[i].service, e[i].object,
                         e[j].level, e[j].service, e[j].object, got);
        }
        orch_session_destroy(&s);
    }
}

static void
test_finished_and_lookup(void **state)
{
    (void)state;
    session_t *s = orch_session_new("s", "service", "A", "", "{}");
    assert_true(orch_session_finished(s)); //  empty plan
    orch_session_add_object(s, "A", "x");
    orch_session_add_object(s, "A", "y");
    orch_session_add_object(s, "B", "x");
    assert_int_equal(s->nobjs, 3);
    assert_ptr_equal(orch_session_object(s, "A", "y"), &s->objs[1]);
    assert_ptr_equal(orch_session_object(s, "B", "x"), &s->objs[2]);
    assert_null(orch_session_object(s, "B", "y"));
    assert_null(orch_session_object(s, "", "x"));
    assert_int_equal(s->objs[0].state, SOBJ_PENDING);
    assert_false(orch_session_finished(s));
    s->objs[0].state = SOBJ_DONE;
    s->objs[1].state = SOBJ_FAILED;
    s->objs[2].state = SOBJ_RUNNING;
    assert_false(orch_session_finished(s));
    s->objs[2].state = SOBJ_SKIPPED;
    assert_true(orch_session_finished(s));
    s->objs[1].state = SOBJ_PENDING;
    assert_false(orch_session_finished(s));
    orch_session_destroy(&s);
}

static void
test_batch(void **state)
{
    (void)state;
    session_t *s = orch_session_new("s", "object", "A", "x", "{}");
    es_progress_t p[3] = {s_progress("x", 1, 500), s_progress("x", 2, 0), s_progress("x", 3, 42)};
    for (int i = 0; i < 3; i++)
        orch_session_batch(s, &p[i]);
    assert_int_equal(s->downloaded, 542);
    char *doc = es_sprintf("[%s]", s->batches.data);
    yajl_val root = s_parse(doc);
    assert_int_equal(root->u.array.len, 3);
    for (size_t i = 0; i < 3; i++) {
        yajl_val b = root->u.array.values[i];
        assert_int_equal(s_keys(b), 9);
        assert_string_equal(s_str_at(b, "object", NULL), "x");
        assert_int_equal(s_int_at(b, "batchNumber", NULL), p[i].batch);
        assert_int_equal(s_int_at(b, "numberOfRecords", NULL), p[i].records);
        assert_int_equal(s_int_at(b, "requestCreationTime", NULL), 1);
        assert_int_equal(s_int_at(b, "networkDurationTime", NULL), 21 + i);
        assert_int_equal(s_int_at(b, "responseParsingTime", NULL), 3);
        assert_int_equal(s_int_at(b, "dataPersistanceTime", NULL), 4);
        assert_int_equal(s_int_at(b, "bytes", NULL), (long long)p[i].bytes);
        assert_int_equal(s_int_at(b, "retries", NULL), i);
    }
    yajl_tree_free(root);
    free(doc);
    orch_session_destroy(&s);
}

static void
test_event(void **state)
{
    (void)state;
    session_t *s = orch_session_new("sess \"1\"", "object", "A", "x", "{}");
    es_buf_t ev;
    es_buf_init(&ev);
    es_buf_puts(&ev, "stale contents are dropped");
    orch_session_event(s, "Download", "Ended", "x", ",\"batchNumber\":3", &ev);
    yajl_val root = s_parse(ev.data);
    assert_int_equal(s_keys(root), 5);
    assert_string_equal(s_str_at(root, "session", NULL), "sess \"1\"");
    assert_string_equal(s_str_at(root, "phase", NULL), "Download");
    assert_string_equal(s_str_at(root, "state", NULL), "Ended");
    assert_string_equal(s_str_at(root, "name", NULL), "x");
    assert_int_equal(s_int_at(root, "batchNumber", NULL), 3);
    yajl_tree_free(root);
    orch_session_event(s, "Sync", "Started", "x", "", &ev);
    root = s_parse(ev.data);
    assert_int_equal(s_keys(root), 4);
    yajl_tree_free(root);
    es_buf_release(&ev);
    orch_session_destroy(&s);
}

//  ---------------------------------------------------------------------------------------------
//  Results.

static yajl_val
s_finish(session_t *s, int32_t expect_code)
{
    assert_int_equal(orch_session_finish(s), expect_code);
    assert_true(s->done);
    assert_non_null(s->result);
    return s_parse(s->result);
}

static void
test_finish_success(void **state)
{
    (void)state;
    //  Object level, nothing else: exactly {status, name}.
    session_t *s = orch_session_new("s", "object", "Svc", "Orders", "{}");
    yajl_val r = s_finish(s, 0);
    assert_int_equal(s_keys(r), 2);
    assert_int_equal(s_int_at(r, "status", NULL), 0);
    assert_string_equal(s_str_at(r, "name", NULL), "Orders");
    yajl_tree_free(r);
    orch_session_destroy(&s);

    //  Service level: objectServiceName.
    s = orch_session_new("s", "service", "Svc", "", "{}");
    r = s_finish(s, 0);
    assert_int_equal(s_keys(r), 2);
    assert_int_equal(s_int_at(r, "status", NULL), 0);
    assert_string_equal(s_str_at(r, "objectServiceName", NULL), "Svc");
    assert_null(s_at(r, "name", NULL, NULL));
    yajl_tree_free(r);
    orch_session_destroy(&s);

    //  With stats, record errors and warnings.
    s = orch_session_new("s", "service", "Svc", "", "{}");
    s->get_stats = true;
    s->start_epoch_ms = 1700000000000;
    s->start_mono_ms = es_now_ms() - 1500;
    es_progress_t p1 = s_progress("A", 1, 500), p2 = s_progress("B", 1, 7);
    orch_session_batch(s, &p1);
    orch_session_batch(s, &p2);
    es_buf_puts(&s->errors, "{\"object\":\"A\",\"objectService\":\"Svc\",\"opstatus\":8009,"
                            "\"errmsg\":\"bad\"},{\"object\":\"B\",\"opstatus\":1}");
    es_buf_puts(&s->warnings, "\"w1\",\"w\\\"2\"");
    r = s_finish(s, 0);
    assert_int_equal(s_keys(r), 5);
    assert_int_equal(s_int_at(r, "status", NULL), 0);
    assert_string_equal(s_str_at(r, "objectServiceName", NULL), "Svc");
    yajl_val st = s_at(r, "syncStats", NULL, NULL);
    assert_int_equal(s_keys(st), 10);
    assert_string_equal(s_str_at(st, "name", NULL), "Svc");
    assert_int_equal(s_int_at(st, "startTime", NULL), 1700000000000);
    long long elapsed = s_int_at(st, "syncElapsedTime", NULL);
    assert_true(elapsed >= 1500 && elapsed < 60000);
    assert_int_equal(s_int_at(st, "numberOfRecordsSynced", NULL), 507);
    assert_int_equal(s_int_at(st, "totalUploadedRecords", NULL), 0);
    assert_int_equal(s_int_at(st, "totalDownloadedRecords", NULL), 507);
    assert_int_equal(s_int_at(st, "reconciledDeletes", NULL), 0);
    assert_int_equal(s_int_at(st, "uploadCacheReplays", NULL), 0);
    assert_int_equal(s_at(st, "uploadStats", NULL, NULL)->u.array.len, 0);
    yajl_val ds = s_at(st, "downloadStats", NULL, NULL);
    assert_int_equal(ds->u.array.len, 2);
    assert_string_equal(s_str_at(ds->u.array.values[1], "object", NULL), "B");
    assert_int_equal(s_int_at(ds->u.array.values[0], "numberOfRecords", NULL), 500);
    yajl_val up = s_at(r, "syncErrors", "upload", NULL),
             down = s_at(r, "syncErrors", "download", NULL);
    assert_true(YAJL_IS_ARRAY(up));
    assert_int_equal(up->u.array.len, 0);
    assert_int_equal(down->u.array.len, 2);
    assert_int_equal(s_int_at(down->u.array.values[0], "opstatus", NULL), 8009);
    assert_string_equal(s_str_at(down->u.array.values[0], "errmsg", NULL), "bad");
    yajl_val w = s_at(r, "warnings", NULL, NULL);
    assert_int_equal(w->u.array.len, 2);
    assert_string_equal(YAJL_GET_STRING(w->u.array.values[1]), "w\"2");
    yajl_tree_free(r);
    //  Finishing again rebuilds the same result without leaking the first.
    r = s_finish(s, 0);
    assert_int_equal(s_keys(r), 5);
    yajl_tree_free(r);
    orch_session_destroy(&s);

    //  Object-level stats carry the object's name.
    s = orch_session_new("s", "object", "Svc", "Orders", "{}");
    s->get_stats = true;
    r = s_finish(s, 0);
    assert_int_equal(s_keys(r), 3);
    assert_string_equal(s_str_at(r, "syncStats", "name"), "Orders");
    assert_int_equal(s_at(r, "syncStats", "downloadStats", NULL)->u.array.len, 0);
    yajl_tree_free(r);
    orch_session_destroy(&s);
}

static void
test_finish_failure(void **state)
{
    (void)state;
    session_t *s = orch_session_new("s", "object", "Svc", "Orders", "{}");
    s->code = 2474;
    s->what = es_strdup("Sync download failed with an error: HTTP 500 \"x\"");
    yajl_val r = s_finish(s, 2474);
    assert_int_equal(s_keys(r), 5);
    assert_int_equal(s_int_at(r, "code", NULL), 2474);
    assert_string_equal(s_str_at(r, "message", NULL),
                        "Sync download failed with an error: HTTP 500 \"x\"");
    assert_string_equal(s_str_at(r, "domain", NULL), "OfflineObjectsError");
    assert_int_equal(s_int_at(r, "status", NULL), -1);
    assert_int_equal(s_keys(s_at(r, "userInfo", NULL, NULL)), 1);
    assert_string_equal(s_str_at(r, "userInfo", "objectName"), "Orders");
    yajl_tree_free(r);
    orch_session_destroy(&s);

    //  Service level, no text, with errors and stats: failure keys plus both extras.
    s = orch_session_new("s", "service", "Svc", "", "{}");
    s->code = 2030;
    s->get_stats = true;
    es_buf_puts(&s->errors, "{\"object\":\"A\",\"opstatus\":1}");
    r = s_finish(s, 2030);
    assert_int_equal(s_keys(r), 7);
    assert_string_equal(s_str_at(r, "message", NULL), "sync failed");
    assert_int_equal(s_int_at(r, "status", NULL), -1);
    assert_string_equal(s_str_at(r, "userInfo", "objectServiceName"), "Svc");
    assert_string_equal(s_str_at(r, "syncStats", "name"), "Svc");
    assert_int_equal(s_at(r, "syncErrors", "download", NULL)->u.array.len, 1);
    yajl_tree_free(r);
    orch_session_destroy(&s);
}

static void
test_finish_cancelled(void **state)
{
    (void)state;
    session_t *s = orch_session_new("s", "service", "Svc", "", "{}");
    s->cancelled = true;
    yajl_val r = s_finish(s, 2478);
    assert_int_equal(s->code, 2478);
    assert_int_equal(s_keys(r), 5);
    assert_int_equal(s_int_at(r, "code", NULL), 2478);
    assert_string_equal(s_str_at(r, "message", NULL), "Syncing operation has been cancelled");
    assert_string_equal(s_str_at(r, "domain", NULL), "OfflineObjectsError");
    assert_int_equal(s_int_at(r, "status", NULL), -1);
    assert_string_equal(s_str_at(r, "userInfo", "objectServiceName"), "Svc");
    yajl_tree_free(r);
    orch_session_destroy(&s);

    //  A failure that came first keeps its code and text.
    s = orch_session_new("s", "object", "Svc", "O", "{}");
    s->cancelled = true;
    s->code = 2474;
    s->what = es_strdup("download failed");
    r = s_finish(s, 2474);
    assert_int_equal(s_int_at(r, "code", NULL), 2474);
    assert_string_equal(s_str_at(r, "message", NULL), "download failed");
    yajl_tree_free(r);
    orch_session_destroy(&s);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_to_json_values),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_from_json_malformed),
        cmocka_unit_test(test_overlaps),
        cmocka_unit_test(test_finished_and_lookup),
        cmocka_unit_test(test_batch),
        cmocka_unit_test(test_event),
        cmocka_unit_test(test_finish_success),
        cmocka_unit_test(test_finish_failure),
        cmocka_unit_test(test_finish_cancelled),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
