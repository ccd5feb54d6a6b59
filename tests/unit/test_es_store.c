//  test_es_store - the LMDB environment on real files in a mkdtemp directory: table operations,
//  handle caching across aborts, map growth, errors, a second process, and two threads.
#include "store/es_store.h"
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

//  cmocka needs these first.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#define MIB ((size_t)1 << 20)

static char s_dir[256];

static int
s_setup(void **state)
{
    (void)state;
    snprintf(s_dir, sizeof s_dir, "/tmp/test_es_store.XXXXXX");
    if (!mkdtemp(s_dir))
        return -1;
    return 0;
}

static int
s_teardown(void **state)
{
    (void)state;
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", s_dir);
    return system(cmd) == 0 ? 0 : -1;
}

static es_store_t *
s_open(size_t map_size, size_t map_max)
{
    es_store_opts_t opts = {.map_size = map_size, .map_max = map_max};
    es_err_t err = {0};
    es_store_t *store = es_store_new(s_dir, &opts, &err);
    if (!store)
        fail_msg("es_store_new: %s", err.what);
    return store;
}

//  Put one string value in its own committed write txn.
static void
s_put1(es_store_t *store, const char *table, const char *key, const char *val)
{
    es_err_t err = {0};
    es_txn_t *txn = es_store_begin(store, true, &err);
    assert_non_null(txn);
    assert_int_equal(es_txn_put(txn, table, key, strlen(key), val, strlen(val), &err), 0);
    assert_int_equal(es_txn_commit(&txn, &err), 0);
    assert_null(txn);
}

//  Expect table[key] == want (NULL: absent) in a fresh read txn.
static void
s_expect(es_store_t *store, const char *table, const char *key, const char *want)
{
    es_err_t err = {0};
    es_txn_t *txn = es_store_begin(store, false, &err);
    assert_non_null(txn);
    const void *val = NULL;
    size_t vlen = 0;
    int rc = es_txn_get(txn, table, key, strlen(key), &val, &vlen, &err);
    if (!want) {
        assert_int_equal(rc, 0);
    } else {
        assert_int_equal(rc, 1);
        assert_int_equal(vlen, strlen(want));
        assert_memory_equal(val, want, vlen);
    }
    es_txn_abort(&txn);
    assert_null(txn);
}

static int64_t
s_count(es_store_t *store, const char *table)
{
    es_err_t err = {0};
    es_txn_t *txn = es_store_begin(store, false, &err);
    assert_non_null(txn);
    int64_t n = es_txn_count(txn, table, &err);
    es_txn_abort(&txn);
    return n;
}

//  ---------------------------------------------------------------------------
//  Table operations

typedef struct {
    char keys[16][16];
    char vals[16][16];
    int n;
    int stop_at; //  return 1 (stop) at this entry, -1 never
    int fail_at; //  return -1 (fail) at this entry, -1 never
} collect_t;

static int
s_collect(void *ctx, const void *key, size_t klen, const void *val, size_t vlen, es_err_t *err)
{
    collect_t *c = ctx;
    if (c->n == c->fail_at)
        return es_err_set(err, ES_EINVAL, "callback failed at %d", c->n);
    if (c->n == c->stop_at)
        return 1;
    assert_true(c->n < 16 && klen < 16 && vlen < 16);
    memcpy(c->keys[c->n], key, klen);
    c->keys[c->n][klen] = 0;
    memcpy(c->vals[c->n], val, vlen);
    c->vals[c->n][vlen] = 0;
    c->n++;
    return 0;
}

static void
test_put_get_del_iter_count_clear(void **state)
{
    (void)state;
    es_store_t *store = s_open(0, 0);
    es_err_t err = {0};
    char path[300];
    snprintf(path, sizeof path, "%s/edgesync.mdb", s_dir);
    assert_string_equal(es_store_path(store), path);

    //  Nothing exists yet: absent table reads as empty.
    s_expect(store, "main:Customer", "k1", NULL);
    assert_int_equal(s_count(store, "main:Customer"), 0);

    es_txn_t *txn = es_store_begin(store, true, &err);
    assert_non_null(txn);
    const char *keys[] = {"b", "d", "a", "c", "e"};
    for (int i = 0; i < 5; i++) {
        char val[8];
        snprintf(val, sizeof val, "v-%s", keys[i]);
        assert_int_equal(es_txn_put(txn, "main:Customer", keys[i], 1, val, strlen(val), &err), 0);
    }
    //  Read your own writes inside the write txn, including a table created in it.
    const void *val;
    size_t vlen;
    assert_int_equal(es_txn_get(txn, "main:Customer", "c", 1, &val, &vlen, &err), 1);
    assert_int_equal(vlen, 3);
    assert_memory_equal(val, "v-c", 3);
    assert_int_equal(es_txn_count(txn, "main:Customer", &err), 5);
    //  Absent table inside a write txn: not created by reads.
    assert_int_equal(es_txn_get(txn, "main:Nobody", "a", 1, &val, &vlen, &err), 0);
    assert_int_equal(es_txn_count(txn, "main:Nobody", &err), 0);
    assert_int_equal(es_txn_del(txn, "main:Nobody", "a", 1, &err), 0);
    assert_int_equal(es_txn_clear(txn, "main:Nobody", &err), 0);
    assert_int_equal(es_txn_commit(&txn, &err), 0);
    assert_null(txn);

    s_expect(store, "main:Customer", "a", "v-a");
    s_expect(store, "main:Customer", "e", "v-e");
    s_expect(store, "main:Customer", "z", NULL);
    s_expect(store, "main:Nobody", "a", NULL);
    assert_int_equal(s_count(store, "main:Customer"), 5);

    //  Iterate: byte order, from a key, stop, fail.
    txn = es_store_begin(store, false, &err);
    assert_non_null(txn);
    collect_t c = {.stop_at = -1, .fail_at = -1};
    assert_int_equal(es_txn_iter(txn, "main:Customer", NULL, 0, s_collect, &c, &err), 0);
    assert_int_equal(c.n, 5);
    const char *sorted[] = {"a", "b", "c", "d", "e"};
    for (int i = 0; i < 5; i++) {
        assert_string_equal(c.keys[i], sorted[i]);
        char want[8];
        snprintf(want, sizeof want, "v-%s", sorted[i]);
        assert_string_equal(c.vals[i], want);
    }
    c = (collect_t){.stop_at = -1, .fail_at = -1};
    assert_int_equal(es_txn_iter(txn, "main:Customer", "bb", 2, s_collect, &c, &err), 0);
    assert_int_equal(c.n, 3);
    assert_string_equal(c.keys[0], "c");
    c = (collect_t){.stop_at = -1, .fail_at = -1};
    assert_int_equal(es_txn_iter(txn, "main:Customer", "zz", 2, s_collect, &c, &err), 0);
    assert_int_equal(c.n, 0);
    c = (collect_t){.stop_at = 2, .fail_at = -1};
    assert_int_equal(es_txn_iter(txn, "main:Customer", NULL, 0, s_collect, &c, &err), 0);
    assert_int_equal(c.n, 2);
    c = (collect_t){.stop_at = -1, .fail_at = 3};
    assert_int_equal(es_txn_iter(txn, "main:Customer", NULL, 0, s_collect, &c, &err), -1);
    assert_int_equal(err.code, ES_EINVAL);
    assert_string_equal(err.what, "callback failed at 3");
    c = (collect_t){.stop_at = -1, .fail_at = -1};
    assert_int_equal(es_txn_iter(txn, "main:Nobody", NULL, 0, s_collect, &c, &err), 0);
    assert_int_equal(c.n, 0);

    //  Writes in a read txn are refused with a clear error.
    assert_int_equal(es_txn_put(txn, "main:Customer", "x", 1, "y", 1, &err), -1);
    assert_int_equal(err.code, ES_EINVAL);
    assert_string_equal(err.what, "store: put main:Customer: read-only transaction");
    assert_int_equal(es_txn_del(txn, "main:Customer", "a", 1, &err), -1);
    assert_string_equal(err.what, "store: del main:Customer: read-only transaction");
    assert_int_equal(es_txn_clear(txn, "main:Customer", &err), -1);
    assert_string_equal(err.what, "store: clear main:Customer: read-only transaction");
    //  A read txn's commit is fine too.
    assert_int_equal(es_txn_commit(&txn, &err), 0);
    assert_null(txn);

    //  del: 1 then 0; clear keeps the table.
    txn = es_store_begin(store, true, &err);
    assert_non_null(txn);
    assert_int_equal(es_txn_del(txn, "main:Customer", "c", 1, &err), 1);
    assert_int_equal(es_txn_del(txn, "main:Customer", "c", 1, &err), 0);
    assert_int_equal(es_txn_count(txn, "main:Customer", &err), 4);
    assert_int_equal(es_txn_commit(&txn, &err), 0);
    s_expect(store, "main:Customer", "c", NULL);
    assert_int_equal(s_count(store, "main:Customer"), 4);

    txn = es_store_begin(store, true, &err);
    assert_non_null(txn);
    assert_int_equal(es_txn_clear(txn, "main:Customer", &err), 0);
    assert_int_equal(es_txn_count(txn, "main:Customer", &err), 0);
    assert_int_equal(es_txn_commit(&txn, &err), 0);
    assert_int_equal(s_count(store, "main:Customer"), 0);
    s_put1(store, "main:Customer", "a", "again");
    s_expect(store, "main:Customer", "a", "again");

    //  Overwrite replaces.
    s_put1(store, "main:Customer", "a", "third");
    s_expect(store, "main:Customer", "a", "third");
    assert_int_equal(s_count(store, "main:Customer"), 1);

    es_store_destroy(&store);
    assert_null(store);
    es_store_destroy(&store); //  safe twice
    es_txn_abort(NULL);       //  safe on NULL
    es_txn_t *none = NULL;
    es_txn_abort(&none);
}

static void
test_bad_arguments(void **state)
{
    (void)state;
    es_store_t *store = s_open(0, 0);
    es_err_t err = {0};
    es_txn_t *txn = es_store_begin(store, true, &err);
    assert_non_null(txn);
    const void *val;
    size_t vlen;

    assert_int_equal(es_txn_put(txn, NULL, "k", 1, "v", 1, &err), -1);
    assert_int_equal(err.code, ES_EINVAL);
    assert_string_equal(err.what, "store: put: table name must be 1..511 bytes");
    assert_int_equal(es_txn_get(txn, "", "k", 1, &val, &vlen, &err), -1);
    assert_int_equal(err.code, ES_EINVAL);
    assert_string_equal(err.what, "store: get: table name must be 1..511 bytes");
    char longname[600];
    memset(longname, 'x', sizeof longname - 1);
    longname[sizeof longname - 1] = 0;
    assert_int_equal(es_txn_count(txn, longname, &err), -1);
    assert_string_equal(err.what, "store: count: table name must be 1..511 bytes");
    longname[511] = 0; //  exactly the limit is fine
    if (es_txn_put(txn, longname, "k", 1, "v", 1, &err))
        fail_msg("%s", err.what);

    //  Empty and oversized keys: LMDB's own text, naming the call and the table.
    assert_int_equal(es_txn_put(txn, "main:A", "", 0, "v", 1, &err), -1);
    assert_int_equal(err.code, ES_ESTORE);
    assert_string_equal(err.what, "store: put main:A: MDB_BAD_VALSIZE: Unsupported size of "
                                  "key/DB name/data, or wrong DUPFIXED size");
    //  LMDB checks sizes before touching anything: the txn goes on and commits.
    assert_int_equal(es_txn_put(txn, "main:A", "k", 1, "v", 1, &err), 0);
    char bigkey[512];
    memset(bigkey, 'k', sizeof bigkey);
    assert_int_equal(es_txn_put(txn, "main:A", bigkey, sizeof bigkey, "v", 1, &err), -1);
    assert_string_equal(err.what, "store: put main:A: MDB_BAD_VALSIZE: Unsupported size of "
                                  "key/DB name/data, or wrong DUPFIXED size");
    assert_int_equal(es_txn_del(txn, "main:A", "", 0, &err), -1);
    assert_string_equal(err.what, "store: del main:A: MDB_BAD_VALSIZE: Unsupported size of "
                                  "key/DB name/data, or wrong DUPFIXED size");
    assert_int_equal(es_txn_commit(&txn, &err), 0);
    assert_int_equal(s_count(store, "main:A"), 1);
    es_store_destroy(&store);
}

static void
test_many_tables(void **state)
{
    (void)state;
    es_store_t *store = s_open(0, 0);
    es_err_t err = {0};
    es_buf_t name;
    es_buf_init(&name);
    enum { N = 400 };

    //  Half the tables in one txn, the rest one txn each.
    es_txn_t *txn = es_store_begin(store, true, &err);
    assert_non_null(txn);
    for (int i = 0; i < N / 2; i++) {
        char obj[32];
        snprintf(obj, sizeof obj, "Obj%d", i);
        es_store_table(&name, i % 2 ? "orig" : "main", obj);
        for (int j = 0; j <= i % 7; j++) {
            char key[16];
            snprintf(key, sizeof key, "k%d", j);
            assert_int_equal(es_txn_put(txn, name.data, key, strlen(key), obj, strlen(obj), &err),
                             0);
        }
    }
    assert_int_equal(es_txn_commit(&txn, &err), 0);
    for (int i = N / 2; i < N; i++) {
        char obj[32];
        snprintf(obj, sizeof obj, "Obj%d", i);
        es_store_table(&name, i % 2 ? "orig" : "main", obj);
        txn = es_store_begin(store, true, &err);
        assert_non_null(txn);
        for (int j = 0; j <= i % 7; j++) {
            char key[16];
            snprintf(key, sizeof key, "k%d", j);
            assert_int_equal(es_txn_put(txn, name.data, key, strlen(key), obj, strlen(obj), &err),
                             0);
        }
        assert_int_equal(es_txn_commit(&txn, &err), 0);
    }
    //  All visible from one read txn, and again after reopening (handles not cached yet).
    for (int round = 0; round < 2; round++) {
        txn = es_store_begin(store, false, &err);
        assert_non_null(txn);
        for (int i = 0; i < N; i++) {
            char obj[32];
            snprintf(obj, sizeof obj, "Obj%d", i);
            es_store_table(&name, i % 2 ? "orig" : "main", obj);
            assert_int_equal(es_txn_count(txn, name.data, &err), i % 7 + 1);
            const void *val;
            size_t vlen;
            assert_int_equal(es_txn_get(txn, name.data, "k0", 2, &val, &vlen, &err), 1);
            assert_int_equal(vlen, strlen(obj));
            assert_memory_equal(val, obj, vlen);
            //  The other prefix does not exist.
            es_store_table(&name, i % 2 ? "main" : "orig", obj);
            assert_int_equal(es_txn_count(txn, name.data, &err), 0);
        }
        es_txn_abort(&txn);
        es_store_destroy(&store);
        store = s_open(0, 0);
    }
    es_buf_release(&name);
    es_store_destroy(&store);
}

static void
test_abort_discards_and_new_table_handles(void **state)
{
    (void)state;
    es_store_t *store = s_open(0, 0);
    es_err_t err = {0};
    s_put1(store, "meta", "svc", "1");

    //  A table created in a txn that aborts does not exist, and its handle is forgotten.
    es_txn_t *txn = es_store_begin(store, true, &err);
    assert_non_null(txn);
    assert_int_equal(es_txn_put(txn, "main:New", "k", 1, "v", 1, &err), 0);
    assert_int_equal(es_txn_put(txn, "meta", "svc", 3, "2", 1, &err), 0);
    assert_int_equal(es_txn_count(txn, "main:New", &err), 1);
    es_txn_abort(&txn);
    assert_null(txn);
    s_expect(store, "main:New", "k", NULL);
    s_expect(store, "meta", "svc", "1");
    assert_int_equal(s_count(store, "main:New"), 0);

    //  Same table again, twice aborted, then committed; plus a second new table.
    for (int i = 0; i < 2; i++) {
        txn = es_store_begin(store, true, &err);
        assert_non_null(txn);
        assert_int_equal(es_txn_put(txn, "main:Other", "o", 1, "1", 1, &err), 0);
        assert_int_equal(es_txn_put(txn, "main:New", "k", 1, "v2", 2, &err), 0);
        es_txn_abort(&txn);
    }
    txn = es_store_begin(store, true, &err);
    assert_non_null(txn);
    assert_int_equal(es_txn_put(txn, "main:New", "k", 1, "v3", 2, &err), 0);
    assert_int_equal(es_txn_put(txn, "main:Third", "t", 1, "3", 1, &err), 0);
    assert_int_equal(es_txn_commit(&txn, &err), 0);
    s_expect(store, "main:New", "k", "v3");
    s_expect(store, "main:Third", "t", "3");
    s_expect(store, "main:Other", "o", NULL);

    //  Handles cached by that commit serve later write and read txns.
    s_put1(store, "main:New", "k2", "x");
    assert_int_equal(s_count(store, "main:New"), 2);

    //  A read txn that opens an existing table (fresh store: nothing cached) and aborts.
    es_store_destroy(&store);
    store = s_open(0, 0);
    s_expect(store, "main:New", "k2", "x"); //  opened in a read txn that aborts
    s_expect(store, "main:New", "k", "v3"); //  and used again
    s_put1(store, "main:New", "k3", "y");   //  and by a writer
    assert_int_equal(s_count(store, "main:New"), 3);

    //  A write txn that only reads an existing, uncached table, then aborts.
    es_store_destroy(&store);
    store = s_open(0, 0);
    txn = es_store_begin(store, true, &err);
    assert_non_null(txn);
    assert_int_equal(es_txn_count(txn, "main:Third", &err), 1);
    es_txn_abort(&txn);
    s_expect(store, "main:Third", "t", "3");
    s_put1(store, "main:Third", "u", "4");
    assert_int_equal(s_count(store, "main:Third"), 2);
    es_store_destroy(&store);
}

//  Read txns whose view of handles went stale: renewed if they have not read yet, else EBUSY.
static void
test_stale_read_view(void **state)
{
    (void)state;
    es_store_t *store = s_open(0, 0);
    es_err_t err = {0};
    s_put1(store, "main:X", "k", "x");
    s_put1(store, "main:Y", "k", "y");
    es_store_destroy(&store);
    store = s_open(0, 0); //  nothing cached

    es_txn_t *r1 = es_store_begin(store, false, &err); //  will read first
    es_txn_t *r2 = es_store_begin(store, false, &err); //  will not
    assert_non_null(r1);
    assert_non_null(r2);
    const void *val;
    size_t vlen;
    assert_int_equal(es_txn_get(r1, "main:Absent", "k", 1, &val, &vlen, &err), 0);
    //  Another txn opens main:X and publishes it.
    s_expect(store, "main:X", "k", "x");
    assert_int_equal(es_txn_get(r1, "main:X", "k", 1, &val, &vlen, &err), -1);
    assert_int_equal(err.code, ES_EBUSY);
    assert_string_equal(err.what, "store: get main:X: table opened by another thread during this "
                                  "read transaction; retry the transaction");
    assert_int_equal(es_txn_get(r2, "main:X", "k", 1, &val, &vlen, &err), 1);
    assert_memory_equal(val, "x", 1);
    //  r2 renewed, so it may even open main:Y itself now.
    assert_int_equal(es_txn_get(r2, "main:Y", "k", 1, &val, &vlen, &err), 1);
    assert_memory_equal(val, "y", 1);
    es_txn_abort(&r1);
    es_txn_abort(&r2);
    s_expect(store, "main:Y", "k", "y");
    es_store_destroy(&store);
}

//  ---------------------------------------------------------------------------
//  es_store_write and map growth

typedef struct {
    size_t records;
    size_t size;
    int runs;
    bool ignore_errors; //  swallow put errors (the txn still knows it hit MAP_FULL)
} bulk_t;

static int
s_bulk(es_txn_t *txn, void *ctx, es_err_t *err)
{
    bulk_t *b = ctx;
    b->runs++;
    char *val = malloc(b->size);
    assert_non_null(val);
    for (size_t i = 0; i < b->records; i++) {
        char key[24];
        snprintf(key, sizeof key, "%08zu", i);
        memset(val, 'a' + (int)(i % 26), b->size);
        if (es_txn_put(txn, "main:Bulk", key, 8, val, b->size, err) && !b->ignore_errors) {
            free(val);
            return -1;
        }
    }
    free(val);
    return 0;
}

static void
test_map_growth(void **state)
{
    (void)state;
    es_store_t *store = s_open(1 * MIB, 256 * MIB);
    es_err_t err = {0};
    bulk_t b = {.records = 2000, .size = 10000}; //  20 MB
    assert_int_equal(es_store_write(store, s_bulk, &b, &err), 0);
    //  1 MiB -> 2 -> 4 -> 8 -> 16 -> 32: at least five failed runs before the good one.
    assert_true(b.runs >= 6);
    assert_int_equal(s_count(store, "main:Bulk"), 2000);
    es_txn_t *txn = es_store_begin(store, false, &err);
    assert_non_null(txn);
    const void *val;
    size_t vlen;
    assert_int_equal(es_txn_get(txn, "main:Bulk", "00001999", 8, &val, &vlen, &err), 1);
    assert_int_equal(vlen, 10000);
    assert_int_equal(((const char *)val)[0], 'a' + 1999 % 26);
    assert_int_equal(((const char *)val)[9999], 'a' + 1999 % 26);
    es_txn_abort(&txn);

    //  Another 20 MB where fn swallows the put errors: growth still happens.
    bulk_t b2 = {.records = 4000, .size = 10000, .ignore_errors = true};
    assert_int_equal(es_store_write(store, s_bulk, &b2, &err), 0);
    assert_true(b2.runs >= 2);
    assert_int_equal(s_count(store, "main:Bulk"), 4000);
    es_store_destroy(&store);

    //  Reopened with a small initial map, the file's bigger map is kept: no growth needed.
    store = s_open(1 * MIB, 256 * MIB);
    bulk_t b3 = {.records = 4000, .size = 10000};
    assert_int_equal(es_store_write(store, s_bulk, &b3, &err), 0);
    assert_int_equal(b3.runs, 1);
    es_store_destroy(&store);
}

//  RssFile of this process in kB (file-backed pages mapped in: the LMDB map's).
static long
s_rss_file_kb(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    assert_non_null(f);
    char line[256];
    long kb = -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "RssFile: %ld kB", &kb) == 1)
            break;
    fclose(f);
    assert_true(kb >= 0);
    return kb;
}

static int
s_touch(void *ctx, const void *key, size_t klen, const void *val, size_t vlen, es_err_t *err)
{
    (void)key, (void)klen, (void)err;
    unsigned *sum = ctx;
    for (size_t i = 0; i < vlen; i += 1024)
        *sum += ((const unsigned char *)val)[i];
    return 0;
}

//  Read every value of main:Bulk, trim, and check the pages were given back and read the same.
static void
s_read_trim(es_store_t *store, long min_drop_kb)
{
    es_err_t err = {0};
    es_txn_t *txn = es_store_begin(store, false, &err);
    assert_non_null(txn);
    unsigned sum = 0;
    assert_int_equal(es_txn_iter(txn, "main:Bulk", NULL, 0, s_touch, &sum, &err), 0);
    es_txn_abort(&txn);
    long before = s_rss_file_kb();
    assert_int_equal(es_store_trim(store, &err), 0);
    long after = s_rss_file_kb();
    assert_true(before - after > min_drop_kb);
    txn = es_store_begin(store, false, &err);
    assert_non_null(txn);
    unsigned again = 0;
    assert_int_equal(es_txn_iter(txn, "main:Bulk", NULL, 0, s_touch, &again, &err), 0);
    es_txn_abort(&txn);
    assert_int_equal(again, sum);
}

static void
test_trim(void **state)
{
    (void)state;
    es_store_t *store = s_open(16 * MIB, 256 * MIB);
    es_err_t err = {0};
    bulk_t b = {.records = 1000, .size = 10000}; //  10 MB
    assert_int_equal(es_store_write(store, s_bulk, &b, &err), 0);
    assert_int_equal(b.runs, 1);
    s_read_trim(store, 7 * 1024);
    //  The map grows (and moves): trim finds it again.
    bulk_t b2 = {.records = 3000, .size = 10000}; //  30 MB
    assert_int_equal(es_store_write(store, s_bulk, &b2, &err), 0);
    assert_true(b2.runs > 1);
    s_read_trim(store, 20 * 1024);
    assert_int_equal(es_store_trim(store, &err), 0);
    es_store_destroy(&store);
}

//  put_sorted in order, out of order and over existing keys; cursor membership against get for
//  ascending, repeated, descending and random probes, including keys that are prefixes.
static void
test_sorted_put_and_cursor(void **state)
{
    (void)state;
    es_store_t *store = s_open(0, 0);
    es_err_t err = {0};
    es_txn_t *txn = es_store_begin(store, true, &err);
    assert_non_null(txn);
    char key[16];
    for (int i = 0; i < 3000; i += 3) { //  ascending: appended
        int n = snprintf(key, sizeof key, "k%05d", i);
        assert_int_equal(es_txn_put_sorted(txn, "rkeys:T", key, (size_t)n, "a", 1, &err), 0);
    }
    for (int i = 2998; i >= 0; i -= 30) { //  descending and overwriting: searched
        int n = snprintf(key, sizeof key, "k%05d", i);
        assert_int_equal(es_txn_put_sorted(txn, "rkeys:T", key, (size_t)n, "b", 1, &err), 0);
    }
    assert_int_equal(es_txn_put_sorted(txn, "rkeys:T", "k", 1, "c", 1, &err), 0); //  a prefix
    assert_int_equal(es_txn_put_sorted(txn, "rkeys:T", "", 0, "c", 1, &err), -1);
    assert_int_equal(es_txn_commit(&txn, &err), 0);
    const int want_n = 1000 + 100 + 1; //  multiples of 3; 2998 - 30k (none of them); "k"
    assert_int_equal(s_count(store, "rkeys:T"), want_n);

    txn = es_store_begin(store, false, &err);
    assert_non_null(txn);
    es_cursor_t *c = es_cursor_new(txn, "rkeys:T", &err);
    assert_non_null(c);
    unsigned seed = 7;
    for (int round = 0; round < 4; round++) {
        for (int step = 0; step < 4000; step++) {
            int i = round == 0 ? step : round == 1 ? 3999 - step : round == 2 ? step / 2
                                                                           : (int)(rand_r(&seed) % 4000);
            int n = snprintf(key, sizeof key, "k%05d", i);
            const void *val;
            size_t vlen;
            int want = es_txn_get(txn, "rkeys:T", key, (size_t)n, &val, &vlen, &err);
            assert_int_equal(es_cursor_contains(c, key, (size_t)n, &err), want);
            assert_int_equal(es_cursor_contains(c, "k", 1, &err), 1);
            assert_int_equal(es_cursor_contains(c, "k0", 2, &err), 0);
        }
    }
    assert_int_equal(es_cursor_contains(c, "", 0, &err), 0);
    assert_int_equal(es_cursor_contains(c, "z", 1, &err), 0); //  past the end
    assert_int_equal(es_cursor_contains(c, "zz", 2, &err), 0);
    assert_int_equal(es_cursor_contains(c, "k00003", 6, &err), 1); //  back again
    es_cursor_destroy(&c);
    assert_null(c);
    es_cursor_destroy(&c);
    c = es_cursor_new(txn, "rkeys:Absent", &err); //  a missing table contains nothing
    assert_non_null(c);
    assert_int_equal(es_cursor_contains(c, "k", 1, &err), 0);
    es_cursor_destroy(&c);
    assert_null(es_cursor_new(txn, "", &err));
    es_txn_abort(&txn);
    es_store_destroy(&store);
}

typedef struct {
    bool *want;  //  reference: which keys are present
    int next;    //  the smallest key index the iteration may still see
    int seen;
} mixcheck_t;

static int
s_mixcheck(void *ctx, const void *key, size_t klen, const void *val, size_t vlen, es_err_t *err)
{
    (void)val, (void)vlen, (void)err;
    mixcheck_t *m = ctx;
    char buf[16] = {0};
    assert_true(klen == 6);
    memcpy(buf, key, klen);
    int i = atoi(buf + 1);
    assert_true(i >= m->next); //  ascending, no repeats
    assert_true(m->want[i]);
    m->next = i + 1;
    m->seen++;
    return 0;
}

//  Sorted puts mixed with plain puts and deletes of the same table in one txn: whatever the mix,
//  the table holds exactly the reference set, in order.
static void
test_sorted_put_mixed(void **state)
{
    (void)state;
    es_store_t *store = s_open(0, 0);
    es_err_t err = {0};
    static bool want[10000];
    memset(want, 0, sizeof want);
    unsigned seed = 11;
    int up = 0;
    for (int round = 0; round < 3; round++) {
        es_txn_t *txn = es_store_begin(store, true, &err);
        assert_non_null(txn);
        for (int op = 0; op < 3000; op++) {
            int r = (int)(rand_r(&seed) % 10);
            int i = r < 6 && up < 9999 ? ++up : (int)(rand_r(&seed) % 10000);
            char key[16];
            int n = snprintf(key, sizeof key, "k%05d", i);
            if (r < 7) {
                assert_int_equal(es_txn_put_sorted(txn, "rkeys:M", key, (size_t)n, "v", 1, &err), 0);
                want[i] = true;
            } else if (r < 8) {
                assert_int_equal(es_txn_put(txn, "rkeys:M", key, (size_t)n, "v", 1, &err), 0);
                want[i] = true;
            } else {
                assert_true(es_txn_del(txn, "rkeys:M", key, (size_t)n, &err) >= 0);
                want[i] = false;
            }
        }
        assert_int_equal(es_txn_commit(&txn, &err), 0);
    }
    int expect = 0;
    for (int i = 0; i < 10000; i++)
        expect += want[i];
    es_txn_t *txn = es_store_begin(store, false, &err);
    assert_non_null(txn);
    mixcheck_t m = {want, 0, 0};
    assert_int_equal(es_txn_iter(txn, "rkeys:M", NULL, 0, s_mixcheck, &m, &err), 0);
    es_txn_abort(&txn);
    assert_int_equal(m.seen, expect);
    es_store_destroy(&store);
}

//  ---------------------------------------------------------------------------
//  Write txns keep a cursor per table: a delete right after a get of the same key uses the
//  cursor's position instead of a search. Whatever came in between, it must delete exactly
//  that key, and reads and writes must see the same table as without the cursor.

//  table[key] in txn: want NULL = absent.
static void
s_txn_expect(es_txn_t *txn, const char *table, const char *key, const char *want)
{
    es_err_t err = {0};
    const void *val = NULL;
    size_t vlen = 0;
    int rc = es_txn_get(txn, table, key, strlen(key), &val, &vlen, &err);
    if (!want) {
        assert_int_equal(rc, 0);
        return;
    }
    assert_int_equal(rc, 1);
    assert_int_equal(vlen, strlen(want));
    assert_memory_equal(val, want, vlen);
}

static void
test_get_then_del(void **state)
{
    (void)state;
    es_store_t *store = s_open(0, 0);
    es_err_t err = {0};
    es_txn_t *txn = es_store_begin(store, true, &err);
    assert_non_null(txn);
    char key[16], val[64];
    for (int i = 0; i < 600; i++) {
        snprintf(key, sizeof key, "k%04d", i);
        snprintf(val, sizeof val, "value %d of forty bytes or so .........", i);
        assert_int_equal(es_txn_put(txn, "hist", key, 5, val, strlen(val), &err), 0);
    }
    assert_int_equal(es_txn_commit(&txn, &err), 0);

    txn = es_store_begin(store, true, &err);
    assert_non_null(txn);
    const void *v;
    size_t vlen;
    //  The apply's pattern: get, writes to other tables, delete of the key got - from the
    //  front of the table, so LMDB rebalances and merges the pages under the cursor.
    for (int i = 0; i < 300; i++) {
        snprintf(key, sizeof key, "k%04d", i);
        assert_int_equal(es_txn_get(txn, "hist", key, 5, &v, &vlen, &err), 1);
        assert_int_equal(es_txn_put(txn, "pend:T", key, 5, "p", 1, &err), 0);
        assert_int_equal(es_txn_del(txn, "main:T", key, 5, &err), 0); //  table absent
        assert_int_equal(es_txn_del(txn, "hist", key, 5, &err), 1);
        assert_int_equal(es_txn_get(txn, "hist", key, 5, &v, &vlen, &err), 0);
        assert_int_equal(es_txn_del(txn, "hist", key, 5, &err), 0);
    }
    //  get A, put B beside it, del A: A goes, B stays.
    assert_int_equal(es_txn_get(txn, "hist", "k0400", 5, &v, &vlen, &err), 1);
    assert_int_equal(es_txn_put(txn, "hist", "k0400a", 6, "new", 3, &err), 0);
    assert_int_equal(es_txn_del(txn, "hist", "k0400", 5, &err), 1);
    s_txn_expect(txn, "hist", "k0400", NULL);
    s_txn_expect(txn, "hist", "k0400a", "new");
    //  get A, then a miss of the same table moves the cursor: del A still finds A.
    assert_int_equal(es_txn_get(txn, "hist", "k0401", 5, &v, &vlen, &err), 1);
    assert_int_equal(es_txn_get(txn, "hist", "k0401x", 6, &v, &vlen, &err), 0);
    assert_int_equal(es_txn_del(txn, "hist", "k0401", 5, &err), 1);
    s_txn_expect(txn, "hist", "k0402", "value 402 of forty bytes or so .........");
    //  get A, del of another key B: B goes, A stays.
    assert_int_equal(es_txn_get(txn, "hist", "k0403", 5, &v, &vlen, &err), 1);
    assert_int_equal(es_txn_del(txn, "hist", "k0404", 5, &err), 1);
    s_txn_expect(txn, "hist", "k0403", "value 403 of forty bytes or so .........");
    s_txn_expect(txn, "hist", "k0404", NULL);
    //  A put leaves the cursor on the key written: its del right after.
    assert_int_equal(es_txn_put(txn, "hist", "k0405b", 6, "tmp", 3, &err), 0);
    assert_int_equal(es_txn_del(txn, "hist", "k0405b", 6, &err), 1);
    s_txn_expect(txn, "hist", "k0405", "value 405 of forty bytes or so .........");
    s_txn_expect(txn, "hist", "k0406", "value 406 of forty bytes or so .........");
    //  get A, a sorted put to the same table, del A.
    assert_int_equal(es_txn_get(txn, "hist", "k0407", 5, &v, &vlen, &err), 1);
    assert_int_equal(es_txn_put_sorted(txn, "hist", "k9999", 5, "end", 3, &err), 0);
    assert_int_equal(es_txn_del(txn, "hist", "k0407", 5, &err), 1);
    s_txn_expect(txn, "hist", "k9999", "end");
    //  More tables than the txn remembers (their cursors are closed as they leave): A's
    //  cursor is gone by its del, which searches.
    assert_int_equal(es_txn_get(txn, "hist", "k0408", 5, &v, &vlen, &err), 1);
    for (int i = 0; i < 12; i++) {
        char table[16];
        snprintf(table, sizeof table, "main:T%d", i);
        assert_int_equal(es_txn_put(txn, table, "x", 1, "y", 1, &err), 0);
        assert_int_equal(es_txn_get(txn, table, "x", 1, &v, &vlen, &err), 1);
    }
    assert_int_equal(es_txn_del(txn, "hist", "k0408", 5, &err), 1);
    s_txn_expect(txn, "hist", "k0408", NULL);
    //  get A, clear the table, del A: nothing left to delete.
    assert_int_equal(es_txn_get(txn, "pend:T", "k0000", 5, &v, &vlen, &err), 1);
    assert_int_equal(es_txn_clear(txn, "pend:T", &err), 0);
    assert_int_equal(es_txn_del(txn, "pend:T", "k0000", 5, &err), 0);
    assert_int_equal(es_txn_put(txn, "pend:T", "k0001", 5, "again", 5, &err), 0);
    //  Bad keys are refused as before.
    assert_int_equal(es_txn_del(txn, "hist", "", 0, &err), -1);
    assert_int_equal(err.code, ES_ESTORE);
    assert_int_equal(es_txn_get(txn, "hist", "", 0, &v, &vlen, &err), -1);
    assert_int_equal(es_txn_del(txn, "", "k", 1, &err), -1);
    assert_int_equal(err.code, ES_EINVAL);
    assert_int_equal(es_txn_commit(&txn, &err), 0);

    //  What was committed: k0000..k0299, 0400, 0401, 0404, 0407, 0408 gone; the rest and the
    //  two added keys there.
    assert_int_equal(s_count(store, "hist"), 600 - 300 - 5 + 2);
    s_expect(store, "hist", "k0299", NULL);
    s_expect(store, "hist", "k0300", "value 300 of forty bytes or so .........");
    s_expect(store, "hist", "k0400a", "new");
    s_expect(store, "hist", "k0401", NULL);
    s_expect(store, "hist", "k0403", "value 403 of forty bytes or so .........");
    s_expect(store, "hist", "k0599", "value 599 of forty bytes or so .........");
    s_expect(store, "hist", "k9999", "end");
    assert_int_equal(s_count(store, "pend:T"), 1);
    s_expect(store, "pend:T", "k0001", "again");
    es_store_destroy(&store);
}

//  Random gets, puts (small, page-sized and overflow values) and deletes over several tables
//  against a reference model, checked inside the txn and after the commit: page splits,
//  merges and table handles leaving the memo happen under the cursors.
#define M_TABLES 11
#define M_KEYS 400

typedef struct {
    int16_t len[M_TABLES][M_KEYS]; //  value length, -1 absent
    uint8_t fill[M_TABLES][M_KEYS];
} model_t;

static size_t
s_model_len(unsigned r)
{
    switch (r % 8) {
    case 0:
        return 1500 + r % 3000; //  overflow pages
    case 1:
        return 400 + r % 900;
    default:
        return 1 + r % 120;
    }
}

static void
s_model_value(char *buf, size_t len, uint8_t fill)
{
    memset(buf, 'A' + fill % 26, len);
    buf[0] = (char)fill;
}

typedef struct {
    model_t *m;
    int table;
    int seen;
} model_check_t;

static int
s_model_iter(void *ctx, const void *key, size_t klen, const void *val, size_t vlen, es_err_t *err)
{
    (void)err;
    model_check_t *c = ctx;
    char buf[16] = {0};
    assert_true(klen == 5);
    memcpy(buf, key, klen);
    int i = atoi(buf + 1);
    assert_int_equal(c->m->len[c->table][i], (int)vlen);
    char want[5000];
    s_model_value(want, vlen, c->m->fill[c->table][i]);
    assert_memory_equal(val, want, vlen);
    c->seen++;
    return 0;
}

static void
test_cursor_ops_model(void **state)
{
    (void)state;
    es_store_t *store = s_open(0, 0);
    es_err_t err = {0};
    static model_t m;
    memset(m.len, 0xff, sizeof m.len);
    unsigned seed = 42;
    char buf[5000], key[16], table[16];
    for (int round = 0; round < 4; round++) {
        es_txn_t *txn = es_store_begin(store, true, &err);
        assert_non_null(txn);
        //  Round 3 mostly deletes: tables shrink to nothing and grow back.
        for (int op = 0; op < 6000; op++) {
            unsigned r = (unsigned)rand_r(&seed);
            //  Runs of one table, as the apply works one table after another.
            int t = (op / 7 + (int)(r % 2)) % M_TABLES;
            int i = (int)((unsigned)rand_r(&seed) % M_KEYS);
            snprintf(table, sizeof table, "main:M%d", t);
            snprintf(key, sizeof key, "k%04d", i);
            int kind = (int)(r % 10);
            if (round == 3 && kind < 7)
                kind = 9;
            if (kind < 4) {
                const void *v;
                size_t vlen;
                int rc = es_txn_get(txn, table, key, 5, &v, &vlen, &err);
                assert_int_equal(rc, m.len[t][i] >= 0);
                if (rc == 1) {
                    assert_int_equal((int)vlen, m.len[t][i]);
                    s_model_value(buf, vlen, m.fill[t][i]);
                    assert_memory_equal(v, buf, vlen);
                    if (r % 3 == 0) { //  the apply's get-then-delete
                        assert_int_equal(es_txn_del(txn, table, key, 5, &err), 1);
                        m.len[t][i] = -1;
                    }
                }
            } else if (kind < 8) {
                size_t len = s_model_len((unsigned)rand_r(&seed));
                uint8_t fill = (uint8_t)rand_r(&seed);
                s_model_value(buf, len, fill);
                assert_int_equal(es_txn_put(txn, table, key, 5, buf, len, &err), 0);
                m.len[t][i] = (int16_t)len;
                m.fill[t][i] = fill;
            } else {
                int rc = es_txn_del(txn, table, key, 5, &err);
                assert_int_equal(rc, m.len[t][i] >= 0);
                m.len[t][i] = -1;
            }
        }
        assert_int_equal(es_txn_commit(&txn, &err), 0);
        txn = es_store_begin(store, false, &err);
        assert_non_null(txn);
        for (int t = 0; t < M_TABLES; t++) {
            snprintf(table, sizeof table, "main:M%d", t);
            model_check_t c = {&m, t, 0};
            assert_int_equal(es_txn_iter(txn, table, NULL, 0, s_model_iter, &c, &err), 0);
            int want = 0;
            for (int i = 0; i < M_KEYS; i++)
                want += m.len[t][i] >= 0;
            assert_int_equal(c.seen, want);
        }
        es_txn_abort(&txn);
    }
    es_store_destroy(&store);
}

//  es_store_write growing the map while fn gets and deletes what it put: the rerun starts
//  from scratch with fresh cursors.
static int
s_churn(es_txn_t *txn, void *ctx, es_err_t *err)
{
    int *runs = ctx;
    (*runs)++;
    static char val[6000];
    char key[16];
    for (int i = 0; i < 3000; i++) {
        snprintf(key, sizeof key, "%06d", i);
        memset(val, 'a' + i % 26, sizeof val);
        if (es_txn_put(txn, "main:Churn", key, 6, val, sizeof val, err))
            return -1;
        if (i % 3 == 2) { //  drop the one before
            const void *v;
            size_t vlen;
            snprintf(key, sizeof key, "%06d", i - 1);
            if (es_txn_get(txn, "main:Churn", key, 6, &v, &vlen, err) != 1 ||
                es_txn_del(txn, "main:Churn", key, 6, err) != 1)
                return -1;
        }
    }
    return 0;
}

static void
test_cursor_ops_map_growth(void **state)
{
    (void)state;
    es_store_t *store = s_open(1 * MIB, 256 * MIB);
    es_err_t err = {0};
    int runs = 0;
    assert_int_equal(es_store_write(store, s_churn, &runs, &err), 0);
    assert_true(runs >= 3); //  18 MB written, 12 MB kept: 1 -> 2 -> 4 -> 8 -> 16 MiB at least
    assert_int_equal(s_count(store, "main:Churn"), 2000);
    s_expect(store, "main:Churn", "001000", NULL);
    es_txn_t *txn = es_store_begin(store, false, &err);
    assert_non_null(txn);
    const void *v;
    size_t vlen;
    assert_int_equal(es_txn_get(txn, "main:Churn", "002999", 6, &v, &vlen, &err), 1);
    assert_int_equal(vlen, 6000);
    assert_int_equal(((const char *)v)[5999], 'a' + 2999 % 26);
    es_txn_abort(&txn);
    //  At the cap the failure names it; nothing of the run is kept.
    es_store_destroy(&store);
    char path[300];
    snprintf(path, sizeof path, "%s/edgesync.mdb", s_dir);
    assert_int_equal(unlink(path), 0);
    snprintf(path, sizeof path, "%s/edgesync.mdb-lock", s_dir);
    unlink(path);
    store = s_open(1 * MIB, 4 * MIB);
    runs = 0;
    assert_int_equal(es_store_write(store, s_churn, &runs, &err), -1);
    assert_string_equal(err.what, "store: map full at 4 MiB; raise store.map_max_mb");
    assert_int_equal(s_count(store, "main:Churn"), 0);
    es_store_destroy(&store);
}

static void
test_map_max(void **state)
{
    (void)state;
    es_store_t *store = s_open(1 * MIB, 4 * MIB);
    es_err_t err = {0};
    s_put1(store, "meta", "before", "1");
    bulk_t b = {.records = 2000, .size = 10000};
    assert_int_equal(es_store_write(store, s_bulk, &b, &err), -1);
    assert_int_equal(err.code, ES_ESTORE);
    assert_string_equal(err.what, "store: map full at 4 MiB; raise store.map_max_mb");
    assert_int_equal(b.runs, 3); //  1, 2, 4 MiB
    //  Nothing of it was committed, and the store still works.
    assert_int_equal(s_count(store, "main:Bulk"), 0);
    s_put1(store, "meta", "after", "2");
    s_expect(store, "meta", "before", "1");
    s_expect(store, "meta", "after", "2");

    //  A txn committed by hand reports MAP_FULL with the call and subject.
    es_txn_t *txn = es_store_begin(store, true, &err);
    assert_non_null(txn);
    b.runs = 0;
    assert_int_equal(s_bulk(txn, &b, &err), -1);
    assert_int_equal(err.code, ES_ESTORE);
    assert_string_equal(err.what,
                        "store: put main:Bulk: MDB_MAP_FULL: Environment mapsize limit reached");
    //  LMDB broke the txn: later calls and the commit say so, and the commit frees it.
    assert_int_equal(es_txn_put(txn, "meta", "x", 1, "y", 1, &err), -1);
    assert_string_equal(err.what, "store: put meta: MDB_BAD_TXN: Transaction must abort, has a "
                                  "child, or is invalid");
    assert_int_equal(es_txn_commit(&txn, &err), -1);
    assert_null(txn);
    assert_int_equal(err.code, ES_ESTORE);
    char want[400];
    snprintf(want, sizeof want,
             "store: commit %s/edgesync.mdb: MDB_BAD_TXN: Transaction must abort, has a child, "
             "or is invalid",
             s_dir);
    assert_string_equal(err.what, want);
    s_expect(store, "meta", "x", NULL);
    es_store_destroy(&store);
}

static int
s_fail_fn(es_txn_t *txn, void *ctx, es_err_t *err)
{
    int *runs = ctx;
    (*runs)++;
    if (es_txn_put(txn, "meta", "k", 1, "v", 1, err))
        return -1;
    return es_err_set(err, ES_EINVAL, "fn: refused");
}

static int
s_ok_fn(es_txn_t *txn, void *ctx, es_err_t *err)
{
    (void)ctx;
    return es_txn_put(txn, "meta", "k", 1, "ok", 2, err);
}

static void
test_write_fn_failure(void **state)
{
    (void)state;
    es_store_t *store = s_open(0, 0);
    es_err_t err = {0};
    int runs = 0;
    assert_int_equal(es_store_write(store, s_fail_fn, &runs, &err), -1);
    assert_int_equal(runs, 1);
    assert_int_equal(err.code, ES_EINVAL);
    assert_string_equal(err.what, "fn: refused");
    s_expect(store, "meta", "k", NULL);
    assert_int_equal(es_store_write(store, s_ok_fn, NULL, &err), 0);
    s_expect(store, "meta", "k", "ok");
    es_store_destroy(&store);
}

//  ---------------------------------------------------------------------------
//  Opening: errors and read-only

static void
test_open_errors(void **state)
{
    (void)state;
    es_err_t err = {0};
    char dir[300], want[600];

    snprintf(dir, sizeof dir, "%s/missing", s_dir);
    assert_null(es_store_new(dir, NULL, &err));
    assert_int_equal(err.code, ES_ESTORE);
    snprintf(want, sizeof want, "store: open %s/edgesync.mdb: No such file or directory", dir);
    assert_string_equal(err.what, want);

    //  data_dir is a regular file.
    snprintf(dir, sizeof dir, "%s/afile", s_dir);
    FILE *f = fopen(dir, "w");
    assert_non_null(f);
    fclose(f);
    assert_null(es_store_new(dir, NULL, &err));
    snprintf(want, sizeof want, "store: open %s/edgesync.mdb: Not a directory", dir);
    assert_string_equal(err.what, want);

    //  Read-only open of a file that does not exist.
    es_store_opts_t ro = {.read_only = true, .file = "none.mdb"};
    assert_null(es_store_new(s_dir, &ro, &err));
    assert_int_equal(err.code, ES_ESTORE);
    snprintf(want, sizeof want, "store: open %s/none.mdb: No such file or directory", s_dir);
    assert_string_equal(err.what, want);

    //  The environment file is a directory.
    snprintf(dir, sizeof dir, "%s/sub", s_dir);
    assert_int_equal(mkdir(dir, 0700), 0);
    es_store_opts_t sub = {.file = "sub"};
    assert_null(es_store_new(s_dir, &sub, &err));
    snprintf(want, sizeof want, "store: open %s/sub: Is a directory", s_dir);
    assert_string_equal(err.what, want);

    //  A file name that is a path.
    es_store_opts_t bad = {.file = "a/b.mdb"};
    assert_null(es_store_new(s_dir, &bad, &err));
    assert_int_equal(err.code, ES_EINVAL);
    assert_string_equal(err.what, "store: file name 'a/b.mdb': must be a plain name");

    //  A read-only directory. Tests may run as root, who ignores permission bits, so the open
    //  is tried in a child that first drops to an unprivileged user.
    char ro_dir[300];
    snprintf(ro_dir, sizeof ro_dir, "%s/ro", s_dir);
    assert_int_equal(mkdir(ro_dir, 0500), 0);
    assert_int_equal(chmod(ro_dir, 0555), 0);
    assert_int_equal(chmod(s_dir, 0755), 0);
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(fds[0]);
        if (geteuid() == 0 && (setgid(65534) || setuid(65534)))
            _exit(3);
        es_err_t cerr = {0};
        es_store_t *s = es_store_new(ro_dir, NULL, &cerr);
        if (s)
            _exit(4);
        ssize_t n = write(fds[1], cerr.what, strlen(cerr.what));
        _exit(n == (ssize_t)strlen(cerr.what) ? 0 : 5);
    }
    close(fds[1]);
    char got[600] = {0};
    ssize_t n = read(fds[0], got, sizeof got - 1);
    close(fds[0]);
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    assert_true(n > 0);
    snprintf(want, sizeof want, "store: open %s/edgesync.mdb: Permission denied", ro_dir);
    assert_string_equal(got, want);
}

static void
test_read_only(void **state)
{
    (void)state;
    es_store_t *store = s_open(0, 0);
    s_put1(store, "meta", "svc", "one");
    es_store_destroy(&store);

    es_store_opts_t opts = {.read_only = true};
    es_err_t err = {0};
    store = es_store_new(s_dir, &opts, &err);
    assert_non_null(store);
    s_expect(store, "meta", "svc", "one");
    s_expect(store, "main:None", "k", NULL);
    assert_int_equal(s_count(store, "meta"), 1);

    char want[400];
    snprintf(want, sizeof want, "store: begin write %s/edgesync.mdb: Permission denied", s_dir);
    assert_null(es_store_begin(store, true, &err));
    assert_int_equal(err.code, ES_ESTORE);
    assert_string_equal(err.what, want);
    assert_int_equal(es_store_write(store, s_ok_fn, NULL, &err), -1);
    assert_string_equal(err.what, want);
    es_store_destroy(&store);
}

//  ---------------------------------------------------------------------------
//  Records and table names

static void
test_rec_pack_unpack(void **state)
{
    (void)state;
    es_buf_t buf;
    es_buf_init(&buf);
    es_buf_append(&buf, "junk", 4); //  pack resets first
    es_store_rec_pack(&buf, "abc123", 6, "\x81\xa1x\x01", 4);
    assert_int_equal(buf.len, 12);
    assert_memory_equal(buf.data,
                        "\x06\x00"
                        "abc123"
                        "\x81\xa1x\x01",
                        12);

    const char *cs;
    size_t cslen, len;
    const void *rec;
    assert_int_equal(es_store_rec_unpack(buf.data, buf.len, &cs, &cslen, &rec, &len), 0);
    assert_int_equal(cslen, 6);
    assert_memory_equal(cs, "abc123", 6);
    assert_int_equal(len, 4);
    assert_memory_equal(rec, "\x81\xa1x\x01", 4);

    //  Every prefix: shorter than the header says -> -1; past it, a shorter record.
    for (size_t n = 0; n < buf.len; n++) {
        int rc = es_store_rec_unpack(buf.data, n, &cs, &cslen, &rec, &len);
        if (n < 8) {
            assert_int_equal(rc, -1);
        } else {
            assert_int_equal(rc, 0);
            assert_int_equal(cslen, 6);
            assert_int_equal(len, n - 8);
        }
    }
    assert_int_equal(es_store_rec_unpack(NULL, 0, &cs, &cslen, &rec, &len), -1);

    //  Empty checksum, empty record.
    es_store_rec_pack(&buf, "", 0, NULL, 0);
    assert_int_equal(buf.len, 2);
    assert_int_equal(es_store_rec_unpack(buf.data, buf.len, &cs, &cslen, &rec, &len), 0);
    assert_int_equal(cslen, 0);
    assert_int_equal(len, 0);

    //  A 300-byte checksum: the length is little-endian.
    char big[300];
    memset(big, 'c', sizeof big);
    es_store_rec_pack(&buf, big, sizeof big, "r", 1);
    assert_int_equal((unsigned char)buf.data[0], 300 & 0xff);
    assert_int_equal((unsigned char)buf.data[1], 300 >> 8);
    assert_int_equal(es_store_rec_unpack(buf.data, buf.len, &cs, &cslen, &rec, &len), 0);
    assert_int_equal(cslen, 300);
    assert_int_equal(len, 1);
    //  A header claiming more than there is.
    assert_int_equal(es_store_rec_unpack("\xff\xff"
                                         "abc",
                                         5, &cs, &cslen, &rec, &len),
                     -1);

    es_store_table(&buf, "main", "Customer");
    assert_string_equal(buf.data, "main:Customer");
    es_store_table(&buf, "orig", "Order");
    assert_string_equal(buf.data, "orig:Order");
    es_buf_release(&buf);
}

//  ---------------------------------------------------------------------------
//  Another process

//  Child side: open its own environment (never the parent's across fork), check and write.
static int
s_child_write(size_t map_size, const char *table, size_t records, size_t size)
{
    es_store_opts_t opts = {.map_size = map_size};
    es_err_t err = {0};
    es_store_t *store = es_store_new(s_dir, &opts, &err);
    if (!store)
        return 10;
    int rc = 0;
    es_txn_t *txn = es_store_begin(store, false, &err);
    const void *val;
    size_t vlen;
    if (!txn || es_txn_get(txn, "meta", "parent", 6, &val, &vlen, &err) != 1 || vlen != 3 ||
        memcmp(val, "yes", 3) != 0)
        rc = 11;
    es_txn_abort(&txn);
    bulk_t b = {.records = records, .size = size};
    if (rc == 0) {
        txn = es_store_begin(store, true, &err);
        if (!txn)
            rc = 12;
        else if (s_bulk(txn, &b, &err))
            rc = 13;
        else if (es_txn_put(txn, table, "child", 5, "done", 4, &err) || es_txn_commit(&txn, &err))
            rc = 14;
        es_txn_abort(&txn); //  after a failure; NULL after the commit
    }
    es_store_destroy(&store);
    return rc;
}

typedef struct {
    pid_t pid; //  the child
    int go;    //  write end: one byte tells the child to start
} child_t;

//  Fork the child before this process opens its own environment, so that the child never
//  inherits an open one (LMDB forbids using it across fork), then let it wait for "go".
static child_t
s_spawn_child(size_t map_size, const char *table, size_t records, size_t size)
{
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(fds[1]);
        char c;
        if (read(fds[0], &c, 1) != 1)
            _exit(20);
        close(fds[0]);
        _exit(s_child_write(map_size, table, records, size));
    }
    close(fds[0]);
    return (child_t){pid, fds[1]};
}

static void
s_run_child(child_t *child)
{
    assert_int_equal(write(child->go, "g", 1), 1);
    close(child->go);
    int st;
    assert_int_equal(waitpid(child->pid, &st, 0), child->pid);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
}

static void
test_second_process(void **state)
{
    (void)state;
    child_t child = s_spawn_child(0, "main:FromChild", 10, 100);
    es_store_t *store = s_open(0, 0);
    s_put1(store, "meta", "parent", "yes");
    //  The child creates a table this process has never seen, and writes into a known one,
    //  while this process keeps its environment open.
    s_run_child(&child);
    s_expect(store, "main:FromChild", "child", "done");
    assert_int_equal(s_count(store, "main:Bulk"), 10);
    //  And this process can keep writing to both.
    s_put1(store, "main:FromChild", "parent", "too");
    assert_int_equal(s_count(store, "main:FromChild"), 2);
    es_store_destroy(&store);
}

static void
test_map_resized_by_other_process(void **state)
{
    (void)state;
    //  The child starts with a 32 MiB map and writes 8 MB: far past this process's map.
    child_t child = s_spawn_child(32 * MIB, "main:Big", 800, 10000);
    es_store_t *store = s_open(1 * MIB, 0);
    s_put1(store, "meta", "parent", "yes");
    s_run_child(&child);
    s_expect(store, "main:Big", "child", "done");
    assert_int_equal(s_count(store, "main:Bulk"), 800);
    es_err_t err = {0};
    bulk_t b = {.records = 900, .size = 10000};
    assert_int_equal(es_store_write(store, s_bulk, &b, &err), 0);
    assert_int_equal(b.runs, 1); //  the map it adopted is big enough
    assert_int_equal(s_count(store, "main:Bulk"), 900);
    es_store_destroy(&store);
}

//  ---------------------------------------------------------------------------
//  Threads

typedef struct {
    es_store_t *store;
    int id;
    int base; //  first key number
    int failures;
    char what[ES_ERR_WHAT_MAX];
} worker_t;

typedef struct {
    int id;
    int i;
} wctx_t;

static int
s_worker_fn(es_txn_t *txn, void *ctx, es_err_t *err)
{
    wctx_t *w = ctx;
    char table[32], key[16];
    snprintf(table, sizeof table, "main:T%d_%d", w->id, w->i % 20); //  new tables keep coming
    snprintf(key, sizeof key, "%06d", w->i);
    if (es_txn_put(txn, table, key, strlen(key), "v", 1, err))
        return -1;
    return es_txn_put(txn, "stats", key, strlen(key), table, strlen(table), err);
}

static void *
s_worker(void *arg)
{
    worker_t *w = arg;
    es_err_t err = {0};
    for (int i = w->base; i < w->base + 300; i++) {
        wctx_t c = {w->id, i};
        if (es_store_write(w->store, s_worker_fn, &c, &err)) {
            w->failures++;
            snprintf(w->what, sizeof w->what, "%s", err.what);
            continue;
        }
        //  Read the other worker's tables, each in its own txn.
        es_txn_t *txn = es_store_begin(w->store, false, &err);
        if (!txn) {
            w->failures++;
            continue;
        }
        char table[32];
        snprintf(table, sizeof table, "main:T%d_%d", 1 - w->id, i % 20);
        if (es_txn_count(txn, table, &err) < 0) {
            w->failures++;
            snprintf(w->what, sizeof w->what, "%s", err.what);
        }
        es_txn_abort(&txn);
    }
    return NULL;
}

static void
test_two_threads(void **state)
{
    (void)state;
    es_store_t *store = s_open(1 * MIB, 0); //  small map: growth under concurrency too
    //  Round 0 creates the tables; round 1 runs on a reopened store where they all exist but
    //  no handle is cached, so readers and writers open handles concurrently.
    for (int round = 0; round < 2; round++) {
        worker_t w[2] = {{store, 0, round * 300, 0, ""}, {store, 1, round * 300, 0, ""}};
        pthread_t t[2];
        for (int i = 0; i < 2; i++)
            assert_int_equal(pthread_create(&t[i], NULL, s_worker, &w[i]), 0);
        for (int i = 0; i < 2; i++)
            assert_int_equal(pthread_join(t[i], NULL), 0);
        for (int i = 0; i < 2; i++) {
            if (w[i].failures)
                fail_msg("worker %d: %d failures, last: %s", i, w[i].failures, w[i].what);
        }
        for (int id = 0; id < 2; id++)
            for (int j = 0; j < 20; j++) {
                char table[32];
                snprintf(table, sizeof table, "main:T%d_%d", id, j);
                assert_int_equal(s_count(store, table), 15 * (round + 1));
            }
        assert_int_equal(s_count(store, "stats"), 300 * (round + 1));
        es_store_destroy(&store);
        store = s_open(1 * MIB, 0);
    }
    es_store_destroy(&store);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_put_get_del_iter_count_clear, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_bad_arguments, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_many_tables, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_abort_discards_and_new_table_handles, s_setup,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_stale_read_view, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_map_growth, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_map_max, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_get_then_del, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_cursor_ops_model, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_cursor_ops_map_growth, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_trim, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_sorted_put_and_cursor, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_sorted_put_mixed, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_write_fn_failure, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_open_errors, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_read_only, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_rec_pack_unpack, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_second_process, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_map_resized_by_other_process, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_two_threads, s_setup, s_teardown),
    };
    if (getenv("ES_TEST_FILTER")) //  run a subset: ES_TEST_FILTER=test_map_*
        cmocka_set_test_filter(getenv("ES_TEST_FILTER"));
    return cmocka_run_group_tests(tests, NULL, NULL);
}
