//  es_odata - the OData $filter subset: a recursive-descent parser that builds a compact AST
//  (one node array + one string pool) and an evaluator that walks it without allocating.
#include "protocol/es_odata.h"
#include "common/es_mem.h"
#include "protocol/es_record.h"
#include <assert.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ES_ODATA_TEXT_MAX 8192 //  longest filter text accepted, in bytes
#define ES_ODATA_DEPTH_MAX 64  //  deepest nesting of '(', 'not' and function calls
#define ES_ODATA_QUOTE_MAX 40  //  token bytes quoted in an error before "..."

typedef enum {
    N_LIT,      //  literal: lit
    N_COL,      //  column: lit.u.s is its NUL-terminated name, op its es_ftype_t
    N_CMP,      //  a op b
    N_IN,       //  a in (b, b->next, ...): literals
    N_AND,      //  a and a->next and ...
    N_OR,       //  a or a->next or ...
    N_NOT,      //  not a
    N_CONTAINS, //  contains(a, b)
    N_STARTS,   //  startswith(a, b)
    N_ENDS,     //  endswith(a, b)
    N_TOLOWER,  //  tolower(a)
    N_TOUPPER,  //  toupper(a)
    N_LENGTH,   //  length(a)
} kind_t;

typedef enum { OP_EQ, OP_NE, OP_GT, OP_GE, OP_LT, OP_LE } op_t;

typedef struct {
    uint8_t kind;   //  kind_t
    uint8_t op;     //  op_t for N_CMP, es_ftype_t for N_COL
    int32_t a;      //  first operand / first list element, -1 if none
    int32_t b;      //  second operand / first in-list literal, -1 if none
    int32_t next;   //  next sibling in an and/or/in list, -1 at the end
    es_value_t lit; //  N_LIT value; N_COL name (strings point into the pool)
} node_t;

struct es_odata {
    node_t *nodes; //  the AST; children before or after parents, linked by index
    size_t nnodes; //  nodes used
    int32_t root;  //  index of the root node (always boolean)
    char *pool;    //  unescaped string literals and column names, NUL-terminated
};

typedef enum {
    T_END,    //  end of input
    T_IDENT,  //  name or keyword
    T_INT,    //  integer literal (value in tok.i)
    T_DEC,    //  decimal literal (value in tok.d)
    T_STR,    //  'string' (unescaped into the pool at tok.s/tok.slen)
    T_DATE,   //  unquoted date or date-time (text copied into the pool)
    T_LPAREN, //  (
    T_RPAREN, //  )
    T_COMMA,  //  ,
    T_BAD,    //  any other character
} tkind_t;

typedef struct {
    tkind_t kind;  //  what it is
    size_t off;    //  byte offset in the text
    size_t len;    //  bytes of text
    int64_t i;     //  T_INT value
    double d;      //  T_DEC value
    const char *s; //  T_STR / T_DATE value in the pool
    size_t slen;   //  its length
} tok_t;

typedef struct {
    const char *text;            //  the filter
    size_t len;                  //  its length
    size_t at;                   //  lexer offset
    tok_t tok;                   //  current token
    int depth;                   //  current nesting
    const es_meta_object_t *obj; //  columns
    es_odata_t *self;            //  the AST being built
    size_t cap;                  //  nodes allocated
    size_t npool;                //  pool bytes used (the pool never moves)
    es_err_t *err;               //  where errors go
} parser_t;

//  -------------------------------------------------------------------------------------------
//  Errors

//  Quote text[0..len) for an error message: at most ES_ODATA_QUOTE_MAX bytes, control bytes
//  escaped, so a hostile filter cannot make the message unreadable.
static void
s_quote(char *buf, size_t size, const char *text, size_t len)
{
    size_t n = 0;
    buf[n++] = '\'';
    for (size_t k = 0; k < len && k < ES_ODATA_QUOTE_MAX && n + 8 < size; k++) {
        unsigned char c = (unsigned char)text[k];
        if (c < 0x20 || c == 0x7f)
            n += (size_t)snprintf(buf + n, size - n, "\\x%02x", c);
        else
            buf[n++] = (char)c;
    }
    if (len > ES_ODATA_QUOTE_MAX && n + 5 < size) {
        memcpy(buf + n, "...", 3);
        n += 3;
    }
    buf[n++] = '\'';
    buf[n] = '\0';
}

static void
s_describe(const parser_t *p, const tok_t *tok, char *buf, size_t size)
{
    if (tok->kind == T_END)
        snprintf(buf, size, "end of input");
    else
        s_quote(buf, size, p->text + tok->off, tok->len);
}

//  Position for people: 1-based, in UTF-8 characters rather than bytes.
static size_t
s_position(const parser_t *p, size_t off)
{
    size_t pos = 1;
    for (size_t k = 0; k < off && k < p->len; k++)
        if (((unsigned char)p->text[k] & 0xc0) != 0x80)
            pos++;
    return pos;
}

static int s_fail(const parser_t *p, size_t off, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int
s_fail(const parser_t *p, size_t off, const char *fmt, ...)
{
    char msg[ES_ERR_WHAT_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return es_err_set(p->err, ES_EINVAL, "filter: position %zu: %s", s_position(p, off), msg);
}

//  "expected X, got <current token>"
static int
s_expected(const parser_t *p, const char *what)
{
    char got[ES_ODATA_QUOTE_MAX * 4 + 16];
    s_describe(p, &p->tok, got, sizeof got);
    return s_fail(p, p->tok.off, "expected %s, got %s", what, got);
}

//  -------------------------------------------------------------------------------------------
//  Lexer

static bool
s_is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static bool
s_is_alpha(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static bool
s_is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static bool
s_tok_is(const parser_t *p, const char *word)
{
    size_t n = strlen(word);
    return p->tok.kind == T_IDENT && p->tok.len == n && memcmp(p->text + p->tok.off, word, n) == 0;
}

//  Copy bytes into the pool, NUL-terminated. The pool is sized up front to hold every token.
static const char *
s_pool_add(parser_t *p, const char *src, size_t len)
{
    char *dst = p->self->pool + p->npool;
    memcpy(dst, src, len);
    dst[len] = '\0';
    p->npool += len + 1;
    return dst;
}

//  Digits at s[0..n) as a number; -1 if any is not a digit.
static int
s_digits(const char *s, size_t n)
{
    int v = 0;
    for (size_t k = 0; k < n; k++) {
        if (!s_is_digit(s[k]))
            return -1;
        v = v * 10 + (s[k] - '0');
    }
    return v;
}

//  Exactly YYYY-MM-DD[THH:MM:SS[.f+][Z|(+|-)hh:mm]], the text a date or datetime column holds.
static bool
s_valid_date(const char *s, size_t n)
{
    static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (n < 10 || s[4] != '-' || s[7] != '-')
        return false;
    int y = s_digits(s, 4), m = s_digits(s + 5, 2), d = s_digits(s + 8, 2);
    if (y < 0 || m < 1 || m > 12 || d < 1 || d > mdays[m - 1])
        return false;
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (m == 2 && d == 29 && !leap)
        return false;
    if (n == 10)
        return true;
    if (n < 19 || s[10] != 'T' || s[13] != ':' || s[16] != ':')
        return false;
    int hh = s_digits(s + 11, 2), mm = s_digits(s + 14, 2), ss = s_digits(s + 17, 2);
    if (hh < 0 || hh > 23 || mm < 0 || mm > 59 || ss < 0 || ss > 59)
        return false;
    size_t k = 19;
    if (k < n && s[k] == '.') {
        size_t start = ++k;
        while (k < n && s_is_digit(s[k]))
            k++;
        if (k == start)
            return false;
    }
    if (k == n)
        return true;
    if (s[k] == 'Z')
        return k + 1 == n;
    if ((s[k] == '+' || s[k] == '-') && n - k == 6 && s[k + 3] == ':') {
        int oh = s_digits(s + k + 1, 2), om = s_digits(s + k + 4, 2);
        return oh >= 0 && oh <= 23 && om >= 0 && om <= 59;
    }
    return false;
}

static int
s_lex_number(parser_t *p, size_t start)
{
    const char *t = p->text;
    size_t k = start;
    if (t[k] == '-')
        k++;
    while (k < p->len && s_is_digit(t[k]))
        k++;
    bool decimal = false, bad = false;
    if (k < p->len && t[k] == '.' && k + 1 < p->len && s_is_digit(t[k + 1])) {
        decimal = true;
        k++;
        while (k < p->len && s_is_digit(t[k]))
            k++;
    }
    if (k < p->len && (t[k] == 'e' || t[k] == 'E')) {
        size_t e = k + 1;
        if (e < p->len && (t[e] == '+' || t[e] == '-'))
            e++;
        bool digits = e < p->len && s_is_digit(t[e]);
        decimal = true;
        k = e;
        while (k < p->len && s_is_digit(t[k]))
            k++;
        if (!digits)
            bad = true;
    }
    //  "12abc", "1.", "1e+": one bad token rather than two confusing ones.
    if (bad || (k < p->len && (s_is_alpha(t[k]) || s_is_digit(t[k]) || t[k] == '.'))) {
        while (k < p->len && (s_is_alpha(t[k]) || s_is_digit(t[k]) || t[k] == '.'))
            k++;
        char q[ES_ODATA_QUOTE_MAX * 4 + 16];
        s_quote(q, sizeof q, t + start, k - start);
        return s_fail(p, start, "invalid number %s", q);
    }
    char buf[ES_ODATA_TEXT_MAX + 1];
    memcpy(buf, t + start, k - start);
    buf[k - start] = '\0';
    p->tok.kind = decimal ? T_DEC : T_INT;
    p->tok.len = k - start;
    errno = 0;
    if (decimal)
        p->tok.d = strtod(buf, NULL);
    else
        p->tok.i = strtoll(buf, NULL, 10);
    if (errno == ERANGE && (!decimal || isinf(p->tok.d))) {
        char q[ES_ODATA_QUOTE_MAX * 4 + 16];
        s_quote(q, sizeof q, buf, k - start);
        return s_fail(p, start, "number out of range %s", q);
    }
    p->at = k;
    return 0;
}

static int
s_lex_date(parser_t *p, size_t start)
{
    const char *t = p->text;
    size_t k = start;
    while (k < p->len && (s_is_digit(t[k]) || s_is_alpha(t[k]) || t[k] == '-' || t[k] == ':' ||
                          t[k] == '.' || t[k] == '+'))
        k++;
    if (!s_valid_date(t + start, k - start)) {
        char q[ES_ODATA_QUOTE_MAX * 4 + 16];
        s_quote(q, sizeof q, t + start, k - start);
        bool has_time = memchr(t + start, 'T', k - start) != NULL;
        return s_fail(p, start, "invalid %s %s", has_time ? "date-time" : "date", q);
    }
    p->tok.kind = T_DATE;
    p->tok.len = k - start;
    p->tok.s = s_pool_add(p, t + start, k - start);
    p->tok.slen = k - start;
    p->at = k;
    return 0;
}

static int
s_lex_string(parser_t *p, size_t start)
{
    const char *t = p->text;
    char *dst = p->self->pool + p->npool;
    size_t n = 0, k = start + 1;
    for (;;) {
        if (k >= p->len)
            return s_fail(p, start, "unterminated string");
        if (t[k] == '\'') {
            if (k + 1 < p->len && t[k + 1] == '\'') {
                dst[n++] = '\'';
                k += 2;
                continue;
            }
            k++;
            break;
        }
        dst[n++] = t[k++];
    }
    dst[n] = '\0';
    p->npool += n + 1;
    p->tok.kind = T_STR;
    p->tok.len = k - start;
    p->tok.s = dst;
    p->tok.slen = n;
    p->at = k;
    return 0;
}

//  Read the next token into p->tok. -1 with err on a malformed literal.
static int
s_next(parser_t *p)
{
    const char *t = p->text;
    while (p->at < p->len && s_is_space(t[p->at]))
        p->at++;
    size_t k = p->at;
    memset(&p->tok, 0, sizeof p->tok);
    p->tok.off = k;
    if (k >= p->len) {
        p->tok.kind = T_END;
        return 0;
    }
    char c = t[k];
    if (c == '(' || c == ')' || c == ',') {
        p->tok.kind = c == '(' ? T_LPAREN : c == ')' ? T_RPAREN : T_COMMA;
        p->tok.len = 1;
        p->at = k + 1;
        return 0;
    }
    if (c == '\'')
        return s_lex_string(p, k);
    if (s_is_digit(c) && k + 4 < p->len && s_digits(t + k, 4) >= 0 && t[k + 4] == '-')
        return s_lex_date(p, k);
    if (s_is_digit(c) || (c == '-' && k + 1 < p->len && s_is_digit(t[k + 1])))
        return s_lex_number(p, k);
    if (s_is_alpha(c)) {
        size_t e = k + 1;
        while (e < p->len && (s_is_alpha(t[e]) || s_is_digit(t[e])))
            e++;
        p->tok.kind = T_IDENT;
        p->tok.len = e - k;
        p->at = e;
        return 0;
    }
    //  One whole UTF-8 character, so the error quotes something printable.
    size_t e = k + 1;
    if ((unsigned char)c >= 0xc0)
        while (e < p->len && e < k + 4 && ((unsigned char)t[e] & 0xc0) == 0x80)
            e++;
    p->tok.kind = T_BAD;
    p->tok.len = e - k;
    p->at = e;
    return 0;
}

//  -------------------------------------------------------------------------------------------
//  Parser

static int32_t
s_node(parser_t *p, kind_t kind, int32_t a, int32_t b)
{
    es_odata_t *self = p->self;
    if (self->nnodes == p->cap) {
        p->cap = p->cap ? p->cap * 2 : 16;
        self->nodes = es_realloc(self->nodes, p->cap * sizeof *self->nodes);
    }
    node_t *n = &self->nodes[self->nnodes];
    memset(n, 0, sizeof *n);
    n->kind = (uint8_t)kind;
    n->a = a;
    n->b = b;
    n->next = -1;
    n->lit.type = ES_V_NULL;
    return (int32_t)self->nnodes++;
}

static bool
s_is_bool(const parser_t *p, int32_t i)
{
    const node_t *n = &p->self->nodes[i];
    switch ((kind_t)n->kind) {
    case N_LIT:
        return n->lit.type == ES_V_BOOL;
    case N_COL:
        return n->op == ES_FT_BOOL;
    case N_CMP:
    case N_IN:
    case N_AND:
    case N_OR:
    case N_NOT:
    case N_CONTAINS:
    case N_STARTS:
    case N_ENDS:
        return true;
    default:
        return false;
    }
}

static int
s_enter(parser_t *p)
{
    if (++p->depth > ES_ODATA_DEPTH_MAX)
        return s_fail(p, p->tok.off, "nesting deeper than %d levels", ES_ODATA_DEPTH_MAX);
    return 0;
}

//  The current token as a literal node, or -1 (no error set) if it is not one.
static int32_t
s_literal(parser_t *p)
{
    es_value_t v = {.type = ES_V_NULL};
    switch (p->tok.kind) {
    case T_INT:
        v.type = ES_V_INT;
        v.u.i = p->tok.i;
        break;
    case T_DEC:
        v.type = ES_V_DOUBLE;
        v.u.d = p->tok.d;
        break;
    case T_STR:
    case T_DATE:
        v.type = ES_V_STR;
        v.u.s.ptr = p->tok.s;
        v.u.s.len = p->tok.slen;
        break;
    case T_IDENT:
        if (s_tok_is(p, "true") || s_tok_is(p, "false")) {
            v.type = ES_V_BOOL;
            v.u.b = s_tok_is(p, "true");
        } else if (!s_tok_is(p, "null"))
            return -1;
        break;
    default:
        return -1;
    }
    int32_t i = s_node(p, N_LIT, -1, -1);
    p->self->nodes[i].lit = v;
    return i;
}

static const struct {
    const char *name; //  as written
    kind_t kind;      //  node kind
    int nargs;        //  arguments
} s_functions[] = {
    {"contains", N_CONTAINS, 2}, {"startswith", N_STARTS, 2}, {"endswith", N_ENDS, 2},
    {"tolower", N_TOLOWER, 1},   {"toupper", N_TOUPPER, 1},   {"length", N_LENGTH, 1},
};

static bool
s_is_reserved(const parser_t *p)
{
    static const char *words[] = {"eq", "ne", "gt", "ge", "lt", "le", "and", "or", "not", "in"};
    for (size_t k = 0; k < sizeof words / sizeof words[0]; k++)
        if (s_tok_is(p, words[k]))
            return true;
    return false;
}

static int32_t s_parse_or(parser_t *p);

static int32_t s_parse_operand(parser_t *p);

//  name '(' operand {',' operand} ')' with the current token on the name.
static int32_t
s_parse_function(parser_t *p, size_t f)
{
    if (s_enter(p) || s_next(p))
        return -1;
    if (p->tok.kind != T_LPAREN)
        return s_expected(p, "'('");
    if (s_next(p))
        return -1;
    int32_t args[2] = {-1, -1};
    for (int k = 0; k < s_functions[f].nargs; k++) {
        if (k > 0) {
            if (p->tok.kind != T_COMMA)
                return s_expected(p, "','");
            if (s_next(p))
                return -1;
        }
        args[k] = s_parse_operand(p);
        if (args[k] < 0)
            return -1;
    }
    if (p->tok.kind != T_RPAREN)
        return s_expected(p, "')'");
    if (s_next(p))
        return -1;
    p->depth--;
    return s_node(p, s_functions[f].kind, args[0], args[1]);
}

//  A column, literal, function call or parenthesised boolean expression.
static int32_t
s_parse_operand(parser_t *p)
{
    if (p->tok.kind == T_LPAREN) {
        if (s_enter(p) || s_next(p))
            return -1;
        int32_t e = s_parse_or(p);
        if (e < 0)
            return -1;
        if (p->tok.kind != T_RPAREN)
            return s_expected(p, "')'");
        if (s_next(p))
            return -1;
        p->depth--;
        return e;
    }
    int32_t lit = s_literal(p);
    if (lit >= 0)
        return s_next(p) ? -1 : lit;
    if (p->tok.kind != T_IDENT || s_is_reserved(p))
        return s_expected(p, "an operand");

    const char *name = p->text + p->tok.off;
    size_t len = p->tok.len;
    int col = es_meta_field_index(p->obj, name, len);
    size_t after = p->at;
    while (after < p->len && s_is_space(p->text[after]))
        after++;
    bool call = after < p->len && p->text[after] == '(';
    if (call || col < 0) {
        for (size_t f = 0; f < sizeof s_functions / sizeof s_functions[0]; f++)
            if (s_tok_is(p, s_functions[f].name))
                return s_parse_function(p, f);
        char q[ES_ODATA_QUOTE_MAX * 4 + 16];
        s_quote(q, sizeof q, name, len);
        return s_fail(p, p->tok.off, "unknown %s %s", call ? "function" : "column", q);
    }
    int32_t i = s_node(p, N_COL, -1, -1);
    node_t *n = &p->self->nodes[i];
    n->op = (uint8_t)p->obj->fields[col].type;
    n->lit.type = ES_V_STR;
    n->lit.u.s.ptr = s_pool_add(p, name, len);
    n->lit.u.s.len = len;
    return s_next(p) ? -1 : i;
}

//  'not' unary | operand  ('not' binds tighter than comparisons, as in OData)
static int32_t
s_parse_unary(parser_t *p)
{
    if (!s_tok_is(p, "not"))
        return s_parse_operand(p);
    if (s_enter(p) || s_next(p))
        return -1;
    tok_t start = p->tok;
    int32_t a = s_parse_unary(p);
    if (a < 0)
        return -1;
    if (!s_is_bool(p, a)) {
        char got[ES_ODATA_QUOTE_MAX * 4 + 16];
        s_describe(p, &start, got, sizeof got);
        return s_fail(p, start.off, "expected a boolean operand after 'not', got %s", got);
    }
    p->depth--;
    return s_node(p, N_NOT, a, -1);
}

static int32_t
s_parse_in(parser_t *p, int32_t lhs)
{
    if (s_next(p))
        return -1;
    if (p->tok.kind != T_LPAREN)
        return s_expected(p, "'('");
    int32_t in = s_node(p, N_IN, lhs, -1), last = -1;
    do {
        if (s_next(p))
            return -1;
        int32_t lit = s_literal(p);
        if (lit < 0)
            return s_expected(p, "a literal");
        if (last < 0)
            p->self->nodes[in].b = lit;
        else
            p->self->nodes[last].next = lit;
        last = lit;
        if (s_next(p))
            return -1;
    } while (p->tok.kind == T_COMMA);
    if (p->tok.kind != T_RPAREN)
        return s_expected(p, "',' or ')'");
    return s_next(p) ? -1 : in;
}

//  unary [op unary | 'in' '(' literals ')']; the result is always boolean.
static int32_t
s_parse_cmp(parser_t *p)
{
    static const char *ops[] = {"eq", "ne", "gt", "ge", "lt", "le"};
    int32_t a = s_parse_unary(p);
    if (a < 0)
        return -1;
    for (size_t k = 0; k < sizeof ops / sizeof ops[0]; k++) {
        if (s_tok_is(p, ops[k])) {
            if (s_next(p))
                return -1;
            int32_t b = s_parse_unary(p);
            if (b < 0)
                return -1;
            int32_t i = s_node(p, N_CMP, a, b);
            p->self->nodes[i].op = (uint8_t)k;
            return i;
        }
    }
    if (s_tok_is(p, "in"))
        return s_parse_in(p, a);
    if (!s_is_bool(p, a))
        return s_expected(p, "a comparison operator");
    return a;
}

//  sub {word sub} as one n-ary node, so long chains cost no recursion when evaluated.
static int32_t
s_parse_chain(parser_t *p, const char *word, kind_t kind, int32_t (*sub)(parser_t *))
{
    int32_t first = sub(p);
    if (first < 0 || !s_tok_is(p, word))
        return first;
    int32_t node = s_node(p, kind, first, -1), last = first;
    while (s_tok_is(p, word)) {
        if (s_next(p))
            return -1;
        int32_t i = sub(p);
        if (i < 0)
            return -1;
        p->self->nodes[last].next = i;
        last = i;
    }
    return node;
}

static int32_t
s_parse_and(parser_t *p)
{
    return s_parse_chain(p, "and", N_AND, s_parse_cmp);
}

static int32_t
s_parse_or(parser_t *p)
{
    return s_parse_chain(p, "or", N_OR, s_parse_and);
}

es_odata_t *
es_odata_new(const char *text, const es_meta_object_t *obj, es_err_t *err)
{
    assert(text && obj);
    size_t len = strnlen(text, ES_ODATA_TEXT_MAX + 1);
    if (len > ES_ODATA_TEXT_MAX) {
        es_err_set(err, ES_EINVAL, "filter: longer than %d bytes", ES_ODATA_TEXT_MAX);
        return NULL;
    }
    es_odata_t *self = es_calloc(1, sizeof *self);
    //  Every pool entry comes from a distinct token and is no longer than it, plus a NUL.
    self->pool = es_malloc(2 * len + 2);
    parser_t p = {.text = text, .len = len, .obj = obj, .self = self, .err = err};
    int32_t root = -1;
    if (s_next(&p) == 0) {
        root = s_parse_or(&p);
        if (root >= 0 && p.tok.kind != T_END)
            root = s_expected(&p, "end of input");
    }
    if (root < 0) {
        es_odata_destroy(&self);
        return NULL;
    }
    self->root = root;
    self->nodes = es_realloc(self->nodes, self->nnodes * sizeof *self->nodes);
    return self;
}

void
es_odata_destroy(es_odata_t **self_p)
{
    if (!*self_p)
        return;
    es_odata_t *self = *self_p;
    free(self->pool);
    free(self->nodes);
    free(self);
    *self_p = NULL;
}

//  -------------------------------------------------------------------------------------------
//  Evaluation: no allocation. tolower/toupper do not copy; they mark the string with a fold
//  applied byte by byte wherever it is compared.

typedef enum { F_NONE, F_LOWER, F_UPPER } fold_t;

typedef struct {
    es_value_t v; //  the value (strings borrowed from the record or the pool)
    fold_t fold;  //  case folding still to apply to v's string bytes
} val_t;

typedef struct {
    es_odata_get_fn *get; //  column lookup
    void *ctx;            //  its context
} getter_t;

static inline unsigned char
s_fold(unsigned char c, fold_t f)
{
    if (f == F_LOWER && c >= 'A' && c <= 'Z')
        return (unsigned char)(c + 32);
    if (f == F_UPPER && c >= 'a' && c <= 'z')
        return (unsigned char)(c - 32);
    return c;
}

//  Byte-wise compare of a[0..n) and b[0..n) after folding: <0, 0, >0.
static int
s_bytes_cmp(const char *a, fold_t fa, const char *b, fold_t fb, size_t n)
{
    if (fa == F_NONE && fb == F_NONE)
        return n ? memcmp(a, b, n) : 0;
    for (size_t k = 0; k < n; k++) {
        unsigned char x = s_fold((unsigned char)a[k], fa), y = s_fold((unsigned char)b[k], fb);
        if (x != y)
            return x < y ? -1 : 1;
    }
    return 0;
}

static int
s_str_cmp(const val_t *a, const val_t *b)
{
    size_t la = a->v.u.s.len, lb = b->v.u.s.len;
    int c = s_bytes_cmp(a->v.u.s.ptr, a->fold, b->v.u.s.ptr, b->fold, la < lb ? la : lb);
    if (c)
        return c;
    return la < lb ? -1 : la > lb ? 1 : 0;
}

//  int64 against double without losing precision above 2^53; 2 if unordered (NaN).
static int
s_int_double_cmp(int64_t i, double d)
{
    if (isnan(d))
        return 2;
    if (d >= 9223372036854775808.0)
        return -1;
    if (d < -9223372036854775808.0)
        return 1;
    double t = trunc(d);
    int64_t ti = (int64_t)t;
    if (i != ti)
        return i < ti ? -1 : 1;
    return d > t ? -1 : d < t ? 1 : 0;
}

static bool
s_is_num(const val_t *v)
{
    return v->v.type == ES_V_INT || v->v.type == ES_V_DOUBLE;
}

//  Order of two values: -1, 0, 1, or 2 when they are not comparable (null, different types,
//  booleans, NaN).
static int
s_order(const val_t *a, const val_t *b)
{
    if (a->v.type == ES_V_STR && b->v.type == ES_V_STR) {
        int c = s_str_cmp(a, b);
        return c < 0 ? -1 : c > 0 ? 1 : 0;
    }
    if (!s_is_num(a) || !s_is_num(b))
        return 2;
    if (a->v.type == ES_V_INT && b->v.type == ES_V_INT)
        return a->v.u.i < b->v.u.i ? -1 : a->v.u.i > b->v.u.i ? 1 : 0;
    if (a->v.type == ES_V_INT)
        return s_int_double_cmp(a->v.u.i, b->v.u.d);
    if (b->v.type == ES_V_INT) {
        int c = s_int_double_cmp(b->v.u.i, a->v.u.d);
        return c == 2 ? 2 : -c;
    }
    double x = a->v.u.d, y = b->v.u.d;
    return x < y ? -1 : x > y ? 1 : x == y ? 0 : 2;
}

static bool
s_equal(const val_t *a, const val_t *b)
{
    if (a->v.type == ES_V_NULL || b->v.type == ES_V_NULL)
        return a->v.type == b->v.type;
    if (a->v.type == ES_V_BOOL || b->v.type == ES_V_BOOL)
        return a->v.type == b->v.type && a->v.u.b == b->v.u.b;
    return s_order(a, b) == 0;
}

static bool
s_compare(op_t op, const val_t *a, const val_t *b)
{
    if (op == OP_EQ)
        return s_equal(a, b);
    if (op == OP_NE)
        return !s_equal(a, b);
    int c = s_order(a, b);
    if (c == 2)
        return false;
    switch (op) {
    case OP_GT:
        return c > 0;
    case OP_GE:
        return c >= 0;
    case OP_LT:
        return c < 0;
    default:
        return c <= 0;
    }
}

//  Does a (folded) contain b (folded) at offset off?
static bool
s_match_at(const val_t *a, size_t off, const val_t *b)
{
    return s_bytes_cmp(a->v.u.s.ptr + off, a->fold, b->v.u.s.ptr, b->fold, b->v.u.s.len) == 0;
}

static bool
s_string_fn(kind_t kind, const val_t *a, const val_t *b)
{
    if (a->v.type != ES_V_STR || b->v.type != ES_V_STR)
        return false;
    size_t la = a->v.u.s.len, lb = b->v.u.s.len;
    if (lb > la)
        return false;
    if (lb == 0)
        return true; //  every string has the empty prefix, suffix and substring
    if (kind == N_STARTS)
        return s_match_at(a, 0, b);
    if (kind == N_ENDS)
        return s_match_at(a, la - lb, b);
    if (a->fold == F_NONE && b->fold == F_NONE)
        return memmem(a->v.u.s.ptr, la, b->v.u.s.ptr, lb) != NULL;
    for (size_t off = 0; off + lb <= la; off++)
        if (s_match_at(a, off, b))
            return true;
    return false;
}

static bool s_eval_bool(const es_odata_t *self, int32_t i, const getter_t *g);

static void
s_eval_val(const es_odata_t *self, int32_t i, const getter_t *g, val_t *out)
{
    const node_t *n = &self->nodes[i];
    out->fold = F_NONE;
    switch ((kind_t)n->kind) {
    case N_LIT:
        out->v = n->lit;
        return;
    case N_COL:
        if (g->get(g->ctx, n->lit.u.s.ptr, &out->v) != 1)
            out->v.type = ES_V_NULL;
        return;
    case N_TOLOWER:
    case N_TOUPPER:
        s_eval_val(self, n->a, g, out);
        if (out->v.type == ES_V_STR)
            out->fold = n->kind == N_TOLOWER ? F_LOWER : F_UPPER;
        else
            out->v.type = ES_V_NULL;
        return;
    case N_LENGTH: {
        val_t a;
        s_eval_val(self, n->a, g, &a);
        if (a.v.type != ES_V_STR) {
            out->v.type = ES_V_NULL;
            return;
        }
        int64_t chars = 0;
        for (size_t k = 0; k < a.v.u.s.len; k++)
            if (((unsigned char)a.v.u.s.ptr[k] & 0xc0) != 0x80)
                chars++;
        out->v.type = ES_V_INT;
        out->v.u.i = chars;
        return;
    }
    default:
        out->v.type = ES_V_BOOL;
        out->v.u.b = s_eval_bool(self, i, g);
        return;
    }
}

static bool
s_eval_bool(const es_odata_t *self, int32_t i, const getter_t *g)
{
    const node_t *n = &self->nodes[i];
    switch ((kind_t)n->kind) {
    case N_AND:
        for (int32_t c = n->a; c >= 0; c = self->nodes[c].next)
            if (!s_eval_bool(self, c, g))
                return false;
        return true;
    case N_OR:
        for (int32_t c = n->a; c >= 0; c = self->nodes[c].next)
            if (s_eval_bool(self, c, g))
                return true;
        return false;
    case N_NOT:
        return !s_eval_bool(self, n->a, g);
    case N_CMP: {
        val_t a, b;
        s_eval_val(self, n->a, g, &a);
        s_eval_val(self, n->b, g, &b);
        return s_compare((op_t)n->op, &a, &b);
    }
    case N_IN: {
        val_t a, b = {.fold = F_NONE};
        s_eval_val(self, n->a, g, &a);
        for (int32_t c = n->b; c >= 0; c = self->nodes[c].next) {
            b.v = self->nodes[c].lit;
            if (s_equal(&a, &b))
                return true;
        }
        return false;
    }
    case N_CONTAINS:
    case N_STARTS:
    case N_ENDS: {
        val_t a, b;
        s_eval_val(self, n->a, g, &a);
        s_eval_val(self, n->b, g, &b);
        return s_string_fn((kind_t)n->kind, &a, &b);
    }
    default: {
        //  A boolean column or literal on its own; null counts as false.
        val_t v;
        s_eval_val(self, i, g, &v);
        return v.v.type == ES_V_BOOL && v.v.u.b;
    }
    }
}

bool
es_odata_match(const es_odata_t *self, es_odata_get_fn *get, void *ctx)
{
    assert(self && get);
    getter_t g = {get, ctx};
    return s_eval_bool(self, self->root, &g);
}

typedef struct {
    const void *rec; //  MessagePack map
    size_t len;      //  its size
    bool bad;        //  es_record_get found it malformed
} record_ctx_t;

static int
s_record_get(void *ctx, const char *column, es_value_t *out)
{
    record_ctx_t *r = ctx;
    int rc = es_record_get(r->rec, r->len, column, out);
    if (rc < 0)
        r->bad = true;
    return rc == 1;
}

bool
es_odata_match_record(const es_odata_t *self, const void *rec, size_t len)
{
    assert(self);
    record_ctx_t r = {rec, len, false};
    bool match = es_odata_match(self, s_record_get, &r);
    //  A malformed record matches nothing, whatever the filter says about the columns read.
    return match && !r.bad;
}
