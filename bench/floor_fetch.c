//  floor_fetch - the HTTP half of the download floor: fetch every page of one object the way the
//  download actor does (sequential POSTs with X-Http-Method-Override: GET, echoing the server's
//  delta_context), with one libcurl easy handle (one keep-alive connection), and write the pages
//  to OUTDIR/page-NNNNNN.json for floor_load. No parsing beyond finding delta_context and
//  hasMoreRecords, so this is the least any client must spend on HTTP.
//
//  usage: floor_fetch URL TOKEN API_VERSION OUTDIR
//  URL is the object URL with its query, e.g. .../objects/Customer?$batchsize=500.
//  Prints {"pages":N,"bytes":B,"seconds":S} on stdout.
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct {
    char *data;
    size_t len, cap;
} buf_t;

static size_t
s_write(char *ptr, size_t size, size_t n, void *ctx)
{
    buf_t *b = ctx;
    size_t add = size * n;
    if (b->len + add + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 1 << 20;
        while (cap < b->len + add + 1)
            cap *= 2;
        char *p = realloc(b->data, cap);
        if (!p)
            return 0; //  makes curl fail the transfer
        b->data = p;
        b->cap = cap;
    }
    memcpy(b->data + b->len, ptr, add);
    b->len += add;
    b->data[b->len] = '\0';
    return add;
}

//  The JSON object value that starts at p ('{'), as [p, end). Strings are skipped so braces
//  inside them do not count. NULL if unbalanced.
static const char *
s_object_end(const char *p, const char *end)
{
    int depth = 0;
    for (; p < end; p++) {
        if (*p == '"') {
            for (p++; p < end && *p != '"'; p++)
                if (*p == '\\')
                    p++;
        } else if (*p == '{') {
            depth++;
        } else if (*p == '}' && --depth == 0) {
            return p + 1;
        }
    }
    return NULL;
}

static double
s_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

int
main(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: floor_fetch URL TOKEN API_VERSION OUTDIR\n");
        return 2;
    }
    const char *url = argv[1], *outdir = argv[4];
    char auth[512], ver[128];
    snprintf(auth, sizeof auth, "X-Voltmx-Authorization: %s", argv[2]);
    snprintf(ver, sizeof ver, "X-Voltmx-API-Version: %s", argv[3]);
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return 1;
    CURL *h = curl_easy_init();
    if (!h)
        return 1;
    struct curl_slist *hdr = NULL;
    hdr = curl_slist_append(hdr, "X-Http-Method-Override: GET");
    hdr = curl_slist_append(hdr, "Content-Type: application/json");
    hdr = curl_slist_append(hdr, auth);
    hdr = curl_slist_append(hdr, ver);
    hdr = curl_slist_append(hdr, "Expect:");
    buf_t resp = {0};
    char *body = strdup("{}");
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, s_write);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &resp);
    curl_easy_setopt(h, CURLOPT_POST, 1L);
    double t0 = s_now();
    long pages = 0;
    size_t bytes = 0;
    int rc = 0;
    for (;;) {
        resp.len = 0;
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
        CURLcode cc = curl_easy_perform(h);
        long status = 0;
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
        if (cc != CURLE_OK || status != 200 || !resp.data) {
            fprintf(stderr, "floor_fetch: page %ld: %s, HTTP %ld\n", pages, curl_easy_strerror(cc),
                    status);
            rc = 1;
            break;
        }
        char path[4096];
        snprintf(path, sizeof path, "%s/page-%06ld.json", outdir, pages);
        FILE *f = fopen(path, "wb");
        if (!f || fwrite(resp.data, 1, resp.len, f) != resp.len || fclose(f) != 0) {
            fprintf(stderr, "floor_fetch: cannot write %s\n", path);
            rc = 1;
            break;
        }
        pages++;
        bytes += resp.len;
        const char *end = resp.data + resp.len;
        const char *more = strstr(resp.data, "\"hasMoreRecords\":");
        if (!more || strncmp(more + 17, "\"true\"", 6) != 0)
            break;
        //  The server puts delta_context after records, so search from the end of the page.
        const char *dc = NULL;
        for (const char *p = end - 16; p >= resp.data; p--)
            if (memcmp(p, "\"delta_context\":", 16) == 0) {
                dc = p + 16;
                break;
            }
        const char *dce = dc && *dc == '{' ? s_object_end(dc, end) : NULL;
        if (!dce) {
            fprintf(stderr, "floor_fetch: page %ld: no delta_context\n", pages);
            rc = 1;
            break;
        }
        free(body);
        size_t n = (size_t)(dce - dc);
        body = malloc(n + 20);
        if (!body)
            return 1;
        memcpy(body, "{\"delta_context\":", 17);
        memcpy(body + 17, dc, n);
        memcpy(body + 17 + n, "}", 2);
    }
    double secs = s_now() - t0;
    printf("{\"pages\":%ld,\"bytes\":%zu,\"seconds\":%.6f}\n", pages, bytes, secs);
    free(body);
    free(resp.data);
    curl_slist_free_all(hdr);
    curl_easy_cleanup(h);
    curl_global_cleanup();
    return rc;
}
