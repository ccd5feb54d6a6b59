//  test_es_buf - growable buffer, JSON string escaping (every kind of invalid UTF-8), error
//  records (truncation without overflow) and the allocation wrappers.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "common/es_buf.h"
#include "common/es_err.h"
#include "common/es_mem.h"
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <yajl/yajl_tree.h>

#if defined(__SANITIZE_ADDRESS__)
#define S_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define S_ASAN 1
#endif
#endif

//  ---------------------------------------------------------------------------------------------
//  Buffer.

static void
s_check_invariants(const es_buf_t *b)
{
    assert_non_null(b->data);
    assert_true(b->cap >= b->len + 1);
    assert_int_equal(b->data[b->len], '\0');
}

static void
test_buf_append_growth(void **state)
{
    (void)state;
    es_buf_t b;
    es_buf_init(&b);
    assert_null(b.data);
    assert_int_equal(b.len, 0);
    assert_int_equal(b.cap, 0);
    //  An empty append still leaves a NUL-terminated buffer.
    es_buf_append(&b, "", 0);
    s_check_invariants(&b);
    assert_string_equal(b.data, "");
    //  Byte by byte well past several doublings; contents stay intact across reallocations.
    for (size_t i = 0; i < 10000; i++) {
        char c = (char)('a' + i % 26);
        es_buf_append(&b, &c, 1);
        s_check_invariants(&b);
        assert_int_equal(b.len, i + 1);
    }
    for (size_t i = 0; i < 10000; i++)
        assert_int_equal(b.data[i], 'a' + i % 26);
    assert_int_equal(b.cap, 16384); //  256 doubled until len + 1 fits
    //  One large append (more than a doubling at once).
    char *big = es_malloc(100000);
    memset(big, 'z', 100000);
    es_buf_append(&b, big, 100000);
    s_check_invariants(&b);
    assert_int_equal(b.len, 110000);
    assert_memory_equal(b.data + 10000, big, 100000);
    assert_int_equal(b.data[9999], 'a' + 9999 % 26);
    free(big);
    //  Embedded NUL bytes are data.
    es_buf_reset(&b);
    es_buf_append(&b, "a\0b", 3);
    assert_int_equal(b.len, 3);
    assert_memory_equal(b.data, "a\0b", 4);
    es_buf_release(&b);
    assert_null(b.data);
    assert_int_equal(b.len, 0);
    assert_int_equal(b.cap, 0);
    es_buf_release(&b); //  safe twice
}

static void
test_buf_puts_putc_printf(void **state)
{
    (void)state;
    es_buf_t b;
    es_buf_init(&b);
    es_buf_putc(&b, 'x');
    s_check_invariants(&b);
    es_buf_puts(&b, "yz");
    es_buf_printf(&b, "-%d-%s-%05.1f", 42, "s", 3.14159);
    assert_string_equal(b.data, "xyz-42-s-003.1");
    assert_int_equal(b.len, 14);
    //  printf output larger than the whole current allocation.
    char *long_s = es_malloc(5001);
    memset(long_s, 'q', 5000);
    long_s[5000] = '\0';
    es_buf_printf(&b, "<%s>", long_s);
    s_check_invariants(&b);
    assert_int_equal(b.len, 14 + 5002);
    assert_memory_equal(b.data + 15, long_s, 5000);
    assert_int_equal(b.data[14], '<');
    assert_int_equal(b.data[b.len - 1], '>');
    free(long_s);
    //  Many small printfs across growth boundaries.
    es_buf_reset(&b);
    for (int i = 0; i < 2000; i++)
        es_buf_printf(&b, "%d,", i);
    s_check_invariants(&b);
    char expect[16];
    size_t pos = 0;
    for (int i = 0; i < 2000; i++) {
        int n = snprintf(expect, sizeof expect, "%d,", i);
        assert_memory_equal(b.data + pos, expect, (size_t)n);
        pos += (size_t)n;
    }
    assert_int_equal(pos, b.len);
    es_buf_release(&b);

    //  An empty printf on a fresh buffer still leaves it NUL-terminated ("after any append").
    es_buf_init(&b);
    es_buf_printf(&b, "%s", "");
    s_check_invariants(&b);
    assert_int_equal(b.len, 0);
    es_buf_release(&b);
}

static void
test_buf_reset_steal(void **state)
{
    (void)state;
    es_buf_t b;
    es_buf_init(&b);
    es_buf_reset(&b); //  on an empty buffer: nothing to drop
    assert_null(b.data);
    es_buf_puts(&b, "hello world, a little longer than nothing");
    char *data = b.data;
    size_t cap = b.cap;
    es_buf_reset(&b);
    assert_int_equal(b.len, 0);
    assert_ptr_equal(b.data, data); //  allocation kept
    assert_int_equal(b.cap, cap);
    assert_string_equal(b.data, "");
    es_buf_puts(&b, "again");
    assert_string_equal(b.data, "again");

    char *s = es_buf_steal(&b);
    assert_string_equal(s, "again");
    assert_ptr_equal(s, data);
    assert_null(b.data);
    assert_int_equal(b.len, 0);
    assert_int_equal(b.cap, 0);
    free(s);
    //  Stealing an empty buffer gives an empty string the caller frees.
    s = es_buf_steal(&b);
    assert_non_null(s);
    assert_string_equal(s, "");
    free(s);
    //  The buffer is usable after a steal.
    es_buf_putc(&b, '!');
    assert_string_equal(b.data, "!");
    es_buf_release(&b);
}

//  ---------------------------------------------------------------------------------------------
//  JSON strings.

#define FFFD "\\ufffd"
#define FFFD2 FFFD FFFD
#define FFFD3 FFFD FFFD FFFD
#define FFFD4 FFFD FFFD FFFD FFFD

typedef struct {
    const char *in;      //  input bytes
    size_t len;          //  input length (inputs may hold NUL)
    const char *out;     //  expected literal, quotes included
    const char *decoded; //  what a JSON parser reads back
} json_case_t;

#define C(in, out, decoded)                                                                        \
    {                                                                                              \
        in, sizeof(in) - 1, out, decoded                                                           \
    }
#define R "\xEF\xBF\xBD" //  U+FFFD in UTF-8

static const json_case_t s_json_cases[] = {
    C("", "\"\"", ""),
    C("abc", "\"abc\"", "abc"),
    C("a\"b\\c/d", "\"a\\\"b\\\\c/d\"", "a\"b\\c/d"),
    C("\"\"\\\\", "\"\\\"\\\"\\\\\\\\\"", "\"\"\\\\"),
    C("\n\r\t\b\f", "\"\\n\\r\\t\\b\\f\"", "\n\r\t\b\f"),
    C("\x01\x1f\x0b", "\"\\u0001\\u001f\\u000b\"", "\x01\x1f\x0b"),
    C("a\0b", "\"a\\u0000b\"", NULL), //  NUL decodes, but C strings cannot compare it
    C("\x7f ~", "\"\x7f ~\"", "\x7f ~"),
    //  Valid multi-byte sequences are kept as they are, at every length boundary.
    C("\xC2\x80", "\"\xC2\x80\"", "\xC2\x80"),                            //  U+0080
    C("\xC3\xA9t\xC3\xA9", "\"\xC3\xA9t\xC3\xA9\"", "\xC3\xA9t\xC3\xA9"), //  été
    C("\xDF\xBF", "\"\xDF\xBF\"", "\xDF\xBF"),                            //  U+07FF
    C("\xE0\xA0\x80", "\"\xE0\xA0\x80\"", "\xE0\xA0\x80"),                //  U+0800
    C("\xE2\x82\xAC", "\"\xE2\x82\xAC\"", "\xE2\x82\xAC"),                //  €
    C("\xED\x9F\xBF", "\"\xED\x9F\xBF\"", "\xED\x9F\xBF"),                //  U+D7FF
    C("\xEE\x80\x80", "\"\xEE\x80\x80\"", "\xEE\x80\x80"),                //  U+E000
    C("\xEF\xBF\xBD", "\"\xEF\xBF\xBD\"", "\xEF\xBF\xBD"),                //  U+FFFD itself
    C("\xEF\xBF\xBF", "\"\xEF\xBF\xBF\"", "\xEF\xBF\xBF"),                //  U+FFFF
    C("\xF0\x90\x80\x80", "\"\xF0\x90\x80\x80\"", "\xF0\x90\x80\x80"),    //  U+10000
    C("\xF0\x9D\x84\x9E", "\"\xF0\x9D\x84\x9E\"", "\xF0\x9D\x84\x9E"),    //  𝄞
    C("\xF4\x8F\xBF\xBF", "\"\xF4\x8F\xBF\xBF\"", "\xF4\x8F\xBF\xBF"),    //  U+10FFFF
    //  Overlong encodings: each byte is replaced.
    C("\xC0\x80", "\"" FFFD2 "\"", R R),
    C("\xC0\xAF", "\"" FFFD2 "\"", R R),
    C("\xC1\xBF", "\"" FFFD2 "\"", R R),
    C("\xE0\x80\x80", "\"" FFFD3 "\"", R R R),
    C("\xE0\x9F\xBF", "\"" FFFD3 "\"", R R R),
    C("\xF0\x80\x80\x80", "\"" FFFD4 "\"", R R R R),
    C("\xF0\x8F\xBF\xBF", "\"" FFFD4 "\"", R R R R),
    //  UTF-16 surrogates.
    C("\xED\xA0\x80", "\"" FFFD3 "\"", R R R),                         //  U+D800
    C("\xED\xAF\xBF\xED\xB0\x80", "\"" FFFD3 FFFD3 "\"", R R R R R R), //  a CESU pair
    C("\xED\xBF\xBF", "\"" FFFD3 "\"", R R R),                         //  U+DFFF
    //  Above U+10FFFF and bytes that never start a sequence.
    C("\xF4\x90\x80\x80", "\"" FFFD4 "\"", R R R R),
    C("\xF5\x80\x80\x80", "\"" FFFD4 "\"", R R R R),
    C("\xF7\xBF\xBF\xBF", "\"" FFFD4 "\"", R R R R),
    C("\xF8\x88\x80\x80\x80", "\"" FFFD4 FFFD "\"", R R R R R),
    C("\xFC\x84\x80\x80\x80\x80", "\"" FFFD3 FFFD3 "\"", R R R R R R),
    C("\xFE\xFF", "\"" FFFD2 "\"", R R),
    //  Lone continuation bytes.
    C("\x80", "\"" FFFD "\"", R),
    C("a\xBFz", "\"a" FFFD "z\"", "a" R "z"),
    //  Truncated sequences: at the end, and followed by ASCII or by another lead byte.
    C("\xC3", "\"" FFFD "\"", R),
    C("\xE2\x82", "\"" FFFD2 "\"", R R),
    C("\xF0\x9D\x84", "\"" FFFD3 "\"", R R R),
    C("\xE2\x82"
      "A",
      "\"" FFFD2 "A\"", R R "A"),
    C("\xC3 ", "\"" FFFD " \"", R " "),
    C("\xF0\x9D"
      "\xC3\xA9",
      "\"" FFFD2 "\xC3\xA9\"", R R "\xC3\xA9"),
    C("\xC3\"", "\"" FFFD "\\\"\"", R "\""),
    C("\xE2\n", "\"" FFFD "\\n\"", R "\n"),
    //  Valid text around invalid bytes survives.
    C("\xC3\xA9\xFF\xC3\xA9", "\"\xC3\xA9" FFFD "\xC3\xA9\"", "\xC3\xA9" R "\xC3\xA9"),
};

//  Parse one JSON string literal with yajl (which validates UTF-8) and return its value.
static char *
s_json_decode(const char *literal)
{
    char *doc = es_sprintf("[%s]", literal);
    char errbuf[256];
    yajl_val root = yajl_tree_parse(doc, errbuf, sizeof errbuf);
    free(doc);
    if (!root)
        fail_msg("yajl rejects %s: %s", literal, errbuf);
    assert_true(YAJL_IS_ARRAY(root));
    assert_int_equal(root->u.array.len, 1);
    assert_true(YAJL_IS_STRING(root->u.array.values[0]));
    char *s = es_strdup(YAJL_GET_STRING(root->u.array.values[0]));
    yajl_tree_free(root);
    return s;
}

static void
test_json_str(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof s_json_cases / sizeof s_json_cases[0]; i++) {
        const json_case_t *c = &s_json_cases[i];
        es_buf_t b;
        es_buf_init(&b);
        es_buf_json_str(&b, c->in, c->len);
        s_check_invariants(&b);
        if (strcmp(b.data, c->out) != 0)
            fail_msg("case %zu: got %s, expected %s", i, b.data, c->out);
        assert_int_equal(b.len, strlen(c->out));
        char *back = s_json_decode(b.data);
        if (c->decoded)
            assert_string_equal(back, c->decoded);
        free(back);
        es_buf_release(&b);
    }
}

static void
test_json_str_appends(void **state)
{
    (void)state;
    es_buf_t b;
    es_buf_init(&b);
    es_buf_puts(&b, "{\"k\":");
    es_buf_json_str(&b, "v\xFFw", 3);
    es_buf_putc(&b, '}');
    assert_string_equal(b.data, "{\"k\":\"v" FFFD "w\"}");
    //  Only len bytes are read: the rest of the string is ignored, even mid-sequence.
    es_buf_reset(&b);
    es_buf_json_str(&b, "ab\xC3\xA9", 3);
    assert_string_equal(b.data, "\"ab" FFFD "\"");
    es_buf_release(&b);
}

//  es_buf_json_plain_run against a byte-at-a-time reference: every byte value at every position
//  of runs of every length up to 24 (the word loop, its tail and their seam).
static void
test_plain_run(void **state)
{
    (void)state;
    unsigned char buf[24];
    for (size_t len = 0; len <= sizeof buf; len++)
        for (size_t at = 0; at < len || (len == 0 && at == 0); at++)
            for (int c = 0; c < 256; c++) {
                memset(buf, 'a', sizeof buf);
                if (len)
                    buf[at] = (unsigned char)c;
                size_t want = 0;
                while (want < len && buf[want] >= 0x20 && buf[want] <= 0x7f && buf[want] != '"' &&
                       buf[want] != '\\')
                    want++;
                size_t got = es_buf_json_plain_run(buf, buf + len);
                if (got != want)
                    fail_msg("len %zu byte 0x%02x at %zu: %zu, want %zu", len, c, at, got, want);
            }
}

//  The same rules as the escaping: a valid text is written unescaped, so it must pass here.
static void
test_utf8_invalid_at(void **state)
{
    (void)state;
    static const struct {
        const char *s;
        size_t at; //  (size_t)-1: valid
    } cases[] = {
        {"", (size_t)-1},
        {"plain", (size_t)-1},
        {"S\xC3\xA8te \xE2\x82\xAC \xF0\x9F\x98\x80 \xF4\x8F\xBF\xBF", (size_t)-1},
        {"ab\xFF", 2},
        {"&il\xF5\x9C\xAB\x86pe", 3}, //  above U+10FFFF
        {"x\xF4\x90\x80\x80", 1},     //  U+110000
        {"\xC0\xAF", 0},              //  overlong '/'
        {"\xE0\x80\xAF", 0},          //  overlong, 3 bytes
        {"a\xED\xB0\x80", 1},         //  surrogate U+DC00
        {"\xC3", 0},                  //  truncated
        {"\xE2\x82", 0},
        {"ok\x80", 2}, //  stray continuation byte
        //  Past the 8-byte ASCII steps: the word with the bad byte, and a tail under 8.
        {"abcdefghijklmnopqrstuvwxyz", (size_t)-1},
        {"abcdefgh\xFFijk", 8},
        {"abcdefghijklmno\xC0\xAF", 15},
        {"abcdefghijklmnop\xC3\xA9xyz\xED\xA0\x80", 21},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t n = strlen(cases[i].s);
        size_t want = cases[i].at == (size_t)-1 ? n : cases[i].at;
        print_message("case %zu\n", i);
        assert_int_equal(es_utf8_invalid_at(cases[i].s, n), want);
    }
    //  Only len bytes are read.
    assert_int_equal(es_utf8_invalid_at("ab\xC3\xA9", 3), 2);
}

//  Pseudo-random byte strings biased to the interesting ranges: output is always valid JSON.
static void
test_json_str_random(void **state)
{
    (void)state;
    static const unsigned char pool[] = {'a',  '"',  '\\', '\n', 0x00, 0x1f, 0x7f, 0x80,
                                         0xBF, 0xC0, 0xC2, 0xDF, 0xE0, 0xED, 0xEF, 0xF0,
                                         0xF4, 0xF5, 0xFF, 0x9F, 0xA0, 0x8F, 0x90};
    uint32_t seed = 12345;
    es_buf_t b;
    es_buf_init(&b);
    for (int iter = 0; iter < 3000; iter++) {
        unsigned char in[24];
        seed = seed * 1103515245u + 12345u;
        size_t len = (seed >> 16) % sizeof in;
        for (size_t i = 0; i < len; i++) {
            seed = seed * 1103515245u + 12345u;
            in[i] = pool[(seed >> 16) % sizeof pool];
        }
        es_buf_reset(&b);
        es_buf_json_str(&b, (const char *)in, len);
        char *back = s_json_decode(b.data);
        //  Every input byte is either kept or becomes one U+FFFD (3 bytes); escapes decode to 1.
        assert_true(strlen(back) <= 3 * len);
        free(back);
    }
    es_buf_release(&b);
}

//  ---------------------------------------------------------------------------------------------
//  Error records.

//  An error record between guard bytes: any write outside it shows.
typedef struct {
    unsigned char before[64];
    es_err_t err;
    unsigned char after[64];
} guarded_t;

static void
s_guard_init(guarded_t *g)
{
    memset(g, 0xAA, sizeof *g);
}

static void
s_guard_check(const guarded_t *g)
{
    for (size_t i = 0; i < sizeof g->before; i++) {
        assert_int_equal(g->before[i], 0xAA);
        assert_int_equal(g->after[i], 0xAA);
    }
}

static char *
s_repeat(char c, size_t n)
{
    char *s = es_malloc(n + 1);
    memset(s, c, n);
    s[n] = '\0';
    return s;
}

static void
test_err_set(void **state)
{
    (void)state;
    guarded_t g;
    s_guard_init(&g);
    assert_int_equal(es_err_set(&g.err, ES_EINVAL, "x: must be %d..%d, got %s", 1, 16, "0"), -1);
    assert_int_equal(g.err.code, ES_EINVAL);
    assert_string_equal(g.err.what, "x: must be 1..16, got 0");
    assert_int_equal(es_err_set(NULL, ES_EINVAL, "ignored"), -1);
    //  Over-long texts are cut at ES_ERR_WHAT_MAX - 1 characters.
    size_t lens[] = {ES_ERR_WHAT_MAX - 2, ES_ERR_WHAT_MAX - 1, ES_ERR_WHAT_MAX, ES_ERR_WHAT_MAX + 1,
                     10000};
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
        char *s = s_repeat('L', lens[i]);
        s_guard_init(&g);
        es_err_set(&g.err, ES_EPROTO, "%s", s);
        s_guard_check(&g);
        size_t expect = lens[i] < ES_ERR_WHAT_MAX ? lens[i] : ES_ERR_WHAT_MAX - 1;
        assert_int_equal(strlen(g.err.what), expect);
        assert_memory_equal(g.err.what, s, expect);
        assert_int_equal(g.err.code, ES_EPROTO);
        free(s);
    }
    es_err_clear(&g.err);
    assert_int_equal(g.err.code, ES_OK);
    assert_string_equal(g.err.what, "");
    es_err_clear(NULL);
}

static void
test_err_prefix(void **state)
{
    (void)state;
    guarded_t g;
    s_guard_init(&g);
    es_err_set(&g.err, ES_ECONFIG, "download.workers: must be 1..16, got 0");
    assert_int_equal(es_err_prefix(&g.err, "%s:%d", "edgesync.conf", 12), -1);
    assert_string_equal(g.err.what, "edgesync.conf:12: download.workers: must be 1..16, got 0");
    assert_int_equal(g.err.code, ES_ECONFIG); //  code kept
    assert_int_equal(es_err_prefix(NULL, "x"), -1);
    //  The old text may be an argument of the prefix itself.
    es_err_set(&g.err, ES_EHTTP, "abc");
    es_err_prefix(&g.err, "%s", g.err.what);
    assert_string_equal(g.err.what, "abc: abc");
    //  Every mix of prefix and old text lengths: the result is the first ES_ERR_WHAT_MAX - 1
    //  characters of prefix (cut so ": " still fits) + ": " + old text, never more.
    size_t plens[] = {0,
                      1,
                      100,
                      ES_ERR_WHAT_MAX - 4,
                      ES_ERR_WHAT_MAX - 3,
                      ES_ERR_WHAT_MAX - 2,
                      ES_ERR_WHAT_MAX - 1,
                      ES_ERR_WHAT_MAX,
                      5000};
    size_t olens[] = {0, 1, 300, ES_ERR_WHAT_MAX - 2, ES_ERR_WHAT_MAX - 1, 5000};
    for (size_t i = 0; i < sizeof plens / sizeof plens[0]; i++) {
        for (size_t j = 0; j < sizeof olens / sizeof olens[0]; j++) {
            char *p = s_repeat('P', plens[i]), *o = s_repeat('o', olens[j]);
            s_guard_init(&g);
            es_err_set(&g.err, ES_ESTORE, "%s", o);
            es_err_prefix(&g.err, "%s", p);
            s_guard_check(&g);
            size_t pn = plens[i] < ES_ERR_WHAT_MAX - 3 ? plens[i] : ES_ERR_WHAT_MAX - 3;
            size_t on = olens[j] < ES_ERR_WHAT_MAX - 1 ? olens[j] : ES_ERR_WHAT_MAX - 1;
            es_buf_t want;
            es_buf_init(&want);
            es_buf_printf(&want, "%.*s: %.*s", (int)pn, p, (int)on, o);
            if (want.len > ES_ERR_WHAT_MAX - 1)
                want.data[ES_ERR_WHAT_MAX - 1] = '\0';
            assert_string_equal(g.err.what, want.data);
            assert_int_equal(g.err.code, ES_ESTORE);
            es_buf_release(&want);
            free(p);
            free(o);
        }
    }
}

static void
test_err_name(void **state)
{
    (void)state;
    const char *names[] = {"OK",      "EINVAL", "EPROTO",   "ESTORE", "EHTTP",   "ENOTFOUND",
                           "ECONFIG", "ESYS",   "ETIMEOUT", "EBUSY",  "ECANCEL", "ESERVER"};
    es_code_t codes[] = {ES_OK,      ES_EINVAL, ES_EPROTO,   ES_ESTORE, ES_EHTTP,   ES_ENOTFOUND,
                         ES_ECONFIG, ES_ESYS,   ES_ETIMEOUT, ES_EBUSY,  ES_ECANCEL, ES_ESERVER};
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
        assert_int_equal(codes[i], i); //  codes travel in messages: never renumbered
        assert_string_equal(es_err_name(codes[i]), names[i]);
    }
    assert_string_equal(es_err_name((es_code_t)12), "EUNKNOWN");
    assert_string_equal(es_err_name((es_code_t)1000), "EUNKNOWN");
    assert_string_equal(es_err_name((es_code_t)-1), "EUNKNOWN");
}

//  ---------------------------------------------------------------------------------------------
//  Allocation.

static void
test_mem(void **state)
{
    (void)state;
    void *p = es_malloc(0);
    assert_non_null(p);
    free(p);
    unsigned char *z = es_calloc(100, 3);
    for (size_t i = 0; i < 300; i++)
        assert_int_equal(z[i], 0);
    free(z);
    z = es_calloc(0, 0);
    assert_non_null(z);
    free(z);
    char *r = es_realloc(NULL, 4);
    memcpy(r, "abc", 4);
    r = es_realloc(r, 100000);
    assert_string_equal(r, "abc");
    r = es_realloc(r, 0); //  never NULL, even for 0 bytes
    assert_non_null(r);
    free(r);
    char *s = es_strdup("");
    assert_string_equal(s, "");
    free(s);
    s = es_strdup("hello");
    assert_string_equal(s, "hello");
    free(s);
    s = es_strndup("abcdef", 3);
    assert_string_equal(s, "abc");
    free(s);
    s = es_strndup("a\0c", 3); //  exactly n bytes, NUL included
    assert_memory_equal(s, "a\0c\0", 4);
    free(s);
    s = es_sprintf("%s", "");
    assert_string_equal(s, "");
    free(s);
    s = es_sprintf("%s-%d-%zu", "x", -5, (size_t)7);
    assert_string_equal(s, "x--5-7");
    free(s);
    char *big = s_repeat('b', 20000);
    s = es_sprintf("[%s]", big);
    assert_int_equal(strlen(s), 20002);
    assert_memory_equal(s + 1, big, 20000);
    free(s);
    free(big);
}

//  Out of memory prints the size and aborts (run in a child; ASan refuses the size itself).
static void
test_mem_oom(void **state)
{
    (void)state;
#ifdef S_ASAN
    skip();
#else
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(fds[1], 2);
        close(fds[0]);
        signal(SIGABRT, SIG_DFL);
        void *volatile p = es_malloc((size_t)1 << 62);
        (void)p;
        _exit(0); //  not reached
    }
    close(fds[1]);
    char text[512] = "";
    size_t n = 0;
    ssize_t got;
    while (n < sizeof text - 1 && (got = read(fds[0], text + n, sizeof text - 1 - n)) > 0)
        n += (size_t)got;
    text[n] = '\0';
    close(fds[0]);
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFSIGNALED(st));
    assert_int_equal(WTERMSIG(st), SIGABRT);
    char *expect = es_sprintf("E edgesync: out of memory allocating %zu bytes\n", (size_t)1 << 62);
    //  valgrind may add its own warning first; ours is the last line.
    assert_non_null(strstr(text, expect));
    free(expect);
#endif
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_buf_append_growth), cmocka_unit_test(test_buf_puts_putc_printf),
        cmocka_unit_test(test_buf_reset_steal),   cmocka_unit_test(test_json_str),
        cmocka_unit_test(test_json_str_appends),  cmocka_unit_test(test_utf8_invalid_at),
        cmocka_unit_test(test_plain_run),         cmocka_unit_test(test_json_str_random),
        cmocka_unit_test(test_err_set),           cmocka_unit_test(test_err_prefix),
        cmocka_unit_test(test_err_name),          cmocka_unit_test(test_mem),
        cmocka_unit_test(test_mem_oom),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
