//  test_es_meta - metadata parsing: values, defaults, aliases, and every rejection with its path.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "protocol/es_meta.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *s_doc =
    "{\"name\":\"Orders\",\"version\":\"2.1\",\"uploadCache\":true,"
    "\"syncConflictResolutionPolicy\":\"ServerWins\",\"timestamp\":\"20240101\","
    "\"objects\":["
    "{\"name\":\"Customer\",\"key\":[\"id\"],\"fields\":["
    "{\"name\":\"id\",\"datatype\":\"int\",\"nullable\":false,\"updatable\":false,"
    "\"auto_generated\":true},"
    "{\"name\":\"name\",\"datatype\":\"string\",\"length\":10,\"creatable\":false},"
    "{\"name\":\"balance\",\"datatype\":\"decimal\"},"
    "{\"name\":\"vip\",\"datatype\":\"Bool\"},"
    "{\"name\":\"born\",\"datatype\":\"date\",\"length\":null},"
    "{\"name\":\"seen\",\"datatype\":\"datetime\"},"
    "{\"name\":\"visits\",\"datatype\":\"long\"},"
    "{\"name\":\"score\",\"datatype\":\"float\"}],"
    "\"relationships\":[{\"name\":\"orders\"}],"
    "\"operations\":{\"get\":{\"$expand\":\"Order\"},\"create\":{}}},"
    "{\"name\":\"Order\",\"key\":[\"lineNo\",\"orderId\"],\"fields\":["
    "{\"name\":\"orderId\",\"datatype\":\"integer\"},"
    "{\"name\":\"lineNo\",\"datatype\":\"number\"},"
    "{\"name\":\"qty\",\"datatype\":\"double\"}]}]}";

static void
test_parse_valid(void **state)
{
    (void)state;
    es_err_t err;
    es_meta_t *m = es_meta_new(s_doc, strlen(s_doc), &err);
    assert_non_null(m);
    assert_string_equal(m->name, "Orders");
    assert_string_equal(m->version, "2.1");
    assert_true(m->upload_cache);
    assert_string_equal(m->conflict_policy, "ServerWins");
    assert_string_equal(m->timestamp, "20240101");
    assert_string_equal(m->json, s_doc);
    assert_int_equal(m->nobjects, 2);

    const es_meta_object_t *c = es_meta_object(m, "Customer");
    assert_ptr_equal(c, &m->objects[0]);
    assert_int_equal(c->nfields, 8);
    assert_int_equal(c->nkey, 1);
    assert_int_equal(c->key[0], 0);
    assert_string_equal(c->expand, "Order");
    const es_ftype_t types[] = {ES_FT_INT,  ES_FT_STRING,   ES_FT_NUMBER, ES_FT_BOOL,
                                ES_FT_DATE, ES_FT_DATETIME, ES_FT_INT,    ES_FT_NUMBER};
    for (size_t i = 0; i < 8; i++)
        assert_int_equal(c->fields[i].type, types[i]);
    const es_meta_field_t *id = &c->fields[0], *name = &c->fields[1], *bal = &c->fields[2];
    assert_string_equal(id->name, "id");
    assert_false(id->nullable);
    assert_true(id->creatable);
    assert_false(id->updatable);
    assert_true(id->auto_generated);
    assert_int_equal(id->length, 0);
    assert_int_equal(name->length, 10);
    assert_false(name->creatable);
    //  Defaults for absent booleans.
    assert_true(bal->nullable);
    assert_true(bal->creatable);
    assert_true(bal->updatable);
    assert_false(bal->auto_generated);
    assert_int_equal(c->fields[4].length, 0);

    const es_meta_object_t *o = es_meta_object(m, "Order");
    assert_ptr_equal(o, &m->objects[1]);
    assert_null(o->expand);
    assert_int_equal(o->nkey, 2);
    assert_int_equal(o->key[0], 1); //  key order, not field order
    assert_int_equal(o->key[1], 0);

    assert_null(es_meta_object(m, "customer")); //  exact match only
    assert_null(es_meta_object(m, ""));
    assert_int_equal(es_meta_field_index(c, "seen", 4), 5);
    assert_int_equal(es_meta_field_index(c, "seenX", 4), 5); //  length-bounded name
    assert_int_equal(es_meta_field_index(c, "see", 3), -1);
    assert_int_equal(es_meta_field_index(c, "id\0x", 4), -1);
    assert_int_equal(es_meta_field_index(c, "Name", 4), -1);
    es_meta_destroy(&m);
    assert_null(m);
    es_meta_destroy(&m); //  safe twice
}

static void
test_defaults(void **state)
{
    (void)state;
    const char *doc = "{\"name\":\"S\",\"objects\":[{\"name\":\"T\",\"key\":[\"k\"],"
                      "\"fields\":[{\"name\":\"k\",\"datatype\":\"string\"}]}]}";
    es_err_t err;
    es_meta_t *m = es_meta_new(doc, strlen(doc), &err);
    assert_non_null(m);
    assert_string_equal(m->version, "1.0");
    assert_string_equal(m->conflict_policy, "None");
    assert_null(m->timestamp);
    assert_false(m->upload_cache);
    assert_null(m->objects[0].expand);
    es_meta_destroy(&m);

    //  Alternative spellings: numeric version, conflict_policy, null timestamp, empty objects.
    doc = "{\"name\":\"S\",\"version\":1.5,\"conflict_policy\":\"ClientWins\",\"timestamp\":null,"
          "\"objects\":[]}";
    m = es_meta_new(doc, strlen(doc), &err);
    assert_non_null(m);
    assert_string_equal(m->version, "1.5");
    assert_string_equal(m->conflict_policy, "ClientWins");
    assert_null(m->timestamp);
    assert_int_equal(m->nobjects, 0);
    assert_null(es_meta_object(m, "T"));
    es_meta_destroy(&m);
}

static void
test_ftype_names(void **state)
{
    (void)state;
    assert_string_equal(es_meta_ftype_name(ES_FT_STRING), "string");
    assert_string_equal(es_meta_ftype_name(ES_FT_INT), "int");
    assert_string_equal(es_meta_ftype_name(ES_FT_NUMBER), "number");
    assert_string_equal(es_meta_ftype_name(ES_FT_BOOL), "boolean");
    assert_string_equal(es_meta_ftype_name(ES_FT_DATE), "date");
    assert_string_equal(es_meta_ftype_name(ES_FT_DATETIME), "datetime");
    assert_string_equal(es_meta_ftype_name((es_ftype_t)99), "unknown");
}

//  Wraps one object's body into a service document.
#define OBJ(body) "{\"name\":\"S\",\"objects\":[" body "]}"
#define F_ID "{\"name\":\"id\",\"datatype\":\"int\"}"
#define GOOD "{\"name\":\"A\",\"key\":[\"id\"],\"fields\":[" F_ID "]}"

static const struct {
    const char *json;
    const char *what;
} s_bad[] = {
    {"[]", "metadata: expected an object, got array"},
    {"\"x\"", "metadata: expected an object, got string"},
    {"{\"objects\":[]}", "name: missing"},
    {"{\"name\":7,\"objects\":[]}", "name: expected a string, got number"},
    {"{\"name\":\"\",\"objects\":[]}", "name: must not be empty"},
    {"{\"name\":\"S\",\"version\":true,\"objects\":[]}", "version: expected a string, got boolean"},
    {"{\"name\":\"S\",\"uploadCache\":\"yes\",\"objects\":[]}",
     "uploadCache: expected a boolean, got string"},
    {"{\"name\":\"S\",\"syncConflictResolutionPolicy\":[],\"objects\":[]}",
     "syncConflictResolutionPolicy: expected a string, got array"},
    {"{\"name\":\"S\",\"conflict_policy\":{},\"objects\":[]}",
     "conflict_policy: expected a string, got object"},
    {"{\"name\":\"S\",\"timestamp\":5,\"objects\":[]}", "timestamp: expected a string, got number"},
    {"{\"name\":\"S\"}", "objects: missing"},
    {"{\"name\":\"S\",\"objects\":{}}", "objects: expected an array, got object"},
    {OBJ("null"), "objects[0]: expected an object, got null"},
    {OBJ(GOOD ",{\"key\":[\"id\"],\"fields\":[" F_ID "]}"), "objects[1].name: missing"},
    {OBJ("{\"name\":\"A\",\"key\":[\"id\"]}"), "objects[0].fields: missing"},
    {OBJ("{\"name\":\"A\",\"key\":[\"id\"],\"fields\":{}}"),
     "objects[0].fields: expected an array, got object"},
    {OBJ("{\"name\":\"A\",\"key\":[\"id\"],\"fields\":[]}"),
     "objects[0].fields: must not be empty"},
    {OBJ("{\"name\":\"A\",\"key\":[\"id\"],\"fields\":[" F_ID ",3]}"),
     "objects[0].fields[1]: expected an object, got number"},
    {OBJ("{\"name\":\"A\",\"key\":[\"id\"],\"fields\":[" F_ID ",{\"datatype\":\"int\"}]}"),
     "objects[0].fields[1].name: missing"},
    {OBJ("{\"name\":\"A\",\"key\":[\"id\"],\"fields\":[{\"name\":\"id\"}]}"),
     "objects[0].fields[0].datatype: missing"},
    {OBJ(GOOD ",{\"name\":\"B\",\"key\":[\"id\"],\"fields\":[" F_ID
              ",{\"name\":\"x\",\"datatype\":\"int\"},{\"name\":\"b\",\"datatype\":\"blob\"}]}"),
     "objects[1].fields[2].datatype: unknown type 'blob'"},
    {OBJ("{\"name\":\"A\",\"key\":[\"id\"],\"fields\":[{\"name\":\"id\",\"datatype\":1}]}"),
     "objects[0].fields[0].datatype: expected a string, got number"},
    {OBJ("{\"name\":\"A\",\"key\":[\"id\"],\"fields\":[{\"name\":\"id\",\"datatype\":\"int\","
         "\"length\":-1}]}"),
     "objects[0].fields[0].length: expected an integer 0..4294967295"},
    {OBJ("{\"name\":\"A\",\"key\":[\"id\"],\"fields\":[{\"name\":\"id\",\"datatype\":\"int\","
         "\"length\":4294967296}]}"),
     "objects[0].fields[0].length: expected an integer 0..4294967295"},
    {OBJ("{\"name\":\"A\",\"key\":[\"id\"],\"fields\":[{\"name\":\"id\",\"datatype\":\"int\","
         "\"length\":\"5\"}]}"),
     "objects[0].fields[0].length: expected an integer 0..4294967295"},
    {OBJ("{\"name\":\"A\",\"key\":[\"id\"],\"fields\":[{\"name\":\"id\",\"datatype\":\"int\","
         "\"nullable\":0}]}"),
     "objects[0].fields[0].nullable: expected a boolean, got number"},
    {OBJ("{\"name\":\"A\",\"key\":[\"id\"],\"fields\":[{\"name\":\"id\",\"datatype\":\"int\","
         "\"creatable\":\"true\"}]}"),
     "objects[0].fields[0].creatable: expected a boolean, got string"},
    {OBJ("{\"name\":\"A\",\"key\":[\"id\"],\"fields\":[{\"name\":\"id\",\"datatype\":\"int\","
         "\"updatable\":[]}]}"),
     "objects[0].fields[0].updatable: expected a boolean, got array"},
    {OBJ("{\"name\":\"A\",\"key\":[\"id\"],\"fields\":[{\"name\":\"id\",\"datatype\":\"int\","
         "\"auto_generated\":{}}]}"),
     "objects[0].fields[0].auto_generated: expected a boolean, got object"},
    {OBJ("{\"name\":\"A\",\"key\":[\"id\"],\"fields\":[" F_ID "," F_ID "]}"),
     "objects[0].fields[1].name: duplicate field 'id'"},
    {OBJ(GOOD "," GOOD), "objects[1].name: duplicate object 'A'"},
    {OBJ("{\"name\":\"A\",\"fields\":[" F_ID "]}"), "objects[0].key: missing"},
    {OBJ("{\"name\":\"A\",\"key\":\"id\",\"fields\":[" F_ID "]}"),
     "objects[0].key: expected an array, got string"},
    {OBJ("{\"name\":\"A\",\"key\":[],\"fields\":[" F_ID "]}"),
     "objects[0].key: must name at least one field"},
    {OBJ("{\"name\":\"A\",\"key\":[\"id\",\"nope\"],\"fields\":[" F_ID "]}"),
     "objects[0].key[1]: no field 'nope'"},
    {OBJ("{\"name\":\"A\",\"key\":[1],\"fields\":[" F_ID "]}"),
     "objects[0].key[0]: expected a string, got number"},
    {OBJ("{\"name\":\"A\",\"key\":[\"id\",\"id\"],\"fields\":[" F_ID "]}"),
     "objects[0].key[1]: field 'id' named twice"},
    {OBJ("{\"name\":\"A\",\"key\":[\"a\",\"b\"],\"fields\":["
         "{\"name\":\"a\",\"datatype\":\"int\",\"auto_generated\":true},"
         "{\"name\":\"b\",\"datatype\":\"number\",\"auto_generated\":true}]}"),
     "objects[0].key: more than one auto-generated key column"},
    {OBJ("{\"name\":\"A\",\"key\":[\"a\"],\"fields\":["
         "{\"name\":\"a\",\"datatype\":\"string\",\"auto_generated\":true}]}"),
     "objects[0].key[0]: auto-generated key 'a' must be int or number, not string"},
    {OBJ("{\"name\":\"A\",\"key\":[\"a\"],\"fields\":["
         "{\"name\":\"a\",\"datatype\":\"date\",\"auto_generated\":true}]}"),
     "objects[0].key[0]: auto-generated key 'a' must be int or number, not date"},
    {OBJ("{\"name\":\"A\",\"key\":[\"id\"],\"fields\":[" F_ID "],\"operations\":[]}"),
     "objects[0].operations: expected an object, got array"},
    {OBJ("{\"name\":\"A\",\"key\":[\"id\"],\"fields\":[" F_ID
         "],\"operations\":{\"get\":{\"$expand\":1}}}"),
     "objects[0].operations.get.$expand: expected a string, got number"},
    {"{\"name\":\"S\",\"objects\":[]} x", "metadata: invalid JSON: "},
    {"", "metadata: invalid JSON: "},
};

static void
test_bad_documents(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof s_bad / sizeof s_bad[0]; i++) {
        es_err_t err = {ES_OK, ""};
        es_meta_t *m = es_meta_new(s_bad[i].json, strlen(s_bad[i].json), &err);
        if (m)
            fail_msg("accepted bad document %zu: %s", i, s_bad[i].json);
        assert_int_equal(err.code, ES_EPROTO);
        //  The JSON syntax cases compare only the prefix (the rest is yajl's text).
        if (strcmp(s_bad[i].what, "metadata: invalid JSON: ") == 0)
            assert_memory_equal(err.what, s_bad[i].what, strlen(s_bad[i].what));
        else if (strcmp(err.what, s_bad[i].what) != 0)
            fail_msg("document %zu: got '%s', want '%s'", i, err.what, s_bad[i].what);
    }
}

static void
test_every_prefix(void **state)
{
    (void)state;
    size_t len = strlen(s_doc);
    for (size_t n = 0; n < len; n++) {
        es_err_t err = {ES_OK, ""};
        es_meta_t *m = es_meta_new(s_doc, n, &err);
        if (m)
            fail_msg("accepted prefix of %zu bytes", n);
        assert_int_equal(err.code, ES_EPROTO);
        assert_memory_equal(err.what, "metadata: invalid JSON: ", 24);
        //  yajl's caret diagram must not leak into a one-line error.
        assert_null(strchr(err.what, '\n'));
    }
}

static void
test_nul_and_null(void **state)
{
    (void)state;
    es_err_t err = {ES_OK, ""};
    const char doc[] = "{\"name\":\"S\",\0\"objects\":[]}";
    assert_null(es_meta_new(doc, sizeof doc - 1, &err));
    assert_int_equal(err.code, ES_EPROTO);
    assert_string_equal(err.what, "metadata: invalid JSON: contains a NUL byte");
    err.code = ES_OK;
    assert_null(es_meta_new(NULL, 0, &err));
    assert_int_equal(err.code, ES_EPROTO);
    //  err is optional.
    assert_null(es_meta_new("[", 1, NULL));
}

static void
test_big_document(void **state)
{
    (void)state;
    //  Many objects with many fields: exercises path printing with larger indexes.
    char *doc = malloc(1 << 20);
    assert_non_null(doc);
    size_t n = (size_t)sprintf(doc, "{\"name\":\"Big\",\"objects\":[");
    for (int o = 0; o < 50; o++) {
        n += (size_t)sprintf(doc + n, "%s{\"name\":\"T%d\",\"key\":[\"f0\"],\"fields\":[",
                             o ? "," : "", o);
        for (int f = 0; f < 40; f++)
            n += (size_t)sprintf(doc + n, "%s{\"name\":\"f%d\",\"datatype\":\"%s\"}", f ? "," : "",
                                 f, (o == 49 && f == 39) ? "clob" : "int");
        n += (size_t)sprintf(doc + n, "]}");
    }
    n += (size_t)sprintf(doc + n, "]}");
    es_err_t err;
    assert_null(es_meta_new(doc, n, &err));
    assert_string_equal(err.what, "objects[49].fields[39].datatype: unknown type 'clob'");
    memcpy(strstr(doc, "clob"), "date", 4);
    es_meta_t *m = es_meta_new(doc, n, &err);
    assert_non_null(m);
    assert_int_equal(m->nobjects, 50);
    assert_int_equal(m->objects[49].nfields, 40);
    assert_int_equal(m->objects[49].fields[39].type, ES_FT_DATE);
    assert_int_equal(es_meta_field_index(es_meta_object(m, "T49"), "f39", 3), 39);
    es_meta_destroy(&m);
    free(doc);
}

//  Found by fuzz/fuzz_meta: a few MiB of '[' used to overflow the stack in yajl_tree_free()
//  (one recursion per level). Nesting is now refused before the tree is built; brackets inside
//  strings (escaped quotes included) do not count.
static void
test_deep_nesting(void **state)
{
    (void)state;
    size_t depth = 2u << 20, n = 0;
    char *doc = malloc(2 * depth + 64);
    assert_non_null(doc);
    n += (size_t)sprintf(doc, "{\"name\":\"S\",\"x\":");
    memset(doc + n, '[', depth);
    memset(doc + n + depth, ']', depth);
    n += 2 * depth;
    doc[n++] = '}';
    es_err_t err;
    assert_null(es_meta_new(doc, n, &err));
    assert_int_equal(err.code, ES_EPROTO);
    assert_string_equal(err.what, "metadata: nested deeper than 64 levels at byte 79");
    free(doc);

    //  64 levels pass the check (and then fail on content); '[' in strings is not nesting.
    char ok[512];
    n = (size_t)sprintf(ok, "{\"name\":\"S\\\"[[[[\",\"x\":");
    for (int i = 0; i < 63; i++)
        ok[n++] = '[';
    for (int i = 0; i < 63; i++)
        ok[n++] = ']';
    ok[n++] = '}';
    assert_null(es_meta_new(ok, n, &err));
    assert_string_equal(err.what, "objects: missing");
}

//  Found by fuzz/fuzz_meta: 2 MiB of fields took 18 s (pairwise duplicate checks). At most
//  ES_META_FIELDS_MAX fields and key columns: the largest accepted document parses at once.
static void
test_limits(void **state)
{
    (void)state;
    for (int nf = ES_META_FIELDS_MAX; nf <= ES_META_FIELDS_MAX + 1; nf++) {
        char *doc = malloc((size_t)nf * 64 + 128);
        assert_non_null(doc);
        size_t n = (size_t)sprintf(doc, "{\"name\":\"S\",\"objects\":[{\"name\":\"A\",\"key\":[");
        for (int i = 0; i < nf; i++)
            n += (size_t)sprintf(doc + n, "%s\"f%d\"", i ? "," : "", i);
        n += (size_t)sprintf(doc + n, "],\"fields\":[");
        for (int i = 0; i < nf; i++)
            n += (size_t)sprintf(doc + n, "%s{\"name\":\"f%d\",\"datatype\":\"int\"}", i ? "," : "",
                                 i);
        n += (size_t)sprintf(doc + n, "]}]}");
        es_err_t err;
        es_meta_t *m = es_meta_new(doc, n, &err);
        if (nf == ES_META_FIELDS_MAX) {
            assert_non_null(m);
            assert_int_equal(m->objects[0].nkey, ES_META_FIELDS_MAX);
            assert_int_equal(m->objects[0].key[ES_META_FIELDS_MAX - 1], ES_META_FIELDS_MAX - 1);
        } else {
            assert_null(m);
            assert_string_equal(err.what, "objects[0].fields: more than 4096 fields");
        }
        es_meta_destroy(&m);
        free(doc);
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_valid),  cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_ftype_names),  cmocka_unit_test(test_bad_documents),
        cmocka_unit_test(test_every_prefix), cmocka_unit_test(test_nul_and_null),
        cmocka_unit_test(test_big_document), cmocka_unit_test(test_deep_nesting),
        cmocka_unit_test(test_limits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
