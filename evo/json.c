/*
 * json.c — the run folder's JSON lines: a writer for one flat object per line
 * and a reader for exactly such objects. Values are numbers, strings,
 * true/false/null and arrays of integers; nothing nests. No library.
 *
 * Writer: evo_json_begin, then one call per field, then evo_json_end, which
 * closes the object, appends '\n' and hands over the line. An allocation
 * failure is remembered and reported once, by evo_json_end. Strings are
 * escaped (quote, backslash, control characters); bytes >= 0x80 pass through
 * (UTF-8). Non-finite numbers are written as null (JSON has no NaN).
 *
 * Reader: evo_json_parse takes one line (without or with its '\n') and fails
 * with a message giving the column of the first thing that is not JSON.
 * Numbers keep their text so that 64-bit integers come back exactly.
 */
#include "evo_internal.h"
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


/* ------------------------------------------------------------ writer */

static void put(evo_json_writer *w, const char *s, size_t n)
{
    if (w->failed) return;
    if (w->len + n + 1 > w->cap) {
        size_t cap = w->cap ? w->cap : 256;
        while (cap < w->len + n + 1) cap *= 2;
        char *nb = realloc(w->buf, cap);
        if (!nb) { w->failed = 1; return; }
        w->buf = nb;
        w->cap = cap;
    }
    memcpy(w->buf + w->len, s, n);
    w->len += n;
    w->buf[w->len] = 0;
}

static void puts_(evo_json_writer *w, const char *s) { put(w, s, strlen(s)); }

static void put_string(evo_json_writer *w, const char *s)
{
    put(w, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)s; *p; ++p) {
        char esc[8];
        if (*p == '"') puts_(w, "\\\"");
        else if (*p == '\\') puts_(w, "\\\\");
        else if (*p == '\n') puts_(w, "\\n");
        else if (*p == '\r') puts_(w, "\\r");
        else if (*p == '\t') puts_(w, "\\t");
        else if (*p < 0x20 || *p == 0x7f) { snprintf(esc, sizeof esc, "\\u%04x", *p); puts_(w, esc); }
        else put(w, (const char *)p, 1);
    }
    put(w, "\"", 1);
}

static void put_key(evo_json_writer *w, const char *key)
{
    if (w->fields++) put(w, ",", 1);
    put_string(w, key);
    put(w, ":", 1);
}

void evo_json_begin(evo_json_writer *w)
{
    memset(w, 0, sizeof *w);
    put(w, "{", 1);
}

void evo_json_int(evo_json_writer *w, const char *key, long long v)
{
    char b[32];
    snprintf(b, sizeof b, "%lld", v);
    put_key(w, key);
    puts_(w, b);
}

void evo_json_u64(evo_json_writer *w, const char *key, uint64_t v)
{
    char b[32];
    snprintf(b, sizeof b, "%" PRIu64, v);
    put_key(w, key);
    puts_(w, b);
}

void evo_json_num(evo_json_writer *w, const char *key, double v)
{
    char b[40];
    if (isfinite(v)) snprintf(b, sizeof b, "%.9g", v);
    else snprintf(b, sizeof b, "null");
    put_key(w, key);
    puts_(w, b);
}

void evo_json_str(evo_json_writer *w, const char *key, const char *v)
{
    put_key(w, key);
    put_string(w, v ? v : "");
}

void evo_json_ints(evo_json_writer *w, const char *key, const int *v, int n)
{
    put_key(w, key);
    put(w, "[", 1);
    for (int i = 0; i < n; ++i) {
        char b[24];
        snprintf(b, sizeof b, "%s%d", i ? "," : "", v[i]);
        puts_(w, b);
    }
    put(w, "]", 1);
}

dn_status evo_json_end(evo_json_writer *w, char **line, size_t *len)
{
    put(w, "}\n", 2);
    if (w->failed) {
        free(w->buf);
        memset(w, 0, sizeof *w);
        return evo_fail(DN_ERR_NOMEM, "out of memory writing a JSON line");
    }
    *line = w->buf;
    *len = w->len;
    memset(w, 0, sizeof *w);
    return DN_OK;
}

/* ------------------------------------------------------------ reader */

typedef struct {
    const char *s, *end;
    const char *p;
} reader;

static dn_status bad(const reader *r, const char *what)
{
    return evo_fail(DN_ERR_PARSE, "column %d: %s", (int)(r->p - r->s) + 1, what);
}

static void skip_ws(reader *r)
{
    while (r->p < r->end && (*r->p == ' ' || *r->p == '\t' || *r->p == '\r' || *r->p == '\n')) ++r->p;
}

static int hex4(const char *p, unsigned *out)
{
    unsigned v = 0;
    for (int i = 0; i < 4; ++i) {
        char c = p[i];
        v <<= 4;
        if (c >= '0' && c <= '9') v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f') v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F') v |= (unsigned)(c - 'A' + 10);
        else return 0;
    }
    *out = v;
    return 1;
}

/* Appends code point cp as UTF-8 to d; returns the bytes written. */
static int utf8(unsigned cp, char *d)
{
    if (cp < 0x80) { d[0] = (char)cp; return 1; }
    if (cp < 0x800) { d[0] = (char)(0xc0 | cp >> 6); d[1] = (char)(0x80 | (cp & 0x3f)); return 2; }
    if (cp < 0x10000) {
        d[0] = (char)(0xe0 | cp >> 12); d[1] = (char)(0x80 | ((cp >> 6) & 0x3f)); d[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    d[0] = (char)(0xf0 | cp >> 18); d[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
    d[2] = (char)(0x80 | ((cp >> 6) & 0x3f)); d[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

/* \uXXXX at r->p (after the backslash and 'u'), surrogate pairs joined. */
static dn_status read_u_escape(reader *r, unsigned *cp)
{
    if (r->end - r->p < 4 || !hex4(r->p, cp)) return bad(r, "\\u needs four hex digits");
    r->p += 4;
    if (*cp >= 0xdc00 && *cp <= 0xdfff) return bad(r, "lone low surrogate");
    if (*cp < 0xd800 || *cp > 0xdbff) return DN_OK;
    unsigned lo = 0;
    if (r->end - r->p < 6 || r->p[0] != '\\' || r->p[1] != 'u' || !hex4(r->p + 2, &lo) || lo < 0xdc00 || lo > 0xdfff)
        return bad(r, "high surrogate without its low half");
    r->p += 6;
    *cp = 0x10000 + ((*cp - 0xd800) << 10) + (lo - 0xdc00);
    return DN_OK;
}

static dn_status read_escape(reader *r, char *d, int *n)
{
    char c = *r->p++;
    const char *from = "\"\\/bfnrt", *to = "\"\\/\b\f\n\r\t";
    const char *k = c ? strchr(from, c) : NULL;
    if (k) { d[0] = to[k - from]; *n = 1; return DN_OK; }
    if (c != 'u') { --r->p; return bad(r, "unknown escape"); }
    unsigned cp = 0;
    DN_TRY(read_u_escape(r, &cp));
    if (cp == 0) return bad(r, "\\u0000 is not allowed in a string");
    *n = utf8(cp, d);
    return DN_OK;
}

/* A string at r->p (on the opening quote) into a malloc'd copy. */
static dn_status read_string(reader *r, char **out)
{
    ++r->p;
    char *d = malloc((size_t)(r->end - r->p) + 1);   /* escapes never grow the text */
    if (!d) return evo_fail(DN_ERR_NOMEM, "out of memory reading a JSON string");
    size_t n = 0;
    dn_status st = DN_OK;
    for (;;) {
        if (r->p >= r->end) { st = bad(r, "unterminated string"); break; }
        unsigned char c = (unsigned char)*r->p;
        if (c == '"') { ++r->p; break; }
        if (c < 0x20) { st = bad(r, "control character in a string"); break; }
        if (c != '\\') { d[n++] = (char)c; ++r->p; continue; }
        ++r->p;
        if (r->p >= r->end) { st = bad(r, "unterminated escape"); break; }
        int k = 0;
        if ((st = read_escape(r, d + n, &k)) != DN_OK) break;
        n += (size_t)k;
    }
    if (st != DN_OK) { free(d); return st; }
    d[n] = 0;
    *out = d;
    return DN_OK;
}

/* A JSON number at r->p; its text must be the whole token. */
static dn_status read_number(reader *r, evo_json_field *f)
{
    const char *q = r->p;
    if (*q == '-') ++q;
    if (q >= r->end || *q < '0' || *q > '9') return bad(r, "expected a value");
    if (*q == '0' && q + 1 < r->end && q[1] >= '0' && q[1] <= '9') return bad(r, "leading zero in a number");
    while (q < r->end && *q >= '0' && *q <= '9') ++q;
    int integral = 1;
    if (q < r->end && *q == '.') {
        integral = 0;
        if (++q >= r->end || *q < '0' || *q > '9') return bad(r, "digits must follow '.'");
        while (q < r->end && *q >= '0' && *q <= '9') ++q;
    }
    if (q < r->end && (*q == 'e' || *q == 'E')) {
        integral = 0;
        ++q;
        if (q < r->end && (*q == '+' || *q == '-')) ++q;
        if (q >= r->end || *q < '0' || *q > '9') return bad(r, "digits must follow the exponent");
        while (q < r->end && *q >= '0' && *q <= '9') ++q;
    }
    char text[64];
    if ((size_t)(q - r->p) >= sizeof text) return bad(r, "number too long");
    memcpy(text, r->p, (size_t)(q - r->p));
    text[q - r->p] = 0;
    f->type = EVO_JSON_NUMBER;
    f->num = strtod(text, NULL);
    f->is_int = integral;
    errno = 0;
    if (integral && text[0] != '-') f->u64 = strtoull(text, NULL, 10);
    if (integral && errno == ERANGE) f->is_int = 0;
    r->p = q;
    return DN_OK;
}

static int literal(reader *r, const char *word)
{
    size_t n = strlen(word);
    if ((size_t)(r->end - r->p) < n || memcmp(r->p, word, n) != 0) return 0;
    r->p += n;
    return 1;
}

static dn_status read_int_array(reader *r, evo_json_field *f)
{
    ++r->p;
    f->type = EVO_JSON_INTS;
    skip_ws(r);
    if (r->p < r->end && *r->p == ']') { ++r->p; return DN_OK; }
    for (;;) {
        skip_ws(r);
        evo_json_field e;
        memset(&e, 0, sizeof e);
        DN_TRY(read_number(r, &e));
        if (!e.is_int || e.num < -2147483648.0 || e.num > 2147483647.0) return bad(r, "array items must be integers");
        int *ni = realloc(f->ints, (size_t)(f->nints + 1) * sizeof *ni);
        if (!ni) return evo_fail(DN_ERR_NOMEM, "out of memory reading a JSON array");
        f->ints = ni;
        f->ints[f->nints++] = (int)e.num;
        skip_ws(r);
        if (r->p < r->end && *r->p == ',') { ++r->p; continue; }
        if (r->p < r->end && *r->p == ']') { ++r->p; return DN_OK; }
        return bad(r, "expected ',' or ']' in an array");
    }
}

static dn_status read_value(reader *r, evo_json_field *f)
{
    if (r->p >= r->end) return bad(r, "expected a value");
    char c = *r->p;
    if (c == '"') { f->type = EVO_JSON_STRING; return read_string(r, &f->str); }
    if (c == '[') return read_int_array(r, f);
    if (literal(r, "null")) { f->type = EVO_JSON_NULL; return DN_OK; }
    if (literal(r, "true")) { f->type = EVO_JSON_NUMBER; f->num = 1; f->u64 = 1; f->is_int = 1; return DN_OK; }
    if (literal(r, "false")) { f->type = EVO_JSON_NUMBER; f->is_int = 1; return DN_OK; }
    return read_number(r, f);
}

static dn_status add_field(evo_json_object *o, evo_json_field *f)
{
    evo_json_field *nf = realloc(o->f, (size_t)(o->n + 1) * sizeof *nf);
    if (!nf) return evo_fail(DN_ERR_NOMEM, "out of memory reading a JSON object");
    o->f = nf;
    o->f[o->n++] = *f;
    return DN_OK;
}

static void field_free(evo_json_field *f)
{
    free(f->key);
    free(f->str);
    free(f->ints);
}

/* "key": value; the field is added to o (or freed on failure). */
static dn_status read_member(reader *r, evo_json_object *o)
{
    evo_json_field f;
    memset(&f, 0, sizeof f);
    skip_ws(r);
    if (r->p >= r->end || *r->p != '"') return bad(r, "expected a key in quotes");
    dn_status st = read_string(r, &f.key);
    if (st == DN_OK && evo_json_get(o, f.key)) st = bad(r, "duplicate key");
    if (st == DN_OK) {
        skip_ws(r);
        if (r->p >= r->end || *r->p != ':') st = bad(r, "expected ':' after the key");
        else { ++r->p; skip_ws(r); st = read_value(r, &f); }
    }
    if (st == DN_OK) st = add_field(o, &f);
    if (st != DN_OK) field_free(&f);
    return st;
}

static dn_status read_object(reader *r, evo_json_object *o)
{
    skip_ws(r);
    if (r->p >= r->end || *r->p != '{') return bad(r, "expected '{'");
    ++r->p;
    skip_ws(r);
    if (r->p < r->end && *r->p == '}') { ++r->p; return DN_OK; }
    for (;;) {
        DN_TRY(read_member(r, o));
        skip_ws(r);
        if (r->p < r->end && *r->p == ',') { ++r->p; continue; }
        if (r->p < r->end && *r->p == '}') { ++r->p; return DN_OK; }
        return bad(r, "expected ',' or '}'");
    }
}

dn_status evo_json_parse(const char *line, size_t len, evo_json_object *out)
{
    memset(out, 0, sizeof *out);
    reader r = {line, line + len, line};
    if (memchr(line, 0, len)) return evo_fail(DN_ERR_PARSE, "NUL byte in the line");
    dn_status st = read_object(&r, out);
    if (st == DN_OK) {
        skip_ws(&r);
        if (r.p != r.end) st = bad(&r, "text after the object");
    }
    if (st != DN_OK) evo_json_object_free(out);
    return st;
}

const evo_json_field *evo_json_get(const evo_json_object *o, const char *key)
{
    for (int i = 0; i < o->n; ++i)
        if (strcmp(o->f[i].key, key) == 0) return &o->f[i];
    return NULL;
}

void evo_json_object_free(evo_json_object *o)
{
    for (int i = 0; i < o->n; ++i) field_free(&o->f[i]);
    free(o->f);
    memset(o, 0, sizeof *o);
}
