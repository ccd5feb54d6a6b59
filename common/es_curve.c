//  es_curve - CURVE key files and the allow-list of client public keys.
#include "common/es_curve.h"
#include "common/es_mem.h"
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#define S_LINE_MAX 1024 //  longer lines are not key files

struct es_curve_allow {
    uint8_t *keys; //  n keys of ES_CURVE_KEY_LEN bytes, sorted, distinct
    size_t n;
};

bool
es_curve_available(void)
{
    return zmq_has("curve") != 0;
}

static bool
s_is_z85(const char *s, size_t len)
{
    static const char alphabet[] = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                   ".-:+=^!/*?&<>()[]{}@%$#";
    if (len != ES_CURVE_Z85_LEN)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!s[i] || !strchr(alphabet, s[i]))
            return false;
    return true;
}

//  Classify one line: 0 blank or comment, 1 a key (copied to z85, 41 bytes), -1 bad (err set).
//  The key is the first word; '#' is a Z85 character, so a line is a comment only when that
//  word is not a key ("#<key>" is 41 characters: a commented-out key stays a comment).
static int
s_parse_line(const char *path, int lineno, char *line, bool trailing_comment, char *z85,
             es_err_t *err)
{
    char *p = line;
    while (isspace((unsigned char)*p))
        p++;
    char *end = p;
    while (*end && !isspace((unsigned char)*end))
        end++;
    size_t len = (size_t)(end - p);
    if (len == 0)
        return 0;
    if (!s_is_z85(p, len)) {
        if (*p == '#')
            return 0;
        return es_err_set(err, ES_ECONFIG, "%s:%d: expected a %d-character Z85 key, got '%.*s'%s",
                          path, lineno, ES_CURVE_Z85_LEN, len > 48 ? 48 : (int)len, p,
                          len > 48 ? "..." : "");
    }
    char *rest = end;
    while (isspace((unsigned char)*rest))
        rest++;
    if (*rest && !(trailing_comment && *rest == '#'))
        return es_err_set(err, ES_ECONFIG, "%s:%d: unexpected text after the key: '%.20s'", path,
                          lineno, rest);
    memcpy(z85, p, ES_CURVE_Z85_LEN);
    z85[ES_CURVE_Z85_LEN] = '\0';
    return 1;
}

//  Next line of f into line (newline removed). 1 read, 0 end of file, -1 error (err set).
static int
s_read_line(FILE *f, const char *path, int *lineno, char *line, size_t size, es_err_t *err)
{
    if (!fgets(line, (int)size, f)) {
        if (ferror(f))
            return es_err_set(err, ES_ECONFIG, "%s: read error", path);
        return 0;
    }
    ++*lineno;
    size_t n = strlen(line);
    if (n && line[n - 1] == '\n')
        line[--n] = '\0';
    else if (!feof(f))
        return es_err_set(err, ES_ECONFIG, "%s:%d: line longer than %zu bytes", path, *lineno,
                          size - 2);
    return 1;
}

//  The one key of a key file (fd is taken and closed).
static int
s_load_key(int fd, const char *path, char *z85, es_err_t *err)
{
    FILE *f = fdopen(fd, "r");
    if (!f) {
        close(fd);
        return es_err_set(err, ES_ECONFIG, "%s: %s", path, strerror(errno));
    }
    char line[S_LINE_MAX];
    int lineno = 0, rc = 0, got = 0;
    while ((rc = s_read_line(f, path, &lineno, line, sizeof line, err)) == 1) {
        int k = s_parse_line(path, lineno, line, false, z85, err);
        if (k < 0) {
            rc = -1;
            break;
        }
        if (k == 1 && got++) {
            rc = es_err_set(err, ES_ECONFIG, "%s:%d: a key file holds one key, found a second",
                            path, lineno);
            break;
        }
    }
    explicit_bzero(line, sizeof line); //  it may have held a secret
    fclose(f);
    if (rc == 0 && !got)
        rc = es_err_set(err, ES_ECONFIG, "%s: no key in the file", path);
    if (rc < 0) {
        explicit_bzero(z85, ES_CURVE_Z85_LEN + 1);
        return -1;
    }
    return 0;
}

int
es_curve_load_public(const char *path, char *out, es_err_t *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd == -1)
        return es_err_set(err, ES_ECONFIG, "%s: %s", path, strerror(errno));
    return s_load_key(fd, path, out, err);
}

int
es_curve_load_secret(const char *path, char *public_z85, char *secret_z85, es_err_t *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd == -1)
        return es_err_set(err, ES_ECONFIG, "%s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) == -1) {
        int e = errno;
        close(fd);
        return es_err_set(err, ES_ECONFIG, "%s: %s", path, strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return es_err_set(err, ES_ECONFIG, "%s: not a regular file", path);
    }
    if (st.st_mode & 077) {
        close(fd);
        return es_err_set(err, ES_ECONFIG,
                          "%s: secret key file has mode %04o, readable by group or others: "
                          "'chmod 600 %s'",
                          path, (unsigned)(st.st_mode & 07777), path);
    }
    if (s_load_key(fd, path, secret_z85, err))
        return -1;
    if (zmq_curve_public(public_z85, secret_z85) != 0) {
        explicit_bzero(secret_z85, ES_CURVE_Z85_LEN + 1);
        return es_err_set(err, ES_ECONFIG, "%s: not a CURVE secret key: %s", path,
                          zmq_strerror(errno));
    }
    return 0;
}

//  Write text to a new file (never replacing one) with mode. -1 with err.
static int
s_write_new(const char *path, mode_t mode, const char *text, es_err_t *err)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    if (fd == -1)
        return es_err_set(err, ES_EINVAL, "%s: %s", path,
                          errno == EEXIST ? "exists (not replaced)" : strerror(errno));
    size_t len = strlen(text), off = 0;
    int rc = 0;
    while (off < len) {
        ssize_t w = write(fd, text + off, len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            rc = es_err_set(err, ES_ESYS, "%s: write: %s", path, strerror(errno));
            break;
        }
        off += (size_t)w;
    }
    if (rc == 0 && fsync(fd) == -1)
        rc = es_err_set(err, ES_ESYS, "%s: fsync: %s", path, strerror(errno));
    if (close(fd) == -1 && rc == 0)
        rc = es_err_set(err, ES_ESYS, "%s: close: %s", path, strerror(errno));
    if (rc)
        (void)unlink(path); //  no half-written key file left behind
    return rc;
}

int
es_curve_keygen(const char *prefix, char *public_z85, es_err_t *err)
{
    if (!prefix || !*prefix)
        return es_err_set(err, ES_EINVAL, "keygen: empty file prefix");
    if (!es_curve_available())
        return es_err_set(err, ES_ESYS, "keygen: this libzmq has no CURVE support");
    char secret[ES_CURVE_Z85_LEN + 1];
    if (zmq_curve_keypair(public_z85, secret) != 0)
        return es_err_set(err, ES_ESYS, "zmq_curve_keypair: %s", zmq_strerror(errno));
    char *key_path = es_sprintf("%s.key", prefix), *pub_path = es_sprintf("%s.pub", prefix);
    char *key_text = es_sprintf("# edgesync CURVE secret key: keep it private (mode 0600).\n"
                                "# Its public key is in %s\n%s\n",
                                pub_path, secret);
    char *pub_text =
        es_sprintf("# edgesync CURVE public key (its secret is in %s)\n%s\n", key_path, public_z85);
    int rc = 0;
    //  0600 at creation: the secret is never readable by others, whatever the umask.
    if (s_write_new(key_path, 0600, key_text, err))
        rc = -1;
    else if (s_write_new(pub_path, 0644, pub_text, err)) {
        (void)unlink(key_path); //  all or nothing
        rc = -1;
    }
    explicit_bzero(secret, sizeof secret);
    explicit_bzero(key_text, strlen(key_text));
    free(key_text);
    free(pub_text);
    free(key_path);
    free(pub_path);
    return rc;
}

static int
s_key_cmp(const void *a, const void *b)
{
    return memcmp(a, b, ES_CURVE_KEY_LEN);
}

es_curve_allow_t *
es_curve_allow_new(const char *path, es_err_t *err)
{
    FILE *f = fopen(path, "re");
    if (!f) {
        es_err_set(err, ES_ECONFIG, "%s: %s", path, strerror(errno));
        return NULL;
    }
    es_curve_allow_t *self = es_calloc(1, sizeof *self);
    size_t cap = 0;
    char line[S_LINE_MAX], z85[ES_CURVE_Z85_LEN + 1];
    int lineno = 0, rc;
    while ((rc = s_read_line(f, path, &lineno, line, sizeof line, err)) == 1) {
        int k = s_parse_line(path, lineno, line, true, z85, err);
        if (k < 0) {
            rc = -1;
            break;
        }
        if (k == 0)
            continue;
        if (self->n == cap) {
            cap = cap ? cap * 2 : 16;
            self->keys = es_realloc(self->keys, cap * ES_CURVE_KEY_LEN);
        }
        if (!zmq_z85_decode(self->keys + self->n * ES_CURVE_KEY_LEN, z85)) {
            rc = es_err_set(err, ES_ECONFIG, "%s:%d: not a Z85 key: '%s'", path, lineno, z85);
            break;
        }
        self->n++;
    }
    fclose(f);
    if (rc < 0) {
        es_curve_allow_destroy(&self);
        return NULL;
    }
    //  Sorted and distinct, for a binary search per connection.
    if (self->n)
        qsort(self->keys, self->n, ES_CURVE_KEY_LEN, s_key_cmp);
    size_t out = 0;
    for (size_t i = 0; i < self->n; i++)
        if (out == 0 || memcmp(self->keys + (out - 1) * ES_CURVE_KEY_LEN,
                               self->keys + i * ES_CURVE_KEY_LEN, ES_CURVE_KEY_LEN) != 0)
            memmove(self->keys + out++ * ES_CURVE_KEY_LEN, self->keys + i * ES_CURVE_KEY_LEN,
                    ES_CURVE_KEY_LEN);
    self->n = out;
    return self;
}

void
es_curve_allow_destroy(es_curve_allow_t **self_p)
{
    if (!*self_p)
        return;
    es_curve_allow_t *self = *self_p;
    free(self->keys);
    free(self);
    *self_p = NULL;
}

size_t
es_curve_allow_size(const es_curve_allow_t *self)
{
    return self->n;
}

bool
es_curve_allow_has(const es_curve_allow_t *self, const uint8_t *key)
{
    return self->n && bsearch(key, self->keys, self->n, ES_CURVE_KEY_LEN, s_key_cmp) != NULL;
}
