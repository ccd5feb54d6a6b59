//  floor_load - the storage half of the download floor: parse each page written by floor_fetch
//  with the streaming libyajl parser (the one edgesync uses) and put every record's raw JSON
//  text, keyed by its key field, into an LMDB database, one transaction per page, with the same
//  environment flags and durability (synchronous commits) as the edgesync store. Minimal but
//  honest: a real client must at least parse (validate) each page and commit each record; this
//  does no type conversion or re-encoding at all.
//
//  usage: floor_load PAGEDIR DBFILE [KEYFIELD]   (KEYFIELD default "id")
//  Prints {"pages":N,"records":R,"seconds":S,"peak_dirty_kb":K} on stdout: K is the largest
//  Private_Dirty seen just before a commit (not counted in S).
#include <dirent.h>
#include <lmdb.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <yajl/yajl_parse.h>

//  What the process owns, as bench.py samples it for the daemon: Private_Dirty (kB) from
//  /proc/self/smaps_rollup; -1 if unreadable.
static long
s_private_dirty_kb(void)
{
    FILE *f = fopen("/proc/self/smaps_rollup", "r");
    if (!f)
        return -1;
    char line[256];
    long kb = -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "Private_Dirty: %ld kB", &kb) == 1)
            break;
    fclose(f);
    return kb;
}

static double
s_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

//  Streaming parse state: depth 1 = root object, 2 = inside "records" array, 3 = a record.
typedef struct {
    yajl_handle h;
    const char *text;
    const char *keyf;
    int depth;
    bool in_records; //  the array at depth 2 is "records"
    bool key_next;   //  the next scalar at depth 3 is the key field
    size_t rec_start;
    char key[65]; //  NUL-terminated
    size_t klen;
    MDB_txn *txn;
    MDB_dbi dbi;
    size_t records;
    int rc;
} st_t;

static int
s_scalar(st_t *s, const char *v, size_t len)
{
    if (s->depth == 3 && s->key_next) {
        s->klen = len < sizeof s->key - 1 ? len : sizeof s->key - 1;
        memcpy(s->key, v, s->klen);
        s->key[s->klen] = '\0';
    }
    s->key_next = false;
    return 1;
}
static int
s_null(void *c)
{
    return s_scalar(c, "", 0);
}
static int
s_bool(void *c, int b)
{
    (void)b;
    return s_scalar(c, "", 0);
}
static int
s_num(void *c, const char *v, size_t n)
{
    return s_scalar(c, v, n);
}
static int
s_str(void *c, const unsigned char *v, size_t n)
{
    return s_scalar(c, (const char *)v, n);
}

static int
s_map_key(void *c, const unsigned char *k, size_t n)
{
    st_t *s = c;
    if (s->depth == 1)
        s->in_records = n == 7 && memcmp(k, "records", 7) == 0;
    else if (s->depth == 3)
        s->key_next = strlen(s->keyf) == n && memcmp(k, s->keyf, n) == 0;
    return 1;
}

static int
s_open(void *c)
{
    st_t *s = c;
    s->key_next = false;
    if (++s->depth == 3 && s->in_records) {
        s->rec_start = yajl_get_bytes_consumed(s->h) - 1; //  just after the '{'
        s->klen = 0;
    }
    return 1;
}

static int
s_close(void *c)
{
    st_t *s = c;
    if (s->depth-- == 3 && s->in_records) {
        size_t end = yajl_get_bytes_consumed(s->h);
        if (!s->klen) {
            fprintf(stderr, "floor_load: record without %s\n", s->keyf);
            s->rc = -1;
            return 0;
        }
        //  An integer key is stored big-endian, as edgesync's key encoding orders it, so the
        //  pages are appended in key order as in the real store.
        unsigned char be[8];
        MDB_val kv = {s->klen, s->key};
        if (s->klen && s->klen < 20 && strspn(s->key, "0123456789") >= s->klen) {
            unsigned long long v = strtoull(s->key, NULL, 10);
            for (int b = 7; b >= 0; b--, v >>= 8)
                be[b] = (unsigned char)v;
            kv = (MDB_val){8, be};
        }
        MDB_val vv = {end - s->rec_start, (void *)(s->text + s->rec_start)};
        s->rc = mdb_put(s->txn, s->dbi, &kv, &vv, 0);
        s->records++;
        return s->rc == 0;
    }
    return 1;
}

static const yajl_callbacks s_cb = {s_null, s_bool,    NULL,    NULL,   s_num,  s_str,
                                    s_open, s_map_key, s_close, s_open, s_close};

static int
s_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static char *
s_slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *p = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (p && fread(p, 1, (size_t)n, f) != (size_t)n) {
        free(p);
        p = NULL;
    }
    fclose(f);
    if (p) {
        p[n] = '\0';
        *len = (size_t)n;
    }
    return p;
}

int
main(int argc, char **argv)
{
    if (argc < 3 || argc > 4) {
        fprintf(stderr, "usage: floor_load PAGEDIR DBFILE [KEYFIELD]\n");
        return 2;
    }
    const char *dir = argv[1], *keyf = argc == 4 ? argv[3] : "id";
    DIR *d = opendir(dir);
    if (!d) {
        perror(dir);
        return 1;
    }
    char **names = NULL;
    size_t nn = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (strncmp(e->d_name, "page-", 5) != 0)
            continue;
        if (nn == cap) {
            cap = cap ? cap * 2 : 256;
            names = realloc(names, cap * sizeof *names);
            if (!names)
                return 1;
        }
        names[nn++] = strdup(e->d_name);
    }
    closedir(d);
    qsort(names, nn, sizeof *names, s_cmp);

    double t0 = s_now();
    MDB_env *env;
    int rc = mdb_env_create(&env);
    if (!rc)
        rc = mdb_env_set_mapsize(env, (size_t)16 << 30);
    if (!rc)
        rc = mdb_env_set_maxdbs(env, 4);
    if (!rc)
        rc = mdb_env_open(env, argv[2], MDB_NOSUBDIR | MDB_NOTLS | MDB_NORDAHEAD, 0600);
    if (rc) {
        fprintf(stderr, "floor_load: lmdb: %s\n", mdb_strerror(rc));
        return 1;
    }
    size_t records = 0;
    long peak_dirty = -1;
    double sampling = 0;
    for (size_t i = 0; i < nn; i++) {
        char path[4096];
        size_t len;
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        char *text = s_slurp(path, &len);
        if (!text) {
            fprintf(stderr, "floor_load: cannot read %s\n", path);
            return 1;
        }
        st_t st = {0};
        st.text = text;
        st.keyf = keyf;
        rc = mdb_txn_begin(env, NULL, 0, &st.txn);
        if (!rc)
            rc = mdb_dbi_open(st.txn, "main", MDB_CREATE, &st.dbi);
        if (rc) {
            fprintf(stderr, "floor_load: lmdb: %s\n", mdb_strerror(rc));
            return 1;
        }
        st.h = yajl_alloc(&s_cb, NULL, &st);
        //  Whole page in one call, so byte offsets in the callbacks index text.
        yajl_status ys = yajl_parse(st.h, (const unsigned char *)text, len);
        if (ys == yajl_status_ok)
            ys = yajl_complete_parse(st.h);
        if (ys != yajl_status_ok || st.rc) {
            fprintf(stderr, "floor_load: %s: parse or lmdb failure (%s)\n", path,
                    st.rc ? mdb_strerror(st.rc) : "invalid JSON");
            return 1;
        }
        yajl_free(st.h);
        //  Just before the commit is when a batch holds the most: its text and its dirty
        //  pages. Sampled outside the measured time.
        double m0 = s_now();
        long dirty = s_private_dirty_kb();
        if (dirty > peak_dirty)
            peak_dirty = dirty;
        sampling += s_now() - m0;
        rc = mdb_txn_commit(st.txn);
        if (rc) {
            fprintf(stderr, "floor_load: lmdb: %s\n", mdb_strerror(rc));
            return 1;
        }
        records += st.records;
        free(text);
        free(names[i]);
    }
    mdb_env_close(env);
    double secs = s_now() - t0 - sampling;
    printf("{\"pages\":%zu,\"records\":%zu,\"seconds\":%.6f,\"peak_dirty_kb\":%ld}\n", nn,
           records, secs, peak_dirty);
    free(names);
    return 0;
}
