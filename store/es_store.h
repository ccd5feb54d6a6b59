//  es_store - the one LMDB environment (data_dir/edgesync.mdb) shared by every process, its
//  named tables, and write transactions that survive MDB_MAP_FULL by growing the map.
//  Tables: "meta", "main:<object>", "orig:<object>", "hist", "upcache", "ctx", "session",
//  "stats" (ARCHITECTURE.md "The store"). Open after exec, never across fork.
#ifndef ES_STORE_H
#define ES_STORE_H
#include "common/es_buf.h"
#include "common/es_err.h"
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct es_store es_store_t;
typedef struct es_txn es_txn_t;

typedef struct {
    size_t map_size;     //  initial map size in bytes (0 = 64 MiB)
    size_t map_max;      //  the map never grows past this (0 = 16 GiB)
    bool read_only;      //  open read-only (MDB_RDONLY)
    const char *file;    //  file name inside data_dir (NULL = "edgesync.mdb")
} es_store_opts_t;

//  Thread-safe: transactions may be used from several threads (MDB_NOTLS; the table handle
//  cache is locked), one transaction per thread at a time. With several threads, a read txn
//  that already answered something can fail with ES_EBUSY ("retry the transaction") when another
//  thread opened a table handle it now needs; growing the map waits until no txn is live.
//  Open or create data_dir/edgesync.mdb (MDB_NOSUBDIR; the data dir must exist). NULL with err
//  naming the path and LMDB's text on failure (missing or read-only directory, bad file).
es_store_t *es_store_new(const char *data_dir, const es_store_opts_t *opts, es_err_t *err);
void es_store_destroy(es_store_t **self_p);

//  Release this process's mappings of store pages it has read (they stay in the kernel's page
//  cache). A sweep or a long download reads every page of a table through the map; without this
//  each page read stays resident and counted against the process. Safe at any time: a page
//  touched again is mapped back from the cache. Call between transactions (a map growth moves
//  the map). -1 with err if the kernel refuses.
int es_store_trim(es_store_t *self, es_err_t *err);

//  Begin a transaction. NULL with err. Read transactions must not be held across a poll.
es_txn_t *es_store_begin(es_store_t *self, bool write, es_err_t *err);
//  Commit and free; *txn_p set to NULL whatever happens. -1 with err on failure.
int es_txn_commit(es_txn_t **txn_p, es_err_t *err);
//  Abort and free; safe on NULL.
void es_txn_abort(es_txn_t **txn_p);

//  Run fn in one write transaction and commit. If fn or the commit hits MDB_MAP_FULL the txn is
//  aborted, the map grows (doubling, up to map_max) and fn runs again from scratch, so fn must
//  be repeatable. fn returns 0 to commit, -1 (with err) to abort. The one place MAP_FULL is
//  handled. A full map at map_max fails with err "store: map full at N MiB; raise store.map_max_mb".
typedef int(es_store_fn)(es_txn_t *txn, void *ctx, es_err_t *err);
int es_store_write(es_store_t *self, es_store_fn *fn, void *ctx, es_err_t *err);

//  Table operations. table is a name from the list above; tables are created on first write.
//  get: 1 found (*val borrowed until the txn ends), 0 not found, -1 error.
int es_txn_get(es_txn_t *txn, const char *table, const void *key, size_t klen, const void **val,
               size_t *vlen, es_err_t *err);
int es_txn_put(es_txn_t *txn, const char *table, const void *key, size_t klen, const void *val,
               size_t vlen, es_err_t *err);
//  put for keys arriving in ascending order (a listing copied into a table): a key above every
//  key of the table is appended without a search; any other key is an ordinary put.
int es_txn_put_sorted(es_txn_t *txn, const char *table, const void *key, size_t klen,
                      const void *val, size_t vlen, es_err_t *err);
//  del: 1 deleted, 0 was absent, -1 error. In a write txn each table keeps a cursor where its
//  last get/put/del left it: a del of the key a get of that table just found (other tables may
//  be written in between) needs no search, and keys near the last one are found on its page.
int es_txn_del(es_txn_t *txn, const char *table, const void *key, size_t klen, es_err_t *err);
//  Delete every entry of a table (keeps the table). 0 or -1.
int es_txn_clear(es_txn_t *txn, const char *table, es_err_t *err);
//  Entries in a table (0 if it does not exist). -1 on error.
int64_t es_txn_count(es_txn_t *txn, const char *table, es_err_t *err);

//  Iterate keys >= from (from NULL: first key) in byte order; fn returns 0 to go on, 1 to stop,
//  -1 to fail (err set). Values borrowed for the callback. 0 at the end or stop, -1 on error.
typedef int(es_store_iter_fn)(void *ctx, const void *key, size_t klen, const void *val,
                              size_t vlen, es_err_t *err);
int es_txn_iter(es_txn_t *txn, const char *table, const void *from, size_t flen,
                es_store_iter_fn *fn, void *ctx, es_err_t *err);

//  Membership tests for keys asked in ascending order (a sweep comparing two tables): the cursor
//  only moves forward, a step per key instead of a search. A key below the previous one asked
//  searches again, so any order is correct. For read txns (a write to the table in between
//  invalidates it); destroy it before its txn ends.
typedef struct es_cursor es_cursor_t;
//  NULL with err on failure. A missing table contains nothing.
es_cursor_t *es_cursor_new(es_txn_t *txn, const char *table, es_err_t *err);
void es_cursor_destroy(es_cursor_t **self_p);
//  1 key is in the table, 0 it is not, -1 error.
int es_cursor_contains(es_cursor_t *self, const void *key, size_t klen, es_err_t *err);

//  A record value in main:/orig: = [u16 checksum length][checksum][record MessagePack map].
//  Pack into out (reset first).
void es_store_rec_pack(es_buf_t *out, const char *checksum, size_t cslen, const void *rec,
                       size_t len);
//  Unpack: pointers into val. -1 if val is shorter than its header says.
int es_store_rec_unpack(const void *val, size_t vlen, const char **checksum, size_t *cslen,
                        const void **rec, size_t *len);

//  Table names for an object: "main:<object>" / "orig:<object>" into out (reset first).
void es_store_table(es_buf_t *out, const char *prefix, const char *object);

//  Path of the environment file (borrowed).
const char *es_store_path(const es_store_t *self);

#endif
