//  es_store - the one LMDB environment: open it, hand out transactions, cache table handles,
//  and grow the map when a write transaction runs out of room.
//
//  Table handles (MDB_dbi) are the subtle part. In LMDB a transaction sees exactly the handles
//  that were open in the environment when it began, plus the ones it opens itself; a handle it
//  opens is only kept if it commits (for a read txn too); and opening handles must not overlap
//  between transactions of one process (LMDB picks the slot from the transaction's own view).
//  So, under self->lock:
//  - a "generation" counts commits that kept new handles; each txn remembers the generation it
//    began at and uses only cached handles from that generation or older;
//  - a write txn opens a missing table itself (with MDB_CREATE for puts); the handle enters the
//    cache only when that txn commits. Write txns only begin while no read txn is an "opener",
//    and read txns never open handles while a write txn is alive, so a write txn's view of the
//    handles never goes stale;
//  - a read txn that needs a table first checks whether the table exists in its snapshot (a key
//    of the main database). If it does, the read txn opens the handle itself and becomes the
//    process's one "opener" until it ends; its end is an LMDB commit, which keeps the handle.
//    A read txn whose view went stale is renewed if it has not read anything yet, else it fails
//    with ES_EBUSY ("retry") - a narrow race between threads, impossible in one-thread actors.
//  Growing the map (mdb_env_set_mapsize) needs no live txn in the process: new txns wait while
//  it runs, and it waits for the live ones to end.
#include "store/es_store.h"
#include "common/es_log.h"
#include "common/es_mem.h"
#include <assert.h>
#include <errno.h>
#include <lmdb.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#define S_MAIN_DBI 1   //  LMDB's main database: named tables are its keys
#define S_MAX_DBS 2048 //  tables are per object, two per object
#define S_SLOTS 4096   //  hash slots for the handle cache, > S_MAX_DBS
#define S_MEMO 8       //  tables a txn remembers it resolved (see es_txn)
#define S_NAME_MAX 511 //  LMDB's default max key size bounds table names
#define S_MIB ((size_t)1 << 20)
#define S_DEFAULT_MAP (64 * S_MIB)
#define S_DEFAULT_MAP_MAX ((size_t)16 << 30)
#define S_RESIZED_RETRIES 16 //  another process growing the map again and again

typedef struct {
    char *name;   //  table name (owned); NULL = empty slot
    MDB_dbi dbi;  //  LMDB handle
    uint64_t gen; //  generation whose commit made the handle visible
} s_table_t;

struct es_store {
    MDB_env *env;         //  the environment
    char *path;           //  data_dir/<file>
    size_t map_max;       //  growth cap in bytes
    size_t map_size;      //  current map size in bytes (under lock)
    bool read_only;       //  opened with MDB_RDONLY
    pthread_mutex_t lock; //  guards everything below
    pthread_cond_t cond;  //  signalled whenever a txn ends or a resize finishes
    s_table_t *tables;    //  handle cache, open addressing, S_SLOTS
    uint64_t gen;         //  commits that kept new handles
    es_txn_t *live;       //  live transactions (list through prev/next)
    size_t nlive;         //  length of live
    size_t writers;       //  write txns begun or beginning
    es_txn_t *opener;     //  read txn holding newly opened handles, or NULL
    bool resizing;        //  a map resize is waiting for or running without txns
    void *trim_addr;      //  where es_store_trim found the map (NULL: look again)
    size_t trim_len;      //  its length
    size_t trim_map_size; //  the map size then: a resize moves the map
};

struct es_txn {
    es_store_t *store;     //  owner store (borrowed)
    MDB_txn *txn;          //  LMDB transaction; NULL once it died (failed renew)
    bool write;            //  write transaction
    bool map_full;         //  an operation hit MDB_MAP_FULL (es_store_write grows, retries)
    uint64_t gen;          //  store generation this txn's handle view matches
    size_t map_size;       //  map size when the txn began (to grow only once per fill)
    size_t ops;            //  answers given from this snapshot (renew only while 0)
    pthread_t owner;       //  thread that began it (to refuse self-deadlocking waits)
    es_txn_t *prev, *next; //  in store->live
    s_table_t *pending;    //  handles opened in this txn, cached only on commit
    size_t npending, cpending;
    //  Tables resolved lately (cache- or pending-owned names) and their handles: an upload
    //  answer's rows go to four or five tables in turn, each looked up once a row.
    const char *memo_name[S_MEMO];
    MDB_dbi memo_dbi[S_MEMO];
    size_t memo_next;   //  the slot the next table takes (round robin)
    size_t memo_last;   //  the slot s_dbi resolved last
    //  Write txns: a cursor per remembered table, kept where its last get/put/del left it.
    //  LMDB searches from a positioned cursor's leaf page first (no descent from the root when
    //  the key is on it), and a delete of the key a get just found needs no search at all:
    //  the apply of an upload answer reads rows and then deletes the same rows.
    MDB_cursor *memo_cur[S_MEMO];
    bool memo_hot[S_MEMO]; //  memo_cur rests on a key a get or put just found or wrote
    MDB_cursor *append; //  cursor of consecutive sorted puts (at the table's end), or NULL
    MDB_dbi append_dbi; //  its table
};

//  Any write but a sorted put may move keys under the append cursor: forget it.
static void
s_drop_append(es_txn_t *txn)
{
    if (txn->append) {
        mdb_cursor_close(txn->append);
        txn->append = NULL;
    }
}

//  Close the memo cursor of a slot (LMDB frees a write txn's cursors when the txn ends, so
//  every one must be closed before that).
static void
s_drop_memo_cursor(es_txn_t *txn, size_t slot)
{
    if (txn->memo_cur[slot]) {
        mdb_cursor_close(txn->memo_cur[slot]);
        txn->memo_cur[slot] = NULL;
    }
    txn->memo_hot[slot] = false;
}

//  --------------------------------------------------------------------------
//  Handle cache (call with self->lock held)

static size_t
s_hash(const char *name)
{
    uint64_t h = 14695981039346656037ULL; //  FNV-1a
    for (const unsigned char *p = (const unsigned char *)name; *p; p++)
        h = (h ^ *p) * 1099511628211ULL;
    return (size_t)(h & (S_SLOTS - 1));
}

static s_table_t *
s_cache_find(es_store_t *self, const char *name)
{
    for (size_t i = s_hash(name), n = 0; n < S_SLOTS; i = (i + 1) & (S_SLOTS - 1), n++) {
        if (!self->tables[i].name)
            return NULL;
        if (strcmp(self->tables[i].name, name) == 0)
            return &self->tables[i];
    }
    return NULL;
}

//  Takes ownership of name. LMDB caps handles at S_MAX_DBS < S_SLOTS, so a slot is always free.
static void
s_cache_add(es_store_t *self, char *name, MDB_dbi dbi, uint64_t gen)
{
    size_t i = s_hash(name);
    while (self->tables[i].name) {
        if (strcmp(self->tables[i].name, name) == 0) {
            //  Reopening a name LMDB already had open returns the same handle.
            self->tables[i].dbi = dbi;
            free(name);
            return;
        }
        i = (i + 1) & (S_SLOTS - 1);
    }
    self->tables[i] = (s_table_t){name, dbi, gen};
}

//  --------------------------------------------------------------------------
//  Errors

static int
s_fail(es_err_t *err, const char *op, const char *subject, int rc)
{
    return es_err_set(err, ES_ESTORE, "store: %s %s: %s", op, subject, mdb_strerror(rc));
}

static bool
s_this_thread_holds(es_store_t *self, bool write_only)
{
    pthread_t me = pthread_self();
    for (es_txn_t *t = self->live; t; t = t->next)
        if (pthread_equal(t->owner, me) && (t->write || !write_only))
            return true;
    return false;
}

//  --------------------------------------------------------------------------
//  Store

const char *
es_store_path(const es_store_t *self)
{
    assert(self);
    return self->path;
}

static size_t
s_env_map_size(MDB_env *env)
{
    MDB_envinfo info;
    if (mdb_env_info(env, &info))
        return 0;
    return info.me_mapsize;
}

//  Find the mapping of the data file in /proc/self/maps (by device and inode). LMDB does not
//  say where its map is: me_mapaddr is set only with MDB_FIXEDMAP.
static int
s_find_map(es_store_t *self, es_err_t *err)
{
    mdb_filehandle_t fd;
    struct stat st;
    int rc = mdb_env_get_fd(self->env, &fd);
    if (rc)
        return es_err_set(err, ES_ESTORE, "store: trim: %s", mdb_strerror(rc));
    if (fstat(fd, &st))
        return es_err_set(err, ES_ESYS, "store: trim: fstat: %s", strerror(errno));
    FILE *maps = fopen("/proc/self/maps", "r");
    if (!maps)
        return es_err_set(err, ES_ESYS, "store: trim: /proc/self/maps: %s", strerror(errno));
    char line[4400]; //  PATH_MAX and the fields before it
    self->trim_addr = NULL;
    while (fgets(line, sizeof line, maps)) {
        unsigned long start, end, ino;
        unsigned maj, min;
        if (sscanf(line, "%lx-%lx %*s %*s %x:%x %lu", &start, &end, &maj, &min, &ino) == 5 &&
            ino == (unsigned long)st.st_ino && maj == major(st.st_dev) &&
            min == minor(st.st_dev) && end - start > self->trim_len) {
            self->trim_addr = (void *)start; //  the map (the largest mapping of the file)
            self->trim_len = end - start;
        }
    }
    fclose(maps);
    if (!self->trim_addr)
        return es_err_set(err, ES_ESTORE, "store: trim: the map of %s is not in /proc/self/maps",
                          self->path);
    return 0;
}

int
es_store_trim(es_store_t *self, es_err_t *err)
{
    assert(self);
    size_t size = s_env_map_size(self->env);
    int rc = 0;
    pthread_mutex_lock(&self->lock);
    if (!self->trim_addr || size != self->trim_map_size) {
        self->trim_len = 0;
        rc = s_find_map(self, err);
        self->trim_map_size = size;
    }
    //  The map is read-only and shared (no MDB_WRITEMAP): dropping it loses nothing.
    if (rc == 0 && madvise(self->trim_addr, self->trim_len, MADV_DONTNEED)) {
        rc = es_err_set(err, ES_ESYS, "store: trim: madvise: %s", strerror(errno));
        self->trim_addr = NULL;
    }
    pthread_mutex_unlock(&self->lock);
    return rc;
}

es_store_t *
es_store_new(const char *data_dir, const es_store_opts_t *opts, es_err_t *err)
{
    assert(data_dir);
    es_store_opts_t defaults = {0};
    if (!opts)
        opts = &defaults;
    const char *file = opts->file ? opts->file : "edgesync.mdb";
    if (!*file || strchr(file, '/'))
        return es_err_set(err, ES_EINVAL, "store: file name '%s': must be a plain name", file),
               NULL;

    es_store_t *self = es_calloc(1, sizeof *self);
    self->path = es_sprintf("%s/%s", data_dir, file);
    self->map_max = opts->map_max ? opts->map_max : S_DEFAULT_MAP_MAX;
    self->read_only = opts->read_only;
    size_t map_size = opts->map_size ? opts->map_size : S_DEFAULT_MAP;
    if (map_size > self->map_max)
        map_size = self->map_max;
    self->tables = es_calloc(S_SLOTS, sizeof *self->tables);
    //  The destructor needs these initialised before any failure below.
    if (pthread_mutex_init(&self->lock, NULL) || pthread_cond_init(&self->cond, NULL)) {
        es_err_set(err, ES_ESYS, "store: open %s: cannot create mutex", self->path);
        free(self->tables);
        free(self->path);
        free(self);
        return NULL;
    }

    int rc = mdb_env_create(&self->env);
    if (rc) {
        self->env = NULL;
        s_fail(err, "open", self->path, rc);
        es_store_destroy(&self);
        return NULL;
    }
    unsigned flags = MDB_NOSUBDIR | MDB_NOTLS | MDB_NORDAHEAD;
    if (opts->read_only)
        flags |= MDB_RDONLY;
    const char *step = "set map size of";
    rc = mdb_env_set_mapsize(self->env, map_size);
    if (rc == 0) {
        step = "set max tables of";
        rc = mdb_env_set_maxdbs(self->env, S_MAX_DBS);
    }
    if (rc == 0) {
        step = "set max readers of";
        rc = mdb_env_set_maxreaders(self->env, 256);
    }
    if (rc == 0) {
        step = "open";
        rc = mdb_env_open(self->env, self->path, flags, 0600);
    }
    //  An existing file may record a bigger map (another process grew it): keep the bigger.
    if (rc == 0) {
        step = "read map size of";
        rc = mdb_env_set_mapsize(self->env, 0);
    }
    if (rc == 0 && s_env_map_size(self->env) < map_size) {
        step = "set map size of";
        rc = mdb_env_set_mapsize(self->env, map_size);
    }
    if (rc == 0) {
        //  Looking table names up in the main database needs its comparator, which LMDB only
        //  sets when the main database is opened once.
        step = "open main database of";
        MDB_txn *txn;
        MDB_dbi main_dbi;
        rc = mdb_txn_begin(self->env, NULL, MDB_RDONLY, &txn);
        if (rc == 0) {
            rc = mdb_dbi_open(txn, NULL, 0, &main_dbi);
            if (rc == 0)
                rc = mdb_txn_commit(txn);
            else
                mdb_txn_abort(txn);
        }
    }
    if (rc) {
        //  mdb_strerror covers errno values too: "No such file or directory".
        s_fail(err, step, self->path, rc);
        es_store_destroy(&self);
        return NULL;
    }
    self->map_size = s_env_map_size(self->env);
    //  A process killed inside a read transaction leaves its reader slot behind, pinning old
    //  pages (the file grows) and filling the table; every (re)started process clears them.
    int dead = 0;
    rc = mdb_reader_check(self->env, &dead);
    if (rc)
        es_log_warn("store: %s: reader check: %s", self->path, mdb_strerror(rc));
    else if (dead)
        es_log_info("store: %s: cleared %d reader slot(s) of dead processes", self->path, dead);
    return self;
}

void
es_store_destroy(es_store_t **self_p)
{
    if (!*self_p)
        return;
    es_store_t *self = *self_p;
    assert(self->nlive == 0); //  every txn must end before its store
    if (self->env)
        mdb_env_close(self->env); //  also closes every handle
    for (size_t i = 0; i < S_SLOTS; i++)
        free(self->tables[i].name);
    free(self->tables);
    pthread_cond_destroy(&self->cond);
    pthread_mutex_destroy(&self->lock);
    free(self->path);
    free(self);
    *self_p = NULL;
}

//  Change the map size with no live transaction in this process (LMDB's rule: remapping under
//  a reader would pull pages from under it). size 0 adopts the size another process set.
//  seen: the size the caller's failed txn had; if the map already changed since, do nothing.
static int
s_resize(es_store_t *self, size_t size, size_t seen, es_err_t *err)
{
    pthread_mutex_lock(&self->lock);
    while (self->resizing)
        pthread_cond_wait(&self->cond, &self->lock);
    if (size && self->map_size != seen) {
        pthread_mutex_unlock(&self->lock); //  another thread grew it meanwhile
        return 0;
    }
    if (size && self->map_size >= self->map_max) {
        size_t mib = self->map_size / S_MIB;
        pthread_mutex_unlock(&self->lock);
        return es_err_set(err, ES_ESTORE, "store: map full at %zu MiB; raise store.map_max_mb",
                          mib);
    }
    if (s_this_thread_holds(self, false)) {
        pthread_mutex_unlock(&self->lock);
        return es_err_set(err, ES_EBUSY,
                          "store: resize map of %s: this thread still holds a transaction",
                          self->path);
    }
    self->resizing = true;
    while (self->nlive > 0)
        pthread_cond_wait(&self->cond, &self->lock);
    if (size) {
        size = self->map_size * 2 > self->map_max || self->map_size * 2 < self->map_size
                   ? self->map_max
                   : self->map_size * 2;
    }
    int rc = mdb_env_set_mapsize(self->env, size);
    if (rc == 0)
        self->map_size = s_env_map_size(self->env);
    size_t now = self->map_size;
    self->resizing = false;
    pthread_cond_broadcast(&self->cond);
    pthread_mutex_unlock(&self->lock);
    if (rc)
        return s_fail(err, "resize map of", self->path, rc);
    es_log_info("store: %s: map %s to %zu MiB", self->path,
                size ? "grown" : "resized by another process", now / S_MIB);
    return 0;
}

//  --------------------------------------------------------------------------
//  Transactions

static void
s_unlink_live(es_store_t *self, es_txn_t *txn)
{
    if (txn->prev)
        txn->prev->next = txn->next;
    else
        self->live = txn->next;
    if (txn->next)
        txn->next->prev = txn->prev;
    self->nlive--;
}

es_txn_t *
es_store_begin(es_store_t *self, bool write, es_err_t *err)
{
    assert(self);
    for (int attempt = 0;; attempt++) {
        es_txn_t *txn = es_calloc(1, sizeof *txn);
        txn->store = self;
        txn->write = write;
        txn->owner = pthread_self();

        pthread_mutex_lock(&self->lock);
        while (self->resizing || (write && self->opener)) {
            if (s_this_thread_holds(self, false)) {
                pthread_mutex_unlock(&self->lock);
                free(txn);
                return es_err_set(err, ES_EBUSY,
                                  "store: begin %s %s: this thread already holds a transaction",
                                  write ? "write" : "read", self->path),
                       NULL;
            }
            pthread_cond_wait(&self->cond, &self->lock);
        }
        txn->next = self->live;
        if (self->live)
            self->live->prev = txn;
        self->live = txn;
        self->nlive++;
        int rc;
        if (write) {
            self->writers++;
            pthread_mutex_unlock(&self->lock);
            //  May block on another writer (any process): never under self->lock.
            rc = mdb_txn_begin(self->env, NULL, 0, &txn->txn);
            pthread_mutex_lock(&self->lock);
        } else {
            //  Under the lock so that gen matches the handles this snapshot sees.
            rc = mdb_txn_begin(self->env, NULL, MDB_RDONLY, &txn->txn);
        }
        txn->gen = self->gen;
        txn->map_size = self->map_size;
        if (rc == 0) {
            pthread_mutex_unlock(&self->lock);
            return txn;
        }
        s_unlink_live(self, txn);
        if (write)
            self->writers--;
        pthread_cond_broadcast(&self->cond);
        pthread_mutex_unlock(&self->lock);
        free(txn);
        if (rc != MDB_MAP_RESIZED || attempt >= S_RESIZED_RETRIES)
            return s_fail(err, write ? "begin write" : "begin read", self->path, rc), NULL;
        //  Another process grew the map past ours: adopt its size and begin again.
        if (s_resize(self, 0, 0, err))
            return NULL;
    }
}

//  End txn: commit (or, for a read txn holding new handles, keep them), release, free.
//  Returns LMDB's code (0 on success).
static int
s_end(es_txn_t **txn_p, bool commit)
{
    es_txn_t *txn = *txn_p;
    *txn_p = NULL;
    es_store_t *self = txn->store;
    int rc = 0;
    s_drop_append(txn);
    for (size_t i = 0; i < S_MEMO; i++)
        s_drop_memo_cursor(txn, i);
    //  A read txn's commit differs from its abort only in keeping the handles it opened.
    bool keep = txn->npending > 0 && txn->txn && (commit || !txn->write);

    pthread_mutex_lock(&self->lock);
    if (keep) {
        //  Commit and publish under the lock: no txn may begin between the handles becoming
        //  visible in LMDB and the generation that says so.
        rc = mdb_txn_commit(txn->txn);
        if (rc == 0) {
            self->gen++;
            for (size_t i = 0; i < txn->npending; i++) {
                s_cache_add(self, txn->pending[i].name, txn->pending[i].dbi, self->gen);
                txn->pending[i].name = NULL;
            }
        }
    } else if (txn->txn) {
        pthread_mutex_unlock(&self->lock); //  commits fsync: not under the lock
        if (commit)
            rc = mdb_txn_commit(txn->txn);
        else
            mdb_txn_abort(txn->txn);
        pthread_mutex_lock(&self->lock);
    } else if (commit) {
        rc = MDB_BAD_TXN;
    }
    if (self->opener == txn)
        self->opener = NULL;
    if (txn->write)
        self->writers--;
    s_unlink_live(self, txn);
    pthread_cond_broadcast(&self->cond);
    pthread_mutex_unlock(&self->lock);

    for (size_t i = 0; i < txn->npending; i++)
        free(txn->pending[i].name);
    free(txn->pending);
    free(txn);
    return rc;
}

int
es_txn_commit(es_txn_t **txn_p, es_err_t *err)
{
    assert(txn_p && *txn_p);
    const char *path = (*txn_p)->store->path;
    int rc = s_end(txn_p, true);
    if (rc)
        return s_fail(err, "commit", path, rc);
    return 0;
}

void
es_txn_abort(es_txn_t **txn_p)
{
    if (!txn_p || !*txn_p)
        return;
    (void)s_end(txn_p, false); //  an abort cannot fail; a read txn's keep-commit cannot either
}

int
es_store_write(es_store_t *self, es_store_fn *fn, void *ctx, es_err_t *err)
{
    assert(self && fn);
    for (;;) {
        es_txn_t *txn = es_store_begin(self, true, err);
        if (!txn)
            return -1;
        size_t seen = txn->map_size;
        int rc = fn(txn, ctx, err);
        bool full = txn->map_full;
        if (rc == 0 && !full) {
            int mrc = s_end(&txn, true);
            if (mrc == 0)
                return 0;
            if (mrc != MDB_MAP_FULL)
                return s_fail(err, "commit", self->path, mrc);
            full = true;
        } else {
            es_txn_abort(&txn);
            if (!full)
                return -1; //  fn's own failure, err already set by fn
        }
        //  fn is repeatable by contract: grow and run it again from scratch.
        if (s_resize(self, 1, seen, err))
            return -1;
    }
}

//  --------------------------------------------------------------------------
//  Table handles

static void
s_memo_put(es_txn_t *self, const char *name, MDB_dbi dbi)
{
    s_drop_memo_cursor(self, self->memo_next); //  its cursor belongs to the table leaving
    self->memo_last = self->memo_next;
    self->memo_name[self->memo_next] = name;
    self->memo_dbi[self->memo_next] = dbi;
    self->memo_next = (self->memo_next + 1) % S_MEMO;
}

static void
s_pending_add(es_txn_t *self, const char *table, MDB_dbi dbi)
{
    if (self->npending == self->cpending) {
        self->cpending = self->cpending ? self->cpending * 2 : 4;
        self->pending = es_realloc(self->pending, self->cpending * sizeof *self->pending);
    }
    self->pending[self->npending++] = (s_table_t){es_strdup(table), dbi, 0};
    s_memo_put(self, self->pending[self->npending - 1].name, dbi);
}

//  Renew a read txn that has not answered anything yet so it sees the current handles.
//  Call with the lock held.
static int
s_renew(es_txn_t *self, const char *op, const char *table, es_err_t *err)
{
    es_store_t *store = self->store;
    mdb_txn_reset(self->txn);
    int rc = mdb_txn_renew(self->txn);
    if (rc) {
        mdb_txn_abort(self->txn);
        self->txn = NULL; //  dead: later calls fail, commit reports it, abort frees
        return s_fail(err, op, table, rc);
    }
    self->gen = store->gen;
    memset(self->memo_name, 0, sizeof self->memo_name);
    return 0;
}

//  Find the handle for table in self. 1 found, 0 the table does not exist (never for create),
//  -1 error. create: make the table if missing (write txns).
static int
s_dbi(es_txn_t *self, const char *op, const char *table, bool create, MDB_dbi *dbi, es_err_t *err)
{
    if (!table || !*table || strlen(table) > S_NAME_MAX)
        return es_err_set(err, ES_EINVAL, "store: %s: table name must be 1..%d bytes", op,
                          S_NAME_MAX);
    if (!self->txn)
        return es_err_set(err, ES_ESTORE, "store: %s %s: transaction already failed", op, table);
    for (size_t i = 0; i < S_MEMO; i++) {
        const char *m = self->memo_name[i];
        if (m && m[0] == table[0] && strcmp(m, table) == 0) {
            *dbi = self->memo_dbi[i];
            self->memo_last = i;
            return 1;
        }
    }
    for (size_t i = 0; i < self->npending; i++) {
        if (strcmp(self->pending[i].name, table) == 0) {
            *dbi = self->pending[i].dbi;
            s_memo_put(self, self->pending[i].name, *dbi);
            return 1;
        }
    }
    es_store_t *store = self->store;
    int rc = 0, found = -1;
    pthread_mutex_lock(&store->lock);
    for (;;) {
        s_table_t *t = s_cache_find(store, table);
        if (t && t->gen <= self->gen) {
            *dbi = t->dbi;
            s_memo_put(self, t->name, *dbi); //  cache names live as long as the store
            found = 1;
            break;
        }
        if (self->write) {
            //  Writers never go stale (see top of file), so t is NULL here and this txn may
            //  open handles: no read txn opens any while a writer lives. Were that broken,
            //  LMDB would hand out a slot already in use: refuse instead.
            if (t) {
                pthread_mutex_unlock(&store->lock);
                return es_err_set(err, ES_EBUSY, "store: %s %s: stale table handle view", op,
                                  table);
            }
            rc = mdb_dbi_open(self->txn, table, create ? MDB_CREATE : 0, dbi);
            if (rc == MDB_NOTFOUND && !create) {
                found = 0;
                break;
            }
            if (rc) {
                if (rc == MDB_MAP_FULL)
                    self->map_full = true;
                break;
            }
            s_pending_add(self, table, *dbi);
            found = 1;
            break;
        }
        //  A read txn: if the table is not in this snapshot, the answer is "absent", and no
        //  handle is needed.
        MDB_val k = {strlen(table), (void *)table}, v;
        rc = mdb_get(self->txn, S_MAIN_DBI, &k, &v);
        if (rc == MDB_NOTFOUND) {
            rc = 0;
            found = 0;
            break;
        }
        if (rc)
            break;
        if (self->gen != store->gen) {
            //  Handles were published after this snapshot began; it cannot use them.
            if (self->ops == 0 && self->npending == 0) {
                if (s_renew(self, op, table, err)) {
                    pthread_mutex_unlock(&store->lock);
                    return -1;
                }
                continue;
            }
            pthread_mutex_unlock(&store->lock);
            return es_err_set(err, ES_EBUSY,
                              "store: %s %s: table opened by another thread during this read "
                              "transaction; retry the transaction",
                              op, table);
        }
        if ((store->opener && store->opener != self) || store->writers > 0) {
            if (s_this_thread_holds(store, true)) {
                pthread_mutex_unlock(&store->lock);
                return es_err_set(err, ES_EBUSY,
                                  "store: %s %s: this thread holds a write transaction too", op,
                                  table);
            }
            pthread_cond_wait(&store->cond, &store->lock);
            continue;
        }
        rc = mdb_dbi_open(self->txn, table, 0, dbi);
        if (rc == MDB_NOTFOUND) {
            rc = 0;
            found = 0;
            break;
        }
        if (rc)
            break;
        store->opener = self;
        s_pending_add(self, table, *dbi);
        found = 1;
        break;
    }
    pthread_mutex_unlock(&store->lock);
    if (found < 0)
        return s_fail(err, op, table, rc);
    return found;
}

//  --------------------------------------------------------------------------
//  Table operations

static int
s_need_write(es_txn_t *self, const char *op, const char *table, es_err_t *err)
{
    if (!self->write)
        return es_err_set(err, ES_EINVAL, "store: %s %s: read-only transaction", op,
                          table ? table : "(null)");
    return 0;
}

//  The memo cursor of the table s_dbi resolved last (write txns), opened on first use; its slot
//  in *slot. NULL with err if LMDB cannot open one.
static MDB_cursor *
s_memo_cursor(es_txn_t *self, const char *op, const char *table, size_t *slot, es_err_t *err)
{
    size_t i = self->memo_last;
    if (!self->memo_cur[i]) {
        int rc = mdb_cursor_open(self->txn, self->memo_dbi[i], &self->memo_cur[i]);
        if (rc) {
            self->memo_cur[i] = NULL;
            s_fail(err, op, table, rc);
            return NULL;
        }
    }
    *slot = i;
    return self->memo_cur[i];
}

int
es_txn_get(es_txn_t *txn, const char *table, const void *key, size_t klen, const void **val,
           size_t *vlen, es_err_t *err)
{
    assert(txn && val && vlen);
    MDB_dbi dbi;
    int rc = s_dbi(txn, "get", table, false, &dbi, err);
    if (rc < 0)
        return -1;
    if (rc == 0) {
        txn->ops++;
        return 0;
    }
    MDB_val k = {klen, (void *)key}, v;
    if (txn->write) {
        size_t slot;
        MDB_cursor *cur = s_memo_cursor(txn, "get", table, &slot, err);
        if (!cur)
            return -1;
        rc = mdb_cursor_get(cur, &k, &v, MDB_SET);
        txn->memo_hot[slot] = rc == 0;
    } else {
        rc = mdb_get(txn->txn, dbi, &k, &v);
    }
    txn->ops++;
    if (rc == MDB_NOTFOUND)
        return 0;
    if (rc)
        return s_fail(err, "get", table, rc);
    *val = v.mv_data;
    *vlen = v.mv_size;
    return 1;
}

//  put; sorted: MDB_APPEND through a cursor kept at the table's end (no search while the keys
//  keep ascending), a searched put when the key is not the largest.
static int
s_put(es_txn_t *txn, const char *table, const void *key, size_t klen, const void *val,
      size_t vlen, bool sorted, es_err_t *err)
{
    assert(txn);
    if (s_need_write(txn, "put", table, err))
        return -1;
    MDB_dbi dbi;
    if (s_dbi(txn, "put", table, true, &dbi, err) < 0)
        return -1;
    MDB_val k = {klen, (void *)key}, v = {vlen, (void *)val};
    int rc;
    if (!sorted || (txn->append && txn->append_dbi != dbi))
        s_drop_append(txn);
    size_t slot = txn->memo_last;
    if (!sorted) {
        MDB_cursor *cur = s_memo_cursor(txn, "put", table, &slot, err);
        if (!cur)
            return -1;
        rc = mdb_cursor_put(cur, &k, &v, 0);
        txn->memo_hot[slot] = rc == 0; //  a put leaves the cursor on the key written
    } else if (!txn->append && (rc = mdb_cursor_open(txn->txn, dbi, &txn->append))) {
        txn->append = NULL;
    } else {
        txn->append_dbi = dbi;
        rc = mdb_cursor_put(txn->append, &k, &v, MDB_APPEND);
        if (rc == MDB_KEYEXIST) //  not above the last key: search
            rc = mdb_cursor_put(txn->append, &k, &v, 0);
        txn->memo_hot[slot] = false; //  written beside the memo cursor
    }
    txn->ops++;
    if (rc) {
        if (rc == MDB_MAP_FULL)
            txn->map_full = true;
        return s_fail(err, "put", table, rc);
    }
    return 0;
}

int
es_txn_put(es_txn_t *txn, const char *table, const void *key, size_t klen, const void *val,
           size_t vlen, es_err_t *err)
{
    return s_put(txn, table, key, klen, val, vlen, false, err);
}

int
es_txn_put_sorted(es_txn_t *txn, const char *table, const void *key, size_t klen,
                  const void *val, size_t vlen, es_err_t *err)
{
    return s_put(txn, table, key, klen, val, vlen, true, err);
}

int
es_txn_del(es_txn_t *txn, const char *table, const void *key, size_t klen, es_err_t *err)
{
    assert(txn);
    if (s_need_write(txn, "del", table, err))
        return -1;
    MDB_dbi dbi;
    int rc = s_dbi(txn, "del", table, false, &dbi, err);
    if (rc <= 0)
        return rc;
    MDB_val k = {klen, (void *)key}, ck, cv;
    s_drop_append(txn);
    size_t slot;
    MDB_cursor *cur = s_memo_cursor(txn, "del", table, &slot, err);
    if (!cur)
        return -1;
    //  Right after a get that found this key (or a put that wrote it) the cursor is on it.
    if (txn->memo_hot[slot] && mdb_cursor_get(cur, &ck, &cv, MDB_GET_CURRENT) == 0 &&
        ck.mv_size == klen && memcmp(ck.mv_data, key, klen) == 0)
        rc = 0;
    else
        rc = mdb_cursor_get(cur, &k, &cv, MDB_SET);
    txn->memo_hot[slot] = false;
    if (rc == 0)
        rc = mdb_cursor_del(cur, 0);
    txn->ops++;
    if (rc == MDB_NOTFOUND)
        return 0;
    if (rc) {
        if (rc == MDB_MAP_FULL) //  a delete can split pages too
            txn->map_full = true;
        return s_fail(err, "del", table, rc);
    }
    return 1;
}

int
es_txn_clear(es_txn_t *txn, const char *table, es_err_t *err)
{
    assert(txn);
    if (s_need_write(txn, "clear", table, err))
        return -1;
    MDB_dbi dbi;
    int rc = s_dbi(txn, "clear", table, false, &dbi, err);
    if (rc <= 0)
        return rc; //  a table that does not exist is already clear
    s_drop_append(txn);
    txn->memo_hot[txn->memo_last] = false; //  LMDB unpositions the table's cursors
    rc = mdb_drop(txn->txn, dbi, 0);
    txn->ops++;
    if (rc) {
        if (rc == MDB_MAP_FULL)
            txn->map_full = true;
        return s_fail(err, "clear", table, rc);
    }
    return 0;
}

int64_t
es_txn_count(es_txn_t *txn, const char *table, es_err_t *err)
{
    assert(txn);
    MDB_dbi dbi;
    int rc = s_dbi(txn, "count", table, false, &dbi, err);
    if (rc < 0)
        return -1;
    if (rc == 0) {
        txn->ops++;
        return 0;
    }
    MDB_stat st;
    rc = mdb_stat(txn->txn, dbi, &st);
    txn->ops++;
    if (rc)
        return s_fail(err, "count", table, rc);
    return (int64_t)st.ms_entries;
}

int
es_txn_iter(es_txn_t *txn, const char *table, const void *from, size_t flen, es_store_iter_fn *fn,
            void *ctx, es_err_t *err)
{
    assert(txn && fn);
    MDB_dbi dbi;
    int rc = s_dbi(txn, "iter", table, false, &dbi, err);
    txn->ops++;
    if (rc <= 0)
        return rc;
    MDB_cursor *cur;
    rc = mdb_cursor_open(txn->txn, dbi, &cur);
    if (rc)
        return s_fail(err, "iter", table, rc);
    MDB_val k = {flen, (void *)from}, v;
    //  An empty "from" would be an invalid LMDB key; it means "from the start" anyway.
    rc = mdb_cursor_get(cur, &k, &v, from && flen ? MDB_SET_RANGE : MDB_FIRST);
    int result = 0;
    while (rc == 0) {
        int r = fn(ctx, k.mv_data, k.mv_size, v.mv_data, v.mv_size, err);
        if (r != 0) {
            result = r < 0 ? -1 : 0;
            break;
        }
        rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    if (rc && rc != MDB_NOTFOUND)
        result = s_fail(err, "iter", table, rc);
    mdb_cursor_close(cur);
    return result;
}

//  --------------------------------------------------------------------------
//  Forward cursors

struct es_cursor {
    es_txn_t *txn;    //  owner txn (borrowed)
    char *table;      //  for errors
    MDB_dbi dbi;      //  its handle
    MDB_cursor *cur;  //  NULL: the table does not exist
    MDB_val at;       //  key under the cursor (valid while positioned)
    bool positioned;  //  at holds a key
    bool end;         //  past the last key
    es_buf_t last;    //  previous key asked (a lower one searches again)
};

es_cursor_t *
es_cursor_new(es_txn_t *txn, const char *table, es_err_t *err)
{
    assert(txn);
    MDB_dbi dbi;
    int rc = s_dbi(txn, "cursor", table, false, &dbi, err);
    txn->ops++;
    if (rc < 0)
        return NULL;
    es_cursor_t *self = es_calloc(1, sizeof *self);
    self->txn = txn;
    self->table = es_strdup(table);
    self->dbi = dbi;
    es_buf_init(&self->last);
    if (rc == 1 && (rc = mdb_cursor_open(txn->txn, dbi, &self->cur))) {
        s_fail(err, "cursor", table, rc);
        es_cursor_destroy(&self);
    }
    return self;
}

void
es_cursor_destroy(es_cursor_t **self_p)
{
    assert(self_p);
    es_cursor_t *self = *self_p;
    if (!self)
        return;
    if (self->cur)
        mdb_cursor_close(self->cur);
    es_buf_release(&self->last);
    free(self->table);
    free(self);
    *self_p = NULL;
}

//  Move to the first key >= key (MDB_SET_RANGE).
static int
s_cursor_seek(es_cursor_t *self, MDB_val *k, es_err_t *err)
{
    MDB_val key = *k, v;
    int rc = mdb_cursor_get(self->cur, &key, &v, MDB_SET_RANGE);
    if (rc == MDB_NOTFOUND) {
        self->positioned = false;
        self->end = true;
        return 0;
    }
    if (rc)
        return s_fail(err, "cursor", self->table, rc);
    self->at = key;
    self->positioned = true;
    self->end = false;
    return 0;
}

int
es_cursor_contains(es_cursor_t *self, const void *key, size_t klen, es_err_t *err)
{
    assert(self);
    if (!self->cur)
        return 0;
    if (!key || klen == 0) //  no LMDB key is empty
        return 0;
    MDB_val k = {klen, (void *)key};
    MDB_val last = {self->last.len, self->last.data};
    bool forward = self->last.len && mdb_cmp(self->txn->txn, self->dbi, &k, &last) >= 0;
    es_buf_reset(&self->last);
    es_buf_append(&self->last, key, klen);
    if (!forward) {
        if (s_cursor_seek(self, &k, err))
            return -1;
    } else if (self->positioned && mdb_cmp(self->txn->txn, self->dbi, &self->at, &k) < 0) {
        //  One step usually lands on the key (both sides list the same keys); else search.
        MDB_val nk, v;
        int rc = mdb_cursor_get(self->cur, &nk, &v, MDB_NEXT);
        if (rc == MDB_NOTFOUND) {
            self->positioned = false;
            self->end = true;
        } else if (rc) {
            return s_fail(err, "cursor", self->table, rc);
        } else {
            self->at = nk;
            if (mdb_cmp(self->txn->txn, self->dbi, &self->at, &k) < 0 && s_cursor_seek(self, &k, err))
                return -1;
        }
    }
    if (self->end || !self->positioned)
        return 0;
    return mdb_cmp(self->txn->txn, self->dbi, &self->at, &k) == 0 ? 1 : 0;
}

//  --------------------------------------------------------------------------
//  Record values and table names

void
es_store_rec_pack(es_buf_t *out, const char *checksum, size_t cslen, const void *rec, size_t len)
{
    assert(out);
    //  The length prefix is 16 bits; checksums are short digests, bounded where they are
    //  parsed, so a longer one here is our own bug.
    assert(cslen <= UINT16_MAX);
    unsigned char hdr[2] = {(unsigned char)(cslen & 0xff), (unsigned char)(cslen >> 8)};
    es_buf_reset(out);
    es_buf_append(out, hdr, 2);
    if (cslen)
        es_buf_append(out, checksum, cslen);
    if (len)
        es_buf_append(out, rec, len);
}

int
es_store_rec_unpack(const void *val, size_t vlen, const char **checksum, size_t *cslen,
                    const void **rec, size_t *len)
{
    assert(checksum && cslen && rec && len);
    const unsigned char *p = val;
    if (!p || vlen < 2)
        return -1;
    size_t n = (size_t)p[0] | (size_t)p[1] << 8;
    if (n > vlen - 2)
        return -1;
    *checksum = (const char *)p + 2;
    *cslen = n;
    *rec = p + 2 + n;
    *len = vlen - 2 - n;
    return 0;
}

void
es_store_table(es_buf_t *out, const char *prefix, const char *object)
{
    assert(out && prefix && object);
    es_buf_reset(out);
    //  Not es_buf_printf: this runs several times per record applied.
    es_buf_puts(out, prefix);
    es_buf_putc(out, ':');
    es_buf_puts(out, object);
}
