/*
 * genome.c — genomes <-> Darknet cfg text, option access, and the shape and
 * limit check of a genome through the framework's shape inference.
 *
 * The text is lexed by the framework (dn_cfg_lex_annotated: upstream's rules,
 * every whitespace character removed from a line, '#' and ';' comments,
 * "[name]" sections, key=value at the first '=', lines without '=' or value
 * dropped); of duplicate keys the first wins (later ones are dropped here, so
 * an emitted genome never carries keys the framework would report as unused).
 * Section names are folded to the framework's canonical ones
 * (dn_section_canonical: [conv] is [convolutional]).
 *
 * On top of that, comment lines starting "# evo" carry the genome's memory:
 *   # evo id=N        the stable gene id of the next section
 *   # evo next_id=N   the next unused gene id (in the [net] block)
 *   # evo cells TEXT  the cell architecture of a genome expanded from a cell
 *                     template (in the [net] block; see evo_cells_format)
 * Sections without an id line get fresh ids in order (1..n for a plain cfg).
 *
 * [route] layers= and [shortcut] from= are read as layer indexes (negative:
 * relative to the section, else absolute), stored as gene ids, and written
 * back as relative indexes, so inserting or removing genes keeps them right.
 *
 * The classifier head is the longest suffix of avgpool / connected / dropout
 * / softmax / cost sections; it must end in [softmax] or [cost].
 */
#include "evo_internal.h"
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>


/* ------------------------------------------------------------ small helpers */

static void kvs_free(evo_kv *kv, int n)
{
    for (int i = 0; i < n; ++i) {
        free(kv[i].key);
        free(kv[i].value);
    }
    free(kv);
}

static void gene_clear(evo_gene *g)
{
    kvs_free(g->kv, g->nkv);
    free(g->type);
    free(g->refs);
    memset(g, 0, sizeof *g);
}

static const char *kvs_get(const evo_kv *kv, int n, const char *key)
{
    for (int i = 0; key && i < n; ++i)
        if (strcmp(kv[i].key, key) == 0) return kv[i].value;
    return NULL;
}

/* A key or value must survive a trip through the lexer unchanged. */
static int token_ok(const char *s, int is_key)
{
    if (!s || !*s) return 0;
    if (is_key && (s[0] == '#' || s[0] == ';' || s[0] == '[' || strchr(s, '='))) return 0;
    for (const char *p = s; *p; ++p)
        if (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n' || *p == '\v' || *p == '\f') return 0;
    return 1;
}

/* Replace the value of the first `key`, or append key=value. */
static dn_status kvs_set(evo_kv **kv, int *n, const char *key, const char *value)
{
    if (!token_ok(key, 1) || !token_ok(value, 0))
        return evo_fail(DN_ERR_ARG, "option '%s=%s': keys and values must be non-empty without whitespace",
                        key ? key : "(null)", value ? value : "(null)");
    char *v = strdup(value);
    if (!v) return evo_fail(DN_ERR_NOMEM, "out of memory");
    for (int i = 0; i < *n; ++i)
        if (strcmp((*kv)[i].key, key) == 0) {
            free((*kv)[i].value);
            (*kv)[i].value = v;
            return DN_OK;
        }
    char *k = strdup(key);
    evo_kv *nk = k ? realloc(*kv, (size_t)(*n + 1) * sizeof **kv) : NULL;
    if (!nk) { free(k); free(v); return evo_fail(DN_ERR_NOMEM, "out of memory"); }
    nk[*n].key = k;
    nk[*n].value = v;
    *kv = nk;
    ++*n;
    return DN_OK;
}

/* Section names as the framework spells them, aliases folded. */
static const char *canonical_type(const char *t)
{
    const char *c = dn_section_canonical(t);
    return c ? c : t;
}

static int is_head_type(const char *t)
{
    return !strcmp(t, "avgpool") || !strcmp(t, "connected") || !strcmp(t, "dropout") || !strcmp(t, "softmax") ||
           !strcmp(t, "cost");
}

static int has_refs(const char *type) { return !strcmp(type, "route") || !strcmp(type, "shortcut"); }
static const char *ref_key(const char *type) { return strcmp(type, "route") == 0 ? "layers" : "from"; }

/* Whole-string integer; 0 on success. */
static int parse_long(const char *s, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (end == s || *end || errno) return -1;
    *out = v;
    return 0;
}

/* ------------------------------------------------------------ parse */

typedef struct {
    const char *name;
    evo_genome *g;
    int seen_net;        /* the [net] header has been read              */
    long pending_id;     /* from "# evo id=N", 0 when none              */
    int *lines;          /* (g->n) header line of each gene             */
    int lines_cap;
} parser;

/* The text of "# evo cells <text>", checked and kept in its canonical form. */
static dn_status parse_cells_line(parser *ps, const char *text, int line)
{
    if (ps->g->cells)
        return evo_fail(DN_ERR_PARSE, "%s:%d: a second '# evo cells' line (a genome has one cell architecture)",
                        ps->name, line);
    evo_cells c;
    if (evo_cells_parse(text, &c) != DN_OK)
        return evo_fail(DN_ERR_PARSE, "%s:%d: '# evo cells': %s", ps->name, line, evo_last_error());
    return evo_cells_format(&c, &ps->g->cells);
}

/* "#evoid=N" / "#evonext_id=N" / "#evocells..." (the line is already stripped). */
static dn_status parse_annotation(parser *ps, const char *s, int line)
{
    const char *rest = s + 4;   /* after "#evo" */
    long v;
    if (strncmp(rest, "id=", 3) == 0) {
        if (parse_long(rest + 3, &v) || v < 1 || v > 1000000000L)
            return evo_fail(DN_ERR_PARSE, "%s:%d: '# evo id=%s': the id must be an integer >= 1", ps->name, line,
                            rest + 3);
        ps->pending_id = v;
    } else if (strncmp(rest, "next_id=", 8) == 0) {
        if (parse_long(rest + 8, &v) || v < 1 || v > 1000000000L)
            return evo_fail(DN_ERR_PARSE, "%s:%d: '# evo next_id=%s' must be an integer >= 1", ps->name, line,
                            rest + 8);
        ps->g->next_id = (int)v;
    } else if (strncmp(rest, "cells", 5) == 0) {
        return parse_cells_line(ps, rest + 5, line);
    }
    return DN_OK;   /* other "# evo..." comments are ordinary comments */
}

static dn_status open_section(parser *ps, const char *s, int line)
{
    size_t len = strlen(s);
    if (len < 3 || s[len - 1] != ']' || memchr(s + 1, ']', len - 2) || memchr(s + 1, '[', len - 2))
        return evo_fail(DN_ERR_PARSE, "%s:%d: malformed section header '%s'", ps->name, line, s);
    char inner[256];
    if (len - 2 >= sizeof inner) return evo_fail(DN_ERR_PARSE, "%s:%d: section name too long", ps->name, line);
    memcpy(inner, s + 1, len - 2);
    inner[len - 2] = 0;
    const char *type = canonical_type(inner);
    evo_genome *g = ps->g;
    if (strcmp(type, "net") == 0) {
        if (ps->seen_net) return evo_fail(DN_ERR_PARSE, "%s:%d: %s may only be the first section", ps->name, line, s);
        ps->seen_net = 1;
        ps->pending_id = 0;
        return DN_OK;
    }
    if (!ps->seen_net)
        return evo_fail(DN_ERR_PARSE, "%s:%d: the first section must be [net], not %s", ps->name, line, s);
    for (int i = 0; ps->pending_id && i < g->n; ++i)
        if (g->genes[i].id == ps->pending_id)
            return evo_fail(DN_ERR_PARSE, "%s:%d: gene id %ld is already used by the section at line %d", ps->name,
                            line, ps->pending_id, ps->lines[i]);
    evo_gene *ng = realloc(g->genes, (size_t)(g->n + 1) * sizeof *ng);
    if (!ng) return evo_fail(DN_ERR_NOMEM, "out of memory");
    g->genes = ng;
    if (g->n + 1 > ps->lines_cap) {
        int cap = ps->lines_cap ? ps->lines_cap * 2 : 16;
        int *nl = realloc(ps->lines, (size_t)cap * sizeof *nl);
        if (!nl) return evo_fail(DN_ERR_NOMEM, "out of memory");
        ps->lines = nl;
        ps->lines_cap = cap;
    }
    evo_gene *gene = &g->genes[g->n];
    memset(gene, 0, sizeof *gene);
    gene->type = strdup(type);
    if (!gene->type) return evo_fail(DN_ERR_NOMEM, "out of memory");
    gene->id = (int)ps->pending_id;   /* 0: assigned after the whole text is read */
    ps->lines[g->n] = line;
    g->n++;
    ps->pending_id = 0;
    return DN_OK;
}

/* route layers=a,b,... / shortcut from=a -> absolute layer indexes in refs
 * (turned into gene ids once every section is read). */
static dn_status parse_refs(parser *ps, evo_gene *gene, const char *key, const char *value, int line)
{
    int self = ps->g->n - 1, count = 1;
    for (const char *p = value; *p; ++p) count += *p == ',';
    if (strcmp(gene->type, "shortcut") == 0 && count != 1)
        return evo_fail(DN_ERR_PARSE, "%s:%d: from=%s: a shortcut takes exactly one layer index", ps->name, line, value);
    int *refs = calloc((size_t)count, sizeof *refs);
    if (!refs) return evo_fail(DN_ERR_NOMEM, "out of memory");
    const char *p = value;
    for (int k = 0; k < count; ++k) {
        size_t len = strcspn(p, ",");
        char num[32] = "";
        long v = 0;
        if (len > 0 && len < sizeof num) memcpy(num, p, len);
        if (len == 0 || len >= sizeof num || parse_long(num, &v)) {
            free(refs);
            return evo_fail(DN_ERR_PARSE, "%s:%d: %s=%s: '%.*s' is not a layer index", ps->name, line, key, value,
                            (int)len, p);
        }
        long idx = v < 0 ? self + v : v;
        if (idx < 0 || idx >= self) {
            free(refs);
            return evo_fail(DN_ERR_PARSE, "%s:%d: %s=%s: index %ld points to layer %ld, but only layers 0..%d come "
                            "before it", ps->name, line, key, value, v, idx, self - 1);
        }
        refs[k] = (int)idx;
        p += len + (p[len] == ',');
    }
    gene->refs = refs;
    gene->nrefs = count;
    return DN_OK;
}

static dn_status add_option(parser *ps, const char *key, const char *value, int line)
{
    if (!ps->seen_net)
        return evo_fail(DN_ERR_PARSE, "%s:%d: option '%s=%s' appears before the first section ([net])", ps->name, line,
                        key, value);
    ps->pending_id = 0;   /* an id line belongs right before a header */
    evo_genome *g = ps->g;
    if (g->n == 0) {
        if (kvs_get(g->net, g->nnet, key)) return DN_OK;   /* first occurrence wins */
        return kvs_set(&g->net, &g->nnet, key, value);
    }
    evo_gene *gene = &g->genes[g->n - 1];
    if (has_refs(gene->type) && strcmp(key, ref_key(gene->type)) == 0)
        return gene->refs ? DN_OK : parse_refs(ps, gene, key, value, line);
    if (kvs_get(gene->kv, gene->nkv, key)) return DN_OK;
    return kvs_set(&gene->kv, &gene->nkv, key, value);
}

/* The annotations of cfg up to (not including) `line`, from *j on. */
static dn_status notes_before(parser *ps, const dn_cfg *cfg, int *j, int line)
{
    for (; *j < cfg->nnotes && cfg->notes[*j].line < line; ++*j)
        DN_TRY(parse_annotation(ps, cfg->notes[*j].text, cfg->notes[*j].line));
    return DN_OK;
}

/* The framework's tokens in line order: annotations, headers, options. */
static dn_status walk(parser *ps, const dn_cfg *cfg)
{
    int j = 0;
    for (int i = 0; i < cfg->nsections; ++i) {
        const dn_section *sec = &cfg->sections[i];
        DN_TRY(notes_before(ps, cfg, &j, sec->line));
        DN_TRY(open_section(ps, sec->type, sec->line));
        for (int k = 0; k < sec->nopts; ++k) {
            DN_TRY(notes_before(ps, cfg, &j, sec->opts[k].line));
            DN_TRY(add_option(ps, sec->opts[k].key, sec->opts[k].value, sec->opts[k].line));
        }
    }
    return notes_before(ps, cfg, &j, 2147483647);
}

static dn_status lex(parser *ps, const char *text)
{
    dn_cfg cfg;
    DN_TRY(dn_cfg_lex_annotated(text, ps->name, "#evo", &cfg));
    dn_status st = walk(ps, &cfg);
    dn_cfg_free(&cfg);
    return st;
}

/* After lexing: fresh ids, next_id, refs from indexes to ids, the head. */
static dn_status finish(parser *ps)
{
    evo_genome *g = ps->g;
    if (!ps->seen_net) return evo_fail(DN_ERR_PARSE, "%s: no [net] section", ps->name);
    if (g->n == 0) return evo_fail(DN_ERR_PARSE, "%s: the cfg has no layers after [net]", ps->name);
    int max_id = 0;
    for (int i = 0; i < g->n; ++i)
        if (g->genes[i].id > max_id) max_id = g->genes[i].id;
    for (int i = 0; i < g->n; ++i)
        if (g->genes[i].id == 0) g->genes[i].id = ++max_id;
    if (g->next_id <= max_id) g->next_id = max_id + 1;
    for (int i = 0; i < g->n; ++i) {
        evo_gene *gene = &g->genes[i];
        if (has_refs(gene->type) && !gene->refs)
            return evo_fail(DN_ERR_PARSE, "%s:%d: [%s] needs %s=", ps->name, ps->lines[i], gene->type,
                            ref_key(gene->type));
        for (int k = 0; k < gene->nrefs; ++k) gene->refs[k] = g->genes[gene->refs[k]].id;
    }
    const evo_gene *last = &g->genes[g->n - 1];
    if (strcmp(last->type, "softmax") != 0 && strcmp(last->type, "cost") != 0)
        return evo_fail(DN_ERR_PARSE, "%s:%d: seed has no classifier head: the last section is [%s], expected "
                        "[softmax] or [cost]", ps->name, ps->lines[g->n - 1], last->type);
    g->body_end = g->n;
    while (g->body_end > 0 && is_head_type(g->genes[g->body_end - 1].type)) g->body_end--;
    return DN_OK;
}

dn_status evo_genome_parse(const char *cfg_text, const char *name, evo_genome *out)
{
    if (!out) return evo_fail(DN_ERR_ARG, "evo_genome_parse: no output genome");
    memset(out, 0, sizeof *out);
    parser ps = {name ? name : "<string>", out, 0, 0, NULL, 0};
    if (!cfg_text) return evo_fail(DN_ERR_ARG, "%s: no cfg text", ps.name);
    dn_status st = lex(&ps, cfg_text);
    if (st == DN_OK) st = finish(&ps);
    free(ps.lines);
    if (st != DN_OK) evo_genome_free(out);
    return st;
}

/* ------------------------------------------------------------ emit */

typedef struct { char *s; size_t len, cap; int failed; } strbuf;

static void sb_printf(strbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(strbuf *b, const char *fmt, ...)
{
    if (b->failed) return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->s ? b->s + b->len : NULL, b->s ? b->cap - b->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0) { b->failed = 1; return; }
        if (b->s && b->len + (size_t)n < b->cap) { b->len += (size_t)n; return; }
        size_t cap = b->cap ? b->cap : 1024;
        while (cap <= b->len + (size_t)n) cap *= 2;
        char *ns = realloc(b->s, cap);
        if (!ns) { b->failed = 1; return; }
        b->s = ns;
        b->cap = cap;
    }
}

static void emit_kvs(strbuf *b, const evo_kv *kv, int n)
{
    for (int i = 0; i < n; ++i) sb_printf(b, "%s=%s\n", kv[i].key, kv[i].value);
}

/* refs as relative indexes: "layers=-1,-4" / "from=-3". */
static dn_status emit_refs(strbuf *b, const evo_genome *g, int i)
{
    const evo_gene *gene = &g->genes[i];
    sb_printf(b, "%s=", ref_key(gene->type));
    for (int k = 0; k < gene->nrefs; ++k) {
        int j = evo_genome_find(g, gene->refs[k]);
        if (j < 0 || j >= i)
            return evo_fail(DN_ERR_ARG, "gene %d ([%s], layer %d) refers to gene id %d, which is not an earlier layer",
                            gene->id, gene->type, i, gene->refs[k]);
        sb_printf(b, "%s%d", k ? "," : "", j - i);
    }
    sb_printf(b, "\n");
    return DN_OK;
}

dn_status evo_genome_emit(const evo_genome *g, int annotate, char **text)
{
    if (!g || !text) return evo_fail(DN_ERR_ARG, "evo_genome_emit: no genome or output");
    *text = NULL;
    strbuf b = {0};
    sb_printf(&b, "[net]\n");
    if (annotate) sb_printf(&b, "# evo next_id=%d\n", g->next_id);
    if (annotate && g->cells) sb_printf(&b, "# evo cells %s\n", g->cells);
    emit_kvs(&b, g->net, g->nnet);
    for (int i = 0; i < g->n; ++i) {
        const evo_gene *gene = &g->genes[i];
        sb_printf(&b, "\n");
        if (annotate) sb_printf(&b, "# evo id=%d\n", gene->id);
        sb_printf(&b, "[%s]\n", gene->type);
        emit_kvs(&b, gene->kv, gene->nkv);
        if (has_refs(gene->type)) {
            dn_status st = emit_refs(&b, g, i);
            if (st != DN_OK) { free(b.s); return st; }
        }
    }
    if (b.failed) { free(b.s); return evo_fail(DN_ERR_NOMEM, "out of memory emitting a cfg"); }
    *text = b.s;
    return DN_OK;
}

/* ------------------------------------------------------------ copy, free, access */

static dn_status kvs_copy(const evo_kv *src, int n, evo_kv **dst, int *dn)
{
    *dst = NULL;
    *dn = 0;
    for (int i = 0; i < n; ++i) DN_TRY(kvs_set(dst, dn, src[i].key, src[i].value));
    return DN_OK;
}

static dn_status gene_copy(const evo_gene *src, evo_gene *dst)
{
    memset(dst, 0, sizeof *dst);
    dst->id = src->id;
    dst->type = strdup(src->type);
    if (!dst->type) return evo_fail(DN_ERR_NOMEM, "out of memory");
    DN_TRY(kvs_copy(src->kv, src->nkv, &dst->kv, &dst->nkv));
    if (src->nrefs > 0) {
        dst->refs = malloc((size_t)src->nrefs * sizeof *dst->refs);
        if (!dst->refs) return evo_fail(DN_ERR_NOMEM, "out of memory");
        memcpy(dst->refs, src->refs, (size_t)src->nrefs * sizeof *dst->refs);
        dst->nrefs = src->nrefs;
    }
    return DN_OK;
}

dn_status evo_genome_copy(const evo_genome *src, evo_genome *dst)
{
    if (!src || !dst) return evo_fail(DN_ERR_ARG, "evo_genome_copy: no source or destination");
    memset(dst, 0, sizeof *dst);
    dn_status st = kvs_copy(src->net, src->nnet, &dst->net, &dst->nnet);
    if (st == DN_OK && src->n > 0) {
        dst->genes = calloc((size_t)src->n, sizeof *dst->genes);
        if (!dst->genes) st = evo_fail(DN_ERR_NOMEM, "out of memory");
    }
    for (int i = 0; st == DN_OK && i < src->n; ++i) {
        dst->n = i + 1;   /* gene i is freed with the rest if its copy fails */
        st = gene_copy(&src->genes[i], &dst->genes[i]);
    }
    dst->body_end = src->body_end;
    dst->next_id = src->next_id;
    if (st == DN_OK && src->cells && !(dst->cells = strdup(src->cells))) st = evo_fail(DN_ERR_NOMEM, "out of memory");
    if (st != DN_OK) evo_genome_free(dst);
    return st;
}

void evo_genome_free(evo_genome *g)
{
    if (!g) return;
    kvs_free(g->net, g->nnet);
    for (int i = 0; i < g->n; ++i) gene_clear(&g->genes[i]);
    free(g->genes);
    free(g->cells);
    memset(g, 0, sizeof *g);
}

const char *evo_gene_get(const evo_gene *g, const char *key) { return g ? kvs_get(g->kv, g->nkv, key) : NULL; }

dn_status evo_gene_set(evo_gene *g, const char *key, const char *value)
{
    if (!g) return evo_fail(DN_ERR_ARG, "evo_gene_set: no gene");
    if (key && has_refs(g->type) && strcmp(key, ref_key(g->type)) == 0)
        return evo_fail(DN_ERR_ARG, "[%s] %s= is kept as gene ids (refs), not as an option", g->type, key);
    return kvs_set(&g->kv, &g->nkv, key, value);
}

int evo_gene_int(const evo_gene *g, const char *key, int def, int *out)
{
    const char *s = evo_gene_get(g, key);
    if (!s) { *out = def; return 0; }
    char *end;
    long v = strtol(s, &end, 10);
    if (end == s || *end || v < -1000000000L || v > 1000000000L) return -1;
    *out = (int)v;
    return 0;
}

dn_status evo_gene_set_int(evo_gene *g, const char *key, int value)
{
    char buf[32];
    snprintf(buf, sizeof buf, "%d", value);
    return evo_gene_set(g, key, buf);
}

const char *evo_net_get(const evo_genome *g, const char *key) { return g ? kvs_get(g->net, g->nnet, key) : NULL; }

dn_status evo_net_set(evo_genome *g, const char *key, const char *value)
{
    if (!g) return evo_fail(DN_ERR_ARG, "evo_net_set: no genome");
    return kvs_set(&g->net, &g->nnet, key, value);
}

int evo_genome_find(const evo_genome *g, int id)
{
    for (int i = 0; g && i < g->n; ++i)
        if (g->genes[i].id == id) return i;
    return -1;
}

/* ------------------------------------------------------------ check */

/* The [net] batch (what training allocates for), 1 when absent or unreadable
 * (an unreadable value is then reported by the framework's own parse). */
static int net_batch(const evo_genome *g)
{
    const char *s = evo_net_get(g, "batch");
    long v;
    if (!s || parse_long(s, &v) || v < 1 || v > 1000000) return 1;
    return (int)v;
}

static dn_status check_limits(const evo_cost *c, const evo_limits *lim)
{
    if (!lim) return DN_OK;
    if (lim->max_layers > 0 && c->layers > lim->max_layers)
        return evo_fail(DN_ERR_SHAPE, "over the layer limit: %d layers > max_layers %d", c->layers, lim->max_layers);
    if (lim->max_params > 0 && (double)c->params > lim->max_params)
        return evo_fail(DN_ERR_SHAPE, "over the parameter limit: %zu parameters > max_params %.0f", c->params,
                        lim->max_params);
    if (lim->max_flops > 0 && c->flops > lim->max_flops)
        return evo_fail(DN_ERR_SHAPE, "over the FLOP limit: %.0f FLOPs per image > max_flops %.0f", c->flops,
                        lim->max_flops);
    if (lim->max_memory > 0 && (double)c->memory > lim->max_memory)
        return evo_fail(DN_ERR_SHAPE, "over the memory limit: %zu bytes > max_memory %.0f", c->memory, lim->max_memory);
    return DN_OK;
}

dn_status evo_genome_check(const evo_genome *g, const evo_limits *lim, evo_cost *cost)
{
    if (cost) memset(cost, 0, sizeof *cost);
    if (!g) return evo_fail(DN_ERR_ARG, "evo_genome_check: no genome");
    char *text;
    DN_TRY(evo_genome_emit(g, 0, &text));
    dn_parse_options po = {.batch = net_batch(g), .seed = 0, .quiet = 1, .shapes_only = 1};
    dn_network *net = NULL;
    dn_status st = dn_network_parse_string(text, "<genome>", &po, &net);
    free(text);
    if (st != DN_OK) return evo_fail(st, "genome does not build: %s", dn_last_error());
    evo_cost c = {net->n, dn_network_param_count(net), dn_network_flops(net), dn_network_memory_bytes(net)};
    dn_network_free(net);
    if (cost) *cost = c;
    return check_limits(&c, lim);
}
