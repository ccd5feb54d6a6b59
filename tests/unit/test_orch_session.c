//  test_orch_session - session state: JSON round trip and malformed input, entity overlap,
//  batch stats (kept entries, the cap, the restore path), object failures and the success /
//  failure / cancellation result objects at every level (parsed, not grepped).
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "actors/orchestrator/orch_session.h"
#include "common/es_actor.h"
#include "common/es_mem.h"
#include "protocol/es_json.h"
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

//  v written back as compact JSON (caller frees): compares two subtrees byte for byte.
static char *
s_json_of(yajl_val v)
{
    es_buf_t b;
    es_buf_init(&b);
    es_json_write(&b, v);
    return es_buf_steal(&b);
}

static yajl_val
s_array_at(yajl_val v, const char *k1, const char *k2, const char *k3, size_t expect_len)
{
    yajl_val a = s_at(v, k1, k2, k3);
    if (!a || !YAJL_IS_ARRAY(a))
        fail_msg("%s.%s.%s: expected an array", k1, k2 ? k2 : "", k3 ? k3 : "");
    if (a->u.array.len != expect_len)
        fail_msg("%s.%s.%s: %zu elements, expected %zu", k1, k2 ? k2 : "", k3 ? k3 : "",
                 a->u.array.len, expect_len);
    return a;
}

//  One committed batch of o; the downloadStats entry it produced is returned (caller frees).
static char *
s_batch(session_t *s, sobj_t *o, const es_progress_t *p)
{
    es_buf_t entry;
    es_buf_init(&entry);
    orch_session_batch(s, o, p, &entry);
    return es_buf_steal(&entry);
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
    free(s_batch(s, &s->objs[2], &p1));
    free(s_batch(s, &s->objs[2], &p2));
    es_buf_puts(&s->errors, "{\"object\":\"Fail\",\"objectService\":\"Svc\",\"opstatus\":500,"
                            "\"errmsg\":\"boom \\\"x\\\"\"}");
    es_buf_puts(&s->warnings, "\"filter of A ignored\",\"caf\xC3\xA9\"");
    const char *what = "Sync download failed with an error: \"quoted\"\nline 2";
    orch_session_fail_object(s, &s->objs[3], 2474, what, strlen(what));
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
        assert_int_equal(b->objs[i].code, a->objs[i].code);
        assert_string_equal(b->objs[i].what, a->objs[i].what);
    }
    //  Batch entries live in their own table: the session row only counts them.
    assert_int_equal(b->nbatches, a->nbatches);
    assert_int_equal(b->nkept, 0);
    assert_int_equal(b->batches.len, 0);
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
        if (i == 3) {
            //  The failed object carries its own code and message.
            assert_int_equal(s_int_at(o, "code", NULL), 2474);
            assert_string_equal(s_str_at(o, "what", NULL), s->what);
            assert_int_equal(s_keys(o), 8);
        } else {
            assert_null(s_at(o, "code", NULL, NULL));
            assert_null(s_at(o, "what", NULL, NULL));
            assert_int_equal(s_keys(o), 6); //  no job id
        }
    }
    //  Only the count of batch entries, not the entries.
    assert_null(s_at(root, "batches", NULL, NULL));
    assert_int_equal(s_int_at(root, "nbatches", NULL), 2);
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
        //  The entries read back from their table rebuild the same list.
        char *arr = es_sprintf("[%s]", s->batches.data);
        yajl_val entries = s_parse(arr);
        for (size_t i = 0; i < entries->u.array.len; i++) {
            char *e = s_json_of(entries->u.array.values[i]);
            orch_session_add_batch(back, e, strlen(e));
            free(e);
        }
        assert_int_equal(back->nkept, 2);
        assert_string_equal(back->batches.data, s->batches.data);
        yajl_tree_free(entries);
        free(arr);
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
    char *d5 = s_replace(d4, "\"errors\":[{", "\"errors\":{\"x\":[{");
    char *d6 = s_replace(d5, "}],\"warnings\"", "}]},\"warnings\"");
    char *d7 = s_replace(d6, "\"result\":{", "\"result\":[{");
    //  The result is the last member: close the array before the document's brace.
    char *d8 = es_sprintf("%.*s]}", (int)strlen(d7) - 1, d7);
    char *d9 = s_replace(d8, "\"nbatches\":2", "\"nbatches\":-");
    //  d9 is not JSON; d10 is, with nbatches a string.
    assert_null(orch_session_from_json(d9, strlen(d9)));
    char *d10 = s_replace(d8, "\"nbatches\":2", "\"nbatches\":\"2\"");
    //  The session code was replaced above: the next one is the failed object's.
    char *d11 = s_replace(d10, "\"code\":2474", "\"code\":[2474]");
    char *d12 = s_replace(d11, "\"attempts\":4,\"code\"", "\"attempts\":true,\"code\"");
    session_t *back = orch_session_from_json(d12, strlen(d12));
    if (!back)
        fail_msg("lenient fields refused: %s", d12);
    assert_string_equal(back->sync_type, "fullSync");
    assert_false(back->get_stats);
    assert_int_equal(back->code, 0);
    assert_int_equal(back->start_epoch_ms, 0);
    assert_int_equal(back->nbatches, 0);
    assert_int_equal(back->errors.len, 0);
    assert_null(back->result);
    assert_int_equal(back->nobjs, 5);
    assert_int_equal(back->objs[3].code, 0);
    assert_int_equal(back->objs[3].attempts, 0);
    assert_string_equal(back->objs[3].what, s->what); //  the message itself was well formed
    orch_session_destroy(&back);
    free(d9);
    free(d10);
    free(d11);
    free(d12);
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

//  The fields of the downloadStats entry made for progress p of an object of service.
static void
s_check_entry(yajl_val b, const es_progress_t *p, const char *service)
{
    assert_int_equal(s_keys(b), 10);
    assert_string_equal(s_str_at(b, "objectService", NULL), service);
    assert_string_equal(s_str_at(b, "object", NULL), p->object);
    assert_int_equal(s_int_at(b, "batchNumber", NULL), p->batch);
    assert_int_equal(s_int_at(b, "numberOfRecords", NULL), p->records);
    assert_int_equal(s_int_at(b, "requestCreationTime", NULL), 1);
    assert_int_equal(s_int_at(b, "networkDurationTime", NULL), 20 + p->batch);
    assert_int_equal(s_int_at(b, "responseParsingTime", NULL), 3);
    assert_int_equal(s_int_at(b, "dataPersistanceTime", NULL), 4);
    assert_int_equal(s_int_at(b, "bytes", NULL), (long long)p->bytes);
    assert_int_equal(s_int_at(b, "retries", NULL), p->batch - 1);
}

static void
test_batch(void **state)
{
    (void)state;
    for (int stats = 0; stats < 2; stats++) {
        session_t *s = orch_session_new("s", "object", "A \"q\"", "x", "{}");
        s->get_stats = stats;
        orch_session_add_object(s, "A \"q\"", "x");
        es_progress_t p[3] = {s_progress("x", 1, 500), s_progress("x", 2, 0),
                              s_progress("x", 3, 42)};
        es_buf_t entry, all;
        es_buf_init(&entry);
        es_buf_init(&all);
        es_buf_puts(&entry, "stale contents are dropped");
        for (size_t i = 0; i < 3; i++) {
            orch_session_batch(s, &s->objs[0], &p[i], &entry);
            yajl_val e = s_parse(entry.data);
            s_check_entry(e, &p[i], "A \"q\"");
            yajl_tree_free(e);
            if (all.len)
                es_buf_putc(&all, ',');
            es_buf_append(&all, entry.data, entry.len);
            assert_int_equal(s->nbatches, i + 1);
        }
        assert_int_equal(s->downloaded, 542);
        if (!stats) {
            //  Without getSyncStats nothing is kept (the entry is still made for the table).
            assert_int_equal(s->nkept, 0);
            assert_int_equal(s->batches.len, 0);
        } else {
            //  Kept as given, comma-joined.
            assert_int_equal(s->nkept, 3);
            assert_string_equal(s->batches.data, all.data);
            char *doc = es_sprintf("[%s]", s->batches.data);
            yajl_val root = s_parse(doc);
            assert_int_equal(root->u.array.len, 3);
            for (size_t i = 0; i < 3; i++)
                s_check_entry(root->u.array.values[i], &p[i], "A \"q\"");
            yajl_tree_free(root);
            free(doc);
        }
        es_buf_release(&entry);
        es_buf_release(&all);
        orch_session_destroy(&s);
    }
}

//  Past ORCH_STATS_BATCHES_MAX entries the list stops growing and the result says so.
static void
test_batch_cap(void **state)
{
    (void)state;
    session_t *s = orch_session_new("s", "service", "A", "", "{}");
    s->get_stats = true;
    orch_session_add_object(s, "A", "x");
    es_buf_t entry;
    es_buf_init(&entry);
    const uint32_t n = ORCH_STATS_BATCHES_MAX + 3;
    for (uint32_t i = 1; i <= n; i++) {
        es_progress_t p = s_progress("x", i, 2);
        orch_session_batch(s, &s->objs[0], &p, &entry);
        assert_int_equal(s->nkept, i < ORCH_STATS_BATCHES_MAX ? i : ORCH_STATS_BATCHES_MAX);
    }
    assert_int_equal(s->nbatches, n);
    assert_int_equal(s->downloaded, 2ull * n);
    //  The entry of a batch past the cap is still made.
    yajl_val e = s_parse(entry.data);
    assert_int_equal(s_int_at(e, "batchNumber", NULL), n);
    yajl_tree_free(e);
    //  Restored entries past the cap are dropped too.
    orch_session_add_batch(s, "{\"batchNumber\":0}", 17);
    assert_int_equal(s->nkept, ORCH_STATS_BATCHES_MAX);

    assert_int_equal(orch_session_finish(s), 0);
    yajl_val r = s_parse(s->result);
    yajl_val st = s_at(r, "syncStats", NULL, NULL);
    assert_int_equal(s_keys(st), 11);
    assert_true(YAJL_IS_TRUE(s_at(st, "downloadStatsTruncated", NULL, NULL)));
    assert_int_equal(s_int_at(st, "totalDownloadedRecords", NULL), 2ll * n);
    yajl_val ds = s_array_at(st, "downloadStats", NULL, NULL, ORCH_STATS_BATCHES_MAX);
    assert_int_equal(s_int_at(ds->u.array.values[0], "batchNumber", NULL), 1);
    assert_int_equal(s_int_at(ds->u.array.values[ORCH_STATS_BATCHES_MAX - 1], "batchNumber", NULL),
                     ORCH_STATS_BATCHES_MAX);
    yajl_tree_free(r);
    es_buf_release(&entry);
    orch_session_destroy(&s);
}

//  After a restart: the session row, then its entries one by one from the batch table.
static void
test_add_batch_restore(void **state)
{
    (void)state;
    session_t *s = orch_session_new("s", "service", "A", "", "{}");
    s->get_stats = true;
    orch_session_add_object(s, "A", "x");
    orch_session_add_object(s, "A", "y");
    es_progress_t p[3] = {s_progress("x", 1, 10), s_progress("y", 1, 20), s_progress("x", 2, 30)};
    char *entries[3];
    for (size_t i = 0; i < 3; i++)
        entries[i] = s_batch(s, &s->objs[p[i].object[0] - 'x'], &p[i]);
    char *json = s_to_json(s);

    //  Every entry back: the same list, nothing marked truncated.
    session_t *back = orch_session_from_json(json, strlen(json));
    assert_non_null(back);
    assert_int_equal(back->nbatches, 3);
    assert_int_equal(back->downloaded, 60);
    for (size_t i = 0; i < 3; i++)
        orch_session_add_batch(back, entries[i], strlen(entries[i]));
    assert_int_equal(back->nkept, 3);
    assert_string_equal(back->batches.data, s->batches.data);
    assert_int_equal(orch_session_finish(back), 0);
    yajl_val r = s_parse(back->result);
    yajl_val st = s_at(r, "syncStats", NULL, NULL);
    assert_int_equal(s_keys(st), 10);
    assert_null(s_at(st, "downloadStatsTruncated", NULL, NULL));
    assert_int_equal(s_int_at(st, "totalDownloadedRecords", NULL), 60);
    yajl_val ds = s_array_at(st, "downloadStats", NULL, NULL, 3);
    for (size_t i = 0; i < 3; i++)
        s_check_entry(ds->u.array.values[i], &p[i], "A");
    yajl_tree_free(r);
    orch_session_destroy(&back);

    //  An entry missing from the table: the list is short and says so.
    back = orch_session_from_json(json, strlen(json));
    assert_non_null(back);
    orch_session_add_batch(back, entries[0], strlen(entries[0]));
    orch_session_add_batch(back, entries[2], strlen(entries[2]));
    assert_int_equal(back->nkept, 2);
    assert_int_equal(orch_session_finish(back), 0);
    r = s_parse(back->result);
    st = s_at(r, "syncStats", NULL, NULL);
    assert_int_equal(s_keys(st), 11);
    assert_true(YAJL_IS_TRUE(s_at(st, "downloadStatsTruncated", NULL, NULL)));
    ds = s_array_at(st, "downloadStats", NULL, NULL, 2);
    s_check_entry(ds->u.array.values[0], &p[0], "A");
    s_check_entry(ds->u.array.values[1], &p[2], "A");
    yajl_tree_free(r);
    orch_session_destroy(&back);

    //  Without getSyncStats entries are not kept, nor is the list marked.
    s->get_stats = false;
    char *json2 = s_to_json(s);
    back = orch_session_from_json(json2, strlen(json2));
    assert_non_null(back);
    orch_session_add_batch(back, entries[0], strlen(entries[0]));
    assert_int_equal(back->nkept, 0);
    assert_int_equal(back->batches.len, 0);
    assert_int_equal(orch_session_finish(back), 0);
    r = s_parse(back->result);
    assert_int_equal(s_keys(r), 2);
    assert_null(s_at(r, "syncStats", NULL, NULL));
    yajl_tree_free(r);
    orch_session_destroy(&back);
    free(json2);

    //  The cap applies to restored entries alone.
    back = orch_session_new("s", "object", "A", "x", "{}");
    back->get_stats = true;
    back->nbatches = ORCH_STATS_BATCHES_MAX + 1;
    for (uint32_t i = 1; i <= ORCH_STATS_BATCHES_MAX + 1; i++) {
        char *e = es_sprintf("{\"objectService\":\"A\",\"object\":\"x\",\"batchNumber\":%u}", i);
        orch_session_add_batch(back, e, strlen(e));
        free(e);
    }
    assert_int_equal(back->nkept, ORCH_STATS_BATCHES_MAX);
    char *last = es_sprintf(",{\"objectService\":\"A\",\"object\":\"x\",\"batchNumber\":%u}",
                            ORCH_STATS_BATCHES_MAX);
    size_t ll = strlen(last);
    assert_true(back->batches.len > ll);
    assert_string_equal(back->batches.data + back->batches.len - ll, last);
    free(last);
    orch_session_destroy(&back);

    for (size_t i = 0; i < 3; i++)
        free(entries[i]);
    free(json);
    orch_session_destroy(&s);
}

static void
test_fail_object(void **state)
{
    (void)state;
    session_t *s = orch_session_new("s", "service", "A", "", "{}");
    orch_session_add_object(s, "A", "x");
    orch_session_add_object(s, "A", "y");
    orch_session_add_object(s, "A", "z");
    s->objs[0].state = SOBJ_RUNNING;
    s->objs[1].state = SOBJ_RUNNING;
    //  Only len bytes of the text count.
    const char *t1 = "HTTP 500 \"x\"<not this>";
    orch_session_fail_object(s, &s->objs[1], 2474, t1, 12);
    assert_int_equal(s->objs[1].state, SOBJ_FAILED);
    assert_int_equal(s->objs[1].code, 2474);
    assert_string_equal(s->objs[1].what, "HTTP 500 \"x\"");
    assert_int_equal(s->code, 2474);
    assert_string_equal(s->what, "HTTP 500 \"x\"");
    //  A later failure is the object's own; the session keeps the first.
    orch_session_fail_object(s, &s->objs[0], 2030, "timeout", 7);
    assert_int_equal(s->objs[0].state, SOBJ_FAILED);
    assert_int_equal(s->objs[0].code, 2030);
    assert_string_equal(s->objs[0].what, "timeout");
    assert_int_equal(s->code, 2474);
    assert_string_equal(s->what, "HTTP 500 \"x\"");
    assert_int_equal(s->objs[2].state, SOBJ_PENDING);
    assert_int_equal(s->objs[2].code, 0);
    assert_string_equal(s->objs[2].what, "");
    assert_true(orch_session_finished(s) == false);

    //  Persisted and restored per object.
    char *json = s_to_json(s);
    yajl_val root = s_parse(json);
    yajl_val objs = s_at(root, "objects", NULL, NULL);
    assert_int_equal(s_int_at(objs->u.array.values[0], "code", NULL), 2030);
    assert_string_equal(s_str_at(objs->u.array.values[0], "what", NULL), "timeout");
    assert_int_equal(s_int_at(objs->u.array.values[1], "code", NULL), 2474);
    assert_string_equal(s_str_at(objs->u.array.values[1], "state", NULL), "failed");
    assert_null(s_at(objs->u.array.values[2], "code", NULL, NULL));
    yajl_tree_free(root);
    session_t *back = orch_session_from_json(json, strlen(json));
    assert_non_null(back);
    s_check_same(s, back);
    orch_session_destroy(&back);
    free(json);

    //  The result names the first failure, as "<generic>: <details>".
    assert_int_equal(orch_session_finish(s), 2474);
    yajl_val r = s_parse(s->result);
    assert_string_equal(s_str_at(r, "message", NULL),
                        "Sync download failed with an error: HTTP 500 \"x\"");
    yajl_tree_free(r);
    orch_session_destroy(&s);

    //  A message longer than the object's field: the object keeps a prefix, the session all.
    s = orch_session_new("s", "object", "A", "x", "{}");
    orch_session_add_object(s, "A", "x");
    char long_what[400];
    memset(long_what, 'w', sizeof long_what);
    orch_session_fail_object(s, &s->objs[0], 2038, long_what, sizeof long_what);
    assert_int_equal(strlen(s->objs[0].what), sizeof s->objs[0].what - 1);
    assert_int_equal(strlen(s->what), sizeof long_what);
    assert_int_equal(memcmp(s->what, long_what, sizeof long_what), 0);
    //  Empty details: the result has the generic message alone.
    orch_session_fail_object(s, &s->objs[0], 2030, "", 0);
    assert_int_equal(s->objs[0].code, 2030);
    assert_string_equal(s->objs[0].what, "");
    assert_int_equal(s->code, 2038);
    orch_session_destroy(&s);

    s = orch_session_new("s", "object", "A", "x", "{}");
    orch_session_add_object(s, "A", "x");
    orch_session_fail_object(s, &s->objs[0], 2474, "", 0);
    assert_int_equal(orch_session_finish(s), 2474);
    r = s_parse(s->result);
    assert_string_equal(s_str_at(r, "message", NULL), "Sync download failed with an error");
    assert_string_equal(s_str_at(r, "userInfo", "objectName"), "x");
    yajl_tree_free(r);
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
    orch_session_add_object(s, "Svc", "A");
    orch_session_add_object(s, "Svc", "B");
    es_progress_t p1 = s_progress("A", 1, 500), p2 = s_progress("B", 1, 7);
    free(s_batch(s, &s->objs[0], &p1));
    free(s_batch(s, &s->objs[1], &p2));
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
    //  The Sync/Ended event repeats this value; it must not read the clock again.
    assert_int_equal(elapsed, s->elapsed_ms);
    assert_int_equal(s_int_at(st, "numberOfRecordsSynced", NULL), 507);
    assert_int_equal(s_int_at(st, "totalUploadedRecords", NULL), 0);
    assert_int_equal(s_int_at(st, "totalDownloadedRecords", NULL), 507);
    assert_int_equal(s_int_at(st, "reconciledDeletes", NULL), 0);
    assert_int_equal(s_int_at(st, "uploadCacheReplays", NULL), 0);
    assert_int_equal(s_at(st, "uploadStats", NULL, NULL)->u.array.len, 0);
    yajl_val ds = s_array_at(st, "downloadStats", NULL, NULL, 2);
    s_check_entry(ds->u.array.values[0], &p1, "Svc");
    s_check_entry(ds->u.array.values[1], &p2, "Svc");
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
    assert_string_equal(s_str_at(r, "message", NULL), "An error occurred in the network layer");
    assert_int_equal(s_int_at(r, "status", NULL), -1);
    assert_string_equal(s_str_at(r, "userInfo", "objectServiceName"), "Svc");
    assert_string_equal(s_str_at(r, "syncStats", "name"), "Svc");
    assert_int_equal(s_at(r, "syncErrors", "download", NULL)->u.array.len, 1);
    yajl_tree_free(r);
    orch_session_destroy(&s);

    //  Messages are "<generic>: <details>"; codes without a generic text keep the details.
    static const struct {
        int32_t code;
        const char *what, *message;
    } m[] = {
        {2038, "opstatus 8009", "Server responded with error opstatus: opstatus 8009"},
        {2038, NULL, "Server responded with error opstatus"},
        {2038, "", "Server responded with error opstatus"},
        {2038, "Server responded with error opstatus: 8009",
         "Server responded with error opstatus: 8009"},
        {2999, "odd failure", "odd failure"},
        {2999, NULL, "sync failed"},
    };
    for (size_t i = 0; i < sizeof m / sizeof m[0]; i++) {
        s = orch_session_new("s", "service", "Svc", "", "{}");
        s->code = m[i].code;
        s->what = m[i].what ? es_strdup(m[i].what) : NULL;
        r = s_finish(s, m[i].code);
        assert_int_equal(s_int_at(r, "code", NULL), m[i].code);
        assert_string_equal(s_str_at(r, "message", NULL), m[i].message);
        //  The session keeps the details alone (the message is built for the result).
        if (m[i].what)
            assert_string_equal(s->what, m[i].what);
        yajl_tree_free(r);
        orch_session_destroy(&s);
    }
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
    assert_string_equal(s_str_at(r, "message", NULL),
                        "Sync download failed with an error: download failed");
    yajl_tree_free(r);
    orch_session_destroy(&s);
}

//  ---------------------------------------------------------------------------------------------
//  Application level: one result per object service.

//  An app session over S1/a, S1/b, S2/c, S3/d with stats: batches a1, c1, b1, a2 (records
//  counted per object as orch.c does), one record error in S1 and one in S2, one without a
//  service, and a warning. p gets the four progress messages.
static session_t *
s_app_session(es_progress_t p[4])
{
    session_t *s = orch_session_new("app-1", "app", "", "", "{}");
    s->get_stats = true;
    s->start_epoch_ms = 1700000000000;
    orch_session_add_object(s, "S1", "a");
    orch_session_add_object(s, "S1", "b");
    orch_session_add_object(s, "S2", "c");
    orch_session_add_object(s, "S3", "d");
    p[0] = s_progress("a", 1, 100);
    p[1] = s_progress("c", 1, 7);
    p[2] = s_progress("b", 1, 20);
    p[3] = s_progress("a", 2, 3);
    for (size_t i = 0; i < 4; i++) {
        sobj_t *o = &s->objs[p[i].object[0] - 'a'];
        o->records += p[i].records;
        free(s_batch(s, o, &p[i]));
    }
    for (size_t i = 0; i < 4; i++)
        s->objs[i].state = SOBJ_DONE;
    es_buf_puts(&s->errors, "{\"object\":\"a\",\"objectService\":\"S1\",\"opstatus\":1,\"errmsg\":"
                            "\"e1\"},{\"object\":\"c\",\"objectService\":\"S2\",\"opstatus\":2,"
                            "\"errmsg\":\"e2\"}");
    es_buf_puts(&s->warnings, "\"w1\"");
    return s;
}

//  syncStats of one service inside an app result: its records and its own entries only.
static void
s_check_svc_stats(yajl_val res, const char *svc, long long records, const es_progress_t *p,
                  const size_t *which, size_t n)
{
    yajl_val st = s_at(res, "syncStats", NULL, NULL);
    assert_non_null(st);
    assert_int_equal(s_keys(st), 10);
    assert_string_equal(s_str_at(st, "name", NULL), svc);
    assert_int_equal(s_int_at(st, "startTime", NULL), 1700000000000);
    assert_int_equal(s_int_at(st, "numberOfRecordsSynced", NULL), records);
    assert_int_equal(s_int_at(st, "totalDownloadedRecords", NULL), records);
    assert_int_equal(s_int_at(st, "totalUploadedRecords", NULL), 0);
    yajl_val ds = s_array_at(st, "downloadStats", NULL, NULL, n);
    for (size_t i = 0; i < n; i++)
        s_check_entry(ds->u.array.values[i], &p[which[i]], svc);
}

//  syncErrors.download of one service: the opstatus of each of its entries.
static void
s_check_svc_errors(yajl_val res, const long long *opstatus, size_t n)
{
    if (!n) {
        assert_null(s_at(res, "syncErrors", NULL, NULL));
        return;
    }
    assert_int_equal(s_keys(s_at(res, "syncErrors", NULL, NULL)), 2);
    s_array_at(res, "syncErrors", "upload", NULL, 0);
    yajl_val down = s_array_at(res, "syncErrors", "download", NULL, n);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(s_int_at(down->u.array.values[i], "opstatus", NULL), opstatus[i]);
}

static void
s_check_warnings(yajl_val v)
{
    yajl_val w = s_array_at(v, "warnings", NULL, NULL, 1);
    assert_string_equal(YAJL_GET_STRING(w->u.array.values[0]), "w1");
}

static void
test_finish_app_success(void **state)
{
    (void)state;
    es_progress_t p[4];
    session_t *s = s_app_session(p);
    //  Without a service, an entry is every service's.
    es_buf_puts(&s->errors, ",{\"object\":\"?\",\"opstatus\":3}");
    yajl_val r = s_finish(s, 0);
    assert_int_equal(s->code, 0);
    assert_int_equal(s_keys(r), 3);
    assert_int_equal(s_int_at(r, "status", NULL), 0);
    assert_null(s_at(r, "failureResponse", NULL, NULL));
    assert_null(s_at(r, "code", NULL, NULL));
    s_check_warnings(r);
    yajl_val ok = s_at(r, "successResponse", NULL, NULL);
    assert_int_equal(s_keys(ok), 3);
    //  In plan order.
    assert_string_equal(ok->u.object.keys[0], "S1");
    assert_string_equal(ok->u.object.keys[1], "S2");
    assert_string_equal(ok->u.object.keys[2], "S3");

    yajl_val s1 = s_at(ok, "S1", NULL, NULL);
    assert_int_equal(s_keys(s1), 5);
    assert_int_equal(s_int_at(s1, "status", NULL), 0);
    assert_string_equal(s_str_at(s1, "objectServiceName", NULL), "S1");
    static const size_t s1_batches[] = {0, 2, 3};
    s_check_svc_stats(s1, "S1", 123, p, s1_batches, 3);
    static const long long s1_errs[] = {1, 3};
    s_check_svc_errors(s1, s1_errs, 2);
    s_check_warnings(s1);

    yajl_val s2 = s_at(ok, "S2", NULL, NULL);
    assert_int_equal(s_keys(s2), 5);
    assert_string_equal(s_str_at(s2, "objectServiceName", NULL), "S2");
    static const size_t s2_batches[] = {1};
    s_check_svc_stats(s2, "S2", 7, p, s2_batches, 1);
    static const long long s2_errs[] = {2, 3};
    s_check_svc_errors(s2, s2_errs, 2);

    yajl_val s3 = s_at(ok, "S3", NULL, NULL);
    assert_int_equal(s_keys(s3), 5);
    s_check_svc_stats(s3, "S3", 0, p, NULL, 0);
    static const long long s3_errs[] = {3};
    s_check_svc_errors(s3, s3_errs, 1);
    yajl_tree_free(r);
    orch_session_destroy(&s);

    //  No stats, errors or warnings: {status, successResponse:{svc:{status, name}}}.
    s = orch_session_new("app-2", "app", "", "", "{}");
    orch_session_add_object(s, "S1", "a");
    orch_session_add_object(s, "S2 \"q\"", "b");
    orch_session_add_object(s, "S1", "c");
    r = s_finish(s, 0);
    assert_int_equal(s_keys(r), 2);
    ok = s_at(r, "successResponse", NULL, NULL);
    assert_int_equal(s_keys(ok), 2);
    for (size_t i = 0; i < 2; i++) {
        const char *svc = i ? "S2 \"q\"" : "S1";
        yajl_val v = s_at(ok, svc, NULL, NULL);
        assert_int_equal(s_keys(v), 2);
        assert_int_equal(s_int_at(v, "status", NULL), 0);
        assert_string_equal(s_str_at(v, "objectServiceName", NULL), svc);
    }
    yajl_tree_free(r);
    orch_session_destroy(&s);

    //  No object services at all.
    s = orch_session_new("app-3", "app", "", "", "{}");
    r = s_finish(s, 0);
    assert_int_equal(s_keys(r), 2);
    assert_int_equal(s_keys(s_at(r, "successResponse", NULL, NULL)), 0);
    yajl_tree_free(r);
    orch_session_destroy(&s);
}

//  A failed service result inside an app result.
static void
s_check_svc_failure(yajl_val res, const char *svc, int32_t code, const char *message)
{
    assert_int_equal(s_int_at(res, "code", NULL), code);
    assert_string_equal(s_str_at(res, "message", NULL), message);
    assert_string_equal(s_str_at(res, "domain", NULL), "OfflineObjectsError");
    assert_int_equal(s_int_at(res, "status", NULL), -1);
    assert_int_equal(s_keys(s_at(res, "userInfo", NULL, NULL)), 1);
    assert_string_equal(s_str_at(res, "userInfo", "objectServiceName"), svc);
}

static void
s_check_same_tree(yajl_val a, yajl_val b)
{
    assert_non_null(a);
    assert_non_null(b);
    char *ja = s_json_of(a), *jb = s_json_of(b);
    assert_string_equal(ja, jb);
    free(ja);
    free(jb);
}

static void
test_finish_app_failure(void **state)
{
    (void)state;
    es_progress_t p[4];
    session_t *s = s_app_session(p);
    //  S1 fails on b, then S3 on d: both services fail, S2 succeeds.
    const char *w1 = "HTTP 500 \"x\"", *w3 = "connection refused";
    orch_session_fail_object(s, &s->objs[1], 2474, w1, strlen(w1));
    orch_session_fail_object(s, &s->objs[3], 2030, w3, strlen(w3));
    assert_int_equal(s->code, 2474);
    yajl_val r = s_finish(s, 2460);
    assert_int_equal(s->code, 2460);
    assert_int_equal(s_keys(r), 8);
    assert_int_equal(s_int_at(r, "code", NULL), 2460);
    assert_string_equal(s_str_at(r, "message", NULL),
                        "Application Sync failed due to failure in sync of one or more object "
                        "services,[S1,S3]");
    assert_string_equal(s_str_at(r, "domain", NULL), "OfflineObjectsError");
    assert_int_equal(s_int_at(r, "status", NULL), -1);
    s_check_warnings(r);
    //  Both maps at top level (JS) and in userInfo (native), the same.
    yajl_val ok = s_at(r, "successResponse", NULL, NULL),
             bad = s_at(r, "failureResponse", NULL, NULL);
    assert_int_equal(s_keys(s_at(r, "userInfo", NULL, NULL)), 2);
    s_check_same_tree(s_at(r, "userInfo", "successResponse", NULL), ok);
    s_check_same_tree(s_at(r, "userInfo", "failureResponse", NULL), bad);

    assert_int_equal(s_keys(ok), 1);
    yajl_val s2 = s_at(ok, "S2", NULL, NULL);
    assert_int_equal(s_keys(s2), 5);
    assert_int_equal(s_int_at(s2, "status", NULL), 0);
    assert_string_equal(s_str_at(s2, "objectServiceName", NULL), "S2");
    static const size_t s2_batches[] = {1};
    s_check_svc_stats(s2, "S2", 7, p, s2_batches, 1);
    static const long long s2_errs[] = {2};
    s_check_svc_errors(s2, s2_errs, 1);

    assert_int_equal(s_keys(bad), 2);
    assert_string_equal(bad->u.object.keys[0], "S1");
    assert_string_equal(bad->u.object.keys[1], "S3");
    yajl_val s1 = s_at(bad, "S1", NULL, NULL);
    assert_int_equal(s_keys(s1), 8);
    s_check_svc_failure(s1, "S1", 2474, "Sync download failed with an error: HTTP 500 \"x\"");
    static const size_t s1_batches[] = {0, 2, 3};
    s_check_svc_stats(s1, "S1", 123, p, s1_batches, 3);
    static const long long s1_errs[] = {1};
    s_check_svc_errors(s1, s1_errs, 1);
    s_check_warnings(s1);
    yajl_val s3 = s_at(bad, "S3", NULL, NULL);
    assert_int_equal(s_keys(s3), 7);
    s_check_svc_failure(s3, "S3", 2030,
                        "An error occurred in the network layer: connection refused");
    s_check_svc_stats(s3, "S3", 0, p, NULL, 0);
    s_check_svc_errors(s3, NULL, 0);
    yajl_tree_free(r);

    //  Finishing again gives the same answer (the code is already 2460 then).
    r = s_finish(s, 2460);
    assert_int_equal(s_keys(r), 8);
    assert_string_equal(s_str_at(r, "message", NULL),
                        "Application Sync failed due to failure in sync of one or more object "
                        "services,[S1,S3]");
    s_check_svc_failure(s_at(r, "failureResponse", "S1", NULL), "S1", 2474,
                        "Sync download failed with an error: HTTP 500 \"x\"");
    s_check_svc_failure(s_at(r, "failureResponse", "S3", NULL), "S3", 2030,
                        "An error occurred in the network layer: connection refused");
    assert_int_equal(s_keys(s_at(r, "successResponse", NULL, NULL)), 1);
    yajl_tree_free(r);
    orch_session_destroy(&s);

    //  Every service failed, no stats or warnings: an empty successResponse.
    s = orch_session_new("app-2", "app", "", "", "{}");
    orch_session_add_object(s, "S1", "a");
    orch_session_fail_object(s, &s->objs[0], 2038, "", 0);
    r = s_finish(s, 2460);
    assert_int_equal(s_keys(r), 7);
    assert_string_equal(s_str_at(r, "message", NULL),
                        "Application Sync failed due to failure in sync of one or more object "
                        "services,[S1]");
    assert_int_equal(s_keys(s_at(r, "successResponse", NULL, NULL)), 0);
    assert_int_equal(s_keys(s_at(r, "userInfo", "successResponse", NULL)), 0);
    yajl_val f = s_at(r, "failureResponse", "S1", NULL);
    assert_int_equal(s_keys(f), 5);
    s_check_svc_failure(f, "S1", 2038, "Server responded with error opstatus");
    yajl_tree_free(r);
    orch_session_destroy(&s);
}

static void
test_finish_app_cancelled(void **state)
{
    (void)state;
    //  A cancelled app sync fails (2460); the service that failed keeps its own error, the
    //  others report the cancellation.
    session_t *s = orch_session_new("app", "app", "", "", "{}");
    orch_session_add_object(s, "S1", "a");
    orch_session_add_object(s, "S2", "b");
    orch_session_add_object(s, "S3", "c");
    s->objs[0].state = SOBJ_SKIPPED;
    s->objs[2].state = SOBJ_SKIPPED;
    orch_session_fail_object(s, &s->objs[1], 2474, "HTTP 503", 8);
    s->cancelled = true;
    yajl_val r = s_finish(s, 2460);
    assert_string_equal(s_str_at(r, "message", NULL),
                        "Application Sync failed due to failure in sync of one or more object "
                        "services,[S1,S2,S3]");
    assert_int_equal(s_keys(s_at(r, "successResponse", NULL, NULL)), 0);
    yajl_val bad = s_at(r, "failureResponse", NULL, NULL);
    assert_int_equal(s_keys(bad), 3);
    s_check_svc_failure(s_at(bad, "S1", NULL, NULL), "S1", 2478,
                        "Syncing operation has been cancelled");
    s_check_svc_failure(s_at(bad, "S2", NULL, NULL), "S2", 2474,
                        "Sync download failed with an error: HTTP 503");
    s_check_svc_failure(s_at(bad, "S3", NULL, NULL), "S3", 2478,
                        "Syncing operation has been cancelled");
    yajl_tree_free(r);
    orch_session_destroy(&s);

    //  Cancelled without any failure.
    s = orch_session_new("app", "app", "", "", "{}");
    orch_session_add_object(s, "S1", "a");
    s->cancelled = true;
    r = s_finish(s, 2460);
    assert_string_equal(s->what, "Syncing operation has been cancelled");
    bad = s_at(r, "failureResponse", NULL, NULL);
    assert_int_equal(s_keys(bad), 1);
    s_check_svc_failure(s_at(bad, "S1", NULL, NULL), "S1", 2478,
                        "Syncing operation has been cancelled");
    yajl_tree_free(r);
    orch_session_destroy(&s);
}

//  More batches than entries kept: every service's syncStats says its list is short.
static void
test_finish_app_truncated(void **state)
{
    (void)state;
    es_progress_t p[4];
    session_t *s = s_app_session(p);
    orch_session_fail_object(s, &s->objs[2], 2474, "x", 1);
    s->nbatches++; //  as after a restart that found one entry missing
    yajl_val r = s_finish(s, 2460);
    static const char *svcs[] = {"S1", "S2", "S3"};
    static const size_t counts[] = {3, 1, 0};
    for (size_t i = 0; i < 3; i++) {
        yajl_val res = s_at(r, i == 1 ? "failureResponse" : "successResponse", svcs[i], NULL);
        yajl_val st = s_at(res, "syncStats", NULL, NULL);
        assert_int_equal(s_keys(st), 11);
        assert_true(YAJL_IS_TRUE(s_at(st, "downloadStatsTruncated", NULL, NULL)));
        s_array_at(st, "downloadStats", NULL, NULL, counts[i]);
    }
    yajl_tree_free(r);
    //  Once every batch is kept again the marker goes.
    s->nbatches--;
    r = s_finish(s, 2460);
    for (size_t i = 0; i < 3; i++) {
        yajl_val res = s_at(r, i == 1 ? "failureResponse" : "successResponse", svcs[i], NULL);
        assert_int_equal(s_keys(s_at(res, "syncStats", NULL, NULL)), 10);
        assert_null(s_at(res, "syncStats", "downloadStatsTruncated", NULL));
    }
    yajl_tree_free(r);
    orch_session_destroy(&s);
}


//  The plan's ordering rules: uploads before the downloads of their service, reconciliation
//  after its object's download, and syncMode sequential one service after the other.
static void
test_blocked(void **state)
{
    (void)state;
    session_t *s = orch_session_new("s1", "app", "", "", "{}");
    orch_session_add_upload(s, "A", "");
    orch_session_add_object(s, "A", "a1");
    orch_session_add_reconcile(s, "A", "a1");
    orch_session_add_object(s, "B", "b1");
    sobj_t *up = &s->objs[0], *a1 = &s->objs[1], *ra1 = &s->objs[2], *b1 = &s->objs[3];
    assert_false(orch_session_blocked(s, up));
    assert_true(orch_session_blocked(s, a1));   //  waits for A's upload
    assert_true(orch_session_blocked(s, ra1));  //  waits for a1's download
    assert_false(orch_session_blocked(s, b1));  //  parallel: B goes at once
    up->state = SOBJ_RUNNING;
    assert_true(orch_session_blocked(s, a1));
    up->state = SOBJ_DONE;
    assert_false(orch_session_blocked(s, a1));
    assert_true(orch_session_blocked(s, ra1));
    a1->state = SOBJ_DONE;
    assert_false(orch_session_blocked(s, ra1));
    //  Sequential: B waits while anything of A is pending or running.
    s->sequential = true;
    assert_true(orch_session_blocked(s, b1));
    ra1->state = SOBJ_RUNNING;
    assert_true(orch_session_blocked(s, b1));
    ra1->state = SOBJ_FAILED; //  success or failure, the next service starts
    assert_false(orch_session_blocked(s, b1));
    //  The mode survives a restart.
    es_buf_t b;
    es_buf_init(&b);
    orch_session_to_json(s, &b);
    session_t *back = orch_session_from_json(b.data, b.len);
    assert_non_null(back);
    assert_true(back->sequential);
    assert_int_equal(back->objs[0].kind, SOBJ_UPLOAD);
    assert_int_equal(back->objs[2].kind, SOBJ_RECONCILE);
    orch_session_destroy(&back);
    es_buf_release(&b);
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
        cmocka_unit_test(test_blocked),
        cmocka_unit_test(test_finished_and_lookup),
        cmocka_unit_test(test_batch),
        cmocka_unit_test(test_batch_cap),
        cmocka_unit_test(test_add_batch_restore),
        cmocka_unit_test(test_fail_object),
        cmocka_unit_test(test_event),
        cmocka_unit_test(test_finish_success),
        cmocka_unit_test(test_finish_failure),
        cmocka_unit_test(test_finish_cancelled),
        cmocka_unit_test(test_finish_app_success),
        cmocka_unit_test(test_finish_app_failure),
        cmocka_unit_test(test_finish_app_cancelled),
        cmocka_unit_test(test_finish_app_truncated),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
